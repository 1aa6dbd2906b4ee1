/* SPDX-License-Identifier: MIT */
/* tokend: start-up, the listening socket, signals (SIGHUP reload, SIGTERM
 * stop), the prune timer, and sd_notify. Everything else lives in the
 * service, store and front-end modules. */
#include <getopt.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include "json-util.h"
#include "macro.h"
#include "str-escape.h"
#include "tokend-bus.h"
#include "tokend-http.h"
#include "tokend-log.h"
#include "tokend-workers.h"
#include "tokend.h"

#define PRUNE_INTERVAL 60
#define LOGIN_QUEUE 256
#define SECURE_HEAP_BYTES (1U << 20) /* a power of two */
#define SECURE_HEAP_MIN 16U

typedef struct options {
        const char *config;
        const char *state_dir;
        const char *socket;
        const char *bus;
        int verbose;
        bool check;
        bool dump;
        char *env_passphrase; /* $TOKEND_PASSPHRASE, taken out of the environment */
} options;

static void usage(FILE *f) {
        fputs("Usage: tokend [--config FILE] [--state-dir DIR] [--socket PATH]\n"
              "              [--bus system|session|none|ADDRESS] [--foreground] [--verbose]\n"
              "       tokend --check-config [--dump] [--config FILE] [--state-dir DIR] ...\n"
              "Issue, refresh, revoke and verify device-bound login tokens.\n"
              "--check-config reads the configuration and the keys, lists every problem\n"
              "(FILE:LINE: reason) and exits 1, or 0 when all is well; --dump prints the\n"
              "effective configuration.\n", f);
}

static int parse_args(int argc, char **argv, options *o) {
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },  { "state-dir", required_argument, NULL, 'd' },
                { "socket", required_argument, NULL, 's' },  { "bus", required_argument, NULL, 'b' },
                { "foreground", no_argument, NULL, 'f' },    { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },          { "version", no_argument, NULL, 'V' },
                { "check-config", no_argument, NULL, 't' },  { "dump", no_argument, NULL, 'D' },
                {},
        };
        int c;
        while ((c = getopt_long(argc, argv, "c:d:s:b:fvhVt", opts, NULL)) >= 0)
                switch (c) {
                case 'c': o->config = optarg; break;
                case 'd': o->state_dir = optarg; break;
                case 's': o->socket = optarg; break;
                case 'b': o->bus = optarg; break;
                case 'f': break; /* tokend never forks; accepted for scripts */
                case 'v': o->verbose = 1; break;
                case 't': o->check = true; break;
                case 'D': o->check = o->dump = true; break;
                case 'h': usage(stdout); exit(0);
                case 'V': puts(PACKAGE_STRING); exit(0);
                default: usage(stderr); return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "tokend: unexpected argument '%s'\n", argv[optind]);
                usage(stderr);
                return -EINVAL;
        }
        return 0;
}

/* The command line beats the files: --socket and --bus. */
static int apply_overrides(const options *o, tokend_config *c) {
        int r;
        if (o->socket) {
                char *s = strdup(o->socket);
                if (!s)
                        return -ENOMEM;
                free(c->socket_path);
                c->socket_path = s;
        }
        if (o->bus && (r = tokend_config_set_bus(c, o->bus)) < 0) {
                log_error("--bus %s: not system, session, none or a D-Bus address", o->bus);
                return r;
        }
        return 0;
}

static int load_config(const options *o, tokend_config **ret) {
        _cleanup_(freep) char *err = NULL;
        tokend_config *c = NULL;
        int r = tokend_config_load(o->config, o->state_dir, &c, &err);
        if (r < 0) {
                log_error("configuration: %s", err ? err : strerror(-r));
                return r;
        }
        for (size_t i = 0; i < c->n_warnings; i++)
                log_warning("configuration: %s", c->warnings[i]);
        r = apply_overrides(o, c);
        if (r < 0) {
                tokend_config_free(c);
                return r;
        }
        *ret = c;
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

/* One line of --check-config on stderr; file names and values are the
 * admin's, but a drop-in's name may hold anything: escaped. */
static void check_say(const char *kind, const char *msg) {
        _cleanup_(freep) char *safe = str_escape_controls_dup(msg);
        fprintf(stderr, "tokend: %s%s\n", kind, safe ?: "(out of memory)");
}

/* tokend --check-config [--dump]: every problem of the files, then whether
 * the keys load (read-only: a missing key is generated at start, not here).
 * Messages go to stderr (the journal under ExecStartPre=/ExecReload=), the
 * dump to stdout. Returns the exit status. */
static int check_config(const options *o) {
        _cleanup_(tokend_config_freep) tokend_config *c = NULL;
        size_t problems = 0;

        int r = tokend_config_check(o->config, o->state_dir, &c);
        if (r < 0) {
                fprintf(stderr, "tokend: cannot check the configuration: %s\n", strerror(-r));
                return 1;
        }
        for (size_t i = 0; i < c->n_warnings; i++)
                check_say("warning: ", c->warnings[i]);
        for (size_t i = 0; i < c->n_errors; i++)
                check_say("", c->errors[i]);
        problems = c->n_errors;
        if (c->n_errors >= TOKEND_CONFIG_MAX_ERRORS)
                fprintf(stderr, "tokend: (stopped listing after %u problems)\n", TOKEND_CONFIG_MAX_ERRORS);
        if (apply_overrides(o, c) < 0)
                problems++;
        if (problems == 0) {
                _cleanup_(freep) char *err = NULL;
                _cleanup_(keydir_passphrase_freep) char *pass = NULL;
                keydir kd = { 0 };
                r = keydir_passphrase(c->keys_passphrase_file, o->env_passphrase, &pass);
                if (r < 0) {
                        fprintf(stderr, "tokend: keys: cannot read the key passphrase: %s\n", strerror(-r));
                        problems++;
                } else if ((r = keydir_load(c->keys_directory, geteuid(), c->keys_active, pass, &kd,
                                               &err)) == -ENOENT)
                        fprintf(stderr, "tokend: note: no signing key in %s yet; tokend generates one when it "
                                "starts\n", c->keys_directory);
                else if (r < 0) {
                        check_say("keys: ", err ?: strerror(-r));
                        problems++;
                }
                keydir_done(&kd);
        }
        if (problems > 0) {
                fprintf(stderr, "tokend: %zu problem%s in the configuration; not loaded\n", problems,
                        problems == 1 ? "" : "s");
                return 1;
        }
        if (o->dump && (tokend_config_dump(c, stdout) < 0 || fflush(stdout) != 0)) {
                fprintf(stderr, "tokend: cannot write the configuration: %m\n");
                return 1;
        }
        return 0;
}

/* A socket from systemd (socket activation), else our own. */
static int open_socket(const char *path, mode_t mode, bool *ret_owned) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int n = sd_listen_fds(1);

        if (n > 1) {
                log_error("expected one socket from systemd, got %d", n);
                return -EINVAL;
        }
        if (n == 1) {
                if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0) {
                        log_error("the socket passed by systemd is not a listening AF_UNIX stream socket");
                        return -EINVAL;
                }
                *ret_owned = false;
                return SD_LISTEN_FDS_START;
        }
        if (strlen(path) >= sizeof sa.sun_path) {
                log_error("socket path too long: %s", path);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* A live socket means another tokend: refuse. A stale one is removed. */
        struct stat st;
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode)) {
                        log_error("%s exists and is not a socket; not touching it", path);
                        close(fd);
                        return -EEXIST;
                }
                int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof sa) == 0) {
                        close(probe);
                        close(fd);
                        log_error("%s: another tokend is already listening", path);
                        return -EADDRINUSE;
                }
                if (probe >= 0)
                        close(probe);
                (void) unlink(path);
        }
        mode_t old = umask(0177);
        int r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        umask(old);
        if (r < 0 || chmod(path, mode) < 0 || listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                log_error("cannot listen on %s: %s", path, strerror(-r));
                close(fd);
                return r;
        }
        *ret_owned = true;
        return fd;
}

static void reload(tokend *t, const options *o) {
        tokend_config *c = NULL;
        keydir kd = { 0 };
        _cleanup_(freep) char *err = NULL;

        log_info("reloading configuration and keys");
        if (load_config(o, &c) < 0) {
                log_error("reload failed, keeping the running configuration");
                return;
        }
        if (tokend_load_keys(c, o->env_passphrase, &kd, &err) < 0) {
                log_error("reload failed, keeping the running keys: %s", err ? err : "key directory unusable");
                tokend_config_free(c);
                return;
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
        t->config = c;
        t->keys = kd;
        pthread_rwlock_unlock(&t->lock);
        tokend_config_free(oldc);
        keydir_done(&oldk);
        log_info("reloaded: %zu key(s), active %s (kid %s)", jose_keyset_size(kd.keys), kd.active_file,
                 jose_key_kid(kd.active));
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

static int ensure_dir(const char *path) {
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int run(const options *o) {
        _cleanup_(freep) char *err = NULL;
        tokend t = { 0 };
        pthread_rwlockattr_t la;
        workers *w = NULL;
        http_server *http = NULL;
        bus_server *bus = NULL;
        bool owned = false;
        int fd = -1, r;
        sigset_t ss;

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGHUP);
        /* Blocked before any thread starts, so every thread inherits it. */
        pthread_sigmask(SIG_BLOCK, &ss, NULL);
        signal(SIGPIPE, SIG_IGN);

        pthread_rwlockattr_init(&la);
        pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&t.lock, &la);

        r = load_config(o, &t.config);
        if (r < 0)
                return r;
        raise_fd_limit(t.config->max_connections);
        if (o->state_dir && (r = ensure_dir(o->state_dir)) < 0) {
                log_error("cannot create state directory %s: %s", o->state_dir, strerror(-r));
                goto out;
        }
        r = tokend_load_keys(t.config, o->env_passphrase, &t.keys, &err);
        if (r < 0) {
                log_error("keys: %s", err ? err : strerror(-r));
                goto out;
        }
        log_info("OpenSSL secure heap: %zu bytes of %u KiB in use by the keys%s", CRYPTO_secure_used(),
                 SECURE_HEAP_BYTES >> 10, CRYPTO_secure_malloc_initialized() ? "" : " (not available)");
        r = store_open(t.config->database, &t.store);
        if (r < 0) {
                log_error("cannot open the database %s: %s", t.config->database, strerror(-r));
                goto out;
        }
        if ((r = tokend_limits_new(&t)) < 0)
                goto out;
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        r = workers_new((unsigned) (cores > 0 ? cores : 1), LOGIN_QUEUE, &w);
        if (r < 0)
                goto out;
        /* Before the socket: it installs the DeviceRevoked hook. A bus that
         * cannot be reached does not stop tokend: the socket (pam_jwt's way
         * in) keeps serving; see io.tokend.Tokend1(5). */
        if (bus_server_start(&t, w, &bus) < 0)
                log_error("continuing without the D-Bus API; only the socket serves");
        fd = open_socket(t.config->socket_path, t.config->socket_mode, &owned);
        if (fd < 0) {
                r = fd;
                goto out;
        }
        http_limits lim = {
                .max_request_bytes = t.config->max_request_bytes,
                .timeout = (unsigned) t.config->request_timeout,
                .max_connections = t.config->max_connections,
                .max_connections_per_user = t.config->max_connections_per_user,
                .reserved_root_connections = t.config->reserved_root_connections,
                .enable_docs = t.config->enable_docs,
        };
        r = http_server_start(&t, w, fd, &lim, &http);
        if (r < 0) {
                log_error("cannot start the HTTP server on %s", t.config->socket_path);
                goto out;
        }
        log_info("ready: socket %s, database %s, %zu key(s), active %s (%s, kid %s)", t.config->socket_path,
                 t.config->database, jose_keyset_size(t.keys.keys), t.keys.active_file,
                 jose_alg_to_string(jose_key_alg(t.keys.active)), jose_key_kid(t.keys.active));
        (void) sd_notifyf(0, "READY=1\nSTATUS=Serving %s\nMAINPID=%lu", t.config->socket_path,
                          (unsigned long) getpid());

        for (;;) {
                struct timespec ts = { PRUNE_INTERVAL, 0 };
                int sig = sigtimedwait(&ss, NULL, &ts);
                if (sig == SIGHUP) {
                        (void) sd_notify(0, "RELOADING=1");
                        reload(&t, o);
                        (void) sd_notify(0, "READY=1");
                } else if (sig == SIGTERM || sig == SIGINT) {
                        log_info("stopping on %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                        break;
                } else if (sig < 0 && errno == EAGAIN) {
                        int pr = store_prune(t.store, (int64_t) time(NULL));
                        if (pr < 0)
                                log_warning("pruning expired rows failed, ignoring: %s", strerror(-pr));
                }
        }
        (void) sd_notify(0, "STOPPING=1");
        r = 0;
out:
        http_server_stop(http, t.config ? (unsigned) t.config->request_timeout : 0);
        bus_server_stop(bus); /* needs the workers: its logins may still run */
        workers_free(w);
        if (owned) {
                (void) unlink(t.config->socket_path);
                close(fd);
        }
        store_close(t.store);
        tokend_limits_free(&t);
        keydir_done(&t.keys);
        tokend_config_free(t.config);
        pthread_rwlock_destroy(&t.lock);
        return r;
}

/* OpenSSL 3 keeps the private parts of EVP keys (RSA and EC private
 * numbers, Ed25519 seeds) in its secure heap once there is one: mlock'ed,
 * MADV_DONTDUMP, guard pages. Sized for a few hundred keys, twice over
 * during a reload (old and new sets); if it cannot be locked (RLIMIT_MEMLOCK)
 * it still works, unlocked. */
static void secure_heap_init(void) {
        int r = CRYPTO_secure_malloc_init(SECURE_HEAP_BYTES, SECURE_HEAP_MIN);
        if (r == 0)
                log_warning("cannot set up the OpenSSL secure heap; private keys are in ordinary memory");
        else if (r == 2)
                log_warning("the OpenSSL secure heap could not be locked (RLIMIT_MEMLOCK?); keys may be swapped");
}

int main(int argc, char **argv) {
        options o = { 0 };
        int r;

        /* No core dump, and no ptrace or /proc/PID/mem by other processes of
         * tokend's user: its memory holds keys, passwords and tokens. */
        int dumpable_err = prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 ? errno : 0;
        /* Before any thread exists: it edits the environment. */
        o.env_passphrase = keydir_take_env_passphrase();
        if (parse_args(argc, argv, &o) < 0) {
                keydir_passphrase_free(o.env_passphrase);
                return 2;
        }
        log_setup(o.verbose);
        if (dumpable_err)
                log_warning("prctl(PR_SET_DUMPABLE, 0) failed, ignoring: %s", strerror(dumpable_err));
        secure_heap_init();
        /* Request and answer JSON holds passwords, refresh and access tokens. */
        json_set_alloc_funcs(malloc, td_json_wiping_free);
        if (o.check)
                r = check_config(&o);
        else
                r = run(&o) < 0 ? 1 : 0;
        keydir_passphrase_free(o.env_passphrase);
        return r;
}
