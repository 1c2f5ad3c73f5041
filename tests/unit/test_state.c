#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "error.h"
#include "state.h"
#include "util.h"

static char dir[64];

static struct state *open_state(void)
{
  strcpy(dir, "/tmp/sp-state-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  cleanup_free char *path = xasprintf("%s/s.db", dir);
  struct sp_error *err = NULL;
  struct state *st = state_open(path, &err);
  ck_assert_msg(st != NULL, "%s", err ? err->msg : "");
  return st;
}

static struct state *reopen(struct state *st)
{
  state_close(st);
  cleanup_free char *path = xasprintf("%s/s.db", dir);
  struct sp_error *err = NULL;
  st = state_open(path, &err);
  ck_assert_ptr_nonnull(st);
  return st;
}

static void done(struct state *st)
{
  state_close(st);
  cleanup_free char *cmd = xasprintf("rm -rf %s", dir);
  ck_assert_int_eq(system(cmd), 0);
}

static int inst_cb(void *ud, const struct instance_row *r)
{
  char *out = ud;
  snprintf(out + strlen(out), 512 - strlen(out), "%s|%d|%s|%s|%s|%lld|%lld|%lld;", r->pool, r->slot,
           r->backend, r->backend_id ? r->backend_id : "NULL", r->state, (long long)r->started_ms,
           (long long)r->starts, (long long)r->restarts);
  return 0;
}

START_TEST(instances_round_trip)
{
  struct state *st = open_state();
  struct instance_row a = {"Sandbox", 3, "local", "local:12:34", "running", 1700, 2, 1};
  struct instance_row b = {"Sandbox", 0, "docker", NULL, "failed", 0, 1, 0};
  ck_assert_int_eq(state_instance_put(st, &a, NULL), 0);
  ck_assert_int_eq(state_instance_put(st, &b, NULL), 0);
  a.state = "stopped";
  a.restarts = 2;
  ck_assert_int_eq(state_instance_put(st, &a, NULL), 0);
  st = reopen(st);
  char out[512] = "";
  state_instance_each(st, inst_cb, out, NULL);
  ck_assert_str_eq(out, "Sandbox|0|docker|NULL|failed|0|1|0;"
                        "Sandbox|3|local|local:12:34|stopped|1700|2|2;");
  done(st);
}
END_TEST

static int sbx_cb(void *ud, const struct sandbox_row *r)
{
  char *out = ud;
  snprintf(out + strlen(out), 512 - strlen(out), "%s|%s|%d|%lld|%lld;", r->id, r->pool, r->slot,
           (long long)r->created_ms, (long long)r->last_active_ms);
  return 0;
}

static int port_cb(void *ud, const struct port_row *r)
{
  char *out = ud;
  snprintf(out + strlen(out), 512 - strlen(out), "%s|%d|%s|%s;", r->sandbox, r->port, r->token,
           r->name ? r->name : "NULL");
  return 0;
}

START_TEST(sandboxes_and_ports)
{
  struct state *st = open_state();
  struct sandbox_row s1 = {"chat-1", "Sandbox", 2, 100, 100};
  struct sandbox_row s2 = {"chat-2", "Other", 0, 200, 250};
  ck_assert_int_eq(state_sandbox_put(st, &s1, NULL), 0);
  ck_assert_int_eq(state_sandbox_put(st, &s2, NULL), 0);
  ck_assert_int_eq(state_sandbox_touch(st, "chat-1", 900, NULL), 0);
  struct port_row p1 = {"chat-1", 3000, "tok1", "web", 5};
  struct port_row p2 = {"chat-1", 5173, "tok2", NULL, 6};
  struct port_row p3 = {"chat-2", 3000, "tok3", NULL, 7};
  ck_assert_int_eq(state_port_put(st, &p1, NULL), 0);
  ck_assert_int_eq(state_port_put(st, &p2, NULL), 0);
  ck_assert_int_eq(state_port_put(st, &p3, NULL), 0);
  st = reopen(st);
  char out[512] = "";
  state_sandbox_each(st, sbx_cb, out, NULL);
  ck_assert_str_eq(out, "chat-1|Sandbox|2|100|900;chat-2|Other|0|200|250;");
  out[0] = '\0';
  state_port_each(st, "chat-1", port_cb, out, NULL);
  ck_assert_str_eq(out, "chat-1|3000|tok1|web;chat-1|5173|tok2|NULL;");
  char tok[32];
  ck_assert_int_eq(state_port_token(st, "chat-2", 3000, tok, sizeof tok, NULL), 1);
  ck_assert_str_eq(tok, "tok3");
  ck_assert_int_eq(state_port_token(st, "chat-2", 3001, tok, sizeof tok, NULL), 0);
  /* deleting a sandbox revokes its ports */
  ck_assert_int_eq(state_sandbox_delete(st, "chat-1", NULL), 0);
  out[0] = '\0';
  state_port_each(st, NULL, port_cb, out, NULL);
  ck_assert_str_eq(out, "chat-2|3000|tok3|NULL;");
  ck_assert_int_eq(state_port_delete(st, "chat-2", 3000, NULL), 0);
  ck_assert_int_eq(state_port_token(st, "chat-2", 3000, tok, sizeof tok, NULL), 0);
  done(st);
}
END_TEST

CHECK_MAIN_ONE_TCASE("state", "core", 10, NULL, NULL, instances_round_trip, sandboxes_and_ports)
