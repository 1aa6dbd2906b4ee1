/* SPDX-License-Identifier: MIT */
/* Token operations: password login, peer login, refresh with rotation and
 * device-key proof, logout, verify. Rules are the same for every front end. */
#include <arpa/inet.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "b64.h"
#include "jose-claims.h"
#include "json-util.h"
#include "macro.h"
#include "str-escape.h"
#include "timespan.h"
#include "tokend-dpop.h"
#include "tokend-hostnames.h"
#include "tokend-log.h"
#include "tokend-pamauth.h"
#include "tokend-proof.h"
#include "tokend-service-internal.h"

#define REFRESH_TOKEN_BYTES 32U   /* 256 bits → 43 characters */
#define DEVICE_ID_BYTES 12U       /* "dev_" + 16 characters */
#define PASSWORD_MAX 4096U
#define DEFAULT_DEVICE_NAME_PEER "peer login"

static const char *const code_names[_TD_CODE_MAX] = {
        [TD_OK] = "ok",
        [TD_INVALID_REQUEST] = "invalid_request",
        [TD_INVALID_CREDENTIALS] = "invalid_credentials",
        [TD_INVALID_TOKEN] = "invalid_token",
        [TD_TOKEN_EXPIRED] = "token_expired",
        [TD_TOKEN_REVOKED] = "token_revoked",
        [TD_FORBIDDEN] = "forbidden",
        [TD_NOT_FOUND] = "not_found",
        [TD_TOO_MANY_REQUESTS] = "too_many_requests",
        [TD_INTERNAL] = "internal_error",
        [TD_UNAVAILABLE] = "unavailable",
};

const char *td_code_to_string(td_code c) {
        return (unsigned) c < _TD_CODE_MAX ? code_names[c] : "internal_error";
}

void td_caller_key(const td_caller *c, char buf[static TD_REMOTE_MAX + 8]) {
        if (td_caller_is_remote(c))
                snprintf(buf, TD_REMOTE_MAX + 8, "net:%s", c->remote_net);
        else
                snprintf(buf, TD_REMOTE_MAX + 8, "uid:%u", (unsigned) c->uid);
}

const char *td_caller_name(const td_caller *c, char buf[static TD_CALLER_NAME_MAX]) {
        if (td_caller_is_remote(c))
                snprintf(buf, TD_CALLER_NAME_MAX, "client %s", c->remote);
        else
                snprintf(buf, TD_CALLER_NAME_MAX, "uid=%u pid=%d", (unsigned) c->uid, (int) c->pid);
        return buf;
}

td_code td_fail(td_status *st, td_code c, const char *fmt, ...) {
        va_list ap;
        st->code = c;
        va_start(ap, fmt);
        (void) vsnprintf(st->message, sizeof st->message, fmt, ap);
        va_end(ap);
        return c;
}

td_code td_store_fail(td_status *st, int r, const char *what) {
        log_error("database: %s failed: %s", what, strerror(-r));
        if (r == -EBUSY)
                return td_fail(st, TD_UNAVAILABLE, "the database is busy; try again");
        if (r == -ETIMEDOUT) /* PostgreSQL: a COMMIT's answer lost, and the server did not come back in time */
                return td_fail(st, TD_UNAVAILABLE, "the database did not tell whether the change was made; try again");
        if (r == -ENOSPC)
                return td_fail(st, TD_UNAVAILABLE, "the database disk is full; nothing was changed");
        return td_fail(st, TD_INTERNAL, "internal error while %s", what);
}

void td_audit(tokend *t, const td_caller *c, const char *event, const char *user, const char *device_id,
              const char *detail_fmt, ...) {
        char raw[TD_AUDIT_DETAIL_MAX + 1] = "", detail[TD_AUDIT_DETAIL_MAX + 1] = "",
             safe_user[STORE_USER_MAX + 1], safe_dev[STORE_DEVICE_ID_MAX + 1];
        va_list ap;
        if (detail_fmt) {
                va_start(ap, detail_fmt);
                (void) vsnprintf(raw, sizeof raw, detail_fmt, ap);
                va_end(ap);
        }
        /* Audit rows quote what callers sent (verify's rhost and tty, a user
         * name that failed): whoever reads them later gets no control,
         * bidi or invalid character from it. */
        (void) str_escape_controls(raw, strlen(raw), detail, sizeof detail);
        if (user)
                (void) str_escape_controls(user, strlen(user), safe_user, sizeof safe_user);
        if (device_id)
                (void) str_escape_controls(device_id, strlen(device_id), safe_dev, sizeof safe_dev);
        store_audit a = {
                .time = td_now(), .event = event, .user = user ? safe_user : NULL,
                .device_id = device_id ? safe_dev : NULL,
                .caller_uid = c ? (int64_t) c->uid : -1, .caller_pid = c ? (int64_t) c->pid : -1,
                .detail = detail_fmt ? detail : NULL,
        };
        int r = store_audit_coalesce(t->store, &a, TD_AUDIT_WINDOW);
        if (r < 0)
                log_warning("audit event %s could not be written, ignoring: %s", event, strerror(-r));
}

void td_device_revoked(tokend *t, const char *user, const char *device_id) {
        log_notice("device %s of %s revoked", device_id, user);
        if (t->on_device_revoked)
                t->on_device_revoked(t->on_device_revoked_userdata, user, device_id);
        longpoll_notify(t->longpoll); /* the feed's waiting requests */
}

bool td_verifier_refuses(tokend *t, td_status *st) {
        if (t->role != TOKEND_ROLE_VERIFIER)
                return false;
        /* config->issuer is [Verifier] Issuer= there; it never changes on reload. */
        td_fail(st, TD_FORBIDDEN, "this tokend only verifies tokens of %s: log in, get tokens and manage devices "
                "there", t->config->issuer);
        return true;
}

td_code td_revoke_device(tokend *t, const char *user, const char *device_id, const char *reason,
                         const store_audit *a, td_status *st) {
        int r = store_device_revoke(t->store, device_id, reason, a);
        if (r < 0)
                return td_store_fail(st, r, "revoking the device");
        if (r > 0)
                td_device_revoked(t, user, device_id);
        return TD_OK;
}

void td_tokens_done(td_tokens *t) {
        if (!t)
                return;
        erase_and_free(t->access_token);
        erase_and_free(t->refresh_token);
        free(t->user);
        strv_free(t->groups);
        *t = (td_tokens){ 0 };
}

void td_introspection_done(td_introspection *i) {
        if (!i)
                return;
        free(i->sub);
        strv_free(i->aud);
        free(i->client_id);
        free(i->scope);
        free(i->jti);
        *i = (td_introspection){ 0 };
}

/* ---- validation ------------------------------------------------------ */

/* A device name is shown to admins (tokenctl devices) and kept in audit
 * rows: refused, not escaped, if it holds a control, bidi or invalid UTF-8
 * character, so what the owner typed is what everyone sees. */
static bool printable_name(const char *s, size_t max) {
        size_t l = strlen(s);
        return l > 0 && l <= max && str_is_safe_text(s, l);
}

static bool device_id_valid(const char *id) {
        return id && strlen(id) == 4 + b64url_encoded_len(DEVICE_ID_BYTES) && strncmp(id, "dev_", 4) == 0 &&
               strspn(id + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
                       b64url_encoded_len(DEVICE_ID_BYTES);
}

/* Decode an Ed25519 device key (base64url, 32 bytes, a valid point). */
static int device_key_decode(const char *b64, uint8_t out[static 32]) {
        if (b64url_decode_exact(b64, strlen(b64), out, 32) < 0)
                return -EBADMSG;
        if (!crypto_core_ed25519_is_valid_point(out))
                return -EBADMSG;
        return 0;
}

static void device_key_jkt(const uint8_t pk[static 32], char out[static JOSE_THUMBPRINT_LEN + 1]) {
        _cleanup_(jose_key_freep) jose_key *k = NULL;
        out[0] = 0;
        if (jose_key_from_ed25519_public(pk, &k) >= 0)
                jose_key_thumbprint(k, out);
}

/* Why a step-up audience cannot be granted (the clause of the refusal). */
#define STEP_UP_PEER "not a peer login"
#define STEP_UP_STALE "and this device's is older or none: log in with the password again"

static td_code step_up_fail(tokend *t, const char *aud, const char *why, td_status *st) {
        char life[TIMESPAN_FORMAT_MAX];
        return td_fail(st, TD_FORBIDDEN, "audience %s is a step-up audience: it needs a password login within "
                       "the last %s, %s ([Token] StepUpAudiences=, StepUpLifetime=)", aud,
                       timespan_format(t->config->step_up_lifetime, life, sizeof life), why);
}

/* Audiences for a new token: the request's (each valid and allowed), else
 * [Token] DefaultAudience, into buf. A step-up audience ([Token]
 * StepUpAudiences) needs step_up_denied == NULL (a password login within
 * StepUpLifetime, or a root caller); otherwise asking for one is refused
 * with 403 and *ret_step_up_refused set, and the default audience goes
 * without it (refused too if nothing is left). Caller holds the read lock. */
static td_code resolve_audience(tokend *t, const char *const *req, const char *step_up_denied,
                                const char *buf[static AT_MAX_AUD + 1], size_t *ret_n, bool *ret_step_up_refused,
                                td_status *st) {
        const char *const *v = req ? req : (const char *const *) t->config->default_audience;
        const char *dropped = NULL;
        size_t n = 0;
        *ret_step_up_refused = false;
        for (size_t i = 0; v[i]; i++) {
                if (i >= AT_MAX_AUD)
                        return td_fail(st, TD_INVALID_REQUEST, "at most %u audiences", AT_MAX_AUD);
                if (!tokend_audience_name_valid(v[i]))
                        return td_fail(st, TD_INVALID_REQUEST, "audience names are 1-%u characters of "
                                       "[A-Za-z0-9_.@-], at most one '@' (SERVICE@HOST)", TOKEND_AUDIENCE_MAX);
                if (!tokend_config_audience_allowed(t->config, v[i]))
                        return td_fail(st, TD_FORBIDDEN, "audience \"%s\" is not in [Token] AllowedAudiences",
                                       v[i]);
                if (step_up_denied && tokend_config_audience_step_up(t->config, v[i])) {
                        if (req) {
                                *ret_step_up_refused = true;
                                return step_up_fail(t, v[i], step_up_denied, st);
                        }
                        dropped = dropped ?: v[i];
                        continue;
                }
                buf[n++] = v[i];
        }
        buf[n] = NULL;
        if (n == 0 && dropped) {
                *ret_step_up_refused = true;
                return step_up_fail(t, dropped, step_up_denied, st);
        }
        if (n == 0)
                return td_fail(st, TD_INVALID_REQUEST, "audience must not be empty");
        *ret_n = n;
        return TD_OK;
}

/* ---- issuing --------------------------------------------------------- */

typedef struct issue_ctx {
        const td_user *user;
        const char *device_id;
        const uint8_t *device_key; /* NULL if none */
        const char *const *aud;
        size_t n_aud;
        int64_t now;
        int64_t lifetime;
} issue_ctx;

/* Build the access token and the user part of the answer. Caller holds the
 * read lock. */
static td_code build_access(tokend *t, const issue_ctx *ic, td_tokens *out, char *ret_jti, td_status *st) {
        char jkt[JOSE_THUMBPRINT_LEN + 1] = "";
        size_t len = 0;
        int r;

        /* A host-scoped token (an audience SERVICE@HOST) goes to another
         * machine: its uid means nothing there (verifiers use their own
         * NSS), and no PAM prompt carries a DPoP proof for cnf.jkt. Both
         * left out so that a 64-character host name still fits MaxLength=511
         * (README "Token size"); the refresh token stays bound to the key. */
        bool scoped = false;
        for (size_t i = 0; i < ic->n_aud; i++)
                scoped = scoped || strchr(ic->aud[i], '@');
        if (ic->device_key && !scoped)
                device_key_jkt(ic->device_key, jkt);
        at_params p = {
                .issuer = t->config->issuer, .subject = ic->user->name, .uid = (uint32_t) ic->user->uid,
                .aud = ic->aud, .n_aud = ic->n_aud, .iat = ic->now, .lifetime = ic->lifetime,
                .client_id = ic->device_id, .cnf_jkt = ic->device_key && !scoped ? jkt : NULL, .no_uid = scoped,
        };
        r = at_build(td_signing_key(t), &p, &out->access_token, &len, ret_jti, AT_JTI_BYTES * 2);
        if (r < 0) {
                log_error("signing an access token failed: %s", strerror(-r));
                return td_fail(st, TD_INTERNAL, "internal error while signing the token");
        }
        if (len > t->config->max_length) {
                log_error("refusing to issue a %zu-byte access token for %s: over [Token] MaxLength=%zu", len,
                          ic->user->name, t->config->max_length);
                erase_and_free(out->access_token);
                out->access_token = NULL;
                return td_fail(st, TD_INTERNAL,
                               "the access token would be %zu bytes, over [Token] MaxLength=%zu (PAM prompts "
                               "truncate longer answers); request fewer audiences or raise MaxLength",
                               len, t->config->max_length);
        }
        out->expires_in = ic->lifetime;
        snprintf(out->device_id, sizeof out->device_id, "%s", ic->device_id);
        out->uid = ic->user->uid;
        if (!(out->user = strdup(ic->user->name)) || user_groups(ic->user, &out->groups) < 0)
                return td_fail(st, TD_INTERNAL, "out of memory");
        return TD_OK;
}

static int new_refresh_token(char **ret, uint8_t hash[static STORE_HASH_LEN]) {
        size_t n = b64url_encoded_len(REFRESH_TOKEN_BYTES) + 1;
        char *s = malloc(n);
        if (!s)
                return -ENOMEM;
        (void) b64url_random(REFRESH_TOKEN_BYTES, s, n);
        crypto_hash_sha256(hash, (const uint8_t *) s, strlen(s));
        *ret = s;
        return 0;
}

/* A requested ttl (0: none) may shorten the configured lifetime, never lengthen it. */
static int64_t shorter_lifetime(int64_t configured, int64_t ttl) {
        return ttl > 0 && ttl < configured ? ttl : configured;
}

/* Enrol a new device for user and answer with its first tokens. Caller
 * holds the read lock. */
static td_code enrol(tokend *t, const td_caller *c, const td_user *u, bool password, const char *device_name,
                     const char *device_key, const char *const *aud_req, int64_t ttl, const char *event,
                     td_tokens *ret, td_status *st) {
        uint8_t pk[32], hash[STORE_HASH_LEN];
        char jti[AT_JTI_BYTES * 2];
        const char *aud[AT_MAX_AUD + 1];
        size_t n_aud;
        bool step_up_refused;
        td_tokens tok = { 0 };
        store_device d = { 0 };
        td_code tc;
        int r;

        if (device_name && !printable_name(device_name, STORE_DEVICE_NAME_MAX))
                return td_fail(st, TD_INVALID_REQUEST, "device_name must be 1-%u bytes of UTF-8 text without "
                               "control, bidi-override or invalid characters", STORE_DEVICE_NAME_MAX);
        if (device_key && device_key_decode(device_key, pk) < 0)
                return td_fail(st, TD_INVALID_REQUEST, "device_key must be a base64url Ed25519 public key");
        /* Step-up audiences: the password was just checked, or root asks. */
        tc = resolve_audience(t, aud_req, password || c->uid == 0 ? NULL : STEP_UP_PEER, aud, &n_aud,
                              &step_up_refused, st);
        if (step_up_refused)
                td_audit(t, c, "token_denied", u->name, NULL, "%s", st->message);
        if (tc != TD_OK)
                return tc;

        int64_t now = td_now();
        int64_t life = shorter_lifetime(t->config->access_token_lifetime, ttl);
        memcpy(d.id, "dev_", 4);
        (void) b64url_random(DEVICE_ID_BYTES, d.id + 4, sizeof d.id - 4);
        issue_ctx ic = { .user = u, .device_id = d.id, .device_key = device_key ? pk : NULL,
                         .aud = aud, .n_aud = n_aud, .now = now, .lifetime = life };
        if ((tc = build_access(t, &ic, &tok, jti, st)) != TD_OK) {
                td_tokens_done(&tok);
                return tc;
        }
        if (new_refresh_token(&tok.refresh_token, hash) < 0) {
                td_tokens_done(&tok);
                return td_fail(st, TD_INTERNAL, "out of memory");
        }
        int64_t rlife = t->config->refresh_token_lifetime;
        tok.refresh_expires_in = rlife;
        snprintf(d.user, sizeof d.user, "%s", u->name);
        d.uid = u->uid;
        snprintf(d.name, sizeof d.name, "%s", device_name ? device_name : "");
        d.created = d.last_used = now;
        d.password_auth = password ? now : 0;
        d.has_public_key = device_key != NULL;
        if (device_key)
                memcpy(d.public_key, pk, sizeof pk);
        store_audit a = { .time = now, .event = event, .user = u->name, .device_id = d.id,
                          .caller_uid = c->uid, .caller_pid = c->pid, .detail = jti };
        r = store_device_create(t->store, &d, hash, rlife ? now + rlife : 0, t->config->max_devices_per_user, &a);
        sodium_memzero(hash, sizeof hash);
        if (r == -EDQUOT) {
                /* Refused, not evicting a live device: a thief holding the
                 * account's uid must not be able to push the owner's out.
                 * No audit row: a refusal must not grow the database (the
                 * front end logs it). */
                td_tokens_done(&tok);
                return td_fail(st, TD_FORBIDDEN, "%s already has %u live devices, the most [Login] "
                               "MaxDevicesPerUser allows: revoke some (tokenctl devices revoke ID) first",
                               u->name, t->config->max_devices_per_user);
        }
        if (r < 0) {
                td_tokens_done(&tok);
                return td_store_fail(st, r, "enrolling the device");
        }
        log_info("%s: issued tokens for %s, new device %s%s (caller uid=%u pid=%d)", event, u->name, d.id,
                 device_key ? " with key" : "", (unsigned) c->uid, (int) c->pid);
        *ret = tok;
        return TD_OK;
}

/* ---- the login limiter ----------------------------------------------- */

int tokend_limits_new(tokend *t) {
        unsigned m = t->config->max_failures;
        int64_t w = t->config->failure_window;
        int r;
        if ((r = ratelimit_new(m, w, &t->login_fail_pair)) < 0 || (r = ratelimit_new(m, w, &t->login_fail_user)) < 0 ||
            (r = ratelimit_new(m * LOGIN_UID_TOTAL_FACTOR, w, &t->login_fail_uid)) < 0 ||
            (r = ratelimit_new(m * VERIFY_FAILURE_FACTOR, w, &t->verify_fail_uid)) < 0 ||
            (r = ratelimit_new(m * VERIFY_FAILURE_FACTOR, w, &t->verify_fail_rhost)) < 0 ||
            (r = ratelimit_new(t->config->peer_login_rate, PEER_LOGIN_WINDOW, &t->peer_login_uid)) < 0 ||
            (r = vcache_new(&t->verified)) < 0 || (r = user_cache_new(NULL, &t->users)) < 0)
                return r;
        return 0;
}

void tokend_limits_free(tokend *t) {
        ratelimit_free(t->login_fail_pair);
        ratelimit_free(t->login_fail_user);
        ratelimit_free(t->login_fail_uid);
        ratelimit_free(t->verify_fail_uid);
        ratelimit_free(t->verify_fail_rhost);
        ratelimit_free(t->peer_login_uid);
        vcache_free(t->verified);
        user_cache_free(t->users);
        t->login_fail_pair = t->login_fail_user = t->login_fail_uid = t->verify_fail_uid = t->verify_fail_rhost = NULL;
        t->verified = NULL;
        t->users = NULL;
}

/* The counters a password login is held to ([Login] MaxFailures per
 * FailureWindow): always the pair (caller uid, user name); when the caller
 * is not that user, also the user name (failures from every other caller
 * together) and the caller's total over other users' names (at
 * LOGIN_UID_TOTAL_FACTOR times MaxFailures: password spraying). A user's
 * own login is thus never blocked by what she or anyone else did with
 * other names. An attempt is reserved in every counter before PAM runs,
 * so concurrent guesses cannot overshoot. The pair and user-name counters
 * are filed under the user name (the ratelimit tag): td_unlock clears them
 * all, whichever callers failed. */
typedef struct login_limit {
        size_t n;
        ratelimit *rl[3];
        char key[3][STORE_USER_MAX + TD_REMOTE_MAX + 16];
        int64_t ticket[3];
} login_limit;

/* Reserve one attempt in each counter. 0, or the seconds to wait (nothing
 * reserved then). */
static int64_t login_reserve(tokend *t, const td_caller *c, const char *name, login_limit *ret) {
        td_user target;
        bool own = user_by_name(name, &target) >= 0 && target.uid == c->uid;
        int64_t now = td_now();
        char who[TD_REMOTE_MAX + 8];

        /* Over TCP the caller is its address (IPv4 /32, IPv6 /64), which is
         * never "the user herself": all three counters apply. */
        td_caller_key(c, who);
        own = own && !td_caller_is_remote(c);
        *ret = (login_limit){ .rl = { t->login_fail_pair, t->login_fail_user, t->login_fail_uid } };
        snprintf(ret->key[0], sizeof ret->key[0], "%s user:%s", who, name);
        snprintf(ret->key[1], sizeof ret->key[1], "user:%s", name);
        snprintf(ret->key[2], sizeof ret->key[2], "%s", who);
        size_t want = own ? 1 : 3;
        for (; ret->n < want; ret->n++) {
                int64_t wait = ratelimit_reserve(ret->rl[ret->n], ret->key[ret->n], ret->n < 2 ? name : NULL, now,
                                                 &ret->ticket[ret->n]);
                if (wait > 0) {
                        while (ret->n > 0) {
                                ret->n--;
                                ratelimit_release(ret->rl[ret->n], ret->key[ret->n], ret->ticket[ret->n]);
                        }
                        return wait;
                }
        }
        return 0;
}

/* The attempt was no failure of the caller's (the server failed, or the
 * password was right: success also clears the pair and user counters, not
 * the spraying total). */
static void login_unreserve(login_limit *l, bool success) {
        for (size_t i = 0; i < l->n; i++) {
                if (success && i < 2)
                        ratelimit_reset(l->rl[i], l->key[i]);
                else
                        ratelimit_release(l->rl[i], l->key[i], l->ticket[i]);
        }
        l->n = 0;
}

td_code td_login(tokend *t, const td_caller *c, const td_login_req *req, td_tokens *ret, td_status *st) {
        _cleanup_(freep) char *service = NULL;
        login_limit limit;
        td_user u;
        int64_t wait, started = td_monotonic_usec(), delay;
        td_code tc;
        int r;

        if (td_verifier_refuses(t, st))
                return st->code;

        if (!req->username || !req->password)
                return td_fail(st, TD_INVALID_REQUEST, "username and password are required");
        if (!user_name_valid(req->username))
                return td_fail(st, TD_INVALID_REQUEST, "username is not a valid user name");
        size_t pl = strnlen(req->password, PASSWORD_MAX + 1);
        if (pl == 0 || pl > PASSWORD_MAX)
                return td_fail(st, TD_INVALID_REQUEST, "password must be 1-%u bytes", PASSWORD_MAX);

        wait = login_reserve(t, c, req->username, &limit);
        if (wait > 0) {
                st->retry_after = wait;
                td_audit(t, c, "login_throttled", req->username, NULL, "too many failed logins");
                return td_fail(st, TD_TOO_MANY_REQUESTS, "too many failed logins; retry in %lld s",
                               (long long) wait);
        }

        tokend_rdlock(t);
        service = strdup(t->config->pam_service);
        delay = t->config->failure_delay;
        tokend_unlock(t);
        if (!service) {
                login_unreserve(&limit, false);
                return td_fail(st, TD_INTERNAL, "out of memory");
        }
        /* Not under the lock: PAM may take a while. */
        r = pamauth_check(service, req->username, req->password);
        if (r == 0)
                r = user_by_name(req->username, &u);
        if (r < 0) {
                if (r == -EIO) {
                        /* server-side failures do not count as the user's */
                        login_unreserve(&limit, false);
                        log_error("PAM service %s failed for %s (is it installed, can tokend read the "
                                  "password database?)", service, req->username);
                        td_audit(t, c, "login_error", req->username, NULL, "PAM service %s failed", service);
                        return td_fail(st, TD_INTERNAL, "the password check failed on the server side");
                }
                /* the reservations stay: they are the counted failures */
                td_audit(t, c, "login_failed", req->username, NULL, NULL);
                char who[TD_CALLER_NAME_MAX];
                log_notice("login failed for %s (caller %s)", req->username, td_caller_name(c, who));
                /* An unknown user fails in microseconds, a wrong password only
                 * after the hash: the answer waits until both look alike. */
                st->not_before_usec = delay > 0 ? started + delay * 1000000 : 0;
                return td_fail(st, TD_INVALID_CREDENTIALS, "wrong user name or password");
        }
        login_unreserve(&limit, true);

        tokend_rdlock(t);
        tc = enrol(t, c, &u, true, req->device_name, req->device_key, req->audience, 0, "login", ret, st);
        tokend_unlock(t);
        return tc;
}

td_code td_issue(tokend *t, const td_caller *c, const td_issue_req *req, td_tokens *ret, td_status *st) {
        td_user u;
        td_code tc;
        int r;

        if (td_verifier_refuses(t, st))
                return st->code;

        /* No kernel identity over TCP: nobody to issue tokens for. */
        if (td_caller_is_remote(c))
                return td_fail(st, TD_FORBIDDEN, "peer login needs a local caller (the Unix socket or the bus); "
                               "over the network log in with a password");
        tokend_rdlock(t);
        if (!t->config->allow_peer_login) {
                tc = td_fail(st, TD_FORBIDDEN, "peer login is disabled ([Login] AllowPeerLogin=no)");
                goto out;
        }
        r = user_by_uid(c->uid, &u);
        if (r < 0) {
                tc = td_fail(st, TD_FORBIDDEN, "the calling uid %u has no user name", (unsigned) c->uid);
                goto out;
        }
        if (req->user && !streq(req->user, u.name)) {
                if (c->uid != 0) {
                        td_audit(t, c, "token_denied", req->user, NULL, "uid %u asked for another user",
                                 (unsigned) c->uid);
                        tc = td_fail(st, TD_FORBIDDEN, "only root may ask for another user's token");
                        goto out;
                }
                r = user_by_name(req->user, &u);
                if (r < 0) {
                        tc = td_fail(st, TD_INVALID_REQUEST, "no such user: %s",
                                     user_name_valid(req->user) ? req->user : "(invalid name)");
                        goto out;
                }
        }
        /* Each peer login is a new device: a non-root uid gets PeerLoginRate
         * a minute (root is trusted with its own loops, and minting for
         * other users is how root services use this). Counted before the
         * enrolment, so concurrent requests cannot overshoot. */
        if (c->uid != 0) {
                char kuid[32];
                snprintf(kuid, sizeof kuid, "uid:%u", (unsigned) c->uid);
                int64_t wait = ratelimit_take(t->peer_login_uid, kuid, t->config->peer_login_rate, td_now());
                if (wait > 0) {
                        st->retry_after = wait;
                        tc = td_fail(st, TD_TOO_MANY_REQUESTS, "more than %u peer logins a minute by uid %u "
                                     "([Login] PeerLoginRate); retry in %lld s", t->config->peer_login_rate,
                                     (unsigned) c->uid, (long long) wait);
                        goto out;
                }
        }
        tc = enrol(t, c, &u, false, req->device_name ? req->device_name : DEFAULT_DEVICE_NAME_PEER,
                   req->device_key, req->audience, req->ttl, "token", ret, st);
out:
        tokend_unlock(t);
        return tc;
}

td_code td_device_approve(tokend *t, const td_caller *c, const char *bearer, const td_issue_req *req, td_tokens *ret,
                          td_status *st) {
        td_user u;
        td_code tc;

        if (td_verifier_refuses(t, st))
                return st->code;
        if (!bearer)
                return td_fail(st, TD_INVALID_TOKEN, "approving a device needs an Authorization: Bearer access token");
        at_claims cl = { 0 };
        tokend_rdlock(t);
        tc = td_check_access_token(t, bearer, NULL, &cl, st);
        if (tc == TD_OK && user_by_name(cl.sub, &u) < 0)
                tc = td_fail(st, TD_INVALID_TOKEN, "the token's user no longer exists");
        at_claims_done(&cl);
        /* On the socket the kernel says who asks: only the token's own user
         * (or root) may use it to enrol another device. Over TCP the bearer
         * token alone vouches. */
        if (tc == TD_OK && !td_caller_is_remote(c) && c->uid != 0 && c->uid != u.uid)
                tc = td_fail(st, TD_FORBIDDEN, "the access token belongs to another user than the caller");
        if (tc == TD_OK)
                tc = enrol(t, c, &u, false, req->device_name, req->device_key, req->audience, 0, "device_approve",
                           ret, st);
        tokend_unlock(t);
        return tc;
}

/* Record the first use of a proof's jti, kept for as long as its iat is
 * in the window; a second use is a replay. */
static td_code proof_jti_once(tokend *t, const char *jti, int64_t now, int64_t skew, td_status *st) {
        int r = store_proof_jti_use(t->store, jti, now + 2 * skew + 1);
        if (r == -EEXIST)
                return td_fail(st, TD_INVALID_TOKEN, "the proof was already used (replay)");
        if (r < 0)
                return td_store_fail(st, r, "recording the proof");
        return TD_OK;
}

/* An RFC 9449 DPoP proof (tokend-dpop.h), same freshness and replay rules. */
static td_code check_dpop(tokend *t, const store_device *d, const td_refresh_req *req, int64_t now, int64_t skew,
                          td_status *st) {
        char jti[PROOF_JTI_MAX + 1];
        const char *why;
        td_code c;
        int r = dpop_verify(d->public_key, req->proof, "POST", req->htu, now, skew, jti, &why);
        if (r == -ENOMEM)
                return td_fail(st, TD_INTERNAL, "out of memory");
        if (r < 0)
                c = td_fail(st, TD_INVALID_TOKEN, "the DPoP proof is refused: %s", why);
        else if ((c = proof_jti_once(t, jti, now, skew, st)) == TD_INVALID_TOKEN)
                c = td_fail(st, TD_INVALID_TOKEN, "the DPoP proof was already used (jti replay)");
        st->dpop_invalid = c == TD_INVALID_TOKEN;
        return c;
}

/* RFC 9449-style proof of possession of the device key (tokend-proof.h):
 * fresh (iat within ClockSkew) and never seen before (replay cache). */
static td_code check_proof(tokend *t, const store_device *d, const td_refresh_req *req, int64_t now,
                           td_status *st) {
        char jti[PROOF_JTI_MAX + 1];
        int64_t skew = t->config->clock_skew > 0 ? t->config->clock_skew : 1;
        int r;

        if (!req->proof)
                return td_fail(st, TD_INVALID_TOKEN, "this device has a key: refresh needs a proof signed by it");
        if (req->dpop)
                return check_dpop(t, d, req, now, skew, st);
        r = proof_verify(d->public_key, req->proof, req->htu, req->device_id, now, skew, jti);
        switch (r) {
        case 0:
                break;
        case -E2BIG:
                return td_fail(st, TD_INVALID_REQUEST, "proof too long");
        case -ENOMEM:
                return td_fail(st, TD_INTERNAL, "out of memory");
        case -EKEYREJECTED:
                return td_fail(st, TD_INVALID_TOKEN, "the proof is not signed by this device's key");
        case -ETIME:
                return td_fail(st, TD_INVALID_TOKEN, "the proof is stale or from the future (iat must be within "
                               "%llds of now)", (long long) skew);
        default:
                return td_fail(st, TD_INVALID_TOKEN, "the proof must be typ %s with jti, iat, htm POST, htu %s "
                               "and this device_id", PROOF_TYP, req->htu);
        }
        return proof_jti_once(t, jti, now, skew, st);
}

/* The answer to a failed store_refresh_rotate() (r < 0) of device d. */
static td_code rotate_fail(tokend *t, const td_caller *c, const store_device *d, int r,
                           const store_rotate_result *rr, td_status *st) {
        switch (r) {
        case -ENOENT:
                return td_fail(st, TD_INVALID_TOKEN, "unknown refresh token or device");
        case -EKEYREVOKED:
                if (!rr->reuse_detected)
                        return td_fail(st, TD_TOKEN_REVOKED, "this device was revoked");
                log_warning("refresh token reuse on device %s of %s (caller uid=%u pid=%d): device revoked", d->id,
                            d->user, (unsigned) c->uid, (int) c->pid);
                td_device_revoked(t, d->user, d->id);
                return td_fail(st, TD_TOKEN_REVOKED, "this refresh token was already used: the device has been "
                               "revoked as a precaution; log in again");
        case -EKEYEXPIRED:
                return td_fail(st, TD_TOKEN_EXPIRED, "the refresh token has expired; log in again");
        case -EALREADY:
                return td_fail(st, TD_INVALID_TOKEN, "this refresh token was just rotated by a concurrent request");
        default:
                return td_store_fail(st, r, "rotating the refresh token");
        }
}

td_code td_refresh(tokend *t, const td_caller *c, const td_refresh_req *req, td_tokens *ret, td_status *st) {
        uint8_t presented[STORE_HASH_LEN], hash[STORE_HASH_LEN];
        char jti[AT_JTI_BYTES * 2];
        const char *aud[AT_MAX_AUD + 1];
        size_t n_aud;
        bool step_up_refused;
        store_device d;
        store_rotate_result rr;
        td_tokens tok = { 0 };
        td_user u;
        td_code tc;
        int r;

        if (td_verifier_refuses(t, st))
                return st->code;

        if (!req->refresh_token || !req->device_id)
                return td_fail(st, TD_INVALID_REQUEST, "refresh_token and device_id are required");
        if (!device_id_valid(req->device_id) ||
            strlen(req->refresh_token) != b64url_encoded_len(REFRESH_TOKEN_BYTES))
                return td_fail(st, TD_INVALID_TOKEN, "unknown refresh token or device");

        int64_t now = td_now();
        tokend_rdlock(t);
        r = store_device_get(t->store, req->device_id, &d);
        if (r == -ENOENT) {
                tc = td_fail(st, TD_INVALID_TOKEN, "unknown refresh token or device");
                goto out;
        }
        if (r < 0) {
                tc = td_store_fail(st, r, "reading the device");
                goto out;
        }
        if (d.revoked) {
                tc = td_fail(st, TD_TOKEN_REVOKED, "this device was revoked (%s)", d.revoke_reason);
                goto out;
        }
        if (!d.has_public_key && req->dpop && req->proof) {
                /* Nothing to bind it to: refused, not ignored (fail closed). */
                tc = td_fail(st, TD_INVALID_TOKEN, "the DPoP proof is refused: this device has no key (register "
                             "one at login as device_key)");
                st->dpop_invalid = true;
                td_audit(t, c, "refresh_proof_failed", d.user, d.id, "%s", st->message);
                goto out;
        }
        if (d.has_public_key && (tc = check_proof(t, &d, req, now, st)) != TD_OK) {
                td_audit(t, c, "refresh_proof_failed", d.user, d.id, "%s", st->message);
                goto out;
        }
        r = user_by_name(d.user, &u);
        if (r < 0 || u.uid != d.uid) {
                tc = td_fail(st, TD_INVALID_TOKEN, "the device's user no longer exists");
                goto out;
        }
        /* Step-up audiences: only while the device's password login is
         * recent (a peer-login device has none), or for root. */
        int64_t since = now - d.password_auth;
        bool recent = d.password_auth > 0 && since >= 0 && since <= t->config->step_up_lifetime;
        tc = resolve_audience(t, req->audience, recent || c->uid == 0 ? NULL : STEP_UP_STALE, aud, &n_aud,
                              &step_up_refused, st);
        if (step_up_refused) {
                /* Refused only for the holder of the current refresh token
                 * (anyone else gets the usual answer, a rotated token still
                 * revokes the device), and it stays valid. */
                crypto_hash_sha256(presented, (const uint8_t *) req->refresh_token, strlen(req->refresh_token));
                r = store_refresh_rotate(t->store, d.id, presented, NULL, now, 0, t->config->refresh_reuse_grace,
                                         NULL, &rr);
                sodium_memzero(presented, sizeof presented);
                if (r == 0)
                        td_audit(t, c, "token_denied", d.user, d.id, "%s", st->message);
                else
                        tc = rotate_fail(t, c, &d, r, &rr, st);
                goto out;
        }
        if (tc != TD_OK)
                goto out;
        /* Sign first, rotate second: if signing fails nothing is rotated. */
        issue_ctx ic = { .user = &u, .device_id = d.id, .device_key = d.has_public_key ? d.public_key : NULL,
                         .aud = aud, .n_aud = n_aud, .now = now,
                         .lifetime = shorter_lifetime(t->config->access_token_lifetime, req->ttl) };
        if ((tc = build_access(t, &ic, &tok, jti, st)) != TD_OK)
                goto out;
        if (new_refresh_token(&tok.refresh_token, hash) < 0) {
                tc = td_fail(st, TD_INTERNAL, "out of memory");
                goto out;
        }
        crypto_hash_sha256(presented, (const uint8_t *) req->refresh_token, strlen(req->refresh_token));
        int64_t rlife = t->config->refresh_token_lifetime;
        store_audit a = { .time = now, .event = "refresh", .user = d.user, .device_id = d.id,
                          .caller_uid = c->uid, .caller_pid = c->pid, .detail = jti };
        r = store_refresh_rotate(t->store, d.id, presented, hash, now, rlife ? now + rlife : 0,
                                 t->config->refresh_reuse_grace, &a, &rr);
        sodium_memzero(presented, sizeof presented);
        sodium_memzero(hash, sizeof hash);
        if (r < 0) {
                tc = rotate_fail(t, c, &d, r, &rr, st);
                goto out;
        }
        tok.refresh_expires_in = rlife;
        *ret = tok;
        tok = (td_tokens){ 0 };
        tc = TD_OK;
out:
        tokend_unlock(t);
        td_tokens_done(&tok);
        return tc;
}

/* Why at_verify (r < 0) refused a token, as the caller is told. where: ""
 * or " on this host". */
static td_code token_refused(td_status *st, int r, const char *audience, const char *where) {
        switch (r) {
        case -EKEYEXPIRED: return td_fail(st, TD_TOKEN_EXPIRED, "the token has expired");
        case -ETIME: return td_fail(st, TD_INVALID_TOKEN, "the token is not valid yet");
        case -EACCES:
                if (audience)
                        return td_fail(st, TD_INVALID_TOKEN, "the token is not for service %s%s (or has another "
                                       "issuer)", audience, where);
                return td_fail(st, TD_INVALID_TOKEN, "the token has another issuer");
        case -ENOKEY: return td_fail(st, TD_INVALID_TOKEN, "the token was signed by an unknown key");
        default: return td_fail(st, TD_INVALID_TOKEN, "the token is malformed or its signature is invalid");
        }
}

/* td_check_access_token on a verifier: the issuer's keys and revocation
 * feed (tokend-verifier.c), then the user in this host's NSS. The token's
 * uid is the issuer host's and is ignored: uids differ from host to host,
 * the local one is answered. */
static td_code td_check_remote(tokend *t, const char *token, size_t len, const char *audience, at_claims *ret,
                               td_status *st) {
        at_claims cl = { 0 };
        td_user u;
        int r = verifier_check(t->verifier, token, len, audience, td_now(), t->config->clock_skew, &cl);
        switch (r) {
        case 0: break;
        case -EKEYREVOKED: return td_fail(st, TD_TOKEN_REVOKED, "the token or its device was revoked");
        case -ENOKEY:
                st->retry_after = 1;
                return td_fail(st, TD_UNAVAILABLE, "the token names an issuer key not known here yet; fetching it");
        case -ESTALE:
                st->retry_after = 5;
                return td_fail(st, TD_UNAVAILABLE, "no recent revocation feed from the issuer (Policy=strict, "
                               "MaxStaleness=%llds): refusing every token", (long long) t->config->verifier_max_staleness);
        default: return token_refused(st, r, audience, " on this host");
        }
        if (user_cache_by_name(t->users, cl.sub, &u) < 0) {
                verifier_count_check(t->verifier, VCHECK_UNKNOWN_USER);
                at_claims_done(&cl);
                return td_fail(st, TD_INVALID_TOKEN, "the token's user does not exist on this host");
        }
        verifier_count_check(t->verifier, VCHECK_ACCEPTED);
        cl.uid = (int64_t) u.uid;
        /* The answer's aud is the service this host accepted it for ("sshd",
         * whether the token says sshd@web1 or, with AcceptUnscoped=, sshd):
         * what pam_jwt, unchanged, checks the answer against. */
        if (audience) {
                char *a = strdup(audience);
                char **v = a ? calloc(1, sizeof(char *)) : NULL;
                if (!v) {
                        free(a);
                        at_claims_done(&cl);
                        return td_fail(st, TD_INTERNAL, "out of memory");
                }
                for (size_t i = 0; i < cl.n_aud; i++)
                        free(cl.aud[i]);
                free(cl.aud);
                v[0] = a;
                cl.aud = v;
                cl.n_aud = 1;
        }
        *ret = cl;
        return TD_OK;
}

td_code td_check_access_token(tokend *t, const char *token, const char *audience, at_claims *ret, td_status *st) {
        at_claims cl = { 0 };
        store_device d;
        vcache_key key;
        td_user u;
        td_code tc;
        int r;

        if (!token || !*token)
                return td_fail(st, TD_INVALID_REQUEST, "token is required");
        size_t len = strnlen(token, JWS_MAX_TOKEN_BYTES + 1);
        if (len > JWS_MAX_TOKEN_BYTES)
                return td_fail(st, TD_INVALID_TOKEN, "token too long");
        if (t->verifier)
                return td_check_remote(t, token, len, audience, ret, st);
        /* The audience is checked below: SERVICE@HOST is for this host's names only. */
        at_check chk = { .issuer = t->config->issuer, .audience = NULL, .now = td_now(),
                         .skew = t->config->clock_skew };
        /* The same token passed the signature, device and jti checks a
         * moment ago and nothing was revoked since (tokend-vcache.h): the
         * signature check is skipped, and with a store only this process
         * writes (t->store_local) the device and jti reads too; the claims
         * and the user are checked again. */
        bool cached = vcache_lookup(t->verified, token, len, chk.now, &key);
        r = fleet_keys_verify(t->fleet, t->keys.keys, cached, token, len, &chk, &cl);
        if (r == -EBUSY) /* another issuer's kid, and the store did not answer */
                return td_store_fail(st, r, "reading the published keys");
        if (r < 0)
                return token_refused(st, r, NULL, "");
        if (audience && !host_audience_accepts(cl.aud, cl.n_aud, audience, t->host_names, true)) {
                tc = td_fail(st, TD_INVALID_TOKEN, "the token is not for service %s on this host", audience);
                goto fail;
        }
        if (cached && t->store_local)
                goto user;
        bool jti_revoked = false;
        r = cl.client_id && cl.jti ? store_device_jti_get(t->store, cl.client_id, cl.jti, &d, &jti_revoked)
                                   : -ENOENT;
        if (r == -ENOENT) {
                tc = td_fail(st, TD_INVALID_TOKEN, "the token's device is unknown");
                goto fail;
        }
        if (r < 0) {
                tc = td_store_fail(st, r, "reading the device");
                goto fail;
        }
        if (d.revoked) {
                tc = td_fail(st, TD_TOKEN_REVOKED, "the token's device was revoked");
                goto fail;
        }
        if (!streq(d.user, cl.sub)) {
                tc = td_fail(st, TD_INVALID_TOKEN, "the token's device belongs to another user");
                goto fail;
        }
        if (jti_revoked) {
                tc = td_fail(st, TD_TOKEN_REVOKED, "the token was revoked");
                goto fail;
        }
user:
        r = user_cache_by_name(t->users, cl.sub, &u);
        if (r < 0 || (cl.uid >= 0 && (int64_t) u.uid != cl.uid)) {
                tc = td_fail(st, TD_INVALID_TOKEN, "the token's user no longer exists");
                goto fail;
        }
        if (!cached)
                vcache_add(t->verified, &key, chk.now, cl.exp, cl.client_id, cl.jti, cl.sub);
        if (cl.uid < 0) /* a host-scoped token has none: the user's uid here */
                cl.uid = (int64_t) u.uid;
        *ret = cl;
        return TD_OK;
fail:
        at_claims_done(&cl);
        return tc;
}

td_code td_logout(tokend *t, const td_caller *c, const char *access_token, td_status *st) {
        at_claims cl = { 0 };
        td_code tc;
        int r;

        if (td_verifier_refuses(t, st))
                return st->code;

        tokend_rdlock(t);
        if ((tc = td_check_access_token(t, access_token, NULL, &cl, st)) != TD_OK)
                goto out;
        store_audit a = { .time = td_now(), .event = "logout", .user = cl.sub, .device_id = cl.client_id,
                          .caller_uid = c->uid, .caller_pid = c->pid };
        r = store_jti_revoke(t->store, cl.jti, cl.exp);
        longpoll_notify(t->longpoll);
        if (r < 0)
                tc = td_store_fail(st, r, "revoking the token");
        else
                tc = td_revoke_device(t, cl.sub, cl.client_id, "logout", &a, st);
out:
        tokend_unlock(t);
        at_claims_done(&cl);
        return tc;
}

/* The remote-host key root's failed verifications count under: the host
 * pam_jwt reported (PAM_RHOST, chosen by sshd or by the client itself
 * through reverse DNS): an IPv4 address, an IPv6 address by its /64 (which
 * one client gets whole), a name lowercased and cut to 128 bytes. False
 * when there is none (local sudo, su, login: not throttled; pam_faildelay
 * slows those down). */
static bool rhost_key(const char *rhost, char *buf, size_t size) {
        struct in6_addr a6;
        struct in_addr a4;

        if (!rhost || !*rhost)
                return false;
        if (inet_pton(AF_INET6, rhost, &a6) == 1) {
                if (IN6_IS_ADDR_V4MAPPED(&a6))
                        snprintf(buf, size, "rhost:%u.%u.%u.%u", a6.s6_addr[12], a6.s6_addr[13], a6.s6_addr[14],
                                 a6.s6_addr[15]);
                else
                        snprintf(buf, size, "rhost:%02x%02x:%02x%02x:%02x%02x:%02x%02x::/64", a6.s6_addr[0],
                                 a6.s6_addr[1], a6.s6_addr[2], a6.s6_addr[3], a6.s6_addr[4], a6.s6_addr[5],
                                 a6.s6_addr[6], a6.s6_addr[7]);
        } else if (inet_pton(AF_INET, rhost, &a4) == 1)
                snprintf(buf, size, "rhost:%s", rhost);
        else {
                int n = snprintf(buf, size, "rhost:%.128s", rhost);
                for (char *p = buf + 6; n > 0 && *p; p++)
                        if (*p >= 'A' && *p <= 'Z')
                                *p = (char) (*p - 'A' + 'a');
        }
        return true;
}

td_code td_verify(tokend *t, const td_caller *c, const td_verify_req *req, td_introspection *ret, td_status *st) {
        at_claims cl = { 0 };
        td_introspection in = { 0 };
        char key[160];
        ratelimit *limit = NULL;
        td_code tc;
        int64_t now = td_now();

        /* Failures are limited per caller uid; root's (sshd, sudo, login via
         * pam_jwt, acting for users that are not logged in yet) per remote
         * host instead, so that one host cannot lock out the others. */
        if (c->uid != 0) {
                td_caller_key(c, key); /* per uid, or per client network over TCP */
                limit = t->verify_fail_uid;
        } else if (rhost_key(req->rhost, key, sizeof key))
                limit = t->verify_fail_rhost;
        if (limit) {
                int64_t wait = ratelimit_check(limit, key, now);
                if (wait > 0) {
                        st->retry_after = wait;
                        td_audit(t, c, "verify_throttled", NULL, NULL, "%s: too many failed verifications", key);
                        return td_fail(st, TD_TOO_MANY_REQUESTS, "too many failed verifications; retry in %lld s",
                                       (long long) wait);
                }
        }
        if (req->service && !tokend_audience_name_valid(req->service))
                return td_fail(st, TD_INVALID_REQUEST, "service must be 1-%u characters of [A-Za-z0-9_.@-]",
                               TOKEND_AUDIENCE_MAX);
        if (req->user && !user_name_valid(req->user))
                return td_fail(st, TD_INVALID_REQUEST, "user is not a valid user name");

        tokend_rdlock(t);
        tc = td_check_access_token(t, req->token, req->service, &cl, st);
        if (tc == TD_OK && req->user && !streq(req->user, cl.sub))
                tc = td_fail(st, TD_INVALID_TOKEN, "the token belongs to another user");
        tokend_unlock(t);
        if (tc != TD_OK) {
                if (tc == TD_INVALID_REQUEST || tc == TD_INVALID_TOKEN || tc == TD_TOKEN_EXPIRED ||
                    tc == TD_TOKEN_REVOKED) {
                        if (limit)
                                ratelimit_fail(limit, key, now);
                        td_audit(t, c, "verify_failed", req->user, cl.client_id, "service=%s rhost=%.128s tty=%.32s: %s",
                                 req->service ? req->service : "-", req->rhost ? req->rhost : "-",
                                 req->tty ? req->tty : "-", st->message);
                }
                at_claims_done(&cl);
                return tc;
        }
        in.sub = TAKE_PTR(cl.sub);
        in.uid = cl.uid;
        in.exp = cl.exp;
        in.iat = cl.iat;
        in.client_id = TAKE_PTR(cl.client_id);
        in.scope = TAKE_PTR(cl.scope);
        in.jti = TAKE_PTR(cl.jti);
        in.aud = calloc(cl.n_aud + 1, sizeof *in.aud);
        if (!in.aud) {
                at_claims_done(&cl);
                td_introspection_done(&in);
                return td_fail(st, TD_INTERNAL, "out of memory");
        }
        for (size_t i = 0; i < cl.n_aud; i++)
                in.aud[i] = TAKE_PTR(cl.aud[i]);
        at_claims_done(&cl);
        *ret = in;
        return TD_OK;
}
