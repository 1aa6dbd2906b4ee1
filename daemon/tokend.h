/* SPDX-License-Identifier: MIT */
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

#define LOGIN_UID_TOTAL_FACTOR 4U  /* a uid's failures over other users' names: 4 × MaxFailures */
#define VERIFY_FAILURE_FACTOR 20U  /* failed verifications: 20 × MaxFailures per uid, per remote host */
#define PEER_LOGIN_WINDOW 60 /* seconds: [Login] PeerLoginRate= counts per minute */

struct tokend {
        pthread_rwlock_t lock;        /* protects config and keys */
        tokend_config *config;
        keydir keys;
        tokend_store *store;          /* thread-safe on its own */
        ratelimit *login_fail_pair;   /* failed logins per (caller uid, user name) */
        ratelimit *login_fail_user;   /* failed logins per user name, by other callers than the user */
        ratelimit *login_fail_uid;    /* failed logins per caller uid, for other users' names */
        ratelimit *verify_fail_uid;   /* failed verifies per non-root caller uid */
        ratelimit *verify_fail_rhost; /* failed verifies by root per reported remote host */
        ratelimit *peer_login_uid;    /* peer logins per non-root caller uid and minute */
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
 * env_passphrase: $TOKEND_PASSPHRASE as taken at start (may be NULL).
 * *ret_error explains a failure (malloc'ed). Returns 0 or -errno. */
int tokend_load_keys(const tokend_config *cfg, const char *env_passphrase, keydir *ret, char **ret_error);

/* Create the rate limiters from t->config ([Login] MaxFailures,
 * FailureWindow). 0 or -ENOMEM (free what was made with
 * tokend_limits_free, which accepts a partly made set). */
int tokend_limits_new(tokend *t);
void tokend_limits_free(tokend *t);
