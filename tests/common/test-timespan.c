/* SPDX-License-Identifier: MIT */
/* systemd-style time spans: every accepted form, and the hostile ones
 * (signs, fractions, overflow, garbage) rejected next to a control. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "timespan.h"

static void assert_parses(const char *s, int64_t want) {
        int64_t v = -1;
        assert_int_equal(timespan_parse(s, &v), 0);
        assert_int_equal(v, want);
}

static void assert_rejected(const char *s) {
        int64_t v = 12345;
        assert_int_equal(timespan_parse(s, &v), -EINVAL);
        assert_int_equal(v, 12345); /* untouched on failure */
}

static void test_units(void **state _unused_) {
        assert_parses("90s", 90);
        assert_parses("90sec", 90);
        assert_parses("1second", 1);
        assert_parses("2seconds", 2);
        assert_parses("15min", 900);
        assert_parses("15m", 900);
        assert_parses("1minute", 60);
        assert_parses("3minutes", 180);
        assert_parses("1h", 3600);
        assert_parses("2hr", 7200);
        assert_parses("1hour", 3600);
        assert_parses("2hours", 7200);
        assert_parses("7d", 604800);
        assert_parses("1day", 86400);
        assert_parses("2days", 172800);
        assert_parses("2w", 1209600);
        assert_parses("1week", 604800);
        assert_parses("3weeks", 1814400);
}

static void test_forms(void **state _unused_) {
        assert_parses("0", 0);
        assert_parses("0s", 0);
        assert_parses("42", 42);
        assert_parses("  42  ", 42);
        assert_parses("1h 30min", 5400);
        assert_parses("1h30min", 5400);
        assert_parses("1 h 30 min", 5400);
        assert_parses("1d\t2h", 93600);
        assert_parses("1w 1d 1h 1min 1s", 604800 + 86400 + 3600 + 60 + 1);
        assert_parses("007s", 7);
}

static void test_rejected(void **state _unused_) {
        assert_rejected(NULL);
        assert_rejected("");
        assert_rejected("   ");
        assert_rejected("-1");
        assert_rejected("-5min");
        assert_rejected("+5min");
        assert_rejected("1.5h");
        assert_rejected("5 min x");
        assert_rejected("5minx");
        assert_rejected("5mins");
        assert_rejected("s");
        assert_rejected("min5");
        assert_rejected("5ms");
        assert_rejected("5us");
        assert_rejected("1M");
        assert_rejected("1y");
        assert_rejected("5MIN");
        assert_rejected("1h 30");  /* a bare number only as the whole span */
        assert_rejected("30 1h");
        assert_rejected("5,5s");
        assert_rejected("5s;");
        assert_rejected("5\n");
        assert_rejected("infinity");
        assert_rejected("0x10");
}

static void test_overflow(void **state _unused_) {
        char buf[64];

        assert_parses("3153600000", TIMESPAN_MAX); /* control: exactly the maximum */
        snprintf(buf, sizeof buf, "%lld", (long long) TIMESPAN_MAX + 1);
        assert_rejected(buf);
        assert_parses("5214w 2d", (int64_t) 5214 * 604800 + 2 * 86400);
        assert_rejected("5215w");
        assert_rejected("99999999999999999999999999s");
        assert_rejected("9223372036854775807");
        assert_rejected("9223372036854775808");
        assert_rejected("18446744073709551617w");
        assert_rejected("100000000w");
        assert_rejected("3153600000s 1s");
}

static void assert_formats(int64_t v, const char *want) {
        char buf[TIMESPAN_FORMAT_MAX];
        int64_t back = -1;

        assert_string_equal(timespan_format(v, buf, sizeof buf), want);
        if (v >= 0) {
                assert_int_equal(timespan_parse(buf, &back), 0);
                assert_int_equal(back, v);
        }
}

static void test_format(void **state _unused_) {
        char small[4];

        assert_formats(0, "0");
        assert_formats(1, "1s");
        assert_formats(90, "1min 30s");
        assert_formats(900, "15min");
        assert_formats(5400, "1h 30min");
        assert_formats(86400, "1d");
        assert_formats(604800, "1w");
        assert_formats(694861, "1w 1d 1h 1min 1s");
        assert_formats(TIMESPAN_MAX, "5214w 2d");
        assert_formats(-90, "-1min 30s");
        assert_formats(INT64_MIN, "-15250284452471w 3d 15h 30min 8s");
        /* Truncation stays NUL-terminated. */
        assert_string_equal(timespan_format(5400, small, sizeof small), "1h ");
        assert_ptr_equal(timespan_format(1, small, 0), small);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_units),
                cmocka_unit_test(test_forms),
                cmocka_unit_test(test_rejected),
                cmocka_unit_test(test_overflow),
                cmocka_unit_test(test_format),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
