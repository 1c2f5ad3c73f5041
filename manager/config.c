#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "json.h"
#include "log.h"
#include "str.h"
#include "toml.h"
#include "util.h"

#define CONFIG_MAX_BYTES (1 << 20)
#define MAX_INSTANCES_LIMIT 4096

/* Cloudflare's instance types, so a wrangler.toml moves over unchanged. */
static const struct sp_instance_type builtin_types[] = {
    {"lite", 0.0625, 256, 2000},       {"dev", 0.0625, 256, 2000},
    {"basic", 0.25, 1024, 4000},       {"standard", 0.5, 4096, 8000},
    {"standard-1", 0.5, 4096, 8000},   {"standard-2", 1, 6144, 12000},
    {"standard-3", 2, 8192, 16000},    {"standard-4", 4, 12288, 20000},
};

struct ctx {
  const char *file;
  struct sp_error **err;
};

static int fail(struct ctx *cx, const struct toml_value *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct ctx *cx, const struct toml_value *at, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  cleanup_free char *msg = xvasprintf(fmt, ap);
  va_end(ap);
  if (at)
    return sp_error_code(cx->err, "INVALID_CONFIG", 400, "%s:%d: %s", cx->file,
                         at->line, msg);
  return sp_error_code(cx->err, "INVALID_CONFIG", 400, "%s: %s", cx->file, msg);
}

/* Refuse any key of `tab` that is not in the NULL-terminated `allowed`. */
static int check_keys(struct ctx *cx, const struct toml_value *tab,
                      const char *where, const char *const *allowed)
{
  for (size_t i = 0; i < tab->u.tab.len; i++) {
    const struct toml_kv *kv = &tab->u.tab.items[i];
    bool ok = strlen(kv->key) == kv->keylen;
    if (ok) {
      ok = false;
      for (const char *const *a = allowed; *a; a++)
        if (strcmp(*a, kv->key) == 0)
          ok = true;
    }
    if (!ok) {
      cleanup_free char *known = NULL;
      struct sbuf sb = SBUF_INIT;
      for (const char *const *a = allowed; *a; a++)
        sbuf_addf(&sb, "%s%s", a == allowed ? "" : ", ", *a);
      known = sbuf_detach(&sb, NULL);
      return fail(cx, kv->value, "unknown key '%s' in %s (known keys: %s)",
                  kv->key, where, known);
    }
  }
  return 0;
}

static int want_type(struct ctx *cx, const struct toml_value *v, const char *key,
                     enum toml_type t)
{
  if (v->type != t)
    return fail(cx, v, "key '%s' must be a %s, not a %s", key, toml_type_name(t),
                toml_type_name(v->type));
  return 0;
}

static int get_string(struct ctx *cx, const struct toml_value *tab, const char *key,
                      char **out)
{
  const struct toml_value *v = toml_table_get(tab, key);
  if (v == NULL)
    return 0;
  if (want_type(cx, v, key, TOML_STRING) < 0)
    return -1;
  if (strlen(v->u.str.ptr) != v->u.str.len)
    return fail(cx, v, "key '%s' must not contain NUL characters", key);
  free(*out);
  *out = xstrdup(v->u.str.ptr);
  return 0;
}

static int get_int(struct ctx *cx, const struct toml_value *tab, const char *key,
                   int64_t min, int64_t max, int64_t *out)
{
  const struct toml_value *v = toml_table_get(tab, key);
  if (v == NULL)
    return 0;
  if (want_type(cx, v, key, TOML_INTEGER) < 0)
    return -1;
  if (v->u.i < min || v->u.i > max)
    return fail(cx, v, "key '%s' is %lld; it must be between %lld and %lld", key,
                (long long)v->u.i, (long long)min, (long long)max);
  *out = v->u.i;
  return 0;
}

static int get_enum(struct ctx *cx, const struct toml_value *tab, const char *key,
                    const char *const *names, int *out)
{
  const struct toml_value *v = toml_table_get(tab, key);
  if (v == NULL)
    return 0;
  if (want_type(cx, v, key, TOML_STRING) < 0)
    return -1;
  for (int i = 0; names[i]; i++) {
    if (strcmp(names[i], v->u.str.ptr) == 0) {
      *out = i;
      return 0;
    }
  }
  struct sbuf sb = SBUF_INIT;
  for (int i = 0; names[i]; i++)
    sbuf_addf(&sb, "%s\"%s\"", i ? ", " : "", names[i]);
  cleanup_free char *list = sbuf_detach(&sb, NULL);
  return fail(cx, v, "key '%s' is \"%s\"; it must be one of %s", key,
              v->u.str.ptr, list);
}

bool config_parse_duration(const char *s, int64_t *seconds)
{
  if (s == NULL || *s < '0' || *s > '9')
    return false;
  char *end;
  errno = 0;
  long long n = strtoll(s, &end, 10);
  if (errno != 0 || n < 0)
    return false;
  long long mult;
  if (*end == '\0' || strcmp(end, "s") == 0)
    mult = 1;
  else if (strcmp(end, "m") == 0)
    mult = 60;
  else if (strcmp(end, "h") == 0)
    mult = 3600;
  else if (strcmp(end, "d") == 0)
    mult = 86400;
  else
    return false;
  if (n > INT64_MAX / mult / 1000)
    return false;
  *seconds = n * mult;
  return true;
}

static int get_duration(struct ctx *cx, const struct toml_value *tab, const char *key,
                        int64_t *out)
{
  const struct toml_value *v = toml_table_get(tab, key);
  if (v == NULL)
    return 0;
  if (v->type == TOML_INTEGER) {
    if (v->u.i < 0 || v->u.i > 365LL * 86400)
      return fail(cx, v, "key '%s' must be between 0 and 31536000 seconds", key);
    *out = v->u.i;
    return 0;
  }
  if (v->type == TOML_STRING && config_parse_duration(v->u.str.ptr, out) &&
      *out <= 365LL * 86400)
    return 0;
  return fail(cx, v,
              "key '%s' must be a duration such as \"30s\", \"10m\", \"2h\" or "
              "a number of seconds",
              key);
}

static int parse_instance_type_table(struct ctx *cx, const struct toml_value *t,
                                     const char *where, struct sp_instance_type *it)
{
  static const char *const keys[] = {"vcpu", "memory_mib", "disk_mb", NULL};
  if (check_keys(cx, t, where, keys) < 0)
    return -1;
  const struct toml_value *v = toml_table_get(t, "vcpu");
  if (v == NULL || toml_table_get(t, "memory_mib") == NULL)
    return fail(cx, t, "%s needs 'vcpu' and 'memory_mib'", where);
  double vcpu;
  if (v->type == TOML_INTEGER)
    vcpu = (double)v->u.i;
  else if (v->type == TOML_FLOAT)
    vcpu = v->u.f;
  else
    return fail(cx, v, "key 'vcpu' must be a number, not a %s", toml_type_name(v->type));
  if (!(vcpu >= 0.01 && vcpu <= 256))
    return fail(cx, v, "key 'vcpu' must be between 0.01 and 256");
  it->vcpu = vcpu;
  it->disk_mb = 2000;
  if (get_int(cx, t, "memory_mib", 16, 1 << 24, &it->memory_mib) < 0 ||
      get_int(cx, t, "disk_mb", 16, 1 << 30, &it->disk_mb) < 0)
    return -1;
  return 0;
}

const struct sp_instance_type *config_instance_type(const struct sp_config *c,
                                                    const char *name)
{
  for (int i = 0; c && i < c->ntypes; i++)
    if (strcmp(c->types[i].name, name) == 0)
      return &c->types[i];
  for (size_t i = 0; i < SP_ARRAY_SIZE(builtin_types); i++)
    if (strcmp(builtin_types[i].name, name) == 0)
      return &builtin_types[i];
  return NULL;
}

static char *dir_of(const char *path)
{
  const char *slash = strrchr(path, '/');
  if (slash == NULL)
    return xstrdup(".");
  if (slash == path)
    return xstrdup("/");
  return xstrndup(path, (size_t)(slash - path));
}

/* Absolute form of `p`, relative to `base` when not absolute. */
static char *resolve_path(const char *base, const char *p)
{
  cleanup_free char *joined = p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", base, p);
  if (joined[0] != '/') {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) != NULL) {
      char *abs = xasprintf("%s/%s", cwd, joined);
      free(joined);
      joined = abs;
    }
  }
  /* Lexically drop "." components and "./" noise for readability. */
  struct sbuf out = SBUF_INIT;
  char *save = NULL;
  for (char *tok = strtok_r(joined, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
    if (strcmp(tok, ".") == 0)
      continue;
    if (strcmp(tok, "..") == 0) {
      char *last = out.len ? strrchr(out.buf, '/') : NULL;
      if (last) {
        out.len = (size_t)(last - out.buf);
        out.buf[out.len] = '\0';
      }
      continue;
    }
    sbuf_addch(&out, '/');
    sbuf_addstr(&out, tok);
  }
  if (out.len == 0)
    sbuf_addch(&out, '/');
  return sbuf_detach(&out, NULL);
}

static int parse_listen(struct ctx *cx, const struct toml_value *at, const char *s,
                        struct sp_config *c)
{
  const char *colon;
  cleanup_free char *host = NULL;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL || close[1] != ':')
      return fail(cx, at, "key 'listen' must look like \"127.0.0.1:8787\" or \"[::1]:8787\"");
    host = xstrndup(s + 1, (size_t)(close - s - 1));
    colon = close + 1;
  } else {
    colon = strrchr(s, ':');
    if (colon == NULL)
      return fail(cx, at, "key 'listen' must look like \"127.0.0.1:8787\"");
    host = xstrndup(s, (size_t)(colon - s));
  }
  long long port;
  if (!str_to_ll(colon + 1, 1, 65535, &port) || colon[1] == '+' || colon[1] == '-')
    return fail(cx, at, "key 'listen' has port '%s'; it must be 1-65535", colon + 1);
  if (host[0] == '\0')
    return fail(cx, at, "key 'listen' needs a host, e.g. \"127.0.0.1:%lld\"", port);
  free(c->listen_host);
  c->listen_host = steal_pointer(&host);
  c->listen_port = (int)port;
  return 0;
}

static bool valid_domain(const char *d)
{
  if (*d == '\0' || strlen(d) > 253)
    return false;
  for (const char *p = d; *p; p++) {
    char ch = *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
      return false;
  }
  return d[0] != '.' && d[0] != '-' && !str_ends_with(d, ".") && !strstr(d, "..");
}

static bool valid_class_name(const char *s)
{
  if (*s == '\0' || strlen(s) > 64)
    return false;
  for (const char *p = s; *p; p++) {
    char ch = *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
      return false;
  }
  return true;
}

static int env_override(struct ctx *cx, struct sp_config *c)
{
  const char *v = getenv("MAX_SANDBOX_INSTANCES");
  if (v && *v) {
    long long n;
    if (!str_to_ll(v, 1, MAX_INSTANCES_LIMIT, &n))
      return sp_error_code(cx->err, "INVALID_CONFIG", 400,
                           "environment: MAX_SANDBOX_INSTANCES is '%s'; it must be "
                           "an integer between 1 and %d",
                           v, MAX_INSTANCES_LIMIT);
    c->max_sandbox_instances = n;
  }
  v = getenv("SANDBOX_INSTANCE_TYPE");
  if (v && *v) {
    free(c->sandbox_instance_type);
    c->sandbox_instance_type = xstrdup(v);
  }
  v = getenv("SANDPIT_API_TOKEN");
  if (v && *v) {
    free(c->api_token);
    c->api_token = xstrdup(v);
    c->api_token_source = "env";
  }
  v = getenv("SANDPIT_LOG_LEVEL");
  if (v && *v) {
    free(c->log_level);
    c->log_level = xstrdup(v);
  }
  return 0;
}

static const char *const backend_names[] = {"auto", "docker", "local", NULL};
static const char *const network_names[] = {"none", "egress", NULL};
static const char *const alloc_names[] = {"many_to_one", "one_to_one", NULL};

const char *config_backend_name(enum sp_backend b) { return backend_names[b]; }
const char *config_network_name(enum sp_network n) { return network_names[n]; }
const char *config_allocation_name(enum sp_allocation a) { return alloc_names[a]; }

static int parse_pool(struct ctx *cx, const struct sp_config *c,
                      const struct toml_value *t, int index, const char *confdir,
                      struct sp_pool *p)
{
  static const char *const keys[] = {"class_name", "image", "max_instances",
                                     "min_warm", "backend", "network",
                                     "sleep_after", "instance_type", "allocation",
                                     NULL};
  if (t->type != TOML_TABLE)
    return fail(cx, t, "[[containers]] entries must be tables");
  if (check_keys(cx, t, "[[containers]]", keys) < 0)
    return -1;
  if (get_string(cx, t, "class_name", &p->class_name) < 0)
    return -1;
  if (p->class_name == NULL)
    p->class_name = index == 0 ? xstrdup("Sandbox") : xasprintf("Sandbox%d", index + 1);
  if (!valid_class_name(p->class_name))
    return fail(cx, toml_table_get(t, "class_name"),
                "key 'class_name' must be 1-64 characters of [A-Za-z0-9_-]");

  cleanup_free char *image = NULL;
  if (get_string(cx, t, "image", &image) < 0)
    return -1;
  if (image == NULL)
    image = xstrdup("./dockerfiles/SandboxDockerfile");
  if (image[0] == '\0')
    return fail(cx, toml_table_get(t, "image"), "key 'image' must not be empty");
  /* A path that names an existing file is a Dockerfile; anything else is an
   * image reference. */
  cleanup_free char *as_path = resolve_path(confdir, image);
  struct stat st;
  bool looks_like_path = image[0] == '.' || image[0] == '/' || str_ends_with(image, "Dockerfile");
  if (stat(as_path, &st) == 0 && S_ISREG(st.st_mode)) {
    p->image = steal_pointer(&as_path);
    p->image_is_dockerfile = true;
  } else if (looks_like_path) {
    p->image = steal_pointer(&as_path);
    p->image_is_dockerfile = true;
  } else {
    p->image = steal_pointer(&image);
  }

  p->max_instances = c->max_sandbox_instances;
  if (get_int(cx, t, "max_instances", 1, MAX_INSTANCES_LIMIT, &p->max_instances) < 0 ||
      get_int(cx, t, "min_warm", 0, MAX_INSTANCES_LIMIT, &p->min_warm) < 0)
    return -1;
  if (p->min_warm > p->max_instances)
    return fail(cx, toml_table_get(t, "min_warm"),
                "key 'min_warm' (%lld) cannot exceed max_instances (%lld)",
                (long long)p->min_warm, (long long)p->max_instances);
  int e = SP_BACKEND_AUTO;
  if (get_enum(cx, t, "backend", backend_names, &e) < 0)
    return -1;
  p->backend = (enum sp_backend)e;
  e = SP_NETWORK_NONE;
  if (get_enum(cx, t, "network", network_names, &e) < 0)
    return -1;
  p->network = (enum sp_network)e;
  e = SP_ALLOC_MANY_TO_ONE;
  if (get_enum(cx, t, "allocation", alloc_names, &e) < 0)
    return -1;
  p->allocation = (enum sp_allocation)e;
  p->sleep_after_s = 0;
  if (get_duration(cx, t, "sleep_after", &p->sleep_after_s) < 0)
    return -1;

  const struct toml_value *it = toml_table_get(t, "instance_type");
  if (it != NULL && it->type == TOML_TABLE) {
    p->itype.name = xstrdup("custom");
    return parse_instance_type_table(cx, it, "inline instance_type", &p->itype);
  }
  if (it != NULL && it->type != TOML_STRING)
    return fail(cx, it, "key 'instance_type' must be a name or an inline table "
                        "{vcpu, memory_mib, disk_mb}");
  const char *name = it ? it->u.str.ptr : c->sandbox_instance_type;
  const struct sp_instance_type *known = config_instance_type(c, name);
  if (known == NULL)
    return fail(cx, it ? it : t,
                "instance_type '%s' is not known (built-in: lite, basic, "
                "standard-1..4; or define [instance_types.%s])",
                name, name);
  p->itype = *known;
  p->itype.name = xstrdup(name);
  return 0;
}

struct sp_config *config_parse(const char *text, size_t len, const char *path,
                               struct sp_error **err)
{
  struct ctx cx = {path, err};
  cleanup_toml struct toml_value *doc = toml_parse(text, len, path, err);
  if (doc == NULL) {
    sp_error_recode(err, "INVALID_CONFIG");
    return NULL;
  }
  cleanup_config struct sp_config *c = xcalloc(1, sizeof *c);
  c->path = xstrdup(path);
  c->name = xstrdup("sandpit");
  c->listen_host = xstrdup("127.0.0.1");
  c->listen_port = 8787;
  c->preview_domain = xstrdup("localhost");
  c->log_level = xstrdup("info");
  c->shutdown_grace_s = 5;
  c->health_timeout_s = 30;
  c->max_sandbox_instances = 4;
  c->sandbox_instance_type = xstrdup("standard");
  cleanup_free char *confdir = dir_of(path);

  static const char *const top_keys[] = {"name",   "listen",   "preview_domain",
                                         "api_token", "data_dir", "log_level",
                                         "shutdown_grace", "health_timeout", "vars", "containers",
                                         "instance_types", NULL};
  if (check_keys(&cx, doc, "the top level", top_keys) < 0)
    return NULL;
  cleanup_free char *listen = NULL, *data_dir = NULL;
  if (get_string(&cx, doc, "name", &c->name) < 0 ||
      get_string(&cx, doc, "listen", &listen) < 0 ||
      get_string(&cx, doc, "preview_domain", &c->preview_domain) < 0 ||
      get_string(&cx, doc, "api_token", &c->api_token) < 0 ||
      get_string(&cx, doc, "data_dir", &data_dir) < 0 ||
      get_string(&cx, doc, "log_level", &c->log_level) < 0 ||
      get_duration(&cx, doc, "shutdown_grace", &c->shutdown_grace_s) < 0 ||
      get_duration(&cx, doc, "health_timeout", &c->health_timeout_s) < 0)
    return NULL;
  if (listen && parse_listen(&cx, toml_table_get(doc, "listen"), listen, c) < 0)
    return NULL;
  if (!valid_domain(c->preview_domain)) {
    fail(&cx, toml_table_get(doc, "preview_domain"),
         "key 'preview_domain' must be a lowercase domain name such as "
         "\"localhost\" or \"preview.example.com\"");
    return NULL;
  }
  if (c->api_token) {
    c->api_token_source = "config";
    if (strlen(c->api_token) < 8) {
      fail(&cx, toml_table_get(doc, "api_token"),
           "key 'api_token' is too short; use at least 8 characters");
      return NULL;
    }
  }
  c->data_dir = resolve_path(confdir, data_dir ? data_dir : ".sandpit");

  const struct toml_value *vars = toml_table_get(doc, "vars");
  if (vars) {
    static const char *const var_keys[] = {"MAX_SANDBOX_INSTANCES",
                                           "SANDBOX_INSTANCE_TYPE", NULL};
    if (want_type(&cx, vars, "vars", TOML_TABLE) < 0 ||
        check_keys(&cx, vars, "[vars]", var_keys) < 0)
      return NULL;
    /* wrangler vars are strings; accept integers too. */
    const struct toml_value *m = toml_table_get(vars, "MAX_SANDBOX_INSTANCES");
    if (m) {
      long long n;
      if (m->type == TOML_INTEGER)
        n = m->u.i;
      else if (m->type != TOML_STRING || !str_to_ll(m->u.str.ptr, 1, MAX_INSTANCES_LIMIT, &n))
        n = -1;
      if (n < 1 || n > MAX_INSTANCES_LIMIT) {
        fail(&cx, m, "key 'MAX_SANDBOX_INSTANCES' must be an integer between 1 and %d",
             MAX_INSTANCES_LIMIT);
        return NULL;
      }
      c->max_sandbox_instances = n;
    }
    if (get_string(&cx, vars, "SANDBOX_INSTANCE_TYPE", &c->sandbox_instance_type) < 0)
      return NULL;
  }

  const struct toml_value *types = toml_table_get(doc, "instance_types");
  if (types) {
    if (want_type(&cx, types, "instance_types", TOML_TABLE) < 0)
      return NULL;
    c->types = xcalloc(types->u.tab.len ? types->u.tab.len : 1, sizeof *c->types);
    for (size_t i = 0; i < types->u.tab.len; i++) {
      const struct toml_kv *kv = &types->u.tab.items[i];
      cleanup_free char *where = xasprintf("[instance_types.%s]", kv->key);
      if (kv->value->type != TOML_TABLE) {
        fail(&cx, kv->value, "%s must be a table", where);
        return NULL;
      }
      if (!valid_class_name(kv->key)) {
        fail(&cx, kv->value, "instance type name '%s' must be 1-64 characters of [A-Za-z0-9_-]",
             kv->key);
        return NULL;
      }
      struct sp_instance_type *it = &c->types[c->ntypes++];
      it->name = xstrdup(kv->key);
      if (parse_instance_type_table(&cx, kv->value, where, it) < 0)
        return NULL;
    }
  }

  if (env_override(&cx, c) < 0)
    return NULL;
  enum sp_log_level lvl;
  if (!sp_log_parse_level(c->log_level, &lvl)) {
    fail(&cx, toml_table_get(doc, "log_level"),
         "log level '%s' must be one of debug, info, warn, error", c->log_level);
    return NULL;
  }
  if (config_instance_type(c, c->sandbox_instance_type) == NULL) {
    fail(&cx, NULL, "SANDBOX_INSTANCE_TYPE '%s' is not a known instance type",
         c->sandbox_instance_type);
    return NULL;
  }

  const struct toml_value *pools = toml_table_get(doc, "containers");
  size_t npools = 0;
  if (pools) {
    if (pools->type != TOML_ARRAY) {
      fail(&cx, pools, "'containers' must be an array of tables: write [[containers]]");
      return NULL;
    }
    npools = pools->u.arr.len;
  }
  c->pools = xcalloc(npools ? npools : 1, sizeof *c->pools);
  if (npools == 0) {
    /* No pool configured: one default pool. */
    struct sp_pool *p = &c->pools[c->npools++];
    p->class_name = xstrdup("Sandbox");
    p->image = resolve_path(confdir, "./dockerfiles/SandboxDockerfile");
    p->image_is_dockerfile = true;
    p->max_instances = c->max_sandbox_instances;
    p->itype = *config_instance_type(c, c->sandbox_instance_type);
    p->itype.name = xstrdup(c->sandbox_instance_type);
  }
  for (size_t i = 0; i < npools; i++) {
    struct sp_pool *p = &c->pools[c->npools++];
    if (parse_pool(&cx, c, pools->u.arr.items[i], (int)i, confdir, p) < 0)
      return NULL;
    for (int k = 0; k < c->npools - 1; k++) {
      if (strcmp(c->pools[k].class_name, p->class_name) == 0) {
        fail(&cx, pools->u.arr.items[i], "class_name '%s' is used by two [[containers]]",
             p->class_name);
        return NULL;
      }
    }
  }
  return steal_pointer(&c);
}

struct sp_config *config_load(const char *path, struct sp_error **err)
{
  size_t len;
  cleanup_free char *text = sp_read_file(path, CONFIG_MAX_BYTES, &len, err);
  if (text == NULL) {
    sp_error_recode(err, "INVALID_CONFIG");
    return NULL;
  }
  return config_parse(text, len, path, err);
}

void config_free(struct sp_config *c)
{
  if (c == NULL)
    return;
  free(c->path);
  free(c->name);
  free(c->listen_host);
  free(c->preview_domain);
  free(c->api_token);
  free(c->data_dir);
  free(c->log_level);
  free(c->sandbox_instance_type);
  for (int i = 0; i < c->ntypes; i++)
    free(c->types[i].name);
  free(c->types);
  for (int i = 0; i < c->npools; i++) {
    free(c->pools[i].class_name);
    free(c->pools[i].image);
    free(c->pools[i].itype.name);
  }
  free(c->pools);
  free(c);
}

static cJSON *itype_json(const struct sp_instance_type *it)
{
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "name", it->name);
  cJSON_AddNumberToObject(j, "vcpu", it->vcpu);
  json_add_int(j, "memory_mib", it->memory_mib);
  json_add_int(j, "disk_mb", it->disk_mb);
  return j;
}

cJSON *config_to_json(const struct sp_config *c)
{
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "config", c->path);
  cJSON_AddStringToObject(j, "name", c->name);
  cleanup_free char *listen = strchr(c->listen_host, ':')
                                  ? xasprintf("[%s]:%d", c->listen_host, c->listen_port)
                                  : xasprintf("%s:%d", c->listen_host, c->listen_port);
  cJSON_AddStringToObject(j, "listen", listen);
  cJSON_AddStringToObject(j, "preview_domain", c->preview_domain);
  if (c->api_token) {
    cJSON *t = cJSON_AddObjectToObject(j, "api_token");
    cJSON_AddStringToObject(t, "value", "<redacted>");
    cJSON_AddStringToObject(t, "source", c->api_token_source);
  } else {
    cJSON_AddNullToObject(j, "api_token");
  }
  cJSON_AddStringToObject(j, "data_dir", c->data_dir);
  cJSON_AddStringToObject(j, "log_level", c->log_level);
  json_add_int(j, "shutdown_grace_s", c->shutdown_grace_s);
  json_add_int(j, "health_timeout_s", c->health_timeout_s);
  cJSON *vars = cJSON_AddObjectToObject(j, "vars");
  json_add_int(vars, "MAX_SANDBOX_INSTANCES", c->max_sandbox_instances);
  cJSON_AddStringToObject(vars, "SANDBOX_INSTANCE_TYPE", c->sandbox_instance_type);
  cJSON *types = cJSON_AddObjectToObject(j, "instance_types");
  for (int i = 0; i < c->ntypes; i++)
    cJSON_AddItemToObject(types, c->types[i].name, itype_json(&c->types[i]));
  cJSON *pools = cJSON_AddArrayToObject(j, "containers");
  for (int i = 0; i < c->npools; i++) {
    const struct sp_pool *p = &c->pools[i];
    cJSON *pj = cJSON_CreateObject();
    cJSON_AddStringToObject(pj, "class_name", p->class_name);
    cJSON_AddStringToObject(pj, "image", p->image);
    cJSON_AddStringToObject(pj, "image_kind", p->image_is_dockerfile ? "dockerfile" : "image");
    json_add_int(pj, "max_instances", p->max_instances);
    json_add_int(pj, "min_warm", p->min_warm);
    cJSON_AddStringToObject(pj, "backend", config_backend_name(p->backend));
    cJSON_AddStringToObject(pj, "network", config_network_name(p->network));
    json_add_int(pj, "sleep_after_s", p->sleep_after_s);
    cJSON_AddItemToObject(pj, "instance_type", itype_json(&p->itype));
    cJSON_AddStringToObject(pj, "allocation", config_allocation_name(p->allocation));
    cJSON_AddItemToArray(pools, pj);
  }
  return j;
}
