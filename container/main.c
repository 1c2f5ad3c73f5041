/* sandpit-monitor: pid 1 of an instance.  It supervises processes, stores
 * their output and errors, and serves all of it over HTTP on a unix socket. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classify.h"
#include "error.h"
#include "log.h"
#include "logstore.h"
#include "monitor.h"
#include "sandbox.h"
#include "sysfilter.h"
#include "str.h"
#include "supervisor.h"
#include "util.h"
#include "version.h"

extern const char sp_default_rules[];
extern const char sp_default_rules_end[];

static const char usage[] =
    "Usage: sandpit-monitor [--socket PATH] [--data DIR] [--workspace DIR] [--rules FILE]\n"
    "\n"
    "Supervises dev servers and commands, keeps their output and classified\n"
    "errors in SQLite, and serves them over HTTP on a unix socket.\n"
    "\n"
    "Options:\n"
    "  -s, --socket PATH     unix socket to serve on (default /run/sandpit/monitor.sock)\n"
    "  -d, --data DIR        data directory for monitor.db (default /var/lib/sandpit)\n"
    "  -w, --workspace DIR   workspace root; each sandbox gets DIR/{sandbox}\n"
    "                        (default /workspace)\n"
    "  -r, --rules FILE      error classification rules (default: built in)\n"
    "      --check-rules     load the rules, print how many, and exit\n"
    "      --log-max-lines N     log lines kept per process (default 100000)\n"
    "      --log-max-bytes N     log bytes kept per process (default 32 MiB)\n"
    "      --log-max-total N     log bytes kept in all (default 256 MiB)\n"
    "      --error-max-count N   distinct errors kept (default 1000)\n"
    "      --error-max-age SECS  errors not seen for this long are dropped (default 7 days)\n"
    "      --exec-output-max N   bytes of stdout (and of stderr) kept per command (default 16 MiB)\n"
    "      --stop-timeout MS     on SIGTERM, processes get this long to end before SIGKILL\n"
    "                            (default 5000; a second SIGTERM or SIGINT kills at once)\n"
    "      --uid-base N          sandbox users get uids N, N+1, ... (default 200000;\n"
    "                            also SANDPIT_UID_BASE)\n"
    "      --cgroup-root DIR     cgroup v1 hierarchies (DIR/cpu, DIR/pids) handed to the\n"
    "                            monitor: each sandbox gets its own group below them\n"
    "      --passwd FILE         keep a passwd file (and a group file beside it) naming\n"
    "                            the sandbox users (an instance's /etc/passwd links to it)\n"
    "  -h, --help            show this help\n"
    "  -V, --version         show the version\n"
    "\n"
    "Environment: SANDPIT_LOG_LEVEL (debug, info, warn, error).\n";

static char *parent_dir(const char *path)
{
  const char *slash = strrchr(path, '/');
  if (slash == NULL || slash == path)
    return NULL;
  return xstrndup(path, (size_t)(slash - path));
}

/* The first step of the stop sequence, on the supervisor's loop: no new
 * connections; the requests in progress are answered as their commands
 * end. */
static void stop_accepting(void *ud)
{
  struct monitor *m = ud;
  http_server_quiesce(m->http);
}

/* What the command line asks for, beyond struct monitor's own fields. */
struct options {
  const char *rules_path, *passwd, *cgroup_root;
  int64_t uid_base, stop_timeout_ms, exec_output_max;
  struct logstore_opts lo;
  bool check_rules;
};

/* The numeric options: each one's range, its error, and where it goes
 * (scale: the unit given on the command line in the unit stored). */
struct number_option {
  int opt;
  long long min, max, scale;
  const char *range;
  size_t offset; /* of its int64_t in struct options */
};

/* 2147418112 in the message below */
_Static_assert((1LL << 31) - SANDBOX_UIDS == 2147418112LL, "the --uid-base message");

#define AT(field) offsetof(struct options, field)
static const struct number_option numbers[] = {
    {'U', 1000, (1LL << 31) - SANDBOX_UIDS, 1, "--uid-base must be 1000-2147418112",
     AT(uid_base)},
    {'G', 1, 3600 * 1000, 1, "--stop-timeout must be 1-3600000 milliseconds",
     AT(stop_timeout_ms)},
    {'O', 1, 1LL << 40, 1, "--exec-output-max must be a positive integer", AT(exec_output_max)},
    {'L', 1, INT64_MAX / 1000, 1, "--log-max-lines must be a positive integer",
     AT(lo.max_lines_per_process)},
    {'B', 1, INT64_MAX / 1000, 1, "--log-max-bytes must be a positive integer",
     AT(lo.max_bytes_per_process)},
    {'T', 1, INT64_MAX / 1000, 1, "--log-max-total must be a positive integer",
     AT(lo.max_total_bytes)},
    {'E', 1, INT64_MAX / 1000, 1, "--error-max-count must be a positive integer",
     AT(lo.error_max_count)},
    {'A', 1, INT64_MAX / 1000, 1000, "--error-max-age must be a positive integer",
     AT(lo.error_max_age_ms)},
};
#undef AT

/* The command line into m and o: -1 to go on, else the exit status. */
static int parse_options(int argc, char **argv, struct monitor *m, struct options *o)
{
  static const struct option longopts[] = {
      {"socket", required_argument, NULL, 's'},
      {"data", required_argument, NULL, 'd'},
      {"workspace", required_argument, NULL, 'w'},
      {"rules", required_argument, NULL, 'r'},
      {"check-rules", no_argument, NULL, 'R'},
      {"log-max-lines", required_argument, NULL, 'L'},
      {"log-max-bytes", required_argument, NULL, 'B'},
      {"log-max-total", required_argument, NULL, 'T'},
      {"error-max-count", required_argument, NULL, 'E'},
      {"error-max-age", required_argument, NULL, 'A'},
      {"exec-output-max", required_argument, NULL, 'O'},
      {"passwd", required_argument, NULL, 'P'},
      {"uid-base", required_argument, NULL, 'U'},
      {"stop-timeout", required_argument, NULL, 'G'},
      {"cgroup-root", required_argument, NULL, 'C'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  long long n;
  const char *env_base = getenv("SANDPIT_UID_BASE");
  if (env_base && *env_base) {
    if (!str_to_ll(env_base, numbers[0].min, numbers[0].max, &n)) {
      fprintf(stderr, "sandpit-monitor: SANDPIT_UID_BASE must be 1000-%lld\n", numbers[0].max);
      return 2;
    }
    o->uid_base = n;
  }
  int opt;
  while ((opt = getopt_long(argc, argv, "s:d:w:r:hV", longopts, NULL)) != -1) {
    const struct number_option *num = NULL;
    for (size_t i = 0; i < SP_ARRAY_SIZE(numbers); i++)
      if (numbers[i].opt == opt)
        num = &numbers[i];
    if (num) {
      if (!str_to_ll(optarg, num->min, num->max, &n)) {
        fprintf(stderr, "sandpit-monitor: %s\n", num->range);
        return 2;
      }
      *(int64_t *)((char *)o + num->offset) = n * num->scale;
      continue;
    }
    switch (opt) {
    case 's': m->socket_path = optarg; break;
    case 'd': m->data_dir = optarg; break;
    case 'w': m->workspace = optarg; break;
    case 'r': o->rules_path = optarg; break;
    case 'R': o->check_rules = true; break;
    case 'P': o->passwd = optarg; break;
    case 'C': o->cgroup_root = optarg; break;
    case 'h': fputs(usage, stdout); return 0;
    case 'V': printf("sandpit-monitor %s\n", SANDPIT_VERSION); return 0;
    default: fputs(usage, stderr); return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "sandpit-monitor: unexpected argument '%s'\n%s", argv[optind], usage);
    return 2;
  }
  return -1;
}

int main(int argc, char **argv)
{
  struct monitor m = {
      .socket_path = "/run/sandpit/monitor.sock",
      .data_dir = "/var/lib/sandpit",
      .workspace = "/workspace",
  };
  struct options o = {
      .uid_base = SANDBOX_UID_BASE,
      .stop_timeout_ms = 5000,
      .exec_output_max = 16 << 20,
  };
  int status = parse_options(argc, argv, &m, &o);
  if (status >= 0)
    return status;
  m.exec_output_max = (size_t)o.exec_output_max;
  const char *rules_path = o.rules_path;
  sp_log_set_prog("sandpit-monitor");
  sp_log_init_from_env();
  signal(SIGPIPE, SIG_IGN);

  cleanup_error struct sp_error *err = NULL;
  if (rules_path)
    m.rules = classify_rules_load(rules_path, &err);
  else
    m.rules = classify_rules_parse(sp_default_rules,
                                   (size_t)(sp_default_rules_end - sp_default_rules),
                                   "built-in rules", &err);
  if (m.rules == NULL) {
    fprintf(stderr, "sandpit-monitor: %s\n", err->msg);
    return 2;
  }
  if (o.check_rules) {
    printf("%zu rules\n", classify_rules_count(m.rules));
    classify_rules_free(m.rules);
    return 0;
  }

  int rc = 1;
  cleanup_free char *sessions = NULL;
  /* one monitor per data directory, for as long as it runs */
  cleanup_close int lockfd = -1;
  cleanup_free char *sockdir = parent_dir(m.socket_path);
  if ((sockdir && sp_mkdir_p(sockdir, 0755, &err) < 0) ||
      sp_mkdir_p(m.data_dir, 0700, &err) < 0 ||
      (lockfd = sp_lock_dir(m.data_dir, "monitor.lock", &err)) < 0) {
    sp_err("cannot start", LS("error", err->msg));
    goto out;
  }
  m.is_root = geteuid() == 0;
  /* every sandbox process runs under it: no filter, no monitor */
  if (seccomp_filter_build(&err) < 0) {
    sp_err("cannot start", LS("error", err->msg));
    goto out;
  }
  /* Threads take on sandbox users' file identities; none of root's
   * supplementary groups may come along. */
  if (m.is_root && setgroups(0, NULL) < 0)
    sp_warn("cannot drop supplementary groups", LS("error", strerror(errno)));
  sessions = xasprintf("%s/sessions", m.data_dir);
  m.sandboxes = sandboxes_new(m.workspace, m.is_root, (uid_t)o.uid_base, o.passwd, sessions, &err);
  if (m.sandboxes == NULL) {
    sp_err("cannot set up the workspace", LS("path", m.workspace), LS("error", err->msg));
    goto out;
  }
  if (o.cgroup_root && m.is_root)
    sandboxes_set_cgroup_root(m.sandboxes, o.cgroup_root);
  m.db_path = xasprintf("%s/monitor.db", m.data_dir);
  m.ls = logstore_open(m.db_path, &o.lo, &err);
  if (m.ls == NULL) {
    sp_err("cannot open the log store", LS("path", m.db_path), LS("error", err->msg));
    goto out;
  }
  struct supervisor_opts so = {
      .ls = m.ls,
      .rules = m.rules,
      .stop_timeout_ms = o.stop_timeout_ms,
      .on_stop = stop_accepting,
      .ud = &m,
  };
  m.sup = supervisor_new(&so, &err);
  if (m.sup == NULL) {
    sp_err("cannot start the supervisor", LS("error", err->msg));
    goto out;
  }
  struct http_server_opts ho = {
      .unix_path = m.socket_path,
      .routes = monitor_routes,
      .nroutes = monitor_nroutes,
      .app = &m,
  };
  m.http = http_server_start(&ho, &err);
  if (m.http == NULL) {
    sp_err("cannot serve", LS("socket", m.socket_path), LS("error", err->msg));
    goto out;
  }
  m.started_ms = sp_now_ms();
  if (!m.is_root)
    sp_warn("not running as root: sandboxes share one user",
            LI("uid", (long long)geteuid()));
  sp_info("monitor ready", LS("socket", m.socket_path), LS("data", m.data_dir),
          LS("workspace", m.workspace), LI("rules", (long long)classify_rules_count(m.rules)),
          LI("pid", (long long)getpid()));
  supervisor_run(m.sup);
  /* Every command is over and every line committed: the requests still in
   * progress (cut-short commands, followers' last events) get their
   * answers out before HTTP stops. */
  if (!http_server_drain(m.http, 900))
    sp_warn("requests still in progress when HTTP stopped");
  rc = 0;
out:
  http_server_stop(m.http);
  if (m.sandboxes)
    sandboxes_kill_all(m.sandboxes);
  supervisor_free(m.sup);
  logstore_close(m.ls);
  classify_rules_free(m.rules);
  sandboxes_free(m.sandboxes);
  free(m.db_path);
  sp_info("monitor stopped", LI("code", rc));
  return rc;
}
