/* The sandbox processes' system call filter: see sysfilter.h. */
#include "sysfilter.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

/* Refused outright with EPERM. */
static const char *const denied[] = {
    /* file systems: mounts (the old calls and the new API), swap, quotas */
    "mount", "umount", "umount2", "pivot_root", "mount_setattr", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "open_by_handle_at", "quotactl",
    "swapon", "swapoff",
    /* the machine itself */
    "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "acct",
    /* kernel interfaces no sandbox needs, each a known way out */
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "setns",
    "lookup_dcookie",
};

/* The compiled program, read back from libseccomp once. */
static struct sock_fprog prog;

int seccomp_filter_ready(void) { return prog.filter != NULL; }

static void ctx_release(scmp_filter_ctx *c)
{
  if (*c)
    seccomp_release(*c);
}

int seccomp_filter_build(struct sp_error **err)
{
  __attribute__((cleanup(ctx_release))) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == NULL)
    return sp_error_code(err, "INTERNAL_ERROR", 500, "cannot make a seccomp filter");
  /* the filter goes in before exec, where no_new_privs is set by hand */
  seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
  int rc = 0;
  for (size_t i = 0; i < SP_ARRAY_SIZE(denied) && rc == 0; i++) {
    int nr = seccomp_syscall_resolve_name(denied[i]);
    if (nr >= 0) /* not a call of this architecture (umount on x86-64) */
      rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
  }
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
  if (rc == 0 && seccomp_syscall_resolve_name("clone3") != __NR_SCMP_ERROR)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), seccomp_syscall_resolve_name("clone3"), 0);
  if (rc < 0)
    return sp_error_set(err, -rc, "cannot add a seccomp rule");
  /* libseccomp writes the program to a descriptor: read it back */
  cleanup_close int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
  if (fd < 0)
    return sp_error_set(err, errno, "memfd_create");
  if ((rc = seccomp_export_bpf(ctx, fd)) < 0)
    return sp_error_set(err, -rc, "cannot export the seccomp filter");
  off_t len = lseek(fd, 0, SEEK_END);
  if (len <= 0 || len % (off_t)sizeof(struct sock_filter) != 0 || lseek(fd, 0, SEEK_SET) < 0)
    return sp_error_code(err, "INTERNAL_ERROR", 500, "the seccomp filter has a bad size");
  size_t got;
  struct sock_filter *f = (struct sock_filter *)sp_read_fd(fd, (size_t)len, (size_t)len, &got);
  if (f == NULL || got != (size_t)len) {
    free(f);
    return sp_error_set(err, errno, "cannot read the seccomp filter back");
  }
  prog.len = (unsigned short)((size_t)len / sizeof *f);
  prog.filter = f;
  return 0;
}

int seccomp_filter_install(void)
{
  if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return -1;
  return (int)syscall(SYS_prctl, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}
