/* SPDX-License-Identifier: MIT */
/* The revocation feed's wire format (DESIGN.md "Fleet"), shared by the
 * issuer that signs it (td_revocations, tokend-feed.c) and the verifier
 * that applies it: a compact JWS, header typ FEED_TYP, signed with the
 * issuer's active key, payload
 *
 *   {"iss": the issuer, "iat", "exp": iat + FEED_LIFETIME,
 *    "after": the SEQ asked for, "seq": where the reader is now,
 *    "more": true when the page is full: ask again at once,
 *    "devices": [{"id": device id, "until": unix time}],
 *    "jtis": [{"jti": token id, "exp": the token's exp}]}
 *
 * An entry refuses the access tokens of that device (client_id) or with
 * that jti until its time passes; then it leaves the feed. */
#pragma once

#define FEED_TYP "tokend-revocations+jwt"
#define FEED_LIFETIME 60        /* seconds an answer stays acceptable (its exp) */
#define FEED_PAGE 1000U         /* entries in one answer at most (≤ STORE_PAGE_MAX) */
#define FEED_MAX_BYTES (1024U * 1024U) /* a verifier refuses a bigger answer */
