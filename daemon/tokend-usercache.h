/* SPDX-License-Identifier: MIT */
/* A short-lived cache of user_by_name() for the verify path, so that a
 * verification does not read the passwd database (NSS: /etc/passwd parsed
 * anew on every getpwnam_r) each time. Only users that exist are cached
 * (a name that is not found asks NSS every time, so unknown names cannot
 * fill the cache). An entry answers for USER_CACHE_LIFETIME seconds at most
 * (monotonic clock); every entry is dropped as soon as the passwd file
 * (/etc/passwd, or the path given) changes: a thread of the cache waits
 * on inotify for any event of that name in its directory (written in
 * place, replaced by rename as userdel/usermod/vipw do, removed), so a
 * verify costs no system call for it; the flush follows the change within
 * the thread's wake-up (normally well under a millisecond), and in any
 * case the removed user's entry is gone USER_CACHE_LIFETIME after it was
 * read. Without inotify (no instance or watch left, or the thread fails)
 * the file is looked at on every call instead (one stat: mtime, ctime,
 * size, inode), which catches the change at the next call. Removals in
 * other NSS sources (LDAP, sssd, systemd-userdb) count within
 * USER_CACHE_LIFETIME.
 * Fixed memory: USER_CACHE_SLOTS slots, the oldest probed one evicted.
 * Thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* For tests: how many times the watcher flushed for a change of the
 * file, and whether it is watching (false: one stat per call). */
uint64_t user_cache_changes(user_cache *c);
bool user_cache_watching(user_cache *c);

/* Entries held now (fresh or not yet overwritten), for tests. */
size_t user_cache_count(user_cache *c);
