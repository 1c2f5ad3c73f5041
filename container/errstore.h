/* The monitor's store for classified errors: the `errors` table of the log
 * store's database (logstore.h opens it and keeps the error store in it;
 * logstore_errors() gives it to callers; this module knows nothing of the
 * log store).
 *
 * Errors are de-duplicated by (hash, session) and kept by age and count.
 * Each write is committed before it returns, in its own transaction, so a
 * recorded error survives kill -9.  Every function is thread-safe; query
 * callbacks run with the database locked and must not call back into the
 * store. */
#ifndef SP_ERRSTORE_H
#define SP_ERRSTORE_H

#include <stdint.h>

struct sp_error;
struct cJSON;
struct errorstore;
struct sqldb;

/* Errors.  session_id NULL and "" are the same session ("no session"). */
struct error_input {
  uint64_t hash; /* of the normalised message, from the classifier */
  const char *category, *severity, *tool, *file;
  int line, column; /* 0 = unknown */
  const char *message, *raw;
  const char *process_id, *session_id;
};
/* Strings may be NULL (then NULL in the record); pointers valid only during
 * the callback. */
struct error_record {
  int64_t id;
  uint64_t hash;
  const char *category, *severity, *tool, *file;
  int64_t line, column;
  const char *message, *raw;
  int64_t first_seen_ms, last_seen_ms, count;
  const char *process_id, *session_id;
};
typedef int (*errorstore_cb)(void *ud, const struct error_record *rec);

/* Insert, or when (hash, session_id) exists bump count, move last_seen up
 * to ts_ms and refresh raw, file, line, column and process_id (category,
 * severity, tool and message stay those of the first occurrence).
 * Committed immediately, in its own transaction, together with error
 * retention (by age against max(ts_ms, now), then by count); an error whose
 * ts_ms is already older than error_max_age_ms is dropped at once.  On
 * failure nothing is stored, write_failures is counted and -1 returned. */
int errorstore_record(struct errorstore *es, const struct error_input *e, int64_t ts_ms,
                      struct sp_error **err);

/* Errors with last_seen >= since_ms (0 = all), of one session (NULL = all),
 * newest last_seen first. */
int errorstore_query(struct errorstore *es, int64_t since_ms, const char *session_id,
                     errorstore_cb cb, void *ud, struct sp_error **err);

/* Delete the errors of one session (all when NULL). */
int errorstore_clear(struct errorstore *es, const char *session_id, struct sp_error **err);

/* {"total": occurrences, "unique": distinct errors, "byCategory": {...},
 *  "bySeverity": {...}, "byTool": {...}} for one session (NULL = all), a
 * new cJSON object.  The by* maps count occurrences; a NULL field is
 * counted under "unknown". */
struct cJSON *errorstore_stats(struct errorstore *es, const char *session_id,
                               struct sp_error **err);

/* ---- for the log store, which opens the database ---- */

/* The table, part of the log store's schema. */
#define ERRORSTORE_SCHEMA                                                              \
  "CREATE TABLE errors("                                                               \
  " id INTEGER PRIMARY KEY,"                                                           \
  " hash INTEGER NOT NULL,"                                                            \
  " session TEXT NOT NULL,"                                                            \
  " category TEXT, severity TEXT, tool TEXT, file TEXT, line INTEGER, col INTEGER,"    \
  " message TEXT, raw TEXT, process TEXT,"                                             \
  " first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, count INTEGER NOT NULL);" \
  "CREATE UNIQUE INDEX errors_hash_session ON errors(hash, session);"                  \
  "CREATE INDEX errors_last_seen ON errors(last_seen);"

/* Prepare the store in an open database (not yet shared with other
 * threads) and apply retention: drop errors not seen for max_age_ms, then
 * the oldest beyond max_count. */
struct errorstore *errorstore_open(struct sqldb *db, int64_t max_count, int64_t max_age_ms,
                                   struct sp_error **err);
/* Accepts NULL; before the database is closed. */
void errorstore_free(struct errorstore *es);

/* Distinct errors stored, as of the last commit, without waiting for one. */
int64_t errorstore_count(struct errorstore *es);

#endif
