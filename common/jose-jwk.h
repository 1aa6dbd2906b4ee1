/* SPDX-License-Identifier: MIT */
/* JWK and JWKS (RFC 7517/7518, RFC 8037 for OKP): import of public keys
 * with every member checked, export of the public members. Private members
 * are never imported nor exported. */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "jose-key.h"
#include "jose-keyset.h"
#include "macro.h"

/* Import a public JWK (a JSON object). kty OKP/Ed25519, EC/P-256 or RSA; the
 * JWK's "alg", when present, must agree with the key type; an RSA key
 * without "alg" is bound to RS256 (RFC 7518 §3.1's recommended one), a PS256
 * key must say "alg":"PS256". Private members (d, p, q, dp, dq, qi, oth, k)
 * are refused with -EPERM; an unsupported kty/crv/alg is -EOPNOTSUPP; a key
 * for another purpose ("use" other than "sig", "key_ops" without "verify") is
 * -EKEYREJECTED; anything malformed is -EBADMSG. "kid" is taken from the JWK
 * when present (any string of 1..64 bytes, matched exactly, RFC 7517 §4.5:
 * escape it before printing), else computed. */
_warn_unused_result_ int jose_key_from_jwk(const json_t *jwk, jose_key **ret);

/* Public JWK: kty, crv/x/y or n/e, plus "kid", "alg", "use":"sig". New
 * reference in *ret. Returns 0, -EINVAL, -EIO, -ENOMEM. */
int jose_key_to_jwk(const jose_key *key, json_t **ret);

/* Called for each key of a JWKS that is left out: its index in "keys", its
 * "kid" (NULL when none; foreign text), and why (-EOPNOTSUPP, -EKEYREJECTED,
 * -EBADMSG as jose_key_from_jwk). */
typedef void (*jwks_skip_fn)(void *userdata, size_t index, const char *kid, int error);

/* Parse {"keys":[…]} (≤ 1 MiB, ≤ 100 keys). As RFC 7517 §5 asks, a key this
 * code cannot or must not use for verification (unsupported, other purpose,
 * malformed) is left out and reported through on_skip (may be NULL), not
 * fatal: the set may hold no key at all then. Fatal: a private member in any
 * key (-EPERM), two usable keys with one kid (-EEXIST), a set that is not
 * {"keys":[…]} (-EBADMSG), too large (-E2BIG), -ENOMEM. */
_warn_unused_result_ int jose_keyset_from_jwks(const char *json, size_t len, jwks_skip_fn on_skip, void *userdata,
                                               jose_keyset **ret);
/* {"keys":[public JWKs]} as a new reference. */
int jose_keyset_to_jwks(const jose_keyset *ks, json_t **ret);
