/* Helpers over cJSON. */
#ifndef SP_JSON_H
#define SP_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

struct sp_error;

static inline void sp_cjson_cleanup(cJSON **j) { cJSON_Delete(*j); }
#define cleanup_json __attribute__((cleanup(sp_cjson_cleanup)))

/* Parse a request body.  The body must be a JSON object; errors are
 * INVALID_JSON / 400 with the position of the fault.  Nesting deeper than
 * cJSON's limit is refused by cJSON itself. */
cJSON *json_parse_object(const char *buf, size_t len, struct sp_error **err);

/* Typed member access.  A missing member (or JSON null) yields the default;
 * a member of the wrong type is an INVALID_REQUEST error naming the key. */
int json_get_string(const cJSON *obj, const char *key, const char *def,
                    const char **out, struct sp_error **err);
int json_get_int(const cJSON *obj, const char *key, int64_t def, int64_t min,
                 int64_t max, int64_t *out, struct sp_error **err);
int json_get_bool(const cJSON *obj, const char *key, bool def, bool *out,
                  struct sp_error **err);

/* Serialise without formatting; never NULL. */
char *json_print(const cJSON *j);

/* Adds a number member from a 64-bit integer. */
cJSON *json_add_int(cJSON *obj, const char *key, int64_t v);
/* Adds a string member, or null when s is NULL. */
cJSON *json_add_string_or_null(cJSON *obj, const char *key, const char *s);
/* The SDK's success envelope: a new {"success": true} for the caller to
 * fill, and its closing "timestamp" (now, ISO 8601). */
cJSON *json_success_new(void);
void json_add_timestamp(cJSON *obj);

/* {"code", "message", "context": {}, "httpStatus", "timestamp"} for an error,
 * the envelope the Cloudflare SDK parses. */
cJSON *json_error_body(const struct sp_error *e);

#endif
