/* The identifiers that clients choose, one rule per kind, used by both
 * daemons so that an id sandpitd accepts is one its monitors accept.
 *
 *   sandbox  1-63 of [A-Za-z0-9_-], beginning with a letter or a digit: it
 *            becomes a directory, a Unix user's home and a DNS label.
 *   preview  a sandbox id that can stand in a preview host name: 1-63 of
 *            [a-z0-9-], beginning with a letter or a digit (host names are
 *            not case-sensitive).
 *   process  1-64 of [A-Za-z0-9._-], not beginning with '.'.
 *   session  1-128 bytes of any kind.
 *   token    a preview URL's custom token: 1-16 of [a-z0-9_].
 *
 * docs/architecture.md lists the same rules. */
#ifndef SP_ID_H
#define SP_ID_H

#include <stdbool.h>

enum sp_id_kind { SP_ID_SANDBOX, SP_ID_PREVIEW, SP_ID_PROCESS, SP_ID_SESSION, SP_ID_TOKEN };

/* The longest ids of the kinds that are kept in fixed buffers. */
#define SP_SANDBOX_ID_MAX 63
#define SP_PROCESS_ID_MAX 64

/* The sandbox rule in words, for error messages. */
#define SP_SANDBOX_ID_RULE "1-63 characters of [A-Za-z0-9_-], starting with a letter or digit"

/* Whether id follows the rule of its kind; id is a C string. */
bool sp_id_ok(enum sp_id_kind kind, const char *id);

#endif
