/* The life of one process, as one state, one event and one table of
 * (state, event) -> action (s6-supervise's actions[state][event]).
 *
 * Pure: procfsm_step() changes the machine and returns what the caller must
 * do (spawn, signal the group); it never forks or signals itself, so the
 * table is tested without children.  Timers are deadlines in the machine
 * (kill_at, restart_at, on the caller's monotonic clock); the caller feeds
 * PE_KILL_DUE and PE_RESTART_DUE when they pass.
 *
 * The same machine runs supervised processes (dev servers: restart with
 * backoff, a death tally, port probes) and one-shot commands (oneshot: no
 * restart, a timeout). */
#ifndef SP_PROCFSM_H
#define SP_PROCFSM_H

#include <stdbool.h>
#include <stdint.h>

enum procfsm_state {
  PS_STARTING,   /* not running; spawned at restart_at (a new process: now) */
  PS_RUNNING,
  PS_STOPPING,   /* asked to stop: signalled, SIGKILL at kill_at, no restart */
  PS_RESTARTING, /* signalled for a restart: spawned again after its exit */
  PS_COMPLETED,  /* final: exit 0 */
  PS_FAILED,     /* final: non-zero exit, or given up after too many deaths */
  PS_KILLED,     /* final: stopped on request, or by a timeout */
  PS_ERROR,      /* final: could not be spawned */
  PS__COUNT
};

enum procfsm_event {
  PE_SPAWNED,     /* the caller's spawn succeeded */
  PE_SPAWN_FAILED,
  PE_EXIT,        /* reaped; arg: the wait status */
  PE_RESTART_DUE, /* now >= restart_at */
  PE_KILL_DUE,    /* now >= kill_at */
  PE_STOP,        /* a terminating signal asked for; arg: the signal */
  PE_RESTART,     /* restart asked for */
  PE_FATAL_LINE,  /* the classifier saw output that calls for a restart */
  PE_PROBE_OK,    /* the port answered HTTP */
  PE_PROBE_FAIL,
  PE_TIMEOUT,     /* a command ran past its timeout */
  PE_SHUTDOWN,    /* the monitor is stopping: TERM now, KILL at kill_at */
  PE_SHUTDOWN_NOW,/* ... and will not wait: KILL now */
  PE__COUNT
};

/* What the caller does after a step, in this order. */
enum {
  FX_SPAWN = 1 << 0,   /* spawn a run; then feed PE_SPAWNED or PE_SPAWN_FAILED */
  FX_SIGNAL = 1 << 1,  /* send `sig` to the group */
  FX_KILL = 1 << 2,    /* SIGKILL the group */
  FX_TERM = 1 << 3,    /* SIGTERM the group */
  FX_GAVE_UP = 1 << 4, /* too many deaths or restarts: say so */
  FX_READY = 1 << 5,   /* became ready */
  FX_UNRESPONSIVE = 1 << 6, /* a ready server stopped answering: restarting */
};

struct procfsm_cfg {
  int64_t stop_timeout_ms;  /* signal -> SIGKILL */
  int64_t backoff_min_ms, backoff_max_ms;
  int64_t healthy_after_ms; /* a run this long resets the backoff */
  int max_deaths;           /* give up after this many deaths ... */
  int64_t death_window_ms;  /* ... within this window */
  int probe_failures;       /* failed probes of a ready server before a restart */
};

#define PROCFSM_DEATHS 64

struct procfsm {
  enum procfsm_state st;
  bool oneshot;        /* a command: never restarted */
  bool auto_restart;
  int max_restarts;
  int restarts;        /* runs after the first */
  bool ready;          /* the port answers (RUNNING only) */
  int probe_fails;
  bool restart_now;    /* RESTARTING without backoff */
  bool timed_out;      /* a command was killed by its timeout */
  bool shutdown;       /* the monitor is stopping: nothing is spawned again */
  int sig;             /* for FX_SIGNAL */
  int64_t backoff_ms;
  int64_t run_started; /* when the current run was spawned */
  int64_t kill_at;     /* 0: none */
  int64_t restart_at;  /* 0: none */
  const char *reason;  /* why the current run is being ended, if asked */
  /* Set by PE_EXIT. */
  int exit_code;       /* the code, or 128 + signal */
  int exit_signal;     /* 0: exited */
  const char *exit_reason; /* "exit", "crash", "stopped", "restart", "timeout", ... */
  int64_t deaths[PROCFSM_DEATHS];
  int ndeaths;
};

void procfsm_init(struct procfsm *f, const struct procfsm_cfg *c, bool oneshot,
                  bool auto_restart, int max_restarts);
/* One transition; returns FX_* bits.  `arg`: see the events; `why`: the
 * rule's category for PE_FATAL_LINE (a static string), else NULL. */
unsigned procfsm_step(struct procfsm *f, const struct procfsm_cfg *c, enum procfsm_event ev,
                      int arg, const char *why, int64_t now);

bool procfsm_final(const struct procfsm *f);
/* Spawned and not yet reaped. */
bool procfsm_alive(const struct procfsm *f);
/* The SDK's status: starting, running, completed, failed, killed, error. */
const char *procfsm_status(const struct procfsm *f);
const char *procfsm_state_name(enum procfsm_state s);
const char *procfsm_event_name(enum procfsm_event e);

#endif
