/* sandpit-monitor: the tunnel to a sandbox's server, for preview URLs.
 *
 *   GET /api/tunnel?port=N   Upgrade: sandpit-tunnel
 *
 * answers 101 and then carries bytes both ways between the caller and
 * 127.0.0.1:N inside the instance, which may have no network at all.  Only
 * a server of the requesting sandbox's own user is reachable this way. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "monitor.h"
#include "ports.h"
#include "sandbox.h"
#include "str.h"
#include "util.h"

/* IPv4 first, then IPv6: a dev server may listen on either loopback. */
static int connect_local(int port)
{
  int fd = ports_connect(port, AF_INET, false);
  return fd >= 0 ? fd : ports_connect(port, AF_INET6, false);
}

struct tunnel {
  int tcp;
  const volatile int *stop;
};

static void tunnel_run(void *ud, int sock, const char *extra, size_t extra_len)
{
  struct tunnel *t = ud;
  int one = 1;
  setsockopt(t->tcp, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (extra_len == 0 || sp_write_all(t->tcp, extra, extra_len) == 0)
    sp_splice(sock, t->tcp, t->stop, NULL, NULL, NULL);
}

static void tunnel_free(void *ud)
{
  struct tunnel *t = ud;
  close(t->tcp);
  free(t);
}

static int not_answering(struct sp_error **err, int port, const char *why)
{
  sp_error_code(err, "SERVICE_NOT_RESPONDING", 502, "nothing answers on port %d (%s)", port, why);
  sp_error_context_int(err, "port", port);
  return -1;
}

/* A connection to the request's sandbox's server on ?port=; -1 with *err. */
static int tunnel_connect(struct http_req *r, struct sp_error **err)
{
  const struct sandbox *sb = monitor_sandbox_get(r, err);
  if (sb == NULL)
    return -1;
  long long port;
  const char *ps = http_query(r, "port");
  if (ps == NULL || !str_to_ll(ps, 1, 65535, &port))
    return sp_error_code(err, "INVALID_PORT", 400, "?port= must be 1-65535");
  const char *up = http_header(r, "Upgrade");
  if (up == NULL || strcasecmp(up, "sandpit-tunnel") != 0)
    return sp_error_code(err, "VALIDATION_FAILED", 400, "the tunnel needs Upgrade: sandpit-tunnel");
  long owner = ports_listener_uid((int)port);
  if (owner < 0)
    return not_answering(err, (int)port, "no server listens there");
  if (sb->set_user && (uid_t)owner != sb->uid) /* another sandbox's: as if nothing were there */
    return not_answering(err, (int)port, "no server of this sandbox listens there");
  int fd = connect_local((int)port);
  if (fd < 0)
    return not_answering(err, (int)port, strerror(errno));
  return fd;
}

void api_tunnel(struct http_req *r)
{
  cleanup_error struct sp_error *err = NULL;
  int fd = tunnel_connect(r, &err);
  if (fd < 0) {
    http_reply_error(r, &err);
    return;
  }
  struct tunnel *t = xcalloc(1, sizeof *t);
  t->tcp = fd;
  t->stop = http_stop_flag(r);
  http_reply_upgrade(r, "sandpit-tunnel", tunnel_run, t, tunnel_free);
}
