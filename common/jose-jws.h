/* SPDX-License-Identifier: MIT */
/* JWS compact serialization (RFC 7515 §7.1) signing and verification,
 * following RFC 8725: the algorithm comes from the key, never from the
 * token; "none" and HS* never verify; exactly three segments of
 * [A-Za-z0-9_-]; a byte cap applies before anything is split or decoded;
 * "crit" (any), "jku", "x5u", "x5c" and "jwk" headers are refused. */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "jose-key.h"
#include "jose-keyset.h"
#include "macro.h"

#define JWS_MAX_TOKEN_BYTES 16384U
#define JWS_MAX_HEADER_BYTES 1024U
/* The access-token typ (RFC 9068 §2.1). Access tokens are the hot path (one
 * verify per PAM authentication): for this typ the protected header of each
 * key is built once and kept with the key, so jws_sign_json reuses its bytes
 * and jws_verify skips decoding, parsing and checking a header that carries
 * exactly them. */
#define JWS_AT_TYP "at+jwt"

/* Sign exact header and payload bytes (the header is sent as given, so
 * known-answer tests can reproduce RFC examples). The header must be a JSON
 * object whose "alg" equals the key's algorithm, else -EINVAL. *ret is a
 * malloc'ed NUL-terminated compact JWS. Returns 0, -EINVAL, -ENOMEM, -EIO. */
int jws_sign_bytes(const jose_key *key, const void *header, size_t header_len, const void *payload,
                   size_t payload_len, char **ret);

/* Sign payload with header {"alg":<key alg>,"typ":typ,"kid":<key kid>}
 * (typ omitted when NULL). Optional ret_len receives strlen(*ret). */
int jws_sign_json(const jose_key *key, const char *typ, const json_t *payload, char **ret, size_t *ret_len);

typedef enum jws_flags {
        /* Accept a header without "kid" when the keyset holds exactly one
         * key (RFC examples, plain JWS from elsewhere). Off for tokens. */
        JWS_ALLOW_NO_KID = 1 << 0,
        /* RFC 9449 DPoP proofs: the header carries its public key as "jwk".
         * Allowed, and "kid" ignored, only when ks holds exactly one key, the
         * one the caller has already matched with that jwk (by thumbprint):
         * the signature is still checked with ks's key, never the jwk. */
        JWS_EMBEDDED_JWK = 1 << 1,
} jws_flags;

typedef struct jws_result {
        json_t *header;        /* owned reference; read-only: it may be shared with
                                  the key (our own access-token header, cached) */
        json_t *payload;       /* owned reference; NULL if payload is not a JSON object */
        uint8_t *payload_raw;  /* owned, NUL-terminated */
        size_t payload_len;
        const jose_key *key;   /* borrowed from the keyset */
} jws_result;

/* Verify token (len bytes, not necessarily NUL-terminated) against ks.
 * Returns 0 and fills *ret (release with jws_result_done) only for a valid
 * signature by a key of ks under that key's own algorithm. Errors:
 * -E2BIG over JWS_MAX_TOKEN_BYTES; -EBADMSG malformed (segments, charset,
 * base64url, header JSON, duplicate members, forbidden header, alg not the
 * key's alg or not a supported alg); -ENOKEY no key for kid;
 * -EKEYREJECTED bad signature. Nothing is written to *ret on failure. */
_warn_unused_result_ int jws_verify(const jose_keyset *ks, const char *token, size_t len, jws_flags flags,
                                    jws_result *ret);

/* jws_verify without the signature check, for a token that passed
 * jws_verify before, byte for byte, under a key still in ks (tokend's
 * verified-token cache knows that by a hash of the whole token): split,
 * header checked, payload decoded exactly as jws_verify does. Never for
 * anything else: it accepts any signature. */
_warn_unused_result_ int jws_reopen_verified(const jose_keyset *ks, const char *token, size_t len, jws_flags flags,
                                             jws_result *ret);

void jws_result_done(jws_result *r);

/* Cheap shape check used by pam_jwt's only_tokens and askpass: three
 * non-empty dot-separated segments of the base64url alphabet, len ≤ max. */
bool jws_looks_like_compact(const char *s, size_t len, size_t max);

/* Decode header and payload without verifying anything (tokenctl inspect).
 * Same size/charset/JSON rules as jws_verify. */
_warn_unused_result_ int jws_decode_unverified(const char *token, size_t len, json_t **ret_header,
                                               json_t **ret_payload);

/* Only the protected header, unverified (why a JWS with a non-JSON payload
 * was refused, say). Same size/charset/JSON rules as jws_verify. */
_warn_unused_result_ int jws_decode_header_unverified(const char *token, size_t len, json_t **ret_header);
