#include "sandbox.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "id.h"
#include "json.h"
#include "log.h"
#include "str.h"
#include "util.h"

#define MAX_SANDBOXES 65535
#define MAX_SESSIONS_PER_SANDBOX 256
/* processes (threads included) one sandbox user may have at once */
#define SANDBOX_NPROC 2048

/* A session's cwd and env change under the registry's mutex; run is held
 * while one of its commands runs. */
struct session {
  char *id;
  char *cwd;
  char **env;         /* "K=V", NULL-terminated */
  int64_t command_timeout_ms;
  pthread_mutex_t run;
  int refs;
  bool deleted;
};

struct sb_entry {
  struct sandbox sb;
  struct session **sessions;
  int nsessions;
};

struct sandboxes {
  pthread_mutex_t mu;
  char *root;
  char *passwd;
  char *state_dir;
  char *cgroup_root; /* see sandboxes_set_cgroup_root; NULL: none */
  int root_fd;
  bool as_root;
  uid_t uid_base, uid_max;
  struct sb_entry **v;
  int n;
  uid_t next_uid;
};

static bool valid_env_name(const char *s)
{
  if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
    return false;
  for (s++; *s; s++)
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
          *s == '_'))
      return false;
  return true;
}

char *path_resolve(const char *base, const char *path)
{
  if (path[0] == '/')
    return xstrdup(path);
  if (strcmp(path, ".") == 0)
    return xstrdup(base);
  return xasprintf("%s%s%s", base, str_ends_with(base, "/") ? "" : "/", path);
}

/* Rewrite passwd and group from the workspaces' owners. */
static void write_users_locked(struct sandboxes *s)
{
  if (s->passwd == NULL)
    return;
  struct sbuf pw = SBUF_INIT, gr = SBUF_INIT;
  sbuf_addstr(&pw, "root:x:0:0:root:/root:/bin/bash\n"
                   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
  sbuf_addstr(&gr, "root:x:0:\nnogroup:x:65534:\n");
  DIR *d = fdopendir(dup(s->root_fd));
  if (d)
    rewinddir(d); /* the offset is shared with root_fd */
  struct dirent *de;
  while (d && (de = readdir(d)) != NULL) {
    struct stat st;
    if (de->d_name[0] == '.' || fstatat(s->root_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISDIR(st.st_mode) || st.st_uid < s->uid_base || st.st_uid >= s->uid_max)
      continue;
    sbuf_addf(&pw, "sandbox%u:x:%u:%u:sandpit sandbox %s:%s/%s:/bin/bash\n", (unsigned)st.st_uid,
              (unsigned)st.st_uid, (unsigned)st.st_uid, de->d_name, s->root, de->d_name);
    sbuf_addf(&gr, "sandbox%u:x:%u:\n", (unsigned)st.st_uid, (unsigned)st.st_uid);
  }
  if (d)
    closedir(d);
  cleanup_free char *dir = xstrdup(s->passwd);
  char *slash = strrchr(dir, '/');
  cleanup_free char *group = slash ? (*slash = '\0', xasprintf("%s/group", dir)) : xstrdup("group");
  struct sp_error *err = NULL;
  if (sp_write_file_atomic(s->passwd, pw.buf, pw.len, 0644, &err) < 0 ||
      sp_write_file_atomic(group, gr.buf, gr.len, 0644, &err) < 0) {
    sp_warn("cannot write the user list", LS("error", err->msg));
    sp_error_free(err);
  }
  sbuf_release(&pw);
  sbuf_release(&gr);
}

struct sandboxes *sandboxes_new(const char *workspace_root, bool as_root, uid_t uid_base,
                                const char *passwd, const char *state_dir,
                                struct sp_error **err)
{
  if (state_dir && sp_mkdir_p(state_dir, 0700, err) < 0)
    return NULL;
  if (sp_mkdir_p(workspace_root, 0755, err) < 0)
    return NULL;
  int fd = open(workspace_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    sp_error_set(err, errno, "cannot open workspace %s", workspace_root);
    return NULL;
  }
  struct sandboxes *s = xcalloc(1, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  s->root = xstrdup(workspace_root);
  s->root_fd = fd;
  s->as_root = as_root;
  s->uid_base = uid_base;
  s->uid_max = uid_base + SANDBOX_UIDS;
  s->next_uid = uid_base;
  if (as_root) {
    /* Sandbox users must not be able to add entries beside each other. */
    if (fchown(fd, 0, 0) < 0 || fchmod(fd, 0755) < 0)
      sp_warn("cannot secure the workspace root", LS("path", workspace_root),
              LS("error", strerror(errno)));
    /* uids already handed out live on as the owners of workspaces */
    DIR *d = fdopendir(dup(fd));
    if (d)
      rewinddir(d);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
      struct stat st;
      if (de->d_name[0] == '.' ||
          fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
        continue;
      if (st.st_uid >= s->uid_base && st.st_uid < s->uid_max && st.st_uid >= s->next_uid)
        s->next_uid = st.st_uid + 1;
    }
    if (d)
      closedir(d);
  }
  s->passwd = passwd ? xstrdup(passwd) : NULL;
  s->state_dir = state_dir ? xstrdup(state_dir) : NULL;
  write_users_locked(s);
  return s;
}

static void session_free(struct session *se)
{
  free(se->id);
  free(se->cwd);
  strv_free(se->env);
  pthread_mutex_destroy(&se->run);
  free(se);
}

void sandboxes_free(struct sandboxes *s)
{
  if (s == NULL)
    return;
  for (int i = 0; i < s->n; i++) {
    for (int k = 0; k < s->v[i]->nsessions; k++)
      session_free(s->v[i]->sessions[k]);
    free(s->v[i]->sessions);
    free(s->v[i]->sb.id);
    free(s->v[i]->sb.workspace);
    strv_free(s->v[i]->sb.cgroups);
    free(s->v[i]);
  }
  free(s->v);
  close(s->root_fd);
  free(s->root);
  free(s->passwd);
  free(s->state_dir);
  free(s->cgroup_root);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static struct sb_entry *find_locked(struct sandboxes *s, const char *id)
{
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->v[i]->sb.id, id) == 0)
      return s->v[i];
  return NULL;
}

void sandboxes_set_cgroup_root(struct sandboxes *s, const char *dir)
{
  free(s->cgroup_root);
  s->cgroup_root = dir ? xstrdup(dir) : NULL;
}

/* The sandbox's own groups below each handed hierarchy: cpu (the default
 * weight, so each sandbox gets an equal share of the instance's CPU
 * whatever its number of processes) and pids (its process limit, threads
 * counted).  A hierarchy that cannot take one is skipped, with a warning. */
static char **sandbox_cgroups(struct sandboxes *s, const struct sandbox *sb)
{
  if (s->cgroup_root == NULL)
    return NULL;
  static const char *const ctrl[] = {"cpu", "pids"};
  char **v = xcalloc(SP_ARRAY_SIZE(ctrl) + 1, sizeof *v);
  size_t n = 0;
  for (size_t i = 0; i < SP_ARRAY_SIZE(ctrl); i++) {
    cleanup_free char *parent = xasprintf("%s/%s", s->cgroup_root, ctrl[i]);
    struct stat st;
    if (stat(parent, &st) < 0)
      continue;
    cleanup_free char *dir = xasprintf("%s/sb-%s", parent, sb->id);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
      sp_warn("cannot give a sandbox a cgroup", LS("dir", dir), LS("error", strerror(errno)));
      continue;
    }
    if (strcmp(ctrl[i], "pids") == 0) {
      cleanup_free char *max = xasprintf("%s/pids.max", dir);
      char val[24];
      snprintf(val, sizeof val, "%ld", sb->nproc_limit);
      if (sp_write_control(max, val) < 0)
        sp_warn("cannot set a sandbox's process limit", LS("file", max),
                LS("error", strerror(errno)));
    }
    v[n++] = xasprintf("%s/cgroup.procs", dir);
  }
  if (n == 0) {
    free(v);
    return NULL;
  }
  return v;
}

/* Create (or adopt) the workspace directory and decide the sandbox's user.
 * The root is owned by root and not writable by sandbox users, so the name
 * cannot have been replaced by a symlink; still, never follow one. */
static int prepare_workspace(struct sandboxes *s, struct sandbox *sb, struct sp_error **err)
{
  struct stat st;
  if (mkdirat(s->root_fd, sb->id, 0700) < 0 && errno != EEXIST)
    return sp_error_set(err, errno, "cannot create workspace %s", sb->workspace);
  if (fstatat(s->root_fd, sb->id, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return sp_error_set(err, errno, "cannot stat workspace %s", sb->workspace);
  if (!S_ISDIR(st.st_mode))
    return sp_error_code(err, "FILESYSTEM_ERROR", 500, "workspace %s is not a directory",
                         sb->workspace);
  if (!s->as_root)
    return 0;
  if (st.st_uid >= s->uid_base && st.st_uid < s->uid_max) {
    sb->uid = st.st_uid;
  } else {
    if (s->next_uid >= s->uid_max)
      return sp_error_code(err, "CAPACITY_EXCEEDED", 429, "no free sandbox user ids left");
    sb->uid = s->next_uid++;
  }
  sb->gid = (gid_t)sb->uid;
  sb->set_user = true;
  sb->nproc_limit = SANDBOX_NPROC;
  sb->cgroups = sandbox_cgroups(s, sb);
  if (fchownat(s->root_fd, sb->id, sb->uid, sb->gid, AT_SYMLINK_NOFOLLOW) < 0)
    return sp_error_set(err, errno, "cannot give workspace %s to its user", sb->workspace);
  if (fchmodat(s->root_fd, sb->id, 0700, 0) < 0)
    return sp_error_set(err, errno, "cannot set the mode of %s", sb->workspace);
  return 0;
}

static struct session *session_add_locked(struct sb_entry *e, const char *id,
                                          struct sp_error **err);

static char *sessions_file(struct sandboxes *s, const char *id)
{
  return s->state_dir ? xasprintf("%s/%s.json", s->state_dir, id) : NULL;
}

/* Written whole, atomically, after every change. */
static void save_sessions_locked(struct sandboxes *s, struct sb_entry *e)
{
  cleanup_free char *path = sessions_file(s, e->sb.id);
  if (path == NULL)
    return;
  cleanup_json cJSON *j = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(j, "sessions");
  for (int i = 0; i < e->nsessions; i++) {
    struct session *se = e->sessions[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", se->id);
    cJSON_AddStringToObject(o, "cwd", se->cwd);
    json_add_int(o, "commandTimeoutMs", se->command_timeout_ms);
    cJSON *env = cJSON_AddArrayToObject(o, "env");
    for (char **v = se->env; v && *v; v++)
      cJSON_AddItemToArray(env, cJSON_CreateString(*v));
    cJSON_AddItemToArray(arr, o);
  }
  cleanup_free char *text = json_print(j);
  struct sp_error *err = NULL;
  if (sp_write_file_atomic(path, text, strlen(text), 0600, &err) < 0) {
    sp_warn("cannot save sessions", LS("sandbox", e->sb.id), LS("error", err->msg));
    sp_error_free(err);
  }
}

static void load_sessions_locked(struct sandboxes *s, struct sb_entry *e)
{
  cleanup_free char *path = sessions_file(s, e->sb.id);
  if (path == NULL)
    return;
  size_t len;
  cleanup_free char *text = sp_read_file(path, 64 << 20, &len, NULL);
  if (text == NULL)
    return;
  cleanup_json cJSON *j = cJSON_ParseWithLength(text, len);
  const cJSON *o;
  cJSON_ArrayForEach(o, cJSON_GetObjectItem(j, "sessions"))
  {
    const cJSON *id = cJSON_GetObjectItem(o, "id"), *cwd = cJSON_GetObjectItem(o, "cwd");
    if (!cJSON_IsString(id) || !cJSON_IsString(cwd))
      continue;
    struct session *se = session_add_locked(e, id->valuestring, NULL);
    if (se == NULL)
      break;
    free(se->cwd);
    se->cwd = xstrdup(cwd->valuestring);
    const cJSON *t = cJSON_GetObjectItem(o, "commandTimeoutMs");
    se->command_timeout_ms = cJSON_IsNumber(t) ? (int64_t)t->valuedouble : 0;
    const cJSON *env = cJSON_GetObjectItem(o, "env"), *v;
    size_t n = 0;
    char **vec = xcalloc(1, sizeof *vec);
    cJSON_ArrayForEach(v, env)
    {
      if (!cJSON_IsString(v) || strchr(v->valuestring, '=') == NULL)
        continue;
      vec = xreallocarray(vec, n + 2, sizeof *vec);
      vec[n++] = xstrdup(v->valuestring);
      vec[n] = NULL;
    }
    strv_free(se->env);
    se->env = vec;
  }
}

static struct sb_entry *entry_of(struct sandboxes *s, const struct session *se)
{
  for (int i = 0; i < s->n; i++)
    for (int k = 0; k < s->v[i]->nsessions; k++)
      if (s->v[i]->sessions[k] == se)
        return s->v[i];
  return NULL;
}

const struct sandbox *sandboxes_get(struct sandboxes *s, const char *id,
                                    struct sp_error **err)
{
  pthread_mutex_lock(&s->mu);
  struct sb_entry *e = find_locked(s, id);
  if (e == NULL) {
    if (s->n >= MAX_SANDBOXES) {
      pthread_mutex_unlock(&s->mu);
      sp_error_code(err, "CAPACITY_EXCEEDED", 429, "too many sandboxes in this instance");
      return NULL;
    }
    e = xcalloc(1, sizeof *e);
    e->sb.id = xstrdup(id);
    e->sb.workspace = xasprintf("%s/%s", s->root, id);
    if (prepare_workspace(s, &e->sb, err) < 0) {
      pthread_mutex_unlock(&s->mu);
      free(e->sb.id);
      free(e->sb.workspace);
      strv_free(e->sb.cgroups);
      free(e);
      return NULL;
    }
    s->v = xreallocarray(s->v, (size_t)s->n + 1, sizeof *s->v);
    s->v[s->n++] = e;
    if (e->sb.set_user)
      write_users_locked(s);
    load_sessions_locked(s, e);
    sp_info("sandbox ready", LS("sandbox", id), LI("uid", e->sb.set_user ? (long long)e->sb.uid : -1));
  }
  pthread_mutex_unlock(&s->mu);
  return &e->sb;
}

int sandboxes_remove(struct sandboxes *s, const char *id, struct sp_error **err)
{
  (void)err;
  pthread_mutex_lock(&s->mu);
  for (int i = 0; i < s->n; i++) {
    struct sb_entry *e = s->v[i];
    if (strcmp(e->sb.id, id) != 0)
      continue;
    cleanup_free char *file = sessions_file(s, id);
    if (file)
      unlink(file);
    for (int k = 0; k < e->nsessions; k++) {
      e->sessions[k]->deleted = true;
      if (e->sessions[k]->refs == 0)
        session_free(e->sessions[k]);
    }
    free(e->sessions);
    /* its groups go too, once empty (its processes were killed first) */
    for (char **c = e->sb.cgroups; c && *c; c++) {
      char *slash = strrchr(*c, '/');
      *slash = '\0';
      if (rmdir(*c) < 0)
        sp_debug("a sandbox's cgroup stays", LS("dir", *c), LS("error", strerror(errno)));
    }
    free(e->sb.id);
    free(e->sb.workspace);
    strv_free(e->sb.cgroups);
    free(e);
    s->v[i] = s->v[--s->n];
    break;
  }
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static char **default_env(const struct sandbox *sb)
{
  char **v = xcalloc(1, sizeof *v);
  v = strv_setenv(v, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  v = strv_setenv(v, "HOME", sb->workspace);
  v = strv_setenv(v, "LANG", "C.UTF-8");
  v = strv_setenv(v, "USER", "sandbox");
  v = strv_setenv(v, "LOGNAME", "sandbox");
  v = strv_setenv(v, "SHELL", "/bin/bash");
  v = strv_setenv(v, "TMPDIR", "/tmp");
  v = strv_setenv(v, "SANDPIT_SANDBOX", sb->id);
  return v;
}

static struct session *session_find_locked(struct sb_entry *e, const char *id)
{
  for (int i = 0; i < e->nsessions; i++)
    if (strcmp(e->sessions[i]->id, id) == 0)
      return e->sessions[i];
  return NULL;
}

static struct session *session_add_locked(struct sb_entry *e, const char *id,
                                          struct sp_error **err)
{
  if (e->nsessions >= MAX_SESSIONS_PER_SANDBOX) {
    sp_error_code(err, "CAPACITY_EXCEEDED", 429, "too many sessions in sandbox %s", e->sb.id);
    return NULL;
  }
  struct session *se = xcalloc(1, sizeof *se);
  se->id = xstrdup(id);
  se->cwd = xstrdup(e->sb.workspace);
  se->env = default_env(&e->sb);
  pthread_mutex_init(&se->run, NULL);
  e->sessions = xreallocarray(e->sessions, (size_t)e->nsessions + 1, sizeof *e->sessions);
  e->sessions[e->nsessions++] = se;
  return se;
}

struct session *session_acquire(struct sandboxes *s, const struct sandbox *sb,
                                const char *session_id, struct sp_error **err)
{
  const char *id = session_id && *session_id ? session_id : "default";
  if (!sp_id_ok(SP_ID_SESSION, id)) {
    sp_error_code(err, "VALIDATION_FAILED", 400, "sessionId must be 1-128 characters");
    return NULL;
  }
  pthread_mutex_lock(&s->mu);
  struct sb_entry *e = find_locked(s, sb->id);
  struct session *se = NULL;
  if (e == NULL) {
    sp_error_code(err, "SANDBOX_NOT_FOUND", 404, "sandbox %s is gone", sb->id);
  } else {
    se = session_find_locked(e, id);
    if (se == NULL && (se = session_add_locked(e, id, err)) != NULL)
      save_sessions_locked(s, e);
    if (se)
      se->refs++;
  }
  pthread_mutex_unlock(&s->mu);
  return se;
}

void session_release(struct sandboxes *s, struct session *se)
{
  pthread_mutex_lock(&s->mu);
  bool gone = --se->refs == 0 && se->deleted;
  pthread_mutex_unlock(&s->mu);
  if (gone)
    session_free(se);
}

/* env with `overrides` (a JSON object of strings, null to unset) applied. */
static char **env_with(char *const *env, const cJSON *overrides, struct sp_error **err)
{
  char **v = strv_dup(env);
  const cJSON *e;
  cJSON_ArrayForEach(e, overrides)
  {
    if (e->string == NULL || !valid_env_name(e->string)) {
      strv_free(v);
      sp_error_code(err, "VALIDATION_FAILED", 400,
                    "environment variable names must match [A-Za-z_][A-Za-z0-9_]*");
      return NULL;
    }
    if (cJSON_IsNull(e)) {
      v = strv_unsetenv(v, e->string);
      continue;
    }
    if (!cJSON_IsString(e) || strlen(e->valuestring) > 128 * 1024) {
      strv_free(v);
      sp_error_code(err, "VALIDATION_FAILED", 400,
                    "environment variable '%s' must be a string (at most 128 KiB)", e->string);
      return NULL;
    }
    v = strv_setenv(v, e->string, e->valuestring);
  }
  return v;
}

struct session *session_begin(struct sandboxes *s, const struct sandbox *sb,
                              const char *session_id, struct sp_error **err)
{
  struct session *se = session_acquire(s, sb, session_id, err);
  if (se)
    pthread_mutex_lock(&se->run);
  return se;
}

void session_end(struct sandboxes *s, struct session *se)
{
  pthread_mutex_unlock(&se->run);
  session_release(s, se);
}

const char *session_id(const struct session *se) { return se->id; }

int64_t session_timeout_ms(const struct session *se) { return se->command_timeout_ms; }

static char *resolve_locked(const struct session *se, const char *path)
{
  return path && *path ? path_resolve(se->cwd, path) : xstrdup(se->cwd);
}

int session_context(struct sandboxes *s, struct session *se, const cJSON *overrides,
                    const char *cwd, char ***envp, char **dir, struct sp_error **err)
{
  pthread_mutex_lock(&s->mu);
  *envp = env_with(se->env, overrides, err);
  *dir = *envp ? resolve_locked(se, cwd) : NULL;
  pthread_mutex_unlock(&s->mu);
  return *envp ? 0 : -1;
}

char *session_path(struct sandboxes *s, const struct sandbox *sb, const char *session_id,
                   const char *path, struct sp_error **err)
{
  struct session *se = session_acquire(s, sb, session_id, err);
  if (se == NULL)
    return NULL;
  pthread_mutex_lock(&s->mu);
  char *abs = resolve_locked(se, path);
  pthread_mutex_unlock(&s->mu);
  session_release(s, se);
  return abs;
}

int session_create(struct sandboxes *s, const struct sandbox *sb, const char *id,
                   const cJSON *env, const char *cwd, int64_t timeout_ms,
                   struct sp_error **err)
{
  if (!sp_id_ok(SP_ID_SESSION, id))
    return sp_error_code(err, "VALIDATION_FAILED", 400, "session id must be 1-128 characters");
  pthread_mutex_lock(&s->mu);
  int rc = -1;
  struct sb_entry *e = find_locked(s, sb->id);
  if (e == NULL) {
    sp_error_code(err, "SANDBOX_NOT_FOUND", 404, "sandbox %s is gone", sb->id);
    goto out;
  }
  if (session_find_locked(e, id)) {
    sp_error_code(err, "SESSION_ALREADY_EXISTS", 409, "Session '%s' already exists", id);
    goto out;
  }
  char **defaults = default_env(sb);
  char **v = env_with(defaults, env, err);
  strv_free(defaults);
  if (v == NULL)
    goto out;
  struct session *se = session_add_locked(e, id, err);
  if (se == NULL) {
    strv_free(v);
    goto out;
  }
  strv_free(se->env);
  se->env = v;
  if (cwd && *cwd) {
    free(se->cwd);
    se->cwd = path_resolve(sb->workspace, cwd);
  }
  se->command_timeout_ms = timeout_ms;
  save_sessions_locked(s, e);
  rc = 0;
out:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int session_delete(struct sandboxes *s, const struct sandbox *sb, const char *id,
                   struct sp_error **err)
{
  pthread_mutex_lock(&s->mu);
  struct sb_entry *e = find_locked(s, sb->id);
  int rc = -1;
  for (int i = 0; e && i < e->nsessions; i++) {
    struct session *se = e->sessions[i];
    if (strcmp(se->id, id) != 0)
      continue;
    e->sessions[i] = e->sessions[--e->nsessions];
    se->deleted = true;
    save_sessions_locked(s, e);
    if (se->refs == 0)
      session_free(se);
    rc = 0;
    break;
  }
  pthread_mutex_unlock(&s->mu);
  if (rc < 0)
    sp_error_code(err, "SESSION_NOT_FOUND", 404, "Session '%s' not found", id);
  return rc;
}

cJSON *session_list(struct sandboxes *s, const struct sandbox *sb)
{
  cJSON *arr = cJSON_CreateArray();
  pthread_mutex_lock(&s->mu);
  struct sb_entry *e = find_locked(s, sb->id);
  for (int i = 0; e && i < e->nsessions; i++)
    cJSON_AddItemToArray(arr, cJSON_CreateString(e->sessions[i]->id));
  pthread_mutex_unlock(&s->mu);
  return arr;
}

static const char *strv_getenv(char **v, const char *name)
{
  size_t klen = strlen(name);
  for (size_t i = 0; v && v[i]; i++)
    if (strncmp(v[i], name, klen) == 0 && v[i][klen] == '=')
      return v[i] + klen + 1;
  return NULL;
}

void session_update(struct sandboxes *s, struct session *se, const char *cwd, char **env,
                    const cJSON *scoped)
{
  pthread_mutex_lock(&s->mu);
  if (cwd && cwd[0] == '/') {
    free(se->cwd);
    se->cwd = xstrdup(cwd);
  }
  if (env) {
    char **v = strv_dup(env);
    const cJSON *e;
    cJSON_ArrayForEach(e, scoped)
    {
      if (e->string == NULL)
        continue;
      const char *old = strv_getenv(se->env, e->string);
      v = old ? strv_setenv(v, e->string, old) : strv_unsetenv(v, e->string);
    }
    strv_free(se->env);
    se->env = v;
  }
  struct sb_entry *e = entry_of(s, se);
  if (e)
    save_sessions_locked(s, e);
  pthread_mutex_unlock(&s->mu);
}

void sandbox_fs_enter(const struct sandbox *sb)
{
  if (!sb->set_user)
    return;
  /* Per thread: the kernel checks this thread's file accesses as the
   * sandbox's user (and drops the file capabilities while fsuid != 0). */
  setfsgid(sb->gid);
  setfsuid(sb->uid);
}

void sandbox_fs_leave(const struct sandbox *sb)
{
  if (!sb->set_user)
    return;
  setfsuid(0);
  setfsgid(0);
}

void sandboxes_kill_all(struct sandboxes *s)
{
  pthread_mutex_lock(&s->mu);
  for (int i = 0; i < s->n; i++) {
    const struct sandbox *sb = &s->v[i]->sb;
    if (!sb->set_user)
      continue;
    /* as the user itself: kill(-1) then reaches exactly its processes */
    pid_t pid = fork();
    if (pid == 0) {
      if (syscall(SYS_setgroups, 0, NULL) == 0 && syscall(SYS_setresgid, sb->gid, sb->gid, sb->gid) == 0 &&
          syscall(SYS_setresuid, sb->uid, sb->uid, sb->uid) == 0)
        kill(-1, SIGKILL);
      _exit(0);
    }
    if (pid > 0)
      waitpid(pid, NULL, 0);
  }
  pthread_mutex_unlock(&s->mu);
}
