/* A main() for Check suites: run with Check's normal output, so it prints
 * its own summary line, and exit non-zero on any failure.
 *
 * A suite that cannot run some of its tests here (no Docker engine, say)
 * calls check_skip() while it builds itself, instead of registering a test
 * that passes.  The summary then says SKIPPED with the reason; under
 * CI=true, where every prerequisite must be there, the suite fails. */
#ifndef SP_CHECK_MAIN_H
#define SP_CHECK_MAIN_H

#include <check.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char check_skipped[1024];

/* Records why some tests were not registered (the last call wins). */
static inline void check_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void check_skip(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(check_skipped, sizeof check_skipped, fmt, ap);
  va_end(ap);
}

/* CI=true: the environment promises every prerequisite. */
static inline bool check_in_ci(void)
{
  const char *ci = getenv("CI");
  return ci != NULL && strcmp(ci, "true") == 0;
}

/* The exit status for a run with `failed` failures, after the summary
 * line Check printed. */
static inline int check_finish(int failed)
{
  if (check_skipped[0] != '\0') {
    printf("SKIPPED: %s\n", check_skipped);
    if (check_in_ci()) {
      printf("FAILED: CI=true, so tests that cannot run are a failure\n");
      failed++;
    }
  }
  fflush(stdout);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Adds to s a test case of tests[0..n), each run between setup and
 * teardown (NULL: none) in its own forked child. */
static inline TCase *check_add_tcase(Suite *s, const char *name, double timeout_s, SFun setup,
                                     SFun teardown, const TTest *const *tests, size_t n)
{
  TCase *t = tcase_create(name);
  tcase_set_timeout(t, timeout_s);
  if (setup || teardown)
    tcase_add_checked_fixture(t, setup, teardown);
  for (size_t i = 0; i < n; i++)
    tcase_add_test(t, tests[i]);
  suite_add_tcase(s, t);
  return t;
}

/* The tests[] and n arguments of check_add_tcase. */
#define CHECK_TESTS(...)                                                      \
  (const TTest *const[]){__VA_ARGS__},                                        \
      sizeof((const TTest *const[]){__VA_ARGS__}) / sizeof(const TTest *)

#define CHECK_MAIN(suite_fn)                                                  \
  int main(void)                                                              \
  {                                                                           \
    SRunner *sr = srunner_create(suite_fn());                                 \
    srunner_run_all(sr, CK_NORMAL);                                           \
    int failed = srunner_ntests_failed(sr);                                   \
    srunner_free(sr);                                                         \
    return check_finish(failed);                                              \
  }

/* A main() for a suite `name` of one test case `tcase` of the tests
 * named after the fixture (NULL, NULL: none). */
#define CHECK_MAIN_ONE_TCASE(name, tcase, timeout_s, setup, teardown, ...)    \
  static Suite *check_one_tcase_suite(void)                                   \
  {                                                                           \
    Suite *s = suite_create(name);                                            \
    check_add_tcase(s, tcase, timeout_s, setup, teardown,                     \
                    CHECK_TESTS(__VA_ARGS__));                                \
    return s;                                                                 \
  }                                                                           \
  CHECK_MAIN(check_one_tcase_suite)

#endif
