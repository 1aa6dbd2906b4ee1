/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "macro.h"
#include "tokend-paging.h"

/* The longest plain cursor that fits TD_CURSOR_MAX once encoded. */
#define PLAIN_MAX ((TD_CURSOR_MAX / 4) * 3)

static int encode(const char *plain, char out[static TD_CURSOR_MAX + 1]) {
        _cleanup_(freep) char *e = NULL;
        int r = b64url_encode(plain, strlen(plain), &e);
        if (r < 0)
                return r;
        if (strlen(e) > TD_CURSOR_MAX)
                return -EINVAL; /* cannot happen: ids are at most STORE_DEVICE_ID_MAX */
        memcpy(out, e, strlen(e) + 1);
        return 0;
}

/* Decode cursor into plain (NUL-terminated, no NUL inside). */
static int decode(const char *cursor, char plain[static PLAIN_MAX + 1]) {
        size_t l = cursor ? strnlen(cursor, TD_CURSOR_MAX + 1) : 0;
        if (l == 0 || l > TD_CURSOR_MAX || b64url_decoded_len(l) > PLAIN_MAX)
                return -EINVAL;
        _cleanup_(freep) uint8_t *p = NULL;
        size_t n = 0;
        if (b64url_decode(cursor, l, &p, &n) < 0 || n == 0 || n > PLAIN_MAX || memchr(p, 0, n))
                return -EINVAL;
        memcpy(plain, p, n + 1);
        return 0;
}

/* A decimal int64 with no sign, no leading zero (so one value has one
 * cursor), ending at *end. */
static int parse_decimal(const char *s, const char **end, int64_t *ret) {
        int64_t v = 0;
        const char *p = s;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (v > (INT64_MAX - (*p - '0')) / 10)
                        return -EINVAL;
                v = v * 10 + (*p - '0');
        }
        if (p == s || (s[0] == '0' && p - s > 1))
                return -EINVAL;
        *end = p;
        *ret = v;
        return 0;
}

int td_cursor_device_encode(const store_device *d, char out[static TD_CURSOR_MAX + 1]) {
        char plain[PLAIN_MAX + 1];
        if (d->created < 0 || snprintf(plain, sizeof plain, "d%" PRId64 ":%s", d->created, d->id) >= (int) sizeof plain)
                return -EINVAL;
        return encode(plain, out);
}

int td_cursor_device_decode(const char *cursor, store_device_cursor *ret) {
        char plain[PLAIN_MAX + 1];
        const char *p;
        int64_t created;
        if (decode(cursor, plain) < 0 || plain[0] != 'd' || parse_decimal(plain + 1, &p, &created) < 0 ||
            *p != ':')
                return -EINVAL;
        p++;
        size_t l = strlen(p);
        /* Device ids are "dev_" and base64url characters. */
        if (l <= 4 || l > STORE_DEVICE_ID_MAX || strncmp(p, "dev_", 4) != 0 ||
            strspn(p + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != l - 4)
                return -EINVAL;
        *ret = (store_device_cursor){ .created = created };
        memcpy(ret->id, p, l + 1);
        return 0;
}

int td_cursor_audit_encode(int64_t id, char out[static TD_CURSOR_MAX + 1]) {
        char plain[32];
        if (id < 1)
                return -EINVAL;
        snprintf(plain, sizeof plain, "a%" PRId64, id);
        return encode(plain, out);
}

int td_cursor_audit_decode(const char *cursor, int64_t *ret) {
        char plain[PLAIN_MAX + 1];
        const char *p;
        int64_t id;
        if (decode(cursor, plain) < 0 || plain[0] != 'a' || parse_decimal(plain + 1, &p, &id) < 0 || *p || id < 1)
                return -EINVAL;
        *ret = id;
        return 0;
}
