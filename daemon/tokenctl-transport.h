/* SPDX-License-Identifier: MIT */
/* How tokenctl reaches tokend: the operations its commands need, served by
 * the Unix socket (HTTP/1.1 + JSON, tokenctl-http.c, the default) or by
 * D-Bus (io.tokend.Tokend1, tokenctl-bus.c, --bus). Both give answers in the
 * socket API's JSON shapes and refusals with its error codes and statuses,
 * so a command does not care which transport answered. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "tokenctl-answer.h"

#define TC_ANSWER_MAX (1024U * 1024U) /* bytes of answer accepted from tokend */
#define TC_CALL_TIMEOUT_MS 30000L     /* a password login may wait for PAM delays */
#define TC_DEVICES_PAGE 100U          /* devices asked for per page (tokend's default) */

typedef struct tc_login_req {
        const char *user;        /* password login: required; peer login: NULL = the caller's own user */
        const char *password;    /* secret; NULL: peer login (the caller's kernel-verified uid vouches) */
        const char *device_name; /* may be NULL */
        const char *device_key;  /* base64url Ed25519 public key; sent only if registers_device_key */
} tc_login_req;

typedef struct tc_refresh_req {
        const char *refresh_token; /* secret */
        const char *device_id;
        const char *proof;    /* device-key proof JWS, or NULL for a device without key */
        const char *audience; /* NULL: [Token] DefaultAudience; honoured only if chooses_audience */
        int64_t ttl;          /* 0: [Token] AccessTokenLifetime; else at most that many seconds (chooses_audience only) */
} tc_refresh_req;

/* Every operation returns 0 with *ret filled — a success or a refusal by
 * tokend (tc_answer_ok() tells them apart; release with tc_answer_done()) —
 * or, when tokend could not be asked or its answer is unusable, prints why
 * and what to do on stderr and returns -errno: -ECONNREFUSED/-ENOENT/
 * -ENOTSOCK/-EACCES/-EAGAIN/-ETIMEDOUT (unreachable; the message names the
 * cause and the errno text), -EINVAL (malformed --bus address or argument),
 * -EIO/-EBADMSG/-E2BIG (not tokend's answer), -ENOMEM. Secrets sent or
 * received are wiped from the transport's memory. */
typedef struct tc_transport {
        const char *name;              /* "the socket", "D-Bus" */
        bool registers_device_key;     /* login registers tc_login_req.device_key */
        bool chooses_audience;         /* refresh honours tc_refresh_req.audience and .ttl */
        const char *peer_device_name;  /* the name peer login gives a device; NULL: device_name is used */
        int (*login)(const tc_ctx *ctx, const tc_login_req *req, tc_answer *ret);
        int (*refresh)(const tc_ctx *ctx, const tc_refresh_req *req, tc_answer *ret);
        int (*logout)(const tc_ctx *ctx, const char *access_token, tc_answer *ret);
        /* user and service may be NULL (not checked) */
        int (*verify)(const tc_ctx *ctx, const char *token, const char *user, const char *service, tc_answer *ret);
        /* One page (TC_DEVICES_PAGE devices) of the list, from cursor (NULL: the first
         * page). user NULL: the caller's own devices (admins: everyone's);
         * body {"devices":[…], "next_cursor":"…" (only when more follow)} */
        int (*devices_list)(const tc_ctx *ctx, const char *user, const char *cursor, tc_answer *ret);
        /* One page of the audit log, newest first, likewise: body
         * {"audit":[…], "next_cursor":"…"}; users get the rows about themselves */
        int (*audit_list)(const tc_ctx *ctx, const char *user, const char *cursor, tc_answer *ret);
        int (*device_revoke)(const tc_ctx *ctx, const char *device_id, tc_answer *ret);
        /* Clear user's failure counters (admins): body {"user", "was_locked", "failures"} */
        int (*unlock)(const tc_ctx *ctx, const char *user, tc_answer *ret);
        /* body: the JWKS ({"keys":[…]}) */
        int (*jwks)(const tc_ctx *ctx, tc_answer *ret);
} tc_transport;

extern const tc_transport tc_transport_socket; /* tokenctl-http.c */
extern const tc_transport tc_transport_bus;    /* tokenctl-bus.c */
extern const tc_transport tc_transport_network; /* tokenctl-http.c, over HTTPS (--issuer) */

/* The transport ctx selects: HTTPS when ctx->issuer is set, D-Bus when
 * ctx->bus is, else the socket. Never NULL. */
const tc_transport *tc_transport_of(const tc_ctx *ctx);

/* One page of a listing: a transport's devices_list or audit_list. */
typedef int (*tc_page_fn)(const tc_ctx *ctx, const char *user, const char *cursor, tc_answer *ret);

/* The whole listing, following tokend's cursors page by page, as one
 * {key: […]} in *ret (key: "devices", "audit"). Returns EXIT_OK, or the
 * exit status after printing why. */
int tc_list_all(const tc_ctx *ctx, tc_page_fn page_fn, const char *key, const char *user, tc_answer *ret);

/* Raw requests on the socket, for the OAuth device grant (tokenctl-device.c):
 * POST path with a form-encoded body (secret: wiped), or with a JSON body
 * and an optional bearer token. As the operations above: 0 with *ret (any
 * HTTP status), or -errno after printing why. */
int tc_http_form(const tc_ctx *ctx, const char *path, const char *form, tc_answer *ret);
int tc_http_json(const tc_ctx *ctx, const char *path, const json_t *body, const char *bearer, tc_answer *ret);
