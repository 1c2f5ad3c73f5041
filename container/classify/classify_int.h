/* What the classifier's files share: its limits, its types and the
 * functions one part calls in another (cl_*).  classify.h is the API. */
#ifndef SP_CLASSIFY_INT_H
#define SP_CLASSIFY_INT_H

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

/* The kind of block being assembled, which decides what a following line
 * may be: each state's row in grammar[] (blocks.c) says which lines continue
 * the block, which end it, and the state that comes next. */
enum block {
  BLOCK_NONE,         /* no pending event: its row says which lines start one */
  BLOCK_ERROR,        /* an error and its stack, code frames, locations */
  BLOCK_THROW_SITE,   /* Node's throw-site header: its source line comes next */
  BLOCK_NPM,          /* npm ERR! lines */
  BLOCK_PY,           /* a Python traceback, before its final line */
  BLOCK_PY_END,       /* after the final line: only a chained traceback follows */
  BLOCK_PY_GROUP,     /* BLOCK_PY inside an exception group (behind a gutter) */
  BLOCK_PY_GROUP_END, /* BLOCK_PY_END inside an exception group */
  BLOCK_STATES
};

enum loc_rank {
  RANK_CAPTURE = 1,  /* from the event's own line */
  RANK_LOCATION = 2, /* a location line, a throw-site header, File: */
  RANK_FRAME = 3,    /* an in-project stack frame */
  RANK_OTHER = 4,    /* a frame outside the project (node_modules) */
  RANK_NONE = 100,
};

struct pending {
  enum block state;
  bool classified; /* a rule matched; otherwise tentative */
  bool generic, keep_tool, restart; /* the matched rule's */
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
  bool header_column; /* the location is a throw-site header's, without a
                         column: the first stack frame may give it */
  int depth;        /* inside a dumped error object "{ code: 'X', ... }" */
  int depth_lines;
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


#define LITS_MAX 16
struct lits {
  size_t n;
  struct sbuf s[LITS_MAX];
};

#define cleanup_rules __attribute__((cleanup(rules_cleanup)))
enum shape {
  SHAPE_NONE,
  SHAPE_FRAME,    /* "    at fn (file:1:2)" */
  SHAPE_LOCATION, /* "  File: path:1:2", "    path:1:2:", "/abs/path:1:2" */
  SHAPE_CODE,     /* code frames, carets, underlines */
  SHAPE_DETAIL,   /* "Plugin: vite:x", "Require stack:", "- /path" */
};


/* text.c */
char *cl_dup_utf8(const char *s, size_t n);
void cl_add_utf8(struct sbuf *sb, const char *str, size_t n);
const char *cl_clean_line(struct classifier *c, const char *line, size_t len,
                          size_t *out_len);
size_t cl_strip_into(struct sbuf *out, const char *str, size_t n,
                     size_t max_out);

/* literals.c */
bool cl_prefilter(struct classifier *c, const char *str, size_t n);
void cl_prefilter_build(struct classify_rules *r);
void cl_add_literals(struct classify_rules *r, uint32_t idx, bool benign,
                     const char *pat, size_t len);

/* match.c */
bool cl_classify_text(struct classifier *c, const char *s, size_t n,
                      enum rule_context ctx, struct match *m);
bool cl_run(struct classifier *c, const pcre2_code *re, const char *s, size_t n);
bool cl_benign(struct classifier *c, const char *s, size_t n);
bool cl_group(struct classifier *c, const uint32_t *g, const char *s,
              const char **out, size_t *len);
bool cl_classify_quoted(struct classifier *c, const char *s, size_t n,
                        struct match *m);

/* location.c */
bool cl_split_location(const char *s, size_t n, size_t *flen, int *line,
                       int *col);
void cl_frame_seen(struct pending *p, const char *f, size_t n, int line, int col);
bool cl_looks_like_path(const char *s, size_t n, bool spaces_ok);
char *cl_path_dup(const char *f, size_t n);
bool cl_frame_location(const char *t, size_t n, const char **f, size_t *flen,
                       int *line, int *col);
void cl_set_location(struct pending *p, const char *f, size_t n, int line,
                     int col, int rank, bool replace_equal);
bool cl_python_frame(const char *t, size_t n, const char **f, size_t *flen,
                     int *line);

/* shapes.c */
bool cl_throw_site(const char *s, size_t n, const char **f, size_t *flen, int *line);
bool cl_is_code_frame(const char *t, size_t n);
bool cl_is_traceback_header(const char *s, size_t n);
bool cl_bare_path(const char *t, size_t m);
bool cl_is_traceback_chain(const char *s, size_t n);
bool cl_is_group_header(const char *s, size_t n);
bool cl_is_npm_line(const char *s, size_t n);
enum shape cl_line_shape(const char *s, size_t n, bool typescript, const char **f,
                         size_t *flen, int *line, int *col);
bool cl_pino_candidate(const char *s, size_t n);
size_t cl_py_gutter(const char *s, size_t n, bool *rule);

/* pending.c */
bool cl_echo(const struct pending *p, const struct match *m);
void cl_adopt(struct pending *p, const struct match *m);
void cl_pending_reset(struct pending *p);
void cl_block_start(struct pending *p, const char *s, size_t n, int64_t now,
                    enum block state);
void cl_emit(struct classifier *c, classify_cb cb, void *ud);
void cl_block_add(struct pending *p, const char *s, size_t n, int64_t now);

/* pino.c */
bool cl_pino_line(struct classifier *c, const char *s, size_t n, int64_t now,
                  classify_cb cb, void *ud, bool *handled);

/* blocks.c */
size_t cl_mux_prefix(const char *s, size_t n);
void cl_block_line(struct classifier *c, const char *s, size_t n, size_t full,
                   int64_t now, classify_cb cb, void *ud);

static inline bool is_space(unsigned char c) { return c == ' ' || c == '\t'; }
static inline bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline void rules_cleanup(struct classify_rules **r) { classify_rules_free(*r); }

static inline bool cl_is_alpha(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool is_alnum(unsigned char c) { return cl_is_alpha(c) || is_digit(c); }

static inline bool cl_is_hex(unsigned char c)
{
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static inline bool cl_has_prefix(const char *s, size_t n, const char *prefix)
{
  size_t k = strlen(prefix);
  return n >= k && memcmp(s, prefix, k) == 0;
}

static inline const char *cl_skip_ws(const char *s, const char *end)
{
  while (s < end && is_space((unsigned char)*s))
    s++;
  return s;
}

static inline void cl_trim(const char **s, size_t *n)
{
  while (*n > 0 && is_space((unsigned char)**s)) {
    (*s)++;
    (*n)--;
  }
  while (*n > 0 && is_space((unsigned char)(*s)[*n - 1]))
    (*n)--;
}

static inline bool cl_is_blank(const char *s, size_t n)
{
  return cl_skip_ws(s, s + n) == s + n;
}

#endif
