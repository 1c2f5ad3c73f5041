/* The system call filter every sandbox process runs under.
 *
 * Modelled on Docker's default profile, as a deny list (everything else is
 * allowed, so ordinary workloads -- npm, vite, python, gcc -- see no
 * difference): no mount or umount (nor the new mount API), pivot_root,
 * swapon/swapoff, reboot, kexec, kernel modules, keyctl/add_key/
 * request_key, bpf, perf_event_open, userfaultfd, setns,
 * open_by_handle_at, and no new user namespace (unshare or clone with
 * CLONE_NEWUSER; clone3, whose flags a filter cannot read, answers ENOSYS
 * so that libc falls back to clone).  A denied call fails with EPERM.
 * ptrace stays allowed: the kernel already refuses it across users, and
 * within one sandbox every process is the caller's own.
 *
 * seccomp_filter_build() compiles the filter once, at start; the child
 * of sp_spawn installs it with seccomp_filter_install(), system calls
 * only (it runs after vfork). */
#ifndef SP_SYSFILTER_H
#define SP_SYSFILTER_H

struct sp_error;

/* Compiles the filter for this machine's architecture; -1 with *err. */
int seccomp_filter_build(struct sp_error **err);

/* Whether a filter was built (sp_spawn installs it when there is one). */
int seccomp_filter_ready(void);

/* In a child about to exec: no new privileges, then the filter.  -1 with
 * errno. */
int seccomp_filter_install(void);

#endif
