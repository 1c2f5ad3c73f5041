/* sandpitd's HTTP front door: authentication, the management API, and
 * forwarding of /v1/sandboxes/{id}/api/... to the monitor of the sandbox's
 * instance, streaming both ways. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "error.h"
#include "httpc.h"
#include "json.h"
#include "log.h"
#include "manager.h"
#include "state.h"
#include "str.h"
#include "util.h"
#include "version.h"

#define START_WAIT_MS 15000
#define UPSTREAM_CONNECT_MS 30000
#define UPSTREAM_IDLE_MS (3600 * 1000)
#define MAX_UPLOAD (4ull << 30)

/* ---- helpers ---- */

/* The pool named by ?class=, or NULL (*p) when none is named. */
static int request_pool(struct http_req *r, struct pool **p, struct sp_error **err)
{
  const char *cls = http_query(r, "class");
  *p = NULL;
  if (cls && (*p = pool_by_name(r->app, cls)) == NULL)
    return sp_error_code(err, "POOL_NOT_FOUND", 404, "no [[containers]] pool named '%s'", cls);
  return 0;
}

/* ---- forwarding ---- */

struct fwd {
  struct manager *m;
  struct httpc *c;
  struct carried link; /* c's socket, for a shutdown to cut */
  struct instance *in;
  char *sandbox;
  bool opened;
  bool upload_failed;
  struct httpc_response resp;
  bool have_resp;
  uint64_t up, down;
};

static bool hop_by_hop(const char *name)
{
  static const char *const skip[] = {"host", "connection", "keep-alive", "transfer-encoding",
                                     "content-length", "te", "trailer", "upgrade",
                                     "proxy-authorization", "proxy-connection", "authorization",
                                     "expect"};
  for (size_t i = 0; i < SP_ARRAY_SIZE(skip); i++)
    if (strcasecmp(name, skip[i]) == 0)
      return true;
  return strncasecmp(name, "x-sandpit-", 10) == 0;
}

struct hdr_ctx {
  char *lines[HTTPC_MAX_HEADERS];
  int n;
};

static void collect_header(void *ud, const char *key, const char *value)
{
  struct hdr_ctx *h = ud;
  if (!hop_by_hop(key) && h->n < HTTPC_MAX_HEADERS - 2 && value &&
      strpbrk(key, "\r\n") == NULL && strpbrk(value, "\r\n") == NULL)
    h->lines[h->n++] = xasprintf("%s: %s", key, value);
}

static void fwd_free(void *ud)
{
  struct fwd *f = ud;
  if (f == NULL)
    return;
  if (f->up || f->down)
    metrics_forwarded(f->m->metrics, f->up, f->down);
  if (f->have_resp)
    httpc_response_release(&f->resp);
  drain_uncarry(f->m, &f->link);
  httpc_close(f->c);
  free(f->sandbox);
  free(f);
}

/* Resolve the sandbox, make sure its instance runs, connect and send the
 * request head. */
static int fwd_open(struct http_req *r, struct fwd *f, struct sp_error **err)
{
  struct manager *m = r->app;
  const char *id = r->params[0];
  struct pool *pool;
  if (request_pool(r, &pool, err) < 0)
    return -1;
  struct sbx_ref ref;
  if (sandbox_lookup(m, id, pool, true, &ref, err) < 0)
    return -1;
  f->in = pool_instance(ref.pool, ref.slot);
  f->sandbox = xstrdup(id);
  sandbox_touch(m, id);
  for (int attempt = 0;; attempt++) {
    if (instance_ensure(m, f->in, START_WAIT_MS, err) < 0)
      return -1;
    f->c = httpc_connect(instance_socket(f->in), UPSTREAM_CONNECT_MS, err);
    if (f->c)
      break;
    if (attempt == 1 || drain_cutting(m))
      return -1;
    /* nothing answers: a dead instance is restarted (and counted) */
    sp_error_free(*err);
    *err = NULL;
    instance_check_dead(m, f->in);
  }
  if (!drain_carry(m, &f->link, httpc_fd(f->c)))
    return drain_error(err);
  instance_touch(f->in);

  const char *target = strchr(r->raw_uri + strlen("/v1/sandboxes/"), '/');
  struct hdr_ctx h = {.n = 0};
  http_header_each(r, collect_header, &h);
  h.lines[h.n++] = xasprintf("X-Sandpit-Sandbox: %s", id);
  const char *cl = http_header(r, "Content-Length");
  const char *te = http_header(r, "Transfer-Encoding");
  int64_t len = 0;
  if (cl) {
    long long v;
    if (!str_to_ll(cl, 0, INT64_MAX, &v)) {
      for (int i = 0; i < h.n; i++)
        free(h.lines[i]);
      return sp_error_code(err, "INVALID_REQUEST", 400, "bad Content-Length");
    }
    len = v;
  } else if (te) {
    len = -1;
  }
  int rc = httpc_send_head(f->c, r->method, target ? target : "/", (const char *const *)h.lines,
                           h.n, len, err);
  for (int i = 0; i < h.n; i++)
    free(h.lines[i]);
  f->opened = rc == 0;
  return rc;
}

/* The request's forward, made on first use. */
static struct fwd *fwd_of(struct http_req *r)
{
  struct fwd *f = r->user;
  if (f == NULL) {
    f = xcalloc(1, sizeof *f);
    f->m = r->app;
    r->user = f;
    r->user_free = fwd_free;
  }
  return f;
}

/* A forward that failed while a shutdown cuts it short says so, whatever
 * broke on the way: *err becomes MANAGER_STOPPING.  True then. */
static bool fwd_cut(struct fwd *f, struct sp_error **err)
{
  if (!drain_cutting(f->m))
    return false;
  sp_error_free(*err);
  *err = NULL;
  drain_error(err);
  return true;
}

static int fwd_body(struct http_req *r, const char *data, size_t len, struct sp_error **err)
{
  struct fwd *f = fwd_of(r);
  if (!f->opened && fwd_open(r, f, err) < 0) {
    fwd_cut(f, err);
    return -1;
  }
  if (f->upload_failed)
    return 0;
  f->up += len;
  if (f->up > MAX_UPLOAD)
    return sp_error_code(err, "PAYLOAD_TOO_LARGE", 413, "uploads are limited to %llu bytes",
                         (unsigned long long)MAX_UPLOAD);
  struct sp_error *werr = NULL;
  if (httpc_write_body(f->c, data, len, &werr) < 0) {
    sp_error_free(werr);
    /* cut by a shutdown: the rest of the body is refused */
    if (drain_cutting(f->m))
      return drain_error(err);
    /* The monitor may have answered early (and closed); its answer is
     * read after the body. */
    f->upload_failed = true;
  }
  return 0;
}

static long fwd_read(void *ud, char *buf, size_t max)
{
  struct fwd *f = ud;
  struct sp_error *err = NULL;
  ssize_t n = httpc_read_body(f->c, buf, max, &err);
  if (n < 0) {
    sp_warn("forwarding cut", LS("sandbox", f->sandbox), LS("error", err->msg));
    sp_error_free(err);
    return HTTP_STREAM_ABORT;
  }
  if (n == 0)
    return HTTP_STREAM_END;
  f->down += (uint64_t)n;
  return (long)n;
}

static void h_forward(struct http_req *r)
{
  struct fwd *f = fwd_of(r);
  cleanup_error struct sp_error *err = NULL;
  if (!f->opened && fwd_open(r, f, &err) < 0) {
    fwd_cut(f, &err);
    http_reply_error(r, &err);
    return;
  }
  if (!f->upload_failed && httpc_end_body(f->c, &err) < 0) {
    sp_error_free(err);
    err = NULL;
  }
  httpc_set_timeout(f->c, UPSTREAM_IDLE_MS);
  if (httpc_read_head(f->c, &f->resp, &err) < 0) {
    /* cut short by a shutdown the instance is fine; otherwise it may be dead */
    if (!fwd_cut(f, &err))
      instance_check_dead(f->m, f->in);
    http_reply_error(r, &err);
    return;
  }
  f->have_resp = true;
  uint64_t size = f->resp.content_length >= 0 ? (uint64_t)f->resp.content_length : HTTP_SIZE_UNKNOWN;
  /* The fwd state now belongs to the response: it lives as long as the
   * body streams. */
  r->user = NULL;
  r->user_free = NULL;
  struct http_response *resp = http_response_reader(size, fwd_read, f, fwd_free);
  for (int i = 0; i < f->resp.nheaders; i++)
    if (!hop_by_hop(f->resp.names[i]) && strcasecmp(f->resp.names[i], "date") != 0)
      http_response_header(resp, f->resp.names[i], f->resp.values[i]);
  http_reply_response(r, f->resp.status, resp);
}

/* ---- management ---- */

static void h_health(struct http_req *r)
{
  http_reply(r, 200, "application/json", "{\"ok\":true}", 11);
}

static void h_version(struct http_req *r)
{
  cleanup_json cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "version", SANDPIT_VERSION);
  http_reply_json(r, 200, j);
}

/* GET /v1/sandboxes and /v1/instances: every one, or those of the pool
 * named by ?class=. */
static void reply_list(struct http_req *r, const char *key,
                       cJSON *(*list)(struct manager *, struct pool *), bool count)
{
  cleanup_error struct sp_error *err = NULL;
  struct pool *p;
  if (request_pool(r, &p, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  cleanup_json cJSON *j = cJSON_CreateObject();
  cJSON *arr = list(r->app, p);
  if (count)
    json_add_int(j, "count", cJSON_GetArraySize(arr));
  cJSON_AddItemToObject(j, key, arr);
  http_reply_json(r, 200, j);
}

static void h_sandboxes_list(struct http_req *r) { reply_list(r, "sandboxes", sandboxes_json, true); }

static int port_json(void *ud, const struct port_row *p)
{
  cJSON *arr = ud;
  cJSON *j = cJSON_CreateObject();
  json_add_int(j, "port", p->port);
  json_add_string_or_null(j, "name", p->name);
  cJSON_AddItemToArray(arr, j);
  return 0;
}

static cJSON *sandbox_json(struct manager *m, const char *id, const struct sbx_ref *ref)
{
  cJSON *j = cJSON_CreateObject();
  char ts[40];
  struct instance *in = pool_instance(ref->pool, ref->slot);
  cJSON_AddStringToObject(j, "id", id);
  cJSON_AddStringToObject(j, "class", pool_config(ref->pool)->class_name);
  json_add_int(j, "slot", ref->slot);
  cJSON_AddStringToObject(j, "createdAt", sp_iso8601(ref->created_ms, ts, sizeof ts));
  cJSON_AddStringToObject(j, "lastActiveAt", sp_iso8601(ref->last_active_ms, ts, sizeof ts));
  cJSON_AddItemToObject(j, "instance", instance_json(m, in));
  cJSON *ports = cJSON_AddArrayToObject(j, "ports");
  state_port_each(m->state, id, port_json, ports, NULL);
  return j;
}

static void h_sandbox_create(struct http_req *r)
{
  struct manager *m = r->app;
  cleanup_error struct sp_error *err = NULL;
  cleanup_json cJSON *body = NULL;
  if (r->body.len && (body = http_body_json(r, &err)) == NULL) {
    http_reply_error(r, &err);
    return;
  }
  const char *id = NULL, *cls = NULL;
  if (body && (json_get_string(body, "id", NULL, &id, &err) < 0 ||
               json_get_string(body, "class", NULL, &cls, &err) < 0)) {
    http_reply_error(r, &err);
    return;
  }
  if (cls == NULL)
    cls = http_query(r, "class");
  struct pool *p = NULL;
  if (cls && (p = pool_by_name(m, cls)) == NULL) {
    http_reply_errorf(r, 404, "POOL_NOT_FOUND", "no [[containers]] pool named '%s'", cls);
    return;
  }
  char gen[32];
  if (id == NULL) {
    memcpy(gen, "sbx-", 4);
    if (sp_random_token(gen + 4, 16, &err) < 0) {
      http_reply_error(r, &err);
      return;
    }
    id = gen;
  }
  struct sbx_ref ref;
  if (sandbox_lookup(m, id, p, true, &ref, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  cleanup_json cJSON *j = sandbox_json(m, id, &ref);
  http_reply_json(r, ref.created ? 201 : 200, j);
}

/* A request of sandpitd's own to the monitor of in, for sandbox id: the
 * reply's status (its body in out), or -1 with *err. */
static int ask_monitor(struct instance *in, const char *id, const char *method,
                       const char *path, int timeout_ms, size_t max, struct sbuf *out,
                       struct sp_error **err)
{
  cleanup_free char *hd = xasprintf("X-Sandpit-Sandbox: %s", id);
  const char *hdrs[] = {hd};
  return httpc_request(instance_socket(in), method, path, hdrs, 1, NULL, 0, timeout_ms, max, out,
                       err);
}

static void h_sandbox_get(struct http_req *r)
{
  struct manager *m = r->app;
  cleanup_error struct sp_error *err = NULL;
  struct sbx_ref ref;
  const char *id = r->params[0];
  if (sandbox_lookup(m, id, NULL, false, &ref, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  cleanup_json cJSON *j = sandbox_json(m, id, &ref);
  /* its processes, when its instance runs */
  struct instance *in = pool_instance(ref.pool, ref.slot);
  cJSON *procs = NULL;
  if (instance_running(in)) {
    struct sbuf out = SBUF_INIT;
    struct sp_error *e2 = NULL;
    if (ask_monitor(in, id, "GET", "/api/process/list", 5000, 8 << 20, &out, &e2) == 200) {
      cJSON *lj = cJSON_Parse(sbuf_str(&out));
      procs = cJSON_DetachItemFromObject(lj, "processes");
      cJSON_Delete(lj);
    }
    sp_error_free(e2);
    sbuf_release(&out);
  }
  cJSON_AddItemToObject(j, "processes", procs ? procs : cJSON_CreateArray());
  http_reply_json(r, 200, j);
}

/* Removes sandbox id: the monitor kills its processes and removes its
 * workspace (an instance that is not running is started for it, so nothing
 * is left behind), then sandpitd forgets it; a one_to_one sandbox's
 * instance goes with it. */
static int sandbox_remove(struct manager *m, const char *id, struct sp_error **err)
{
  struct sbx_ref ref;
  if (sandbox_lookup(m, id, NULL, false, &ref, err) < 0)
    return -1;
  struct instance *in = pool_instance(ref.pool, ref.slot);
  if (instance_ensure(m, in, START_WAIT_MS, err) < 0)
    return -1;
  struct sbuf out = SBUF_INIT;
  int st = ask_monitor(in, id, "DELETE", "/api/sandbox", 30000, 1 << 20, &out, err);
  sbuf_release(&out);
  if (st != 200) {
    if (*err == NULL)
      sp_error_code(err, "INSTANCE_FAILED", 502, "the instance could not remove sandbox %s (%d)",
                    id, st);
    return -1;
  }
  if (sandbox_forget(m, id, err) < 0)
    return -1;
  if (pool_config(ref.pool)->allocation == SP_ALLOC_ONE_TO_ONE)
    instance_stop(m, in);
  sp_info("sandbox deleted", LS("sandbox", id));
  return 0;
}

static void h_sandbox_delete(struct http_req *r)
{
  cleanup_error struct sp_error *err = NULL;
  const char *id = r->params[0];
  if (sandbox_remove(r->app, id, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  cleanup_json cJSON *j = json_success_new();
  cJSON_AddStringToObject(j, "id", id);
  cJSON_AddBoolToObject(j, "deleted", true);
  http_reply_json(r, 200, j);
}

static void h_instances(struct http_req *r) { reply_list(r, "instances", instances_json, false); }

static void h_instance_restart(struct http_req *r)
{
  struct manager *m = r->app;
  cleanup_error struct sp_error *err = NULL;
  struct pool *p;
  if (request_pool(r, &p, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  if (p == NULL)
    p = pool_at(m, 0);
  long long slot;
  if (!str_to_ll(r->params[0], 0, pool_size(p) - 1, &slot)) {
    http_reply_errorf(r, 404, "INSTANCE_NOT_FOUND", "pool %s has slots 0 to %d",
                      pool_config(p)->class_name, pool_size(p) - 1);
    return;
  }
  struct instance *in = pool_instance(p, (int)slot);
  if (instance_restart(m, in, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  cleanup_json cJSON *j = instance_json(m, in);
  http_reply_json(r, 200, j);
}

static void h_metrics(struct http_req *r)
{
  char *s = metrics_render(r->app);
  struct http_response *resp = http_response_take(s, strlen(s));
  http_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
  http_reply_response(r, 200, resp);
}

static void h_openapi(struct http_req *r)
{
  http_reply(r, 200, "application/json", sandpit_openapi_json, strlen(sandpit_openapi_json));
}

static const struct http_route routes[] = {
    {"GET", "/health", h_health, 0, NULL},
    {"GET", "/v1/version", h_version, 0, NULL},
    {"GET", "/v1/openapi.json", h_openapi, 0, NULL},
    {"GET", "/metrics", h_metrics, 0, NULL},
    {"GET", "/v1/sandboxes", h_sandboxes_list, 0, NULL},
    {"POST", "/v1/sandboxes", h_sandbox_create, 0, NULL},
    {"GET", "/v1/sandboxes/:id", h_sandbox_get, 0, NULL},
    {"DELETE", "/v1/sandboxes/:id", h_sandbox_delete, 0, NULL},
    {"*", "/v1/sandboxes/:id/api/*", h_forward, 0, fwd_body},
    {"POST", "/v1/sandboxes/:id/ports", api_ports_expose, 0, NULL},
    {"GET", "/v1/sandboxes/:id/ports", api_ports_list, 0, NULL},
    {"DELETE", "/v1/sandboxes/:id/ports/:port", api_ports_unexpose, 0, NULL},
    {"GET", "/v1/instances", h_instances, 0, NULL},
    {"POST", "/v1/instances/:slot/restart", h_instance_restart, 0, NULL},
};

static bool authorize(struct http_req *r)
{
  struct manager *m = r->app;
  if (strcmp(r->url, "/health") == 0)
    return true;
  const char *auth = http_header(r, "Authorization");
  if (auth && strncasecmp(auth, "Bearer ", 7) == 0 && str_equal_ct(m->api_token, auth + 7))
    return true;
  static const char body[] =
      "{\"code\":\"UNAUTHORIZED\",\"message\":\"missing or invalid bearer token\","
      "\"context\":{},\"httpStatus\":401}";
  struct http_response *resp = http_response_buffer(body, sizeof body - 1);
  http_response_header(resp, "Content-Type", "application/json");
  http_response_header(resp, "WWW-Authenticate", "Bearer");
  http_reply_response(r, 401, resp);
  return false;
}

/* Before routing: refuse the request when stopping; check the token. */
static bool pre(struct http_req *r)
{
  struct manager *m = r->app;
  if (drain_stopping(m)) {
    cleanup_error struct sp_error *err = NULL;
    drain_error(&err);
    http_reply_error(r, &err);
    return false;
  }
  return authorize(r);
}

static void after(struct http_req *r)
{
  struct manager *m = r->app;
  const char *route = r->route ? r->route->pattern : "unmatched";
  metrics_request(m->metrics, route, r->status, sp_monotonic_us() - r->start_us);
}

int manager_load_token(struct manager *m, struct sp_error **err)
{
  if (m->cfg->api_token) {
    m->api_token = xstrdup(m->cfg->api_token);
    return 0;
  }
  if (sp_mkdir_p(m->cfg->data_dir, 0700, err) < 0)
    return -1;
  cleanup_free char *path = xasprintf("%s/api_token", m->cfg->data_dir);
  struct sp_error *rerr = NULL;
  size_t len;
  char *tok = sp_read_file(path, 4096, &len, &rerr);
  if (tok) {
    while (len && (tok[len - 1] == '\n' || tok[len - 1] == '\r'))
      tok[--len] = '\0';
    if (len >= 8) {
      m->api_token = tok;
      sp_info("api token loaded", LS("path", path));
      return 0;
    }
    free(tok);
  }
  sp_error_free(rerr);
  char t[41];
  if (sp_random_token(t, 40, err) < 0)
    return -1;
  cleanup_free char *line = xasprintf("%s\n", t);
  if (sp_write_file_atomic(path, line, strlen(line), 0600, err) < 0)
    return -1;
  m->api_token = xstrdup(t);
  sp_info("api token created", LS("path", path));
  return 0;
}

int manager_serve(struct manager *m, struct sp_error **err)
{
  struct http_server_opts o = {
      .host = m->cfg->listen_host,
      .port = m->cfg->listen_port,
      .routes = routes,
      .nroutes = SP_ARRAY_SIZE(routes),
      .app = m,
      .pre = pre,
      .post = after,
      .takeover = preview_takeover,
      .connection_limit = 2048,
  };
  m->http = http_server_start(&o, err);
  if (m->http == NULL)
    return -1;
  sp_info("listening", LS("host", m->cfg->listen_host), LI("port", http_server_port(m->http)));
  return 0;
}

void manager_stop(struct manager *m)
{
  http_server_stop(m->http);
  m->http = NULL;
}
