/* Line shapes: what a line looks like (a stack frame, a code frame, a
 * location, a detail) for the block assembly. */
#include "classify_int.h"


bool cl_is_code_frame(const char *t, size_t n)
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
bool cl_bare_path(const char *t, size_t m)
{
  if (!(cl_has_prefix(t, m, "./") || cl_has_prefix(t, m, "../")) || memchr(t, ' ', m))
    return false;
  const char *dot = NULL;
  for (const char *q = t + 2; q < t + m; q++)
    if (*q == '.')
      dot = q;
  return dot && dot + 1 < t + m && cl_looks_like_path(t, m, false);
}

enum shape cl_line_shape(const char *s, size_t n, bool typescript, const char **f,
                         size_t *flen, int *line, int *col)
{
  const char *t = cl_skip_ws(s, s + n);
  size_t m = n - (size_t)(t - s);
  size_t indent = (size_t)(t - s);
  *f = NULL;
  *line = *col = 0;
  while (m > 0 && is_space((unsigned char)t[m - 1]))
    m--;
  if (m == 0)
    return SHAPE_NONE;
  if ((cl_has_prefix(t, m, "at ") && m > 3) ||
      (indent > 0 && cl_has_prefix(t, m, "in ") && memmem(t, m, "(at ", 4))) {
    if (!cl_frame_location(t, m, f, flen, line, col))
      *f = NULL;
    return SHAPE_FRAME;
  }
  if (cl_is_code_frame(t, m))
    return SHAPE_CODE;
  if (typescript && indent == 0 && is_digit((unsigned char)t[0])) {
    size_t i = 0;
    while (i < m && is_digit((unsigned char)t[i]))
      i++;
    if (i < m && t[i] == ' ')
      return SHAPE_CODE;
  }
  /* oxc (Vite 8) and other miette-style reports: "╭─[ src/main.ts:4:16 ]" */
  if (cl_has_prefix(t, m, "\xe2\x95\xad\xe2\x94\x80[")) {
    const char *in = cl_skip_ws(t + 7, t + m);
    const char *end = memchr(in, ']', (size_t)(t + m - in));
    size_t inl = end ? (size_t)(end - in) : 0;
    while (inl > 0 && is_space((unsigned char)in[inl - 1]))
      inl--;
    if (inl > 0 && cl_split_location(in, inl, flen, line, col) &&
        cl_looks_like_path(in, *flen, false)) {
      *f = in;
      return SHAPE_LOCATION;
    }
    *line = *col = 0;
    return SHAPE_CODE;
  }
  if (cl_has_prefix(t, m, "File: ")) {
    if (cl_split_location(t + 6, m - 6, flen, line, col) &&
        cl_looks_like_path(t + 6, *flen, true)) {
      *f = t + 6;
      return SHAPE_LOCATION;
    }
    /* Vite 8 names the file alone: "File: /app/src/main.ts" */
    if (t[6] == '/' && !memchr(t + 6, ' ', m - 6) && cl_looks_like_path(t + 6, m - 6, true)) {
      *f = t + 6;
      *flen = m - 6;
      *line = *col = 0;
      return SHAPE_LOCATION;
    }
  }
  if (cl_split_location(t, m, flen, line, col) && *col >= 0) {
    /* esbuild's "    FILE:L:C:" may name a pseudo-file: "(define name)" */
    bool esbuild = t[m - 1] == ':' && indent > 0;
    if (esbuild || cl_looks_like_path(t, *flen, false)) {
      *f = t;
      return SHAPE_LOCATION;
    }
  }
  if (cl_bare_path(t, m)) {
    *f = t;
    *flen = m;
    *line = *col = 0;
    return SHAPE_LOCATION;
  }
  *line = *col = 0;
  if (cl_has_prefix(t, m, "Plugin: ") || cl_has_prefix(t, m, "Require stack:") ||
      (cl_has_prefix(t, m, "- ") && cl_looks_like_path(t + 2, m - 2, true)))
    return SHAPE_DETAIL;
  return SHAPE_NONE;
}

/* Python 3.11 prints exception groups behind a gutter: "  + Exception Group
 * Traceback (most recent call last):", "  |   File ...", "  +-+---- 1 ----".
 * Returns the length of the gutter (0 if none); *rule is set for the
 * "+-+----" lines, which hold nothing else. */
size_t cl_py_gutter(const char *s, size_t n, bool *rule)
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

bool cl_is_group_header(const char *s, size_t n)
{
  const char *t = cl_skip_ws(s, s + n);
  size_t m = (size_t)(s + n - t);
  if (cl_has_prefix(t, m, "+ "))
    t += 2, m -= 2;
  return cl_has_prefix(t, m, "Exception Group Traceback");
}

bool cl_is_traceback_header(const char *s, size_t n)
{
  bool rule;
  size_t g = cl_py_gutter(s, n, &rule);
  s += g;
  n -= g;
  if (cl_has_prefix(s, n, "Exception Group "))
    s += 16, n -= 16;
  return cl_has_prefix(s, n, "Traceback (most recent call last)");
}

bool cl_is_traceback_chain(const char *s, size_t n)
{
  return cl_has_prefix(s, n, "During handling of the above exception") ||
         cl_has_prefix(s, n, "The above exception was the direct cause");
}

bool cl_is_npm_line(const char *s, size_t n)
{
  return cl_has_prefix(s, n, "npm ERR!") || cl_has_prefix(s, n, "npm error");
}

/* A Node.js throw-site header: "/abs/path/file.js:123" on its own line. */
bool cl_throw_site(const char *s, size_t n, const char **f, size_t *flen, int *line)
{
  int col;
  const char *t = cl_skip_ws(s, s + n);
  n -= (size_t)(t - s);
  s = t;
  while (n > 0 && is_space((unsigned char)s[n - 1]))
    n--;
  if (n < 4 || !is_digit((unsigned char)s[n - 1]))
    return false;
  if (!cl_split_location(s, n, flen, line, &col) || col >= 0)
    return false;
  if (!cl_looks_like_path(s, *flen, true))
    return false;
  *f = s;
  return s[0] == '/' || s[0] == '\\' || s[0] == '.' || cl_has_prefix(s, n, "file://") ||
         cl_has_prefix(s, n, "node:") || cl_has_prefix(s, n, "internal/") ||
         (n > 3 && cl_is_alpha((unsigned char)s[0]) && s[1] == ':' &&
          (s[2] == '\\' || s[2] == '/'));
}

bool cl_pino_candidate(const char *s, size_t n)
{
  const char *t = cl_skip_ws(s, s + n);
  return t < s + n && *t == '{' && memmem(t, (size_t)(s + n - t), "\"level\"", 7);
}
