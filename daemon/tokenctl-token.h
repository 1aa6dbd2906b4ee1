/* SPDX-License-Identifier: MIT */
/* Getting a valid access token: from the per-audience cache, else by a
 * refresh with the device-key proof, serialized across processes by the
 * state lock so that concurrent runs never rotate the refresh token twice.
 * Functions here return an exit status (EXIT_*) and print their errors. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "tokenctl-state.h"
#include "tokenctl.h"

/* Take a token answer of tokend (login or refresh) into c and the state
 * dir: c's refresh token and expiry are replaced and saved, the access
 * token is cached under audience (NULL: the default audience) if cache. When
 * c->device_id is set, the answer must name the same device. On success
 * *ret_token (malloc'ed, optional) and *ret_exp (optional) are set. */
int tc_apply_answer(const tc_ctx *ctx, const char *dir, tc_creds *c, const char *audience, const json_t *ans,
                    bool cache, char **ret_token, int64_t *ret_exp);

/* A valid access token for audience (NULL: tokend's default audience):
 * the cached one when at least TOKENCTL_REFRESH_MARGIN seconds remain (or
 * another process refreshed it while we waited for the lock), else a fresh
 * one from a refresh. force: always refresh. ttl > 0: always refresh, for
 * an access token of at most ttl seconds, which is not cached (the cache
 * keeps the normal one). *ret_token is malloc'ed. */
int tc_access_token(const tc_ctx *ctx, const char *audience, bool force, int64_t ttl, char **ret_token,
                    int64_t *ret_exp);

/* What tokend says about the device of some credentials. */
typedef enum tc_device_liveness {
        TC_DEVICE_UNKNOWN, /* tokend could not tell (another user's credentials and no token to verify) */
        TC_DEVICE_ALIVE,
        TC_DEVICE_REVOKED, /* reason and revoked_at when tokend listed the device */
        TC_DEVICE_GONE,    /* not among the user's devices any more */
} tc_device_liveness;

typedef struct tc_device_state {
        tc_device_liveness state;
        int64_t revoked_at; /* 0: not known */
        char reason[64];    /* "refresh_reuse", "logout", "admin", …; "" when not known */
} tc_device_state;

/* Ask tokend, read-only, whether c's device is alive: GET /api/devices
 * ?user= (ListDevices over D-Bus) when the credentials are the caller's own
 * (tokend knows the caller by its uid); else, or if that is refused, the
 * verification of token (may be NULL) tells revoked from alive. Returns
 * EXIT_OK with *ret set, or the exit status of an unreachable tokend (the
 * transport printed why). */
int tc_device_check(const tc_ctx *ctx, const tc_creds *c, const char *token, tc_device_state *ret);

/* "active", "revoked (refresh_reuse, 2026-… (3min ago))", …; returns buf. */
const char *tc_device_state_text(const tc_device_state *s, char *buf, size_t size);
