/*
 * The relay's public API (relay.h), called from the JavaScript thread: creating the worker
 * threads, taking over pairings, and queueing close / close-all / stop commands to them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "relay_internal.h"

static void enqueue(worker_t *w, cmd_t *c) {
  c->next = NULL;
  pthread_mutex_lock(&w->mu);
  if (w->q_tail != NULL) w->q_tail->next = c;
  else w->q_head = c;
  w->q_tail = c;
  pthread_mutex_unlock(&w->mu);
  uint64_t one = 1;
  /* The counter cannot overflow in practice; EAGAIN would only mean a wake-up is pending. */
  (void)!write(w->evfd, &one, sizeof one);
}

static int send_cmd(worker_t *w, int kind, int64_t id, int reason, pairing_t *p) {
  cmd_t *c = calloc(1, sizeof *c);
  if (c == NULL) return -ENOMEM;
  c->kind = kind;
  c->id = id;
  c->reason = reason;
  c->p = p;
  enqueue(w, c);
  return 0;
}

/* Close, close-all and stop must never be lost (a lost CLOSE leaves a revoked pairing relaying,
 * a lost CLOSE_ALL a drain waiting forever): a transient allocation failure is retried until
 * the command is queued. Only ADD may fail, and relay_pair reports that to its caller. */
static void send_cmd_surely(worker_t *w, int kind, int64_t id, int reason) {
  while (send_cmd(w, kind, id, reason, NULL) != 0) usleep(1000);
}

static int worker_init(worker_t *w, relay_t *relay, size_t pipe_size, int pool_max) {
  w->relay = relay;
  w->epfd = epoll_create1(EPOLL_CLOEXEC);
  w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  w->next_idle_ms = UINT64_MAX;
  if (w->epfd < 0 || w->evfd < 0) return -errno;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) != 0) return -errno;
  return pipe_pool_init(&w->pool, pipe_size, pool_max);
}

static void worker_release(worker_t *w) {
  if (w->epfd >= 0) close(w->epfd);
  if (w->evfd >= 0) close(w->evfd);
  pthread_mutex_destroy(&w->mu);
  /* Commands queued after STOP was processed (none in correct use): release what they own. */
  cmd_t *c = w->q_head;
  while (c != NULL) {
    cmd_t *next = c->next;
    if (c->kind == CMD_ADD) {
      close(c->p->fd[0]);
      close(c->p->fd[1]);
      pairing_free(c->p);
    }
    if (c->kind == CMD_DETACH_ALL) {
      /* Never left waiting: this worker has nothing to give. */
      pthread_mutex_lock(&c->req->mu);
      c->req->pending--;
      pthread_cond_signal(&c->req->cv);
      pthread_mutex_unlock(&c->req->mu);
    }
    free(c);
    c = next;
  }
  if (w->pool.free != NULL) pipe_pool_destroy(&w->pool);
}

int relay_create(const relay_opts_t *opts, relay_done_cb cb, void *ctx, relay_t **out) {
  int n = opts->threads < 1 ? 1 : opts->threads;
  relay_t *r = calloc(1, sizeof *r);
  if (r == NULL) return -ENOMEM;
  r->cb = cb;
  r->ctx = ctx;
  r->nthreads = n;
  r->pipe_size = pipe_pool_capped_size(opts->pipe_size);
  r->workers = calloc((size_t)n, sizeof(worker_t));
  if (r->workers == NULL) {
    free(r);
    return -ENOMEM;
  }
  for (int i = 0; i < n; i++) {
    r->workers[i].epfd = r->workers[i].evfd = -1;
    pthread_mutex_init(&r->workers[i].mu, NULL);
  }
  /* Workers block every signal so that signals keep reaching Node's own thread. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    worker_t *w = &r->workers[i];
    rc = worker_init(w, r, r->pipe_size, opts->pool_max);
    if (rc == 0) {
      rc = -pthread_create(&w->thread, NULL, worker_main, w);
      w->started = rc == 0;
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    relay_destroy(r);
    return rc;
  }
  *out = r;
  return 0;
}

static int dup_socket(int fd) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return -errno;
  int fl = fcntl(d, F_GETFL);
  /* The description is shared with libuv's copy and already non-blocking; make sure. */
  if (fl >= 0 && !(fl & O_NONBLOCK)) (void)fcntl(d, F_SETFL, fl | O_NONBLOCK);
  /* A relay must not add Nagle delay to small interactive writes (the stream engine sets the
   * same). Fails harmlessly on a non-TCP socket. */
  int one = 1;
  (void)setsockopt(d, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return d;
}

static int copy_head(dir_t *d, const void *head, size_t len) {
  if (len == 0) return 0;
  d->head = malloc(len);
  if (d->head == NULL) return -ENOMEM;
  memcpy(d->head, head, len);
  d->head_len = len;
  return 0;
}

int relay_pair(relay_t *r, int64_t id, int fd_client, int fd_responder, const void *head_c, size_t len_c,
               const void *head_r, size_t len_r, uint32_t idle_ms) {
  return relay_pair_limited(r, id, fd_client, fd_responder, head_c, len_c, head_r, len_r, idle_ms, NULL, NULL);
}

int relay_pair_limited(relay_t *r, int64_t id, int fd_client, int fd_responder, const void *head_c, size_t len_c,
                       const void *head_r, size_t len_r, uint32_t idle_ms, rbucket_t *bw_up, rbucket_t *bw_down) {
  if (id < 0) return -EINVAL;
  pairing_t *p = calloc(1, sizeof *p);
  if (p == NULL) return -ENOMEM;
  p->res = malloc(sizeof *p->res);
  if (p->res == NULL) {
    free(p);
    return -ENOMEM;
  }
  /* References from here on: pairing_free drops them, whichever way the pairing goes. */
  if (bw_up != NULL) rbucket_ref(bw_up);
  if (bw_down != NULL) rbucket_ref(bw_down);
  p->d[0].bw = bw_up;
  p->d[1].bw = bw_down;
  p->id = id;
  p->idle_ms = idle_ms;
  p->fd[0] = dup_socket(fd_client);
  p->fd[1] = p->fd[0] < 0 ? -1 : dup_socket(fd_responder);
  int rc = p->fd[0] < 0 ? p->fd[0] : p->fd[1] < 0 ? p->fd[1] : 0;
  if (rc == 0) rc = copy_head(&p->d[0], head_c, len_c);
  if (rc == 0) rc = copy_head(&p->d[1], head_r, len_r);
  worker_t *w = &r->workers[id % r->nthreads];
  if (rc == 0) {
    for (int i = 0; i < 2; i++) {
      p->ep[i].p = p;
      p->ep[i].side = i;
      p->d[i].src = p->fd[i];
      p->d[i].dst = p->fd[1 - i];
    }
    atomic_fetch_add(&w->n_pairings, 1);
    rc = send_cmd(w, CMD_ADD, id, 0, p);
    if (rc != 0) atomic_fetch_sub(&w->n_pairings, 1);
  }
  if (rc != 0) {
    if (p->fd[0] >= 0) close(p->fd[0]);
    if (p->fd[1] >= 0) close(p->fd[1]);
    pairing_free(p);
  }
  return rc;
}

int relay_detach_all(relay_t *r, relay_detached_t **out, size_t *n) {
  detach_req_t req;
  memset(&req, 0, sizeof req);
  pthread_mutex_init(&req.mu, NULL);
  pthread_cond_init(&req.cv, NULL);
  req.pending = r->nthreads;
  for (int i = 0; i < r->nthreads; i++) {
    cmd_t *c;
    while ((c = calloc(1, sizeof *c)) == NULL) usleep(1000);
    c->kind = CMD_DETACH_ALL;
    c->req = &req;
    enqueue(&r->workers[i], c);
  }
  pthread_mutex_lock(&req.mu);
  while (req.pending > 0) pthread_cond_wait(&req.cv, &req.mu);
  pthread_mutex_unlock(&req.mu);
  pthread_mutex_destroy(&req.mu);
  pthread_cond_destroy(&req.cv);
  *out = req.list;
  *n = req.n;
  return req.err;
}

void relay_close(relay_t *r, int64_t id, int reason) {
  if (id < 0) return;
  send_cmd_surely(&r->workers[id % r->nthreads], CMD_CLOSE, id, reason);
}

void relay_close_all(relay_t *r, int reason) {
  for (int i = 0; i < r->nthreads; i++) send_cmd_surely(&r->workers[i], CMD_CLOSE_ALL, 0, reason);
}

int relay_set_user_timeout(int fd, uint32_t ms) {
  unsigned int v = ms;
  return setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v) == 0 ? 0 : -errno;
}

void relay_stats(relay_t *r, relay_stats_t *out) {
  memset(out, 0, sizeof *out);
  out->threads = r->nthreads;
  out->pipe_size = (int64_t)r->pipe_size;
  for (int i = 0; i < r->nthreads; i++) {
    out->pairings += atomic_load(&r->workers[i].n_pairings);
    out->pipes_in_use += atomic_load(&r->workers[i].n_pipes_in_use);
    out->pipes_pooled += atomic_load(&r->workers[i].n_pipes_pooled);
  }
}

void relay_destroy(relay_t *r) {
  for (int i = 0; i < r->nthreads; i++) {
    worker_t *w = &r->workers[i];
    if (!w->started) continue;
    send_cmd_surely(w, CMD_STOP, 0, 0);
  }
  for (int i = 0; i < r->nthreads; i++) {
    worker_t *w = &r->workers[i];
    if (w->started) pthread_join(w->thread, NULL);
    worker_release(w);
  }
  free(r->workers);
  free(r);
}
