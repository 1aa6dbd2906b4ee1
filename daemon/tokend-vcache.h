/* SPDX-License-Identifier: MIT */
/* The verified-token cache: which access tokens passed a full check
 * (signature, claims, device known, not revoked and owned by sub, jti not
 * revoked) a moment ago, so that the same token again (pam_jwt's account
 * phase after its auth phase, a service verifying its bearer token per
 * request) skips the signature check and, when only this process writes
 * the store (SQLite), the store reads of the device and the jti; with a
 * shared store (PostgreSQL, other tokend revoke too) those reads stay.
 * Everything else is checked again on every verify: issuer, audience (the
 * service), exp/nbf/iat, the user (tokend-usercache.h), the caller's user
 * and rate limits.
 *
 * Fixed memory: VCACHE_SLOTS slots allocated once (an open-addressing hash
 * table like the rate limiter's); when the probed slots are full the
 * oldest entry is evicted, so a flood of unique tokens cannot grow it. An
 * entry holds no token, only keyed BLAKE2b hashes (a per-process random
 * key: nobody can aim collisions or learn anything from the table) of the
 * token, its device id, jti and user. It answers until the token's exp
 * (never after) and at most VCACHE_MAX_AGE seconds after it was added,
 * and is dropped at once by a revocation of its device (vcache_drop_device)
 * or jti (vcache_drop_jti), by an enrolment of its user (which may evict
 * the user's dead devices: vcache_drop_user), and by vcache_flush (key
 * reload, pruning): the store calls these after every such write, whichever
 * operation made it (store_set_watch in tokend.c). A check that raced with
 * a drop is not added (the generation of vcache_lookup). Thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VCACHE_SLOTS 4096U
#define VCACHE_MAX_AGE ((int64_t) 10) /* seconds an entry answers at most */
#define VCACHE_KEY_LEN 32U

typedef struct vcache vcache;

/* The keyed hash of one token (vcache_lookup's, for vcache_add). */
typedef struct vcache_key {
        uint8_t h[VCACHE_KEY_LEN];
        uint64_t gen; /* the cache's generation when it was looked up */
} vcache_key;

/* 0 and *ret (free with vcache_free, which accepts NULL), or -ENOMEM. */
int vcache_new(vcache **ret);
void vcache_free(vcache *c);

/* Hash token (len bytes) into *ret_key; true if it passed a full check
 * that still holds at now (unix seconds). */
bool vcache_lookup(vcache *c, const char *token, size_t len, int64_t now, vcache_key *ret_key);

/* Remember that the token of key passed a full check at now (its exp,
 * device id, jti and user as strings), unless a drop or flush came after
 * its vcache_lookup, or exp <= now. */
void vcache_add(vcache *c, const vcache_key *key, int64_t now, int64_t exp, const char *device_id,
                const char *jti, const char *user);

/* Drop every entry of this device, jti or user; call after the store
 * committed the revocation (or the enrolment). */
void vcache_drop_device(vcache *c, const char *device_id);
void vcache_drop_jti(vcache *c, const char *jti);
void vcache_drop_user(vcache *c, const char *user);

/* Drop everything (keys or configuration reloaded, rows pruned). */
void vcache_flush(vcache *c);

/* Entries that would still answer at now. */
size_t vcache_count(vcache *c, int64_t now);

/* Bytes the cache holds (a constant: it never allocates after vcache_new). */
size_t vcache_memory(const vcache *c);
