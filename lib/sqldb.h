/* SQLite helpers shared by the monitor's log store and sandpitd's state:
 * a connection in WAL mode behind one mutex, its schema version, write
 * transactions with retries, and SQLite failures as sp_errors.
 *
 * Durability: WAL with the caller's pragmas (synchronous=NORMAL for both
 * stores), so what a COMMIT (or an autocommit statement) wrote survives a
 * kill -9 of the process.
 *
 * Error messages start with the database's name ("log store: ..."), then
 * what was being done, then SQLite's message; the caller adds the path.
 * A full disk is STORE_FULL (507), a locked database STORE_BUSY (503),
 * anything else STORE_ERROR (500). */
#ifndef SP_SQLDB_H
#define SP_SQLDB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

struct sp_error;

static inline void sqldb_stmt_cleanup(sqlite3_stmt **s) { sqlite3_finalize(*s); }
#define cleanup_stmt __attribute__((cleanup(sqldb_stmt_cleanup)))

struct sqldb_opts {
  const char *name;    /* starts its error messages: "log store" */
  const char *pragmas; /* run once WAL is on: "PRAGMA synchronous=NORMAL;" */
  const char *schema;  /* the tables of `version`, created in a new database */
  int version;         /* PRAGMA user_version of that schema, > 0 */
  int busy_timeout_ms; /* SQLite's busy timeout per attempt; 0 = 5000 */
};

struct sqldb;

/* Open (creating if missing) the database at path, in WAL mode, and run the
 * pragmas; in one transaction, create the schema in a new database (user
 * version 0) and set its version, or check an old one's.  The connection is
 * used by one thread at a time (sqldb_lock).  Errors: STORE_ERROR, and
 * STORE_VERSION (500) for a database of another schema version. */
struct sqldb *sqldb_open(const char *path, const struct sqldb_opts *o, struct sp_error **err);

/* Close the connection (statements left are finalized).  Accepts NULL. */
void sqldb_close(struct sqldb *d);

sqlite3 *sqldb_conn(struct sqldb *d);
/* The connection's mutex: held around every use by a thread-safe store. */
void sqldb_lock(struct sqldb *d);
void sqldb_unlock(struct sqldb *d);

/* Set *err for SQLite code rc (see the top) with the connection's last
 * message.  Returns -1. */
int sqldb_error(struct sqldb *d, struct sp_error **err, int rc, const char *what);

/* Prepare n statements, persistent, for the life of the connection. */
int sqldb_prepare_all(struct sqldb *d, const char *const *sql, sqlite3_stmt **st, int n,
                      struct sp_error **err);

int sqldb_exec(struct sqldb *d, const char *sql, const char *what, struct sp_error **err);

/* Run a single-value query: *out = the first column of the first row, 0 if
 * there is no row. */
int sqldb_query_int(struct sqldb *d, const char *sql, int64_t *out, struct sp_error **err);

/* Step a statement whose rows are not needed, then reset it; returns
 * SQLITE_OK or SQLite's error code. */
int sqldb_step_reset(sqlite3_stmt *s);

/* Call row(ud, s) for each row of s until it returns nonzero (a stop, not an
 * error), then reset s (its bindings stay). */
typedef int (*sqldb_row_fn)(void *ud, sqlite3_stmt *s);
int sqldb_each(struct sqldb *d, sqlite3_stmt *s, sqldb_row_fn row, void *ud, const char *what,
               struct sp_error **err);

/* Bind v as text (not copied), or NULL when v is NULL. */
int sqldb_bind_text_or_null(sqlite3_stmt *s, int i, const char *v);
/* Column i as text, NULL for SQL NULL. */
const char *sqldb_col_text(sqlite3_stmt *s, int i);

/* Run body(arg) inside BEGIN IMMEDIATE ... COMMIT, up to SQLDB_TXN_ATTEMPTS
 * times, 10 ms more apart each time (a failure after that is counted); body returns an SQLite code and must
 * leave nothing to undo in memory, or undo it in end(arg, committed), which
 * is called (when not NULL) after each attempt.  Called with the lock held.
 * Returns -1 with the last attempt's error when none committed. */
#define SQLDB_TXN_ATTEMPTS 3
int sqldb_txn(struct sqldb *d, int (*body)(void *arg), void (*end)(void *arg, bool committed),
              void *arg, const char *what, struct sp_error **err);
/* The sqldb_txn calls that failed since open; read without the lock. */
int64_t sqldb_txn_failures(struct sqldb *d);

#endif
