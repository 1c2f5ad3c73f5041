/* Unit tests for manager/backend/sha256.c: the FIPS 180-2 vectors, the
 * lengths either side of the padding boundaries, and digests that do not
 * depend on how the bytes are cut into sha256_add calls. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "sha256.h"

/* The digest of data[0..len) fed in pieces of chunk bytes (0: one call). */
static void digest(const void *data, size_t len, size_t chunk, char out[65])
{
  const unsigned char *p = data;
  struct sha256 s;
  sha256_init(&s);
  if (chunk == 0)
    chunk = len;
  for (size_t off = 0; off < len; off += chunk)
    sha256_add(&s, p + off, len - off < chunk ? len - off : chunk);
  sha256_hex(&s, out);
}

/* FIPS 180-2 appendix B and the NIST example values. */
static const struct {
  const char *in;
  const char *hex;
} vectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnop"
     "qrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

START_TEST(fips_vectors)
{
  char hex[65];
  for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) {
    digest(vectors[i].in, strlen(vectors[i].in), 0, hex);
    ck_assert_msg(strcmp(hex, vectors[i].hex) == 0, "row %zu: \"%s\" gave %s, want %s", i,
                  vectors[i].in, hex, vectors[i].hex);
  }
}
END_TEST

/* n times 'a', for n where the length field lands at the end of the last
 * block, spills into a block of its own, or the input fills blocks
 * exactly. */
static const struct {
  size_t n;
  const char *hex;
} a_runs[] = {
    {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
    {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
    {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
    {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
    {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
    {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
    {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
    {128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"},
};

START_TEST(padding_boundaries)
{
  char a[128], hex[65];
  memset(a, 'a', sizeof a);
  for (size_t i = 0; i < sizeof a_runs / sizeof *a_runs; i++) {
    digest(a, a_runs[i].n, 0, hex);
    ck_assert_msg(strcmp(hex, a_runs[i].hex) == 0, "row %zu: %zu x 'a' gave %s, want %s", i,
                  a_runs[i].n, hex, a_runs[i].hex);
    digest(a, a_runs[i].n, 1, hex);
    ck_assert_msg(strcmp(hex, a_runs[i].hex) == 0, "row %zu: %zu x 'a' byte by byte gave %s", i,
                  a_runs[i].n, hex);
  }
}
END_TEST

/* One million 'a' (FIPS 180-2 B.3), in pieces of uneven sizes that cross
 * block boundaries at every offset. */
START_TEST(million_a)
{
  static const size_t pieces[] = {1, 7, 63, 64, 65, 127, 1000, 4096, 3, 129};
  static const char want[] = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  char *a = malloc(4096);
  ck_assert_ptr_nonnull(a);
  memset(a, 'a', 4096);
  struct sha256 s;
  sha256_init(&s);
  size_t left = 1000000;
  for (size_t k = 0; left > 0; k++) {
    size_t n = pieces[k % (sizeof pieces / sizeof *pieces)];
    if (n > left)
      n = left;
    sha256_add(&s, a, n);
    left -= n;
  }
  char hex[65];
  sha256_hex(&s, hex);
  ck_assert_str_eq(hex, want);
  free(a);
}
END_TEST

/* The same bytes give the same digest whatever the pieces, for every
 * length up to three blocks and a bit. */
START_TEST(chunking_independence)
{
  static const size_t chunks[] = {1, 63, 64, 65};
  unsigned char buf[200];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (unsigned char)(i * 31 + 7);
  for (size_t len = 0; len <= sizeof buf; len++) {
    char whole[65], cut[65];
    digest(buf, len, 0, whole);
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
      digest(buf, len, chunks[c], cut);
      ck_assert_msg(strcmp(whole, cut) == 0, "length %zu in %zu-byte pieces gave %s, whole %s",
                    len, chunks[c], cut, whole);
    }
  }
}
END_TEST

/* Empty additions change nothing, and sha256_init starts afresh on a
 * spent state. */
START_TEST(empty_adds_and_reuse)
{
  struct sha256 s;
  char hex[65];
  sha256_init(&s);
  sha256_add(&s, "", 0);
  sha256_add(&s, "a", 1);
  sha256_add(&s, "bc", 0);
  sha256_add(&s, "bc", 2);
  sha256_add(&s, "", 0);
  sha256_hex(&s, hex);
  ck_assert_str_eq(hex, vectors[1].hex);
  sha256_init(&s);
  sha256_hex(&s, hex);
  ck_assert_str_eq(hex, vectors[0].hex);
  ck_assert_uint_eq(strlen(hex), 64);
}
END_TEST

CHECK_MAIN_ONE_TCASE("sha256", "digest", 30, NULL, NULL, fips_vectors, padding_boundaries,
                     million_a, chunking_independence, empty_adds_and_reuse)
