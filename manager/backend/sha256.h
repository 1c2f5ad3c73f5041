/* SHA-256 (FIPS 180-4), incremental: sha256_init, any number of
 * sha256_add, then sha256_hex once for the digest as 64 lowercase hex
 * digits.  The state is the caller's (on its stack, say) and holds no
 * memory of its own; after sha256_hex it is spent until sha256_init.
 * Used for the Docker build context's digest (docker_build.c). */
#ifndef SP_SHA256_H
#define SP_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
  uint32_t h[8];
  uint64_t len;
  unsigned char buf[64];
  size_t n;
};

void sha256_init(struct sha256 *s);
void sha256_add(struct sha256 *s, const void *data, size_t len);
/* Pads, finishes and writes the digest and a NUL to out. */
void sha256_hex(struct sha256 *s, char out[65]);

#endif
