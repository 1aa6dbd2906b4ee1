/* SPDX-License-Identifier: MIT */
/* Helpers shared by tokend-service.c and tokend-devices.c (not used by the
 * front ends). */
#pragma once

#include <stdarg.h>
#include <time.h>

#include "jose-claims.h"
#include "tokend-service.h"
#include "tokend-users.h"
#include "tokend.h"

/* Fill st and return c. Message is for the caller: never a secret. */
td_code td_fail(td_status *st, td_code c, const char *fmt, ...) _printf_(3, 4);

/* Map a store error to TD_UNAVAILABLE (-EBUSY, -ENOSPC) or TD_INTERNAL
 * (anything else), with a log line; returns that code. */
td_code td_store_fail(td_status *st, int r, const char *what);

/* Check an access token fully: signature, claims (audience if non-NULL),
 * device known and not revoked and owned by sub, jti not revoked, user still
 * exists with the same uid. Caller holds the read lock. On TD_OK *ret is
 * filled (release with at_claims_done). */
td_code td_check_access_token(tokend *t, const char *token, const char *audience, at_claims *ret, td_status *st);

/* The key that signs now (tokend-jwks.c: t->keys.active once published
 * for [Keys] PublishBeforeSigning=, else the key that signed before).
 * Caller holds the read lock; borrowed from t->keys. Inline: the service
 * and the feed use it, tokend-jwks.c plans it. */
static inline const jose_key *td_signing_key(tokend *t) {
        return signing_plan_key(t->signing, &t->keys, (int64_t) time(NULL));
}

/* The identity a request acts as: the sub of a valid bearer token if one
 * is given, else the caller's own uid. Caller holds the read lock. Codes:
 * td_check_access_token's, TD_INVALID_TOKEN (the token's user is gone),
 * TD_FORBIDDEN (a caller uid without a user name). */
td_code td_identity(tokend *t, const td_caller *c, const char *bearer, td_user *ret, td_status *st);

#define TD_AUDIT_WINDOW ((int64_t) 60) /* coalescing window of refusals and failures */
#define TD_AUDIT_DETAIL_MAX 256U       /* longer details are cut */

/* Audit a refusal or failure, which any caller can repeat at will
 * (token_denied, login_failed, verify_failed, …), with the caller filled
 * in: coalesced, one row with a count per key (event, user, device, caller
 * uid, detail) and TD_AUDIT_WINDOW, at most STORE_AUDIT_COALESCE_KEYS + 1
 * rows per event, caller uid and window (store_audit_coalesce). Keep the
 * detail free of what changes from one attempt to the next. Successes
 * (login, token, refresh, logout, revoke) write their own row each, in the
 * store operation that they audit. */
void td_audit(tokend *t, const td_caller *c, const char *event, const char *user, const char *device_id,
              const char *detail_fmt, ...) _printf_(6, 7);

/* Notify the front ends (D-Bus DeviceRevoked) of a revocation. */
void td_device_revoked(tokend *t, const char *user, const char *device_id);

/* Revoke device_id of user with reason, writing audit row *a in the same
 * transaction, and notify the front ends if it was alive. TD_OK (also when it
 * was already revoked), or the store's failure (TD_UNAVAILABLE, TD_INTERNAL)
 * with st filled in. */
td_code td_revoke_device(tokend *t, const char *user, const char *device_id, const char *reason,
                         const store_audit *a, td_status *st);

/* On a verifier ([Verifier] Issuer=) what only the issuer does (logins,
 * tokens, refresh, devices) is refused: true, and st says where to go. */
bool td_verifier_refuses(tokend *t, td_status *st);

static inline int64_t td_now(void) {
        return (int64_t) time(NULL);
}
