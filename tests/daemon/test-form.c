/* SPDX-License-Identifier: MIT */
/* The OAuth endpoints' application/x-www-form-urlencoded bodies
 * (daemon/tokend-form.c): decoding ('+', %XX through libmicrohttpd),
 * empty pairs, a parameter without a value, and what RFC 6749 §3.1 and
 * the size caps refuse: a parameter given twice (also when only its
 * decoded name repeats), a NUL byte raw or as %00, more than
 * FORM_MAX_PARAMS parameters. Each refusal sits next to a control that
 * parses. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "tokend-form.h"

static int parse(const char *body, form *f, const char **dup) {
        *dup = NULL;
        return form_parse(body, strlen(body), f, dup);
}

static void test_decoding(void **state _unused_) {
        form f;
        const char *dup;

        assert_int_equal(parse("grant_type=password&username=alice&password=p%40ss+w%2Bord", &f, &dup), 0);
        assert_int_equal(f.n, 3);
        assert_string_equal(form_get(&f, "grant_type"), "password");
        assert_string_equal(form_get(&f, "username"), "alice");
        assert_string_equal(form_get(&f, "password"), "p@ss w+ord");
        assert_null(form_get(&f, "scope"));
        form_done(&f);
        assert_null(f.buf);
        assert_int_equal(f.n, 0);

        /* names decode too; an escape that is not one is kept as written */
        assert_int_equal(parse("client%5Fid=dev_1&a+b=%zz&c=%4", &f, &dup), 0);
        assert_string_equal(form_get(&f, "client_id"), "dev_1");
        assert_string_equal(form_get(&f, "a b"), "%zz");
        assert_string_equal(form_get(&f, "c"), "%4");
        form_done(&f);
}

static void test_empty_parts(void **state _unused_) {
        form f;
        const char *dup;

        /* empty pairs are skipped; "x" and "y=" are present but empty, which
         * RFC 6749 §3.1 treats as omitted */
        assert_int_equal(parse("&a=1&&b=2&x&y=&", &f, &dup), 0);
        assert_int_equal(f.n, 4);
        assert_string_equal(form_get(&f, "a"), "1");
        assert_string_equal(form_get(&f, "b"), "2");
        assert_null(form_get(&f, "x"));
        assert_null(form_get(&f, "y"));
        form_done(&f);

        assert_int_equal(form_parse("", 0, &f, &dup), 0);
        assert_int_equal(f.n, 0);
        form_done(&f);

        /* only len bytes count: the body need not end in a NUL */
        static const char body[] = { 'a', '=', '1', 'Z', 'Z' };
        assert_int_equal(form_parse(body, 3, &f, &dup), 0);
        assert_string_equal(form_get(&f, "a"), "1");
        form_done(&f);
}

static void test_repeated_parameter(void **state _unused_) {
        form f;
        const char *dup;

        assert_int_equal(parse("grant_type=password&username=a&grant_type=refresh_token", &f, &dup), -EEXIST);
        assert_string_equal(dup, "grant_type");
        form_done(&f);
        /* the same name once encoded: still the same parameter */
        assert_int_equal(parse("scope=a&%73cope=b", &f, &dup), -EEXIST);
        assert_string_equal(dup, "scope");
        form_done(&f);
        /* an empty first occurrence counts */
        assert_int_equal(parse("password=&password=x", &f, &dup), -EEXIST);
        form_done(&f);
        /* control: names that differ only in case are different names */
        assert_int_equal(parse("scope=a&Scope=b", &f, &dup), 0);
        assert_int_equal(f.n, 2);
        form_done(&f);
}

static void test_nul_bytes(void **state _unused_) {
        static const char raw[] = "a=1\0&b=2";
        form f;
        const char *dup;

        assert_int_equal(form_parse(raw, sizeof(raw) - 1, &f, &dup), -EBADMSG);
        assert_null(f.buf);
        assert_int_equal(parse("a=x%00y", &f, &dup), -EBADMSG);
        assert_null(f.buf);
        assert_int_equal(parse("a%00b=1", &f, &dup), -EBADMSG);
        assert_int_equal(f.n, 0);
        /* control: %01 is a byte like any other here (callers check text) */
        assert_int_equal(parse("a=x%01y", &f, &dup), 0);
        assert_int_equal(strlen(form_get(&f, "a")), 3);
        form_done(&f);
}

static void test_parameter_cap(void **state _unused_) {
        char body[FORM_MAX_PARAMS * 8 + 16] = "";
        form f;
        const char *dup;

        for (unsigned i = 0; i < FORM_MAX_PARAMS; i++) {
                char p[16];
                snprintf(p, sizeof p, "%sp%u=1", i ? "&" : "", i);
                strcat(body, p);
        }
        assert_int_equal(parse(body, &f, &dup), 0);
        assert_int_equal(f.n, FORM_MAX_PARAMS);
        form_done(&f);
        strcat(body, "&one=more");
        assert_int_equal(parse(body, &f, &dup), -EBADMSG);
        assert_null(f.buf);
        assert_int_equal(f.n, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decoding),
                cmocka_unit_test(test_empty_parts),
                cmocka_unit_test(test_repeated_parameter),
                cmocka_unit_test(test_nul_bytes),
                cmocka_unit_test(test_parameter_cap),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
