/*
 * Load generator for the benchmark (bench/run.mjs): bulk throughput with 1 MiB writes, and
 * ping-pong latency. The "near" side plays the mobile client (it connects to the relay's front
 * port); the "far" side plays the hidden server, either listening (for relays that connect to a
 * target: HAProxy, socat, the bare splice relay, or none at all for "direct") or connecting out
 * to a registered port and sending its TAAS-Cookie line first (taas-server), then reading the
 * pairing signal (a PROXY v1 or v2 header) the relay sends it once its client is there.
 *
 *   loadgen bulk --seconds S --streams N ENDPOINTS     -> {"bytes":..,"seconds":..,"gbps":..}
 *   loadgen pingpong --size B --iters N ENDPOINTS      -> {"p50us":..,"p99us":..,"iters":..}
 *   ENDPOINTS: --near PORT and either --listen PORT or one --far PORT[:COOKIE] per stream
 *   --sync: once connected, print "ready" and wait for a line on stdin before sending; print
 *   "end" when the last octet arrived. The caller reads the relay's CPU time at those two
 *   moments, so connection set-up and teardown are not counted as data-path CPU.
 *
 * Bulk: each near socket sends for S seconds with blocking 1 MiB writes, then half-closes;
 * each far socket reads into a 1 MiB buffer until EOF. GB/s = octets received / time from the
 * first write to the last EOF.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXS 64
#define CHUNK (1 << 20)

static int near_fd[MAXS], far_fd[MAXS];
static uint64_t far_bytes[MAXS];
static double seconds = 3;
static int streams = 1;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(2);
}

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static int tcp_listen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0) die("listen");
  return fd;
}

static int tcp_accept(int lfd) {
  int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) die("accept");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) die("write");
    p += k;
    n -= (size_t)k;
  }
}

static void read_all(int fd, char *p, size_t n) {
  while (n > 0) {
    ssize_t k = read(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      errno = k == 0 ? EPIPE : errno;
      die("read");
    }
    p += k;
    n -= (size_t)k;
  }
}

/* The pairing signal taas-server sends a cookie-speaking responder before the client's octets:
 * a PROXY v2 header (16 octets + length) or a v1 line (up to CRLF). Read and dropped, as the
 * agent does, so the far side counts and echoes the client's octets only. (The relay sends
 * "PROXY UNKNOWN" only without a client address, never on loopback: 16 octets are always there.) */
static void skip_signal(int fd) {
  char h[536];
  read_all(fd, h, 16);
  if (!memcmp(h, "\r\n\r\n\0\r\nQUIT\n", 12)) {
    size_t len = ((unsigned char)h[14] << 8) | (unsigned char)h[15];
    if (len > sizeof h - 16) die("PROXY v2 header too long");
    read_all(fd, h + 16, len);
    return;
  }
  if (memcmp(h, "PROXY ", 6) != 0) die("no pairing signal");
  size_t n = 16;
  while (h[n - 1] != '\n' && n < 107) read_all(fd, h + n++, 1);
}

static void *sender(void *arg) {
  int i = (int)(intptr_t)arg;
  char *buf = malloc(CHUNK);
  memset(buf, 'b', CHUNK);
  double end = now_s() + seconds;
  while (now_s() < end) {
    ssize_t k = write(near_fd[i], buf, CHUNK);
    if (k < 0 && errno != EINTR) die("bulk write");
  }
  shutdown(near_fd[i], SHUT_WR);
  /* Wait for the far side's FIN (relayed), so the pairing ends cleanly before we close. */
  while (read(near_fd[i], buf, CHUNK) > 0) {
  }
  free(buf);
  return NULL;
}

static void *receiver(void *arg) {
  int i = (int)(intptr_t)arg;
  char *buf = malloc(CHUNK);
  for (;;) {
    ssize_t k = read(far_fd[i], buf, CHUNK);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    far_bytes[i] += (uint64_t)k;
  }
  shutdown(far_fd[i], SHUT_WR);
  free(buf);
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void *echo(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[65536];
  for (;;) {
    ssize_t k = read(fd, buf, sizeof buf);
    if (k <= 0) break;
    write_all(fd, buf, (size_t)k);
  }
  shutdown(fd, SHUT_WR);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: loadgen bulk|pingpong [--seconds S] [--streams N] [--size B] [--iters N] --near PORT (--listen PORT | --far PORT[:COOKIE]...)\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  const char *mode = argv[1];
  int near_port = 0, listen_port = 0, nfar = 0, size = 1, iters = 10000, sync = 0;
  int far_port[MAXS];
  const char *far_cookie[MAXS];
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "0";
    if (!strcmp(a, "--seconds")) seconds = atof(v), i++;
    else if (!strcmp(a, "--streams")) streams = atoi(v), i++;
    else if (!strcmp(a, "--size")) size = atoi(v), i++;
    else if (!strcmp(a, "--iters")) iters = atoi(v), i++;
    else if (!strcmp(a, "--near")) near_port = atoi(v), i++;
    else if (!strcmp(a, "--listen")) listen_port = atoi(v), i++;
    else if (!strcmp(a, "--sync")) sync = 1;
    else if (!strcmp(a, "--far") && nfar < MAXS) {
      char *s = strdup(v), *c = strchr(s, ':');
      if (c) *c++ = 0;
      far_port[nfar] = atoi(s);
      far_cookie[nfar++] = c;
      i++;
    }
  }
  if (strcmp(mode, "bulk") != 0) streams = 1;
  if (streams < 1 || streams > MAXS || near_port == 0 || (listen_port == 0 && nfar < streams)) {
    fprintf(stderr, "loadgen: bad arguments\n");
    return 2;
  }
  /* Far sides first: a taas responder must be registered and waiting before its client comes. */
  int lfd = listen_port ? tcp_listen(listen_port) : -1;
  for (int i = 0; lfd < 0 && i < streams; i++) {
    far_fd[i] = tcp_connect(far_port[i]);
    if (far_cookie[i]) {
      char line[512];
      int n = snprintf(line, sizeof line, "TAAS-Cookie %s\r\n", far_cookie[i]);
      write_all(far_fd[i], line, (size_t)n);
    }
  }
  for (int i = 0; i < streams; i++) {
    near_fd[i] = tcp_connect(near_port);
    if (lfd >= 0) far_fd[i] = tcp_accept(lfd);
    else if (far_cookie[i]) skip_signal(far_fd[i]);
  }
  if (lfd >= 0) close(lfd);
  if (sync) {
    char line[16];
    printf("ready\n");
    fflush(stdout);
    if (fgets(line, sizeof line, stdin) == NULL) return 2;
  }

  if (!strcmp(mode, "bulk")) {
    pthread_t s[MAXS], r[MAXS];
    double t0 = now_s();
    for (int i = 0; i < streams; i++) {
      pthread_create(&r[i], NULL, receiver, (void *)(intptr_t)i);
      pthread_create(&s[i], NULL, sender, (void *)(intptr_t)i);
    }
    for (int i = 0; i < streams; i++) pthread_join(r[i], NULL);
    double t1 = now_s();
    if (sync) {
      printf("end\n");
      fflush(stdout);
    }
    for (int i = 0; i < streams; i++) pthread_join(s[i], NULL);
    uint64_t total = 0;
    for (int i = 0; i < streams; i++) total += far_bytes[i];
    printf("{\"bytes\":%llu,\"seconds\":%.6f,\"gbps\":%.4f}\n", (unsigned long long)total, t1 - t0, (double)total / (t1 - t0) / 1e9);
  } else {
    pthread_t e;
    pthread_create(&e, NULL, echo, (void *)(intptr_t)far_fd[0]);
    char *buf = malloc((size_t)size);
    memset(buf, 'p', (size_t)size);
    int warm = iters / 10 + 10;
    double *rtt = malloc(sizeof(double) * (size_t)iters);
    for (int i = 0; i < warm + iters; i++) {
      double t = now_s();
      write_all(near_fd[0], buf, (size_t)size);
      read_all(near_fd[0], buf, (size_t)size);
      if (i >= warm) rtt[i - warm] = (now_s() - t) * 1e6;
    }
    shutdown(near_fd[0], SHUT_WR);
    pthread_join(e, NULL);
    while (read(near_fd[0], buf, (size_t)size) > 0) {
    }
    qsort(rtt, (size_t)iters, sizeof(double), cmp_double);
    printf("{\"p50us\":%.2f,\"p99us\":%.2f,\"iters\":%d}\n", rtt[iters / 2], rtt[(int)(iters * 0.99)], iters);
    free(rtt);
    free(buf);
  }
  for (int i = 0; i < streams; i++) {
    close(near_fd[i]);
    close(far_fd[i]);
  }
  return 0;
}
