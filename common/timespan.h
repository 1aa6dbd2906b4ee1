/* SPDX-License-Identifier: MIT */
/* systemd-style time spans for configuration values ("90s", "15min", "1h 30min",
 * "7d", "2w"; a bare number is seconds; "0" means never/disabled), at one-second
 * granularity, and the reverse formatting for messages. No state, no logging. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Largest accepted span: 100 years of 365 days. Keeping spans this small
 * means now + span can never overflow an int64_t time. */
#define TIMESPAN_MAX ((int64_t) 100 * 365 * 24 * 3600)

/* Buffer size that always fits timespan_format()'s output. */
#define TIMESPAN_FORMAT_MAX 64U

/* Parse s into seconds. Grammar: optional surrounding whitespace, then either
 * a bare decimal number (seconds) or one or more "NUMBER[ ]UNIT" components,
 * optionally separated by whitespace, summed ("1h 30min", "1h30min").
 * Units (case-sensitive): s sec second seconds | m min minute minutes |
 * h hr hour hours | d day days | w week weeks.
 * "0" (or "0s", …) yields 0, which callers document as "never" or
 * "disabled". Returns 0 and writes *ret; -EINVAL for NULL/empty input, signs,
 * fractions, unknown units (including ms/us/M/y), trailing garbage, or a total
 * above TIMESPAN_MAX. *ret is untouched on failure. */
_warn_unused_result_ int timespan_parse(const char *s, int64_t *ret);

/* Format secs as components largest first, e.g. 5400 → "1h 30min",
 * 604800 → "1w", 0 → "0", in the units timespan_parse() accepts (so the
 * output parses back to the same value). Negative values are formatted as
 * "-" followed by the absolute value (for messages only). Writes at most
 * size bytes including the NUL (truncating) and returns buf. */
char *timespan_format(int64_t secs, char *buf, size_t size);
