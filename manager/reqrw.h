/* Passing HTTP/1.1 requests on, rewriting only their heads.
 *
 * A client's byte stream goes in, possibly cut anywhere; the same stream
 * comes out but for each request head, where X-Forwarded-For, -Host and
 * -Proto are set to ours and client copies of them (and Forwarded,
 * X-Real-IP, X-Sandpit-*) are dropped.  Bodies pass unchanged, framed by
 * Content-Length or chunked encoding (so the next head is found); after a
 * request with Upgrade and "Connection: upgrade" everything passes raw.
 *
 * Refused (reqrw_feed returns -1): a head over REQRW_HEAD_MAX bytes, header
 * lines without a name or folded, Transfer-Encoding other than chunked,
 * both Content-Length and chunked, Content-Lengths that disagree, malformed
 * chunk sizes: the ways requests are smuggled past a proxy. */
#ifndef SP_REQRW_H
#define SP_REQRW_H

#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define REQRW_HEAD_MAX 65536

enum reqrw_state { RW_HEAD, RW_BODY, RW_CHUNK_SIZE, RW_CHUNK_DATA, RW_CHUNK_END, RW_TRAILER, RW_RAW };

struct reqrw {
  enum reqrw_state st;
  struct sbuf head;
  struct sbuf line;
  int64_t left;
  const char *xff, *xfh; /* borrowed: must outlive the rewriter */
};

void reqrw_init(struct reqrw *w, const char *xff, const char *xfh);
void reqrw_release(struct reqrw *w);
/* Feed n client bytes; what to send on is appended to out. */
int reqrw_feed(struct reqrw *w, const char *data, size_t n, struct sbuf *out);

#endif
