/* Unit tests for lib/toml.c: the whole toml-test 1.0.0 corpus, plus focused
 * cases for what a user sees (error text and positions, limits).
 *
 * The corpus is found at $SANDPIT_TOML_TEST, else at
 * $SANDPIT_ROOT/../shared/toml-test/tests (SANDPIT_ROOT defaults to ".");
 * a missing corpus is a failure.  Set TOML_TEST_VERBOSE=1 to print the
 * message given for every invalid case. */
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "error.h"
#include "str.h"
#include "toml.h"
#include "util.h"

/* Results of the corpus groups, in memory shared with the processes Check
 * forks for each test, so main() can print one figure line. */
struct figures {
  int valid_pass, valid_total;
  int invalid_pass, invalid_total;
};
static struct figures *figs;
static struct figures figs_fallback = {-1, -1, -1, -1};

static void cjson_freep(cJSON **j) { cJSON_Delete(*j); }
#define cleanup_cjson __attribute__((cleanup(cjson_freep)))

/* ---- corpus files ---- */

static char *corpus_dir(void)
{
  const char *env = getenv("SANDPIT_TOML_TEST");
  if (env != NULL && *env != '\0')
    return xstrdup(env);
  const char *root = getenv("SANDPIT_ROOT");
  if (root == NULL || *root == '\0')
    root = ".";
  return xasprintf("%s/../shared/toml-test/tests", root);
}

struct caselist {
  char **v;
  size_t n;
};

static void caselist_release(struct caselist *l)
{
  for (size_t k = 0; k < l->n; k++)
    free(l->v[k]);
  free(l->v);
}
#define cleanup_caselist __attribute__((cleanup(caselist_release)))

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .toml files under `prefix` named by files-toml-1.0.0, each once. */
static int list_cases(const char *dir, const char *prefix, struct caselist *out,
                      struct sp_error **err)
{
  cleanup_free char *listpath = xasprintf("%s/files-toml-1.0.0", dir);
  size_t len;
  cleanup_free char *text = sp_read_file(listpath, 0, &len, err);
  if (text == NULL)
    return -1;
  size_t cap = 0;
  for (char *save = NULL, *line = strtok_r(text, "\r\n", &save); line != NULL;
       line = strtok_r(NULL, "\r\n", &save)) {
    if (!str_starts_with(line, prefix) || !str_ends_with(line, ".toml"))
      continue;
    if (out->n == cap) {
      cap = cap ? cap * 2 : 256;
      out->v = xreallocarray(out->v, cap, sizeof *out->v);
    }
    out->v[out->n++] = xstrdup(line);
  }
  if (out->n == 0)
    return sp_error_set(err, 0, "%s lists no %s*.toml cases", listpath, prefix);
  qsort(out->v, out->n, sizeof *out->v, cmp_str);
  size_t w = 1;
  for (size_t r = 1; r < out->n; r++) {
    if (strcmp(out->v[r], out->v[w - 1]) == 0)
      free(out->v[r]);
    else
      out->v[w++] = out->v[r];
  }
  out->n = w;
  return 0;
}

static int count_lines(const char *s, size_t len)
{
  int lines = 1;
  for (size_t k = 0; k < len; k++)
    lines += s[k] == '\n';
  return lines;
}

/* ---- tagged JSON ---- */

/* cJSON strings stop at NUL, so both sides write U+0000 as the overlong
 * pair C0 80, which valid TOML strings can never contain. */
static char *nul_encode(const char *s, size_t len)
{
  struct sbuf sb = SBUF_INIT;
  for (size_t k = 0; k < len; k++) {
    if (s[k] == '\0')
      sbuf_add(&sb, "\xc0\x80", 2);
    else
      sbuf_addch(&sb, s[k]);
  }
  return sbuf_detach(&sb, NULL);
}

/* Rewrites the escape \u0000 inside JSON strings to raw C0 80. */
static char *json_text_fix_nul(const char *t, size_t len)
{
  struct sbuf sb = SBUF_INIT;
  bool in_str = false;
  for (size_t k = 0; k < len; k++) {
    if (in_str && t[k] == '\\' && k + 1 < len) {
      if (t[k + 1] == 'u' && k + 5 < len && memcmp(t + k + 2, "0000", 4) == 0) {
        sbuf_add(&sb, "\xc0\x80", 2);
        k += 5;
      } else {
        sbuf_add(&sb, t + k, 2);
        k++;
      }
      continue;
    }
    if (t[k] == '"')
      in_str = !in_str;
    sbuf_addch(&sb, t[k]);
  }
  return sbuf_detach(&sb, NULL);
}

static cJSON *tagged(const char *type, const char *value)
{
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "type", type);
  cJSON_AddStringToObject(o, "value", value);
  return o;
}

static cJSON *to_tagged(const struct toml_value *v)
{
  char buf[64];
  switch (v->type) {
  case TOML_TABLE: {
    cJSON *o = cJSON_CreateObject();
    for (size_t k = 0; k < v->u.tab.len; k++) {
      cleanup_free char *key = nul_encode(v->u.tab.items[k].key, v->u.tab.items[k].keylen);
      cJSON_AddItemToObject(o, key, to_tagged(v->u.tab.items[k].value));
    }
    return o;
  }
  case TOML_ARRAY: {
    cJSON *a = cJSON_CreateArray();
    for (size_t k = 0; k < v->u.arr.len; k++)
      cJSON_AddItemToArray(a, to_tagged(v->u.arr.items[k]));
    return a;
  }
  case TOML_STRING: {
    cleanup_free char *s = nul_encode(v->u.str.ptr, v->u.str.len);
    return tagged("string", s);
  }
  case TOML_INTEGER:
    snprintf(buf, sizeof buf, "%lld", (long long)v->u.i);
    return tagged("integer", buf);
  case TOML_FLOAT:
    if (isnan(v->u.f))
      snprintf(buf, sizeof buf, "nan");
    else if (isinf(v->u.f))
      snprintf(buf, sizeof buf, "%sinf", v->u.f < 0 ? "-" : "");
    else
      snprintf(buf, sizeof buf, "%.17g", v->u.f);
    return tagged("float", buf);
  case TOML_BOOL:
    return tagged("bool", v->u.b ? "true" : "false");
  case TOML_DATETIME:
    return tagged("datetime", v->u.str.ptr);
  case TOML_DATETIME_LOCAL:
    return tagged("datetime-local", v->u.str.ptr);
  case TOML_DATE_LOCAL:
    return tagged("date-local", v->u.str.ptr);
  case TOML_TIME_LOCAL:
    return tagged("time-local", v->u.str.ptr);
  }
  return cJSON_CreateNull();
}

static bool is_scalar(const cJSON *j)
{
  return cJSON_IsObject(j) && cJSON_GetArraySize(j) == 2 &&
         cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "type")) &&
         cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "value"));
}

/* Date/time text in one form: uppercase, 'T' separator, fractional seconds
 * as exactly three digits (truncated). */
static void norm_datetime(const char *s, char *out, size_t outlen)
{
  struct sbuf sb = SBUF_INIT;
  const char *dot = NULL;
  for (const char *c = s; *c; c++) {
    if (*c == '.') {
      dot = c;
      break;
    }
    sbuf_addch(&sb, *c == ' ' ? 'T' : (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c));
  }
  const char *rest = "";
  char ms[4] = "000";
  if (dot != NULL) {
    const char *c = dot + 1;
    for (int k = 0; *c >= '0' && *c <= '9'; c++, k++)
      if (k < 3)
        ms[k] = *c;
    rest = c;
  }
  sbuf_addch(&sb, '.');
  sbuf_addstr(&sb, ms);
  for (const char *c = rest; *c; c++)
    sbuf_addch(&sb, (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c));
  snprintf(out, outlen, "%s", sbuf_str(&sb));
  sbuf_release(&sb);
}

static bool scalar_equal(const char *type, const char *a, const char *b)
{
  if (strcmp(type, "integer") == 0) {
    char *ea, *eb;
    errno = 0;
    long long x = strtoll(a, &ea, 10), y = strtoll(b, &eb, 10);
    return errno == 0 && *ea == '\0' && *eb == '\0' && x == y;
  }
  if (strcmp(type, "float") == 0) {
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    if (*ea != '\0' || *eb != '\0')
      return false;
    return (isnan(x) && isnan(y)) || x == y;
  }
  if (strncmp(type, "date", 4) == 0 || strcmp(type, "time-local") == 0) {
    char na[128], nb[128];
    norm_datetime(a, na, sizeof na);
    norm_datetime(b, nb, sizeof nb);
    return strcmp(na, nb) == 0;
  }
  return strcmp(a, b) == 0; /* string, bool */
}

/* Compares expected against got; on a difference writes where and why. */
static bool tagged_equal(const cJSON *exp, const cJSON *got, struct sbuf *path,
                         struct sbuf *why)
{
  size_t mark = path->len;
  if (is_scalar(exp)) {
    if (!is_scalar(got)) {
      sbuf_addf(why, "%s: expected a scalar", sbuf_str(path));
      return false;
    }
    const char *et = cJSON_GetObjectItemCaseSensitive(exp, "type")->valuestring;
    const char *gt = cJSON_GetObjectItemCaseSensitive(got, "type")->valuestring;
    const char *ev = cJSON_GetObjectItemCaseSensitive(exp, "value")->valuestring;
    const char *gv = cJSON_GetObjectItemCaseSensitive(got, "value")->valuestring;
    if (strcmp(et, gt) != 0) {
      sbuf_addf(why, "%s: expected type %s, got %s", sbuf_str(path), et, gt);
      return false;
    }
    if (!scalar_equal(et, ev, gv)) {
      sbuf_addf(why, "%s: expected %s \"%s\", got \"%s\"", sbuf_str(path), et, ev, gv);
      return false;
    }
    return true;
  }
  if (cJSON_IsArray(exp)) {
    if (!cJSON_IsArray(got)) {
      sbuf_addf(why, "%s: expected an array", sbuf_str(path));
      return false;
    }
    int n = cJSON_GetArraySize(exp);
    if (n != cJSON_GetArraySize(got)) {
      sbuf_addf(why, "%s: expected %d elements, got %d", sbuf_str(path), n,
                cJSON_GetArraySize(got));
      return false;
    }
    const cJSON *g = got->child;
    int k = 0;
    for (const cJSON *e = exp->child; e != NULL; e = e->next, g = g->next, k++) {
      sbuf_addf(path, "[%d]", k);
      bool ok = tagged_equal(e, g, path, why);
      path->len = mark;
      path->buf[mark] = '\0';
      if (!ok)
        return false;
    }
    return true;
  }
  if (cJSON_IsObject(exp)) {
    if (!cJSON_IsObject(got) || is_scalar(got)) {
      sbuf_addf(why, "%s: expected a table", sbuf_str(path));
      return false;
    }
    if (cJSON_GetArraySize(exp) != cJSON_GetArraySize(got)) {
      sbuf_addf(why, "%s: expected %d keys, got %d", sbuf_str(path),
                cJSON_GetArraySize(exp), cJSON_GetArraySize(got));
      return false;
    }
    for (const cJSON *e = exp->child; e != NULL; e = e->next) {
      const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, e->string);
      sbuf_addf(path, ".%s", e->string);
      bool ok = g != NULL;
      if (!ok)
        sbuf_addf(why, "%s: missing key", sbuf_str(path));
      else
        ok = tagged_equal(e, g, path, why);
      path->len = mark;
      path->buf[mark] = '\0';
      if (!ok)
        return false;
    }
    return true;
  }
  sbuf_addf(why, "%s: unexpected JSON in the expected file", sbuf_str(path));
  return false;
}

/* Every value must carry a position inside the document. */
static bool positions_ok(const struct toml_value *v, int max_line)
{
  if (v->line < 1 || v->col < 1 || v->line > max_line)
    return false;
  if (v->type == TOML_TABLE) {
    for (size_t k = 0; k < v->u.tab.len; k++)
      if (!positions_ok(v->u.tab.items[k].value, max_line))
        return false;
  } else if (v->type == TOML_ARRAY) {
    for (size_t k = 0; k < v->u.arr.len; k++)
      if (!positions_ok(v->u.arr.items[k], max_line))
        return false;
  }
  return true;
}

/* "FILE:LINE:COLUMN: message" with the given FILE; returns false if the
 * message does not have that shape. */
static bool parse_prefix(const char *msg, const char *file, long *line, long *col)
{
  size_t fl = strlen(file);
  if (strncmp(msg, file, fl) != 0 || msg[fl] != ':')
    return false;
  const char *s = msg + fl + 1;
  char *end;
  if (*s < '0' || *s > '9')
    return false;
  *line = strtol(s, &end, 10);
  if (*end != ':' || end[1] < '0' || end[1] > '9')
    return false;
  *col = strtol(end + 1, &end, 10);
  if (end[0] != ':' || end[1] != ' ' || end[2] == '\0')
    return false;
  return *line >= 1 && *col >= 1;
}

/* ---- corpus tests ---- */

static int run_valid_case(const char *dir, const char *name, struct sbuf *why)
{
  cleanup_free char *tpath = xasprintf("%s/%s", dir, name);
  cleanup_free char *jpath = xasprintf("%.*s.json", (int)(strlen(tpath) - 5), tpath);
  cleanup_error struct sp_error *err = NULL;
  size_t tlen, jlen;
  cleanup_free char *text = sp_read_file(tpath, 0, &tlen, &err);
  cleanup_free char *jtext = text ? sp_read_file(jpath, 0, &jlen, &err) : NULL;
  if (jtext == NULL) {
    sbuf_addf(why, "cannot read case: %s", err->msg);
    return -1;
  }
  cleanup_toml struct toml_value *doc = toml_parse(text, tlen, name, &err);
  if (doc == NULL) {
    sbuf_addf(why, "rejected: %s", err->msg);
    return -1;
  }
  cleanup_free char *fixed = json_text_fix_nul(jtext, jlen);
  cleanup_cjson cJSON *exp = cJSON_Parse(fixed);
  if (exp == NULL) {
    sbuf_addf(why, "cannot parse the expected JSON %s", jpath);
    return -1;
  }
  cleanup_cjson cJSON *got = to_tagged(doc);
  struct sbuf path = SBUF_INIT;
  sbuf_addstr(&path, "$");
  bool same = tagged_equal(exp, got, &path, why);
  sbuf_release(&path);
  if (!same)
    return -1;
  if (!positions_ok(doc, count_lines(text, tlen))) {
    sbuf_addstr(why, "a value has no position (line/col) or one past the end");
    return -1;
  }
  return 0;
}

static int run_invalid_case(const char *dir, const char *name, struct sbuf *why)
{
  cleanup_free char *tpath = xasprintf("%s/%s", dir, name);
  cleanup_error struct sp_error *err = NULL;
  size_t tlen;
  cleanup_free char *text = sp_read_file(tpath, 0, &tlen, &err);
  if (text == NULL) {
    sbuf_addf(why, "cannot read case: %s", err->msg);
    return -1;
  }
  cleanup_toml struct toml_value *doc = toml_parse(text, tlen, name, &err);
  if (doc != NULL) {
    sbuf_addstr(why, "accepted an invalid document");
    return -1;
  }
  if (getenv("TOML_TEST_VERBOSE") != NULL)
    printf("  %s\n", err->msg);
  long line, col;
  if (err->code == NULL || strcmp(err->code, "INVALID_TOML") != 0 || err->http_status != 400) {
    sbuf_addf(why, "error code %s/%d, want INVALID_TOML/400", err->code, err->http_status);
    return -1;
  }
  if (!parse_prefix(err->msg, name, &line, &col)) {
    sbuf_addf(why, "message not shaped FILE:LINE:COLUMN: ...: %s", err->msg);
    return -1;
  }
  if (line > count_lines(text, tlen)) {
    sbuf_addf(why, "line %ld is past the end of the document: %s", line, err->msg);
    return -1;
  }
  return 0;
}

static void run_group(const char *group, int *pass_out, int *total_out)
{
  cleanup_free char *dir = corpus_dir();
  cleanup_caselist struct caselist cases = {0};
  cleanup_error struct sp_error *err = NULL;
  cleanup_free char *prefix = xasprintf("%s/", group);
  if (list_cases(dir, prefix, &cases, &err) < 0)
    ck_abort_msg("toml-test corpus not found at %s (set SANDPIT_TOML_TEST): %s", dir,
                 err->msg);
  bool valid = strcmp(group, "valid") == 0;
  int pass = 0;
  struct sbuf failures = SBUF_INIT;
  for (size_t k = 0; k < cases.n; k++) {
    struct sbuf why = SBUF_INIT;
    int rc = valid ? run_valid_case(dir, cases.v[k], &why)
                   : run_invalid_case(dir, cases.v[k], &why);
    if (rc == 0)
      pass++;
    else
      sbuf_addf(&failures, "  FAIL %s: %s\n", cases.v[k], sbuf_str(&why));
    sbuf_release(&why);
  }
  *pass_out = pass;
  *total_out = (int)cases.n;
  fputs(sbuf_str(&failures), stdout);
  printf("toml-test 1.0.0: %s %d/%zu\n", group, pass, cases.n);
  fflush(stdout);
  sbuf_release(&failures);
  ck_assert_msg((size_t)pass == cases.n, "%zu of %zu %s toml-test cases failed",
                cases.n - (size_t)pass, cases.n, group);
}

START_TEST(test_corpus_valid)
{
  run_group("valid", &figs->valid_pass, &figs->valid_total);
}
END_TEST

START_TEST(test_corpus_invalid)
{
  run_group("invalid", &figs->invalid_pass, &figs->invalid_total);
}
END_TEST

/* ---- focused tests ---- */

static struct toml_value *parse_str(const char *text, struct sp_error **err)
{
  return toml_parse(text, strlen(text), "t.toml", err);
}

static void expect_error(const char *text, size_t len, const char *want)
{
  cleanup_error struct sp_error *err = NULL;
  cleanup_toml struct toml_value *doc = toml_parse(text, len, "t.toml", &err);
  ck_assert_msg(doc == NULL, "accepted: %s", text);
  ck_assert_str_eq(err->code, "INVALID_TOML");
  ck_assert_int_eq(err->http_status, 400);
  ck_assert_str_eq(err->msg, want);
}

START_TEST(test_error_messages)
{
  static const char *const cases[][2] = {
      {"a = 1\nb = 2\n  a = 3\n", "t.toml:3:3: duplicate key \"a\" (first defined at line 1)"},
      {"x = 1\ns = \"ab\\xcd\"\n", "t.toml:2:8: invalid escape sequence '\\x'"},
      /* columns count characters, not bytes */
      {"\"é\" = \"ü\\q\"\n", "t.toml:1:9: invalid escape sequence '\\q'"},
      {"name \"x\"\n", "t.toml:1:6: expected '=' after key \"name\", found '\"'"},
      {"[a]\nx = 1\n\n[a]\n", "t.toml:4:1: table [a] is defined twice (first defined at line 1)"},
      {"a = { b = 1 }\na.c = 2\n",
       "t.toml:2:1: cannot add to inline table \"a\" (defined at "
       "line 1): inline tables cannot be extended"},
      {"s = \"\\uD800\"",
       "t.toml:1:6: invalid escape sequence '\\uD800': U+D800 is "
       "a surrogate, not a Unicode scalar value"},
      {"a = 1\rb = 2\n", "t.toml:1:6: carriage return (U+000D) not followed by a line feed"},
      {"a = \"\xff\"\n", "t.toml:1:6: invalid UTF-8 (byte 0xff)"},
      {"a = 0123", "t.toml:1:5: leading zeros are not allowed in '0123'"},
      {"d = 2023-02-29", "t.toml:1:5: day 29 out of range for 2023-02 (01-28)"},
  };
  for (size_t i = 0; i < SP_ARRAY_SIZE(cases); i++)
    expect_error(cases[i][0], strlen(cases[i][0]), cases[i][1]);
}
END_TEST

/* v, asserting it was defined at line:col. */
static const struct toml_value *at(const struct toml_value *v, int line, int col)
{
  ck_assert_ptr_nonnull(v);
  ck_assert_int_eq(v->line, line);
  ck_assert_int_eq(v->col, col);
  return v;
}

START_TEST(test_positions)
{
  const char *text = "title = \"x\"\n"         /* 1 */
                     "[server]\n"              /* 2 */
                     "port = 8080\n"           /* 3 */
                     "  [server.tls]\n"        /* 4 */
                     "  cert = 'c'\n"          /* 5 */
                     "[[jobs]]\n"              /* 6 */
                     "name = \"a\"\n"          /* 7 */
                     "limits.cpu = 2\n"        /* 8 */
                     "arr = [1, 2, { k = true }]\n" /* 9 */
                     "\"é\" = 1979-05-27 07:32:00z\n"; /* 10 */
  cleanup_error struct sp_error *err = NULL;
  cleanup_toml struct toml_value *doc = parse_str(text, &err);
  ck_assert_msg(doc != NULL, "%s", err ? err->msg : "");
  at(doc, 1, 1);
  const struct toml_value *v = at(toml_table_get(doc, "title"), 1, 9);
  const struct toml_value *server = at(toml_table_get(doc, "server"), 2, 1);
  v = at(toml_table_get(server, "port"), 3, 8);
  ck_assert_int_eq(v->type, TOML_INTEGER);
  ck_assert_int_eq(v->u.i, 8080);
  const struct toml_value *tls = at(toml_table_get(server, "tls"), 4, 3);
  at(toml_table_get(tls, "cert"), 5, 10);
  const struct toml_value *jobs = toml_table_get(doc, "jobs");
  ck_assert_int_eq(jobs->type, TOML_ARRAY);
  ck_assert_int_eq(jobs->line, 6);
  const struct toml_value *job = jobs->u.arr.items[0];
  ck_assert_int_eq(job->line, 6);
  const struct toml_value *limits = at(toml_table_get(job, "limits"), 8, 1);
  ck_assert_int_eq(limits->type, TOML_TABLE);
  at(toml_table_get(limits, "cpu"), 8, 14);
  const struct toml_value *arr = toml_table_get(job, "arr");
  ck_assert_int_eq(arr->col, 7);
  ck_assert_int_eq(arr->u.arr.len, 3);
  ck_assert_int_eq(arr->u.arr.items[1]->col, 11);
  ck_assert_int_eq(arr->u.arr.items[2]->col, 14);
  ck_assert_int_eq(arr->u.arr.items[2]->type, TOML_TABLE);
  v = toml_table_get(arr->u.arr.items[2], "k");
  ck_assert_int_eq(v->col, 20);
  ck_assert(v->u.b);
  v = at(toml_table_get(job, "é"), 10, 7);
  ck_assert_int_eq(v->type, TOML_DATETIME);
  ck_assert_str_eq(v->u.str.ptr, "1979-05-27T07:32:00Z");
  ck_assert_str_eq(toml_type_name(v->type), "offset date-time");
  ck_assert_ptr_null(toml_table_get(doc, "nope"));
  ck_assert_ptr_null(toml_table_get(v, "x"));
}
END_TEST

static char *repeat(const char *open, int n, const char *mid, const char *close)
{
  struct sbuf sb = SBUF_INIT;
  for (int k = 0; k < n; k++)
    sbuf_addstr(&sb, open);
  sbuf_addstr(&sb, mid);
  for (int k = 0; k < n; k++)
    sbuf_addstr(&sb, close);
  return sbuf_detach(&sb, NULL);
}

static void expect_depth(const char *prefix, const char *open, int n, const char *mid,
                         const char *close, bool ok)
{
  cleanup_free char *body = repeat(open, n, mid, close);
  cleanup_free char *text = xasprintf("%s%s\n", prefix, body);
  cleanup_error struct sp_error *err = NULL;
  cleanup_toml struct toml_value *doc = parse_str(text, &err);
  if (ok) {
    ck_assert_msg(doc != NULL, "depth %d refused: %s", n, err ? err->msg : "");
  } else {
    ck_assert_msg(doc == NULL, "depth %d accepted", n);
    ck_assert_msg(strstr(err->msg, "nested too deeply (the limit is 128 levels)") != NULL,
                  "%s", err->msg);
  }
}

START_TEST(test_nesting_limit)
{
  expect_depth("a = ", "[", 128, "1", "]", true);
  expect_depth("a = ", "[", 129, "1", "]", false);
  expect_depth("a = ", "{b=", 128, "1", "}", true);
  expect_depth("a = ", "{b=", 129, "1", "}", false);
  expect_depth("a = ", "[{b=", 64, "1", "}]", true);
  expect_depth("a = ", "[{b=", 65, "1", "}]", false);
  expect_depth("", "", 0, "[t]\n", "", true);
  /* far too deep: refused without exhausting the stack */
  expect_depth("a = ", "[", 200000, "", "]", false);
  expect_depth("a = ", "{b=", 200000, "1", "}", false);
  /* tables by headers and by dotted keys count too */
  cleanup_free char *h128 = repeat("a.", 127, "a", "");
  cleanup_free char *h129 = repeat("a.", 128, "a", "");
  cleanup_free char *t1 = xasprintf("[%s]\nx = 1\n", h128);
  cleanup_free char *t2 = xasprintf("[%s]\n", h129);
  cleanup_free char *t3 = xasprintf("%s.x = 1\n", h128);
  cleanup_free char *t4 = xasprintf("%s.x = 1\n", h129);
  cleanup_free char *t5 = xasprintf("[[%s]]\n", h128);
  cleanup_error struct sp_error *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL, *e5 = NULL;
  cleanup_toml struct toml_value *d1 = parse_str(t1, &e1);
  cleanup_toml struct toml_value *d2 = parse_str(t2, &e2);
  cleanup_toml struct toml_value *d3 = parse_str(t3, &e3);
  cleanup_toml struct toml_value *d4 = parse_str(t4, &e4);
  cleanup_toml struct toml_value *d5 = parse_str(t5, &e5);
  ck_assert_msg(d1 != NULL, "%s", e1 ? e1->msg : "");
  ck_assert_ptr_null(d2);
  ck_assert_msg(d3 != NULL, "%s", e3 ? e3->msg : "");
  ck_assert_ptr_null(d4);
  ck_assert_ptr_null(d5); /* the [[...]] element sits one level below its array */
  ck_assert_ptr_nonnull(strstr(e2->msg, "nested too deeply"));
  ck_assert_ptr_nonnull(strstr(e4->msg, "nested too deeply"));
  ck_assert_ptr_nonnull(strstr(e5->msg, "nested too deeply"));
}
END_TEST

START_TEST(test_nul_bytes)
{
  static const char doc1[] = "a = 1\n\0b = 2\n";
  expect_error(doc1, sizeof doc1 - 1,
               "t.toml:2:1: NUL byte (U+0000) in document; TOML text cannot contain NUL");
  static const char doc2[] = "s = \"a\0b\"";
  expect_error(doc2, sizeof doc2 - 1,
               "t.toml:1:7: NUL byte (U+0000) in document; TOML text cannot contain NUL");
  static const char doc3[] = "# comment \0\n";
  expect_error(doc3, sizeof doc3 - 1,
               "t.toml:1:11: NUL byte (U+0000) in document; TOML text cannot contain NUL");
  /* an escaped NUL is fine, in values and keys */
  const char *text = "\"k\\u0000ey\" = \"v\\u0000\"\n";
  cleanup_error struct sp_error *err = NULL;
  cleanup_toml struct toml_value *doc = parse_str(text, &err);
  ck_assert_msg(doc != NULL, "%s", err ? err->msg : "");
  ck_assert_int_eq(doc->u.tab.len, 1);
  ck_assert_int_eq(doc->u.tab.items[0].keylen, 4);
  ck_assert_int_eq(memcmp(doc->u.tab.items[0].key, "k\0ey", 5), 0);
  const struct toml_value *v = doc->u.tab.items[0].value;
  ck_assert_int_eq(v->u.str.len, 2);
  ck_assert_int_eq(memcmp(v->u.str.ptr, "v\0", 3), 0);
}
END_TEST

static void expect_int(const char *text, int64_t want)
{
  cleanup_error struct sp_error *err = NULL;
  cleanup_toml struct toml_value *doc = parse_str(text, &err);
  ck_assert_msg(doc != NULL, "%s: %s", text, err ? err->msg : "");
  const struct toml_value *v = toml_table_get(doc, "a");
  ck_assert_int_eq(v->type, TOML_INTEGER);
  ck_assert_msg(v->u.i == want, "%s gave %lld", text, (long long)v->u.i);
}

START_TEST(test_int64_range)
{
  expect_int("a = 9223372036854775807", INT64_MAX);
  expect_int("a = -9223372036854775808", INT64_MIN);
  expect_int("a = 9_223_372_036_854_775_807", INT64_MAX);
  expect_int("a = 0x7fffffffffffffff", INT64_MAX);
  expect_int("a = 0o777777777777777777777", INT64_MAX);
  expect_int("a = -0", 0);
  const char *m = "(must fit in a signed 64-bit integer)";
  cleanup_free char *w1 = xasprintf("t.toml:1:5: integer out of range %s", m);
  cleanup_free char *w2 = xasprintf("t.toml:2:7: integer out of range %s", m);
  const char *bad[] = {"a = 9223372036854775808", "a = -9223372036854775809",
                       "a = 0x8000000000000000", "a = 99999999999999999999999999"};
  for (size_t k = 0; k < SP_ARRAY_SIZE(bad); k++)
    expect_error(bad[k], strlen(bad[k]), w1);
  const char *in_array = "x = 1\nb = [ 18446744073709551616 ]";
  expect_error(in_array, strlen(in_array), w2);
}
END_TEST

/* Every prefix of a document exercising most of the grammar parses or
 * fails cleanly, with a well-shaped message. */
START_TEST(test_truncated_input)
{
  const char *text =
      "# header comment\r\n"
      "title = \"TOML \\u00e9 \\U0001F600 \\\"q\\\"\"\r\n"
      "lit = 'C:\\path'\n"
      "ml = \"\"\"\nline one \\\n   still one\n\"\"\"\"\"\n"
      "mll = '''\nraw ''\n'''\n"
      "ints = [ +1, -2, 0x1, 0xdead_beef, 0o17, 0b1010, 1_000 ]\n"
      "floats = [ 1.5, -0.0, 6.02e+23, 1e-7, inf, -nan, 3_1.4_1 ]\n"
      "when = [ 1979-05-27T07:32:00.999-07:00, 1979-05-27 07:32:00, 1979-05-27, 07:32:00.5 ]\n"
      "inline = { a.b = 1, \"c\" = [ { d = true } ], e = {} }\n"
      "[owner . 'name']\n"
      "x.y.z = false # trailing\n"
      "[[arr]]\n"
      "[[arr]]\n"
      "k = 1\n"
      "[arr.sub]\n";
  size_t len = strlen(text);
  cleanup_error struct sp_error *full_err = NULL;
  cleanup_toml struct toml_value *full = parse_str(text, &full_err);
  ck_assert_msg(full != NULL, "%s", full_err ? full_err->msg : "");
  for (size_t n = 0; n <= len; n++) {
    cleanup_free char *cut = xmemdup(text, n); /* exact allocation: ASan sees overreads */
    cleanup_error struct sp_error *err = NULL;
    cleanup_toml struct toml_value *doc = toml_parse(cut, n, "t.toml", &err);
    long line, col;
    if (doc == NULL)
      ck_assert_msg(parse_prefix(err->msg, "t.toml", &line, &col), "%s", err->msg);
  }
}
END_TEST

START_TEST(test_large_documents)
{
  struct sbuf sb = SBUF_INIT;
  for (int k = 0; k < 50000; k++)
    sbuf_addf(&sb, "key%d = %d\n", k, k);
  sbuf_addstr(&sb, "big = [");
  for (int k = 0; k < 100000; k++)
    sbuf_addf(&sb, "%d,", k);
  sbuf_addstr(&sb, "]\nkey17 = 1\n");
  cleanup_error struct sp_error *err = NULL;
  struct toml_value *doc = toml_parse(sb.buf, sb.len, "t.toml", &err);
  ck_assert_ptr_null(doc);
  ck_assert_str_eq(err->msg, "t.toml:50002:1: duplicate key \"key17\" (first defined at "
                             "line 18)");
  sb.len -= strlen("key17 = 1\n");
  sp_error_free(err);
  err = NULL;
  doc = toml_parse(sb.buf, sb.len, "t.toml", &err);
  sbuf_release(&sb);
  ck_assert_msg(doc != NULL, "%s", err ? err->msg : "");
  ck_assert_int_eq(doc->u.tab.len, 50001);
  ck_assert_int_eq(toml_table_get(doc, "key49999")->u.i, 49999);
  ck_assert_int_eq(toml_table_get(doc, "key0")->line, 1);
  const struct toml_value *big = toml_table_get(doc, "big");
  ck_assert_int_eq(big->u.arr.len, 100000);
  ck_assert_int_eq(big->u.arr.items[99999]->u.i, 99999);
  toml_free(doc);
  toml_free(NULL);
}
END_TEST

static Suite *toml_suite(void)
{
  Suite *s = suite_create("toml");
  TCase *corpus = tcase_create("corpus");
  tcase_set_timeout(corpus, 60);
  tcase_add_test(corpus, test_corpus_valid);
  tcase_add_test(corpus, test_corpus_invalid);
  suite_add_tcase(s, corpus);
  TCase *unit = tcase_create("unit");
  tcase_set_timeout(unit, 60);
  tcase_add_test(unit, test_error_messages);
  tcase_add_test(unit, test_positions);
  tcase_add_test(unit, test_nesting_limit);
  tcase_add_test(unit, test_nul_bytes);
  tcase_add_test(unit, test_int64_range);
  tcase_add_test(unit, test_truncated_input);
  tcase_add_test(unit, test_large_documents);
  suite_add_tcase(s, unit);
  return s;
}

static void fig(char *buf, size_t len, int pass, int total)
{
  if (total < 0)
    snprintf(buf, len, "?");
  else
    snprintf(buf, len, "%d/%d", pass, total);
}

int main(void)
{
  void *shared = mmap(NULL, sizeof *figs, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  figs = shared == MAP_FAILED ? &figs_fallback : shared;
  *figs = (struct figures){-1, -1, -1, -1};

  SRunner *sr = srunner_create(toml_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);

  char v[32], iv[32];
  fig(v, sizeof v, figs->valid_pass, figs->valid_total);
  fig(iv, sizeof iv, figs->invalid_pass, figs->invalid_total);
  printf("toml-test 1.0.0: valid %s, invalid %s\n", v, iv);
  if (shared != MAP_FAILED)
    munmap(shared, sizeof *figs);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
