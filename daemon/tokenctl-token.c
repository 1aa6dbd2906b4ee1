/* SPDX-License-Identifier: MIT */
/* tokenctl token, refresh, askpass (and tokenctl-askpass): a valid access
 * token, refreshed under the state lock with the device-key proof. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "b64.h"
#include "jose-jws.h"
#include "json-util.h"
#include "timespan.h"
#include "tokenctl-devices.h"
#include "tokenctl-token.h"
#include "tokenctl-transport.h"
#include "tokenctl.h"
#include "tokend-config.h"

/* README "Refresh proof (device key)". */
#define PROOF_HEADER "{\"alg\":\"EdDSA\",\"typ\":\"tokend-proof+jwt\"}"
#define PROOF_HTU "/api/auth/refresh"
#define PROOF_JTI_BYTES 24U /* 32 characters, ≥ 16 required */
#define PROOF_JTI_CHARS 32U
/* A token another process just fetched is used while this much remains. */
#define FRESH_MIN_LEFT 5
#define ASKPASS_DEFAULT_AUDIENCE "sshd"

static const char *aud_key(const char *audience) {
        return audience ? audience : TC_DEFAULT_AUDIENCE_KEY;
}

/* RFC 9449-style proof: compact JWS by the device key over a fresh jti/iat. */
static int make_proof(const char *pem, const char *device_id, char **ret) {
        _cleanup_(jose_key_freep) jose_key *k = NULL;
        _cleanup_(freep) char *payload = NULL;
        char jti[PROOF_JTI_CHARS + 1];
        int r;

        r = jose_key_load_pem(pem, strlen(pem), NULL, &k);
        if (r < 0)
                return r;
        if (jose_key_alg(k) != JOSE_ALG_EDDSA)
                return -EOPNOTSUPP;
        r = b64url_random(PROOF_JTI_BYTES, jti, sizeof jti);
        if (r < 0)
                return r;
        _cleanup_(json_decrefp) json_t *p = json_pack("{s:s,s:I,s:s,s:s,s:s}", "jti", jti, "iat",
                                                      (json_int_t) time(NULL), "htm", "POST", "htu", PROOF_HTU,
                                                      "device_id", device_id);
        if (!p || td_json_dump_compact(p, &payload) < 0)
                return -ENOMEM;
        return jws_sign_bytes(k, PROOF_HEADER, strlen(PROOF_HEADER), payload, strlen(payload), ret);
}

/* The cached token of key for device_id: 0 and borrowed *ret_tok, or -ENOENT. */
static int cache_lookup(const json_t *cache, const char *key, const char *device_id, const char **ret_tok,
                        int64_t *ret_exp, int64_t *ret_fetched) {
        const json_t *e = json_object_get(cache, key);
        const char *tok = e ? td_json_object_get_str(e, "access_token") : NULL;
        int64_t exp, fetched;

        if (!tok || !streq_ptr(td_json_object_get_str(e, "device_id"), device_id) ||
            td_json_object_get_int_range(e, "expires_at", 0, INT64_MAX / 2, &exp) < 0 ||
            td_json_object_get_int_range(e, "fetched_at", 0, INT64_MAX / 2, &fetched) < 0)
                return -ENOENT;
        *ret_tok = tok;
        *ret_exp = exp;
        *ret_fetched = fetched;
        return 0;
}

static int cache_store(const tc_ctx *ctx, const char *dir, const char *device_id, const char *key, const char *tok,
                       int64_t exp, int64_t now) {
        _cleanup_(json_decrefp) json_t *cache = NULL;
        const char *k;
        json_t *v;
        void *tmp;

        if (tc_tokens_load(ctx, dir, &cache) < 0 && !(cache = json_object()))
                return -ENOMEM;
        /* Entries of an earlier login are useless: drop them. */
        json_object_foreach_safe(cache, tmp, k, v)
                if (!json_is_object(v) || !streq_ptr(td_json_object_get_str(v, "device_id"), device_id))
                        json_object_del(cache, k);
        if (json_object_set_new(cache, key,
                                json_pack("{s:s,s:I,s:I,s:s}", "access_token", tok, "expires_at", (json_int_t) exp,
                                          "fetched_at", (json_int_t) now, "device_id", device_id)) < 0)
                return -ENOMEM;
        return tc_tokens_save(ctx, dir, cache);
}

int tc_apply_answer(const tc_ctx *ctx, const char *dir, tc_creds *c, const char *audience, const json_t *ans,
                    bool cache, char **ret_token, int64_t *ret_exp) {
        const char *at = td_json_object_get_str(ans, "access_token");
        const char *rt = td_json_object_get_str(ans, "refresh_token");
        const char *dev = td_json_object_get_str(ans, "device_id");
        int64_t exp_in, rexp_in, now = time(NULL);
        char *copy;

        if (!at || !rt || !dev || td_json_object_get_int_range(ans, "expires_in", 1, TIMESPAN_MAX, &exp_in) < 0 ||
            td_json_object_get_int_range(ans, "refresh_expires_in", 0, TIMESPAN_MAX, &rexp_in) < 0 ||
            !jws_looks_like_compact(at, strlen(at), JWS_MAX_TOKEN_BYTES))
                return tc_error(ctx, EXIT_REFUSED, "tokend's answer lacks access_token, refresh_token, device_id "
                                "or expiry times; is this really tokend?");
        if (c->device_id && !streq(c->device_id, dev))
                return tc_error(ctx, EXIT_REFUSED, "tokend answered for device %s, not %s; run tokenctl login",
                                dev, c->device_id);
        if (!(copy = strdup(rt)) || (!c->device_id && !(c->device_id = strdup(dev)))) {
                erase_and_free(copy);
                return tc_error(ctx, EXIT_REFUSED, "out of memory");
        }
        erase_and_free(c->refresh_token);
        c->refresh_token = copy;
        c->refresh_expires_at = rexp_in ? now + rexp_in : 0;
        /* The old refresh token is dead now: save the new one before anything else. */
        if (tc_creds_save(ctx, dir, c) < 0)
                return tc_error(ctx, EXIT_REFUSED, "the refresh token was rotated but cannot be saved; this "
                                "device must log in again (tokenctl login) once the problem is fixed");
        if (cache && cache_store(ctx, dir, c->device_id, aud_key(audience), at, now + exp_in, now) < 0)
                tc_warn(ctx, "cannot cache the access token, ignoring");
        if (ret_token && !(*ret_token = strdup(at)))
                return tc_error(ctx, EXIT_REFUSED, "out of memory");
        if (ret_exp)
                *ret_exp = now + exp_in;
        return EXIT_OK;
}

/* Does the access token name audience in aud? Our own cache's or tokend's
 * answer, so decoding without verifying is enough here. */
static bool token_has_audience(const char *tok, const char *audience) {
        _cleanup_(json_decrefp) json_t *hdr = NULL, *claims = NULL;
        const json_t *aud, *e;
        size_t i;

        if (jws_decode_unverified(tok, strlen(tok), &hdr, &claims) < 0 || !claims)
                return false;
        aud = json_object_get(claims, "aud");
        if (json_is_string(aud))
                return streq(json_string_value(aud), audience);
        json_array_foreach(aud, i, e)
                if (json_is_string(e) && streq(json_string_value(e), audience))
                        return true;
        return false;
}

/* A transport that cannot ask for an audience (D-Bus Refresh) gets tokens
 * for [Token] DefaultAudience: cache the answer as such, and serve it for
 * audience too when it names it. */
static int apply_default_audience_answer(const tc_ctx *ctx, const char *dir, tc_creds *c, const char *audience,
                                         const json_t *ans, char **ret_token, int64_t *ret_exp) {
        _cleanup_(freep) char *tok = NULL;
        int64_t exp = 0;
        int r = tc_apply_answer(ctx, dir, c, NULL, ans, true, &tok, &exp);

        if (r != EXIT_OK)
                return r;
        if (!token_has_audience(tok, audience))
                return tc_error(ctx, EXIT_REFUSED, "over %s tokend issues tokens only for its [Token] "
                                "DefaultAudience, which lacks %s: for a %s token drop --bus (the socket can ask "
                                "for any allowed audience)", tc_transport_of(ctx)->name, audience, audience);
        if (cache_store(ctx, dir, c->device_id, audience, tok, exp, time(NULL)) < 0)
                tc_warn(ctx, "cannot cache the access token, ignoring");
        if (ret_exp)
                *ret_exp = exp;
        if (ret_token)
                *ret_token = TAKE_PTR(tok);
        return EXIT_OK;
}

static int do_refresh(const tc_ctx *ctx, const char *dir, tc_creds *c, const char *audience, int64_t ttl,
                      char **ret_token, int64_t *ret_exp) {
        const tc_transport *t = tc_transport_of(ctx);
        _cleanup_(erase_and_freep) char *proof = NULL;
        tc_answer a = { 0 };
        int r;

        if (c->device_key_pem && (r = make_proof(c->device_key_pem, c->device_id, &proof)) < 0)
                return tc_error(ctx, EXIT_REFUSED, "cannot sign the refresh proof with the device key (%s): "
                                "run tokenctl login", strerror(-r));
        tc_refresh_req req = { .refresh_token = c->refresh_token, .device_id = c->device_id, .proof = proof,
                               .audience = audience, .ttl = ttl };
        r = t->refresh(ctx, &req, &a);
        if (r < 0)
                return tc_transport_exit(r);
        if (!tc_answer_ok(&a))
                r = tc_answer_fail(ctx, &a);
        else if (audience && !t->chooses_audience)
                r = apply_default_audience_answer(ctx, dir, c, audience, a.body, ret_token, ret_exp);
        else
                r = tc_apply_answer(ctx, dir, c, audience, a.body, ttl == 0, ret_token, ret_exp);
        tc_answer_done(&a);
        return r;
}

/* cache_lookup() for audience; over a transport that cannot ask for an
 * audience, the default audience's token serves when it names audience. */
static int cache_find(const tc_ctx *ctx, const json_t *cache, const char *audience, const char *device_id,
                      const char **ret_tok, int64_t *ret_exp, int64_t *ret_fetched) {
        const char *tok;
        int64_t exp, fetched;

        if (cache_lookup(cache, aud_key(audience), device_id, ret_tok, ret_exp, ret_fetched) >= 0)
                return 0;
        if (!audience || tc_transport_of(ctx)->chooses_audience ||
            cache_lookup(cache, TC_DEFAULT_AUDIENCE_KEY, device_id, &tok, &exp, &fetched) < 0 ||
            !token_has_audience(tok, audience))
                return -ENOENT;
        *ret_tok = tok;
        *ret_exp = exp;
        *ret_fetched = fetched;
        return 0;
}

/* Forget every cached access token of this login (they die with the device). */
static void cache_drop(const tc_ctx *ctx, const char *dir, int *lock) {
        _cleanup_(json_decrefp) json_t *empty = json_object();
        if (*lock < 0)
                *lock = tc_state_lock(ctx, dir);
        if (*lock < 0 || !empty || tc_tokens_save(ctx, dir, empty) < 0)
                tc_warn(ctx, "cannot clear the cached access tokens, ignoring");
}

/* May the cached token tok of c's device be handed out? Not when the
 * device's refresh token has expired or tokend says the device is revoked
 * or gone: then the cache is dropped and the reason printed (EXIT_REFUSED).
 * Unreachable tokend: EXIT_UNREACHABLE (nothing handed out either: without
 * tokend no PAM login can verify it, and an offline verifier would take a
 * revoked token). */
static int cached_token_usable(const tc_ctx *ctx, const char *dir, const tc_creds *c, const char *tok, int *lock) {
        tc_device_state ds;
        char why[256], when[128];
        int r;

        if (c->refresh_expires_at && time(NULL) >= c->refresh_expires_at) {
                cache_drop(ctx, dir, lock);
                return tc_error(ctx, EXIT_REFUSED, "not handing out the cached access token: this device's login "
                                "expired %s (its refresh token); dropped the cached tokens: run tokenctl login",
                                tc_format_time(c->refresh_expires_at, when, sizeof when));
        }
        if ((r = tc_device_check(ctx, c, tok, &ds)) != EXIT_OK)
                return r;
        if (ds.state != TC_DEVICE_REVOKED && ds.state != TC_DEVICE_GONE)
                return EXIT_OK;
        cache_drop(ctx, dir, lock);
        return tc_error(ctx, EXIT_REFUSED, "not handing out the cached access token: device %s is %s; dropped the "
                        "cached tokens: run tokenctl login", c->device_id, tc_device_state_text(&ds, why, sizeof why));
}

int tc_access_token(const tc_ctx *ctx, const char *audience, bool force, int64_t ttl, char **ret_token,
                    int64_t *ret_exp) {
        _cleanup_(freep) char *dir = NULL;
        _cleanup_(json_decrefp) json_t *cache = NULL;
        _cleanup_(closep) int lock = -EBADF;
        tc_creds c = { 0 };
        const char *tok;
        int64_t exp, fetched, start = time(NULL), now;
        int r;

        if (ttl > 0 && !tc_transport_of(ctx)->chooses_audience)
                return tc_error(ctx, EXIT_USAGE, "--ttl needs the socket: over %s tokend issues tokens of its "
                                "[Token] AccessTokenLifetime only", tc_transport_of(ctx)->name);
        if (ttl > 0)
                force = true; /* a short token is always a fresh one */
        if (tc_state_dir(ctx, false, &dir) < 0 || tc_creds_load(ctx, dir, &c) < 0)
                return EXIT_REFUSED;
        if (!force) {
                if (tc_tokens_load(ctx, dir, &cache) < 0) {
                        r = EXIT_REFUSED;
                        goto out;
                }
                if (cache_find(ctx, cache, audience, c.device_id, &tok, &exp, &fetched) >= 0 &&
                    exp - start >= TOKENCTL_REFRESH_MARGIN)
                        goto found;
        }
        /* Refresh point: serialize with other tokenctl processes, then look
         * again: one of them may have refreshed while we waited. */
        lock = tc_state_lock(ctx, dir);
        if (lock < 0) {
                r = EXIT_REFUSED;
                goto out;
        }
        tc_creds_done(&c);
        json_decref(TAKE_PTR(cache));
        if (tc_creds_load(ctx, dir, &c) < 0 || tc_tokens_load(ctx, dir, &cache) < 0) {
                r = EXIT_REFUSED;
                goto out;
        }
        now = time(NULL);
        if (!force && cache_find(ctx, cache, audience, c.device_id, &tok, &exp, &fetched) >= 0 &&
            (exp - now >= TOKENCTL_REFRESH_MARGIN || (fetched >= start && exp - now > FRESH_MIN_LEFT)))
                goto found;
        if (c.refresh_expires_at && now >= c.refresh_expires_at) {
                char when[128];
                r = tc_error(ctx, EXIT_REFUSED, "the refresh token expired %s: run tokenctl login",
                             tc_format_time(c.refresh_expires_at, when, sizeof when));
                goto out;
        }
        r = do_refresh(ctx, dir, &c, audience, ttl, ret_token, ret_exp);
        goto out;
found:
        /* A cached token is only as good as its device: tokend may have
         * revoked it since (reuse detection, an admin, a logout elsewhere). */
        if ((r = cached_token_usable(ctx, dir, &c, tok, &lock)) != EXIT_OK)
                goto out;
        if (!(*ret_token = strdup(tok))) {
                r = tc_error(ctx, EXIT_REFUSED, "out of memory");
                goto out;
        }
        if (ret_exp)
                *ret_exp = exp;
        r = EXIT_OK;
out:
        tc_creds_done(&c);
        return r;
}

/* ---- verbs ------------------------------------------------------------ */

typedef struct aud_opts {
        const tc_ctx *ctx;
        const char *usage;
        const char *audience;
        int64_t ttl; /* --ttl, seconds; 0: not given */
        const char *host; /* --host: the audience becomes AUDIENCE@HOST */
        char scoped[TOKEND_AUDIENCE_MAX + 1];
} aud_opts;

#define OPT_TTL (OPT_FIRST_VERB_OPTION + 1)
#define OPT_HOST (OPT_FIRST_VERB_OPTION + 2)
#define HOST_NAME_LEN_MAX 64U

/* A host name as an audience may name it (DESIGN.md "Host-scoped
 * audiences"): 1-64 of [A-Za-z0-9.-] (and '_'), not starting with '-' or
 * '.'. An IPv6 literal cannot be one (':' is no audience character). */
static bool host_name_ok(const char *h, size_t n) {
        if (n == 0 || n > HOST_NAME_LEN_MAX || h[0] == '-' || h[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') || (h[i] >= '0' && h[i] <= '9') ||
                      h[i] == '.' || h[i] == '-' || h[i] == '_'))
                        return false;
        return true;
}

/* audience (default sshd) scoped to host: "SERVICE@HOST" into buf. 0, or
 * -EINVAL (audience already scoped, or too long). */
static int scope_audience(const char *audience, const char *host, size_t host_len, char buf[static TOKEND_AUDIENCE_MAX + 1]) {
        audience = audience ? audience : ASKPASS_DEFAULT_AUDIENCE;
        if (strchr(audience, '@'))
                return -EINVAL;
        int n = snprintf(buf, TOKEND_AUDIENCE_MAX + 1, "%s@%.*s", audience, (int) host_len, host);
        return n < 0 || (size_t) n > TOKEND_AUDIENCE_MAX || !tokend_audience_name_valid(buf) ? -EINVAL : 0;
}

static int on_audience(void *userdata, int val, const char *arg) {
        aud_opts *o = userdata;
        if (val == OPT_HOST) {
                if (!host_name_ok(arg, strlen(arg)))
                        return tc_usage_error(o->ctx, o->usage, "--host: '%s' is not a host name (1-%u of "
                                              "[A-Za-z0-9._-])", arg, HOST_NAME_LEN_MAX);
                o->host = arg;
                return 0;
        }
        if (val == OPT_TTL) {
                if (timespan_parse(arg, &o->ttl) < 0 || o->ttl <= 0)
                        return tc_usage_error(o->ctx, o->usage, "--ttl: '%s' is not a time span of more than 0 "
                                              "(e.g. 90s, 5min, 1h)", arg);
                return 0;
        }
        if (!tokend_audience_name_valid(arg))
                return tc_usage_error(o->ctx, o->usage, "--audience: '%s' is not an audience name "
                                      "([A-Za-z0-9_.@-], 1-%u characters)", arg, TOKEND_AUDIENCE_MAX);
        o->audience = arg;
        return 0;
}

#define AUDIENCE_OPTIONS { "audience", required_argument, NULL, OPT_FIRST_VERB_OPTION }, TC_COMMON_OPTIONS
#define TOKEN_OPTIONS { "ttl", required_argument, NULL, OPT_TTL }, { "host", required_argument, NULL, OPT_HOST }, \
                      AUDIENCE_OPTIONS

static int print_token(const tc_ctx *ctx, const char *audience, const char *tok, int64_t exp) {
        if (!ctx->json) {
                printf("%s\n", tok);
                return EXIT_OK;
        }
        _cleanup_(json_decrefp) json_t *j = json_pack("{s:s,s:s?,s:I}", "access_token", tok, "audience", audience,
                                                      "expires_at", (json_int_t) exp);
        if (!j)
                return tc_error(ctx, EXIT_REFUSED, "out of memory");
        tc_print_json(ctx, j);
        return EXIT_OK;
}

/* token and refresh: the same options, refresh always rotates. */
static int token_or_refresh(tc_ctx *ctx, int argc, char **argv, const char *usage, bool force) {
        static const struct option opts[] = { TOKEN_OPTIONS };
        aud_opts o = { .ctx = ctx, .usage = usage };
        _cleanup_(freep) char *tok = NULL;
        char when[128];
        int64_t exp = 0;
        int r, ex;

        if ((r = tc_parse_options(ctx, argc, argv, opts, usage, on_audience, &o, &ex)) < 0)
                return ex;
        if (r < argc)
                return tc_usage_error(ctx, usage, "unexpected argument '%s'", argv[r]);
        if (o.host) {
                if (scope_audience(o.audience, o.host, strlen(o.host), o.scoped) < 0)
                        return tc_usage_error(ctx, usage, "--host %s: cannot scope audience %s to it (already "
                                              "scoped, or longer than %u)", o.host, o.audience ? o.audience :
                                              ASKPASS_DEFAULT_AUDIENCE, TOKEND_AUDIENCE_MAX);
                o.audience = o.scoped;
        }
        if ((ex = tc_access_token(ctx, o.audience, force, o.ttl, &tok, &exp)) != EXIT_OK)
                return ex;
        if (!force || ctx->json)
                return print_token(ctx, o.audience, tok, exp);
        printf("Refreshed: new access token for %s, valid until %s.\n", o.audience ? o.audience : "the default audience",
               tc_format_time(exp, when, sizeof when));
        return EXIT_OK;
}

int verb_token(tc_ctx *ctx, int argc, char **argv) {
        static const char usage[] =
                "Usage: tokenctl token [--audience A] [--host H] [--ttl SPAN]\n"
                "Print a valid access token on stdout, refreshing first (with the device key\n"
                "proof) when fewer than 60 s remain or none is cached for that audience.\n"
                "  --audience A   PAM service the token is for (default: tokend's DefaultAudience)\n"
                "  --host H       only for host H: audience A@H (A default sshd), refused elsewhere\n"
                "  --ttl SPAN     a fresh token valid at most SPAN (90s, 5min, 1h; capped by tokend's\n"
                "                 AccessTokenLifetime), not cached; needs the socket\n";
        return token_or_refresh(ctx, argc, argv, usage, false);
}

int verb_refresh(tc_ctx *ctx, int argc, char **argv) {
        static const char usage[] =
                "Usage: tokenctl refresh [--audience A] [--host H] [--ttl SPAN]\n"
                "Refresh now: rotate the refresh token and cache a new access token.\n"
                "  --audience A   PAM service the new access token is for\n"
                "  --host H       for host H only: audience A@H (A default sshd)\n"
                "  --ttl SPAN     the new access token lasts at most SPAN (then it is not cached)\n";
        return token_or_refresh(ctx, argc, argv, usage, true);
}

/* pam_jwt's default prompt (pam/pam_jwt.c DEFAULT_PROMPT_FMT). */
#define PAM_JWT_PROMPT_HEAD "JWT token for "
#define PAM_JWT_PROMPT_TAIL " (tokend): "
#define PAM_JWT_PROMPT_NAME_MAX 64U

static bool prompt_name_char(char c) {
        return c > ' ' && c <= '~' && c != '(' && c != ')';
}

/* Only pam_jwt's own prompt gets a token: exactly "JWT token for USER
 * (tokend): " (USER: 1 to 64 printable ASCII characters, no blank or
 * parenthesis), alone or behind the "(user@host) " OpenSSH >= 8.4 puts
 * before keyboard-interactive prompts. Any other prompt, even one that
 * asks for a "token" (another module's OTP, a server's invention), gets
 * nothing: a token is never typed into someone else's question.
 * ret_host and ret_host_len: the H of "(user@H) " (ssh's own prefix, not
 * the server's text), or NULL. */
static bool prompt_is_pam_jwt(const char *prompt, const char **ret_host, size_t *ret_host_len) {
        size_t n;

        *ret_host = NULL;
        *ret_host_len = 0;
        if (!prompt)
                return false;
        if (prompt[0] == '(') {
                const char *end = strstr(prompt, ") ");
                if (!end)
                        return false;
                for (const char *p = prompt + 1; p < end; p++)
                        if (!prompt_name_char(*p))
                                return false;
                const char *at = memrchr(prompt + 1, '@', (size_t) (end - prompt - 1));
                if (at) {
                        *ret_host = at + 1;
                        *ret_host_len = (size_t) (end - at - 1);
                }
                prompt = end + 2;
        }
        if (strncmp(prompt, PAM_JWT_PROMPT_HEAD, strlen(PAM_JWT_PROMPT_HEAD)) != 0)
                return false;
        prompt += strlen(PAM_JWT_PROMPT_HEAD);
        for (n = 0; prompt_name_char(prompt[n]); n++)
                ;
        return n >= 1 && n <= PAM_JWT_PROMPT_NAME_MAX && streq(prompt + n, PAM_JWT_PROMPT_TAIL);
}

/* ssh's question about an unknown host key ("Are you sure you want to
 * continue connecting (yes/no/[fingerprint])?") is not ours to answer, but
 * without a word ssh only says "Host key verification failed". */
static void explain_host_key_question(const tc_ctx *ctx, const char *prompt) {
        if (prompt && strstr(prompt, "continue connecting"))
                tc_error(ctx, 0, "not a token prompt: ssh asks whether to trust this server's unknown host key. "
                         "Check its fingerprint and accept it once without SSH_ASKPASS_REQUIRE=force (or put "
                         "the key into ~/.ssh/known_hosts); then tokens go through askpass");
}

static int askpass_answer(const tc_ctx *ctx, const char *audience, const char *prompt) {
        _cleanup_(freep) char *tok = NULL;
        int64_t exp = 0;
        char scoped[TOKEND_AUDIENCE_MAX + 1];
        const char *host;
        size_t host_len;
        int ex;

        if (!prompt_is_pam_jwt(prompt, &host, &host_len)) {
                /* Not ours: nothing on stdout, so ssh or sudo gets no answer.
                 * The prompt is not echoed: its text is the server's. */
                explain_host_key_question(ctx, prompt);
                return tc_error(ctx, EXIT_REFUSED, "not pam_jwt's prompt (\"[(user@host) ]" PAM_JWT_PROMPT_HEAD
                                "USER" PAM_JWT_PROMPT_TAIL "\"): no answer");
        }
        if (!audience) {
                const char *e = getenv("TOKENCTL_AUDIENCE");
                audience = e && *e ? e : ASKPASS_DEFAULT_AUDIENCE;
        }
        if (!tokend_audience_name_valid(audience))
                return tc_error(ctx, EXIT_USAGE, "TOKENCTL_AUDIENCE='%s' is not an audience name", audience);
        /* ssh says which host it connects to: a token for that host only,
         * useless to any other server that sees it. */
        if (host) {
                if (!host_name_ok(host, host_len) || scope_audience(audience, host, host_len, scoped) < 0)
                        return tc_error(ctx, EXIT_REFUSED, "cannot scope a token to the host of this prompt "
                                        "(an IPv6 address, or not a host name): connect by host name");
                audience = scoped;
        }
        if ((ex = tc_access_token(ctx, audience, false, 0, &tok, &exp)) != EXIT_OK)
                return ex;
        return print_token(ctx, audience, tok, exp);
}

int verb_askpass(tc_ctx *ctx, int argc, char **argv) {
        static const char usage[] =
                "Usage: tokenctl askpass [--audience A] PROMPT\n"
                "For SSH_ASKPASS (also installed as tokenctl-askpass) and sudo -A: when PROMPT is\n"
                "pam_jwt's own (\"JWT token for USER (tokend): \", after ssh's \"(user@host) \"), print a\n"
                "valid access token; any other prompt exits 1 with a message on stderr only.\n"
                "  --audience A   audience of the token (default: $TOKENCTL_AUDIENCE, else sshd)\n";
        static const struct option opts[] = { AUDIENCE_OPTIONS };
        aud_opts o = { .ctx = ctx, .usage = usage };
        int r, ex;

        if ((r = tc_parse_options(ctx, argc, argv, opts, usage, on_audience, &o, &ex)) < 0)
                return ex;
        if (argc - r > 1)
                return tc_usage_error(ctx, usage, "only one PROMPT argument is expected");
        return askpass_answer(ctx, o.audience, r < argc ? argv[r] : NULL);
}

int askpass_main(tc_ctx *ctx, int argc, char **argv) {
        /* ssh and sudo pass the prompt as the only argument: no options, so
         * no prompt text can be mistaken for one. */
        if (argc == 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
                fputs("Usage: tokenctl-askpass PROMPT\n"
                      "SSH_ASKPASS / sudo -A helper: answers pam_jwt's prompt (\"JWT token for USER (tokend): \")\n"
                      "with a valid access token for $TOKENCTL_AUDIENCE (default sshd), scoped to HOST when ssh\n"
                      "prefixes the prompt with \"(user@HOST) \"; other prompts exit 1 with a message on stderr\n"
                      "and nothing on stdout.\n", stdout);
                return EXIT_OK;
        }
        return askpass_answer(ctx, NULL, argc >= 2 ? argv[1] : NULL);
}

int tc_network_bearer(tc_ctx *ctx) {
        if (!ctx->issuer || ctx->bearer)
                return EXIT_OK;
        return tc_access_token(ctx, NULL, false, 0, &ctx->bearer, NULL);
}
