/* monitor-cli: inspect and drive a sandpit-monitor from a terminal.
 *
 * It speaks HTTP to the monitor's unix socket, or to a sandbox through
 * sandpitd with --manager URL --session ID. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "str.h"
#include "util.h"
#include "version.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };
enum format { FMT_TABLE, FMT_JSON, FMT_RAW };

static const char usage[] =
    "Usage: monitor-cli [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  process start [--id ID] [--port N] [--auto-restart] [--max-restarts N]\n"
    "                [--cwd DIR] [--env K=V]... COMMAND...\n"
    "  process stop ID [--signal SIG]     send SIG (default TERM) to its group\n"
    "  process restart ID\n"
    "  process status ID\n"
    "  process list\n"
    "  errors list [--since TIME] [--reset]\n"
    "  errors stats\n"
    "  errors clear\n"
    "  logs get [--process ID] [--tail N] [--since SEQ] [--follow]\n"
    "  logs clear [--process ID]\n"
    "  status                             the monitor's own status\n"
    "  ping\n"
    "\n"
    "Options:\n"
    "  --socket PATH          monitor socket (default $SANDPIT_MONITOR_SOCKET or\n"
    "                         /run/sandpit/monitor.sock)\n"
    "  --sandbox ID           act on sandbox ID (direct socket access)\n"
    "  --manager URL          go through sandpitd at URL ...\n"
    "  --session ID           ... to the sandbox ID (token: $SANDPIT_API_TOKEN)\n"
    "  --format table|json|raw  output format (default: table on a terminal,\n"
    "                         json otherwise)\n"
    "  -h, --help             show this help\n"
    "  -V, --version          show the version\n"
    "\n"
    "Exit status: 0 success, 1 the request failed, 2 usage error,\n"
    "3 the monitor could not be reached.\n";

struct cli {
  const char *socket;
  const char *sandbox;
  const char *manager;
  const char *session;
  const char *token;
  enum format fmt;
};

struct reply {
  long status;
  struct sbuf body;
};

/* SSE: lines are handed on as they arrive. */
struct follow {
  struct cli *cli;
  struct sbuf pending;
};

static char *url_for(struct cli *c, const char *path)
{
  if (c->manager) {
    const char *base = c->manager;
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
      n--;
    return xasprintf("%.*s/v1/sandboxes/%s%s", (int)n, base, c->session, path);
  }
  return xasprintf("http://monitor%s", path);
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
  struct reply *r = ud;
  sbuf_add(&r->body, p, size * n);
  return size * n;
}

static void print_line_event(struct cli *c, const cJSON *j);

static size_t follow_write(char *p, size_t size, size_t n, void *ud)
{
  struct follow *f = ud;
  sbuf_add(&f->pending, p, size * n);
  char *start = f->pending.buf;
  char *end;
  while ((end = strstr(start, "\n\n")) != NULL) {
    *end = '\0';
    for (char *line = start; line && *line;) {
      char *nl = strchr(line, '\n');
      if (nl)
        *nl = '\0';
      if (strncmp(line, "data: ", 6) == 0) {
        cJSON *j = cJSON_Parse(line + 6);
        if (j) {
          print_line_event(f->cli, j);
          cJSON_Delete(j);
        }
      }
      line = nl ? nl + 1 : NULL;
    }
    start = end + 2;
  }
  size_t rest = f->pending.len - (size_t)(start - f->pending.buf);
  memmove(f->pending.buf, start, rest);
  f->pending.len = rest;
  f->pending.buf[rest] = '\0';
  return size * n;
}

static int request(struct cli *c, const char *method, const char *path, const char *body,
                   struct reply *out, struct follow *follow)
{
  CURL *curl = curl_easy_init();
  if (curl == NULL) {
    fprintf(stderr, "monitor-cli: cannot initialise libcurl\n");
    return EXIT_FAIL;
  }
  cleanup_free char *url = url_for(c, path);
  struct curl_slist *h = NULL;
  if (c->sandbox && !c->manager) {
    cleanup_free char *hd = xasprintf("X-Sandpit-Sandbox: %s", c->sandbox);
    h = curl_slist_append(h, hd);
  }
  if (c->manager && c->token) {
    cleanup_free char *hd = xasprintf("Authorization: Bearer %s", c->token);
    h = curl_slist_append(h, hd);
  }
  if (body) {
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
  }
  curl_easy_setopt(curl, CURLOPT_URL, url);
  if (!c->manager)
    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, c->socket);
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  if (follow) {
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, follow_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, follow);
  } else {
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 60000L);
  }
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    if (c->manager)
      fprintf(stderr, "monitor-cli: cannot reach %s: %s\n", c->manager, curl_easy_strerror(rc));
    else
      fprintf(stderr, "monitor-cli: cannot reach the monitor at %s: %s\n", c->socket,
              curl_easy_strerror(rc));
    return EXIT_CONNECT;
  }
  if (out)
    out->status = status;
  return EXIT_OK;
}

/* Print an error reply and return the exit code. */
static int fail_reply(struct reply *r)
{
  cleanup_json cJSON *j = cJSON_Parse(sbuf_str(&r->body));
  const cJSON *msg = j ? cJSON_GetObjectItem(j, "message") : NULL;
  const cJSON *code = j ? cJSON_GetObjectItem(j, "code") : NULL;
  if (cJSON_IsString(msg))
    fprintf(stderr, "monitor-cli: %s (%s, HTTP %ld)\n", msg->valuestring,
            cJSON_IsString(code) ? code->valuestring : "error", r->status);
  else
    fprintf(stderr, "monitor-cli: HTTP %ld: %s\n", r->status, sbuf_str(&r->body));
  return EXIT_FAIL;
}

static const char *str_or(const cJSON *o, const char *key, const char *def)
{
  const cJSON *v = cJSON_GetObjectItem(o, key);
  return cJSON_IsString(v) ? v->valuestring : def;
}

static char *num_or(const cJSON *o, const char *key, const char *def)
{
  const cJSON *v = cJSON_GetObjectItem(o, key);
  if (cJSON_IsNumber(v))
    return xasprintf("%lld", (long long)v->valuedouble);
  if (cJSON_IsBool(v))
    return xstrdup(cJSON_IsTrue(v) ? "yes" : "no");
  return xstrdup(def);
}

static void print_process_row(const cJSON *p)
{
  cleanup_free char *pid = num_or(p, "pid", "-");
  cleanup_free char *code = num_or(p, "exitCode", "-");
  cleanup_free char *restarts = num_or(p, "restarts", "0");
  cleanup_free char *ready = num_or(p, "ready", "no");
  printf("%-16s %-8s %-10s %-5s %-8s %-5s %s\n", str_or(p, "id", "?"), pid,
         str_or(p, "status", "?"), ready, restarts, code, str_or(p, "command", ""));
}

static void print_process_header(void)
{
  printf("%-16s %-8s %-10s %-5s %-8s %-5s %s\n", "ID", "PID", "STATUS", "READY", "RESTARTS",
         "EXIT", "COMMAND");
}

static void print_json(const cJSON *j)
{
  char *s = cJSON_PrintUnformatted(j);
  printf("%s\n", s);
  free(s);
}

static void print_line_event(struct cli *c, const cJSON *j)
{
  if (c->fmt == FMT_JSON) {
    print_json(j);
  } else if (c->fmt == FMT_RAW) {
    printf("%s\n", str_or(j, "text", str_or(j, "data", "")));
  } else {
    const char *t = str_or(j, "time", str_or(j, "timestamp", ""));
    printf("%s %-12s %-6s %s\n", t, str_or(j, "process", str_or(j, "processId", "")),
           str_or(j, "stream", str_or(j, "type", "")), str_or(j, "text", str_or(j, "data", "")));
  }
  fflush(stdout);
}

/* Render a successful reply for `what`. */
static int render(struct cli *c, const char *what, struct reply *r)
{
  if (r->status >= 400)
    return fail_reply(r);
  cleanup_json cJSON *j = cJSON_Parse(sbuf_str(&r->body));
  if (j == NULL) {
    fprintf(stderr, "monitor-cli: the reply is not JSON\n");
    return EXIT_FAIL;
  }
  if (c->fmt == FMT_JSON || (c->fmt == FMT_RAW && strcmp(what, "logs") != 0)) {
    print_json(j);
    return EXIT_OK;
  }
  if (strcmp(what, "process-list") == 0) {
    print_process_header();
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(j, "processes")) print_process_row(p);
  } else if (strcmp(what, "process") == 0) {
    const cJSON *p = cJSON_GetObjectItem(j, "process");
    print_process_header();
    print_process_row(p ? p : j);
  } else if (strcmp(what, "errors") == 0) {
    const cJSON *errs = cJSON_GetObjectItem(j, "errors");
    printf("%-6s %-11s %-18s %-8s %-30s %s\n", "COUNT", "TOOL", "CATEGORY", "SEVERITY",
           "LOCATION", "MESSAGE");
    const cJSON *e;
    cJSON_ArrayForEach(e, errs)
    {
      cleanup_free char *count = num_or(e, "occurrences", "1");
      cleanup_free char *line = num_or(e, "line", "");
      cleanup_free char *col = num_or(e, "column", "");
      cleanup_free char *loc = xasprintf("%s%s%s%s%s", str_or(e, "file", "-"),
                                         *line ? ":" : "", line, *col ? ":" : "", col);
      printf("%-6s %-11s %-18s %-8s %-30s %s\n", count, str_or(e, "tool", "-"),
             str_or(e, "category", "-"), str_or(e, "severity", "-"), loc,
             str_or(e, "message", ""));
    }
    if (cJSON_GetArraySize(errs) == 0)
      printf("(no errors)\n");
  } else if (strcmp(what, "stats") == 0) {
    const cJSON *s = cJSON_GetObjectItem(j, "stats");
    cleanup_free char *total = num_or(s, "total", "0");
    cleanup_free char *unique = num_or(s, "unique", "0");
    printf("total occurrences: %s\nunique errors:     %s\n", total, unique);
    static const char *const maps[] = {"byCategory", "bySeverity", "byTool"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(maps); i++) {
      const cJSON *m = cJSON_GetObjectItem(s, maps[i]);
      const cJSON *kv;
      printf("%s:\n", maps[i]);
      cJSON_ArrayForEach(kv, m) printf("  %-20s %lld\n", kv->string, (long long)kv->valuedouble);
    }
  } else if (strcmp(what, "logs") == 0) {
    const cJSON *l;
    cJSON_ArrayForEach(l, cJSON_GetObjectItem(j, "lines")) print_line_event(c, l);
  } else if (strcmp(what, "status") == 0) {
    const cJSON *p = cJSON_GetObjectItem(j, "processes");
    const cJSON *d = cJSON_GetObjectItem(j, "database");
    cleanup_free char *up = num_or(j, "uptimeMs", "0");
    cleanup_free char *total = num_or(p, "total", "0");
    cleanup_free char *running = num_or(p, "running", "0");
    cleanup_free char *ready = num_or(p, "ready", "0");
    cleanup_free char *lines = num_or(d, "lines", "0");
    cleanup_free char *errors = num_or(d, "errors", "0");
    cleanup_free char *bytes = num_or(d, "bytes", "0");
    printf("version:    %s\nuptime:     %s ms\nprocesses:  %s (%s running, %s ready)\n"
           "log lines:  %s\nerrors:     %s\ndatabase:   %s (%s bytes)\n",
           str_or(j, "version", "?"), up, total, running, ready, lines, errors,
           str_or(d, "path", "?"), bytes);
  } else {
    printf("%s\n", str_or(j, "message", "ok"));
  }
  return EXIT_OK;
}

static int simple(struct cli *c, const char *method, const char *path, const char *body,
                  const char *what)
{
  struct reply r = {0, SBUF_INIT};
  int rc = request(c, method, path, body, &r, NULL);
  if (rc == EXIT_OK)
    rc = render(c, what, &r);
  sbuf_release(&r.body);
  return rc;
}

static char *escape_path(const char *s)
{
  CURL *curl = curl_easy_init();
  char *e = curl_easy_escape(curl, s, 0);
  char *r = xstrdup(e);
  curl_free(e);
  curl_easy_cleanup(curl);
  return r;
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

static int cmd_process(struct cli *c, int argc, char **argv)
{
  if (argc < 1) {
    fputs(usage, stderr);
    return EXIT_USAGE;
  }
  const char *verb = argv[0];
  if (strcmp(verb, "list") == 0)
    return simple(c, "GET", "/api/process/list", NULL, "process-list");
  if (strcmp(verb, "start") == 0) {
    static const struct option o[] = {
        {"id", required_argument, NULL, 'i'},     {"port", required_argument, NULL, 'p'},
        {"auto-restart", no_argument, NULL, 'a'}, {"max-restarts", required_argument, NULL, 'm'},
        {"cwd", required_argument, NULL, 'c'},    {"env", required_argument, NULL, 'e'},
        {NULL, 0, NULL, 0}};
    cleanup_json cJSON *body = cJSON_CreateObject();
    cJSON *env = NULL;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "+i:p:am:c:e:", o, NULL)) != -1) {
      long long n;
      switch (opt) {
      case 'i': cJSON_AddStringToObject(body, "processId", optarg); break;
      case 'p':
        if (!str_to_ll(optarg, 1, 65535, &n)) {
          fprintf(stderr, "monitor-cli: --port must be 1-65535\n");
          return EXIT_USAGE;
        }
        cJSON_AddNumberToObject(body, "port", (double)n);
        break;
      case 'a': cJSON_AddBoolToObject(body, "autoRestart", true); break;
      case 'm':
        if (!str_to_ll(optarg, 0, 1000, &n)) {
          fprintf(stderr, "monitor-cli: --max-restarts must be 0-1000\n");
          return EXIT_USAGE;
        }
        cJSON_AddNumberToObject(body, "maxRestarts", (double)n);
        break;
      case 'c': cJSON_AddStringToObject(body, "cwd", optarg); break;
      case 'e': {
        const char *eq = strchr(optarg, '=');
        if (eq == NULL || eq == optarg) {
          fprintf(stderr, "monitor-cli: --env takes NAME=VALUE\n");
          return EXIT_USAGE;
        }
        if (env == NULL)
          env = cJSON_AddObjectToObject(body, "env");
        cleanup_free char *k = xstrndup(optarg, (size_t)(eq - optarg));
        cJSON_AddStringToObject(env, k, eq + 1);
        break;
      }
      default: return EXIT_USAGE;
      }
    }
    if (optind >= argc) {
      fprintf(stderr, "monitor-cli: process start needs a COMMAND\n");
      return EXIT_USAGE;
    }
    /* One argument is a shell command line as it is; several are words,
     * quoted so the shell sees them unchanged. */
    struct sbuf cmd = SBUF_INIT;
    if (argc - optind == 1)
      sbuf_addstr(&cmd, argv[optind]);
    for (int i = optind; argc - optind > 1 && i < argc; i++) {
      if (i > optind)
        sbuf_addch(&cmd, ' ');
      sh_quote(&cmd, argv[i]);
    }
    cJSON_AddStringToObject(body, "command", sbuf_str(&cmd));
    sbuf_release(&cmd);
    cleanup_free char *s = json_print(body);
    return simple(c, "POST", "/api/process/start", s, "process");
  }
  if (argc < 2) {
    fprintf(stderr, "monitor-cli: process %s needs an ID\n", verb);
    return EXIT_USAGE;
  }
  cleanup_free char *id = escape_path(argv[1]);
  if (strcmp(verb, "status") == 0) {
    cleanup_free char *path = xasprintf("/api/process/%s", id);
    return simple(c, "GET", path, NULL, "process");
  }
  if (strcmp(verb, "restart") == 0) {
    cleanup_free char *path = xasprintf("/api/process/%s/restart", id);
    return simple(c, "POST", path, NULL, "process");
  }
  if (strcmp(verb, "stop") == 0) {
    const char *sig = "TERM";
    if (argc >= 4 && strcmp(argv[2], "--signal") == 0)
      sig = argv[3];
    else if (argc == 3 && strncmp(argv[2], "--signal=", 9) == 0)
      sig = argv[2] + 9;
    else if (argc != 2) {
      fprintf(stderr, "monitor-cli: usage: process stop ID [--signal SIG]\n");
      return EXIT_USAGE;
    }
    cleanup_free char *esig = escape_path(sig);
    cleanup_free char *path = xasprintf("/api/process/%s?signal=%s", id, esig);
    return simple(c, "DELETE", path, NULL, "process");
  }
  fprintf(stderr, "monitor-cli: unknown process command '%s'\n", verb);
  return EXIT_USAGE;
}

static int cmd_errors(struct cli *c, int argc, char **argv)
{
  if (argc < 1) {
    fputs(usage, stderr);
    return EXIT_USAGE;
  }
  const char *verb = argv[0];
  if (strcmp(verb, "stats") == 0)
    return simple(c, "GET", "/api/errors/stats", NULL, "stats");
  if (strcmp(verb, "clear") == 0)
    return simple(c, "DELETE", "/api/errors", NULL, "ok");
  if (strcmp(verb, "list") == 0) {
    static const struct option o[] = {{"since", required_argument, NULL, 's'},
                                      {"reset", no_argument, NULL, 'r'},
                                      {NULL, 0, NULL, 0}};
    struct sbuf q = SBUF_INIT;
    sbuf_addstr(&q, "/api/errors?x=1");
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "s:r", o, NULL)) != -1) {
      if (opt == 's') {
        cleanup_free char *e = escape_path(optarg);
        sbuf_addf(&q, "&since=%s", e);
      } else if (opt == 'r') {
        sbuf_addstr(&q, "&reset=1");
      } else {
        sbuf_release(&q);
        return EXIT_USAGE;
      }
    }
    int rc = simple(c, "GET", sbuf_str(&q), NULL, "errors");
    sbuf_release(&q);
    return rc;
  }
  fprintf(stderr, "monitor-cli: unknown errors command '%s'\n", verb);
  return EXIT_USAGE;
}

static int cmd_logs(struct cli *c, int argc, char **argv)
{
  if (argc < 1) {
    fputs(usage, stderr);
    return EXIT_USAGE;
  }
  const char *verb = argv[0];
  static const struct option o[] = {{"process", required_argument, NULL, 'p'},
                                    {"tail", required_argument, NULL, 't'},
                                    {"since", required_argument, NULL, 's'},
                                    {"follow", no_argument, NULL, 'f'},
                                    {NULL, 0, NULL, 0}};
  const char *process = NULL, *tail = NULL, *since = NULL;
  bool follow = false;
  int opt;
  optind = 0;
  while ((opt = getopt_long(argc, argv, "p:t:s:f", o, NULL)) != -1) {
    long long n;
    switch (opt) {
    case 'p': process = optarg; break;
    case 't':
      if (!str_to_ll(optarg, 1, 100000, &n)) {
        fprintf(stderr, "monitor-cli: --tail must be 1-100000\n");
        return EXIT_USAGE;
      }
      tail = optarg;
      break;
    case 's': since = optarg; break;
    case 'f': follow = true; break;
    default: return EXIT_USAGE;
    }
  }
  struct sbuf q = SBUF_INIT;
  sbuf_addstr(&q, "/api/logs?x=1");
  if (process) {
    cleanup_free char *e = escape_path(process);
    sbuf_addf(&q, "&process=%s", e);
  }
  int rc;
  if (strcmp(verb, "clear") == 0) {
    rc = simple(c, "DELETE", sbuf_str(&q), NULL, "ok");
  } else if (strcmp(verb, "get") == 0) {
    if (tail)
      sbuf_addf(&q, "&tail=%s", tail);
    if (since) {
      cleanup_free char *e = escape_path(since);
      sbuf_addf(&q, "&since=%s", e);
    }
    if (follow) {
      sbuf_addstr(&q, "&follow=1");
      struct follow f = {c, SBUF_INIT};
      rc = request(c, "GET", sbuf_str(&q), NULL, NULL, &f);
      sbuf_release(&f.pending);
    } else {
      rc = simple(c, "GET", sbuf_str(&q), NULL, "logs");
    }
  } else {
    fprintf(stderr, "monitor-cli: unknown logs command '%s'\n", verb);
    rc = EXIT_USAGE;
  }
  sbuf_release(&q);
  return rc;
}

int main(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"socket", required_argument, NULL, 's'},  {"sandbox", required_argument, NULL, 'b'},
      {"manager", required_argument, NULL, 'm'}, {"session", required_argument, NULL, 'S'},
      {"format", required_argument, NULL, 'f'},  {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},       {NULL, 0, NULL, 0},
  };
  struct cli c = {0};
  c.socket = getenv("SANDPIT_MONITOR_SOCKET");
  if (c.socket == NULL || *c.socket == '\0')
    c.socket = "/run/sandpit/monitor.sock";
  c.token = getenv("SANDPIT_API_TOKEN");
  c.fmt = isatty(STDOUT_FILENO) ? FMT_TABLE : FMT_JSON;
  int opt;
  /* "+": options stop at the command; each command parses its own. */
  while ((opt = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
    switch (opt) {
    case 's': c.socket = optarg; break;
    case 'b': c.sandbox = optarg; break;
    case 'm': c.manager = optarg; break;
    case 'S': c.session = optarg; break;
    case 'f':
      if (strcmp(optarg, "table") == 0)
        c.fmt = FMT_TABLE;
      else if (strcmp(optarg, "json") == 0)
        c.fmt = FMT_JSON;
      else if (strcmp(optarg, "raw") == 0)
        c.fmt = FMT_RAW;
      else {
        fprintf(stderr, "monitor-cli: --format must be table, json or raw\n");
        return EXIT_USAGE;
      }
      break;
    case 'h': fputs(usage, stdout); return EXIT_OK;
    case 'V': printf("monitor-cli %s\n", SANDPIT_VERSION); return EXIT_OK;
    default: fputs(usage, stderr); return EXIT_USAGE;
    }
  }
  if (optind >= argc) {
    fputs(usage, stderr);
    return EXIT_USAGE;
  }
  if ((c.manager == NULL) != (c.session == NULL)) {
    fprintf(stderr, "monitor-cli: --manager and --session go together\n");
    return EXIT_USAGE;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const char *cmd = argv[optind];
  int sub_argc = argc - optind - 1;
  char **sub_argv = argv + optind + 1;
  int rc;
  if (strcmp(cmd, "process") == 0)
    rc = cmd_process(&c, sub_argc, sub_argv);
  else if (strcmp(cmd, "errors") == 0)
    rc = cmd_errors(&c, sub_argc, sub_argv);
  else if (strcmp(cmd, "logs") == 0)
    rc = cmd_logs(&c, sub_argc, sub_argv);
  else if (strcmp(cmd, "status") == 0)
    rc = simple(&c, "GET", "/api/status", NULL, "status");
  else if (strcmp(cmd, "ping") == 0)
    rc = simple(&c, "GET", "/api/ping", NULL, "ping");
  else {
    fprintf(stderr, "monitor-cli: unknown command '%s'\n%s", cmd, usage);
    rc = EXIT_USAGE;
  }
  curl_global_cleanup();
  return rc;
}
