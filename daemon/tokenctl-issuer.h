/* SPDX-License-Identifier: MIT */
/* tokenctl over the network (DESIGN.md "Fleet"): which issuer, if any.
 * --issuer URL beats $TOKEND_ISSUER, which beats issuer= in
 * $XDG_CONFIG_HOME/tokend/tokenctl.conf (~/.config/tokend/tokenctl.conf);
 * --socket or --bus on the command line beat both of the latter, and so
 * does $TOKEND_SOCKET the file's issuer=. --ca-file F beats ca-file=. The
 * URL is https:// only: certificate verification is always on (the system
 * store, or the CA file), and there is no switch to turn it off. */
#pragma once

#include "tokenctl-util.h"

#define TC_ISSUER_URL_MAX 256U

/* Settle ctx->issuer and ctx->ca_file from the command line, environment
 * and configuration file (strings owned by ctx->owned_issuer/ca_file).
 * Returns EXIT_OK, or EXIT_USAGE after printing why (a bad URL, a broken
 * configuration file, --issuer with --socket or --bus). */
int tc_issuer_setup(tc_ctx *ctx);

/* Free what tc_issuer_setup() allocated. */
void tc_issuer_done(tc_ctx *ctx);
