/* logs get|clear */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "cli.h"
#include "json.h"
#include "str.h"
#include "util.h"

const struct cli_option logs_get_options[] = {
    {"process", 'p', "ID", "only the lines of process ID", "process"},
    {"tail", 't', "N", "the last N lines (1-100000)", "tail"},
    {"since", 's', "SEQ", "the lines after sequence number SEQ", "since"},
    {"follow", 'f', NULL, "then print new lines as they come, until interrupted", "follow"},
    {NULL, 0, NULL, NULL, NULL},
};

const struct cli_option logs_clear_options[] = {
    {"process", 'p', "ID", "only the lines of process ID", "process"},
    {NULL, 0, NULL, NULL, NULL},
};

static void print_line(const struct cli *c, const cJSON *j)
{
  if (c->fmt == FMT_JSON) {
    cli_print_json(j);
  } else if (c->fmt == FMT_RAW) {
    printf("%s\n", cli_str(j, "text", cli_str(j, "data", "")));
  } else {
    printf("%s %-12s %-6s %s\n", cli_str(j, "time", cli_str(j, "timestamp", "")),
           cli_str(j, "process", cli_str(j, "processId", "")),
           cli_str(j, "stream", cli_str(j, "type", "")),
           cli_str(j, "text", cli_str(j, "data", "")));
  }
  fflush(stdout);
}

int logs_get(const struct cli *c, const struct cli_args *a, struct sp_error **err)
{
  cleanup_sbuf struct sbuf path = SBUF_INIT;
  sbuf_addstr(&path, "/api/logs");
  const char *v = cli_arg(a, 't');
  long long n;
  if (v && !str_to_ll(v, 1, 100000, &n))
    return cli_usage(err, "--tail must be 1-100000");
  cli_query_options(&path, logs_get_options, a);
  if (cli_arg(a, 'f'))
    return cli_stream(c, sbuf_str(&path), print_line, err);
  cleanup_json cJSON *j = cli_request(c, "GET", sbuf_str(&path), NULL, err);
  if (j == NULL)
    return -1;
  /* raw prints the lines' text, not the reply */
  if (c->fmt == FMT_JSON) {
    cli_print_json(j);
    return 0;
  }
  const cJSON *l;
  cJSON_ArrayForEach(l, cJSON_GetObjectItem(j, "lines")) print_line(c, l);
  return 0;
}
