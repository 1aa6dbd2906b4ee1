/* SPDX-License-Identifier: MIT */
/* JOSE keys: generation, signatures for all four algs, PKCS#8 PEM in and
 * out, JWK/JWKS, RFC 7638 known answers; each hostile case (traditional
 * PEM, weak or foreign keys, private JWKs, malformed ES256 signatures,
 * algorithm confusion, duplicate kids) sits next to a control that passes. */
#include "config.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <setjmp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "b64.h"
#include "jose-jwk.h"
#include "jose-key.h"
#include "json-util.h"

static const char msg[] = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9";

/* RFC 7638 §3.1 example key (the RSA key of RFC 7517 Appendix A.1). */
static const char rfc7638_n[] =
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiF"
        "V4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9"
        "c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1"
        "jF44-csFCur-kEgU8awapJzKnqDKgw";
static const char rfc7638_thumbprint[] = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

/* RFC 8037 §A.2/§A.3: Ed25519 public key and its thumbprint. */
static const char rfc8037_x[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
static const char rfc8037_thumbprint[] = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

/* Keys are generated once (RSA generation is the slow part). */
static jose_key *keys[5]; /* indexed by jose_alg */

static int setup_keys(void **state _unused_) {
        for (jose_alg a = JOSE_ALG_EDDSA; a <= JOSE_ALG_PS256; a++)
                if (jose_key_generate(a, &keys[a]) < 0)
                        return -1;
        return 0;
}

static int teardown_keys(void **state _unused_) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                jose_key_free(keys[i]);
        return 0;
}

static void sign_msg(const jose_key *key, uint8_t sig[static JOSE_MAX_SIG_LEN], size_t *ret_len) {
        assert_int_equal(jose_key_sign(key, msg, strlen(msg), sig, ret_len), 0);
}

static int verify_msg(const jose_key *key, const uint8_t *sig, size_t len) {
        return jose_key_verify(key, msg, strlen(msg), sig, len);
}

static json_t *parse(const char *s) {
        json_t *j = NULL;

        assert_int_equal(td_json_parse_object(s, strlen(s), 1U << 20, TD_JSON_DEFAULT_MAX_DEPTH, &j, NULL), 0);
        return j;
}

/* PEM text of an OpenSSL key, PKCS#8 or traditional. */
static char *ossl_pem(EVP_PKEY *pkey, bool traditional) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *data, *s;
        long n;

        assert_non_null(bio);
        if (traditional)
                assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
        else
                assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
        n = BIO_get_mem_data(bio, &data);
        assert_true(n > 0);
        s = strndup(data, (size_t) n);
        assert_non_null(s);
        BIO_free(bio);
        return s;
}

static int load_ossl(EVP_PKEY *pkey, bool traditional, jose_key **ret) {
        _cleanup_(freep) char *pem = ossl_pem(pkey, traditional);

        return jose_key_load_pem(pem, strlen(pem), NULL, ret);
}

static char *data_file(const char *name) {
        char path[4096];
        FILE *f;
        char *buf = calloc(1, JOSE_PEM_MAX_BYTES + 1);
        size_t n;

        assert_non_null(buf);
        snprintf(path, sizeof(path), "%s/%s", TEST_DATA_DIR, name);
        f = fopen(path, "re");
        assert_non_null(f);
        n = fread(buf, 1, JOSE_PEM_MAX_BYTES, f);
        assert_true(n > 0);
        fclose(f);
        return buf;
}

/* ---- algorithms ---------------------------------------------------------- */

static void test_alg_strings(void **state _unused_) {
        static const char *const bad[] = { "none", "None", "NONE", "HS256", "RS512", "ES384", "eddsa",
                                           "EDDSA", "Ed25519", "", "RS256 ", "PS256\n" };

        for (jose_alg a = JOSE_ALG_EDDSA; a <= JOSE_ALG_PS256; a++)
                assert_int_equal(jose_alg_from_string(jose_alg_to_string(a)), a);
        assert_string_equal(jose_alg_to_string(JOSE_ALG_EDDSA), "EdDSA");
        assert_null(jose_alg_to_string(JOSE_ALG_INVALID));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(jose_alg_from_string(bad[i]), JOSE_ALG_INVALID);
        assert_int_equal(jose_alg_from_string(NULL), JOSE_ALG_INVALID);
        assert_int_equal(jose_key_generate(JOSE_ALG_INVALID, &(jose_key *){ NULL }), -EINVAL);
}

/* ---- generate, sign, verify ------------------------------------------------ */

static void test_sign_verify(void **state _unused_) {
        static const size_t sig_len[] = { [JOSE_ALG_EDDSA] = 64, [JOSE_ALG_ES256] = 64, [JOSE_ALG_RS256] = 256,
                                          [JOSE_ALG_PS256] = 256 };

        for (jose_alg a = JOSE_ALG_EDDSA; a <= JOSE_ALG_PS256; a++) {
                uint8_t sig[JOSE_MAX_SIG_LEN];
                char tp[JOSE_THUMBPRINT_LEN + 1];
                size_t len;

                assert_int_equal(jose_key_alg(keys[a]), a);
                assert_true(jose_key_has_private(keys[a]));
                jose_key_thumbprint(keys[a], tp);
                assert_int_equal(strlen(tp), JOSE_THUMBPRINT_LEN);
                assert_int_equal(strlen(jose_key_kid(keys[a])), JOSE_KID_LEN);
                assert_memory_equal(jose_key_kid(keys[a]), tp, JOSE_KID_LEN);

                sign_msg(keys[a], sig, &len);
                assert_int_equal(len, sig_len[a]);
                assert_int_equal(verify_msg(keys[a], sig, len), 0);

                /* other message, flipped bit, truncated, extended */
                assert_int_equal(jose_key_verify(keys[a], msg, strlen(msg) - 1, sig, len), -EKEYREJECTED);
                sig[len / 2] ^= 0x01;
                assert_int_equal(verify_msg(keys[a], sig, len), -EKEYREJECTED);
                sig[len / 2] ^= 0x01;
                assert_int_equal(verify_msg(keys[a], sig, len - 1), -EKEYREJECTED);
                sig[len] = 0;
                assert_int_equal(verify_msg(keys[a], sig, len + 1), -EKEYREJECTED);
                assert_int_equal(verify_msg(keys[a], sig, 0), -EKEYREJECTED);
                assert_int_equal(verify_msg(keys[a], sig, len), 0);
        }
}

/* A key only ever verifies under its own algorithm (RFC 8725 §3.1). */
static void test_wrong_key_type(void **state _unused_) {
        _cleanup_(jose_key_freep) jose_key *as_ps = NULL, *as_rs = NULL;
        _cleanup_(json_decrefp) json_t *jwk = NULL;
        uint8_t sig[JOSE_MAX_SIG_LEN];
        size_t len;

        for (jose_alg a = JOSE_ALG_EDDSA; a <= JOSE_ALG_PS256; a++) {
                sign_msg(keys[a], sig, &len);
                for (jose_alg b = JOSE_ALG_EDDSA; b <= JOSE_ALG_PS256; b++)
                        assert_int_equal(verify_msg(keys[b], sig, len), a == b ? 0 : -EKEYREJECTED);
        }

        /* The same RSA modulus, once bound to RS256 and once to PS256: a
         * PKCS#1 v1.5 signature does not verify as PSS and vice versa. */
        assert_int_equal(jose_key_to_jwk(keys[JOSE_ALG_RS256], &jwk), 0);
        assert_int_equal(jose_key_from_jwk(jwk, &as_rs), 0);
        assert_int_equal(json_object_set_new(jwk, "alg", json_string("PS256")), 0);
        assert_int_equal(jose_key_from_jwk(jwk, &as_ps), 0);
        assert_int_equal(jose_key_alg(as_ps), JOSE_ALG_PS256);

        sign_msg(keys[JOSE_ALG_RS256], sig, &len);
        assert_int_equal(verify_msg(as_rs, sig, len), 0);
        assert_int_equal(verify_msg(as_ps, sig, len), -EKEYREJECTED);

        /* Without "alg" (RFC 7520's keys) the key is bound to RS256 only. */
        _cleanup_(jose_key_freep) jose_key *as_default = NULL;
        assert_int_equal(json_object_del(jwk, "alg"), 0);
        assert_int_equal(jose_key_from_jwk(jwk, &as_default), 0);
        assert_int_equal(jose_key_alg(as_default), JOSE_ALG_RS256);
        assert_int_equal(verify_msg(as_default, sig, len), 0);
}

static void test_public_key_cannot_sign(void **state _unused_) {
        _cleanup_(json_decrefp) json_t *jwk = NULL;
        _cleanup_(jose_key_freep) jose_key *pub = NULL;
        _cleanup_(freep) char *pem = (char *) NULL;
        uint8_t sig[JOSE_MAX_SIG_LEN];
        size_t len;

        assert_int_equal(jose_key_to_jwk(keys[JOSE_ALG_ES256], &jwk), 0);
        assert_int_equal(jose_key_from_jwk(jwk, &pub), 0);
        assert_false(jose_key_has_private(pub));
        assert_int_equal(jose_key_sign(pub, msg, strlen(msg), sig, &len), -EINVAL);
        assert_int_equal(jose_key_to_pem(pub, NULL, &pem), -EINVAL);
        assert_null(pem);
        sign_msg(keys[JOSE_ALG_ES256], sig, &len);
        assert_int_equal(verify_msg(pub, sig, len), 0);
}

/* ---- ES256 signature encoding -------------------------------------------- */

static void test_es256_signature_form(void **state _unused_) {
        const jose_key *k = keys[JOSE_ALG_ES256];
        uint8_t sig[JOSE_MAX_SIG_LEN], bad[JOSE_MAX_SIG_LEN], n[32];
        EC_GROUP *group;
        size_t len;

        /* The order n of P-256, from OpenSSL, to build r = n and s = n. */
        group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
        assert_non_null(group);
        assert_int_equal(BN_bn2binpad(EC_GROUP_get0_order(group), n, sizeof(n)), 32);
        EC_GROUP_free(group);

        sign_msg(k, sig, &len);
        assert_int_equal(len, 64);
        assert_int_equal(verify_msg(k, sig, 64), 0);

        memcpy(bad, sig, 64);
        memset(bad, 0, 32); /* r = 0 */
        assert_int_equal(verify_msg(k, bad, 64), -EKEYREJECTED);
        memcpy(bad, sig, 64);
        memset(bad + 32, 0, 32); /* s = 0 */
        assert_int_equal(verify_msg(k, bad, 64), -EKEYREJECTED);
        memset(bad, 0, 64); /* both */
        assert_int_equal(verify_msg(k, bad, 64), -EKEYREJECTED);
        memcpy(bad, sig, 64);
        memcpy(bad, n, 32); /* r = n */
        assert_int_equal(verify_msg(k, bad, 64), -EKEYREJECTED);
        memcpy(bad, sig, 64);
        memcpy(bad + 32, n, 32); /* s = n */
        assert_int_equal(verify_msg(k, bad, 64), -EKEYREJECTED);
        memcpy(bad, sig, 64);
        memset(bad + 32, 0xff, 32); /* s > n */
        assert_int_equal(verify_msg(k, bad, 64), -EKEYREJECTED);

        /* 63 bytes (a dropped leading zero) and 65 bytes (a sign byte). */
        assert_int_equal(verify_msg(k, sig, 63), -EKEYREJECTED);
        assert_int_equal(verify_msg(k, sig + 1, 63), -EKEYREJECTED);
        bad[0] = 0;
        memcpy(bad + 1, sig, 64);
        assert_int_equal(verify_msg(k, bad, 65), -EKEYREJECTED);
        memcpy(bad, sig, 64);
        bad[64] = 0;
        assert_int_equal(verify_msg(k, bad, 65), -EKEYREJECTED);

        /* The DER form OpenSSL produces is not a JWS signature. */
        {
                ECDSA_SIG *es = ECDSA_SIG_new();
                unsigned char *der = NULL;
                int der_len;

                assert_non_null(es);
                assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)), 1);
                der_len = i2d_ECDSA_SIG(es, &der);
                assert_true(der_len > 64);
                assert_int_equal(verify_msg(k, der, (size_t) der_len), -EKEYREJECTED);
                OPENSSL_free(der);
                ECDSA_SIG_free(es);
        }

        /* still fine */
        assert_int_equal(verify_msg(k, sig, 64), 0);
}

static void test_rsa_signature_length(void **state _unused_) {
        for (jose_alg a = JOSE_ALG_RS256; a <= JOSE_ALG_PS256; a++) {
                uint8_t sig[JOSE_MAX_SIG_LEN + 1], padded[JOSE_MAX_SIG_LEN + 1];
                size_t len;

                sign_msg(keys[a], sig, &len);
                assert_int_equal(verify_msg(keys[a], sig, len), 0);
                /* A leading zero byte keeps the integer but not the length. */
                padded[0] = 0;
                memcpy(padded + 1, sig, len);
                assert_int_equal(verify_msg(keys[a], padded, len + 1), -EKEYREJECTED);
                assert_int_equal(verify_msg(keys[a], sig, len - 1), -EKEYREJECTED);
        }
}

/* ---- PEM ----------------------------------------------------------------- */

static void assert_same_key(const jose_key *a, const jose_key *b) {
        char ta[JOSE_THUMBPRINT_LEN + 1], tb[JOSE_THUMBPRINT_LEN + 1];
        uint8_t sig[JOSE_MAX_SIG_LEN];
        size_t len;

        jose_key_thumbprint(a, ta);
        jose_key_thumbprint(b, tb);
        assert_string_equal(ta, tb);
        assert_string_equal(jose_key_kid(a), jose_key_kid(b));
        assert_int_equal(jose_key_alg(a), jose_key_alg(b));
        if (jose_key_has_private(a)) {
                sign_msg(a, sig, &len);
                assert_int_equal(verify_msg(b, sig, len), 0);
        }
        if (jose_key_has_private(b)) {
                sign_msg(b, sig, &len);
                assert_int_equal(verify_msg(a, sig, len), 0);
        }
}

static void test_pem_round_trip(void **state _unused_) {
        for (jose_alg a = JOSE_ALG_EDDSA; a <= JOSE_ALG_PS256; a++) {
                _cleanup_(erase_and_freep) char *pem = NULL;
                _cleanup_(jose_key_freep) jose_key *k = NULL;

                assert_int_equal(jose_key_to_pem(keys[a], NULL, &pem), 0);
                assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----\n"));
                assert_int_equal(jose_key_load_pem(pem, strlen(pem), NULL, &k), 0);
                assert_true(jose_key_has_private(k));
                assert_same_key(keys[a], k);

                /* A passphrase is not needed, and ignored, for a plain key. */
                jose_key_free(TAKE_PTR(k));
                assert_int_equal(jose_key_load_pem(pem, strlen(pem), "unused", &k), 0);
        }
}

static void test_pem_encrypted(void **state _unused_) {
        for (jose_alg a = JOSE_ALG_EDDSA; a <= JOSE_ALG_PS256; a++) {
                _cleanup_(erase_and_freep) char *pem = NULL;
                jose_key *k = NULL;

                assert_int_equal(jose_key_to_pem(keys[a], "correct horse", &pem), 0);
                assert_non_null(strstr(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
                assert_int_equal(jose_key_load_pem(pem, strlen(pem), "wrong horse", &k), -EKEYREJECTED);
                assert_int_equal(jose_key_load_pem(pem, strlen(pem), NULL, &k), -EKEYREJECTED);
                assert_int_equal(jose_key_load_pem(pem, strlen(pem), "", &k), -EKEYREJECTED);
                assert_null(k);
                assert_int_equal(jose_key_load_pem(pem, strlen(pem), "correct horse", &k), 0);
                assert_same_key(keys[a], k);
                jose_key_free(k);
        }
        assert_int_equal(jose_key_to_pem(keys[JOSE_ALG_EDDSA], "", &(char *){ NULL }), -EINVAL);
}

/* Load a fixture, check its algorithm, and make a signature with it. */
static void assert_fixture_signs(const char *pem, const char *passphrase, jose_alg want) {
        jose_key *k = NULL;
        uint8_t sig[JOSE_MAX_SIG_LEN];
        size_t len;

        assert_int_equal(jose_key_load_pem(pem, strlen(pem), passphrase, &k), 0);
        assert_int_equal(jose_key_alg(k), want);
        sign_msg(k, sig, &len);
        assert_int_equal(verify_msg(k, sig, len), 0);
        jose_key_free(k);
}

/* Keys written by openssl(1): PKCS#8 Ed25519, RSASSA-PSS (→ PS256), and an
 * encrypted P-256 key. */
static void test_pem_openssl_fixtures(void **state _unused_) {
        _cleanup_(freep) char *ed = data_file("ed25519-openssl.pem"), *pss = data_file("rsa-pss-openssl.pem"),
                             *p256 = data_file("p256-openssl-encrypted.pem");
        jose_key *k = NULL;

        assert_fixture_signs(ed, NULL, JOSE_ALG_EDDSA);
        assert_fixture_signs(pss, NULL, JOSE_ALG_PS256);

        assert_int_equal(jose_key_load_pem(p256, strlen(p256), NULL, &k), -EKEYREJECTED);
        assert_int_equal(jose_key_load_pem(p256, strlen(p256), "fixture-pas", &k), -EKEYREJECTED);
        assert_null(k);
        assert_fixture_signs(p256, "fixture-pass", JOSE_ALG_ES256);
}

/* RSASSA-PSS keys restricted to other parameters cannot sign PS256
 * (SHA-256, MGF1-SHA-256, 32-byte salt): refused when loaded. */
static void test_pem_pss_restrictions(void **state _unused_) {
        _cleanup_(freep) char *ok = data_file("rsa-pss-sha256-restricted-openssl.pem"),
                             *bad = data_file("rsa-pss-sha512-restricted-openssl.pem");
        jose_key *k = NULL;

        assert_fixture_signs(ok, NULL, JOSE_ALG_PS256);
        assert_int_equal(jose_key_load_pem(bad, strlen(bad), NULL, &k), -EOPNOTSUPP);
        assert_null(k);
}

static void test_pem_traditional_refused(void **state _unused_) {
        EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
        EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        _cleanup_(freep) char *trad_rsa = NULL, *trad_ec = NULL;
        jose_key *k = NULL;

        assert_non_null(rsa);
        assert_non_null(ec);
        trad_rsa = ossl_pem(rsa, true);
        trad_ec = ossl_pem(ec, true);
        assert_non_null(strstr(trad_rsa, "-----BEGIN RSA PRIVATE KEY-----"));
        assert_non_null(strstr(trad_ec, "-----BEGIN EC PRIVATE KEY-----"));

        assert_int_equal(jose_key_load_pem(trad_rsa, strlen(trad_rsa), NULL, &k), -EBADMSG);
        assert_int_equal(jose_key_load_pem(trad_ec, strlen(trad_ec), NULL, &k), -EBADMSG);
        assert_null(k);

        /* control: the same keys as PKCS#8 */
        assert_int_equal(load_ossl(rsa, false, &k), 0);
        assert_int_equal(jose_key_alg(k), JOSE_ALG_RS256);
        jose_key_free(k);
        assert_int_equal(load_ossl(ec, false, &k), 0);
        assert_int_equal(jose_key_alg(k), JOSE_ALG_ES256);
        jose_key_free(k);

        EVP_PKEY_free(rsa);
        EVP_PKEY_free(ec);
}

static void test_pem_weak_or_foreign_refused(void **state _unused_) {
        EVP_PKEY *rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 1024);
        EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        EVP_PKEY *ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
        EVP_PKEY *x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
        jose_key *k = NULL;

        assert_non_null(rsa1024);
        assert_non_null(p384);
        assert_non_null(ed448);
        assert_non_null(x25519);
        assert_int_equal(load_ossl(rsa1024, false, &k), -EOPNOTSUPP);
        assert_int_equal(load_ossl(p384, false, &k), -EOPNOTSUPP);
        assert_int_equal(load_ossl(ed448, false, &k), -EOPNOTSUPP);
        assert_int_equal(load_ossl(x25519, false, &k), -EOPNOTSUPP);
        assert_null(k);
        EVP_PKEY_free(rsa1024);
        EVP_PKEY_free(p384);
        EVP_PKEY_free(ed448);
        EVP_PKEY_free(x25519);
}

static void test_pem_malformed(void **state _unused_) {
        _cleanup_(erase_and_freep) char *pem = NULL;
        _cleanup_(freep) char *two = NULL, *big = NULL, *pub = NULL;
        jose_key *k = NULL;
        size_t len;

        assert_int_equal(jose_key_to_pem(keys[JOSE_ALG_EDDSA], NULL, &pem), 0);
        len = strlen(pem);
        assert_int_equal(jose_key_load_pem(pem, len, NULL, &k), 0);
        jose_key_free(TAKE_PTR(k));

        assert_int_equal(jose_key_load_pem("", 0, NULL, &k), -EBADMSG);
        assert_int_equal(jose_key_load_pem("hello", 5, NULL, &k), -EBADMSG);
        /* truncated */
        assert_int_equal(jose_key_load_pem(pem, len / 2, NULL, &k), -EBADMSG);
        /* embedded NUL */
        pem[len - 3] = 0;
        assert_int_equal(jose_key_load_pem(pem, len, NULL, &k), -EBADMSG);
        pem[len - 3] = '-';
        /* two blocks */
        assert_true(asprintf(&two, "%s%s", pem, pem) > 0);
        assert_int_equal(jose_key_load_pem(two, strlen(two), NULL, &k), -EBADMSG);
        /* a public key block */
        assert_true(asprintf(&pub, "-----BEGIN PUBLIC KEY-----\n%s", strchr(pem, '\n') + 1) > 0);
        assert_int_equal(jose_key_load_pem(pub, strlen(pub), NULL, &k), -EBADMSG);
        /* over the cap, even if it would parse */
        big = malloc(JOSE_PEM_MAX_BYTES + 1);
        assert_non_null(big);
        memset(big, '\n', JOSE_PEM_MAX_BYTES + 1);
        memcpy(big, pem, len);
        assert_int_equal(jose_key_load_pem(big, JOSE_PEM_MAX_BYTES, NULL, &k), 0);
        jose_key_free(TAKE_PTR(k));
        assert_int_equal(jose_key_load_pem(big, JOSE_PEM_MAX_BYTES + 1, NULL, &k), -E2BIG);
        assert_null(k);
}

static void test_pem_files(void **state _unused_) {
        char dir[] = "/tmp/test-jose-key-XXXXXX", path[64], link_path[64], big_path[64];
        jose_key *k = NULL;
        struct stat st;
        int fd;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/key.pem", dir);
        snprintf(link_path, sizeof(link_path), "%s/link.pem", dir);
        snprintf(big_path, sizeof(big_path), "%s/big.pem", dir);

        assert_int_equal(jose_key_write_pem_file(keys[JOSE_ALG_ES256], path, "pw"), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(jose_key_load_pem_file(path, "pw", &k), 0);
        assert_same_key(keys[JOSE_ALG_ES256], k);
        jose_key_free(TAKE_PTR(k));
        assert_int_equal(jose_key_load_pem_file(path, NULL, &k), -EKEYREJECTED);

        /* never overwrites, never follows a symlink */
        assert_int_equal(jose_key_write_pem_file(keys[JOSE_ALG_EDDSA], path, NULL), -EEXIST);
        assert_int_equal(jose_key_load_pem_file(path, "pw", &k), 0);
        assert_int_equal(jose_key_alg(k), JOSE_ALG_ES256);
        jose_key_free(TAKE_PTR(k));
        assert_int_equal(symlink(path, link_path), 0);
        assert_int_equal(jose_key_load_pem_file(link_path, "pw", &k), -ELOOP);
        assert_int_equal(jose_key_write_pem_file(keys[JOSE_ALG_EDDSA], link_path, NULL), -EEXIST);
        assert_int_equal(unlink(link_path), 0);
        assert_int_equal(symlink("dangling", link_path), 0);
        assert_int_equal(jose_key_write_pem_file(keys[JOSE_ALG_EDDSA], link_path, NULL), -EEXIST);
        assert_int_equal(lstat(dir, &st), 0);

        /* not a regular file; too big; absent */
        assert_int_equal(jose_key_load_pem_file(dir, NULL, &k), -EBADMSG);
        fd = open(big_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, JOSE_PEM_MAX_BYTES + 1), 0);
        close(fd);
        assert_int_equal(jose_key_load_pem_file(big_path, NULL, &k), -E2BIG);
        assert_int_equal(jose_key_load_pem_file("/nonexistent/key.pem", NULL, &k), -ENOENT);
        assert_null(k);

        unlink(big_path);
        unlink(link_path);
        unlink(path);
        assert_int_equal(rmdir(dir), 0);
}

/* ---- JWK ----------------------------------------------------------------- */

static void test_jwk_round_trip(void **state _unused_) {
        static const char *const kty[] = { [JOSE_ALG_EDDSA] = "OKP", [JOSE_ALG_ES256] = "EC",
                                           [JOSE_ALG_RS256] = "RSA", [JOSE_ALG_PS256] = "RSA" };

        for (jose_alg a = JOSE_ALG_EDDSA; a <= JOSE_ALG_PS256; a++) {
                _cleanup_(json_decrefp) json_t *jwk = NULL, *again = NULL;
                _cleanup_(jose_key_freep) jose_key *pub = NULL;
                _cleanup_(freep) char *s = NULL;

                assert_int_equal(jose_key_to_jwk(keys[a], &jwk), 0);
                assert_string_equal(td_json_object_get_str(jwk, "kty"), kty[a]);
                assert_string_equal(td_json_object_get_str(jwk, "alg"), jose_alg_to_string(a));
                assert_string_equal(td_json_object_get_str(jwk, "use"), "sig");
                assert_string_equal(td_json_object_get_str(jwk, "kid"), jose_key_kid(keys[a]));
                assert_null(json_object_get(jwk, "d"));
                assert_null(json_object_get(jwk, "p"));

                /* through text, as a JWKS consumer sees it */
                assert_int_equal(td_json_dump_compact(jwk, &s), 0);
                json_decref(TAKE_PTR(jwk));
                jwk = parse(s);
                assert_int_equal(jose_key_from_jwk(jwk, &pub), 0);
                assert_false(jose_key_has_private(pub));
                assert_same_key(keys[a], pub);
                assert_int_equal(jose_key_to_jwk(pub, &again), 0);
                assert_true(json_equal(jwk, again));
        }
}

/* RFC 7638 §3.1: the example RSA key hashes to the published thumbprint. */
static void test_rfc7638_known_answer(void **state _unused_) {
        _cleanup_(json_decrefp) json_t *jwk = NULL;
        jose_key *k = NULL;
        char tp[JOSE_THUMBPRINT_LEN + 1];

        jwk = json_pack("{s:s,s:s,s:s,s:s,s:s}", "kty", "RSA", "n", rfc7638_n, "e", "AQAB", "alg", "RS256", "kid",
                        "2011-04-29");
        assert_non_null(jwk);
        assert_int_equal(jose_key_from_jwk(jwk, &k), 0);
        jose_key_thumbprint(k, tp);
        assert_string_equal(tp, rfc7638_thumbprint);
        assert_string_equal(jose_key_kid(k), "2011-04-29");
        jose_key_free(k);

        /* without a kid: the thumbprint prefix */
        assert_int_equal(json_object_del(jwk, "kid"), 0);
        assert_int_equal(jose_key_from_jwk(jwk, &k), 0);
        assert_string_equal(jose_key_kid(k), "NzbLsXh8uDCc");
        jose_key_free(k);

        /* RFC 8037 §A.3: Ed25519 */
        json_decref(jwk);
        jwk = json_pack("{s:s,s:s,s:s}", "kty", "OKP", "crv", "Ed25519", "x", rfc8037_x);
        assert_int_equal(jose_key_from_jwk(jwk, &k), 0);
        jose_key_thumbprint(k, tp);
        assert_string_equal(tp, rfc8037_thumbprint);
        jose_key_free(k);
}

static void test_jwk_private_refused(void **state _unused_) {
        static const char *const priv[] = { "d", "p", "q", "dp", "dq", "qi", "oth", "k" };

        for (jose_alg a = JOSE_ALG_EDDSA; a <= JOSE_ALG_PS256; a++) {
                _cleanup_(json_decrefp) json_t *jwk = NULL;
                jose_key *k = NULL;

                assert_int_equal(jose_key_to_jwk(keys[a], &jwk), 0);
                assert_int_equal(jose_key_from_jwk(jwk, &k), 0); /* control */
                jose_key_free(TAKE_PTR(k));
                for (size_t i = 0; i < ELEMENTSOF(priv); i++) {
                        assert_int_equal(json_object_set_new(jwk, priv[i], json_string("AQAB")), 0);
                        assert_int_equal(jose_key_from_jwk(jwk, &k), -EPERM);
                        assert_int_equal(json_object_del(jwk, priv[i]), 0);
                }
                assert_null(k);
        }

        /* a symmetric key */
        _cleanup_(json_decrefp) json_t *oct = json_pack("{s:s,s:s}", "kty", "oct", "k", "c2VjcmV0");
        assert_int_equal(jose_key_from_jwk(oct, &(jose_key *){ NULL }), -EPERM);
}

/* Change one member of k's JWK and expect want from the import. */
static void assert_jwk_variant(const jose_key *k, const char *member, json_t *value, int want) {
        _cleanup_(json_decrefp) json_t *jwk = NULL;
        jose_key *out = NULL;

        assert_int_equal(jose_key_to_jwk(k, &jwk), 0);
        if (value)
                assert_int_equal(json_object_set_new(jwk, member, value), 0);
        else
                assert_int_equal(json_object_del(jwk, member), 0);
        assert_int_equal(jose_key_from_jwk(jwk, &out), want);
        if (want == 0)
                jose_key_free(out);
        else
                assert_null(out);
}

static void test_jwk_malformed(void **state _unused_) {
        const jose_key *ed = keys[JOSE_ALG_EDDSA], *ec = keys[JOSE_ALG_ES256], *rsa = keys[JOSE_ALG_RS256];
        _cleanup_(json_decrefp) json_t *jwk = NULL;
        uint8_t raw[33];
        char x[80];

        /* controls: alg, use and kid are optional for OKP/EC */
        assert_jwk_variant(ed, "alg", NULL, 0);
        assert_jwk_variant(ec, "use", NULL, 0);
        assert_jwk_variant(ec, "kid", NULL, 0);
        assert_jwk_variant(ec, "kid", json_string("my-key_1.0"), 0);

        /* alg must match the key type; an algorithm we do not implement
         * (none, HS256, ES384) is unsupported, and such a key left out of a
         * JWKS rather than spoiling it */
        assert_jwk_variant(ed, "alg", json_string("ES256"), -EBADMSG);
        assert_jwk_variant(ec, "alg", json_string("EdDSA"), -EBADMSG);
        assert_jwk_variant(ec, "alg", json_string("ES384"), -EOPNOTSUPP);
        assert_jwk_variant(ec, "alg", json_string("none"), -EOPNOTSUPP);
        assert_jwk_variant(rsa, "alg", json_string("HS256"), -EOPNOTSUPP);
        assert_jwk_variant(rsa, "alg", json_string("ES256"), -EBADMSG);
        assert_jwk_variant(rsa, "alg", json_integer(1), -EBADMSG);
        /* RSA without alg is RS256 (test_jwk_rsa_default_alg); PS256 says so */
        assert_jwk_variant(rsa, "alg", NULL, 0);
        assert_jwk_variant(rsa, "alg", json_string("PS256"), 0);
        /* use (RFC 7517 §4.2) and key_ops (§4.3): a key for another purpose
         * is -EKEYREJECTED, a member of the wrong type malformed */
        assert_jwk_variant(ec, "use", json_string("sig"), 0);
        assert_jwk_variant(ec, "use", json_string("enc"), -EKEYREJECTED);
        assert_jwk_variant(ec, "use", json_true(), -EBADMSG);
        assert_jwk_variant(ec, "key_ops", json_pack("[s]", "verify"), 0);
        assert_jwk_variant(ec, "key_ops", json_pack("[s,s]", "sign", "verify"), 0);
        assert_jwk_variant(ec, "key_ops", json_pack("[s]", "sign"), -EKEYREJECTED);
        assert_jwk_variant(ec, "key_ops", json_pack("[s]", "encrypt"), -EKEYREJECTED);
        assert_jwk_variant(ec, "key_ops", json_array(), -EKEYREJECTED);
        assert_jwk_variant(ec, "key_ops", json_string("verify"), -EBADMSG);
        assert_jwk_variant(ec, "key_ops", json_pack("[i]", 1), -EBADMSG);
        /* kid (RFC 7517 §4.5): any string of 1..64 bytes, RFC 7520's too */
        assert_jwk_variant(ec, "kid", json_string("bilbo.baggins@hobbiton.example"), 0);
        assert_jwk_variant(ec, "kid", json_string("a b"), 0);
        assert_jwk_variant(ec, "kid", json_string("a\"b/\u00e9"), 0);
        assert_jwk_variant(ec, "kid", json_string(""), -EBADMSG);
        assert_jwk_variant(ec, "kid", json_integer(5), -EBADMSG);
        memset(x, 'a', 65);
        x[65] = 0;
        assert_jwk_variant(ec, "kid", json_string(x), -EBADMSG);
        x[64] = 0;
        assert_jwk_variant(ec, "kid", json_string(x), 0);
        /* kty / crv */
        assert_jwk_variant(ec, "kty", NULL, -EBADMSG);
        assert_jwk_variant(ec, "kty", json_string("oct"), -EOPNOTSUPP);
        assert_jwk_variant(ec, "crv", json_string("P-384"), -EOPNOTSUPP);
        assert_jwk_variant(ec, "crv", NULL, -EBADMSG);
        assert_jwk_variant(ed, "crv", json_string("Ed448"), -EOPNOTSUPP);
        assert_jwk_variant(ed, "crv", json_string("X25519"), -EOPNOTSUPP);

        /* Ed25519 x: exactly 32 canonical bytes, a valid point */
        memset(raw, 0x11, sizeof(raw));
        sodium_bin2base64(x, sizeof(x), raw, 31, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        assert_jwk_variant(ed, "x", json_string(x), -EBADMSG);
        sodium_bin2base64(x, sizeof(x), raw, 33, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        assert_jwk_variant(ed, "x", json_string(x), -EBADMSG);
        memset(raw, 0, 32); /* small-order point */
        raw[0] = 1;
        sodium_bin2base64(x, sizeof(x), raw, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        assert_jwk_variant(ed, "x", json_string(x), -EBADMSG);
        assert_jwk_variant(ed, "x", json_string(rfc8037_x), 0);
        assert_jwk_variant(ed, "x", NULL, -EBADMSG);
        assert_jwk_variant(ed, "x", json_integer(3), -EBADMSG);

        /* EC: a point off the curve; coordinates of the wrong width */
        {
                uint8_t y[32];
                const char *ys;

                assert_int_equal(jose_key_to_jwk(ec, &jwk), 0);
                ys = td_json_object_get_str(jwk, "y");
                assert_int_equal(b64url_decode_exact(ys, strlen(ys), y, sizeof(y)), 0);
                y[31] ^= 1;
                sodium_bin2base64(x, sizeof(x), y, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
                assert_jwk_variant(ec, "y", json_string(x), -EBADMSG);
                raw[0] = 0;
                memcpy(raw + 1, y, 32);
                raw[32] ^= 1; /* the genuine y with a leading zero byte */
                sodium_bin2base64(x, sizeof(x), raw, 33, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
                assert_jwk_variant(ec, "y", json_string(x), -EBADMSG);
                assert_jwk_variant(ec, "y", json_string("AAAA"), -EBADMSG);
                assert_jwk_variant(ec, "y", NULL, -EBADMSG);
        }

        /* RSA: n with a leading zero, short modulus, bad exponent */
        assert_jwk_variant(rsa, "e", json_string("AAEAAQ"), -EBADMSG); /* 00 01 00 01 */
        assert_jwk_variant(rsa, "e", json_string("AQ"), -EBADMSG);     /* 1 */
        assert_jwk_variant(rsa, "e", json_string("AQAA"), -EBADMSG);   /* even */
        assert_jwk_variant(rsa, "e", json_string("AQAB"), 0);
        {
                _cleanup_(freep) char *nz = NULL;
                char n1024[200];

                assert_true(asprintf(&nz, "AA%s", rfc7638_n) > 0); /* not canonical length anyway */
                assert_jwk_variant(rsa, "n", json_string(nz), -EBADMSG);
                memset(raw, 0xc5, 32);
                /* 1024-bit modulus: refused as too weak */
                uint8_t m[128];
                memset(m, 0xc5, sizeof(m));
                m[127] |= 1;
                sodium_bin2base64(n1024, sizeof(n1024), m, sizeof(m), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
                assert_jwk_variant(rsa, "n", json_string(n1024), -EOPNOTSUPP);
                uint8_t m0[257];
                char n0[400];
                memset(m0, 0xc5, sizeof(m0));
                m0[0] = 0;
                sodium_bin2base64(n0, sizeof(n0), m0, sizeof(m0), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
                assert_jwk_variant(rsa, "n", json_string(n0), -EBADMSG);
        }

        /* not an object */
        json_t *arr = json_array();
        assert_int_equal(jose_key_from_jwk(arr, &(jose_key *){ NULL }), -EBADMSG);
        json_decref(arr);
}

/* The RSA modulus is checked the same way on every import. The first one
 * is the RFC 7638 modulus with a few bits flipped by the fuzzer: 3449 × m.
 * OpenSSL's own check (Miller-Rabin on random bases) took it on about 998
 * imports in 1000 and refused the others; a prime is no modulus either. */
static const char rsa_n_3449[] =
        "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1PtBQ04d4mlL-yR"
        "T-SFd2lZS-xCgNMsD1W_YpRPEwOWvG6bdi690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXB"
        "dQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9ia"
        "GNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
static const char rsa_n_prime[] = /* openssl prime -generate -bits 2048 */
        "2DgVQqVdxUtPr5DL7iA7JtnCjFh_goshiPsTpTJ8wMdnRu458xDzKfBUbahMW5arph_qeRjbGifWxCEK9e1C_efd2vRgWYL3KVlK"
        "8c6xpxQNC-BO4y0U-0a5F214WwiWYHgPZWTKJOdzUjJraeEXpM_SI9l8g5nOCv3296MQyjRQ9tx1ERtuSjLyGgB2fEIpJEIxbRHd"
        "7WkqvjsxXC3pKT11RKJfayuJfia1CcXyhYQolpf9eiq3tmIfDC_yQSvRN6U7T2vlS-I8rZX0FynwOr88PdbqdQ4AooNRc8cboKMT"
        "pp09dPZR25BHI8Znua67Gu0eGATOSG6P7o-_NUU73Q";

static void test_jwk_rsa_modulus(void **state _unused_) {
        static const char *const bad[] = { rsa_n_3449, rsa_n_prime };

        for (int i = 0; i < 50; i++) {
                for (size_t j = 0; j < ELEMENTSOF(bad); j++) {
                        _cleanup_(json_decrefp) json_t *jwk = json_pack("{s:s,s:s,s:s,s:s}", "kty", "RSA", "alg",
                                                                        "RS256", "e", "AQAB", "n", bad[j]);
                        jose_key *k = NULL;

                        assert_non_null(jwk);
                        assert_int_equal(jose_key_from_jwk(jwk, &k), -EBADMSG);
                        assert_null(k);
                }
                /* control: the genuine RFC 7638 modulus */
                _cleanup_(json_decrefp) json_t *good = json_pack("{s:s,s:s,s:s,s:s}", "kty", "RSA", "alg", "RS256",
                                                                 "e", "AQAB", "n", rfc7638_n);
                _cleanup_(jose_key_freep) jose_key *k = NULL;
                assert_int_equal(jose_key_from_jwk(good, &k), 0);
        }
}

static void test_ed25519_raw(void **state _unused_) {
        _cleanup_(jose_key_freep) jose_key *pub = NULL;
        uint8_t pk[32], small[32] = { 1 }, sig[JOSE_MAX_SIG_LEN];
        size_t len;

        assert_int_equal(jose_key_ed25519_public(keys[JOSE_ALG_EDDSA], pk), 0);
        assert_int_equal(jose_key_ed25519_public(keys[JOSE_ALG_ES256], pk + 0), -EINVAL);
        assert_int_equal(jose_key_from_ed25519_public(pk, &pub), 0);
        assert_same_key(keys[JOSE_ALG_EDDSA], pub);
        sign_msg(keys[JOSE_ALG_EDDSA], sig, &len);
        assert_int_equal(verify_msg(pub, sig, len), 0);
        assert_int_equal(jose_key_from_ed25519_public(small, &(jose_key *){ NULL }), -EBADMSG);
}

/* ---- key sets ------------------------------------------------------------ */

static void test_keyset(void **state _unused_) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL, *back = NULL;
        _cleanup_(json_decrefp) json_t *jwks = NULL;
        _cleanup_(freep) char *s = NULL;

        assert_int_equal(jose_keyset_new(&ks), 0);
        assert_int_equal(jose_keyset_size(ks), 0);
        for (jose_alg a = JOSE_ALG_EDDSA; a <= JOSE_ALG_PS256; a++) {
                _cleanup_(json_decrefp) json_t *jwk = NULL;
                jose_key *pub = NULL, *dup = NULL;

                assert_int_equal(jose_key_to_jwk(keys[a], &jwk), 0);
                assert_int_equal(jose_key_from_jwk(jwk, &pub), 0);
                assert_int_equal(jose_keyset_add(ks, pub), 0);
                /* a second key with the same kid is refused, not owned */
                assert_int_equal(jose_key_from_jwk(jwk, &dup), 0);
                assert_int_equal(jose_keyset_add(ks, dup), -EEXIST);
                jose_key_free(dup);
        }
        assert_int_equal(jose_keyset_size(ks), 4);
        assert_ptr_equal(jose_keyset_find(ks, jose_key_kid(keys[JOSE_ALG_ES256])), jose_keyset_get(ks, 1));
        assert_null(jose_keyset_find(ks, "nope"));
        assert_null(jose_keyset_get(ks, 4));

        assert_int_equal(jose_keyset_to_jwks(ks, &jwks), 0);
        assert_int_equal(td_json_dump_compact(jwks, &s), 0);
        assert_int_equal(jose_keyset_from_jwks(s, strlen(s), NULL, NULL, &back), 0);
        assert_int_equal(jose_keyset_size(back), 4);
        for (size_t i = 0; i < 4; i++)
                assert_same_key(jose_keyset_get(ks, i), jose_keyset_get(back, i));
}

typedef struct skipped {
        size_t n, index[8];
        int error[8];
        char kid[8][16];
} skipped;

static void on_skip(void *userdata, size_t index, const char *kid, int error) {
        skipped *s = userdata;

        assert_true(s->n < ELEMENTSOF(s->index));
        s->index[s->n] = index;
        s->error[s->n] = error;
        snprintf(s->kid[s->n], sizeof(s->kid[0]), "%s", kid ? kid : "-");
        s->n++;
}

/* RFC 7517 §5: keys that cannot or must not verify are left out and
 * reported, the usable ones kept; a set of only such keys is empty. */
static void test_jwks_skips_unusable_keys(void **state _unused_) {
        _cleanup_(json_decrefp) json_t *good = NULL, *set = NULL;
        _cleanup_(freep) char *text = NULL, *bad_only = NULL;
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL, *none = NULL;
        skipped s = { 0 };

        assert_int_equal(jose_key_to_jwk(keys[JOSE_ALG_EDDSA], &good), 0);
        set = json_pack("{s:[{s:s,s:s,s:s,s:s},{s:s,s:s},O,{s:s,s:s,s:O,s:s},i,{s:s,s:s,s:s,s:s}]}", "keys",
                        "kty", "OKP", "crv", "X25519", "x", "AAAA", "kid", "x25519", /* unsupported */
                        "kty", "EC", "kid", "nocrv",                                 /* malformed */
                        good,                                                        /* usable */
                        "kty", "OKP", "crv", "Ed25519", "x", json_object_get(good, "x"), "use", "enc",
                        7,                                                           /* not an object */
                        "kty", "RSA", "alg", "PS512", "n", "AQAB", "e", "AQAB");      /* unsupported alg */
        assert_non_null(set);
        assert_int_equal(td_json_dump_compact(set, &text), 0);
        assert_int_equal(jose_keyset_from_jwks(text, strlen(text), on_skip, &s, &ks), 0);
        assert_int_equal(jose_keyset_size(ks), 1);
        assert_non_null(jose_keyset_find(ks, jose_key_kid(keys[JOSE_ALG_EDDSA])));
        assert_int_equal(s.n, 5);
        static const size_t want_index[] = { 0, 1, 3, 4, 5 };
        static const int want_error[] = { -EOPNOTSUPP, -EBADMSG, -EKEYREJECTED, -EBADMSG, -EOPNOTSUPP };
        for (size_t i = 0; i < 5; i++) {
                assert_int_equal(s.index[i], want_index[i]);
                assert_int_equal(s.error[i], want_error[i]);
        }
        assert_string_equal(s.kid[0], "x25519");
        assert_string_equal(s.kid[3], "-");

        /* the same without the usable key: empty, no error; NULL callback ok */
        assert_int_equal(json_array_remove(json_object_get(set, "keys"), 2), 0);
        assert_int_equal(td_json_dump_compact(set, &bad_only), 0);
        assert_int_equal(jose_keyset_from_jwks(bad_only, strlen(bad_only), NULL, NULL, &none), 0);
        assert_int_equal(jose_keyset_size(none), 0);
}

static void test_jwks_hostile(void **state _unused_) {
        _cleanup_(json_decrefp) json_t *jwk = NULL, *dup = NULL, *many = NULL;
        _cleanup_(freep) char *one = NULL, *two = NULL, *hundred = NULL, *over = NULL, *priv = NULL,
                             *big = NULL;
        jose_keyset *ks = NULL;

        assert_int_equal(jose_key_to_jwk(keys[JOSE_ALG_EDDSA], &jwk), 0);
        json_t *arr = json_array();
        json_array_append(arr, jwk);
        dup = json_pack("{s:o}", "keys", arr);
        assert_int_equal(td_json_dump_compact(dup, &one), 0);
        assert_int_equal(jose_keyset_from_jwks(one, strlen(one), NULL, NULL, &ks), 0);
        jose_keyset_free(TAKE_PTR(ks));

        /* duplicate kid */
        json_array_append(arr, jwk);
        assert_int_equal(td_json_dump_compact(dup, &two), 0);
        assert_int_equal(jose_keyset_from_jwks(two, strlen(two), NULL, NULL, &ks), -EEXIST);

        /* 100 keys fine, 101 too many (distinct kids) */
        many = json_pack("{s:[]}", "keys");
        for (int i = 0; i < 101; i++) {
                json_t *k = json_deep_copy(jwk);
                char kid[16];
                snprintf(kid, sizeof(kid), "k%d", i);
                json_object_set_new(k, "kid", json_string(kid));
                json_array_append_new(json_object_get(many, "keys"), k);
                if (i == 99)
                        assert_int_equal(td_json_dump_compact(many, &hundred), 0);
        }
        assert_int_equal(td_json_dump_compact(many, &over), 0);
        assert_int_equal(jose_keyset_from_jwks(hundred, strlen(hundred), NULL, NULL, &ks), 0);
        assert_int_equal(jose_keyset_size(ks), 100);
        jose_keyset_free(TAKE_PTR(ks));
        assert_int_equal(jose_keyset_from_jwks(over, strlen(over), NULL, NULL, &ks), -E2BIG);

        /* a private member in one key spoils the set */
        json_object_set_new(jwk, "d", json_string("AAAA"));
        json_array_clear(arr);
        json_array_append(arr, jwk);
        assert_int_equal(td_json_dump_compact(dup, &priv), 0);
        assert_int_equal(jose_keyset_from_jwks(priv, strlen(priv), NULL, NULL, &ks), -EPERM);

        /* shape */
        assert_int_equal(jose_keyset_from_jwks("{\"keys\":[]}", 11, NULL, NULL, &ks), 0);
        assert_int_equal(jose_keyset_size(ks), 0);
        jose_keyset_free(TAKE_PTR(ks));
        assert_int_equal(jose_keyset_from_jwks("{}", 2, NULL, NULL, &ks), -EBADMSG);
        assert_int_equal(jose_keyset_from_jwks("{\"keys\":{}}", 11, NULL, NULL, &ks), -EBADMSG);
        assert_int_equal(jose_keyset_from_jwks("[]", 2, NULL, NULL, &ks), -EBADMSG);
        assert_int_equal(jose_keyset_from_jwks("{\"keys\":[1]}", 12, NULL, NULL, &ks), 0); /* left out */
        assert_int_equal(jose_keyset_size(ks), 0);
        jose_keyset_free(TAKE_PTR(ks));
        assert_int_equal(jose_keyset_from_jwks("{\"keys\":[],\"keys\":[]}", 21, NULL, NULL, &ks), -EBADMSG);
        big = malloc((1U << 20) + 1);
        assert_non_null(big);
        memset(big, ' ', (1U << 20) + 1);
        memcpy(big, "{\"keys\":[]}", 11);
        assert_int_equal(jose_keyset_from_jwks(big, 1U << 20, NULL, NULL, &ks), 0);
        jose_keyset_free(TAKE_PTR(ks));
        assert_int_equal(jose_keyset_from_jwks(big, (1U << 20) + 1, NULL, NULL, &ks), -E2BIG);
        assert_null(ks);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_alg_strings),
                cmocka_unit_test(test_sign_verify),
                cmocka_unit_test(test_wrong_key_type),
                cmocka_unit_test(test_public_key_cannot_sign),
                cmocka_unit_test(test_es256_signature_form),
                cmocka_unit_test(test_rsa_signature_length),
                cmocka_unit_test(test_pem_round_trip),
                cmocka_unit_test(test_pem_encrypted),
                cmocka_unit_test(test_pem_openssl_fixtures),
                cmocka_unit_test(test_pem_pss_restrictions),
                cmocka_unit_test(test_pem_traditional_refused),
                cmocka_unit_test(test_pem_weak_or_foreign_refused),
                cmocka_unit_test(test_pem_malformed),
                cmocka_unit_test(test_pem_files),
                cmocka_unit_test(test_jwk_round_trip),
                cmocka_unit_test(test_rfc7638_known_answer),
                cmocka_unit_test(test_jwk_private_refused),
                cmocka_unit_test(test_jwk_malformed),
                cmocka_unit_test(test_jwk_rsa_modulus),
                cmocka_unit_test(test_ed25519_raw),
                cmocka_unit_test(test_keyset),
                cmocka_unit_test(test_jwks_hostile),
                cmocka_unit_test(test_jwks_skips_unusable_keys),
        };

        return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
