/* The docker backend against a real engine (scripts/docker-up starts one
 * for make test).  With no engine only the checks that need none run, and
 * the summary says SKIPPED with the reason; under CI=true that fails.
 *
 * Images: a tiny fixture context (built fresh each run, then removed) for
 * the build rules, and the real dockerfiles/SandboxDockerfile (from
 * SANDPIT_ROOT, cached by its context hash) for the instances. */
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend.h"
#include "check_main.h"
#include "scratch.h"
#include "config.h"
#include "error.h"
#include "json.h"
#include "str.h"
#include "util.h"

#define SANDBOX "t1"
#define TEST_MEM_MIB 256
#define TEST_VCPU 1.0
#define TEST_PIDS 512 /* what the backend derives from TEST_MEM_MIB */

/* ---- helpers ---- */

static void write_text(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  ck_assert_msg(f != NULL, "cannot write %s", path);
  fputs(text, f);
  fclose(f);
}

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
  sbuf_add(ud, data, size * n);
  return size * n;
}

/* An HTTP call over a unix socket; returns the status (0: no answer). */
static long http_unix(const char *sock, const char *method, const char *url, const char *json,
                      const char *sandbox, long timeout_ms, struct sbuf *out)
{
  CURL *c = curl_easy_init();
  struct curl_slist *h = NULL;
  if (json)
    h = curl_slist_append(h, "Content-Type: application/json");
  char hdr[128];
  if (sandbox) {
    snprintf(hdr, sizeof hdr, "X-Sandpit-Sandbox: %s", sandbox);
    h = curl_slist_append(h, hdr);
  }
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (json)
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return status;
}

/* The engine's view of something, as JSON (NULL when it answers 404). */
static cJSON *engine_get(const char *path)
{
  struct sbuf out = SBUF_INIT;
  char *url = xasprintf("http://docker/v1.41%s", path);
  long st = http_unix(backend_docker_socket(), "GET", url, NULL, NULL, 10000, &out);
  free(url);
  cJSON *j = st == 200 ? cJSON_Parse(sbuf_str(&out)) : NULL;
  sbuf_release(&out);
  return j;
}

static long engine_delete(const char *path)
{
  struct sbuf out = SBUF_INIT;
  char *url = xasprintf("http://docker/v1.41%s", path);
  long st = http_unix(backend_docker_socket(), "DELETE", url, NULL, NULL, 30000, &out);
  free(url);
  sbuf_release(&out);
  return st;
}

/* Run stderr into a file while fn runs, to read the log lines it wrote. */
static char *capture_stderr_begin(int *saved)
{
  char *path = xstrdup("/tmp/sandpit-dkt-log.XXXXXX");
  int fd = mkstemp(path);
  fflush(stderr);
  *saved = dup(2);
  dup2(fd, 2);
  close(fd);
  return path;
}

static char *capture_stderr_end(int saved, char *path)
{
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char *txt = sp_read_file(path, 64 << 20, NULL, NULL);
  unlink(path);
  free(path);
  return txt ? txt : xstrdup("");
}

static const char *root_dir(void)
{
  const char *r = getenv("SANDPIT_ROOT");
  return r && r[0] ? r : ".";
}

/* ---- no engine needed ---- */

START_TEST(unanswered_socket_is_503)
{
  struct sp_error *err = NULL;
  struct backend *b = backend_docker_new("/tmp/sandpit-no-such-engine.sock", &err);
  ck_assert_ptr_null(b);
  ck_assert_ptr_nonnull(err);
  ck_assert_str_eq(err->code, "BACKEND_UNAVAILABLE");
  ck_assert_int_eq(err->http_status, 503);
  ck_assert_msg(strstr(err->msg, "/tmp/sandpit-no-such-engine.sock") != NULL, "%s", err->msg);
  sp_error_free(err);
}
END_TEST

/* A socket that accepts connections and never answers: a bounded wait. */
START_TEST(silent_socket_times_out)
{
  char path[] = "/tmp/sandpit-silent.XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(path));
  char *sock = xasprintf("%s/s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(fd, 4), 0);
  int64_t t0 = sp_monotonic_ms();
  struct sp_error *err = NULL;
  struct backend *b = backend_docker_new(sock, &err);
  ck_assert_ptr_null(b);
  ck_assert_str_eq(err->code, "BACKEND_UNAVAILABLE");
  ck_assert_msg(sp_monotonic_ms() - t0 < 20000, "took %lld ms", (long long)(sp_monotonic_ms() - t0));
  sp_error_free(err);
  close(fd);
  unlink(sock);
  rmdir(path);
  free(sock);
}
END_TEST

START_TEST(socket_from_docker_host)
{
  const char *old = getenv("DOCKER_HOST");
  char *saved = old ? xstrdup(old) : NULL;
  setenv("DOCKER_HOST", "unix:///run/user/1000/podman/podman.sock", 1);
  ck_assert_str_eq(backend_docker_socket(), "/run/user/1000/podman/podman.sock");
  unsetenv("DOCKER_HOST");
  ck_assert_str_eq(backend_docker_socket(), "/var/run/docker.sock");
  setenv("DOCKER_HOST", "tcp://10.0.0.1:2375", 1);
  struct sp_error *err = NULL;
  ck_assert_ptr_null(backend_docker_new(NULL, &err));
  ck_assert_str_eq(err->code, "BACKEND_UNAVAILABLE");
  sp_error_free(err);
  if (saved)
    setenv("DOCKER_HOST", saved, 1);
  else
    unsetenv("DOCKER_HOST");
  free(saved);
}
END_TEST

/* ---- image builds ---- */

static const char *jstr(const cJSON *j, const char *key);

static struct backend *B;

static void pool_init(struct sp_pool *p, const char *name, char *image, bool dockerfile,
                      enum sp_network net)
{
  memset(p, 0, sizeof *p);
  p->class_name = (char *)name;
  p->image = image;
  p->image_is_dockerfile = dockerfile;
  p->max_instances = 4;
  p->backend = SP_BACKEND_DOCKER;
  p->network = net;
  p->itype.name = (char *)"test";
  p->itype.vcpu = TEST_VCPU;
  p->itype.memory_mib = TEST_MEM_MIB;
  p->itype.disk_mb = 2000;
}

static char fixture[64];

static void fixture_context(void)
{
  strcpy(fixture, "/tmp/sandpit-dkt-ctx.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(fixture));
  char *p;
#define FX(name, text)                                                                          \
  p = xasprintf("%s/%s", fixture, name);                                                        \
  write_text(p, text);                                                                          \
  free(p)
  FX("Dockerfile",
     "FROM sandpit/base:bookworm\n"
     "COPY . /ctx/\n"
     "RUN test -f /ctx/keep.txt && test ! -e /ctx/ignored.txt && test ! -e /ctx/junk \\\n"
     " && test ! -e /ctx/b.log && test -f /ctx/important.log && test -f /ctx/sub/deep/x.txt \\\n"
     " && test ! -e /ctx/sub/deep/y.tmp && echo fixture-ok\n");
  FX(".dockerignore", "# comment\nignored.txt\njunk/\n*.log\n!important.log\n**/*.tmp\n");
  FX("keep.txt", "keep\n");
  FX("ignored.txt", "ignored\n");
  FX("b.log", "log\n");
  FX("important.log", "important\n");
  p = xasprintf("%s/junk", fixture);
  mkdir(p, 0755);
  free(p);
  FX("junk/a", "junk\n");
  p = xasprintf("%s/sub/deep", fixture);
  struct sp_error *err = NULL;
  sp_mkdir_p(p, 0755, &err);
  free(p);
  FX("sub/deep/x.txt", "x\n");
  FX("sub/deep/y.tmp", "tmp\n");
  /* unique per run, so the first build really builds */
  char nonce[64];
  snprintf(nonce, sizeof nonce, "%lld-%d\n", (long long)sp_now_ms(), (int)getpid());
  FX("nonce", nonce);
#undef FX
}

static void build_setup(void)
{
  struct sp_error *err = NULL;
  B = backend_docker_new(NULL, &err);
  if (B == NULL) {
    fprintf(stderr, "engine gone: %s\n", err->msg);
    sp_error_free(err);
  }
}

/* Every sandpit/fixture image goes, this run's and any an aborted run left. */
static void build_teardown(void)
{
  cJSON *list = engine_get("/images/json?filters=%7B%22reference%22%3A%5B%22sandpit%2Ffixture%22%5D%7D");
  const cJSON *img;
  cJSON_ArrayForEach(img, list)
  {
    char *path = xasprintf("/images/%s?force=1", jstr(img, "Id"));
    engine_delete(path);
    free(path);
  }
  cJSON_Delete(list);
  rm_rf(fixture);
  backend_free(B);
  B = NULL;
}

START_TEST(fixture_builds_then_cached)
{
  ck_assert_ptr_nonnull(B);
  fixture_context();
  char *df = xasprintf("%s/Dockerfile", fixture);
  struct sp_pool pool;
  pool_init(&pool, "Fixture", df, true, SP_NETWORK_NONE);
  struct sp_error *err = NULL;
  char *img1 = NULL, *img2 = NULL, *img3 = NULL, *img4 = NULL;

  int saved;
  char *cap = capture_stderr_begin(&saved);
  int rc = B->ops->prepare(B, &pool, fixture, &img1, &err);
  char *log = capture_stderr_end(saved, cap);
  ck_assert_msg(rc == 0, "prepare: %s", err ? err->msg : "?");
  ck_assert_msg(str_starts_with(img1, "sandpit/fixture:") && strlen(img1) == 16 + 16, "%s", img1);
  /* progress lines went to the log; the RUN's checks of .dockerignore passed */
  ck_assert_msg(strstr(log, "\"msg\":\"image build\"") && strstr(log, "fixture-ok"), "%s", log);
  /* Docker says "Step 1/5 : FROM", Podman "STEP 1/4: FROM" */
  ck_assert_msg(strcasestr(log, "step 1/") && strstr(log, "FROM sandpit/base:bookworm"), "%s", log);
  free(log);

  /* unchanged, or changed only in ignored files or in times: not rebuilt */
  char *p = xasprintf("%s/ignored.txt", fixture);
  write_text(p, "changed, but ignored\n");
  free(p);
  p = xasprintf("%s/keep.txt", fixture);
  utimes(p, NULL);
  cap = capture_stderr_begin(&saved);
  rc = B->ops->prepare(B, &pool, fixture, &img2, &err);
  log = capture_stderr_end(saved, cap);
  ck_assert_msg(rc == 0, "prepare: %s", err ? err->msg : "?");
  ck_assert_str_eq(img1, img2);
  ck_assert_msg(strstr(log, "image up to date") && !strcasestr(log, "step 1/"), "%s", log);
  free(log);

  /* a changed file that is sent: a new tag */
  write_text(p, "keep, changed\n");
  free(p);
  rc = B->ops->prepare(B, &pool, fixture, &img3, &err);
  ck_assert_msg(rc == 0, "prepare: %s", err ? err->msg : "?");
  ck_assert_str_ne(img1, img3);
  /* the earlier build of the same context directory is gone */
  char *gone_path = xasprintf("/images/%s/json", img1);
  cJSON *gone = engine_get(gone_path);
  free(gone_path);
  ck_assert_msg(gone == NULL, "%s is still there after %s was built", img1, img3);

  /* a mode change is a change too (COPY keeps modes) */
  p = xasprintf("%s/keep.txt", fixture);
  chmod(p, 0600);
  free(p);
  rc = B->ops->prepare(B, &pool, fixture, &img4, &err);
  ck_assert_msg(rc == 0, "prepare: %s", err ? err->msg : "?");
  ck_assert_str_ne(img3, img4);

  /* REPO:latest follows the newest build */
  cJSON *latest = engine_get("/images/sandpit/fixture:latest/json");
  char *path = xasprintf("/images/%s/json", img4);
  cJSON *newest = engine_get(path);
  free(path);
  ck_assert_ptr_nonnull(latest);
  ck_assert_ptr_nonnull(newest);
  ck_assert_str_eq(cJSON_GetObjectItem(latest, "Id")->valuestring,
                   cJSON_GetObjectItem(newest, "Id")->valuestring);
  cJSON_Delete(latest);
  cJSON_Delete(newest);
  free(img1);
  free(img2);
  free(img3);
  free(img4);
  free(df);
}
END_TEST

START_TEST(context_over_limit_is_refused)
{
  ck_assert_ptr_nonnull(B);
  fixture_context();
  char *big = xasprintf("%s/big.bin", fixture);
  static char kib[1024];
  FILE *f = fopen(big, "w");
  for (int i = 0; i < 1024; i++)
    fwrite(kib, 1, sizeof kib, f); /* 1 MiB */
  fclose(f);
  char *df = xasprintf("%s/Dockerfile", fixture);
  char *img = NULL;
  struct sp_error *err = NULL;
  int rc = backend_docker_build(B, df, fixture, "sandpit/fixture", 256 << 10, &img, &err);
  ck_assert_int_eq(rc, -1);
  ck_assert_str_eq(err->code, "CONTEXT_TOO_LARGE");
  ck_assert_int_eq(err->http_status, 413);
  ck_assert_msg(strstr(err->msg, ".dockerignore") != NULL, "%s", err->msg);
  sp_error_free(err);
  free(df);
  free(big);
}
END_TEST

START_TEST(failing_build_says_why)
{
  ck_assert_ptr_nonnull(B);
  fixture_context();
  char *df = xasprintf("%s/Dockerfile", fixture);
  write_text(df, "FROM sandpit/base:bookworm\nRUN echo about to fail >&2 && false\n");
  char *img = NULL;
  struct sp_error *err = NULL;
  int rc = backend_docker_build(B, df, fixture, "sandpit/fixture", 0, &img, &err);
  ck_assert_int_eq(rc, -1);
  ck_assert_str_eq(err->code, "IMAGE_BUILD_FAILED");
  /* the engine's words (Docker: "returned a non-zero code", Podman: "exit
   * status 1") and the build's last output */
  ck_assert_msg(strstr(err->msg, "RUN echo about to fail") && strstr(err->msg, "| about to fail"),
                "%s", err->msg);
  sp_error_free(err);
  free(df);
}
END_TEST

START_TEST(missing_images_are_404)
{
  ck_assert_ptr_nonnull(B);
  struct sp_pool pool;
  struct sp_error *err = NULL;
  char *img = NULL;
  /* a plain name that is not on the engine: no registry is asked */
  pool_init(&pool, "Plain", (char *)"sandpit/no-such-image:1", false, SP_NETWORK_NONE);
  ck_assert_int_eq(B->ops->prepare(B, &pool, NULL, &img, &err), -1);
  ck_assert_str_eq(err->code, "IMAGE_NOT_FOUND");
  ck_assert_int_eq(err->http_status, 404);
  sp_error_free(err);
  err = NULL;
  /* a plain name that is */
  pool_init(&pool, "Plain", (char *)"sandpit/base:bookworm", false, SP_NETWORK_NONE);
  ck_assert_int_eq(B->ops->prepare(B, &pool, NULL, &img, &err), 0);
  ck_assert_str_eq(img, "sandpit/base:bookworm");
  free(img);
  /* a Dockerfile FROM an image that is not there */
  fixture_context();
  char *df = xasprintf("%s/Dockerfile", fixture);
  write_text(df, "FROM sandpit/no-such-base:1 AS b\nFROM b\n");
  pool_init(&pool, "Fixture", df, true, SP_NETWORK_NONE);
  ck_assert_int_eq(B->ops->prepare(B, &pool, fixture, &img, &err), -1);
  ck_assert_str_eq(err->code, "IMAGE_NOT_FOUND");
  ck_assert_msg(strstr(err->msg, "sandpit/no-such-base:1") != NULL, "%s", err->msg);
  sp_error_free(err);
  free(df);
}
END_TEST

/* ---- an instance of the real sandbox image ---- */

static struct {
  char dir[64];
  char *image;
  char *id;
  char *sock;
  char *setup_error;
  struct sp_pool pool;
} I;

static bool ping(const char *sock)
{
  struct sbuf out = SBUF_INIT;
  long st = http_unix(sock, "GET", "http://m/api/ping", NULL, NULL, 2000, &out);
  sbuf_release(&out);
  return st == 200;
}

static bool wait_ping(const char *sock, int ms)
{
  int64_t end = sp_monotonic_ms() + ms;
  while (sp_monotonic_ms() < end) {
    if (ping(sock))
      return true;
    usleep(100 * 1000);
  }
  return false;
}

/* Run a command in sandbox SANDBOX; the parsed reply, status in *status. */
static cJSON *execute(const char *sock, const char *cmd, long timeout_ms, long *status)
{
  cJSON *body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "command", cmd);
  json_add_int(body, "timeoutMs", timeout_ms);
  char *json = json_print(body);
  cJSON_Delete(body);
  struct sbuf out = SBUF_INIT;
  *status = http_unix(sock, "POST", "http://m/api/execute", json, SANDBOX, timeout_ms + 30000, &out);
  free(json);
  cJSON *j = cJSON_Parse(sbuf_str(&out));
  sbuf_release(&out);
  return j;
}

static const char *jstr(const cJSON *j, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static long long jint(const cJSON *j, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  return cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
}

static void instance_setup(void)
{
  struct sp_error *err = NULL;
  B = backend_docker_new(NULL, &err);
  if (B == NULL) {
    I.setup_error = xasprintf("engine: %s", err->msg);
    sp_error_free(err);
    return;
  }
  char *df = xasprintf("%s/dockerfiles/SandboxDockerfile", root_dir());
  char *ctx = realpath(root_dir(), NULL);
  pool_init(&I.pool, "Sandbox", df, true, SP_NETWORK_NONE);
  int64_t t0 = sp_monotonic_ms();
  if (B->ops->prepare(B, &I.pool, ctx, &I.image, &err) < 0) {
    I.setup_error = xasprintf("prepare: %s", err->msg);
    sp_error_free(err);
    free(ctx);
    return;
  }
  fprintf(stderr, "backend_docker: sandbox image %s ready in %lld ms\n", I.image,
          (long long)(sp_monotonic_ms() - t0));
  free(ctx);
  strcpy(I.dir, "/tmp/sandpit-dkt-inst.XXXXXX");
  if (mkdtemp(I.dir) == NULL) {
    I.setup_error = xasprintf("mkdtemp: %s", strerror(errno));
    return;
  }
  struct backend_spec s = {.pool = "Sandbox", .slot = 0, .dir = I.dir, .bin_dir = NULL,
                           .data_root = I.dir, .cfg = &I.pool, .image = I.image};
  t0 = sp_monotonic_ms();
  if (B->ops->start(B, &s, &I.id, &err) < 0) {
    I.setup_error = xasprintf("start: %s", err->msg);
    sp_error_free(err);
    return;
  }
  I.sock = xasprintf("%s/run/monitor.sock", I.dir);
  if (!wait_ping(I.sock, 30000)) {
    I.setup_error = xasprintf("the monitor in %s did not answer /api/ping within 30 s", I.id);
    return;
  }
  fprintf(stderr, "backend_docker: instance %.12s answering in %lld ms\n", I.id,
          (long long)(sp_monotonic_ms() - t0));
}

static void instance_teardown(void)
{
  if (B && I.id && B->ops->alive(B, I.id)) {
    struct sp_error *err = NULL;
    B->ops->stop(B, I.id, 2000, &err);
    sp_error_free(err);
  }
  rm_rf(I.dir);
  backend_free(B);
  B = NULL;
}

#define READY() ck_assert_msg(I.setup_error == NULL, "setup failed: %s", I.setup_error)

static bool has_string(const cJSON *arr, const char *s)
{
  const cJSON *v;
  cJSON_ArrayForEach(v, arr)
  {
    const char *x = cJSON_IsString(v) ? v->valuestring : "";
    if (str_starts_with(x, "CAP_"))
      x += 4;
    if (strcmp(x, str_starts_with(s, "CAP_") ? s + 4 : s) == 0)
      return true;
  }
  return false;
}

START_TEST(hardening_as_the_engine_sees_it)
{
  READY();
  char *path = xasprintf("/containers/%s/json", I.id);
  cJSON *c = engine_get(path);
  free(path);
  ck_assert_ptr_nonnull(c);
  const cJSON *hc = cJSON_GetObjectItem(c, "HostConfig");
  const cJSON *drop = cJSON_GetObjectItem(hc, "CapDrop");
  const cJSON *add = cJSON_GetObjectItem(hc, "CapAdd");
  /* Docker shows what was asked (ALL, then five back); Podman shows the
   * outcome (its defaults minus the five).  hardening_from_inside reads
   * the capabilities the processes actually have. */
  static const char *const want[] = {"SETUID", "SETGID", "CHOWN", "FOWNER", "KILL"};
  if (has_string(drop, "ALL")) {
    ck_assert_int_eq(cJSON_GetArraySize(drop), 1);
    ck_assert_int_eq(cJSON_GetArraySize(add), (int)SP_ARRAY_SIZE(want));
  }
  ck_assert_int_gt(cJSON_GetArraySize(drop), 0);
  for (size_t i = 0; i < SP_ARRAY_SIZE(want); i++)
    ck_assert_msg(!has_string(drop, want[i]), "CapDrop has %s", want[i]);
  for (size_t i = 0; i < SP_ARRAY_SIZE(want) && has_string(drop, "ALL"); i++)
    ck_assert_msg(has_string(add, want[i]), "CapAdd lacks %s", want[i]);
  ck_assert(has_string(cJSON_GetObjectItem(hc, "SecurityOpt"), "no-new-privileges"));
  ck_assert_int_eq(jint(hc, "PidsLimit"), TEST_PIDS);
  ck_assert_int_eq(jint(hc, "Memory"), (long long)TEST_MEM_MIB << 20);
  ck_assert_int_eq(jint(hc, "MemorySwap"), (long long)TEST_MEM_MIB << 20);
  ck_assert_int_eq(jint(hc, "NanoCpus"), (long long)(TEST_VCPU * 1e9));
  ck_assert_str_eq(jstr(hc, "NetworkMode"), "none");
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(hc, "ReadonlyRootfs")));
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(hc, "Privileged")) == false);
  const cJSON *tmpfs = cJSON_GetObjectItem(hc, "Tmpfs");
  ck_assert_ptr_nonnull(cJSON_GetObjectItem(tmpfs, "/tmp"));
  ck_assert_ptr_nonnull(cJSON_GetObjectItem(tmpfs, "/run"));

  const char *want_mounts[][2] = {{"run", "/run/sandpit"},
                                  {"data", "/var/lib/sandpit"},
                                  {"workspace", "/workspace"}};
  const cJSON *mounts = cJSON_GetObjectItem(c, "Mounts");
  ck_assert_int_eq(cJSON_GetArraySize(mounts), 3);
  for (size_t i = 0; i < 3; i++) {
    char *src = xasprintf("%s/%s", I.dir, want_mounts[i][0]);
    bool found = false;
    const cJSON *m;
    cJSON_ArrayForEach(m, mounts)
    {
      if (strcmp(jstr(m, "Destination"), want_mounts[i][1]) == 0) {
        found = true;
        ck_assert_str_eq(jstr(m, "Type"), "bind");
        ck_assert_str_eq(jstr(m, "Source"), src);
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(m, "RW")));
      }
    }
    ck_assert_msg(found, "no mount on %s", want_mounts[i][1]);
    free(src);
  }
  const cJSON *labels = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "Config"), "Labels");
  ck_assert_str_eq(jstr(labels, "sandpit.pool"), "Sandbox");
  ck_assert_str_eq(jstr(labels, "sandpit.slot"), "0");
  ck_assert_str_eq(jstr(labels, "sandpit.data_root"), I.dir);
  ck_assert(str_starts_with(jstr(c, "Name"), "/sandpit-sandbox-0-"));
  const cJSON *state = cJSON_GetObjectItem(c, "State");
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(state, "Running")));
  cJSON_Delete(c);
}
END_TEST

/* What a sandbox's process actually has, from inside. */
START_TEST(hardening_from_inside)
{
  READY();
  long st;
  cJSON *r = execute(I.sock,
                     "id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; "
                     "grep CapEff /proc/1/status; awk '$2 == \"/\" {print $4}' /proc/mounts | cut -d, -f1; "
                     "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null; "
                     "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; "
                     "ls /sys/class/net | tr '\\n' ' '; echo; whoami; echo \"$HOME\"",
                     10000, &st);
  ck_assert_int_eq(st, 200);
  const char *out = jstr(r, "stdout");
  ck_assert_msg(str_starts_with(out, "200000\n"), "%s", out);
  /* the sandbox user: no capabilities, a bounding set of the monitor's five, no new privileges */
  ck_assert_msg(strstr(out, "CapEff:\t0000000000000000\n"), "%s", out);
  ck_assert_msg(strstr(out, "CapBnd:\t00000000000000e9\n"), "%s", out);
  ck_assert_msg(strstr(out, "NoNewPrivs:\t1\n"), "%s", out);
  /* the monitor (pid 1): exactly CHOWN, FOWNER, KILL, SETGID, SETUID */
  ck_assert_msg(strstr(out, "CapEff:\t00000000000000e9\n"), "%s", out);
  ck_assert_msg(strstr(out, "\nro\n"), "root filesystem not read-only: %s", out);
  char *pids = xasprintf("\n%d\n", TEST_PIDS);
  ck_assert_msg(strstr(out, pids), "pids limit: %s", out);
  free(pids);
  char *mem = xasprintf("\n%lld\n", (long long)TEST_MEM_MIB << 20);
  ck_assert_msg(strstr(out, mem), "memory limit: %s", out);
  free(mem);
  ck_assert_msg(strstr(out, "\nlo \n"), "network interfaces: %s", out);
  ck_assert_msg(strstr(out, "\nsandbox200000\n/workspace/" SANDBOX "\n"), "user: %s", out);
  cJSON_Delete(r);
}
END_TEST

/* Run cmd until it succeeds (a saturated instance may not fork at once);
 * its stdout, or NULL after ms. */
static char *execute_retry(const char *sock, const char *cmd, int ms)
{
  int64_t end = sp_monotonic_ms() + ms;
  while (sp_monotonic_ms() < end) {
    long st;
    cJSON *r = execute(sock, cmd, 10000, &st);
    if (st == 200 && jint(r, "exitCode") == 0) {
      char *out = xstrdup(jstr(r, "stdout"));
      cJSON_Delete(r);
      return out;
    }
    cJSON_Delete(r);
    usleep(200 * 1000);
  }
  return NULL;
}

#define PIDS_FILES "/sys/fs/cgroup/pids.events /sys/fs/cgroup/pids/pids.events " \
                   "/sys/fs/cgroup/pids.current /sys/fs/cgroup/pids/pids.current"

START_TEST(fork_bomb_is_contained)
{
  READY();
  long st;
  /* POSIX names only: the monitor's bash runs as sh.  The command returns
   * at once; its processes go on forking in the background. */
  cJSON *r = execute(I.sock, "b(){ b|b& };b", 5000, &st);
  ck_assert_msg(st == 408 || st == 200, "status %ld", st);
  cJSON_Delete(r);
  usleep(1000 * 1000);
  /* the pids limit is what holds it, and the monitor still answers */
  ck_assert_msg(wait_ping(I.sock, 10000), "the monitor does not answer during a fork bomb");
  char *out = execute_retry(I.sock, "cat " PIDS_FILES " 2>/dev/null; true", 30000);
  ck_assert_msg(out != NULL, "no command ran during the fork bomb");
  const char *ev = strstr(out, "max ");
  ck_assert_msg(ev && atoll(ev + 4) > 0, "pids.max never hit: %s", out);
  free(out);
  /* the sandbox's own user ends it (kill -1: every process of that user) */
  bool calm = false;
  int64_t end = sp_monotonic_ms() + 60000;
  while (!calm && sp_monotonic_ms() < end) {
    r = execute(I.sock, "kill -9 -1", 10000, &st);
    cJSON_Delete(r);
    out = execute_retry(I.sock, "cat /sys/fs/cgroup/pids.current /sys/fs/cgroup/pids/pids.current 2>/dev/null; true",
                        10000);
    calm = out && atoll(out) < 32;
    free(out);
  }
  ck_assert_msg(calm, "the fork bomb could not be ended");
  ck_assert(ping(I.sock));
  out = execute_retry(I.sock, "echo alive", 10000);
  ck_assert_ptr_nonnull(out);
  ck_assert_str_eq(out, "alive\n");
  free(out);
}
END_TEST

START_TEST(memory_hog_is_contained)
{
  READY();
  long st;
  cJSON *r = execute(I.sock, "python3 -c 'x = bytearray(1 << 20) * 1024; print(len(x))'", 60000,
                     &st);
  ck_assert_int_eq(st, 200);
  /* killed (SIGKILL from the OOM killer: 137), never finished */
  ck_assert_msg(jint(r, "exitCode") == 137, "exit %lld, stdout %s, stderr %s", jint(r, "exitCode"),
                jstr(r, "stdout"), jstr(r, "stderr"));
  ck_assert(strstr(jstr(r, "stdout"), "1073741824") == NULL);
  cJSON_Delete(r);
  ck_assert(wait_ping(I.sock, 10000));
  r = execute(I.sock, "echo alive", 10000, &st);
  ck_assert_int_eq(st, 200);
  ck_assert_str_eq(jstr(r, "stdout"), "alive\n");
  cJSON_Delete(r);
}
END_TEST

START_TEST(writes_outside_workspace_and_tmp_fail)
{
  READY();
  long st;
  cJSON *r = execute(I.sock,
                     "for p in /x /etc/x /usr/x /usr/local/bin/x /root/x /var/x /var/lib/sandpit/x "
                     "/run/sandpit/x /run/x /workspace/x /home/x /opt/x; do "
                     "  if (echo bad > $p) 2>/dev/null; then echo \"WROTE $p\"; fi; done; "
                     "echo ok > /tmp/ok && echo ok > \"$HOME/ok\" && echo ok > /var/tmp/ok && echo fine",
                     10000, &st);
  ck_assert_int_eq(st, 200);
  ck_assert_str_eq(jstr(r, "stdout"), "fine\n");
  cJSON_Delete(r);
  ck_assert(ping(I.sock));
}
END_TEST

START_TEST(no_network_with_network_none)
{
  READY();
  long st = 0;
  cJSON *r = NULL;
  const char *out = "";
  /* only the apt mirror's host is ever tried; an earlier test's fork bomb
   * may still be dying in this instance, so a run that could not start
   * curl at all is tried again */
  for (int attempt = 0; attempt < 5; attempt++) {
    cJSON_Delete(r);
    r = execute(I.sock, "curl -sS -m 3 -o /dev/null http://deb.debian.org/debian/; echo \"rc=$?\"",
                20000, &st);
    out = jstr(r, "stdout");
    if (st == 200 && strstr(out, "rc="))
      break;
    sleep(1);
  }
  ck_assert_int_eq(st, 200);
  ck_assert_msg(strstr(out, "rc=") && strcmp(strstr(out, "rc="), "rc=0\n") != 0,
                "reached the network: %s %s", out, jstr(r, "stderr"));
  cJSON_Delete(r);
  ck_assert(ping(I.sock));
}
END_TEST

static void found_cb(void *ud, const char *pool, int slot, const char *id)
{
  struct sbuf *sb = ud;
  sbuf_addf(sb, "%s/%d/%s\n", pool, slot, id);
}

START_TEST(discover_adopt_stop)
{
  READY();
  struct sp_error *err = NULL;
  struct sbuf found = SBUF_INIT;
  ck_assert_int_eq(B->ops->discover(B, I.dir, found_cb, &found, &err), 0);
  char *want = xasprintf("Sandbox/0/%s\n", I.id);
  ck_assert_str_eq(sbuf_str(&found), want);
  free(want);
  sbuf_reset(&found);
  /* another data root sees none of ours */
  ck_assert_int_eq(B->ops->discover(B, "/tmp/sandpit-someone-else", found_cb, &found, &err), 0);
  ck_assert_str_eq(sbuf_str(&found), "");
  sbuf_release(&found);

  /* starting the slot again adopts the running container */
  struct backend_spec s = {.pool = "Sandbox", .slot = 0, .dir = I.dir, .data_root = I.dir,
                           .cfg = &I.pool, .image = I.image};
  char *id2 = NULL;
  ck_assert_int_eq(B->ops->start(B, &s, &id2, &err), 0);
  ck_assert_str_eq(id2, I.id);
  free(id2);
  ck_assert(ping(I.sock));

  ck_assert_int_eq(B->ops->alive(B, I.id), 1);
  ck_assert_int_eq(B->ops->stop(B, I.id, 3000, &err), 0);
  ck_assert_int_eq(B->ops->alive(B, I.id), 0);
  char *path = xasprintf("/containers/%s/json", I.id);
  cJSON *gone = engine_get(path);
  free(path);
  ck_assert_msg(gone == NULL, "the container is still there after stop()");
  /* stopping again is fine; the instance directory stays */
  ck_assert_int_eq(B->ops->stop(B, I.id, 1000, &err), 0);
  char *ws = xasprintf("%s/workspace/" SANDBOX, I.dir);
  struct stat sst;
  ck_assert_int_eq(stat(ws, &sst), 0);
  ck_assert_int_eq(sst.st_uid, 200000);
  free(ws);
}
END_TEST

/* network = "egress": a bridge with a route out (to the apt mirror only).
 * Also: an instance type with more vCPUs than the machine still starts. */
START_TEST(egress_reaches_the_mirror)
{
  READY();
  struct sp_pool pool = I.pool;
  pool.network = SP_NETWORK_EGRESS;
  pool.itype.vcpu = 1024;
  char dir[] = "/tmp/sandpit-dkt-egress.XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  struct backend_spec s = {.pool = "Sandbox", .slot = 1, .dir = dir, .data_root = dir,
                           .cfg = &pool, .image = I.image};
  struct sp_error *err = NULL;
  char *id = NULL;
  ck_assert_msg(B->ops->start(B, &s, &id, &err) == 0, "start: %s", err ? err->msg : "");
  char *path = xasprintf("/containers/%s/json", id);
  cJSON *c = engine_get(path);
  free(path);
  long long ncpu = jint(cJSON_GetObjectItem(c, "HostConfig"), "NanoCpus");
  ck_assert_msg(ncpu > 0 && ncpu <= sysconf(_SC_NPROCESSORS_ONLN) * 1000000000LL, "NanoCpus %lld", ncpu);
  ck_assert_str_eq(jstr(cJSON_GetObjectItem(c, "HostConfig"), "NetworkMode"), "bridge");
  cJSON_Delete(c);
  char *sock = xasprintf("%s/run/monitor.sock", dir);
  ck_assert(wait_ping(sock, 30000));
  long st;
  cJSON *r = execute(sock, "curl -sS -m 10 -o /dev/null -w '%{http_code}' http://deb.debian.org/debian/",
                     30000, &st);
  ck_assert_int_eq(st, 200);
  const char *code = jstr(r, "stdout");
  ck_assert_msg(code[0] == '2' || code[0] == '3', "egress: %s %s", code, jstr(r, "stderr"));
  cJSON_Delete(r);
  ck_assert_int_eq(B->ops->stop(B, id, 2000, &err), 0);
  free(id);
  free(sock);
  rm_rf(dir);
}
END_TEST

static Suite *backend_docker_suite(void)
{
  Suite *s = suite_create("backend_docker");
  check_add_tcase(s, "no engine needed", 60, NULL, NULL,
                  CHECK_TESTS(unanswered_socket_is_503, silent_socket_times_out,
                              socket_from_docker_host));
  const TTest *builds[] = {fixture_builds_then_cached, context_over_limit_is_refused,
                           failing_build_says_why, missing_images_are_404};
  const TTest *instance[] = {hardening_as_the_engine_sees_it, hardening_from_inside,
                             writes_outside_workspace_and_tmp_fail, no_network_with_network_none,
                             fork_bomb_is_contained, memory_hog_is_contained,
                             egress_reaches_the_mirror, discover_adopt_stop};

  struct sp_error *err = NULL;
  struct backend *b = backend_docker_new(NULL, &err);
  if (b == NULL) {
    /* Registered as nothing at all, so no pass is counted for them. */
    check_skip("%zu backend_docker tests that need a Docker engine: %s",
               SP_ARRAY_SIZE(builds) + SP_ARRAY_SIZE(instance), err->msg);
    sp_error_free(err);
    return s;
  }
  backend_free(b);

  check_add_tcase(s, "image builds", 600, build_setup, build_teardown, builds,
                  SP_ARRAY_SIZE(builds));
  TCase *t = check_add_tcase(s, "instance", 900, NULL, NULL, instance, SP_ARRAY_SIZE(instance));
  tcase_add_unchecked_fixture(t, instance_setup, instance_teardown);
  return s;
}

CHECK_MAIN(backend_docker_suite)
