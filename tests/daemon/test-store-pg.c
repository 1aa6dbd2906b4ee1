/* SPDX-License-Identifier: MIT */
/* What only the PostgreSQL backend has, on the real server that
 * tests/with-postgresql started (TOKEND_TEST_DATABASE; run through
 * tests/daemon/test-store-on-postgresql.sh): versioned migrations raced by
 * two issuers, from the previous schema, and refused from a newer tokend; 32 concurrent rotations of
 * one token through two store handles (two issuers) with and without a
 * grace; a held lock and a stopped server answered -EBUSY, never as a
 * verdict on the token; a forced deadlock retried to success; revocations
 * written by two issuers at once read back by a feed reader without a gap
 * (seq order is commit order); a COMMIT whose answer is lost (a proxy acts
 * out the crash) resolved by asking the server, never left to a retry that
 * would be reuse. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "tokend-store.h"
#include "tokend-store-pg-sql.h" /* pg_migrations[], to build a database of the previous schema */

#define T0 ((int64_t) 1700000000)
#define RACERS 32

static const char *database(void) {
        return getenv("TOKEND_TEST_DATABASE");
}

static PGconn *connect_db(void) {
        PGconn *pq = PQconnectdb(database());
        assert_int_equal(PQstatus(pq), CONNECTION_OK);
        return pq;
}

/* Run sql on pq; the result status must be want. */
static void sql_expect(PGconn *pq, const char *sql, ExecStatusType want) {
        PGresult *res = PQexec(pq, sql);
        if (PQresultStatus(res) != want)
                fail_msg("%s: %s", sql, PQerrorMessage(pq));
        PQclear(res);
}

static void sql(PGconn *pq, const char *q) {
        sql_expect(pq, q, PGRES_COMMAND_OK);
}

static int setup(void **state) {
        if (!database() || !*database()) {
                print_message("TOKEND_TEST_DATABASE is not set: run through tests/with-postgresql\n");
                return -1;
        }
        PGconn *pq = connect_db();
        sql(pq, "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        PQfinish(pq);
        tokend_store *s = NULL;
        assert_int_equal(store_open(database(), &s), 0);
        *state = s;
        return 0;
}

static int teardown(void **state) {
        tokend_store *s = *state;
        if (s)
                assert_int_equal(store_integrity_check(s), 0);
        store_close(s);
        return 0;
}

static void hash_of(uint8_t h[STORE_HASH_LEN], unsigned gen) {
        memset(h, 0x5a, STORE_HASH_LEN);
        h[0] = (uint8_t) gen;
        h[1] = (uint8_t) (gen >> 8);
}

static void enrol(tokend_store *s, const char *id) {
        store_device d = { .uid = 1000, .created = T0, .last_used = T0 };
        uint8_t h[STORE_HASH_LEN];
        snprintf(d.id, sizeof d.id, "%s", id);
        snprintf(d.user, sizeof d.user, "alice");
        hash_of(h, 1);
        assert_int_equal(store_device_create(s, &d, h, 0, 100, NULL), 0);
}

static int rotate(tokend_store *s, const char *id, unsigned from, unsigned to, int64_t now, int64_t grace,
                  store_rotate_result *rr) {
        uint8_t old[STORE_HASH_LEN], new[STORE_HASH_LEN];
        hash_of(old, from);
        hash_of(new, to);
        return store_refresh_rotate(s, id, old, new, now, 0, grace, NULL, rr);
}

/* ------------------------------------------------------------ migrations */

typedef struct opener {
        pthread_barrier_t *barrier;
        int r, version;
} opener;

static void *open_one(void *p) {
        opener *o = p;
        tokend_store *s = NULL;
        pthread_barrier_wait(o->barrier);
        o->r = store_open(database(), &s);
        if (o->r == 0)
                o->version = store_schema_version(s);
        store_close(s);
        return NULL;
}

/* Two issuers starting at once on an empty database: one migrates, both
 * open the same schema; a newer schema is refused, never downgraded. */
static void test_migrations(void **state) {
        tokend_store *s = *state;
        int version = store_schema_version(s);
        assert_true(version >= 1);

        PGconn *pq = connect_db();
        sql(pq, "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        pthread_barrier_t barrier;
        pthread_t t[2];
        opener o[2] = {};
        pthread_barrier_init(&barrier, NULL, 2);
        for (unsigned i = 0; i < 2; i++) {
                o[i].barrier = &barrier;
                assert_int_equal(pthread_create(&t[i], NULL, open_one, &o[i]), 0);
        }
        for (unsigned i = 0; i < 2; i++)
                pthread_join(t[i], NULL);
        pthread_barrier_destroy(&barrier);
        for (unsigned i = 0; i < 2; i++) {
                assert_int_equal(o[i].r, 0);
                assert_int_equal(o[i].version, version);
        }
        sql_expect(pq, "SELECT version FROM tokend_schema", PGRES_TUPLES_OK);

        tokend_store *n = NULL;
        sql(pq, "UPDATE tokend_schema SET version = 99");
        assert_int_equal(store_open(database(), &n), -EPROTONOSUPPORT);
        char back[64];
        snprintf(back, sizeof back, "UPDATE tokend_schema SET version = %d", version);
        sql(pq, back);
        assert_int_equal(store_open(database(), &n), 0); /* control */
        store_close(n);
        PQfinish(pq);

        /* No server there: a clear refusal, not a hang. */
        assert_int_equal(store_open("postgresql:///tokend?host=/nonexistent", &n), -ECONNREFUSED);
}

/* A database of schema 1 (the first release) with data in it is migrated
 * in place through every later migration: its devices and tokens keep
 * working, the new tables are there, and what was revoked before is in the
 * revocation log (backfilled), numbered before anything revoked after. */
static void test_migrate_from_previous(void **state) {
        tokend_store *s = NULL;
        int latest = store_schema_version(*state);
        assert_int_equal(latest, (int) ELEMENTSOF(pg_migrations));

        PGconn *pq = connect_db();
        sql(pq, "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        sql(pq, pg_migrations[0]);
        sql(pq, "CREATE TABLE tokend_schema (version integer NOT NULL); INSERT INTO tokend_schema VALUES (1)");
        PQfinish(pq);
        assert_int_equal(store_open(database(), &s), 0);
        enrol(s, "dev_old");
        store_device gone = { .uid = 1000, .created = T0, .last_used = T0, .id = "dev_gone", .user = "alice" };
        uint8_t h[STORE_HASH_LEN];
        hash_of(h, 500);
        assert_int_equal(store_device_create(s, &gone, h, 0, 100, NULL), 0);
        assert_int_equal(store_device_revoke(s, "dev_gone", "admin", NULL), 1);
        store_close(s);

        /* Now the same database as left by schema 1, reopened. */
        pq = connect_db();
        sql(pq, "DROP TABLE published_keys; DROP TABLE revocations; DROP TABLE revocation_seq; DROP TABLE tx_marks; "
                "UPDATE tokend_schema SET version = 1");
        PQfinish(pq);
        assert_int_equal(store_open(database(), &s), 0);
        assert_int_equal(store_schema_version(s), latest);
        store_rotate_result rr;
        assert_int_equal(rotate(s, "dev_old", 1, 2, T0 + 1, 0, &rr), 0);
        assert_int_equal(store_key_publish(s, "k1", "{}", T0, T0 + 10), 0);
        store_published_key *v = NULL;
        size_t n = 0;
        assert_int_equal(store_keys_list(s, T0, &v, &n), 0);
        assert_int_equal(n, 1);
        free(v);

        store_revocation *rv = NULL;
        int64_t seq = 0;
        assert_int_equal(store_revocations_list(s, 0, 0, 10, &rv, &n, &seq), 0);
        assert_int_equal(n, 1);
        assert_string_equal(rv[0].id, "dev_gone");
        assert_int_equal(rv[0].seq, 1);
        assert_int_equal(seq, 1);
        free(rv);
        assert_int_equal(store_device_revoke(s, "dev_old", "admin", NULL), 1);
        assert_int_equal(store_revocations_list(s, 1, 0, 10, &rv, &n, &seq), 0);
        assert_int_equal(n, 1);
        assert_string_equal(rv[0].id, "dev_old");
        assert_int_equal(seq, 2);
        free(rv);
        store_close(s);
}

/* ------------------------------------------------------------ two issuers */

typedef struct racer {
        tokend_store *s;
        pthread_barrier_t *barrier;
        unsigned to;
        int64_t grace;
        int r;
        store_rotate_result rr;
} racer;

static void *race(void *p) {
        racer *x = p;
        pthread_barrier_wait(x->barrier);
        x->r = rotate(x->s, "dev_race", 1, x->to, T0 + 10, x->grace, &x->rr);
        return NULL;
}

/* RACERS refreshes of one token, split across two handles (two issuers). */
static void race_two_issuers(tokend_store *a, int64_t grace) {
        tokend_store *b = NULL;
        pthread_barrier_t barrier;
        pthread_t t[RACERS];
        racer x[RACERS];
        unsigned won = 0, reuse = 0, revoked = 0, already = 0;

        assert_int_equal(store_open(database(), &b), 0);
        enrol(a, "dev_race");
        pthread_barrier_init(&barrier, NULL, RACERS);
        for (unsigned i = 0; i < RACERS; i++) {
                x[i] = (racer){ .s = i % 2 ? b : a, .barrier = &barrier, .to = 2 + i, .grace = grace };
                assert_int_equal(pthread_create(&t[i], NULL, race, &x[i]), 0);
        }
        for (unsigned i = 0; i < RACERS; i++)
                pthread_join(t[i], NULL);
        pthread_barrier_destroy(&barrier);
        for (unsigned i = 0; i < RACERS; i++) {
                won += x[i].r == 0;
                already += x[i].r == -EALREADY;
                revoked += x[i].r == -EKEYREVOKED;
                reuse += x[i].r == -EKEYREVOKED && x[i].rr.reuse_detected;
        }
        print_message("grace %lld: %u won, %u -EALREADY, %u -EKEYREVOKED (%u detected the reuse)\n",
                      (long long) grace, won, already, revoked, reuse);
        assert_int_equal(won, 1);
        store_device d;
        assert_int_equal(store_device_get(b, "dev_race", &d), 0);
        if (grace == 0) {
                /* The first loser proves theft and revokes; the rest find it revoked. */
                assert_int_equal(reuse, 1);
                assert_int_equal(revoked, RACERS - 1);
                assert_true(d.revoked);
                assert_string_equal(d.revoke_reason, "refresh_reuse");
        } else {
                /* One successor; every other racer is told it lost the race. */
                assert_int_equal(already, RACERS - 1);
                assert_false(d.revoked);
                store_rotate_result rr;
                unsigned winner = 0;
                for (unsigned i = 0; i < RACERS; i++)
                        if (x[i].r == 0)
                                winner = x[i].to;
                assert_int_equal(rotate(b, "dev_race", winner, 100, T0 + 11, grace, &rr), 0);
                assert_int_equal(rr.generation, 3);
        }
        store_close(b);
}

static void test_race_no_grace(void **state) {
        race_two_issuers(*state, 0);
}

static void test_race_grace(void **state) {
        race_two_issuers(*state, 60);
}

/* A revocation through one issuer is seen by the other at once. */
static void test_revoke_seen_by_other(void **state) {
        tokend_store *a = *state, *b = NULL;
        store_device d;
        store_rotate_result rr;

        assert_int_equal(store_open(database(), &b), 0);
        enrol(a, "dev_shared");
        assert_int_equal(store_device_get(b, "dev_shared", &d), 0);
        assert_false(d.revoked);
        assert_int_equal(store_device_revoke(a, "dev_shared", "admin", NULL), 1);
        assert_int_equal(store_device_get(b, "dev_shared", &d), 0);
        assert_true(d.revoked);
        assert_int_equal(rotate(b, "dev_shared", 1, 2, T0 + 1, 0, &rr), -EKEYREVOKED);
        assert_false(rr.reuse_detected);
        assert_int_equal(store_jti_revoke(b, "jti-1", T0 + 60), 0);
        assert_int_equal(store_jti_is_revoked(a, "jti-1"), 1);
        assert_int_equal(store_jti_is_revoked(a, "jti-2"), 0); /* control */
        store_close(b);
}

/* ------------------------------------------------------------ failures */

/* Another session holds the device row: the rotation and the revocation
 * give up with -EBUSY after lock_timeout, change nothing, call nothing
 * reuse; once the lock is gone both work (control). */
static void test_lock_busy(void **state) {
        tokend_store *s = *state;
        store_rotate_result rr;
        store_device d;

        enrol(s, "dev_locked");
        PGconn *pq = connect_db();
        sql(pq, "BEGIN");
        sql_expect(pq, "SELECT * FROM devices WHERE id = 'dev_locked' FOR UPDATE", PGRES_TUPLES_OK);
        assert_int_equal(rotate(s, "dev_locked", 1, 2, T0 + 1, 0, &rr), -EBUSY);
        assert_int_equal(store_device_revoke(s, "dev_locked", "admin", NULL), -EBUSY);
        sql(pq, "ROLLBACK");
        PQfinish(pq);

        assert_int_equal(store_device_get(s, "dev_locked", &d), 0);
        assert_false(d.revoked);
        assert_int_equal(rotate(s, "dev_locked", 1, 2, T0 + 2, 0, &rr), 0);
        assert_int_equal(rr.generation, 2);
}

typedef struct rotor {
        tokend_store *s;
        int r;
        store_rotate_result rr;
} rotor;

static void *rotate_dl(void *p) {
        rotor *x = p;
        x->r = rotate(x->s, "dev_dl", 1, 2, T0 + 1, 0, &x->rr);
        return NULL;
}

/* Wait until a session of ours waits for a lock (an event, not a time). */
static void wait_for_lock_waiter(PGconn *pq) {
        for (;;) {
                PGresult *res = PQexec(pq, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tokend' "
                                           "AND wait_event_type = 'Lock'");
                assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
                bool waiting = strtol(PQgetvalue(res, 0, 0), NULL, 10) > 0;
                PQclear(res);
                if (waiting)
                        return;
                sql_expect(pq, "SELECT pg_sleep(0.01)", PGRES_TUPLES_OK);
        }
}

/* A deadlock against the rotation's lock order (token row, then device
 * row): the server aborts the rotation (40P01; the other session waits
 * longer before it checks), the store retries it, and it succeeds once. */
static void test_deadlock_retried(void **state) {
        tokend_store *s = *state;
        pthread_t t;
        rotor x = { .s = s };
        uint8_t h[STORE_HASH_LEN];
        char q[256];

        enrol(s, "dev_dl");
        hash_of(h, 1);
        PGconn *pq = connect_db(), *watch = connect_db();
        sql(pq, "SET deadlock_timeout = '10min'; BEGIN");
        int n = snprintf(q, sizeof q, "SELECT * FROM refresh_tokens WHERE hash = '\\x");
        for (size_t i = 0; i < STORE_HASH_LEN; i++)
                n += snprintf(q + n, sizeof q - (size_t) n, "%02x", h[i]);
        snprintf(q + n, sizeof q - (size_t) n, "' FOR UPDATE");
        sql_expect(pq, q, PGRES_TUPLES_OK);
        assert_int_equal(pthread_create(&t, NULL, rotate_dl, &x), 0);
        wait_for_lock_waiter(watch); /* the rotation holds the device, waits for the token */
        sql_expect(pq, "SELECT * FROM devices WHERE id = 'dev_dl' FOR UPDATE", PGRES_TUPLES_OK);
        sql(pq, "ROLLBACK");
        pthread_join(t, NULL);
        PQfinish(pq);
        PQfinish(watch);

        assert_int_equal(x.r, 0);
        assert_int_equal(x.rr.generation, 2);
        assert_false(x.rr.reuse_detected);
        store_rotate_result rr;
        assert_int_equal(rotate(s, "dev_dl", 2, 3, T0 + 2, 0, &rr), 0); /* exactly one rotation happened */
}

/* The server stopped and started again (pg_ctl as nobody): while it is down
 * every call is -EBUSY and nothing is judged; after, the pooled
 * connections are replaced and the same token rotates (no false reuse). */
#define FEED_WRITERS 2
#define FEED_EACH 100

typedef struct feed_writer {
        tokend_store *s;
        unsigned n;
} feed_writer;

static void *feed_write(void *p) {
        feed_writer *w = p;
        char jti[32];
        for (unsigned i = 0; i < FEED_EACH; i++) {
                snprintf(jti, sizeof jti, "w%u-%u", w->n, i);
                if (store_jti_revoke(w->s, jti, T0 + 100000) != 0)
                        return (void *) 1;
        }
        return NULL;
}

/* Two issuers (handles) revoke at once while a verifier-like reader asks
 * "after my seq" over and over: it must end up with every entry exactly
 * once. With seq out of a SEQUENCE it would skip the ones whose
 * transaction committed after a higher one was seen. */
static void test_revocation_order(void **state) {
        tokend_store *s = *state, *other = NULL;
        feed_writer w[FEED_WRITERS] = { { s, 0 }, { NULL, 1 } };
        pthread_t th[FEED_WRITERS];
        bool seen[FEED_WRITERS * FEED_EACH + 1] = { false };
        size_t got = 0, rounds = 0;
        int64_t after = 0;

        assert_int_equal(store_open(database(), &other), 0);
        w[1].s = other;
        for (unsigned i = 0; i < FEED_WRITERS; i++)
                assert_int_equal(pthread_create(&th[i], NULL, feed_write, &w[i]), 0);
        while (got < FEED_WRITERS * FEED_EACH) {
                assert_true(rounds++ < 1000000); /* a skipped entry never comes: no endless loop */
                store_revocation *v = NULL;
                size_t n = 0;
                int64_t seq = 0;
                assert_int_equal(store_revocations_list(s, after, 0, 7, &v, &n, &seq), 0);
                for (size_t i = 0; i < n; i++) {
                        assert_true(v[i].seq > after && v[i].seq <= FEED_WRITERS * FEED_EACH);
                        assert_false(seen[v[i].seq]);
                        seen[v[i].seq] = true;
                        got++;
                }
                assert_true(seq >= after);
                after = seq;
                free(v);
        }
        for (unsigned i = 0; i < FEED_WRITERS; i++) {
                void *ret = (void *) 1;
                pthread_join(th[i], &ret);
                assert_null(ret);
        }
        for (size_t i = 1; i <= FEED_WRITERS * FEED_EACH; i++)
                assert_true(seen[i]);
        store_close(other);
}

static void test_server_restart(void **state) {
        tokend_store *s = *state;
        const char *bin = getenv("TOKEND_TEST_PGBIN"), *data = getenv("TOKEND_TEST_PGDATA"),
                   *sock = getenv("TOKEND_TEST_PGSOCKET");
        store_rotate_result rr;
        store_device d;
        char cmd[1024];

        if (!bin || !data || !sock)
                skip();
        enrol(s, "dev_restart");
        assert_int_equal(store_device_get(s, "dev_restart", &d), 0); /* a pooled connection exists */

        snprintf(cmd, sizeof cmd, "cd %s && runuser -u nobody -- %s/pg_ctl -D %s -m fast -w stop >/dev/null", sock,
                 bin, data);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(rotate(s, "dev_restart", 1, 2, T0 + 1, 0, &rr), -EBUSY);
        assert_int_equal(store_device_get(s, "dev_restart", &d), -EBUSY);
        assert_int_equal(store_jti_is_revoked(s, "x"), -EBUSY);
        assert_int_equal(store_device_revoke(s, "dev_restart", "admin", NULL), -EBUSY);

        snprintf(cmd, sizeof cmd,
                 "cd %s && runuser -u nobody -- %s/pg_ctl -D %s -l %s/server.log -o \"-k %s -c listen_addresses=''"
                 " -c max_connections=300\" -w start >/dev/null", sock, bin, data, sock, sock);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(store_device_get(s, "dev_restart", &d), 0);
        assert_false(d.revoked);
        assert_int_equal(rotate(s, "dev_restart", 1, 2, T0 + 2, 0, &rr), 0);
        assert_false(rr.reuse_detected);
}

/* ------------------------------------------------------------ a lost COMMIT answer */

/* A Unix-socket proxy in front of the test server that, when armed, acts
 * out a crash at the next COMMIT: it passes the COMMIT on and hangs up on
 * both sides (the server commits, the client never hears of it), or hangs
 * up without passing it (the server rolls back). Every other byte passes
 * as it is; the client side is parsed only to find message boundaries. */
enum { PROXY_PASS, PROXY_LOSE_ANSWER, PROXY_LOSE_COMMIT };

typedef struct proxy {
        char dir[64]; /* the client's host=: DIR/.s.PGSQL.5432 */
        struct sockaddr_un upstream;
        int listen_fd;
        pthread_t thread;
        atomic_int mode;  /* for the next COMMIT, then PROXY_PASS again */
        atomic_int fired; /* COMMITs acted on */
} proxy;

typedef struct relay_args {
        proxy *px;
        int cfd, sfd;
} relay_args;

static bool write_all(int fd, const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w <= 0)
                        return false;
                p += w;
                n -= (size_t) w;
        }
        return true;
}

static uint32_t be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/* Client messages in buf[0..*have): the complete ones go to sfd (or are
 * acted on); false when the connection is to end. */
static bool relay_client(relay_args *x, uint8_t *buf, size_t *have, bool *started) {
        static const uint8_t commit[] = "COMMIT";
        size_t off = 0;
        for (;;) {
                size_t hdr = *started ? 5 : 4; /* the startup packet has no type byte */
                if (*have - off < hdr)
                        break;
                size_t total = (*started ? 1 : 0) + be32(buf + off + hdr - 4);
                assert_true(total >= hdr - 1 && total <= 65536);
                if (*have - off < total)
                        break;
                const uint8_t *m = buf + off;
                int mode = PROXY_PASS;
                if (*started && m[0] == 'Q' && total == 5 + sizeof commit && memcmp(m + 5, commit, sizeof commit) == 0)
                        mode = atomic_exchange(&x->px->mode, PROXY_PASS);
                if (mode != PROXY_LOSE_COMMIT && !write_all(x->sfd, m, total))
                        return false;
                if (mode != PROXY_PASS) {
                        atomic_fetch_add(&x->px->fired, 1);
                        return false;
                }
                /* SSLRequest and GSSENCRequest come before the startup packet */
                if (!*started && !(total == 8 && (be32(m + 4) == 80877103 || be32(m + 4) == 80877104)))
                        *started = true;
                off += total;
        }
        memmove(buf, buf + off, *have - off);
        *have -= off;
        return true;
}

static void *relay(void *p) {
        relay_args *x = p;
        uint8_t buf[65536 + 8192], down[8192];
        size_t have = 0;
        bool started = false;
        struct pollfd fds[2] = { { .fd = x->cfd, .events = POLLIN }, { .fd = x->sfd, .events = POLLIN } };

        while (poll(fds, 2, -1) > 0) {
                if (fds[1].revents) {
                        ssize_t n = read(x->sfd, down, sizeof down);
                        if (n <= 0 || !write_all(x->cfd, down, (size_t) n))
                                break;
                }
                if (fds[0].revents) {
                        ssize_t n = read(x->cfd, buf + have, sizeof buf - have);
                        if (n <= 0)
                                break;
                        have += (size_t) n;
                        if (!relay_client(x, buf, &have, &started))
                                break;
                }
        }
        close(x->cfd);
        close(x->sfd);
        free(x);
        return NULL;
}

static void *proxy_accept(void *p) {
        proxy *px = p;
        for (;;) {
                int cfd = accept(px->listen_fd, NULL, NULL);
                if (cfd < 0)
                        return NULL; /* proxy_stop shut it down */
                relay_args *x = malloc(sizeof *x);
                assert_non_null(x);
                *x = (relay_args){ .px = px, .cfd = cfd, .sfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) };
                assert_int_equal(connect(x->sfd, (struct sockaddr *) &px->upstream, sizeof px->upstream), 0);
                pthread_t t;
                assert_int_equal(pthread_create(&t, NULL, relay, x), 0);
                pthread_detach(t);
        }
}

static void proxy_start(proxy *px, const char *server_dir) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        *px = (proxy){ .upstream.sun_family = AF_UNIX };
        snprintf(px->dir, sizeof px->dir, "/tmp/td-pgproxy-XXXXXX");
        assert_non_null(mkdtemp(px->dir));
        snprintf(px->upstream.sun_path, sizeof px->upstream.sun_path, "%s/.s.PGSQL.5432", server_dir);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/.s.PGSQL.5432", px->dir);
        px->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(bind(px->listen_fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(px->listen_fd, 16), 0);
        assert_int_equal(pthread_create(&px->thread, NULL, proxy_accept, px), 0);
}

static void proxy_stop(proxy *px) {
        char path[sizeof px->dir + 16];
        shutdown(px->listen_fd, SHUT_RDWR);
        pthread_join(px->thread, NULL);
        close(px->listen_fd);
        snprintf(path, sizeof path, "%s/.s.PGSQL.5432", px->dir);
        unlink(path);
        rmdir(px->dir);
}

/* The answer to a rotation's COMMIT lost, as in a crash of the server at
 * that moment. Answering -EBUSY (503) would make the client retry a
 * rotation that may have happened: reuse, its device revoked by the
 * outage. The store asks the server instead: committed → the rotation's
 * own result; rolled back → the rotation runs again. Either way the
 * client gets its successor, and exactly one rotation happened. */
static void test_commit_answer_lost(void **state) {
        tokend_store *s = *state, *p = NULL;
        const char *server_dir = getenv("TOKEND_TEST_PGSOCKET");
        store_rotate_result rr;
        char uri[512];
        proxy px;

        if (!server_dir)
                skip();
        proxy_start(&px, server_dir);
        snprintf(uri, sizeof uri, "%s&host=%s", database(), px.dir); /* the last host= counts */
        assert_int_equal(store_open(uri, &p), 0);
        enrol(s, "dev_lost");

        atomic_store(&px.mode, PROXY_LOSE_ANSWER);
        assert_int_equal(rotate(p, "dev_lost", 1, 2, T0 + 1, 0, &rr), 0);
        assert_int_equal(rr.generation, 2);
        assert_int_equal(atomic_load(&px.fired), 1); /* the fault happened, through the proxy */
        atomic_store(&px.mode, PROXY_LOSE_COMMIT);
        assert_int_equal(rotate(p, "dev_lost", 2, 3, T0 + 2, 0, &rr), 0);
        assert_int_equal(rr.generation, 3);
        assert_int_equal(atomic_load(&px.fired), 2);
        assert_false(rr.reuse_detected);

        /* one rotation each: the chain goes on, and an old token is reuse (control) */
        assert_int_equal(rotate(s, "dev_lost", 3, 4, T0 + 3, 0, &rr), 0);
        assert_int_equal(rr.generation, 4);
        assert_int_equal(rotate(s, "dev_lost", 2, 5, T0 + 4, 0, &rr), -EKEYREVOKED);
        assert_true(rr.reuse_detected);
        store_close(p);
        proxy_stop(&px);
}

static long marks(PGconn *pq, const char *where) {
        char q[256];
        snprintf(q, sizeof q, "SELECT count(*) FROM tx_marks WHERE %s", where);
        PGresult *res = PQexec(pq, q);
        assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
        long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        return n;
}

/* Every write transaction leaves its mark (what decides a lost COMMIT
 * answer), stamped with the server's clock whatever the caller's: a prune
 * by a tokend whose clock is far ahead (now + 1 day) keeps the fresh marks
 * and drops those older than PG_MARK_KEEP by the server's clock. */
static void test_commit_marks(void **state) {
        tokend_store *s = *state;
        store_rotate_result rr;
        PGconn *pq = connect_db();

        sql(pq, "DELETE FROM tx_marks");
        enrol(s, "dev_marks");
        assert_int_equal(rotate(s, "dev_marks", 1, 2, T0 + 1, 0, &rr), 0);
        assert_int_equal(marks(pq, "true"), 2);
        assert_int_equal(marks(pq, "left(id, 16) = lpad(to_hex(extract(epoch FROM now())::bigint), 16, '0') "
                                   "OR left(id, 16) = lpad(to_hex(extract(epoch FROM now())::bigint - 1), 16, '0')"),
                         2); /* the server's clock (this second or the last), not T0 */
        /* one made 10 minutes ago by the server's clock */
        sql(pq, "INSERT INTO tx_marks SELECT lpad(to_hex(extract(epoch FROM now())::bigint - 600), 16, '0') "
                "|| '0000000000000000'");
        assert_true(store_prune(s, (int64_t) time(NULL) + 86400) >= 0);
        assert_int_equal(marks(pq, "true"), 2 + 1); /* the prune's own transaction left one */
        assert_int_equal(marks(pq, "right(id, 16) = '0000000000000000'"), 0);
        PQfinish(pq);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_commit_marks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
                cmocka_unit_test_setup_teardown(test_migrate_from_previous, setup, teardown),
                cmocka_unit_test_setup_teardown(test_race_no_grace, setup, teardown),
                cmocka_unit_test_setup_teardown(test_race_grace, setup, teardown),
                cmocka_unit_test_setup_teardown(test_revoke_seen_by_other, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lock_busy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deadlock_retried, setup, teardown),
                cmocka_unit_test_setup_teardown(test_revocation_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_server_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_commit_answer_lost, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
