/* Requests to the monitor's socket, or to a sandbox through sandpitd, with
 * the project's HTTP client. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "httpc.h"
#include "json.h"
#include "str.h"
#include "util.h"

#define CONNECT_MS 5000
#define REPLY_MS 60000
#define MAX_ERROR_BODY (1 << 20)

/* One request's connection, its target and its headers. */
struct conn {
  struct httpc *h;
  char *target;
  char *peer; /* for messages: "the monitor at PATH", "sandpitd at URL" */
  char *lines[2];
  const char *headers[3];
  int nheaders;
};

static void conn_release(struct conn *k)
{
  httpc_close(k->h);
  free(k->target);
  free(k->peer);
  for (size_t i = 0; i < SP_ARRAY_SIZE(k->lines); i++)
    free(k->lines[i]);
}

#define cleanup_conn __attribute__((cleanup(conn_release)))

char *cli_escape(const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  struct sbuf sb = SBUF_INIT;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        strchr("-._~", *p)) {
      sbuf_addch(&sb, (char)*p);
    } else {
      sbuf_addch(&sb, '%');
      sbuf_addch(&sb, hex[*p >> 4]);
      sbuf_addch(&sb, hex[*p & 15]);
    }
  }
  return sbuf_detach(&sb, NULL);
}

void cli_query(struct sbuf *path, const char *name, const char *value)
{
  cleanup_free char *v = cli_escape(value);
  sbuf_addf(path, "%c%s=%s", strchr(sbuf_str(path), '?') ? '&' : '?', name, v);
}

void cli_query_options(struct sbuf *path, const struct cli_option *opts, const struct cli_args *a)
{
  for (const struct cli_option *o = opts; o && o->name; o++) {
    const char *v = o->query ? cli_arg(a, o->key) : NULL;
    if (v)
      cli_query(path, o->query, o->arg ? v : "1");
  }
}

/* --manager's http://HOST[:PORT][/PREFIX]; the scheme may be left out. */
static int parse_manager(const char *url, char **host, char **port, char **prefix,
                         struct sp_error **err)
{
  const char *p = url;
  if (strncmp(p, "http://", 7) == 0)
    p += 7;
  else if (strstr(p, "://"))
    return cli_usage(err, "cannot use --manager %s: only http:// is supported", url);
  const char *end;
  if (*p == '[') {
    end = strchr(p, ']');
    if (end == NULL)
      return cli_usage(err, "cannot use --manager %s: no ']' after the IPv6 address", url);
    *host = xstrndup(p + 1, (size_t)(end - p - 1));
    end++;
  } else {
    end = p + strcspn(p, ":/");
    *host = xstrndup(p, (size_t)(end - p));
  }
  long long n = 80;
  if (*end == ':') {
    size_t len = strcspn(end + 1, "/");
    cleanup_free char *digits = xstrndup(end + 1, len);
    if (!str_to_ll(digits, 1, 65535, &n))
      return cli_usage(err, "cannot use --manager %s: the port must be 1-65535", url);
    end += 1 + len;
  }
  if (**host == '\0' || (*end != '\0' && *end != '/'))
    return cli_usage(err, "cannot use --manager %s: expected http://HOST[:PORT][/PREFIX]", url);
  size_t plen = strlen(end);
  while (plen && end[plen - 1] == '/')
    plen--;
  *port = xasprintf("%lld", n);
  *prefix = xstrndup(end, plen);
  return 0;
}

/* Connect for one request to path; body: whether one follows. */
static int conn_open(const struct cli *c, struct conn *k, const char *path, bool body,
                     int timeout_ms, struct sp_error **err)
{
  if (c->manager) {
    cleanup_free char *host = NULL, *port = NULL, *prefix = NULL;
    if (parse_manager(c->manager, &host, &port, &prefix, err) < 0)
      return -1;
    cleanup_free char *session = cli_escape(c->session);
    k->target = xasprintf("%s/v1/sandboxes/%s%s", prefix, session, path);
    k->peer = xasprintf("sandpitd at %s", c->manager);
    if (c->token)
      k->headers[k->nheaders++] = k->lines[0] = xasprintf("Authorization: Bearer %s", c->token);
    k->h = httpc_connect_tcp(host, port, CONNECT_MS, err);
  } else {
    k->target = xstrdup(path);
    k->peer = xasprintf("the monitor at %s", c->socket);
    if (c->sandbox)
      k->headers[k->nheaders++] = k->lines[1] = xasprintf("X-Sandpit-Sandbox: %s", c->sandbox);
    k->h = httpc_connect(c->socket, CONNECT_MS, err);
  }
  if (k->h == NULL)
    return -1;
  if (body)
    k->headers[k->nheaders++] = "Content-Type: application/json";
  httpc_set_timeout(k->h, timeout_ms);
  return 0;
}

/* An error reply: the server's message and code when it sent them. */
static int reply_error(int status, const struct sbuf *body, struct sp_error **err)
{
  cleanup_json cJSON *j = cJSON_Parse(sbuf_str(body));
  const char *msg = cli_str(j, "message", NULL);
  if (msg)
    return sp_error_code(err, "REQUEST_FAILED", status, "%s (%s, HTTP %d)", msg,
                         cli_str(j, "code", "error"), status);
  return sp_error_code(err, "REQUEST_FAILED", status, "HTTP %d: %s", status, sbuf_str(body));
}

cJSON *cli_request(const struct cli *c, const char *method, const char *path, const char *body,
                   struct sp_error **err)
{
  cleanup_conn struct conn k = {0};
  if (conn_open(c, &k, path, body != NULL, REPLY_MS, err) < 0)
    return NULL;
  cleanup_sbuf struct sbuf out = SBUF_INIT;
  int status = httpc_exchange(k.h, method, k.target, k.headers, k.nheaders, body,
                              body ? strlen(body) : 0, SIZE_MAX, &out, err);
  if (status < 0) {
    sp_error_prefix(err, "%s", k.peer);
    return NULL;
  }
  if (status >= 400) {
    reply_error(status, &out, err);
    return NULL;
  }
  cJSON *j = cJSON_Parse(sbuf_str(&out));
  if (j == NULL)
    sp_error_code(err, "REQUEST_FAILED", 502, "cannot read the reply of %s: it is not JSON",
                  k.peer);
  return j;
}

/* Server-sent events: complete events are taken off the front of pending. */
static void sse_take(const struct cli *c, struct sbuf *pending,
                     void (*on_event)(const struct cli *c, const cJSON *data))
{
  char *start = pending->buf;
  char *end;
  while ((end = strstr(start, "\n\n")) != NULL) {
    *end = '\0';
    for (char *line = start; line && *line;) {
      char *nl = strchr(line, '\n');
      if (nl)
        *nl = '\0';
      if (strncmp(line, "data: ", 6) == 0) {
        cleanup_json cJSON *j = cJSON_Parse(line + 6);
        if (j)
          on_event(c, j);
      }
      line = nl ? nl + 1 : NULL;
    }
    start = end + 2;
  }
  size_t rest = pending->len - (size_t)(start - pending->buf);
  memmove(pending->buf, start, rest);
  pending->len = rest;
  pending->buf[rest] = '\0';
}

int cli_stream(const struct cli *c, const char *path,
               void (*on_event)(const struct cli *c, const cJSON *data), struct sp_error **err)
{
  cleanup_conn struct conn k = {0};
  if (conn_open(c, &k, path, false, REPLY_MS, err) < 0)
    return -1;
  struct httpc_response r = {0};
  if (httpc_send_head(k.h, "GET", k.target, k.headers, k.nheaders, 0, err) < 0 ||
      httpc_read_head(k.h, &r, err) < 0) {
    httpc_response_release(&r);
    return sp_error_prefix(err, "%s", k.peer);
  }
  int status = r.status;
  httpc_response_release(&r);
  /* Lines come when the processes print them: no time limit. */
  httpc_set_timeout(k.h, 0);
  cleanup_sbuf struct sbuf pending = SBUF_INIT;
  char buf[16384];
  ssize_t n;
  while ((n = httpc_read_body(k.h, buf, sizeof buf, err)) > 0) {
    sbuf_add(&pending, buf, (size_t)n);
    if (status >= 400 && pending.len > MAX_ERROR_BODY)
      break;
    if (status < 400)
      sse_take(c, &pending, on_event);
  }
  if (n < 0)
    return sp_error_prefix(err, "%s", k.peer);
  return status >= 400 ? reply_error(status, &pending, err) : 0;
}
