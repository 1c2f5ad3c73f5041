/* sandpitd's state in SQLite (WAL): sandboxes, instances and, for
 * previews, exposed ports.  Every write is committed before the call
 * returns, so a kill -9 of sandpitd loses nothing that was answered.
 * Thread-safe. */
#ifndef SP_STATE_H
#define SP_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_error;
struct state;

struct sandbox_row {
  const char *id;
  const char *pool;
  int slot;
  int64_t created_ms;
  int64_t last_active_ms;
};

/* An instance, by pool and slot, as last written: its start counters are
 * restored when sandpitd starts again. */
struct instance_row {
  const char *pool;
  int slot;
  const char *backend;    /* "local" or "docker" */
  const char *backend_id; /* the backend's id of the instance; may be NULL */
  const char *state;      /* instance_state_name() */
  int64_t started_ms;
  int64_t starts;
  int64_t restarts;
};

/* An exposed port of a sandbox and the token of its preview URL. */
struct port_row {
  const char *sandbox;
  int port;
  const char *token;
  const char *name; /* may be NULL */
  int64_t created_ms;
};

struct state *state_open(const char *path, struct sp_error **err);
void state_close(struct state *st);

int state_sandbox_put(struct state *st, const struct sandbox_row *r, struct sp_error **err);
int state_sandbox_touch(struct state *st, const char *id, int64_t last_active_ms,
                        struct sp_error **err);
int state_sandbox_delete(struct state *st, const char *id, struct sp_error **err);
typedef int (*state_sandbox_cb)(void *ud, const struct sandbox_row *r);
int state_sandbox_each(struct state *st, state_sandbox_cb cb, void *ud, struct sp_error **err);

int state_instance_put(struct state *st, const struct instance_row *r, struct sp_error **err);
typedef int (*state_instance_cb)(void *ud, const struct instance_row *r);
int state_instance_each(struct state *st, state_instance_cb cb, void *ud, struct sp_error **err);

int state_port_put(struct state *st, const struct port_row *r, struct sp_error **err);
int state_port_delete(struct state *st, const char *sandbox, int port, struct sp_error **err);
/* The token of an exposed port into tok (size n); 1 found, 0 not, -1 error. */
int state_port_token(struct state *st, const char *sandbox, int port, char *tok, size_t n,
                     struct sp_error **err);
typedef int (*state_port_cb)(void *ud, const struct port_row *r);
/* Ports of one sandbox (all when NULL). */
int state_port_each(struct state *st, const char *sandbox, state_port_cb cb, void *ud,
                    struct sp_error **err);

#endif
