/* SPDX-License-Identifier: MIT */
/* Getting a valid access token: from the per-audience cache, else by a
 * refresh with the device-key proof, serialized across processes by the
 * state lock so that concurrent runs never rotate the refresh token twice.
 * Functions here return an exit status (EXIT_*) and print their errors. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "tokenctl-state.h"
#include "tokenctl-util.h"

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
/* Over the network (ctx->issuer), fetch an access token into ctx->bearer
 * for the calls that identify the caller by it (devices, audit); locally
 * nothing. Returns an exit status. */
int tc_network_bearer(tc_ctx *ctx);

int tc_access_token(const tc_ctx *ctx, const char *audience, bool force, int64_t ttl, char **ret_token,
                    int64_t *ret_exp);
