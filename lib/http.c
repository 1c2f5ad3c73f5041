#include "http.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <poll.h>
#include <pthread.h>

#include <microhttpd.h>

#include "error.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define DEFAULT_MAX_BODY (1u << 20)

struct http_server {
  struct MHD_Daemon *daemon;
  pthread_t acceptor;
  bool own_accept;
  struct http_server_opts opts;
  char *unix_path;
  int listen_fd;
  int port;
  volatile int stopping;
  volatile int quiesced; /* no longer accepting: the listening socket is closed */
  int accepted_threads; /* connections in our own accept path (atomic) */
  int active;           /* requests received and not yet completed (atomic) */
};

/* Connections being peeked at or carried by takeover at once; past it new
 * ones are closed, so a flood of idle connections cannot exhaust threads. */
#define MAX_TAKEOVER_THREADS 4096

static void queue_response(struct http_req *r, int status, struct MHD_Response *resp);

struct stream_ctx {
  http_stream_cb cb;
  void *ud;
  void (*ud_free)(void *);
  struct http_server *server;
  struct sbuf out; /* produced, not yet sent */
  size_t off;
  bool ended;
};

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
  (void)pos;
  struct stream_ctx *sc = cls;
  for (;;) {
    if (sc->off < sc->out.len) {
      size_t n = SP_MIN(max, sc->out.len - sc->off);
      memcpy(buf, sc->out.buf + sc->off, n);
      sc->off += n;
      return (ssize_t)n;
    }
    sbuf_reset(&sc->out);
    sc->off = 0;
    if (sc->ended || sc->server->stopping)
      return MHD_CONTENT_READER_END_OF_STREAM;
    int rc = sc->cb(sc->ud, &sc->out);
    if (rc == HTTP_STREAM_ABORT)
      return MHD_CONTENT_READER_END_WITH_ERROR;
    sc->ended = rc == HTTP_STREAM_END;
  }
}

static void stream_free(void *cls)
{
  struct stream_ctx *sc = cls;
  if (sc->ud_free)
    sc->ud_free(sc->ud);
  sbuf_release(&sc->out);
  free(sc);
}

void http_reply_stream(struct http_req *r, int status, const char *content_type,
                       http_stream_cb cb, void *ud, void (*ud_free)(void *))
{
  struct stream_ctx *sc = xcalloc(1, sizeof *sc);
  sc->cb = cb;
  sc->ud = ud;
  sc->ud_free = ud_free;
  sc->server = r->server;
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, sc, stream_free);
  if (content_type)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  queue_response(r, status, resp);
}

void http_sse_event(struct sbuf *out, const char *event, const cJSON *data)
{
  char *s = json_print(data);
  if (event)
    sbuf_addf(out, "event: %s\n", event);
  sbuf_addf(out, "data: %s\n\n", s);
  free(s);
}

bool http_stopping(const struct http_req *r) { return r->server->stopping; }
const volatile int *http_stop_flag(const struct http_req *r) { return &r->server->stopping; }

/* Split `url` against `pattern`; captures are copied into r->param_buf. */
static bool route_match(const char *pattern, const char *url, struct http_req *r)
{
  struct sbuf caps = SBUF_INIT;
  size_t offsets[HTTP_MAX_PARAMS];
  int n = 0;
  const char *p = pattern, *u = url;
  while (*p && *u) {
    if (*p != '/' || *u != '/')
      goto no;
    p++;
    u++;
    const char *pe = strchrnul(p, '/');
    const char *ue = strchrnul(u, '/');
    if (p[0] == '*' && pe == p + 1) {
      if (n == HTTP_MAX_PARAMS)
        goto no;
      offsets[n++] = caps.len;
      sbuf_add(&caps, u, strlen(u));
      sbuf_addch(&caps, '\0');
      u += strlen(u);
      p = pe;
      break;
    }
    if (p[0] == ':') {
      if (ue == u || n == HTTP_MAX_PARAMS)
        goto no;
      offsets[n++] = caps.len;
      sbuf_add(&caps, u, (size_t)(ue - u));
      sbuf_addch(&caps, '\0');
    } else if (pe - p != ue - u || memcmp(p, u, (size_t)(pe - p)) != 0) {
      goto no;
    }
    p = pe;
    u = ue;
  }
  if (*p || *u)
    goto no;
  free(r->param_buf);
  r->param_buf = sbuf_detach(&caps, NULL);
  for (int i = 0; i < HTTP_MAX_PARAMS; i++)
    r->params[i] = i < n ? r->param_buf + offsets[i] : NULL;
  return true;
no:
  sbuf_release(&caps);
  return false;
}

static void route_request(struct http_server *s, struct http_req *r)
{
  bool path_matched = false;
  for (size_t i = 0; i < s->opts.nroutes; i++) {
    const struct http_route *rt = &s->opts.routes[i];
    if (!route_match(rt->pattern, r->url, r))
      continue;
    path_matched = true;
    if (strcmp(rt->method, "*") == 0 || strcmp(rt->method, r->method) == 0) {
      r->route = rt;
      return;
    }
  }
  r->route = NULL;
  r->status = path_matched ? 405 : 404;
}

/* An http_response is libmicrohttpd's, under a name of ours. */
static struct MHD_Response *mhd(struct http_response *resp) { return (struct MHD_Response *)resp; }
static struct http_response *ours(struct MHD_Response *resp) { return (struct http_response *)resp; }

struct http_response *http_response_buffer(const void *body, size_t len)
{
  return ours(MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY));
}

struct http_response *http_response_take(char *body, size_t len)
{
  return ours(MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE));
}

struct http_response *http_response_fd(int fd, uint64_t size)
{
  return ours(MHD_create_response_from_fd_at_offset64(size, fd, 0));
}

struct reader_ctx {
  http_read_fn read;
  void *ud;
  void (*ud_free)(void *);
};

static ssize_t reader_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  (void)pos;
  struct reader_ctx *c = cls;
  long n = c->read(c->ud, buf, max);
  if (n == HTTP_STREAM_END)
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (n < 0)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  return (ssize_t)n;
}

static void reader_free(void *cls)
{
  struct reader_ctx *c = cls;
  if (c->ud_free)
    c->ud_free(c->ud);
  free(c);
}

struct http_response *http_response_reader(uint64_t size, http_read_fn read, void *ud,
                                           void (*ud_free)(void *))
{
  struct reader_ctx *c = xcalloc(1, sizeof *c);
  *c = (struct reader_ctx){read, ud, ud_free};
  return ours(MHD_create_response_from_callback(
      size == HTTP_SIZE_UNKNOWN ? MHD_SIZE_UNKNOWN : size, 65536, reader_read, c, reader_free));
}

void http_response_header(struct http_response *resp, const char *name, const char *value)
{
  MHD_add_response_header(mhd(resp), name, value);
}

static void queue_response(struct http_req *r, int status, struct MHD_Response *resp)
{
  if (r->responded) {
    MHD_destroy_response(resp);
    return;
  }
  r->responded = true;
  r->status = status;
  if (!r->final) {
    /* Answered from the head (no route, no auth): the client is still
     * sending its body; read it first, or it gets a reset instead. */
    r->deferred = resp;
    r->deferred_status = status;
    return;
  }
  MHD_queue_response(r->conn, (unsigned int)status, resp);
  MHD_destroy_response(resp);
}

void http_reply_response(struct http_req *r, int status, struct http_response *resp)
{
  queue_response(r, status, mhd(resp));
}

/* Past this much of a refused body, answer anyway and close. */
#define MAX_DRAIN (16u << 20)

static void queue_deferred(struct http_req *r)
{
  if (r->deferred) {
    MHD_queue_response(r->conn, (unsigned int)r->deferred_status, r->deferred);
    MHD_destroy_response(r->deferred);
    r->deferred = NULL;
  }
}

void http_reply(struct http_req *r, int status, const char *content_type,
                const void *body, size_t len)
{
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (content_type)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  queue_response(r, status, resp);
}

void http_reply_json(struct http_req *r, int status, const cJSON *j)
{
  char *s = json_print(j);
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  queue_response(r, status, resp);
}

void http_reply_error(struct http_req *r, struct sp_error **err)
{
  cleanup_json cJSON *j = json_error_body(*err);
  int status = *err ? (*err)->http_status : 500;
  char *s = json_print(j);
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  if (*err && (*err)->retry_after_s > 0) {
    char secs[16];
    snprintf(secs, sizeof secs, "%d", (*err)->retry_after_s);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, secs);
  }
  /* a server that no longer accepts lets its connections go */
  if (r->server->quiesced)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  queue_response(r, status, resp);
  sp_error_free(*err);
  *err = NULL;
}

void http_reply_errorf(struct http_req *r, int status, const char *code,
                       const char *fmt, ...)
{
  struct sp_error *e = NULL;
  va_list ap;
  va_start(ap, fmt);
  sp_error_vcode(&e, code, status, 0, fmt, ap);
  va_end(ap);
  http_reply_error(r, &e);
}

const char *http_query(struct http_req *r, const char *key)
{
  return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(struct http_req *r, const char *name)
{
  return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

struct each_ctx {
  void (*fn)(void *ud, const char *name, const char *value);
  void *ud;
};

static enum MHD_Result each_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
  (void)kind;
  struct each_ctx *c = cls;
  c->fn(c->ud, key, value);
  return MHD_YES;
}

void http_header_each(struct http_req *r,
                      void (*fn)(void *ud, const char *name, const char *value), void *ud)
{
  struct each_ctx c = {fn, ud};
  MHD_get_connection_values(r->conn, MHD_HEADER_KIND, each_header, &c);
}

cJSON *http_body_json(struct http_req *r, struct sp_error **err)
{
  return json_parse_object(r->body.buf, r->body.len, err);
}

static void request_free(struct http_req *r)
{
  if (r == NULL)
    return;
  free(r->raw_uri);
  if (r->user_free)
    r->user_free(r->user);
  if (r->deferred)
    MHD_destroy_response(r->deferred);

  sbuf_release(&r->body);
  sp_error_free(r->body_err);
  free(r->param_buf);
  free(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
  (void)version;
  struct http_server *s = cls;
  struct http_req *r = *con_cls;
  if (r == NULL) {
    r = xcalloc(1, sizeof *r);
    *con_cls = r;
    __atomic_add_fetch(&s->active, 1, __ATOMIC_RELAXED);
  }
  if (r->conn == NULL) {
    r->conn = conn;
    r->server = s;
    r->method = method;
    r->url = url;
    r->app = s->opts.app;
    r->start_us = sp_monotonic_us();
    *con_cls = r;
    route_request(s, r);
    if (s->opts.pre && !s->opts.pre(r))
      return MHD_YES;
    if (r->route == NULL) {
      if (r->status == 405)
        http_reply_errorf(r, 405, "METHOD_NOT_ALLOWED", "%s is not allowed on %s",
                          method, url);
      else
        http_reply_errorf(r, 404, "NOT_FOUND", "no route for %s %s", method, url);
    }
    return MHD_YES;
  }
  if (*upload_data_size != 0) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (r->responded || r->body_err) {
      /* drain what the client still sends, up to a point */
      r->drained += n;
      if (r->drained > MAX_DRAIN) {
        r->final = true;
        if (r->deferred)
          queue_deferred(r);
        else if (r->body_err && !r->responded)
          http_reply_error(r, &r->body_err);
      }
      return MHD_YES;
    }
    if (r->route->on_body) {
      r->route->on_body(r, upload_data, n, &r->body_err);
      return MHD_YES;
    }
    size_t max = r->route->max_body ? r->route->max_body : DEFAULT_MAX_BODY;
    if (r->body.len + n > max) {
      sp_error_code(&r->body_err, "PAYLOAD_TOO_LARGE", 413,
                    "request body is larger than %zu bytes", max);
      return MHD_YES;
    }
    sbuf_add(&r->body, upload_data, n);
    return MHD_YES;
  }
  r->final = true;
  if (r->responded) {
    queue_deferred(r);
    return MHD_YES;
  }
  if (r->body_err) {
    http_reply_error(r, &r->body_err);
    return MHD_YES;
  }
  r->route->handler(r);
  if (!r->responded)
    http_reply_errorf(r, 500, "INTERNAL_ERROR", "handler gave no response");
  return MHD_YES;
}

/* Called before parsing, with the target as sent: keep it for proxies. */
static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
  (void)conn;
  struct http_server *s = cls;
  struct http_req *r = xcalloc(1, sizeof *r);
  r->raw_uri = xstrdup(uri);
  r->server = s;
  r->app = s->opts.app;
  r->start_us = sp_monotonic_us();
  __atomic_add_fetch(&s->active, 1, __ATOMIC_RELAXED);
  return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  (void)conn;
  (void)toe;
  struct http_server *s = cls;
  struct http_req *r = *con_cls;
  /* a request MHD refused before it reached us (e.g. its head was too
   * large) was never routed: nothing to report */
  if (r && r->method && s->opts.post)
    s->opts.post(r);
  if (r)
    __atomic_sub_fetch(&s->active, 1, __ATOMIC_RELAXED);
  request_free(r);
  *con_cls = NULL;
}

static int listen_unix(const char *path, struct sp_error **err)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return sp_error_code(err, "INVALID_CONFIG", 400, "socket path too long: %s", path);
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return sp_error_set(err, errno, "socket");
  /* A stale socket from a dead process is replaced; a live one is not. */
  struct stat st;
  if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
      int live = connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
      close(probe);
      if (live) {
        close(fd);
        return sp_error_code(err, "ADDRESS_IN_USE", 409,
                             "another server is listening on %s", path);
      }
    }
    unlink(path);
  }
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return sp_error_set(err, e, "cannot bind %s", path);
  }
  chmod(path, 0660);
  if (listen(fd, 512) < 0) {
    int e = errno;
    close(fd);
    return sp_error_set(err, e, "cannot listen on %s", path);
  }
  return fd;
}

static int listen_tcp(const char *host, int port, int *bound, struct sp_error **err)
{
  struct sockaddr_storage ss = {0};
  socklen_t slen;
  int family;
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  const char *h = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
  if (inet_pton(AF_INET, h, &sin->sin_addr) == 1) {
    family = AF_INET;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    slen = sizeof *sin;
  } else if (inet_pton(AF_INET6, h, &sin6->sin6_addr) == 1) {
    family = AF_INET6;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    slen = sizeof *sin6;
  } else {
    return sp_error_code(err, "INVALID_CONFIG", 400,
                         "listen host '%s' must be an IP address or localhost", host);
  }
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return sp_error_set(err, errno, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, slen) < 0) {
    int e = errno;
    close(fd);
    return sp_error_set(err, e, "cannot listen on %s:%d", host, port);
  }
  if (listen(fd, 1024) < 0) {
    int e = errno;
    close(fd);
    return sp_error_set(err, e, "cannot listen on %s:%d", host, port);
  }
  getsockname(fd, (struct sockaddr *)&ss, &slen);
  *bound = ntohs(family == AF_INET ? sin->sin_port : sin6->sin6_port);
  return fd;
}

/* ---- our own accept loop, for takeover ---- */

struct accepted {
  struct http_server *s;
  int fd;
  struct sockaddr_storage peer;
  socklen_t peer_len;
};

#define PEEK_MAX 16384
#define PEEK_TIMEOUT_MS 10000

static void *accepted_thread(void *arg)
{
  struct accepted *a = arg;
  struct http_server *s = a->s;
  char head[PEEK_MAX + 1];
  ssize_t n = 0;
  int64_t deadline = sp_monotonic_ms() + PEEK_TIMEOUT_MS;
  /* Look at the request head without taking it off the socket. */
  for (;;) {
    struct pollfd p = {a->fd, POLLIN, 0};
    int64_t left = deadline - sp_monotonic_ms();
    /* in slices, so that a server being stopped is noticed */
    int ready = left > 0 && !s->stopping ? poll(&p, 1, (int)SP_MIN(left, 100)) : -1;
    if (ready < 0)
      break;
    if (ready == 0)
      continue;
    n = recv(a->fd, head, PEEK_MAX, MSG_PEEK);
    if (n <= 0)
      break;
    head[n] = '\0';
    if (memmem(head, (size_t)n, "\r\n\r\n", 4) || n == PEEK_MAX)
      break;
    /* more is coming: wait for it without spinning */
    usleep(1000);
  }
  if (n > 0 && !s->stopping && s->opts.takeover(s->opts.app, a->fd, head, (size_t)n, &a->peer)) {
    free(a);
    __atomic_sub_fetch(&s->accepted_threads, 1, __ATOMIC_RELAXED);
    return NULL;
  }
  if (n <= 0 || s->stopping ||
      MHD_add_connection(s->daemon, a->fd, (struct sockaddr *)&a->peer, a->peer_len) != MHD_YES)
    close(a->fd);
  free(a);
  __atomic_sub_fetch(&s->accepted_threads, 1, __ATOMIC_RELAXED);
  return NULL;
}

static void *acceptor(void *arg)
{
  struct http_server *s = arg;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  while (!s->quiesced) {
    struct accepted *a = xcalloc(1, sizeof *a);
    a->s = s;
    a->peer_len = sizeof a->peer;
    a->fd = accept4(s->listen_fd, (struct sockaddr *)&a->peer, &a->peer_len, SOCK_CLOEXEC);
    if (a->fd < 0) {
      free(a);
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (s->quiesced)
        break;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        usleep(10000);
        continue;
      }
      break;
    }
    if (__atomic_add_fetch(&s->accepted_threads, 1, __ATOMIC_RELAXED) > MAX_TAKEOVER_THREADS) {
      __atomic_sub_fetch(&s->accepted_threads, 1, __ATOMIC_RELAXED);
      close(a->fd);
      free(a);
      continue;
    }
    pthread_t t;
    if (pthread_create(&t, &attr, accepted_thread, a) != 0) {
      __atomic_sub_fetch(&s->accepted_threads, 1, __ATOMIC_RELAXED);
      close(a->fd);
      free(a);
    }
  }
  pthread_attr_destroy(&attr);
  return NULL;
}

/* ---- upgrades ---- */

struct upgrade {
  http_upgraded_fn fn;
  void *ud;
  void (*ud_free)(void *);
};

static void upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra,
                     size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
  (void)conn;
  (void)con_cls;
  struct upgrade *u = cls;
  u->fn(u->ud, sock, extra, extra_len);
  MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
  if (u->ud_free)
    u->ud_free(u->ud);
  free(u);
}

void http_reply_upgrade(struct http_req *r, const char *protocol, http_upgraded_fn fn, void *ud,
                        void (*ud_free)(void *))
{
  struct upgrade *u = xcalloc(1, sizeof *u);
  u->fn = fn;
  u->ud = ud;
  u->ud_free = ud_free;
  struct MHD_Response *resp = MHD_create_response_for_upgrade(upgraded, u);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, protocol);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "Upgrade");
  queue_response(r, 101, resp);
}

/* One direction of sp_splice: a read from `from`, passed (through the
 * filter, if any) to `to`.  false when the direction ended: its EOF goes on
 * as a shutdown, and a failure to pass bytes on (or a filter's refusal)
 * closes the other direction too. */
/* Write all of p[0..n) to fd, which may be non-blocking: a full socket is
 * waited for (a slow reader is not a failure) until it takes no byte for
 * SPLICE_STALL_MS or *stop is set.  -1 with errno. */
#define SPLICE_STALL_MS 30000
static int write_all_waiting(int fd, const char *p, size_t n, const volatile int *stop)
{
  int64_t last = sp_monotonic_ms();
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      last = sp_monotonic_ms();
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && errno == ENOTSOCK)
      return sp_write_all(fd, p, n);
    if (w == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
      return -1;
    if ((stop && *stop) || sp_monotonic_ms() - last >= SPLICE_STALL_MS) {
      errno = ETIMEDOUT;
      return -1;
    }
    struct pollfd pf = {fd, POLLOUT, 0};
    poll(&pf, 1, 200);
  }
  return 0;
}

static bool splice_one(int from, int to, const struct sp_splice_filter *f, char *buf, size_t cap,
                       struct sbuf *fout, uint64_t *moved, bool *other_open,
                       const volatile int *stop)
{
  ssize_t r = recv(from, buf, cap, 0);
  if (r < 0 && (errno == EINTR || errno == EAGAIN))
    return true;
  if (r > 0) {
    const char *p = buf;
    size_t n = (size_t)r;
    int ok = 0;
    if (f) {
      sbuf_reset(fout);
      ok = f->fn(f->ud, buf, n, fout);
      p = fout->buf;
      n = fout->len;
    }
    if (ok == 0 && (n == 0 || write_all_waiting(to, p, n, stop) == 0)) {
      *moved += n;
      return true;
    }
    *other_open = false; /* `to` cannot take more: give up on both */
  }
  shutdown(to, SHUT_WR);
  return false;
}

void sp_splice(int a, int b, const volatile int *stop, const struct sp_splice_filter *a_filter,
               uint64_t *a_to_b, uint64_t *b_to_a)
{
  char buf[65536];
  struct sbuf fout = SBUF_INIT;
  bool a_open = true, b_open = true;
  uint64_t ab = 0, ba = 0;
  while (a_open || b_open) {
    struct pollfd p[2];
    int n = 0, ia = -1, ib = -1;
    if (a_open) {
      ia = n;
      p[n++] = (struct pollfd){a, POLLIN, 0};
    }
    if (b_open) {
      ib = n;
      p[n++] = (struct pollfd){b, POLLIN, 0};
    }
    int ready = poll(p, (nfds_t)n, stop ? 200 : -1);
    if (ready < 0 && errno != EINTR)
      break;
    if (stop && *stop)
      break;
    if (ready <= 0)
      continue;
    if (ia >= 0 && p[ia].revents)
      a_open = splice_one(a, b, a_filter, buf, sizeof buf, &fout, &ab, &b_open, stop) && a_open;
    if (ib >= 0 && p[ib].revents && b_open)
      b_open = splice_one(b, a, NULL, buf, sizeof buf, &fout, &ba, &a_open, stop) && b_open;
  }
  sbuf_release(&fout);
  if (a_to_b)
    *a_to_b = ab;
  if (b_to_a)
    *b_to_a = ba;
}

struct http_server *http_server_start(const struct http_server_opts *o,
                                      struct sp_error **err)
{
  struct http_server *s = xcalloc(1, sizeof *s);
  s->opts = *o;
  s->listen_fd = -1;
  if (o->unix_path) {
    s->listen_fd = listen_unix(o->unix_path, err);
    s->unix_path = xstrdup(o->unix_path);
  } else {
    s->listen_fd = listen_tcp(o->host, o->port, &s->port, err);
  }
  if (s->listen_fd < 0) {
    free(s->unix_path);
    free(s);
    return NULL;
  }
  unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                       MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_SUSPEND_RESUME |
                       MHD_ALLOW_UPGRADE;
  s->own_accept = o->takeover != NULL;
  if (s->own_accept)
    flags |= MHD_USE_NO_LISTEN_SOCKET;
  /* With our own accept loop there is no listening socket to give MHD;
   * the option list ends early then (MHD_OPTION_LISTEN_SOCKET goes last). */
  unsigned int limit = o->connection_limit ? o->connection_limit : 512u;
  s->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
      MHD_OPTION_URI_LOG_CALLBACK, uri_logger, s, MHD_OPTION_CONNECTION_LIMIT, limit,
      MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s, MHD_OPTION_THREAD_STACK_SIZE,
      (size_t)(256 * 1024), s->own_accept ? MHD_OPTION_END : MHD_OPTION_LISTEN_SOCKET,
      s->listen_fd, MHD_OPTION_END);
  if (s->daemon == NULL) {
    close(s->listen_fd);
    if (s->unix_path)
      unlink(s->unix_path);
    free(s->unix_path);
    free(s);
    sp_error_code(err, "INTERNAL_ERROR", 500, "cannot start the HTTP server");
    return NULL;
  }
  if (s->own_accept && pthread_create(&s->acceptor, NULL, acceptor, s) != 0) {
    http_server_stop(s);
    sp_error_code(err, "INTERNAL_ERROR", 500, "cannot start the accept thread");
    return NULL;
  }
  return s;
}

void http_server_quiesce(struct http_server *s)
{
  if (s == NULL || s->quiesced)
    return;
  s->quiesced = 1;
  if (s->own_accept && s->acceptor) {
    shutdown(s->listen_fd, SHUT_RDWR);
    pthread_join(s->acceptor, NULL);
    s->acceptor = 0;
  }
  /* MHD hands the listening socket back instead of closing it, so it is
   * closed exactly once, here; a unix socket's path goes with it, so a
   * new client is refused at once instead of waiting in the backlog. */
  if (!s->own_accept)
    MHD_quiesce_daemon(s->daemon);
  close(s->listen_fd);
  s->listen_fd = -1;
  if (s->unix_path)
    unlink(s->unix_path);
}

/* Wait until *n (a counter changed atomically) is 0, at most timeout_ms;
 * true when it came to 0. */
static bool wait_zero(const int *n, int64_t timeout_ms)
{
  int64_t deadline = sp_monotonic_ms() + timeout_ms;
  while (__atomic_load_n(n, __ATOMIC_RELAXED) > 0) {
    if (sp_monotonic_ms() >= deadline)
      return false;
    usleep(2000);
  }
  return true;
}

bool http_server_drain(struct http_server *s, int64_t timeout_ms)
{
  return wait_zero(&s->active, timeout_ms);
}

void http_server_stop(struct http_server *s)
{
  if (s == NULL)
    return;
  http_server_quiesce(s);
  s->stopping = 1;
  /* the threads of our accept path use s: wait for them (a second at most) */
  bool threads_left = s->own_accept && !wait_zero(&s->accepted_threads, 1000);
  MHD_stop_daemon(s->daemon);
  free(s->unix_path);
  /* a thread stuck in takeover still reads s: it goes with the process */
  if (!threads_left)
    free(s);
}

int http_server_port(const struct http_server *s) { return s->port; }
