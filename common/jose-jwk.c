/* SPDX-License-Identifier: MIT */
/* JWK (RFC 7517/7518, RFC 8037 for OKP): import of public keys with every
 * member checked, export of the public members, RFC 7638 thumbprints (which
 * double as our key ids); key sets and their JWKS form. */
#include "config.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <sodium.h>
#include <string.h>

#include "b64.h"
#include "jose-key-internal.h"
#include "json-util.h"

#define RSA_MAX_E_BYTES 8U
#define RSA_TRIAL_DIVISION_BOUND 4096U
#define JWKS_MAX_BYTES (1024U * 1024U)
#define JWKS_MAX_KEYS 100U

struct jose_keyset {
        jose_key **keys;
        size_t n;
};

/* ---- public components and thumbprint --------------------------------- */

/* base64url of a BIGNUM parameter without leading zero bytes
 * (RFC 7518 §6.3.1: n and e are unsigned big-endian, minimal). */
static int pkey_bn_param_b64(const EVP_PKEY *pkey, const char *name, size_t pad, char **ret) {
        _cleanup_(BN_freep) BIGNUM *bn = NULL;
        uint8_t buf[RSA_MAX_BYTES];
        int len;

        if (!EVP_PKEY_get_bn_param(pkey, name, &bn))
                return -EIO;
        if (pad > 0)
                len = pad <= sizeof(buf) ? BN_bn2binpad(bn, buf, (int) pad) : -1;
        else
                len = BN_num_bytes(bn) <= (int) sizeof(buf) ? BN_bn2bin(bn, buf) : -1;
        if (len < 0)
                return -EIO;
        return b64url_encode(buf, (size_t) len, ret);
}

/* The RFC 7638 §3.2 required members (base64url values) as a new JSON
 * object, kty first: the body of both the exported JWK and the thumbprint
 * input. Returns 0, -EINVAL, -EIO, -ENOMEM. */
static int key_public_jwk(const jose_key *key, json_t **ret) {
        _cleanup_(freep) char *a = NULL, *b = NULL;
        json_t *j;
        int r;

        switch (key->alg) {
        case JOSE_ALG_EDDSA:
                r = b64url_encode(key->ed_pk, sizeof(key->ed_pk), &a);
                if (r < 0)
                        return r;
                j = json_pack("{s:s,s:s,s:s}", "kty", "OKP", "crv", "Ed25519", "x", a);
                break;
        case JOSE_ALG_ES256:
                r = pkey_bn_param_b64(key->pkey, OSSL_PKEY_PARAM_EC_PUB_X, P256_COORD_LEN, &a);
                if (r >= 0)
                        r = pkey_bn_param_b64(key->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, P256_COORD_LEN, &b);
                if (r < 0)
                        return r;
                j = json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256", "x", a, "y", b);
                break;
        case JOSE_ALG_RS256:
        case JOSE_ALG_PS256:
                r = pkey_bn_param_b64(key->pkey, OSSL_PKEY_PARAM_RSA_N, 0, &a);
                if (r >= 0)
                        r = pkey_bn_param_b64(key->pkey, OSSL_PKEY_PARAM_RSA_E, 0, &b);
                if (r < 0)
                        return r;
                j = json_pack("{s:s,s:s,s:s}", "kty", "RSA", "n", a, "e", b);
                break;
        default:
                return -EINVAL;
        }
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

/* RFC 7638 §3.2/§3.3: required members only, lexicographic order
 * (JSON_SORT_KEYS: the names are ASCII), no whitespace; the values are
 * base64url or fixed names, so nothing is escaped. */
int jose_key_init_thumbprint(jose_key *key) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_(freep) char *s = NULL;
        uint8_t hash[crypto_hash_sha256_BYTES];
        int r;

        r = key_public_jwk(key, &j);
        if (r < 0)
                return r;
        s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s)
                return -ENOMEM;

        crypto_hash_sha256(hash, (const uint8_t *) s, strlen(s));
        sodium_bin2base64(key->thumbprint, sizeof(key->thumbprint), hash, sizeof(hash),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        if (key->kid[0] == 0) {
                memcpy(key->kid, key->thumbprint, JOSE_KID_LEN);
                key->kid[JOSE_KID_LEN] = 0;
        }
        return 0;
}

/* ---- JWK ----------------------------------------------------------------- */

/* Ed25519 public key: 32 bytes that decode to a point of the main subgroup
 * (libsodium also refuses small-order and non-canonical encodings). */
static int key_from_ed25519_pk(const uint8_t pk[static ED25519_KEY_LEN], const char *kid, jose_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        r = jose_sodium_ready();
        if (r < 0)
                return r;
        if (!crypto_core_ed25519_is_valid_point(pk))
                return -EBADMSG;
        pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, ED25519_KEY_LEN);
        if (!pkey) {
                ERR_clear_error();
                return -EIO;
        }
        r = jose_key_new_from_pkey(pkey, JOSE_ALG_EDDSA, false, kid, ret);
        if (r < 0)
                return r;
        TAKE_PTR(pkey);
        return 0;
}

int jose_key_from_ed25519_public(const uint8_t pk[static 32], jose_key **ret) {
        return key_from_ed25519_pk(pk, NULL, ret);
}

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
        const char *x = json_object_get_str(jwk, "x"), *y = json_object_get_str(jwk, "y");

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
        const char *s = json_object_get_str(jwk, name);
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

/* RFC 7517 §4.5: a kid is any string; ours are bounded and header-safe. */
static bool kid_valid(const char *kid) {
        size_t len = strlen(kid);

        if (len == 0 || len > JOSE_KID_MAX)
                return false;
        return strspn(kid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
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

        kty = json_object_get_str(jwk, "kty");
        if (!kty)
                return -EBADMSG;
        v = json_object_get(jwk, "alg");
        if (v) {
                alg = jose_alg_from_string(json_string_value(v));
                if (alg == JOSE_ALG_INVALID)
                        return -EBADMSG;
        }
        /* RFC 7517 §4.2: we only ever verify signatures. */
        v = json_object_get(jwk, "use");
        if (v && !streq_ptr(json_string_value(v), "sig"))
                return -EBADMSG;
        v = json_object_get(jwk, "kid");
        if (v) {
                kid = json_string_value(v);
                if (!kid || !kid_valid(kid))
                        return -EBADMSG;
        }

        if (streq(kty, "OKP")) {
                uint8_t pk[ED25519_KEY_LEN];
                const char *x;

                crv = json_object_get_str(jwk, "crv");
                if (!crv)
                        return -EBADMSG;
                if (!streq(crv, "Ed25519")) /* RFC 8037: Ed448, X25519, X448 */
                        return -EOPNOTSUPP;
                if (alg != JOSE_ALG_INVALID && alg != JOSE_ALG_EDDSA)
                        return -EBADMSG;
                x = json_object_get_str(jwk, "x");
                if (!x || b64url_decode_exact(x, strlen(x), pk, sizeof(pk)) < 0)
                        return -EBADMSG;
                return key_from_ed25519_pk(pk, kid, ret);
        }

        if (streq(kty, "EC")) {
                crv = json_object_get_str(jwk, "crv");
                if (!crv)
                        return -EBADMSG;
                if (!streq(crv, "P-256"))
                        return -EOPNOTSUPP;
                if (alg != JOSE_ALG_INVALID && alg != JOSE_ALG_ES256)
                        return -EBADMSG;
                want = JOSE_ALG_ES256;
                r = jwk_ec_pkey(jwk, &pkey);
        } else if (streq(kty, "RSA")) {
                /* The same modulus could verify RS256 or PS256; the JWK must
                 * say which one this key is bound to (RFC 8725 §3.1). */
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
        r = key_public_jwk(key, &j);
        if (r < 0)
                return r;
        if (json_object_set_new(j, "kid", json_string(key->kid)) < 0 ||
            json_object_set_new(j, "alg", json_string(jose_alg_to_string(key->alg))) < 0 ||
            json_object_set_new(j, "use", json_string("sig")) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(j);
        return 0;
}

void jose_key_thumbprint(const jose_key *key, char out[static JOSE_THUMBPRINT_LEN + 1]) {
        memcpy(out, key->thumbprint, JOSE_THUMBPRINT_LEN + 1);
}

/* ---- key sets ------------------------------------------------------------ */

int jose_keyset_new(jose_keyset **ret) {
        jose_keyset *ks = calloc(1, sizeof(*ks));

        if (!ks)
                return -ENOMEM;
        *ret = ks;
        return 0;
}

void jose_keyset_free(jose_keyset *ks) {
        if (!ks)
                return;
        for (size_t i = 0; i < ks->n; i++)
                jose_key_free(ks->keys[i]);
        free(ks->keys);
        free(ks);
}

size_t jose_keyset_size(const jose_keyset *ks) {
        return ks ? ks->n : 0;
}

const jose_key *jose_keyset_get(const jose_keyset *ks, size_t i) {
        return ks && i < ks->n ? ks->keys[i] : NULL;
}

const jose_key *jose_keyset_find(const jose_keyset *ks, const char *kid) {
        if (!ks || !kid)
                return NULL;
        for (size_t i = 0; i < ks->n; i++)
                if (streq(ks->keys[i]->kid, kid))
                        return ks->keys[i];
        return NULL;
}

int jose_keyset_add(jose_keyset *ks, jose_key *key) {
        jose_key **k;

        if (!ks || !key)
                return -EINVAL;
        if (jose_keyset_find(ks, key->kid))
                return -EEXIST;
        k = reallocarray(ks->keys, ks->n + 1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k[ks->n++] = key;
        ks->keys = k;
        return 0;
}

/* ---- JWKS ---------------------------------------------------------------- */

int jose_keyset_from_jwks(const char *json, size_t len, jose_keyset **ret) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        _cleanup_(json_decrefp) json_t *j = NULL;
        const json_t *keys, *v;
        size_t i;
        int r;

        r = json_parse_object(json, len, JWKS_MAX_BYTES, JSON_DEFAULT_MAX_DEPTH, &j, NULL);
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
        for (size_t i = 0; i < ks->n; i++) {
                json_t *jwk;

                r = jose_key_to_jwk(ks->keys[i], &jwk);
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