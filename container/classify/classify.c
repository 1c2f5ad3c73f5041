#include "classify.h"

#define PCRE2_CODE_UNIT_WIDTH 8

#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "str.h"
#include "toml.h"
#include "util.h"

/* A JSON log line is parsed whole up to this size (stacks make them long). */
#define PINO_LINE_MAX (64 * 1024)
/* Bytes of input examined when cleaning a line (escape sequences may make a
 * line much longer than what it shows). */
#define CLEAN_SCAN_MAX (2 * PINO_LINE_MAX)
/* A block longer than this is emitted (or dropped) whatever follows. */
#define BLOCK_MAX_LINES 5000
/* A block with no rule match yet (a throw-site header, a code frame) is
 * dropped when it grows longer than this. */
#define TENTATIVE_MAX_LINES 400
/* Blank lines a block may contain in a row. */
#define BLANKS_MAX 2

#define MATCH_LIMIT 200000
#define DEPTH_LIMIT 2000
#define HEAP_LIMIT_KIB 8192
#define JIT_STACK_MAX (512 * 1024)

/* Literals are at least this long, so that the prefilter need only look at
 * every second position (each literal is indexed at offsets 0 and 1). */
#define LITERAL_MIN 4

static const char *const categories[] = {
    "syntax",  "type",   "module-resolution", "runtime", "network", "port-in-use",
    "memory",  "dependency", "build",         "warning",
};

static const char *const known_tools[] = {
    "vite", "esbuild", "typescript", "react", "nextjs", "node",
    "npm",  "pnpm",    "bun",        "python", "pino",
};

enum rule_context { CTX_ANY, CTX_PYTHON_TRACEBACK };

struct rule {
  char *name, *tool, *category, *severity;
  pcre2_code *re;
  /* group numbers of the named captures (several when a name is repeated in
   * alternatives); 0 terminates */
  uint32_t g_file[4], g_line[4], g_column[4], g_message[4];
  bool restart, generic, keep_tool, wrapper, unfiltered;
  enum rule_context ctx;
};

/* A literal some rule's pattern requires, lower-cased, indexed by the three
 * bytes at offset `off` (0 or 1). */
struct literal {
  uint32_t key;
  uint32_t rule; /* index of the rule, or of the benign pattern */
  uint32_t off;
  bool benign;
  bool owner; /* frees s */
  size_t len;
  unsigned char *s;
};

struct benign {
  pcre2_code *re;
  bool unfiltered;
};

struct classify_rules {
  struct rule *rules;
  size_t nrules;
  struct benign *benign;
  size_t nbenign;
  struct literal *lits; /* sorted by key */
  size_t nlits;
  size_t nunfiltered; /* rules without a literal: tried on every line */
  uint8_t keybits[32768 / 8]; /* the keys of all literals */
  uint32_t max_groups;
};

enum mode {
  MODE_NORMAL,
  MODE_PYTHON,     /* inside a traceback, before its final line */
  MODE_PYTHON_END, /* after the final line: only a chained traceback follows */
  MODE_NPM,        /* npm ERR! block */
};

enum loc_rank {
  RANK_CAPTURE = 1,  /* from the event's own line */
  RANK_LOCATION = 2, /* a location line, a throw-site header, File: */
  RANK_FRAME = 3,    /* an in-project stack frame */
  RANK_OTHER = 4,    /* a frame outside the project (node_modules) */
  RANK_NONE = 100,
};

struct pending {
  bool active;
  bool classified; /* a rule matched; otherwise tentative */
  bool generic, keep_tool, restart, merged;
  const char *rule, *tool, *category, *severity;
  char *message;
  char *file;
  int line, column;
  int rank;
  struct sbuf raw;
  int raw_lines;
  size_t lines;
  int blanks; /* blank lines held back until the block continues */
  struct sbuf held; /* a plain line held back: kept if a frame follows */
  struct sbuf last; /* the block's last line (short ones only) */
  bool bun_frame;   /* the block began with a code frame (Bun's style) */
  bool source_next; /* a throw-site header: its source line comes next */
  bool header_loc;  /* the location is a throw-site header's (no column) */
  bool had_frame;   /* a stack frame was seen */
  bool py_group;    /* a Python exception group (lines behind a gutter) */
  int depth;        /* inside a dumped error object "{ code: 'X', ... }" */
  int depth_lines;
  enum mode mode;
  int64_t last_ms;
};

/* One successful rule match, pointing into the classified line. */
struct match {
  const char *rule, *tool, *category, *severity;
  bool generic, keep_tool, restart;
  const char *file, *msg;
  size_t file_len, msg_len;
  int line, column;
};

struct classifier {
  const struct classify_rules *r;
  pcre2_match_data *md;
  pcre2_match_context *mctx;
  pcre2_jit_stack *jit;
  uint32_t *cand; /* cand[i] == gen: rule i passed the prefilter */
  uint32_t *bcand; /* the same for benign patterns */
  uint32_t gen;
  struct sbuf clean;
  struct pending p;
  /* A match continue_block() found for a line that starts a new event. */
  struct match carry;
  bool has_carry;
};

/* ASCII lower case (bytes above 0x7f are left alone). */
static inline unsigned char fold(unsigned char c)
{
  return (unsigned char)(c + (((unsigned)c - 'A' < 26u) << 5));
}

/* The prefilter's key for three bytes: their low five bits, which ignore
 * ASCII case without folding (other bytes collide, which only costs a
 * rare needless check). */
static inline uint32_t key3(unsigned char a, unsigned char b, unsigned char c)
{
  return ((uint32_t)(a & 0x1f) << 10) | ((uint32_t)(b & 0x1f) << 5) | (c & 0x1f);
}

/* ------------------------------------------------------------------------ */
/* Text helpers                                                             */

static bool is_space(unsigned char c) { return c == ' ' || c == '\t'; }
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static bool is_alnum(unsigned char c) { return is_alpha(c) || is_digit(c); }
static bool is_hex(unsigned char c)
{
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool has_prefix(const char *s, size_t n, const char *prefix)
{
  size_t k = strlen(prefix);
  return n >= k && memcmp(s, prefix, k) == 0;
}

static const char *skip_ws(const char *s, const char *end)
{
  while (s < end && is_space((unsigned char)*s))
    s++;
  return s;
}

static void trim(const char **s, size_t *n)
{
  while (*n > 0 && is_space((unsigned char)**s)) {
    (*s)++;
    (*n)--;
  }
  while (*n > 0 && is_space((unsigned char)(*s)[*n - 1]))
    (*n)--;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  size_t k;
  unsigned int cp, min;
  if (c >= 0xc2 && c <= 0xdf) {
    k = 1, cp = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    k = 2, cp = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    k = 3, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (n <= k)
    return 0;
  for (size_t i = 1; i <= k; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return k + 1;
}

/* Append s as valid UTF-8 without control characters other than tab: line
 * breaks become spaces, other controls and invalid bytes U+FFFD. */
static void add_utf8(struct sbuf *sb, const char *str, size_t n)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, run = 0;
  sbuf_grow(sb, n);
  while (i < n) {
    unsigned char c = s[i];
    if (c >= 0x20 && c < 0x7f) {
      i++;
      continue;
    }
    size_t k = c == '\t' ? 1 : (c < 0x20 || c == 0x7f) ? 0 : utf8_seq(s + i, n - i);
    if (k > 0) {
      i += k;
      continue;
    }
    sbuf_add(sb, s + run, i - run);
    if (c == '\n' || c == '\r' || c == '\v' || c == '\f')
      sbuf_addch(sb, ' ');
    else
      sbuf_add(sb, "\xef\xbf\xbd", 3);
    i++;
    run = i;
  }
  sbuf_add(sb, s + run, n - run);
}

static char *dup_utf8(const char *s, size_t n)
{
  struct sbuf sb = SBUF_INIT;
  add_utf8(&sb, s, n);
  return sbuf_detach(&sb, NULL);
}

/* Remove ANSI escape sequences and other control characters (but tab), and
 * apply carriage-return overwrites (what follows the last CR wins).  Appends
 * to `out`; returns the offset in out->buf where the visible text starts. */
static size_t strip_into(struct sbuf *out, const char *str, size_t n,
                         size_t max_out)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t base = out->len;
  size_t seg = base, prev = base;
  size_t i = 0;
  sbuf_grow(out, n); /* every CR segment may be up to max_out long */
  while (i < n) {
    unsigned char c = s[i];
    if (c == 0x1b) {
      i++;
      if (i >= n)
        break;
      unsigned char t = s[i++];
      if (t == '[') {
        while (i < n && !(s[i] >= 0x40 && s[i] <= 0x7e))
          i++;
        if (i < n)
          i++;
      } else if (t == ']' || t == 'P' || t == 'X' || t == '^' || t == '_') {
        while (i < n) {
          if (s[i] == 0x07) {
            i++;
            break;
          }
          if (s[i] == 0x1b && i + 1 < n && s[i + 1] == '\\') {
            i += 2;
            break;
          }
          i++;
        }
      } else if (t >= 0x20 && t <= 0x2f) {
        while (i < n && s[i] >= 0x20 && s[i] <= 0x2f)
          i++;
        if (i < n)
          i++;
      }
      continue;
    }
    if (c == '\r') {
      if (out->len > seg) {
        prev = seg;
        seg = out->len;
      }
      i++;
      continue;
    }
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      i++;
      continue;
    }
    if (out->len - seg < max_out) {
      out->buf[out->len++] = (char)c;
    }
    i++;
  }
  out->buf[out->len] = '\0';
  if (out->len > seg)
    return seg;
  /* The last segment is empty ("text\r"): the previous one is what shows. */
  out->len = seg;
  out->buf[out->len] = '\0';
  return prev;
}

/* The visible text of a line, at most PINO_LINE_MAX bytes (callers classify
 * only the first CLASSIFY_LINE_MAX).  Returns the input itself when there is
 * nothing to strip. */
static const char *clean_line(struct classifier *c, const char *line, size_t len,
                              size_t *out_len)
{
  size_t n = len;
  bool special = false;
  size_t i = 0;
  /* Eight bytes at a time: does any byte fall below 0x20 or equal 0x7f? */
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    memcpy(&x, line + i, 8);
    uint64_t low = (x - 0x2020202020202020ull) & ~x & 0x8080808080808080ull;
    uint64_t y = x ^ 0x7f7f7f7f7f7f7f7full;
    uint64_t del = (y - 0x0101010101010101ull) & ~y & 0x8080808080808080ull;
    if (low | del)
      break;
  }
  for (; i < n; i++) {
    unsigned char ch = (unsigned char)line[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
      special = true;
      break;
    }
  }
  if (!special) {
    *out_len = SP_MIN(n, PINO_LINE_MAX);
    return line;
  }
  if (n > CLEAN_SCAN_MAX)
    n = CLEAN_SCAN_MAX;
  sbuf_reset(&c->clean);
  size_t start = strip_into(&c->clean, line, n, PINO_LINE_MAX);
  *out_len = c->clean.len - start;
  return c->clean.buf + start;
}

/* ------------------------------------------------------------------------ */
/* Literal extraction for the prefilter                                     */

static const char *class_end(const char *p, const char *end)
{
  p++; /* '[' */
  if (p < end && *p == '^')
    p++;
  if (p < end && *p == ']')
    p++;
  while (p < end) {
    if (*p == '\\') {
      p += 2;
      continue;
    }
    if (*p == '[' && p + 1 < end && p[1] == ':') {
      const char *q = p + 2;
      while (q + 1 < end && !(q[0] == ':' && q[1] == ']'))
        q++;
      if (q + 1 < end) {
        p = q + 2;
        continue;
      }
    }
    if (*p == ']')
      return p;
    p++;
  }
  return NULL;
}

static const char *group_end(const char *p, const char *end)
{
  int depth = 0;
  while (p < end) {
    if (*p == '\\') {
      p += 2;
      continue;
    }
    if (*p == '[') {
      p = class_end(p, end);
      if (p == NULL)
        return NULL;
      p++;
      continue;
    }
    if (*p == '(')
      depth++;
    else if (*p == ')' && --depth == 0)
      return p;
    p++;
  }
  return NULL;
}

/* Is there a '|' at the top level of [p, end)?  Fills `branches` with the
 * starts of the alternatives (at most max) and returns their number, or 0 if
 * the pattern cannot be scanned. */
static size_t split_branches(const char *p, const char *end, const char **starts,
                             const char **ends, size_t max)
{
  size_t n = 0;
  starts[n] = p;
  while (p < end) {
    if (*p == '\\') {
      p += 2;
      continue;
    }
    if (*p == '[') {
      p = class_end(p, end);
      if (p == NULL)
        return 0;
      p++;
      continue;
    }
    if (*p == '(') {
      p = group_end(p, end);
      if (p == NULL)
        return 0;
      p++;
      continue;
    }
    if (*p == '|') {
      ends[n++] = p;
      if (n == max)
        return 0;
      starts[n] = p + 1;
    }
    p++;
  }
  ends[n++] = end;
  return n;
}

/* Parse a quantifier at p; returns its length (0 if none) and whether it
 * allows zero repetitions. */
static size_t quantifier(const char *p, const char *end, bool *optional)
{
  if (p >= end)
    return 0;
  size_t k = 0;
  if (*p == '?' || *p == '*') {
    *optional = true;
    k = 1;
  } else if (*p == '+') {
    *optional = false;
    k = 1;
  } else if (*p == '{') {
    const char *q = p + 1;
    const char *d = q;
    while (q < end && is_digit((unsigned char)*q))
      q++;
    if (q == d)
      return 0;
    bool zero = (q - d == 1 && *d == '0');
    if (q < end && *q == ',') {
      q++;
      while (q < end && is_digit((unsigned char)*q))
        q++;
    }
    if (q >= end || *q != '}')
      return 0;
    *optional = zero;
    k = (size_t)(q + 1 - p);
  } else {
    return 0;
  }
  if (p + k < end && (p[k] == '?' || p[k] == '+'))
    k++;
  return k;
}

/* A set of literals of which every match contains at least one. */
#define LITS_MAX 16
struct lits {
  size_t n;
  struct sbuf s[LITS_MAX];
};

/* How selective a set is: its shortest literal. */
static size_t lits_quality(const struct lits *l)
{
  size_t q = SIZE_MAX;
  for (size_t i = 0; i < l->n; i++)
    q = SP_MIN(q, l->s[i].len);
  return l->n ? q : 0;
}

static void lits_release(struct lits *l)
{
  for (size_t i = 0; i < l->n; i++)
    sbuf_release(&l->s[i]);
  l->n = 0;
}

static void lits_consider(struct lits *best, struct lits *cand)
{
  if (lits_quality(cand) > lits_quality(best)) {
    lits_release(best);
    *best = *cand;
    cand->n = 0;
  }
  lits_release(cand);
}

/* End a run of literal bytes: keep it if it beats the best so far. */
static void run_break(struct sbuf *run, struct lits *best)
{
  if (run->len > lits_quality(best)) {
    struct lits one = {.n = 1};
    sbuf_add(&one.s[0], run->buf, run->len);
    lits_consider(best, &one);
  }
  sbuf_reset(run);
}

static void scan_seq(const char *p, const char *end, struct sbuf *run, struct lits *best,
                     int depth);

/* The literals of an alternation: the best set of every branch, united.
 * False if some branch has nothing selective. */
static bool branch_set(const char *p, const char *end, struct lits *out, int depth)
{
  const char *bs[LITS_MAX], *be[LITS_MAX];
  size_t nb = split_branches(p, end, bs, be, LITS_MAX);
  if (nb == 0 || depth > 16)
    return false;
  for (size_t i = 0; i < nb; i++) {
    struct lits b = {0};
    struct sbuf run = SBUF_INIT;
    scan_seq(bs[i], be[i], &run, &b, depth + 1);
    run_break(&run, &b);
    sbuf_release(&run);
    if (lits_quality(&b) < LITERAL_MIN || out->n + b.n > LITS_MAX) {
      lits_release(&b);
      return false;
    }
    for (size_t k = 0; k < b.n; k++)
      out->s[out->n++] = b.s[k];
    b.n = 0;
  }
  return true;
}

/* Scan a sequence (no top-level alternation) for the literal bytes every
 * match must contain.  `run` is the literal run under way: a group without
 * a quantifier continues it. */
static void scan_seq(const char *p, const char *end, struct sbuf *run, struct lits *best,
                     int depth)
{
  while (p < end) {
    bool lit = false;
    char ch = 0;
    bool opt = false;
    if (*p == '\\') {
      if (p + 1 >= end)
        break;
      unsigned char e = (unsigned char)p[1];
      p += 2;
      if (is_alnum(e)) {
        if (e == 'Q') {
          /* \Q...\E: literal, but rare here; treat as opaque */
          while (p + 1 < end && !(p[0] == '\\' && p[1] == 'E'))
            p++;
          p = p + 1 < end ? p + 2 : end;
        } else if (p < end && (*p == '{' || *p == '<' || *p == '\'') &&
                   strchr("xopPgkN", e)) {
          char close = *p == '{' ? '}' : *p == '<' ? '>' : '\'';
          while (p < end && *p != close)
            p++;
          if (p < end)
            p++;
        } else if (e == 'x') {
          for (int k = 0; k < 2 && p < end && is_hex((unsigned char)*p); k++)
            p++;
        } else if (e == 'c' && p < end) {
          p++;
        }
      } else {
        lit = true;
        ch = (char)e;
      }
    } else if (*p == '[') {
      const char *q = class_end(p, end);
      p = q ? q + 1 : end;
    } else if (*p == '(') {
      const char *q = group_end(p, end);
      if (q == NULL)
        break;
      const char *in = p + 1;
      bool use = true;
      if (in < q && *in == '?') {
        if (in + 1 >= q) {
          use = false;
        } else if (in[1] == ':' || in[1] == '>') {
          in += 2;
        } else if (in[1] == '=' || in[1] == '!' || in[1] == '#' || in[1] == '|') {
          use = false;
        } else if (in[1] == '<' && in + 2 < q && (in[2] == '=' || in[2] == '!')) {
          use = false;
        } else if (in[1] == '<' || in[1] == '\'' || in[1] == 'P') {
          const char *r = in + 2;
          while (r < q && *r != '>' && *r != '\'')
            r++;
          in = r + 1;
        } else {
          const char *f = in + 1;
          while (f < q && (is_alpha((unsigned char)*f) || *f == '-' || *f == '^'))
            f++;
          if (f < q && *f == ':')
            in = f + 1;
          else
            use = false; /* (?i): flags only */
        }
      } else if (in < q && *in == '*') {
        use = false; /* (*VERB) */
      }
      p = q + 1;
      size_t k = quantifier(p, end, &opt);
      p += k;
      if (!use || (k > 0 && opt) || in > q || depth > 16) {
        run_break(run, best);
        continue;
      }
      const char *bs[2], *be[2];
      if (split_branches(in, q, bs, be, 2) != 1) {
        run_break(run, best);
        struct lits set = {0};
        if (branch_set(in, q, &set, depth + 1))
          lits_consider(best, &set);
        else
          lits_release(&set);
        continue;
      }
      if (k > 0)
        run_break(run, best);
      scan_seq(in, q, run, best, depth + 1);
      if (k > 0)
        run_break(run, best);
      continue;
    } else if (*p == '.' || *p == '^' || *p == '$' || *p == '|') {
      p++;
    } else {
      bool o;
      size_t k = quantifier(p, end, &o);
      if (k > 0) {
        p += k; /* stray quantifier: cannot happen in a valid pattern */
      } else {
        lit = true;
        ch = *p++;
      }
    }
    if (lit) {
      size_t k = quantifier(p, end, &opt);
      if (k == 0) {
        sbuf_addch(run, (char)fold((unsigned char)ch));
        continue;
      }
      p += k;
      if (!opt)
        sbuf_addch(run, (char)fold((unsigned char)ch));
    } else {
      p += quantifier(p, end, &opt);
    }
    run_break(run, best);
  }
}

/* Add the literals of rule (or benign pattern) `idx` to the prefilter, or
 * mark it unfiltered. */
static void add_literals(struct classify_rules *r, uint32_t idx, bool benign,
                         const char *pat, size_t len)
{
  struct lits best = {0};
  bool ok = memmem(pat, len, "(?x", 3) == NULL && memmem(pat, len, "(*", 2) == NULL;
  if (ok)
    ok = branch_set(pat, pat + len, &best, 0) && lits_quality(&best) >= LITERAL_MIN;
  for (size_t i = 0; ok && i < best.n; i++) {
    r->lits = xreallocarray(r->lits, r->nlits + 2, sizeof *r->lits);
    size_t len = best.s[i].len;
    unsigned char *lit = (unsigned char *)sbuf_detach(&best.s[i], NULL);
    for (uint32_t off = 0; off < 2; off++) {
      struct literal *l = &r->lits[r->nlits++];
      l->len = len;
      l->s = lit;
      l->owner = off == 0;
      l->rule = idx;
      l->benign = benign;
      l->off = off;
      l->key = key3(lit[off], lit[off + 1], lit[off + 2]);
    }
  }
  lits_release(&best);
  if (!ok && benign) {
    r->benign[idx].unfiltered = true;
  } else if (!ok) {
    r->nunfiltered++;
    r->rules[idx].unfiltered = true;
  }
}

static int lit_cmp(const void *a, const void *b)
{
  const struct literal *x = a, *y = b;
  if (x->key != y->key)
    return x->key < y->key ? -1 : 1;
  return x->rule < y->rule ? -1 : x->rule > y->rule;
}

static void prefilter_build(struct classify_rules *r)
{
  if (r->nlits > 1)
    qsort(r->lits, r->nlits, sizeof *r->lits, lit_cmp);
  for (size_t i = 0; i < r->nlits; i++) {
    uint32_t k = r->lits[i].key;
    r->keybits[k >> 3] |= (uint8_t)(1u << (k & 7));
  }
}

/* Mark in c->cand the rules whose literal occurs in s; returns whether any
 * rule (filtered or not) is worth trying.  Every literal is at least
 * LITERAL_MIN bytes long and indexed at offsets 0 and 1, so an occurrence
 * starting at position p is seen from the trigram at p or at p + 1,
 * whichever is even: the scan looks at every second position only. */
static bool prefilter(struct classifier *c, const char *str, size_t n)
{
  const struct classify_rules *r = c->r;
  const unsigned char *s = (const unsigned char *)str;
  bool any = r->nunfiltered > 0;
  if (++c->gen == 0) {
    memset(c->cand, 0, r->nrules * sizeof *c->cand);
    memset(c->bcand, 0, r->nbenign * sizeof *c->bcand);
    c->gen = 1;
  }
  if (n < LITERAL_MIN || r->nlits == 0)
    return any;
  for (size_t i = 0; i + 2 < n; i += 2) {
    uint32_t k = key3(s[i], s[i + 1], s[i + 2]);
    if (!(r->keybits[k >> 3] & (1u << (k & 7))))
      continue;
    /* binary search for the first literal with this key */
    size_t lo = 0, hi = r->nlits;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (r->lits[mid].key < k)
        lo = mid + 1;
      else
        hi = mid;
    }
    for (; lo < r->nlits && r->lits[lo].key == k; lo++) {
      const struct literal *l = &r->lits[lo];
      uint32_t *cand = l->benign ? c->bcand : c->cand;
      if (cand[l->rule] == c->gen || i < l->off)
        continue;
      size_t at = i - l->off;
      if (l->len > n - at)
        continue;
      size_t j = 0;
      while (j < l->len && fold(s[at + j]) == l->s[j])
        j++;
      if (j == l->len) {
        cand[l->rule] = c->gen;
        any = any || !l->benign;
      }
    }
  }
  return any;
}

/* ------------------------------------------------------------------------ */
/* Rules                                                                    */

/* "FILE:LINE: WHAT: message"; WHAT names the entry (rule "x", benign #2). */
static int rules_error(struct sp_error **err, const char *file, int line,
                       const char *what, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int rules_error(struct sp_error **err, const char *file, int line,
                       const char *what, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *msg = xvasprintf(fmt, ap);
  va_end(ap);
  if (what)
    sp_error_code(err, "INVALID_RULES", 500, "%s:%d: %s: %s", file, line, what, msg);
  else
    sp_error_code(err, "INVALID_RULES", 500, "%s:%d: %s", file, line, msg);
  free(msg);
  return -1;
}

static void rule_release(struct rule *ru)
{
  free(ru->name);
  free(ru->tool);
  free(ru->category);
  free(ru->severity);
  pcre2_code_free(ru->re);
}

void classify_rules_free(struct classify_rules *r)
{
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->nrules; i++)
    rule_release(&r->rules[i]);
  free(r->rules);
  for (size_t i = 0; i < r->nbenign; i++)
    pcre2_code_free(r->benign[i].re);
  free(r->benign);
  for (size_t i = 0; i < r->nlits; i++)
    if (r->lits[i].owner)
      free(r->lits[i].s);
  free(r->lits);
  free(r);
}

size_t classify_rules_count(const struct classify_rules *r)
{
  return r ? r->nrules : 0;
}

size_t classify_rules_unfiltered(const struct classify_rules *r)
{
  return r ? r->nunfiltered : 0;
}

static void rules_cleanup(struct classify_rules **r) { classify_rules_free(*r); }
#define cleanup_rules __attribute__((cleanup(rules_cleanup)))

/* Compile a pattern; JIT when available. */
static pcre2_code *compile(const struct toml_value *v, const char *file,
                           const char *what, struct sp_error **err)
{
  int code;
  PCRE2_SIZE off;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)v->u.str.ptr, v->u.str.len,
                                 PCRE2_DUPNAMES | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP,
                                 &code, &off, NULL);
  if (re == NULL) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    rules_error(err, file, v->line, what, "bad pattern at offset %zu: %s",
                (size_t)off, (const char *)msg);
    return NULL;
  }
  (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* interpreter otherwise */
  return re;
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(s, list[i]) == 0)
      return true;
  return false;
}

static int get_string(const struct toml_value *tab, const char *key, bool required,
                      const char *file, const char *what,
                      const struct toml_value **out, struct sp_error **err)
{
  const struct toml_value *v = toml_table_get(tab, key);
  *out = NULL;
  if (v == NULL) {
    if (required)
      return rules_error(err, file, tab->line, what, "missing key \"%s\"", key);
    return 0;
  }
  if (v->type != TOML_STRING)
    return rules_error(err, file, v->line, what, "\"%s\" must be a string, not %s",
                       key, toml_type_name(v->type));
  if (v->u.str.len == 0 || strlen(v->u.str.ptr) != v->u.str.len)
    return rules_error(err, file, v->line, what, "\"%s\" must be a non-empty string",
                       key);
  *out = v;
  return 0;
}

static int get_bool(const struct toml_value *tab, const char *key, const char *file,
                    const char *what, bool *out, struct sp_error **err)
{
  const struct toml_value *v = toml_table_get(tab, key);
  *out = false;
  if (v == NULL)
    return 0;
  if (v->type != TOML_BOOL)
    return rules_error(err, file, v->line, what, "\"%s\" must be a boolean, not %s",
                       key, toml_type_name(v->type));
  *out = v->u.b;
  return 0;
}

/* Record the group numbers of the named captures. */
static int named_groups(struct rule *ru, const char *what, const char *file, int line,
                        struct sp_error **err)
{
  uint32_t count = 0, size = 0;
  PCRE2_SPTR table = NULL;
  pcre2_pattern_info(ru->re, PCRE2_INFO_NAMECOUNT, &count);
  if (count == 0)
    return 0;
  pcre2_pattern_info(ru->re, PCRE2_INFO_NAMEENTRYSIZE, &size);
  pcre2_pattern_info(ru->re, PCRE2_INFO_NAMETABLE, &table);
  for (uint32_t i = 0; i < count; i++) {
    const unsigned char *e = table + (size_t)i * size;
    uint32_t num = ((uint32_t)e[0] << 8) | e[1];
    const char *name = (const char *)e + 2;
    uint32_t *slot;
    if (strcmp(name, "file") == 0)
      slot = ru->g_file;
    else if (strcmp(name, "line") == 0)
      slot = ru->g_line;
    else if (strcmp(name, "column") == 0)
      slot = ru->g_column;
    else if (strcmp(name, "message") == 0)
      slot = ru->g_message;
    else
      return rules_error(err, file, line, what,
                         "unknown capture name \"%s\" (file, line, column, message)",
                         name);
    for (int k = 0; k < 3; k++) {
      if (slot[k] == 0) {
        slot[k] = num;
        break;
      }
    }
  }
  return 0;
}

static int parse_rule(struct classify_rules *r, const struct toml_value *tab,
                      size_t index, const char *file, struct sp_error **err)
{
  static const char *const keys[] = {"name",      "tool",    "category", "severity",
                                     "pattern",   "restart", "generic",  "keep_tool",
                                     "wrapper",   "context"};
  char what[160];
  snprintf(what, sizeof what, "rule #%zu", index + 1);
  if (tab->type != TOML_TABLE)
    return rules_error(err, file, tab->line, what, "must be a table");
  const struct toml_value *name, *tool, *cat, *sev, *pat, *ctx;
  if (get_string(tab, "name", true, file, what, &name, err) < 0)
    return -1;
  const char *rname = name->u.str.ptr;
  snprintf(what, sizeof what, "rule \"%.120s\"", rname);
  for (size_t i = 0; i < tab->u.tab.len; i++) {
    const struct toml_kv *kv = &tab->u.tab.items[i];
    if (!in_list(kv->key, keys, SP_ARRAY_SIZE(keys)))
      return rules_error(err, file, kv->value->line, what, "unknown key \"%s\"",
                         kv->key);
  }
  for (size_t i = 0; i < r->nrules; i++)
    if (strcmp(r->rules[i].name, rname) == 0)
      return rules_error(err, file, name->line, what, "duplicate rule name");
  if (get_string(tab, "tool", true, file, what, &tool, err) < 0 ||
      get_string(tab, "category", true, file, what, &cat, err) < 0 ||
      get_string(tab, "severity", false, file, what, &sev, err) < 0 ||
      get_string(tab, "pattern", true, file, what, &pat, err) < 0 ||
      get_string(tab, "context", false, file, what, &ctx, err) < 0)
    return -1;
  for (const char *t = tool->u.str.ptr; *t; t++)
    if (!(is_alnum((unsigned char)*t) || *t == '-' || *t == '_' || *t == '.'))
      return rules_error(err, file, tool->line, what, "bad tool name \"%s\"",
                         tool->u.str.ptr);
  if (!in_list(cat->u.str.ptr, categories, SP_ARRAY_SIZE(categories)))
    return rules_error(err, file, cat->line, what, "unknown category \"%s\"",
                       cat->u.str.ptr);
  const char *severity = sev ? sev->u.str.ptr : "error";
  if (strcmp(severity, "error") != 0 && strcmp(severity, "warning") != 0)
    return rules_error(err, file, sev->line, what,
                       "severity must be \"error\" or \"warning\", not \"%s\"",
                       severity);
  enum rule_context context = CTX_ANY;
  if (ctx && strcmp(ctx->u.str.ptr, "python-traceback") == 0)
    context = CTX_PYTHON_TRACEBACK;
  else if (ctx && strcmp(ctx->u.str.ptr, "any") != 0)
    return rules_error(err, file, ctx->line, what,
                       "context must be \"any\" or \"python-traceback\", not \"%s\"",
                       ctx->u.str.ptr);
  struct rule ru = {0};
  if (get_bool(tab, "restart", file, what, &ru.restart, err) < 0 ||
      get_bool(tab, "generic", file, what, &ru.generic, err) < 0 ||
      get_bool(tab, "keep_tool", file, what, &ru.keep_tool, err) < 0 ||
      get_bool(tab, "wrapper", file, what, &ru.wrapper, err) < 0)
    return -1;
  ru.re = compile(pat, file, what, err);
  if (ru.re == NULL)
    return -1;
  ru.name = xstrdup(rname);
  ru.tool = xstrdup(tool->u.str.ptr);
  ru.category = xstrdup(cat->u.str.ptr);
  ru.severity = xstrdup(severity);
  ru.ctx = context;
  if (named_groups(&ru, what, file, pat->line, err) < 0) {
    rule_release(&ru);
    return -1;
  }
  uint32_t groups = 0;
  pcre2_pattern_info(ru.re, PCRE2_INFO_CAPTURECOUNT, &groups);
  if (groups + 1 > r->max_groups)
    r->max_groups = groups + 1;
  r->rules = xreallocarray(r->rules, r->nrules + 1, sizeof *r->rules);
  r->rules[r->nrules] = ru;
  /* Python-traceback rules run only on a traceback's last line, which is
   * found without the prefilter. */
  if (context == CTX_ANY)
    add_literals(r, (uint32_t)r->nrules, false, pat->u.str.ptr, pat->u.str.len);
  r->nrules++;
  return 0;
}

static int parse_benign(struct classify_rules *r, const struct toml_value *tab,
                        size_t index, const char *file, struct sp_error **err)
{
  char label[160];
  snprintf(label, sizeof label, "benign #%zu", index + 1);
  if (tab->type != TOML_TABLE)
    return rules_error(err, file, tab->line, label, "must be a table");
  for (size_t i = 0; i < tab->u.tab.len; i++) {
    const struct toml_kv *kv = &tab->u.tab.items[i];
    if (strcmp(kv->key, "pattern") != 0 && strcmp(kv->key, "name") != 0)
      return rules_error(err, file, kv->value->line, label, "unknown key \"%s\"",
                         kv->key);
  }
  const struct toml_value *name, *pat;
  if (get_string(tab, "name", false, file, label, &name, err) < 0)
    return -1;
  if (name)
    snprintf(label, sizeof label, "benign \"%.120s\"", name->u.str.ptr);
  if (get_string(tab, "pattern", true, file, label, &pat, err) < 0)
    return -1;
  pcre2_code *re = compile(pat, file, label, err);
  if (re == NULL)
    return -1;
  r->benign = xreallocarray(r->benign, r->nbenign + 1, sizeof *r->benign);
  r->benign[r->nbenign] = (struct benign){.re = re};
  add_literals(r, (uint32_t)r->nbenign, true, pat->u.str.ptr, pat->u.str.len);
  r->nbenign++;
  return 0;
}

struct classify_rules *classify_rules_parse(const char *text, size_t len,
                                            const char *name,
                                            struct sp_error **err)
{
  if (name == NULL)
    name = "<rules>";
  cleanup_toml struct toml_value *doc = toml_parse(text, len, name, err);
  if (doc == NULL)
    return NULL;
  cleanup_rules struct classify_rules *r = xcalloc(1, sizeof *r);
  r->max_groups = 1;
  for (size_t i = 0; i < doc->u.tab.len; i++) {
    const struct toml_kv *kv = &doc->u.tab.items[i];
    bool is_rule = strcmp(kv->key, "rule") == 0;
    if (!is_rule && strcmp(kv->key, "benign") != 0) {
      rules_error(err, name, kv->value->line, NULL,
                  "unknown key \"%s\" (expected [[rule]] or [[benign]])", kv->key);
      return NULL;
    }
    if (kv->value->type != TOML_ARRAY) {
      rules_error(err, name, kv->value->line, NULL,
                  "\"%s\" must be an array of tables ([[%s]])", kv->key, kv->key);
      return NULL;
    }
    for (size_t k = 0; k < kv->value->u.arr.len; k++) {
      const struct toml_value *t = kv->value->u.arr.items[k];
      int rc = is_rule ? parse_rule(r, t, k, name, err)
                       : parse_benign(r, t, k, name, err);
      if (rc < 0)
        return NULL;
    }
  }
  if (r->nrules == 0) {
    rules_error(err, name, 1, NULL, "no [[rule]] defined");
    return NULL;
  }
  prefilter_build(r);
  return steal_pointer(&r);
}

struct classify_rules *classify_rules_load(const char *path, struct sp_error **err)
{
  size_t len;
  cleanup_free char *text = sp_read_file(path, 8 << 20, &len, err);
  if (text == NULL)
    return NULL;
  return classify_rules_parse(text, len, path, err);
}

/* ------------------------------------------------------------------------ */
/* Matching                                                                 */

static bool run(struct classifier *c, const pcre2_code *re, const char *s, size_t n)
{
  int rc = pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, c->md, c->mctx);
  return rc > 0;
}

static bool group(struct classifier *c, const uint32_t *g, const char *s,
                  const char **out, size_t *len)
{
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
  uint32_t max = pcre2_get_ovector_count(c->md);
  for (int k = 0; k < 4 && g[k] != 0; k++) {
    if (g[k] >= max || ov[2 * g[k]] == PCRE2_UNSET)
      continue;
    *out = s + ov[2 * g[k]];
    *len = ov[2 * g[k] + 1] - ov[2 * g[k]];
    return true;
  }
  return false;
}

static int group_int(struct classifier *c, const uint32_t *g, const char *s)
{
  const char *p;
  size_t n;
  if (!group(c, g, s, &p, &n))
    return 0;
  long v = 0;
  for (size_t i = 0; i < n && is_digit((unsigned char)p[i]); i++) {
    v = v * 10 + (p[i] - '0');
    if (v > 100000000)
      return 0;
  }
  return (int)v;
}

/* Does a benign pattern match s?  The prefilter has just seen s. */
static bool benign(struct classifier *c, const char *s, size_t n)
{
  for (size_t i = 0; i < c->r->nbenign; i++) {
    const struct benign *b = &c->r->benign[i];
    if ((c->bcand[i] == c->gen || b->unfiltered) && run(c, b->re, s, n))
      return true;
  }
  return false;
}

static void fill_match(struct classifier *c, const struct rule *ru, const char *s,
                       size_t n, struct match *m)
{
  memset(m, 0, sizeof *m);
  m->rule = ru->name;
  m->tool = ru->tool;
  m->category = ru->category;
  m->severity = ru->severity;
  m->generic = ru->generic;
  m->keep_tool = ru->keep_tool;
  m->restart = ru->restart;
  if (!group(c, ru->g_message, s, &m->msg, &m->msg_len)) {
    m->msg = s;
    m->msg_len = n;
  }
  trim(&m->msg, &m->msg_len);
  if (group(c, ru->g_file, s, &m->file, &m->file_len)) {
    trim(&m->file, &m->file_len);
    if (m->file_len == 0)
      m->file = NULL;
  }
  m->line = group_int(c, ru->g_line, s);
  m->column = group_int(c, ru->g_column, s);
}

/* The first specific rule (not generic, not a wrapper, not a warning) that
 * matches a message quoted inside another line. */
static bool classify_quoted(struct classifier *c, const char *s, size_t n,
                            struct match *m)
{
  const struct classify_rules *r = c->r;
  n = SP_MIN(n, CLASSIFY_LINE_MAX);
  if (!prefilter(c, s, n))
    return false;
  for (size_t i = 0; i < r->nrules; i++) {
    const struct rule *ru = &r->rules[i];
    if (ru->ctx != CTX_ANY || ru->generic || ru->wrapper ||
        strcmp(ru->severity, "error") != 0 || (c->cand[i] != c->gen && !ru->unfiltered))
      continue;
    if (run(c, ru->re, s, n)) {
      fill_match(c, ru, s, n, m);
      return true;
    }
  }
  return false;
}

/* A wrapper's message is another tool's error: that error's rule gives the
 * category and the location, the wrapper the tool. */
static void unwrap(struct classifier *c, struct match *m)
{
  struct match q;
  if (!classify_quoted(c, m->msg, m->msg_len, &q))
    return;
  m->rule = q.rule;
  m->category = q.category;
  m->severity = q.severity;
  m->restart = m->restart || q.restart;
  if (q.file) {
    m->file = q.file;
    m->file_len = q.file_len;
    m->line = q.line;
    m->column = q.column;
  }
}

/* First rule (in file order) matching s, unless a benign pattern matches. */
static bool classify_text(struct classifier *c, const char *s, size_t n,
                          enum rule_context ctx, struct match *m)
{
  const struct classify_rules *r = c->r;
  if (ctx == CTX_PYTHON_TRACEBACK) {
    for (size_t i = 0; i < r->nrules; i++) {
      const struct rule *ru = &r->rules[i];
      if (ru->ctx == CTX_PYTHON_TRACEBACK && run(c, ru->re, s, n)) {
        fill_match(c, ru, s, n, m);
        return true;
      }
    }
    return false;
  }
  if (!prefilter(c, s, n))
    return false;
  for (size_t i = 0; i < r->nrules; i++) {
    const struct rule *ru = &r->rules[i];
    if (ru->ctx != CTX_ANY || (c->cand[i] != c->gen && !ru->unfiltered))
      continue;
    if (run(c, ru->re, s, n)) {
      fill_match(c, ru, s, n, m); /* before benign() reuses the match data */
      if (benign(c, s, n))
        return false;
      if (ru->wrapper)
        unwrap(c, m);
      return true;
    }
  }
  return false;
}

/* ------------------------------------------------------------------------ */
/* Locations                                                                */

static bool path_in_project(const char *f, size_t n)
{
  static const char *const outside[] = {
      "node_modules", "<anonymous>", "site-packages", "dist-packages",
      "/lib/python",  "<frozen",     "webpack/bootstrap", "webpack/runtime",
  };
  if (n == 0 || has_prefix(f, n, "node:") || has_prefix(f, n, "internal/") ||
      has_prefix(f, n, "bun:") || has_prefix(f, n, "native") || f[0] == '<')
    return false;
  for (size_t i = 0; i < SP_ARRAY_SIZE(outside); i++)
    if (memmem(f, n, outside[i], strlen(outside[i])))
      return false;
  return true;
}

/* A file name from a location: file:// URLs become paths (percent-decoded). */
static char *path_dup(const char *f, size_t n)
{
  struct sbuf sb = SBUF_INIT;
  if (has_prefix(f, n, "file://")) {
    f += 7, n -= 7;
    if (n >= 4 && f[0] == '/' && is_alpha((unsigned char)f[1]) && f[2] == ':' &&
        f[3] == '/')
      f++, n--;
    for (size_t i = 0; i < n; i++) {
      if (f[i] == '%' && i + 2 < n && is_hex((unsigned char)f[i + 1]) &&
          is_hex((unsigned char)f[i + 2])) {
        char hex[3] = {f[i + 1], f[i + 2], 0};
        sbuf_addch(&sb, (char)strtol(hex, NULL, 16));
        i += 2;
      } else {
        sbuf_addch(&sb, f[i]);
      }
    }
    char *raw = sbuf_detach(&sb, NULL);
    char *r = dup_utf8(raw, strlen(raw));
    free(raw);
    return r;
  }
  return dup_utf8(f, n);
}

static int parse_uint(const char *s, size_t n)
{
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    v = v * 10 + (s[i] - '0');
    if (v > 100000000)
      return 0;
  }
  return (int)v;
}

/* "PATH:LINE:COL", "PATH:LINE", "PATH(LINE,COL)" (an optional ':' at the
 * end).  Returns whether s is one, splitting it; *col is -1 if there is no
 * column. */
static bool split_location(const char *s, size_t n, size_t *flen, int *line,
                           int *col)
{
  if (n > 0 && s[n - 1] == ':')
    n--;
  if (n > 0 && s[n - 1] == ')') {
    /* PATH(L,C) */
    size_t e = n - 1, i = e;
    while (i > 0 && (is_digit((unsigned char)s[i - 1]) || s[i - 1] == ','))
      i--;
    if (i == 0 || s[i - 1] != '(' || i == e)
      return false;
    const char *comma = memchr(s + i, ',', e - i);
    if (comma == NULL)
      return false;
    *line = parse_uint(s + i, (size_t)(comma - (s + i)));
    *col = parse_uint(comma + 1, (size_t)(s + e - comma - 1));
    *flen = i - 1;
    return *flen > 0 && *line > 0;
  }
  size_t nums[2], lens[2];
  int k = 0;
  size_t end = n;
  while (k < 2) {
    size_t i = end;
    while (i > 0 && is_digit((unsigned char)s[i - 1]))
      i--;
    if (i == end || i == 0 || s[i - 1] != ':')
      break;
    nums[k] = i;
    lens[k] = end - i;
    k++;
    end = i - 1;
  }
  if (k == 0 || end == 0)
    return false;
  if (k == 2) {
    *line = parse_uint(s + nums[1], lens[1]);
    *col = parse_uint(s + nums[0], lens[0]);
  } else {
    *line = parse_uint(s + nums[0], lens[0]);
    *col = -1; /* none */
  }
  *flen = end;
  return *line > 0;
}

static bool looks_like_path(const char *s, size_t n, bool spaces_ok)
{
  if (n == 0)
    return false;
  bool sep = false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '/' || ch == '\\' || ch == '.')
      sep = true;
    if ((ch == ' ' && !spaces_ok) || ch == '"' || ch == '\'' || ch == '<' ||
        ch == '>' || ch == '|' || ch == '`' || ch == '=' || ch == ',')
      return false;
  }
  return sep;
}

static void set_location(struct pending *p, const char *f, size_t n, int line,
                         int col, int rank, bool replace_equal)
{
  if (f == NULL || n == 0 || rank > p->rank || (rank == p->rank && !replace_equal))
    return;
  if (col < 0)
    col = 0;
  p->header_loc = false;
  free(p->file);
  p->file = path_dup(f, n);
  p->line = line;
  p->column = col;
  p->rank = rank;
}

/* Frames inside the runtime itself never locate an error: "node:net",
 * "internal/...", and old Node's core files ("module.js", "events.js"). */
static bool runtime_internal(const char *f, size_t n)
{
  static const char *const core[] = {
      "module.js", "node.js",   "vm.js",     "events.js", "net.js",
      "util.js",   "timers.js", "fs.js",     "stream.js", "tty.js",
      "dns.js",    "http.js",   "https.js",  "tls.js",    "domain.js",
      "child_process.js", "_stream_readable.js", "_stream_writable.js",
      "bootstrap_node.js", "_http_server.js", "_http_client.js", "assert.js",
  };
  if (n == 0 || f[0] == '<' || has_prefix(f, n, "node:") ||
      has_prefix(f, n, "internal/") || has_prefix(f, n, "bun:"))
    return true;
  if (memchr(f, '/', n) || memchr(f, '\\', n))
    return false;
  if (!memchr(f, '.', n))
    return true;
  for (size_t i = 0; i < SP_ARRAY_SIZE(core); i++)
    if (n == strlen(core[i]) && memcmp(f, core[i], n) == 0)
      return true;
  return false;
}

/* A stack frame's location: the first frame inside the project wins, else
 * the first one outside it (node_modules), never the runtime's own. */
static void frame_seen(struct pending *p, const char *f, size_t n, int line, int col)
{
  /* Node's throw-site header has no column: the first frame gives it when it
   * points at the same place. */
  if (!p->had_frame && f && p->header_loc && p->column == 0 && col > 0 &&
      line == p->line) {
    char *path = path_dup(f, n);
    if (strcmp(path, p->file) == 0)
      p->column = col;
    free(path);
  }
  p->had_frame = true;
  if (f && !runtime_internal(f, n))
    set_location(p, f, n, line, col, path_in_project(f, n) ? RANK_FRAME : RANK_OTHER,
                 false);
}

/* A stack frame "at fn (PATH:L:C)" / "at PATH:L:C" / React's
 * "in Comp (at PATH:L)": the location in it. */
static bool frame_location(const char *t, size_t n, const char **f, size_t *flen,
                           int *line, int *col)
{
  const char *end = t + n;
  const char *in = t + 3;
  if (t[0] == 'i') {
    const char *at = memmem(t, n, "(at ", 4);
    if (at == NULL || end[-1] != ')')
      return false;
    *f = at + 4;
    return split_location(*f, (size_t)(end - 1 - *f), flen, line, col);
  }
  if (n > 0 && end[-1] == ')') {
    const char *open = NULL;
    int depth = 0;
    for (const char *q = end - 1; q >= in; q--) {
      if (*q == ')')
        depth++;
      else if (*q == '(' && --depth == 0) {
        open = q;
        break;
      }
    }
    if (open == NULL)
      return false;
    in = open + 1;
    end--;
  } else if (has_prefix(in, (size_t)(end - in), "async ")) {
    in += 6;
  }
  *f = in;
  return split_location(in, (size_t)(end - in), flen, line, col);
}

/* Python: File "PATH", line N[, in fn] */
static bool python_frame(const char *t, size_t n, const char **f, size_t *flen,
                         int *line)
{
  if (!has_prefix(t, n, "File \""))
    return false;
  const char *p = t + 6, *end = t + n;
  const char *q = memchr(p, '"', (size_t)(end - p));
  if (q == NULL || !has_prefix(q, (size_t)(end - q), "\", line "))
    return false;
  const char *d = q + 8, *e = d;
  while (e < end && is_digit((unsigned char)*e))
    e++;
  if (e == d)
    return false;
  *f = p;
  *flen = (size_t)(q - p);
  *line = parse_uint(d, (size_t)(e - d));
  return true;
}

/* ------------------------------------------------------------------------ */
/* Line shapes                                                              */

enum shape {
  SHAPE_NONE,
  SHAPE_FRAME,    /* "    at fn (file:1:2)" */
  SHAPE_LOCATION, /* "  File: path:1:2", "    path:1:2:", "/abs/path:1:2" */
  SHAPE_CODE,     /* code frames, carets, underlines */
  SHAPE_DETAIL,   /* "Plugin: vite:x", "Require stack:", "- /path" */
};

static bool is_code_frame(const char *t, size_t n)
{
  size_t i = 0;
  if (i < n && t[i] == '>')
    i++;
  while (i < n && is_space((unsigned char)t[i]))
    i++;
  size_t d = i;
  while (i < n && is_digit((unsigned char)t[i]))
    i++;
  bool digits = i > d;
  while (i < n && is_space((unsigned char)t[i]))
    i++;
  if (i < n && t[i] == '|')
    return true;
  /* U+2502 BOX DRAWINGS LIGHT VERTICAL, U+2575 (esbuild's end marker);
   * U+2500 and U+2570 start the closing lines of oxc's (miette's) frames */
  if (i + 2 < n && (unsigned char)t[i] == 0xe2 &&
      (((unsigned char)t[i + 1] == 0x94 &&
        ((unsigned char)t[i + 2] == 0x82 || (unsigned char)t[i + 2] == 0x80)) ||
       ((unsigned char)t[i + 1] == 0x95 &&
        ((unsigned char)t[i + 2] == 0xb5 || (unsigned char)t[i + 2] == 0xb0))))
    return true;
  if (digits)
    return false;
  /* caret or underline lines: only ^ ~ - and spaces */
  bool mark = false;
  for (i = 0; i < n; i++) {
    if (t[i] == '^' || t[i] == '~')
      mark = true;
    else if (!is_space((unsigned char)t[i]) && t[i] != '-')
      return false;
  }
  return mark;
}

/* A path on its own line, as Next.js prints before "Module not found":
 * "./src/app/layout.tsx". */
static bool bare_path(const char *t, size_t m)
{
  if (!(has_prefix(t, m, "./") || has_prefix(t, m, "../")) || memchr(t, ' ', m))
    return false;
  const char *dot = NULL;
  for (const char *q = t + 2; q < t + m; q++)
    if (*q == '.')
      dot = q;
  return dot && dot + 1 < t + m && looks_like_path(t, m, false);
}

static enum shape line_shape(const char *s, size_t n, bool typescript, const char **f,
                             size_t *flen, int *line, int *col)
{
  const char *t = skip_ws(s, s + n);
  size_t m = n - (size_t)(t - s);
  size_t indent = (size_t)(t - s);
  *f = NULL;
  *line = *col = 0;
  while (m > 0 && is_space((unsigned char)t[m - 1]))
    m--;
  if (m == 0)
    return SHAPE_NONE;
  if ((has_prefix(t, m, "at ") && m > 3) ||
      (indent > 0 && has_prefix(t, m, "in ") && memmem(t, m, "(at ", 4))) {
    if (!frame_location(t, m, f, flen, line, col))
      *f = NULL;
    return SHAPE_FRAME;
  }
  if (is_code_frame(t, m))
    return SHAPE_CODE;
  if (typescript && indent == 0 && is_digit((unsigned char)t[0])) {
    size_t i = 0;
    while (i < m && is_digit((unsigned char)t[i]))
      i++;
    if (i < m && t[i] == ' ')
      return SHAPE_CODE;
  }
  /* oxc (Vite 8) and other miette-style reports: "╭─[ src/main.ts:4:16 ]" */
  if (has_prefix(t, m, "\xe2\x95\xad\xe2\x94\x80[")) {
    const char *in = skip_ws(t + 7, t + m);
    const char *end = memchr(in, ']', (size_t)(t + m - in));
    size_t inl = end ? (size_t)(end - in) : 0;
    while (inl > 0 && is_space((unsigned char)in[inl - 1]))
      inl--;
    if (inl > 0 && split_location(in, inl, flen, line, col) && looks_like_path(in, *flen, false)) {
      *f = in;
      return SHAPE_LOCATION;
    }
    *line = *col = 0;
    return SHAPE_CODE;
  }
  if (has_prefix(t, m, "File: ")) {
    if (split_location(t + 6, m - 6, flen, line, col) &&
        looks_like_path(t + 6, *flen, true)) {
      *f = t + 6;
      return SHAPE_LOCATION;
    }
    /* Vite 8 names the file alone: "File: /app/src/main.ts" */
    if (t[6] == '/' && !memchr(t + 6, ' ', m - 6) && looks_like_path(t + 6, m - 6, true)) {
      *f = t + 6;
      *flen = m - 6;
      *line = *col = 0;
      return SHAPE_LOCATION;
    }
  }
  if (split_location(t, m, flen, line, col) && *col >= 0) {
    /* esbuild's "    FILE:L:C:" may name a pseudo-file: "(define name)" */
    bool esbuild = t[m - 1] == ':' && indent > 0;
    if (esbuild || looks_like_path(t, *flen, false)) {
      *f = t;
      return SHAPE_LOCATION;
    }
  }
  if (bare_path(t, m)) {
    *f = t;
    *flen = m;
    *line = *col = 0;
    return SHAPE_LOCATION;
  }
  *line = *col = 0;
  if (has_prefix(t, m, "Plugin: ") || has_prefix(t, m, "Require stack:") ||
      (has_prefix(t, m, "- ") && looks_like_path(t + 2, m - 2, true)))
    return SHAPE_DETAIL;
  return SHAPE_NONE;
}

static bool is_blank(const char *s, size_t n)
{
  return skip_ws(s, s + n) == s + n;
}

/* Python 3.11 prints exception groups behind a gutter: "  + Exception Group
 * Traceback (most recent call last):", "  |   File ...", "  +-+---- 1 ----".
 * Returns the length of the gutter (0 if none); *rule is set for the
 * "+-+----" lines, which hold nothing else. */
static size_t py_gutter(const char *s, size_t n, bool *rule)
{
  size_t i = 0;
  *rule = false;
  while (i < n && s[i] == ' ')
    i++;
  if (i >= n || (s[i] != '|' && s[i] != '+'))
    return 0;
  if (s[i] == '+' && i + 1 < n && s[i + 1] == '-') {
    *rule = true;
    return n;
  }
  i++;
  return i < n && s[i] == ' ' ? i + 1 : i;
}

static bool is_group_header(const char *s, size_t n)
{
  const char *t = skip_ws(s, s + n);
  size_t m = (size_t)(s + n - t);
  if (has_prefix(t, m, "+ "))
    t += 2, m -= 2;
  return has_prefix(t, m, "Exception Group Traceback");
}

static bool is_traceback_header(const char *s, size_t n)
{
  bool rule;
  size_t g = py_gutter(s, n, &rule);
  s += g;
  n -= g;
  if (has_prefix(s, n, "Exception Group "))
    s += 16, n -= 16;
  return has_prefix(s, n, "Traceback (most recent call last)");
}

static bool is_traceback_chain(const char *s, size_t n)
{
  return has_prefix(s, n, "During handling of the above exception") ||
         has_prefix(s, n, "The above exception was the direct cause");
}

static bool is_npm_line(const char *s, size_t n)
{
  return has_prefix(s, n, "npm ERR!") || has_prefix(s, n, "npm error");
}

/* A Node.js throw-site header: "/abs/path/file.js:123" on its own line. */
static bool throw_site(const char *s, size_t n, const char **f, size_t *flen, int *line)
{
  int col;
  const char *t = skip_ws(s, s + n);
  n -= (size_t)(t - s);
  s = t;
  while (n > 0 && is_space((unsigned char)s[n - 1]))
    n--;
  if (n < 4 || !is_digit((unsigned char)s[n - 1]))
    return false;
  if (!split_location(s, n, flen, line, &col) || col >= 0)
    return false;
  if (!looks_like_path(s, *flen, true))
    return false;
  *f = s;
  return s[0] == '/' || s[0] == '\\' || s[0] == '.' || has_prefix(s, n, "file://") ||
         has_prefix(s, n, "node:") || has_prefix(s, n, "internal/") ||
         (n > 3 && is_alpha((unsigned char)s[0]) && s[1] == ':' &&
          (s[2] == '\\' || s[2] == '/'));
}

/* Does the line open a block of its own (without a rule matching it)? */
static bool is_starter(const char *s, size_t n)
{
  const char *t = skip_ws(s, s + n);
  size_t m = (size_t)(s + n - t);
  const char *f;
  size_t flen;
  int line;
  return is_traceback_header(t, m) || python_frame(t, m, &f, &flen, &line) ||
         throw_site(s, n, &f, &flen, &line) || (t == s && bare_path(t, m)) ||
         (m > 0 && is_digit((unsigned char)t[0]) && is_code_frame(t, m));
}

static bool pino_candidate(const char *s, size_t n)
{
  const char *t = skip_ws(s, s + n);
  return t < s + n && *t == '{' && memmem(t, (size_t)(s + n - t), "\"level\"", 7);
}

/* ------------------------------------------------------------------------ */
/* Pending events                                                           */

static void pending_reset(struct pending *p)
{
  free(p->message);
  free(p->file);
  struct sbuf raw = p->raw, held = p->held, last = p->last;
  sbuf_reset(&raw);
  sbuf_reset(&held);
  sbuf_reset(&last);
  memset(p, 0, sizeof *p);
  p->raw = raw;
  p->held = held;
  p->last = last;
  p->rank = RANK_NONE;
}

static void raw_add(struct pending *p, const char *s, size_t n)
{
  if (p->raw_lines >= CLASSIFY_RAW_MAX_LINES || p->raw.len + 1 >= CLASSIFY_RAW_MAX_BYTES)
    return;
  if (p->raw_lines > 0)
    sbuf_addch(&p->raw, '\n');
  add_utf8(&p->raw, s, SP_MIN(n, CLASSIFY_RAW_MAX_BYTES));
  p->raw_lines++;
  if (p->raw.len > CLASSIFY_RAW_MAX_BYTES) {
    /* Cut what sanitising made too long, on a character boundary. */
    size_t k = CLASSIFY_RAW_MAX_BYTES;
    while (k > 0 && ((unsigned char)p->raw.buf[k] & 0xc0) == 0x80)
      k--;
    p->raw.len = k;
    p->raw.buf[k] = '\0';
  }
}

/* Append a line of the block (after any blank lines held back). */
static void block_add(struct pending *p, const char *s, size_t n, int64_t now)
{
  if (p->held.len > 0) {
    raw_add(p, p->held.buf, p->held.len);
    sbuf_reset(&p->held);
    p->lines++;
  }
  for (; p->blanks > 0; p->blanks--)
    raw_add(p, "", 0);
  raw_add(p, s, n);
  sbuf_reset(&p->last);
  if (n <= 512)
    sbuf_add(&p->last, s, n);
  p->lines++;
  p->last_ms = now;
}

static void block_start(struct pending *p, const char *s, size_t n, int64_t now,
                        enum mode mode)
{
  pending_reset(p);
  p->active = true;
  p->mode = mode;
  block_add(p, s, n, now);
}

/* The event takes the rule's classification; locations known from earlier
 * lines of the block stay unless the match names its own. */
static void adopt(struct pending *p, const struct match *m)
{
  bool keep = p->classified && p->generic && p->keep_tool;
  bool restart = (p->classified && p->restart) || m->restart; /* sticky */
  p->classified = true;
  p->rule = m->rule;
  if (!keep) {
    p->tool = m->tool;
    p->keep_tool = m->keep_tool;
    /* Node prints a throw-site header before an uncaught error, Bun a code
     * frame: a "node" error after a code frame is Bun's. */
    if (p->bun_frame && strcmp(p->tool, "node") == 0)
      p->tool = "bun";
  }
  p->category = m->category;
  p->severity = m->severity;
  p->generic = m->generic;
  p->restart = restart;
  free(p->message);
  p->message = dup_utf8(m->msg, m->msg_len);
  if (m->file)
    set_location(p, m->file, m->file_len, m->line, m->column, RANK_CAPTURE, true);
  if (strcmp(m->tool, "npm") == 0 && p->mode == MODE_NORMAL)
    p->mode = MODE_NPM;
}

/* The same error reported twice in a row (a bare message, then the same
 * message with its context): one event. */
static bool echo(const struct pending *p, const struct match *m)
{
  if (p->merged || p->lines > 1 || p->rank != RANK_NONE)
    return false;
  if (strcmp(p->tool, m->tool) != 0 || strcmp(p->category, m->category) != 0)
    return false;
  size_t a = strlen(p->message);
  if (a == 0 || m->msg_len == 0)
    return false;
  return memmem(m->msg, m->msg_len, p->message, a) != NULL ||
         memmem(p->message, a, m->msg, m->msg_len) != NULL;
}

static void emit(struct classifier *c, classify_cb cb, void *ud)
{
  struct pending *p = &c->p;
  if (p->active && p->classified && cb) {
    /* The same message in two files is two errors to fix; the same one at
     * another line of one file (after an edit) is still one. */
    cleanup_free char *keyed =
        p->file ? xasprintf("%s: %s", p->file, p->message) : xstrdup(p->message);
    cleanup_free char *norm = classify_normalise(keyed, strlen(keyed));
    struct classify_event ev = {
        .rule = p->rule,
        .tool = p->tool,
        .category = p->category,
        .severity = p->severity,
        .file = p->file,
        .line = p->file ? p->line : 0,
        .column = p->file ? p->column : 0,
        .message = p->message,
        .raw = sbuf_str(&p->raw),
        .hash = classify_hash(p->tool, p->category, norm),
        .restart = p->restart,
    };
    cb(ud, &ev);
  }
  pending_reset(p);
}

/* ------------------------------------------------------------------------ */
/* Pino                                                                     */

static const char *json_str(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* A pino (or similar) JSON log line at level warn or above: an event of its
 * own.  Returns false if the line is not such JSON. */
static bool pino_line(struct classifier *c, const char *s, size_t n, int64_t now,
                      classify_cb cb, void *ud, bool *handled)
{
  *handled = false;
  /* Most structured lines are info: read a numeric level without parsing. */
  const char *lv0 = memmem(s, n, "\"level\"", 7);
  if (lv0) {
    const char *q = skip_ws(lv0 + 7, s + n);
    if (q < s + n && *q == ':') {
      q = skip_ws(q + 1, s + n);
      int level = 0, digits = 0;
      while (q < s + n && is_digit((unsigned char)*q) && digits < 4) {
        level = level * 10 + (*q++ - '0');
        digits++;
      }
      if (digits > 0 && digits < 4 && level < 40 && q < s + n &&
          (*q == ',' || *q == '}' || is_space((unsigned char)*q))) {
        *handled = true;
        return true;
      }
    }
  }
  cleanup_json cJSON *j = cJSON_ParseWithLength(s, n);
  if (!cJSON_IsObject(j))
    return false;
  const cJSON *lv = cJSON_GetObjectItemCaseSensitive(j, "level");
  double level = -1;
  if (cJSON_IsNumber(lv)) {
    level = lv->valuedouble;
  } else if (cJSON_IsString(lv)) {
    const char *l = lv->valuestring;
    if (strcasecmp(l, "fatal") == 0 || strcasecmp(l, "critical") == 0)
      level = 60;
    else if (strcasecmp(l, "error") == 0)
      level = 50;
    else if (strcasecmp(l, "warn") == 0 || strcasecmp(l, "warning") == 0)
      level = 40;
    else
      level = 30;
  } else {
    return false;
  }
  *handled = true; /* a structured log line: never matched as text */
  if (level < 40)
    return true;
  const char *msg = json_str(j, "msg");
  if (msg == NULL)
    msg = json_str(j, "message");
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "err");
  if (!cJSON_IsObject(e))
    e = cJSON_GetObjectItemCaseSensitive(j, "error");
  const char *emsg = cJSON_IsObject(e) ? json_str(e, "message") : NULL;
  const char *stack = cJSON_IsObject(e) ? json_str(e, "stack") : NULL;
  if (emsg == NULL && cJSON_IsString(e))
    emsg = e->valuestring[0] ? e->valuestring : NULL;
  if (stack == NULL)
    stack = json_str(j, "stack"); /* older pino: the error's fields inline */

  struct pending *p = &c->p;
  block_start(p, s, n, now, MODE_NORMAL);
  p->classified = true;
  p->rule = "pino";
  p->tool = "pino";
  const char *names[] = {"tool", "framework", "name"};
  for (size_t i = 0; i < SP_ARRAY_SIZE(names); i++) {
    const char *t = json_str(j, names[i]);
    for (size_t k = 0; t && k < SP_ARRAY_SIZE(known_tools); k++)
      if (strcmp(t, known_tools[k]) == 0) {
        p->tool = known_tools[k];
        i = SP_ARRAY_SIZE(names);
        break;
      }
  }
  p->severity = level >= 50 ? "error" : "warning";
  p->category = level >= 50 ? "runtime" : "warning";
  p->restart = level >= 60;
  if (msg && emsg && strcmp(msg, emsg) != 0 && strstr(msg, emsg) == NULL) {
    char *both = xasprintf("%s: %s", msg, emsg);
    p->message = dup_utf8(both, strlen(both));
    free(both);
  } else {
    const char *one = msg ? msg : emsg ? emsg : "";
    p->message = dup_utf8(one, strlen(one));
  }
  /* The category from what the message says, if a rule recognises it. */
  if (level >= 50) {
    const char *texts[] = {emsg, msg};
    for (size_t i = 0; i < 2; i++) {
      struct match m;
      if (texts[i] && classify_quoted(c, texts[i], strlen(texts[i]), &m)) {
        p->category = m.category;
        p->restart = p->restart || m.restart;
        if (m.file)
          set_location(p, m.file, m.file_len, m.line, m.column, RANK_CAPTURE, false);
        break;
      }
    }
  }
  if (stack) {
    const char *q = stack;
    while (*q) {
      const char *nl = strchr(q, '\n');
      size_t ln = nl ? (size_t)(nl - q) : strlen(q);
      const char *f;
      size_t flen;
      int line, col;
      if (line_shape(q, ln, false, &f, &flen, &line, &col) == SHAPE_FRAME)
        frame_seen(p, f, flen, line, col);
      if (nl == NULL)
        break;
      q = nl + 1;
    }
  }
  emit(c, cb, ud);
  return true;
}

/* ------------------------------------------------------------------------ */
/* Blocks                                                                   */

static bool is_python_frame(const char *s, size_t n)
{
  const char *f;
  size_t flen;
  int line;
  return python_frame(s, n, &f, &flen, &line);
}

/* The innermost frame of a traceback is the one reported. */
static void python_location(struct pending *p, const char *s, size_t n)
{
  const char *t = skip_ws(s, s + n);
  const char *f;
  size_t flen;
  int line;
  if (python_frame(t, (size_t)(s + n - t), &f, &flen, &line))
    set_location(p, f, flen, line, 0, RANK_LOCATION, true);
}

static void python_final(struct classifier *c, const char *s, size_t n)
{
  struct pending *p = &c->p;
  struct match m;
  if (classify_text(c, s, n, CTX_PYTHON_TRACEBACK, &m)) {
    adopt(p, &m);
  } else {
    p->classified = true;
    p->rule = "python-traceback";
    p->tool = "python";
    p->category = "runtime";
    p->severity = "error";
    p->generic = false;
    p->restart = false;
    free(p->message);
    const char *t = s;
    size_t tn = n;
    trim(&t, &tn);
    p->message = dup_utf8(t, tn);
  }
  p->mode = MODE_PYTHON_END;
}

static bool hold_blank(struct pending *p)
{
  if (p->blanks >= BLANKS_MAX || p->held.len > 0)
    return false;
  p->blanks++;
  return true;
}

/* Terminals wrap long lines: is `prev` the first half of the path that the
 * location line goes on with ("...node_modules/react-rec" then
 * "onciler/cjs/x.js:6424:17")? */
static bool wrapped_path(const struct sbuf *prev, const char *f, size_t flen)
{
  if (prev->len < 60 || flen == 0 || f[0] == '/' || f[0] == '.' || f[0] == '~' ||
      f[0] == '\\' || (flen > 1 && f[1] == ':'))
    return false;
  const char *t = skip_ws(prev->buf, prev->buf + prev->len);
  size_t m = (size_t)(prev->buf + prev->len - t);
  if (m == 0 || memchr(t, ' ', m) || !memchr(t, '/', m) || t[m - 1] == '/')
    return false;
  size_t fl;
  int l, c;
  return !split_location(t, m, &fl, &l, &c) && looks_like_path(t, m, false);
}

/* Node dumps an error's properties after its stack ("at x (y:1:2) {",
 * "  code: 'EADDRINUSE',", "}"): the lines inside belong to the event. */
static void track_object(struct pending *p, const char *s, size_t n)
{
  const char *t = s, *end = s + n;
  while (t < end && is_space((unsigned char)*t))
    t++;
  while (end > t && is_space((unsigned char)end[-1]))
    end--;
  if (t == end)
    return;
  if (p->depth > 0 && (*t == '}' || *t == ']'))
    p->depth--;
  if (end[-1] == '{' || end[-1] == '[') {
    if (p->depth++ == 0)
      p->depth_lines = 0;
  }
}

/* A rule matched a line inside the block: a specific match takes over a
 * tentative or generic event; a generic one only adds a missing location. */
static void refine(struct pending *p, const struct match *m)
{
  if (!p->classified || (p->generic && !m->generic))
    adopt(p, m);
  else if (m->file)
    set_location(p, m->file, m->file_len, m->line, m->column, RANK_CAPTURE, false);
}

/* Is `f` (n bytes) a longer name of `known` ("/app/src/main.ts" for
 * "src/main.ts"), ending in it at a path boundary? */
static bool same_file_longer(const char *known, const char *f, size_t n)
{
  size_t k = strlen(known);
  if (has_prefix(known, k, "./")) {
    known += 2;
    k -= 2;
  }
  return k > 0 && n > k && f[n - k - 1] == '/' && memcmp(f + n - k, known, k) == 0;
}

/* Does the line continue the pending block?  If so it is consumed. */
static bool continue_block(struct classifier *c, const char *s, size_t n, int64_t now)
{
  struct pending *p = &c->p;
  bool blank = is_blank(s, n);
  bool indented = n > 0 && is_space((unsigned char)s[0]);
  struct match m;

  if (p->lines >= BLOCK_MAX_LINES)
    return false;
  if (!p->classified && p->mode != MODE_PYTHON && p->lines >= TENTATIVE_MAX_LINES)
    return false;

  if (p->source_next) {
    p->source_next = false;
    block_add(p, s, n, now);
    return true;
  }

  if (p->mode == MODE_PYTHON || p->mode == MODE_PYTHON_END) {
    /* Inside an exception group, read what follows the gutter. */
    bool rule = false;
    size_t g = p->py_group ? py_gutter(s, n, &rule) : 0;
    if (rule) {
      block_add(p, s, n, now); /* the mode stays: a "| Traceback" follows */
      return true;
    }
    const char *t = s + g;
    size_t tn = n - g;
    bool in = tn > 0 && is_space((unsigned char)t[0]);
    if (blank)
      return hold_blank(p);
    if (p->mode == MODE_PYTHON_END) {
      if (!is_traceback_chain(t, tn) && !(g > 0 && is_traceback_header(t, tn)))
        return false;
      block_add(p, s, n, now);
      p->mode = MODE_PYTHON;
      return true;
    }
    block_add(p, s, n, now);
    if (in || is_python_frame(t, tn)) {
      python_location(p, t, tn);
    } else if (!is_traceback_header(t, tn) && !is_traceback_chain(t, tn)) {
      python_final(c, t, tn);
    } else {
      p->py_group = p->py_group || is_group_header(s, n);
    }
    return true;
  }

  switch (p->mode) {
  case MODE_PYTHON:
  case MODE_PYTHON_END:
    break;
  case MODE_NPM:
    if (is_npm_line(s, n)) {
      block_add(p, s, n, now);
      if (classify_text(c, s, n, CTX_ANY, &m))
        refine(p, &m);
      return true;
    }
    if (!indented && !blank)
      return false;
    break;
  case MODE_NORMAL:
    break;
  }

  if (pino_candidate(s, n))
    return false;
  if (p->depth > 0 && p->depth_lines < 200 && p->held.len == 0) {
    p->depth_lines++;
    block_add(p, s, n, now);
    track_object(p, s, n);
    return true;
  }

  const char *f;
  size_t flen;
  int line, col;
  bool ts = p->tool && strcmp(p->tool, "typescript") == 0;
  enum shape sh = line_shape(s, n, ts, &f, &flen, &line, &col);
  if (sh != SHAPE_NONE) {
    if (sh == SHAPE_FRAME) {
      frame_seen(p, f, flen, line, col);
    } else if (sh == SHAPE_LOCATION) {
      struct sbuf joined = SBUF_INIT;
      if (wrapped_path(&p->last, f, flen)) {
        const char *t = skip_ws(p->last.buf, p->last.buf + p->last.len);
        sbuf_add(&joined, t, (size_t)(p->last.buf + p->last.len - t));
        sbuf_add(&joined, f, flen);
        f = joined.buf;
        flen = joined.len;
      }
      bool file_only = line == 0 && f > s + 5 && memcmp(f - 6, "File: ", 6) == 0;
      if (file_only) {
        /* "File: /abs/src/main.ts" after "src/main.ts:4:16": the same file,
         * named in full; on its own, a file without a line locates nothing */
        if (p->file && p->line > 0 && same_file_longer(p->file, f, flen)) {
          free(p->file);
          p->file = path_dup(f, flen);
        }
      } else {
        set_location(p, f, flen, line, col, RANK_LOCATION, false);
      }
      sbuf_release(&joined);
    }
    block_add(p, s, n, now);
    if (sh == SHAPE_FRAME)
      track_object(p, s, n);
    if ((sh == SHAPE_LOCATION || sh == SHAPE_DETAIL) && (!p->classified || p->generic) &&
        classify_text(c, s, n, CTX_ANY, &m))
      refine(p, &m);
    return true;
  }
  if (p->held.len > 0)
    return false;
  if ((!p->classified || p->generic) && is_traceback_header(s, n)) {
    block_add(p, s, n, now);
    p->mode = MODE_PYTHON;
    p->py_group = is_group_header(s, n);
    return true;
  }
  if (classify_text(c, s, n, CTX_ANY, &m)) {
    if (!p->classified || p->generic) {
      block_add(p, s, n, now);
      refine(p, &m);
      track_object(p, s, n);
      return true;
    }
    if (echo(p, &m)) {
      block_add(p, s, n, now);
      p->merged = true;
      if (m.file)
        set_location(p, m.file, m.file_len, m.line, m.column, RANK_CAPTURE, true);
      return true;
    }
    c->carry = m; /* the line starts the next event: do not match it twice */
    c->has_carry = true;
    return false;
  }
  if (blank)
    return hold_blank(p);
  if (indented || (n > 0 && (s[0] == '}' || s[0] == ']' || s[0] == ')'))) {
    block_add(p, s, n, now);
    return true;
  }
  /* A plain line ("Check the render method of `App`.") may still be
   * followed by the event's frames: hold it back for one line. */
  if (p->classified && !is_starter(s, n)) {
    sbuf_add(&p->held, s, n);
    return true;
  }
  return false;
}

/* A line that no block continues. */
static void fresh_line(struct classifier *c, const char *s, size_t n, size_t full,
                       int64_t now, classify_cb cb, void *ud)
{
  struct pending *p = &c->p;
  bool handled;
  if (pino_candidate(s, n) && (pino_line(c, s, full, now, cb, ud, &handled) || handled))
    return;
  struct match m;
  bool matched = c->has_carry;
  if (matched)
    m = c->carry;
  else
    matched = classify_text(c, s, n, CTX_ANY, &m);
  c->has_carry = false;
  if (matched) {
    block_start(p, s, n, now, MODE_NORMAL);
    adopt(p, &m);
    track_object(p, s, n);
    return;
  }
  const char *t = skip_ws(s, s + n);
  size_t tn = (size_t)(s + n - t);
  if (tn == 0)
    return;
  if (is_traceback_header(t, tn)) {
    block_start(p, s, n, now, MODE_PYTHON);
    p->py_group = is_group_header(s, n);
    return;
  }
  const char *f;
  size_t flen;
  int line;
  if (python_frame(t, tn, &f, &flen, &line)) {
    /* A SyntaxError report starts with the frame, without a header. */
    block_start(p, s, n, now, MODE_PYTHON);
    python_location(p, s, n);
    return;
  }
  if (throw_site(s, n, &f, &flen, &line)) {
    block_start(p, s, n, now, MODE_NORMAL);
    p->source_next = true;
    if (!has_prefix(f, flen, "node:") && !has_prefix(f, flen, "internal/")) {
      set_location(p, f, flen, line, 0, RANK_LOCATION, false);
      p->header_loc = true;
    }
    return;
  }
  if (is_digit((unsigned char)t[0]) && is_code_frame(t, tn)) {
    block_start(p, s, n, now, MODE_NORMAL);
    p->bun_frame = true;
    return;
  }
  if (t == s && bare_path(t, tn)) {
    /* "./src/app/layout.tsx" before "Module not found: ..." */
    block_start(p, s, n, now, MODE_NORMAL);
    set_location(p, t, tn, 0, 0, RANK_LOCATION, false);
    return;
  }
}

/* Length of the prefix that a log multiplexer puts in front of every line:
 * docker compose ("web-1  | "), BuildKit ("#9 0.329 ", "46.59 "),
 * concurrently ("[0] ", "[name   ] "), a box-drawing gutter ("│ "). */
static size_t mux_prefix(const char *s, size_t n)
{
  size_t i = 0;
  if (n >= 3 && (unsigned char)s[0] == 0xe2 && (unsigned char)s[1] == 0x94 &&
      ((unsigned char)s[2] == 0x82 || (unsigned char)s[2] == 0x83))
    return n > 3 && s[3] == ' ' ? 4 : 3;
  if (s[0] == '#') {
    i = 1;
    while (i < n && is_digit((unsigned char)s[i]))
      i++;
    if (i == 1 || i >= n || s[i] != ' ')
      return 0;
    i++;
  }
  size_t d = i;
  while (i < n && is_digit((unsigned char)s[i]))
    i++;
  if (i > d && i + 1 < n && s[i] == '.' && is_digit((unsigned char)s[i + 1])) {
    i++;
    while (i < n && is_digit((unsigned char)s[i]))
      i++;
    if (i < n && s[i] == ' ')
      return i + 1;
    if (i == n)
      return n;
  }
  if (d > 0)
    return d;
  if (s[0] == '[') {
    i = 1;
    while (i < n && s[i] != ']' && s[i] != ' ')
      i++;
    size_t name = i;
    while (i < n && s[i] == ' ')
      i++;
    bool digits = name > 1;
    for (size_t k = 1; k < name; k++)
      digits = digits && is_digit((unsigned char)s[k]);
    if (i < n && s[i] == ']' && (digits || i > name + 1) && i + 1 < n && s[i + 1] == ' ')
      return i + 2;
    if (i < n && s[i] == ']' && (digits || i > name + 1) && i + 1 == n)
      return n;
    return 0;
  }
  if (is_alnum((unsigned char)s[0])) {
    bool letter = false;
    i = 0;
    while (i < n && (is_alnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-' ||
                     s[i] == '.')) {
      letter |= is_alpha((unsigned char)s[i]);
      i++;
    }
    size_t sp = i;
    while (i < n && s[i] == ' ')
      i++;
    if (letter && i > sp && i < n && s[i] == '|' && (i + 1 == n || s[i + 1] == ' '))
      return i + 1 < n ? i + 2 : n;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Classifier                                                               */

struct classifier *classifier_new(const struct classify_rules *r)
{
  struct classifier *c = xcalloc(1, sizeof *c);
  c->r = r;
  c->md = pcre2_match_data_create(r->max_groups, NULL);
  if (c->md == NULL)
    abort();
  c->mctx = pcre2_match_context_create(NULL);
  if (c->mctx == NULL)
    abort();
  pcre2_set_match_limit(c->mctx, MATCH_LIMIT);
  pcre2_set_depth_limit(c->mctx, DEPTH_LIMIT);
  pcre2_set_heap_limit(c->mctx, HEAP_LIMIT_KIB);
  c->jit = pcre2_jit_stack_create(32 * 1024, JIT_STACK_MAX, NULL);
  if (c->jit)
    pcre2_jit_stack_assign(c->mctx, NULL, c->jit);
  c->cand = xcalloc(r->nrules ? r->nrules : 1, sizeof *c->cand);
  c->bcand = xcalloc(r->nbenign ? r->nbenign : 1, sizeof *c->bcand);
  c->p.rank = RANK_NONE;
  return c;
}

void classifier_free(struct classifier *c)
{
  if (c == NULL)
    return;
  pending_reset(&c->p);
  sbuf_release(&c->p.raw);
  sbuf_release(&c->p.held);
  sbuf_release(&c->p.last);
  sbuf_release(&c->clean);
  pcre2_match_data_free(c->md);
  pcre2_match_context_free(c->mctx);
  pcre2_jit_stack_free(c->jit);
  free(c->cand);
  free(c->bcand);
  free(c);
}

void classifier_feed(struct classifier *c, const char *line, size_t len,
                     int64_t now_ms, classify_cb cb, void *ud)
{
  if (c == NULL || (line == NULL && len > 0))
    return;
  size_t full;
  const char *s = clean_line(c, line ? line : "", len, &full);
  for (int k = 0; k < 2 && full > 0; k++) {
    size_t skip = mux_prefix(s, full);
    s += skip;
    full -= skip;
  }
  size_t n = SP_MIN(full, CLASSIFY_LINE_MAX);
  c->has_carry = false;
  if (c->p.active) {
    if (continue_block(c, s, n, now_ms))
      return;
    emit(c, cb, ud);
  }
  fresh_line(c, s, n, full, now_ms, cb, ud);
}

void classifier_flush(struct classifier *c, int64_t now_ms, int64_t idle_ms,
                      classify_cb cb, void *ud)
{
  if (c == NULL || !c->p.active)
    return;
  if (idle_ms > 0 && now_ms - c->p.last_ms < idle_ms)
    return;
  emit(c, cb, ud);
}

/* ------------------------------------------------------------------------ */
/* Normalisation and hashing                                                */

/* Length of a timestamp starting at s (0 if none). */
static size_t timestamp_len(const char *s, size_t n)
{
  size_t i = 0;
  /* date: YYYY-MM-DD or YYYY/MM/DD, optionally followed by a time */
  if (n >= 10 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
      (s[4] == '-' || s[4] == '/') && is_digit(s[5]) && is_digit(s[6]) && s[7] == s[4] &&
      is_digit(s[8]) && is_digit(s[9])) {
    i = 10;
    if (i + 1 < n && (s[i] == 'T' || s[i] == ' ') && is_digit((unsigned char)s[i + 1]))
      i++;
    else
      return i;
  }
  size_t t = i;
  while (i < n && is_digit((unsigned char)s[i]) && i - t < 2)
    i++;
  if (i == t || i >= n || s[i] != ':' || i + 2 >= n || !is_digit(s[i + 1]) ||
      !is_digit(s[i + 2]))
    return t;
  i += 3;
  if (i + 2 < n && s[i] == ':' && is_digit(s[i + 1]) && is_digit(s[i + 2]))
    i += 3;
  if (i + 1 < n && (s[i] == '.' || s[i] == ',') && is_digit(s[i + 1])) {
    i++;
    while (i < n && is_digit((unsigned char)s[i]))
      i++;
  }
  if (i < n && s[i] == 'Z') {
    i++;
  } else if (i + 2 < n && (s[i] == '+' || s[i] == '-') && is_digit(s[i + 1]) &&
             is_digit(s[i + 2])) {
    i += 3;
    if (i + 2 < n && s[i] == ':' && is_digit(s[i + 1]))
      i += 3;
    else if (i + 1 < n && is_digit(s[i]) && is_digit(s[i + 1]))
      i += 2;
  }
  /* " AM", " p.m." */
  size_t k = i;
  if (k < n && s[k] == ' ')
    k++;
  if (k < n && (s[k] == 'a' || s[k] == 'A' || s[k] == 'p' || s[k] == 'P')) {
    size_t e = k + 1;
    if (e < n && s[e] == '.')
      e++;
    if (e < n && (s[e] == 'm' || s[e] == 'M')) {
      e++;
      if (e < n && s[e] == '.')
        e++;
      if (e >= n || !is_alnum((unsigned char)s[e]))
        i = e;
    }
  }
  return i;
}

static bool url_delim(unsigned char c)
{
  return c == ' ' || c == '\t' || c == '"' || c == '\'' || c == '(' || c == ')' ||
         c == '<' || c == '>' || c == '[' || c == ']' || c == '{' || c == '}' ||
         c == ',' || c == '`';
}

/* Length of a hash-like run at s (0 if it is not one). */
static size_t hash_len(const char *s, size_t n, unsigned char before)
{
  size_t i = 0;
  bool digit = false, upper = false, lower = false, hex = true;
  while (i < n && is_alnum((unsigned char)s[i])) {
    unsigned char ch = (unsigned char)s[i];
    digit |= is_digit(ch);
    upper |= ch >= 'A' && ch <= 'Z';
    lower |= ch >= 'a' && ch <= 'z';
    hex &= is_hex(ch);
    i++;
  }
  if (i >= 7 && digit && hex)
    return i;
  /* bundler chunk hashes: "dep-DG3BLbPj.js", "index.B1x2Yz9Q.js" */
  unsigned char after = i < n ? (unsigned char)s[i] : 0;
  if (i == 8 && digit && (upper || lower) && (before == '-' || before == '.') &&
      (after == '.' || after == '-'))
    return i;
  return 0;
}

char *classify_normalise(const char *msg, size_t len)
{
  struct sbuf in = SBUF_INIT, out = SBUF_INIT;
  if (msg == NULL)
    len = 0;
  if (len > 0)
    strip_into(&in, msg, len, len);
  const char *s = sbuf_str(&in);
  size_t n = in.len;
  sbuf_grow(&out, n);
  size_t i = 0;
  while (i < n) {
    unsigned char ch = (unsigned char)s[i];
    unsigned char prev = i > 0 ? (unsigned char)s[i - 1] : ' ';
    if (is_space(ch)) {
      if (out.len > 0 && out.buf[out.len - 1] != ' ')
        sbuf_addch(&out, ' ');
      i++;
      continue;
    }
    if (is_digit(ch) && !is_alnum(prev) && prev != ':' && prev != '.') {
      size_t k = timestamp_len(s + i, n - i);
      if (k > 0) {
        i += k;
        continue;
      }
    }
    if (ch == ':' && i + 1 < n && is_digit((unsigned char)s[i + 1]) && !is_space(prev) &&
        i > 0) {
      i++;
      while (i < n && is_digit((unsigned char)s[i]))
        i++;
      continue;
    }
    if (ch == '(' && i + 1 < n && is_digit((unsigned char)s[i + 1])) {
      size_t k = i + 1;
      while (k < n && is_digit((unsigned char)s[k]))
        k++;
      if (k < n && (s[k] == ',' || s[k] == ':')) {
        size_t d = ++k;
        while (k < n && is_digit((unsigned char)s[k]))
          k++;
        if (k > d && k < n && s[k] == ')') {
          i = k + 1;
          continue;
        }
      }
    }
    if ((ch == '?' || ch == '&') && i > 0 && !is_space(prev) && i + 1 < n &&
        (is_alnum((unsigned char)s[i + 1]) || s[i + 1] == '_')) {
      size_t k = i + 1;
      while (k < n && (is_alnum((unsigned char)s[k]) || s[k] == '_' || s[k] == '-'))
        k++;
      if (k >= n || s[k] == '=' || s[k] == '&' || url_delim((unsigned char)s[k])) {
        while (k < n && !url_delim((unsigned char)s[k]))
          k++;
        i = k;
        continue;
      }
    }
    if (is_alnum(ch) && !is_alnum(prev)) {
      size_t k = hash_len(s + i, n - i, prev);
      if (k > 0) {
        i += k;
        continue;
      }
      /* copy the whole word so that the hash test only sees word starts */
      size_t e = i;
      while (e < n && is_alnum((unsigned char)s[e]))
        e++;
      sbuf_add(&out, s + i, e - i);
      i = e;
      continue;
    }
    sbuf_addch(&out, (char)ch);
    i++;
  }
  while (out.len > 0 && out.buf[out.len - 1] == ' ')
    out.len--;
  if (out.buf)
    out.buf[out.len] = '\0';
  sbuf_release(&in);
  return sbuf_detach(&out, NULL);
}

uint64_t classify_hash(const char *tool, const char *category, const char *normalised)
{
  uint64_t h = 0xcbf29ce484222325ull;
  const char *parts[3] = {tool, category, normalised};
  for (int k = 0; k < 3; k++) {
    for (const unsigned char *p = (const unsigned char *)(parts[k] ? parts[k] : ""); *p;
         p++) {
      h ^= *p;
      h *= 0x100000001b3ull;
    }
    if (k < 2) {
      h ^= 0;
      h *= 0x100000001b3ull;
    }
  }
  return h;
}
