/* Normalisation and hashing: the form of a message that groups repeats of
 * one error. */
#include "classify_int.h"

/* Length of a timestamp starting at s (0 if none). */
static size_t timestamp_len(const char *s, size_t n)
{
  size_t i = 0;
  /* date: YYYY-MM-DD or YYYY/MM/DD, optionally followed by a time */
  if (n >= 10 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
      (s[4] == '-' || s[4] == '/') && is_digit(s[5]) && is_digit(s[6]) && s[7] == s[4] &&
      is_digit(s[8]) && is_digit(s[9])) {
    i = 10;
    if (i + 1 < n && (s[i] == 'T' || s[i] == ' ') && is_digit((unsigned char)s[i + 1]))
      i++;
    else
      return i;
  }
  size_t t = i;
  while (i < n && is_digit((unsigned char)s[i]) && i - t < 2)
    i++;
  if (i == t || i >= n || s[i] != ':' || i + 2 >= n || !is_digit(s[i + 1]) ||
      !is_digit(s[i + 2]))
    return t;
  i += 3;
  if (i + 2 < n && s[i] == ':' && is_digit(s[i + 1]) && is_digit(s[i + 2]))
    i += 3;
  if (i + 1 < n && (s[i] == '.' || s[i] == ',') && is_digit(s[i + 1])) {
    i++;
    while (i < n && is_digit((unsigned char)s[i]))
      i++;
  }
  if (i < n && s[i] == 'Z') {
    i++;
  } else if (i + 2 < n && (s[i] == '+' || s[i] == '-') && is_digit(s[i + 1]) &&
             is_digit(s[i + 2])) {
    i += 3;
    if (i + 2 < n && s[i] == ':' && is_digit(s[i + 1]))
      i += 3;
    else if (i + 1 < n && is_digit(s[i]) && is_digit(s[i + 1]))
      i += 2;
  }
  /* " AM", " p.m." */
  size_t k = i;
  if (k < n && s[k] == ' ')
    k++;
  if (k < n && (s[k] == 'a' || s[k] == 'A' || s[k] == 'p' || s[k] == 'P')) {
    size_t e = k + 1;
    if (e < n && s[e] == '.')
      e++;
    if (e < n && (s[e] == 'm' || s[e] == 'M')) {
      e++;
      if (e < n && s[e] == '.')
        e++;
      if (e >= n || !is_alnum((unsigned char)s[e]))
        i = e;
    }
  }
  return i;
}

static bool url_delim(unsigned char c)
{
  return c == ' ' || c == '\t' || c == '"' || c == '\'' || c == '(' || c == ')' ||
         c == '<' || c == '>' || c == '[' || c == ']' || c == '{' || c == '}' ||
         c == ',' || c == '`';
}

/* Length of a hash-like run at s (0 if it is not one). */
static size_t hash_len(const char *s, size_t n, unsigned char before)
{
  size_t i = 0;
  bool digit = false, upper = false, lower = false, hex = true;
  while (i < n && is_alnum((unsigned char)s[i])) {
    unsigned char ch = (unsigned char)s[i];
    digit |= is_digit(ch);
    upper |= ch >= 'A' && ch <= 'Z';
    lower |= ch >= 'a' && ch <= 'z';
    hex &= cl_is_hex(ch);
    i++;
  }
  if (i >= 7 && digit && hex)
    return i;
  /* bundler chunk hashes: "dep-DG3BLbPj.js", "index.B1x2Yz9Q.js" */
  unsigned char after = i < n ? (unsigned char)s[i] : 0;
  if (i == 8 && digit && (upper || lower) && (before == '-' || before == '.') &&
      (after == '.' || after == '-'))
    return i;
  return 0;
}

char *classify_normalise(const char *msg, size_t len)
{
  struct sbuf in = SBUF_INIT, out = SBUF_INIT;
  if (msg == NULL)
    len = 0;
  if (len > 0)
    cl_strip_into(&in, msg, len, len);
  const char *s = sbuf_str(&in);
  size_t n = in.len;
  sbuf_grow(&out, n);
  size_t i = 0;
  while (i < n) {
    unsigned char ch = (unsigned char)s[i];
    unsigned char prev = i > 0 ? (unsigned char)s[i - 1] : ' ';
    if (is_space(ch)) {
      if (out.len > 0 && out.buf[out.len - 1] != ' ')
        sbuf_addch(&out, ' ');
      i++;
      continue;
    }
    if (is_digit(ch) && !is_alnum(prev) && prev != ':' && prev != '.') {
      size_t k = timestamp_len(s + i, n - i);
      if (k > 0) {
        i += k;
        continue;
      }
    }
    if (ch == ':' && i + 1 < n && is_digit((unsigned char)s[i + 1]) && !is_space(prev) &&
        i > 0) {
      i++;
      while (i < n && is_digit((unsigned char)s[i]))
        i++;
      continue;
    }
    if (ch == '(' && i + 1 < n && is_digit((unsigned char)s[i + 1])) {
      size_t k = i + 1;
      while (k < n && is_digit((unsigned char)s[k]))
        k++;
      if (k < n && (s[k] == ',' || s[k] == ':')) {
        size_t d = ++k;
        while (k < n && is_digit((unsigned char)s[k]))
          k++;
        if (k > d && k < n && s[k] == ')') {
          i = k + 1;
          continue;
        }
      }
    }
    if ((ch == '?' || ch == '&') && i > 0 && !is_space(prev) && i + 1 < n &&
        (is_alnum((unsigned char)s[i + 1]) || s[i + 1] == '_')) {
      size_t k = i + 1;
      while (k < n && (is_alnum((unsigned char)s[k]) || s[k] == '_' || s[k] == '-'))
        k++;
      if (k >= n || s[k] == '=' || s[k] == '&' || url_delim((unsigned char)s[k])) {
        while (k < n && !url_delim((unsigned char)s[k]))
          k++;
        i = k;
        continue;
      }
    }
    if (is_alnum(ch) && !is_alnum(prev)) {
      size_t k = hash_len(s + i, n - i, prev);
      if (k > 0) {
        i += k;
        continue;
      }
      /* copy the whole word so that the hash test only sees word starts */
      size_t e = i;
      while (e < n && is_alnum((unsigned char)s[e]))
        e++;
      sbuf_add(&out, s + i, e - i);
      i = e;
      continue;
    }
    sbuf_addch(&out, (char)ch);
    i++;
  }
  while (out.len > 0 && out.buf[out.len - 1] == ' ')
    out.len--;
  if (out.buf)
    out.buf[out.len] = '\0';
  sbuf_release(&in);
  return sbuf_detach(&out, NULL);
}

uint64_t classify_hash(const char *tool, const char *category, const char *normalised)
{
  uint64_t h = 0xcbf29ce484222325ull;
  const char *parts[3] = {tool, category, normalised};
  for (int k = 0; k < 3; k++) {
    for (const unsigned char *p = (const unsigned char *)(parts[k] ? parts[k] : ""); *p;
         p++) {
      h ^= *p;
      h *= 0x100000001b3ull;
    }
    if (k < 2) {
      h ^= 0;
      h *= 0x100000001b3ull;
    }
  }
  return h;
}
