/* The docker backend's image build (backend_docker_build, backend.h): the
 * context walked as .dockerignore says, its digest (the image's tag), the
 * tar sent to POST /build through libarchive, and the build's output
 * followed and logged.  The engine calls are backend_docker.c's
 * (docker_int.h). */
#include "docker_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dockerignore.h"
#include "error.h"
#include "json.h"
#include "log.h"
#include "sha256.h"
#include "str.h"
#include "tarball.h"
#include "util.h"

#define BUILD_TIMEOUT_MS (3600L * 1000) /* apt-get and npm inside a build */
#define BUILD_TAIL 8                    /* output lines quoted when a build fails */

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

static int walk(struct context *c, const struct dockerignore *ig, const char *root, const char *rel,
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
    bool skip = dockerignore_excludes(ig, r);
    if (S_ISDIR(st.st_mode)) {
      if (!skip && context_add(c, r, src, &st, err) < 0)
        return -1;
      if ((!skip || dockerignore_exception_inside(ig, r)) && walk(c, ig, root, r, max, err) < 0)
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

/* Fields are length-prefixed so that no two different inputs hash alike. */
static void digest_field(struct sha256 *s, const char *str)
{
  char n[24];
  int k = snprintf(n, sizeof n, "%zu:", strlen(str));
  sha256_add(s, n, (size_t)k);
  sha256_add(s, str, strlen(str));
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
  digest_field(s, "sandpit-build-context-v1");
  digest_field(s, dockerfile_rel);
  for (size_t i = 0; i < c->n; i++) {
    const struct ctx_entry *e = &c->v[i];
    char meta[64];
    snprintf(meta, sizeof meta, "%c%04o:%lld",
             S_ISDIR(e->st.st_mode) ? 'd' : S_ISLNK(e->st.st_mode) ? 'l' : 'f',
             (unsigned)(e->st.st_mode & 07777), (long long)e->st.st_size);
    digest_field(s, e->rel);
    digest_field(s, meta);
    if (e->link)
      digest_field(s, e->link);
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
  cleanup_free char *ignore_path = xasprintf("%s/.dockerignore", bd->ctx);
  struct dockerignore *ig = dockerignore_load(ignore_path, err);
  if (ig == NULL)
    return -1;
  int rc = walk(&bd->c, ig, bd->ctx, "", max, err);
  dockerignore_free(ig);
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
    digest_field(&s, bd->df_text);
  cleanup_strv char **bases = dockerfile_bases(bd->df_text);
  for (char **p = bases; *p; p++) {
    cleanup_free char *id = NULL;
    int ex = docker_image_exists(d, *p, &id, err);
    if (ex < 0)
      return -1;
    if (ex == 0)
      return sp_error_code(err, "IMAGE_NOT_FOUND", 404,
                           "image '%s' (FROM in %s) is not on this engine and no registry is "
                           "used: build it first%s",
                           *p, bd->df,
                           str_starts_with(*p, "sandpit/base:") ? " (scripts/build-base-image)" : "");
    digest_field(&s, *p);
    digest_field(&s, id);
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

  cleanup_free char *e_tag = docker_esc(tag);
  cleanup_free char *e_df = docker_esc(bd->df_rel);
  cleanup_json cJSON *labels = cJSON_CreateObject();
  cJSON_AddStringToObject(labels, "sandpit.context", bd->digest);
  cJSON_AddStringToObject(labels, "sandpit.context_dir", bd->ctx);
  cleanup_free char *labels_s = json_print(labels);
  cleanup_free char *e_labels = docker_esc(labels_s);
  cleanup_free char *path = xasprintf("/build?t=%s&dockerfile=%s&rm=1&forcerm=1&labels=%s", e_tag,
                                      e_df, e_labels);
  struct build_progress p = {.image = tag};
  struct docker_reply r = {.on_data = progress_data, .ud = &p};
  struct docker_upload up = {.fp = fp, .size = (curl_off_t)size};
  int rc = docker_call(d, "POST", path, NULL, &up, BUILD_TIMEOUT_MS, &r, err);
  if (p.pending.len)
    progress_object(&p, p.pending.buf, p.pending.len);
  if (p.line.len)
    progress_line(&p, p.line.buf, p.line.len);
  if (rc == 0 && r.status != 200) {
    /* refused before the build began: the reply is the engine's message */
    struct docker_reply er = {.status = r.status};
    sbuf_addstr(&er.body, sbuf_str(&p.raw));
    rc = docker_reply_error(&er, false, err, "image build of %s", bd->df);
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
  cleanup_free char *e = docker_esc(fs);
  cleanup_free char *path = xasprintf("/images/json?filters=%s", e);
  cleanup_json cJSON *list = NULL;
  struct sp_error *err = NULL;
  if (docker_get_json(d, path, &list, &err) <= 0) {
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
      cleanup_free char *en = docker_esc(name);
      cleanup_free char *dpath = xasprintf("/images/%s", en);
      struct docker_reply r = {0};
      if (docker_call(d, "DELETE", dpath, NULL, NULL, DOCKER_CALL_TIMEOUT_MS, &r, NULL) == 0 &&
          r.status == 200)
        sp_info("old image removed", LS("image", name));
      sbuf_release(&r.body);
    }
  }
}

int backend_docker_build(struct backend *b, const char *dockerfile, const char *context_dir,
                         const char *repo, uint64_t max_context, char **image,
                         struct sp_error **err)
{
  struct docker *d = docker_of(b);
  if (d == NULL)
    return sp_error_code(err, "INTERNAL_ERROR", 500, "backend_docker_build: not a docker backend");
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
  int ex = docker_image_exists(d, tag, NULL, err);
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
  ex = docker_image_exists(d, tag, NULL, err);
  if (ex <= 0)
    return ex < 0 ? -1
                  : sp_error_code(err, "IMAGE_BUILD_FAILED", 502,
                                  "image build of %s ended without an image %s", df, tag);
  /* REPO:latest follows the newest build, for people at a terminal */
  cleanup_free char *e_tag = docker_esc(tag);
  cleanup_free char *e_repo = docker_esc(repo);
  cleanup_free char *tpath = xasprintf("/images/%s/tag?repo=%s&tag=latest", e_tag, e_repo);
  struct docker_reply tr = {0};
  if (docker_call(d, "POST", tpath, NULL, NULL, DOCKER_CALL_TIMEOUT_MS, &tr, NULL) == 0 &&
      tr.status >= 300)
    sp_warn("cannot tag the image as latest", LS("image", tag), LI("status", tr.status));
  sbuf_release(&tr.body);
  sp_info("image built", LS("image", tag), LI("ms", sp_monotonic_ms() - t0));
  prune_old(d, repo, tag, bd_ctx);
  *image = steal_pointer(&tag);
  return 0;
}
