/* SPDX-License-Identifier: MIT */
/* tokend's operations, independent of the front end: the Unix-socket HTTP
 * API and the D-Bus API both call these and only translate arguments and
 * td_code values. Each function: parse → validate → authorize → act, and
 * fills a td_status with a code and a human message safe to show the
 * caller (never a secret). All functions are thread-safe.
 *
 * Return contract, for every td_* call below that returns a td_code: it is
 * also in st->code; on TD_OK *ret is filled and the caller owns it (free
 * with the matching _done()/json_decref()); on any other code *ret is
 * untouched and st->message says why. Every call that touches the store
 * may also return TD_UNAVAILABLE (database busy or disk full: retry) and
 * every call may return TD_INTERNAL (out of memory, a store or signing
 * failure); the lists below name the codes beyond those two. Nothing here
 * returns -errno. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "jose-key.h"

typedef struct tokend tokend; /* the daemon context, see tokend.h */

typedef enum td_code {
        TD_OK = 0,
        TD_INVALID_REQUEST,     /* 400 invalid_request */
        TD_INVALID_CREDENTIALS, /* 400 invalid_credentials */
        TD_INVALID_TOKEN,       /* 401 invalid_token */
        TD_TOKEN_EXPIRED,       /* 401 token_expired */
        TD_TOKEN_REVOKED,       /* 401 token_revoked */
        TD_FORBIDDEN,           /* 403 forbidden */
        TD_NOT_FOUND,           /* 404 not_found */
        TD_TOO_MANY_REQUESTS,   /* 429 too_many_requests (+ retry_after) */
        TD_INTERNAL,            /* 500 internal_error */
        TD_UNAVAILABLE,         /* 503 unavailable (disk full, database locked) */
        _TD_CODE_MAX,
} td_code;

/* CLOCK_MONOTONIC in µs: the clock of td_status.not_before_usec. Inline:
 * the front ends and the long-poll waiter below the service use it too. */
static inline int64_t td_monotonic_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Stable machine-readable name ("invalid_token", …). */
const char *td_code_to_string(td_code c);

typedef struct td_status {
        td_code code;
        int64_t retry_after;    /* seconds, for TD_TOO_MANY_REQUESTS */
        /* CLOCK_MONOTONIC µs before which the front end must not answer (0:
         * at once). Set on failed password logins, so that a wrong password
         * and an unknown user take equally long ([Login] FailureDelay). */
        int64_t not_before_usec;
        /* The failure is the request's RFC 9449 DPoP proof (td_refresh_req
         * .dpop): OAuth answers invalid_dpop_proof (RFC 9449 §5). */
        bool dpop_invalid;
        char message[256];
} td_status;

/* The uid of a caller over TCP ([Network]): no kernel identity, so never
 * root, never an admin, never a peer login (see td_caller_is_remote). */
#define TD_UID_REMOTE ((uid_t) -1)
#define TD_REMOTE_MAX 52U /* "ffff:…:ffff" (45) + "/64" + NUL, rounded */

/* Who is asking: from SO_PEERCRED or the bus sender's credentials; over
 * TCP, the client's address (uid TD_UID_REMOTE, gid -1, pid 0). */
typedef struct td_caller {
        uid_t uid;
        gid_t gid;
        pid_t pid;
        /* TCP only, else "": the client's address for logs ("192.0.2.7",
         * "2001:db8::7"), and the network its limits are counted for:
         * IPv4 /32, IPv6 /64 ("2001:db8::/64"; one host usually owns one). */
        char remote[TD_REMOTE_MAX];
        char remote_net[TD_REMOTE_MAX];
        /* The verified subject of its client certificate ([Network]
         * ClientCA=), RFC 4514 form; NULL without one. Borrowed for the call. */
        const char *subject;
} td_caller;

static inline bool td_caller_is_remote(const td_caller *c) {
        return c->remote[0] != 0;
}

/* The key a caller's limits are counted under: "uid:N", or "net:" and
 * remote_net over TCP. */
void td_caller_key(const td_caller *c, char buf[static TD_REMOTE_MAX + 8]);

/* The caller for a log line: "uid=N pid=P", or "client ADDRESS" over TCP. */
#define TD_CALLER_NAME_MAX 64U
const char *td_caller_name(const td_caller *c, char buf[static TD_CALLER_NAME_MAX]);

/* A token answer (RFC 6749 §5.1 names on the wire). */
typedef struct td_tokens {
        char *access_token;
        int64_t expires_in;
        char *refresh_token;        /* secret: wiped by td_tokens_done */
        int64_t refresh_expires_in; /* 0 = never expires */
        char device_id[32];
        char *user;
        uid_t uid;
        char **groups;              /* NULL-terminated */
} td_tokens;
void td_tokens_done(td_tokens *t);

/* The successful answer of verify. */
typedef struct td_introspection {
        char *sub;
        int64_t uid;
        char **aud;                 /* NULL-terminated */
        int64_t exp, iat;
        char *client_id;
        char *scope;                /* may be NULL */
        char *jti;
} td_introspection;
void td_introspection_done(td_introspection *i);

typedef struct td_login_req {
        const char *username;
        const char *password;       /* secret, caller owns and wipes */
        const char *device_name;    /* may be NULL */
        const char *device_key;     /* base64url Ed25519 public key or NULL */
        const char *const *audience;/* NULL-terminated or NULL: default */
} td_login_req;

typedef struct td_issue_req {
        const char *user;           /* NULL: the caller's own user */
        const char *const *audience;/* NULL-terminated or NULL: default */
        int64_t ttl;                /* 0: default lifetime */
        const char *device_name;
        const char *device_key;
} td_issue_req;

typedef struct td_refresh_req {
        const char *refresh_token;  /* secret */
        const char *device_id;
        const char *proof;          /* may be NULL */
        const char *const *audience;/* optional narrowing/choice */
        const char *htu;            /* the endpoint the proof must name */
        bool dpop;                  /* proof is an RFC 9449 DPoP proof (tokend-dpop.h), htu
                                       the token endpoint's absolute URL */
        int64_t ttl;                /* 0: default lifetime; else a shorter one (never longer) */
} td_refresh_req;

typedef struct td_verify_req {
        const char *token;
        const char *user;           /* may be NULL */
        const char *service;        /* audience to require; may be NULL */
        const char *rhost, *tty;    /* for the audit log; root's failures are throttled per rhost */
} td_verify_req;

/* Password login. Blocking (runs PAM): call from a worker thread.
 * TD_INVALID_REQUEST (missing or malformed field, bad device_name/key or
 * audience), TD_INVALID_CREDENTIALS (wrong user or password; st's
 * not_before_usec is set), TD_TOO_MANY_REQUESTS (+ retry_after),
 * TD_FORBIDDEN (audience not allowed, too many devices). */
td_code td_login(tokend *t, const td_caller *c, const td_login_req *req, td_tokens *ret, td_status *st);
/* Peer login: tokens for the caller's own user (root: req->user) with no
 * password. TD_FORBIDDEN (AllowPeerLogin=no, a uid without a user name,
 * another user's token asked by non-root, a step-up or disallowed
 * audience, too many devices), TD_INVALID_REQUEST (no such user, bad
 * field), TD_TOO_MANY_REQUESTS (PeerLoginRate, + retry_after). */
td_code td_issue(tokend *t, const td_caller *c, const td_issue_req *req, td_tokens *ret, td_status *st);
/* A new device for the user of a valid access token (bearer), as the
 * approval of an RFC 8628 device authorization by an already logged-in
 * device: no password, so no step-up audience (as td_issue). On the socket
 * a non-root caller must be the token's user. Codes: the bearer's
 * (TD_INVALID_TOKEN, TD_TOKEN_EXPIRED, TD_TOKEN_REVOKED), TD_FORBIDDEN
 * (another user's token, a step-up or disallowed audience, too many
 * devices), TD_INVALID_REQUEST (bad device_name/key, audience). */
td_code td_device_approve(tokend *t, const td_caller *c, const char *bearer, const td_issue_req *req, td_tokens *ret,
                          td_status *st);
/* Rotate the refresh token and issue a new access token. TD_INVALID_REQUEST
 * (missing field, bad audience), TD_INVALID_TOKEN (unknown token or device,
 * missing/bad/replayed proof, a concurrent rotation, the user is gone),
 * TD_TOKEN_REVOKED (revoked device, or reuse detected: the device is now
 * revoked), TD_TOKEN_EXPIRED, TD_FORBIDDEN (step-up audience outside
 * StepUpLifetime=, a disallowed audience). */
td_code td_refresh(tokend *t, const td_caller *c, const td_refresh_req *req, td_tokens *ret, td_status *st);
/* Revoke the device of a valid access token (any audience).
 * TD_INVALID_REQUEST (no token), TD_INVALID_TOKEN, TD_TOKEN_EXPIRED,
 * TD_TOKEN_REVOKED (the token's checks, as td_verify). */
td_code td_logout(tokend *t, const td_caller *c, const char *access_token, td_status *st);
/* Check a token (signature, time, audience req->service, device and jti
 * not revoked, subject req->user). TD_INVALID_REQUEST (no token, bad service
 * or user name), TD_INVALID_TOKEN, TD_TOKEN_EXPIRED, TD_TOKEN_REVOKED,
 * TD_TOO_MANY_REQUESTS (failed verifications of this uid or remote host,
 * + retry_after). */
td_code td_verify(tokend *t, const td_caller *c, const td_verify_req *req, td_introspection *ret, td_status *st);

/* Which page of a listing: cursor NULL (the first page) or the
 * next_cursor of the previous answer; limit 0 = 100, else 1..1000 (other
 * values, and a cursor that is not one of ours, are TD_INVALID_REQUEST). */
typedef struct td_page_req {
        const char *cursor;
        int64_t limit;
} td_page_req;

/* Who may list/revoke: bearer (a valid access token; its sub) if given,
 * else the caller's own user; admins (root, AdminGroup) see everyone.
 * user filter: NULL = own (admin: all). *ret is the answer object
 * {"devices":[…], "next_cursor":"…" (only when more follow)}, oldest first. */
/* TD_INVALID_REQUEST (bad limit, cursor or user name), TD_FORBIDDEN (another
 * user's rows without being admin, a uid without a user name), and the
 * bearer token's codes (TD_INVALID_TOKEN, TD_TOKEN_EXPIRED, TD_TOKEN_REVOKED). */
td_code td_devices_list(tokend *t, const td_caller *c, const char *bearer, const char *user,
                        const td_page_req *pg, json_t **ret, td_status *st);

/* The audit log, newest first, with the same rules: a user reads the rows
 * about themselves (user filter NULL or their own name), admins anyone's
 * (NULL: all). *ret is {"audit":[…], "next_cursor":"…" (when more follow)}.
 * Codes as td_devices_list. */
td_code td_audit_list(tokend *t, const td_caller *c, const char *bearer, const char *user, const td_page_req *pg,
                      json_t **ret, td_status *st);
/* Revoke one device (owner or admin; identity as td_devices_list) and signal
 * DeviceRevoked. TD_NOT_FOUND (no such device, or not shaped like an id),
 * TD_FORBIDDEN (another user's device, a uid without a user name), the
 * bearer token's codes. Revoking an already revoked device is TD_OK. */
td_code td_device_revoke(tokend *t, const td_caller *c, const char *bearer, const char *device_id,
                         td_status *st);

/* What td_unlock forgot. */
typedef struct td_unlock_result {
        bool was_locked;            /* some counter was at its limit: the next try would have been 429 */
        unsigned failures;          /* the most failed attempts one of the cleared counters held */
} td_unlock_result;

/* Admins only (root, AdminGroup, from the caller's kernel credentials; a
 * bearer token never makes an admin): forget the failure counters that hold
 * user back, like faillock --reset. That is failed password logins as user
 * from every caller, and the failures of user's own uid (password logins
 * under other names, failed verifications by its processes). Throttled
 * remote hosts are no user's and stay (they clear at the end of
 * FailureWindow). Written to the audit log ("unlock", one row per call;
 * refused: "unlock_denied"). Nothing counted is TD_OK with failures 0 and
 * was_locked false. TD_INVALID_REQUEST (no or a malformed user name),
 * TD_FORBIDDEN (not an admin), TD_NOT_FOUND (no such user and nothing
 * counted under that name). */
td_code td_unlock(tokend *t, const td_caller *c, const char *user, td_unlock_result *ret, td_status *st);
/* RFC 7662 introspection of an access token for a resource server: root or
 * an admin caller on the socket, a caller with a verified client
 * certificate (c->subject) over TCP; anyone else TD_FORBIDDEN. *ret is {"active":false} for
 * any token that does not pass td_verify's checks (never why), else
 * {"active":true, sub, username, uid, client_id, scope, aud, iss, exp, iat,
 * jti, token_type[, nbf, cnf]}. TD_INVALID_REQUEST (no token). */
td_code td_introspect(tokend *t, const td_caller *c, const char *token, json_t **ret, td_status *st);
/* RFC 7009 revocation by whoever holds the token: an access token (it has
 * dots) → its jti is revoked; a refresh token of device client_id → the
 * device is revoked. An unknown, invalid or already revoked token is TD_OK
 * (nothing done). TD_INVALID_REQUEST (no token; a refresh token without
 * client_id), TD_FORBIDDEN (client_id names another device than the
 * access token's). */
td_code td_revoke_token(tokend *t, const td_caller *c, const char *token, const char *client_id, td_status *st);

/* One signed page of the revocation feed after seq after (tokend-feed.h):
 * *ret_jws (malloc'ed compact JWS, typ tokend-revocations+jwt, signed with
 * the active key) and *ret_seq, the seq it brings the reader to.
 * TD_INVALID_REQUEST (after < 0), TD_FORBIDDEN (a verifier: no keys; or
 * [Network] ClientCA= is set and c is a TCP caller without a verified
 * client certificate, c->subject NULL). Socket callers always may. */
td_code td_revocations(tokend *t, const td_caller *c, int64_t after, char **ret_jws, int64_t *ret_seq,
                       td_status *st);

/* The public keys as a JWKS object: this issuer's, and those the other
 * issuers sharing the store published (td_publish_keys; each checked to be
 * a usable public key, at most STORE_KEYS_MAX). A store that cannot answer
 * leaves this issuer's own. TD_OK or TD_INTERNAL. */
td_code td_jwks(tokend *t, json_t **ret, td_status *st);

/* Publish the public JWKs of this issuer's key directory through the store
 * until the longest access token, the clock skew and two
 * TD_MAINTENANCE_INTERVALs from now (called at start, reload and every
 * maintenance tick), then plan which key signs from when each was first
 * published (td_signing_key). 0, or the -errno of the last store write
 * that failed (the others are still published) or of the read. */
int td_publish_keys(tokend *t);

/* Token answer as the JSON body of DESIGN.md. NULL on out of memory; the
 * caller owns the result. */
json_t *td_tokens_to_json(const td_tokens *tok);
json_t *td_introspection_to_json(const td_introspection *i);
