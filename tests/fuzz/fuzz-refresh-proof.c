/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the refresh proof verifiers the daemon calls,
 * proof_verify() of daemon/tokend-proof.c — a compact JWS by the device's
 * Ed25519 key over {jti, iat, htm, htu, device_id}, typ "tokend-proof+jwt"
 * (RFC 9449 ideas) — and dpop_verify() of daemon/tokend-dpop.c, the RFC 9449
 * DPoP proof (typ dpop+jwt, the key as jwk), on the same input. The replay cache around it is the store's, tested in
 * tests/unit and tests/integration. Bit 0 of the first byte set: the rest is
 * HEADER 0xff PAYLOAD, signed here with the device key (RFC 8037 A.1), so
 * the claim checks see mutated input behind a good signature; clear: the
 * rest is the proof. Invariant: an accepted proof has every property the
 * daemon relies on, checked again here on an independent parse. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "fuzz-util.h"
#include "jose-claims.h"
#include "jose-jws.h"
#include "json-util.h"
#include "tokend-dpop.h"
#include "tokend-proof.h"

#define FUZZ_HTU "/api/auth/refresh"
#define FUZZ_DPOP_HTU "https://id.example/oauth2/token"
#define FUZZ_DEVICE "dev_AAAAAAAAAAAAAAAAAAAAAA"
#define FUZZ_NOW 1700000100LL
#define FUZZ_SKEW 30LL

static jose_key *device;        /* private: signs in the signed mode */
static uint8_t device_pk[32];   /* what the store holds */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void) argc;
        (void) argv;
        device = fuzz_load_key(fuzz_rfc8037_pem);
        FUZZ_CHECK(jose_key_ed25519_public(device, device_pk) == 0);
        return 0;
}

/* dpop_verify: an accepted proof is one by the device key, typ dpop+jwt,
 * with a jwk, htm POST, a jti of the allowed size, iat in the window. */
static void check_dpop(const char *proof, size_t len) {
        _cleanup_(json_decrefp) json_t *h = NULL, *p = NULL;
        char jti[PROOF_JTI_MAX + 1];
        const char *why = NULL;
        int64_t iat = 0;
        int r = dpop_verify(device_pk, proof, "POST", FUZZ_DPOP_HTU, FUZZ_NOW, FUZZ_SKEW, jti, &why);

        FUZZ_CHECK(r == 0 || r == -E2BIG || r == -EBADMSG || r == -ETIME || r == -ENOMEM);
        FUZZ_CHECK(why != NULL);
        FUZZ_CHECK(r != -E2BIG || len > DPOP_MAX_BYTES);
        if (r != 0)
                return;
        FUZZ_CHECK(len <= DPOP_MAX_BYTES);
        FUZZ_CHECK(strlen(jti) >= PROOF_JTI_MIN && strlen(jti) <= PROOF_JTI_MAX);
        FUZZ_CHECK(jws_decode_unverified(proof, len, &h, &p) == 0);
        FUZZ_CHECK(streq(td_json_object_get_str(h, "typ"), DPOP_TYP));
        FUZZ_CHECK(streq(td_json_object_get_str(h, "alg"), "EdDSA"));
        FUZZ_CHECK(json_is_object(json_object_get(h, "jwk")) && !json_object_get(json_object_get(h, "jwk"), "d"));
        FUZZ_CHECK(streq(td_json_object_get_str(p, "htm"), "POST"));
        FUZZ_CHECK(streq(td_json_object_get_str(p, "jti"), jti));
        FUZZ_CHECK(td_json_object_get_int_range(p, "iat", 0, AT_TIME_MAX, &iat) == 0);
        FUZZ_CHECK(iat >= FUZZ_NOW - FUZZ_SKEW && iat <= FUZZ_NOW + FUZZ_SKEW);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        _cleanup_(jose_key_freep) jose_key *k = NULL;
        _cleanup_(freep) char *proof = NULL;
        char jti[PROOF_JTI_MAX + 1];
        jws_result res = {};
        int64_t iat = 0;
        size_t len;
        int r;

        if (size < 1)
                return 0;
        if (data[0] & 1)
                proof = fuzz_sign_split(device, data + 1, size - 1, &len);
        else {
                proof = strndup((const char *) data + 1, size - 1); /* a C string, as the daemon gets it */
                len = proof ? strlen(proof) : 0;
        }
        if (!proof)
                return 0;
        check_dpop(proof, len);
        r = proof_verify(device_pk, proof, FUZZ_HTU, FUZZ_DEVICE, FUZZ_NOW, FUZZ_SKEW, jti);
        FUZZ_CHECK(r == 0 || r == -E2BIG || r == -EKEYREJECTED || r == -EBADMSG || r == -ETIME || r == -ENOMEM);
        FUZZ_CHECK(r != -E2BIG || len > PROOF_MAX_BYTES);
        if (r != 0)
                return 0;
        /* Accepted: parse it again on the side and check every property. */
        FUZZ_CHECK(len <= PROOF_MAX_BYTES);
        FUZZ_CHECK(strlen(jti) >= PROOF_JTI_MIN && strlen(jti) <= PROOF_JTI_MAX);
        FUZZ_CHECK(jose_key_from_ed25519_public(device_pk, &k) == 0);
        FUZZ_CHECK(jose_keyset_new(&ks) == 0);
        FUZZ_CHECK(jose_keyset_add(ks, k) == 0);
        TAKE_PTR(k);
        FUZZ_CHECK(jws_verify(ks, proof, len, JWS_ALLOW_NO_KID, &res) == 0);
        FUZZ_CHECK(streq(td_json_object_get_str(res.header, "typ"), PROOF_TYP));
        FUZZ_CHECK(streq(td_json_object_get_str(res.payload, "jti"), jti));
        FUZZ_CHECK(td_json_object_get_int_range(res.payload, "iat", 0, AT_TIME_MAX, &iat) == 0);
        FUZZ_CHECK(iat >= FUZZ_NOW - FUZZ_SKEW && iat <= FUZZ_NOW + FUZZ_SKEW);
        FUZZ_CHECK(streq(td_json_object_get_str(res.payload, "htm"), "POST"));
        FUZZ_CHECK(streq(td_json_object_get_str(res.payload, "htu"), FUZZ_HTU));
        FUZZ_CHECK(streq(td_json_object_get_str(res.payload, "device_id"), FUZZ_DEVICE));
        jws_result_done(&res);
        return 0;
}
