/* The error classifier of the container monitor.
 *
 * Every stdout/stderr line of a supervised process goes through a classifier
 * (one per process stream).  Lines are matched against rules loaded from a
 * TOML file (container/rules/default.toml): each rule is a PCRE2 pattern with
 * a tool, a category, a severity and named captures (file, line, column,
 * message).  Lines that belong together (an error line and its stack trace,
 * code frame, location line, a Python traceback, an npm ERR! block) are
 * assembled into one event, which is handed to a callback once the block is
 * over: when a line arrives that does not continue it, when
 * classifier_flush() finds it idle, or at the end of the stream.
 *
 * Rules file:
 *
 *   [[rule]]
 *   name = "vite-failed-resolve-import"   # unique
 *   tool = "vite"
 *   category = "module-resolution"        # syntax, type, module-resolution,
 *                                         # runtime, network, port-in-use,
 *                                         # memory, dependency, build, warning
 *   severity = "error"                    # error | warning (default error)
 *   pattern = '''Failed to resolve import "[^"]+"'''
 *   restart = false    # fatal for the process: the supervisor may restart it
 *   generic = false    # a summary line ("Build failed with 1 error:"): a more
 *                      # specific rule matching later in the same block
 *                      # takes over the event
 *   keep_tool = false  # with generic: the event keeps this rule's tool when
 *                      # a later line refines it ("[vite] Internal server
 *                      # error:" followed by an esbuild message is vite's)
 *   wrapper = false    # the message capture quotes another tool's error
 *                      # ("[vite] Pre-transform error: Cannot find module
 *                      # 'x'"): the first specific rule matching the message
 *                      # gives category, severity and location; this rule
 *                      # gives the tool
 *   context = "any"    # or "python-traceback": the rule only classifies the
 *                      # final line of a Python traceback
 *
 *   [[benign]]
 *   pattern = '''ready in \d+ ms'''       # never an error, whatever matches
 *
 * Rules are tried in file order; the first that matches wins.  Patterns are
 * matched on bytes (no UTF mode), after ANSI escapes, carriage-return
 * overwrites and log-multiplexer prefixes ("web-1  | ", "#9 0.329 ", "[0] ")
 * are removed, on at most the first CLASSIFY_LINE_MAX bytes of a line, with
 * match limits so that no input can make matching run away.  A cheap literal
 * prefilter skips the rules whose required text is absent from a line.
 *
 * An event's location is, in this order: the one its own line names (a
 * capture); a location line of the block ("File: x:1:2", esbuild's
 * "    x:1:2:", Next.js's "./x.tsx:3:0") or Node's throw-site header
 * ("/x.js:9", its column taken from the first frame when that frame points
 * at the same line); the first stack frame inside the project; the first
 * frame outside it (node_modules), never the runtime's own (node:*,
 * internal/...).  A Python traceback reports its innermost frame.
 *
 * JSON log lines (pino: {"level":50,"msg":...}) are events of their own at
 * level 40 (warning) and above, parsed whole up to 64 KiB; lower levels are
 * never errors. */
#ifndef SP_CLASSIFY_H
#define SP_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Only this many bytes of a line are matched and kept in an event. */
#define CLASSIFY_LINE_MAX 4096
/* An event's raw text keeps at most this many lines and bytes. */
#define CLASSIFY_RAW_MAX_LINES 64
#define CLASSIFY_RAW_MAX_BYTES 16384

struct sp_error;

/* Compiled rules: immutable once built, shareable across threads. */
struct classify_rules;

/* Compile rules from TOML text.  `name` names the file in error messages.
 * Unknown keys, wrong types, bad values, duplicate names and patterns that do
 * not compile are errors (code "INVALID_RULES") whose message reads
 * "NAME:LINE: rule \"RULE\": what is wrong". */
struct classify_rules *classify_rules_parse(const char *text, size_t len,
                                            const char *name,
                                            struct sp_error **err);
/* Read and compile a rules file. */
struct classify_rules *classify_rules_load(const char *path,
                                           struct sp_error **err);
/* Accepts NULL.  No classifier may use the rules any more. */
void classify_rules_free(struct classify_rules *r);
/* Number of [[rule]] entries (benign patterns are not counted). */
size_t classify_rules_count(const struct classify_rules *r);
/* Number of rules the literal prefilter cannot skip: they run on every line
 * and cost speed.  Zero in a well-written rules file. */
size_t classify_rules_unfiltered(const struct classify_rules *r);

struct classify_event {
  const char *rule, *tool, *category, *severity; /* owned by the rules */
  const char *file;    /* NULL if unknown */
  int line, column;    /* 0 if unknown */
  const char *message; /* one-line message, valid UTF-8 */
  const char *raw;     /* the assembled event text (lines joined by '\n'),
                          ANSI stripped, valid UTF-8, capped */
  uint64_t hash;       /* classify_hash(tool, category, normalised
                          "FILE: MESSAGE", or MESSAGE if no file) */
  bool restart;        /* the rule marks this as fatal: the supervisor may
                          restart the process */
};                     /* valid only during the callback */

typedef void (*classify_cb)(void *ud, const struct classify_event *ev);

/* A classifier for one stream: not thread-safe; `r` must outlive it. */
struct classifier;

struct classifier *classifier_new(const struct classify_rules *r);
/* Accepts NULL.  A pending event is dropped: flush first to keep it. */
void classifier_free(struct classifier *c);

/* Feed one line without its newline (may contain any bytes: NUL, invalid
 * UTF-8, ANSI).  `now_ms` is any monotonic clock, used for idle flushing.
 * The callback runs for every event that this line completes (zero, one or
 * two events). */
void classifier_feed(struct classifier *c, const char *line, size_t len,
                     int64_t now_ms, classify_cb cb, void *ud);

/* Emit a pending multi-line event if it has been idle since
 * `now_ms - idle_ms` (call from a timer), or unconditionally with
 * idle_ms = 0 (end of stream). */
void classifier_flush(struct classifier *c, int64_t now_ms, int64_t idle_ms,
                      classify_cb cb, void *ud);

/* Normalise a message for de-duplication: strip ANSI escapes; drop
 * timestamps (ISO 8601 dates and times, clock times with optional AM/PM),
 * ":NUMBER" suffixes (ports such as :5173, :line:column), "(line,column)",
 * query strings (?v=..., ?t=..., &...) and hash-like runs (hex of 7+
 * characters with a digit, bundler chunk hashes like "dep-DG3BLbPj");
 * collapse whitespace and trim.  Returns a new string. */
char *classify_normalise(const char *msg, size_t len);

/* 64-bit FNV-1a over tool, a 0 byte, category, a 0 byte and the normalised
 * message (NULL counts as ""). */
uint64_t classify_hash(const char *tool, const char *category,
                       const char *normalised);

#endif
