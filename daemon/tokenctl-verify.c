/* SPDX-License-Identifier: MIT */
/* tokenctl verify (through tokend, or offline against a JWKS file) and
 * tokenctl inspect (decode only, clearly marked unverified). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jose-claims.h"
#include "jose-jwk.h"
#include "jose-jws.h"
#include "json-util.h"
#include "tokenctl-transport.h"
#include "tokenctl.h"
#include "tokend-config.h"

#define JWKS_FILE_MAX (1024U * 1024U)
#define OFFLINE_SKEW 30 /* tokend's default ClockSkew */
#define DEFAULT_ISSUER "tokend"

static const char usage_verify[] =
        "Usage: tokenctl verify [--jwks FILE [--issuer I] [--signature-only]] [--user U] [--audience A] TOKEN\n"
        "Check an access token (TOKEN, or - to read it from stdin: an argument is visible to\n"
        "every local user in ps). Without --jwks tokend\n"
        "checks it (signature, claims, revocation); with --jwks it is checked offline\n"
        "against the public keys in FILE (tokenctl keys jwks; revocation is not known offline).\n"
        "  --jwks FILE         verify offline with this JWKS (no daemon needed)\n"
        "  --issuer I          offline: required iss (default tokend)\n"
        "  --signature-only    offline: only the JWS signature (any JWS; no claim checks)\n"
        "  --user U            require this subject\n"
        "  --audience A        require this audience (PAM service)\n";

typedef struct verify_opts {
        const tc_ctx *ctx;
        const char *jwks, *issuer, *user, *audience;
        bool signature_only;
} verify_opts;

enum { OPT_JWKS = OPT_FIRST_VERB_OPTION, OPT_ISSUER, OPT_SIG_ONLY, OPT_USER, OPT_AUDIENCE };

static int on_verify_opt(void *userdata, int val, const char *arg) {
        verify_opts *o = userdata;
        switch (val) {
        case OPT_JWKS: o->jwks = arg; return 0;
        case OPT_ISSUER: o->issuer = arg; return 0;
        case OPT_SIG_ONLY: o->signature_only = true; return 0;
        case OPT_USER: o->user = arg; return 0;
        case OPT_AUDIENCE:
                if (!tokend_audience_name_valid(arg))
                        return tc_usage_error(o->ctx, usage_verify, "--audience: '%s' is not an audience name",
                                              arg);
                o->audience = arg;
                return 0;
        }
        return EXIT_USAGE;
}

static int read_file(const char *path, size_t max, char **ret, size_t *ret_len) {
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_(freep) char *buf = NULL;
        size_t n = 0;

        if (fd < 0)
                return -errno;
        if (!(buf = malloc(max + 1)))
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + n, max + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > max)
                        return -E2BIG;
        }
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

static const char *offline_reason(int r) {
        switch (r) {
        case -EKEYEXPIRED: return "the token has expired";
        case -ETIME: return "the token is not valid yet (iat or nbf in the future)";
        case -EACCES: return "wrong issuer or audience";
        case -ENOKEY: return "signed by a key that is not in the JWKS";
        case -EKEYREJECTED: return "the signature is invalid";
        case -E2BIG: return "the token is too long";
        default: return "malformed, or not an access token (typ at+jwt with iss, sub, aud, exp, iat, jti, client_id)";
        }
}

/* offline_reason(r), but for a malformed-looking JWS whose header names an
 * algorithm this code does not implement, say so (RFC 7520's PS384 and
 * ES512 examples, say). Into buf; returns the text. */
static const char *offline_why(const char *tok, int r, char *buf, size_t size) {
        _cleanup_(json_decrefp) json_t *header = NULL;
        const char *alg;
        char b[64];

        if (r == -EBADMSG && jws_decode_header_unverified(tok, strlen(tok), &header) >= 0 &&
            (alg = td_json_object_get_str(header, "alg")) && jose_alg_from_string(alg) == JOSE_ALG_INVALID) {
                snprintf(buf, size, "the token's algorithm %s is not supported (EdDSA, ES256, RS256, PS256)",
                         tc_safe(alg, b, sizeof b));
                return buf;
        }
        return offline_reason(r);
}

static void print_claims_line(const char *sub, const json_t *aud, int64_t exp, const char *client_id) {
        char w[128], b[1024];
        /* Claims come from tokend or a token: escaped for the terminal. */
        printf("VALID: sub=%s aud=", sub ? tc_safe(sub, b, sizeof b) : "?");
        if (json_is_array(aud)) {
                size_t i;
                const json_t *e;
                json_array_foreach(aud, i, e)
                        printf("%s%s", i ? "," : "", json_string_value(e) ? tc_safe(json_string_value(e), b, sizeof b) : "?");
        } else
                printf("%s", json_string_value(aud) ? tc_safe(json_string_value(aud), b, sizeof b) : "?");
        printf(" device=%s expires %s\n", client_id ? tc_safe(client_id, b, sizeof b) : "?",
               tc_format_time(exp, w, sizeof w));
}

static int invalid(const tc_ctx *ctx, const char *code, const char *why) {
        if (ctx->json) {
                _cleanup_(json_decrefp) json_t *j = json_pack("{s:b,s:s,s:s}", "active", 0, "error", code, "message", why);
                tc_print_json(ctx, j);
        } else {
                char b[1024];
                printf("INVALID: %s\n", tc_safe(why, b, sizeof b));
        }
        return EXIT_REFUSED;
}

/* jwks_skip_fn: say on stderr which key of the JWKS is left out and why. */
static void jwks_key_skipped(void *userdata, size_t index, const char *kid, int error) {
        const char *path = userdata;
        char b[256];

        fprintf(stderr, "tokenctl: %s: key %zu%s%s%s left out: %s\n", path, index, kid ? " (kid \"" : "",
                kid ? tc_safe(kid, b, sizeof b) : "", kid ? "\")" : "",
                error == -EOPNOTSUPP ? "unsupported key type, curve or algorithm" :
                error == -EKEYREJECTED ? "not a signature verification key (use/key_ops)" : "malformed");
}

static int verify_offline(const tc_ctx *ctx, const verify_opts *o, const char *tok) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        _cleanup_(freep) char *jwks = NULL;
        size_t len = 0;
        int r;

        r = read_file(o->jwks, JWKS_FILE_MAX, &jwks, &len);
        if (r < 0)
                return tc_error(ctx, EXIT_USAGE, "cannot read the JWKS %s: %s", o->jwks, strerror(-r));
        r = jose_keyset_from_jwks(jwks, len, jwks_key_skipped, (void *) o->jwks, &ks);
        if (r < 0)
                return tc_error(ctx, EXIT_USAGE, "%s is not a usable JWKS ({\"keys\":[public JWKs]}): %s", o->jwks,
                                r == -EPERM ? "it holds private key members" : r == -EEXIST ? "duplicate kid" :
                                r == -E2BIG ? "too large" : "malformed");
        if (jose_keyset_size(ks) == 0)
                return tc_error(ctx, EXIT_USAGE, "%s holds no key that can verify a signature here", o->jwks);
        if (o->signature_only) {
                jws_result res = { 0 };
                char why[160], kid[256];
                r = jws_verify(ks, tok, strlen(tok), JWS_ALLOW_NO_KID, &res);
                if (r < 0)
                        return invalid(ctx, "invalid_signature", offline_why(tok, r, why, sizeof why));
                if (ctx->json) {
                        _cleanup_(json_decrefp) json_t *j = json_pack("{s:b,s:s,s:O,s:O?}", "signature_valid", 1, "kid",
                                                                      jose_key_kid(res.key), "header", res.header,
                                                                      "payload", res.payload);
                        tc_print_json(ctx, j);
                } else
                        printf("VALID SIGNATURE by key %s (%s); claims were not checked.\n",
                               tc_safe(jose_key_kid(res.key), kid, sizeof kid),
                               jose_alg_to_string(jose_key_alg(res.key)));
                jws_result_done(&res);
                return EXIT_OK;
        }
        at_claims cl = { 0 };
        at_check chk = { .issuer = o->issuer ? o->issuer : DEFAULT_ISSUER, .audience = o->audience,
                         .now = time(NULL), .skew = OFFLINE_SKEW };
        char why[160];
        r = at_verify(ks, tok, strlen(tok), &chk, &cl);
        if (r < 0)
                return invalid(ctx, "invalid_token", offline_why(tok, r, why, sizeof why));
        if (o->user && !streq(o->user, cl.sub)) {
                at_claims_done(&cl);
                return invalid(ctx, "invalid_token", "the token belongs to another user");
        }
        _cleanup_(json_decrefp) json_t *aud = json_array();
        for (size_t i = 0; aud && i < cl.n_aud; i++)
                json_array_append_new(aud, json_string(cl.aud[i]));
        if (ctx->json) {
                _cleanup_(json_decrefp) json_t *j = json_pack(
                        "{s:b,s:b,s:s,s:I,s:O,s:I,s:I,s:s,s:s,s:s}", "active", 1, "offline", 1, "sub", cl.sub, "uid",
                        (json_int_t) cl.uid, "aud", aud, "exp", (json_int_t) cl.exp, "iat", (json_int_t) cl.iat,
                        "client_id", cl.client_id, "jti", cl.jti, "kid", cl.kid);
                tc_print_json(ctx, j);
        } else {
                print_claims_line(cl.sub, aud, cl.exp, cl.client_id);
                fprintf(stderr, "Note: checked offline; a revoked device or token is only known to tokend.\n");
        }
        at_claims_done(&cl);
        return EXIT_OK;
}

static int verify_online(const tc_ctx *ctx, const verify_opts *o, const char *tok) {
        tc_answer a = { 0 };
        int r, ex = EXIT_OK;

        r = tc_transport_of(ctx)->verify(ctx, tok, o->user, o->audience, &a);
        if (r < 0)
                return tc_transport_exit(r);
        if (a.status == 200 && json_is_true(json_object_get(a.body, "active"))) {
                int64_t exp = 0;
                if (td_json_object_get_int_range(a.body, "exp", 0, INT64_MAX / 2, &exp) < 0)
                        exp = 0;
                if (ctx->json) {
                        tc_print_json(ctx, a.body);
                } else
                        print_claims_line(td_json_object_get_str(a.body, "sub"), json_object_get(a.body, "aud"), exp,
                                          td_json_object_get_str(a.body, "client_id"));
        } else if (a.status == 401 || (a.status == 400 && a.body)) {
                const char *code = td_json_object_get_str(a.body, "error");
                const char *msg = td_json_object_get_str(a.body, "message");
                ex = invalid(ctx, code ? code : "invalid_token", msg ? msg : "tokend says the token is not valid");
        } else
                ex = tc_answer_fail(ctx, &a);
        tc_answer_done(&a);
        return ex;
}

int verb_verify(tc_ctx *ctx, int argc, char **argv) {
        static const struct option opts[] = {
                { "jwks", required_argument, NULL, OPT_JWKS },
                { "issuer", required_argument, NULL, OPT_ISSUER },
                { "signature-only", no_argument, NULL, OPT_SIG_ONLY },
                { "user", required_argument, NULL, OPT_USER },
                { "audience", required_argument, NULL, OPT_AUDIENCE },
                TC_COMMON_OPTIONS,
        };
        verify_opts o = { .ctx = ctx };
        _cleanup_(erase_and_freep) char *tok = NULL;
        int r, ex;

        if ((r = tc_parse_options(ctx, argc, argv, opts, usage_verify, on_verify_opt, &o, &ex)) < 0)
                return ex;
        if (argc - r != 1)
                return tc_usage_error(ctx, usage_verify, "exactly one TOKEN is expected");
        if (!o.jwks && (o.signature_only || o.issuer))
                return tc_usage_error(ctx, usage_verify, "--signature-only and --issuer need --jwks FILE");
        if (o.signature_only && (o.user || o.audience))
                return tc_usage_error(ctx, usage_verify, "--signature-only checks no claims: drop --user/--audience");
        if ((ex = tc_token_operand(ctx, usage_verify, argv[r], &tok)) != EXIT_OK)
                return ex;
        return o.jwks ? verify_offline(ctx, &o, tok) : verify_online(ctx, &o, tok);
}

static void print_times(const json_t *claims) {
        static const char *const keys[] = { "iat", "nbf", "exp", "auth_time" };
        char w[128];
        int64_t t;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (td_json_object_get_int_range(claims, keys[i], 0, AT_TIME_MAX, &t) >= 0)
                        printf("%-4s %lld = %s\n", keys[i], (long long) t, tc_format_time(t, w, sizeof w));
}

int verb_inspect(tc_ctx *ctx, int argc, char **argv) {
        static const char usage[] =
                "Usage: tokenctl inspect TOKEN\n"
                "Decode a JWS/JWT (TOKEN, or - for stdin, which ps does not show) and show its header\n"
                "and claims, with times\n"
                "in readable form. NOTHING is verified: use tokenctl verify for that.\n";
        static const struct option opts[] = {
                TC_COMMON_OPTIONS,
        };
        _cleanup_(erase_and_freep) char *tok = NULL;
        _cleanup_(json_decrefp) json_t *hdr = NULL, *claims = NULL;
        int r, ex;

        if ((r = tc_parse_options(ctx, argc, argv, opts, usage, NULL, NULL, &ex)) < 0)
                return ex;
        if (argc - r != 1)
                return tc_usage_error(ctx, usage, "exactly one TOKEN is expected");
        if ((ex = tc_token_operand(ctx, usage, argv[r], &tok)) != EXIT_OK)
                return ex;
        r = jws_decode_unverified(tok, strlen(tok), &hdr, &claims);
        if (r < 0)
                return tc_error(ctx, EXIT_REFUSED, "not a JWS compact token (three base64url parts with a JSON "
                                "header and payload): %s", r == -E2BIG ? "too long" : "malformed");
        if (ctx->json) {
                _cleanup_(json_decrefp) json_t *j = json_pack("{s:b,s:O,s:O?}", "verified", 0, "header", hdr, "claims",
                                                              claims);
                tc_print_json(ctx, j);
                return EXIT_OK;
        }
        printf("UNVERIFIED: decoded only; the signature and claims were NOT checked (use tokenctl verify).\n");
        printf("Header:\n");
        json_dumpf(hdr, stdout, JSON_INDENT(2));
        printf("\nClaims:\n");
        if (claims) {
                json_dumpf(claims, stdout, JSON_INDENT(2));
                putchar('\n');
                print_times(claims);
        } else
                printf("(the payload is not a JSON object)\n");
        return EXIT_OK;
}
