/* Unit tests of lib/httpc against a scripted peer on a unix socket: the
 * bytes the client sends, the responses it reads (sized, chunked, until
 * close, dripped a byte at a time), and what it says when the peer is
 * absent, silent, cut short or hostile. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "error.h"
#include "httpc.h"
#include "scratch.h"
#include "sock.h"
#include "str.h"
#include "util.h"

/* ---- the scripted peer: one connection, one exchange ---- */

struct script {
  const char *until; /* the request is whole once it ends with this */
  const char *reply; /* then sent (NULL: close without a word) */
  size_t reply_len;  /* 0: strlen(reply) */
  bool drip;         /* one byte a write */
  bool hold;         /* keep the connection open until the client closes */
  bool silent;       /* read nothing, answer nothing: wait for the close */
};

static struct script S;
static struct sbuf got; /* the request as it came */
static const char *sock_path;
static int listen_fd = -1;
static pthread_t peer;

static void *peer_main(void *arg)
{
  (void)arg;
  int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0)
    return NULL;
  struct sbuf discard = SBUF_INIT;
  if (S.silent) {
    sock_read_until_close(fd, 30000, &discard);
    goto out;
  }
  char buf[65536];
  size_t ul = strlen(S.until ? S.until : "\r\n\r\n");
  while (got.len < ul || memcmp(got.buf + got.len - ul, S.until ? S.until : "\r\n\r\n", ul) != 0) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      goto out;
    sbuf_add(&got, buf, (size_t)n);
  }
  if (S.reply) {
    size_t len = S.reply_len ? S.reply_len : strlen(S.reply);
    for (size_t off = 0; off < len;) {
      size_t n = S.drip ? 1 : len - off;
      if (!sock_send(fd, S.reply + off, n))
        goto out;
      off += n;
      if (S.drip)
        usleep(300);
    }
  }
  if (S.hold)
    sock_read_until_close(fd, 30000, &discard);
out:
  sbuf_release(&discard);
  close(fd);
  return NULL;
}

/* Starts the peer on its script. */
static void serve(struct script s)
{
  S = s;
  ck_assert_int_eq(pthread_create(&peer, NULL, peer_main, NULL), 0);
}

/* Waits for the peer to finish; returns the request it read. */
static const char *served(void)
{
  pthread_join(peer, NULL);
  return sbuf_str(&got);
}

static void setup(void)
{
  scratch_make("sandpit-httpc");
  sock_path = xstrdup(P("peer.sock"));
  listen_fd = sock_listen_unix(sock_path);
}

static void teardown(void)
{
  close(listen_fd);
  free((char *)sock_path);
  sbuf_release(&got);
  rm_rf(scratch);
}

/* One httpc_request; the body into *out, the status returned. */
static int request(const char *method, const char *target, const char *const *headers,
                   int nheaders, const char *body, int timeout_ms, size_t max_body,
                   struct sbuf *out, struct sp_error **err)
{
  return httpc_request(sock_path, method, target, headers, nheaders, body,
                       body ? strlen(body) : 0, timeout_ms, max_body, out, err);
}

/* A GET on a fresh connection, its response head read into *r. */
static struct httpc *open_get(const char *target, struct httpc_response *r)
{
  struct sp_error *err = NULL;
  struct httpc *c = httpc_connect(sock_path, 5000, &err);
  ck_assert_msg(c != NULL, "%s", err ? err->msg : "?");
  ck_assert_int_eq(httpc_send_head(c, "GET", target, NULL, 0, 0, &err), 0);
  ck_assert_msg(httpc_read_head(c, r, &err) == 0, "%s", err ? err->msg : "?");
  return c;
}

/* The request fails with this code, status and message (a substring). */
static void fails_with(struct sp_error *err, const char *code, int status, const char *msg)
{
  ck_assert_ptr_nonnull(err);
  ck_assert_str_eq(err->code, code);
  ck_assert_int_eq(err->http_status, status);
  ck_assert_msg(strstr(err->msg, msg) != NULL, "message \"%s\" lacks \"%s\"", err->msg, msg);
  sp_error_free(err);
}

/* ---- requests and responses ---- */

START_TEST(get_with_sized_body)
{
  serve((struct script){
      .reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
      .hold = true});
  const char *h[] = {"X-Sandpit-Sandbox: t1", "Accept: */*"};
  struct sbuf out = SBUF_INIT;
  struct sp_error *err = NULL;
  /* held open: the body ends at its length, not at a close */
  ck_assert_int_eq(request("GET", "/api/ping?x=1", h, 2, NULL, 5000, 1024, &out, &err), 200);
  ck_assert_ptr_null(err);
  ck_assert_str_eq(sbuf_str(&out), "hello");
  ck_assert_str_eq(served(), "GET /api/ping?x=1 HTTP/1.1\r\nHost: sandpit\r\n"
                             "X-Sandpit-Sandbox: t1\r\nAccept: */*\r\n\r\n");
  sbuf_release(&out);
}
END_TEST

START_TEST(post_with_body)
{
  serve((struct script){.until = "{\"a\":1}",
                        .reply = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
                        .hold = true});
  const char *h[] = {"Content-Type: application/json"};
  struct sbuf out = SBUF_INIT;
  struct sp_error *err = NULL;
  ck_assert_int_eq(request("POST", "/x", h, 1, "{\"a\":1}", 5000, 1024, &out, &err), 201);
  ck_assert_uint_eq(out.len, 0);
  ck_assert_str_eq(served(), "POST /x HTTP/1.1\r\nHost: sandpit\r\n"
                             "Content-Type: application/json\r\nContent-Length: 7\r\n\r\n"
                             "{\"a\":1}");
  sbuf_release(&out);
}
END_TEST

START_TEST(chunked_upload)
{
  serve((struct script){.until = "0\r\n\r\n", .reply = "HTTP/1.1 204 No Content\r\n\r\n",
                        .hold = true});
  struct sp_error *err = NULL;
  struct httpc *c = httpc_connect(sock_path, 5000, &err);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(httpc_send_head(c, "PUT", "/files/a", NULL, 0, -1, &err), 0);
  ck_assert_int_eq(httpc_write_body(c, "abc", 3, &err), 0);
  ck_assert_int_eq(httpc_write_body(c, "", 0, &err), 0); /* not the end */
  ck_assert_int_eq(httpc_write_body(c, "0123456789abcdefg", 17, &err), 0);
  ck_assert_int_eq(httpc_end_body(c, &err), 0);
  struct httpc_response r;
  ck_assert_int_eq(httpc_read_head(c, &r, &err), 0);
  ck_assert_int_eq(r.status, 204);
  /* 204 has no body: the end at once, not a wait for a close */
  int64_t t0 = sp_monotonic_ms();
  char buf[64];
  ck_assert_int_eq(httpc_read_body(c, buf, sizeof buf, &err), 0);
  ck_assert_int_lt(sp_monotonic_ms() - t0, 1000);
  httpc_response_release(&r);
  httpc_close(c);
  ck_assert_str_eq(served(), "PUT /files/a HTTP/1.1\r\nHost: sandpit\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n"
                             "3\r\nabc\r\n11\r\n0123456789abcdefg\r\n0\r\n\r\n");
  ck_assert_ptr_null(err);
}
END_TEST

#define CHUNKED_REPLY                                                                         \
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"                                     \
  "5;name=value\r\nhello\r\n1\r\n \r\nA\r\nworld, 10!\r\n0\r\nX-Trailer: t\r\n\r\n"

/* De-chunked, extensions and trailers skipped, the end found without
 * waiting for a close. */
static void expect_chunked(bool drip)
{
  serve((struct script){.reply = CHUNKED_REPLY, .hold = true, .drip = drip});
  struct sbuf out = SBUF_INIT;
  struct sp_error *err = NULL;
  ck_assert_int_eq(request("GET", "/logs", NULL, 0, NULL, 5000, 1024, &out, &err), 200);
  ck_assert_ptr_null(err);
  ck_assert_str_eq(sbuf_str(&out), "hello world, 10!");
  served();
  sbuf_release(&out);
}

START_TEST(chunked_response) { expect_chunked(false); }
END_TEST

START_TEST(chunked_response_dripped) { expect_chunked(true); }
END_TEST

START_TEST(body_until_close)
{
  serve((struct script){.reply = "HTTP/1.0 200 OK\r\nX-A: b\r\n\r\nall of it, until the close",
                        .drip = true});
  struct sbuf out = SBUF_INIT;
  struct sp_error *err = NULL;
  ck_assert_int_eq(request("GET", "/", NULL, 0, NULL, 5000, 1024, &out, &err), 200);
  ck_assert_str_eq(sbuf_str(&out), "all of it, until the close");
  served();
  sbuf_release(&out);
}
END_TEST

START_TEST(response_headers)
{
  struct sbuf reply = SBUF_INIT;
  sbuf_addstr(&reply, "HTTP/1.1 200 OK\r\nX-One:   1\r\nx-two:\t2\r\nnot a header\r\n"
                      "Content-Length: 2\r\n");
  for (int i = 0; i < 70; i++)
    sbuf_addf(&reply, "X-Many-%d: %d\r\n", i, i);
  sbuf_addstr(&reply, "\r\nok");
  serve((struct script){.reply = reply.buf, .hold = true});
  struct sp_error *err = NULL;
  struct httpc_response r;
  struct httpc *c = open_get("/", &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(httpc_header(&r, "x-one"), "1");
  ck_assert_str_eq(httpc_header(&r, "X-TWO"), "2");
  ck_assert_str_eq(httpc_header(&r, "content-length"), "2");
  ck_assert_int_eq(r.content_length, 2);
  ck_assert(!r.chunked);
  ck_assert_ptr_null(httpc_header(&r, "not a header"));
  ck_assert_ptr_null(httpc_header(&r, "X-Missing"));
  /* past the limit, headers are dropped, not overflowed */
  ck_assert_int_eq(r.nheaders, HTTPC_MAX_HEADERS);
  ck_assert_str_eq(httpc_header(&r, "X-Many-60"), "60");
  ck_assert_ptr_null(httpc_header(&r, "X-Many-61"));
  char buf[8];
  ck_assert_int_eq(httpc_read_body(c, buf, sizeof buf, &err), 2);
  ck_assert_int_eq(memcmp(buf, "ok", 2), 0);
  ck_assert_int_eq(httpc_read_body(c, buf, sizeof buf, &err), 0);
  httpc_response_release(&r);
  httpc_close(c);
  served();
  sbuf_release(&reply);
}
END_TEST

/* A tunnel: what came right after the head is handed over. */
START_TEST(bytes_after_the_head)
{
  serve((struct script){.reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: tcp\r\n\r\n"
                                 "first bytes of the tunnel",
                        .hold = true});
  struct httpc_response r;
  struct httpc *c = open_get("/tunnel", &r);
  ck_assert_int_eq(r.status, 101);
  char buf[64];
  size_t n = httpc_take_buffered(c, buf, sizeof buf);
  ck_assert_uint_eq(n, strlen("first bytes of the tunnel"));
  ck_assert_int_eq(memcmp(buf, "first bytes of the tunnel", n), 0);
  ck_assert_uint_eq(httpc_take_buffered(c, buf, sizeof buf), 0);
  ck_assert_int_ge(httpc_fd(c), 0);
  httpc_response_release(&r);
  httpc_close(c);
  served();
}
END_TEST

START_TEST(body_discarded_without_out)
{
  serve((struct script){.reply = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"});
  struct sp_error *err = NULL;
  ck_assert_int_eq(request("DELETE", "/x", NULL, 0, NULL, 5000, 0, NULL, &err), 404);
  ck_assert_ptr_null(err);
  ck_assert_str_eq(served(), "DELETE /x HTTP/1.1\r\nHost: sandpit\r\n\r\n");
}
END_TEST

/* ---- failures ---- */

START_TEST(nothing_listens)
{
  struct sp_error *err = NULL;
  const char *path = P("nobody.sock");
  ck_assert_ptr_null(httpc_connect(path, 1000, &err));
  fails_with(err, "BACKEND_UNAVAILABLE", 503, path);
  err = NULL;
  char long_path[200];
  memset(long_path, 'a', sizeof long_path - 1);
  long_path[sizeof long_path - 1] = '\0';
  ck_assert_int_eq(httpc_request(long_path, "GET", "/", NULL, 0, NULL, 0, 1000, 0, NULL, &err), -1);
  fails_with(err, "INTERNAL_ERROR", 500, "socket path too long");
}
END_TEST

START_TEST(closed_without_answer)
{
  serve((struct script){.reply = NULL});
  struct sp_error *err = NULL;
  ck_assert_int_eq(request("GET", "/", NULL, 0, NULL, 5000, 0, NULL, &err), -1);
  fails_with(err, "UPSTREAM_ERROR", 502, "the instance closed the connection");
  served();
}
END_TEST

START_TEST(silent_peer_times_out)
{
  serve((struct script){.silent = true});
  struct sp_error *err = NULL;
  int64_t t0 = sp_monotonic_ms();
  ck_assert_int_eq(request("GET", "/", NULL, 0, NULL, 300, 0, NULL, &err), -1);
  int64_t took = sp_monotonic_ms() - t0;
  fails_with(err, "UPSTREAM_TIMEOUT", 504, "did not answer in time");
  ck_assert_msg(took >= 250 && took < 5000, "took %lld ms", (long long)took);
  served();
}
END_TEST

/* The peer answers `reply` and closes: the request fails with msg. */
static void bad_reply(const char *reply, const char *msg)
{
  serve((struct script){.reply = reply});
  struct sp_error *err = NULL;
  struct sbuf out = SBUF_INIT;
  ck_assert_int_eq(request("GET", "/", NULL, 0, NULL, 5000, 1 << 20, &out, &err), -1);
  fails_with(err, "UPSTREAM_ERROR", 502, msg);
  served();
  sbuf_release(&out);
  sbuf_reset(&got);
}

START_TEST(bad_status_lines)
{
  bad_reply("SSH-2.0-OpenSSH_9.2\r\n\r\n", "bad status line from the instance");
  bad_reply("HTTP/1.1 99 Too Low\r\n\r\n", "bad status line from the instance");
  bad_reply("HTTP/1.1 600 Too High\r\n\r\n", "bad status line from the instance");
  bad_reply("HTTP/2 200\r\n\r\n", "bad status line from the instance");
  bad_reply("HTTP/1.1 200 OK\r\nX-A: b\r\n", "the instance closed the connection");
}
END_TEST

START_TEST(bodies_cut_short)
{
  bad_reply("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            "the instance closed the connection early");
  bad_reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "the instance closed the connection early");
  bad_reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            "the instance closed the connection");
  bad_reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            "bad chunk from the instance");
  bad_reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
            "bad chunk from the instance");
}
END_TEST

/* A peer that sends a head without end is cut off, not buffered. */
START_TEST(huge_heads_refused)
{
  struct sbuf reply = SBUF_INIT;
  sbuf_addf(&reply, "HTTP/1.1 200 OK\r\nX-Long: %0*d\r\n\r\n", 100000, 0);
  bad_reply(reply.buf, "response line too long");
  sbuf_reset(&reply);
  sbuf_addstr(&reply, "HTTP/1.1 200 OK\r\n");
  for (int i = 0; i < 2000; i++)
    sbuf_addf(&reply, "X-Header-%04d: %040d\r\n", i, i);
  sbuf_addstr(&reply, "\r\n");
  bad_reply(reply.buf, "response head too large");
  sbuf_release(&reply);
}
END_TEST

START_TEST(body_over_the_limit)
{
  serve((struct script){
      .reply = "HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz",
      .hold = true});
  struct sp_error *err = NULL;
  struct sbuf out = SBUF_INIT;
  ck_assert_int_eq(request("GET", "/", NULL, 0, NULL, 5000, 10, &out, &err), -1);
  fails_with(err, "UPSTREAM_ERROR", 502, "response larger than 10 bytes");
  ck_assert_uint_le(out.len, 10);
  served();
  sbuf_release(&out);
}
END_TEST

static Suite *httpc_suite(void)
{
  Suite *s = suite_create("httpc");
  check_add_tcase(s, "exchanges", 30, setup, teardown,
                  CHECK_TESTS(get_with_sized_body, post_with_body, chunked_upload,
                              chunked_response, chunked_response_dripped, body_until_close,
                              response_headers, bytes_after_the_head,
                              body_discarded_without_out));
  check_add_tcase(s, "failures", 30, setup, teardown,
                  CHECK_TESTS(nothing_listens, closed_without_answer, silent_peer_times_out,
                              bad_status_lines, bodies_cut_short, huge_heads_refused,
                              body_over_the_limit));
  return s;
}

CHECK_MAIN(httpc_suite)
