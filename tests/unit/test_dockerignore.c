/* Unit tests for manager/backend/dockerignore.c against Docker's documented
 * .dockerignore rules (docs.docker.com/build/concepts/context/): comments,
 * blank lines, cleaning, *, ?, **, exceptions and their order, and the
 * walk's descent into excluded directories; then hostile files. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "dockerignore.h"
#include "scratch.h"
#include "str.h"

static void setup(void) { scratch_make("sp-dockerignore"); }
static void teardown(void) { rm_rf(scratch); }

/* The rules of a .dockerignore holding text[0..len). */
static struct dockerignore *load_bytes(const char *text, size_t len)
{
  const char *path = P(".dockerignore");
  put(path, text, len);
  struct sp_error *err = NULL;
  struct dockerignore *ig = dockerignore_load(path, &err);
  ck_assert_msg(err == NULL, "load: %s", err ? err->msg : "");
  ck_assert_ptr_nonnull(ig);
  return ig;
}

static struct dockerignore *load(const char *text) { return load_bytes(text, strlen(text)); }

/* The rules of a .dockerignore holding b's bytes; b is released. */
static struct dockerignore *load_sbuf(struct sbuf *b)
{
  struct dockerignore *ig = load_bytes(b->buf, b->len);
  sbuf_release(b);
  return ig;
}

/* Append n times s. */
static void repeat(struct sbuf *b, const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    sbuf_addstr(b, s);
}

/* A .dockerignore, a path in the context, and the answer wanted of it. */
struct row {
  const char *file;
  const char *path;
  bool yes;
};

/* Every row gets its answer from ask; a failure names the row. */
static void check_rows(const struct row *rows, size_t n,
                       bool (*ask)(const struct dockerignore *, const char *), const char *yes,
                       const char *no)
{
  for (size_t i = 0; i < n; i++) {
    struct dockerignore *ig = load(rows[i].file);
    ck_assert_msg(ask(ig, rows[i].path) == rows[i].yes, "row %zu: with \"%s\", \"%s\" should be %s",
                  i, rows[i].file, rows[i].path, rows[i].yes ? yes : no);
    dockerignore_free(ig);
  }
}

/* One row per rule: whether the path is left out. */
static const struct row rows[] = {
    /* '#' in column 1 is a comment; blank lines are nothing */
    {"# comment\n", "# comment", false},
    {"#*\n", "a", false},
    {"\n\n   \n\t\n", "a", false},
    {"\n\nfoo\n\n", "foo", true},
    /* whitespace around a pattern is trimmed; CRLF lines read as LF */
    {"  foo \t\n", "foo", true},
    {"foo\r\nbar\r\n", "bar", true},
    {"foo", "foo", true},
    /* paths are relative to the context and anchored at its root */
    {"foo/bar\n", "foo/bar", true},
    {"foo/bar\n", "foo/bar/baz", true},
    {"foo/bar\n", "x/foo/bar", false},
    {"foo/bar\n", "foo", false},
    {"foo/bar\n", "bar", false},
    {"foo/bar\n", "foo/barx", false},
    /* cleaning: a leading '/', "./", '.' and empty segments, a trailing '/' */
    {"/foo/bar\n", "foo/bar", true},
    {"/foo/bar\n", "x/foo/bar", false},
    {"//foo\n", "foo", true},
    {"./foo\n", "foo", true},
    {"foo/./bar\n", "foo/bar", true},
    {"foo//bar\n", "foo/bar", true},
    {"foo/\n", "foo", true},
    {"foo/\n", "foo/x", true},
    {"foo/\n", "foox", false},
    {".\n", "a", false},
    {"/\n", "a", false},
    /* the documentation's example */
    {"*/temp*\n", "somedir/temporary.txt", true},
    {"*/temp*\n", "somedir/temp", true},
    {"*/temp*\n", "somedir/temp/x", true},
    {"*/temp*\n", "temp", false},
    {"*/temp*\n", "a/b/temp", false},
    {"*/*/temp*\n", "somedir/subdir/temporary.txt", true},
    {"*/*/temp*\n", "somedir/temporary.txt", false},
    {"temp?\n", "tempa", true},
    {"temp?\n", "tempb", true},
    {"temp?\n", "temp", false},
    {"temp?\n", "tempab", false},
    {"temp?\n", "x/tempa", false},
    /* '*' and '?' stay within a segment */
    {"*.md\n", "a.md", true},
    {"*.md\n", ".md", true},
    {"*.md\n", "docs/a.md", false},
    {"*.MD\n", "a.md", false},
    {"*\n", "a", true},
    {"*\n", "a/b/c", true},
    {"a*b\n", "a/b", false},
    {"a?b\n", "a/b", false},
    {"a?b\n", "axb", true},
    /* '[...]' classes and '\' escapes of filepath.Match */
    {"file[0-9]\n", "file7", true},
    {"file[0-9]\n", "filex", false},
    {"file[^0-9]\n", "filex", true},
    {"file[^0-9]\n", "file7", false},
    {"\\*\n", "*", true},
    {"\\*\n", "a", false},
    {"a\\?\n", "a?", true},
    {"a\\?\n", "ab", false},
    /* '**' matches any number of directories, none included */
    {"**/*.go\n", "main.go", true},
    {"**/*.go\n", "cmd/main.go", true},
    {"**/*.go\n", "a/b/c/main.go", true},
    {"**/*.go\n", "main.go.txt", false},
    {"**/*.go\n", "a/go", false},
    {"a/**/b\n", "a/b", true},
    {"a/**/b\n", "a/x/b", true},
    {"a/**/b\n", "a/x/y/b", true},
    {"a/**/b\n", "a/x/y/b/z", true},
    {"a/**/b\n", "b", false},
    {"a/**/b\n", "x/a/b", false},
    {"a/**/b\n", "a/xb", false},
    {"a/**/b\n", "a/x/y", false},
    {"**\n", "any/thing/at/all", true},
    {"**/\n", "x", true},
    {"foo/**\n", "foo/x", true},
    {"foo/**\n", "foo/x/y", true},
    {"foo/**\n", "foox/y", false},
    {"**/node_modules\n", "node_modules", true},
    {"**/node_modules\n", "web/app/node_modules/left-pad/index.js", true},
    {"**/node_modules\n", "web/node_modules2", false},
    {"**/**/x\n", "x", true},
    {"**/**/x\n", "a/b/x", true},
    /* '!' makes an exception; the last line that matches decides */
    {"*.md\n!README.md\n", "a.md", true},
    {"*.md\n!README.md\n", "README.md", false},
    {"*.md\n!README.md\n", "docs/README.md", false},
    {"*.md\n!README*.md\nREADME-secret.md\n", "a.md", true},
    {"*.md\n!README*.md\nREADME-secret.md\n", "README.md", false},
    {"*.md\n!README*.md\nREADME-secret.md\n", "README-x.md", false},
    {"*.md\n!README*.md\nREADME-secret.md\n", "README-secret.md", true},
    {"*.md\nREADME-secret.md\n!README*.md\n", "README-secret.md", false},
    {"*.md\nREADME-secret.md\n!README*.md\n", "a.md", true},
    {"*\n!src\n", "src", false},
    {"*\n!src\n", "src/main.c", false},
    {"*\n!src\n", "docs", true},
    {"*\n!src\n", "docs/x", true},
    {"*\n! src \n", "src", false},
    {"*\n!src\nsrc/secret\n", "src/secret", true},
    {"*\n!src\nsrc/secret\n", "src/secret/key", true},
    {"*\n!src\nsrc/secret\n", "src/main.c", false},
    {"docs\n!docs/keep.md\n", "docs", true},
    {"docs\n!docs/keep.md\n", "docs/keep.md", false},
    {"docs\n!docs/keep.md\n", "docs/other.md", true},
    {"!foo\n", "foo", false},
    {"foo\n!foo\n", "foo", false},
    {"foo\n!foo\nfoo\n", "foo", true},
    {"!*.log\n*.log\n", "a.log", true},
    {"!#x\n", "#x", false},
    {"*\n!#x\n", "#x", false},
};

START_TEST(rules)
{
  check_rows(rows, sizeof rows / sizeof *rows, dockerignore_excludes, "excluded", "kept");
}
END_TEST

/* One row per case of the walk's question: could an exception bring back
 * something below the excluded directory? */
static const struct row inside_rows[] = {
    {"docs\n", "docs", false},
    {"*\n", "docs", false},
    {"docs\n!docs/keep.md\n", "docs", true},
    {"*\n!docs/keep.md\n", "docs", true},
    {"*\n!docs/keep.md\n", "src", false},
    {"*\n!docs/keep.md\n", "docs/sub", false},
    {"*\n!docs/sub/keep\n", "docs/sub", true},
    {"*\n!/docs/keep.md\n", "docs", true},
    {"*\n!**/keep\n", "a", true},
    {"*\n!**/keep\n", "a/b/c", true},
    {"*\n!*/keep\n", "a", true},
    {"*\n!*/keep\n", "a/b", false},
    {"*\n!a/**/keep\n", "a", true},
    {"*\n!a/**/keep\n", "a/b/c", true},
    {"*\n!a/**/keep\n", "b", false},
    {"*\n!d?cs/k\n", "docs", true},
    {"*\n!d?cs/k\n", "dxxcs", false},
    {"*\n!docs\ndocs/sub\n", "docs/sub", false},
};

START_TEST(exception_inside)
{
  check_rows(inside_rows, sizeof inside_rows / sizeof *inside_rows, dockerignore_exception_inside,
             "walked into", "skipped whole");
}
END_TEST

/* A context's files and directories; a directory is any prefix of a
 * longer entry. */
static const char *const tree[] = {
    "README.md", "README-secret.md",
    "a", "a/b", "a/b/c.md", "a/b/keep", "a/keep",
    "docs", "docs/keep.md", "docs/sub", "docs/sub/keep", "docs/sub/x.md",
    "node_modules", "node_modules/m", "node_modules/m/keep",
    "src", "src/main.c", "src/secret", "src/secret/key",
};
#define NTREE (sizeof tree / sizeof *tree)

/* Walk the tree from dir as docker_build.c does, marking what it keeps. */
static void walk(const struct dockerignore *ig, const char *dir, bool kept[NTREE])
{
  size_t dl = strlen(dir);
  for (size_t i = 0; i < NTREE; i++) {
    const char *r = tree[i];
    if (dl > 0 && (strncmp(r, dir, dl) != 0 || r[dl] != '/'))
      continue;
    const char *name = dl > 0 ? r + dl + 1 : r;
    if (strchr(name, '/') != NULL)
      continue;
    bool skip = dockerignore_excludes(ig, r);
    bool is_dir = false;
    for (size_t j = 0; j < NTREE; j++)
      is_dir |= str_starts_with(tree[j], r) && tree[j][strlen(r)] == '/';
    kept[i] = !skip;
    if (is_dir && (!skip || dockerignore_exception_inside(ig, r)))
      walk(ig, r, kept);
  }
}

/* Whatever the rules, the walk keeps exactly the paths they do not
 * exclude: it never skips a directory an exception reaches into. */
static const char *const walk_files[] = {
    "*\n!**/keep\n",
    "*\n!a/**/keep\n",
    "*\n!*/keep\n",
    "*\n!docs/sub\ndocs/sub/x.md\n",
    "*\n!README*.md\nREADME-secret.md\n",
    "docs\n!docs/keep.md\n",
    "**/node_modules\n!node_modules/m/keep\n",
    "src\n!src/main.c\n!src/secret/key\nsrc/secret\n",
    "*\n!src\nsrc/secret\n!src/secret/k?y\n",
    "a\n!a/b\na/b/c.md\n",
    "**/*.md\n!**/README.md\n",
};

START_TEST(walk_keeps_what_rules_keep)
{
  for (size_t f = 0; f < sizeof walk_files / sizeof *walk_files; f++) {
    struct dockerignore *ig = load(walk_files[f]);
    bool kept[NTREE] = {false};
    walk(ig, "", kept);
    for (size_t i = 0; i < NTREE; i++)
      ck_assert_msg(kept[i] == !dockerignore_excludes(ig, tree[i]),
                    "file %zu (\"%s\"): the walk %s \"%s\"", f, walk_files[f],
                    kept[i] ? "keeps the excluded" : "misses the kept", tree[i]);
    dockerignore_free(ig);
  }
}
END_TEST

/* No .dockerignore: nothing is left out, and no error. */
START_TEST(missing_file)
{
  struct sp_error *err = NULL;
  struct dockerignore *ig = dockerignore_load(P("no-such-file"), &err);
  ck_assert_ptr_null(err);
  ck_assert_ptr_nonnull(ig);
  ck_assert(!dockerignore_excludes(ig, "a"));
  ck_assert(!dockerignore_excludes(ig, ".dockerignore"));
  ck_assert(!dockerignore_exception_inside(ig, "a"));
  dockerignore_free(ig);
  dockerignore_free(NULL);
}
END_TEST

/* A .dockerignore that cannot be read as a file is an error naming it. */
START_TEST(unreadable_file)
{
  const char *dir = P(".dockerignore");
  ck_assert_int_eq(mkdir(dir, 0755), 0);
  struct sp_error *err = NULL;
  ck_assert_ptr_null(dockerignore_load(dir, &err));
  ck_assert_ptr_nonnull(err);
  ck_assert_msg(strstr(err->msg, dir) != NULL, "message: %s", err->msg);
  sp_error_free(err);
  ck_assert_ptr_null(dockerignore_load(dir, NULL));
}
END_TEST

/* Over 1 MiB is refused, saying so; 1 MiB exactly is read. */
START_TEST(too_large_file)
{
  size_t n = (1 << 20) + 1;
  char *big = malloc(n);
  ck_assert_ptr_nonnull(big);
  memset(big, '\n', n);
  memcpy(big, "x\n", 2);
  const char *path = P(".dockerignore");
  put(path, big, n);
  struct sp_error *err = NULL;
  ck_assert_ptr_null(dockerignore_load(path, &err));
  ck_assert_ptr_nonnull(err);
  ck_assert_str_eq(err->code, "FILE_TOO_LARGE");
  ck_assert_msg(strstr(err->msg, path) != NULL && strstr(err->msg, "larger than") != NULL,
                "message: %s", err->msg);
  sp_error_free(err);
  struct dockerignore *ig = load_bytes(big, n - 1);
  ck_assert(dockerignore_excludes(ig, "x"));
  ck_assert(!dockerignore_excludes(ig, "y"));
  dockerignore_free(ig);
  free(big);
}
END_TEST

/* A line far longer than any path: the lines around it still count, and it
 * matches no short path. */
START_TEST(very_long_line)
{
  struct sbuf b = SBUF_INIT;
  sbuf_addstr(&b, "first\n");
  repeat(&b, "a", 100000);
  sbuf_addstr(&b, "\n!second\nsecond\n");
  repeat(&b, "/", 100000);
  sbuf_addstr(&b, "\n");
  repeat(&b, "x/*", 30000);
  sbuf_addstr(&b, "\n");
  struct dockerignore *ig = load_sbuf(&b);
  ck_assert(dockerignore_excludes(ig, "first"));
  ck_assert(dockerignore_excludes(ig, "second"));
  ck_assert(!dockerignore_excludes(ig, "a"));
  ck_assert(!dockerignore_excludes(ig, "aaaa"));
  ck_assert(!dockerignore_excludes(ig, "x"));
  ck_assert(!dockerignore_excludes(ig, "other"));
  dockerignore_free(ig);
}
END_TEST

/* Many '**' in one pattern: the answer comes at once, not after trying
 * every way of sharing the path out between them. */
START_TEST(many_double_stars)
{
  struct sbuf b = SBUF_INIT;
  repeat(&b, "**/", 60);
  sbuf_addstr(&b, "nomatch\n");
  repeat(&b, "**/a/", 30);
  sbuf_addstr(&b, "zzz\n!");
  repeat(&b, "**/", 20);
  sbuf_addstr(&b, "keep\n");
  struct dockerignore *ig = load_sbuf(&b);
  struct sbuf p = SBUF_INIT;
  repeat(&p, "a/", 60);
  sbuf_addstr(&p, "x");
  ck_assert(!dockerignore_excludes(ig, p.buf));
  ck_assert(dockerignore_exception_inside(ig, p.buf));
  sbuf_release(&p);
  ck_assert(dockerignore_excludes(ig, "a/b/c/nomatch"));
  ck_assert(dockerignore_excludes(ig, "nomatch"));
  dockerignore_free(ig);
}
END_TEST

/* Thousands of lines, the last deciding. */
START_TEST(thousands_of_lines)
{
  struct sbuf b = SBUF_INIT;
  for (int i = 0; i < 20000; i++)
    sbuf_addf(&b, "# %d\ndir%d\n\n", i, i);
  sbuf_addstr(&b, "!dir19999/keep\n");
  struct dockerignore *ig = load_sbuf(&b);
  ck_assert(dockerignore_excludes(ig, "dir0"));
  ck_assert(dockerignore_excludes(ig, "dir12345/x"));
  ck_assert(dockerignore_excludes(ig, "dir19999"));
  ck_assert(!dockerignore_excludes(ig, "dir19999/keep"));
  ck_assert(!dockerignore_excludes(ig, "dir20000"));
  ck_assert(!dockerignore_excludes(ig, "# 5"));
  ck_assert(dockerignore_exception_inside(ig, "dir19999"));
  ck_assert(!dockerignore_exception_inside(ig, "dir5"));
  dockerignore_free(ig);
}
END_TEST

/* NUL and other bytes no name holds: no crash, the lines before them
 * count, and a NUL-led line matches nothing. */
START_TEST(nul_bytes)
{
  static const char t1[] = "first\n\0\0\0*\n";
  struct dockerignore *ig = load_bytes(t1, sizeof t1 - 1);
  ck_assert(dockerignore_excludes(ig, "first"));
  ck_assert(!dockerignore_excludes(ig, "a"));
  dockerignore_free(ig);

  static const char t2[] = "\0*\n";
  ig = load_bytes(t2, sizeof t2 - 1);
  ck_assert(!dockerignore_excludes(ig, "a"));
  ck_assert(!dockerignore_exception_inside(ig, "a"));
  dockerignore_free(ig);

  static const char t3[] = "\xff\xfe*\n\x01\x02\n";
  ig = load_bytes(t3, sizeof t3 - 1);
  ck_assert(dockerignore_excludes(ig, "\xff\xfe" "x"));
  ck_assert(dockerignore_excludes(ig, "\x01\x02"));
  ck_assert(!dockerignore_excludes(ig, "x"));
  dockerignore_free(ig);
}
END_TEST

CHECK_MAIN_ONE_TCASE("dockerignore", "dockerignore", 30, setup, teardown, rules, exception_inside,
                     walk_keeps_what_rules_keep, missing_file, unreadable_file, too_large_file, very_long_line,
                     many_double_stars, thousands_of_lines, nul_bytes)
