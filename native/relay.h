/*
 * The zero-copy relay core, free of N-API so that a plain C driver can run it under
 * AddressSanitizer and valgrind (native/test/driver.c).
 *
 * A relay owns worker threads, each with its own epoll set, pipe pool and pairings. A pairing
 * is two connected TCP sockets; the relay moves octets both ways with splice(2) through a pipe
 * taken from the pool only while octets are in flight, and reports the end of each pairing
 * once through the done callback (called on a worker thread).
 */
#ifndef TAAS_RELAY_H
#define TAAS_RELAY_H

#include <stddef.h>
#include <stdint.h>

/* Close reasons; same order as REASONS in src/relay/engines/splice.ts. */
enum relay_reason {
  RELAY_EOF = 0,    /* both directions ended with FIN */
  RELAY_RESET = 1,  /* a side reset the connection (ECONNRESET, EPIPE, ECONNABORTED: reason_of_errno) */
  RELAY_ERROR = 2,  /* another socket or resource error */
  RELAY_IDLE = 3,   /* no octet either way for idle_ms */
  RELAY_CLOSED = 4, /* closed from JavaScript */
  RELAY_DRAIN = 5,  /* closed from JavaScript by a drain */
};

typedef struct relay relay_t;

typedef struct relay_result {
  int64_t id;
  uint64_t up;   /* octets written to the responder (client -> responder), head included */
  uint64_t down; /* octets written to the client (responder -> client), head included */
  int reason;    /* enum relay_reason */
  int err;       /* errno for RESET/ERROR, else 0 */
} relay_result_t;

/* Called once per pairing on a worker thread; the callee owns `res` (free() it). */
typedef void (*relay_done_cb)(void *ctx, relay_result_t *res);

typedef struct relay_opts {
  int threads;      /* worker threads (>= 1) */
  size_t pipe_size; /* wanted capacity of each pipe; capped by /proc/sys/fs/pipe-max-size */
  int pool_max;     /* empty pipes kept per thread for reuse */
} relay_opts_t;

typedef struct relay_stats {
  int64_t pairings;     /* live pairings */
  int64_t pipes_in_use; /* pipes holding octets in flight */
  int64_t pipes_pooled; /* empty pipes kept for reuse */
  int64_t pipe_size;    /* capacity asked of each pipe */
  int threads;
} relay_stats_t;

/* 0 and *out, or -errno. */
int relay_create(const relay_opts_t *opts, relay_done_cb cb, void *ctx, relay_t **out);

/*
 * Takes over a pairing. The two descriptors are dup()ed (the caller closes its own copies);
 * head_c goes to the responder and head_r to the client before any spliced octet.
 * idle_ms 0 = never idle out. `id` must be unique and non-negative. 0 or -errno.
 * The result the done callback will get is allocated here (-ENOMEM when it cannot be), so a
 * pairing taken over is always reported, whatever memory is left when it ends.
 */
int relay_pair(relay_t *relay, int64_t id, int fd_client, int fd_responder, const void *head_c,
               size_t len_c, const void *head_r, size_t len_r, uint32_t idle_ms);

/*
 * relay_pair with the label's bandwidth: up (client -> responder) and down each read through a
 * shared token bucket (bucket.h; NULL: unlimited). The pairing holds a reference to each.
 */
typedef struct rbucket rbucket_t;
int relay_pair_limited(relay_t *relay, int64_t id, int fd_client, int fd_responder, const void *head_c,
                       size_t len_c, const void *head_r, size_t len_r, uint32_t idle_ms, rbucket_t *bw_up,
                       rbucket_t *bw_down);

/* Ends one pairing (no-op if already ended) or all of them; the done callback reports reason.
 * Never lost: queueing the command is retried while memory is short. */
void relay_close(relay_t *relay, int64_t id, int reason);
void relay_close_all(relay_t *relay, int reason);

void relay_stats(relay_t *relay, relay_stats_t *out);

/*
 * TCP_USER_TIMEOUT on a socket: unacknowledged data older than `ms` ends the connection
 * (ETIMEDOUT) instead of ~15 minutes of retransmissions; 0 restores the kernel default.
 * A socket option, so it survives the dup() of the hand-over. 0 or -errno.
 */
int relay_set_user_timeout(int fd, uint32_t ms);

/* A pairing taken out of the relay for the hand-over to a new process (issue 16): its two
 * descriptors (now the caller's), its byte counts, and the octets it had read and not yet
 * written each way (head remainder, then pipe contents, in order). */
typedef struct relay_detached {
  int64_t id;
  int fd_client;
  int fd_responder;
  uint64_t up;
  uint64_t down;
  uint8_t *pending_up; /* malloc()ed, or NULL; the caller frees */
  size_t len_up;
  uint8_t *pending_down;
  size_t len_down;
} relay_detached_t;

/*
 * Stops every pairing that can be handed over (not half-closed) and returns them; their end is
 * never reported. Blocks until every worker has answered. *out is malloc()ed (free it, and each
 * pending buffer). 0 or -errno; a pairing whose octets cannot be saved (no memory) stays.
 */
int relay_detach_all(relay_t *relay, relay_detached_t **out, size_t *n);

/* Ends every pairing (reason CLOSED, callbacks fire), joins the threads, frees everything. */
void relay_destroy(relay_t *relay);

#endif
