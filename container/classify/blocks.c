/* Blocks: the grammar that joins a line to the pending event, ends the event
 * or starts another.  The event's state (enum block) selects a row of
 * grammar[]; the row's arcs are tried in order, and the first whose test the
 * line passes decides: its action, then the state it names (if it names
 * none, the state stays).  A line that ends a block goes on to the
 * BLOCK_NONE row, which starts the next one. */
#include "classify_int.h"

/* What an arc asks of a line.  "The text" is the line as the row reads it
 * (enum read). */
enum test {
  T_NONE, /* ends a row's arcs */
  T_ANY,
  T_BLANK,            /* nothing but blanks */
  T_INDENTED,         /* starts with a blank or closes a bracket: } ] ) */
  T_FLUSH_LEFT,       /* neither blank nor indented */
  T_PINO,             /* JSON with a "level": a structured log line */
  T_MATCH,            /* a rule matches the line */
  T_ECHO,             /* a rule match that repeats the event (cl_echo) */
  T_IN_OBJECT,        /* inside an error object that a stack dumped */
  T_FRAME,            /* cl_line_shape: "    at fn (file:1:2)" */
  T_LOCATION,         /* cl_line_shape: "  File: path:1:2", "/abs/path:1:2" */
  T_CODE,             /* cl_line_shape: code frames, carets, underlines */
  T_DETAIL,           /* cl_line_shape: "Plugin: vite:x", "Require stack:" */
  T_HELD,             /* a plain line is held back */
  T_PLAIN,            /* the event is classified; the line would start nothing */
  T_NPM,              /* "npm ERR!", "npm error" */
  T_TRACEBACK,        /* the text is "Traceback (most recent call last):" */
  T_GROUP_TRACEBACK,  /* ... an exception group's */
  T_GUTTER_TRACEBACK, /* ... behind a gutter */
  T_CHAIN,            /* the text is "During handling of the above ..." */
  T_GUTTER_RULE,      /* a gutter's "+-+---- 1 ----" */
  T_PY_BODY,          /* the text is indented or a frame: File "x", line 1 */
  T_THROW_SITE,       /* Node's "/abs/path/file.js:123" */
  T_CODE_FRAME,       /* the text is a numbered code frame line "12 | x" */
  T_BARE_PATH,        /* "./src/app/layout.tsx", not indented */
};

/* What an arc does with the line; all but A_END, A_HOLD_BLANK and A_HOLD add
 * it to the block (in BLOCK_NONE, start a block with it). */
enum action {
  A_END,        /* the line is not the block's: it ends (or none starts) */
  A_ADD,
  A_HOLD_BLANK, /* kept if the block goes on; more than BLANKS_MAX end it */
  A_HOLD,       /* a plain line: kept if a frame follows, else it ends the block */
  A_PINO,       /* an event of its own, emitted; if not JSON, the next arc */
  A_OBJECT,     /* tracks the dumped object's brackets */
  A_FRAME,      /* the frame's location; tracks brackets */
  A_LOCATION,   /* the location; then as A_DETAIL */
  A_DETAIL,     /* a tentative or generic event takes a rule's match */
  A_REFINE,     /* the match refines the event (refine()); tracks brackets */
  A_ECHO,       /* the repeated error adds only its location */
  A_NPM,        /* the line's rule match refines the event */
  A_PY_LOCATION,/* a frame: the innermost one locates the error */
  A_PY_FINAL,   /* the exception: the event's message and rule */
  A_THROW_SITE, /* the header's location, without a column */
  A_CODE_FRAME, /* the block began with a code frame: Bun's */
  A_BARE_PATH,  /* the path locates the error */
};

/* Which text of the line a row's tests read. */
enum read {
  READ_LINE,
  READ_AFTER_BLANKS,
  READ_AFTER_GUTTER, /* an exception group's "  | " */
};

struct arc {
  enum test test;
  enum action action;
  enum block to;  /* BLOCK_NONE: the state stays */
  bool open;      /* only while the event is tentative or generic */
};

struct row {
  enum read read;
  bool patient;   /* a tentative block may pass TENTATIVE_MAX_LINES */
  enum block npm; /* the state an npm rule's match moves to (NONE: stays) */
  enum block then; /* whose arcs read what no arc of this row takes */
  struct arc arcs[16];
};

static const struct row grammar[BLOCK_STATES] = {
    [BLOCK_NONE] = {
        .read = READ_AFTER_BLANKS,
        .arcs = {
            {T_PINO, A_PINO},
            {T_MATCH, A_REFINE, BLOCK_ERROR},
            {T_BLANK, A_END},
            {T_GROUP_TRACEBACK, A_ADD, BLOCK_PY_GROUP},
            {T_TRACEBACK, A_ADD, BLOCK_PY},
            {T_PY_BODY, A_PY_LOCATION, BLOCK_PY}, /* a SyntaxError report */
            {T_THROW_SITE, A_THROW_SITE, BLOCK_THROW_SITE},
            {T_CODE_FRAME, A_CODE_FRAME, BLOCK_ERROR},
            {T_BARE_PATH, A_BARE_PATH, BLOCK_ERROR}, /* before "Module not found" */
            {T_ANY, A_END},
        }},
    [BLOCK_ERROR] = {
        .npm = BLOCK_NPM,
        .arcs = {
            {T_PINO, A_END},
            {T_IN_OBJECT, A_OBJECT},
            {T_FRAME, A_FRAME},
            {T_LOCATION, A_LOCATION},
            {T_CODE, A_ADD},
            {T_DETAIL, A_DETAIL},
            {T_HELD, A_END},
            {T_GROUP_TRACEBACK, A_ADD, BLOCK_PY_GROUP, .open = true},
            {T_TRACEBACK, A_ADD, BLOCK_PY, .open = true},
            {T_MATCH, A_REFINE, .open = true},
            {T_ECHO, A_ECHO},
            {T_MATCH, A_END}, /* another error: the next event */
            {T_BLANK, A_HOLD_BLANK},
            {T_INDENTED, A_ADD},
            {T_PLAIN, A_HOLD}, /* "Check the render method of `App`." */
            {T_ANY, A_END},
        }},
    [BLOCK_THROW_SITE] = {
        .arcs = {
            {T_ANY, A_ADD, BLOCK_ERROR}, /* the source line */
        }},
    [BLOCK_NPM] = {
        .then = BLOCK_ERROR,
        .arcs = {
            {T_NPM, A_NPM},
            {T_FLUSH_LEFT, A_END},
        }},
    [BLOCK_PY] = {
        .patient = true, /* no rule matches a traceback before its last line */
        .arcs = {
            {T_BLANK, A_HOLD_BLANK},
            {T_PY_BODY, A_PY_LOCATION},
            {T_GROUP_TRACEBACK, A_ADD, BLOCK_PY_GROUP},
            {T_TRACEBACK, A_ADD},
            {T_CHAIN, A_ADD},
            {T_ANY, A_PY_FINAL, BLOCK_PY_END},
        }},
    [BLOCK_PY_END] = {
        .arcs = {
            {T_BLANK, A_HOLD_BLANK},
            {T_CHAIN, A_ADD, BLOCK_PY},
            {T_ANY, A_END},
        }},
    [BLOCK_PY_GROUP] = {
        .read = READ_AFTER_GUTTER,
        .patient = true,
        .arcs = {
            {T_GUTTER_RULE, A_ADD}, /* a "| Traceback" follows */
            {T_BLANK, A_HOLD_BLANK},
            {T_PY_BODY, A_PY_LOCATION},
            {T_TRACEBACK, A_ADD},
            {T_CHAIN, A_ADD},
            {T_ANY, A_PY_FINAL, BLOCK_PY_GROUP_END},
        }},
    [BLOCK_PY_GROUP_END] = {
        .read = READ_AFTER_GUTTER,
        .arcs = {
            {T_GUTTER_RULE, A_ADD},
            {T_BLANK, A_HOLD_BLANK},
            {T_CHAIN, A_ADD, BLOCK_PY_GROUP},
            {T_GUTTER_TRACEBACK, A_ADD, BLOCK_PY_GROUP},
            {T_ANY, A_END},
        }},
};

/* The BLOCK_NONE row runs for nearly every line: the loop over its arcs is
 * unrolled (they are constants), and their tests and actions inlined. */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* A line, with what the tests have found out about it so far. */
struct line {
  const char *s;
  size_t n, full; /* full: before the cut to CLASSIFY_LINE_MAX */
  const char *b;  /* after leading blanks */
  const char *t;  /* the text the row reads */
  size_t tn;
  bool rule;      /* READ_AFTER_GUTTER: a gutter's rule */
  int8_t traceback; /* the text is a traceback header; -1: not tried yet */
  int8_t matched;   /* -1: not tried yet */
  struct match m;
  bool shaped;
  enum shape shape;
  const char *f;  /* the shape's location */
  size_t flen;
  int lno, col;
};

static bool open_to_rules(const struct pending *p)
{
  return !p->classified || p->generic;
}

/* The event takes a rule's classification; an npm rule's may change the
 * kind of block. */
static void adopt(struct pending *p, const struct match *m)
{
  cl_adopt(p, m);
  if (grammar[p->state].npm != BLOCK_NONE && strcmp(m->tool, "npm") == 0)
    p->state = grammar[p->state].npm;
}

static bool is_python_frame(const char *s, size_t n)
{
  const char *f;
  size_t flen;
  int line;
  return cl_python_frame(s, n, &f, &flen, &line);
}

/* The innermost frame of a traceback is the one reported. */
static void python_location(struct pending *p, const char *s, size_t n)
{
  const char *t = cl_skip_ws(s, s + n);
  const char *f;
  size_t flen;
  int line;
  if (cl_python_frame(t, (size_t)(s + n - t), &f, &flen, &line))
    cl_set_location(p, f, flen, line, 0, RANK_LOCATION, true);
}

static void python_final(struct classifier *c, const char *s, size_t n)
{
  struct pending *p = &c->p;
  struct match m;
  if (cl_classify_text(c, s, n, CTX_PYTHON_TRACEBACK, &m)) {
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
    cl_trim(&t, &tn);
    p->message = cl_dup_utf8(t, tn);
  }
}

/* Terminals wrap long lines: is `prev` the first half of the path that the
 * location line goes on with ("...node_modules/react-rec" then
 * "onciler/cjs/x.js:6424:17")? */
static bool wrapped_path(const struct sbuf *prev, const char *f, size_t flen)
{
  if (prev->len < 60 || flen == 0 || f[0] == '/' || f[0] == '.' || f[0] == '~' ||
      f[0] == '\\' || (flen > 1 && f[1] == ':'))
    return false;
  const char *t = cl_skip_ws(prev->buf, prev->buf + prev->len);
  size_t m = (size_t)(prev->buf + prev->len - t);
  if (m == 0 || memchr(t, ' ', m) || !memchr(t, '/', m) || t[m - 1] == '/')
    return false;
  size_t fl;
  int l, c;
  return !cl_split_location(t, m, &fl, &l, &c) && cl_looks_like_path(t, m, false);
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
    cl_set_location(p, m->file, m->file_len, m->line, m->column, RANK_CAPTURE, false);
}

/* Is `f` (n bytes) a longer name of `known` ("/app/src/main.ts" for
 * "src/main.ts"), ending in it at a path boundary? */
static bool same_file_longer(const char *known, const char *f, size_t n)
{
  size_t k = strlen(known);
  if (cl_has_prefix(known, k, "./")) {
    known += 2;
    k -= 2;
  }
  return k > 0 && n > k && f[n - k - 1] == '/' && memcmp(f + n - k, known, k) == 0;
}

static bool match(struct classifier *c, struct line *l)
{
  if (l->matched < 0)
    l->matched = cl_classify_text(c, l->s, l->n, CTX_ANY, &l->m);
  return l->matched;
}

static enum shape shape(struct classifier *c, struct line *l)
{
  if (!l->shaped) {
    bool ts = c->p.tool && strcmp(c->p.tool, "typescript") == 0;
    l->shape = cl_line_shape(l->s, l->n, ts, &l->f, &l->flen, &l->lno, &l->col);
    l->shaped = true;
  }
  return l->shape;
}

static void read_as(struct line *l, enum read r)
{
  l->t = l->s;
  l->rule = false;
  l->traceback = -1;
  if (r == READ_AFTER_BLANKS)
    l->t = l->b;
  else if (r == READ_AFTER_GUTTER)
    l->t += cl_py_gutter(l->s, l->n, &l->rule);
  l->tn = (size_t)(l->s + l->n - l->t);
}

static bool traceback(struct line *l)
{
  if (l->traceback < 0)
    l->traceback = cl_is_traceback_header(l->t, l->tn);
  return l->traceback;
}

static bool starts_block(struct classifier *c, const struct line *l);

ALWAYS_INLINE bool test(struct classifier *c, struct line *l, enum test t)
{
  const struct pending *p = &c->p;
  const char *f;
  size_t flen;
  int line;
  switch (t) {
  case T_NONE:
    return false;
  case T_ANY:
    return true;
  case T_BLANK:
    return l->b == l->s + l->n;
  case T_INDENTED:
    return l->b != l->s || (l->n > 0 && (l->s[0] == '}' || l->s[0] == ']' || l->s[0] == ')'));
  case T_FLUSH_LEFT:
    return l->b == l->s && l->n > 0;
  case T_PINO:
    return cl_pino_candidate(l->s, l->n);
  case T_MATCH:
    return match(c, l);
  case T_ECHO:
    return match(c, l) && cl_echo(p, &l->m);
  case T_IN_OBJECT:
    return p->depth > 0 && p->depth_lines < 200 && p->held.len == 0;
  case T_FRAME:
    return shape(c, l) == SHAPE_FRAME;
  case T_LOCATION:
    return shape(c, l) == SHAPE_LOCATION;
  case T_CODE:
    return shape(c, l) == SHAPE_CODE;
  case T_DETAIL:
    return shape(c, l) == SHAPE_DETAIL;
  case T_HELD:
    return p->held.len > 0;
  case T_PLAIN:
    return p->classified && !starts_block(c, l);
  case T_NPM:
    return cl_is_npm_line(l->s, l->n);
  case T_TRACEBACK:
    return traceback(l);
  case T_GROUP_TRACEBACK:
    return traceback(l) && cl_is_group_header(l->s, l->n);
  case T_GUTTER_TRACEBACK:
    return l->t != l->s && traceback(l);
  case T_CHAIN:
    return cl_is_traceback_chain(l->t, l->tn);
  case T_GUTTER_RULE:
    return l->rule;
  case T_PY_BODY:
    return (l->tn > 0 && is_space((unsigned char)l->t[0])) || is_python_frame(l->t, l->tn);
  case T_THROW_SITE:
    return cl_throw_site(l->s, l->n, &f, &flen, &line);
  case T_CODE_FRAME:
    return l->tn > 0 && is_digit((unsigned char)l->t[0]) && cl_is_code_frame(l->t, l->tn);
  case T_BARE_PATH:
    return l->t == l->s && cl_bare_path(l->t, l->tn);
  }
  return false;
}

/* Would the line start a block of its own, if nothing continued it? */
static bool starts_block(struct classifier *c, const struct line *l)
{
  struct line as_new = *l;
  read_as(&as_new, grammar[BLOCK_NONE].read);
  for (const struct arc *a = grammar[BLOCK_NONE].arcs; a->test != T_NONE; a++)
    if (test(c, &as_new, a->test))
      return a->action != A_END;
  return false;
}

/* A location line: the event's location, unless one it knows is better. */
static void location_line(struct pending *p, const struct line *l)
{
  const char *f = l->f;
  size_t flen = l->flen;
  struct sbuf joined = SBUF_INIT;
  if (wrapped_path(&p->last, f, flen)) {
    const char *t = cl_skip_ws(p->last.buf, p->last.buf + p->last.len);
    sbuf_add(&joined, t, (size_t)(p->last.buf + p->last.len - t));
    sbuf_add(&joined, f, flen);
    f = joined.buf;
    flen = joined.len;
  }
  bool file_only = l->lno == 0 && f > l->s + 5 && memcmp(f - 6, "File: ", 6) == 0;
  if (file_only) {
    /* "File: /abs/src/main.ts" after "src/main.ts:4:16": the same file,
     * named in full; on its own, a file without a line locates nothing */
    if (p->file && p->line > 0 && same_file_longer(p->file, f, flen)) {
      free(p->file);
      p->file = cl_path_dup(f, flen);
    }
  } else {
    cl_set_location(p, f, flen, l->lno, l->col, RANK_LOCATION, false);
  }
  sbuf_release(&joined);
}

enum outcome { TAKEN, ENDS, NEXT_ARC };

ALWAYS_INLINE enum outcome act(struct classifier *c, struct line *l, const struct arc *a,
                               int64_t now, classify_cb cb, void *ud)
{
  struct pending *p = &c->p;
  bool handled;
  switch (a->action) {
  case A_END:
    return ENDS;
  case A_HOLD_BLANK:
    if (p->blanks >= BLANKS_MAX || p->held.len > 0)
      return ENDS;
    p->blanks++;
    return TAKEN;
  case A_HOLD:
    sbuf_add(&p->held, l->s, l->n);
    return TAKEN;
  case A_PINO:
    return cl_pino_line(c, l->s, l->full, now, cb, ud, &handled) || handled ? TAKEN
                                                                             : NEXT_ARC;
  default:
    break;
  }
  bool start = p->state == BLOCK_NONE;
  if (start)
    cl_block_start(p, l->s, l->n, now, a->to);
  else if (a->to != BLOCK_NONE)
    p->state = a->to;
  const char *f;
  size_t flen;
  int line;
  switch (a->action) {
  case A_LOCATION:
    location_line(p, l);
    /* fall through */
  case A_DETAIL:
    if (open_to_rules(p) && match(c, l))
      refine(p, &l->m);
    break;
  case A_OBJECT:
    p->depth_lines++;
    track_object(p, l->s, l->n);
    break;
  case A_FRAME:
    cl_frame_seen(p, l->f, l->flen, l->lno, l->col);
    track_object(p, l->s, l->n);
    break;
  case A_REFINE:
    refine(p, &l->m);
    track_object(p, l->s, l->n);
    break;
  case A_ECHO:
    if (l->m.file)
      cl_set_location(p, l->m.file, l->m.file_len, l->m.line, l->m.column, RANK_CAPTURE,
                      true);
    break;
  case A_NPM:
    if (match(c, l))
      refine(p, &l->m);
    break;
  case A_PY_LOCATION:
    python_location(p, l->t, l->tn);
    break;
  case A_PY_FINAL:
    python_final(c, l->t, l->tn);
    break;
  case A_THROW_SITE:
    cl_throw_site(l->s, l->n, &f, &flen, &line);
    if (!cl_has_prefix(f, flen, "node:") && !cl_has_prefix(f, flen, "internal/")) {
      cl_set_location(p, f, flen, line, 0, RANK_LOCATION, false);
      p->header_column = true;
    }
    break;
  case A_CODE_FRAME:
    p->bun_frame = true;
    break;
  case A_BARE_PATH:
    cl_set_location(p, l->t, l->tn, 0, 0, RANK_LOCATION, false);
    break;
  default:
    break;
  }
  if (!start)
    cl_block_add(p, l->s, l->n, now);
  return TAKEN;
}

/* The arc's action, or NEXT_ARC if the arc does not apply to the line. */
ALWAYS_INLINE enum outcome try_arc(struct classifier *c, struct line *l, const struct arc *a,
                                   int64_t now, classify_cb cb, void *ud)
{
  if ((a->open && !open_to_rules(&c->p)) || !test(c, l, a->test))
    return NEXT_ARC;
  return act(c, l, a, now, cb, ud);
}

/* Does the pending block take the line? */
static __attribute__((noinline)) bool take(struct classifier *c, struct line *l, int64_t now,
                                           classify_cb cb, void *ud)
{
  const struct pending *p = &c->p;
  if (p->lines >= BLOCK_MAX_LINES ||
      (!p->classified && !grammar[p->state].patient && p->lines >= TENTATIVE_MAX_LINES))
    return false;
  for (const struct row *row = &grammar[p->state];; row = &grammar[row->then]) {
    read_as(l, row->read);
    for (const struct arc *a = row->arcs; a->test != T_NONE; a++) {
      enum outcome o = try_arc(c, l, a, now, cb, ud);
      if (o != NEXT_ARC)
        return o == TAKEN;
    }
    if (row->then == BLOCK_NONE)
      return false;
  }
}

/* The BLOCK_NONE row: a block may start with the line. */
ALWAYS_INLINE void start(struct classifier *c, struct line *l, int64_t now, classify_cb cb,
                         void *ud)
{
  const struct row *row = &grammar[BLOCK_NONE];
  read_as(l, row->read);
#pragma GCC unroll 16
  for (size_t i = 0; i < SP_ARRAY_SIZE(row->arcs); i++)
    if (row->arcs[i].test == T_NONE || try_arc(c, l, &row->arcs[i], now, cb, ud) != NEXT_ARC)
      return;
}

/* One line: the pending block takes it, or it ends the block and may start
 * the next one. */
void cl_block_line(struct classifier *c, const char *s, size_t n, size_t full,
                   int64_t now, classify_cb cb, void *ud)
{
  struct line l;
  l.s = s;
  l.n = n;
  l.full = full;
  l.b = cl_skip_ws(s, s + n);
  l.matched = -1;
  l.shaped = false;
  if (c->p.state != BLOCK_NONE) {
    if (take(c, &l, now, cb, ud))
      return;
    cl_emit(c, cb, ud);
  }
  start(c, &l, now, cb, ud);
}

/* Length of the prefix that a log multiplexer puts in front of every line:
 * docker compose ("web-1  | "), BuildKit ("#9 0.329 ", "46.59 "),
 * concurrently ("[0] ", "[name   ] "), a box-drawing gutter ("│ "). */
size_t cl_mux_prefix(const char *s, size_t n)
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
      letter |= cl_is_alpha((unsigned char)s[i]);
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
