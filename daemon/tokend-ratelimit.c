/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "tokend-ratelimit.h"

typedef struct slot {
        uint8_t key[16];   /* keyed hash of the key string; all-zero = empty */
        int64_t start;     /* window start */
        unsigned count;
} slot;

struct ratelimit {
        pthread_mutex_t lock;
        unsigned max;
        int64_t window;
        uint8_t hashkey[crypto_shorthash_KEYBYTES];
        slot slots[RATELIMIT_SLOTS];
};

#define PROBE 8U /* open addressing: look at this many slots */

int ratelimit_new(unsigned max, int64_t window, ratelimit **ret) {
        ratelimit *rl = calloc(1, sizeof *rl);
        if (!rl)
                return -ENOMEM;
        pthread_mutex_init(&rl->lock, NULL);
        rl->max = max ? max : 1;
        rl->window = window > 0 ? window : 1;
        randombytes_buf(rl->hashkey, sizeof rl->hashkey);
        *ret = rl;
        return 0;
}

void ratelimit_free(ratelimit *rl) {
        if (!rl)
                return;
        pthread_mutex_destroy(&rl->lock);
        free(rl);
}

static void key_hash(const ratelimit *rl, const char *key, uint8_t out[16], uint64_t *ret_index) {
        /* Keyed BLAKE2b with a per-process key: an attacker cannot aim collisions. */
        crypto_generichash(out, 16, (const uint8_t *) key, strlen(key), rl->hashkey, sizeof rl->hashkey);
        out[0] |= 1; /* never all-zero */
        uint64_t idx;
        memcpy(&idx, out + 8, sizeof idx);
        *ret_index = idx;
}

/* Find the slot for key; with create, take an empty/expired slot or evict
 * the oldest among the probed ones. Called with the lock held. */
static slot *lookup(ratelimit *rl, const char *key, int64_t now, bool create) {
        uint8_t h[16];
        uint64_t idx;
        slot *victim = NULL;

        key_hash(rl, key, h, &idx);
        for (unsigned i = 0; i < PROBE; i++) {
                slot *s = &rl->slots[(idx + i) % RATELIMIT_SLOTS];
                if (memcmp(s->key, h, sizeof h) == 0) {
                        if (now - s->start >= rl->window) { /* window over: start afresh */
                                s->start = now;
                                s->count = 0;
                        }
                        return s;
                }
                if (!create)
                        continue;
                if (s->key[0] == 0 || now - s->start >= rl->window) {
                        if (!victim || victim->key[0] != 0)
                                victim = s;
                } else if (!victim || (victim->key[0] != 0 && s->start < victim->start))
                        victim = s;
        }
        if (!victim)
                return NULL;
        memcpy(victim->key, h, sizeof h);
        victim->start = now;
        victim->count = 0;
        return victim;
}

/* 0 if slot s (may be NULL) allows one more attempt under max (0: the
 * limiter's own), else the seconds until it does (≥ 1). Called with the
 * lock held. */
static int64_t slot_wait(const ratelimit *rl, const slot *s, unsigned max, int64_t now) {
        if (!s || s->count < (max ? max : rl->max))
                return 0;
        int64_t r = s->start + rl->window - now;
        return r < 1 ? 1 : r;
}

int64_t ratelimit_check(ratelimit *rl, const char *key, int64_t now) {
        pthread_mutex_lock(&rl->lock);
        int64_t r = slot_wait(rl, lookup(rl, key, now, false), 0, now);
        pthread_mutex_unlock(&rl->lock);
        return r;
}

/* Check and count one (ratelimit_take, ratelimit_reserve); *ret_ticket
 * (may be NULL) gets the window it was counted in. */
static int64_t take(ratelimit *rl, const char *key, unsigned max, int64_t now, int64_t *ret_ticket) {
        pthread_mutex_lock(&rl->lock);
        slot *s = lookup(rl, key, now, true); /* creating always finds a slot (evicting the oldest) */
        int64_t r = s ? slot_wait(rl, s, max, now) : 1;
        if (r == 0) {
                s->count++;
                if (ret_ticket)
                        *ret_ticket = s->start;
        }
        pthread_mutex_unlock(&rl->lock);
        return r;
}

int64_t ratelimit_take(ratelimit *rl, const char *key, unsigned max, int64_t now) {
        return take(rl, key, max, now, NULL);
}

void ratelimit_fail(ratelimit *rl, const char *key, int64_t now) {
        pthread_mutex_lock(&rl->lock);
        slot *s = lookup(rl, key, now, true);
        if (s && s->count < UINT32_MAX)
                s->count++;
        pthread_mutex_unlock(&rl->lock);
}

void ratelimit_reset(ratelimit *rl, const char *key) {
        pthread_mutex_lock(&rl->lock);
        slot *s = lookup(rl, key, 0, false);
        if (s)
                memset(s, 0, sizeof *s);
        pthread_mutex_unlock(&rl->lock);
}

int64_t ratelimit_reserve(ratelimit *rl, const char *key, int64_t now, int64_t *ret_ticket) {
        return take(rl, key, 0, now, ret_ticket);
}

void ratelimit_release(ratelimit *rl, const char *key, int64_t ticket) {
        pthread_mutex_lock(&rl->lock);
        slot *s = lookup(rl, key, ticket, false);
        if (s && s->start == ticket && s->count > 0)
                s->count--;
        pthread_mutex_unlock(&rl->lock);
}
