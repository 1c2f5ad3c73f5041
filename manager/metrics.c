/* Prometheus text exposition of sandpitd's counters. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"
#include "str.h"
#include "util.h"

#define MAX_SERIES 128
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,   5,     10};
#define NB (sizeof buckets / sizeof buckets[0])

struct series {
  const char *route; /* static: a route pattern */
  int status;
  uint64_t count;
};

struct hist {
  const char *route;
  uint64_t b[NB + 1];
  double sum;
  uint64_t count;
};

struct metrics {
  pthread_mutex_t mu;
  struct series s[MAX_SERIES];
  int ns;
  struct hist h[MAX_SERIES];
  int nh;
  uint64_t up, down;
  uint64_t health[HEALTH_NRESULTS];
};

struct metrics *metrics_new(void)
{
  struct metrics *mt = xcalloc(1, sizeof *mt);
  pthread_mutex_init(&mt->mu, NULL);
  return mt;
}

void metrics_free(struct metrics *mt)
{
  if (mt == NULL)
    return;
  pthread_mutex_destroy(&mt->mu);
  free(mt);
}

void metrics_request(struct metrics *mt, const char *route, int status, int64_t us)
{
  pthread_mutex_lock(&mt->mu);
  int i;
  for (i = 0; i < mt->ns; i++)
    if (mt->s[i].status == status && strcmp(mt->s[i].route, route) == 0)
      break;
  if (i == mt->ns && mt->ns < MAX_SERIES)
    mt->s[mt->ns++] = (struct series){route, status, 0};
  if (i < mt->ns)
    mt->s[i].count++;
  for (i = 0; i < mt->nh; i++)
    if (strcmp(mt->h[i].route, route) == 0)
      break;
  if (i == mt->nh && mt->nh < MAX_SERIES) {
    memset(&mt->h[i], 0, sizeof mt->h[i]);
    mt->h[mt->nh++].route = route;
  }
  if (i < mt->nh) {
    double sec = (double)us / 1e6;
    size_t k = 0;
    while (k < NB && sec > buckets[k])
      k++;
    mt->h[i].b[k]++;
    mt->h[i].sum += sec;
    mt->h[i].count++;
  }
  pthread_mutex_unlock(&mt->mu);
}

void metrics_forwarded(struct metrics *mt, uint64_t up, uint64_t down)
{
  pthread_mutex_lock(&mt->mu);
  mt->up += up;
  mt->down += down;
  pthread_mutex_unlock(&mt->mu);
}

void metrics_health(struct metrics *mt, enum health_result r)
{
  pthread_mutex_lock(&mt->mu);
  mt->health[r]++;
  pthread_mutex_unlock(&mt->mu);
}

char *metrics_render(struct manager *m)
{
  struct metrics *mt = m->metrics;
  struct sbuf sb = SBUF_INIT;
  pthread_mutex_lock(&mt->mu);
  sbuf_addstr(&sb, "# HELP sandpit_http_requests_total HTTP requests by route and status.\n"
                   "# TYPE sandpit_http_requests_total counter\n");
  for (int i = 0; i < mt->ns; i++)
    sbuf_addf(&sb, "sandpit_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
              mt->s[i].route, mt->s[i].status, (unsigned long long)mt->s[i].count);
  sbuf_addstr(&sb, "# HELP sandpit_http_request_duration_seconds Time to answer, by route.\n"
                   "# TYPE sandpit_http_request_duration_seconds histogram\n");
  for (int i = 0; i < mt->nh; i++) {
    uint64_t cum = 0;
    for (size_t k = 0; k <= NB; k++) {
      cum += mt->h[i].b[k];
      if (k < NB)
        sbuf_addf(&sb, "sandpit_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                  mt->h[i].route, buckets[k], (unsigned long long)cum);
      else
        sbuf_addf(&sb, "sandpit_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                  mt->h[i].route, (unsigned long long)cum);
    }
    sbuf_addf(&sb, "sandpit_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", mt->h[i].route,
              mt->h[i].sum);
    sbuf_addf(&sb, "sandpit_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
              mt->h[i].route, (unsigned long long)mt->h[i].count);
  }
  sbuf_addf(&sb, "# HELP sandpit_forwarded_bytes_total Bytes forwarded to and from instances.\n"
                 "# TYPE sandpit_forwarded_bytes_total counter\n"
                 "sandpit_forwarded_bytes_total{direction=\"up\"} %llu\n"
                 "sandpit_forwarded_bytes_total{direction=\"down\"} %llu\n",
            (unsigned long long)mt->up, (unsigned long long)mt->down);
  static const char *const health[HEALTH_NRESULTS] = {"ok", "slow", "unanswered", "dead"};
  sbuf_addstr(&sb, "# HELP sandpit_health_checks_total Instance health checks by outcome: slow "
                   "answers and unanswered checks of a live process are not deaths.\n"
                   "# TYPE sandpit_health_checks_total counter\n");
  for (int r = 0; r < HEALTH_NRESULTS; r++)
    sbuf_addf(&sb, "sandpit_health_checks_total{result=\"%s\"} %llu\n", health[r],
              (unsigned long long)mt->health[r]);
  pthread_mutex_unlock(&mt->mu);

  int by_state[INST_FAILED + 1] = {0};
  int64_t starts = 0, restarts = 0;
  pools_tally(m, by_state, &starts, &restarts);
  sbuf_addstr(&sb, "# HELP sandpit_instances Instances by state.\n# TYPE sandpit_instances gauge\n");
  for (int s = 0; s <= INST_FAILED; s++)
    sbuf_addf(&sb, "sandpit_instances{state=\"%s\"} %d\n", instance_state_name((enum inst_state)s),
              by_state[s]);
  sbuf_addf(&sb, "# HELP sandpit_instance_starts_total Instance starts.\n"
                 "# TYPE sandpit_instance_starts_total counter\nsandpit_instance_starts_total %lld\n"
                 "# HELP sandpit_instance_restarts_total Instance restarts after a death or on request.\n"
                 "# TYPE sandpit_instance_restarts_total counter\nsandpit_instance_restarts_total %lld\n",
            (long long)starts, (long long)restarts);
  sbuf_addf(&sb, "# HELP sandpit_sandboxes Sandboxes known.\n# TYPE sandpit_sandboxes gauge\n"
                 "sandpit_sandboxes %zu\n",
            sandboxes_total(m));
  sbuf_addf(&sb, "# HELP sandpit_uptime_seconds Seconds since sandpitd started.\n"
                 "# TYPE sandpit_uptime_seconds gauge\nsandpit_uptime_seconds %lld\n",
            (long long)((sp_now_ms() - m->started_ms) / 1000));
  return sbuf_detach(&sb, NULL);
}
