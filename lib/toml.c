/* A TOML 1.0.0 parser.
 *
 * The document is first checked as a whole for encoding faults (invalid
 * UTF-8, control characters, a CR not followed by LF), which TOML forbids
 * everywhere, strings and comments included.  The parser proper can then
 * assume clean UTF-8 whose only line ending is "\n" or "\r\n".
 *
 * Every struct toml_value handed out is the first member of a struct node,
 * which adds what the redefinition rules need (how a table came to exist,
 * whether an array is static or an array of tables), its nesting depth, and
 * a hash index for large tables. */
#include "toml.h"

#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "str.h"
#include "util.h"

/* Arrays and tables may nest this deep (the root table is level 0). */
#define TOML_MAX_DEPTH 128
/* Tables with more members than this get a hash index. */
#define INDEX_MIN 8

enum node_kind {
  K_SCALAR,
  K_TAB_IMPLICIT, /* created as a parent of a [header]; may be defined later */
  K_TAB_HEADER,   /* defined by [header], or an element of an array of tables */
  K_TAB_DOTTED,   /* defined by dotted keys */
  K_TAB_INLINE,   /* inline table: closed for good */
  K_ARR_STATIC,   /* array value: closed for good */
  K_ARR_TABLES,   /* array of tables, grown by [[header]] */
};

struct node {
  struct toml_value v; /* first: a toml_value pointer is a node pointer */
  unsigned char kind;
  int depth;
  size_t cap;       /* allocated items (arrays and tables) */
  size_t *index;    /* tables: open addressing, slot = item index + 1 */
  size_t index_cap; /* power of two, or 0 */
};

struct keypart {
  char *s;
  size_t len;
  size_t off;
  int line, col;
};

struct keypath {
  struct keypart *v;
  size_t n, cap;
};

struct parser {
  const char *s;
  size_t n;
  size_t i;
  const char *file;
  struct sp_error **err;
  /* position cache: offset pc_off is at line pc_line, column pc_col */
  size_t pc_off;
  int pc_line, pc_col;
  struct node *root;
  struct node *cur; /* table that key/value lines go to */
  char *cur_name;   /* its header as written, "[a.b]" or "[[c]]"; NULL for the root */
  struct sbuf buf;  /* scratch for decoding strings */
  locale_t cloc;    /* "C" locale for strtod_l, made on first use */
};

/* ---- nodes ---- */

static struct node *node_new(enum toml_type type, enum node_kind kind, int depth,
                             int line, int col)
{
  struct node *nd = xcalloc(1, sizeof *nd);
  nd->v.type = type;
  nd->v.line = line;
  nd->v.col = col;
  nd->kind = (unsigned char)kind;
  nd->depth = depth;
  return nd;
}

static void node_free(struct node *nd)
{
  if (nd == NULL)
    return;
  struct toml_value *v = &nd->v;
  switch (v->type) {
  case TOML_ARRAY:
    for (size_t k = 0; k < v->u.arr.len; k++)
      node_free((struct node *)v->u.arr.items[k]);
    free(v->u.arr.items);
    break;
  case TOML_TABLE:
    for (size_t k = 0; k < v->u.tab.len; k++) {
      free(v->u.tab.items[k].key);
      node_free((struct node *)v->u.tab.items[k].value);
    }
    free(v->u.tab.items);
    free(nd->index);
    break;
  case TOML_STRING:
  case TOML_DATETIME:
  case TOML_DATETIME_LOCAL:
  case TOML_DATE_LOCAL:
  case TOML_TIME_LOCAL:
    free(v->u.str.ptr);
    break;
  default:
    break;
  }
  free(nd);
}

static void node_freep(struct node **nd) { node_free(*nd); }
#define cleanup_node __attribute__((cleanup(node_freep)))

void toml_free(struct toml_value *v) { node_free((struct node *)v); }

static bool is_table(const struct node *nd) { return nd->v.type == TOML_TABLE; }

static void arr_push(struct node *a, struct node *item)
{
  if (a->v.u.arr.len == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 4;
    a->v.u.arr.items = xreallocarray(a->v.u.arr.items, a->cap, sizeof *a->v.u.arr.items);
  }
  a->v.u.arr.items[a->v.u.arr.len++] = &item->v;
}

static uint64_t key_hash(const char *k, size_t len)
{
  uint64_t h = 14695981039346656037ULL; /* FNV-1a */
  for (size_t j = 0; j < len; j++) {
    h ^= (unsigned char)k[j];
    h *= 1099511628211ULL;
  }
  return h;
}

static void index_put(struct node *t, size_t item)
{
  const struct toml_kv *kv = &t->v.u.tab.items[item];
  size_t mask = t->index_cap - 1;
  size_t h = (size_t)key_hash(kv->key, kv->keylen) & mask;
  while (t->index[h] != 0)
    h = (h + 1) & mask;
  t->index[h] = item + 1;
}

static void index_rebuild(struct node *t)
{
  size_t want = 16;
  while (want < t->v.u.tab.len * 4)
    want *= 2;
  free(t->index);
  t->index = xcalloc(want, sizeof *t->index);
  t->index_cap = want;
  for (size_t k = 0; k < t->v.u.tab.len; k++)
    index_put(t, k);
}

static struct node *tab_find(const struct node *t, const char *key, size_t len)
{
  const struct toml_kv *items = t->v.u.tab.items;
  if (t->index != NULL) {
    size_t mask = t->index_cap - 1;
    size_t h = (size_t)key_hash(key, len) & mask;
    for (; t->index[h] != 0; h = (h + 1) & mask) {
      const struct toml_kv *kv = &items[t->index[h] - 1];
      if (kv->keylen == len && memcmp(kv->key, key, len) == 0)
        return (struct node *)kv->value;
    }
    return NULL;
  }
  for (size_t k = 0; k < t->v.u.tab.len; k++)
    if (items[k].keylen == len && memcmp(items[k].key, key, len) == 0)
      return (struct node *)items[k].value;
  return NULL;
}

/* Adds a member; takes ownership of both key and value. */
static void tab_add(struct node *t, char *key, size_t keylen, struct node *val)
{
  if (t->v.u.tab.len == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 4;
    t->v.u.tab.items = xreallocarray(t->v.u.tab.items, t->cap, sizeof *t->v.u.tab.items);
  }
  size_t k = t->v.u.tab.len++;
  t->v.u.tab.items[k] = (struct toml_kv){.key = key, .keylen = keylen, .value = &val->v};
  if (t->v.u.tab.len <= INDEX_MIN)
    return;
  if (t->index == NULL || t->v.u.tab.len * 2 > t->index_cap)
    index_rebuild(t);
  else
    index_put(t, k);
}

const struct toml_value *toml_table_get(const struct toml_value *tab, const char *key)
{
  if (tab == NULL || key == NULL || tab->type != TOML_TABLE)
    return NULL;
  struct node *nd = tab_find((const struct node *)tab, key, strlen(key));
  return nd ? &nd->v : NULL;
}

const char *toml_type_name(enum toml_type t)
{
  switch (t) {
  case TOML_STRING: return "string";
  case TOML_INTEGER: return "integer";
  case TOML_FLOAT: return "float";
  case TOML_BOOL: return "boolean";
  case TOML_DATETIME: return "offset date-time";
  case TOML_DATETIME_LOCAL: return "local date-time";
  case TOML_DATE_LOCAL: return "local date";
  case TOML_TIME_LOCAL: return "local time";
  case TOML_ARRAY: return "array";
  case TOML_TABLE: return "table";
  }
  return "unknown";
}

/* ---- positions and errors ---- */

static void where(struct parser *p, size_t off, int *line, int *col)
{
  if (off > p->n)
    off = p->n;
  if (off < p->pc_off) {
    p->pc_off = 0;
    p->pc_line = 1;
    p->pc_col = 1;
  }
  int l = p->pc_line, c = p->pc_col;
  for (size_t k = p->pc_off; k < off; k++) {
    unsigned char ch = (unsigned char)p->s[k];
    if (ch == '\n') {
      if (l < INT_MAX)
        l++;
      c = 1;
    } else if ((ch & 0xc0) != 0x80 && c < INT_MAX) {
      c++;
    }
  }
  p->pc_off = off;
  p->pc_line = l;
  p->pc_col = c;
  *line = l;
  *col = c;
}

static int perr(struct parser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int perr(struct parser *p, size_t off, const char *fmt, ...)
{
  int line, col;
  where(p, off, &line, &col);
  va_list ap;
  va_start(ap, fmt);
  cleanup_free char *msg = xvasprintf(fmt, ap);
  va_end(ap);
  return sp_error_code(p->err, "INVALID_TOML", 400, "%s:%d:%d: %s", p->file, line, col,
                       msg);
}

/* Decodes the UTF-8 sequence at s[0..n); returns its length or 0 if it is
 * not valid. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
  unsigned char c = s[0];
  size_t len;
  uint32_t v;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    v = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    v = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    v = c & 0x07;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t k = 1; k < len; k++) {
    if ((s[k] & 0xc0) != 0x80)
      return 0;
    v = (v << 6) | (s[k] & 0x3f);
  }
  if ((len == 3 && v < 0x800) || (len == 4 && v < 0x10000) || v > 0x10ffff ||
      (v >= 0xd800 && v <= 0xdfff))
    return 0;
  *cp = v;
  return len;
}

/* Describes the character at off for "found ..." in messages. */
static const char *describe(const struct parser *p, size_t off, char buf[32])
{
  if (off >= p->n)
    return "end of file";
  unsigned char c = (unsigned char)p->s[off];
  if (c == '\n' || c == '\r')
    return "end of line";
  if (c == '\t')
    return "a tab";
  if (c == '\'') {
    snprintf(buf, 32, "\"'\"");
    return buf;
  }
  if (c >= 0x20 && c < 0x7f) {
    snprintf(buf, 32, "'%c'", c);
    return buf;
  }
  uint32_t cp;
  size_t len = utf8_decode((const unsigned char *)p->s + off, p->n - off, &cp);
  if (len == 0)
    snprintf(buf, 32, "byte 0x%02x", c);
  else if (len == 1)
    snprintf(buf, 32, "U+%04X", (unsigned)cp);
  else
    snprintf(buf, 32, "'%.*s' (U+%04X)", (int)len, p->s + off, (unsigned)cp);
  return buf;
}

static bool is_bare(unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-';
}

/* Appends a key for a message: bare if it can be, else in single quotes,
 * with quotes, backslashes and control characters escaped. */
static void add_key_part(struct sbuf *sb, const char *s, size_t len)
{
  bool bare = len > 0;
  for (size_t k = 0; k < len && bare; k++)
    bare = is_bare((unsigned char)s[k]);
  if (bare) {
    sbuf_add(sb, s, len);
    return;
  }
  sbuf_addch(sb, '\'');
  for (size_t k = 0; k < len; k++) {
    unsigned char c = (unsigned char)s[k];
    if (c == '"' || c == '\\' || c == '\'') {
      sbuf_addch(sb, '\\');
      sbuf_addch(sb, (char)c);
    } else if (c < 0x20 || c == 0x7f) {
      sbuf_addf(sb, "\\u%04X", c);
    } else {
      sbuf_addch(sb, (char)c);
    }
  }
  sbuf_addch(sb, '\'');
}

/* The first `upto` parts of a key path, dotted, shortened if very long. */
static char *key_text(const struct keypath *kp, size_t upto)
{
  struct sbuf sb = SBUF_INIT;
  for (size_t k = 0; k < upto && k < kp->n; k++) {
    if (k > 0)
      sbuf_addch(&sb, '.');
    add_key_part(&sb, kp->v[k].s, kp->v[k].len);
    if (sb.len > 200) {
      sb.len = 200;
      while (sb.len > 0 && ((unsigned char)sb.buf[sb.len] & 0xc0) == 0x80)
        sb.len--; /* do not cut a character in two */
      sb.buf[sb.len] = '\0';
      sbuf_addstr(&sb, "...");
      break;
    }
  }
  return sbuf_detach(&sb, NULL);
}

static const char *a_type(const struct node *nd)
{
  switch (nd->v.type) {
  case TOML_INTEGER: return "an integer";
  case TOML_ARRAY: return nd->kind == K_ARR_TABLES ? "an array of tables" : "an array";
  case TOML_TABLE: return nd->kind == K_TAB_INLINE ? "an inline table" : "a table";
  case TOML_STRING: return "a string";
  case TOML_FLOAT: return "a float";
  case TOML_BOOL: return "a boolean";
  default: return "a date/time";
  }
}

/* ---- encoding check ---- */

static int check_encoding(struct parser *p)
{
  const unsigned char *s = (const unsigned char *)p->s;
  size_t n = p->n;
  if (n >= 2 && ((s[0] == 0xfe && s[1] == 0xff) || (s[0] == 0xff && s[1] == 0xfe)))
    return perr(p, 0, "document is UTF-16 encoded; TOML documents must be UTF-8");
  size_t k = 0;
  while (k < n) {
    unsigned char c = s[k];
    if (c >= 0x20 && c < 0x7f) {
      k++;
      continue;
    }
    if (c == '\t' || c == '\n') {
      k++;
    } else if (c == '\r') {
      if (k + 1 >= n || s[k + 1] != '\n')
        return perr(p, k, "carriage return (U+000D) not followed by a line feed");
      k += 2;
    } else if (c == 0) {
      return perr(p, k, "NUL byte (U+0000) in document; TOML text cannot contain NUL");
    } else if (c < 0x80) {
      return perr(p, k, "control character U+%04X is not allowed (in a basic string, "
                        "write it as the escape \\u%04X)", c, c);
    } else {
      uint32_t cp;
      size_t len = utf8_decode(s + k, n - k, &cp);
      if (len == 0)
        return perr(p, k, "invalid UTF-8 (byte 0x%02x)", c);
      k += len;
    }
  }
  return 0;
}

/* ---- lexical helpers ---- */

static int peek(const struct parser *p, size_t ahead)
{
  return p->i + ahead < p->n ? (unsigned char)p->s[p->i + ahead] : -1;
}

static bool at_eof(const struct parser *p) { return p->i >= p->n; }

/* True at "\n" or "\r\n" (the encoding check guarantees a \r is followed by \n). */
static bool at_newline(const struct parser *p)
{
  int c = peek(p, 0);
  return c == '\n' || c == '\r';
}

static void skip_newline(struct parser *p) { p->i += peek(p, 0) == '\r' ? 2 : 1; }

static void skip_ws(struct parser *p)
{
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t'))
    p->i++;
}

static void skip_comment(struct parser *p)
{
  while (p->i < p->n && p->s[p->i] != '\n' && p->s[p->i] != '\r')
    p->i++;
}

/* Whitespace, newlines and comments, as allowed between array elements. */
static void skip_ws_nl(struct parser *p)
{
  for (;;) {
    skip_ws(p);
    if (peek(p, 0) == '#')
      skip_comment(p);
    if (!at_newline(p))
      return;
    skip_newline(p);
  }
}

static int expect_eol(struct parser *p, const char *after)
{
  skip_ws(p);
  if (peek(p, 0) == '#')
    skip_comment(p);
  if (at_eof(p))
    return 0;
  if (at_newline(p)) {
    skip_newline(p);
    return 0;
  }
  char b[32];
  return perr(p, p->i, "expected end of line after %s, found %s", after,
              describe(p, p->i, b));
}

static int hexval(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static void add_utf8(struct sbuf *sb, uint32_t cp)
{
  char b[4];
  size_t len;
  if (cp < 0x80) {
    b[0] = (char)cp;
    len = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xc0 | (cp >> 6));
    b[1] = (char)(0x80 | (cp & 0x3f));
    len = 2;
  } else if (cp < 0x10000) {
    b[0] = (char)(0xe0 | (cp >> 12));
    b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    b[2] = (char)(0x80 | (cp & 0x3f));
    len = 3;
  } else {
    b[0] = (char)(0xf0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    b[3] = (char)(0x80 | (cp & 0x3f));
    len = 4;
  }
  sbuf_add(sb, b, len);
}

/* ---- strings ---- */

/* An escape sequence at p->i (the backslash) inside a basic string. */
static int parse_escape(struct parser *p, struct sbuf *out, bool multiline)
{
  size_t start = p->i;
  int e = peek(p, 1);
  char b[32];
  switch (e) {
  case 'b': sbuf_addch(out, '\b'); p->i += 2; return 0;
  case 't': sbuf_addch(out, '\t'); p->i += 2; return 0;
  case 'n': sbuf_addch(out, '\n'); p->i += 2; return 0;
  case 'f': sbuf_addch(out, '\f'); p->i += 2; return 0;
  case 'r': sbuf_addch(out, '\r'); p->i += 2; return 0;
  case '"': sbuf_addch(out, '"'); p->i += 2; return 0;
  case '\\': sbuf_addch(out, '\\'); p->i += 2; return 0;
  case 'u':
  case 'U': {
    int digits = e == 'u' ? 4 : 8;
    uint32_t cp = 0;
    for (int k = 0; k < digits; k++) {
      int h = hexval(peek(p, 2 + (size_t)k));
      if (h < 0)
        return perr(p, start, "invalid escape sequence: '\\%c' needs exactly %d hex digits",
                    e, digits);
      cp = (cp << 4) | (uint32_t)h;
    }
    if (cp >= 0xd800 && cp <= 0xdfff)
      return perr(p, start, "invalid escape sequence '\\%c%.*s': U+%04X is a surrogate, "
                            "not a Unicode scalar value", e, digits, p->s + start + 2,
                  (unsigned)cp);
    if (cp > 0x10ffff)
      return perr(p, start, "invalid escape sequence '\\%c%.*s': beyond U+10FFFF", e,
                  digits, p->s + start + 2);
    add_utf8(out, cp);
    p->i += 2 + (size_t)digits;
    return 0;
  }
  case -1:
    return perr(p, start, "unterminated string: input ends after '\\'");
  default:
    break;
  }
  if (multiline && (e == ' ' || e == '\t' || e == '\n' || e == '\r')) {
    /* A line-ending backslash eats all whitespace and newlines after it;
     * only spaces and tabs may sit between it and the end of the line. */
    p->i++;
    skip_ws(p);
    if (!at_newline(p))
      return perr(p, start, "invalid escape sequence '\\ ': a line-ending backslash "
                            "must be the last thing on its line");
    for (;;) {
      skip_ws(p);
      if (!at_newline(p))
        break;
      skip_newline(p);
    }
    return 0;
  }
  if (e == '\n' || e == '\r')
    return perr(p, start, "unterminated string: line ends after '\\'");
  if (e >= 0x20 && e < 0x7f)
    return perr(p, start, "invalid escape sequence '\\%c'", e);
  return perr(p, start, "invalid escape sequence: '\\' followed by %s",
              describe(p, start + 1, b));
}

/* A string starting at p->i, decoded into p->buf.  Quoted keys use this
 * too, with multi-line forms refused by the caller. */
static int parse_string(struct parser *p)
{
  size_t start = p->i;
  char q = p->s[p->i];
  bool basic = q == '"';
  bool ml = peek(p, 1) == q && peek(p, 2) == q;
  struct sbuf *out = &p->buf;
  sbuf_reset(out);
  if (ml) {
    p->i += 3;
    if (at_newline(p))
      skip_newline(p); /* a newline right after the opening quotes is trimmed */
  } else {
    p->i++;
  }
  for (;;) {
    if (at_eof(p))
      return perr(p, start, "unterminated %s string: no closing %s before end of file",
                  ml ? "multi-line" : basic ? "basic" : "literal",
                  ml ? (basic ? "\"\"\"" : "'''") : (basic ? "'\"'" : "\"'\""));
    char c = p->s[p->i];
    if (c == q) {
      if (!ml) {
        p->i++;
        return 0;
      }
      size_t run = 0;
      while (peek(p, run) == q)
        run++;
      if (run < 3) {
        sbuf_add(out, p->s + p->i, run);
        p->i += run;
        continue;
      }
      if (run > 5)
        return perr(p, p->i + 5, "too many quotes at the end of a multi-line string "
                                 "(at most two may come before the closing three)");
      sbuf_add(out, p->s + p->i, run - 3);
      p->i += run;
      return 0;
    }
    if (c == '\\' && basic) {
      if (parse_escape(p, out, ml) < 0)
        return -1;
      continue;
    }
    if (c == '\n' || c == '\r') {
      if (!ml)
        return perr(p, start, "unterminated string: a single-line string must end "
                              "before the end of the line (use %s for multi-line strings)",
                    basic ? "\"\"\"" : "'''");
      sbuf_addch(out, '\n'); /* CRLF is stored as LF */
      skip_newline(p);
      continue;
    }
    size_t j = p->i;
    while (j < p->n && p->s[j] != q && p->s[j] != '\n' && p->s[j] != '\r' &&
           !(basic && p->s[j] == '\\'))
      j++;
    sbuf_add(out, p->s + p->i, j - p->i);
    p->i = j;
  }
}

/* ---- keys ---- */

static void keypath_release(struct keypath *kp)
{
  for (size_t k = 0; k < kp->n; k++)
    free(kp->v[k].s);
  free(kp->v);
  kp->v = NULL;
  kp->n = kp->cap = 0;
}
#define cleanup_keypath __attribute__((cleanup(keypath_release)))

static int parse_key(struct parser *p, struct keypath *kp, bool in_header)
{
  for (;;) {
    size_t start = p->i;
    int c = peek(p, 0);
    char b[32];
    struct keypart part = {.off = start};
    where(p, start, &part.line, &part.col);
    if (c == '"' || c == '\'') {
      if (peek(p, 1) == c && peek(p, 2) == c)
        return perr(p, start, "multi-line strings cannot be used as keys");
      if (parse_string(p) < 0)
        return -1;
      part.len = p->buf.len;
      part.s = xmemdup(sbuf_str(&p->buf), p->buf.len);
    } else if (c >= 0 && is_bare((unsigned char)c)) {
      size_t j = p->i;
      while (j < p->n && is_bare((unsigned char)p->s[j]))
        j++;
      part.len = j - p->i;
      part.s = xmemdup(p->s + p->i, part.len);
      p->i = j;
    } else if (kp->n > 0) {
      return perr(p, start, "expected a key after '.', found %s", describe(p, start, b));
    } else if (c == '=') {
      return perr(p, start, "missing key before '='");
    } else if (c == ']' && in_header) {
      return perr(p, start, "table header has no name");
    } else {
      return perr(p, start, "expected a key, found %s (keys are bare words of A-Za-z0-9_- "
                            "or quoted strings)", describe(p, start, b));
    }
    if (kp->n == kp->cap) {
      kp->cap = kp->cap ? kp->cap * 2 : 4;
      kp->v = xreallocarray(kp->v, kp->cap, sizeof *kp->v);
    }
    kp->v[kp->n++] = part;
    skip_ws(p);
    if (peek(p, 0) != '.')
      return 0;
    p->i++;
    skip_ws(p);
  }
}

/* ---- scalars ---- */

static bool is_digit(int c) { return c >= '0' && c <= '9'; }

static bool is_token_char(int c)
{
  return (c >= 0 && is_bare((unsigned char)c)) || c == '+' || c == '.' || c == ':';
}

/* Checks a run of digits with single underscores between them at t[*k..len)
 * (digits as accepted by `digit`), advancing *k past it.  Returns -1 with a
 * message if an underscore is misplaced; 0 if there are no digits. */
static int digit_run(const char *t, size_t len, size_t *k, int (*digit)(int),
                     const char **why)
{
  size_t j = *k;
  int count = 0;
  while (j < len) {
    if (digit((unsigned char)t[j]) >= 0) {
      count++;
      j++;
    } else if (t[j] == '_') {
      if (count == 0 || j + 1 >= len || digit((unsigned char)t[j + 1]) < 0) {
        *why = "an underscore in a number must sit between two digits";
        return -1;
      }
      j++;
    } else {
      break;
    }
  }
  *k = j;
  return count;
}

static int dec_digit(int c) { return is_digit(c) ? c - '0' : -1; }
static int oct_digit(int c) { return c >= '0' && c <= '7' ? c - '0' : -1; }
static int bin_digit(int c) { return c == '0' || c == '1' ? c - '0' : -1; }

/* A node for a value that starts at offset off. */
static struct node *node_at(struct parser *p, enum toml_type type, enum node_kind kind,
                            size_t off, int depth)
{
  int line, col;
  where(p, off, &line, &col);
  return node_new(type, kind, depth, line, col);
}

static double c_strtod(struct parser *p, const char *s)
{
  if (p->cloc == (locale_t)0)
    p->cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  if (p->cloc == (locale_t)0)
    return strtod(s, NULL);
  return strtod_l(s, NULL, p->cloc);
}

static struct node *parse_number(struct parser *p, const char *t, size_t len, size_t off,
                                 int depth)
{
  const char *why = NULL;
  size_t k = 0;
  bool neg = false, sign = false;
  if (t[0] == '+' || t[0] == '-') {
    neg = t[0] == '-';
    sign = true;
    k = 1;
  }
  /* inf and nan */
  if (len - k == 3 && (memcmp(t + k, "inf", 3) == 0 || memcmp(t + k, "nan", 3) == 0)) {
    struct node *nd = node_at(p, TOML_FLOAT, K_SCALAR, off, depth);
    nd->v.u.f = t[k] == 'i' ? (neg ? -INFINITY : INFINITY) : (neg ? -NAN : NAN);
    return nd;
  }
  /* hexadecimal, octal, binary */
  if (len - k >= 2 && t[k] == '0' && memchr("xobXOB", t[k + 1], 6) != NULL) {
    char pfx = t[k + 1];
    if (pfx == 'X' || pfx == 'O' || pfx == 'B') {
      perr(p, off, "integer prefix '0%c' must be lowercase ('0%c')", pfx, pfx + 32);
      return NULL;
    }
    if (sign) {
      perr(p, off, "hexadecimal, octal and binary integers cannot have a sign");
      return NULL;
    }
    int (*dig)(int) = pfx == 'x' ? hexval : pfx == 'o' ? oct_digit : bin_digit;
    unsigned base = pfx == 'x' ? 16 : pfx == 'o' ? 8 : 2;
    const char *name = pfx == 'x' ? "hexadecimal" : pfx == 'o' ? "octal" : "binary";
    size_t j = k + 2;
    int nd_count = digit_run(t, len, &j, dig, &why);
    if (nd_count < 0) {
      perr(p, off, "%s", why);
      return NULL;
    }
    if (nd_count == 0 || j != len) {
      if (j < len && t[j] == '_')
        perr(p, off, "an underscore in a number must sit between two digits");
      else
        perr(p, off, "invalid %s integer '%.*s'", name, (int)SP_MIN(len, 64), t);
      return NULL;
    }
    uint64_t v = 0;
    for (j = k + 2; j < len; j++) {
      if (t[j] == '_')
        continue;
      uint64_t d = (uint64_t)dig((unsigned char)t[j]);
      if (v > ((uint64_t)INT64_MAX - d) / base) {
        perr(p, off, "integer out of range (must fit in a signed 64-bit integer)");
        return NULL;
      }
      v = v * base + d;
    }
    struct node *nd = node_at(p, TOML_INTEGER, K_SCALAR, off, depth);
    nd->v.u.i = (int64_t)v;
    return nd;
  }
  /* decimal integer or float */
  size_t int_start = k;
  int int_digits = digit_run(t, len, &k, dec_digit, &why);
  if (int_digits < 0) {
    perr(p, off, "%s", why);
    return NULL;
  }
  if (int_digits == 0) {
    if (k < len && t[k] == '.')
      perr(p, off, "a float needs a digit before the decimal point");
    else if (k < len && t[k] == '_')
      perr(p, off, "an underscore in a number must sit between two digits");
    else
      perr(p, off, "invalid value '%.*s'", (int)SP_MIN(len, 64), t);
    return NULL;
  }
  if (t[int_start] == '0' && int_digits > 1) {
    perr(p, off, "leading zeros are not allowed in '%.*s'", (int)SP_MIN(len, 64), t);
    return NULL;
  }
  size_t int_end = k;
  bool is_float = false;
  if (k < len && t[k] == '.') {
    k++;
    int frac = digit_run(t, len, &k, dec_digit, &why);
    if (frac < 0) {
      perr(p, off, "%s", why);
      return NULL;
    }
    if (frac == 0) {
      perr(p, off, "a decimal point must be followed by a digit");
      return NULL;
    }
    is_float = true;
  }
  if (k < len && (t[k] == 'e' || t[k] == 'E')) {
    k++;
    if (k < len && (t[k] == '+' || t[k] == '-'))
      k++;
    int exp = digit_run(t, len, &k, dec_digit, &why);
    if (exp < 0) {
      perr(p, off, "%s", why);
      return NULL;
    }
    if (exp == 0) {
      perr(p, off, "an exponent must have digits");
      return NULL;
    }
    is_float = true;
  }
  if (k != len) {
    if (t[k] == '_')
      perr(p, off, "an underscore in a number must sit between two digits");
    else
      perr(p, off, "invalid number '%.*s'", (int)SP_MIN(len, 64), t);
    return NULL;
  }
  if (!is_float) {
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (size_t j = int_start; j < int_end; j++) {
      if (t[j] == '_')
        continue;
      uint64_t d = (uint64_t)(t[j] - '0');
      if (v > (limit - d) / 10) {
        perr(p, off, "integer out of range (must fit in a signed 64-bit integer)");
        return NULL;
      }
      v = v * 10 + d;
    }
    struct node *nd = node_at(p, TOML_INTEGER, K_SCALAR, off, depth);
    nd->v.u.i = neg ? (int64_t)(0 - v) : (int64_t)v;
    return nd;
  }
  cleanup_free char *clean = xmalloc(len + 1);
  size_t cl = 0;
  for (size_t j = 0; j < len; j++)
    if (t[j] != '_')
      clean[cl++] = t[j];
  clean[cl] = '\0';
  double d = c_strtod(p, clean);
  if (isinf(d)) {
    perr(p, off, "float out of range '%.*s'", (int)SP_MIN(len, 64), t);
    return NULL;
  }
  struct node *nd = node_at(p, TOML_FLOAT, K_SCALAR, off, depth);
  nd->v.u.f = d;
  return nd;
}

static bool digits_at(const char *t, size_t len, size_t k, size_t count)
{
  if (k + count > len)
    return false;
  for (size_t j = k; j < k + count; j++)
    if (!is_digit((unsigned char)t[j]))
      return false;
  return true;
}

static int num2(const char *t) { return (t[0] - '0') * 10 + (t[1] - '0'); }

/* HH:MM:SS[.frac] at t[*k..]; advances *k. */
static int parse_time(struct parser *p, const char *t, size_t len, size_t *k, size_t off)
{
  size_t j = *k;
  if (!digits_at(t, len, j, 2) || j + 2 >= len || t[j + 2] != ':' ||
      !digits_at(t, len, j + 3, 2) || j + 5 >= len || t[j + 5] != ':' ||
      !digits_at(t, len, j + 6, 2))
    return perr(p, off, "invalid time in '%.*s' (expected HH:MM:SS with two digits each)",
                (int)SP_MIN(len, 64), t);
  int h = num2(t + j), m = num2(t + j + 3), s = num2(t + j + 6);
  if (h > 23)
    return perr(p, off, "hour %02d out of range (00-23)", h);
  if (m > 59)
    return perr(p, off, "minute %02d out of range (00-59)", m);
  if (s > 60)
    return perr(p, off, "second %02d out of range (00-60)", s);
  j += 8;
  if (j < len && t[j] == '.') {
    j++;
    size_t f = j;
    while (j < len && is_digit((unsigned char)t[j]))
      j++;
    if (j == f)
      return perr(p, off, "a decimal point in a time must be followed by digits");
  }
  *k = j;
  return 0;
}

static int days_in_month(int y, int m)
{
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 29;
  return days[m - 1];
}

static struct node *parse_datetime(struct parser *p, const char *t, size_t len, size_t off,
                                   int depth)
{
  enum toml_type type;
  size_t k = 0;
  if ((len >= 3 && t[2] == ':') || memchr(t, '-', len) == NULL) {
    if (parse_time(p, t, len, &k, off) < 0)
      return NULL;
    type = TOML_TIME_LOCAL;
  } else {
    if (!digits_at(t, len, 0, 4) || len < 10 || t[4] != '-' || !digits_at(t, len, 5, 2) ||
        t[7] != '-' || !digits_at(t, len, 8, 2) || (len > 10 && is_digit((unsigned char)t[10]))) {
      perr(p, off, "invalid date '%.*s' (expected YYYY-MM-DD)", (int)SP_MIN(len, 64), t);
      return NULL;
    }
    int y = (t[0] - '0') * 1000 + (t[1] - '0') * 100 + num2(t + 2);
    int m = num2(t + 5), d = num2(t + 8);
    if (m < 1 || m > 12) {
      perr(p, off, "month %02d out of range (01-12)", m);
      return NULL;
    }
    if (d < 1 || d > days_in_month(y, m)) {
      perr(p, off, "day %02d out of range for %04d-%02d (01-%02d)", d, y, m,
           days_in_month(y, m));
      return NULL;
    }
    k = 10;
    type = TOML_DATE_LOCAL;
    if (k < len) {
      if (t[k] != 'T' && t[k] != 't' && t[k] != ' ') {
        perr(p, off, "invalid date-time '%.*s' (expected 'T' between date and time)",
             (int)SP_MIN(len, 64), t);
        return NULL;
      }
      k++;
      if (parse_time(p, t, len, &k, off) < 0)
        return NULL;
      type = TOML_DATETIME_LOCAL;
      if (k < len && (t[k] == 'Z' || t[k] == 'z')) {
        k++;
        type = TOML_DATETIME;
      } else if (k < len && (t[k] == '+' || t[k] == '-')) {
        if (!digits_at(t, len, k + 1, 2) || k + 3 >= len || t[k + 3] != ':' ||
            !digits_at(t, len, k + 4, 2)) {
          perr(p, off, "invalid time offset in '%.*s' (expected Z or +HH:MM / -HH:MM)",
               (int)SP_MIN(len, 64), t);
          return NULL;
        }
        int oh = num2(t + k + 1), om = num2(t + k + 4);
        if (oh > 23 || om > 59) {
          perr(p, off, "time offset %.6s out of range", t + k);
          return NULL;
        }
        k += 6;
        type = TOML_DATETIME;
      }
    }
  }
  if (k != len) {
    perr(p, off, "invalid %s '%.*s'", toml_type_name(type), (int)SP_MIN(len, 64), t);
    return NULL;
  }
  struct node *nd = node_at(p, type, K_SCALAR, off, depth);
  char *s = xmemdup(t, len);
  for (size_t j = 0; j < len; j++) {
    if (s[j] == 't' || s[j] == ' ')
      s[j] = 'T';
    else if (s[j] == 'z')
      s[j] = 'Z';
  }
  nd->v.u.str.ptr = s;
  nd->v.u.str.len = len;
  return nd;
}

static bool looks_like_datetime(const char *t, size_t len)
{
  if (is_digit((unsigned char)t[0]) && memchr(t, ':', len) != NULL)
    return true;
  /* digits then '-' (a sign after 'e' belongs to an exponent) */
  size_t k = 0;
  while (k < len && is_digit((unsigned char)t[k]))
    k++;
  return k > 0 && k < len && t[k] == '-';
}

/* Booleans, numbers and date/times: a run of token characters. */
static struct node *parse_bare_value(struct parser *p, int depth)
{
  size_t start = p->i, j = p->i;
  while (j < p->n && is_token_char((unsigned char)p->s[j]))
    j++;
  /* "1979-05-27 07:32:00": a space may separate date and time */
  if (j - start == 10 && digits_at(p->s + start, 10, 0, 4) && p->s[start + 4] == '-' &&
      p->s[start + 7] == '-' && j + 3 < p->n && p->s[j] == ' ' &&
      is_digit((unsigned char)p->s[j + 1]) && is_digit((unsigned char)p->s[j + 2]) &&
      p->s[j + 3] == ':') {
    j++;
    while (j < p->n && is_token_char((unsigned char)p->s[j]))
      j++;
  }
  const char *t = p->s + start;
  size_t len = j - start;
  char b[32];
  if (len == 0) {
    perr(p, start, "expected a value, found %s", describe(p, start, b));
    return NULL;
  }
  p->i = j;
  if ((len == 4 && memcmp(t, "true", 4) == 0) || (len == 5 && memcmp(t, "false", 5) == 0)) {
    struct node *nd = node_at(p, TOML_BOOL, K_SCALAR, start, depth);
    nd->v.u.b = t[0] == 't';
    return nd;
  }
  if ((len == 4 && strncasecmp(t, "true", 4) == 0) ||
      (len == 5 && strncasecmp(t, "false", 5) == 0)) {
    perr(p, start, "invalid value '%.*s' (booleans are lowercase: true, false)", (int)len, t);
    return NULL;
  }
  if (looks_like_datetime(t, len))
    return parse_datetime(p, t, len, start, depth);
  int c = (unsigned char)t[0];
  if (is_digit(c) || c == '+' || c == '-' || c == '.' || c == '_' ||
      (len == 3 && (memcmp(t, "inf", 3) == 0 || memcmp(t, "nan", 3) == 0)))
    return parse_number(p, t, len, start, depth);
  if (len == 3 && (strncasecmp(t, "inf", 3) == 0 || strncasecmp(t, "nan", 3) == 0))
    perr(p, start, "invalid value '%.*s' (inf and nan must be lowercase)", (int)len, t);
  else
    perr(p, start, "invalid value '%.*s' (strings must be quoted)", (int)SP_MIN(len, 64), t);
  return NULL;
}

/* ---- arrays, inline tables, values ---- */

static struct node *parse_value(struct parser *p, int depth);
static int parse_keyval(struct parser *p, struct node *tab);

static int depth_check(struct parser *p, int depth, size_t off)
{
  if (depth > TOML_MAX_DEPTH)
    return perr(p, off, "arrays and tables nested too deeply (the limit is %d levels)",
                TOML_MAX_DEPTH);
  return 0;
}

static struct node *parse_array(struct parser *p, int depth)
{
  size_t start = p->i;
  char b[32];
  if (depth_check(p, depth, start) < 0)
    return NULL;
  cleanup_node struct node *arr = node_at(p, TOML_ARRAY, K_ARR_STATIC, start, depth);
  p->i++;
  for (;;) {
    skip_ws_nl(p);
    if (at_eof(p)) {
      perr(p, p->i, "unterminated array: expected ']' to close the array opened at line %d",
           arr->v.line);
      return NULL;
    }
    if (peek(p, 0) == ']') {
      p->i++;
      break;
    }
    if (peek(p, 0) == ',') {
      perr(p, p->i, "expected a value in array, found ','");
      return NULL;
    }
    struct node *item = parse_value(p, depth + 1);
    if (item == NULL)
      return NULL;
    arr_push(arr, item);
    skip_ws_nl(p);
    int c = peek(p, 0);
    if (c == ',') {
      p->i++;
    } else if (c == ']') {
      p->i++;
      break;
    } else if (c < 0) {
      perr(p, p->i, "unterminated array: expected ']' to close the array opened at line %d",
           arr->v.line);
      return NULL;
    } else {
      perr(p, p->i, "expected ',' or ']' after array element, found %s",
           describe(p, p->i, b));
      return NULL;
    }
  }
  return steal_pointer(&arr);
}

static struct node *parse_inline_table(struct parser *p, int depth)
{
  size_t start = p->i;
  char b[32];
  if (depth_check(p, depth, start) < 0)
    return NULL;
  cleanup_node struct node *tab = node_at(p, TOML_TABLE, K_TAB_INLINE, start, depth);
  p->i++;
  skip_ws(p);
  if (peek(p, 0) == '}') {
    p->i++;
    return steal_pointer(&tab);
  }
  for (;;) {
    skip_ws(p);
    if (at_eof(p)) {
      perr(p, p->i, "unterminated inline table: expected '}' to close the table opened "
                    "at line %d", tab->v.line);
      return NULL;
    }
    if (at_newline(p) || peek(p, 0) == '#') {
      perr(p, p->i, "inline tables must be on a single line (found %s)",
           peek(p, 0) == '#' ? "a comment" : "a newline");
      return NULL;
    }
    if (peek(p, 0) == '}') {
      perr(p, p->i, "trailing comma is not allowed in an inline table");
      return NULL;
    }
    if (parse_keyval(p, tab) < 0)
      return NULL;
    skip_ws(p);
    int c = peek(p, 0);
    if (c == ',') {
      p->i++;
    } else if (c == '}') {
      p->i++;
      break;
    } else if (c < 0) {
      perr(p, p->i, "unterminated inline table: expected '}' to close the table opened "
                    "at line %d", tab->v.line);
      return NULL;
    } else if (at_newline(p)) {
      perr(p, p->i, "inline tables must be on a single line (found a newline)");
      return NULL;
    } else {
      perr(p, p->i, "expected ',' or '}' after inline table member, found %s",
           describe(p, p->i, b));
      return NULL;
    }
  }
  return steal_pointer(&tab);
}

static struct node *parse_value(struct parser *p, int depth)
{
  size_t start = p->i;
  int c = peek(p, 0);
  char b[32];
  if (c < 0 || c == '\n' || c == '\r' || c == '#') {
    perr(p, start, "expected a value, found %s", c == '#' ? "a comment" : describe(p, start, b));
    return NULL;
  }
  if (c == '"' || c == '\'') {
    int line, col;
    where(p, start, &line, &col);
    if (parse_string(p) < 0)
      return NULL;
    struct node *nd = node_new(TOML_STRING, K_SCALAR, depth, line, col);
    nd->v.u.str.ptr = xmemdup(sbuf_str(&p->buf), p->buf.len);
    nd->v.u.str.len = p->buf.len;
    return nd;
  }
  if (c == '[')
    return parse_array(p, depth);
  if (c == '{')
    return parse_inline_table(p, depth);
  return parse_bare_value(p, depth);
}

/* ---- key/value pairs and headers ---- */

static struct node *new_table(struct parser *p, struct node *parent, const struct keypart *kp,
                              enum node_kind kind, int line, int col)
{
  if (depth_check(p, parent->depth + 1, kp->off) < 0)
    return NULL;
  struct node *t = node_new(TOML_TABLE, kind, parent->depth + 1, line, col);
  tab_add(parent, xmemdup(kp->s, kp->len), kp->len, t);
  return t;
}

/* A dotted key's first parts for a message, led by the current table's name
 * when the key sits under a [header]. */
static char *section_key_text(const struct parser *p, const struct node *tab,
                              const struct keypath *kp, size_t upto)
{
  cleanup_free char *rel = key_text(kp, upto);
  if (tab != p->cur || p->cur_name == NULL)
    return steal_pointer(&rel);
  const char *name = p->cur_name + (p->cur_name[1] == '[' ? 2 : 1);
  size_t len = strlen(name) - (p->cur_name[1] == '[' ? 2 : 1);
  return xasprintf("%.*s.%s", (int)len, name, rel);
}

/* "key = value" at p->i, into table `tab` (the current table, or an inline
 * table being read). */
static int parse_keyval(struct parser *p, struct node *tab)
{
  cleanup_keypath struct keypath kp = {0};
  char b[32];
  if (parse_key(p, &kp, false) < 0)
    return -1;
  if (peek(p, 0) != '=') {
    cleanup_free char *name = key_text(&kp, kp.n);
    return perr(p, p->i, "expected '=' after key \"%s\", found %s", name,
                describe(p, p->i, b));
  }
  p->i++;
  skip_ws(p);

  struct node *t = tab;
  for (size_t k = 0; k + 1 < kp.n; k++) {
    struct keypart *part = &kp.v[k];
    struct node *e = tab_find(t, part->s, part->len);
    if (e == NULL) {
      e = new_table(p, t, part, K_TAB_DOTTED, part->line, part->col);
      if (e == NULL)
        return -1;
    } else if (is_table(e) && e->kind == K_TAB_DOTTED) {
      /* defined by dotted keys in this same table: may be extended */
    } else if (is_table(e) && e->kind == K_TAB_IMPLICIT) {
      /* only created as a parent of a header so far: this defines it */
      e->kind = K_TAB_DOTTED;
      e->v.line = part->line;
      e->v.col = part->col;
    } else {
      cleanup_free char *name = section_key_text(p, tab, &kp, k + 1);
      if (is_table(e) && e->kind == K_TAB_HEADER)
        return perr(p, part->off, "cannot add to table [%s] with dotted keys: it was "
                                  "defined by a [table] header at line %d", name, e->v.line);
      if (is_table(e))
        return perr(p, part->off, "cannot add to inline table \"%s\" (defined at line %d): "
                                  "inline tables cannot be extended", name, e->v.line);
      return perr(p, part->off, "key \"%s\" is already %s (defined at line %d), it cannot "
                                "be used as a table", name, a_type(e), e->v.line);
    }
    t = e;
  }
  struct keypart *last = &kp.v[kp.n - 1];
  struct node *e = tab_find(t, last->s, last->len);
  if (e != NULL) {
    cleanup_free char *name = key_text(&kp, kp.n);
    bool in_section = tab == p->cur && p->cur_name != NULL;
    return perr(p, last->off, "duplicate key \"%s\"%s%s (first defined at line %d)", name,
                in_section ? " in table " : "", in_section ? p->cur_name : "", e->v.line);
  }
  struct node *val = parse_value(p, t->depth + 1);
  if (val == NULL)
    return -1;
  tab_add(t, steal_pointer(&last->s), last->len, val);
  return 0;
}

static int parse_header(struct parser *p)
{
  size_t start = p->i;
  char b[32];
  int line, col;
  where(p, start, &line, &col);
  bool aot = peek(p, 1) == '[';
  p->i += aot ? 2 : 1;
  skip_ws(p);
  cleanup_keypath struct keypath kp = {0};
  if (parse_key(p, &kp, true) < 0)
    return -1;
  if (peek(p, 0) != ']' || (aot && peek(p, 1) != ']')) {
    cleanup_free char *name = key_text(&kp, kp.n);
    return perr(p, p->i, "expected '%s' to close table header %s%s, found %s",
                aot ? "]]" : "]", aot ? "[[" : "[", name, describe(p, p->i, b));
  }
  p->i += aot ? 2 : 1;

  struct node *t = p->root;
  for (size_t k = 0; k + 1 < kp.n; k++) {
    struct keypart *part = &kp.v[k];
    struct node *e = tab_find(t, part->s, part->len);
    if (e == NULL) {
      e = new_table(p, t, part, K_TAB_IMPLICIT, line, col);
      if (e == NULL)
        return -1;
    } else if (is_table(e) && e->kind != K_TAB_INLINE) {
      /* a table defined any other way may get sub-tables */
    } else if (e->kind == K_ARR_TABLES) {
      e = (struct node *)e->v.u.arr.items[e->v.u.arr.len - 1];
    } else {
      cleanup_free char *name = key_text(&kp, k + 1);
      if (is_table(e))
        return perr(p, part->off, "cannot add to inline table \"%s\" (defined at line %d): "
                                  "inline tables cannot be extended", name, e->v.line);
      if (e->kind == K_ARR_STATIC)
        return perr(p, part->off, "cannot add tables to static array \"%s\" (defined at "
                                  "line %d)", name, e->v.line);
      return perr(p, part->off, "key \"%s\" is already %s (defined at line %d), it cannot "
                                "be used as a table", name, a_type(e), e->v.line);
    }
    t = e;
  }

  struct keypart *last = &kp.v[kp.n - 1];
  struct node *e = tab_find(t, last->s, last->len);
  cleanup_free char *name = key_text(&kp, kp.n);
  if (!aot) {
    if (e == NULL) {
      e = new_table(p, t, last, K_TAB_HEADER, line, col);
      if (e == NULL)
        return -1;
    } else if (is_table(e) && e->kind == K_TAB_IMPLICIT) {
      e->kind = K_TAB_HEADER;
      e->v.line = line;
      e->v.col = col;
    } else if (is_table(e) && e->kind == K_TAB_HEADER) {
      return perr(p, start, "table [%s] is defined twice (first defined at line %d)", name,
                  e->v.line);
    } else if (is_table(e) && e->kind == K_TAB_DOTTED) {
      return perr(p, start, "table [%s] was already defined by dotted keys at line %d",
                  name, e->v.line);
    } else if (is_table(e)) {
      return perr(p, start, "table [%s] was already defined as an inline table at line %d",
                  name, e->v.line);
    } else {
      return perr(p, start, "cannot define table [%s]: the key is already %s (defined at "
                            "line %d)", name, a_type(e), e->v.line);
    }
    p->cur = e;
    free(p->cur_name);
    p->cur_name = xasprintf("[%s]", name);
    return 0;
  }
  if (e == NULL) {
    if (depth_check(p, t->depth + 1, last->off) < 0)
      return -1;
    e = node_new(TOML_ARRAY, K_ARR_TABLES, t->depth + 1, line, col);
    tab_add(t, xmemdup(last->s, last->len), last->len, e);
  } else if (e->kind == K_ARR_STATIC) {
    return perr(p, start, "cannot append to static array \"%s\" (defined at line %d) with "
                          "[[%s]]", name, e->v.line, name);
  } else if (e->kind != K_ARR_TABLES) {
    return perr(p, start, "cannot define array of tables [[%s]]: the key is already %s "
                          "(defined at line %d)", name, a_type(e), e->v.line);
  }
  if (depth_check(p, e->depth + 1, last->off) < 0)
    return -1;
  struct node *elem = node_new(TOML_TABLE, K_TAB_HEADER, e->depth + 1, line, col);
  arr_push(e, elem);
  p->cur = elem;
  free(p->cur_name);
  p->cur_name = xasprintf("[[%s]]", name);
  return 0;
}

static int parse_document(struct parser *p)
{
  for (;;) {
    skip_ws(p);
    if (at_eof(p))
      return 0;
    int c = peek(p, 0);
    if (c == '#') {
      skip_comment(p);
      if (expect_eol(p, "comment") < 0)
        return -1;
    } else if (c == '\n' || c == '\r') {
      skip_newline(p);
    } else if (c == '[') {
      if (parse_header(p) < 0 || expect_eol(p, "table header") < 0)
        return -1;
    } else {
      if (parse_keyval(p, p->cur) < 0 || expect_eol(p, "value") < 0)
        return -1;
    }
  }
}

struct toml_value *toml_parse(const char *text, size_t len, const char *filename,
                              struct sp_error **err)
{
  if (text == NULL)
    len = 0;
  struct parser p = {
      .s = text ? text : "",
      .n = len,
      .file = filename ? filename : "<input>",
      .err = err,
      .pc_line = 1,
      .pc_col = 1,
  };
  /* a UTF-8 byte order mark is not part of the document */
  if (p.n >= 3 && memcmp(p.s, "\xef\xbb\xbf", 3) == 0) {
    p.s += 3;
    p.n -= 3;
  }
  p.root = node_new(TOML_TABLE, K_TAB_HEADER, 0, 1, 1);
  p.cur = p.root;
  int rc = check_encoding(&p);
  if (rc == 0)
    rc = parse_document(&p);
  sbuf_release(&p.buf);
  free(p.cur_name);
  if (p.cloc != (locale_t)0)
    freelocale(p.cloc);
  if (rc < 0) {
    node_free(p.root);
    return NULL;
  }
  return &p.root->v;
}
