/* SPDX-License-Identifier: MIT */
/* The fixed-memory rate limiter (daemon/tokend-ratelimit.c): check/fail/
 * reset, and the reservations the login limiter takes before PAM runs
 * (reserve, release with a stale ticket, concurrent reservers held to max),
 * windows that end to the second (a fake `now`), max overridden per call,
 * eviction once the table is full (the key that makes it slots + 1 is
 * admitted, an old one goes), clearing by key and by tag (tokenctl unlock:
 * every caller's counter of one user, nobody else's), and a flood of keys that allocates nothing:
 * the header's "never grows, whatever an attacker sends". */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <malloc.h>

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
                assert_int_equal(ratelimit_reserve(rl, "k", NULL, T0 + i, &ticket[i]), 0);
        assert_int_equal(ticket[0], T0);
        assert_int_equal(ticket[2], T0); /* the window they were counted in */
        /* reservations count like failures: the 4th is refused, and so is a check */
        assert_int_equal(ratelimit_reserve(rl, "k", NULL, T0 + 5, &ticket[3]), 55);
        assert_int_equal(ratelimit_check(rl, "k", T0 + 5), 55);
        /* one given back (a server-side failure): one more attempt */
        ratelimit_release(rl, "k", ticket[1]);
        assert_int_equal(ratelimit_reserve(rl, "k", NULL, T0 + 6, &ticket[3]), 0);
        assert_int_equal(ratelimit_reserve(rl, "k", NULL, T0 + 6, &t), 54);
        /* a new window: a ticket of the old one gives nothing back */
        assert_int_equal(ratelimit_reserve(rl, "k", NULL, T0 + 60, &t), 0);
        assert_int_equal(t, T0 + 60);
        ratelimit_release(rl, "k", ticket[0]);
        assert_int_equal(ratelimit_reserve(rl, "k", NULL, T0 + 61, &t), 0);
        assert_int_equal(ratelimit_reserve(rl, "k", NULL, T0 + 61, &t), 0);
        assert_int_equal(ratelimit_reserve(rl, "k", NULL, T0 + 61, &t), 59);
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
                r->granted += ratelimit_reserve(r->rl, "user:victim", NULL, T0, &t) == 0;
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
                assert_int_equal(ratelimit_reserve(rl, "rhost:203.0.113.7", NULL, T0, &t), 0);
        for (unsigned i = 0; i < 20 * RATELIMIT_SLOTS; i++) {
                snprintf(key, sizeof key, "rhost:10.%u.%u.%u", i >> 16 & 0xff, i >> 8 & 0xff, i & 0xff);
                ratelimit_fail(rl, key, T0 + 1);
        }
        /* nothing grew (the table is one fixed allocation; the oldest windows
         * were evicted to make room) and a fresh key still gets exactly its
         * own budget */
        assert_int_equal(ratelimit_reserve(rl, "rhost:198.51.100.9", NULL, T0 + 1, &t), 0);
        assert_int_equal(ratelimit_reserve(rl, "rhost:198.51.100.9", NULL, T0 + 1, &t), 0);
        assert_int_equal(ratelimit_reserve(rl, "rhost:198.51.100.9", NULL, T0 + 1, &t), 60);
        ratelimit_free(rl);
}

static void test_window_expiry(void **state _unused_) {
        ratelimit *rl = NULL;
        assert_int_equal(ratelimit_new(2, 60, &rl), 0);
        assert_int_equal(ratelimit_take(rl, "uid:1000", 0, T0), 0);
        assert_int_equal(ratelimit_take(rl, "uid:1000", 0, T0 + 30), 0);
        /* the window started at the first attempt, not the last */
        assert_int_equal(ratelimit_take(rl, "uid:1000", 0, T0 + 30), 30);
        assert_int_equal(ratelimit_check(rl, "uid:1000", T0 + 59), 1);
        assert_int_equal(ratelimit_take(rl, "uid:1000", 0, T0 + 59), 1);
        /* refused attempts counted nothing: at T0 + 60 a fresh budget of 2 */
        assert_int_equal(ratelimit_check(rl, "uid:1000", T0 + 60), 0);
        assert_int_equal(ratelimit_take(rl, "uid:1000", 0, T0 + 60), 0);
        assert_int_equal(ratelimit_take(rl, "uid:1000", 0, T0 + 61), 0);
        assert_int_equal(ratelimit_take(rl, "uid:1000", 0, T0 + 61), 59);
        /* a clock that went back: still "wait", never 0 or negative */
        assert_true(ratelimit_check(rl, "uid:1000", T0 - 1000) >= 1);
        ratelimit_free(rl);
}

static void test_take_max_override(void **state _unused_) {
        ratelimit *rl = NULL;
        assert_int_equal(ratelimit_new(1, 60, &rl), 0);
        /* a reload raised the limit to 3: the call's max wins */
        for (int i = 0; i < 3; i++)
                assert_int_equal(ratelimit_take(rl, "user:carol", 3, T0), 0);
        assert_int_equal(ratelimit_take(rl, "user:carol", 3, T0), 60);
        /* and lowered it again: already over, refused */
        assert_int_equal(ratelimit_take(rl, "user:carol", 2, T0 + 1), 59);
        /* 0: the limiter's own (1) */
        assert_int_equal(ratelimit_take(rl, "user:dave", 0, T0), 0);
        assert_int_equal(ratelimit_take(rl, "user:dave", 0, T0), 60);
        ratelimit_free(rl);
}

static void test_new_clamps(void **state _unused_) {
        ratelimit *rl = NULL;
        /* max 0 and window 0 would disable the limiter: 1 and 1 s instead */
        assert_int_equal(ratelimit_new(0, 0, &rl), 0);
        assert_int_equal(ratelimit_take(rl, "k", 0, T0), 0);
        assert_int_equal(ratelimit_take(rl, "k", 0, T0), 1);
        assert_int_equal(ratelimit_take(rl, "k", 0, T0 + 1), 0);
        ratelimit_free(rl);
        assert_int_equal(ratelimit_new(3, -5, &rl), 0);
        ratelimit_fail(rl, "k", T0);
        ratelimit_fail(rl, "k", T0);
        ratelimit_fail(rl, "k", T0);
        assert_int_equal(ratelimit_check(rl, "k", T0), 1);
        assert_int_equal(ratelimit_check(rl, "k", T0 + 1), 0);
        ratelimit_free(rl);
}

static void key_of(char *buf, size_t size, unsigned i) {
        snprintf(buf, size, "user:u%u", i);
}

static void test_eviction_at_slots_plus_one(void **state _unused_) {
        ratelimit *rl = NULL;
        char key[32];
        assert_int_equal(ratelimit_new(1, 1000000, &rl), 0);
        /* RATELIMIT_SLOTS + 1 keys, each throttled (its one attempt used) in
         * a window that is still open at the end, one second apart */
        for (unsigned i = 0; i <= RATELIMIT_SLOTS; i++) {
                key_of(key, sizeof key, i);
                /* a new key is always admitted: a full table evicts, it never refuses */
                assert_int_equal(ratelimit_take(rl, key, 0, T0 + i), 0);
                assert_true(ratelimit_take(rl, key, 0, T0 + i) > 0);
        }
        /* count those still remembered (throttled): at most the table's
         * size, so at least one window was evicted; the newest is there */
        const int64_t end = T0 + RATELIMIT_SLOTS;
        unsigned remembered = 0;
        for (unsigned i = 0; i <= RATELIMIT_SLOTS; i++) {
                key_of(key, sizeof key, i);
                remembered += ratelimit_check(rl, key, end) > 0;
        }
        assert_true(remembered <= RATELIMIT_SLOTS);
        assert_true(remembered >= RATELIMIT_SLOTS / 2); /* the table is used, not a few slots of it */
        key_of(key, sizeof key, RATELIMIT_SLOTS);
        assert_true(ratelimit_check(rl, key, end) > 0);
        /* an evicted key starts afresh (one attempt), the control a
         * remembered one stays refused */
        for (unsigned i = 0; i <= RATELIMIT_SLOTS; i++) {
                key_of(key, sizeof key, i);
                if (ratelimit_check(rl, key, end) == 0) {
                        assert_int_equal(ratelimit_take(rl, key, 0, end), 0);
                        assert_true(ratelimit_take(rl, key, 0, end) > 0);
                        break;
                }
        }
        ratelimit_free(rl);
}

static void test_clear_by_key_and_tag(void **state _unused_) {
        ratelimit *rl = NULL;
        ratelimit_cleared cl = { 0 };
        int64_t t;
        assert_int_equal(ratelimit_new(2, 60, &rl), 0);
        /* alice's name under three callers' pair keys, one of them over */
        assert_int_equal(ratelimit_reserve(rl, "uid:0 user:alice", "alice", T0, &t), 0);
        assert_int_equal(ratelimit_reserve(rl, "uid:0 user:alice", "alice", T0, &t), 0);
        assert_int_equal(ratelimit_reserve(rl, "uid:0 user:alice", "alice", T0, &t), 60);
        assert_int_equal(ratelimit_reserve(rl, "uid:65534 user:alice", "alice", T0, &t), 0);
        /* the control: bob's, and an untagged key */
        assert_int_equal(ratelimit_reserve(rl, "uid:0 user:bob", "bob", T0, &t), 0);
        assert_int_equal(ratelimit_reserve(rl, "uid:0 user:bob", "bob", T0, &t), 0);
        ratelimit_fail(rl, "uid:1000", T0);
        ratelimit_fail(rl, "uid:1000", T0);

        ratelimit_clear_tag(rl, "alice", T0 + 1, &cl);
        assert_int_equal(cl.failures, 2); /* the fullest counter's, not a sum */
        assert_true(cl.limited);
        assert_int_equal(ratelimit_check(rl, "uid:0 user:alice", T0 + 1), 0);
        assert_int_equal(ratelimit_reserve(rl, "uid:0 user:alice", "alice", T0 + 1, &t), 0);
        assert_int_equal(ratelimit_check(rl, "uid:0 user:bob", T0 + 1), 59); /* untouched */
        assert_int_equal(ratelimit_check(rl, "uid:1000", T0 + 1), 59);

        /* nothing left under the tag (but the one just reserved); an unknown tag, NULL: nothing */
        cl = (ratelimit_cleared){ 0 };
        ratelimit_clear_tag(rl, "alice", T0 + 1, &cl);
        assert_int_equal(cl.failures, 1);
        assert_false(cl.limited);
        cl = (ratelimit_cleared){ 0 };
        ratelimit_clear_tag(rl, "carol", T0 + 1, &cl);
        ratelimit_clear_tag(rl, NULL, T0 + 1, &cl);
        assert_int_equal(cl.failures, 0);
        assert_int_equal(ratelimit_check(rl, "uid:1000", T0 + 1), 59);

        /* by key: counted and limited; a window that ended held nothing */
        ratelimit_clear(rl, "uid:1000", T0 + 2, &cl);
        assert_int_equal(cl.failures, 2);
        assert_true(cl.limited);
        assert_int_equal(ratelimit_check(rl, "uid:1000", T0 + 2), 0);
        cl = (ratelimit_cleared){ 0 };
        ratelimit_clear_tag(rl, "bob", T0 + 60, &cl);
        ratelimit_clear(rl, "uid:1000", T0 + 60, &cl);
        assert_int_equal(cl.failures, 0);
        assert_false(cl.limited);
        /* a stale ticket given back after the clear changes nothing */
        ratelimit_release(rl, "uid:0 user:alice", T0);
        ratelimit_free(rl);
}

/* Bytes malloc has handed out and not had back. */
static size_t heap_in_use(void) {
        struct mallinfo2 mi = mallinfo2();
        return mi.uordblks + mi.hblkhd;
}

static void test_never_grows(void **state _unused_) {
        ratelimit *rl = NULL;
        char key[64];
        int64_t t;
        assert_int_equal(ratelimit_new(3, 60, &rl), 0);
        size_t before = heap_in_use();
        /* 50 x the table's size of distinct keys, long ones too, over many
         * windows, through every entry point */
        for (unsigned i = 0; i < 50 * RATELIMIT_SLOTS; i++) {
                int64_t now = T0 + i / 1000;
                snprintf(key, sizeof key, "rhost:2001:db8:%x:%x::%x%s", i >> 16, i >> 8 & 0xff, i & 0xff,
                         i % 7 ? "" : "-padding-padding-padding");
                ratelimit_fail(rl, key, now);
                (void) ratelimit_take(rl, key, 0, now);
                if (ratelimit_reserve(rl, key, NULL, now, &t) == 0)
                        ratelimit_release(rl, key, t);
                (void) ratelimit_check(rl, key, now);
                if (i % 3 == 0)
                        ratelimit_reset(rl, key);
        }
        /* not one byte more allocated than before the flood */
        assert_int_equal(heap_in_use(), before);
        /* control: the limiter still limits a fresh key to its budget */
        for (int i = 0; i < 3; i++)
                ratelimit_fail(rl, "user:mallory", T0 + 1000);
        assert_int_equal(ratelimit_check(rl, "user:mallory", T0 + 1000), 60);
        assert_int_equal(ratelimit_check(rl, "user:alice", T0 + 1000), 0);
        ratelimit_free(rl);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_check_fail_reset),
                cmocka_unit_test(test_reserve_release),
                cmocka_unit_test(test_concurrent_reservers),
                cmocka_unit_test(test_many_keys_stay_bounded),
                cmocka_unit_test(test_window_expiry),
                cmocka_unit_test(test_take_max_override),
                cmocka_unit_test(test_new_clamps),
                cmocka_unit_test(test_eviction_at_slots_plus_one),
                cmocka_unit_test(test_clear_by_key_and_tag),
                cmocka_unit_test(test_never_grows),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
