/* SPDX-License-Identifier: MIT */
/* Small helpers every part of the project uses: cleanup attributes, array
 * sizes, and the erase-then-free destructor for secrets (STYLE.md §4, §5).
 * No state; the out-of-line parts (the erase helpers) are in macro.c, part
 * of libtdcommon. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _public_ __attribute__((visibility("default")))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Take ownership of a pointer out of a _cleanup_ variable. */
#define TAKE_PTR(p)                          \
        ({                                   \
                __typeof__(p) _p_ = (p);     \
                (p) = NULL;                  \
                _p_;                         \
        })

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)            \
        static inline void func##p(type *p) {              \
                if (*p)                                    \
                        func(*p);                          \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                (void) close(*fd);
                errno = saved;
        }
}

/* Erase a NUL-terminated secret and free it. Accepts NULL. explicit_bzero()
 * is used so the compiler cannot elide the wipe. */
void erase_and_free(char *s);
static inline void erase_and_freep(char **s) {
        erase_and_free(*s);
}

/* Erase len bytes and free. Accepts NULL. */
void erase_and_free_buf(void *p, size_t len);

/* Append n bytes to a growable NUL-terminated buffer (*data of *cap bytes,
 * *len used) that may hold secrets: it grows by doubling from initial into a
 * fresh allocation and wipes the old one (never realloc). Returns 0, or
 * -ENOMEM with the buffer unchanged. Callers bound n. */
int erase_buf_append(char **data, size_t *len, size_t *cap, size_t initial, const void *p, size_t n);

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
