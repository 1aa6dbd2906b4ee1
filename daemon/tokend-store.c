/* SPDX-License-Identifier: MIT */
/* The store interface (tokend-store.h): picks the backend from the
 * location (a path: SQLite, tokend-store-sqlite.c; a postgresql:// URI:
 * PostgreSQL, tokend-store-pg.c) and validates every argument once for
 * both; the rules they share are in tokend-store-rules.c. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokend-store-backend.h"

/* Until someone tells (tokend_new does, from the configuration): a day,
 * longer than any default token lifetime. */
#define FEED_HORIZON_DEFAULT ((int64_t) 24 * 3600)

struct tokend_store {
        const store_ops *ops;
        store_backend *b;
        _Atomic int64_t feed_horizon; /* store_set_feed_horizon; -1 until set */
        store_watch watch; /* store_set_watch(); .changed NULL: none */
};

static int64_t feed_horizon(tokend_store *s);

/* Tell the watcher what a committed write changed (key: device id, jti or
 * user; NULL for STORE_CHANGED_ALL). */
static void changed(tokend_store *s, store_change what, const char *key) {
        if (s->watch.changed)
                s->watch.changed(s->watch.userdata, what, key);
}

void store_set_watch(tokend_store *s, const store_watch *w) {
        s->watch = w ? *w : (store_watch){ 0 };
}

/* ------------------------------------------------------------ validation */

static bool str_ok(const char *s, size_t max, bool required) {
        if (!s)
                return !required;
        size_t n = strnlen(s, max + 1);
        return n <= max && (n > 0 || !required);
}

static bool audit_ok(const store_audit *a) {
        return a && str_ok(a->event, STORE_EVENT_MAX, true) && str_ok(a->user, STORE_USER_MAX, false) &&
               str_ok(a->device_id, STORE_DEVICE_ID_MAX, false) && str_ok(a->detail, STORE_AUDIT_DETAIL_MAX, false);
}

bool store_location_is_postgresql(const char *location) {
        return location && (strncmp(location, "postgresql://", 13) == 0 || strncmp(location, "postgres://", 11) == 0);
}

/* ------------------------------------------------------------ dispatch */

int store_open(const char *location, tokend_store **ret) {
        if (!location || !*location || !ret)
                return -EINVAL;
        const store_ops *ops = store_location_is_postgresql(location) ? &store_pg_ops : &store_sqlite_ops;
        tokend_store *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->ops = ops;
        atomic_init(&s->feed_horizon, -1); /* not set yet: FEED_HORIZON_DEFAULT */
        int r = ops->open(location, &s->b);
        if (r < 0) {
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

void store_close(tokend_store *s) {
        if (!s)
                return;
        s->ops->close(s->b);
        free(s);
}

const char *store_backend_name(tokend_store *s) {
        return s->ops->name;
}

int store_schema_version(tokend_store *s) {
        return s->ops->schema_version(s->b);
}

int store_integrity_check(tokend_store *s) {
        if (!s)
                return -EINVAL;
        return s->ops->integrity_check(s->b);
}

int store_device_create(tokend_store *s, const store_device *d, const uint8_t refresh_hash[STORE_HASH_LEN],
                        int64_t refresh_expires, unsigned max_devices, const store_audit *a) {
        if (!s || !d || !refresh_hash || d->revoked || !str_ok(d->id, STORE_DEVICE_ID_MAX, true) ||
            !str_ok(d->user, STORE_USER_MAX, true) || !str_ok(d->name, STORE_DEVICE_NAME_MAX, false) ||
            refresh_expires < 0 || max_devices == 0 || (a && !audit_ok(a)))
                return -EINVAL;
        int r = s->ops->device_create(s->b, d, refresh_hash, refresh_expires, max_devices, a);
        if (r >= 0) /* the cap may have deleted dead devices of the user */
                changed(s, STORE_CHANGED_USER, d->user);
        return r;
}

int store_refresh_rotate(tokend_store *s, const char *device_id, const uint8_t presented_hash[STORE_HASH_LEN],
                         const uint8_t new_hash[STORE_HASH_LEN], int64_t now, int64_t new_expires,
                         int64_t reuse_grace, const store_audit *a, store_rotate_result *ret) {
        if (!s || !ret || !presented_hash || !str_ok(device_id, STORE_DEVICE_ID_MAX, true) ||
            new_expires < 0 || reuse_grace < 0 || (a && !audit_ok(a)))
                return -EINVAL;

        store_rotate_req q = { device_id, presented_hash, new_hash, now, new_expires, reuse_grace,
                               now + feed_horizon(s), a };
        store_rotate_result res = {};
        int r = s->ops->refresh_rotate(s->b, &q, &res);
        if (r == 0 || r == -EALREADY || r == -EKEYREVOKED || r == -EKEYEXPIRED)
                *ret = res;
        if (r == -EKEYREVOKED && res.reuse_detected)
                changed(s, STORE_CHANGED_DEVICE, device_id);
        return r;
}

int store_device_get(tokend_store *s, const char *id, store_device *ret) {
        store_device d;

        if (!s || !ret || !str_ok(id, STORE_DEVICE_ID_MAX, true))
                return -EINVAL;
        int r = s->ops->device_get(s->b, id, &d);
        if (r < 0)
                return r;
        *ret = d;
        return 0;
}

int store_devices_list(tokend_store *s, const char *user, const store_device_cursor *after, size_t limit,
                       store_device **ret, size_t *ret_n, bool *ret_more) {
        if (!s || !ret || !ret_n || !ret_more || limit == 0 || limit > STORE_PAGE_MAX ||
            !str_ok(user, STORE_USER_MAX, false) || (after && !str_ok(after->id, STORE_DEVICE_ID_MAX, false)))
                return -EINVAL;
        /* No cursor: before every row ((created, id) > (INT64_MIN, "")). */
        return s->ops->devices_list(s->b, user, after ? after->created : INT64_MIN, after ? after->id : "", limit,
                                    ret, ret_n, ret_more);
}

int store_device_revoke(tokend_store *s, const char *id, const char *reason, const store_audit *a) {
        if (!s || !str_ok(id, STORE_DEVICE_ID_MAX, true) || !str_ok(reason, STORE_REASON_MAX, true) ||
            (a && !audit_ok(a)))
                return -EINVAL;
        int64_t when = a ? a->time : (int64_t) time(NULL);
        int r = s->ops->device_revoke(s->b, id, reason, when, when + feed_horizon(s), a);
        if (r >= 0) /* also when it was revoked already */
                changed(s, STORE_CHANGED_DEVICE, id);
        return r;
}

int store_device_touch(tokend_store *s, const char *id, int64_t now) {
        if (!s || !str_ok(id, STORE_DEVICE_ID_MAX, true))
                return -EINVAL;
        return s->ops->device_touch(s->b, id, now);
}

int store_jti_revoke(tokend_store *s, const char *jti, int64_t expires) {
        if (!s || !str_ok(jti, STORE_JTI_MAX, true))
                return -EINVAL;
        int r = s->ops->jti_revoke(s->b, jti, (int64_t) time(NULL), expires);
        if (r >= 0)
                changed(s, STORE_CHANGED_JTI, jti);
        return r;
}

int store_jti_is_revoked(tokend_store *s, const char *jti) {
        if (!s || !str_ok(jti, STORE_JTI_MAX, true))
                return -EINVAL;
        return s->ops->jti_is_revoked(s->b, jti);
}

int store_device_jti_get(tokend_store *s, const char *id, const char *jti, store_device *ret,
                         bool *ret_jti_revoked) {
        store_device d;
        bool revoked = false;

        if (!s || !ret || !ret_jti_revoked || !str_ok(id, STORE_DEVICE_ID_MAX, true) ||
            !str_ok(jti, STORE_JTI_MAX, true))
                return -EINVAL;
        int r = s->ops->device_jti_get(s->b, id, jti, &d, &revoked);
        if (r < 0)
                return r;
        *ret = d;
        *ret_jti_revoked = revoked;
        return 0;
}

int store_proof_jti_use(tokend_store *s, const char *jti, int64_t expires) {
        if (!s || !str_ok(jti, STORE_JTI_MAX, true))
                return -EINVAL;
        return s->ops->proof_jti_use(s->b, jti, expires);
}

int store_audit_add(tokend_store *s, const store_audit *a) {
        if (!s || !audit_ok(a))
                return -EINVAL;
        return s->ops->audit_add(s->b, a);
}

int store_audit_coalesce(tokend_store *s, const store_audit *a, int64_t window) {
        if (!s || !audit_ok(a) || window < 1)
                return -EINVAL;
        return s->ops->audit_coalesce(s->b, a, window);
}

int store_audit_list(tokend_store *s, const char *user, int64_t before, size_t limit, store_audit_entry **ret,
                     size_t *ret_n, bool *ret_more) {
        if (!s || !ret || !ret_n || !ret_more || limit == 0 || limit > STORE_PAGE_MAX || before < 0 ||
            !str_ok(user, STORE_USER_MAX, false))
                return -EINVAL;
        return s->ops->audit_list(s->b, user, before > 0 ? before : INT64_MAX, limit, ret, ret_n, ret_more);
}

int store_prune(tokend_store *s, int64_t now) {
        if (!s)
                return -EINVAL;
        int r = s->ops->prune(s->b, now);
        if (r > 0) /* deleted devices, whose tokens must now fail as unknown */
                changed(s, STORE_CHANGED_ALL, NULL);
        return r;
}

int store_key_publish(tokend_store *s, const char *kid, const char *jwk, int64_t now, int64_t retire_after) {
        if (!s || !str_ok(kid, STORE_KID_MAX, true) || !str_ok(jwk, STORE_JWK_MAX, true) || retire_after <= now)
                return -EINVAL;
        return s->ops->key_publish(s->b, kid, jwk, now, retire_after);
}

int store_keys_list(tokend_store *s, int64_t now, store_published_key **ret, size_t *ret_n) {
        if (!s || !ret || !ret_n)
                return -EINVAL;
        return s->ops->keys_list(s->b, now, ret, ret_n);
}

void store_set_feed_horizon(tokend_store *s, int64_t seconds) {
        if (!s || seconds < 0)
                return;
        int64_t cur = atomic_load(&s->feed_horizon);
        while ((cur < 0 || seconds > cur) && !atomic_compare_exchange_weak(&s->feed_horizon, &cur, seconds))
                ;
}

static int64_t feed_horizon(tokend_store *s) {
        int64_t h = atomic_load(&s->feed_horizon);
        return h < 0 ? FEED_HORIZON_DEFAULT : h;
}

int store_revocations_list(tokend_store *s, int64_t after, int64_t valid_at, size_t limit, store_revocation **ret,
                           size_t *ret_n, int64_t *ret_seq) {
        if (!s || !ret || !ret_n || !ret_seq || after < 0 || limit == 0 || limit > STORE_PAGE_MAX)
                return -EINVAL;
        return s->ops->revocations_list(s->b, after, valid_at, limit, ret, ret_n, ret_seq);
}
