/* The local backend's cgroups: see cgroup.h. */
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "str.h"
#include "util.h"

/* Write text into one control file.  A limit that does not take is said,
 * not hidden. */
static bool write_control(const char *dir, const char *name, const char *text)
{
  cleanup_free char *file = xasprintf("%s/%s", dir, name);
  if (sp_write_control(file, text) == 0)
    return true;
  sp_warn("cannot set a cgroup limit", LS("file", file), LS("value", text),
          LS("error", strerror(errno)));
  return false;
}

static bool write_number(const char *dir, const char *name, long long v)
{
  char text[32];
  snprintf(text, sizeof text, "%lld", v);
  return write_control(dir, name, text);
}

static bool make_dir(const char *dir)
{
  struct sp_error *err = NULL;
  if (sp_mkdir_p(dir, 0755, &err) == 0)
    return true;
  sp_warn("cannot make a cgroup", LS("dir", dir), LS("error", err->msg));
  sp_error_free(err);
  return false;
}

/* v2: the parent hands memory, pids and cpu down to its children first. */
static char *make_v2(const char *root, const char *name, const struct cgroup_limits *l,
                     bool took[3])
{
  cleanup_free char *dir = xasprintf("%s/%s", root, name);
  cleanup_free char *parent = xstrdup(dir);
  *strrchr(parent, '/') = '\0';
  if (!make_dir(dir))
    return NULL;
  write_control(parent, "cgroup.subtree_control", "+memory +pids +cpu");
  char cpu[64];
  snprintf(cpu, sizeof cpu, "%lld %lld", l->cpu_quota_us, l->cpu_period_us);
  took[0] = write_number(dir, "memory.max", l->memory_bytes);
  took[1] = write_number(dir, "pids.max", l->pids);
  took[2] = write_control(dir, "cpu.max", cpu);
  return xasprintf("%s/cgroup.procs", dir);
}

/* v1: a hierarchy per controller; the instance joins each one it made. */
static char *make_v1(const char *root, const char *name, const struct cgroup_limits *l,
                     bool took[3])
{
  static const char *const ctrl[] = {"memory", "pids", "cpu"};
  struct sbuf procs = SBUF_INIT;
  for (int i = 0; i < 3; i++) {
    cleanup_free char *dir = xasprintf("%s/%s/%s", root, ctrl[i], name);
    if (!make_dir(dir))
      continue;
    if (i == 0)
      took[0] = write_number(dir, "memory.limit_in_bytes", l->memory_bytes);
    else if (i == 1)
      took[1] = write_number(dir, "pids.max", l->pids);
    else
      took[2] = write_number(dir, "cpu.cfs_period_us", l->cpu_period_us) &&
                write_number(dir, "cpu.cfs_quota_us", l->cpu_quota_us);
    sbuf_addf(&procs, "%s%s/cgroup.procs", procs.len ? "\n" : "", dir);
  }
  return procs.len ? sbuf_detach(&procs, NULL) : (sbuf_release(&procs), NULL);
}

char *cgroup_make(const char *root, const char *name, const struct cgroup_limits *l,
                  struct sbuf *in_force)
{
  cleanup_free char *probe = xasprintf("%s/cgroup.controllers", root);
  struct stat st;
  bool took[3] = {false, false, false};
  char *procs = stat(probe, &st) == 0 ? make_v2(root, name, l, took) : make_v1(root, name, l, took);
  if (procs == NULL || !took[0]) {
    free(procs);
    sbuf_addstr(in_force, "rlimits only");
    return NULL;
  }
  sbuf_addf(in_force, "memory=%lldMiB", l->memory_bytes >> 20);
  if (took[1])
    sbuf_addf(in_force, " pids=%lld", l->pids);
  if (took[2])
    sbuf_addf(in_force, " cpu=%.2f", (double)l->cpu_quota_us / (double)l->cpu_period_us);
  return procs;
}

void cgroup_join(const char *procs)
{
  /* between fork and exec: no allocation, no stdio */
  for (const char *f = procs; *f;) {
    const char *nl = strchr(f, '\n');
    size_t n = nl ? (size_t)(nl - f) : strlen(f);
    char path[4096];
    if (n < sizeof path) {
      memcpy(path, f, n);
      path[n] = '\0';
      sp_cgroup_enter(path); /* a controller that refuses is skipped */
    }
    f += n + (nl != NULL);
  }
}
