/* SPDX-License-Identifier: MIT */
/* Devices: the devices verb (tokenctl.h) and what tokend says about the
 * device of this machine's credentials, for status, token and askpass. */
#pragma once

#include <stdint.h>

#include "tokenctl-state.h"

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
