/* The housekeeper: one thread that, once a second, writes changed sandbox
 * rows to the state database and tends every instance (idle sleep, health
 * checks).  It sits above instances.c and sandboxes.c, which do not call
 * each other. */
#include <errno.h>
#include <pthread.h>

#include "log.h"
#include "manager.h"
#include "util.h"

static bool hk_stopping(struct manager *m) { return __atomic_load_n(&m->stopping, __ATOMIC_ACQUIRE); }

static void *housekeeper(void *arg)
{
  struct manager *m = arg;
  pthread_mutex_lock(&m->hk_mu);
  while (!hk_stopping(m)) {
    struct timespec ts;
    sp_deadline_after(&ts, 1000);
    pthread_cond_timedwait(&m->hk_cv, &m->hk_mu, &ts);
    if (hk_stopping(m))
      break;
    pthread_mutex_unlock(&m->hk_mu);
    sandboxes_flush(m);
    int64_t now = sp_monotonic_ms();
    for (int i = 0; i < m->npools && !hk_stopping(m); i++) {
      struct pool *p = &m->pools[i];
      for (int k = 0; k < p->n && !hk_stopping(m); k++)
        instance_tend(m, p, k, now);
    }
    pthread_mutex_lock(&m->hk_mu);
  }
  m->hk_done = true;
  pthread_cond_broadcast(&m->hk_cv);
  pthread_mutex_unlock(&m->hk_mu);
  return NULL;
}

int housekeeper_start(struct manager *m)
{
  pthread_mutex_init(&m->hk_mu, NULL);
  sp_cond_init(&m->hk_cv);
  return pthread_create(&m->housekeeper, NULL, housekeeper, m);
}

void housekeeper_stop(struct manager *m)
{
  pthread_mutex_lock(&m->hk_mu);
  __atomic_store_n(&m->stopping, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&m->hk_cv);
  pthread_mutex_unlock(&m->hk_mu);
}

bool housekeeper_join(struct manager *m, int64_t deadline_ms)
{
  struct timespec ts;
  sp_deadline_after(&ts, SP_MAX(deadline_ms - sp_monotonic_ms(), 0));
  pthread_mutex_lock(&m->hk_mu);
  int rc = 0;
  while (!m->hk_done && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&m->hk_cv, &m->hk_mu, &ts);
  bool done = m->hk_done;
  pthread_mutex_unlock(&m->hk_mu);
  if (!done)
    return false;
  pthread_join(m->housekeeper, NULL);
  pthread_mutex_destroy(&m->hk_mu);
  pthread_cond_destroy(&m->hk_cv);
  return true;
}
