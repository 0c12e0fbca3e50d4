#define _GNU_SOURCE
#include "pipe_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

size_t pipe_pool_capped_size(size_t wanted) {
  /* An unprivileged F_SETPIPE_SZ above pipe-max-size fails with EPERM; asking for at most the
   * limit keeps the same size whether or not the daemon runs as root. */
  FILE *f = fopen("/proc/sys/fs/pipe-max-size", "r");
  unsigned long max = 0;
  if (f != NULL) {
    if (fscanf(f, "%lu", &max) != 1) max = 0;
    fclose(f);
  }
  if (max > 0 && wanted > max) return (size_t)max;
  return wanted;
}

int pipe_pool_init(pipe_pool_t *pool, size_t size, int cap) {
  pool->free = calloc((size_t)(cap > 0 ? cap : 1), sizeof(rpipe_t));
  if (pool->free == NULL) return -ENOMEM;
  pool->nfree = 0;
  pool->cap = cap;
  pool->size = size;
  pool->in_use = 0;
  return 0;
}

int pipe_pool_get(pipe_pool_t *pool, rpipe_t *out) {
  if (pool->nfree > 0) {
    *out = pool->free[--pool->nfree];
    pool->in_use++;
    return 0;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return -errno;
  /* Failure is not fatal: past pipe-user-pages-soft (64 MiB of pipes per user by default) the
   * kernel refuses larger pipes to unprivileged users, and a small pipe still relays correctly,
   * only with more system calls. Such a pipe is not pooled (see pipe_pool_put). */
  if (pool->size > 0) (void)fcntl(fds[1], F_SETPIPE_SZ, (int)pool->size);
  out->r = fds[0];
  out->w = fds[1];
  out->size = fcntl(fds[1], F_GETPIPE_SZ);
  pool->in_use++;
  return 0;
}

void pipe_pool_put(pipe_pool_t *pool, rpipe_t p) {
  pool->in_use--;
  if (pool->nfree < pool->cap && (size_t)p.size >= pool->size) {
    pool->free[pool->nfree++] = p;
    return;
  }
  close(p.r);
  close(p.w);
}

void pipe_pool_discard(pipe_pool_t *pool, rpipe_t p) {
  pool->in_use--;
  close(p.r);
  close(p.w);
}

void pipe_pool_destroy(pipe_pool_t *pool) {
  for (int i = 0; i < pool->nfree; i++) {
    close(pool->free[i].r);
    close(pool->free[i].w);
  }
  pool->nfree = 0;
  free(pool->free);
  pool->free = NULL;
}
