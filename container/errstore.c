/* SQLite store for classified errors; see errstore.h.
 *
 * Locking.  The database's lock (sqldb_lock, the log store's too) guards the
 * statements and txn_errors.  count changes only when a transaction ends,
 * under that lock; it is atomic so that logstore_status can read it without
 * waiting for a transaction in progress. */
#include "errstore.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "sqldb.h"
#include "util.h"

enum {
  ES_UPSERT,
  ES_AGE,
  ES_COUNT,
  ES_QUERY,
  ES_CLEAR,
  ES_NSTMT
};

/* The columns of a query, in the order query_row reads them. */
#define QUERY_TEXT_COLS "category, severity, tool, file, message, raw, process, session"
#define QUERY_INT_COLS "id, hash, line, col, first_seen, last_seen, count"

static const char *const stmt_sql[ES_NSTMT] = {
    [ES_UPSERT] =
        "INSERT INTO errors(hash, session, category, severity, tool, file, line, col, "
        "message, raw, process, first_seen, last_seen, count) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, 1) "
        "ON CONFLICT(hash, session) DO UPDATE SET count = count + 1, "
        "first_seen = min(first_seen, excluded.first_seen), "
        "last_seen = max(last_seen, excluded.last_seen), "
        "raw = coalesce(excluded.raw, raw), "
        "process = coalesce(excluded.process, process), "
        "line = CASE WHEN excluded.file IS NULL THEN line ELSE excluded.line END, "
        "col = CASE WHEN excluded.file IS NULL THEN col ELSE excluded.col END, "
        "file = coalesce(excluded.file, file) "
        "RETURNING count",
    [ES_AGE] = "DELETE FROM errors WHERE last_seen < ?1",
    [ES_COUNT] = "DELETE FROM errors WHERE id IN "
                 "(SELECT id FROM errors ORDER BY last_seen, id LIMIT ?1)",
    [ES_QUERY] = "SELECT " QUERY_TEXT_COLS ", " QUERY_INT_COLS " FROM errors "
                 "WHERE last_seen >= ?1 AND (?2 IS NULL OR session = ?2) "
                 "ORDER BY last_seen DESC, id DESC",
    [ES_CLEAR] = "DELETE FROM errors WHERE ?1 IS NULL OR session = ?1",
};

struct errorstore {
  struct sqldb *db;
  int64_t max_count, max_age_ms;
  sqlite3_stmt *st[ES_NSTMT];
  int64_t txn_errors; /* change of count in the open transaction */
  _Atomic int64_t count;
};

static int64_t u64_to_i64(uint64_t v)
{
  int64_t r;
  memcpy(&r, &v, sizeof r);
  return r;
}

static uint64_t i64_to_u64(int64_t v)
{
  uint64_t r;
  memcpy(&r, &v, sizeof r);
  return r;
}

/* ---- transactions (database lock) ---- */

struct txn {
  struct errorstore *es;
  int (*fn)(struct errorstore *es, void *arg); /* returns an SQLite code */
  void *arg;
};

static int txn_body(void *arg)
{
  struct txn *t = arg;
  return t->fn(t->es, t->arg);
}

static void txn_end(void *arg, bool committed)
{
  struct errorstore *es = ((struct txn *)arg)->es;
  if (committed)
    atomic_fetch_add(&es->count, es->txn_errors);
  es->txn_errors = 0;
}

static int run_txn(struct errorstore *es, int (*fn)(struct errorstore *, void *), void *arg,
                   const char *what, struct sp_error **err)
{
  struct txn t = {es, fn, arg};
  return sqldb_txn(es->db, txn_body, txn_end, &t, what, err);
}

static int changes(struct errorstore *es) { return sqlite3_changes(sqldb_conn(es->db)); }

/* Retention, inside a transaction. */
static int retain(struct errorstore *es, int64_t now)
{
  sqlite3_stmt *s = es->st[ES_AGE];
  sqlite3_bind_int64(s, 1, now - es->max_age_ms);
  int rc = sqldb_step_reset(s);
  if (rc != SQLITE_OK)
    return rc;
  es->txn_errors -= changes(es);
  int64_t over = es->count + es->txn_errors - es->max_count;
  if (over > 0) {
    s = es->st[ES_COUNT];
    sqlite3_bind_int64(s, 1, over);
    if ((rc = sqldb_step_reset(s)) != SQLITE_OK)
      return rc;
    es->txn_errors -= changes(es);
  }
  return SQLITE_OK;
}

static int retain_fn(struct errorstore *es, void *arg)
{
  return retain(es, *(const int64_t *)arg);
}

/* ---- open / close ---- */

void errorstore_free(struct errorstore *es)
{
  if (es == NULL)
    return;
  for (int i = 0; i < ES_NSTMT; i++)
    sqlite3_finalize(es->st[i]);
  free(es);
}

struct errorstore *errorstore_open(struct sqldb *db, int64_t max_count, int64_t max_age_ms,
                                   struct sp_error **err)
{
  struct errorstore *es = xcalloc(1, sizeof *es);
  es->db = db;
  es->max_count = max_count;
  es->max_age_ms = max_age_ms;
  int64_t now = sp_now_ms(), count = 0;
  int ret = sqldb_prepare_all(db, stmt_sql, es->st, ES_NSTMT, err);
  if (ret == 0)
    ret = sqldb_query_int(db, "SELECT count(*) FROM errors", &count, err);
  es->count = count;
  if (ret == 0)
    ret = run_txn(es, retain_fn, &now, "error retention", err);
  if (ret < 0) {
    errorstore_free(es);
    return NULL;
  }
  return es;
}

int64_t errorstore_count(struct errorstore *es) { return atomic_load(&es->count); }

/* ---- recording ---- */

struct record_arg {
  const struct error_input *e;
  int64_t ts, now;
};

static int record_fn(struct errorstore *es, void *arg)
{
  const struct record_arg *a = arg;
  const struct error_input *e = a->e;
  sqlite3_stmt *s = es->st[ES_UPSERT];
  sqlite3_bind_int64(s, 1, u64_to_i64(e->hash));
  sqlite3_bind_text(s, 2, e->session_id ? e->session_id : "", -1, SQLITE_STATIC);
  sqldb_bind_text_or_null(s, 3, e->category);
  sqldb_bind_text_or_null(s, 4, e->severity);
  sqldb_bind_text_or_null(s, 5, e->tool);
  sqldb_bind_text_or_null(s, 6, e->file);
  sqlite3_bind_int(s, 7, e->line);
  sqlite3_bind_int(s, 8, e->column);
  sqldb_bind_text_or_null(s, 9, e->message);
  sqldb_bind_text_or_null(s, 10, e->raw);
  sqldb_bind_text_or_null(s, 11, e->process_id);
  sqlite3_bind_int64(s, 12, a->ts);
  int rc = sqlite3_step(s);
  int64_t count = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  if (rc == SQLITE_ROW)
    rc = sqlite3_step(s);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s); /* the bound strings belong to the caller */
  if (rc != SQLITE_DONE)
    return rc;
  if (count == 1)
    es->txn_errors++;
  return retain(es, a->now);
}

int errorstore_record(struct errorstore *es, const struct error_input *e, int64_t ts_ms,
                      struct sp_error **err)
{
  if (e == NULL)
    return sp_error_code(err, "INVALID_REQUEST", 400, "no error to record");
  struct record_arg a = {e, ts_ms, SP_MAX(ts_ms, sp_now_ms())};
  sqldb_lock(es->db);
  int ret = run_txn(es, record_fn, &a, "record error", err);
  sqldb_unlock(es->db);
  return ret;
}

/* ---- queries ---- */

struct query {
  errorstore_cb cb;
  void *ud;
};

static int query_row(void *ud, sqlite3_stmt *s)
{
  const struct query *q = ud;
  struct error_record r;
  const char *session;
  int64_t hash;
  const char **text[] = {&r.category, &r.severity, &r.tool,       &r.file,
                         &r.message,  &r.raw,      &r.process_id, &session};
  int64_t *num[] = {&r.id, &hash, &r.line, &r.column, &r.first_seen_ms, &r.last_seen_ms, &r.count};
  int ntext = (int)(sizeof text / sizeof *text);
  for (int i = 0; i < ntext; i++)
    *text[i] = sqldb_col_text(s, i);
  for (int i = 0; i < (int)(sizeof num / sizeof *num); i++)
    *num[i] = sqlite3_column_int64(s, ntext + i);
  r.hash = i64_to_u64(hash);
  r.session_id = session && *session ? session : NULL;
  return q->cb(q->ud, &r);
}

int errorstore_query(struct errorstore *es, int64_t since_ms, const char *session_id,
                     errorstore_cb cb, void *ud, struct sp_error **err)
{
  struct query q = {cb, ud};
  sqldb_lock(es->db);
  sqlite3_stmt *s = es->st[ES_QUERY];
  sqlite3_bind_int64(s, 1, since_ms > 0 ? since_ms : INT64_MIN);
  sqldb_bind_text_or_null(s, 2, session_id);
  int ret = sqldb_each(es->db, s, query_row, &q, "query errors", err);
  sqlite3_clear_bindings(s);
  sqldb_unlock(es->db);
  return ret;
}

static int clear_fn(struct errorstore *es, void *arg)
{
  sqlite3_stmt *s = es->st[ES_CLEAR];
  sqldb_bind_text_or_null(s, 1, arg);
  int rc = sqldb_step_reset(s);
  sqlite3_clear_bindings(s);
  if (rc == SQLITE_OK)
    es->txn_errors -= changes(es);
  return rc;
}

int errorstore_clear(struct errorstore *es, const char *session_id, struct sp_error **err)
{
  sqldb_lock(es->db);
  int ret = run_txn(es, clear_fn, (void *)session_id, "clear errors", err);
  sqldb_unlock(es->db);
  return ret;
}

/* ---- statistics ---- */

static int group_row(void *ud, sqlite3_stmt *s)
{
  json_add_int(ud, sqldb_col_text(s, 0), sqlite3_column_int64(s, 1));
  return 0;
}

/* Add {value: occurrences} for GROUP BY column to obj under key. */
static int stats_group(struct errorstore *es, cJSON *obj, const char *key, const char *column,
                       const char *session_id, struct sp_error **err)
{
  cleanup_free char *sql = xasprintf("SELECT coalesce(%s, 'unknown'), sum(count) FROM errors "
                                     "WHERE ?1 IS NULL OR session = ?1 GROUP BY 1 ORDER BY 1",
                                     column);
  cleanup_stmt sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(sqldb_conn(es->db), sql, -1, &s, NULL);
  if (rc != SQLITE_OK)
    return sqldb_error(es->db, err, rc, "error stats");
  sqldb_bind_text_or_null(s, 1, session_id);
  return sqldb_each(es->db, s, group_row, cJSON_AddObjectToObject(obj, key), "error stats", err);
}

static int stats_locked(struct errorstore *es, cJSON *obj, const char *session_id,
                        struct sp_error **err)
{
  cleanup_stmt sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(sqldb_conn(es->db),
                              "SELECT coalesce(sum(count), 0), count(*) FROM errors "
                              "WHERE ?1 IS NULL OR session = ?1",
                              -1, &s, NULL);
  if (rc != SQLITE_OK)
    return sqldb_error(es->db, err, rc, "error stats");
  sqldb_bind_text_or_null(s, 1, session_id);
  if ((rc = sqlite3_step(s)) != SQLITE_ROW)
    return sqldb_error(es->db, err, rc, "error stats");
  json_add_int(obj, "total", sqlite3_column_int64(s, 0));
  json_add_int(obj, "unique", sqlite3_column_int64(s, 1));
  if (stats_group(es, obj, "byCategory", "category", session_id, err) < 0 ||
      stats_group(es, obj, "bySeverity", "severity", session_id, err) < 0 ||
      stats_group(es, obj, "byTool", "tool", session_id, err) < 0)
    return -1;
  return 0;
}

struct cJSON *errorstore_stats(struct errorstore *es, const char *session_id,
                               struct sp_error **err)
{
  cleanup_json cJSON *obj = cJSON_CreateObject();
  sqldb_lock(es->db);
  int ret = stats_locked(es, obj, session_id, err);
  sqldb_unlock(es->db);
  return ret < 0 ? NULL : steal_pointer(&obj);
}
