/* SPDX-License-Identifier: MIT */
/* The D-Bus front end (DESIGN.md "D-Bus API", io.tokend.Tokend1(5)): the
 * name io.tokend.Tokend1 on the bus of [Bus] Bus=, served by sd-bus on a
 * thread of its own. Translates calls to tokend-service calls and td_code
 * values to io.tokend.Error.* names in one place (bus_error_name()). */
#pragma once

#include "tokend-service.h"
#include "tokend-workers.h"

typedef struct bus_server bus_server;

/* Connect to the bus the configuration names, publish the object, take the
 * name and start serving on a new thread; installs the DeviceRevoked hook
 * (t->on_device_revoked), so call it before the other front ends start.
 * login_workers runs password logins (must outlive the server). With
 * Bus=none nothing starts: returns 0 with *ret = NULL. On failure (bus
 * unreachable, name taken) the reason is logged, nothing is left running,
 * *ret is untouched, and -errno is returned. */
int bus_server_start(tokend *t, workers *login_workers, bus_server **ret);

/* Stop serving: stop taking calls, wait for password logins still in the
 * worker pool and answer them, send queued signals, flush, disconnect,
 * remove the hook, free. Call after the other front ends have stopped and
 * before login_workers is freed. Accepts NULL. */
void bus_server_stop(bus_server *b);

/* The D-Bus error name for a service code (the one place this mapping
 * lives), e.g. "io.tokend.Error.InvalidToken". Never NULL. */
const char *bus_error_name(td_code c);
