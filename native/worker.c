/*
 * One worker thread: an epoll loop over the sockets of its pairings (edge-triggered, interest
 * kept to what each direction waits for, see pump.c), a command queue fed by the
 * JavaScript thread through an eventfd, the idle-timeout sweep, and the end of pairings.
 *
 * Memory rule: a pairing that ends during a batch of events may still be named by a later
 * event of the same batch or by the ready list, so it is only freed after both are processed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relay_internal.h"

/* Events fetched per epoll_wait; 2 sockets per pairing, so up to 128 pairings per batch. */
#define MAX_EVENTS 256

uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void list_remove(worker_t *w, pairing_t *p) {
  if (p->prev != NULL) p->prev->next = p->next;
  else w->live = p->next;
  if (p->next != NULL) p->next->prev = p->prev;
  p->prev = p->next = NULL;
}

static void throttle_remove(worker_t *w, pairing_t *p) {
  if (!p->in_throttle) return;
  if (p->throttle_prev != NULL) p->throttle_prev->throttle_next = p->throttle_next;
  else w->throttled = p->throttle_next;
  if (p->throttle_next != NULL) p->throttle_next->throttle_prev = p->throttle_prev;
  p->throttle_prev = p->throttle_next = NULL;
  p->in_throttle = 0;
}

void worker_throttle(worker_t *w, pairing_t *p, uint64_t wake_ms) {
  if (p->in_throttle) {
    if (wake_ms < p->wake_ms) p->wake_ms = wake_ms;
    return;
  }
  p->wake_ms = wake_ms;
  p->in_throttle = 1;
  p->throttle_prev = NULL;
  p->throttle_next = w->throttled;
  if (w->throttled != NULL) w->throttled->throttle_prev = p;
  w->throttled = p;
}

/* Throttled pairings whose wake time has come read again (their buckets have refilled). */
static void run_throttled(worker_t *w) {
  pairing_t *p = w->throttled;
  while (p != NULL) {
    pairing_t *nx = p->throttle_next;
    if (w->now_ms >= p->wake_ms) {
      throttle_remove(w, p);
      pump_pairing(w, p); /* may throttle it again (a new list head: nx stays valid) */
    }
    p = nx;
  }
}

void worker_finish(worker_t *w, pairing_t *p, int reason, int err) {
  if (p->dead) return;
  p->dead = 1;
  throttle_remove(w, p);
  for (int i = 0; i < 2; i++) (void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, p->fd[i], NULL);
  if (reason == RELAY_RESET || reason == RELAY_ERROR) {
    /* Reset propagation: a linger of 0 makes close() send RST, so the other side learns
     * the pairing broke instead of seeing a clean end of stream. */
    struct linger lg = {1, 0};
    for (int i = 0; i < 2; i++) (void)setsockopt(p->fd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  close(p->fd[0]);
  close(p->fd[1]);
  pump_release_pipes(w, p);
  list_remove(w, p);
  atomic_fetch_sub(&w->n_pairings, 1);
  /* Preallocated by relay_pair: the end is reported whatever memory is left now. */
  relay_result_t *res = p->res;
  p->res = NULL;
  res->id = p->id;
  res->up = p->d[0].bytes;
  res->down = p->d[1].bytes;
  res->reason = reason;
  res->err = err;
  w->relay->cb(w->relay->ctx, res);
  if (!p->in_ready) {
    p->grave_next = w->grave;
    w->grave = p;
  }
}

static void add_pairing(worker_t *w, pairing_t *p) {
  p->last_ms = w->now_ms;
  p->next = w->live;
  if (w->live != NULL) w->live->prev = p;
  w->live = p;
  for (int i = 0; i < 2; i++) {
    /* Everything at first; the first pump narrows it to what each direction waits for. */
    p->events[i] = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    struct epoll_event ev = {.events = p->events[i], .data.ptr = &p->ep[i]};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, p->fd[i], &ev) != 0) {
      int err = errno;
      worker_finish(w, p, RELAY_ERROR, err);
      return;
    }
  }
  if (p->idle_ms > 0 && p->last_ms + p->idle_ms < w->next_idle_ms) w->next_idle_ms = p->last_ms + p->idle_ms;
  /* Head bytes are written, and anything already queued in the kernel is moved, now. */
  pump_pairing(w, p);
}

/* The octets a direction read and has not written: its head's remainder, then its pipe. The
 * pipe is read into the buffer; `undo_pending` puts them back if the pairing cannot go. */
static int save_pending(dir_t *d, uint8_t **buf, size_t *len) {
  size_t head = d->head_len - d->head_off;
  size_t total = head + d->inpipe;
  *buf = NULL;
  *len = 0;
  if (total == 0) return 0;
  uint8_t *b = malloc(total);
  if (b == NULL) return -ENOMEM;
  if (head > 0) memcpy(b, d->head + d->head_off, head);
  size_t off = head;
  while (off < total) {
    ssize_t k = read(d->pipe.r, b + off, total - off);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      int err = k < 0 ? errno : EIO;
      /* What was read goes back into the (now emptier) pipe: nothing is lost, the pairing stays. */
      size_t back = head;
      while (back < off) {
        ssize_t w = write(d->pipe.w, b + back, off - back);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        back += (size_t)w;
      }
      free(b);
      return -err;
    }
    off += (size_t)k;
  }
  *buf = b;
  *len = total;
  return 0;
}

/* A saved direction whose pairing stays after all: its pipe octets go back (the pipe had room for them). */
static void undo_pending(dir_t *d, uint8_t *buf, size_t len) {
  size_t head = d->head_len - d->head_off;
  size_t back = head;
  while (back < len) {
    ssize_t w = write(d->pipe.w, buf + back, len - back);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    back += (size_t)w;
  }
  free(buf);
}

/* One pairing out of this worker for the hand-over: nothing closed, nothing reported. */
static int detach_one(worker_t *w, pairing_t *p, relay_detached_t *out) {
  memset(out, 0, sizeof *out);
  int rc = save_pending(&p->d[0], &out->pending_up, &out->len_up);
  if (rc != 0) return rc;
  rc = save_pending(&p->d[1], &out->pending_down, &out->len_down);
  if (rc != 0) {
    undo_pending(&p->d[0], out->pending_up, out->len_up);
    out->pending_up = NULL;
    return rc;
  }
  p->d[0].inpipe = 0;
  p->d[1].inpipe = 0;
  /* A pairing waiting for its bandwidth's tokens leaves that list too (it is freed with the
   * graveyard; its bucket references go with it). The next daemon limits it under the label's
   * policy there, with buckets of its own. */
  throttle_remove(w, p);
  for (int i = 0; i < 2; i++) (void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, p->fd[i], NULL);
  out->id = p->id;
  out->fd_client = p->fd[0];
  out->fd_responder = p->fd[1];
  out->up = p->d[0].bytes;
  out->down = p->d[1].bytes;
  p->dead = 1;
  pump_release_pipes(w, p); /* empty now: back to the pool */
  if (p->prev != NULL) p->prev->next = p->next;
  else w->live = p->next;
  if (p->next != NULL) p->next->prev = p->prev;
  p->prev = p->next = NULL;
  atomic_fetch_sub(&w->n_pairings, 1);
  if (!p->in_ready) {
    p->grave_next = w->grave;
    w->grave = p;
  }
  return 0;
}

void worker_detach_all(worker_t *w, detach_req_t *req) {
  pairing_t *p = w->live;
  while (p != NULL) {
    pairing_t *next = p->next;
    /* A half-closed pairing stays: its end of stream was already passed on. */
    if (!p->dead && !p->d[0].src_eof && !p->d[1].src_eof) {
      relay_detached_t d;
      if (detach_one(w, p, &d) == 0) {
        pthread_mutex_lock(&req->mu);
        if (req->n == req->cap) {
          size_t cap = req->cap ? req->cap * 2 : 64;
          relay_detached_t *grown = realloc(req->list, cap * sizeof *grown);
          if (grown != NULL) {
            req->list = grown;
            req->cap = cap;
          }
        }
        if (req->n < req->cap) req->list[req->n++] = d;
        else {
          /* No room to report it: it cannot go back (its pipes were drained), so it ends. */
          req->err = -ENOMEM;
          close(d.fd_client);
          close(d.fd_responder);
          free(d.pending_up);
          free(d.pending_down);
        }
        pthread_mutex_unlock(&req->mu);
      }
    }
    p = next;
  }
  pthread_mutex_lock(&req->mu);
  req->pending--;
  pthread_cond_signal(&req->cv);
  pthread_mutex_unlock(&req->mu);
}

static void close_matching(worker_t *w, int all, int64_t id, int reason) {
  pairing_t *p = w->live;
  while (p != NULL) {
    pairing_t *next = p->next;
    if (all || p->id == id) worker_finish(w, p, reason, 0);
    p = next;
  }
}

static void run_commands(worker_t *w) {
  uint64_t v;
  while (read(w->evfd, &v, sizeof v) > 0) {
  }
  pthread_mutex_lock(&w->mu);
  cmd_t *c = w->q_head;
  w->q_head = w->q_tail = NULL;
  pthread_mutex_unlock(&w->mu);
  while (c != NULL) {
    cmd_t *next = c->next;
    switch (c->kind) {
      case CMD_ADD: add_pairing(w, c->p); break;
      case CMD_CLOSE: close_matching(w, 0, c->id, c->reason); break;
      case CMD_CLOSE_ALL: close_matching(w, 1, 0, c->reason); break;
      case CMD_DETACH_ALL: worker_detach_all(w, c->req); break;
      case CMD_STOP:
        close_matching(w, 1, 0, RELAY_CLOSED);
        w->stop = 1;
        break;
    }
    free(c);
    c = next;
  }
}

static void on_event(worker_t *w, pend_t *e, uint32_t events) {
  pairing_t *p = e->p;
  if (p->dead) return;
  pump_pairing(w, p);
  if (p->dead || !(events & EPOLLERR)) return;
  /* Octets queued before the error were moved above; a socket error that no splice touched
   * (e.g. RST on a side whose direction is idle) still ends the pairing now. */
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(p->fd[e->side], SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
    worker_finish(w, p, reason_of_errno(err), err);
}

static void sweep_idle(worker_t *w) {
  if (w->next_idle_ms == UINT64_MAX || w->now_ms < w->next_idle_ms) return;
  /* Activity only pushes deadlines later, so the earliest deadline seen here is a safe time
   * for the next sweep: O(pairings) at most once per shortest idle period. */
  uint64_t next = UINT64_MAX;
  pairing_t *p = w->live;
  while (p != NULL) {
    pairing_t *nx = p->next;
    if (p->idle_ms > 0) {
      uint64_t deadline = p->last_ms + p->idle_ms;
      if (w->now_ms >= deadline) worker_finish(w, p, RELAY_IDLE, 0);
      else if (deadline < next) next = deadline;
    }
    p = nx;
  }
  w->next_idle_ms = next;
}

static void run_ready(worker_t *w) {
  pairing_t *r = w->ready;
  w->ready = NULL;
  while (r != NULL) {
    pairing_t *nx = r->ready_next;
    r->in_ready = 0;
    if (r->dead) pairing_free(r);
    else pump_pairing(w, r);
    r = nx;
  }
}

static void free_grave(worker_t *w) {
  while (w->grave != NULL) {
    pairing_t *g = w->grave;
    w->grave = g->grave_next;
    pairing_free(g);
  }
}

static int wait_ms(worker_t *w) {
  if (w->ready != NULL) return 0;
  uint64_t next = w->next_idle_ms;
  for (pairing_t *t = w->throttled; t != NULL; t = t->throttle_next)
    if (t->wake_ms < next) next = t->wake_ms;
  if (next == UINT64_MAX) return -1;
  uint64_t now = mono_ms();
  if (next <= now) return 0;
  uint64_t d = next - now;
  return d > 60000 ? 60000 : (int)d;
}

void *worker_main(void *arg) {
  worker_t *w = arg;
  /* Named so that top -H and /proc show which threads are the relay's. */
  pthread_setname_np(pthread_self(), "taas-splice");
  struct epoll_event evs[MAX_EVENTS];
  while (!w->stop) {
    int n = epoll_wait(w->epfd, evs, MAX_EVENTS, wait_ms(w));
    if (n < 0) n = 0; /* EINTR; nothing else can fail on a valid epoll fd */
    w->now_ms = mono_ms();
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) run_commands(w);
      else on_event(w, evs[i].data.ptr, evs[i].events);
    }
    run_ready(w);
    run_throttled(w);
    sweep_idle(w);
    free_grave(w);
    atomic_store(&w->n_pipes_in_use, w->pool.in_use);
    atomic_store(&w->n_pipes_pooled, w->pool.nfree);
  }
  /* Stopped: every pairing has ended; free what the lists still hold. */
  while (w->ready != NULL) {
    pairing_t *r = w->ready;
    w->ready = r->ready_next;
    pairing_free(r); /* all dead, and not on the graveyard (in_ready was set) */
  }
  free_grave(w);
  pipe_pool_destroy(&w->pool);
  atomic_store(&w->n_pipes_in_use, 0);
  atomic_store(&w->n_pipes_pooled, 0);
  return NULL;
}
