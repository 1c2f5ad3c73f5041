/* The supervisor: one single-threaded loop (epoll over a signalfd, the
 * children's pipes, a timerfd and an eventfd) that starts supervised
 * processes, reads their output line by line into the log store and the
 * classifier, reaps every child (and, as pid 1, every orphan), restarts
 * crashed processes with backoff and probes their ports.
 *
 * The other functions are called from HTTP threads; they take the
 * supervisor's lock, which the loop holds while it handles one event.
 *
 * Process states (the Cloudflare SDK's): "starting" (spawned, or waiting for
 * a restart after a crash), "running", "completed" (exit 0), "failed"
 * (non-zero exit without restart, or given up after too many deaths),
 * "killed" (stopped on request), "error" (could not be spawned).  "ready"
 * says the port answers HTTP. */
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
};

/* Blocks SIGCHLD, SIGTERM, SIGINT and SIGHUP in the calling thread (create
 * it before any other thread, so they inherit the mask): the loop reads them
 * from a signalfd; SIGTERM and SIGINT end it. */
struct supervisor *supervisor_new(const struct supervisor_opts *o, struct sp_error **err);
/* Run the loop until supervisor_shutdown(); then stop every process
 * (SIGTERM, SIGKILL after the stop timeout, bounded) and flush the store. */
int supervisor_run(struct supervisor *s);
/* Ask the loop to end; safe from any thread and from signal context. */
void supervisor_shutdown(struct supervisor *s);
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
/* Forget finished processes of a sandbox. */
int supervisor_remove(struct supervisor *s, const char *sandbox, const char *id,
                      struct sp_error **err);

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

/* A change counter, bumped on every state change of any process;
 * supervisor_wait blocks until it passes `seen` or timeout_ms passes. */
uint64_t supervisor_version(struct supervisor *s);
uint64_t supervisor_wait(struct supervisor *s, uint64_t seen, int64_t timeout_ms);

struct supervisor_counts {
  int total, running, ready, failed;
  int64_t restarts, orphans_reaped;
};
void supervisor_counts(struct supervisor *s, struct supervisor_counts *c);

/* One-shot children (commands): spawn under the supervisor's reaper.  The
 * exit is waited for with supervisor_child_wait, which returns the wait
 * status, or -1 on timeout (the child is then still running). */
struct spawn_opts;
struct spawn_result;
int supervisor_spawn_child(struct supervisor *s, const struct spawn_opts *o,
                           struct spawn_result *res, struct sp_error **err);
int supervisor_child_wait(struct supervisor *s, pid_t pid, int64_t timeout_ms);
/* Forget a child that will not be waited for (it is reaped anyway). */
void supervisor_child_forget(struct supervisor *s, pid_t pid);

#endif
