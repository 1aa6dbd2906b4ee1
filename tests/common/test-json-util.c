/* SPDX-License-Identifier: MIT */
/* Strict JSON: each hostile input (duplicates, NUL, depth, size, wrong top
 * level, numbers jansson cannot hold) next to a control that parses. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "json-util.h"

#define MAX_LEN 4096U

static int parse(const char *s, json_t **ret, const char **ret_err) {
        return td_json_parse_object(s, strlen(s), MAX_LEN, TD_JSON_DEFAULT_MAX_DEPTH, ret, ret_err);
}

static void assert_parses(const char *s) {
        json_t *j = NULL;

        assert_int_equal(parse(s, &j, NULL), 0);
        assert_true(json_is_object(j));
        json_decref(j);
}

static void assert_refused(const char *s, size_t len, int want) {
        json_t *j = (json_t *) 0x1;
        const char *err = NULL;

        assert_int_equal(td_json_parse_object(s, len, MAX_LEN, TD_JSON_DEFAULT_MAX_DEPTH, &j, &err), want);
        assert_ptr_equal(j, (json_t *) 0x1);
        assert_non_null(err);
}

static void test_duplicate_key(void **state _unused_) {
        const char *err = NULL;
        json_t *j = NULL;

        assert_parses("{\"a\":1,\"b\":2}");
        assert_refused("{\"a\":1,\"a\":2}", 13, -EBADMSG);
        /* Nested duplicates too. */
        assert_parses("{\"x\":{\"a\":1},\"y\":{\"a\":1}}");
        assert_refused("{\"x\":{\"a\":1,\"a\":1}}", 19, -EBADMSG);
        /* The message is fixed text, it never quotes input bytes. */
        assert_int_equal(parse("{\"secret-value\":1,\"secret-value\":2}", &j, &err), -EBADMSG);
        assert_null(strstr(err, "secret"));
}

/* "\u0000" escapes, in values and in member names. */
static void test_nul(void **state _unused_) {
        assert_parses("{\"a\":\"x\\u0001y\"}");
        assert_refused("{\"a\":\"x\\u0000y\"}", 16, -EBADMSG);
        assert_parses("{\"a\\u0001\":1}");
        assert_refused("{\"a\\u0000\":1}", 13, -EBADMSG);
}

/* Raw NUL bytes, counted in len. */
static void test_raw_nul(void **state _unused_) {
        static const char ok[] = "{\"a\":\"xy\"}";
        static const char in_str[] = "{\"a\":\"x\0y\"}";
        static const char tail[] = "{\"a\":\"xy\"}\0";
        json_t *j = NULL;

        assert_int_equal(td_json_parse_object(ok, sizeof(ok) - 1, MAX_LEN, TD_JSON_DEFAULT_MAX_DEPTH, &j, NULL), 0);
        json_decref(j);
        assert_refused(in_str, sizeof(in_str) - 1, -EBADMSG);
        assert_refused(tail, sizeof(tail) - 1, -EBADMSG);
}

static char *nested(unsigned depth) {
        char *s = malloc(2U * depth + 16U), *p = s;

        assert_non_null(s);
        p = stpcpy(p, "{\"a\":");
        for (unsigned i = 1; i < depth; i++)
                *p++ = '[';
        *p++ = '1';
        for (unsigned i = 1; i < depth; i++)
                *p++ = ']';
        strcpy(p, "}");
        return s;
}

static void test_depth(void **state _unused_) {
        _cleanup_(freep) char *at = nested(TD_JSON_DEFAULT_MAX_DEPTH), *over = nested(TD_JSON_DEFAULT_MAX_DEPTH + 1),
                             *deep = nested(1000);
        json_t *j = NULL;

        assert_parses("{}");
        assert_parses(at);
        assert_refused(over, strlen(over), -EBADMSG);
        assert_refused(deep, strlen(deep), -EBADMSG);

        /* Depth of nested objects, and a custom cap. */
        assert_int_equal(td_json_parse_object("{\"a\":{\"b\":{}}}", 14, MAX_LEN, 3, &j, NULL), 0);
        json_decref(j);
        assert_int_equal(td_json_parse_object("{\"a\":{\"b\":{}}}", 14, MAX_LEN, 2, &j, NULL), -EBADMSG);
        /* The deep branch comes after a shallow one. */
        assert_int_equal(td_json_parse_object("{\"a\":1,\"b\":[[]]}", 16, MAX_LEN, 2, &j, NULL), -EBADMSG);
        assert_int_equal(td_json_parse_object("{\"a\":1,\"b\":[]}", 14, MAX_LEN, 2, &j, NULL), 0);
        json_decref(j);
}

static void test_size_cap(void **state _unused_) {
        const char *s = "{\"a\":\"0123456789\"}";
        json_t *j = NULL;

        assert_int_equal(td_json_parse_object(s, strlen(s), strlen(s), 4, &j, NULL), 0);
        json_decref(j);
        assert_int_equal(td_json_parse_object(s, strlen(s), strlen(s) - 1, 4, &j, NULL), -E2BIG);
}

static void test_top_level(void **state _unused_) {
        assert_parses("{\"keys\":[]}");
        assert_refused("[1,2]", 5, -EBADMSG);
        assert_refused("[]", 2, -EBADMSG);
        assert_refused("42", 2, -EBADMSG);
        assert_refused("\"str\"", 5, -EBADMSG);
        assert_refused("null", 4, -EBADMSG);
        assert_refused("", 0, -EBADMSG);
        /* Trailing garbage after the object. */
        assert_parses(" {\"a\":1} \n");
        assert_refused("{\"a\":1}{}", 9, -EBADMSG);
        assert_refused("{\"a\":1", 6, -EBADMSG);
        /* Invalid UTF-8 in a string. */
        assert_refused("{\"a\":\"\xff\"}", 9, -EBADMSG);
}

static void test_dump_compact(void **state _unused_) {
        _cleanup_(freep) char *s = NULL;
        json_t *j = json_pack("{s:s,s:i,s:[i,i]}", "z", "a/b", "a", 1, "m", 1, 2);

        assert_non_null(j);
        assert_int_equal(td_json_dump_compact(j, &s), 0);
        /* insertion order, no whitespace, '/' not escaped */
        assert_string_equal(s, "{\"z\":\"a/b\",\"a\":1,\"m\":[1,2]}");
        json_decref(j);
}

static void test_get_str(void **state _unused_) {
        json_t *j = NULL;

        assert_int_equal(parse("{\"s\":\"v\",\"n\":1,\"z\":null}", &j, NULL), 0);
        assert_string_equal(td_json_object_get_str(j, "s"), "v");
        assert_null(td_json_object_get_str(j, "n"));
        assert_null(td_json_object_get_str(j, "z"));
        assert_null(td_json_object_get_str(j, "absent"));
        assert_null(td_json_object_get_str(NULL, "s"));
        json_decref(j);
}

static int get_int(const char *doc, int64_t min, int64_t max, int64_t *ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        int r;

        r = parse(doc, &j, NULL);
        if (r < 0)
                return r;
        return td_json_object_get_int_range(j, "v", min, max, ret);
}

static void test_int_range(void **state _unused_) {
        int64_t v = -7;

        assert_int_equal(get_int("{\"v\":123}", 0, 1000, &v), 0);
        assert_int_equal(v, 123);
        assert_int_equal(get_int("{\"v\":-5}", -10, 10, &v), 0);
        assert_int_equal(v, -5);
        /* integral reals */
        assert_int_equal(get_int("{\"v\":1e3}", 0, 1000, &v), 0);
        assert_int_equal(v, 1000);
        assert_int_equal(get_int("{\"v\":7.0}", 0, 1000, &v), 0);
        assert_int_equal(v, 7);
        assert_int_equal(get_int("{\"v\":9223372036854775807}", 0, INT64_MAX, &v), 0);
        assert_int_equal(v, INT64_MAX);

        v = -7;
        assert_int_equal(get_int("{\"v\":1e300}", INT64_MIN, INT64_MAX, &v), -EBADMSG);
        assert_int_equal(get_int("{\"v\":-1e300}", INT64_MIN, INT64_MAX, &v), -EBADMSG);
        assert_int_equal(get_int("{\"v\":1e19}", INT64_MIN, INT64_MAX, &v), -EBADMSG);
        /* jansson refuses integers it cannot hold: the document fails */
        assert_int_equal(get_int("{\"v\":99999999999999999999}", INT64_MIN, INT64_MAX, &v), -EBADMSG);
        assert_int_equal(get_int("{\"v\":\"123\"}", 0, 1000, &v), -EBADMSG);
        assert_int_equal(get_int("{\"v\":1.5}", 0, 1000, &v), -EBADMSG);
        assert_int_equal(get_int("{\"v\":true}", 0, 1000, &v), -EBADMSG);
        assert_int_equal(get_int("{\"v\":null}", 0, 1000, &v), -EBADMSG);
        assert_int_equal(get_int("{\"v\":1001}", 0, 1000, &v), -EBADMSG);
        assert_int_equal(get_int("{\"v\":-1}", 0, 1000, &v), -EBADMSG);
        assert_int_equal(get_int("{\"v\":1001.0}", 0, 1000, &v), -EBADMSG);
        assert_int_equal(get_int("{\"w\":1}", 0, 1000, &v), -ENOENT);
        /* nothing written on failure */
        assert_int_equal(v, -7);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_duplicate_key),
                cmocka_unit_test(test_nul),
                cmocka_unit_test(test_raw_nul),
                cmocka_unit_test(test_depth),
                cmocka_unit_test(test_size_cap),
                cmocka_unit_test(test_top_level),
                cmocka_unit_test(test_dump_compact),
                cmocka_unit_test(test_get_str),
                cmocka_unit_test(test_int_range),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
