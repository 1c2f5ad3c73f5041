/* sandpit-monitor: the file routes and trees as tar.  Every operation runs
 * with the sandbox user's file identity (sandbox_fs_enter), so the kernel
 * decides what a sandbox may touch. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fsops.h"
#include "json.h"
#include "log.h"
#include "monitor.h"
#include "sandbox.h"
#include "str.h"
#include "tarball.h"
#include "util.h"

#define READ_MAX (32u << 20)
#define WRITE_BODY_MAX (64u << 20)
#define LIST_MAX 100000
#define STREAM_CHUNK 65535
#define ARCHIVE_UPLOAD_MAX (4ull << 30)

/* The request's sandbox, parsed body, and session cwd. */
struct fctx {
  const struct sandbox *sb;
  cJSON *body;
  char *cwd;
};

static void fctx_release(struct fctx *c)
{
  cJSON_Delete(c->body);
  free(c->cwd);
}
#define cleanup_fctx __attribute__((cleanup(fctx_release)))

static int begin(struct http_req *r, struct fctx *c, struct sp_error **err)
{
  struct monitor *m = r->app;
  c->sb = monitor_sandbox_get(r, err);
  if (c->sb == NULL)
    return -1;
  /* cJSON cuts a string at an escaped NUL; refuse those outright. */
  if (r->body.len && (memmem(r->body.buf, r->body.len, "\\u0000", 6) != NULL ||
                      strcasestr(sbuf_str(&r->body), "\\u0000") != NULL))
    return sp_error_code(err, "VALIDATION_FAILED", 400,
                         "paths and fields must not contain NUL bytes");
  c->body = http_body_json(r, err);
  const char *sid = NULL;
  if (c->body == NULL || json_get_string(c->body, "sessionId", NULL, &sid, err) < 0)
    return -1;
  c->cwd = session_path(m->sandboxes, c->sb, sid, NULL, err);
  return c->cwd ? 0 : -1;
}

/* Path field `key`, resolved against the session's cwd and checked; NULL
 * with *err. */
static char *path_field(const struct fctx *c, const char *key, struct sp_error **err)
{
  const char *p;
  if (json_get_string(c->body, key, NULL, &p, err) < 0)
    return NULL;
  if (p == NULL || *p == '\0') {
    sp_error_code(err, "VALIDATION_FAILED", 400, "'%s' is required", key);
    return NULL;
  }
  char *abs = path_resolve(c->cwd, p);
  if (fsops_check_path(abs, strlen(abs), err) < 0) {
    free(abs);
    return NULL;
  }
  return abs;
}

/* The request's context and its path field `key`; NULL with *err. */
static char *begin_path(struct http_req *r, struct fctx *c, const char *key, struct sp_error **err)
{
  return begin(r, c, err) == 0 ? path_field(c, key, err) : NULL;
}

/* The "encoding" field: absent (NULL, when def is NULL), base64 or utf-8. */
static int encoding_field(const struct fctx *c, const char *def, const char **enc,
                          struct sp_error **err)
{
  if (json_get_string(c->body, "encoding", def, enc, err) < 0)
    return -1;
  if (*enc && strcmp(*enc, "base64") != 0 && strcmp(*enc, "utf-8") != 0 && strcmp(*enc, "utf8") != 0)
    return sp_error_code(err, "VALIDATION_FAILED", 400, "'encoding' must be utf-8 or base64");
  return 0;
}

/* An operation on the request's "path": it runs with the sandbox user's
 * file identity and adds its own fields to the success body, after "path". */
typedef int (*path_fn)(const struct fctx *c, const char *path, cJSON *reply, struct sp_error **err);

static void path_op(struct http_req *r, path_fn fn)
{
  cleanup_fctx struct fctx c = {0};
  cleanup_error struct sp_error *err = NULL;
  cleanup_free char *path = begin_path(r, &c, "path", &err);
  cleanup_json cJSON *j = json_success_new();
  if (path) {
    cJSON_AddStringToObject(j, "path", path);
    sandbox_fs_enter(c.sb);
    int rc = fn(&c, path, j, &err);
    sandbox_fs_leave(c.sb);
    if (rc == 0) {
      monitor_reply(r, j);
      return;
    }
  }
  http_reply_error(r, &err);
}

static int read_op(const struct fctx *c, const char *path, cJSON *j, struct sp_error **err)
{
  const char *enc = NULL;
  struct fs_file f = {0};
  if (encoding_field(c, NULL, &enc, err) < 0 || fsops_read(path, READ_MAX, &f, err) < 0)
    return -1;
  bool b64 = enc ? strcmp(enc, "base64") == 0 : !f.is_text;
  cleanup_free char *content = b64 ? b64_encode(f.data, f.len, NULL) : str_repair_utf8(f.data, f.len);
  cJSON_AddStringToObject(j, "content", content);
  cJSON_AddStringToObject(j, "encoding", b64 ? "base64" : "utf-8");
  cJSON_AddBoolToObject(j, "isBinary", b64);
  cJSON_AddStringToObject(j, "mimeType", f.mime);
  json_add_int(j, "size", (int64_t)f.len);
  fs_file_release(&f);
  return 0;
}

void api_read(struct http_req *r) { path_op(r, read_op); }

struct rstream {
  int fd;
  bool b64;
  char *meta; /* the first event, until it is out */
  struct sbuf carry;
  uint64_t read;
};

static void sse(struct sbuf *sb, cJSON *j)
{
  http_sse_event(sb, NULL, j);
  cJSON_Delete(j);
}

static int rstream_cb(void *ud, struct sbuf *out)
{
  struct rstream *s = ud;
  if (s->meta) {
    sbuf_addstr(out, s->meta);
    free(s->meta);
    s->meta = NULL;
    return HTTP_STREAM_MORE;
  }
  int rc = HTTP_STREAM_MORE;
  char chunk[STREAM_CHUNK];
  ssize_t n = read(s->fd, chunk, sizeof chunk);
  cJSON *j = cJSON_CreateObject();
  if (n < 0) {
    cJSON_AddStringToObject(j, "type", "error");
    cJSON_AddStringToObject(j, "error", strerror(errno));
    rc = HTTP_STREAM_END;
  } else if (n == 0) {
    if (s->carry.len) {
      cJSON *tail = cJSON_CreateObject();
      cJSON_AddStringToObject(tail, "type", "chunk");
      cleanup_free char *t = str_repair_utf8(s->carry.buf, s->carry.len);
      cJSON_AddStringToObject(tail, "data", t);
      sse(out, tail);
    }
    cJSON_AddStringToObject(j, "type", "complete");
    json_add_int(j, "bytesRead", (int64_t)s->read);
    rc = HTTP_STREAM_END;
  } else {
    s->read += (uint64_t)n;
    cJSON_AddStringToObject(j, "type", "chunk");
    if (s->b64) {
      /* each chunk decodes on its own, as the SDK's client expects */
      cleanup_free char *e = b64_encode(chunk, (size_t)n, NULL);
      cJSON_AddStringToObject(j, "data", e);
    } else {
      sbuf_add(&s->carry, chunk, (size_t)n);
      size_t end = s->carry.len;
      for (size_t back = 1; back <= 3 && back <= s->carry.len; back++) {
        unsigned char b = (unsigned char)s->carry.buf[s->carry.len - back];
        if ((b & 0xc0) == 0x80)
          continue;
        size_t need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
        if (need > back)
          end = s->carry.len - back;
        break;
      }
      cleanup_free char *t = str_repair_utf8(s->carry.buf, end);
      memmove(s->carry.buf, s->carry.buf + end, s->carry.len - end);
      s->carry.len -= end;
      cJSON_AddStringToObject(j, "data", t);
    }
  }
  sse(out, j);
  return rc;
}

static void rstream_free(void *ud)
{
  struct rstream *s = ud;
  close(s->fd);
  free(s->meta);
  sbuf_release(&s->carry);
  free(s);
}

void api_read_stream(struct http_req *r)
{
  cleanup_fctx struct fctx c = {0};
  cleanup_error struct sp_error *err = NULL;
  cleanup_free char *path = begin_path(r, &c, "path", &err);
  if (path == NULL) {
    http_reply_error(r, &err);
    return;
  }
  int fd = -1;
  struct stat st;
  sandbox_fs_enter(c.sb);
  int rc = fsops_open_read(path, &fd, &st, &err);
  char head[8192];
  ssize_t hn = rc == 0 ? pread(fd, head, sizeof head, 0) : 0;
  sandbox_fs_leave(c.sb);
  if (rc < 0) {
    /* errors of a read stream are events, as the SDK's server sends them */
    struct sbuf sb = SBUF_INIT;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "error");
    cJSON_AddStringToObject(j, "error", err->msg);
    cJSON_AddStringToObject(j, "code", err->code);
    sse(&sb, j);
    http_reply(r, 200, "text/event-stream", sb.buf, sb.len);
    sbuf_release(&sb);
    return;
  }
  bool is_text;
  const char *mime = fsops_mime_type(path, head, hn > 0 ? (size_t)hn : 0, &is_text);
  struct rstream *s = xcalloc(1, sizeof *s);
  s->fd = fd;
  s->b64 = !is_text;
  cJSON *meta = cJSON_CreateObject();
  cJSON_AddStringToObject(meta, "type", "metadata");
  cJSON_AddStringToObject(meta, "mimeType", mime);
  json_add_int(meta, "size", st.st_size);
  cJSON_AddBoolToObject(meta, "isBinary", s->b64);
  cJSON_AddStringToObject(meta, "encoding", s->b64 ? "base64" : "utf-8");
  struct sbuf mb = SBUF_INIT;
  sse(&mb, meta);
  s->meta = sbuf_detach(&mb, NULL);
  http_reply_stream(r, 200, "text/event-stream", rstream_cb, s, rstream_free);
}

/* The "content" field, decoded as its "encoding" says; NULL with *err. */
static char *content_field(const struct fctx *c, size_t *len, struct sp_error **err)
{
  const char *content = NULL, *enc;
  if (json_get_string(c->body, "content", NULL, &content, err) < 0)
    return NULL;
  if (content == NULL) {
    sp_error_code(err, "VALIDATION_FAILED", 400, "'content' is required");
    return NULL;
  }
  if (encoding_field(c, "utf-8", &enc, err) < 0)
    return NULL;
  *len = strlen(content);
  if (strcmp(enc, "base64") != 0)
    return xmemdup(content, *len);
  char *decoded;
  if (!b64_decode(content, *len, &decoded, len)) {
    sp_error_code(err, "VALIDATION_FAILED", 400, "'content' is not valid base64");
    return NULL;
  }
  return decoded;
}

static int write_op(const struct fctx *c, const char *path, cJSON *j, struct sp_error **err)
{
  (void)j;
  size_t len = 0;
  cleanup_free char *data = content_field(c, &len, err);
  return data ? fsops_write(path, data, len, true, err) : -1;
}

void api_write(struct http_req *r) { path_op(r, write_op); }

static int mkdir_op(const struct fctx *c, const char *path, cJSON *j, struct sp_error **err)
{
  bool rec = false;
  if (json_get_bool(c->body, "recursive", false, &rec, err) < 0 || fsops_mkdir(path, rec, err) < 0)
    return -1;
  cJSON_AddBoolToObject(j, "recursive", rec);
  return 0;
}

static int delete_op(const struct fctx *c, const char *path, cJSON *j, struct sp_error **err)
{
  (void)j;
  bool rec = false;
  if (json_get_bool(c->body, "recursive", false, &rec, err) < 0)
    return -1;
  return fsops_delete(path, rec, err);
}

void api_mkdir(struct http_req *r) { path_op(r, mkdir_op); }
void api_delete(struct http_req *r) { path_op(r, delete_op); }

static void rename_like(struct http_req *r, const char *from_key, const char *to_key)
{
  cleanup_fctx struct fctx c = {0};
  cleanup_error struct sp_error *err = NULL;
  cleanup_free char *from = begin_path(r, &c, from_key, &err);
  cleanup_free char *to = from ? path_field(&c, to_key, &err) : NULL;
  if (to == NULL) {
    http_reply_error(r, &err);
    return;
  }
  sandbox_fs_enter(c.sb);
  /* as mv does: into an existing directory */
  bool exists = false, is_dir = false;
  if (fsops_exists(to, &exists, &is_dir, NULL) == 0 && exists && is_dir) {
    const char *base = strrchr(from, '/');
    char *inside = xasprintf("%s/%s", to, base ? base + 1 : from);
    free(to);
    to = inside;
  }
  int rc = fsops_rename(from, to, &err);
  sandbox_fs_leave(c.sb);
  if (rc < 0) {
    http_reply_error(r, &err);
    return;
  }
  cleanup_json cJSON *j = json_success_new();
  cJSON_AddStringToObject(j, "path", from);
  cJSON_AddStringToObject(j, "newPath", to);
  monitor_reply(r, j);
}

void api_rename(struct http_req *r) { rename_like(r, "oldPath", "newPath"); }
void api_move(struct http_req *r) { rename_like(r, "sourcePath", "destinationPath"); }

/* list-files' "options": {recursive, includeHidden}. */
static int list_options(const struct fctx *c, bool *rec, bool *hidden, struct sp_error **err)
{
  const cJSON *opts = cJSON_GetObjectItemCaseSensitive(c->body, "options");
  if (opts && !cJSON_IsObject(opts) && !cJSON_IsNull(opts))
    return sp_error_code(err, "VALIDATION_FAILED", 400, "'options' must be an object");
  if (!cJSON_IsObject(opts))
    return 0;
  if (json_get_bool(opts, "recursive", false, rec, err) < 0 ||
      json_get_bool(opts, "includeHidden", false, hidden, err) < 0)
    return -1;
  return 0;
}

static int list_op(const struct fctx *c, const char *path, cJSON *j, struct sp_error **err)
{
  bool rec = false, hidden = false, truncated = false;
  cJSON *files = NULL;
  if (list_options(c, &rec, &hidden, err) < 0 ||
      (files = fsops_list(path, rec, hidden, LIST_MAX, &truncated, err)) == NULL)
    return -1;
  json_add_int(j, "count", cJSON_GetArraySize(files));
  cJSON_AddItemToObject(j, "files", files);
  if (truncated)
    cJSON_AddBoolToObject(j, "truncated", true);
  return 0;
}

static int exists_op(const struct fctx *c, const char *path, cJSON *j, struct sp_error **err)
{
  (void)c;
  bool exists = false, is_dir = false;
  if (fsops_exists(path, &exists, &is_dir, err) < 0)
    return -1;
  cJSON_AddBoolToObject(j, "exists", exists);
  if (exists)
    cJSON_AddBoolToObject(j, "isDirectory", is_dir);
  return 0;
}

void api_list_files(struct http_req *r) { path_op(r, list_op); }
void api_exists(struct http_req *r) { path_op(r, exists_op); }

/* ---- trees as tar ---- */

struct upload {
  int fd;
  uint64_t bytes;
};

static void upload_free(void *ud)
{
  struct upload *u = ud;
  if (u->fd >= 0)
    close(u->fd);
  free(u);
}

/* The archive's destination from ?path= (relative to the session's cwd). */
static char *archive_dir(struct http_req *r, const struct sandbox *sb, struct sp_error **err)
{
  struct monitor *m = r->app;
  const char *p = http_query(r, "path");
  if (p == NULL || *p == '\0') {
    sp_error_code(err, "VALIDATION_FAILED", 400, "?path= names the directory");
    return NULL;
  }
  char *abs = session_path(m->sandboxes, sb, http_query(r, "sessionId"), p, err);
  if (abs == NULL)
    return NULL;
  if (fsops_check_path(abs, strlen(abs), err) < 0) {
    free(abs);
    return NULL;
  }
  return abs;
}

/* The body is spooled to an unlinked file in the monitor's data directory
 * (where no sandbox can reach it), then extracted as the sandbox's user. */
static int archive_body(struct http_req *r, const char *data, size_t len, struct sp_error **err)
{
  struct monitor *m = r->app;
  struct upload *u = r->user;
  if (u == NULL) {
    u = xcalloc(1, sizeof *u);
    u->fd = open(m->data_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    r->user = u;
    r->user_free = upload_free;
    if (u->fd < 0)
      return sp_error_set(err, errno, "cannot spool the upload");
  }
  u->bytes += len;
  if (u->bytes > ARCHIVE_UPLOAD_MAX)
    return sp_error_code(err, "ARCHIVE_TOO_LARGE", 413, "uploads are limited to %llu bytes",
                         (unsigned long long)ARCHIVE_UPLOAD_MAX);
  if (sp_write_all(u->fd, data, len) < 0)
    return sp_error_set(err, errno, "cannot spool the upload");
  return 0;
}

void api_archive_put(struct http_req *r)
{
  cleanup_error struct sp_error *err = NULL;
  const struct sandbox *sb = monitor_sandbox_get(r, &err);
  cleanup_free char *dir = sb ? archive_dir(r, sb, &err) : NULL;
  struct upload *u = r->user;
  if (dir && (u == NULL || u->bytes == 0))
    sp_error_code(&err, "INVALID_ARCHIVE", 400, "the request body must be a tar archive");
  struct tar_stats st = {0};
  int rc = -1;
  if (err == NULL) {
    lseek(u->fd, 0, SEEK_SET);
    sandbox_fs_enter(sb);
    rc = tar_extract(u->fd, dir, NULL, &st, &err);
    sandbox_fs_leave(sb);
  }
  if (rc < 0) {
    http_reply_error(r, &err);
    return;
  }
  cleanup_json cJSON *j = json_success_new();
  cJSON_AddStringToObject(j, "path", dir);
  json_add_int(j, "entries", (int64_t)st.entries);
  json_add_int(j, "bytes", (int64_t)st.bytes);
  monitor_reply(r, j);
}

void api_archive_get(struct http_req *r)
{
  struct monitor *m = r->app;
  cleanup_error struct sp_error *err = NULL;
  const struct sandbox *sb = monitor_sandbox_get(r, &err);
  cleanup_free char *dir = sb ? archive_dir(r, sb, &err) : NULL;
  int fd = dir ? open(m->data_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600) : -1;
  if (dir && fd < 0)
    sp_error_set(&err, errno, "cannot make the archive");
  struct tar_stats st = {0};
  int rc = -1;
  if (fd >= 0) {
    sandbox_fs_enter(sb);
    rc = tar_create(dir, fd, &st, &err);
    sandbox_fs_leave(sb);
  }
  if (rc < 0) {
    if (fd >= 0)
      close(fd);
    http_reply_error(r, &err);
    return;
  }
  off_t size = lseek(fd, 0, SEEK_END);
  struct http_response *resp = http_response_fd(fd, (uint64_t)size);
  http_response_header(resp, "Content-Type", "application/x-tar");
  http_reply_response(r, 200, resp);
}

int api_archive_body(struct http_req *r, const char *data, size_t len, struct sp_error **err)
{
  return archive_body(r, data, len, err);
}
