/* bench: timing drivers for the monitor's benchmarks (see bench/run).
 *
 * It speaks raw HTTP/1.1 over the monitor's unix socket on one keep-alive
 * connection, so a measured round trip is the monitor's work plus two
 * socket hops and nothing of a client library.  Every subcommand prints its
 * results as "key value" lines on stdout; bench/run formats them.
 *
 *   bench exec    SOCK ITER WARMUP
 *   bench files   SOCK NFILES SIZE REFDIR
 *   bench archive SOCK TARFILE DIR REFDIR RUNS
 *   bench mexec   ADDR TOKEN SANDBOX ITER WARMUP [MONSOCK]   (through sandpitd)
 *   bench spawnloop N WARMUP ARGV...                 (e.g. docker exec C true)
 *   bench conc    TARGETS NEXECS                     (concurrent clients)
 *
 * ADDR is HOST:PORT (TCP, loopback here) or a unix socket path.
 * Built by bench/run with: cc -O2 -pthread -o bench/out/bench bench/bench.c
 * Only libc (with pthreads). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static double now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* ---- growable buffer ---- */

struct buf {
  char *p;
  size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t extra)
{
  if (b->len + extra + 1 <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + extra + 1)
    cap *= 2;
  b->p = realloc(b->p, cap);
  if (b->p == NULL)
    die("out of memory");
  b->cap = cap;
}

static void buf_add(struct buf *b, const void *p, size_t n)
{
  buf_reserve(b, n);
  memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_printf(struct buf *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  buf_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

static void buf_consume(struct buf *b, size_t n)
{
  memmove(b->p, b->p + n, b->len - n);
  b->len -= n;
  if (b->p)
    b->p[b->len] = '\0';
}

/* ---- HTTP/1.1 over a unix socket, keep-alive ---- */

struct conn {
  const char *path; /* a unix socket path, or HOST:PORT for TCP */
  int fd;
  struct buf in;
  struct buf head; /* the request head being built (per connection: threads) */
  int reconnects;
  const char *host;  /* Host header; "monitor" when NULL */
  const char *auth;  /* bearer token, or NULL */
  const char *extra; /* more header lines, each ending in \r\n, or NULL */
};

struct resp {
  int status;
  bool close;
  struct buf body;
};

/* Connect to c->path: a unix socket when it starts with '/', else
 * HOST:PORT over TCP (loopback in these benchmarks), with TCP_NODELAY. */
static bool conn_try_open(struct conn *c)
{
  c->in.len = 0;
  struct sockaddr_storage ss = {0};
  socklen_t len;
  if (c->path[0] == '/') {
    struct sockaddr_un *su = (struct sockaddr_un *)&ss;
    su->sun_family = AF_UNIX;
    if (strlen(c->path) >= sizeof su->sun_path)
      die("socket path too long: %s", c->path);
    strcpy(su->sun_path, c->path);
    len = sizeof *su;
  } else {
    char host[256];
    const char *colon = strrchr(c->path, ':');
    if (colon == NULL || (size_t)(colon - c->path) >= sizeof host)
      die("bad address %s (HOST:PORT or /unix/socket)", c->path);
    memcpy(host, c->path, (size_t)(colon - c->path));
    host[colon - c->path] = '\0';
    struct sockaddr_in *si = (struct sockaddr_in *)&ss;
    si->sin_family = AF_INET;
    si->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &si->sin_addr) != 1)
      die("bad IPv4 address %s", host);
    len = sizeof *si;
  }
  c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    return false;
  if (ss.ss_family == AF_INET) {
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (connect(c->fd, (struct sockaddr *)&ss, len) < 0) {
    int e = errno;
    close(c->fd);
    c->fd = -1;
    errno = e;
    return false;
  }
  return true;
}

static void conn_close(struct conn *c)
{
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}

/* Write everything; false when the peer closed (it may have answered early). */
static bool write_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    p += w;
    n -= (size_t)w;
  }
  return true;
}

/* Read more into c->in; false at EOF. */
static bool fill(struct conn *c)
{
  buf_reserve(&c->in, 65536);
  for (;;) {
    ssize_t r = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) /* ECONNRESET and the like: the caller reconnects or counts it */
      return false;
    if (r == 0)
      return false;
    c->in.len += (size_t)r;
    c->in.p[c->in.len] = '\0';
    return true;
  }
}

static const char *header_value(const char *hdrs, const char *end, const char *name)
{
  size_t nl = strlen(name);
  const char *p = strstr(hdrs, "\r\n");
  while (p && p < end) {
    p += 2;
    if ((size_t)(end - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      p += nl + 1;
      while (*p == ' ' || *p == '\t')
        p++;
      return p;
    }
    p = strstr(p, "\r\n");
  }
  return NULL;
}

static bool read_response(struct conn *c, struct resp *r)
{
  char *hend;
  while ((hend = c->in.len ? strstr(c->in.p, "\r\n\r\n") : NULL) == NULL)
    if (!fill(c))
      return false;
  r->body.len = 0;
  r->close = false;
  if (sscanf(c->in.p, "HTTP/1.%*d %d", &r->status) != 1)
    die("bad status line: %.60s", c->in.p);
  const char *cl = header_value(c->in.p, hend, "Content-Length");
  const char *te = header_value(c->in.p, hend, "Transfer-Encoding");
  const char *cn = header_value(c->in.p, hend, "Connection");
  if (cn && strncasecmp(cn, "close", 5) == 0)
    r->close = true;
  bool chunked = te && strncasecmp(te, "chunked", 7) == 0;
  long long len = cl ? atoll(cl) : -1;
  buf_consume(&c->in, (size_t)(hend + 4 - c->in.p));
  if (chunked) {
    for (;;) {
      char *eol;
      while ((eol = c->in.len ? strstr(c->in.p, "\r\n") : NULL) == NULL)
        if (!fill(c))
          return false;
      size_t n = strtoul(c->in.p, NULL, 16);
      buf_consume(&c->in, (size_t)(eol + 2 - c->in.p));
      while (c->in.len < n + 2)
        if (!fill(c))
          return false;
      buf_add(&r->body, c->in.p, n);
      buf_consume(&c->in, n + 2);
      if (n == 0)
        break; /* no trailers from our server */
    }
  } else if (len >= 0) {
    while (c->in.len < (size_t)len)
      if (!fill(c))
        return false;
    buf_add(&r->body, c->in.p, (size_t)len);
    buf_consume(&c->in, (size_t)len);
  } else {
    while (fill(c))
      ;
    buf_add(&r->body, c->in.p, c->in.len);
    c->in.len = 0;
    r->close = true;
  }
  if (r->body.p == NULL)
    buf_add(&r->body, "", 0);
  return true;
}

/* One request on the keep-alive connection; reconnects once if the server
 * had closed it.  False when there was no answer even then. */
static bool http_try(struct conn *c, const char *method, const char *target,
                     const char *ctype, const void *body, size_t blen, struct resp *r)
{
  struct buf *hb = &c->head;
#define head (*hb)
  for (int attempt = 0;; attempt++) {
    if (c->fd < 0 && !conn_try_open(c))
      return false;
    head.len = 0;
    buf_printf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target,
               c->host ? c->host : "monitor");
    if (c->auth)
      buf_printf(&head, "Authorization: Bearer %s\r\n", c->auth);
    if (c->extra)
      buf_printf(&head, "%s", c->extra);
    if (ctype)
      buf_printf(&head, "Content-Type: %s\r\n", ctype);
    if (body || strcmp(method, "GET") != 0)
      buf_printf(&head, "Content-Length: %zu\r\n", blen);
    buf_add(&head, "\r\n", 2);
    bool ok;
    if (blen > 0 && blen < 65536) { /* one write: no Nagle-style split */
      buf_add(&head, body, blen);
      ok = write_all(c->fd, head.p, head.len);
    } else {
      ok = write_all(c->fd, head.p, head.len) && write_all(c->fd, body, blen);
    }
    /* Even a failed write may have an early answer (404, 413) waiting. */
    if (read_response(c, r)) {
      if (r->close)
        conn_close(c);
      return true;
    }
    (void)ok;
    conn_close(c);
    c->reconnects++;
    if (attempt >= 1)
      return false;
  }
#undef head
}

static void http_do(struct conn *c, const char *method, const char *target,
                    const char *ctype, const void *body, size_t blen, struct resp *r)
{
  if (!http_try(c, method, target, ctype, body, blen, r))
    die("%s %s: connection closed without a response", method, target);
}

/* A 404 whose code is NOT_FOUND (the router's "no route for"), as opposed to
 * FILE_NOT_FOUND from a route that exists. */
static bool no_route(const struct resp *r)
{
  return r->status == 404 && strstr(r->body.p, "\"NOT_FOUND\"") != NULL;
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, size_t n, double p)
{
  size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
  if (k < 1)
    k = 1;
  if (k > n)
    k = n;
  return v[k - 1];
}

/* With BENCH_RAW in the environment, also "NAME.raw_us v v v ..." (in the
 * order measured), for a caller that merges several runs. */
static void report(const char *name, double *v, size_t n)
{
  if (getenv("BENCH_RAW")) {
    printf("%s.raw_us", name);
    for (size_t i = 0; i < n; i++)
      printf(" %.1f", v[i]);
    printf("\n");
  }
  qsort(v, n, sizeof *v, cmp_double);
  double sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += v[i];
  printf("%s.n %zu\n", name, n);
  printf("%s.min_us %.1f\n", name, v[0]);
  printf("%s.p50_us %.1f\n", name, pct(v, n, 50));
  printf("%s.p90_us %.1f\n", name, pct(v, n, 90));
  printf("%s.p99_us %.1f\n", name, pct(v, n, 99));
  printf("%s.max_us %.1f\n", name, v[n - 1]);
  printf("%s.mean_us %.1f\n", name, sum / (double)n);
}

/* ---- exec round trip ---- */

static double spawn_wait_fa(const char *path, char *const argv[],
                            const posix_spawn_file_actions_t *fa)
{
  double t0 = now_us();
  pid_t pid;
  int rc = posix_spawn(&pid, path, fa, NULL, argv, environ);
  if (rc != 0)
    die("posix_spawn %s: %s", argv[0], strerror(rc));
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      die("waitpid: %s", strerror(errno));
  double t1 = now_us();
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    die("%s failed", argv[0]);
  return t1 - t0;
}

static double spawn_wait(char *const argv[]) { return spawn_wait_fa(argv[0], argv, NULL); }

/* The shell wrapper the monitor runs every command in, copied from
 * container/exec.c (keep in step): spawning it bare shows how much of an
 * exec round trip is the wrapper's own work (its trap runs `env -0`, one
 * more fork and exec) and how much is the monitor's. */
static const char monitor_wrapper[] =
    "__sp_cmd=$1; shift; "
    "trap '__sp_rc=$?; { pwd; printf \"\\0\"; env -0; printf \"\\0\"; } >&3 2>/dev/null; "
    "exit $__sp_rc' EXIT; "
    "eval \"$__sp_cmd\"";

static double exec_once(struct conn *c, const char *body, struct resp *r)
{
  double t0 = now_us();
  http_do(c, "POST", "/api/execute", "application/json", body, strlen(body), r);
  double t1 = now_us();
  if (r->status != 200 || strstr(r->body.p, "\"exitCode\":0") == NULL)
    die("POST /api/execute %s -> %d %.300s", body, r->status, r->body.p);
  return t1 - t0;
}

static int cmd_exec(int argc, char **argv)
{
  if (argc != 5)
    die("usage: bench exec SOCK ITER WARMUP");
  struct conn c = {.path = argv[2], .fd = -1};
  size_t iter = strtoul(argv[3], NULL, 10), warm = strtoul(argv[4], NULL, 10);
  char *true_argv[] = {"/bin/true", NULL};
  char *bash_argv[] = {"/bin/bash", "-c", "true", NULL};
  char *wrap_argv[] = {"sh", "-c", (char *)monitor_wrapper, "sh", "true", NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 3, "/dev/null", O_WRONLY, 0);
  const char *body_builtin = "{\"command\":\"true\"}";
  const char *body_external = "{\"command\":\"/bin/true\"}";
  struct resp r = {0};
  double *spawn_true = calloc(iter, sizeof(double));
  double *spawn_bash = calloc(iter, sizeof(double));
  double *mon_true = calloc(iter, sizeof(double));
  double *mon_bin_true = calloc(iter, sizeof(double));
  double *spawn_wrap = calloc(iter, sizeof(double));
  if (!spawn_true || !spawn_bash || !mon_true || !mon_bin_true || !spawn_wrap)
    die("out of memory");
  for (size_t i = 0; i < warm; i++) {
    spawn_wait(true_argv);
    spawn_wait(bash_argv);
    spawn_wait_fa("/bin/bash", wrap_argv, &fa);
    exec_once(&c, body_builtin, &r);
    exec_once(&c, body_external, &r);
  }
  /* Interleaved, so drift on the machine touches all four alike. */
  double t0 = now_us();
  for (size_t i = 0; i < iter; i++) {
    spawn_true[i] = spawn_wait(true_argv);
    spawn_bash[i] = spawn_wait(bash_argv);
    spawn_wrap[i] = spawn_wait_fa("/bin/bash", wrap_argv, &fa);
    mon_true[i] = exec_once(&c, body_builtin, &r);
    mon_bin_true[i] = exec_once(&c, body_external, &r);
  }
  double t1 = now_us();
  printf("exec.iterations %zu\nexec.warmup %zu\nexec.seconds %.3f\nexec.reconnects %d\n", iter,
         warm, (t1 - t0) / 1e6, c.reconnects);
  report("exec.spawn_true", spawn_true, iter);
  report("exec.spawn_bash", spawn_bash, iter);
  report("exec.spawn_wrapper", spawn_wrap, iter);
  report("exec.monitor_true", mon_true, iter);
  report("exec.monitor_bin_true", mon_bin_true, iter);
  conn_close(&c);
  return 0;
}

/* ---- small files ---- */

/* Text for file i: SIZE bytes of source-like lines that need no JSON escape
 * besides \n, so the JSON form can be matched in the read answer. */
static void file_text(size_t i, size_t size, struct buf *raw, struct buf *json)
{
  raw->len = 0;
  json->len = 0;
  size_t line = 0;
  while (raw->len < size) {
    char l[96];
    int n = snprintf(l, sizeof l, "export const v%zu_%zu = compute(%zu, %zu); // file %zu line %zu\n",
                     i, line, i * 7 + line, line * 13, i, line);
    size_t take = (size_t)n;
    if (raw->len + take > size)
      take = size - raw->len;
    buf_add(raw, l, take);
    for (size_t k = 0; k < take; k++) {
      if (l[k] == '\n')
        buf_add(json, "\\n", 2);
      else
        buf_add(json, &l[k], 1);
    }
    line++;
  }
}

static int cmd_files(int argc, char **argv)
{
  if (argc != 6)
    die("usage: bench files SOCK NFILES SIZE REFDIR");
  struct conn c = {.path = argv[2], .fd = -1};
  size_t nfiles = strtoul(argv[3], NULL, 10), size = strtoul(argv[4], NULL, 10);
  const char *refdir = argv[5];
  struct resp r = {0};
  struct buf raw = {0}, json = {0}, body = {0};
  double *wlat = calloc(nfiles, sizeof(double)), *rlat = calloc(nfiles, sizeof(double));
  printf("files.n %zu\nfiles.size %zu\n", nfiles, size);

  /* Reference: the same files written and read with open/write/close and
   * open/read/close, no server in between. */
  char path[4096];
  double t0 = now_us();
  for (size_t i = 0; i < nfiles; i++) {
    file_text(i, size, &raw, &json);
    snprintf(path, sizeof path, "%s/f%04zu.ts", refdir, i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || !write_all(fd, raw.p, raw.len) || close(fd) < 0)
      die("write %s: %s", path, strerror(errno));
  }
  double t1 = now_us();
  char rbuf[1 << 16];
  for (size_t i = 0; i < nfiles; i++) {
    snprintf(path, sizeof path, "%s/f%04zu.ts", refdir, i);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      die("open %s: %s", path, strerror(errno));
    while (read(fd, rbuf, sizeof rbuf) > 0)
      ;
    close(fd);
  }
  double t2 = now_us();
  printf("files.ref_write_s %.6f\nfiles.ref_read_s %.6f\n", (t1 - t0) / 1e6, (t2 - t1) / 1e6);

  /* The contract's write creates missing parents; ours might not, so make
   * the directory first (an answer of any kind is fine here). */
  const char *mk = "{\"path\":\"bench-files\",\"recursive\":true}";
  http_do(&c, "POST", "/api/mkdir", "application/json", mk, strlen(mk), &r);

  /* Probe: does the route exist yet? */
  const char *probe = "{\"path\":\"bench-files/probe.txt\",\"content\":\"probe\\n\"}";
  http_do(&c, "POST", "/api/write", "application/json", probe, strlen(probe), &r);
  if (no_route(&r)) {
    printf("files.write_available 0\n");
  } else if (r.status != 200) {
    printf("files.write_available 1\nfiles.write_error %d %.200s\n", r.status, r.body.p);
  } else {
    printf("files.write_available 1\n");
    size_t failed = 0;
    t0 = now_us();
    for (size_t i = 0; i < nfiles; i++) {
      file_text(i, size, &raw, &json);
      body.len = 0;
      buf_printf(&body, "{\"path\":\"bench-files/f%04zu.ts\",\"content\":\"", i);
      buf_add(&body, json.p, json.len);
      buf_add(&body, "\"}", 2);
      double a = now_us();
      http_do(&c, "POST", "/api/write", "application/json", body.p, body.len, &r);
      wlat[i] = now_us() - a;
      if (r.status != 200 && failed++ == 0)
        fprintf(stderr, "bench: write f%04zu -> %d %.200s\n", i, r.status, r.body.p);
    }
    t1 = now_us();
    printf("files.write_s %.6f\nfiles.write_failed %zu\n", (t1 - t0) / 1e6, failed);
    report("files.write", wlat, nfiles);
  }

  const char *rprobe = "{\"path\":\"bench-files/probe.txt\"}";
  http_do(&c, "POST", "/api/read", "application/json", rprobe, strlen(rprobe), &r);
  if (no_route(&r)) {
    printf("files.read_available 0\n");
  } else if (r.status != 200) {
    printf("files.read_available 1\nfiles.read_error %d %.200s\n", r.status, r.body.p);
  } else {
    printf("files.read_available 1\n");
    size_t failed = 0, mismatched = 0;
    t0 = now_us();
    for (size_t i = 0; i < nfiles; i++) {
      body.len = 0;
      buf_printf(&body, "{\"path\":\"bench-files/f%04zu.ts\"}", i);
      double a = now_us();
      http_do(&c, "POST", "/api/read", "application/json", body.p, body.len, &r);
      rlat[i] = now_us() - a;
      if (r.status != 200) {
        if (failed++ == 0)
          fprintf(stderr, "bench: read f%04zu -> %d %.200s\n", i, r.status, r.body.p);
        continue;
      }
      /* Checked outside the timed span would be fairer, but strstr on 1 KB
       * is a few hundred nanoseconds. */
      file_text(i, size, &raw, &json);
      if (strstr(r.body.p, json.p) == NULL && mismatched++ == 0)
        fprintf(stderr, "bench: read f%04zu: content differs: %.200s\n", i, r.body.p);
    }
    t1 = now_us();
    printf("files.read_s %.6f\nfiles.read_failed %zu\nfiles.read_mismatched %zu\n",
           (t1 - t0) / 1e6, failed, mismatched);
    report("files.read", rlat, nfiles);
  }
  conn_close(&c);
  return 0;
}

/* ---- tar upload ---- */

static int cmd_archive(int argc, char **argv)
{
  if (argc != 7)
    die("usage: bench archive SOCK TARFILE DIR REFDIR RUNS");
  struct conn c = {.path = argv[2], .fd = -1};
  const char *tarfile = argv[3], *dir = argv[4], *refdir = argv[5];
  int runs = atoi(argv[6]);
  if (runs < 1 || runs > 20)
    die("RUNS must be 1..20");
  struct resp r = {0};
  int fd = open(tarfile, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0)
    die("%s: %s", tarfile, strerror(errno));
  size_t size = (size_t)st.st_size;
  char *tar = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  if (tar == MAP_FAILED)
    die("mmap %s: %s", tarfile, strerror(errno));
  close(fd);
  printf("archive.bytes %zu\narchive.runs %d\n", size, runs);

  /* Probe with an empty body, so a missing route does not cost 100 MB. */
  char target[4200], sub[4200];
  snprintf(target, sizeof target, "/api/archive?path=%s-probe", dir);
  http_do(&c, "PUT", target, "application/x-tar", "", 0, &r);
  bool available = !no_route(&r);
  printf("archive.available %d\n", available);

  /* Each run extracts into a fresh directory: GNU tar from the page cache
   * (the reference), then the upload, alternating. */
  double ref[20], up[20];
  int failed = 0;
  for (int i = 0; i < runs; i++) {
    snprintf(sub, sizeof sub, "%s/%d", refdir, i + 1);
    if (mkdir(sub, 0755) < 0)
      die("mkdir %s: %s", sub, strerror(errno));
    char *tar_argv[] = {"/bin/tar", "-xf", (char *)tarfile, "-C", sub, NULL};
    ref[i] = spawn_wait(tar_argv) / 1e6;
    if (!available)
      continue;
    char mk[4300];
    snprintf(mk, sizeof mk, "{\"path\":\"%s-%d\",\"recursive\":true}", dir, i + 1);
    http_do(&c, "POST", "/api/mkdir", "application/json", mk, strlen(mk), &r);
    snprintf(target, sizeof target, "/api/archive?path=%s-%d", dir, i + 1);
    double t0 = now_us();
    http_do(&c, "PUT", target, "application/x-tar", tar, size, &r);
    up[i] = (now_us() - t0) / 1e6;
    if (r.status != 200) {
      if (failed++ == 0)
        printf("archive.status %d\narchive.error %.300s\n", r.status, r.body.p);
    }
  }
  printf("archive.ref_tar_s");
  for (int i = 0; i < runs; i++)
    printf(" %.6f", ref[i]);
  printf("\n");
  if (available) {
    printf("archive.failed %d\narchive.upload_s", failed);
    for (int i = 0; i < runs; i++)
      printf(" %.6f", up[i]);
    printf("\n");
  }
  conn_close(&c);
  return 0;
}

/* ---- through sandpitd (TCP) ---- */

/* bench mexec ADDR TOKEN SANDBOX ITER WARMUP [MONSOCK]
 * Exec round trip of `true` through sandpitd's forwarding route on one
 * keep-alive TCP connection; with MONSOCK, interleaved with the same request
 * straight to the instance's monitor on its unix socket (the same sandbox,
 * named by X-Sandpit-Sandbox as sandpitd names it). */
static int cmd_mexec(int argc, char **argv)
{
  if (argc != 7 && argc != 8)
    die("usage: bench mexec ADDR TOKEN SANDBOX ITER WARMUP [MONSOCK]");
  const char *sandbox = argv[4];
  size_t iter = strtoul(argv[5], NULL, 10), warm = strtoul(argv[6], NULL, 10);
  struct conn m = {.path = argv[2], .fd = -1, .host = "localhost", .auth = argv[3]};
  char extra[512];
  snprintf(extra, sizeof extra, "X-Sandpit-Sandbox: %s\r\n", sandbox);
  struct conn d = {.path = argc == 8 ? argv[7] : NULL, .fd = -1, .extra = extra};
  char target[512];
  snprintf(target, sizeof target, "/v1/sandboxes/%s/api/execute", sandbox);
  const char *body = "{\"command\":\"true\"}";
  struct resp r = {0};
  double *vm = calloc(iter, sizeof(double)), *vd = calloc(iter, sizeof(double));
  if (!vm || !vd)
    die("out of memory");
  for (size_t i = 0; i < warm + iter; i++) {
    double t0 = now_us();
    http_do(&m, "POST", target, "application/json", body, strlen(body), &r);
    double t1 = now_us();
    if (r.status != 200 || strstr(r.body.p, "\"exitCode\":0") == NULL)
      die("POST %s -> %d %.300s", target, r.status, r.body.p);
    if (i >= warm)
      vm[i - warm] = t1 - t0;
    if (d.path) {
      t0 = now_us();
      http_do(&d, "POST", "/api/execute", "application/json", body, strlen(body), &r);
      t1 = now_us();
      if (r.status != 200 || strstr(r.body.p, "\"exitCode\":0") == NULL)
        die("POST /api/execute (monitor) -> %d %.300s", r.status, r.body.p);
      if (i >= warm)
        vd[i - warm] = t1 - t0;
    }
  }
  printf("mexec.iterations %zu\nmexec.warmup %zu\nmexec.reconnects %d\n", iter, warm,
         m.reconnects + d.reconnects);
  report("mexec.sandpitd", vm, iter);
  if (d.path)
    report("mexec.monitor", vd, iter);
  conn_close(&m);
  conn_close(&d);
  return 0;
}

/* bench spawnloop N WARMUP ARGV...: posix_spawn+waitpid of ARGV, N times
 * (after WARMUP untimed), output discarded; every run must exit 0. */
static int cmd_spawnloop(int argc, char **argv)
{
  if (argc < 5)
    die("usage: bench spawnloop N WARMUP ARGV...");
  size_t n = strtoul(argv[2], NULL, 10), warm = strtoul(argv[3], NULL, 10);
  double *v = calloc(n ? n : 1, sizeof(double));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  for (size_t i = 0; i < warm + n; i++) {
    double t = 0;
    pid_t pid;
    double t0 = now_us();
    int rc = posix_spawnp(&pid, argv[4], &fa, NULL, argv + 4, environ);
    if (rc != 0)
      die("posix_spawn %s: %s", argv[4], strerror(rc));
    int st;
    while (waitpid(pid, &st, 0) < 0)
      if (errno != EINTR)
        die("waitpid: %s", strerror(errno));
    t = now_us() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      die("%s exited with status %d", argv[4], WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    if (i >= warm)
      v[i - warm] = t;
  }
  report("spawn", v, n);
  return 0;
}

/* bench conc TARGETS NEXECS: one thread per line of TARGETS, each
 *   ADDR TOKEN|- PATH SANDBOX|-
 * (ADDR: HOST:PORT or a unix socket; SANDBOX: sent as X-Sandpit-Sandbox),
 * each on its own keep-alive connection.  Every thread runs one untimed
 * exec of `true` (its sandbox's first use), waits for all the others, then
 * NEXECS timed ones.  An error is an answer that is not 200 with exitCode 0,
 * or no answer at all (the thread reconnects and goes on). */
struct conc_thread {
  struct conn c;
  char path[512], extra[512], auth[256];
  size_t n;
  double *lat;
  size_t errors, noanswer;
  int first_status;
  char first_error[256];
  pthread_barrier_t *bar;
};

static bool conc_exec(struct conc_thread *t, struct resp *r, double *lat)
{
  const char *body = "{\"command\":\"true\"}";
  double t0 = now_us();
  bool ok = http_try(&t->c, "POST", t->path, "application/json", body, strlen(body), r);
  *lat = now_us() - t0;
  if (!ok) {
    t->noanswer++;
    if (t->errors++ == 0)
      snprintf(t->first_error, sizeof t->first_error, "no answer (%s)", strerror(errno));
    return false;
  }
  if (r->status != 200 || strstr(r->body.p, "\"exitCode\":0") == NULL) {
    if (t->errors++ == 0) {
      t->first_status = r->status;
      snprintf(t->first_error, sizeof t->first_error, "%d %.200s", r->status, r->body.p);
    }
    return false;
  }
  return true;
}

static void *conc_main(void *arg)
{
  struct conc_thread *t = arg;
  struct resp r = {0};
  double warm;
  conc_exec(t, &r, &warm);
  pthread_barrier_wait(t->bar);
  for (size_t i = 0; i < t->n; i++)
    conc_exec(t, &r, &t->lat[i]);
  pthread_barrier_wait(t->bar);
  conn_close(&t->c);
  return NULL;
}

static int cmd_conc(int argc, char **argv)
{
  if (argc != 4)
    die("usage: bench conc TARGETS NEXECS");
  size_t n = strtoul(argv[3], NULL, 10);
  FILE *f = fopen(argv[2], "r");
  if (f == NULL)
    die("%s: %s", argv[2], strerror(errno));
  size_t nt = 0, cap = 0;
  struct conc_thread *ts = NULL;
  char line[2048];
  while (fgets(line, sizeof line, f)) {
    char addr[512], tok[256], path[512], sb[256];
    if (sscanf(line, "%511s %255s %511s %255s", addr, tok, path, sb) != 4)
      continue;
    if (nt == cap) {
      cap = cap ? cap * 2 : 64;
      ts = realloc(ts, cap * sizeof *ts);
      if (!ts)
        die("out of memory");
    }
    struct conc_thread *t = &ts[nt++];
    memset(t, 0, sizeof *t);
    t->c.path = strdup(addr);
    t->c.fd = -1;
    t->c.host = "localhost";
    snprintf(t->path, sizeof t->path, "%s", path);
    if (strcmp(tok, "-") != 0) {
      snprintf(t->auth, sizeof t->auth, "%s", tok);
      t->c.auth = t->auth;
    }
    if (strcmp(sb, "-") != 0) {
      snprintf(t->extra, sizeof t->extra, "X-Sandpit-Sandbox: %s\r\n", sb);
      t->c.extra = t->extra;
    }
    t->n = n;
    t->lat = calloc(n ? n : 1, sizeof(double));
  }
  fclose(f);
  if (nt == 0)
    die("no targets in %s", argv[2]);
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, (unsigned)nt + 1);
  for (size_t i = 0; i < nt; i++) {
    ts[i].bar = &bar;
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 256 * 1024);
    if (pthread_create(&th, &at, conc_main, &ts[i]) != 0)
      die("pthread_create");
    pthread_detach(th);
  }
  pthread_barrier_wait(&bar); /* every client has made its first exec */
  size_t warm_errors = 0;
  for (size_t i = 0; i < nt; i++)
    warm_errors += ts[i].errors;
  double t0 = now_us();
  pthread_barrier_wait(&bar); /* every client is done */
  double t1 = now_us();
  size_t errors = 0, noanswer = 0, reconnects = 0;
  double *all = calloc(nt * n + 1, sizeof(double));
  for (size_t i = 0; i < nt; i++) {
    errors += ts[i].errors;
    noanswer += ts[i].noanswer;
    reconnects += (size_t)ts[i].c.reconnects;
    memcpy(all + i * n, ts[i].lat, n * sizeof(double));
    if (ts[i].errors && ts[i].first_error[0])
      fprintf(stderr, "client %zu: %zu errors, first: %s\n", i, ts[i].errors, ts[i].first_error);
  }
  printf("conc.clients %zu\nconc.per_client %zu\nconc.execs %zu\nconc.seconds %.3f\n", nt, n,
         nt * n, (t1 - t0) / 1e6);
  printf("conc.per_s %.1f\nconc.errors %zu\nconc.warmup_errors %zu\nconc.noanswer %zu\n"
         "conc.reconnects %zu\n",
         (double)(nt * n) / ((t1 - t0) / 1e6), errors - warm_errors, warm_errors, noanswer,
         reconnects);
  report("conc.lat", all, nt * n);
  return 0;
}

int main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2)
    die("usage: bench exec|files|archive|mexec|spawnloop|conc ...");
  if (strcmp(argv[1], "exec") == 0)
    return cmd_exec(argc, argv);
  if (strcmp(argv[1], "files") == 0)
    return cmd_files(argc, argv);
  if (strcmp(argv[1], "archive") == 0)
    return cmd_archive(argc, argv);
  if (strcmp(argv[1], "mexec") == 0)
    return cmd_mexec(argc, argv);
  if (strcmp(argv[1], "spawnloop") == 0)
    return cmd_spawnloop(argc, argv);
  if (strcmp(argv[1], "conc") == 0)
    return cmd_conc(argc, argv);
  die("unknown subcommand %s", argv[1]);
}
