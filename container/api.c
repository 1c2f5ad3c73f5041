/* sandpit-monitor's HTTP routes: processes, logs, errors, status. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "errstore.h"
#include "id.h"
#include "json.h"
#include "log.h"
#include "logstore.h"
#include "monitor.h"
#include "sandbox.h"
#include "str.h"
#include "supervisor.h"
#include "util.h"
#include "version.h"

#define LOGS_MAX_LINES 100000
#define LOGS_MAX_BYTES (32u << 20)
#define SSE_KEEPALIVE_MS 15000


/* ---- processes ---- */

/* Start a process from a /api/process/start body; its JSON, or NULL. */
static cJSON *process_start(struct monitor *m, const struct sandbox *sb, const cJSON *body,
                            struct sp_error **err)
{
  const char *command, *id, *cwd, *session;
  int64_t port, max_restarts;
  bool auto_restart;
  /* Options may also come nested under "options". */
  const cJSON *opts = cJSON_GetObjectItemCaseSensitive(body, "options");
  const cJSON *src = cJSON_IsObject(opts) ? opts : body;
  if (json_get_string(body, "command", NULL, &command, err) < 0 ||
      json_get_string(src, "processId", NULL, &id, err) < 0 ||
      json_get_string(src, "cwd", NULL, &cwd, err) < 0 ||
      json_get_string(body, "sessionId", NULL, &session, err) < 0 ||
      json_get_int(src, "port", 0, 0, 65535, &port, err) < 0 ||
      json_get_bool(src, "autoRestart", false, &auto_restart, err) < 0 ||
      json_get_int(src, "maxRestarts", -1, -1, 1000, &max_restarts, err) < 0)
    return NULL;
  if (id == NULL && src != body && json_get_string(body, "processId", NULL, &id, err) < 0)
    return NULL;
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(src, "env");
  if (env && !cJSON_IsObject(env) && !cJSON_IsNull(env)) {
    sp_error_code(err, "VALIDATION_FAILED", 400, "'env' must be an object of strings");
    return NULL;
  }
  struct session *se = session_acquire(m->sandboxes, sb, session, err);
  if (se == NULL)
    return NULL;
  char **envp;
  cleanup_free char *dir = NULL;
  int rc = session_context(m->sandboxes, se, cJSON_IsObject(env) ? env : NULL, cwd, &envp, &dir,
                           err);
  session_release(m->sandboxes, se);
  if (rc < 0)
    return NULL;
  struct proc_spec spec = {
      .id = id,
      .command = command,
      .cwd = dir,
      .env = envp,
      .session_id = session,
      .sandbox = sb->id,
      .port = (int)port,
      .auto_restart = auto_restart,
      .max_restarts = (int)max_restarts,
      .set_user = sb->set_user,
      .uid = sb->uid,
      .gid = sb->gid,
      .nproc_limit = sb->nproc_limit,
      .cgroups = sb->cgroups,
  };
  cJSON *p = supervisor_start(m->sup, &spec, err);
  strv_free(envp);
  return p;
}

static void h_process_start(struct http_req *r)
{
  struct monitor *m = r->app;
  cleanup_error struct sp_error *err = NULL;
  const struct sandbox *sb = monitor_sandbox_get(r, &err);
  cleanup_json cJSON *body = sb ? http_body_json(r, &err) : NULL;
  cJSON *resp = body ? process_start(m, sb, body, &err) : NULL;
  if (resp) {
    cJSON_AddBoolToObject(resp, "success", true);
    cJSON_AddStringToObject(resp, "processId", cJSON_GetObjectItem(resp, "id")->valuestring);
  }
  monitor_answer(r, resp, &err);
}

static void h_process_list(struct http_req *r)
{
  struct monitor *m = r->app;
  cleanup_error struct sp_error *err = NULL;
  const char *sandbox = monitor_sandbox(r, &err);
  cJSON *resp = sandbox ? json_success_new() : NULL;
  if (resp)
    cJSON_AddItemToObject(resp, "processes", supervisor_list(m->sup, sandbox));
  monitor_answer(r, resp, &err);
}

/* {"success", "process", "timestamp"} (with "processId" and "signal" first
 * when a signal was sent), or the error behind a NULL p. */
static void reply_process(struct http_req *r, cJSON *p, const char *signal, struct sp_error **err)
{
  cJSON *resp = p ? json_success_new() : NULL;
  if (resp && signal) {
    cJSON_AddStringToObject(resp, "processId", r->params[0]);
    cJSON_AddStringToObject(resp, "signal", signal);
  }
  if (resp)
    cJSON_AddItemToObject(resp, "process", p);
  monitor_answer(r, resp, err);
}

static const struct {
  const char *name;
  int sig;
} signals[] = {
    {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},   {"HUP", SIGHUP},
    {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"STOP", SIGSTOP},
    {"CONT", SIGCONT}, {"WINCH", SIGWINCH}, {"ALRM", SIGALRM},
};

static int parse_signal(const char *s)
{
  if (s == NULL || *s == '\0')
    return SIGTERM;
  if (strncasecmp(s, "SIG", 3) == 0)
    s += 3;
  for (size_t i = 0; i < SP_ARRAY_SIZE(signals); i++)
    if (strcasecmp(s, signals[i].name) == 0)
      return signals[i].sig;
  long long n;
  if (str_to_ll(s, 1, 64, &n))
    return (int)n;
  return -1;
}

/* GET, signal (?signal=, TERM by default) and restart of the request's
 * process r->params[0]. */
enum process_op { PROCESS_GET, PROCESS_SIGNAL, PROCESS_RESTART };

static void process_op(struct http_req *r, enum process_op op)
{
  struct monitor *m = r->app;
  cleanup_error struct sp_error *err = NULL;
  const char *sandbox = monitor_sandbox(r, &err);
  const char *id = r->params[0], *signal = http_query(r, "signal");
  int sig = op == PROCESS_SIGNAL ? parse_signal(signal) : 0;
  cJSON *p = NULL;
  if (sandbox && sig < 0)
    sp_error_code(&err, "INVALID_SIGNAL", 400, "unknown signal '%s'", signal);
  else if (sandbox && op == PROCESS_GET)
    p = supervisor_get(m->sup, sandbox, id, &err);
  else if (sandbox && op == PROCESS_SIGNAL)
    p = supervisor_signal(m->sup, sandbox, id, sig, &err);
  else if (sandbox)
    p = supervisor_restart(m->sup, sandbox, id, &err);
  reply_process(r, p, op == PROCESS_SIGNAL ? strsignal(sig) : NULL, &err);
}

static void h_process_get(struct http_req *r) { process_op(r, PROCESS_GET); }
static void h_process_kill(struct http_req *r) { process_op(r, PROCESS_SIGNAL); }
static void h_process_restart(struct http_req *r) { process_op(r, PROCESS_RESTART); }

/* Kills every process of the request's sandbox, and what its commands
 * left running in the background (servers started with '&', a fork bomb):
 * everything of the sandbox's user. */
static cJSON *kill_all(struct http_req *r, struct sp_error **err)
{
  struct monitor *m = r->app;
  const struct sandbox *sb = monitor_sandbox_get(r, err);
  if (sb == NULL)
    return NULL;
  int n = supervisor_kill_all(m->sup, sb->id);
  if (sb->set_user)
    monitor_run_as(m, sb, "kill -TERM -1 2>/dev/null; sleep 0.5; kill -KILL -1 2>/dev/null; exit 0");
  cJSON *resp = json_success_new();
  json_add_int(resp, "cleanedCount", n);
  json_add_int(resp, "killedCount", n);
  return resp;
}

static void h_process_kill_all(struct http_req *r)
{
  cleanup_error struct sp_error *err = NULL;
  monitor_answer(r, kill_all(r, &err), &err);
}

/* ---- logs ---- */

struct collect {
  struct sbuf out, err;
  size_t lines;
  bool cut;
};

static int collect_line(void *ud, const struct log_line *l)
{
  struct collect *c = ud;
  struct sbuf *sb = l->stream == LOGSTORE_STDERR ? &c->err : &c->out;
  if (c->out.len + c->err.len + l->len > LOGS_MAX_BYTES) {
    c->cut = true;
    return 1;
  }
  sbuf_add(sb, l->text, l->len);
  sbuf_addch(sb, '\n');
  c->lines++;
  return 0;
}

/* The sandbox of a request for process `id`, or NULL with *err when the
 * header is malformed or the sandbox has no such process. */
static const char *process_sandbox(struct http_req *r, const char *id, struct sp_error **err)
{
  struct monitor *m = r->app;
  const char *sandbox = monitor_sandbox(r, err);
  if (sandbox == NULL)
    return NULL;
  struct proc_state st;
  supervisor_state(m->sup, sandbox, id, &st);
  if (!st.found) {
    sp_error_code(err, "PROCESS_NOT_FOUND", 404, "Process %s not found", id);
    sp_error_context(err, "processId", id);
    return NULL;
  }
  return sandbox;
}

/* The stored output of the request's process r->params[0], by stream. */
static cJSON *process_logs(struct http_req *r, struct sp_error **err)
{
  struct monitor *m = r->app;
  const char *id = r->params[0];
  const char *sandbox = process_sandbox(r, id, err);
  if (sandbox == NULL)
    return NULL;
  cleanup_free char *key = supervisor_log_key(sandbox, id);
  struct collect c = {SBUF_INIT, SBUF_INIT, 0, false};
  cJSON *resp = NULL;
  if (logstore_query(m->ls, key, 0, LOGS_MAX_LINES, 0, collect_line, &c, err) == 0) {
    cleanup_free char *out = str_repair_utf8(sbuf_str(&c.out), c.out.len);
    cleanup_free char *errs = str_repair_utf8(sbuf_str(&c.err), c.err.len);
    resp = json_success_new();
    cJSON_AddStringToObject(resp, "processId", id);
    cJSON_AddStringToObject(resp, "stdout", out);
    cJSON_AddStringToObject(resp, "stderr", errs);
    cJSON_AddBoolToObject(resp, "truncated", c.cut);
  }
  sbuf_release(&c.out);
  sbuf_release(&c.err);
  return resp;
}

static void h_process_logs(struct http_req *r)
{
  cleanup_error struct sp_error *err = NULL;
  monitor_answer(r, process_logs(r, &err), &err);
}

/* A server-sent event stream fed from the log store. */
struct follow {
  struct monitor *m;
  char sandbox[SP_SANDBOX_ID_MAX + 1]; /* "": every sandbox */
  char id[SP_PROCESS_ID_MAX + 1];     /* the process of an SDK process stream */
  char *key;                          /* NULL: all processes (of sandbox, if set) */
  int64_t seq;
  struct sbuf *out; /* the stream's, during a call */
  int phase; /* 0: info to send, 1: lines */
  bool sse_process; /* SDK process stream vs /api/logs follow */
  int64_t last_send;
};

static void follow_free(void *ud)
{
  struct follow *f = ud;
  free(f->key);
  free(f);
}

static cJSON *line_json(const struct log_line *l)
{
  cJSON *j = cJSON_CreateObject();
  char ts[40];
  cleanup_free char *text = str_repair_utf8(l->text, l->len);
  json_add_int(j, "seq", l->seq);
  cJSON_AddStringToObject(j, "process", l->process_id);
  json_add_int(j, "run", l->run);
  cJSON_AddStringToObject(j, "stream", l->stream == LOGSTORE_STDERR ? "stderr" : "stdout");
  cJSON_AddStringToObject(j, "time", sp_iso8601(l->ts_ms, ts, sizeof ts));
  cJSON_AddStringToObject(j, "text", text);
  if (l->truncated)
    cJSON_AddBoolToObject(j, "truncated", true);
  return j;
}

static int follow_line(void *ud, const struct log_line *l)
{
  struct follow *f = ud;
  f->seq = l->seq;
  if (f->sandbox[0] && !f->key) {
    /* all processes of one sandbox: keys are "sandbox/id" */
    size_t n = strlen(f->sandbox);
    if (strncmp(l->process_id, f->sandbox, n) != 0 || l->process_id[n] != '/')
      return 0;
  }
  if (f->sse_process) {
    cleanup_json cJSON *d = cJSON_CreateObject();
    char ts[40];
    cleanup_free char *text = str_repair_utf8(l->text, l->len);
    cleanup_free char *chunk = xasprintf("%s\n", text);
    const char *type = l->stream == LOGSTORE_STDERR ? "stderr" : "stdout";
    cJSON_AddStringToObject(d, "type", type);
    cJSON_AddStringToObject(d, "data", chunk);
    cJSON_AddStringToObject(d, "processId", f->id);
    cJSON_AddStringToObject(d, "timestamp", sp_iso8601(l->ts_ms, ts, sizeof ts));
    http_sse_event(f->out, NULL, d);
  } else {
    cleanup_json cJSON *d = line_json(l);
    http_sse_event(f->out, NULL, d);
  }
  return f->out->len > 256 * 1024;
}

static int follow_cb(void *ud, struct sbuf *out)
{
  struct follow *f = ud;
  f->out = out;
  if (f->phase == 0) {
    f->phase = 1;
    if (f->sse_process) {
      struct sp_error *err = NULL;
      cJSON *p = supervisor_get(f->m->sup, f->sandbox, f->id, &err);
      sp_error_free(err);
      if (p) {
        cleanup_json cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "type", "process_info");
        cJSON_AddStringToObject(d, "processId", f->id);
        cJSON_AddStringToObject(d, "command", cJSON_GetObjectItem(p, "command")->valuestring);
        cJSON_AddStringToObject(d, "status", cJSON_GetObjectItem(p, "status")->valuestring);
        cJSON_AddItemToObject(d, "process", p);
        json_add_timestamp(d);
        http_sse_event(f->out, NULL, d);
      }
    }
    f->last_send = sp_monotonic_ms();
    return HTTP_STREAM_MORE;
  }
  /* Is the process over?  Checked before the query, so lines committed
   * before it ended are all read below. */
  struct proc_state st = {0};
  if (f->sse_process)
    supervisor_state(f->m->sup, f->sandbox, f->id, &st);
  /* Sequence numbers are global: wait for lines past what the store had
   * committed when we looked, not past our own last line. */
  int64_t committed = logstore_last_committed_seq(f->m->ls);
  struct sp_error *err = NULL;
  if (logstore_query(f->m->ls, f->key, f->seq, 0, 2000, follow_line, f, &err) < 0) {
    sp_error_free(err);
    return HTTP_STREAM_ABORT;
  }
  if (out->len) {
    f->last_send = sp_monotonic_ms();
    return HTTP_STREAM_MORE;
  }
  if (supervisor_closed(f->m->sup)) {
    /* everything was committed before: nothing more will come */
    sse_stopping(out);
    return HTTP_STREAM_END;
  }
  if (f->sse_process && (!st.found || st.final)) {
    cleanup_json cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "type", "exit");
    cJSON_AddStringToObject(d, "processId", f->id);
    if (st.has_exit)
      json_add_int(d, "exitCode", st.exit_code);
    else
      cJSON_AddNullToObject(d, "exitCode");
    cJSON_AddStringToObject(d, "status", st.found ? st.status : "unknown");
    cleanup_free char *msg = st.has_exit ? xasprintf("Process %s with exit code %d", st.status, st.exit_code)
                                         : xasprintf("Process %s", st.found ? st.status : "not found");
    cJSON_AddStringToObject(d, "data", msg);
    json_add_timestamp(d);
    http_sse_event(f->out, NULL, d);
    return HTTP_STREAM_END;
  }
  if (sp_monotonic_ms() - f->last_send >= SSE_KEEPALIVE_MS) {
    sbuf_addstr(out, ": keepalive\n\n");
    f->last_send = sp_monotonic_ms();
    return HTTP_STREAM_MORE;
  }
  logstore_wait(f->m->ls, committed, 500);
  return HTTP_STREAM_MORE;
}

static void h_process_stream(struct http_req *r)
{
  struct monitor *m = r->app;
  const char *id = r->params[0];
  cleanup_error struct sp_error *err = NULL;
  const char *sandbox = process_sandbox(r, id, &err);
  if (sandbox == NULL) {
    http_reply_error(r, &err);
    return;
  }
  struct follow *f = xcalloc(1, sizeof *f);
  f->m = m;
  snprintf(f->sandbox, sizeof f->sandbox, "%s", sandbox);
  snprintf(f->id, sizeof f->id, "%s", id);
  f->key = supervisor_log_key(sandbox, id);
  f->sse_process = true;
  http_reply_stream(r, 200, "text/event-stream", follow_cb, f, follow_free);
}

/* What an observation route looks at: the header's sandbox, else the one
 * named by ?session=, else (NULL) every sandbox. */
static int observed_scope(struct http_req *r, const char **scope, struct sp_error **err)
{
  if (monitor_scope(r, scope, err) < 0)
    return -1;
  if (*scope == NULL)
    *scope = http_query(r, "session");
  return 0;
}

/* Query parameter `name` as an integer in [min, max], `def` when absent. */
static int parse_i64_param(struct http_req *r, const char *name, int64_t def, int64_t min,
                           int64_t max, int64_t *out, struct sp_error **err)
{
  const char *v = http_query(r, name);
  long long n;
  if (v == NULL || *v == '\0') {
    *out = def;
    return 0;
  }
  if (!str_to_ll(v, min, max, &n))
    return sp_error_code(err, "INVALID_REQUEST", 400,
                         "'%s' must be an integer between %lld and %lld", name, (long long)min,
                         (long long)max);
  *out = n;
  return 0;
}

struct lines_ctx {
  cJSON *arr;
  const char *prefix;
  size_t bytes;
  int64_t last;
};

static int lines_cb(void *ud, const struct log_line *l)
{
  struct lines_ctx *c = ud;
  c->last = l->seq;
  if (c->prefix) {
    size_t n = strlen(c->prefix);
    if (strncmp(l->process_id, c->prefix, n) != 0 || l->process_id[n] != '/')
      return 0;
  }
  cJSON_AddItemToArray(c->arr, line_json(l));
  c->bytes += l->len + 100;
  return c->bytes > LOGS_MAX_BYTES;
}

static void h_logs(struct http_req *r)
{
  struct monitor *m = r->app;
  cleanup_error struct sp_error *err = NULL;
  const char *scope;
  int64_t since, tail, limit;
  if (observed_scope(r, &scope, &err) < 0 ||
      parse_i64_param(r, "since", 0, 0, INT64_MAX, &since, &err) < 0 ||
      parse_i64_param(r, "tail", 0, 0, LOGS_MAX_LINES, &tail, &err) < 0 ||
      parse_i64_param(r, "limit", 10000, 1, LOGS_MAX_LINES, &limit, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  const char *process = http_query(r, "process");
  const char *follow = http_query(r, "follow");
  cleanup_free char *key = NULL;
  if (process) {
    if (scope == NULL) {
      /* "sandbox/id" or an id of the default sandbox */
      key = strchr(process, '/') ? xstrdup(process) : supervisor_log_key("default", process);
    } else {
      key = supervisor_log_key(scope, process);
    }
  }
  if (follow && strcmp(follow, "1") == 0) {
    struct follow *f = xcalloc(1, sizeof *f);
    f->m = m;
    snprintf(f->sandbox, sizeof f->sandbox, "%s", scope ? scope : "");
    f->key = key ? xstrdup(key) : NULL;
    f->phase = 1;
    f->seq = since;
    if (tail > 0) {
      /* start from the tail: find the seq before the last `tail` lines */
      struct lines_ctx c = {cJSON_CreateArray(), NULL, 0, 0};
      int64_t first = 0;
      /* on failure, the stream starts at `since` */
      if (logstore_query(m->ls, key, since, tail, 1, lines_cb, &c, &err) < 0)
        sp_error_free(steal_ptr(&err));
      cJSON *it = cJSON_GetArrayItem(c.arr, 0);
      if (it)
        first = (int64_t)cJSON_GetObjectItem(it, "seq")->valuedouble;
      cJSON_Delete(c.arr);
      if (first > 0)
        f->seq = first - 1;
    } else if (since == 0) {
      f->seq = 0;
    }
    f->last_send = sp_monotonic_ms();
    http_reply_stream(r, 200, "text/event-stream", follow_cb, f, follow_free);
    return;
  }
  struct lines_ctx c = {cJSON_CreateArray(), key ? NULL : scope, 0, since};
  if (logstore_query(m->ls, key, since, tail, limit, lines_cb, &c, &err) < 0) {
    cJSON_Delete(c.arr);
    http_reply_error(r, &err);
    return;
  }
  cleanup_json cJSON *resp = json_success_new();
  cJSON_AddItemToObject(resp, "lines", c.arr);
  json_add_int(resp, "lastSeq", c.last);
  http_reply_json(r, 200, resp);
}

/* Clears the stored lines of ?process= (of the request's sandbox, or of
 * "default"), of every process of the request's sandbox, or, without
 * either, of all. */
static int logs_clear(struct http_req *r, struct sp_error **err)
{
  struct monitor *m = r->app;
  const char *scope;
  if (monitor_scope(r, &scope, err) < 0)
    return -1;
  const char *process = http_query(r, "process");
  if (process || scope == NULL) {
    cleanup_free char *key = process ? supervisor_log_key(scope ? scope : "default", process) : NULL;
    return logstore_clear(m->ls, key, err);
  }
  cleanup_json cJSON *list = supervisor_list(m->sup, scope);
  cJSON *p;
  cJSON_ArrayForEach(p, list)
  {
    cleanup_free char *k = supervisor_log_key(scope, cJSON_GetObjectItem(p, "id")->valuestring);
    if (logstore_clear(m->ls, k, err) < 0)
      return -1;
  }
  return 0;
}

static void h_logs_clear(struct http_req *r)
{
  cleanup_error struct sp_error *err = NULL;
  if (logs_clear(r, &err) < 0)
    http_reply_error(r, &err);
  else
    http_reply(r, 200, "application/json", "{\"success\":true}", 16);
}

/* ---- errors ---- */

static int error_cb(void *ud, const struct error_record *e)
{
  cJSON *arr = ud;
  cJSON *j = cJSON_CreateObject();
  char ts[40];
  json_add_int(j, "id", e->id);
  char hash[17];
  snprintf(hash, sizeof hash, "%016llx", (unsigned long long)e->hash);
  cJSON_AddStringToObject(j, "hash", hash);
  json_add_string_or_null(j, "category", e->category);
  json_add_string_or_null(j, "severity", e->severity);
  json_add_string_or_null(j, "tool", e->tool);
  json_add_string_or_null(j, "file", e->file);
  if (e->line)
    json_add_int(j, "line", e->line);
  else
    cJSON_AddNullToObject(j, "line");
  if (e->column)
    json_add_int(j, "column", e->column);
  else
    cJSON_AddNullToObject(j, "column");
  json_add_string_or_null(j, "message", e->message);
  json_add_string_or_null(j, "raw", e->raw);
  cJSON_AddStringToObject(j, "firstSeen", sp_iso8601(e->first_seen_ms, ts, sizeof ts));
  cJSON_AddStringToObject(j, "lastSeen", sp_iso8601(e->last_seen_ms, ts, sizeof ts));
  json_add_int(j, "occurrences", e->count);
  json_add_string_or_null(j, "processId", e->process_id);
  json_add_string_or_null(j, "sessionId", e->session_id);
  cJSON_AddItemToArray(arr, j);
  return cJSON_GetArraySize(arr) >= 1000;
}

/* ?since= accepts epoch milliseconds or an ISO 8601 time. */
static int parse_since(struct http_req *r, int64_t *out, struct sp_error **err)
{
  const char *v = http_query(r, "since");
  *out = 0;
  if (v == NULL || *v == '\0')
    return 0;
  long long n;
  if (str_to_ll(v, 0, INT64_MAX, &n)) {
    *out = n;
    return 0;
  }
  struct tm tm = {0};
  int ms = 0;
  char *end = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
  if (end && *end == '.') {
    ms = (int)strtol(end + 1, &end, 10) % 1000;
  }
  if (end == NULL || (*end != 'Z' && *end != '\0') || (*end == 'Z' && end[1] != '\0'))
    return sp_error_code(err, "INVALID_REQUEST", 400,
                         "'since' must be epoch milliseconds or an ISO 8601 UTC time");
  *out = (int64_t)timegm(&tm) * 1000 + ms;
  return 0;
}

static void h_errors(struct http_req *r)
{
  struct monitor *m = r->app;
  cleanup_error struct sp_error *err = NULL;
  const char *scope;
  int64_t since;
  if (observed_scope(r, &scope, &err) < 0 || parse_since(r, &since, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  cJSON *arr = cJSON_CreateArray();
  if (errorstore_query(logstore_errors(m->ls), since, scope, error_cb, arr, &err) < 0) {
    cJSON_Delete(arr);
    http_reply_error(r, &err);
    return;
  }
  const char *reset = http_query(r, "reset");
  if (reset && strcmp(reset, "1") == 0 && errorstore_clear(logstore_errors(m->ls), scope, &err) < 0) {
    cJSON_Delete(arr);
    http_reply_error(r, &err);
    return;
  }
  cleanup_json cJSON *resp = json_success_new();
  json_add_int(resp, "count", cJSON_GetArraySize(arr));
  cJSON_AddItemToObject(resp, "errors", arr);
  http_reply_json(r, 200, resp);
}

static void h_errors_stats(struct http_req *r)
{
  struct monitor *m = r->app;
  cleanup_error struct sp_error *err = NULL;
  const char *scope;
  cJSON *stats = observed_scope(r, &scope, &err) == 0 ? errorstore_stats(logstore_errors(m->ls), scope, &err) : NULL;
  cJSON *resp = stats ? json_success_new() : NULL;
  if (resp)
    cJSON_AddItemToObject(resp, "stats", stats);
  monitor_answer(r, resp, &err);
}

static void h_errors_clear(struct http_req *r)
{
  struct monitor *m = r->app;
  cleanup_error struct sp_error *err = NULL;
  const char *scope;
  if (observed_scope(r, &scope, &err) < 0 || errorstore_clear(logstore_errors(m->ls), scope, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  http_reply(r, 200, "application/json", "{\"success\":true}", 16);
}

/* ---- status ---- */

static void h_ping(struct http_req *r)
{
  cleanup_json cJSON *resp = json_success_new();
  cJSON_AddStringToObject(resp, "message", "pong");
  cJSON_AddStringToObject(resp, "status", "healthy");
  json_add_int(resp, "uptime", (sp_now_ms() - ((struct monitor *)r->app)->started_ms) / 1000);
  monitor_reply(r, resp);
}

/* keys[i]: values[i], for i < n */
static void add_ints(cJSON *o, const char *const *keys, const int64_t *values, size_t n)
{
  for (size_t i = 0; i < n; i++)
    json_add_int(o, keys[i], values[i]);
}

static void h_status(struct http_req *r)
{
  struct monitor *m = r->app;
  struct logstore_status ls;
  cleanup_error struct sp_error *err = NULL;
  if (logstore_status(m->ls, &ls, &err) < 0) {
    http_reply_error(r, &err);
    return;
  }
  struct supervisor_counts sc;
  supervisor_counts(m->sup, &sc);
  cleanup_json cJSON *resp = json_success_new();
  cJSON_AddStringToObject(resp, "version", SANDPIT_VERSION);
  json_add_int(resp, "pid", getpid());
  json_add_int(resp, "uptimeMs", sp_now_ms() - m->started_ms);
  static const char *const pk[] = {"total", "running", "ready", "failed", "restarts",
                                    "orphansReaped"};
  const int64_t pv[] = {sc.total, sc.running, sc.ready, sc.failed, sc.restarts, sc.orphans_reaped};
  add_ints(cJSON_AddObjectToObject(resp, "processes"), pk, pv, SP_ARRAY_SIZE(pk));
  cJSON *d = cJSON_AddObjectToObject(resp, "database");
  cJSON_AddStringToObject(d, "path", m->db_path);
  static const char *const dk[] = {"bytes", "lines", "errors", "pendingLines", "rotatedLines",
                                    "droppedLines", "truncatedLines", "writeFailures", "lastSeq"};
  const int64_t dv[] = {ls.db_bytes,      ls.lines,           ls.errors,
                        ls.pending,       ls.rotated_lines,   ls.dropped_lines,
                        ls.truncated_lines, ls.write_failures, ls.last_seq};
  add_ints(d, dk, dv, SP_ARRAY_SIZE(dk));
  cJSON_AddBoolToObject(resp, "isolatedUsers", m->is_root);
  http_reply_json(r, 200, resp);
}

const struct http_route monitor_routes[] = {
    {"GET", "/api/ping", h_ping, 0, NULL},
    {"POST", "/api/execute", api_execute, 0, NULL},
    {"POST", "/api/execute/stream", api_execute_stream, 0, NULL},
    {"POST", "/api/session/create", api_session_create, 0, NULL},
    {"POST", "/api/session/delete", api_session_delete, 0, NULL},
    {"GET", "/api/session/list", api_session_list, 0, NULL},
    {"GET", "/api/version", api_version, 0, NULL},
    {"GET", "/api/commands", api_commands, 0, NULL},
    {"POST", "/api/port-watch", api_port_watch, 0, NULL},
    {"DELETE", "/api/sandbox", api_sandbox_delete, 0, NULL},
    {"GET", "/api/tunnel", api_tunnel, 0, NULL},
    {"POST", "/api/read", api_read, 0, NULL},
    {"POST", "/api/read/stream", api_read_stream, 0, NULL},
    {"POST", "/api/write", api_write, 64u << 20, NULL},
    {"POST", "/api/mkdir", api_mkdir, 0, NULL},
    {"POST", "/api/delete", api_delete, 0, NULL},
    {"POST", "/api/rename", api_rename, 0, NULL},
    {"POST", "/api/move", api_move, 0, NULL},
    {"POST", "/api/list-files", api_list_files, 0, NULL},
    {"POST", "/api/exists", api_exists, 0, NULL},
    {"PUT", "/api/archive", api_archive_put, 0, api_archive_body},
    {"POST", "/api/archive", api_archive_put, 0, api_archive_body},
    {"GET", "/api/archive", api_archive_get, 0, NULL},
    {"GET", "/api/status", h_status, 0, NULL},
    {"POST", "/api/process/start", h_process_start, 0, NULL},
    {"GET", "/api/process/list", h_process_list, 0, NULL},
    {"DELETE", "/api/process/kill-all", h_process_kill_all, 0, NULL},
    {"GET", "/api/process/:id", h_process_get, 0, NULL},
    {"DELETE", "/api/process/:id", h_process_kill, 0, NULL},
    {"POST", "/api/process/:id/restart", h_process_restart, 0, NULL},
    {"GET", "/api/process/:id/logs", h_process_logs, 0, NULL},
    {"GET", "/api/process/:id/stream", h_process_stream, 0, NULL},
    {"GET", "/api/logs", h_logs, 0, NULL},
    {"DELETE", "/api/logs", h_logs_clear, 0, NULL},
    {"GET", "/api/errors", h_errors, 0, NULL},
    {"GET", "/api/errors/stats", h_errors_stats, 0, NULL},
    {"DELETE", "/api/errors", h_errors_clear, 0, NULL},
};
const size_t monitor_nroutes = SP_ARRAY_SIZE(monitor_routes);
