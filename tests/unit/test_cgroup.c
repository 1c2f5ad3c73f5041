/* Unit tests for manager/backend/cgroup.c against directories laid out like
 * cgroupfs, v2 and v1: which files it writes, with what, and what it says
 * is in force.  (A plain directory makes no control files of its own: the
 * tests lay out those a kernel would.) */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cgroup.h"
#include "check_main.h"
#include "scratch.h"
#include "str.h"
#include "util.h"

static void setup(void) { scratch_make("sp-cgroup"); }
static void teardown(void) { rm_rf(scratch); }

static const struct cgroup_limits half = {
    .memory_bytes = 512ll << 20, .pids = 4096, .cpu_quota_us = 50000, .cpu_period_us = 100000};

/* Empty control files in dir (made with its parents). */
static void lay_out(const char *dir, const char *const *files)
{
  struct sp_error *err = NULL;
  ck_assert_int_eq(sp_mkdir_p(dir, 0755, &err), 0);
  for (const char *const *f = files; *f; f++)
    put(P("%s/%s", dir + strlen(scratch) + 1, *f), "", 0);
}

/* Each file below the scratch root holds its text: {file, text} rows,
 * ending with {NULL}. */
static void expect_files(const char *const (*rows)[2])
{
  for (; rows[0][0]; rows++)
    assert_file_text(P("%s", rows[0][0]), rows[0][1]);
}

START_TEST(v2_writes_every_limit)
{
  put(P("cgroup.controllers"), "cpuset cpu io memory pids\n", 26);
  static const char *const child[] = {"memory.max", "pids.max", "cpu.max", "cgroup.procs", NULL};
  static const char *const parent[] = {"cgroup.subtree_control", NULL};
  lay_out(P("sandpit-1/Sandbox-0"), child);
  lay_out(P("sandpit-1"), parent);
  struct sbuf in_force = SBUF_INIT;
  char *procs = cgroup_make(scratch, "sandpit-1/Sandbox-0", &half, &in_force);
  ck_assert_str_eq(procs, P("sandpit-1/Sandbox-0/cgroup.procs"));
  static const char *const files[][2] = {
      {"sandpit-1/cgroup.subtree_control", "+memory +pids +cpu"},
      {"sandpit-1/Sandbox-0/memory.max", "536870912"},
      {"sandpit-1/Sandbox-0/pids.max", "4096"},
      {"sandpit-1/Sandbox-0/cpu.max", "50000 100000"},
      {NULL, NULL}};
  expect_files(files);
  ck_assert_str_eq(sbuf_str(&in_force), "memory=512MiB pids=4096 cpu=0.50");
  free(procs);
  sbuf_release(&in_force);
}
END_TEST

/* Without a memory limit there is no cgroup at all, and the log says so. */
START_TEST(v2_without_memory_is_rlimits_only)
{
  put(P("cgroup.controllers"), "cpu pids\n", 9);
  static const char *const child[] = {"pids.max", "cpu.max", "cgroup.procs", NULL};
  lay_out(P("sandpit-1/Sandbox-0"), child);
  struct sbuf in_force = SBUF_INIT;
  ck_assert_ptr_null(cgroup_make(scratch, "sandpit-1/Sandbox-0", &half, &in_force));
  ck_assert_str_eq(sbuf_str(&in_force), "rlimits only");
  sbuf_release(&in_force);
}
END_TEST

START_TEST(v1_writes_each_hierarchy)
{
  static const char *const mem[] = {"memory.limit_in_bytes", "cgroup.procs", NULL};
  static const char *const pids[] = {"pids.max", "cgroup.procs", NULL};
  static const char *const cpu[] = {"cpu.cfs_quota_us", "cpu.cfs_period_us", "cgroup.procs", NULL};
  lay_out(P("memory/sandpit-1/Sandbox-0"), mem);
  lay_out(P("pids/sandpit-1/Sandbox-0"), pids);
  lay_out(P("cpu/sandpit-1/Sandbox-0"), cpu);
  struct sbuf in_force = SBUF_INIT;
  char *procs = cgroup_make(scratch, "sandpit-1/Sandbox-0", &half, &in_force);
  struct sbuf want = SBUF_INIT;
  sbuf_addf(&want, "%s/memory/sandpit-1/Sandbox-0/cgroup.procs\n", scratch);
  sbuf_addf(&want, "%s/pids/sandpit-1/Sandbox-0/cgroup.procs\n", scratch);
  sbuf_addf(&want, "%s/cpu/sandpit-1/Sandbox-0/cgroup.procs", scratch);
  ck_assert_str_eq(procs, sbuf_str(&want));
  static const char *const files[][2] = {
      {"memory/sandpit-1/Sandbox-0/memory.limit_in_bytes", "536870912"},
      {"pids/sandpit-1/Sandbox-0/pids.max", "4096"},
      {"cpu/sandpit-1/Sandbox-0/cpu.cfs_period_us", "100000"},
      {"cpu/sandpit-1/Sandbox-0/cpu.cfs_quota_us", "50000"},
      {NULL, NULL}};
  expect_files(files);
  ck_assert_str_eq(sbuf_str(&in_force), "memory=512MiB pids=4096 cpu=0.50");
  free(procs);
  sbuf_release(&want);
  sbuf_release(&in_force);
}
END_TEST

/* A hierarchy that cannot be written is left out of what is in force. */
START_TEST(v1_without_cpu)
{
  static const char *const mem[] = {"memory.limit_in_bytes", "cgroup.procs", NULL};
  lay_out(P("memory/sandpit-1/Sandbox-0"), mem);
  struct sbuf in_force = SBUF_INIT;
  char *procs = cgroup_make(scratch, "sandpit-1/Sandbox-0", &half, &in_force);
  ck_assert_ptr_nonnull(procs);
  ck_assert_str_eq(sbuf_str(&in_force), "memory=512MiB");
  free(procs);
  sbuf_release(&in_force);
}
END_TEST

CHECK_MAIN_ONE_TCASE("cgroup", "cgroup", 10, setup, teardown, v2_writes_every_limit,
                     v2_without_memory_is_rlimits_only, v1_writes_each_hierarchy, v1_without_cpu)
