/* SPDX-License-Identifier: MIT */
/* JWK and JWKS (see jose-jwk.h): every member of an imported key checked
 * before OpenSSL builds it; export adds kid, alg and use to the public
 * members jose-key.c also hashes for the thumbprint. */
#include "config.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <sodium.h>
#include <string.h>

#include "b64.h"
#include "jose-jwk.h"
#include "jose-key-internal.h"
#include "json-util.h"

#define RSA_MAX_E_BYTES 8U
#define RSA_TRIAL_DIVISION_BOUND 4096U
#define JWKS_MAX_BYTES (1024U * 1024U)
#define JWKS_MAX_KEYS 100U

/* ---- JWK ----------------------------------------------------------------- */

/* Build a public key from params. public_check: run OpenSSL's public key
 * check, exact for EC (the point is on the curve, coordinates < p); RSA
 * moduli are checked by rsa_modulus_check() instead. */
static int pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld, bool public_check, EVP_PKEY **ret) {
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        _cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *check = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;

        params = OSSL_PARAM_BLD_to_param(bld);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
        if (!params || !ctx)
                return -ENOMEM;
        if (EVP_PKEY_fromdata_init(ctx) <= 0 || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
                ERR_clear_error();
                return -EBADMSG;
        }
        if (public_check) {
                check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
                if (!check)
                        return -ENOMEM;
                if (EVP_PKEY_public_check(check) != 1) {
                        ERR_clear_error();
                        return -EBADMSG;
                }
        }
        *ret = TAKE_PTR(pkey);
        return 0;
}

static int jwk_ec_pkey(const json_t *jwk, EVP_PKEY **ret) {
        _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
        uint8_t point[1U + 2U * P256_COORD_LEN];
        const char *x = td_json_object_get_str(jwk, "x"), *y = td_json_object_get_str(jwk, "y");

        if (!x || !y)
                return -EBADMSG;
        /* SEC 1 §2.3.3 uncompressed point: 04 || X || Y, fixed width
         * coordinates (RFC 7518 §6.2.1.2). */
        point[0] = POINT_CONVERSION_UNCOMPRESSED;
        if (b64url_decode_exact(x, strlen(x), point + 1, P256_COORD_LEN) < 0 ||
            b64url_decode_exact(y, strlen(y), point + 1 + P256_COORD_LEN, P256_COORD_LEN) < 0)
                return -EBADMSG;

        bld = OSSL_PARAM_BLD_new();
        if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1, 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
                return -ENOMEM;
        return pkey_fromdata("EC", bld, true, ret);
}

/* Decode an RSA integer member: canonical base64url, minimal (no leading
 * zero byte, RFC 7518 §6.3.1), at most max_len bytes. */
static int jwk_rsa_bn(const json_t *jwk, const char *name, size_t max_len, BIGNUM **ret) {
        _cleanup_(freep) uint8_t *buf = NULL;
        const char *s = td_json_object_get_str(jwk, name);
        size_t len;
        BIGNUM *bn;

        if (!s || strlen(s) > b64url_encoded_len(max_len))
                return -EBADMSG;
        if (b64url_decode(s, strlen(s), &buf, &len) < 0 || len == 0 || len > max_len || buf[0] == 0)
                return -EBADMSG;
        bn = BN_bin2bn(buf, (int) len, NULL);
        if (!bn)
                return -ENOMEM;
        *ret = bn;
        return 0;
}

static void BN_CTX_freep(BN_CTX **p) {
        BN_CTX_free(*p);
}

/* SP 800-56B §6.4.1.2.1, the deterministic part: the modulus is odd, has
 * no prime factor below RSA_TRIAL_DIVISION_BOUND and is not a (base-2
 * Fermat) probable prime. OpenSSL's EVP_PKEY_public_check() adds
 * Miller-Rabin on random bases, whose verdict on a malformed modulus (say
 * 3449·m) changes from call to call — found by fuzzing: one JWKS loaded on
 * one try and not on the next. A key set must load the same way every
 * time, and a bogus modulus in a JWKS its publisher controls endangers
 * nobody, so only these repeatable tests are made. n is public: no
 * constant-time arithmetic. Returns 0, -EBADMSG, -ENOMEM. */
static int rsa_modulus_check(const BIGNUM *n) {
        _cleanup_(BN_CTX_freep) BN_CTX *ctx = NULL;
        _cleanup_(BN_freep) BIGNUM *n1 = NULL, *two = NULL, *r = NULL;

        if (!BN_is_odd(n))
                return -EBADMSG;
        for (BN_ULONG p = 3; p < RSA_TRIAL_DIVISION_BOUND; p += 2) {
                bool prime = true;

                for (BN_ULONG d = 3; d * d <= p && prime; d += 2)
                        prime = p % d != 0;
                if (prime && BN_mod_word(n, p) == 0)
                        return -EBADMSG;
        }

        ctx = BN_CTX_new();
        n1 = BN_dup(n);
        two = BN_new();
        r = BN_new();
        if (!ctx || !n1 || !two || !r || !BN_sub_word(n1, 1) || !BN_set_word(two, 2) ||
            !BN_mod_exp(r, two, n1, n, ctx))
                return -ENOMEM;
        return BN_is_one(r) ? -EBADMSG : 0; /* 2^(n-1) ≡ 1: n is prime, not a modulus */
}

static int jwk_rsa_pkey(const json_t *jwk, EVP_PKEY **ret) {
        _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
        _cleanup_(BN_freep) BIGNUM *n = NULL, *e = NULL;
        int r, bits;

        r = jwk_rsa_bn(jwk, "n", RSA_MAX_BYTES, &n);
        if (r < 0)
                return r;
        r = jwk_rsa_bn(jwk, "e", RSA_MAX_E_BYTES, &e);
        if (r < 0)
                return r;
        bits = BN_num_bits(n);
        if (bits < JOSE_RSA_MIN_BITS || bits > JOSE_RSA_MAX_BITS)
                return -EOPNOTSUPP;
        /* e odd and > 1 (SP 800-56B §6.2.1 wants ≥ 65537; 3 exists in the wild). */
        if (!BN_is_odd(e) || BN_is_one(e))
                return -EBADMSG;
        r = rsa_modulus_check(n);
        if (r < 0)
                return r;

        bld = OSSL_PARAM_BLD_new();
        if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
                return -ENOMEM;
        return pkey_fromdata("RSA", bld, false, ret);
}

/* RFC 7517 §4.5: a kid is any string (case-sensitive, matched exactly);
 * ours are bounded. jansson has already refused NUL and ill-formed UTF-8;
 * callers escape a foreign kid before they print or log it. */
static bool kid_valid(const char *kid) {
        size_t len = strlen(kid);

        return len > 0 && len <= JOSE_KID_MAX;
}

/* RFC 7517 §4.2-4.3: "use", when present, must be "sig"; "key_ops", when
 * present, an array of strings that holds "verify" (the only operation a
 * public key does here). Returns 0, -EKEYREJECTED (a key for something
 * else), -EBADMSG (not a string / not an array of strings). */
static int jwk_check_purpose(const json_t *jwk) {
        const json_t *v, *op;
        bool verify = false;
        size_t i;

        v = json_object_get(jwk, "use");
        if (v) {
                if (!json_is_string(v))
                        return -EBADMSG;
                if (!streq(json_string_value(v), "sig"))
                        return -EKEYREJECTED;
        }
        v = json_object_get(jwk, "key_ops");
        if (!v)
                return 0;
        if (!json_is_array(v))
                return -EBADMSG;
        json_array_foreach (v, i, op) {
                if (!json_is_string(op))
                        return -EBADMSG;
                if (streq(json_string_value(op), "verify"))
                        verify = true;
        }
        return verify ? 0 : -EKEYREJECTED;
}

int jose_key_from_jwk(const json_t *jwk, jose_key **ret) {
        static const char *const private_members[] = { "d", "p", "q", "dp", "dq", "qi", "oth", "k" };
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        const json_t *v;
        const char *kty, *crv, *kid = NULL;
        jose_alg alg = JOSE_ALG_INVALID, want;
        int r;

        if (!json_is_object(jwk))
                return -EBADMSG;
        /* A private (or symmetric) key in a public key set is an operator
         * mistake that leaks a secret: refuse loudly, not as "malformed". */
        for (size_t i = 0; i < ELEMENTSOF(private_members); i++)
                if (json_object_get(jwk, private_members[i]))
                        return -EPERM;

        kty = td_json_object_get_str(jwk, "kty");
        if (!kty)
                return -EBADMSG;
        v = json_object_get(jwk, "alg");
        if (v) {
                if (!json_is_string(v))
                        return -EBADMSG;
                alg = jose_alg_from_string(json_string_value(v));
                if (alg == JOSE_ALG_INVALID) /* ES512, PS384, HS256, none, …: not ours */
                        return -EOPNOTSUPP;
        }
        r = jwk_check_purpose(jwk);
        if (r < 0)
                return r;
        v = json_object_get(jwk, "kid");
        if (v) {
                kid = json_string_value(v);
                if (!kid || !kid_valid(kid))
                        return -EBADMSG;
        }

        if (streq(kty, "OKP")) {
                uint8_t pk[ED25519_KEY_LEN];
                const char *x;

                crv = td_json_object_get_str(jwk, "crv");
                if (!crv)
                        return -EBADMSG;
                if (!streq(crv, "Ed25519")) /* RFC 8037: Ed448, X25519, X448 */
                        return -EOPNOTSUPP;
                if (alg != JOSE_ALG_INVALID && alg != JOSE_ALG_EDDSA)
                        return -EBADMSG;
                x = td_json_object_get_str(jwk, "x");
                if (!x || b64url_decode_exact(x, strlen(x), pk, sizeof(pk)) < 0)
                        return -EBADMSG;
                return jose_key_new_ed25519_public(pk, kid, ret);
        }

        if (streq(kty, "EC")) {
                crv = td_json_object_get_str(jwk, "crv");
                if (!crv)
                        return -EBADMSG;
                if (!streq(crv, "P-256"))
                        return -EOPNOTSUPP;
                if (alg != JOSE_ALG_INVALID && alg != JOSE_ALG_ES256)
                        return -EBADMSG;
                want = JOSE_ALG_ES256;
                r = jwk_ec_pkey(jwk, &pkey);
        } else if (streq(kty, "RSA")) {
                /* The same modulus could verify RS256 or PS256, and a key
                 * verifies under one algorithm only (RFC 8725 §3.1): the
                 * JWK's alg, else RS256, the one RFC 7518 §3.1 recommends
                 * (RFC 7520's keys say no alg). A PS256 key must say so. */
                if (alg == JOSE_ALG_INVALID)
                        alg = JOSE_ALG_RS256;
                if (alg != JOSE_ALG_RS256 && alg != JOSE_ALG_PS256)
                        return -EBADMSG;
                want = alg;
                r = jwk_rsa_pkey(jwk, &pkey);
        } else
                return -EOPNOTSUPP;
        if (r < 0)
                return r;

        r = jose_key_new_from_pkey(pkey, want, false, kid, ret);
        if (r < 0)
                return r;
        TAKE_PTR(pkey);
        return 0;
}

int jose_key_to_jwk(const jose_key *key, json_t **ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        int r;

        if (!key)
                return -EINVAL;
        r = jose_key_public_members(key, &j);
        if (r < 0)
                return r;
        if (json_object_set_new(j, "kid", json_string(jose_key_kid(key))) < 0 ||
            json_object_set_new(j, "alg", json_string(jose_alg_to_string(jose_key_alg(key)))) < 0 ||
            json_object_set_new(j, "use", json_string("sig")) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(j);
        return 0;
}

/* ---- JWKS ---------------------------------------------------------------- */

/* A key of a set that jose_keyset_from_jwks() leaves out, rather than
 * refusing the set: unsupported, for another purpose, or malformed. */
static bool jwk_skippable(int r) {
        return r == -EOPNOTSUPP || r == -EKEYREJECTED || r == -EBADMSG;
}

int jose_keyset_from_jwks(const char *json, size_t len, jwks_skip_fn on_skip, void *userdata, jose_keyset **ret) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        _cleanup_(json_decrefp) json_t *j = NULL;
        const json_t *keys, *v;
        size_t i;
        int r;

        r = td_json_parse_object(json, len, JWKS_MAX_BYTES, TD_JSON_DEFAULT_MAX_DEPTH, &j, NULL);
        if (r < 0)
                return r;
        keys = json_object_get(j, "keys");
        if (!json_is_array(keys))
                return -EBADMSG;
        if (json_array_size(keys) > JWKS_MAX_KEYS)
                return -E2BIG;

        r = jose_keyset_new(&ks);
        if (r < 0)
                return r;
        json_array_foreach (keys, i, v) {
                _cleanup_(jose_key_freep) jose_key *key = NULL;

                r = jose_key_from_jwk(v, &key);
                if (jwk_skippable(r)) {
                        if (on_skip)
                                on_skip(userdata, i, td_json_object_get_str(v, "kid"), r);
                        continue;
                }
                if (r < 0)
                        return r;
                r = jose_keyset_add(ks, key);
                if (r < 0)
                        return r;
                TAKE_PTR(key);
        }
        *ret = TAKE_PTR(ks);
        return 0;
}

int jose_keyset_to_jwks(const jose_keyset *ks, json_t **ret) {
        _cleanup_(json_decrefp) json_t *arr = NULL;
        json_t *j;
        int r;

        if (!ks)
                return -EINVAL;
        arr = json_array();
        if (!arr)
                return -ENOMEM;
        for (size_t i = 0; i < jose_keyset_size(ks); i++) {
                json_t *jwk;

                r = jose_key_to_jwk(jose_keyset_get(ks, i), &jwk);
                if (r < 0)
                        return r;
                if (json_array_append_new(arr, jwk) < 0)
                        return -ENOMEM;
        }
        j = json_pack("{s:O}", "keys", arr);
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}