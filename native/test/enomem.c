/*
 * The relay core when memory runs out, for scripts/check-native-memory.sh. malloc, calloc and
 * realloc are replaced (glibc allows it; the real allocator stays underneath, so free() needs no
 * change) by versions that fail on demand, and the relay is driven over real loopback TCP:
 *  1. a pairing that ends while every allocation fails is still reported (its completion was
 *     allocated with the pairing), so JavaScript always settles;
 *  2. close and close-all commands queued while allocations fail are retried, never dropped;
 *  3. relay_pair under no memory fails with -ENOMEM and leaks no descriptor.
 * Built plainly (the sanitizers and valgrind bring allocators of their own).
 *
 *   enomem     exit 0 when every check held
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../relay.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

/* fail_all: every allocation fails; fail_next: that many of the next allocations fail. */
static atomic_int fail_all;
static atomic_int fail_next;

static int should_fail(void) {
  if (atomic_load(&fail_all)) return 1;
  int n = atomic_load(&fail_next);
  while (n > 0)
    if (atomic_compare_exchange_weak(&fail_next, &n, n - 1)) return 1;
  return 0;
}

void *malloc(size_t n) {
  if (should_fail()) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_malloc(n);
}

void *calloc(size_t k, size_t n) {
  if (should_fail()) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_calloc(k, n);
}

void *realloc(void *p, size_t n) {
  if (should_fail()) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_realloc(p, n);
}

#define MAXP 16
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static relay_result_t results[MAXP];
static int have[MAXP];
static int failures;

#define CHECK(cond, ...)                                     \
  do {                                                       \
    if (!(cond)) {                                           \
      fprintf(stderr, "enomem: check failed: " __VA_ARGS__); \
      fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);     \
      failures++;                                            \
    }                                                        \
  } while (0)

/* Allocates nothing: it may run while every allocation fails. */
static void on_done(void *ctx, relay_result_t *res) {
  (void)ctx;
  pthread_mutex_lock(&mu);
  if (res->id >= 0 && res->id < MAXP) {
    results[res->id] = *res;
    have[res->id] = 1;
  }
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  free(res);
}

/* The pairing's result, or reason -1 when none came within 5 s (a lost completion). */
static relay_result_t wait_done(int64_t id) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 5;
  pthread_mutex_lock(&mu);
  while (!have[id])
    if (pthread_cond_timedwait(&cv, &mu, &until) == ETIMEDOUT) break;
  relay_result_t r = have[id] ? results[id] : (relay_result_t){.id = id, .reason = -1};
  pthread_mutex_unlock(&mu);
  return r;
}

static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
  closedir(d);
  return n - 1;
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

typedef struct { int co, ci, ro, ri; } ends_t;

static ends_t quad(void) {
  ends_t q;
  tcp_pair(&q.co, &q.ci);
  tcp_pair(&q.ro, &q.ri);
  return q;
}

static int pair_q(relay_t *r, int64_t id, ends_t *q) {
  int rc = relay_pair(r, id, q->ci, q->ri, NULL, 0, NULL, 0, 0);
  close(q->ci);
  close(q->ri);
  return rc;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 16) != 0 ||
      getsockname(listener, (struct sockaddr *)&addr, &len) != 0) {
    perror("listen");
    return 2;
  }
  int fds0 = count_fds();
  relay_t *r;
  relay_opts_t opts = {.threads = 1, .pipe_size = 1 << 16, .pool_max = 2};
  if (relay_create(&opts, on_done, NULL, &r) != 0) return 2;

  /* 1. Both sides end (FIN each way) while no allocation can succeed: still reported. */
  ends_t a = quad();
  CHECK(pair_q(r, 0, &a) == 0, "pair 0");
  atomic_store(&fail_all, 1);
  shutdown(a.co, SHUT_WR);
  shutdown(a.ro, SHUT_WR);
  relay_result_t res = wait_done(0);
  atomic_store(&fail_all, 0);
  CHECK(res.reason != -1, "the end of a pairing under no memory was never reported");
  close(a.co);
  close(a.ro);

  /* 2. close and close-all queued while the next allocations fail: retried, not dropped. */
  ends_t b = quad();
  CHECK(pair_q(r, 1, &b) == 0, "pair 1");
  atomic_store(&fail_next, 3);
  relay_close(r, 1, RELAY_CLOSED);
  CHECK(wait_done(1).reason == RELAY_CLOSED, "a close queued under ENOMEM was lost");
  ends_t c = quad();
  CHECK(pair_q(r, 2, &c) == 0, "pair 2");
  atomic_store(&fail_next, 3);
  relay_close_all(r, RELAY_DRAIN);
  CHECK(wait_done(2).reason == RELAY_DRAIN, "a close-all queued under ENOMEM was lost");
  atomic_store(&fail_next, 0);
  close(b.co);
  close(b.ro);
  close(c.co);
  close(c.ro);

  /* 3. No memory to take a pairing over: -ENOMEM, and its duplicates are closed. */
  ends_t d = quad();
  atomic_store(&fail_all, 1);
  int rc = pair_q(r, 3, &d);
  atomic_store(&fail_all, 0);
  CHECK(rc == -ENOMEM, "relay_pair under no memory gave %d", rc);
  close(d.co);
  close(d.ro);

  relay_destroy(r);
  int fds1 = count_fds();
  CHECK(fds1 == fds0, "descriptors %d at start, %d at end", fds0, fds1);
  close(listener);
  printf("enomem: %d failed checks, descriptors %d -> %d\n", failures, fds0, fds1);
  return failures == 0 ? 0 : 1;
}
