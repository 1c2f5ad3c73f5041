/* The preview proxy's request rewriter: reqrw_feed over a client's byte
 * stream.  The first input byte picks where the stream is cut; the rest is
 * the stream, fed once whole and once in those pieces.  Properties: the cut
 * changes nothing (the same refusal, or the same bytes out), and what passes
 * is never longer than what came in plus the headers the rewriter adds. */
#include "fuzz.h"
#include "reqrw.h"

#define XFF "10.1.2.3"
#define XFH "3000-sb-tok.localhost:8787"

static int feed(const char *s, size_t n, unsigned seed, struct sbuf *out)
{
  struct reqrw w;
  reqrw_init(&w, XFF, XFH);
  int rc = 0;
  if (seed == 0) {
    rc = reqrw_feed(&w, s, n, out);
  } else {
    /* pieces of 1 to 32 bytes, from a small generator seeded by seed */
    uint32_t x = seed * 2654435761u;
    for (size_t i = 0; i < n && rc == 0;) {
      x = x * 1103515245u + 12345u;
      size_t k = 1 + (x >> 16) % 32;
      if (k > n - i)
        k = n - i;
      rc = reqrw_feed(&w, s + i, k, out);
      i += k;
    }
  }
  reqrw_release(&w);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  unsigned seed = (unsigned)data[0] + 1;
  char *s = fuzz_copy(data + 1, size - 1);
  size_t n = size - 1;
  struct sbuf whole = SBUF_INIT, cut = SBUF_INIT;
  int rc_whole = feed(s, n, 0, &whole);
  int rc_cut = feed(s, n, seed, &cut);
  FUZZ_ASSERT(rc_whole == rc_cut, "whole: %d, in pieces: %d", rc_whole, rc_cut);
  if (rc_whole == 0) {
    FUZZ_ASSERT(whole.len == cut.len && (whole.len == 0 || memcmp(whole.buf, cut.buf, whole.len) == 0),
                "the output depends on where the stream is cut (%zu bytes whole, %zu in pieces)",
                whole.len, cut.len);
    /* a head takes two bytes at least, and gains at most our three headers */
    size_t ours = sizeof "X-Forwarded-For: " XFF "\r\nX-Forwarded-Host: " XFH
                  "\r\nX-Forwarded-Proto: http\r\n\r\n";
    FUZZ_ASSERT(whole.len <= n + (n / 2 + 1) * ours, "%zu bytes out of %zu", whole.len, n);
  }
  sbuf_release(&whole);
  sbuf_release(&cut);
  free(s);
  return 0;
}
