/* SPDX-License-Identifier: MIT */
/* Private to common/ (never installed, never included outside common/):
 * the key structure and the helpers jose-key.c (keys, PEM, sign/verify) and
 * jose-jwk.c (JWK/JWKS import and export, RFC 7638 thumbprints, key sets)
 * share. */
#pragma once

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdbool.h>
#include <stdint.h>

#include "jose-key.h"

#define ED25519_KEY_LEN 32U
#define P256_COORD_LEN 32U
#define RSA_MAX_BYTES (JOSE_RSA_MAX_BITS / 8)
#define JOSE_KID_MAX 64U

struct jose_key {
        jose_alg alg;
        EVP_PKEY *pkey;
        bool has_private;
        uint8_t ed_pk[ED25519_KEY_LEN];
        uint8_t *ed_sk; /* sodium_malloc'ed crypto_sign_SECRETKEYBYTES, private Ed25519 only */
        char thumbprint[JOSE_THUMBPRINT_LEN + 1];
        char kid[JOSE_KID_MAX + 1];
        /* ES256/RS256/PS256: digest contexts initialised once (SHA-256,
         * padding), copied per operation so that no call repeats the
         * provider fetches; NULL when unavailable (then a fresh init). Only
         * ever read after construction, so keys can be shared by threads. */
        EVP_MD_CTX *sign_tmpl, *verify_tmpl;
        /* jose-jws.c: the base64url protected header jws_sign_json() emits
         * for this key and typ "at+jwt", and its parsed form, built and
         * checked once (jws_key_cache_header). A token carrying exactly
         * these header bytes skips the header decode, parse and policy
         * run; jws_verify hands out references to jws_header. NULL when
         * not built. */
        char *jws_header_b64;
        size_t jws_header_b64_len;
        json_t *jws_header;
};

static inline void EVP_PKEY_freep(EVP_PKEY **p) {
        EVP_PKEY_free(*p);
}
static inline void EVP_PKEY_CTX_freep(EVP_PKEY_CTX **p) {
        EVP_PKEY_CTX_free(*p);
}
static inline void BN_freep(BIGNUM **p) {
        BN_free(*p);
}
static inline void OSSL_PARAM_BLD_freep(OSSL_PARAM_BLD **p) {
        OSSL_PARAM_BLD_free(*p);
}
static inline void OSSL_PARAM_freep(OSSL_PARAM **p) {
        OSSL_PARAM_free(*p);
}

/* sodium_init() once; 0 or -EIO. */
int jose_sodium_ready(void);

/* Wrap pkey (ownership taken on success only) as a key bound to alg;
 * private Ed25519 material is copied into sodium_malloc'ed memory. kid may
 * be NULL (then the thumbprint prefix). Returns 0, -EINVAL (kid too long),
 * -EIO, -ENOMEM, -EOPNOTSUPP (signature larger than JOSE_MAX_SIG_LEN). */
int jose_key_new_from_pkey(EVP_PKEY *pkey, jose_alg alg, bool has_private, const char *kid, jose_key **ret);

/* (jose-jwk.c) Fill key->thumbprint (RFC 7638) and, when key->kid is
 * empty, key->kid from it. Returns 0, -EIO, -ENOMEM. */
int jose_key_init_thumbprint(jose_key *key);

/* (jose-jws.c) Build key->jws_header_b64/jws_header once the key's alg and
 * kid are final. Best effort: on any failure the cache stays empty and
 * tokens take the full header path. */
void jws_key_cache_header(jose_key *key);
