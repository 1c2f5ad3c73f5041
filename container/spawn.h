/* Spawning a command in its own session and process group.
 *
 * The child's stdin is a pipe (when asked) or /dev/null; stdout and stderr
 * are pipes.  Signals are reset to defaults and unblocked in the child, every
 * descriptor but 0-2 is closed, and a failure before exec (bad cwd, user
 * switch, exec) is reported to the caller as an error instead of a dead
 * child.  The caller reaps the child (the supervisor reaps everything). */
#ifndef SP_SPAWN_H
#define SP_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

struct sp_error;

struct spawn_opts {
  const char *command;  /* run as SHELL -c COMMAND [ARG] ... */
  char *const *argv;    /* ... or, when set, execute argv[0] (an absolute path) */
  const char *shell;    /* NULL: /bin/sh */
  const char *arg;      /* NULL, or the command's $1 ($0 is "sh") */
  int extra_fd;         /* > 0: given to the child as descriptor 3; 0: none */
  const char *cwd;      /* NULL: inherit */
  char *const *envp;    /* full environment; NULL: inherit */
  bool set_user;        /* switch to uid/gid (supplementary groups cleared) */
  uid_t uid;
  gid_t gid;
  long nproc_limit;     /* > 0 with set_user: RLIMIT_NPROC for that user */
  char *const *cgroups; /* cgroup.procs files the child enters first (NULL-terminated), or NULL */
  bool stdin_pipe;      /* give the caller a pipe to the child's stdin */
  bool merge_stderr;    /* stderr goes to the stdout pipe */
};

struct spawn_result {
  pid_t pid;            /* also the process group id */
  int stdin_fd;         /* -1 unless stdin_pipe */
  int stdout_fd;
  int stderr_fd;        /* -1 when merge_stderr */
};

/* The returned descriptors are close-on-exec and non-blocking. */
int sp_spawn(const struct spawn_opts *o, struct spawn_result *res,
             struct sp_error **err);

#endif
