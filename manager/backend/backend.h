/* Instance backends: where an instance (a sandpit-monitor as pid 1, with its
 * sandboxes) runs.  One interface, two implementations: "local"
 * (bubblewrap, no daemon, no image) and "docker" (the Docker Engine API over
 * its unix socket).
 *
 * Every instance has a directory on the host, INSTANCE_DIR, that holds:
 *   run/monitor.sock   the monitor's socket (sandpitd talks to it)
 *   data/              the monitor's database (/var/lib/sandpit inside)
 *   workspace/         the sandboxes' workspaces (/workspace inside)
 * so nothing of an instance is lost when it stops or is replaced.
 *
 * Instances outlive sandpitd: start() detaches them, and discover() finds
 * the ones a previous sandpitd started so they are adopted, not duplicated. */
#ifndef SP_BACKEND_H
#define SP_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

/* An instance's monitor (pid 1) runs with this OOM score adjustment: under
 * memory pressure the kernel kills a sandbox's process (they raise their
 * own score to 500) before the monitor that serves every sandbox. */
#define MONITOR_OOM_SCORE_ADJ -900
/* Whether sandpitd itself runs at that score or lower (main() asks for it
 * at start; lowering a score needs CAP_SYS_RESOURCE).  Local instances
 * inherit it; Docker instances get it from the engine only then, since an
 * engine without the privilege would fail to start them. */
bool backend_oom_shield(void);

struct sp_error;
struct sp_pool;
struct sp_config;

struct backend_spec {
  const char *pool;        /* the pool's class_name */
  int slot;
  const char *dir;         /* INSTANCE_DIR (absolute, exists) */
  const char *bin_dir;     /* host directory holding sandpit-monitor and monitor-cli */
  const char *data_root;   /* sandpitd's data_dir: tells our instances from others' */
  const struct sp_pool *cfg;
  const char *image;       /* docker: the image to run (after prepare) */
  unsigned uid_base;       /* the instance's sandbox users start here (SANDPIT_UID_BASE) */
};

struct backend;

typedef void (*backend_found_cb)(void *ud, const char *pool, int slot, const char *id);

struct backend_ops {
  const char *name;
  /* Make what instances of a pool need (docker: build or check the image;
   * *image receives the reference to run).  Called before the first start. */
  int (*prepare)(struct backend *b, const struct sp_pool *pool, const char *config_dir,
                 char **image, struct sp_error **err);
  /* Launch an instance, detached.  *id receives the backend's handle (local:
   * the pid of the sandbox's outer process as text; docker: the container
   * id).  Returns once launched; the caller waits for the socket to answer. */
  int (*start)(struct backend *b, const struct backend_spec *s, char **id,
               struct sp_error **err);
  /* 1 running, 0 not running (or unknown id). */
  int (*alive)(struct backend *b, const char *id);
  /* SIGTERM (docker stop), SIGKILL after timeout_ms, then forget it (a docker
   * container is removed).  INSTANCE_DIR stays. */
  int (*stop)(struct backend *b, const char *id, int timeout_ms, struct sp_error **err);
  /* Report every running instance started for data_root. */
  int (*discover)(struct backend *b, const char *data_root, backend_found_cb cb, void *ud,
                  struct sp_error **err);
  void (*free)(struct backend *b);
};

struct backend {
  const struct backend_ops *ops;
  void *priv;
};

struct backend *backend_local_new(struct sp_error **err);
/* socket: the engine's unix socket (DOCKER_HOST=unix://... or
 * /var/run/docker.sock).  Fails with BACKEND_UNAVAILABLE when nothing
 * answers there. */
struct backend *backend_docker_new(const char *socket, struct sp_error **err);

/* The docker engine's socket path from DOCKER_HOST or the default. */
const char *backend_docker_socket(void);

/* docker: build an image from `dockerfile` with the directory context_dir
 * as its build context, sent as a tar (libarchive) that honours
 * context_dir/.dockerignore as docker build does; the Dockerfile is always
 * sent, under its own path when inside the context.
 *
 * The image is tagged REPO:HASH, HASH the first 16 hex digits of a SHA-256
 * over the context (names, types, modes, link targets and contents; not
 * times or owners), the Dockerfile's place in it and the ids of the images
 * it builds FROM; when REPO:HASH exists nothing is built, so an unchanged
 * context is never rebuilt.  REPO:latest is moved to it, and earlier builds
 * of REPO from the same context directory are removed unless a container
 * uses them.  Every output line of the build goes to the log ("image
 * build").  *image receives REPO:HASH.
 *
 * Errors: CONTEXT_TOO_LARGE (413) when the context's tar would exceed
 * max_context bytes (0: BACKEND_DOCKER_MAX_CONTEXT), before anything is
 * sent; IMAGE_NOT_FOUND (404) when a FROM image is not on the engine (no
 * registry is ever asked); IMAGE_BUILD_FAILED (502) with the engine's
 * message and the last output lines; BACKEND_UNAVAILABLE (503) when the
 * engine does not answer.
 *
 * prepare() of the docker backend calls this for a pool whose image is a
 * Dockerfile, with REPO = sandpit/<class_name in lowercase> and the
 * configuration file's directory as the context (the Dockerfile's own
 * directory when config_dir is NULL or empty). */
#define BACKEND_DOCKER_MAX_CONTEXT (512ull << 20)
int backend_docker_build(struct backend *b, const char *dockerfile, const char *context_dir,
                         const char *repo, uint64_t max_context, char **image,
                         struct sp_error **err);

void backend_free(struct backend *b);

#endif
