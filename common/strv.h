/* SPDX-License-Identifier: MIT */
/* NULL-terminated lists of malloc'ed strings ("strv", as in systemd): the
 * configuration's audience lists and messages, a user's groups. In
 * libtdbase: no dependency beyond libc. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* Free every string and the list. Accepts NULL. */
void strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);

/* true if s is in l (NULL: the empty list). */
bool strv_contains(char *const *l, const char *s);

/* Append s (taken over on success) to l of *n entries; *l stays
 * NULL-terminated. Returns 0 or -ENOMEM (l and s untouched). */
int strv_push(char ***l, size_t *n, char *s);
