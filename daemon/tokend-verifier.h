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

/* Why a feed answer was refused (GET /metrics: tokend_verifier_feed_answers_total). */
typedef enum verifier_feed_result {
        VFEED_APPLIED,
        VFEED_FORGED,       /* not signed by an issuer key (after a JWKS fetch) */
        VFEED_REPLAYED,     /* an answer to another request (after), or SEQ went backwards */
        VFEED_EXPIRED,      /* exp passed, or iat in the future */
        VFEED_WRONG_ISSUER, /* iss is not Issuer= */
        VFEED_MALFORMED,    /* wrong typ, no sequence numbers, bad entries */
        _VFEED_MAX,
} verifier_feed_result;

/* How a JWKS fetch ended (tokend_verifier_jwks_refreshes_total). */
typedef enum verifier_jwks_result {
        VJWKS_SUCCESS,
        VJWKS_UNREACHABLE, /* no 200 answer */
        VJWKS_REFUSED,     /* not a JWKS, or no usable key in it */
        _VJWKS_MAX,
} verifier_jwks_result;

/* How a verification on this host ended (tokend_verifier_verifications_total). */
typedef enum verifier_check_result {
        VCHECK_ACCEPTED,
        VCHECK_REVOKED,      /* device or jti revoked per the feed */
        VCHECK_STALE,        /* strict and the feed is stale, or no issuer key yet */
        VCHECK_UNKNOWN_KEY,  /* a kid not in the JWKS (being fetched) */
        VCHECK_EXPIRED,      /* exp passed */
        VCHECK_UNKNOWN_USER, /* good token, but no such user in this host's NSS */
        VCHECK_REFUSED,      /* anything else: signature, claims, audience, malformed */
        _VCHECK_MAX,
} verifier_check_result;

extern const char *const verifier_feed_result_names[_VFEED_MAX];
extern const char *const verifier_jwks_result_names[_VJWKS_MAX];
extern const char *const verifier_check_result_names[_VCHECK_MAX];

/* What the status shows (and tests wait for). */
typedef struct verifier_status {
        int64_t seq;            /* the feed's SEQ applied */
        int64_t last_ok;        /* unix time of the last good feed answer, 0 = never */
        int64_t jwks_fetched;   /* unix time the JWKS in use came from the issuer, 0 = none */
        /* kept in verifier-feed.json across restarts, except unreachable
         * (feed requests with no 200 answer since this start) */
        uint64_t feed_applied, feed_refused, jwks_refreshes, unreachable;
        size_t revoked_devices, revoked_jtis, jwks_keys;
        int64_t max_staleness;  /* MaxStaleness=, seconds */
        /* since this start (GET /metrics) */
        uint64_t feed_answers[_VFEED_MAX];
        uint64_t jwks_results[_VJWKS_MAX];
        uint64_t checks[_VCHECK_MAX];
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
 * best_effort: any). A token that passed all of that a moment ago (a
 * verified-token cache, tokend-vcache.h: until its exp, 10 s at most)
 * skips the signature check only: the claims, the audience, the feed's
 * revocations (in memory) and the staleness are checked on every call; a
 * feed entry drops the cached entries of its device or jti, a new JWKS all
 * of them. Signature checks of concurrent calls run in parallel.
 * On 0, *ret is filled (release with at_claims_done).
 * Errors: at_verify's (-EKEYEXPIRED, -ETIME, -EACCES, -EBADMSG,
 * -EKEYREJECTED), -ENOKEY (unknown kid: a JWKS fetch is asked for; try again
 * soon), -EKEYREVOKED (device or jti revoked), -ESTALE (strict and the feed
 * is stale, or there is no issuer key yet), -E2BIG. */
_warn_unused_result_ int verifier_check(verifier *v, const char *token, size_t len, const char *service,
                                        int64_t now, int64_t skew, at_claims *ret);

/* Count a verification that verifier_check passed (VCHECK_ACCEPTED, or
 * VCHECK_UNKNOWN_USER: the caller looks the user up); verifier_check
 * counts its own refusals. */
void verifier_count_check(verifier *v, verifier_check_result r);

void verifier_get_status(verifier *v, verifier_status *ret);
