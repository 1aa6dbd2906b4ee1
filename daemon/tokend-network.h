/* SPDX-License-Identifier: MIT */
/* The [Network] front end (DESIGN.md "Fleet"): the socket API over HTTPS
 * on every [Network] Listen= address, one libmicrohttpd daemon per listen
 * socket (tokend-http.c, TLS 1.2/1.3 only): the socket systemd passed for
 * the address (tokend-listenfds.h), else one bound here; callers identified by their
 * client address. Plain HTTP only on loopback with AllowPlainLoopback=yes
 * (the configuration refuses anything else). SIGHUP rereads Certificate=,
 * PrivateKey= and ClientCA=: new connections get the new certificate while
 * the old daemons finish their requests. */
#pragma once

#include "tokend-frontend.h"

/* The entry of tokend_frontends[] (tokend-frontend.c). */
extern const tokend_frontend_ops tokend_frontend_network;
