/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "macro.h"
#include "tokend-device-grants.h"
#include "tokend-ratelimit.h"

#define USER_CODE_ALPHABET "BCDFGHJKLMNPQRSTVWXZ"

typedef enum slot_state {
        SLOT_FREE = 0,
        SLOT_PENDING,
        SLOT_CLAIMED,  /* the approver's login runs */
        SLOT_APPROVED, /* answer waits for the device's poll */
        SLOT_DENIED,
} slot_state;

typedef struct grant_slot {
        slot_state state;
        uint16_t generation; /* of the handles given out for this slot */
        uint8_t code_hash[crypto_hash_sha256_BYTES];
        char user_code[DEVICE_USER_CODE_LEN + 1];
        char caller_key[DEVICE_CALLER_KEY_MAX + 1];
        device_request req;
        int64_t next_poll;
        int64_t interval;
        char *answer; /* SLOT_APPROVED: the token answer (secret) */
} grant_slot;

struct device_grants {
        pthread_mutex_t lock;
        ratelimit *failures; /* wrong user codes per caller */
        uint8_t csrf_key[crypto_auth_hmacsha256_KEYBYTES];
        int64_t all_window;  /* the minute of all_failures */
        unsigned all_failures;
        grant_slot slots[DEVICE_SLOTS];
};

static void slot_clear(grant_slot *s) {
        uint16_t gen = s->generation;
        erase_and_free(s->answer);
        sodium_memzero(s, sizeof *s);
        s->generation = (uint16_t) (gen + 1);
}

/* Free the slots whose time is up. Lock held. */
static void expire(device_grants *g, int64_t now) {
        for (size_t i = 0; i < DEVICE_SLOTS; i++) {
                grant_slot *s = &g->slots[i];
                /* A claimed slot is left to its login, which finishes it. An
                 * expired pending one stays until polled (expired_token) or
                 * until its slot is needed, for one more lifetime at most. */
                if (s->state != SLOT_FREE && s->state != SLOT_CLAIMED && now >= s->req.expires + DEVICE_EXPIRES_IN)
                        slot_clear(s);
        }
}

int device_grants_new(device_grants **ret) {
        device_grants *g = calloc(1, sizeof *g);
        if (!g)
                return -ENOMEM;
        if (ratelimit_new(DEVICE_CODE_FAILURES, DEVICE_FAILURE_WINDOW, &g->failures) < 0) {
                free(g);
                return -ENOMEM;
        }
        pthread_mutex_init(&g->lock, NULL);
        crypto_auth_hmacsha256_keygen(g->csrf_key);
        *ret = g;
        return 0;
}

void device_grants_free(device_grants *g) {
        if (!g)
                return;
        for (size_t i = 0; i < DEVICE_SLOTS; i++)
                slot_clear(&g->slots[i]);
        ratelimit_free(g->failures);
        sodium_memzero(g->csrf_key, sizeof g->csrf_key);
        pthread_mutex_destroy(&g->lock);
        free(g);
}

int device_grants_csrf(const device_grants *g, const char *cookie, char out[static DEVICE_CSRF_LEN + 1]) {
        uint8_t mac[crypto_auth_hmacsha256_BYTES];
        size_t l = strnlen(cookie, 65);
        if (l == 0 || l > 64)
                return -EINVAL;
        crypto_auth_hmacsha256(mac, (const uint8_t *) cookie, l, g->csrf_key);
        sodium_bin2base64(out, DEVICE_CSRF_LEN + 1, mac, sizeof mac, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(mac, sizeof mac);
        return 0;
}

bool device_user_code_normalize(const char *in, char out[static DEVICE_USER_CODE_LEN + 1]) {
        size_t n = 0;
        for (const char *p = in; *p; p++) {
                char c = *p;
                if (c == '-' || c == ' ')
                        continue;
                if (c >= 'a' && c <= 'z')
                        c = (char) (c - 'a' + 'A');
                if (n == DEVICE_USER_CODE_LEN || !strchr(USER_CODE_ALPHABET, c) || c == 0)
                        return false;
                out[n++] = c;
        }
        out[n] = 0;
        return n == DEVICE_USER_CODE_LEN;
}

static void user_code_random(char out[static DEVICE_USER_CODE_LEN + 1]) {
        for (size_t i = 0; i < DEVICE_USER_CODE_LEN; i++)
                out[i] = USER_CODE_ALPHABET[randombytes_uniform(sizeof USER_CODE_ALPHABET - 1)];
        out[DEVICE_USER_CODE_LEN] = 0;
}

int device_grants_start(device_grants *g, const char *caller_key, const device_request *req, int64_t now,
                        char device_code[static DEVICE_CODE_LEN + 1],
                        char user_code[static DEVICE_USER_CODE_LEN + 1]) {
        grant_slot *free_slot = NULL;
        unsigned mine = 0;
        int r = 0;

        if (b64url_random(32, device_code, DEVICE_CODE_LEN + 1) < 0)
                return -EIO;
        pthread_mutex_lock(&g->lock);
        expire(g, now);
        for (size_t i = 0; i < DEVICE_SLOTS; i++) {
                grant_slot *s = &g->slots[i];
                if (s->state == SLOT_FREE) {
                        if (!free_slot)
                                free_slot = s;
                } else if (s->state == SLOT_PENDING && now < s->req.expires && streq(s->caller_key, caller_key))
                        mine++;
        }
        if (mine >= DEVICE_PENDING_PER_CALLER)
                r = -EDQUOT;
        else if (!free_slot)
                r = -EUSERS;
        else {
                /* A user code unique among the live ones (collisions are rare:
                 * 256 of 2.5e10). */
                bool clash;
                do {
                        user_code_random(user_code);
                        clash = false;
                        for (size_t i = 0; i < DEVICE_SLOTS; i++)
                                clash = clash || (g->slots[i].state != SLOT_FREE &&
                                                  streq(g->slots[i].user_code, user_code));
                } while (clash);
                grant_slot *s = free_slot;
                s->state = SLOT_PENDING;
                crypto_hash_sha256(s->code_hash, (const uint8_t *) device_code, strlen(device_code));
                memcpy(s->user_code, user_code, sizeof s->user_code);
                snprintf(s->caller_key, sizeof s->caller_key, "%s", caller_key);
                s->req = *req;
                s->req.expires = now + DEVICE_EXPIRES_IN;
                s->interval = DEVICE_INTERVAL;
                s->next_poll = now; /* the first poll may come at once */
        }
        pthread_mutex_unlock(&g->lock);
        if (r < 0)
                sodium_memzero(device_code, DEVICE_CODE_LEN + 1);
        return r;
}

static uint64_t handle_of(const device_grants *g, const grant_slot *s) {
        return (uint64_t) (s - g->slots) | ((uint64_t) s->generation << 16);
}

/* The slot of a handle while it is still the same authorization, or NULL. */
static grant_slot *slot_of_handle(device_grants *g, uint64_t handle) {
        uint64_t i = handle & 0xffff;
        if (i >= DEVICE_SLOTS || g->slots[i].generation != (uint16_t) (handle >> 16))
                return NULL;
        return &g->slots[i];
}

int device_grants_find(device_grants *g, const char *caller_key, const char *user_code, int64_t now,
                       device_request *ret, uint64_t *ret_handle, int64_t *ret_retry) {
        char code[DEVICE_USER_CODE_LEN + 1];
        grant_slot *found = NULL;
        int r = -ENOENT;

        int64_t wait = ratelimit_check(g->failures, caller_key, now);
        pthread_mutex_lock(&g->lock);
        if (now / 60 != g->all_window) {
                g->all_window = now / 60;
                g->all_failures = 0;
        }
        if (wait == 0 && g->all_failures >= DEVICE_CODE_FAILURES_ALL)
                wait = 60 - now % 60;
        if (wait > 0) {
                pthread_mutex_unlock(&g->lock);
                *ret_retry = wait;
                return -EAGAIN;
        }
        if (device_user_code_normalize(user_code, code))
                /* Every slot is compared, in constant time. */
                for (size_t i = 0; i < DEVICE_SLOTS; i++) {
                        grant_slot *s = &g->slots[i];
                        bool eq = sodium_memcmp(s->user_code, code, DEVICE_USER_CODE_LEN) == 0;
                        if (eq && s->state == SLOT_PENDING && now < s->req.expires)
                                found = s;
                }
        if (found) {
                *ret = found->req;
                *ret_handle = handle_of(g, found);
                r = 0;
        } else
                g->all_failures++;
        pthread_mutex_unlock(&g->lock);
        if (r < 0)
                ratelimit_fail(g->failures, caller_key, now);
        sodium_memzero(code, sizeof code);
        return r;
}

int device_grants_claim(device_grants *g, uint64_t handle, int64_t now) {
        int r = -ENOENT;
        pthread_mutex_lock(&g->lock);
        grant_slot *s = slot_of_handle(g, handle);
        if (s && s->state == SLOT_PENDING && now < s->req.expires) {
                s->state = SLOT_CLAIMED;
                r = 0;
        }
        pthread_mutex_unlock(&g->lock);
        return r;
}

void device_grants_finish(device_grants *g, uint64_t handle, char *answer) {
        pthread_mutex_lock(&g->lock);
        grant_slot *s = slot_of_handle(g, handle);
        if (s && s->state == SLOT_CLAIMED) {
                s->state = answer ? SLOT_APPROVED : SLOT_PENDING;
                s->answer = TAKE_PTR(answer);
        }
        pthread_mutex_unlock(&g->lock);
        erase_and_free(answer); /* not taken: the slot went away */
}

int device_grants_deny(device_grants *g, uint64_t handle) {
        int r = -ENOENT;
        pthread_mutex_lock(&g->lock);
        grant_slot *s = slot_of_handle(g, handle);
        if (s && s->state == SLOT_PENDING) {
                s->state = SLOT_DENIED;
                r = 0;
        }
        pthread_mutex_unlock(&g->lock);
        return r;
}

int device_grants_poll(device_grants *g, const char *device_code, const char *client_id, int64_t now,
                       char **ret_answer) {
        uint8_t h[crypto_hash_sha256_BYTES];
        grant_slot *found = NULL;
        int r;

        if (strlen(device_code) != DEVICE_CODE_LEN)
                return -ENOENT;
        crypto_hash_sha256(h, (const uint8_t *) device_code, DEVICE_CODE_LEN);
        pthread_mutex_lock(&g->lock);
        for (size_t i = 0; i < DEVICE_SLOTS; i++) {
                grant_slot *s = &g->slots[i];
                if (sodium_memcmp(s->code_hash, h, sizeof h) == 0 && s->state != SLOT_FREE)
                        found = s;
        }
        if (!found)
                r = -ENOENT;
        else if (client_id && !streq(client_id, found->req.client_id))
                r = -EPERM;
        else if (found->state == SLOT_APPROVED) {
                *ret_answer = TAKE_PTR(found->answer);
                slot_clear(found);
                r = 0;
        } else if (found->state == SLOT_DENIED) {
                slot_clear(found);
                r = -EACCES;
        } else if (now >= found->req.expires) {
                r = -ETIME;
        } else if (now < found->next_poll) {
                found->interval += DEVICE_INTERVAL; /* RFC 8628 §3.5 */
                found->next_poll = now + found->interval;
                r = -EBUSY;
        } else {
                found->next_poll = now + found->interval;
                r = -EINPROGRESS;
        }
        pthread_mutex_unlock(&g->lock);
        sodium_memzero(h, sizeof h);
        return r;
}
