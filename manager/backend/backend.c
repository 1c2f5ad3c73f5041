/* The backend registry and the local backend: bubblewrap over the host's
 * system directories, no daemon, no image. */
#include "backend.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "error.h"
#include "hash.h"
#include "log.h"
#include "str.h"
#include "util.h"

void backend_free(struct backend *b)
{
  if (b && b->ops->free)
    b->ops->free(b);
}

bool backend_oom_shield(void)
{
  char buf[16] = {0};
  int fd = open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0)
    close(fd);
  return n > 0 && atoi(buf) <= MONITOR_OOM_SCORE_ADJ;
}

/* ---- local ---- */

/* What of the host's /etc an instance sees: enough to run programs, resolve
 * names and verify TLS; no secrets (no shadow, no ssh, no host users). */
static const char *const etc_files[] = {
    "alternatives", "ld.so.cache",  "ld.so.conf",   "ld.so.conf.d", "nsswitch.conf",
    "localtime",    "timezone",     "mime.types",   "os-release",   "debian_version",
    "ssl",          "ca-certificates", "ca-certificates.conf", "bash.bashrc", "profile",
    "profile.d",    "inputrc",      "protocols",    "services",     "hosts",
    "host.conf",    "gai.conf",     "resolv.conf",  "magic",        "magic.mime",
    "python3",      "python3.11",   "gitconfig",    "npmrc",        "environment",
    "locale.alias", "xdg",          "java-17-openjdk",
};

struct local_id {
  pid_t pid;               /* the monitor (pid 1 inside), as the host sees it */
  unsigned long long start; /* its start time, so a reused pid is not taken for it */
};

static unsigned long long proc_start_time(pid_t pid)
{
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  /* field 22, counted after the ")" that ends the command name */
  char *p = strrchr(buf, ')');
  if (p == NULL)
    return 0;
  int field = 2;
  for (p++; *p && field < 22; p++)
    if (*p == ' ')
      field++;
  return strtoull(p, NULL, 10);
}

static bool parse_id(const char *id, struct local_id *out)
{
  long long pid;
  unsigned long long st;
  if (id == NULL || sscanf(id, "local:%lld:%llu", &pid, &st) != 2 || pid <= 1)
    return false;
  out->pid = (pid_t)pid;
  out->start = st;
  return true;
}

static int local_alive(struct backend *b, const char *id)
{
  (void)b;
  struct local_id li;
  if (!parse_id(id, &li))
    return 0;
  if (kill(li.pid, 0) < 0 && errno == ESRCH)
    return 0;
  unsigned long long st = proc_start_time(li.pid);
  return st != 0 && st == li.start;
}

static int local_prepare(struct backend *b, const struct sp_pool *pool, const char *config_dir,
                         char **image, struct sp_error **err)
{
  (void)b;
  (void)pool;
  (void)config_dir;
  (void)err;
  *image = NULL;
  return 0;
}

/* Append the strings up to NULL to the NULL-terminated *v of *n. */
static void __attribute__((sentinel)) addv(char ***v, size_t *n, ...)
{
  va_list ap;
  va_start(ap, n);
  for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
    *v = xreallocarray(*v, *n + 2, sizeof **v);
    (*v)[(*n)++] = xstrdup(s);
    (*v)[*n] = NULL;
  }
  va_end(ap);
}

/* The instance's cgroup, named after the data directory (two sandpitd's
 * data never share one) and the slot: the procs files to join, or NULL;
 * *in_force names the limits that took. */
static char *make_cgroup(const struct backend_spec *s, struct sbuf *in_force)
{
  cleanup_free char *name = xasprintf("sandpit-%016llx/%s-%d",
                                      (unsigned long long)sp_hash64(s->data_root, strlen(s->data_root)),
                                      s->pool, s->slot);
  struct cgroup_limits l = {
      .memory_bytes = (long long)s->cfg->itype.memory_mib << 20,
      .pids = 4096,
      .cpu_quota_us = (long long)(s->cfg->itype.vcpu * 100000),
      .cpu_period_us = 100000,
  };
  return cgroup_make("/sys/fs/cgroup", name, &l, in_force);
}

static int local_start(struct backend *b, const struct backend_spec *s, char **id,
                       struct sp_error **err)
{
  (void)b;
  const char *subdirs[] = {"run", "data", "workspace"};
  for (size_t i = 0; i < SP_ARRAY_SIZE(subdirs); i++) {
    cleanup_free char *d = xasprintf("%s/%s", s->dir, subdirs[i]);
    if (sp_mkdir_p(d, i == 1 ? 0700 : 0755, err) < 0)
      return -1;
  }
  cleanup_free char *monitor = xasprintf("%s/sandpit-monitor", s->bin_dir);
  if (access(monitor, X_OK) < 0)
    return sp_error_set(err, errno, "cannot run %s", monitor);
  cleanup_free char *sock = xasprintf("%s/run/monitor.sock", s->dir);
  unlink(sock);

  /* bwrap's command line, in order.  Not --die-with-parent: instances
   * outlive sandpitd. */
  char **argv = NULL;
  size_t n = 0;
  cleanup_free char *hostname = xasprintf("sandpit-%s-%d", s->pool, s->slot);
  addv(&argv, &n, "bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
       "--unshare-cgroup-try", "--hostname", hostname, NULL);
  if (s->cfg->network == SP_NETWORK_NONE)
    addv(&argv, &n, "--unshare-net", NULL);
  addv(&argv, &n, "--ro-bind", "/usr", "/usr", NULL);
  static const char *const top[] = {"bin", "lib", "lib64", "lib32", "libx32", "sbin"};
  for (size_t i = 0; i < SP_ARRAY_SIZE(top); i++) {
    cleanup_free char *p = xasprintf("/%s", top[i]);
    char target[256];
    ssize_t l = readlink(p, target, sizeof target - 1);
    if (l > 0) {
      target[l] = '\0';
      addv(&argv, &n, "--symlink", target, p, NULL);
    } else if (access(p, F_OK) == 0) {
      addv(&argv, &n, "--ro-bind", p, p, NULL);
    }
  }
  addv(&argv, &n, "--dir", "/etc", NULL);
  for (size_t i = 0; i < SP_ARRAY_SIZE(etc_files); i++) {
    cleanup_free char *p = xasprintf("/etc/%s", etc_files[i]);
    addv(&argv, &n, "--ro-bind-try", p, p, NULL);
  }
  cleanup_free char *ws = xasprintf("%s/workspace", s->dir);
  cleanup_free char *data = xasprintf("%s/data", s->dir);
  cleanup_free char *run = xasprintf("%s/run", s->dir);
  char uid_base[16];
  snprintf(uid_base, sizeof uid_base, "%u", s->uid_base ? s->uid_base : 200000u);
  addv(&argv, &n,
       /* the monitor keeps the users of its sandboxes here */
       "--symlink", "/run/sandpit/passwd", "/etc/passwd",
       "--symlink", "/run/sandpit/group", "/etc/group",
       "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp",
       "--dir", "/var/tmp", "--dir", "/run",
       "--bind", ws, "/workspace",
       "--bind", data, "/var/lib/sandpit",
       "--bind", run, "/run/sandpit",
       "--ro-bind", s->bin_dir, "/opt/sandpit/bin",
       /* only what the monitor needs to run each sandbox as its own user */
       "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
       "--cap-add", "CAP_CHOWN", "--cap-add", "CAP_FOWNER", "--cap-add", "CAP_KILL",
       "--clearenv",
       "--setenv", "PATH", "/opt/sandpit/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
       "--setenv", "LANG", "C.UTF-8",
       "--setenv", "SANDPIT_INSTANCE", hostname,
       "--setenv", "SANDPIT_UID_BASE", uid_base, NULL);
  const char *loglevel = getenv("SANDPIT_LOG_LEVEL");
  if (loglevel)
    addv(&argv, &n, "--setenv", "SANDPIT_LOG_LEVEL", loglevel, NULL);
  /* v1's cpu and pids hierarchies of the instance, handed to its monitor:
   * it gives each sandbox a group of its own below them (a fair share of
   * the instance's CPU, its own process limit) */
  cleanup_sbuf struct sbuf limits = SBUF_INIT;
  cleanup_free char *cg = make_cgroup(s, &limits);
  bool delegated = false;
  static const char *const handed[] = {"cpu", "pids"};
  for (size_t i = 0; cg && i < SP_ARRAY_SIZE(handed); i++) {
    cleanup_free char *prefix = xasprintf("/sys/fs/cgroup/%s/", handed[i]);
    const char *line = strstr(cg, prefix);
    const char *end = line ? strstr(line, "/cgroup.procs") : NULL;
    if (end == NULL)
      continue;
    cleanup_free char *dir = xstrndup(line, (size_t)(end - line));
    cleanup_free char *to = xasprintf("/run/sandpit/cgroup/%s", handed[i]);
    addv(&argv, &n, "--bind", dir, to, NULL);
    delegated = true;
  }
  addv(&argv, &n, "--as-pid-1", "--new-session", "--chdir", "/", "--info-fd", "3", "--",
       "/opt/sandpit/bin/sandpit-monitor", "--socket", "/run/sandpit/monitor.sock",
       "--data", "/var/lib/sandpit", "--workspace", "/workspace",
       "--passwd", "/run/sandpit/passwd", NULL);
  if (delegated)
    addv(&argv, &n, "--cgroup-root", "/run/sandpit/cgroup", NULL);

  cleanup_free char *logpath = xasprintf("%s/monitor.log", s->dir);
  int info[2];
  if (pipe2(info, O_CLOEXEC) < 0) {
    for (size_t i = 0; i < n; i++)
      free(argv[i]);
    free(argv);
    return sp_error_set(err, errno, "pipe");
  }
  /* Double fork: bwrap is nobody's child here, so it outlives us. */
  pid_t mid = fork();
  if (mid == 0) {
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++)
      signal(sig, SIG_DFL);
    pid_t gc = fork();
    if (gc != 0)
      _exit(gc < 0 ? 1 : 0);
    int nul = open("/dev/null", O_RDONLY);
    int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (nul >= 0)
      dup2(nul, 0);
    if (log >= 0) {
      dup2(log, 1);
      dup2(log, 2);
    }
    if (dup2(info[1], 3) < 0)
      _exit(126);
    for (int fd = 4; fd < 1024; fd++)
      close(fd);
    if (cg)
      cgroup_join(cg);
    execvp("bwrap", argv);
    _exit(127);
  }
  close(info[1]);
  for (size_t i = 0; i < n; i++)
    free(argv[i]);
  free(argv);
  if (mid < 0) {
    close(info[0]);
    return sp_error_set(err, errno, "fork");
  }
  waitpid(mid, NULL, 0);
  /* bwrap reports {"child-pid": N} once the sandbox is set up. */
  char buf[512];
  size_t got = 0;
  for (;;) {
    ssize_t r = read(info[0], buf + got, sizeof buf - 1 - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(info[0]);
  buf[got] = '\0';
  const char *cp = strstr(buf, "\"child-pid\"");
  long long child = 0;
  if (cp == NULL || sscanf(strchr(cp, ':') + 1, " %lld", &child) != 1 || child <= 1) {
    cleanup_free char *tailtxt = sp_read_file(logpath, 1 << 20, NULL, NULL);
    const char *last = tailtxt ? tailtxt + (strlen(tailtxt) > 400 ? strlen(tailtxt) - 400 : 0) : "";
    return sp_error_code(err, "BACKEND_ERROR", 502, "bubblewrap did not start the instance: %s",
                         last);
  }
  unsigned long long st = proc_start_time((pid_t)child);
  *id = xasprintf("local:%lld:%llu", child, st);
  cleanup_free char *pidfile = xasprintf("%s/instance.id", s->dir);
  cleanup_free char *content = xasprintf("%s\n%s\n%d\n", *id, s->pool, s->slot);
  sp_write_file_atomic(pidfile, content, strlen(content), 0600, NULL);
  sp_info("instance launched", LS("backend", "local"), LS("pool", s->pool), LI("slot", s->slot),
          LI("pid", child), LS("limits", sbuf_str(&limits)));
  return 0;
}

static int local_stop(struct backend *b, const char *id, int timeout_ms, struct sp_error **err)
{
  (void)err;
  struct local_id li;
  if (!parse_id(id, &li) || !local_alive(b, id))
    return 0;
  kill(li.pid, SIGTERM);
  int64_t deadline = sp_monotonic_ms() + timeout_ms;
  while (local_alive(b, id) && sp_monotonic_ms() < deadline)
    usleep(20000);
  if (local_alive(b, id)) {
    /* pid 1 of its namespace: SIGKILL takes the whole instance down */
    kill(li.pid, SIGKILL);
    for (int i = 0; i < 100 && local_alive(b, id); i++)
      usleep(20000);
  }
  return 0;
}

static int local_discover(struct backend *b, const char *data_root, backend_found_cb cb, void *ud,
                          struct sp_error **err)
{
  (void)err;
  cleanup_free char *root = xasprintf("%s/instances", data_root);
  DIR *d = opendir(root);
  if (d == NULL)
    return 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    cleanup_free char *f = xasprintf("%s/%s/instance.id", root, de->d_name);
    cleanup_free char *txt = sp_read_file(f, 4096, NULL, NULL);
    if (txt == NULL)
      continue;
    char id[128], pool[128];
    int slot;
    if (sscanf(txt, "%127s %127s %d", id, pool, &slot) == 3 && strncmp(id, "local:", 6) == 0 &&
        local_alive(b, id))
      cb(ud, pool, slot, id);
  }
  closedir(d);
  return 0;
}

static void local_free(struct backend *b) { free(b); }

static const struct backend_ops local_ops = {
    .name = "local",
    .prepare = local_prepare,
    .start = local_start,
    .alive = local_alive,
    .stop = local_stop,
    .discover = local_discover,
    .free = local_free,
};

struct backend *backend_local_new(struct sp_error **err)
{
  /* bubblewrap must be there; an error now beats one per start */
  if (system("command -v bwrap >/dev/null 2>&1") != 0) {
    sp_error_code(err, "BACKEND_UNAVAILABLE", 503,
                  "bubblewrap (bwrap) is not installed: run make deps or apt-get install bubblewrap");
    return NULL;
  }
  struct backend *b = xcalloc(1, sizeof *b);
  b->ops = &local_ops;
  return b;
}
