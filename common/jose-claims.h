/* SPDX-License-Identifier: MIT */
/* Access tokens (RFC 9068 profile of JWT, RFC 7519): building the claim set
 * of DESIGN.md and validating it after the signature check. Validation is
 * strict: typ must be "at+jwt"; iss, sub, aud, exp, iat, jti, client_id are
 * required; exp/iat/nbf must be integers in range (a string or 1e300 is a
 * rejection, not "absent"). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "jose-jws.h"
#include "jose-key.h"
#include "macro.h"

#define AT_TYP JWS_AT_TYP
#define AT_JTI_BYTES 16U          /* 128 random bits → 22 chars */
#define AT_MAX_AUD 16U
#define AT_MAX_STRING 256U        /* any single claim string */
#define AT_TIME_MAX 253402300799LL /* 9999-12-31T23:59:59Z */

typedef struct at_claims {
        char *iss;
        char *sub;
        int64_t uid;              /* -1 when absent */
        char **aud;               /* n_aud strings */
        size_t n_aud;
        int64_t iat, exp;
        int64_t nbf;              /* 0 when absent */
        char *jti;
        char *client_id;
        char *scope;              /* NULL when absent */
        char *cnf_jkt;            /* NULL when absent */
        char kid[65];             /* header kid ("" when absent) */
} at_claims;

typedef struct at_check {
        const char *issuer;       /* required; exact byte match */
        const char *audience;     /* NULL: not checked */
        int64_t now;              /* unix seconds */
        int64_t skew;             /* seconds of tolerance for exp/nbf/iat */
} at_check;

/* Check header and payload (from jws_verify) and fill *ret. Returns 0 or:
 * -EBADMSG missing/ill-typed claim or typ not at+jwt; -EKEYEXPIRED exp ≤
 * now - skew; -ETIME nbf or iat > now + skew; -EACCES iss or audience
 * mismatch. *ret is untouched on failure. */
_warn_unused_result_ int at_claims_check(const json_t *header, const json_t *payload, const at_check *chk,
                                         at_claims *ret);

/* jws_verify (kid required) + at_claims_check. Errors of both. */
_warn_unused_result_ int at_verify(const jose_keyset *ks, const char *token, size_t len, const at_check *chk,
                                   at_claims *ret);

/* at_verify for a token that passed it before, byte for byte, under a key
 * still in ks (jws_reopen_verified: no signature check); the claims are
 * checked against chk as at_verify does. */
_warn_unused_result_ int at_reverify(const jose_keyset *ks, const char *token, size_t len, const at_check *chk,
                                     at_claims *ret);

void at_claims_done(at_claims *c);

typedef struct at_params {
        const char *issuer;
        const char *subject;
        uint32_t uid;
        const char *const *aud;   /* n_aud ≥ 1 */
        size_t n_aud;
        int64_t iat;              /* unix seconds */
        int64_t lifetime;         /* seconds, > 0 */
        const char *client_id;    /* device id */
        const char *scope;        /* NULL or "" → omitted */
        const char *cnf_jkt;      /* NULL → omitted */
        const char *jti;          /* NULL → 128 random bits */
        bool no_uid;              /* omit uid (host-scoped tokens: uids differ per host) */
} at_params;

/* Build and sign an access token: header {"alg","typ":"at+jwt","kid"},
 * claims iss, sub, uid, aud (always an array), iat, exp, jti, client_id,
 * [scope], [cnf.jkt]. nbf is not emitted (it would equal iat; 17 bytes we
 * cannot spare under the 511-byte PAM cap); verifiers honour it if present.
 * On success *ret is the token, *ret_len its length, and ret_jti (if
 * non-NULL, ≥ 23 bytes) receives the jti. Returns 0, -EINVAL, -ENOMEM, -EIO. */
int at_build(const jose_key *key, const at_params *p, char **ret, size_t *ret_len, char *ret_jti,
             size_t ret_jti_size);
