/* SQLite helpers; see sqldb.h. */
#include "sqldb.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "util.h"

enum { T_BEGIN, T_COMMIT, T_ROLLBACK, T_COUNT };

static const char *const txn_sql[T_COUNT] = {
    [T_BEGIN] = "BEGIN IMMEDIATE",
    [T_COMMIT] = "COMMIT",
    [T_ROLLBACK] = "ROLLBACK",
};

struct sqldb {
  sqlite3 *db;
  char *name;
  pthread_mutex_t mu;
  sqlite3_stmt *txn[T_COUNT];
  _Atomic int64_t txn_failures;
};

static int fail(struct sqldb *d, struct sp_error **err, int rc, const char *what,
                const char *detail)
{
  switch (rc & 0xff) {
  case SQLITE_FULL:
    return sp_error_code(err, "STORE_FULL", 507, "%s: %s: %s", d->name, what, detail);
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return sp_error_code(err, "STORE_BUSY", 503, "%s: %s: %s", d->name, what, detail);
  default:
    return sp_error_code(err, "STORE_ERROR", 500, "%s: %s: %s", d->name, what, detail);
  }
}

int sqldb_error(struct sqldb *d, struct sp_error **err, int rc, const char *what)
{
  return fail(d, err, rc, what, d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc));
}

int sqldb_exec(struct sqldb *d, const char *sql, const char *what, struct sp_error **err)
{
  int rc = sqlite3_exec(d->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : sqldb_error(d, err, rc, what);
}

int sqldb_query_int(struct sqldb *d, const char *sql, int64_t *out, struct sp_error **err)
{
  cleanup_stmt sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(d->db, sql, -1, &s, NULL);
  if (rc != SQLITE_OK)
    return sqldb_error(d, err, rc, sql);
  rc = sqlite3_step(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return sqldb_error(d, err, rc, sql);
  *out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  return 0;
}

static int set_wal(struct sqldb *d, struct sp_error **err)
{
  cleanup_stmt sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(d->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
  if (rc != SQLITE_OK)
    return sqldb_error(d, err, rc, "set WAL mode");
  rc = sqlite3_step(s);
  if (rc != SQLITE_ROW)
    return sqldb_error(d, err, rc, "set WAL mode");
  const char *mode = sqldb_col_text(s, 0);
  if (mode == NULL || strcmp(mode, "wal") != 0)
    return sp_error_code(err, "STORE_ERROR", 500, "%s: cannot use WAL mode (got %s)", d->name,
                         mode ? mode : "nothing");
  return 0;
}

/* Create the schema in a new database or check an old one's version. */
static int migrate(struct sqldb *d, const struct sqldb_opts *o, struct sp_error **err)
{
  if (sqldb_exec(d, "BEGIN IMMEDIATE", "begin", err) < 0)
    return -1;
  int64_t version;
  if (sqldb_query_int(d, "PRAGMA user_version", &version, err) < 0)
    goto fail;
  if (version == 0) {
    if (sqldb_exec(d, o->schema, "create schema", err) < 0)
      goto fail;
    cleanup_free char *sql = xasprintf("PRAGMA user_version=%d", o->version);
    if (sqldb_exec(d, sql, "set schema version", err) < 0)
      goto fail;
  } else if (version != o->version) {
    sp_error_code(err, "STORE_VERSION", 500, "%s: schema version %lld, this program knows %d",
                  d->name, (long long)version, o->version);
    goto fail;
  }
  if (sqldb_exec(d, "COMMIT", "commit schema", err) < 0)
    goto fail;
  return 0;
fail:
  sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
  return -1;
}

struct sqldb *sqldb_open(const char *path, const struct sqldb_opts *o, struct sp_error **err)
{
  struct sqldb *d = xcalloc(1, sizeof *d);
  d->name = xstrdup(o->name);
  pthread_mutex_init(&d->mu, NULL);
  int rc = sqlite3_open_v2(path, &d->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                               SQLITE_OPEN_EXRESCODE,
                           NULL);
  if (rc != SQLITE_OK) {
    sqldb_error(d, err, rc, "open");
    goto fail;
  }
  sqlite3_busy_timeout(d->db, o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 5000);
  if (set_wal(d, err) < 0 || (o->pragmas && sqldb_exec(d, o->pragmas, "configure", err) < 0) ||
      migrate(d, o, err) < 0 || sqldb_prepare_all(d, txn_sql, d->txn, T_COUNT, err) < 0)
    goto fail;
  return d;
fail:
  sqldb_close(d);
  return NULL;
}

void sqldb_close(struct sqldb *d)
{
  if (d == NULL)
    return;
  for (int i = 0; i < T_COUNT; i++)
    sqlite3_finalize(d->txn[i]);
  sqlite3_close_v2(d->db);
  pthread_mutex_destroy(&d->mu);
  free(d->name);
  free(d);
}

sqlite3 *sqldb_conn(struct sqldb *d) { return d->db; }

void sqldb_lock(struct sqldb *d) { pthread_mutex_lock(&d->mu); }

void sqldb_unlock(struct sqldb *d) { pthread_mutex_unlock(&d->mu); }

int sqldb_prepare_all(struct sqldb *d, const char *const *sql, sqlite3_stmt **st, int n,
                      struct sp_error **err)
{
  for (int i = 0; i < n; i++) {
    int rc = sqlite3_prepare_v3(d->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i], NULL);
    if (rc != SQLITE_OK)
      return sqldb_error(d, err, rc, "prepare");
  }
  return 0;
}

int sqldb_step_reset(sqlite3_stmt *s)
{
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return (rc == SQLITE_DONE || rc == SQLITE_ROW) ? SQLITE_OK : rc;
}

int sqldb_each(struct sqldb *d, sqlite3_stmt *s, sqldb_row_fn row, void *ud, const char *what,
               struct sp_error **err)
{
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (row(ud, s) != 0) {
      rc = SQLITE_DONE;
      break;
    }
  }
  int ret = 0;
  if (rc != SQLITE_DONE)
    ret = sqldb_error(d, err, rc, what);
  sqlite3_reset(s);
  return ret;
}

int sqldb_bind_text_or_null(sqlite3_stmt *s, int i, const char *v)
{
  return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

const char *sqldb_col_text(sqlite3_stmt *s, int i)
{
  return (const char *)sqlite3_column_text(s, i); /* NULL for SQL NULL */
}

static void sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

int sqldb_txn(struct sqldb *d, int (*body)(void *arg), void (*end)(void *arg, bool committed),
              void *arg, const char *what, struct sp_error **err)
{
  int rc = SQLITE_OK;
  char msg[256] = "";
  for (int attempt = 0; attempt < SQLDB_TXN_ATTEMPTS; attempt++) {
    if (attempt > 0)
      sleep_ms(10L * attempt);
    rc = sqldb_step_reset(d->txn[T_BEGIN]);
    if (rc == SQLITE_OK)
      rc = body(arg);
    if (rc == SQLITE_OK)
      rc = sqldb_step_reset(d->txn[T_COMMIT]);
    if (rc == SQLITE_OK) {
      if (end)
        end(arg, true);
      return 0;
    }
    snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(d->db));
    if (!sqlite3_get_autocommit(d->db))
      sqldb_step_reset(d->txn[T_ROLLBACK]);
    if (end)
      end(arg, false);
  }
  atomic_fetch_add(&d->txn_failures, 1);
  return fail(d, err, rc, what, msg);
}

int64_t sqldb_txn_failures(struct sqldb *d) { return atomic_load(&d->txn_failures); }
