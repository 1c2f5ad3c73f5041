/* One-shot commands (the SDK's /api/execute), buffered or streamed.
 *
 * A command runs as `bash -c WRAPPER COMMAND` in the session's directory
 * and environment, as the sandbox's user, in its own process group.  The
 * wrapper reports the shell's final directory and exported environment on
 * descriptor 3 when it exits, so `cd` and `export` carry over to the next
 * command of the session, as the SDK's persistent shells do.  A timeout
 * kills the whole group.  Output beyond the cap is cut and flagged.  The
 * supervisor's loop runs the child; these functions only take what it
 * read. */
#ifndef SP_EXEC_H
#define SP_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_error;
struct cJSON;
struct monitor;
struct sandbox;
struct exec_run;

enum exec_stream { EXEC_STDOUT = 1, EXEC_STDERR = 2 };

/* Chunks of output, UTF-8 (invalid bytes replaced), as they arrive. */
typedef void (*exec_sink)(void *ud, enum exec_stream s, const char *data, size_t len);

/* Start a command described by an /api/execute body.  Holds the session's
 * run lock until exec_free. */
struct exec_run *exec_start(struct monitor *m, const struct sandbox *sb, const struct cJSON *body,
                            struct sp_error **err);
/* Read what is there, waiting up to wait_ms; true once the command is over
 * (exited and its output drained, or timed out and killed). */
bool exec_step(struct exec_run *x, int wait_ms, exec_sink sink, void *ud);
/* After exec_step returned true. */
int exec_exit_code(const struct exec_run *x);
bool exec_timed_out(const struct exec_run *x);
/* Cut short by the monitor's stop sequence. */
bool exec_stopped(const struct exec_run *x);
int64_t exec_timeout_ms(const struct exec_run *x);
bool exec_truncated(const struct exec_run *x);
const char *exec_command(const struct exec_run *x);
const char *exec_session(const struct exec_run *x);
int64_t exec_duration_ms(const struct exec_run *x);
/* Kill the group if still running, reap, release the session. */
void exec_free(struct exec_run *x);

#endif
