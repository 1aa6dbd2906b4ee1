/* SPDX-License-Identifier: MIT */
/* tokenctl's side of the RFC 8628 device grant (tokenctl-device.c). */
#pragma once

#include "tokenctl-answer.h"
#include "tokenctl-transport.h"

/* login --device: ask tokend for a device code (sending req's device_name
 * and device_key), print the verification URI and user code on stderr,
 * poll the token endpoint at the interval it asks for until the code is
 * approved. 0 and *ret (the token answer), or -errno after printing why:
 * -EPERM (denied, refused), -ETIME (expired), a transport's -errno. */
int tc_device_grant(const tc_ctx *ctx, const tc_login_req *req, tc_answer *ret);
