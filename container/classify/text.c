/* Text helpers of the classifier: character classes, UTF-8 repair, trimming,
 * and the line cleaner (escape sequences, control bytes, carriage returns). */
#include "classify_int.h"

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
void cl_add_utf8(struct sbuf *sb, const char *str, size_t n)
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

char *cl_dup_utf8(const char *s, size_t n)
{
  struct sbuf sb = SBUF_INIT;
  cl_add_utf8(&sb, s, n);
  return sbuf_detach(&sb, NULL);
}

/* Remove ANSI escape sequences and other control characters (but tab), and
 * apply carriage-return overwrites (what follows the last CR wins).  Appends
 * to `out`; returns the offset in out->buf where the visible text starts. */
size_t cl_strip_into(struct sbuf *out, const char *str, size_t n,
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
const char *cl_clean_line(struct classifier *c, const char *line, size_t len,
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
  size_t start = cl_strip_into(&c->clean, line, n, PINO_LINE_MAX);
  *out_len = c->clean.len - start;
  return c->clean.buf + start;
}
