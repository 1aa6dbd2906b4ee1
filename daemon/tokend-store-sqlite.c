/* SPDX-License-Identifier: MIT */
/* The SQLite backend's operations (store_sqlite_ops): each write runs as
 * one function inside the writer's group-commit transaction, each read on a
 * pooled read-only connection (tokend-store-sqlite-db.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokend-store-sqlite.h"

/* ------------------------------------------------------------ helpers */

static void copy_text(char *dst, size_t size, sqlite3_stmt *st, int col) {
        const unsigned char *t = sqlite3_column_text(st, col);
        snprintf(dst, size, "%s", t ? (const char *) t : "");
}

static int audit_insert(conn *c, const store_audit *a) {
        int r = sq_run(c, S_AUDIT_INSERT, "iitttiit", a->time, a->time, a->event, a->user, a->device_id,
                    a->caller_uid, a->caller_pid, a->detail);
        return r < 0 ? r : 0;
}

/* The feed's log entry of a revocation, in the revoking transaction. */
static int revocation_log(conn *c, store_revocation_kind kind, const char *id, int64_t at, int64_t until) {
        int r = sq_run(c, S_REVOCATION_INSERT, "itii", (int64_t) kind, id, at, until);
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
        _cleanup_(sq_stmt_reset) sqlite3_stmt *st = NULL;
        int r = sq_query(c, S_DEVICE_GET, &st, "t", id);
        if (r < 0)
                return r;
        r = sq_step_row(c, st);
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
                return sq_errno(c->db, rc);
        *ret = n > 0 ? TAKE_PTR(v) : NULL;
        *ret_n = n;
        return 0;
}

/* A page of a listing on a reader: statement id with the parameters of
 * fmt, the last one ('i') being the LIMIT, which must be limit + 1: the
 * extra row only tells that more follow and is not returned. */
static int list_page(store_backend *s, size_t elem_size, void (*from_row)(sqlite3_stmt *, void *), size_t limit,
                     void **ret, size_t *ret_n, bool *ret_more, stmt_id id, const char *fmt, ...) {
        void *v = NULL;
        size_t n = 0;
        va_list ap;
        int r;

        conn *c = sq_reader_acquire(s);
        {
                _cleanup_(sq_stmt_reset) sqlite3_stmt *st = NULL;
                va_start(ap, fmt);
                r = sq_vquery(c, id, &st, fmt, ap);
                va_end(ap);
                if (r >= 0)
                        r = collect_rows(c, st, elem_size, from_row, &v, &n);
        }
        sq_reader_release(s, c);
        if (r < 0)
                return r;
        store_page_finish(&v, &n, limit, ret_more);
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
        _cleanup_(sq_stmt_reset) sqlite3_stmt *st = NULL;
        int r = sq_query(c, S_DEVICES_COUNT, &st, "t", user);
        if (r >= 0)
                r = sq_step_row(c, st);
        if (r < 0)
                return r;
        int64_t n = sqlite3_column_int64(st, 0);
        sq_stmt_reset(&st);
        if (n < (int64_t) max_devices)
                return 0;
        int64_t excess = n - (int64_t) max_devices + 1;
        r = sq_run(c, S_DEVICES_EVICT, "tii", user, now, excess);
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
        r = sq_run(c, S_DEVICE_INSERT, "ttitiiki", d->id, d->user, (int64_t) d->uid, d->name, d->created,
                d->last_used, d->has_public_key ? d->public_key : NULL, d->password_auth);
        if (r >= 0)
                r = sq_run(c, S_TOKEN_INSERT, "htiii", x->hash, d->id, (int64_t) 1, d->created, x->expires);
        if (r >= 0 && x->a)
                r = audit_insert(c, x->a);
        return r < 0 ? r : 0;
}

static int sqlite_device_create(store_backend *s, const store_device *d, const uint8_t *refresh_hash,
                                int64_t refresh_expires, unsigned max_devices, const store_audit *a) {
        create_args x = { d, refresh_hash, refresh_expires, max_devices, a };
        return sq_write_op(s, device_create_tx, &x);
}

static int sqlite_device_get(store_backend *s, const char *id, store_device *ret) {
        conn *c = sq_reader_acquire(s);
        int r = device_read(c, id, ret);
        sq_reader_release(s, c);
        return r;
}

static void device_row(sqlite3_stmt *st, void *p) {
        device_from_row(st, p);
}

static int sqlite_devices_list(store_backend *s, const char *user, int64_t created, const char *id, size_t limit,
                               store_device **ret, size_t *ret_n, bool *ret_more) {
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
        int64_t when, feed_until;
        const store_audit *a;
} revoke_args;

static int device_revoke_tx(conn *c, void *p, bool *keep _unused_) {
        revoke_args *x = p;
        store_device d;
        int r = device_read(c, x->id, &d);
        if (r < 0 || d.revoked)
                return r < 0 ? r : 0;
        r = sq_run(c, S_DEVICE_REVOKE, "itt", x->when, x->reason, x->id);
        if (r >= 0)
                r = revocation_log(c, STORE_REVOKED_DEVICE, x->id, x->when, x->feed_until);
        if (r >= 0 && x->a)
                r = audit_insert(c, x->a);
        return r < 0 ? r : 1;
}

static int sqlite_device_revoke(store_backend *s, const char *id, const char *reason, int64_t when,
                                int64_t feed_until, const store_audit *a) {
        revoke_args x = { id, reason, when, feed_until, a };
        return sq_write_op(s, device_revoke_tx, &x);
}

typedef struct touch_args {
        const char *id;
        int64_t now;
} touch_args;

static int device_touch_tx(conn *c, void *p, bool *keep _unused_) {
        touch_args *x = p;
        int r = sq_run(c, S_DEVICE_TOUCH, "it", x->now, x->id);
        return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

static int sqlite_device_touch(store_backend *s, const char *id, int64_t now) {
        touch_args x = { id, now };
        return sq_write_op(s, device_touch_tx, &x);
}

/* ------------------------------------------------------------ rotation */

typedef struct rotate_args {
        const store_rotate_req *q;
        store_rotate_result *res;
} rotate_args;

/* The presented token, -ENOENT unless it exists and belongs to device_id. */
static int token_read(conn *c, const uint8_t *hash, const char *device_id, store_token_row *ret) {
        _cleanup_(sq_stmt_reset) sqlite3_stmt *st = NULL;
        int r = sq_query(c, S_TOKEN_GET, &st, "h", hash);
        if (r < 0)
                return r;
        r = sq_step_row(c, st);
        if (r < 0)
                return r;
        /* A token of another device is as unknown as no token. */
        const unsigned char *owner = sqlite3_column_text(st, 0);
        if (!owner || strcmp((const char *) owner, device_id) != 0)
                return -ENOENT;
        ret->generation = sqlite3_column_int64(st, 1);
        ret->expires = sqlite3_column_int64(st, 2);
        ret->is_rotated = sqlite3_column_type(st, 3) != SQLITE_NULL;
        ret->rotated = sqlite3_column_int64(st, 3);
        return 0;
}

/* The batch holds the write lock from the lookup to the commit: no other
 * rotation interleaves. */
static int refresh_rotate_tx(conn *c, void *p, bool *keep) {
        const store_rotate_req *q = ((rotate_args *) p)->q;
        store_rotate_result *res = ((rotate_args *) p)->res;
        store_token_row t = {};
        store_audit reuse;
        char detail[128];

        int r = token_read(c, q->presented, q->device_id, &t);
        if (r >= 0)
                r = device_read(c, q->device_id, &res->device);
        if (r < 0)
                return r;

        switch (store_rotate_verdict(q, res->device.revoked, &t)) {
        case VERDICT_REVOKED:
                return -EKEYREVOKED;
        case VERDICT_RACE:
                return -EALREADY;
        case VERDICT_REUSE:
                store_reuse_evidence(q, &t, res, detail, sizeof detail, &reuse);
                r = sq_run(c, S_DEVICE_REVOKE, "itt", q->now, "refresh_reuse", q->device_id);
                if (r >= 0)
                        r = revocation_log(c, STORE_REVOKED_DEVICE, q->device_id, q->now, q->feed_until);
                if (r >= 0)
                        r = audit_insert(c, &reuse);
                if (r < 0)
                        return r;
                *keep = true;
                return -EKEYREVOKED;
        case VERDICT_EXPIRED:
                return -EKEYEXPIRED;
        case VERDICT_CURRENT:
                return 0;
        case VERDICT_ROTATE:
                break;
        }

        r = sq_run(c, S_TOKEN_ROTATE, "ihh", q->now, q->new_hash, q->presented);
        if (r == 0)
                r = -EIO; /* cannot happen: the batch holds the write lock and saw it unrotated */
        if (r >= 0)
                r = sq_run(c, S_TOKEN_INSERT, "htiii", q->new_hash, q->device_id, t.generation + 1, q->now,
                        q->new_expires);
        if (r >= 0)
                r = sq_run(c, S_DEVICE_TOUCH, "it", q->now, q->device_id);
        if (r >= 0 && q->a)
                r = audit_insert(c, q->a);
        if (r < 0)
                return r;
        if (q->now > res->device.last_used)
                res->device.last_used = q->now;
        res->generation = (uint64_t) t.generation + 1;
        return 0;
}

static int sqlite_refresh_rotate(store_backend *s, const store_rotate_req *q, store_rotate_result *res) {
        rotate_args x = { q, res };
        return sq_write_op(s, refresh_rotate_tx, &x);
}

/* ------------------------------------------------------------ jtis */

typedef struct jti_args {
        stmt_id id;
        const char *jti;
        int64_t expires;
        int64_t now; /* revoked jtis: when, for the log entry */
} jti_args;

/* Revoked jti (upsert, and its log entry) or proof jti (insert: a
 * duplicate is a replay). */
static int jti_insert_tx(conn *c, void *p, bool *keep _unused_) {
        jti_args *x = p;
        int r = sq_run(c, x->id, "ti", x->jti, x->expires);
        if (r > 0 && x->id == S_JTI_REVOKE) /* new, or a later expiry: the feed says so */
                r = revocation_log(c, STORE_REVOKED_JTI, x->jti, x->now, x->expires);
        return r < 0 ? r : 0;
}

static int sqlite_jti_revoke(store_backend *s, const char *jti, int64_t now, int64_t expires) {
        jti_args x = { S_JTI_REVOKE, jti, expires, now };
        return sq_write_op(s, jti_insert_tx, &x);
}

static int sqlite_proof_jti_use(store_backend *s, const char *jti, int64_t expires) {
        jti_args x = { S_PROOF_INSERT, jti, expires, 0 };
        return sq_write_op(s, jti_insert_tx, &x); /* primary key violation → -EEXIST */
}

static int sqlite_jti_is_revoked(store_backend *s, const char *jti) {
        conn *c = sq_reader_acquire(s);
        int r;
        {
                _cleanup_(sq_stmt_reset) sqlite3_stmt *st = NULL;
                r = sq_query(c, S_JTI_GET, &st, "t", jti);
                if (r >= 0)
                        r = sq_step_row(c, st);
                if (r == -ENOENT)
                        r = 0;
        }
        sq_reader_release(s, c);
        return r;
}

static int sqlite_device_jti_get(store_backend *s, const char *id, const char *jti, store_device *ret,
                                 bool *ret_jti_revoked) {
        conn *c = sq_reader_acquire(s);
        int r;
        {
                _cleanup_(sq_stmt_reset) sqlite3_stmt *st = NULL;
                r = sq_query(c, S_DEVICE_JTI_GET, &st, "tt", id, jti);
                if (r >= 0)
                        r = sq_step_row(c, st);
                if (r >= 0) {
                        device_from_row(st, ret);
                        *ret_jti_revoked = sqlite3_column_int64(st, 10) != 0;
                }
        }
        sq_reader_release(s, c);
        return r < 0 ? r : 0;
}

/* ------------------------------------------------------------ audit */

static int audit_add_tx(conn *c, void *p, bool *keep _unused_) {
        return audit_insert(c, p);
}

static int sqlite_audit_add(store_backend *s, const store_audit *a) {
        return sq_write_op(s, audit_add_tx, (void *) a);
}

typedef struct coalesce_args {
        const store_audit *a;
        int64_t window;
} coalesce_args;

/* The id of the row a's key started after since (0: none), or -errno. */
static int64_t audit_find(conn *c, const store_audit *a, int64_t since) {
        _cleanup_(sq_stmt_reset) sqlite3_stmt *st = NULL;
        int r = sq_query(c, S_AUDIT_FIND, &st, "tiittt", a->event, a->caller_uid, since, a->user, a->device_id,
                      a->detail);
        if (r >= 0)
                r = sq_step_row(c, st);
        return r == -ENOENT ? 0 : r < 0 ? r : sqlite3_column_int64(st, 0);
}

/* Add a to the row it was found in (id > 0), or insert it. */
static int audit_join(conn *c, const store_audit *a, int64_t id) {
        int r = id > 0 ? sq_run(c, S_AUDIT_BUMP, "ii", a->time, id) : audit_insert(c, a);
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
                _cleanup_(sq_stmt_reset) sqlite3_stmt *st = NULL;
                int r = sq_query(c, S_AUDIT_WINDOW_ROWS, &st, "tii", a->event, a->caller_uid, since);
                if (r >= 0)
                        r = sq_step_row(c, st);
                if (r < 0)
                        return r;
                rows = sqlite3_column_int64(st, 0);
        }
        if (rows < STORE_AUDIT_COALESCE_KEYS)
                return audit_join(c, a, 0);

        char detail[128];
        store_audit o;
        store_audit_overflow(a, x->window, detail, sizeof detail, &o);
        id = audit_find(c, &o, since);
        return id < 0 ? (int) id : audit_join(c, &o, id);
}

static int sqlite_audit_coalesce(store_backend *s, const store_audit *a, int64_t window) {
        coalesce_args x = { a, window };
        return sq_write_op_full(s, audit_coalesce_tx, &x, true);
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

static int sqlite_audit_list(store_backend *s, const char *user, int64_t below, size_t limit,
                             store_audit_entry **ret, size_t *ret_n, bool *ret_more) {
        int64_t lim = (int64_t) limit + 1;
        void **v = (void **) ret;
        if (user)
                return list_page(s, sizeof(store_audit_entry), audit_row, limit, v, ret_n, ret_more, S_AUDIT_USER,
                                 "tii", user, below, lim);
        return list_page(s, sizeof(store_audit_entry), audit_row, limit, v, ret_n, ret_more, S_AUDIT_ALL, "ii",
                         below, lim);
}

/* ------------------------------------------------------------ maintenance */

static int prune_tx(conn *c, void *p, bool *keep _unused_) {
        static const stmt_id steps[_PRUNE_MAX] = {
                [PRUNE_CHAINS] = S_PRUNE_CHAINS,
                [PRUNE_ROTATED] = S_PRUNE_ROTATED,
                [PRUNE_JTIS] = S_PRUNE_JTIS,
                [PRUNE_PROOFS] = S_PRUNE_PROOFS,
                [PRUNE_REVOKED_DEVICES] = S_PRUNE_REVOKED_DEVICES,
                [PRUNE_DEAD_DEVICES] = S_PRUNE_DEAD_DEVICES,
                [PRUNE_AUDIT] = S_PRUNE_AUDIT,
                [PRUNE_KEYS] = S_PRUNE_KEYS,
                [PRUNE_REVOCATIONS] = S_PRUNE_REVOCATIONS,
        };
        int64_t now = *(const int64_t *) p, total = 0;

        for (size_t i = 0; i < _PRUNE_MAX; i++) {
                int r = sq_run(c, steps[i], "i", now - store_prune_before_now[i]);
                if (r < 0)
                        return r;
                total += r;
        }
        return total > INT32_MAX ? INT32_MAX : (int) total;
}

static int sqlite_prune(store_backend *s, int64_t now) {
        return sq_write_op(s, prune_tx, &now);
}

/* ------------------------------------------------------------ published keys */

typedef struct key_args {
        const char *kid, *jwk;
        int64_t now, retire_after;
} key_args;

static int key_publish_tx(conn *c, void *p, bool *keep _unused_) {
        key_args *x = p;
        int r = sq_run(c, S_KEY_PUBLISH, "ttii", x->kid, x->jwk, x->now, x->retire_after);
        return r < 0 ? r : 0;
}

static int sqlite_key_publish(store_backend *s, const char *kid, const char *jwk, int64_t now,
                              int64_t retire_after) {
        key_args x = { kid, jwk, now, retire_after };
        return sq_write_op(s, key_publish_tx, &x);
}

static void key_row(sqlite3_stmt *st, void *p) {
        store_published_key *k = p;
        copy_text(k->kid, sizeof k->kid, st, 0);
        copy_text(k->jwk, sizeof k->jwk, st, 1);
        k->published = sqlite3_column_int64(st, 2);
        k->retire_after = sqlite3_column_int64(st, 3);
}

static int sqlite_keys_list(store_backend *s, int64_t now, store_published_key **ret, size_t *ret_n) {
        bool more;
        return list_page(s, sizeof(store_published_key), key_row, STORE_KEYS_MAX, (void **) ret, ret_n, &more,
                         S_KEYS_LIST, "ii", now, (int64_t) STORE_KEYS_MAX);
}

/* ------------------------------------------------------------ revocation log */

static void revocation_row(sqlite3_stmt *st, void *p) {
        store_revocation *e = p;
        *e = (store_revocation){};
        e->seq = sqlite3_column_int64(st, 0);
        e->kind = sqlite3_column_int64(st, 1) == STORE_REVOKED_JTI ? STORE_REVOKED_JTI : STORE_REVOKED_DEVICE;
        copy_text(e->id, sizeof e->id, st, 2);
        e->at = sqlite3_column_int64(st, 3);
        e->until = sqlite3_column_int64(st, 4);
}

/* The page and the high mark in one read transaction (one snapshot): an
 * entry committed between the two reads would otherwise be skipped. */
static int sqlite_revocations_list(store_backend *s, int64_t after, int64_t valid_at, size_t limit,
                                   store_revocation **ret, size_t *ret_n, int64_t *ret_seq) {
        void *v = NULL;
        size_t n = 0;
        bool more;
        int64_t high = 0;
        conn *c = sq_reader_acquire(s);
        int r = sq_exec_sql(c->db, "BEGIN");
        if (r >= 0) {
                _cleanup_(sq_stmt_reset) sqlite3_stmt *st = NULL;
                r = sq_query(c, S_REVOCATIONS_AFTER, &st, "iii", after, valid_at, (int64_t) limit + 1);
                if (r >= 0)
                        r = collect_rows(c, st, sizeof(store_revocation), revocation_row, &v, &n);
        }
        if (r >= 0) {
                _cleanup_(sq_stmt_reset) sqlite3_stmt *st = NULL;
                r = sq_query(c, S_REVOCATIONS_HIGH, &st, "");
                if (r >= 0)
                        r = sq_step_row(c, st);
                if (r >= 0)
                        high = sqlite3_column_int64(st, 0);
        }
        (void) sq_exec_sql(c->db, "COMMIT");
        sq_reader_release(s, c);
        if (r < 0) {
                free(v);
                return r;
        }
        store_page_finish(&v, &n, limit, &more);
        *ret = v;
        *ret_n = n;
        *ret_seq = more ? ((store_revocation *) v)[n - 1].seq : high;
        return 0;
}

static int sqlite_integrity_check(store_backend *s) {
        char buf[64];
        int r;

        conn *c = sq_reader_acquire(s);
        r = sq_pragma_text(c->db, "PRAGMA integrity_check", buf, sizeof buf);
        if (r >= 0)
                r = r > 0 && streq(buf, "ok") ? 0 : -EUCLEAN;
        if (r >= 0) {
                /* Any row names a dangling reference. */
                r = sq_pragma_text(c->db, "PRAGMA foreign_key_check", buf, sizeof buf);
                if (r > 0)
                        r = -EUCLEAN;
        }
        sq_reader_release(s, c);
        return r;
}

const store_ops store_sqlite_ops = {
        .name = "sqlite",
        .open = sqlite_open,
        .close = sqlite_close,
        .schema_version = sqlite_schema_version,
        .integrity_check = sqlite_integrity_check,
        .device_create = sqlite_device_create,
        .refresh_rotate = sqlite_refresh_rotate,
        .device_get = sqlite_device_get,
        .devices_list = sqlite_devices_list,
        .device_revoke = sqlite_device_revoke,
        .device_touch = sqlite_device_touch,
        .jti_revoke = sqlite_jti_revoke,
        .jti_is_revoked = sqlite_jti_is_revoked,
        .device_jti_get = sqlite_device_jti_get,
        .proof_jti_use = sqlite_proof_jti_use,
        .audit_add = sqlite_audit_add,
        .audit_coalesce = sqlite_audit_coalesce,
        .audit_list = sqlite_audit_list,
        .prune = sqlite_prune,
        .key_publish = sqlite_key_publish,
        .keys_list = sqlite_keys_list,
        .revocations_list = sqlite_revocations_list,
};
