/* SPDX-License-Identifier: MIT */
/* td_unlock (tokenctl unlock USER, like faillock --reset): an admin clears
 * the failure counters that hold a user back. It mirrors the keys the
 * login limiter (tokend-service.c, login_reserve) and the verify limiter
 * (td_verify) count under. */
#include <stdio.h>
#include <string.h>

#include "tokend-log.h"
#include "tokend-ratelimit.h"
#include "tokend-service-internal.h"

td_code td_unlock(tokend *t, const td_caller *c, const char *user, td_unlock_result *ret, td_status *st) {
        ratelimit_cleared cl = { 0 };
        char key[32], detail[96];
        td_user u;
        int64_t now = td_now();

        if (!user || !user_name_valid(user))
                return td_fail(st, TD_INVALID_REQUEST, "user must be a valid user name");
        tokend_rdlock(t);
        /* Admin rights come from the kernel-verified caller, never a token. */
        bool admin = user_is_admin(c->uid, t->config->admin_group);
        tokend_unlock(t);
        if (!admin) {
                td_audit(t, c, "unlock_denied", user, NULL, "uid %u is not an admin", (unsigned) c->uid);
                return td_fail(st, TD_FORBIDDEN, "only root or a member of [Login] AdminGroup may unlock a user");
        }
        bool exists = user_by_name(user, &u) >= 0;

        /* Failed password logins as user, from every caller: the pair and
         * user-name counters, filed under the name. */
        ratelimit_clear_tag(t->login_fail_pair, user, now, &cl);
        ratelimit_clear_tag(t->login_fail_user, user, now, &cl);
        /* The failures of user's own uid: logins under other names (the
         * spraying total) and failed verifications by its processes. */
        if (exists) {
                snprintf(key, sizeof key, "uid:%u", (unsigned) u.uid);
                ratelimit_clear(t->login_fail_uid, key, now, &cl);
                ratelimit_clear(t->verify_fail_uid, key, now, &cl);
        } else if (cl.failures == 0)
                return td_fail(st, TD_NOT_FOUND, "no such user, and no failed logins counted under that name");

        snprintf(detail, sizeof detail, "%s, %u failure%s forgotten", cl.limited ? "was locked" : "was not locked",
                 cl.failures, cl.failures == 1 ? "" : "s");
        store_audit a = { .time = now, .event = "unlock", .user = user, .caller_uid = c->uid, .caller_pid = c->pid,
                          .detail = detail };
        int r = store_audit_add(t->store, &a);
        if (r < 0) /* the counters are cleared already: say so where admins look */
                log_error("unlock of %s by uid=%u (%s) could not be audited: %s", user, (unsigned) c->uid, detail,
                          strerror(-r));
        log_notice("failure counters of %s cleared by uid=%u pid=%d: %s", user, (unsigned) c->uid, (int) c->pid,
                   detail);
        *ret = (td_unlock_result){ .was_locked = cl.limited, .failures = cl.failures };
        return TD_OK;
}
