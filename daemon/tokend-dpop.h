/* SPDX-License-Identifier: MIT */
/* RFC 9449 DPoP proofs at the token endpoint: the `DPoP` header of a
 * refresh_token grant by a key-bound device. A compact JWS with header
 * typ "dpop+jwt", alg EdDSA (the only device-key algorithm) and the public
 * key as "jwk" (no private member); claims jti, htm, htu, iat. Checked
 * against the device's stored Ed25519 key: the jwk's RFC 7638 thumbprint
 * must be the device's (its tokens' cnf.jkt), and the signature is verified
 * with the stored key, never with the jwk. This is the store-free part; the
 * caller keeps the replay cache (store_proof_jti_use) and the messages.
 * No nonce is issued or required (RFC 9449 §8 is optional): freshness is
 * iat within ClockSkew plus the jti replay cache. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "tokend-proof.h"

#define DPOP_TYP "dpop+jwt"
/* An Ed25519 proof is about 450 bytes; room for a long htu and jti. */
#define DPOP_MAX_BYTES 2048U
#define DPOP_HTU_MAX 512U

/* Verify proof (a C string) for a request of method htm to the absolute URL
 * htu (the token endpoint as the metadata names it), by the device whose
 * 32-byte Ed25519 key is public_key. The proof's htu matches when equal
 * after RFC 9449 §4.3 / RFC 3986 §6.2.2-6.2.3 normalization (query and
 * fragment dropped, scheme and host case-insensitive, default port, dot
 * segments) by libcurl's URL parser. jti is PROOF_JTI_MIN..MAX bytes, iat
 * within skew seconds of now. On success copies the jti into jti_buf and
 * returns 0. Otherwise *ret_reason (a static string, no caller text) says
 * what is wrong and the return is -E2BIG (longer than DPOP_MAX_BYTES, not
 * parsed), -EBADMSG (any other defect), -ETIME (iat out of the window) or
 * -ENOMEM. */
_warn_unused_result_ int dpop_verify(const uint8_t public_key[32], const char *proof, const char *htm,
                                     const char *htu, int64_t now, int64_t skew, char jti_buf[PROOF_JTI_MAX + 1],
                                     const char **ret_reason);
