/* Unit tests of lib/error: the error contract (codes and statuses from
 * errno, the first error wins, context added on the way up, the fields of
 * an error body) and the one place an error is printed. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check_main.h"
#include "error.h"
#include "util.h"

START_TEST(set_without_errno_is_internal)
{
  struct sp_error *err = NULL;
  ck_assert_int_eq(sp_error_set(&err, 0, "cannot %s %d", "count", 3), -1);
  ck_assert_ptr_nonnull(err);
  ck_assert_str_eq(err->msg, "cannot count 3");
  ck_assert_str_eq(err->code, "INTERNAL_ERROR");
  ck_assert_int_eq(err->http_status, 500);
  ck_assert_int_eq(err->errnum, 0);
  ck_assert_ptr_null(err->context);
  sp_error_free(err);
}
END_TEST

/* What the SDK's client maps: each errno's code and status, and
 * strerror appended to the message. */
START_TEST(set_maps_errno)
{
  static const struct {
    int errnum;
    const char *code;
    int status;
  } want[] = {
      {ENOENT, "FILE_NOT_FOUND", 404},     {EACCES, "PERMISSION_DENIED", 403},
      {EPERM, "PERMISSION_DENIED", 403},   {EEXIST, "FILE_EXISTS", 409},
      {ENOTDIR, "NOT_DIRECTORY", 400},     {EISDIR, "IS_DIRECTORY", 400},
      {ENOTEMPTY, "DIRECTORY_NOT_EMPTY", 409}, {ENOSPC, "NO_SPACE", 507},
      {EDQUOT, "NO_SPACE", 507},           {ENAMETOOLONG, "NAME_TOO_LONG", 400},
      {ELOOP, "TOO_MANY_LINKS", 400},      {EROFS, "READ_ONLY", 403},
      {EBUSY, "RESOURCE_BUSY", 409},       {ETXTBSY, "RESOURCE_BUSY", 409},
      {EMFILE, "TOO_MANY_FILES", 500},     {ENFILE, "TOO_MANY_FILES", 500},
      {EFBIG, "FILE_TOO_LARGE", 413},      {EINVAL, "INVALID_REQUEST", 400},
      {EIO, "INTERNAL_ERROR", 500},        {ECONNRESET, "INTERNAL_ERROR", 500},
  };
  for (size_t i = 0; i < SP_ARRAY_SIZE(want); i++) {
    struct sp_error *err = NULL;
    ck_assert_int_eq(sp_error_set(&err, want[i].errnum, "cannot open %s", "/x"), -1);
    char *msg = xasprintf("cannot open /x: %s", strerror(want[i].errnum));
    ck_assert_str_eq(err->msg, msg);
    ck_assert_msg(strcmp(err->code, want[i].code) == 0, "errno %d: code %s, want %s",
                  want[i].errnum, err->code, want[i].code);
    ck_assert_int_eq(err->http_status, want[i].status);
    ck_assert_int_eq(err->errnum, want[i].errnum);
    free(msg);
    sp_error_free(err);
  }
}
END_TEST

START_TEST(code_is_explicit)
{
  struct sp_error *err = NULL;
  ck_assert_int_eq(sp_error_code(&err, "INSTANCE_STARTING", 503, "pool %s is %s", "a", "warming"),
                   -1);
  ck_assert_str_eq(err->code, "INSTANCE_STARTING");
  ck_assert_int_eq(err->http_status, 503);
  ck_assert_int_eq(err->errnum, 0);
  ck_assert_str_eq(err->msg, "pool a is warming");
  sp_error_free(err);
}
END_TEST

/* The first failure is the cause: a later one does not replace it. */
START_TEST(first_error_wins)
{
  struct sp_error *err = NULL;
  sp_error_code(&err, "FIRST", 400, "first");
  ck_assert_int_eq(sp_error_set(&err, ENOENT, "second"), -1);
  ck_assert_int_eq(sp_error_code(&err, "THIRD", 500, "third"), -1);
  ck_assert_str_eq(err->code, "FIRST");
  ck_assert_str_eq(err->msg, "first");
  ck_assert_int_eq(err->http_status, 400);
  sp_error_free(err);
}
END_TEST

/* Callers that do not want the error pass NULL; the failure still
 * returns -1. */
START_TEST(null_error_argument)
{
  ck_assert_int_eq(sp_error_set(NULL, ENOENT, "x"), -1);
  ck_assert_int_eq(sp_error_code(NULL, "X", 400, "x"), -1);
  ck_assert_int_eq(sp_error_prefix(NULL, "ctx"), -1);
  sp_error_context(NULL, "k", "v");
  sp_error_context_int(NULL, "k", 1);
  sp_error_print("prog", NULL);
  sp_error_free(NULL);

  struct sp_error *none = NULL;
  ck_assert_int_eq(sp_error_prefix(&none, "ctx"), -1);
  sp_error_context(&none, "k", "v");
  sp_error_context_int(&none, "k", 1);
  ck_assert_ptr_null(none);
}
END_TEST

START_TEST(prefix_adds_context_on_the_way_up)
{
  struct sp_error *err = NULL;
  sp_error_set(&err, ENOENT, "cannot open %s", "a.txt");
  ck_assert_int_eq(sp_error_prefix(&err, "cannot read %s", "config"), -1);
  ck_assert_int_eq(sp_error_prefix(&err, "sandbox %d", 7), -1);
  char *want = xasprintf("sandbox 7: cannot read config: cannot open a.txt: %s", strerror(ENOENT));
  ck_assert_str_eq(err->msg, want);
  /* what the error is does not change */
  ck_assert_str_eq(err->code, "FILE_NOT_FOUND");
  ck_assert_int_eq(err->http_status, 404);
  ck_assert_int_eq(err->errnum, ENOENT);
  free(want);
  sp_error_free(err);
}
END_TEST

START_TEST(context_fields)
{
  struct sp_error *err = NULL;
  sp_error_set(&err, ENOENT, "cannot open");
  sp_error_context(&err, "path", "/a");
  sp_error_context(&err, "path", "/b"); /* replaced, not repeated */
  sp_error_context(&err, "empty", NULL);
  sp_error_context_int(&err, "line", 12);
  sp_error_context_int(&err, "line", 13);
  char *s = cJSON_PrintUnformatted(err->context);
  ck_assert_str_eq(s, "{\"path\":\"/b\",\"empty\":\"\",\"line\":13}");
  free(s);
  sp_error_free(err);
}
END_TEST

/* stderr into a temporary file while fn runs; returns what was written. */
static char *stderr_of(void (*fn)(void *), void *arg)
{
  char path[] = "/tmp/sandpit-err.XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  close(fd);
  fn(arg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char *text = sp_read_file(path, 0, NULL, NULL);
  unlink(path);
  ck_assert_ptr_nonnull(text);
  return text;
}

static void print_it(void *arg) { sp_error_print("sandpitd", arg); }

START_TEST(print_once_at_the_boundary)
{
  struct sp_error *err = NULL;
  sp_error_code(&err, "INVALID_CONFIG", 400, "cannot read %s", "w.toml");
  sp_error_prefix(&err, "startup");
  char *out = stderr_of(print_it, &err);
  ck_assert_str_eq(out, "sandpitd: startup: cannot read w.toml\n");
  ck_assert_ptr_null(err); /* freed and cleared: it cannot be printed twice */
  free(out);
  out = stderr_of(print_it, &err);
  ck_assert_str_eq(out, "");
  free(out);
}
END_TEST

static int fail_deep(struct sp_error **err) { return sp_error_set(err, EACCES, "cannot write"); }

static int fail_middle(struct sp_error **err)
{
  if (fail_deep(err) < 0)
    return sp_error_prefix(err, "saving state");
  return 0;
}

/* The contract as callers use it: -1 returned straight up, context added,
 * the cleanup attribute frees what is left. */
START_TEST(contract_through_calls)
{
  cleanup_error struct sp_error *err = NULL;
  ck_assert_int_eq(fail_middle(&err), -1);
  ck_assert_str_eq(err->code, "PERMISSION_DENIED");
  ck_assert_int_eq(err->http_status, 403);
  char *want = xasprintf("saving state: cannot write: %s", strerror(EACCES));
  ck_assert_str_eq(err->msg, want);
  free(want);
}
END_TEST

CHECK_MAIN_ONE_TCASE("error", "contract", 10, NULL, NULL, set_without_errno_is_internal,
                     set_maps_errno, code_is_explicit, first_error_wins, null_error_argument,
                     prefix_adds_context_on_the_way_up, context_fields, print_once_at_the_boundary,
                     contract_through_calls)
