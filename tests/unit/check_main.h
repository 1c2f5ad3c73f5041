/* A main() for Check suites: run with Check's normal output, so it prints
 * its own summary line, and exit non-zero on any failure. */
#ifndef SP_CHECK_MAIN_H
#define SP_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

#define CHECK_MAIN(suite_fn)                                                  \
  int main(void)                                                              \
  {                                                                           \
    SRunner *sr = srunner_create(suite_fn());                                 \
    srunner_run_all(sr, CK_NORMAL);                                           \
    int failed = srunner_ntests_failed(sr);                                   \
    srunner_free(sr);                                                         \
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;                              \
  }

#endif
