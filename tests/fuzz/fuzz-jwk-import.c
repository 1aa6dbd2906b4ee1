/* SPDX-License-Identifier: MIT */
/* libFuzzer target: JWK and JWKS import (common/jose-jwk.c): the input is
 * parsed as a JWKS document and, separately, as one JWK. Invariants: an
 * imported key is never private; export → import gives back the same
 * key (alg, kid, RFC 7638 thumbprint); a keyset survives its own JWKS. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "fuzz-util.h"
#include "jose-jwk.h"
#include "jose-key.h"
#include "json-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const jose_key *key) {
        _cleanup_(json_decrefp) json_t *jwk = NULL;
        _cleanup_(jose_key_freep) jose_key *again = NULL;
        char t1[JOSE_THUMBPRINT_LEN + 1], t2[JOSE_THUMBPRINT_LEN + 1];

        FUZZ_CHECK(!jose_key_has_private(key));
        FUZZ_CHECK(jose_key_alg(key) != JOSE_ALG_INVALID);
        FUZZ_CHECK(jose_key_to_jwk(key, &jwk) == 0);
        FUZZ_CHECK(jose_key_from_jwk(jwk, &again) == 0);
        FUZZ_CHECK(jose_key_alg(again) == jose_key_alg(key));
        FUZZ_CHECK(streq(jose_key_kid(again), jose_key_kid(key)));
        jose_key_thumbprint(key, t1);
        jose_key_thumbprint(again, t2);
        FUZZ_CHECK(streq(t1, t2));
}

static void fuzz_jwks(const char *text, size_t size) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL, *again = NULL;
        _cleanup_(json_decrefp) json_t *jwks = NULL;
        _cleanup_(freep) char *dump = NULL;

        if (jose_keyset_from_jwks(text, size, NULL, NULL, &ks) < 0)
                return;
        FUZZ_CHECK(jose_keyset_size(ks) <= 100);
        for (size_t i = 0; i < jose_keyset_size(ks); i++) {
                const jose_key *k = jose_keyset_get(ks, i);

                check_round_trip(k);
                FUZZ_CHECK(jose_keyset_find(ks, jose_key_kid(k)) == k);
        }
        FUZZ_CHECK(jose_keyset_to_jwks(ks, &jwks) == 0);
        FUZZ_CHECK(td_json_dump_compact(jwks, &dump) == 0);
        FUZZ_CHECK(jose_keyset_from_jwks(dump, strlen(dump), NULL, NULL, &again) == 0);
        FUZZ_CHECK(jose_keyset_size(again) == jose_keyset_size(ks));
}

static void fuzz_jwk(const char *text, size_t size) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_(jose_key_freep) jose_key *key = NULL;

        if (td_json_parse_object(text, size, 1024 * 1024, TD_JSON_DEFAULT_MAX_DEPTH, &j, NULL) < 0)
                return;
        if (jose_key_from_jwk(j, &key) < 0)
                return;
        check_round_trip(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_jwks((const char *) data, size);
        fuzz_jwk((const char *) data, size);
        return 0;
}
