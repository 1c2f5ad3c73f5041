/* The monitor's one writer to the log store: a thread that commits the
 * lines the supervisor appends (every flush interval, or at once when
 * kicked) and records classified errors from a bounded queue, so SQLite
 * never runs on the supervisor's loop.  After each round it calls
 * `progress`, so a loop that stopped reading pipes while the writer lagged
 * can take them up again. */
#ifndef SP_LOGWRITER_H
#define SP_LOGWRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct logstore;
struct error_input;
struct logwriter;

#define LOGWRITER_MAX_ERRORS 1024

struct logwriter *logwriter_new(struct logstore *ls, int64_t flush_interval_ms,
                                void (*progress)(void *ud), void *ud);
/* Commit what is pending now, not at the next interval. */
void logwriter_kick(struct logwriter *w);
/* Queue one error (copied).  Returns -1 when the queue is full: the caller
 * keeps it and stops reading output until logwriter_lagging() is false. */
int logwriter_error(struct logwriter *w, const struct error_input *e, int64_t ts_ms);
/* True while the writer is behind: errors queued past half the queue, or
 * the pending batch close to making logstore_append commit by itself. */
bool logwriter_lagging(struct logwriter *w);
/* Commit everything queued, then stop the thread.  Accepts NULL. */
void logwriter_free(struct logwriter *w);

#endif
