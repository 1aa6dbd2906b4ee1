/* SPDX-License-Identifier: MIT */
/* str-escape: each unsafe class (C0 with ESC and newline, DEL, C1 with
 * U+009B, bidi overrides and isolates, invalid UTF-8) escaped and refused,
 * next to controls that pass unchanged (ASCII, accents, CJK, emoji, and the
 * code points just outside each unsafe range). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "str-escape.h"

static void assert_escape(const char *in, size_t len, const char *want) {
        char buf[256];
        size_t n = str_escape_controls(in, len, buf, sizeof buf);
        assert_string_equal(buf, want);
        assert_int_equal(n, strlen(want));
        assert_true(n <= len * STR_ESCAPE_MAX_GROWTH);
}

static void assert_safe(const char *s) {
        assert_true(str_is_safe_text(s, strlen(s)));
        assert_escape(s, strlen(s), s); /* unchanged */
}

static void assert_unsafe(const char *s, size_t len, const char *escaped) {
        assert_false(str_is_safe_text(s, len));
        assert_escape(s, len, escaped);
}

static void test_controls_pass(void **state _unused_) {
        assert_safe("");
        assert_safe("laptop (alice) #1 ~/x \\x1b [ok]");
        assert_safe("caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x94\x91");  /* café 東京 🔑 */
        assert_safe("\xc2\xa0");          /* U+00A0, just above C1 */
        assert_safe("\xe2\x80\xa7");      /* U+2027, just below U+2028 */
        assert_safe("\xe2\x80\xaf");      /* U+202F, just above U+202E */
        assert_safe("\xe2\x81\xa5");      /* U+2065, just below U+2066 */
        assert_safe("\xe2\x81\xaa");      /* U+206A, just above U+2069 */
        assert_safe("~");                 /* 0x7e, just below DEL */
        assert_safe(" ");                 /* 0x20, just above C0 */
        assert_safe("\xf4\x8f\xbf\xbf");  /* U+10FFFF, the last code point */
        assert_safe("\xed\x9f\xbf");      /* U+D7FF, just below the surrogates */
}

static void test_c0_del(void **state _unused_) {
        assert_unsafe("a\x1b[31mred", 9, "a\\x1b[31mred");
        assert_unsafe("line1\nfake: line2", 17, "line1\\x0afake: line2");
        assert_unsafe("\r\t", 2, "\\x0d\\x09");
        assert_unsafe("x\x7fy", 3, "x\\x7fy");
        assert_unsafe("a\0b", 3, "a\\x00b");
        assert_unsafe("\x01", 1, "\\x01");
        assert_unsafe("\x1f", 1, "\\x1f");
}

static void test_c1(void **state _unused_) {
        assert_unsafe("\xc2\x9b" "2J", 4, "\\u{9b}2J");  /* U+009B CSI */
        assert_unsafe("\xc2\x80", 2, "\\u{80}");
        assert_unsafe("\xc2\x9f", 2, "\\u{9f}");
        assert_unsafe("\xc2\x85", 2, "\\u{85}");         /* NEL, a newline to some */
}

static void test_bidi(void **state _unused_) {
        /* "evil\u202Etxt.exe" shows as "evilexe.txt" */
        assert_unsafe("evil\xe2\x80\xaetxt.exe", 14, "evil\\u{202e}txt.exe");
        assert_unsafe("\xe2\x80\xaa", 3, "\\u{202a}");
        assert_unsafe("\xe2\x81\xa6", 3, "\\u{2066}");
        assert_unsafe("\xe2\x81\xa9", 3, "\\u{2069}");
        assert_unsafe("\xe2\x80\xa8\xe2\x80\xa9", 6, "\\u{2028}\\u{2029}");
}

static void test_invalid_utf8(void **state _unused_) {
        assert_unsafe("\xff", 1, "\\xff");
        assert_unsafe("\x80", 1, "\\x80");                      /* lone continuation */
        assert_unsafe("\xc0\x9b", 2, "\\xc0\\x9b");             /* overlong ESC-ish */
        assert_unsafe("\xc1\xbf", 2, "\\xc1\\xbf");             /* overlong */
        assert_unsafe("\xe0\x80\x9b", 3, "\\xe0\\x80\\x9b");    /* overlong 3-byte */
        assert_unsafe("\xf0\x80\x80\x9b", 4, "\\xf0\\x80\\x80\\x9b");
        assert_unsafe("\xed\xa0\x80", 3, "\\xed\\xa0\\x80");    /* surrogate U+D800 */
        assert_unsafe("\xf4\x90\x80\x80", 4, "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
        assert_unsafe("\xe2\x80", 2, "\\xe2\\x80");             /* cut short at the end */
        assert_unsafe("\xe2\x80" "a", 3, "\\xe2\\x80a");        /* cut short before ASCII */
        assert_unsafe("\xc3", 1, "\\xc3");
        /* A valid character right after an invalid byte is kept. */
        assert_unsafe("\xff\xc3\xa9", 3, "\\xff\xc3\xa9");
}

/* The buffer is cut only between whole characters or escapes, and the
 * result is always NUL-terminated. */
static void test_truncation(void **state _unused_) {
        char buf[8];

        assert_int_equal(str_escape_controls("abcdefghij", 10, buf, sizeof buf), 7);
        assert_string_equal(buf, "abcdefg");
        assert_int_equal(str_escape_controls("abcde\x1b", 6, buf, sizeof buf), 5);
        assert_string_equal(buf, "abcde");   /* "\x1b" does not fit: left out whole */
        assert_int_equal(str_escape_controls("abcde\xc3\xa9z", 8, buf, sizeof buf), 7);
        assert_string_equal(buf, "abcde\xc3\xa9");
        assert_int_equal(str_escape_controls("abcdef\xc3\xa9", 8, buf, sizeof buf), 6);
        assert_string_equal(buf, "abcdef");  /* é is not split */
        assert_int_equal(str_escape_controls("x", 1, buf, 1), 0);
        assert_string_equal(buf, "");
        assert_int_equal(str_escape_controls("x", 1, buf, 0), 0); /* size 0: nothing written */
}

/* The worst case fits the documented bound, and the _dup form is never cut. */
static void test_dup_worst_case(void **state _unused_) {
        char in[301];
        char *out;

        memset(in, 0x1b, 300);
        in[300] = '\0';
        out = str_escape_controls_dup(in);
        assert_non_null(out);
        assert_int_equal(strlen(out), 300 * STR_ESCAPE_MAX_GROWTH);
        for (size_t i = 0; i < 300; i++)
                assert_memory_equal(out + 4 * i, "\\x1b", 4);
        free(out);

        for (size_t i = 0; i + 3 <= 300; i += 3)
                memcpy(in + i, "\xe2\x80\xae", 3);
        out = str_escape_controls_dup(in);
        assert_non_null(out);
        assert_int_equal(strlen(out), 100 * 8);
        free(out);

        out = str_escape_controls_dup("plain");
        assert_non_null(out);
        assert_string_equal(out, "plain");
        free(out);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_controls_pass),  cmocka_unit_test(test_c0_del),
                cmocka_unit_test(test_c1),             cmocka_unit_test(test_bidi),
                cmocka_unit_test(test_invalid_utf8),   cmocka_unit_test(test_truncation),
                cmocka_unit_test(test_dup_worst_case),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
