/* status and ping: the monitor itself */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "cli.h"
#include "util.h"

static void print_status(const cJSON *reply)
{
  const cJSON *p = cJSON_GetObjectItem(reply, "processes");
  const cJSON *d = cJSON_GetObjectItem(reply, "database");
  cleanup_free char *up = cli_num(reply, "uptimeMs", "0");
  cleanup_free char *total = cli_num(p, "total", "0");
  cleanup_free char *running = cli_num(p, "running", "0");
  cleanup_free char *ready = cli_num(p, "ready", "0");
  cleanup_free char *lines = cli_num(d, "lines", "0");
  cleanup_free char *errors = cli_num(d, "errors", "0");
  cleanup_free char *bytes = cli_num(d, "bytes", "0");
  printf("version:    %s\nuptime:     %s ms\nprocesses:  %s (%s running, %s ready)\n"
         "log lines:  %s\nerrors:     %s\ndatabase:   %s (%s bytes)\n",
         cli_str(reply, "version", "?"), up, total, running, ready, lines, errors,
         cli_str(d, "path", "?"), bytes);
}

int monitor_status(const struct cli *c, const struct cli_args *a, struct sp_error **err)
{
  (void)a;
  return cli_show(c, "GET", "/api/status", NULL, print_status, err);
}

int monitor_ping(const struct cli *c, const struct cli_args *a, struct sp_error **err)
{
  (void)a;
  return cli_show(c, "GET", "/api/ping", NULL, cli_print_message, err);
}
