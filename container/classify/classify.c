/* The classifier: lines in, events out (the API is classify.h; its parts
 * share classify_int.h). */
#include "classify_int.h"

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
  cl_pending_reset(&c->p);
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
  const char *s = cl_clean_line(c, line ? line : "", len, &full);
  for (int k = 0; k < 2 && full > 0; k++) {
    size_t skip = cl_mux_prefix(s, full);
    s += skip;
    full -= skip;
  }
  size_t n = SP_MIN(full, CLASSIFY_LINE_MAX);
  cl_block_line(c, s, n, full, now_ms, cb, ud);
}

void classifier_flush(struct classifier *c, int64_t now_ms, int64_t idle_ms,
                      classify_cb cb, void *ud)
{
  if (c == NULL || c->p.state == BLOCK_NONE)
    return;
  if (idle_ms > 0 && now_ms - c->p.last_ms < idle_ms)
    return;
  cl_emit(c, cb, ud);
}
