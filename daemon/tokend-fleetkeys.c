/* SPDX-License-Identifier: MIT */
/* The published keys as an immutable, reference-counted snapshot: a verify
 * takes a reference under the lock and checks the signature outside it; a
 * read builds a new snapshot and swaps it in. One read at a time: who comes
 * while one runs waits for it and uses its result. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jose-jwk.h"
#include "macro.h"
#include "tokend-fleetkeys.h"
#include "tokend-log.h"

typedef struct snapshot {
        atomic_uint refs;
        unsigned gen;          /* 1, 2, …: which read made it */
        int64_t read_at;       /* CLOCK_MONOTONIC seconds */
        jose_keyset *keys;
        int64_t retire[];      /* retire_after of the i-th key of keys */
} snapshot;

struct fleet_keys {
        tokend_store *store;
        pthread_mutex_t lock;
        pthread_cond_t read_done;
        snapshot *cur;         /* NULL until a read succeeded */
        bool reading;
        bool have_read;        /* a read was made (last_read is set) */
        int64_t last_read;     /* CLOCK_MONOTONIC seconds of the last read, good or failed */
        unsigned gen;
};

static int64_t mono_sec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec;
}

static void snapshot_unref(snapshot *s) {
        if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
                return;
        jose_keyset_free(s->keys);
        free(s);
}

int fleet_key_from_row(const store_published_key *p, jose_key **ret_key, json_t **ret_jwk) {
        _cleanup_(json_decrefp) json_t *jwk = NULL;
        _cleanup_(jose_key_freep) jose_key *k = NULL;
        if (strnlen(p->jwk, sizeof p->jwk) >= sizeof p->jwk)
                return -EBADMSG;
        jwk = json_loads(p->jwk, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(jwk))
                return -EBADMSG;
        int r = jose_key_from_jwk(jwk, &k);
        if (r < 0)
                return r;
        if (jose_key_has_private(k) || strncmp(jose_key_kid(k), p->kid, sizeof p->kid) != 0)
                return -EBADMSG;
        if (ret_key)
                *ret_key = TAKE_PTR(k);
        if (ret_jwk)
                *ret_jwk = TAKE_PTR(jwk);
        return 0;
}

static int snapshot_read(tokend_store *store, unsigned gen, snapshot **ret) {
        _cleanup_(freep) store_published_key *v = NULL;
        size_t n = 0;
        int r = store_keys_list(store, (int64_t) time(NULL), &v, &n);
        if (r < 0)
                return r;
        if (n > STORE_KEYS_MAX)
                n = STORE_KEYS_MAX;
        snapshot *s = calloc(1, sizeof *s + n * sizeof(int64_t));
        if (!s)
                return -ENOMEM;
        atomic_init(&s->refs, 1);
        s->gen = gen;
        s->read_at = mono_sec();
        if (jose_keyset_new(&s->keys) < 0) {
                free(s);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                jose_key *k = NULL;
                r = fleet_key_from_row(&v[i], &k, NULL);
                if (r >= 0 && jose_keyset_add(s->keys, k) < 0) {
                        jose_key_free(k);
                        r = -EEXIST;
                }
                if (r < 0) { /* not a key to verify with: left out, as a JWKS reader does */
                        log_debug("published key %zu of %zu left out: %s", i + 1, n, strerror(-r));
                        continue;
                }
                s->retire[jose_keyset_size(s->keys) - 1] = v[i].retire_after;
        }
        *ret = s;
        return 0;
}

/* The current snapshot (a new reference, NULL when none), read first when
 * there is none or it is older than FLEET_KEYS_MAX_AGE, or when it is the
 * one of generation tried (a kid was missing in it) — each at most once
 * per FLEET_KEYS_COOLDOWN. *ret_read: the read's result, 1 when none was
 * made. */
static snapshot *fleet_get(fleet_keys *f, unsigned tried, int *ret_read) {
        *ret_read = 1;
        pthread_mutex_lock(&f->lock);
        while (f->reading)
                pthread_cond_wait(&f->read_done, &f->lock);
        int64_t now = mono_sec();
        bool want = !f->cur || now - f->cur->read_at >= FLEET_KEYS_MAX_AGE || (tried && f->cur->gen == tried);
        if (want && (!f->have_read || now - f->last_read >= FLEET_KEYS_COOLDOWN)) {
                snapshot *n = NULL;
                f->reading = f->have_read = true;
                f->last_read = now;
                unsigned gen = ++f->gen;
                pthread_mutex_unlock(&f->lock);
                int r = snapshot_read(f->store, gen, &n);
                pthread_mutex_lock(&f->lock);
                if (r >= 0) {
                        snapshot_unref(f->cur);
                        f->cur = n;
                }
                f->reading = false;
                pthread_cond_broadcast(&f->read_done);
                *ret_read = r;
        }
        snapshot *s = f->cur;
        if (s)
                atomic_fetch_add(&s->refs, 1);
        pthread_mutex_unlock(&f->lock);
        return s;
}

static int snapshot_verify(const snapshot *s, bool reverify, const char *token, size_t len, const at_check *chk,
                           at_claims *ret) {
        at_claims cl = { 0 };
        int r = reverify ? at_reverify(s->keys, token, len, chk, &cl) : at_verify(s->keys, token, len, chk, &cl);
        if (r < 0)
                return r;
        for (size_t i = 0; i < jose_keyset_size(s->keys); i++)
                if (streq(jose_key_kid(jose_keyset_get(s->keys, i)), cl.kid)) {
                        if (s->retire[i] <= chk->now)
                                break; /* no longer published: a key this issuer does not know */
                        *ret = cl;
                        return 0;
                }
        at_claims_done(&cl);
        return -ENOKEY;
}

int fleet_keys_verify(fleet_keys *f, const jose_keyset *local, bool reverify, const char *token, size_t len,
                      const at_check *chk, at_claims *ret) {
        int r = reverify ? at_reverify(local, token, len, chk, ret) : at_verify(local, token, len, chk, ret);
        if (r != -ENOKEY || !f)
                return r;
        int rd;
        unsigned tried = 0;
        snapshot *s = fleet_get(f, 0, &rd);
        if (s) {
                r = snapshot_verify(s, reverify, token, len, chk, ret);
                tried = s->gen;
                snapshot_unref(s);
                if (r != -ENOKEY)
                        return r;
        }
        if (rd <= 0) /* read just now: the kid is not published (or the store did not answer) */
                return rd < 0 ? -EBUSY : -ENOKEY;
        s = fleet_get(f, tried, &rd);
        if (!s || s->gen == tried) {
                snapshot_unref(s);
                return rd < 0 ? -EBUSY : -ENOKEY;
        }
        r = snapshot_verify(s, reverify, token, len, chk, ret);
        snapshot_unref(s);
        return r;
}

int fleet_keys_new(tokend_store *store, fleet_keys **ret) {
        fleet_keys *f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->store = store;
        if (pthread_mutex_init(&f->lock, NULL) != 0) {
                free(f);
                return -ENOMEM;
        }
        if (pthread_cond_init(&f->read_done, NULL) != 0) {
                pthread_mutex_destroy(&f->lock);
                free(f);
                return -ENOMEM;
        }
        *ret = f;
        return 0;
}

void fleet_keys_free(fleet_keys *f) {
        if (!f)
                return;
        snapshot_unref(f->cur);
        pthread_cond_destroy(&f->read_done);
        pthread_mutex_destroy(&f->lock);
        free(f);
}

/* ------------------------------------------------------------ signing */

struct signing_plan {
        pthread_mutex_t lock;
        bool set;              /* a delay holds the active key back */
        signing_state cur;
};

int signing_plan_new(signing_plan **ret) {
        signing_plan *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        if (pthread_mutex_init(&p->lock, NULL) != 0) {
                free(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

void signing_plan_free(signing_plan *p) {
        if (!p)
                return;
        pthread_mutex_destroy(&p->lock);
        free(p);
}

static const store_published_key *row_of(const store_published_key *v, size_t n, const char *kid) {
        for (size_t i = 0; i < n; i++)
                if (streq(v[i].kid, kid))
                        return &v[i];
        return NULL;
}

static void set_kid(char dst[static STORE_KID_MAX + 1], const char *kid) {
        size_t n = strnlen(kid, STORE_KID_MAX);

        memset(dst, 0, STORE_KID_MAX + 1);
        memcpy(dst, kid, n);
}

bool signing_plan_update(signing_plan *p, const keydir *kd, const store_published_key *v, size_t n, int64_t delay,
                         int64_t now, signing_state *ret) {
        signing_state s;
        const char *active = jose_key_kid(kd->active);
        const store_published_key *row = row_of(v, n, active);

        memset(&s, 0, sizeof s);
        set_kid(s.active, active);
        s.active_from = delay <= 0 ? 0 : row && row->published <= INT64_MAX - delay ? row->published + delay : INT64_MAX;
        pthread_mutex_lock(&p->lock);
        const char *signer = active;
        if (s.active_from > now) {
                const store_published_key *best = NULL;
                for (size_t i = 0; i < jose_keyset_size(kd->keys); i++) {
                        const char *kid = jose_key_kid(jose_keyset_get(kd->keys, i));
                        const store_published_key *r = streq(kid, active) ? NULL : row_of(v, n, kid);
                        if (r && r->published <= now - delay && (!best || r->published > best->published))
                                best = r;
                }
                if (best)
                        signer = best->kid;
                else if (jose_keyset_find(kd->keys, p->cur.signer)) /* none has been published long enough */
                        signer = p->cur.signer;
        }
        set_kid(s.signer, signer);
        bool changed = memcmp(&s, &p->cur, sizeof s) != 0;
        p->cur = s;
        p->set = delay > 0;
        pthread_mutex_unlock(&p->lock);
        *ret = s;
        return changed;
}

const jose_key *signing_plan_key(signing_plan *p, const keydir *kd, int64_t now) {
        const jose_key *k = NULL;
        if (!p)
                return kd->active;
        pthread_mutex_lock(&p->lock);
        if (p->set && (!streq(p->cur.active, jose_key_kid(kd->active)) || now < p->cur.active_from))
                k = jose_keyset_find(kd->keys, p->cur.signer); /* planned for other keys: the one that signed */
        pthread_mutex_unlock(&p->lock);
        return k ?: kd->active;
}
