/* A TOML 1.0 parser.
 *
 * toml_parse() turns a document into a tree of struct toml_value.  Every
 * value remembers the line and column where it was defined, so a consumer
 * (the configuration loader) can name them in its own errors.  A document
 * that is not valid TOML 1.0 is refused with an error whose message reads
 * "FILE:LINE:COLUMN: what is wrong", code "INVALID_TOML". */
#ifndef SP_TOML_H
#define SP_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_error;

enum toml_type {
  TOML_STRING,
  TOML_INTEGER,
  TOML_FLOAT,
  TOML_BOOL,
  TOML_DATETIME,       /* offset date-time */
  TOML_DATETIME_LOCAL, /* local date-time */
  TOML_DATE_LOCAL,
  TOML_TIME_LOCAL,
  TOML_ARRAY,
  TOML_TABLE,
};

struct toml_value;

struct toml_kv {
  char *key; /* NUL-terminated; may contain NUL bytes only via \u0000, see keylen */
  size_t keylen;
  struct toml_value *value;
};

struct toml_value {
  enum toml_type type;
  int line, col; /* 1-based position where the value (or table) was defined */
  union {
    struct {
      char *ptr; /* strings: decoded UTF-8; date/times: RFC 3339 text */
      size_t len;
    } str;
    int64_t i;
    double f;
    bool b;
    struct {
      struct toml_value **items;
      size_t len;
    } arr;
    struct {
      struct toml_kv *items; /* in document order */
      size_t len;
    } tab;
  } u;
};

/* Parse `len` bytes of `text`.  `filename` is used in error messages only. */
struct toml_value *toml_parse(const char *text, size_t len, const char *filename,
                              struct sp_error **err);
void toml_free(struct toml_value *v);

/* Member of a table, or NULL. */
const struct toml_value *toml_table_get(const struct toml_value *tab, const char *key);
const char *toml_type_name(enum toml_type t);

static inline void toml_freep(struct toml_value **v) { toml_free(*v); }
#define cleanup_toml __attribute__((cleanup(toml_freep)))

#endif
