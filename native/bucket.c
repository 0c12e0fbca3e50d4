/* The shared token bucket of a label's bandwidth (bucket.h). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <time.h>

#include "bucket.h"

/* A throttled read waits for at least this share of the burst (or of what it asked for): tens
 * of wake-ups per second per label at most, not one per segment. */
#define MIN_GRANT_SHARE 8

uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

rbucket_t *rbucket_new(uint64_t rate, uint64_t burst) {
  rbucket_t *b = calloc(1, sizeof *b);
  if (b == NULL) return NULL;
  pthread_mutex_init(&b->mu, NULL);
  b->rate = rate > 0 ? rate : 1;
  b->burst = burst > 0 ? burst : 1;
  b->tokens = (double)b->burst;
  b->last_us = mono_us();
  atomic_init(&b->refs, 1);
  return b;
}

static void refill(rbucket_t *b, uint64_t now_us) {
  if (now_us > b->last_us) {
    b->tokens += (double)(now_us - b->last_us) * (double)b->rate / 1e6;
    if (b->tokens > (double)b->burst) b->tokens = (double)b->burst;
  }
  b->last_us = now_us;
}

void rbucket_ref(rbucket_t *b) {
  atomic_fetch_add(&b->refs, 1);
}

void rbucket_unref(rbucket_t *b) {
  if (b == NULL) return;
  if (atomic_fetch_sub(&b->refs, 1) == 1) {
    pthread_mutex_destroy(&b->mu);
    free(b);
  }
}

size_t rbucket_take(rbucket_t *b, size_t want, uint64_t now_us, uint32_t *wait_ms) {
  pthread_mutex_lock(&b->mu);
  refill(b, now_us);
  size_t least = want < b->burst / MIN_GRANT_SHARE ? want : (size_t)(b->burst / MIN_GRANT_SHARE);
  if (least == 0) least = 1;
  size_t got = 0;
  if (b->tokens >= (double)least) {
    got = b->tokens >= (double)want ? want : (size_t)b->tokens;
    b->tokens -= (double)got;
  } else {
    double missing = (double)least - b->tokens;
    uint64_t ms = (uint64_t)(missing * 1000.0 / (double)b->rate) + 1;
    *wait_ms = ms > 1000 ? 1000 : (uint32_t)ms;
  }
  pthread_mutex_unlock(&b->mu);
  return got;
}

void rbucket_refund(rbucket_t *b, size_t n) {
  if (n == 0) return;
  pthread_mutex_lock(&b->mu);
  b->tokens += (double)n;
  if (b->tokens > (double)b->burst) b->tokens = (double)b->burst;
  pthread_mutex_unlock(&b->mu);
}
