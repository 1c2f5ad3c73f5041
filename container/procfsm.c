#include "procfsm.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "util.h"

struct step {
  struct procfsm *f;
  const struct procfsm_cfg *c;
  int arg;
  const char *why;
  int64_t now;
};

typedef unsigned (*action_fn)(const struct step *s);

/* ---- helpers the actions share ---- */

static unsigned begin_stop(const struct step *s, int sig)
{
  struct procfsm *f = s->f;
  f->st = PS_STOPPING;
  f->restart_at = 0;
  f->restart_now = false;
  if (sig == SIGKILL)
    return FX_KILL;
  if (f->kill_at == 0)
    f->kill_at = s->now + s->c->stop_timeout_ms;
  f->sig = sig;
  return FX_SIGNAL;
}

static unsigned begin_restart(const struct step *s, const char *reason, bool now)
{
  struct procfsm *f = s->f;
  f->st = PS_RESTARTING;
  f->reason = reason;
  f->restart_now = now;
  f->ready = false;
  if (f->kill_at == 0)
    f->kill_at = s->now + s->c->stop_timeout_ms;
  return FX_TERM;
}

/* The next restart waits the current backoff, which then doubles. */
static void schedule_restart(const struct step *s)
{
  struct procfsm *f = s->f;
  f->st = PS_STARTING;
  f->restart_at = s->now + f->backoff_ms;
  f->backoff_ms = SP_MIN(f->backoff_ms * 2, s->c->backoff_max_ms);
}

static bool too_many_deaths(const struct step *s)
{
  struct procfsm *f = s->f;
  if (f->ndeaths == PROCFSM_DEATHS) {
    memmove(f->deaths, f->deaths + 1, (PROCFSM_DEATHS - 1) * sizeof f->deaths[0]);
    f->ndeaths--;
  }
  f->deaths[f->ndeaths++] = s->now;
  int recent = 0;
  for (int i = 0; i < f->ndeaths; i++)
    if (s->now - f->deaths[i] <= s->c->death_window_ms)
      recent++;
  return recent >= s->c->max_deaths;
}

static void reset_tally(const struct step *s)
{
  s->f->ndeaths = 0;
  s->f->backoff_ms = s->c->backoff_min_ms;
}

/* ---- actions ---- */

static unsigned a_ignore(const struct step *s)
{
  (void)s;
  return 0;
}

static unsigned a_spawned(const struct step *s)
{
  struct procfsm *f = s->f;
  f->st = PS_RUNNING;
  f->run_started = s->now;
  f->ready = false;
  f->probe_fails = 0;
  f->kill_at = f->restart_at = 0;
  f->restart_now = false;
  f->timed_out = false;
  f->reason = NULL;
  return 0;
}

static unsigned a_spawn_failed(const struct step *s)
{
  s->f->st = PS_ERROR;
  return 0;
}

static unsigned a_respawn(const struct step *s)
{
  if (s->f->shutdown)
    return 0;
  s->f->restart_at = 0;
  s->f->restarts++;
  return FX_SPAWN;
}

/* A restart asked for while nothing runs: at once, the tally forgiven. */
static unsigned a_restart_idle(const struct step *s)
{
  if (s->f->shutdown)
    return 0;
  reset_tally(s);
  s->f->st = PS_STARTING;
  return a_respawn(s);
}

/* A restart asked for while a run goes on (or is being stopped): end it
 * and start again at once. */
static unsigned a_restart_running(const struct step *s)
{
  if (s->f->shutdown)
    return 0;
  reset_tally(s);
  return begin_restart(s, "restart", true);
}

static unsigned a_restart_again(const struct step *s)
{
  if (s->f->shutdown)
    return 0;
  reset_tally(s);
  s->f->restart_now = true;
  s->f->reason = "restart";
  return 0;
}

static unsigned a_cancel(const struct step *s)
{
  s->f->st = PS_KILLED;
  s->f->restart_at = 0;
  return 0;
}

static unsigned a_stop(const struct step *s)
{
  return begin_stop(s, s->arg);
}

static unsigned a_stop_again(const struct step *s)
{
  if (s->arg == SIGKILL)
    return FX_KILL;
  s->f->sig = s->arg;
  return FX_SIGNAL;
}

static unsigned a_fatal_line(const struct step *s)
{
  if (s->f->oneshot || !s->f->auto_restart || s->f->shutdown)
    return 0;
  return begin_restart(s, s->why ? s->why : "fatal", false);
}

static unsigned a_probe_ok(const struct step *s)
{
  struct procfsm *f = s->f;
  f->probe_fails = 0;
  if (f->ready)
    return 0;
  f->ready = true;
  return FX_READY;
}

static unsigned a_probe_fail(const struct step *s)
{
  struct procfsm *f = s->f;
  if (!f->ready)
    return 0; /* still starting up */
  if (++f->probe_fails < s->c->probe_failures || f->shutdown)
    return 0;
  return begin_restart(s, "unresponsive", false) | FX_UNRESPONSIVE;
}

static unsigned a_timeout(const struct step *s)
{
  s->f->timed_out = true;
  s->f->reason = "timeout";
  return begin_stop(s, SIGKILL);
}

static unsigned a_kill_due(const struct step *s)
{
  s->f->kill_at = 0;
  return FX_KILL;
}

static unsigned a_shutdown(const struct step *s)
{
  s->f->shutdown = true;
  return begin_stop(s, SIGTERM);
}

static unsigned a_shutdown_idle(const struct step *s)
{
  s->f->shutdown = true;
  if (procfsm_final(s->f))
    return 0;
  return a_cancel(s);
}

static unsigned a_shutdown_stopping(const struct step *s)
{
  s->f->shutdown = true;
  if (s->f->kill_at == 0 || s->f->kill_at > s->now + s->c->stop_timeout_ms)
    s->f->kill_at = s->now + s->c->stop_timeout_ms;
  return 0;
}

static unsigned a_shutdown_now(const struct step *s)
{
  s->f->shutdown = true;
  s->f->st = PS_STOPPING;
  s->f->kill_at = 0;
  return FX_KILL;
}

/* Reaped: record the exit, then decide what comes next. */
static unsigned record_exit(const struct step *s)
{
  struct procfsm *f = s->f;
  int status = s->arg;
  f->exit_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  f->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + f->exit_signal;
  f->ready = false;
  f->kill_at = 0;
  /* A supervised run is over: what is left of its group goes too.  A
   * command may leave work behind on purpose (`server &`). */
  return f->oneshot ? 0 : FX_TERM;
}

static unsigned a_exit_running(const struct step *s)
{
  struct procfsm *f = s->f;
  unsigned fx = record_exit(s);
  if (f->oneshot || !f->auto_restart || f->exit_code == 0 || f->shutdown) {
    f->exit_reason = "exit";
    f->st = f->exit_code == 0 ? PS_COMPLETED : PS_FAILED;
    return fx;
  }
  f->exit_reason = "crash";
  if (s->now - f->run_started >= s->c->healthy_after_ms)
    f->backoff_ms = s->c->backoff_min_ms;
  if (too_many_deaths(s) || f->restarts >= f->max_restarts) {
    f->st = PS_FAILED;
    return fx | FX_GAVE_UP;
  }
  schedule_restart(s);
  return fx;
}

static unsigned a_exit_stopping(const struct step *s)
{
  struct procfsm *f = s->f;
  record_exit(s);
  f->exit_reason = f->timed_out ? "timeout" : "stopped";
  f->st = PS_KILLED;
  return FX_KILL;
}

static unsigned a_exit_restarting(const struct step *s)
{
  struct procfsm *f = s->f;
  unsigned fx = record_exit(s);
  f->exit_reason = f->reason ? f->reason : "restart";
  f->reason = NULL;
  if (f->shutdown) {
    f->st = PS_KILLED;
    return fx;
  }
  if (f->restart_now) {
    f->st = PS_STARTING;
    f->restart_at = s->now;
  } else {
    schedule_restart(s);
  }
  return fx;
}

/* The table.  A pair not named here is ignored. */
static const action_fn actions[PS__COUNT][PE__COUNT] = {
    [PS_STARTING] =
        {
            [PE_SPAWNED] = a_spawned,
            [PE_SPAWN_FAILED] = a_spawn_failed,
            [PE_RESTART_DUE] = a_respawn,
            [PE_STOP] = a_cancel,
            [PE_RESTART] = a_restart_idle,
            [PE_SHUTDOWN] = a_shutdown_idle,
            [PE_SHUTDOWN_NOW] = a_shutdown_idle,
        },
    [PS_RUNNING] =
        {
            [PE_EXIT] = a_exit_running,
            [PE_STOP] = a_stop,
            [PE_RESTART] = a_restart_running,
            [PE_FATAL_LINE] = a_fatal_line,
            [PE_PROBE_OK] = a_probe_ok,
            [PE_PROBE_FAIL] = a_probe_fail,
            [PE_TIMEOUT] = a_timeout,
            [PE_SHUTDOWN] = a_shutdown,
            [PE_SHUTDOWN_NOW] = a_shutdown_now,
        },
    [PS_STOPPING] =
        {
            [PE_EXIT] = a_exit_stopping,
            [PE_KILL_DUE] = a_kill_due,
            [PE_STOP] = a_stop_again,
            [PE_RESTART] = a_restart_running,
            [PE_SHUTDOWN] = a_shutdown_stopping,
            [PE_SHUTDOWN_NOW] = a_shutdown_now,
        },
    [PS_RESTARTING] =
        {
            [PE_EXIT] = a_exit_restarting,
            [PE_KILL_DUE] = a_kill_due,
            [PE_STOP] = a_stop,
            [PE_RESTART] = a_restart_again,
            [PE_SHUTDOWN] = a_shutdown,
            [PE_SHUTDOWN_NOW] = a_shutdown_now,
        },
    [PS_COMPLETED] = {[PE_RESTART] = a_restart_idle, [PE_SHUTDOWN] = a_shutdown_idle},
    [PS_FAILED] = {[PE_RESTART] = a_restart_idle, [PE_SHUTDOWN] = a_shutdown_idle},
    [PS_KILLED] = {[PE_RESTART] = a_restart_idle, [PE_SHUTDOWN] = a_shutdown_idle},
    [PS_ERROR] = {[PE_RESTART] = a_restart_idle, [PE_SHUTDOWN] = a_shutdown_idle},
};

void procfsm_init(struct procfsm *f, const struct procfsm_cfg *c, bool oneshot,
                  bool auto_restart, int max_restarts)
{
  memset(f, 0, sizeof *f);
  f->st = PS_STARTING;
  f->oneshot = oneshot;
  f->auto_restart = auto_restart && !oneshot;
  f->max_restarts = max_restarts;
  f->backoff_ms = c->backoff_min_ms;
}

unsigned procfsm_step(struct procfsm *f, const struct procfsm_cfg *c, enum procfsm_event ev,
                      int arg, const char *why, int64_t now)
{
  if ((unsigned)f->st >= PS__COUNT || (unsigned)ev >= PE__COUNT)
    return 0;
  action_fn fn = actions[f->st][ev];
  struct step s = {f, c, arg, why, now};
  return fn ? fn(&s) : a_ignore(&s);
}

bool procfsm_final(const struct procfsm *f)
{
  return f->st == PS_COMPLETED || f->st == PS_FAILED || f->st == PS_KILLED ||
         f->st == PS_ERROR;
}

bool procfsm_alive(const struct procfsm *f)
{
  return f->st == PS_RUNNING || f->st == PS_STOPPING || f->st == PS_RESTARTING;
}

const char *procfsm_status(const struct procfsm *f)
{
  static const char *const names[PS__COUNT] = {
      [PS_STARTING] = "starting", [PS_RUNNING] = "running",   [PS_STOPPING] = "running",
      [PS_RESTARTING] = "running", [PS_COMPLETED] = "completed", [PS_FAILED] = "failed",
      [PS_KILLED] = "killed",     [PS_ERROR] = "error",
  };
  return (unsigned)f->st < PS__COUNT ? names[f->st] : "error";
}

const char *procfsm_state_name(enum procfsm_state st)
{
  static const char *const names[PS__COUNT] = {
      [PS_STARTING] = "STARTING",   [PS_RUNNING] = "RUNNING", [PS_STOPPING] = "STOPPING",
      [PS_RESTARTING] = "RESTARTING", [PS_COMPLETED] = "COMPLETED", [PS_FAILED] = "FAILED",
      [PS_KILLED] = "KILLED",       [PS_ERROR] = "ERROR",
  };
  return (unsigned)st < PS__COUNT ? names[st] : "?";
}

const char *procfsm_event_name(enum procfsm_event e)
{
  static const char *const names[PE__COUNT] = {
      [PE_SPAWNED] = "SPAWNED",     [PE_SPAWN_FAILED] = "SPAWN_FAILED", [PE_EXIT] = "EXIT",
      [PE_RESTART_DUE] = "RESTART_DUE", [PE_KILL_DUE] = "KILL_DUE",     [PE_STOP] = "STOP",
      [PE_RESTART] = "RESTART",     [PE_FATAL_LINE] = "FATAL_LINE",   [PE_PROBE_OK] = "PROBE_OK",
      [PE_PROBE_FAIL] = "PROBE_FAIL", [PE_TIMEOUT] = "TIMEOUT",       [PE_SHUTDOWN] = "SHUTDOWN",
      [PE_SHUTDOWN_NOW] = "SHUTDOWN_NOW",
  };
  return (unsigned)e < PE__COUNT ? names[e] : "?";
}
