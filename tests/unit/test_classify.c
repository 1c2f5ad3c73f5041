/* Unit tests of container/classify: focused tests of each output format, benign
 * lines, ANSI handling, normalisation, rules-file errors, hostile input, a
 * speed figure, and the corpus of real tool outputs in tests/fixtures/errors
 * against its baseline of known misses (known-misses.txt there). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check_main.h"
#include "classify.h"
#include "error.h"
#include "str.h"
#include "util.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

struct ev {
  char *rule, *tool, *category, *severity, *file, *message, *raw;
  int line, column;
  uint64_t hash;
  bool restart;
};

struct evlist {
  struct ev *v;
  size_t n;
  bool keep; /* false: only count */
};

static bool valid_utf8(const char *s) { return str_is_utf8(s, strlen(s)); }

/* Every event is well formed.  (Check records each passing ck_assert, which
 * would dominate the speed figure: assert only when something is wrong.) */
static void collect(void *ud, const struct classify_event *e)
{
  struct evlist *l = ud;
  bool ok = e->rule && e->tool && e->category && e->severity && e->message && e->raw &&
            valid_utf8(e->message) && valid_utf8(e->raw) &&
            (e->file == NULL || valid_utf8(e->file)) && !strchr(e->message, '\n') &&
            strlen(e->raw) <= CLASSIFY_RAW_MAX_BYTES;
  if (!ok)
    ck_abort_msg("malformed event from rule %s", e->rule ? e->rule : "(null)");
  if (!l->keep) {
    l->n++;
    return;
  }
  l->v = xreallocarray(l->v, l->n + 1, sizeof *l->v);
  struct ev *v = &l->v[l->n++];
  v->rule = xstrdup(e->rule);
  v->tool = xstrdup(e->tool);
  v->category = xstrdup(e->category);
  v->severity = xstrdup(e->severity);
  v->file = e->file ? xstrdup(e->file) : NULL;
  v->message = xstrdup(e->message);
  v->raw = xstrdup(e->raw);
  v->line = e->line;
  v->column = e->column;
  v->hash = e->hash;
  v->restart = e->restart;
}

static void evlist_release(struct evlist *l)
{
  for (size_t i = 0; i < l->n && l->keep; i++) {
    struct ev *v = &l->v[i];
    free(v->rule);
    free(v->tool);
    free(v->category);
    free(v->severity);
    free(v->file);
    free(v->message);
    free(v->raw);
  }
  free(l->v);
  memset(l, 0, sizeof *l);
}

static const char *root(void)
{
  const char *r = getenv("SANDPIT_ROOT");
  return r && *r ? r : ".";
}

static struct classify_rules *rules;

static void load_rules(void)
{
  struct sp_error *err = NULL;
  char *path = xasprintf("%s/container/rules/default.toml", root());
  rules = classify_rules_load(path, &err);
  if (rules == NULL) {
    fprintf(stderr, "cannot load rules: %s\n", err ? err->msg : "?");
    sp_error_free(err);
  }
  free(path);
  ck_assert_ptr_nonnull(rules);
}

static void free_rules(void)
{
  classify_rules_free(rules);
  rules = NULL;
}

/* Feed a text line by line (one millisecond apart), then flush. */
static void feed_text(const struct classify_rules *r, const char *text,
                      struct evlist *out)
{
  struct classifier *c = classifier_new(r);
  int64_t now = 1000;
  const char *p = text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    classifier_feed(c, p, n, now++, collect, out);
    if (nl == NULL)
      break;
    p = nl + 1;
  }
  classifier_flush(c, now, 0, collect, out);
  classifier_free(c);
}

static void expect_str(const char *where, size_t i, const char *field, const char *got,
                       const char *want)
{
  if (want == NULL)
    return;
  ck_assert_msg(got != NULL && strcmp(got, want) == 0, "%s #%zu: %s \"%s\", want \"%s\"",
                where, i, field, got ? got : "(null)", want);
}

static void expect_int(const char *where, size_t i, const char *field, long got, long want)
{
  ck_assert_msg(got == want, "%s #%zu: %s %ld, want %ld", where, i, field, got, want);
}

/* A text that gives exactly one event, with these fields (file NULL:
 * unknown; line and column 0: unknown). */
struct one {
  const char *text, *tool, *category, *severity, *file;
  int line, column;
};

/* Classifies each row's text and checks its event; a failure names
 * `where` and the row. */
static void expect_ones(const char *where, const struct one *rows, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    const struct one *w = &rows[i];
    struct evlist l = {.keep = true};
    feed_text(rules, w->text, &l);
    for (size_t k = 0; k < l.n && l.n != 1; k++)
      fprintf(stderr, "%s #%zu: event %zu: %s %s %s\n", where, i, k, l.v[k].rule,
              l.v[k].tool, l.v[k].message);
    expect_int(where, i, "events", (long)l.n, 1);
    const struct ev *e = &l.v[0];
    expect_str(where, i, "tool", e->tool, w->tool);
    expect_str(where, i, "category", e->category, w->category);
    expect_str(where, i, "severity", e->severity, w->severity);
    if (w->file == NULL)
      ck_assert_msg(e->file == NULL, "%s #%zu: file \"%s\", want none", where, i, e->file);
    else
      expect_str(where, i, "file", e->file, w->file);
    expect_int(where, i, "line", e->line, w->line);
    expect_int(where, i, "column", e->column, w->column);
    evlist_release(&l);
  }
}

/* struct first's file for "no file". */
static const char NO_FILE[] = "(none)";

/* What the first event a text gives must be: what a row names is checked,
 * not a NULL string, a line or column of 0, RESTART_ANY or raw_max 0. */
struct first {
  const char *text;
  bool only; /* and the only event */
  const char *tool, *category, *severity, *message;
  const char *file; /* or NO_FILE */
  int line, column;
  enum { RESTART_ANY, FATAL, NOT_FATAL } restart;
  const char *raw_has; /* the raw text contains it */
  const char *raw_is;
  bool raw_plain; /* the raw text has no escape sequence */
  size_t raw_max; /* bytes of raw text at most */
};

static void expect_firsts(const char *where, const struct first *rows, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    const struct first *w = &rows[i];
    struct evlist l = {.keep = true};
    feed_text(rules, w->text, &l);
    ck_assert_msg(l.n >= 1, "%s #%zu: no event", where, i);
    if (w->only)
      expect_int(where, i, "events", (long)l.n, 1);
    const struct ev *e = &l.v[0];
    expect_str(where, i, "tool", e->tool, w->tool);
    expect_str(where, i, "category", e->category, w->category);
    expect_str(where, i, "severity", e->severity, w->severity);
    expect_str(where, i, "message", e->message, w->message);
    if (w->file == NO_FILE)
      ck_assert_msg(e->file == NULL, "%s #%zu: file \"%s\", want none", where, i, e->file);
    else
      expect_str(where, i, "file", e->file, w->file);
    if (w->line != 0)
      expect_int(where, i, "line", e->line, w->line);
    if (w->column != 0)
      expect_int(where, i, "column", e->column, w->column);
    if (w->restart != RESTART_ANY)
      expect_int(where, i, "restart", e->restart, w->restart == FATAL);
    ck_assert_msg(w->raw_has == NULL || strstr(e->raw, w->raw_has) != NULL,
                  "%s #%zu: raw text lacks \"%s\": %s", where, i, w->raw_has, e->raw);
    expect_str(where, i, "raw text", e->raw, w->raw_is);
    ck_assert_msg(!w->raw_plain || strchr(e->raw, '\x1b') == NULL,
                  "%s #%zu: an escape sequence in the raw text", where, i);
    ck_assert_msg(w->raw_max == 0 || strlen(e->raw) <= w->raw_max,
                  "%s #%zu: %zu bytes of raw text", where, i, strlen(e->raw));
    evlist_release(&l);
  }
}

/* ------------------------------------------------------------------------ */
/* Output formats                                                           */

START_TEST(test_vite)
{
  static const struct one ones[] = {
      {"2:14:07 PM [vite] Internal server error: Failed to resolve import "
       "\"./Header\" from \"src/main.tsx\". Does the file exist?\n"
       "  Plugin: vite:import-analysis\n"
       "  File: /work/app/src/main.tsx:3:19\n"
       "  1  |  import React from \"react\";\n"
       "  3  |  import Header from \"./Header\";\n"
       "     |                     ^\n"
       "      at formatError (file:///work/app/node_modules/vite/dist/node/chunks/dep-3f1a.js:100:46)\n"
       "      at process.processTicksAndRejections (node:internal/process/task_queues:95:5)\n",
       "vite", "module-resolution", "error", "/work/app/src/main.tsx", 3, 19},
      /* The overlay form: a location line of its own. */
      {"[plugin:vite:import-analysis] Failed to resolve import \"./x\" from "
       "\"src/a.ts\". Does the file exist?\n"
       "/srv/site/src/a.ts:7:9\n"
       "6  |  const a = 1;\n"
       "7  |  import x from \"./x\";\n",
       "vite", "module-resolution", "error", "/srv/site/src/a.ts", 7, 9},
      /* A wrapper: the quoted error decides the category, Vite stays the tool. */
      {"4:23:27 PM [vite] Pre-transform error: [BABEL] /srv/site/src/main.tsx: "
       "Cannot find module '/srv/site/node_modules/gen-mapping/dist/x.js'\n"
       "  Plugin: vite:react-babel\n"
       "  File: /srv/site/src/main.tsx\n",
       "vite", "module-resolution", "error", NULL, 0, 0},
      /* esbuild inside Vite keeps Vite as the tool. */
      {"[plugin:vite:esbuild] Transform failed with 1 error:\n"
       "/srv/site/src/b.ts:12:4: ERROR: Unexpected \"}\"\n",
       "vite", "syntax", "error", "/srv/site/src/b.ts", 12, 4},
      {"(!) Some chunks are larger than 500 kB after minification.\n", "vite",
       "warning", "warning", NULL, 0, 0},
      /* Babel's syntax errors through Vite. */
      {"9:01:12 AM [vite] Internal server error: /srv/site/src/App.jsx: "
       "Unexpected token, expected \",\" (12:4)\n"
       "  10 |   return (\n"
       "> 12 |     <p>hi</p>\n"
       "     |     ^\n"
       "  Plugin: vite:react-babel\n"
       "  File: /srv/site/src/App.jsx:12:4\n",
       "vite", "syntax", "error", "/srv/site/src/App.jsx", 12, 4},
      /* Vite 8 (oxc), as captured from a real dev server by
   * tests/integration/test_previews_browser.py: the location is in a
   * miette frame, the full path in "File:". */
      {"7:35:29 AM [vite] Internal server error: Transform failed with 1 error:\n"
       "\n"
       "\x1b[31m[PARSE_ERROR] \x1b[0mUnexpected token\n"
       "   \x1b[38;5;246m\xe2\x95\xad\x1b[0m\x1b[38;5;246m\xe2\x94\x80\x1b[0m\x1b[38;5;246m[\x1b[0m src/main.ts:4:16 \x1b[38;5;246m]\x1b[0m\n"
       "   \x1b[38;5;246m\xe2\x94\x82\x1b[0m\n"
       " \x1b[38;5;246m4 \xe2\x94\x82\x1b[0m \x1b[38;5;249mc\x1b[0m\x1b[38;5;249mo\x1b[0m\x1b[38;5;249mn\x1b[0m\x1b[38;5;249ms\x1b[0m\x1b[38;5;249mt\x1b[0m\x1b[38;5;249m \x1b[0m\x1b[38;5;249mb\x1b[0m\x1b[38;5;249mr\x1b[0m\x1b[38;5;249mo\x1b[0m\x1b[38;5;249mk\x1b[0m\x1b[38;5;249me\x1b[0m\x1b[38;5;249mn\x1b[0m\x1b[38;5;249m \x1b[0m\x1b[38;5;249m=\x1b[0m\x1b[38;5;249m \x1b[0m;\n"
       " \x1b[38;5;240m  \xe2\x94\x82\x1b[0m                \xe2\x94\xac  \n"
       " \x1b[38;5;240m  \xe2\x94\x82\x1b[0m                \xe2\x95\xb0\xe2\x94\x80\xe2\x94\x80 \n"
       "\x1b[38;5;246m\xe2\x94\x80\xe2\x94\x80\xe2\x94\x80\xe2\x95\xaf\x1b[0m\n"
       "\n"
       "  Plugin: vite:oxc\n"
       "  File: /workspace/browser-1/app/src/main.ts\n"
       "      at transformWithOxc (file:///workspace/browser-1/app/node_modules/vite/dist/node/chunks/node.js:7673:19)\n"
       "      at TransformPluginContext.transform (file:///workspace/browser-1/app/node_modules/vite/dist/node/chunks/node.js:7747:26)\n"
       "      at EnvironmentPluginContainer.transform (file:///workspace/browser-1/app/node_modules/vite/dist/node/chunks/node.js:8636:51)\n"
       "      at async loadAndTransform (file:///workspace/browser-1/app/node_modules/vite/dist/node/chunks/node.js:20112:26)\n"
       "      at async viteTransformMiddleware (file:///workspace/browser-1/app/node_modules/vite/dist/node/chunks/node.js:20332:20)\n",
       "vite", "syntax", "error", "/workspace/browser-1/app/src/main.ts", 4, 16},
  };
  expect_ones("vite", ones, SP_ARRAY_SIZE(ones));
}
END_TEST

START_TEST(test_esbuild)
{
  static const struct one ones[] = {
      {"✘ [ERROR] Could not resolve \"left-pad\"\n"
       "\n"
       "    src/util/pad.ts:1:20:\n"
       "      1 │ import leftPad from \"left-pad\";\n"
       "        ╵                     ~~~~~~~~~~\n"
       "\n"
       "  You can mark the path \"left-pad\" as external to exclude it from the bundle.\n"
       "\n"
       "1 error\n",
       "esbuild", "module-resolution", "error", "src/util/pad.ts", 1, 20},
      {"✘ [ERROR] Expected \";\" but found \"y\"\n"
       "\n"
       "    lib/x.js:4:8:\n"
       "      4 │ let x = y y\n"
       "        ╵         ^\n",
       "esbuild", "syntax", "error", "lib/x.js", 4, 8},
      /* The JavaScript API's thrown error. */
      {"Error: Build failed with 1 error:\n"
       "src/app.ts:9:2: ERROR: Could not resolve \"zod\"\n"
       "    at failureErrorWithLog (/p/node_modules/esbuild/lib/main.js:1476:15)\n",
       "esbuild", "module-resolution", "error", "src/app.ts", 9, 2},
  };
  expect_ones("esbuild", ones, SP_ARRAY_SIZE(ones));
}
END_TEST

START_TEST(test_typescript)
{
  static const struct one ones[] = {
      {"src/models/user.ts(41,7): error TS2322: Type 'string' is not "
       "assignable to type 'number'.\n",
       "typescript", "type", "error", "src/models/user.ts", 41, 7},
      {"src/models/user.ts:41:7 - error TS2322: Type 'string' is not "
       "assignable to type 'number'.\n"
       "\n"
       "41   const age: number = input.age;\n"
       "           ~~~\n"
       "\n"
       "Found 1 error in src/models/user.ts:41\n",
       "typescript", "type", "error", "src/models/user.ts", 41, 7},
      {"src/index.ts:2:22 - error TS2307: Cannot find module './routes' or "
       "its corresponding type declarations.\n",
       "typescript", "module-resolution", "error", "src/index.ts", 2, 22},
      {"src/index.ts(5,1): error TS1128: Declaration or statement expected.\n",
       "typescript", "syntax", "error", "src/index.ts", 5, 1},
  };
  expect_ones("typescript", ones, SP_ARRAY_SIZE(ones));
}
END_TEST

START_TEST(test_react)
{
  static const struct one ones[] = {
      {"Warning: Each child in a list should have a unique \"key\" prop.\n"
       "\n"
       "Check the render method of `TodoList`.\n"
       "    in li (at TodoList.jsx:12)\n"
       "    in TodoList (at App.jsx:8)\n",
       "react", "warning", "warning", "TodoList.jsx", 12, 0},
      {"Error: Too many re-renders. React limits the number of renders to "
       "prevent an infinite loop.\n"
       "    at renderWithHooks (/app/node_modules/react-dom/cjs/react-dom.development.js:16317:19)\n"
       "    at Counter (/app/src/Counter.jsx:4:3)\n",
       "react", "runtime", "error", "/app/src/Counter.jsx", 4, 3},
  };
  expect_ones("react", ones, SP_ARRAY_SIZE(ones));
}
END_TEST

START_TEST(test_nextjs)
{
  static const struct one ones[] = {
      {" ⨯ ./app/dashboard/page.tsx:3:1\n"
       "Module not found: Can't resolve '@/lib/db'\n"
       "  1 | import { Suspense } from 'react'\n"
       "> 3 | import { db } from '@/lib/db'\n"
       "\n"
       "https://nextjs.org/docs/messages/module-not-found\n",
       "nextjs", "module-resolution", "error", "./app/dashboard/page.tsx", 3, 1},
      {"Port 3000 is already in use.\n", "nextjs", "port-in-use", "error", NULL, 0, 0},
  };
  static const struct first firsts[] = {
      /* "Failed to compile" stays fatal when refined. */
      {.text = "Failed to compile.\n"
               "\n"
               "./app/page.tsx:10:5\n"
               "Type error: Property 'title' does not exist on type 'Props'.\n",
       .only = true, .tool = "nextjs", .category = "type", .file = "./app/page.tsx",
       .line = 10, .column = 5, .restart = FATAL},
      {.text = " ⨯ Error: listen EADDRINUSE: address already in use :::3000\n"
               "    at Server.setupListenHandle [as _listen2] (node:net:1817:16)\n",
       .tool = "nextjs", .category = "port-in-use", .restart = FATAL},
  };
  expect_ones("nextjs", ones, SP_ARRAY_SIZE(ones));
  expect_firsts("nextjs", firsts, SP_ARRAY_SIZE(firsts));
}
END_TEST

START_TEST(test_node)
{
  static const struct one ones[] = {
      /* Uncaught error: the first frame inside the project. */
      {"TypeError: Cannot read properties of null (reading 'id')\n"
       "    at getUser (/srv/api/node_modules/orm/lib/query.js:88:12)\n"
       "    at handler (/srv/api/src/routes/users.js:21:30)\n"
       "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)\n"
       "\n"
       "Node.js v20.11.0\n",
       "node", "runtime", "error", "/srv/api/src/routes/users.js", 21, 30},
      /* Throw-site header before a SyntaxError. */
      {"/srv/api/src/config.js:14\n"
       "  port: 8080,,\n"
       "             ^\n"
       "\n"
       "SyntaxError: Unexpected token ','\n"
       "    at internalCompileFunction (node:internal/vm:76:18)\n",
       "node", "syntax", "error", "/srv/api/src/config.js", 14, 0},
      {"node:internal/process/promises:289\n"
       "            triggerUncaughtException(err, true /* fromPromise */);\n"
       "            ^\n"
       "\n"
       "[UnhandledPromiseRejection: This error originated either by throwing "
       "inside of an async function without a catch block.]\n",
       "node", "runtime", "error", NULL, 0, 0},
      {"node:internal/errors:496\n"
       "    ErrorCaptureStackTrace(err);\n"
       "    ^\n"
       "\n"
       "Error [ERR_MODULE_NOT_FOUND]: Cannot find module '/srv/api/src/db' "
       "imported from /srv/api/src/index.js\n"
       "    at new NodeError (node:internal/errors:405:5)\n",
       "node", "module-resolution", "error", "/srv/api/src/index.js", 0, 0},
      {"(node:4242) [DEP0040] DeprecationWarning: The `punycode` module is "
       "deprecated.\n",
       "node", "warning", "warning", NULL, 0, 0},
      {"ERROR in ./src/index.js 5:0-24\n"
       "Module not found: Error: Can't resolve './App' in '/srv/web/src'\n",
       "webpack", "module-resolution", "error", "./src/index.js", 5, 0},
      {"Error: connect ECONNREFUSED 127.0.0.1:6379\n"
       "    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)\n",
       "node", "network", "error", NULL, 0, 0},
  };
  static const struct first firsts[] = {
      {.text = "node:internal/modules/cjs/loader:1148\n"
               "  throw err;\n"
               "  ^\n"
               "\n"
               "Error: Cannot find module 'dotenv'\n"
               "Require stack:\n"
               "- /srv/api/index.js\n"
               "    at Module._resolveFilename (node:internal/modules/cjs/loader:1145:15)\n"
               "    at Object.<anonymous> (/srv/api/index.js:1:1)\n"
               "  code: 'MODULE_NOT_FOUND',\n"
               "}\n",
       .only = true, .tool = "node", .category = "module-resolution",
       .file = "/srv/api/index.js", .line = 1, .restart = FATAL,
       .raw_has = "Require stack:"},
      {.text = "Error: listen EADDRINUSE: address already in use :::4000\n"
               "    at Server.setupListenHandle [as _listen2] (node:net:1817:16)\n",
       .category = "port-in-use", .file = NO_FILE, .restart = FATAL},
      {.text = "<--- JS stacktrace --->\n"
               "\n"
               "FATAL ERROR: Ineffective mark-compacts near heap limit Allocation "
               "failed - JavaScript heap out of memory\n"
               " 1: 0xb7a940 node::Abort() [node]\n",
       .category = "memory", .restart = FATAL},
  };
  expect_ones("node", ones, SP_ARRAY_SIZE(ones));
  expect_firsts("node", firsts, SP_ARRAY_SIZE(firsts));
}
END_TEST

START_TEST(test_package_managers)
{
  static const struct one ones[] = {
      {"npm error code ENOENT\n"
       "npm error syscall open\n"
       "npm error path /work/app/package.json\n"
       "npm error errno -2\n",
       "npm", "dependency", "error", "/work/app/package.json", 0, 0},
      {" ERR_PNPM_NO_MATCHING_VERSION  No matching version found for "
       "react@^99.0.0\n"
       "\n"
       "This error happened while installing the dependencies of app@1.0.0\n",
       "pnpm", "dependency", "error", NULL, 0, 0},
      {"error: left-padd@^1.0.0 failed to resolve\n", "bun", "dependency",
       "error", NULL, 0, 0},
      /* Bun prints the code frame before the error. */
      {"3 | const r = undefinedThing.run();\n"
       "              ^\n"
       "ReferenceError: undefinedThing is not defined\n"
       "      at /srv/bunapp/index.ts:3:11\n",
       "bun", "runtime", "error", "/srv/bunapp/index.ts", 3, 11},
  };
  static const struct first firsts[] = {
      {.text = "npm ERR! code ERESOLVE\n"
               "npm ERR! ERESOLVE could not resolve\n"
               "npm ERR! \n"
               "npm ERR! While resolving: app@1.0.0\n"
               "npm ERR! Found: vite@5.0.0\n"
               "\n"
               "npm ERR! A complete log of this run can be found in:\n"
               "npm ERR!     /root/.npm/_logs/debug-0.log\n",
       .only = true, /* the whole block is one event */
       .tool = "npm", .category = "dependency"},
  };
  expect_ones("package managers", ones, SP_ARRAY_SIZE(ones));
  expect_firsts("package managers", firsts, SP_ARRAY_SIZE(firsts));
}
END_TEST

START_TEST(test_python)
{
  static const struct one ones[] = {
      {"  File \"/srv/py/app.py\", line 9\n"
       "    def f(:\n"
       "          ^\n"
       "SyntaxError: invalid syntax\n",
       "python", "syntax", "error", "/srv/py/app.py", 9, 0},
  };
  static const struct first firsts[] = {
      {.text = "Traceback (most recent call last):\n"
               "  File \"/srv/py/app.py\", line 3, in <module>\n"
               "    from views import home\n"
               "  File \"/srv/py/views.py\", line 1, in <module>\n"
               "    import requests\n"
               "ModuleNotFoundError: No module named 'requests'\n",
       .only = true, .tool = "python", .category = "module-resolution",
       .message = "ModuleNotFoundError: No module named 'requests'",
       .file = "/srv/py/views.py", /* the innermost frame */
       .line = 1, .raw_has = "Traceback"},
      /* A chained traceback is one event: the exception that propagated. */
      {.text = "Traceback (most recent call last):\n"
               "  File \"/srv/py/db.py\", line 5, in get\n"
               "    return cache[k]\n"
               "KeyError: 'k'\n"
               "\n"
               "During handling of the above exception, another exception occurred:\n"
               "\n"
               "Traceback (most recent call last):\n"
               "  File \"/srv/py/db.py\", line 7, in get\n"
               "    raise LookupError(k)\n"
               "LookupError: k\n",
       .only = true, .category = "runtime", .message = "LookupError: k", .line = 7},
      /* Django logs a line before the traceback: still one event. */
      {.text = "Internal Server Error: /api/items/\n"
               "Traceback (most recent call last):\n"
               "  File \"/usr/lib/python3/site-packages/django/core/handlers/base.py\", "
               "line 197, in _get_response\n"
               "    response = wrapped_callback(request, *args, **kwargs)\n"
               "  File \"/srv/py/api/views.py\", line 12, in get\n"
               "    return item.name\n"
               "AttributeError: 'NoneType' object has no attribute 'name'\n",
       .only = true, .category = "runtime",
       .message = "AttributeError: 'NoneType' object has no attribute 'name'",
       .file = "/srv/py/api/views.py", .line = 12},
      /* Python 3.11 exception groups: the sub-exception is the error. */
      {.text = "ERROR:    Exception in ASGI application\n"
               "  + Exception Group Traceback (most recent call last):\n"
               "  |   File \"/venv/lib/python3.12/site-packages/anyio/_core.py\", line 9, in x\n"
               "  |     raise BaseExceptionGroup(\n"
               "  | ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception)\n"
               "  +-+---------------- 1 ----------------\n"
               "    | Traceback (most recent call last):\n"
               "    |   File \"/srv/py/main.py\", line 21, in list_items\n"
               "    |     return db.fetch_all()\n"
               "    | AttributeError: 'NoneType' object has no attribute 'fetch_all'\n"
               "    +------------------------------------\n"
               "INFO:     127.0.0.1:50001 - \"GET /health HTTP/1.1\" 200 OK\n",
       .only = true,
       .message = "AttributeError: 'NoneType' object has no attribute 'fetch_all'",
       .file = "/srv/py/main.py", .line = 21},
      {.text = "ERROR:    [Errno 98] error while attempting to bind on address "
               "('0.0.0.0', 8000): address already in use\n",
       .category = "port-in-use", .restart = FATAL},
  };
  expect_ones("python", ones, SP_ARRAY_SIZE(ones));
  expect_firsts("python", firsts, SP_ARRAY_SIZE(firsts));
}
END_TEST

START_TEST(test_pino)
{
  static const struct first firsts[] = {
      {.text = "{\"level\":30,\"time\":1,\"msg\":\"server listening\"}\n"
               "{\"level\":50,\"time\":2,\"pid\":7,\"msg\":\"request failed\",\"err\":{\"type\":"
               "\"Error\",\"message\":\"boom\",\"stack\":\"Error: boom\\n    at run "
               "(/srv/node_modules/x/y.js:1:1)\\n    at handler (/srv/src/h.js:10:15)\"}}\n",
       .only = true, .tool = "pino", .category = "runtime", .severity = "error",
       .message = "request failed: boom", .file = "/srv/src/h.js", .line = 10,
       .column = 15, .restart = NOT_FATAL},
      {.text = "{\"level\":60,\"msg\":\"listen EADDRINUSE: address already in use "
               ":::3000\"}\n",
       .category = "port-in-use", .restart = FATAL},
  };
  expect_firsts("pino", firsts, SP_ARRAY_SIZE(firsts));

  /* A line longer than what is matched as text is still parsed whole. */
  struct sbuf big = SBUF_INIT;
  sbuf_addstr(&big, "{\"level\":50,\"msg\":\"crash\",\"err\":{\"message\":\"deep\","
                    "\"stack\":\"Error: deep");
  for (int i = 0; i < 200; i++)
    sbuf_addf(&big, "\\n    at f%d (/srv/node_modules/m/i.js:%d:1)", i, i + 1);
  sbuf_addstr(&big, "\\n    at main (/srv/src/main.js:3:4)\"}}\n");
  ck_assert_uint_gt(big.len, 2 * CLASSIFY_LINE_MAX);
  const struct first whole = {.text = sbuf_str(&big), .only = true, .tool = "pino",
                              .message = "crash: deep", .file = "/srv/src/main.js",
                              .raw_max = CLASSIFY_RAW_MAX_BYTES};
  expect_firsts("pino, a long line", &whole, 1);
  sbuf_release(&big);

  /* Info lines are not errors even when they mention one. */
  struct evlist l = {.keep = true};
  feed_text(rules,
            "{\"level\":30,\"msg\":\"Error: handled and retried\"}\n"
            "{\"level\":20,\"msg\":\"TypeError: x is not a function\"}\n",
            &l);
  ck_assert_uint_eq(l.n, 0);
  evlist_release(&l);
}
END_TEST

START_TEST(test_benign)
{
  static const char *const lines[] = {
      "  VITE v5.2.0  ready in 312 ms",
      "  ➜  Local:   http://localhost:5173/",
      "  ➜  Network: use --host to expose",
      "Found 0 errors. Watching for file changes.",
      "[10:00:01 AM] Found 0 errors. Watching for file changes.",
      "0 errors",
      "Compiled successfully!",
      "webpack compiled successfully",
      "webpack 5.90.1 compiled successfully in 812 ms",
      " ✓ Ready in 1.2s",
      " ✓ Compiled /api/health in 210ms",
      "found 0 vulnerabilities",
      "INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)",
      "2025-01-01 10:00:00 - uvicorn.error - INFO - Application startup complete.",
      "[vite] hmr update /src/ErrorBoundary.tsx",
      "GET /api/errors 200 in 12ms",
      "Port 5173 is in use, trying another one...",
      "Node.js v20.11.0",
      "added 120 packages, and audited 121 packages in 3s",
  };
  struct evlist l = {.keep = true};
  struct classifier *c = classifier_new(rules);
  for (size_t i = 0; i < SP_ARRAY_SIZE(lines); i++)
    classifier_feed(c, lines[i], strlen(lines[i]), (int64_t)i, collect, &l);
  classifier_flush(c, 100, 0, collect, &l);
  for (size_t i = 0; i < l.n; i++)
    fprintf(stderr, "unexpected event: %s: %s\n", l.v[i].rule, l.v[i].message);
  ck_assert_uint_eq(l.n, 0);
  classifier_free(c);
  evlist_release(&l);
}
END_TEST

START_TEST(test_ansi)
{
  static const struct one ones[] = {
      /* tsc --pretty with colours; an OSC hyperlink; cursor movement. */
      {"\x1b[96msrc/a.ts\x1b[0m:\x1b[93m4\x1b[0m:\x1b[93m2\x1b[0m - "
       "\x1b[91merror\x1b[0m\x1b[90m TS2304: \x1b[0mCannot find name "
       "'\x1b]8;;file:///x\x07foo\x1b]8;;\x07'.\n"
       "\n"
       "\x1b[7m4\x1b[0m  foo();\n"
       "\x1b[7m \x1b[0m \x1b[91m ~~~\x1b[0m\n",
       "typescript", "type", "error", "src/a.ts", 4, 2},
  };
  static const struct first firsts[] = {
      /* Carriage-return overwrites: only what is visible last counts. */
      {.text = "building... 10%\rbuilding... 50%\r\x1b[2K"
               "Error: connect ECONNREFUSED 10.0.0.5:5432\r\n",
       .message = "Error: connect ECONNREFUSED 10.0.0.5:5432",
       .raw_is = "Error: connect ECONNREFUSED 10.0.0.5:5432"},
      /* Escape sequences never reach messages or raw text. */
      {.text = "\x1b[31mError: \x1b[1mboom\x1b[22m\x1b[39m\n"
               "\x1b[90m    at x (/srv/a.js:1:2)\x1b[39m\n",
       .message = "Error: boom", .file = "/srv/a.js", .raw_plain = true},
  };
  expect_ones("ansi", ones, SP_ARRAY_SIZE(ones));
  expect_firsts("ansi", firsts, SP_ARRAY_SIZE(firsts));
}
END_TEST

START_TEST(test_normalise)
{
  static const char *const pairs[][2] = {
      {"2024-05-01T10:00:00.123Z Error: connect ECONNREFUSED 127.0.0.1:5432",
       "2024-06-02T11:22:33.999Z Error: connect ECONNREFUSED 127.0.0.1:5433"},
      {"10:55:40 AM [vite] Internal server error in /src/App.tsx:12:5",
       "1:53:32 p.m. [vite] Internal server error in /src/App.tsx:40:17"},
      {"Failed to load http://localhost:5173/src/main.ts?v=3f2a9c1b",
       "Failed to load http://localhost:5174/src/main.ts?v=99aa00ff&t=1700000000"},
      {"at file:///app/node_modules/.vite/deps/chunk-5E7F419B.js:10:3",
       "at file:///app/node_modules/.vite/deps/chunk-A1B2C3D4.js:11:9"},
      {"load /assets/index-DG3BLbPj.js failed", "load /assets/index-Xy9Qw2Ab.js failed"},
      {"src/a.ts(12,5): error TS2322:   Type  mismatch",
       "src/a.ts(40,1): error TS2322: Type mismatch "},
      {"\x1b[31mError:\x1b[0m listen EADDRINUSE :::3000",
       "Error: listen EADDRINUSE :::3001"},
  };
  for (size_t i = 0; i < SP_ARRAY_SIZE(pairs); i++) {
    char *a = classify_normalise(pairs[i][0], strlen(pairs[i][0]));
    char *b = classify_normalise(pairs[i][1], strlen(pairs[i][1]));
    if (strcmp(a, b) != 0)
      fprintf(stderr, "normalise: \"%s\" != \"%s\"\n", a, b);
    ck_assert_str_eq(a, b);
    ck_assert_uint_eq(classify_hash("vite", "runtime", a),
                      classify_hash("vite", "runtime", b));
    free(a);
    free(b);
  }
  /* Different messages, tools or categories hash differently. */
  char *a = classify_normalise("Cannot find module 'a'", 22);
  char *b = classify_normalise("Cannot find module 'b'", 22);
  ck_assert_str_ne(a, b);
  ck_assert_uint_ne(classify_hash("node", "runtime", a), classify_hash("node", "runtime", b));
  ck_assert_uint_ne(classify_hash("node", "runtime", a), classify_hash("bun", "runtime", a));
  ck_assert_uint_ne(classify_hash("node", "runtime", a), classify_hash("node", "build", a));
  free(a);
  free(b);
  char *w = classify_normalise("  a \t  b  ", 10);
  ck_assert_str_eq(w, "a b");
  free(w);
  /* FNV-1a of the empty string with two separators is documented. */
  ck_assert_uint_eq(classify_hash(NULL, NULL, NULL), classify_hash("", "", ""));

  /* Events repeated with another time and port de-duplicate. */
  struct evlist l = {.keep = true};
  feed_text(rules,
            "12:00:01 [vite] http proxy error: /api\n"
            "Error: connect ECONNREFUSED 127.0.0.1:8000\n"
            "unrelated\n"
            "12:07:55 [vite] http proxy error: /api\n"
            "Error: connect ECONNREFUSED 127.0.0.1:8001\n",
            &l);
  ck_assert_uint_eq(l.n, 2);
  ck_assert_uint_eq(l.v[0].hash, l.v[1].hash);
  evlist_release(&l);
}
END_TEST

START_TEST(test_bad_rules)
{
  /* Each text fails to load, with an error that says all of `says`; most
   * come after a valid rule. */
  static const char ok_rule[] = "[[rule]]\nname = \"ok\"\ntool = \"x\"\ncategory = "
                                "\"build\"\npattern = 'abc'\n\n";
  static const struct {
    bool after_ok;
    const char *text;
    const char *says[5];
  } bad[] = {
      {true,
       "[[rule]]\nname = \"bad-regex\"\ntool = \"vite\"\ncategory = \"build\"\n"
       "pattern = '''Failed (to'''\n",
       {"rules.toml:11:", "\"bad-regex\"", "pattern"}},
      {true,
       "[[rule]]\nname = \"typo\"\ntool = \"vite\"\ncategory = \"build\"\n"
       "pattern = 'x+y'\nrestrat = true\n",
       {"rules.toml:12:", "\"typo\"", "unknown key \"restrat\""}},
      {true,
       "[[rule]]\nname = \"wrong-type\"\ntool = \"vite\"\ncategory = \"build\"\n"
       "pattern = 'xyz'\nrestart = \"yes\"\n",
       {"rules.toml:12:", "\"wrong-type\"", "restart", "boolean"}},
      {true,
       "[[rule]]\nname = \"cat\"\ntool = \"vite\"\ncategory = \"explosions\"\n"
       "pattern = 'xyz'\n",
       {"rules.toml:10:", "\"cat\"", "explosions"}},
      {true, "[[rule]]\nname = \"nopat\"\ntool = \"vite\"\ncategory = \"build\"\n",
       {"rules.toml:7:", "\"nopat\"", "missing key \"pattern\""}},
      {true,
       "[[rule]]\nname = \"capture\"\ntool = \"vite\"\ncategory = \"build\"\n"
       "pattern = '(?<fle>x)yz'\n",
       {"rules.toml:11:", "\"capture\"", "fle"}},
      {true, "[[rule]]\nname = \"ok\"\ntool = \"x\"\ncategory = \"build\"\npattern = 'abc'\n",
       {"rules.toml:8:", "duplicate"}},
      {false, "[[benign]]\npattern = '(['\n", {"rules.toml:2:", "benign #1"}},
      {false, "[[rules]]\nname = \"x\"\n", {"rules.toml:", "unknown key \"rules\""}},
  };
  for (size_t i = 0; i < SP_ARRAY_SIZE(bad); i++) {
    cleanup_free char *text = xasprintf("%s%s", bad[i].after_ok ? ok_rule : "", bad[i].text);
    struct sp_error *err = NULL;
    struct classify_rules *r = classify_rules_parse(text, strlen(text), "rules.toml", &err);
    ck_assert_msg(r == NULL, "bad rules #%zu: loaded", i);
    ck_assert_msg(err != NULL, "bad rules #%zu: no error", i);
    for (const char *const *say = bad[i].says; *say; say++)
      ck_assert_msg(strstr(err->msg, *say) != NULL,
                    "bad rules #%zu: error \"%s\" lacks \"%s\"", i, err->msg, *say);
    sp_error_free(err);
  }

  /* A loader error names the file. */
  struct sp_error *err = NULL;
  ck_assert_ptr_null(classify_rules_load("/nonexistent/rules.toml", &err));
  ck_assert_ptr_nonnull(strstr(err->msg, "/nonexistent/rules.toml"));
  sp_error_free(err);

  /* A rule without a usable literal still works, but is counted. */
  struct sp_error *e2 = NULL;
  static const char ok[] = "[[rule]]\nname = \"digits\"\ntool = \"x\"\n"
                           "category = \"build\"\npattern = '^\\d+$'\n";
  struct classify_rules *r = classify_rules_parse(ok, strlen(ok), "ok.toml", &e2);
  ck_assert_ptr_nonnull(r);
  ck_assert_uint_eq(classify_rules_count(r), 1);
  ck_assert_uint_eq(classify_rules_unfiltered(r), 1);
  classify_rules_free(r);
}
END_TEST

START_TEST(test_default_rules_fast)
{
  /* Every default rule can be skipped by the prefilter. */
  ck_assert_uint_gt(classify_rules_count(rules), 50);
  ck_assert_uint_eq(classify_rules_unfiltered(rules), 0);
}
END_TEST

START_TEST(test_hostile)
{
  struct evlist l = {.keep = false};
  struct classifier *c = classifier_new(rules);
  int64_t now = 0;

  /* A 100k-character line, with an error at its start and at its end. */
  size_t big = 100000;
  char *line = xmalloc(big + 1);
  memset(line, 'a', big);
  memcpy(line, "Error: ", 7);
  memcpy(line + big - 20, "TypeError: x is bad", 19);
  classifier_feed(c, line, big, now++, collect, &l);
  /* Backtracking bait for patterns with nested repetition. */
  for (size_t i = 0; i < big; i++)
    line[i] = " (:,"[i % 4];
  memcpy(line, "src/a.ts", 8);
  classifier_feed(c, line, big, now++, collect, &l);
  memset(line, '\x1b', big);
  classifier_feed(c, line, big, now++, collect, &l);
  memset(line, '\r', big);
  classifier_feed(c, line, big, now++, collect, &l);
  /* Long carriage-return segments, each longer than what is classified. */
  for (size_t i = 0; i < big; i++)
    line[i] = i % 6000 == 5999 ? '\r' : "Error: x "[i % 9];
  line[3] = '\x1b';
  classifier_feed(c, line, big, now++, collect, &l);
  free(line);

  /* NUL bytes and invalid UTF-8 in an error line and its frames. */
  static const char nul[] = "Error: bad\0byte \xff\xfe\xc3 end";
  classifier_feed(c, nul, sizeof nul - 1, now++, collect, &l);
  static const char frame[] = "    at f (/a/\xc0\xaf\0b.js:1:2)";
  classifier_feed(c, frame, sizeof frame - 1, now++, collect, &l);
  static const char bad[] = "\xed\xa0\x80\xf4\x90\x80\x80 SyntaxError: \xe2\x9c";
  classifier_feed(c, bad, sizeof bad - 1, now++, collect, &l);
  classifier_feed(c, NULL, 0, now++, collect, &l);
  classifier_feed(c, "", 0, now++, collect, &l);
  static const char pino[] = "{\"level\":50,\"msg\":\"\\u0000\\ud800\xff\",\"err\":{\"stack\":7}}";
  classifier_feed(c, pino, sizeof pino - 1, now++, collect, &l);
  classifier_flush(c, now, 0, collect, &l);
  ck_assert_uint_ge(l.n, 3);

  /* A flood: an error followed by a million frames, then a million lines of
   * noise and errors; the raw text stays capped. */
  struct evlist kept = {.keep = true};
  classifier_feed(c, "Error: flood", 12, now++, collect, &kept);
  char buf[128];
  for (int i = 0; i < 1000000; i++) {
    int n = snprintf(buf, sizeof buf, "    at f%d (/srv/x%d.js:%d:1)", i, i % 7, i);
    classifier_feed(c, buf, (size_t)n, now++, collect, &kept);
  }
  classifier_flush(c, now, 0, collect, &kept);
  ck_assert_uint_ge(kept.n, 1);
  for (size_t i = 0; i < kept.n; i++) {
    ck_assert_uint_le(strlen(kept.v[i].raw), CLASSIFY_RAW_MAX_BYTES);
    size_t lines = 1;
    for (const char *p = kept.v[i].raw; *p; p++)
      lines += *p == '\n';
    ck_assert_uint_le(lines, CLASSIFY_RAW_MAX_LINES);
  }
  evlist_release(&kept);
  l.n = 0;
  for (int i = 0; i < 1000000; i++) {
    int n = snprintf(buf, sizeof buf, i % 3 ? "noise %d" : "Error: %d", i);
    classifier_feed(c, buf, (size_t)n, now++, collect, &l);
  }
  classifier_flush(c, now, 0, collect, &l);
  ck_assert_uint_ge(l.n, 300000);
  classifier_free(c);
}
END_TEST

START_TEST(test_flush)
{
  struct evlist l = {.keep = true};
  struct classifier *c = classifier_new(rules);
  classifier_feed(c, "Error: later", 12, 1000, collect, &l);
  classifier_flush(c, 1100, 500, collect, &l);
  ck_assert_uint_eq(l.n, 0); /* not idle long enough: frames may follow */
  classifier_feed(c, "    at g (/srv/g.js:2:3)", 24, 1200, collect, &l);
  classifier_flush(c, 1600, 500, collect, &l);
  ck_assert_uint_eq(l.n, 0);
  classifier_flush(c, 1700, 500, collect, &l);
  ck_assert_uint_eq(l.n, 1);
  ck_assert_pstr_eq(l.v[0].file, "/srv/g.js");
  classifier_flush(c, 5000, 0, collect, &l);
  ck_assert_uint_eq(l.n, 1);
  /* A traceback with no end yet is not an event. */
  classifier_feed(c, "Traceback (most recent call last):", 34, 6000, collect, &l);
  classifier_flush(c, 9000, 0, collect, &l);
  ck_assert_uint_eq(l.n, 1);
  classifier_free(c);
  classifier_free(NULL);
  classify_rules_free(NULL);
  evlist_release(&l);
}
END_TEST

START_TEST(test_speed)
{
  static const char *const benign[] = {
      "GET /api/users 200 in 12ms",
      "  VITE v5.2.0  ready in 312 ms",
      "[vite] hmr update /src/components/Header.tsx, /src/index.css",
      "{\"level\":30,\"time\":1700000000000,\"pid\":42,\"hostname\":\"box\",\"msg\":\"request completed\"}",
      "INFO:     127.0.0.1:53012 - \"GET /health HTTP/1.1\" 200 OK",
      " ✓ Compiled /dashboard in 845ms (1203 modules)",
      "prisma:query SELECT \"public\".\"User\".\"id\" FROM \"public\".\"User\" WHERE 1=1",
      "webpack 5.90.1 compiled successfully in 812 ms",
      "127.0.0.1 - - [01/Jan/2025 10:00:00] \"POST /api/login HTTP/1.1\" 302 -",
      "  ➜  Local:   http://localhost:5173/",
  };
  static const char *const errors[] = {
      "TypeError: Cannot read properties of undefined (reading 'map')",
      "    at render (/srv/app/src/List.tsx:14:22)",
      "src/a.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'.",
      "Error: connect ECONNREFUSED 127.0.0.1:5432",
  };
  const int total = 1000000;
  struct evlist l = {.keep = false};
  struct classifier *c = classifier_new(rules);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  unsigned x = 12345;
  for (int i = 0; i < total; i++) {
    x = x * 1103515245u + 12345u;
    const char *s = (x >> 8) % 100 == 0 ? errors[(x >> 16) % 4] : benign[(x >> 16) % 10];
    classifier_feed(c, s, strlen(s), i, collect, &l);
  }
  classifier_flush(c, total, 0, collect, &l);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  printf("classifier speed: %.0f lines/s (%d lines, about 1%% errors, %zu events, "
         "%.3f s)\n",
         total / secs, total, l.n, secs);
  ck_assert_uint_gt(l.n, 5000);
  classifier_free(c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Accuracy on the corpus                                                   */

struct label {
  char *fixture, *tool, *category, *severity, *file, *line, *column;
};

static char *field(char **p)
{
  char *s = *p;
  if (s == NULL)
    return NULL;
  char *tab = strchr(s, '\t');
  if (tab) {
    *tab = '\0';
    *p = tab + 1;
  } else {
    *p = NULL;
  }
  return s;
}

/* Synonyms only where they name the same thing. */
static bool same_tool(const char *want, const char *got)
{
  static const char *const syn[][2] = {
      {"typescript", "tsc"},
      {"nextjs", "next"},
  };
  if (strcmp(want, got) == 0)
    return true;
  for (size_t i = 0; i < SP_ARRAY_SIZE(syn); i++)
    if (strcmp(want, syn[i][0]) == 0 && strcmp(got, syn[i][1]) == 0)
      return true;
  return false;
}

/* Missed labels, each "fixture\tfield\texpected" as known-misses.txt
 * spells it, with what the test says about it. */
struct misses {
  char **key, **text;
  size_t n;
};

static void misses_add(struct misses *m, char *key, char *text)
{
  m->key = xreallocarray(m->key, m->n + 1, sizeof *m->key);
  m->text = xreallocarray(m->text, m->n + 1, sizeof *m->text);
  m->key[m->n] = key;
  m->text[m->n++] = text;
}

static bool misses_has(const struct misses *m, const char *key)
{
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->key[i], key) == 0)
      return true;
  return false;
}

static void misses_release(struct misses *m)
{
  for (size_t i = 0; i < m->n; i++) {
    free(m->key[i]);
    free(m->text[i]);
  }
  free(m->key);
  free(m->text);
  memset(m, 0, sizeof *m);
}

/* The baseline of known misses: "fixture<TAB>field<TAB>expected" lines,
 * '#' comments and blank lines skipped. */
static void load_known_misses(const char *path, struct misses *out)
{
  struct sp_error *err = NULL;
  char *text = sp_read_file(path, 0, NULL, &err);
  ck_assert_msg(text != NULL, "cannot read the baseline of known misses: %s",
                err ? err->msg : path);
  char *p = text;
  int n = 0;
  for (char *line; (line = strsep(&p, "\n")) != NULL;) {
    n++;
    size_t len = strlen(line);
    if (len > 0 && line[len - 1] == '\r')
      line[--len] = '\0';
    if (len == 0 || line[0] == '#')
      continue;
    char *t1 = strchr(line, '\t');
    char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    ck_assert_msg(t1 > line && t2 > t1 + 1 && t2[1] != '\0' && strchr(t2 + 1, '\t') == NULL,
                  "%s:%d: want fixture<TAB>field<TAB>expected, got \"%s\"", path, n, line);
    misses_add(out, xstrdup(line),
               xasprintf("%.*s %.*s \"%s\"", (int)(t1 - line), line, (int)(t2 - t1 - 1),
                         t1 + 1, t2 + 1));
  }
  free(text);
}

/* Prints each entry of a that b lacks, as "<label>: <entry><advice>", the
 * first one also into *first; returns how many. */
static size_t report_absent(const struct misses *a, const struct misses *b, const char *label,
                            const char *advice, struct sbuf *first)
{
  size_t n = 0;
  for (size_t i = 0; i < a->n; i++) {
    if (misses_has(b, a->key[i]))
      continue;
    printf("%s: %s%s\n", label, a->text[i], advice);
    if (n++ == 0 && first->len == 0)
      sbuf_addf(first, "%s: %s%s", label, a->text[i], advice);
  }
  return n;
}

/* Feed a fixture line by line (bytes as they are), then flush. */
static void classify_fixture(const char *text, size_t len, struct evlist *l)
{
  struct classifier *c = classifier_new(rules);
  int64_t now = 0;
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || text[i] == '\n') {
      if (i > start || i < len)
        classifier_feed(c, text + start, i - start, now++, collect, l);
      start = i + 1;
    }
  }
  classifier_flush(c, now, 0, collect, l);
  classifier_free(c);
}

/* Scores one fixture's labels against what the classifier said: counts
 * them into *right and *labelled, adds each miss to *missed, and prints
 * one line for a fixture with a miss. */
static void score_fixture(const struct label *lb, const struct evlist *l, size_t *right,
                          size_t *labelled, struct misses *missed)
{
  bool want_benign = strcmp(lb->tool, "none") == 0;
  bool want_warning = strcmp(lb->severity, "warning") == 0;
  const struct ev *pred = NULL;
  for (size_t i = 0; i < l->n && pred == NULL; i++)
    if (want_warning || strcmp(l->v[i].severity, "error") == 0)
      pred = &l->v[i];

  char got_line[16], got_col[16];
  snprintf(got_line, sizeof got_line, "%d", pred ? pred->line : 0);
  snprintf(got_col, sizeof got_col, "%d", pred ? pred->column : 0);
  struct {
    const char *name, *want, *got;
  } cmp[] = {
      {"tool", lb->tool, pred ? pred->tool : "(none)"},
      {"category", lb->category, pred ? pred->category : "(none)"},
      {"severity", lb->severity, pred ? pred->severity : "(none)"},
      {"file", lb->file, pred && pred->file ? pred->file : "(none)"},
      {"line", lb->line, got_line},
      {"column", lb->column, got_col},
  };
  struct sbuf miss = SBUF_INIT;
  for (size_t k = 0; k < SP_ARRAY_SIZE(cmp); k++) {
    if (strcmp(cmp[k].want, "-") == 0)
      continue;
    (*labelled)++;
    bool ok = want_benign ? pred == NULL
                          : pred != NULL && (k == 0 ? same_tool(cmp[k].want, cmp[k].got)
                                                    : strcmp(cmp[k].want, cmp[k].got) == 0);
    if (ok) {
      (*right)++;
      continue;
    }
    sbuf_addf(&miss, " %s: want \"%s\" got \"%s\";", cmp[k].name, cmp[k].want, cmp[k].got);
    misses_add(missed, xasprintf("%s\t%s\t%s", lb->fixture, cmp[k].name, cmp[k].want),
               xasprintf("%s %s: want \"%s\" got \"%s\"", lb->fixture, cmp[k].name,
                         cmp[k].want, cmp[k].got));
  }
  if (pred == NULL && !want_benign)
    sbuf_addstr(&miss, " (no error event)");
  if (pred != NULL && want_benign)
    sbuf_addf(&miss, " (benign, but got \"%s\")", pred->message);
  if (miss.len > 0)
    printf("classifier miss %s:%s\n", lb->fixture, sbuf_str(&miss));
  sbuf_release(&miss);
}

/* Every miss must be in the baseline and every baseline entry must still
 * be a miss: the corpus can neither regress nor improve silently. */
START_TEST(test_corpus_accuracy)
{
  char *dir = xasprintf("%s/tests/fixtures/errors", root());
  char *tsv_path = xasprintf("%s/labels.tsv", dir);
  char *known_path = xasprintf("%s/known-misses.txt", dir);
  struct sp_error *err = NULL;
  char *tsv = sp_read_file(tsv_path, 0, NULL, &err);
  if (tsv == NULL)
    fprintf(stderr, "corpus: %s\n", err ? err->msg : "labels.tsv missing");
  ck_assert_msg(tsv != NULL, "labels.tsv missing in %s", dir);
  struct misses known = {0}, missed = {0};
  load_known_misses(known_path, &known);

  size_t right = 0, labelled = 0, fixtures = 0, fully = 0;
  char *save = NULL;
  bool header = true;
  for (char *row = strtok_r(tsv, "\n", &save); row; row = strtok_r(NULL, "\n", &save)) {
    size_t rl = strlen(row);
    if (rl > 0 && row[rl - 1] == '\r')
      row[rl - 1] = '\0';
    if (header) {
      ck_assert_msg(str_starts_with(row, "fixture\tsource\ttool\tcategory\tseverity\t"
                                         "file\tline\tcolumn\tmessage"),
                    "unexpected labels.tsv header: %s", row);
      header = false;
      continue;
    }
    if (*row == '\0' || *row == '#')
      continue;
    char *p = row;
    struct label lb;
    lb.fixture = field(&p);
    (void)field(&p); /* source */
    lb.tool = field(&p);
    lb.category = field(&p);
    lb.severity = field(&p);
    lb.file = field(&p);
    lb.line = field(&p);
    lb.column = field(&p);
    ck_assert_msg(lb.column != NULL, "short row in labels.tsv: %s", lb.fixture);

    char *path = xasprintf("%s/%s", dir, lb.fixture);
    size_t len;
    char *text = sp_read_file(path, 0, &len, &err);
    ck_assert_msg(text != NULL, "cannot read fixture %s", path);
    free(path);
    fixtures++;
    struct evlist l = {.keep = true};
    classify_fixture(text, len, &l);
    free(text);
    size_t missed0 = missed.n;
    score_fixture(&lb, &l, &right, &labelled, &missed);
    fully += missed.n == missed0;
    evlist_release(&l);
  }
  free(tsv);
  free(tsv_path);
  free(dir);

  double acc = labelled ? 100.0 * (double)right / (double)labelled : 0.0;
  printf("classifier accuracy: %.1f%% (%zu/%zu labels), fixtures fully right: "
         "%zu/%zu, known misses: %zu\n",
         acc, right, labelled, fully, fixtures, known.n);

  struct sbuf first = SBUF_INIT;
  size_t problems =
      report_absent(&missed, &known, "new miss", " (not in known-misses.txt)", &first) +
      report_absent(&known, &missed, "fixed miss", " is right now: remove it from the baseline",
                    &first);
  fflush(stdout);
  ck_assert_msg(fixtures >= 60, "corpus has only %zu fixtures (need 60)", fixtures);
  ck_assert_msg(problems == 0, "%zu classifier result(s) differ from %s, first: %s", problems,
                known_path, sbuf_str(&first));
  sbuf_release(&first);
  misses_release(&known);
  misses_release(&missed);
  free(known_path);
}
END_TEST

static Suite *classify_suite(void)
{
  Suite *s = suite_create("classify");
  TCase *t = check_add_tcase(
      s, "formats", 60, NULL, NULL,
      CHECK_TESTS(test_vite, test_esbuild, test_typescript, test_react, test_nextjs, test_node,
                  test_package_managers, test_python, test_pino, test_benign, test_ansi,
                  test_normalise, test_bad_rules, test_default_rules_fast, test_flush));
  tcase_add_unchecked_fixture(t, load_rules, free_rules);
  t = check_add_tcase(s, "robustness", 120, NULL, NULL, CHECK_TESTS(test_hostile, test_speed));
  tcase_add_unchecked_fixture(t, load_rules, free_rules);
  t = check_add_tcase(s, "corpus", 60, NULL, NULL, CHECK_TESTS(test_corpus_accuracy));
  tcase_add_unchecked_fixture(t, load_rules, free_rules);
  return s;
}

CHECK_MAIN(classify_suite)
