/* The housekeeper: one thread that, once a second, writes changed sandbox
 * rows to the state database and tends every instance (idle sleep, health
 * checks).  It sits above instances.c and sandboxes.c, which do not call
 * each other. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "log.h"
#include "manager.h"
#include "util.h"

struct housekeeper {
  pthread_t thread;
  int stopping;          /* it is to stop (atomic) */
  bool done;             /* it has (under mu) */
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

static bool hk_stopping(struct manager *m) { return __atomic_load_n(&m->hk->stopping, __ATOMIC_ACQUIRE); }

static void *housekeeper(void *arg)
{
  struct manager *m = arg;
  pthread_mutex_lock(&m->hk->mu);
  while (!hk_stopping(m)) {
    struct timespec ts;
    sp_deadline_after(&ts, 1000);
    pthread_cond_timedwait(&m->hk->cv, &m->hk->mu, &ts);
    if (hk_stopping(m))
      break;
    pthread_mutex_unlock(&m->hk->mu);
    sandboxes_flush(m);
    int64_t now = sp_monotonic_ms();
    for (int i = 0; i < pools_count(m) && !hk_stopping(m); i++) {
      struct pool *p = pool_at(m, i);
      for (int k = 0; k < pool_size(p) && !hk_stopping(m); k++)
        instance_tend(m, p, k, now);
    }
    pthread_mutex_lock(&m->hk->mu);
  }
  m->hk->done = true;
  pthread_cond_broadcast(&m->hk->cv);
  pthread_mutex_unlock(&m->hk->mu);
  return NULL;
}

int housekeeper_start(struct manager *m)
{
  m->hk = xcalloc(1, sizeof *m->hk);
  pthread_mutex_init(&m->hk->mu, NULL);
  sp_cond_init(&m->hk->cv);
  return pthread_create(&m->hk->thread, NULL, housekeeper, m);
}

void housekeeper_stop(struct manager *m)
{
  pthread_mutex_lock(&m->hk->mu);
  __atomic_store_n(&m->hk->stopping, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&m->hk->cv);
  pthread_mutex_unlock(&m->hk->mu);
}

bool housekeeper_join(struct manager *m, int64_t deadline_ms)
{
  struct timespec ts;
  sp_deadline_after(&ts, SP_MAX(deadline_ms - sp_monotonic_ms(), 0));
  pthread_mutex_lock(&m->hk->mu);
  int rc = 0;
  while (!m->hk->done && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&m->hk->cv, &m->hk->mu, &ts);
  bool done = m->hk->done;
  pthread_mutex_unlock(&m->hk->mu);
  if (!done)
    return false;
  pthread_join(m->hk->thread, NULL);
  pthread_mutex_destroy(&m->hk->mu);
  pthread_cond_destroy(&m->hk->cv);
  free(m->hk);
  m->hk = NULL;
  return true;
}
