#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "ports.h"

START_TEST(status_lines)
{
  static const struct {
    const char *head;
    int status;
  } rows[] = {
      {"HTTP/1.1 200 OK\r\n", 200}, {"HTTP/1.0 404 Not Found", 404}, {"HTTP/2 301 ", 301},
      {"HTTP/1.1 503", 503},        {"HTTP/1.1 20", -1},             {"HTTP/1.1  200", -1},
      {"HTTP/ 200", -1},            {"HTTP/1.1 2x0", -1},            {"SSH-2.0-OpenSSH", -1},
      {"", -1},                     {"http/1.1 200", -1},
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
    ck_assert_msg(ports_http_status(rows[i].head, strlen(rows[i].head)) == rows[i].status,
                  "row %zu: \"%s\"", i, rows[i].head);
}
END_TEST

/* A listener on an ephemeral loopback port: its port, or -1. */
static int listen_loopback(int *fd)
{
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  *fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(*fd, 0);
  ck_assert_int_eq(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(*fd, 4), 0);
  ck_assert_int_eq(getsockname(*fd, (struct sockaddr *)&a, &l), 0);
  return ntohs(a.sin_port);
}

START_TEST(connect_and_owner)
{
  int lfd;
  int port = listen_loopback(&lfd);
  ck_assert_int_eq(ports_listener_uid(port), (long)getuid());

  int fd = ports_connect(port, AF_INET, false);
  ck_assert_int_ge(fd, 0);
  close(fd);

  fd = ports_connect(port, AF_INET, true);
  ck_assert_int_ge(fd, 0);
  struct pollfd p = {fd, POLLOUT, 0};
  ck_assert_int_eq(poll(&p, 1, 2000), 1);
  ck_assert_int_eq(ports_connected(fd), 0);
  close(fd);
  close(lfd);

  /* nothing listens now: refused, at once or once writable */
  ck_assert_int_eq(ports_listener_uid(port), -1);
  ck_assert_int_eq(ports_connect(port, AF_INET, false), -1);
  ck_assert_int_eq(errno, ECONNREFUSED);
  fd = ports_connect(port, AF_INET, true);
  if (fd >= 0) {
    p = (struct pollfd){fd, POLLOUT, 0};
    ck_assert_int_eq(poll(&p, 1, 2000), 1);
    ck_assert_int_eq(ports_connected(fd), ECONNREFUSED);
    close(fd);
  }
}
END_TEST

CHECK_MAIN_ONE_TCASE("ports", "core", 10, NULL, NULL, status_lines, connect_and_owner)
