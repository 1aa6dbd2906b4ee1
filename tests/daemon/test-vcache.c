/* SPDX-License-Identifier: MIT */
/* The verified-token cache (daemon/tokend-vcache.c) and the verify path's
 * user cache (daemon/tokend-usercache.c): a token answers only after it
 * was added, never at or after its exp nor VCACHE_MAX_AGE after it was
 * added (a fake `now`); a device, jti or user drop removes exactly the
 * entries of that device, jti or user, a flush all; a check that raced
 * with a drop is not added; a flood of unique tokens never holds more
 * than VCACHE_SLOTS entries and allocates nothing (its memory counted
 * before and after), and the cache still works after it. The user cache
 * answers only users that exist (a flood of unknown names leaves it empty)
 * and drops everything when the passwd file it watches changes (written in
 * place or replaced by rename: inotify), and works with a stat per call where it cannot watch. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <malloc.h>

#include <cmocka.h>
#include <sodium.h>

#include "macro.h"
#include "tmpdir.h"
#include "tokend-usercache.h"
#include "tokend-vcache.h"

#define T0 ((int64_t) 1700000000)

static size_t heap_in_use(void) {
        struct mallinfo2 mi = mallinfo2();
        return mi.uordblks + mi.hblkhd;
}

/* Look tok up at now; add it (as device dev, jti, user) when missing. */
static bool seen(vcache *c, const char *tok, int64_t now, int64_t exp, const char *dev, const char *jti,
                 const char *user) {
        vcache_key k;
        if (vcache_lookup(c, tok, strlen(tok), now, &k))
                return true;
        vcache_add(c, &k, now, exp, dev, jti, user);
        return false;
}

static bool hit(vcache *c, const char *tok, int64_t now) {
        vcache_key k;
        return vcache_lookup(c, tok, strlen(tok), now, &k);
}

static void test_hit_only_after_add(void **state _unused_) {
        vcache *c = NULL;
        assert_int_equal(vcache_new(&c), 0);
        assert_false(seen(c, "tok.en.A", T0, T0 + 900, "dev_a", "jti-a", "alice"));
        assert_true(hit(c, "tok.en.A", T0));
        assert_false(hit(c, "tok.en.B", T0));    /* another token */
        assert_false(hit(c, "tok.en.A.", T0));   /* one byte more */
        assert_false(hit(c, "tok.en.", T0));     /* a prefix */
        /* an expired token is not added at all */
        assert_false(seen(c, "tok.en.C", T0, T0, "dev_c", "jti-c", "alice"));
        assert_false(hit(c, "tok.en.C", T0 - 1));
        assert_int_equal(vcache_count(c, T0), 1);
        vcache_free(c);
}

static void test_never_outlives_exp_or_max_age(void **state _unused_) {
        vcache *c = NULL;
        assert_int_equal(vcache_new(&c), 0);
        /* exp before the maximum age: answers up to exp, not at exp */
        assert_false(seen(c, "short", T0, T0 + 5, "dev_a", "jti-a", "alice"));
        assert_true(hit(c, "short", T0 + 4));
        assert_false(hit(c, "short", T0 + 5));
        assert_false(hit(c, "short", T0 + 6));
        /* a long-lived token: at most VCACHE_MAX_AGE after it was added */
        assert_false(seen(c, "long", T0, T0 + 86400, "dev_b", "jti-b", "alice"));
        assert_true(hit(c, "long", T0 + VCACHE_MAX_AGE - 1));
        assert_false(hit(c, "long", T0 + VCACHE_MAX_AGE));
        /* the clock stepped back: not trusted either */
        assert_false(hit(c, "long", T0 - 1));
        assert_int_equal(vcache_count(c, T0 + VCACHE_MAX_AGE), 0);
        vcache_free(c);
}

static void test_drops(void **state _unused_) {
        vcache *c = NULL;
        assert_int_equal(vcache_new(&c), 0);
        assert_false(seen(c, "A", T0, T0 + 900, "dev_1", "jti-1", "alice"));
        assert_false(seen(c, "B", T0, T0 + 900, "dev_2", "jti-2", "alice"));
        assert_false(seen(c, "C", T0, T0 + 900, "dev_3", "jti-3", "bob"));
        assert_false(seen(c, "D", T0, T0 + 900, "dev_3", "jti-4", "bob"));
        assert_int_equal(vcache_count(c, T0), 4);

        vcache_drop_device(c, "dev_1"); /* A only */
        assert_false(hit(c, "A", T0));
        assert_true(hit(c, "B", T0) && hit(c, "C", T0) && hit(c, "D", T0));
        vcache_drop_jti(c, "jti-3");    /* C only, not D of the same device */
        assert_false(hit(c, "C", T0));
        assert_true(hit(c, "B", T0) && hit(c, "D", T0));
        vcache_drop_device(c, "jti-2"); /* a jti is not a device id */
        vcache_drop_user(c, "dev_2");
        assert_true(hit(c, "B", T0));
        vcache_drop_user(c, "alice");   /* B */
        assert_false(hit(c, "B", T0));
        assert_true(hit(c, "D", T0));
        vcache_flush(c);
        assert_false(hit(c, "D", T0));
        assert_int_equal(vcache_count(c, T0), 0);
        /* control: it caches again after all that */
        assert_false(seen(c, "E", T0, T0 + 900, "dev_1", "jti-5", "alice"));
        assert_true(hit(c, "E", T0));
        vcache_free(c);
}

static void test_check_racing_a_drop_is_not_added(void **state _unused_) {
        vcache *c = NULL;
        vcache_key k;
        assert_int_equal(vcache_new(&c), 0);
        /* looked up (miss), then — while the store is read — something is
         * revoked: the check's result may predate it and must not stay */
        assert_false(vcache_lookup(c, "racy", 4, T0, &k));
        vcache_drop_device(c, "dev_other");
        vcache_add(c, &k, T0, T0 + 900, "dev_1", "jti-1", "alice");
        assert_false(hit(c, "racy", T0));
        assert_false(vcache_lookup(c, "racy", 4, T0, &k));
        vcache_flush(c);
        vcache_add(c, &k, T0, T0 + 900, "dev_1", "jti-1", "alice");
        assert_false(hit(c, "racy", T0));
        /* control: without a drop in between it is added */
        assert_false(vcache_lookup(c, "racy", 4, T0, &k));
        vcache_add(c, &k, T0, T0 + 900, "dev_1", "jti-1", "alice");
        assert_true(hit(c, "racy", T0));
        vcache_free(c);
}

static void test_flood_stays_bounded(void **state _unused_) {
        vcache *c = NULL;
        char tok[96], dev[32], jti[32];
        assert_int_equal(vcache_new(&c), 0);
        size_t mem = vcache_memory(c);
        /* the whole table: a fixed array of small slots, well under a MiB */
        assert_true(mem > VCACHE_SLOTS * VCACHE_KEY_LEN);
        assert_true(mem < 1024 * 1024);
        size_t before = heap_in_use();
        size_t most = 0;
        /* 25 × the table's size of unique tokens, each seen once */
        for (unsigned i = 0; i < 25 * VCACHE_SLOTS; i++) {
                snprintf(tok, sizeof tok, "eyJhbGciOiJFZERTQSJ9.flood-%u.c2lnbmF0dXJl", i);
                snprintf(dev, sizeof dev, "dev_%u", i % 1000);
                snprintf(jti, sizeof jti, "jti-%u", i);
                assert_false(seen(c, tok, T0, T0 + 900, dev, jti, "mallory"));
                if (i % 4096 == 0) {
                        size_t n = vcache_count(c, T0);
                        most = n > most ? n : most;
                }
        }
        size_t n = vcache_count(c, T0);
        most = n > most ? n : most;
        assert_true(most <= VCACHE_SLOTS);
        assert_true(most >= VCACHE_SLOTS / 2); /* and it does hold tokens */
        /* not one byte more allocated than before the flood */
        assert_int_equal(heap_in_use(), before);
        assert_int_equal(vcache_memory(c), mem);
        /* control: the newest ones answer, and a fresh token is cached */
        assert_true(hit(c, tok, T0));
        assert_false(seen(c, "fresh", T0, T0 + 900, "dev_x", "jti-x", "alice"));
        assert_true(hit(c, "fresh", T0));
        vcache_free(c);
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_true(fputs(text, f) >= 0);
        assert_int_equal(fclose(f), 0);
}

/* Wait (an event, not a time: 30 s is only the give-up bound) until the
 * watcher flushed after changes. */
static void wait_changes(user_cache *c, uint64_t changes) {
        for (unsigned i = 0; i < 30000 && user_cache_changes(c) == changes; i++)
                usleep(1000);
        assert_true(user_cache_changes(c) > changes);
}

static void test_user_cache(void **state) {
        test_tmpdir *td = *state;
        char path[128], name[64];
        user_cache *c = NULL;
        td_user u;

        test_tmpdir_path(td, "passwd", path, sizeof path);
        write_file(path, "version 1\n");
        assert_int_equal(user_cache_new(path, &c), 0);
        assert_int_equal(user_cache_by_name(c, "root", &u), 0);
        assert_string_equal(u.name, "root");
        assert_int_equal(u.uid, 0);
        assert_int_equal(user_cache_count(c), 1);
        assert_int_equal(user_cache_by_name(c, "root", &u), 0); /* from the cache */
        assert_int_equal(u.uid, 0);
        assert_int_equal(user_cache_count(c), 1);
        /* invalid and unknown names: refused as user_by_name does, never cached */
        assert_int_equal(user_cache_by_name(c, "-root", &u), -EINVAL);
        size_t before = 0;
        for (unsigned round = 0; round < 2; round++) { /* the first: NSS's own first allocations */
                before = heap_in_use();
                for (unsigned i = 0; i < 2 * USER_CACHE_SLOTS; i++) {
                        snprintf(name, sizeof name, "td-no-such-user-%u", i);
                        assert_int_equal(user_cache_by_name(c, name, &u), -ENOENT);
                }
        }
        assert_int_equal(user_cache_count(c), 1);
        assert_true(heap_in_use() <= before);
        /* the watched passwd file changes: its watcher flushes everything */
        assert_true(user_cache_watching(c));
        uint64_t changes = user_cache_changes(c);
        write_file(path, "version 2, longer\n"); /* in place */
        wait_changes(c, changes);
        assert_int_equal(user_cache_count(c), 0);
        assert_int_equal(user_cache_by_name(c, "root", &u), 0); /* control: read again */
        assert_int_equal(user_cache_count(c), 1);
        /* replaced by rename, as userdel and vipw do */
        char next[140];
        snprintf(next, sizeof next, "%s+", path);
        write_file(next, "version 3\n");
        changes = user_cache_changes(c);
        assert_int_equal(rename(next, path), 0);
        wait_changes(c, changes);
        assert_int_equal(user_cache_count(c), 0);
        assert_int_equal(user_cache_by_name(c, "root", &u), 0);
        assert_int_equal(user_cache_count(c), 1);
        user_cache_free(c);

        /* no directory to watch: a stat per call, same answers */
        assert_int_equal(user_cache_new("/nonexistent-td-dir/passwd", &c), 0);
        assert_false(user_cache_watching(c));
        assert_int_equal(user_cache_by_name(c, "root", &u), 0);
        assert_int_equal(user_cache_by_name(c, "root", &u), 0);
        assert_int_equal(user_cache_count(c), 1);
        user_cache_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hit_only_after_add),
                cmocka_unit_test(test_never_outlives_exp_or_max_age),
                cmocka_unit_test(test_drops),
                cmocka_unit_test(test_check_racing_a_drop_is_not_added),
                cmocka_unit_test(test_flood_stays_bounded),
                cmocka_unit_test_setup_teardown(test_user_cache, test_tmpdir_setup, test_tmpdir_teardown),
        };
        if (sodium_init() < 0)
                return 1;
        return cmocka_run_group_tests(tests, NULL, NULL);
}
