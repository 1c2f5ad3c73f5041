/* monitor-cli's contract between its files.
 *
 * main.c holds the command table, parses the line (global options may
 * stand anywhere) and prints the one error in main; client.c talks to the
 * monitor, or to a sandbox through sandpitd, with lib/httpc; output.c has
 * the helpers the commands print with; process.c, errors.c, logs.c and
 * monitor.c are the commands themselves. */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>

struct cJSON;
struct sbuf;
struct sp_error;

enum cli_format { FMT_TABLE, FMT_JSON, FMT_RAW };

/* Where requests go and how replies are printed: the global options. */
struct cli {
  const char *socket;  /* the monitor's socket (without --manager) */
  const char *sandbox; /* X-Sandpit-Sandbox (without --manager) */
  const char *manager; /* sandpitd's URL, http://HOST[:PORT][/PREFIX] */
  const char *session; /* the sandbox at sandpitd */
  const char *token;   /* $SANDPIT_API_TOKEN, for sandpitd */
  enum cli_format fmt;
};

/* One option of a command: what getopt_long needs and its line of help.
 * key is the short option's letter, or 256-511 for a long one only (the
 * global options' keys are above).  Tables end with a NULL name. */
struct cli_option {
  const char *name;
  int key;
  const char *arg; /* the value's name in the help; NULL: a flag */
  const char *help;
  /* The query parameter it sets, for a command whose options are its
   * request's query (a flag sends "1"); NULL: none. */
  const char *query;
};

/* A command's line once parsed: its words, and its options in order. */
struct cli_args {
  int argc;
  char **argv;
  int nopts;
  struct cli_value {
    int key;
    const char *value; /* "" for a flag */
  } *opts;
};

/* The last value given for key, or NULL. */
const char *cli_arg(const struct cli_args *a, int key);

/* A usage error (exit status 2).  Returns -1. */
int cli_usage(struct sp_error **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* client.c.  One request; its JSON reply, or NULL with *err (an error
 * reply names the server's message, code and status). */
struct cJSON *cli_request(const struct cli *c, const char *method, const char *path,
                          const char *body, struct sp_error **err);
/* A GET whose reply is a stream of server-sent events: each event's JSON
 * data goes to on_event as it arrives, until the server ends the stream. */
int cli_stream(const struct cli *c, const char *path,
               void (*on_event)(const struct cli *c, const struct cJSON *data),
               struct sp_error **err);
/* Percent-encode s for a path segment or a query value. */
char *cli_escape(const char *s);
/* Append "?name=value" (or "&name=value"), value percent-encoded. */
void cli_query(struct sbuf *path, const char *name, const char *value);
/* Append to path the query of every option in a that has one in opts. */
void cli_query_options(struct sbuf *path, const struct cli_option *opts, const struct cli_args *a);

/* output.c */
const char *cli_str(const struct cJSON *o, const char *key, const char *def);
/* A number member as text ("yes"/"no" for a boolean), or def; allocated. */
char *cli_num(const struct cJSON *o, const char *key, const char *def);
void cli_print_json(const struct cJSON *j);
/* One request and its reply on stdout: as it is with --format json or raw,
 * through table() with --format table. */
int cli_show(const struct cli *c, const char *method, const char *path, const char *body,
             void (*table)(const struct cJSON *reply), struct sp_error **err);
/* A table() for commands that only change state: the reply's "message". */
void cli_print_message(const struct cJSON *reply);

/* The commands: their option tables and what runs them.  A command
 * prints its result on stdout and returns 0, or returns -1 with *err. */
#define CLI_RUN(name) int name(const struct cli *c, const struct cli_args *a, struct sp_error **err)

extern const struct cli_option process_start_options[];
extern const struct cli_option process_stop_options[];
CLI_RUN(process_start);
CLI_RUN(process_stop);
CLI_RUN(process_restart);
CLI_RUN(process_status);
CLI_RUN(process_list);

extern const struct cli_option errors_list_options[];
void errors_print_list(const struct cJSON *reply);
void errors_print_stats(const struct cJSON *reply);

extern const struct cli_option logs_get_options[];
extern const struct cli_option logs_clear_options[];
CLI_RUN(logs_get);

void monitor_print_status(const struct cJSON *reply);

#endif
