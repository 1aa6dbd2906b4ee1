/* SPDX-License-Identifier: MIT */
/* RFC 9449 DPoP proof verification: see tokend-dpop.h. */
#include <curl/curl.h>
#include <errno.h>
#include <string.h>

#include "jose-claims.h"
#include "jose-jwk.h"
#include "jose-jws.h"
#include "json-util.h"
#include "macro.h"
#include "tokend-dpop.h"

static void curl_freep(char **p) {
        curl_free(*p);
}

/* "scheme://host:port/path" of an http(s) URL without user info, the host
 * in lower case and the port always given; query and fragment left out.
 * Returns 0, -EINVAL (not such a URL), -ENOMEM. */
static int htu_normalize(const char *url, char *buf, size_t size) {
        _cleanup_(curl_freep) char *scheme = NULL, *user = NULL, *host = NULL, *port = NULL, *path = NULL;
        CURLU *u = curl_url();
        int r = -EINVAL;

        if (!u)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
            (streq(scheme, "http") || streq(scheme, "https")) &&
            curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_NO_USER &&
            curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
                for (char *c = host; *c; c++)
                        if (*c >= 'A' && *c <= 'Z')
                                *c = (char) (*c - 'A' + 'a');
                int n = snprintf(buf, size, "%s://%s:%s%s", scheme, host, port, path);
                r = n > 0 && (size_t) n < size ? 0 : -EINVAL;
        }
        curl_url_cleanup(u);
        return r;
}

/* The header: typ, an asymmetric alg the device key has, a public jwk
 * whose thumbprint is the device's. */
static int check_header(const json_t *h, const jose_key *device, const char **reason) {
        _cleanup_(jose_key_freep) jose_key *jwk = NULL;
        char a[JOSE_THUMBPRINT_LEN + 1], b[JOSE_THUMBPRINT_LEN + 1];
        const char *alg = td_json_object_get_str(h, "alg");
        const json_t *j = json_object_get(h, "jwk");

        if (!streq_ptr(td_json_object_get_str(h, "typ"), DPOP_TYP))
                return *reason = "the header's typ is not " DPOP_TYP, -EBADMSG;
        if (!alg || jose_alg_from_string(alg) == JOSE_ALG_INVALID)
                return *reason = "alg must be an asymmetric signature algorithm (not none, not HS*)", -EBADMSG;
        if (jose_alg_from_string(alg) != jose_key_alg(device))
                return *reason = "alg is not the device key's algorithm (EdDSA)", -EBADMSG;
        if (!json_is_object(j))
                return *reason = "the header has no jwk object", -EBADMSG;
        switch (jose_key_from_jwk(j, &jwk)) {
        case 0:
                break;
        case -ENOMEM:
                return *reason = "out of memory", -ENOMEM;
        case -EPERM:
                return *reason = "the jwk carries a private key member", -EBADMSG;
        default:
                return *reason = "the jwk is not a usable public signing key", -EBADMSG;
        }
        jose_key_thumbprint(jwk, a);
        jose_key_thumbprint(device, b);
        if (!streq(a, b))
                return *reason = "the jwk's thumbprint is not this device's key (cnf.jkt)", -EBADMSG;
        return 0;
}

static int check_claims(const json_t *p, const char *htm, const char *htu, int64_t now, int64_t skew,
                        char jti_buf[PROOF_JTI_MAX + 1], const char **reason) {
        char want[DPOP_HTU_MAX + 64], got[DPOP_HTU_MAX + 64];
        const char *jti = p ? td_json_object_get_str(p, "jti") : NULL;
        const char *u = p ? td_json_object_get_str(p, "htu") : NULL;
        int64_t iat;
        int r;

        if (!p)
                return *reason = "the payload is not a JSON object", -EBADMSG;
        if (!jti || strlen(jti) < PROOF_JTI_MIN || strlen(jti) > PROOF_JTI_MAX)
                return *reason = "jti is missing or not 16..128 bytes", -EBADMSG;
        if (!streq_ptr(td_json_object_get_str(p, "htm"), htm))
                return *reason = "htm is not the request's method", -EBADMSG;
        if (!u || strlen(u) > DPOP_HTU_MAX)
                return *reason = "htu is missing or too long", -EBADMSG;
        r = htu_normalize(htu, want, sizeof want);
        int r2 = htu_normalize(u, got, sizeof got);
        if (r == -ENOMEM || r2 == -ENOMEM)
                return *reason = "out of memory", -ENOMEM;
        if (r < 0 || r2 < 0 || !streq(want, got))
                return *reason = "htu is not this token endpoint's URL", -EBADMSG;
        if (td_json_object_get_int_range(p, "iat", 0, AT_TIME_MAX, &iat) < 0)
                return *reason = "iat is missing or not a NumericDate", -EBADMSG;
        if (iat < now - skew || iat > now + skew)
                return *reason = "iat is too old or in the future ([Token] ClockSkew)", -ETIME;
        memcpy(jti_buf, jti, strlen(jti) + 1);
        return 0;
}

int dpop_verify(const uint8_t public_key[32], const char *proof, const char *htm, const char *htu, int64_t now,
                int64_t skew, char jti_buf[PROOF_JTI_MAX + 1], const char **ret_reason) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        _cleanup_(jose_key_freep) jose_key *k = NULL;
        _cleanup_(json_decrefp) json_t *h = NULL;
        jws_result res = { 0 };
        const jose_key *device;
        size_t len = strnlen(proof, DPOP_MAX_BYTES + 1);
        int r;

        *ret_reason = "out of memory";
        if (len > DPOP_MAX_BYTES)
                return *ret_reason = "the proof is longer than 2048 bytes", -E2BIG;
        if (jose_key_from_ed25519_public(public_key, &k) < 0 || jose_keyset_new(&ks) < 0 ||
            jose_keyset_add(ks, k) < 0)
                return -ENOMEM;
        device = TAKE_PTR(k);
        r = jws_decode_header_unverified(proof, len, &h);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return *ret_reason = "not a compact JWS with a JSON header of at most 1024 bytes", -EBADMSG;
        if ((r = check_header(h, device, ret_reason)) < 0)
                return r;
        r = jws_verify(ks, proof, len, JWS_EMBEDDED_JWK, &res);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return *ret_reason = r == -EKEYREJECTED ? "the signature is not by the device's key"
                                                        : "the header is refused (crit, jku, x5u, x5c)", -EBADMSG;
        r = check_claims(res.payload, htm, htu, now, skew, jti_buf, ret_reason);
        jws_result_done(&res);
        return r;
}
