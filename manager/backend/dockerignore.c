/* .dockerignore reading and matching; the contract is in dockerignore.h. */
#include "dockerignore.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "str.h"
#include "util.h"

struct ignore_rule {
  char *pat;
  bool negate;
};

struct dockerignore {
  struct ignore_rule *v;
  int n, cap;
};

void dockerignore_free(struct dockerignore *ig)
{
  if (ig == NULL)
    return;
  for (int i = 0; i < ig->n; i++)
    free(ig->v[i].pat);
  free(ig->v);
  free(ig);
}

/* Docker's reading of the file: one pattern a line, '#' comments, '!'
 * exceptions, cleaned like filepath.Clean, relative to the context. */
struct dockerignore *dockerignore_load(const char *path, struct sp_error **err)
{
  cleanup_error struct sp_error *why = NULL;
  cleanup_free char *txt = sp_read_file(path, 1 << 20, NULL, &why);
  if (txt == NULL && why->errnum != ENOENT) {
    if (err != NULL && *err == NULL)
      *err = steal_pointer(&why);
    return NULL;
  }
  struct dockerignore *ig = xcalloc(1, sizeof *ig);
  if (txt == NULL)
    return ig;
  char *save = NULL;
  for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '#') /* a comment only in column 1, as Docker reads it */
      continue;
    while (isspace((unsigned char)*line))
      line++;
    size_t n = strlen(line);
    while (n > 0 && isspace((unsigned char)line[n - 1]))
      line[--n] = '\0';
    if (n == 0)
      continue;
    bool neg = false;
    if (line[0] == '!') {
      neg = true;
      line++;
      while (isspace((unsigned char)*line))
        line++;
    }
    /* clean: no leading "/" or "./", no empty or "." segments, no trailing
     * "/", and ".." takes the segment before it away (none leaves the
     * context's root) */
    struct sbuf p = SBUF_INIT;
    char *seg_save = NULL;
    bool rooted = line[0] == '/', outside = false;
    for (char *seg = strtok_r(line, "/", &seg_save); seg; seg = strtok_r(NULL, "/", &seg_save)) {
      if (strcmp(seg, ".") == 0)
        continue;
      if (strcmp(seg, "..") == 0) {
        /* above a relative pattern's start it names nothing in the
         * context; above "/" it stays at "/" */
        outside |= p.len == 0 && !rooted;
        char *last = p.len ? memrchr(p.buf, '/', p.len) : NULL;
        p.len = last ? (size_t)(last - p.buf) : 0;
        if (p.buf)
          p.buf[p.len] = '\0';
        continue;
      }
      if (p.len)
        sbuf_addch(&p, '/');
      sbuf_addstr(&p, seg);
    }
    if (p.len == 0 || outside) {
      sbuf_release(&p);
      continue;
    }
    if (ig->n == ig->cap) {
      ig->cap = ig->cap ? 2 * ig->cap : 16;
      ig->v = xreallocarray(ig->v, (size_t)ig->cap, sizeof *ig->v);
    }
    ig->v[ig->n].pat = sbuf_detach(&p, NULL);
    ig->v[ig->n].negate = neg;
    ig->n++;
  }
  return ig;
}

static int split(char *s, char **out, int max)
{
  int n = 0;
  char *save = NULL;
  for (char *t = strtok_r(s, "/", &save); t && n < max; t = strtok_r(NULL, "/", &save))
    out[n++] = t;
  return n;
}

#define MAX_DEPTH 128

/* Does the pattern pat[0..np) match path[0..k) for some k >= 1, that is
 * the path or one of its parent directories?  "**" matches any number of
 * segments, other segments are fnmatch patterns (*, ?, [...], \).  One
 * pass over the pattern, reach[j] saying whether the segments so far match
 * path[0..j): no backtracking, so many "**" cost no more than a few. */
static bool prefix_match(char **pat, int np, char **path, int nq)
{
  bool reach[MAX_DEPTH + 1];
  reach[0] = true;
  for (int j = 1; j <= nq; j++)
    reach[j] = false;
  for (int i = 0; i < np; i++) {
    if (strcmp(pat[i], "**") == 0) {
      for (int j = 1; j <= nq; j++)
        reach[j] = reach[j] || reach[j - 1];
      continue;
    }
    for (int j = nq; j >= 1; j--)
      reach[j] = reach[j - 1] && fnmatch(pat[i], path[j - 1], 0) == 0;
    reach[0] = false;
  }
  for (int k = 1; k <= nq; k++)
    if (reach[k])
      return true;
  return false;
}

/* Does the pattern match rel or one of its parent directories? */
static bool pattern_hits(const char *pattern, const char *rel)
{
  char pbuf[PATH_MAX], qbuf[PATH_MAX];
  char *ps[MAX_DEPTH], *qs[MAX_DEPTH];
  snprintf(pbuf, sizeof pbuf, "%s", pattern);
  snprintf(qbuf, sizeof qbuf, "%s", rel);
  int np = split(pbuf, ps, MAX_DEPTH), nq = split(qbuf, qs, MAX_DEPTH);
  return prefix_match(ps, np, qs, nq);
}

bool dockerignore_excludes(const struct dockerignore *ig, const char *rel)
{
  bool out = false;
  for (int i = 0; i < ig->n; i++)
    if (ig->v[i].negate == out && pattern_hits(ig->v[i].pat, rel))
      out = !ig->v[i].negate;
  return out;
}

bool dockerignore_exception_inside(const struct dockerignore *ig, const char *rel)
{
  for (int i = 0; i < ig->n; i++) {
    if (!ig->v[i].negate)
      continue;
    char pbuf[PATH_MAX], qbuf[PATH_MAX];
    char *ps[MAX_DEPTH], *qs[MAX_DEPTH];
    snprintf(pbuf, sizeof pbuf, "%s", ig->v[i].pat);
    snprintf(qbuf, sizeof qbuf, "%s", rel);
    int np = split(pbuf, ps, MAX_DEPTH), nq = split(qbuf, qs, MAX_DEPTH);
    bool could = true;
    for (int k = 0; k < nq; k++) {
      if (k >= np) {
        could = false;
        break;
      }
      if (strcmp(ps[k], "**") == 0)
        break;
      if (fnmatch(ps[k], qs[k], 0) != 0) {
        could = false;
        break;
      }
    }
    if (could)
      return true;
  }
  return false;
}
