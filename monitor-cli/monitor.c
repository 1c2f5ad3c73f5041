/* status: the monitor itself (the command is a row of main.c's table) */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "cli.h"
#include "util.h"

void monitor_print_status(const cJSON *reply)
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
