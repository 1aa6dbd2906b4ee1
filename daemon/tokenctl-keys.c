/* SPDX-License-Identifier: MIT */
/* tokenctl keys generate|rotate|list|jwks: tokend's signing keys, through
 * the key directory functions tokend itself uses (tokend-keydir.h). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jose-jwk.h"
#include "timespan.h"
#include "tokenctl.h"
#include "tokend-config.h"
#include "tokend-keydir.h"

static const char usage[] =
        "Usage: tokenctl keys generate|rotate|list|jwks [--dir D] [--alg A] [--passphrase-file F]\n"
        "Manage tokend's signing keys (every *.pem of the key directory verifies; the newest,\n"
        "or the one named by [Keys] Active=, signs).\n"
        "  generate             create a new key (mode 0600) in the directory\n"
        "  rotate               create a new key that becomes the newest; old keys keep verifying\n"
        "  list                 file, kid, algorithm, and which key signs\n"
        "  jwks                 the public keys as a JWKS (for tokenctl verify --jwks, other hosts)\n"
        "  --dir D              key directory (default: [Keys] Directory= of " TOKEND_CONFIG_PATH ",\n"
        "                       else " TOKENCTL_DEFAULT_KEYDIR ")\n"
        "  --alg A              EdDSA (default), ES256, RS256 or PS256\n"
        "  --passphrase-file F  passphrase of encrypted keys (default: [Keys] PassphraseFile=,\n"
        "                       else $TOKEND_PASSPHRASE); generate/rotate encrypt with it\n";

typedef struct keys_opts {
        const tc_ctx *ctx;
        const char *dir;
        const char *passphrase_file;
        jose_alg alg;
} keys_opts;

enum { OPT_DIR = OPT_FIRST_VERB_OPTION, OPT_ALG, OPT_PASSFILE };

static int on_opt(void *userdata, int val, const char *arg) {
        keys_opts *o = userdata;
        switch (val) {
        case OPT_DIR: o->dir = arg; return 0;
        case OPT_PASSFILE: o->passphrase_file = arg; return 0;
        case OPT_ALG:
                o->alg = jose_alg_from_string(arg);
                if (o->alg == JOSE_ALG_INVALID)
                        return tc_usage_error(o->ctx, usage, "--alg %s: use EdDSA, ES256, RS256 or PS256", arg);
                return 0;
        }
        return EXIT_USAGE;
}

/* Settings of one keys command: the explicit options, else tokend.conf. */
typedef struct keys_env {
        char *dir;
        char *active;      /* [Keys] Active= or NULL */
        char *passphrase;  /* secret, may be NULL */
        jose_alg config_alg;
        int64_t lifetime;  /* AccessTokenLifetime */
} keys_env;

static void keys_env_done(keys_env *e) {
        free(e->dir);
        free(e->active);
        keydir_passphrase_free(e->passphrase);
}

static int keys_env_load(const tc_ctx *ctx, const keys_opts *o, keys_env *ret) {
        _cleanup_(tokend_config_freep) tokend_config *cfg = NULL;
        _cleanup_(freep) char *err = NULL;
        keys_env e = { .config_alg = JOSE_ALG_EDDSA, .lifetime = 15 * 60 };
        const char *pf = o->passphrase_file;
        int r;

        if (!o->dir) {
                /* Work on the directory tokend uses. */
                r = tokend_config_load(NULL, NULL, &cfg, &err);
                if (r < 0)
                        return tc_error(ctx, -EINVAL, "%s; fix it or pass --dir", err ? err : strerror(-r));
                e.config_alg = cfg->algorithm;
                e.lifetime = cfg->access_token_lifetime;
                if (!pf)
                        pf = cfg->keys_passphrase_file;
                if (cfg->keys_active && !(e.active = strdup(cfg->keys_active)))
                        return -ENOMEM;
        }
        if (!(e.dir = strdup(o->dir ? o->dir : cfg ? cfg->keys_directory : TOKENCTL_DEFAULT_KEYDIR))) {
                keys_env_done(&e);
                return -ENOMEM;
        }
        r = keydir_passphrase(pf, getenv("TOKEND_PASSPHRASE"), &e.passphrase);
        if (r < 0) {
                tc_error(ctx, r, "cannot read the passphrase%s%s: %s", pf ? " from " : "", pf ? pf : "", strerror(-r));
                keys_env_done(&e);
                return r;
        }
        *ret = e;
        return 0;
}

static int load_dir(const tc_ctx *ctx, const keys_env *e, keydir *ret) {
        _cleanup_(freep) char *err = NULL;
        int r = keydir_load(e->dir, KEYDIR_OWNER_OF_DIR, e->active, e->passphrase, ret, &err);
        if (r == -ENOENT)
                return tc_error(ctx, r, "no keys in %s: create one with tokenctl keys generate --dir %s", e->dir, e->dir);
        if (r == -EACCES)
                return tc_error(ctx, r, "cannot read %s: permission denied (the key directory is root's)", e->dir);
        if (r < 0)
                return tc_error(ctx, r, "%s", err ? err : strerror(-r));
        return 0;
}

static int new_key(const tc_ctx *ctx, const keys_env *e, jose_alg alg, char **ret_path, char **ret_kid) {
        _cleanup_(jose_key_freep) jose_key *k = NULL;
        _cleanup_(freep) char *path = NULL;
        int r;

        _cleanup_(freep) char *err = NULL;
        r = keydir_generate(e->dir, alg, e->passphrase, &path, &err);
        if (r < 0)
                return err ? tc_error(ctx, r, "%s", err) :
                             tc_error(ctx, r, "cannot create a key in %s: %s", e->dir, strerror(-r));
        r = jose_key_load_pem_file(path, e->passphrase, &k);
        if (r < 0)
                return tc_error(ctx, r, "the new key %s cannot be read back: %s", path, strerror(-r));
        if (!(*ret_kid = strdup(jose_key_kid(k))))
                return -ENOMEM;
        *ret_path = TAKE_PTR(path);
        return 0;
}

static void print_new_key(const tc_ctx *ctx, const char *path, const char *kid, jose_alg alg) {
        if (ctx->json) {
                _cleanup_(json_decrefp) json_t *j = json_pack("{s:s,s:s,s:s}", "file", path, "kid", kid, "alg",
                                                              jose_alg_to_string(alg));
                tc_print_json(ctx, j);
        } else
                printf("Generated %s key %s (kid %s).\n", jose_alg_to_string(alg), path, kid);
}

static int keys_generate(const tc_ctx *ctx, const keys_opts *o, const keys_env *e) {
        _cleanup_(freep) char *path = NULL, *kid = NULL;
        jose_alg alg = o->alg ? o->alg : e->config_alg;
        if (new_key(ctx, e, alg, &path, &kid) < 0)
                return EXIT_REFUSED;
        print_new_key(ctx, path, kid, alg);
        return EXIT_OK;
}

static int keys_rotate(const tc_ctx *ctx, const keys_opts *o, const keys_env *e) {
        _cleanup_(freep) char *path = NULL, *kid = NULL, *err = NULL;
        char span[TIMESPAN_FORMAT_MAX];
        keydir kd = { 0 };
        jose_alg alg = o->alg;

        /* Keep the algorithm of the key that signs now, unless told otherwise. */
        if (!alg && keydir_load(e->dir, KEYDIR_OWNER_OF_DIR, e->active, e->passphrase, &kd, &err) >= 0)
                alg = jose_key_alg(kd.active);
        keydir_done(&kd);
        if (!alg)
                alg = e->config_alg;
        if (new_key(ctx, e, alg, &path, &kid) < 0)
                return EXIT_REFUSED;
        print_new_key(ctx, path, kid, alg);
        if (ctx->json)
                return EXIT_OK;
        printf("It is the newest key, so it signs new tokens once tokend reloads: systemctl reload tokend\n"
               "(or SIGHUP). Old keys stay in %s and keep verifying the tokens they signed\n"
               "until those expire: remove them after AccessTokenLifetime (%s) has passed.\n",
               e->dir, timespan_format(e->lifetime, span, sizeof span));
        if (e->active)
                fprintf(stderr, "Note: [Keys] Active=%s pins the signing key; set it to %s (or empty it) to "
                        "switch.\n", e->active, strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
        return EXIT_OK;
}

static int pem_filter(const struct dirent *de) {
        return keydir_is_key_name(de->d_name);
}

static int keys_list(const tc_ctx *ctx, const keys_env *e) {
        _cleanup_(json_decrefp) json_t *arr = json_array();
        _cleanup_(freep) char *err = NULL, *dir_err = NULL;
        _cleanup_(closep) int dfd = -EBADF;
        struct dirent **des = NULL;
        keydir kd = { 0 };
        uid_t owner;
        int n;

        /* The same checks tokend makes, on the same open directory. */
        dfd = keydir_open(e->dir, KEYDIR_OWNER_OF_DIR, &owner, &dir_err);
        if (dfd < 0)
                return dir_err ? tc_error(ctx, EXIT_REFUSED, "%s", dir_err) :
                                 tc_error(ctx, EXIT_REFUSED, "cannot read %s: %s", e->dir, strerror(-dfd));
        n = scandirat(dfd, ".", &des, pem_filter, alphasort);
        if (n < 0)
                return tc_error(ctx, EXIT_REFUSED, "cannot read %s: %m", e->dir);
        bool have_active = keydir_load(e->dir, KEYDIR_OWNER_OF_DIR, e->active, e->passphrase, &kd, &err) >= 0;
        if (!ctx->json)
                printf("  %-40s %-14s %-6s\n", "FILE", "KID", "ALG");
        for (int i = 0; i < n; i++) {
                _cleanup_(jose_key_freep) jose_key *k = NULL;
                _cleanup_(freep) char *why = NULL;
                bool active = have_active && streq(des[i]->d_name, kd.active_file);
                int r = keydir_load_key(dfd, des[i]->d_name, owner, e->passphrase, &k, NULL, &why);
                if (r > 0 && !(why = strdup("not a regular file (skipped)")))
                        r = -ENOMEM;
                const char *w = r != 0 ? why ? why : strerror(r < 0 ? -r : ENOMEM) : NULL;
                if (ctx->json)
                        json_array_append_new(arr, json_pack("{s:s,s:s?,s:s?,s:b,s:s?}", "file", des[i]->d_name, "kid",
                                                             k ? jose_key_kid(k) : NULL, "alg",
                                                             k ? jose_alg_to_string(jose_key_alg(k)) : NULL, "active",
                                                             active, "error", w));
                else if (k)
                        printf("%s %-40s %-14s %-6s%s\n", active ? "*" : " ", des[i]->d_name, jose_key_kid(k),
                               jose_alg_to_string(jose_key_alg(k)), active ? "  signs new tokens" : "");
                else
                        printf("  %-40s (cannot load: %s)\n", des[i]->d_name, w);
                free(des[i]);
        }
        free(des);
        if (ctx->json) {
                _cleanup_(json_decrefp) json_t *j = json_pack("{s:O}", "keys", arr);
                if (!j) {
                        keydir_done(&kd);
                        return tc_error(ctx, EXIT_REFUSED, "out of memory");
                }
                tc_print_json(ctx, j);
        } else if (n == 0)
                printf("  (no keys in %s)\n", e->dir);
        else if (!have_active)
                fprintf(stderr, "Note: tokend could not load this directory: %s\n", err ? err : "unknown reason");
        keydir_done(&kd);
        return EXIT_OK;
}

static int keys_jwks(const tc_ctx *ctx, const keys_env *e) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        keydir kd = { 0 };
        if (load_dir(ctx, e, &kd) < 0)
                return EXIT_REFUSED;
        int r = jose_keyset_to_jwks(kd.keys, &j);
        keydir_done(&kd);
        if (r < 0)
                return tc_error(ctx, EXIT_REFUSED, "cannot export the public keys");
        tc_print_json(ctx, j);
        return EXIT_OK;
}

int verb_keys(tc_ctx *ctx, int argc, char **argv) {
        static const struct option opts[] = {
                { "dir", required_argument, NULL, OPT_DIR },
                { "alg", required_argument, NULL, OPT_ALG },
                { "passphrase-file", required_argument, NULL, OPT_PASSFILE },
                TC_COMMON_OPTIONS,
        };
        static const char *const subs[] = { "generate", "rotate", "list", "jwks" };
        static const char *const names[] = { "keys generate", "keys rotate", "keys list", "keys jwks" };
        keys_opts o = { .ctx = ctx };
        keys_env e = { 0 };
        int r, ex;
        size_t i;

        if ((r = tc_parse_options(ctx, argc, argv, opts, usage, on_opt, &o, &ex)) < 0)
                return ex;
        if (argc == r)
                return tc_usage_error(ctx, usage, "a subcommand is needed");
        if (argc - r > 1)
                return tc_usage_error(ctx, usage, "unexpected argument '%s'", argv[r + 1]);
        for (i = 0; i < ELEMENTSOF(subs) && !streq(argv[r], subs[i]); i++)
                ;
        if (i == ELEMENTSOF(subs))
                return tc_usage_error(ctx, usage, "unknown subcommand '%s'", argv[r]);
        ctx->verb = names[i];
        if (o.alg && i >= 2)
                return tc_usage_error(ctx, usage, "--alg only applies to generate and rotate");
        if (keys_env_load(ctx, &o, &e) < 0)
                return EXIT_REFUSED;
        switch (i) {
        case 0: ex = keys_generate(ctx, &o, &e); break;
        case 1: ex = keys_rotate(ctx, &o, &e); break;
        case 2: ex = keys_list(ctx, &e); break;
        default: ex = keys_jwks(ctx, &e); break;
        }
        keys_env_done(&e);
        return ex;
}
