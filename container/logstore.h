/* The monitor's store for log lines: one SQLite file per instance (WAL,
 * synchronous=NORMAL: a committed flush survives kill -9), which also holds
 * the classified errors (errstore.h).
 *
 * Lines are buffered in memory by logstore_append() and committed in one
 * transaction per logstore_flush(); queries see committed lines only.  Every
 * line gets a sequence number, global across processes, strictly increasing
 * for the life of the database (also across restarts and clears), so a
 * follower can ask for "everything after seq N".  Gaps are possible (lines
 * dropped after repeated write failures, lines lost with a crash before their
 * flush).
 *
 * Retention is enforced: after each flush the oldest lines of a process over
 * its line or byte budget are deleted, then the oldest lines of any process
 * while the whole table is over max_total_bytes.
 *
 * Every function is thread-safe.  Appends only take a short lock on the
 * pending buffer, so a supervisor thread appending is not held up by HTTP
 * threads querying (unless its append triggers an auto-flush).  Query
 * callbacks run with the store locked: they must be quick and must not call
 * back into the store (except logstore_last_committed_seq and
 * logstore_pending). */
#ifndef SP_LOGSTORE_H
#define SP_LOGSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_error;
struct errorstore;

/* The longest process id accepted, in bytes. */
#define LOGSTORE_MAX_PROCESS_ID 128

enum logstore_stream { LOGSTORE_STDOUT = 1, LOGSTORE_STDERR = 2 };

/* Every field: 0 = the default. */
struct logstore_opts {
  int64_t max_lines_per_process; /* keep at most N newest lines per process; default 100000 */
  int64_t max_bytes_per_process; /* and at most this many text bytes per process; default 32 MiB */
  int64_t max_total_bytes;       /* text bytes of the whole log table; default 256 MiB;
                                    the oldest lines of any process go first */
  int64_t error_max_count;       /* distinct errors kept; default 1000 (oldest last_seen dropped) */
  int64_t error_max_age_ms;      /* errors not seen for this long are dropped; default 7 days */
  int64_t max_line_bytes;        /* a longer line is stored cut to this size and flagged
                                    truncated; default 64 KiB */
  int batch_max_lines;           /* append auto-flushes at this many pending lines; default 8192 */
  int64_t batch_max_bytes;       /* ... or at this many pending text bytes; default 8 MiB,
                                    at least max_line_bytes */
  int busy_timeout_ms;           /* SQLite busy timeout per attempt; default 5000 */
};

struct logstore;

/* Open (creating if missing) the database at path.  A database written by
 * an earlier run is reopened with all its committed data; sequence numbers
 * continue after the highest ever committed.  Retention is enforced at open
 * (lines within the per-flush rotation bound, see logstore_flush).
 * Errors: STORE_ERROR (500) with SQLite's message, STORE_VERSION (500) for
 * a database written by a newer schema. */
struct logstore *logstore_open(const char *path, const struct logstore_opts *opts,
                               struct sp_error **err);

/* Flush pending lines (a failure is logged with the number of lines lost)
 * and close.  Accepts NULL. */
void logstore_close(struct logstore *ls);

/* Buffer one line (not yet committed, not yet visible to queries).
 * process_id: 1..LOGSTORE_MAX_PROCESS_ID bytes; stream: 1 stdout, 2 stderr;
 * text: len exact bytes (NUL and invalid UTF-8 are kept), cut to
 * max_line_bytes and flagged truncated if longer.  Auto-flushes when the
 * batch is full; a failing auto-flush keeps the lines pending, and once more
 * than 4x batch_max_lines (or 4x batch_max_bytes) are pending the oldest
 * pending lines are dropped in chunks and counted (logstore_status).
 * Returns the line's sequence number (> 0), or -1 with errno = EINVAL for
 * invalid arguments. */
int64_t logstore_append(struct logstore *ls, const char *process_id, int64_t run,
                        int stream, const char *text, size_t len, int64_t ts_ms);

/* Commit all pending lines in ONE transaction, then enforce rotation and
 * retention.  A write that fails is retried a few times; if it still fails
 * the lines stay pending (for the next flush), write_failures is counted and
 * -1 is returned (STORE_FULL/507 on a full disk, STORE_BUSY/503 when the
 * database is locked, STORE_ERROR/500 otherwise).  Rotation runs in its own
 * transaction after the commit and deletes at most
 * max(65536, 4 * batch_max_lines) lines per flush; a larger backlog (limits
 * lowered between runs) is worked off by later flushes, even empty ones.
 * A failed rotation is logged and counted but does not fail the flush. */
int logstore_flush(struct logstore *ls, struct sp_error **err);

/* Lines appended but not yet committed (including a batch being written). */
size_t logstore_pending(struct logstore *ls);
/* True when the batch being filled holds at least `fraction` of what makes
 * logstore_append flush by itself (in lines or in bytes): a writer that
 * keeps below 1.0 keeps commits out of the appending thread. */
bool logstore_batch_full(struct logstore *ls, double fraction);

/* One line handed to a query callback.  The pointers are valid only during
 * the callback.  text[len] is a NUL byte, but text may contain NULs too. */
struct log_line {
  int64_t seq;
  const char *process_id;
  int64_t run;
  int stream;
  int64_t ts_ms;
  const char *text;
  size_t len;
  bool truncated;
};
/* Return nonzero to stop the query (not an error). */
typedef int (*logstore_line_cb)(void *ud, const struct log_line *line);

/* Committed lines with seq > since_seq, of one process (all when process_id
 * is NULL), in ascending seq order; when tail > 0 only the last `tail` of
 * those; at most `limit` of them (0 = no limit), counted from the oldest.
 * An unknown process has no lines (not an error). */
int logstore_query(struct logstore *ls, const char *process_id, int64_t since_seq,
                   int64_t tail, int64_t limit, logstore_line_cb cb, void *ud,
                   struct sp_error **err);

/* Delete the lines of one process (all when NULL).  Pending lines are
 * flushed first so they are cleared too.  Sequence numbers do not restart. */
int logstore_clear(struct logstore *ls, const char *process_id, struct sp_error **err);

/* The highest sequence number committed (0 if none ever). */
int64_t logstore_last_committed_seq(struct logstore *ls);

/* For followers: wait until a line with seq > after_seq is committed or
 * timeout_ms passes (< 0 = forever).  Returns the last committed seq.
 * The sequence is global: a follower of one process should wait on the
 * committed seq it has already searched, not on the seq of its own last line,
 * or the wait returns at once while other processes write:
 *
 *   int64_t seen = logstore_last_committed_seq(ls);  (before the query)
 *   logstore_query(ls, id, last_line_seq, 0, limit, cb, ud, &err);
 *   if (no line came) logstore_wait(ls, seen, 500); */
int64_t logstore_wait(struct logstore *ls, int64_t after_seq, int64_t timeout_ms);

struct logstore_status {
  int64_t lines;          /* committed lines stored */
  int64_t errors;         /* distinct errors stored */
  int64_t db_bytes;       /* database file plus its WAL, on disk */
  int64_t pending;        /* as logstore_pending */
  int64_t write_failures; /* failed write transactions (after retries) since open */
  int64_t rotated_lines;  /* lines deleted by rotation since open */
  /* additions */
  int64_t text_bytes;     /* text bytes of the committed lines */
  int64_t dropped_lines;  /* pending lines dropped after repeated write failures */
  int64_t truncated_lines;/* lines cut to max_line_bytes since open */
  int64_t last_seq;       /* as logstore_last_committed_seq */
};
/* Counters kept by the store, so this never waits for a flush, a commit or
 * a query in progress: lines, text_bytes, errors and rotated_lines as of
 * the last commit, db_bytes from stat() of the files. */
int logstore_status(struct logstore *ls, struct logstore_status *st, struct sp_error **err);

/* The error store kept in the same database, for errstore.c. */
struct errorstore *logstore_errors(struct logstore *ls);

#endif
