/* SPDX-License-Identifier: MIT */
/* Making caller-supplied text safe for a log line, an audit row or a
 * terminal: one classifier of "unsafe" characters, an escaper and a check
 * built on it. No state, no allocation except in str_escape_controls_dup(),
 * no logging.
 *
 * Unsafe: C0 controls (U+0000–U+001F, newline and tab included), DEL, C1
 * controls (U+0080–U+009F, e.g. U+009B, a one-character CSI), the bidi
 * overrides, embeddings and isolates (U+202A–U+202E, U+2066–U+2069), the
 * line and paragraph separators (U+2028, U+2029), and every byte that is not
 * part of well-formed UTF-8 (RFC 3629 §4: no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Escaped output is at most this many bytes per input byte ("\xNN" for one
 * byte; "\u{202e}" is 8 for 3), so 4 * len + 1 bytes always hold it all. */
#define STR_ESCAPE_MAX_GROWTH 4U

/* True if s[0..len) is well-formed UTF-8 with no unsafe character. */
bool str_is_safe_text(const char *s, size_t len);

/* Copy s[0..len) to buf (size bytes, size > 0), each unsafe byte or
 * code point replaced by an escape: "\xNN" for a byte below 0x80 or a byte
 * that is not well-formed UTF-8, "\u{N}" (lowercase hex, no leading zeros)
 * for an unsafe code point from 0x80 up. Backslash itself is copied as is:
 * the escapes are for safety, not a reversible encoding. The output is always
 * NUL-terminated and cut only between whole characters or escapes. Returns
 * the number of bytes written before the NUL. */
size_t str_escape_controls(const char *s, size_t len, char *buf, size_t size);

/* str_escape_controls() of the NUL-terminated s into a new string that is
 * never cut. Returns it (the caller frees it), or NULL if out of memory. */
char *str_escape_controls_dup(const char *s);
