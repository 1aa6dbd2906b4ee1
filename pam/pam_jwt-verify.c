/* SPDX-License-Identifier: MIT */
/* Build the verify request, read tokend's verdict. tokend decides validity;
 * this file only refuses to read more into an answer than it says, so that a
 * confused or impersonated daemon cannot turn into a success (fail closed). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "pam_jwt-http.h"
#include "pam_jwt-verify.h"
#include "str-escape.h"

static void set_reason(jwt_verify_result *ret, const char *s) {
        size_t i = 0;

        for (; s && s[i] && i < sizeof(ret->reason) - 1; i++) {
                char c = s[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                          c == '_' || c == '.' || c == '-' || c == ' ';
                ret->reason[i] = ok ? c : '?';
        }
        ret->reason[i] = '\0';
}

static bool is_b64url_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '_';
}

bool jwt_token_is_jws_shaped(const char *s, size_t len) {
        unsigned dots = 0;
        size_t seg = 0;

        for (size_t i = 0; i < len; i++) {
                if (s[i] == '.') {
                        if (seg == 0 || ++dots > 2)
                                return false;
                        seg = 0;
                } else if (is_b64url_char(s[i]))
                        seg++;
                else
                        return false;
        }
        return dots == 2 && seg > 0;
}

const char *jwt_verdict_to_string(jwt_verdict v) {
        switch (v) {
        case JWT_VERDICT_VALID:
                return "valid";
        case JWT_VERDICT_REFUSED:
                return "refused";
        case JWT_VERDICT_EXPIRED:
                return "expired";
        case JWT_VERDICT_REVOKED:
                return "revoked";
        case JWT_VERDICT_RATE_LIMITED:
                return "rate-limited";
        case JWT_VERDICT_UNAVAILABLE:
                return "unavailable";
        }
        return "unknown";
}

/* client_id / jti end up in logs and in the session environment */
static int copy_id(const json_t *obj, const char *key, char *dst) {
        const json_t *v = json_object_get(obj, key);

        if (!v)
                return 0;
        if (!json_is_string(v))
                return -EBADMSG;
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 0 || n > JWT_ID_MAX)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++)
                if (s[i] <= ' ' || s[i] > '~')
                        return -EBADMSG;
        memcpy(dst, s, n + 1);
        return 0;
}

static bool string_is(const json_t *v, const char *want) {
        return json_is_string(v) && json_string_length(v) == strlen(want) &&
               memcmp(json_string_value(v), want, json_string_length(v)) == 0;
}

/* service itself, or service@HOST: tokend checked that HOST is one of
 * this machine's names (DESIGN.md "Host-scoped audiences"). */
static bool aud_is(const json_t *v, const char *service) {
        size_t n = strlen(service);
        return string_is(v, service) ||
               (json_is_string(v) && json_string_length(v) > n + 1 &&
                memcmp(json_string_value(v), service, n) == 0 && json_string_value(v)[n] == '@');
}

/* RFC 7519 §4.1.3: aud is a string or an array of strings. Returns 1 when
 * service is in it, 0 when not, -EBADMSG when aud has another shape. */
static int aud_contains(const json_t *aud, const char *service) {
        size_t i;
        json_t *v;

        if (json_is_string(aud))
                return aud_is(aud, service);
        if (!json_is_array(aud))
                return -EBADMSG;
        int found = 0;
        json_array_foreach(aud, i, v) {
                if (!json_is_string(v))
                        return -EBADMSG;
                if (aud_is(v, service))
                        found = 1;
        }
        return found;
}

static void parse_refusal(const char *body, size_t body_len, jwt_verify_result *ret) {
        _cleanup_(json_decrefp) json_t *j = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, NULL);
        const char *code = json_string_value(json_object_get(j, "error"));
        const json_t *msg = json_object_get(j, "message");

        /* For the log line: tokend's words, never raw (a log line is one line). */
        if (json_is_string(msg))
                (void) str_escape_controls(json_string_value(msg), json_string_length(msg), ret->message,
                                           sizeof ret->message);
        ret->verdict = JWT_VERDICT_REFUSED;
        if (!code) {
                set_reason(ret, "refused");
                return;
        }
        set_reason(ret, code);
        if (streq(code, "token_expired"))
                ret->verdict = JWT_VERDICT_EXPIRED;
        else if (streq(code, "token_revoked"))
                ret->verdict = JWT_VERDICT_REVOKED;
}

void jwt_verify_parse_answer(unsigned status, const char *body, size_t body_len, const char *user,
                             const char *service, jwt_verify_result *ret) {
        *ret = (jwt_verify_result) { .verdict = JWT_VERDICT_UNAVAILABLE, .status = status, .uid = -1 };

        switch (status) {
        case 200:
                break;
        case 400:
        case 401:
                parse_refusal(body, body_len, ret);
                return;
        case 429:
                ret->verdict = JWT_VERDICT_RATE_LIMITED;
                set_reason(ret, "too_many_requests");
                return;
        default:
                set_reason(ret, "unexpected HTTP status");
                return;
        }

        _cleanup_(json_decrefp) json_t *j = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(j)) {
                set_reason(ret, "malformed JSON");
                return;
        }

        const json_t *active = json_object_get(j, "active");
        const json_t *sub = json_object_get(j, "sub");
        const json_t *exp = json_object_get(j, "exp");
        const json_t *uid = json_object_get(j, "uid");
        int in_aud = aud_contains(json_object_get(j, "aud"), service);

        if (!json_is_boolean(active) || !json_is_string(sub) || !json_is_integer(exp) ||
            json_integer_value(exp) <= 0 || in_aud < 0) {
                set_reason(ret, "missing or mistyped claim");
                return;
        }
        if (uid && (!json_is_integer(uid) || json_integer_value(uid) < 0 ||
                    json_integer_value(uid) > (json_int_t) UINT32_MAX)) {
                set_reason(ret, "mistyped uid");
                return;
        }
        if (copy_id(j, "client_id", ret->client_id) < 0 || copy_id(j, "jti", ret->jti) < 0) {
                set_reason(ret, "malformed client_id or jti");
                return;
        }

        /* a valid answer is one that says so literally, for exactly this
         * user (byte for byte: no case folding, no NUL tricks) and service */
        ret->verdict = JWT_VERDICT_REFUSED;
        if (!json_is_true(active)) {
                set_reason(ret, "inactive");
                return;
        }
        if (!string_is(sub, user)) {
                set_reason(ret, "subject mismatch");
                return;
        }
        if (!in_aud) {
                set_reason(ret, "audience mismatch");
                return;
        }

        ret->verdict = JWT_VERDICT_VALID;
        ret->exp = (int64_t) json_integer_value(exp);
        ret->uid = uid ? (int64_t) json_integer_value(uid) : -1;
}

/* jansson can only be told to wipe through the process-wide
 * json_set_alloc_funcs(), which a module inside sshd must not change. So the
 * token's JSON string is wiped in place before it is released. */
static void json_string_wipe(json_t *s) {
        if (json_is_string(s))
                explicit_bzero((char *) json_string_value(s), json_string_length(s));
}

static int set_optional(json_t *o, const char *key, const char *value) {
        if (!value || !*value)
                return 0;
        return json_object_set_new(o, key, json_string(value)) < 0 ? -EINVAL : 0;
}

/* Returns 0 and a malloc'ed body (caller wipes and frees *ret, ret_len bytes),
 * -EINVAL when a field is not valid UTF-8, -ENOMEM. */
static int build_body(const jwt_verify_request *req, char **ret, size_t *ret_len) {
        _cleanup_(json_decrefp) json_t *o = json_object();
        _cleanup_(json_decrefp) json_t *tok = json_stringn(req->token, req->token_len);
        int r = -EINVAL;

        if (!o)
                return -ENOMEM;
        if (!tok || json_object_set(o, "token", tok) < 0 ||
            json_object_set_new(o, "user", json_string(req->user)) < 0 ||
            json_object_set_new(o, "service", json_string(req->service)) < 0 ||
            set_optional(o, "rhost", req->rhost) < 0 || set_optional(o, "tty", req->tty) < 0)
                goto out;

        size_t n = json_dumpb(o, NULL, 0, JSON_COMPACT);
        char *buf = n > 0 ? malloc(n) : NULL;
        if (!buf) {
                r = -ENOMEM;
                goto out;
        }
        if (json_dumpb(o, buf, n, JSON_COMPACT) != n) {
                explicit_bzero(buf, n);
                free(buf);
                goto out;
        }
        *ret = buf;
        *ret_len = n;
        r = 0;
out:
        json_string_wipe(tok);
        return r;
}

void jwt_verify(const jwt_verify_request *req, jwt_verify_result *ret) {
        jwt_http_response resp = {};
        char *body = NULL;
        size_t body_len = 0;
        int r;

        r = build_body(req, &body, &body_len);
        if (r < 0) {
                /* not valid UTF-8: cannot be a token, tokend need not be asked */
                *ret = (jwt_verify_result) { .verdict = r == -EINVAL ? JWT_VERDICT_REFUSED : JWT_VERDICT_UNAVAILABLE,
                                           .error = r == -EINVAL ? 0 : r,
                                           .uid = -1 };
                set_reason(ret, r == -EINVAL ? "not UTF-8" : "out of memory");
                return;
        }

        r = jwt_http_post_unix(req->socket_path, JWT_VERIFY_PATH, body, body_len, req->timeout_ms, &resp);
        explicit_bzero(body, body_len);
        free(body);
        if (r < 0) {
                *ret = (jwt_verify_result) { .verdict = JWT_VERDICT_UNAVAILABLE, .error = r, .uid = -1 };
                set_reason(ret, "no answer");
                return;
        }

        jwt_verify_parse_answer(resp.status, resp.body, resp.body_len, req->user, req->service, ret);
        jwt_http_response_done(&resp);
}
