/* SPDX-License-Identifier: MIT */
/* Refresh proof verification: see tokend-proof.h. */
#include <errno.h>
#include <string.h>

#include "jose-claims.h"
#include "jose-jws.h"
#include "json-util.h"
#include "macro.h"
#include "tokend-proof.h"

int proof_verify(const uint8_t public_key[32], const char *proof, const char *htu, const char *device_id,
                 int64_t now, int64_t skew, char jti_buf[PROOF_JTI_MAX + 1]) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        _cleanup_(jose_key_freep) jose_key *k = NULL;
        jws_result res = { 0 };
        const char *typ, *jti;
        const json_t *p;
        size_t len = strnlen(proof, PROOF_MAX_BYTES + 1);
        int64_t iat;
        int r;

        if (len > PROOF_MAX_BYTES)
                return -E2BIG;
        if (jose_key_from_ed25519_public(public_key, &k) < 0 || jose_keyset_new(&ks) < 0 ||
            jose_keyset_add(ks, k) < 0)
                return -ENOMEM;
        TAKE_PTR(k);
        if (jws_verify(ks, proof, len, JWS_ALLOW_NO_KID, &res) < 0)
                return -EKEYREJECTED;
        typ = td_json_object_get_str(res.header, "typ");
        p = res.payload;
        jti = p ? td_json_object_get_str(p, "jti") : NULL;
        if (!typ || !streq(typ, PROOF_TYP) || !jti || strlen(jti) < PROOF_JTI_MIN || strlen(jti) > PROOF_JTI_MAX ||
            td_json_object_get_int_range(p, "iat", 0, AT_TIME_MAX, &iat) < 0 ||
            !streq_ptr(td_json_object_get_str(p, "htm"), "POST") || !streq_ptr(td_json_object_get_str(p, "htu"), htu) ||
            !streq_ptr(td_json_object_get_str(p, "device_id"), device_id))
                r = -EBADMSG;
        else if (iat < now - skew || iat > now + skew)
                r = -ETIME;
        else {
                memcpy(jti_buf, jti, strlen(jti) + 1);
                r = 0;
        }
        jws_result_done(&res);
        return r;
}
