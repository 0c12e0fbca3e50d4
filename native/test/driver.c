/*
 * A plain C driver for the relay core, for scripts/check-native-memory.sh: it runs a few
 * hundred pairings over real loopback TCP through every ending (EOF both ways with a
 * half-close, reset, close, idle timeout, drain, destroy with live pairings, pairings sharing
 * a bandwidth bucket, closed and destroyed while throttled), checks each
 * result and that the process ends with the descriptors it started with. Built with
 * AddressSanitizer + UBSan, and run under valgrind without them.
 *
 *   driver [pairings]     exit 0 when every check held
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../bucket.h"
#include "../relay.h"

#define MAXP 4096

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static relay_result_t results[MAXP];
static int have[MAXP];
static int failures;

#define CHECK(cond, ...)                                \
  do {                                                  \
    if (!(cond)) {                                      \
      fprintf(stderr, "driver: check failed: " __VA_ARGS__); \
      fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__); \
      failures++;                                       \
    }                                                   \
  } while (0)

static void on_done(void *ctx, relay_result_t *res) {
  (void)ctx;
  pthread_mutex_lock(&mu);
  if (res->id >= 0 && res->id < MAXP) {
    if (have[res->id]) failures++; /* reported twice */
    results[res->id] = *res;
    have[res->id] = 1;
  }
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  free(res);
}

static relay_result_t wait_done(int64_t id) {
  pthread_mutex_lock(&mu);
  while (!have[id]) pthread_cond_wait(&cv, &mu);
  relay_result_t r = results[id];
  pthread_mutex_unlock(&mu);
  return r;
}

static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

static int listener;
static struct sockaddr_in addr;

static void tcp_pair(int *outer, int *inner) {
  *outer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(*outer, (struct sockaddr *)&addr, sizeof addr) != 0) {
    perror("connect");
    exit(2);
  }
  *inner = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (*inner < 0) {
    perror("accept");
    exit(2);
  }
}

/* Sends n octets into `from` while reading `expect` octets out of `to`; returns octets received. */
static size_t transfer(int from, int to, size_t n, size_t expect) {
  static char buf[65536];
  size_t sent = 0, got = 0;
  memset(buf, 'x', sizeof buf);
  while (got < expect) {
    struct pollfd p[2] = {{from, sent < n ? POLLOUT : 0, 0}, {to, POLLIN, 0}};
    if (poll(p, 2, 5000) <= 0) break;
    if (p[0].revents & POLLOUT) {
      size_t want = n - sent < sizeof buf ? n - sent : sizeof buf;
      ssize_t k = send(from, buf, want, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (k > 0) sent += (size_t)k;
    }
    if (p[1].revents & (POLLIN | POLLHUP)) {
      ssize_t k = recv(to, buf, sizeof buf, MSG_DONTWAIT);
      if (k <= 0) break;
      got += (size_t)k;
    }
  }
  return got;
}

/* Reads until EOF or error; returns octets read, or -errno. */
static long drain(int fd) {
  char buf[4096];
  long total = 0;
  for (;;) {
    ssize_t k = recv(fd, buf, sizeof buf, 0);
    if (k == 0) return total;
    if (k < 0) return -errno;
    total += k;
  }
}

typedef struct { int co, ci, ro, ri; } ends_t;

static ends_t quad(void) {
  ends_t q;
  tcp_pair(&q.co, &q.ci);
  tcp_pair(&q.ro, &q.ri);
  return q;
}

static int pair_q(relay_t *r, int64_t id, ends_t *q, const char *hc, const char *hr, uint32_t idle) {
  int rc = relay_pair(r, id, q->ci, q->ri, hc, hc ? strlen(hc) : 0, hr, hr ? strlen(hr) : 0, idle);
  close(q->ci); /* the relay holds its own duplicates */
  close(q->ri);
  return rc;
}

static void close_outer(ends_t *q) {
  close(q->co);
  close(q->ro);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 300;
  if (n > MAXP - 100) n = MAXP - 100;
  signal(SIGPIPE, SIG_IGN);
  listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 64) != 0 ||
      getsockname(listener, (struct sockaddr *)&addr, &len) != 0) {
    perror("listen");
    return 2;
  }
  int fds0 = count_fds();
  relay_t *r;
  relay_opts_t opts = {.threads = 2, .pipe_size = 1 << 20, .pool_max = 4};
  if (relay_create(&opts, on_done, NULL, &r) != 0) return 2;

  for (int64_t id = 0; id < n; id++) {
    ends_t q = quad();
    switch (id % 5) {
      case 0: { /* heads, bulk up, half-close from the client, reply after the FIN */
        CHECK(pair_q(r, id, &q, "HC", "HR", 0) == 0, "pair");
        size_t up = transfer(q.co, q.ro, 300000, 2 + 300000);
        CHECK(up == 300002, "bulk up %zu", up);
        shutdown(q.co, SHUT_WR);
        CHECK(drain(q.ro) == 0, "EOF at responder");
        CHECK(transfer(q.ro, q.co, 5, 2 + 5) == 7, "reply after FIN");
        shutdown(q.ro, SHUT_WR);
        CHECK(drain(q.co) == 0, "EOF at client");
        relay_result_t res = wait_done(id);
        CHECK(res.reason == RELAY_EOF && res.up == 300002 && res.down == 7, "eof result %d %lu %lu", res.reason,
              (unsigned long)res.up, (unsigned long)res.down);
        break;
      }
      case 1: { /* reset from the responder propagates */
        CHECK(pair_q(r, id, &q, NULL, NULL, 0) == 0, "pair");
        CHECK(transfer(q.co, q.ro, 1000, 1000) == 1000, "before reset");
        struct linger lg = {1, 0};
        setsockopt(q.ro, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(q.ro);
        q.ro = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* placeholder, closed below */
        relay_result_t res = wait_done(id);
        CHECK(res.reason == RELAY_RESET && res.err == ECONNRESET, "reset result %d %d", res.reason, res.err);
        CHECK(drain(q.co) == -ECONNRESET, "client sees the reset");
        break;
      }
      case 2: /* closed from the API while idle */
        CHECK(pair_q(r, id, &q, "x", NULL, 0) == 0, "pair");
        relay_close(r, id, RELAY_CLOSED);
        CHECK(wait_done(id).reason == RELAY_CLOSED, "closed");
        break;
      case 3: /* idle timeout */
        CHECK(pair_q(r, id, &q, NULL, NULL, 20) == 0, "pair");
        CHECK(wait_done(id).reason == RELAY_IDLE, "idle");
        break;
      case 4: /* both close at once, octets in flight, nobody reads them */
        CHECK(pair_q(r, id, &q, NULL, "early", 0) == 0, "pair");
        send(q.co, "abc", 3, MSG_NOSIGNAL);
        shutdown(q.co, SHUT_WR);
        shutdown(q.ro, SHUT_WR);
        relay_result_t res = wait_done(id);
        CHECK(res.reason == RELAY_EOF || res.reason == RELAY_RESET, "in-flight end %d", res.reason);
        break;
    }
    close_outer(&q);
  }

  /* Bandwidth: 4 pairings share a bucket per direction (2 MB/s, 64 KiB burst); each moves
   * 200 kB up, throttled most of the way; the first is then closed while it waits for tokens
   * (more octets queued), the others end with EOF. The driver's own references go first: the
   * pairings keep the buckets alive. */
  {
    rbucket_t *bu = rbucket_new(2000000, 65536), *bd = rbucket_new(2000000, 65536);
    CHECK(bu != NULL && bd != NULL, "buckets");
    ends_t bw[4];
    int64_t base = n + 100;
    for (int i = 0; i < 4; i++) {
      bw[i] = quad();
      CHECK(relay_pair_limited(r, base + i, bw[i].ci, bw[i].ri, NULL, 0, NULL, 0, 0, bu, bd) == 0, "pair limited");
      close(bw[i].ci);
      close(bw[i].ri);
    }
    rbucket_unref(bu);
    rbucket_unref(bd);
    for (int i = 0; i < 4; i++) CHECK(transfer(bw[i].co, bw[i].ro, 200000, 200000) == 200000, "throttled transfer %d", i);
    send(bw[0].co, "more", 4, MSG_NOSIGNAL);
    relay_close(r, base, RELAY_CLOSED);
    CHECK(wait_done(base).reason == RELAY_CLOSED, "closed while throttled");
    for (int i = 1; i < 4; i++) {
      shutdown(bw[i].co, SHUT_WR);
      shutdown(bw[i].ro, SHUT_WR);
      relay_result_t res = wait_done(base + i);
      CHECK(res.reason == RELAY_EOF && res.up == 200000, "throttled eof %d %lu", res.reason, (unsigned long)res.up);
    }
    for (int i = 0; i < 4; i++) close_outer(&bw[i]);
  }

  /* Drain: 40 live pairings ended by one close-all. */
  ends_t live[40];
  for (int i = 0; i < 40; i++) {
    live[i] = quad();
    CHECK(pair_q(r, n + i, &live[i], "h", NULL, 0) == 0, "pair");
  }
  relay_close_all(r, RELAY_DRAIN);
  for (int i = 0; i < 40; i++) {
    CHECK(wait_done(n + i).reason == RELAY_DRAIN, "drain");
    close_outer(&live[i]);
  }
  /* Hand-over: 30 live pairings with heads and octets in flight detached; every octet sent is
   * found once, delivered, in the pending buffer, or still queued on the descriptor. One in
   * three reads through a bucket of 100 B/s: throttled when detached, it leaves that list too. */
  rbucket_t *trickle = rbucket_new(100, 100);
  for (int i = 0; i < 30; i++) {
    live[i] = quad();
    if (i % 3 == 0) {
      CHECK(relay_pair_limited(r, n + 60 + i, live[i].ci, live[i].ri, "hd", 2, NULL, 0, 0, trickle, NULL) == 0, "pair limited");
      close(live[i].ci);
      close(live[i].ri);
    } else
      CHECK(pair_q(r, n + 60 + i, &live[i], "hd", NULL, 0) == 0, "pair");
    char buf[1000];
    memset(buf, 'y', sizeof buf);
    CHECK(send(live[i].co, buf, sizeof buf, MSG_NOSIGNAL) == (ssize_t)sizeof buf, "send before detach");
  }
  relay_detached_t *det = NULL;
  size_t ndet = 0;
  CHECK(relay_detach_all(r, &det, &ndet) == 0, "detach_all");
  CHECK(ndet == 30, "detached %zu of 30", ndet);
  for (size_t i = 0; i < ndet; i++) {
    relay_detached_t *d = &det[i];
    int k = (int)(d->id - (n + 60));
    CHECK(k >= 0 && k < 30, "detached id %ld", (long)d->id);
    char buf[4096];
    long delivered = 0, queued = 0;
    for (ssize_t got; (got = recv(live[k].ro, buf, sizeof buf, MSG_DONTWAIT)) > 0;) delivered += got;
    for (ssize_t got; (got = recv(d->fd_client, buf, sizeof buf, MSG_DONTWAIT)) > 0;) queued += got;
    CHECK((uint64_t)delivered == d->up, "counted %lu delivered %ld", (unsigned long)d->up, delivered);
    CHECK(delivered + (long)d->len_up + queued == 1002, "octets %ld + %zu + %ld", delivered, d->len_up, queued);
    CHECK(!have[d->id], "a detached pairing is not reported");
    close(d->fd_client);
    close(d->fd_responder);
    free(d->pending_up);
    free(d->pending_down);
  }
  free(det);
  rbucket_unref(trickle);
  for (int i = 0; i < 30; i++) close_outer(&live[i]);
  /* Destroy with 20 pairings still live, some mid-transfer. */
  /* Destroy with 20 pairings still live, some mid-transfer, some throttled (a bucket of 1 kB/s
   * that 64 kB queued octets put in need of tokens). */
  rbucket_t *slow = rbucket_new(1000, 1000);
  static char blob[65536];
  for (int i = 0; i < 20; i++) {
    live[i] = quad();
    if (i % 4 == 3) {
      CHECK(relay_pair_limited(r, n + 40 + i, live[i].ci, live[i].ri, NULL, 0, NULL, 0, 0, slow, NULL) == 0, "pair slow");
      close(live[i].ci);
      close(live[i].ri);
      send(live[i].co, blob, sizeof blob, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
      CHECK(pair_q(r, n + 40 + i, &live[i], NULL, NULL, 0) == 0, "pair");
    }
    if (i % 2) send(live[i].co, "zz", 2, MSG_NOSIGNAL);
  }
  rbucket_unref(slow);
  relay_destroy(r);
  for (int i = 0; i < 20; i++) {
    CHECK(have[n + 40 + i] && results[n + 40 + i].reason == RELAY_CLOSED, "destroyed");
    close_outer(&live[i]);
  }
  int fds1 = count_fds();
  CHECK(fds1 == fds0, "descriptors %d at start, %d at end", fds0, fds1);
  close(listener);
  printf("driver: %d pairings + 60 drained/destroyed + 30 detached, %d failed checks, descriptors %d -> %d\n", n, failures, fds0, fds1);
  return failures == 0 ? 0 : 1;
}
