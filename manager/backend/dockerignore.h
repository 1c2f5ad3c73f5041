/* A build context's .dockerignore, read and matched as docker build does:
 * one pattern a line, '#' comments, '!' exceptions, the last matching
 * pattern deciding; "**" matches any number of path segments, other
 * segments are fnmatch patterns.  Paths are relative to the context,
 * '/'-separated.
 *
 * dockerignore_load returns a list the caller owns and releases with
 * dockerignore_free; the matchers only read it. */
#ifndef SP_DOCKERIGNORE_H
#define SP_DOCKERIGNORE_H

#include <stdbool.h>

struct sp_error;
struct dockerignore;

/* The patterns of the file at path; none when it does not exist.  NULL
 * with *err when it cannot be read or is larger than 1 MiB
 * (FILE_TOO_LARGE). */
struct dockerignore *dockerignore_load(const char *path, struct sp_error **err);
void dockerignore_free(struct dockerignore *ig);

/* Is rel left out of the context (it, or a directory it is in)? */
bool dockerignore_excludes(const struct dockerignore *ig, const char *rel);

/* Could an exception re-include something below the excluded directory
 * rel?  Then a walk of the context must go in. */
bool dockerignore_exception_inside(const struct dockerignore *ig, const char *rel);

#endif
