#include <check.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "error.h"
#include "spawn.h"
#include "str.h"

static void read_all(int fd, struct sbuf *sb)
{
  char buf[4096];
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    poll(&p, 1, 5000);
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      sbuf_add(sb, buf, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EAGAIN)
      continue;
    break;
  }
}

START_TEST(runs_in_its_own_group_with_pipes)
{
  struct spawn_opts o = {.command = "echo out; echo err >&2; ps -o pgid= -p $$; exit 7",
                         .cwd = "/tmp"};
  struct spawn_result r;
  struct sp_error *err = NULL;
  ck_assert_int_eq(sp_spawn(&o, &r, &err), 0);
  struct sbuf out = SBUF_INIT, errs = SBUF_INIT;
  read_all(r.stdout_fd, &out);
  read_all(r.stderr_fd, &errs);
  int st;
  ck_assert_int_eq(waitpid(r.pid, &st, 0), r.pid);
  ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 7);
  /* ps pads the pgid with spaces */
  ck_assert(strncmp(out.buf, "out\n", 4) == 0);
  ck_assert_int_eq(atoi(out.buf + 4), r.pid);
  ck_assert_str_eq(errs.buf, "err\n");
  close(r.stdout_fd);
  close(r.stderr_fd);
  sbuf_release(&out);
  sbuf_release(&errs);
}
END_TEST

START_TEST(stdin_pipe_and_env)
{
  char *envp[] = {(char *)"GREETING=hi there", (char *)"PATH=/usr/bin:/bin", NULL};
  struct spawn_opts o = {.command = "read x; echo \"$GREETING/$x\"", .envp = envp,
                         .stdin_pipe = true, .merge_stderr = true};
  struct spawn_result r;
  struct sp_error *err = NULL;
  ck_assert_int_eq(sp_spawn(&o, &r, &err), 0);
  ck_assert_int_eq(r.stderr_fd, -1);
  ck_assert_int_eq(write(r.stdin_fd, "typed\n", 6), 6);
  close(r.stdin_fd);
  struct sbuf out = SBUF_INIT;
  read_all(r.stdout_fd, &out);
  ck_assert_str_eq(out.buf, "hi there/typed\n");
  int st;
  waitpid(r.pid, &st, 0);
  close(r.stdout_fd);
  sbuf_release(&out);
}
END_TEST

START_TEST(bad_cwd_is_an_error_not_a_dead_child)
{
  struct spawn_opts o = {.command = "true", .cwd = "/nonexistent/dir"};
  struct spawn_result r;
  struct sp_error *err = NULL;
  ck_assert_int_eq(sp_spawn(&o, &r, &err), -1);
  ck_assert_str_eq(err->code, "FILE_NOT_FOUND");
  ck_assert(strstr(err->msg, "/nonexistent/dir") != NULL);
  sp_error_free(err);
  while (waitpid(-1, NULL, 0) > 0) {
  }
}
END_TEST

START_TEST(no_descriptor_leaks)
{
  struct spawn_opts o = {.command = "ls /proc/self/fd | wc -l"};
  struct spawn_result r;
  struct sp_error *err = NULL;
  ck_assert_int_eq(sp_spawn(&o, &r, &err), 0);
  struct sbuf out = SBUF_INIT;
  read_all(r.stdout_fd, &out);
  waitpid(r.pid, NULL, 0);
  /* 0, 1, 2 and the one ls opens for the directory */
  ck_assert_int_eq(atoi(out.buf), 4);
  close(r.stdout_fd);
  close(r.stderr_fd);
  sbuf_release(&out);
}
END_TEST

CHECK_MAIN_ONE_TCASE("spawn", "core", 10, NULL, NULL, runs_in_its_own_group_with_pipes,
                     stdin_pipe_and_env, bad_cwd_is_an_error_not_a_dead_child, no_descriptor_leaks)
