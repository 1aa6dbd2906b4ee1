/* SPDX-License-Identifier: MIT */
/* Access-token claims (RFC 9068, RFC 7519 §4.1): the builder behind
 * tokend's issue path and the strict checker behind every verify. The
 * checker types every claim before it compares any, so a claim of the
 * wrong type is always -EBADMSG, never "absent" or "mismatch". */
#include <errno.h>
#include <string.h>

#include "b64.h"
#include "jose-claims.h"
#include "json-util.h"

#define AT_UID_MAX 4294967294LL /* (uid_t) -1 is "no user" */

/* A claim string: 1..AT_MAX_STRING bytes, no NUL. */
static bool claim_string_ok(const char *s) {
        size_t n;

        if (!s)
                return false;
        n = strnlen(s, AT_MAX_STRING + 1);
        return n > 0 && n <= AT_MAX_STRING;
}

/* The string value of member key, copied. Returns 0, -ENOENT (absent),
 * -EBADMSG (not a string, empty, too long, embedded NUL), -ENOMEM. */
static int claim_get_string(const json_t *obj, const char *key, char **ret) {
        const json_t *v = json_object_get(obj, key);
        const char *s;
        char *copy;

        if (!v)
                return -ENOENT;
        if (!json_is_string(v))
                return -EBADMSG;
        s = json_string_value(v);
        if (json_string_length(v) != strlen(s) || !claim_string_ok(s))
                return -EBADMSG;
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static int claim_required_string(const json_t *obj, const char *key, char **ret) {
        int r = claim_get_string(obj, key, ret);

        return r == -ENOENT ? -EBADMSG : r;
}

/* RFC 7519 §4.1.3: aud is one string or an array of strings. */
static int claim_get_aud(const json_t *payload, at_claims *c) {
        const json_t *aud = json_object_get(payload, "aud");
        size_t n;
        int r;

        if (!aud)
                return -EBADMSG;
        if (json_is_string(aud))
                n = 1;
        else if (json_is_array(aud)) {
                n = json_array_size(aud);
                if (n == 0 || n > AT_MAX_AUD)
                        return -EBADMSG;
        } else
                return -EBADMSG;

        c->aud = calloc(n, sizeof(char *));
        if (!c->aud)
                return -ENOMEM;
        if (json_is_string(aud)) {
                r = claim_required_string(payload, "aud", &c->aud[0]);
                if (r < 0)
                        return r;
                c->n_aud = 1;
                return 0;
        }
        for (size_t i = 0; i < n; i++) {
                const json_t *a = json_array_get(aud, i);
                const char *s = json_string_value(a);

                if (!json_is_string(a) || json_string_length(a) != strlen(s) || !claim_string_ok(s))
                        return -EBADMSG;
                c->aud[i] = strdup(s);
                if (!c->aud[i])
                        return -ENOMEM;
                c->n_aud = i + 1;
        }
        return 0;
}

/* NumericDate (RFC 7519 §2) as an integer in 0..AT_TIME_MAX. A string,
 * a fraction, 1e300 or an overflowing literal are -EBADMSG, not absent. */
static int claim_get_time(const json_t *payload, const char *key, bool required, int64_t *ret) {
        int r = td_json_object_get_int_range(payload, key, 0, AT_TIME_MAX, ret);

        if (r == -ENOENT && !required) {
                *ret = 0;
                return 0;
        }
        return r == -ENOENT ? -EBADMSG : r;
}

/* RFC 7800 §3.1 / RFC 9449 §6.1: cnf is an object; we understand jkt. */
static int claim_get_cnf(const json_t *payload, char **ret) {
        const json_t *cnf = json_object_get(payload, "cnf");

        if (!cnf) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_object(cnf))
                return -EBADMSG;
        return claim_required_string(cnf, "jkt", ret);
}

/* Every claim typed and copied into c; no comparison yet. */
static int claims_parse(const json_t *header, const json_t *payload, at_claims *c) {
        const json_t *kid;
        int r;

        /* RFC 9068 §4: explicit typing, so an ID token or a DPoP proof
         * signed by the same key is never taken for an access token. */
        if (!streq_ptr(td_json_object_get_str(header, "typ"), AT_TYP))
                return -EBADMSG;
        kid = json_object_get(header, "kid");
        if (kid) {
                if (!json_is_string(kid) || json_string_length(kid) >= sizeof(c->kid))
                        return -EBADMSG;
                strcpy(c->kid, json_string_value(kid));
        }

        r = claim_required_string(payload, "iss", &c->iss);
        if (r < 0)
                return r;
        r = claim_required_string(payload, "sub", &c->sub);
        if (r < 0)
                return r;
        r = td_json_object_get_int_range(payload, "uid", 0, AT_UID_MAX, &c->uid);
        if (r == -ENOENT)
                c->uid = -1;
        else if (r < 0)
                return r;
        r = claim_get_aud(payload, c);
        if (r < 0)
                return r;
        r = claim_get_time(payload, "exp", true, &c->exp);
        if (r < 0)
                return r;
        r = claim_get_time(payload, "iat", true, &c->iat);
        if (r < 0)
                return r;
        r = claim_get_time(payload, "nbf", false, &c->nbf);
        if (r < 0)
                return r;
        r = claim_required_string(payload, "jti", &c->jti);
        if (r < 0)
                return r;
        r = claim_required_string(payload, "client_id", &c->client_id);
        if (r < 0)
                return r;
        r = claim_get_string(payload, "scope", &c->scope);
        if (r < 0 && r != -ENOENT)
                return r;
        return claim_get_cnf(payload, &c->cnf_jkt);
}

int at_claims_check(const json_t *header, const json_t *payload, const at_check *chk, at_claims *ret) {
        _cleanup_(at_claims_done) at_claims c = { .uid = -1 };
        bool aud_ok;
        int r;

        if (!chk || !chk->issuer || chk->skew < 0 || chk->skew > AT_TIME_MAX || !ret)
                return -EINVAL;
        if (!json_is_object(header) || !json_is_object(payload))
                return -EBADMSG;

        r = claims_parse(header, payload, &c);
        if (r < 0)
                return r;

        /* RFC 7519 §4.1.1 / RFC 9068 §4: iss compared byte for byte (both
         * are NUL-free, so strcmp is exact: no prefix, no substring). */
        if (!streq(c.iss, chk->issuer))
                return -EACCES;

        /* Times are within 0..AT_TIME_MAX and skew too: no overflow. */
        if (c.exp + chk->skew <= chk->now)
                return -EKEYEXPIRED;
        if (c.nbf - chk->skew > chk->now || c.iat - chk->skew > chk->now)
                return -ETIME;

        if (chk->audience) {
                aud_ok = false;
                for (size_t i = 0; i < c.n_aud; i++)
                        if (streq(c.aud[i], chk->audience))
                                aud_ok = true;
                if (!aud_ok)
                        return -EACCES;
        }

        *ret = c;
        c = (at_claims) {};
        return 0;
}

static int verify(const jose_keyset *ks, const char *token, size_t len, const at_check *chk, bool reopen,
                  at_claims *ret) {
        jws_result res;
        int r;

        if (!chk || !ret)
                return -EINVAL;
        r = reopen ? jws_reopen_verified(ks, token, len, 0, &res) : jws_verify(ks, token, len, 0, &res);
        if (r < 0)
                return r;
        r = at_claims_check(res.header, res.payload, chk, ret);
        jws_result_done(&res);
        return r;
}

int at_verify(const jose_keyset *ks, const char *token, size_t len, const at_check *chk, at_claims *ret) {
        return verify(ks, token, len, chk, false, ret);
}

int at_reverify(const jose_keyset *ks, const char *token, size_t len, const at_check *chk, at_claims *ret) {
        return verify(ks, token, len, chk, true, ret);
}

void at_claims_done(at_claims *c) {
        if (!c)
                return;
        free(c->iss);
        free(c->sub);
        for (size_t i = 0; i < c->n_aud; i++)
                free(c->aud[i]);
        free(c->aud);
        free(c->jti);
        free(c->client_id);
        free(c->scope);
        free(c->cnf_jkt);
        *c = (at_claims) { .uid = -1 };
}

/* ---- building ------------------------------------------------------ */

static int at_params_valid(const at_params *p) {
        if (!claim_string_ok(p->issuer) || !claim_string_ok(p->subject) || !claim_string_ok(p->client_id))
                return -EINVAL;
        if (p->uid > AT_UID_MAX)
                return -EINVAL;
        if (!p->aud || p->n_aud == 0 || p->n_aud > AT_MAX_AUD)
                return -EINVAL;
        for (size_t i = 0; i < p->n_aud; i++)
                if (!claim_string_ok(p->aud[i]))
                        return -EINVAL;
        if (p->iat < 0 || p->iat > AT_TIME_MAX || p->lifetime <= 0 || p->lifetime > AT_TIME_MAX - p->iat)
                return -EINVAL;
        if (p->scope && p->scope[0] && !claim_string_ok(p->scope))
                return -EINVAL;
        if (p->cnf_jkt && !claim_string_ok(p->cnf_jkt))
                return -EINVAL;
        if (p->jti && !claim_string_ok(p->jti))
                return -EINVAL;
        return 0;
}

/* json_string() answers NULL for invalid UTF-8, json_object_set_new()
 * then fails: both are the caller's bad input. */
static int set_str(json_t *obj, const char *key, const char *value) {
        return json_object_set_new(obj, key, json_string(value)) < 0 ? -EINVAL : 0;
}

static int set_int(json_t *obj, const char *key, json_int_t value) {
        return json_object_set_new(obj, key, json_integer(value)) < 0 ? -ENOMEM : 0;
}

static int at_claims_json(const at_params *p, const char *jti, json_t **ret) {
        _cleanup_(json_decrefp) json_t *c = json_object(), *aud = json_array(), *cnf = NULL;
        int r;

        if (!c || !aud)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_aud; i++)
                if (json_array_append_new(aud, json_string(p->aud[i])) < 0)
                        return -EINVAL;

        /* Insertion order is the wire order of DESIGN.md. */
        if ((r = set_str(c, "iss", p->issuer)) < 0 || (r = set_str(c, "sub", p->subject)) < 0 ||
            (!p->no_uid && (r = set_int(c, "uid", (json_int_t) p->uid)) < 0))
                return r;
        if (json_object_set(c, "aud", aud) < 0)
                return -ENOMEM;
        if ((r = set_int(c, "iat", p->iat)) < 0 || (r = set_int(c, "exp", p->iat + p->lifetime)) < 0 ||
            (r = set_str(c, "jti", jti)) < 0 || (r = set_str(c, "client_id", p->client_id)) < 0)
                return r;
        if (p->scope && p->scope[0] && (r = set_str(c, "scope", p->scope)) < 0)
                return r;
        if (p->cnf_jkt) {
                cnf = json_object();
                if (!cnf)
                        return -ENOMEM;
                if ((r = set_str(cnf, "jkt", p->cnf_jkt)) < 0)
                        return r;
                if (json_object_set(c, "cnf", cnf) < 0)
                        return -ENOMEM;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

int at_build(const jose_key *key, const at_params *p, char **ret, size_t *ret_len, char *ret_jti,
             size_t ret_jti_size) {
        _cleanup_(json_decrefp) json_t *claims = NULL;
        char random_jti[AT_MAX_STRING + 1];
        const char *jti;
        char *token;
        size_t token_len;
        int r;

        if (!key || !p || !ret)
                return -EINVAL;
        r = at_params_valid(p);
        if (r < 0)
                return r;

        if (p->jti)
                jti = p->jti;
        else {
                /* RFC 9068 §2.2 / RFC 7519 §4.1.7: unguessable, ≥ 128 bits. */
                r = b64url_random(AT_JTI_BYTES, random_jti, sizeof(random_jti));
                if (r < 0)
                        return r;
                jti = random_jti;
        }
        if (ret_jti && ret_jti_size <= strlen(jti))
                return -EINVAL;

        r = at_claims_json(p, jti, &claims);
        if (r < 0)
                return r;
        r = jws_sign_json(key, AT_TYP, claims, &token, &token_len);
        if (r < 0)
                return r;

        if (ret_jti)
                memcpy(ret_jti, jti, strlen(jti) + 1);
        *ret = token;
        if (ret_len)
                *ret_len = token_len;
        return 0;
}
