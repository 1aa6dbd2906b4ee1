/* SPDX-License-Identifier: MIT */
/* SQLite implementation of tokend-store.h.
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
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tokend-store-sql.h"
#include "tokend-store.h"

#ifndef STORE_SYNCHRONOUS
#define STORE_SYNCHRONOUS "FULL"
#endif

#define N_READERS 3
#ifndef BATCH_MAX
#define BATCH_MAX 64 /* operations per group commit */
#endif
#define PRUNE_MARGIN ((int64_t) 3600) /* keep expired jtis for the largest ClockSkew */

/* ------------------------------------------------------------ connections */

typedef struct conn {
        sqlite3 *db;
        sqlite3_stmt *stmts[_S_MAX];
} conn;

/* A write operation, run inside the batch transaction. Returns its result;
 * sets *keep when its changes must be committed although it returns an
 * error (reuse detection revokes, then reports -EKEYREVOKED). */
typedef int (*write_fn)(conn *c, void *args, bool *keep);

typedef struct write_req {
        write_fn fn;
        void *args;
        bool lazy; /* may be lost in a power failure: no fsync needed (coalesced refusals) */
        int result;
        bool done;
        struct write_req *next;
} write_req;

struct tokend_store {
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

static int sqlite_errno(sqlite3 *db, int rc) {
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

static void stmt_reset(sqlite3_stmt **st) {
        if (*st) {
                (void) sqlite3_reset(*st);
                (void) sqlite3_clear_bindings(*st);
        }
}

/* Prepare (once per connection) statement id and bind its parameters from
 * fmt: 'i' int64_t, 't' const char * (NULL binds NULL), 'h' a
 * STORE_HASH_LEN blob, 'k' a STORE_DEVICE_KEY_LEN blob or NULL. Strings and
 * blobs are not copied: the statement must be reset (stmt_reset) before
 * they go away. */
static int vquery(conn *c, stmt_id id, sqlite3_stmt **ret, const char *fmt, va_list ap) {
        int rc = SQLITE_OK;

        if (!c->stmts[id]) {
                rc = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[id], NULL);
                if (rc != SQLITE_OK)
                        return sqlite_errno(c->db, rc);
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
                stmt_reset(&st);
                return rc == SQLITE_NOMEM ? -ENOMEM : -EINVAL;
        }
        *ret = st;
        return 0;
}

static int query(conn *c, stmt_id id, sqlite3_stmt **ret, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = vquery(c, id, ret, fmt, ap);
        va_end(ap);
        return r;
}

/* query() for a statement that returns no rows, run to completion. Returns
 * the number of rows changed or -errno. */
#define run(c, id, ...)                                                                     \
        ({                                                                                  \
                _cleanup_(stmt_reset) sqlite3_stmt *_st = NULL;                             \
                int _r = query((c), (id), &_st, __VA_ARGS__);                               \
                if (_r >= 0) {                                                              \
                        int _rc = sqlite3_step(_st);                                        \
                        _r = _rc == SQLITE_DONE  ? sqlite3_changes((c)->db)                 \
                             : _rc == SQLITE_ROW ? -EIO                                     \
                                                 : sqlite_errno((c)->db, _rc);              \
                }                                                                           \
                _r;                                                                         \
        })

/* Step a query to its first row: 1, or -ENOENT when there is none, -errno. */
static int step_row(conn *c, sqlite3_stmt *st) {
        int rc = sqlite3_step(st);
        return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? -ENOENT : sqlite_errno(c->db, rc);
}

static int exec_sql(sqlite3 *db, const char *sql) {
        int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : sqlite_errno(db, rc);
}

/* First column of the first row of a one-off statement, as text. */
static int pragma_text(sqlite3 *db, const char *sql, char *buf, size_t size) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_errno(db, rc);
        rc = sqlite3_step(st);
        int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sqlite_errno(db, rc);
        if (r > 0)
                snprintf(buf, size, "%s", (const char *) sqlite3_column_text(st, 0) ?: "");
        sqlite3_finalize(st);
        return r;
}

static int conn_open(conn *c, const char *path, bool writer) {
        char mode[16];
        int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
                                 NULL);
        if (rc != SQLITE_OK)
                return c->db ? sqlite_errno(c->db, rc) : -ENOMEM;
        (void) sqlite3_extended_result_codes(c->db, 1);
        (void) sqlite3_busy_timeout(c->db, STORE_BUSY_TIMEOUT_MS);
        /* Hardening: no schema tricks, no double-quoted string literals. */
        (void) sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
        (void) sqlite3_db_config(c->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
        (void) sqlite3_db_config(c->db, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
        (void) sqlite3_db_config(c->db, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);

        int r = exec_sql(c->db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = " STORE_SYNCHRONOUS ";");
        if (r < 0)
                return r;
        if (!writer)
                return exec_sql(c->db, "PRAGMA query_only = ON;");

        /* Bound the WAL file left behind after a checkpoint. */
        r = exec_sql(c->db, "PRAGMA journal_size_limit = 67108864;");
        if (r < 0)
                return r;
        /* WAL is persistent in the file; check that it took (it cannot on
         * some network file systems). */
        r = pragma_text(c->db, "PRAGMA journal_mode = WAL", mode, sizeof mode);
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
                r = exec_sql(c->db, "BEGIN IMMEDIATE");
                if (r < 0)
                        return r;
                r = pragma_text(c->db, "PRAGMA user_version", buf, sizeof buf);
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
                r = exec_sql(c->db, migrations[v]);
                if (r >= 0)
                        r = exec_sql(c->db, pragma);
                if (r >= 0)
                        r = exec_sql(c->db, "COMMIT");
                if (r < 0)
                        break;
        }
        if (r < 0) {
                (void) exec_sql(c->db, "ROLLBACK");
                return r;
        }
        r = exec_sql(c->db, "COMMIT");
        if (r < 0)
                return r;
        *ret_version = v;
        return 0;
}

void store_close(tokend_store *s) {
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

int store_open(const char *path, tokend_store **ret) {
        int r;

        if (!path || !*path || !ret)
                return -EINVAL;
        if (!sqlite3_threadsafe())
                return -EOPNOTSUPP;

        /* Create it ourselves so it is born 0600; SQLite gives the -wal and
         * -shm files the database file's mode. */
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        close(fd);

        _cleanup_(store_closep) tokend_store *s = calloc(1, sizeof(*s));
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

int store_schema_version(tokend_store *s) {
        return s->version;
}

static conn *reader_acquire(tokend_store *s) {
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

static void reader_release(tokend_store *s, conn *c) {
        pthread_mutex_lock(&s->lock);
        s->reader_busy[c - s->readers] = false;
        pthread_cond_signal(&s->reader_free);
        pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------ group commit */

/* Run a batch in one transaction; every request gets its result. Called by
 * the leader without the lock. */
static void batch_run(tokend_store *s, write_req *batch) {
        conn *c = &s->writer;
        bool lazy = true;
        int r = 0;

        /* A batch of nothing but coalesced refusals commits without waiting
         * for the disk: a flood of them then costs no fsync each, and the
         * durable writes (rotations) never queue behind such fsyncs. */
        for (write_req *q = batch; q; q = q->next)
                lazy = lazy && q->lazy;
        if (lazy != s->writer_lazy) {
                r = exec_sql(c->db, lazy ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = " STORE_SYNCHRONOUS);
                if (r >= 0)
                        s->writer_lazy = lazy;
        }
        if (r >= 0)
                r = run(c, S_BEGIN, "");

        for (write_req *q = batch; q && r >= 0; q = q->next) {
                bool keep = false;
                r = run(c, S_SAVEPOINT, "");
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
                        r = run(c, S_ROLLBACK_TO, "");
                if (r >= 0)
                        r = run(c, S_RELEASE, "");
        }
        if (r >= 0)
                r = run(c, S_COMMIT, "");
        if (r >= 0)
                return;
        if (!sqlite3_get_autocommit(c->db))
                (void) run(c, S_ROLLBACK, "");
        /* Nothing of the batch is stored: whatever an operation answered,
         * the caller gets the failure. */
        for (write_req *q = batch; q; q = q->next)
                q->result = r;
}

/* Queue fn(args) and wait for its result; lead a batch when none runs.
 * lazy: the operation need not survive a power failure. */
static int write_op_full(tokend_store *s, write_fn fn, void *args, bool lazy) {
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

static int write_op(tokend_store *s, write_fn fn, void *args) {
        return write_op_full(s, fn, args, false);
}

/* ------------------------------------------------------------ helpers */

static bool str_ok(const char *s, size_t max, bool required) {
        if (!s)
                return !required;
        size_t n = strnlen(s, max + 1);
        return n <= max && (n > 0 || !required);
}

static void copy_text(char *dst, size_t size, sqlite3_stmt *st, int col) {
        const unsigned char *t = sqlite3_column_text(st, col);
        snprintf(dst, size, "%s", t ? (const char *) t : "");
}

static bool audit_ok(const store_audit *a) {
        return a && str_ok(a->event, STORE_EVENT_MAX, true) && str_ok(a->user, STORE_USER_MAX, false) &&
               str_ok(a->device_id, STORE_DEVICE_ID_MAX, false) && str_ok(a->detail, STORE_AUDIT_DETAIL_MAX, false);
}

static int audit_insert(conn *c, const store_audit *a) {
        int r = run(c, S_AUDIT_INSERT, "iitttiit", a->time, a->time, a->event, a->user, a->device_id,
                    a->caller_uid, a->caller_pid, a->detail);
        return r < 0 ? r : 0;
}

static void device_from_row(sqlite3_stmt *st, store_device *d) {
        *d = (store_device){};
        copy_text(d->id, sizeof d->id, st, 0);
        copy_text(d->user, sizeof d->user, st, 1);
        d->uid = (uid_t) sqlite3_column_int64(st, 2);
        copy_text(d->name, sizeof d->name, st, 3);
        d->created = sqlite3_column_int64(st, 4);
        d->last_used = sqlite3_column_int64(st, 5);
        if (sqlite3_column_type(st, 6) == SQLITE_BLOB && sqlite3_column_bytes(st, 6) == STORE_DEVICE_KEY_LEN) {
                memcpy(d->public_key, sqlite3_column_blob(st, 6), STORE_DEVICE_KEY_LEN);
                d->has_public_key = true;
        }
        if (sqlite3_column_type(st, 7) != SQLITE_NULL) {
                d->revoked = true;
                d->revoked_at = sqlite3_column_int64(st, 7);
                copy_text(d->revoke_reason, sizeof d->revoke_reason, st, 8);
        }
        d->password_auth = sqlite3_column_int64(st, 9); /* NULL → 0 */
}

static int device_read(conn *c, const char *id, store_device *ret) {
        _cleanup_(stmt_reset) sqlite3_stmt *st = NULL;
        int r = query(c, S_DEVICE_GET, &st, "t", id);
        if (r < 0)
                return r;
        r = step_row(c, st);
        if (r < 0)
                return r;
        device_from_row(st, ret);
        return 0;
}

/* Collect every row of a query into a growing array of elem_size entries
 * filled by from_row. */
static int collect_rows(conn *c, sqlite3_stmt *st, size_t elem_size, void (*from_row)(sqlite3_stmt *, void *),
                        void **ret, size_t *ret_n) {
        _cleanup_(freep) uint8_t *v = NULL;
        size_t n = 0, allocated = 0;
        int rc;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == allocated) {
                        size_t k = allocated ? allocated * 2 : 16;
                        uint8_t *m = reallocarray(v, k, elem_size);
                        if (!m)
                                return -ENOMEM;
                        v = m;
                        allocated = k;
                }
                from_row(st, v + n * elem_size);
                n++;
        }
        if (rc != SQLITE_DONE)
                return sqlite_errno(c->db, rc);
        *ret = n > 0 ? TAKE_PTR(v) : NULL;
        *ret_n = n;
        return 0;
}

/* A page of a listing on a reader: statement id with the parameters of
 * fmt, the last one ('i') being the LIMIT, which must be limit + 1: the
 * extra row only tells that more follow and is not returned. */
static int list_page(tokend_store *s, size_t elem_size, void (*from_row)(sqlite3_stmt *, void *), size_t limit,
                     void **ret, size_t *ret_n, bool *ret_more, stmt_id id, const char *fmt, ...) {
        void *v = NULL;
        size_t n = 0;
        va_list ap;
        int r;

        conn *c = reader_acquire(s);
        {
                _cleanup_(stmt_reset) sqlite3_stmt *st = NULL;
                va_start(ap, fmt);
                r = vquery(c, id, &st, fmt, ap);
                va_end(ap);
                if (r >= 0)
                        r = collect_rows(c, st, elem_size, from_row, &v, &n);
        }
        reader_release(s, c);
        if (r < 0)
                return r;
        *ret_more = n > limit;
        if (n > limit)
                n = limit;
        if (n == 0) {
                free(v);
                v = NULL;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

/* ------------------------------------------------------------ devices */

typedef struct create_args {
        const store_device *d;
        const uint8_t *hash;
        int64_t expires;
        unsigned max_devices;
        const store_audit *a;
} create_args;

/* Make room for one more device of user under the cap: 0, or -EDQUOT when
 * every device of the user is alive. Runs inside the enrolment's
 * transaction (the writer holds the lock from the count to the insert). */
static int device_cap_tx(conn *c, const char *user, int64_t now, unsigned max_devices) {
        _cleanup_(stmt_reset) sqlite3_stmt *st = NULL;
        int r = query(c, S_DEVICES_COUNT, &st, "t", user);
        if (r >= 0)
                r = step_row(c, st);
        if (r < 0)
                return r;
        int64_t n = sqlite3_column_int64(st, 0);
        stmt_reset(&st);
        if (n < (int64_t) max_devices)
                return 0;
        int64_t excess = n - (int64_t) max_devices + 1;
        r = run(c, S_DEVICES_EVICT, "tii", user, now, excess);
        if (r < 0)
                return r;
        return r < excess ? -EDQUOT : 0;
}

static int device_create_tx(conn *c, void *p, bool *keep _unused_) {
        create_args *x = p;
        const store_device *d = x->d;
        int r = device_cap_tx(c, d->user, d->created, x->max_devices);
        if (r < 0)
                return r;
        r = run(c, S_DEVICE_INSERT, "ttitiiki", d->id, d->user, (int64_t) d->uid, d->name, d->created,
                d->last_used, d->has_public_key ? d->public_key : NULL, d->password_auth);
        if (r >= 0)
                r = run(c, S_TOKEN_INSERT, "htiii", x->hash, d->id, (int64_t) 1, d->created, x->expires);
        if (r >= 0 && x->a)
                r = audit_insert(c, x->a);
        return r < 0 ? r : 0;
}

int store_device_create(tokend_store *s, const store_device *d, const uint8_t refresh_hash[STORE_HASH_LEN],
                        int64_t refresh_expires, unsigned max_devices, const store_audit *a) {
        if (!s || !d || !refresh_hash || d->revoked || !str_ok(d->id, STORE_DEVICE_ID_MAX, true) ||
            !str_ok(d->user, STORE_USER_MAX, true) || !str_ok(d->name, STORE_DEVICE_NAME_MAX, false) ||
            refresh_expires < 0 || max_devices == 0 || (a && !audit_ok(a)))
                return -EINVAL;
        create_args x = { d, refresh_hash, refresh_expires, max_devices, a };
        return write_op(s, device_create_tx, &x);
}

int store_device_get(tokend_store *s, const char *id, store_device *ret) {
        store_device d;

        if (!s || !ret || !str_ok(id, STORE_DEVICE_ID_MAX, true))
                return -EINVAL;
        conn *c = reader_acquire(s);
        int r = device_read(c, id, &d);
        reader_release(s, c);
        if (r < 0)
                return r;
        *ret = d;
        return 0;
}

static void device_row(sqlite3_stmt *st, void *p) {
        device_from_row(st, p);
}

int store_devices_list(tokend_store *s, const char *user, const store_device_cursor *after, size_t limit,
                       store_device **ret, size_t *ret_n, bool *ret_more) {
        if (!s || !ret || !ret_n || !ret_more || limit == 0 || limit > STORE_PAGE_MAX ||
            !str_ok(user, STORE_USER_MAX, false) || (after && !str_ok(after->id, STORE_DEVICE_ID_MAX, false)))
                return -EINVAL;
        /* No cursor: before every row ((created, id) > (INT64_MIN, "")). */
        int64_t created = after ? after->created : INT64_MIN;
        const char *id = after ? after->id : "";
        int64_t lim = (int64_t) limit + 1;
        void **v = (void **) ret;
        if (user)
                return list_page(s, sizeof(store_device), device_row, limit, v, ret_n, ret_more, S_DEVICES_USER,
                                 "titi", user, created, id, lim);
        return list_page(s, sizeof(store_device), device_row, limit, v, ret_n, ret_more, S_DEVICES_ALL, "iti",
                         created, id, lim);
}

typedef struct revoke_args {
        const char *id, *reason;
        const store_audit *a;
} revoke_args;

static int device_revoke_tx(conn *c, void *p, bool *keep _unused_) {
        revoke_args *x = p;
        store_device d;
        int r = device_read(c, x->id, &d);
        if (r < 0 || d.revoked)
                return r < 0 ? r : 0;
        r = run(c, S_DEVICE_REVOKE, "itt", x->a ? x->a->time : (int64_t) time(NULL), x->reason, x->id);
        if (r >= 0 && x->a)
                r = audit_insert(c, x->a);
        return r < 0 ? r : 1;
}

int store_device_revoke(tokend_store *s, const char *id, const char *reason, const store_audit *a) {
        if (!s || !str_ok(id, STORE_DEVICE_ID_MAX, true) || !str_ok(reason, STORE_REASON_MAX, true) ||
            (a && !audit_ok(a)))
                return -EINVAL;
        revoke_args x = { id, reason, a };
        return write_op(s, device_revoke_tx, &x);
}

typedef struct touch_args {
        const char *id;
        int64_t now;
} touch_args;

static int device_touch_tx(conn *c, void *p, bool *keep _unused_) {
        touch_args *x = p;
        int r = run(c, S_DEVICE_TOUCH, "it", x->now, x->id);
        return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int store_device_touch(tokend_store *s, const char *id, int64_t now) {
        if (!s || !str_ok(id, STORE_DEVICE_ID_MAX, true))
                return -EINVAL;
        touch_args x = { id, now };
        return write_op(s, device_touch_tx, &x);
}

/* ------------------------------------------------------------ rotation */

typedef struct rotate_args {
        const char *device_id;
        const uint8_t *presented, *new_hash;
        int64_t now, new_expires, reuse_grace;
        const store_audit *a;
        store_rotate_result res;
} rotate_args;

/* Presented token → its generation, expiry and rotation time (0 if none).
 * -ENOENT unless it exists and belongs to device_id. */
static int token_read(conn *c, const uint8_t *hash, const char *device_id, int64_t *ret_generation,
                      int64_t *ret_expires, int64_t *ret_rotated, bool *ret_is_rotated) {
        _cleanup_(stmt_reset) sqlite3_stmt *st = NULL;
        int r = query(c, S_TOKEN_GET, &st, "h", hash);
        if (r < 0)
                return r;
        r = step_row(c, st);
        if (r < 0)
                return r;
        /* A token of another device is as unknown as no token. */
        const unsigned char *owner = sqlite3_column_text(st, 0);
        if (!owner || strcmp((const char *) owner, device_id) != 0)
                return -ENOENT;
        *ret_generation = sqlite3_column_int64(st, 1);
        *ret_expires = sqlite3_column_int64(st, 2);
        *ret_is_rotated = sqlite3_column_type(st, 3) != SQLITE_NULL;
        *ret_rotated = sqlite3_column_int64(st, 3);
        return 0;
}

static int refresh_rotate_tx(conn *c, void *p, bool *keep) {
        rotate_args *x = p;
        int64_t generation = 0, expires = 0, rotated = 0;
        bool is_rotated = false;

        int r = token_read(c, x->presented, x->device_id, &generation, &expires, &rotated, &is_rotated);
        if (r >= 0)
                r = device_read(c, x->device_id, &x->res.device);
        if (r < 0)
                return r;
        if (x->res.device.revoked)
                return -EKEYREVOKED;

        if (is_rotated) {
                /* The same client racing itself (two refreshes with one
                 * token): refuse the loser without calling it theft. It gets
                 * no token, so an attacker gains nothing from the grace. */
                if (x->reuse_grace > 0 && x->now >= rotated && x->now - rotated <= x->reuse_grace)
                        return -EALREADY;

                /* RFC 9700 §4.14.2: a rotated refresh token came back, so two
                 * parties hold this token family: revoke the whole device. */
                char detail[128];
                snprintf(detail, sizeof detail,
                         "refresh token of generation %lld presented again (rotated at %lld): device revoked",
                         (long long) generation, (long long) rotated);
                store_audit reuse = {
                        .time = x->now, .event = "refresh_reuse", .user = x->res.device.user,
                        .device_id = x->device_id, .caller_uid = x->a ? x->a->caller_uid : -1,
                        .caller_pid = x->a ? x->a->caller_pid : -1, .detail = detail,
                };
                r = run(c, S_DEVICE_REVOKE, "itt", x->now, "refresh_reuse", x->device_id);
                if (r >= 0)
                        r = audit_insert(c, &reuse);
                if (r < 0)
                        return r;
                x->res.reuse_detected = true;
                x->res.device.revoked = true;
                x->res.device.revoked_at = x->now;
                snprintf(x->res.device.revoke_reason, sizeof x->res.device.revoke_reason, "refresh_reuse");
                *keep = true;
                return -EKEYREVOKED;
        }

        if (expires != 0 && x->now >= expires)
                return -EKEYEXPIRED;
        if (!x->new_hash)
                return 0; /* check only: the token is current */

        r = run(c, S_TOKEN_ROTATE, "ihh", x->now, x->new_hash, x->presented);
        if (r == 0)
                r = -EIO; /* cannot happen: the batch holds the write lock and saw it unrotated */
        if (r >= 0)
                r = run(c, S_TOKEN_INSERT, "htiii", x->new_hash, x->device_id, generation + 1, x->now,
                        x->new_expires);
        if (r >= 0)
                r = run(c, S_DEVICE_TOUCH, "it", x->now, x->device_id);
        if (r >= 0 && x->a)
                r = audit_insert(c, x->a);
        if (r < 0)
                return r;
        if (x->now > x->res.device.last_used)
                x->res.device.last_used = x->now;
        x->res.generation = (uint64_t) generation + 1;
        return 0;
}

int store_refresh_rotate(tokend_store *s, const char *device_id, const uint8_t presented_hash[STORE_HASH_LEN],
                         const uint8_t new_hash[STORE_HASH_LEN], int64_t now, int64_t new_expires,
                         int64_t reuse_grace, const store_audit *a, store_rotate_result *ret) {
        if (!s || !ret || !presented_hash || !str_ok(device_id, STORE_DEVICE_ID_MAX, true) ||
            new_expires < 0 || reuse_grace < 0 || (a && !audit_ok(a)))
                return -EINVAL;

        rotate_args x = { device_id, presented_hash, new_hash, now, new_expires, reuse_grace, a, {} };
        int r = write_op(s, refresh_rotate_tx, &x);
        if (r == 0 || r == -EALREADY || r == -EKEYREVOKED || r == -EKEYEXPIRED)
                *ret = x.res;
        return r;
}

/* ------------------------------------------------------------ jtis */

typedef struct jti_args {
        stmt_id id;
        const char *jti;
        int64_t expires;
} jti_args;

/* Revoked jti (upsert) or proof jti (insert: a duplicate is a replay). */
static int jti_insert_tx(conn *c, void *p, bool *keep _unused_) {
        jti_args *x = p;
        int r = run(c, x->id, "ti", x->jti, x->expires);
        return r < 0 ? r : 0;
}

int store_jti_revoke(tokend_store *s, const char *jti, int64_t expires) {
        if (!s || !str_ok(jti, STORE_JTI_MAX, true))
                return -EINVAL;
        jti_args x = { S_JTI_REVOKE, jti, expires };
        return write_op(s, jti_insert_tx, &x);
}

int store_proof_jti_use(tokend_store *s, const char *jti, int64_t expires) {
        if (!s || !str_ok(jti, STORE_JTI_MAX, true))
                return -EINVAL;
        jti_args x = { S_PROOF_INSERT, jti, expires };
        return write_op(s, jti_insert_tx, &x); /* primary key violation → -EEXIST */
}

int store_jti_is_revoked(tokend_store *s, const char *jti) {
        if (!s || !str_ok(jti, STORE_JTI_MAX, true))
                return -EINVAL;
        conn *c = reader_acquire(s);
        int r;
        {
                _cleanup_(stmt_reset) sqlite3_stmt *st = NULL;
                r = query(c, S_JTI_GET, &st, "t", jti);
                if (r >= 0)
                        r = step_row(c, st);
                if (r == -ENOENT)
                        r = 0;
        }
        reader_release(s, c);
        return r;
}

/* ------------------------------------------------------------ audit */

static int audit_add_tx(conn *c, void *p, bool *keep _unused_) {
        return audit_insert(c, p);
}

int store_audit_add(tokend_store *s, const store_audit *a) {
        if (!s || !audit_ok(a))
                return -EINVAL;
        return write_op(s, audit_add_tx, (void *) a);
}

typedef struct coalesce_args {
        const store_audit *a;
        int64_t window;
} coalesce_args;

/* The id of the row a's key started after since (0: none), or -errno. */
static int64_t audit_find(conn *c, const store_audit *a, int64_t since) {
        _cleanup_(stmt_reset) sqlite3_stmt *st = NULL;
        int r = query(c, S_AUDIT_FIND, &st, "tiittt", a->event, a->caller_uid, since, a->user, a->device_id,
                      a->detail);
        if (r >= 0)
                r = step_row(c, st);
        return r == -ENOENT ? 0 : r < 0 ? r : sqlite3_column_int64(st, 0);
}

/* Add a to the row it was found in (id > 0), or insert it. */
static int audit_join(conn *c, const store_audit *a, int64_t id) {
        int r = id > 0 ? run(c, S_AUDIT_BUMP, "ii", a->time, id) : audit_insert(c, a);
        return r < 0 ? r : 0;
}

static int audit_coalesce_tx(conn *c, void *p, bool *keep _unused_) {
        coalesce_args *x = p;
        const store_audit *a = x->a;
        int64_t since = a->time - x->window, id, rows;

        id = audit_find(c, a, since);
        if (id != 0)
                return id < 0 ? (int) id : audit_join(c, a, id);
        {
                _cleanup_(stmt_reset) sqlite3_stmt *st = NULL;
                int r = query(c, S_AUDIT_WINDOW_ROWS, &st, "tii", a->event, a->caller_uid, since);
                if (r >= 0)
                        r = step_row(c, st);
                if (r < 0)
                        return r;
                rows = sqlite3_column_int64(st, 0);
        }
        if (rows < STORE_AUDIT_COALESCE_KEYS)
                return audit_join(c, a, 0);

        /* Too many distinct keys (a caller varying user names, hosts…): the
         * rest of the window goes into one row. */
        char detail[128];
        snprintf(detail, sizeof detail, "more than %u distinct %s events of this caller within %llds: counted here",
                 STORE_AUDIT_COALESCE_KEYS, a->event, (long long) x->window);
        store_audit o = { .time = a->time, .event = a->event, .caller_uid = a->caller_uid,
                          .caller_pid = a->caller_pid, .detail = detail };
        id = audit_find(c, &o, since);
        return id < 0 ? (int) id : audit_join(c, &o, id);
}

int store_audit_coalesce(tokend_store *s, const store_audit *a, int64_t window) {
        if (!s || !audit_ok(a) || window < 1)
                return -EINVAL;
        coalesce_args x = { a, window };
        return write_op_full(s, audit_coalesce_tx, &x, true);
}

static void audit_row(sqlite3_stmt *st, void *p) {
        store_audit_entry *e = p;
        *e = (store_audit_entry){};
        e->id = sqlite3_column_int64(st, 0);
        e->time = sqlite3_column_int64(st, 1);
        copy_text(e->event, sizeof e->event, st, 2);
        copy_text(e->user, sizeof e->user, st, 3);
        copy_text(e->device_id, sizeof e->device_id, st, 4);
        e->caller_uid = sqlite3_column_int64(st, 5);
        e->caller_pid = sqlite3_column_int64(st, 6);
        copy_text(e->detail, sizeof e->detail, st, 7);
        e->count = sqlite3_column_int64(st, 8);
        e->last_time = sqlite3_column_type(st, 9) == SQLITE_NULL ? e->time : sqlite3_column_int64(st, 9);
}

int store_audit_list(tokend_store *s, const char *user, int64_t before, size_t limit, store_audit_entry **ret,
                     size_t *ret_n, bool *ret_more) {
        if (!s || !ret || !ret_n || !ret_more || limit == 0 || limit > STORE_PAGE_MAX || before < 0 ||
            !str_ok(user, STORE_USER_MAX, false))
                return -EINVAL;
        int64_t below = before > 0 ? before : INT64_MAX, lim = (int64_t) limit + 1;
        void **v = (void **) ret;
        if (user)
                return list_page(s, sizeof(store_audit_entry), audit_row, limit, v, ret_n, ret_more, S_AUDIT_USER,
                                 "tii", user, below, lim);
        return list_page(s, sizeof(store_audit_entry), audit_row, limit, v, ret_n, ret_more, S_AUDIT_ALL, "ii",
                         below, lim);
}

/* ------------------------------------------------------------ maintenance */

static int prune_tx(conn *c, void *p, bool *keep _unused_) {
        static const struct {
                stmt_id id;
                int64_t before_now; /* the bound is now - this */
        } steps[] = {
                { S_PRUNE_CHAINS, 0 },
                { S_PRUNE_ROTATED, STORE_RETENTION },
                { S_PRUNE_JTIS, PRUNE_MARGIN },
                { S_PRUNE_PROOFS, PRUNE_MARGIN },
                { S_PRUNE_REVOKED_DEVICES, STORE_RETENTION },
                { S_PRUNE_DEAD_DEVICES, STORE_RETENTION },
                { S_PRUNE_AUDIT, STORE_RETENTION },
        };
        int64_t now = *(const int64_t *) p, total = 0;

        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                int r = run(c, steps[i].id, "i", now - steps[i].before_now);
                if (r < 0)
                        return r;
                total += r;
        }
        return total > INT32_MAX ? INT32_MAX : (int) total;
}

int store_prune(tokend_store *s, int64_t now) {
        if (!s)
                return -EINVAL;
        return write_op(s, prune_tx, &now);
}

int store_integrity_check(tokend_store *s) {
        char buf[64];
        int r;

        if (!s)
                return -EINVAL;
        conn *c = reader_acquire(s);
        r = pragma_text(c->db, "PRAGMA integrity_check", buf, sizeof buf);
        if (r >= 0)
                r = r > 0 && streq(buf, "ok") ? 0 : -EUCLEAN;
        if (r >= 0) {
                /* Any row names a dangling reference. */
                r = pragma_text(c->db, "PRAGMA foreign_key_check", buf, sizeof buf);
                if (r > 0)
                        r = -EUCLEAN;
        }
        reader_release(s, c);
        return r;
}
