/* A sandbox's servers on the instance's loopback: who listens on a port,
 * connecting to it, and reading the status line of its HTTP answer.  The
 * supervisor's readiness probe, the port watch and the tunnel all reach a
 * server through these. */
#ifndef SP_PORTS_H
#define SP_PORTS_H

#include <stdbool.h>
#include <stddef.h>

/* The uid of whoever listens on a loopback or wildcard address at `port`,
 * or -1.  From /proc/net/tcp{,6} of this network namespace. */
long ports_listener_uid(int port);

/* A TCP connection to the loopback address of `family` (AF_INET: 127.0.0.1,
 * AF_INET6: ::1) at `port`.  With `nonblock` the connection may still be in
 * progress: wait for the fd to be writable, then ask ports_connected().  -1
 * with errno when it failed at once. */
int ports_connect(int port, int family, bool nonblock);

/* For a non-blocking connection that became writable: 0 once connected,
 * else the errno of the failure. */
int ports_connected(int fd);

/* The status of an HTTP answer whose first bytes are buf[0..len)
 * ("HTTP/1.1 200 ..."), or -1 while they are not a status line. */
int ports_http_status(const char *buf, size_t len);

#endif
