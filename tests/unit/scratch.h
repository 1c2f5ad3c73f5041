/* A scratch directory for each test, and paths inside it.  Check runs
 * each test in its own forked child, so setup makes a fresh one and
 * teardown removes it. */
#ifndef SP_SCRATCH_H
#define SP_SCRATCH_H

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

static char scratch[PATH_MAX] __attribute__((unused));

/* Makes "/tmp/<prefix>-XXXXXX", reachable by an unprivileged identity. */
static inline void scratch_make(const char *prefix)
{
  snprintf(scratch, sizeof scratch, "/tmp/%s-XXXXXX", prefix);
  ck_assert_ptr_nonnull(mkdtemp(scratch));
  chmod(scratch, 0755);
}

/* "<scratch>/<fmt...>" in one of a few rotating static buffers: copy it
 * to keep it across more than a few calls. */
static inline const char *P(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline const char *P(const char *fmt, ...)
{
  static char bufs[8][PATH_MAX];
  static int next;
  char *b = bufs[next++ % 8];
  int n = snprintf(b, PATH_MAX, "%s/", scratch);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b + n, PATH_MAX - (size_t)n, fmt, ap);
  va_end(ap);
  return b;
}

static inline int scratch_rm_one(const char *path, const struct stat *st, int flag,
                                 struct FTW *ftw)
{
  (void)st;
  (void)ftw;
  if (flag == FTW_DP)
    rmdir(path);
  else
    unlink(path);
  return 0;
}

/* Removes a tree the tests made; anything outside /tmp and /dev/shm is
 * left alone. */
static inline void rm_rf(const char *path)
{
  if (path && (strncmp(path, "/tmp/", 5) == 0 || strncmp(path, "/dev/shm/", 9) == 0))
    nftw(path, scratch_rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

/* Write a file of the test's (0644, replacing it). */
static inline void put(const char *path, const void *data, size_t len)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(sp_write_all(fd, data, len), 0);
  close(fd);
}

/* The whole file, NUL-terminated; *len if not NULL. */
static inline char *slurp(const char *path, size_t *len)
{
  struct sp_error *err = NULL;
  char *s = sp_read_file(path, 0, len, &err);
  ck_assert_ptr_null(err);
  return s;
}

/* The file holds exactly the text want. */
static inline void assert_file_text(const char *path, const char *want)
{
  char *got = slurp(path, NULL);
  ck_assert_str_eq(got, want);
  free(got);
}

/* The file holds exactly want[0..len). */
static inline void assert_file_bytes(const char *path, const void *want, size_t len)
{
  size_t n;
  char *got = slurp(path, &n);
  ck_assert_uint_eq(n, len);
  ck_assert_mem_eq(got, want, len);
  free(got);
}

/* Whether path names anything, a dangling link included. */
static inline bool exists_l(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0;
}

#endif
