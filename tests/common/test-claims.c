/* SPDX-License-Identifier: MIT */
/* Access tokens: at_build → at_verify for every algorithm, the exact wire
 * layout, the 511-byte budget of DESIGN.md, and a table of hostile claim
 * sets, each signed for real so the whole verify path runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "b64.h"
#include "jose-claims.h"
#include "jose-jwk.h"
#include "jose-test-util.h"
#include "json-util.h"

#define NOW 1700000100LL
#define SKEW 30LL

static const jose_key *ed_key(void **state) {
        return fkey(state, JOSE_ALG_EDDSA);
}

static const char *const default_aud[] = { "sshd", "login", "su" };

static at_params default_params(void) {
        return (at_params) {
                .issuer = "tokend",
                .subject = "alice",
                .uid = 1000,
                .aud = default_aud,
                .n_aud = ELEMENTSOF(default_aud),
                .iat = NOW - 100,
                .lifetime = 900,
                .client_id = "dev_AAAAAAAAAAAAAAAA",
        };
}

static int check_token(void **state, const char *token, size_t len, const char *issuer, const char *audience,
                       at_claims *ret) {
        at_check chk = { .issuer = issuer, .audience = audience, .now = NOW, .skew = SKEW };
        at_claims c, sentinel;
        int r;

        memset(&c, 0x5A, sizeof(c));
        sentinel = c;
        r = at_verify(fks(state), token, len, &chk, &c);
        if (r < 0) {
                assert_memory_equal(&c, &sentinel, sizeof(c)); /* untouched on failure */
                return r;
        }
        if (ret)
                *ret = c;
        else
                at_claims_done(&c);
        return 0;
}

/* ---- building ------------------------------------------------------ */

static void test_roundtrip_all_algs(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(test_algs); i++) {
                at_params p = default_params();
                _cleanup_(freep) char *token = NULL;
                char jti[AT_JTI_BYTES * 2];
                size_t len = 0;
                at_claims c;

                p.scope = "openid";
                p.cnf_jkt = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
                assert_int_equal(at_build(fkey(state, test_algs[i]), &p, &token, &len, jti, sizeof(jti)), 0);
                assert_int_equal(len, strlen(token));
                print_message("%-5s access token: %zu bytes\n", jose_alg_to_string(test_algs[i]), len);

                assert_int_equal(check_token(state, token, len, "tokend", "sshd", &c), 0);
                assert_string_equal(c.iss, "tokend");
                assert_string_equal(c.sub, "alice");
                assert_int_equal(c.uid, 1000);
                assert_int_equal(c.n_aud, 3);
                assert_string_equal(c.aud[0], "sshd");
                assert_string_equal(c.aud[1], "login");
                assert_string_equal(c.aud[2], "su");
                assert_int_equal(c.iat, NOW - 100);
                assert_int_equal(c.exp, NOW + 800);
                assert_int_equal(c.nbf, 0);
                assert_string_equal(c.jti, jti);
                assert_int_equal(strlen(jti), 22);
                assert_string_equal(c.client_id, "dev_AAAAAAAAAAAAAAAA");
                assert_string_equal(c.scope, "openid");
                assert_string_equal(c.cnf_jkt, p.cnf_jkt);
                assert_string_equal(c.kid, jose_key_kid(fkey(state, test_algs[i])));
                at_claims_done(&c);
                at_claims_done(&c); /* idempotent */

                /* One byte of payload, one byte of signature. */
                char *d1 = strchr(token, '.'), *d2 = strrchr(token, '.'), saved;
                saved = d1[5];
                d1[5] = saved == 'A' ? 'B' : 'A';
                assert_int_equal(check_token(state, token, len, "tokend", "sshd", NULL), -EKEYREJECTED);
                d1[5] = saved;
                saved = d2[8];
                d2[8] = saved == 'A' ? 'B' : 'A';
                assert_int_equal(check_token(state, token, len, "tokend", "sshd", NULL), -EKEYREJECTED);
                d2[8] = saved;
                assert_int_equal(check_token(state, token, len, "tokend", "sshd", NULL), 0);
        }
        at_claims_done(NULL);
}

/* The wire form is part of the contract (DESIGN.md, 511-byte budget). */
static void test_exact_layout(void **state) {
        const jose_key *key = ed_key(state);
        at_params p = default_params();
        _cleanup_(freep) char *token = NULL, *want_header = NULL;
        _cleanup_(freep) uint8_t *h = NULL, *b = NULL;
        const char *d1, *d2;
        size_t len, h_len, b_len;
        char jti[32];

        p.jti = "fixed-jti";
        p.scope = "openid";
        p.cnf_jkt = "jkt";
        assert_int_equal(at_build(key, &p, &token, &len, jti, sizeof(jti)), 0);
        assert_string_equal(jti, "fixed-jti");
        d1 = strchr(token, '.');
        d2 = strrchr(token, '.');
        assert_int_equal(b64url_decode(token, (size_t) (d1 - token), &h, &h_len), 0);
        assert_int_equal(b64url_decode(d1 + 1, (size_t) (d2 - d1 - 1), &b, &b_len), 0);

        want_header = malloc(64 + strlen(jose_key_kid(key)));
        assert_non_null(want_header);
        sprintf(want_header, "{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", jose_key_kid(key));
        assert_string_equal((const char *) h, want_header);
        assert_string_equal((const char *) b,
                            "{\"iss\":\"tokend\",\"sub\":\"alice\",\"uid\":1000,\"aud\":[\"sshd\",\"login\",\"su\"],"
                            "\"iat\":1700000000,\"exp\":1700000900,\"jti\":\"fixed-jti\","
                            "\"client_id\":\"dev_AAAAAAAAAAAAAAAA\",\"scope\":\"openid\",\"cnf\":{\"jkt\":\"jkt\"}}");

        /* Empty scope and no cnf: omitted. Random jti: 22 chars, fresh. */
        _cleanup_(freep) char *t2 = NULL, *t3 = NULL;
        char j2[AT_JTI_BYTES * 2], j3[AT_JTI_BYTES * 2];
        p = default_params();
        p.scope = "";
        assert_int_equal(at_build(key, &p, &t2, NULL, j2, sizeof(j2)), 0);
        assert_int_equal(at_build(key, &p, &t3, NULL, j3, sizeof(j3)), 0);
        assert_int_equal(strlen(j2), 22);
        assert_string_not_equal(j2, j3);
        at_claims c;
        assert_int_equal(check_token(state, t2, strlen(t2), "tokend", NULL, &c), 0);
        assert_null(c.scope);
        assert_null(c.cnf_jkt);
        assert_string_equal(c.jti, j2);
        at_claims_done(&c);
}

/* DESIGN.md: a default EdDSA token with a 32-byte user name fits a PAM
 * answer (PAM_MAX_RESP_SIZE 512 including the NUL). */
static void test_default_token_size(void **state) {
        at_params p = default_params();
        _cleanup_(freep) char *token = NULL;
        char client_id[4 + 16 + 1] = "dev_", jkt[JOSE_THUMBPRINT_LEN + 1];
        size_t len;

        assert_int_equal(b64url_random(12, client_id + 4, sizeof(client_id) - 4), 0);
        assert_int_equal(strlen(client_id), 20);
        assert_int_equal(b64url_random(32, jkt, sizeof(jkt)), 0);
        p.subject = "abcdefghijklmnopqrstuvwxyz012345";
        assert_int_equal(strlen(p.subject), 32);
        p.uid = 4294967294U;
        p.iat = 4102444800LL; /* 2100-01-01: ten-digit times */
        p.lifetime = 24 * 3600;
        p.client_id = client_id;
        p.cnf_jkt = jkt;
        assert_int_equal(at_build(ed_key(state), &p, &token, &len, NULL, 0), 0);
        print_message("default EdDSA access token (32-byte user, cnf.jkt): %zu bytes (limit 511)\n", len);
        assert_true(len <= 511);
}

static void test_build_rejects(void **state) {
        const jose_key *key = ed_key(state);
        static const char *const too_many[AT_MAX_AUD + 1] = {
                "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q",
        };
        static const char *const empty_aud[] = { "sshd", "" };
        char long_str[AT_MAX_STRING + 2];
        char *token = NULL, jti[23];
        at_params p;

        memset(long_str, 'a', sizeof(long_str) - 1);
        long_str[sizeof(long_str) - 1] = 0;

#define REJECT(expr)                                                                  \
        do {                                                                          \
                p = default_params();                                                 \
                expr;                                                                 \
                assert_int_equal(at_build(key, &p, &token, NULL, NULL, 0), -EINVAL); \
                assert_null(token);                                                   \
        } while (0)

        REJECT(p.uid = 4294967295U);
        REJECT(p.n_aud = 0);
        REJECT(p.aud = NULL);
        REJECT((p.aud = too_many, p.n_aud = ELEMENTSOF(too_many)));
        REJECT((p.aud = empty_aud, p.n_aud = 2));
        REJECT(p.lifetime = 0);
        REJECT(p.lifetime = -5);
        REJECT(p.iat = -1);
        REJECT(p.iat = AT_TIME_MAX);
        REJECT(p.issuer = NULL);
        REJECT(p.issuer = "");
        REJECT(p.subject = "");
        REJECT(p.subject = long_str);
        REJECT(p.client_id = NULL);
        REJECT(p.cnf_jkt = "");
        REJECT(p.jti = "");
        REJECT(p.subject = "\xff\xfe"); /* not UTF-8 */
#undef REJECT

        /* jti buffer too small for the jti. */
        p = default_params();
        assert_int_equal(at_build(key, &p, &token, NULL, jti, 22), -EINVAL);
        /* Control: the boundaries themselves are fine. */
        p.uid = 4294967294U;
        p.aud = too_many;
        p.n_aud = AT_MAX_AUD;
        long_str[AT_MAX_STRING] = 0;
        p.subject = long_str;
        assert_int_equal(at_build(key, &p, &token, NULL, jti, sizeof(jti)), 0);
        assert_int_equal(check_token(state, token, strlen(token), "tokend", "p", NULL), 0);
        free(token);
}

/* ---- the hostile claims table ------------------------------------- */

#define HDR "{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"$KID\"}"
#define CLAIMS_HEAD "{\"iss\":\"tokend\",\"sub\":\"alice\",\"uid\":1000,\"aud\":[\"sshd\",\"login\",\"su\"],"
#define CLAIMS_TAIL ",\"jti\":\"j1\",\"client_id\":\"dev_x\"}"
#define TIMES "\"iat\":1700000000,\"exp\":1700000900"
#define GOOD CLAIMS_HEAD TIMES CLAIMS_TAIL

typedef struct claims_row {
        const char *name;
        const char *header; /* NULL: HDR */
        const char *payload;
        const char *issuer;   /* NULL: "tokend" */
        const char *audience; /* NULL: "sshd"; "-": not checked */
        int expect;
} claims_row;

static const claims_row claims_rows[] = {
        { "control", NULL, GOOD, NULL, NULL, 0 },
        { "audience not checked", NULL, GOOD, NULL, "-", 0 },
        /* typ (RFC 9068 §2.1) */
        { "typ JWT", "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"$KID\"}", GOOD, NULL, NULL, -EBADMSG },
        { "typ absent", "{\"alg\":\"EdDSA\",\"kid\":\"$KID\"}", GOOD, NULL, NULL, -EBADMSG },
        { "typ AT+JWT", "{\"alg\":\"EdDSA\",\"typ\":\"AT+JWT\",\"kid\":\"$KID\"}", GOOD, NULL, NULL, -EBADMSG },
        { "typ application/at+jwt", "{\"alg\":\"EdDSA\",\"typ\":\"application/at+jwt\",\"kid\":\"$KID\"}", GOOD,
          NULL, NULL, -EBADMSG },
        { "typ number", "{\"alg\":\"EdDSA\",\"typ\":1,\"kid\":\"$KID\"}", GOOD, NULL, NULL, -EBADMSG },
        { "typ dpop+jwt", "{\"alg\":\"EdDSA\",\"typ\":\"dpop+jwt\",\"kid\":\"$KID\"}", GOOD, NULL, NULL, -EBADMSG },
        /* exp typing */
        { "exp string", NULL, CLAIMS_HEAD "\"iat\":1700000000,\"exp\":\"1700000900\"" CLAIMS_TAIL, NULL, NULL,
          -EBADMSG },
        { "exp 1e300", NULL, CLAIMS_HEAD "\"iat\":1700000000,\"exp\":1e300" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "exp 99999999999999999999", NULL, CLAIMS_HEAD "\"iat\":1700000000,\"exp\":99999999999999999999" CLAIMS_TAIL,
          NULL, NULL, -EBADMSG },
        { "exp fraction", NULL, CLAIMS_HEAD "\"iat\":1700000000,\"exp\":1700000900.5" CLAIMS_TAIL, NULL, NULL,
          -EBADMSG },
        { "exp integral real", NULL, CLAIMS_HEAD "\"iat\":1700000000,\"exp\":1.7000009e9" CLAIMS_TAIL, NULL, NULL, 0 },
        { "exp negative", NULL, CLAIMS_HEAD "\"iat\":1700000000,\"exp\":-1" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "exp past year 9999", NULL, CLAIMS_HEAD "\"iat\":1700000000,\"exp\":253402300800" CLAIMS_TAIL, NULL, NULL,
          -EBADMSG },
        { "exp at year 9999", NULL, CLAIMS_HEAD "\"iat\":1700000000,\"exp\":253402300799" CLAIMS_TAIL, NULL, NULL, 0 },
        { "exp null", NULL, CLAIMS_HEAD "\"iat\":1700000000,\"exp\":null" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "exp true", NULL, CLAIMS_HEAD "\"iat\":1700000000,\"exp\":true" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "exp missing", NULL, CLAIMS_HEAD "\"iat\":1700000000" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "exp duplicated", NULL, CLAIMS_HEAD TIMES ",\"exp\":1" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        /* time windows: now 1700000100, skew 30 */
        { "expired (exp = now - skew)", NULL, CLAIMS_HEAD "\"iat\":1700000000,\"exp\":1700000070" CLAIMS_TAIL, NULL,
          NULL, -EKEYEXPIRED },
        { "within skew (exp = now - skew + 1)", NULL,
          CLAIMS_HEAD "\"iat\":1700000000,\"exp\":1700000071" CLAIMS_TAIL, NULL, NULL, 0 },
        { "iat in the future", NULL, CLAIMS_HEAD "\"iat\":1700000131,\"exp\":1700000900" CLAIMS_TAIL, NULL, NULL,
          -ETIME },
        { "iat within skew", NULL, CLAIMS_HEAD "\"iat\":1700000130,\"exp\":1700000900" CLAIMS_TAIL, NULL, NULL, 0 },
        { "iat string", NULL, CLAIMS_HEAD "\"iat\":\"1700000000\",\"exp\":1700000900" CLAIMS_TAIL, NULL, NULL,
          -EBADMSG },
        { "iat missing", NULL, CLAIMS_HEAD "\"exp\":1700000900" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "nbf in the future", NULL, CLAIMS_HEAD TIMES ",\"nbf\":1700000131" CLAIMS_TAIL, NULL, NULL, -ETIME },
        { "nbf within skew", NULL, CLAIMS_HEAD TIMES ",\"nbf\":1700000130" CLAIMS_TAIL, NULL, NULL, 0 },
        { "nbf string", NULL, CLAIMS_HEAD TIMES ",\"nbf\":\"0\"" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "nbf 1e300", NULL, CLAIMS_HEAD TIMES ",\"nbf\":1e300" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        /* iss: exact bytes */
        { "iss tokend2 for tokend", NULL, GOOD, "tokend2", NULL, -EACCES },
        { "iss prefix of issuer", NULL, GOOD, "tokend.example", NULL, -EACCES },
        { "issuer prefix of iss", NULL, "{\"iss\":\"tokend2\",\"sub\":\"a\",\"aud\":\"sshd\"," TIMES CLAIMS_TAIL,
          "tokend", NULL, -EACCES },
        { "iss case", NULL, GOOD, "Tokend", NULL, -EACCES },
        { "iss substring", NULL, GOOD, "oken", NULL, -EACCES },
        { "iss number", NULL, "{\"iss\":1,\"sub\":\"a\",\"aud\":\"sshd\"," TIMES CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "iss missing", NULL, "{\"sub\":\"a\",\"aud\":\"sshd\"," TIMES CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        /* aud */
        { "audience sudo not in aud", NULL, GOOD, NULL, "sudo", -EACCES },
        { "audience prefix", NULL, GOOD, NULL, "ssh", -EACCES },
        { "audience longer", NULL, GOOD, NULL, "sshd2", -EACCES },
        { "aud single string", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\",\"aud\":\"sshd\"," TIMES CLAIMS_TAIL, NULL,
          NULL, 0 },
        { "aud single string, mismatch", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\",\"aud\":\"su\"," TIMES CLAIMS_TAIL,
          NULL, NULL, -EACCES },
        { "aud []", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\",\"aud\":[]," TIMES CLAIMS_TAIL, NULL, "-", -EBADMSG },
        { "aud [1]", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\",\"aud\":[\"sshd\",1]," TIMES CLAIMS_TAIL, NULL, NULL,
          -EBADMSG },
        { "aud [\"\"]", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\",\"aud\":[\"sshd\",\"\"]," TIMES CLAIMS_TAIL, NULL,
          NULL, -EBADMSG },
        { "aud \"\"", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\",\"aud\":\"\"," TIMES CLAIMS_TAIL, NULL, "-", -EBADMSG },
        { "aud object", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\",\"aud\":{\"sshd\":1}," TIMES CLAIMS_TAIL, NULL, "-",
          -EBADMSG },
        { "aud nested", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\",\"aud\":[[\"sshd\"]]," TIMES CLAIMS_TAIL, NULL, "-",
          -EBADMSG },
        { "aud 17 entries", NULL,
          "{\"iss\":\"tokend\",\"sub\":\"a\",\"aud\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\","
          "\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"sshd\"]," TIMES CLAIMS_TAIL,
          NULL, NULL, -EBADMSG },
        { "aud 16 entries", NULL,
          "{\"iss\":\"tokend\",\"sub\":\"a\",\"aud\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\","
          "\"11\",\"12\",\"13\",\"14\",\"15\",\"sshd\"]," TIMES CLAIMS_TAIL,
          NULL, NULL, 0 },
        { "aud missing", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\"," TIMES CLAIMS_TAIL, NULL, "-", -EBADMSG },
        /* other claims */
        { "sub missing", NULL, "{\"iss\":\"tokend\",\"aud\":\"sshd\"," TIMES CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "sub empty", NULL, "{\"iss\":\"tokend\",\"sub\":\"\",\"aud\":\"sshd\"," TIMES CLAIMS_TAIL, NULL, NULL,
          -EBADMSG },
        { "sub array", NULL, "{\"iss\":\"tokend\",\"sub\":[\"a\"],\"aud\":\"sshd\"," TIMES CLAIMS_TAIL, NULL, NULL,
          -EBADMSG },
        { "uid absent", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\",\"aud\":\"sshd\"," TIMES CLAIMS_TAIL, NULL, NULL, 0 },
        { "uid -1", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\",\"uid\":-1,\"aud\":\"sshd\"," TIMES CLAIMS_TAIL, NULL,
          NULL, -EBADMSG },
        { "uid 4294967295", NULL,
          "{\"iss\":\"tokend\",\"sub\":\"a\",\"uid\":4294967295,\"aud\":\"sshd\"," TIMES CLAIMS_TAIL, NULL, NULL,
          -EBADMSG },
        { "uid 4294967294", NULL,
          "{\"iss\":\"tokend\",\"sub\":\"a\",\"uid\":4294967294,\"aud\":\"sshd\"," TIMES CLAIMS_TAIL, NULL, NULL, 0 },
        { "uid string", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\",\"uid\":\"0\",\"aud\":\"sshd\"," TIMES CLAIMS_TAIL,
          NULL, NULL, -EBADMSG },
        { "uid 0.5", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\",\"uid\":0.5,\"aud\":\"sshd\"," TIMES CLAIMS_TAIL, NULL,
          NULL, -EBADMSG },
        { "jti missing", NULL, CLAIMS_HEAD TIMES ",\"client_id\":\"dev_x\"}", NULL, NULL, -EBADMSG },
        { "jti number", NULL, CLAIMS_HEAD TIMES ",\"jti\":1,\"client_id\":\"dev_x\"}", NULL, NULL, -EBADMSG },
        { "client_id missing", NULL, CLAIMS_HEAD TIMES ",\"jti\":\"j1\"}", NULL, NULL, -EBADMSG },
        { "client_id empty", NULL, CLAIMS_HEAD TIMES ",\"jti\":\"j1\",\"client_id\":\"\"}", NULL, NULL, -EBADMSG },
        { "scope string", NULL, CLAIMS_HEAD TIMES ",\"scope\":\"openid\"" CLAIMS_TAIL, NULL, NULL, 0 },
        { "scope array", NULL, CLAIMS_HEAD TIMES ",\"scope\":[\"openid\"]" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "cnf.jkt", NULL, CLAIMS_HEAD TIMES ",\"cnf\":{\"jkt\":\"abc\"}" CLAIMS_TAIL, NULL, NULL, 0 },
        { "cnf string", NULL, CLAIMS_HEAD TIMES ",\"cnf\":\"abc\"" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "cnf {}", NULL, CLAIMS_HEAD TIMES ",\"cnf\":{}" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "cnf.jkt number", NULL, CLAIMS_HEAD TIMES ",\"cnf\":{\"jkt\":1}" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "cnf null", NULL, CLAIMS_HEAD TIMES ",\"cnf\":null" CLAIMS_TAIL, NULL, NULL, -EBADMSG },
        { "NUL in sub", NULL, "{\"iss\":\"tokend\",\"sub\":\"a\\u0000b\",\"aud\":\"sshd\"," TIMES CLAIMS_TAIL, NULL,
          NULL, -EBADMSG },
        { "payload array", NULL, "[" GOOD "]", NULL, NULL, -EBADMSG },
        { "payload not JSON", NULL, "iss=tokend", NULL, NULL, -EBADMSG },
        { "payload trailing garbage", NULL, GOOD "x", NULL, NULL, -EBADMSG },
};

static void test_hostile_claims(void **state) {
        const jose_key *key = ed_key(state);

        for (size_t i = 0; i < ELEMENTSOF(claims_rows); i++) {
                const claims_row *row = &claims_rows[i];
                _cleanup_(freep) char *header = subst_kid(row->header ?: HDR, jose_key_kid(key)), *token = NULL;
                const char *aud = row->audience ? (streq(row->audience, "-") ? NULL : row->audience) : "sshd";
                int r;

                assert_int_equal(jws_sign_bytes(key, header, strlen(header), row->payload, strlen(row->payload), &token),
                                 0);
                r = check_token(state, token, strlen(token), row->issuer ?: "tokend", aud, NULL);
                print_message("%-36s %d\n", row->name, r);
                assert_int_equal(r, row->expect);
        }
}

/* Long strings are built here rather than spelled out in the table. */
static void test_string_caps(void **state) {
        const jose_key *key = ed_key(state);
        _cleanup_(freep) char *header = subst_kid(HDR, jose_key_kid(key));
        char sub[AT_MAX_STRING + 2], payload[1024];

        for (size_t n = AT_MAX_STRING; n <= AT_MAX_STRING + 1; n++) {
                _cleanup_(freep) char *token = NULL;

                memset(sub, 's', n);
                sub[n] = 0;
                snprintf(payload, sizeof(payload), "{\"iss\":\"tokend\",\"sub\":\"%s\",\"aud\":\"sshd\"," TIMES CLAIMS_TAIL,
                         sub);
                assert_int_equal(jws_sign_bytes(key, header, strlen(header), payload, strlen(payload), &token), 0);
                assert_int_equal(check_token(state, token, strlen(token), "tokend", "sshd", NULL),
                                 n <= AT_MAX_STRING ? 0 : -EBADMSG);
        }

        /* A kid longer than at_claims.kid can hold is never a key's kid. */
        _cleanup_(json_decrefp) json_t *h = json_pack("{s:s,s:s}", "typ", AT_TYP, "kid",
                                                      "0123456789012345678901234567890123456789012345678901234567890123x");
        _cleanup_(json_decrefp) json_t *p = NULL;
        at_check chk = { .issuer = "tokend", .now = NOW, .skew = SKEW };
        at_claims c;
        assert_int_equal(td_json_parse_object(GOOD, strlen(GOOD), 4096, 8, &p, NULL), 0);
        assert_int_equal(at_claims_check(h, p, &chk, &c), -EBADMSG);
        json_object_set_new(h, "kid", json_string("k"));
        assert_int_equal(at_claims_check(h, p, &chk, &c), 0);
        assert_string_equal(c.kid, "k");
        at_claims_done(&c);
        /* Bad check parameters, NULL documents. */
        chk.skew = -1;
        assert_int_equal(at_claims_check(h, p, &chk, &c), -EINVAL);
        chk.skew = SKEW;
        assert_int_equal(at_claims_check(NULL, p, &chk, &c), -EBADMSG);
        assert_int_equal(at_claims_check(h, NULL, &chk, &c), -EBADMSG);
}

/* at_verify demands a kid (the JWS_ALLOW_NO_KID escape is for RFC
 * examples, never for access tokens). */
static void test_at_verify_needs_kid(void **state) {
        const jose_key *key = ed_key(state);
        static const char header[] = "{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\"}";
        _cleanup_(jose_keyset_freep) jose_keyset *one = NULL;
        _cleanup_(freep) char *token = NULL;
        _cleanup_(json_decrefp) json_t *jwk = NULL;
        jose_key *pub = NULL;
        at_check chk = { .issuer = "tokend", .now = NOW, .skew = SKEW };
        at_claims c;
        jws_result res;

        assert_int_equal(jws_sign_bytes(key, header, strlen(header), GOOD, strlen(GOOD), &token), 0);
        assert_int_equal(jose_key_to_jwk(key, &jwk), 0);
        assert_int_equal(jose_key_from_jwk(jwk, &pub), 0);
        assert_int_equal(jose_keyset_new(&one), 0);
        assert_int_equal(jose_keyset_add(one, pub), 0);
        /* Control: the signature is good when the caller allows no kid. */
        assert_int_equal(jws_verify(one, token, strlen(token), JWS_ALLOW_NO_KID, &res), 0);
        jws_result_done(&res);
        assert_int_equal(at_verify(one, token, strlen(token), &chk, &c), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip_all_algs),
                cmocka_unit_test(test_exact_layout),
                cmocka_unit_test(test_default_token_size),
                cmocka_unit_test(test_build_rejects),
                cmocka_unit_test(test_hostile_claims),
                cmocka_unit_test(test_string_caps),
                cmocka_unit_test(test_at_verify_needs_kid),
        };

        return cmocka_run_group_tests(tests, jose_fixture_setup, jose_fixture_teardown);
}
