/* The error contract.
 *
 * A fallible function takes `struct sp_error **err` as its last argument and
 * returns -1 (or NULL) with *err set.  sp_error_set() and friends return -1 so
 * they can be returned directly.  Callers may add context on the way up with
 * sp_error_prefix(); the message is printed once, at the boundary. */
#ifndef SP_ERROR_H
#define SP_ERROR_H

#include <stdarg.h>

struct cJSON;

struct sp_error {
  int errnum;        /* errno value behind the error, or 0 */
  int http_status;   /* status an HTTP boundary should answer with */
  const char *code;  /* stable machine code, e.g. "FILE_NOT_FOUND" (static) */
  char *msg;         /* human message */
  struct cJSON *context; /* fields for the error body's "context" (or NULL) */
  int retry_after_s; /* when to try again (a Retry-After header), or 0 */
};

/* Set *err (if err is not NULL and *err is NULL) with code "INTERNAL_ERROR"
 * and status 500.  When errnum != 0, ": strerror(errnum)" is appended and
 * the code and status are derived from errnum (ENOENT -> FILE_NOT_FOUND/404,
 * EACCES/EPERM -> PERMISSION_DENIED/403, ...).  Returns -1. */
int sp_error_set(struct sp_error **err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As sp_error_set with an explicit stable code and HTTP status.  Returns -1. */
int sp_error_code(struct sp_error **err, const char *code, int http_status,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

int sp_error_vcode(struct sp_error **err, const char *code, int http_status,
                   int errnum, const char *fmt, va_list ap);

/* Prepend "context: " to an existing error's message.  Returns -1. */
int sp_error_prefix(struct sp_error **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Give an existing error the caller's stable code (a config file that
 * cannot be read is INVALID_CONFIG, whatever the reason).  Returns -1. */
int sp_error_recode(struct sp_error **err, const char *code);

/* Add a string field to the error's context, e.g. ("path", "/x") for the
 * SDK's FileNotFoundError.path.  No-op when there is no error. */
void sp_error_context(struct sp_error **err, const char *key, const char *value);
void sp_error_context_int(struct sp_error **err, const char *key, long long value);

/* Say when the request may be tried again (seconds).  No-op without error. */
void sp_error_retry_after(struct sp_error **err, int seconds);

void sp_error_free(struct sp_error *err);

/* Print "prog: message" on stderr, free *err and set it to NULL. */
void sp_error_print(const char *prog, struct sp_error **err);

static inline void sp_error_cleanup(struct sp_error **e) { sp_error_free(*e); }
#define cleanup_error __attribute__((cleanup(sp_error_cleanup)))

#endif
