/*
 * The ceiling: a bare splice(2) relay with no features. Accepts on LISTEN_PORT, connects to
 * TARGET_PORT, and moves octets socket -> 1 MiB pipe -> socket with blocking splice, one thread
 * per direction; EOF becomes shutdown(SHUT_WR) on the peer.
 *   bare-splice LISTEN_PORT TARGET_PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int target_port;

struct dir { int src, dst; };

static void *pump(void *arg) {
  struct dir *d = arg;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return NULL;
  fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
  for (;;) {
    ssize_t n = splice(d->src, NULL, p[1], NULL, 1 << 20, SPLICE_F_MOVE);
    if (n <= 0) break;
    while (n > 0) {
      ssize_t w = splice(p[0], NULL, d->dst, NULL, (size_t)n, SPLICE_F_MOVE);
      if (w <= 0) goto out;
      n -= w;
    }
  }
out:
  shutdown(d->dst, SHUT_WR);
  close(p[0]);
  close(p[1]);
  return NULL;
}

static void *conn(void *arg) {
  int c = (int)(intptr_t)arg, one = 1;
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)target_port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct dir up = {c, s}, down = {s, c};
    pthread_t t;
    pthread_create(&t, NULL, pump, &down);
    pump(&up);
    pthread_join(t, NULL);
  }
  close(s);
  close(c);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  signal(SIGPIPE, SIG_IGN);
  target_port = atoi(argv[2]);
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 128) != 0) return 1;
  for (;;) {
    int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) continue;
    pthread_t t;
    pthread_create(&t, NULL, conn, (void *)(intptr_t)c);
    pthread_detach(t);
  }
}
