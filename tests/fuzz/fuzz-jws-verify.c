/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the JWS compact verifier and the access-token claims
 * checker (common/jose-jws.c, common/jose-claims.c, common/b64.c). The
 * first byte picks the mode:
 *   bit 0 clear: the rest is a token, taken as is — verified against a
 *     two-key set and a one-key set (no kid), checked as an access token,
 *     decoded unverified and shape-checked; every segment is also decoded
 *     by both base64url decoders, which must agree;
 *   bit 0 set: the rest is HEADER 0xff PAYLOAD, signed here (bit 1 picks
 *     the RFC 8037 Ed25519 or the RFC 7515 A.3 P-256 key), so the header
 *     policy, the payload parser and the claims checker see mutated input
 *     behind a good signature.
 * Invariants: a verified token names the key's own alg and no forbidden
 * header; a signed-here token only ever verifies with the key that signed
 * it and yields the payload bytes; accepted access tokens satisfy every
 * check of at_check. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "b64.h"
#include "fuzz-util.h"
#include "jose-claims.h"
#include "jose-jws.h"
#include "json-util.h"

#define FUZZ_ISSUER "tokend"
#define FUZZ_AUDIENCE "sshd"
#define FUZZ_NOW 1700000100LL
#define FUZZ_SKEW 30LL

static jose_key *keys[2];       /* Ed25519, P-256: private, for signing */
static jose_keyset *ks_all;     /* both public halves */
static jose_keyset *ks_ed;      /* the Ed25519 public half alone */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void) argc;
        (void) argv;
        keys[0] = fuzz_load_key(fuzz_rfc8037_pem);
        keys[1] = fuzz_load_key(fuzz_rfc7515_a3_pem);
        ks_all = fuzz_public_keyset((const jose_key *const *) keys, 2);
        ks_ed = fuzz_public_keyset((const jose_key *const *) keys, 1);
        return 0;
}

/* Both decoders give the same verdict and the same bytes. */
static void check_b64_agree(const char *s, size_t len) {
        _cleanup_(freep) uint8_t *a = NULL, *b = NULL;
        size_t a_len = 0, b_len = 0, max = b64url_decoded_len(len);
        int ra, rb;

        b = malloc(max + 1);
        FUZZ_CHECK(b);
        ra = b64url_decode(s, len, &a, &a_len);
        rb = b64url_decode_public(s, len, b, max, &b_len);
        FUZZ_CHECK(ra == rb);
        if (ra == 0) {
                FUZZ_CHECK(a_len == b_len);
                FUZZ_CHECK(memcmp(a, b, a_len) == 0);
        }
}

static void check_verified(const jws_result *res) {
        static const char *const forbidden[] = { "crit", "jku", "x5u", "x5c", "jwk" };

        FUZZ_CHECK(res->key);
        FUZZ_CHECK(json_is_object(res->header));
        FUZZ_CHECK(streq_ptr(td_json_object_get_str(res->header, "alg"), jose_alg_to_string(jose_key_alg(res->key))));
        for (size_t i = 0; i < ELEMENTSOF(forbidden); i++)
                FUZZ_CHECK(!json_object_get(res->header, forbidden[i]));
        FUZZ_CHECK(res->payload_raw && res->payload_raw[res->payload_len] == 0);
        FUZZ_CHECK(!res->payload || json_is_object(res->payload));
}

static void check_access_token(const char *token, size_t len) {
        const at_check chk = { .issuer = FUZZ_ISSUER, .audience = FUZZ_AUDIENCE, .now = FUZZ_NOW, .skew = FUZZ_SKEW };
        at_claims c;
        bool aud = false;

        if (at_verify(ks_all, token, len, &chk, &c) < 0)
                return;
        FUZZ_CHECK(streq(c.iss, FUZZ_ISSUER));
        FUZZ_CHECK(c.sub && c.sub[0] && c.jti && c.jti[0] && c.client_id && c.client_id[0]);
        FUZZ_CHECK(c.n_aud >= 1 && c.n_aud <= AT_MAX_AUD);
        for (size_t i = 0; i < c.n_aud; i++)
                aud = aud || streq(c.aud[i], FUZZ_AUDIENCE);
        FUZZ_CHECK(aud);
        FUZZ_CHECK(c.exp + FUZZ_SKEW > FUZZ_NOW);
        FUZZ_CHECK(c.iat - FUZZ_SKEW <= FUZZ_NOW && c.nbf - FUZZ_SKEW <= FUZZ_NOW);
        FUZZ_CHECK(c.uid >= -1 && c.uid <= 4294967294LL);
        at_claims_done(&c);
}

static void fuzz_raw(const char *token, size_t len) {
        jws_result res;
        json_t *h, *p;
        const char *seg = token, *end = token + len;

        while (seg <= end) {
                const char *dot = memchr(seg, '.', (size_t) (end - seg));
                const char *stop = dot ? dot : end;

                check_b64_agree(seg, (size_t) (stop - seg));
                seg = stop + 1;
        }

        (void) jws_looks_like_compact(token, len, JWS_MAX_TOKEN_BYTES);
        if (jws_verify(ks_all, token, len, 0, &res) == 0) {
                check_verified(&res);
                jws_result_done(&res);
        }
        if (jws_verify(ks_ed, token, len, JWS_ALLOW_NO_KID, &res) == 0) {
                check_verified(&res);
                FUZZ_CHECK(jose_key_alg(res.key) == JOSE_ALG_EDDSA);
                jws_result_done(&res);
        }
        if (jws_decode_unverified(token, len, &h, &p) == 0) {
                FUZZ_CHECK(json_is_object(h) && json_is_object(p));
                json_decref(h);
                json_decref(p);
        }
        check_access_token(token, len);
}

static void fuzz_signed(const jose_key *key, const uint8_t *data, size_t size) {
        _cleanup_(freep) char *token = NULL;
        const uint8_t *sep = memchr(data, 0xff, size);
        size_t len, payload_len = sep ? size - (size_t) (sep - data) - 1 : 0;
        jws_result res;

        token = fuzz_sign_split(key, data, size, &len);
        if (!token)
                return;
        if (jws_verify(ks_all, token, len, JWS_ALLOW_NO_KID, &res) == 0) {
                check_verified(&res);
                /* Only the signer's own public half can verify it. */
                FUZZ_CHECK(streq(jose_key_kid(res.key), jose_key_kid(key)));
                FUZZ_CHECK(res.payload_len == payload_len);
                FUZZ_CHECK(payload_len == 0 || memcmp(res.payload_raw, sep + 1, payload_len) == 0);
                jws_result_done(&res);
        }
        fuzz_raw(token, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        if (data[0] & 1)
                fuzz_signed(keys[(data[0] >> 1) & 1], data + 1, size - 1);
        else
                fuzz_raw((const char *) data + 1, size - 1);
        return 0;
}
