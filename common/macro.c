#include <string.h>

#include "macro.h"

void erase_and_free_buf(void *p, size_t len) {
        if (!p)
                return;
        explicit_bzero(p, len);
        free(p);
}

void erase_and_free(char *s) {
        if (!s)
                return;
        erase_and_free_buf(s, strlen(s));
}
