/* A small HTTP server layer over libmicrohttpd, shared by sandpitd and
 * sandpit-monitor.
 *
 * Routes are a table of (method, pattern, handler).  Patterns are literal
 * segments and ":name" captures ("/api/process/:id/logs"); a trailing "*"
 * segment captures the rest of the path.  Request bodies are collected up to
 * the route's limit (default 1 MiB) and refused with 413 beyond it, unless
 * the route streams its body through on_body.
 *
 * The server runs one thread per connection, so a handler may block (a
 * streaming response callback may wait for data). */
#ifndef SP_HTTP_H
#define SP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "str.h"

struct sp_error;
struct cJSON;
struct http_server;
struct http_req;
struct http_response;
struct MHD_Connection;
struct MHD_Response;

#define HTTP_MAX_PARAMS 4

typedef void (*http_handler)(struct http_req *r);
/* Streamed body: called for each chunk; return -1 (with *err) to refuse. */
typedef int (*http_body_cb)(struct http_req *r, const char *data, size_t len,
                            struct sp_error **err);

struct http_route {
  const char *method; /* "GET", ...; "*" any */
  const char *pattern;
  http_handler handler;
  size_t max_body;      /* 0 = default (1 MiB) */
  http_body_cb on_body; /* when set, body is streamed, not collected */
};

struct http_req {
  struct MHD_Connection *conn;
  struct http_server *server;
  const char *method;
  const char *url;      /* path, without query, decoded */
  char *raw_uri;        /* the request target as sent (path and query) */
  const struct http_route *route;
  const char *params[HTTP_MAX_PARAMS]; /* captures, in pattern order */
  char *param_buf;
  struct sbuf body;
  struct sp_error *body_err;
  void *app;            /* the server's application pointer */
  void *user;           /* per-request state of a streaming handler */
  void (*user_free)(void *);
  bool responded;
  bool final;           /* the whole request body has been received */
  struct MHD_Response *deferred; /* answered before the body was read */
  int deferred_status;
  size_t drained;
  int status;           /* status sent, for metrics and logs */
  int64_t start_us;
};

struct http_server_opts {
  const char *unix_path;   /* listen on a unix socket (mode 0660) ... */
  const char *host;        /* ... or on host:port */
  int port;
  const struct http_route *routes;
  size_t nroutes;
  void *app;
  unsigned int connection_limit; /* default 512 */
  unsigned int timeout_s;        /* idle connection timeout, default 0 = none */
  /* Called before routing; return false when it answered already (auth). */
  bool (*pre)(struct http_req *r);
  /* Called after each response, e.g. for metrics. */
  void (*post)(struct http_req *r);
  /* When set, connections are accepted here first: `takeover` sees the
   * request head (peeked, still unread) and returns true when it has taken
   * the connection (and will close fd); otherwise libmicrohttpd serves it. */
  bool (*takeover)(void *app, int fd, const char *head, size_t len,
                   const struct sockaddr_storage *peer);
};

struct http_server *http_server_start(const struct http_server_opts *o,
                                      struct sp_error **err);
/* Stop accepting connections (the listening socket is closed, a unix
 * socket's path removed); requests in progress go on.  Any thread. */
void http_server_quiesce(struct http_server *s);
/* Wait until every request received has been answered (its response,
 * streamed ones included, sent to its end), at most timeout_ms; true if
 * they all were.  Idle keep-alive connections do not count. */
bool http_server_drain(struct http_server *s, int64_t timeout_ms);
/* Quiesce, end streamed responses, wait for every connection to finish. */
void http_server_stop(struct http_server *s);
/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *s);

/* Responses.  Each queues exactly one response for the request. */
void http_reply(struct http_req *r, int status, const char *content_type,
                const void *body, size_t len);
void http_reply_json(struct http_req *r, int status, const struct cJSON *j);
/* Consumes *err. */
void http_reply_error(struct http_req *r, struct sp_error **err);
void http_reply_errorf(struct http_req *r, int status, const char *code,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A response with headers of the caller's: build it, add headers, then
 * queue it with http_reply_response (which takes it). */
struct http_response *http_response_buffer(const void *body, size_t len); /* copied */
struct http_response *http_response_take(char *body, size_t len);        /* freed */
/* The first `size` bytes of fd (closed when sent). */
struct http_response *http_response_fd(int fd, uint64_t size);
/* A body pulled by `read`: it fills buf with up to max bytes and returns
 * how many, or HTTP_STREAM_END at the end, or HTTP_STREAM_ABORT to cut the
 * connection.  size may be HTTP_SIZE_UNKNOWN (then it is chunked). */
#define HTTP_SIZE_UNKNOWN UINT64_MAX
typedef long (*http_read_fn)(void *ud, char *buf, size_t max);
struct http_response *http_response_reader(uint64_t size, http_read_fn read, void *ud,
                                           void (*ud_free)(void *));
void http_response_header(struct http_response *resp, const char *name, const char *value);
void http_reply_response(struct http_req *r, int status, struct http_response *resp);

/* A streamed response.  Whenever what it produced has been sent, `cb` runs
 * (in the connection's thread; it may block, up to about a second at a
 * time, so a shutdown is not held up) and appends what comes next to `out`
 * (possibly nothing); it returns HTTP_STREAM_MORE, or HTTP_STREAM_END when
 * what it appended is the last, or HTTP_STREAM_ABORT to cut the connection.
 * `ud_free` runs when the response is done with. */
#define HTTP_STREAM_MORE 0
#define HTTP_STREAM_END (-1)
#define HTTP_STREAM_ABORT (-2)
typedef int (*http_stream_cb)(void *ud, struct sbuf *out);
void http_reply_stream(struct http_req *r, int status, const char *content_type,
                       http_stream_cb cb, void *ud, void (*ud_free)(void *));
/* Answer 101 Switching Protocols to `protocol`; then `fn` runs (in the
 * connection's thread) with the raw socket and any bytes the client sent
 * after its request; the socket is closed when fn returns. */
typedef void (*http_upgraded_fn)(void *ud, int sock, const char *extra, size_t extra_len);
void http_reply_upgrade(struct http_req *r, const char *protocol, http_upgraded_fn fn, void *ud,
                        void (*ud_free)(void *));

/* What happens to the bytes from a before they go to b: fn appends what
 * to send (changed or not) to out, or returns -1 to drop the connection. */
struct sp_splice_filter {
  int (*fn)(void *ud, const char *in, size_t n, struct sbuf *out);
  void *ud;
};

/* Copy bytes both ways between a and b until both directions are closed
 * (each end's EOF is passed on as a shutdown), or *stop becomes nonzero
 * (looked at every 200 ms; stop may be NULL).  a_filter (may be NULL)
 * sees the bytes from a first.  Returns the bytes written to b and to a. */
void sp_splice(int a, int b, const volatile int *stop, const struct sp_splice_filter *a_filter,
               uint64_t *a_to_b, uint64_t *b_to_a);

/* Append one server-sent event ("event: NAME" when event is set, then
 * "data: JSON") to a streamed response's buffer. */
void http_sse_event(struct sbuf *out, const char *event, const struct cJSON *data);

/* True once the server is stopping: stream callbacks should end. */
bool http_stopping(const struct http_req *r);
/* The flag behind http_stopping, for loops that outlive their request
 * (an upgraded connection). */
const volatile int *http_stop_flag(const struct http_req *r);

const char *http_query(struct http_req *r, const char *key);
const char *http_header(struct http_req *r, const char *name);
/* Call fn for each request header, in the order received. */
void http_header_each(struct http_req *r,
                      void (*fn)(void *ud, const char *name, const char *value), void *ud);
/* The collected body parsed as a JSON object, or NULL with *err (400). */
struct cJSON *http_body_json(struct http_req *r, struct sp_error **err);

#endif
