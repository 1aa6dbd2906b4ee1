/* SPDX-License-Identifier: MIT */
/* Listing pages shared by the front ends: the page size a request may ask
 * for, and the opaque cursor that resumes a listing where a page ended
 * (base64url of "d<created>:<device id>" for devices, "a<row id>" for the
 * audit log; clients must treat it as opaque). Decoding is strict: anything
 * that is not exactly such a cursor is refused, never guessed at. */
#pragma once

#include <stdint.h>

#include "tokend-store.h"

#define TD_PAGE_DEFAULT 100U        /* rows when a request names no limit */
#define TD_PAGE_MAX STORE_PAGE_MAX  /* the largest limit a request may ask for */
#define TD_CURSOR_MAX 128U          /* characters of an encoded cursor */

/* The cursor after device d, into out. Returns 0 or -ENOMEM. */
int td_cursor_device_encode(const store_device *d, char out[static TD_CURSOR_MAX + 1]);

/* Parse a device cursor. 0 and *ret, or -EINVAL (not one of ours). */
int td_cursor_device_decode(const char *cursor, store_device_cursor *ret);

/* The cursor after audit row id, into out. Returns 0 or -ENOMEM. */
int td_cursor_audit_encode(int64_t id, char out[static TD_CURSOR_MAX + 1]);

/* Parse an audit cursor. 0 and *ret (≥ 1), or -EINVAL. */
int td_cursor_audit_decode(const char *cursor, int64_t *ret);
