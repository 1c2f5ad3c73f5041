#include "supervisor.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "classify.h"
#include "error.h"
#include "json.h"
#include "log.h"
#include "logstore.h"
#include "spawn.h"
#include "str.h"
#include "util.h"

#define READ_CHUNK 65536
#define READS_PER_EVENT 4
/* Lines are cut here; one byte more than the log store keeps, so that it
 * stores them cut to its limit and flags them truncated. */
#define MAX_LINE_BYTES (65536 + 1)
#define PIPE_GRACE_MS 2000
#define PROBE_TIMEOUT_MS 2000
#define MAX_DEATHS_TRACKED 64

enum tag_kind { TAG_SIGNAL, TAG_EVENT, TAG_STREAM, TAG_PROBE };

struct tag {
  enum tag_kind kind;
  struct proc *p;
  struct stream *st;
};

struct stream {
  struct tag tag;
  int fd;
  int which; /* LOGSTORE_STDOUT / LOGSTORE_STDERR */
  struct sbuf line;
  bool discarding; /* inside an over-long line: skip to its newline */
  struct classifier *cls;
};

enum probe_state { PROBE_IDLE, PROBE_CONNECTING, PROBE_READING };

struct proc {
  struct proc *next;
  char *id, *sandbox, *command, *cwd, *session_id, *logkey, *error;
  char **env;
  int port;
  bool auto_restart;
  int max_restarts;
  bool set_user;
  uid_t uid;
  gid_t gid;
  long nproc_limit;

  const char *status;
  bool ready;
  bool alive;          /* spawned and not yet reaped */
  pid_t pid;
  int64_t run;
  int restarts;
  int64_t start_ms, end_ms; /* epoch of the current (or last) run */
  int64_t run_started;      /* monotonic */
  bool has_exit;
  int exit_code;
  struct {
    bool valid;
    int code, signal;
    int64_t at_ms;
    const char *reason;
  } last_exit;

  struct stream out, err;
  int64_t reaped_at;        /* monotonic; pipes are closed PIPE_GRACE_MS after */

  bool stop_requested;      /* no restart after this run */
  bool restart_requested;   /* restart after this run */
  bool restart_now;         /* ... without backoff */
  const char *restart_reason;
  int64_t kill_deadline;    /* monotonic; SIGKILL the group then */
  int64_t restart_at;       /* monotonic; spawn again then */
  int64_t backoff_ms;
  int64_t deaths[MAX_DEATHS_TRACKED];
  int ndeaths;

  struct tag probe_tag;
  int probe_fd;
  enum probe_state probe_state;
  int64_t probe_next, probe_deadline;
  int probe_fails;
  char probe_head[8];
  size_t probe_got;
  uint32_t probe_tail; /* the last four bytes seen: the head ends at CRLFCRLF */

  int64_t finished_at;      /* monotonic; 0 while it may still run */
};

struct child {
  struct child *next;
  pid_t pid;
  bool done;
  bool forgotten;
  int status;
};

struct supervisor {
  struct supervisor_opts o;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int epfd, sigfd, evfd;
  struct tag sig_tag, ev_tag;
  volatile sig_atomic_t quit;
  struct proc *procs;
  struct child *children;
  uint64_t version;
  uint64_t next_id;
  int64_t last_flush;
  bool flush_due;
  int64_t restarts_total, orphans;
  pthread_mutex_t snap_mu;
  struct supervisor_counts snap;
};

static void deadline_after(struct timespec *ts, int64_t ms);

static const char *const ST_STARTING = "starting", *const ST_RUNNING = "running",
                  *const ST_COMPLETED = "completed", *const ST_FAILED = "failed",
                  *const ST_KILLED = "killed", *const ST_ERROR = "error";

static void bump(struct supervisor *s)
{
  s->version++;
  pthread_cond_broadcast(&s->cv);
}

static void wake(struct supervisor *s)
{
  uint64_t one = 1;
  if (write(s->evfd, &one, sizeof one) < 0) {
    /* counter full: the loop is awake anyway */
  }
}

char *supervisor_log_key(const char *sandbox, const char *id)
{
  return xasprintf("%s/%s", sandbox, id);
}

/* ---- output ---- */

struct emit_ctx {
  struct supervisor *s;
  struct proc *p;
};

static void on_event(void *ud, const struct classify_event *ev)
{
  struct emit_ctx *cx = ud;
  struct proc *p = cx->p;
  struct error_input in = {
      .hash = ev->hash,
      .category = ev->category,
      .severity = ev->severity,
      .tool = ev->tool,
      .file = ev->file,
      .line = ev->line,
      .column = ev->column,
      .message = ev->message,
      .raw = ev->raw,
      .process_id = p->id,
      .session_id = p->sandbox,
  };
  struct sp_error *err = NULL;
  if (errorstore_record(cx->s->o.ls, &in, sp_now_ms(), &err) < 0) {
    sp_warn("cannot record error", LS("process", p->id), LS("error", err->msg));
    sp_error_free(err);
  }
  if (ev->restart && p->auto_restart && p->alive && !p->stop_requested &&
      !p->restart_requested) {
    p->restart_requested = true;
    p->restart_reason = ev->category;
    kill(-p->pid, SIGTERM);
    p->kill_deadline = sp_monotonic_ms() + cx->s->o.stop_timeout_ms;
    sp_info("fatal output, restarting", LS("process", p->id), LS("rule", ev->rule));
  }
}

static void emit_line(struct supervisor *s, struct proc *p, struct stream *st,
                      const char *line, size_t len)
{
  if (len && line[len - 1] == '\r')
    len--;
  logstore_append(s->o.ls, p->logkey, p->run, st->which, line, len, sp_now_ms());
  if (st->cls) {
    struct emit_ctx cx = {s, p};
    classifier_feed(st->cls, line, len, sp_monotonic_ms(), on_event, &cx);
  }
}

/* Split what was read into lines.  A line longer than MAX_LINE_BYTES is
 * stored cut and the rest of it skipped, so memory stays bounded whatever
 * the process prints. */
static void take_output(struct supervisor *s, struct proc *p, struct stream *st,
                        const char *buf, size_t n)
{
  while (n > 0) {
    const char *nl = memchr(buf, '\n', n);
    size_t chunk = nl ? (size_t)(nl - buf) : n;
    if (st->discarding) {
      if (nl)
        st->discarding = false;
    } else if (st->line.len == 0 && nl && chunk <= MAX_LINE_BYTES) {
      emit_line(s, p, st, buf, chunk); /* the common case: no copy */
    } else {
      size_t room = MAX_LINE_BYTES - st->line.len;
      sbuf_add(&st->line, buf, chunk < room ? chunk : room);
      if (chunk >= room && (!nl || chunk > room)) {
        /* over-long: store what we have, skip the rest of the line */
        emit_line(s, p, st, st->line.buf, st->line.len);
        sbuf_reset(&st->line);
        st->discarding = nl == NULL;
      } else if (nl) {
        emit_line(s, p, st, st->line.buf, st->line.len);
        sbuf_reset(&st->line);
      }
    }
    if (!nl)
      break;
    n -= chunk + 1;
    buf = nl + 1;
  }
}

static void stream_close(struct supervisor *s, struct proc *p, struct stream *st)
{
  if (st->fd < 0)
    return;
  epoll_ctl(s->epfd, EPOLL_CTL_DEL, st->fd, NULL);
  close(st->fd);
  st->fd = -1;
  if (st->line.len) {
    emit_line(s, p, st, st->line.buf, st->line.len);
    sbuf_reset(&st->line);
  }
  st->discarding = false;
  if (st->cls) {
    struct emit_ctx cx = {s, p};
    classifier_flush(st->cls, sp_monotonic_ms(), 0, on_event, &cx);
  }
}

/* Once a run is over and its pipes are closed, commit its last lines at
 * once, so a follower that sees the process final sees all its output. */
static void drained(struct supervisor *s, struct proc *p)
{
  if (p->alive || p->out.fd >= 0 || p->err.fd >= 0 || !logstore_pending(s->o.ls))
    return;
  struct sp_error *err = NULL;
  if (logstore_flush(s->o.ls, &err) < 0) {
    sp_warn("log flush failed", LS("error", err->msg));
    sp_error_free(err);
  }
  s->last_flush = sp_monotonic_ms();
}

static void stream_read(struct supervisor *s, struct proc *p, struct stream *st)
{
  static char buf[READ_CHUNK];
  for (int i = 0; i < READS_PER_EVENT; i++) {
    ssize_t n = read(st->fd, buf, sizeof buf);
    if (n > 0) {
      take_output(s, p, st, buf, (size_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    stream_close(s, p, st);
    drained(s, p);
    bump(s);
    return;
  }
}

/* ---- processes ---- */

static void strv_free(char **v)
{
  for (char **p = v; p && *p; p++)
    free(*p);
  free(v);
}

static char **strv_dup(char **v)
{
  if (v == NULL)
    return NULL;
  size_t n = 0;
  while (v[n])
    n++;
  char **r = xcalloc(n + 1, sizeof *r);
  for (size_t i = 0; i < n; i++)
    r[i] = xstrdup(v[i]);
  return r;
}

static void probe_close(struct supervisor *s, struct proc *p)
{
  if (p->probe_fd >= 0) {
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, p->probe_fd, NULL);
    close(p->probe_fd);
    p->probe_fd = -1;
  }
  p->probe_state = PROBE_IDLE;
}

static void proc_free(struct supervisor *s, struct proc *p)
{
  stream_close(s, p, &p->out);
  stream_close(s, p, &p->err);
  probe_close(s, p);
  classifier_free(p->out.cls);
  classifier_free(p->err.cls);
  sbuf_release(&p->out.line);
  sbuf_release(&p->err.line);
  free(p->id);
  free(p->sandbox);
  free(p->command);
  free(p->cwd);
  free(p->session_id);
  free(p->logkey);
  free(p->error);
  strv_free(p->env);
  free(p);
}

static struct proc *find(struct supervisor *s, const char *sandbox, const char *id)
{
  for (struct proc *p = s->procs; p; p = p->next)
    if (strcmp(p->id, id) == 0 && (sandbox == NULL || strcmp(p->sandbox, sandbox) == 0))
      return p;
  return NULL;
}

static int stream_open(struct supervisor *s, struct proc *p, struct stream *st, int fd,
                       int which)
{
  st->fd = fd;
  st->which = which;
  st->tag = (struct tag){TAG_STREAM, p, st};
  st->discarding = false;
  sbuf_reset(&st->line);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &st->tag};
  return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int spawn_run(struct supervisor *s, struct proc *p, struct sp_error **err)
{
  struct spawn_opts so = {
      .command = p->command,
      .cwd = p->cwd,
      .envp = p->env,
      .set_user = p->set_user,
      .uid = p->uid,
      .gid = p->gid,
      .nproc_limit = p->nproc_limit,
  };
  struct spawn_result res;
  if (sp_spawn(&so, &res, err) < 0) {
    p->status = ST_ERROR;
    free(p->error);
    p->error = xstrdup(err && *err ? (*err)->msg : "spawn failed");
    p->finished_at = sp_monotonic_ms();
    bump(s);
    return -1;
  }
  /* Pipes of an earlier run may still be draining: they go now. */
  stream_close(s, p, &p->out);
  stream_close(s, p, &p->err);
  p->run++;
  p->pid = res.pid;
  p->alive = true;
  p->has_exit = false;
  p->ready = false;
  p->stop_requested = p->restart_requested = p->restart_now = false;
  p->kill_deadline = p->restart_at = 0;
  p->reaped_at = 0;
  p->finished_at = 0;
  p->start_ms = sp_now_ms();
  p->end_ms = 0;
  p->run_started = sp_monotonic_ms();
  p->status = ST_RUNNING;
  p->probe_fails = 0;
  p->probe_next = p->port ? p->run_started + 200 : 0;
  if (stream_open(s, p, &p->out, res.stdout_fd, LOGSTORE_STDOUT) < 0 ||
      stream_open(s, p, &p->err, res.stderr_fd, LOGSTORE_STDERR) < 0)
    sp_warn("epoll_ctl failed", LS("process", p->id), LS("error", strerror(errno)));
  sp_info("process started", LS("process", p->id), LS("sandbox", p->sandbox),
          LI("pid", p->pid), LI("run", p->run));
  bump(s);
  return 0;
}

static void finish(struct supervisor *s, struct proc *p, const char *status)
{
  p->status = status;
  p->finished_at = sp_monotonic_ms();
  p->ready = false;
  probe_close(s, p);
  (void)s;
}

static bool too_many_deaths(struct supervisor *s, struct proc *p, int64_t now)
{
  if (p->ndeaths == MAX_DEATHS_TRACKED) {
    memmove(p->deaths, p->deaths + 1, (MAX_DEATHS_TRACKED - 1) * sizeof p->deaths[0]);
    p->ndeaths--;
  }
  p->deaths[p->ndeaths++] = now;
  int recent = 0;
  for (int i = 0; i < p->ndeaths; i++)
    if (now - p->deaths[i] <= s->o.death_window_ms)
      recent++;
  return recent >= s->o.max_deaths;
}

static void on_exit_status(struct supervisor *s, struct proc *p, int status)
{
  int64_t now = sp_monotonic_ms();
  p->alive = false;
  p->reaped_at = now;
  p->end_ms = sp_now_ms();
  p->kill_deadline = 0;
  p->has_exit = true;
  p->ready = false;
  probe_close(s, p);
  p->last_exit.valid = true;
  p->last_exit.at_ms = p->end_ms;
  p->last_exit.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  p->last_exit.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + p->last_exit.signal;
  p->exit_code = p->last_exit.code;
  /* The run is over: what is left of its group goes too. */
  kill(-p->pid, p->stop_requested ? SIGKILL : SIGTERM);

  drained(s, p);
  const char *reason = p->restart_reason;
  p->restart_reason = NULL;
  sp_info("process exited", LS("process", p->id), LI("pid", p->pid),
          LI("code", p->last_exit.code), LI("signal", p->last_exit.signal));
  if (p->stop_requested) {
    p->last_exit.reason = "stopped";
    finish(s, p, ST_KILLED);
  } else if (p->restart_requested) {
    p->last_exit.reason = reason ? reason : "restart";
    p->status = ST_STARTING;
    if (p->restart_now) {
      p->restart_at = now;
    } else {
      p->restart_at = now + p->backoff_ms;
      p->backoff_ms = SP_MIN(p->backoff_ms * 2, s->o.backoff_max_ms);
    }
  } else if (!p->auto_restart || p->last_exit.code == 0) {
    p->last_exit.reason = "exit";
    finish(s, p, p->last_exit.code == 0 ? ST_COMPLETED : ST_FAILED);
  } else {
    p->last_exit.reason = "crash";
    if (now - p->run_started >= s->o.healthy_after_ms)
      p->backoff_ms = s->o.backoff_min_ms;
    if (too_many_deaths(s, p, now) || p->restarts >= p->max_restarts) {
      sp_warn("giving up on process", LS("process", p->id), LI("restarts", p->restarts));
      finish(s, p, ST_FAILED);
    } else {
      p->status = ST_STARTING;
      p->restart_at = now + p->backoff_ms;
      p->backoff_ms = SP_MIN(p->backoff_ms * 2, s->o.backoff_max_ms);
    }
  }
  bump(s);
}

static void reap(struct supervisor *s)
{
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0)
      return;
    bool known = false;
    for (struct proc *p = s->procs; p; p = p->next) {
      if (p->alive && p->pid == pid) {
        on_exit_status(s, p, status);
        known = true;
        break;
      }
    }
    for (struct child **cp = &s->children; !known && *cp; cp = &(*cp)->next) {
      struct child *c = *cp;
      if (c->pid != pid)
        continue;
      known = true;
      if (c->forgotten) {
        *cp = c->next;
        free(c);
      } else {
        c->done = true;
        c->status = status;
        pthread_cond_broadcast(&s->cv);
      }
      break;
    }
    if (!known)
      s->orphans++;
  }
}

/* ---- port probes ---- */

static void probe_result(struct supervisor *s, struct proc *p, bool ok, int64_t now)
{
  probe_close(s, p);
  p->probe_next = now + s->o.probe_interval_ms;
  if (ok) {
    p->probe_fails = 0;
    if (!p->ready) {
      p->ready = true;
      sp_info("process ready", LS("process", p->id), LI("port", p->port));
      bump(s);
    }
    return;
  }
  if (!p->ready)
    return; /* still starting up */
  if (++p->probe_fails >= s->o.probe_failures && p->alive && !p->stop_requested &&
      !p->restart_requested) {
    sp_warn("server stopped answering, restarting", LS("process", p->id),
            LI("port", p->port));
    p->ready = false;
    p->restart_requested = true;
    p->restart_reason = "unresponsive";
    kill(-p->pid, SIGTERM);
    p->kill_deadline = now + s->o.stop_timeout_ms;
    bump(s);
  }
}

static void probe_start(struct supervisor *s, struct proc *p, int64_t now)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    p->probe_next = now + s->o.probe_interval_ms;
    return;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  p->probe_fd = fd;
  p->probe_tag = (struct tag){TAG_PROBE, p, NULL};
  p->probe_deadline = now + PROBE_TIMEOUT_MS;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
    probe_result(s, p, false, now);
    return;
  }
  p->probe_state = PROBE_CONNECTING;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = &p->probe_tag};
  epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void probe_io(struct supervisor *s, struct proc *p, int64_t now)
{
  if (p->probe_state == PROBE_CONNECTING) {
    int e = 0;
    socklen_t l = sizeof e;
    getsockopt(p->probe_fd, SOL_SOCKET, SO_ERROR, &e, &l);
    /* HEAD, read to the end: closing on unread data would make the server
     * see a reset and print it (noise in its logs, and in its errors). */
    static const char req[] = "HEAD / HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: sandpit-probe\r\n"
                              "Connection: close\r\n\r\n";
    p->probe_got = 0;
    p->probe_tail = 0;
    if (e != 0 || write(p->probe_fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
      probe_result(s, p, false, now);
      return;
    }
    p->probe_state = PROBE_READING;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->probe_tag};
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, p->probe_fd, &ev);
    return;
  }
  char buf[4096];
  for (;;) {
    ssize_t n = read(p->probe_fd, buf, sizeof buf);
    if (n < 0 && errno == EAGAIN)
      return;
    if (n > 0) {
      if (p->probe_got < 5)
        memcpy(p->probe_head + p->probe_got, buf, SP_MIN((size_t)n, 5 - p->probe_got));
      p->probe_got += (size_t)n;
      bool head_done = false;
      for (ssize_t i = 0; i < n && !head_done; i++) {
        p->probe_tail = (p->probe_tail << 8) | (unsigned char)buf[i];
        head_done = p->probe_tail == 0x0d0a0d0a;
      }
      /* a HEAD answer ends with its head: nothing is left unread */
      if (!head_done && p->probe_got < (1u << 20))
        continue;
    }
    probe_result(s, p, p->probe_got >= 5 && memcmp(p->probe_head, "HTTP/", 5) == 0, now);
    return;
  }
}

/* ---- timers ---- */

static void run_timers(struct supervisor *s, int64_t now)
{
  for (struct proc *p = s->procs; p; p = p->next) {
    if (p->alive && p->kill_deadline && now >= p->kill_deadline) {
      sp_warn("stop timeout, killing group", LS("process", p->id), LI("pid", p->pid));
      kill(-p->pid, SIGKILL);
      p->kill_deadline = 0;
    }
    if (!p->alive && p->reaped_at && now - p->reaped_at >= PIPE_GRACE_MS) {
      /* Something in the old group still holds the pipes open. */
      stream_close(s, p, &p->out);
      stream_close(s, p, &p->err);
      p->reaped_at = 0;
      drained(s, p);
      bump(s);
    }
    if (!p->alive && p->restart_at && now >= p->restart_at) {
      p->restart_at = 0;
      p->restarts++;
      s->restarts_total++;
      struct sp_error *err = NULL;
      if (spawn_run(s, p, &err) < 0) {
        sp_warn("restart failed", LS("process", p->id), LS("error", err->msg));
        sp_error_free(err);
      }
    }
    if (p->alive && p->port) {
      if (p->probe_state == PROBE_IDLE && p->probe_next && now >= p->probe_next)
        probe_start(s, p, now);
      else if (p->probe_state != PROBE_IDLE && now >= p->probe_deadline)
        probe_result(s, p, false, now);
    }
    if (p->out.cls || p->err.cls) {
      struct emit_ctx cx = {s, p};
      if (p->out.cls)
        classifier_flush(p->out.cls, now, 250, on_event, &cx);
      if (p->err.cls)
        classifier_flush(p->err.cls, now, 250, on_event, &cx);
    }
  }
  /* Forget the oldest finished processes beyond the limit. */
  int finished = 0;
  for (struct proc *p = s->procs; p; p = p->next)
    if (p->finished_at)
      finished++;
  while (finished > s->o.max_finished) {
    struct proc **oldest = NULL;
    for (struct proc **pp = &s->procs; *pp; pp = &(*pp)->next)
      if ((*pp)->finished_at && (!oldest || (*pp)->finished_at < (*oldest)->finished_at))
        oldest = pp;
    struct proc *victim = *oldest;
    *oldest = victim->next;
    proc_free(s, victim);
    finished--;
  }
  /* the batch is committed by the loop once it has let go of the lock */
  if (logstore_pending(s->o.ls) && now - s->last_flush >= s->o.flush_interval_ms)
    s->flush_due = true;
  else if (!logstore_pending(s->o.ls))
    s->last_flush = now;

  /* what /api/status reads, without waiting for this lock */
  struct supervisor_counts c = {0};
  for (struct proc *p = s->procs; p; p = p->next) {
    c.total++;
    c.running += p->alive;
    c.ready += p->ready;
    c.failed += p->status == ST_FAILED;
  }
  c.restarts = s->restarts_total;
  c.orphans_reaped = s->orphans;
  pthread_mutex_lock(&s->snap_mu);
  s->snap = c;
  pthread_mutex_unlock(&s->snap_mu);
}

static int next_timeout(struct supervisor *s, int64_t now)
{
  int64_t next = now + 1000;
  if (logstore_pending(s->o.ls))
    next = SP_MIN(next, s->last_flush + s->o.flush_interval_ms);
  for (struct proc *p = s->procs; p; p = p->next) {
    if (p->alive && p->kill_deadline)
      next = SP_MIN(next, p->kill_deadline);
    if (!p->alive && p->reaped_at)
      next = SP_MIN(next, p->reaped_at + PIPE_GRACE_MS);
    if (p->restart_at)
      next = SP_MIN(next, p->restart_at);
    if (p->alive && p->port)
      next = SP_MIN(next, p->probe_state == PROBE_IDLE ? p->probe_next : p->probe_deadline);
    if (p->out.cls || p->err.cls)
      next = SP_MIN(next, now + 250);
  }
  int64_t t = next - now;
  return t < 0 ? 0 : (int)t;
}

/* ---- public ---- */

struct supervisor *supervisor_new(const struct supervisor_opts *o, struct sp_error **err)
{
  struct supervisor *s = xcalloc(1, sizeof *s);
  s->o = *o;
#define DEF(f, v) if (s->o.f <= 0) s->o.f = (v)
  DEF(stop_timeout_ms, 5000);
  DEF(backoff_min_ms, 1000);
  DEF(backoff_max_ms, 30000);
  DEF(healthy_after_ms, 60000);
  DEF(max_deaths, 5);
  DEF(death_window_ms, 60000);
  DEF(default_max_restarts, 10);
  DEF(probe_interval_ms, 1000);
  DEF(probe_failures, 3);
  DEF(flush_interval_ms, 50);
  DEF(max_finished, 256);
#undef DEF
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->snap_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  /* Orphans of the process trees we start come back to us to be reaped,
   * as they would to pid 1 (which the monitor is inside an instance). */
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  s->epfd = epoll_create1(EPOLL_CLOEXEC);
  s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->epfd < 0 || s->sigfd < 0 || s->evfd < 0) {
    sp_error_set(err, errno, "cannot set up the supervisor loop");
    supervisor_free(s);
    return NULL;
  }
  s->sig_tag.kind = TAG_SIGNAL;
  s->ev_tag.kind = TAG_EVENT;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->sig_tag};
  epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &ev);
  ev.data.ptr = &s->ev_tag;
  epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &ev);
  s->last_flush = sp_monotonic_ms();
  return s;
}

static void handle(struct supervisor *s, struct epoll_event *e, int64_t now)
{
  struct tag *t = e->data.ptr;
  switch (t->kind) {
  case TAG_SIGNAL: {
    struct signalfd_siginfo si;
    while (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
      if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
        sp_info("shutting down", LS("signal", strsignal((int)si.ssi_signo)));
        s->quit = 1;
      }
    }
    reap(s);
    break;
  }
  case TAG_EVENT: {
    uint64_t v;
    if (read(s->evfd, &v, sizeof v) < 0) {
      /* nothing pending */
    }
    break;
  }
  case TAG_STREAM:
    stream_read(s, t->p, t->st);
    break;
  case TAG_PROBE:
    if (t->p->probe_fd >= 0)
      probe_io(s, t->p, now);
    break;
  }
}

int supervisor_run(struct supervisor *s)
{
  struct epoll_event evs[64];
  while (!s->quit) {
    pthread_mutex_lock(&s->mu);
    int timeout = next_timeout(s, sp_monotonic_ms());
    pthread_mutex_unlock(&s->mu);
    int n = epoll_wait(s->epfd, evs, (int)SP_ARRAY_SIZE(evs), timeout);
    if (n < 0 && errno != EINTR)
      break;
    pthread_mutex_lock(&s->mu);
    int64_t now = sp_monotonic_ms();
    for (int i = 0; i < n; i++)
      handle(s, &evs[i], now);
    run_timers(s, sp_monotonic_ms());
    bool flush = s->flush_due;
    s->flush_due = false;
    pthread_mutex_unlock(&s->mu);
    if (flush) {
      struct sp_error *err = NULL;
      if (logstore_flush(s->o.ls, &err) < 0) {
        sp_warn("log flush failed", LS("error", err->msg));
        sp_error_free(err);
      }
      s->last_flush = sp_monotonic_ms();
    }
  }

  /* Shutdown: stop every group, wait a bounded time, then kill. */
  pthread_mutex_lock(&s->mu);
  int64_t deadline = sp_monotonic_ms() + SP_MIN(s->o.stop_timeout_ms, 3000);
  for (struct proc *p = s->procs; p; p = p->next) {
    p->restart_at = 0;
    if (p->alive) {
      p->stop_requested = true;
      kill(-p->pid, SIGTERM);
    }
  }
  for (;;) {
    bool any = false;
    for (struct proc *p = s->procs; p; p = p->next)
      any |= p->alive;
    int64_t now = sp_monotonic_ms();
    if (!any)
      break;
    if (now >= deadline) {
      for (struct proc *p = s->procs; p; p = p->next)
        if (p->alive)
          kill(-p->pid, SIGKILL);
      deadline = now + 1000;
    }
    pthread_mutex_unlock(&s->mu);
    int n = epoll_wait(s->epfd, evs, (int)SP_ARRAY_SIZE(evs), 50);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < n; i++)
      handle(s, &evs[i], now);
    reap(s);
  }
  for (struct proc *p = s->procs; p; p = p->next) {
    stream_read(s, p, &p->out);
    stream_close(s, p, &p->out);
    stream_close(s, p, &p->err);
  }
  struct sp_error *err = NULL;
  if (logstore_flush(s->o.ls, &err) < 0) {
    sp_warn("final log flush failed", LS("error", err->msg));
    sp_error_free(err);
  }
  pthread_mutex_unlock(&s->mu);
  return 0;
}

void supervisor_shutdown(struct supervisor *s)
{
  s->quit = 1;
  wake(s);
}

void supervisor_free(struct supervisor *s)
{
  if (s == NULL)
    return;
  while (s->procs) {
    struct proc *p = s->procs;
    s->procs = p->next;
    proc_free(s, p);
  }
  while (s->children) {
    struct child *c = s->children;
    s->children = c->next;
    free(c);
  }
  if (s->epfd >= 0)
    close(s->epfd);
  if (s->sigfd >= 0)
    close(s->sigfd);
  if (s->evfd >= 0)
    close(s->evfd);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->snap_mu);
  pthread_cond_destroy(&s->cv);
  free(s);
}

static cJSON *proc_json(const struct proc *p)
{
  char ts[40];
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "id", p->id);
  if (p->run > 0)
    json_add_int(j, "pid", p->pid);
  else
    cJSON_AddNullToObject(j, "pid");
  cJSON_AddStringToObject(j, "command", p->command);
  cJSON_AddStringToObject(j, "status", p->status);
  if (p->start_ms)
    cJSON_AddStringToObject(j, "startTime", sp_iso8601(p->start_ms, ts, sizeof ts));
  else
    cJSON_AddNullToObject(j, "startTime");
  if (p->end_ms && !p->alive)
    cJSON_AddStringToObject(j, "endTime", sp_iso8601(p->end_ms, ts, sizeof ts));
  else
    cJSON_AddNullToObject(j, "endTime");
  if (p->has_exit && !p->alive)
    json_add_int(j, "exitCode", p->exit_code);
  else
    cJSON_AddNullToObject(j, "exitCode");
  json_add_string_or_null(j, "sessionId", p->session_id);
  json_add_int(j, "restarts", p->restarts);
  cJSON_AddBoolToObject(j, "ready", p->ready);
  if (p->port)
    json_add_int(j, "port", p->port);
  cJSON_AddBoolToObject(j, "autoRestart", p->auto_restart);
  if (p->last_exit.valid) {
    cJSON *le = cJSON_AddObjectToObject(j, "lastExit");
    json_add_int(le, "code", p->last_exit.code);
    if (p->last_exit.signal)
      json_add_int(le, "signal", p->last_exit.signal);
    else
      cJSON_AddNullToObject(le, "signal");
    cJSON_AddStringToObject(le, "time", sp_iso8601(p->last_exit.at_ms, ts, sizeof ts));
    cJSON_AddStringToObject(le, "reason", p->last_exit.reason ? p->last_exit.reason : "exit");
  } else {
    cJSON_AddNullToObject(j, "lastExit");
  }
  if (p->error)
    cJSON_AddStringToObject(j, "error", p->error);
  return j;
}

static bool valid_id(const char *id)
{
  size_t n = strlen(id);
  if (n == 0 || n > 64)
    return false;
  for (const char *c = id; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
          *c == '-' || *c == '_' || *c == '.'))
      return false;
  return id[0] != '.';
}

cJSON *supervisor_start(struct supervisor *s, const struct proc_spec *spec,
                        struct sp_error **err)
{
  if (spec->command == NULL || spec->command[0] == '\0') {
    sp_error_code(err, "INVALID_REQUEST", 400, "'command' is required");
    return NULL;
  }
  if (spec->id && !valid_id(spec->id)) {
    sp_error_code(err, "INVALID_REQUEST", 400,
                  "'processId' must be 1-64 characters of [A-Za-z0-9._-]");
    return NULL;
  }
  if (spec->port < 0 || spec->port > 65535) {
    sp_error_code(err, "INVALID_REQUEST", 400, "'port' must be 1-65535");
    return NULL;
  }
  pthread_mutex_lock(&s->mu);
  cJSON *out = NULL;
  struct proc *old = spec->id ? find(s, spec->sandbox, spec->id) : NULL;
  if (old && !old->finished_at) {
    sp_error_code(err, "PROCESS_EXISTS", 409, "process '%s' already exists", spec->id);
    goto out;
  }
  if (old) {
    /* A finished process of the same id is replaced. */
    for (struct proc **pp = &s->procs; *pp; pp = &(*pp)->next) {
      if (*pp == old) {
        *pp = old->next;
        break;
      }
    }
    proc_free(s, old);
  }
  struct proc *p = xcalloc(1, sizeof *p);
  p->id = spec->id ? xstrdup(spec->id) : xasprintf("proc_%llu", (unsigned long long)++s->next_id);
  while (!spec->id && find(s, spec->sandbox, p->id)) {
    free(p->id);
    p->id = xasprintf("proc_%llu", (unsigned long long)++s->next_id);
  }
  p->sandbox = xstrdup(spec->sandbox);
  p->command = xstrdup(spec->command);
  p->cwd = spec->cwd ? xstrdup(spec->cwd) : NULL;
  p->session_id = spec->session_id ? xstrdup(spec->session_id) : NULL;
  p->env = strv_dup(spec->env);
  p->logkey = supervisor_log_key(p->sandbox, p->id);
  p->port = spec->port;
  p->auto_restart = spec->auto_restart;
  p->max_restarts = spec->max_restarts < 0 ? s->o.default_max_restarts : spec->max_restarts;
  p->set_user = spec->set_user;
  p->uid = spec->uid;
  p->gid = spec->gid;
  p->nproc_limit = spec->nproc_limit;
  p->backoff_ms = s->o.backoff_min_ms;
  p->out.fd = p->err.fd = p->probe_fd = -1;
  if (s->o.rules) {
    p->out.cls = classifier_new(s->o.rules);
    p->err.cls = classifier_new(s->o.rules);
  }
  p->status = ST_STARTING;
  p->next = s->procs;
  s->procs = p;
  if (spawn_run(s, p, err) < 0) {
    /* Keep it listed with status "error" so the client can see why. */
    goto out;
  }
  out = proc_json(p);
  wake(s);
out:
  pthread_mutex_unlock(&s->mu);
  return out;
}

cJSON *supervisor_get(struct supervisor *s, const char *sandbox, const char *id,
                      struct sp_error **err)
{
  pthread_mutex_lock(&s->mu);
  struct proc *p = find(s, sandbox, id);
  cJSON *j = p ? proc_json(p) : NULL;
  pthread_mutex_unlock(&s->mu);
  if (j == NULL)
    {
    sp_error_code(err, "PROCESS_NOT_FOUND", 404, "Process %s not found", id);
    sp_error_context(err, "processId", id);
  }
  return j;
}

static bool is_terminating(int sig)
{
  return sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT || sig == SIGKILL;
}

static void stop_locked(struct supervisor *s, struct proc *p, int sig)
{
  p->restart_at = 0;
  if (!p->alive) {
    if (!p->finished_at)
      finish(s, p, ST_KILLED);
    return;
  }
  p->stop_requested = true;
  p->restart_requested = false;
  kill(-p->pid, sig);
  if (sig != SIGKILL)
    p->kill_deadline = sp_monotonic_ms() + s->o.stop_timeout_ms;
}

cJSON *supervisor_signal(struct supervisor *s, const char *sandbox, const char *id,
                         int sig, struct sp_error **err)
{
  pthread_mutex_lock(&s->mu);
  struct proc *p = find(s, sandbox, id);
  cJSON *j = NULL;
  if (p == NULL) {
    {
    sp_error_code(err, "PROCESS_NOT_FOUND", 404, "Process %s not found", id);
    sp_error_context(err, "processId", id);
  }
  } else {
    if (is_terminating(sig))
      stop_locked(s, p, sig);
    else if (p->alive)
      kill(-p->pid, sig);
    bump(s);
    j = proc_json(p);
  }
  pthread_mutex_unlock(&s->mu);
  wake(s);
  return j;
}

cJSON *supervisor_restart(struct supervisor *s, const char *sandbox, const char *id,
                          struct sp_error **err)
{
  pthread_mutex_lock(&s->mu);
  struct proc *p = find(s, sandbox, id);
  cJSON *j = NULL;
  if (p == NULL) {
    {
    sp_error_code(err, "PROCESS_NOT_FOUND", 404, "Process %s not found", id);
    sp_error_context(err, "processId", id);
  }
    goto out;
  }
  p->ndeaths = 0;
  p->backoff_ms = s->o.backoff_min_ms;
  if (p->alive) {
    p->stop_requested = false;
    p->restart_requested = true;
    p->restart_now = true;
    p->restart_reason = "restart";
    kill(-p->pid, SIGTERM);
    p->kill_deadline = sp_monotonic_ms() + s->o.stop_timeout_ms;
  } else {
    p->restarts++;
    s->restarts_total++;
    if (spawn_run(s, p, err) < 0)
      goto out;
  }
  bump(s);
  j = proc_json(p);
out:
  pthread_mutex_unlock(&s->mu);
  wake(s);
  return j;
}

cJSON *supervisor_list(struct supervisor *s, const char *sandbox)
{
  cJSON *arr = cJSON_CreateArray();
  pthread_mutex_lock(&s->mu);
  /* Oldest first: the list is kept newest first. */
  int n = 0;
  for (struct proc *p = s->procs; p; p = p->next)
    n++;
  struct proc **v = xcalloc((size_t)n + 1, sizeof *v);
  int i = 0;
  for (struct proc *p = s->procs; p; p = p->next)
    v[i++] = p;
  for (i = n - 1; i >= 0; i--)
    if (sandbox == NULL || strcmp(v[i]->sandbox, sandbox) == 0)
      cJSON_AddItemToArray(arr, proc_json(v[i]));
  free(v);
  pthread_mutex_unlock(&s->mu);
  return arr;
}

int supervisor_kill_all(struct supervisor *s, const char *sandbox)
{
  int n = 0;
  pthread_mutex_lock(&s->mu);
  for (struct proc *p = s->procs; p; p = p->next) {
    if (sandbox && strcmp(p->sandbox, sandbox) != 0)
      continue;
    if (p->alive || p->restart_at) {
      stop_locked(s, p, SIGTERM);
      n++;
    }
  }
  bump(s);
  pthread_mutex_unlock(&s->mu);
  wake(s);
  return n;
}

int supervisor_forget_sandbox(struct supervisor *s, const char *sandbox, int64_t timeout_ms)
{
  pthread_mutex_lock(&s->mu);
  int n = 0;
  for (struct proc *p = s->procs; p; p = p->next) {
    if (strcmp(p->sandbox, sandbox) != 0)
      continue;
    n++;
    p->restart_at = 0;
    p->stop_requested = true;
    if (p->alive)
      kill(-p->pid, SIGKILL);
  }
  pthread_mutex_unlock(&s->mu);
  wake(s);
  int64_t deadline = sp_monotonic_ms() + timeout_ms;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    bool any = false;
    for (struct proc *p = s->procs; p; p = p->next)
      any |= strcmp(p->sandbox, sandbox) == 0 && p->alive;
    if (!any || sp_monotonic_ms() >= deadline)
      break;
    struct timespec ts;
    deadline_after(&ts, 20);
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
  for (struct proc **pp = &s->procs; *pp;) {
    struct proc *p = *pp;
    if (strcmp(p->sandbox, sandbox) != 0 || p->alive) {
      pp = &p->next;
      continue;
    }
    *pp = p->next;
    logstore_clear(s->o.ls, p->logkey, NULL);
    proc_free(s, p);
  }
  bump(s);
  pthread_mutex_unlock(&s->mu);
  return n;
}

int supervisor_remove(struct supervisor *s, const char *sandbox, const char *id,
                      struct sp_error **err)
{
  pthread_mutex_lock(&s->mu);
  int rc = -1;
  for (struct proc **pp = &s->procs; *pp; pp = &(*pp)->next) {
    struct proc *p = *pp;
    if (strcmp(p->id, id) != 0 || (sandbox && strcmp(p->sandbox, sandbox) != 0))
      continue;
    if (!p->finished_at) {
      sp_error_code(err, "PROCESS_RUNNING", 409, "process '%s' is still running", id);
      goto out;
    }
    *pp = p->next;
    proc_free(s, p);
    bump(s);
    rc = 0;
    goto out;
  }
  {
    sp_error_code(err, "PROCESS_NOT_FOUND", 404, "Process %s not found", id);
    sp_error_context(err, "processId", id);
  }
out:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

void supervisor_state(struct supervisor *s, const char *sandbox, const char *id,
                      struct proc_state *st)
{
  memset(st, 0, sizeof *st);
  pthread_mutex_lock(&s->mu);
  struct proc *p = find(s, sandbox, id);
  if (p) {
    st->found = true;
    st->final = p->finished_at != 0 && p->out.fd < 0 && p->err.fd < 0;
    st->run = p->run;
    st->has_exit = p->has_exit;
    st->exit_code = p->exit_code;
    snprintf(st->status, sizeof st->status, "%s", p->status);
  }
  pthread_mutex_unlock(&s->mu);
}

uint64_t supervisor_version(struct supervisor *s)
{
  pthread_mutex_lock(&s->mu);
  uint64_t v = s->version;
  pthread_mutex_unlock(&s->mu);
  return v;
}

static void deadline_after(struct timespec *ts, int64_t ms)
{
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (ms % 1000) * 1000000;
  if (ts->tv_nsec >= 1000000000) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000;
  }
}

uint64_t supervisor_wait(struct supervisor *s, uint64_t seen, int64_t timeout_ms)
{
  struct timespec ts;
  deadline_after(&ts, timeout_ms);
  pthread_mutex_lock(&s->mu);
  while (s->version <= seen) {
    if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
      break;
  }
  uint64_t v = s->version;
  pthread_mutex_unlock(&s->mu);
  return v;
}

void supervisor_counts(struct supervisor *s, struct supervisor_counts *c)
{
  pthread_mutex_lock(&s->snap_mu);
  *c = s->snap;
  pthread_mutex_unlock(&s->snap_mu);
}

int supervisor_spawn_child(struct supervisor *s, const struct spawn_opts *o,
                           struct spawn_result *res, struct sp_error **err)
{
  pthread_mutex_lock(&s->mu);
  /* Registered under the lock, so the reaper cannot miss it. */
  int rc = sp_spawn(o, res, err);
  if (rc == 0) {
    struct child *c = xcalloc(1, sizeof *c);
    c->pid = res->pid;
    c->next = s->children;
    s->children = c;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int supervisor_child_wait(struct supervisor *s, pid_t pid, int64_t timeout_ms)
{
  struct timespec ts;
  deadline_after(&ts, timeout_ms < 0 ? 365LL * 86400 * 1000 : timeout_ms);
  pthread_mutex_lock(&s->mu);
  int status = -1;
  for (;;) {
    struct child **cp = &s->children;
    while (*cp && (*cp)->pid != pid)
      cp = &(*cp)->next;
    if (*cp == NULL)
      break;
    if ((*cp)->done) {
      struct child *c = *cp;
      status = c->status;
      *cp = c->next;
      free(c);
      break;
    }
    if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
      break;
  }
  pthread_mutex_unlock(&s->mu);
  return status;
}

void supervisor_child_forget(struct supervisor *s, pid_t pid)
{
  pthread_mutex_lock(&s->mu);
  for (struct child **cp = &s->children; *cp; cp = &(*cp)->next) {
    struct child *c = *cp;
    if (c->pid != pid)
      continue;
    if (c->done) {
      *cp = c->next;
      free(c);
    } else {
      c->forgotten = true;
    }
    break;
  }
  pthread_mutex_unlock(&s->mu);
}
