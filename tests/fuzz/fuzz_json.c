/* Request bodies: json_parse_object, then the typed getters the handlers
 * call (their keys and ranges), and the same getters over every member
 * with the widest range.  Properties: a parse error is INVALID_JSON/400; a
 * getter either yields its default, a value of its type within its range,
 * or INVALID_REQUEST/400; the error body always serialises; what parsed
 * prints as an object that parses again. */
#include <inttypes.h>
#include <math.h>

#include "error.h"
#include "fuzz.h"
#include "json.h"

struct int_field {
  const char *key;
  int64_t def, min, max;
};

/* as container/api.c, api_exec.c, exec.c and manager/preview.c ask for them */
static const struct int_field int_fields[] = {
    {"port", 0, 0, 65535},
    {"port", 0, 1, 65535},
    {"maxRestarts", -1, -1, 1000},
    {"timeoutMs", 0, 0, 24LL * 3600 * 1000},
    {"commandTimeoutMs", 0, 0, 24LL * 3600 * 1000},
    {"statusMin", 200, 100, 599},
    {"statusMax", 399, 100, 599},
    {"interval", 500, 0, 600000},
    {"any", 0, INT64_MIN, INT64_MAX},
};
static const char *const string_fields[] = {"command", "processId", "cwd", "sessionId", "stdin",
                                            "id", "class", "mode", "path", "content", "encoding",
                                            "token", "name"};
static const char *const bool_fields[] = {"autoRestart", "recursive", "includeHidden"};

static void check_error(struct sp_error **err, const char *code)
{
  FUZZ_ASSERT(*err != NULL, "no error set");
  FUZZ_ASSERT(strcmp((*err)->code, code) == 0, "code %s, want %s", (*err)->code, code);
  FUZZ_ASSERT((*err)->http_status == 400, "status %d", (*err)->http_status);
  cJSON *body = json_error_body(*err);
  char *s = json_print(body);
  FUZZ_ASSERT(s != NULL && s[0] == '{', "error body %s", s ? s : "(null)");
  free(s);
  cJSON_Delete(body);
  sp_error_free(*err);
  *err = NULL;
}

static void get_int(const cJSON *obj, const struct int_field *f, const char *key)
{
  struct sp_error *err = NULL;
  int64_t v = 12345;
  if (json_get_int(obj, key, f->def, f->min, f->max, &v, &err) < 0) {
    check_error(&err, "INVALID_REQUEST");
    return;
  }
  FUZZ_ASSERT(err == NULL, "error set on success");
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (m == NULL || cJSON_IsNull(m)) {
    FUZZ_ASSERT(v == f->def, "'%s': %" PRId64 " instead of the default", key, v);
    return;
  }
  FUZZ_ASSERT(v >= f->min && v <= f->max, "'%s': %" PRId64 " out of range", key, v);
  FUZZ_ASSERT(cJSON_IsNumber(m) && (double)v == m->valuedouble, "'%s': %" PRId64 " from %.17g",
              key, v, m->valuedouble);
}

static void get_string(const cJSON *obj, const char *key)
{
  struct sp_error *err = NULL;
  const char *v = NULL;
  if (json_get_string(obj, key, "default", &v, &err) < 0) {
    check_error(&err, "INVALID_REQUEST");
    return;
  }
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, key);
  FUZZ_ASSERT(v != NULL, "'%s': no string", key);
  if (m == NULL || cJSON_IsNull(m))
    FUZZ_ASSERT(strcmp(v, "default") == 0, "'%s': not the default", key);
  else
    FUZZ_ASSERT(cJSON_IsString(m) && v == m->valuestring, "'%s': not its string", key);
}

static void get_bool(const cJSON *obj, const char *key)
{
  struct sp_error *err = NULL;
  bool v = true;
  if (json_get_bool(obj, key, true, &v, &err) < 0) {
    check_error(&err, "INVALID_REQUEST");
    return;
  }
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (m != NULL && !cJSON_IsNull(m))
    FUZZ_ASSERT(cJSON_IsBool(m) && v == (bool)cJSON_IsTrue(m), "'%s': not its value", key);
  else
    FUZZ_ASSERT(v, "'%s': not the default", key);
}

static void fields(const cJSON *obj)
{
  for (size_t i = 0; i < SP_ARRAY_SIZE(int_fields); i++)
    get_int(obj, &int_fields[i], int_fields[i].key);
  for (size_t i = 0; i < SP_ARRAY_SIZE(string_fields); i++)
    get_string(obj, string_fields[i]);
  for (size_t i = 0; i < SP_ARRAY_SIZE(bool_fields); i++)
    get_bool(obj, bool_fields[i]);
  const cJSON *m;
  cJSON_ArrayForEach(m, obj)
  {
    if (m->string == NULL)
      continue;
    get_int(obj, &int_fields[SP_ARRAY_SIZE(int_fields) - 1], m->string);
    get_string(obj, m->string);
    get_bool(obj, m->string);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *buf = fuzz_copy(data, size);
  struct sp_error *err = NULL;
  cJSON *j = json_parse_object(buf, size, &err);
  if (j == NULL) {
    check_error(&err, "INVALID_JSON");
    free(buf);
    return 0;
  }
  FUZZ_ASSERT(cJSON_IsObject(j), "not an object");
  fields(j);
  /* options may come nested (container/api.c), env is an object of strings */
  const cJSON *opts = cJSON_GetObjectItemCaseSensitive(j, "options");
  if (cJSON_IsObject(opts))
    fields(opts);
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(j, "env");
  if (cJSON_IsObject(env))
    fields(env);

  char *s = json_print(j);
  cJSON *again = json_parse_object(s, strlen(s), &err);
  FUZZ_ASSERT(again != NULL, "printed body does not parse: %s", err ? err->msg : "");
  cJSON_Delete(again);
  free(s);
  cJSON_Delete(j);
  free(buf);
  return 0;
}
