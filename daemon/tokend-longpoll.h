/* SPDX-License-Identifier: MIT */
/* Waiting for the revocation feed to move (GET /api/revocations?wait=):
 * a bounded set of waiters, each "wake me once the log's high mark passes
 * SEQ, or at my deadline", served by one thread. It reads the high mark
 * when told a revocation was written (longpoll_notify) and once a second
 * while anyone waits (another issuer sharing a PostgreSQL store writes
 * without telling this process). Knows nothing of HTTP: a waiter is a
 * callback. Thread-safe. */
#pragma once

#include <stdint.h>

#include "tokend-store.h"

#define LONGPOLL_WAIT_MAX 60     /* seconds one request may wait */

typedef struct longpoll longpoll;

/* Start the thread. max_waiters ≥ 1 caps the waiting requests. store is
 * borrowed and must outlive *ret. Returns 0, -ENOMEM or -EAGAIN. */
int longpoll_new(tokend_store *store, unsigned max_waiters, longpoll **ret);

/* Wake every waiter now (their callbacks run before this returns), stop
 * the thread, free. Accepts NULL. */
void longpoll_free(longpoll *lp);

/* Call wake(userdata) exactly once, from the thread, once the high mark
 * is above after or at deadline_usec (CLOCK_MONOTONIC µs, see
 * td_monotonic_usec), whichever comes first, or when lp is freed or the
 * owner released. wake runs under lp's lock: it must be short and must not
 * call into lp. Returns 0 (registered), -EBUSY (max_waiters are waiting:
 * wake is not called, answer without waiting) or -ESHUTDOWN (stopping;
 * not called either). */
int longpoll_wait(longpoll *lp, const void *owner, int64_t after, int64_t deadline_usec,
                  void (*wake)(void *userdata), void *userdata);

/* Wake every waiter of owner now, from the calling thread (a front end
 * that stops). When this returns, no wake of owner runs or will run.
 * Accepts NULL. */
void longpoll_release(longpoll *lp, const void *owner);

/* A revocation was written: read the high mark again now. Cheap, never
 * blocks on the store. Accepts NULL. */
void longpoll_notify(longpoll *lp);

/* How many are waiting now (status and metrics). */
unsigned longpoll_waiting(longpoll *lp);
