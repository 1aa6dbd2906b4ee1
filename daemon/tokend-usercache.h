/* SPDX-License-Identifier: MIT */
/* A short-lived cache of user_by_name() for the verify path, so that a
 * verification does not read the passwd database (NSS: /etc/passwd parsed
 * anew on every getpwnam_r) each time. Only users that exist are cached
 * (a name that is not found asks NSS every time, so unknown names cannot
 * fill the cache). An entry answers for USER_CACHE_LIFETIME seconds at most
 * (monotonic clock); every entry is dropped as soon as the passwd file
 * (/etc/passwd, or the path given) changes (mtime, ctime, size or inode,
 * looked at on every call: one stat), so userdel/usermod on the files
 * database take effect at the next verify, and removals in other NSS
 * sources (LDAP, sssd, systemd-userdb) within USER_CACHE_LIFETIME.
 * Fixed memory: USER_CACHE_SLOTS slots, the oldest probed one evicted.
 * Thread-safe. */
#pragma once

#include "tokend-users.h"

#define USER_CACHE_SLOTS 1024U
#define USER_CACHE_LIFETIME_USEC ((int64_t) 5 * 1000000) /* 5 seconds */
#define USER_CACHE_PASSWD "/etc/passwd"

typedef struct user_cache user_cache;

/* passwd: the file whose changes flush the cache (NULL: USER_CACHE_PASSWD).
 * 0 and *ret (free with user_cache_free, which accepts NULL), or -ENOMEM. */
int user_cache_new(const char *passwd, user_cache **ret);
void user_cache_free(user_cache *c);

/* user_by_name(), answered from the cache while the entry is fresh. Same
 * returns. */
int user_cache_by_name(user_cache *c, const char *name, td_user *ret);

/* Entries held now (fresh or not yet overwritten), for tests. */
size_t user_cache_count(user_cache *c);
