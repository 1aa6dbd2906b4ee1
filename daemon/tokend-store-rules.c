/* SPDX-License-Identifier: MIT */
/* The rules every store backend applies the same way (declared in
 * tokend-store-backend.h): the verdict of a rotation, the evidence a reuse
 * leaves, the pruning bounds, the audit overflow row, listing pages. */
#include <stdio.h>
#include <stdlib.h>

#include "tokend-store-backend.h"

store_verdict store_rotate_verdict(const store_rotate_req *q, bool device_revoked, const store_token_row *t) {
        if (device_revoked)
                return VERDICT_REVOKED;
        if (t->is_rotated) {
                /* The same client racing itself (two refreshes with one
                 * token): refuse the loser without calling it theft. It gets
                 * no token, so an attacker gains nothing from the grace. */
                if (q->reuse_grace > 0 && q->now >= t->rotated && q->now - t->rotated <= q->reuse_grace)
                        return VERDICT_RACE;
                /* RFC 9700 §4.14.2: a rotated refresh token came back, so two
                 * parties hold this token family. This check comes before
                 * the expiry: an old rotated token is theft evidence even
                 * after its own expiry. */
                return VERDICT_REUSE;
        }
        if (t->expires != 0 && q->now >= t->expires)
                return VERDICT_EXPIRED;
        return q->new_hash ? VERDICT_ROTATE : VERDICT_CURRENT;
}

void store_reuse_evidence(const store_rotate_req *q, const store_token_row *t, store_rotate_result *res,
                          char *buf, size_t size, store_audit *ret_audit) {
        snprintf(buf, size, "refresh token of generation %lld presented again (rotated at %lld): device revoked",
                 (long long) t->generation, (long long) t->rotated);
        *ret_audit = (store_audit){
                .time = q->now, .event = "refresh_reuse", .user = res->device.user, .device_id = q->device_id,
                .caller_uid = q->a ? q->a->caller_uid : -1, .caller_pid = q->a ? q->a->caller_pid : -1,
                .detail = buf,
        };
        res->reuse_detected = true;
        res->device.revoked = true;
        res->device.revoked_at = q->now;
        snprintf(res->device.revoke_reason, sizeof res->device.revoke_reason, "refresh_reuse");
}

#define PRUNE_MARGIN ((int64_t) 3600) /* keep expired jtis for the largest ClockSkew */

/* A chain dies with its newest token; until then its rotated tokens stay,
 * so replaying any of them is recognised as reuse. */
const int64_t store_prune_before_now[_PRUNE_MAX] = {
        [PRUNE_CHAINS] = 0,
        [PRUNE_ROTATED] = STORE_RETENTION,
        [PRUNE_JTIS] = PRUNE_MARGIN,
        [PRUNE_PROOFS] = PRUNE_MARGIN,
        [PRUNE_REVOKED_DEVICES] = STORE_RETENTION,
        [PRUNE_DEAD_DEVICES] = STORE_RETENTION,
        [PRUNE_AUDIT] = STORE_RETENTION,
        [PRUNE_KEYS] = PRUNE_MARGIN,
        [PRUNE_REVOCATIONS] = PRUNE_MARGIN,
};

void store_audit_overflow(const store_audit *a, int64_t window, char *buf, size_t size, store_audit *ret) {
        /* Too many distinct keys (a caller varying user names, hosts…): the
         * rest of the window goes into one row. */
        snprintf(buf, size, "more than %u distinct %s events of this caller within %llds: counted here",
                 STORE_AUDIT_COALESCE_KEYS, a->event, (long long) window);
        *ret = (store_audit){ .time = a->time, .event = a->event, .caller_uid = a->caller_uid,
                              .caller_pid = a->caller_pid, .detail = buf };
}

void store_page_finish(void **v, size_t *n, size_t limit, bool *ret_more) {
        *ret_more = *n > limit;
        if (*n > limit)
                *n = limit;
        if (*n == 0) {
                free(*v);
                *v = NULL;
        }
}
