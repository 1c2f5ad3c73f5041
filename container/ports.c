/* Reaching a sandbox's servers: see ports.h. */
#include "ports.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

long ports_listener_uid(int port)
{
  static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
  for (size_t f = 0; f < SP_ARRAY_SIZE(files); f++) {
    FILE *fp = fopen(files[f], "re");
    if (fp == NULL)
      continue;
    char line[512];
    long found = -1;
    if (fgets(line, sizeof line, fp) == NULL) { /* header */
      fclose(fp);
      continue;
    }
    while (found < 0 && fgets(line, sizeof line, fp)) {
      char local[64], remote[64], st[8];
      unsigned long uid;
      if (sscanf(line, " %*d: %63s %63s %7s %*s %*s %*s %lu", local, remote, st, &uid) != 4)
        continue;
      if (strcmp(st, "0A") != 0) /* LISTEN */
        continue;
      char *colon = strrchr(local, ':');
      if (colon == NULL || (int)strtol(colon + 1, NULL, 16) != port)
        continue;
      *colon = '\0';
      bool ok;
      if (strlen(local) == 8) {
        /* IPv4 in host byte order as hex: 0100007F is 127.0.0.1 */
        unsigned long a = strtoul(local, NULL, 16);
        ok = a == 0 || (a & 0xff) == 127;
      } else {
        ok = strcmp(local, "00000000000000000000000000000000") == 0 ||
             strcmp(local, "00000000000000000000000001000000") == 0 ||
             strncmp(local, "0000000000000000FFFF0000", 24) == 0;
      }
      if (ok)
        found = (long)uid;
    }
    fclose(fp);
    if (found >= 0)
      return found;
  }
  return -1;
}

int ports_connect(int port, int family, bool nonblock)
{
  struct sockaddr_storage ss = {0};
  socklen_t len;
  if (family == AF_INET6) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    a6->sin6_addr = in6addr_loopback;
    len = sizeof *a6;
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a4;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0)
    return -1;
  if (connect(fd, (struct sockaddr *)&ss, len) < 0 && !(nonblock && errno == EINPROGRESS)) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int ports_connected(int fd)
{
  int e = 0;
  socklen_t l = sizeof e;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
    return errno;
  return e;
}

int ports_http_status(const char *buf, size_t len)
{
  /* "HTTP/" version SP three digits */
  if (len < 5 || memcmp(buf, "HTTP/", 5) != 0)
    return -1;
  size_t i = 5;
  while (i < len && ((buf[i] >= '0' && buf[i] <= '9') || buf[i] == '.'))
    i++;
  if (i == 5 || i + 4 > len || buf[i] != ' ')
    return -1;
  int code = 0;
  for (size_t k = i + 1; k < i + 4; k++) {
    if (buf[k] < '0' || buf[k] > '9')
      return -1;
    code = code * 10 + (buf[k] - '0');
  }
  return code;
}
