/* SPDX-License-Identifier: MIT */
/* Token introspection (RFC 7662) and revocation (RFC 7009) as service calls
 * (tokend-service.h): the OAuth endpoints only translate them. */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "jose-claims.h"
#include "macro.h"
#include "tokend-log.h"
#include "tokend-service-internal.h"

#define REFRESH_TOKEN_MAX 128U /* ours are 43 characters; longer is not ours */
#define CLIENT_ID_MAX 64U

static json_t *strv_n_to_json(char *const *v, size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_string(v[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

td_code td_introspect(tokend *t, const td_caller *c, const char *token, json_t **ret, td_status *st) {
        at_claims cl = { 0 };
        td_status ignored = { 0 };
        json_t *j;

        tokend_rdlock(t);
        /* Only resource servers may ask: root or an admin on the socket (the
         * kernel says who), a verified client certificate over TCP; never a
         * token's holder. */
        bool allowed = td_caller_is_remote(c) ? c->subject != NULL : user_is_admin(c->uid, t->config->admin_group);
        if (!allowed) {
                tokend_unlock(t);
                return td_fail(st, TD_FORBIDDEN, td_caller_is_remote(c)
                                       ? "introspection over the network needs a client certificate ([Network] ClientCA=)"
                                       : "introspection is for root and members of the admin group");
        }
        if (!token || !*token) {
                tokend_unlock(t);
                return td_fail(st, TD_INVALID_REQUEST, "token is required");
        }
        /* Why a token is inactive is not said (RFC 7662 §2.2): every failure,
         * a store error included, is {"active":false}. */
        td_code tc = td_check_access_token(t, token, NULL, &cl, &ignored);
        if (tc != TD_OK)
                j = json_pack("{s:b}", "active", 0);
        else {
                j = json_pack("{s:b,s:s,s:s,s:I,s:s,s:o,s:s,s:I,s:I,s:s,s:s}", "active", 1, "sub", cl.sub,
                              "username", cl.sub, "uid", (json_int_t) cl.uid, "client_id", cl.client_id, "aud",
                              strv_n_to_json(cl.aud, cl.n_aud), "iss", cl.iss, "exp", (json_int_t) cl.exp, "iat",
                              (json_int_t) cl.iat, "jti", cl.jti, "token_type", "Bearer");
                if (j && json_object_set_new(j, "scope", json_string(cl.scope ? cl.scope : "")) < 0) {
                        json_decref(j);
                        j = NULL;
                }
                if (j && cl.nbf > 0)
                        (void) json_object_set_new(j, "nbf", json_integer(cl.nbf));
                if (j && cl.cnf_jkt)
                        (void) json_object_set_new(j, "cnf", json_pack("{s:s}", "jkt", cl.cnf_jkt));
        }
        tokend_unlock(t);
        at_claims_done(&cl);
        if (!j)
                return td_fail(st, TD_INTERNAL, "out of memory");
        *ret = j;
        return TD_OK;
}

/* An access token: revoke its jti (this token only, not its device). */
static td_code revoke_access(tokend *t, const td_caller *c, const char *token, const char *client_id,
                             td_status *st) {
        at_claims cl = { 0 };
        td_status ignored = { 0 };
        td_code tc = TD_OK;

        if (td_check_access_token(t, token, NULL, &cl, &ignored) != TD_OK)
                return TD_OK; /* invalid, expired or already revoked: nothing to do (§2.2) */
        if (client_id && !streq(client_id, cl.client_id))
                tc = td_fail(st, TD_FORBIDDEN, "the token was not issued to client_id %s", client_id);
        else {
                int r = store_jti_revoke(t->store, cl.jti, cl.exp);
                store_audit a = { .time = td_now(), .event = "revoke_token", .user = cl.sub,
                                  .device_id = cl.client_id, .caller_uid = c->uid, .caller_pid = c->pid,
                                  .detail = cl.jti };
                if (r < 0)
                        tc = td_store_fail(st, r, "revoking the token");
                else if ((r = store_audit_add(t->store, &a)) < 0)
                        log_warning("audit event revoke_token could not be written, ignoring: %s", strerror(-r));
        }
        at_claims_done(&cl);
        return tc;
}

/* A refresh token of device client_id: when it is the device's current one
 * (or an already rotated one: the store then revokes the device as reuse),
 * the device is revoked, so every token of the family dies. */
static td_code revoke_refresh(tokend *t, const td_caller *c, const char *token, const char *client_id,
                              td_status *st) {
        uint8_t h[STORE_HASH_LEN];
        store_rotate_result rr;
        store_device d;
        int r;

        if (!client_id)
                return td_fail(st, TD_INVALID_REQUEST, "client_id (the device id) is required to revoke a "
                               "refresh token");
        if (strlen(client_id) > CLIENT_ID_MAX || strlen(token) > REFRESH_TOKEN_MAX)
                return TD_OK; /* not ours */
        r = store_device_get(t->store, client_id, &d);
        if (r == -ENOENT || r == -EINVAL)
                return TD_OK;
        if (r < 0)
                return td_store_fail(st, r, "reading the device");
        if (d.revoked)
                return TD_OK;
        crypto_hash_sha256(h, (const uint8_t *) token, strlen(token));
        r = store_refresh_rotate(t->store, d.id, h, NULL, td_now(), 0, t->config->refresh_reuse_grace, NULL, &rr);
        sodium_memzero(h, sizeof h);
        switch (r) {
        case 0:
        case -EKEYEXPIRED: {
                store_audit a = { .time = td_now(), .event = "revoke", .user = d.user, .device_id = d.id,
                                  .caller_uid = c->uid, .caller_pid = c->pid, .detail = "oauth2/revoke" };
                return td_revoke_device(t, d.user, d.id, "revoked", &a, st);
        }
        case -EKEYREVOKED:
                if (rr.reuse_detected)
                        td_device_revoked(t, d.user, d.id);
                return TD_OK;
        case -ENOENT:
        case -EALREADY:
        case -EINVAL:
                return TD_OK;
        default:
                return td_store_fail(st, r, "checking the refresh token");
        }
}

td_code td_revoke_token(tokend *t, const td_caller *c, const char *token, const char *client_id, td_status *st) {
        td_code tc;

        if (td_verifier_refuses(t, st)) /* revocations are the issuer's: they reach here through its feed */
                return st->code;
        if (!token || !*token)
                return td_fail(st, TD_INVALID_REQUEST, "token is required");
        tokend_rdlock(t);
        /* A JWS has two dots; our refresh tokens are base64url without any. */
        if (strchr(token, '.'))
                tc = revoke_access(t, c, token, client_id, st);
        else
                tc = revoke_refresh(t, c, token, client_id, st);
        tokend_unlock(t);
        return tc;
}
