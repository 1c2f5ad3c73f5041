/* SQLite store for log lines; see logstore.h.  The database's `errors`
 * table is the error store's (errstore.c), opened with it.
 *
 * Locking.  db_mu, the connection's lock (sqldb_lock), guards the connection,
 * its statements and every counter that mirrors the database (per-process
 * lines/bytes, totals); the error store (errstore.c) takes it too.  pend_mu
 * guards the pending batch, the sequence counter and the process
 * registry (hash and id tables; a struct proc never moves and its name never
 * changes once registered).  seq_mu guards changes of last_seq (atomic, so
 * that reading it never waits) and the wait for them.  Lock
 * order: db_mu, then pend_mu, then seq_mu.
 *
 * The store-wide counters that logstore_status reports (total_lines,
 * total_bytes, rotated_lines)
 * are changed only with both db_mu and pend_mu held, so they can be read
 * under either: status reads them under pend_mu alone, and so never waits
 * for a write transaction, which holds db_mu for as long as SQLite takes.  The commit
 * of a batch moves its lines from inflight_n to total_lines in one pend_mu
 * section, so no reader sees them counted twice or not at all.
 *
 * A flush swaps the pending batch for an empty one under pend_mu and writes
 * it under db_mu alone, so appends go on while a batch is being written.
 *
 * Counters.  Each process's committed lines and bytes are kept in memory so
 * that checking the budgets after a flush costs nothing, and in its
 * `processes` row, updated by the same transaction that changes its lines,
 * so that open does not have to scan the log table.  Changes made inside a
 * transaction go to txn_* fields and are applied only when it commits
 * (txn_end), so a rollback leaves the counters right. */
#include "logstore.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "error.h"
#include "errstore.h"
#include "log.h"
#include "sqldb.h"
#include "util.h"

#define SCHEMA_VERSION 1
#define ROTATE_CHUNK 8192
#define ROTATE_MIN_PER_FLUSH 65536
#define MAX_PROC_ID_VALUE (1 << 24)
#define LINE_TRUNCATED 1

struct proc {
  int64_t id;
  char *name;
  size_t name_len;
  uint32_t hash;
  /* under db_mu */
  int64_t lines, bytes;         /* committed */
  int64_t txn_lines, txn_bytes; /* changes in the open transaction */
  bool persisted;               /* has its row in `processes` */
  bool in_txn;                  /* row inserted by the open transaction */
  bool touched;                 /* on the txn_touched list */
};

/* One pending line; its text lives in the batch's arena at `off`. */
struct pend {
  int64_t seq, run, ts;
  struct proc *proc;
  size_t off;
  uint32_t len;
  uint8_t stream;
  bool truncated;
};

struct batch {
  struct pend *v;
  size_t n, cap;
  char *data;
  size_t len, data_cap;
};

enum {
  ST_INSERT_LINE,
  ST_INSERT_PROC,
  ST_UPDATE_PROC,
  ST_SET_SEQ_HIGH,
  ST_ROT_PROC_SCAN,
  ST_ROT_PROC_DEL,
  ST_ROT_ALL_SCAN,
  ST_ROT_ALL_DEL,
  ST_Q_ALL,
  ST_Q_PROC,
  ST_Q_ALL_TAIL,
  ST_Q_PROC_TAIL,
  ST_CLEAR_PROC,
  ST_CLEAR_ALL,
  ST_COUNT
};

#define LINE_COLS "seq, proc, run, stream, ts, flags, text"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_INSERT_LINE] = "INSERT INTO lines(" LINE_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_INSERT_PROC] = "INSERT INTO processes(id, name) VALUES(?1, ?2)",
    [ST_UPDATE_PROC] = "UPDATE processes SET lines = lines + ?2, bytes = bytes + ?3 WHERE id = ?1",
    [ST_SET_SEQ_HIGH] = "INSERT INTO meta(key, value) VALUES('seq_high', ?1) "
                        "ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
    [ST_ROT_PROC_SCAN] = "SELECT seq, length(text) FROM lines WHERE proc = ?1 ORDER BY seq LIMIT ?2",
    [ST_ROT_PROC_DEL] = "DELETE FROM lines WHERE proc = ?1 AND seq <= ?2",
    [ST_ROT_ALL_SCAN] = "SELECT seq, proc, length(text) FROM lines ORDER BY seq LIMIT ?1",
    [ST_ROT_ALL_DEL] = "DELETE FROM lines WHERE seq <= ?1",
    [ST_Q_ALL] = "SELECT " LINE_COLS " FROM lines WHERE seq > ?1 ORDER BY seq LIMIT ?3",
    [ST_Q_PROC] = "SELECT " LINE_COLS " FROM lines WHERE proc = ?2 AND seq > ?1 "
                  "ORDER BY seq LIMIT ?3",
    [ST_Q_ALL_TAIL] = "SELECT * FROM (SELECT " LINE_COLS " FROM lines WHERE seq > ?1 "
                      "ORDER BY seq DESC LIMIT ?4) ORDER BY seq LIMIT ?3",
    [ST_Q_PROC_TAIL] = "SELECT * FROM (SELECT " LINE_COLS " FROM lines WHERE proc = ?2 "
                       "AND seq > ?1 ORDER BY seq DESC LIMIT ?4) ORDER BY seq LIMIT ?3",
    [ST_CLEAR_PROC] = "DELETE FROM lines WHERE proc = ?1",
    [ST_CLEAR_ALL] = "DELETE FROM lines",
};

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE processes("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " lines INTEGER NOT NULL DEFAULT 0," /* count(*) and total(length(text)) of its */
    " bytes INTEGER NOT NULL DEFAULT 0);" /* lines, kept by every transaction */
    "CREATE TABLE lines("
    " seq INTEGER PRIMARY KEY,"
    " proc INTEGER NOT NULL,"
    " run INTEGER NOT NULL,"
    " stream INTEGER NOT NULL,"
    " ts INTEGER NOT NULL,"
    " flags INTEGER NOT NULL DEFAULT 0,"
    " text BLOB NOT NULL);"
    "CREATE INDEX lines_proc_seq ON lines(proc, seq);"
    ERRORSTORE_SCHEMA;

struct logstore {
  char *path;
  struct logstore_opts o;
  int64_t rotate_budget; /* lines rotation may delete per flush */

  struct sqldb *sql; /* and its lock, db_mu */
  sqlite3_stmt *st[ST_COUNT];
  struct errorstore *es;
  struct batch inflight;       /* the batch being written */
  int64_t total_lines, total_bytes;              /* written under pend_mu too */
  int64_t rotated_lines;                         /* written under pend_mu too */
  /* open transaction */
  struct proc **txn_touched;
  size_t txn_ntouched, txn_cap;
  int64_t txn_lines, txn_bytes, txn_rotated;
  bool txn_inflight; /* it writes the inflight batch */
  /* scratch list of processes for rotation and clear */
  struct proc **scratch;
  size_t scratch_n, scratch_cap;

  pthread_mutex_t pend_mu;
  struct batch active;
  size_t inflight_n;
  int64_t next_seq;
  size_t flush_at_lines, flush_at_bytes; /* auto-flush thresholds */
  int64_t dropped_lines, truncated_lines;
  struct proc **by_id; /* indexed by proc id */
  size_t by_id_cap;
  int64_t next_proc_id;
  struct proc **hash; /* open addressing, power of two */
  size_t hash_cap, nprocs;
  struct proc *last; /* last interned, for the common repeat */

  pthread_mutex_t seq_mu;
  pthread_cond_t seq_cond;
  _Atomic int64_t last_seq;
};

/* ---- helpers ---- */

static int64_t file_size(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* ---- pending batches ---- */

static void batch_reserve(struct batch *b, size_t lines, size_t bytes)
{
  if (b->n + lines > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + lines)
      cap *= 2;
    b->v = xreallocarray(b->v, cap, sizeof *b->v);
    b->cap = cap;
  }
  if (b->len + bytes > b->data_cap) {
    size_t cap = b->data_cap ? b->data_cap : 65536;
    while (cap < b->len + bytes)
      cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->data_cap = cap;
  }
}

static void batch_push(struct batch *b, const struct pend *p, const char *text)
{
  batch_reserve(b, 1, p->len);
  struct pend *e = &b->v[b->n++];
  *e = *p;
  e->off = b->len;
  if (p->len)
    memcpy(b->data + b->len, text, p->len);
  b->len += p->len;
}

/* Append all of src to dst (src keeps its contents). */
static void batch_append(struct batch *dst, const struct batch *src)
{
  batch_reserve(dst, src->n, src->len);
  if (src->len)
    memcpy(dst->data + dst->len, src->data, src->len);
  for (size_t i = 0; i < src->n; i++) {
    dst->v[dst->n + i] = src->v[i];
    dst->v[dst->n + i].off += dst->len;
  }
  dst->n += src->n;
  dst->len += src->len;
}

static void batch_drop_front(struct batch *b, size_t k)
{
  if (k >= b->n) {
    b->n = b->len = 0;
    return;
  }
  size_t cut = b->v[k].off;
  memmove(b->data, b->data + cut, b->len - cut);
  b->len -= cut;
  memmove(b->v, b->v + k, (b->n - k) * sizeof *b->v);
  b->n -= k;
  for (size_t i = 0; i < b->n; i++)
    b->v[i].off -= cut;
}

static void batch_clear(struct batch *b, size_t keep_bytes)
{
  b->n = b->len = 0;
  if (b->data_cap > keep_bytes) { /* after a backlog: give the memory back */
    free(b->data);
    b->data = NULL;
    b->data_cap = 0;
    free(b->v);
    b->v = NULL;
    b->cap = 0;
  }
}

static void batch_free(struct batch *b)
{
  free(b->v);
  free(b->data);
  memset(b, 0, sizeof *b);
}

/* ---- process registry (pend_mu) ---- */

static uint32_t name_hash(const char *s, size_t n)
{
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 16777619u;
  }
  return h;
}

static struct proc *proc_find(struct logstore *ls, const char *name, size_t len, uint32_t h)
{
  if (ls->hash_cap == 0)
    return NULL;
  for (size_t i = h & (ls->hash_cap - 1);; i = (i + 1) & (ls->hash_cap - 1)) {
    struct proc *p = ls->hash[i];
    if (p == NULL)
      return NULL;
    if (p->hash == h && p->name_len == len && memcmp(p->name, name, len) == 0)
      return p;
  }
}

static void hash_insert(struct proc **tab, size_t cap, struct proc *p)
{
  size_t i = p->hash & (cap - 1);
  while (tab[i])
    i = (i + 1) & (cap - 1);
  tab[i] = p;
}

/* Register a process; the id must be free and at most MAX_PROC_ID_VALUE. */
static struct proc *proc_add(struct logstore *ls, int64_t id, const char *name, size_t len)
{
  if ((ls->nprocs + 1) * 2 > ls->hash_cap) {
    size_t cap = ls->hash_cap ? ls->hash_cap * 2 : 64;
    struct proc **tab = xcalloc(cap, sizeof *tab);
    for (size_t i = 0; i < ls->hash_cap; i++)
      if (ls->hash[i])
        hash_insert(tab, cap, ls->hash[i]);
    free(ls->hash);
    ls->hash = tab;
    ls->hash_cap = cap;
  }
  if ((size_t)id >= ls->by_id_cap) {
    size_t cap = ls->by_id_cap ? ls->by_id_cap : 64;
    while (cap <= (size_t)id)
      cap *= 2;
    ls->by_id = xreallocarray(ls->by_id, cap, sizeof *ls->by_id);
    memset(ls->by_id + ls->by_id_cap, 0, (cap - ls->by_id_cap) * sizeof *ls->by_id);
    ls->by_id_cap = cap;
  }
  struct proc *p = xcalloc(1, sizeof *p);
  p->id = id;
  p->name = xmemdup(name, len);
  p->name_len = len;
  p->hash = name_hash(name, len);
  hash_insert(ls->hash, ls->hash_cap, p);
  ls->by_id[id] = p;
  ls->nprocs++;
  if (id >= ls->next_proc_id)
    ls->next_proc_id = id + 1;
  return p;
}

static struct proc *proc_intern(struct logstore *ls, const char *name, size_t len)
{
  if (ls->last && ls->last->name_len == len && memcmp(ls->last->name, name, len) == 0)
    return ls->last;
  struct proc *p = proc_find(ls, name, len, name_hash(name, len));
  if (p == NULL)
    p = proc_add(ls, ls->next_proc_id, name, len);
  ls->last = p;
  return p;
}

static struct proc *proc_lookup(struct logstore *ls, const char *name)
{
  size_t len = strlen(name);
  pthread_mutex_lock(&ls->pend_mu);
  struct proc *p = proc_find(ls, name, len, name_hash(name, len));
  pthread_mutex_unlock(&ls->pend_mu);
  return p;
}

static struct proc *proc_by_id(struct logstore *ls, int64_t id)
{
  struct proc *p = NULL;
  pthread_mutex_lock(&ls->pend_mu);
  if (id >= 0 && (uint64_t)id < ls->by_id_cap)
    p = ls->by_id[id];
  pthread_mutex_unlock(&ls->pend_mu);
  return p;
}

/* Fill ls->scratch with the registered processes for which keep() holds. */
static void collect_procs(struct logstore *ls, bool (*keep)(struct logstore *, struct proc *))
{
  ls->scratch_n = 0;
  pthread_mutex_lock(&ls->pend_mu);
  for (size_t i = 0; i < ls->by_id_cap; i++) {
    struct proc *p = ls->by_id[i];
    if (p == NULL || (keep && !keep(ls, p)))
      continue;
    if (ls->scratch_n == ls->scratch_cap) {
      ls->scratch_cap = ls->scratch_cap ? ls->scratch_cap * 2 : 16;
      ls->scratch = xreallocarray(ls->scratch, ls->scratch_cap, sizeof *ls->scratch);
    }
    ls->scratch[ls->scratch_n++] = p;
  }
  pthread_mutex_unlock(&ls->pend_mu);
}

/* ---- transactions (db_mu) ---- */

static void txn_touch(struct logstore *ls, struct proc *p, int64_t dlines, int64_t dbytes)
{
  if (!p->touched) {
    if (ls->txn_ntouched == ls->txn_cap) {
      ls->txn_cap = ls->txn_cap ? ls->txn_cap * 2 : 16;
      ls->txn_touched = xreallocarray(ls->txn_touched, ls->txn_cap, sizeof *ls->txn_touched);
    }
    ls->txn_touched[ls->txn_ntouched++] = p;
    p->touched = true;
  }
  p->txn_lines += dlines;
  p->txn_bytes += dbytes;
  ls->txn_lines += dlines;
  ls->txn_bytes += dbytes;
}

static void txn_end(struct logstore *ls, bool committed)
{
  for (size_t i = 0; i < ls->txn_ntouched; i++) {
    struct proc *p = ls->txn_touched[i];
    if (committed) {
      p->lines += p->txn_lines;
      p->bytes += p->txn_bytes;
      if (p->in_txn)
        p->persisted = true;
    }
    p->txn_lines = p->txn_bytes = 0;
    p->in_txn = p->touched = false;
  }
  ls->txn_ntouched = 0;
  if (committed) {
    pthread_mutex_lock(&ls->pend_mu);
    ls->total_lines += ls->txn_lines;
    ls->total_bytes += ls->txn_bytes;
    ls->rotated_lines += ls->txn_rotated;
    if (ls->txn_inflight)
      ls->inflight_n = 0; /* now in total_lines */
    pthread_mutex_unlock(&ls->pend_mu);
  }
  ls->txn_lines = ls->txn_bytes = ls->txn_rotated = 0;
  ls->txn_inflight = false;
}

/* Write the open transaction's counter changes to the processes rows. */
static int txn_save_counters(struct logstore *ls)
{
  sqlite3_stmt *s = ls->st[ST_UPDATE_PROC];
  for (size_t i = 0; i < ls->txn_ntouched; i++) {
    struct proc *p = ls->txn_touched[i];
    if (p->txn_lines == 0 && p->txn_bytes == 0)
      continue;
    sqlite3_bind_int64(s, 1, p->id);
    sqlite3_bind_int64(s, 2, p->txn_lines);
    sqlite3_bind_int64(s, 3, p->txn_bytes);
    int rc = sqldb_step_reset(s);
    if (rc != SQLITE_OK)
      return rc;
  }
  return SQLITE_OK;
}

typedef int (*txn_fn)(struct logstore *ls, void *arg); /* returns an SQLite code */

struct txn {
  struct logstore *ls;
  txn_fn fn;
  void *arg;
};

static int txn_body(void *arg)
{
  struct txn *t = arg;
  int rc = t->fn(t->ls, t->arg);
  return rc == SQLITE_OK ? txn_save_counters(t->ls) : rc;
}

static void txn_done(void *arg, bool committed) { txn_end(((struct txn *)arg)->ls, committed); }

/* Run fn inside one write transaction (sqldb_txn: retried a few times). */
static int run_txn(struct logstore *ls, txn_fn fn, void *arg, const char *what,
                   struct sp_error **err)
{
  struct txn t = {ls, fn, arg};
  return sqldb_txn(ls->sql, txn_body, txn_done, &t, what, err);
}

/* ---- writing a batch ---- */

static int write_batch_fn(struct logstore *ls, void *arg)
{
  const struct batch *b = arg; /* ls->inflight */
  static const char empty[1] = "";
  ls->txn_inflight = true;
  sqlite3_stmt *ins = ls->st[ST_INSERT_LINE];
  int rc;
  for (size_t i = 0; i < b->n; i++) {
    const struct pend *e = &b->v[i];
    struct proc *p = e->proc;
    if (!p->persisted && !p->in_txn) {
      sqlite3_stmt *s = ls->st[ST_INSERT_PROC];
      sqlite3_bind_int64(s, 1, p->id);
      sqlite3_bind_text(s, 2, p->name, (int)p->name_len, SQLITE_STATIC);
      if ((rc = sqldb_step_reset(s)) != SQLITE_OK)
        return rc;
      p->in_txn = true;
      txn_touch(ls, p, 0, 0); /* so that txn_end settles in_txn either way */
    }
    sqlite3_bind_int64(ins, 1, e->seq);
    sqlite3_bind_int64(ins, 2, p->id);
    sqlite3_bind_int64(ins, 3, e->run);
    sqlite3_bind_int(ins, 4, e->stream);
    sqlite3_bind_int64(ins, 5, e->ts);
    sqlite3_bind_int(ins, 6, e->truncated ? LINE_TRUNCATED : 0);
    sqlite3_bind_blob(ins, 7, e->len ? b->data + e->off : empty, (int)e->len, SQLITE_STATIC);
    rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    if (rc != SQLITE_DONE)
      return rc;
    txn_touch(ls, p, 1, e->len);
  }
  sqlite3_bind_int64(ls->st[ST_SET_SEQ_HIGH], 1, b->v[b->n - 1].seq);
  return sqldb_step_reset(ls->st[ST_SET_SEQ_HIGH]);
}

/* ---- rotation ---- */

static bool proc_over_budget(struct logstore *ls, struct proc *p)
{
  return p->lines > ls->o.max_lines_per_process || p->bytes > ls->o.max_bytes_per_process;
}

static int rotate_proc(struct logstore *ls, struct proc *p, int64_t *budget)
{
  sqlite3_stmt *scan = ls->st[ST_ROT_PROC_SCAN], *del = ls->st[ST_ROT_PROC_DEL];
  while (*budget > 0) {
    int64_t need_lines = p->lines + p->txn_lines - ls->o.max_lines_per_process;
    int64_t need_bytes = p->bytes + p->txn_bytes - ls->o.max_bytes_per_process;
    if (need_lines <= 0 && need_bytes <= 0)
      return SQLITE_OK;
    int64_t cut = -1, dlines = 0, dbytes = 0;
    sqlite3_bind_int64(scan, 1, p->id);
    sqlite3_bind_int64(scan, 2, SP_MIN(*budget, ROTATE_CHUNK));
    int rc;
    while ((rc = sqlite3_step(scan)) == SQLITE_ROW) {
      cut = sqlite3_column_int64(scan, 0);
      dlines++;
      dbytes += sqlite3_column_int64(scan, 1);
      if (dlines >= need_lines && dbytes >= need_bytes)
        break;
    }
    sqlite3_reset(scan);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
      return rc;
    if (cut < 0) {
      /* the counters claim lines the table does not have: believe the table */
      sp_warn("log store counters out of step", LS("process", p->name),
              LI("lines", p->lines + p->txn_lines));
      txn_touch(ls, p, -(p->lines + p->txn_lines), -(p->bytes + p->txn_bytes));
      return SQLITE_OK;
    }
    sqlite3_bind_int64(del, 1, p->id);
    sqlite3_bind_int64(del, 2, cut);
    if ((rc = sqldb_step_reset(del)) != SQLITE_OK)
      return rc;
    txn_touch(ls, p, -dlines, -dbytes);
    ls->txn_rotated += dlines;
    *budget -= dlines;
  }
  return SQLITE_OK;
}

static int rotate_total(struct logstore *ls, int64_t *budget)
{
  sqlite3_stmt *scan = ls->st[ST_ROT_ALL_SCAN], *del = ls->st[ST_ROT_ALL_DEL];
  while (*budget > 0) {
    int64_t need = ls->total_bytes + ls->txn_bytes - ls->o.max_total_bytes;
    if (need <= 0)
      return SQLITE_OK;
    int64_t cut = -1, dlines = 0, dbytes = 0;
    sqlite3_bind_int64(scan, 1, SP_MIN(*budget, ROTATE_CHUNK));
    int rc;
    while ((rc = sqlite3_step(scan)) == SQLITE_ROW) {
      cut = sqlite3_column_int64(scan, 0);
      int64_t len = sqlite3_column_int64(scan, 2);
      struct proc *p = proc_by_id(ls, sqlite3_column_int64(scan, 1));
      dlines++;
      if (p) { /* rows of an unregistered process were never counted */
        txn_touch(ls, p, -1, -len);
        dbytes += len;
      }
      if (dbytes >= need)
        break;
    }
    sqlite3_reset(scan);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
      return rc;
    if (cut < 0) { /* the table is empty whatever the counters say */
      sp_warn("log store total out of step", LI("bytes", ls->total_bytes + ls->txn_bytes));
      collect_procs(ls, NULL);
      for (size_t i = 0; i < ls->scratch_n; i++) {
        struct proc *p = ls->scratch[i];
        txn_touch(ls, p, -(p->lines + p->txn_lines), -(p->bytes + p->txn_bytes));
      }
      return SQLITE_OK;
    }
    sqlite3_bind_int64(del, 1, cut);
    if ((rc = sqldb_step_reset(del)) != SQLITE_OK)
      return rc;
    ls->txn_rotated += dlines;
    *budget -= dlines;
  }
  return SQLITE_OK;
}

static int rotate_fn(struct logstore *ls, void *arg)
{
  (void)arg;
  int64_t budget = ls->rotate_budget;
  for (size_t i = 0; i < ls->scratch_n; i++) {
    int rc = rotate_proc(ls, ls->scratch[i], &budget);
    if (rc != SQLITE_OK)
      return rc;
  }
  return rotate_total(ls, &budget);
}

/* Enforce the line budgets; failures are logged and counted, not returned:
 * the lines are safe, the next flush tries again. */
static void rotate(struct logstore *ls)
{
  collect_procs(ls, proc_over_budget);
  if (ls->scratch_n == 0 && ls->total_bytes <= ls->o.max_total_bytes)
    return;
  struct sp_error *e = NULL;
  if (run_txn(ls, rotate_fn, NULL, "rotate", &e) < 0) {
    sp_warn("log rotation failed", LS("error", e->msg));
    sp_error_free(e);
  }
}

/* ---- open / close ---- */

static void opts_defaults(struct logstore_opts *o)
{
  if (o->max_lines_per_process <= 0)
    o->max_lines_per_process = 100000;
  if (o->max_bytes_per_process <= 0)
    o->max_bytes_per_process = 32LL << 20;
  if (o->max_total_bytes <= 0)
    o->max_total_bytes = 256LL << 20;
  if (o->error_max_count <= 0)
    o->error_max_count = 1000;
  if (o->error_max_age_ms <= 0)
    o->error_max_age_ms = 7LL * 24 * 3600 * 1000;
  if (o->max_line_bytes <= 0)
    o->max_line_bytes = 64 << 10;
  if (o->max_line_bytes > (1 << 30))
    o->max_line_bytes = 1 << 30; /* SQLite's blob limit */
  if (o->batch_max_lines <= 0)
    o->batch_max_lines = 8192;
  if (o->batch_max_bytes <= 0)
    o->batch_max_bytes = 8LL << 20;
  if (o->batch_max_bytes < o->max_line_bytes) /* the hard cap must hold a whole line */
    o->batch_max_bytes = o->max_line_bytes;
  if (o->batch_max_lines > (1 << 22))
    o->batch_max_lines = 1 << 22;
  if (o->busy_timeout_ms <= 0)
    o->busy_timeout_ms = 5000;
}

/* The process registry, every struct proc in it. */
static void procs_free(struct logstore *ls)
{
  for (size_t i = 0; i < ls->by_id_cap; i++) {
    if (ls->by_id[i]) {
      free(ls->by_id[i]->name);
      free(ls->by_id[i]);
    }
  }
  free(ls->by_id);
  free(ls->hash);
}

static void logstore_free(struct logstore *ls)
{
  for (int i = 0; i < ST_COUNT; i++)
    sqlite3_finalize(ls->st[i]);
  errorstore_free(ls->es);
  sqldb_close(ls->sql);
  procs_free(ls);
  free(ls->txn_touched);
  free(ls->scratch);
  batch_free(&ls->active);
  batch_free(&ls->inflight);
  pthread_mutex_destroy(&ls->pend_mu);
  pthread_mutex_destroy(&ls->seq_mu);
  pthread_cond_destroy(&ls->seq_cond);
  free(ls->path);
  free(ls);
}

static int open_load(struct logstore *ls, struct sp_error **err)
{
  int rc;
  {
    cleanup_stmt sqlite3_stmt *s = NULL;
    rc = sqlite3_prepare_v2(sqldb_conn(ls->sql),
                            "SELECT id, name, lines, bytes FROM processes ORDER BY id", -1, &s,
                            NULL);
    if (rc != SQLITE_OK)
      return sqldb_error(ls->sql, err, rc, "load processes");
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      int64_t id = sqlite3_column_int64(s, 0);
      const char *name = sqldb_col_text(s, 1);
      int len = sqlite3_column_bytes(s, 1);
      if (id <= 0 || id > MAX_PROC_ID_VALUE || name == NULL)
        return sp_error_code(err, "STORE_ERROR", 500, "log store: bad process row %lld",
                             (long long)id);
      struct proc *p = proc_add(ls, id, name, (size_t)len);
      p->persisted = true;
      p->lines = sqlite3_column_int64(s, 2);
      p->bytes = sqlite3_column_int64(s, 3);
      ls->total_lines += p->lines;
      ls->total_bytes += p->bytes;
    }
    if (rc != SQLITE_DONE)
      return sqldb_error(ls->sql, err, rc, "load processes");
  }
  int64_t max_seq, high;
  if (sqldb_query_int(ls->sql, "SELECT coalesce(max(seq), 0) FROM lines", &max_seq, err) < 0 ||
      sqldb_query_int(ls->sql, "SELECT value FROM meta WHERE key = 'seq_high'", &high, err) < 0)
    return -1;
  ls->last_seq = SP_MAX(max_seq, high);
  ls->next_seq = ls->last_seq + 1;
  return 0;
}

struct logstore *logstore_open(const char *path, const struct logstore_opts *opts,
                               struct sp_error **err)
{
  struct logstore *ls = xcalloc(1, sizeof *ls);
  ls->path = xstrdup(path);
  if (opts)
    ls->o = *opts;
  opts_defaults(&ls->o);
  ls->rotate_budget = SP_MAX((int64_t)ROTATE_MIN_PER_FLUSH, 4 * (int64_t)ls->o.batch_max_lines);
  ls->flush_at_lines = (size_t)ls->o.batch_max_lines;
  ls->flush_at_bytes = (size_t)ls->o.batch_max_bytes;
  ls->next_proc_id = 1;
  pthread_mutex_init(&ls->pend_mu, NULL);
  pthread_mutex_init(&ls->seq_mu, NULL);
  sp_cond_init(&ls->seq_cond);

  const struct sqldb_opts so = {
      .name = "log store",
      .pragmas = "PRAGMA synchronous=NORMAL;"
                 "PRAGMA cache_size=-16384;"
                 "PRAGMA journal_size_limit=67108864;",
      .schema = schema_sql,
      .version = SCHEMA_VERSION,
      .busy_timeout_ms = ls->o.busy_timeout_ms,
  };
  if ((ls->sql = sqldb_open(path, &so, err)) == NULL ||
      sqldb_prepare_all(ls->sql, stmt_sql, ls->st, ST_COUNT, err) < 0 || open_load(ls, err) < 0 ||
      (ls->es = errorstore_open(ls->sql, ls->o.error_max_count, ls->o.error_max_age_ms, err)) ==
          NULL)
    goto fail;
  rotate(ls);
  return ls;
fail:
  sp_error_prefix(err, "%s", path);
  logstore_free(ls);
  return NULL;
}

/* ---- flushing ---- */

static void publish_seq(struct logstore *ls, int64_t seq)
{
  pthread_mutex_lock(&ls->seq_mu);
  if (seq > ls->last_seq)
    ls->last_seq = seq;
  pthread_cond_broadcast(&ls->seq_cond);
  pthread_mutex_unlock(&ls->seq_mu);
}

/* Drop the oldest pending lines while over the hard cap (4 batches), down to
 * 3 batches so the next drop is a batch away.  pend_mu held. */
static void enforce_hard_cap(struct logstore *ls)
{
  struct batch *b = &ls->active;
  size_t max_lines = 4 * (size_t)ls->o.batch_max_lines;
  size_t max_bytes = 4 * (size_t)ls->o.batch_max_bytes;
  if (b->n <= max_lines && b->len <= max_bytes)
    return;
  size_t keep_lines = max_lines - (size_t)ls->o.batch_max_lines;
  size_t keep_bytes = max_bytes - (size_t)ls->o.batch_max_bytes;
  size_t k = b->n > keep_lines ? b->n - keep_lines : 0;
  while (k < b->n && b->len - b->v[k].off > keep_bytes)
    k++;
  batch_drop_front(b, k);
  ls->dropped_lines += (int64_t)k;
  ls->flush_at_lines = SP_MIN(ls->flush_at_lines, b->n + (size_t)ls->o.batch_max_lines);
  ls->flush_at_bytes = SP_MIN(ls->flush_at_bytes, b->len + (size_t)ls->o.batch_max_bytes);
  sp_warn("log store dropped pending lines", LI("dropped", k), LI("pending", b->n));
}

static int flush_locked(struct logstore *ls, struct sp_error **err)
{
  pthread_mutex_lock(&ls->pend_mu);
  struct batch tmp = ls->inflight; /* empty, keeps its memory */
  ls->inflight = ls->active;
  ls->active = tmp;
  ls->inflight_n = ls->inflight.n;
  pthread_mutex_unlock(&ls->pend_mu);

  int ret = 0;
  if (ls->inflight.n > 0) {
    ret = run_txn(ls, write_batch_fn, &ls->inflight, "write log lines", err);
    int64_t last = ls->inflight.v[ls->inflight.n - 1].seq;
    pthread_mutex_lock(&ls->pend_mu);
    if (ret == 0) {
      ls->flush_at_lines = (size_t)ls->o.batch_max_lines;
      ls->flush_at_bytes = (size_t)ls->o.batch_max_bytes;
    } else {
      /* keep everything, oldest first, for the next flush */
      batch_append(&ls->inflight, &ls->active);
      tmp = ls->active;
      ls->active = ls->inflight;
      ls->inflight = tmp;
      ls->flush_at_lines = ls->active.n + (size_t)ls->o.batch_max_lines;
      ls->flush_at_bytes = ls->active.len + (size_t)ls->o.batch_max_bytes;
      enforce_hard_cap(ls);
    }
    ls->inflight_n = 0;
    pthread_mutex_unlock(&ls->pend_mu);
    batch_clear(&ls->inflight, 2 * (size_t)ls->o.batch_max_bytes);
    if (ret == 0)
      publish_seq(ls, last);
  }
  rotate(ls);
  return ret;
}

int logstore_flush(struct logstore *ls, struct sp_error **err)
{
  sqldb_lock(ls->sql);
  int ret = flush_locked(ls, err);
  sqldb_unlock(ls->sql);
  return ret;
}

void logstore_close(struct logstore *ls)
{
  if (ls == NULL)
    return;
  struct sp_error *e = NULL;
  sqldb_lock(ls->sql);
  if (flush_locked(ls, &e) < 0) {
    sp_err("log store lost pending lines at close", LS("path", ls->path),
           LI("lines", ls->active.n), LS("error", e->msg));
    sp_error_free(e);
  }
  sqldb_unlock(ls->sql);
  logstore_free(ls);
}

int64_t logstore_append(struct logstore *ls, const char *process_id, int64_t run, int stream,
                        const char *text, size_t len, int64_t ts_ms)
{
  if (ls == NULL || process_id == NULL || (stream != LOGSTORE_STDOUT && stream != LOGSTORE_STDERR) ||
      (text == NULL && len > 0)) {
    errno = EINVAL;
    return -1;
  }
  size_t name_len = strnlen(process_id, LOGSTORE_MAX_PROCESS_ID + 1);
  if (name_len == 0 || name_len > LOGSTORE_MAX_PROCESS_ID) {
    errno = EINVAL;
    return -1;
  }
  struct pend e = {.run = run, .ts = ts_ms, .stream = (uint8_t)stream};
  if (len > (size_t)ls->o.max_line_bytes) {
    len = (size_t)ls->o.max_line_bytes;
    e.truncated = true;
  }
  e.len = (uint32_t)len;

  pthread_mutex_lock(&ls->pend_mu);
  e.proc = proc_intern(ls, process_id, name_len);
  e.seq = ls->next_seq++;
  batch_push(&ls->active, &e, text);
  if (e.truncated)
    ls->truncated_lines++;
  enforce_hard_cap(ls);
  bool full = ls->active.n >= ls->flush_at_lines || ls->active.len >= ls->flush_at_bytes;
  pthread_mutex_unlock(&ls->pend_mu);

  if (full) {
    struct sp_error *err = NULL;
    if (logstore_flush(ls, &err) < 0) {
      sp_warn("log store flush failed, lines kept pending", LS("error", err->msg),
              LI("pending", logstore_pending(ls)));
      sp_error_free(err);
    }
  }
  return e.seq;
}

size_t logstore_pending(struct logstore *ls)
{
  pthread_mutex_lock(&ls->pend_mu);
  size_t n = ls->active.n + ls->inflight_n;
  pthread_mutex_unlock(&ls->pend_mu);
  return n;
}

bool logstore_batch_full(struct logstore *ls, double fraction)
{
  pthread_mutex_lock(&ls->pend_mu);
  bool full = (double)ls->active.n >= fraction * (double)ls->flush_at_lines ||
              (double)ls->active.len >= fraction * (double)ls->flush_at_bytes;
  pthread_mutex_unlock(&ls->pend_mu);
  return full;
}

int64_t logstore_last_committed_seq(struct logstore *ls)
{
  return atomic_load(&ls->last_seq);
}

int64_t logstore_wait(struct logstore *ls, int64_t after_seq, int64_t timeout_ms)
{
  struct timespec deadline;
  sp_deadline_after(&deadline, timeout_ms >= 0 ? timeout_ms : 0);
  pthread_mutex_lock(&ls->seq_mu);
  while (ls->last_seq <= after_seq) {
    if (timeout_ms < 0) {
      pthread_cond_wait(&ls->seq_cond, &ls->seq_mu);
    } else if (pthread_cond_timedwait(&ls->seq_cond, &ls->seq_mu, &deadline) == ETIMEDOUT) {
      break;
    }
  }
  int64_t seq = ls->last_seq;
  pthread_mutex_unlock(&ls->seq_mu);
  return seq;
}

/* ---- queries ---- */

struct query {
  struct logstore *ls;
  struct proc *p; /* of the last row */
  logstore_line_cb cb;
  void *ud;
};

static int query_row(void *ud, sqlite3_stmt *s)
{
  struct query *q = ud;
  int64_t pid = sqlite3_column_int64(s, 1);
  if (q->p == NULL || q->p->id != pid)
    q->p = proc_by_id(q->ls, pid);
  const char *text = sqldb_col_text(s, 6); /* BLOB -> exact bytes plus a NUL */
  struct log_line line = {
      .seq = sqlite3_column_int64(s, 0),
      .process_id = q->p ? q->p->name : "",
      .run = sqlite3_column_int64(s, 2),
      .stream = sqlite3_column_int(s, 3),
      .ts_ms = sqlite3_column_int64(s, 4),
      .truncated = (sqlite3_column_int(s, 5) & LINE_TRUNCATED) != 0,
      .text = text ? text : "",
      .len = (size_t)sqlite3_column_bytes(s, 6),
  };
  return q->cb(q->ud, &line);
}

int logstore_query(struct logstore *ls, const char *process_id, int64_t since_seq, int64_t tail,
                   int64_t limit, logstore_line_cb cb, void *ud, struct sp_error **err)
{
  sqldb_lock(ls->sql);
  struct proc *only = NULL;
  if (process_id && (only = proc_lookup(ls, process_id)) == NULL) {
    sqldb_unlock(ls->sql);
    return 0;
  }
  sqlite3_stmt *s = ls->st[tail > 0 ? (only ? ST_Q_PROC_TAIL : ST_Q_ALL_TAIL)
                                    : (only ? ST_Q_PROC : ST_Q_ALL)];
  sqlite3_bind_int64(s, 1, since_seq);
  if (only)
    sqlite3_bind_int64(s, 2, only->id);
  sqlite3_bind_int64(s, 3, limit > 0 ? limit : -1);
  if (tail > 0)
    sqlite3_bind_int64(s, 4, tail);
  struct query q = {ls, only, cb, ud};
  int ret = sqldb_each(ls->sql, s, query_row, &q, "query lines", err);
  sqldb_unlock(ls->sql);
  return ret;
}

static int clear_fn(struct logstore *ls, void *arg)
{
  struct proc *only = arg;
  int rc;
  if (only) {
    sqlite3_bind_int64(ls->st[ST_CLEAR_PROC], 1, only->id);
    rc = sqldb_step_reset(ls->st[ST_CLEAR_PROC]);
  } else {
    rc = sqldb_step_reset(ls->st[ST_CLEAR_ALL]);
  }
  if (rc != SQLITE_OK)
    return rc;
  for (size_t i = 0; i < ls->scratch_n; i++) {
    struct proc *p = ls->scratch[i];
    if (only == NULL || p == only)
      txn_touch(ls, p, -(p->lines + p->txn_lines), -(p->bytes + p->txn_bytes));
  }
  return SQLITE_OK;
}

int logstore_clear(struct logstore *ls, const char *process_id, struct sp_error **err)
{
  sqldb_lock(ls->sql);
  int ret = flush_locked(ls, err);
  struct proc *only = NULL;
  if (ret == 0 && process_id)
    only = proc_lookup(ls, process_id);
  if (ret == 0 && (process_id == NULL || only != NULL)) {
    collect_procs(ls, NULL);
    ret = run_txn(ls, clear_fn, only, "clear log lines", err);
  }
  sqldb_unlock(ls->sql);
  return ret;
}

struct errorstore *logstore_errors(struct logstore *ls) { return ls->es; }

int logstore_status(struct logstore *ls, struct logstore_status *st, struct sp_error **err)
{
  (void)err;
  memset(st, 0, sizeof *st);
  /* Not db_mu: see "Locking" at the top. */
  pthread_mutex_lock(&ls->pend_mu);
  st->lines = ls->total_lines;
  st->text_bytes = ls->total_bytes;
  st->rotated_lines = ls->rotated_lines;
  st->pending = (int64_t)(ls->active.n + ls->inflight_n);
  st->dropped_lines = ls->dropped_lines;
  st->truncated_lines = ls->truncated_lines;
  pthread_mutex_unlock(&ls->pend_mu);
  st->errors = errorstore_count(ls->es);
  st->write_failures = sqldb_txn_failures(ls->sql);
  cleanup_free char *wal = xasprintf("%s-wal", ls->path);
  st->db_bytes = file_size(ls->path) + file_size(wal);
  st->last_seq = logstore_last_committed_seq(ls);
  return 0;
}
