#include "logwriter.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "errstore.h"
#include "log.h"
#include "logstore.h"
#include "util.h"

struct queued_error {
  struct error_input in;
  int64_t ts_ms;
  char *strings; /* one allocation behind every string of `in` */
};

struct logwriter {
  struct logstore *ls;
  int64_t interval_ms;
  void (*progress)(void *);
  void *ud;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool kicked, quit;
  struct queued_error q[LOGWRITER_MAX_ERRORS];
  size_t head, n;
};

static char *pack(char **dst, const char *s)
{
  if (s == NULL)
    return NULL;
  size_t n = strlen(s) + 1;
  char *r = memcpy(*dst, s, n);
  *dst += n;
  return r;
}

int logwriter_error(struct logwriter *w, const struct error_input *e, int64_t ts_ms)
{
  const char *strs[] = {e->category, e->severity, e->tool, e->file, e->message, e->raw,
                        e->process_id, e->session_id};
  size_t total = 0;
  for (size_t i = 0; i < SP_ARRAY_SIZE(strs); i++)
    total += strs[i] ? strlen(strs[i]) + 1 : 0;
  pthread_mutex_lock(&w->mu);
  if (w->n == LOGWRITER_MAX_ERRORS) {
    pthread_mutex_unlock(&w->mu);
    return -1;
  }
  struct queued_error *qe = &w->q[(w->head + w->n++) % LOGWRITER_MAX_ERRORS];
  qe->strings = xmalloc(total ? total : 1);
  char *p = qe->strings;
  qe->in = *e;
  qe->in.category = pack(&p, e->category);
  qe->in.severity = pack(&p, e->severity);
  qe->in.tool = pack(&p, e->tool);
  qe->in.file = pack(&p, e->file);
  qe->in.message = pack(&p, e->message);
  qe->in.raw = pack(&p, e->raw);
  qe->in.process_id = pack(&p, e->process_id);
  qe->in.session_id = pack(&p, e->session_id);
  qe->ts_ms = ts_ms;
  w->kicked = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return 0;
}

bool logwriter_lagging(struct logwriter *w)
{
  pthread_mutex_lock(&w->mu);
  bool lag = w->n > LOGWRITER_MAX_ERRORS / 2;
  pthread_mutex_unlock(&w->mu);
  return lag || logstore_batch_full(w->ls, 0.5);
}

void logwriter_kick(struct logwriter *w)
{
  pthread_mutex_lock(&w->mu);
  w->kicked = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* One round: every queued error, then the pending lines. */
static void write_round(struct logwriter *w)
{
  for (;;) {
    pthread_mutex_lock(&w->mu);
    if (w->n == 0) {
      pthread_mutex_unlock(&w->mu);
      break;
    }
    struct queued_error qe = w->q[w->head];
    w->head = (w->head + 1) % LOGWRITER_MAX_ERRORS;
    w->n--;
    pthread_mutex_unlock(&w->mu);
    struct sp_error *err = NULL;
    if (errorstore_record(logstore_errors(w->ls), &qe.in, qe.ts_ms, &err) < 0) {
      sp_warn("cannot record error", LS("process", qe.in.process_id), LS("error", err->msg));
      sp_error_free(err);
    }
    free(qe.strings);
  }
  if (logstore_pending(w->ls)) {
    struct sp_error *err = NULL;
    if (logstore_flush(w->ls, &err) < 0) {
      sp_warn("log flush failed", LS("error", err->msg));
      sp_error_free(err);
    }
  }
  if (w->progress)
    w->progress(w->ud);
}

static void *writer_main(void *arg)
{
  struct logwriter *w = arg;
  pthread_mutex_lock(&w->mu);
  while (!w->quit) {
    if (!w->kicked) {
      struct timespec ts;
      sp_deadline_after(&ts, w->interval_ms);
      pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    w->kicked = false;
    pthread_mutex_unlock(&w->mu);
    write_round(w);
    pthread_mutex_lock(&w->mu);
  }
  pthread_mutex_unlock(&w->mu);
  write_round(w);
  return NULL;
}

struct logwriter *logwriter_new(struct logstore *ls, int64_t flush_interval_ms,
                                void (*progress)(void *ud), void *ud)
{
  struct logwriter *w = xcalloc(1, sizeof *w);
  w->ls = ls;
  w->interval_ms = flush_interval_ms > 0 ? flush_interval_ms : 50;
  w->progress = progress;
  w->ud = ud;
  pthread_mutex_init(&w->mu, NULL);
  sp_cond_init(&w->cv);
  if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
    abort();
  return w;
}

void logwriter_free(struct logwriter *w)
{
  if (w == NULL)
    return;
  pthread_mutex_lock(&w->mu);
  w->quit = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w);
}
