/* SPDX-License-Identifier: MIT */
/* The PostgreSQL backend's operations (store_pg_ops); several tokends may
 * share the database. Every write of one device's state takes the device
 * row first (SELECT … FOR UPDATE), then its refresh tokens: one lock order,
 * so a refresh and a revoke of one device, on any issuer, serialise instead
 * of deadlocking (a refresh-vs-revoke race lets a revoked device refresh
 * once more). A rotation is a conditional UPDATE … WHERE rotated IS NULL
 * RETURNING under that lock; no row back is then told apart (unknown,
 * reuse, race within the grace, expired) by reading the token. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokend-store-pg.h"

/* ------------------------------------------------------------ rows */

static void device_from_row(const PGresult *res, int row, store_device *d) {
        *d = (store_device){};
        pg_col_text(d->id, sizeof d->id, res, row, 0);
        pg_col_text(d->user, sizeof d->user, res, row, 1);
        d->uid = (uid_t) pg_col_i64(res, row, 2);
        pg_col_text(d->name, sizeof d->name, res, row, 3);
        d->created = pg_col_i64(res, row, 4);
        d->last_used = pg_col_i64(res, row, 5);
        if (!pg_col_null(res, row, 6)) {
                size_t n = 0;
                unsigned char *k = PQunescapeBytea((const unsigned char *) PQgetvalue(res, row, 6), &n);
                if (k && n == STORE_DEVICE_KEY_LEN) {
                        memcpy(d->public_key, k, STORE_DEVICE_KEY_LEN);
                        d->has_public_key = true;
                }
                PQfreemem(k);
        }
        if (!pg_col_null(res, row, 7)) {
                d->revoked = true;
                d->revoked_at = pg_col_i64(res, row, 7);
                pg_col_text(d->revoke_reason, sizeof d->revoke_reason, res, row, 8);
        }
        d->password_auth = pg_col_i64(res, row, 9); /* NULL → 0 */
}

static void audit_from_row(const PGresult *res, int row, store_audit_entry *e) {
        *e = (store_audit_entry){};
        e->id = pg_col_i64(res, row, 0);
        e->time = pg_col_i64(res, row, 1);
        pg_col_text(e->event, sizeof e->event, res, row, 2);
        pg_col_text(e->user, sizeof e->user, res, row, 3);
        pg_col_text(e->device_id, sizeof e->device_id, res, row, 4);
        e->caller_uid = pg_col_i64(res, row, 5);
        e->caller_pid = pg_col_i64(res, row, 6);
        pg_col_text(e->detail, sizeof e->detail, res, row, 7);
        e->count = pg_col_i64(res, row, 8);
        e->last_time = pg_col_null(res, row, 9) ? e->time : pg_col_i64(res, row, 9);
}

/* The rows of a listing page (fetched with LIMIT limit + 1) as an array. */
static int page_from_rows(const PGresult *res, size_t elem_size, void (*from_row)(const PGresult *, int, void *),
                          size_t limit, void **ret, size_t *ret_n, bool *ret_more) {
        size_t n = (size_t) PQntuples(res);
        void *v = NULL;
        if (n > 0) {
                v = calloc(n, elem_size);
                if (!v)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                from_row(res, (int) i, (uint8_t *) v + i * elem_size);
        store_page_finish(&v, &n, limit, ret_more);
        *ret = v;
        *ret_n = n;
        return 0;
}

static void device_row(const PGresult *res, int row, void *p) {
        device_from_row(res, row, p);
}

static void audit_row(const PGresult *res, int row, void *p) {
        audit_from_row(res, row, p);
}

static int audit_insert(pgconn *c, const store_audit *a) {
        int r = pg_run(c, P_AUDIT_INSERT, "iitttiit", a->time, a->time, a->event, a->user, a->device_id,
                       a->caller_uid, a->caller_pid, a->detail);
        return r < 0 ? r : 0;
}

/* The feed's log entry of a revocation, in the revoking transaction. */
static int revocation_log(pgconn *c, store_revocation_kind kind, const char *id, int64_t at, int64_t until) {
        int r = pg_run(c, P_REVOCATION_INSERT, "itii", (int64_t) kind, id, at, until);
        return r < 0 ? r : 0;
}

/* The device a query for one id answered (r its result): 0, -ENOENT, -errno. */
static int device_answer(int r, const PGresult *res, store_device *ret) {
        if (r < 0)
                return r;
        if (PQntuples(res) != 1)
                return -ENOENT;
        device_from_row(res, 0, ret);
        return 0;
}

/* The device row, locked until the transaction ends: 0 or -ENOENT. */
static int device_lock(pgconn *c, const char *id, store_device *ret) {
        _cleanup_(pg_clearp) PGresult *res = NULL;
        int r = pg_exec(c, P_DEVICE_LOCK, &res, "t", id);
        return device_answer(r, res, ret);
}

/* ------------------------------------------------------------ devices */

typedef struct create_args {
        const store_device *d;
        const uint8_t *hash;
        int64_t expires;
        unsigned max_devices;
        const store_audit *a;
} create_args;

static int device_create_tx(pgconn *c, void *p, bool *keep _unused_) {
        create_args *x = p;
        const store_device *d = x->d;
        _cleanup_(pg_clearp) PGresult *res = NULL;

        /* The cap: count and evict under the user's lock (every issuer). */
        int r = pg_run(c, P_USER_LOCK, "t", d->user);
        if (r >= 0)
                r = pg_exec(c, P_DEVICES_COUNT, &res, "t", d->user);
        if (r < 0)
                return r;
        int64_t n = pg_col_i64(res, 0, 0);
        if (n >= (int64_t) x->max_devices) {
                int64_t excess = n - (int64_t) x->max_devices + 1;
                r = pg_run(c, P_DEVICES_EVICT, "tii", d->user, d->created, excess);
                if (r < 0)
                        return r;
                if (r < excess)
                        return -EDQUOT;
        }
        r = pg_run(c, P_DEVICE_INSERT, "ttitiiki", d->id, d->user, (int64_t) d->uid, d->name, d->created,
                   d->last_used, d->has_public_key ? d->public_key : NULL, d->password_auth);
        if (r >= 0)
                r = pg_run(c, P_TOKEN_INSERT, "htiii", x->hash, d->id, (int64_t) 1, d->created, x->expires);
        if (r >= 0 && x->a)
                r = audit_insert(c, x->a);
        return r < 0 ? r : 0;
}

static int pg_device_create(store_backend *b, const store_device *d, const uint8_t *refresh_hash,
                            int64_t refresh_expires, unsigned max_devices, const store_audit *a) {
        create_args x = { d, refresh_hash, refresh_expires, max_devices, a };
        return pg_tx(b, device_create_tx, &x);
}

static int pg_device_get(store_backend *b, const char *id, store_device *ret) {
        _cleanup_(pg_clearp) PGresult *res = NULL;
        int r = pg_read(b, &res, P_DEVICE_GET, "t", id);
        return device_answer(r, res, ret);
}

static int pg_devices_list(store_backend *b, const char *user, int64_t created, const char *id, size_t limit,
                           store_device **ret, size_t *ret_n, bool *ret_more) {
        _cleanup_(pg_clearp) PGresult *res = NULL;
        int64_t lim = (int64_t) limit + 1;
        int r = user ? pg_read(b, &res, P_DEVICES_USER, "titi", user, created, id, lim)
                     : pg_read(b, &res, P_DEVICES_ALL, "iti", created, id, lim);
        if (r < 0)
                return r;
        return page_from_rows(res, sizeof(store_device), device_row, limit, (void **) ret, ret_n, ret_more);
}

typedef struct revoke_args {
        const char *id, *reason;
        int64_t when, feed_until;
        const store_audit *a;
} revoke_args;

static int device_revoke_tx(pgconn *c, void *p, bool *keep _unused_) {
        revoke_args *x = p;
        store_device d;
        int r = device_lock(c, x->id, &d);
        if (r < 0 || d.revoked)
                return r < 0 ? r : 0;
        r = pg_run(c, P_DEVICE_REVOKE, "itt", x->when, x->reason, x->id);
        if (r >= 0)
                r = revocation_log(c, STORE_REVOKED_DEVICE, x->id, x->when, x->feed_until);
        if (r >= 0 && x->a)
                r = audit_insert(c, x->a);
        return r < 0 ? r : 1;
}

static int pg_device_revoke(store_backend *b, const char *id, const char *reason, int64_t when,
                            int64_t feed_until, const store_audit *a) {
        revoke_args x = { id, reason, when, feed_until, a };
        return pg_tx(b, device_revoke_tx, &x);
}

typedef struct touch_args {
        const char *id;
        int64_t now;
} touch_args;

static int device_touch_tx(pgconn *c, void *p, bool *keep _unused_) {
        touch_args *x = p;
        int r = pg_run(c, P_DEVICE_TOUCH, "it", x->now, x->id);
        return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

static int pg_device_touch(store_backend *b, const char *id, int64_t now) {
        touch_args x = { id, now };
        return pg_tx(b, device_touch_tx, &x);
}

/* ------------------------------------------------------------ rotation */

typedef struct rotate_args {
        const store_rotate_req *q;
        store_rotate_result *res;
} rotate_args;

/* The presented token: 0, or -ENOENT unless it exists and is device_id's. */
static int token_read(pgconn *c, const store_rotate_req *q, store_token_row *ret) {
        _cleanup_(pg_clearp) PGresult *res = NULL;
        int r = pg_exec(c, P_TOKEN_GET, &res, "h", q->presented);
        if (r < 0)
                return r;
        /* A token of another device is as unknown as no token. */
        if (PQntuples(res) != 1 || !streq(PQgetvalue(res, 0, 0), q->device_id))
                return -ENOENT;
        *ret = (store_token_row){ .generation = pg_col_i64(res, 0, 1), .expires = pg_col_i64(res, 0, 2),
                                  .is_rotated = !pg_col_null(res, 0, 3), .rotated = pg_col_i64(res, 0, 3) };
        return 0;
}

static int refresh_rotate_tx(pgconn *c, void *p, bool *keep) {
        const store_rotate_req *q = ((rotate_args *) p)->q;
        store_rotate_result *res = ((rotate_args *) p)->res;
        store_token_row t = {};
        store_audit reuse;
        char detail[128];

        *res = (store_rotate_result){};
        int r = device_lock(c, q->device_id, &res->device);
        if (r < 0)
                return r;
        if (!res->device.revoked && q->new_hash) {
                /* The common case in one statement: rotate a current token. */
                _cleanup_(pg_clearp) PGresult *rot = NULL;
                r = pg_exec(c, P_TOKEN_ROTATE, &rot, "ihht", q->now, q->new_hash, q->presented, q->device_id);
                if (r < 0)
                        return r;
                if (PQntuples(rot) == 1) {
                        t.generation = pg_col_i64(rot, 0, 0);
                        goto rotated;
                }
        }
        /* No row rotated: unknown, revoked, reused, raced or expired. */
        r = token_read(c, q, &t);
        if (r < 0)
                return r;
        switch (store_rotate_verdict(q, res->device.revoked, &t)) {
        case VERDICT_REVOKED:
                return -EKEYREVOKED;
        case VERDICT_RACE:
                return -EALREADY;
        case VERDICT_REUSE:
                store_reuse_evidence(q, &t, res, detail, sizeof detail, &reuse);
                r = pg_run(c, P_DEVICE_REVOKE, "itt", q->now, "refresh_reuse", q->device_id);
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
                return q->new_hash ? -EIO : 0; /* current, yet not rotated under the lock: cannot happen */
        case VERDICT_ROTATE:
                return -EIO;
        }
        return -EIO;

rotated:
        r = pg_run(c, P_TOKEN_INSERT, "htiii", q->new_hash, q->device_id, t.generation + 1, q->now,
                   q->new_expires);
        if (r >= 0)
                r = pg_run(c, P_DEVICE_TOUCH, "it", q->now, q->device_id);
        if (r >= 0 && q->a)
                r = audit_insert(c, q->a);
        if (r < 0)
                return r;
        if (q->now > res->device.last_used)
                res->device.last_used = q->now;
        res->generation = (uint64_t) t.generation + 1;
        return 0;
}

static int pg_refresh_rotate(store_backend *b, const store_rotate_req *q, store_rotate_result *res) {
        rotate_args x = { q, res };
        return pg_tx(b, refresh_rotate_tx, &x);
}

/* ------------------------------------------------------------ jtis */

typedef struct jti_args {
        pg_stmt_id id;
        const char *jti;
        int64_t expires;
        int64_t now; /* revoked jtis: when, for the log entry */
} jti_args;

/* Revoked jti (upsert, and its log entry when new or later) or proof jti. */
static int jti_insert_tx(pgconn *c, void *p, bool *keep _unused_) {
        jti_args *x = p;
        int r = pg_run(c, x->id, "ti", x->jti, x->expires);
        if (r > 0 && x->id == P_JTI_REVOKE)
                r = revocation_log(c, STORE_REVOKED_JTI, x->jti, x->now, x->expires);
        return r < 0 ? r : 0;
}

static int pg_jti_revoke(store_backend *b, const char *jti, int64_t now, int64_t expires) {
        jti_args x = { P_JTI_REVOKE, jti, expires, now };
        return pg_tx(b, jti_insert_tx, &x);
}

static int pg_proof_jti_use(store_backend *b, const char *jti, int64_t expires) {
        jti_args x = { P_PROOF_INSERT, jti, expires, 0 };
        return pg_tx(b, jti_insert_tx, &x); /* unique violation → -EEXIST */
}

static int pg_jti_is_revoked(store_backend *b, const char *jti) {
        _cleanup_(pg_clearp) PGresult *res = NULL;
        int r = pg_read(b, &res, P_JTI_GET, "t", jti);
        return r < 0 ? r : PQntuples(res) > 0;
}

static int pg_device_jti_get(store_backend *b, const char *id, const char *jti, store_device *ret,
                             bool *ret_jti_revoked) {
        _cleanup_(pg_clearp) PGresult *res = NULL;
        int r = pg_read(b, &res, P_DEVICE_JTI_GET, "tt", id, jti);
        r = device_answer(r, res, ret);
        if (r == 0)
                *ret_jti_revoked = streq(PQgetvalue(res, 0, 10), "t");
        return r;
}

/* ------------------------------------------------------------ audit */

static int audit_add_tx(pgconn *c, void *p, bool *keep _unused_) {
        return audit_insert(c, p);
}

static int pg_audit_add(store_backend *b, const store_audit *a) {
        return pg_tx(b, audit_add_tx, (void *) a);
}

typedef struct coalesce_args {
        const store_audit *a;
        int64_t window;
} coalesce_args;

/* The id of the row a's key started after since (0: none), or -errno. */
static int64_t audit_find(pgconn *c, const store_audit *a, int64_t since) {
        _cleanup_(pg_clearp) PGresult *res = NULL;
        int r = pg_exec(c, P_AUDIT_FIND, &res, "tiittt", a->event, a->caller_uid, since, a->user, a->device_id,
                        a->detail);
        return r < 0 ? r : PQntuples(res) == 0 ? 0 : pg_col_i64(res, 0, 0);
}

static int audit_join(pgconn *c, const store_audit *a, int64_t id) {
        int r = id > 0 ? pg_run(c, P_AUDIT_BUMP, "ii", a->time, id) : audit_insert(c, a);
        return r < 0 ? r : 0;
}

static int audit_coalesce_tx(pgconn *c, void *p, bool *keep _unused_) {
        coalesce_args *x = p;
        const store_audit *a = x->a;
        int64_t since = a->time - x->window, id;
        _cleanup_(pg_clearp) PGresult *res = NULL;

        /* One event class of one caller at a time, whichever issuer. */
        int r = pg_run(c, P_AUDIT_LOCK, "ti", a->event, a->caller_uid);
        if (r < 0)
                return r;
        id = audit_find(c, a, since);
        if (id != 0)
                return id < 0 ? (int) id : audit_join(c, a, id);
        r = pg_exec(c, P_AUDIT_WINDOW_ROWS, &res, "tii", a->event, a->caller_uid, since);
        if (r < 0)
                return r;
        if (pg_col_i64(res, 0, 0) < STORE_AUDIT_COALESCE_KEYS)
                return audit_join(c, a, 0);
        char detail[128];
        store_audit o;
        store_audit_overflow(a, x->window, detail, sizeof detail, &o);
        id = audit_find(c, &o, since);
        return id < 0 ? (int) id : audit_join(c, &o, id);
}

static int pg_audit_coalesce(store_backend *b, const store_audit *a, int64_t window) {
        coalesce_args x = { a, window };
        /* As on SQLite: refusals need not survive a crash of the server. */
        return pg_tx_full(b, audit_coalesce_tx, &x, true);
}

static int pg_audit_list(store_backend *b, const char *user, int64_t below, size_t limit, store_audit_entry **ret,
                         size_t *ret_n, bool *ret_more) {
        _cleanup_(pg_clearp) PGresult *res = NULL;
        int64_t lim = (int64_t) limit + 1;
        int r = user ? pg_read(b, &res, P_AUDIT_USER, "tii", user, below, lim)
                     : pg_read(b, &res, P_AUDIT_ALL, "ii", below, lim);
        if (r < 0)
                return r;
        return page_from_rows(res, sizeof(store_audit_entry), audit_row, limit, (void **) ret, ret_n, ret_more);
}

/* ------------------------------------------------------------ maintenance */

static int prune_tx(pgconn *c, void *p, bool *keep _unused_) {
        static const pg_stmt_id steps[_PRUNE_MAX] = {
                [PRUNE_CHAINS] = P_PRUNE_CHAINS,
                [PRUNE_ROTATED] = P_PRUNE_ROTATED,
                [PRUNE_JTIS] = P_PRUNE_JTIS,
                [PRUNE_PROOFS] = P_PRUNE_PROOFS,
                [PRUNE_REVOKED_DEVICES] = P_PRUNE_REVOKED_DEVICES,
                [PRUNE_DEAD_DEVICES] = P_PRUNE_DEAD_DEVICES,
                [PRUNE_AUDIT] = P_PRUNE_AUDIT,
                [PRUNE_KEYS] = P_PRUNE_KEYS,
                [PRUNE_REVOCATIONS] = P_PRUNE_REVOCATIONS,
        };
        int64_t now = *(const int64_t *) p, total = 0;

        for (size_t i = 0; i < _PRUNE_MAX; i++) {
                int r = pg_run(c, steps[i], "i", now - store_prune_before_now[i]);
                if (r < 0)
                        return r;
                total += r;
        }
        int r = pg_run(c, P_PRUNE_MARKS, "i", (int64_t) PG_MARK_KEEP); /* not counted: bookkeeping, not state */
        if (r < 0)
                return r;
        return total > INT32_MAX ? INT32_MAX : (int) total;
}

static int pg_prune(store_backend *b, int64_t now) {
        return pg_tx(b, prune_tx, &now);
}

/* ------------------------------------------------------------ published keys */

typedef struct key_args {
        const char *kid, *jwk;
        int64_t now, retire_after;
} key_args;

static int key_publish_tx(pgconn *c, void *p, bool *keep _unused_) {
        key_args *x = p;
        int r = pg_run(c, P_KEY_PUBLISH, "ttii", x->kid, x->jwk, x->now, x->retire_after);
        return r < 0 ? r : 0;
}

static int pg_key_publish(store_backend *b, const char *kid, const char *jwk, int64_t now, int64_t retire_after) {
        key_args x = { kid, jwk, now, retire_after };
        return pg_tx(b, key_publish_tx, &x);
}

static void key_row(const PGresult *res, int row, void *p) {
        store_published_key *k = p;
        pg_col_text(k->kid, sizeof k->kid, res, row, 0);
        pg_col_text(k->jwk, sizeof k->jwk, res, row, 1);
        k->published = pg_col_i64(res, row, 2);
        k->retire_after = pg_col_i64(res, row, 3);
}

static int pg_keys_list(store_backend *b, int64_t now, store_published_key **ret, size_t *ret_n) {
        _cleanup_(pg_clearp) PGresult *res = NULL;
        bool more;
        int r = pg_read(b, &res, P_KEYS_LIST, "ii", now, (int64_t) STORE_KEYS_MAX);
        if (r < 0)
                return r;
        return page_from_rows(res, sizeof(store_published_key), key_row, STORE_KEYS_MAX, (void **) ret, ret_n,
                              &more);
}

/* ------------------------------------------------------------ revocation log */

static int pg_revocations_list(store_backend *b, int64_t after, int64_t valid_at, size_t limit,
                               store_revocation **ret, size_t *ret_n, int64_t *ret_seq) {
        _cleanup_(pg_clearp) PGresult *res = NULL;
        _cleanup_(freep) store_revocation *v = NULL;
        bool more;
        int r = pg_read(b, &res, P_REVOCATIONS_AFTER, "iii", after, valid_at, (int64_t) limit + 1);
        if (r < 0)
                return r;
        size_t rows = (size_t) PQntuples(res), n = 0;
        if (rows == 0)
                return -EIO; /* the counter row is gone */
        v = calloc(rows, sizeof *v);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < rows; i++) {
                if (pg_col_null(res, (int) i, 0))
                        continue; /* the empty page's one row */
                store_revocation *e = &v[n++];
                e->seq = pg_col_i64(res, (int) i, 0);
                e->kind = pg_col_i64(res, (int) i, 1) == STORE_REVOKED_JTI ? STORE_REVOKED_JTI : STORE_REVOKED_DEVICE;
                pg_col_text(e->id, sizeof e->id, res, (int) i, 2);
                e->at = pg_col_i64(res, (int) i, 3);
                e->until = pg_col_i64(res, (int) i, 4);
        }
        int64_t high = pg_col_i64(res, 0, 5);
        void *p = TAKE_PTR(v);
        store_page_finish(&p, &n, limit, &more);
        *ret = p;
        *ret_n = n;
        *ret_seq = more ? ((store_revocation *) p)[n - 1].seq : high;
        return 0;
}

const store_ops store_pg_ops = {
        .name = "postgresql",
        .open = pg_open,
        .close = pg_close,
        .schema_version = pg_schema_version,
        .integrity_check = pg_integrity_check,
        .device_create = pg_device_create,
        .refresh_rotate = pg_refresh_rotate,
        .device_get = pg_device_get,
        .devices_list = pg_devices_list,
        .device_revoke = pg_device_revoke,
        .device_touch = pg_device_touch,
        .jti_revoke = pg_jti_revoke,
        .jti_is_revoked = pg_jti_is_revoked,
        .device_jti_get = pg_device_jti_get,
        .proof_jti_use = pg_proof_jti_use,
        .audit_add = pg_audit_add,
        .audit_coalesce = pg_audit_coalesce,
        .audit_list = pg_audit_list,
        .prune = pg_prune,
        .key_publish = pg_key_publish,
        .keys_list = pg_keys_list,
        .revocations_list = pg_revocations_list,
};
