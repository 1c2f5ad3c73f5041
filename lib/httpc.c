#include "httpc.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

#define BUF_SIZE 65536
#define MAX_HEAD 65536

struct httpc {
  int fd;
  int timeout_ms;
  char *host; /* the Host header's value; NULL: "sandpit" */
  char buf[BUF_SIZE];
  size_t off, len;
  bool chunked_out;
  /* response body state */
  bool body_chunked;
  int64_t body_left;  /* sized: bytes left; chunked: bytes left in chunk */
  bool body_done;
  bool body_until_close;
};

static void apply_timeout(struct httpc *c)
{
  struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static struct httpc *wrap(int fd, int timeout_ms)
{
  struct httpc *c = xcalloc(1, sizeof *c);
  c->fd = fd;
  c->timeout_ms = timeout_ms;
  apply_timeout(c);
  return c;
}

struct httpc *httpc_connect(const char *socket_path, int timeout_ms, struct sp_error **err)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(socket_path) >= sizeof sa.sun_path) {
    sp_error_code(err, "INTERNAL_ERROR", 500, "socket path too long: %s", socket_path);
    return NULL;
  }
  strcpy(sa.sun_path, socket_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    sp_error_set(err, errno, "socket");
    return NULL;
  }
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    sp_error_code(err, "BACKEND_UNAVAILABLE", 503, "cannot connect to %s: %s", socket_path,
                  strerror(e));
    return NULL;
  }
  return wrap(fd, timeout_ms);
}

struct httpc *httpc_connect_tcp(const char *host, const char *port, int timeout_ms,
                                struct sp_error **err)
{
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai;
  int rc = getaddrinfo(host, port, &hints, &ai);
  if (rc != 0) {
    sp_error_code(err, "BACKEND_UNAVAILABLE", 503, "cannot resolve %s: %s", host,
                  gai_strerror(rc));
    return NULL;
  }
  int fd = -1, e = 0;
  for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      e = errno;
      continue;
    }
    /* SO_SNDTIMEO bounds connect() too. */
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
      e = errno == EINPROGRESS || errno == EAGAIN ? ETIMEDOUT : errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(ai);
  bool v6 = strchr(host, ':') != NULL;
  char *where = xasprintf("%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
  if (fd < 0) {
    sp_error_code(err, "BACKEND_UNAVAILABLE", 503, "cannot connect to %s: %s", where,
                  strerror(e));
    free(where);
    return NULL;
  }
  struct httpc *c = wrap(fd, timeout_ms);
  c->host = where;
  return c;
}

void httpc_close(struct httpc *c)
{
  if (c == NULL)
    return;
  close(c->fd);
  free(c->host);
  free(c);
}

void httpc_set_timeout(struct httpc *c, int timeout_ms)
{
  c->timeout_ms = timeout_ms;
  apply_timeout(c);
}

int httpc_fd(const struct httpc *c) { return c->fd; }

static int io_error(struct sp_error **err, const char *what)
{
  if (errno == EAGAIN || errno == EWOULDBLOCK)
    return sp_error_code(err, "UPSTREAM_TIMEOUT", 504, "%s: the instance did not answer in time",
                         what);
  return sp_error_code(err, "UPSTREAM_ERROR", 502, "%s: %s", what, strerror(errno));
}

static int write_all(struct httpc *c, const void *data, size_t len, struct sp_error **err)
{
  const char *p = data;
  while (len) {
    ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return io_error(err, "sending to the instance");
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int httpc_send_head(struct httpc *c, const char *method, const char *target,
                    const char *const *headers, int nheaders, int64_t body_len,
                    struct sp_error **err)
{
  struct sbuf sb = SBUF_INIT;
  sbuf_addf(&sb, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target,
            c->host ? c->host : "sandpit");
  for (int i = 0; i < nheaders; i++)
    sbuf_addf(&sb, "%s\r\n", headers[i]);
  if (body_len > 0)
    sbuf_addf(&sb, "Content-Length: %lld\r\n", (long long)body_len);
  else if (body_len < 0)
    sbuf_addstr(&sb, "Transfer-Encoding: chunked\r\n");
  sbuf_addstr(&sb, "\r\n");
  c->chunked_out = body_len < 0;
  int rc = write_all(c, sb.buf, sb.len, err);
  sbuf_release(&sb);
  return rc;
}

int httpc_write_body(struct httpc *c, const void *data, size_t len, struct sp_error **err)
{
  if (len == 0)
    return 0;
  if (c->chunked_out) {
    char head[32];
    int n = snprintf(head, sizeof head, "%zx\r\n", len);
    if (write_all(c, head, (size_t)n, err) < 0 || write_all(c, data, len, err) < 0 ||
        write_all(c, "\r\n", 2, err) < 0)
      return -1;
    return 0;
  }
  return write_all(c, data, len, err);
}

int httpc_end_body(struct httpc *c, struct sp_error **err)
{
  if (!c->chunked_out)
    return 0;
  c->chunked_out = false;
  return write_all(c, "0\r\n\r\n", 5, err);
}

/* Fill the buffer; -1 on error, 0 at EOF. */
static ssize_t fill(struct httpc *c, struct sp_error **err)
{
  if (c->off > 0 && c->off == c->len)
    c->off = c->len = 0;
  if (c->len == BUF_SIZE) {
    if (c->off == 0)
      return sp_error_code(err, "UPSTREAM_ERROR", 502, "response line too long");
    memmove(c->buf, c->buf + c->off, c->len - c->off);
    c->len -= c->off;
    c->off = 0;
  }
  for (;;) {
    ssize_t n = recv(c->fd, c->buf + c->len, BUF_SIZE - c->len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return io_error(err, "reading from the instance");
    c->len += (size_t)n;
    return n;
  }
}

/* A line ending in CRLF (or LF), without it; NULL at EOF or on error. */
static char *read_line(struct httpc *c, size_t *total, struct sp_error **err)
{
  for (;;) {
    char *nl = memchr(c->buf + c->off, '\n', c->len - c->off);
    if (nl) {
      size_t n = (size_t)(nl - (c->buf + c->off));
      char *line = xstrndup(c->buf + c->off, n);
      if (n && line[n - 1] == '\r')
        line[n - 1] = '\0';
      c->off += n + 1;
      *total += n + 1;
      if (*total > MAX_HEAD) {
        free(line);
        sp_error_code(err, "UPSTREAM_ERROR", 502, "response head too large");
        return NULL;
      }
      return line;
    }
    ssize_t n = fill(c, err);
    if (n <= 0) {
      if (n == 0)
        sp_error_code(err, "UPSTREAM_ERROR", 502, "the instance closed the connection");
      return NULL;
    }
  }
}

int httpc_read_head(struct httpc *c, struct httpc_response *r, struct sp_error **err)
{
  memset(r, 0, sizeof *r);
  r->content_length = -1;
  size_t total = 0;
  cleanup_free char *status = read_line(c, &total, err);
  if (status == NULL)
    return -1;
  int code;
  if (sscanf(status, "HTTP/1.%*d %d", &code) != 1 || code < 100 || code > 599)
    return sp_error_code(err, "UPSTREAM_ERROR", 502, "bad status line from the instance");
  r->status = code;
  for (;;) {
    char *line = read_line(c, &total, err);
    if (line == NULL) {
      httpc_response_release(r); /* a failed read leaves nothing to release */
      return -1;
    }
    if (line[0] == '\0') {
      free(line);
      break;
    }
    char *colon = strchr(line, ':');
    if (colon == NULL || r->nheaders == HTTPC_MAX_HEADERS) {
      free(line);
      continue;
    }
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
      v++;
    r->names[r->nheaders] = xstrdup(line);
    r->values[r->nheaders] = xstrdup(v);
    r->nheaders++;
    free(line);
  }
  const char *te = httpc_header(r, "Transfer-Encoding");
  const char *cl = httpc_header(r, "Content-Length");
  r->chunked = te && strcasestr(te, "chunked") != NULL;
  if (!r->chunked && cl)
    r->content_length = strtoll(cl, NULL, 10);
  c->body_chunked = r->chunked;
  c->body_done = false;
  c->body_until_close = false;
  if (r->chunked) {
    c->body_left = 0;
  } else if (r->content_length >= 0) {
    c->body_left = r->content_length;
    c->body_done = r->content_length == 0;
  } else if (r->status == 204 || r->status == 304 || r->status < 200) {
    c->body_done = true;
  } else {
    c->body_until_close = true;
  }
  return 0;
}

const char *httpc_header(const struct httpc_response *r, const char *name)
{
  for (int i = 0; i < r->nheaders; i++)
    if (strcasecmp(r->names[i], name) == 0)
      return r->values[i];
  return NULL;
}

void httpc_response_release(struct httpc_response *r)
{
  for (int i = 0; i < r->nheaders; i++) {
    free(r->names[i]);
    free(r->values[i]);
  }
  r->nheaders = 0;
}

static ssize_t take(struct httpc *c, char *buf, size_t max, struct sp_error **err)
{
  if (c->off == c->len) {
    ssize_t n = fill(c, err);
    if (n <= 0)
      return n;
  }
  size_t n = SP_MIN(max, c->len - c->off);
  memcpy(buf, c->buf + c->off, n);
  c->off += n;
  return (ssize_t)n;
}

ssize_t httpc_read_body(struct httpc *c, char *buf, size_t max, struct sp_error **err)
{
  if (c->body_done)
    return 0;
  if (c->body_until_close) {
    ssize_t n = take(c, buf, max, err);
    if (n == 0)
      c->body_done = true;
    return n;
  }
  if (!c->body_chunked) {
    ssize_t n = take(c, buf, (size_t)SP_MIN((int64_t)max, c->body_left), err);
    if (n == 0) {
      sp_error_code(err, "UPSTREAM_ERROR", 502, "the instance closed the connection early");
      return -1;
    }
    if (n > 0 && (c->body_left -= n) == 0)
      c->body_done = true;
    return n;
  }
  while (c->body_left == 0) {
    size_t total = 0;
    cleanup_free char *line = read_line(c, &total, err);
    if (line == NULL)
      return -1;
    if (line[0] == '\0')
      continue; /* the CRLF after a chunk */
    char *end;
    long long size = strtoll(line, &end, 16);
    if (end == line || size < 0)
      return sp_error_code(err, "UPSTREAM_ERROR", 502, "bad chunk from the instance");
    if (size == 0) {
      /* trailers, then the blank line */
      for (;;) {
        char *t = read_line(c, &total, err);
        if (t == NULL)
          return -1;
        bool blank = t[0] == '\0';
        free(t);
        if (blank)
          break;
      }
      c->body_done = true;
      return 0;
    }
    c->body_left = size;
  }
  ssize_t n = take(c, buf, (size_t)SP_MIN((int64_t)max, c->body_left), err);
  if (n == 0) {
    sp_error_code(err, "UPSTREAM_ERROR", 502, "the instance closed the connection early");
    return -1;
  }
  if (n > 0)
    c->body_left -= n;
  return n;
}

size_t httpc_take_buffered(struct httpc *c, char *buf, size_t max)
{
  size_t n = SP_MIN(max, c->len - c->off);
  memcpy(buf, c->buf + c->off, n);
  c->off += n;
  return n;
}

int httpc_exchange(struct httpc *c, const char *method, const char *target,
                   const char *const *headers, int nheaders, const char *body, size_t body_len,
                   size_t max_body, struct sbuf *out, struct sp_error **err)
{
  struct httpc_response r;
  if (httpc_send_head(c, method, target, headers, nheaders, (int64_t)body_len, err) < 0 ||
      (body_len && httpc_write_body(c, body, body_len, err) < 0) ||
      httpc_read_head(c, &r, err) < 0)
    return -1;
  int status = -1;
  char buf[16384];
  ssize_t n;
  while ((n = httpc_read_body(c, buf, sizeof buf, err)) > 0) {
    if (out) {
      if (out->len + (size_t)n > max_body) {
        sp_error_code(err, "UPSTREAM_ERROR", 502, "response larger than %zu bytes", max_body);
        httpc_response_release(&r);
        return -1;
      }
      sbuf_add(out, buf, (size_t)n);
    }
  }
  if (n == 0)
    status = r.status;
  httpc_response_release(&r);
  return status;
}

int httpc_request(const char *socket_path, const char *method, const char *target,
                  const char *const *headers, int nheaders, const char *body, size_t body_len,
                  int timeout_ms, size_t max_body, struct sbuf *out, struct sp_error **err)
{
  struct httpc *c = httpc_connect(socket_path, timeout_ms, err);
  if (c == NULL)
    return -1;
  int status = httpc_exchange(c, method, target, headers, nheaders, body, body_len, max_body,
                              out, err);
  httpc_close(c);
  return status;
}
