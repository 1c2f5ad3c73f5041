/* Sandboxes inside one instance, and the execution sessions inside each.
 *
 * A sandbox has its own workspace WORKSPACE/{id} (mode 0700) and, when the
 * monitor runs as root, its own Unix user: uid = gid = uid_base + n,
 * the owner of its workspace.  The uid is read back from the workspace's
 * owner when the monitor restarts, so no other state is needed.
 *
 * A session (the SDK's execution session) keeps a working directory and an
 * environment; commands in one session run one at a time. */
#ifndef SP_SANDBOX_H
#define SP_SANDBOX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sp_error;
struct cJSON;
struct monitor;

/* Each instance gets its own range of SANDBOX_UIDS user ids from sandpitd
 * (SANDPIT_UID_BASE), so no two instances share a user: per-user limits
 * and signals stay within one instance. */
#define SANDBOX_UID_BASE 200000
#define SANDBOX_UIDS 65536

struct session; /* sandbox.c's */

struct sandbox {
  char *id;
  char *workspace;
  bool set_user;
  uid_t uid;
  gid_t gid;
  long nproc_limit;
  char **cgroups; /* the cgroup.procs files of its own groups (NULL-terminated), or NULL */
};

struct sandboxes;

/* passwd: when not NULL, a passwd file kept listing root, nobody and every
 * sandbox user (a "group" file beside it likewise); an instance's
 * /etc/passwd points at it so tools can name the users. */
/* state_dir: where sessions are kept (one JSON file per sandbox, written
 * on every change), so a restarted monitor carries them on. */
struct sandboxes *sandboxes_new(const char *workspace_root, bool as_root, uid_t uid_base,
                                const char *passwd, const char *state_dir,
                                struct sp_error **err);
/* Kill every process of every sandbox user (at shutdown: what commands
 * left behind must not outlive the monitor). */
void sandboxes_kill_all(struct sandboxes *s);
void sandboxes_free(struct sandboxes *s);
/* dir holds cgroup v1 hierarchies handed to this monitor ("cpu", "pids"):
 * each sandbox made from now on gets a group of its own below each (an
 * equal share of the instance's CPU, a process limit of its own), which
 * its processes enter. */
void sandboxes_set_cgroup_root(struct sandboxes *s, const char *dir);

/* Find or create the sandbox (its workspace and user).  The returned struct
 * lives as long as the registry; do not free it. */
const struct sandbox *sandboxes_get(struct sandboxes *s, const char *id,
                                    struct sp_error **err);
/* Remove a sandbox's workspace (as its own user) and forget its sessions. */
int sandboxes_remove(struct sandboxes *s, const char *id, struct sp_error **err);

/* Sessions.  session_acquire finds or creates (with defaults) a session and
 * takes a reference; session_release drops it. */
struct session *session_acquire(struct sandboxes *s, const struct sandbox *sb,
                                const char *session_id, struct sp_error **err);
void session_release(struct sandboxes *s, struct session *se);
/* The same, for running one of its commands: session_begin waits while
 * another command of the session runs (one at a time, as with the SDK's
 * shells); session_end lets the next one go. */
struct session *session_begin(struct sandboxes *s, const struct sandbox *sb,
                              const char *session_id, struct sp_error **err);
void session_end(struct sandboxes *s, struct session *se);
const char *session_id(const struct session *se);
int64_t session_timeout_ms(const struct session *se);
/* What a command started in the session inherits, as copies: its
 * environment with `overrides` (a JSON object of strings, null unsets)
 * applied, in *envp, and `cwd` resolved against its working directory (the
 * working directory itself when cwd is NULL or empty), in *dir.
 * VALIDATION_FAILED for bad variable names or values. */
int session_context(struct sandboxes *s, struct session *se, const struct cJSON *overrides,
                    const char *cwd, char ***envp, char **dir, struct sp_error **err);
/* `path` resolved against the working directory of the session named
 * session_id (found or created), or that directory itself; a copy. */
char *session_path(struct sandboxes *s, const struct sandbox *sb, const char *session_id,
                   const char *path, struct sp_error **err);
/* Create with options; SESSION_ALREADY_EXISTS (409) if it exists. */
int session_create(struct sandboxes *s, const struct sandbox *sb, const char *id,
                   const struct cJSON *env, const char *cwd, int64_t timeout_ms,
                   struct sp_error **err);
int session_delete(struct sandboxes *s, const struct sandbox *sb, const char *id,
                   struct sp_error **err);
struct cJSON *session_list(struct sandboxes *s, const struct sandbox *sb);
/* Record a command's resulting cwd (NULL: unchanged) and environment.
 * Variables named in `scoped` (a JSON object: the call's own env) were for
 * that call only: they keep the session's values. */
void session_update(struct sandboxes *s, struct session *se, const char *cwd,
                    char **env, const struct cJSON *scoped);

/* An absolute path: `path` resolved against `base` when relative. */
char *path_resolve(const char *base, const char *path);

/* Switch this thread's filesystem identity to the sandbox's user (no-op when
 * not running as root), and back.  File routes work between the two. */
void sandbox_fs_enter(const struct sandbox *sb);
void sandbox_fs_leave(const struct sandbox *sb);

#endif
