/* sandpitd: the manager's state shared by its parts. */
#ifndef SP_MANAGER_H
#define SP_MANAGER_H

#include "config.h"
#include "http.h"

struct sp_error;

struct manager {
  struct sp_config *cfg;
  char *api_token;
  struct http_server *http;
  int64_t started_ms;
};

/* Resolve the API token: configuration or environment, else the one kept in
 * DATA_DIR/api_token, else a new random one written there (mode 0600). */
int manager_load_token(struct manager *m, struct sp_error **err);
int manager_serve(struct manager *m, struct sp_error **err);
void manager_stop(struct manager *m);

#endif
