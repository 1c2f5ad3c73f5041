/* Raw sockets for the tests of the HTTP server and client: exact bytes in,
 * exact bytes out, so a test sees what a peer on the wire would. */
#ifndef SP_TEST_SOCK_H
#define SP_TEST_SOCK_H

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "str.h"
#include "util.h"

/* A unix stream socket listening at path, or connected to it. */
static inline int sock_unix(const char *path, bool listening)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  int rc = listening ? bind(fd, (struct sockaddr *)&sa, sizeof sa)
                     : connect(fd, (struct sockaddr *)&sa, sizeof sa);
  ck_assert_msg(rc == 0, "%s %s: %s", listening ? "bind" : "connect", path, strerror(errno));
  if (listening)
    ck_assert_int_eq(listen(fd, 16), 0);
  return fd;
}

static inline int sock_listen_unix(const char *path) { return sock_unix(path, true); }
static inline int sock_connect_unix(const char *path) { return sock_unix(path, false); }

static inline int sock_connect_tcp(int port)
{
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect 127.0.0.1:%d: %s",
                port, strerror(errno));
  return fd;
}

/* Sends all of data; false when the peer stopped taking it. */
static inline bool sock_send(int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    len -= (size_t)n;
  }
  return true;
}

/* Appends what fd sends to out until it closes, or until timeout_ms pass
 * without a byte.  Returns true at a close, false at the timeout. */
static inline bool sock_read_until_close(int fd, int timeout_ms, struct sbuf *out)
{
  char buf[65536];
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return false;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return true; /* a reset is a close too */
    sbuf_add(out, buf, (size_t)n);
  }
}

#endif
