/* The prefilter: the literals a rule's pattern cannot match without, pulled
 * out of its PCRE2 source, and the index that skips the rules whose literals
 * a line lacks. */
#include "classify_int.h"

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
    if (*p == '[' || *p == '(') {
      p = *p == '[' ? class_end(p, end) : group_end(p, end);
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
          for (int k = 0; k < 2 && p < end && cl_is_hex((unsigned char)*p); k++)
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
          while (f < q && (cl_is_alpha((unsigned char)*f) || *f == '-' || *f == '^'))
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
void cl_add_literals(struct classify_rules *r, uint32_t idx, bool benign,
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

void cl_prefilter_build(struct classify_rules *r)
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
bool cl_prefilter(struct classifier *c, const char *str, size_t n)
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
