/* SPDX-License-Identifier: MIT */
/* The SQLite backend of the store: connections, migrations and group
 * commit (tokend-store-sqlite.h); its operations are tokend-store-sqlite.c.
 *
 * Concurrency: reads use a small pool of read-only connections, which WAL
 * lets run in parallel with each other and with the writer. Writes go
 * through one writer connection with group commit: a caller queues its
 * operation; whoever finds no batch running becomes the leader, runs every
 * queued operation in one BEGIN IMMEDIATE transaction (each inside its own
 * SAVEPOINT, so a failed one leaves no trace and does not disturb the
 * others) and commits once. Operations stay serialised in queue order,
 * exactly as if each had its own transaction, but N concurrent rotations
 * cost one fsync instead of N.
 *
 * Durability: synchronous=FULL, so a rotation the client was told about is
 * on disk even after a power loss or kernel crash. With WAL, NORMAL only
 * survives a process crash; a rotation lost by the OS would make the
 * client's new refresh token unknown and its old one look "reused" after
 * reboot, revoking a legitimate device. Group commit is what makes FULL
 * affordable (numbers in the commit message). A batch made only of
 * coalesced refusals (store_audit_coalesce) commits with NORMAL: losing the
 * last counts to a power cut harms nothing, and a flood of refusals then
 * costs no fsync per request. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tokend-store-sqlite.h"

#ifndef STORE_SYNCHRONOUS
#define STORE_SYNCHRONOUS "FULL"
#endif

#define N_READERS 3
#ifndef BATCH_MAX
#define BATCH_MAX 64 /* operations per group commit */
#endif

/* ------------------------------------------------------------ connections */

typedef struct write_req {
        write_fn fn;
        void *args;
        bool lazy; /* may be lost in a power failure: no fsync needed (coalesced refusals) */
        int result;
        bool done;
        struct write_req *next;
} write_req;

struct store_backend {
        pthread_mutex_t lock; /* queue, leader, reader_busy */
        pthread_cond_t batch_done;
        pthread_cond_t reader_free;
        write_req *queue;
        write_req **queue_tail;
        bool leader;
        conn writer; /* used by the leader only */
        bool writer_lazy; /* the writer runs synchronous=NORMAL right now (leader only) */
        conn readers[N_READERS];
        bool reader_busy[N_READERS];
        int version;
};

int sq_errno(sqlite3 *db, int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CONSTRAINT:
                return rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE ? -EEXIST : -EINVAL;
        case SQLITE_CANTOPEN: {
                int e = db ? sqlite3_system_errno(db) : 0;
                return e > 0 ? -e : -EACCES;
        }
        default:
                return -EIO;
        }
}

static void conn_close(conn *c) {
        for (size_t i = 0; i < _S_MAX; i++)
                sqlite3_finalize(c->stmts[i]);
        sqlite3_close_v2(c->db);
        *c = (conn){};
}

void sq_stmt_reset(sqlite3_stmt **st) {
        if (*st) {
                (void) sqlite3_reset(*st);
                (void) sqlite3_clear_bindings(*st);
        }
}

int sq_vquery(conn *c, stmt_id id, sqlite3_stmt **ret, const char *fmt, va_list ap) {
        int rc = SQLITE_OK;

        if (!c->stmts[id]) {
                rc = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[id], NULL);
                if (rc != SQLITE_OK)
                        return sq_errno(c->db, rc);
        }
        sqlite3_stmt *st = c->stmts[id];
        if (strlen(fmt) != (size_t) sqlite3_bind_parameter_count(st))
                return -EINVAL; /* a programming error, caught by every test that runs it */
        for (int i = 1; *fmt && rc == SQLITE_OK; fmt++, i++) {
                const void *p;
                switch (*fmt) {
                case 'i':
                        rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
                        break;
                case 't':
                        rc = sqlite3_bind_text(st, i, va_arg(ap, const char *), -1, SQLITE_STATIC);
                        break;
                case 'h':
                        rc = sqlite3_bind_blob(st, i, va_arg(ap, const uint8_t *), STORE_HASH_LEN, SQLITE_STATIC);
                        break;
                case 'k':
                        p = va_arg(ap, const uint8_t *);
                        rc = p ? sqlite3_bind_blob(st, i, p, STORE_DEVICE_KEY_LEN, SQLITE_STATIC)
                               : sqlite3_bind_null(st, i);
                        break;
                default:
                        rc = SQLITE_MISUSE;
                }
        }
        if (rc != SQLITE_OK) {
                sq_stmt_reset(&st);
                return rc == SQLITE_NOMEM ? -ENOMEM : -EINVAL;
        }
        *ret = st;
        return 0;
}

int sq_query(conn *c, stmt_id id, sqlite3_stmt **ret, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = sq_vquery(c, id, ret, fmt, ap);
        va_end(ap);
        return r;
}

int sq_step_row(conn *c, sqlite3_stmt *st) {
        int rc = sqlite3_step(st);
        return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? -ENOENT : sq_errno(c->db, rc);
}

int sq_exec_sql(sqlite3 *db, const char *sql) {
        int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : sq_errno(db, rc);
}

int sq_pragma_text(sqlite3 *db, const char *sql, char *buf, size_t size) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sq_errno(db, rc);
        rc = sqlite3_step(st);
        int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sq_errno(db, rc);
        if (r > 0)
                snprintf(buf, size, "%s", (const char *) sqlite3_column_text(st, 0) ?: "");
        sqlite3_finalize(st);
        return r;
}

/* No allocation statistics: with them every SQLite allocation takes one
 * process-wide mutex, which the pool threads' store reads then contend
 * for (futex sleeps and wake-ups on every verify). tokend reads none of
 * them (sqlite3_memory_used and friends). */
static void sqlite_config_once(void) {
        (void) sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int conn_open(conn *c, const char *path, bool writer) {
        char mode[16];
        int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
                                 NULL);
        if (rc != SQLITE_OK)
                return c->db ? sq_errno(c->db, rc) : -ENOMEM;
        (void) sqlite3_extended_result_codes(c->db, 1);
        (void) sqlite3_busy_timeout(c->db, STORE_BUSY_TIMEOUT_MS);
        /* Hardening: no schema tricks, no double-quoted string literals. */
        (void) sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
        (void) sqlite3_db_config(c->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
        (void) sqlite3_db_config(c->db, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
        (void) sqlite3_db_config(c->db, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);

        int r = sq_exec_sql(c->db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = " STORE_SYNCHRONOUS ";");
        if (r < 0)
                return r;
        if (!writer)
                return sq_exec_sql(c->db, "PRAGMA query_only = ON;");

        /* Bound the WAL file left behind after a checkpoint. */
        r = sq_exec_sql(c->db, "PRAGMA journal_size_limit = 67108864;");
        if (r < 0)
                return r;
        /* WAL is persistent in the file; check that it took (it cannot on
         * some network file systems). */
        r = sq_pragma_text(c->db, "PRAGMA journal_mode = WAL", mode, sizeof mode);
        if (r < 0)
                return r;
        return r > 0 && streq(mode, "wal") ? 0 : -EOPNOTSUPP;
}

/* Apply every missing migration, one transaction each; the version is read
 * again inside the transaction in case another process migrated first. */
static int migrate(conn *c, int *ret_version) {
        char buf[32];
        int v = -1, r;

        for (;;) {
                r = sq_exec_sql(c->db, "BEGIN IMMEDIATE");
                if (r < 0)
                        return r;
                r = sq_pragma_text(c->db, "PRAGMA user_version", buf, sizeof buf);
                if (r == 0)
                        r = -EIO;
                if (r > 0) {
                        v = atoi(buf);
                        if (v < 0 || (size_t) v > ELEMENTSOF(migrations))
                                r = -EPROTONOSUPPORT;
                }
                if (r < 0 || (size_t) v == ELEMENTSOF(migrations))
                        break;
                char pragma[64];
                snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
                r = sq_exec_sql(c->db, migrations[v]);
                if (r >= 0)
                        r = sq_exec_sql(c->db, pragma);
                if (r >= 0)
                        r = sq_exec_sql(c->db, "COMMIT");
                if (r < 0)
                        break;
        }
        if (r < 0) {
                (void) sq_exec_sql(c->db, "ROLLBACK");
                return r;
        }
        r = sq_exec_sql(c->db, "COMMIT");
        if (r < 0)
                return r;
        *ret_version = v;
        return 0;
}

void sqlite_close(store_backend *s) {
        if (!s)
                return;
        for (size_t i = 0; i < N_READERS; i++)
                conn_close(&s->readers[i]);
        conn_close(&s->writer);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->batch_done);
        pthread_cond_destroy(&s->reader_free);
        free(s);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(store_backend *, sqlite_close);

int sqlite_open(const char *path, store_backend **ret) {
        int r;

        if (!sqlite3_threadsafe())
                return -EOPNOTSUPP;
        /* Before SQLite initializes itself (a no-op once it has). */
        static pthread_once_t config_once = PTHREAD_ONCE_INIT;
        (void) pthread_once(&config_once, sqlite_config_once);

        /* Create it ourselves so it is born 0600; SQLite gives the -wal and
         * -shm files the database file's mode. */
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        close(fd);

        _cleanup_(sqlite_closep) store_backend *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->batch_done, NULL);
        pthread_cond_init(&s->reader_free, NULL);
        s->queue_tail = &s->queue;

        r = conn_open(&s->writer, path, true);
        if (r < 0)
                return r;
        r = migrate(&s->writer, &s->version);
        if (r < 0)
                return r;
        for (size_t i = 0; i < N_READERS; i++) {
                r = conn_open(&s->readers[i], path, false);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

int sqlite_schema_version(store_backend *s) {
        return s->version;
}

conn *sq_reader_acquire(store_backend *s) {
        pthread_mutex_lock(&s->lock);
        for (;;) {
                for (size_t i = 0; i < N_READERS; i++)
                        if (!s->reader_busy[i]) {
                                s->reader_busy[i] = true;
                                pthread_mutex_unlock(&s->lock);
                                return &s->readers[i];
                        }
                pthread_cond_wait(&s->reader_free, &s->lock);
        }
}

void sq_reader_release(store_backend *s, conn *c) {
        pthread_mutex_lock(&s->lock);
        s->reader_busy[c - s->readers] = false;
        pthread_cond_signal(&s->reader_free);
        pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------ group commit */

/* Run a batch in one transaction; every request gets its result. Called by
 * the leader without the lock. */
static void batch_run(store_backend *s, write_req *batch) {
        conn *c = &s->writer;
        bool lazy = true;
        int r = 0;

        /* A batch of nothing but coalesced refusals commits without waiting
         * for the disk: a flood of them then costs no fsync each, and the
         * durable writes (rotations) never queue behind such fsyncs. */
        for (write_req *q = batch; q; q = q->next)
                lazy = lazy && q->lazy;
        if (lazy != s->writer_lazy) {
                r = sq_exec_sql(c->db, lazy ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = " STORE_SYNCHRONOUS);
                if (r >= 0)
                        s->writer_lazy = lazy;
        }
        if (r >= 0)
                r = sq_run(c, S_BEGIN, "");

        for (write_req *q = batch; q && r >= 0; q = q->next) {
                bool keep = false;
                r = sq_run(c, S_SAVEPOINT, "");
                if (r < 0)
                        break;
                q->result = q->fn(c, q->args, &keep);
                if (sqlite3_get_autocommit(c->db)) {
                        /* SQLite rolled the whole transaction back (I/O
                         * error, disk full): earlier work is gone too. */
                        r = q->result < 0 ? q->result : -EIO;
                        break;
                }
                if (q->result < 0 && !keep)
                        r = sq_run(c, S_ROLLBACK_TO, "");
                if (r >= 0)
                        r = sq_run(c, S_RELEASE, "");
        }
        if (r >= 0)
                r = sq_run(c, S_COMMIT, "");
        if (r >= 0)
                return;
        if (!sqlite3_get_autocommit(c->db))
                (void) sq_run(c, S_ROLLBACK, "");
        /* Nothing of the batch is stored: whatever an operation answered,
         * the caller gets the failure. */
        for (write_req *q = batch; q; q = q->next)
                q->result = r;
}

/* Queue fn(args) and wait for its result; lead a batch when none runs.
 * lazy: the operation need not survive a power failure. */
int sq_write_op_full(store_backend *s, write_fn fn, void *args, bool lazy) {
        write_req req = { .fn = fn, .args = args, .lazy = lazy };

        pthread_mutex_lock(&s->lock);
        *s->queue_tail = &req;
        s->queue_tail = &req.next;
        while (!req.done) {
                if (s->leader) {
                        pthread_cond_wait(&s->batch_done, &s->lock);
                        continue;
                }
                /* Lead: take up to BATCH_MAX queued requests (ours among them,
                 * unless more than that were ahead of us). */
                write_req *batch = s->queue, **end = &s->queue;
                for (size_t n = 0; *end && n < BATCH_MAX; n++)
                        end = &(*end)->next;
                s->queue = *end;
                if (!s->queue)
                        s->queue_tail = &s->queue;
                *end = NULL;
                s->leader = true;
                pthread_mutex_unlock(&s->lock);

                batch_run(s, batch);

                pthread_mutex_lock(&s->lock);
                for (write_req *q = batch, *next; q; q = next) {
                        next = q->next; /* q may vanish as soon as done is seen */
                        q->done = true;
                }
                s->leader = false;
                pthread_cond_broadcast(&s->batch_done);
        }
        pthread_mutex_unlock(&s->lock);
        return req.result;
}

int sq_write_op(store_backend *s, write_fn fn, void *args) {
        return sq_write_op_full(s, fn, args, false);
}

