/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "strv.h"

void strv_free(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}

bool strv_contains(char *const *l, const char *s) {
        for (size_t i = 0; l && l[i]; i++)
                if (streq(l[i], s))
                        return true;
        return false;
}

int strv_push(char ***l, size_t *n, char *s) {
        char **m = reallocarray(*l, *n + 2, sizeof(char *));
        if (!m)
                return -ENOMEM;
        m[(*n)++] = s;
        m[*n] = NULL;
        *l = m;
        return 0;
}
