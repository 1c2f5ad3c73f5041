/* Unit tests of lib/http: the real server on a temporary unix socket and
 * a loopback port, driven with raw bytes as a client would send them.
 * Routes and captures, 404 and 405, body limits (413), streamed bodies
 * both ways, the pre and post hooks, takeover and upgrades, listening
 * rules, and hostile requests; each asserts the status and bytes a client
 * gets back. */
#include <check.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "error.h"
#include "http.h"
#include "json.h"
#include "scratch.h"
#include "sock.h"
#include "str.h"
#include "util.h"

/* ---- what the handlers do ---- */

static int handled;             /* handler calls (atomic) */
static int last_status;         /* from the post hook (atomic) */
static int streams_freed;       /* stream ud_free calls (atomic) */

static void count_call(void) { __atomic_add_fetch(&handled, 1, __ATOMIC_SEQ_CST); }

static void reply_text(struct http_req *r, const char *text)
{
  http_reply(r, 200, "text/plain", text, strlen(text));
}

static void h_hello(struct http_req *r)
{
  count_call();
  reply_text(r, "hello");
}

/* The captures, joined with '|'. */
static void h_params(struct http_req *r)
{
  count_call();
  struct sbuf sb = SBUF_INIT;
  for (int i = 0; i < HTTP_MAX_PARAMS && r->params[i]; i++)
    sbuf_addf(&sb, "%s%s", i ? "|" : "", r->params[i]);
  reply_text(r, sbuf_str(&sb));
  sbuf_release(&sb);
}

static void h_echo(struct http_req *r)
{
  count_call();
  http_reply(r, 200, "application/octet-stream", r->body.buf, r->body.len);
}

static void h_method(struct http_req *r)
{
  count_call();
  reply_text(r, r->method);
}

static void h_query(struct http_req *r)
{
  count_call();
  const char *a = http_query(r, "a"), *b = http_query(r, "b"), *h = http_header(r, "x-custom");
  char *s = xasprintf("%s,%s,%s", a ? a : "(none)", b ? b : "(none)", h ? h : "(none)");
  reply_text(r, s);
  free(s);
}

static void h_json(struct http_req *r)
{
  count_call();
  cleanup_json cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "url", r->url);
  cJSON_AddStringToObject(j, "raw", r->raw_uri);
  http_reply_json(r, 201, j);
}

static void h_silent(struct http_req *r)
{
  (void)r;
  count_call();
}

/* A streamed body, counted; more than 1000 bytes are refused. */
static int on_body_count(struct http_req *r, const char *data, size_t len, struct sp_error **err)
{
  (void)data;
  if (r->user == NULL) {
    r->user = xcalloc(1, sizeof(size_t));
    r->user_free = free;
  }
  size_t *n = r->user;
  *n += len;
  if (*n > 1000)
    return sp_error_code(err, "TOO_MUCH", 422, "more than 1000 bytes");
  return 0;
}

static void h_count(struct http_req *r)
{
  count_call();
  char s[32];
  snprintf(s, sizeof s, "%zu", r->user ? *(size_t *)r->user : 0);
  reply_text(r, s);
}

struct stream {
  int calls;
  int mode; /* 0: three parts, 1: abort after one, 2: nothing, forever */
};

static int stream_cb(void *ud, struct sbuf *out)
{
  struct stream *st = ud;
  st->calls++;
  switch (st->mode) {
  case 0:
    sbuf_addf(out, "part %d\n", st->calls);
    return st->calls == 3 ? HTTP_STREAM_END : HTTP_STREAM_MORE;
  case 1:
    if (st->calls > 1)
      return HTTP_STREAM_ABORT;
    sbuf_addstr(out, "partial");
    return HTTP_STREAM_MORE;
  default:
    if (st->calls == 1)
      sbuf_addstr(out, "waiting");
    usleep(50 * 1000);
    return HTTP_STREAM_MORE;
  }
}

static void stream_free(void *ud)
{
  free(ud);
  __atomic_add_fetch(&streams_freed, 1, __ATOMIC_SEQ_CST);
}

static void start_stream(struct http_req *r, int mode)
{
  count_call();
  struct stream *st = xcalloc(1, sizeof *st);
  st->mode = mode;
  http_reply_stream(r, 200, "text/event-stream", stream_cb, st, stream_free);
}

static void h_stream(struct http_req *r) { start_stream(r, 0); }
static void h_stream_abort(struct http_req *r) { start_stream(r, 1); }
static void h_stream_forever(struct http_req *r) { start_stream(r, 2); }

/* After the 101: says what came early, then echoes one read back. */
static void upgraded(void *ud, int sock, const char *extra, size_t extra_len)
{
  (void)ud;
  char *hello = xasprintf("extra=%.*s\n", (int)extra_len, extra);
  sock_send(sock, hello, strlen(hello));
  free(hello);
  /* the socket comes non-blocking */
  struct pollfd p = {sock, POLLIN, 0};
  char buf[256];
  ssize_t n = poll(&p, 1, 5000) == 1 ? recv(sock, buf, sizeof buf, 0) : -1;
  if (n > 0)
    sock_send(sock, buf, (size_t)n);
}

static void h_upgrade(struct http_req *r)
{
  count_call();
  http_reply_upgrade(r, "echo", upgraded, NULL, NULL);
}

#define ROUTE(method, pattern, handler) {method, pattern, handler, 0, NULL}
static const struct http_route routes[] = {
    ROUTE("GET", "/hello", h_hello),
    ROUTE("DELETE", "/hello", h_hello),
    ROUTE("GET", "/api/process/:id/logs", h_params),
    ROUTE("GET", "/a/:x/b/:y", h_params),
    ROUTE("GET", "/files/*", h_params),
    ROUTE("*", "/any", h_method),
    ROUTE("GET", "/query", h_query),
    ROUTE("POST", "/json", h_json),
    {"POST", "/echo", h_echo, 16, NULL},
    ROUTE("POST", "/big", h_echo),
    {"PUT", "/count", h_count, 0, on_body_count},
    ROUTE("GET", "/silent", h_silent),
    ROUTE("GET", "/stream", h_stream),
    ROUTE("GET", "/abort", h_stream_abort),
    ROUTE("GET", "/forever", h_stream_forever),
    ROUTE("GET", "/upgrade", h_upgrade),
};

/* Requests with "X-Deny" are answered 401 before routing. */
static bool pre(struct http_req *r)
{
  if (http_header(r, "X-Deny") == NULL)
    return true;
  http_reply_errorf(r, 401, "UNAUTHORIZED", "denied");
  return false;
}

static void post(struct http_req *r) { __atomic_store_n(&last_status, r->status, __ATOMIC_SEQ_CST); }

/* ---- the server and a raw client ---- */

static struct http_server *server;
static char *sock_path;

static struct http_server_opts opts_unix(const char *path)
{
  return (struct http_server_opts){.unix_path = path, .routes = routes,
                                   .nroutes = SP_ARRAY_SIZE(routes), .pre = pre, .post = post};
}

static struct http_server *start(const struct http_server_opts *o)
{
  struct sp_error *err = NULL;
  struct http_server *s = http_server_start(o, &err);
  ck_assert_msg(s != NULL, "cannot start the server: %s", err ? err->msg : "?");
  return s;
}

static void setup(void)
{
  scratch_make("sandpit-http");
  sock_path = xstrdup(P("http.sock"));
  struct http_server_opts o = opts_unix(sock_path);
  server = start(&o);
}

static void teardown(void)
{
  http_server_stop(server);
  server = NULL;
  free(sock_path);
  rm_rf(scratch);
}

struct resp {
  int status;   /* 0: no status line came */
  char *head;   /* status line and headers */
  char *body;   /* de-chunked when chunked */
  size_t body_len;
  bool closed;  /* the server closed (not a timeout) */
  bool chunk_end; /* a chunked body had its last chunk */
};

static void resp_release(struct resp *r)
{
  free(r->head);
  free(r->body);
  memset(r, 0, sizeof *r);
}

static void dechunk(struct resp *r, const char *p, const char *end)
{
  struct sbuf b = SBUF_INIT;
  while (p < end) {
    char *eol;
    long size = strtol(p, &eol, 16);
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL || eol == p || size < 0)
      break;
    p = nl + 1;
    if (size == 0) {
      r->chunk_end = true;
      break;
    }
    size_t n = SP_MIN((size_t)size, (size_t)(end - p));
    sbuf_add(&b, p, n);
    p += n;
    if (p + 2 <= end && p[0] == '\r' && p[1] == '\n')
      p += 2;
  }
  r->body = sbuf_detach(&b, &r->body_len);
}

/* Splits what came back into status, head and body. */
static struct resp parse_response(const struct sbuf *raw, bool closed)
{
  struct resp r = {.closed = closed};
  const char *s = sbuf_str(raw);
  const char *sep = memmem(s, raw->len, "\r\n\r\n", 4);
  if (sep == NULL || sscanf(s, "HTTP/1.%*d %d", &r.status) != 1) {
    r.status = 0;
    r.head = xstrdup(s);
    r.body = xstrdup("");
    return r;
  }
  r.head = xstrndup(s, (size_t)(sep - s) + 2);
  const char *b = sep + 4, *end = s + raw->len;
  if (strcasestr(r.head, "\r\nTransfer-Encoding: chunked\r\n")) {
    dechunk(&r, b, end);
  } else {
    r.body_len = (size_t)(end - b);
    r.body = xmemdup(b, r.body_len + 1);
    r.body[r.body_len] = '\0';
  }
  return r;
}

/* Sends raw bytes on fd and reads until the server closes. */
static struct resp exchange_fd(int fd, const char *req, size_t len)
{
  sock_send(fd, req, len); /* a server may close early: what came back says why */
  struct sbuf raw = SBUF_INIT;
  bool closed = sock_read_until_close(fd, 10000, &raw);
  close(fd);
  struct resp r = parse_response(&raw, closed);
  sbuf_release(&raw);
  return r;
}

static struct resp exchange(const char *req, size_t len)
{
  return exchange_fd(sock_connect_unix(sock_path), req, len);
}

static struct resp exchange_str(const char *req) { return exchange(req, strlen(req)); }

/* "<method> <target>" with Connection: close and an optional body. */
static struct resp call(const char *method, const char *target, const char *headers,
                        const char *body, size_t body_len)
{
  char *req = xasprintf("%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s"
                        "Content-Length: %zu\r\n\r\n",
                        method, target, headers ? headers : "", body_len);
  struct sbuf sb = SBUF_INIT;
  sbuf_addstr(&sb, req);
  if (body_len)
    sbuf_add(&sb, body, body_len);
  free(req);
  struct resp r = exchange(sb.buf, sb.len);
  sbuf_release(&sb);
  return r;
}

static struct resp get(const char *target) { return call("GET", target, NULL, NULL, 0); }

static bool has_header(const struct resp *r, const char *line)
{
  char *want = xasprintf("\r\n%s\r\n", line);
  bool found = strcasestr(r->head, want) != NULL;
  free(want);
  return found;
}

/* The response is `status` with exactly this body. */
static void expect(struct resp r, int status, const char *body)
{
  ck_assert_msg(r.status == status, "status %d, want %d; head: %s", r.status, status, r.head);
  ck_assert_str_eq(r.body, body);
  ck_assert(r.closed);
  resp_release(&r);
}

/* The response is a JSON error with this status, code and message. */
static void expect_error(struct resp r, int status, const char *code, const char *message)
{
  ck_assert_msg(r.status == status, "status %d, want %d; head: %s", r.status, status, r.head);
  ck_assert_msg(has_header(&r, "Content-Type: application/json"), "head: %s", r.head);
  cleanup_json cJSON *j = cJSON_Parse(r.body);
  ck_assert_msg(j != NULL, "not JSON: %s", r.body);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "code")->valuestring, code);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "message")->valuestring, message);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "httpStatus")->valueint, status);
  ck_assert(cJSON_IsObject(cJSON_GetObjectItem(j, "context")));
  resp_release(&r);
}

/* Waits up to 5 s for *v to reach want. */
static void wait_for(int *v, int want)
{
  for (int i = 0; i < 500 && __atomic_load_n(v, __ATOMIC_SEQ_CST) != want; i++)
    usleep(10000);
  ck_assert_int_eq(__atomic_load_n(v, __ATOMIC_SEQ_CST), want);
}

/* ---- routing ---- */

START_TEST(routes_and_captures)
{
  struct resp r = get("/hello");
  ck_assert(has_header(&r, "Content-Type: text/plain"));
  expect(r, 200, "hello");
  expect(get("/api/process/p-1/logs"), 200, "p-1");
  expect(get("/a/one/b/two"), 200, "one|two");
  expect(get("/files/dir/sub/a.txt"), 200, "dir/sub/a.txt");
  /* decoded before matching */
  expect(get("/api/process/a%20b/logs"), 200, "a b");
  r = get("/hello?x=1");
  expect(r, 200, "hello");
  expect(call("DELETE", "/hello", NULL, NULL, 0), 200, "hello");
}
END_TEST

START_TEST(not_found)
{
  expect_error(get("/nope"), 404, "NOT_FOUND", "no route for GET /nope");
  /* a capture never matches an empty segment, nor a literal a longer one */
  expect_error(get("/api/process//logs"), 404, "NOT_FOUND", "no route for GET /api/process//logs");
  expect_error(get("/hello/"), 404, "NOT_FOUND", "no route for GET /hello/");
  expect_error(get("/hellox"), 404, "NOT_FOUND", "no route for GET /hellox");
  expect_error(get("/files"), 404, "NOT_FOUND", "no route for GET /files");
  expect_error(get("/api/process/p/logs/more"), 404, "NOT_FOUND",
               "no route for GET /api/process/p/logs/more");
  ck_assert_int_eq(handled, 0);
  wait_for(&last_status, 404);
}
END_TEST

START_TEST(method_not_allowed)
{
  expect_error(call("POST", "/hello", NULL, NULL, 0), 405, "METHOD_NOT_ALLOWED",
               "POST is not allowed on /hello");
  expect_error(call("BREW", "/hello", NULL, NULL, 0), 405, "METHOD_NOT_ALLOWED",
               "BREW is not allowed on /hello");
  /* "*" takes every method */
  expect(call("PATCH", "/any", NULL, NULL, 0), 200, "PATCH");
  expect(call("BREW", "/any", NULL, NULL, 0), 200, "BREW");
}
END_TEST

START_TEST(query_and_headers)
{
  expect(call("GET", "/query?a=1&b=x%20y", "X-Custom: v w\r\n", NULL, 0), 200, "1,x y,v w");
  expect(get("/query"), 200, "(none),(none),(none)");
  /* the JSON reply, and the target as it was sent beside the decoded path */
  struct resp r = call("POST", "/json?k=%2F", NULL, NULL, 0);
  ck_assert_int_eq(r.status, 201);
  ck_assert(has_header(&r, "Content-Type: application/json"));
  ck_assert_str_eq(r.body, "{\"url\":\"/json\",\"raw\":\"/json?k=%2F\"}");
  resp_release(&r);
}
END_TEST

START_TEST(handler_without_reply)
{
  expect_error(get("/silent"), 500, "INTERNAL_ERROR", "handler gave no response");
}
END_TEST

START_TEST(pre_and_post_hooks)
{
  expect_error(call("GET", "/hello", "X-Deny: 1\r\n", NULL, 0), 401, "UNAUTHORIZED", "denied");
  ck_assert_int_eq(handled, 0);
  wait_for(&last_status, 401);
  /* refused with a body on the way: it is read, then the answer comes */
  char body[5000];
  memset(body, 'x', sizeof body);
  expect_error(call("POST", "/echo", "X-Deny: 1\r\n", body, sizeof body), 401, "UNAUTHORIZED",
               "denied");
  ck_assert_int_eq(handled, 0);
  expect(get("/hello"), 200, "hello");
  wait_for(&last_status, 200);
}
END_TEST

/* ---- bodies ---- */

START_TEST(body_limits)
{
  expect(call("POST", "/echo", NULL, "0123456789abcdef", 16), 200, "0123456789abcdef");
  expect_error(call("POST", "/echo", NULL, "0123456789abcdefg", 17), 413, "PAYLOAD_TOO_LARGE",
               "request body is larger than 16 bytes");
  ck_assert_int_eq(handled, 1);

  /* the default limit, 1 MiB */
  size_t mib = 1 << 20;
  char *big = xmalloc(mib + 1);
  for (size_t i = 0; i <= mib; i++)
    big[i] = (char)('a' + i % 26);
  struct resp r = call("POST", "/big", NULL, big, mib);
  ck_assert_int_eq(r.status, 200);
  ck_assert_uint_eq(r.body_len, mib);
  ck_assert_int_eq(memcmp(r.body, big, mib), 0);
  resp_release(&r);
  expect_error(call("POST", "/big", NULL, big, mib + 1), 413, "PAYLOAD_TOO_LARGE",
               "request body is larger than 1048576 bytes");
  free(big);
}
END_TEST

START_TEST(chunked_request_bodies)
{
  expect(exchange_str("POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
         200, "hello world");
  expect_error(exchange_str("POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n"
                            "9\r\n123456789\r\n9\r\n123456789\r\n0\r\n\r\n"),
               413, "PAYLOAD_TOO_LARGE", "request body is larger than 16 bytes");
}
END_TEST

/* A body after an unknown route is read before the 404, so the client
 * gets the answer instead of a reset. */
START_TEST(not_found_with_a_body)
{
  size_t n = 200000;
  char *body = xmalloc(n);
  memset(body, 'b', n);
  expect_error(call("POST", "/nope", NULL, body, n), 404, "NOT_FOUND", "no route for POST /nope");
  free(body);
}
END_TEST

START_TEST(streamed_request_body)
{
  char body[2000];
  memset(body, 'c', sizeof body);
  expect(call("PUT", "/count", NULL, body, 999), 200, "999");
  expect(call("PUT", "/count", NULL, NULL, 0), 200, "0");
  expect_error(call("PUT", "/count", NULL, body, sizeof body), 422, "TOO_MUCH",
               "more than 1000 bytes");
}
END_TEST

/* ---- streamed responses ---- */

START_TEST(stream_response)
{
  struct resp r = get("/stream");
  ck_assert_int_eq(r.status, 200);
  ck_assert(has_header(&r, "Content-Type: text/event-stream"));
  ck_assert(has_header(&r, "Cache-Control: no-cache"));
  ck_assert(has_header(&r, "Transfer-Encoding: chunked"));
  ck_assert(r.chunk_end);
  ck_assert_str_eq(r.body, "part 1\npart 2\npart 3\n");
  resp_release(&r);
  wait_for(&streams_freed, 1);
}
END_TEST

/* An aborted stream cuts the connection: the body has no last chunk. */
START_TEST(stream_abort)
{
  struct resp r = get("/abort");
  ck_assert_int_eq(r.status, 200);
  ck_assert(r.closed);
  ck_assert(!r.chunk_end);
  ck_assert_str_eq(r.body, "partial");
  resp_release(&r);
  wait_for(&streams_freed, 1);
}
END_TEST

struct stopper {
  int64_t took_ms;
};

static void *stop_server(void *arg)
{
  struct stopper *st = arg;
  int64_t t0 = sp_monotonic_ms();
  http_server_stop(server);
  st->took_ms = sp_monotonic_ms() - t0;
  return NULL;
}

/* A stream that never ends does not hold up a shutdown. */
START_TEST(stop_ends_streams)
{
  int fd = sock_connect_unix(sock_path);
  const char *req = "GET /forever HTTP/1.1\r\nHost: t\r\n\r\n";
  ck_assert(sock_send(fd, req, strlen(req)));
  char buf[4096];
  ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
  ck_assert_int_gt(n, 0);
  buf[n] = '\0';
  ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
  struct stopper st = {0};
  pthread_t t;
  pthread_create(&t, NULL, stop_server, &st);
  struct sbuf rest = SBUF_INIT;
  ck_assert(sock_read_until_close(fd, 10000, &rest));
  pthread_join(t, NULL);
  server = NULL;
  ck_assert_msg(st.took_ms < 5000, "stop took %lld ms", (long long)st.took_ms);
  ck_assert_int_eq(streams_freed, 1);
  sbuf_release(&rest);
  close(fd);
}
END_TEST

/* ---- takeover and upgrades ---- */

static bool takeover(void *app, int fd, const char *head, size_t len,
                     const struct sockaddr_storage *peer)
{
  (void)app;
  (void)peer;
  if (len < 9 || memcmp(head, "GET /raw ", 9) != 0)
    return false;
  const char *marker = memmem(head, len, "X-Marker: ", 10) ? "seen" : "unseen";
  char *out = xasprintf("HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                        strlen(marker), marker);
  sock_send(fd, out, strlen(out));
  free(out);
  close(fd);
  return true;
}

START_TEST(takeover_first)
{
  http_server_stop(server);
  struct http_server_opts o = opts_unix(sock_path);
  o.takeover = takeover;
  server = start(&o);
  expect(call("GET", "/raw", "X-Marker: 1\r\n", NULL, 0), 200, "seen");
  ck_assert_int_eq(handled, 0);
  /* what it does not take, the server answers */
  expect(get("/hello"), 200, "hello");
  expect_error(get("/nope"), 404, "NOT_FOUND", "no route for GET /nope");
}
END_TEST

START_TEST(upgrade)
{
  int fd = sock_connect_unix(sock_path);
  const char *req = "GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                    "Upgrade: echo\r\n\r\nearly";
  ck_assert(sock_send(fd, req, strlen(req)));
  struct sbuf got = SBUF_INIT;
  char buf[4096];
  const char *said;
  while ((said = strstr(sbuf_str(&got), "extra=")) == NULL || strchr(said, '\n') == NULL) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    ck_assert_int_gt(n, 0);
    sbuf_add(&got, buf, (size_t)n);
  }
  ck_assert_msg(strncmp(got.buf, "HTTP/1.1 101 ", 13) == 0, "%s", got.buf);
  ck_assert_msg(strcasestr(got.buf, "\r\nUpgrade: echo\r\n") != NULL, "%s", got.buf);
  ck_assert_msg(strstr(got.buf, "\r\n\r\nextra=early\n") != NULL, "%s", got.buf);
  ck_assert(sock_send(fd, "ping", 4));
  sbuf_reset(&got);
  ck_assert(sock_read_until_close(fd, 10000, &got));
  ck_assert_str_eq(sbuf_str(&got), "ping");
  sbuf_release(&got);
  close(fd);
}
END_TEST

/* Two socket pairs a and b: a splice runs between a[0] and b[0], the test
 * holds a[1] and b[1]. */
static void pairs_open(int a[2], int b[2])
{
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
}

static void pairs_close(int a[2], int b[2])
{
  for (int i = 0; i < 2; i++) {
    close(a[i]);
    close(b[i]);
  }
}

/* What end fd reads until its peer closes, compared with want. */
static void read_all_is(int fd, const char *want)
{
  struct sbuf got = SBUF_INIT;
  ck_assert(sock_read_until_close(fd, 5000, &got));
  ck_assert_str_eq(sbuf_str(&got), want);
  sbuf_release(&got);
}

/* to_b written at a[1], to_a at b[1], both ends then shut for writing: a
 * splice (through f, if any) passes want_b to b[1] and to_a to a[1]. */
static void splice_case(const struct sp_splice_filter *f, const char *to_b, const char *to_a,
                        const char *want_b)
{
  int a[2], b[2];
  pairs_open(a, b);
  ck_assert(sock_send(a[1], to_b, strlen(to_b)));
  ck_assert(sock_send(b[1], to_a, strlen(to_a)));
  shutdown(a[1], SHUT_WR);
  shutdown(b[1], SHUT_WR);
  uint64_t ab = 0, ba = 0;
  sp_splice(a[0], b[0], NULL, f, &ab, &ba);
  ck_assert_uint_eq(ab, strlen(want_b));
  ck_assert_uint_eq(ba, strlen(to_a));
  read_all_is(b[1], want_b);
  read_all_is(a[1], to_a);
  pairs_close(a, b);
}

START_TEST(splice_both_ways) { splice_case(NULL, "to b", "to a, longer", "to b"); }
END_TEST

/* a's bytes through a filter: what it makes of them is what b gets and
 * what is counted; a refusal drops both directions. */
static int upper(void *ud, const char *in, size_t n, struct sbuf *out)
{
  int *calls = ud;
  (*calls)++;
  for (size_t i = 0; i < n; i++) {
    if (in[i] == '!')
      return -1;
    sbuf_addch(out, in[i] >= 'a' && in[i] <= 'z' ? (char)(in[i] - 32) : in[i]);
    if (in[i] == '+')
      sbuf_addch(out, '+');
  }
  return 0;
}

START_TEST(splice_filter)
{
  int calls = 0;
  struct sp_splice_filter f = {upper, &calls};
  splice_case(&f, "to b+", "to a", "TO B++");
  ck_assert_int_ge(calls, 1);

  /* refused: the splice ends although b's end never closes */
  int a[2], b[2];
  pairs_open(a, b);
  ck_assert(sock_send(a[1], "no!", 3));
  uint64_t ab = 1;
  sp_splice(a[0], b[0], NULL, &f, &ab, NULL);
  ck_assert_uint_eq(ab, 0);
  read_all_is(b[1], "");
  pairs_close(a, b);
}
END_TEST

/* 4 MiB through a splice whose far end is non-blocking and read slowly:
 * a full socket is waited for, not taken for a failure. */
#define SLOW_TOTAL (4u << 20)

static void *slow_writer(void *arg)
{
  int fd = *(int *)arg;
  static char chunk[65536];
  memset(chunk, 'z', sizeof chunk);
  for (size_t sent = 0; sent < SLOW_TOTAL; sent += sizeof chunk)
    ck_assert(sock_send(fd, chunk, sizeof chunk));
  shutdown(fd, SHUT_WR);
  return NULL;
}

static void *slow_reader(void *arg)
{
  int fd = *(int *)arg;
  size_t *got = xcalloc(1, sizeof *got);
  char buf[16384];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
    *got += (size_t)n;
    usleep(2000);
  }
  shutdown(fd, SHUT_WR);
  return got;
}

START_TEST(splice_slow_reader)
{
  int a[2], b[2];
  pairs_open(a, b);
  ck_assert_int_eq(sp_set_nonblock(b[0], true), 0);
  pthread_t w, r;
  ck_assert_int_eq(pthread_create(&w, NULL, slow_writer, &a[1]), 0);
  ck_assert_int_eq(pthread_create(&r, NULL, slow_reader, &b[1]), 0);
  uint64_t ab = 0;
  sp_splice(a[0], b[0], NULL, NULL, &ab, NULL);
  void *got;
  pthread_join(w, NULL);
  pthread_join(r, &got);
  ck_assert_uint_eq(ab, SLOW_TOTAL);
  ck_assert_uint_eq(*(size_t *)got, SLOW_TOTAL);
  free(got);
  pairs_close(a, b);
}
END_TEST

/* A splice whose ends stay open ends once its stop flag is set. */
START_TEST(splice_stops)
{
  int a[2], b[2];
  pairs_open(a, b);
  volatile int stop = 1;
  int64_t t0 = sp_monotonic_ms();
  sp_splice(a[0], b[0], &stop, NULL, NULL, NULL);
  ck_assert_int_lt(sp_monotonic_ms() - t0, 2000);
  pairs_close(a, b);
}
END_TEST

/* ---- listening ---- */

START_TEST(unix_socket_rules)
{
  struct stat st;
  ck_assert_int_eq(stat(sock_path, &st), 0);
  ck_assert(S_ISSOCK(st.st_mode));
  ck_assert_int_eq(st.st_mode & 0777, 0660);

  /* a live server keeps its socket */
  struct sp_error *err = NULL;
  struct http_server_opts o = opts_unix(sock_path);
  ck_assert_ptr_null(http_server_start(&o, &err));
  ck_assert_str_eq(err->code, "ADDRESS_IN_USE");
  ck_assert_int_eq(err->http_status, 409);
  char *want = xasprintf("another server is listening on %s", sock_path);
  ck_assert_str_eq(err->msg, want);
  free(want);
  sp_error_free(err);
  err = NULL;
  expect(get("/hello"), 200, "hello");

  /* stopping removes it */
  http_server_stop(server);
  server = NULL;
  ck_assert_int_eq(access(sock_path, F_OK), -1);

  /* a stale socket from a dead server is replaced */
  close(sock_listen_unix(sock_path));
  ck_assert_int_eq(access(sock_path, F_OK), 0);
  server = start(&o);
  expect(get("/hello"), 200, "hello");

  char long_path[200];
  memset(long_path, 'p', sizeof long_path - 1);
  long_path[sizeof long_path - 1] = '\0';
  o.unix_path = long_path;
  ck_assert_ptr_null(http_server_start(&o, &err));
  ck_assert_str_eq(err->code, "INVALID_CONFIG");
  ck_assert(strstr(err->msg, "socket path too long") != NULL);
  sp_error_free(err);
}
END_TEST

START_TEST(loopback_port)
{
  struct http_server_opts o = opts_unix(NULL);
  o.host = "127.0.0.1";
  o.port = 0;
  struct http_server *tcp = start(&o);
  int port = http_server_port(tcp);
  ck_assert_int_gt(port, 0);
  const char *req = "GET /a/1/b/2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  expect(exchange_fd(sock_connect_tcp(port), req, strlen(req)), 200, "1|2");

  /* the port is taken */
  struct sp_error *err = NULL;
  o.port = port;
  ck_assert_ptr_null(http_server_start(&o, &err));
  char *want = xasprintf("cannot listen on 127.0.0.1:%d: %s", port, strerror(EADDRINUSE));
  ck_assert_str_eq(err->msg, want);
  free(want);
  sp_error_free(err);
  err = NULL;
  http_server_stop(tcp);

  o.host = "localhost";
  o.port = 0;
  tcp = start(&o);
  expect(exchange_fd(sock_connect_tcp(http_server_port(tcp)), req, strlen(req)), 200, "1|2");
  http_server_stop(tcp);

  o.host = "example.com";
  ck_assert_ptr_null(http_server_start(&o, &err));
  ck_assert_str_eq(err->code, "INVALID_CONFIG");
  ck_assert_str_eq(err->msg, "listen host 'example.com' must be an IP address or localhost");
  sp_error_free(err);
}
END_TEST

/* ---- hostile requests ---- */

/* After each, the server still answers. */
static void still_serving(void) { expect(get("/hello"), 200, "hello"); }

START_TEST(huge_headers)
{
  struct sbuf req = SBUF_INIT;
  sbuf_addf(&req, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Big: %0*d\r\n\r\n",
            100000, 0);
  struct resp r = exchange(req.buf, req.len);
  ck_assert_msg(r.status == 431, "status %d; head: %.200s", r.status, r.head);
  resp_release(&r);
  sbuf_reset(&req);
  sbuf_addstr(&req, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
  for (int i = 0; i < 5000; i++)
    sbuf_addf(&req, "X-H-%d: %d\r\n", i, i);
  sbuf_addstr(&req, "\r\n");
  r = exchange(req.buf, req.len);
  ck_assert_msg(r.status == 431, "status %d; head: %.200s", r.status, r.head);
  resp_release(&r);
  sbuf_release(&req);
  ck_assert_int_eq(handled, 0);
  still_serving();
}
END_TEST

START_TEST(malformed_requests)
{
  static const struct {
    const char *req;
    int status; /* 0: closed without an answer */
  } bad[] = {
      {"garbage\r\n\r\n", 0},
      {"GET\r\n\r\n", 0},
      {"GET /hello HTTP/9.9\r\nHost: t\r\n\r\n", 505},
      {"GET /hello HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400},
      {"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n", 400},
      {"GET /hello HTTP/1.1\r\nHost: t\r\nBad Header Without Colon\r\n\r\n", 400},
  };
  for (size_t i = 0; i < SP_ARRAY_SIZE(bad); i++) {
    struct resp r = exchange_str(bad[i].req);
    ck_assert_msg(r.status == bad[i].status && r.closed, "request %zu: status %d, want %d; %.200s",
                  i, r.status, bad[i].status, r.head);
    resp_release(&r);
  }
  ck_assert_int_eq(handled, 0);
  still_serving();
}
END_TEST

static void *client(void *arg)
{
  (void)arg;
  struct resp r = get("/api/process/x/logs");
  bool ok = r.status == 200 && strcmp(r.body, "x") == 0;
  resp_release(&r);
  return (void *)(intptr_t)ok;
}

START_TEST(many_clients_at_once)
{
  pthread_t t[64];
  for (size_t i = 0; i < SP_ARRAY_SIZE(t); i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, client, NULL), 0);
  int ok = 0;
  for (size_t i = 0; i < SP_ARRAY_SIZE(t); i++) {
    void *rv;
    pthread_join(t[i], &rv);
    ok += rv != NULL;
  }
  ck_assert_int_eq(ok, (int)SP_ARRAY_SIZE(t));
}
END_TEST

static Suite *http_suite(void)
{
  Suite *s = suite_create("http");
  check_add_tcase(s, "routing", 30, setup, teardown,
                  CHECK_TESTS(routes_and_captures, not_found, method_not_allowed,
                              query_and_headers, handler_without_reply, pre_and_post_hooks));
  check_add_tcase(s, "bodies", 30, setup, teardown,
                  CHECK_TESTS(body_limits, chunked_request_bodies, not_found_with_a_body,
                              streamed_request_body, stream_response, stream_abort,
                              stop_ends_streams));
  check_add_tcase(s, "connections", 30, setup, teardown,
                  CHECK_TESTS(takeover_first, upgrade, splice_both_ways, splice_filter, splice_slow_reader, splice_stops, unix_socket_rules,
                              loopback_port));
  check_add_tcase(s, "hostile", 60, setup, teardown,
                  CHECK_TESTS(huge_headers, malformed_requests, many_clients_at_once));
  return s;
}

CHECK_MAIN(http_suite)
