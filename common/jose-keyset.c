/* SPDX-License-Identifier: MIT */
/* Key sets (see jose-keyset.h): a growing array of owned keys, looked up
 * by kid. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "jose-keyset.h"

struct jose_keyset {
        jose_key **keys;
        size_t n;
};

int jose_keyset_new(jose_keyset **ret) {
        jose_keyset *ks = calloc(1, sizeof(*ks));

        if (!ks)
                return -ENOMEM;
        *ret = ks;
        return 0;
}

void jose_keyset_free(jose_keyset *ks) {
        if (!ks)
                return;
        for (size_t i = 0; i < ks->n; i++)
                jose_key_free(ks->keys[i]);
        free(ks->keys);
        free(ks);
}

size_t jose_keyset_size(const jose_keyset *ks) {
        return ks ? ks->n : 0;
}

const jose_key *jose_keyset_get(const jose_keyset *ks, size_t i) {
        return ks && i < ks->n ? ks->keys[i] : NULL;
}

const jose_key *jose_keyset_find(const jose_keyset *ks, const char *kid) {
        if (!ks || !kid)
                return NULL;
        for (size_t i = 0; i < ks->n; i++)
                if (streq(jose_key_kid(ks->keys[i]), kid))
                        return ks->keys[i];
        return NULL;
}

int jose_keyset_add(jose_keyset *ks, jose_key *key) {
        jose_key **k;

        if (!ks || !key)
                return -EINVAL;
        if (jose_keyset_find(ks, jose_key_kid(key)))
                return -EEXIST;
        k = reallocarray(ks->keys, ks->n + 1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k[ks->n++] = key;
        ks->keys = k;
        return 0;
}
