/* SPDX-License-Identifier: MIT */
/* Key sets: the keys a verifier accepts, each with a kid unique within the
 * set (a token names its key by kid). Their JWKS form is in jose-jwk.h. */
#pragma once

#include <stddef.h>

#include "jose-key.h"
#include "macro.h"

typedef struct jose_keyset jose_keyset;

/* A new empty set in *ret. Returns 0 or -ENOMEM. */
int jose_keyset_new(jose_keyset **ret);
/* Takes ownership of key on success only. -EEXIST if a key with the same
 * kid is present (a keyset with duplicate kids is never built); -EINVAL
 * for NULL; -ENOMEM. */
int jose_keyset_add(jose_keyset *ks, jose_key *key);
/* Number of keys; 0 for NULL. */
size_t jose_keyset_size(const jose_keyset *ks);
/* The i-th key in insertion order (owned by the set), NULL past the end. */
const jose_key *jose_keyset_get(const jose_keyset *ks, size_t i);
/* Exact kid match or NULL. */
const jose_key *jose_keyset_find(const jose_keyset *ks, const char *kid);

/* Accepts NULL. Frees every key. */
void jose_keyset_free(jose_keyset *ks);
DEFINE_TRIVIAL_CLEANUP_FUNC(jose_keyset *, jose_keyset_free);
