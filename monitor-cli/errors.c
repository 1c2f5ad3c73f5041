/* errors list|stats|clear */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "cli.h"
#include "str.h"
#include "util.h"

const struct cli_option errors_list_options[] = {
    {"since", 's', "TIME", "only errors seen since TIME (epoch milliseconds or ISO 8601)", "since"},
    {"reset", 'r', NULL, "clear the errors once they are read", "reset"},
    {NULL, 0, NULL, NULL, NULL},
};

void errors_print_list(const cJSON *reply)
{
  const cJSON *errs = cJSON_GetObjectItem(reply, "errors");
  printf("%-6s %-11s %-18s %-8s %-30s %s\n", "COUNT", "TOOL", "CATEGORY", "SEVERITY", "LOCATION",
         "MESSAGE");
  const cJSON *e;
  cJSON_ArrayForEach(e, errs)
  {
    cleanup_free char *count = cli_num(e, "occurrences", "1");
    cleanup_free char *line = cli_num(e, "line", "");
    cleanup_free char *col = cli_num(e, "column", "");
    cleanup_free char *loc = xasprintf("%s%s%s%s%s", cli_str(e, "file", "-"), *line ? ":" : "",
                                       line, *col ? ":" : "", col);
    printf("%-6s %-11s %-18s %-8s %-30s %s\n", count, cli_str(e, "tool", "-"),
           cli_str(e, "category", "-"), cli_str(e, "severity", "-"), loc,
           cli_str(e, "message", ""));
  }
  if (cJSON_GetArraySize(errs) == 0)
    printf("(no errors)\n");
}

void errors_print_stats(const cJSON *reply)
{
  const cJSON *s = cJSON_GetObjectItem(reply, "stats");
  cleanup_free char *total = cli_num(s, "total", "0");
  cleanup_free char *unique = cli_num(s, "unique", "0");
  printf("total occurrences: %s\nunique errors:     %s\n", total, unique);
  static const char *const maps[] = {"byCategory", "bySeverity", "byTool"};
  for (size_t i = 0; i < SP_ARRAY_SIZE(maps); i++) {
    const cJSON *kv;
    printf("%s:\n", maps[i]);
    cJSON_ArrayForEach(kv, cJSON_GetObjectItem(s, maps[i]))
        printf("  %-20s %lld\n", kv->string, (long long)kv->valuedouble);
  }
}

