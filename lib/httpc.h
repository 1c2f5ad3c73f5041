/* A small blocking HTTP/1.1 client over a unix socket or TCP: how sandpitd
 * talks to the monitors, and monitor-cli to a monitor or to sandpitd.  Bodies stream both ways (chunked uploads, chunked or
 * sized or until-close downloads), so nothing is held whole in memory. */
#ifndef SP_HTTPC_H
#define SP_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "str.h"

struct sp_error;
struct httpc;

#define HTTPC_MAX_HEADERS 64

struct httpc_response {
  int status;
  int nheaders;
  char *names[HTTPC_MAX_HEADERS];
  char *values[HTTPC_MAX_HEADERS];
  bool chunked;
  int64_t content_length; /* -1: unknown */
};

/* Connect; every later read and write waits at most timeout_ms (0: no
 * limit).  BACKEND_UNAVAILABLE (503) when nothing listens there. */
struct httpc *httpc_connect(const char *socket_path, int timeout_ms, struct sp_error **err);
/* The same over TCP to host:port (a name or an address, IPv6 without
 * brackets); timeout_ms bounds the connect too.  Requests carry
 * "Host: host:port" (over a unix socket, "Host: sandpit"). */
struct httpc *httpc_connect_tcp(const char *host, const char *port, int timeout_ms,
                                struct sp_error **err);
/* Accepts NULL. */
void httpc_close(struct httpc *c);
void httpc_set_timeout(struct httpc *c, int timeout_ms);
int httpc_fd(const struct httpc *c);

/* Request head.  headers: "Name: value" lines without CRLF.  body_len: 0 no
 * body, > 0 Content-Length, -1 chunked (then httpc_write_body and
 * httpc_end_body). */
int httpc_send_head(struct httpc *c, const char *method, const char *target,
                    const char *const *headers, int nheaders, int64_t body_len,
                    struct sp_error **err);
int httpc_write_body(struct httpc *c, const void *data, size_t len, struct sp_error **err);
int httpc_end_body(struct httpc *c, struct sp_error **err);

/* On failure r holds nothing (releasing it again is harmless). */
int httpc_read_head(struct httpc *c, struct httpc_response *r, struct sp_error **err);
const char *httpc_header(const struct httpc_response *r, const char *name);
void httpc_response_release(struct httpc_response *r);
/* Body bytes, de-chunked: > 0 bytes, 0 at the end, -1 error. */
ssize_t httpc_read_body(struct httpc *c, char *buf, size_t max, struct sp_error **err);
/* Bytes already received beyond the response head (for tunnels). */
size_t httpc_take_buffered(struct httpc *c, char *buf, size_t max);

/* One request with an optional body on an open connection, the response
 * body collected into out (at most max_body bytes; out NULL: dropped).
 * Returns the status, or -1. */
int httpc_exchange(struct httpc *c, const char *method, const char *target,
                   const char *const *headers, int nheaders, const char *body, size_t body_len,
                   size_t max_body, struct sbuf *out, struct sp_error **err);

/* httpc_exchange on a new connection to socket_path, closed after it. */
int httpc_request(const char *socket_path, const char *method, const char *target,
                  const char *const *headers, int nheaders, const char *body, size_t body_len,
                  int timeout_ms, size_t max_body, struct sbuf *out, struct sp_error **err);

#endif
