/* process start|stop|restart|status|list */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "json.h"
#include "str.h"
#include "util.h"

enum { OPT_SIGNAL = 256 };

const struct cli_option process_start_options[] = {
    {"id", 'i', "ID", "the process's id (default: the monitor picks one)", NULL},
    {"port", 'p', "N", "the port it serves (1-65535): it is ready once that port answers", NULL},
    {"auto-restart", 'a', NULL, "start it again when it exits", NULL},
    {"max-restarts", 'm', "N", "at most N restarts (0-1000; default: the monitor's)", NULL},
    {"cwd", 'c', "DIR", "its working directory", NULL},
    {"env", 'e', "NAME=VALUE", "a variable of its environment (repeatable)", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

const struct cli_option process_stop_options[] = {
    {"signal", OPT_SIGNAL, "SIG", "the signal, by name or number (default TERM)", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static void print_header(void)
{
  printf("%-16s %-8s %-10s %-5s %-8s %-5s %s\n", "ID", "PID", "STATUS", "READY", "RESTARTS",
         "EXIT", "COMMAND");
}

static void print_row(const cJSON *p)
{
  cleanup_free char *pid = cli_num(p, "pid", "-");
  cleanup_free char *code = cli_num(p, "exitCode", "-");
  cleanup_free char *restarts = cli_num(p, "restarts", "0");
  cleanup_free char *ready = cli_num(p, "ready", "no");
  printf("%-16s %-8s %-10s %-5s %-8s %-5s %s\n", cli_str(p, "id", "?"), pid,
         cli_str(p, "status", "?"), ready, restarts, code, cli_str(p, "command", ""));
}

/* A reply that is one process (start answers with the process itself). */
static void print_process(const cJSON *reply)
{
  const cJSON *p = cJSON_GetObjectItem(reply, "process");
  print_header();
  print_row(p ? p : reply);
}

static void print_processes(const cJSON *reply)
{
  print_header();
  const cJSON *p;
  cJSON_ArrayForEach(p, cJSON_GetObjectItem(reply, "processes")) print_row(p);
}

static void sh_quote(struct sbuf *sb, const char *s)
{
  if (*s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                      "-_./=:@%+,") == strlen(s)) {
    sbuf_addstr(sb, s);
    return;
  }
  sbuf_addch(sb, '\'');
  for (; *s; s++) {
    if (*s == '\'')
      sbuf_addstr(sb, "'\\''");
    else
      sbuf_addch(sb, *s);
  }
  sbuf_addch(sb, '\'');
}

/* A number option in [min, max] into the body under key. */
static int add_number(cJSON *body, const struct cli_args *a, int opt, const char *name,
                      const char *key, long long min, long long max, struct sp_error **err)
{
  const char *v = cli_arg(a, opt);
  long long n;
  if (v == NULL)
    return 0;
  if (!str_to_ll(v, min, max, &n))
    return cli_usage(err, "--%s must be %lld-%lld", name, min, max);
  cJSON_AddNumberToObject(body, key, (double)n);
  return 0;
}

int process_start(const struct cli *c, const struct cli_args *a, struct sp_error **err)
{
  cleanup_json cJSON *body = cJSON_CreateObject();
  const char *v;
  if ((v = cli_arg(a, 'i')))
    cJSON_AddStringToObject(body, "processId", v);
  if (add_number(body, a, 'p', "port", "port", 1, 65535, err) < 0)
    return -1;
  if (cli_arg(a, 'a'))
    cJSON_AddBoolToObject(body, "autoRestart", true);
  if (add_number(body, a, 'm', "max-restarts", "maxRestarts", 0, 1000, err) < 0)
    return -1;
  if ((v = cli_arg(a, 'c')))
    cJSON_AddStringToObject(body, "cwd", v);
  cJSON *env = NULL;
  for (int i = 0; i < a->nopts; i++) {
    if (a->opts[i].key != 'e')
      continue;
    const char *kv = a->opts[i].value;
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv)
      return cli_usage(err, "--env takes NAME=VALUE, not '%s'", kv);
    if (env == NULL)
      env = cJSON_AddObjectToObject(body, "env");
    cleanup_free char *name = xstrndup(kv, (size_t)(eq - kv));
    cJSON_AddStringToObject(env, name, eq + 1);
  }
  /* One word is a shell command line as it is; several are words, quoted
   * so that the shell sees them unchanged. */
  cleanup_sbuf struct sbuf cmd = SBUF_INIT;
  if (a->argc == 1)
    sbuf_addstr(&cmd, a->argv[0]);
  for (int i = 0; a->argc > 1 && i < a->argc; i++) {
    if (i > 0)
      sbuf_addch(&cmd, ' ');
    sh_quote(&cmd, a->argv[i]);
  }
  cJSON_AddStringToObject(body, "command", sbuf_str(&cmd));
  cleanup_free char *s = json_print(body);
  return cli_show(c, "POST", "/api/process/start", s, print_process, err);
}

int process_stop(const struct cli *c, const struct cli_args *a, struct sp_error **err)
{
  const char *sig = cli_arg(a, OPT_SIGNAL);
  cleanup_free char *id = cli_escape(a->argv[0]);
  cleanup_sbuf struct sbuf path = SBUF_INIT;
  sbuf_addf(&path, "/api/process/%s", id);
  cli_query(&path, "signal", sig ? sig : "TERM");
  return cli_show(c, "DELETE", sbuf_str(&path), NULL, print_process, err);
}

int process_restart(const struct cli *c, const struct cli_args *a, struct sp_error **err)
{
  cleanup_free char *id = cli_escape(a->argv[0]);
  cleanup_free char *path = xasprintf("/api/process/%s/restart", id);
  return cli_show(c, "POST", path, NULL, print_process, err);
}

int process_status(const struct cli *c, const struct cli_args *a, struct sp_error **err)
{
  cleanup_free char *id = cli_escape(a->argv[0]);
  cleanup_free char *path = xasprintf("/api/process/%s", id);
  return cli_show(c, "GET", path, NULL, print_process, err);
}

int process_list(const struct cli *c, const struct cli_args *a, struct sp_error **err)
{
  (void)a;
  return cli_show(c, "GET", "/api/process/list", NULL, print_processes, err);
}
