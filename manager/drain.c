/* sandpitd's shutdown: the requests and connections in flight, and the
 * sequence that ends them within the grace period (the contract is in
 * manager.h). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "manager.h"
#include "util.h"

/* After the cut: how long the work cut short gets to end (answers sent,
 * sockets closed), within the second the contract allows past the grace. */
#define CUT_WAIT_MS 700

struct drain {
  int phase;              /* enum drain_phase (atomic) */
  pthread_mutex_t mu;
  struct carried *list;   /* the carried connections (under mu) */
  int n;
};

void drain_init(struct manager *m)
{
  m->drain = xcalloc(1, sizeof *m->drain);
  m->drain->phase = DRAIN_SERVING;
  pthread_mutex_init(&m->drain->mu, NULL);
}

void drain_release(struct manager *m)
{
  pthread_mutex_destroy(&m->drain->mu);
  free(m->drain);
  m->drain = NULL;
}

static int phase(struct manager *m) { return __atomic_load_n(&m->drain->phase, __ATOMIC_ACQUIRE); }

bool drain_stopping(struct manager *m) { return phase(m) != DRAIN_SERVING; }

bool drain_cutting(struct manager *m) { return phase(m) == DRAIN_CUTTING; }

int drain_error(struct sp_error **err)
{
  sp_error_code(err, "MANAGER_STOPPING", 503, "sandpitd is stopping; try again when it is back");
  sp_error_retry_after(err, 2);
  return -1;
}

bool drain_carry(struct manager *m, struct carried *c, int fd)
{
  pthread_mutex_lock(&m->drain->mu);
  bool ok = phase(m) != DRAIN_CUTTING;
  if (ok) {
    c->fd[0] = fd;
    c->fd[1] = -1;
    c->prev = NULL;
    c->next = m->drain->list;
    if (m->drain->list)
      m->drain->list->prev = c;
    m->drain->list = c;
    c->listed = true;
    m->drain->n++;
  }
  pthread_mutex_unlock(&m->drain->mu);
  return ok;
}

void drain_carry_fd(struct manager *m, struct carried *c, int fd)
{
  pthread_mutex_lock(&m->drain->mu);
  if (c->listed) {
    c->fd[1] = fd;
    if (phase(m) == DRAIN_CUTTING)
      shutdown(fd, SHUT_RDWR);
  }
  pthread_mutex_unlock(&m->drain->mu);
}

void drain_uncarry(struct manager *m, struct carried *c)
{
  pthread_mutex_lock(&m->drain->mu);
  if (c->listed) {
    if (c->prev)
      c->prev->next = c->next;
    else
      m->drain->list = c->next;
    if (c->next)
      c->next->prev = c->prev;
    c->listed = false;
    m->drain->n--;
  }
  pthread_mutex_unlock(&m->drain->mu);
}

static int ncarried(struct manager *m)
{
  pthread_mutex_lock(&m->drain->mu);
  int n = m->drain->n;
  pthread_mutex_unlock(&m->drain->mu);
  return n;
}

/* Every HTTP request received has been answered (idle keep-alive
 * connections do not count). */
static bool requests_done(struct manager *m) { return http_server_drain(m->http, 0); }

static bool all_done(struct manager *m) { return requests_done(m) && ncarried(m) == 0; }

/* Wait until done(m) or the deadline (monotonic ms), looking every 10 ms;
 * with sigfd >= 0 a SIGTERM or SIGINT ends the wait too.  True when
 * done(m). */
static bool wait_for(struct manager *m, int sigfd, int64_t deadline, bool (*done)(struct manager *))
{
  for (;;) {
    if (done(m))
      return true;
    int64_t left = deadline - sp_monotonic_ms();
    if (left <= 0)
      return false;
    struct pollfd p = {sigfd, POLLIN, 0};
    if (poll(&p, sigfd >= 0, (int)SP_MIN(left, 10)) < 0 && errno != EINTR)
      return false;
    struct signalfd_siginfo si;
    if ((p.revents & POLLIN) && read(sigfd, &si, sizeof si) == sizeof si && si.ssi_signo != SIGHUP) {
      sp_info("second signal: the grace period is cut short",
              LS("signal", strsignal((int)si.ssi_signo)));
      return false;
    }
  }
}

/* Shut down every carried socket: the threads blocked on them wake up. */
static int cut(struct manager *m)
{
  pthread_mutex_lock(&m->drain->mu);
  __atomic_store_n(&m->drain->phase, DRAIN_CUTTING, __ATOMIC_RELEASE);
  int n = 0;
  for (struct carried *c = m->drain->list; c; c = c->next, n++)
    for (int i = 0; i < 2; i++)
      if (c->fd[i] >= 0)
        shutdown(c->fd[i], SHUT_RDWR);
  pthread_mutex_unlock(&m->drain->mu);
  pools_wake(m);
  return n;
}

bool drain_run(struct manager *m, int sigfd)
{
  int64_t t0 = sp_monotonic_ms();
  int64_t grace_ms = m->cfg->shutdown_grace_s * 1000;
  __atomic_store_n(&m->drain->phase, DRAIN_DRAINING, __ATOMIC_RELEASE);
  http_server_quiesce(m->http);
  housekeeper_stop(m);
  sp_info("draining", LB("requests", !requests_done(m)), LI("connections", ncarried(m)),
          LI("grace_ms", grace_ms));
  bool requests = !wait_for(m, sigfd, t0 + grace_ms, requests_done);
  int connections = cut(m);
  if (requests || connections)
    sp_info("cutting what is still in flight", LB("requests", requests),
            LI("connections", connections), LI("after_ms", sp_monotonic_ms() - t0));
  int64_t end = sp_monotonic_ms() + CUT_WAIT_MS;
  bool ended = wait_for(m, -1, end, all_done);
  bool joined = housekeeper_join(m, end);
  sandboxes_flush(m);
  if (ended && joined) {
    manager_stop(m);
    sp_info("stopped", LI("ms", sp_monotonic_ms() - t0));
    return true;
  }
  sp_warn("stopped with work still running", LB("requests", !requests_done(m)),
          LI("connections", ncarried(m)), LB("housekeeper", !joined),
          LI("ms", sp_monotonic_ms() - t0));
  return false;
}
