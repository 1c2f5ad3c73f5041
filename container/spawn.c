#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "sysfilter.h"
#include "util.h"

extern char **environ;

enum { STAGE_CHDIR = 1, STAGE_USER, STAGE_EXEC, STAGE_IO, STAGE_FILTER };

struct child_failure {
  int stage;
  int errnum;
};

/* Close every descriptor from 3 up, but `keep` (which is >= 3). */
static void close_all_but(int keep)
{
  if (keep > 3 && syscall(SYS_close_range, 3, keep - 1, 0) < 0)
    for (int fd = 3; fd < keep; fd++)
      close(fd);
  if (syscall(SYS_close_range, keep + 1, ~0U, 0) < 0)
    for (int fd = keep + 1; fd < 65536; fd++)
      close(fd);
}

/* Close every descriptor from 3 up but `a` (== 3) and `b` (> 3). */
static void close_all_but_two(int a, int b)
{
  if (b > a + 1 && syscall(SYS_close_range, a + 1, b - 1, 0) < 0)
    for (int fd = a + 1; fd < b; fd++)
      close(fd);
  if (syscall(SYS_close_range, b + 1, ~0U, 0) < 0)
    for (int fd = b + 1; fd < 65536; fd++)
      close(fd);
}

/* The child runs after vfork(): it shares the parent's memory until it
 * execs, so it makes system calls only, and the identity changes are raw
 * system calls (glibc's setuid() would try to signal the parent's threads).
 * Handlers reset themselves at exec; ignored signals must be reset here. */
static void __attribute__((noreturn))
child(const struct spawn_opts *o, int in_fd, int out_fd, int err_fd, int report_fd,
      char *const *argv)
{
  struct child_failure f = {0};
  sigset_t none;
  sigemptyset(&none);
  static const int ignorable[] = {SIGPIPE, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTSTP,
                                  SIGTTIN, SIGTTOU, SIGCHLD, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof ignorable / sizeof ignorable[0]; i++) {
    struct sigaction sa = {.sa_handler = SIG_DFL};
    sigaction(ignorable[i], &sa, NULL);
  }
  sigprocmask(SIG_SETMASK, &none, NULL);
  setsid();
  if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) {
    f.stage = STAGE_IO;
    goto fail;
  }
  if (o->extra_fd > 0) {
    /* Descriptor 3 is the caller's; keep our failure pipe clear of it. */
    if (report_fd == 3) {
      int moved = fcntl(report_fd, F_DUPFD_CLOEXEC, 4);
      if (moved < 0) {
        f.stage = STAGE_IO;
        goto fail;
      }
      report_fd = moved;
    }
    if (o->extra_fd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(o->extra_fd, 3) < 0) {
      f.stage = STAGE_IO;
      goto fail;
    }
    close_all_but_two(3, report_fd);
  } else {
    close_all_but(report_fd);
  }
  /* Under memory pressure the kernel should pick a command, not the
   * monitor: raising one's own score needs no privilege
   * (done before the user changes: /proc/self is root's after that). */
  if (sp_write_control("/proc/self/oom_score_adj", "500") < 0) {
    /* the default score stays */
  }
  /* while still root: the sandbox's own groups (a share of the CPU) */
  for (char *const *c = o->cgroups; c && *c; c++)
    sp_cgroup_enter(*c);
  if (o->set_user) {
    /* Counted per user: a fork bomb in one sandbox stops at its own limit. */
    if (o->nproc_limit > 0) {
      struct rlimit rl = {(rlim_t)o->nproc_limit, (rlim_t)o->nproc_limit};
      syscall(SYS_prlimit64, 0, RLIMIT_NPROC, &rl, NULL);
    }
    if (syscall(SYS_setgroups, 0, NULL) < 0 ||
        syscall(SYS_setresgid, o->gid, o->gid, o->gid) < 0 ||
        syscall(SYS_setresuid, o->uid, o->uid, o->uid) < 0) {
      f.stage = STAGE_USER;
      goto fail;
    }
  }
  if (o->cwd && chdir(o->cwd) < 0) {
    f.stage = STAGE_CHDIR;
    goto fail;
  }
  /* last: nothing of the monitor's own runs under the filter */
  if (seccomp_filter_ready() && seccomp_filter_install() < 0) {
    f.stage = STAGE_FILTER;
    goto fail;
  }
  if (o->argv)
    execve(o->argv[0], o->argv, o->envp ? o->envp : environ);
  else
    execve(o->shell ? o->shell : "/bin/sh", argv, o->envp ? o->envp : environ);
  f.stage = STAGE_EXEC;
fail:
  f.errnum = errno;
  if (write(report_fd, &f, sizeof f) < 0) {
    /* the parent sees EOF and an exit status of 127 */
  }
  _exit(127);
}

/* vfork: no copy of the parent's page tables, which a threaded daemon with
 * a few hundred megabytes mapped would otherwise pay for every command.  In
 * a function of its own, so no variable of the caller lives across it. */
static pid_t __attribute__((noinline))
start_child(const struct spawn_opts *o, int in_fd, int out_fd, int err_fd, int report_fd,
            char *const *argv)
{
  pid_t pid = vfork();
  if (pid == 0)
    child(o, in_fd, out_fd, err_fd, report_fd, argv);
  return pid;
}

int sp_spawn(const struct spawn_opts *o, struct spawn_result *res,
             struct sp_error **err)
{
  int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1}, rep[2] = {-1, -1};
  int devnull = -1;
  int rc = -1;
  /* argv[0] names the shell: bash started as "sh" would run in POSIX mode */
  const char *shell = o->shell ? o->shell : "/bin/sh";
  const char *base = strrchr(shell, '/') ? strrchr(shell, '/') + 1 : shell;
  char *argv[] = {(char *)base, (char *)"-c", (char *)o->command, (char *)base, (char *)o->arg,
                  NULL};
  if (o->arg == NULL)
    argv[3] = NULL;

  if (o->stdin_pipe) {
    if (pipe2(in, O_CLOEXEC) < 0) {
      sp_error_set(err, errno, "pipe");
      goto out;
    }
  } else {
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) {
      sp_error_set(err, errno, "open /dev/null");
      goto out;
    }
  }
  if (pipe2(out, O_CLOEXEC) < 0 || (!o->merge_stderr && pipe2(errp, O_CLOEXEC) < 0) ||
      pipe2(rep, O_CLOEXEC) < 0) {
    sp_error_set(err, errno, "pipe");
    goto out;
  }
  pid_t pid = start_child(o, o->stdin_pipe ? in[0] : devnull, out[1],
                          o->merge_stderr ? out[1] : errp[1], rep[1], argv);
  if (pid < 0) {
    sp_error_code(err, errno == EAGAIN ? "RESOURCE_EXHAUSTED" : "INTERNAL_ERROR",
                  errno == EAGAIN ? 503 : 500, "cannot fork: %s", strerror(errno));
    goto out;
  }

  close(rep[1]);
  rep[1] = -1;
  struct child_failure f;
  ssize_t n;
  do
    n = read(rep[0], &f, sizeof f);
  while (n < 0 && errno == EINTR);
  if (n == (ssize_t)sizeof f) {
    /* The child reports and exits 127; the reaper collects it. */
    switch (f.stage) {
    case STAGE_CHDIR:
      sp_error_set(err, f.errnum, "cannot change to directory '%s'", o->cwd);
      break;
    case STAGE_USER:
      sp_error_set(err, f.errnum, "cannot switch to uid %u", (unsigned)o->uid);
      break;
    case STAGE_FILTER:
      sp_error_set(err, f.errnum, "cannot install the system call filter");
      break;
    case STAGE_EXEC:
      sp_error_set(err, f.errnum, "cannot execute %s",
                   o->argv ? o->argv[0] : o->shell ? o->shell : "/bin/sh");
      break;
    default: sp_error_set(err, f.errnum, "cannot set up the child's standard I/O"); break;
    }
    goto out;
  }
  res->pid = pid;
  res->stdin_fd = -1;
  res->stderr_fd = -1;
  if (o->stdin_pipe) {
    res->stdin_fd = in[1];
    in[1] = -1;
    sp_set_nonblock(res->stdin_fd, true);
  }
  res->stdout_fd = out[0];
  out[0] = -1;
  sp_set_nonblock(res->stdout_fd, true);
  if (!o->merge_stderr) {
    res->stderr_fd = errp[0];
    errp[0] = -1;
    sp_set_nonblock(res->stderr_fd, true);
  }
  rc = 0;
out:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0) close(in[i]);
    if (out[i] >= 0) close(out[i]);
    if (errp[i] >= 0) close(errp[i]);
    if (rep[i] >= 0) close(rep[i]);
  }
  if (devnull >= 0)
    close(devnull);
  return rc;
}
