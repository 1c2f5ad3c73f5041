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

/* A piece of a generated .dockerignore: s, n times over. */
struct piece {
  const char *s;
  size_t n;
};

/* The rules of a .dockerignore made of the pieces p[0..n). */
static struct dockerignore *load_pieces(const struct piece *p, size_t n)
{
  struct sbuf b = SBUF_INIT;
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < p[i].n; k++)
      sbuf_addstr(&b, p[i].s);
  return load_sbuf(&b);
}

/* Append n times s. */
static void repeat(struct sbuf *b, const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    sbuf_addstr(b, s);
}

/* The two questions the build context's walk asks of the rules. */
enum question {
  EXCLUDED, /* is the path left out? */
  INSIDE,   /* could an exception bring back something below it? */
};

/* A question about a path in the context, with a .dockerignore, and the
 * answer wanted. */
struct row {
  enum question q;
  const char *file;
  const char *path;
  bool yes;
};

/* Every row of question q gets its answer; a failure names the row. */
static void check_rows(const struct row *rows, size_t n, enum question q)
{
  static const char *const words[][2] = {[EXCLUDED] = {"excluded", "kept"},
                                         [INSIDE] = {"walked into", "skipped whole"}};
  for (size_t i = 0; i < n; i++) {
    if (rows[i].q != q)
      continue;
    struct dockerignore *ig = load(rows[i].file);
    bool got = q == EXCLUDED ? dockerignore_excludes(ig, rows[i].path)
                             : dockerignore_exception_inside(ig, rows[i].path);
    ck_assert_msg(got == rows[i].yes, "row %zu: with \"%s\", \"%s\" should be %s", i,
                  rows[i].file, rows[i].path, words[q][rows[i].yes ? 0 : 1]);
    dockerignore_free(ig);
  }
}

/* One row per rule: whether the path is left out. */
static const struct row rows[] = {
    /* '#' in column 1 is a comment; blank lines are nothing */
    {EXCLUDED, "# comment\n", "# comment", false},
    {EXCLUDED, "#*\n", "a", false},
    /* only in column 1: after spaces, '#' begins a pattern */
    {EXCLUDED, "  #foo\n", "#foo", true},
    {EXCLUDED, "\n\n   \n\t\n", "a", false},
    {EXCLUDED, "\n\nfoo\n\n", "foo", true},
    /* whitespace around a pattern is trimmed; CRLF lines read as LF */
    {EXCLUDED, "  foo \t\n", "foo", true},
    {EXCLUDED, "foo\r\nbar\r\n", "bar", true},
    {EXCLUDED, "foo", "foo", true},
    /* ".." takes away the segment before it; above the start, nothing */
    {EXCLUDED, "foo/../bar\n", "bar", true},
    {EXCLUDED, "foo/../bar\n", "foo", false},
    {EXCLUDED, "a/b/../../c\n", "c", true},
    {EXCLUDED, "../a\n", "a", false},
    {EXCLUDED, "/../a\n", "a", true},
    /* paths are relative to the context and anchored at its root */
    {EXCLUDED, "foo/bar\n", "foo/bar", true},
    {EXCLUDED, "foo/bar\n", "foo/bar/baz", true},
    {EXCLUDED, "foo/bar\n", "x/foo/bar", false},
    {EXCLUDED, "foo/bar\n", "foo", false},
    {EXCLUDED, "foo/bar\n", "bar", false},
    {EXCLUDED, "foo/bar\n", "foo/barx", false},
    /* cleaning: a leading '/', "./", '.' and empty segments, a trailing '/' */
    {EXCLUDED, "/foo/bar\n", "foo/bar", true},
    {EXCLUDED, "/foo/bar\n", "x/foo/bar", false},
    {EXCLUDED, "//foo\n", "foo", true},
    {EXCLUDED, "./foo\n", "foo", true},
    {EXCLUDED, "foo/./bar\n", "foo/bar", true},
    {EXCLUDED, "foo//bar\n", "foo/bar", true},
    {EXCLUDED, "foo/\n", "foo", true},
    {EXCLUDED, "foo/\n", "foo/x", true},
    {EXCLUDED, "foo/\n", "foox", false},
    {EXCLUDED, ".\n", "a", false},
    {EXCLUDED, "/\n", "a", false},
    /* the documentation's example */
    {EXCLUDED, "*/temp*\n", "somedir/temporary.txt", true},
    {EXCLUDED, "*/temp*\n", "somedir/temp", true},
    {EXCLUDED, "*/temp*\n", "somedir/temp/x", true},
    {EXCLUDED, "*/temp*\n", "temp", false},
    {EXCLUDED, "*/temp*\n", "a/b/temp", false},
    {EXCLUDED, "*/*/temp*\n", "somedir/subdir/temporary.txt", true},
    {EXCLUDED, "*/*/temp*\n", "somedir/temporary.txt", false},
    {EXCLUDED, "temp?\n", "tempa", true},
    {EXCLUDED, "temp?\n", "tempb", true},
    {EXCLUDED, "temp?\n", "temp", false},
    {EXCLUDED, "temp?\n", "tempab", false},
    {EXCLUDED, "temp?\n", "x/tempa", false},
    /* '*' and '?' stay within a segment */
    {EXCLUDED, "*.md\n", "a.md", true},
    {EXCLUDED, "*.md\n", ".md", true},
    {EXCLUDED, "*.md\n", "docs/a.md", false},
    {EXCLUDED, "*.MD\n", "a.md", false},
    {EXCLUDED, "*\n", "a", true},
    {EXCLUDED, "*\n", "a/b/c", true},
    {EXCLUDED, "a*b\n", "a/b", false},
    {EXCLUDED, "a?b\n", "a/b", false},
    {EXCLUDED, "a?b\n", "axb", true},
    /* '[...]' classes and '\' escapes of filepath.Match */
    {EXCLUDED, "file[0-9]\n", "file7", true},
    {EXCLUDED, "file[0-9]\n", "filex", false},
    {EXCLUDED, "file[^0-9]\n", "filex", true},
    {EXCLUDED, "file[^0-9]\n", "file7", false},
    {EXCLUDED, "\\*\n", "*", true},
    {EXCLUDED, "\\*\n", "a", false},
    {EXCLUDED, "a\\?\n", "a?", true},
    {EXCLUDED, "a\\?\n", "ab", false},
    /* '**' matches any number of directories, none included */
    {EXCLUDED, "**/*.go\n", "main.go", true},
    {EXCLUDED, "**/*.go\n", "cmd/main.go", true},
    {EXCLUDED, "**/*.go\n", "a/b/c/main.go", true},
    {EXCLUDED, "**/*.go\n", "main.go.txt", false},
    {EXCLUDED, "**/*.go\n", "a/go", false},
    {EXCLUDED, "a/**/b\n", "a/b", true},
    {EXCLUDED, "a/**/b\n", "a/x/b", true},
    {EXCLUDED, "a/**/b\n", "a/x/y/b", true},
    {EXCLUDED, "a/**/b\n", "a/x/y/b/z", true},
    {EXCLUDED, "a/**/b\n", "b", false},
    {EXCLUDED, "a/**/b\n", "x/a/b", false},
    {EXCLUDED, "a/**/b\n", "a/xb", false},
    {EXCLUDED, "a/**/b\n", "a/x/y", false},
    {EXCLUDED, "**\n", "any/thing/at/all", true},
    {EXCLUDED, "**/\n", "x", true},
    {EXCLUDED, "foo/**\n", "foo/x", true},
    {EXCLUDED, "foo/**\n", "foo/x/y", true},
    {EXCLUDED, "foo/**\n", "foox/y", false},
    {EXCLUDED, "**/node_modules\n", "node_modules", true},
    {EXCLUDED, "**/node_modules\n", "web/app/node_modules/left-pad/index.js", true},
    {EXCLUDED, "**/node_modules\n", "web/node_modules2", false},
    {EXCLUDED, "**/**/x\n", "x", true},
    {EXCLUDED, "**/**/x\n", "a/b/x", true},
    /* '!' makes an exception; the last line that matches decides */
    {EXCLUDED, "*.md\n!README.md\n", "a.md", true},
    {EXCLUDED, "*.md\n!README.md\n", "README.md", false},
    {EXCLUDED, "*.md\n!README.md\n", "docs/README.md", false},
    {EXCLUDED, "*.md\n!README*.md\nREADME-secret.md\n", "a.md", true},
    {EXCLUDED, "*.md\n!README*.md\nREADME-secret.md\n", "README.md", false},
    {EXCLUDED, "*.md\n!README*.md\nREADME-secret.md\n", "README-x.md", false},
    {EXCLUDED, "*.md\n!README*.md\nREADME-secret.md\n", "README-secret.md", true},
    {EXCLUDED, "*.md\nREADME-secret.md\n!README*.md\n", "README-secret.md", false},
    {EXCLUDED, "*.md\nREADME-secret.md\n!README*.md\n", "a.md", true},
    {EXCLUDED, "*\n!src\n", "src", false},
    {EXCLUDED, "*\n!src\n", "src/main.c", false},
    {EXCLUDED, "*\n!src\n", "docs", true},
    {EXCLUDED, "*\n!src\n", "docs/x", true},
    {EXCLUDED, "*\n! src \n", "src", false},
    {EXCLUDED, "*\n!src\nsrc/secret\n", "src/secret", true},
    {EXCLUDED, "*\n!src\nsrc/secret\n", "src/secret/key", true},
    {EXCLUDED, "*\n!src\nsrc/secret\n", "src/main.c", false},
    {EXCLUDED, "docs\n!docs/keep.md\n", "docs", true},
    {EXCLUDED, "docs\n!docs/keep.md\n", "docs/keep.md", false},
    {EXCLUDED, "docs\n!docs/keep.md\n", "docs/other.md", true},
    {EXCLUDED, "!foo\n", "foo", false},
    {EXCLUDED, "foo\n!foo\n", "foo", false},
    {EXCLUDED, "foo\n!foo\nfoo\n", "foo", true},
    {EXCLUDED, "!*.log\n*.log\n", "a.log", true},
    {EXCLUDED, "!#x\n", "#x", false},
    {EXCLUDED, "*\n!#x\n", "#x", false},
    /* the walk's question: could an exception bring back something below
     * the excluded directory? */
    {INSIDE, "docs\n", "docs", false},
    {INSIDE, "*\n", "docs", false},
    {INSIDE, "docs\n!docs/keep.md\n", "docs", true},
    {INSIDE, "*\n!docs/keep.md\n", "docs", true},
    {INSIDE, "*\n!docs/keep.md\n", "src", false},
    {INSIDE, "*\n!docs/keep.md\n", "docs/sub", false},
    {INSIDE, "*\n!docs/sub/keep\n", "docs/sub", true},
    {INSIDE, "*\n!/docs/keep.md\n", "docs", true},
    {INSIDE, "*\n!**/keep\n", "a", true},
    {INSIDE, "*\n!**/keep\n", "a/b/c", true},
    {INSIDE, "*\n!*/keep\n", "a", true},
    {INSIDE, "*\n!*/keep\n", "a/b", false},
    {INSIDE, "*\n!a/**/keep\n", "a", true},
    {INSIDE, "*\n!a/**/keep\n", "a/b/c", true},
    {INSIDE, "*\n!a/**/keep\n", "b", false},
    {INSIDE, "*\n!d?cs/k\n", "docs", true},
    {INSIDE, "*\n!d?cs/k\n", "dxxcs", false},
    {INSIDE, "*\n!docs\ndocs/sub\n", "docs/sub", false},
};

START_TEST(rules)
{
  check_rows(rows, sizeof rows / sizeof *rows, EXCLUDED);
}
END_TEST

START_TEST(exception_inside)
{
  check_rows(rows, sizeof rows / sizeof *rows, INSIDE);
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
  static const struct piece file[] = {{"first\n", 1}, {"a", 100000}, {"\n!second\nsecond\n", 1},
                                      {"/", 100000},   {"\n", 1},     {"x/*", 30000},
                                      {"\n", 1}};
  struct dockerignore *ig = load_pieces(file, sizeof file / sizeof *file);
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
  static const struct piece file[] = {{"**/", 60}, {"nomatch\n", 1}, {"**/a/", 30},
                                      {"zzz\n!", 1}, {"**/", 20},       {"keep\n", 1}};
  struct dockerignore *ig = load_pieces(file, sizeof file / sizeof *file);
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
  static const struct {
    const char *path;
    bool excluded;
  } want[] = {{"dir0", true},           {"dir12345/x", true}, {"dir19999", true},
              {"dir19999/keep", false}, {"dir20000", false},  {"# 5", false}};
  struct sbuf b = SBUF_INIT;
  for (int i = 0; i < 20000; i++)
    sbuf_addf(&b, "# %d\ndir%d\n\n", i, i);
  sbuf_addstr(&b, "!dir19999/keep\n");
  struct dockerignore *ig = load_sbuf(&b);
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    ck_assert_msg(dockerignore_excludes(ig, want[i].path) == want[i].excluded, "%s", want[i].path);
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
