/* SPDX-License-Identifier: MIT */
/* Host-scoped audiences on the verifying side (DESIGN.md "Host-scoped
 * audiences"): an audience SERVICE@HOST is good here only when HOST is one
 * of this host's names. The standalone default: the host name, its FQDN
 * and the loopback names localhost and 127.0.0.1 (a connection to those
 * never leaves the machine). [Verifier] HostNames= replaces the list. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* This host's names (gethostname(), the canonical name getaddrinfo()
 * gives for it, localhost, 127.0.0.1), lower case, without duplicates:
 * a NULL-terminated list (strv_free). Returns 0 or -ENOMEM; a name that
 * cannot be found is left out. */
int host_names_default(char ***ret);

/* Whether a token with audiences aud[0..n) is for service on a host
 * called one of names: an audience "service@N" with N in names (ASCII
 * case-insensitive, as DNS), or, when accept_unscoped, "service" itself. */
bool host_audience_accepts(char *const *aud, size_t n, const char *service, char *const *names,
                           bool accept_unscoped);
