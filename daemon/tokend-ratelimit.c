/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "tokend-ratelimit.h"

typedef struct slot {
        uint8_t key[16];   /* keyed hash of the key string; all-zero = empty */
        uint8_t tag[8];    /* keyed hash of the tag; all-zero = none */
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

/* The tag's keyed hash (8 bytes: a BLAKE2b of another output length than
 * the key's, so never equal to one), or all-zero for no tag. */
static void tag_hash(const ratelimit *rl, const char *tag, uint8_t out[8]) {
        memset(out, 0, 8);
        if (!tag)
                return;
        crypto_generichash(out, 8, (const uint8_t *) tag, strlen(tag), rl->hashkey, sizeof rl->hashkey);
        out[0] |= 1;
}

/* Find the slot for key; with create, take an empty/expired slot or evict
 * the oldest among the probed ones. Called with the lock held. */
static slot *lookup(ratelimit *rl, const char *key, const char *tag, int64_t now, bool create) {
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
        tag_hash(rl, tag, victim->tag);
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
        int64_t r = slot_wait(rl, lookup(rl, key, NULL, now, false), 0, now);
        pthread_mutex_unlock(&rl->lock);
        return r;
}

/* Check and count one (ratelimit_take, ratelimit_reserve); *ret_ticket
 * (may be NULL) gets the window it was counted in. */
static int64_t take(ratelimit *rl, const char *key, const char *tag, unsigned max, int64_t now,
                    int64_t *ret_ticket) {
        pthread_mutex_lock(&rl->lock);
        slot *s = lookup(rl, key, tag, now, true); /* creating always finds a slot (evicting the oldest) */
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
        return take(rl, key, NULL, max, now, NULL);
}

void ratelimit_fail(ratelimit *rl, const char *key, int64_t now) {
        pthread_mutex_lock(&rl->lock);
        slot *s = lookup(rl, key, NULL, now, true);
        if (s && s->count < UINT32_MAX)
                s->count++;
        pthread_mutex_unlock(&rl->lock);
}

/* Empty slot s (may be NULL), merging what its open window held into *acc
 * (may be NULL). Called with the lock held. */
static void slot_clear(const ratelimit *rl, slot *s, int64_t now, ratelimit_cleared *acc) {
        if (!s)
                return;
        if (acc && now - s->start < rl->window) {
                acc->failures = s->count > acc->failures ? s->count : acc->failures;
                acc->limited = acc->limited || slot_wait(rl, s, 0, now) > 0;
        }
        memset(s, 0, sizeof *s);
}

void ratelimit_reset(ratelimit *rl, const char *key) {
        pthread_mutex_lock(&rl->lock);
        slot_clear(rl, lookup(rl, key, NULL, 0, false), 0, NULL);
        pthread_mutex_unlock(&rl->lock);
}

void ratelimit_clear(ratelimit *rl, const char *key, int64_t now, ratelimit_cleared *acc) {
        pthread_mutex_lock(&rl->lock);
        /* lookup() restarts an expired window, which then holds nothing */
        slot_clear(rl, lookup(rl, key, NULL, now, false), now, acc);
        pthread_mutex_unlock(&rl->lock);
}

void ratelimit_clear_tag(ratelimit *rl, const char *tag, int64_t now, ratelimit_cleared *acc) {
        uint8_t h[8];
        if (!tag)
                return; /* untagged counters are not one user's */
        tag_hash(rl, tag, h);
        pthread_mutex_lock(&rl->lock);
        for (size_t i = 0; i < RATELIMIT_SLOTS; i++)
                if (rl->slots[i].key[0] != 0 && memcmp(rl->slots[i].tag, h, sizeof h) == 0)
                        slot_clear(rl, &rl->slots[i], now, acc);
        pthread_mutex_unlock(&rl->lock);
}

int64_t ratelimit_reserve(ratelimit *rl, const char *key, const char *tag, int64_t now, int64_t *ret_ticket) {
        return take(rl, key, tag, 0, now, ret_ticket);
}

void ratelimit_release(ratelimit *rl, const char *key, int64_t ticket) {
        pthread_mutex_lock(&rl->lock);
        slot *s = lookup(rl, key, NULL, ticket, false);
        if (s && s->start == ticket && s->count > 0)
                s->count--;
        pthread_mutex_unlock(&rl->lock);
}
