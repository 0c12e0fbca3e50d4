/*
 * Moving octets for one pairing: head bytes first, then socket -> pipe -> socket with splice(2).
 * Epoll is edge-triggered, so each direction runs until the kernel says EAGAIN; a per-call
 * budget stops one busy pairing from starving the others on its thread (it is put on the ready
 * list and resumed after the current batch of events).
 *
 * Interest follows need: a socket is watched for input only while its direction waits for
 * data, and for output only while the other direction waits for room. Without this, every
 * segment arriving on a source whose pipe is still full (its destination slow) wakes the thread
 * for nothing (perf stat showed ~1.4x HAProxy's context switches per GB before; HAProxy, too,
 * stops polling a source while its pipe is full).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay_internal.h"

/* 8 system calls per direction (4 pipe-fulls in and out, up to 4 MiB with 1 MiB pipes) before
 * yielding: enough that the ready-list detour is rare, few enough that busy streams sharing a
 * thread take turns every few milliseconds. */
#define PUMP_BUDGET 8

enum { PUMP_WAIT = 0, PUMP_MORE = 1 };

static void release_pipe(worker_t *w, dir_t *d) {
  if (!d->has_pipe) return;
  if (d->inpipe == 0) pipe_pool_put(&w->pool, d->pipe);
  else pipe_pool_discard(&w->pool, d->pipe);
  d->has_pipe = 0;
  d->inpipe = 0;
}

static int wait_for(dir_t *d, int rd, int wr) {
  d->want_read = (uint8_t)rd;
  d->want_write = (uint8_t)wr;
  return PUMP_WAIT;
}

/* PUMP_WAIT (blocked on the kernel, or done), PUMP_MORE (budget spent), or -errno. */
static int pump_dir(worker_t *w, pairing_t *p, dir_t *d) {
  int rounds = 0;
  while (!d->done) {
    if (rounds++ >= PUMP_BUDGET) return PUMP_MORE;
    if (d->head_off < d->head_len) {
      ssize_t n = send(d->dst, d->head + d->head_off, d->head_len - d->head_off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return wait_for(d, 0, 1);
        if (errno == EINTR) continue;
        return -errno;
      }
      d->head_off += (size_t)n;
      d->bytes += (uint64_t)n;
      p->last_ms = w->now_ms;
      if (d->head_off == d->head_len) {
        free(d->head);
        d->head = NULL;
        d->head_len = d->head_off = 0;
      }
      continue;
    }
    if (d->inpipe > 0) {
      ssize_t n = splice(d->pipe.r, NULL, d->dst, NULL, d->inpipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n < 0) {
        if (errno == EAGAIN) return wait_for(d, 0, 1);
        if (errno == EINTR) continue;
        return -errno;
      }
      d->inpipe -= (size_t)n;
      d->bytes += (uint64_t)n;
      p->last_ms = w->now_ms;
      continue;
    }
    if (d->src_eof) {
      /* Half-close: the peer learns of the EOF; the other direction keeps flowing. ENOTCONN
       * (peer already gone) is left for the other direction or the final close to report. */
      (void)shutdown(d->dst, SHUT_WR);
      release_pipe(w, d);
      d->done = 1;
      return wait_for(d, 0, 0);
    }
    if (!d->has_pipe) {
      int rc = pipe_pool_get(&w->pool, &d->pipe);
      if (rc < 0) return rc;
      d->has_pipe = 1;
    }
    /* The label's bandwidth: read only as many octets as there are tokens; none, and the
     * direction stops reading (no interest in src) until the bucket has refilled enough. */
    size_t want = w->pool.size;
    if (d->bw != NULL) {
      uint32_t wait = 0;
      want = rbucket_take(d->bw, want, mono_us(), &wait);
      if (want == 0) {
        release_pipe(w, d);
        worker_throttle(w, p, w->now_ms + wait);
        return wait_for(d, 0, 0);
      }
    }
    /* Only an empty pipe is filled, so EAGAIN here can only mean "socket has nothing". */
    ssize_t n = splice(d->src, NULL, d->pipe.w, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (d->bw != NULL && (size_t)(n > 0 ? n : 0) < want) rbucket_refund(d->bw, want - (size_t)(n > 0 ? n : 0));
    if (n > 0) {
      d->inpipe = (size_t)n;
      continue;
    }
    if (n == 0) {
      d->src_eof = 1;
      continue;
    }
    if (errno == EAGAIN) {
      /* Nothing in flight: the pipe goes back to the pool, so an idle pairing holds none. */
      release_pipe(w, d);
      return wait_for(d, 1, 0);
    }
    if (errno == EINTR) continue;
    return -errno;
  }
  return wait_for(d, 0, 0);
}

/* Brings each socket's epoll interest in line with what its directions wait for. EPOLLERR and
 * EPOLLHUP are always reported, so a reset is seen whatever the interest. */
static int update_interest(worker_t *w, pairing_t *p) {
  for (int i = 0; i < 2; i++) {
    uint32_t want = EPOLLET;
    if (p->d[i].want_read) want |= EPOLLIN | EPOLLRDHUP; /* fd[i] is the source of d[i] */
    if (p->d[1 - i].want_write) want |= EPOLLOUT;        /* ... and the destination of d[1-i] */
    if (want == p->events[i]) continue;
    struct epoll_event ev = {.events = want, .data.ptr = &p->ep[i]};
    /* MOD re-arms and re-checks readiness, so an edge that came meanwhile is not lost. */
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, p->fd[i], &ev) != 0) return -errno;
    p->events[i] = want;
  }
  return 0;
}

/* The one rule for a socket error's close reason: the peer reset (or went away mid-write) is
 * RESET, anything else ERROR. Used for splice failures here and SO_ERROR in worker.c. */
int reason_of_errno(int err) {
  return (err == ECONNRESET || err == EPIPE || err == ECONNABORTED) ? RELAY_RESET : RELAY_ERROR;
}

void pump_pairing(worker_t *w, pairing_t *p) {
  int more = 0;
  for (int i = 0; i < 2; i++) {
    int rc = pump_dir(w, p, &p->d[i]);
    if (rc < 0) {
      worker_finish(w, p, reason_of_errno(-rc), -rc);
      return;
    }
    if (rc == PUMP_MORE) more = 1;
  }
  if (p->d[0].done && p->d[1].done) {
    worker_finish(w, p, RELAY_EOF, 0);
    return;
  }
  int rc = update_interest(w, p);
  if (rc < 0) {
    /* Without the interest it needs the pairing would stall unseen: end it instead. */
    worker_finish(w, p, RELAY_ERROR, -rc);
    return;
  }
  if (more && !p->in_ready) {
    p->in_ready = 1;
    p->ready_next = w->ready;
    w->ready = p;
  }
}

void pairing_free(pairing_t *p) {
  free(p->res); /* NULL once reported; still here for a pairing that never started */
  rbucket_unref(p->d[0].bw);
  rbucket_unref(p->d[1].bw);
  free(p->d[0].head);
  free(p->d[1].head);
  free(p);
}

/* Used by worker_finish: pipes back to the pool (or closed when they still hold octets). */
void pump_release_pipes(worker_t *w, pairing_t *p) {
  release_pipe(w, &p->d[0]);
  release_pipe(w, &p->d[1]);
}
