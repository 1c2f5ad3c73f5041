/* sandpitd: command line. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "backend.h"
#include "config.h"
#include "error.h"
#include "json.h"
#include "log.h"
#include "manager.h"
#include "state.h"
#include "util.h"
#include "version.h"

static const char usage[] =
    "Usage: sandpitd [--config FILE]\n"
    "       sandpitd --check-config FILE\n"
    "\n"
    "Runs the sandpit manager: the HTTP front door that maps sandbox IDs to\n"
    "pooled instances and forwards their requests to the monitor inside.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE        configuration file (default: wrangler-like.toml)\n"
    "      --check-config FILE  print the resolved configuration as JSON and exit\n"
    "                           0, or print the error and exit 2\n"
    "      --build-images       build the image of every docker pool whose image is a\n"
    "                           Dockerfile (an unchanged context is not rebuilt), then\n"
    "                           exit: 0 when all are there, 1 otherwise\n"
    "  -h, --help               show this help\n"
    "  -V, --version            show the version\n"
    "\n"
    "Environment: SANDPIT_API_TOKEN, MAX_SANDBOX_INSTANCES, SANDBOX_INSTANCE_TYPE,\n"
    "SANDPIT_LOG_LEVEL (debug, info, warn, error) override the file.\n";

static char *dir_of(const char *path)
{
  const char *slash = strrchr(path, '/');
  if (slash == NULL)
    return xstrdup(".");
  return xstrndup(path, (size_t)(slash - path) + (slash == path));
}

/* Where this binary is: sandpit-monitor is expected beside it. */
static char *self_dir(void)
{
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0)
    return xstrdup("/usr/local/bin");
  buf[n] = '\0';
  return dir_of(buf);
}

/* Build (or find) the image of every docker pool, for deploys that prepare
 * images ahead, and say which. */
static int build_images(const struct sp_config *c, const char *config_dir)
{
  int rc = 0, n = 0;
  struct backend *docker = NULL;
  for (int i = 0; i < c->npools; i++) {
    const struct sp_pool *p = &c->pools[i];
    if (p->backend == SP_BACKEND_LOCAL)
      continue;
    cleanup_error struct sp_error *err = NULL;
    if (docker == NULL && (docker = backend_docker_new(backend_docker_socket(), &err)) == NULL) {
      if (p->backend == SP_BACKEND_AUTO)
        continue; /* auto without an engine runs locally: nothing to build */
      fprintf(stderr, "sandpitd: pool %s: %s\n", p->class_name, err->msg);
      rc = 1;
      continue;
    }
    char *image = NULL;
    if (docker->ops->prepare(docker, p, config_dir, &image, &err) < 0) {
      fprintf(stderr, "sandpitd: pool %s: %s\n", p->class_name, err->msg);
      rc = 1;
    } else {
      printf("%s\t%s\n", p->class_name, image ? image : "-");
      n++;
    }
    free(image);
  }
  backend_free(docker);
  if (rc == 0 && n == 0)
    fprintf(stderr, "sandpitd: no docker pool in the configuration: nothing to build\n");
  return rc;
}

static int check_config(const char *path)
{
  cleanup_error struct sp_error *err = NULL;
  cleanup_config struct sp_config *c = config_load(path, &err);
  if (c == NULL) {
    fprintf(stderr, "sandpitd: %s\n", err->msg);
    return 2;
  }
  cleanup_json cJSON *j = config_to_json(c);
  char *s = cJSON_Print(j);
  printf("%s\n", s);
  free(s);
  return 0;
}

int main(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},
      {"check-config", required_argument, NULL, 'C'},
      {"build-images", no_argument, NULL, 'B'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  const char *config_path = "wrangler-like.toml";
  bool build_only = false;
  int opt;
  while ((opt = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
    switch (opt) {
    case 'c': config_path = optarg; break;
    case 'C': return check_config(optarg);
    case 'B': build_only = true; break;
    case 'h': fputs(usage, stdout); return 0;
    case 'V': printf("sandpitd %s\n", SANDPIT_VERSION); return 0;
    default: fputs(usage, stderr); return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "sandpitd: unexpected argument '%s'\n%s", argv[optind], usage);
    return 2;
  }

  sp_log_set_prog("sandpitd");
  cleanup_error struct sp_error *err = NULL;
  /* static: what a thread still at work at the exit uses stays reachable */
  static struct manager m;
  m.cfg = config_load(config_path, &err);
  if (m.cfg == NULL) {
    fprintf(stderr, "sandpitd: %s\n", err->msg);
    return 2;
  }
  enum sp_log_level lvl;
  if (sp_log_parse_level(m.cfg->log_level, &lvl))
    sp_log_set_level(lvl);
  m.config_dir = dir_of(config_path);
  if (build_only) {
    int rc = build_images(m.cfg, m.config_dir);
    config_free(m.cfg);
    free(m.config_dir);
    return rc;
  }
  m.bin_dir = self_dir();

  /* Signals arrive on a signalfd read by this thread; every other thread
   * inherits the blocked mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  /* Under memory pressure the kernel should kill a sandbox's process
   * (they raise their own score to 500), not sandpitd or a monitor: the
   * instances inherit this score. */
  char adj[16];
  snprintf(adj, sizeof adj, "%d", MONITOR_OOM_SCORE_ADJ);
  if (sp_write_control("/proc/self/oom_score_adj", adj) < 0)
    sp_warn("cannot shield sandpitd and its instances from the OOM killer",
            LS("error", strerror(errno)));

  int rc = 1;
  bool clean = true;
  cleanup_free char *db = xasprintf("%s/sandpit.db", m.cfg->data_dir);
  m.started_ms = sp_now_ms();
  m.metrics = metrics_new();
  drain_init(&m);
  cleanup_close int sigfd = -1;
  /* one sandpitd per data directory, for as long as it runs */
  cleanup_close int lockfd = -1;
  if (((sigfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0 && sp_error_set(&err, errno, "signalfd") < 0) ||
      sp_mkdir_p(m.cfg->data_dir, 0700, &err) < 0 ||
      (lockfd = sp_lock_dir(m.cfg->data_dir, "sandpitd.lock", &err)) < 0 ||
      (m.state = state_open(db, &err)) == NULL ||
      pools_init(&m, &err) < 0 || sandboxes_load(&m, &err) < 0 ||
      manager_load_token(&m, &err) < 0) {
    sp_err("cannot start", LS("error", err->msg));
    goto out;
  }
  pools_adopt(&m);
  if (manager_serve(&m, &err) < 0) {
    sp_err("cannot start", LS("error", err->msg));
    goto out;
  }
  housekeeper_start(&m);
  struct signalfd_siginfo si;
  for (;;) {
    if (read(sigfd, &si, sizeof si) != sizeof si || si.ssi_signo == SIGHUP)
      continue;
    break;
  }
  sp_info("stopping", LS("signal", strsignal((int)si.ssi_signo)));
  /* Instances keep running: they are adopted again at the next start. */
  clean = drain_run(&m, sigfd);
  rc = 0;
out:
  /* threads still at work use all of it: it goes with the process */
  if (!clean)
    return rc;
  drain_release(&m);
  if (m.sbx)
    sandboxes_free(&m);
  if (m.pools)
    pools_free(&m);
  state_close(m.state);
  metrics_free(m.metrics);
  config_free(m.cfg);
  free(m.api_token);
  free(m.config_dir);
  free(m.bin_dir);
  return rc;
}
