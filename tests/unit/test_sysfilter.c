/* Unit tests for container/sysfilter.c: a child under the filter is
 * refused the deny list's calls with EPERM (clone3 with ENOSYS) and keeps
 * everything else. */
#include <check.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "error.h"
#include "sysfilter.h"

/* The errno of nr(args) in a child under the filter (0: it succeeded), as
 * the child's exit status. */
static int in_child(long nr, long a0, long a1, long a2, long a3, long a4)
{
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    if (seccomp_filter_install() < 0)
      _exit(255);
    long r = syscall(nr, a0, a1, a2, a3, a4);
    _exit(r < 0 ? (errno & 0x7f) : 0);
  }
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 255, "the child could not install the filter");
  return WEXITSTATUS(st);
}

static void build(void)
{
  struct sp_error *err = NULL;
  if (!seccomp_filter_ready())
    ck_assert_msg(seccomp_filter_build(&err) == 0, "build: %s", err ? err->msg : "");
}

START_TEST(denied_calls)
{
  build();
  static const struct {
    const char *name;
    long nr;
  } rows[] = {
      {"mount", SYS_mount},     {"umount2", SYS_umount2},       {"pivot_root", SYS_pivot_root},
      {"swapon", SYS_swapon},   {"reboot", SYS_reboot},         {"init_module", SYS_init_module},
      {"keyctl", SYS_keyctl},   {"add_key", SYS_add_key},       {"bpf", SYS_bpf},
      {"setns", SYS_setns},     {"userfaultfd", SYS_userfaultfd}, {"perf_event_open", SYS_perf_event_open},
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
    ck_assert_msg(in_child(rows[i].nr, 0, 0, 0, 0, 0) == EPERM, "%s is not refused with EPERM",
                  rows[i].name);
  ck_assert_int_eq(in_child(SYS_unshare, CLONE_NEWUSER, 0, 0, 0, 0), EPERM);
#ifdef SYS_clone3
  ck_assert_int_eq(in_child(SYS_clone3, 0, 0, 0, 0, 0), ENOSYS);
#endif
}
END_TEST

START_TEST(others_pass)
{
  build();
  ck_assert_int_eq(in_child(SYS_getpid, 0, 0, 0, 0, 0), 0);
  /* unshare without CLONE_NEWUSER reaches the kernel, which decides */
  ck_assert_int_ne(in_child(SYS_unshare, CLONE_NEWUTS, 0, 0, 0, 0), ENOSYS);
  ck_assert_int_eq(in_child(SYS_unshare, 0, 0, 0, 0, 0), 0);
}
END_TEST

CHECK_MAIN_ONE_TCASE("sysfilter", "filter", 30, NULL, NULL, denied_calls, others_pass)
