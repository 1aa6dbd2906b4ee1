/* SPDX-License-Identifier: MIT */
/* The other issuers' keys, for verify on a shared store (PostgreSQL): the
 * public keys published through the store (store_keys_list), held in
 * memory and read again on a kid not known yet (at most once per
 * FLEET_KEYS_COOLDOWN) or when older than FLEET_KEYS_MAX_AGE, so a verify
 * does not read SQL each time. Rows are foreign input: each JWK is parsed
 * by jose_key_from_jwk (public EdDSA/ES256/RS256/PS256 keys only, a
 * private member refuses the row), its kid must be the row's, at most
 * STORE_KEYS_MAX keys of at most STORE_JWK_MAX bytes. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "jose-claims.h"
#include "jose-key.h"
#include "jose-keyset.h"
#include "tokend-keydir.h"
#include "tokend-store.h"

#define FLEET_KEYS_COOLDOWN 5  /* seconds between reads asked for by unknown kids */
#define FLEET_KEYS_MAX_AGE 60  /* seconds a read is used before the next verify reads again */

typedef struct fleet_keys fleet_keys;

/* A cache of store's published keys (store borrowed, must outlive it).
 * 0 or -ENOMEM. */
int fleet_keys_new(tokend_store *store, fleet_keys **ret);
/* Accepts NULL. No verify may be running. */
void fleet_keys_free(fleet_keys *f);

/* at_verify (at_reverify when reverify) against local, this issuer's own
 * keys; a token of a kid local does not have is checked against the
 * published keys of f (f NULL: none), a key only while its publication
 * lasts (retire_after > chk->now). Thread-safe. Returns at_verify's codes
 * (-ENOKEY: no key has that kid), or -EBUSY when the store could not be
 * read for a kid not known yet (a 503, not a refusal). */
_warn_unused_result_ int fleet_keys_verify(fleet_keys *f, const jose_keyset *local, bool reverify,
                                           const char *token, size_t len, const at_check *chk, at_claims *ret);

/* The key and JWK of a published row, checked as above: 0 with *ret_key
 * and *ret_jwk (either may be NULL: not wanted; a new reference), or
 * -EPERM (private member), -EOPNOTSUPP, -EKEYREJECTED, -EBADMSG (not a
 * JSON object, kid not the row's), -ENOMEM. */
int fleet_key_from_row(const store_published_key *p, jose_key **ret_key, json_t **ret_jwk);

/* Which of this issuer's keys signs ([Keys] PublishBeforeSigning=): a new
 * key signs only once it has been published through the store for the
 * delay, so verifiers' caches know it first. Until then the local key
 * published most recently that has been published that long signs, else
 * the key that signed before, else the active key (no older key: it signs
 * at once). */
typedef struct signing_state {
        char active[STORE_KID_MAX + 1]; /* kid of keydir.active when planned */
        int64_t active_from;            /* unix time it signs from; INT64_MAX: not published yet */
        char signer[STORE_KID_MAX + 1]; /* kid that signs until then */
} signing_state;

typedef struct signing_plan signing_plan;

/* 0 or -ENOMEM. */
int signing_plan_new(signing_plan **ret);
/* Accepts NULL. */
void signing_plan_free(signing_plan *p);

/* Plan the keys kd (the running ones: the caller holds what keeps them)
 * from the published rows v[n] (store_keys_list at now) and delay seconds
 * (0: the active key signs at once). *ret: the new plan. true when it
 * differs from the previous one. Thread-safe. */
bool signing_plan_update(signing_plan *p, const keydir *kd, const store_published_key *v, size_t n, int64_t delay,
                         int64_t now, signing_state *ret);

/* The key of kd that signs at now (borrowed from kd): kd->active when no
 * plan holds it back. p NULL: kd->active. Thread-safe. */
const jose_key *signing_plan_key(signing_plan *p, const keydir *kd, int64_t now);
