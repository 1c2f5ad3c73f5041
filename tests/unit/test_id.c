#include <check.h>
#include <string.h>

#include "check_main.h"
#include "id.h"

/* One row per rule boundary: the id, its kind, whether it is accepted. */
static const struct {
  enum sp_id_kind kind;
  const char *id;
  bool ok;
} rows[] = {
    {SP_ID_SANDBOX, "chat-42", true},
    {SP_ID_SANDBOX, "A_b-9", true},
    {SP_ID_SANDBOX, "", false},
    {SP_ID_SANDBOX, "-x", false},
    {SP_ID_SANDBOX, "_x", false},
    {SP_ID_SANDBOX, "a.b", false},
    {SP_ID_SANDBOX, "../../etc", false},
    {SP_ID_SANDBOX, "a b", false},
    {SP_ID_SANDBOX, "caf\xc3\xa9", false},
    {SP_ID_PREVIEW, "chat-42", true},
    {SP_ID_PREVIEW, "Chat", false},
    {SP_ID_PREVIEW, "a_b", false},
    {SP_ID_PREVIEW, "-a", false},
    {SP_ID_PROCESS, "dev.server-1_x", true},
    {SP_ID_PROCESS, "-dash", true},
    {SP_ID_PROCESS, ".hidden", false},
    {SP_ID_PROCESS, "a/b", false},
    {SP_ID_SESSION, "any thing / at all", true},
    {SP_ID_SESSION, "", false},
    {SP_ID_TOKEN, "abc_123", true},
    {SP_ID_TOKEN, "ABC", false},
    {SP_ID_TOKEN, "a-b", false},
};

START_TEST(rules)
{
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
    ck_assert_msg(sp_id_ok(rows[i].kind, rows[i].id) == rows[i].ok, "row %zu: \"%s\" should be %s",
                  i, rows[i].id, rows[i].ok ? "accepted" : "refused");
}
END_TEST

/* Each kind's longest id passes and one byte more fails. */
START_TEST(lengths)
{
  static const struct {
    enum sp_id_kind kind;
    size_t max;
  } lim[] = {{SP_ID_SANDBOX, 63}, {SP_ID_PREVIEW, 63}, {SP_ID_PROCESS, 64},
             {SP_ID_SESSION, 128}, {SP_ID_TOKEN, 16}};
  char id[200];
  for (size_t i = 0; i < sizeof lim / sizeof *lim; i++) {
    memset(id, 'a', lim[i].max + 1);
    id[lim[i].max] = '\0';
    ck_assert_msg(sp_id_ok(lim[i].kind, id), "kind %zu: %zu bytes refused", i, lim[i].max);
    id[lim[i].max] = 'a';
    id[lim[i].max + 1] = '\0';
    ck_assert_msg(!sp_id_ok(lim[i].kind, id), "kind %zu: %zu bytes accepted", i, lim[i].max + 1);
  }
}
END_TEST

CHECK_MAIN_ONE_TCASE("id", "rules", 10, NULL, NULL, rules, lengths)
