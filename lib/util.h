/* Clocks, files and small system helpers shared by every program.
 * Allocation and cleanup attributes are in alloc.h, included here. */
#ifndef SP_UTIL_H
#define SP_UTIL_H

#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "alloc.h"

struct sp_error;


/* Milliseconds since an arbitrary point (CLOCK_MONOTONIC). */
int64_t sp_monotonic_ms(void);
/* Microseconds since an arbitrary point (CLOCK_MONOTONIC). */
int64_t sp_monotonic_us(void);
/* The absolute CLOCK_MONOTONIC time ms from now, for waits on a condition
 * variable made by sp_cond_init (the project's one clock for deadlines). */
struct timespec;
void sp_deadline_after(struct timespec *ts, int64_t ms);
/* A condition variable whose timed waits use CLOCK_MONOTONIC. */
void sp_cond_init(pthread_cond_t *cv);
/* Milliseconds since the epoch (CLOCK_REALTIME). */
int64_t sp_now_ms(void);
/* ISO 8601 UTC with milliseconds, "2026-01-02T03:04:05.678Z"; buf >= 32. */
char *sp_iso8601(int64_t epoch_ms, char *buf, size_t len);

int sp_set_nonblock(int fd, bool on);
/* Write all of buf, retrying on EINTR and short writes.  -1 with errno. */
int sp_write_all(int fd, const void *buf, size_t len);
/* Read fd to its end, into a NUL-terminated buffer first sized for hint
 * bytes.  NULL with errno: EFBIG past max bytes (0: no limit), or read's;
 * *len is the count read, on failure too. */
char *sp_read_fd(int fd, size_t hint, size_t max, size_t *len);
/* Read a whole file, at most max bytes (0 = no limit).  NUL-terminated. */
char *sp_read_file(const char *path, size_t max, size_t *len_out,
                   struct sp_error **err);
/* Write a file atomically: temporary name in the same directory, fsync,
 * rename. */
int sp_write_file_atomic(const char *path, const void *buf, size_t len,
                         mode_t mode, struct sp_error **err);
/* The names in directory dfd but "." and "..", sorted by strcmp (dfd
 * stays open).  -1 with errno, and nothing in *out. */
struct sp_names {
  char **v;
  size_t n, cap;
};
int sp_dir_names(int dfd, struct sp_names *out);
void sp_names_release(struct sp_names *l);
/* An exclusive lock on directory dir for as long as this process lives:
 * a record lock on dir/name, which also holds this process's pid as text.
 * Children do not inherit it, and the kernel drops it when the process
 * ends, however it ends.  The lock file's descriptor (keep it open), or -1
 * with *err: DIRECTORY_IN_USE (409) naming the directory and the pid that
 * holds it. */
int sp_lock_dir(const char *dir, const char *name, struct sp_error **err);
/* Writes text into an existing file in one write, as the kernel's control
 * files (cgroupfs, /proc/PID/oom_score_adj) take it: no temporary file, no
 * rename.  System calls only: safe between fork (or vfork) and exec.  -1
 * with errno. */
int sp_write_control(const char *path, const char *text);
/* Moves the calling process into a cgroup: its pid into procs_file (a
 * cgroup.procs).  System calls only, no allocation: safe between fork (or
 * vfork) and exec.  -1 with errno. */
int sp_cgroup_enter(const char *procs_file);
/* mkdir -p; existing directories are fine. */
int sp_mkdir_p(const char *path, mode_t mode, struct sp_error **err);

/* n random characters of [a-z0-9] and a NUL into out (n + 1 bytes), from
 * the kernel's generator, without modulo bias.  -1 with *err if the kernel
 * gives no randomness (never a weaker fallback: these are secrets). */
int sp_random_token(char *out, size_t n, struct sp_error **err);

#define SP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SP_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
