#include "supervisor.h"

#include <cjson/cJSON.h>
#include <errno.h>
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
#include "errstore.h"
#include "id.h"
#include "json.h"
#include "log.h"
#include "logstore.h"
#include "logwriter.h"
#include "ports.h"
#include "procfsm.h"
#include "spawn.h"
#include "str.h"
#include "util.h"

#define READ_CHUNK 65536
#define READS_PER_EVENT 4
/* Lines are cut here; one byte more than the log store keeps, so that it
 * stores them cut to its limit and flags them truncated. */
#define MAX_LINE_BYTES (65536 + 1)
/* After a supervised run is reaped, pipes something in its group still
 * holds open are closed after this long; a command's after DRAIN_GRACE_MS. */
#define PIPE_GRACE_MS 2000
#define DRAIN_GRACE_MS 100
#define PROBE_TIMEOUT_MS 2000
/* A group being killed gets SIGKILL again every SWEEP_EVERY_MS (a fork bomb
 * adds members while the signal goes out) until empty, for SWEEP_MS. */
#define SWEEP_MS 2000
#define SWEEP_EVERY_MS 2
/* Past the stop timeout the loop waits this much more for the last reaps. */
#define STOP_SLACK_MS 800
#define STATE_STREAM 3
/* A finished process is reported final once its last line is committed,
 * or after this long if the store cannot commit it. */
#define FINAL_COMMIT_WAIT_MS 5000

enum tag_kind { TAG_SIGNAL, TAG_EVENT, TAG_STREAM, TAG_PROBE, TAG_STDIN };

struct proc;

struct tag {
  enum tag_kind kind;
  struct proc *p;
  struct stream *st;
};

struct stream {
  struct tag tag;
  int fd;
  int which; /* LOGSTORE_STDOUT, LOGSTORE_STDERR, STATE_STREAM */
  bool paused;
  struct sbuf line;
  bool discarding; /* inside an over-long line: skip to its newline */
  struct classifier *cls;
};

enum probe_state { PROBE_IDLE, PROBE_CONNECTING, PROBE_READING };

/* What a command's caller sees; shared between the loop and the caller
 * under mu.  Freed when both have let go. */
struct command {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;
  struct supervisor *s;
  struct sbuf buf[3]; /* [1] stdout, [2] stderr: arrived, not yet taken */
  size_t kept[3];
  size_t cap, state_cap;
  struct sbuf state;
  bool truncated, done, timed_out, stopped;
  int status, exit_code;
  struct proc *p; /* loop only; NULL once done */
};

struct proc {
  struct proc *next;
  char *id, *sandbox, *command, *cwd, *session_id, *logkey, *error;
  char **env;
  int port;
  bool set_user;
  uid_t uid;
  gid_t gid;
  long nproc_limit;
  char **cgroups;

  struct procfsm fsm;
  pid_t pid;
  int64_t run;
  int64_t start_ms, end_ms; /* epoch of the current (or last) run */
  bool has_exit;
  struct stream out, err;
  int64_t reaped_at;        /* monotonic; 0 while alive */
  int64_t last_seq;         /* of the last line appended */
  int64_t finished_at;      /* monotonic; 0 while it may still run */
  int wait_status;

  struct tag probe_tag;
  int probe_fd;
  enum probe_state probe_state;
  int64_t probe_next, probe_deadline;
  char probe_head[16]; /* the answer's first bytes: its status line */
  size_t probe_got;
  uint32_t probe_tail; /* the last four bytes seen: the head ends at CRLFCRLF */

  /* one-shot commands only */
  struct command *cmd;
  struct stream state;
  struct tag in_tag;
  int in_fd;
  char *stdin_data;
  size_t stdin_len, stdin_off;
  int64_t deadline;
};

struct sweep {
  struct sweep *next;
  pid_t pgid;
  int64_t until;
};

/* A request from another thread: fn runs on the loop; it returns false to
 * be run again on the next rounds (a request that waits for reaping). */
struct call {
  struct call *next;
  bool (*fn)(struct supervisor *s, void *arg);
  void *arg;
  bool done, refused;
};

struct supervisor {
  struct supervisor_opts o;
  struct procfsm_cfg cfg;
  int epfd, sigfd, evfd;
  struct tag sig_tag, ev_tag;
  struct proc *procs; /* supervised, newest first */
  struct proc *cmds;  /* one-shot commands */
  struct sweep *sweeps;
  struct call *deferred;
  struct logwriter *w;
  bool paused;        /* supervised pipes are not read: the writer lags */
  uint64_t next_id;
  int64_t restarts_total, orphans;
  int64_t stop_started;
  struct sp_error **spawn_err; /* where spawn_run puts its error, if set */

  pthread_mutex_t q_mu; /* guards the fields below */
  pthread_cond_t q_cv;
  struct call *queue, **queue_tail;
  bool stopping, closed;
  struct supervisor_counts snap;
};

char *supervisor_log_key(const char *sandbox, const char *id)
{
  return xasprintf("%s/%s", sandbox, id);
}

static void wake(struct supervisor *s)
{
  uint64_t one = 1;
  if (write(s->evfd, &one, sizeof one) < 0) {
    /* counter full: the loop is awake anyway */
  }
}

/* ---- requests from other threads ---- */

static int call(struct supervisor *s, bool (*fn)(struct supervisor *, void *), void *arg,
                struct sp_error **err)
{
  struct call c = {.fn = fn, .arg = arg};
  pthread_mutex_lock(&s->q_mu);
  if (s->closed) {
    pthread_mutex_unlock(&s->q_mu);
    return sp_error_code(err, "MONITOR_STOPPING", 503, "the monitor is stopping");
  }
  *s->queue_tail = &c;
  s->queue_tail = &c.next;
  pthread_mutex_unlock(&s->q_mu);
  wake(s);
  pthread_mutex_lock(&s->q_mu);
  while (!c.done)
    pthread_cond_wait(&s->q_cv, &s->q_mu);
  pthread_mutex_unlock(&s->q_mu);
  if (c.refused)
    return sp_error_code(err, "MONITOR_STOPPING", 503, "the monitor is stopping");
  return 0;
}

static void answer(struct supervisor *s, struct call *c, bool refused)
{
  pthread_mutex_lock(&s->q_mu);
  c->done = true;
  c->refused = refused;
  pthread_cond_broadcast(&s->q_cv);
  pthread_mutex_unlock(&s->q_mu);
}

static void run_calls(struct supervisor *s)
{
  pthread_mutex_lock(&s->q_mu);
  struct call *q = s->queue;
  s->queue = NULL;
  s->queue_tail = &s->queue;
  pthread_mutex_unlock(&s->q_mu);
  /* the deferred ones first, then the new ones in order */
  struct call *list = s->deferred, **tail = &list;
  while (*tail)
    tail = &(*tail)->next;
  *tail = q;
  s->deferred = NULL;
  struct call **keep = &s->deferred;
  while (list) {
    struct call *c = list;
    list = c->next;
    c->next = NULL;
    if (c->fn(s, c->arg)) {
      answer(s, c, false);
    } else {
      *keep = c;
      keep = &c->next;
    }
  }
}

/* ---- killing whole groups ---- */

static void sweep_add(struct supervisor *s, pid_t pgid, int64_t now)
{
  if (pgid <= 1)
    return;
  kill(-pgid, SIGKILL);
  for (struct sweep *w = s->sweeps; w; w = w->next)
    if (w->pgid == pgid) {
      w->until = now + SWEEP_MS;
      return;
    }
  struct sweep *w = xcalloc(1, sizeof *w);
  w->pgid = pgid;
  w->until = now + SWEEP_MS;
  w->next = s->sweeps;
  s->sweeps = w;
}

static void run_sweeps(struct supervisor *s, int64_t now)
{
  for (struct sweep **wp = &s->sweeps; *wp;) {
    struct sweep *w = *wp;
    bool gone = kill(-w->pgid, SIGKILL) < 0 && errno == ESRCH;
    if (gone || now >= w->until) {
      if (!gone)
        sp_warn("process group outlived its kill", LI("pgid", w->pgid));
      *wp = w->next;
      free(w);
    } else {
      wp = &w->next;
    }
  }
}

static bool sweeping(struct supervisor *s, pid_t pgid)
{
  for (struct sweep *w = s->sweeps; w; w = w->next)
    if (w->pgid == pgid)
      return true;
  return false;
}

static void signal_group(struct proc *p, int sig)
{
  if (p->pid > 1)
    kill(-p->pid, sig);
}

/* ---- commands: the caller's side of the shared part ---- */

static void command_unref(struct command *c)
{
  pthread_mutex_lock(&c->mu);
  bool last = --c->refs == 0;
  pthread_mutex_unlock(&c->mu);
  if (!last)
    return;
  for (int i = 0; i < 3; i++)
    sbuf_release(&c->buf[i]);
  sbuf_release(&c->state);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c);
}

static void command_take(struct command *c, int which, const char *buf, size_t n)
{
  pthread_mutex_lock(&c->mu);
  if (which == STATE_STREAM) {
    if (c->state.len + n <= c->state_cap)
      sbuf_add(&c->state, buf, n);
  } else {
    size_t room = c->cap - c->kept[which];
    if (n > room) {
      n = room;
      c->truncated = true;
    }
    if (n) {
      sbuf_add(&c->buf[which], buf, n);
      c->kept[which] += n;
      pthread_cond_broadcast(&c->cv);
    }
  }
  pthread_mutex_unlock(&c->mu);
}

/* ---- output ---- */

struct emit_ctx {
  struct supervisor *s;
  struct proc *p;
};

static void step(struct supervisor *s, struct proc *p, enum procfsm_event ev, int arg,
                 const char *why, int64_t now);

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
  if (cx->s->w == NULL)
    return; /* the stores are closed */
  if (logwriter_error(cx->s->w, &in, sp_now_ms()) < 0)
    sp_warn("error queue full, error not recorded", LS("process", p->id));
  if (ev->restart) {
    enum procfsm_state before = p->fsm.st;
    step(cx->s, p, PE_FATAL_LINE, 0, ev->category, sp_monotonic_ms());
    if (p->fsm.st != before)
      sp_info("fatal output, restarting", LS("process", p->id), LS("rule", ev->rule));
  }
}

static void emit_line(struct supervisor *s, struct proc *p, struct stream *st,
                      const char *line, size_t len)
{
  if (len && line[len - 1] == '\r')
    len--;
  int64_t seq = logstore_append(s->o.ls, p->logkey, p->run, st->which, line, len, sp_now_ms());
  if (seq > 0)
    p->last_seq = seq;
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
  st->paused = false;
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

static bool pipes_open(const struct proc *p)
{
  return p->out.fd >= 0 || p->err.fd >= 0;
}

static void stream_read(struct supervisor *s, struct proc *p, struct stream *st)
{
  static char buf[READ_CHUNK];
  for (int i = 0; i < READS_PER_EVENT && st->fd >= 0; i++) {
    ssize_t n = read(st->fd, buf, sizeof buf);
    if (n > 0) {
      if (p->cmd)
        command_take(p->cmd, st->which, buf, (size_t)n);
      else
        take_output(s, p, st, buf, (size_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    stream_close(s, p, st);
    /* A finished run's last lines are committed at once, so a follower
     * that sees the process final sees all its output. */
    if (!p->cmd && !pipes_open(p) && !procfsm_alive(&p->fsm))
      logwriter_kick(s->w);
    return;
  }
}

static int stream_open(struct supervisor *s, struct proc *p, struct stream *st, int fd,
                       int which)
{
  st->fd = fd;
  st->which = which;
  st->tag = (struct tag){TAG_STREAM, p, st};
  st->discarding = false;
  st->paused = false;
  sbuf_reset(&st->line);
  if (fd < 0)
    return 0;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &st->tag};
  return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Backpressure: while the writer lags, supervised pipes are not read (the
 * processes block on a full pipe) instead of buffering without bound. */
static void set_paused(struct supervisor *s, bool paused)
{
  if (s->paused == paused)
    return;
  __atomic_store_n(&s->paused, paused, __ATOMIC_RELAXED);
  for (struct proc *p = s->procs; p; p = p->next) {
    struct stream *sts[] = {&p->out, &p->err};
    for (int i = 0; i < 2; i++) {
      struct stream *st = sts[i];
      if (st->fd < 0 || st->paused == paused)
        continue;
      struct epoll_event ev = {.events = paused ? 0 : EPOLLIN, .data.ptr = &st->tag};
      epoll_ctl(s->epfd, EPOLL_CTL_MOD, st->fd, &ev);
      st->paused = paused;
    }
  }
}

/* ---- processes ---- */

static void probe_close(struct supervisor *s, struct proc *p)
{
  if (p->probe_fd >= 0) {
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, p->probe_fd, NULL);
    close(p->probe_fd);
    p->probe_fd = -1;
  }
  p->probe_state = PROBE_IDLE;
}

static void stdin_close(struct supervisor *s, struct proc *p)
{
  if (p->in_fd < 0)
    return;
  epoll_ctl(s->epfd, EPOLL_CTL_DEL, p->in_fd, NULL);
  close(p->in_fd);
  p->in_fd = -1;
}

static void proc_free(struct supervisor *s, struct proc *p)
{
  stream_close(s, p, &p->out);
  stream_close(s, p, &p->err);
  stream_close(s, p, &p->state);
  stdin_close(s, p);
  probe_close(s, p);
  classifier_free(p->out.cls);
  classifier_free(p->err.cls);
  sbuf_release(&p->out.line);
  sbuf_release(&p->err.line);
  sbuf_release(&p->state.line);
  free(p->id);
  free(p->sandbox);
  free(p->command);
  free(p->cwd);
  strv_free(p->cgroups);
  free(p->session_id);
  free(p->logkey);
  free(p->error);
  free(p->stdin_data);
  strv_free(p->env);
  free(p);
}

static struct proc *proc_alloc(void)
{
  struct proc *p = xcalloc(1, sizeof *p);
  p->out.fd = p->err.fd = p->state.fd = p->probe_fd = p->in_fd = -1;
  return p;
}

static struct proc *find(struct supervisor *s, const char *sandbox, const char *id)
{
  for (struct proc *p = s->procs; p; p = p->next)
    if (strcmp(p->id, id) == 0 && (sandbox == NULL || strcmp(p->sandbox, sandbox) == 0))
      return p;
  return NULL;
}

static void unlink_proc(struct proc **list, struct proc *p)
{
  for (struct proc **pp = list; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      return;
    }
}

/* Spawn a run of a supervised process, and tell its machine how it went. */
static void spawn_run(struct supervisor *s, struct proc *p, int64_t now)
{
  struct spawn_opts so = {
      .command = p->command,
      .cwd = p->cwd,
      .envp = p->env,
      .set_user = p->set_user,
      .uid = p->uid,
      .gid = p->gid,
      .nproc_limit = p->nproc_limit,
      .cgroups = p->cgroups,
  };
  struct spawn_result res;
  struct sp_error *err = NULL;
  if (sp_spawn(&so, &res, &err) < 0) {
    free(p->error);
    p->error = xstrdup(err->msg);
    sp_warn("cannot start process", LS("process", p->id), LS("error", err->msg));
    if (s->spawn_err && *s->spawn_err == NULL)
      *s->spawn_err = err;
    else
      sp_error_free(err);
    step(s, p, PE_SPAWN_FAILED, 0, NULL, now);
    return;
  }
  /* Pipes of an earlier run may still be draining: they go now. */
  stream_close(s, p, &p->out);
  stream_close(s, p, &p->err);
  if (p->run > 0)
    s->restarts_total++;
  p->run++;
  p->pid = res.pid;
  p->has_exit = false;
  p->reaped_at = 0;
  p->finished_at = 0;
  p->start_ms = sp_now_ms();
  p->end_ms = 0;
  p->probe_next = p->port ? now + 200 : 0;
  if (stream_open(s, p, &p->out, res.stdout_fd, LOGSTORE_STDOUT) < 0 ||
      stream_open(s, p, &p->err, res.stderr_fd, LOGSTORE_STDERR) < 0)
    sp_warn("epoll_ctl failed", LS("process", p->id), LS("error", strerror(errno)));
  if (s->paused) {
    __atomic_store_n(&s->paused, false, __ATOMIC_RELAXED);
    set_paused(s, true);
  }
  sp_info("process started", LS("process", p->id), LS("sandbox", p->sandbox),
          LI("pid", p->pid), LI("run", p->run));
  step(s, p, PE_SPAWNED, 0, NULL, now);
}

/* Every transition of every process goes through here: the machine
 * decides, this does what it says. */
static void step(struct supervisor *s, struct proc *p, enum procfsm_event ev, int arg,
                 const char *why, int64_t now)
{
  bool was_final = procfsm_final(&p->fsm);
  unsigned fx = procfsm_step(&p->fsm, &s->cfg, ev, arg, why, now);
  if (fx & FX_SIGNAL)
    signal_group(p, p->fsm.sig);
  if (fx & FX_TERM)
    signal_group(p, SIGTERM);
  if (fx & FX_KILL)
    sweep_add(s, p->pid, now);
  if (fx & FX_READY)
    sp_info("process ready", LS("process", p->id), LI("port", p->port));
  if (fx & FX_UNRESPONSIVE)
    sp_warn("server stopped answering, restarting", LS("process", p->id), LI("port", p->port));
  if (fx & FX_GAVE_UP)
    sp_warn("giving up on process", LS("process", p->id), LI("restarts", p->fsm.restarts));
  if (p->fsm.st != PS_RUNNING)
    probe_close(s, p);
  if (procfsm_final(&p->fsm) && !was_final)
    p->finished_at = now;
  if (fx & FX_SPAWN)
    spawn_run(s, p, now);
}

static void on_reaped(struct supervisor *s, struct proc *p, int status, int64_t now)
{
  p->reaped_at = now;
  p->end_ms = sp_now_ms();
  p->has_exit = true;
  p->wait_status = status;
  step(s, p, PE_EXIT, status, NULL, now);
  if (!p->cmd) {
    sp_info("process exited", LS("process", p->id), LI("pid", p->pid),
            LI("code", p->fsm.exit_code), LI("signal", p->fsm.exit_signal));
    if (!pipes_open(p))
      logwriter_kick(s->w);
  }
}

static void reap(struct supervisor *s, int64_t now)
{
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0)
      return;
    struct proc *lists[] = {s->procs, s->cmds};
    bool known = false;
    for (int i = 0; i < 2 && !known; i++)
      for (struct proc *p = lists[i]; p; p = p->next)
        if (procfsm_alive(&p->fsm) && p->pid == pid) {
          on_reaped(s, p, status, now);
          known = true;
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
  step(s, p, ok ? PE_PROBE_OK : PE_PROBE_FAIL, 0, NULL, now);
}

static void probe_start(struct supervisor *s, struct proc *p, int64_t now)
{
  int fd = ports_connect(p->port, AF_INET, true);
  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
      p->probe_next = now + s->o.probe_interval_ms; /* our failure, not the server's */
    else
      probe_result(s, p, false, now);
    return;
  }
  p->probe_fd = fd;
  p->probe_tag = (struct tag){TAG_PROBE, p, NULL};
  p->probe_deadline = now + PROBE_TIMEOUT_MS;
  p->probe_state = PROBE_CONNECTING;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = &p->probe_tag};
  epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void probe_io(struct supervisor *s, struct proc *p, int64_t now)
{
  if (p->probe_state == PROBE_CONNECTING) {
    int e = ports_connected(p->probe_fd);
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
      size_t room = sizeof p->probe_head;
      if (p->probe_got < room)
        memcpy(p->probe_head + p->probe_got, buf, SP_MIN((size_t)n, room - p->probe_got));
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
    size_t head = SP_MIN(p->probe_got, sizeof p->probe_head);
    probe_result(s, p, ports_http_status(p->probe_head, head) >= 0, now);
    return;
  }
}

/* ---- commands: the loop's side ---- */

static void stdin_write(struct supervisor *s, struct proc *p)
{
  while (p->in_fd >= 0) {
    ssize_t w = write(p->in_fd, p->stdin_data + p->stdin_off, p->stdin_len - p->stdin_off);
    if (w > 0)
      p->stdin_off += (size_t)w;
    if (w < 0 && errno == EAGAIN)
      return;
    if ((w < 0 && errno != EINTR) || p->stdin_off == p->stdin_len)
      stdin_close(s, p);
  }
}

/* A command is over once it was reaped and its output is drained (or
 * held open past a short grace by something it left behind). */
static bool command_finish(struct supervisor *s, struct proc *p, int64_t now, bool force)
{
  /* A killed command answers once its whole group is gone. */
  if (!force && (!procfsm_final(&p->fsm) || sweeping(s, p->pid) ||
                 (pipes_open(p) && now - p->reaped_at < DRAIN_GRACE_MS)))
    return false;
  stream_read(s, p, &p->out);
  stream_read(s, p, &p->err);
  stream_read(s, p, &p->state);
  struct command *c = p->cmd;
  pthread_mutex_lock(&c->mu);
  c->done = true;
  c->p = NULL;
  c->timed_out = p->fsm.timed_out;
  c->stopped = p->fsm.shutdown && !p->fsm.timed_out;
  c->status = p->has_exit ? p->wait_status : SIGKILL;
  c->exit_code = c->timed_out ? 137 : p->has_exit ? p->fsm.exit_code : 137;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  unlink_proc(&s->cmds, p);
  proc_free(s, p);
  command_unref(c);
  return true;
}

struct command_call {
  const struct command_opts *co;
  struct command *c;
  struct sp_error **err;
};

static bool do_command(struct supervisor *s, void *arg)
{
  struct command_call *a = arg;
  const struct command_opts *co = a->co;
  if (s->stop_started) {
    sp_error_code(a->err, "MONITOR_STOPPING", 503, "the monitor is stopping");
    return true;
  }
  struct spawn_opts so = *co->spawn;
  so.stdin_pipe = co->stdin_data != NULL;
  struct spawn_result res;
  if (sp_spawn(&so, &res, a->err) < 0)
    return true;
  int64_t now = sp_monotonic_ms();
  struct command *c = xcalloc(1, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  sp_cond_init(&c->cv);
  c->refs = 2; /* the loop's and the caller's */
  c->s = s;
  c->cap = co->output_cap ? co->output_cap : 16u << 20;
  c->state_cap = co->state_cap ? co->state_cap : 1u << 20;
  struct proc *p = proc_alloc();
  p->id = xasprintf("cmd_%d", res.pid);
  p->sandbox = xstrdup("");
  p->command = xstrdup(co->spawn->command ? co->spawn->command : "");
  p->cmd = c;
  c->p = p;
  p->pid = res.pid;
  p->run = 1;
  procfsm_init(&p->fsm, &s->cfg, true, false, 0);
  step(s, p, PE_SPAWNED, 0, NULL, now);
  stream_open(s, p, &p->out, res.stdout_fd, LOGSTORE_STDOUT);
  stream_open(s, p, &p->err, res.stderr_fd, LOGSTORE_STDERR);
  if (co->state_fd >= 0) {
    sp_set_nonblock(co->state_fd, true);
    stream_open(s, p, &p->state, co->state_fd, STATE_STREAM);
  }
  if (res.stdin_fd >= 0) {
    p->stdin_data = xmemdup(co->stdin_data, co->stdin_len);
    p->stdin_len = co->stdin_len;
    p->in_fd = res.stdin_fd;
    p->in_tag = (struct tag){TAG_STDIN, p, NULL};
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = &p->in_tag};
    if (p->stdin_len == 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, p->in_fd, &ev) < 0)
      stdin_close(s, p);
  }
  if (co->timeout_ms > 0)
    p->deadline = now + co->timeout_ms;
  p->next = s->cmds;
  s->cmds = p;
  a->c = c;
  return true;
}

struct command *supervisor_command(struct supervisor *s, const struct command_opts *co,
                                   struct sp_error **err)
{
  struct command_call a = {co, NULL, err};
  if (call(s, do_command, &a, err) < 0 || a.c == NULL) {
    if (co->state_fd >= 0)
      close(co->state_fd);
    return NULL;
  }
  return a.c;
}

bool command_wait(struct command *c, int wait_ms, command_sink sink, void *ud)
{
  struct sbuf got[3] = {SBUF_INIT, SBUF_INIT, SBUF_INIT};
  struct timespec ts;
  sp_deadline_after(&ts, wait_ms);
  pthread_mutex_lock(&c->mu);
  while (!c->done && c->buf[1].len == 0 && c->buf[2].len == 0)
    if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
      break;
  for (int i = 1; i <= 2; i++) {
    got[i] = c->buf[i];
    c->buf[i] = (struct sbuf)SBUF_INIT;
  }
  bool done = c->done;
  pthread_mutex_unlock(&c->mu);
  for (int i = 1; i <= 2; i++) {
    if (got[i].len)
      sink(ud, (enum command_stream)i, got[i].buf, got[i].len);
    sbuf_release(&got[i]);
  }
  return done;
}

void command_result(struct command *c, struct command_result *r)
{
  pthread_mutex_lock(&c->mu);
  *r = (struct command_result){
      .status = c->status,
      .exit_code = c->exit_code,
      .timed_out = c->timed_out,
      .stopped = c->stopped,
      .truncated = c->truncated,
      .state = sbuf_str(&c->state),
      .state_len = c->state.len,
  };
  pthread_mutex_unlock(&c->mu);
}

static bool do_cancel(struct supervisor *s, void *arg)
{
  struct command *c = arg;
  pthread_mutex_lock(&c->mu);
  struct proc *p = c->p;
  pthread_mutex_unlock(&c->mu);
  if (p && procfsm_alive(&p->fsm))
    step(s, p, PE_STOP, SIGKILL, NULL, sp_monotonic_ms());
  return true;
}

void command_release(struct command *c)
{
  if (c == NULL)
    return;
  pthread_mutex_lock(&c->mu);
  bool done = c->done;
  pthread_mutex_unlock(&c->mu);
  if (!done)
    call(c->s, do_cancel, c, NULL);
  command_unref(c);
}

/* ---- timers ---- */

static void proc_timers(struct supervisor *s, struct proc *p, int64_t now)
{
  if (p->fsm.kill_at && now >= p->fsm.kill_at) {
    sp_warn("stop timeout, killing group", LS("process", p->id), LI("pid", p->pid));
    step(s, p, PE_KILL_DUE, 0, NULL, now);
  }
  if (p->fsm.restart_at && now >= p->fsm.restart_at)
    step(s, p, PE_RESTART_DUE, 0, NULL, now);
  if (p->cmd && p->deadline && now >= p->deadline && procfsm_alive(&p->fsm)) {
    p->deadline = 0;
    step(s, p, PE_TIMEOUT, 0, NULL, now);
  }
  if (!p->cmd && p->reaped_at && pipes_open(p) && now - p->reaped_at >= PIPE_GRACE_MS &&
      !procfsm_alive(&p->fsm)) {
    /* Something in the old group still holds the pipes open. */
    stream_close(s, p, &p->out);
    stream_close(s, p, &p->err);
    logwriter_kick(s->w);
  }
  if (p->fsm.st == PS_RUNNING && p->port) {
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

static void forget_oldest_finished(struct supervisor *s)
{
  int finished = 0;
  for (struct proc *p = s->procs; p; p = p->next)
    if (p->finished_at)
      finished++;
  while (finished > s->o.max_finished) {
    struct proc *oldest = NULL;
    for (struct proc *p = s->procs; p; p = p->next)
      if (p->finished_at && (!oldest || p->finished_at < oldest->finished_at))
        oldest = p;
    unlink_proc(&s->procs, oldest);
    proc_free(s, oldest);
    finished--;
  }
}

static void run_timers(struct supervisor *s, int64_t now)
{
  for (struct proc *p = s->procs; p; p = p->next)
    proc_timers(s, p, now);
  for (struct proc *p = s->cmds, *next; p; p = next) {
    next = p->next;
    proc_timers(s, p, now);
    command_finish(s, p, now, false);
  }
  forget_oldest_finished(s);
  run_sweeps(s, now);
  set_paused(s, logwriter_lagging(s->w));

  /* what /api/status reads, without waiting for the loop */
  struct supervisor_counts c = {0};
  for (struct proc *p = s->procs; p; p = p->next) {
    c.total++;
    c.running += procfsm_alive(&p->fsm);
    c.ready += p->fsm.ready;
    c.failed += p->fsm.st == PS_FAILED;
  }
  c.restarts = s->restarts_total;
  c.orphans_reaped = s->orphans;
  pthread_mutex_lock(&s->q_mu);
  s->snap = c;
  pthread_mutex_unlock(&s->q_mu);
}

static int next_timeout(struct supervisor *s, int64_t now)
{
  int64_t next = now + 1000;
  if (s->sweeps)
    next = now + SWEEP_EVERY_MS;
  if (s->paused)
    next = SP_MIN(next, now + 10);
  if (s->deferred)
    next = SP_MIN(next, now + 20);
  struct proc *lists[] = {s->procs, s->cmds};
  for (int i = 0; i < 2; i++)
    for (struct proc *p = lists[i]; p; p = p->next) {
      if (p->fsm.kill_at)
        next = SP_MIN(next, p->fsm.kill_at);
      if (p->fsm.restart_at)
        next = SP_MIN(next, p->fsm.restart_at);
      if (p->deadline)
        next = SP_MIN(next, p->deadline);
      if (p->reaped_at && pipes_open(p))
        next = SP_MIN(next, p->reaped_at + (p->cmd ? DRAIN_GRACE_MS : PIPE_GRACE_MS));
      if (p->cmd && procfsm_final(&p->fsm) && !pipes_open(p) && !sweeping(s, p->pid))
        next = now;
      if (p->fsm.st == PS_RUNNING && p->port)
        next = SP_MIN(next, p->probe_state == PROBE_IDLE ? p->probe_next : p->probe_deadline);
      if (p->out.cls || p->err.cls)
        next = SP_MIN(next, now + 250);
    }
  if (s->stop_started)
    next = SP_MIN(next, now + 20);
  int64_t t = next - now;
  return t < 0 ? 0 : (int)t;
}

/* ---- the loop ---- */

static void begin_stop(struct supervisor *s, bool now_too, int64_t now)
{
  bool first = !s->stop_started;
  if (first) {
    s->stop_started = now;
    pthread_mutex_lock(&s->q_mu);
    s->stopping = true;
    pthread_mutex_unlock(&s->q_mu);
    if (s->o.on_stop)
      s->o.on_stop(s->o.ud);
  } else {
    now_too = true;
  }
  if (now_too)
    sp_info("stopping at once: SIGKILL to every process");
  struct proc *lists[] = {s->procs, s->cmds};
  for (int i = 0; i < 2; i++)
    for (struct proc *p = lists[i]; p; p = p->next)
      step(s, p, now_too ? PE_SHUTDOWN_NOW : PE_SHUTDOWN, 0, NULL, now);
}

static bool anything_alive(struct supervisor *s)
{
  if (s->cmds)
    return true;
  for (struct proc *p = s->procs; p; p = p->next)
    if (procfsm_alive(&p->fsm))
      return true;
  return false;
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
        begin_stop(s, false, now);
      }
    }
    reap(s, now);
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
    probe_io(s, t->p, now);
    break;
  case TAG_STDIN:
    stdin_write(s, t->p);
    break;
  }
}

static void writer_progress(void *ud)
{
  struct supervisor *s = ud;
  if (__atomic_load_n(&s->paused, __ATOMIC_RELAXED))
    wake(s);
}

int supervisor_run(struct supervisor *s)
{
  struct epoll_event evs[64];
  for (;;) {
    int64_t now = sp_monotonic_ms();
    if (s->stop_started && !anything_alive(s))
      break;
    if (s->stop_started && now - s->stop_started >= s->o.stop_timeout_ms + STOP_SLACK_MS) {
      sp_warn("processes outlived the stop sequence; not waiting for them");
      break;
    }
    int n = epoll_wait(s->epfd, evs, (int)SP_ARRAY_SIZE(evs), next_timeout(s, now));
    now = sp_monotonic_ms();
    for (int i = 0; i < n; i++)
      handle(s, &evs[i], now);
    reap(s, now);
    run_calls(s);
    run_timers(s, sp_monotonic_ms());
  }

  /* Nothing runs any more (or will be waited for): every command is
   * answered, every request after this is refused, the stores flushed. */
  int64_t now = sp_monotonic_ms();
  for (struct proc *p = s->procs; p; p = p->next) {
    stream_read(s, p, &p->out);
    stream_read(s, p, &p->err);
    stream_close(s, p, &p->out);
    stream_close(s, p, &p->err);
  }
  while (s->cmds)
    command_finish(s, s->cmds, now, true);
  pthread_mutex_lock(&s->q_mu);
  s->closed = true;
  struct call *q = s->queue;
  s->queue = NULL;
  s->queue_tail = &s->queue;
  pthread_mutex_unlock(&s->q_mu);
  for (struct call *c = s->deferred, *next; c; c = next) {
    next = c->next;
    answer(s, c, true);
  }
  s->deferred = NULL;
  for (struct call *c = q, *next; c; c = next) {
    next = c->next;
    answer(s, c, true);
  }
  logwriter_free(s->w);
  s->w = NULL;
  return 0;
}

bool supervisor_closed(struct supervisor *s)
{
  pthread_mutex_lock(&s->q_mu);
  bool v = s->closed;
  pthread_mutex_unlock(&s->q_mu);
  return v;
}

bool supervisor_stopping(struct supervisor *s)
{
  pthread_mutex_lock(&s->q_mu);
  bool v = s->stopping;
  pthread_mutex_unlock(&s->q_mu);
  return v;
}

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
  s->cfg = (struct procfsm_cfg){
      .stop_timeout_ms = s->o.stop_timeout_ms,
      .backoff_min_ms = s->o.backoff_min_ms,
      .backoff_max_ms = s->o.backoff_max_ms,
      .healthy_after_ms = s->o.healthy_after_ms,
      .max_deaths = s->o.max_deaths,
      .death_window_ms = s->o.death_window_ms,
      .probe_failures = s->o.probe_failures,
  };
  pthread_mutex_init(&s->q_mu, NULL);
  pthread_cond_init(&s->q_cv, NULL);
  s->queue_tail = &s->queue;

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
  s->w = logwriter_new(s->o.ls, s->o.flush_interval_ms, writer_progress, s);
  return s;
}

void supervisor_free(struct supervisor *s)
{
  if (s == NULL)
    return;
  logwriter_free(s->w);
  while (s->procs) {
    struct proc *p = s->procs;
    s->procs = p->next;
    proc_free(s, p);
  }
  while (s->sweeps) {
    struct sweep *w = s->sweeps;
    s->sweeps = w->next;
    free(w);
  }
  if (s->epfd >= 0)
    close(s->epfd);
  if (s->sigfd >= 0)
    close(s->sigfd);
  if (s->evfd >= 0)
    close(s->evfd);
  pthread_mutex_destroy(&s->q_mu);
  pthread_cond_destroy(&s->q_cv);
  free(s);
}

/* ---- the requests ---- */

static cJSON *proc_json(const struct proc *p)
{
  char ts[40];
  bool alive = procfsm_alive(&p->fsm);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "id", p->id);
  if (p->run > 0)
    json_add_int(j, "pid", p->pid);
  else
    cJSON_AddNullToObject(j, "pid");
  cJSON_AddStringToObject(j, "command", p->command);
  cJSON_AddStringToObject(j, "status", procfsm_status(&p->fsm));
  if (p->start_ms)
    cJSON_AddStringToObject(j, "startTime", sp_iso8601(p->start_ms, ts, sizeof ts));
  else
    cJSON_AddNullToObject(j, "startTime");
  if (p->end_ms && !alive)
    cJSON_AddStringToObject(j, "endTime", sp_iso8601(p->end_ms, ts, sizeof ts));
  else
    cJSON_AddNullToObject(j, "endTime");
  if (p->has_exit && !alive)
    json_add_int(j, "exitCode", p->fsm.exit_code);
  else
    cJSON_AddNullToObject(j, "exitCode");
  json_add_string_or_null(j, "sessionId", p->session_id);
  json_add_int(j, "restarts", p->fsm.restarts);
  cJSON_AddBoolToObject(j, "ready", p->fsm.ready);
  if (p->port)
    json_add_int(j, "port", p->port);
  cJSON_AddBoolToObject(j, "autoRestart", p->fsm.auto_restart);
  if (p->fsm.exit_reason) {
    cJSON *le = cJSON_AddObjectToObject(j, "lastExit");
    json_add_int(le, "code", p->fsm.exit_code);
    if (p->fsm.exit_signal)
      json_add_int(le, "signal", p->fsm.exit_signal);
    else
      cJSON_AddNullToObject(le, "signal");
    cJSON_AddStringToObject(le, "time", sp_iso8601(p->end_ms, ts, sizeof ts));
    cJSON_AddStringToObject(le, "reason", p->fsm.exit_reason);
  } else {
    cJSON_AddNullToObject(j, "lastExit");
  }
  if (p->error)
    cJSON_AddStringToObject(j, "error", p->error);
  return j;
}

static int not_found(struct sp_error **err, const char *id)
{
  sp_error_code(err, "PROCESS_NOT_FOUND", 404, "Process %s not found", id);
  sp_error_context(err, "processId", id);
  return -1;
}

/* The arguments and answer of most requests. */
struct req {
  const char *sandbox, *id;
  const struct proc_spec *spec;
  int sig;
  cJSON *out;
  int n;
  struct sp_error **err;
  int64_t deadline;
  bool begun;
  char **keys;
  struct proc_state *st;
  struct supervisor_counts *counts;
};

static bool do_start(struct supervisor *s, void *arg)
{
  struct req *a = arg;
  const struct proc_spec *spec = a->spec;
  if (s->stop_started) {
    sp_error_code(a->err, "MONITOR_STOPPING", 503, "the monitor is stopping");
    return true;
  }
  struct proc *old = spec->id ? find(s, spec->sandbox, spec->id) : NULL;
  if (old && !old->finished_at) {
    sp_error_code(a->err, "PROCESS_EXISTS", 409, "process '%s' already exists", spec->id);
    return true;
  }
  if (old) {
    /* A finished process of the same id is replaced. */
    unlink_proc(&s->procs, old);
    proc_free(s, old);
  }
  struct proc *p = proc_alloc();
  p->id = spec->id ? xstrdup(spec->id) : xasprintf("proc_%llu", (unsigned long long)++s->next_id);
  while (!spec->id && find(s, spec->sandbox, p->id)) {
    free(p->id);
    p->id = xasprintf("proc_%llu", (unsigned long long)++s->next_id);
  }
  p->sandbox = xstrdup(spec->sandbox);
  p->command = xstrdup(spec->command);
  p->cwd = spec->cwd ? xstrdup(spec->cwd) : NULL;
  p->session_id = spec->session_id ? xstrdup(spec->session_id) : NULL;
  p->env = spec->env ? strv_dup(spec->env) : NULL;
  p->logkey = supervisor_log_key(p->sandbox, p->id);
  p->port = spec->port;
  p->set_user = spec->set_user;
  p->uid = spec->uid;
  p->gid = spec->gid;
  p->nproc_limit = spec->nproc_limit;
  p->cgroups = spec->cgroups ? strv_dup(spec->cgroups) : NULL;
  procfsm_init(&p->fsm, &s->cfg, false, spec->auto_restart,
               spec->max_restarts < 0 ? s->o.default_max_restarts : spec->max_restarts);
  if (s->o.rules) {
    p->out.cls = classifier_new(s->o.rules);
    p->err.cls = classifier_new(s->o.rules);
  }
  p->next = s->procs;
  s->procs = p;
  /* A process that cannot be spawned stays listed with status "error", so
   * the client can see why. */
  s->spawn_err = a->err;
  spawn_run(s, p, sp_monotonic_ms());
  s->spawn_err = NULL;
  if (p->fsm.st != PS_ERROR)
    a->out = proc_json(p);
  return true;
}

cJSON *supervisor_start(struct supervisor *s, const struct proc_spec *spec,
                        struct sp_error **err)
{
  if (spec->command == NULL || spec->command[0] == '\0') {
    sp_error_code(err, "INVALID_REQUEST", 400, "'command' is required");
    return NULL;
  }
  if (spec->id && !sp_id_ok(SP_ID_PROCESS, spec->id)) {
    sp_error_code(err, "INVALID_REQUEST", 400,
                  "'processId' must be 1-64 characters of [A-Za-z0-9._-]");
    return NULL;
  }
  if (spec->port < 0 || spec->port > 65535) {
    sp_error_code(err, "INVALID_REQUEST", 400, "'port' must be 1-65535");
    return NULL;
  }
  struct req a = {.spec = spec, .err = err};
  if (call(s, do_start, &a, err) < 0)
    return NULL;
  return a.out;
}

static bool do_get(struct supervisor *s, void *arg)
{
  struct req *a = arg;
  struct proc *p = find(s, a->sandbox, a->id);
  if (p)
    a->out = proc_json(p);
  else
    not_found(a->err, a->id);
  return true;
}

cJSON *supervisor_get(struct supervisor *s, const char *sandbox, const char *id,
                      struct sp_error **err)
{
  struct req a = {.sandbox = sandbox, .id = id, .err = err};
  if (call(s, do_get, &a, err) < 0)
    return NULL;
  return a.out;
}

static bool is_terminating(int sig)
{
  return sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT || sig == SIGKILL;
}

static bool do_signal(struct supervisor *s, void *arg)
{
  struct req *a = arg;
  struct proc *p = find(s, a->sandbox, a->id);
  if (p == NULL) {
    not_found(a->err, a->id);
    return true;
  }
  if (is_terminating(a->sig))
    step(s, p, PE_STOP, a->sig, NULL, sp_monotonic_ms());
  else if (procfsm_alive(&p->fsm))
    signal_group(p, a->sig); /* not a change of state */
  a->out = proc_json(p);
  return true;
}

cJSON *supervisor_signal(struct supervisor *s, const char *sandbox, const char *id,
                         int sig, struct sp_error **err)
{
  struct req a = {.sandbox = sandbox, .id = id, .sig = sig, .err = err};
  if (call(s, do_signal, &a, err) < 0)
    return NULL;
  return a.out;
}

static bool do_restart(struct supervisor *s, void *arg)
{
  struct req *a = arg;
  struct proc *p = find(s, a->sandbox, a->id);
  if (p == NULL) {
    not_found(a->err, a->id);
    return true;
  }
  if (s->stop_started) {
    sp_error_code(a->err, "MONITOR_STOPPING", 503, "the monitor is stopping");
    return true;
  }
  s->spawn_err = a->err;
  step(s, p, PE_RESTART, 0, NULL, sp_monotonic_ms());
  s->spawn_err = NULL;
  if (p->fsm.st != PS_ERROR)
    a->out = proc_json(p);
  return true;
}

cJSON *supervisor_restart(struct supervisor *s, const char *sandbox, const char *id,
                          struct sp_error **err)
{
  struct req a = {.sandbox = sandbox, .id = id, .err = err};
  if (call(s, do_restart, &a, err) < 0)
    return NULL;
  return a.out;
}

static bool do_list(struct supervisor *s, void *arg)
{
  struct req *a = arg;
  /* Oldest first: the list is kept newest first. */
  int n = 0;
  for (struct proc *p = s->procs; p; p = p->next)
    n++;
  struct proc **v = xcalloc((size_t)n + 1, sizeof *v);
  int i = 0;
  for (struct proc *p = s->procs; p; p = p->next)
    v[i++] = p;
  for (i = n - 1; i >= 0; i--)
    if (a->sandbox == NULL || strcmp(v[i]->sandbox, a->sandbox) == 0)
      cJSON_AddItemToArray(a->out, proc_json(v[i]));
  free(v);
  return true;
}

cJSON *supervisor_list(struct supervisor *s, const char *sandbox)
{
  struct req a = {.sandbox = sandbox, .out = cJSON_CreateArray()};
  call(s, do_list, &a, NULL);
  return a.out;
}

static bool do_kill_all(struct supervisor *s, void *arg)
{
  struct req *a = arg;
  int64_t now = sp_monotonic_ms();
  for (struct proc *p = s->procs; p; p = p->next) {
    if (a->sandbox && strcmp(p->sandbox, a->sandbox) != 0)
      continue;
    if (!procfsm_final(&p->fsm)) {
      step(s, p, PE_STOP, SIGTERM, NULL, now);
      a->n++;
    }
  }
  return true;
}

int supervisor_kill_all(struct supervisor *s, const char *sandbox)
{
  struct req a = {.sandbox = sandbox};
  call(s, do_kill_all, &a, NULL);
  return a.n;
}

static bool sandbox_alive(struct supervisor *s, const char *sandbox)
{
  for (struct proc *p = s->procs; p; p = p->next)
    if (strcmp(p->sandbox, sandbox) == 0 && procfsm_alive(&p->fsm))
      return true;
  return false;
}

/* Kill, then answer once all are reaped (or at the deadline). */
static bool do_forget(struct supervisor *s, void *arg)
{
  struct req *a = arg;
  int64_t now = sp_monotonic_ms();
  if (!a->begun) {
    a->begun = true;
    for (struct proc *p = s->procs; p; p = p->next) {
      if (strcmp(p->sandbox, a->sandbox) != 0)
        continue;
      a->n++;
      if (!procfsm_final(&p->fsm))
        step(s, p, PE_STOP, SIGKILL, NULL, now);
    }
  }
  if (sandbox_alive(s, a->sandbox) && now < a->deadline)
    return false;
  size_t nkeys = 0;
  for (struct proc *p = s->procs, *next; p; p = next) {
    next = p->next;
    if (strcmp(p->sandbox, a->sandbox) != 0 || procfsm_alive(&p->fsm))
      continue;
    a->keys = xreallocarray(a->keys, nkeys + 2, sizeof *a->keys);
    a->keys[nkeys++] = xstrdup(p->logkey);
    a->keys[nkeys] = NULL;
    unlink_proc(&s->procs, p);
    proc_free(s, p);
  }
  return true;
}

int supervisor_forget_sandbox(struct supervisor *s, const char *sandbox, int64_t timeout_ms)
{
  struct req a = {.sandbox = sandbox, .deadline = sp_monotonic_ms() + timeout_ms};
  call(s, do_forget, &a, NULL);
  /* Their logs go here, off the loop. */
  for (char **k = a.keys; k && *k; k++) {
    struct sp_error *err = NULL;
    if (logstore_clear(s->o.ls, *k, &err) < 0) {
      sp_warn("cannot clear the logs of a removed process", LS("process", *k),
              LS("error", err->msg));
      sp_error_free(err);
    }
  }
  strv_free(a.keys);
  return a.n;
}

static bool do_state(struct supervisor *s, void *arg)
{
  struct req *a = arg;
  struct proc *p = find(s, a->sandbox, a->id);
  if (p == NULL)
    return true;
  struct proc_state *st = a->st;
  st->found = true;
  /* final: over, its pipes closed, its last line committed */
  st->final = p->finished_at != 0 && !pipes_open(p) &&
              (logstore_last_committed_seq(s->o.ls) >= p->last_seq ||
               sp_monotonic_ms() - p->finished_at >= FINAL_COMMIT_WAIT_MS);
  if (p->finished_at && !pipes_open(p) && !st->final)
    logwriter_kick(s->w);
  st->run = p->run;
  st->has_exit = p->has_exit;
  st->exit_code = p->fsm.exit_code;
  snprintf(st->status, sizeof st->status, "%s", procfsm_status(&p->fsm));
  return true;
}

void supervisor_state(struct supervisor *s, const char *sandbox, const char *id,
                      struct proc_state *st)
{
  memset(st, 0, sizeof *st);
  struct req a = {.sandbox = sandbox, .id = id, .st = st};
  call(s, do_state, &a, NULL);
}

void supervisor_counts(struct supervisor *s, struct supervisor_counts *c)
{
  pthread_mutex_lock(&s->q_mu);
  *c = s->snap;
  pthread_mutex_unlock(&s->q_mu);
}
