/* Unit tests for container/logstore.c against real database files. */
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "error.h"
#include "errstore.h"
#include "json.h"
#include "logstore.h"
#include "util.h"

static char dir[256];
static char dbpath[300];

static void setup(void)
{
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/test_logstore.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(dbpath, sizeof dbpath, "%s/monitor.db", dir);
}

static void teardown(void)
{
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

static struct logstore *open_store(const struct logstore_opts *o)
{
  struct sp_error *err = NULL;
  struct logstore *ls = logstore_open(dbpath, o, &err);
  ck_assert_msg(ls != NULL, "open: %s", err ? err->msg : "?");
  return ls;
}

static void flush_ok(struct logstore *ls)
{
  struct sp_error *err = NULL;
  ck_assert_msg(logstore_flush(ls, &err) == 0, "flush: %s", err ? err->msg : "?");
}

static int64_t add(struct logstore *ls, const char *pid, const char *text)
{
  int64_t seq = logstore_append(ls, pid, 1, LOGSTORE_STDOUT, text, strlen(text), 1000);
  ck_assert_int_gt(seq, 0);
  return seq;
}

/* ---- collecting query results ---- */

struct got_line {
  int64_t seq, run, ts;
  int stream;
  bool truncated;
  char *pid;
  char *text;
  size_t len;
};

struct got {
  struct got_line *v;
  size_t n, cap;
  int64_t bytes;
};

static int collect(void *ud, const struct log_line *l)
{
  struct got *g = ud;
  if (g->n == g->cap) {
    g->cap = g->cap ? 2 * g->cap : 64;
    g->v = xreallocarray(g->v, g->cap, sizeof *g->v);
  }
  ck_assert_int_eq(l->text[l->len], '\0');
  g->v[g->n++] = (struct got_line){l->seq, l->run, l->ts_ms, l->stream, l->truncated,
                                   xstrdup(l->process_id), xmemdup(l->text, l->len), l->len};
  g->bytes += (int64_t)l->len;
  return 0;
}

static void got_free(struct got *g)
{
  for (size_t i = 0; i < g->n; i++) {
    free(g->v[i].pid);
    free(g->v[i].text);
  }
  free(g->v);
  memset(g, 0, sizeof *g);
}

static struct got query(struct logstore *ls, const char *pid, int64_t since, int64_t tail,
                        int64_t limit)
{
  struct got g = {0};
  struct sp_error *err = NULL;
  int rc = logstore_query(ls, pid, since, tail, limit, collect, &g, &err);
  ck_assert_msg(rc == 0, "query: %s", err ? err->msg : "?");
  return g;
}

/* The store holds n lines of pid (NULL: of every process). */
static void expect_lines(struct logstore *ls, const char *pid, size_t n)
{
  struct got g = query(ls, pid, 0, 0, 0);
  ck_assert_uint_eq(g.n, n);
  got_free(&g);
}

static void status(struct logstore *ls, struct logstore_status *st)
{
  struct sp_error *err = NULL;
  ck_assert_int_eq(logstore_status(ls, st, &err), 0);
}

/* The store holds n lines of pid (NULL: of every process), sequence
 * numbers first to last. */
static void expect_span(struct logstore *ls, const char *pid, size_t n, int64_t first,
                        int64_t last)
{
  struct got g = query(ls, pid, 0, 0, 0);
  ck_assert_uint_eq(g.n, n);
  ck_assert_int_eq(g.v[0].seq, first);
  ck_assert_int_eq(g.v[n - 1].seq, last);
  got_free(&g);
}

/* The status counts `lines` lines kept and `rotated` rotated out. */
static void expect_kept(struct logstore *ls, int64_t lines, int64_t rotated)
{
  struct logstore_status st;
  status(ls, &st);
  ck_assert_int_eq(st.lines, lines);
  ck_assert_int_eq(st.rotated_lines, rotated);
}

/* The per-process counters the store keeps in `processes` match the lines
 * table (checked through a connection of our own). */
static void check_counters(void)
{
  sqlite3 *db = NULL;
  ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *s = NULL;
  ck_assert_int_eq(sqlite3_prepare_v2(db,
                                      "SELECT p.name, p.lines, p.bytes, "
                                      " (SELECT count(*) FROM lines l WHERE l.proc = p.id), "
                                      " (SELECT total(length(text)) FROM lines l "
                                      "  WHERE l.proc = p.id) FROM processes p",
                                      -1, &s, NULL),
                   SQLITE_OK);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    ck_assert_msg(sqlite3_column_int64(s, 1) == sqlite3_column_int64(s, 3) &&
                      sqlite3_column_int64(s, 2) == sqlite3_column_int64(s, 4),
                  "counters of %s: %lld lines %lld bytes, table: %lld lines %lld bytes",
                  sqlite3_column_text(s, 0), (long long)sqlite3_column_int64(s, 1),
                  (long long)sqlite3_column_int64(s, 2), (long long)sqlite3_column_int64(s, 3),
                  (long long)sqlite3_column_int64(s, 4));
  }
  ck_assert_int_eq(rc, SQLITE_DONE);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

/* Closes the store once its counters match its lines. */
static void close_counted(struct logstore *ls)
{
  check_counters();
  logstore_close(ls);
}

/* ---- lines ---- */

START_TEST(test_roundtrip)
{
  struct logstore *ls = open_store(NULL);
  static const char nul_text[] = "a\0b\0";          /* 4 bytes with NULs */
  static const char bad_utf8[] = "\xff\xfe\xc3(\x80"; /* invalid UTF-8 */
  int64_t s1 = logstore_append(ls, "web", 1, LOGSTORE_STDOUT, nul_text, 4, 111);
  int64_t s2 = logstore_append(ls, "api", 7, LOGSTORE_STDERR, bad_utf8, 5, 222);
  int64_t s3 = logstore_append(ls, "web", 2, LOGSTORE_STDERR, "", 0, 333);
  int64_t s4 = logstore_append(ls, "web", 2, LOGSTORE_STDOUT, "fourth", 6, 444);
  ck_assert_int_eq(s1, 1);
  ck_assert_int_eq(s2, 2);
  ck_assert_int_eq(s3, 3);
  ck_assert_int_eq(s4, 4);

  /* pending: not visible */
  ck_assert_uint_eq(logstore_pending(ls), 4);
  ck_assert_int_eq(logstore_last_committed_seq(ls), 0);
  expect_lines(ls, NULL, 0);

  flush_ok(ls);
  ck_assert_uint_eq(logstore_pending(ls), 0);
  ck_assert_int_eq(logstore_last_committed_seq(ls), 4);

  struct got g = query(ls, NULL, 0, 0, 0);
  ck_assert_uint_eq(g.n, 4);
  ck_assert_int_eq(g.v[0].seq, 1);
  ck_assert_str_eq(g.v[0].pid, "web");
  ck_assert_int_eq(g.v[0].run, 1);
  ck_assert_int_eq(g.v[0].stream, 1);
  ck_assert_int_eq(g.v[0].ts, 111);
  ck_assert_uint_eq(g.v[0].len, 4);
  ck_assert_mem_eq(g.v[0].text, nul_text, 4);
  ck_assert(!g.v[0].truncated);
  ck_assert_str_eq(g.v[1].pid, "api");
  ck_assert_int_eq(g.v[1].run, 7);
  ck_assert_int_eq(g.v[1].stream, 2);
  ck_assert_uint_eq(g.v[1].len, 5);
  ck_assert_mem_eq(g.v[1].text, bad_utf8, 5);
  ck_assert_uint_eq(g.v[2].len, 0);
  ck_assert_int_eq(g.v[2].ts, 333);
  ck_assert_str_eq(g.v[3].text, "fourth");
  got_free(&g);

  /* per-process filter, since, tail, limit */
  static const struct {
    const char *pid;
    int64_t since, tail, limit;
    size_t n;
    int64_t seq[3];
  } cuts[] = {
      {"web", 0, 0, 0, 3, {1, 3, 4}},
      {"api", 0, 0, 0, 1, {2}},
      {"nobody", 0, 0, 0, 0, {0}},
      {NULL, 2, 0, 0, 2, {3, 4}},
      {NULL, 0, 2, 0, 2, {3, 4}},
      {NULL, 0, 0, 3, 3, {1, 2, 3}},
      {NULL, 0, 3, 2, 2, {2, 3}}, /* last three (2, 3, 4), the first two of them */
      {"web", 1, 1, 0, 1, {4}},
      {"web", 4, 0, 0, 0, {0}},
  };
  for (size_t c = 0; c < SP_ARRAY_SIZE(cuts); c++) {
    g = query(ls, cuts[c].pid, cuts[c].since, cuts[c].tail, cuts[c].limit);
    ck_assert_msg(g.n == cuts[c].n, "cut %zu: %zu lines", c, g.n);
    for (size_t i = 0; i < g.n; i++)
      ck_assert_int_eq(g.v[i].seq, cuts[c].seq[i]);
    got_free(&g);
  }

  /* many lines keep their order across batches */
  for (int i = 0; i < 20000; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "n%d", i);
    add(ls, i % 2 ? "web" : "api", buf);
  }
  flush_ok(ls);
  g = query(ls, NULL, 4, 0, 0);
  ck_assert_uint_eq(g.n, 20000);
  for (size_t i = 0; i < g.n; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "n%zu", i);
    ck_assert_int_eq(g.v[i].seq, (int64_t)i + 5);
    ck_assert_str_eq(g.v[i].text, buf);
  }
  got_free(&g);

  /* clear one, then all; sequence numbers do not restart */
  struct sp_error *err = NULL;
  add(ls, "web", "pending before clear");
  ck_assert_int_eq(logstore_clear(ls, "web", &err), 0);
  expect_lines(ls, "web", 0);
  expect_lines(ls, "api", 10001);
  struct logstore_status st;
  status(ls, &st);
  ck_assert_int_eq(st.lines, 10001);
  ck_assert_int_eq(logstore_clear(ls, "nobody", &err), 0);
  ck_assert_int_eq(logstore_clear(ls, NULL, &err), 0);
  expect_lines(ls, NULL, 0);
  status(ls, &st);
  ck_assert_int_eq(st.lines, 0);
  ck_assert_int_eq(st.text_bytes, 0);
  ck_assert_int_eq(add(ls, "web", "after clear"), 20006);
  logstore_close(ls);
  check_counters();
}
END_TEST

START_TEST(test_truncate_and_invalid)
{
  struct logstore_opts o = {.max_line_bytes = 16};
  struct logstore *ls = open_store(&o);
  char line[40];
  memset(line, 'x', sizeof line);
  ck_assert_int_eq(logstore_append(ls, "p", 1, 1, line, sizeof line, 1), 1);
  ck_assert_int_eq(logstore_append(ls, "p", 1, 1, line, 16, 1), 2);

  errno = 0;
  ck_assert_int_eq(logstore_append(ls, "p", 1, 3, "x", 1, 1), -1);
  ck_assert_int_eq(errno, EINVAL);
  ck_assert_int_eq(logstore_append(ls, "", 1, 1, "x", 1, 1), -1);
  ck_assert_int_eq(logstore_append(ls, NULL, 1, 1, "x", 1, 1), -1);
  ck_assert_int_eq(logstore_append(ls, "p", 1, 1, NULL, 1, 1), -1);
  char long_id[LOGSTORE_MAX_PROCESS_ID + 2];
  memset(long_id, 'a', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = '\0';
  ck_assert_int_eq(logstore_append(ls, long_id, 1, 1, "x", 1, 1), -1);
  long_id[LOGSTORE_MAX_PROCESS_ID] = '\0';
  ck_assert_int_eq(logstore_append(ls, long_id, 1, 1, "x", 1, 1), 3);
  flush_ok(ls);

  struct got g = query(ls, "p", 0, 0, 0);
  ck_assert_uint_eq(g.n, 2);
  ck_assert_uint_eq(g.v[0].len, 16);
  ck_assert(g.v[0].truncated);
  ck_assert_uint_eq(g.v[1].len, 16);
  ck_assert(!g.v[1].truncated);
  got_free(&g);
  g = query(ls, long_id, 0, 0, 0);
  ck_assert_uint_eq(g.n, 1);
  ck_assert_str_eq(g.v[0].pid, long_id);
  got_free(&g);
  struct logstore_status st;
  status(ls, &st);
  ck_assert_int_eq(st.truncated_lines, 1);
  logstore_close(ls);
}
END_TEST

START_TEST(test_durability)
{
  enum { N = 30000 };
  struct logstore *ls = open_store(NULL);
  for (int i = 1; i <= N; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "line %d", i);
    ck_assert_int_eq(logstore_append(ls, i % 3 ? "a" : "b", i / 100, 1, buf, strlen(buf), i), i);
  }
  flush_ok(ls);
  logstore_close(ls);

  ls = open_store(NULL);
  ck_assert_int_eq(logstore_last_committed_seq(ls), N);
  struct logstore_status st;
  status(ls, &st);
  ck_assert_int_eq(st.lines, N);
  struct got g = query(ls, NULL, 0, 0, 0);
  ck_assert_uint_eq(g.n, N);
  for (int i = 1; i <= N; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "line %d", i);
    ck_assert_int_eq(g.v[i - 1].seq, i);
    ck_assert_str_eq(g.v[i - 1].text, buf);
    ck_assert_str_eq(g.v[i - 1].pid, i % 3 ? "a" : "b");
    ck_assert_int_eq(g.v[i - 1].run, i / 100);
    ck_assert_int_eq(g.v[i - 1].ts, i);
  }
  got_free(&g);
  ck_assert_int_eq(add(ls, "c", "next"), N + 1);

  /* close flushes; after a clear of everything the sequence still goes on */
  logstore_close(ls);
  ls = open_store(NULL);
  expect_lines(ls, "c", 1);
  struct sp_error *err = NULL;
  ck_assert_int_eq(logstore_clear(ls, NULL, &err), 0);
  logstore_close(ls);
  ls = open_store(NULL);
  ck_assert_int_eq(logstore_last_committed_seq(ls), N + 1);
  ck_assert_int_eq(add(ls, "a", "again"), N + 2);
  logstore_close(ls);
}
END_TEST

static void crash_child(int fd)
{
  struct sp_error *err = NULL;
  struct logstore *ls = logstore_open(dbpath, NULL, &err);
  if (ls == NULL)
    _exit(2);
  int64_t n = 0;
  for (int round = 0; round < 100000; round++) {
    for (int i = 0; i < 2000; i++) {
      char buf[96];
      n++;
      int len = snprintf(buf, sizeof buf, "crash line %lld of the flood, padded to look real",
                         (long long)n);
      if (logstore_append(ls, n % 2 ? "web" : "worker", 1, 1, buf, (size_t)len, n) != n)
        _exit(3);
    }
    if (logstore_flush(ls, &err) < 0)
      _exit(4);
    if (write(fd, &n, sizeof n) != sizeof n)
      _exit(5);
  }
  _exit(6); /* the parent should have killed us long before */
}

static int integrity_cb(void *ud, int ncol, char **vals, char **names)
{
  (void)names;
  if (ncol > 0 && vals[0])
    snprintf(ud, 64, "%s", vals[0]);
  return 0;
}

START_TEST(test_crash)
{
  srand((unsigned)getpid());
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    crash_child(fds[1]);
  }
  close(fds[1]);
  int64_t last = 0, v;
  int reports = 0;
  while (reports < 40 && read(fds[0], &v, sizeof v) == sizeof v) {
    last = v;
    reports++;
  }
  if (reports < 40) {
    int st = 0;
    waitpid(pid, &st, 0);
    ck_abort_msg("child stopped after %d reports, status %d", reports, st);
  }
  usleep((useconds_t)(rand() % 3000)); /* land anywhere in the next batch */
  kill(pid, SIGKILL);
  while (read(fds[0], &v, sizeof v) == sizeof v)
    last = v; /* reported before it died: flushed */
  close(fds[0]);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);

  sqlite3 *db = NULL;
  ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  char result[64] = "";
  ck_assert_int_eq(sqlite3_exec(db, "PRAGMA integrity_check", integrity_cb, result, NULL),
                   SQLITE_OK);
  ck_assert_str_eq(result, "ok");
  sqlite3_close(db);
  check_counters();

  struct logstore *ls = open_store(NULL);
  ck_assert_int_ge(logstore_last_committed_seq(ls), last);
  struct got g = query(ls, NULL, 0, 0, last);
  ck_assert_uint_eq(g.n, (size_t)last);
  for (int64_t i = 1; i <= last; i++) {
    char buf[96];
    snprintf(buf, sizeof buf, "crash line %lld of the flood, padded to look real", (long long)i);
    ck_assert_int_eq(g.v[i - 1].seq, i);
    ck_assert_str_eq(g.v[i - 1].text, buf);
  }
  got_free(&g);
  int64_t next = add(ls, "web", "after the crash");
  ck_assert_int_gt(next, logstore_last_committed_seq(ls));
  logstore_close(ls);
  printf("crash: %lld lines reported flushed before SIGKILL, all present\n", (long long)last);
}
END_TEST

/* ---- rotation ---- */

START_TEST(test_rotation_lines)
{
  struct logstore *ls = open_store(&(struct logstore_opts){.max_lines_per_process = 100});
  int64_t a_seqs[300];
  int na = 0;
  for (int i = 0; i < 280; i++) {
    if (i % 8 == 7)
      add(ls, "b", "bee");
    else
      a_seqs[na++] = add(ls, "a", "ay");
  }
  ck_assert_int_eq(na, 245);
  flush_ok(ls);
  expect_span(ls, "a", 100, a_seqs[145], a_seqs[244]);
  expect_lines(ls, "b", 35);
  expect_kept(ls, 135, 145);

  for (int i = 0; i < 30; i++)
    add(ls, "a", "ay");
  flush_ok(ls);
  expect_kept(ls, 135, 175);
  close_counted(ls);
}
END_TEST

START_TEST(test_rotation_bytes)
{
  struct logstore *ls = open_store(&(struct logstore_opts){.max_bytes_per_process = 1000});
  enum { N = 300 };
  int len[N];
  for (int i = 0; i < N; i++) {
    char buf[32];
    len[i] = 10 + i % 7;
    memset(buf, 'a' + i % 26, (size_t)len[i]);
    ck_assert_int_eq(logstore_append(ls, "p", 1, 1, buf, (size_t)len[i], i), 2 * i + 1);
    logstore_append(ls, "q", 1, 1, "q", 1, i); /* a small neighbour, never rotated */
  }
  flush_ok(ls);
  /* the longest suffix of p's lines within 1000 bytes */
  int first = N, sum = 0;
  while (first > 0 && sum + len[first - 1] <= 1000)
    sum += len[--first];
  struct got g = query(ls, "p", 0, 0, 0);
  ck_assert_uint_eq(g.n, (size_t)(N - first));
  ck_assert_int_eq(g.bytes, sum);
  ck_assert_int_eq(g.v[0].ts, first);
  got_free(&g);
  expect_lines(ls, "q", N);
  struct logstore_status st;
  status(ls, &st);
  ck_assert_int_eq(st.rotated_lines, first);
  ck_assert_int_eq(st.text_bytes, sum + N);
  close_counted(ls);
}
END_TEST

START_TEST(test_rotation_total)
{
  struct logstore *ls = open_store(&(struct logstore_opts){.max_total_bytes = 500});
  const char *procs[] = {"x", "y", "z"};
  for (int i = 0; i < 300; i++)
    add(ls, procs[i % 3], "0123456789");
  flush_ok(ls);
  expect_span(ls, NULL, 50, 251, 300);
  struct logstore_status st;
  status(ls, &st);
  ck_assert_int_eq(st.text_bytes, 500);
  expect_kept(ls, 50, 250);
  /* the per-process counters followed: y has 17 lines left */
  expect_lines(ls, "y", 17);
  /* one more line of x pushes out the oldest line overall */
  add(ls, "x", "abcdefghij");
  flush_ok(ls);
  expect_span(ls, NULL, 50, 252, 301);
  close_counted(ls);
}
END_TEST

START_TEST(test_rotation_at_reopen)
{
  struct logstore *ls = open_store(NULL);
  for (int i = 0; i < 300; i++)
    add(ls, i % 2 ? "a" : "b", "some text");
  logstore_close(ls);
  struct logstore_opts o = {.max_lines_per_process = 40};
  ls = open_store(&o);
  expect_span(ls, "a", 40, 222, 300);
  expect_kept(ls, 80, 220);
  close_counted(ls);
}
END_TEST

/* ---- write failures ---- */

START_TEST(test_write_failure_keeps_and_caps)
{
  struct logstore_opts o = {.batch_max_lines = 10, .busy_timeout_ms = 20};
  struct logstore *ls = open_store(&o);
  add(ls, "p", "before");
  flush_ok(ls);

  sqlite3 *blocker = NULL;
  ck_assert_int_eq(sqlite3_open(dbpath, &blocker), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

  int64_t seqs[100];
  for (int i = 0; i < 100; i++) {
    char buf[16];
    snprintf(buf, sizeof buf, "%d", i);
    seqs[i] = add(ls, "p", buf); /* auto-flushes fail, lines stay pending */
  }
  struct sp_error *err = NULL;
  ck_assert_int_eq(logstore_flush(ls, &err), -1);
  ck_assert_str_eq(err->code, "STORE_BUSY");
  ck_assert_int_eq(err->http_status, 503);
  sp_error_free(err);
  err = NULL;

  struct logstore_status st;
  status(ls, &st);
  ck_assert_int_ge(st.write_failures, 2);
  ck_assert_int_le(st.pending, 40);
  ck_assert_int_gt(st.dropped_lines, 0);
  ck_assert_int_eq(st.pending + st.dropped_lines, 100);
  int64_t pending = st.pending;

  ck_assert_int_eq(sqlite3_exec(blocker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(blocker);
  flush_ok(ls);
  /* the newest lines survived, the oldest pending ones were dropped */
  struct got g = query(ls, "p", seqs[0] - 1, 0, 0);
  ck_assert_uint_eq(g.n, (size_t)pending);
  for (size_t i = 0; i < g.n; i++)
    ck_assert_int_eq(g.v[i].seq, seqs[100 - pending + (int64_t)i]);
  got_free(&g);
  status(ls, &st);
  ck_assert_int_eq(st.pending, 0);
  ck_assert_int_eq(st.lines, pending + 1);
  close_counted(ls);
}
END_TEST

START_TEST(test_open_refuses)
{
  FILE *f = fopen(dbpath, "w");
  ck_assert_ptr_nonnull(f);
  for (int i = 0; i < 200; i++)
    fputs("this is not an SQLite database at all\n", f);
  fclose(f);
  struct sp_error *err = NULL;
  ck_assert_ptr_null(logstore_open(dbpath, NULL, &err));
  ck_assert_ptr_nonnull(err);
  ck_assert_str_eq(err->code, "STORE_ERROR");
  ck_assert_ptr_nonnull(strstr(err->msg, dbpath));
  sp_error_free(err);
  err = NULL;

  /* a database from a newer schema is refused, not rewritten */
  unlink(dbpath);
  logstore_close(open_store(NULL));
  sqlite3 *db = NULL;
  ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  ck_assert_ptr_null(logstore_open(dbpath, NULL, &err));
  ck_assert_str_eq(err->code, "STORE_VERSION");
  sp_error_free(err);
}
END_TEST

/* ---- errors ---- */

struct got_err {
  uint64_t hash;
  int64_t count, first, last, line;
  char *session, *raw, *file, *category;
};

struct got_errs {
  struct got_err v[64];
  size_t n;
};

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

static int collect_err(void *ud, const struct error_record *r)
{
  struct got_errs *g = ud;
  ck_assert_uint_lt(g->n, 64);
  g->v[g->n++] = (struct got_err){r->hash, r->count, r->first_seen_ms, r->last_seen_ms, r->line,
                                  dup_or_null(r->session_id), dup_or_null(r->raw),
                                  dup_or_null(r->file), dup_or_null(r->category)};
  return 0;
}

static void errs_free(struct got_errs *g)
{
  for (size_t i = 0; i < g->n; i++) {
    free(g->v[i].session);
    free(g->v[i].raw);
    free(g->v[i].file);
    free(g->v[i].category);
  }
  g->n = 0;
}

static struct got_errs *errs_query(struct logstore *ls, int64_t since, const char *session)
{
  static struct got_errs g;
  errs_free(&g);
  struct sp_error *err = NULL;
  ck_assert_int_eq(errorstore_query(logstore_errors(ls), since, session, collect_err, &g, &err), 0);
  return &g;
}

static void record(struct logstore *ls, uint64_t hash, const char *session, const char *category,
                   const char *raw, int64_t ts)
{
  struct error_input e = {.hash = hash, .category = category, .severity = "error",
                          .tool = "vite", .file = "src/App.tsx", .line = (int)(ts % 1000),
                          .column = 3, .message = "Unexpected token", .raw = raw,
                          .process_id = "web", .session_id = session};
  struct sp_error *err = NULL;
  ck_assert_msg(errorstore_record(logstore_errors(ls), &e, ts, &err) == 0, "record: %s", err ? err->msg : "?");
}

/* All stored errors, asserting there are n and that the status counts n. */
static struct got_errs *errors_stored(struct logstore *ls, size_t n)
{
  struct got_errs *g = errs_query(ls, 0, NULL);
  ck_assert_uint_eq(g->n, n);
  struct logstore_status st;
  status(ls, &st);
  ck_assert_int_eq(st.errors, (int64_t)n);
  return g;
}

/* All stored errors are those of hashes want[0..n), newest first. */
static void expect_hashes(struct logstore *ls, const uint64_t *want, size_t n)
{
  struct got_errs *g = errs_query(ls, 0, NULL);
  ck_assert_uint_eq(g->n, n);
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(g->v[i].hash == want[i], "error %zu: hash %llu, want %llu", i,
                  (unsigned long long)g->v[i].hash, (unsigned long long)want[i]);
}

START_TEST(test_errors_dedup)
{
  struct logstore *ls = open_store(NULL);
  int64_t now = sp_now_ms();
  uint64_t big = 0xfedcba9876543210ull; /* above INT64_MAX */
  record(ls, big, "s1", "syntax", "raw one", now - 100);
  record(ls, big, "s1", "syntax", "raw two", now);
  record(ls, big, "s2", "syntax", "raw three", now - 50);
  record(ls, 42, NULL, "runtime", NULL, now - 70);

  struct got_errs *g = errs_query(ls, 0, NULL);
  ck_assert_uint_eq(g->n, 3);
  /* newest first */
  ck_assert_str_eq(g->v[0].session, "s1");
  ck_assert(g->v[0].hash == big);
  ck_assert_int_eq(g->v[0].count, 2);
  ck_assert_int_eq(g->v[0].first, now - 100);
  ck_assert_int_eq(g->v[0].last, now);
  ck_assert_str_eq(g->v[0].raw, "raw two");
  ck_assert_int_eq(g->v[0].line, now % 1000);
  ck_assert_str_eq(g->v[1].session, "s2");
  ck_assert_int_eq(g->v[1].count, 1);
  ck_assert_ptr_null(g->v[2].session);
  ck_assert_ptr_null(g->v[2].raw);
  ck_assert(g->v[2].hash == 42);

  g = errs_query(ls, 0, "s1");
  ck_assert_uint_eq(g->n, 1);
  ck_assert_int_eq(g->v[0].count, 2);
  g = errs_query(ls, now - 60, NULL);
  ck_assert_uint_eq(g->n, 2);
  g = errs_query(ls, 0, "nobody");
  ck_assert_uint_eq(g->n, 0);

  /* durable across a reopen */
  logstore_close(ls);
  ls = open_store(NULL);
  errs_free(errors_stored(ls, 3));
  logstore_close(ls);
}
END_TEST

START_TEST(test_errors_retention)
{
  struct logstore_opts o = {.error_max_count = 3, .error_max_age_ms = 60000};
  struct logstore *ls = open_store(&o);
  int64_t now = sp_now_ms();
  for (int i = 1; i <= 5; i++)
    record(ls, (uint64_t)i, "s", "type", "r", now - 1000 + i);
  expect_hashes(ls, (const uint64_t[]){5, 4, 3}, 3);
  /* seeing an old one again keeps it, the least recently seen goes */
  record(ls, 3, "s", "type", "r", now);
  record(ls, 9, "s", "type", "r", now);
  expect_hashes(ls, (const uint64_t[]){9, 3, 5}, 3);

  /* by age: older than the limit is dropped at once */
  struct sp_error *err = NULL;
  ck_assert_int_eq(errorstore_clear(logstore_errors(ls), NULL, &err), 0);
  record(ls, 100, "s", "type", "r", now - 120000);
  record(ls, 101, "s", "type", "r", now - 30000);
  expect_hashes(ls, (const uint64_t[]){101}, 1);
  logstore_close(ls);

  /* and at open */
  o.error_max_age_ms = 10000;
  ls = open_store(&o);
  errs_free(errors_stored(ls, 0));
  logstore_close(ls);
}
END_TEST

START_TEST(test_errors_stats_and_clear)
{
  struct logstore *ls = open_store(NULL);
  int64_t now = sp_now_ms();
  record(ls, 1, "s1", "syntax", "r", now);
  record(ls, 1, "s1", "syntax", "r", now);
  record(ls, 2, "s1", "type", "r", now);
  record(ls, 3, "s2", "syntax", "r", now);
  struct error_input e = {.hash = 4, .message = "bare", .session_id = "s2"};
  struct sp_error *err = NULL;
  ck_assert_int_eq(errorstore_record(logstore_errors(ls), &e, now, &err), 0);

  cleanup_json cJSON *all = errorstore_stats(logstore_errors(ls), NULL, &err);
  ck_assert_ptr_nonnull(all);
  cleanup_free char *all_s = json_print(all);
  ck_assert_str_eq(all_s, "{\"total\":5,\"unique\":4,"
                          "\"byCategory\":{\"syntax\":3,\"type\":1,\"unknown\":1},"
                          "\"bySeverity\":{\"error\":4,\"unknown\":1},"
                          "\"byTool\":{\"unknown\":1,\"vite\":4}}");
  cleanup_json cJSON *s1 = errorstore_stats(logstore_errors(ls), "s1", &err);
  cleanup_free char *s1_s = json_print(s1);
  ck_assert_str_eq(s1_s, "{\"total\":3,\"unique\":2,\"byCategory\":{\"syntax\":2,\"type\":1},"
                         "\"bySeverity\":{\"error\":3},\"byTool\":{\"vite\":3}}");

  ck_assert_int_eq(errorstore_clear(logstore_errors(ls), "s1", &err), 0);
  struct got_errs *g = errors_stored(ls, 2);
  ck_assert_str_eq(g->v[0].session, "s2");
  cleanup_json cJSON *none = errorstore_stats(logstore_errors(ls), "s1", &err);
  cleanup_free char *none_s = json_print(none);
  ck_assert_str_eq(none_s, "{\"total\":0,\"unique\":0,\"byCategory\":{},\"bySeverity\":{},"
                           "\"byTool\":{}}");
  ck_assert_int_eq(errorstore_clear(logstore_errors(ls), NULL, &err), 0);
  g = errs_query(ls, 0, NULL);
  ck_assert_uint_eq(g->n, 0);
  errs_free(g);
  logstore_close(ls);
}
END_TEST

/* ---- threads ---- */

enum { THREAD_LINES = 40000 };
static atomic_int thread_faults;
static atomic_bool writer_done;

static void *writer_thread(void *arg)
{
  struct logstore *ls = arg;
  static const char *const procs[] = {"w0", "w1", "w2", "w3"};
  for (int i = 1; i <= THREAD_LINES; i++) {
    char buf[32];
    int len = snprintf(buf, sizeof buf, "t%d", i);
    if (logstore_append(ls, procs[i % 4], 1, 1, buf, (size_t)len, i) != i)
      atomic_fetch_add(&thread_faults, 1);
    if (i % 700 == 0) {
      struct sp_error *err = NULL;
      if (logstore_flush(ls, &err) < 0) {
        atomic_fetch_add(&thread_faults, 1);
        sp_error_free(err);
      }
    }
  }
  struct sp_error *err = NULL;
  if (logstore_flush(ls, &err) < 0) {
    atomic_fetch_add(&thread_faults, 1);
    sp_error_free(err);
  }
  atomic_store(&writer_done, true);
  return NULL;
}

struct follower {
  int64_t last;
};

static int follow_cb(void *ud, const struct log_line *l)
{
  struct follower *f = ud;
  char buf[32];
  snprintf(buf, sizeof buf, "t%lld", (long long)l->seq);
  if (l->seq <= f->last || l->len != strlen(buf) || memcmp(l->text, buf, l->len) != 0)
    atomic_fetch_add(&thread_faults, 1);
  f->last = l->seq;
  return 0;
}

static void *reader_thread(void *arg)
{
  struct logstore *ls = arg;
  struct follower f = {0};
  int64_t deadline = sp_monotonic_ms() + 60000;
  while (f.last < THREAD_LINES && sp_monotonic_ms() < deadline) {
    struct sp_error *err = NULL;
    if (logstore_query(ls, NULL, f.last, 0, 1000, follow_cb, &f, &err) < 0) {
      atomic_fetch_add(&thread_faults, 1);
      sp_error_free(err);
    }
    logstore_wait(ls, f.last, 100);
  }
  if (f.last != THREAD_LINES)
    atomic_fetch_add(&thread_faults, 1);
  return NULL;
}

static void *errors_thread(void *arg)
{
  struct logstore *ls = arg;
  uint64_t i = 0;
  while (!atomic_load(&writer_done)) {
    struct error_input e = {.hash = i++ % 7, .category = "runtime", .session_id = "t"};
    struct sp_error *err = NULL;
    struct logstore_status st;
    if (errorstore_record(logstore_errors(ls), &e, sp_now_ms(), &err) < 0 || logstore_status(ls, &st, &err) < 0) {
      atomic_fetch_add(&thread_faults, 1);
      sp_error_free(err);
    }
  }
  return NULL;
}

START_TEST(test_threads)
{
  struct logstore *ls = open_store(NULL);
  pthread_t w, r[3], e;
  ck_assert_int_eq(pthread_create(&w, NULL, writer_thread, ls), 0);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(pthread_create(&r[i], NULL, reader_thread, ls), 0);
  ck_assert_int_eq(pthread_create(&e, NULL, errors_thread, ls), 0);
  pthread_join(w, NULL);
  for (int i = 0; i < 3; i++)
    pthread_join(r[i], NULL);
  pthread_join(e, NULL);
  ck_assert_int_eq(atomic_load(&thread_faults), 0);
  struct logstore_status st;
  status(ls, &st);
  ck_assert_int_eq(st.lines, THREAD_LINES);
  ck_assert_int_eq(st.errors, 7);
  logstore_close(ls);
}
END_TEST

START_TEST(test_wait)
{
  struct logstore *ls = open_store(NULL);
  int64_t t0 = sp_monotonic_ms();
  ck_assert_int_eq(logstore_wait(ls, 0, 50), 0);
  ck_assert_int_ge(sp_monotonic_ms() - t0, 45);
  add(ls, "p", "x");
  ck_assert_int_eq(logstore_wait(ls, 0, 0), 0); /* pending is not committed */
  flush_ok(ls);
  ck_assert_int_eq(logstore_wait(ls, 0, 1000), 1);
  logstore_close(ls);
}
END_TEST

/* ---- status while a write waits ---- */

struct flush_arg {
  struct logstore *ls;
  atomic_bool started, done;
  int rc;
};

static void *flush_thread(void *arg)
{
  struct flush_arg *f = arg;
  struct sp_error *err = NULL;
  atomic_store(&f->started, true);
  f->rc = logstore_flush(f->ls, &err);
  sp_error_free(err);
  atomic_store(&f->done, true);
  return NULL;
}

/* A flush waiting for SQLite's write lock (held here by another connection,
 * as a long commit or checkpoint would) holds the store's own lock all the
 * while; status answers at once anyway, with the committed counts. */
START_TEST(test_status_during_flush)
{
  struct logstore_opts o = {.busy_timeout_ms = 2000};
  struct logstore *ls = open_store(&o);
  add(ls, "p", "committed");
  flush_ok(ls);
  for (int i = 0; i < 10; i++)
    add(ls, "p", "pending");

  sqlite3 *blocker = NULL;
  ck_assert_int_eq(sqlite3_open(dbpath, &blocker), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  struct flush_arg f = {.ls = ls};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, flush_thread, &f), 0);
  while (!atomic_load(&f.started))
    usleep(1000);
  usleep(100 * 1000); /* into its busy wait */

  int64_t t0 = sp_monotonic_ms();
  struct logstore_status st;
  status(ls, &st);
  int64_t took = sp_monotonic_ms() - t0;
  ck_assert_msg(!atomic_load(&f.done), "status waited for the flush");
  ck_assert_int_lt(took, 500);
  ck_assert_int_eq(st.lines, 1);
  ck_assert_int_eq(st.text_bytes, 9);
  ck_assert_int_eq(st.pending, 10);
  ck_assert_int_eq(st.write_failures, 0);

  ck_assert_int_eq(sqlite3_exec(blocker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(blocker);
  pthread_join(t, NULL);
  ck_assert_int_eq(f.rc, 0);
  status(ls, &st);
  ck_assert_int_eq(st.lines, 11);
  ck_assert_int_eq(st.text_bytes, 9 + 10 * 7);
  ck_assert_int_eq(st.pending, 0);
  ck_assert_int_eq(st.last_seq, 11);
  logstore_close(ls);
}
END_TEST

/* ---- speed (a figure, not a pass/fail test) ---- */

static double ingest(const struct logstore_opts *o, int64_t n, struct logstore_status *st)
{
  struct logstore *ls = open_store(o);
  static const char *const procs[] = {"web", "api", "worker", "proc_3"};
  char line[128];
  int64_t t0 = sp_monotonic_us();
  for (int64_t i = 0; i < n; i++) {
    int len = snprintf(line, sizeof line,
                       "2025-01-02T03:04:05.678Z GET /api/items/%08lld 200 in 12ms (cache miss)  ",
                       (long long)i);
    logstore_append(ls, procs[i & 3], 1, LOGSTORE_STDOUT, line, (size_t)len, 1700000000000 + i);
  }
  flush_ok(ls);
  int64_t t1 = sp_monotonic_us();
  status(ls, st);
  logstore_close(ls);
  return (double)n * 1e6 / (double)(t1 - t0);
}

START_TEST(test_speed)
{
  enum { N = 1000000 };
  struct logstore_status st;
  struct logstore_opts big = {.max_lines_per_process = N, .max_total_bytes = 1LL << 30};
  double rate = ingest(&big, N, &st);
  ck_assert_int_eq(st.lines, N);
  ck_assert_int_eq(st.rotated_lines, 0);
  printf("logstore speed: %d lines of 80 bytes, 4 processes, no rotation: %.0f lines/s\n", N,
         rate);
  const char *suffixes[] = {"", "-wal", "-shm"};
  for (size_t i = 0; i < SP_ARRAY_SIZE(suffixes); i++) {
    char p[400];
    snprintf(p, sizeof p, "%s%s", dbpath, suffixes[i]);
    unlink(p);
  }
  rate = ingest(NULL, N, &st);
  ck_assert_int_eq(st.lines, 400000);
  ck_assert_int_eq(st.rotated_lines, 600000);
  printf("logstore speed: %d lines of 80 bytes, 4 processes, default rotation (100000 lines "
         "each): %.0f lines/s, database %.1f MiB\n",
         N, rate, (double)st.db_bytes / (1 << 20));
  fflush(stdout);
}
END_TEST

/* Each test case with a generous timeout: they also run under ASan/UBSan. */
#define LOGSTORE_TCASE(name, ...)                                              \
  check_add_tcase(s, name, 120, setup, teardown, CHECK_TESTS(__VA_ARGS__))

static Suite *logstore_suite(void)
{
  Suite *s = suite_create("logstore");
  LOGSTORE_TCASE("lines", test_roundtrip, test_truncate_and_invalid, test_durability,
                 test_open_refuses);
  LOGSTORE_TCASE("crash", test_crash);
  LOGSTORE_TCASE("rotation", test_rotation_lines, test_rotation_bytes, test_rotation_total,
                 test_rotation_at_reopen);
  LOGSTORE_TCASE("failures", test_write_failure_keeps_and_caps);
  LOGSTORE_TCASE("errors", test_errors_dedup, test_errors_retention,
                 test_errors_stats_and_clear);
  LOGSTORE_TCASE("threads", test_threads, test_wait, test_status_during_flush);
  LOGSTORE_TCASE("speed", test_speed);
  return s;
}

CHECK_MAIN(logstore_suite)
