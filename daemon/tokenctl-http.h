/* tokenctl's HTTP client for tokend's Unix socket (libcurl with
 * CURLOPT_UNIX_SOCKET_PATH): one JSON request, one JSON answer, bounded in
 * size and time; secrets in bodies are wiped after use. */
#pragma once

#include <jansson.h>

#include "tokenctl.h"

#define TC_HTTP_MAX_ANSWER (1024U * 1024U)
#define TC_HTTP_TIMEOUT_MS 30000L /* a password login may wait for PAM delays */

typedef struct tc_answer {
        long status;     /* HTTP status, 0 if none */
        json_t *body;    /* parsed JSON object or NULL (204, not JSON) */
} tc_answer;

/* Send method path to tokend on ctx->socket. body (may be NULL) is sent as
 * application/json; bearer (may be NULL) as "Authorization: Bearer".
 * Returns 0 with *ret filled (any HTTP status: the caller decides), or
 * -ECONNREFUSED/-ENOENT (nobody listens: the caller reports
 * EXIT_UNREACHABLE), -ETIMEDOUT, -EIO (protocol error), -E2BIG (answer too
 * large), -ENOMEM. The transport error is printed to stderr by this call. */
int tc_http(const tc_ctx *ctx, const char *method, const char *path, const json_t *body, const char *bearer,
            tc_answer *ret);

void tc_answer_done(tc_answer *a);

/* Print tokend's error answer ({"error","message"}) for a non-2xx status
 * with a hint on what to do, and return the exit status for it:
 * 400 invalid_request → EXIT_USAGE, other 4xx/5xx → EXIT_REFUSED. */
int tc_answer_fail(const tc_ctx *ctx, const tc_answer *a);

/* Exit status for a failed tc_http() call. */
int tc_http_exit(int r);

/* URL-escape s for a path segment or query value; malloc'ed, or NULL. */
char *tc_http_escape(const char *s);
