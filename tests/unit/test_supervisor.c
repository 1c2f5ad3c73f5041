/* The process table (container/procfsm.c): every (state, event) pair and its
 * action, restarts with backoff, the death tally, stop escalation, probes,
 * timeouts and the stop sequence, without real children. */
#include <signal.h>
#include <sys/wait.h>

#include "check_main.h"
#include "procfsm.h"

static const struct procfsm_cfg cfg = {
    .stop_timeout_ms = 5000,
    .backoff_min_ms = 1000,
    .backoff_max_ms = 8000,
    .healthy_after_ms = 60000,
    .max_deaths = 5,
    .death_window_ms = 60000,
    .probe_failures = 3,
};

#define T0 1000000
#define CRASH W_EXITCODE(1, 0)
#define CLEAN W_EXITCODE(0, 0)

static unsigned feed(struct procfsm *f, enum procfsm_event ev, int arg, int64_t now)
{
  return procfsm_step(f, &cfg, ev, arg, NULL, now);
}

/* A process spawned at `now`: a command or not, restarted or not, at most
 * max_restarts times. */
static void spawned(struct procfsm *f, bool command, bool auto_restart, int max_restarts,
                    int64_t now)
{
  procfsm_init(f, &cfg, command, auto_restart, max_restarts);
  feed(f, PE_SPAWNED, 0, now);
}

/* A supervised process (auto-restart, at most 10 restarts) brought into
 * `st` the way the loop would bring it there. */
static void machine_in(struct procfsm *f, enum procfsm_state st)
{
  procfsm_init(f, &cfg, false, st != PS_FAILED, 10);
  if (st == PS_STARTING)
    return;
  if (st == PS_ERROR) {
    feed(f, PE_SPAWN_FAILED, 0, T0);
    return;
  }
  feed(f, PE_SPAWNED, 0, T0);
  switch (st) {
  case PS_STOPPING: feed(f, PE_STOP, SIGTERM, T0); break;
  case PS_RESTARTING: feed(f, PE_RESTART, 0, T0); break;
  case PS_COMPLETED: feed(f, PE_EXIT, CLEAN, T0); break;
  case PS_FAILED: feed(f, PE_EXIT, CRASH, T0); break;
  case PS_KILLED:
    feed(f, PE_STOP, SIGTERM, T0);
    feed(f, PE_EXIT, SIGTERM, T0);
    break;
  default: break;
  }
  ck_assert_str_eq(procfsm_state_name(f->st), procfsm_state_name(st));
}

struct expect {
  enum procfsm_state next;
  unsigned fx;
};

#define SAME(st) {st, 0}
#define ROW_IGNORING(st)                                                                 \
  {                                                                                      \
    SAME(st), SAME(st), SAME(st), SAME(st), SAME(st), SAME(st), {PS_STARTING, FX_SPAWN}, \
        SAME(st), SAME(st), SAME(st), SAME(st), SAME(st), SAME(st)                       \
  }

/* Events in enum order: SPAWNED, SPAWN_FAILED, EXIT (a crash, code 1),
 * RESTART_DUE, KILL_DUE, STOP (SIGTERM), RESTART, FATAL_LINE, PROBE_OK,
 * PROBE_FAIL, TIMEOUT, SHUTDOWN, SHUTDOWN_NOW. */
static const struct expect table[PS__COUNT][PE__COUNT] = {
    [PS_STARTING] = {{PS_RUNNING, 0}, {PS_ERROR, 0}, SAME(PS_STARTING),
                     {PS_STARTING, FX_SPAWN}, SAME(PS_STARTING), {PS_KILLED, 0},
                     {PS_STARTING, FX_SPAWN}, SAME(PS_STARTING), SAME(PS_STARTING),
                     SAME(PS_STARTING), SAME(PS_STARTING), {PS_KILLED, 0}, {PS_KILLED, 0}},
    [PS_RUNNING] = {SAME(PS_RUNNING), SAME(PS_RUNNING), {PS_STARTING, FX_TERM},
                    SAME(PS_RUNNING), SAME(PS_RUNNING), {PS_STOPPING, FX_SIGNAL},
                    {PS_RESTARTING, FX_TERM}, {PS_RESTARTING, FX_TERM},
                    {PS_RUNNING, FX_READY}, SAME(PS_RUNNING), {PS_STOPPING, FX_KILL},
                    {PS_STOPPING, FX_SIGNAL}, {PS_STOPPING, FX_KILL}},
    [PS_STOPPING] = {SAME(PS_STOPPING), SAME(PS_STOPPING), {PS_KILLED, FX_KILL},
                     SAME(PS_STOPPING), {PS_STOPPING, FX_KILL}, {PS_STOPPING, FX_SIGNAL},
                     {PS_RESTARTING, FX_TERM}, SAME(PS_STOPPING), SAME(PS_STOPPING),
                     SAME(PS_STOPPING), SAME(PS_STOPPING), SAME(PS_STOPPING),
                     {PS_STOPPING, FX_KILL}},
    [PS_RESTARTING] = {SAME(PS_RESTARTING), SAME(PS_RESTARTING), {PS_STARTING, FX_TERM},
                       SAME(PS_RESTARTING), {PS_RESTARTING, FX_KILL},
                       {PS_STOPPING, FX_SIGNAL}, SAME(PS_RESTARTING), SAME(PS_RESTARTING),
                       SAME(PS_RESTARTING), SAME(PS_RESTARTING), SAME(PS_RESTARTING),
                       {PS_STOPPING, FX_SIGNAL}, {PS_STOPPING, FX_KILL}},
    [PS_COMPLETED] = ROW_IGNORING(PS_COMPLETED),
    [PS_FAILED] = ROW_IGNORING(PS_FAILED),
    [PS_KILLED] = ROW_IGNORING(PS_KILLED),
    [PS_ERROR] = ROW_IGNORING(PS_ERROR),
};

static int event_arg(enum procfsm_event ev)
{
  return ev == PE_EXIT ? CRASH : ev == PE_STOP ? SIGTERM : 0;
}

START_TEST(every_pair)
{
  int pairs = 0;
  for (int st = 0; st < PS__COUNT; st++) {
    for (int ev = 0; ev < PE__COUNT; ev++) {
      struct procfsm f;
      machine_in(&f, (enum procfsm_state)st);
      unsigned fx = feed(&f, (enum procfsm_event)ev, event_arg((enum procfsm_event)ev), T0 + 10);
      const struct expect *e = &table[st][ev];
      ck_assert_msg(f.st == e->next && fx == e->fx, "%s + %s: got %s fx %#x, want %s fx %#x",
                    procfsm_state_name((enum procfsm_state)st),
                    procfsm_event_name((enum procfsm_event)ev), procfsm_state_name(f.st), fx,
                    procfsm_state_name(e->next), e->fx);
      pairs++;
    }
  }
  ck_assert_int_eq(pairs, PS__COUNT * PE__COUNT);
}
END_TEST

START_TEST(status_names)
{
  struct procfsm f;
  const char *want[PS__COUNT] = {"starting", "running",   "running", "running",
                                 "completed", "failed", "killed",  "error"};
  for (int st = 0; st < PS__COUNT; st++) {
    machine_in(&f, (enum procfsm_state)st);
    ck_assert_str_eq(procfsm_status(&f), want[st]);
    ck_assert_int_eq(procfsm_alive(&f),
                     st == PS_RUNNING || st == PS_STOPPING || st == PS_RESTARTING);
    ck_assert_int_eq(procfsm_final(&f), st >= PS_COMPLETED);
  }
}
END_TEST

/* Crash after crash: each restart waits twice as long, up to the cap. */
START_TEST(backoff_doubles_to_its_cap)
{
  struct procfsm f;
  int64_t now = T0;
  spawned(&f, false, true, 100, now);
  /* four short runs: below the death tally's five */
  const int64_t waits[] = {1000, 2000, 4000, 8000};
  for (size_t i = 0; i < 4; i++) {
    now += 10;
    feed(&f, PE_EXIT, CRASH, now);
    ck_assert_int_eq(f.st, PS_STARTING);
    ck_assert_str_eq(f.exit_reason, "crash");
    ck_assert_int_eq(f.restart_at - now, waits[i]);
    ck_assert_uint_eq(feed(&f, PE_RESTART_DUE, 0, f.restart_at), FX_SPAWN);
    ck_assert_int_eq(f.restarts, (int)i + 1);
    now = f.restart_at;
    feed(&f, PE_SPAWNED, 0, now);
  }
  /* the next wait is held at the cap */
  ck_assert_int_eq(f.backoff_ms, cfg.backoff_max_ms);
}
END_TEST

START_TEST(healthy_run_resets_backoff)
{
  struct procfsm f;
  spawned(&f, false, true, 100, T0);
  feed(&f, PE_EXIT, CRASH, T0 + 10);
  feed(&f, PE_RESTART_DUE, 0, f.restart_at);
  feed(&f, PE_SPAWNED, 0, T0 + 1010);
  feed(&f, PE_EXIT, CRASH, T0 + 1020);
  ck_assert_int_eq(f.restart_at - (T0 + 1020), 2000);
  feed(&f, PE_RESTART_DUE, 0, f.restart_at);
  feed(&f, PE_SPAWNED, 0, T0 + 3020);
  /* this run lasts past healthy_after: the backoff starts over */
  feed(&f, PE_EXIT, CRASH, T0 + 3020 + cfg.healthy_after_ms);
  ck_assert_int_eq(f.restart_at - (T0 + 3020 + cfg.healthy_after_ms), 1000);
}
END_TEST

START_TEST(death_tally_gives_up)
{
  struct procfsm f;
  int64_t now = T0;
  spawned(&f, false, true, 100, now);
  for (int i = 1; i < cfg.max_deaths; i++) {
    ck_assert_uint_eq(feed(&f, PE_EXIT, CRASH, now + 1), FX_TERM);
    ck_assert_int_eq(f.st, PS_STARTING);
    now = f.restart_at;
    feed(&f, PE_RESTART_DUE, 0, now);
    feed(&f, PE_SPAWNED, 0, now);
  }
  /* the fifth death within the window */
  ck_assert_uint_eq(feed(&f, PE_EXIT, CRASH, now + 1), FX_TERM | FX_GAVE_UP);
  ck_assert_int_eq(f.st, PS_FAILED);
  ck_assert_int_eq(f.exit_code, 1);
  /* a restart asked for forgives the tally */
  ck_assert_uint_eq(feed(&f, PE_RESTART, 0, now + 2), FX_SPAWN);
  ck_assert_int_eq(f.ndeaths, 0);
  ck_assert_int_eq(f.backoff_ms, cfg.backoff_min_ms);
}
END_TEST

START_TEST(max_restarts_gives_up)
{
  struct procfsm f;
  int64_t now = T0;
  spawned(&f, false, true, 2, now);
  for (int i = 0; i < 2; i++) {
    now += 100000;
    feed(&f, PE_EXIT, CRASH, now);
    feed(&f, PE_RESTART_DUE, 0, f.restart_at);
    feed(&f, PE_SPAWNED, 0, f.restart_at);
  }
  ck_assert_int_eq(f.restarts, 2);
  ck_assert(feed(&f, PE_EXIT, CRASH, now + 200000) & FX_GAVE_UP);
  ck_assert_int_eq(f.st, PS_FAILED);
}
END_TEST

START_TEST(clean_exit_and_no_restart)
{
  struct procfsm f;
  spawned(&f, false, true, 10, T0);
  feed(&f, PE_EXIT, CLEAN, T0 + 5);
  ck_assert_int_eq(f.st, PS_COMPLETED);
  ck_assert_int_eq(f.restart_at, 0);
  spawned(&f, false, false, 10, T0);
  feed(&f, PE_EXIT, W_EXITCODE(7, 0), T0 + 5);
  ck_assert_int_eq(f.st, PS_FAILED);
  ck_assert_int_eq(f.exit_code, 7);
  ck_assert_str_eq(f.exit_reason, "exit");
}
END_TEST

/* SIGTERM, then SIGKILL once the stop timeout passes; the run ends killed. */
START_TEST(stop_escalates)
{
  struct procfsm f;
  machine_in(&f, PS_RUNNING);
  ck_assert_uint_eq(feed(&f, PE_STOP, SIGTERM, T0 + 100), FX_SIGNAL);
  ck_assert_int_eq(f.sig, SIGTERM);
  ck_assert_int_eq(f.kill_at, T0 + 100 + cfg.stop_timeout_ms);
  /* a second request does not put the SIGKILL off */
  feed(&f, PE_STOP, SIGINT, T0 + 2000);
  ck_assert_int_eq(f.kill_at, T0 + 100 + cfg.stop_timeout_ms);
  ck_assert_uint_eq(feed(&f, PE_KILL_DUE, 0, f.kill_at), FX_KILL);
  ck_assert_int_eq(f.kill_at, 0);
  ck_assert_uint_eq(feed(&f, PE_EXIT, SIGKILL, T0 + 5200), FX_KILL);
  ck_assert_int_eq(f.st, PS_KILLED);
  ck_assert_int_eq(f.exit_signal, SIGKILL);
  ck_assert_int_eq(f.exit_code, 128 + SIGKILL);
  ck_assert_str_eq(f.exit_reason, "stopped");
  /* SIGKILL asked for: no timer, a kill at once */
  machine_in(&f, PS_RUNNING);
  ck_assert_uint_eq(feed(&f, PE_STOP, SIGKILL, T0 + 1), FX_KILL);
  ck_assert_int_eq(f.kill_at, 0);
}
END_TEST

START_TEST(restart_on_request_is_immediate)
{
  struct procfsm f;
  machine_in(&f, PS_RUNNING);
  feed(&f, PE_RESTART, 0, T0 + 50);
  ck_assert_int_eq(f.st, PS_RESTARTING);
  feed(&f, PE_EXIT, SIGTERM, T0 + 60);
  ck_assert_int_eq(f.st, PS_STARTING);
  ck_assert_int_eq(f.restart_at, T0 + 60);
  ck_assert_str_eq(f.exit_reason, "restart");
  ck_assert_uint_eq(feed(&f, PE_RESTART_DUE, 0, T0 + 60), FX_SPAWN);
  ck_assert_int_eq(f.restarts, 1);
}
END_TEST

START_TEST(fatal_line_restarts_with_backoff)
{
  struct procfsm f;
  machine_in(&f, PS_RUNNING);
  ck_assert_uint_eq(procfsm_step(&f, &cfg, PE_FATAL_LINE, 0, "port-in-use", T0 + 5), FX_TERM);
  feed(&f, PE_EXIT, CRASH, T0 + 10);
  ck_assert_str_eq(f.exit_reason, "port-in-use");
  ck_assert_int_eq(f.restart_at, T0 + 10 + cfg.backoff_min_ms);
  /* not for a process without auto-restart */
  spawned(&f, false, false, 10, T0);
  ck_assert_uint_eq(procfsm_step(&f, &cfg, PE_FATAL_LINE, 0, "x", T0 + 5), 0);
  ck_assert_int_eq(f.st, PS_RUNNING);
}
END_TEST

START_TEST(probes)
{
  struct procfsm f;
  machine_in(&f, PS_RUNNING);
  /* failures while starting up do not count */
  for (int i = 0; i < 10; i++)
    ck_assert_uint_eq(feed(&f, PE_PROBE_FAIL, 0, T0 + i), 0);
  ck_assert_uint_eq(feed(&f, PE_PROBE_OK, 0, T0 + 20), FX_READY);
  ck_assert(f.ready);
  ck_assert_uint_eq(feed(&f, PE_PROBE_OK, 0, T0 + 21), 0);
  feed(&f, PE_PROBE_FAIL, 0, T0 + 30);
  feed(&f, PE_PROBE_OK, 0, T0 + 31); /* an answer resets the count */
  feed(&f, PE_PROBE_FAIL, 0, T0 + 40);
  feed(&f, PE_PROBE_FAIL, 0, T0 + 41);
  ck_assert_int_eq(f.st, PS_RUNNING);
  ck_assert_uint_eq(feed(&f, PE_PROBE_FAIL, 0, T0 + 42), FX_TERM | FX_UNRESPONSIVE);
  ck_assert_int_eq(f.st, PS_RESTARTING);
  ck_assert(!f.ready);
  feed(&f, PE_EXIT, CRASH, T0 + 50);
  ck_assert_str_eq(f.exit_reason, "unresponsive");
}
END_TEST

START_TEST(command_timeout)
{
  struct procfsm f;
  procfsm_init(&f, &cfg, true, true, 10);
  ck_assert(!f.auto_restart); /* a command is never restarted */
  feed(&f, PE_SPAWNED, 0, T0);
  ck_assert_uint_eq(feed(&f, PE_TIMEOUT, 0, T0 + 100), FX_KILL);
  ck_assert(f.timed_out);
  ck_assert_uint_eq(feed(&f, PE_EXIT, SIGKILL, T0 + 101), FX_KILL);
  ck_assert_int_eq(f.st, PS_KILLED);
  ck_assert_str_eq(f.exit_reason, "timeout");
  /* a command's exit leaves its group alone (`server &` is allowed) */
  spawned(&f, true, false, 0, T0);
  ck_assert_uint_eq(feed(&f, PE_EXIT, CRASH, T0 + 1), 0);
  ck_assert_int_eq(f.st, PS_FAILED);
}
END_TEST

START_TEST(stop_sequence)
{
  struct procfsm f;
  machine_in(&f, PS_RUNNING);
  ck_assert_uint_eq(feed(&f, PE_SHUTDOWN, 0, T0 + 1), FX_SIGNAL);
  ck_assert_int_eq(f.sig, SIGTERM);
  ck_assert_int_eq(f.kill_at, T0 + 1 + cfg.stop_timeout_ms);
  /* nothing is started again once stopping */
  ck_assert_uint_eq(feed(&f, PE_RESTART, 0, T0 + 2), 0);
  ck_assert_uint_eq(feed(&f, PE_SHUTDOWN_NOW, 0, T0 + 3), FX_KILL);
  ck_assert_uint_eq(feed(&f, PE_EXIT, SIGKILL, T0 + 4), FX_KILL);
  ck_assert_int_eq(f.st, PS_KILLED);
  ck_assert_uint_eq(feed(&f, PE_RESTART, 0, T0 + 5), 0);
  ck_assert_int_eq(f.st, PS_KILLED);
  /* a process waiting for its restart is simply not restarted */
  machine_in(&f, PS_RUNNING);
  feed(&f, PE_EXIT, CRASH, T0 + 1);
  ck_assert_int_eq(f.st, PS_STARTING);
  feed(&f, PE_SHUTDOWN, 0, T0 + 2);
  ck_assert_int_eq(f.st, PS_KILLED);
  ck_assert_uint_eq(feed(&f, PE_RESTART_DUE, 0, f.restart_at + 1), 0);
  /* one being restarted ends killed, not started again */
  machine_in(&f, PS_RESTARTING);
  feed(&f, PE_SHUTDOWN, 0, T0 + 1);
  ck_assert_int_eq(f.st, PS_STOPPING);
  feed(&f, PE_EXIT, SIGTERM, T0 + 2);
  ck_assert_int_eq(f.st, PS_KILLED);
  /* an earlier stop's SIGKILL is not put off; a later one is brought in */
  machine_in(&f, PS_RUNNING);
  feed(&f, PE_STOP, SIGTERM, T0);
  feed(&f, PE_SHUTDOWN, 0, T0 + 1000);
  ck_assert_int_eq(f.kill_at, T0 + cfg.stop_timeout_ms);
}
END_TEST

START_TEST(out_of_range_is_ignored)
{
  struct procfsm f;
  machine_in(&f, PS_RUNNING);
  ck_assert_uint_eq(procfsm_step(&f, &cfg, PE__COUNT, 0, NULL, T0), 0);
  ck_assert_uint_eq(procfsm_step(&f, &cfg, (enum procfsm_event)-1, 0, NULL, T0), 0);
  ck_assert_int_eq(f.st, PS_RUNNING);
  ck_assert_str_eq(procfsm_event_name(PE__COUNT), "?");
  ck_assert_str_eq(procfsm_state_name(PS__COUNT), "?");
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("supervisor");
  check_add_tcase(s, "table", 10, NULL, NULL,
                  CHECK_TESTS(every_pair, status_names, out_of_range_is_ignored));
  check_add_tcase(s, "life", 10, NULL, NULL,
                  CHECK_TESTS(backoff_doubles_to_its_cap, healthy_run_resets_backoff,
                              death_tally_gives_up, max_restarts_gives_up,
                              clean_exit_and_no_restart, stop_escalates,
                              restart_on_request_is_immediate, fatal_line_restarts_with_backoff,
                              probes, command_timeout, stop_sequence));
  return s;
}

CHECK_MAIN(suite)
