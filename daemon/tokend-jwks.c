/* SPDX-License-Identifier: MIT */
/* The JWKS of a fleet: each issuer publishes the public JWKs of its own key
 * directory through the store (never a private key: nothing is shared but
 * what the JWKS shows anyway), and every issuer serves the union, so a
 * verifier reading any of them knows the keys of all. A published key stays
 * listed while some issuer keeps republishing it (start, reload, every
 * maintenance tick) and, after the last one stopped, until the last token
 * it could have signed has expired. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "jose-jwk.h"
#include "jose-keyset.h"
#include "macro.h"
#include "tokend-fleetkeys.h"
#include "tokend-log.h"
#include "tokend-service-internal.h"

/* How long a publication lasts without being renewed: the longest access
 * token, the clock skew, and two maintenance ticks to renew it in. */
static int64_t publication_span(const tokend_config *c) {
        return c->access_token_lifetime + c->clock_skew + 2 * TD_MAINTENANCE_INTERVAL;
}

/* [Keys] PublishBeforeSigning=, unset: 10 min where other issuers cache
 * this one's keys (a shared store), 0 with SQLite (tokend.conf(5)). */
static int64_t publish_delay(const tokend *t) {
        int64_t d = t->config->keys_publish_before_signing;
        return d >= 0 ? d : t->store_local ? 0 : TD_PUBLISH_BEFORE_SIGNING_SHARED;
}

/* Which key signs, from what the store says was published when. A store
 * that cannot answer keeps the plan. */
static int plan_signing(tokend *t, int64_t now) {
        _cleanup_(freep) store_published_key *v = NULL;
        signing_state s;
        size_t n = 0;
        int r = store_keys_list(t->store, now, &v, &n);
        if (r < 0 || !t->signing)
                return r;
        tokend_rdlock(t);
        int64_t delay = publish_delay(t);
        bool changed = signing_plan_update(t->signing, &t->keys, v, n, delay, now, &s);
        tokend_unlock(t);
        if (changed && !streq(s.signer, s.active) && s.active_from == INT64_MAX)
                log_notice("key %s signs once published for %llds ([Keys] PublishBeforeSigning=); until then key "
                           "%s signs", s.active, (long long) delay, s.signer);
        else if (changed && !streq(s.signer, s.active))
                log_notice("key %s signs in %llds, once published for %llds ([Keys] PublishBeforeSigning=); until "
                           "then key %s signs", s.active, (long long) (s.active_from - now), (long long) delay,
                           s.signer);
        else if (changed && delay > 0)
                log_info("key %s signs", s.active);
        return 0;
}

int td_publish_keys(tokend *t) {
        _cleanup_(json_decrefp) json_t *jwks = NULL;
        int64_t now = (int64_t) time(NULL);
        int r = 0;

        tokend_rdlock(t);
        int64_t until = now + publication_span(t->config);
        if (jose_keyset_to_jwks(t->keys.keys, &jwks) < 0)
                r = -ENOMEM;
        tokend_unlock(t);
        size_t i;
        json_t *k;
        json_array_foreach(r < 0 ? NULL : json_object_get(jwks, "keys"), i, k) {
                const char *kid = json_string_value(json_object_get(k, "kid"));
                _cleanup_(freep) char *text = json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS);
                if (!kid || !text)
                        return -ENOMEM;
                int q = store_key_publish(t->store, kid, text, now, until);
                if (q < 0)
                        r = q;
        }
        int q = plan_signing(t, now);
        return r < 0 ? r : q;
}

td_code td_jwks(tokend *t, json_t **ret, td_status *st) {
        _cleanup_(json_decrefp) json_t *jwks = NULL;
        _cleanup_(freep) store_published_key *v = NULL;
        size_t n = 0;

        tokend_rdlock(t);
        int r = jose_keyset_to_jwks(t->keys.keys, &jwks);
        tokend_unlock(t);
        if (r < 0)
                return td_fail(st, TD_INTERNAL, "cannot export the public keys");
        /* The other issuers' keys. A store that cannot answer leaves this
         * issuer's own keys, which are all it signs with. */
        r = store_keys_list(t->store, (int64_t) time(NULL), &v, &n);
        json_t *keys = json_object_get(jwks, "keys");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                bool have = false;
                size_t j;
                json_t *k;
                json_array_foreach(keys, j, k)
                        have = have || streq(json_string_value(json_object_get(k, "kid")) ?: "", v[i].kid);
                /* Only a usable public key (tokend-fleetkeys.h), as verify takes them. */
                json_t *jwk = NULL;
                if (!have && fleet_key_from_row(&v[i], NULL, &jwk) >= 0 && json_array_append_new(keys, jwk) < 0)
                        return td_fail(st, TD_INTERNAL, "out of memory");
        }
        *ret = TAKE_PTR(jwks);
        return TD_OK;
}
