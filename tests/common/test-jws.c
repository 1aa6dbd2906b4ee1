/* SPDX-License-Identifier: MIT */
/* JWS compact sign/verify: RFC 7515 A.2/A.3 and RFC 8037 A.4 known
 * answers, then the hostile-input table of RFC 8725 attacks. Every hostile
 * case sits next to a control built the same way that must verify. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "b64.h"
#include "jose-jwk.h"
#include "jose-jws.h"
#include "jose-test-util.h"
#include "json-util.h"

#define MIB (1024U * 1024U)

/* ---- helpers ------------------------------------------------------- */

static char *b64(const void *p, size_t n) {
        char *s = NULL;

        assert_int_equal(b64url_encode(p, n, &s), 0);
        return s;
}

static char *str_concat3(const char *a, const char *sep, const char *b) {
        size_t n = strlen(a) + strlen(sep) + strlen(b) + 1;
        char *s = malloc(n);

        assert_non_null(s);
        snprintf(s, n, "%s%s%s", a, sep, b);
        return s;
}

/* base64url(header) "." base64url(payload) */
static char *signing_input(const char *header, const char *payload) {
        _cleanup_(freep) char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));

        return str_concat3(h, ".", p);
}

static char *with_sig(const char *input, const uint8_t *sig, size_t sig_len) {
        _cleanup_(freep) char *s = b64(sig, sig_len);

        return str_concat3(input, ".", s);
}

/* Header and payload as given, signed by key under its own algorithm
 * whatever the header claims: only the header can make it fail. */
static char *forge(const jose_key *key, const char *header, const char *payload) {
        _cleanup_(freep) char *input = signing_input(header, payload);
        uint8_t sig[JOSE_MAX_SIG_LEN];
        size_t sig_len;

        assert_int_equal(jose_key_sign(key, input, strlen(input), sig, &sig_len), 0);
        return with_sig(input, sig, sig_len);
}

static int verify_str(const jose_keyset *ks, const char *token, jws_flags flags) {
        jws_result res, sentinel;
        int r;

        memset(&res, 0xAA, sizeof(res));
        sentinel = res;
        r = jws_verify(ks, token, strlen(token), flags, &res);
        if (r == 0)
                jws_result_done(&res);
        else /* nothing written on failure */
                assert_memory_equal(&res, &sentinel, sizeof(res));
        return r;
}

static EVP_PKEY *to_evp(const jose_key *key) {
        _cleanup_(erase_and_freep) char *pem = NULL;
        EVP_PKEY *pkey;
        BIO *bio;

        assert_int_equal(jose_key_to_pem(key, NULL, &pem), 0);
        bio = BIO_new_mem_buf(pem, -1);
        assert_non_null(bio);
        pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        BIO_free(bio);
        assert_non_null(pkey);
        return pkey;
}

/* OpenSSL's own signature (DER for ECDSA) over input. pss: RSA-PSS. */
static size_t openssl_sign(const jose_key *key, const EVP_MD *md, bool pss, const char *input, uint8_t *sig,
                           size_t sig_size) {
        EVP_PKEY *pkey = to_evp(key);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        size_t len = sig_size;

        assert_non_null(ctx);
        assert_int_equal(EVP_DigestSignInit(ctx, &pctx, md, NULL, pkey), 1);
        if (pss)
                assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_DigestSign(ctx, sig, &len, (const uint8_t *) input, strlen(input)), 1);
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(pkey);
        return len;
}

static const char default_payload[] = "{\"sub\":\"alice\"}";

/* A key's own, correctly signed token: the control of most rows. */
static char *good_token(const jose_key *key) {
        _cleanup_(freep) char *tmpl = NULL, *h = NULL;

        tmpl = str_concat3("{\"alg\":\"", jose_alg_to_string(jose_key_alg(key)), "\",\"kid\":\"$KID\"}");
        h = subst_kid(tmpl, jose_key_kid(key));
        return forge(key, h, default_payload);
}

static jose_keyset *keyset_from_jwk(const char *jwk_text) {
        _cleanup_(json_decrefp) json_t *jwk = NULL;
        jose_keyset *ks = NULL;
        jose_key *k = NULL;

        assert_int_equal(td_json_parse_object(jwk_text, strlen(jwk_text), 65536, 8, &jwk, NULL), 0);
        assert_int_equal(jose_key_from_jwk(jwk, &k), 0);
        assert_int_equal(jose_keyset_new(&ks), 0);
        assert_int_equal(jose_keyset_add(ks, k), 0);
        return ks;
}

/* ---- known answers ------------------------------------------------- */

/* RFC 7515 Appendix A.1-A.3 payload, CRLFs included. */
static const char rfc7515_payload[] = "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

/* RFC 7515 A.2.1 public key (n, e), "alg" added: RSA JWKs need one here. */
static const char rfc7515_a2_jwk[] =
        "{\"kty\":\"RSA\",\"alg\":\"RS256\",\"e\":\"AQAB\",\"n\":\""
        "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-"
        "SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-"
        "KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-"
        "DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\"}";

static const char rfc7515_a2_token[] =
        "eyJhbGciOiJSUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUA"
        "r7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--"
        "xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_"
        "IoypGlUPQGe77Rw";

/* RFC 7515 A.3.1 public key (the private "d" left out). */
static const char rfc7515_a3_jwk[] = "{\"kty\":\"EC\",\"crv\":\"P-256\","
                                     "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                                     "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";

static const char rfc7515_a3_token[] =
        "eyJhbGciOiJFUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

/* RFC 8037 A.1 key, A.3 thumbprint, A.4 JWS. */
static const char rfc8037_d[] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
static const char rfc8037_x[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
static const char rfc8037_thumbprint[] = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
static const char rfc8037_token[] = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
                                    ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

static void check_rfc7515_result(const jws_result *res, const char *alg) {
        int64_t exp;

        assert_string_equal(td_json_object_get_str(res->header, "alg"), alg);
        assert_int_equal(res->payload_len, strlen(rfc7515_payload));
        assert_memory_equal(res->payload_raw, rfc7515_payload, res->payload_len);
        assert_int_equal(res->payload_raw[res->payload_len], 0);
        assert_non_null(res->payload);
        assert_string_equal(td_json_object_get_str(res->payload, "iss"), "joe");
        assert_int_equal(td_json_object_get_int_range(res->payload, "exp", 0, INT64_MAX, &exp), 0);
        assert_int_equal(exp, 1300819380);
        assert_true(json_is_true(json_object_get(res->payload, "http://example.com/is_root")));
}

static void test_rfc7515_known_answer(const char *jwk, const char *token, const char *alg) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = keyset_from_jwk(jwk);
        _cleanup_(freep) char *bad = strdup(token);
        jws_result res;

        assert_int_equal(jws_verify(ks, token, strlen(token), JWS_ALLOW_NO_KID, &res), 0);
        check_rfc7515_result(&res, alg);
        assert_ptr_equal(res.key, jose_keyset_get(ks, 0));
        jws_result_done(&res);

        /* The RFC header has no kid: fine only when the caller allows it. */
        assert_int_equal(verify_str(ks, token, 0), -EBADMSG);
        /* One payload character changed. */
        bad[30] = bad[30] == 'A' ? 'B' : 'A';
        assert_int_equal(verify_str(ks, bad, JWS_ALLOW_NO_KID), -EKEYREJECTED);
}

static void test_rfc7515_a2_rs256(void **state) {
        (void) state;
        test_rfc7515_known_answer(rfc7515_a2_jwk, rfc7515_a2_token, "RS256");
}

static void test_rfc7515_a3_es256(void **state) {
        (void) state;
        test_rfc7515_known_answer(rfc7515_a3_jwk, rfc7515_a3_token, "ES256");
}

/* RFC 8037 A.4: Ed25519 is deterministic, so signing the RFC's header and
 * payload bytes with the A.1 key must give the RFC's signature exactly. */
static void test_rfc8037_a4_eddsa(void **state) {
        static const char header[] = "{\"alg\":\"EdDSA\"}", payload[] = "Example of Ed25519 signing";
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        _cleanup_(jose_key_freep) jose_key *key = NULL;
        _cleanup_(freep) char *token = NULL, *pem = NULL, *jwk = NULL;
        char thumb[JOSE_THUMBPRINT_LEN + 1];
        uint8_t seed[32], pk[32], x[32];
        EVP_PKEY *pkey;
        jws_result res;
        BIO *bio;
        long pem_len;
        char *pem_data;

        (void) state;
        assert_int_equal(b64url_decode_exact(rfc8037_d, strlen(rfc8037_d), seed, sizeof(seed)), 0);
        pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
        assert_non_null(pkey);
        bio = BIO_new(BIO_s_mem());
        assert_non_null(bio);
        assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1); /* PKCS#8 */
        pem_len = BIO_get_mem_data(bio, &pem_data);
        assert_true(pem_len > 0);
        pem = strndup(pem_data, (size_t) pem_len);
        BIO_free(bio);
        EVP_PKEY_free(pkey);
        explicit_bzero(seed, sizeof(seed));

        assert_int_equal(jose_key_load_pem(pem, strlen(pem), NULL, &key), 0);
        assert_int_equal(jose_key_alg(key), JOSE_ALG_EDDSA);
        assert_int_equal(jose_key_ed25519_public(key, pk), 0);
        assert_int_equal(b64url_decode_exact(rfc8037_x, strlen(rfc8037_x), x, sizeof(x)), 0);
        assert_memory_equal(pk, x, sizeof(x));
        jose_key_thumbprint(key, thumb);
        assert_string_equal(thumb, rfc8037_thumbprint);

        assert_int_equal(jws_sign_bytes(key, header, strlen(header), payload, strlen(payload), &token), 0);
        assert_string_equal(token, rfc8037_token);

        /* And it verifies against the RFC's public JWK; the payload is
         * text, not JSON, so only payload_raw is set. */
        jwk = str_concat3("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"", rfc8037_x, "\"}");
        ks = keyset_from_jwk(jwk);
        assert_int_equal(jws_verify(ks, rfc8037_token, strlen(rfc8037_token), JWS_ALLOW_NO_KID, &res), 0);
        assert_null(res.payload);
        assert_int_equal(res.payload_len, strlen(payload));
        assert_string_equal((const char *) res.payload_raw, payload);
        jws_result_done(&res);
}

/* ---- signing ------------------------------------------------------- */

static void test_sign_json_roundtrip(void **state) {
        _cleanup_(json_decrefp) json_t *payload = json_pack("{s:s,s:i}", "sub", "alice", "n", 7);

        assert_non_null(payload);
        for (size_t i = 0; i < ELEMENTSOF(test_algs); i++) {
                const jose_key *key = fkey(state, test_algs[i]);
                _cleanup_(freep) char *token = NULL, *untyped = NULL, *want = NULL, *tmpl = NULL;
                _cleanup_(json_decrefp) json_t *h = NULL, *p = NULL;
                _cleanup_(freep) uint8_t *raw = NULL;
                size_t len = 0, raw_len;
                jws_result res;

                assert_int_equal(jws_sign_json(key, "JWT", payload, &token, &len), 0);
                assert_int_equal(len, strlen(token));
                assert_true(jws_looks_like_compact(token, len, JWS_MAX_TOKEN_BYTES));
                assert_int_equal(jws_verify(fks(state), token, len, 0, &res), 0);
                assert_ptr_equal(res.key, key);
                assert_true(json_equal(res.payload, payload));
                jws_result_done(&res);

                /* Header bytes exactly: alg, typ, kid in that order. */
                assert_int_equal(b64url_decode(token, (size_t) (strchr(token, '.') - token), &raw, &raw_len), 0);
                tmpl = str_concat3("{\"alg\":\"", jose_alg_to_string(test_algs[i]),
                                   "\",\"typ\":\"JWT\",\"kid\":\"$KID\"}");
                want = subst_kid(tmpl, jose_key_kid(key));
                assert_string_equal((const char *) raw, want);

                /* typ NULL: omitted. */
                assert_int_equal(jws_sign_json(key, NULL, payload, &untyped, NULL), 0);
                assert_int_equal(jws_decode_unverified(untyped, strlen(untyped), &h, &p), 0);
                assert_null(json_object_get(h, "typ"));
                assert_string_equal(td_json_object_get_str(h, "kid"), jose_key_kid(key));
                assert_true(json_equal(p, payload));
        }
}

static void test_sign_bytes_rejects(void **state) {
        const jose_key *ed = fkey(state, JOSE_ALG_EDDSA);
        static const char *const bad_headers[] = {
                "{\"alg\":\"ES256\"}", /* not the key's alg */
                "{\"alg\":\"none\"}",  "{\"typ\":\"JWT\"}", "[\"EdDSA\"]", "{\"alg\":\"EdDSA\"", "",
                "{\"alg\":\"EdDSA\",\"alg\":\"EdDSA\"}",
        };
        char *token = NULL;

        for (size_t i = 0; i < ELEMENTSOF(bad_headers); i++)
                assert_int_equal(jws_sign_bytes(ed, bad_headers[i], strlen(bad_headers[i]), "x", 1, &token), -EINVAL);
        assert_null(token);
        assert_int_equal(jws_sign_bytes(ed, "{\"alg\":\"EdDSA\"}", 15, "x", 1, &token), 0);
        free(token);
}

/* ---- the per-key header cache ------------------------------------- */

/* Tokens carrying exactly the header jws_sign_json emits for "at+jwt"
 * skip the header decode and parse; the verdicts must be those of the full
 * path: right key, its own alg, and no other key picked up by the bytes. */
static void test_cached_header(void **state) {
        _cleanup_(json_decrefp) json_t *payload = json_pack("{s:s}", "sub", "alice");

        assert_non_null(payload);
        for (size_t i = 0; i < ELEMENTSOF(test_algs); i++) {
                const jose_key *key = fkey(state, test_algs[i]);
                _cleanup_(jose_keyset_freep) jose_keyset *pub_ks = NULL, *other_ks = NULL;
                _cleanup_(jose_key_freep) jose_key *other = NULL;
                _cleanup_(freep) char *token = NULL, *tmpl = NULL, *header = NULL, *forged = NULL, *spaced = NULL;
                _cleanup_(json_decrefp) json_t *jwk = NULL;
                jose_key *pub = NULL;
                jws_result res;

                assert_int_equal(jws_sign_json(key, "at+jwt", payload, &token, NULL), 0);
                tmpl = str_concat3("{\"alg\":\"", jose_alg_to_string(test_algs[i]),
                                   "\",\"typ\":\"at+jwt\",\"kid\":\"$KID\"}");
                header = subst_kid(tmpl, jose_key_kid(key));
                /* The same bytes through the generic signer: same token
                 * prefix (EdDSA is deterministic: the same token). */
                _cleanup_(freep) char *same = NULL;
                assert_int_equal(jws_sign_bytes(key, header, strlen(header), "{\"sub\":\"alice\"}", 15, &same), 0);
                assert_int_equal(strchr(same, '.') - same, strchr(token, '.') - token);
                assert_memory_equal(same, token, (size_t) (strchr(token, '.') - token));

                for (int flags = 0; flags <= JWS_ALLOW_NO_KID; flags += JWS_ALLOW_NO_KID) {
                        assert_int_equal(jws_verify(fks(state), token, strlen(token), flags, &res), 0);
                        assert_ptr_equal(res.key, key);
                        assert_string_equal(td_json_object_get_str(res.header, "alg"),
                                            jose_alg_to_string(test_algs[i]));
                        assert_string_equal(td_json_object_get_str(res.header, "typ"), "at+jwt");
                        assert_string_equal(td_json_object_get_str(res.header, "kid"), jose_key_kid(key));
                        assert_int_equal(json_object_size(res.header), 3);
                        assert_true(json_equal(res.payload, payload));
                        jws_result_done(&res);
                }

                /* The public half alone (imported from its JWK, same kid):
                 * same verdict. */
                assert_int_equal(jose_key_to_jwk(key, &jwk), 0);
                assert_int_equal(jose_key_from_jwk(jwk, &pub), 0);
                assert_int_equal(jose_keyset_new(&pub_ks), 0);
                assert_int_equal(jose_keyset_add(pub_ks, pub), 0);
                assert_int_equal(verify_str(pub_ks, token, 0), 0);

                /* Those header bytes signed by another key of the same
                 * alg: rejected, as is the token in a set without its key. */
                assert_int_equal(jose_key_generate(test_algs[i], &other), 0);
                forged = forge(other, header, "{\"sub\":\"root\"}");
                assert_int_equal(verify_str(fks(state), forged, 0), -EKEYREJECTED);
                assert_int_equal(verify_str(pub_ks, forged, 0), -EKEYREJECTED);
                assert_int_equal(jose_keyset_new(&other_ks), 0);
                assert_int_equal(jose_keyset_add(other_ks, TAKE_PTR(other)), 0);
                assert_int_equal(verify_str(other_ks, token, 0), -ENOKEY);
                assert_int_equal(verify_str(other_ks, token, JWS_ALLOW_NO_KID), -ENOKEY);

                /* The same header JSON spelled differently takes the full
                 * path and still verifies (control), or fails for its own
                 * reason. */
                free(tmpl);
                tmpl = str_concat3("{\"alg\":\"", jose_alg_to_string(test_algs[i]),
                                   "\", \"typ\":\"at+jwt\",\"kid\":\"$KID\"}");
                free(header);
                header = subst_kid(tmpl, jose_key_kid(key));
                spaced = forge(key, header, "{}");
                assert_int_equal(verify_str(fks(state), spaced, 0), 0);
        }
}

/* A public RSA key larger than any we generate (5120 bits, made with
 * openssl(1)): its 640-byte signature still fits the verifier. */
static const char rsa5120_jwk[] =
        "{\"kty\":\"RSA\",\"alg\":\"RS256\",\"kid\":\"rsa5120\",\"e\":\"AQAB\",\"n\":\""
        "3LGGbj0xwLI9ElTVCmXM5FXYhhjkMeNCpKpOy0sZJeG6J"
        "WSuFfmTrKtXK3K4ov3mpCve24n-s7JG513SNrORLL7GYw_CMdY2WTVIiRUrlcToNgxaR9GhVsnZRBpdnG5o-13IqibJ23bbTKzw_mkxQ"
        "DbiEUT4xEiW8ORzqEpYfu-sU0XOXveHJj9E2dzC2SRKBaoMnXwUw_Df-fr0xJPm9VCI025mVcRPWYqicpGJlEzfAGfvbpNdobY-8Et3N"
        "38XWQnMNsdxppu9_gIm-X4v3JZo26xGH3g6riJBQX3cxKxHpAMkRUE99cTVjabqNZKzFe-vq_0bSLvUAO9GVRT2M8oeEkNLn_r6Fgsl0"
        "g6o4FmhgvK0wKj8lh8LDyGmRG7frwnPU6g-KS9uKS9kx9YyONcW69lIbVyzRWYGs76BKQIwJ-2DERmYh8vO4A-L8egR3UDrJ1hTChgZu"
        "XlUkpa64X68kAtPMwXc10fQanu3qaVjkbzCPxvu8aTWN6lCbs9SfIWDOJLJ81xaftRk-CvqghgPFipQ9wediZfv1Z24mnTBoId680pQI"
        "ztytNxOhnMY-XR7JafZmI-YGa8mZALzQfKTX6zbeK9n_5oVd-hkzSxMwACRTWTVAIaFkmjeWZEyuCTHUNcIkTXptd-QY-8TgjmJ8hXSH"
        "QLbpAZ1VjE1QYaSBfiM1kT2QKidpLjb0o2UkeUqynQnatwBAG1496epWYW50p9APXXaUekv3xXdfJ2gXOarLmB4u5bLIapL1LNWJh3ym"
        "aYG2WZGjaX4bq93XT7tm81Gut7iGAioBIck1fmyP629pRf68MJ_a33_9-JXkdgDmnA3n-gfME93SwcTWQ\"}";
static const char rsa5120_token[] =
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYTUxMjAifQ.eyJzdWIiOiJhbGljZSJ9.BZGKRebKcOfV-HgAkVWa9ZApKcnsMVaSTJgXe7BF"
        "bveXYFkJ4Bsp1hAYfS-5I-jhmGwgaH6_SMYIeMCGWUsYQAznfDjug6yc3RASotyiJsX5rGTWcNlj_3RqFvngfdlzv1v4rL9cuXB7OM2U"
        "DyhB_s_sA_Pu7ZpW0YaSBwjHySZiWy-PaVE1bjEaPLbVzviBwNi2b89b9uBgOif566-3e1DMpvMCiEf6M1y5l1OEKHuSpuhFJm4VVtqN"
        "Gw_BO2PsFyMc4Vk38ZFnPnXrsnKKmIa2WvZw9HIFdvUMZIuHmCdk8g0eCAaZMdNPsp112HatEbMPIoicqFM30rcg1wDi7vVKjN-AbwX3"
        "rB8CnzuNkMtMfBNixr2LY9ku8v3h6rP4w5a09-lzNaJ3jzBn0lRZcP8xiIWrR5jaUcaSjnZjlIryzGP0sC5mCVUYfyJpPAJMmdXqD4ri"
        "susJGv5qfhZt_odDj_gsYznHpv1LgWvgOVx25318VkqIF78esLtQGBK0PngrYPZv_12zCkkyGZ5VUce1j3kpaP0hyykLEDzW5UiIT_nM"
        "cbjudHm-TLFop5iafHHluABVuqT8a2yVF4a1wUWdO3CU9Ulh4K4EUAFN_Cj9sGtuVId31dusAnTeajxBd8CfM44DAXn4ldJGge609LUs"
        "7qbSjfI8jrFdkzR8HDL5Jo3IiKAgw-5SQMxwlg8uEtRQtUiRyPcQyopWVjBpshnCQVNPvAnbAtmPW53xx_5QL6HsUzKwW13r-Hd31qQv"
        "lj-Ne9hmYaXGunLgpFlq2XMhuM-LFLnCxBsO7sYIArnTiRB0RhiXqRrWuDmOWqgeCLZRyfYor37RSzink77R5Q";

static void test_large_rsa_signature(void **state) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = keyset_from_jwk(rsa5120_jwk);
        _cleanup_(freep) char *bad = strdup(rsa5120_token);
        size_t len = strlen(rsa5120_token);
        jws_result res;

        (void) state;
        assert_int_equal(jws_verify(ks, rsa5120_token, len, 0, &res), 0);
        assert_string_equal(td_json_object_get_str(res.payload, "sub"), "alice");
        jws_result_done(&res);
        /* One signature bit flipped; the signature one group longer. */
        bad[len - 5] = bad[len - 5] == 'A' ? 'B' : 'A';
        assert_int_equal(verify_str(ks, bad, 0), -EKEYREJECTED);
        free(bad);
        bad = str_concat3(rsa5120_token, "", "AAAA");
        assert_int_equal(verify_str(ks, bad, 0), -EKEYREJECTED);
}

/* ---- the hostile-input table -------------------------------------- */

typedef struct hostile_row {
        const char *name;
        jose_alg alg;         /* the key whose signature the token carries */
        const char *header;   /* "$KID" → that key's kid */
        int expect;
} hostile_row;

static const hostile_row hostile_rows[] = {
        { "alg none", JOSE_ALG_EDDSA, "{\"alg\":\"none\",\"kid\":\"$KID\"}", -EBADMSG },
        { "alg None", JOSE_ALG_EDDSA, "{\"alg\":\"None\",\"kid\":\"$KID\"}", -EBADMSG },
        { "alg nOnE", JOSE_ALG_EDDSA, "{\"alg\":\"nOnE\",\"kid\":\"$KID\"}", -EBADMSG },
        { "alg eddsa (case)", JOSE_ALG_EDDSA, "{\"alg\":\"eddsa\",\"kid\":\"$KID\"}", -EBADMSG },
        { "alg Ed25519", JOSE_ALG_EDDSA, "{\"alg\":\"Ed25519\",\"kid\":\"$KID\"}", -EBADMSG },
        { "alg HS256", JOSE_ALG_EDDSA, "{\"alg\":\"HS256\",\"kid\":\"$KID\"}", -EBADMSG },
        { "alg missing", JOSE_ALG_EDDSA, "{\"kid\":\"$KID\"}", -EBADMSG },
        { "alg not a string", JOSE_ALG_EDDSA, "{\"alg\":[\"EdDSA\"],\"kid\":\"$KID\"}", -EBADMSG },
        { "alg null", JOSE_ALG_EDDSA, "{\"alg\":null,\"kid\":\"$KID\"}", -EBADMSG },
        { "alg of another key type", JOSE_ALG_EDDSA, "{\"alg\":\"ES256\",\"kid\":\"$KID\"}", -EBADMSG },
        { "RS512 on an RS256 key", JOSE_ALG_RS256, "{\"alg\":\"RS512\",\"kid\":\"$KID\"}", -EBADMSG },
        { "PS256 on an RS256 key", JOSE_ALG_RS256, "{\"alg\":\"PS256\",\"kid\":\"$KID\"}", -EBADMSG },
        { "RS256 on a PS256 key", JOSE_ALG_PS256, "{\"alg\":\"RS256\",\"kid\":\"$KID\"}", -EBADMSG },
        { "duplicate alg", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":\"$KID\",\"alg\":\"EdDSA\"}", -EBADMSG },
        { "duplicate alg, none first", JOSE_ALG_EDDSA, "{\"alg\":\"none\",\"alg\":\"EdDSA\",\"kid\":\"$KID\"}",
          -EBADMSG },
        { "duplicate kid", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":\"$KID\",\"kid\":\"$KID\"}", -EBADMSG },
        { "crit []", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":\"$KID\",\"crit\":[]}", -EBADMSG },
        { "crit [exp]", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":\"$KID\",\"crit\":[\"exp\"],\"exp\":1}",
          -EBADMSG },
        { "crit [b64]", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":\"$KID\",\"b64\":false,\"crit\":[\"b64\"]}",
          -EBADMSG },
        { "embedded jwk", JOSE_ALG_EDDSA,
          "{\"alg\":\"EdDSA\",\"kid\":\"$KID\",\"jwk\":{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
          "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}}",
          -EBADMSG },
        { "jku", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":\"$KID\",\"jku\":\"https://evil.example/jwks\"}",
          -EBADMSG },
        { "x5u", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":\"$KID\",\"x5u\":\"https://evil.example/c.pem\"}",
          -EBADMSG },
        { "x5c", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":\"$KID\",\"x5c\":[\"MIIB\"]}", -EBADMSG },
        { "kid number", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":5}", -EBADMSG },
        { "kid null", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":null}", -EBADMSG },
        { "kid missing", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\"}", -EBADMSG },
        { "kid unknown", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":\"nope\"}", -ENOKEY },
        { "kid prefix", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":\"$KIDx\"}", -ENOKEY },
        { "kid of another key", JOSE_ALG_EDDSA, "{\"alg\":\"ES256\",\"kid\":\"$KID\"}", -EBADMSG },
        { "header is an array", JOSE_ALG_EDDSA, "[{\"alg\":\"EdDSA\",\"kid\":\"$KID\"}]", -EBADMSG },
        { "header trailing garbage", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":\"$KID\"}x", -EBADMSG },
        { "header not JSON", JOSE_ALG_EDDSA, "alg=EdDSA", -EBADMSG },
        /* One member away from the header tokens carry (cached per key). */
        { "at+jwt header + crit", JOSE_ALG_EDDSA,
          "{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"$KID\",\"crit\":[\"x\"]}", -EBADMSG },
        { "at+jwt header, alg none", JOSE_ALG_EDDSA, "{\"alg\":\"none\",\"typ\":\"at+jwt\",\"kid\":\"$KID\"}",
          -EBADMSG },
        { "at+jwt header, ES256 for EdDSA", JOSE_ALG_EDDSA,
          "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"$KID\"}", -EBADMSG },
        { "at+jwt header, duplicate typ", JOSE_ALG_EDDSA,
          "{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"$KID\",\"typ\":\"at+jwt\"}", -EBADMSG },
        { "header NUL escape", JOSE_ALG_EDDSA, "{\"alg\":\"EdDSA\\u0000\",\"kid\":\"$KID\"}", -EBADMSG },
};

static void test_hostile_headers(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(hostile_rows); i++) {
                const hostile_row *row = &hostile_rows[i];
                const jose_key *key = fkey(state, row->alg);
                _cleanup_(freep) char *control = good_token(key), *header = subst_kid(row->header, jose_key_kid(key));
                _cleanup_(freep) char *token = forge(key, header, default_payload);

                print_message("%-28s control=%d attack=%d\n", row->name, verify_str(fks(state), control, 0),
                              verify_str(fks(state), token, 0));
                assert_int_equal(verify_str(fks(state), control, 0), 0);
                assert_int_equal(verify_str(fks(state), token, 0), row->expect);
        }
}

/* A header over the 1 KiB cap is malformed even with a good signature. */
static void test_header_cap(void **state) {
        const jose_key *key = fkey(state, JOSE_ALG_EDDSA);
        char pad[JWS_MAX_HEADER_BYTES];
        _cleanup_(freep) char *tmpl = NULL, *fits = NULL, *big = NULL, *t1 = NULL, *t2 = NULL;
        size_t base = strlen("{\"alg\":\"EdDSA\",\"kid\":\"\",\"p\":\"\"}") + strlen(jose_key_kid(key));

        memset(pad, 'a', sizeof(pad));
        pad[JWS_MAX_HEADER_BYTES - base] = 0;
        tmpl = str_concat3("{\"alg\":\"EdDSA\",\"kid\":\"$KID\",\"p\":\"", pad, "\"}");
        fits = subst_kid(tmpl, jose_key_kid(key));
        assert_int_equal(strlen(fits), JWS_MAX_HEADER_BYTES);
        t1 = forge(key, fits, default_payload);
        assert_int_equal(verify_str(fks(state), t1, 0), 0);

        free(tmpl);
        pad[JWS_MAX_HEADER_BYTES - base] = 'a';
        pad[JWS_MAX_HEADER_BYTES - base + 1] = 0;
        tmpl = str_concat3("{\"alg\":\"EdDSA\",\"kid\":\"$KID\",\"p\":\"", pad, "\"}");
        big = subst_kid(tmpl, jose_key_kid(key));
        t2 = forge(key, big, default_payload);
        assert_int_equal(verify_str(fks(state), t2, 0), -EBADMSG);
}

/* HS256 over the token with the verifier's *public* key as the HMAC
 * secret: the classic key-confusion attack (RFC 8725 §2.1). */
static void test_hmac_key_confusion(void **state) {
        static const jose_alg targets[] = { JOSE_ALG_RS256, JOSE_ALG_EDDSA, JOSE_ALG_ES256 };

        for (size_t t = 0; t < ELEMENTSOF(targets); t++) {
                const jose_key *key = fkey(state, targets[t]);
                _cleanup_(freep) char *header = subst_kid("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"$KID\"}",
                                                          jose_key_kid(key));
                _cleanup_(freep) char *input = signing_input(header, default_payload), *control = good_token(key);
                _cleanup_(freep) char *jwk_text = NULL, *pem_text = NULL;
                _cleanup_(json_decrefp) json_t *jwk = NULL;
                _cleanup_(freep) uint8_t *der = NULL;
                EVP_PKEY *pkey = to_evp(key);
                BIO *bio = BIO_new(BIO_s_mem());
                uint8_t raw[32];
                char *p;
                long n;
                int der_len;

                assert_int_equal(verify_str(fks(state), control, 0), 0);

                assert_non_null(bio);
                assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
                n = BIO_get_mem_data(bio, &p);
                pem_text = strndup(p, (size_t) n);
                BIO_free(bio);
                der_len = i2d_PUBKEY(pkey, &der);
                assert_true(der_len > 0);
                EVP_PKEY_free(pkey);
                assert_int_equal(jose_key_to_jwk(key, &jwk), 0);
                assert_int_equal(td_json_dump_compact(jwk, &jwk_text), 0);

                struct {
                        const void *k;
                        size_t len;
                } secrets[] = {
                        { pem_text, strlen(pem_text) },
                        { jwk_text, strlen(jwk_text) },
                        { der, (size_t) der_len },
                        { "", 0 },
                        { raw, sizeof(raw) },
                };
                size_t n_secrets = ELEMENTSOF(secrets);
                if (targets[t] == JOSE_ALG_EDDSA)
                        assert_int_equal(jose_key_ed25519_public(key, raw), 0);
                else
                        n_secrets--;

                for (size_t i = 0; i < n_secrets; i++) {
                        uint8_t mac[EVP_MAX_MD_SIZE];
                        unsigned mac_len = 0;
                        _cleanup_(freep) char *token = NULL;

                        assert_non_null(HMAC(EVP_sha256(), secrets[i].k, (int) secrets[i].len,
                                             (const uint8_t *) input, strlen(input), mac, &mac_len));
                        token = with_sig(input, mac, mac_len);
                        assert_int_equal(verify_str(fks(state), token, 0), -EBADMSG);
                        assert_int_equal(verify_str(fks(state), token, JWS_ALLOW_NO_KID), -EBADMSG);
                }
        }
}

/* Real signatures by OpenSSL under a neighbouring algorithm of the same
 * RSA key: they are genuine, yet the key only speaks RS256. */
static void test_rsa_algorithm_substitution(void **state) {
        const jose_key *key = fkey(state, JOSE_ALG_RS256);
        const char *kid = jose_key_kid(key);
        static const struct {
                const char *header;
                const char *md;
                bool pss;
                int expect;
        } rows[] = {
                { "{\"alg\":\"RS256\",\"kid\":\"$KID\"}", "SHA256", false, 0 }, /* control */
                { "{\"alg\":\"RS512\",\"kid\":\"$KID\"}", "SHA512", false, -EBADMSG },
                { "{\"alg\":\"RS384\",\"kid\":\"$KID\"}", "SHA384", false, -EBADMSG },
                { "{\"alg\":\"PS256\",\"kid\":\"$KID\"}", "SHA256", true, -EBADMSG },
                { "{\"alg\":\"RS256\",\"kid\":\"$KID\"}", "SHA512", false, -EKEYREJECTED },
        };

        for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
                _cleanup_(freep) char *header = subst_kid(rows[i].header, kid), *input = NULL, *token = NULL;
                uint8_t sig[JOSE_MAX_SIG_LEN];
                size_t sig_len;

                input = signing_input(header, default_payload);
                sig_len = openssl_sign(key, EVP_get_digestbyname(rows[i].md), rows[i].pss, input, sig, sizeof(sig));
                token = with_sig(input, sig, sig_len);
                assert_int_equal(verify_str(fks(state), token, 0), rows[i].expect);
        }
}

/* RFC 7518 §3.4: ES256 is exactly r||s, 64 bytes, each in 1..n-1. */
static void test_es256_signature_forms(void **state) {
        static const uint8_t p256_n[32] = {
                0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
        };
        const jose_key *key = fkey(state, JOSE_ALG_ES256);
        _cleanup_(freep) char *header = subst_kid("{\"alg\":\"ES256\",\"kid\":\"$KID\"}", jose_key_kid(key));
        _cleanup_(freep) char *input = signing_input(header, default_payload);
        uint8_t good[JOSE_MAX_SIG_LEN], der[256], raw[65], bad[65];
        const uint8_t *dp = der;
        size_t good_len, der_len;
        ECDSA_SIG *es;

        assert_int_equal(jose_key_sign(key, input, strlen(input), good, &good_len), 0);
        assert_int_equal(good_len, 64);

        /* OpenSSL's DER signature is valid (control: as r||s it verifies)
         * but as DER it is the wrong encoding. */
        der_len = openssl_sign(key, EVP_sha256(), false, input, der, sizeof(der));
        es = d2i_ECDSA_SIG(NULL, &dp, (long) der_len);
        assert_non_null(es);
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32), 32);
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32), 32);
        ECDSA_SIG_free(es);

        struct {
                const char *name;
                const uint8_t *sig;
                size_t len;
                int expect;
        } rows[] = {
                { "jose_key_sign r||s (control)", good, 64, 0 },
                { "OpenSSL DER as r||s (control)", raw, 64, 0 },
                { "OpenSSL DER as is", der, der_len, -EKEYREJECTED },
                { "r = s = 0", NULL, 64, -EKEYREJECTED },
                { "r = n", NULL, 64, -EKEYREJECTED },
                { "s = n", NULL, 64, -EKEYREJECTED },
                { "63 bytes", good, 63, -EKEYREJECTED },
                { "65 bytes", NULL, 65, -EKEYREJECTED },
                { "empty", good, 0, -EBADMSG }, /* "h.p." is no JWS */
        };

        for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
                _cleanup_(freep) char *token = NULL;
                const uint8_t *sig = rows[i].sig;

                if (!sig) {
                        memcpy(bad, good, 64);
                        bad[64] = 0;
                        if (strstr(rows[i].name, "r = s"))
                                memset(bad, 0, 64);
                        else if (strstr(rows[i].name, "r = n"))
                                memcpy(bad, p256_n, 32);
                        else if (strstr(rows[i].name, "s = n"))
                                memcpy(bad + 32, p256_n, 32);
                        sig = bad;
                }
                token = with_sig(input, sig, rows[i].len);
                print_message("%-30s %d\n", rows[i].name, verify_str(fks(state), token, 0));
                assert_int_equal(verify_str(fks(state), token, 0), rows[i].expect);
        }
}

/* Text-level mutations of a good token: the character set and the
 * segment count are checked before anything is decoded. */
static void test_token_text(void **state) {
        const jose_key *key = fkey(state, JOSE_ALG_EDDSA);
        _cleanup_(freep) char *good = good_token(key);
        const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
        size_t len = strlen(good), h_len = (size_t) (d1 - good);
        char buf[1024];

        assert_true(len + 16 < sizeof(buf));
        assert_int_equal(verify_str(fks(state), good, 0), 0);

        static const struct {
                const char *name;
                const char *insert; /* inserted at position */
                int where;          /* 0 start, 1 in header, 2 before 2nd dot, 3 end */
        } ins[] = {
                { "+", "+", 1 },       { "/", "/", 1 },          { "= in header", "=", 1 },
                { "= padding", "=", 2 }, { "space", " ", 1 },   { "tab", "\t", 2 },
                { "newline", "\n", 1 }, { "CR", "\r", 3 },       { "leading space", " ", 0 },
                { "trailing NL", "\n", 3 }, { "NUL", "", 1 },    { "dot: 4 segments", ".", 2 },
                { "two dots: 5 segments", "..", 3 }, { "high byte", "\xc3\xa9", 1 }, { "quote", "\"", 1 },
        };

        for (size_t i = 0; i < ELEMENTSOF(ins); i++) {
                size_t pos = ins[i].where == 0 ? 0 : ins[i].where == 1 ? h_len / 2 :
                             ins[i].where == 2 ? (size_t) (d2 - good) : len;
                size_t il = ins[i].insert[0] ? strlen(ins[i].insert) : 1; /* "" means one NUL byte */
                jws_result res;

                memcpy(buf, good, pos);
                memcpy(buf + pos, ins[i].insert[0] ? ins[i].insert : "\0", il);
                memcpy(buf + pos + il, good + pos, len - pos);
                assert_int_equal(jws_verify(fks(state), buf, len + il, 0, &res), -EBADMSG);
                assert_false(jws_looks_like_compact(buf, len + il, JWS_MAX_TOKEN_BYTES));
        }

        /* The standard alphabet for the whole token: '-'→'+', '_'→'/'. */
        memcpy(buf, good, len + 1);
        bool changed = false;
        for (size_t i = 0; i < len; i++)
                if (buf[i] == '-' || buf[i] == '_') {
                        buf[i] = buf[i] == '-' ? '+' : '/';
                        changed = true;
                }
        if (changed)
                assert_int_equal(verify_str(fks(state), buf, 0), -EBADMSG);

        /* Segment counts and empty segments. */
        snprintf(buf, sizeof(buf), "%.*s", (int) (d2 - good), good); /* h.p */
        assert_int_equal(verify_str(fks(state), buf, 0), -EBADMSG);
        snprintf(buf, sizeof(buf), "%.*s.", (int) (d2 - good), good); /* h.p. */
        assert_int_equal(verify_str(fks(state), buf, 0), -EBADMSG);
        snprintf(buf, sizeof(buf), "%s.%s", good, d2 + 1); /* h.p.s.s */
        assert_int_equal(verify_str(fks(state), buf, 0), -EBADMSG);
        snprintf(buf, sizeof(buf), "%s.%s.%s", good, d2 + 1, d2 + 1); /* 5 segments */
        assert_int_equal(verify_str(fks(state), buf, 0), -EBADMSG);
        snprintf(buf, sizeof(buf), "%s", d1); /* .p.s */
        assert_int_equal(verify_str(fks(state), buf, 0), -EBADMSG);
        snprintf(buf, sizeof(buf), "%.*s.%s", (int) h_len, good, d2); /* h..s */
        assert_int_equal(verify_str(fks(state), buf, 0), -EBADMSG);
        static const char *const shapes[] = { "", ".", "..", "...", "a", "a.b", "a..c", "a.b.c.d", "a.b.c" };
        for (size_t i = 0; i < ELEMENTSOF(shapes); i++) {
                int r = verify_str(fks(state), shapes[i], 0);
                assert_true(r == -EBADMSG);
        }
}

/* Base64url must be canonical: the signature's last character may not
 * carry stray bits, and no segment may have a length ≡ 1 (mod 4). */
static void test_noncanonical_base64(void **state) {
        const jose_key *key = fkey(state, JOSE_ALG_EDDSA);
        _cleanup_(freep) char *good = good_token(key), *t1 = strdup(good), *t2 = NULL;
        size_t len = strlen(good);

        /* 64-byte signature → 86 chars, the last one carries 2 bits and
         * 4 zero bits (one of "AQgw"): give it non-zero low bits. */
        assert_int_equal(len - (size_t) (strrchr(good, '.') - good) - 1, 86);
        t1[len - 1] = (char) (t1[len - 1] == 'B' ? 'C' : 'B');
        assert_int_equal(verify_str(fks(state), t1, 0), -EBADMSG);

        t2 = str_concat3(good, "", "A"); /* 87 chars: canonical, but 65 bytes */
        assert_int_equal(verify_str(fks(state), t2, 0), -EKEYREJECTED);
}

static void test_wrong_key_and_tamper(void **state) {
        const jose_key *ed = fkey(state, JOSE_ALG_EDDSA);
        _cleanup_(jose_key_freep) jose_key *other = NULL;
        _cleanup_(freep) char *header = subst_kid("{\"alg\":\"EdDSA\",\"kid\":\"$KID\"}", jose_key_kid(ed));
        _cleanup_(freep) char *forged = NULL, *good = good_token(ed);
        char *dot, saved;

        /* Signed by another Ed25519 key but naming ours. */
        assert_int_equal(jose_key_generate(JOSE_ALG_EDDSA, &other), 0);
        forged = forge(other, header, default_payload);
        assert_int_equal(verify_str(fks(state), good, 0), 0);
        assert_int_equal(verify_str(fks(state), forged, 0), -EKEYREJECTED);

        /* One byte of payload, one byte of signature. */
        dot = strchr(good, '.');
        saved = dot[3];
        dot[3] = saved == 'A' ? 'B' : 'A';
        assert_int_equal(verify_str(fks(state), good, 0), -EKEYREJECTED);
        dot[3] = saved;
        dot = strrchr(good, '.');
        saved = dot[10];
        dot[10] = saved == 'A' ? 'B' : 'A';
        assert_int_equal(verify_str(fks(state), good, 0), -EKEYREJECTED);
        dot[10] = saved;
        assert_int_equal(verify_str(fks(state), good, 0), 0);

        /* No kid + JWS_ALLOW_NO_KID: only with a one-key set. */
        _cleanup_(freep) char *nokid = forge(ed, "{\"alg\":\"EdDSA\"}", default_payload);
        assert_int_equal(verify_str(fks(state), nokid, JWS_ALLOW_NO_KID), -ENOKEY);
}

static void test_payload_forms(void **state) {
        const jose_key *ed = fkey(state, JOSE_ALG_EDDSA);
        _cleanup_(freep) char *header = subst_kid("{\"alg\":\"EdDSA\",\"kid\":\"$KID\"}", jose_key_kid(ed));
        static const char *const not_objects[] = {
                "[1,2]", "\"str\"", "42", "{\"a\":1,\"a\":2}", "{\"a\":1", "hello world",
        };

        for (size_t i = 0; i < ELEMENTSOF(not_objects); i++) {
                _cleanup_(freep) char *token = forge(ed, header, not_objects[i]);
                jws_result res;

                assert_int_equal(jws_verify(fks(state), token, strlen(token), 0, &res), 0);
                assert_null(res.payload);
                assert_string_equal((const char *) res.payload_raw, not_objects[i]);
                assert_int_equal(res.payload_len, strlen(not_objects[i]));
                jws_result_done(&res);
                jws_result_done(&res); /* idempotent */
        }
        jws_result_done(NULL);
}

/* 1 MiB of anything is refused by the byte cap before it is scanned. */
static void test_size_cap(void **state) {
        const jose_key *ed = fkey(state, JOSE_ALG_EDDSA);
        _cleanup_(freep) char *big = malloc(MIB), *dots = malloc(MIB), *good = good_token(ed);
        struct timespec t0, t1;
        jws_result res;
        json_t *h, *p;
        double us;

        assert_non_null(big);
        assert_non_null(dots);
        memset(big, 'A', MIB);
        big[MIB / 3] = big[2 * MIB / 3] = '.';
        memset(dots, '.', MIB);

        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < 1000; i++) {
                assert_int_equal(jws_verify(fks(state), big, MIB, 0, &res), -E2BIG);
                assert_int_equal(jws_verify(fks(state), dots, MIB, 0, &res), -E2BIG);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        us = ((double) (t1.tv_sec - t0.tv_sec) * 1e6 + (double) (t1.tv_nsec - t0.tv_nsec) / 1e3) / 2000.0;
        print_message("1 MiB token / 1 MiB of dots: -E2BIG in %.3f us per call\n", us);

        assert_int_equal(jws_decode_unverified(big, MIB, &h, &p), -E2BIG);
        assert_false(jws_looks_like_compact(big, MIB, JWS_MAX_TOKEN_BYTES));
        assert_int_equal(jws_verify(fks(state), big, JWS_MAX_TOKEN_BYTES + 1, 0, &res), -E2BIG);
        /* At the cap it is scanned (and malformed), not "too big". */
        assert_int_equal(jws_verify(fks(state), big, JWS_MAX_TOKEN_BYTES, 0, &res), -EBADMSG);

        /* Control: a good token padded to exactly the cap in the payload
         * still verifies. */
        _cleanup_(freep) char *header = subst_kid("{\"alg\":\"EdDSA\",\"kid\":\"$KID\"}", jose_key_kid(ed));
        _cleanup_(freep) char *h64 = b64(header, strlen(header)), *payload = NULL, *token = NULL;
        size_t payload_len = (JWS_MAX_TOKEN_BYTES - strlen(h64) - 2 - 86) / 4 * 3;
        payload = malloc(payload_len + 1);
        assert_non_null(payload);
        memset(payload, 'x', payload_len);
        payload[payload_len] = 0;
        token = forge(ed, header, payload);
        print_message("largest test token: %zu bytes (cap %u)\n", strlen(token), JWS_MAX_TOKEN_BYTES);
        assert_true(strlen(token) <= JWS_MAX_TOKEN_BYTES);
        assert_int_equal(verify_str(fks(state), token, 0), 0);
}

static void test_looks_like_compact(void **state) {
        _cleanup_(freep) char *good = good_token(fkey(state, JOSE_ALG_EDDSA));
        static const char *const no[] = {
                "", "abc", "a.b", "a.b.", ".b.c", "a..c", "a.b.c.d", "a.b.c=", "a+b.c.d", "a.b.c ", "hunter2",
                "correct horse battery staple",
        };

        assert_true(jws_looks_like_compact(good, strlen(good), 511));
        assert_true(jws_looks_like_compact("a.b.c", 5, 5));
        assert_false(jws_looks_like_compact("a.b.c", 5, 4));
        assert_false(jws_looks_like_compact(NULL, 0, 100));
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                assert_false(jws_looks_like_compact(no[i], strlen(no[i]), 100));
}

static void test_decode_unverified(void **state) {
        _cleanup_(freep) char *none = NULL, *input = NULL, *dup = NULL;
        json_t *h = NULL, *p = NULL;

        (void) state;
        /* alg none is shown (inspect marks it unverified), not verified. */
        input = signing_input("{\"alg\":\"none\"}", "{\"sub\":\"root\"}");
        none = str_concat3(input, ".", "AAAA");
        assert_int_equal(jws_decode_unverified(none, strlen(none), &h, &p), 0);
        assert_string_equal(td_json_object_get_str(h, "alg"), "none");
        assert_string_equal(td_json_object_get_str(p, "sub"), "root");
        json_decref(h);
        json_decref(p);
        h = p = NULL;

        assert_int_equal(jws_decode_unverified(input, strlen(input), &h, &p), -EBADMSG);
        free(input);
        input = signing_input("{\"alg\":\"none\",\"alg\":\"x\"}", "{}");
        dup = str_concat3(input, ".", "AAAA");
        assert_int_equal(jws_decode_unverified(dup, strlen(dup), &h, &p), -EBADMSG);
        assert_null(h);
        assert_null(p);
}

/* JWS_EMBEDDED_JWK (RFC 9449 DPoP proofs): the jwk header is allowed and kid
 * ignored only with the flag and a one-key set, the signature still checked
 * with that key; every other header rule stays. */
static void test_embedded_jwk(void **state) {
        const jose_key *ed = fkey(state, JOSE_ALG_EDDSA);
        _cleanup_(jose_keyset_freep) jose_keyset *one = NULL;
        _cleanup_(jose_key_freep) jose_key *pub = NULL, *other = NULL;
        uint8_t pk[32];
        const char *hdr = "{\"alg\":\"EdDSA\",\"typ\":\"dpop+jwt\",\"kid\":\"any\",\"jwk\":{\"kty\":\"OKP\"}}";

        assert_int_equal(jose_key_ed25519_public(ed, pk), 0);
        assert_int_equal(jose_key_from_ed25519_public(pk, &pub), 0);
        assert_int_equal(jose_keyset_new(&one), 0);
        assert_int_equal(jose_keyset_add(one, pub), 0);
        TAKE_PTR(pub);
        assert_int_equal(jose_key_generate(JOSE_ALG_EDDSA, &other), 0);

        _cleanup_(freep) char *good = forge(ed, hdr, default_payload);
        _cleanup_(freep) char *forged = forge(other, hdr, default_payload);
        _cleanup_(freep) char *crit = forge(ed, "{\"alg\":\"EdDSA\",\"jwk\":{},\"crit\":[\"x\"]}", default_payload);
        _cleanup_(freep) char *jku = forge(ed, "{\"alg\":\"EdDSA\",\"jwk\":{},\"jku\":\"https://e.example\"}",
                                           default_payload);
        _cleanup_(freep) char *es = forge(ed, "{\"alg\":\"ES256\",\"jwk\":{}}", default_payload);
        assert_int_equal(verify_str(one, good, JWS_EMBEDDED_JWK), 0);
        assert_int_equal(verify_str(one, good, 0), -EBADMSG);                /* jwk refused without the flag */
        assert_int_equal(verify_str(one, good, JWS_ALLOW_NO_KID), -EBADMSG);
        assert_int_equal(verify_str(fks(state), good, JWS_EMBEDDED_JWK), -ENOKEY); /* not a one-key set */
        assert_int_equal(verify_str(one, forged, JWS_EMBEDDED_JWK), -EKEYREJECTED);
        assert_int_equal(verify_str(one, crit, JWS_EMBEDDED_JWK), -EBADMSG);
        assert_int_equal(verify_str(one, jku, JWS_EMBEDDED_JWK), -EBADMSG);
        assert_int_equal(verify_str(one, es, JWS_EMBEDDED_JWK), -EBADMSG);    /* alg is still the key's */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc7515_a2_rs256),
                cmocka_unit_test(test_rfc7515_a3_es256),
                cmocka_unit_test(test_rfc8037_a4_eddsa),
                cmocka_unit_test(test_sign_json_roundtrip),
                cmocka_unit_test(test_sign_bytes_rejects),
                cmocka_unit_test(test_cached_header),
                cmocka_unit_test(test_large_rsa_signature),
                cmocka_unit_test(test_hostile_headers),
                cmocka_unit_test(test_header_cap),
                cmocka_unit_test(test_hmac_key_confusion),
                cmocka_unit_test(test_rsa_algorithm_substitution),
                cmocka_unit_test(test_es256_signature_forms),
                cmocka_unit_test(test_token_text),
                cmocka_unit_test(test_noncanonical_base64),
                cmocka_unit_test(test_wrong_key_and_tamper),
                cmocka_unit_test(test_payload_forms),
                cmocka_unit_test(test_size_cap),
                cmocka_unit_test(test_looks_like_compact),
                cmocka_unit_test(test_decode_unverified),
                cmocka_unit_test(test_embedded_jwk),
        };

        return cmocka_run_group_tests(tests, jose_fixture_setup, jose_fixture_teardown);
}
