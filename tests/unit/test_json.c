/* Unit tests of lib/json: request bodies as the handlers parse them (what
 * is refused and what the client is told), typed member access, and the
 * error body the SDK's client reads. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "error.h"
#include "json.h"
#include "str.h"
#include "util.h"

/* json_parse_object on s; NULL with *err or the object. */
static cJSON *parse(const char *s, struct sp_error **err)
{
  return json_parse_object(s, strlen(s), err);
}

/* The body is refused with INVALID_JSON / 400 and this message. */
static void refused(const char *body, size_t len, const char *msg)
{
  struct sp_error *err = NULL;
  cJSON *j = json_parse_object(body, len, &err);
  ck_assert_msg(j == NULL, "accepted: %.*s", (int)len, body ? body : "");
  ck_assert_ptr_nonnull(err);
  ck_assert_str_eq(err->code, "INVALID_JSON");
  ck_assert_int_eq(err->http_status, 400);
  ck_assert_str_eq(err->msg, msg);
  sp_error_free(err);
}

START_TEST(parse_objects)
{
  struct sp_error *err = NULL;
  cleanup_json cJSON *j = parse(" {\"command\": \"ls -l\", \"n\": 2}\r\n\t ", &err);
  ck_assert_ptr_nonnull(j);
  ck_assert_ptr_null(err);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "command")->valuestring, "ls -l");
  ck_assert_int_eq(cJSON_GetObjectItem(j, "n")->valueint, 2);
  /* NUL padding after the value is allowed too */
  cleanup_json cJSON *k = json_parse_object("{}\0\0", 4, &err);
  ck_assert_ptr_nonnull(k);
  /* only len bytes are read: what follows in memory does not count */
  cleanup_json cJSON *l = json_parse_object("{\"a\":1}garbage", 7, &err);
  ck_assert_ptr_nonnull(l);
  ck_assert_ptr_null(err);
}
END_TEST

START_TEST(parse_refusals)
{
  refused(NULL, 0, "request body is empty");
  refused("", 0, "request body is empty");
  /* the byte cJSON stopped at; at the end of a cut body, the last one */
  refused("{\"a\":", 5, "request body is not valid JSON (at byte 4)");
  refused("{\"a\":1,}", 8, "request body is not valid JSON (at byte 7)");
  refused("{\"a\" 1}", 7, "request body is not valid JSON (at byte 5)");
  refused("nope", 4, "request body is not valid JSON (at byte 0)");
  refused("{} {}", 5, "trailing data after JSON value (at byte 3)");
  refused("{}x", 3, "trailing data after JSON value (at byte 2)");
  refused("[1,2]", 5, "request body must be a JSON object");
  refused("\"a\"", 3, "request body must be a JSON object");
  refused("42", 2, "request body must be a JSON object");
  refused("null", 4, "request body must be a JSON object");
}
END_TEST

/* Nesting deeper than cJSON's limit is refused, not a stack overflow. */
START_TEST(parse_deep_nesting)
{
  size_t depth = 100000;
  char *body = xmalloc(2 * depth + 6);
  memcpy(body, "{\"a\":", 5);
  memset(body + 5, '[', depth);
  memset(body + 5 + depth, ']', depth);
  body[5 + 2 * depth] = '}';
  struct sp_error *err = NULL;
  ck_assert_ptr_null(json_parse_object(body, 2 * depth + 6, &err));
  ck_assert_str_eq(err->code, "INVALID_JSON");
  ck_assert_int_eq(err->http_status, 400);
  sp_error_free(err);
  free(body);
}
END_TEST

/* The member is refused with INVALID_REQUEST / 400 and this message. */
static void wrong_member(int rc, struct sp_error **err, const char *msg)
{
  ck_assert_int_eq(rc, -1);
  ck_assert_ptr_nonnull(*err);
  ck_assert_str_eq((*err)->code, "INVALID_REQUEST");
  ck_assert_int_eq((*err)->http_status, 400);
  ck_assert_str_eq((*err)->msg, msg);
  sp_error_free(*err);
  *err = NULL;
}

START_TEST(get_string)
{
  struct sp_error *err = NULL;
  cleanup_json cJSON *j = parse("{\"s\":\"x\",\"n\":1,\"z\":null,\"S\":\"upper\"}", &err);
  const char *v = NULL;
  ck_assert_int_eq(json_get_string(j, "s", "def", &v, &err), 0);
  ck_assert_str_eq(v, "x");
  ck_assert_int_eq(json_get_string(j, "missing", "def", &v, &err), 0);
  ck_assert_str_eq(v, "def");
  ck_assert_int_eq(json_get_string(j, "z", NULL, &v, &err), 0);
  ck_assert_ptr_null(v);
  /* keys are case-sensitive */
  ck_assert_int_eq(json_get_string(j, "S", NULL, &v, &err), 0);
  ck_assert_str_eq(v, "upper");
  wrong_member(json_get_string(j, "n", NULL, &v, &err), &err, "'n' must be a string");
}
END_TEST

START_TEST(get_int)
{
  struct sp_error *err = NULL;
  cleanup_json cJSON *j = parse("{\"port\":8080,\"neg\":-1,\"frac\":1.5,\"str\":\"1\","
                                "\"big\":1e300,\"exp\":3e3,\"z\":null,\"t\":true,"
                                "\"large\":9007199254740992}",
                                &err);
  int64_t v = 0;
  ck_assert_int_eq(json_get_int(j, "port", 0, 1, 65535, &v, &err), 0);
  ck_assert_int_eq(v, 8080);
  ck_assert_int_eq(json_get_int(j, "missing", 77, 0, 10, &v, &err), 0);
  ck_assert_int_eq(v, 77); /* the default is not range-checked */
  ck_assert_int_eq(json_get_int(j, "z", 5, 0, 10, &v, &err), 0);
  ck_assert_int_eq(v, 5);
  ck_assert_int_eq(json_get_int(j, "exp", 0, 0, 5000, &v, &err), 0);
  ck_assert_int_eq(v, 3000);
  ck_assert_int_eq(json_get_int(j, "neg", 0, -1, 0, &v, &err), 0);
  ck_assert_int_eq(v, -1);
  ck_assert_int_eq(json_get_int(j, "large", 0, 0, INT64_MAX / 2, &v, &err), 0);
  ck_assert_int_eq(v, 9007199254740992LL);
  wrong_member(json_get_int(j, "neg", 0, 0, 10, &v, &err), &err,
               "'neg' must be between 0 and 10");
  wrong_member(json_get_int(j, "port", 0, 1, 1024, &v, &err), &err,
               "'port' must be between 1 and 1024");
  wrong_member(json_get_int(j, "big", 0, 0, INT64_MAX / 2, &v, &err), &err,
               "'big' must be between 0 and 4611686018427387903");
  wrong_member(json_get_int(j, "frac", 0, 0, 10, &v, &err), &err, "'frac' must be an integer");
  wrong_member(json_get_int(j, "str", 0, 0, 10, &v, &err), &err, "'str' must be an integer");
  wrong_member(json_get_int(j, "t", 0, 0, 10, &v, &err), &err, "'t' must be an integer");
}
END_TEST

/* Bounds that a double cannot hold exactly are still the bounds. */
START_TEST(get_int_extremes)
{
  struct sp_error *err = NULL;
  cleanup_json cJSON *j = parse("{\"two63\":9223372036854775808,\"min\":-9223372036854775808,"
                                "\"p\":9007199254740996,\"huge\":1e300}",
                                &err);
  int64_t v = 0;
  wrong_member(json_get_int(j, "two63", 0, INT64_MIN, INT64_MAX, &v, &err), &err,
               "'two63' must be between -9223372036854775808 and 9223372036854775807");
  wrong_member(json_get_int(j, "huge", 0, INT64_MIN, INT64_MAX, &v, &err), &err,
               "'huge' must be between -9223372036854775808 and 9223372036854775807");
  ck_assert_int_eq(json_get_int(j, "min", 0, INT64_MIN, INT64_MAX, &v, &err), 0);
  ck_assert(v == INT64_MIN);
  /* 2^53 + 3 is 2^53 + 4 as a double: the value 2^53 + 4 is over it */
  wrong_member(json_get_int(j, "p", 0, 0, 9007199254740995LL, &v, &err), &err,
               "'p' must be between 0 and 9007199254740995");
  ck_assert_int_eq(json_get_int(j, "p", 0, 0, 9007199254740996LL, &v, &err), 0);
  ck_assert_int_eq(v, 9007199254740996LL);
}
END_TEST

START_TEST(get_bool)
{
  struct sp_error *err = NULL;
  cleanup_json cJSON *j = parse("{\"y\":true,\"n\":false,\"one\":1,\"s\":\"true\"}", &err);
  bool v = false;
  ck_assert_int_eq(json_get_bool(j, "y", false, &v, &err), 0);
  ck_assert(v);
  ck_assert_int_eq(json_get_bool(j, "n", true, &v, &err), 0);
  ck_assert(!v);
  ck_assert_int_eq(json_get_bool(j, "missing", true, &v, &err), 0);
  ck_assert(v);
  wrong_member(json_get_bool(j, "one", false, &v, &err), &err, "'one' must be a boolean");
  wrong_member(json_get_bool(j, "s", false, &v, &err), &err, "'s' must be a boolean");
}
END_TEST

START_TEST(print_and_add)
{
  cleanup_json cJSON *j = cJSON_CreateObject();
  json_add_int(j, "pid", 4242);
  json_add_int(j, "bytes", (int64_t)1 << 40);
  json_add_int(j, "neg", -7);
  json_add_string_or_null(j, "cwd", "/work");
  json_add_string_or_null(j, "exitCode", NULL);
  cJSON_AddStringToObject(j, "esc", "a\"b\n\x01");
  char *s = json_print(j);
  ck_assert_str_eq(s, "{\"pid\":4242,\"bytes\":1099511627776,\"neg\":-7,\"cwd\":\"/work\","
                      "\"exitCode\":null,\"esc\":\"a\\\"b\\n\\u0001\"}");
  free(s);
  s = json_print(NULL);
  ck_assert_str_eq(s, "null");
  free(s);
}
END_TEST

/* Every field the SDK's client reads is there, with the error's values. */
START_TEST(error_body)
{
  struct sp_error *err = NULL;
  sp_error_set(&err, ENOENT, "cannot open %s", "/w/a");
  sp_error_context(&err, "path", "/w/a");
  cleanup_json cJSON *j = json_error_body(err);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "code")->valuestring, "FILE_NOT_FOUND");
  char *msg = xasprintf("cannot open /w/a: %s", strerror(ENOENT));
  ck_assert_str_eq(cJSON_GetObjectItem(j, "message")->valuestring, msg);
  free(msg);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "httpStatus")->valueint, 404);
  cJSON *ctx = cJSON_GetObjectItem(j, "context");
  ck_assert(cJSON_IsObject(ctx));
  ck_assert_str_eq(cJSON_GetObjectItem(ctx, "path")->valuestring, "/w/a");
  /* a copy: the error can go first */
  sp_error_free(err);
  ck_assert_str_eq(cJSON_GetObjectItem(ctx, "path")->valuestring, "/w/a");
  const char *ts = cJSON_GetObjectItem(j, "timestamp")->valuestring;
  int y, mo, d, h, mi, s, ms;
  char z = 0;
  ck_assert_msg(sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &s, &ms, &z) ==
                        8 &&
                    z == 'Z' && strlen(ts) == 24 && y >= 2024,
                "timestamp %s", ts);
  ck_assert_int_eq(cJSON_GetArraySize(j), 5);
}
END_TEST

START_TEST(error_body_without_error)
{
  cleanup_json cJSON *j = json_error_body(NULL);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "code")->valuestring, "INTERNAL_ERROR");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "message")->valuestring, "internal error");
  ck_assert_int_eq(cJSON_GetObjectItem(j, "httpStatus")->valueint, 500);
  /* context is always an object, even empty */
  cJSON *ctx = cJSON_GetObjectItem(j, "context");
  ck_assert(cJSON_IsObject(ctx));
  ck_assert_int_eq(cJSON_GetArraySize(ctx), 0);
}
END_TEST

CHECK_MAIN_ONE_TCASE("json", "bodies", 10, NULL, NULL, parse_objects, parse_refusals,
                     parse_deep_nesting, get_string, get_int, get_int_extremes,
                     get_bool, print_and_add, error_body,
                     error_body_without_error)
