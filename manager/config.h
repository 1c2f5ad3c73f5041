/* The configuration file, wrangler-like.toml.
 *
 * config_load() reads and validates the file completely: unknown keys,
 * wrong types and out-of-range values are errors naming the file, the line
 * and the key ("wrangler-like.toml:12: unknown key 'foo' in [[containers]]").
 * Environment variables override: SANDPIT_API_TOKEN, MAX_SANDBOX_INSTANCES,
 * SANDBOX_INSTANCE_TYPE, SANDPIT_LOG_LEVEL. */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_error;
struct cJSON;

enum sp_backend { SP_BACKEND_AUTO, SP_BACKEND_DOCKER, SP_BACKEND_LOCAL };
enum sp_network { SP_NETWORK_NONE, SP_NETWORK_EGRESS };
enum sp_allocation { SP_ALLOC_MANY_TO_ONE, SP_ALLOC_ONE_TO_ONE };

struct sp_instance_type {
  char *name;
  double vcpu;
  int64_t memory_mib;
  int64_t disk_mb;
};

struct sp_pool {
  char *class_name;
  char *image;          /* image name, or absolute path of a Dockerfile */
  bool image_is_dockerfile;
  int64_t max_instances;
  int64_t min_warm;
  enum sp_backend backend;
  enum sp_network network;
  int64_t sleep_after_s; /* 0 = never */
  struct sp_instance_type itype;
  enum sp_allocation allocation;
};

struct sp_config {
  char *path;           /* the file it was read from ("" for defaults) */
  char *name;
  char *listen_host;
  int listen_port;
  char *preview_domain;
  char *api_token;      /* NULL: none configured */
  const char *api_token_source; /* "config", "env" or NULL */
  char *data_dir;       /* absolute */
  char *log_level;
  int64_t shutdown_grace_s; /* how long in-flight requests get on SIGTERM */
  int64_t health_timeout_s; /* a live instance that answers no health check
                               for this long is restarted */
  int64_t max_sandbox_instances;
  char *sandbox_instance_type;
  struct sp_instance_type *types;
  int ntypes;
  struct sp_pool *pools;
  int npools;
};

/* Load and validate `path`.  Errors have code "INVALID_CONFIG". */
struct sp_config *config_load(const char *path, struct sp_error **err);
/* Validate text as if read from `path` (used by tests). */
struct sp_config *config_parse(const char *text, size_t len, const char *path,
                               struct sp_error **err);
void config_free(struct sp_config *c);

/* The resolved configuration as JSON; the token is redacted. */
struct cJSON *config_to_json(const struct sp_config *c);

const char *config_backend_name(enum sp_backend b);
const char *config_network_name(enum sp_network n);
const char *config_allocation_name(enum sp_allocation a);

/* Look up a named instance type (built-in or [instance_types.NAME]). */
const struct sp_instance_type *config_instance_type(const struct sp_config *c,
                                                    const char *name);

/* Parse a duration: integer seconds, or a string "30s", "10m", "2h", "1d". */
bool config_parse_duration(const char *s, int64_t *seconds);

static inline void config_freep(struct sp_config **c) { config_free(*c); }
#define cleanup_config __attribute__((cleanup(config_freep)))

#endif
