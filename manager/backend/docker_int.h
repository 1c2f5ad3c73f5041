/* What the docker backend's two parts share: the engine calls and the
 * backend ops (backend_docker.c), and the image build (docker_build.c).
 * Not for use outside the docker backend; its API is backend.h.
 *
 * Memory: a struct docker_reply is the caller's; its body is released with
 * sbuf_release after every docker_call, whatever it returned.  Strings and
 * cJSON trees handed back (docker_esc, *out of docker_get_json, *id of
 * docker_image_exists) are the caller's to free. */
#ifndef SP_DOCKER_INT_H
#define SP_DOCKER_INT_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>

#include "backend.h"
#include "str.h"

struct sp_error;

#define DOCKER_CALL_TIMEOUT_MS 30000L /* ordinary calls */

struct docker {
  struct backend b;
  char *socket;
  int ncpu; /* the engine's CPUs (0: unknown): NanoCpus may not exceed them */
};

/* b as the docker backend; NULL when b is another backend (or NULL). */
struct docker *docker_of(struct backend *b);

struct docker_reply {
  long status;
  struct sbuf body;
  bool too_big;
  /* streaming consumer (build output); when set, body is not collected */
  size_t (*on_data)(void *ud, const char *data, size_t len);
  void *ud;
};

/* A request body read from a file (a build context's tar). */
struct docker_upload {
  FILE *fp;
  curl_off_t size;
};

/* One call to the engine: METHOD API-prefix+path, with a JSON body, an
 * upload or neither.  A reply of any status is 0 (r->status says which);
 * -1 when no reply came: BACKEND_UNAVAILABLE (503) when the engine does not
 * answer or does not answer in time, or the error r->on_data set. */
int docker_call(struct docker *d, const char *method, const char *path, const char *json,
                const struct docker_upload *up, long timeout_ms, struct docker_reply *r,
                struct sp_error **err);

/* An error reply as an sp_error: IMAGE_NOT_FOUND (404) for a 404 about an
 * image, BACKEND_ERROR (502) with the engine's message otherwise.  -1. */
int docker_reply_error(const struct docker_reply *r, bool image_404, struct sp_error **err,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* s escaped for a URL's path or query. */
char *docker_esc(const char *s);

/* GET a JSON object.  1 found, 0 on 404, -1 error. */
int docker_get_json(struct docker *d, const char *path, cJSON **out, struct sp_error **err);

/* 1 when the image is in the engine's store (*id its id when id != NULL),
 * 0 when not, -1 error. */
int docker_image_exists(struct docker *d, const char *name, char **id, struct sp_error **err);

#endif
