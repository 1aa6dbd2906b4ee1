/* SPDX-License-Identifier: MIT */
/* Choosing tokenctl's transport: above both, which never call back up. */
#include "tokenctl-transport.h"

const tc_transport *tc_transport_of(const tc_ctx *ctx) {
        return ctx->bus ? &tc_transport_bus : &tc_transport_socket;
}
