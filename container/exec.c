#include "exec.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <ctype.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "json.h"
#include "log.h"
#include "monitor.h"
#include "sandbox.h"
#include "spawn.h"
#include "str.h"
#include "supervisor.h"
#include "util.h"

#define STATE_MAX (1 << 20)
#define STDIN_MAX (16 << 20)

/* Runs the user's command; on exit, reports "cwd\0env0\0env1\0...\0\0" on
 * descriptor 3.  The command comes as $1 so nothing of it is re-quoted. */
static const char wrapper[] =
    "__sp_cmd=$1; shift; "
    "trap '__sp_rc=$?; { pwd; printf \"\\0\"; env -0; printf \"\\0\"; } >&3 2>/dev/null; "
    "exit $__sp_rc' EXIT; "
    "eval \"$__sp_cmd\"";

/* Words that can change what a session keeps (its directory, its exported
 * environment).  A command without any of them cannot, so it runs without
 * the wrapper's report. */
static bool may_change_state(const char *cmd)
{
  static const char *const words[] = {"cd",      "export", "unset",  "declare", "typeset",
                                      "source",  ".",      "pushd",  "popd",    "eval",
                                      "set",     "readonly", "local", "builtin", "command",
                                      "exec",    "enable", "shopt",  "alias",   "unalias"};
  const char *p = cmd;
  while (*p) {
    while (*p && !(isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-'))
      p++;
    const char *w = p;
    while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-'))
      p++;
    size_t n = (size_t)(p - w);
    for (size_t i = 0; n && i < SP_ARRAY_SIZE(words); i++)
      if (strlen(words[i]) == n && memcmp(words[i], w, n) == 0)
        return true;
  }
  return false;
}

/* A command of plain words (no quoting, expansion, redirection, operators,
 * assignments, shell builtins) can be executed without a shell at all.
 * Returns its argv with argv[0] resolved through PATH, or NULL. */
static char **plain_argv(const char *cmd, char **envp, const char *cwd)
{
  static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                           "_./:=@%+,- ";
  static const char *const builtins[] = {
      "alias", "bg", "bind", "break", "builtin", "caller", "cd", "command", "compgen",
      "complete", "compopt", "continue", "declare", "dirs", "disown", "echo", "enable", "eval",
      "exec", "exit", "export", "fc", "fg", "getopts", "hash", "help", "history", "jobs", "kill",
      "let", "local", "logout", "mapfile", "popd", "printf", "pushd", "pwd", "read", "readarray",
      "readonly", "return", "set", "shift", "shopt", "source", "suspend", "test", "times",
      "trap", "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait", "if", "then",
      "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do", "done",
      "in", "function", "time", "coproc", "[", "[[", "]]", "{", "}", "!"};
  if (cmd[strspn(cmd, ok)] != '\0')
    return NULL;
  char **v = NULL;
  size_t n = 0;
  for (const char *p = cmd; *p;) {
    while (*p == ' ')
      p++;
    if (!*p)
      break;
    const char *w = p;
    while (*p && *p != ' ')
      p++;
    v = xreallocarray(v, n + 2, sizeof *v);
    v[n++] = xstrndup(w, (size_t)(p - w));
    v[n] = NULL;
  }
  if (n == 0 || strchr(v[0], '=') != NULL)
    goto no;
  for (size_t i = 0; i < SP_ARRAY_SIZE(builtins); i++)
    if (strcmp(v[0], builtins[i]) == 0)
      goto no;
  char *path = NULL;
  if (strchr(v[0], '/')) {
    path = path_resolve(cwd, v[0]);
  } else {
    const char *pathvar = "/usr/local/bin:/usr/bin:/bin";
    for (char **e = envp; e && *e; e++)
      if (strncmp(*e, "PATH=", 5) == 0)
        pathvar = *e + 5;
    cleanup_free char *copy = xstrdup(pathvar);
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d && !path; d = strtok_r(NULL, ":", &save)) {
      char *cand = xasprintf("%s/%s", d, v[0]);
      struct stat st;
      if (d[0] == '/' && stat(cand, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111))
        path = cand;
      else
        free(cand);
    }
  }
  struct stat st;
  if (path == NULL || stat(path, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
    free(path);
    goto no;
  }
  free(v[0]);
  v[0] = path;
  return v;
no:
  strv_free(v);
  return NULL;
}

struct exec_run {
  struct monitor *m;
  struct session *se;
  char *command;
  cJSON *scoped_env;     /* the call's own env: not kept by the session */
  bool scoped_cwd;       /* the call's own cwd: not kept either */
  struct command *cmd;   /* run by the supervisor's loop */
  struct sbuf carry[3];  /* incomplete UTF-8 sequences per stream */
  int64_t started_us;
  int64_t timeout_ms;
  bool done;
  struct command_result res;
};

struct exec_run *exec_start(struct monitor *m, const struct sandbox *sb, const cJSON *body,
                            struct sp_error **err)
{
  const char *command, *session_id, *cwd, *stdin_s;
  int64_t timeout;
  if (json_get_string(body, "command", NULL, &command, err) < 0 ||
      json_get_string(body, "sessionId", NULL, &session_id, err) < 0 ||
      json_get_string(body, "cwd", NULL, &cwd, err) < 0 ||
      json_get_string(body, "stdin", NULL, &stdin_s, err) < 0 ||
      json_get_int(body, "timeoutMs", 0, 0, 24LL * 3600 * 1000, &timeout, err) < 0)
    return NULL;
  if (command == NULL || command[strspn(command, " \t\r\n")] == '\0') {
    sp_error_code(err, "INVALID_COMMAND", 400, "'command' must be a non-empty string");
    return NULL;
  }
  if (strlen(command) > 256 * 1024) {
    sp_error_code(err, "INVALID_COMMAND", 400, "'command' is longer than 256 KiB");
    return NULL;
  }
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(body, "env");
  if (env && !cJSON_IsObject(env) && !cJSON_IsNull(env)) {
    sp_error_code(err, "VALIDATION_FAILED", 400, "'env' must be an object of strings");
    return NULL;
  }
  if (stdin_s && strlen(stdin_s) > STDIN_MAX) {
    sp_error_code(err, "VALIDATION_FAILED", 400, "'stdin' is larger than 16 MiB");
    return NULL;
  }
  struct session *se = session_begin(m->sandboxes, sb, session_id, err);
  if (se == NULL)
    return NULL;
  struct exec_run *x = xcalloc(1, sizeof *x);
  x->m = m;
  x->se = se;
  x->command = xstrdup(command);
  x->started_us = sp_monotonic_us();
  x->timeout_ms = timeout ? timeout : session_timeout_ms(se);

  cleanup_free char *dir = NULL;
  char **envp;
  if (session_context(m->sandboxes, se, cJSON_IsObject(env) ? env : NULL, cwd, &envp, &dir, err) < 0)
    goto fail;
  x->scoped_cwd = cwd && *cwd;
  x->scoped_env = cJSON_IsObject(env) ? cJSON_Duplicate(env, true) : NULL;
  /* Three ways, cheapest first: plain words are executed directly; a
   * command that cannot change the session's state runs in bash as it is;
   * anything else in bash with the wrapper that reports the state. */
  bool report = may_change_state(command);
  char **argv = report ? NULL : plain_argv(command, envp, dir);
  int sp[2] = {-1, -1};
  if (report && pipe2(sp, O_CLOEXEC) < 0) {
    strv_free(envp);
    sp_error_set(err, errno, "pipe");
    goto fail;
  }
  struct spawn_opts so = {
      .command = report ? wrapper : command,
      .argv = argv,
      .shell = "/bin/bash",
      .arg = report ? command : NULL,
      .extra_fd = report ? sp[1] : 0,
      .cwd = dir,
      .envp = envp,
      .set_user = sb->set_user,
      .uid = sb->uid,
      .gid = sb->gid,
      .nproc_limit = sb->nproc_limit,
      .cgroups = sb->cgroups,
  };
  struct command_opts co = {
      .spawn = &so,
      .state_fd = sp[0],
      .stdin_data = stdin_s,
      .stdin_len = stdin_s ? strlen(stdin_s) : 0,
      .timeout_ms = x->timeout_ms,
      .output_cap = m->exec_output_max,
      .state_cap = STATE_MAX,
  };
  x->cmd = supervisor_command(m->sup, &co, err);
  if (x->cmd == NULL && argv && strcmp((*err)->code, "MONITOR_STOPPING") != 0) {
    /* e.g. not executable for the sandbox's user: let bash say so */
    sp_error_free(*err);
    *err = NULL;
    so.argv = NULL;
    x->cmd = supervisor_command(m->sup, &co, err);
  }
  if (sp[1] >= 0)
    close(sp[1]);
  strv_free(envp);
  strv_free(argv);
  if (x->cmd == NULL)
    goto fail;
  return x;
fail:
  session_end(m->sandboxes, se);
  cJSON_Delete(x->scoped_env);
  free(x->command);
  free(x);
  return NULL;
}

/* Hand on complete UTF-8; keep an incomplete tail for the next chunk. */
static void emit(struct exec_run *x, enum exec_stream s, const char *buf, size_t n,
                 exec_sink sink, void *ud)
{
  struct sbuf *c = &x->carry[s];
  sbuf_add(c, buf, n);
  /* find the longest prefix that does not end inside a sequence */
  size_t end = c->len;
  for (size_t back = 1; back <= 3 && back <= c->len; back++) {
    unsigned char b = (unsigned char)c->buf[c->len - back];
    if ((b & 0xc0) == 0x80)
      continue;
    size_t need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    if (need > back)
      end = c->len - back;
    break;
  }
  if (end == 0)
    return;
  struct sbuf out = SBUF_INIT;
  sbuf_add_utf8(&out, c->buf, end);
  memmove(c->buf, c->buf + end, c->len - end);
  c->len -= end;
  c->buf[c->len] = '\0';
  if (out.len)
    sink(ud, s, out.buf, out.len);
  sbuf_release(&out);
}

static void flush_carry(struct exec_run *x, exec_sink sink, void *ud)
{
  for (int s = 1; s <= 2; s++) {
    struct sbuf *c = &x->carry[s];
    if (c->len == 0)
      continue;
    struct sbuf out = SBUF_INIT;
    for (size_t i = 0; i < c->len; i++)
      sbuf_addstr(&out, "\xef\xbf\xbd");
    sink(ud, (enum exec_stream)s, out.buf, out.len);
    sbuf_release(&out);
    sbuf_reset(c);
  }
}

/* "cwd\0K=V\0...\0\0": apply it to the session. */
static void apply_state(struct exec_run *x)
{
  const char *p = x->res.state, *end = p + x->res.state_len;
  if (x->res.state_len < 2 || end[-1] != '\0' || end[-2] != '\0')
    return; /* incomplete: the shell did not get to report */
  cleanup_free char *cwd = xstrdup(p);
  size_t cl = strlen(cwd);
  if (cl && cwd[cl - 1] == '\n')
    cwd[cl - 1] = '\0';
  p += strlen(p) + 1;
  size_t n = 0;
  char **env = xcalloc(1, sizeof *env);
  while (p < end && *p) {
    size_t len = strlen(p);
    if (!str_starts_with(p, "__sp_") && !str_starts_with(p, "OLDPWD=") &&
        !str_starts_with(p, "SHLVL=") && !str_starts_with(p, "_=")) {
      env = xreallocarray(env, n + 2, sizeof *env);
      env[n++] = xstrdup(p);
      env[n] = NULL;
    }
    p += len + 1;
  }
  session_update(x->m->sandboxes, x->se, x->scoped_cwd ? NULL : cwd, env, x->scoped_env);
  strv_free(env);
}

struct sink_ctx {
  struct exec_run *x;
  exec_sink sink;
  void *ud;
};

static void take(void *ud, enum command_stream which, const char *data, size_t len)
{
  struct sink_ctx *c = ud;
  emit(c->x, which == COMMAND_STDERR ? EXEC_STDERR : EXEC_STDOUT, data, len, c->sink, c->ud);
}

bool exec_step(struct exec_run *x, int wait_ms, exec_sink sink, void *ud)
{
  if (x->done)
    return true;
  struct sink_ctx c = {x, sink, ud};
  if (!command_wait(x->cmd, wait_ms, take, &c))
    return false;
  command_result(x->cmd, &x->res);
  if (!x->res.timed_out && !x->res.stopped)
    apply_state(x);
  flush_carry(x, sink, ud);
  x->done = true;
  return true;
}

int exec_exit_code(const struct exec_run *x)
{
  return x->res.exit_code;
}

bool exec_timed_out(const struct exec_run *x) { return x->res.timed_out; }
bool exec_stopped(const struct exec_run *x) { return x->res.stopped; }
int64_t exec_timeout_ms(const struct exec_run *x) { return x->timeout_ms; }
bool exec_truncated(const struct exec_run *x) { return x->res.truncated; }
const char *exec_command(const struct exec_run *x) { return x->command; }
const char *exec_session(const struct exec_run *x) { return session_id(x->se); }
int64_t exec_duration_ms(const struct exec_run *x)
{
  return (sp_monotonic_us() - x->started_us) / 1000;
}

void exec_free(struct exec_run *x)
{
  if (x == NULL)
    return;
  /* A command still running is killed by the loop. */
  command_release(x->cmd);
  session_end(x->m->sandboxes, x->se);
  for (int i = 0; i < 3; i++)
    sbuf_release(&x->carry[i]);
  free(x->command);
  cJSON_Delete(x->scoped_env);
  free(x);
}
