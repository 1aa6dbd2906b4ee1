/* SPDX-License-Identifier: MIT */
/* Listings (devices, audit log) and device revocation, and the JSON shapes
 * of answers (the JWKS: tokend-jwks.c). */
#include <stdlib.h>
#include <string.h>

#include "jose-claims.h"
#include "macro.h"
#include "tokend-log.h"
#include "tokend-paging.h"
#include "tokend-service-internal.h"

td_code td_identity(tokend *t, const td_caller *c, const char *bearer, td_user *ret, td_status *st) {
        if (bearer) {
                at_claims cl = { 0 };
                td_code tc = td_check_access_token(t, bearer, NULL, &cl, st);
                if (tc != TD_OK)
                        return tc;
                int r = user_cache_by_name(t->users, cl.sub, ret);
                at_claims_done(&cl);
                if (r < 0)
                        return td_fail(st, TD_INVALID_TOKEN, "the token's user no longer exists");
                return TD_OK;
        }
        if (td_caller_is_remote(c))
                return td_fail(st, TD_FORBIDDEN, "over the network this needs an Authorization: Bearer access token");
        if (user_by_uid(c->uid, ret) < 0)
                return td_fail(st, TD_FORBIDDEN, "the calling uid %u has no user name", (unsigned) c->uid);
        return TD_OK;
}

static json_t *device_to_json(const void *p) {
        const store_device *d = p;
        json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:I,s:I,s:b,s:b}", "id", d->id, "user", d->user, "uid",
                              (json_int_t) d->uid, "name", d->name, "created", (json_int_t) d->created, "last_used",
                              (json_int_t) d->last_used, "has_key", d->has_public_key, "revoked", d->revoked);
        if (j && d->revoked) {
                json_object_set_new(j, "revoked_at", json_integer(d->revoked_at));
                json_object_set_new(j, "revoke_reason", json_string(d->revoke_reason));
        }
        return j;
}

/* Where a page starts: after a device, or below an audit row id. */
typedef union list_pos {
        store_device_cursor device;
        int64_t before;
} list_pos;

/* One kind of listing: its answer key, rows, cursor and store call. */
typedef struct listing {
        const char *key;  /* "devices": the answer's member */
        const char *what; /* "devices": in messages */
        size_t size;      /* of one row */
        int (*decode)(const char *cursor, list_pos *ret);
        int (*fetch)(tokend_store *s, const char *user, const list_pos *pos, size_t limit, void **ret, size_t *ret_n,
                     bool *ret_more);
        int (*encode)(const void *row, char out[static TD_CURSOR_MAX + 1]);
        json_t *(*to_json)(const void *row);
} listing;

/* Who a listing is for: *ret_user is the user filter (NULL: everyone, for
 * admins only). Caller holds the read lock. */
static td_code listing_scope(tokend *t, const td_caller *c, const char *bearer, const char *user, const char *what,
                             const char **ret_user, td_user *me, td_status *st) {
        td_code tc = td_identity(t, c, bearer, me, st);
        if (tc != TD_OK)
                return tc;
        /* Admin rights come from the kernel-verified caller, never a token. */
        bool admin = user_is_admin(c->uid, t->config->admin_group);
        if (user && !user_name_valid(user))
                return td_fail(st, TD_INVALID_REQUEST, "user is not a valid user name");
        if (user && !admin && !streq(user, me->name))
                return td_fail(st, TD_FORBIDDEN, "only an admin may list another user's %s", what);
        *ret_user = user ? user : admin ? NULL : me->name;
        return TD_OK;
}

/* {"<key>": [to_json(each row)], "next_cursor": next (when non-empty)}. */
static td_code page_answer(const listing *l, const void *v, size_t n, const char *next, json_t **ret,
                           td_status *st) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, l->to_json((const uint8_t *) v + i * l->size)) < 0) {
                        json_decref(a);
                        a = NULL;
                }
        json_t *j = a ? json_pack("{s:o}", l->key, a) : NULL;
        if (j && *next && json_object_set_new(j, "next_cursor", json_string(next)) < 0) {
                json_decref(j);
                j = NULL;
        }
        if (!j)
                return td_fail(st, TD_INTERNAL, "internal error while building the %s listing", l->what);
        *ret = j;
        return TD_OK;
}

/* parse → validate → authorize → one page from the store → answer. */
static td_code list_page(tokend *t, const td_caller *c, const char *bearer, const char *user, const td_page_req *pg,
                         const listing *l, json_t **ret, td_status *st) {
        _cleanup_(freep) void *v = NULL;
        char next[TD_CURSOR_MAX + 1] = "";
        const char *scope = NULL;
        list_pos pos;
        size_t n = 0;
        bool more = false;
        td_user me;
        td_code tc;

        if (pg->limit < 0 || pg->limit > (int64_t) TD_PAGE_MAX)
                return td_fail(st, TD_INVALID_REQUEST, "limit must be 1-%u", TD_PAGE_MAX);
        size_t limit = pg->limit == 0 ? TD_PAGE_DEFAULT : (size_t) pg->limit;
        if (pg->cursor && l->decode(pg->cursor, &pos) < 0)
                return td_fail(st, TD_INVALID_REQUEST, "cursor is not a next_cursor of a listing of %s", l->what);
        tokend_rdlock(t);
        if ((tc = listing_scope(t, c, bearer, user, l->what, &scope, &me, st)) != TD_OK)
                goto out;
        int r = l->fetch(t->store, scope, pg->cursor ? &pos : NULL, limit, &v, &n, &more);
        if (r < 0) {
                tc = td_store_fail(st, r, "listing");
                goto out;
        }
        if (more && l->encode((const uint8_t *) v + (n - 1) * l->size, next) < 0) {
                tc = td_fail(st, TD_INTERNAL, "out of memory");
                goto out;
        }
        tc = page_answer(l, v, n, next, ret, st);
out:
        tokend_unlock(t);
        return tc;
}

static int device_decode(const char *cursor, list_pos *ret) {
        return td_cursor_device_decode(cursor, &ret->device);
}

static int device_fetch(tokend_store *s, const char *user, const list_pos *pos, size_t limit, void **ret,
                        size_t *ret_n, bool *ret_more) {
        store_device *v = NULL;
        int r = store_devices_list(s, user, pos ? &pos->device : NULL, limit, &v, ret_n, ret_more);
        *ret = v;
        return r;
}

static int device_encode(const void *row, char out[static TD_CURSOR_MAX + 1]) {
        return td_cursor_device_encode(row, out);
}

static const listing device_listing = {
        "devices", "devices", sizeof(store_device), device_decode, device_fetch, device_encode, device_to_json,
};

td_code td_devices_list(tokend *t, const td_caller *c, const char *bearer, const char *user,
                        const td_page_req *pg, json_t **ret, td_status *st) {
        if (td_verifier_refuses(t, st))
                return st->code;
        return list_page(t, c, bearer, user, pg, &device_listing, ret, st);
}

static json_t *audit_to_json(const void *p) {
        const store_audit_entry *e = p;
        return json_pack("{s:I,s:I,s:I,s:I,s:s,s:s,s:s,s:I,s:I,s:s}", "id", (json_int_t) e->id, "time",
                         (json_int_t) e->time, "last_time", (json_int_t) e->last_time, "count", (json_int_t) e->count,
                         "event", e->event, "user", e->user, "device_id", e->device_id, "caller_uid",
                         (json_int_t) e->caller_uid, "caller_pid", (json_int_t) e->caller_pid, "detail", e->detail);
}

static int audit_decode(const char *cursor, list_pos *ret) {
        return td_cursor_audit_decode(cursor, &ret->before);
}

static int audit_fetch(tokend_store *s, const char *user, const list_pos *pos, size_t limit, void **ret,
                       size_t *ret_n, bool *ret_more) {
        store_audit_entry *v = NULL;
        int r = store_audit_list(s, user, pos ? pos->before : 0, limit, &v, ret_n, ret_more);
        *ret = v;
        return r;
}

static int audit_encode(const void *row, char out[static TD_CURSOR_MAX + 1]) {
        return td_cursor_audit_encode(((const store_audit_entry *) row)->id, out);
}

static const listing audit_listing = {
        "audit", "audit rows", sizeof(store_audit_entry), audit_decode, audit_fetch, audit_encode, audit_to_json,
};

td_code td_audit_list(tokend *t, const td_caller *c, const char *bearer, const char *user, const td_page_req *pg,
                      json_t **ret, td_status *st) {
        return list_page(t, c, bearer, user, pg, &audit_listing, ret, st);
}

td_code td_device_revoke(tokend *t, const td_caller *c, const char *bearer, const char *device_id,
                         td_status *st) {
        store_device d;
        td_user me;
        td_code tc;
        int r;

        if (td_verifier_refuses(t, st))
                return st->code;

        if (!device_id || strlen(device_id) > STORE_DEVICE_ID_MAX || strncmp(device_id, "dev_", 4) != 0)
                return td_fail(st, TD_NOT_FOUND, "no such device");
        tokend_rdlock(t);
        if ((tc = td_identity(t, c, bearer, &me, st)) != TD_OK)
                goto out;
        r = store_device_get(t->store, device_id, &d);
        if (r == -ENOENT) {
                tc = td_fail(st, TD_NOT_FOUND, "no such device");
                goto out;
        }
        if (r < 0) {
                tc = td_store_fail(st, r, "reading the device");
                goto out;
        }
        bool admin = user_is_admin(c->uid, t->config->admin_group);
        if (!admin && !streq(d.user, me.name)) {
                td_audit(t, c, "revoke_denied", d.user, d.id, "requested by %s", me.name);
                tc = td_fail(st, TD_FORBIDDEN, "this device belongs to another user");
                goto out;
        }
        store_audit a = { .time = td_now(), .event = "revoke", .user = d.user, .device_id = d.id,
                          .caller_uid = c->uid, .caller_pid = c->pid, .detail = admin && !streq(d.user, me.name) ?
                          "by admin" : "by owner" };
        tc = td_revoke_device(t, d.user, d.id, admin && !streq(d.user, me.name) ? "admin" : "owner", &a, st);
out:
        tokend_unlock(t);
        return tc;
}

static json_t *strv_to_json(char *const *v) {
        json_t *a = json_array();
        for (size_t i = 0; a && v && v[i]; i++)
                if (json_array_append_new(a, json_string(v[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

json_t *td_tokens_to_json(const td_tokens *tok) {
        return json_pack("{s:s,s:s,s:I,s:s,s:I,s:s,s:{s:s,s:I,s:o}}", "access_token", tok->access_token,
                         "token_type", "Bearer", "expires_in", (json_int_t) tok->expires_in, "refresh_token",
                         tok->refresh_token, "refresh_expires_in", (json_int_t) tok->refresh_expires_in,
                         "device_id", tok->device_id, "user", "name", tok->user, "uid", (json_int_t) tok->uid,
                         "groups", strv_to_json(tok->groups));
}

json_t *td_introspection_to_json(const td_introspection *i) {
        json_t *j = json_pack("{s:b,s:s,s:I,s:o,s:I,s:I,s:s,s:s}", "active", 1, "sub", i->sub, "uid",
                              (json_int_t) i->uid, "aud", strv_to_json(i->aud), "exp", (json_int_t) i->exp, "iat",
                              (json_int_t) i->iat, "client_id", i->client_id, "jti", i->jti);
        if (j && i->scope)
                json_object_set_new(j, "scope", json_string(i->scope));
        return j;
}
