/* sandpit-monitor: state shared by its HTTP handlers. */
#ifndef SP_MONITOR_H
#define SP_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"

struct sp_error;

struct logstore;
struct classify_rules;
struct supervisor;
struct sandboxes;

struct monitor {
  const char *socket_path;
  const char *data_dir;
  const char *workspace;
  char *db_path;
  struct logstore *ls;
  struct classify_rules *rules;
  struct supervisor *sup;
  struct http_server *http;
  int64_t started_ms;
  bool is_root;
  struct sandboxes *sandboxes;
  size_t exec_output_max; /* bytes of stdout (and of stderr) kept per command */
};

/* Which sandbox a request is for.  Each returns its answer, or fails with
 * *err (the handler replies with it) for a malformed X-Sandpit-Sandbox. */
struct sandbox;
/* The header's sandbox, or "default" without one. */
const char *monitor_sandbox(struct http_req *r, struct sp_error **err);
/* The header's sandbox in *id, or NULL without one (observation routes then
 * see every sandbox, optionally filtered by ?session=).  Returns 0 or -1. */
int monitor_scope(struct http_req *r, const char **id, struct sp_error **err);
/* The sandbox itself (created on first use). */
const struct sandbox *monitor_sandbox_get(struct http_req *r, struct sp_error **err);

/* Run a command as the sandbox's user and wait for it (at most 30 s). */
void monitor_run_as(struct monitor *m, const struct sandbox *sb, const char *cmd);

/* Answer 200 with j, a json_success_new() envelope: its timestamp goes
 * last, as the SDK's container does. */
struct cJSON;
void monitor_reply(struct http_req *r, struct cJSON *j);
/* A handler's one answer: monitor_reply(j) and free j, or, when j is NULL,
 * the error in *err. */
void monitor_answer(struct http_req *r, struct cJSON *j, struct sp_error **err);

/* The last event of a stream cut short by the monitor's stop sequence. */
struct sbuf;
void sse_stopping(struct sbuf *out);

/* Handlers of api_exec.c and api_files.c. */
void api_execute(struct http_req *r);
void api_execute_stream(struct http_req *r);
void api_session_create(struct http_req *r);
void api_session_delete(struct http_req *r);
void api_session_list(struct http_req *r);
void api_version(struct http_req *r);
void api_commands(struct http_req *r);
void api_port_watch(struct http_req *r);
void api_sandbox_delete(struct http_req *r);
void api_tunnel(struct http_req *r);
void api_read(struct http_req *r);
void api_read_stream(struct http_req *r);
void api_write(struct http_req *r);
void api_mkdir(struct http_req *r);
void api_delete(struct http_req *r);
void api_rename(struct http_req *r);
void api_move(struct http_req *r);
void api_list_files(struct http_req *r);
void api_exists(struct http_req *r);
void api_archive_put(struct http_req *r);
void api_archive_get(struct http_req *r);
int api_archive_body(struct http_req *r, const char *data, size_t len, struct sp_error **err);

/* The route table. */
extern const struct http_route monitor_routes[];
extern const size_t monitor_nroutes;

#endif
