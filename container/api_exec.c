/* sandpit-monitor: commands, sessions, utilities and port watching. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "errstore.h"
#include "exec.h"
#include "id.h"
#include "json.h"
#include "log.h"
#include "logstore.h"
#include "monitor.h"
#include "ports.h"
#include "sandbox.h"
#include "str.h"
#include "supervisor.h"
#include "util.h"
#include "version.h"

/* ---- execute ---- */

static void collect_sink(void *ud, enum exec_stream s, const char *data, size_t len)
{
  struct sbuf *bufs = ud;
  sbuf_add(&bufs[s == EXEC_STDERR], data, len);
}

/* Why a command was cut short: its timeout, or the monitor stopping. */
static char *cut_short_message(struct exec_run *x, const char **code, int *status)
{
  if (exec_stopped(x)) {
    *code = "MONITOR_STOPPING";
    *status = 503;
    return xstrdup("the monitor is stopping: the command's process group was killed");
  }
  *code = "COMMAND_TIMEOUT";
  *status = 408;
  return xasprintf("Command timeout after %lldms: its process group was killed",
                   (long long)exec_timeout_ms(x));
}

static void reply_cut_short(struct http_req *r, struct exec_run *x, const char *out,
                            const char *errs)
{
  const char *code;
  int status;
  cleanup_free char *msg = cut_short_message(x, &code, &status);
  cleanup_error struct sp_error *err = NULL;
  sp_error_code(&err, code, status, "%s", msg);
  sp_error_context(&err, "command", exec_command(x));
  sp_error_context(&err, "stdout", out);
  sp_error_context(&err, "stderr", errs);
  if (!exec_stopped(x))
    sp_error_context_int(&err, "timeoutMs", exec_timeout_ms(x));
  cleanup_json cJSON *j = json_error_body(err);
  cJSON_AddStringToObject(j, "operation", "command.execute");
  http_reply_json(r, status, j);
}

/* The command the request's body asks for, started. */
static struct exec_run *request_exec(struct http_req *r, struct sp_error **err)
{
  const struct sandbox *sb = monitor_sandbox_get(r, err);
  cleanup_json cJSON *body = sb ? http_body_json(r, err) : NULL;
  return body ? exec_start(r->app, sb, body, err) : NULL;
}

void api_execute(struct http_req *r)
{
  cleanup_error struct sp_error *err = NULL;
  struct exec_run *x = request_exec(r, &err);
  if (x == NULL) {
    http_reply_error(r, &err);
    return;
  }
  struct sbuf bufs[2] = {SBUF_INIT, SBUF_INIT};
  while (!exec_step(x, 1000, collect_sink, bufs)) {
  }
  if (exec_timed_out(x) || exec_stopped(x)) {
    reply_cut_short(r, x, sbuf_str(&bufs[0]), sbuf_str(&bufs[1]));
  } else {
    cleanup_json cJSON *j = cJSON_CreateObject();
    int code = exec_exit_code(x);
    cJSON_AddBoolToObject(j, "success", code == 0);
    json_add_int(j, "exitCode", code);
    cJSON_AddStringToObject(j, "stdout", sbuf_str(&bufs[0]));
    cJSON_AddStringToObject(j, "stderr", sbuf_str(&bufs[1]));
    cJSON_AddStringToObject(j, "command", exec_command(x));
    json_add_int(j, "duration", exec_duration_ms(x));
    cJSON_AddStringToObject(j, "sessionId", exec_session(x));
    if (exec_truncated(x))
      cJSON_AddBoolToObject(j, "truncated", true);
    monitor_reply(r, j);
  }
  sbuf_release(&bufs[0]);
  sbuf_release(&bufs[1]);
  exec_free(x);
}

struct exec_stream_ctx {
  struct exec_run *x;
  struct sbuf *out; /* the stream's, during a call */
  bool started;
};

static void stream_sink(void *ud, enum exec_stream s, const char *data, size_t len)
{
  struct exec_stream_ctx *c = ud;
  cleanup_json cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "type", s == EXEC_STDERR ? "stderr" : "stdout");
  cleanup_free char *d = xmemdup(data, len);
  cJSON_AddStringToObject(j, "data", d);
  json_add_timestamp(j);
  http_sse_event(c->out, NULL, j);
}

static int exec_stream_cb(void *ud, struct sbuf *out)
{
  struct exec_stream_ctx *c = ud;
  c->out = out;
  if (!c->started) {
    cleanup_json cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "start");
    cJSON_AddStringToObject(j, "command", exec_command(c->x));
    json_add_timestamp(j);
    http_sse_event(out, NULL, j);
    c->started = true;
    return HTTP_STREAM_MORE;
  }
  if (!exec_step(c->x, 500, stream_sink, c))
    return HTTP_STREAM_MORE;
  cleanup_json cJSON *j = cJSON_CreateObject();
  if (exec_timed_out(c->x) || exec_stopped(c->x)) {
    const char *code;
    int status;
    cleanup_free char *msg = cut_short_message(c->x, &code, &status);
    cJSON_AddStringToObject(j, "type", "error");
    cJSON_AddStringToObject(j, "code", code);
    cJSON_AddStringToObject(j, "error", msg);
    cJSON_AddStringToObject(j, "data", msg);
    json_add_int(j, "exitCode", exec_exit_code(c->x));
  } else {
    cJSON_AddStringToObject(j, "type", "complete");
    json_add_int(j, "exitCode", exec_exit_code(c->x));
    if (exec_truncated(c->x))
      cJSON_AddBoolToObject(j, "truncated", true);
  }
  json_add_int(j, "duration", exec_duration_ms(c->x));
  json_add_timestamp(j);
  http_sse_event(out, NULL, j);
  return HTTP_STREAM_END;
}

static void exec_stream_free(void *ud)
{
  struct exec_stream_ctx *c = ud;
  exec_free(c->x);
  free(c);
}

void api_execute_stream(struct http_req *r)
{
  cleanup_error struct sp_error *err = NULL;
  struct exec_run *x = request_exec(r, &err);
  if (x == NULL) {
    http_reply_error(r, &err);
    return;
  }
  struct exec_stream_ctx *c = xcalloc(1, sizeof *c);
  c->x = x;
  http_reply_stream(r, 200, "text/event-stream", exec_stream_cb, c, exec_stream_free);
}

/* ---- sessions ---- */

static cJSON *session_create_body(struct http_req *r, struct sp_error **err)
{
  struct monitor *m = r->app;
  const struct sandbox *sb = monitor_sandbox_get(r, err);
  cleanup_json cJSON *body = sb ? http_body_json(r, err) : NULL;
  const char *id, *cwd;
  int64_t timeout;
  if (body == NULL || json_get_string(body, "id", NULL, &id, err) < 0 ||
      json_get_string(body, "cwd", NULL, &cwd, err) < 0 ||
      json_get_int(body, "commandTimeoutMs", 0, 0, 24LL * 3600 * 1000, &timeout, err) < 0)
    return NULL;
  cleanup_free char *gen = NULL;
  if (id == NULL)
    id = gen = xasprintf("session_%lld_%04x", (long long)sp_now_ms(), (unsigned)(rand() & 0xffff));
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(body, "env");
  if (env && !cJSON_IsObject(env) && !cJSON_IsNull(env)) {
    sp_error_code(err, "VALIDATION_FAILED", 400, "'env' must be an object of strings");
    return NULL;
  }
  if (session_create(m->sandboxes, sb, id, cJSON_IsObject(env) ? env : NULL, cwd, timeout, err) < 0)
    return NULL;
  cJSON *j = json_success_new();
  cJSON_AddStringToObject(j, "id", id);
  cJSON_AddStringToObject(j, "message", "Session created");
  cJSON_AddNullToObject(j, "containerPlacementId");
  return j;
}

static cJSON *session_delete_body(struct http_req *r, struct sp_error **err)
{
  struct monitor *m = r->app;
  const struct sandbox *sb = monitor_sandbox_get(r, err);
  cleanup_json cJSON *body = sb ? http_body_json(r, err) : NULL;
  const char *id = NULL;
  if (body && json_get_string(body, "sessionId", NULL, &id, err) == 0 && id == NULL)
    sp_error_code(err, "VALIDATION_FAILED", 400, "'sessionId' is required");
  if (id == NULL || session_delete(m->sandboxes, sb, id, err) < 0)
    return NULL;
  cJSON *j = json_success_new();
  cJSON_AddStringToObject(j, "sessionId", id);
  return j;
}

static cJSON *session_list_body(struct http_req *r, struct sp_error **err)
{
  struct monitor *m = r->app;
  const struct sandbox *sb = monitor_sandbox_get(r, err);
  if (sb == NULL)
    return NULL;
  cJSON *j = json_success_new();
  cJSON *list = session_list(m->sandboxes, sb);
  cJSON_AddItemToObject(j, "sessions", cJSON_Duplicate(list, true));
  cJSON_AddItemToObject(j, "data", list);
  return j;
}

void api_session_create(struct http_req *r)
{
  cleanup_error struct sp_error *err = NULL;
  monitor_answer(r, session_create_body(r, &err), &err);
}

void api_session_delete(struct http_req *r)
{
  cleanup_error struct sp_error *err = NULL;
  monitor_answer(r, session_delete_body(r, &err), &err);
}

void api_session_list(struct http_req *r)
{
  cleanup_error struct sp_error *err = NULL;
  monitor_answer(r, session_list_body(r, &err), &err);
}

/* ---- utilities ---- */

void api_version(struct http_req *r)
{
  cleanup_json cJSON *j = json_success_new();
  cJSON_AddStringToObject(j, "version", SANDPIT_VERSION);
  cJSON_AddStringToObject(j, "server", "sandpit-monitor");
  monitor_reply(r, j);
}

void api_commands(struct http_req *r)
{
  static const char *const known[] = {"bash", "sh", "node", "npm", "npx", "pnpm", "bun",
                                      "python3", "pip3", "git", "curl", "make", "gcc",
                                      "go", "java", "tar", "gzip", "ls", "cat", "grep",
                                      "sed", "find"};
  static const char *const dirs[] = {"/usr/local/bin", "/usr/bin", "/bin"};
  cleanup_json cJSON *j = json_success_new();
  cJSON *arr = cJSON_AddArrayToObject(j, "availableCommands");
  for (size_t i = 0; i < SP_ARRAY_SIZE(known); i++) {
    for (size_t d = 0; d < SP_ARRAY_SIZE(dirs); d++) {
      cleanup_free char *p = xasprintf("%s/%s", dirs[d], known[i]);
      if (access(p, X_OK) == 0) {
        cJSON_AddItemToArray(arr, cJSON_CreateString(known[i]));
        break;
      }
    }
  }
  json_add_int(j, "count", cJSON_GetArraySize(arr));
  monitor_reply(r, j);
}

/* ---- port watch ---- */

#define WATCH_PATH_MAX 2048

/* One watch, in one allocation: its ids are bounded (lib/id.h). */
struct watch {
  struct monitor *m;
  char sandbox[SP_SANDBOX_ID_MAX + 1];
  char process_id[SP_PROCESS_ID_MAX + 1]; /* "": none */
  char path[WATCH_PATH_MAX + 1];
  int port;
  bool http;
  int status_min, status_max, interval_ms;
  bool watching; /* the first event is out */
  int64_t next;
};

/* One readiness check: 0 ready (status in *status), -1 not yet. */
static int probe(struct watch *w, int *status)
{
  int fd = ports_connect(w->port, AF_INET, true);
  if (fd < 0)
    return -1;
  int rc = -1;
  cleanup_free char *req = NULL;
  struct pollfd p = {fd, POLLOUT, 0};
  if (poll(&p, 1, 2000) != 1 || ports_connected(fd) != 0)
    goto out;
  if (!w->http) {
    rc = 0;
    goto out;
  }
  req = xasprintf("GET %s HTTP/1.0\r\nHost: localhost:%d\r\n"
                                     "User-Agent: sandpit-port-watch\r\n\r\n",
                                     w->path, w->port);
  if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
    goto out;
  char buf[64];
  size_t got = 0;
  int64_t deadline = sp_monotonic_ms() + 5000;
  while (got < 12 && sp_monotonic_ms() < deadline) {
    p = (struct pollfd){fd, POLLIN, 0};
    if (poll(&p, 1, 500) != 1)
      continue;
    ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  int code = ports_http_status(buf, got);
  if (code >= 0 && code >= w->status_min && code <= w->status_max) {
    *status = code;
    rc = 0;
  }
out:
  close(fd);
  return rc;
}

static int watch_cb(void *ud, struct sbuf *out)
{
  struct watch *w = ud;
  cleanup_json cJSON *j = cJSON_CreateObject();
  json_add_int(j, "port", w->port);
  if (!w->watching) {
    cJSON_AddStringToObject(j, "type", "watching");
    http_sse_event(out, NULL, j);
    w->watching = true;
    return HTTP_STREAM_MORE;
  }
  int64_t now = sp_monotonic_ms();
  if (now < w->next) {
    usleep((useconds_t)SP_MIN(w->next - now, 1000) * 1000);
    return HTTP_STREAM_MORE;
  }
  w->next = now + w->interval_ms;
  if (supervisor_stopping(w->m->sup)) {
    sse_stopping(out);
    return HTTP_STREAM_END;
  }
  if (w->process_id[0]) {
    struct proc_state st;
    supervisor_state(w->m->sup, w->sandbox, w->process_id, &st);
    if (!st.found) {
      cJSON_AddStringToObject(j, "type", "error");
      cJSON_AddStringToObject(j, "error", "Process not found");
      http_sse_event(out, NULL, j);
      return HTTP_STREAM_END;
    }
    if (st.final) {
      cJSON_AddStringToObject(j, "type", "process_exited");
      if (st.has_exit)
        json_add_int(j, "exitCode", st.exit_code);
      else
        cJSON_AddNullToObject(j, "exitCode");
      http_sse_event(out, NULL, j);
      return HTTP_STREAM_END;
    }
  }
  int status = 0;
  if (probe(w, &status) == 0) {
    cJSON_AddStringToObject(j, "type", "ready");
    if (w->http)
      json_add_int(j, "statusCode", status);
    http_sse_event(out, NULL, j);
    return HTTP_STREAM_END;
  }
  /* a comment line keeps the connection alive; the client decides how
   * long to wait */
  sbuf_addstr(out, ": waiting\n\n");
  return HTTP_STREAM_MORE;
}

/* The watch the request's body asks for, into w; -1 with *err. */
static int watch_request(struct http_req *r, struct watch *w, struct sp_error **err)
{
  const char *sandbox = monitor_sandbox(r, err);
  cleanup_json cJSON *body = sandbox ? http_body_json(r, err) : NULL;
  int64_t port, smin, smax, interval;
  const char *mode, *path, *pid;
  if (body == NULL || json_get_int(body, "port", 0, 1, 65535, &port, err) < 0 ||
      json_get_string(body, "mode", "http", &mode, err) < 0 ||
      json_get_string(body, "path", "/", &path, err) < 0 ||
      json_get_string(body, "processId", NULL, &pid, err) < 0 ||
      json_get_int(body, "statusMin", 200, 100, 599, &smin, err) < 0 ||
      json_get_int(body, "statusMax", 399, 100, 599, &smax, err) < 0 ||
      json_get_int(body, "interval", 500, 0, 600000, &interval, err) < 0)
    return -1;
  if (port == 0)
    return sp_error_code(err, "INVALID_PORT", 400, "'port' is required (1-65535)");
  if (strcmp(mode, "http") != 0 && strcmp(mode, "tcp") != 0)
    return sp_error_code(err, "VALIDATION_FAILED", 400, "'mode' must be \"http\" or \"tcp\"");
  if (path[0] != '/' || strpbrk(path, "\r\n ") != NULL || strlen(path) > WATCH_PATH_MAX)
    return sp_error_code(err, "VALIDATION_FAILED", 400, "'path' must be an absolute URL path");
  if (pid && !sp_id_ok(SP_ID_PROCESS, pid))
    return sp_error_code(err, "VALIDATION_FAILED", 400,
                         "'processId' must be 1-64 characters of [A-Za-z0-9._-]");
  w->m = r->app;
  snprintf(w->sandbox, sizeof w->sandbox, "%s", sandbox);
  snprintf(w->process_id, sizeof w->process_id, "%s", pid ? pid : "");
  snprintf(w->path, sizeof w->path, "%s", path);
  w->port = (int)port;
  w->http = strcmp(mode, "http") == 0;
  w->status_min = (int)smin;
  w->status_max = (int)smax;
  w->interval_ms = (int)SP_MAX(100, SP_MIN(interval, 10000));
  return 0;
}

void api_port_watch(struct http_req *r)
{
  cleanup_error struct sp_error *err = NULL;
  struct watch *w = xcalloc(1, sizeof *w);
  if (watch_request(r, w, &err) < 0) {
    free(w);
    http_reply_error(r, &err);
    return;
  }
  http_reply_stream(r, 200, "text/event-stream", watch_cb, w, free);
}

/* ---- removing a sandbox ---- */

void api_sandbox_delete(struct http_req *r)
{
  struct monitor *m = r->app;
  cleanup_error struct sp_error *err = NULL;
  const char *id;
  if (monitor_scope(r, &id, &err) == 0 && id == NULL)
    sp_error_code(&err, "VALIDATION_FAILED", 400, "X-Sandpit-Sandbox names the sandbox to remove");
  const struct sandbox *sb = id ? sandboxes_get(m->sandboxes, id, &err) : NULL;
  if (sb == NULL) {
    http_reply_error(r, &err);
    return;
  }
  int procs = supervisor_forget_sandbox(m->sup, id, 5000);
  /* Whatever else its user still runs (commands, what they left behind). */
  if (sb->set_user)
    monitor_run_as(m, sb, "kill -KILL -1 2>/dev/null; exit 0");
  /* Its files go as its own user, so no link in them can reach further. */
  cleanup_free char *cmd = xasprintf("find '%s' -mindepth 1 -delete 2>/dev/null; exit 0", sb->workspace);
  monitor_run_as(m, sb, cmd);
  cleanup_free char *ws = xstrdup(sb->workspace);
  if (errorstore_clear(logstore_errors(m->ls), id, &err) < 0 || sandboxes_remove(m->sandboxes, id, &err) < 0) {
    sp_error_prefix(&err, "cannot remove sandbox '%s'", id);
    http_reply_error(r, &err);
    return;
  }
  if (rmdir(ws) < 0 && errno != ENOENT)
    sp_warn("workspace not fully removed", LS("sandbox", id), LS("error", strerror(errno)));
  sp_info("sandbox removed", LS("sandbox", id), LI("processes", procs));
  cleanup_json cJSON *j = json_success_new();
  cJSON_AddStringToObject(j, "sandbox", id);
  json_add_int(j, "processesKilled", procs);
  monitor_reply(r, j);
}
