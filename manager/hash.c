#include "hash.h"

#include <string.h>

uint64_t sp_hash64(const void *data, size_t len)
{
  const unsigned char *p = data;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

int sp_slot(const char *sandbox_id, int max_instances)
{
  if (max_instances <= 1)
    return 0;
  return (int)(sp_hash64(sandbox_id, strlen(sandbox_id)) % (uint64_t)max_instances);
}
