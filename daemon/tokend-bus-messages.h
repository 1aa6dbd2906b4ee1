/* SPDX-License-Identifier: MIT */
/* Reading and writing the message bodies of io.tokend.Tokend1 for
 * tokend-bus.c: each service result as an a{sv} dictionary whose keys are
 * the socket API's JSON names (io.tokend.Tokend1(5) "Answer dictionaries"). */
#pragma once

#include <jansson.h>
#include <systemd/sd-bus.h>

#include "tokend-service.h"

/* The most audiences IssueToken takes (the service's own cap is the same). */
#define BUS_MAX_AUDIENCES 16U

/* Append tok as a{sv}: access_token, token_type, expires_in, refresh_token,
 * refresh_expires_in, device_id, user, uid (u), groups (as). tok stays the
 * caller's (it wipes it). Returns 0/positive or -errno; on failure r holds
 * a partial body and must be dropped. */
int bus_append_tokens(sd_bus_message *r, const td_tokens *tok);

/* Append a verify result as a{sv}: active, sub, exp, iat, client_id, jti,
 * aud (as), and uid (u) and scope when present. Same return as above. */
int bus_append_claims(sd_bus_message *r, const td_introspection *in);

/* Append a JSON array of objects (the rows of td_devices_list() or
 * td_audit_list()) as aa{sv}: JSON strings as s, integers as x (uid as u),
 * booleans as b. Same return as above. */
int bus_append_devices(sd_bus_message *r, const json_t *list);

/* Read an "as" argument into buf as a NULL-terminated vector of pointers
 * into m (valid while m lives); an empty array gives *ret = NULL (the
 * default audience), else *ret = buf. -E2BIG for more than
 * BUS_MAX_AUDIENCES entries, other -errno for a malformed message. */
int bus_read_audience(sd_bus_message *m, const char *buf[static BUS_MAX_AUDIENCES + 1], const char *const **ret);
