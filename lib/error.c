#include "error.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static void code_for_errno(int errnum, const char **code, int *status)
{
  /* The codes of the Cloudflare Sandbox SDK, so its client maps them. */
  switch (errnum) {
  case ENOENT: *code = "FILE_NOT_FOUND"; *status = 404; break;
  case EACCES:
  case EPERM: *code = "PERMISSION_DENIED"; *status = 403; break;
  case EEXIST: *code = "FILE_EXISTS"; *status = 409; break;
  case ENOTDIR: *code = "NOT_DIRECTORY"; *status = 400; break;
  case EISDIR: *code = "IS_DIRECTORY"; *status = 400; break;
  case ENOTEMPTY: *code = "DIRECTORY_NOT_EMPTY"; *status = 409; break;
  case ENOSPC:
  case EDQUOT: *code = "NO_SPACE"; *status = 507; break;
  case ENAMETOOLONG: *code = "NAME_TOO_LONG"; *status = 400; break;
  case ELOOP: *code = "TOO_MANY_LINKS"; *status = 400; break;
  case EROFS: *code = "READ_ONLY"; *status = 403; break;
  case EBUSY:
  case ETXTBSY: *code = "RESOURCE_BUSY"; *status = 409; break;
  case EMFILE:
  case ENFILE: *code = "TOO_MANY_FILES"; *status = 500; break;
  case EFBIG: *code = "FILE_TOO_LARGE"; *status = 413; break;
  case EINVAL: *code = "INVALID_REQUEST"; *status = 400; break;
  default: *code = "INTERNAL_ERROR"; *status = 500; break;
  }
}

int sp_error_vcode(struct sp_error **err, const char *code, int http_status,
                   int errnum, const char *fmt, va_list ap)
{
  if (err == NULL || *err != NULL)
    return -1;
  struct sp_error *e = xcalloc(1, sizeof *e);
  char *msg = xvasprintf(fmt, ap);
  if (errnum != 0) {
    char *full = xasprintf("%s: %s", msg, strerror(errnum));
    free(msg);
    msg = full;
  }
  e->msg = msg;
  e->errnum = errnum;
  e->code = code;
  e->http_status = http_status;
  *err = e;
  return -1;
}

int sp_error_set(struct sp_error **err, int errnum, const char *fmt, ...)
{
  const char *code = "INTERNAL_ERROR";
  int status = 500;
  if (errnum != 0)
    code_for_errno(errnum, &code, &status);
  va_list ap;
  va_start(ap, fmt);
  sp_error_vcode(err, code, status, errnum, fmt, ap);
  va_end(ap);
  return -1;
}

int sp_error_code(struct sp_error **err, const char *code, int http_status,
                  const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  sp_error_vcode(err, code, http_status, 0, fmt, ap);
  va_end(ap);
  return -1;
}

int sp_error_prefix(struct sp_error **err, const char *fmt, ...)
{
  if (err == NULL || *err == NULL)
    return -1;
  va_list ap;
  va_start(ap, fmt);
  char *ctx = xvasprintf(fmt, ap);
  va_end(ap);
  char *msg = xasprintf("%s: %s", ctx, (*err)->msg);
  free(ctx);
  free((*err)->msg);
  (*err)->msg = msg;
  return -1;
}

void sp_error_context(struct sp_error **err, const char *key, const char *value)
{
  if (err == NULL || *err == NULL)
    return;
  if ((*err)->context == NULL)
    (*err)->context = cJSON_CreateObject();
  cJSON_DeleteItemFromObjectCaseSensitive((*err)->context, key);
  cJSON_AddStringToObject((*err)->context, key, value ? value : "");
}

void sp_error_context_int(struct sp_error **err, const char *key, long long value)
{
  if (err == NULL || *err == NULL)
    return;
  if ((*err)->context == NULL)
    (*err)->context = cJSON_CreateObject();
  cJSON_DeleteItemFromObjectCaseSensitive((*err)->context, key);
  cJSON_AddNumberToObject((*err)->context, key, (double)value);
}

int sp_error_recode(struct sp_error **err, const char *code)
{
  if (err && *err)
    (*err)->code = code;
  return -1;
}

void sp_error_retry_after(struct sp_error **err, int seconds)
{
  if (err && *err)
    (*err)->retry_after_s = seconds;
}

void sp_error_free(struct sp_error *err)
{
  if (err == NULL)
    return;
  cJSON_Delete(err->context);
  free(err->msg);
  free(err);
}

void sp_error_print(const char *prog, struct sp_error **err)
{
  if (err == NULL || *err == NULL)
    return;
  fprintf(stderr, "%s: %s\n", prog, (*err)->msg);
  sp_error_free(*err);
  *err = NULL;
}
