/* SPDX-License-Identifier: MIT */
/* The issuer's side of the revocation feed: one signed page of the store's
 * revocation log (tokend-feed.h has the format). */
#include <stdio.h>
#include <stdlib.h>

#include "json-util.h"
#include "tokend-feed.h"
#include "tokend-log.h"
#include "tokend-service-internal.h"

/* The payload of one page of entries. NULL on out of memory. */
static json_t *feed_payload(const char *iss, int64_t now, int64_t after, int64_t seq, bool more,
                            const store_revocation *v, size_t n) {
        json_t *devices = json_array(), *jtis = json_array();
        json_t *p = json_pack("{s:s,s:I,s:I,s:I,s:I,s:b,s:o,s:o}", "iss", iss, "iat", (json_int_t) now, "exp",
                              (json_int_t) (now + FEED_LIFETIME), "after", (json_int_t) after, "seq",
                              (json_int_t) seq, "more", more, "devices", devices, "jtis", jtis);
        if (!p)
                return NULL; /* "o" took (and dropped) both arrays */
        for (size_t i = 0; i < n; i++) {
                json_t *e = v[i].kind == STORE_REVOKED_JTI
                                    ? json_pack("{s:s,s:I}", "jti", v[i].id, "exp", (json_int_t) v[i].until)
                                    : json_pack("{s:s,s:I}", "id", v[i].id, "until", (json_int_t) v[i].until);
                if (!e || json_array_append_new(v[i].kind == STORE_REVOKED_JTI ? jtis : devices, e) < 0) {
                        json_decref(p);
                        return NULL;
                }
        }
        return p;
}

td_code td_revocations(tokend *t, const td_caller *c, int64_t after, char **ret_jws, int64_t *ret_seq,
                       td_status *st) {
        _cleanup_(freep) store_revocation *v = NULL;
        _cleanup_(json_decrefp) json_t *p = NULL;
        size_t n = 0;
        int64_t seq = 0, now = td_now();
        td_code tc;
        char *jws = NULL;

        if (after < 0)
                return td_fail(st, TD_INVALID_REQUEST, "after must be a sequence number (0 or more)");
        tokend_rdlock(t);
        if (t->role == TOKEND_ROLE_VERIFIER || !t->keys.active) {
                tc = td_fail(st, TD_FORBIDDEN, "this tokend is a verifier: it serves no revocation feed");
                goto out;
        }
        /* With ClientCA=, the feed is for verifier hosts only: over TCP a
         * client certificate that verified against it (the socket is local). */
        if (td_caller_is_remote(c) && t->config->network_client_ca && !c->subject) {
                char who[TD_CALLER_NAME_MAX];
                log_info("revocation feed refused to %s: no client certificate of [Network] ClientCA=",
                         td_caller_name(c, who));
                tc = td_fail(st, TD_FORBIDDEN, "the revocation feed needs a client certificate signed by a "
                             "[Network] ClientCA= certificate");
                goto out;
        }
        /* What can no longer refuse anything (its until passed ClockSkew ago) is left out. */
        int r = store_revocations_list(t->store, after, now - t->config->clock_skew, FEED_PAGE, &v, &n, &seq);
        if (r < 0) {
                tc = td_store_fail(st, r, "reading the revocation log");
                goto out;
        }
        /* A full page: ask again at once (the next may turn out empty). */
        p = feed_payload(t->config->issuer, now, after, seq, n == FEED_PAGE, v, n);
        if (!p || jws_sign_json(td_signing_key(t), FEED_TYP, p, &jws, NULL) < 0) {
                tc = td_fail(st, TD_INTERNAL, "cannot sign the revocation feed");
                goto out;
        }
        *ret_jws = jws;
        *ret_seq = seq;
        tc = TD_OK;
out:
        tokend_unlock(t);
        return tc;
}
