/* SPDX-License-Identifier: MIT */
/* Private to common/ (never installed, never included outside common/):
 * the key structure and the part of jose-key.c that the modules above it
 * need, jose-jwk.c (JWK import and export) and jose-jws.c (the per-key
 * header cache). Implemented by jose-key.c alone. */
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

/* The base64url protected header jws_sign_json() emits for a key and typ
 * "at+jwt", and its parsed form, built and checked once by jose-jws.c. A
 * token carrying exactly these header bytes skips the header decode, parse
 * and policy run; jws_verify hands out references to header. header NULL:
 * this key's header did not pass, tokens take the full path. */
typedef struct jose_key_jws_cache {
        json_t *header;
        size_t b64_len;
        char b64[]; /* NUL-terminated */
} jose_key_jws_cache;

/* Accepts NULL. */
void jose_key_jws_cache_free(jose_key_jws_cache *c);

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
        /* jose-jws.c's cache of this key's access-token header, built by
         * jose-jws.c on first use and installed once with an atomic
         * compare-and-swap (keys are shared by threads); read with an
         * atomic acquire load; freed with the key. NULL until built. */
        jose_key_jws_cache *jws_cache;
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

/* Ed25519 public key from 32 bytes that must decode to a point of the main
 * subgroup, with kid (NULL: the thumbprint prefix). Returns 0, -EBADMSG,
 * -EINVAL, -EIO, -ENOMEM. */
int jose_key_new_ed25519_public(const uint8_t pk[static ED25519_KEY_LEN], const char *kid, jose_key **ret);

/* The RFC 7638 §3.2 required members (base64url values) as a new JSON
 * object, kty first: the body of both the exported JWK and the thumbprint
 * input. Returns 0, -EINVAL, -EIO, -ENOMEM. */
int jose_key_public_members(const jose_key *key, json_t **ret);
