/* SPDX-License-Identifier: MIT */
/* Pending RFC 8628 device authorizations, in bounded memory: a fixed table
 * of DEVICE_SLOTS slots, each expiring DEVICE_EXPIRES_IN seconds after it
 * was made. Nothing is written to the store: a restart drops every pending
 * code (the device then starts over), and no caller can grow anything.
 * Codes: device_code = 256 random bits (base64url; only its SHA-256 is
 * kept), user_code = 8 characters of the RFC 8628 §6.1 base-20 alphabet
 * BCDFGHJKLMNPQRSTVWXZ (34.5 bits). Guessing user codes is bounded: wrong
 * codes count per caller (DEVICE_CODE_FAILURES per DEVICE_FAILURE_WINDOW)
 * and for everyone together (DEVICE_CODE_FAILURES_ALL per minute, then
 * every lookup waits), so a guesser tries at most a few hundred codes in a
 * code's lifetime against ≥ 2.5e10 possibilities. Thread-safe. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define DEVICE_SLOTS 256U
#define DEVICE_PENDING_PER_CALLER 8U
#define DEVICE_EXPIRES_IN 600       /* seconds */
#define DEVICE_INTERVAL 5           /* seconds between polls; slow_down adds 5 */
#define DEVICE_CODE_FAILURES 10U    /* wrong user codes per caller per window */
#define DEVICE_FAILURE_WINDOW 600   /* seconds */
#define DEVICE_CODE_FAILURES_ALL 100U /* wrong user codes per minute, all callers */
#define DEVICE_USER_CODE_LEN 8U
#define DEVICE_CODE_LEN 43U         /* base64url of 32 bytes */
#define DEVICE_CLIENT_ID_MAX 64U
#define DEVICE_NAME_MAX 128U
#define DEVICE_KEY_MAX 64U
#define DEVICE_SCOPE_MAX 400U
#define DEVICE_REQUESTER_MAX 64U
#define DEVICE_CALLER_KEY_MAX 64U

typedef struct device_grants device_grants;

/* What a device asked for: shown on the approval page, used by the login. */
typedef struct device_request {
        char client_id[DEVICE_CLIENT_ID_MAX + 1];
        char device_name[DEVICE_NAME_MAX + 1];  /* "" : none */
        char device_key[DEVICE_KEY_MAX + 1];    /* "" : none */
        char scope[DEVICE_SCOPE_MAX + 1];       /* space-separated audiences, "" : default */
        char requester[DEVICE_REQUESTER_MAX + 1]; /* who asked ("uid=1000 pid=7", a client address) */
        int64_t expires;                        /* unix seconds */
} device_request;

/* 0 and *ret (free with device_grants_free, which accepts NULL), -ENOMEM. */
int device_grants_new(device_grants **ret);
void device_grants_free(device_grants *g);

/* The approval page's CSRF token for the value of its cookie: base64url
 * HMAC-SHA256 under a key made at start (so a restart invalidates open
 * forms). -EINVAL when cookie is empty or longer than 64 bytes. */
#define DEVICE_CSRF_LEN 43U
int device_grants_csrf(const device_grants *g, const char *cookie, char out[static DEVICE_CSRF_LEN + 1]);

/* A new pending authorization for req, asked by caller_key (limits). 0 and
 * the codes; -EUSERS (every slot busy), -EDQUOT (caller_key has
 * DEVICE_PENDING_PER_CALLER pending), -EIO (no randomness). */
int device_grants_start(device_grants *g, const char *caller_key, const device_request *req, int64_t now,
                        char device_code[static DEVICE_CODE_LEN + 1],
                        char user_code[static DEVICE_USER_CODE_LEN + 1]);

/* Normalize what a person typed (case, dashes and spaces ignored) into
 * out. false: not 8 characters of the alphabet. */
bool device_user_code_normalize(const char *in, char out[static DEVICE_USER_CODE_LEN + 1]);

/* Find the pending authorization of a user code, for caller_key. 0: *ret
 * (a copy) and *ret_handle (for claim/deny); -ENOENT: no pending code (a
 * failure, counted); -EAGAIN: too many wrong codes, try again in
 * *ret_retry seconds (nothing looked up). */
int device_grants_find(device_grants *g, const char *caller_key, const char *user_code, int64_t now,
                       device_request *ret, uint64_t *ret_handle, int64_t *ret_retry);

/* Take the authorization for the login of the approver (no second login
 * runs at once). 0, or -ENOENT (gone: expired, approved, denied, claimed). */
int device_grants_claim(device_grants *g, uint64_t handle, int64_t now);
/* After the claim: answer (a token answer, malloc'ed secret JSON; taken and
 * wiped later) approves; NULL gives the authorization back (the login
 * failed). */
void device_grants_finish(device_grants *g, uint64_t handle, char *answer);
/* Deny a pending authorization. 0 or -ENOENT. */
int device_grants_deny(device_grants *g, uint64_t handle);

/* A poll of the token endpoint. 0: *ret_answer (taken by the caller; the
 * slot is freed); -EINPROGRESS authorization_pending; -EBUSY slow_down
 * (the interval grows by DEVICE_INTERVAL); -EACCES access_denied (slot
 * freed); -ETIME expired_token; -ENOENT unknown device_code; -EPERM another
 * client_id than the one that asked (client_id NULL: not checked). */
int device_grants_poll(device_grants *g, const char *device_code, const char *client_id, int64_t now,
                       char **ret_answer);
