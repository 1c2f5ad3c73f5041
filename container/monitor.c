/* What the monitor's route files share: which sandbox a request acts for,
 * running a command as a sandbox's user, the event that ends a stream cut
 * short.  The route files (api*.c) call this, never each other. */
#include "monitor.h"

#include <cjson/cJSON.h>

#include <stdbool.h>
#include <string.h>

#include "error.h"
#include "http.h"
#include "id.h"
#include "json.h"
#include "log.h"
#include "sandbox.h"
#include "spawn.h"
#include "str.h"
#include "supervisor.h"
#include "util.h"

int monitor_scope(struct http_req *r, const char **id, struct sp_error **err)
{
  *id = http_header(r, "X-Sandpit-Sandbox");
  if (*id != NULL && !sp_id_ok(SP_ID_SANDBOX, *id)) {
    *id = NULL;
    return sp_error_code(err, "INVALID_SANDBOX", 400,
                         "X-Sandpit-Sandbox must be " SP_SANDBOX_ID_RULE);
  }
  return 0;
}

const char *monitor_sandbox(struct http_req *r, struct sp_error **err)
{
  const char *id;
  if (monitor_scope(r, &id, err) < 0)
    return NULL;
  return id ? id : "default";
}

const struct sandbox *monitor_sandbox_get(struct http_req *r, struct sp_error **err)
{
  struct monitor *m = r->app;
  const char *id = monitor_sandbox(r, err);
  return id ? sandboxes_get(m->sandboxes, id, err) : NULL;
}

/* ---- running as a sandbox ---- */

static void discard(void *ud, enum command_stream which, const char *data, size_t len)
{
  (void)ud;
  (void)which;
  (void)data;
  (void)len;
}

void monitor_run_as(struct monitor *m, const struct sandbox *sb, const char *cmd)
{
  struct spawn_opts so = {.command = cmd, .cwd = "/", .set_user = sb->set_user,
                          .uid = sb->uid, .gid = sb->gid};
  struct command_opts co = {.spawn = &so, .state_fd = -1, .timeout_ms = 30000, .output_cap = 1};
  struct sp_error *err = NULL;
  struct command *c = supervisor_command(m->sup, &co, &err);
  if (c == NULL) {
    sp_warn("cannot run cleanup", LS("sandbox", sb->id), LS("error", err->msg));
    sp_error_free(err);
    return;
  }
  while (!command_wait(c, 1000, discard, NULL)) {
  }
  command_release(c);
}

/* ---- streams ---- */

void monitor_reply(struct http_req *r, cJSON *j)
{
  json_add_timestamp(j);
  http_reply_json(r, 200, j);
}

void monitor_answer(struct http_req *r, cJSON *j, struct sp_error **err)
{
  if (j == NULL) {
    http_reply_error(r, err);
    return;
  }
  monitor_reply(r, j);
  cJSON_Delete(j);
}

void sse_stopping(struct sbuf *out)
{
  cleanup_json cJSON *d = cJSON_CreateObject();
  cJSON_AddStringToObject(d, "type", "error");
  cJSON_AddStringToObject(d, "code", "MONITOR_STOPPING");
  cJSON_AddStringToObject(d, "error", "the monitor is stopping");
  cJSON_AddStringToObject(d, "data", "the monitor is stopping");
  json_add_timestamp(d);
  http_sse_event(out, NULL, d);
}
