/* SPDX-License-Identifier: MIT */
/* The store on a real SQLite file in a temporary directory, or, when
 * TOKEND_TEST_DATABASE names one (tests/with-postgresql), on a real
 * PostgreSQL database emptied before each test: schema and migrations,
 * refresh rotation with reuse detection (the security-critical path),
 * concurrent callers, revocations, replay cache, pruning, and a bounded
 * -EBUSY when another connection holds the write lock. The tests that look
 * inside the SQLite file skip on PostgreSQL (test-store-pg covers those
 * matters there). */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "tmpdir.h"
#include "tokend-store.h"
#include "tokend-store-sql.h" /* migrations[], to build a database of an older schema */

#define SCHEMA_VERSION ((int) ELEMENTSOF(migrations))
#define T0 ((int64_t) 1700000000)
#define DAY ((int64_t) 86400)

typedef struct fixture {
        test_tmpdir tmp;
        char db[512];
        tokend_store *s;
} fixture;

/* The PostgreSQL database under test, or NULL for SQLite. */
static const char *pg_database(void) {
        const char *uri = getenv("TOKEND_TEST_DATABASE");
        return uri && *uri ? uri : NULL;
}

/* This test reads the SQLite file itself. */
#define SQLITE_ONLY()                     \
        do {                              \
                if (pg_database())        \
                        skip();           \
        } while (0)

/* An empty database: every table of the previous test dropped. */
static void pg_empty(const char *uri) {
        PGconn *pq = PQconnectdb(uri);
        assert_int_equal(PQstatus(pq), CONNECTION_OK);
        PGresult *res = PQexec(pq, "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
                fail_msg("emptying the test database: %s", PQerrorMessage(pq));
        PQclear(res);
        PQfinish(pq);
}

static int setup(void **state) {
        fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        test_tmpdir_make(&f->tmp, "test-store");
        if (pg_database()) {
                pg_empty(pg_database());
                snprintf(f->db, sizeof f->db, "%s", pg_database());
        } else
                test_tmpdir_path(&f->tmp, "tokend.db", f->db, sizeof f->db);
        assert_int_equal(store_open(f->db, &f->s), 0);
        assert_string_equal(store_backend_name(f->s), pg_database() ? "postgresql" : "sqlite");
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;
        if (f->s)
                assert_int_equal(store_integrity_check(f->s), 0);
        store_close(f->s);
        test_tmpdir_remove(&f->tmp);
        free(f);
        return 0;
}

/* A distinct fake token hash per (device number, generation). */
static void hash_of(uint8_t h[STORE_HASH_LEN], unsigned dev, unsigned gen) {
        memset(h, 0, STORE_HASH_LEN);
        h[0] = (uint8_t) dev;
        h[1] = (uint8_t) (dev >> 8);
        h[2] = (uint8_t) gen;
        h[3] = (uint8_t) (gen >> 8);
        h[31] = 0xa5;
}

static void device_init(store_device *d, unsigned dev, const char *user, int64_t now) {
        *d = (store_device){ .uid = 1000 + dev, .created = now, .last_used = now };
        snprintf(d->id, sizeof d->id, "dev_%04u", dev);
        snprintf(d->user, sizeof d->user, "%s", user);
        snprintf(d->name, sizeof d->name, "laptop %u", dev);
}

/* Enrol device number dev for user at now, first token (dev, 1). */
static void enrol(tokend_store *s, unsigned dev, const char *user, int64_t now, int64_t expires) {
        store_device d;
        uint8_t h[STORE_HASH_LEN];
        device_init(&d, dev, user, now);
        hash_of(h, dev, 1);
        store_audit a = { .time = now, .event = "login", .user = user, .device_id = d.id,
                          .caller_uid = 0, .caller_pid = 1, .detail = "test" };
        assert_int_equal(store_device_create(s, &d, h, expires, 100, &a), 0);
}

/* Rotate (dev, from) → (dev, to), the new token expiring at new_expires. */
static int rotate_until(tokend_store *s, unsigned dev, unsigned from, unsigned to, int64_t now, int64_t grace,
                        int64_t new_expires, store_rotate_result *ret) {
        uint8_t old[STORE_HASH_LEN], new[STORE_HASH_LEN];
        char id[STORE_DEVICE_ID_MAX + 1];
        snprintf(id, sizeof id, "dev_%04u", dev);
        hash_of(old, dev, from);
        hash_of(new, dev, to);
        store_audit a = { .time = now, .event = "refresh", .device_id = id, .caller_uid = 4242, .caller_pid = 99 };
        return store_refresh_rotate(s, id, old, new, now, new_expires, grace, &a, ret);
}

/* The same with a 7-day sliding lifetime. */
static int rotate(tokend_store *s, unsigned dev, unsigned from, unsigned to, int64_t now, int64_t grace,
                  store_rotate_result *ret) {
        return rotate_until(s, dev, from, to, now, grace, now + 7 * DAY, ret);
}

static size_t count_events(tokend_store *s, const char *event) {
        size_t k = 0;
        bool more = true;
        for (int64_t before = 0; more;) {
                _cleanup_(freep) store_audit_entry *v = NULL;
                size_t n = 0;
                assert_int_equal(store_audit_list(s, NULL, before, STORE_PAGE_MAX, &v, &n, &more), 0);
                for (size_t i = 0; i < n; i++)
                        k += streq(v[i].event, event);
                if (n > 0)
                        before = v[n - 1].id;
        }
        return k;
}

/* ------------------------------------------------------------ schema */

static void test_open_and_migrate(void **state) {
        fixture *f = *state;
        struct stat st;
        store_device d;

        if (pg_database()) {
                assert_int_equal(store_integrity_check(f->s), 0);
                goto reopen;
        }
        assert_int_equal(store_schema_version(f->s), SCHEMA_VERSION);
        assert_int_equal(stat(f->db, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(store_integrity_check(f->s), 0);

        /* The file says the same, and is in WAL mode. */
        sqlite3 *db = NULL;
        sqlite3_stmt *q = NULL;
        assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(q, 0), SCHEMA_VERSION);
        sqlite3_finalize(q);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_string_equal((const char *) sqlite3_column_text(q, 0), "wal");
        sqlite3_finalize(q);
        /* Migration 2: the indexes the device cap and the listings use. */
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_master "
                                            "WHERE type = 'index' AND tbl_name = 'devices' AND sql IS NOT NULL "
                                            "ORDER BY name)", -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_string_equal((const char *) sqlite3_column_text(q, 0), "devices_created devices_user_created");
        sqlite3_finalize(q);
        sqlite3_close(db);

reopen:
        /* Re-open keeps data. */
        enrol(f->s, 1, "alice", T0, T0 + 7 * DAY);
        int version = store_schema_version(f->s);
        store_close(f->s);
        f->s = NULL;
        assert_int_equal(store_open(f->db, &f->s), 0);
        assert_int_equal(store_schema_version(f->s), version);
        assert_int_equal(store_device_get(f->s, "dev_0001", &d), 0);
        assert_string_equal(d.user, "alice");
        assert_int_equal(d.uid, 1001);
        assert_string_equal(d.name, "laptop 1");
        assert_false(d.revoked);
}

/* A database of schema 2 (before password_auth) is migrated in place: its
 * devices keep working and count as never password-authenticated. */
static void test_migrate_from_2(void **state) {
        SQLITE_ONLY();
        fixture *f = *state;
        char path[256];
        sqlite3 *db = NULL;
        tokend_store *s = NULL;
        store_device d;
        store_rotate_result rr;
        uint8_t old[STORE_HASH_LEN], new[STORE_HASH_LEN];

        snprintf(path, sizeof path, "%s/v2.db", f->tmp.dir);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        for (size_t i = 0; i < 2; i++)
                assert_int_equal(sqlite3_exec(db, migrations[i], NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 2;"
                                          "INSERT INTO devices (id, user, uid, name, created, last_used) "
                                          "VALUES ('dev_0001', 'alice', 1001, 'laptop 1', 1700000000, 1700000000);"
                                          "INSERT INTO refresh_tokens (hash, device_id, generation, created, expires) "
                                          "VALUES (X'01000100000000000000000000000000000000000000000000000000000000a5',"
                                          " 'dev_0001', 1, 1700000000, 0);",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);

        assert_int_equal(store_open(path, &s), 0);
        assert_int_equal(store_schema_version(s), SCHEMA_VERSION);
        assert_int_equal(store_device_get(s, "dev_0001", &d), 0);
        assert_string_equal(d.user, "alice");
        assert_int_equal(d.password_auth, 0);
        hash_of(old, 1, 1);
        hash_of(new, 1, 2);
        assert_int_equal(store_refresh_rotate(s, "dev_0001", old, new, T0 + 1, 0, 0, NULL, &rr), 0);
        assert_int_equal(store_integrity_check(s), 0);
        store_close(s);
}

static void test_open_errors(void **state) {
        SQLITE_ONLY();
        fixture *f = *state;
        char path[256];
        tokend_store *s = (tokend_store *) 0x1;

        /* The parent directory is not created. */
        snprintf(path, sizeof path, "%s/missing/tokend.db", f->tmp.dir);
        assert_int_equal(store_open(path, &s), -ENOENT);
        assert_ptr_equal(s, (tokend_store *) 0x1);

        /* Written by a newer tokend: refuse rather than guess. */
        snprintf(path, sizeof path, "%s/newer.db", f->tmp.dir);
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(store_open(path, &s), -EPROTONOSUPPORT);

        /* Not a database. */
        snprintf(path, sizeof path, "%s/garbage.db", f->tmp.dir);
        FILE *o = fopen(path, "we");
        assert_non_null(o);
        for (int i = 0; i < 512; i++)
                fputs("garbage!", o);
        fclose(o);
        assert_int_equal(store_open(path, &s), -EIO);
        assert_ptr_equal(s, (tokend_store *) 0x1);

        /* Control: an existing empty file is migrated. */
        snprintf(path, sizeof path, "%s/empty.db", f->tmp.dir);
        o = fopen(path, "we");
        assert_non_null(o);
        fclose(o);
        assert_int_equal(store_open(path, &s), 0);
        assert_int_equal(store_schema_version(s), SCHEMA_VERSION);
        store_close(s);
}

/* ------------------------------------------------------------ devices */

static void test_devices(void **state) {
        fixture *f = *state;
        store_device d, got;
        uint8_t h[STORE_HASH_LEN];

        device_init(&d, 1, "alice", T0);
        d.has_public_key = true;
        memset(d.public_key, 0x42, sizeof d.public_key);
        hash_of(h, 1, 1);
        assert_int_equal(store_device_create(f->s, &d, h, 0, 100, NULL), 0);
        enrol(f->s, 2, "bob", T0 + 1, 0);
        enrol(f->s, 3, "alice", T0 + 2, 0);

        assert_int_equal(store_device_get(f->s, "dev_0001", &got), 0);
        assert_true(got.has_public_key);
        assert_memory_equal(got.public_key, d.public_key, STORE_DEVICE_KEY_LEN);
        assert_int_equal(store_device_get(f->s, "dev_0002", &got), 0);
        assert_false(got.has_public_key);
        assert_int_equal(got.password_auth, 0); /* never */
        device_init(&d, 4, "alice", T0 + 3);
        d.password_auth = T0 + 3;
        hash_of(h, 4, 1);
        assert_int_equal(store_device_create(f->s, &d, h, 0, 100, NULL), 0);
        assert_int_equal(store_device_get(f->s, "dev_0004", &got), 0);
        assert_int_equal(got.password_auth, T0 + 3);
        device_init(&d, 1, "alice", T0);
        d.has_public_key = true;
        memset(d.public_key, 0x42, sizeof d.public_key);
        hash_of(h, 1, 1);

        /* Duplicates. */
        assert_int_equal(store_device_create(f->s, &d, h, 0, 100, NULL), -EEXIST); /* same id */
        device_init(&d, 9, "carol", T0);
        assert_int_equal(store_device_create(f->s, &d, h, 0, 100, NULL), -EEXIST); /* same token hash */
        assert_int_equal(store_device_get(f->s, "dev_0009", &got), -ENOENT); /* nothing half-written */

        /* Bad arguments. */
        memset(d.name, 'x', sizeof d.name);
        assert_int_equal(store_device_create(f->s, &d, h, 0, 100, NULL), -EINVAL);
        device_init(&d, 9, "", T0);
        assert_int_equal(store_device_create(f->s, &d, h, 0, 100, NULL), -EINVAL);
        device_init(&d, 9, "carol", T0);
        d.revoked = true;
        assert_int_equal(store_device_create(f->s, &d, h, 0, 100, NULL), -EINVAL);
        assert_int_equal(store_device_get(f->s, "", &got), -EINVAL);

        _cleanup_(freep) store_device *v = NULL;
        size_t n = 0;
        bool more = false;
        assert_int_equal(store_devices_list(f->s, "alice", NULL, 100, &v, &n, &more), 0);
        assert_int_equal(n, 3);
        assert_string_equal(v[0].id, "dev_0001");
        assert_string_equal(v[1].id, "dev_0003");
        assert_string_equal(v[2].id, "dev_0004");
        assert_int_equal(v[2].password_auth, T0 + 3);
        free(v);
        v = NULL;
        assert_int_equal(store_devices_list(f->s, NULL, NULL, 100, &v, &n, &more), 0);
        assert_int_equal(n, 4);
        free(v);
        v = (store_device *) 0x1;
        assert_int_equal(store_devices_list(f->s, "nobody", NULL, 100, &v, &n, &more), 0);
        assert_int_equal(n, 0);
        assert_null(v);

        /* Touch. */
        assert_int_equal(store_device_touch(f->s, "dev_0002", T0 + 100), 0);
        assert_int_equal(store_device_get(f->s, "dev_0002", &got), 0);
        assert_int_equal(got.last_used, T0 + 100);
        assert_int_equal(store_device_touch(f->s, "dev_0002", T0 + 50), 0); /* never goes back */
        assert_int_equal(store_device_get(f->s, "dev_0002", &got), 0);
        assert_int_equal(got.last_used, T0 + 100);
        assert_int_equal(store_device_touch(f->s, "dev_0404", T0), -ENOENT);

        /* Revoke: 1 the first time, 0 after, with one audit row. */
        store_audit a = { .time = T0 + 200, .event = "revoke", .user = "bob", .device_id = "dev_0002",
                          .caller_uid = 0, .caller_pid = 7 };
        assert_int_equal(store_device_revoke(f->s, "dev_0002", "admin", &a), 1);
        assert_int_equal(store_device_revoke(f->s, "dev_0002", "again", &a), 0);
        assert_int_equal(store_device_revoke(f->s, "dev_0404", "admin", &a), -ENOENT);
        assert_int_equal(store_device_get(f->s, "dev_0002", &got), 0);
        assert_true(got.revoked);
        assert_int_equal(got.revoked_at, T0 + 200);
        assert_string_equal(got.revoke_reason, "admin");
        assert_int_equal(count_events(f->s, "revoke"), 1);

        /* The revoked device's tokens answer "revoked", not "unknown". */
        store_rotate_result rr;
        assert_int_equal(rotate(f->s, 2, 1, 2, T0 + 300, 0, &rr), -EKEYREVOKED);
        assert_false(rr.reuse_detected);
}

/* ------------------------------------------------------------ growth */

static int try_enrol(tokend_store *s, unsigned dev, const char *user, int64_t now, int64_t expires, unsigned cap) {
        store_device d;
        uint8_t h[STORE_HASH_LEN];
        device_init(&d, dev, user, now);
        hash_of(h, dev, 1);
        store_audit a = { .time = now, .event = "token", .user = user, .device_id = d.id, .caller_uid = 1000,
                          .caller_pid = 1 };
        return store_device_create(s, &d, h, expires, cap, &a);
}

static size_t count_devices(tokend_store *s, const char *user) {
        _cleanup_(freep) store_device *v = NULL;
        size_t n = 0;
        bool more = false;
        assert_int_equal(store_devices_list(s, user, NULL, STORE_PAGE_MAX, &v, &n, &more), 0);
        assert_false(more);
        return n;
}

/* MaxDevicesPerUser: a full user is refused (nothing written) until one of
 * their devices is dead; dead ones (revoked, chain expired) make room, the
 * least recently used first; other users are not affected. */
static void test_device_cap(void **state) {
        fixture *f = *state;
        store_device got;

        for (unsigned i = 1; i <= 3; i++)
                assert_int_equal(try_enrol(f->s, i, "alice", T0 + i, 0, 3), 0);
        assert_int_equal(try_enrol(f->s, 4, "alice", T0 + 10, 0, 3), -EDQUOT);
        assert_int_equal(store_device_get(f->s, "dev_0004", &got), -ENOENT);
        assert_int_equal(count_events(f->s, "token"), 3); /* the refusal wrote nothing */
        assert_int_equal(count_devices(f->s, "alice"), 3);
        /* control: another user still enrols under the same cap */
        assert_int_equal(try_enrol(f->s, 5, "bob", T0 + 10, 0, 3), 0);

        /* A revoked device makes room, and is the one that goes. */
        assert_int_equal(store_device_revoke(f->s, "dev_0002", "owner", NULL), 1);
        assert_int_equal(try_enrol(f->s, 4, "alice", T0 + 20, 0, 3), 0);
        assert_int_equal(store_device_get(f->s, "dev_0002", &got), -ENOENT);
        assert_int_equal(store_device_get(f->s, "dev_0001", &got), 0);
        assert_int_equal(count_devices(f->s, "alice"), 3);
        assert_int_equal(try_enrol(f->s, 6, "alice", T0 + 21, 0, 3), -EDQUOT);

        /* A device whose refresh token expired is dead too (at the new
         * device's creation time); until then it counts. */
        assert_int_equal(try_enrol(f->s, 7, "carol", T0, T0 + 100, 1), 0);
        assert_int_equal(try_enrol(f->s, 8, "carol", T0 + 99, 0, 1), -EDQUOT);
        assert_int_equal(try_enrol(f->s, 8, "carol", T0 + 100, 0, 1), 0);
        assert_int_equal(store_device_get(f->s, "dev_0007", &got), -ENOENT);

        /* A lowered cap evicts as many dead devices as needed, or refuses. */
        assert_int_equal(store_device_revoke(f->s, "dev_0001", "owner", NULL), 1);
        assert_int_equal(try_enrol(f->s, 9, "alice", T0 + 30, 0, 2), -EDQUOT); /* 2 live + 1 dead, cap 2 */
        assert_int_equal(count_devices(f->s, "alice"), 3);
        assert_int_equal(try_enrol(f->s, 9, "alice", T0 + 30, 0, 3), 0);
        assert_int_equal(store_device_get(f->s, "dev_0001", &got), -ENOENT);
        assert_int_equal(try_enrol(f->s, 10, "alice", T0, 0, 0), -EINVAL);
}

typedef struct enroller {
        tokend_store *s;
        pthread_barrier_t *barrier;
        unsigned id;
        int r;
} enroller;

static void *enrol_racing(void *p) {
        enroller *x = p;
        pthread_barrier_wait(x->barrier);
        x->r = try_enrol(x->s, 100 + x->id, "dave", T0, 0, 5);
        return NULL;
}

/* The cap holds against concurrent enrolments (count and insert are one
 * transaction): 16 at once, cap 5 → exactly 5 devices. */
static void test_device_cap_concurrent(void **state) {
        fixture *f = *state;
        pthread_t t[16];
        enroller e[16];
        pthread_barrier_t b;
        unsigned ok = 0, refused = 0;

        pthread_barrier_init(&b, NULL, 16);
        for (unsigned i = 0; i < 16; i++) {
                e[i] = (enroller){ .s = f->s, .barrier = &b, .id = i };
                assert_int_equal(pthread_create(&t[i], NULL, enrol_racing, &e[i]), 0);
        }
        for (unsigned i = 0; i < 16; i++)
                pthread_join(t[i], NULL);
        pthread_barrier_destroy(&b);
        for (unsigned i = 0; i < 16; i++) {
                ok += e[i].r == 0;
                refused += e[i].r == -EDQUOT;
        }
        assert_int_equal(ok, 5);
        assert_int_equal(refused, 11);
        assert_int_equal(count_devices(f->s, "dave"), 5);
}

/* Pages of devices ((created, id) order, ties on created broken by id) and
 * of audit rows (newest first): every row exactly once, `more` right. */
static void test_paging(void **state) {
        fixture *f = *state;
        char seen[260] = { 0 };
        store_device_cursor cur;
        bool more = true;
        size_t pages = 0, total = 0;

        for (unsigned i = 0; i < 250; i++) /* ten devices share each creation second */
                assert_int_equal(try_enrol(f->s, i, "erin", T0 + i / 10, 0, 1000), 0);
        for (unsigned i = 250; i < 260; i++)
                assert_int_equal(try_enrol(f->s, i, "frank", T0, 0, 1000), 0);

        for (const store_device_cursor *after = NULL; more; after = &cur, pages++) {
                _cleanup_(freep) store_device *v = NULL;
                size_t n = 0;
                assert_int_equal(store_devices_list(f->s, "erin", after, 100, &v, &n, &more), 0);
                assert_int_equal(n, pages < 2 ? 100 : 50);
                assert_int_equal(more, pages < 2);
                for (size_t i = 0; i < n; i++) {
                        unsigned dev = (unsigned) atoi(v[i].id + 4);
                        assert_string_equal(v[i].user, "erin");
                        assert_true(dev < 250 && !seen[dev]);
                        seen[dev] = 1;
                        if (i > 0)
                                assert_true(v[i - 1].created < v[i].created ||
                                            (v[i - 1].created == v[i].created && strcmp(v[i - 1].id, v[i].id) < 0));
                }
                total += n;
                cur = (store_device_cursor){ .created = v[n - 1].created };
                snprintf(cur.id, sizeof cur.id, "%s", v[n - 1].id);
        }
        assert_int_equal(pages, 3);
        assert_int_equal(total, 250);

        /* Everyone's: 260 in pages of 1000 → one page; of 259 → two. */
        _cleanup_(freep) store_device *all = NULL;
        size_t n = 0;
        assert_int_equal(store_devices_list(f->s, NULL, NULL, STORE_PAGE_MAX, &all, &n, &more), 0);
        assert_int_equal(n, 260);
        assert_false(more);
        free(all);
        all = NULL;
        assert_int_equal(store_devices_list(f->s, NULL, NULL, 259, &all, &n, &more), 0);
        assert_true(more);
        free(all);
        all = NULL;
        assert_int_equal(store_devices_list(f->s, NULL, NULL, 0, &all, &n, &more), -EINVAL);
        assert_int_equal(store_devices_list(f->s, NULL, NULL, STORE_PAGE_MAX + 1, &all, &n, &more), -EINVAL);

        /* Audit: 260 "token" rows; erin's 250 in pages of 100, newest first. */
        int64_t before = 0, last = INT64_MAX;
        total = 0;
        for (more = true, pages = 0; more; pages++) {
                _cleanup_(freep) store_audit_entry *v = NULL;
                assert_int_equal(store_audit_list(f->s, "erin", before, 100, &v, &n, &more), 0);
                for (size_t i = 0; i < n; i++) {
                        assert_true(v[i].id < last);
                        assert_string_equal(v[i].user, "erin");
                        last = v[i].id;
                }
                total += n;
                before = v[n - 1].id;
        }
        assert_int_equal(pages, 3);
        assert_int_equal(total, 250);
        store_audit_entry *none = NULL;
        assert_int_equal(store_audit_list(f->s, NULL, -1, 10, &none, &n, &more), -EINVAL);
        assert_int_equal(store_audit_list(f->s, NULL, 0, STORE_PAGE_MAX + 1, &none, &n, &more), -EINVAL);
        assert_int_equal(store_audit_list(f->s, NULL, 1, 10, &none, &n, &more), 0); /* nothing below id 1 */
        assert_int_equal(n, 0);
        assert_false(more);
}

/* ------------------------------------------------------------ rotation */

static void test_rotate_happy(void **state) {
        fixture *f = *state;
        store_rotate_result rr;
        store_device d;

        enrol(f->s, 1, "alice", T0, T0 + 7 * DAY);
        assert_int_equal(rotate(f->s, 1, 1, 2, T0 + 60, 0, &rr), 0);
        assert_false(rr.reuse_detected);
        assert_int_equal(rr.generation, 2);
        assert_string_equal(rr.device.user, "alice");
        assert_int_equal(rr.device.uid, 1001);
        assert_int_equal(rr.device.last_used, T0 + 60);
        assert_int_equal(rotate(f->s, 1, 2, 3, T0 + 120, 0, &rr), 0);
        assert_int_equal(rr.generation, 3);

        assert_int_equal(store_device_get(f->s, "dev_0001", &d), 0);
        assert_int_equal(d.last_used, T0 + 120);
        assert_false(d.revoked);
        assert_int_equal(count_events(f->s, "refresh"), 2);
        assert_int_equal(count_events(f->s, "login"), 1);

        _cleanup_(freep) store_audit_entry *v = NULL;
        size_t n = 0;
        bool more = false;
        assert_int_equal(store_audit_list(f->s, "alice", 0, 1, &v, &n, &more), 0);
        assert_int_equal(n, 1);
        assert_string_equal(v[0].event, "login"); /* "refresh" rows name no user in this test */
}

static void test_rotate_refused(void **state) {
        fixture *f = *state;
        store_rotate_result rr, untouched;
        uint8_t a[STORE_HASH_LEN], b[STORE_HASH_LEN];

        enrol(f->s, 1, "alice", T0, T0 + 7 * DAY);
        enrol(f->s, 2, "bob", T0, T0 + 7 * DAY);
        memset(&untouched, 0x77, sizeof untouched);

        /* Unknown token. */
        rr = untouched;
        assert_int_equal(rotate(f->s, 1, 50, 51, T0, 0, &rr), -ENOENT);
        assert_memory_equal(&rr, &untouched, sizeof rr);

        /* Bob's token presented with Alice's device id: unknown as well, and
         * nothing happens to either device. */
        hash_of(a, 2, 1);
        hash_of(b, 1, 99);
        assert_int_equal(store_refresh_rotate(f->s, "dev_0001", a, b, T0, 0, 0, NULL, &rr), -ENOENT);
        assert_memory_equal(&rr, &untouched, sizeof rr);
        assert_int_equal(rotate(f->s, 2, 1, 2, T0 + 1, 0, &rr), 0); /* control: still valid for bob */
        assert_int_equal(store_refresh_rotate(f->s, "dev_0404", a, b, T0, 0, 0, NULL, &rr), -ENOENT);

        /* New hash colliding with an existing one: nothing rotated. */
        hash_of(a, 1, 1);
        hash_of(b, 2, 2);
        assert_int_equal(store_refresh_rotate(f->s, "dev_0001", a, b, T0 + 2, 0, 0, NULL, &rr), -EEXIST);
        assert_int_equal(rotate(f->s, 1, 1, 2, T0 + 3, 0, &rr), 0);

        /* Expired: exactly at expires is too late; one second before is fine. */
        enrol(f->s, 3, "carol", T0, T0 + 100);
        enrol(f->s, 4, "dave", T0, T0 + 100);
        assert_int_equal(rotate(f->s, 3, 1, 2, T0 + 100, 0, &rr), -EKEYEXPIRED);
        assert_string_equal(rr.device.id, "dev_0003");
        assert_int_equal(rotate(f->s, 4, 1, 2, T0 + 99, 0, &rr), 0);
        /* expires = 0 never expires. */
        enrol(f->s, 5, "erin", T0, 0);
        assert_int_equal(rotate(f->s, 5, 1, 2, T0 + 100 * 365 * DAY, 0, &rr), 0);

        /* Bad arguments. */
        assert_int_equal(store_refresh_rotate(f->s, "", a, b, T0, 0, 0, NULL, &rr), -EINVAL);
        assert_int_equal(store_refresh_rotate(f->s, "dev_0001", a, b, T0, -1, 0, NULL, &rr), -EINVAL);
        assert_int_equal(store_refresh_rotate(f->s, "dev_0001", a, b, T0, 0, -1, NULL, &rr), -EINVAL);
}

/* new_hash NULL: the same checks, nothing rotated or written. */
static void test_rotate_check_only(void **state) {
        fixture *f = *state;
        store_rotate_result rr;
        uint8_t cur[STORE_HASH_LEN], old[STORE_HASH_LEN];

        enrol(f->s, 1, "alice", T0, T0 + 7 * DAY);
        hash_of(cur, 1, 1);
        assert_int_equal(store_refresh_rotate(f->s, "dev_0001", cur, NULL, T0 + 1, 0, 0, NULL, &rr), 0);
        assert_int_equal(store_refresh_rotate(f->s, "dev_0001", cur, NULL, T0 + 2, 0, 0, NULL, &rr), 0);
        assert_int_equal(count_events(f->s, "refresh"), 0);
        assert_int_equal(rotate(f->s, 1, 1, 2, T0 + 3, 0, &rr), 0); /* still the current token */
        assert_int_equal(rr.generation, 2);
        hash_of(cur, 1, 9);
        assert_int_equal(store_refresh_rotate(f->s, "dev_0001", cur, NULL, T0 + 4, 0, 0, NULL, &rr), -ENOENT);
        hash_of(cur, 1, 2);
        assert_int_equal(store_refresh_rotate(f->s, "dev_0001", cur, NULL, T0 + 3 + 7 * DAY, 0, 0, NULL, &rr),
                         -EKEYEXPIRED);
        /* A rotated token is theft evidence in a check too. */
        hash_of(old, 1, 1);
        assert_int_equal(store_refresh_rotate(f->s, "dev_0001", old, NULL, T0 + 5, 0, 0, NULL, &rr), -EKEYREVOKED);
        assert_true(rr.reuse_detected);
        assert_int_equal(count_events(f->s, "refresh_reuse"), 1);
}

static void test_rotate_reuse_revokes(void **state) {
        fixture *f = *state;
        store_rotate_result rr;
        store_device d;

        enrol(f->s, 1, "alice", T0, T0 + 7 * DAY);
        enrol(f->s, 2, "alice", T0, T0 + 7 * DAY);
        assert_int_equal(rotate(f->s, 1, 1, 2, T0 + 10, 0, &rr), 0);
        assert_int_equal(rotate(f->s, 1, 2, 3, T0 + 20, 0, &rr), 0);

        /* The thief (or the victim) replays generation 1. */
        assert_int_equal(rotate(f->s, 1, 1, 9, T0 + 30, 0, &rr), -EKEYREVOKED);
        assert_true(rr.reuse_detected);
        assert_true(rr.device.revoked);
        assert_string_equal(rr.device.revoke_reason, "refresh_reuse");
        assert_string_equal(rr.device.user, "alice");

        assert_int_equal(store_device_get(f->s, "dev_0001", &d), 0);
        assert_true(d.revoked);
        assert_int_equal(d.revoked_at, T0 + 30);
        assert_string_equal(d.revoke_reason, "refresh_reuse");

        _cleanup_(freep) store_audit_entry *v = NULL;
        size_t n = 0;
        bool more = false;
        assert_int_equal(store_audit_list(f->s, NULL, 0, 1, &v, &n, &more), 0);
        assert_int_equal(n, 1);
        assert_string_equal(v[0].event, "refresh_reuse");
        assert_string_equal(v[0].user, "alice");
        assert_string_equal(v[0].device_id, "dev_0001");
        assert_int_equal(v[0].caller_uid, 4242);
        assert_int_equal(v[0].caller_pid, 99);

        /* The newest token of the family is dead too; the replay did not
         * insert the thief's new hash. */
        assert_int_equal(rotate(f->s, 1, 3, 4, T0 + 40, 0, &rr), -EKEYREVOKED);
        assert_false(rr.reuse_detected);
        assert_int_equal(rotate(f->s, 1, 9, 10, T0 + 40, 0, &rr), -ENOENT);
        assert_int_equal(count_events(f->s, "refresh_reuse"), 1);

        /* The other device of the same user is untouched (control). */
        assert_int_equal(rotate(f->s, 2, 1, 2, T0 + 50, 0, &rr), 0);

        /* A rotated token replayed after its own expiry is still theft. */
        enrol(f->s, 3, "bob", T0, T0 + 100);
        assert_int_equal(rotate(f->s, 3, 1, 2, T0 + 50, 0, &rr), 0);
        assert_int_equal(rotate(f->s, 3, 1, 5, T0 + 500, 0, &rr), -EKEYREVOKED);
        assert_true(rr.reuse_detected);
}

static void test_rotate_grace(void **state) {
        fixture *f = *state;
        store_rotate_result rr;
        store_device d;

        enrol(f->s, 1, "alice", T0, T0 + 7 * DAY);
        assert_int_equal(rotate(f->s, 1, 1, 2, T0 + 100, 10, &rr), 0);

        /* Within the grace: a concurrent double refresh, refused without a
         * new token and without revoking. */
        assert_int_equal(rotate(f->s, 1, 1, 3, T0 + 100, 10, &rr), -EALREADY);
        assert_false(rr.reuse_detected);
        assert_int_equal(rotate(f->s, 1, 1, 3, T0 + 110, 10, &rr), -EALREADY);
        assert_int_equal(store_device_get(f->s, "dev_0001", &d), 0);
        assert_false(d.revoked);
        assert_int_equal(rotate(f->s, 1, 3, 4, T0 + 110, 10, &rr), -ENOENT); /* no token was issued */
        assert_int_equal(rotate(f->s, 1, 2, 3, T0 + 110, 10, &rr), 0);       /* the winner's token works */

        /* Past the grace: theft. */
        assert_int_equal(rotate(f->s, 1, 2, 4, T0 + 121, 10, &rr), -EKEYREVOKED);
        assert_true(rr.reuse_detected);

        /* Grace 0 = off: an immediate replay already revokes. */
        enrol(f->s, 2, "bob", T0, T0 + 7 * DAY);
        assert_int_equal(rotate(f->s, 2, 1, 2, T0 + 100, 0, &rr), 0);
        assert_int_equal(rotate(f->s, 2, 1, 3, T0 + 100, 0, &rr), -EKEYREVOKED);
        assert_true(rr.reuse_detected);
}

typedef struct racer {
        tokend_store *s;
        pthread_barrier_t *barrier;
        unsigned dev, to;
        int64_t grace;
        int r;
} racer;

static void *race(void *p) {
        racer *x = p;
        store_rotate_result rr;
        pthread_barrier_wait(x->barrier);
        x->r = rotate(x->s, x->dev, 1, x->to, T0 + 10, x->grace, &rr);
        return NULL;
}

static void test_rotate_concurrent(void **state) {
        fixture *f = *state;

        for (unsigned round = 0; round < 20; round++) {
                pthread_barrier_t barrier;
                pthread_t t[2];
                racer x[2];
                int64_t grace = round % 2 ? 60 : 0;

                enrol(f->s, 100 + round, "alice", T0, T0 + 7 * DAY);
                pthread_barrier_init(&barrier, NULL, 2);
                for (unsigned i = 0; i < 2; i++) {
                        x[i] = (racer){ .s = f->s, .barrier = &barrier, .dev = 100 + round, .to = 2 + i, .grace = grace };
                        assert_int_equal(pthread_create(&t[i], NULL, race, &x[i]), 0);
                }
                for (unsigned i = 0; i < 2; i++)
                        pthread_join(t[i], NULL);
                pthread_barrier_destroy(&barrier);

                /* Exactly one wins; the loser is refused, as reuse without a
                 * grace and as a concurrent retry within one. */
                int loser = x[0].r == 0 ? x[1].r : x[0].r;
                assert_true((x[0].r == 0) != (x[1].r == 0));
                assert_int_equal(loser, grace ? -EALREADY : -EKEYREVOKED);
        }
}

/* Readers and writers from several threads at once: nothing lost, no error. */
typedef struct worker {
        tokend_store *s;
        unsigned id;
        int failures;
        char first_failure[96];
} worker;

static void fail_once(worker *w, const char *op, unsigned g, int r) {
        if (w->failures++ == 0)
                snprintf(w->first_failure, sizeof w->first_failure, "worker %u, round %u: %s returned %d", w->id, g,
                         op, r);
}

static void *work(void *p) {
        worker *w = p;
        store_rotate_result rr;
        store_device d;
        char jti[32], own[32];
        int r;

        enrol(w->s, 500 + w->id, "worker", T0, 0);
        snprintf(own, sizeof own, "dev_%04u", 500 + w->id); /* its own: the others may not exist yet */
        for (unsigned g = 1; g <= 50; g++) {
                if ((r = rotate(w->s, 500 + w->id, g, g + 1, T0 + g, 0, &rr)) != 0 || rr.generation != g + 1)
                        fail_once(w, "rotate", g, r);
                snprintf(jti, sizeof jti, "w%u-%u", w->id, g);
                if ((r = store_proof_jti_use(w->s, jti, T0 + 100)) != 0)
                        fail_once(w, "store_proof_jti_use", g, r);
                if ((r = store_device_get(w->s, own, &d)) != 0)
                        fail_once(w, "store_device_get", g, r);
                if ((r = store_jti_is_revoked(w->s, jti)) != 0)
                        fail_once(w, "store_jti_is_revoked", g, r);
                /* a coalesced refusal: lazy commits mixed into the durable batches */
                store_audit a = { .time = T0 + g, .event = "token_denied", .user = "root", .caller_uid = 99,
                                  .caller_pid = (int64_t) w->id };
                if ((r = store_audit_coalesce(w->s, &a, 60)) != 0)
                        fail_once(w, "store_audit_coalesce", g, r);
        }
        return NULL;
}

static void test_threads(void **state) {
        fixture *f = *state;
        pthread_t t[6];
        worker w[6];

        for (unsigned i = 0; i < 6; i++) {
                w[i] = (worker){ .s = f->s, .id = i };
                assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
        }
        /* every thread joined before any assertion: a failing assertion
         * leaves this frame, which the workers write into */
        for (unsigned i = 0; i < 6; i++)
                pthread_join(t[i], NULL);
        for (unsigned i = 0; i < 6; i++)
                if (w[i].failures)
                        fail_msg("%d failures; first: %s", w[i].failures, w[i].first_failure);
        assert_int_equal(count_events(f->s, "refresh"), 6 * 50);
        _cleanup_(freep) store_audit_entry *v = NULL;
        size_t n = 0;
        bool more = false;
        assert_int_equal(store_audit_list(f->s, NULL, 0, 1000, &v, &n, &more), 0);
        size_t rows = 0;
        for (size_t i = 0; i < n; i++)
                if (streq(v[i].event, "token_denied")) {
                        rows++;
                        assert_int_equal(v[i].count, 6 * 50);
                }
        assert_int_equal(rows, 1);
}

/* Group commit: a failing operation (a replayed proof) batched with others
 * leaves theirs intact. */
typedef struct prover {
        tokend_store *s;
        pthread_barrier_t *barrier;
        unsigned id;
        int dup, unique;
} prover;

static void *prove(void *p) {
        prover *x = p;
        char jti[32];
        pthread_barrier_wait(x->barrier);
        x->dup = store_proof_jti_use(x->s, "same-jti", T0 + 60);
        snprintf(jti, sizeof jti, "unique-%u", x->id);
        x->unique = store_proof_jti_use(x->s, jti, T0 + 60);
        return NULL;
}

static void test_batch_isolation(void **state) {
        fixture *f = *state;
        pthread_barrier_t barrier;
        pthread_t t[8];
        prover x[8];
        unsigned won = 0;

        pthread_barrier_init(&barrier, NULL, 8);
        for (unsigned i = 0; i < 8; i++) {
                x[i] = (prover){ .s = f->s, .barrier = &barrier, .id = i };
                assert_int_equal(pthread_create(&t[i], NULL, prove, &x[i]), 0);
        }
        for (unsigned i = 0; i < 8; i++) {
                pthread_join(t[i], NULL);
                assert_true(x[i].dup == 0 || x[i].dup == -EEXIST);
                won += x[i].dup == 0;
                assert_int_equal(x[i].unique, 0);
        }
        pthread_barrier_destroy(&barrier);
        assert_int_equal(won, 1);
        for (unsigned i = 0; i < 8; i++) {
                char jti[32];
                snprintf(jti, sizeof jti, "unique-%u", i);
                assert_int_equal(store_proof_jti_use(f->s, jti, T0 + 60), -EEXIST); /* all were stored */
        }
}

/* ------------------------------------------------------------ jtis */

static void test_jtis(void **state) {
        fixture *f = *state;
        char big[STORE_JTI_MAX + 2];

        assert_int_equal(store_jti_is_revoked(f->s, "jti-1"), 0);
        assert_int_equal(store_jti_revoke(f->s, "jti-1", T0 + 900), 0);
        assert_int_equal(store_jti_is_revoked(f->s, "jti-1"), 1);
        assert_int_equal(store_jti_is_revoked(f->s, "jti-2"), 0);
        assert_int_equal(store_jti_revoke(f->s, "jti-1", T0 + 100), 0); /* idempotent, keeps the later expiry */

        assert_int_equal(store_proof_jti_use(f->s, "proof-1", T0 + 60), 0);
        assert_int_equal(store_proof_jti_use(f->s, "proof-1", T0 + 60), -EEXIST);
        assert_int_equal(store_proof_jti_use(f->s, "proof-2", T0 + 60), 0);

        memset(big, 'j', sizeof big - 1);
        big[sizeof big - 1] = 0;
        assert_int_equal(store_jti_revoke(f->s, big, T0), -EINVAL);
        assert_int_equal(store_jti_is_revoked(f->s, big), -EINVAL);
        assert_int_equal(store_proof_jti_use(f->s, big, T0), -EINVAL);
        assert_int_equal(store_proof_jti_use(f->s, "", T0), -EINVAL);
        big[STORE_JTI_MAX] = 0; /* control: exactly the maximum */
        assert_int_equal(store_proof_jti_use(f->s, big, T0), 0);

        /* The verify path's one read: the device and the jti together. */
        store_device got;
        bool jr = true;
        enrol(f->s, 7, "alice", T0, 0);
        assert_int_equal(store_device_jti_get(f->s, "dev_0007", "jti-2", &got, &jr), 0); /* control */
        assert_string_equal(got.id, "dev_0007");
        assert_string_equal(got.user, "alice");
        assert_false(got.revoked);
        assert_false(jr);
        assert_int_equal(store_device_jti_get(f->s, "dev_0007", "jti-1", &got, &jr), 0);
        assert_true(jr);
        assert_int_equal(store_device_revoke(f->s, "dev_0007", "test", NULL), 1);
        assert_int_equal(store_device_jti_get(f->s, "dev_0007", "jti-2", &got, &jr), 0);
        assert_true(got.revoked);
        assert_false(jr);
        assert_int_equal(store_device_jti_get(f->s, "dev_0008", "jti-1", &got, &jr), -ENOENT);
        char longer[STORE_JTI_MAX + 2];
        memset(longer, 'j', sizeof longer - 1);
        longer[sizeof longer - 1] = 0;
        assert_int_equal(store_device_jti_get(f->s, "dev_0007", longer, &got, &jr), -EINVAL);

        /* Pruned only once expired (plus the clock-skew margin). */
        assert_int_equal(store_prune(f->s, T0 + 900 + 3600), 3); /* proof-1, proof-2, the long proof */
        assert_int_equal(store_jti_is_revoked(f->s, "jti-1"), 1);
        assert_int_equal(store_prune(f->s, T0 + 901 + 3600), 2); /* jti-1 and its revocation log entry */
        assert_int_equal(store_jti_is_revoked(f->s, "jti-1"), 0);
        assert_int_equal(store_proof_jti_use(f->s, "proof-1", T0 + 9999), 0);
}

/* ------------------------------------------------------------ audit */

static void test_audit(void **state) {
        fixture *f = *state;
        char detail[STORE_AUDIT_DETAIL_MAX + 2];

        for (int i = 0; i < 5; i++) {
                store_audit a = { .time = T0 + i, .event = i % 2 ? "verify" : "login", .user = i % 2 ? "bob" : "alice",
                                  .caller_uid = i, .caller_pid = -1 };
                assert_int_equal(store_audit_add(f->s, &a), 0);
        }
        _cleanup_(freep) store_audit_entry *v = NULL;
        size_t n = 0;
        bool more = false;
        assert_int_equal(store_audit_list(f->s, NULL, 0, 3, &v, &n, &more), 0);
        assert_int_equal(n, 3);
        assert_int_equal(v[0].time, T0 + 4); /* newest first */
        assert_int_equal(v[2].time, T0 + 2);
        assert_string_equal(v[0].device_id, "");
        assert_int_equal(v[0].caller_pid, -1);
        free(v);
        v = NULL;
        assert_int_equal(store_audit_list(f->s, "bob", 0, 100, &v, &n, &more), 0);
        assert_int_equal(n, 2);
        assert_string_equal(v[0].event, "verify");

        store_audit bad = { .time = T0, .event = NULL };
        assert_int_equal(store_audit_add(f->s, &bad), -EINVAL);
        memset(detail, 'd', sizeof detail - 1);
        detail[sizeof detail - 1] = 0;
        bad = (store_audit){ .time = T0, .event = "x", .detail = detail };
        assert_int_equal(store_audit_add(f->s, &bad), -EINVAL);
        detail[STORE_AUDIT_DETAIL_MAX] = 0;
        assert_int_equal(store_audit_add(f->s, &bad), 0); /* control */
        assert_int_equal(store_audit_list(f->s, NULL, 0, 0, &v, &n, &more), -EINVAL);
}

/* Repeated refusals: one row with a count per key and window; too many
 * distinct keys of one event and caller fold into one overflow row. */
static void test_audit_coalesce(void **state) {
        fixture *f = *state;
        _cleanup_(freep) store_audit_entry *v = NULL;
        size_t n = 0;
        bool more = false;

        store_audit a = { .time = T0, .event = "token_denied", .user = "root", .caller_uid = 1000,
                          .caller_pid = 10, .detail = "uid 1000 asked for another user" };
        for (int i = 0; i < 5; i++) {
                a.time = T0 + i * 10; /* all within 60 s of the first */
                a.caller_pid = 10 + i;
                assert_int_equal(store_audit_coalesce(f->s, &a, 60), 0);
        }
        assert_int_equal(store_audit_list(f->s, NULL, 0, 100, &v, &n, &more), 0);
        assert_int_equal(n, 1);
        assert_int_equal(v[0].count, 5);
        assert_int_equal(v[0].time, T0);
        assert_int_equal(v[0].last_time, T0 + 40);
        assert_int_equal(v[0].caller_pid, 10); /* the first event's */
        assert_string_equal(v[0].detail, "uid 1000 asked for another user");
        free(v);
        v = NULL;

        /* Past the window: a new row. Another user, caller, device or
         * detail: a row of its own. */
        a.time = T0 + 60;
        assert_int_equal(store_audit_coalesce(f->s, &a, 60), 0);
        a.time = T0 + 61;
        assert_int_equal(store_audit_coalesce(f->s, &a, 60), 0);
        store_audit b = a;
        b.user = "alice";
        assert_int_equal(store_audit_coalesce(f->s, &b, 60), 0);
        b = a;
        b.caller_uid = 1001;
        assert_int_equal(store_audit_coalesce(f->s, &b, 60), 0);
        b = a;
        b.device_id = "dev_0001";
        assert_int_equal(store_audit_coalesce(f->s, &b, 60), 0);
        b = a;
        b.detail = NULL;
        assert_int_equal(store_audit_coalesce(f->s, &b, 60), 0);
        assert_int_equal(store_audit_coalesce(f->s, &b, 60), 0);
        assert_int_equal(store_audit_list(f->s, NULL, 0, 100, &v, &n, &more), 0);
        assert_int_equal(n, 6);
        assert_int_equal(v[0].count, 2); /* detail NULL, twice */
        assert_string_equal(v[0].detail, "");
        assert_int_equal(v[4].count, 2); /* T0 + 60 and T0 + 61 */
        assert_int_equal(v[4].time, T0 + 60);
        assert_int_equal(v[4].last_time, T0 + 61);
        assert_int_equal(v[5].count, 5);
        free(v);
        v = NULL;

        /* One caller varying the user name: at most STORE_AUDIT_COALESCE_KEYS
         * rows, then one overflow row that counts the rest. */
        char name[32];
        for (unsigned i = 0; i < STORE_AUDIT_COALESCE_KEYS + 40; i++) {
                snprintf(name, sizeof name, "spray%u", i);
                store_audit s1 = { .time = T0 + 1000, .event = "login_failed", .user = name, .caller_uid = 2000,
                                   .caller_pid = 1 };
                assert_int_equal(store_audit_coalesce(f->s, &s1, 60), 0);
        }
        /* Another caller still gets its own row (control). */
        store_audit other = { .time = T0 + 1000, .event = "login_failed", .user = "spray0", .caller_uid = 2001,
                              .caller_pid = 1 };
        assert_int_equal(store_audit_coalesce(f->s, &other, 60), 0);
        assert_int_equal(store_audit_list(f->s, NULL, 0, 1000, &v, &n, &more), 0);
        size_t spray = 0, overflow = 0, total = 0;
        for (size_t i = 0; i < n; i++) {
                if (!streq(v[i].event, "login_failed"))
                        continue;
                total += (size_t) v[i].count;
                if (v[i].caller_uid == 2001) {
                        assert_string_equal(v[i].user, "spray0");
                        assert_int_equal(v[i].count, 1);
                } else if (v[i].user[0] == 0) {
                        overflow++;
                        assert_int_equal(v[i].count, 40);
                        assert_non_null(strstr(v[i].detail, "counted here"));
                } else
                        spray++;
        }
        assert_int_equal(spray, STORE_AUDIT_COALESCE_KEYS);
        assert_int_equal(overflow, 1);
        assert_int_equal(total, STORE_AUDIT_COALESCE_KEYS + 40 + 1); /* every event counted */
        free(v);
        v = NULL;

        /* Successes are never coalesced (control): one row each. */
        store_audit ok = { .time = T0 + 2000, .event = "login", .user = "alice", .caller_uid = 1000,
                           .caller_pid = 1, .detail = "jti" };
        assert_int_equal(store_audit_add(f->s, &ok), 0);
        assert_int_equal(store_audit_add(f->s, &ok), 0);
        assert_int_equal(store_audit_list(f->s, "alice", 0, 2, &v, &n, &more), 0);
        assert_int_equal(n, 2);
        assert_int_equal(v[0].count, 1);
        assert_int_equal(v[1].count, 1);
        assert_int_equal(v[0].last_time, T0 + 2000);

        assert_int_equal(store_audit_coalesce(f->s, &ok, 0), -EINVAL);
        store_audit bad = { .time = T0, .event = NULL };
        assert_int_equal(store_audit_coalesce(f->s, &bad, 60), -EINVAL);
}

/* A database of schema 1 (before coalescing) is migrated and keeps its
 * audit rows, each counted once. */
static void test_migrate_from_1(void **state) {
        SQLITE_ONLY();
        fixture *f = *state;
        char path[256];
        sqlite3 *db = NULL;
        tokend_store *s = NULL;

        snprintf(path, sizeof path, "%s/v1.db", f->tmp.dir);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, migrations[0], NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 1;"
                                          "INSERT INTO audit (time, event, user, caller_uid, caller_pid, detail) "
                                          "VALUES (1700000000, 'login_failed', 'bob', 1000, 7, 'old');",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);

        assert_int_equal(store_open(path, &s), 0);
        assert_int_equal(store_schema_version(s), SCHEMA_VERSION);
        _cleanup_(freep) store_audit_entry *v = NULL;
        size_t n = 0;
        bool more = false;
        assert_int_equal(store_audit_list(s, NULL, 0, 10, &v, &n, &more), 0);
        assert_int_equal(n, 1);
        assert_string_equal(v[0].detail, "old");
        assert_int_equal(v[0].count, 1);
        assert_int_equal(v[0].last_time, 1700000000);
        /* and the old row is joined by the same refusal */
        store_audit a = { .time = 1700000010, .event = "login_failed", .user = "bob", .caller_uid = 1000,
                          .caller_pid = 8, .detail = "old" };
        assert_int_equal(store_audit_coalesce(s, &a, 60), 0);
        free(v);
        v = NULL;
        assert_int_equal(store_audit_list(s, NULL, 0, 10, &v, &n, &more), 0);
        assert_int_equal(n, 1);
        assert_int_equal(v[0].count, 2);
        assert_int_equal(store_integrity_check(s), 0);
        store_close(s);
}

/* ------------------------------------------------------------ published keys */

static void test_published_keys(void **state) {
        fixture *f = *state;
        store_published_key *v = (store_published_key *) 0x1;
        size_t n = 9;
        char kid[STORE_KID_MAX + 2];

        assert_int_equal(store_keys_list(f->s, T0, &v, &n), 0);
        assert_int_equal(n, 0);
        assert_null(v);
        assert_int_equal(store_key_publish(f->s, "kb", "{\"kid\":\"kb\"}", T0, T0 + 100), 0);
        assert_int_equal(store_key_publish(f->s, "ka", "{\"kid\":\"ka\"}", T0, T0 + 50), 0);
        /* Republished: the first publication time stays, the rest is new. */
        assert_int_equal(store_key_publish(f->s, "kb", "{\"kid\":\"kb\",\"x\":1}", T0 + 10, T0 + 200), 0);
        assert_int_equal(store_keys_list(f->s, T0 + 20, &v, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(v[0].kid, "ka");
        assert_string_equal(v[1].kid, "kb");
        assert_int_equal(v[1].published, T0);
        assert_int_equal(v[1].retire_after, T0 + 200);
        assert_string_equal(v[1].jwk, "{\"kid\":\"kb\",\"x\":1}");
        free(v);
        /* Retired: no longer listed. */
        assert_int_equal(store_keys_list(f->s, T0 + 50, &v, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(v[0].kid, "kb");
        free(v);

        memset(kid, 'k', sizeof kid - 1);
        kid[sizeof kid - 1] = '\0';
        assert_int_equal(store_key_publish(f->s, kid, "{}", T0, T0 + 1), -EINVAL);
        assert_int_equal(store_key_publish(f->s, "", "{}", T0, T0 + 1), -EINVAL);
        assert_int_equal(store_key_publish(f->s, "kc", "", T0, T0 + 1), -EINVAL);
        assert_int_equal(store_key_publish(f->s, "kc", "{}", T0, T0), -EINVAL); /* retired already */
        kid[STORE_KID_MAX] = '\0';
        assert_int_equal(store_key_publish(f->s, kid, "{}", T0, T0 + 1), 0); /* control: the longest kid */

        /* Pruned an hour after retirement (ka, the long kid): gone even for a
         * reader of the past; kb stays. */
        assert_int_equal(store_prune(f->s, T0 + 50 + 3601), 2);
        assert_int_equal(store_keys_list(f->s, T0, &v, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(v[0].kid, "kb");
        free(v);
}

/* ------------------------------------------------------------ prune */

static void test_prune(void **state) {
        fixture *f = *state;
        store_rotate_result rr;
        store_device d;

        /* 1: chain alive (newest expires later): its rotated tokens stay, so
         *    replaying one is still detected after the first one's expiry. */
        enrol(f->s, 1, "alice", T0, T0 + 100);
        assert_int_equal(rotate(f->s, 1, 1, 2, T0 + 50, 0, &rr), 0); /* gen 2 expires T0+50+7d */
        /* 2: chain dead: newest token expired. */
        enrol(f->s, 2, "bob", T0, T0 + 100);
        /* 3: never expires. */
        enrol(f->s, 3, "carol", T0, 0);
        /* 4: revoked long ago. */
        enrol(f->s, 4, "dave", T0, 0);
        store_audit a = { .time = T0 + 1, .event = "revoke", .user = "dave", .caller_uid = 0, .caller_pid = 1 };
        assert_int_equal(store_device_revoke(f->s, "dev_0004", "admin", &a), 1);

        int64_t now = T0 + 200;
        int r = store_prune(f->s, now);
        assert_true(r >= 1);
        assert_int_equal(rotate(f->s, 2, 1, 2, now, 0, &rr), -ENOENT); /* pruned */
        assert_int_equal(rotate(f->s, 1, 1, 3, now, 0, &rr), -EKEYREVOKED); /* kept: reuse detected */
        assert_true(rr.reuse_detected);
        assert_int_equal(rotate_until(f->s, 3, 1, 2, now, 0, 0, &rr), 0);
        assert_int_equal(store_device_get(f->s, "dev_0004", &d), 0); /* revoked recently: kept */

        /* After the retention: revoked devices, devices without tokens,
         * old rotated tokens and old audit rows go. */
        now = T0 + STORE_RETENTION + DAY;
        assert_int_equal(rotate_until(f->s, 3, 2, 3, now - 10, 0, 0, &rr), 0); /* carol stays active */
        r = store_prune(f->s, now);
        assert_true(r > 0);
        assert_int_equal(store_device_get(f->s, "dev_0004", &d), -ENOENT);
        assert_int_equal(store_device_get(f->s, "dev_0002", &d), -ENOENT);
        assert_int_equal(store_device_get(f->s, "dev_0003", &d), 0);
        assert_int_equal(rotate(f->s, 3, 1, 9, now, 0, &rr), -ENOENT); /* rotated long ago: forgotten */
        assert_int_equal(rotate(f->s, 3, 3, 4, now, 0, &rr), 0);       /* the live one works */

        _cleanup_(freep) store_audit_entry *v = NULL;
        size_t n = 0;
        bool more = false;
        assert_int_equal(store_audit_list(f->s, NULL, 0, 1000, &v, &n, &more), 0);
        for (size_t i = 0; i < n; i++)
                assert_true(v[i].time >= now - STORE_RETENTION);
        assert_int_equal(store_prune(f->s, now), 0); /* nothing left to do */
}

/* ------------------------------------------------------------ revocation log */

static void list_revocations(tokend_store *s, int64_t after, int64_t valid_at, size_t limit, store_revocation **v,
                             size_t *n, int64_t *seq) {
        assert_int_equal(store_revocations_list(s, after, valid_at, limit, v, n, seq), 0);
}

static void test_revocation_log(void **state) {
        fixture *f = *state;
        store_revocation *v = NULL;
        store_rotate_result rr;
        size_t n = 99;
        int64_t seq = -1;

        /* Nothing yet: seq 0. Hostile arguments are refused. */
        list_revocations(f->s, 0, T0, 10, &v, &n, &seq);
        assert_int_equal(n, 0);
        assert_null(v);
        assert_int_equal(seq, 0);
        assert_int_equal(store_revocations_list(f->s, -1, T0, 10, &v, &n, &seq), -EINVAL);
        assert_int_equal(store_revocations_list(f->s, 0, T0, 0, &v, &n, &seq), -EINVAL);
        assert_int_equal(store_revocations_list(f->s, 0, T0, STORE_PAGE_MAX + 1, &v, &n, &seq), -EINVAL);

        /* A device revocation, a jti, a reuse detection: one entry each, in
         * order; revoking again adds nothing. */
        enrol(f->s, 1, "alice", T0, T0 + 7 * DAY);
        enrol(f->s, 2, "bob", T0, T0 + 7 * DAY);
        store_audit a = { .time = T0 + 10, .event = "logout", .user = "alice", .caller_uid = 0, .caller_pid = 1 };
        assert_int_equal(store_device_revoke(f->s, "dev_0001", "logout", &a), 1);
        assert_int_equal(store_device_revoke(f->s, "dev_0001", "admin", &a), 0);
        assert_int_equal(store_jti_revoke(f->s, "jti-one", T0 + 900), 0);
        store_set_feed_horizon(f->s, 2 * DAY);
        store_set_feed_horizon(f->s, 60); /* never shrinks */
        assert_int_equal(rotate(f->s, 2, 1, 2, T0 + 20, 0, &rr), 0);
        assert_int_equal(rotate(f->s, 2, 1, 3, T0 + 30, 0, &rr), -EKEYREVOKED);

        list_revocations(f->s, 0, T0, 10, &v, &n, &seq);
        assert_int_equal(n, 3);
        assert_int_equal(seq, 3);
        assert_int_equal(v[0].seq, 1);
        assert_int_equal(v[0].kind, STORE_REVOKED_DEVICE);
        assert_string_equal(v[0].id, "dev_0001");
        assert_int_equal(v[0].at, T0 + 10);
        assert_int_equal(v[0].until, T0 + 10 + DAY); /* the default horizon */
        assert_int_equal(v[1].kind, STORE_REVOKED_JTI);
        assert_string_equal(v[1].id, "jti-one");
        assert_int_equal(v[1].until, T0 + 900);
        assert_int_equal(v[2].kind, STORE_REVOKED_DEVICE);
        assert_string_equal(v[2].id, "dev_0002");
        assert_int_equal(v[2].until, T0 + 30 + 2 * DAY);
        free(v);

        /* After a seq; by pages (seq = the last entry while more follow). */
        list_revocations(f->s, 1, T0, 10, &v, &n, &seq);
        assert_int_equal(n, 2);
        assert_int_equal(v[0].seq, 2);
        assert_int_equal(seq, 3);
        free(v);
        list_revocations(f->s, 0, T0, 2, &v, &n, &seq);
        assert_int_equal(n, 2);
        assert_int_equal(seq, 2);
        free(v);
        list_revocations(f->s, 3, T0, 2, &v, &n, &seq);
        assert_int_equal(n, 0);
        assert_int_equal(seq, 3);

        /* An entry that can refuse nothing any more is not listed; the high
         * mark still moves past it. */
        list_revocations(f->s, 0, T0 + 1000, 10, &v, &n, &seq);
        assert_int_equal(n, 2);
        assert_string_equal(v[0].id, "dev_0001");
        assert_string_equal(v[1].id, "dev_0002");
        assert_int_equal(seq, 3);
        free(v);

        /* Pruned, reopened: the numbers are never handed out again. */
        assert_true(store_prune(f->s, T0 + 30 * DAY) >= 3);
        store_close(f->s);
        f->s = NULL;
        assert_int_equal(store_open(f->db, &f->s), 0);
        list_revocations(f->s, 0, 0, 10, &v, &n, &seq);
        assert_int_equal(n, 0);
        assert_int_equal(seq, 3);
        assert_int_equal(store_jti_revoke(f->s, "jti-two", T0 + 31 * DAY), 0);
        list_revocations(f->s, 0, 0, 10, &v, &n, &seq);
        assert_int_equal(n, 1);
        assert_int_equal(v[0].seq, 4);
        assert_int_equal(seq, 4);
        free(v);
}

/* ------------------------------------------------------------ locking */

static void test_busy(void **state) {
        SQLITE_ONLY();
        fixture *f = *state;
        store_device d;
        sqlite3 *db = NULL;

        enrol(f->s, 1, "alice", T0, 0);
        assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);

        /* Bounded: the write gives up with the busy-timeout error instead of
         * waiting forever (the alarm only guards against such a hang). */
        alarm(60);
        assert_int_equal(store_device_touch(f->s, "dev_0001", T0 + 1), -EBUSY);
        alarm(0);

        /* WAL: readers are not blocked by the writer. */
        assert_int_equal(store_device_get(f->s, "dev_0001", &d), 0);

        assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(store_device_touch(f->s, "dev_0001", T0 + 1), 0); /* control */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_open_and_migrate, setup, teardown),
                cmocka_unit_test_setup_teardown(test_migrate_from_2, setup, teardown),
                cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
                cmocka_unit_test_setup_teardown(test_device_cap, setup, teardown),
                cmocka_unit_test_setup_teardown(test_device_cap_concurrent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_happy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_check_only, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_reuse_revokes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_grace, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_concurrent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
                cmocka_unit_test_setup_teardown(test_batch_isolation, setup, teardown),
                cmocka_unit_test_setup_teardown(test_jtis, setup, teardown),
                cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_audit_coalesce, setup, teardown),
                cmocka_unit_test_setup_teardown(test_migrate_from_1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_published_keys, setup, teardown),
                cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
                cmocka_unit_test_setup_teardown(test_revocation_log, setup, teardown),
                cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
