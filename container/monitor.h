/* sandpit-monitor: state shared by its HTTP handlers. */
#ifndef SP_MONITOR_H
#define SP_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"

struct logstore;
struct classify_rules;
struct supervisor;

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
};

/* The sandbox a request is for: its X-Sandpit-Sandbox header, or "default".
 * Replies 400 and returns NULL for a malformed one. */
const char *monitor_sandbox(struct http_req *r);
/* The sandbox named by the header, or NULL when there is none (observation
 * routes then see every sandbox, optionally filtered by ?session=). */
const char *monitor_scope(struct http_req *r, bool *bad);

/* The route table. */
extern const struct http_route monitor_routes[];
extern const size_t monitor_nroutes;

#endif
