#include "str.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void sbuf_grow(struct sbuf *sb, size_t extra)
{
  if (sb->len + extra + 1 <= sb->cap)
    return;
  size_t cap = sb->cap ? sb->cap : 64;
  while (cap < sb->len + extra + 1) {
    if (cap > SIZE_MAX / 2)
      cap = sb->len + extra + 1;
    else
      cap *= 2;
  }
  sb->buf = xrealloc(sb->buf, cap);
  sb->cap = cap;
}

void sbuf_add(struct sbuf *sb, const void *data, size_t len)
{
  sbuf_grow(sb, len);
  if (len)
    memcpy(sb->buf + sb->len, data, len);
  sb->len += len;
  sb->buf[sb->len] = '\0';
}

void sbuf_addstr(struct sbuf *sb, const char *s) { sbuf_add(sb, s, strlen(s)); }

void sbuf_addch(struct sbuf *sb, char c) { sbuf_add(sb, &c, 1); }

void sbuf_addf(struct sbuf *sb, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char tmp[256];
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) {
    va_end(ap2);
    return;
  }
  if ((size_t)n < sizeof tmp) {
    sbuf_add(sb, tmp, (size_t)n);
  } else {
    sbuf_grow(sb, (size_t)n);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap2);
    sb->len += (size_t)n;
  }
  va_end(ap2);
}

void sbuf_add_json_escaped(struct sbuf *sb, const char *s, size_t len)
{
  static const char hex[] = "0123456789abcdef";
  sbuf_grow(sb, len + 2);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"': sbuf_add(sb, "\\\"", 2); break;
    case '\\': sbuf_add(sb, "\\\\", 2); break;
    case '\n': sbuf_add(sb, "\\n", 2); break;
    case '\r': sbuf_add(sb, "\\r", 2); break;
    case '\t': sbuf_add(sb, "\\t", 2); break;
    default:
      if (c < 0x20 || c == 0x7f) {
        char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        sbuf_add(sb, u, 6);
      } else {
        sbuf_addch(sb, (char)c);
      }
    }
  }
}

void sbuf_reset(struct sbuf *sb)
{
  sb->len = 0;
  if (sb->buf)
    sb->buf[0] = '\0';
}

const char *sbuf_str(const struct sbuf *sb) { return sb->buf ? sb->buf : ""; }

char *sbuf_detach(struct sbuf *sb, size_t *len)
{
  char *r = sb->buf ? sb->buf : xstrdup("");
  if (len)
    *len = sb->len;
  sb->buf = NULL;
  sb->len = sb->cap = 0;
  return r;
}

void sbuf_release(struct sbuf *sb)
{
  free(sb->buf);
  sb->buf = NULL;
  sb->len = sb->cap = 0;
}

bool str_starts_with(const char *s, const char *prefix)
{
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_ends_with(const char *s, const char *suffix)
{
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

bool str_to_ll(const char *s, long long min, long long max, long long *out)
{
  if (s == NULL || *s == '\0')
    return false;
  const char *p = s;
  if (*p == '-' || *p == '+')
    p++;
  if (*p < '0' || *p > '9')
    return false;
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max)
    return false;
  *out = v;
  return true;
}

bool str_is_utf8(const char *str, size_t len)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    unsigned int cp;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (len - i <= n)
      return false;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

void sbuf_add_utf8(struct sbuf *sb, const char *s, size_t len)
{
  if (str_is_utf8(s, len) && memchr(s, '\0', len) == NULL) {
    sbuf_add(sb, s, len);
    return;
  }
  size_t i = 0;
  while (i < len) {
    unsigned char b = (unsigned char)s[i];
    size_t n = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 0;
    if (n && b != 0 && i + n <= len && str_is_utf8(s + i, n)) {
      sbuf_add(sb, s + i, n);
      i += n;
    } else {
      sbuf_addstr(sb, "\xef\xbf\xbd");
      i++;
    }
  }
}

char *str_repair_utf8(const char *s, size_t len)
{
  struct sbuf sb = SBUF_INIT;
  sbuf_add_utf8(&sb, s, len);
  return sbuf_detach(&sb, NULL);
}

bool str_equal_ct(const char *expected, const char *given)
{
  size_t el = strlen(expected), gl = strlen(given);
  unsigned char diff = el != gl;
  for (size_t i = 0; i < gl; i++)
    diff |= (unsigned char)given[i] ^ (unsigned char)(el ? expected[i % el] : 0);
  return diff == 0;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *b64_encode(const void *data, size_t len, size_t *out_len)
{
  const unsigned char *p = data;
  size_t n = 4 * ((len + 2) / 3);
  char *out = xmalloc(n + 1);
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    unsigned v = (unsigned)p[i] << 16;
    if (i + 1 < len)
      v |= (unsigned)p[i + 1] << 8;
    if (i + 2 < len)
      v |= p[i + 2];
    out[o++] = b64_alphabet[(v >> 18) & 63];
    out[o++] = b64_alphabet[(v >> 12) & 63];
    out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
  }
  out[o] = '\0';
  if (out_len)
    *out_len = o;
  return out;
}

static int b64_value(char c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

bool b64_decode(const char *s, size_t len, char **out, size_t *out_len)
{
  if (len % 4 != 0)
    return false;
  size_t pad = 0;
  if (len >= 1 && s[len - 1] == '=')
    pad++;
  if (len >= 2 && s[len - 2] == '=')
    pad++;
  char *buf = xmalloc(len / 4 * 3 + 1);
  size_t o = 0;
  for (size_t i = 0; i < len; i += 4) {
    int v[4];
    for (int k = 0; k < 4; k++) {
      bool in_pad = i + (size_t)k >= len - pad;
      v[k] = in_pad ? (s[i + k] == '=' ? 0 : -1) : b64_value(s[i + k]);
      if (v[k] < 0) {
        free(buf);
        return false;
      }
    }
    unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
    buf[o++] = (char)(w >> 16);
    if (i + 4 < len || pad < 2)
      buf[o++] = (char)(w >> 8);
    if (i + 4 < len || pad < 1)
      buf[o++] = (char)w;
  }
  buf[o] = '\0';
  *out = buf;
  *out_len = o;
  return true;
}

/* ---- NULL-terminated string vectors ---- */

void strv_free(char **v)
{
  for (char **p = v; p && *p; p++)
    free(*p);
  free(v);
}

char **strv_dup(char *const *v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  char **r = xcalloc(n + 1, sizeof *r);
  for (size_t i = 0; i < n; i++)
    r[i] = xstrdup(v[i]);
  return r;
}

/* Set NAME=VALUE in a NULL-terminated vector (replacing an existing one). */
char **strv_setenv(char **v, const char *name, const char *value)
{
  size_t klen = strlen(name), n = 0;
  for (; v && v[n]; n++) {
    if (strncmp(v[n], name, klen) == 0 && v[n][klen] == '=') {
      free(v[n]);
      v[n] = xasprintf("%s=%s", name, value);
      return v;
    }
  }
  v = xreallocarray(v, n + 2, sizeof *v);
  v[n] = xasprintf("%s=%s", name, value);
  v[n + 1] = NULL;
  return v;
}

char **strv_unsetenv(char **v, const char *name)
{
  size_t klen = strlen(name);
  for (size_t i = 0; v && v[i]; i++) {
    if (strncmp(v[i], name, klen) == 0 && v[i][klen] == '=') {
      free(v[i]);
      size_t j = i;
      for (; v[j + 1]; j++)
        v[j] = v[j + 1];
      v[j] = NULL;
      return v;
    }
  }
  return v;
}

void strv_freep(char ***v)
{
  strv_free(*v);
}
