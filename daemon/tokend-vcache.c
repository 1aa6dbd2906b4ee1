/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "tokend-vcache.h"

#define TAG_LEN 16U
#define PROBE 8U /* open addressing: look at this many slots */

typedef struct slot {
        uint8_t key[VCACHE_KEY_LEN]; /* keyed hash of the token; all-zero = empty */
        int64_t added, until;        /* answers while added <= now < until */
        uint8_t device[TAG_LEN];     /* keyed hashes of device id, jti, user */
        uint8_t jti[TAG_LEN];
        uint8_t user[TAG_LEN];
} slot;

struct vcache {
        pthread_mutex_t lock;
        uint64_t gen; /* bumped by every drop and flush */
        uint8_t hashkey[crypto_generichash_KEYBYTES];
        slot slots[VCACHE_SLOTS];
};

int vcache_new(vcache **ret) {
        vcache *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        pthread_mutex_init(&c->lock, NULL);
        randombytes_buf(c->hashkey, sizeof c->hashkey);
        *ret = c;
        return 0;
}

void vcache_free(vcache *c) {
        if (!c)
                return;
        pthread_mutex_destroy(&c->lock);
        sodium_memzero(c->hashkey, sizeof c->hashkey);
        free(c);
}

static void hash(const vcache *c, const void *p, size_t n, uint8_t *out, size_t out_len) {
        /* The domain byte keeps a token from ever hashing like a device id. */
        crypto_generichash_state st;
        uint8_t domain = (uint8_t) out_len;
        crypto_generichash_init(&st, c->hashkey, sizeof c->hashkey, out_len);
        crypto_generichash_update(&st, &domain, 1);
        crypto_generichash_update(&st, p, n);
        crypto_generichash_final(&st, out, out_len);
}

static void tag(const vcache *c, const char *s, uint8_t out[static TAG_LEN]) {
        hash(c, s ? s : "", s ? strlen(s) : 0, out, TAG_LEN);
}

static bool live(const slot *s, int64_t now) {
        return s->key[0] != 0 && s->added <= now && now < s->until;
}

static size_t first_slot(const uint8_t key[static VCACHE_KEY_LEN]) {
        uint64_t idx;
        memcpy(&idx, key + 8, sizeof idx);
        return (size_t) (idx % VCACHE_SLOTS);
}

bool vcache_lookup(vcache *c, const char *token, size_t len, int64_t now, vcache_key *ret_key) {
        bool hit = false;
        hash(c, token, len, ret_key->h, sizeof ret_key->h);
        ret_key->h[0] |= 1; /* never all-zero */
        size_t i0 = first_slot(ret_key->h);
        pthread_mutex_lock(&c->lock);
        ret_key->gen = c->gen;
        for (unsigned i = 0; i < PROBE && !hit; i++) {
                const slot *s = &c->slots[(i0 + i) % VCACHE_SLOTS];
                hit = sodium_memcmp(s->key, ret_key->h, VCACHE_KEY_LEN) == 0 && live(s, now);
        }
        pthread_mutex_unlock(&c->lock);
        return hit;
}

void vcache_add(vcache *c, const vcache_key *key, int64_t now, int64_t exp, const char *device_id,
                const char *jti, const char *user) {
        slot n = { .added = now, .until = exp < now + VCACHE_MAX_AGE ? exp : now + VCACHE_MAX_AGE };
        slot *victim = NULL;

        if (n.until <= now)
                return;
        memcpy(n.key, key->h, sizeof n.key);
        tag(c, device_id, n.device);
        tag(c, jti, n.jti);
        tag(c, user, n.user);
        size_t i0 = first_slot(key->h);
        pthread_mutex_lock(&c->lock);
        if (c->gen != key->gen)
                goto out; /* a revocation may have come after this token's check */
        for (unsigned i = 0; i < PROBE; i++) {
                slot *s = &c->slots[(i0 + i) % VCACHE_SLOTS];
                if (memcmp(s->key, n.key, sizeof n.key) == 0 || !live(s, now)) {
                        victim = s;
                        break;
                }
                if (!victim || s->added < victim->added)
                        victim = s; /* all live: evict the oldest */
        }
        *victim = n;
out:
        pthread_mutex_unlock(&c->lock);
}

/* Drop the entries whose tag at offset off equals t (all with flush). */
static void drop(vcache *c, size_t off, const uint8_t *t) {
        pthread_mutex_lock(&c->lock);
        c->gen++;
        for (size_t i = 0; i < VCACHE_SLOTS; i++) {
                slot *s = &c->slots[i];
                if (!t || memcmp((const uint8_t *) s + off, t, TAG_LEN) == 0)
                        *s = (slot){ 0 };
        }
        pthread_mutex_unlock(&c->lock);
}

void vcache_drop_device(vcache *c, const char *device_id) {
        uint8_t t[TAG_LEN];
        tag(c, device_id, t);
        drop(c, offsetof(slot, device), t);
}

void vcache_drop_jti(vcache *c, const char *jti) {
        uint8_t t[TAG_LEN];
        tag(c, jti, t);
        drop(c, offsetof(slot, jti), t);
}

void vcache_drop_user(vcache *c, const char *user) {
        uint8_t t[TAG_LEN];
        tag(c, user, t);
        drop(c, offsetof(slot, user), t);
}

void vcache_flush(vcache *c) {
        drop(c, 0, NULL);
}

size_t vcache_count(vcache *c, int64_t now) {
        size_t n = 0;
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < VCACHE_SLOTS; i++)
                n += live(&c->slots[i], now);
        pthread_mutex_unlock(&c->lock);
        return n;
}

size_t vcache_memory(const vcache *c) {
        return sizeof *c;
}
