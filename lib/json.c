#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

cJSON *json_parse_object(const char *buf, size_t len, struct sp_error **err)
{
  if (buf == NULL || len == 0) {
    sp_error_code(err, "INVALID_JSON", 400, "request body is empty");
    return NULL;
  }
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, false);
  if (j == NULL) {
    size_t at = end && end >= buf ? (size_t)(end - buf) : 0;
    sp_error_code(err, "INVALID_JSON", 400,
                  "request body is not valid JSON (at byte %zu)", at);
    return NULL;
  }
  /* Only whitespace (or NUL padding) may follow the value. */
  for (const char *p = end; p && p < buf + len; p++) {
    if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t' && *p != '\0') {
      cJSON_Delete(j);
      sp_error_code(err, "INVALID_JSON", 400,
                    "trailing data after JSON value (at byte %zu)",
                    (size_t)(p - buf));
      return NULL;
    }
  }
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    sp_error_code(err, "INVALID_JSON", 400, "request body must be a JSON object");
    return NULL;
  }
  return j;
}

/* obj's key: 1 with *v when it holds a value that is(), 0 when it is absent
 * or null (the default applies), -1 with *err for a value of another kind. */
static int field(const cJSON *obj, const char *key, cJSON_bool (*is)(const cJSON *),
                 const char *kind, const cJSON **v, struct sp_error **err)
{
  *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (*v == NULL || cJSON_IsNull(*v))
    return 0;
  if (!is(*v))
    return sp_error_code(err, "INVALID_REQUEST", 400, "'%s' must be %s", key, kind);
  return 1;
}

int json_get_string(const cJSON *obj, const char *key, const char *def,
                    const char **out, struct sp_error **err)
{
  const cJSON *v;
  int rc = field(obj, key, cJSON_IsString, "a string", &v, err);
  *out = rc > 0 ? v->valuestring : def;
  return rc < 0 ? -1 : 0;
}

/* a number without a fraction */
static cJSON_bool is_integer(const cJSON *v)
{
  return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble == floor(v->valuedouble);
}

int json_get_int(const cJSON *obj, const char *key, int64_t def, int64_t min,
                 int64_t max, int64_t *out, struct sp_error **err)
{
  const cJSON *v;
  int rc = field(obj, key, is_integer, "an integer", &v, err);
  *out = def;
  if (rc <= 0)
    return rc;
  /* Compared as integers: (double)max may round up (INT64_MAX to 2^63,
   * which no int64_t holds). */
  double d = v->valuedouble;
  if (d < -0x1p63 || d >= 0x1p63 || (int64_t)d < min || (int64_t)d > max)
    return sp_error_code(err, "INVALID_REQUEST", 400,
                         "'%s' must be between %lld and %lld", key,
                         (long long)min, (long long)max);
  *out = (int64_t)d;
  return 0;
}

int json_get_bool(const cJSON *obj, const char *key, bool def, bool *out,
                  struct sp_error **err)
{
  const cJSON *v;
  int rc = field(obj, key, cJSON_IsBool, "a boolean", &v, err);
  *out = rc > 0 ? cJSON_IsTrue(v) : def;
  return rc < 0 ? -1 : 0;
}

char *json_print(const cJSON *j)
{
  char *s = cJSON_PrintUnformatted(j);
  if (s == NULL)
    return xstrdup("null");
  return s;
}

cJSON *json_add_int(cJSON *obj, const char *key, int64_t v)
{
  return cJSON_AddNumberToObject(obj, key, (double)v);
}

cJSON *json_add_string_or_null(cJSON *obj, const char *key, const char *s)
{
  if (s == NULL)
    return cJSON_AddNullToObject(obj, key);
  return cJSON_AddStringToObject(obj, key, s);
}

cJSON *json_error_body(const struct sp_error *e)
{
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "code", e && e->code ? e->code : "INTERNAL_ERROR");
  cJSON_AddStringToObject(j, "message", e && e->msg ? e->msg : "internal error");
  /* The SDK's error classes read context.<field>: it must always be there. */
  if (e && e->context)
    cJSON_AddItemToObject(j, "context", cJSON_Duplicate(e->context, true));
  else
    cJSON_AddObjectToObject(j, "context");
  cJSON_AddNumberToObject(j, "httpStatus", e ? e->http_status : 500);
  json_add_timestamp(j);
  return j;
}

cJSON *json_success_new(void)
{
  cJSON *j = cJSON_CreateObject();
  cJSON_AddBoolToObject(j, "success", true);
  return j;
}

void json_add_timestamp(cJSON *obj)
{
  char ts[40];
  cJSON_AddStringToObject(obj, "timestamp", sp_iso8601(sp_now_ms(), ts, sizeof ts));
}
