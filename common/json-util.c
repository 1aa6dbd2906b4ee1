/* SPDX-License-Identifier: MIT */
/* Strict JSON for untrusted input (see json-util.h). jansson does the
 * parsing; this file adds the caps and turns jansson's error texts, which
 * may quote input bytes, into fixed messages. */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"

void td_json_wiping_free(void *p) {
        if (!p)
                return;
        explicit_bzero(p, malloc_usable_size(p));
        free(p);
}

/* 2^53: every integer up to here is exactly representable as a double, so
 * an integral real in this range is the number that was written. */
#define JSON_EXACT_REAL_MAX 9007199254740992.0

static const char *json_error_message(enum json_error_code code) {
        switch (code) {
        case json_error_duplicate_key:
                return "duplicate object member";
        case json_error_null_character:
        case json_error_null_byte_in_key:
                return "NUL character not allowed";
        case json_error_invalid_utf8:
                return "invalid UTF-8";
        case json_error_numeric_overflow:
                return "number out of range";
        case json_error_premature_end_of_input:
                return "premature end of input";
        case json_error_end_of_input_expected:
                return "trailing data after JSON value";
        case json_error_wrong_type:
                return "top level is not a JSON object";
        case json_error_out_of_memory:
                return "out of memory";
        case json_error_stack_overflow:
                return "nesting too deep";
        default:
                return "invalid JSON";
        }
}

/* Depth of the deepest container below and including j (a scalar is 0),
 * stopping as soon as limit is exceeded, so the recursion never goes
 * deeper than limit. */
static unsigned json_depth(const json_t *j, unsigned limit) {
        unsigned max = 0, d;
        const char *k;
        json_t *v;
        size_t i;

        if (!json_is_object(j) && !json_is_array(j))
                return 0;
        if (limit == 0)
                return 1;
        if (json_is_object(j))
                json_object_foreach ((json_t *) j, k, v) {
                        if ((d = json_depth(v, limit - 1)) > max && (max = d) >= limit)
                                break;
                }
        else
                json_array_foreach (j, i, v) {
                        if ((d = json_depth(v, limit - 1)) > max && (max = d) >= limit)
                                break;
                }
        return max + 1;
}

int td_json_parse_object(const char *buf, size_t len, size_t max_len, unsigned max_depth, json_t **ret,
                      const char **ret_err) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        json_error_t error;
        const char *msg = NULL;
        int r = -EBADMSG;

        if (len > max_len) {
                msg = "input too large";
                r = -E2BIG;
                goto out;
        }
        if (!buf && len > 0) {
                msg = "invalid JSON";
                goto out;
        }
        /* A raw NUL byte is never valid JSON text; refuse it before jansson
         * sees it, whatever its version does with it. */
        if (len > 0 && memchr(buf, 0, len)) {
                msg = "NUL character not allowed";
                goto out;
        }

        /* Not JSON_DECODE_ANY (top level must be an array or object), not
         * JSON_ALLOW_NUL (no "\u0000"), duplicate members refused. */
        j = json_loadb(buf ? buf : "", len, JSON_REJECT_DUPLICATES, &error);
        if (!j) {
                msg = json_error_message(json_error_code(&error));
                r = json_error_code(&error) == json_error_out_of_memory ? -ENOMEM : -EBADMSG;
                goto out;
        }
        if (!json_is_object(j)) {
                msg = "top level is not a JSON object";
                goto out;
        }
        if (json_depth(j, max_depth) > max_depth) {
                msg = "nesting too deep";
                goto out;
        }

        *ret = TAKE_PTR(j);
        return 0;
out:
        if (ret_err)
                *ret_err = msg;
        return r;
}

int td_json_dump_compact(const json_t *j, char **ret) {
        char *s;

        if (!j)
                return -EINVAL;
        s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

const char *td_json_object_get_str(const json_t *obj, const char *key) {
        if (!json_is_object(obj))
                return NULL;
        return json_string_value(json_object_get(obj, key));
}

int td_json_object_get_int_range(const json_t *obj, const char *key, int64_t min, int64_t max, int64_t *ret) {
        const json_t *v;
        int64_t i;

        if (!json_is_object(obj))
                return -EBADMSG;
        v = json_object_get(obj, key);
        if (!v)
                return -ENOENT;

        if (json_is_integer(v)) {
                json_int_t x = json_integer_value(v);
                if (x < min || x > max)
                        return -EBADMSG;
                i = (int64_t) x;
        } else if (json_is_real(v)) {
                double d = json_real_value(v);
                /* Only integral reals that a double holds exactly; 1e300,
                 * NaN/inf and 1e19-style values outside int64 never get
                 * near the cast. */
                if (!isfinite(d) || d != floor(d) || fabs(d) > JSON_EXACT_REAL_MAX)
                        return -EBADMSG;
                i = (int64_t) d;
                if (i < min || i > max)
                        return -EBADMSG;
        } else
                return -EBADMSG;

        *ret = i;
        return 0;
}
