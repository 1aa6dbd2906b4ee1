/* Device listing and revocation, the JWKS, and the JSON shapes of answers. */
#include <stdlib.h>
#include <string.h>

#include "jose-claims.h"
#include "macro.h"
#include "tokend-log.h"
#include "tokend-service-internal.h"

td_code td_identity(tokend *t, const td_caller *c, const char *bearer, td_user *ret, td_status *st) {
        if (bearer) {
                at_claims cl = { 0 };
                td_code tc = td_check_access_token(t, bearer, NULL, &cl, st);
                if (tc != TD_OK)
                        return tc;
                int r = user_by_name(cl.sub, ret);
                at_claims_done(&cl);
                if (r < 0)
                        return td_fail(st, TD_INVALID_TOKEN, "the token's user no longer exists");
                return TD_OK;
        }
        if (user_by_uid(c->uid, ret) < 0)
                return td_fail(st, TD_FORBIDDEN, "the calling uid %u has no user name", (unsigned) c->uid);
        return TD_OK;
}

static json_t *device_to_json(const store_device *d) {
        json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:I,s:I,s:b,s:b}", "id", d->id, "user", d->user, "uid",
                              (json_int_t) d->uid, "name", d->name, "created", (json_int_t) d->created, "last_used",
                              (json_int_t) d->last_used, "has_key", d->has_public_key, "revoked", d->revoked);
        if (j && d->revoked) {
                json_object_set_new(j, "revoked_at", json_integer(d->revoked_at));
                json_object_set_new(j, "revoke_reason", json_string(d->revoke_reason));
        }
        return j;
}

td_code td_devices_list(tokend *t, const td_caller *c, const char *bearer, const char *user, json_t **ret,
                        td_status *st) {
        _cleanup_(freep) store_device *v = NULL;
        size_t n = 0;
        td_user me;
        td_code tc;
        int r;

        tokend_rdlock(t);
        if ((tc = td_identity(t, c, bearer, &me, st)) != TD_OK)
                goto out;
        /* Admin rights come from the kernel-verified caller, never a token. */
        bool admin = user_is_admin(c->uid, t->config->admin_group);
        if (user && !user_name_valid(user)) {
                tc = td_fail(st, TD_INVALID_REQUEST, "user is not a valid user name");
                goto out;
        }
        if (user && !admin && !streq(user, me.name)) {
                tc = td_fail(st, TD_FORBIDDEN, "only an admin may list another user's devices");
                goto out;
        }
        r = store_devices_list(t->store, user ? user : admin ? NULL : me.name, &v, &n);
        if (r < 0) {
                tc = td_store_fail(st, r, "listing devices");
                goto out;
        }
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, device_to_json(&v[i])) < 0) {
                        json_decref(a);
                        a = NULL;
                }
        if (!a) {
                tc = td_fail(st, TD_INTERNAL, "out of memory");
                goto out;
        }
        *ret = a;
        tc = TD_OK;
out:
        tokend_unlock(t);
        return tc;
}

td_code td_device_revoke(tokend *t, const td_caller *c, const char *bearer, const char *device_id,
                         td_status *st) {
        store_device d;
        td_user me;
        td_code tc;
        int r;

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
        r = store_device_revoke(t->store, d.id, admin && !streq(d.user, me.name) ? "admin" : "owner", &a);
        if (r < 0) {
                tc = td_store_fail(st, r, "revoking the device");
                goto out;
        }
        if (r > 0)
                td_device_revoked(t, d.user, d.id);
        tc = TD_OK;
out:
        tokend_unlock(t);
        return tc;
}

td_code td_jwks(tokend *t, json_t **ret, td_status *st) {
        tokend_rdlock(t);
        int r = jose_keyset_to_jwks(t->keys.keys, ret);
        tokend_unlock(t);
        if (r < 0)
                return td_fail(st, TD_INTERNAL, "cannot export the public keys");
        return TD_OK;
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
