/* Archive uploads: tar_extract of arbitrary bytes (plain or gzipped tar)
 * into a scratch destination, removed after each run.  Before the bytes
 * are handed over, every 512-byte block with a ustar magic gets a correct
 * header checksum, so that mutated headers are read rather than refused
 * as corrupt.
 *
 * The destination is scratch/o1/o2/dest, beside a sentinel file in each
 * directory above it.  Properties, after each run, failed or not (tarball.h
 * is the contract): the process's working directory has not moved;
 * nothing was added next to dest or above it; the sentinels are untouched
 * and have no second link; under dest there are only regular files,
 * directories and symlinks, no setuid, setgid or sticky bit, symlinks
 * whose targets are relative and stay under dest (resolved lexically from
 * the link's directory), and files whose every link is under dest. */
#define FUZZ_INIT
#include <sys/mman.h>

#include "error.h"
#include "fuzz.h"
#include "str.h"
#include "tarball.h"

#define SENTINEL "sentinel: nothing may touch this file\n"

static char o1[PATH_MAX], o2[PATH_MAX], dest[PATH_MAX], cwd[PATH_MAX];
static int memfd = -1;

static void put_sentinel(const char *dir)
{
  char p[PATH_MAX + 16];
  snprintf(p, sizeof p, "%s/sentinel", dir);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  FUZZ_ASSERT(fd >= 0 && sp_write_all(fd, SENTINEL, strlen(SENTINEL)) == 0, "%s", p);
  close(fd);
}

static void fuzz_init(void)
{
  const char *s = fuzz_scratch();
  snprintf(o1, sizeof o1, "%s/o1", s);
  snprintf(o2, sizeof o2, "%s/o2", o1);
  snprintf(dest, sizeof dest, "%s/dest", o2);
  FUZZ_ASSERT(mkdir(o1, 0755) == 0 && mkdir(o2, 0755) == 0, "mkdir: %s", strerror(errno));
  put_sentinel(s);
  put_sentinel(o1);
  put_sentinel(o2);
  FUZZ_ASSERT(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
  memfd = memfd_create("fuzz-tar", MFD_CLOEXEC);
  FUZZ_ASSERT(memfd >= 0, "memfd_create: %s", strerror(errno));
  struct sp_error *err = NULL;
  FUZZ_ASSERT(tar_libarchive(&err) != NULL, "%s", err->msg);
}

/* Fill in the checksum of every block that looks like a tar header. */
static void fix_checksums(unsigned char *b, size_t n)
{
  for (size_t off = 0; off + 512 <= n; off += 512) {
    unsigned char *h = b + off;
    if (memcmp(h + 257, "ustar", 5) != 0)
      continue;
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
      sum += h[i];
    char field[8];
    snprintf(field, sizeof field, "%06o", sum & 0777777);
    memcpy(h + 148, field, 7);
  }
}

/* dir holds exactly the names in want (NULL-terminated). */
static void check_listing(const char *dir, const char *const *want)
{
  DIR *d = opendir(dir);
  FUZZ_ASSERT(d != NULL, "%s: %s", dir, strerror(errno));
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    bool known = false;
    for (const char *const *w = want; *w && !known; w++)
      known = strcmp(*w, e->d_name) == 0;
    FUZZ_ASSERT(known, "'%s' was written into %s, outside the destination", e->d_name, dir);
  }
  closedir(d);
  char p[PATH_MAX + 16];
  snprintf(p, sizeof p, "%s/sentinel", dir);
  struct stat st;
  FUZZ_ASSERT(lstat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
                  (size_t)st.st_size == strlen(SENTINEL),
              "%s was changed or linked", p);
}

/* Does the symlink target, in the directory dir under dest ("" for dest
 * itself), lead to a path under dest once joined and cleaned as text? */
static bool stays_inside(const char *dir, const char *target)
{
  if (target[0] == '/')
    return false;
  char *path = xasprintf("%s/%s", dir, target);
  int below = 0;
  char *save = NULL;
  for (char *seg = strtok_r(path, "/", &save); seg && below >= 0; seg = strtok_r(NULL, "/", &save))
    below += strcmp(seg, "..") == 0 ? -1 : strcmp(seg, ".") != 0;
  free(path);
  return below >= 0;
}

struct inode_count {
  dev_t dev;
  ino_t ino;
  nlink_t nlink, seen;
};

struct walk {
  struct inode_count *v;
  size_t n, cap;
};

static void count_link(struct walk *w, const struct stat *st)
{
  for (size_t i = 0; i < w->n; i++)
    if (w->v[i].dev == st->st_dev && w->v[i].ino == st->st_ino) {
      w->v[i].seen++;
      return;
    }
  if (w->n == w->cap) {
    w->cap = w->cap ? 2 * w->cap : 16;
    w->v = xreallocarray(w->v, w->cap, sizeof *w->v);
  }
  w->v[w->n++] = (struct inode_count){st->st_dev, st->st_ino, st->st_nlink, 1};
}

/* The tree under dest/rel, opened as dfd (rel is "" for dest). */
static void check_tree(struct walk *w, int dfd, const char *rel)
{
  DIR *d = fdopendir(dfd);
  FUZZ_ASSERT(d != NULL, "opendir dest/%s", rel);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    struct stat st;
    FUZZ_ASSERT(fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0, "stat dest/%s/%s", rel,
                e->d_name);
    FUZZ_ASSERT(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode),
                "dest/%s/%s is a special file (mode %o)", rel, e->d_name, (unsigned)st.st_mode);
    FUZZ_ASSERT((st.st_mode & 07000) == 0 || S_ISLNK(st.st_mode), "dest/%s/%s has mode %o", rel,
                e->d_name, (unsigned)st.st_mode);
    if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t n = readlinkat(dfd, e->d_name, target, sizeof target - 1);
      FUZZ_ASSERT(n >= 0, "readlink dest/%s/%s", rel, e->d_name);
      target[n] = '\0';
      FUZZ_ASSERT(stays_inside(rel, target), "dest/%s/%s -> %s leaves the destination", rel,
                  e->d_name, target);
    } else if (S_ISREG(st.st_mode)) {
      count_link(w, &st);
    } else {
      fchmodat(dfd, e->d_name, 0700, 0);
      int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      FUZZ_ASSERT(sub >= 0, "open dest/%s/%s: %s", rel, e->d_name, strerror(errno));
      char *r = rel[0] ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
      check_tree(w, sub, r);
      free(r);
    }
  }
  closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  unsigned char *b = (unsigned char *)fuzz_copy(data, size);
  fix_checksums(b, size);
  FUZZ_ASSERT(ftruncate(memfd, 0) == 0 && pwrite(memfd, b, size, 0) == (ssize_t)size &&
                  lseek(memfd, 0, SEEK_SET) == 0,
              "memfd: %s", strerror(errno));
  free(b);

  /* small limits: an input of a few KiB must not write gigabytes */
  struct tar_limits lim = {.max_entries = 256, .max_total_bytes = 4u << 20,
                           .max_entry_bytes = 1u << 20};
  struct tar_stats st;
  struct sp_error *err = NULL;
  if (tar_extract(memfd, dest, &lim, &st, &err) < 0) {
    FUZZ_ASSERT(err != NULL && err->code != NULL && err->msg != NULL, "failed without an error");
    FUZZ_ASSERT(strcmp(err->code, "ARCHIVE_UNAVAILABLE") != 0, "%s", err->msg);
    sp_error_free(err);
  } else {
    FUZZ_ASSERT(err == NULL, "an error on success");
  }
  FUZZ_ASSERT(st.entries <= lim.max_entries + 1 && st.bytes <= lim.max_total_bytes + (64u << 10),
              "%llu entries, %llu bytes past the limits", (unsigned long long)st.entries,
              (unsigned long long)st.bytes);

  char here[PATH_MAX];
  FUZZ_ASSERT(getcwd(here, sizeof here) != NULL && strcmp(here, cwd) == 0,
              "the working directory moved to %s", here);
  check_listing(fuzz_scratch(), (const char *const[]){"o1", "sentinel", NULL});
  check_listing(o1, (const char *const[]){"o2", "sentinel", NULL});
  check_listing(o2, (const char *const[]){"dest", "sentinel", NULL});
  struct stat ds;
  if (lstat(dest, &ds) == 0) {
    FUZZ_ASSERT(S_ISDIR(ds.st_mode), "the destination is no longer a directory");
    int dfd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    FUZZ_ASSERT(dfd >= 0, "open %s", dest);
    struct walk w = {0};
    check_tree(&w, dfd, "");
    for (size_t i = 0; i < w.n; i++)
      FUZZ_ASSERT(w.v[i].seen == w.v[i].nlink, "a file has %lu links, %lu of them in dest",
                  (unsigned long)w.v[i].nlink, (unsigned long)w.v[i].seen);
    free(w.v);
  }
  fuzz_rm_rf(dest);
  return 0;
}
