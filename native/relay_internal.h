/* Shared between relay.c (public API, commands), worker.c (event loop) and pump.c (splicing). */
#ifndef TAAS_RELAY_INTERNAL_H
#define TAAS_RELAY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "bucket.h"
#include "pipe_pool.h"
#include "relay.h"

typedef struct pairing pairing_t;
typedef struct worker worker_t;

/* One direction: octets read from `src` and written to `dst`. */
typedef struct dir {
  int src;
  int dst;
  rpipe_t pipe;      /* valid when has_pipe */
  size_t inpipe;     /* octets in the pipe not yet written to dst */
  uint8_t *head;     /* octets read by JavaScript before the hand-over, written first */
  size_t head_len;
  size_t head_off;
  uint64_t bytes;    /* octets written to dst */
  uint8_t has_pipe;
  uint8_t src_eof;   /* src returned EOF */
  uint8_t done;      /* EOF seen, everything flushed, dst shut down for writing */
  /* What this direction waits for when it last stopped: data on src (want_read) or room on
   * dst (want_write). The epoll interest of each socket follows these (see pump.c). */
  uint8_t want_read;
  uint8_t want_write;
  /* The label's bandwidth in this direction (NULL: none); a reference held until the free. */
  rbucket_t *bw;
} dir_t;

/* Cookie stored in epoll_event.data.ptr: which pairing, which socket. */
typedef struct pend {
  pairing_t *p;
  int side; /* 0 client, 1 responder */
} pend_t;

struct pairing {
  int64_t id;
  int fd[2];        /* 0 client, 1 responder */
  dir_t d[2];       /* d[0] client -> responder (up), d[1] responder -> client (down) */
  pend_t ep[2];
  uint32_t events[2]; /* epoll interest registered for fd[0], fd[1] */
  uint32_t idle_ms;
  uint64_t last_ms; /* monotonic ms of the last octet moved */
  pairing_t *prev, *next;   /* the worker's live list */
  pairing_t *ready_next;    /* the worker's ready list (budget ran out, more to move) */
  pairing_t *grave_next;    /* freed at the end of the loop iteration */
  /* The completion, allocated with the pairing so that its end can always be reported (a
   * malloc at the end could fail, and JavaScript would wait forever); handed to the done
   * callback by worker_finish, which sets it to NULL. */
  relay_result_t *res;
  /* On the worker's throttled list (a direction waits for bandwidth tokens) until wake_ms. */
  pairing_t *throttle_prev, *throttle_next;
  uint64_t wake_ms;
  uint8_t in_ready;
  uint8_t in_throttle;
  uint8_t dead;
};

enum cmd_kind { CMD_ADD, CMD_CLOSE, CMD_CLOSE_ALL, CMD_STOP, CMD_DETACH_ALL };

/* The answer of every worker to one relay_detach_all: filled under mu, `pending` workers left. */
typedef struct detach_req {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int pending;
  int err;
  relay_detached_t *list;
  size_t n, cap;
} detach_req_t;

typedef struct cmd {
  int kind;
  int reason;
  int64_t id;
  pairing_t *p;
  detach_req_t *req;
  struct cmd *next;
} cmd_t;

struct worker {
  relay_t *relay;
  int epfd;
  int evfd;            /* wakes the thread when a command is queued */
  pthread_t thread;
  int started;
  pthread_mutex_t mu;  /* guards the command queue */
  cmd_t *q_head, *q_tail;
  pairing_t *live;     /* doubly linked list of live pairings */
  pairing_t *ready;
  pairing_t *grave;
  pairing_t *throttled; /* doubly linked: pairings waiting for bandwidth tokens */
  pipe_pool_t pool;
  uint64_t now_ms;
  uint64_t next_idle_ms; /* no pairing can idle out before this; UINT64_MAX = none has a limit */
  int stop;
  atomic_long n_pairings;
  atomic_long n_pipes_in_use;
  atomic_long n_pipes_pooled;
};

struct relay {
  relay_done_cb cb;
  void *ctx;
  int nthreads;
  size_t pipe_size;
  worker_t *workers;
};

/* worker.c */
void *worker_main(void *arg);
uint64_t mono_ms(void);
void worker_finish(worker_t *w, pairing_t *p, int reason, int err);
void worker_detach_all(worker_t *w, detach_req_t *req);
/* Puts p on the throttled list (or moves its wake time earlier); pump.c calls it. */
void worker_throttle(worker_t *w, pairing_t *p, uint64_t wake_ms);

/* pump.c: moves what can be moved now on both directions (may finish the pairing). */
void pump_pairing(worker_t *w, pairing_t *p);
void pump_release_pipes(worker_t *w, pairing_t *p);
void pairing_free(pairing_t *p);
/* RELAY_RESET or RELAY_ERROR for a socket errno. */
int reason_of_errno(int err);

#endif
