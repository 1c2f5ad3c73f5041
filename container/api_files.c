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

static bool begin(struct http_req *r, struct fctx *c)
{
  struct monitor *m = r->app;
  memset(c, 0, sizeof *c);
  c->sb = monitor_sandbox_get(r);
  if (c->sb == NULL)
    return false;
  /* cJSON cuts a string at an escaped NUL; refuse those outright. */
  if (r->body.len && (memmem(r->body.buf, r->body.len, "\\u0000", 6) != NULL ||
                      strcasestr(sbuf_str(&r->body), "\\u0000") != NULL)) {
    http_reply_errorf(r, 400, "VALIDATION_FAILED", "paths and fields must not contain NUL bytes");
    return false;
  }
  c->body = http_body_json(r);
  if (c->body == NULL)
    return false;
  const char *sid = NULL;
  cleanup_error struct sp_error *err = NULL;
  if (json_get_string(c->body, "sessionId", NULL, &sid, &err) < 0) {
    http_reply_error(r, &err);
    return false;
  }
  struct session *se = session_acquire(m->sandboxes, c->sb, sid, &err);
  if (se == NULL) {
    http_reply_error(r, &err);
    return false;
  }
  c->cwd = xstrdup(se->cwd);
  session_release(m->sandboxes, se);
  return true;
}

/* A path field, resolved and checked; replies and returns NULL on error. */
static char *path_field(struct http_req *r, struct fctx *c, const char *key)
{
  const char *p;
  cleanup_error struct sp_error *err = NULL;
  if (json_get_string(c->body, key, NULL, &p, &err) < 0) {
    http_reply_error(r, &err);
    return NULL;
  }
  if (p == NULL || *p == '\0') {
    http_reply_errorf(r, 400, "VALIDATION_FAILED", "'%s' is required", key);
    return NULL;
  }
  char *abs = path_resolve(c->cwd, p);
  if (fsops_check_path(abs, strlen(abs), &err) < 0) {
    free(abs);
    http_reply_error(r, &err);
    return NULL;
  }
  return abs;
}

static void reply_ok_path(struct http_req *r, const char *key, const char *path,
                          const char *key2, const char *path2)
{
  cleanup_json cJSON *j = json_success_new();
  cJSON_AddStringToObject(j, key, path);
  if (key2)
    cJSON_AddStringToObject(j, key2, path2);
  json_add_timestamp(j);
  http_reply_json(r, 200, j);
}

void api_read(struct http_req *r)
{
  struct fctx c;
  if (!begin(r, &c))
    return;
  cleanup_free char *path = path_field(r, &c, "path");
  const char *enc = NULL;
  cleanup_error struct sp_error *err = NULL;
  if (path == NULL || json_get_string(c.body, "encoding", NULL, &enc, &err) < 0) {
    if (err)
      http_reply_error(r, &err);
    fctx_release(&c);
    return;
  }
  if (enc && strcmp(enc, "base64") != 0 && strcmp(enc, "utf-8") != 0 && strcmp(enc, "utf8") != 0) {
    http_reply_errorf(r, 400, "VALIDATION_FAILED", "'encoding' must be utf-8 or base64");
    fctx_release(&c);
    return;
  }
  struct fs_file f = {0};
  sandbox_fs_enter(c.sb);
  int rc = fsops_read(path, READ_MAX, &f, &err);
  sandbox_fs_leave(c.sb);
  if (rc < 0) {
    http_reply_error(r, &err);
    fctx_release(&c);
    return;
  }
  bool b64 = enc ? strcmp(enc, "base64") == 0 : !f.is_text;
  cleanup_free char *content = b64 ? b64_encode(f.data, f.len, NULL) : str_repair_utf8(f.data, f.len);
  cleanup_json cJSON *j = json_success_new();
  cJSON_AddStringToObject(j, "path", path);
  cJSON_AddStringToObject(j, "content", content);
  cJSON_AddStringToObject(j, "encoding", b64 ? "base64" : "utf-8");
  cJSON_AddBoolToObject(j, "isBinary", b64);
  cJSON_AddStringToObject(j, "mimeType", f.mime);
  json_add_int(j, "size", (int64_t)f.len);
  json_add_timestamp(j);
  http_reply_json(r, 200, j);
  fs_file_release(&f);
  fctx_release(&c);
}

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
  struct fctx c;
  if (!begin(r, &c))
    return;
  cleanup_free char *path = path_field(r, &c, "path");
  if (path == NULL) {
    fctx_release(&c);
    return;
  }
  cleanup_error struct sp_error *err = NULL;
  int fd = -1;
  struct stat st;
  sandbox_fs_enter(c.sb);
  int rc = fsops_open_read(path, &fd, &st, &err);
  char head[8192];
  ssize_t hn = rc == 0 ? pread(fd, head, sizeof head, 0) : 0;
  sandbox_fs_leave(c.sb);
  fctx_release(&c);
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

void api_write(struct http_req *r)
{
  struct fctx c;
  if (!begin(r, &c))
    return;
  cleanup_free char *path = path_field(r, &c, "path");
  const char *content = NULL, *enc = NULL;
  cleanup_error struct sp_error *err = NULL;
  if (path == NULL || json_get_string(c.body, "content", NULL, &content, &err) < 0 ||
      json_get_string(c.body, "encoding", "utf-8", &enc, &err) < 0) {
    if (err)
      http_reply_error(r, &err);
    fctx_release(&c);
    return;
  }
  if (content == NULL) {
    http_reply_errorf(r, 400, "VALIDATION_FAILED", "'content' is required");
    fctx_release(&c);
    return;
  }
  cleanup_free char *decoded = NULL;
  size_t len = strlen(content);
  const char *data = content;
  if (strcmp(enc, "base64") == 0) {
    if (!b64_decode(content, len, &decoded, &len)) {
      http_reply_errorf(r, 400, "VALIDATION_FAILED", "'content' is not valid base64");
      fctx_release(&c);
      return;
    }
    data = decoded;
  } else if (strcmp(enc, "utf-8") != 0 && strcmp(enc, "utf8") != 0) {
    http_reply_errorf(r, 400, "VALIDATION_FAILED", "'encoding' must be utf-8 or base64");
    fctx_release(&c);
    return;
  }
  sandbox_fs_enter(c.sb);
  int rc = fsops_write(path, data, len, true, &err);
  sandbox_fs_leave(c.sb);
  if (rc < 0)
    http_reply_error(r, &err);
  else
    reply_ok_path(r, "path", path, NULL, NULL);
  fctx_release(&c);
}

/* mkdir and delete: a path and a "recursive" flag, as the sandbox's user. */
static void path_flag_op(struct http_req *r, int (*op)(const char *, bool, struct sp_error **),
                         bool echo_flag)
{
  struct fctx c;
  if (!begin(r, &c))
    return;
  cleanup_free char *path = path_field(r, &c, "path");
  bool rec = false;
  cleanup_error struct sp_error *err = NULL;
  if (path == NULL || json_get_bool(c.body, "recursive", false, &rec, &err) < 0) {
    if (err)
      http_reply_error(r, &err);
    fctx_release(&c);
    return;
  }
  sandbox_fs_enter(c.sb);
  int rc = op(path, rec, &err);
  sandbox_fs_leave(c.sb);
  if (rc < 0) {
    http_reply_error(r, &err);
  } else {
    cleanup_json cJSON *j = json_success_new();
    cJSON_AddStringToObject(j, "path", path);
    if (echo_flag)
      cJSON_AddBoolToObject(j, "recursive", rec);
    json_add_timestamp(j);
    http_reply_json(r, 200, j);
  }
  fctx_release(&c);
}

void api_mkdir(struct http_req *r) { path_flag_op(r, fsops_mkdir, true); }
void api_delete(struct http_req *r) { path_flag_op(r, fsops_delete, false); }

static void rename_like(struct http_req *r, const char *from_key, const char *to_key)
{
  struct fctx c;
  if (!begin(r, &c))
    return;
  cleanup_free char *from = path_field(r, &c, from_key);
  cleanup_free char *to = from ? path_field(r, &c, to_key) : NULL;
  if (from == NULL || to == NULL) {
    fctx_release(&c);
    return;
  }
  cleanup_error struct sp_error *err = NULL;
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
  if (rc < 0)
    http_reply_error(r, &err);
  else
    reply_ok_path(r, "path", from, "newPath", to);
  fctx_release(&c);
}

void api_rename(struct http_req *r) { rename_like(r, "oldPath", "newPath"); }
void api_move(struct http_req *r) { rename_like(r, "sourcePath", "destinationPath"); }

void api_list_files(struct http_req *r)
{
  struct fctx c;
  if (!begin(r, &c))
    return;
  cleanup_free char *path = path_field(r, &c, "path");
  bool rec = false, hidden = false;
  cleanup_error struct sp_error *err = NULL;
  const cJSON *opts = cJSON_GetObjectItemCaseSensitive(c.body, "options");
  if (opts && !cJSON_IsObject(opts) && !cJSON_IsNull(opts)) {
    http_reply_errorf(r, 400, "VALIDATION_FAILED", "'options' must be an object");
    fctx_release(&c);
    return;
  }
  if (path == NULL ||
      (cJSON_IsObject(opts) && (json_get_bool(opts, "recursive", false, &rec, &err) < 0 ||
                                json_get_bool(opts, "includeHidden", false, &hidden, &err) < 0))) {
    if (err)
      http_reply_error(r, &err);
    fctx_release(&c);
    return;
  }
  bool truncated = false;
  sandbox_fs_enter(c.sb);
  cJSON *files = fsops_list(path, rec, hidden, LIST_MAX, &truncated, &err);
  sandbox_fs_leave(c.sb);
  if (files == NULL) {
    http_reply_error(r, &err);
  } else {
    cleanup_json cJSON *j = json_success_new();
    cJSON_AddStringToObject(j, "path", path);
    json_add_int(j, "count", cJSON_GetArraySize(files));
    cJSON_AddItemToObject(j, "files", files);
    if (truncated)
      cJSON_AddBoolToObject(j, "truncated", true);
    json_add_timestamp(j);
    http_reply_json(r, 200, j);
  }
  fctx_release(&c);
}

void api_exists(struct http_req *r)
{
  struct fctx c;
  if (!begin(r, &c))
    return;
  cleanup_free char *path = path_field(r, &c, "path");
  if (path == NULL) {
    fctx_release(&c);
    return;
  }
  cleanup_error struct sp_error *err = NULL;
  bool exists = false, is_dir = false;
  sandbox_fs_enter(c.sb);
  int rc = fsops_exists(path, &exists, &is_dir, &err);
  sandbox_fs_leave(c.sb);
  if (rc < 0) {
    http_reply_error(r, &err);
  } else {
    cleanup_json cJSON *j = json_success_new();
    cJSON_AddStringToObject(j, "path", path);
    cJSON_AddBoolToObject(j, "exists", exists);
    if (exists)
      cJSON_AddBoolToObject(j, "isDirectory", is_dir);
    json_add_timestamp(j);
    http_reply_json(r, 200, j);
  }
  fctx_release(&c);
}

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
  struct session *se = session_acquire(m->sandboxes, sb, http_query(r, "sessionId"), err);
  if (se == NULL)
    return NULL;
  char *abs = path_resolve(se->cwd, p);
  session_release(m->sandboxes, se);
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
  const struct sandbox *sb = monitor_sandbox_get(r);
  if (sb == NULL)
    return;
  cleanup_error struct sp_error *err = NULL;
  cleanup_free char *dir = archive_dir(r, sb, &err);
  struct upload *u = r->user;
  if (dir == NULL) {
    http_reply_error(r, &err);
    return;
  }
  if (u == NULL || u->bytes == 0) {
    http_reply_errorf(r, 400, "INVALID_ARCHIVE", "the request body must be a tar archive");
    return;
  }
  lseek(u->fd, 0, SEEK_SET);
  struct tar_stats st = {0};
  sandbox_fs_enter(sb);
  int rc = tar_extract(u->fd, dir, NULL, &st, &err);
  sandbox_fs_leave(sb);
  if (rc < 0) {
    http_reply_error(r, &err);
    return;
  }
  cleanup_json cJSON *j = json_success_new();
  cJSON_AddStringToObject(j, "path", dir);
  json_add_int(j, "entries", (int64_t)st.entries);
  json_add_int(j, "bytes", (int64_t)st.bytes);
  json_add_timestamp(j);
  http_reply_json(r, 200, j);
}

void api_archive_get(struct http_req *r)
{
  struct monitor *m = r->app;
  const struct sandbox *sb = monitor_sandbox_get(r);
  if (sb == NULL)
    return;
  cleanup_error struct sp_error *err = NULL;
  cleanup_free char *dir = archive_dir(r, sb, &err);
  if (dir == NULL) {
    http_reply_error(r, &err);
    return;
  }
  int fd = open(m->data_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    sp_error_set(&err, errno, "cannot make the archive");
    http_reply_error(r, &err);
    return;
  }
  struct tar_stats st = {0};
  sandbox_fs_enter(sb);
  int rc = tar_create(dir, fd, &st, &err);
  sandbox_fs_leave(sb);
  if (rc < 0) {
    close(fd);
    http_reply_error(r, &err);
    return;
  }
  off_t size = lseek(fd, 0, SEEK_END);
  struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64((uint64_t)size, fd, 0);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-tar");
  http_reply_response(r, 200, resp);
}

int api_archive_body(struct http_req *r, const char *data, size_t len, struct sp_error **err)
{
  return archive_body(r, data, len, err);
}
