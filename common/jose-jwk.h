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
 * JWK's "alg", when present, must agree with the key type; RSA keys need
 * "alg" (RS256 or PS256). Private members (d, p, q, dp, dq, qi, oth, k) are
 * refused with -EPERM; anything malformed is -EBADMSG; an unsupported kty/crv
 * is -EOPNOTSUPP. "kid" is taken from the JWK when present (1..64 chars of
 * [A-Za-z0-9_.-]), else computed. */
_warn_unused_result_ int jose_key_from_jwk(const json_t *jwk, jose_key **ret);

/* Public JWK: kty, crv/x/y or n/e, plus "kid", "alg", "use":"sig". New
 * reference in *ret. Returns 0, -EINVAL, -EIO, -ENOMEM. */
int jose_key_to_jwk(const jose_key *key, json_t **ret);

/* Parse {"keys":[…]} (≤ 1 MiB, ≤ 100 keys). Every key must import; duplicate
 * kids → -EEXIST; errors as jose_key_from_jwk. */
_warn_unused_result_ int jose_keyset_from_jwks(const char *json, size_t len, jose_keyset **ret);
/* {"keys":[public JWKs]} as a new reference. */
int jose_keyset_to_jwks(const jose_keyset *ks, json_t **ret);
