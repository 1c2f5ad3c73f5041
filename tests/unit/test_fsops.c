#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "scratch.h"
#include "error.h"
#include "fsops.h"
#include "json.h"
#include "util.h"

static void setup(void)
{
  umask(022);
  scratch_make("sp-fsops");
}

static void teardown(void)
{
  setfsuid(getuid());
  setfsgid(getgid());
  rm_rf(scratch);
}

static void puts_(const char *path, const char *s) { put(path, s, strlen(s)); }

static void assert_code(struct sp_error *err, const char *code, int status)
{
  ck_assert_ptr_nonnull(err);
  ck_assert_str_eq(err->code, code);
  ck_assert_int_eq(err->http_status, status);
}

/* rc is -1 and err has this code and status, its message holding each of the
 * strings up to NULL; err is then freed and reset. */
static void __attribute__((sentinel)) expect_fail(int rc, struct sp_error **err,
                                                  const char *code, int status, ...)
{
  ck_assert_int_eq(rc, -1);
  assert_code(*err, code, status);
  va_list ap;
  va_start(ap, status);
  for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
    ck_assert_msg(strstr((*err)->msg, s) != NULL, "\"%s\" lacks \"%s\"", (*err)->msg, s);
  va_end(ap);
  sp_error_free(*err);
  *err = NULL;
}

/* The error's context.<key> string, or NULL. */
static const char *ctx_str(struct sp_error *err, const char *key)
{
  cJSON *v = cJSON_GetObjectItemCaseSensitive(err->context, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* err says "<what> not found: <path>" and names the path in its context;
 * it is then freed and reset. */
static void expect_not_found(struct sp_error **err, const char *what, const char *path)
{
  assert_code(*err, "FILE_NOT_FOUND", 404);
  char want[PATH_MAX + 32];
  snprintf(want, sizeof want, "%s not found: %s", what, path);
  ck_assert_str_eq((*err)->msg, want);
  ck_assert_str_eq(ctx_str(*err, "path"), path);
  sp_error_free(*err);
  *err = NULL;
}

static double ctx_num(struct sp_error *err, const char *key)
{
  cJSON *v = cJSON_GetObjectItemCaseSensitive(err->context, key);
  ck_assert_msg(cJSON_IsNumber(v), "context.%s is not a number", key);
  return v->valuedouble;
}

static size_t count_entries(const char *dir)
{
  size_t n = 0;
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
      n++;
  closedir(d);
  return n;
}

/* Act as an unprivileged user on the filesystem (root: fsuid 65534, which
 * also drops CAP_DAC_OVERRIDE; otherwise we already are one). */
static void become_nobody(void)
{
  if (getuid() != 0)
    return;
  setfsgid(65534);
  setfsuid(65534);
  ck_assert_int_eq(setfsuid((uid_t)-1), 65534);
}

static void become_self(void)
{
  setfsuid(getuid());
  setfsgid(getgid());
}

/* A directory the unprivileged identity cannot enter: root-owned 0700 when
 * we are root, mode 0 otherwise. */
static const char *locked_dir(void)
{
  const char *d = P("locked");
  ck_assert_int_eq(mkdir(d, 0700), 0);
  puts_(P("locked/f.txt"), "secret");
  if (getuid() != 0)
    chmod(d, 0);
  return d;
}

/* ---- check_path -------------------------------------------------------- */

START_TEST(check_path_rules)
{
  struct sp_error *err = NULL;
  ck_assert_int_eq(fsops_check_path("/x", 2, &err), 0);
  expect_fail(fsops_check_path("", 0, &err), &err, "VALIDATION_FAILED", 400, NULL);

  expect_fail(fsops_check_path("a/b", 3, &err), &err, "VALIDATION_FAILED", 400, "a/b", NULL);

  expect_fail(fsops_check_path("/a\0b", 4, &err), &err, "VALIDATION_FAILED", 400, "NUL", NULL);

  char *long_path = xmalloc(FSOPS_PATH_MAX + 2);
  memset(long_path, 'a', FSOPS_PATH_MAX + 1);
  long_path[0] = '/';
  long_path[FSOPS_PATH_MAX + 1] = '\0';
  ck_assert_int_eq(fsops_check_path(long_path, FSOPS_PATH_MAX, &err), 0);
  expect_fail(fsops_check_path(long_path, FSOPS_PATH_MAX + 1, &err), &err, "VALIDATION_FAILED", 400,
              NULL);
  free(long_path);
}
END_TEST

/* ---- MIME -------------------------------------------------------------- */

static void expect_mime(const char *path, const char *head, size_t len, const char *mime,
                        bool text)
{
  bool got;
  ck_assert_str_eq(fsops_mime_type(path, head, len, &got), mime);
  ck_assert_msg(got == text, "%s: text %d", path, got);
}

START_TEST(mime_by_extension_and_sniff)
{
  /* By extension, whatever the content. */
  static const char *const text_ext[][2] = {
      {"/w/a.json", "application/json"},
      {"/w/App.TSX", "text/tsx"},
      {"/w/x.svg", "image/svg+xml"},
      {"/w/run.sh", "application/x-sh"},
  };
  for (size_t i = 0; i < SP_ARRAY_SIZE(text_ext); i++)
    expect_mime(text_ext[i][0], "", 0, text_ext[i][1], true);
  expect_mime("/w/logo.PNG", "text", 4, "image/png", false);
  expect_mime("/w/f.woff2", "", 0, "font/woff2", false);
  expect_mime("/w/m.wasm", "", 0, "application/wasm", false);

  /* No or unknown extension: sniff.  A dotfile has no extension. */
  static const struct {
    const char *path, *head;
    size_t len;
    const char *mime;
    bool text;
  } sniffed[] = {
      {"/w/Makefile", "all:\n", 5, "text/plain", true},
      {"/w/.bashrc", "h\xc3\xa9", 3, "text/plain", true},
      {"/w/blob", "a\0b", 3, "application/octet-stream", false},
      {"/w/latin1.xyz", "caf\xe9!", 5, "application/octet-stream", false},
      {"/w/empty", "", 0, "text/plain", true},
  };
  for (size_t i = 0; i < SP_ARRAY_SIZE(sniffed); i++)
    expect_mime(sniffed[i].path, sniffed[i].head, sniffed[i].len, sniffed[i].mime,
                sniffed[i].text);
  bool text;

  /* Only the first 8 KiB count, and a sequence cut at that boundary is not
   * held against the file. */
  char big[9000];
  memset(big, 'x', sizeof big);
  big[8191] = '\xc3'; /* "e-acute" split by the 8 KiB boundary */
  big[8192] = '\xa9';
  big[8500] = '\0';
  ck_assert_str_eq(fsops_mime_type("/w/big", big, sizeof big, &text),
                   "text/plain");
  ck_assert(text);
  big[100] = '\0';
  fsops_mime_type("/w/big", big, sizeof big, &text);
  ck_assert(!text);
}
END_TEST

/* ---- read -------------------------------------------------------------- */

START_TEST(read_text_and_binary)
{
  struct sp_error *err = NULL;
  struct fs_file f;
  puts_(P("a.txt"), "hello\n");
  ck_assert_int_eq(fsops_read(P("a.txt"), 1 << 20, &f, &err), 0);
  ck_assert_uint_eq(f.len, 6);
  ck_assert_mem_eq(f.data, "hello\n", 6);
  ck_assert_str_eq(f.mime, "text/plain");
  ck_assert(f.is_text);
  fs_file_release(&f);

  puts_(P("p.json"), "{\"a\":1}");
  ck_assert_int_eq(fsops_read(P("p.json"), 1 << 20, &f, &err), 0);
  ck_assert_str_eq(f.data, "{\"a\":1}");
  ck_assert_str_eq(f.mime, "application/json");
  ck_assert(f.is_text);
  fs_file_release(&f);

  static const unsigned char png[] = {0x89, 'P', 'N', 'G', 0, 0, 0xff, 0x10};
  put(P("i.png"), png, sizeof png);
  ck_assert_int_eq(fsops_read(P("i.png"), 1 << 20, &f, &err), 0);
  ck_assert_uint_eq(f.len, sizeof png);
  ck_assert_mem_eq(f.data, png, sizeof png);
  ck_assert_str_eq(f.mime, "image/png");
  ck_assert(!f.is_text);
  fs_file_release(&f);

  /* Textual type, but not UTF-8: the content must go out as base64. */
  puts_(P("l.txt"), "caf\xe9");
  ck_assert_int_eq(fsops_read(P("l.txt"), 1 << 20, &f, &err), 0);
  ck_assert_str_eq(f.mime, "text/plain");
  ck_assert(!f.is_text);
  fs_file_release(&f);

  put(P("noext"), "a\0b", 3);
  ck_assert_int_eq(fsops_read(P("noext"), 1 << 20, &f, &err), 0);
  ck_assert_uint_eq(f.len, 3);
  ck_assert_str_eq(f.mime, "application/octet-stream");
  ck_assert(!f.is_text);
  fs_file_release(&f);

  put(P("empty"), "", 0);
  ck_assert_int_eq(fsops_read(P("empty"), 0, &f, &err), 0);
  ck_assert_uint_eq(f.len, 0);
  ck_assert_str_eq(f.data, "");
  ck_assert(f.is_text);
  fs_file_release(&f);

  /* Exactly at the limit is fine. */
  puts_(P("ten"), "0123456789");
  ck_assert_int_eq(fsops_read(P("ten"), 10, &f, &err), 0);
  fs_file_release(&f);
  ck_assert_ptr_null(err);
}
END_TEST

START_TEST(read_refusals)
{
  struct sp_error *err = NULL;
  struct fs_file f;
  ck_assert_int_eq(fsops_read(P("missing"), 100, &f, &err), -1);
  expect_not_found(&err, "File", P("missing"));

  expect_fail(fsops_read(scratch, 100, &f, &err), &err, "IS_DIRECTORY", 400, NULL);

  puts_(P("ten"), "0123456789");
  ck_assert_int_eq(fsops_read(P("ten"), 5, &f, &err), -1);
  assert_code(err, "FILE_TOO_LARGE", 413);
  ck_assert_ptr_nonnull(strstr(err->msg, "10 bytes"));
  ck_assert_ptr_nonnull(strstr(err->msg, "limit is 5 bytes"));
  ck_assert_ptr_nonnull(strstr(err->msg, P("ten")));
  ck_assert_str_eq(ctx_str(err, "path"), P("ten"));
  ck_assert(ctx_num(err, "actualSize") == 10);
  ck_assert(ctx_num(err, "maxSize") == 5);
  sp_error_free(err);
  err = NULL;

  expect_fail(fsops_read("/dev/null", 5, &f, &err), &err, "NOT_REGULAR_FILE", 400,
              "character device", NULL);
}
END_TEST

START_TEST(read_fifo_does_not_hang)
{
  struct sp_error *err = NULL;
  ck_assert_int_eq(mkfifo(P("fifo"), 0644), 0);
  alarm(5); /* a hang kills the test instead of the suite */
  struct fs_file f;
  expect_fail(fsops_read(P("fifo"), 100, &f, &err), &err, "NOT_REGULAR_FILE", 400, "FIFO",
              P("fifo"), NULL);

  int fd = -1;
  struct stat st;
  ck_assert_int_eq(fsops_open_read(P("fifo"), &fd, &st, &err), -1);
  assert_code(err, "NOT_REGULAR_FILE", 400);
  ck_assert_int_eq(fd, -1);
  sp_error_free(err);
  alarm(0);
}
END_TEST

START_TEST(open_read_streams)
{
  struct sp_error *err = NULL;
  puts_(P("s.txt"), "streamed");
  int fd = -1;
  struct stat st;
  ck_assert_int_eq(fsops_open_read(P("s.txt"), &fd, &st, &err), 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(st.st_size, 8);
  ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  char buf[16];
  ck_assert_int_eq(read(fd, buf, sizeof buf), 8);
  ck_assert_mem_eq(buf, "streamed", 8);
  close(fd);

  expect_fail(fsops_open_read(scratch, &fd, &st, &err), &err, "IS_DIRECTORY", 400, NULL);
  ck_assert_int_eq(fsops_open_read(P("nope"), &fd, &st, &err), -1);
  assert_code(err, "FILE_NOT_FOUND", 404);
  sp_error_free(err);
}
END_TEST

/* ---- write ------------------------------------------------------------- */

START_TEST(write_new_and_overwrite)
{
  struct sp_error *err = NULL;
  ck_assert_int_eq(fsops_write(P("n.txt"), "abc", 3, false, &err), 0);
  size_t len;
  char *s = slurp(P("n.txt"), &len);
  ck_assert_uint_eq(len, 3);
  ck_assert_str_eq(s, "abc");
  free(s);
  struct stat st;
  ck_assert_int_eq(stat(P("n.txt"), &st), 0);
  ck_assert_int_eq(st.st_mode & 07777, 0644);

  /* Overwrite keeps the mode; binary content is exact. */
  chmod(P("n.txt"), 0600);
  static const char bin[] = {'x', 0, 'y', '\xff', 0};
  ck_assert_int_eq(fsops_write(P("n.txt"), bin, sizeof bin, false, &err), 0);
  assert_file_bytes(P("n.txt"), bin, sizeof bin);
  ck_assert_int_eq(stat(P("n.txt"), &st), 0);
  ck_assert_int_eq(st.st_mode & 07777, 0600);

  chmod(P("n.txt"), 0755);
  ck_assert_int_eq(fsops_write(P("n.txt"), "", 0, false, &err), 0);
  ck_assert_int_eq(stat(P("n.txt"), &st), 0);
  ck_assert_int_eq(st.st_size, 0);
  ck_assert_int_eq(st.st_mode & 07777, 0755);

  /* Under a umask of 077 a new file is 0600. */
  umask(077);
  ck_assert_int_eq(fsops_write(P("u.txt"), "u", 1, false, &err), 0);
  ck_assert_int_eq(stat(P("u.txt"), &st), 0);
  ck_assert_int_eq(st.st_mode & 07777, 0600);
  umask(022);

  /* No temporary files are left behind. */
  ck_assert_uint_eq(count_entries(scratch), 2);
  ck_assert_ptr_null(err);
}
END_TEST

START_TEST(write_parents_and_refusals)
{
  struct sp_error *err = NULL;
  expect_fail(fsops_write(P("a/b/c.txt"), "deep", 4, false, &err), &err, "FILE_NOT_FOUND", 404,
              NULL);
  ck_assert(!exists_l(P("a")));

  ck_assert_int_eq(fsops_write(P("a/b/c.txt"), "deep", 4, true, &err), 0);
  assert_file_text(P("a/b/c.txt"), "deep");
  struct stat st;
  ck_assert_int_eq(stat(P("a/b"), &st), 0);
  ck_assert(S_ISDIR(st.st_mode));
  ck_assert_int_eq(st.st_mode & 07777, 0755);

  expect_fail(fsops_write(P("a/b"), "x", 1, false, &err), &err, "IS_DIRECTORY", 400, NULL);
  ck_assert_int_eq(fsops_write(P("new/"), "x", 1, true, &err), -1);
  assert_code(err, "IS_DIRECTORY", 400);
  sp_error_free(err);
  err = NULL;

  /* A file where a parent directory should be. */
  expect_fail(fsops_write(P("a/b/c.txt/d"), "x", 1, true, &err), &err, "NOT_DIRECTORY", 400, NULL);
}
END_TEST

START_TEST(write_replaces_symlink_not_target)
{
  struct sp_error *err = NULL;
  puts_(P("target.txt"), "original");
  chmod(P("target.txt"), 0640);
  ck_assert_int_eq(symlink(P("target.txt"), P("link")), 0);
  ck_assert_int_eq(fsops_write(P("link"), "new", 3, false, &err), 0);
  assert_file_text(P("target.txt"), "original");
  struct stat st;
  ck_assert_int_eq(lstat(P("link"), &st), 0);
  ck_assert(S_ISREG(st.st_mode));
  ck_assert_int_eq(st.st_mode & 07777, 0640); /* the mode it pointed to */
  assert_file_text(P("link"), "new");

  /* A dangling symlink is replaced too. */
  ck_assert_int_eq(symlink(P("nowhere"), P("dangling")), 0);
  ck_assert_int_eq(fsops_write(P("dangling"), "d", 1, false, &err), 0);
  ck_assert_int_eq(lstat(P("dangling"), &st), 0);
  ck_assert(S_ISREG(st.st_mode));
  ck_assert(!exists_l(P("nowhere")));

  /* A symlink to a directory is a directory. */
  mkdir(P("d"), 0755);
  ck_assert_int_eq(symlink(P("d"), P("dlink")), 0);
  expect_fail(fsops_write(P("dlink"), "x", 1, false, &err), &err, "IS_DIRECTORY", 400, NULL);
}
END_TEST

/* ---- mkdir ------------------------------------------------------------- */

START_TEST(mkdir_plain_and_recursive)
{
  struct sp_error *err = NULL;
  ck_assert_int_eq(fsops_mkdir(P("d"), false, &err), 0);
  struct stat st;
  ck_assert_int_eq(stat(P("d"), &st), 0);
  ck_assert(S_ISDIR(st.st_mode));
  ck_assert_int_eq(st.st_mode & 07777, 0755);

  expect_fail(fsops_mkdir(P("d"), false, &err), &err, "FILE_EXISTS", 409, P("d"), NULL);

  expect_fail(fsops_mkdir(P("x/y/z"), false, &err), &err, "FILE_NOT_FOUND", 404, NULL);

  ck_assert_int_eq(fsops_mkdir(P("x//y/z/"), true, &err), 0);
  ck_assert_int_eq(stat(P("x/y/z"), &st), 0);
  ck_assert(S_ISDIR(st.st_mode));
  ck_assert_int_eq(fsops_mkdir(P("x/y"), true, &err), 0);

  puts_(P("f"), "file");
  expect_fail(fsops_mkdir(P("f"), true, &err), &err, "FILE_EXISTS", 409, P("f"), NULL);
  ck_assert_int_eq(fsops_mkdir(P("f/sub"), true, &err), -1);
  assert_code(err, "NOT_DIRECTORY", 400);
  sp_error_free(err);
}
END_TEST

/* ---- delete ------------------------------------------------------------ */

START_TEST(delete_files_links_and_dirs)
{
  struct sp_error *err = NULL;
  puts_(P("f"), "x");
  ck_assert_int_eq(fsops_delete(P("f"), false, &err), 0);
  ck_assert(!exists_l(P("f")));

  puts_(P("target"), "keep");
  mkdir(P("dir"), 0755);
  puts_(P("dir/inner"), "keep");
  symlink(P("target"), P("flink"));
  symlink(P("dir"), P("dlink"));
  ck_assert_int_eq(fsops_delete(P("flink"), false, &err), 0);
  ck_assert_int_eq(fsops_delete(P("dlink/"), true, &err), 0);
  ck_assert(!exists_l(P("flink")));
  ck_assert(!exists_l(P("dlink")));
  ck_assert(exists_l(P("target")));
  ck_assert(exists_l(P("dir/inner")));

  ck_assert_int_eq(fsops_delete(P("dir"), false, &err), -1);
  assert_code(err, "IS_DIRECTORY", 400);
  ck_assert_str_eq(ctx_str(err, "path"), P("dir"));
  char want[3 * PATH_MAX];
  snprintf(want, sizeof want,
           "Cannot delete directory with deleteFile() at '%s'. Use "
           "exec('rm -rf %s') instead.",
           P("dir"), P("dir"));
  ck_assert_str_eq(err->msg, want);
  sp_error_free(err);
  err = NULL;
  ck_assert(exists_l(P("dir/inner")));

  ck_assert_int_eq(fsops_delete(P("gone"), false, &err), -1);
  expect_not_found(&err, "File", P("gone"));

  expect_fail(fsops_delete("/", true, &err), &err, "VALIDATION_FAILED", 400, NULL);
  ck_assert_int_eq(fsops_delete(P("dir/.."), true, &err), -1);
  assert_code(err, "VALIDATION_FAILED", 400);
  sp_error_free(err);
  err = NULL;
  ck_assert(exists_l(P("dir/inner")));
}
END_TEST

START_TEST(delete_recursive_keeps_outside)
{
  struct sp_error *err = NULL;
  mkdir(P("outside"), 0755);
  puts_(P("outside/sentinel"), "keep");
  mkdir(P("tree"), 0755);
  mkdir(P("tree/a"), 0755);
  mkdir(P("tree/a/b"), 0755);
  mkdir(P("tree/a/b/empty"), 0755);
  puts_(P("tree/a/b/f"), "x");
  puts_(P("tree/.hidden"), "x");
  mkfifo(P("tree/a/fifo"), 0644);
  symlink(P("outside"), P("tree/a/to_outside"));
  symlink("../../outside", P("tree/rel_outside"));
  symlink(P("outside/sentinel"), P("tree/a/b/to_file"));
  chmod(P("tree/a/b"), 0555); /* read-only dir: entries still removable
                                 by root; as non-root the test below
                                 restores it first */
  if (getuid() != 0)
    chmod(P("tree/a/b"), 0755);
  ck_assert_int_eq(fsops_delete(P("tree"), true, &err), 0);
  ck_assert_ptr_null(err);
  ck_assert(!exists_l(P("tree")));
  assert_file_text(P("outside/sentinel"), "keep");
  ck_assert_uint_eq(count_entries(P("outside")), 1);
}
END_TEST

struct swapper {
  char victim[PATH_MAX];
  char parked[PATH_MAX];
  char outside[PATH_MAX];
  atomic_bool stop;
};

/* Keep replacing tree/victim (a directory) with a symlink to the outside
 * directory and back, while the tree is being deleted. */
static void *swap_loop(void *arg)
{
  struct swapper *s = arg;
  while (!atomic_load(&s->stop)) {
    if (rename(s->victim, s->parked) == 0) {
      if (symlink(s->outside, s->victim) == 0) {
        sched_yield();
        unlink(s->victim);
      }
      rename(s->parked, s->victim);
    }
  }
  return NULL;
}

/* openat() as fsops.c sees it: this definition in the test binary takes
 * the place of libc's, so a test can change the tree at the exact moment
 * the code under test opens a directory. */
static void (*openat_hook)(int dirfd, const char *name);

int openat(int dirfd, const char *path, int flags, ...)
{
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  if (openat_hook != NULL && (flags & O_DIRECTORY))
    openat_hook(dirfd, path);
  return (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

static char swap_outside[PATH_MAX];
static int swaps;

/* Just before "victim" is opened as a directory, put a symlink to the
 * outside directory in its place. */
static void swap_victim(int dirfd, const char *name)
{
  if (strcmp(name, "victim") != 0)
    return;
  if (renameat(dirfd, "victim", dirfd, "parked") == 0 &&
      symlinkat(swap_outside, dirfd, "victim") == 0)
    swaps++;
}

START_TEST(delete_recursive_symlink_swapped_in)
{
  mkdir(P("outside"), 0755);
  puts_(P("outside/sentinel"), "keep");
  mkdir(P("tree"), 0755);
  mkdir(P("tree/a"), 0755);
  mkdir(P("tree/a/victim"), 0755);
  puts_(P("tree/a/victim/f"), "x");
  snprintf(swap_outside, sizeof swap_outside, "%s", P("outside"));
  openat_hook = swap_victim;
  struct sp_error *err = NULL;
  int rc = fsops_delete(P("tree"), true, &err);
  openat_hook = NULL;
  ck_assert_int_eq(swaps, 1);
  /* The outside is untouched, the swapped-in link was removed and the
   * directory it displaced ("parked") was found when the parent was
   * re-read. */
  ck_assert_uint_eq(count_entries(P("outside")), 1);
  assert_file_text(P("outside/sentinel"), "keep");
  ck_assert_ptr_null(err);
  ck_assert_int_eq(rc, 0);
  ck_assert(!exists_l(P("tree")));
}
END_TEST

START_TEST(delete_recursive_symlink_swap_race)
{
  mkdir(P("outside"), 0755);
  for (int i = 0; i < 20; i++)
    puts_(P("outside/s%d", i), "keep");
  struct swapper sw;
  int done = 0;
  for (int round = 0; round < 150; round++) {
    rm_rf(P("tree"));
    mkdir(P("tree"), 0755);
    mkdir(P("tree/victim"), 0755);
    for (int i = 0; i < 20; i++) {
      puts_(P("tree/victim/s%d", i), "x");
      puts_(P("tree/f%d", i), "x");
    }
    snprintf(sw.victim, sizeof sw.victim, "%s", P("tree/victim"));
    snprintf(sw.parked, sizeof sw.parked, "%s", P("tree/parked"));
    snprintf(sw.outside, sizeof sw.outside, "%s", P("outside"));
    atomic_store(&sw.stop, false);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, swap_loop, &sw), 0);
    struct sp_error *err = NULL;
    /* Success or an error caused by the race are both fine; touching
     * anything outside is not. */
    if (fsops_delete(P("tree"), true, &err) == 0)
      done++;
    sp_error_free(err);
    atomic_store(&sw.stop, true);
    pthread_join(t, NULL);
    ck_assert_uint_eq(count_entries(P("outside")), 20);
  }
  ck_assert_int_gt(done, 0);
}
END_TEST

/* ---- rename ------------------------------------------------------------ */

START_TEST(rename_same_filesystem)
{
  struct sp_error *err = NULL;
  puts_(P("a"), "content");
  ck_assert_int_eq(fsops_rename(P("a"), P("b"), &err), 0);
  ck_assert(!exists_l(P("a")));
  assert_file_text(P("b"), "content");

  mkdir(P("d"), 0755);
  puts_(P("d/x"), "x");
  ck_assert_int_eq(fsops_rename(P("d"), P("e"), &err), 0);
  ck_assert(exists_l(P("e/x")));

  /* A symlink is moved, not its target. */
  symlink("b", P("l"));
  ck_assert_int_eq(fsops_rename(P("l"), P("l2"), &err), 0);
  char buf[16] = {0};
  ck_assert_int_eq(readlink(P("l2"), buf, sizeof buf - 1), 1);
  ck_assert_str_eq(buf, "b");

  ck_assert_int_eq(fsops_rename(P("nope"), P("x"), &err), -1);
  expect_not_found(&err, "Source file", P("nope"));

  expect_fail(fsops_rename(P("b"), P("e"), &err), &err, "IS_DIRECTORY", 400, NULL);
}
END_TEST

START_TEST(rename_across_filesystems)
{
  struct stat a, b;
  if (stat("/dev/shm", &a) < 0 || stat(scratch, &b) < 0 || a.st_dev == b.st_dev) {
    fprintf(stderr, "rename_across_filesystems: no second filesystem, "
                    "skipped\n");
    return;
  }
  char src[] = "/dev/shm/sp-fsops-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(src));
  char path[PATH_MAX];
  struct sp_error *err = NULL;

  /* A tree: file with mode and mtime, subdirectory, relative symlink,
   * FIFO. */
  snprintf(path, sizeof path, "%s/tree", src);
  mkdir(path, 0750);
  snprintf(path, sizeof path, "%s/tree/run.sh", src);
  puts_(path, "#!/bin/sh\n");
  chmod(path, 0751);
  struct timespec times[2] = {{1600000000, 0}, {1600000000, 500000000}};
  utimensat(AT_FDCWD, path, times, 0);
  snprintf(path, sizeof path, "%s/tree/sub", src);
  mkdir(path, 0700);
  snprintf(path, sizeof path, "%s/tree/sub/data.bin", src);
  put(path, "\0\1\2", 3);
  snprintf(path, sizeof path, "%s/tree/sub/link", src);
  symlink("../run.sh", path);
  snprintf(path, sizeof path, "%s/tree/pipe", src);
  mkfifo(path, 0600);

  snprintf(path, sizeof path, "%s/tree", src);
  ck_assert_int_eq(fsops_rename(path, P("moved"), &err), 0);
  ck_assert_ptr_null(err);
  ck_assert(!exists_l(path));
  struct stat st;
  ck_assert_int_eq(lstat(P("moved"), &st), 0);
  ck_assert(S_ISDIR(st.st_mode));
  ck_assert_int_eq(st.st_mode & 07777, 0750);
  ck_assert_int_eq(lstat(P("moved/run.sh"), &st), 0);
  ck_assert_int_eq(st.st_mode & 07777, 0751);
  ck_assert_int_eq(st.st_mtim.tv_sec, 1600000000);
  ck_assert_int_eq(st.st_mtim.tv_nsec, 500000000);
  assert_file_text(P("moved/run.sh"), "#!/bin/sh\n");
  assert_file_bytes(P("moved/sub/data.bin"), "\0\1\2", 3);
  ck_assert_int_eq(lstat(P("moved/sub/link"), &st), 0);
  ck_assert(S_ISLNK(st.st_mode));
  char buf[32] = {0};
  ck_assert_int_eq(readlink(P("moved/sub/link"), buf, sizeof buf - 1), 9);
  ck_assert_str_eq(buf, "../run.sh");
  ck_assert_int_eq(lstat(P("moved/pipe"), &st), 0);
  ck_assert(S_ISFIFO(st.st_mode));
  ck_assert_uint_eq(count_entries(scratch), 1); /* no temporary left */

  /* A single file over an existing file. */
  snprintf(path, sizeof path, "%s/one", src);
  puts_(path, "new");
  puts_(P("existing"), "old");
  ck_assert_int_eq(fsops_rename(path, P("existing"), &err), 0);
  assert_file_text(P("existing"), "new");
  ck_assert(!exists_l(path));

  /* A device cannot be copied: the source stays, no debris. */
  if (getuid() == 0) {
    snprintf(path, sizeof path, "%s/dev", src);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/dev/null", src);
    ck_assert_int_eq(mknod(path, S_IFCHR | 0666, makedev(1, 3)), 0);
    snprintf(path, sizeof path, "%s/dev", src);
    expect_fail(fsops_rename(path, P("devmoved"), &err), &err, "NOT_REGULAR_FILE", 400, NULL);
    ck_assert(exists_l(path));
    ck_assert(!exists_l(P("devmoved")));
    ck_assert_uint_eq(count_entries(scratch), 2);
  }
  rm_rf(src);
}
END_TEST

/* ---- exists ------------------------------------------------------------ */

START_TEST(exists_semantics)
{
  struct sp_error *err = NULL;
  bool ex, dir;
  puts_(P("f"), "x");
  ck_assert_int_eq(fsops_exists(P("f"), &ex, &dir, &err), 0);
  ck_assert(ex && !dir);
  ck_assert_int_eq(fsops_exists(scratch, &ex, &dir, &err), 0);
  ck_assert(ex && dir);
  ck_assert_int_eq(fsops_exists(P("missing"), &ex, &dir, &err), 0);
  ck_assert(!ex && !dir);
  ck_assert_int_eq(fsops_exists(P("f/under"), &ex, NULL, &err), 0);
  ck_assert(!ex);
  symlink(P("missing"), P("dangling"));
  ck_assert_int_eq(fsops_exists(P("dangling"), &ex, NULL, &err), 0);
  ck_assert(!ex);
  symlink(P("loop"), P("loop"));
  ck_assert_int_eq(fsops_exists(P("loop"), &ex, NULL, &err), 0);
  ck_assert(!ex);
  symlink(scratch, P("dirlink"));
  ck_assert_int_eq(fsops_exists(P("dirlink"), &ex, &dir, &err), 0);
  ck_assert(ex && dir);
  ck_assert_ptr_null(err);
}
END_TEST

/* ---- list -------------------------------------------------------------- */

static void make_list_tree(void)
{
  mkdir(P("root"), 0755);
  puts_(P("root/a.txt"), "hello");
  chmod(P("root/a.txt"), 0644);
  struct timespec t[2] = {{1700000000, 123456789}, {1700000000, 123456789}};
  utimensat(AT_FDCWD, P("root/a.txt"), t, 0);
  puts_(P("root/.hidden"), "h");
  mkdir(P("root/sub"), 0750);
  puts_(P("root/sub/b.js"), "let b;");
  chmod(P("root/sub/b.js"), 0700);
  puts_(P("root/sub/.h2"), "h");
  mkdir(P("root/.hdir"), 0755);
  puts_(P("root/.hdir/x"), "x");
  symlink("a.txt", P("root/link"));
  symlink("sub", P("root/dlink"));
  puts_(P("root/a-c"), "");
}

static const char *names_of(cJSON *arr)
{
  static char buf[1024];
  buf[0] = '\0';
  cJSON *e;
  cJSON_ArrayForEach(e, arr)
  {
    if (buf[0])
      strcat(buf, ",");
    strcat(buf, cJSON_GetObjectItem(e, "relativePath")->valuestring);
  }
  return buf;
}

/* fsops_list that succeeds. */
static cJSON *list_ok(const char *path, bool recursive, bool hidden, size_t max, bool *trunc)
{
  struct sp_error *err = NULL;
  cJSON *arr = fsops_list(path, recursive, hidden, max, trunc, &err);
  ck_assert_msg(arr != NULL, "list %s: %s", path, err ? err->msg : "?");
  ck_assert_ptr_null(err);
  return arr;
}

static cJSON *find_rel(cJSON *arr, const char *rel)
{
  cJSON *e;
  cJSON_ArrayForEach(e, arr)
  {
    if (strcmp(cJSON_GetObjectItem(e, "relativePath")->valuestring, rel) == 0)
      return e;
  }
  return NULL;
}

START_TEST(list_fields_and_filters)
{
  make_list_tree();
  struct sp_error *err = NULL;
  bool trunc = true;
  cJSON *arr = list_ok(P("root"), false, false, 0, &trunc);
  ck_assert(!trunc);
  ck_assert_str_eq(names_of(arr), "a-c,a.txt,dlink,link,sub");

  /* Every field of one entry, exactly. */
  cJSON *a = find_rel(arr, "a.txt");
  char *got = json_print(a);
  char want[2048];
  snprintf(want, sizeof want,
           "{\"name\":\"a.txt\",\"absolutePath\":\"%s\",\"relativePath\":"
           "\"a.txt\",\"type\":\"file\",\"size\":5,\"modifiedAt\":\"2023-11-"
           "14T22:13:20.123Z\",\"mode\":\"rw-r--r--\",\"permissions\":{"
           "\"readable\":true,\"writable\":true,\"executable\":false}}",
           P("root/a.txt"));
  ck_assert_str_eq(got, want);
  free(got);
  cJSON *sub = find_rel(arr, "sub");
  ck_assert_str_eq(cJSON_GetObjectItem(sub, "type")->valuestring, "directory");
  ck_assert_str_eq(cJSON_GetObjectItem(sub, "mode")->valuestring, "rwxr-x---");
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(
      cJSON_GetObjectItem(sub, "permissions"), "executable")));
  ck_assert_str_eq(
      cJSON_GetObjectItem(find_rel(arr, "link"), "type")->valuestring,
      "symlink");
  ck_assert_str_eq(
      cJSON_GetObjectItem(find_rel(arr, "dlink"), "type")->valuestring,
      "symlink");
  cJSON_Delete(arr);

  /* Recursive: hidden entries and hidden directories' contents left out,
   * symlinked directories not followed, sorted by relativePath. */
  arr = list_ok(P("root/"), true, false, 0, &trunc);
  ck_assert_str_eq(names_of(arr), "a-c,a.txt,dlink,link,sub,sub/b.js");
  cJSON *b = find_rel(arr, "sub/b.js");
  ck_assert_str_eq(cJSON_GetObjectItem(b, "name")->valuestring, "b.js");
  ck_assert_str_eq(cJSON_GetObjectItem(b, "absolutePath")->valuestring,
                   P("root/sub/b.js"));
  ck_assert_str_eq(cJSON_GetObjectItem(b, "mode")->valuestring, "rwx------");
  ck_assert_int_eq(cJSON_GetObjectItem(b, "size")->valueint, 6);
  cJSON_Delete(arr);

  arr = list_ok(P("root"), true, true, 0, NULL);
  ck_assert_str_eq(names_of(arr), ".hdir,.hdir/x,.hidden,a-c,a.txt,dlink,"
                                  "link,sub,sub/.h2,sub/b.js");
  cJSON_Delete(arr);

  arr = list_ok(P("root"), false, true, 0, NULL);
  ck_assert_str_eq(names_of(arr), ".hdir,.hidden,a-c,a.txt,dlink,link,sub");
  cJSON_Delete(arr);

  /* A symlink to a directory can be listed. */
  symlink(P("root"), P("rootlink"));
  arr = list_ok(P("rootlink"), false, false, 0, NULL);
  ck_assert_int_eq(cJSON_GetArraySize(arr), 5);
  ck_assert_str_eq(
      cJSON_GetObjectItem(find_rel(arr, "a.txt"), "absolutePath")->valuestring,
      P("rootlink/a.txt"));
  cJSON_Delete(arr);

  /* The listing of "/" does not produce "//". */
  arr = list_ok("/", false, false, 0, NULL);
  cJSON *tmpe = find_rel(arr, "tmp");
  ck_assert_ptr_nonnull(tmpe);
  ck_assert_str_eq(cJSON_GetObjectItem(tmpe, "absolutePath")->valuestring,
                   "/tmp");
  cJSON_Delete(arr);
  ck_assert_ptr_null(err);
}
END_TEST

START_TEST(list_cap_depth_and_errors)
{
  make_list_tree();
  struct sp_error *err = NULL;
  bool trunc = false;
  cJSON *arr = list_ok(P("root"), true, false, 3, &trunc);
  ck_assert(trunc);
  ck_assert_str_eq(names_of(arr), "a-c,a.txt,dlink");
  cJSON_Delete(arr);
  arr = list_ok(P("root"), true, false, 6, &trunc);
  ck_assert(!trunc);
  ck_assert_int_eq(cJSON_GetArraySize(arr), 6);
  cJSON_Delete(arr);

  /* 70 nested directories: the walk stops at FSOPS_LIST_MAX_DEPTH. */
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", P("deep"));
  mkdir(path, 0755);
  for (int i = 0; i < 70; i++) {
    strcat(path, "/d");
    ck_assert_int_eq(mkdir(path, 0755), 0);
  }
  arr = list_ok(P("deep"), true, false, 0, &trunc);
  ck_assert(trunc);
  ck_assert_int_eq(cJSON_GetArraySize(arr), FSOPS_LIST_MAX_DEPTH);
  cJSON_Delete(arr);

  arr = fsops_list(P("missing"), false, false, 0, NULL, &err);
  ck_assert_ptr_null(arr);
  expect_not_found(&err, "Directory", P("missing"));

  arr = fsops_list(P("root/a.txt"), false, false, 0, NULL, &err);
  ck_assert_ptr_null(arr);
  assert_code(err, "NOT_DIRECTORY", 400);
  sp_error_free(err);
  err = NULL;

  arr = fsops_list(P("root/a.txt/x"), false, false, 0, NULL, &err);
  ck_assert_ptr_null(arr);
  assert_code(err, "FILE_NOT_FOUND", 404);
  sp_error_free(err);
}
END_TEST

/* ---- permissions --------------------------------------------------------- */

START_TEST(permission_denied_everywhere)
{
  char locked[PATH_MAX], inside[PATH_MAX];
  snprintf(locked, sizeof locked, "%s", locked_dir());
  snprintf(inside, sizeof inside, "%s", P("locked/f.txt"));
  struct sp_error *err = NULL;
  become_nobody();

  struct fs_file f;
  expect_fail(fsops_read(inside, 100, &f, &err), &err, "PERMISSION_DENIED", 403, inside, NULL);

  expect_fail(fsops_write(inside, "x", 1, false, &err), &err, "PERMISSION_DENIED", 403, NULL);

  expect_fail(fsops_write(P("locked/new/x"), "x", 1, true, &err), &err, "PERMISSION_DENIED", 403,
              NULL);

  expect_fail(fsops_mkdir(P("locked/d"), false, &err), &err, "PERMISSION_DENIED", 403, NULL);

  expect_fail(fsops_delete(inside, false, &err), &err, "PERMISSION_DENIED", 403, NULL);

  expect_fail(fsops_rename(inside, P("stolen"), &err), &err, "PERMISSION_DENIED", 403, NULL);

  bool ex;
  expect_fail(fsops_exists(inside, &ex, NULL, &err), &err, "PERMISSION_DENIED", 403, NULL);

  ck_assert_ptr_null(fsops_list(locked, false, false, 0, NULL, &err));
  assert_code(err, "PERMISSION_DENIED", 403);
  sp_error_free(err);
  err = NULL;

  /* Deleting a tree with a directory we may not write into. */
  become_self();
  ck_assert_int_eq(mkdir(P("tree"), 0777), 0);
  chmod(P("tree"), 0777);
  ck_assert_int_eq(mkdir(P("tree/ro"), 0755), 0);
  puts_(P("tree/ro/f"), "x");
  chmod(P("tree/ro"), 0555);
  become_nobody();
  expect_fail(fsops_delete(P("tree"), true, &err), &err, "PERMISSION_DENIED", 403, P("tree/ro/f"),
              NULL);

  become_self();
  ck_assert(exists_l(P("tree/ro/f")));
  chmod(P("tree/ro"), 0755);
  if (getuid() != 0)
    chmod(locked, 0700);
  ck_assert(exists_l(inside));
}
END_TEST

CHECK_MAIN_ONE_TCASE("fsops", "core", 60, setup, teardown, check_path_rules,
                     mime_by_extension_and_sniff, read_text_and_binary, read_refusals,
                     read_fifo_does_not_hang, open_read_streams, write_new_and_overwrite,
                     write_parents_and_refusals, write_replaces_symlink_not_target,
                     mkdir_plain_and_recursive, delete_files_links_and_dirs,
                     delete_recursive_keeps_outside, delete_recursive_symlink_swapped_in,
                     delete_recursive_symlink_swap_race, rename_same_filesystem,
                     rename_across_filesystems, exists_semantics, list_fields_and_filters,
                     list_cap_depth_and_errors, permission_denied_everywhere)
