/* SPDX-License-Identifier: MIT */
/* The OAuth 2.0 endpoints (DESIGN.md "OAuth 2.0 endpoints"): metadata (RFC
 * 8414 and its OpenID Connect discovery mirror), the token endpoint (RFC
 * 6749 password and refresh_token grants, RFC 8628 device_code),
 * introspection (RFC 7662) and revocation (RFC 7009). Each translates a
 * form-encoded request into the tokend-service call the JSON API makes for
 * the same thing, and td_code values into RFC 6749 §5.2 errors (the one
 * place that mapping lives). */
#include <errno.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "macro.h"
#include "tokend-device-grants.h"
#include "tokend-form.h"
#include "tokend-http-ext.h"
#include "tokend-oauth.h"
#include "tokend.h"

#define OAUTH_MAX_AUDIENCES 16U
#define OAUTH_AUTH_HEADER_MAX 1024U
#define GRANT_DEVICE_CODE "urn:ietf:params:oauth:grant-type:device_code"
#define TOKEN_PATH "/oauth2/token"

/* ---- errors ------------------------------------------------------------ */

int oauth_error(http_reply *r, unsigned status, const char *code, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(r->log_message, sizeof r->log_message, fmt, ap);
        va_end(ap);
        r->log_code = code;
        if (status == 401)
                (void) reply_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"tokend\"");
        return reply_json(r, status, json_pack("{s:s,s:s}", "error", code, "error_description", r->log_message),
                          false);
}

int oauth_error_of(http_reply *r, const td_status *st, bool scope_asked) {
        char ra[24];
        if (st->dpop_invalid) /* RFC 9449 §5 */
                return oauth_error(r, 400, "invalid_dpop_proof", "%s", st->message);
        switch (st->code) {
        case TD_INVALID_REQUEST:
                return oauth_error(r, 400, "invalid_request", "%s", st->message);
        case TD_INVALID_CREDENTIALS:
        case TD_INVALID_TOKEN:
        case TD_TOKEN_EXPIRED:
        case TD_TOKEN_REVOKED:
        case TD_NOT_FOUND:
                return oauth_error(r, 400, "invalid_grant", "%s", st->message);
        case TD_FORBIDDEN:
                /* An audience refused (step-up, AllowedAudiences=) when the
                 * client asked for some; else the grant is refused for this
                 * user or device (e.g. MaxDevicesPerUser=). */
                return oauth_error(r, 400, scope_asked ? "invalid_scope" : "unauthorized_client", "%s",
                                   st->message);
        case TD_TOO_MANY_REQUESTS:
                snprintf(ra, sizeof ra, "%lld", (long long) (st->retry_after > 0 ? st->retry_after : 1));
                (void) reply_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
                return oauth_error(r, 429, "too_many_requests", "%s", st->message);
        case TD_UNAVAILABLE:
                (void) reply_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
                return oauth_error(r, 503, "temporarily_unavailable", "%s", st->message);
        default:
                return oauth_error(r, 500, "server_error", "%s", st->message);
        }
}

/* ---- the request: form body, client identification --------------------- */

int oauth_read_form(http_ext_req *rq, http_reply *r, form *f) {
        const char *dup = NULL;
        if (!http_content_type_is(rq->conn, "application/x-www-form-urlencoded"))
                return oauth_error(r, 400, "invalid_request",
                                   "Content-Type must be application/x-www-form-urlencoded") < 0 ? -ENOMEM : 1;
        if (rq->len > OAUTH_FORM_MAX)
                return oauth_error(r, 413, "invalid_request", "the form is larger than %u bytes", OAUTH_FORM_MAX) < 0
                               ? -ENOMEM : 1;
        int k = form_parse(rq->body, rq->len, f, &dup);
        if (k == -ENOMEM)
                return -ENOMEM;
        if (k == -EEXIST) {
                k = oauth_error(r, 400, "invalid_request", "parameter %.64s is given more than once", dup);
                form_done(f);
                return k < 0 ? -ENOMEM : 1;
        }
        if (k < 0)
                return oauth_error(r, 400, "invalid_request", "the form is malformed (a NUL byte, or more than "
                                   "%u parameters)", FORM_MAX_PARAMS) < 0 ? -ENOMEM : 1;
        return 0;
}

int oauth_client_id(http_ext_req *rq, const form *f, http_reply *r, char buf[static OAUTH_CLIENT_ID_MAX + 1],
                    const char **ret) {
        const char *a = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        const char *body_id = form_get(f, "client_id");
        uint8_t raw[OAUTH_AUTH_HEADER_MAX];
        size_t n = 0;

        if (http_value_count(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION) > 1)
                return oauth_error(r, 400, "invalid_request", "Authorization is given more than once") < 0 ? -ENOMEM
                                                                                                            : 1;
        if (!a) {
                if (body_id && strlen(body_id) > OAUTH_CLIENT_ID_MAX)
                        return oauth_error(r, 401, "invalid_client", "unknown client_id") < 0 ? -ENOMEM : 1;
                *ret = body_id ? strcpy(buf, body_id) : NULL;
                return 0;
        }
        if (strncasecmp(a, "Basic ", 6) != 0)
                return oauth_error(r, 401, "invalid_client", "client authentication must be HTTP Basic with an "
                                   "empty password, or client_id in the form") < 0 ? -ENOMEM : 1;
        a += 6;
        while (*a == ' ')
                a++;
        if (strlen(a) >= sizeof raw ||
            sodium_base642bin(raw, sizeof raw - 1, a, strlen(a), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
                return oauth_error(r, 401, "invalid_client", "the Authorization: Basic value is not base64") < 0
                               ? -ENOMEM : 1;
        raw[n] = 0;
        char *colon = memchr(raw, ':', n);
        bool secret = colon && (size_t) (colon - (char *) raw) + 1 < n;
        if (colon)
                *colon = 0;
        size_t idl = strlen((char *) raw);
        if (!colon || idl != (size_t) (colon - (char *) raw) || MHD_http_unescape((char *) raw) != strlen((char *) raw))
                secret = true; /* not "id:secret": refused like a secret */
        sodium_memzero(raw + idl, sizeof raw - idl); /* the secret part, if any */
        if (secret)
                return oauth_error(r, 401, "invalid_client", "tokend has no client secrets: send client_id with an "
                                   "empty password (public client)") < 0 ? -ENOMEM : 1;
        if (body_id)
                return oauth_error(r, 400, "invalid_request", "client_id both in Authorization and in the form") < 0
                               ? -ENOMEM : 1;
        if (strlen((char *) raw) > OAUTH_CLIENT_ID_MAX || !raw[0])
                return oauth_error(r, 401, "invalid_client", "unknown client_id") < 0 ? -ENOMEM : 1;
        *ret = strcpy(buf, (char *) raw);
        return 0;
}

/* ---- the token endpoint ------------------------------------------------- */

typedef struct token_job {
        form f;
        enum { GRANT_PASSWORD, GRANT_REFRESH, GRANT_DEVICE } grant;
        char client_id[OAUTH_CLIENT_ID_MAX + 1];
        bool has_client_id;
        char *proof;      /* the form's proof or the DPoP header (a copy) */
        bool dpop;        /* proof is the DPoP header's RFC 9449 proof */
        char *scope_copy; /* split in place into aud[] */
        const char *aud[OAUTH_MAX_AUDIENCES + 1];
        bool scope_asked;
} token_job;

static void token_job_free(void *p) {
        token_job *j = p;
        if (!j)
                return;
        form_done(&j->f);
        erase_and_free(j->proof);
        free(j->scope_copy);
        free(j);
}

/* RFC 6749 §3.3: scope is space-separated; here its tokens are audiences. */
static int scope_split(token_job *j, const char *scope) {
        size_t n = 0;
        j->scope_copy = strdup(scope);
        if (!j->scope_copy)
                return -ENOMEM;
        for (char *save = NULL, *w = strtok_r(j->scope_copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
                if (n == OAUTH_MAX_AUDIENCES)
                        return -E2BIG;
                j->aud[n++] = w;
        }
        j->aud[n] = NULL;
        j->scope_asked = n > 0;
        return 0;
}

/* dpop: the refresh came with a DPoP proof, so the (cnf.jkt-bound) access
 * token is announced as token_type DPoP (RFC 9449 §5). */
static int token_answer(http_reply *r, td_code c, const td_status *st, td_tokens *tok, bool scope_asked,
                        bool dpop) {
        if (c != TD_OK)
                return oauth_error_of(r, st, scope_asked);
        json_t *j = td_tokens_to_json(tok);
        td_tokens_done(tok);
        if (!j || (dpop && json_object_set_new(j, "token_type", json_string("DPoP")) < 0)) {
                json_decref(j);
                return -ENOMEM;
        }
        (void) reply_header(r, "Pragma", "no-cache");
        return reply_json(r, 200, j, true);
}

int oauth_token_answer(http_reply *r, td_code c, const td_status *st, td_tokens *tok, bool scope_asked) {
        return token_answer(r, c, st, tok, scope_asked, false);
}

/* RFC 8628 §3.4-3.5: the device polls. */
static void device_code_poll(http_ext_req *rq, http_reply *r, const char *code, const char *client_id) {
        char *answer = NULL;
        if (!code) {
                (void) oauth_error(r, 400, "invalid_request", "the device_code grant needs device_code");
                return;
        }
        switch (device_grants_poll(rq->t->device_grants, code, client_id, (int64_t) time(NULL), &answer)) {
        case 0:
                (void) reply_header(r, "Pragma", "no-cache");
                reply_body(r, 200, "application/json", answer);
                r->secret = true;
                return;
        case -EINPROGRESS:
                (void) oauth_error(r, 400, "authorization_pending", "the user has not approved this device yet");
                return;
        case -EBUSY:
                (void) oauth_error(r, 400, "slow_down", "polling too fast: the interval is now %d s longer",
                                   DEVICE_INTERVAL);
                return;
        case -EACCES:
                (void) oauth_error(r, 400, "access_denied", "the user denied this device");
                return;
        case -ETIME:
                (void) oauth_error(r, 400, "expired_token", "the device code has expired; start over");
                return;
        case -EPERM:
                (void) oauth_error(r, 400, "invalid_grant", "the device code was issued to another client_id");
                return;
        default:
                (void) oauth_error(r, 400, "invalid_grant", "unknown device code");
                return;
        }
}

static void token_job_run(http_ext_req *rq, http_reply *r) {
        token_job *j = rq->job_data;
        td_tokens tok = { 0 };
        td_status st = { 0 };
        td_code c;

        switch (j->grant) {
        case GRANT_PASSWORD: {
                td_login_req lr = { .username = form_get(&j->f, "username"),
                                    .password = form_get(&j->f, "password"),
                                    .device_name = form_get(&j->f, "device_name"),
                                    .device_key = form_get(&j->f, "device_key"),
                                    .audience = j->scope_asked ? j->aud : NULL };
                if (!lr.username || !lr.password) {
                        (void) oauth_error(r, 400, "invalid_request", "the password grant needs username and "
                                           "password");
                        return;
                }
                c = td_login(rq->t, &rq->caller, &lr, &tok, &st);
                break;
        }
        case GRANT_REFRESH: {
                char htu[OAUTH_URL_MAX + sizeof TOKEN_PATH];
                oauth_base_url(rq->t, htu);
                strcat(htu, TOKEN_PATH); /* the metadata's token_endpoint */
                td_refresh_req fr = { .refresh_token = form_get(&j->f, "refresh_token"),
                                      .device_id = j->has_client_id ? j->client_id : NULL,
                                      .proof = j->proof, .dpop = j->dpop, .htu = j->dpop ? htu : TOKEN_PATH,
                                      .audience = j->scope_asked ? j->aud : NULL };
                if (!fr.refresh_token || !fr.device_id) {
                        (void) oauth_error(r, 400, "invalid_request", "the refresh_token grant needs refresh_token "
                                           "and client_id (the device id)");
                        return;
                }
                c = td_refresh(rq->t, &rq->caller, &fr, &tok, &st);
                break;
        }
        default:
                device_code_poll(rq, r, form_get(&j->f, "device_code"), j->has_client_id ? j->client_id : NULL);
                return;
        }
        r->not_before_usec = st.not_before_usec;
        (void) token_answer(r, c, &st, &tok, j->scope_asked, j->dpop);
}

int oauth_handle_token(http_ext_req *rq, http_reply *r) {
        token_job *j = calloc(1, sizeof *j);
        const char *cid = NULL;
        int k;

        if (!j)
                return -ENOMEM;
        if ((k = oauth_read_form(rq, r, &j->f)) != 0) {
                token_job_free(j);
                return k < 0 ? k : HTTP_EXT_DONE;
        }
        if ((k = oauth_client_id(rq, &j->f, r, j->client_id, &cid)) != 0)
                goto done;
        j->has_client_id = cid != NULL;
        const char *grant = form_get(&j->f, "grant_type");
        if (!grant) {
                k = oauth_error(r, 400, "invalid_request", "grant_type is required");
                goto done;
        }
        if (streq(grant, "password"))
                j->grant = GRANT_PASSWORD;
        else if (streq(grant, "refresh_token"))
                j->grant = GRANT_REFRESH;
        else if (streq(grant, GRANT_DEVICE_CODE))
                j->grant = GRANT_DEVICE;
        else {
                k = oauth_error(r, 400, "unsupported_grant_type", "grant_type %.64s is not supported (password, "
                                "refresh_token, " GRANT_DEVICE_CODE ")", grant);
                goto done;
        }
        const char *scope = form_get(&j->f, "scope");
        if (scope && (k = scope_split(j, scope)) < 0) {
                k = k == -ENOMEM ? k : oauth_error(r, 400, "invalid_scope", "at most %u audiences in scope",
                                                   OAUTH_MAX_AUDIENCES);
                goto done;
        }
        /* The device key's proof: the form's "proof" (tokend-proof.h), or an
         * RFC 9449 DPoP proof in the DPoP header (tokend-dpop.h), which only
         * the refresh grant checks: binding is by device_key at login, so a
         * DPoP header elsewhere is refused rather than ignored. */
        const char *proof = form_get(&j->f, "proof");
        const char *dpop = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "DPoP");
        if (proof && dpop) {
                k = oauth_error(r, 400, "invalid_request", "one proof only: the proof parameter or a DPoP header");
                goto done;
        }
        if (dpop && (http_value_count(rq->conn, MHD_HEADER_KIND, "DPoP") > 1 || j->grant != GRANT_REFRESH)) {
                k = oauth_error(r, 400, "invalid_dpop_proof", j->grant != GRANT_REFRESH
                                ? "a DPoP proof is checked at the refresh_token grant only (a device key is bound "
                                  "by device_key at login)" : "more than one DPoP header");
                goto done;
        }
        j->dpop = dpop != NULL;
        if ((proof || dpop) && !(j->proof = strdup(proof ? proof : dpop))) {
                k = -ENOMEM;
                goto done;
        }
        rq->job = token_job_run;
        rq->job_free = token_job_free;
        rq->job_data = TAKE_PTR(j);
        rq->pool = rq->job_data && ((token_job *) rq->job_data)->grant == GRANT_PASSWORD ? HTTP_EXT_LOGIN
                                                                                          : HTTP_EXT_STORE;
        return HTTP_EXT_RUN;
done:
        token_job_free(j);
        return k < 0 ? -ENOMEM : HTTP_EXT_DONE;
}

/* ---- introspection and revocation --------------------------------------- */

int oauth_handle_introspect(http_ext_req *rq, http_reply *r) {
        _cleanup_(form_done) form f = { 0 };
        td_status st = { 0 };
        json_t *j = NULL;
        int k = oauth_read_form(rq, r, &f);
        if (k != 0)
                return k < 0 ? k : HTTP_EXT_DONE;
        td_code c = td_introspect(rq->t, &rq->caller, form_get(&f, "token"), &j, &st);
        if (c == TD_FORBIDDEN)
                k = oauth_error(r, 401, "invalid_client", "%s", st.message);
        else if (c != TD_OK)
                k = oauth_error_of(r, &st, false);
        else
                k = reply_json(r, 200, j, false);
        return k < 0 ? -ENOMEM : HTTP_EXT_DONE;
}

typedef struct revoke_job {
        form f;
        char client_id[OAUTH_CLIENT_ID_MAX + 1];
        bool has_client_id;
} revoke_job;

static void revoke_job_free(void *p) {
        revoke_job *j = p;
        if (j)
                form_done(&j->f);
        free(j);
}

static void revoke_job_run(http_ext_req *rq, http_reply *r) {
        revoke_job *j = rq->job_data;
        td_status st = { 0 };
        td_code c = td_revoke_token(rq->t, &rq->caller, form_get(&j->f, "token"),
                                    j->has_client_id ? j->client_id : NULL, &st);
        if (c == TD_OK)
                reply_body(r, 200, NULL, NULL);
        else
                (void) oauth_error_of(r, &st, false);
}

int oauth_handle_revoke(http_ext_req *rq, http_reply *r) {
        revoke_job *j = calloc(1, sizeof *j);
        const char *cid = NULL;
        int k;
        if (!j)
                return -ENOMEM;
        if ((k = oauth_read_form(rq, r, &j->f)) == 0 && (k = oauth_client_id(rq, &j->f, r, j->client_id, &cid)) == 0) {
                j->has_client_id = cid != NULL;
                rq->job = revoke_job_run;
                rq->job_free = revoke_job_free;
                rq->job_data = j;
                rq->pool = HTTP_EXT_STORE;
                return HTTP_EXT_RUN;
        }
        revoke_job_free(j);
        return k < 0 ? -ENOMEM : HTTP_EXT_DONE;
}

/* ---- metadata ------------------------------------------------------------ */

void oauth_base_url(tokend *t, char buf[static OAUTH_URL_MAX]) {
        tokend_rdlock(t);
        const char *iss = t->config->issuer;
        if (strncmp(iss, "https://", 8) == 0 || strncmp(iss, "http://", 7) == 0)
                snprintf(buf, OAUTH_URL_MAX, "%s", iss);
        else
                snprintf(buf, OAUTH_URL_MAX, "http://localhost");
        tokend_unlock(t);
        size_t l = strlen(buf);
        while (l > 0 && buf[l - 1] == '/')
                buf[--l] = 0;
}

/* The signing algorithms of the keys in the JWKS, each once. */
static json_t *jwks_algs(tokend *t) {
        td_status st = { 0 };
        json_t *jwks = NULL, *algs = json_array(), *k;
        size_t i;
        if (!algs || td_jwks(t, &jwks, &st) != TD_OK) {
                json_decref(algs);
                return NULL;
        }
        json_array_foreach(json_object_get(jwks, "keys"), i, k) {
                json_t *a = json_object_get(k, "alg"), *e;
                size_t m;
                bool seen = false;
                if (!json_is_string(a))
                        continue;
                json_array_foreach(algs, m, e)
                        seen = seen || json_equal(a, e);
                if (!seen)
                        (void) json_array_append(algs, a);
        }
        json_decref(jwks);
        return algs;
}

static int metadata(http_ext_req *rq, http_reply *r, bool oidc) {
        char base[OAUTH_URL_MAX], u[6][OAUTH_URL_MAX + 48];
        /* Only OpenID discovery lists the keys' algorithms: the RFC 8414
         * document reads no store (nor exports a key) per request. */
        json_t *algs = oidc ? jwks_algs(rq->t) : NULL;
        char *issuer;

        if (oidc && !algs)
                return oauth_error(r, 500, "server_error", "cannot list the signing algorithms") < 0 ? -ENOMEM
                                                                                                      : HTTP_EXT_DONE;
        oauth_base_url(rq->t, base);
        tokend_rdlock(rq->t);
        issuer = strdup(rq->t->config->issuer);
        tokend_unlock(rq->t);
        static const char *const paths[6] = { TOKEN_PATH, "/.well-known/jwks.json", "/oauth2/introspect",
                                              "/oauth2/revoke", "/oauth2/device_authorization", "/api/docs" };
        for (size_t i = 0; i < 6; i++)
                snprintf(u[i], sizeof u[i], "%s%s", base, paths[i]);
        json_t *j = issuer ? json_pack(
                "{s:s,s:s,s:s,s:s,s:s,s:s,s:[sss],s:[s],s:[s],s:[s],s:[],s:[s],s:s}",
                "issuer", issuer, "token_endpoint", u[0], "jwks_uri", u[1], "introspection_endpoint", u[2],
                "revocation_endpoint", u[3], "device_authorization_endpoint", u[4],
                "grant_types_supported", "password", "refresh_token", GRANT_DEVICE_CODE,
                "token_endpoint_auth_methods_supported", "none",
                "revocation_endpoint_auth_methods_supported", "none",
                "introspection_endpoint_auth_methods_supported", "none",
                "response_types_supported",
                "dpop_signing_alg_values_supported", "EdDSA",
                "service_documentation", u[5]) : NULL;
        free(issuer);
        if (j && oidc) {
                /* What OpenID Connect discovery clients need to verify tokens. */
                (void) json_object_set(j, "id_token_signing_alg_values_supported", algs);
                (void) json_object_set_new(j, "subject_types_supported", json_pack("[s]", "public"));
                (void) json_object_set_new(j, "claims_supported",
                                           json_pack("[sssssssss]", "iss", "sub", "uid", "aud", "exp", "iat", "nbf",
                                                     "jti", "client_id"));
        }
        json_decref(algs);
        return reply_json(r, 200, j, false) < 0 ? -ENOMEM : HTTP_EXT_DONE;
}

int oauth_handle_metadata(http_ext_req *rq, http_reply *r) {
        return metadata(rq, r, false);
}

int oauth_handle_openid_configuration(http_ext_req *rq, http_reply *r) {
        return metadata(rq, r, true);
}
