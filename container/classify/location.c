/* Locations: file:line:column in messages and stack frames, and which of
 * them is the user's own code (not node_modules, not a bundler's chunk). */
#include "classify_int.h"

static bool path_in_project(const char *f, size_t n)
{
  static const char *const outside[] = {
      "node_modules", "<anonymous>", "site-packages", "dist-packages",
      "/lib/python",  "<frozen",     "webpack/bootstrap", "webpack/runtime",
  };
  if (n == 0 || cl_has_prefix(f, n, "node:") || cl_has_prefix(f, n, "internal/") ||
      cl_has_prefix(f, n, "bun:") || cl_has_prefix(f, n, "native") || f[0] == '<')
    return false;
  for (size_t i = 0; i < SP_ARRAY_SIZE(outside); i++)
    if (memmem(f, n, outside[i], strlen(outside[i])))
      return false;
  return true;
}

/* A file name from a location: file:// URLs become paths (percent-decoded). */
char *cl_path_dup(const char *f, size_t n)
{
  struct sbuf sb = SBUF_INIT;
  if (cl_has_prefix(f, n, "file://")) {
    f += 7, n -= 7;
    if (n >= 4 && f[0] == '/' && cl_is_alpha((unsigned char)f[1]) && f[2] == ':' &&
        f[3] == '/')
      f++, n--;
    for (size_t i = 0; i < n; i++) {
      if (f[i] == '%' && i + 2 < n && cl_is_hex((unsigned char)f[i + 1]) &&
          cl_is_hex((unsigned char)f[i + 2])) {
        char hex[3] = {f[i + 1], f[i + 2], 0};
        sbuf_addch(&sb, (char)strtol(hex, NULL, 16));
        i += 2;
      } else {
        sbuf_addch(&sb, f[i]);
      }
    }
    char *raw = sbuf_detach(&sb, NULL);
    char *r = cl_dup_utf8(raw, strlen(raw));
    free(raw);
    return r;
  }
  return cl_dup_utf8(f, n);
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
bool cl_split_location(const char *s, size_t n, size_t *flen, int *line,
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

bool cl_looks_like_path(const char *s, size_t n, bool spaces_ok)
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

void cl_set_location(struct pending *p, const char *f, size_t n, int line,
                     int col, int rank, bool replace_equal)
{
  if (f == NULL || n == 0 || rank > p->rank || (rank == p->rank && !replace_equal))
    return;
  if (col < 0)
    col = 0;
  p->header_column = false;
  free(p->file);
  p->file = cl_path_dup(f, n);
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
  if (n == 0 || f[0] == '<' || cl_has_prefix(f, n, "node:") ||
      cl_has_prefix(f, n, "internal/") || cl_has_prefix(f, n, "bun:"))
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
void cl_frame_seen(struct pending *p, const char *f, size_t n, int line, int col)
{
  /* Node's throw-site header has no column: the first frame gives it when it
   * points at the same place. */
  if (p->header_column && f && p->column == 0 && col > 0 && line == p->line) {
    char *path = cl_path_dup(f, n);
    if (strcmp(path, p->file) == 0)
      p->column = col;
    free(path);
  }
  p->header_column = false;
  if (f && !runtime_internal(f, n))
    cl_set_location(p, f, n, line, col, path_in_project(f, n) ? RANK_FRAME : RANK_OTHER,
                 false);
}

/* A stack frame "at fn (PATH:L:C)" / "at PATH:L:C" / React's
 * "in Comp (at PATH:L)": the location in it. */
bool cl_frame_location(const char *t, size_t n, const char **f, size_t *flen,
                       int *line, int *col)
{
  const char *end = t + n;
  const char *in = t + 3;
  if (t[0] == 'i') {
    const char *at = memmem(t, n, "(at ", 4);
    if (at == NULL || end[-1] != ')')
      return false;
    *f = at + 4;
    return cl_split_location(*f, (size_t)(end - 1 - *f), flen, line, col);
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
  } else if (cl_has_prefix(in, (size_t)(end - in), "async ")) {
    in += 6;
  }
  *f = in;
  return cl_split_location(in, (size_t)(end - in), flen, line, col);
}

/* Python: File "PATH", line N[, in fn] */
bool cl_python_frame(const char *t, size_t n, const char **f, size_t *flen,
                     int *line)
{
  if (!cl_has_prefix(t, n, "File \""))
    return false;
  const char *p = t + 6, *end = t + n;
  const char *q = memchr(p, '"', (size_t)(end - p));
  if (q == NULL || !cl_has_prefix(q, (size_t)(end - q), "\", line "))
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
