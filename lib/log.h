/* Structured logging: one JSON object per line on stderr.
 *
 *   sp_log(SP_LOG_INFO, "listening", LS("addr", addr), LI("port", port));
 *
 * prints {"ts":"...","level":"info","msg":"listening","addr":"...","port":8787}.
 * The level is set with sp_log_set_level() or the SANDPIT_LOG_LEVEL
 * environment variable (debug, info, warn, error). */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stdbool.h>

enum sp_log_level { SP_LOG_DEBUG, SP_LOG_INFO, SP_LOG_WARN, SP_LOG_ERROR };

struct sp_kv {
  const char *key;
  char type; /* 's' string, 'i' integer, 'b' bool, 0 unused */
  const char *s;
  long long i;
};

#define LS(k, v) ((struct sp_kv){(k), 's', (v), 0})
#define LI(k, v) ((struct sp_kv){(k), 'i', NULL, (long long)(v)})
#define LB(k, v) ((struct sp_kv){(k), 'b', NULL, (v) ? 1 : 0})

void sp_log_kv(enum sp_log_level level, const char *msg,
               const struct sp_kv *kv, int n);

#define sp_log(level, msg, ...)                                               \
  sp_log_kv((level), (msg), (const struct sp_kv[]){{0}, __VA_ARGS__} + 1,     \
            (int)(sizeof((struct sp_kv[]){{0}, __VA_ARGS__}) /                \
                  sizeof(struct sp_kv)) - 1)

#define sp_debug(msg, ...) sp_log(SP_LOG_DEBUG, msg, __VA_ARGS__)
#define sp_info(msg, ...) sp_log(SP_LOG_INFO, msg, __VA_ARGS__)
#define sp_warn(msg, ...) sp_log(SP_LOG_WARN, msg, __VA_ARGS__)
#define sp_err(msg, ...) sp_log(SP_LOG_ERROR, msg, __VA_ARGS__)

/* Parse "debug" | "info" | "warn" | "error"; false if unknown. */
bool sp_log_parse_level(const char *s, enum sp_log_level *out);
void sp_log_set_level(enum sp_log_level level);
/* Apply SANDPIT_LOG_LEVEL if set and valid. */
void sp_log_init_from_env(void);
bool sp_log_enabled(enum sp_log_level level);
/* Name of the program, added to every line as "prog". */
void sp_log_set_prog(const char *prog);

#endif
