/*
 * A per-thread pool of kernel pipes for splice(2). A direction of a pairing holds a pipe only
 * while octets are in flight (socket -> pipe -> socket); an idle pairing holds none, so 5,000
 * idle pairings cost 10,000 socket descriptors and no pipes. Not thread-safe: one pool per
 * worker thread, used only by that thread.
 */
#ifndef TAAS_PIPE_POOL_H
#define TAAS_PIPE_POOL_H

#include <stddef.h>

typedef struct rpipe {
  int r;    /* read end */
  int w;    /* write end */
  int size; /* capacity the kernel granted (F_GETPIPE_SZ) */
} rpipe_t;

typedef struct pipe_pool {
  rpipe_t *free;   /* empty pipes ready for reuse */
  int nfree;
  int cap;         /* at most this many kept; the surplus is closed */
  size_t size;     /* requested capacity of each pipe (F_SETPIPE_SZ) */
  int in_use;      /* handed out and not yet returned */
} pipe_pool_t;

/* Capacity wanted for each pipe, capped by /proc/sys/fs/pipe-max-size. 0 on allocation failure. */
int pipe_pool_init(pipe_pool_t *pool, size_t size, int cap);
/* 0 and a pipe (pooled or new), or -errno (EMFILE, ENFILE...). */
int pipe_pool_get(pipe_pool_t *pool, rpipe_t *out);
/* Returns an EMPTY pipe to the pool (closed if the pool is full, or if it is smaller than
 * wanted: the kernel refused the size once, and a later pipe may get it). */
void pipe_pool_put(pipe_pool_t *pool, rpipe_t p);
/* Closes a pipe that may still hold octets (pairing ended mid-transfer). */
void pipe_pool_discard(pipe_pool_t *pool, rpipe_t p);
void pipe_pool_destroy(pipe_pool_t *pool);
/* The capacity a pipe is asked for: min(wanted, /proc/sys/fs/pipe-max-size). */
size_t pipe_pool_capped_size(size_t wanted);

#endif
