/* Server-sent events (lib/http.c http_sse_event): the input as a
 * command's output, repaired to UTF-8 and sent in an event as
 * container/api_exec.c does; as a raw string (up to its first NUL, bytes
 * as they are); and, when it parses, as a JSON value of its own.
 * Properties: the event is "event: NAME\n" (when named), one "data: "
 * line that holds no CR or LF (either would end it for an EventSource),
 * and a blank line; its data parses back to the value sent. */
#include "fuzz.h"
#include "http.h"
#include "json.h"
#include "str.h"

/* Check out as one event; returns its data, parsed. */
static cJSON *check_event(const struct sbuf *out, const char *event)
{
  const char *s = sbuf_str(out);
  FUZZ_ASSERT(strlen(s) == out->len, "a NUL in the event");
  if (event) {
    size_t el = strlen(event);
    FUZZ_ASSERT(strncmp(s, "event: ", 7) == 0 && strncmp(s + 7, event, el) == 0 &&
                    s[7 + el] == '\n',
                "event line of %.60s", s);
    s += 8 + el;
  }
  FUZZ_ASSERT(strncmp(s, "data: ", 6) == 0, "no data line: %.60s", s);
  s += 6;
  size_t n = strcspn(s, "\r\n");
  FUZZ_ASSERT(s[n] == '\n' && s[n + 1] == '\n' && s[n + 2] == '\0',
              "the data line is cut by a raw %s at byte %zu", s[n] == '\r' ? "CR" : "LF", n);
  cJSON *back = cJSON_ParseWithLength(s, n);
  FUZZ_ASSERT(back != NULL, "the data is not JSON: %.*s", (int)SP_MIN(n, 200), s);
  return back;
}

static void sse_send(const cJSON *j, const char *event, bool same)
{
  struct sbuf out = SBUF_INIT;
  http_sse_event(&out, event, j);
  cJSON *back = check_event(&out, event);
  if (same)
    FUZZ_ASSERT(cJSON_Compare(j, back, true), "the data does not parse back to what was sent");
  cJSON_Delete(back);
  sbuf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* output, as a command's stream sends it */
  char *repaired = str_repair_utf8((const char *)data, size);
  FUZZ_ASSERT(str_is_utf8(repaired, strlen(repaired)), "repair left invalid UTF-8");
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "type", "stdout");
  cJSON_AddStringToObject(j, "data", repaired);
  json_add_int(j, "exitCode", (int64_t)size - 1);
  sse_send(j, NULL, true);
  sse_send(j, "output", true);
  cJSON_Delete(j);
  free(repaired);

  /* the bytes as they are */
  char *raw = fuzz_cstr(data, size);
  j = cJSON_CreateString(raw);
  sse_send(j, NULL, true);
  cJSON_Delete(j);
  free(raw);

  /* any JSON value; numbers out of a double's range print as null */
  j = cJSON_ParseWithLength((const char *)data, size);
  if (j != NULL) {
    sse_send(j, NULL, false);
    cJSON_Delete(j);
  }
  return 0;
}
