#include "state.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

#define SCHEMA_VERSION 1

struct state {
  sqlite3 *db;
  pthread_mutex_t mu;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS sandboxes ("
    "  id TEXT PRIMARY KEY, pool TEXT NOT NULL, slot INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL, last_active_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS instances ("
    "  pool TEXT NOT NULL, slot INTEGER NOT NULL, backend TEXT NOT NULL, backend_id TEXT,"
    "  state TEXT NOT NULL, started_ms INTEGER NOT NULL DEFAULT 0,"
    "  starts INTEGER NOT NULL DEFAULT 0, restarts INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (pool, slot));"
    "CREATE TABLE IF NOT EXISTS ports ("
    "  sandbox TEXT NOT NULL, port INTEGER NOT NULL, token TEXT NOT NULL, name TEXT,"
    "  created_ms INTEGER NOT NULL, PRIMARY KEY (sandbox, port));";

static int db_error(struct state *st, struct sp_error **err, const char *what)
{
  return sp_error_code(err, "STORE_ERROR", 500, "state database: %s: %s", what,
                       sqlite3_errmsg(st->db));
}

struct state *state_open(const char *path, struct sp_error **err)
{
  struct state *st = xcalloc(1, sizeof *st);
  pthread_mutex_init(&st->mu, NULL);
  if (sqlite3_open_v2(path, &st->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    sp_error_code(err, "STORE_ERROR", 500, "cannot open %s: %s", path,
                  st->db ? sqlite3_errmsg(st->db) : "out of memory");
    state_close(st);
    return NULL;
  }
  sqlite3_busy_timeout(st->db, 5000);
  char *msg = NULL;
  if (sqlite3_exec(st->db,
                   "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
                   NULL, NULL, &msg) != SQLITE_OK ||
      sqlite3_exec(st->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
    sp_error_code(err, "STORE_ERROR", 500, "cannot set up %s: %s", path, msg ? msg : "?");
    sqlite3_free(msg);
    state_close(st);
    return NULL;
  }
  sqlite3_exec(st->db, "PRAGMA user_version=1", NULL, NULL, NULL);
  return st;
}

void state_close(struct state *st)
{
  if (st == NULL)
    return;
  sqlite3_close(st->db);
  pthread_mutex_destroy(&st->mu);
  free(st);
}

/* Run one statement with bound text/int arguments: fmt letters 's' text
 * (NULL allowed), 'i' int64. */
static int run(struct state *st, const char *sql, const char *fmt, const void *const *args,
               struct sp_error **err)
{
  sqlite3_stmt *s = NULL;
  pthread_mutex_lock(&st->mu);
  int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
  if (rc != SQLITE_OK) {
    db_error(st, err, "prepare");
    pthread_mutex_unlock(&st->mu);
    return -1;
  }
  for (int i = 0; fmt[i]; i++) {
    if (fmt[i] == 's')
      sqlite3_bind_text(s, i + 1, (const char *)args[i], -1, SQLITE_TRANSIENT);
    else
      sqlite3_bind_int64(s, i + 1, *(const int64_t *)args[i]);
  }
  rc = sqlite3_step(s);
  sqlite3_finalize(s);
  int out = 0;
  if (rc != SQLITE_DONE)
    out = db_error(st, err, "write");
  pthread_mutex_unlock(&st->mu);
  return out;
}

int state_sandbox_put(struct state *st, const struct sandbox_row *r, struct sp_error **err)
{
  int64_t slot = r->slot;
  const void *args[] = {r->id, r->pool, &slot, &r->created_ms, &r->last_active_ms};
  return run(st,
             "INSERT INTO sandboxes (id, pool, slot, created_ms, last_active_ms) "
             "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET pool=excluded.pool, "
             "slot=excluded.slot, last_active_ms=excluded.last_active_ms",
             "ssiii", args, err);
}

int state_sandbox_touch(struct state *st, const char *id, int64_t last_active_ms,
                        struct sp_error **err)
{
  const void *args[] = {&last_active_ms, id};
  return run(st, "UPDATE sandboxes SET last_active_ms=? WHERE id=?", "is", args, err);
}

int state_sandbox_delete(struct state *st, const char *id, struct sp_error **err)
{
  const void *args[] = {id};
  if (run(st, "DELETE FROM ports WHERE sandbox=?", "s", args, err) < 0)
    return -1;
  return run(st, "DELETE FROM sandboxes WHERE id=?", "s", args, err);
}

int state_sandbox_each(struct state *st, state_sandbox_cb cb, void *ud, struct sp_error **err)
{
  sqlite3_stmt *s = NULL;
  pthread_mutex_lock(&st->mu);
  if (sqlite3_prepare_v2(st->db,
                         "SELECT id, pool, slot, created_ms, last_active_ms FROM sandboxes "
                         "ORDER BY created_ms, id",
                         -1, &s, NULL) != SQLITE_OK) {
    db_error(st, err, "prepare");
    pthread_mutex_unlock(&st->mu);
    return -1;
  }
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct sandbox_row r = {
        (const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
        sqlite3_column_int(s, 2), sqlite3_column_int64(s, 3), sqlite3_column_int64(s, 4)};
    if (cb(ud, &r))
      break;
  }
  sqlite3_finalize(s);
  pthread_mutex_unlock(&st->mu);
  return 0;
}

int state_instance_put(struct state *st, const struct instance_row *r, struct sp_error **err)
{
  int64_t slot = r->slot;
  const void *args[] = {r->pool, &slot, r->backend, r->backend_id, r->state,
                        &r->started_ms, &r->starts, &r->restarts};
  return run(st,
             "INSERT INTO instances (pool, slot, backend, backend_id, state, started_ms, starts, "
             "restarts) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(pool, slot) DO UPDATE SET "
             "backend=excluded.backend, backend_id=excluded.backend_id, state=excluded.state, "
             "started_ms=excluded.started_ms, starts=excluded.starts, restarts=excluded.restarts",
             "sisssiii", args, err);
}

int state_instance_each(struct state *st, state_instance_cb cb, void *ud, struct sp_error **err)
{
  sqlite3_stmt *s = NULL;
  pthread_mutex_lock(&st->mu);
  if (sqlite3_prepare_v2(st->db,
                         "SELECT pool, slot, backend, backend_id, state, started_ms, starts, "
                         "restarts FROM instances ORDER BY pool, slot",
                         -1, &s, NULL) != SQLITE_OK) {
    db_error(st, err, "prepare");
    pthread_mutex_unlock(&st->mu);
    return -1;
  }
  while (sqlite3_step(s) == SQLITE_ROW) {
    struct instance_row r = {
        (const char *)sqlite3_column_text(s, 0), sqlite3_column_int(s, 1),
        (const char *)sqlite3_column_text(s, 2), (const char *)sqlite3_column_text(s, 3),
        (const char *)sqlite3_column_text(s, 4), sqlite3_column_int64(s, 5),
        sqlite3_column_int64(s, 6), sqlite3_column_int64(s, 7)};
    if (cb(ud, &r))
      break;
  }
  sqlite3_finalize(s);
  pthread_mutex_unlock(&st->mu);
  return 0;
}

int state_port_put(struct state *st, const struct port_row *r, struct sp_error **err)
{
  int64_t port = r->port;
  const void *args[] = {r->sandbox, &port, r->token, r->name, &r->created_ms};
  return run(st,
             "INSERT INTO ports (sandbox, port, token, name, created_ms) VALUES (?, ?, ?, ?, ?) "
             "ON CONFLICT(sandbox, port) DO UPDATE SET token=excluded.token, name=excluded.name",
             "sissi", args, err);
}

int state_port_delete(struct state *st, const char *sandbox, int port, struct sp_error **err)
{
  int64_t p = port;
  const void *args[] = {sandbox, &p};
  return run(st, "DELETE FROM ports WHERE sandbox=? AND port=?", "si", args, err);
}

int state_port_each(struct state *st, const char *sandbox, state_port_cb cb, void *ud,
                    struct sp_error **err)
{
  sqlite3_stmt *s = NULL;
  pthread_mutex_lock(&st->mu);
  if (sqlite3_prepare_v2(st->db,
                         sandbox ? "SELECT sandbox, port, token, name, created_ms FROM ports "
                                   "WHERE sandbox=? ORDER BY port"
                                 : "SELECT sandbox, port, token, name, created_ms FROM ports "
                                   "ORDER BY sandbox, port",
                         -1, &s, NULL) != SQLITE_OK) {
    db_error(st, err, "prepare");
    pthread_mutex_unlock(&st->mu);
    return -1;
  }
  if (sandbox)
    sqlite3_bind_text(s, 1, sandbox, -1, SQLITE_TRANSIENT);
  while (sqlite3_step(s) == SQLITE_ROW) {
    struct port_row r = {(const char *)sqlite3_column_text(s, 0), sqlite3_column_int(s, 1),
                         (const char *)sqlite3_column_text(s, 2),
                         (const char *)sqlite3_column_text(s, 3), sqlite3_column_int64(s, 4)};
    if (cb(ud, &r))
      break;
  }
  sqlite3_finalize(s);
  pthread_mutex_unlock(&st->mu);
  return 0;
}

int state_port_token(struct state *st, const char *sandbox, int port, char *tok, size_t n,
                     struct sp_error **err)
{
  sqlite3_stmt *s = NULL;
  pthread_mutex_lock(&st->mu);
  if (sqlite3_prepare_v2(st->db, "SELECT token FROM ports WHERE sandbox=? AND port=?", -1, &s,
                         NULL) != SQLITE_OK) {
    db_error(st, err, "prepare");
    pthread_mutex_unlock(&st->mu);
    return -1;
  }
  sqlite3_bind_text(s, 1, sandbox, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(s, 2, port);
  int found = 0;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    snprintf(tok, n, "%s", (const char *)sqlite3_column_text(s, 0));
    found = 1;
  } else if (rc != SQLITE_DONE) {
    found = db_error(st, err, "token lookup");
  }
  sqlite3_finalize(s);
  pthread_mutex_unlock(&st->mu);
  return found;
}
