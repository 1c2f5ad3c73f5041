/* Rules: the rules file (TOML) loaded and checked, each pattern compiled. */
#include "classify_int.h"

/* "FILE:LINE: WHAT: message"; WHAT names the entry (rule "x", benign #2). */
static int rules_error(struct sp_error **err, const char *file, int line,
                       const char *what, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int rules_error(struct sp_error **err, const char *file, int line,
                       const char *what, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *msg = xvasprintf(fmt, ap);
  va_end(ap);
  if (what)
    sp_error_code(err, "INVALID_RULES", 500, "%s:%d: %s: %s", file, line, what, msg);
  else
    sp_error_code(err, "INVALID_RULES", 500, "%s:%d: %s", file, line, msg);
  free(msg);
  return -1;
}

static void rule_release(struct rule *ru)
{
  free(ru->name);
  free(ru->tool);
  free(ru->category);
  free(ru->severity);
  pcre2_code_free(ru->re);
}

void classify_rules_free(struct classify_rules *r)
{
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->nrules; i++)
    rule_release(&r->rules[i]);
  free(r->rules);
  for (size_t i = 0; i < r->nbenign; i++)
    pcre2_code_free(r->benign[i].re);
  free(r->benign);
  for (size_t i = 0; i < r->nlits; i++)
    if (r->lits[i].owner)
      free(r->lits[i].s);
  free(r->lits);
  free(r);
}

size_t classify_rules_count(const struct classify_rules *r)
{
  return r ? r->nrules : 0;
}

size_t classify_rules_unfiltered(const struct classify_rules *r)
{
  return r ? r->nunfiltered : 0;
}


/* Compile a pattern; JIT when available. */
static pcre2_code *compile(const struct toml_value *v, const char *file,
                           const char *what, struct sp_error **err)
{
  int code;
  PCRE2_SIZE off;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)v->u.str.ptr, v->u.str.len,
                                 PCRE2_DUPNAMES | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP,
                                 &code, &off, NULL);
  if (re == NULL) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    rules_error(err, file, v->line, what, "bad pattern at offset %zu: %s",
                (size_t)off, (const char *)msg);
    return NULL;
  }
  (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* interpreter otherwise */
  return re;
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(s, list[i]) == 0)
      return true;
  return false;
}

static int get_string(const struct toml_value *tab, const char *key, bool required,
                      const char *file, const char *what,
                      const struct toml_value **out, struct sp_error **err)
{
  const struct toml_value *v = toml_table_get(tab, key);
  *out = NULL;
  if (v == NULL) {
    if (required)
      return rules_error(err, file, tab->line, what, "missing key \"%s\"", key);
    return 0;
  }
  if (v->type != TOML_STRING)
    return rules_error(err, file, v->line, what, "\"%s\" must be a string, not %s",
                       key, toml_type_name(v->type));
  if (v->u.str.len == 0 || strlen(v->u.str.ptr) != v->u.str.len)
    return rules_error(err, file, v->line, what, "\"%s\" must be a non-empty string",
                       key);
  *out = v;
  return 0;
}

static int get_bool(const struct toml_value *tab, const char *key, const char *file,
                    const char *what, bool *out, struct sp_error **err)
{
  const struct toml_value *v = toml_table_get(tab, key);
  *out = false;
  if (v == NULL)
    return 0;
  if (v->type != TOML_BOOL)
    return rules_error(err, file, v->line, what, "\"%s\" must be a boolean, not %s",
                       key, toml_type_name(v->type));
  *out = v->u.b;
  return 0;
}

/* Record the group numbers of the named captures. */
static int named_groups(struct rule *ru, const char *what, const char *file, int line,
                        struct sp_error **err)
{
  uint32_t count = 0, size = 0;
  PCRE2_SPTR table = NULL;
  pcre2_pattern_info(ru->re, PCRE2_INFO_NAMECOUNT, &count);
  if (count == 0)
    return 0;
  pcre2_pattern_info(ru->re, PCRE2_INFO_NAMEENTRYSIZE, &size);
  pcre2_pattern_info(ru->re, PCRE2_INFO_NAMETABLE, &table);
  for (uint32_t i = 0; i < count; i++) {
    const unsigned char *e = table + (size_t)i * size;
    uint32_t num = ((uint32_t)e[0] << 8) | e[1];
    const char *name = (const char *)e + 2;
    uint32_t *slot;
    if (strcmp(name, "file") == 0)
      slot = ru->g_file;
    else if (strcmp(name, "line") == 0)
      slot = ru->g_line;
    else if (strcmp(name, "column") == 0)
      slot = ru->g_column;
    else if (strcmp(name, "message") == 0)
      slot = ru->g_message;
    else
      return rules_error(err, file, line, what,
                         "unknown capture name \"%s\" (file, line, column, message)",
                         name);
    for (int k = 0; k < 3; k++) {
      if (slot[k] == 0) {
        slot[k] = num;
        break;
      }
    }
  }
  return 0;
}

static int parse_rule(struct classify_rules *r, const struct toml_value *tab,
                      size_t index, const char *file, struct sp_error **err)
{
  static const char *const keys[] = {"name",      "tool",    "category", "severity",
                                     "pattern",   "restart", "generic",  "keep_tool",
                                     "wrapper",   "context"};
  char what[160];
  snprintf(what, sizeof what, "rule #%zu", index + 1);
  if (tab->type != TOML_TABLE)
    return rules_error(err, file, tab->line, what, "must be a table");
  const struct toml_value *name, *tool, *cat, *sev, *pat, *ctx;
  if (get_string(tab, "name", true, file, what, &name, err) < 0)
    return -1;
  const char *rname = name->u.str.ptr;
  snprintf(what, sizeof what, "rule \"%.120s\"", rname);
  for (size_t i = 0; i < tab->u.tab.len; i++) {
    const struct toml_kv *kv = &tab->u.tab.items[i];
    if (!in_list(kv->key, keys, SP_ARRAY_SIZE(keys)))
      return rules_error(err, file, kv->value->line, what, "unknown key \"%s\"",
                         kv->key);
  }
  for (size_t i = 0; i < r->nrules; i++)
    if (strcmp(r->rules[i].name, rname) == 0)
      return rules_error(err, file, name->line, what, "duplicate rule name");
  if (get_string(tab, "tool", true, file, what, &tool, err) < 0 ||
      get_string(tab, "category", true, file, what, &cat, err) < 0 ||
      get_string(tab, "severity", false, file, what, &sev, err) < 0 ||
      get_string(tab, "pattern", true, file, what, &pat, err) < 0 ||
      get_string(tab, "context", false, file, what, &ctx, err) < 0)
    return -1;
  for (const char *t = tool->u.str.ptr; *t; t++)
    if (!(is_alnum((unsigned char)*t) || *t == '-' || *t == '_' || *t == '.'))
      return rules_error(err, file, tool->line, what, "bad tool name \"%s\"",
                         tool->u.str.ptr);
  if (!in_list(cat->u.str.ptr, categories, SP_ARRAY_SIZE(categories)))
    return rules_error(err, file, cat->line, what, "unknown category \"%s\"",
                       cat->u.str.ptr);
  const char *severity = sev ? sev->u.str.ptr : "error";
  if (strcmp(severity, "error") != 0 && strcmp(severity, "warning") != 0)
    return rules_error(err, file, sev->line, what,
                       "severity must be \"error\" or \"warning\", not \"%s\"",
                       severity);
  enum rule_context context = CTX_ANY;
  if (ctx && strcmp(ctx->u.str.ptr, "python-traceback") == 0)
    context = CTX_PYTHON_TRACEBACK;
  else if (ctx && strcmp(ctx->u.str.ptr, "any") != 0)
    return rules_error(err, file, ctx->line, what,
                       "context must be \"any\" or \"python-traceback\", not \"%s\"",
                       ctx->u.str.ptr);
  struct rule ru = {0};
  if (get_bool(tab, "restart", file, what, &ru.restart, err) < 0 ||
      get_bool(tab, "generic", file, what, &ru.generic, err) < 0 ||
      get_bool(tab, "keep_tool", file, what, &ru.keep_tool, err) < 0 ||
      get_bool(tab, "wrapper", file, what, &ru.wrapper, err) < 0)
    return -1;
  ru.re = compile(pat, file, what, err);
  if (ru.re == NULL)
    return -1;
  ru.name = xstrdup(rname);
  ru.tool = xstrdup(tool->u.str.ptr);
  ru.category = xstrdup(cat->u.str.ptr);
  ru.severity = xstrdup(severity);
  ru.ctx = context;
  if (named_groups(&ru, what, file, pat->line, err) < 0) {
    rule_release(&ru);
    return -1;
  }
  uint32_t groups = 0;
  pcre2_pattern_info(ru.re, PCRE2_INFO_CAPTURECOUNT, &groups);
  if (groups + 1 > r->max_groups)
    r->max_groups = groups + 1;
  r->rules = xreallocarray(r->rules, r->nrules + 1, sizeof *r->rules);
  r->rules[r->nrules] = ru;
  /* Python-traceback rules run only on a traceback's last line, which is
   * found without the prefilter. */
  if (context == CTX_ANY)
    cl_add_literals(r, (uint32_t)r->nrules, false, pat->u.str.ptr, pat->u.str.len);
  r->nrules++;
  return 0;
}

static int parse_benign(struct classify_rules *r, const struct toml_value *tab,
                        size_t index, const char *file, struct sp_error **err)
{
  char label[160];
  snprintf(label, sizeof label, "benign #%zu", index + 1);
  if (tab->type != TOML_TABLE)
    return rules_error(err, file, tab->line, label, "must be a table");
  for (size_t i = 0; i < tab->u.tab.len; i++) {
    const struct toml_kv *kv = &tab->u.tab.items[i];
    if (strcmp(kv->key, "pattern") != 0 && strcmp(kv->key, "name") != 0)
      return rules_error(err, file, kv->value->line, label, "unknown key \"%s\"",
                         kv->key);
  }
  const struct toml_value *name, *pat;
  if (get_string(tab, "name", false, file, label, &name, err) < 0)
    return -1;
  if (name)
    snprintf(label, sizeof label, "benign \"%.120s\"", name->u.str.ptr);
  if (get_string(tab, "pattern", true, file, label, &pat, err) < 0)
    return -1;
  pcre2_code *re = compile(pat, file, label, err);
  if (re == NULL)
    return -1;
  r->benign = xreallocarray(r->benign, r->nbenign + 1, sizeof *r->benign);
  r->benign[r->nbenign] = (struct benign){.re = re};
  cl_add_literals(r, (uint32_t)r->nbenign, true, pat->u.str.ptr, pat->u.str.len);
  r->nbenign++;
  return 0;
}

struct classify_rules *classify_rules_parse(const char *text, size_t len,
                                            const char *name,
                                            struct sp_error **err)
{
  if (name == NULL)
    name = "<rules>";
  cleanup_toml struct toml_value *doc = toml_parse(text, len, name, err);
  if (doc == NULL)
    return NULL;
  cleanup_rules struct classify_rules *r = xcalloc(1, sizeof *r);
  r->max_groups = 1;
  for (size_t i = 0; i < doc->u.tab.len; i++) {
    const struct toml_kv *kv = &doc->u.tab.items[i];
    bool is_rule = strcmp(kv->key, "rule") == 0;
    if (!is_rule && strcmp(kv->key, "benign") != 0) {
      rules_error(err, name, kv->value->line, NULL,
                  "unknown key \"%s\" (expected [[rule]] or [[benign]])", kv->key);
      return NULL;
    }
    if (kv->value->type != TOML_ARRAY) {
      rules_error(err, name, kv->value->line, NULL,
                  "\"%s\" must be an array of tables ([[%s]])", kv->key, kv->key);
      return NULL;
    }
    for (size_t k = 0; k < kv->value->u.arr.len; k++) {
      const struct toml_value *t = kv->value->u.arr.items[k];
      int rc = is_rule ? parse_rule(r, t, k, name, err)
                       : parse_benign(r, t, k, name, err);
      if (rc < 0)
        return NULL;
    }
  }
  if (r->nrules == 0) {
    rules_error(err, name, 1, NULL, "no [[rule]] defined");
    return NULL;
  }
  cl_prefilter_build(r);
  return steal_pointer(&r);
}

struct classify_rules *classify_rules_load(const char *path, struct sp_error **err)
{
  size_t len;
  cleanup_free char *text = sp_read_file(path, 8 << 20, &len, err);
  if (text == NULL)
    return NULL;
  return classify_rules_parse(text, len, path, err);
}
