/* monitor-cli: inspect and drive a sandpit-monitor from a terminal.
 *
 * It speaks HTTP to the monitor's unix socket, or to a sandbox through
 * sandpitd with --manager URL --session ID.  The commands are one table;
 * global options may stand anywhere on the line. */
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "error.h"
#include "str.h"
#include "util.h"
#include "version.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

static const char exit_help[] =
    "Exit status: 0 success, 1 the request failed, 2 usage error,\n"
    "3 the monitor could not be reached.\n";

struct command {
  const char *name; /* "process start": a noun and a verb, or one word */
  const char *args; /* its words, for the help */
  int min_args, max_args;
  /* Options end at the first word: the words are a command line of
   * their own (process start). */
  bool words_end_options;
  const struct cli_option *options;
  const char *help; /* a line for the list of commands */
  const char *more; /* the rest, for the command's --help (or NULL) */
  int (*run)(const struct cli *c, const struct cli_args *a, struct sp_error **err);
  /* without run: one request, its options its query (cli_option.query),
   * its reply printed through table() */
  const char *method, *path;
  void (*table)(const struct cJSON *reply);
};

static const struct command commands[] = {
    {"process start", "COMMAND...", 1, -1, true, process_start_options,
     "start COMMAND under the monitor",
     "One word is a shell command line as it is; several words are quoted\n"
     "so that the shell sees them unchanged.  Put '--' before a COMMAND that\n"
     "begins with '-'.",
     process_start, NULL, NULL, NULL},
    {"process stop", "ID", 1, 1, false, process_stop_options,
     "send a signal (default TERM) to process ID's group", NULL, process_stop, NULL, NULL,
     NULL},
    {"process restart", "ID", 1, 1, false, NULL, "restart process ID", NULL, process_restart,
     NULL, NULL, NULL},
    {"process status", "ID", 1, 1, false, NULL, "show process ID", NULL, process_status, NULL,
     NULL, NULL},
    {"process list", "", 0, 0, false, NULL, "list the processes", NULL, process_list, NULL, NULL,
     NULL},
    {"errors list", "", 0, 0, false, errors_list_options,
     "list the errors found in the processes' output", NULL, NULL, "GET", "/api/errors",
     errors_print_list},
    {"errors stats", "", 0, 0, false, NULL, "count the errors by category, severity and tool",
     NULL, NULL, "GET", "/api/errors/stats", errors_print_stats},
    {"errors clear", "", 0, 0, false, NULL, "forget the errors", NULL, NULL, "DELETE",
     "/api/errors", cli_print_message},
    {"logs get", "", 0, 0, false, logs_get_options, "print the processes' output", NULL,
     logs_get, NULL, NULL, NULL},
    {"logs clear", "", 0, 0, false, logs_clear_options, "forget the output", NULL, NULL, "DELETE",
     "/api/logs", cli_print_message},
    {"status", "", 0, 0, false, NULL, "show the monitor's own status", NULL, NULL, "GET",
     "/api/status", monitor_print_status},
    {"ping", "", 0, 0, false, NULL, "check that the monitor answers", NULL, NULL, "GET",
     "/api/ping", cli_print_message},
};

/* Above the commands' keys (see cli.h). */
enum { OPT_SOCKET = 512, OPT_SANDBOX, OPT_MANAGER, OPT_SESSION, OPT_FORMAT };

static const struct cli_option global_options[] = {
    {"socket", OPT_SOCKET, "PATH",
     "monitor socket (default $SANDPIT_MONITOR_SOCKET or\n/run/sandpit/monitor.sock)", NULL},
    {"sandbox", OPT_SANDBOX, "ID", "act on sandbox ID (direct socket access)", NULL},
    {"manager", OPT_MANAGER, "URL", "go through sandpitd at URL, http://HOST[:PORT] ...", NULL},
    {"session", OPT_SESSION, "ID", "... to the sandbox ID (token: $SANDPIT_API_TOKEN)", NULL},
    {"format", OPT_FORMAT, "FMT",
     "table, json or raw (default: table on a terminal,\njson otherwise)", NULL},
    {"help", 'h', NULL, "show this help (after a command: the command's)", NULL},
    {"version", 'V', NULL, "show the version", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

int cli_usage(struct sp_error **err, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  sp_error_vcode(err, "USAGE", 400, 0, fmt, ap);
  va_end(ap);
  return -1;
}

const char *cli_arg(const struct cli_args *a, int key)
{
  for (int i = a->nopts - 1; i >= 0; i--)
    if (a->opts[i].key == key)
      return a->opts[i].value;
  return NULL;
}

/* ---- help ---- */

/* "  left  text", the text's further lines lined up under its first. */
static void print_column(const char *left, int width, const char *text)
{
  printf("  %-*s ", width, left);
  for (const char *t = text; *t; t++) {
    putchar(*t);
    if (*t == '\n')
      printf("%*s", width + 3, "");
  }
  putchar('\n');
}

static void print_options(const struct cli_option *o)
{
  for (; o && o->name; o++) {
    char left[64];
    if (o->key < 256)
      snprintf(left, sizeof left, "-%c, --%s%s%s", o->key, o->name, o->arg ? " " : "",
               o->arg ? o->arg : "");
    else
      snprintf(left, sizeof left, "    --%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    print_column(left, 24, o->help);
  }
}

static const char *synopsis(const struct command *cmd)
{
  static char s[80];
  snprintf(s, sizeof s, "%s%s%s%s", cmd->name, cmd->options ? " [OPTIONS]" : "",
           *cmd->args ? " " : "", cmd->args);
  return s;
}

static bool of_noun(const struct command *cmd, const char *noun)
{
  size_t n = strlen(noun);
  return strncmp(cmd->name, noun, n) == 0 && cmd->name[n] == ' ';
}

/* The program's help; noun: only that noun's commands. */
static void print_help(const char *noun)
{
  printf("Usage: monitor-cli [OPTIONS] %s%sCOMMAND [ARGS]\n\nCommands:\n", noun ? noun : "",
         noun ? " " : "");
  for (size_t i = 0; i < SP_ARRAY_SIZE(commands); i++)
    if (noun == NULL || of_noun(&commands[i], noun))
      print_column(synopsis(&commands[i]), 34, commands[i].help);
  printf("\nOptions (anywhere on the line; for process start, before COMMAND):\n");
  print_options(global_options);
  printf("\n'monitor-cli COMMAND --help' shows a command's options.\n\n%s", exit_help);
}

static void print_command_help(const struct command *cmd)
{
  printf("Usage: monitor-cli %s\n\n%c%s.\n", synopsis(cmd), toupper((unsigned char)*cmd->help),
         cmd->help + 1);
  if (cmd->more)
    printf("%s\n", cmd->more);
  if (cmd->options) {
    printf("\nOptions:\n");
    print_options(cmd->options);
  }
  printf("\nGlobal options (anywhere on the line%s):\n",
         cmd->words_end_options ? ", before COMMAND" : "");
  print_options(global_options);
  printf("\n%s", exit_help);
}

/* ---- the command line ---- */

struct line {
  struct cli cli;
  const struct command *cmd;
  const char *noun; /* a noun without its verb yet */
  bool help, version;
  struct cli_args args;
};

static void line_release(struct line *l) { free(l->args.opts); }

/* The commands' names (a noun's only, when noun is not NULL). */
static const char *command_list(const char *noun)
{
  static char list[512];
  size_t n = 0;
  for (size_t i = 0; i < SP_ARRAY_SIZE(commands) && n < sizeof list; i++)
    if (noun == NULL || of_noun(&commands[i], noun))
      n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", commands[i].name);
  return list;
}

/* A global option: 0 when applied, 1 when key is not one, -1 on error. */
static int set_global(struct line *l, int key, const char *arg, struct sp_error **err)
{
  struct cli *c = &l->cli;
  switch (key) {
  case OPT_SOCKET: c->socket = arg; break;
  case OPT_SANDBOX: c->sandbox = arg; break;
  case OPT_MANAGER: c->manager = arg; break;
  case OPT_SESSION: c->session = arg; break;
  case OPT_FORMAT:
    if (strcmp(arg, "table") == 0)
      c->fmt = FMT_TABLE;
    else if (strcmp(arg, "json") == 0)
      c->fmt = FMT_JSON;
    else if (strcmp(arg, "raw") == 0)
      c->fmt = FMT_RAW;
    else
      return cli_usage(err, "--format must be table, json or raw, not '%s'", arg);
    break;
  case 'h': l->help = true; break;
  case 'V': l->version = true; break;
  default: return 1;
  }
  return 0;
}

/* getopt_long's tables for the global options and cmd's (cmd may be NULL). */
static void build_getopt(const struct command *cmd, struct option *longopts, size_t max,
                         char *shortopts)
{
  size_t n = 0;
  char *s = shortopts;
  if (cmd == NULL || cmd->words_end_options)
    *s++ = '+';
  *s++ = ':';
  const struct cli_option *tables[] = {global_options, cmd ? cmd->options : NULL};
  for (size_t t = 0; t < SP_ARRAY_SIZE(tables); t++) {
    for (const struct cli_option *o = tables[t]; o && o->name && n + 1 < max; o++) {
      longopts[n++] = (struct option){o->name, o->arg ? required_argument : no_argument, NULL,
                                      o->key};
      if (o->key < 256) {
        *s++ = (char)o->key;
        if (o->arg)
          *s++ = ':';
      }
    }
  }
  longopts[n] = (struct option){NULL, 0, NULL, 0};
  *s = '\0';
}

/* Parse the options of argv[from..] up to argc: the global ones, and cmd's
 * when cmd is given.  Without cmd, parsing stops at the first word.
 * Returns the index of the first word left. */
static int parse_options(struct line *l, const struct command *cmd, int argc, char **argv,
                         int from, struct sp_error **err)
{
  struct option longopts[32];
  char shortopts[64];
  build_getopt(cmd, longopts, SP_ARRAY_SIZE(longopts), shortopts);
  /* getopt_long starts after a program name: hand it argv from from - 1. */
  int sub_argc = argc - from + 1;
  char **sub_argv = argv + from - 1;
  opterr = 0;
  optind = 0;
  int key;
  const char *where = cmd ? cmd->name : NULL;
  while ((key = getopt_long(sub_argc, sub_argv, shortopts, longopts, NULL)) != -1) {
    if (key == '?') {
      const char *given = sub_argv[optind - 1];
      char letter[3] = {'-', (char)optopt, '\0'};
      bool is_long = strncmp(given, "--", 2) == 0;
      const char *eq = strchr(given, '=');
      if (is_long && optopt && eq)
        return cli_usage(err, "option '%.*s' takes no value", (int)(eq - given), given);
      const char *opt = is_long || optopt == 0 ? given : letter;
      return cli_usage(err, "unknown option '%s'%s%s%s", opt, where ? " for '" : "",
                       where ? where : "", where ? "'" : "");
    }
    if (key == ':')
      return cli_usage(err, "option '%s' needs a value", sub_argv[optind - 1]);
    int rc = set_global(l, key, optarg, err);
    if (rc < 0)
      return -1;
    if (rc == 0)
      continue;
    l->args.opts = xreallocarray(l->args.opts, (size_t)l->args.nopts + 1, sizeof *l->args.opts);
    l->args.opts[l->args.nopts++] = (struct cli_value){key, optarg ? optarg : ""};
  }
  return from - 1 + optind;
}

static const struct command *find_command(const char *name)
{
  for (size_t i = 0; i < SP_ARRAY_SIZE(commands); i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static bool is_noun(const char *word)
{
  for (size_t i = 0; i < SP_ARRAY_SIZE(commands); i++)
    if (of_noun(&commands[i], word))
      return true;
  return false;
}

static int parse_line(struct line *l, int argc, char **argv, struct sp_error **err)
{
  /* The command's one or two words, with global options around them. */
  int i = parse_options(l, NULL, argc, argv, 1, err);
  if (i < 0)
    return -1;
  if (i >= argc)
    return l->help || l->version
               ? 0
               : cli_usage(err, "no command given; the commands are: %s", command_list(NULL));
  const char *word = argv[i++];
  if (is_noun(word)) {
    if ((i = parse_options(l, NULL, argc, argv, i, err)) < 0)
      return -1;
    if (i >= argc) {
      l->noun = word;
      return l->help ? 0 : cli_usage(err, "'%s' needs a command: %s", word, command_list(word));
    }
    cleanup_free char *name = xasprintf("%s %s", word, argv[i++]);
    l->cmd = find_command(name);
    if (l->cmd == NULL)
      return cli_usage(err, "unknown command '%s'; the commands are: %s", name,
                       command_list(word));
  } else if ((l->cmd = find_command(word)) == NULL) {
    return cli_usage(err, "unknown command '%s'; the commands are: %s", word,
                     command_list(NULL));
  }
  /* The command's own options and words. */
  if ((i = parse_options(l, l->cmd, argc, argv, i, err)) < 0)
    return -1;
  l->args.argc = argc - i;
  l->args.argv = argv + i;
  if (l->help || l->version)
    return 0;
  const struct command *cmd = l->cmd;
  if (l->args.argc < cmd->min_args)
    return cli_usage(err, "'%s' needs %s", cmd->name, cmd->args);
  if (cmd->max_args >= 0 && l->args.argc > cmd->max_args)
    return cli_usage(err, "too many words for '%s': '%s'", synopsis(cmd),
                     l->args.argv[cmd->max_args]);
  if ((l->cli.manager == NULL) != (l->cli.session == NULL))
    return cli_usage(err, "--manager and --session go together");
  return 0;
}

static int exit_status(const struct sp_error *err)
{
  static const struct {
    const char *code;
    int status;
  } map[] = {
      {"USAGE", EXIT_USAGE},
      {"BACKEND_UNAVAILABLE", EXIT_UNREACHABLE},
      {"UPSTREAM_ERROR", EXIT_UNREACHABLE},
      {"UPSTREAM_TIMEOUT", EXIT_UNREACHABLE},
  };
  for (size_t i = 0; i < SP_ARRAY_SIZE(map); i++)
    if (strcmp(err->code, map[i].code) == 0)
      return map[i].status;
  return EXIT_FAILED;
}

/* A command without run(): its request, with its options as the query. */
static void one_request(const struct line *l, struct sp_error **err)
{
  cleanup_sbuf struct sbuf path = SBUF_INIT;
  sbuf_addstr(&path, l->cmd->path);
  cli_query_options(&path, l->cmd->options, &l->args);
  cli_show(&l->cli, l->cmd->method, sbuf_str(&path), NULL, l->cmd->table, err);
}

int main(int argc, char **argv)
{
  __attribute__((cleanup(line_release))) struct line l = {0};
  l.cli.socket = getenv("SANDPIT_MONITOR_SOCKET");
  if (l.cli.socket == NULL || *l.cli.socket == '\0')
    l.cli.socket = "/run/sandpit/monitor.sock";
  l.cli.token = getenv("SANDPIT_API_TOKEN");
  l.cli.fmt = isatty(STDOUT_FILENO) ? FMT_TABLE : FMT_JSON;
  struct sp_error *err = NULL;
  if (parse_line(&l, argc, argv, &err) == 0) {
    if (l.help && l.cmd)
      print_command_help(l.cmd);
    else if (l.help)
      print_help(l.noun);
    else if (l.version)
      printf("monitor-cli %s\n", SANDPIT_VERSION);
    else if (l.cmd->run)
      l.cmd->run(&l.cli, &l.args, &err);
    else
      one_request(&l, &err);
  }
  if (err == NULL)
    return EXIT_OK;
  int status = exit_status(err);
  sp_error_print("monitor-cli", &err);
  return status;
}
