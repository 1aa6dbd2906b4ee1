/* SPDX-License-Identifier: MIT */
/* Test-only command line over common/'s JOSE code, driven by the
 * interoperability tests (tests/interop/test_interop.py): generate keys,
 * export a JWKS, sign and verify compact JWS and access tokens. Not
 * installed. Exit 0 on success, 1 on a refused token or failed operation
 * (the -errno name on stderr), 2 on usage errors. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jose-claims.h"
#include "jose-jwk.h"
#include "jose-jws.h"
#include "jose-key.h"
#include "json-util.h"
#include "macro.h"

#define STDIN_MAX_BYTES (64U * 1024U) /* > JWS_MAX_TOKEN_BYTES, so -E2BIG is testable */
#define JWKS_MAX_BYTES (1024U * 1024U)
#define AT_LIFETIME 900
#define AT_SKEW 30

static int usage(void) {
        fputs("usage: jose-tool gen ALG KEYFILE.pem\n"
              "       jose-tool jwks KEYFILE.pem...\n"
              "       jose-tool sign KEYFILE.pem TYP|- < payload.json\n"
              "       jose-tool at KEYFILE.pem ISSUER SUBJECT AUDIENCE...\n"
              "       jose-tool verify JWKS.json [--no-kid] < token\n"
              "       jose-tool verify-at JWKS.json ISSUER AUDIENCE|- < token\n",
              stderr);
        return 2;
}

/* Report a -errno failure by name (the tests match on it) and return 1. */
static int fail(const char *what, int r) {
        const char *name = strerrorname_np(-r);
        fprintf(stderr, "jose-tool: %s: -%s (%s)\n", what, name ? name : "E?", strerror(-r));
        return 1;
}

/* Read a whole stream, at most max bytes (-E2BIG beyond). NUL-terminated. */
static int read_stream(FILE *f, size_t max, char **ret, size_t *ret_len) {
        _cleanup_(freep) char *buf = malloc(max + 2);
        if (!buf)
                return -ENOMEM;
        size_t n = fread(buf, 1, max + 1, f);
        if (ferror(f))
                return -EIO;
        if (n > max)
                return -E2BIG;
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

static int read_file(const char *path, size_t max, char **ret, size_t *ret_len) {
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        int r = read_stream(f, max, ret, ret_len);
        fclose(f);
        return r;
}

/* The token on stdin, without the trailing newline a shell pipe adds. */
static int read_token(char **ret, size_t *ret_len) {
        char *buf;
        size_t n;
        int r = read_stream(stdin, STDIN_MAX_BYTES, &buf, &n);
        if (r < 0)
                return r;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                buf[--n] = '\0';
        *ret = buf;
        *ret_len = n;
        return 0;
}

/* jwks_skip_fn: a key of the JWKS left out, on stderr, as fail() words it. */
static void key_left_out(void *userdata _unused_, size_t index, const char *kid _unused_, int error) {
        char what[64];

        snprintf(what, sizeof what, "JWKS key %zu left out", index);
        (void) fail(what, error);
}

static int load_keyset(const char *path, jose_keyset **ret) {
        _cleanup_(freep) char *json = NULL;
        size_t len;
        int r = read_file(path, JWKS_MAX_BYTES, &json, &len);
        if (r < 0)
                return r;
        return jose_keyset_from_jwks(json, len, key_left_out, NULL, ret);
}

/* The keyset and the token of the verify commands; returns 0 or the exit
 * status after reporting. */
static int load_verify_inputs(const char *jwks_path, jose_keyset **ret_ks, char **ret_token, size_t *ret_len) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        int r = load_keyset(jwks_path, &ks);
        if (r < 0)
                return fail(jwks_path, r);
        r = read_token(ret_token, ret_len);
        if (r < 0)
                return fail("stdin", r);
        *ret_ks = TAKE_PTR(ks);
        return 0;
}

static int print_json(const json_t *j) {
        _cleanup_(freep) char *s = NULL;
        int r = td_json_dump_compact(j, &s);
        if (r < 0)
                return fail("td_json_dump_compact", r);
        puts(s);
        return 0;
}

static int cmd_gen(int argc, char **argv) {
        if (argc != 2)
                return usage();
        jose_alg alg = jose_alg_from_string(argv[0]);
        if (alg == JOSE_ALG_INVALID)
                return usage();
        _cleanup_(jose_key_freep) jose_key *key = NULL;
        int r = jose_key_generate(alg, &key);
        if (r < 0)
                return fail("jose_key_generate", r);
        r = jose_key_write_pem_file(key, argv[1], NULL);
        if (r < 0)
                return fail(argv[1], r);
        puts(jose_key_kid(key));
        return 0;
}

static int cmd_jwks(int argc, char **argv) {
        if (argc < 1)
                return usage();
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        int r = jose_keyset_new(&ks);
        if (r < 0)
                return fail("jose_keyset_new", r);
        for (int i = 0; i < argc; i++) {
                jose_key *key;
                r = jose_key_load_pem_file(argv[i], NULL, &key);
                if (r < 0)
                        return fail(argv[i], r);
                r = jose_keyset_add(ks, key);
                if (r < 0) {
                        jose_key_free(key);
                        return fail(argv[i], r);
                }
        }
        _cleanup_(json_decrefp) json_t *jwks = NULL;
        r = jose_keyset_to_jwks(ks, &jwks);
        if (r < 0)
                return fail("jose_keyset_to_jwks", r);
        return print_json(jwks);
}

static int cmd_sign(int argc, char **argv) {
        if (argc != 2)
                return usage();
        _cleanup_(jose_key_freep) jose_key *key = NULL;
        int r = jose_key_load_pem_file(argv[0], NULL, &key);
        if (r < 0)
                return fail(argv[0], r);
        _cleanup_(freep) char *buf = NULL;
        size_t len;
        r = read_stream(stdin, STDIN_MAX_BYTES, &buf, &len);
        if (r < 0)
                return fail("stdin", r);
        _cleanup_(json_decrefp) json_t *payload = NULL;
        r = td_json_parse_object(buf, len, STDIN_MAX_BYTES, TD_JSON_DEFAULT_MAX_DEPTH, &payload, NULL);
        if (r < 0)
                return fail("payload", r);
        _cleanup_(freep) char *token = NULL;
        r = jws_sign_json(key, streq(argv[1], "-") ? NULL : argv[1], payload, &token, NULL);
        if (r < 0)
                return fail("jws_sign_json", r);
        puts(token);
        return 0;
}

/* An access token with fixed parameters (uid 1000, 15 min, device
 * "dev_interop", scope "login", cnf.jkt = the signing key's thumbprint). */
static int cmd_at(int argc, char **argv) {
        if (argc < 4)
                return usage();
        _cleanup_(jose_key_freep) jose_key *key = NULL;
        int r = jose_key_load_pem_file(argv[0], NULL, &key);
        if (r < 0)
                return fail(argv[0], r);
        char jkt[JOSE_THUMBPRINT_LEN + 1];
        jose_key_thumbprint(key, jkt);
        at_params p = {
                .issuer = argv[1],
                .subject = argv[2],
                .uid = 1000,
                .aud = (const char *const *) argv + 3,
                .n_aud = (size_t) (argc - 3),
                .iat = (int64_t) time(NULL),
                .lifetime = AT_LIFETIME,
                .client_id = "dev_interop",
                .scope = "login",
                .cnf_jkt = jkt,
        };
        _cleanup_(freep) char *token = NULL;
        size_t len;
        r = at_build(key, &p, &token, &len, NULL, 0);
        if (r < 0)
                return fail("at_build", r);
        puts(token);
        return 0;
}

static int cmd_verify(int argc, char **argv) {
        if (argc < 1 || argc > 2 || (argc == 2 && !streq(argv[1], "--no-kid")))
                return usage();
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        _cleanup_(freep) char *token = NULL;
        size_t len;
        int r = load_verify_inputs(argv[0], &ks, &token, &len);
        if (r != 0)
                return r;
        jws_result res;
        r = jws_verify(ks, token, len, argc == 2 ? JWS_ALLOW_NO_KID : 0, &res);
        if (r < 0)
                return fail("jws_verify", r);
        puts((const char *) res.payload_raw);
        jws_result_done(&res);
        return 0;
}

static json_t *claims_to_json(const at_claims *c) {
        json_t *aud = json_array();
        for (size_t i = 0; aud && i < c->n_aud; i++)
                json_array_append_new(aud, json_string(c->aud[i]));
        return json_pack("{s:s, s:s, s:I, s:o, s:I, s:I, s:I, s:s, s:s, s:s?, s:s?, s:s}", "iss", c->iss, "sub",
                         c->sub, "uid", (json_int_t) c->uid, "aud", aud, "iat", (json_int_t) c->iat, "exp",
                         (json_int_t) c->exp, "nbf", (json_int_t) c->nbf, "jti", c->jti, "client_id", c->client_id,
                         "scope", c->scope, "cnf_jkt", c->cnf_jkt, "kid", c->kid);
}

static int cmd_verify_at(int argc, char **argv) {
        if (argc != 3)
                return usage();
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        _cleanup_(freep) char *token = NULL;
        size_t len;
        int r = load_verify_inputs(argv[0], &ks, &token, &len);
        if (r != 0)
                return r;
        at_check chk = {
                .issuer = argv[1],
                .audience = streq(argv[2], "-") ? NULL : argv[2],
                .now = (int64_t) time(NULL),
                .skew = AT_SKEW,
        };
        at_claims c;
        r = at_verify(ks, token, len, &chk, &c);
        if (r < 0)
                return fail("at_verify", r);
        _cleanup_(json_decrefp) json_t *j = claims_to_json(&c);
        at_claims_done(&c);
        if (!j)
                return fail("json_pack", -ENOMEM);
        return print_json(j);
}

int main(int argc, char **argv) {
        static const struct {
                const char *name;
                int (*run)(int argc, char **argv);
        } cmds[] = {
                { "gen", cmd_gen },   { "jwks", cmd_jwks },     { "sign", cmd_sign },
                { "at", cmd_at },     { "verify", cmd_verify }, { "verify-at", cmd_verify_at },
        };
        if (argc < 2)
                return usage();
        for (size_t i = 0; i < ELEMENTSOF(cmds); i++)
                if (streq(argv[1], cmds[i].name))
                        return cmds[i].run(argc - 2, argv + 2);
        return usage();
}
