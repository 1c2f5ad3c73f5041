#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "reqrw.h"

/* Feed `in` cut into pieces of `step` bytes; return the output (or NULL on
 * refusal). */
static char *run(const char *in, size_t step, int *rc)
{
  struct reqrw w;
  reqrw_init(&w, "10.0.0.9", "3000-sb-tok.localhost:8787");
  struct sbuf out = SBUF_INIT;
  size_t n = strlen(in);
  *rc = 0;
  for (size_t i = 0; i < n && *rc == 0; i += step)
    *rc = reqrw_feed(&w, in + i, n - i < step ? n - i : step, &out);
  reqrw_release(&w);
  return sbuf_detach(&out, NULL);
}

static const char *fwd =
    "X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Host: 3000-sb-tok.localhost:8787\r\n"
    "X-Forwarded-Proto: http\r\n\r\n";

/* in gives want, cut into pieces of any size. */
static void assert_any_cut(const char *in, const char *want)
{
  for (size_t step = 1; step <= strlen(in); step++) {
    int rc;
    char *out = run(in, step, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(out, want);
    free(out);
  }
}

START_TEST(heads_rewritten_in_any_cut)
{
  const char *in = "GET /a HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\nx-sandpit-sandbox: b\r\n"
                   "Forwarded: for=1.2.3.4\r\nAccept: */*\r\n\r\n";
  char want[1024];
  snprintf(want, sizeof want, "GET /a HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n%s", fwd);
  assert_any_cut(in, want);
}
END_TEST

START_TEST(bodies_and_next_requests)
{
  /* a sized body that looks like a head must pass as body */
  const char *in = "POST /p HTTP/1.1\r\nContent-Length: 30\r\n\r\n"
                   "GET /evil HTTP/1.1\r\nX: y\r\n\r\n\r\n"
                   "GET /next HTTP/1.1\r\n\r\n";
  int rc;
  char *out = run(in, 7, &rc);
  ck_assert_int_eq(rc, 0);
  char want[2048];
  snprintf(want, sizeof want,
           "POST /p HTTP/1.1\r\nContent-Length: 30\r\n%sGET /evil HTTP/1.1\r\nX: y\r\n\r\n\r\n"
           "GET /next HTTP/1.1\r\n%s",
           fwd, fwd);
  ck_assert_str_eq(out, want);
  free(out);
  in = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
       "4;ext=1\r\nabcd\r\n0\r\nTrailer: x\r\n\r\n"
       "GET /after HTTP/1.1\r\n\r\n";
  for (size_t step = 1; step < 9; step++) {
    out = run(in, step, &rc);
    ck_assert_int_eq(rc, 0);
    snprintf(want, sizeof want,
             "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n%s"
             "4;ext=1\r\nabcd\r\n0\r\nTrailer: x\r\n\r\nGET /after HTTP/1.1\r\n%s",
             fwd, fwd);
    ck_assert_str_eq(out, want);
    free(out);
  }
}
END_TEST

/* Blank lines before a request line are dropped, CRLF or LF, however the
 * stream is cut: a client may send one after a body. */
START_TEST(blank_lines_between_requests)
{
  const char *in = "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nok\r\n"
                   "GET /b HTTP/1.1\r\n\r\n\n\r\n\r\nGET /c HTTP/1.1\r\n\r\n";
  char want[2048];
  snprintf(want, sizeof want,
           "POST /a HTTP/1.1\r\nContent-Length: 2\r\n%sokGET /b HTTP/1.1\r\n%sGET /c HTTP/1.1\r\n%s",
           fwd, fwd, fwd);
  assert_any_cut(in, want);
}
END_TEST

START_TEST(upgrade_goes_raw)
{
  const char *in = "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n"
                   "\x81\x85raw frames X-Forwarded-For: not a header";
  int rc;
  char *out = run(in, 5, &rc);
  ck_assert_int_eq(rc, 0);
  ck_assert(strstr(out, "\x81\x85raw frames X-Forwarded-For: not a header") != NULL);
  free(out);
}
END_TEST

START_TEST(smuggling_refused)
{
  const char *bad[] = {
      "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
      "GET / HTTP/1.1\r\n folded: header\r\n\r\n",
      "GET / HTTP/1.1\r\n: nameless\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc;
    char *out = run(bad[i], 3, &rc);
    ck_assert_msg(rc == -1, "accepted: %s", bad[i]);
    free(out);
  }
  /* a head that never ends is cut off at the limit */
  struct reqrw w;
  reqrw_init(&w, "a", "b");
  struct sbuf out = SBUF_INIT;
  int rc = reqrw_feed(&w, "GET / HTTP/1.1\r\n", 16, &out);
  char junk[4096];
  memset(junk, 'a', sizeof junk);
  for (int i = 0; i < 20 && rc == 0; i++)
    rc = reqrw_feed(&w, junk, sizeof junk, &out);
  ck_assert_int_eq(rc, -1);
  reqrw_release(&w);
  sbuf_release(&out);
}
END_TEST

CHECK_MAIN_ONE_TCASE("reqrw", "core", 10, NULL, NULL, heads_rewritten_in_any_cut,
                     blank_lines_between_requests,
                     bodies_and_next_requests, upgrade_goes_raw, smuggling_refused)
