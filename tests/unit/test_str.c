#include <check.h>
#include <errno.h>
#include <string.h>

#include "check_main.h"
#include "error.h"
#include "str.h"
#include "util.h"

START_TEST(sbuf_grows_and_formats)
{
  struct sbuf sb = SBUF_INIT;
  ck_assert_str_eq(sbuf_str(&sb), "");
  for (int i = 0; i < 1000; i++)
    sbuf_addf(&sb, "%d,", i);
  ck_assert_uint_eq(sb.len, strlen(sb.buf));
  ck_assert(str_starts_with(sb.buf, "0,1,2,"));
  ck_assert(str_ends_with(sb.buf, "998,999,"));
  char big[1000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  sbuf_reset(&sb);
  sbuf_addf(&sb, "<%s>", big);
  ck_assert_uint_eq(sb.len, 1001);
  size_t len;
  char *s = sbuf_detach(&sb, &len);
  ck_assert_uint_eq(len, 1001);
  ck_assert_ptr_null(sb.buf);
  free(s);
  sbuf_release(&sb);
}
END_TEST

START_TEST(json_escaping)
{
  struct sbuf sb = SBUF_INIT;
  const char in[] = "a\"b\\c\nd\te\x01\x7f";
  sbuf_add_json_escaped(&sb, in, sizeof in - 1);
  ck_assert_str_eq(sb.buf, "a\\\"b\\\\c\\nd\\te\\u0001\\u007f");
  sbuf_release(&sb);
}
END_TEST

START_TEST(strict_integers)
{
  long long v;
  ck_assert(str_to_ll("42", 0, 100, &v) && v == 42);
  ck_assert(str_to_ll("-5", -10, 10, &v) && v == -5);
  ck_assert(!str_to_ll("", 0, 100, &v));
  ck_assert(!str_to_ll("4x", 0, 100, &v));
  ck_assert(!str_to_ll(" 4", 0, 100, &v));
  ck_assert(!str_to_ll("101", 0, 100, &v));
  ck_assert(!str_to_ll("99999999999999999999", 0, INT64_MAX, &v));
}
END_TEST

START_TEST(utf8_validation)
{
  ck_assert(str_is_utf8("plain", 5));
  ck_assert(str_is_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
  ck_assert(!str_is_utf8("\xff", 1));
  ck_assert(!str_is_utf8("\xc3", 1));             /* truncated */
  ck_assert(!str_is_utf8("\xc0\xaf", 2));         /* overlong */
  ck_assert(!str_is_utf8("\xed\xa0\x80", 3));     /* surrogate */
  ck_assert(!str_is_utf8("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  ck_assert(str_is_utf8("a\0b", 3));              /* NUL is valid UTF-8 */
}
END_TEST

START_TEST(utf8_repair)
{
  static const struct {
    const char *in;
    size_t len;
    const char *out;
  } cases[] = {
      {"plain \xc3\xa9", 8, "plain \xc3\xa9"},
      {"a\0b", 3, "a\xef\xbf\xbd" "b"},                  /* NUL */
      {"\xff" "x", 2, "\xef\xbf\xbd" "x"},                 /* never a lead byte */
      {"\x80" "x", 2, "\xef\xbf\xbd" "x"},                 /* lone continuation */
      {"\xe2\x82" "A", 3, "\xef\xbf\xbd\xef\xbf\xbd" "A"}, /* cut short */
      {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},         /* overlong */
      {"\xf0\x9f\x98", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
  };
  for (size_t i = 0; i < SP_ARRAY_SIZE(cases); i++) {
    cleanup_free char *got = str_repair_utf8(cases[i].in, cases[i].len);
    ck_assert_str_eq(got, cases[i].out);
    ck_assert(str_is_utf8(got, strlen(got)));
  }
}
END_TEST

START_TEST(constant_time_compare)
{
  ck_assert(str_equal_ct("secret-token", "secret-token"));
  ck_assert(!str_equal_ct("secret-token", "secret-tokem"));
  ck_assert(!str_equal_ct("secret-token", "secret"));
  ck_assert(!str_equal_ct("secret-token", ""));
  ck_assert(!str_equal_ct("", "x"));
}
END_TEST

START_TEST(error_contract)
{
  struct sp_error *err = NULL;
  ck_assert_int_eq(sp_error_set(&err, ENOENT, "cannot open %s", "x"), -1);
  ck_assert_str_eq(err->code, "FILE_NOT_FOUND");
  ck_assert_int_eq(err->http_status, 404);
  ck_assert_str_eq(err->msg, "cannot open x: No such file or directory");
  /* a second error does not replace the first */
  sp_error_set(&err, EACCES, "other");
  ck_assert_str_eq(err->code, "FILE_NOT_FOUND");
  sp_error_prefix(&err, "reading config");
  ck_assert_str_eq(err->msg, "reading config: cannot open x: No such file or directory");
  sp_error_free(err);
  err = NULL;
  ck_assert_int_eq(sp_error_code(&err, "COMMAND_TIMEOUT", 408, "after %d ms", 5), -1);
  ck_assert_str_eq(err->code, "COMMAND_TIMEOUT");
  ck_assert_int_eq(err->http_status, 408);
  sp_error_free(err);
  ck_assert_int_eq(sp_error_set(NULL, EINVAL, "ignored"), -1);
}
END_TEST

START_TEST(atomic_write_and_read)
{
  char dir[] = "/tmp/sp-unit-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  cleanup_free char *sub = xasprintf("%s/a/b/c", dir);
  struct sp_error *err = NULL;
  ck_assert_int_eq(sp_mkdir_p(sub, 0700, &err), 0);
  ck_assert_int_eq(sp_mkdir_p(sub, 0700, &err), 0);
  cleanup_free char *f = xasprintf("%s/file", sub);
  ck_assert_int_eq(sp_write_file_atomic(f, "hello\0world", 11, 0600, &err), 0);
  size_t len;
  cleanup_free char *got = sp_read_file(f, 0, &len, &err);
  ck_assert_uint_eq(len, 11);
  ck_assert_mem_eq(got, "hello\0world", 11);
  ck_assert_ptr_null(sp_read_file(f, 5, &len, &err));
  ck_assert_str_eq(err->code, "FILE_TOO_LARGE");
  sp_error_free(err);
  err = NULL;
  ck_assert_int_eq(sp_mkdir_p(f, 0700, &err), -1); /* a file is in the way */
  sp_error_free(err);
  cleanup_free char *cmd = xasprintf("rm -rf %s", dir);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(base64)
{
  size_t n;
  char *e = b64_encode("hello\0world", 11, &n);
  ck_assert_str_eq(e, "aGVsbG8Ad29ybGQ=");
  ck_assert_uint_eq(n, 16);
  char *d;
  ck_assert(b64_decode(e, n, &d, &n));
  ck_assert_uint_eq(n, 11);
  ck_assert_mem_eq(d, "hello\0world", 11);
  free(e);
  free(d);
  const char *cases[] = {"", "Zg==", "Zm8=", "Zm9v"};
  const char *plain[] = {"", "f", "fo", "foo"};
  for (int i = 0; i < 4; i++) {
    ck_assert(b64_decode(cases[i], strlen(cases[i]), &d, &n));
    ck_assert_uint_eq(n, strlen(plain[i]));
    ck_assert_mem_eq(d, plain[i], n);
    free(d);
    e = b64_encode(plain[i], strlen(plain[i]), NULL);
    ck_assert_str_eq(e, cases[i]);
    free(e);
  }
  ck_assert(!b64_decode("Zm9", 3, &d, &n));
  ck_assert(!b64_decode("Zm9v!===", 8, &d, &n));
  ck_assert(!b64_decode("Z===", 4, &d, &n));
  ck_assert(!b64_decode("Zg=v", 4, &d, &n));
  ck_assert(!b64_decode("Zm 9", 4, &d, &n));
}
END_TEST

START_TEST(random_tokens)
{
  char a[41], b[41];
  ck_assert_int_eq(sp_random_token(a, 40, NULL), 0);
  ck_assert_int_eq(sp_random_token(b, 40, NULL), 0);
  ck_assert_uint_eq(strlen(a), 40);
  ck_assert_uint_eq(strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789"), 40);
  ck_assert_str_ne(a, b);
  /* every character turns up: no part of the alphabet is left out */
  int seen[256] = {0};
  for (int i = 0; i < 200; i++) {
    ck_assert_int_eq(sp_random_token(a, 40, NULL), 0);
    for (int k = 0; k < 40; k++)
      seen[(unsigned char)a[k]]++;
  }
  for (const char *c = "abcdefghijklmnopqrstuvwxyz0123456789"; *c; c++)
    ck_assert_msg(seen[(unsigned char)*c] > 100, "%c seen %d times", *c, seen[(unsigned char)*c]);
}
END_TEST

CHECK_MAIN_ONE_TCASE("str", "core", 10, NULL, NULL, sbuf_grows_and_formats, json_escaping,
                     strict_integers, utf8_validation, utf8_repair, constant_time_compare,
                     error_contract, atomic_write_and_read, base64, random_tokens)
