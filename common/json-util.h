/* SPDX-License-Identifier: MIT */
/* Strict JSON parsing through jansson for untrusted input: duplicate keys
 * rejected, no NUL in strings, a byte cap before parsing and a nesting-depth
 * cap after it, top level must be an object (or array, for JWKS bodies).
 * Our helpers are td_json_*: json_* is jansson's own namespace. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

#define TD_JSON_DEFAULT_MAX_DEPTH 16U

/* Parse len bytes. Returns 0 and a new reference in *ret, or
 * -E2BIG (len > max_len), -EBADMSG (syntax, duplicate key, NUL, depth >
 * max_depth, top level not an object). If ret_err is non-NULL it receives a
 * static or jansson-provided human message on failure (never input bytes). */
_warn_unused_result_ int td_json_parse_object(const char *buf, size_t len, size_t max_len, unsigned max_depth,
                                              json_t **ret, const char **ret_err);

/* Serialize compactly (no spaces, insertion order) to a malloc'ed string. */
int td_json_dump_compact(const json_t *j, char **ret);

/* A free() for json_set_alloc_funcs(malloc, td_json_wiping_free) in programs
 * (never in the PAM module, whose host owns jansson's allocator): jansson
 * memory holds passwords and tokens, so it is zeroed before it is freed. */
void td_json_wiping_free(void *p);

/* Typed lookups: NULL / false when absent or of another type. */
const char *td_json_object_get_str(const json_t *obj, const char *key);

/* A JSON number that is an exact integer within [min, max]. Reals are
 * accepted only when integral (1e3 is 1000) and within range; 1e300 and
 * anything jansson could not represent are rejected. Returns 0, -ENOENT
 * (absent), -EBADMSG (wrong type or out of range). */
_warn_unused_result_ int td_json_object_get_int_range(const json_t *obj, const char *key, int64_t min, int64_t max,
                                                      int64_t *ret);

/* json_decrefp() for _cleanup_ comes with jansson ≥ 2.11 (json_auto_t). */
