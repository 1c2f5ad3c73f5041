/* The error classifier with the default rules (container/rules/default.toml,
 * as built into the monitor): the input's lines ('\n'-separated, any bytes)
 * go to classifier_feed, 100 ms apart; an empty line is a second's silence
 * and an idle flush; the end of the input is the end of the stream.
 * Properties, from classify.h: at most two events per line; every event
 * names its rule, tool, category and a severity of "error" or "warning";
 * its message is one line of valid UTF-8; its raw text is valid UTF-8
 * within CLASSIFY_RAW_MAX_LINES and CLASSIFY_RAW_MAX_BYTES; no file means
 * no line or column; its hash is that of the normalised "FILE: MESSAGE". */
#define FUZZ_INIT
#include "classify.h"
#include "error.h"
#include "fuzz.h"
#include "str.h"

extern const char sp_default_rules[];
extern const char sp_default_rules_end[];

static struct classify_rules *rules;
static int events;

static void fuzz_init(void)
{
  struct sp_error *err = NULL;
  rules = classify_rules_parse(sp_default_rules, (size_t)(sp_default_rules_end - sp_default_rules),
                               "default.toml", &err);
  FUZZ_ASSERT(rules != NULL, "default rules: %s", err->msg);
}

static void on_event(void *ud, const struct classify_event *ev)
{
  (void)ud;
  events++;
  FUZZ_ASSERT(ev->rule && ev->tool && ev->category && ev->severity, "unnamed event");
  FUZZ_ASSERT(strcmp(ev->severity, "error") == 0 || strcmp(ev->severity, "warning") == 0,
              "severity %s", ev->severity);
  FUZZ_ASSERT(ev->message != NULL && str_is_utf8(ev->message, strlen(ev->message)),
              "message is not UTF-8");
  FUZZ_ASSERT(strchr(ev->message, '\n') == NULL, "message of several lines");
  FUZZ_ASSERT(ev->raw != NULL && str_is_utf8(ev->raw, strlen(ev->raw)), "raw is not UTF-8");
  size_t raw_len = strlen(ev->raw), raw_lines = 1;
  for (const char *p = ev->raw; (p = strchr(p, '\n')) != NULL; p++)
    raw_lines++;
  FUZZ_ASSERT(raw_len <= CLASSIFY_RAW_MAX_BYTES, "raw text of %zu bytes", raw_len);
  FUZZ_ASSERT(raw_lines <= CLASSIFY_RAW_MAX_LINES, "raw text of %zu lines", raw_lines);
  FUZZ_ASSERT(ev->line >= 0 && ev->column >= 0, "line %d, column %d", ev->line, ev->column);
  if (ev->file == NULL)
    FUZZ_ASSERT(ev->line == 0 && ev->column == 0, "a line and column without a file");
  char *keyed = ev->file ? xasprintf("%s: %s", ev->file, ev->message) : xstrdup(ev->message);
  char *norm = classify_normalise(keyed, strlen(keyed));
  FUZZ_ASSERT(ev->hash == classify_hash(ev->tool, ev->category, norm), "hash");
  free(norm);
  free(keyed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = fuzz_copy(data, size);
  struct classifier *c = classifier_new(rules);
  int64_t now = 1000000;
  const char *p = text, *end = text + size;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    events = 0;
    if (len == 0 && nl != NULL) {
      now += 1000;
      classifier_flush(c, now, 250, on_event, NULL);
      FUZZ_ASSERT(events <= 1, "%d events from one flush", events);
    } else {
      now += 100;
      /* each line in a block of its own size: ASan sees a read past it */
      char *line = fuzz_copy((const uint8_t *)p, len);
      classifier_feed(c, line, len, now, on_event, NULL);
      free(line);
      FUZZ_ASSERT(events <= 2, "%d events from one line", events);
    }
    p += len + (nl != NULL);
  }
  events = 0;
  classifier_flush(c, now, 0, on_event, NULL);
  FUZZ_ASSERT(events <= 1, "%d events at the end", events);
  classifier_free(c);
  free(text);
  return 0;
}
