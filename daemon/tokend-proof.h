/* SPDX-License-Identifier: MIT */
/* The refresh proof (RFC 9449 ideas): a compact JWS by the device's Ed25519
 * key over {jti, iat, htm, htu, device_id}, header typ "tokend-proof+jwt".
 * This is the store-free part of the check; the caller keeps the replay
 * cache (store_proof_jti_use) and the messages. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define PROOF_TYP "tokend-proof+jwt"
#define PROOF_MAX_BYTES 2048U
#define PROOF_JTI_MIN 16U
#define PROOF_JTI_MAX 128U

/* Verify proof (a C string) against the 32-byte Ed25519 device key: signed
 * by that key (no kid needed), typ PROOF_TYP, jti of PROOF_JTI_MIN..MAX
 * bytes, numeric iat within skew seconds of now, htm "POST", htu and
 * device_id equal to the ones given. On success copies the jti into
 * jti_buf (PROOF_JTI_MAX + 1 bytes) and returns 0. Otherwise:
 *   -E2BIG         longer than PROOF_MAX_BYTES (not parsed)
 *   -EKEYREJECTED  not a JWS signed by this key
 *   -EBADMSG       signed, but a claim or the typ is missing or wrong
 *   -ETIME         iat outside now ± skew
 *   -ENOMEM */
_warn_unused_result_ int proof_verify(const uint8_t public_key[32], const char *proof, const char *htu,
                                      const char *device_id, int64_t now, int64_t skew,
                                      char jti_buf[PROOF_JTI_MAX + 1]);
