/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the escaper every log line, audit row and tokenctl
 * output goes through (common/str-escape.c). Invariants: the output fits
 * STR_ESCAPE_MAX_GROWTH; it is always safe text itself; safe input comes
 * out unchanged and only safe input does; a smaller buffer gives a prefix
 * of the full output, cut between whole characters or escapes. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include "str-escape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *s = (const char *) data;
        size_t cap = size * STR_ESCAPE_MAX_GROWTH + 1, n, m;
        char *full, *cut;

        if (size > 4096)
                return 0;
        full = malloc(cap);
        cut = malloc(cap);
        FUZZ_CHECK(full && cut);
        n = str_escape_controls(s, size, full, cap);
        FUZZ_CHECK(n < cap && full[n] == '\0' && strlen(full) == n);
        FUZZ_CHECK(str_is_safe_text(full, n));
        FUZZ_CHECK(str_is_safe_text(s, size) == (n == size && memcmp(full, s, size) == 0));
        /* a buffer of half the size: a prefix of the full output */
        m = str_escape_controls(s, size, cut, cap / 2 + 1);
        FUZZ_CHECK(m <= cap / 2 && cut[m] == '\0' && memcmp(cut, full, m) == 0);
        FUZZ_CHECK(str_is_safe_text(cut, m));
        free(full);
        free(cut);
        return 0;
}
