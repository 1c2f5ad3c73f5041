/* What the fuzz targets share: the libFuzzer entry points, a checked
 * assertion, copies of the input and a scratch directory per process.
 *
 * Each tests/fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput; this header
 * defines LLVMFuzzerInitialize (see FUZZ_INIT below).  A broken property is reported
 * with FUZZ_ASSERT, which aborts: libFuzzer saves the input as a crash. */
#ifndef SP_FUZZ_H
#define SP_FUZZ_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_ASSERT(cond, ...)                                                 \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz: %s:%d: %s: ", __FILE__, __LINE__, #cond);         \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* The input as a NUL-terminated string (it may hold NULs of its own). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
  char *s = malloc(size + 1);
  FUZZ_ASSERT(s != NULL, "out of memory");
  if (size)
    memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

/* The input exactly, in a block of its own size, so that reading one byte
 * past it is an overflow ASan reports. */
static inline char *fuzz_copy(const uint8_t *data, size_t size)
{
  char *s = malloc(size ? size : 1);
  FUZZ_ASSERT(s != NULL, "out of memory");
  if (size)
    memcpy(s, data, size);
  return s;
}

/* Split the input at its first NUL byte: the part before it is returned,
 * NUL-terminated, in a block of its own, and *rest, *rest_size are what
 * follows the NUL (nothing when there is none). */
static inline char *fuzz_split(const uint8_t *data, size_t size, const uint8_t **rest,
                               size_t *rest_size)
{
  const uint8_t *nul = memchr(data, '\0', size);
  size_t n = nul ? (size_t)(nul - data) : size;
  *rest = nul ? nul + 1 : data + size;
  *rest_size = nul ? size - n - 1 : 0;
  return fuzz_cstr(data, n);
}

/* A directory of this process's under $TMPDIR (or /tmp), made once;
 * removed at exit. */
static char fuzz_scratch_dir[PATH_MAX];

static inline void fuzz_rm_at(int dfd, const char *name)
{
  struct stat st;
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return;
  if (S_ISDIR(st.st_mode)) {
    /* a directory an archive made unreadable must still be emptied */
    fchmodat(dfd, name, 0700, 0);
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      DIR *d = fdopendir(fd);
      if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
          if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            fuzz_rm_at(fd, e->d_name);
        closedir(d);
      } else {
        close(fd);
      }
    }
    unlinkat(dfd, name, AT_REMOVEDIR);
  } else {
    unlinkat(dfd, name, 0);
  }
}

/* Remove the tree at path (never following a symlink out of it). */
static inline void fuzz_rm_rf(const char *path) { fuzz_rm_at(AT_FDCWD, path); }

static inline void fuzz_scratch_remove(void) { fuzz_rm_rf(fuzz_scratch_dir); }

static inline const char *fuzz_scratch(void)
{
  if (fuzz_scratch_dir[0] == '\0') {
    const char *tmp = getenv("TMPDIR");
    snprintf(fuzz_scratch_dir, sizeof fuzz_scratch_dir, "%s/sandpit-fuzz-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    FUZZ_ASSERT(mkdtemp(fuzz_scratch_dir) != NULL, "mkdtemp %s: %s", fuzz_scratch_dir,
                strerror(errno));
    atexit(fuzz_scratch_remove);
  }
  return fuzz_scratch_dir;
}

/* Logging is quieted to errors; a target defining FUZZ_INIT gets its
 * fuzz_init() called once, before the first input. */
#ifdef FUZZ_INIT
static void fuzz_init(void);
#endif
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  sp_log_set_level(SP_LOG_ERROR);
#ifdef FUZZ_INIT
  fuzz_init();
#endif
  return 0;
}

#endif
