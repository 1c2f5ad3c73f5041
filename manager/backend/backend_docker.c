/* The docker backend: instances are containers on a Docker Engine, driven
 * through its HTTP API over the engine's unix socket with libcurl.
 *
 * Only endpoints that Podman's Docker-compatible service implements are
 * used (_ping, version, images/{name}/json, images/{name}/tag, build,
 * containers/create|start|stop|json, DELETE containers/{id}), under the
 * version prefix /v1.41 (Docker 20.10; Podman accepts any prefix), so a
 * Podman socket in DOCKER_HOST works the same way.
 *
 * Every call has a connect timeout and a total timeout (a long one for
 * image builds): an engine that hangs is an error, not a hung sandpitd.
 *
 * This file holds the calls and the backend ops; the image build is
 * docker_build.c, what the two share docker_int.h. */
#include "docker_int.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "hash.h"
#include "json.h"
#include "log.h"
#include "str.h"
#include "util.h"

#define API "/v1.41"
#define DEFAULT_SOCKET "/var/run/docker.sock"
#define CONNECT_TIMEOUT_MS 3000L
#define PING_TIMEOUT_MS 5000L
#define MAX_REPLY (32u << 20) /* a reply body held in memory */

static void curl_cleanup(CURL **c)
{
  if (*c)
    curl_easy_cleanup(*c);
}
static void slist_cleanup(struct curl_slist **l) { curl_slist_free_all(*l); }
#define cleanup_curl __attribute__((cleanup(curl_cleanup)))
#define cleanup_slist __attribute__((cleanup(slist_cleanup)))

const char *backend_docker_socket(void)
{
  const char *h = getenv("DOCKER_HOST");
  if (h && str_starts_with(h, "unix://") && h[7] != '\0')
    return h + 7;
  return DEFAULT_SOCKET;
}

/* ---- calls ---- */

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
  struct docker_reply *r = ud;
  size_t len = size * nmemb;
  if (r->on_data)
    return r->on_data(r->ud, data, len);
  if (r->body.len + len > MAX_REPLY) {
    r->too_big = true;
    return 0;
  }
  sbuf_add(&r->body, data, len);
  return len;
}

/* The engine's message from an error reply ({"message": "..."}), or the
 * body itself. */
static char *engine_message(const struct docker_reply *r)
{
  cleanup_json cJSON *j = cJSON_ParseWithLength(r->body.buf ? r->body.buf : "", r->body.len);
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
  if (cJSON_IsString(m) && m->valuestring[0])
    return xstrdup(m->valuestring);
  const char *s = sbuf_str(&r->body);
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1]))
    n--;
  if (n == 0)
    return xasprintf("HTTP status %ld", r->status);
  return xstrndup(s, SP_MIN(n, (size_t)500));
}

int docker_call(struct docker *d, const char *method, const char *path, const char *json,
                const struct docker_upload *up, long timeout_ms, struct docker_reply *r,
                struct sp_error **err)
{
  cleanup_curl CURL *c = curl_easy_init();
  if (c == NULL)
    return sp_error_code(err, "BACKEND_ERROR", 502, "cannot initialise libcurl");
  cleanup_free char *url = xasprintf("http://docker%s%s", API, path);
  cleanup_slist struct curl_slist *h = NULL;
  h = curl_slist_append(h, "Expect:");
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->socket);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  if (json) {
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json));
  } else if (up) {
    h = curl_slist_append(h, "Content-Type: application/x-tar");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READDATA, up->fp);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, up->size);
  } else if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  if (rc == CURLE_OK)
    return 0;
  if (rc == CURLE_WRITE_ERROR && r->too_big)
    return sp_error_code(err, "BACKEND_ERROR", 502,
                         "the Docker engine's reply to %s %s is over %u MiB", method, path,
                         MAX_REPLY >> 20);
  if (rc == CURLE_WRITE_ERROR && r->on_data)
    return -1; /* the consumer set *err */
  if (rc == CURLE_OPERATION_TIMEDOUT)
    return sp_error_code(err, "BACKEND_UNAVAILABLE", 503,
                         "the Docker engine on %s did not answer %s %s within %ld s", d->socket,
                         method, path, timeout_ms / 1000);
  if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
      rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR)
    return sp_error_code(err, "BACKEND_UNAVAILABLE", 503,
                         "no Docker engine answers on %s (%s): start one with scripts/docker-up",
                         d->socket, curl_easy_strerror(rc));
  return sp_error_code(err, "BACKEND_ERROR", 502, "Docker engine call %s %s failed: %s", method,
                       path, curl_easy_strerror(rc));
}

int docker_reply_error(const struct docker_reply *r, bool image_404, struct sp_error **err,
                       const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  cleanup_free char *what = xvasprintf(fmt, ap);
  va_end(ap);
  cleanup_free char *msg = engine_message(r);
  if (r->status == 404 && image_404)
    return sp_error_code(err, "IMAGE_NOT_FOUND", 404,
                         "%s: %s (no registry is used: build or load the image on this engine)",
                         what, msg);
  return sp_error_code(err, "BACKEND_ERROR", 502, "%s: the Docker engine answered %ld: %s", what,
                       r->status, msg);
}

char *docker_esc(const char *s)
{
  char *e = curl_easy_escape(NULL, s, 0);
  if (e == NULL)
    abort();
  char *r = xstrdup(e);
  curl_free(e);
  return r;
}

int docker_get_json(struct docker *d, const char *path, cJSON **out, struct sp_error **err)
{
  struct docker_reply r = {0};
  if (docker_call(d, "GET", path, NULL, NULL, DOCKER_CALL_TIMEOUT_MS, &r, err) < 0) {
    sbuf_release(&r.body);
    return -1;
  }
  int rc;
  if (r.status == 404) {
    rc = 0;
  } else if (r.status != 200) {
    rc = docker_reply_error(&r, false, err, "GET %s", path);
  } else {
    *out = cJSON_ParseWithLength(sbuf_str(&r.body), r.body.len);
    rc = *out ? 1 : sp_error_code(err, "BACKEND_ERROR", 502, "GET %s: not JSON", path);
  }
  sbuf_release(&r.body);
  return rc;
}

int docker_image_exists(struct docker *d, const char *name, char **id, struct sp_error **err)
{
  cleanup_free char *e = docker_esc(name);
  cleanup_free char *path = xasprintf("/images/%s/json", e);
  cleanup_json cJSON *j = NULL;
  int rc = docker_get_json(d, path, &j, err);
  if (rc == 1 && id) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "Id");
    *id = xstrdup(cJSON_IsString(v) ? v->valuestring : "");
  }
  return rc;
}

/* ---- names ---- */

/* A pool name as a Docker repository or container name component:
 * lowercase [a-z0-9], runs of anything else as one '-'. */
static char *name_part(const char *s)
{
  struct sbuf sb = SBUF_INIT;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (isalnum(c))
      sbuf_addch(&sb, (char)tolower(c));
    else if (sb.len && sb.buf[sb.len - 1] != '-')
      sbuf_addch(&sb, '-');
  }
  while (sb.len && sb.buf[sb.len - 1] == '-')
    sb.buf[--sb.len] = '\0';
  if (sb.len == 0)
    sbuf_addstr(&sb, "pool");
  if (sb.len > 40)
    sb.buf[sb.len = 40] = '\0';
  return sbuf_detach(&sb, NULL);
}

static char *container_name(const struct backend_spec *s)
{
  cleanup_free char *p = name_part(s->pool);
  unsigned long long h = (unsigned long long)sp_hash64(s->data_root, strlen(s->data_root));
  return xasprintf("sandpit-%s-%d-%08llx", p, s->slot, h & 0xffffffffull);
}

/* ---- backend ops ---- */

static int docker_prepare(struct backend *b, const struct sp_pool *pool, const char *config_dir,
                          char **image, struct sp_error **err)
{
  struct docker *d = (struct docker *)b;
  if (!pool->image_is_dockerfile) {
    int ex = docker_image_exists(d, pool->image, NULL, err);
    if (ex < 0)
      return sp_error_prefix(err, "pool %s", pool->class_name);
    if (ex == 0)
      return sp_error_code(err, "IMAGE_NOT_FOUND", 404,
                           "image '%s' of pool %s is not on this engine and no registry is used: "
                           "build it or docker load it first",
                           pool->image, pool->class_name);
    *image = xstrdup(pool->image);
    return 0;
  }
  /* The context is the configuration file's directory (the repository
   * root for wrangler-like.toml, so dockerfiles/SandboxDockerfile can COPY
   * bin/); with no configuration file, the Dockerfile's directory. */
  cleanup_free char *dfdir = NULL;
  if (config_dir == NULL || config_dir[0] == '\0') {
    const char *slash = strrchr(pool->image, '/');
    dfdir = slash == NULL ? xstrdup(".")
            : slash == pool->image ? xstrdup("/")
                                   : xstrndup(pool->image, (size_t)(slash - pool->image));
  }
  cleanup_free char *part = name_part(pool->class_name);
  cleanup_free char *repo = xasprintf("sandpit/%s", part);
  if (backend_docker_build(b, pool->image, dfdir ? dfdir : config_dir, repo, 0, image, err) < 0)
    return sp_error_prefix(err, "pool %s", pool->class_name);
  return 0;
}

/* pids: threads count too (node runs about a dozen each); room for a
 * dev server, npm and a build, and not for a fork bomb to matter. */
static long long pids_limit(const struct sp_instance_type *t)
{
  long long n = t->memory_mib / 2;
  return n < 512 ? 512 : n > 8192 ? 8192 : n;
}

static cJSON *create_body(struct docker *d, const struct backend_spec *s, const char *image,
                          const char *name)
{
  /* No Entrypoint or Cmd: the image's run, the monitor in ours
   * (dockerfiles/SandboxDockerfile) and in any image built FROM it. */
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "Image", image);
  char host[64];
  snprintf(host, sizeof host, "%.63s", name);
  cJSON_AddStringToObject(j, "Hostname", host);
  cJSON *env = cJSON_AddArrayToObject(j, "Env");
  cleanup_free char *inst = xasprintf("SANDPIT_INSTANCE=%s", name);
  cJSON_AddItemToArray(env, cJSON_CreateString(inst));
  cleanup_free char *ub = xasprintf("SANDPIT_UID_BASE=%u", s->uid_base ? s->uid_base : 200000u);
  cJSON_AddItemToArray(env, cJSON_CreateString(ub));
  const char *lvl = getenv("SANDPIT_LOG_LEVEL");
  if (lvl) {
    cleanup_free char *l = xasprintf("SANDPIT_LOG_LEVEL=%s", lvl);
    cJSON_AddItemToArray(env, cJSON_CreateString(l));
  }
  cJSON *labels = cJSON_AddObjectToObject(j, "Labels");
  char slot[16];
  snprintf(slot, sizeof slot, "%d", s->slot);
  cJSON_AddStringToObject(labels, "sandpit.pool", s->pool);
  cJSON_AddStringToObject(labels, "sandpit.slot", slot);
  cJSON_AddStringToObject(labels, "sandpit.data_root", s->data_root);
  cJSON_AddStringToObject(labels, "sandpit.instance_dir", s->dir);
  cJSON_AddNumberToObject(j, "StopTimeout", 10);

  cJSON *hc = cJSON_AddObjectToObject(j, "HostConfig");
  cJSON *binds = cJSON_AddArrayToObject(hc, "Binds");
  const char *mounts[][2] = {{"run", "/run/sandpit"},
                             {"data", "/var/lib/sandpit"},
                             {"workspace", "/workspace"}};
  for (size_t i = 0; i < SP_ARRAY_SIZE(mounts); i++) {
    cleanup_free char *bnd = xasprintf("%s/%s:%s:rw", s->dir, mounts[i][0], mounts[i][1]);
    cJSON_AddItemToArray(binds, cJSON_CreateString(bnd));
  }
  const struct sp_instance_type *t = &s->cfg->itype;
  long long mem = (long long)t->memory_mib << 20;
  json_add_int(hc, "Memory", mem);
  json_add_int(hc, "MemorySwap", mem); /* no swap beyond the limit */
  /* the engine refuses more CPUs than it has: an instance type larger than
   * this machine gets all of them */
  double vcpu = t->vcpu;
  if (d->ncpu > 0 && vcpu > d->ncpu) {
    sp_warn("instance type has more vCPUs than the engine: capped", LS("pool", s->pool),
            LS("instance_type", t->name ? t->name : ""), LI("engine_cpus", d->ncpu));
    vcpu = d->ncpu;
  }
  json_add_int(hc, "NanoCpus", (int64_t)(vcpu * 1e9 + 0.5));
  json_add_int(hc, "PidsLimit", pids_limit(t));
  /* the OOM killer takes a sandbox's process (they raise their own score
   * to 500) before the monitor */
  if (backend_oom_shield())
    json_add_int(hc, "OomScoreAdj", MONITOR_OOM_SCORE_ADJ);
  /* The monitor runs as root only to serve its sandboxes as their own
   * users; it needs:
   *   SETUID, SETGID  setuid/setgid/setgroups for each sandbox's processes,
   *                   setfsuid/setfsgid for file operations as the sandbox
   *   CHOWN           give a new sandbox its workspace
   *   FOWNER          chmod that workspace once it belongs to the sandbox
   *   KILL            signal (stop, time out) the sandboxes' processes
   * Not DAC_OVERRIDE: files of a sandbox are touched as that sandbox. */
  cJSON *drop = cJSON_AddArrayToObject(hc, "CapDrop");
  cJSON_AddItemToArray(drop, cJSON_CreateString("ALL"));
  cJSON *add = cJSON_AddArrayToObject(hc, "CapAdd");
  static const char *const caps[] = {"CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_FOWNER",
                                     "CAP_KILL"};
  for (size_t i = 0; i < SP_ARRAY_SIZE(caps); i++)
    cJSON_AddItemToArray(add, cJSON_CreateString(caps[i]));
  cJSON *sec = cJSON_AddArrayToObject(hc, "SecurityOpt");
  cJSON_AddItemToArray(sec, cJSON_CreateString("no-new-privileges"));
  cJSON_AddStringToObject(hc, "NetworkMode", s->cfg->network == SP_NETWORK_EGRESS ? "bridge" : "none");
  cJSON_AddBoolToObject(hc, "ReadonlyRootfs", true);
  cJSON *tmpfs = cJSON_AddObjectToObject(hc, "Tmpfs");
  /* tmpfs pages count against the memory limit anyway; half of it at most */
  long long tmp_mib = t->memory_mib / 2 < 16 ? 16 : t->memory_mib / 2;
  cleanup_free char *tmpopt = xasprintf("rw,nosuid,nodev,size=%lldm,mode=1777", tmp_mib);
  cJSON_AddStringToObject(tmpfs, "/tmp", tmpopt);
  cJSON_AddStringToObject(tmpfs, "/run", "rw,nosuid,nodev,noexec,size=16m,mode=755");
  /* Open files and processes: said explicitly, within what any engine can
   * grant.  Podman would otherwise raise them (to 1048576 and 4194304),
   * which fails where the engine lacks CAP_SYS_RESOURCE ("error setting
   * rlimit type 7").  nofile: this process's own hard limit, at most 65536;
   * nproc: 4096, which binds nobody (root is exempt, the monitor lowers it
   * per sandbox, and the pids limit above is what bounds the instance). */
  struct rlimit rl;
  long long nofile = 65536;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
      (long long)rl.rlim_max < nofile)
    nofile = (long long)rl.rlim_max;
  const struct {
    const char *name;
    long long v;
  } lims[] = {{"nofile", nofile}, {"nproc", 4096}};
  cJSON *ulimits = cJSON_AddArrayToObject(hc, "Ulimits");
  for (size_t i = 0; i < SP_ARRAY_SIZE(lims); i++) {
    cJSON *ul = cJSON_CreateObject();
    cJSON_AddStringToObject(ul, "Name", lims[i].name);
    json_add_int(ul, "Soft", lims[i].v);
    json_add_int(ul, "Hard", lims[i].v);
    cJSON_AddItemToArray(ulimits, ul);
  }
  cJSON *restart = cJSON_AddObjectToObject(hc, "RestartPolicy");
  cJSON_AddStringToObject(restart, "Name", "no"); /* sandpitd heals, and counts */
  cJSON *log = cJSON_AddObjectToObject(hc, "LogConfig");
  cJSON_AddStringToObject(log, "Type", "json-file");
  cJSON *logc = cJSON_AddObjectToObject(log, "Config");
  cJSON_AddStringToObject(logc, "max-size", "10m");
  cJSON_AddStringToObject(logc, "max-file", "2");
  return j;
}

static int remove_container(struct docker *d, const char *ref, struct sp_error **err)
{
  cleanup_free char *e = docker_esc(ref);
  cleanup_free char *path = xasprintf("/containers/%s?force=1", e);
  struct docker_reply r = {0};
  int rc = docker_call(d, "DELETE", path, NULL, NULL, DOCKER_CALL_TIMEOUT_MS, &r, err);
  if (rc == 0 && r.status != 204 && r.status != 404 && r.status != 200)
    rc = docker_reply_error(&r, false, err, "removing container %s", ref);
  sbuf_release(&r.body);
  return rc;
}

static int docker_start(struct backend *b, const struct backend_spec *s, char **id,
                        struct sp_error **err)
{
  struct docker *d = (struct docker *)b;
  const char *image = s->image ? s->image : s->cfg->image_is_dockerfile ? NULL : s->cfg->image;
  if (image == NULL)
    return sp_error_code(err, "INTERNAL_ERROR", 500,
                         "pool %s: start before prepare (no image to run)", s->pool);
  cleanup_free char *name = container_name(s);
  cleanup_free char *e_name = docker_esc(name);

  /* An instance of this name: running and ours, it is adopted; stopped,
   * it is stale and goes. */
  cleanup_free char *ipath = xasprintf("/containers/%s/json", e_name);
  cleanup_json cJSON *old = NULL;
  int ex = docker_get_json(d, ipath, &old, err);
  if (ex < 0)
    return -1;
  if (ex > 0) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(old, "State");
    const cJSON *labels =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(old, "Config"), "Labels");
    const cJSON *root = cJSON_GetObjectItemCaseSensitive(labels, "sandpit.data_root");
    const cJSON *pool = cJSON_GetObjectItemCaseSensitive(labels, "sandpit.pool");
    const cJSON *slot = cJSON_GetObjectItemCaseSensitive(labels, "sandpit.slot");
    const cJSON *oid = cJSON_GetObjectItemCaseSensitive(old, "Id");
    char slot_s[16];
    snprintf(slot_s, sizeof slot_s, "%d", s->slot);
    bool ours = cJSON_IsString(root) && strcmp(root->valuestring, s->data_root) == 0 &&
                cJSON_IsString(pool) && strcmp(pool->valuestring, s->pool) == 0 &&
                cJSON_IsString(slot) && strcmp(slot->valuestring, slot_s) == 0;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "Running"))) {
      if (!ours || !cJSON_IsString(oid))
        return sp_error_code(err, "INSTANCE_CONFLICT", 409,
                             "container %s is running for another pool or data_dir (pool %s, "
                             "data_root %s): remove it or rename the pool",
                             name, cJSON_IsString(pool) ? pool->valuestring : "?",
                             cJSON_IsString(root) ? root->valuestring : "?");
      sp_info("instance adopted", LS("backend", "docker"), LS("pool", s->pool), LI("slot", s->slot),
              LS("container", name));
      *id = xstrdup(oid->valuestring);
      return 0;
    }
    if (remove_container(d, name, err) < 0)
      return sp_error_prefix(err, "removing the stale container %s", name);
  }

  const char *subdirs[] = {"run", "data", "workspace"};
  for (size_t i = 0; i < SP_ARRAY_SIZE(subdirs); i++) {
    cleanup_free char *dir = xasprintf("%s/%s", s->dir, subdirs[i]);
    if (sp_mkdir_p(dir, i == 1 ? 0700 : 0755, err) < 0)
      return -1;
  }
  /* a socket left by an earlier instance must not look like this one's */
  cleanup_free char *sock = xasprintf("%s/run/monitor.sock", s->dir);
  unlink(sock);

  cleanup_json cJSON *body = create_body(d, s, image, name);
  cleanup_free char *json = json_print(body);
  cleanup_free char *cpath = xasprintf("/containers/create?name=%s", e_name);
  struct docker_reply r = {0};
  if (docker_call(d, "POST", cpath, json, NULL, DOCKER_CALL_TIMEOUT_MS, &r, err) < 0) {
    sbuf_release(&r.body);
    return -1;
  }
  if (r.status != 201) {
    docker_reply_error(&r, true, err, "creating the container of %s slot %d from %s", s->pool,
                       s->slot, image);
    sbuf_release(&r.body);
    return -1;
  }
  cleanup_json cJSON *created = cJSON_ParseWithLength(sbuf_str(&r.body), r.body.len);
  sbuf_release(&r.body);
  const cJSON *cid = cJSON_GetObjectItemCaseSensitive(created, "Id");
  if (!cJSON_IsString(cid))
    return sp_error_code(err, "BACKEND_ERROR", 502, "container create: no Id in the reply");
  const cJSON *warn = cJSON_GetObjectItemCaseSensitive(created, "Warnings");
  const cJSON *w;
  cJSON_ArrayForEach(w, warn)
    if (cJSON_IsString(w))
      sp_warn("docker engine warning", LS("container", name), LS("warning", w->valuestring));

  cleanup_free char *e_id = docker_esc(cid->valuestring);
  cleanup_free char *spath = xasprintf("/containers/%s/start", e_id);
  struct docker_reply sr = {0};
  int rc = docker_call(d, "POST", spath, NULL, NULL, DOCKER_CALL_TIMEOUT_MS, &sr, err);
  if (rc == 0 && sr.status != 204 && sr.status != 304)
    rc = docker_reply_error(&sr, false, err, "starting the container of %s slot %d", s->pool,
                            s->slot);
  sbuf_release(&sr.body);
  if (rc < 0) {
    remove_container(d, cid->valuestring, NULL);
    return -1;
  }
  sp_info("instance launched", LS("backend", "docker"), LS("pool", s->pool), LI("slot", s->slot),
          LS("container", name), LS("image", image),
          LS("network", s->cfg->network == SP_NETWORK_EGRESS ? "bridge" : "none"));
  *id = xstrdup(cid->valuestring);
  return 0;
}

static int docker_alive(struct backend *b, const char *id)
{
  struct docker *d = (struct docker *)b;
  if (id == NULL || id[0] == '\0')
    return 0;
  cleanup_free char *e = docker_esc(id);
  cleanup_free char *path = xasprintf("/containers/%s/json", e);
  cleanup_json cJSON *j = NULL;
  struct sp_error *err = NULL;
  int rc = docker_get_json(d, path, &j, &err);
  sp_error_free(err);
  if (rc <= 0)
    return 0;
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "State");
  return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "Running")) &&
         !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "Paused"));
}

static int docker_stop(struct backend *b, const char *id, int timeout_ms, struct sp_error **err)
{
  struct docker *d = (struct docker *)b;
  if (id == NULL || id[0] == '\0')
    return 0;
  int t = timeout_ms <= 0 ? 0 : (timeout_ms + 999) / 1000;
  cleanup_free char *e = docker_esc(id);
  cleanup_free char *path = xasprintf("/containers/%s/stop?t=%d", e, t);
  struct docker_reply r = {0};
  int rc = docker_call(d, "POST", path, NULL, NULL, t * 1000L + DOCKER_CALL_TIMEOUT_MS, &r, err);
  /* 304: already stopped; 404: already gone */
  if (rc == 0 && r.status != 204 && r.status != 304 && r.status != 404)
    rc = docker_reply_error(&r, false, err, "stopping container %.12s", id);
  sbuf_release(&r.body);
  if (rc < 0)
    return -1;
  return remove_container(d, id, err);
}

static int docker_discover(struct backend *b, const char *data_root, backend_found_cb cb,
                           void *ud, struct sp_error **err)
{
  struct docker *d = (struct docker *)b;
  cleanup_json cJSON *f = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(f, "label");
  cleanup_free char *lbl = xasprintf("sandpit.data_root=%s", data_root);
  cJSON_AddItemToArray(arr, cJSON_CreateString(lbl));
  cleanup_free char *fs = json_print(f);
  cleanup_free char *e = docker_esc(fs);
  cleanup_free char *path = xasprintf("/containers/json?filters=%s", e);
  cleanup_json cJSON *list = NULL;
  int rc = docker_get_json(d, path, &list, err);
  if (rc <= 0)
    return rc < 0 ? -1 : sp_error_code(err, "BACKEND_ERROR", 502, "GET /containers/json: 404");
  const cJSON *c;
  cJSON_ArrayForEach(c, list)
  {
    const cJSON *cid = cJSON_GetObjectItemCaseSensitive(c, "Id");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(c, "Labels");
    const cJSON *pool = cJSON_GetObjectItemCaseSensitive(labels, "sandpit.pool");
    const cJSON *slot = cJSON_GetObjectItemCaseSensitive(labels, "sandpit.slot");
    const cJSON *root = cJSON_GetObjectItemCaseSensitive(labels, "sandpit.data_root");
    long long n;
    /* the engine filtered already; Podman's older services may not have */
    if (!cJSON_IsString(cid) || !cJSON_IsString(pool) || !cJSON_IsString(slot) ||
        !cJSON_IsString(root) || strcmp(root->valuestring, data_root) != 0 ||
        !str_to_ll(slot->valuestring, 0, INT_MAX, &n))
      continue;
    cb(ud, pool->valuestring, (int)n, cid->valuestring);
  }
  return 0;
}

static void docker_free(struct backend *b)
{
  if (b == NULL)
    return;
  struct docker *d = (struct docker *)b;
  free(d->socket);
  free(d);
}

static const struct backend_ops docker_ops = {
    .name = "docker",
    .prepare = docker_prepare,
    .start = docker_start,
    .alive = docker_alive,
    .stop = docker_stop,
    .discover = docker_discover,
    .free = docker_free,
};

struct docker *docker_of(struct backend *b)
{
  return b && b->ops == &docker_ops ? (struct docker *)b : NULL;
}

struct backend *backend_docker_new(const char *socket, struct sp_error **err)
{
  if (socket == NULL) {
    const char *h = getenv("DOCKER_HOST");
    if (h && h[0] && !str_starts_with(h, "unix://")) {
      sp_error_code(err, "BACKEND_UNAVAILABLE", 503,
                    "DOCKER_HOST=%s: only unix:// sockets are supported", h);
      return NULL;
    }
    socket = backend_docker_socket();
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  struct docker *d = xcalloc(1, sizeof *d);
  d->b.ops = &docker_ops;
  d->b.priv = d;
  d->socket = xstrdup(socket);
  struct docker_reply r = {0};
  if (docker_call(d, "GET", "/_ping", NULL, NULL, PING_TIMEOUT_MS, &r, err) < 0 ||
      r.status != 200) {
    if (r.status != 0 && r.status != 200)
      sp_error_code(err, "BACKEND_UNAVAILABLE", 503,
                    "%s does not answer as a Docker engine (GET /_ping: %ld)", socket, r.status);
    sbuf_release(&r.body);
    docker_free(&d->b);
    return NULL;
  }
  sbuf_release(&r.body);
  cleanup_json cJSON *v = NULL;
  cleanup_json cJSON *info = NULL;
  struct sp_error *verr = NULL;
  if (docker_get_json(d, "/version", &v, &verr) > 0 &&
      docker_get_json(d, "/info", &info, &verr) > 0) {
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(v, "Version");
    const cJSON *api = cJSON_GetObjectItemCaseSensitive(v, "ApiVersion");
    const cJSON *ncpu = cJSON_GetObjectItemCaseSensitive(info, "NCPU");
    const cJSON *drv = cJSON_GetObjectItemCaseSensitive(info, "Driver");
    d->ncpu = cJSON_IsNumber(ncpu) ? (int)ncpu->valuedouble : 0;
    sp_info("docker engine", LS("socket", socket),
            LS("version", cJSON_IsString(ver) ? ver->valuestring : "?"),
            LS("api", cJSON_IsString(api) ? api->valuestring : "?"),
            LS("storage", cJSON_IsString(drv) ? drv->valuestring : "?"), LI("cpus", d->ncpu));
  }
  sp_error_free(verr);
  return &d->b;
}
