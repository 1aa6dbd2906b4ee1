/* SPDX-License-Identifier: MIT */
/* tokenctl login, logout, status: enrolling this device (password or peer
 * identity, a fresh Ed25519 device key), revoking it, and showing state. */
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "b64.h"
#include "jose-key.h"
#include "json-util.h"
#include "tokenctl-device.h"
#include "tokenctl-devices.h"
#include "tokenctl-token.h"
#include "tokenctl-transport.h"
#include "tokenctl.h"

#define PASSWORD_MAX 4096U
#define DEVICE_NAME_MAX 128U

/* The terminal state to restore if a signal interrupts the password prompt. */
static struct termios saved_tio;
static volatile sig_atomic_t tio_changed;

static void restore_tty_and_die(int sig) {
        if (tio_changed)
                (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
        signal(sig, SIG_DFL);
        raise(sig);
}

/* One line from stdin into buf (size ≥ 2), without echo on a terminal.
 * Reads byte by byte so no stdio buffer keeps a copy. */
static int read_password(const tc_ctx *ctx, const char *user, char *buf, size_t size) {
        static const int sigs[] = { SIGINT, SIGTERM, SIGQUIT, SIGHUP };
        struct sigaction sa = { .sa_handler = restore_tty_and_die }, old[ELEMENTSOF(sigs)];
        bool tty = isatty(STDIN_FILENO);
        size_t n = 0;
        bool too_long = false;
        int r = 0;

        if (tty) {
                struct termios t;
                if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
                        return tc_error(ctx, -errno, "cannot read the terminal settings: %m");
                for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                        (void) sigaction(sigs[i], &sa, &old[i]);
                t = saved_tio;
                t.c_lflag &= ~(tcflag_t) ECHO;
                t.c_lflag |= ECHONL;
                /* Echo off before the prompt: TCSAFLUSH drops what was typed
                 * ahead, so nothing typed after the prompt may be lost. */
                if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0)
                        tio_changed = 1;
                fprintf(stderr, "Password for %s: ", user);
                fflush(stderr);
        }
        for (;;) {
                char ch;
                ssize_t k = read(STDIN_FILENO, &ch, 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = tc_error(ctx, -errno, "cannot read the password: %m");
                        break;
                }
                if (k == 0 || ch == '\n')
                        break;
                if (n + 1 >= size)
                        too_long = true;
                else
                        buf[n++] = ch;
                ch = 0;
        }
        if (tty) {
                if (tio_changed)
                        (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
                tio_changed = 0;
                for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                        (void) sigaction(sigs[i], &old[i], NULL);
        }
        while (n > 0 && buf[n - 1] == '\r')
                n--;
        buf[n] = 0;
        if (r < 0)
                return r;
        if (too_long)
                return tc_error(ctx, -E2BIG, "the password is longer than %zu bytes", size - 1);
        if (n == 0)
                return tc_error(ctx, -EINVAL, "no password given (type it, or pipe it on stdin)");
        return 0;
}

typedef struct login_opts {
        const tc_ctx *ctx;
        const char *usage;
        const char *user;
        const char *device_name;
        bool peer;
        bool device;
} login_opts;

enum { OPT_USER = OPT_FIRST_VERB_OPTION, OPT_DEVICE_NAME, OPT_PEER, OPT_DEVICE };

static int on_login_opt(void *userdata, int val, const char *arg) {
        login_opts *o = userdata;
        switch (val) {
        case OPT_USER:
                o->user = arg;
                return 0;
        case OPT_DEVICE_NAME:
                if (!*arg || strlen(arg) > DEVICE_NAME_MAX)
                        return tc_usage_error(o->ctx, o->usage, "--device-name must be 1-%u bytes",
                                              DEVICE_NAME_MAX);
                o->device_name = arg;
                return 0;
        case OPT_PEER:
                o->peer = true;
                return 0;
        case OPT_DEVICE:
                o->device = true;
                return 0;
        }
        return EXIT_USAGE;
}

/* A new Ed25519 device key: PEM for the state file, base64url public key for tokend. */
static int new_device_key(char **ret_pem, char **ret_pub) {
        _cleanup_(jose_key_freep) jose_key *k = NULL;
        _cleanup_(erase_and_freep) char *pem = NULL;
        uint8_t pk[32];
        int r;

        if ((r = jose_key_generate(JOSE_ALG_EDDSA, &k)) < 0 || (r = jose_key_ed25519_public(k, pk)) < 0 ||
            (r = jose_key_to_pem(k, NULL, &pem)) < 0 || (r = b64url_encode(pk, sizeof pk, ret_pub)) < 0)
                return r;
        *ret_pem = TAKE_PTR(pem);
        return 0;
}

static void print_login(const tc_ctx *ctx, const tc_creds *c, int64_t exp) {
        char w1[128], w2[128];
        if (ctx->json) {
                _cleanup_(json_decrefp) json_t *j = json_pack(
                        "{s:s,s:I,s:s,s:I,s:I}", "user", c->user, "uid", (json_int_t) c->uid, "device_id", c->device_id,
                        "expires_at", (json_int_t) exp, "refresh_expires_at", (json_int_t) c->refresh_expires_at);
                tc_print_json(ctx, j);
                return;
        }
        char su[1024], sd[256];
        printf("Logged in as %s on device %s.\nAccess token valid until %s; refresh token %s%s.\n",
               tc_safe(c->user, su, sizeof su), tc_safe(c->device_id, sd, sizeof sd), tc_format_time(exp, w1, sizeof w1), c->refresh_expires_at ? "valid until " : "",
               c->refresh_expires_at ? tc_format_time(c->refresh_expires_at, w2, sizeof w2) : "never expires");
}

/* What this machine runs, for the default device name: os-release(5)'s
 * PRETTY_NAME, else uname's system and release; printable ASCII only. */
static void os_name(char *buf, size_t size) {
        static const char *const files[] = { "/etc/os-release", "/usr/lib/os-release" };
        char line[512];
        struct utsname u;

        buf[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(files) && !buf[0]; i++) {
                FILE *f = fopen(files[i], "re");
                if (!f)
                        continue;
                while (!buf[0] && fgets(line, sizeof line, f))
                        if (strncmp(line, "PRETTY_NAME=", 12) == 0) {
                                char *v = line + 12;
                                v[strcspn(v, "\n")] = 0;
                                size_t n = strlen(v);
                                if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
                                        v[n - 1] = 0;
                                        v++;
                                }
                                snprintf(buf, size, "%.*s", (int) size - 1, v);
                        }
                fclose(f);
        }
        if (!buf[0] && uname(&u) == 0)
                snprintf(buf, size, "%.40s %.40s", u.sysname, u.release);
        for (char *p = buf; *p; p++)
                if (*p < ' ' || *p > '~')
                        *p = '?';
}

/* "HOST (Debian GNU/Linux 12 (bookworm))": which machine, and what it runs. */
static void default_device_name(char *buf, size_t size) {
        char host[256] = "localhost", os[128];

        if (gethostname(host, sizeof host - 1) < 0 || !host[0])
                snprintf(host, sizeof host, "localhost");
        for (char *p = host; *p; p++)
                if (*p < ' ' || *p > '~')
                        *p = '?';
        os_name(os, sizeof os);
        if (os[0])
                snprintf(buf, size, "%.64s (%s)", host, os);
        else
                snprintf(buf, size, "%.64s", host);
}

int verb_login(tc_ctx *ctx, int argc, char **argv) {
        static const char usage[] =
                "Usage: tokenctl login [--user U] [--device-name N] [--peer | --device]\n"
                "Enrol this device: authenticate to tokend, register a new Ed25519 device key and\n"
                "store the device id, refresh token and key (mode 0600) under\n"
                "$XDG_STATE_HOME/tokend/ (default ~/.local/state/tokend/).\n"
                "The password is read from the terminal without echo, or from stdin.\n"
                "  --user U          user to log in as (default: you)\n"
                "  --device-name N   name shown in tokenctl devices (default: HOST (OS), e.g.\n"
                "                    \"vm (Debian GNU/Linux 12 (bookworm))\")\n"
                "  --peer            no password: tokend trusts your local uid (root: any --user)\n"
                "  --device          no password here (RFC 8628): prints a URL and a code to\n"
                "                    approve in a browser or with tokenctl device approve CODE\n"
                "                    elsewhere, and waits for it\n";
        static const struct option opts[] = {
                { "user", required_argument, NULL, OPT_USER },
                { "device-name", required_argument, NULL, OPT_DEVICE_NAME },
                { "peer", no_argument, NULL, OPT_PEER },
                { "device", no_argument, NULL, OPT_DEVICE },
                TC_COMMON_OPTIONS,
        };
        login_opts o = { .ctx = ctx, .usage = usage };
        _cleanup_(freep) char *dir = NULL, *pub = NULL, *old_device = NULL, *cred_path = NULL;
        _cleanup_(closep) int lock = -EBADF;
        char password[PASSWORD_MAX + 1], name[DEVICE_NAME_MAX + 1];
        tc_creds c = { 0 }, old = { 0 };
        tc_answer a = { 0 };
        int64_t exp = 0;
        int r, ex;

        if ((r = tc_parse_options(ctx, argc, argv, opts, usage, on_login_opt, &o, &ex)) < 0)
                return ex;
        if (r < argc)
                return tc_usage_error(ctx, usage, "unexpected argument '%s'", argv[r]);
        const tc_transport *t = tc_transport_of(ctx);
        if (o.peer && o.device)
                return tc_usage_error(ctx, usage, "--peer and --device exclude each other");
        if (o.device && o.user)
                return tc_usage_error(ctx, usage, "--user: with --device, the person who approves the code "
                                      "chooses the user");
        if (o.peer && o.device_name && t->peer_device_name)
                return tc_usage_error(ctx, usage, "--device-name: a peer login over %s names the device \"%s\"; "
                                      "drop --device-name, or --bus for the socket", t->name, t->peer_device_name);
        const char *user = o.user;
        if (!user) {
                struct passwd *pw = getpwuid(getuid());
                if (!pw)
                        return tc_error(ctx, EXIT_USAGE, "your uid %u has no user name: use --user",
                                        (unsigned) getuid());
                user = pw->pw_name;
        }
        _cleanup_(freep) char *user_copy = strdup(user);
        if (!user_copy)
                return tc_error(ctx, EXIT_REFUSED, "out of memory");
        if (o.peer && t->peer_device_name)
                snprintf(name, sizeof name, "%s", t->peer_device_name);
        else if (!o.device_name)
                default_device_name(name, sizeof name);
        if (tc_state_dir(ctx, true, &dir) < 0)
                return EXIT_REFUSED;
        c = (tc_creds){ .user = NULL, .created = time(NULL) };
        /* Only a key tokend registers is kept: a proof by an unknown key
         * would be refused at the first refresh. */
        if (t->registers_device_key && new_device_key(&c.device_key_pem, &pub) < 0) {
                tc_creds_done(&c);
                return tc_error(ctx, EXIT_REFUSED, "cannot generate the device key");
        }
        tc_login_req req = { .user = o.peer ? o.user : user_copy, .device_name = o.device_name ? o.device_name : name,
                             .device_key = pub };
        if (o.device)
                r = tc_device_grant(ctx, &req, &a);
        else if (!o.peer) {
                if (read_password(ctx, user_copy, password, sizeof password) < 0) {
                        explicit_bzero(password, sizeof password);
                        tc_creds_done(&c);
                        return EXIT_USAGE;
                }
                req.password = password;
        }
        if (!o.device)
                r = t->login(ctx, &req, &a);
        explicit_bzero(password, sizeof password);
        if (r < 0) {
                tc_creds_done(&c);
                return tc_transport_exit(r);
        }
        if (!tc_answer_ok(&a)) {
                ex = tc_answer_fail(ctx, &a);
                goto out;
        }
        const json_t *u = json_object_get(a.body, "user");
        const char *uname = u ? td_json_object_get_str(u, "name") : NULL;
        if (!uname || td_json_object_get_int_range(u, "uid", 0, UINT32_MAX, &c.uid) < 0 || !(c.user = strdup(uname)) ||
            !(c.device_name = strdup(o.device_name ? o.device_name : name))) {
                ex = tc_error(ctx, EXIT_REFUSED, "tokend's answer lacks the user; is this really tokend?");
                goto out;
        }
        if ((lock = tc_state_lock(ctx, dir)) < 0) {
                ex = EXIT_REFUSED;
                goto out;
        }
        /* The device of an earlier login stays enrolled on the server: say so. */
        cred_path = tc_path_join(dir, TC_CREDENTIALS_FILE);
        if (cred_path && access(cred_path, F_OK) == 0 && tc_creds_load(ctx, dir, &old) >= 0)
                old_device = TAKE_PTR(old.device_id);
        tc_creds_done(&old);
        ex = tc_apply_answer(ctx, dir, &c, NULL, a.body, true, NULL, &exp);
        if (ex != EXIT_OK)
                goto out;
        print_login(ctx, &c, exp);
        if (!t->registers_device_key)
                fprintf(stderr, "Note: %s enrols devices without a device key, so this refresh token works "
                        "without a proof; log in without --bus to bind it to this machine's key.\n", t->name);
        if (old_device && !streq(old_device, c.device_id))
                fprintf(stderr, "Note: this replaces the earlier login of device %s; revoke it with: "
                        "tokenctl devices revoke %s\n", old_device, old_device);
out:
        tc_answer_done(&a);
        tc_creds_done(&c);
        return ex;
}

int verb_logout(tc_ctx *ctx, int argc, char **argv) {
        static const char usage[] =
                "Usage: tokenctl logout\n"
                "Revoke this device at tokend (every token of it stops working) and delete the\n"
                "local credentials.\n";
        static const struct option opts[] = {
                TC_COMMON_OPTIONS,
        };
        _cleanup_(freep) char *dir = NULL, *tok = NULL;
        _cleanup_(closep) int lock = -EBADF;
        tc_creds c = { 0 };
        tc_answer a = { 0 };
        int r, ex;

        if ((r = tc_parse_options(ctx, argc, argv, opts, usage, NULL, NULL, &ex)) < 0)
                return ex;
        if (r < argc)
                return tc_usage_error(ctx, usage, "unexpected argument '%s'", argv[r]);
        if (tc_state_dir(ctx, false, &dir) < 0 || tc_creds_load(ctx, dir, &c) < 0)
                return EXIT_REFUSED;
        ex = tc_access_token(ctx, NULL, false, 0, &tok, NULL);
        if (ex == EXIT_UNREACHABLE)
                goto out;
        if (ex == EXIT_OK) {
                r = tc_transport_of(ctx)->logout(ctx, tok, &a);
                if (r < 0) {
                        ex = tc_transport_exit(r);
                        goto out;
                }
                if (!tc_answer_ok(&a) && a.status != 401) {
                        ex = tc_answer_fail(ctx, &a);
                        goto out;
                }
        }
        /* Refused refresh or 401: tokend no longer accepts this device, so
         * the local credentials are useless either way. */
        lock = tc_state_lock(ctx, dir);
        if (lock < 0 || tc_state_remove(ctx, dir) < 0) {
                ex = EXIT_REFUSED;
                goto out;
        }
        bool revoked_now = ex == EXIT_OK && tc_answer_ok(&a);
        if (ctx->json) {
                _cleanup_(json_decrefp) json_t *j = json_pack("{s:s,s:b}", "device_id", c.device_id,
                                                              "already_revoked", !revoked_now);
                tc_print_json(ctx, j);
        } else if (revoked_now)
                printf("Logged out: device %s is revoked and the local credentials are deleted.\n", c.device_id);
        else
                printf("tokend no longer accepts device %s; deleted the local credentials.\n", c.device_id);
        ex = EXIT_OK;
out:
        tc_answer_done(&a);
        tc_creds_done(&c);
        return ex;
}

static json_t *cached_tokens_json(const json_t *cache, const char *device_id) {
        json_t *arr = json_array();
        const char *k;
        json_t *v;
        int64_t exp;

        json_object_foreach((json_t *) cache, k, v) {
                if (!arr)
                        break;
                if (!json_is_object(v) || !streq_ptr(td_json_object_get_str(v, "device_id"), device_id) ||
                    td_json_object_get_int_range(v, "expires_at", 0, INT64_MAX / 2, &exp) < 0)
                        continue;
                /* the default audience is null, as in tokenctl token --json */
                json_array_append_new(arr, json_pack("{s:s?,s:I}", "audience", streq(k, TC_DEFAULT_AUDIENCE_KEY) ?
                                                     NULL : k, "expires_at", (json_int_t) exp));
        }
        return arr;
}

/* Some cached access token of the device, for tc_device_check()'s fallback. */
static const char *any_cached_token(const json_t *cache, const char *device_id) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *) cache, k, v)
                if (json_is_object(v) && streq_ptr(td_json_object_get_str(v, "device_id"), device_id) &&
                    td_json_object_get_str(v, "access_token"))
                        return td_json_object_get_str(v, "access_token");
        return NULL;
}

static bool device_dead(const tc_device_state *ds) {
        return ds->state == TC_DEVICE_REVOKED || ds->state == TC_DEVICE_GONE;
}

static void print_status_text(const tc_ctx *ctx, const tc_creds *c, const json_t *toks, bool reachable,
                              const char *dir, const tc_device_state *ds) {
        char w[256], su[1024], sd[256], sn[512];
        size_t i;
        const json_t *e;
        int64_t exp;

        if (c) {
                /* What tokend answered at login, escaped for the terminal. */
                printf("User:           %s (uid %lld)\n", tc_safe(c->user, su, sizeof su), (long long) c->uid);
                printf("Device:         %s%s%s%s\n", tc_safe(c->device_id, sd, sizeof sd), c->device_name ? " \"" : "",
                       tc_safe(c->device_name, sn, sizeof sn), c->device_name ? "\"" : "");
                if (reachable)
                        printf("Device state:   %s%s\n", tc_device_state_text(ds, w, sizeof w),
                               device_dead(ds) ? ": run tokenctl login" : "");
                printf("Device key:     %s\n", c->device_key_pem ? "Ed25519 (refresh needs its proof)" : "none");
                if (device_dead(ds)) {
                        /* Whatever the local files say, nothing of a dead device works. */
                        printf("Refresh token:  dead with the device\n");
                        if (json_array_size(toks) > 0)
                                printf("Access tokens:  dead with the device (%zu cached)\n", json_array_size(toks));
                } else if (!c->refresh_expires_at)
                        printf("Refresh token:  never expires\n");
                else
                        printf("Refresh token:  %s %s\n", c->refresh_expires_at > time(NULL) ? "valid until" :
                               "EXPIRED", tc_format_time(c->refresh_expires_at, w, sizeof w));
                if (device_dead(ds))
                        ;
                else if (json_array_size(toks) == 0)
                        printf("Access tokens:  none cached\n");
                json_array_foreach(toks, i, e) {
                        if (device_dead(ds))
                                break;
                        if (td_json_object_get_int_range(e, "expires_at", 0, INT64_MAX / 2, &exp) < 0)
                                exp = 0;
                        printf("%s%s: %s %s\n", i == 0 ? "Access tokens:  " : "                ",
                               td_json_object_get_str(e, "audience"), exp > time(NULL) ? "valid until" : "expired",
                               tc_format_time(exp, w, sizeof w));
                }
        } else
                printf("Not logged in:  run tokenctl login\n");
        char where[TC_BUS_ADDRESS_MAX + 32];
        printf("tokend:         %s on %s\n", reachable ? "reachable" : "NOT reachable",
               tc_transport_where(ctx, where, sizeof where));
        printf("State:          %s\n", dir ? dir : "(none)");
}

int verb_status(tc_ctx *ctx, int argc, char **argv) {
        static const char usage[] =
                "Usage: tokenctl status\n"
                "Show the logged-in user and device, token expiry times and whether tokend answers.\n"
                "Asks tokend whether this device is still alive (not revoked).\n"
                "Exit status: 0 logged in and tokend reachable, 1 not logged in or the device\n"
                "revoked, 3 tokend unreachable (whether logged in or not).\n";
        static const struct option opts[] = {
                TC_COMMON_OPTIONS,
        };
        _cleanup_(freep) char *dir = NULL;
        _cleanup_(json_decrefp) json_t *cache = NULL, *toks = NULL, *out = NULL;
        tc_creds c = { 0 };
        tc_answer a = { 0 };
        tc_device_state ds = { .state = TC_DEVICE_UNKNOWN };
        bool logged_in = false;
        int r, ex;

        if ((r = tc_parse_options(ctx, argc, argv, opts, usage, NULL, NULL, &ex)) < 0)
                return ex;
        if (r < argc)
                return tc_usage_error(ctx, usage, "unexpected argument '%s'", argv[r]);
        if (tc_state_dir(ctx, false, &dir) >= 0 && tc_creds_load(ctx, dir, &c) >= 0) {
                logged_in = true;
                if (tc_tokens_load(ctx, dir, &cache) < 0)
                        cache = json_object();
                toks = cached_tokens_json(cache, c.device_id);
        }
        /* Reachable: tokend answers with its JWKS (GET /.well-known/jwks.json, GetJWKS). */
        bool reachable = tc_transport_of(ctx)->jwks(ctx, &a) >= 0 && tc_answer_ok(&a);
        tc_answer_done(&a);
        if (reachable && logged_in && tc_device_check(ctx, &c, any_cached_token(cache, c.device_id), &ds) != EXIT_OK)
                reachable = false;
        if (ctx->json) {
                out = json_pack("{s:b,s:b,s:s,s:s?}", "logged_in", logged_in, "tokend_reachable", reachable,
                                ctx->issuer ? "issuer" : ctx->bus ? "bus" : "socket",
                                ctx->issuer ?: ctx->bus ?: ctx->socket, "state_dir", dir);
                if (out && logged_in) {
                        json_object_set_new(out, "user", json_string(c.user));
                        json_object_set_new(out, "uid", json_integer(c.uid));
                        json_object_set_new(out, "device_id", json_string(c.device_id));
                        json_object_set_new(out, "device_name", c.device_name ? json_string(c.device_name) : json_null());
                        json_object_set_new(out, "device_key", json_boolean(c.device_key_pem != NULL));
                        json_object_set_new(out, "refresh_expires_at", json_integer(c.refresh_expires_at));
                        json_object_set_new(out, "access_tokens", toks ? json_incref(toks) : json_array());
                        static const char *const states[] = { [TC_DEVICE_UNKNOWN] = "unknown",
                                                              [TC_DEVICE_ALIVE] = "active",
                                                              [TC_DEVICE_REVOKED] = "revoked",
                                                              [TC_DEVICE_GONE] = "gone" };
                        json_object_set_new(out, "device_state", json_string(states[ds.state]));
                        if (ds.state == TC_DEVICE_REVOKED) {
                                json_object_set_new(out, "revoke_reason",
                                                    ds.reason[0] ? json_string(ds.reason) : json_null());
                                json_object_set_new(out, "revoked_at",
                                                    ds.revoked_at ? json_integer(ds.revoked_at) : json_null());
                        }
                }
                tc_print_json(ctx, out);
        } else
                print_status_text(ctx, logged_in ? &c : NULL, toks, reachable, dir, &ds);
        tc_creds_done(&c);
        /* Unreachable wins: a script must tell "tokend down" from "not logged in". */
        return !reachable ? EXIT_UNREACHABLE : !logged_in || device_dead(&ds) ? EXIT_REFUSED : EXIT_OK;
}
