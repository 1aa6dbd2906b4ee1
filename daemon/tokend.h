/* SPDX-License-Identifier: MIT */
/* The daemon context: one struct passed to every front end and operation,
 * built and torn down in daemon/tokend.c in the shape of systemd homed's
 * manager_new/manager_startup/manager_free:
 *
 *   tokend_new()      configuration, state directory, keys, store, rate
 *                     limiters, login workers; nothing listens yet
 *   tokend_startup()  starts the front ends this role runs (the table in
 *                     tokend-frontend.c: D-Bus, Unix socket, ...)
 *   tokend_reload()   SIGHUP: new configuration and keys, then each front
 *                     end's reload op
 *   tokend_free()     stops the running front ends (reverse order) and
 *                     frees everything; accepts a half-built context
 *
 * Configuration and keys can be swapped by a reload while requests run, so
 * they sit behind a writer-preferring rwlock: an operation takes the read
 * side for its duration (tokend_rdlock/unlock). */
#pragma once

#include <pthread.h>
#include <stdbool.h>

#include "macro.h"
#include "tokend-config.h"
#include "tokend-fleetkeys.h"
#include "tokend-keydir.h"
#include "tokend-listenfds.h"
#include "tokend-longpoll.h"
#include "tokend-metrics.h"
#include "tokend-ratelimit.h"
#include "tokend-store.h"
#include "tokend-usercache.h"
#include "tokend-vcache.h"
#include "tokend-verifier.h"
#include "tokend-workers.h"

#define TD_MAINTENANCE_INTERVAL 60   /* seconds between prunes and key republications */
#define TD_PUBLISH_BEFORE_SIGNING_SHARED 600 /* [Keys] PublishBeforeSigning= unset, shared store */
#define LOGIN_UID_TOTAL_FACTOR 4U  /* a uid's failures over other users' names: 4 × MaxFailures */
#define VERIFY_FAILURE_FACTOR 20U  /* failed verifications: 20 × MaxFailures per uid, per remote host */
#define PEER_LOGIN_WINDOW 60 /* seconds: [Login] PeerLoginRate= counts per minute */
#define TOKEND_FRONTENDS_MAX 8

/* What this tokend is in a fleet (DESIGN.md "Fleet"). Front ends say in
 * which roles they run (tokend_frontend_ops.roles, a mask of
 * TOKEND_ROLE_MASK()). Today every configuration is standalone; the
 * [Network] and [Verifier] issues derive the other two from the
 * configuration in tokend_role_of(). */
typedef enum tokend_role {
        TOKEND_ROLE_STANDALONE, /* issuer and verifier on one machine: the embedded default */
        TOKEND_ROLE_ISSUER,     /* [Network] Listen=: also serves other machines over HTTPS */
        TOKEND_ROLE_VERIFIER,   /* [Verifier] Issuer=: no signing keys, no password logins */
        _TOKEND_ROLE_MAX,
} tokend_role;
#define TOKEND_ROLE_MASK(r) (1U << (r))
#define TOKEND_ROLES_ALL ((1U << _TOKEND_ROLE_MAX) - 1U)

typedef struct tokend tokend; /* also in tokend-service.h: C11 allows the repeat */
typedef struct tokend_frontend_ops tokend_frontend_ops; /* tokend-frontend.h */

/* One slot of t->frontends: a front end that tokend_startup() started. */
typedef struct tokend_frontend {
        const tokend_frontend_ops *ops;
        void *state; /* what ops->start returned; may be NULL */
} tokend_frontend;

/* Where tokend_new() and every tokend_reload() read from: the command line.
 * The strings are copied; env_passphrase is borrowed and must outlive the
 * context (main() owns and wipes it). */
typedef struct tokend_params {
        const char *config;         /* --config FILE, NULL: the default */
        const char *state_dir;      /* --state-dir DIR, NULL: none */
        const char *socket;         /* --socket PATH override, NULL: from the file */
        const char *bus;            /* --bus override, NULL: from the file */
        const char *env_passphrase; /* $TOKEND_PASSPHRASE as taken at start, NULL: none */
} tokend_params;

struct tokend {
        pthread_rwlock_t lock;        /* protects config and keys */
        bool lock_initialized;
        tokend_config *config;
        keydir keys;
        tokend_store *store;          /* thread-safe on its own */
        ratelimit *login_fail_pair;   /* failed logins per (caller uid, user name) */
        ratelimit *login_fail_user;   /* failed logins per user name, by other callers than the user */
        ratelimit *login_fail_uid;    /* failed logins per caller uid, for other users' names */
        ratelimit *verify_fail_uid;   /* failed verifies per non-root caller uid */
        ratelimit *verify_fail_rhost; /* failed verifies by root per reported remote host */
        ratelimit *peer_login_uid;    /* peer logins per non-root caller uid and minute */
        /* Pending RFC 8628 device authorizations (tokend-device-grants.h):
         * memory only, a restart drops them. */
        struct device_grants *device_grants;
        vcache *verified;             /* tokens that passed a full check a moment ago (tokend-vcache.h),
                                       * told of every revocation by the store (store_set_watch) */
        bool store_local;             /* only this process writes the store (SQLite; PostgreSQL is shared) */
        fleet_keys *fleet;            /* the keys other issuers published; NULL on a local store or a verifier */
        signing_plan *signing;        /* which key signs ([Keys] PublishBeforeSigning=); NULL on a verifier */
        user_cache *users;            /* the verify path's user look-ups (tokend-usercache.h) */
        /* Called after any device revocation (socket, bus, reuse detection):
         * the D-Bus front end emits DeviceRevoked from it. May be NULL. */
        void (*on_device_revoked)(void *userdata, const char *user, const char *device_id);
        void *on_device_revoked_userdata;
        /* Requests waiting for the revocation feed to move (GET
         * /api/revocations?wait=); told of every revocation. NULL on a verifier. */
        longpoll *longpoll;
        /* The issuer's keys and revocation feed; set on a verifier only. */
        verifier *verifier;

        /* Set by tokend_new(); fixed for the life of the context. */
        tokend_role role;
        char **host_names;
        tokend_metrics *metrics;      /* GET /metrics (tokend-metrics.h); thread-safe */            /* SERVICE@HOST audiences accepted here (tokend-hostnames.h) */
        workers *login_workers;       /* password checks; front ends share it */
        char *param_config, *param_state_dir, *param_socket, *param_bus;
        const char *env_passphrase;   /* borrowed, see tokend_params */

        /* Sockets from systemd (tokend-listenfds.h), taken by tokend_startup();
         * a front end that uses one takes it out of here. */
        listen_fds inherited;

        /* Running front ends in start order; tokend_free stops them in reverse. */
        tokend_frontend frontends[TOKEND_FRONTENDS_MAX];
        size_t n_frontends;
};

static inline void tokend_rdlock(tokend *t) {
        pthread_rwlock_rdlock(&t->lock);
}
static inline void tokend_unlock(tokend *t) {
        pthread_rwlock_unlock(&t->lock);
}

/* Build a context from p: load the configuration (warnings logged) and
 * apply the overrides, create the state directory, load (or on first start
 * generate) the keys, open the store, make the rate limiters and the login
 * workers. No front end is started and no socket is opened. Every failure
 * is logged with its reason; what was built is freed, *ret is untouched.
 * Returns 0, -EINVAL (bad configuration or override), -ENOMEM, or the
 * -errno of the key directory or store that failed. */
_warn_unused_result_ int tokend_new(const tokend_params *p, tokend **ret);

/* Start the front ends of t->role, in the table's order (tokend-frontend.c).
 * An optional front end that fails (the bus) is logged and skipped; a
 * required one (the socket) fails the start-up: returns its -errno, and the
 * ones already started stay in t->frontends for tokend_free() to stop. */
_warn_unused_result_ int tokend_startup(tokend *t);

/* Stop every running front end (reverse start order, each within
 * RequestTimeout= for its in-flight requests), then free the workers,
 * store, limiters, keys and configuration. Accepts NULL and a context
 * that tokend_new() or tokend_startup() left half-built. Returns NULL. */
tokend *tokend_free(tokend *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(tokend *, tokend_free);

/* Reread the configuration files and the key directory (SIGHUP). On any
 * error the running configuration and keys stay (logged) and -errno is
 * returned; on success they are swapped under the write lock and every
 * running front end's reload op is called. Socket Path= and Store
 * Database= keep the values opened with (a notice says so). */
int tokend_reload(tokend *t);

/* The command line beats the files: --socket PATH and --bus VALUE (each
 * NULL: keep the file's). Returns 0, -ENOMEM, or -EINVAL for a bus value
 * that is not system, session, none or a D-Bus address (logged). */
_warn_unused_result_ int tokend_apply_overrides(tokend_config *c, const char *socket, const char *bus);

/* Load (or on first start generate) the keys of cfg's key directory.
 * env_passphrase: $TOKEND_PASSPHRASE as taken at start (may be NULL).
 * *ret_error explains a failure (malloc'ed, may be NULL on -ENOMEM).
 * Returns 0 or -errno (of the passphrase file, the directory's trust
 * checks, a key that does not load, or key generation). */
_warn_unused_result_ int tokend_load_keys(const tokend_config *cfg, const char *env_passphrase, keydir *ret,
                                          char **ret_error);

/* Create the rate limiters from t->config ([Login] MaxFailures,
 * FailureWindow), the verified-token cache and the user cache. 0 or
 * -ENOMEM (free what was made with tokend_limits_free, which accepts a
 * partly made set). */
int tokend_limits_new(tokend *t);
void tokend_limits_free(tokend *t);
