#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "str.h"
#include "util.h"

static enum sp_log_level min_level = SP_LOG_INFO;
static const char *prog_name = NULL;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

bool sp_log_parse_level(const char *s, enum sp_log_level *out)
{
  for (size_t i = 0; i < SP_ARRAY_SIZE(level_names); i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (enum sp_log_level)i;
      return true;
    }
  }
  if (strcmp(s, "warning") == 0) {
    *out = SP_LOG_WARN;
    return true;
  }
  return false;
}

void sp_log_set_level(enum sp_log_level level) { min_level = level; }

void sp_log_init_from_env(void)
{
  const char *v = getenv("SANDPIT_LOG_LEVEL");
  enum sp_log_level l;
  if (v && sp_log_parse_level(v, &l))
    min_level = l;
}

bool sp_log_enabled(enum sp_log_level level) { return level >= min_level; }

void sp_log_set_prog(const char *prog) { prog_name = prog; }

void sp_log_kv(enum sp_log_level level, const char *msg,
               const struct sp_kv *kv, int n)
{
  if (level < min_level)
    return;
  char ts[32];
  struct sbuf sb = SBUF_INIT;
  sbuf_addf(&sb, "{\"ts\":\"%s\",\"level\":\"%s\"",
            sp_iso8601(sp_now_ms(), ts, sizeof ts), level_names[level]);
  if (prog_name) {
    sbuf_addstr(&sb, ",\"prog\":\"");
    sbuf_add_json_escaped(&sb, prog_name, strlen(prog_name));
    sbuf_addch(&sb, '"');
  }
  sbuf_addstr(&sb, ",\"msg\":\"");
  sbuf_add_json_escaped(&sb, msg, strlen(msg));
  sbuf_addch(&sb, '"');
  for (int i = 0; i < n; i++) {
    if (kv[i].key == NULL)
      continue;
    sbuf_addstr(&sb, ",\"");
    sbuf_add_json_escaped(&sb, kv[i].key, strlen(kv[i].key));
    sbuf_addstr(&sb, "\":");
    switch (kv[i].type) {
    case 's':
      if (kv[i].s == NULL) {
        sbuf_addstr(&sb, "null");
      } else {
        sbuf_addch(&sb, '"');
        sbuf_add_json_escaped(&sb, kv[i].s, strlen(kv[i].s));
        sbuf_addch(&sb, '"');
      }
      break;
    case 'i': sbuf_addf(&sb, "%lld", kv[i].i); break;
    case 'b': sbuf_addstr(&sb, kv[i].i ? "true" : "false"); break;
    default: sbuf_addstr(&sb, "null"); break;
    }
  }
  sbuf_addstr(&sb, "}\n");
  /* One write per line so concurrent writers do not interleave. */
  (void)sp_write_all(STDERR_FILENO, sb.buf, sb.len);
  sbuf_release(&sb);
}
