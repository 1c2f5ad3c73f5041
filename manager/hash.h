/* The routing hash: which instance a sandbox lives in.
 *
 *   slot = sp_hash64(sandbox_id) % max_instances
 *
 * sp_hash64 is 64-bit FNV-1a over the ID's bytes (offset basis
 * 0xcbf29ce484222325, prime 0x100000001b3).  It is part of the API: a slot
 * must not move when sandpitd is upgraded, so this function never changes.
 * Test vectors (tests/unit/test_hash.c):
 *   ""           -> 0xcbf29ce484222325
 *   "a"          -> 0xaf63dc4c8601ec8c
 *   "foobar"     -> 0x85944171f73967e8
 *   "session-42" -> 0x92b7576739262934 (slot 0 of 4, 2 of 10)
 *   "chat-7f3a9c" -> 0x95d6a99c842d4fff (slot 3 of 4, 9 of 10) */
#ifndef SP_HASH_H
#define SP_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t sp_hash64(const void *data, size_t len);
int sp_slot(const char *sandbox_id, int max_instances);

#endif
