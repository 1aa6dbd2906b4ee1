/* libFuzzer target: the refresh proof verifier — a compact JWS by the
 * device's Ed25519 key over {jti, iat, htm, htu, device_id}, typ
 * "tokend-proof+jwt" (RFC 9449 ideas). daemon/tokend-service.c keeps its
 * check_proof() static and tied to the store (replay cache), so until its
 * pure part is exposed (a store-free proof check in a daemon file of its
 * own, which this target would then call instead) proof_check() below
 * makes the same common/ calls in the same order: one-key set from the 32 raw
 * bytes of the device key, jws_verify(JWS_ALLOW_NO_KID), then the claim
 * reads. Bit 0 of the first byte set: the rest is HEADER 0xff PAYLOAD,
 * signed here with the device key (RFC 8037 A.1), so the claim checks see
 * mutated input behind a good signature; clear: the rest is the proof.
 * Invariant: an accepted proof has every property the daemon relies on. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "fuzz-util.h"
#include "jose-claims.h"
#include "jose-jws.h"
#include "json-util.h"

/* daemon/tokend-service.c */
#define PROOF_TYP "tokend-proof+jwt"
#define PROOF_MAX_BYTES 2048U
#define PROOF_JTI_MIN 16U
#define PROOF_JTI_MAX 128U
#define FUZZ_HTU "/api/auth/refresh"
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

/* 0 and the jti (borrowed from *res) for an acceptable proof, else < 0.
 * res->key dangles on return (the one-key set is freed here, as in the
 * daemon): it is checked here or not at all. */
static int proof_check(const char *proof, jws_result *res, const char **ret_jti) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        _cleanup_(jose_key_freep) jose_key *k = NULL;
        const char *typ, *jti;
        const json_t *p;
        int64_t iat;

        if (strlen(proof) > PROOF_MAX_BYTES)
                return -E2BIG;
        FUZZ_CHECK(jose_key_from_ed25519_public(device_pk, &k) == 0);
        FUZZ_CHECK(jose_keyset_new(&ks) == 0);
        FUZZ_CHECK(jose_keyset_add(ks, k) == 0);
        TAKE_PTR(k);
        if (jws_verify(ks, proof, strlen(proof), JWS_ALLOW_NO_KID, res) < 0)
                return -EKEYREJECTED;
        FUZZ_CHECK(res->key == jose_keyset_get(ks, 0));
        typ = json_object_get_str(res->header, "typ");
        p = res->payload;
        jti = p ? json_object_get_str(p, "jti") : NULL;
        if (!typ || !streq(typ, PROOF_TYP) || !p || !jti || strlen(jti) < PROOF_JTI_MIN ||
            strlen(jti) > PROOF_JTI_MAX || json_object_get_int_range(p, "iat", 0, AT_TIME_MAX, &iat) < 0 ||
            !streq_ptr(json_object_get_str(p, "htm"), "POST") || !streq_ptr(json_object_get_str(p, "htu"), FUZZ_HTU) ||
            !streq_ptr(json_object_get_str(p, "device_id"), FUZZ_DEVICE))
                return -EBADMSG;
        if (iat < FUZZ_NOW - FUZZ_SKEW || iat > FUZZ_NOW + FUZZ_SKEW)
                return -ETIME;
        *ret_jti = jti;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(freep) char *proof = NULL;
        jws_result res = {};
        const char *jti = NULL;
        int64_t iat = 0;
        size_t len;

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
        if (proof_check(proof, &res, &jti) == 0) {
                FUZZ_CHECK(len <= PROOF_MAX_BYTES);
                FUZZ_CHECK(strlen(jti) >= PROOF_JTI_MIN && strlen(jti) <= PROOF_JTI_MAX);
                FUZZ_CHECK(json_object_get_int_range(res.payload, "iat", 0, AT_TIME_MAX, &iat) == 0);
                FUZZ_CHECK(iat >= FUZZ_NOW - FUZZ_SKEW && iat <= FUZZ_NOW + FUZZ_SKEW);
                FUZZ_CHECK(streq(json_object_get_str(res.header, "typ"), PROOF_TYP));
        }
        jws_result_done(&res);
        return 0;
}
