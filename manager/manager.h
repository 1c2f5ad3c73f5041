/* sandpitd: state shared by its parts. */
#ifndef SP_MANAGER_H
#define SP_MANAGER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "http.h"

struct sp_error;
struct backend;
struct state;
struct cJSON;

enum inst_state { INST_STOPPED, INST_STARTING, INST_RUNNING, INST_STOPPING, INST_FAILED };

/* Each module's state is its own: a pool (one [[containers]] entry) and its
 * max_instances slots, each an instance, are instances.c's; the sandbox
 * table is sandboxes.c's; and so on.  Other files call their functions. */
struct pool;
struct instance;
struct sandboxes;
struct housekeeper;
struct drain;
struct metrics;

/* A connection sandpitd carries for a client (a forward's upstream socket,
 * a preview's two sockets), listed while it lives so that a shutdown can
 * cut it. */
struct carried {
  int fd[2];
  bool listed;
  struct carried *prev, *next;
};

/* What every part of sandpitd is given: the configuration, the shared
 * services, and a handle on each module's state. */
struct manager {
  struct sp_config *cfg;
  char *api_token;
  char *config_dir;
  char *bin_dir;
  struct http_server *http;
  struct state *state;
  struct backend *local, *docker;
  int64_t started_ms;

  struct pool *pools;       /* instances.c's: pools_count(), pool_at() */
  int npools;
  struct sandboxes *sbx;    /* sandboxes.c's */
  struct housekeeper *hk;   /* housekeeper.c's */
  struct drain *drain;      /* drain.c's: the shutdown's phase, what is carried */
  struct metrics *metrics;  /* metrics.c's */
};

int manager_load_token(struct manager *m, struct sp_error **err);
int manager_serve(struct manager *m, struct sp_error **err);
void manager_stop(struct manager *m);

/* instances.c */
int pools_init(struct manager *m, struct sp_error **err);
void pools_free(struct manager *m);
/* Adopt running instances a previous sandpitd started; start min_warm. */
void pools_adopt(struct manager *m);
struct pool *pool_by_name(struct manager *m, const char *name);
int pools_count(const struct manager *m);
struct pool *pool_at(struct manager *m, int i);
const struct sp_pool *pool_config(const struct pool *p);
/* Its number of slots (max_instances). */
int pool_size(const struct pool *p);
struct instance *pool_instance(struct pool *p, int slot);
/* The monitor's socket path (fixed for the life of sandpitd). */
const char *instance_socket(const struct instance *in);
bool instance_running(struct instance *in);
/* {class, slot, backend, backendId, state, startedAt, uptimeMs, starts,
 * restarts, error?, sandboxes}, as GET /v1/instances lists it. */
struct cJSON *instance_json(struct manager *m, struct instance *in);
/* The instances of `only`, or of every pool (NULL), as instance_json. */
struct cJSON *instances_json(struct manager *m, struct pool *only);
/* Instances by state, and the starts and restarts of all of them. */
void pools_tally(struct manager *m, int by_state[INST_FAILED + 1], int64_t *starts,
                 int64_t *restarts);
/* Make sure the instance runs; waits up to wait_ms for a start in progress.
 * INSTANCE_STARTING (503, with Retry-After) when it is not up in time. */
int instance_ensure(struct manager *m, struct instance *in, int wait_ms, struct sp_error **err);
/* The instance's socket answered nothing: is it dead?  Then mark it so the
 * next ensure restarts it (counted as a restart). */
void instance_check_dead(struct manager *m, struct instance *in);
int instance_restart(struct manager *m, struct instance *in, struct sp_error **err);
/* Stop a running instance (its directory stays). */
void instance_stop(struct manager *m, struct instance *in);
void instance_touch(struct instance *in);
const char *instance_state_name(enum inst_state s);
/* Wake every wait for an instance's start or stop (a shutdown is cutting
 * them short). */
void pools_wake(struct manager *m);
/* One housekeeping round for slot k of p: stop it when idle past its pool's
 * sleep_after_s, health-check it when running (slots spread over 5 s). */
void instance_tend(struct manager *m, struct pool *p, int k, int64_t now);

/* housekeeper.c: once a second, flush sandbox rows and tend every slot */
int housekeeper_start(struct manager *m);
/* Ask the housekeeper to stop (it finishes the instance at hand). */
void housekeeper_stop(struct manager *m);
/* Wait for it until deadline_ms (monotonic); false when it is still busy. */
bool housekeeper_join(struct manager *m, int64_t deadline_ms);

/* sandboxes.c */
struct sbx_ref {
  struct pool *pool;
  int slot;
  bool created;
  int64_t created_ms, last_active_ms;
};
int sandboxes_load(struct manager *m, struct sp_error **err);
size_t sandboxes_total(struct manager *m);
/* Find a sandbox; create it (in `pool`, or the first pool) when `create`.
 * SANDBOX_NOT_FOUND (404), INVALID_SANDBOX_ID (400), CAPACITY_EXCEEDED (429)
 * for one_to_one pools that are full. */
int sandbox_lookup(struct manager *m, const char *id, struct pool *pool, bool create,
                   struct sbx_ref *out, struct sp_error **err);
void sandbox_touch(struct manager *m, const char *id);
int sandbox_forget(struct manager *m, const char *id, struct sp_error **err);
struct cJSON *sandboxes_json(struct manager *m, struct pool *pool);
size_t sandboxes_count(struct manager *m, struct pool *p, int slot);
/* Write last-active times that changed to the state database. */
void sandboxes_flush(struct manager *m);
void sandboxes_free(struct manager *m);

/* drain.c: what is in flight, and the shutdown that ends it.
 *
 * On the first SIGTERM or SIGINT new connections are refused and new
 * requests on open ones are answered 503 MANAGER_STOPPING (DRAINING); the
 * requests in flight get up to shutdown_grace to finish, and a second
 * signal ends that wait.  Then what still runs is cut (CUTTING): the
 * carried sockets are shut down, so a forward still waiting answers 503
 * MANAGER_STOPPING, a streamed one and every preview are closed, and waits
 * for an instance's start end.  Last the state is flushed and the HTTP
 * server stopped, at most a second after the grace.  Instances keep
 * running: the next sandpitd adopts them. */
enum drain_phase { DRAIN_SERVING, DRAIN_DRAINING, DRAIN_CUTTING };
void drain_init(struct manager *m);
void drain_release(struct manager *m);
/* True from the first signal on: take no new work. */
bool drain_stopping(struct manager *m);
/* True once in-flight work is being cut. */
bool drain_cutting(struct manager *m);
/* MANAGER_STOPPING (503).  Returns -1. */
int drain_error(struct sp_error **err);
/* List c with its first socket; false (not listed) when already cutting. */
bool drain_carry(struct manager *m, struct carried *c, int fd);
/* Add c's second socket (shut down at once when cutting). */
void drain_carry_fd(struct manager *m, struct carried *c, int fd);
/* Unlist c (no-op when it is not listed); before its sockets are closed. */
void drain_uncarry(struct manager *m, struct carried *c);
/* The shutdown, from the first signal on; sigfd (a signalfd) brings the
 * second.  True when everything ended in time and the HTTP server was
 * stopped; false when something still runs (then nothing may be freed). */
bool drain_run(struct manager *m, int sigfd);

/* metrics.c */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *mt);
void metrics_request(struct metrics *mt, const char *route, int status, int64_t us);
void metrics_forwarded(struct metrics *mt, uint64_t up, uint64_t down);
/* The outcome of one instance health check. */
enum health_result { HEALTH_OK, HEALTH_SLOW, HEALTH_UNANSWERED, HEALTH_DEAD, HEALTH_NRESULTS };
void metrics_health(struct metrics *mt, enum health_result r);
char *metrics_render(struct manager *m);

/* preview.c */
void api_ports_expose(struct http_req *r);
void api_ports_list(struct http_req *r);
void api_ports_unexpose(struct http_req *r);
bool preview_takeover(void *app, int fd, const char *head, size_t len,
                      const struct sockaddr_storage *peer);

/* openapi.c */
extern const char sandpit_openapi_json[];

#endif
