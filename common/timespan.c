/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "timespan.h"

typedef struct unit {
        const char *name;
        int64_t secs;
} unit;

/* Longest names first is not needed: a unit must be followed by a digit,
 * whitespace or the end, so "min" never matches as "m" + "in". */
static const unit units[] = {
        { "s", 1 },           { "sec", 1 },         { "second", 1 },    { "seconds", 1 },
        { "m", 60 },          { "min", 60 },        { "minute", 60 },   { "minutes", 60 },
        { "h", 3600 },        { "hr", 3600 },       { "hour", 3600 },   { "hours", 3600 },
        { "d", 86400 },       { "day", 86400 },     { "days", 86400 },
        { "w", 604800 },      { "week", 604800 },   { "weeks", 604800 },
};

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

static int64_t unit_lookup(const char *s, size_t len) {
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (strlen(units[i].name) == len && memcmp(units[i].name, s, len) == 0)
                        return units[i].secs;
        return -1;
}

int timespan_parse(const char *s, int64_t *ret) {
        int64_t total = 0;
        size_t n_components = 0;

        if (!s)
                return -EINVAL;

        const char *p = s;
        while (is_blank(*p))
                p++;
        if (!*p)
                return -EINVAL;

        while (*p) {
                /* A number: digits only (no sign, no fraction). */
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                int64_t n = 0;
                for (; isdigit((unsigned char) *p); p++) {
                        n = n * 10 + (*p - '0');
                        if (n > TIMESPAN_MAX)
                                return -EINVAL;
                }
                while (is_blank(*p))
                        p++;

                /* Its unit: letters up to a digit, blank or the end. */
                const char *u = p;
                while (isalpha((unsigned char) *p))
                        p++;
                size_t ulen = (size_t) (p - u);
                int64_t mult;
                if (ulen == 0) {
                        /* A bare number is seconds, but only as the whole span:
                         * "1h 30" is more likely a typo than 1h + 30s. */
                        if (n_components > 0 || *p)
                                return -EINVAL;
                        mult = 1;
                } else {
                        mult = unit_lookup(u, ulen);
                        if (mult < 0 || (*p && !isdigit((unsigned char) *p) && !is_blank(*p)))
                                return -EINVAL;
                }

                if (n > (TIMESPAN_MAX - total) / mult)
                        return -EINVAL;
                total += n * mult;
                n_components++;

                while (is_blank(*p))
                        p++;
        }

        *ret = total;
        return 0;
}

char *timespan_format(int64_t secs, char *buf, size_t size) {
        static const unit fmt[] = {
                { "w", 604800 }, { "d", 86400 }, { "h", 3600 }, { "min", 60 }, { "s", 1 },
        };
        size_t pos = 0;

        if (size == 0)
                return buf;
        buf[0] = 0;

        if (secs == 0) {
                snprintf(buf, size, "0");
                return buf;
        }

        uint64_t left = secs < 0 ? (uint64_t) 0 - (uint64_t) secs : (uint64_t) secs;
        if (secs < 0)
                pos += (size_t) snprintf(buf, size, "-");

        for (size_t i = 0; i < ELEMENTSOF(fmt) && left > 0 && pos < size; i++) {
                uint64_t n = left / (uint64_t) fmt[i].secs;
                if (n == 0)
                        continue;
                left -= n * (uint64_t) fmt[i].secs;
                int k = snprintf(buf + pos, size - pos, "%s%" PRIu64 "%s",
                                 pos > 0 && buf[pos - 1] != '-' ? " " : "", n, fmt[i].name);
                if (k < 0)
                        break;
                pos += (size_t) k;
        }
        return buf;
}
