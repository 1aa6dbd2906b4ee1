/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "macro.h"
#include "tokend-longpoll.h"
#include "tokend-service.h"

#define POLL_USEC ((int64_t) 1000000) /* re-read the high mark this often while someone waits */

typedef struct waiter {
        const void *owner;
        int64_t after, deadline;
        void (*wake)(void *);
        void *userdata;
} waiter;

struct longpoll {
        tokend_store *store;
        pthread_mutex_t lock;
        pthread_cond_t cond; /* on CLOCK_MONOTONIC */
        waiter *w;           /* max slots, n used (unordered) */
        unsigned n, max;
        bool notified, stop, running;
        pthread_t thread;
};

/* The highest seq handed out, or -1 when the store cannot say (the waiters
 * then wait for their deadline, or the next try). */
static int64_t high_mark(tokend_store *s) {
        store_revocation *v = NULL;
        size_t n = 0;
        int64_t seq = -1;
        /* Nothing is after INT64_MAX - 1: the page is empty and seq the high mark. */
        if (store_revocations_list(s, INT64_MAX - 1, 0, 1, &v, &n, &seq) < 0)
                return -1;
        free(v);
        return seq;
}

/* Wake every waiter that is due (all of them when stopping). The
 * callbacks run under the lock, so that once longpoll_release() returns
 * none of its owner's is running or still to come; a callback must not
 * call back into lp. */
static void wake_due(longpoll *lp, int64_t high, int64_t now) {
        pthread_mutex_lock(&lp->lock);
        for (unsigned i = 0; i < lp->n;) {
                waiter x = lp->w[i];
                if (lp->stop || (high >= 0 && high > x.after) || x.deadline <= now) {
                        lp->w[i] = lp->w[--lp->n];
                        x.wake(x.userdata);
                } else
                        i++;
        }
        pthread_mutex_unlock(&lp->lock);
}

static void *longpoll_thread(void *data) {
        longpoll *lp = data;
        int64_t last_read = 0;

        for (;;) {
                pthread_mutex_lock(&lp->lock);
                for (;;) {
                        int64_t now = td_monotonic_usec(), next = last_read + POLL_USEC;
                        if (lp->stop || lp->notified || (lp->n > 0 && now - last_read >= POLL_USEC))
                                break;
                        for (unsigned i = 0; i < lp->n; i++)
                                if (lp->w[i].deadline < next)
                                        next = lp->w[i].deadline;
                        if (lp->n > 0 && next <= now)
                                break;
                        if (lp->n == 0)
                                pthread_cond_wait(&lp->cond, &lp->lock);
                        else {
                                struct timespec ts = { .tv_sec = next / 1000000, .tv_nsec = (next % 1000000) * 1000 };
                                (void) pthread_cond_timedwait(&lp->cond, &lp->lock, &ts);
                        }
                }
                bool stop = lp->stop, any = lp->n > 0;
                lp->notified = false;
                pthread_mutex_unlock(&lp->lock);

                int64_t high = -1;
                if (any && !stop) {
                        high = high_mark(lp->store);
                        last_read = td_monotonic_usec();
                }
                wake_due(lp, high, td_monotonic_usec());
                if (stop)
                        return NULL;
        }
}

int longpoll_new(tokend_store *store, unsigned max_waiters, longpoll **ret) {
        if (!store || max_waiters == 0 || !ret)
                return -EINVAL;
        longpoll *lp = calloc(1, sizeof *lp);
        if (!lp)
                return -ENOMEM;
        lp->w = calloc(max_waiters, sizeof *lp->w);
        if (!lp->w) {
                free(lp);
                return -ENOMEM;
        }
        lp->store = store;
        lp->max = max_waiters;
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&lp->cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&lp->lock, NULL);
        if (pthread_create(&lp->thread, NULL, longpoll_thread, lp) != 0) {
                longpoll_free(lp);
                return -EAGAIN;
        }
        lp->running = true;
        *ret = lp;
        return 0;
}

void longpoll_free(longpoll *lp) {
        if (!lp)
                return;
        pthread_mutex_lock(&lp->lock);
        lp->stop = true;
        pthread_cond_signal(&lp->cond);
        pthread_mutex_unlock(&lp->lock);
        if (lp->running)
                pthread_join(lp->thread, NULL);
        pthread_cond_destroy(&lp->cond);
        pthread_mutex_destroy(&lp->lock);
        free(lp->w);
        free(lp);
}

int longpoll_wait(longpoll *lp, const void *owner, int64_t after, int64_t deadline_usec,
                  void (*wake)(void *userdata), void *userdata) {
        int r = 0;
        pthread_mutex_lock(&lp->lock);
        if (lp->stop)
                r = -ESHUTDOWN;
        else if (lp->n >= lp->max)
                r = -EBUSY;
        else {
                lp->w[lp->n++] = (waiter){ owner, after, deadline_usec, wake, userdata };
                /* Read the high mark once more: a revocation may have
                 * landed between the caller's look and this registration. */
                lp->notified = true;
                pthread_cond_signal(&lp->cond);
        }
        pthread_mutex_unlock(&lp->lock);
        return r;
}

void longpoll_release(longpoll *lp, const void *owner) {
        if (!lp)
                return;
        pthread_mutex_lock(&lp->lock);
        for (unsigned i = 0; i < lp->n;) {
                waiter x = lp->w[i];
                if (x.owner == owner) {
                        lp->w[i] = lp->w[--lp->n];
                        x.wake(x.userdata);
                } else
                        i++;
        }
        pthread_mutex_unlock(&lp->lock);
}

void longpoll_notify(longpoll *lp) {
        if (!lp)
                return;
        pthread_mutex_lock(&lp->lock);
        lp->notified = true;
        pthread_cond_signal(&lp->cond);
        pthread_mutex_unlock(&lp->lock);
}

unsigned longpoll_waiting(longpoll *lp) {
        if (!lp)
                return 0;
        pthread_mutex_lock(&lp->lock);
        unsigned n = lp->n;
        pthread_mutex_unlock(&lp->lock);
        return n;
}
