/* SPDX-License-Identifier: MIT */
/* tokend: the command line, --check-config, and the main loop: build the
 * context (tokend.c), start its front ends, then wait on signals (SIGHUP
 * reload, SIGTERM stop), the prune timer and sd_notify. Everything else
 * lives in the context, service, store and front-end modules. */
#include <getopt.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "json-util.h"
#include "macro.h"
#include "str-escape.h"
#include "tokend-log.h"
#include "tokend-service.h"
#include "tokend.h"

#define PRUNE_INTERVAL TD_MAINTENANCE_INTERVAL
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
        if (tokend_apply_overrides(c, o->socket, o->bus) < 0)
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

static int run(const options *o) {
        const tokend_params p = {
                .config = o->config,
                .state_dir = o->state_dir,
                .socket = o->socket,
                .bus = o->bus,
                .env_passphrase = o->env_passphrase,
        };
        _cleanup_(tokend_freep) tokend *t = NULL;
        sigset_t ss;
        int r;

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGHUP);
        /* Blocked before any thread starts, so every thread inherits it. */
        pthread_sigmask(SIG_BLOCK, &ss, NULL);
        signal(SIGPIPE, SIG_IGN);

        if ((r = tokend_new(&p, &t)) < 0)
                return r;
        log_info("OpenSSL secure heap: %zu bytes of %u KiB in use by the keys%s", CRYPTO_secure_used(),
                 SECURE_HEAP_BYTES >> 10, CRYPTO_secure_malloc_initialized() ? "" : " (not available)");
        /* Before serving: which key signs depends on what was published when. */
        if ((r = td_publish_keys(t)) < 0)
                log_warning("publishing the public keys failed, ignoring: %s", strerror(-r));
        if ((r = tokend_startup(t)) < 0)
                return r;
        log_info("ready: socket %s, database %s, %zu key(s), active %s (%s, kid %s)", t->config->socket_path,
                 t->config->database, jose_keyset_size(t->keys.keys), t->keys.active_file,
                 jose_alg_to_string(jose_key_alg(t->keys.active)), jose_key_kid(t->keys.active));
        (void) sd_notifyf(0, "READY=1\nSTATUS=Serving %s\nMAINPID=%lu", t->config->socket_path,
                          (unsigned long) getpid());

        for (;;) {
                struct timespec ts = { PRUNE_INTERVAL, 0 };
                int sig = sigtimedwait(&ss, NULL, &ts);
                if (sig == SIGHUP) {
                        (void) sd_notify(0, "RELOADING=1");
                        if (tokend_reload(t) >= 0 && (r = td_publish_keys(t)) < 0) /* reload failures are logged */
                                log_warning("publishing the public keys failed, ignoring: %s", strerror(-r));
                        (void) sd_notify(0, "READY=1");
                } else if (sig == SIGTERM || sig == SIGINT) {
                        log_info("stopping on %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                        break;
                } else if (sig < 0 && errno == EAGAIN) {
                        int pr = store_prune(t->store, (int64_t) time(NULL));
                        if (pr < 0)
                                log_warning("pruning expired rows failed, ignoring: %s", strerror(-pr));
                        pr = td_publish_keys(t);
                        if (pr < 0)
                                log_warning("publishing the public keys failed, ignoring: %s", strerror(-pr));
                }
        }
        (void) sd_notify(0, "STOPPING=1");
        return 0;
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
