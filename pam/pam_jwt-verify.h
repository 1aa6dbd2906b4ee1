/* SPDX-License-Identifier: MIT */
/* pam_jwt's question to tokend: "is this token valid for this user and this
 * service?" Builds the POST /api/auth/verify body, sends it, and reduces the
 * answer to one verdict. No logging and no PAM calls: pam_jwt.c decides what
 * a verdict means for PAM (the one place PAM codes are chosen). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define JWT_VERIFY_PATH "/api/auth/verify"
#define JWT_TOKEN_MAX (8U * 1024U)  /* longest answer we send to tokend */
#define JWT_ID_MAX 128U             /* client_id / jti: printable ASCII, no space */
#define JWT_REASON_MAX 48U
#define JWT_MESSAGE_MAX 256U        /* tokend's refusal message, escaped, cut between whole characters */

typedef enum jwt_verdict {
        JWT_VERDICT_VALID,        /* 200, active:true, sub == user, service ∈ aud */
        JWT_VERDICT_REFUSED,      /* 400/401 invalid_*, active:false, sub or aud mismatch */
        JWT_VERDICT_EXPIRED,      /* 401 token_expired */
        JWT_VERDICT_REVOKED,      /* 401 token_revoked */
        JWT_VERDICT_RATE_LIMITED, /* 429 */
        JWT_VERDICT_UNAVAILABLE,  /* no answer, other status, malformed answer */
} jwt_verdict;

typedef struct jwt_verify_request {
        const char *socket_path;
        int timeout_ms;
        const char *token; /* secret: copied only into wiped buffers */
        size_t token_len;
        const char *user;
        const char *service;
        const char *rhost; /* optional */
        const char *tty;   /* optional */
} jwt_verify_request;

typedef struct jwt_verify_result {
        jwt_verdict verdict;
        int error;                    /* transport -errno, 0 when tokend answered */
        unsigned status;              /* HTTP status, 0 when none */
        char reason[JWT_REASON_MAX];  /* tokend's error code or what was malformed;
                                         sanitized to [A-Za-z0-9_. -], never token bytes */
        char message[JWT_MESSAGE_MAX]; /* a 400/401 refusal: tokend's "message", control, bidi and
                                          invalid UTF-8 characters escaped; "" when none */
        /* only for JWT_VERDICT_VALID: */
        int64_t exp;
        int64_t uid;                  /* -1 when tokend did not say */
        char client_id[JWT_ID_MAX + 1];
        char jti[JWT_ID_MAX + 1];
} jwt_verify_result;

/* True when s[0..len) is three non-empty base64url segments joined by '.'
 * (RFC 7515 §7.1 compact serialization shape; nothing is decoded). */
bool jwt_token_is_jws_shaped(const char *s, size_t len);

/* Turn tokend's answer (HTTP status + body) into a verdict for user and
 * service, compared byte for byte. Never fails: anything unexpected is
 * JWT_VERDICT_UNAVAILABLE with a reason. Fills *ret completely. */
void jwt_verify_parse_answer(unsigned status, const char *body, size_t body_len, const char *user,
                             const char *service, jwt_verify_result *ret);

/* Ask tokend. Fills *ret completely (transport failures are
 * JWT_VERDICT_UNAVAILABLE with ret->error set). The request body, which holds
 * the token, is wiped before it is freed. */
void jwt_verify(const jwt_verify_request *req, jwt_verify_result *ret);

/* Human name of a verdict, for logs. */
const char *jwt_verdict_to_string(jwt_verdict v);
