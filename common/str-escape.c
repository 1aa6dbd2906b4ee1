/* SPDX-License-Identifier: MIT */
/* Escaping of control, bidi and invalid characters (see str-escape.h). */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "str-escape.h"

/* Length (1-4) of the well-formed UTF-8 sequence at p (n > 0 bytes left),
 * with its code point in *ret_cp; 0 if p does not start one (RFC 3629 §4). */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *ret_cp) {
        uint32_t cp, min;
        size_t len;

        if (p[0] < 0x80) {
                *ret_cp = p[0];
                return 1;
        }
        if (p[0] >= 0xc2 && p[0] <= 0xdf) {
                len = 2, cp = p[0] & 0x1fU, min = 0x80;
        } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
                len = 3, cp = p[0] & 0x0fU, min = 0x800;
        } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
                len = 4, cp = p[0] & 0x07U, min = 0x10000;
        } else
                return 0; /* a continuation byte, C0/C1 (overlong), F5-FF */
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xc0U) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3fU);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        *ret_cp = cp;
        return len;
}

static bool code_point_unsafe(uint32_t cp) {
        return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||   /* C0, DEL, C1 */
               (cp >= 0x2028 && cp <= 0x202e) ||            /* line/paragraph separators, bidi embeddings/overrides */
               (cp >= 0x2066 && cp <= 0x2069);              /* bidi isolates */
}

/* The next character of s: its length in *ret_len, and whether it must be
 * escaped. An invalid byte is one unsafe character of length 1. */
static bool next_unsafe(const unsigned char *s, size_t n, size_t *ret_len, uint32_t *ret_cp) {
        size_t l = utf8_decode(s, n, ret_cp);
        if (l == 0) {
                *ret_len = 1;
                *ret_cp = UINT32_MAX;
                return true;
        }
        *ret_len = l;
        return code_point_unsafe(*ret_cp);
}

bool str_is_safe_text(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *) s;
        size_t l;
        uint32_t cp;

        for (size_t i = 0; i < len; i += l)
                if (next_unsafe(p + i, len - i, &l, &cp))
                        return false;
        return true;
}

size_t str_escape_controls(const char *s, size_t len, char *buf, size_t size) {
        const unsigned char *p = (const unsigned char *) s;
        size_t o = 0, l;
        uint32_t cp;
        char esc[16];

        if (size == 0)
                return 0;
        for (size_t i = 0; i < len; i += l) {
                const char *piece = (const char *) p + i;
                size_t n;
                if (next_unsafe(p + i, len - i, &l, &cp)) {
                        if (cp < 0x80 || cp == UINT32_MAX)
                                snprintf(esc, sizeof esc, "\\x%02x", p[i]);
                        else
                                snprintf(esc, sizeof esc, "\\u{%x}", (unsigned) cp);
                        piece = esc;
                        n = strlen(esc);
                } else
                        n = l;
                if (n >= size - o)
                        break; /* whole characters and escapes only */
                memcpy(buf + o, piece, n);
                o += n;
        }
        buf[o] = '\0';
        return o;
}

char *str_escape_controls_dup(const char *s) {
        size_t len = strlen(s);
        char *buf;

        if (len > (SIZE_MAX - 1) / STR_ESCAPE_MAX_GROWTH)
                return NULL;
        buf = malloc(len * STR_ESCAPE_MAX_GROWTH + 1);
        if (buf)
                (void) str_escape_controls(s, len, buf, len * STR_ESCAPE_MAX_GROWTH + 1);
        return buf;
}
