/* SPDX-License-Identifier: MIT */
/* Who receives DeviceRevoked (io.tokend.Tokend1(5)): only connections that
 * called Subscribe(), each sent its own unicast copy (a destination per
 * recipient), for the devices of its own user, or of every user if it is an
 * admin (root or [Login] AdminGroup=, checked at each signal). A broadcast
 * would tell every local user who logged out and which devices exist.
 * Subscriptions end when the connection leaves the bus (sd_bus_track).
 * Bus thread only: no locking. */
#pragma once

#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "tokend-service.h"

#define BUS_WATCHERS_MAX 1024U    /* subscriptions in all */
#define BUS_WATCHERS_PER_UID 16U  /* per uid but root, so no uid fills the table */

typedef struct bus_watchers bus_watchers;

/* A table of subscriptions on bus. Returns 0, -ENOMEM or sd-bus's -errno. */
int bus_watchers_new(sd_bus *bus, bus_watchers **ret);

/* Accepts NULL. */
void bus_watchers_free(bus_watchers *w);

/* Subscribe the sender of m, which called as uid (user name: its passwd
 * entry, "" without one). Returns 0 (also if subscribed already), -EUSERS
 * (the table or this uid's share of it is full), -ENOMEM or -errno. */
int bus_watchers_add(bus_watchers *w, sd_bus_message *m, uid_t uid);

/* Send DeviceRevoked(user, device_id) to each subscriber still connected
 * that is user or an admin of t (takes t's read lock for the admin group).
 * Returns how many were sent, or the first -errno if building or queueing
 * one failed (the others are still sent). */
int bus_watchers_emit(bus_watchers *w, tokend *t, const char *user, const char *device_id);
