/* SPDX-License-Identifier: MIT */
/* Verifier mode (DESIGN.md "Fleet", [Verifier] Issuer=): tokens are checked
 * here against the issuer's JWKS and revocation feed, with no network call
 * on the verify path. One thread talks to the issuer (libcurl): it fetches
 * the JWKS (at start, every JWKS_REFRESH seconds, and soon after a token
 * named an unknown kid, at most once per JWKS_COOLDOWN), and long-polls
 * GET /api/revocations, applying each signed answer whose signature (issuer
 * key, typ tokend-revocations+jwt), iss, after and exp are right; any other
 * answer is refused and counted. Both are kept in the state directory
 * (verifier-jwks.json, verifier-feed.json: written to a temporary file,
 * fsync'ed and renamed), so a restart keeps the revoked set and its SEQ.
 * Failures to reach the issuer are retried with exponential backoff (1 s to
 * 30 s) and ±50 % jitter. Thread-safe. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "jose-claims.h"
#include "macro.h"
#include "tokend-config.h"

#define JWKS_REFRESH 600  /* seconds between routine JWKS fetches */
#define JWKS_COOLDOWN 10  /* seconds between fetches asked for by unknown kids */
#define FEED_WAIT 25      /* seconds of the feed long poll */

typedef struct verifier verifier;

/* What the status shows (and tests wait for). */
typedef struct verifier_status {
        int64_t seq;            /* the feed's SEQ applied */
        int64_t last_ok;        /* unix time of the last good feed answer, 0 = never */
        int64_t jwks_fetched;   /* unix time of the last good JWKS, 0 = never */
        uint64_t feed_applied, feed_refused, jwks_refreshes, unreachable;
        size_t revoked_devices, revoked_jtis;
} verifier_status;

/* Load what the state directory holds from before, and start the thread.
 * c is copied from (issuer, transport, host names, policy); state_dir must
 * exist. Returns 0, -ENOMEM, -EAGAIN, or -EINVAL (a host name cannot be
 * found). Logs its reasons. */
int verifier_new(const tokend_config *c, const char *state_dir, verifier **ret);

/* Stop the thread (an exchange in flight is aborted) and free. Accepts NULL. */
void verifier_free(verifier *v);

/* Check token for service (NULL: any audience) at now: signature by an
 * issuer key, claims (at_verify with iss = [Verifier] Issuer), a
 * host-scoped audience "service@NAME" for one of HostNames=, or plain
 * "service" when AcceptUnscoped=yes; not revoked per the feed; the feed
 * fresh enough (Policy=strict: last good answer at most MaxStaleness ago;
 * best_effort: any). On 0, *ret is filled (release with at_claims_done).
 * Errors: at_verify's (-EKEYEXPIRED, -ETIME, -EACCES, -EBADMSG,
 * -EKEYREJECTED), -ENOKEY (unknown kid: a JWKS fetch is asked for; try again
 * soon), -EKEYREVOKED (device or jti revoked), -ESTALE (strict and the feed
 * is stale, or there is no issuer key yet), -E2BIG. */
_warn_unused_result_ int verifier_check(verifier *v, const char *token, size_t len, const char *service,
                                        int64_t now, int64_t skew, at_claims *ret);

void verifier_get_status(verifier *v, verifier_status *ret);
