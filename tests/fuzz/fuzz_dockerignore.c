/* A build context's .dockerignore: the input up to its first NUL byte is
 * the file (dockerignore_load reads it from a scratch directory); the lines
 * after it, or without a NUL the file's own lines, are paths, cleaned as
 * the context walk makes them ("a/b", no empty, "." or ".." segments).
 * Property: the walk (manager/backend/docker_build.c) does not enter a
 * directory that is excluded with no exception inside it, so everything
 * under such a directory must be excluded too. */
#define FUZZ_INIT
#include "dockerignore.h"
#include "error.h"
#include "fuzz.h"
#include "str.h"

static char path[PATH_MAX];

static void fuzz_init(void) { snprintf(path, sizeof path, "%s/.dockerignore", fuzz_scratch()); }

/* Every directory on the way to rel: an excluded one with no exception
 * inside excludes rel. */
static void check_path(const struct dockerignore *ig, const char *rel)
{
  bool out = dockerignore_excludes(ig, rel);
  for (const char *s = strchr(rel, '/'); s != NULL; s = strchr(s + 1, '/')) {
    char *dir = xstrndup(rel, (size_t)(s - rel));
    bool skipped = dockerignore_excludes(ig, dir) && !dockerignore_exception_inside(ig, dir);
    FUZZ_ASSERT(!skipped || out, "'%s' is left out with its directory '%s', but not excluded",
                rel, dir);
    free(dir);
  }
}

/* The line as a context path, or NULL when nothing is left of it. */
static char *clean(const char *line, size_t n)
{
  struct sbuf p = SBUF_INIT;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && line[j] != '/')
      j++;
    size_t k = j - i;
    bool dots = (k == 1 && line[i] == '.') || (k == 2 && line[i] == '.' && line[i + 1] == '.');
    if (k > 0 && !dots && memchr(line + i, '\0', k) == NULL) {
      if (p.len)
        sbuf_addch(&p, '/');
      sbuf_add(&p, line + i, k);
    }
    i = j + 1;
  }
  if (p.len == 0) {
    sbuf_release(&p);
    return NULL;
  }
  return sbuf_detach(&p, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const uint8_t *rest;
  size_t rest_size;
  char *file = fuzz_split(data, size, &rest, &rest_size);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  FUZZ_ASSERT(fd >= 0 && sp_write_all(fd, file, strlen(file)) == 0, "%s: %s", path,
              strerror(errno));
  close(fd);
  struct sp_error *err = NULL;
  struct dockerignore *ig = dockerignore_load(path, &err);
  FUZZ_ASSERT(ig != NULL, "load: %s", err->msg);

  const char *paths = rest_size ? (const char *)rest : file;
  size_t plen = rest_size ? rest_size : strlen(file);
  for (size_t i = 0; i < plen;) {
    const char *nl = memchr(paths + i, '\n', plen - i);
    size_t n = nl ? (size_t)(nl - (paths + i)) : plen - i;
    const char *line = paths + i;
    /* a pattern line names paths too: without its '!' */
    if (!rest_size && n > 0 && line[0] == '!') {
      line++;
      n--;
    }
    char *rel = clean(line, n);
    if (rel != NULL) {
      check_path(ig, rel);
      char *below = xasprintf("%s/x/y", rel);
      check_path(ig, below);
      free(below);
      free(rel);
    }
    i += (nl ? (size_t)(nl - (paths + i)) : plen - i) + 1;
  }
  dockerignore_free(ig);
  free(file);
  return 0;
}
