/* Preview URLs: http://{port}-{sandbox}-{token}.{preview_domain}[:port]/
 *
 * The accept loop hands every connection whose Host is a preview name to
 * preview_takeover(): the token is checked (in constant time), the
 * sandbox's instance started if needed, a tunnel opened through its
 * monitor to the server on that port, and the connection carried through
 * it.  Requests are passed on as sent but for their heads, where
 * X-Forwarded-For, -Host and -Proto are set and client copies of them (and
 * of X-Sandpit-*) are dropped; an Upgrade (WebSocket) turns the rest of the
 * connection into a plain byte stream.  Responses pass untouched. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "httpc.h"
#include "id.h"
#include "json.h"
#include "log.h"
#include "manager.h"
#include "reqrw.h"
#include "state.h"
#include "str.h"
#include "util.h"

#define START_WAIT_MS 15000

/* ---- the ports API ---- */

static char *preview_url(struct manager *m, const char *id, int port, const char *token)
{
  int lp = m->cfg->listen_port;
  if (lp == 80)
    return xasprintf("http://%d-%s-%s.%s/", port, id, token, m->cfg->preview_domain);
  return xasprintf("http://%d-%s-%s.%s:%d/", port, id, token, m->cfg->preview_domain, lp);
}

struct list_ctx {
  struct manager *m;
  cJSON *arr;
  const char *token; /* looking for a duplicate */
  int port;
  bool dup;
};

static int port_item(void *ud, const struct port_row *p)
{
  struct list_ctx *c = ud;
  if (c->token) {
    if (p->port != c->port && strcmp(p->token, c->token) == 0)
      c->dup = true;
    return 0;
  }
  cJSON *j = cJSON_CreateObject();
  char ts[40];
  cleanup_free char *url = preview_url(c->m, p->sandbox, p->port, p->token);
  json_add_int(j, "port", p->port);
  cJSON_AddStringToObject(j, "url", url);
  cJSON_AddStringToObject(j, "token", p->token);
  json_add_string_or_null(j, "name", p->name);
  cJSON_AddStringToObject(j, "exposedAt", sp_iso8601(p->created_ms, ts, sizeof ts));
  cJSON_AddItemToArray(c->arr, j);
  return 0;
}

void api_ports_expose(struct http_req *r)
{
  struct manager *m = r->app;
  const char *id = r->params[0];
  cleanup_error struct sp_error *err = NULL;
  cleanup_json cJSON *body = http_body_json(r, &err);
  if (body == NULL) {
    http_reply_error(r, &err);
    return;
  }
  int64_t port;
  const char *token, *name;
  if (json_get_int(body, "port", 0, 0, 65535, &port, &err) < 0 ||
      json_get_string(body, "token", NULL, &token, &err) < 0 ||
      json_get_string(body, "name", NULL, &name, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  if (port < 1024 || port > 65535 || port == m->cfg->listen_port) {
    sp_error_code(&err, "INVALID_PORT", 400, "port %lld cannot be exposed: use 1024-65535, "
                  "not sandpit's own %d", (long long)port, m->cfg->listen_port);
    sp_error_context_int(&err, "port", port);
    http_reply_error(r, &err);
    return;
  }
  if (token && !sp_id_ok(SP_ID_TOKEN, token)) {
    http_reply_errorf(r, 400, "INVALID_TOKEN", "a custom token is 1-16 characters of [a-z0-9_]");
    return;
  }
  if (name && strlen(name) > 128) {
    http_reply_errorf(r, 400, "VALIDATION_FAILED", "'name' is at most 128 characters");
    return;
  }
  if (!sp_id_ok(SP_ID_PREVIEW, id)) {
    http_reply_errorf(r, 400, "INVALID_SANDBOX_ID",
                      "preview URLs need a sandbox ID of lowercase letters, digits and '-'");
    return;
  }
  struct sbx_ref ref;
  if (sandbox_lookup(m, id, NULL, true, &ref, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  char gen[17];
  if (token == NULL) {
    if (sp_random_token(gen, 16, &err) < 0) {
      http_reply_error(r, &err);
      return;
    }
    token = gen;
  }
  struct list_ctx dc = {.m = m, .token = token, .port = (int)port};
  state_port_each(m->state, id, port_item, &dc, NULL);
  if (dc.dup) {
    http_reply_errorf(r, 409, "TOKEN_IN_USE", "token '%s' is already used by another port of %s",
                      token, id);
    return;
  }
  struct port_row row = {id, (int)port, token, name, sp_now_ms()};
  if (state_port_put(m->state, &row, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  cleanup_free char *url = preview_url(m, id, (int)port, token);
  cleanup_json cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "url", url);
  json_add_int(j, "port", port);
  cJSON_AddStringToObject(j, "token", token);
  json_add_string_or_null(j, "name", name);
  http_reply_json(r, 201, j);
}

void api_ports_list(struct http_req *r)
{
  struct manager *m = r->app;
  const char *id = r->params[0];
  struct sbx_ref ref;
  cleanup_error struct sp_error *err = NULL;
  if (sandbox_lookup(m, id, NULL, false, &ref, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  cleanup_json cJSON *j = cJSON_CreateObject();
  struct list_ctx c = {.m = m, .arr = cJSON_AddArrayToObject(j, "ports")};
  state_port_each(m->state, id, port_item, &c, NULL);
  http_reply_json(r, 200, j);
}

void api_ports_unexpose(struct http_req *r)
{
  struct manager *m = r->app;
  const char *id = r->params[0];
  long long port;
  char tok[64];
  cleanup_error struct sp_error *err = NULL;
  int have = 0;
  if (str_to_ll(r->params[1], 1, 65535, &port))
    have = state_port_token(m->state, id, (int)port, tok, sizeof tok, &err);
  if (have == 0)
    sp_error_code(&err, "PORT_NOT_EXPOSED", 404, "port %s of %s is not exposed", r->params[1], id);
  if (have != 1) {
    http_reply_error(r, &err);
    return;
  }
  if (state_port_delete(m->state, id, (int)port, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  cleanup_json cJSON *j = json_success_new();
  json_add_int(j, "port", port);
  http_reply_json(r, 200, j);
}

/* ---- the preview path ---- */

static void send_simple(int fd, int status, const char *reason, const char *ctype, const char *body,
                        const char *extra)
{
  cleanup_free char *resp = xasprintf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                                      "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n%s",
                                      status, reason, ctype, strlen(body), extra ? extra : "", body);
  sp_write_all(fd, resp, strlen(resp));
}

static void send_error(int fd, int status, const char *reason, const char *code, const char *msg)
{
  cleanup_json cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "code", code);
  cJSON_AddStringToObject(j, "message", msg);
  cJSON_AddObjectToObject(j, "context");
  json_add_int(j, "httpStatus", status);
  cleanup_free char *body = json_print(j);
  send_simple(fd, status, reason, "application/json", body, NULL);
}

static void send_stopping(int fd)
{
  cleanup_error struct sp_error *err = NULL;
  drain_error(&err);
  send_error(fd, 503, "Service Unavailable", err->code, err->msg);
}

static const char down_page[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" "
    "content=\"2\"><title>Starting…</title></head><body style=\"font-family:sans-serif;"
    "margin:3em\"><h1>The server is not answering</h1><p>Nothing answers on this port in the "
    "sandbox yet: the dev server may be starting or restarting. This page retries every two "
    "seconds.</p></body></html>";

/* Find the Host header's value in a request head; lowercased, without the
 * port, into out.  Returns the raw value's length, or 0. */
static size_t find_host(const char *head, size_t len, char *out, size_t outsz, char *raw,
                        size_t rawsz)
{
  const char *p = head, *end = head + len;
  /* skip the request line */
  const char *nl = memchr(p, '\n', len);
  if (nl == NULL)
    return 0;
  p = nl + 1;
  while (p < end) {
    nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL)
      return 0;
    size_t l = (size_t)(nl - p);
    if (l <= 1)
      return 0; /* end of head */
    if (l > 5 && strncasecmp(p, "host:", 5) == 0) {
      const char *v = p + 5;
      while (v < nl && (*v == ' ' || *v == '\t'))
        v++;
      const char *ve = nl;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
        ve--;
      size_t vl = (size_t)(ve - v);
      if (vl == 0 || vl >= outsz || vl >= rawsz)
        return 0;
      memcpy(raw, v, vl);
      raw[vl] = '\0';
      size_t k = 0;
      for (size_t i = 0; i < vl && v[i] != ':'; i++)
        out[k++] = (char)tolower((unsigned char)v[i]);
      out[k] = '\0';
      return vl;
    }
    p = nl + 1;
  }
  return 0;
}

/* "{port}-{sandbox}-{token}" before ".{domain}" */
static bool parse_preview(const char *host, const char *domain, int *port, char *sandbox,
                          size_t sbsz, char *token, size_t tsz)
{
  size_t hl = strlen(host), dl = strlen(domain);
  if (hl <= dl + 1 || host[hl - dl - 1] != '.' || strcmp(host + hl - dl, domain) != 0)
    return false;
  size_t pl = hl - dl - 1;
  const char *first = memchr(host, '-', pl);
  const char *last = NULL;
  for (const char *c = host + pl; c > host; c--)
    if (c[-1] == '-') {
      last = c - 1;
      break;
    }
  if (first == NULL || last == NULL || last <= first + 1)
    return false;
  char num[8];
  size_t nl = (size_t)(first - host);
  if (nl == 0 || nl >= sizeof num)
    return false;
  memcpy(num, host, nl);
  num[nl] = '\0';
  long long p;
  if (!str_to_ll(num, 1, 65535, &p))
    return false;
  size_t sl = (size_t)(last - first - 1), tl = pl - (size_t)(last + 1 - host);
  if (sl == 0 || sl >= sbsz || tl == 0 || tl >= tsz)
    return false;
  memcpy(sandbox, first + 1, sl);
  sandbox[sl] = '\0';
  memcpy(token, last + 1, tl);
  token[tl] = '\0';
  *port = (int)p;
  return true;
}

/* The client's bytes go to the upstream through the request rewriter; mid-
 * stream a request it refuses has no clean answer: the connection drops. */
static int rewrite(void *ud, const char *in, size_t n, struct sbuf *out)
{
  return reqrw_feed(ud, in, n, out) < 0 ? -1 : 0;
}

bool preview_takeover(void *app, int fd, const char *head, size_t len,
                      const struct sockaddr_storage *peer)
{
  struct manager *m = app;
  char host[256], raw_host[256], sandbox[80], token[32];
  int port;
  if (find_host(head, len, host, sizeof host, raw_host, sizeof raw_host) == 0 ||
      !parse_preview(host, m->cfg->preview_domain, &port, sandbox, sizeof sandbox, token,
                     sizeof token))
    return false;

  int64_t t0 = sp_monotonic_us();
  int status = 0;
  struct httpc *c = NULL;
  struct sp_error *err = NULL;
  char *target = NULL, *sbh = NULL;
  /* listed from here on, so that a shutdown can cut it */
  struct carried link = {.listed = false};
  if (!drain_carry(m, &link, fd)) {
    status = 503;
    send_stopping(fd);
    goto done;
  }
  char expected[64];
  int have = state_port_token(m->state, sandbox, port, expected, sizeof expected, &err);
  if (have < 0) {
    /* a store that cannot answer is not a wrong token */
    status = 500;
    sp_warn("preview lookup failed", LS("sandbox", sandbox), LS("error", err->msg));
    send_error(fd, 500, "Internal Server Error", err->code, err->msg);
    goto done;
  }
  /* compare even when nothing is exposed, so timing tells nothing */
  bool ok = str_equal_ct(have == 1 ? expected : "-", token) && have == 1;
  if (!ok) {
    status = 404;
    send_error(fd, 404, "Not Found", "INVALID_TOKEN",
               "no preview here: the port is not exposed or the token is wrong");
    goto done;
  }
  struct sbx_ref ref;
  if (sandbox_lookup(m, sandbox, NULL, false, &ref, &err) < 0 ||
      instance_ensure(m, pool_instance(ref.pool, ref.slot), START_WAIT_MS, &err) < 0) {
    status = 503;
    if (drain_cutting(m))
      send_stopping(fd);
    else
      send_simple(fd, 503, "Service Unavailable", "text/html; charset=utf-8", down_page,
                  "Retry-After: 2\r\n");
    goto done;
  }
  struct instance *in = pool_instance(ref.pool, ref.slot);
  instance_touch(in);
  sandbox_touch(m, sandbox);
  c = httpc_connect(instance_socket(in), 10000, &err);
  if (c)
    drain_carry_fd(m, &link, httpc_fd(c));
  target = xasprintf("/api/tunnel?port=%d", port);
  sbh = xasprintf("X-Sandpit-Sandbox: %s", sandbox);
  const char *hdrs[] = {"Connection: Upgrade", "Upgrade: sandpit-tunnel", sbh};
  struct httpc_response resp = {0};
  if (c == NULL || httpc_send_head(c, "GET", target, hdrs, 3, 0, &err) < 0 ||
      httpc_read_head(c, &resp, &err) < 0 || resp.status != 101) {
    status = 502;
    send_simple(fd, 502, "Bad Gateway", "text/html; charset=utf-8", down_page, "Retry-After: 2\r\n");
    httpc_response_release(&resp);
    goto done;
  }
  httpc_response_release(&resp);
  httpc_set_timeout(c, 0);
  status = 101;
  /* anything the monitor sent after its 101 belongs to the client */
  char early[65536];
  size_t en = httpc_take_buffered(c, early, sizeof early);
  if (en)
    sp_write_all(fd, early, en);
  char addr[INET6_ADDRSTRLEN] = "unknown";
  if (peer->ss_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, addr, sizeof addr);
  else if (peer->ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, addr, sizeof addr);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct reqrw w;
  reqrw_init(&w, addr, raw_host);
  uint64_t up = 0, down = 0;
  struct sp_splice_filter f = {rewrite, &w};
  sp_splice(fd, httpc_fd(c), NULL, &f, &up, &down);
  reqrw_release(&w);
  metrics_forwarded(m->metrics, up, down);
done:
  drain_uncarry(m, &link);
  if (status != 101) {
    /* the head was only peeked: take it, so the close is clean */
    char sink[16384];
    (void)!recv(fd, sink, SP_MIN(len, sizeof sink), MSG_DONTWAIT);
    shutdown(fd, SHUT_WR);
  }
  sp_error_free(err);
  free(target);
  free(sbh);
  httpc_close(c);
  close(fd);
  metrics_request(m->metrics, "preview", status == 101 ? 200 : status, sp_monotonic_us() - t0);
  return true;
}
