/* SPDX-License-Identifier: MIT */
/* pam_jwt.so: accept a tokend-issued bearer token as a PAM credential.
 *
 * The module never judges a token itself: it asks tokend over its Unix socket
 * (POST /api/auth/verify) whether the token is valid for PAM_USER and this
 * service, and turns the verdict into a PAM code here, in one place. Every
 * failure on our side (daemon down, timeout, garbage) is PAM_AUTHINFO_UNAVAIL,
 * never success and never PAM_IGNORE.
 *
 * State lives only on the PAM handle (pam_set_data), so the module is
 * reentrant and keeps no globals. The account phase re-asks tokend whether the
 * token was revoked since authentication, so the token is kept on the handle
 * until that check (or pam_end), and wiped then; see jwt_state below.
 *
 * Option semantics follow pam_unix: use_first_pass takes PAM_AUTHTOK or fails
 * with PAM_AUTHTOK_RECOVERY_ERR; try_first_pass takes PAM_AUTHTOK when it is
 * set and prompts otherwise (no second prompt after a refusal). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "macro.h" /* erase_and_free*(): libtdbase */
#include "pam_jwt-verify.h"

#define DEFAULT_SOCKET "/run/tokend/tokend.sock"
#define DEFAULT_TIMEOUT_MS 3000
#define MAX_TIMEOUT_MS 60000
/* The default prompt carries a marker, "(tokend): ", so that
 * tokenctl-askpass can tell it from every other module's prompt (OTP,
 * password) and answers only this shape; see tokenctl(1). */
#define DEFAULT_PROMPT_FMT "JWT token for %s (tokend): "
#define MAX_PROMPT 256U
#define MAX_AUDIENCE 64U
#define MAX_ITEM 1024U            /* rhost/tty longer than this are not sent */
#define FAIL_DELAY_USEC 2000000U  /* pam_fail_delay() on every refusal */
#define STATE_KEY "pam_jwt_state"

typedef struct jwt_options {
        const char *socket_path;
        int timeout_ms;
        const char *audience; /* NULL: PAM_SERVICE */
        const char *prompt; /* NULL: DEFAULT_PROMPT_FMT with the user */
        bool use_first_pass;
        bool try_first_pass;
        bool only_tokens;
        bool debug;
        bool silent; /* PAM_SILENT in this call's flags: no message to the user */
} jwt_options;

/* What a successful authentication leaves on the handle. The token is needed
 * once more, by the account phase's revocation re-check; it is wiped right
 * after that check, or by the cleanup at pam_end() if it never comes. */
typedef struct jwt_state {
        char *user;
        char *audience;
        char *token;
        size_t token_len;
        int64_t exp;
        int account_result; /* -1: not checked yet, else the PAM code it gave */
        char device_id[JWT_ID_MAX + 1];
        char jti[JWT_ID_MAX + 1];
} jwt_state;

typedef enum jwt_phase {
        PHASE_AUTH,
        PHASE_ACCOUNT,
} jwt_phase;

/* For log lines: user names and option values come from outside. */
static const char *printable(const char *s) {
        if (!s)
                return "(null)";
        size_t n = strnlen(s, 65);
        if (n > 64)
                return "(too long)";
        for (size_t i = 0; i < n; i++)
                if (s[i] < ' ' || s[i] > '~')
                        return "(unprintable)";
        return s;
}

static bool audience_is_valid(const char *s) {
        size_t n = strnlen(s, MAX_AUDIENCE + 1);
        if (n == 0 || n > MAX_AUDIENCE)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                      s[i] == '-' || s[i] == '_' || s[i] == '.'))
                        return false;
        return true;
}

static int parse_timeout(const char *s, int *ret) {
        char *end = NULL;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || v < 1 || v > MAX_TIMEOUT_MS)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

/* Defaults, then module arguments. A bad value of a known option is a
 * configuration error (PAM_SERVICE_ERR: fail closed); unknown options are
 * logged and ignored. */
static int options_parse(pam_handle_t *pamh, int argc, const char **argv, jwt_options *ret) {
        jwt_options o = {
                .socket_path = DEFAULT_SOCKET,
                .timeout_ms = DEFAULT_TIMEOUT_MS,
        };

        for (int i = 0; i < argc; i++) {
                const char *a = argv[i];
                bool bad = false;

                if (strncmp(a, "socket=", 7) == 0) {
                        o.socket_path = a + 7;
                        bad = o.socket_path[0] != '/' || strlen(o.socket_path) >= 108;
                } else if (strncmp(a, "timeout=", 8) == 0)
                        bad = parse_timeout(a + 8, &o.timeout_ms) < 0;
                else if (strncmp(a, "audience=", 9) == 0) {
                        o.audience = a + 9;
                        bad = !audience_is_valid(o.audience);
                } else if (strncmp(a, "prompt=", 7) == 0) {
                        o.prompt = a + 7;
                        bad = strnlen(o.prompt, MAX_PROMPT + 1) > MAX_PROMPT;
                } else if (streq(a, "use_first_pass"))
                        o.use_first_pass = true;
                else if (streq(a, "try_first_pass"))
                        o.try_first_pass = true;
                else if (streq(a, "only_tokens"))
                        o.only_tokens = true;
                else if (streq(a, "debug"))
                        o.debug = true;
                else
                        pam_syslog(pamh, LOG_WARNING, "unknown option \"%s\", ignoring", printable(a));

                if (bad) {
                        pam_syslog(pamh, LOG_ERR, "invalid option \"%s\"", printable(a));
                        return PAM_SERVICE_ERR;
                }
        }

        *ret = o;
        return PAM_SUCCESS;
}

/* The one place where a verdict becomes a PAM code (STYLE.md rule 3). */
static int verdict_to_pam(jwt_verdict v, jwt_phase phase) {
        switch (v) {
        case JWT_VERDICT_VALID:
                return PAM_SUCCESS;
        case JWT_VERDICT_REFUSED:
        case JWT_VERDICT_REVOKED:
                return phase == PHASE_AUTH ? PAM_AUTH_ERR : PAM_PERM_DENIED;
        case JWT_VERDICT_EXPIRED:
                return phase == PHASE_AUTH ? PAM_AUTH_ERR : PAM_ACCT_EXPIRED;
        case JWT_VERDICT_RATE_LIMITED:
                return phase == PHASE_AUTH ? PAM_MAXTRIES : PAM_AUTHINFO_UNAVAIL;
        case JWT_VERDICT_UNAVAILABLE:
                return PAM_AUTHINFO_UNAVAIL;
        }
        return PAM_AUTHINFO_UNAVAIL;
}

static void state_free(jwt_state *s) {
        if (!s)
                return;
        free(s->user);
        free(s->audience);
        erase_and_free_buf(s->token, s->token_len);
        explicit_bzero(s, sizeof(*s));
        free(s);
}

static void state_cleanup(pam_handle_t *pamh _unused_, void *data, int error_status _unused_) {
        state_free(data);
}

static void state_drop_token(jwt_state *s) {
        erase_and_free_buf(s->token, s->token_len);
        s->token = NULL;
        s->token_len = 0;
}

static jwt_state *state_get(pam_handle_t *pamh) {
        const void *data = NULL;
        if (pam_get_data(pamh, STATE_KEY, &data) != PAM_SUCCESS)
                return NULL;
        return (jwt_state *) data;
}

static int state_store(pam_handle_t *pamh, const char *user, const char *audience, const char *token,
                       size_t token_len, const jwt_verify_result *res) {
        jwt_state *s = calloc(1, sizeof(jwt_state));
        if (!s)
                return PAM_BUF_ERR;
        *s = (jwt_state) {
                .user = strdup(user),
                .audience = strdup(audience),
                .token = malloc(token_len + 1),
                .token_len = token_len,
                .exp = res->exp,
                .account_result = -1,
        };
        memcpy(s->device_id, res->client_id, sizeof(s->device_id));
        memcpy(s->jti, res->jti, sizeof(s->jti));
        if (!s->user || !s->audience || !s->token) {
                state_free(s);
                return PAM_BUF_ERR;
        }
        memcpy(s->token, token, token_len);
        s->token[token_len] = '\0';

        int r = pam_set_data(pamh, STATE_KEY, s, state_cleanup);
        if (r != PAM_SUCCESS)
                state_free(s);
        return r;
}

/* Optional request fields: only non-empty and of sane length. */
static const char *get_short_item(pam_handle_t *pamh, int type) {
        const void *v = NULL;
        if (pam_get_item(pamh, type, &v) != PAM_SUCCESS || !v)
                return NULL;
        size_t n = strnlen(v, MAX_ITEM + 1);
        return n == 0 || n > MAX_ITEM ? NULL : v;
}

static void log_verdict(pam_handle_t *pamh, const jwt_options *o, const char *what, const char *user,
                        const char *audience, const jwt_verify_result *res) {
        switch (res->verdict) {
        case JWT_VERDICT_VALID:
                pam_syslog(pamh, LOG_INFO, "%s: token of device %s accepted for user %s, service %s (jti %s)", what,
                           res->client_id[0] ? res->client_id : "-", printable(user), printable(audience),
                           res->jti[0] ? res->jti : "-");
                break;
        case JWT_VERDICT_UNAVAILABLE:
                if (res->error < 0) {
                        errno = -res->error;
                        pam_syslog(pamh, LOG_ERR, "%s: cannot ask tokend at %s: %m", what, o->socket_path);
                } else
                        pam_syslog(pamh, LOG_ERR, "%s: unusable answer from tokend at %s (HTTP %u): %s", what,
                                   o->socket_path, res->status, res->reason);
                break;
        default:
                /* tokend's message says why ("the token is not for service
                 * sudo …"); verify-parse escaped it. */
                pam_syslog(pamh, LOG_NOTICE, "%s: token %s for user %s, service %s: %s%s%s%s", what,
                           jwt_verdict_to_string(res->verdict), printable(user), printable(audience), res->reason,
                           res->message[0] ? " (" : "", res->message, res->message[0] ? ")" : "");
        }
}

/* One short line for the user (PAM_ERROR_MSG) on a refusal: what happened
 * and what to do, from the verdict alone — never tokend's free text, and
 * nothing the holder of the token could not learn from tokenctl verify. */
static void tell_user(pam_handle_t *pamh, const jwt_options *o, const char *service, const jwt_verify_result *res) {
        if (o->silent)
                return;
        switch (res->verdict) {
        case JWT_VERDICT_REFUSED:
                (void) pam_error(pamh, "Token not accepted for %s (invalid, or not issued for it): "
                                 "tokenctl token --audience %s", printable(service), printable(service));
                break;
        case JWT_VERDICT_EXPIRED:
                (void) pam_error(pamh, "Token expired: get a fresh one with tokenctl token");
                break;
        case JWT_VERDICT_REVOKED:
                (void) pam_error(pamh, "Token revoked with its device: log in again with tokenctl login");
                break;
        case JWT_VERDICT_RATE_LIMITED:
                (void) pam_error(pamh, "Too many failed token checks: try again later");
                break;
        case JWT_VERDICT_UNAVAILABLE:
                (void) pam_error(pamh, "Tokens cannot be checked now (tokend unavailable)");
                break;
        default:
                break;
        }
}

/* Get the answer to check. *ret_token points either into PAM's own
 * PAM_AUTHTOK item or to *ret_owned, a conversation answer the caller wipes. */
static int get_token(pam_handle_t *pamh, const jwt_options *o, const char *user, const char **ret_token,
                     char **ret_owned) {
        int r;

        if (o->use_first_pass || o->try_first_pass) {
                const void *item = NULL;
                r = pam_get_item(pamh, PAM_AUTHTOK, &item);
                if (r != PAM_SUCCESS)
                        return r;
                if (item) {
                        *ret_token = item;
                        *ret_owned = NULL;
                        return PAM_SUCCESS;
                }
                if (o->use_first_pass) {
                        pam_syslog(pamh, LOG_NOTICE, "use_first_pass given but no earlier module set a password");
                        return PAM_AUTHTOK_RECOVERY_ERR;
                }
        }

        char *answer = NULL;
        if (o->prompt)
                r = pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &answer, "%s", o->prompt);
        else
                r = pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &answer, DEFAULT_PROMPT_FMT, printable(user));
        if (r != PAM_SUCCESS) {
                erase_and_freep(&answer);
                pam_syslog(pamh, LOG_ERR, "conversation failed: %s", pam_strerror(pamh, r));
                return r;
        }
        *ret_owned = answer;
        *ret_token = answer ? answer : "";
        return PAM_SUCCESS;
}

static int authenticate(pam_handle_t *pamh, const jwt_options *o) {
        _cleanup_(erase_and_freep) char *owned = NULL;
        const char *user = NULL, *service = NULL, *token = NULL;
        int r;

        /* a repeated authentication on this handle starts from nothing */
        (void) pam_set_data(pamh, STATE_KEY, NULL, NULL);

        r = pam_get_user(pamh, &user, NULL);
        if (r != PAM_SUCCESS) {
                pam_syslog(pamh, LOG_ERR, "cannot get user name: %s", pam_strerror(pamh, r));
                return r;
        }
        if (!user || !*user)
                return PAM_USER_UNKNOWN;

        service = o->audience;
        if (!service) {
                const void *item = NULL;
                r = pam_get_item(pamh, PAM_SERVICE, &item);
                if (r != PAM_SUCCESS || !item || !*(const char *) item)
                        return PAM_SERVICE_ERR;
                service = item;
        }

        r = get_token(pamh, o, user, &token, &owned);
        if (r != PAM_SUCCESS)
                return r;

        size_t len = strnlen(token, JWT_TOKEN_MAX + 1);
        if (len == 0 || len > JWT_TOKEN_MAX) {
                pam_syslog(pamh, LOG_NOTICE, "refusing %s answer for user %s", len == 0 ? "an empty" : "an over-long",
                           printable(user));
                return PAM_AUTH_ERR;
        }

        if (o->only_tokens && !jwt_token_is_jws_shaped(token, len)) {
                /* not ours: hand a typed answer on to the next module
                 * (e.g. pam_unix try_first_pass) and stay out of the verdict */
                if (owned) {
                        r = pam_set_item(pamh, PAM_AUTHTOK, owned);
                        if (r != PAM_SUCCESS)
                                return r;
                }
                if (o->debug)
                        pam_syslog(pamh, LOG_DEBUG, "answer is not shaped like a token, ignoring (only_tokens)");
                return PAM_IGNORE;
        }

        jwt_verify_request req = {
                .socket_path = o->socket_path,
                .timeout_ms = o->timeout_ms,
                .token = token,
                .token_len = len,
                .user = user,
                .service = service,
                .rhost = get_short_item(pamh, PAM_RHOST),
                .tty = get_short_item(pamh, PAM_TTY),
        };
        jwt_verify_result res;

        if (o->debug)
                pam_syslog(pamh, LOG_DEBUG, "asking tokend at %s about a %zu-byte token for user %s, service %s",
                           o->socket_path, len, printable(user), printable(service));
        jwt_verify(&req, &res);
        log_verdict(pamh, o, "auth", user, service, &res);
        tell_user(pamh, o, service, &res);

        r = verdict_to_pam(res.verdict, PHASE_AUTH);
        if (r == PAM_SUCCESS)
                r = state_store(pamh, user, service, token, len, &res);
        return r;
}

_public_ int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv) {
        jwt_options o;
        int r = options_parse(pamh, argc, argv, &o);
        if (r != PAM_SUCCESS)
                return r;
        o.silent = flags & PAM_SILENT;

        r = authenticate(pamh, &o);
        if (r == PAM_AUTH_ERR)
                (void) pam_fail_delay(pamh, FAIL_DELAY_USEC);
        if (o.debug)
                pam_syslog(pamh, LOG_DEBUG, "authenticate: %s", pam_strerror(pamh, r));
        return r;
}

/* No credentials to establish. Always PAM_SUCCESS (like pam_unix), not
 * PAM_IGNORE without our state: sshd calls pam_setcred in its monitor, a
 * process in which pam_authenticate never ran, and a setcred stack made only
 * of ignores fails with PAM_PERM_DENIED, which would fail a token-only login. */
_public_ int pam_sm_setcred(pam_handle_t *pamh _unused_, int flags _unused_, int argc _unused_,
                            const char **argv _unused_) {
        return PAM_SUCCESS;
}

/* TOKEND_DEVICE_ID and TOKEND_TOKEN_EXP into the PAM environment. */
static int export_env(pam_handle_t *pamh, const jwt_state *s) {
        char buf[64 + JWT_ID_MAX];
        int r;

        if (s->device_id[0]) {
                (void) snprintf(buf, sizeof(buf), "TOKEND_DEVICE_ID=%s", s->device_id);
                r = pam_putenv(pamh, buf);
                if (r != PAM_SUCCESS)
                        return r;
        }
        (void) snprintf(buf, sizeof(buf), "TOKEND_TOKEN_EXP=%" PRId64, s->exp);
        return pam_putenv(pamh, buf);
}

static int account(pam_handle_t *pamh, const jwt_options *o, jwt_state *s) {
        const void *item = NULL;
        int r;

        /* the user authenticated is the user whose account is checked */
        if (pam_get_item(pamh, PAM_USER, &item) != PAM_SUCCESS || !item || !streq(item, s->user)) {
                pam_syslog(pamh, LOG_ERR, "PAM_USER changed since authentication (was %s), denying",
                           printable(s->user));
                return PAM_PERM_DENIED;
        }
        if ((int64_t) time(NULL) >= s->exp) {
                pam_syslog(pamh, LOG_NOTICE, "token of user %s expired at %" PRId64, printable(s->user), s->exp);
                return PAM_ACCT_EXPIRED;
        }
        if (s->account_result >= 0)
                return s->account_result;

        /* revoked since authentication? (e.g. a device revoked mid-login) */
        jwt_verify_request req = {
                .socket_path = o->socket_path,
                .timeout_ms = o->timeout_ms,
                .token = s->token,
                .token_len = s->token_len,
                .user = s->user,
                .service = s->audience,
                .rhost = get_short_item(pamh, PAM_RHOST),
                .tty = get_short_item(pamh, PAM_TTY),
        };
        jwt_verify_result res;

        jwt_verify(&req, &res);
        state_drop_token(s);
        if (o->debug || res.verdict != JWT_VERDICT_VALID)
                log_verdict(pamh, o, "account", s->user, s->audience, &res);
        tell_user(pamh, o, s->audience, &res);

        r = verdict_to_pam(res.verdict, PHASE_ACCOUNT);
        if (r == PAM_SUCCESS && res.exp < s->exp)
                s->exp = res.exp;
        /* Also here, not only in open_session: sshd authenticates (and runs
         * this phase) in a child process and carries only that child's PAM
         * environment over to the session it opens elsewhere. */
        if (r == PAM_SUCCESS)
                r = export_env(pamh, s);
        s->account_result = r;
        return r;
}

_public_ int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv) {
        jwt_state *s = state_get(pamh);
        jwt_options o;
        int r;

        if (!s)
                return PAM_IGNORE; /* not authenticated by us */
        r = options_parse(pamh, argc, argv, &o);
        if (r != PAM_SUCCESS)
                return r;
        o.silent = flags & PAM_SILENT;
        r = account(pamh, &o, s);
        if (o.debug)
                pam_syslog(pamh, LOG_DEBUG, "acct_mgmt: %s", pam_strerror(pamh, r));
        return r;
}

_public_ int pam_sm_open_session(pam_handle_t *pamh, int flags _unused_, int argc _unused_,
                                 const char **argv _unused_) {
        jwt_state *s = state_get(pamh);

        if (!s)
                return PAM_IGNORE;
        if (s->account_result > 0)
                return PAM_SESSION_ERR; /* the account phase said no */
        return export_env(pamh, s);
}

_public_ int pam_sm_close_session(pam_handle_t *pamh, int flags _unused_, int argc _unused_,
                                  const char **argv _unused_) {
        return state_get(pamh) ? PAM_SUCCESS : PAM_IGNORE;
}
