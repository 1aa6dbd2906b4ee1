/* SPDX-License-Identifier: MIT */
/* tokend's answers as tokenctl sees them, whichever transport carried them:
 * the answer type, refusals in the socket API's shape, the messages with a
 * hint on what to do, and the exit statuses for refusals and for a tokend
 * that could not be asked (the one place for that mapping). Below the
 * transports, which fill answers; above tokenctl-util only. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "tokenctl-util.h"

typedef struct tc_answer {
        long status;     /* success: 200 (with a body) or 204; a refusal: its HTTP status (D-Bus errors mapped) */
        json_t *body;    /* the answer in the socket API's shape; a refusal: {"error","message"}; may be NULL */
        char *bus_error; /* a refusal over D-Bus: its io.tokend.Error.* name; NULL otherwise */
} tc_answer;

/* Where tokend is looked for, for messages: the socket path, "the system
 * bus", "the session bus" or "the bus at ADDRESS". Returns buf. */
const char *tc_transport_where(const tc_ctx *ctx, char *buf, size_t size);

static inline bool tc_answer_ok(const tc_answer *a) {
        return a->status >= 200 && a->status < 300;
}

void tc_answer_done(tc_answer *a);

/* Fill *ret as a refusal: status, body {"error":code,"message":message},
 * bus_error (copied; may be NULL). Returns 0 or -ENOMEM (nothing set). */
int tc_answer_refusal(tc_answer *ret, long status, const char *code, const char *message, const char *bus_error);

/* Print tokend's refusal with a hint on what to do, and return the exit
 * status for it: invalid_request → EXIT_USAGE, anything else → EXIT_REFUSED. */
int tc_answer_fail(const tc_ctx *ctx, const tc_answer *a);

/* The exit status for a failed transport operation's -errno (tokenctl-
 * transport.h): EXIT_UNREACHABLE for -ENOENT, -ENOTSOCK, -EACCES,
 * -ECONNREFUSED, -EAGAIN, -ETIMEDOUT; EXIT_USAGE for -EINVAL; else
 * EXIT_REFUSED. */
int tc_transport_exit(int r);
