/* Allocation and cleanup attributes: the bottom of lib/, it uses nothing
 * else of the project, so error.c and util.c can both build on it.
 *
 * Allocation failure is not an error path: the x* allocators abort. */
#ifndef SP_ALLOC_H
#define SP_ALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* reallocarray that aborts on overflow or failure */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap);

/* Take ownership: returns *pp and sets it to NULL, so a cleanup attribute
 * on the source variable does not free what was handed on. */
static inline void *steal_ptr(void *pp)
{
  void **p = (void **)pp;
  void *r = *p;
  *p = NULL;
  return r;
}
#define steal_pointer(pp) steal_ptr((void *)(pp))

void sp_freep(void *p);
void sp_closep(int *fd);
void sp_fclosep(void *fp);
void sp_closedirp(void *dp);
#define cleanup_free __attribute__((cleanup(sp_freep)))
#define cleanup_close __attribute__((cleanup(sp_closep)))
#define cleanup_fclose __attribute__((cleanup(sp_fclosep)))
#define cleanup_dir __attribute__((cleanup(sp_closedirp)))

#endif
