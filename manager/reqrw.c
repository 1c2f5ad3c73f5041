/* See reqrw.h. */
#include "reqrw.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define HEAD_MAX REQRW_HEAD_MAX

void reqrw_init(struct reqrw *w, const char *xff, const char *xfh)
{
  memset(w, 0, sizeof *w);
  w->st = RW_HEAD;
  w->xff = xff;
  w->xfh = xfh;
}

void reqrw_release(struct reqrw *w)
{
  sbuf_release(&w->head);
  sbuf_release(&w->line);
}


static bool drop_header(const char *name, size_t n)
{
  static const char *const drop[] = {"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
                                     "x-real-ip", "forwarded"};
  for (size_t i = 0; i < SP_ARRAY_SIZE(drop); i++)
    if (strlen(drop[i]) == n && strncasecmp(name, drop[i], n) == 0)
      return true;
  return n >= 10 && strncasecmp(name, "x-sandpit-", 10) == 0;
}

/* Rewrite one complete head into out; decide how its body is framed.
 * Returns -1 for a head that cannot be passed on safely. */
static int rewrite_head(struct reqrw *w, struct sbuf *out)
{
  char *h = w->head.buf;
  char *end = h + w->head.len;
  char *nl = memchr(h, '\n', w->head.len);
  if (nl == NULL)
    return -1;
  sbuf_add(out, h, (size_t)(nl + 1 - h));
  bool chunked = false, upgrade = false, conn_upgrade = false;
  int64_t cl = -1;
  for (char *p = nl + 1; p < end;) {
    char *e = memchr(p, '\n', (size_t)(end - p));
    if (e == NULL)
      return -1;
    size_t l = (size_t)(e - p);
    size_t content = l && p[l - 1] == '\r' ? l - 1 : l;
    if (content == 0) {
      /* end of head: ours go last */
      sbuf_addf(out, "X-Forwarded-For: %s\r\nX-Forwarded-Host: %s\r\nX-Forwarded-Proto: http\r\n\r\n",
                w->xff, w->xfh);
      break;
    }
    char *colon = memchr(p, ':', content);
    if (colon == NULL || colon == p || *p == ' ' || *p == '\t')
      return -1; /* no obsolete line folding, no nameless headers */
    size_t nlen = (size_t)(colon - p);
    const char *v = colon + 1;
    while (v < p + content && (*v == ' ' || *v == '\t'))
      v++;
    size_t vlen = (size_t)(p + content - v);
    if (nlen == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
      chunked = vlen >= 7 && strncasecmp(v + vlen - 7, "chunked", 7) == 0;
      if (!chunked)
        return -1;
    } else if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0) {
      char num[24];
      if (vlen == 0 || vlen >= sizeof num)
        return -1;
      memcpy(num, v, vlen);
      num[vlen] = '\0';
      long long x;
      if (!str_to_ll(num, 0, INT64_MAX, &x) || num[0] == '+' || (cl >= 0 && cl != x))
        return -1;
      cl = x;
    } else if (nlen == 7 && strncasecmp(p, "upgrade", 7) == 0) {
      upgrade = true;
    } else if (nlen == 10 && strncasecmp(p, "connection", 10) == 0) {
      for (const char *q = v; q + 7 <= v + vlen; q++)
        if (strncasecmp(q, "upgrade", 7) == 0)
          conn_upgrade = true;
    }
    if (!drop_header(p, nlen))
      sbuf_add(out, p, (size_t)(e + 1 - p));
    p = e + 1;
  }
  if (chunked && cl >= 0)
    return -1; /* both: a smuggling attempt */
  sbuf_reset(&w->head);
  if (upgrade && conn_upgrade)
    w->st = RW_RAW;
  else if (chunked)
    w->st = RW_CHUNK_SIZE;
  else if (cl > 0) {
    w->st = RW_BODY;
    w->left = cl;
  } else
    w->st = RW_HEAD;
  return 0;
}

int reqrw_feed(struct reqrw *w, const char *data, size_t n, struct sbuf *out)
{
  size_t i = 0;
  while (i < n) {
    switch (w->st) {
    case RW_RAW:
      sbuf_add(out, data + i, n - i);
      return 0;
    case RW_HEAD: {
      /* take bytes up to the end of the head */
      while (i < n) {
        sbuf_addch(&w->head, data[i++]);
        size_t L = w->head.len;
        const char *b = w->head.buf;
        if (b[L - 1] == '\n' && (L == 1 || (L == 2 && b[0] == '\r'))) {
          /* a blank line before a request line (RFC 9112 2.2): dropped,
           * wherever the stream was cut */
          sbuf_reset(&w->head);
          continue;
        }
        if (L >= 2 && b[L - 1] == '\n' &&
            (b[L - 2] == '\n' || (L >= 3 && b[L - 2] == '\r' && b[L - 3] == '\n'))) {
          if (rewrite_head(w, out) < 0)
            return -1;
          break;
        }
        if (L > HEAD_MAX)
          return -1;
      }
      break;
    }
    case RW_BODY:
    case RW_CHUNK_DATA: { /* w->left bytes pass as they are */
      size_t k = (size_t)SP_MIN((int64_t)(n - i), w->left);
      sbuf_add(out, data + i, k);
      i += k;
      if ((w->left -= (int64_t)k) == 0)
        w->st = w->st == RW_BODY ? RW_HEAD : RW_CHUNK_END;
      break;
    }
    case RW_CHUNK_SIZE:
    case RW_CHUNK_END:
    case RW_TRAILER: {
      char c = data[i++];
      sbuf_addch(out, c);
      sbuf_addch(&w->line, c);
      if (w->line.len > 4096)
        return -1;
      if (c != '\n')
        break;
      bool blank = w->line.len <= 2;
      if (w->st == RW_CHUNK_SIZE) {
        char *e;
        long long sz = strtoll(w->line.buf, &e, 16);
        if (e == w->line.buf || sz < 0)
          return -1;
        w->st = sz == 0 ? RW_TRAILER : RW_CHUNK_DATA;
        w->left = sz;
      } else if (w->st == RW_CHUNK_END) {
        w->st = RW_CHUNK_SIZE;
      } else if (blank) {
        w->st = RW_HEAD;
      }
      sbuf_reset(&w->line);
      break;
    }
    }
  }
  return 0;
}

