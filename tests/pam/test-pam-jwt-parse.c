/* SPDX-License-Identifier: MIT */
/* Unit tests for pam_jwt's parsers of untrusted bytes: the HTTP response
 * reader, the verdict reader and the JWS shape check. Each hostile case sits
 * next to a control that must pass. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pam_jwt-http.h"
#include "pam_jwt-verify.h"

static int parse(const char *s, jwt_http_response *ret) {
        return jwt_http_parse_response(s, strlen(s), ret);
}

static void test_http_ok(void **state) {
        jwt_http_response r = {};
        (void) state;

        assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: 2\r\n\r\n{}",
                               &r),
                         0);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, 2);
        assert_string_equal(r.body, "{}");
        jwt_http_response_done(&r);
        assert_null(r.body);

        /* case-insensitive name, whitespace around the value, empty reason, HTTP/1.0 */
        assert_int_equal(parse("HTTP/1.0 401\r\ncontent-length:  3 \r\n\r\nabc", &r), 0);
        assert_int_equal(r.status, 401);
        assert_string_equal(r.body, "abc");
        jwt_http_response_done(&r);

        assert_int_equal(parse("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", &r), 0);
        assert_int_equal(r.status, 500);
        assert_int_equal(r.body_len, 0);
        jwt_http_response_done(&r);
}

static void test_http_incomplete(void **state) {
        const char *full = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        jwt_http_response r = {};
        (void) state;

        /* every strict prefix is "need more", the whole thing parses */
        for (size_t n = 0; n < strlen(full); n++)
                assert_int_equal(jwt_http_parse_response(full, n, &r), -EAGAIN);
        assert_int_equal(jwt_http_parse_response(full, strlen(full), &r), 0);
        jwt_http_response_done(&r);
}

static void test_http_malformed(void **state) {
        static const char *const bad[] = {
                "garbage\r\n\r\n",
                "HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
                "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
                "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
                "HTTP/1.1 099 OK\r\nContent-Length: 0\r\n\r\n",
                "HTTP/1.1 200 OK\r\n\r\n",                                     /* no length */
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", /* twice */
                "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n{}",
                "HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\n{}",
                "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\n{}",             /* space before colon */
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n folded\r\n\r\n{}",   /* obs-fold */
                "HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 2\r\n\r\n{}",
                "HTTP/1.1 200 OK\r\nX: a\nb\r\nContent-Length: 2\r\n\r\n{}",    /* bare LF */
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra",          /* trailing bytes */
        };
        jwt_http_response r = {};
        (void) state;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int k = parse(bad[i], &r);
                if (k != -EBADMSG)
                        fail_msg("case %zu: got %d", i, k);
                assert_null(r.body);
        }

        /* a NUL inside the head */
        static const char nul[] = "HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 0\r\n\r\n";
        assert_int_equal(jwt_http_parse_response(nul, sizeof(nul) - 1, &r), -EBADMSG);
}

static void test_http_caps(void **state) {
        jwt_http_response r = {};
        char *big;
        (void) state;

        /* Content-Length at the cap passes, one more is refused before any body */
        size_t n = (size_t) snprintf(NULL, 0, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n", JWT_HTTP_BODY_MAX);
        big = malloc(n + JWT_HTTP_BODY_MAX + 1);
        assert_non_null(big);
        (void) snprintf(big, n + 1, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n", JWT_HTTP_BODY_MAX);
        memset(big + n, 'x', JWT_HTTP_BODY_MAX);
        assert_int_equal(jwt_http_parse_response(big, n + JWT_HTTP_BODY_MAX, &r), 0);
        assert_int_equal(r.body_len, JWT_HTTP_BODY_MAX);
        jwt_http_response_done(&r);
        free(big);

        assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 16385\r\n\r\n", &r), -EFBIG);
        assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", &r), -EFBIG);

        /* a head that never ends within 8 KiB */
        big = malloc(JWT_HTTP_HEAD_MAX + 64);
        assert_non_null(big);
        strcpy(big, "HTTP/1.1 200 OK\r\nX: ");
        size_t off = strlen(big);
        memset(big + off, 'a', JWT_HTTP_HEAD_MAX + 32 - off);
        big[JWT_HTTP_HEAD_MAX + 32] = '\0';
        assert_int_equal(parse(big, &r), -EBADMSG);
        big[JWT_HTTP_HEAD_MAX - 100] = '\0'; /* shorter: still waiting for more */
        assert_int_equal(parse(big, &r), -EAGAIN);
        free(big);
}

static const char *const VALID =
        "{\"active\":true,\"sub\":\"alice\",\"uid\":1000,\"aud\":[\"sshd\",\"login\",\"su\"],"
        "\"exp\":1790000000,\"iat\":1789999000,\"client_id\":\"dev_abc\",\"jti\":\"j1\",\"scope\":\"\"}";

static jwt_verdict answer(unsigned status, const char *body, jwt_verify_result *res) {
        jwt_verify_parse_answer(status, body, strlen(body), "alice", "sshd", res);
        return res->verdict;
}

static void test_answer_valid(void **state) {
        jwt_verify_result res;
        (void) state;

        assert_int_equal(answer(200, VALID, &res), JWT_VERDICT_VALID);
        assert_int_equal(res.exp, 1790000000);
        assert_int_equal(res.uid, 1000);
        assert_string_equal(res.client_id, "dev_abc");
        assert_string_equal(res.jti, "j1");

        /* RFC 7519 §4.1.3: a single-string aud; optional fields absent */
        assert_int_equal(answer(200, "{\"active\":true,\"sub\":\"alice\",\"aud\":\"sshd\",\"exp\":5}", &res),
                         JWT_VERDICT_VALID);
        assert_int_equal(res.uid, -1);
        assert_string_equal(res.client_id, "");
}

static void test_answer_refused(void **state) {
        jwt_verify_result res;
        (void) state;

        assert_int_equal(answer(401, "{\"error\":\"invalid_token\",\"message\":\"x\"}", &res), JWT_VERDICT_REFUSED);
        assert_string_equal(res.reason, "invalid_token");
        assert_int_equal(answer(401, "{\"error\":\"token_expired\"}", &res), JWT_VERDICT_EXPIRED);
        assert_int_equal(answer(401, "{\"error\":\"token_revoked\"}", &res), JWT_VERDICT_REVOKED);
        assert_int_equal(answer(400, "{\"error\":\"invalid_request\"}", &res), JWT_VERDICT_REFUSED);
        assert_int_equal(answer(401, "not json", &res), JWT_VERDICT_REFUSED);
        /* a hostile error code is sanitized before it can reach a log line */
        assert_int_equal(answer(401, "{\"error\":\"a\\nb\\u001b[31m\"}", &res), JWT_VERDICT_REFUSED);
        assert_string_equal(res.reason, "a?b??31m");

        assert_int_equal(answer(200, "{\"active\":false,\"sub\":\"alice\",\"aud\":[\"sshd\"],\"exp\":5}", &res),
                         JWT_VERDICT_REFUSED);
        /* byte-for-byte subject: case, prefix, suffix, embedded NUL */
        static const char *const subs[] = { "Alice", "alic", "alice ", "alice\\u0000x", "" };
        for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
                char body[256];
                (void) snprintf(body, sizeof(body), "{\"active\":true,\"sub\":\"%s\",\"aud\":[\"sshd\"],\"exp\":5}",
                                subs[i]);
                jwt_verdict v = answer(200, body, &res);
                if (v == JWT_VERDICT_VALID)
                        fail_msg("sub %s accepted", subs[i]);
        }
        assert_int_equal(answer(200, "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sudo\"],\"exp\":5}", &res),
                         JWT_VERDICT_REFUSED);
        assert_string_equal(res.reason, "audience mismatch");
        assert_int_equal(answer(200, "{\"active\":true,\"sub\":\"alice\",\"aud\":\"sshdx\",\"exp\":5}", &res),
                         JWT_VERDICT_REFUSED);
        /* host-scoped: sshd@HOST is sshd (tokend checked HOST); sshdx@HOST and "sshd@" are not */
        assert_int_equal(answer(200, "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshd@web1\"],\"exp\":5}", &res),
                         JWT_VERDICT_VALID);
        assert_int_equal(answer(200, "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshdx@web1\"],\"exp\":5}", &res),
                         JWT_VERDICT_REFUSED);
        assert_int_equal(answer(200, "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshd@\"],\"exp\":5}", &res),
                         JWT_VERDICT_REFUSED);
        assert_int_equal(answer(200, "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sudo@web1\"],\"exp\":5}", &res),
                         JWT_VERDICT_REFUSED);
}

static void test_answer_unavailable(void **state) {
        static const char *const bad200[] = {
                "",
                "garbage",
                "[]",
                "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshd\"],\"exp\":5",   /* truncated */
                "{\"active\":true,\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshd\"],\"exp\":5}",
                "{\"active\":\"true\",\"sub\":\"alice\",\"aud\":[\"sshd\"],\"exp\":5}",
                "{\"active\":1,\"sub\":\"alice\",\"aud\":[\"sshd\"],\"exp\":5}",
                "{\"sub\":\"alice\",\"aud\":[\"sshd\"],\"exp\":5}",
                "{\"active\":true,\"aud\":[\"sshd\"],\"exp\":5}",
                "{\"active\":true,\"sub\":\"alice\",\"exp\":5}",
                "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshd\"]}",
                "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshd\"],\"exp\":\"5\"}",
                "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshd\"],\"exp\":0}",
                "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshd\"],\"exp\":5.5}",
                "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshd\",1],\"exp\":5}",
                "{\"active\":true,\"sub\":\"alice\",\"aud\":{},\"exp\":5}",
                "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshd\"],\"exp\":5,\"uid\":-1}",
                "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshd\"],\"exp\":5,\"client_id\":\"a b\"}",
                "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshd\"],\"exp\":5,\"jti\":7}",
                "{\"active\":true,\"sub\":\"alice\",\"aud\":[\"sshd\"],\"exp\":5,\"client_id\":\"\"}",
        };
        jwt_verify_result res;
        (void) state;

        for (size_t i = 0; i < sizeof(bad200) / sizeof(bad200[0]); i++)
                if (answer(200, bad200[i], &res) != JWT_VERDICT_UNAVAILABLE)
                        fail_msg("case %zu: %s", i, jwt_verdict_to_string(res.verdict));

        assert_int_equal(answer(429, "{\"error\":\"too_many_requests\"}", &res), JWT_VERDICT_RATE_LIMITED);
        /* a valid-looking body under any other status is not a success */
        static const unsigned statuses[] = { 201, 204, 301, 403, 404, 500, 503 };
        for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
                assert_int_equal(answer(statuses[i], VALID, &res), JWT_VERDICT_UNAVAILABLE);
}

static void test_jws_shape(void **state) {
        static const char *const good[] = { "a.b.c", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.sig-_x" };
        static const char *const bad[] = { "", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.", "a.b.c=", "a.b.c ",
                                           "a+b.c.d", "hunter2", "a/b.c.d", "a.b.c\n" };
        (void) state;

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
                assert_true(jwt_token_is_jws_shaped(good[i], strlen(good[i])));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (jwt_token_is_jws_shaped(bad[i], strlen(bad[i])))
                        fail_msg("accepted \"%s\"", bad[i]);
        /* the length given is what counts, not a NUL */
        assert_false(jwt_token_is_jws_shaped("a.b.c\0x", 7));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_http_ok),
                cmocka_unit_test(test_http_incomplete),
                cmocka_unit_test(test_http_malformed),
                cmocka_unit_test(test_http_caps),
                cmocka_unit_test(test_answer_valid),
                cmocka_unit_test(test_answer_refused),
                cmocka_unit_test(test_answer_unavailable),
                cmocka_unit_test(test_jws_shape),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
