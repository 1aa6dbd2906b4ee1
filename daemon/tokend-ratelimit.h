/* SPDX-License-Identifier: MIT */
/* Fixed-memory failure counter for login and verify rate limits: a hash
 * table of a fixed number of slots keyed by a string ("user:alice",
 * "uid:1000"). When the table is full the oldest window is evicted, so the
 * limiter never grows, whatever an attacker sends. A counter may also be
 * filed under a tag (a user name), so that every counter of that user can
 * be cleared at once although keys are stored only as hashes (tokenctl
 * unlock). Thread-safe. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct ratelimit ratelimit;

#define RATELIMIT_SLOTS 4096U

/* max failures per window seconds. Returns 0 and *ret (free with
 * ratelimit_free, which accepts NULL), or -ENOMEM. */
int ratelimit_new(unsigned max, int64_t window, ratelimit **ret);
void ratelimit_free(ratelimit *rl);

/* 0 if key may try now; otherwise the number of seconds until it may
 * (for Retry-After, ≥ 1). */
int64_t ratelimit_check(ratelimit *rl, const char *key, int64_t now);

/* Rate limit (count before the act): if key has fewer than max events in
 * its current window, count one and return 0 (go ahead); otherwise count
 * nothing and return the seconds until the window ends (≥ 1). max
 * overrides ratelimit_new's (0: use that one), so a reload can change it. */
int64_t ratelimit_take(ratelimit *rl, const char *key, unsigned max, int64_t now);

/* Record one failure for key. */
void ratelimit_fail(ratelimit *rl, const char *key, int64_t now);

/* Forget key (after a success). */
void ratelimit_reset(ratelimit *rl, const char *key);

/* What a clear forgot, over the counters it cleared: the highest count
 * (failures and reservations) of a window that was still open (one failure
 * may be counted under several keys, so counts are not added up), and
 * whether any of them was at its limit (the next attempt would have been
 * refused). The clear calls merge into it. */
typedef struct ratelimit_cleared {
        unsigned failures;
        bool limited;
} ratelimit_cleared;

/* Forget key as of now, merging what it held into *acc. */
void ratelimit_clear(ratelimit *rl, const char *key, int64_t now, ratelimit_cleared *acc);

/* Forget every counter filed under tag (ratelimit_reserve's), as of now,
 * merging what they held into *acc. Looks at every slot: for rare admin use. */
void ratelimit_clear_tag(ratelimit *rl, const char *tag, int64_t now, ratelimit_cleared *acc);

/* Check and count in one step, for attempts whose outcome is known only
 * later (a password check): 0 and one attempt reserved for key (filed
 * under tag when a new counter is started; tag may be NULL), with
 * *ret_ticket naming the window it was counted in; or, when max attempts
 * are already counted or reserved in this window, the seconds until key may
 * try (≥ 1) and nothing reserved. So N concurrent attempts get at most max
 * tries per window. A reservation that is not released stays counted as a
 * failure. */
int64_t ratelimit_reserve(ratelimit *rl, const char *key, const char *tag, int64_t now, int64_t *ret_ticket);

/* Give a reservation back (the attempt turned out not to be the caller's
 * failure), if its window (ticket) is still the current one. */
void ratelimit_release(ratelimit *rl, const char *key, int64_t ticket);
