/* The supervisor: one thread owns every process of the monitor, supervised
 * dev servers and one-shot commands alike.  Its loop (epoll over a
 * signalfd, the children's pipes, port probes, a timerfd and an eventfd)
 * alone forks, reaps (every child and, as pid 1, every orphan), signals,
 * times out and probes; each process's life is a procfsm (procfsm.h).
 *
 * The other functions are called from HTTP threads: each hands the loop a
 * request and waits for its answer, so no other thread touches process
 * state.  Output lines go to the log store and the classifier; commits (of
 * lines and errors) happen on a writer thread, and while it lags the loop
 * stops reading pipes instead of buffering without bound.
 *
 * Process states (the Cloudflare SDK's): "starting" (spawned, or waiting for
 * a restart after a crash), "running", "completed" (exit 0), "failed"
 * (non-zero exit without restart, or given up after too many deaths),
 * "killed" (stopped on request), "error" (could not be spawned).  "ready"
 * says the port answers HTTP.
 *
 * Stopping: SIGTERM or SIGINT starts it: every
 * process and command gets SIGTERM on its group, SIGKILL after the stop
 * timeout (a second signal: at once); commands end cut short; the stores
 * are flushed; supervisor_run returns.  Requests made after that fail with
 * MONITOR_STOPPING (503). */
#ifndef SP_SUPERVISOR_H
#define SP_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sp_error;
struct cJSON;
struct logstore;
struct classify_rules;
struct supervisor;

struct supervisor_opts {
  struct logstore *ls;
  const struct classify_rules *rules; /* NULL: no classification */
  int64_t stop_timeout_ms;   /* SIGTERM -> SIGKILL on the group; default 5000 */
  int64_t backoff_min_ms;    /* first restart delay; default 1000 */
  int64_t backoff_max_ms;    /* default 30000 */
  int64_t healthy_after_ms;  /* a run this long resets the backoff; default 60000 */
  int max_deaths;            /* give up after this many deaths ... default 5 */
  int64_t death_window_ms;   /* ... within this window; default 60000 */
  int default_max_restarts;  /* when a start does not say; default 10 */
  int64_t probe_interval_ms; /* default 1000 */
  int probe_failures;        /* consecutive failed probes of a ready server
                                before it is restarted; default 3 */
  int64_t flush_interval_ms; /* log batches commit at least this often; default 50 */
  int max_finished;          /* finished processes remembered; default 256 */
  /* Called on the loop when the stop sequence starts (e.g. to stop
   * accepting requests). */
  void (*on_stop)(void *ud);
  void *ud;
};

struct proc_spec {
  const char *id;            /* NULL: "proc_N" */
  const char *command;
  const char *cwd;
  char **env;                /* full environment "K=V", NULL-terminated; NULL inherits */
  const char *session_id;    /* may be NULL */
  const char *sandbox;       /* owner; never NULL */
  int port;                  /* 0: no probe */
  bool auto_restart;
  int max_restarts;          /* < 0: the default */
  bool set_user;
  uid_t uid;
  gid_t gid;
  long nproc_limit;          /* RLIMIT_NPROC of that user; 0: unchanged */
  char *const *cgroups;      /* the sandbox's cgroup.procs files, or NULL (copied) */
};

/* Blocks SIGCHLD, SIGTERM, SIGINT and SIGHUP in the calling thread (create
 * it before any other thread, so they inherit the mask): the loop reads them
 * from a signalfd. */
struct supervisor *supervisor_new(const struct supervisor_opts *o, struct sp_error **err);
/* Run the loop (in the thread that called supervisor_new) until the stop
 * sequence is over; returns 0. */
int supervisor_run(struct supervisor *s);
/* True from the start of the stop sequence on. */
bool supervisor_stopping(struct supervisor *s);
/* True once the stop sequence is over: nothing runs, every line is
 * committed, every request is refused. */
bool supervisor_closed(struct supervisor *s);
void supervisor_free(struct supervisor *s);

/* Each returns a new cJSON Process object, or NULL with *err. */
struct cJSON *supervisor_start(struct supervisor *s, const struct proc_spec *spec,
                               struct sp_error **err);
struct cJSON *supervisor_get(struct supervisor *s, const char *sandbox, const char *id,
                             struct sp_error **err);
/* Send `sig` to the process group.  Terminating signals (TERM, INT, HUP,
 * QUIT, KILL) also stop supervision: no restart, SIGKILL after the stop
 * timeout. */
struct cJSON *supervisor_signal(struct supervisor *s, const char *sandbox, const char *id,
                                int sig, struct sp_error **err);
struct cJSON *supervisor_restart(struct supervisor *s, const char *sandbox,
                                 const char *id, struct sp_error **err);
/* Array of Process objects of one sandbox (all when NULL). */
struct cJSON *supervisor_list(struct supervisor *s, const char *sandbox);
/* Stop every process of a sandbox (all when NULL); returns how many. */
int supervisor_kill_all(struct supervisor *s, const char *sandbox);
/* SIGKILL every process group of a sandbox, wait (at most timeout_ms) for
 * them to be reaped, clear their logs and forget them.  Returns how many. */
int supervisor_forget_sandbox(struct supervisor *s, const char *sandbox, int64_t timeout_ms);

/* What a log follower needs to know to end its stream. */
struct proc_state {
  bool found;
  bool final;        /* finished: no run is going on or pending, output drained
                        and committed to the log store */
  int64_t run;
  int exit_code;     /* valid when final and has_exit */
  bool has_exit;
  char status[16];
};
void supervisor_state(struct supervisor *s, const char *sandbox, const char *id,
                      struct proc_state *st);

/* The key under which a process's lines are in the log store. */
char *supervisor_log_key(const char *sandbox, const char *id);

struct supervisor_counts {
  int total, running, ready, failed;
  int64_t restarts, orphans_reaped;
};
void supervisor_counts(struct supervisor *s, struct supervisor_counts *c);

/* One-shot commands.  The loop spawns the command, feeds its stdin, reads
 * its output (up to output_cap bytes of each stream; the rest is dropped
 * and flagged), enforces its timeout (SIGKILL on the group, until empty)
 * and reaps it.  The caller takes the output as it comes with
 * command_wait and lets go with command_release. */
struct spawn_opts;
struct command;

struct command_opts {
  const struct spawn_opts *spawn; /* read only during supervisor_command */
  int state_fd;                   /* >= 0: a pipe read to its end into the state buffer */
  const char *stdin_data;         /* copied; NULL: no stdin pipe */
  size_t stdin_len;
  int64_t timeout_ms;             /* 0: none */
  size_t output_cap;              /* per stream; 0: 16 MiB */
  size_t state_cap;               /* 0: 1 MiB */
};

/* Returns the command running, or NULL with *err (the spawn's error, or
 * MONITOR_STOPPING).  Takes ownership of co->state_fd either way. */
struct command *supervisor_command(struct supervisor *s, const struct command_opts *co,
                                   struct sp_error **err);

enum command_stream { COMMAND_STDOUT = 1, COMMAND_STDERR = 2 };
typedef void (*command_sink)(void *ud, enum command_stream which, const char *data,
                             size_t len);
/* Hand what arrived to `sink` (raw bytes, as read), waiting up to wait_ms
 * for something to arrive.  True once the command is over: exited (or
 * killed) and its output drained; the sink has then had all of it. */
bool command_wait(struct command *c, int wait_ms, command_sink sink, void *ud);

struct command_result {
  int status;      /* the wait status */
  int exit_code;   /* the code, 128 + signal, or 137 after a timeout */
  bool timed_out;  /* killed by its timeout */
  bool stopped;    /* cut short by the monitor's stop sequence */
  bool truncated;  /* output beyond output_cap was dropped */
  const char *state; /* what came on state_fd (NUL-terminated; may hold NULs) */
  size_t state_len;
};
/* After command_wait returned true. */
void command_result(struct command *c, struct command_result *r);
/* Let go; a command still running is killed (its group, until empty). */
void command_release(struct command *c);

#endif
