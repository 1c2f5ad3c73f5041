#include "alloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(void)
{
  static const char msg[] = "out of memory\n";
  if (write(2, msg, sizeof msg - 1) < 0) {
    /* nothing left to do */
  }
  abort();
}

void *xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    oom();
  return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
  void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
  if (p == NULL)
    oom();
  return p;
}

void *xrealloc(void *p, size_t n)
{
  void *r = realloc(p, n ? n : 1);
  if (r == NULL)
    oom();
  return r;
}

void *xreallocarray(void *p, size_t nmemb, size_t size)
{
  if (size != 0 && nmemb > SIZE_MAX / size)
    oom();
  return xrealloc(p, nmemb * size);
}

char *xstrdup(const char *s)
{
  char *r = strdup(s ? s : "");
  if (r == NULL)
    oom();
  return r;
}

char *xstrndup(const char *s, size_t n)
{
  char *r = strndup(s, n);
  if (r == NULL)
    oom();
  return r;
}

void *xmemdup(const void *p, size_t n)
{
  void *r = xmalloc(n + 1);
  memcpy(r, p, n);
  ((char *)r)[n] = '\0';
  return r;
}

char *xvasprintf(const char *fmt, va_list ap)
{
  char *r = NULL;
  if (vasprintf(&r, fmt, ap) < 0)
    oom();
  return r;
}

char *xasprintf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *r = xvasprintf(fmt, ap);
  va_end(ap);
  return r;
}

void sp_freep(void *p) { free(*(void **)p); }

void sp_closep(int *fd)
{
  if (*fd >= 0) {
    int saved = errno;
    close(*fd);
    errno = saved;
  }
}

void sp_fclosep(void *fp)
{
  FILE *f = *(FILE **)fp;
  if (f != NULL)
    fclose(f);
}

void sp_closedirp(void *dp)
{
  DIR *d = *(DIR **)dp;
  if (d != NULL)
    closedir(d);
}
