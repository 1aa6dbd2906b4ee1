/* SPDX-License-Identifier: MIT */
/* Front ends of tokend as parts: each is one tokend_frontend_ops entry in
 * the table tokend_frontends[] (tokend-frontend.c), which tokend_startup()
 * walks in order and tokend_free() unwinds in reverse. A front end
 * translates its wire protocol to tokend-service calls; it never holds
 * rules of its own. To add one (e.g. the [Network] HTTPS listener): write
 * its start/stop (and reload, if SIGHUP must reach it) over the context,
 * set roles and wanted(), and append the entry to the table. */
#pragma once

#include <stdbool.h>

#include "tokend-http.h"
#include "tokend.h"

struct tokend_frontend_ops {
        const char *name;     /* for the logs: "D-Bus", "socket", ... */
        unsigned roles;       /* TOKEND_ROLE_MASK()s it runs in */
        bool optional;        /* a failed start is logged and tokend goes on without it */
        /* Whether this configuration asks for it (e.g. Bus=none: no); NULL: always. */
        bool (*wanted)(const tokend *t);
        /* Start serving. On success returns 0 and *ret_state (may be NULL),
         * which stop and reload get back; on failure logs the reason, leaves
         * nothing running and returns -errno. Called without the lock. */
        int (*start)(tokend *t, void **ret_state);
        /* Stop accepting, finish or answer in-flight requests within grace
         * seconds, free state. Called in reverse start order, before the
         * login workers are freed. */
        void (*stop)(tokend *t, void *state, unsigned grace);
        /* After tokend_reload() swapped configuration and keys (e.g. reread
         * a certificate). May be NULL. Errors are logged by the front end,
         * which keeps serving with what it had. */
        void (*reload)(tokend *t, void *state);
};

extern const tokend_frontend_ops *const tokend_frontends[];
extern const size_t tokend_n_frontends;
