/* Pools and their instances: lazy start, health, restarts, sleep, adoption. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "error.h"
#include "httpc.h"
#include "json.h"
#include "log.h"
#include "manager.h"
#include "state.h"
#include "util.h"

#define HEALTH_INTERVAL_MS 5000
#define HEALTH_PING_MS 2000 /* one health check's wait for its answer */
#define HEALTH_SLOW_MS 1000 /* an answer slower than this is a warning */
#define READY_TIMEOUT_MS 60000

struct instance {
  struct pool *pool;
  int slot;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  enum inst_state state;
  char *backend_id;
  char *dir;
  char *socket;
  int64_t started_ms;   /* epoch */
  int64_t starts, restarts;
  int64_t last_active;  /* monotonic ms */
  int64_t last_answer;  /* monotonic ms: it last answered a ping (or came up) */
  char *last_error;
  bool ever_started;
  uint64_t run;         /* counts the times it came up: work decided about one
                           run is not applied to the next */
};

struct pool {
  struct sp_pool *cfg;
  struct backend *backend;
  const char *backend_name;
  char *image;          /* docker: the image to run */
  bool prepared;
  pthread_mutex_t prep_mu;
  struct instance *inst; /* max_instances of them */
  int n;
};

static const char *const state_names[] = {"stopped", "starting", "running", "stopping", "failed"};

const char *instance_state_name(enum inst_state s) { return state_names[s]; }

struct pool *pool_by_name(struct manager *m, const char *name)
{
  for (int i = 0; i < m->npools; i++)
    if (strcmp(m->pools[i].cfg->class_name, name) == 0)
      return &m->pools[i];
  return NULL;
}

int pools_count(const struct manager *m) { return m->npools; }

struct pool *pool_at(struct manager *m, int i) { return &m->pools[i]; }

const struct sp_pool *pool_config(const struct pool *p) { return p->cfg; }

int pool_size(const struct pool *p) { return p->n; }

struct instance *pool_instance(struct pool *p, int slot) { return &p->inst[slot]; }

const char *instance_socket(const struct instance *in) { return in->socket; }

bool instance_running(struct instance *in)
{
  pthread_mutex_lock(&in->mu);
  bool running = in->state == INST_RUNNING;
  pthread_mutex_unlock(&in->mu);
  return running;
}

cJSON *instance_json(struct manager *m, struct instance *in)
{
  cJSON *j = cJSON_CreateObject();
  char ts[40];
  pthread_mutex_lock(&in->mu);
  cJSON_AddStringToObject(j, "class", in->pool->cfg->class_name);
  json_add_int(j, "slot", in->slot);
  cJSON_AddStringToObject(j, "backend", in->pool->backend_name);
  json_add_string_or_null(j, "backendId", in->state == INST_RUNNING ? in->backend_id : NULL);
  cJSON_AddStringToObject(j, "state", instance_state_name(in->state));
  if (in->state == INST_RUNNING) {
    cJSON_AddStringToObject(j, "startedAt", sp_iso8601(in->started_ms, ts, sizeof ts));
    json_add_int(j, "uptimeMs", sp_now_ms() - in->started_ms);
  } else {
    cJSON_AddNullToObject(j, "startedAt");
    json_add_int(j, "uptimeMs", 0);
  }
  json_add_int(j, "starts", in->starts);
  json_add_int(j, "restarts", in->restarts);
  if (in->last_error && in->state == INST_FAILED)
    cJSON_AddStringToObject(j, "error", in->last_error);
  pthread_mutex_unlock(&in->mu);
  json_add_int(j, "sandboxes", (int64_t)sandboxes_count(m, in->pool, in->slot));
  return j;
}

cJSON *instances_json(struct manager *m, struct pool *only)
{
  cJSON *arr = cJSON_CreateArray();
  for (int i = 0; i < m->npools; i++) {
    struct pool *p = &m->pools[i];
    if (only && only != p)
      continue;
    for (int k = 0; k < p->n; k++)
      cJSON_AddItemToArray(arr, instance_json(m, &p->inst[k]));
  }
  return arr;
}

void pools_tally(struct manager *m, int by_state[INST_FAILED + 1], int64_t *starts,
                 int64_t *restarts)
{
  for (int i = 0; i < m->npools; i++)
    for (int k = 0; k < m->pools[i].n; k++) {
      struct instance *in = &m->pools[i].inst[k];
      pthread_mutex_lock(&in->mu);
      by_state[in->state]++;
      *starts += in->starts;
      *restarts += in->restarts;
      pthread_mutex_unlock(&in->mu);
    }
}

static void persist(struct manager *m, struct instance *in)
{
  struct instance_row r = {
      .pool = in->pool->cfg->class_name,
      .slot = in->slot,
      .backend = in->pool->backend_name,
      .backend_id = in->backend_id,
      .state = state_names[in->state],
      .started_ms = in->started_ms,
      .starts = in->starts,
      .restarts = in->restarts,
  };
  struct sp_error *err = NULL;
  if (state_instance_put(m->state, &r, &err) < 0) {
    sp_warn("cannot record instance state", LS("error", err->msg));
    sp_error_free(err);
  }
}

static int restore_counts(void *ud, const struct instance_row *r)
{
  struct manager *m = ud;
  struct pool *p = pool_by_name(m, r->pool);
  if (p == NULL || r->slot < 0 || r->slot >= p->n)
    return 0;
  struct instance *in = &p->inst[r->slot];
  in->starts = r->starts;
  in->restarts = r->restarts;
  in->ever_started = r->starts > 0;
  return 0;
}

int pools_init(struct manager *m, struct sp_error **err)
{
  m->npools = m->cfg->npools;
  m->pools = xcalloc((size_t)m->npools, sizeof *m->pools);
  for (int i = 0; i < m->npools; i++) {
    struct pool *p = &m->pools[i];
    p->cfg = &m->cfg->pools[i];
    pthread_mutex_init(&p->prep_mu, NULL);
    enum sp_backend want = p->cfg->backend;
    if (want == SP_BACKEND_AUTO) {
      struct sp_error *e = NULL;
      if (m->docker == NULL)
        m->docker = backend_docker_new(backend_docker_socket(), &e);
      want = m->docker ? SP_BACKEND_DOCKER : SP_BACKEND_LOCAL;
      sp_info("backend chosen", LS("pool", p->cfg->class_name),
              LS("backend", want == SP_BACKEND_DOCKER ? "docker" : "local"),
              LS("why", m->docker ? "a Docker engine answers" : (e ? e->msg : "no engine")));
      sp_error_free(e);
    }
    if (want == SP_BACKEND_DOCKER) {
      p->backend_name = "docker";
      if (m->docker == NULL) {
        struct sp_error *e = NULL;
        m->docker = backend_docker_new(backend_docker_socket(), &e);
        if (m->docker == NULL) {
          /* requests to this pool say why; the others work */
          sp_warn("docker backend unavailable", LS("pool", p->cfg->class_name),
                  LS("error", e->msg));
          sp_error_free(e);
        }
      }
      p->backend = m->docker;
    } else {
      p->backend_name = "local";
      if (m->local == NULL && (m->local = backend_local_new(err)) == NULL)
        return -1;
      p->backend = m->local;
    }
    p->n = (int)p->cfg->max_instances;
    p->inst = xcalloc((size_t)p->n, sizeof *p->inst);
    for (int k = 0; k < p->n; k++) {
      struct instance *in = &p->inst[k];
      in->pool = p;
      in->slot = k;
      pthread_mutex_init(&in->mu, NULL);
      sp_cond_init(&in->cv);
      in->dir = xasprintf("%s/instances/%s-%d", m->cfg->data_dir, p->cfg->class_name, k);
      in->socket = xasprintf("%s/run/monitor.sock", in->dir);
      if (strlen(in->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return sp_error_code(err, "INVALID_CONFIG", 400,
                             "data_dir %s is too long: instance sockets would not fit a unix "
                             "socket address (108 bytes); use a shorter data_dir",
                             m->cfg->data_dir);
    }
  }
  state_instance_each(m->state, restore_counts, m, NULL);
  return 0;
}

void pools_free(struct manager *m)
{
  for (int i = 0; i < m->npools; i++) {
    struct pool *p = &m->pools[i];
    for (int k = 0; k < p->n; k++) {
      struct instance *in = &p->inst[k];
      free(in->backend_id);
      free(in->dir);
      free(in->socket);
      free(in->last_error);
      pthread_mutex_destroy(&in->mu);
      pthread_cond_destroy(&in->cv);
    }
    free(p->inst);
    free(p->image);
    pthread_mutex_destroy(&p->prep_mu);
  }
  free(m->pools);
  backend_free(m->local);
  backend_free(m->docker);
}

static bool ping(const char *socket, int timeout_ms)
{
  struct sp_error *err = NULL;
  int st = httpc_request(socket, "GET", "/api/ping", NULL, 0, NULL, 0, timeout_ms, 4096, NULL,
                         &err);
  sp_error_free(err);
  return st == 200;
}

static void found(void *ud, const char *pool, int slot, const char *id)
{
  struct manager *m = ud;
  struct pool *p = pool_by_name(m, pool);
  if (p == NULL || slot < 0 || slot >= p->n)
    return;
  struct instance *in = &p->inst[slot];
  /* The backend found its process: it is adopted even when it is too busy
   * to answer now (a second one on the same slot would not start); the
   * health check decides later.  Pinged before the lock is taken. */
  bool answered = ping(in->socket, 2000);
  if (!answered)
    sp_warn("instance adopted although it does not answer yet", LS("pool", pool),
            LI("slot", slot), LS("id", id));
  pthread_mutex_lock(&in->mu);
  if (in->state != INST_RUNNING) {
    free(in->backend_id);
    in->backend_id = xstrdup(id);
    in->state = INST_RUNNING;
    in->run++;
    in->started_ms = sp_now_ms();
    in->last_active = in->last_answer = sp_monotonic_ms();
    sp_info("instance adopted", LS("pool", pool), LI("slot", slot), LS("id", id));
    persist(m, in);
  }
  pthread_mutex_unlock(&in->mu);
}

void pools_adopt(struct manager *m)
{
  struct backend *bs[] = {m->local, m->docker};
  for (size_t i = 0; i < SP_ARRAY_SIZE(bs); i++) {
    if (bs[i] == NULL)
      continue;
    struct sp_error *err = NULL;
    if (bs[i]->ops->discover(bs[i], m->cfg->data_dir, found, m, &err) < 0) {
      sp_warn("cannot look for running instances", LS("backend", bs[i]->ops->name),
              LS("error", err->msg));
      sp_error_free(err);
    }
  }
  for (int i = 0; i < m->npools; i++) {
    struct pool *p = &m->pools[i];
    for (int k = 0; k < p->n; k++)
      if (p->inst[k].state != INST_RUNNING)
        persist(m, &p->inst[k]);
    for (int k = 0; k < p->cfg->min_warm && k < p->n; k++) {
      struct sp_error *err = NULL;
      if (instance_ensure(m, &p->inst[k], READY_TIMEOUT_MS, &err) < 0) {
        sp_warn("cannot warm instance", LS("pool", p->cfg->class_name), LI("slot", k),
                LS("error", err->msg));
        sp_error_free(err);
      }
    }
  }
}

static int prepare_pool(struct manager *m, struct pool *p, struct sp_error **err)
{
  pthread_mutex_lock(&p->prep_mu);
  int rc = 0;
  if (!p->prepared) {
    if (p->backend == NULL) {
      rc = sp_error_code(err, "BACKEND_UNAVAILABLE", 503,
                         "pool %s uses the docker backend, but no Docker engine answers at %s",
                         p->cfg->class_name, backend_docker_socket());
    } else if ((rc = p->backend->ops->prepare(p->backend, p->cfg, m->config_dir, &p->image,
                                              err)) == 0) {
      p->prepared = true;
    }
  }
  pthread_mutex_unlock(&p->prep_mu);
  return rc;
}

/* Start the instance; called with in->mu held, state STARTING; drops the
 * lock while the backend works. */
static int start_locked(struct manager *m, struct instance *in, struct sp_error **err)
{
  struct pool *p = in->pool;
  bool restart = in->ever_started;
  pthread_mutex_unlock(&in->mu);
  int rc = -1;
  char *id = NULL;
  if (prepare_pool(m, p, err) < 0)
    goto out;
  if (sp_mkdir_p(in->dir, 0755, err) < 0)
    goto out;
  /* every instance of this sandpitd its own range of user ids */
  int index = in->slot;
  for (struct pool *q = m->pools; q < p; q++)
    index += q->n;
  struct backend_spec spec = {
      /* above the range a standalone monitor uses by default (200000) */
      .uid_base = 200000u + (unsigned)(index % 32000 + 1) * 65536u,
      .pool = p->cfg->class_name,
      .slot = in->slot,
      .dir = in->dir,
      .bin_dir = m->bin_dir,
      .data_root = m->cfg->data_dir,
      .cfg = p->cfg,
      .image = p->image,
  };
  int64_t t0 = sp_monotonic_ms();
  if (p->backend->ops->start(p->backend, &spec, &id, err) < 0)
    goto out;
  /* Ready when the monitor answers on its socket. */
  int delay_us = 500;
  while (!ping(in->socket, 2000)) {
    if (drain_cutting(m)) {
      /* left running: the next sandpitd adopts it */
      drain_error(err);
      goto out;
    }
    if (!p->backend->ops->alive(p->backend, id)) {
      cleanup_free char *logf = xasprintf("%s/monitor.log", in->dir);
      sp_error_code(err, "INSTANCE_FAILED", 502,
                    "instance %s-%d exited while starting (see %s)", p->cfg->class_name,
                    in->slot, logf);
      goto out;
    }
    if (sp_monotonic_ms() - t0 > READY_TIMEOUT_MS) {
      p->backend->ops->stop(p->backend, id, 1000, NULL);
      sp_error_code(err, "INSTANCE_FAILED", 502,
                    "instance %s-%d did not answer within %d s", p->cfg->class_name, in->slot,
                    READY_TIMEOUT_MS / 1000);
      goto out;
    }
    /* a monitor is up in some 10 ms: look often, it costs one connect */
    usleep((useconds_t)delay_us);
    delay_us = SP_MIN(delay_us * 2, 4000);
  }
  sp_info("instance ready", LS("pool", p->cfg->class_name), LI("slot", in->slot),
          LS("backend", p->backend_name), LI("ms", sp_monotonic_ms() - t0));
  rc = 0;
out:
  pthread_mutex_lock(&in->mu);
  if (rc == 0) {
    free(in->backend_id);
    in->backend_id = id;
    in->state = INST_RUNNING;
    in->run++;
    in->started_ms = sp_now_ms();
    in->starts++;
    if (restart)
      in->restarts++;
    in->ever_started = true;
    in->last_active = in->last_answer = sp_monotonic_ms();
    free(in->last_error);
    in->last_error = NULL;
  } else {
    free(id);
    in->state = INST_FAILED;
    free(in->last_error);
    in->last_error = xstrdup(err && *err ? (*err)->msg : "start failed");
  }
  persist(m, in);
  pthread_cond_broadcast(&in->cv);
  return rc;
}

int instance_ensure(struct manager *m, struct instance *in, int wait_ms, struct sp_error **err)
{
  pthread_mutex_lock(&in->mu);
  in->last_active = sp_monotonic_ms();
  if (in->state == INST_RUNNING) {
    pthread_mutex_unlock(&in->mu);
    return 0;
  }
  if (drain_cutting(m)) {
    pthread_mutex_unlock(&in->mu);
    return drain_error(err);
  }
  if (in->state == INST_STOPPED || in->state == INST_FAILED) {
    /* This request starts it; the others wait for it below. */
    in->state = INST_STARTING;
    int rc = start_locked(m, in, err);
    pthread_mutex_unlock(&in->mu);
    return rc;
  }
  struct timespec ts;
  sp_deadline_after(&ts, wait_ms);
  while ((in->state == INST_STARTING || in->state == INST_STOPPING) && !drain_cutting(m)) {
    if (pthread_cond_timedwait(&in->cv, &in->mu, &ts) == ETIMEDOUT)
      break;
  }
  int rc = 0;
  if (in->state == INST_RUNNING) {
    rc = 0;
  } else if (drain_cutting(m)) {
    rc = drain_error(err);
  } else if (in->state == INST_FAILED) {
    rc = sp_error_code(err, "INSTANCE_FAILED", 502, "%s",
                       in->last_error ? in->last_error : "the instance failed to start");
  } else if (in->state == INST_STOPPED) {
    in->state = INST_STARTING;
    rc = start_locked(m, in, err);
  } else {
    rc = sp_error_code(err, "INSTANCE_STARTING", 503, "instance %s-%d is starting",
                       in->pool->cfg->class_name, in->slot);
    sp_error_retry_after(err, 2);
  }
  pthread_mutex_unlock(&in->mu);
  return rc;
}

void instance_touch(struct instance *in)
{
  /* a word-sized store; the housekeeper reads it under the lock */
  in->last_active = sp_monotonic_ms();
}

static void stop_locked(struct manager *m, struct instance *in, int timeout_ms)
{
  if (in->state != INST_RUNNING)
    return;
  in->state = INST_STOPPING;
  char *id = in->backend_id ? xstrdup(in->backend_id) : NULL;
  pthread_mutex_unlock(&in->mu);
  struct sp_error *err = NULL;
  if (id && in->pool->backend && in->pool->backend->ops->stop(in->pool->backend, id, timeout_ms, &err) < 0) {
    sp_warn("stop failed", LS("error", err->msg));
    sp_error_free(err);
  }
  free(id);
  pthread_mutex_lock(&in->mu);
  in->state = INST_STOPPED;
  persist(m, in);
  pthread_cond_broadcast(&in->cv);
}

void instance_check_dead(struct manager *m, struct instance *in)
{
  /* What to look at is taken under the lock; the ping runs without it, so
   * requests to the instance's other sandboxes do not wait behind it. */
  pthread_mutex_lock(&in->mu);
  bool running = in->state == INST_RUNNING;
  uint64_t run = in->run;
  int64_t last_answer = in->last_answer;
  cleanup_free char *id = running && in->backend_id ? xstrdup(in->backend_id) : NULL;
  pthread_mutex_unlock(&in->mu);
  if (!running)
    return;
  const char *pool = in->pool->cfg->class_name;
  int64_t t0 = sp_monotonic_ms();
  bool answered = ping(in->socket, HEALTH_PING_MS);
  int64_t now = sp_monotonic_ms(), took = now - t0;
  if (answered) {
    pthread_mutex_lock(&in->mu);
    if (in->run == run)
      in->last_answer = now;
    pthread_mutex_unlock(&in->mu);
    metrics_health(m->metrics, took > HEALTH_SLOW_MS ? HEALTH_SLOW : HEALTH_OK);
    if (took > HEALTH_SLOW_MS)
      sp_warn("instance slow to answer its health check", LS("pool", pool), LI("slot", in->slot),
              LI("ms", took));
    return;
  }
  /* Busy is not dead: dead is a process gone, or one that has not
   * answered for health_timeout. */
  struct backend *b = in->pool->backend;
  bool alive = b && id && b->ops->alive(b, id);
  int64_t silent = now - last_answer, limit = m->cfg->health_timeout_s * 1000;
  if (alive && silent < limit) {
    metrics_health(m->metrics, HEALTH_UNANSWERED);
    sp_warn("instance did not answer its health check", LS("pool", pool), LI("slot", in->slot),
            LI("silent_ms", silent), LI("dead_after_ms", limit));
    return;
  }
  pthread_mutex_lock(&in->mu);
  /* only the run that was seen dead is stopped, not one started meanwhile */
  if (in->state == INST_RUNNING && in->run == run) {
    metrics_health(m->metrics, HEALTH_DEAD);
    sp_warn("instance is dead; it restarts on the next request", LS("pool", pool),
            LI("slot", in->slot),
            LS("why", alive ? "it has not answered for health_timeout while its process lives"
                            : "its process is gone"),
            LI("silent_ms", silent));
    stop_locked(m, in, 1000);
  }
  pthread_mutex_unlock(&in->mu);
}

void instance_stop(struct manager *m, struct instance *in)
{
  pthread_mutex_lock(&in->mu);
  while (in->state == INST_STARTING || in->state == INST_STOPPING)
    pthread_cond_wait(&in->cv, &in->mu);
  stop_locked(m, in, 5000);
  pthread_mutex_unlock(&in->mu);
}

int instance_restart(struct manager *m, struct instance *in, struct sp_error **err)
{
  pthread_mutex_lock(&in->mu);
  while (in->state == INST_STARTING || in->state == INST_STOPPING)
    pthread_cond_wait(&in->cv, &in->mu);
  stop_locked(m, in, 5000);
  in->state = INST_STARTING;
  in->ever_started = true;
  int rc = start_locked(m, in, err);
  pthread_mutex_unlock(&in->mu);
  return rc;
}

void pools_wake(struct manager *m)
{
  for (int i = 0; i < m->npools; i++)
    for (int k = 0; k < m->pools[i].n; k++) {
      struct instance *in = &m->pools[i].inst[k];
      pthread_mutex_lock(&in->mu);
      pthread_cond_broadcast(&in->cv);
      pthread_mutex_unlock(&in->mu);
    }
}

void instance_tend(struct manager *m, struct pool *p, int k, int64_t now)
{
  struct instance *in = &p->inst[k];
  pthread_mutex_lock(&in->mu);
  bool running = in->state == INST_RUNNING;
  int64_t idle = now - in->last_active;
  bool sleepy = running && p->cfg->sleep_after_s > 0 && k >= p->cfg->min_warm &&
                idle >= p->cfg->sleep_after_s * 1000;
  if (sleepy) {
    sp_info("instance idle, stopping", LS("pool", p->cfg->class_name), LI("slot", k),
            LI("idle_s", idle / 1000));
    stop_locked(m, in, 5000);
  }
  pthread_mutex_unlock(&in->mu);
  /* health: a dead instance is noticed here or on its next request */
  if (running && !sleepy && (now / 1000) % (HEALTH_INTERVAL_MS / 1000) == (k % 5))
    instance_check_dead(m, in);
}
