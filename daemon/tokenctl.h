/* SPDX-License-Identifier: MIT */
/* tokenctl: the command-line client of tokend. The verbs the command table
 * of tokenctl.c dispatches to, each implemented by a tokenctl-*.c file above
 * the transports. Verbs print human messages to stderr and results to
 * stdout, and return an exit status. */
#pragma once

#include "tokenctl-util.h"

/* Verbs (tokenctl-session.c) */
int verb_login(tc_ctx *ctx, int argc, char **argv);
int verb_logout(tc_ctx *ctx, int argc, char **argv);
int verb_status(tc_ctx *ctx, int argc, char **argv);
/* (tokenctl-token.c) */
int verb_token(tc_ctx *ctx, int argc, char **argv);
int verb_refresh(tc_ctx *ctx, int argc, char **argv);
int verb_askpass(tc_ctx *ctx, int argc, char **argv);
/* Act as tokenctl-askpass: argv[1] is the prompt, no options. */
int askpass_main(tc_ctx *ctx, int argc, char **argv);
/* (tokenctl-devices.c) */
int verb_devices(tc_ctx *ctx, int argc, char **argv);
/* (tokenctl-verify.c) */
int verb_verify(tc_ctx *ctx, int argc, char **argv);
int verb_inspect(tc_ctx *ctx, int argc, char **argv);
/* (tokenctl-audit.c) */
int verb_audit(tc_ctx *ctx, int argc, char **argv);
/* (tokenctl-unlock.c) */
int verb_unlock(tc_ctx *ctx, int argc, char **argv);
/* (tokenctl-device.c) */
int verb_device(tc_ctx *ctx, int argc, char **argv);
/* (tokenctl-keys.c) */
int verb_keys(tc_ctx *ctx, int argc, char **argv);
