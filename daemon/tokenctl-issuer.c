/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tokenctl-issuer.h"
#include "tokenctl-state.h"

#define CONF_FILE "tokend/tokenctl.conf"

typedef struct conf {
        const tc_ctx *ctx;
        const char *path;
        char *issuer, *ca_file;
        int error_line;
} conf;

static int on_conf(void *user, const char *section, const char *name, const char *value) {
        conf *c = user;
        char **field = streq(name, "issuer") ? &c->issuer : streq(name, "ca-file") ? &c->ca_file : NULL;
        if (*section || !field) {
                tc_error(c->ctx, 0, "%s: unknown key %s%s%s, ignoring (known: issuer=, ca-file=)", c->path,
                         *section ? section : "", *section ? "." : "", name);
                return 1;
        }
        free(*field);
        return (*field = strdup(value)) != NULL;
}

/* issuer= and ca-file= of the configuration file, if there is one. */
static int read_conf(tc_ctx *ctx, conf *c) {
        _cleanup_(freep) char *base = NULL, *path = NULL;
        if (tc_xdg_dir("XDG_CONFIG_HOME", ".config", &base) < 0 || !(path = tc_path_join(base, CONF_FILE)))
                return 0; /* no home: no file */
        FILE *f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? 0 : tc_error(ctx, EXIT_USAGE, "cannot read %s: %m", path);
        c->ctx = ctx;
        c->path = path;
        int r = ini_parse_file(f, on_conf, c);
        fclose(f);
        if (r != 0)
                return tc_error(ctx, EXIT_USAGE, r > 0 ? "%s:%d: not a key=value line" : "%s: cannot parse (%d)",
                                path, r);
        return 0;
}

/* https://HOST[:PORT][/PATH], printable, no userinfo, query or fragment. */
static const char *url_problem(const char *u) {
        if (strncasecmp(u, "https://", 8) != 0)
                return "must be an https:// URL (certificate verification is always on)";
        if (strlen(u) > TC_ISSUER_URL_MAX)
                return "is too long";
        if (!u[8] || u[8] == '/')
                return "has no host";
        for (const char *p = u; *p; p++)
                if ((unsigned char) *p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#' || *p == '@' || *p == '\\')
                        return "must not contain spaces, control characters, a user name, a query or a fragment";
        return NULL;
}

int tc_issuer_setup(tc_ctx *ctx) {
        const char *env = getenv("TOKEND_ISSUER"), *env_socket = getenv("TOKEND_SOCKET");
        bool local_given = ctx->socket_given || ctx->bus;
        conf c = { 0 };
        int r = EXIT_OK;

        if (ctx->issuer_given && local_given)
                return tc_error(ctx, EXIT_USAGE, "--issuer excludes --socket and --bus: pick one way to tokend");
        if ((r = read_conf(ctx, &c)) != 0)
                goto out;
        if (!ctx->issuer && !local_given && env && *env)
                ctx->issuer = env;
        if (!ctx->issuer && !local_given && !(env_socket && *env_socket) && c.issuer && *c.issuer)
                ctx->issuer = c.issuer;
        if (!ctx->ca_file && c.ca_file && *c.ca_file)
                ctx->ca_file = c.ca_file;
        if (!ctx->issuer)
                goto out;
        const char *why = url_problem(ctx->issuer);
        if (why) {
                r = tc_error(ctx, EXIT_USAGE, "issuer %s %s", ctx->issuer, why);
                goto out;
        }
        /* No trailing slash: paths are appended ("/api/auth/login"). */
        size_t n = strlen(ctx->issuer);
        while (n > 8 && ctx->issuer[n - 1] == '/')
                n--;
        if (!(ctx->owned_issuer = strndup(ctx->issuer, n))) {
                r = tc_error(ctx, EXIT_REFUSED, "out of memory");
                goto out;
        }
        ctx->issuer = ctx->owned_issuer;
out:
        free(c.issuer);
        if (ctx->ca_file == c.ca_file && c.ca_file) {
                ctx->owned_ca_file = c.ca_file;
                c.ca_file = NULL;
        }
        free(c.ca_file);
        if (r != EXIT_OK)
                ctx->issuer = NULL;
        return r;
}

void tc_issuer_done(tc_ctx *ctx) {
        free(ctx->owned_issuer);
        free(ctx->owned_ca_file);
        erase_and_free(ctx->bearer);
        ctx->owned_issuer = ctx->owned_ca_file = ctx->bearer = NULL;
}
