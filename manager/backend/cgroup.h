/* An instance's cgroup on the local backend: made below the cgroupfs mount
 * (/sys/fs/cgroup, or a test's directory laid out like one), on cgroup v2
 * (one tree) or v1 (a hierarchy per controller), with the instance type's
 * memory, pids and CPU limits written straight into its control files
 * (cgroupfs takes plain writes, never a temporary file and a rename). */
#ifndef SP_CGROUP_H
#define SP_CGROUP_H

#include <stddef.h>

struct sbuf;

struct cgroup_limits {
  long long memory_bytes;
  long long pids;
  long long cpu_quota_us, cpu_period_us; /* quota per period: vcpu * period */
};

/* Makes root/NAME (v2) or root/CONTROLLER/NAME (v1), NAME being
 * "parent/child", and writes the limits.  Returns the cgroup.procs files
 * the instance joins, one a line (caller frees), or NULL when the memory
 * limit could not be set: then the instance runs under the monitor's
 * per-sandbox rlimits only.  *in_force (appended to) names the limits that
 * took, "memory=512MiB pids=4096 cpu=0.50", or "rlimits only"; each limit
 * that did not take is logged with its file and error. */
char *cgroup_make(const char *root, const char *name, const struct cgroup_limits *l,
                  struct sbuf *in_force);

/* Moves the calling process into each cgroup.procs file of procs (as
 * cgroup_make returned them); a controller that refuses is skipped. */
void cgroup_join(const char *procs);

#endif
