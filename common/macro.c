/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "macro.h"

void erase_and_free_buf(void *p, size_t len) {
        if (!p)
                return;
        explicit_bzero(p, len);
        free(p);
}

int erase_buf_append(char **data, size_t *len, size_t *cap, size_t initial, const void *p, size_t n) {
        if (*len + n + 1 > *cap) {
                size_t nc = *cap ? *cap : initial;
                while (nc < *len + n + 1)
                        nc *= 2;
                char *nb = malloc(nc);
                if (!nb)
                        return -ENOMEM;
                if (*data)
                        memcpy(nb, *data, *len);
                erase_and_free_buf(*data, *cap);
                *data = nb;
                *cap = nc;
        }
        memcpy(*data + *len, p, n);
        *len += n;
        (*data)[*len] = 0;
        return 0;
}

void erase_and_free(char *s) {
        if (!s)
                return;
        erase_and_free_buf(s, strlen(s));
}
