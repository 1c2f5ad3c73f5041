#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

int64_t sp_monotonic_ms(void) { return sp_monotonic_us() / 1000; }

int64_t sp_monotonic_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sp_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *sp_iso8601(int64_t epoch_ms, char *buf, size_t len)
{
  time_t t = (time_t)(epoch_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(epoch_ms % 1000));
  return buf;
}

int sp_set_nonblock(int fd, bool on)
{
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0)
    return -1;
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  return fcntl(fd, F_SETFL, flags);
}

int sp_write_all(int fd, const void *buf, size_t len)
{
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

char *sp_read_fd(int fd, size_t hint, size_t max, size_t *len)
{
  size_t cap = hint > 0 && hint < SIZE_MAX / 4 ? hint : 4096;
  cleanup_free char *buf = xmalloc(cap + 1);
  *len = 0;
  for (;;) {
    if (*len == cap) {
      if (cap > SIZE_MAX / 4) {
        errno = EFBIG;
        return NULL;
      }
      cap *= 2;
      buf = xrealloc(buf, cap + 1);
    }
    ssize_t n = read(fd, buf + *len, cap - *len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return NULL;
    }
    if (n == 0)
      break;
    *len += (size_t)n;
    if (max != 0 && *len > max) {
      errno = EFBIG;
      return NULL;
    }
  }
  buf[*len] = '\0';
  return steal_pointer(&buf);
}

char *sp_read_file(const char *path, size_t max, size_t *len_out,
                   struct sp_error **err)
{
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    sp_error_set(err, errno, "cannot open %s", path);
    return NULL;
  }
  size_t len;
  char *buf = sp_read_fd(fd, 0, max, &len);
  if (buf == NULL && errno == EFBIG)
    sp_error_code(err, "FILE_TOO_LARGE", 413, "%s is larger than %zu bytes", path, max);
  else if (buf == NULL)
    sp_error_set(err, errno, "cannot read %s", path);
  else if (len_out)
    *len_out = len;
  return buf;
}

int sp_write_file_atomic(const char *path, const void *buf, size_t len,
                         mode_t mode, struct sp_error **err)
{
  cleanup_free char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
  cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return sp_error_set(err, errno, "cannot create %s", tmp);
  if (sp_write_all(fd, buf, len) < 0 || fsync(fd) < 0) {
    int e = errno;
    unlink(tmp);
    return sp_error_set(err, e, "cannot write %s", tmp);
  }
  if (rename(tmp, path) < 0) {
    int e = errno;
    unlink(tmp);
    return sp_error_set(err, e, "cannot rename %s to %s", tmp, path);
  }
  return 0;
}

int sp_lock_dir(const char *dir, const char *name, struct sp_error **err)
{
  cleanup_free char *path = xasprintf("%s/%s", dir, name);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return sp_error_set(err, errno, "cannot open the lock file %s", path);
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  if (fcntl(fd, F_SETLK, &fl) < 0) {
    int e = errno;
    struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    bool held = (e == EACCES || e == EAGAIN) && fcntl(fd, F_GETLK, &who) == 0 &&
                who.l_type != F_UNLCK;
    close(fd);
    if (held)
      return sp_error_code(err, "DIRECTORY_IN_USE", 409,
                           "the data directory %s is in use by pid %ld (its lock file %s)", dir,
                           (long)who.l_pid, path);
    return sp_error_set(err, e, "cannot lock %s", path);
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
    int e = errno;
    close(fd);
    return sp_error_set(err, e, "cannot write %s", path);
  }
  return fd;
}

int sp_write_control(const char *path, const char *text)
{
  size_t len = strlen(text);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t w = write(fd, text, len);
  int saved = errno;
  close(fd);
  errno = saved;
  return w == (ssize_t)len ? 0 : -1;
}

int sp_cgroup_enter(const char *procs_file)
{
  char pid[24], *e = pid + sizeof pid;
  unsigned long v = (unsigned long)getpid();
  *--e = '\0';
  do
    *--e = (char)('0' + v % 10);
  while ((v /= 10) > 0);
  return sp_write_control(procs_file, e);
}

int sp_mkdir_p(const char *path, mode_t mode, struct sp_error **err)
{
  cleanup_free char *p = xstrdup(path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/')
      continue;
    *s = '\0';
    if (mkdir(p, mode) < 0 && errno != EEXIST)
      return sp_error_set(err, errno, "cannot create directory %s", p);
    *s = '/';
  }
  if (mkdir(p, mode) < 0 && errno != EEXIST)
    return sp_error_set(err, errno, "cannot create directory %s", p);
  struct stat st;
  if (stat(p, &st) < 0)
    return sp_error_set(err, errno, "cannot stat %s", p);
  if (!S_ISDIR(st.st_mode))
    return sp_error_set(err, ENOTDIR, "%s", p);
  return 0;
}

int sp_random_token(char *out, size_t n, struct sp_error **err)
{
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  size_t k = 0;
  while (k < n) {
    unsigned char raw[64];
    ssize_t got = getrandom(raw, sizeof raw, 0);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      return sp_error_set(err, errno, "no randomness from the kernel");
    }
    /* 252 = 7 * 36: bytes above it would favour the first letters */
    for (ssize_t i = 0; i < got && k < n; i++)
      if (raw[i] < 252)
        out[k++] = alphabet[raw[i] % 36];
  }
  out[n] = '\0';
  return 0;
}

void sp_deadline_after(struct timespec *ts, int64_t ms)
{
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += (time_t)(ms / 1000);
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

void sp_cond_init(pthread_cond_t *cv)
{
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &ca);
  pthread_condattr_destroy(&ca);
}

void sp_names_release(struct sp_names *l)
{
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int sp_dir_names(int dfd, struct sp_names *out)
{
  memset(out, 0, sizeof *out);
  int fd = dup(dfd);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (d == NULL) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    errno = e;
    return -1;
  }
  rewinddir(d);
  int e = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (de == NULL) {
      e = errno;
      break;
    }
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if (out->n == out->cap) {
      out->cap = out->cap ? out->cap * 2 : 16;
      out->v = xreallocarray(out->v, out->cap, sizeof *out->v);
    }
    out->v[out->n++] = xstrdup(de->d_name);
  }
  closedir(d);
  if (e != 0) {
    sp_names_release(out);
    errno = e;
    return -1;
  }
  if (out->n > 1)
    qsort(out->v, out->n, sizeof *out->v, cmp_str);
  return 0;
}
