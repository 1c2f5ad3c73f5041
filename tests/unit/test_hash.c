#include <check.h>
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "hash.h"

/* These vectors are the routing contract: if they change, sandboxes move. */
START_TEST(vectors)
{
  ck_assert_uint_eq(sp_hash64("", 0), 0xcbf29ce484222325ull);
  ck_assert_uint_eq(sp_hash64("a", 1), 0xaf63dc4c8601ec8cull);
  ck_assert_uint_eq(sp_hash64("foobar", 6), 0x85944171f73967e8ull);
  ck_assert_uint_eq(sp_hash64("session-42", 10), 0x92b7576739262934ull);
  ck_assert_uint_eq(sp_hash64("chat-7f3a9c", 11), 0x95d6a99c842d4fffull);
}
END_TEST

START_TEST(slots)
{
  ck_assert_int_eq(sp_slot("session-42", 4), 0);
  ck_assert_int_eq(sp_slot("session-42", 10), 2);
  ck_assert_int_eq(sp_slot("chat-7f3a9c", 4), 3);
  ck_assert_int_eq(sp_slot("chat-7f3a9c", 10), 9);
  ck_assert_int_eq(sp_slot("anything", 1), 0);
  /* spread: 10000 ids over 8 slots, none far from 1250 */
  int count[8] = {0};
  char id[32];
  for (int i = 0; i < 10000; i++) {
    snprintf(id, sizeof id, "sandbox-%d", i);
    count[sp_slot(id, 8)]++;
  }
  for (int i = 0; i < 8; i++)
    ck_assert_msg(count[i] > 1100 && count[i] < 1400, "slot %d has %d", i, count[i]);
}
END_TEST

CHECK_MAIN_ONE_TCASE("hash", "core", 10, NULL, NULL, vectors, slots)
