/* SPDX-License-Identifier: MIT */
/* The daemon context (tokend.h): build, start the front ends, reload,
 * free. main() only parses the command line and loops on signals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strv.h"
#include "tokend-device-grants.h"
#include "tokend-frontend.h"
#include "tokend-hostnames.h"
#include "tokend-log.h"
#include "tokend.h"

#define LOGIN_QUEUE 256
/* Feed requests that may wait at once (GET /api/revocations?wait=), of
 * MaxConnections: one per verifier host, so a quarter leaves room. */
#define FEED_WAITERS_SHARE 4U

int tokend_apply_overrides(tokend_config *c, const char *socket, const char *bus) {
        int r;
        if (socket) {
                char *s = strdup(socket);
                if (!s)
                        return -ENOMEM;
                free(c->socket_path);
                c->socket_path = s;
        }
        if (bus && (r = tokend_config_set_bus(c, bus)) < 0) {
                log_error("--bus %s: not system, session, none or a D-Bus address", bus);
                return r;
        }
        return 0;
}

static int load_config(const tokend *t, tokend_config **ret) {
        _cleanup_(freep) char *err = NULL;
        _cleanup_(tokend_config_freep) tokend_config *c = NULL;
        int r = tokend_config_load(t->param_config, t->param_state_dir, &c, &err);
        if (r < 0) {
                log_error("configuration: %s", err ? err : strerror(-r));
                return r;
        }
        for (size_t i = 0; i < c->n_warnings; i++)
                log_warning("configuration: %s", c->warnings[i]);
        r = tokend_apply_overrides(c, t->param_socket, t->param_bus);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

int tokend_load_keys(const tokend_config *cfg, const char *env_passphrase, keydir *ret, char **ret_error) {
        _cleanup_(keydir_passphrase_freep) char *pass = NULL;
        int r = keydir_passphrase(cfg->keys_passphrase_file, env_passphrase, &pass);
        if (r < 0) {
                if (asprintf(ret_error, "cannot read the key passphrase: %s", strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        /* Keys and their directory belong to tokend's user (or root). */
        r = keydir_load(cfg->keys_directory, geteuid(), cfg->keys_active, pass, ret, ret_error);
        if (r == -ENOENT) {
                _cleanup_(freep) char *path = NULL, *err = NULL;
                free(*ret_error);
                *ret_error = NULL;
                r = keydir_generate(cfg->keys_directory, cfg->algorithm, pass, &path, &err);
                if (r < 0) {
                        if (asprintf(ret_error, "no key in %s and cannot generate one: %s", cfg->keys_directory,
                                     err ? err : strerror(-r)) < 0)
                                *ret_error = NULL;
                        return r;
                }
                log_notice("generated a new %s signing key: %s", jose_alg_to_string(cfg->algorithm), path);
                r = keydir_load(cfg->keys_directory, geteuid(), cfg->keys_active, pass, ret, ret_error);
        }
        return r;
}

/* The role a configuration asks for: [Network] Listen= → issuer (the
 * [Verifier] issue adds [Verifier] Issuer= → verifier). */
static tokend_role tokend_role_of(const tokend_config *c) {
        if (c->verifier_issuer)
                return TOKEND_ROLE_VERIFIER;
        return c->network_listen ? TOKEND_ROLE_ISSUER : TOKEND_ROLE_STANDALONE;
}

/* MaxConnections sockets plus the database, keys and bus need more file
 * descriptors than the usual soft limit of 1024: raise it up to the hard one. */
static void raise_fd_limit(unsigned max_connections) {
        rlim_t want = (rlim_t) max_connections + 64;
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
                return;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
                log_warning("file descriptor limit %llu is below MaxConnections=%u + 64: connections beyond it "
                            "will be refused", (unsigned long long) rl.rlim_cur, max_connections);
}

static int strdup_opt(const char *s, char **ret) {
        if (s && !(*ret = strdup(s)))
                return -ENOMEM;
        return 0;
}

static int tokend_new_params(tokend *t, const tokend_params *p) {
        pthread_rwlockattr_t la;
        int r;
        pthread_rwlockattr_init(&la);
        pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        r = -pthread_rwlock_init(&t->lock, &la);
        pthread_rwlockattr_destroy(&la);
        if (r < 0)
                return r;
        t->lock_initialized = true;
        t->env_passphrase = p->env_passphrase;
        if ((r = strdup_opt(p->config, &t->param_config)) < 0 ||
            (r = strdup_opt(p->state_dir, &t->param_state_dir)) < 0 ||
            (r = strdup_opt(p->socket, &t->param_socket)) < 0 || (r = strdup_opt(p->bus, &t->param_bus)) < 0)
                return r;
        return 0;
}

static int tokend_new_state(tokend *t) {
        _cleanup_(freep) char *err = NULL;
        int r;
        if (t->param_state_dir && mkdir(t->param_state_dir, 0700) < 0 && errno != EEXIST) {
                r = -errno;
                log_error("cannot create state directory %s: %s", t->param_state_dir, strerror(-r));
                return r;
        }
        if (t->role == TOKEND_ROLE_VERIFIER)
                r = jose_keyset_new(&t->keys.keys); /* signs nothing: no key of its own */
        else
                r = tokend_load_keys(t->config, t->env_passphrase, &t->keys, &err);
        if (r < 0) {
                log_error("keys: %s", err ? err : strerror(-r));
                return r;
        }
        r = store_open(t->config->database, &t->store);
        if (r < 0) {
                log_error("cannot open the database %s: %s", t->config->database, strerror(-r));
                return r;
        }
        if (t->role == TOKEND_ROLE_VERIFIER) {
                /* Its state (the issuer's JWKS, the feed) next to the database. */
                _cleanup_(freep) char *dir = strdup(t->config->database);
                if (!dir)
                        return -ENOMEM;
                char *slash = strrchr(dir, '/');
                if (slash)
                        *(slash == dir ? slash + 1 : slash) = 0;
                return verifier_new(t->config, dir, &t->verifier);
        }
        store_set_feed_horizon(t->store, t->config->access_token_lifetime + t->config->clock_skew);
        unsigned waiters = t->config->max_connections / FEED_WAITERS_SHARE;
        r = longpoll_new(t->store, waiters > 0 ? waiters : 1, &t->longpoll);
        if (r < 0)
                log_error("cannot start the revocation feed: %s", strerror(-r));
        return r;
}

/* The store's writes drop what the verified-token cache knows about them. */
static void store_changed(void *userdata, store_change what, const char *key) {
        vcache *c = userdata;
        switch (what) {
        case STORE_CHANGED_DEVICE: vcache_drop_device(c, key); break;
        case STORE_CHANGED_JTI: vcache_drop_jti(c, key); break;
        case STORE_CHANGED_USER: vcache_drop_user(c, key); break;
        default: vcache_flush(c); break;
        }
}

int tokend_new(const tokend_params *p, tokend **ret) {
        _cleanup_(tokend_freep) tokend *t = calloc(1, sizeof *t);
        int r;
        if (!t)
                return -ENOMEM;
        t->inherited = LISTEN_FDS_NONE;
        if ((r = tokend_new_params(t, p)) < 0 || (r = load_config(t, &t->config)) < 0)
                return r;
        t->role = tokend_role_of(t->config);
        if ((r = host_names_default(&t->host_names)) < 0 || (r = metrics_new(&t->metrics)) < 0)
                return r;
        raise_fd_limit(t->config->max_connections);
        if ((r = tokend_new_state(t)) < 0 || (r = tokend_limits_new(t)) < 0 ||
            (r = device_grants_new(&t->device_grants)) < 0)
                return r;
        store_set_watch(t->store, &(store_watch){ .changed = store_changed, .userdata = t->verified });
        t->store_local = streq(store_backend_name(t->store), "sqlite");
        /* Another issuer's tokens verify here through what it published;
         * a local store holds this issuer's keys only. */
        if (!t->store_local && t->role != TOKEND_ROLE_VERIFIER && (r = fleet_keys_new(t->store, &t->fleet)) < 0)
                return r;
        if (t->role != TOKEND_ROLE_VERIFIER && (r = signing_plan_new(&t->signing)) < 0)
                return r;
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        r = workers_new((unsigned) (cores > 0 ? cores : 1), LOGIN_QUEUE, &t->login_workers);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

int tokend_startup(tokend *t) {
        int r = listen_fds_take(&t->inherited);
        if (r < 0)
                return r;
        /* TCP sockets serve the [Network] listener, which only an issuer has. */
        if (t->inherited.n_network > 0 && t->role != TOKEND_ROLE_ISSUER) {
                log_error("socket activation: systemd passed %zu socket(s) named \"network\", but %s; refusing "
                          "to start", t->inherited.n_network,
                          t->role == TOKEND_ROLE_VERIFIER ? "a verifier has no network listener"
                                                          : "[Network] Listen= is not set");
                return -EINVAL;
        }
        for (size_t i = 0; i < tokend_n_frontends; i++) {
                const tokend_frontend_ops *ops = tokend_frontends[i];
                void *state = NULL;
                if (!(ops->roles & TOKEND_ROLE_MASK(t->role)) || (ops->wanted && !ops->wanted(t)))
                        continue;
                r = ops->start(t, &state);
                if (r < 0 && ops->optional) {
                        log_error("continuing without the %s API: %s", ops->name, strerror(-r));
                        continue;
                }
                if (r < 0)
                        return r;
                t->frontends[t->n_frontends++] = (tokend_frontend) { .ops = ops, .state = state };
        }
        return 0;
}

tokend *tokend_free(tokend *t) {
        if (!t)
                return NULL;
        unsigned grace = t->config ? (unsigned) t->config->request_timeout : 0;
        while (t->n_frontends > 0) {
                tokend_frontend *f = &t->frontends[--t->n_frontends];
                f->ops->stop(t, f->state, grace);
        }
        listen_fds_done(&t->inherited);
        workers_free(t->login_workers);
        longpoll_free(t->longpoll);
        verifier_free(t->verifier);
        fleet_keys_free(t->fleet);
        signing_plan_free(t->signing);
        store_close(t->store);
        tokend_limits_free(t);
        device_grants_free(t->device_grants);
        keydir_done(&t->keys);
        tokend_config_free(t->config);
        strv_free(t->host_names);
        metrics_free(t->metrics);
        if (t->lock_initialized)
                pthread_rwlock_destroy(&t->lock);
        free(t->param_config);
        free(t->param_state_dir);
        free(t->param_socket);
        free(t->param_bus);
        free(t);
        return NULL;
}

int tokend_reload(tokend *t) {
        _cleanup_(tokend_config_freep) tokend_config *c = NULL;
        _cleanup_(freep) char *err = NULL;
        keydir kd = { 0 };
        int r;

        log_info("reloading configuration and keys");
        if ((r = load_config(t, &c)) < 0) {
                log_error("reload failed, keeping the running configuration");
                return r;
        }
        if (t->role == TOKEND_ROLE_VERIFIER) {
                /* The verifier's [Verifier] settings stay those it started with. */
                log_notice("a verifier rereads [Verifier] at its next restart");
                r = jose_keyset_new(&kd.keys);
                if (r < 0)
                        return r;
                free(c->issuer);
                c->issuer = strdup(t->config->issuer);
        } else if ((r = tokend_load_keys(c, t->env_passphrase, &kd, &err)) < 0) {
                log_error("reload failed, keeping the running keys: %s", err ? err : "key directory unusable");
                return r;
        }
        if (!streq(c->socket_path, t->config->socket_path) || !streq(c->database, t->config->database))
                log_notice("Socket Path= and Store Database= changes take effect at the next restart");
        pthread_rwlock_wrlock(&t->lock);
        tokend_config *oldc = t->config;
        keydir oldk = t->keys;
        /* Socket and store stay what they were opened with. */
        free(c->socket_path);
        c->socket_path = strdup(oldc->socket_path);
        free(c->database);
        c->database = strdup(oldc->database);
        t->config = TAKE_PTR(c);
        t->keys = kd;
        store_set_feed_horizon(t->store, t->config->access_token_lifetime + t->config->clock_skew);
        /* Retired keys, another issuer or audience: check every token anew. */
        vcache_flush(t->verified);
        pthread_rwlock_unlock(&t->lock);
        tokend_config_free(oldc);
        keydir_done(&oldk);
        for (size_t i = 0; i < t->n_frontends; i++)
                if (t->frontends[i].ops->reload)
                        t->frontends[i].ops->reload(t, t->frontends[i].state);
        log_info("reloaded: %zu key(s), active %s (kid %s)", jose_keyset_size(kd.keys), kd.active_file,
                 jose_key_kid(kd.active));
        return 0;
}
