/* SPDX-License-Identifier: MIT */
/* The PostgreSQL backend of the store: connections, statements,
 * transactions and migrations (tokend-store-pg.h); its operations are
 * tokend-store-pg.c.
 *
 * Each tokend has a small pool of connections (opened on first use,
 * reopened after the server went away); statements are prepared once per
 * connection. Every write is one READ COMMITTED transaction.
 *
 * Failures: a serialization failure or deadlock (SQLSTATE 40001, 40P01) is
 * retried up to PG_ATTEMPTS times with a random backoff; so is a
 * transaction whose connection died before its COMMIT was sent (nothing of
 * it was committed). What still fails, and any lost connection, is -EBUSY
 * (tokend answers 503 + Retry-After): never a verdict about the token, so a
 * database error is never taken for reuse and never revokes anything.
 * A COMMIT whose answer was lost (the server crashed or restarted under
 * it) may have committed: answering -EBUSY then would make the client retry
 * a rotation that happened, which is reuse. So every transaction inserts a
 * mark of its own at BEGIN (a row of tx_marks, random, committed or not
 * with the rest) and learns its id; after a lost COMMIT answer the store
 * asks the server, once it answers again (up to PG_OUTCOME_WAIT_MS), until
 * the id is no longer in progress (txid_status), then whether the mark is
 * there: yes → the transaction's own result; no → run it again; no answer
 * in time → -ETIMEDOUT (503 too). The id alone cannot tell: after a crash the server hands out
 * again the ids it had not yet written to its WAL, so "committed" can be
 * another transaction's (seen in tests: an acknowledged rotation that was
 * not in the database). Marks are pruned after PG_MARK_KEEP seconds. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokend-store-pg.h"

#define PG_POOL 8           /* connections per tokend */
#define PG_ATTEMPTS 5       /* tries of one transaction */
#define PG_BACKOFF_MS 8     /* first retry waits up to this, doubling */
#define PG_PARAMS_MAX 8
#define PG_OUTCOME_WAIT_MS 10000 /* a lost COMMIT answer: how long to wait for the server to tell */

struct store_backend {
        pthread_mutex_t lock; /* busy */
        pthread_cond_t conn_free;
        char *conninfo;
        pgconn conns[PG_POOL];
        bool busy[PG_POOL];
        int version;
};

void pg_clearp(PGresult **res) {
        if (*res)
                PQclear(*res);
}

/* ------------------------------------------------------------ errors */

static bool sqlstate_is(const char *state, const char *prefix) {
        return strncmp(state, prefix, strlen(prefix)) == 0;
}

/* The outcome of a statement as -errno: -EDEADLK for the retryable
 * conflicts (the caller retries, then answers -EBUSY), -EBUSY when the
 * server is away, shutting down, overloaded or read-only (a failover). */
static int pg_errno(PGconn *pq, const PGresult *res) {
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
                return 0;
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (!state || PQstatus(pq) != CONNECTION_OK)
                return -EBUSY;
        if (streq(state, "40001") || streq(state, "40P01"))
                return -EDEADLK;
        if (streq(state, "23505"))
                return -EEXIST;
        if (sqlstate_is(state, "22") || sqlstate_is(state, "23"))
                return -EINVAL;
        if (streq(state, "53100"))
                return -ENOSPC;
        if (sqlstate_is(state, "08") || sqlstate_is(state, "53") || sqlstate_is(state, "57") ||
            streq(state, "55P03") || streq(state, "25006"))
                return -EBUSY;
        if (sqlstate_is(state, "28") || streq(state, "42501"))
                return -EACCES;
        return -EIO;
}

static int pg_simple(pgconn *c, const char *sql) {
        _cleanup_(pg_clearp) PGresult *res = PQexec(c->pq, sql);
        return pg_errno(c->pq, res);
}

/* ------------------------------------------------------------ statements */

static int pg_vexec(pgconn *c, pg_stmt_id id, PGresult **ret, const char *fmt, va_list ap) {
        const char *values[PG_PARAMS_MAX];
        int lengths[PG_PARAMS_MAX], formats[PG_PARAMS_MAX], n = 0;
        char nums[PG_PARAMS_MAX][24], name[16];

        for (; *fmt; fmt++, n++) {
                if (n == PG_PARAMS_MAX)
                        return -EINVAL;
                lengths[n] = 0;
                formats[n] = 0;
                switch (*fmt) {
                case 'i':
                        snprintf(nums[n], sizeof nums[n], "%" PRId64, va_arg(ap, int64_t));
                        values[n] = nums[n];
                        break;
                case 't':
                        values[n] = va_arg(ap, const char *);
                        break;
                case 'h':
                case 'k':
                        values[n] = (const char *) va_arg(ap, const uint8_t *);
                        lengths[n] = *fmt == 'h' ? (int) STORE_HASH_LEN : (int) STORE_DEVICE_KEY_LEN;
                        formats[n] = 1;
                        break;
                default:
                        return -EINVAL; /* a programming error, caught by every test that runs it */
                }
        }
        snprintf(name, sizeof name, "td%d", (int) id);
        if (!c->prepared[id]) {
                _cleanup_(pg_clearp) PGresult *p = PQprepare(c->pq, name, pg_stmt_sql[id], 0, NULL);
                int r = pg_errno(c->pq, p);
                if (r < 0)
                        return r;
                c->prepared[id] = true;
        }
        PGresult *res = PQexecPrepared(c->pq, name, n, values, lengths, formats, 0);
        int r = pg_errno(c->pq, res);
        if (r < 0) {
                pg_clearp(&res);
                return r;
        }
        *ret = res;
        return 0;
}

int pg_exec(pgconn *c, pg_stmt_id id, PGresult **ret, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = pg_vexec(c, id, ret, fmt, ap);
        va_end(ap);
        return r;
}

int pg_run(pgconn *c, pg_stmt_id id, const char *fmt, ...) {
        _cleanup_(pg_clearp) PGresult *res = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = pg_vexec(c, id, &res, fmt, ap);
        va_end(ap);
        if (r < 0)
                return r;
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
                return PQntuples(res);
        return atoi(PQcmdTuples(res));
}

bool pg_col_null(const PGresult *res, int row, int col) {
        return PQgetisnull(res, row, col);
}

int64_t pg_col_i64(const PGresult *res, int row, int col) {
        return pg_col_null(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

void pg_col_text(char *dst, size_t size, const PGresult *res, int row, int col) {
        snprintf(dst, size, "%s", pg_col_null(res, row, col) ? "" : PQgetvalue(res, row, col));
}

/* ------------------------------------------------------------ connections */

/* The store does not log: libpq's notices (to stderr by default) are dropped. */
static void notice_drop(void *arg _unused_, const char *message _unused_) {
}

static PGconn *pg_connect(const char *conninfo) {
        /* Defaults first: the URI's own parameters override them. */
        static const char *const keys[] = { "connect_timeout", "application_name", "dbname", NULL };
        const char *values[] = { "5", "tokend", conninfo, NULL };
        PGconn *pq = PQconnectdbParams(keys, values, 1);
        if (pq && PQstatus(pq) == CONNECTION_OK) {
                (void) PQsetNoticeProcessor(pq, notice_drop, NULL);
                /* No request waits for long: a stuck lock or server is a 503. */
                PGresult *res = PQexec(pq, "SET client_min_messages = warning; SET statement_timeout = 15000; "
                                           "SET lock_timeout = 5000; SET idle_in_transaction_session_timeout = 60000");
                bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
                PQclear(res);
                if (ok)
                        return pq;
        }
        PQfinish(pq);
        return NULL;
}

static void conn_close(pgconn *c) {
        PQfinish(c->pq);
        *c = (pgconn){};
}

/* A pooled connection, (re)connected if needed: 0, or -EBUSY when the
 * server cannot be reached. */
static int conn_acquire(store_backend *b, pgconn **ret) {
        size_t i;
        pthread_mutex_lock(&b->lock);
        for (;;) {
                for (i = 0; i < PG_POOL && b->busy[i]; i++)
                        ;
                if (i < PG_POOL)
                        break;
                pthread_cond_wait(&b->conn_free, &b->lock);
        }
        b->busy[i] = true;
        pthread_mutex_unlock(&b->lock);

        pgconn *c = &b->conns[i];
        if (c->pq && PQstatus(c->pq) != CONNECTION_OK)
                conn_close(c);
        if (!c->pq)
                c->pq = pg_connect(b->conninfo);
        if (!c->pq) {
                pthread_mutex_lock(&b->lock);
                b->busy[i] = false;
                pthread_cond_signal(&b->conn_free);
                pthread_mutex_unlock(&b->lock);
                return -EBUSY;
        }
        *ret = c;
        return 0;
}

static void conn_release(store_backend *b, pgconn *c) {
        pthread_mutex_lock(&b->lock);
        b->busy[c - b->conns] = false;
        pthread_cond_signal(&b->conn_free);
        pthread_mutex_unlock(&b->lock);
}

static void sleep_ms(uint32_t ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        (void) nanosleep(&ts, NULL);
}

static int64_t monotonic_ms(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void backoff(unsigned attempt) {
        /* Random in [0, PG_BACKOFF_MS << attempt) ms: two issuers that
         * collided do not collide again in step. */
        sleep_ms(arc4random_uniform((uint32_t) PG_BACKOFF_MS << attempt));
}

/* BEGIN (lazy: synchronous_commit off), the transaction's mark (into
 * mark: the server's clock, so that issuers with skewed clocks do not prune
 * each other's fresh marks, then 16 random hex digits of ours) and its id
 * into *ret_xid, in one round trip. */
static int tx_begin(pgconn *c, bool lazy, char mark[static PG_MARK_LEN + 1], int64_t *ret_xid) {
        char sql[320];
        uint64_t rnd;

        arc4random_buf(&rnd, sizeof rnd);
        /* only hex digits of ours go into the statement */
        snprintf(sql, sizeof sql,
                 "BEGIN;%s WITH m AS (INSERT INTO tx_marks SELECT " PG_MARK_NOW " || '%016" PRIx64 "' RETURNING id) "
                 "SELECT txid_current(), id FROM m",
                 lazy ? " SET LOCAL synchronous_commit = off;" : "", rnd);
        _cleanup_(pg_clearp) PGresult *res = PQexec(c->pq, sql);
        int r = pg_errno(c->pq, res);
        if (r < 0)
                return r;
        if (PQntuples(res) != 1 || PQgetlength(res, 0, 1) != (int) PG_MARK_LEN)
                return -EIO;
        *ret_xid = pg_col_i64(res, 0, 0);
        pg_col_text(mark, PG_MARK_LEN + 1, res, 0, 1);
        return 0;
}

/* One try of fn in a transaction. -ENOTCONN: the connection died before
 * COMMIT was sent, so nothing was committed (safe to retry on a new one).
 * -EINPROGRESS: COMMIT was sent and its answer lost; mark and *ret_xid
 * are the transaction's, *ret_result what fn returned (the result if it
 * committed). */
static int tx_once(pgconn *c, pg_tx_fn fn, void *args, bool lazy, char mark[static PG_MARK_LEN + 1],
                   int64_t *ret_xid, int *ret_result) {
        bool keep = false;
        int r = tx_begin(c, lazy, mark, ret_xid);
        if (r < 0)
                return PQstatus(c->pq) != CONNECTION_OK ? -ENOTCONN : r;
        int result = fn(c, args, &keep);
        if (PQstatus(c->pq) != CONNECTION_OK)
                return -ENOTCONN; /* lost before COMMIT: nothing of it was committed */
        if ((result >= 0 || keep) && PQtransactionStatus(c->pq) == PQTRANS_INTRANS) {
                r = pg_simple(c, "COMMIT");
                /* Not a definite refusal (a conflict, a constraint: rolled back),
                 * but the server going away under it (57P01 "terminating
                 * connection due to administrator command" may come after the
                 * commit record was flushed, before libpq has seen the hang-up):
                 * it may have committed, so ask. */
                if (r < 0 && (PQstatus(c->pq) != CONNECTION_OK || r == -EBUSY)) {
                        *ret_result = result;
                        return -EINPROGRESS;
                }
                return r < 0 ? r : result;
        }
        (void) pg_simple(c, "ROLLBACK");
        return result >= 0 || keep ? -EIO : result;
}

/* Whether transaction xid (with mark) committed, its COMMIT answer lost:
 * asked once the server answers again and xid is no longer in progress
 * (for PG_OUTCOME_WAIT_MS at most). 1 committed, 0 not (nothing of it
 * happened: it may run again), -ETIMEDOUT not known (a 503 as -EBUSY, told
 * apart in tokend's log). */
static int tx_outcome(store_backend *b, const char *mark, int64_t xid) {
        char num[24];
        snprintf(num, sizeof num, "%" PRId64, xid);
        const char *values[1] = { num };
        int64_t deadline = monotonic_ms() + PG_OUTCOME_WAIT_MS;

        for (unsigned attempt = 0;; attempt++) {
                pgconn *c;
                if (conn_acquire(b, &c) == 0) {
                        _cleanup_(pg_clearp) PGresult *res = PQexecParams(c->pq, "SELECT txid_status($1)", 1, NULL,
                                                                          values, NULL, NULL, 0);
                        int r = pg_errno(c->pq, res);
                        /* "in progress": its session has not seen the loss yet; an error
                         * "in the future" (22023): a crash forgot the id, and the mark
                         * decides as for any other answer */
                        bool running = r == 0 && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) &&
                                       streq(PQgetvalue(res, 0, 0), "in progress");
                        if (r == 0 || r == -EINVAL) {
                                _cleanup_(pg_clearp) PGresult *m = NULL;
                                r = running ? -EAGAIN : pg_exec(c, P_MARK_GET, &m, "t", mark);
                                if (r == 0) {
                                        conn_release(b, c);
                                        return PQntuples(m) == 1;
                                }
                        }
                        conn_release(b, c);
                }
                if (monotonic_ms() >= deadline)
                        return -ETIMEDOUT;
                sleep_ms(attempt < 4 ? 50u << attempt : 500u);
        }
}

int pg_tx_full(store_backend *b, pg_tx_fn fn, void *args, bool lazy) {
        for (unsigned attempt = 0; attempt < PG_ATTEMPTS; attempt++) {
                pgconn *c;
                int64_t xid = 0;
                int result = 0;
                char mark[PG_MARK_LEN + 1];
                if (attempt > 0)
                        backoff(attempt);
                int r = conn_acquire(b, &c);
                if (r < 0)
                        return r;
                r = tx_once(c, fn, args, lazy, mark, &xid, &result);
                conn_release(b, c);
                if (r == -EINPROGRESS) {
                        r = tx_outcome(b, mark, xid);
                        if (r != 0)
                                return r > 0 ? result : r;
                        continue; /* not committed: run it again */
                }
                if (r != -EDEADLK && r != -ENOTCONN)
                        return r;
        }
        return -EBUSY;
}

int pg_tx(store_backend *b, pg_tx_fn fn, void *args) {
        return pg_tx_full(b, fn, args, false);
}

int pg_read(store_backend *b, PGresult **ret, pg_stmt_id id, const char *fmt, ...) {
        int r = -EBUSY;
        for (unsigned attempt = 0; attempt < 2 && r == -EBUSY; attempt++) {
                pgconn *c;
                r = conn_acquire(b, &c);
                if (r < 0)
                        return r;
                va_list ap;
                va_start(ap, fmt);
                r = pg_vexec(c, id, ret, fmt, ap);
                va_end(ap);
                bool dead = PQstatus(c->pq) != CONNECTION_OK;
                conn_release(b, c);
                if (!dead)
                        break;
        }
        return r == -EDEADLK ? -EBUSY : r;
}

/* ------------------------------------------------------------ schema */

/* Apply every missing migration, one transaction each, under an advisory
 * lock: issuers starting together migrate once. */
static int pg_migrate(pgconn *c, int *ret_version) {
        for (;;) {
                int r = pg_simple(c, "BEGIN");
                if (r >= 0)
                        r = pg_simple(c, "SELECT pg_advisory_xact_lock(0, 1)");
                if (r >= 0)
                        r = pg_simple(c, "CREATE TABLE IF NOT EXISTS tokend_schema (version integer NOT NULL)");
                if (r >= 0)
                        r = pg_simple(c, "INSERT INTO tokend_schema SELECT 0 WHERE NOT EXISTS "
                                         "(SELECT 1 FROM tokend_schema)");
                long v = -1;
                if (r >= 0) {
                        _cleanup_(pg_clearp) PGresult *res = PQexec(c->pq, "SELECT version FROM tokend_schema");
                        r = pg_errno(c->pq, res);
                        if (r >= 0 && PQntuples(res) != 1)
                                r = -EIO;
                        if (r >= 0)
                                v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
                }
                if (r >= 0 && (v < 0 || (size_t) v > ELEMENTSOF(pg_migrations)))
                        r = -EPROTONOSUPPORT;
                if (r >= 0 && (size_t) v == ELEMENTSOF(pg_migrations)) {
                        r = pg_simple(c, "COMMIT");
                        if (r >= 0)
                                *ret_version = (int) v;
                        return r;
                }
                char bump[64];
                snprintf(bump, sizeof bump, "UPDATE tokend_schema SET version = %ld", v + 1);
                if (r >= 0)
                        r = pg_simple(c, pg_migrations[v]);
                if (r >= 0)
                        r = pg_simple(c, bump);
                if (r >= 0)
                        r = pg_simple(c, "COMMIT");
                if (r < 0) {
                        (void) pg_simple(c, "ROLLBACK");
                        return r;
                }
        }
}

void pg_close(store_backend *b) {
        if (!b)
                return;
        for (size_t i = 0; i < PG_POOL; i++)
                conn_close(&b->conns[i]);
        free(b->conninfo);
        pthread_mutex_destroy(&b->lock);
        pthread_cond_destroy(&b->conn_free);
        free(b);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(store_backend *, pg_close);

int pg_open(const char *location, store_backend **ret) {
        if (!PQisthreadsafe())
                return -EOPNOTSUPP;
        _cleanup_(pg_closep) store_backend *b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        pthread_mutex_init(&b->lock, NULL);
        pthread_cond_init(&b->conn_free, NULL);
        b->conninfo = strdup(location);
        if (!b->conninfo)
                return -ENOMEM;

        /* The first connection tells whether the server is there at all. */
        pgconn *c = &b->conns[0];
        c->pq = pg_connect(b->conninfo);
        if (!c->pq)
                return -ECONNREFUSED;
        int r = pg_migrate(c, &b->version);
        if (r < 0)
                return r == -EDEADLK ? -EBUSY : r;
        *ret = TAKE_PTR(b);
        return 0;
}

int pg_schema_version(store_backend *b) {
        return b->version;
}

int pg_integrity_check(store_backend *b) {
        pgconn *c;
        int r = conn_acquire(b, &c);
        if (r < 0)
                return r;
        /* The constraints hold by construction; a token without its
         * device would mean they were bypassed. */
        _cleanup_(pg_clearp) PGresult *res = PQexec(c->pq, "SELECT 1 FROM refresh_tokens AS t WHERE NOT EXISTS "
                                                           "(SELECT 1 FROM devices AS d WHERE d.id = t.device_id) "
                                                           "LIMIT 1");
        r = pg_errno(c->pq, res);
        if (r >= 0 && PQntuples(res) > 0)
                r = -EUCLEAN;
        conn_release(b, c);
        return r;
}

