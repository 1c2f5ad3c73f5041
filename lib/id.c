/* The identifier rules of id.h as one table. */
#include "id.h"

#include <string.h>

struct id_rule {
  size_t max;
  bool upper;        /* A-Z allowed */
  bool any;          /* every byte allowed */
  const char *extra; /* punctuation allowed besides letters and digits */
  const char *lead;  /* of extra, what may not begin an id */
};

static const struct id_rule rules[] = {
    [SP_ID_SANDBOX] = {.max = SP_SANDBOX_ID_MAX, .upper = true, .extra = "_-", .lead = "_-"},
    [SP_ID_PREVIEW] = {.max = SP_SANDBOX_ID_MAX, .extra = "-", .lead = "-"},
    [SP_ID_PROCESS] = {.max = SP_PROCESS_ID_MAX, .upper = true, .extra = "._-", .lead = "."},
    [SP_ID_SESSION] = {.max = 128, .any = true},
    [SP_ID_TOKEN] = {.max = 16, .extra = "_", .lead = ""},
};

static bool allowed(const struct id_rule *r, char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (r->upper && c >= 'A' && c <= 'Z') ||
         (c != '\0' && strchr(r->extra, c) != NULL);
}

bool sp_id_ok(enum sp_id_kind kind, const char *id)
{
  const struct id_rule *r = &rules[kind];
  size_t n = strlen(id);
  if (n == 0 || n > r->max)
    return false;
  if (r->any)
    return true;
  if (strchr(r->lead, id[0]) != NULL)
    return false;
  for (const char *c = id; *c; c++)
    if (!allowed(r, *c))
      return false;
  return true;
}
