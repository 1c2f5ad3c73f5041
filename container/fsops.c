#include "fsops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "json.h"
#include "str.h"
#include "util.h"

/* A recursive delete or cross-filesystem copy holds one directory fd per
 * level; this keeps it well inside the usual 1024-descriptor limit. */
#define FSOPS_WALK_MAX_DEPTH 256
#define SNIFF_BYTES 8192

/* An error with an explicit code whose message is exactly fmt (no
 * strerror suffix, so the SDK's messages can be reproduced), remembering
 * errnum. */
static int fs_error(struct sp_error **err, int errnum, const char *code,
                    int status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fs_error(struct sp_error **err, int errnum, const char *code,
                    int status, const char *fmt, ...)
{
  if (err == NULL || *err != NULL)
    return -1;
  va_list ap;
  va_start(ap, fmt);
  sp_error_vcode(err, code, status, 0, fmt, ap);
  va_end(ap);
  (*err)->errnum = errnum;
  return -1;
}

static int not_found(struct sp_error **err, int errnum, const char *what,
                     const char *path)
{
  return fs_error(err, errnum, "FILE_NOT_FOUND", 404, "%s not found: %s", what,
                  path);
}

/* Split an absolute path into its parent directory and last component,
 * ignoring trailing slashes (*trailing says there were some).  The last
 * component of "/" is "". */
static void split_path(const char *path, char **dir, char **base,
                       bool *trailing)
{
  size_t len = strlen(path);
  bool slash = false;
  while (len > 1 && path[len - 1] == '/') {
    len--;
    slash = true;
  }
  size_t i = len;
  while (i > 0 && path[i - 1] != '/')
    i--;
  *base = xstrndup(path + i, len - i);
  size_t dlen = i;
  while (dlen > 1 && path[dlen - 1] == '/')
    dlen--;
  *dir = dlen == 0 ? xstrdup(".") : xstrndup(path, dlen);
  if (trailing)
    *trailing = slash;
}

static bool is_dot_or_dotdot(const char *name)
{
  return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

static uint64_t random_u64(void)
{
  uint64_t r;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r)
    return r;
  static _Atomic uint64_t counter;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
         ((uint64_t)getpid() << 40) ^ ++counter;
}

/* ---- path validation --------------------------------------------------- */

int fsops_check_path(const char *path, size_t len, struct sp_error **err)
{
  if (path == NULL || len == 0)
    return sp_error_code(err, "VALIDATION_FAILED", 400, "Path is required");
  if (len > FSOPS_PATH_MAX)
    return sp_error_code(err, "VALIDATION_FAILED", 400,
                         "Path is too long (%zu bytes, at most %d)", len,
                         FSOPS_PATH_MAX);
  if (memchr(path, '\0', len) != NULL)
    return sp_error_code(err, "VALIDATION_FAILED", 400,
                         "Path must not contain NUL bytes");
  if (path[0] != '/')
    return sp_error_code(err, "VALIDATION_FAILED", 400,
                         "Path must be absolute: %.*s", (int)len, path);
  return 0;
}

/* ---- MIME types -------------------------------------------------------- */

struct mime_ext {
  const char *ext;
  const char *mime;
  bool text;
};

static const struct mime_ext mime_table[] = {
    /* text */
    {"txt", "text/plain", true},
    {"text", "text/plain", true},
    {"log", "text/plain", true},
    {"md", "text/markdown", true},
    {"markdown", "text/markdown", true},
    {"mdx", "text/markdown", true},
    {"html", "text/html", true},
    {"htm", "text/html", true},
    {"css", "text/css", true},
    {"scss", "text/x-scss", true},
    {"sass", "text/x-sass", true},
    {"less", "text/x-less", true},
    {"csv", "text/csv", true},
    {"tsv", "text/tab-separated-values", true},
    {"js", "text/javascript", true},
    {"mjs", "text/javascript", true},
    {"cjs", "text/javascript", true},
    {"jsx", "text/jsx", true},
    {"ts", "application/typescript", true},
    {"mts", "application/typescript", true},
    {"cts", "application/typescript", true},
    {"tsx", "text/tsx", true},
    {"json", "application/json", true},
    {"jsonc", "application/json", true},
    {"json5", "application/json5", true},
    {"map", "application/json", true},
    {"webmanifest", "application/manifest+json", true},
    {"xml", "application/xml", true},
    {"xhtml", "application/xhtml+xml", true},
    {"svg", "image/svg+xml", true},
    {"yaml", "application/yaml", true},
    {"yml", "application/yaml", true},
    {"toml", "application/toml", true},
    {"ini", "text/plain", true},
    {"cfg", "text/plain", true},
    {"conf", "text/plain", true},
    {"env", "text/plain", true},
    {"sql", "application/sql", true},
    {"graphql", "application/graphql", true},
    {"gql", "application/graphql", true},
    {"sh", "application/x-sh", true},
    {"bash", "application/x-sh", true},
    {"zsh", "application/x-sh", true},
    {"py", "text/x-python", true},
    {"rb", "text/x-ruby", true},
    {"php", "application/x-httpd-php", true},
    {"pl", "text/x-perl", true},
    {"lua", "text/x-lua", true},
    {"go", "text/x-go", true},
    {"rs", "text/x-rust", true},
    {"c", "text/x-c", true},
    {"h", "text/x-c", true},
    {"cc", "text/x-c++", true},
    {"cpp", "text/x-c++", true},
    {"hpp", "text/x-c++", true},
    {"java", "text/x-java", true},
    {"kt", "text/x-kotlin", true},
    {"swift", "text/x-swift", true},
    {"vue", "text/x-vue", true},
    {"svelte", "text/x-svelte", true},
    {"astro", "text/x-astro", true},
    {"diff", "text/x-diff", true},
    {"patch", "text/x-diff", true},
    /* binary */
    {"png", "image/png", false},
    {"jpg", "image/jpeg", false},
    {"jpeg", "image/jpeg", false},
    {"gif", "image/gif", false},
    {"webp", "image/webp", false},
    {"avif", "image/avif", false},
    {"bmp", "image/bmp", false},
    {"ico", "image/x-icon", false},
    {"tif", "image/tiff", false},
    {"tiff", "image/tiff", false},
    {"pdf", "application/pdf", false},
    {"zip", "application/zip", false},
    {"gz", "application/gzip", false},
    {"tgz", "application/gzip", false},
    {"tar", "application/x-tar", false},
    {"bz2", "application/x-bzip2", false},
    {"xz", "application/x-xz", false},
    {"zst", "application/zstd", false},
    {"7z", "application/x-7z-compressed", false},
    {"rar", "application/vnd.rar", false},
    {"wasm", "application/wasm", false},
    {"woff", "font/woff", false},
    {"woff2", "font/woff2", false},
    {"ttf", "font/ttf", false},
    {"otf", "font/otf", false},
    {"eot", "application/vnd.ms-fontobject", false},
    {"mp3", "audio/mpeg", false},
    {"wav", "audio/wav", false},
    {"ogg", "audio/ogg", false},
    {"flac", "audio/flac", false},
    {"mp4", "video/mp4", false},
    {"webm", "video/webm", false},
    {"mov", "video/quicktime", false},
    {"sqlite", "application/vnd.sqlite3", false},
    {"db", "application/octet-stream", false},
    {"bin", "application/octet-stream", false},
    {"exe", "application/octet-stream", false},
    {"so", "application/octet-stream", false},
    {"o", "application/octet-stream", false},
    {"a", "application/octet-stream", false},
    {"class", "application/java-vm", false},
    {"jar", "application/java-archive", false},
    {"pyc", "application/octet-stream", false},
    {"node", "application/octet-stream", false},
};

/* Length of the prefix of p that does not end in an incomplete UTF-8
 * sequence (bytes cut off by a buffer boundary). */
static size_t utf8_complete_prefix(const unsigned char *p, size_t n)
{
  for (size_t i = 1; i <= 3 && i <= n; i++) {
    unsigned char c = p[n - i];
    if ((c & 0xc0) == 0x80)
      continue;
    if (c < 0xc0)
      return n;
    size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    return need > i ? n - i : n;
  }
  return n;
}

const char *fsops_mime_type(const char *path, const void *head, size_t head_len,
                            bool *is_text)
{
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  const char *dot = strrchr(base, '.');
  if (dot != NULL && dot != base && dot[1] != '\0') {
    for (size_t i = 0; i < SP_ARRAY_SIZE(mime_table); i++) {
      if (strcasecmp(dot + 1, mime_table[i].ext) == 0) {
        *is_text = mime_table[i].text;
        return mime_table[i].mime;
      }
    }
  }
  size_t n = SP_MIN(head_len, (size_t)SNIFF_BYTES);
  const unsigned char *p = head;
  if (n == 0 || (memchr(p, '\0', n) == NULL &&
                 str_is_utf8((const char *)p, utf8_complete_prefix(p, n)))) {
    *is_text = true;
    return "text/plain";
  }
  *is_text = false;
  return "application/octet-stream";
}

/* ---- read -------------------------------------------------------------- */

void fs_file_release(struct fs_file *f)
{
  if (f == NULL)
    return;
  free(f->data);
  memset(f, 0, sizeof *f);
}

static int check_readable_type(const char *path, const struct stat *st,
                               struct sp_error **err)
{
  if (S_ISREG(st->st_mode))
    return 0;
  if (S_ISDIR(st->st_mode))
    return fs_error(err, EISDIR, "IS_DIRECTORY", 400,
                    "cannot read a directory: %s", path);
  const char *kind = S_ISFIFO(st->st_mode)   ? "a FIFO"
                     : S_ISSOCK(st->st_mode) ? "a socket"
                     : S_ISCHR(st->st_mode)  ? "a character device"
                     : S_ISBLK(st->st_mode)  ? "a block device"
                                             : "not a regular file";
  return fs_error(err, EINVAL, "NOT_REGULAR_FILE", 400,
                  "cannot read %s: %s is %s", path, path, kind);
}

static int read_open_error(struct sp_error **err, int e, const char *path)
{
  if (e == ENOENT || e == ENOTDIR)
    return not_found(err, e, "File", path);
  return sp_error_set(err, e, "cannot read %s", path);
}

static int open_read(const char *path, int *fd_out, struct stat *st,
                     struct sp_error **err)
{
  /* stat first, so a device is refused without the side effects an open
   * can have; the fstat below closes the race with a swap. */
  if (stat(path, st) < 0)
    return read_open_error(err, errno, path);
  if (check_readable_type(path, st, err) < 0)
    return -1;
  /* O_NONBLOCK: if a FIFO is swapped in after the stat, the open does not
   * wait for a writer. */
  cleanup_close int fd =
      open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return read_open_error(err, errno, path);
  if (fstat(fd, st) < 0)
    return sp_error_set(err, errno, "cannot read %s", path);
  if (check_readable_type(path, st, err) < 0)
    return -1;
  if (sp_set_nonblock(fd, false) < 0)
    return sp_error_set(err, errno, "cannot read %s", path);
  *fd_out = fd;
  fd = -1;
  return 0;
}

/* The SDK's FILE_TOO_LARGE context has actualSize and maxSize. */
static int too_large(struct sp_error **err, const char *path,
                     unsigned long long size, bool exact, size_t max)
{
  fs_error(err, EFBIG, "FILE_TOO_LARGE", 413,
           "File too large: %s (%s%llu bytes, the limit is %zu bytes)", path,
           exact ? "" : "at least ", size, max);
  sp_error_context_int(err, "actualSize", (long long)size);
  sp_error_context_int(err, "maxSize", (long long)max);
  return -1;
}

static int read_file(const char *path, size_t max_bytes, struct fs_file *out,
                     struct sp_error **err)
{
  memset(out, 0, sizeof *out);
  struct stat st;
  int raw;
  if (open_read(path, &raw, &st, err) < 0)
    return -1;
  cleanup_close int fd = raw;
  if ((unsigned long long)st.st_size > max_bytes)
    return too_large(err, path, (unsigned long long)st.st_size, true,
                     max_bytes);

  /* The file may grow or shrink while we read; EOF is what counts. */
  size_t len;
  cleanup_free char *buf = sp_read_fd(fd, (size_t)st.st_size + 1, max_bytes, &len);
  if (buf == NULL && errno == EFBIG)
    return too_large(err, path, len, false, max_bytes);
  if (buf == NULL)
    return sp_error_set(err, errno, "cannot read %s", path);
  bool text;
  out->mime = fsops_mime_type(path, buf, len, &text);
  out->is_text = text && str_is_utf8(buf, len);
  out->len = len;
  out->data = steal_pointer(&buf);
  return 0;
}

/* ---- mkdir ------------------------------------------------------------- */

/* An existing non-directory at path itself is FILE_EXISTS (mkdir -p), or
 * NOT_DIRECTORY when path is wanted as the parent of something. */
static int not_a_dir(struct sp_error **err, const char *p, bool as_parent)
{
  if (as_parent)
    return fs_error(err, ENOTDIR, "NOT_DIRECTORY", 400,
                    "Not a directory: %s", p);
  return fs_error(err, EEXIST, "FILE_EXISTS", 409,
                  "Path already exists and is not a directory: %s", p);
}

static int mkdir_p(const char *path, bool as_parent, struct sp_error **err)
{
  cleanup_free char *p = xstrdup(path);
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/')
    p[--n] = '\0';
  struct stat st;
  if (stat(p, &st) == 0) {
    if (S_ISDIR(st.st_mode))
      return 0;
    return not_a_dir(err, p, as_parent);
  }
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0')
      continue;
    char c = *s;
    *s = '\0';
    if (s[-1] != '/' && mkdir(p, 0755) < 0 && errno != EEXIST)
      return sp_error_set(err, errno, "cannot create directory %s", p);
    if (c == '\0')
      break;
    *s = c;
  }
  if (stat(p, &st) < 0)
    return sp_error_set(err, errno, "cannot create directory %s", p);
  if (!S_ISDIR(st.st_mode))
    return not_a_dir(err, p, as_parent);
  return 0;
}

static int make_dir(const char *path, bool recursive, struct sp_error **err)
{
  if (recursive)
    return mkdir_p(path, false, err);
  if (mkdir(path, 0755) == 0)
    return 0;
  if (errno == EEXIST)
    return fs_error(err, EEXIST, "FILE_EXISTS", 409,
                    "Path already exists: %s", path);
  return sp_error_set(err, errno, "cannot create directory %s", path);
}

/* ---- write ------------------------------------------------------------- */

/* Create a file with a fresh random name in dfd: O_EXCL|O_NOFOLLOW, so
 * nothing that already exists, symlink or not, is opened. */
static int create_temp(int dfd, const char *tag, mode_t mode, char *name,
                       size_t name_len)
{
  for (int tries = 0;; tries++) {
    snprintf(name, name_len, ".sp-%s-%016llx.tmp", tag,
             (unsigned long long)random_u64());
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                   O_CLOEXEC, mode);
    if (fd >= 0 || errno != EEXIST || tries >= 16)
      return fd;
  }
}

static int write_file(const char *path, const void *data, size_t len,
                      bool make_parents, struct sp_error **err)
{
  cleanup_free char *dir = NULL;
  cleanup_free char *base = NULL;
  bool trailing;
  split_path(path, &dir, &base, &trailing);
  if (base[0] == '\0' || trailing || is_dot_or_dotdot(base))
    return fs_error(err, EISDIR, "IS_DIRECTORY", 400,
                    "cannot write to a directory: %s", path);
  if (make_parents && mkdir_p(dir, true, err) < 0)
    return -1;

  /* O_PATH: creating and renaming need search and write permission on the
   * directory, not read permission. */
  cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    if (errno == ENOENT)
      return not_found(err, ENOENT, "Parent directory", dir);
    return sp_error_set(err, errno, "cannot write %s", path);
  }

  struct stat st;
  bool exists = false;
  mode_t mode = 0644;
  if (fstatat(dfd, base, &st, 0) == 0) {
    if (S_ISDIR(st.st_mode))
      return fs_error(err, EISDIR, "IS_DIRECTORY", 400,
                      "cannot write to a directory: %s", path);
    exists = true;
    mode = st.st_mode & 0777;
  }

  char tmp[64];
  cleanup_close int fd = create_temp(dfd, "write", exists ? 0600 : 0644, tmp,
                                     sizeof tmp);
  if (fd < 0)
    return sp_error_set(err, errno, "cannot write %s", path);
  int e = 0;
  if (sp_write_all(fd, data, len) < 0 || (exists && fchmod(fd, mode) < 0))
    e = errno;
  int cfd = fd;
  fd = -1;
  if (close(cfd) < 0 && e == 0 && errno != EINTR)
    e = errno;
  if (e == 0 && renameat(dfd, tmp, dfd, base) < 0)
    e = errno;
  if (e != 0) {
    unlinkat(dfd, tmp, 0);
    return sp_error_set(err, e, "cannot write %s", path);
  }
  return 0;
}

/* ---- delete ------------------------------------------------------------ */

static int remove_tree_at(int pfd, const char *name, const char *display,
                          int depth, struct sp_error **err);

/* Remove everything inside the directory dfd. */
static int remove_contents(int dfd, const char *display, int depth,
                           struct sp_error **err)
{
  struct sp_names names;
  if (sp_dir_names(dfd, &names) < 0)
    return sp_error_set(err, errno, "cannot delete %s", display);
  int rc = 0;
  for (size_t i = 0; i < names.n && rc == 0; i++) {
    const char *name = names.v[i];
    /* unlink(2) never follows a symlink; on Linux it fails with EISDIR
     * for a directory, which is then removed through its own fd. */
    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
      continue;
    if (errno != EISDIR) {
      rc = sp_error_set(err, errno, "cannot delete %s/%s", display, name);
      break;
    }
    cleanup_free char *child = xasprintf("%s/%s", display, name);
    rc = remove_tree_at(dfd, name, child, depth + 1, err);
  }
  sp_names_release(&names);
  return rc;
}

/* Remove the directory `name` in pfd and everything below it.  The tree is
 * only ever reached through fds opened O_NOFOLLOW|O_DIRECTORY, so a symlink
 * put in place of a directory at any moment is unlinked, not followed. */
static int remove_tree_at(int pfd, const char *name, const char *display,
                          int depth, struct sp_error **err)
{
  if (depth > FSOPS_WALK_MAX_DEPTH)
    return fs_error(err, 0, "FILESYSTEM_ERROR", 500,
                    "cannot delete %s: more than %d directory levels",
                    display, FSOPS_WALK_MAX_DEPTH);
  /* Retried because entries may be created while we delete. */
  for (int attempt = 0; attempt < 4; attempt++) {
    cleanup_close int fd =
        openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT)
        return 0;
      if (errno == ELOOP || errno == ENOTDIR) {
        /* Swapped for a symlink or a file: remove that entry itself. */
        if (unlinkat(pfd, name, 0) == 0 || errno == ENOENT)
          return 0;
        if (errno == EISDIR)
          continue;
      }
      return sp_error_set(err, errno, "cannot delete %s", display);
    }
    if (remove_contents(fd, display, depth, err) < 0)
      return -1;
    if (unlinkat(pfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
      return 0;
    if (errno != ENOTEMPTY && errno != EEXIST)
      return sp_error_set(err, errno, "cannot delete %s", display);
  }
  return sp_error_set(err, ENOTEMPTY, "cannot delete %s", display);
}

/* Remove name in dfd, whatever it is; for cleaning up after ourselves. */
static void remove_any_at(int dfd, const char *name)
{
  if (unlinkat(dfd, name, 0) == 0 || errno != EISDIR)
    return;
  struct sp_error *ignored = NULL;
  remove_tree_at(dfd, name, name, 0, &ignored);
  sp_error_free(ignored);
}

static int delete_path(const char *path, bool recursive,
                       struct sp_error **err)
{
  cleanup_free char *dir = NULL;
  cleanup_free char *base = NULL;
  split_path(path, &dir, &base, NULL);
  if (base[0] == '\0')
    return sp_error_code(err, "VALIDATION_FAILED", 400,
                         "Refusing to delete the root directory");
  if (is_dot_or_dotdot(base))
    return sp_error_code(err, "VALIDATION_FAILED", 400,
                         "Refusing to delete a path ending in '.' or '..': %s",
                         path);
  cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return not_found(err, errno, "File", path);
    return sp_error_set(err, errno, "cannot delete %s", path);
  }
  struct stat st;
  if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return not_found(err, errno, "File", path);
    return sp_error_set(err, errno, "cannot delete %s", path);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dfd, base, 0) == 0)
      return 0;
    if (errno == ENOENT)
      return not_found(err, errno, "File", path);
    if (errno != EISDIR)
      return sp_error_set(err, errno, "cannot delete %s", path);
    /* replaced by a directory meanwhile: fall through */
  }
  if (!recursive)
    return fs_error(err, EISDIR, "IS_DIRECTORY", 400,
                    "Cannot delete directory with deleteFile() at '%s'. "
                    "Use exec('rm -rf %s') instead.",
                    path, path);
  return remove_tree_at(dfd, base, path, 0, err);
}

/* ---- rename ------------------------------------------------------------ */

static int copy_entry(int sfd, const char *sname, int dfd, const char *dname,
                      const char *display, int depth, struct sp_error **err);

static int copy_file_data(int in, int out)
{
  char buf[128 * 1024];
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (n == 0)
      return 0;
    if (sp_write_all(out, buf, (size_t)n) < 0)
      return -1;
  }
}

static int copy_regular(int sfd, const char *sname, int dfd, const char *dname,
                        const char *display, struct sp_error **err)
{
  cleanup_close int in = openat(
      sfd, sname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (in < 0)
    return sp_error_set(err, errno, "cannot copy %s", display);
  struct stat st;
  if (fstat(in, &st) < 0)
    return sp_error_set(err, errno, "cannot copy %s", display);
  if (!S_ISREG(st.st_mode))
    return fs_error(err, EINVAL, "NOT_REGULAR_FILE", 400,
                    "cannot copy %s: it changed while being copied", display);
  cleanup_close int out = openat(
      dfd, dname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0)
    return sp_error_set(err, errno, "cannot copy %s", display);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (copy_file_data(in, out) < 0 || fchmod(out, st.st_mode & 0777) < 0 ||
      futimens(out, times) < 0)
    return sp_error_set(err, errno, "cannot copy %s", display);
  int fd = out;
  out = -1;
  if (close(fd) < 0 && errno != EINTR)
    return sp_error_set(err, errno, "cannot copy %s", display);
  return 0;
}

static int copy_dir(int sfd, const char *sname, int dfd, const char *dname,
                    const char *display, int depth, struct sp_error **err)
{
  if (depth > FSOPS_WALK_MAX_DEPTH)
    return fs_error(err, 0, "FILESYSTEM_ERROR", 500,
                    "cannot copy %s: more than %d directory levels", display,
                    FSOPS_WALK_MAX_DEPTH);
  cleanup_close int src =
      openat(sfd, sname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (src < 0)
    return sp_error_set(err, errno, "cannot copy %s", display);
  struct stat st;
  if (fstat(src, &st) < 0)
    return sp_error_set(err, errno, "cannot copy %s", display);
  if (mkdirat(dfd, dname, 0700) < 0)
    return sp_error_set(err, errno, "cannot copy %s", display);
  cleanup_close int dst =
      openat(dfd, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dst < 0)
    return sp_error_set(err, errno, "cannot copy %s", display);
  struct sp_names names;
  if (sp_dir_names(src, &names) < 0)
    return sp_error_set(err, errno, "cannot copy %s", display);
  int rc = 0;
  for (size_t i = 0; i < names.n && rc == 0; i++) {
    cleanup_free char *child = xasprintf("%s/%s", display, names.v[i]);
    rc = copy_entry(src, names.v[i], dst, names.v[i], child, depth + 1, err);
  }
  sp_names_release(&names);
  if (rc < 0)
    return -1;
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (fchmod(dst, st.st_mode & 01777) < 0 || futimens(dst, times) < 0)
    return sp_error_set(err, errno, "cannot copy %s", display);
  return 0;
}

static int copy_symlink(int sfd, const char *sname, int dfd, const char *dname,
                        const struct stat *st, const char *display,
                        struct sp_error **err)
{
  size_t cap = (size_t)st->st_size + 2;
  cleanup_free char *target = NULL;
  for (;;) {
    target = xrealloc(target, cap);
    ssize_t n = readlinkat(sfd, sname, target, cap);
    if (n < 0)
      return sp_error_set(err, errno, "cannot copy %s", display);
    if ((size_t)n < cap) {
      target[n] = '\0';
      break;
    }
    cap *= 2;
  }
  if (symlinkat(target, dfd, dname) < 0)
    return sp_error_set(err, errno, "cannot copy %s", display);
  struct timespec times[2] = {st->st_atim, st->st_mtim};
  utimensat(dfd, dname, times, AT_SYMLINK_NOFOLLOW); /* best effort */
  return 0;
}

static int copy_entry(int sfd, const char *sname, int dfd, const char *dname,
                      const char *display, int depth, struct sp_error **err)
{
  struct stat st;
  if (fstatat(sfd, sname, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return sp_error_set(err, errno, "cannot copy %s", display);
  if (S_ISREG(st.st_mode))
    return copy_regular(sfd, sname, dfd, dname, display, err);
  if (S_ISDIR(st.st_mode))
    return copy_dir(sfd, sname, dfd, dname, display, depth, err);
  if (S_ISLNK(st.st_mode))
    return copy_symlink(sfd, sname, dfd, dname, &st, display, err);
  if (S_ISFIFO(st.st_mode)) {
    if (mkfifoat(dfd, dname, st.st_mode & 0777) < 0)
      return sp_error_set(err, errno, "cannot copy %s", display);
    return 0;
  }
  return fs_error(err, EINVAL, "NOT_REGULAR_FILE", 400,
                  "cannot move %s to another filesystem: it is a device or "
                  "socket",
                  display);
}

/* rename(2) across filesystems: copy next to the target, rename the copy
 * over it, delete the source. */
static int move_across(const char *from, const char *to, struct sp_error **err)
{
  cleanup_free char *fdir = NULL;
  cleanup_free char *fbase = NULL;
  cleanup_free char *tdir = NULL;
  cleanup_free char *tbase = NULL;
  split_path(from, &fdir, &fbase, NULL);
  split_path(to, &tdir, &tbase, NULL);
  if (fbase[0] == '\0' || is_dot_or_dotdot(fbase) || tbase[0] == '\0' ||
      is_dot_or_dotdot(tbase))
    return sp_error_set(err, EINVAL, "cannot move %s to %s", from, to);
  cleanup_close int sfd = open(fdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (sfd < 0)
    return sp_error_set(err, errno, "cannot move %s to %s", from, to);
  cleanup_close int dfd = open(tdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return sp_error_set(err, errno, "cannot move %s to %s", from, to);

  char tmp[64];
  snprintf(tmp, sizeof tmp, ".sp-move-%016llx.tmp",
           (unsigned long long)random_u64());
  if (copy_entry(sfd, fbase, dfd, tmp, from, 0, err) < 0) {
    remove_any_at(dfd, tmp);
    return sp_error_prefix(err, "cannot move %s to %s", from, to);
  }
  if (renameat(dfd, tmp, dfd, tbase) < 0) {
    int e = errno;
    remove_any_at(dfd, tmp);
    return sp_error_set(err, e, "cannot move %s to %s", from, to);
  }
  struct stat st;
  if (fstatat(sfd, fbase, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISDIR(st.st_mode)) {
    if (remove_tree_at(sfd, fbase, from, 0, err) < 0)
      return sp_error_prefix(err, "Copied %s to %s but", from, to);
  } else if (unlinkat(sfd, fbase, 0) < 0 && errno != ENOENT) {
    return sp_error_set(err, errno,
                        "Copied %s to %s but cannot delete the source", from,
                        to);
  }
  return 0;
}

static int rename_path(const char *from, const char *to,
                       struct sp_error **err)
{
  struct stat st;
  if (lstat(from, &st) < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return not_found(err, errno, "Source file", from);
    return sp_error_set(err, errno, "cannot move %s", from);
  }
  if (rename(from, to) == 0)
    return 0;
  if (errno != EXDEV)
    return sp_error_set(err, errno, "cannot move %s to %s", from, to);
  return move_across(from, to, err);
}

/* ---- exists ------------------------------------------------------------ */

static int exists_path(const char *path, bool *exists, bool *is_dir,
                       struct sp_error **err)
{
  struct stat st;
  *exists = false;
  if (is_dir)
    *is_dir = false;
  if (stat(path, &st) == 0) {
    *exists = true;
    if (is_dir)
      *is_dir = S_ISDIR(st.st_mode);
    return 0;
  }
  if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP ||
      errno == ENAMETOOLONG)
    return 0;
  return sp_error_set(err, errno, "cannot check %s", path);
}

/* ---- list -------------------------------------------------------------- */

struct list_entry {
  char *rel;        /* relative path, owned */
  const char *name; /* last component of rel */
  const char *type;
  long long size;
  struct timespec mtime;
  mode_t mode;
};

struct lister {
  bool recursive, include_hidden;
  size_t max;
  bool truncated;
  struct list_entry *v;
  size_t n, cap;
};

static void lister_add(struct lister *l, char *rel, const struct stat *st)
{
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 64;
    l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
  }
  struct list_entry *e = &l->v[l->n++];
  e->rel = rel;
  const char *slash = strrchr(rel, '/');
  e->name = slash ? slash + 1 : rel;
  e->type = S_ISREG(st->st_mode)   ? "file"
            : S_ISDIR(st->st_mode) ? "directory"
            : S_ISLNK(st->st_mode) ? "symlink"
                                   : "other";
  e->size = (long long)st->st_size;
  e->mtime = st->st_mtim;
  e->mode = st->st_mode;
}

/* List the directory dfd (whose path relative to the root is prefix, "" for
 * the root) into l; dfd stays open.  -1 with errno if dfd cannot be read. */
static int list_walk(struct lister *l, int dfd, const char *prefix, int depth)
{
  struct sp_names names;
  if (sp_dir_names(dfd, &names) < 0)
    return -1;
  for (size_t i = 0; i < names.n; i++) {
    const char *name = names.v[i];
    if (!l->include_hidden && name[0] == '.')
      continue;
    if (l->max != 0 && l->n >= l->max) {
      l->truncated = true;
      break;
    }
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue; /* gone meanwhile, or unreadable */
    char *rel = prefix[0] ? xasprintf("%s/%s", prefix, name) : xstrdup(name);
    lister_add(l, rel, &st);
    if (!l->recursive || !S_ISDIR(st.st_mode))
      continue;
    if (depth + 1 >= FSOPS_LIST_MAX_DEPTH) {
      l->truncated = true;
      continue;
    }
    cleanup_close int cfd =
        openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd >= 0)
      list_walk(l, cfd, rel, depth + 1);
  }
  sp_names_release(&names);
  return 0;
}

static int cmp_entry(const void *a, const void *b)
{
  return strcmp(((const struct list_entry *)a)->rel,
                ((const struct list_entry *)b)->rel);
}

static void format_time(const struct timespec *ts, char *buf, size_t len)
{
  time_t t = ts->tv_sec;
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(ts->tv_nsec / 1000000));
}

static void format_mode(mode_t m, char out[10])
{
  static const char rwx[] = "rwxrwxrwx";
  for (int i = 0; i < 9; i++)
    out[i] = (m & (0400 >> i)) ? rwx[i] : '-';
  out[9] = '\0';
}

static cJSON *entry_json(const char *root, const struct list_entry *e)
{
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", e->name);
  cleanup_free char *abs = xasprintf(
      "%s%s%s", root, str_ends_with(root, "/") ? "" : "/", e->rel);
  cJSON_AddStringToObject(o, "absolutePath", abs);
  cJSON_AddStringToObject(o, "relativePath", e->rel);
  cJSON_AddStringToObject(o, "type", e->type);
  json_add_int(o, "size", e->size);
  char when[96];
  format_time(&e->mtime, when, sizeof when);
  cJSON_AddStringToObject(o, "modifiedAt", when);
  char mode[10];
  format_mode(e->mode, mode);
  cJSON_AddStringToObject(o, "mode", mode);
  cJSON *perm = cJSON_AddObjectToObject(o, "permissions");
  cJSON_AddBoolToObject(perm, "readable", (e->mode & S_IRUSR) != 0);
  cJSON_AddBoolToObject(perm, "writable", (e->mode & S_IWUSR) != 0);
  cJSON_AddBoolToObject(perm, "executable", (e->mode & S_IXUSR) != 0);
  return o;
}

static cJSON *list_dir(const char *path, bool recursive, bool include_hidden,
                       size_t max_entries, bool *truncated,
                       struct sp_error **err)
{
  if (truncated)
    *truncated = false;
  cleanup_close int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    struct stat st;
    if (e == ENOTDIR && stat(path, &st) == 0) {
      fs_error(err, ENOTDIR, "NOT_DIRECTORY", 400, "Not a directory: %s",
               path);
      return NULL;
    }
    if (e == ENOENT || e == ENOTDIR)
      not_found(err, e, "Directory", path);
    else
      sp_error_set(err, e, "cannot list %s", path);
    return NULL;
  }

  struct lister l = {.recursive = recursive,
                     .include_hidden = include_hidden,
                     .max = max_entries};
  if (list_walk(&l, fd, "", 0) < 0) {
    sp_error_set(err, errno, "cannot list %s", path);
    for (size_t i = 0; i < l.n; i++)
      free(l.v[i].rel);
    free(l.v);
    return NULL;
  }
  if (l.n > 1)
    qsort(l.v, l.n, sizeof *l.v, cmp_entry);

  /* absolutePath is built from the path as given, without trailing '/'. */
  cleanup_free char *root = xstrdup(path);
  size_t rl = strlen(root);
  while (rl > 1 && root[rl - 1] == '/')
    root[--rl] = '\0';
  cJSON *arr = cJSON_CreateArray();
  for (size_t i = 0; i < l.n; i++) {
    cJSON_AddItemToArray(arr, entry_json(root, &l.v[i]));
    free(l.v[i].rel);
  }
  free(l.v);
  if (truncated)
    *truncated = l.truncated;
  return arr;
}

/* ---- entry points ------------------------------------------------------ */

/* Every error names its path in context.path, which the SDK's file error
 * classes read. */
static int with_path(int rc, struct sp_error **err, const char *path)
{
  if (rc < 0)
    sp_error_context(err, "path", path);
  return rc;
}

int fsops_open_read(const char *path, int *fd, struct stat *st,
                    struct sp_error **err)
{
  return with_path(open_read(path, fd, st, err), err, path);
}

int fsops_read(const char *path, size_t max_bytes, struct fs_file *out,
               struct sp_error **err)
{
  return with_path(read_file(path, max_bytes, out, err), err, path);
}

int fsops_write(const char *path, const void *data, size_t len,
                bool make_parents, struct sp_error **err)
{
  return with_path(write_file(path, data, len, make_parents, err), err, path);
}

int fsops_mkdir(const char *path, bool recursive, struct sp_error **err)
{
  return with_path(make_dir(path, recursive, err), err, path);
}

int fsops_delete(const char *path, bool recursive, struct sp_error **err)
{
  return with_path(delete_path(path, recursive, err), err, path);
}

int fsops_rename(const char *from, const char *to, struct sp_error **err)
{
  return with_path(rename_path(from, to, err), err, from);
}

int fsops_exists(const char *path, bool *exists, bool *is_dir,
                 struct sp_error **err)
{
  return with_path(exists_path(path, exists, is_dir, err), err, path);
}

cJSON *fsops_list(const char *path, bool recursive, bool include_hidden,
                  size_t max_entries, bool *truncated, struct sp_error **err)
{
  cJSON *arr =
      list_dir(path, recursive, include_hidden, max_entries, truncated, err);
  if (arr == NULL)
    sp_error_context(err, "path", path);
  return arr;
}
