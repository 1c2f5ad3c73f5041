/* Matching one line against the rules, through the prefilter. */
#include "classify_int.h"

bool cl_run(struct classifier *c, const pcre2_code *re, const char *s, size_t n)
{
  int rc = pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, c->md, c->mctx);
  return rc > 0;
}

bool cl_group(struct classifier *c, const uint32_t *g, const char *s,
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
  if (!cl_group(c, g, s, &p, &n))
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
bool cl_benign(struct classifier *c, const char *s, size_t n)
{
  for (size_t i = 0; i < c->r->nbenign; i++) {
    const struct benign *b = &c->r->benign[i];
    if ((c->bcand[i] == c->gen || b->unfiltered) && cl_run(c, b->re, s, n))
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
  if (!cl_group(c, ru->g_message, s, &m->msg, &m->msg_len)) {
    m->msg = s;
    m->msg_len = n;
  }
  cl_trim(&m->msg, &m->msg_len);
  if (cl_group(c, ru->g_file, s, &m->file, &m->file_len)) {
    cl_trim(&m->file, &m->file_len);
    if (m->file_len == 0)
      m->file = NULL;
  }
  m->line = group_int(c, ru->g_line, s);
  m->column = group_int(c, ru->g_column, s);
}

/* The first specific rule (not generic, not a wrapper, not a warning) that
 * matches a message quoted inside another line. */
bool cl_classify_quoted(struct classifier *c, const char *s, size_t n,
                        struct match *m)
{
  const struct classify_rules *r = c->r;
  n = SP_MIN(n, CLASSIFY_LINE_MAX);
  if (!cl_prefilter(c, s, n))
    return false;
  for (size_t i = 0; i < r->nrules; i++) {
    const struct rule *ru = &r->rules[i];
    if (ru->ctx != CTX_ANY || ru->generic || ru->wrapper ||
        strcmp(ru->severity, "error") != 0 || (c->cand[i] != c->gen && !ru->unfiltered))
      continue;
    if (cl_run(c, ru->re, s, n)) {
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
  if (!cl_classify_quoted(c, m->msg, m->msg_len, &q))
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
bool cl_classify_text(struct classifier *c, const char *s, size_t n,
                      enum rule_context ctx, struct match *m)
{
  const struct classify_rules *r = c->r;
  if (ctx == CTX_PYTHON_TRACEBACK) {
    for (size_t i = 0; i < r->nrules; i++) {
      const struct rule *ru = &r->rules[i];
      if (ru->ctx == CTX_PYTHON_TRACEBACK && cl_run(c, ru->re, s, n)) {
        fill_match(c, ru, s, n, m);
        return true;
      }
    }
    return false;
  }
  if (!cl_prefilter(c, s, n))
    return false;
  for (size_t i = 0; i < r->nrules; i++) {
    const struct rule *ru = &r->rules[i];
    if (ru->ctx != CTX_ANY || (c->cand[i] != c->gen && !ru->unfiltered))
      continue;
    if (cl_run(c, ru->re, s, n)) {
      fill_match(c, ru, s, n, m); /* before cl_benign() reuses the match data */
      if (cl_benign(c, s, n))
        return false;
      if (ru->wrapper)
        unwrap(c, m);
      return true;
    }
  }
  return false;
}
