/* sandpitd's preview takeover: the request head the accept loop peeked at
 * goes to preview_takeover(), which finds the Host header and parses
 * "{port}-{sandbox}-{token}.{preview_domain}" out of it.  The manager here
 * has a state database with two exposed ports and no sandboxes, so a
 * preview name is answered on the connection (404 for a wrong token, 503
 * for a right one: its sandbox is not there) and never goes further.
 * Properties: false (the connection left to libmicrohttpd, untouched) or
 * true with one of those answers; a head without the preview domain is
 * never taken. */
#include <arpa/inet.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define FUZZ_INIT
#include "error.h"
#include "fuzz.h"
#include "manager.h"
#include "state.h"

static struct sp_config cfg;
static struct manager m;
static struct sockaddr_storage peer;

static void fuzz_init(void)
{
  char db[PATH_MAX];
  snprintf(db, sizeof db, "%s/sandpit.db", fuzz_scratch());
  struct sp_error *err = NULL;
  cfg.preview_domain = "localhost";
  cfg.listen_port = 8787;
  m.cfg = &cfg;
  m.state = state_open(db, &err);
  FUZZ_ASSERT(m.state != NULL, "state: %s", err->msg);
  struct port_row rows[] = {{"sb", 3000, "tok", NULL, 1}, {"chat-42", 8080, "a_b_9", "web", 2}};
  for (size_t i = 0; i < SP_ARRAY_SIZE(rows); i++)
    FUZZ_ASSERT(state_port_put(m.state, &rows[i], &err) == 0, "port: %s", err->msg);
  FUZZ_ASSERT(sandboxes_load(&m, &err) == 0, "sandboxes: %s", err->msg);
  drain_init(&m);
  m.metrics = metrics_new();
  struct sockaddr_in *in = (struct sockaddr_in *)&peer;
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* the accept loop peeks at most 16 KiB */
  if (size > 16384)
    return 0;
  char *head = fuzz_copy(data, size);
  int sv[2];
  FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
              strerror(errno));
  bool taken = preview_takeover(&m, sv[0], head, size, &peer);
  char resp[8192];
  ssize_t n = recv(sv[1], resp, sizeof resp - 1, MSG_DONTWAIT);
  if (!taken) {
    FUZZ_ASSERT(n < 0 && errno == EAGAIN, "not taken, but %zd bytes were sent", n);
    close(sv[0]);
  } else {
    bool domain = false;
    for (size_t i = 0; i + 10 <= size && !domain; i++)
      domain = strncasecmp(head + i, ".localhost", 10) == 0;
    FUZZ_ASSERT(domain, "taken without the preview domain");
    FUZZ_ASSERT(n > 12, "taken, but no answer");
    resp[n] = '\0';
    FUZZ_ASSERT(strncmp(resp, "HTTP/1.1 404 ", 13) == 0 || strncmp(resp, "HTTP/1.1 503 ", 13) == 0,
                "answer %.40s", resp);
  }
  close(sv[1]);
  free(head);
  return 0;
}
