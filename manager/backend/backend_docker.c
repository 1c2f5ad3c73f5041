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
 * image builds): an engine that hangs is an error, not a hung sandpitd. */
#include "backend.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "hash.h"
#include "json.h"
#include "log.h"
#include "str.h"
#include "tarball.h"
#include "util.h"

#define API "/v1.41"
#define DEFAULT_SOCKET "/var/run/docker.sock"
#define CONNECT_TIMEOUT_MS 3000L
#define CALL_TIMEOUT_MS 30000L          /* ordinary calls */
#define PING_TIMEOUT_MS 5000L
#define BUILD_TIMEOUT_MS (3600L * 1000) /* apt-get and npm inside a build */
#define MAX_REPLY (32u << 20)           /* a reply body held in memory */
#define BUILD_TAIL 8                    /* output lines quoted when a build fails */

struct docker {
  struct backend b;
  char *socket;
  int ncpu; /* the engine's CPUs (0: unknown): NanoCpus may not exceed them */
};

static const struct backend_ops docker_ops;

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

struct reply {
  long status;
  struct sbuf body;
  bool too_big;
  /* streaming consumer (build output); when set, body is not collected */
  size_t (*on_data)(void *ud, const char *data, size_t len);
  void *ud;
};

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
  struct reply *r = ud;
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

struct upload {
  FILE *fp;
  curl_off_t size;
};

/* The engine's message from an error reply ({"message": "..."}), or the
 * body itself. */
static char *engine_message(const struct reply *r)
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

/* One call.  A reply of any status is 0 (r->status says which); -1 when no
 * reply came: BACKEND_UNAVAILABLE (503) when the engine does not answer or
 * does not answer in time. */
static int call(struct docker *d, const char *method, const char *path, const char *json,
                const struct upload *up, long timeout_ms, struct reply *r,
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

/* An error reply as an sp_error: IMAGE_NOT_FOUND (404) for a 404 about an
 * image, BACKEND_ERROR (502) with the engine's message otherwise. */
static int reply_error(const struct reply *r, bool image_404, struct sp_error **err,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int reply_error(const struct reply *r, bool image_404, struct sp_error **err,
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

static char *esc(const char *s)
{
  char *e = curl_easy_escape(NULL, s, 0);
  if (e == NULL)
    abort();
  char *r = xstrdup(e);
  curl_free(e);
  return r;
}

/* GET a JSON object.  1 found, 0 on 404, -1 error. */
static int get_json(struct docker *d, const char *path, cJSON **out, struct sp_error **err)
{
  struct reply r = {0};
  if (call(d, "GET", path, NULL, NULL, CALL_TIMEOUT_MS, &r, err) < 0) {
    sbuf_release(&r.body);
    return -1;
  }
  int rc;
  if (r.status == 404) {
    rc = 0;
  } else if (r.status != 200) {
    rc = reply_error(&r, false, err, "GET %s", path);
  } else {
    *out = cJSON_ParseWithLength(sbuf_str(&r.body), r.body.len);
    rc = *out ? 1 : sp_error_code(err, "BACKEND_ERROR", 502, "GET %s: not JSON", path);
  }
  sbuf_release(&r.body);
  return rc;
}

/* 1 when the image is in the engine's store (*id its id when id != NULL). */
static int image_exists(struct docker *d, const char *name, char **id, struct sp_error **err)
{
  cleanup_free char *e = esc(name);
  cleanup_free char *path = xasprintf("/images/%s/json", e);
  cleanup_json cJSON *j = NULL;
  int rc = get_json(d, path, &j, err);
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

/* ---- SHA-256 (FIPS 180-4), for the context digest ---- */

struct sha256 {
  uint32_t h[8];
  uint64_t len;
  unsigned char buf[64];
  size_t n;
};

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(struct sha256 *s, const unsigned char *p)
{
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
  uint32_t e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  s->h[0] += a;
  s->h[1] += b;
  s->h[2] += c;
  s->h[3] += d;
  s->h[4] += e;
  s->h[5] += f;
  s->h[6] += g;
  s->h[7] += h;
}

static void sha256_init(struct sha256 *s)
{
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof iv);
  s->len = 0;
  s->n = 0;
}

static void sha256_add(struct sha256 *s, const void *data, size_t len)
{
  const unsigned char *p = data;
  s->len += len;
  while (len > 0) {
    size_t k = SP_MIN(len, 64 - s->n);
    memcpy(s->buf + s->n, p, k);
    s->n += k;
    p += k;
    len -= k;
    if (s->n == 64) {
      sha256_block(s, s->buf);
      s->n = 0;
    }
  }
}

static void sha256_hex(struct sha256 *s, char out[65])
{
  uint64_t bits = s->len * 8;
  unsigned char pad = 0x80, zero = 0, lenbuf[8];
  sha256_add(s, &pad, 1);
  while (s->n != 56)
    sha256_add(s, &zero, 1);
  for (int i = 0; i < 8; i++)
    lenbuf[i] = (unsigned char)(bits >> (56 - 8 * i));
  sha256_add(s, lenbuf, 8);
  for (int i = 0; i < 8; i++)
    snprintf(out + 8 * i, 9, "%08x", s->h[i]);
}

/* Fields are length-prefixed so that no two different inputs hash alike. */
static void sha256_field(struct sha256 *s, const char *str)
{
  char n[24];
  int k = snprintf(n, sizeof n, "%zu:", strlen(str));
  sha256_add(s, n, (size_t)k);
  sha256_add(s, str, strlen(str));
}

/* ---- .dockerignore ---- */

struct ignore_rule {
  char *pat;
  bool negate;
};

struct ignore {
  struct ignore_rule *v;
  int n;
  bool any_negate;
};

static void ignore_free(struct ignore *ig)
{
  for (int i = 0; i < ig->n; i++)
    free(ig->v[i].pat);
  free(ig->v);
}

/* Docker's reading of the file: one pattern a line, '#' comments, '!'
 * exceptions, cleaned like filepath.Clean, relative to the context. */
static int ignore_load(const char *path, struct ignore *ig, struct sp_error **err)
{
  memset(ig, 0, sizeof *ig);
  cleanup_free char *txt = sp_read_file(path, 1 << 20, NULL, NULL);
  if (txt == NULL) {
    if (access(path, F_OK) < 0 && errno == ENOENT)
      return 0;
    return sp_error_set(err, errno, "cannot read %s", path);
  }
  char *save = NULL;
  for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    while (isspace((unsigned char)*line))
      line++;
    size_t n = strlen(line);
    while (n > 0 && isspace((unsigned char)line[n - 1]))
      line[--n] = '\0';
    if (n == 0 || line[0] == '#')
      continue;
    bool neg = false;
    if (line[0] == '!') {
      neg = true;
      line++;
      while (isspace((unsigned char)*line))
        line++;
    }
    /* clean: no leading "/" or "./", no empty or "." segments, no trailing "/" */
    struct sbuf p = SBUF_INIT;
    char *seg_save = NULL;
    for (char *seg = strtok_r(line, "/", &seg_save); seg; seg = strtok_r(NULL, "/", &seg_save)) {
      if (strcmp(seg, ".") == 0)
        continue;
      if (p.len)
        sbuf_addch(&p, '/');
      sbuf_addstr(&p, seg);
    }
    if (p.len == 0) {
      sbuf_release(&p);
      continue;
    }
    ig->v = xreallocarray(ig->v, (size_t)ig->n + 1, sizeof *ig->v);
    ig->v[ig->n].pat = sbuf_detach(&p, NULL);
    ig->v[ig->n].negate = neg;
    ig->n++;
    ig->any_negate |= neg;
  }
  return 0;
}

/* Match pattern segments against path segments; "**" matches any number
 * of segments, other segments are fnmatch patterns (*, ?, [...], \). */
static bool seg_match(char **pat, int np, char **path, int nq)
{
  if (np == 0)
    return nq == 0;
  if (strcmp(pat[0], "**") == 0) {
    for (int k = 0; k <= nq; k++)
      if (seg_match(pat + 1, np - 1, path + k, nq - k))
        return true;
    return false;
  }
  if (nq == 0 || fnmatch(pat[0], path[0], 0) != 0)
    return false;
  return seg_match(pat + 1, np - 1, path + 1, nq - 1);
}

static int split(char *s, char **out, int max)
{
  int n = 0;
  char *save = NULL;
  for (char *t = strtok_r(s, "/", &save); t && n < max; t = strtok_r(NULL, "/", &save))
    out[n++] = t;
  return n;
}

#define MAX_DEPTH 128

/* Does the pattern match rel or one of its parent directories? */
static bool pattern_hits(const char *pattern, const char *rel)
{
  char pbuf[PATH_MAX], qbuf[PATH_MAX];
  char *ps[MAX_DEPTH], *qs[MAX_DEPTH];
  snprintf(pbuf, sizeof pbuf, "%s", pattern);
  snprintf(qbuf, sizeof qbuf, "%s", rel);
  int np = split(pbuf, ps, MAX_DEPTH), nq = split(qbuf, qs, MAX_DEPTH);
  for (int k = nq; k >= 1; k--)
    if (seg_match(ps, np, qs, k))
      return true;
  return false;
}

static bool ignored(const struct ignore *ig, const char *rel)
{
  bool out = false;
  for (int i = 0; i < ig->n; i++)
    if (ig->v[i].negate == out && pattern_hits(ig->v[i].pat, rel))
      out = !ig->v[i].negate;
  return out;
}

/* Could an exception pattern re-include something below the excluded
 * directory rel?  Then the walk must go in. */
static bool exception_inside(const struct ignore *ig, const char *rel)
{
  for (int i = 0; i < ig->n; i++) {
    if (!ig->v[i].negate)
      continue;
    char pbuf[PATH_MAX], qbuf[PATH_MAX];
    char *ps[MAX_DEPTH], *qs[MAX_DEPTH];
    snprintf(pbuf, sizeof pbuf, "%s", ig->v[i].pat);
    snprintf(qbuf, sizeof qbuf, "%s", rel);
    int np = split(pbuf, ps, MAX_DEPTH), nq = split(qbuf, qs, MAX_DEPTH);
    bool could = true;
    for (int k = 0; k < nq; k++) {
      if (k >= np) {
        could = false;
        break;
      }
      if (strcmp(ps[k], "**") == 0)
        break;
      if (fnmatch(ps[k], qs[k], 0) != 0) {
        could = false;
        break;
      }
    }
    if (could)
      return true;
  }
  return false;
}

/* ---- the build context ---- */

struct ctx_entry {
  char *rel;     /* path inside the context, '/'-separated */
  char *src;     /* path on this machine */
  struct stat st;
  char *link;    /* symlink target */
};

struct context {
  struct ctx_entry *v;
  size_t n;
  uint64_t tar_estimate; /* bytes of the tar: headers, data, padding */
};

static void context_free(struct context *c)
{
  for (size_t i = 0; i < c->n; i++) {
    free(c->v[i].rel);
    free(c->v[i].src);
    free(c->v[i].link);
  }
  free(c->v);
}

static int context_add(struct context *c, const char *rel, const char *src, const struct stat *st,
                       struct sp_error **err)
{
  struct ctx_entry e = {.rel = xstrdup(rel), .src = xstrdup(src), .st = *st};
  if (S_ISLNK(st->st_mode)) {
    char t[PATH_MAX];
    ssize_t n = readlink(src, t, sizeof t - 1);
    if (n < 0) {
      free(e.rel);
      free(e.src);
      return sp_error_set(err, errno, "build context: cannot read the link %s", src);
    }
    t[n] = '\0';
    e.link = xstrdup(t);
  }
  c->v = xreallocarray(c->v, c->n + 1, sizeof *c->v);
  c->v[c->n++] = e;
  /* a header (two blocks when pax extensions are needed), data padded */
  c->tar_estimate += 1024 + (S_ISREG(st->st_mode) ? ((uint64_t)st->st_size + 511) / 512 * 512 : 0);
  return 0;
}

static int walk(struct context *c, const struct ignore *ig, const char *root, const char *rel,
                uint64_t max, struct sp_error **err)
{
  cleanup_free char *dir = rel[0] ? xasprintf("%s/%s", root, rel) : xstrdup(root);
  cleanup_dir DIR *d = opendir(dir);
  if (d == NULL)
    return sp_error_set(err, errno, "build context: cannot read the directory %s", dir);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    cleanup_free char *r = rel[0] ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
    cleanup_free char *src = xasprintf("%s/%s", root, r);
    struct stat st;
    if (lstat(src, &st) < 0)
      return sp_error_set(err, errno, "build context: cannot stat %s", src);
    bool skip = ignored(ig, r);
    if (S_ISDIR(st.st_mode)) {
      if (!skip && context_add(c, r, src, &st, err) < 0)
        return -1;
      if ((!skip || exception_inside(ig, r)) && walk(c, ig, root, r, max, err) < 0)
        return -1;
    } else if (!skip && (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))) {
      if (S_ISREG(st.st_mode) && access(src, R_OK) < 0)
        return sp_error_set(err, errno, "build context: cannot read %s", src);
      if (context_add(c, r, src, &st, err) < 0)
        return -1;
    }
    /* sockets, FIFOs and devices are not build material */
    if (c->tar_estimate > max)
      return sp_error_code(err, "CONTEXT_TOO_LARGE", 413,
                           "build context %s is over the limit of %llu MiB (add what the "
                           "image does not need to %s/.dockerignore)",
                           root, (unsigned long long)(max >> 20), root);
  }
  return 0;
}

static int entry_cmp(const void *a, const void *b)
{
  return strcmp(((const struct ctx_entry *)a)->rel, ((const struct ctx_entry *)b)->rel);
}

static int hash_file(struct sha256 *s, const char *path, struct sp_error **err)
{
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return sp_error_set(err, errno, "build context: cannot open %s", path);
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return sp_error_set(err, errno, "build context: cannot read %s", path);
    if (n == 0)
      return 0;
    sha256_add(s, buf, (size_t)n);
  }
}

/* The digest of what the build sees: every entry's name, type, mode, link
 * target and content (not times or owners, which COPY does not keep
 * apart from the mode), and the Dockerfile's name in the context. */
static int context_digest(const struct context *c, const char *dockerfile_rel,
                          struct sha256 *s, struct sp_error **err)
{
  sha256_field(s, "sandpit-build-context-v1");
  sha256_field(s, dockerfile_rel);
  for (size_t i = 0; i < c->n; i++) {
    const struct ctx_entry *e = &c->v[i];
    char meta[64];
    snprintf(meta, sizeof meta, "%c%04o:%lld",
             S_ISDIR(e->st.st_mode) ? 'd' : S_ISLNK(e->st.st_mode) ? 'l' : 'f',
             (unsigned)(e->st.st_mode & 07777), (long long)e->st.st_size);
    sha256_field(s, e->rel);
    sha256_field(s, meta);
    if (e->link)
      sha256_field(s, e->link);
    else if (S_ISREG(e->st.st_mode) && hash_file(s, e->src, err) < 0)
      return -1;
  }
  return 0;
}

struct tar_out {
  const struct tar_libarchive *la;
  int fd;
  uint64_t written;
  uint64_t max;
  bool over;
};

static la_ssize_t tar_write_cb(struct archive *a, void *ud, const void *buf, size_t len)
{
  struct tar_out *t = ud;
  if (t->written + len > t->max) {
    t->over = true;
    t->la->archive_set_error(a, EFBIG, "over the size limit");
    return -1;
  }
  if (sp_write_all(t->fd, buf, len) < 0) {
    t->la->archive_set_error(a, errno, "cannot write the context: %s", strerror(errno));
    return -1;
  }
  t->written += len;
  return (la_ssize_t)len;
}

static void archive_cleanup(struct archive **a)
{
  if (*a) /* then libarchive is loaded */
    tar_libarchive(NULL)->archive_write_free(*a);
}
#define cleanup_archive __attribute__((cleanup(archive_cleanup)))

static int tar_entry_data(const struct tar_libarchive *la, struct archive *a, const char *src,
                          int64_t size, struct sp_error **err)
{
  cleanup_close int fd = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return sp_error_set(err, errno, "build context: cannot open %s", src);
  char buf[65536];
  int64_t left = size;
  while (left > 0) {
    ssize_t n = read(fd, buf, (size_t)SP_MIN((int64_t)sizeof buf, left));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return sp_error_set(err, errno, "build context: cannot read %s", src);
    if (n == 0)
      break; /* shrank meanwhile: libarchive pads the entry */
    if (la->archive_write_data(a, buf, (size_t)n) < 0)
      return sp_error_code(err, "BACKEND_ERROR", 502, "build context: %s",
                           la->archive_error_string(a));
    left -= n;
  }
  return 0;
}

/* Write the context as a tar to fd.  The Dockerfile goes in as
 * `dockerfile_rel` when it lies outside the context (extra_dockerfile). */
static int context_tar(const struct context *c, const char *extra_dockerfile,
                       const char *dockerfile_rel, int fd, uint64_t max, uint64_t *size,
                       struct sp_error **err)
{
  const struct tar_libarchive *la = tar_libarchive(err);
  if (la == NULL)
    return -1;
  cleanup_archive struct archive *a = la->archive_write_new();
  struct tar_out t = {.la = la, .fd = fd, .max = max};
  if (la->archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
      la->archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
      la->archive_write_open2(a, &t, NULL, tar_write_cb, NULL, NULL) != ARCHIVE_OK)
    return sp_error_code(err, "BACKEND_ERROR", 502, "build context: %s",
                         la->archive_error_string(a));
  size_t total = c->n + (extra_dockerfile ? 1 : 0);
  for (size_t i = 0; i < total; i++) {
    struct ctx_entry extra = {0};
    const struct ctx_entry *e = &c->v[i < c->n ? i : 0];
    if (i == c->n) {
      if (lstat(extra_dockerfile, &extra.st) < 0)
        return sp_error_set(err, errno, "cannot stat %s", extra_dockerfile);
      extra.rel = (char *)dockerfile_rel;
      extra.src = (char *)extra_dockerfile;
      e = &extra;
    }
    struct archive_entry *ae = la->archive_entry_new();
    la->archive_entry_copy_stat(ae, &e->st);
    la->archive_entry_set_pathname(ae, e->rel);
    la->archive_entry_set_uid(ae, 0);
    la->archive_entry_set_gid(ae, 0);
    if (e->link)
      la->archive_entry_set_symlink(ae, e->link);
    if (!S_ISREG(e->st.st_mode))
      la->archive_entry_set_size(ae, 0);
    int rc = la->archive_write_header(a, ae);
    la->archive_entry_free(ae);
    if (rc != ARCHIVE_OK || (S_ISREG(e->st.st_mode) &&
                             tar_entry_data(la, a, e->src, (int64_t)e->st.st_size, err) < 0)) {
      if (t.over)
        return sp_error_code(err, "CONTEXT_TOO_LARGE", 413,
                             "build context is over the limit of %llu MiB",
                             (unsigned long long)(max >> 20));
      return sp_error_code(err, "BACKEND_ERROR", 502, "build context: %s: %s", e->rel,
                           la->archive_error_string(a));
    }
  }
  if (la->archive_write_close(a) != ARCHIVE_OK) {
    if (t.over)
      return sp_error_code(err, "CONTEXT_TOO_LARGE", 413,
                           "build context is over the limit of %llu MiB",
                           (unsigned long long)(max >> 20));
    return sp_error_code(err, "BACKEND_ERROR", 502, "build context: %s",
                         la->archive_error_string(a));
  }
  *size = t.written;
  return 0;
}

/* The images a Dockerfile builds FROM (not scratch, not earlier stages). */
static char **dockerfile_bases(const char *text)
{
  char **v = xcalloc(1, sizeof *v);
  size_t n = 0;
  char *stages[64];
  size_t nst = 0;
  cleanup_free char *copy = xstrdup(text);
  char *save = NULL;
  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    while (isspace((unsigned char)*line))
      line++;
    if (strncasecmp(line, "FROM", 4) != 0 || !isspace((unsigned char)line[4]))
      continue;
    char *tok_save = NULL, *image = NULL;
    for (char *t = strtok_r(line + 4, " \t\r", &tok_save); t; t = strtok_r(NULL, " \t\r", &tok_save)) {
      if (str_starts_with(t, "--"))
        continue;
      if (image == NULL) {
        image = t;
      } else if (strcasecmp(t, "AS") == 0) {
        char *alias = strtok_r(NULL, " \t\r", &tok_save);
        if (alias && nst < SP_ARRAY_SIZE(stages))
          stages[nst++] = alias;
        break;
      }
    }
    if (image == NULL || strcmp(image, "scratch") == 0)
      continue;
    bool stage = false;
    for (size_t i = 0; i < nst; i++)
      stage |= strcasecmp(stages[i], image) == 0;
    if (stage)
      continue;
    v = xreallocarray(v, n + 2, sizeof *v);
    v[n++] = xstrdup(image);
    v[n] = NULL;
  }
  return v;
}


/* Build output: JSON objects, one a line, {"stream": "..."} for output,
 * {"error": "..."} when the build failed, {"aux": {"ID": ...}} for the
 * result.  Output is logged line by line. */
struct build_progress {
  const char *image;
  struct sbuf pending; /* bytes of the reply not yet a whole JSON line */
  struct sbuf line;    /* stream text not yet a whole output line */
  struct sbuf raw;     /* the reply's first bytes, for an error reply */
  char *tail[BUILD_TAIL];
  int ntail;
  char *error;
  int64_t lines;
};

static void progress_line(struct build_progress *p, const char *s, size_t len)
{
  /* a carriage return rewrites the line: keep what follows the last */
  const char *cr = memrchr(s, '\r', len);
  if (cr && (size_t)(cr - s) + 1 < len) {
    len -= (size_t)(cr + 1 - s);
    s = cr + 1;
  }
  /* without terminal colours (Docker wraps a RUN's stderr in them) */
  struct sbuf clean = SBUF_INIT;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '\x1b' && i + 1 < len && s[i + 1] == '[') {
      i += 2;
      while (i < len && !(s[i] >= '@' && s[i] <= '~'))
        i++;
      continue;
    }
    sbuf_addch(&clean, s[i]);
  }
  while (clean.len > 0 && isspace((unsigned char)clean.buf[clean.len - 1]))
    clean.buf[--clean.len] = '\0';
  if (clean.len == 0) {
    sbuf_release(&clean);
    return;
  }
  cleanup_free char *txt = sbuf_detach(&clean, NULL);
  sp_info("image build", LS("image", p->image), LS("line", txt));
  p->lines++;
  if (p->ntail == BUILD_TAIL) {
    free(p->tail[0]);
    memmove(p->tail, p->tail + 1, (BUILD_TAIL - 1) * sizeof *p->tail);
    p->ntail--;
  }
  p->tail[p->ntail++] = steal_pointer(&txt);
}

static void progress_stream(struct build_progress *p, const char *s)
{
  for (; *s; s++) {
    if (*s == '\n') {
      progress_line(p, sbuf_str(&p->line), p->line.len);
      sbuf_reset(&p->line);
    } else {
      sbuf_addch(&p->line, *s);
    }
  }
}

static void progress_object(struct build_progress *p, const char *s, size_t len)
{
  cleanup_json cJSON *j = cJSON_ParseWithLength(s, len);
  if (j == NULL)
    return;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "stream");
  if (cJSON_IsString(v))
    progress_stream(p, v->valuestring);
  v = cJSON_GetObjectItemCaseSensitive(j, "status"); /* pulls (Podman says more this way) */
  if (cJSON_IsString(v)) {
    progress_stream(p, v->valuestring);
    progress_stream(p, "\n");
  }
  v = cJSON_GetObjectItemCaseSensitive(j, "error");
  if (cJSON_IsString(v) && p->error == NULL)
    p->error = xstrdup(v->valuestring);
}

static size_t progress_data(void *ud, const char *data, size_t len)
{
  struct build_progress *p = ud;
  if (p->raw.len < 8192)
    sbuf_add(&p->raw, data, SP_MIN(len, 8192 - p->raw.len));
  sbuf_add(&p->pending, data, len);
  size_t start = 0;
  for (size_t i = 0; i < p->pending.len; i++) {
    if (p->pending.buf[i] != '\n')
      continue;
    progress_object(p, p->pending.buf + start, i - start);
    start = i + 1;
  }
  if (start) {
    memmove(p->pending.buf, p->pending.buf + start, p->pending.len - start);
    p->pending.len -= start;
    p->pending.buf[p->pending.len] = '\0';
  }
  return len;
}

static void progress_release(struct build_progress *p)
{
  sbuf_release(&p->pending);
  sbuf_release(&p->line);
  sbuf_release(&p->raw);
  for (int i = 0; i < p->ntail; i++)
    free(p->tail[i]);
  free(p->error);
}

static int temp_fd(struct sp_error **err)
{
  const char *dir = getenv("TMPDIR");
  if (dir == NULL || dir[0] == '\0')
    dir = "/tmp";
  int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    return fd;
  cleanup_free char *tmpl = xasprintf("%s/sandpit-context.XXXXXX", dir);
  fd = mkostemp(tmpl, O_CLOEXEC);
  if (fd < 0)
    return sp_error_set(err, errno, "cannot make a temporary file in %s", dir);
  unlink(tmpl);
  return fd;
}

static bool path_inside(const char *dir, const char *path)
{
  size_t n = strlen(dir);
  return strncmp(path, dir, n) == 0 && (path[n] == '/' || (n == 1 && dir[0] == '/'));
}

/* What one build is made of. */
struct build {
  char *df;       /* the Dockerfile, absolute */
  char *ctx;      /* the context directory, absolute */
  char *df_text;
  bool inside;    /* the Dockerfile lies in the context */
  const char *df_rel; /* its name in the context's tar */
  struct context c;
  char digest[65];
};

static void build_release(struct build *bd)
{
  free(bd->df);
  free(bd->ctx);
  free(bd->df_text);
  context_free(&bd->c);
}

/* Walk the context, the Dockerfile always in it. */
static int build_collect(struct build *bd, const char *dockerfile, const char *context_dir,
                         uint64_t max, struct sp_error **err)
{
  bd->df = realpath(dockerfile, NULL);
  if (bd->df == NULL)
    return sp_error_set(err, errno, "Dockerfile %s", dockerfile);
  bd->ctx = realpath(context_dir, NULL);
  if (bd->ctx == NULL)
    return sp_error_set(err, errno, "build context %s", context_dir);
  bd->df_text = sp_read_file(bd->df, 1 << 20, NULL, err);
  if (bd->df_text == NULL)
    return sp_error_prefix(err, "Dockerfile");
  /* inside: at its own place; outside: under a name of its own */
  bd->inside = path_inside(bd->ctx, bd->df);
  bd->df_rel = bd->inside ? bd->df + strlen(bd->ctx) + (strcmp(bd->ctx, "/") == 0 ? 0 : 1)
                          : ".sandpit.Dockerfile";
  struct ignore ig;
  cleanup_free char *ignore_path = xasprintf("%s/.dockerignore", bd->ctx);
  if (ignore_load(ignore_path, &ig, err) < 0)
    return -1;
  int rc = walk(&bd->c, &ig, bd->ctx, "", max, err);
  ignore_free(&ig);
  if (rc < 0)
    return -1;
  bool listed = false;
  for (size_t i = 0; i < bd->c.n && bd->inside; i++)
    listed |= strcmp(bd->c.v[i].rel, bd->df_rel) == 0;
  if (bd->inside && !listed) {
    struct stat st;
    if (lstat(bd->df, &st) < 0)
      return sp_error_set(err, errno, "cannot stat %s", bd->df);
    if (context_add(&bd->c, bd->df_rel, bd->df, &st, err) < 0)
      return -1;
  }
  qsort(bd->c.v, bd->c.n, sizeof *bd->c.v, entry_cmp);
  return 0;
}

/* The digest of the context, the Dockerfile and the images it starts FROM
 * (a rebuilt base image rebuilds this one).  A FROM image missing is a
 * clear error now, not a pull from a registry that cannot be reached. */
static int build_digest(struct docker *d, struct build *bd, struct sp_error **err)
{
  struct sha256 s;
  sha256_init(&s);
  if (context_digest(&bd->c, bd->df_rel, &s, err) < 0)
    return -1;
  if (!bd->inside)
    sha256_field(&s, bd->df_text);
  cleanup_strv char **bases = dockerfile_bases(bd->df_text);
  for (char **p = bases; *p; p++) {
    cleanup_free char *id = NULL;
    int ex = image_exists(d, *p, &id, err);
    if (ex < 0)
      return -1;
    if (ex == 0)
      return sp_error_code(err, "IMAGE_NOT_FOUND", 404,
                           "image '%s' (FROM in %s) is not on this engine and no registry is "
                           "used: build it first%s",
                           *p, bd->df,
                           str_starts_with(*p, "sandpit/base:") ? " (scripts/build-base-image)" : "");
    sha256_field(&s, *p);
    sha256_field(&s, id);
  }
  sha256_hex(&s, bd->digest);
  return 0;
}

/* Send the context to POST /build and follow its output. */
static int build_send(struct docker *d, struct build *bd, const char *tag, uint64_t max,
                      struct sp_error **err)
{
  cleanup_close int fd = temp_fd(err);
  if (fd < 0)
    return -1;
  uint64_t size = 0;
  if (context_tar(&bd->c, bd->inside ? NULL : bd->df, bd->df_rel, fd, max, &size, err) < 0)
    return sp_error_prefix(err, "%s", bd->ctx);
  sp_info("image build", LS("image", tag), LS("dockerfile", bd->df), LS("context", bd->ctx),
          LI("context_bytes", (long long)size), LI("entries", (long long)bd->c.n));
  cleanup_fclose FILE *fp = fdopen(fd, "rb");
  if (fp == NULL)
    return sp_error_set(err, errno, "fdopen");
  fd = -1; /* fp owns it */
  rewind(fp);

  cleanup_free char *e_tag = esc(tag);
  cleanup_free char *e_df = esc(bd->df_rel);
  cleanup_json cJSON *labels = cJSON_CreateObject();
  cJSON_AddStringToObject(labels, "sandpit.context", bd->digest);
  cJSON_AddStringToObject(labels, "sandpit.context_dir", bd->ctx);
  cleanup_free char *labels_s = json_print(labels);
  cleanup_free char *e_labels = esc(labels_s);
  cleanup_free char *path = xasprintf("/build?t=%s&dockerfile=%s&rm=1&forcerm=1&labels=%s", e_tag,
                                      e_df, e_labels);
  struct build_progress p = {.image = tag};
  struct reply r = {.on_data = progress_data, .ud = &p};
  struct upload up = {.fp = fp, .size = (curl_off_t)size};
  int rc = call(d, "POST", path, NULL, &up, BUILD_TIMEOUT_MS, &r, err);
  if (p.pending.len)
    progress_object(&p, p.pending.buf, p.pending.len);
  if (p.line.len)
    progress_line(&p, p.line.buf, p.line.len);
  if (rc == 0 && r.status != 200) {
    /* refused before the build began: the reply is the engine's message */
    struct reply er = {.status = r.status};
    sbuf_addstr(&er.body, sbuf_str(&p.raw));
    rc = reply_error(&er, false, err, "image build of %s", bd->df);
    sbuf_release(&er.body);
  } else if (rc == 0 && p.error) {
    struct sbuf t = SBUF_INIT;
    for (int i = 0; i < p.ntail; i++)
      sbuf_addf(&t, "%s%s", i ? " | " : "", p.tail[i]);
    rc = sp_error_code(err, "IMAGE_BUILD_FAILED", 502,
                       "image build of %s failed: %s (last output: %s)", bd->df, p.error,
                       sbuf_str(&t));
    sbuf_release(&t);
  }
  progress_release(&p);
  return rc;
}

/* Remove the earlier builds of REPO from the same context directory, so
 * that rebuilds do not pile up.  The engine refuses to remove an image a
 * container uses (running or stopped): those stay. */
static void prune_old(struct docker *d, const char *repo, const char *keep, const char *ctx)
{
  cleanup_json cJSON *f = cJSON_CreateObject();
  cJSON_AddItemToArray(cJSON_AddArrayToObject(f, "reference"), cJSON_CreateString(repo));
  cleanup_free char *lbl = xasprintf("sandpit.context_dir=%s", ctx);
  cJSON_AddItemToArray(cJSON_AddArrayToObject(f, "label"), cJSON_CreateString(lbl));
  cleanup_free char *fs = json_print(f);
  cleanup_free char *e = esc(fs);
  cleanup_free char *path = xasprintf("/images/json?filters=%s", e);
  cleanup_json cJSON *list = NULL;
  struct sp_error *err = NULL;
  if (get_json(d, path, &list, &err) <= 0) {
    sp_error_free(err);
    return;
  }
  cleanup_free char *latest = xasprintf("%s:latest", repo);
  const cJSON *img, *t;
  cJSON_ArrayForEach(img, list)
  {
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(img, "RepoTags"))
    {
      /* Podman names images localhost/REPO:TAG or docker.io/REPO:TAG */
      const char *name = cJSON_IsString(t) ? t->valuestring : "";
      const char *bare = str_starts_with(name, "localhost/")   ? name + 10
                         : str_starts_with(name, "docker.io/") ? name + 10
                                                               : name;
      if (!str_starts_with(bare, repo) || bare[strlen(repo)] != ':' || strcmp(bare, keep) == 0 ||
          strcmp(bare, latest) == 0)
        continue;
      cleanup_free char *en = esc(name);
      cleanup_free char *dpath = xasprintf("/images/%s", en);
      struct reply r = {0};
      if (call(d, "DELETE", dpath, NULL, NULL, CALL_TIMEOUT_MS, &r, NULL) == 0 && r.status == 200)
        sp_info("old image removed", LS("image", name));
      sbuf_release(&r.body);
    }
  }
}

int backend_docker_build(struct backend *b, const char *dockerfile, const char *context_dir,
                         const char *repo, uint64_t max_context, char **image,
                         struct sp_error **err)
{
  if (b == NULL || b->ops != &docker_ops)
    return sp_error_code(err, "INTERNAL_ERROR", 500, "backend_docker_build: not a docker backend");
  struct docker *d = (struct docker *)b;
  if (max_context == 0)
    max_context = BACKEND_DOCKER_MAX_CONTEXT;
  int64_t t0 = sp_monotonic_ms();
  struct build bd = {0};
  if (build_collect(&bd, dockerfile, context_dir, max_context, err) < 0 ||
      build_digest(d, &bd, err) < 0) {
    build_release(&bd);
    return -1;
  }
  cleanup_free char *tag = xasprintf("%s:%.16s", repo, bd.digest);
  int ex = image_exists(d, tag, NULL, err);
  if (ex > 0)
    sp_info("image up to date", LS("image", tag), LS("dockerfile", bd.df),
            LI("entries", (long long)bd.c.n), LI("ms", sp_monotonic_ms() - t0));
  int rc = ex < 0 || (ex == 0 && build_send(d, &bd, tag, max_context, err) < 0) ? -1 : 0;
  cleanup_free char *df = steal_pointer(&bd.df);
  cleanup_free char *bd_ctx = steal_pointer(&bd.ctx);
  build_release(&bd);
  if (rc < 0)
    return -1;
  if (ex > 0) {
    *image = steal_pointer(&tag);
    return 0;
  }
  /* Podman's service may not say {"error"} for every failure: the tag must be there */
  ex = image_exists(d, tag, NULL, err);
  if (ex <= 0)
    return ex < 0 ? -1
                  : sp_error_code(err, "IMAGE_BUILD_FAILED", 502,
                                  "image build of %s ended without an image %s", df, tag);
  /* REPO:latest follows the newest build, for people at a terminal */
  cleanup_free char *e_tag = esc(tag);
  cleanup_free char *e_repo = esc(repo);
  cleanup_free char *tpath = xasprintf("/images/%s/tag?repo=%s&tag=latest", e_tag, e_repo);
  struct reply tr = {0};
  if (call(d, "POST", tpath, NULL, NULL, CALL_TIMEOUT_MS, &tr, NULL) == 0 && tr.status >= 300)
    sp_warn("cannot tag the image as latest", LS("image", tag), LI("status", tr.status));
  sbuf_release(&tr.body);
  sp_info("image built", LS("image", tag), LI("ms", sp_monotonic_ms() - t0));
  prune_old(d, repo, tag, bd_ctx);
  *image = steal_pointer(&tag);
  return 0;
}

/* ---- backend ops ---- */

static int docker_prepare(struct backend *b, const struct sp_pool *pool, const char *config_dir,
                          char **image, struct sp_error **err)
{
  struct docker *d = (struct docker *)b;
  if (!pool->image_is_dockerfile) {
    int ex = image_exists(d, pool->image, NULL, err);
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
  cleanup_free char *e = esc(ref);
  cleanup_free char *path = xasprintf("/containers/%s?force=1", e);
  struct reply r = {0};
  int rc = call(d, "DELETE", path, NULL, NULL, CALL_TIMEOUT_MS, &r, err);
  if (rc == 0 && r.status != 204 && r.status != 404 && r.status != 200)
    rc = reply_error(&r, false, err, "removing container %s", ref);
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
  cleanup_free char *e_name = esc(name);

  /* An instance of this name: running and ours, it is adopted; stopped,
   * it is stale and goes. */
  cleanup_free char *ipath = xasprintf("/containers/%s/json", e_name);
  cleanup_json cJSON *old = NULL;
  int ex = get_json(d, ipath, &old, err);
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
  struct reply r = {0};
  if (call(d, "POST", cpath, json, NULL, CALL_TIMEOUT_MS, &r, err) < 0) {
    sbuf_release(&r.body);
    return -1;
  }
  if (r.status != 201) {
    reply_error(&r, true, err, "creating the container of %s slot %d from %s", s->pool, s->slot,
                image);
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

  cleanup_free char *e_id = esc(cid->valuestring);
  cleanup_free char *spath = xasprintf("/containers/%s/start", e_id);
  struct reply sr = {0};
  int rc = call(d, "POST", spath, NULL, NULL, CALL_TIMEOUT_MS, &sr, err);
  if (rc == 0 && sr.status != 204 && sr.status != 304)
    rc = reply_error(&sr, false, err, "starting the container of %s slot %d", s->pool, s->slot);
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
  cleanup_free char *e = esc(id);
  cleanup_free char *path = xasprintf("/containers/%s/json", e);
  cleanup_json cJSON *j = NULL;
  struct sp_error *err = NULL;
  int rc = get_json(d, path, &j, &err);
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
  cleanup_free char *e = esc(id);
  cleanup_free char *path = xasprintf("/containers/%s/stop?t=%d", e, t);
  struct reply r = {0};
  int rc = call(d, "POST", path, NULL, NULL, t * 1000L + CALL_TIMEOUT_MS, &r, err);
  /* 304: already stopped; 404: already gone */
  if (rc == 0 && r.status != 204 && r.status != 304 && r.status != 404)
    rc = reply_error(&r, false, err, "stopping container %.12s", id);
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
  cleanup_free char *e = esc(fs);
  cleanup_free char *path = xasprintf("/containers/json?filters=%s", e);
  cleanup_json cJSON *list = NULL;
  int rc = get_json(d, path, &list, err);
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
  struct reply r = {0};
  if (call(d, "GET", "/_ping", NULL, NULL, PING_TIMEOUT_MS, &r, err) < 0 || r.status != 200) {
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
  if (get_json(d, "/version", &v, &verr) > 0 && get_json(d, "/info", &info, &verr) > 0) {
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
