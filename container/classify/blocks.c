/* Blocks: whether a following line continues the pending event, ends it or
 * starts another. */
#include "classify_int.h"

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
    cl_adopt(p, &m);
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
    cl_adopt(p, m);
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

/* Does the line continue the pending block?  If so it is consumed. */
bool cl_continue_block(struct classifier *c, const char *s, size_t n, int64_t now)
{
  struct pending *p = &c->p;
  bool blank = cl_is_blank(s, n);
  bool indented = n > 0 && is_space((unsigned char)s[0]);
  struct match m;

  if (p->lines >= BLOCK_MAX_LINES)
    return false;
  if (!p->classified && p->mode != MODE_PYTHON && p->lines >= TENTATIVE_MAX_LINES)
    return false;

  if (p->source_next) {
    p->source_next = false;
    cl_block_add(p, s, n, now);
    return true;
  }

  if (p->mode == MODE_PYTHON || p->mode == MODE_PYTHON_END) {
    /* Inside an exception group, read what follows the gutter. */
    bool rule = false;
    size_t g = p->py_group ? cl_py_gutter(s, n, &rule) : 0;
    if (rule) {
      cl_block_add(p, s, n, now); /* the mode stays: a "| Traceback" follows */
      return true;
    }
    const char *t = s + g;
    size_t tn = n - g;
    bool in = tn > 0 && is_space((unsigned char)t[0]);
    if (blank)
      return hold_blank(p);
    if (p->mode == MODE_PYTHON_END) {
      if (!cl_is_traceback_chain(t, tn) && !(g > 0 && cl_is_traceback_header(t, tn)))
        return false;
      cl_block_add(p, s, n, now);
      p->mode = MODE_PYTHON;
      return true;
    }
    cl_block_add(p, s, n, now);
    if (in || is_python_frame(t, tn)) {
      python_location(p, t, tn);
    } else if (!cl_is_traceback_header(t, tn) && !cl_is_traceback_chain(t, tn)) {
      python_final(c, t, tn);
    } else {
      p->py_group = p->py_group || cl_is_group_header(s, n);
    }
    return true;
  }

  switch (p->mode) {
  case MODE_PYTHON:
  case MODE_PYTHON_END:
    break;
  case MODE_NPM:
    if (cl_is_npm_line(s, n)) {
      cl_block_add(p, s, n, now);
      if (cl_classify_text(c, s, n, CTX_ANY, &m))
        refine(p, &m);
      return true;
    }
    if (!indented && !blank)
      return false;
    break;
  case MODE_NORMAL:
    break;
  }

  if (cl_pino_candidate(s, n))
    return false;
  if (p->depth > 0 && p->depth_lines < 200 && p->held.len == 0) {
    p->depth_lines++;
    cl_block_add(p, s, n, now);
    track_object(p, s, n);
    return true;
  }

  const char *f;
  size_t flen;
  int line, col;
  bool ts = p->tool && strcmp(p->tool, "typescript") == 0;
  enum shape sh = cl_line_shape(s, n, ts, &f, &flen, &line, &col);
  if (sh != SHAPE_NONE) {
    if (sh == SHAPE_FRAME) {
      cl_frame_seen(p, f, flen, line, col);
    } else if (sh == SHAPE_LOCATION) {
      struct sbuf joined = SBUF_INIT;
      if (wrapped_path(&p->last, f, flen)) {
        const char *t = cl_skip_ws(p->last.buf, p->last.buf + p->last.len);
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
          p->file = cl_path_dup(f, flen);
        }
      } else {
        cl_set_location(p, f, flen, line, col, RANK_LOCATION, false);
      }
      sbuf_release(&joined);
    }
    cl_block_add(p, s, n, now);
    if (sh == SHAPE_FRAME)
      track_object(p, s, n);
    if ((sh == SHAPE_LOCATION || sh == SHAPE_DETAIL) && (!p->classified || p->generic) &&
        cl_classify_text(c, s, n, CTX_ANY, &m))
      refine(p, &m);
    return true;
  }
  if (p->held.len > 0)
    return false;
  if ((!p->classified || p->generic) && cl_is_traceback_header(s, n)) {
    cl_block_add(p, s, n, now);
    p->mode = MODE_PYTHON;
    p->py_group = cl_is_group_header(s, n);
    return true;
  }
  if (cl_classify_text(c, s, n, CTX_ANY, &m)) {
    if (!p->classified || p->generic) {
      cl_block_add(p, s, n, now);
      refine(p, &m);
      track_object(p, s, n);
      return true;
    }
    if (cl_echo(p, &m)) {
      cl_block_add(p, s, n, now);
      p->merged = true;
      if (m.file)
        cl_set_location(p, m.file, m.file_len, m.line, m.column, RANK_CAPTURE, true);
      return true;
    }
    c->carry = m; /* the line starts the next event: do not match it twice */
    c->has_carry = true;
    return false;
  }
  if (blank)
    return hold_blank(p);
  if (indented || (n > 0 && (s[0] == '}' || s[0] == ']' || s[0] == ')'))) {
    cl_block_add(p, s, n, now);
    return true;
  }
  /* A plain line ("Check the render method of `App`.") may still be
   * followed by the event's frames: hold it back for one line. */
  if (p->classified && !cl_is_starter(s, n)) {
    sbuf_add(&p->held, s, n);
    return true;
  }
  return false;
}

/* A line that no block continues. */
void cl_fresh_line(struct classifier *c, const char *s, size_t n, size_t full,
                   int64_t now, classify_cb cb, void *ud)
{
  struct pending *p = &c->p;
  bool handled;
  if (cl_pino_candidate(s, n) && (cl_pino_line(c, s, full, now, cb, ud, &handled) || handled))
    return;
  struct match m;
  bool matched = c->has_carry;
  if (matched)
    m = c->carry;
  else
    matched = cl_classify_text(c, s, n, CTX_ANY, &m);
  c->has_carry = false;
  if (matched) {
    cl_block_start(p, s, n, now, MODE_NORMAL);
    cl_adopt(p, &m);
    track_object(p, s, n);
    return;
  }
  const char *t = cl_skip_ws(s, s + n);
  size_t tn = (size_t)(s + n - t);
  if (tn == 0)
    return;
  if (cl_is_traceback_header(t, tn)) {
    cl_block_start(p, s, n, now, MODE_PYTHON);
    p->py_group = cl_is_group_header(s, n);
    return;
  }
  const char *f;
  size_t flen;
  int line;
  if (cl_python_frame(t, tn, &f, &flen, &line)) {
    /* A SyntaxError report starts with the frame, without a header. */
    cl_block_start(p, s, n, now, MODE_PYTHON);
    python_location(p, s, n);
    return;
  }
  if (cl_throw_site(s, n, &f, &flen, &line)) {
    cl_block_start(p, s, n, now, MODE_NORMAL);
    p->source_next = true;
    if (!cl_has_prefix(f, flen, "node:") && !cl_has_prefix(f, flen, "internal/")) {
      cl_set_location(p, f, flen, line, 0, RANK_LOCATION, false);
      p->header_loc = true;
    }
    return;
  }
  if (is_digit((unsigned char)t[0]) && cl_is_code_frame(t, tn)) {
    cl_block_start(p, s, n, now, MODE_NORMAL);
    p->bun_frame = true;
    return;
  }
  if (t == s && cl_bare_path(t, tn)) {
    /* "./src/app/layout.tsx" before "Module not found: ..." */
    cl_block_start(p, s, n, now, MODE_NORMAL);
    cl_set_location(p, t, tn, 0, 0, RANK_LOCATION, false);
    return;
  }
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
