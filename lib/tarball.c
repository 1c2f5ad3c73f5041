#include "tarball.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "str.h"
#include "util.h"

/* One open directory fd per level while archiving. */
#define TAR_CREATE_MAX_DEPTH 256
#define TAR_READ_BLOCK (64 * 1024)
#define LIBARCHIVE_SONAME "libarchive.so.13"

/* ---- libarchive, loaded on first use ----------------------------------- */

/* Written once by load_libarchive (under pthread_once), read-only after. */
static struct tar_libarchive la;
static char la_failure[256]; /* why loading failed; "" once loaded */
static pthread_once_t la_once = PTHREAD_ONCE_INIT;

static void load_libarchive(void)
{
  /* RTLD_LOCAL: its symbols (and libxml2's) stay out of the global scope.
   * The handle is never closed. */
  void *h = dlopen(LIBARCHIVE_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    const char *why = dlerror();
    snprintf(la_failure, sizeof la_failure, "%s",
             why != NULL ? why : "cannot load " LIBARCHIVE_SONAME);
    return;
  }
  struct tar_libarchive t;
#define RESOLVE(f)                                                             \
  if ((t.f = (__typeof__(t.f))dlsym(h, #f)) == NULL) {                         \
    snprintf(la_failure, sizeof la_failure, "%s has no %s", LIBARCHIVE_SONAME, \
             #f);                                                              \
    dlclose(h);                                                                \
    return;                                                                    \
  }
  TAR_LIBARCHIVE_FUNCS(RESOLVE)
#undef RESOLVE
  la = t;
}

const struct tar_libarchive *tar_libarchive(struct sp_error **err)
{
  pthread_once(&la_once, load_libarchive);
  if (la_failure[0] != '\0') {
    sp_error_code(err, "ARCHIVE_UNAVAILABLE", 500,
                  "Archives are not available: %s", la_failure);
    return NULL;
  }
  return &la;
}

/* ---- helpers ----------------------------------------------------------- */

static void archive_read_cleanup(struct archive **a)
{
  if (*a != NULL)
    la.archive_read_free(*a);
}

static void archive_write_cleanup(struct archive **a)
{
  if (*a != NULL)
    la.archive_write_free(*a);
}

static void archive_entry_cleanup(struct archive_entry **e)
{
  if (*e != NULL)
    la.archive_entry_free(*e);
}

#define cleanup_archive_read __attribute__((cleanup(archive_read_cleanup)))
#define cleanup_archive_write __attribute__((cleanup(archive_write_cleanup)))
#define cleanup_archive_entry __attribute__((cleanup(archive_entry_cleanup)))

static const char *archive_msg(struct archive *a)
{
  const char *s = la.archive_error_string(a);
  return s != NULL ? s : "unknown error";
}

static int unsafe(struct sp_error **err, const char *name, const char *fmt,
                  ...) __attribute__((format(printf, 3, 4)));

static int unsafe(struct sp_error **err, const char *name, const char *fmt,
                  ...)
{
  va_list ap;
  va_start(ap, fmt);
  cleanup_free char *why = xvasprintf(fmt, ap);
  va_end(ap);
  return sp_error_code(err, "UNSAFE_ARCHIVE_ENTRY", 400,
                       "Unsafe archive entry '%s': %s", name, why);
}

/* ---- extract ----------------------------------------------------------- */

/* The archive path without empty and "." components ("" for the root
 * itself), or NULL with *why if it is absolute or has a ".." component. */
static char *normalize_name(const char *name, const char **why)
{
  if (name[0] == '/') {
    *why = "absolute path";
    return NULL;
  }
  struct sbuf out = SBUF_INIT;
  const char *p = name;
  while (*p != '\0') {
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == 2 && p[0] == '.' && p[1] == '.') {
      sbuf_release(&out);
      *why = "path has a '..' component";
      return NULL;
    }
    if (n > 0 && !(n == 1 && p[0] == '.')) {
      if (out.len > 0)
        sbuf_addch(&out, '/');
      sbuf_add(&out, p, n);
    }
    p += n;
    if (*p == '/')
      p++;
  }
  return sbuf_detach(&out, NULL);
}

/* Whether the symlink target, resolved lexically from the directory of the
 * (normalized) link path rel, stays under the root. */
static bool link_stays_inside(const char *rel, const char *target)
{
  if (target[0] == '/')
    return false;
  long depth = 0;
  for (const char *s = rel; *s; s++)
    if (*s == '/')
      depth++;
  const char *p = target;
  while (*p != '\0') {
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == 2 && p[0] == '.' && p[1] == '.') {
      if (--depth < 0)
        return false;
    } else if (n > 0 && !(n == 1 && p[0] == '.')) {
      depth++;
    }
    p += n;
    if (*p == '/')
      p++;
  }
  return true;
}

/* Whether a component of rel before its last one is a symlink under
 * rootfd: 1 with *bad_len set to the length of that prefix, 0 if not (a
 * missing component ends the walk: nothing below it exists), -1 with errno
 * on other errors. */
static int through_symlink(int rootfd, const char *rel, size_t *bad_len)
{
  cleanup_close int cur =
      openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cur < 0)
    return -1;
  const char *p = rel;
  for (;;) {
    const char *end = strchr(p, '/');
    if (end == NULL)
      return 0; /* the last component */
    size_t n = (size_t)(end - p);
    char comp[NAME_MAX + 1];
    if (n > NAME_MAX) {
      errno = ENAMETOOLONG;
      return -1;
    }
    memcpy(comp, p, n);
    comp[n] = '\0';
    struct stat st;
    if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) < 0)
      return errno == ENOENT ? 0 : -1;
    if (S_ISLNK(st.st_mode)) {
      *bad_len = (size_t)(end - rel);
      return 1;
    }
    if (!S_ISDIR(st.st_mode))
      return 0; /* creating below a file fails on its own */
    int next = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0)
      return errno == ENOENT ? 0 : -1;
    close(cur);
    cur = next;
    p = end + 1;
  }
}

struct extract {
  struct archive *in;
  struct archive *disk;
  struct tar_limits lim;
  struct tar_stats stats;
  const char *root; /* realpath of dest_dir */
  int rootfd;
  /* The parent directory last found free of symlinks, valid while no
   * symlink or hard link entry has been written since. */
  char *checked_parent;
  uint64_t links_made, checked_at;
};

static int too_large(struct sp_error **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int too_large(struct sp_error **err, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  sp_error_vcode(err, "ARCHIVE_TOO_LARGE", 413, 0, fmt, ap);
  va_end(ap);
  return -1;
}

static int check_ratio(struct extract *x, const char *name,
                       struct sp_error **err)
{
  int64_t out = la.archive_filter_bytes(x->in, 0);
  int64_t in = la.archive_filter_bytes(x->in, -1);
  if (out < (int64_t)TAR_RATIO_MIN_BYTES || in <= 0)
    return 0;
  if ((double)out / (double)in <= x->lim.max_ratio)
    return 0;
  return too_large(err,
                   "Archive expands more than %.0f times (%lld bytes from "
                   "%lld compressed bytes) at entry '%s'",
                   x->lim.max_ratio, (long long)out, (long long)in, name);
}

/* An error from archive_write_disk about entry `name`.  Its own security
 * refusals carry no errno. */
static int disk_error(struct extract *x, const char *name,
                      struct sp_error **err)
{
  int e = la.archive_errno(x->disk);
  if (e > 0)
    return sp_error_set(err, e, "cannot extract '%s' (%s)", name,
                        archive_msg(x->disk));
  return unsafe(err, name, "%s", archive_msg(x->disk));
}

/* Refuse rel if a directory on its way is a symlink. */
static int check_no_symlink_on_way(struct extract *x, const char *name,
                                   const char *rel, const char *what,
                                   struct sp_error **err)
{
  size_t bad = 0;
  int r = through_symlink(x->rootfd, rel, &bad);
  if (r < 0)
    return sp_error_set(err, errno, "cannot extract '%s'", name);
  if (r > 0)
    return unsafe(err, name, "%s goes through the symlink '%.*s'", what,
                  (int)bad, rel);
  return 0;
}

static int check_parent(struct extract *x, const char *name, const char *rel,
                        struct sp_error **err)
{
  const char *slash = strrchr(rel, '/');
  if (slash == NULL)
    return 0;
  size_t plen = (size_t)(slash - rel);
  if (x->checked_parent != NULL && x->checked_at == x->links_made &&
      strlen(x->checked_parent) == plen &&
      memcmp(x->checked_parent, rel, plen) == 0)
    return 0;
  if (check_no_symlink_on_way(x, name, rel, "path", err) < 0)
    return -1;
  free(x->checked_parent);
  x->checked_parent = xstrndup(rel, plen);
  x->checked_at = x->links_made;
  return 0;
}

/* The checks that depend only on the entry, and the rewrite of its names to
 * absolute paths under the root.  *skip is set for the root entry ("./"). */
static int prepare_entry(struct extract *x, struct archive_entry *entry,
                         const char *name, char **rel_out, bool *skip,
                         struct sp_error **err)
{
  const char *why = NULL;
  cleanup_free char *rel = normalize_name(name, &why);
  if (rel == NULL)
    return unsafe(err, name, "%s", why);

  const char *hardlink = la.archive_entry_hardlink(entry);
  cleanup_free char *link_rel = NULL;
  if (hardlink != NULL) {
    if (hardlink[0] == '\0')
      return unsafe(err, name, "empty hard link target");
    link_rel = normalize_name(hardlink, &why);
    if (link_rel == NULL)
      return unsafe(err, name, "hard link target '%s': %s", hardlink, why);
    if (link_rel[0] == '\0')
      return unsafe(err, name, "hard link to the destination directory");
  } else {
    switch (la.archive_entry_filetype(entry)) {
    case AE_IFREG:
    case AE_IFDIR:
      break;
    case AE_IFLNK: {
      const char *target = la.archive_entry_symlink(entry);
      if (target == NULL || target[0] == '\0')
        return unsafe(err, name, "empty symlink target");
      if (target[0] == '/')
        return unsafe(err, name, "symlink target '%s' is absolute", target);
      if (rel[0] == '\0' || !link_stays_inside(rel, target))
        return unsafe(err, name,
                      "symlink target '%s' points outside the destination",
                      target);
      break;
    }
    case AE_IFCHR:
    case AE_IFBLK:
      return unsafe(err, name, "device nodes are not extracted");
    case AE_IFIFO:
      return unsafe(err, name, "FIFOs are not extracted");
    case AE_IFSOCK:
      return unsafe(err, name, "sockets are not extracted");
    default:
      return unsafe(err, name, "unknown entry type");
    }
  }

  if (rel[0] == '\0') {
    *skip = true; /* the destination itself */
    return 0;
  }
  /* archive_write_disk chdir()s along paths of PATH_MAX or more, which
   * would move the whole process's working directory. */
  size_t root_len = strlen(x->root) + 1;
  if (root_len + strlen(rel) >= PATH_MAX ||
      (link_rel != NULL && root_len + strlen(link_rel) >= PATH_MAX))
    return unsafe(err, name, "path is too long (at most %zu bytes here)",
                  (size_t)PATH_MAX - 1 - root_len);
  if (check_parent(x, name, rel, err) < 0)
    return -1;
  if (link_rel != NULL &&
      check_no_symlink_on_way(x, name, link_rel, "hard link target", err) < 0)
    return -1;
  /* A hard link to a symlink is that symlink in another directory, where
   * its relative target may lead out of the destination. */
  struct stat lst;
  if (link_rel != NULL && fstatat(x->rootfd, link_rel, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISLNK(lst.st_mode))
    return unsafe(err, name, "hard link target '%s' is a symlink", hardlink);

  int64_t size = la.archive_entry_size(entry);
  if (la.archive_entry_size_is_set(entry) && size > 0) {
    if ((uint64_t)size > x->lim.max_entry_bytes)
      return too_large(err,
                       "Archive entry '%s' is too large (%lld bytes, the "
                       "limit is %llu bytes)",
                       name, (long long)size,
                       (unsigned long long)x->lim.max_entry_bytes);
    if ((uint64_t)size > x->lim.max_total_bytes - x->stats.bytes)
      return too_large(err,
                       "Archive is too large: entry '%s' would take it over "
                       "%llu bytes",
                       name, (unsigned long long)x->lim.max_total_bytes);
  }

  cleanup_free char *full = xasprintf("%s/%s", x->root, rel);
  la.archive_entry_copy_pathname(entry, full);
  if (link_rel != NULL) {
    cleanup_free char *full_link = xasprintf("%s/%s", x->root, link_rel);
    la.archive_entry_copy_hardlink(entry, full_link);
  }
  la.archive_entry_set_perm(entry, la.archive_entry_perm(entry) & 0777);
  if (hardlink != NULL || la.archive_entry_filetype(entry) == AE_IFLNK)
    x->links_made++;
  *rel_out = steal_pointer(&rel);
  return 0;
}

static int copy_data(struct extract *x, const char *name,
                     struct sp_error **err)
{
  uint64_t entry_bytes = 0;
  for (;;) {
    const void *buf;
    size_t size;
    la_int64_t offset;
    int r = la.archive_read_data_block(x->in, &buf, &size, &offset);
    if (r == ARCHIVE_EOF)
      return 0;
    if (r < ARCHIVE_WARN)
      return sp_error_code(err, "INVALID_ARCHIVE", 400,
                           "Corrupt archive at entry '%s': %s", name,
                           archive_msg(x->in));
    entry_bytes += size;
    x->stats.bytes += size;
    if (entry_bytes > x->lim.max_entry_bytes || offset < 0 ||
        (uint64_t)offset + size > x->lim.max_entry_bytes)
      return too_large(err,
                       "Archive entry '%s' is too large (more than %llu "
                       "bytes)",
                       name, (unsigned long long)x->lim.max_entry_bytes);
    if (x->stats.bytes > x->lim.max_total_bytes)
      return too_large(err,
                       "Archive is too large: more than %llu bytes of data "
                       "at entry '%s'",
                       (unsigned long long)x->lim.max_total_bytes, name);
    if (check_ratio(x, name, err) < 0)
      return -1;
    if (size > 0 &&
        la.archive_write_data_block(x->disk, buf, size, offset) < ARCHIVE_WARN)
      return disk_error(x, name, err);
  }
}

static int extract_all(struct extract *x, struct sp_error **err)
{
  for (;;) {
    struct archive_entry *entry;
    int r = la.archive_read_next_header(x->in, &entry);
    if (r == ARCHIVE_EOF)
      break;
    if (r < ARCHIVE_WARN)
      return sp_error_code(err, "INVALID_ARCHIVE", 400,
                           "invalid archive after %llu entries: %s",
                           (unsigned long long)x->stats.entries,
                           archive_msg(x->in));
    x->stats.entries++;
    const char *p = la.archive_entry_pathname(entry);
    cleanup_free char *name = xstrdup(p != NULL ? p : "");
    if (p == NULL || name[0] == '\0')
      return sp_error_code(err, "INVALID_ARCHIVE", 400,
                           "invalid archive: entry %llu has no name",
                           (unsigned long long)x->stats.entries);
    if (x->stats.entries > x->lim.max_entries)
      return too_large(err,
                       "Archive has more than %llu entries (at entry '%s')",
                       (unsigned long long)x->lim.max_entries, name);
    if (check_ratio(x, name, err) < 0)
      return -1;
    bool skip = false;
    cleanup_free char *rel = NULL;
    if (prepare_entry(x, entry, name, &rel, &skip, err) < 0)
      return -1;
    if (skip)
      continue;
    if (la.archive_write_header(x->disk, entry) < ARCHIVE_WARN)
      return disk_error(x, name, err);
    if (copy_data(x, name, err) < 0) {
      /* libarchive would extend the file to the size in the header (with
       * a hole) when the entry is finished: remove it instead of leaving a
       * plausible-looking partial file. */
      la.archive_write_finish_entry(x->disk);
      if (la.archive_entry_filetype(entry) == AE_IFREG)
        unlinkat(x->rootfd, rel, 0);
      return -1;
    }
    if (la.archive_write_finish_entry(x->disk) < ARCHIVE_WARN)
      return disk_error(x, name, err);
  }
  /* Directory times are set at close. */
  if (la.archive_write_close(x->disk) < ARCHIVE_WARN)
    return disk_error(x, "(directory metadata)", err);
  return 0;
}

static int extract_into(int fd, const char *dest_dir,
                        const struct tar_limits *lim, struct tar_stats *st,
                        struct sp_error **err)
{
  struct extract x = {
      .lim = {TAR_DEFAULT_MAX_ENTRIES, TAR_DEFAULT_MAX_TOTAL_BYTES,
              TAR_DEFAULT_MAX_ENTRY_BYTES, TAR_DEFAULT_MAX_RATIO},
      .rootfd = -1,
  };
  if (st != NULL)
    memset(st, 0, sizeof *st);
  if (tar_libarchive(err) == NULL)
    return -1;
  if (lim != NULL) {
    if (lim->max_entries)
      x.lim.max_entries = lim->max_entries;
    if (lim->max_total_bytes)
      x.lim.max_total_bytes = lim->max_total_bytes;
    if (lim->max_entry_bytes)
      x.lim.max_entry_bytes = lim->max_entry_bytes;
    if (lim->max_ratio > 0)
      x.lim.max_ratio = lim->max_ratio;
  }

  if (sp_mkdir_p(dest_dir, 0755, err) < 0)
    return -1;
  /* archive_write_disk's symlink check refuses symlinks anywhere on an
   * entry's path, including in dest_dir itself: use the resolved path. */
  cleanup_free char *root = realpath(dest_dir, NULL);
  if (root == NULL)
    return sp_error_set(err, errno, "cannot extract into %s", dest_dir);
  if (strcmp(root, "/") == 0)
    root[0] = '\0'; /* so that "%s/%s" does not start with "//" */
  cleanup_close int rootfd =
      open(root[0] ? root : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return sp_error_set(err, errno, "cannot extract into %s", dest_dir);

  cleanup_archive_read struct archive *in = la.archive_read_new();
  cleanup_archive_write struct archive *disk = la.archive_write_disk_new();
  if (in == NULL || disk == NULL)
    return sp_error_set(err, ENOMEM, "cannot extract into %s", dest_dir);
  /* gzip through zlib (never an external program), the tar formats only. */
  if (la.archive_read_support_filter_gzip(in) != ARCHIVE_OK ||
      la.archive_read_support_format_tar(in) != ARCHIVE_OK)
    return sp_error_code(err, "INTERNAL_ERROR", 500,
                         "libarchive cannot read gzip or tar: %s",
                         archive_msg(in));
  /* Not ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS: names are made absolute
   * (under root) here, after being checked.  Not _OWNER, _PERM, _UNLINK:
   * the extracting user owns the files, the umask applies, and existing
   * files are overwritten in place. */
  la.archive_write_disk_set_options(disk, ARCHIVE_EXTRACT_TIME |
                                              ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                              ARCHIVE_EXTRACT_SECURE_NODOTDOT);
  if (la.archive_read_open_fd(in, fd, TAR_READ_BLOCK) != ARCHIVE_OK)
    return sp_error_code(err, "INVALID_ARCHIVE", 400, "invalid archive: %s",
                         archive_msg(in));

  x.in = in;
  x.disk = disk;
  x.root = root;
  x.rootfd = rootfd;
  int rc = extract_all(&x, err);
  free(x.checked_parent);
  if (st != NULL)
    *st = x.stats;
  return rc;
}

int tar_extract(int fd, const char *dest_dir, const struct tar_limits *lim,
                struct tar_stats *st, struct sp_error **err)
{
  if (extract_into(fd, dest_dir, lim, st, err) == 0)
    return 0;
  sp_error_context(err, "path", dest_dir);
  return -1;
}

/* ---- create ------------------------------------------------------------ */

struct create {
  struct archive *out;
  struct archive_entry_linkresolver *links;
  struct tar_stats stats;
  const char *src;
};

static int write_error(struct create *c, const char *rel,
                       struct sp_error **err)
{
  int e = la.archive_errno(c->out);
  if (e > 0)
    return sp_error_set(err, e, "cannot write the archive at '%s' (%s)", rel,
                        archive_msg(c->out));
  return sp_error_code(err, "INTERNAL_ERROR", 500,
                       "cannot write the archive at '%s': %s", rel,
                       archive_msg(c->out));
}

static int add_file_data(struct create *c, int fd, int64_t size,
                         const char *rel, struct sp_error **err)
{
  char buf[64 * 1024];
  int64_t left = size;
  /* Stop at the size in the header even if the file grows; if it shrinks,
   * libarchive pads the entry with zeros. */
  while (left > 0) {
    size_t want = left < (int64_t)sizeof buf ? (size_t)left : sizeof buf;
    ssize_t n = read(fd, buf, want);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return sp_error_set(err, errno, "cannot read %s/%s", c->src, rel);
    }
    if (n == 0)
      break;
    if (la.archive_write_data(c->out, buf, (size_t)n) < 0)
      return write_error(c, rel, err);
    left -= n;
    c->stats.bytes += (uint64_t)n;
  }
  return 0;
}

static int add_tree(struct create *c, int dfd, const char *prefix, int depth,
                    struct sp_error **err);

static int add_entry(struct create *c, int dfd, const char *name,
                     const char *rel, int depth, struct sp_error **err)
{
  struct stat st;
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT)
      return 0; /* removed meanwhile */
    return sp_error_set(err, errno, "cannot archive %s/%s", c->src, rel);
  }
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
    return 0; /* FIFOs, sockets, devices */

  cleanup_close int fd = -1;
  cleanup_archive_entry struct archive_entry *entry = la.archive_entry_new();
  cleanup_free char *target = NULL;
  if (S_ISREG(st.st_mode)) {
    fd = openat(dfd, name,
                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT)
        return 0;
      return sp_error_set(err, errno, "cannot archive %s/%s", c->src, rel);
    }
    if (fstat(fd, &st) < 0)
      return sp_error_set(err, errno, "cannot archive %s/%s", c->src, rel);
    if (!S_ISREG(st.st_mode))
      return 0; /* swapped for something else */
  } else if (S_ISLNK(st.st_mode)) {
    size_t cap = (size_t)st.st_size + 2;
    for (;;) {
      target = xrealloc(target, cap);
      ssize_t n = readlinkat(dfd, name, target, cap);
      if (n < 0)
        return sp_error_set(err, errno, "cannot archive %s/%s", c->src, rel);
      if ((size_t)n < cap) {
        target[n] = '\0';
        break;
      }
      cap *= 2;
    }
  }

  la.archive_entry_copy_stat(entry, &st);
  la.archive_entry_copy_pathname(entry, rel);
  if (target != NULL)
    la.archive_entry_copy_symlink(entry, target);
  if (!S_ISREG(st.st_mode))
    la.archive_entry_set_size(entry, 0);
  if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
    struct archive_entry *spare = NULL;
    /* The tar strategy turns a second sighting into a hard link entry
     * without data, in place; it never defers. */
    la.archive_entry_linkify(c->links, &entry, &spare);
  }
  if (la.archive_write_header(c->out, entry) < ARCHIVE_WARN)
    return write_error(c, rel, err);
  c->stats.entries++;
  if (S_ISREG(st.st_mode) && la.archive_entry_hardlink(entry) == NULL &&
      add_file_data(c, fd, st.st_size, rel, err) < 0)
    return -1;
  if (la.archive_write_finish_entry(c->out) < ARCHIVE_WARN)
    return write_error(c, rel, err);

  if (S_ISDIR(st.st_mode)) {
    if (depth + 1 >= TAR_CREATE_MAX_DEPTH)
      return sp_error_code(err, "FILESYSTEM_ERROR", 500,
                           "cannot archive %s/%s: more than %d directory "
                           "levels",
                           c->src, rel, TAR_CREATE_MAX_DEPTH);
    cleanup_close int sub =
        openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0)
      return sp_error_set(err, errno, "cannot archive %s/%s", c->src, rel);
    return add_tree(c, sub, rel, depth + 1, err);
  }
  return 0;
}

static int add_tree(struct create *c, int dfd, const char *prefix, int depth,
                    struct sp_error **err)
{
  struct sp_names names;
  if (sp_dir_names(dfd, &names) < 0)
    return sp_error_set(err, errno, "cannot archive %s%s%s", c->src,
                        prefix[0] ? "/" : "", prefix);
  int rc = 0;
  for (size_t i = 0; i < names.n && rc == 0; i++) {
    cleanup_free char *rel = prefix[0]
                                 ? xasprintf("%s/%s", prefix, names.v[i])
                                 : xstrdup(names.v[i]);
    rc = add_entry(c, dfd, names.v[i], rel, depth, err);
  }
  sp_names_release(&names);
  return rc;
}

static int create_from(const char *src_dir, int out_fd, struct tar_stats *st,
                       struct sp_error **err)
{
  if (st != NULL)
    memset(st, 0, sizeof *st);
  if (tar_libarchive(err) == NULL)
    return -1;
  cleanup_close int dfd = open(src_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    int e = errno;
    struct stat sb;
    if (e == ENOTDIR && stat(src_dir, &sb) == 0)
      return sp_error_code(err, "NOT_DIRECTORY", 400, "Not a directory: %s",
                           src_dir);
    if (e == ENOENT || e == ENOTDIR)
      return sp_error_code(err, "FILE_NOT_FOUND", 404,
                           "Directory not found: %s", src_dir);
    return sp_error_set(err, e, "cannot archive %s", src_dir);
  }

  cleanup_archive_write struct archive *out = la.archive_write_new();
  if (out == NULL)
    return sp_error_set(err, ENOMEM, "cannot archive %s", src_dir);
  if (la.archive_write_set_format_pax_restricted(out) != ARCHIVE_OK ||
      la.archive_write_open_fd(out, out_fd) != ARCHIVE_OK)
    return sp_error_code(err, "INTERNAL_ERROR", 500,
                         "cannot start the archive of %s: %s", src_dir,
                         archive_msg(out));
  struct archive_entry_linkresolver *links =
      la.archive_entry_linkresolver_new();
  if (links == NULL)
    return sp_error_set(err, ENOMEM, "cannot archive %s", src_dir);
  la.archive_entry_linkresolver_set_strategy(links, la.archive_format(out));

  struct create c = {.out = out, .links = links, .src = src_dir};
  int rc = add_tree(&c, dfd, "", 0, err);
  la.archive_entry_linkresolver_free(links);
  if (rc == 0 && la.archive_write_close(out) < ARCHIVE_WARN)
    rc = write_error(&c, "(end of archive)", err);
  if (st != NULL)
    *st = c.stats;
  return rc;
}

int tar_create(const char *src_dir, int out_fd, struct tar_stats *st,
               struct sp_error **err)
{
  if (create_from(src_dir, out_fd, st, err) == 0)
    return 0;
  sp_error_context(err, "path", src_dir);
  return -1;
}
