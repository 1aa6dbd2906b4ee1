/* Fixed-memory failure counter for login and verify rate limits: a hash
 * table of a fixed number of slots keyed by a string ("user:alice",
 * "uid:1000"). When the table is full the oldest window is evicted, so the
 * limiter never grows, whatever an attacker sends. Thread-safe. */
#pragma once

#include <stdint.h>

typedef struct ratelimit ratelimit;

#define RATELIMIT_SLOTS 4096U

/* max failures per window seconds. Returns 0 or -ENOMEM. */
int ratelimit_new(unsigned max, int64_t window, ratelimit **ret);
void ratelimit_free(ratelimit *rl);

/* 0 if key may try now; otherwise the number of seconds until it may
 * (for Retry-After, ≥ 1). */
int64_t ratelimit_check(ratelimit *rl, const char *key, int64_t now);

/* Record one failure for key. */
void ratelimit_fail(ratelimit *rl, const char *key, int64_t now);

/* Forget key (after a success). */
void ratelimit_reset(ratelimit *rl, const char *key);
