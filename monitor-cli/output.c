#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "json.h"
#include "util.h"

const char *cli_str(const cJSON *o, const char *key, const char *def)
{
  const cJSON *v = cJSON_GetObjectItem(o, key);
  return cJSON_IsString(v) ? v->valuestring : def;
}

char *cli_num(const cJSON *o, const char *key, const char *def)
{
  const cJSON *v = cJSON_GetObjectItem(o, key);
  if (cJSON_IsNumber(v))
    return xasprintf("%lld", (long long)v->valuedouble);
  if (cJSON_IsBool(v))
    return xstrdup(cJSON_IsTrue(v) ? "yes" : "no");
  return xstrdup(def);
}

void cli_print_json(const cJSON *j)
{
  char *s = cJSON_PrintUnformatted(j);
  printf("%s\n", s);
  free(s);
}

int cli_show(const struct cli *c, const char *method, const char *path, const char *body,
             void (*table)(const cJSON *reply), struct sp_error **err)
{
  cleanup_json cJSON *j = cli_request(c, method, path, body, err);
  if (j == NULL)
    return -1;
  if (c->fmt == FMT_TABLE)
    table(j);
  else
    cli_print_json(j);
  return 0;
}

void cli_print_message(const cJSON *reply) { printf("%s\n", cli_str(reply, "message", "ok")); }
