/* Placeholder until the Docker backend lands: reports the engine as
 * unavailable, so docker pools answer BACKEND_UNAVAILABLE. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"

const char *backend_docker_socket(void)
{
  const char *h = getenv("DOCKER_HOST");
  if (h && strncmp(h, "unix://", 7) == 0)
    return h + 7;
  return "/var/run/docker.sock";
}

struct backend *backend_docker_new(const char *socket, struct sp_error **err)
{
  sp_error_code(err, "BACKEND_UNAVAILABLE", 503, "the docker backend is not built in (%s)", socket);
  return NULL;
}
