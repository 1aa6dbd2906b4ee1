/* The daemon context: one struct passed to every front end and operation.
 * Configuration and keys can be swapped by a reload (SIGHUP) while requests
 * run, so they sit behind a writer-preferring rwlock: an operation takes
 * the read side for its duration (tokend_lock/unlock). */
#pragma once

#include <pthread.h>

#include "tokend-config.h"
#include "tokend-keydir.h"
#include "tokend-ratelimit.h"
#include "tokend-store.h"

struct tokend {
        pthread_rwlock_t lock;        /* protects config and keys */
        tokend_config *config;
        keydir keys;
        tokend_store *store;          /* thread-safe on its own */
        ratelimit *login_fail_user;   /* failed logins per user name */
        ratelimit *login_fail_uid;    /* failed logins per caller uid */
        ratelimit *verify_fail_uid;   /* failed verifies per non-root caller uid */
        /* Called after any device revocation (socket, bus, reuse detection):
         * the D-Bus front end emits DeviceRevoked from it. May be NULL. */
        void (*on_device_revoked)(void *userdata, const char *user, const char *device_id);
        void *on_device_revoked_userdata;
};

static inline void tokend_rdlock(tokend *t) {
        pthread_rwlock_rdlock(&t->lock);
}
static inline void tokend_unlock(tokend *t) {
        pthread_rwlock_unlock(&t->lock);
}

/* Load (or on first start generate) the keys of cfg's key directory.
 * *ret_error explains a failure (malloc'ed). Returns 0 or -errno. */
int tokend_load_keys(const tokend_config *cfg, keydir *ret, char **ret_error);
