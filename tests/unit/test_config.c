#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "config.h"
#include "error.h"

static struct sp_config *parse(const char *text, struct sp_error **err)
{
  unsetenv("MAX_SANDBOX_INSTANCES");
  unsetenv("SANDBOX_INSTANCE_TYPE");
  unsetenv("SANDPIT_API_TOKEN");
  unsetenv("SANDPIT_LOG_LEVEL");
  return config_parse(text, strlen(text), "/etc/sandpit/w.toml", err);
}

START_TEST(defaults)
{
  struct sp_error *err = NULL;
  struct sp_config *c = parse("", &err);
  ck_assert_ptr_nonnull(c);
  ck_assert_str_eq(c->listen_host, "127.0.0.1");
  ck_assert_int_eq(c->listen_port, 8787);
  ck_assert_str_eq(c->preview_domain, "localhost");
  ck_assert_str_eq(c->data_dir, "/etc/sandpit/.sandpit");
  ck_assert_int_eq(c->npools, 1);
  ck_assert_int_eq(c->pools[0].max_instances, 4);
  ck_assert_int_eq(c->pools[0].backend, SP_BACKEND_AUTO);
  ck_assert_ptr_null(c->api_token);
  config_free(c);
}
END_TEST

START_TEST(pools_and_types)
{
  struct sp_error *err = NULL;
  struct sp_config *c = parse("listen = \"[::1]:9000\"\n"
                              "[instance_types.tiny]\nvcpu = 0.25\nmemory_mib = 512\n"
                              "[[containers]]\nclass_name = \"A\"\nimage = \"node:20\"\n"
                              "instance_type = \"tiny\"\nsleep_after = \"10m\"\n"
                              "[[containers]]\nclass_name = \"B\"\nallocation = \"one_to_one\"\n"
                              "backend = \"docker\"\nnetwork = \"egress\"\nmax_instances = 9\n",
                              &err);
  ck_assert_msg(c != NULL, "%s", err ? err->msg : "");
  ck_assert_str_eq(c->listen_host, "::1");
  ck_assert_int_eq(c->listen_port, 9000);
  ck_assert_int_eq(c->npools, 2);
  ck_assert_str_eq(c->pools[0].image, "node:20");
  ck_assert(!c->pools[0].image_is_dockerfile);
  ck_assert_str_eq(c->pools[0].itype.name, "tiny");
  ck_assert_int_eq(c->pools[0].itype.memory_mib, 512);
  ck_assert_int_eq(c->pools[0].sleep_after_s, 600);
  ck_assert_int_eq(c->pools[1].allocation, SP_ALLOC_ONE_TO_ONE);
  ck_assert_int_eq(c->pools[1].network, SP_NETWORK_EGRESS);
  ck_assert_int_eq(c->pools[1].max_instances, 9);
  config_free(c);
}
END_TEST

static void expect_error(const char *text, const char *needle)
{
  struct sp_error *err = NULL;
  struct sp_config *c = parse(text, &err);
  ck_assert_msg(c == NULL, "accepted: %s", text);
  ck_assert_str_eq(err->code, "INVALID_CONFIG");
  ck_assert_msg(strstr(err->msg, needle) != NULL, "'%s' not in '%s'", needle, err->msg);
  sp_error_free(err);
}

START_TEST(errors_name_line_and_key)
{
  expect_error("name = \"a\"\nbogus = 1\n", "/etc/sandpit/w.toml:2: unknown key 'bogus'");
  expect_error("[[containers]]\nclass_name = \"A\"\n[[containers]]\nclass_name = \"A\"\n",
               "used by two");
  expect_error("[[containers]]\nmin_warm = 5\nmax_instances = 2\n", "min_warm");
  expect_error("preview_domain = \"Bad_Domain\"\n", "preview_domain");
  expect_error("api_token = \"short\"\n", "too short");
  expect_error("log_level = \"loud\"\n", "log level");
  expect_error("containers = 3\n", "[[containers]]");
  expect_error("[vars]\nOTHER = \"1\"\n", "unknown key 'OTHER' in [vars]");
  expect_error("a = [", "w.toml:1:");
}
END_TEST

START_TEST(durations)
{
  int64_t s;
  ck_assert(config_parse_duration("30s", &s) && s == 30);
  ck_assert(config_parse_duration("10m", &s) && s == 600);
  ck_assert(config_parse_duration("2h", &s) && s == 7200);
  ck_assert(config_parse_duration("1d", &s) && s == 86400);
  ck_assert(config_parse_duration("45", &s) && s == 45);
  ck_assert(!config_parse_duration("-1s", &s));
  ck_assert(!config_parse_duration("5 m", &s));
  ck_assert(!config_parse_duration("m", &s));
  ck_assert(!config_parse_duration("99999999999999999999d", &s));
}
END_TEST

START_TEST(shutdown_grace)
{
  struct sp_error *err = NULL;
  struct sp_config *c = parse("", &err);
  ck_assert_int_eq(c->shutdown_grace_s, 5);
  config_free(c);
  c = parse("shutdown_grace = \"30s\"\n", &err);
  ck_assert_msg(c != NULL, "%s", err ? err->msg : "");
  ck_assert_int_eq(c->shutdown_grace_s, 30);
  config_free(c);
  c = parse("shutdown_grace = 0\n", &err);
  ck_assert_msg(c != NULL, "%s", err ? err->msg : "");
  ck_assert_int_eq(c->shutdown_grace_s, 0);
  config_free(c);
  expect_error("shutdown_grace = \"soon\"\n", "w.toml:1: key 'shutdown_grace' must be a duration");
  expect_error("shutdown_grace = -1\n", "key 'shutdown_grace' must be between");
}
END_TEST

START_TEST(environment_wins)
{
  struct sp_error *err = NULL;
  setenv("MAX_SANDBOX_INSTANCES", "12", 1);
  setenv("SANDPIT_API_TOKEN", "env-token-123", 1);
  const char *text = "[vars]\nMAX_SANDBOX_INSTANCES = 3\n";
  struct sp_config *c = config_parse(text, strlen(text), "w.toml", &err);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(c->max_sandbox_instances, 12);
  ck_assert_int_eq(c->pools[0].max_instances, 12);
  ck_assert_str_eq(c->api_token, "env-token-123");
  ck_assert_str_eq(c->api_token_source, "env");
  config_free(c);
  unsetenv("MAX_SANDBOX_INSTANCES");
  unsetenv("SANDPIT_API_TOKEN");
}
END_TEST

CHECK_MAIN_ONE_TCASE("config", "core", 10, NULL, NULL, defaults, pools_and_types,
                     errors_name_line_and_key, durations, shutdown_grace, environment_wins)
