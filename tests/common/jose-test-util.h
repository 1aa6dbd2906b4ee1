/* SPDX-License-Identifier: MIT */
/* Shared by the JOSE unit tests (test-jws, test-claims): a cmocka group
 * fixture holding one freshly generated key per algorithm in one keyset,
 * and the "$KID" template helper their token tables use. */
#pragma once

#include <stddef.h>

#include "jose-key.h"
#include "jose-keyset.h"

#define TEST_N_ALGS 4U

/* EdDSA, ES256, RS256, PS256: the order of jose_fixture.key. */
extern const jose_alg test_algs[TEST_N_ALGS];

typedef struct jose_fixture {
        jose_keyset *ks;
        const jose_key *key[TEST_N_ALGS]; /* borrowed from ks, in the order of test_algs */
} jose_fixture;

/* cmocka group setup/teardown: *state becomes a jose_fixture. */
int jose_fixture_setup(void **state);
int jose_fixture_teardown(void **state);

/* The fixture's keyset, and its key for alg (fails the test if none). */
const jose_keyset *fks(void **state);
const jose_key *fkey(void **state, jose_alg alg);

/* tmpl with every "$KID" replaced by kid; malloc'ed, never NULL. */
char *subst_kid(const char *tmpl, const char *kid);
