/* SPDX-License-Identifier: MIT */
/* The fixed-memory rate limiter (daemon/tokend-ratelimit.c): check/fail/
 * reset, and the reservations the login limiter takes before PAM runs
 * (reserve, release with a stale ticket, concurrent reservers held to max),
 * windows that end, and a flood of keys that leaves every slot count bounded. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "macro.h"
#include "tokend-ratelimit.h"

#define T0 ((int64_t) 1700000000)

static void test_check_fail_reset(void **state _unused_) {
        ratelimit *rl = NULL;
        assert_int_equal(ratelimit_new(3, 60, &rl), 0);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(ratelimit_check(rl, "user:alice", T0), 0);
                ratelimit_fail(rl, "user:alice", T0);
        }
        assert_int_equal(ratelimit_check(rl, "user:alice", T0 + 10), 50);
        assert_int_equal(ratelimit_check(rl, "user:bob", T0 + 10), 0); /* another key: free */
        assert_int_equal(ratelimit_check(rl, "user:alice", T0 + 60), 0); /* window over */
        ratelimit_fail(rl, "user:bob", T0);
        ratelimit_reset(rl, "user:bob");
        assert_int_equal(ratelimit_check(rl, "user:bob", T0), 0);
        ratelimit_free(rl);
}

static void test_reserve_release(void **state _unused_) {
        ratelimit *rl = NULL;
        int64_t ticket[4], t;
        assert_int_equal(ratelimit_new(3, 60, &rl), 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(ratelimit_reserve(rl, "k", T0 + i, &ticket[i]), 0);
        assert_int_equal(ticket[0], T0);
        assert_int_equal(ticket[2], T0); /* the window they were counted in */
        /* reservations count like failures: the 4th is refused, and so is a check */
        assert_int_equal(ratelimit_reserve(rl, "k", T0 + 5, &ticket[3]), 55);
        assert_int_equal(ratelimit_check(rl, "k", T0 + 5), 55);
        /* one given back (a server-side failure): one more attempt */
        ratelimit_release(rl, "k", ticket[1]);
        assert_int_equal(ratelimit_reserve(rl, "k", T0 + 6, &ticket[3]), 0);
        assert_int_equal(ratelimit_reserve(rl, "k", T0 + 6, &t), 54);
        /* a new window: a ticket of the old one gives nothing back */
        assert_int_equal(ratelimit_reserve(rl, "k", T0 + 60, &t), 0);
        assert_int_equal(t, T0 + 60);
        ratelimit_release(rl, "k", ticket[0]);
        assert_int_equal(ratelimit_reserve(rl, "k", T0 + 61, &t), 0);
        assert_int_equal(ratelimit_reserve(rl, "k", T0 + 61, &t), 0);
        assert_int_equal(ratelimit_reserve(rl, "k", T0 + 61, &t), 59);
        /* releasing an unknown key is harmless */
        ratelimit_release(rl, "nobody", T0);
        ratelimit_free(rl);
}

typedef struct racer {
        ratelimit *rl;
        pthread_barrier_t *barrier;
        int granted;
} racer;

static void *race(void *p) {
        racer *r = p;
        int64_t t;
        pthread_barrier_wait(r->barrier);
        for (int i = 0; i < 100; i++)
                r->granted += ratelimit_reserve(r->rl, "user:victim", T0, &t) == 0;
        return NULL;
}

static void test_concurrent_reservers(void **state _unused_) {
        ratelimit *rl = NULL;
        pthread_barrier_t barrier;
        pthread_t th[8];
        racer r[8];
        assert_int_equal(ratelimit_new(5, 900, &rl), 0);
        pthread_barrier_init(&barrier, NULL, 8);
        for (int i = 0; i < 8; i++) {
                r[i] = (racer){ rl, &barrier, 0 };
                assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
        }
        int total = 0;
        for (int i = 0; i < 8; i++) {
                pthread_join(th[i], NULL);
                total += r[i].granted;
        }
        pthread_barrier_destroy(&barrier);
        assert_int_equal(total, 5); /* 800 attempts from 8 threads, exactly max granted */
        ratelimit_free(rl);
}

static void test_many_keys_stay_bounded(void **state _unused_) {
        ratelimit *rl = NULL;
        char key[32];
        int64_t t;
        assert_int_equal(ratelimit_new(2, 60, &rl), 0);
        /* a throttled key, then 20 x the table's size of other keys */
        for (int i = 0; i < 2; i++)
                assert_int_equal(ratelimit_reserve(rl, "rhost:203.0.113.7", T0, &t), 0);
        for (unsigned i = 0; i < 20 * RATELIMIT_SLOTS; i++) {
                snprintf(key, sizeof key, "rhost:10.%u.%u.%u", i >> 16 & 0xff, i >> 8 & 0xff, i & 0xff);
                ratelimit_fail(rl, key, T0 + 1);
        }
        /* nothing grew (the table is one fixed allocation; the oldest windows
         * were evicted to make room) and a fresh key still gets exactly its
         * own budget */
        assert_int_equal(ratelimit_reserve(rl, "rhost:198.51.100.9", T0 + 1, &t), 0);
        assert_int_equal(ratelimit_reserve(rl, "rhost:198.51.100.9", T0 + 1, &t), 0);
        assert_int_equal(ratelimit_reserve(rl, "rhost:198.51.100.9", T0 + 1, &t), 60);
        ratelimit_free(rl);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_check_fail_reset),
                cmocka_unit_test(test_reserve_release),
                cmocka_unit_test(test_concurrent_reservers),
                cmocka_unit_test(test_many_keys_stay_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
