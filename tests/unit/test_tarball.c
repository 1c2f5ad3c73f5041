#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "check_main.h"
#include "scratch.h"
#include "error.h"
#include "tarball.h"
#include "util.h"

/* Layout of every test:  <scratch>/dest (extraction target),
 * <scratch>/outside/sentinel (must never change), <scratch>/in.tar (archive). */
static void setup(void)
{
  umask(022);
  scratch_make("sp-tar");
  mkdir(P("outside"), 0755);
  put(P("outside/sentinel"), "keep", 4);
}

static void teardown(void)
{
  setfsuid(getuid());
  setfsgid(getgid());
  rm_rf(scratch);
}

/* Nothing but dest/ changed: scratch holds exactly dest, outside, in.tar (if
 * written), outside holds only the untouched sentinel. */
static void assert_outside_untouched(void)
{
  DIR *d = opendir(scratch);
  ck_assert_ptr_nonnull(d);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *n = de->d_name;
    ck_assert_msg(!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "dest") ||
                      !strcmp(n, "outside") || !strcmp(n, "in.tar"),
                  "unexpected %s in the scratch directory", n);
  }
  closedir(d);
  d = opendir(P("outside"));
  ck_assert_ptr_nonnull(d);
  int count = 0;
  while ((de = readdir(d)) != NULL)
    count++;
  closedir(d);
  ck_assert_int_eq(count, 3);
  assert_file_text(P("outside/sentinel"), "keep");
  ck_assert(!exists_l("/etc/sp-tar-pwned"));
  ck_assert(!exists_l("/tmp/sp-tar-pwned"));
}

/* ---- building archives --------------------------------------------------- */

static struct archive *tw_open(const char *path, bool gzip)
{
  struct archive *a = archive_write_new();
  ck_assert_int_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
  if (gzip)
    ck_assert_int_eq(archive_write_add_filter_gzip(a), ARCHIVE_OK);
  ck_assert_int_eq(archive_write_open_filename(a, path), ARCHIVE_OK);
  return a;
}

static struct archive_entry *tw_entry(const char *name, mode_t type,
                                      mode_t perm)
{
  struct archive_entry *e = archive_entry_new();
  archive_entry_copy_pathname(e, name);
  archive_entry_set_filetype(e, type);
  archive_entry_set_perm(e, perm);
  archive_entry_set_mtime(e, 1600000000, 0);
  return e;
}

static void tw_file(struct archive *a, const char *name, const void *data,
                    size_t len, mode_t perm)
{
  struct archive_entry *e = tw_entry(name, AE_IFREG, perm);
  archive_entry_set_size(e, (la_int64_t)len);
  ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
  if (len > 0)
    ck_assert_int_eq(archive_write_data(a, data, len), (la_ssize_t)len);
  archive_entry_free(e);
}

static void tw_text(struct archive *a, const char *name, const char *s)
{
  tw_file(a, name, s, strlen(s), 0644);
}

static void tw_dir(struct archive *a, const char *name)
{
  struct archive_entry *e = tw_entry(name, AE_IFDIR, 0755);
  ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
  archive_entry_free(e);
}

static void tw_symlink(struct archive *a, const char *name, const char *target)
{
  struct archive_entry *e = tw_entry(name, AE_IFLNK, 0777);
  archive_entry_copy_symlink(e, target);
  ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
  archive_entry_free(e);
}

static void tw_hardlink(struct archive *a, const char *name, const char *target)
{
  struct archive_entry *e = tw_entry(name, AE_IFREG, 0644);
  archive_entry_copy_hardlink(e, target);
  archive_entry_set_size(e, 0);
  ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
  archive_entry_free(e);
}

static void tw_special(struct archive *a, const char *name, mode_t type)
{
  struct archive_entry *e = tw_entry(name, type, 0666);
  if (type == AE_IFCHR || type == AE_IFBLK)
    archive_entry_set_rdev(e, makedev(1, 3));
  ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
  archive_entry_free(e);
}

static void tw_close(struct archive *a)
{
  ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}

/* Extract archive_path into <scratch>/dest. */
static int extract(const char *archive_path, const struct tar_limits *lim,
                   struct tar_stats *st, struct sp_error **err)
{
  int fd = open(archive_path, O_RDONLY | O_CLOEXEC);
  ck_assert_int_ge(fd, 0);
  int rc = tar_extract(fd, P("dest"), lim, st, err);
  close(fd);
  return rc;
}

/* The extraction of in.tar fails with code, naming entry. */
static void expect_refusal(const char *code, int status, const char *entry,
                           const struct tar_limits *lim)
{
  struct sp_error *err = NULL;
  ck_assert_int_eq(extract(P("in.tar"), lim, NULL, &err), -1);
  ck_assert_ptr_nonnull(err);
  ck_assert_msg(strcmp(err->code, code) == 0, "code %s (%s), wanted %s",
                err->code, err->msg, code);
  ck_assert_int_eq(err->http_status, status);
  char quoted[PATH_MAX];
  snprintf(quoted, sizeof quoted, "'%s'", entry);
  ck_assert_msg(strstr(err->msg, quoted) != NULL,
                "message \"%s\" does not name %s", err->msg, quoted);
  cJSON *path = cJSON_GetObjectItemCaseSensitive(err->context, "path");
  ck_assert(cJSON_IsString(path));
  ck_assert_str_eq(path->valuestring, P("dest"));
  sp_error_free(err);
  assert_outside_untouched();
}

/* Closes the archive a, whose extraction must fail at entry, leaving no
 * dest/entry. */
static void refused_unwritten(struct archive *a, const char *entry)
{
  tw_close(a);
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, entry, NULL);
  ck_assert(!exists_l(P("dest/%s", entry)));
}

/* ---- hostile archives ---------------------------------------------------- */

START_TEST(refuses_absolute_path)
{
  struct archive *a = tw_open(P("in.tar"), false);
  tw_text(a, "ok.txt", "fine");
  char abs[PATH_MAX];
  snprintf(abs, sizeof abs, "%s", P("outside/abs"));
  tw_text(a, abs, "pwned");
  tw_close(a);
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, abs, NULL);
  /* What came before the refusal stays. */
  ck_assert(exists_l(P("dest/ok.txt")));
}
END_TEST

START_TEST(refuses_dotdot)
{
  struct archive *a = tw_open(P("in.tar"), false);
  tw_text(a, "../sp-escape", "pwned");
  tw_close(a);
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, "../sp-escape", NULL);

  a = tw_open(P("in.tar"), false);
  tw_text(a, "a/../../sp-escape", "pwned");
  tw_close(a);
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, "a/../../sp-escape", NULL);

  /* Even ".." that would stay inside is refused. */
  a = tw_open(P("in.tar"), false);
  tw_text(a, "a/../b", "x");
  tw_close(a);
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, "a/../b", NULL);
  ck_assert(!exists_l(P("dest/b")));
}
END_TEST

START_TEST(refuses_escaping_symlinks)
{
  struct archive *a = tw_open(P("in.tar"), false);
  tw_symlink(a, "etc", "/etc");
  tw_text(a, "etc/sp-tar-pwned", "pwned");
  tw_close(a);
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, "etc", NULL);
  ck_assert(!exists_l(P("dest/etc")));

  a = tw_open(P("in.tar"), false);
  tw_symlink(a, "up", "../..");
  tw_text(a, "up/sp-tar-pwned", "pwned");
  tw_close(a);
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, "up", NULL);
  ck_assert(!exists_l(P("dest/up")));

  a = tw_open(P("in.tar"), false);
  tw_symlink(a, "a/b/up", "../../..");
  tw_close(a);
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, "a/b/up", NULL);

  a = tw_open(P("in.tar"), false);
  tw_symlink(a, "out", "../outside");
  tw_text(a, "out/sentinel", "pwned");
  tw_close(a);
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, "out", NULL);
}
END_TEST

START_TEST(refuses_write_through_symlink)
{
  /* The link itself stays inside, but nothing is written through it. */
  struct archive *a = tw_open(P("in.tar"), false);
  tw_dir(a, "sub");
  tw_symlink(a, "dir", "sub");
  tw_text(a, "dir/passwd", "pwned");
  tw_close(a);
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, "dir/passwd", NULL);
  ck_assert(!exists_l(P("dest/sub/passwd")));

  /* Links that only escape in combination: sub/up -> .. (the root),
   * sub/x -> up/.. (lexically "sub", really the parent of dest). */
  rm_rf(P("dest"));
  a = tw_open(P("in.tar"), false);
  tw_symlink(a, "sub/up", "..");
  tw_symlink(a, "sub/x", "up/..");
  tw_text(a, "sub/x/outside/sentinel", "pwned");
  tw_close(a);
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, "sub/x/outside/sentinel", NULL);

  /* A symlink already in the destination. */
  rm_rf(P("dest"));
  mkdir(P("dest"), 0755);
  ck_assert_int_eq(symlink("../outside", P("dest/pre")), 0);
  a = tw_open(P("in.tar"), false);
  tw_text(a, "pre/sentinel", "pwned");
  tw_close(a);
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, "pre/sentinel", NULL);

  /* Deeper: a/b where a is a symlink. */
  rm_rf(P("dest"));
  a = tw_open(P("in.tar"), false);
  tw_dir(a, "real");
  tw_symlink(a, "a", "real");
  tw_text(a, "a/b/c/d.txt", "x");
  tw_close(a);
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, "a/b/c/d.txt", NULL);
  ck_assert(!exists_l(P("dest/real/b")));
}
END_TEST

START_TEST(refuses_escaping_hardlinks)
{
  struct archive *a = tw_open(P("in.tar"), false);
  tw_hardlink(a, "h", "/etc/passwd");
  refused_unwritten(a, "h");

  a = tw_open(P("in.tar"), false);
  tw_hardlink(a, "h2", "../outside/sentinel");
  refused_unwritten(a, "h2");

  /* Through a symlink already in the destination. */
  mkdir(P("dest"), 0755);
  ck_assert_int_eq(symlink("../outside", P("dest/pre")), 0);
  a = tw_open(P("in.tar"), false);
  tw_hardlink(a, "h3", "pre/sentinel");
  refused_unwritten(a, "h3");

  /* Through a symlink created by an earlier entry. */
  a = tw_open(P("in.tar"), false);
  tw_dir(a, "real");
  tw_text(a, "real/file", "x");
  tw_symlink(a, "s", "real");
  tw_hardlink(a, "h4", "s/file");
  refused_unwritten(a, "h4");

  /* To a symlink that stays inside from its own directory, but not from
   * the link's: the link would be that symlink at the top. */
  a = tw_open(P("in.tar"), false);
  tw_dir(a, "d1");
  tw_symlink(a, "d1/up", "../outside/sentinel");
  tw_hardlink(a, "h5", "d1/up");
  refused_unwritten(a, "h5");
  struct stat st;
  ck_assert_int_eq(stat(P("outside/sentinel"), &st), 0);
  ck_assert_int_eq(st.st_nlink, 1);
}
END_TEST

START_TEST(refuses_special_files)
{
  struct {
    mode_t type;
    const char *name;
  } kinds[] = {{AE_IFCHR, "null"}, {AE_IFBLK, "sda"}, {AE_IFIFO, "fifo"}};
  for (size_t i = 0; i < SP_ARRAY_SIZE(kinds); i++) {
    struct archive *a = tw_open(P("in.tar"), false);
    tw_special(a, kinds[i].name, kinds[i].type);
    tw_close(a);
    expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, kinds[i].name, NULL);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", P("dest/%s", kinds[i].name));
    ck_assert(!exists_l(p));
  }
}
END_TEST

START_TEST(refuses_overlong_path)
{
  char name[5000] = "";
  for (int i = 0; i < 22; i++) {
    strcat(name, i ? "/" : "");
    for (int k = 0; k < 200; k++)
      strcat(name, "d");
  }
  strcat(name, "/f");
  struct archive *a = tw_open(P("in.tar"), false);
  tw_text(a, name, "deep");
  tw_close(a);
  char cwd_before[PATH_MAX], cwd_after[PATH_MAX];
  ck_assert_ptr_nonnull(getcwd(cwd_before, sizeof cwd_before));
  expect_refusal("UNSAFE_ARCHIVE_ENTRY", 400, name, NULL);
  ck_assert_ptr_nonnull(getcwd(cwd_after, sizeof cwd_after));
  ck_assert_str_eq(cwd_before, cwd_after);
}
END_TEST

START_TEST(refuses_gzip_bomb_early)
{
  /* 50 MB of zeros compress about 1000:1. */
  struct archive *a = tw_open(P("in.tar"), true);
  struct archive_entry *e = tw_entry("zeros", AE_IFREG, 0644);
  const size_t total = 50u << 20;
  archive_entry_set_size(e, (la_int64_t)total);
  ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
  archive_entry_free(e);
  static char zeros[1 << 20];
  for (size_t done = 0; done < total; done += sizeof zeros)
    ck_assert_int_eq(archive_write_data(a, zeros, sizeof zeros),
                     (la_ssize_t)sizeof zeros);
  tw_close(a);
  struct stat st;
  ck_assert_int_eq(stat(P("in.tar"), &st), 0);
  ck_assert_int_lt(st.st_size, 200 * 1024);

  struct sp_error *err = NULL;
  struct tar_stats stats;
  ck_assert_int_eq(extract(P("in.tar"), NULL, &stats, &err), -1);
  ck_assert_str_eq(err->code, "ARCHIVE_TOO_LARGE");
  ck_assert_int_eq(err->http_status, 413);
  ck_assert_ptr_nonnull(strstr(err->msg, "'zeros'"));
  sp_error_free(err);
  /* Stopped long before the end. */
  ck_assert_uint_lt(stats.bytes, 20u << 20);
  ck_assert_uint_ge(stats.bytes, TAR_RATIO_MIN_BYTES / 2);
  /* and the partial file is not left behind */
  ck_assert(!exists_l(P("dest/zeros")));
  assert_outside_untouched();

  /* A lower ratio limit stops it even sooner; a high one lets it through. */
  rm_rf(P("dest"));
  struct tar_limits lim = {.max_ratio = 2000};
  ck_assert_int_eq(extract(P("in.tar"), &lim, &stats, &err), 0);
  ck_assert_uint_eq(stats.bytes, total);
}
END_TEST

START_TEST(enforces_count_and_size_limits)
{
  struct archive *a = tw_open(P("in.tar"), false);
  for (int i = 1; i <= 5; i++) {
    char name[16];
    snprintf(name, sizeof name, "f%d", i);
    tw_text(a, name, "x");
  }
  tw_close(a);
  struct tar_limits lim = {.max_entries = 3};
  expect_refusal("ARCHIVE_TOO_LARGE", 413, "f4", &lim);
  ck_assert(exists_l(P("dest/f3")));
  ck_assert(!exists_l(P("dest/f4")));

  static char kb[1000];
  memset(kb, 'k', sizeof kb);
  rm_rf(P("dest"));
  a = tw_open(P("in.tar"), false);
  tw_file(a, "small", kb, 10, 0644);
  tw_file(a, "big", kb, sizeof kb, 0644);
  tw_close(a);
  lim = (struct tar_limits){.max_entry_bytes = 100};
  expect_refusal("ARCHIVE_TOO_LARGE", 413, "big", &lim);
  ck_assert(!exists_l(P("dest/big")));

  rm_rf(P("dest"));
  a = tw_open(P("in.tar"), false);
  tw_file(a, "one", kb, sizeof kb, 0644);
  tw_file(a, "two", kb, sizeof kb, 0644);
  tw_close(a);
  lim = (struct tar_limits){.max_total_bytes = 1500};
  expect_refusal("ARCHIVE_TOO_LARGE", 413, "two", &lim);
  ck_assert(exists_l(P("dest/one")));
}
END_TEST

START_TEST(refuses_invalid_input)
{
  put(P("in.tar"), "this is not a tar archive at all, just text\n", 44);
  struct sp_error *err = NULL;
  ck_assert_int_eq(extract(P("in.tar"), NULL, NULL, &err), -1);
  ck_assert_str_eq(err->code, "INVALID_ARCHIVE");
  ck_assert_int_eq(err->http_status, 400);
  sp_error_free(err);
  err = NULL;

  /* A zip is not accepted. */
  struct archive *a = archive_write_new();
  archive_write_set_format_zip(a);
  ck_assert_int_eq(archive_write_open_filename(a, P("in.tar")), ARCHIVE_OK);
  tw_text(a, "z.txt", "zip");
  tw_close(a);
  ck_assert_int_eq(extract(P("in.tar"), NULL, NULL, &err), -1);
  ck_assert_str_eq(err->code, "INVALID_ARCHIVE");
  sp_error_free(err);
  err = NULL;
  ck_assert(!exists_l(P("dest/z.txt")));

  /* Truncated in the middle of an entry's data. */
  static char data[20000];
  memset(data, 'd', sizeof data);
  a = tw_open(P("in.tar"), false);
  tw_file(a, "cut.bin", data, sizeof data, 0644);
  tw_close(a);
  ck_assert_int_eq(truncate(P("in.tar"), 512 + 8192), 0);
  ck_assert_int_eq(extract(P("in.tar"), NULL, NULL, &err), -1);
  ck_assert_str_eq(err->code, "INVALID_ARCHIVE");
  ck_assert_ptr_nonnull(strstr(err->msg, "'cut.bin'"));
  sp_error_free(err);
  assert_outside_untouched();
}
END_TEST

/* ---- good archives -------------------------------------------------------- */

START_TEST(extracts_gzip_and_normalizes)
{
  struct archive *a = tw_open(P("in.tar"), true);
  struct archive_entry *e;
  tw_dir(a, "./");
  tw_dir(a, "./src/");
  tw_text(a, "./src/index.js", "console.log(1)\n");
  tw_file(a, "src//bin.dat", "\0\1\2\3", 4, 0644);
  e = tw_entry("run.sh", AE_IFREG, 04755); /* setuid dropped */
  archive_entry_set_uid(e, 1234); /* owner not restored */
  archive_entry_set_gid(e, 1234);
  archive_entry_set_size(e, 10);
  ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
  ck_assert_int_eq(archive_write_data(a, "#!/bin/sh\n", 10), 10);
  archive_entry_free(e);
  e = tw_entry("sticky", AE_IFDIR, 01777);
  ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
  archive_entry_free(e);
  tw_symlink(a, "node_modules/.bin/tool", "../tool/bin/tool.js");
  tw_text(a, "node_modules/tool/bin/tool.js", "tool");
  tw_symlink(a, "current", "src");
  tw_hardlink(a, "src/index2.js", "src/index.js");
  tw_close(a);

  struct sp_error *err = NULL;
  struct tar_stats st;
  ck_assert_int_eq(extract(P("in.tar"), NULL, &st, &err), 0);
  ck_assert_ptr_null(err);
  ck_assert_uint_eq(st.entries, 10);
  ck_assert_uint_eq(st.bytes, 15 + 4 + 10 + 4);

  assert_file_text(P("dest/src/index.js"), "console.log(1)\n");
  assert_file_bytes(P("dest/src/bin.dat"), "\0\1\2\3", 4);
  struct stat sb, sb2;
  ck_assert_int_eq(stat(P("dest/run.sh"), &sb), 0);
  ck_assert_int_eq(sb.st_mode & 07777, 0755);
  ck_assert_int_eq(sb.st_mtime, 1600000000);
  ck_assert_int_eq(sb.st_uid, getuid());
  ck_assert_int_eq(sb.st_gid, getgid());
  ck_assert_int_eq(stat(P("dest/sticky"), &sb), 0);
  ck_assert_int_eq(sb.st_mode & 07777, 0755);
  char buf[64] = {0};
  ck_assert_int_gt(readlink(P("dest/node_modules/.bin/tool"), buf, 63), 0);
  ck_assert_str_eq(buf, "../tool/bin/tool.js");
  assert_file_text(P("dest/node_modules/.bin/tool"), "tool");
  ck_assert_int_eq(stat(P("dest/src/index.js"), &sb), 0);
  ck_assert_int_eq(stat(P("dest/src/index2.js"), &sb2), 0);
  ck_assert_int_eq(sb.st_ino, sb2.st_ino);
  assert_outside_untouched();
}
END_TEST

START_TEST(extract_overwrites_and_creates_dest)
{
  ck_assert_int_eq(mkdir(P("dest"), 0755), 0);
  put(P("dest/f"), "old content", 11);
  ck_assert_int_eq(symlink("../outside/sentinel", P("dest/link")), 0);
  struct archive *a = tw_open(P("in.tar"), false);
  tw_text(a, "f", "new");
  tw_text(a, "link", "replaces the symlink");
  tw_close(a);
  struct sp_error *err = NULL;
  ck_assert_int_eq(extract(P("in.tar"), NULL, NULL, &err), 0);
  assert_file_text(P("dest/f"), "new");
  struct stat st;
  ck_assert_int_eq(lstat(P("dest/link"), &st), 0);
  ck_assert(S_ISREG(st.st_mode));
  assert_outside_untouched();

  /* A missing destination is created with its parents. */
  int fd = open(P("in.tar"), O_RDONLY);
  ck_assert_int_eq(tar_extract(fd, P("dest/x/y/z"), NULL, NULL, &err), 0);
  close(fd);
  ck_assert(exists_l(P("dest/x/y/z/f")));
}
END_TEST

/* Compare two trees: same names, types, modes, content, link targets. */
static void compare_trees(const char *a, const char *b)
{
  DIR *d = opendir(a);
  ck_assert_ptr_nonnull(d);
  struct dirent *de;
  int na = 0;
  while ((de = readdir(d)) != NULL) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    char pa[PATH_MAX], pb[PATH_MAX];
    snprintf(pa, sizeof pa, "%s/%s", a, de->d_name);
    snprintf(pb, sizeof pb, "%s/%s", b, de->d_name);
    struct stat sa, sb;
    ck_assert_int_eq(lstat(pa, &sa), 0);
    if (S_ISFIFO(sa.st_mode)) {
      ck_assert_msg(!exists_l(pb), "%s should have been skipped", pb);
      continue;
    }
    na++;
    ck_assert_msg(lstat(pb, &sb) == 0, "%s missing", pb);
    ck_assert_int_eq(sa.st_mode & S_IFMT, sb.st_mode & S_IFMT);
    if (S_ISLNK(sa.st_mode)) {
      char ta[PATH_MAX] = {0}, tb[PATH_MAX] = {0};
      ck_assert_int_gt(readlink(pa, ta, sizeof ta - 1), 0);
      ck_assert_int_gt(readlink(pb, tb, sizeof tb - 1), 0);
      ck_assert_str_eq(ta, tb);
      continue;
    }
    ck_assert_int_eq(sa.st_mode & 0777, sb.st_mode & 0777);
    if (S_ISDIR(sa.st_mode)) {
      compare_trees(pa, pb);
    } else {
      size_t la, lb;
      char *ca = slurp(pa, &la);
      char *cb = slurp(pb, &lb);
      ck_assert_uint_eq(la, lb);
      ck_assert_mem_eq(ca, cb, la);
      ck_assert_int_eq(sa.st_mtime, sb.st_mtime);
      free(ca);
      free(cb);
    }
  }
  closedir(d);
  /* and nothing extra in b */
  d = opendir(b);
  int nb = 0;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
      nb++;
  closedir(d);
  ck_assert_int_eq(na, nb);
}

START_TEST(round_trip)
{
  mkdir(P("src"), 0755);
  put(P("src/a.txt"), "alpha\n", 6);
  put(P("src/empty"), "", 0);
  static unsigned char bin[70000];
  for (size_t i = 0; i < sizeof bin; i++)
    bin[i] = (unsigned char)(i * 7);
  put(P("src/bin.dat"), bin, sizeof bin);
  put(P("src/run.sh"), "#!/bin/sh\necho hi\n", 18);
  chmod(P("src/run.sh"), 0755);
  mkdir(P("src/dir"), 0750);
  mkdir(P("src/dir/nested"), 0755);
  mkdir(P("src/dir/emptydir"), 0700);
  put(P("src/dir/nested/deep.md"), "# deep\n", 7);
  put(P("src/h\xc3\xa9llo.txt"), "utf8 name", 9);
  char longname[PATH_MAX];
  snprintf(longname, sizeof longname, "%s",
           P("src/dir/a-very-long-directory-name-that-needs-pax-"
             "extensions-because-it-is-over-one-hundred-bytes"));
  mkdir(longname, 0755);
  strcat(longname, "/and-a-file-with-a-long-name-too.txt");
  put(longname, "long", 4);
  symlink("a.txt", P("src/link"));
  symlink("../a.txt", P("src/dir/uplink"));
  symlink("/etc/passwd", P("src/abs_link")); /* stored, refused on extract */
  ck_assert_int_eq(link(P("src/a.txt"), P("src/dir/hard.txt")), 0);
  mkfifo(P("src/fifo"), 0644);

  int fd = open(P("out.tar"), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ck_assert_int_ge(fd, 0);
  struct sp_error *err = NULL;
  struct tar_stats cst;
  ck_assert_int_eq(tar_create(P("src"), fd, &cst, &err), 0);
  ck_assert_ptr_null(err);
  ck_assert_uint_eq(cst.entries, 15);
  ck_assert_uint_eq(cst.bytes, 6 + sizeof bin + 18 + 7 + 9 + 4);

  /* The archive as another reader sees it: relative names, the symlink as
   * a symlink, the second name of a.txt as a hard link. */
  lseek(fd, 0, SEEK_SET);
  struct archive *r = archive_read_new();
  archive_read_support_format_tar(r);
  ck_assert_int_eq(archive_read_open_fd(r, fd, 10240), ARCHIVE_OK);
  struct archive_entry *e;
  int seen = 0;
  while (archive_read_next_header(r, &e) == ARCHIVE_OK) {
    const char *n = archive_entry_pathname(e);
    ck_assert_msg(n[0] != '/' && strncmp(n, "./", 2) != 0, "name %s", n);
    if (!strcmp(n, "link")) {
      ck_assert_int_eq(archive_entry_filetype(e), AE_IFLNK);
      ck_assert_str_eq(archive_entry_symlink(e), "a.txt");
      seen++;
    }
    if (!strcmp(n, "dir/hard.txt") || !strcmp(n, "a.txt")) {
      /* "a.txt" comes first in name order, so dir/hard.txt links to it */
      if (!strcmp(n, "dir/hard.txt"))
        ck_assert_str_eq(archive_entry_hardlink(e), "a.txt");
      seen++;
    }
  }
  archive_read_free(r);
  ck_assert_int_eq(seen, 3);

  /* The absolute symlink is refused on the way back in... */
  lseek(fd, 0, SEEK_SET);
  ck_assert_int_eq(tar_extract(fd, P("dest"), NULL, NULL, &err), -1);
  ck_assert_str_eq(err->code, "UNSAFE_ARCHIVE_ENTRY");
  ck_assert_ptr_nonnull(strstr(err->msg, "'abs_link'"));
  sp_error_free(err);
  err = NULL;
  close(fd);

  /* ...so archive the tree without it and compare. */
  unlink(P("src/abs_link"));
  rm_rf(P("dest"));
  fd = open(P("out.tar"), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ck_assert_int_eq(tar_create(P("src"), fd, &cst, &err), 0);
  lseek(fd, 0, SEEK_SET);
  struct tar_stats xst;
  ck_assert_int_eq(tar_extract(fd, P("dest"), NULL, &xst, &err), 0);
  ck_assert_ptr_null(err);
  close(fd);
  ck_assert_uint_eq(xst.entries, cst.entries);
  ck_assert_uint_eq(xst.bytes, cst.bytes);
  compare_trees(P("src"), P("dest"));
  struct stat s1, s2;
  ck_assert_int_eq(stat(P("dest/a.txt"), &s1), 0);
  ck_assert_int_eq(stat(P("dest/dir/hard.txt"), &s2), 0);
  ck_assert_int_eq(s1.st_ino, s2.st_ino);
  unlink(P("out.tar"));
}
END_TEST

START_TEST(round_trip_empty_dir)
{
  mkdir(P("src"), 0755);
  int fd = open(P("out.tar"), O_RDWR | O_CREAT | O_TRUNC, 0600);
  struct sp_error *err = NULL;
  struct tar_stats st;
  ck_assert_int_eq(tar_create(P("src"), fd, &st, &err), 0);
  ck_assert_uint_eq(st.entries, 0);
  lseek(fd, 0, SEEK_SET);
  ck_assert_int_eq(tar_extract(fd, P("dest"), NULL, &st, &err), 0);
  ck_assert_ptr_null(err);
  ck_assert_uint_eq(st.entries, 0);
  close(fd);
  DIR *d = opendir(P("dest"));
  ck_assert_ptr_nonnull(d);
  closedir(d);
}
END_TEST

START_TEST(create_errors)
{
  struct sp_error *err = NULL;
  int fd = open(P("out.tar"), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ck_assert_int_eq(tar_create(P("missing"), fd, NULL, &err), -1);
  ck_assert_str_eq(err->code, "FILE_NOT_FOUND");
  ck_assert_int_eq(err->http_status, 404);
  sp_error_free(err);
  err = NULL;
  ck_assert_int_eq(tar_create(P("outside/sentinel"), fd, NULL, &err), -1);
  ck_assert_str_eq(err->code, "NOT_DIRECTORY");
  ck_assert_int_eq(err->http_status, 400);
  sp_error_free(err);
  err = NULL;

  /* An unreadable file inside the tree, as an unprivileged user. */
  mkdir(P("src"), 0755);
  put(P("src/secret"), "s", 1);
  chmod(P("src/secret"), 0600);
  if (getuid() == 0) {
    setfsgid(65534);
    setfsuid(65534);
  } else {
    chmod(P("src/secret"), 0);
  }
  ck_assert_int_eq(tar_create(P("src"), fd, NULL, &err), -1);
  ck_assert_str_eq(err->code, "PERMISSION_DENIED");
  ck_assert_int_eq(err->http_status, 403);
  ck_assert_ptr_nonnull(strstr(err->msg, "secret"));
  sp_error_free(err);
  close(fd);
}
END_TEST

START_TEST(extract_permission_denied)
{
  /* dest is root-owned 0700 (or mode 0 when not root). */
  mkdir(P("dest"), 0700);
  if (getuid() != 0)
    chmod(P("dest"), 0);
  struct archive *a = tw_open(P("in.tar"), false);
  tw_text(a, "f.txt", "x");
  tw_close(a);
  if (getuid() == 0) {
    setfsgid(65534);
    setfsuid(65534);
    ck_assert_int_eq(setfsuid((uid_t)-1), 65534);
  }
  struct sp_error *err = NULL;
  ck_assert_int_eq(extract(P("in.tar"), NULL, NULL, &err), -1);
  ck_assert_str_eq(err->code, "PERMISSION_DENIED");
  ck_assert_int_eq(err->http_status, 403);
  sp_error_free(err);
  setfsuid(getuid());
  setfsgid(getgid());
  chmod(P("dest"), 0700);
  ck_assert(!exists_l(P("dest/f.txt")));
}
END_TEST

CHECK_MAIN_ONE_TCASE("tarball", "core", 120, setup, teardown, refuses_absolute_path, refuses_dotdot,
                     refuses_escaping_symlinks, refuses_write_through_symlink,
                     refuses_escaping_hardlinks, refuses_special_files, refuses_overlong_path,
                     refuses_gzip_bomb_early, enforces_count_and_size_limits, refuses_invalid_input,
                     extracts_gzip_and_normalizes, extract_overwrites_and_creates_dest, round_trip,
                     round_trip_empty_dir, create_errors, extract_permission_denied)
