/* sandpitd's HTTP front door: routes, authentication. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "error.h"
#include "json.h"
#include "log.h"
#include "manager.h"
#include "str.h"
#include "util.h"
#include "version.h"

static void h_health(struct http_req *r)
{
  http_reply(r, 200, "application/json", "{\"ok\":true}", 11);
}

static void h_version(struct http_req *r)
{
  cleanup_json cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "version", SANDPIT_VERSION);
  http_reply_json(r, 200, j);
}

static const struct http_route routes[] = {
    {"GET", "/health", h_health, 0, NULL},
    {"GET", "/v1/version", h_version, 0, NULL},
};

static bool authorize(struct http_req *r)
{
  struct manager *m = r->app;
  if (strcmp(r->url, "/health") == 0)
    return true;
  const char *auth = http_header(r, "Authorization");
  if (auth && strncasecmp(auth, "Bearer ", 7) == 0 &&
      str_equal_ct(m->api_token, auth + 7))
    return true;
  struct MHD_Response *resp;
  static const char body[] =
      "{\"code\":\"UNAUTHORIZED\",\"message\":\"missing or invalid bearer token\","
      "\"httpStatus\":401}";
  resp = MHD_create_response_from_buffer(sizeof body - 1, (void *)body,
                                         MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
  http_reply_response(r, 401, resp);
  return false;
}

int manager_load_token(struct manager *m, struct sp_error **err)
{
  if (m->cfg->api_token) {
    m->api_token = xstrdup(m->cfg->api_token);
    return 0;
  }
  if (sp_mkdir_p(m->cfg->data_dir, 0700, err) < 0)
    return -1;
  cleanup_free char *path = xasprintf("%s/api_token", m->cfg->data_dir);
  struct sp_error *rerr = NULL;
  size_t len;
  char *tok = sp_read_file(path, 4096, &len, &rerr);
  if (tok) {
    while (len && (tok[len - 1] == '\n' || tok[len - 1] == '\r'))
      tok[--len] = '\0';
    if (len >= 8) {
      m->api_token = tok;
      sp_info("api token loaded", LS("path", path));
      return 0;
    }
    free(tok);
  }
  sp_error_free(rerr);
  unsigned char raw[20];
  if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
    return sp_error_set(err, errno, "getrandom");
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  char t[sizeof raw * 2 + 1];
  for (size_t i = 0; i < sizeof raw; i++) {
    t[2 * i] = alphabet[raw[i] % 36];
    t[2 * i + 1] = alphabet[(raw[i] / 36) % 36];
  }
  t[sizeof t - 1] = '\0';
  cleanup_free char *line = xasprintf("%s\n", t);
  if (sp_write_file_atomic(path, line, strlen(line), 0600, err) < 0)
    return -1;
  m->api_token = xstrdup(t);
  sp_info("api token created", LS("path", path));
  return 0;
}

int manager_serve(struct manager *m, struct sp_error **err)
{
  struct http_server_opts o = {
      .host = m->cfg->listen_host,
      .port = m->cfg->listen_port,
      .routes = routes,
      .nroutes = SP_ARRAY_SIZE(routes),
      .app = m,
      .pre = authorize,
  };
  m->http = http_server_start(&o, err);
  if (m->http == NULL)
    return -1;
  m->started_ms = sp_now_ms();
  sp_info("listening", LS("host", m->cfg->listen_host),
          LI("port", http_server_port(m->http)));
  return 0;
}

void manager_stop(struct manager *m)
{
  http_server_stop(m->http);
  m->http = NULL;
}
