/* SPDX-License-Identifier: MIT */
/* pam_jwt's HTTP/1.1 client: one POST over an AF_UNIX stream socket under a
 * single deadline, and a strictly bounded response parser (head ≤ 8 KiB,
 * Content-Length required and ≤ 16 KiB). No state, no logging, no PAM calls. */
#pragma once

#include <stddef.h>

#include "macro.h"

#define JWT_HTTP_HEAD_MAX (8U * 1024U)
#define JWT_HTTP_BODY_MAX (16U * 1024U)

typedef struct jwt_http_response {
        unsigned status;  /* 100..999 */
        char *body;       /* owned, NUL-terminated, body_len bytes (may hold NULs) */
        size_t body_len;
} jwt_http_response;

/* Free the body and reset. Accepts a zeroed or already-reset struct. */
void jwt_http_response_done(jwt_http_response *r);

/* Parse one complete response held in buf[0..len): status line, header fields
 * (CRLF-terminated, no obs-fold, no Transfer-Encoding, exactly one
 * Content-Length of ≤ JWT_HTTP_BODY_MAX) and exactly Content-Length body bytes.
 * Returns 0 and fills *ret (caller frees with jwt_http_response_done),
 * -EAGAIN when buf is a valid but incomplete prefix, -EBADMSG when malformed
 * (also: head over JWT_HTTP_HEAD_MAX, bytes after the body), -EFBIG when
 * Content-Length exceeds JWT_HTTP_BODY_MAX, -ENOMEM. *ret untouched on error. */
_warn_unused_result_ int jwt_http_parse_response(const char *buf, size_t len, jwt_http_response *ret);

/* POST body (Content-Type: application/json, Connection: close) to path on the
 * AF_UNIX socket socket_path. connect + write + read together take at most
 * timeout_ms. Returns 0 with any complete, well-formed response (any status)
 * in *ret, or -ETIMEDOUT, a connect/IO -errno (-ENOENT, -ECONNREFUSED,
 * -ECONNRESET, -EPIPE …), -ENAMETOOLONG (path does not fit sun_path),
 * -EBADMSG/-EFBIG (see jwt_http_parse_response; also EOF before the response
 * was complete), -ENOMEM. Never raises SIGPIPE. *ret untouched on error. */
_warn_unused_result_ int jwt_http_post_unix(const char *socket_path, const char *path, const char *body,
                                            size_t body_len, int timeout_ms, jwt_http_response *ret);
