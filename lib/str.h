/* Growable byte buffers and small string helpers. */
#ifndef SP_STR_H
#define SP_STR_H

#include <stdbool.h>
#include <stddef.h>

/* A growable, always NUL-terminated buffer (git's strbuf).  A zeroed struct
 * is a valid empty buffer. */
struct sbuf {
  char *buf;
  size_t len;
  size_t cap;
};

#define SBUF_INIT {NULL, 0, 0}

void sbuf_grow(struct sbuf *sb, size_t extra);
void sbuf_add(struct sbuf *sb, const void *data, size_t len);
void sbuf_addstr(struct sbuf *sb, const char *s);
void sbuf_addch(struct sbuf *sb, char c);
void sbuf_addf(struct sbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append s as the inside of a JSON string literal (no quotes). */
void sbuf_add_json_escaped(struct sbuf *sb, const char *s, size_t len);
void sbuf_reset(struct sbuf *sb);
/* Empty string view if nothing was added. */
const char *sbuf_str(const struct sbuf *sb);
/* Hand the buffer to the caller (never NULL); sb becomes empty. */
char *sbuf_detach(struct sbuf *sb, size_t *len);
void sbuf_release(struct sbuf *sb);

static inline void sbuf_cleanup(struct sbuf *sb) { sbuf_release(sb); }
#define cleanup_sbuf __attribute__((cleanup(sbuf_cleanup)))

bool str_starts_with(const char *s, const char *prefix);
bool str_ends_with(const char *s, const char *suffix);
/* Strict decimal parse of the whole string into [min, max]. */
bool str_to_ll(const char *s, long long min, long long max, long long *out);
/* True if s is valid UTF-8 (no overlongs, surrogates or values > U+10FFFF). */
bool str_is_utf8(const char *s, size_t len);
/* Append s with each byte that does not begin a whole UTF-8 character, and
 * each NUL, replaced by U+FFFD: any bytes become text JSON can carry. */
void sbuf_add_utf8(struct sbuf *sb, const char *s, size_t len);
/* The same, as a new string. */
char *str_repair_utf8(const char *s, size_t len);
/* Constant-time comparison of two strings; the time depends only on the
 * length of `given`. */
bool str_equal_ct(const char *expected, const char *given);

/* Base64 (RFC 4648, with padding).  Decoding is strict: only the alphabet,
 * '=' padding at the end, and the length a multiple of 4 (whitespace is
 * refused); returns false for anything else. */
char *b64_encode(const void *data, size_t len, size_t *out_len);
bool b64_decode(const char *s, size_t len, char **out, size_t *out_len);

/* NULL-terminated vectors of strings ("K=V" environments, argv). */
void strv_free(char **v); /* accepts NULL */
void strv_freep(char ***v);
#define cleanup_strv __attribute__((cleanup(strv_freep)))
char **strv_dup(char *const *v); /* NULL gives an empty vector */
/* Set NAME=VALUE (replacing an existing NAME), or remove NAME. */
char **strv_setenv(char **v, const char *name, const char *value);
char **strv_unsetenv(char **v, const char *name);

#endif
