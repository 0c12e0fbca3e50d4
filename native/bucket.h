/*
 * A token bucket of octets, shared by every pairing of one label in one direction (a label's
 * `bandwidth` policy), across the relay's worker threads: refilled continuously at `rate`
 * octets per second up to `burst`. Pairings take tokens before they read from their source and
 * give back what they did not read. Reference-counted: the JavaScript handle holds one, every
 * pairing that uses the bucket holds one; the last release frees it.
 */
#ifndef TAAS_BUCKET_H
#define TAAS_BUCKET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rbucket {
  pthread_mutex_t mu; /* guards the fields below: takes are a few per pipe-full, never hot */
  double tokens;
  uint64_t last_us;   /* monotonic µs of the last refill */
  uint64_t rate;      /* octets per second, > 0 */
  uint64_t burst;     /* most tokens the bucket holds, > 0 */
  atomic_int refs;
} rbucket_t;

/* A full bucket with one reference, or NULL without memory. */
rbucket_t *rbucket_new(uint64_t rate, uint64_t burst);
void rbucket_ref(rbucket_t *b);
void rbucket_unref(rbucket_t *b);
/*
 * Takes up to `want` tokens (octets that may be read now) and returns how many, at least 1
 * unless it returns 0. On 0, *wait_ms is how long until taking is worth trying again (enough
 * tokens for a useful read, never a spin on single octets).
 */
size_t rbucket_take(rbucket_t *b, size_t want, uint64_t now_us, uint32_t *wait_ms);
/* Gives back tokens taken but not used (the read moved fewer octets). */
void rbucket_refund(rbucket_t *b, size_t n);
uint64_t mono_us(void);

#endif
