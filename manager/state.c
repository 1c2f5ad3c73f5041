/* sandpitd's state database; see state.h.  One connection behind its
 * lock (lib/sqldb.c); every statement is prepared, run and finalized under
 * it, and every write commits on its own (autocommit). */
#include "state.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "sqldb.h"
#include "util.h"

#define SCHEMA_VERSION 1

struct state {
  struct sqldb *db;
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

struct state *state_open(const char *path, struct sp_error **err)
{
  const struct sqldb_opts o = {
      .name = "state database",
      .pragmas = "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
      .schema = schema,
      .version = SCHEMA_VERSION,
  };
  struct state *st = xcalloc(1, sizeof *st);
  if ((st->db = sqldb_open(path, &o, err)) == NULL) {
    sp_error_prefix(err, "%s", path);
    state_close(st);
    return NULL;
  }
  return st;
}

void state_close(struct state *st)
{
  if (st == NULL)
    return;
  sqldb_close(st->db);
  free(st);
}

/* Lock the connection and prepare sql with its arguments bound: fmt letters
 * 's' text (NULL allowed), 'i' int64.  NULL, unlocked, on failure. */
static sqlite3_stmt *start(struct state *st, const char *sql, const char *fmt,
                           const void *const *args, struct sp_error **err)
{
  sqlite3_stmt *s = NULL;
  sqldb_lock(st->db);
  int rc = sqlite3_prepare_v2(sqldb_conn(st->db), sql, -1, &s, NULL);
  if (rc != SQLITE_OK) {
    sqldb_error(st->db, err, rc, "prepare");
    sqldb_unlock(st->db);
    return NULL;
  }
  for (int i = 0; fmt[i]; i++) {
    if (fmt[i] == 's')
      sqlite3_bind_text(s, i + 1, (const char *)args[i], -1, SQLITE_TRANSIENT);
    else
      sqlite3_bind_int64(s, i + 1, *(const int64_t *)args[i]);
  }
  return s;
}

static void finish(struct state *st, sqlite3_stmt *s)
{
  sqlite3_finalize(s);
  sqldb_unlock(st->db);
}

/* Run one statement that returns no rows (arguments as in start). */
static int run(struct state *st, const char *sql, const char *fmt, const void *const *args,
               struct sp_error **err)
{
  sqlite3_stmt *s = start(st, sql, fmt, args, err);
  if (s == NULL)
    return -1;
  int rc = sqlite3_step(s);
  int out = rc == SQLITE_DONE ? 0 : sqldb_error(st->db, err, rc, "write");
  finish(st, s);
  return out;
}

/* Call row(ud, s) for each row of a query (arguments as in start). */
static int query(struct state *st, const char *sql, const char *fmt, const void *const *args,
                 sqldb_row_fn row, void *ud, const char *what, struct sp_error **err)
{
  sqlite3_stmt *s = start(st, sql, fmt, args, err);
  if (s == NULL)
    return -1;
  int ret = sqldb_each(st->db, s, row, ud, what, err);
  finish(st, s);
  return ret;
}

/* The caller's callback of a state_*_each. */
struct each_cb {
  state_sandbox_cb sandbox;
  state_instance_cb instance;
  state_port_cb port;
  void *ud;
};

static const char *col(sqlite3_stmt *s, int i) { return sqldb_col_text(s, i); }

static int sandbox_row(void *ud, sqlite3_stmt *s)
{
  const struct each_cb *c = ud;
  struct sandbox_row r = {col(s, 0), col(s, 1), sqlite3_column_int(s, 2),
                          sqlite3_column_int64(s, 3), sqlite3_column_int64(s, 4)};
  return c->sandbox(c->ud, &r);
}

static int instance_row(void *ud, sqlite3_stmt *s)
{
  const struct each_cb *c = ud;
  struct instance_row r = {col(s, 0), sqlite3_column_int(s, 1), col(s, 2), col(s, 3),
                           col(s, 4), sqlite3_column_int64(s, 5), sqlite3_column_int64(s, 6),
                           sqlite3_column_int64(s, 7)};
  return c->instance(c->ud, &r);
}

static int port_row(void *ud, sqlite3_stmt *s)
{
  const struct each_cb *c = ud;
  struct port_row r = {col(s, 0), sqlite3_column_int(s, 1), col(s, 2), col(s, 3),
                       sqlite3_column_int64(s, 4)};
  return c->port(c->ud, &r);
}

enum { Q_SANDBOXES, Q_INSTANCES, Q_PORTS, Q_SANDBOX_PORTS };

#define PORTS "SELECT sandbox, port, token, name, created_ms FROM ports "

static const struct {
  const char *sql;
  sqldb_row_fn row;
  const char *what;
} queries[] = {
    [Q_SANDBOXES] = {"SELECT id, pool, slot, created_ms, last_active_ms FROM sandboxes "
                     "ORDER BY created_ms, id",
                     sandbox_row, "read sandboxes"},
    [Q_INSTANCES] = {"SELECT pool, slot, backend, backend_id, state, started_ms, starts, "
                     "restarts FROM instances ORDER BY pool, slot",
                     instance_row, "read instances"},
    [Q_PORTS] = {PORTS "ORDER BY sandbox, port", port_row, "read ports"},
    [Q_SANDBOX_PORTS] = {PORTS "WHERE sandbox=? ORDER BY port", port_row, "read ports"},
};

/* Hand every row of queries[q] to the caller's callback in c; sandbox, when
 * not NULL, is the query's argument. */
static int each(struct state *st, int q, const char *sandbox, struct each_cb c,
                struct sp_error **err)
{
  const void *args[] = {sandbox};
  return query(st, queries[q].sql, sandbox ? "s" : "", args, queries[q].row, &c, queries[q].what,
               err);
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
  return each(st, Q_SANDBOXES, NULL, (struct each_cb){.sandbox = cb, .ud = ud}, err);
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
  return each(st, Q_INSTANCES, NULL, (struct each_cb){.instance = cb, .ud = ud}, err);
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
  return each(st, sandbox ? Q_SANDBOX_PORTS : Q_PORTS, sandbox,
              (struct each_cb){.port = cb, .ud = ud}, err);
}

struct token {
  char *buf;
  size_t n;
  int found;
};

static int token_row(void *ud, sqlite3_stmt *s)
{
  struct token *t = ud;
  snprintf(t->buf, t->n, "%s", col(s, 0));
  t->found = 1;
  return 1;
}

int state_port_token(struct state *st, const char *sandbox, int port, char *tok, size_t n,
                     struct sp_error **err)
{
  struct token t = {tok, n, 0};
  int64_t p = port;
  const void *args[] = {sandbox, &p};
  if (query(st, "SELECT token FROM ports WHERE sandbox=? AND port=?", "si", args, token_row, &t,
            "token lookup", err) < 0)
    return -1;
  return t.found;
}
