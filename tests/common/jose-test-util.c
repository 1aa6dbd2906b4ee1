/* SPDX-License-Identifier: MIT */
/* See jose-test-util.h. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jose-test-util.h"

const jose_alg test_algs[TEST_N_ALGS] = { JOSE_ALG_EDDSA, JOSE_ALG_ES256, JOSE_ALG_RS256, JOSE_ALG_PS256 };

int jose_fixture_setup(void **state) {
        jose_fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        assert_int_equal(jose_keyset_new(&f->ks), 0);
        for (size_t i = 0; i < TEST_N_ALGS; i++) {
                jose_key *k = NULL;

                assert_int_equal(jose_key_generate(test_algs[i], &k), 0);
                assert_int_equal(jose_keyset_add(f->ks, k), 0);
                f->key[i] = k;
        }
        *state = f;
        return 0;
}

int jose_fixture_teardown(void **state) {
        jose_fixture *f = *state;

        jose_keyset_free(f->ks);
        free(f);
        return 0;
}

const jose_keyset *fks(void **state) {
        return ((jose_fixture *) *state)->ks;
}

const jose_key *fkey(void **state, jose_alg alg) {
        jose_fixture *f = *state;

        for (size_t i = 0; i < TEST_N_ALGS; i++)
                if (test_algs[i] == alg)
                        return f->key[i];
        fail();
        return NULL;
}

char *subst_kid(const char *tmpl, const char *kid) {
        size_t n = strlen(tmpl) + 1, kl = strlen(kid);
        char *out, *o;

        for (const char *p = strstr(tmpl, "$KID"); p; p = strstr(p + 4, "$KID"))
                n += kl;
        out = o = malloc(n);
        assert_non_null(out);
        while (*tmpl) {
                if (strncmp(tmpl, "$KID", 4) == 0) {
                        memcpy(o, kid, kl);
                        o += kl;
                        tmpl += 4;
                } else
                        *o++ = *tmpl++;
        }
        *o = 0;
        return out;
}
