/* SPDX-License-Identifier: MIT */
/* The RFC 8628 device grant's endpoints (tokend-device.h): the device
 * authorization request, the approval page /device (plain HTML forms, no
 * JavaScript, CSRF token bound to a SameSite=Strict cookie, a CSP that
 * forbids framing and every script), and the JSON approval of an already
 * logged-in device (tokenctl device approve). The approver's login is
 * td_login, the same PAM login and limits as /api/auth/login; the table
 * of pending authorizations is tokend-device-grants.c. */
#include <errno.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "json-util.h"
#include "macro.h"
#include "tokend-device-grants.h"
#include "tokend-device.h"
#include "tokend-form.h"
#include "tokend-oauth.h"
#include "tokend.h"

#define CSRF_COOKIE "tokend_device_csrf"
#define PAGE_CSP "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
#define MAX_AUDIENCES 16U

static td_code st_fail(td_status *st, td_code c, const char *fmt, ...) _printf_(3, 4);
static td_code st_fail(td_status *st, td_code c, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(st->message, sizeof st->message, fmt, ap);
        va_end(ap);
        st->code = c;
        return c;
}

static int64_t now_s(void) {
        return (int64_t) time(NULL);
}

/* The key a caller's device-grant limits count under: its uid, or its
 * client network over TCP (td_caller_key). */
static void caller_key(const td_caller *c, char buf[static DEVICE_CALLER_KEY_MAX + 1]) {
        char k[TD_REMOTE_MAX + 8];
        td_caller_key(c, k);
        snprintf(buf, DEVICE_CALLER_KEY_MAX + 1, "%s", k);
}

/* Who asked, for the approval page: "uid=N pid=P" or "client ADDRESS". */
static void caller_name(const td_caller *c, char buf[static DEVICE_REQUESTER_MAX + 1]) {
        char n[TD_CALLER_NAME_MAX];
        snprintf(buf, DEVICE_REQUESTER_MAX + 1, "%s", td_caller_name(c, n));
}

/* The user code as people read it: BCDF-GHJK. */
static void user_code_display(const char *code, char out[static DEVICE_USER_CODE_LEN + 2]) {
        snprintf(out, DEVICE_USER_CODE_LEN + 2, "%.4s-%.4s", code, code + 4);
}

/* ---- POST /oauth2/device_authorization (RFC 8628 §3.1-3.2) -------------- */

/* A printable value that fits, or NULL; "" for NULL. */
static bool copy_text(char *dst, size_t size, const char *v) {
        size_t l = v ? strlen(v) : 0;
        if (l >= size)
                return false;
        for (size_t i = 0; i < l; i++)
                if ((unsigned char) v[i] < 0x20 || v[i] == 0x7f)
                        return false;
        memcpy(dst, v ? v : "", l + 1);
        return true;
}

int device_handle_authorization(http_ext_req *rq, http_reply *r) {
        _cleanup_(form_done) form f = { 0 };
        char idbuf[OAUTH_CLIENT_ID_MAX + 1], key[DEVICE_CALLER_KEY_MAX + 1], code[DEVICE_CODE_LEN + 1],
                ucode[DEVICE_USER_CODE_LEN + 1], shown[DEVICE_USER_CODE_LEN + 2], base[OAUTH_URL_MAX],
                uri[OAUTH_URL_MAX + 16], complete[OAUTH_URL_MAX + 40];
        const char *cid = NULL;
        device_request req = { 0 };
        int k;

        if ((k = oauth_read_form(rq, r, &f)) != 0 || (k = oauth_client_id(rq, &f, r, idbuf, &cid)) != 0)
                return k < 0 ? k : HTTP_EXT_DONE;
        if (!cid)
                k = oauth_error(r, 400, "invalid_request", "client_id is required (any name for the client, up to "
                                "%u characters)", DEVICE_CLIENT_ID_MAX);
        else if (!copy_text(req.client_id, sizeof req.client_id, cid) ||
                 !copy_text(req.device_name, sizeof req.device_name, form_get(&f, "device_name")) ||
                 !copy_text(req.device_key, sizeof req.device_key, form_get(&f, "device_key")))
                k = oauth_error(r, 400, "invalid_request", "client_id, device_name and device_key must be printable "
                                "and at most %u, %u and %u bytes", DEVICE_CLIENT_ID_MAX, DEVICE_NAME_MAX,
                                DEVICE_KEY_MAX);
        else if (!copy_text(req.scope, sizeof req.scope, form_get(&f, "scope")))
                k = oauth_error(r, 400, "invalid_scope", "scope must be printable and at most %u bytes",
                                DEVICE_SCOPE_MAX);
        else
                k = 1;
        if (k != 1)
                return k < 0 ? -ENOMEM : HTTP_EXT_DONE;
        caller_key(&rq->caller, key);
        caller_name(&rq->caller, req.requester);
        int e = device_grants_start(rq->t->device_grants, key, &req, now_s(), code, ucode);
        if (e == -EDQUOT || e == -EUSERS) {
                (void) reply_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "60");
                k = e == -EDQUOT ? oauth_error(r, 429, "slow_down", "this caller already has %u pending device "
                                               "authorizations", DEVICE_PENDING_PER_CALLER)
                                 : oauth_error(r, 503, "temporarily_unavailable", "too many pending device "
                                               "authorizations, try again later");
                return k < 0 ? -ENOMEM : HTTP_EXT_DONE;
        }
        if (e < 0)
                return oauth_error(r, 500, "server_error", "no random numbers") < 0 ? -ENOMEM : HTTP_EXT_DONE;
        oauth_base_url(rq->t, base);
        user_code_display(ucode, shown);
        snprintf(uri, sizeof uri, "%s/device", base);
        snprintf(complete, sizeof complete, "%s/device?user_code=%s", base, ucode);
        json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i}", "device_code", code, "user_code", shown,
                              "verification_uri", uri, "verification_uri_complete", complete, "expires_in",
                              DEVICE_EXPIRES_IN, "interval", DEVICE_INTERVAL);
        sodium_memzero(code, sizeof code);
        return reply_json(r, 200, j, true) < 0 ? -ENOMEM : HTTP_EXT_DONE;
}

/* ---- the page --------------------------------------------------------------- */

static void html(FILE *f, const char *s) {
        for (; s && *s; s++)
                switch (*s) {
                case '&': fputs("&amp;", f); break;
                case '<': fputs("&lt;", f); break;
                case '>': fputs("&gt;", f); break;
                case '"': fputs("&quot;", f); break;
                case '\'': fputs("&#39;", f); break;
                default: fputc(*s, f);
                }
}

typedef struct page {
        FILE *f;
        char *buf;
        size_t size;
} page;

static int page_open(page *p, const char *title) {
        *p = (page) { 0 };
        p->f = open_memstream(&p->buf, &p->size);
        if (!p->f)
                return -ENOMEM;
        fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>", p->f);
        html(p->f, title);
        fputs(" \xe2\x80\x93 tokend</title>\n</head>\n<body>\n<h1>", p->f);
        html(p->f, title);
        fputs("</h1>\n", p->f);
        return 0;
}

/* Finish the page into r with status and the headers every page carries. */
static int page_send(page *p, http_reply *r, unsigned status) {
        fputs("</body>\n</html>\n", p->f);
        if (fclose(p->f) != 0) {
                free(p->buf);
                return -ENOMEM;
        }
        reply_body(r, status, "text/html; charset=utf-8", p->buf);
        (void) reply_header(r, "Content-Security-Policy", PAGE_CSP);
        (void) reply_header(r, "X-Frame-Options", "DENY");
        (void) reply_header(r, "X-Content-Type-Options", "nosniff");
        (void) reply_header(r, "Referrer-Policy", "no-referrer");
        return HTTP_EXT_DONE;
}

static void page_message(page *p, const char *cls, const char *msg) {
        if (!msg || !*msg)
                return;
        fprintf(p->f, "<p class=\"%s\" role=\"%s\"><strong>", cls, streq(cls, "error") ? "alert" : "status");
        html(p->f, msg);
        fputs("</strong></p>\n", p->f);
}

/* Step 1: the code as shown on the device (GET form: it only looks up). */
static int page_enter_code(http_reply *r, unsigned status, const char *error) {
        page p;
        if (page_open(&p, "Approve a device") < 0)
                return -ENOMEM;
        page_message(&p, "error", error);
        fputs("<form method=\"get\" action=\"/device\">\n"
              "<p><label for=\"user_code\">Code shown on the device</label><br>\n"
              "<input id=\"user_code\" name=\"user_code\" autocomplete=\"off\" autocapitalize=\"characters\" "
              "spellcheck=\"false\" maxlength=\"12\" placeholder=\"BCDF-GHJK\" required autofocus></p>\n"
              "<p><button type=\"submit\">Continue</button></p>\n</form>\n", p.f);
        return page_send(&p, r, status);
}

/* Step 2: what the device asks for, the login, approve or deny. */
static int page_approve(http_reply *r, unsigned status, const device_request *q, const char *code, const char *csrf,
                        const char *error) {
        char shown[DEVICE_USER_CODE_LEN + 2];
        page p;
        if (page_open(&p, "Approve a device") < 0)
                return -ENOMEM;
        page_message(&p, "error", error);
        user_code_display(code, shown);
        fputs("<p>A device asks to be signed in as you. Approve only if you started this on a device of "
              "yours and it shows the same code.</p>\n<dl>\n<dt>Code</dt><dd id=\"code\">", p.f);
        html(p.f, shown);
        fputs("</dd>\n<dt>Client</dt><dd id=\"client\">", p.f);
        html(p.f, q->client_id);
        fputs("</dd>\n<dt>Device name</dt><dd id=\"device_name\">", p.f);
        html(p.f, *q->device_name ? q->device_name : "(none given)");
        fputs("</dd>\n<dt>Audiences (services the tokens are good for)</dt><dd id=\"audiences\">", p.f);
        html(p.f, *q->scope ? q->scope : "the default ([Token] DefaultAudience)");
        fputs("</dd>\n<dt>Key-bound</dt><dd>", p.f);
        fputs(*q->device_key ? "yes: refreshing needs the device's key" : "no", p.f);
        fputs("</dd>\n<dt>Requested by</dt><dd>", p.f);
        html(p.f, q->requester);
        fprintf(p.f, "</dd>\n<dt>Expires in</dt><dd>%lld s</dd>\n</dl>\n",
                (long long) (q->expires > now_s() ? q->expires - now_s() : 0));
        fputs("<form method=\"post\" action=\"/device\">\n<input type=\"hidden\" name=\"user_code\" value=\"", p.f);
        html(p.f, code);
        fputs("\">\n<input type=\"hidden\" name=\"csrf\" value=\"", p.f);
        html(p.f, csrf);
        fputs("\">\n<p><label for=\"username\">User name</label><br>\n"
              "<input id=\"username\" name=\"username\" autocomplete=\"username\" autocapitalize=\"none\" "
              "spellcheck=\"false\" maxlength=\"32\"></p>\n"
              "<p><label for=\"password\">Password</label><br>\n"
              "<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" "
              "maxlength=\"1024\"></p>\n"
              "<p><button id=\"approve\" type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\n"
              "<button id=\"deny\" type=\"submit\" name=\"action\" value=\"deny\">Deny</button></p>\n</form>\n",
              p.f);
        return page_send(&p, r, status);
}

static int page_done(http_reply *r, unsigned status, const char *title, const char *msg) {
        page p;
        if (page_open(&p, title) < 0)
                return -ENOMEM;
        page_message(&p, "status", msg);
        return page_send(&p, r, status);
}

/* The CSRF cookie of the request if it is one of ours in shape, else a new
 * one (*ret_new) to set. */
static int csrf_cookie(http_ext_req *rq, char buf[static 44], bool *ret_new) {
        const char *c = MHD_lookup_connection_value(rq->conn, MHD_COOKIE_KIND, CSRF_COOKIE);
        *ret_new = false;
        if (c && strlen(c) == 43 && strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 43) {
                memcpy(buf, c, 44);
                return 0;
        }
        *ret_new = true;
        uint8_t raw[32];
        randombytes_buf(raw, sizeof raw);
        sodium_bin2base64(buf, 44, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        return 0;
}

static void set_csrf_cookie(http_ext_req *rq, http_reply *r, const char *value) {
        char base[OAUTH_URL_MAX], v[160];
        oauth_base_url(rq->t, base);
        snprintf(v, sizeof v, CSRF_COOKIE "=%s; Path=/device; HttpOnly; SameSite=Strict%s", value,
                 strncmp(base, "https://", 8) == 0 ? "; Secure" : "");
        (void) reply_header(r, "Set-Cookie", v);
}

/* Look the code up for this caller; on failure the page is filled (1). */
static int find_code(http_ext_req *rq, http_reply *r, const char *code, device_request *q, uint64_t *handle) {
        char key[DEVICE_CALLER_KEY_MAX + 1], ra[24];
        int64_t retry = 0;
        caller_key(&rq->caller, key);
        int e = device_grants_find(rq->t->device_grants, key, code, now_s(), q, handle, &retry);
        if (e == 0)
                return 0;
        r->log_code = e == -EAGAIN ? "too_many_requests" : "not_found";
        snprintf(r->log_message, sizeof r->log_message, "device approval page: %s",
                 e == -EAGAIN ? "too many wrong codes" : "unknown or expired code");
        if (e == -EAGAIN) {
                snprintf(ra, sizeof ra, "%lld", (long long) retry);
                (void) reply_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
                return page_enter_code(r, 429, "Too many wrong codes from here; try again later.") < 0 ? -ENOMEM
                                                                                                       : 1;
        }
        return page_enter_code(r, 404, "That code is unknown or has expired. Check the code on the device.") < 0
                       ? -ENOMEM : 1;
}

typedef struct approve_job {
        form f;
        uint64_t handle;
        device_request q;
        char code[DEVICE_USER_CODE_LEN + 1];
        char csrf[DEVICE_CSRF_LEN + 1];
} approve_job;

static void approve_job_free(void *p) {
        approve_job *j = p;
        if (j)
                form_done(&j->f);
        free(j);
}

/* Split a scope into audiences in buf (a copy); false: too many. */
static bool audiences_of(const char *scope, char *buf, size_t size, const char *aud[static MAX_AUDIENCES + 1]) {
        size_t n = 0;
        snprintf(buf, size, "%s", scope);
        for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
                if (n == MAX_AUDIENCES)
                        return false;
                aud[n++] = w;
        }
        aud[n] = NULL;
        return true;
}

/* The token answer for the device, as the token endpoint sends it. */
static char *answer_of(td_tokens *tok) {
        json_t *j = td_tokens_to_json(tok);
        char *s = NULL;
        td_tokens_done(tok);
        if (j && td_json_dump_compact(j, &s) < 0)
                s = NULL;
        json_decref(j);
        return s;
}

static void approve_job_run(http_ext_req *rq, http_reply *r) {
        approve_job *j = rq->job_data;
        char scope[DEVICE_SCOPE_MAX + 1];
        const char *aud[MAX_AUDIENCES + 1];
        td_tokens tok = { 0 };
        td_status st = { 0 };
        td_code c;

        if (!audiences_of(j->q.scope, scope, sizeof scope, aud))
                c = st_fail(&st, TD_INVALID_REQUEST, "the device asked for too many audiences");
        else {
                td_login_req lr = { .username = form_get(&j->f, "username"), .password = form_get(&j->f, "password"),
                                    .device_name = *j->q.device_name ? j->q.device_name : NULL,
                                    .device_key = *j->q.device_key ? j->q.device_key : NULL,
                                    .audience = aud[0] ? aud : NULL };
                c = td_login(rq->t, &rq->caller, &lr, &tok, &st);
        }
        char *answer = c == TD_OK ? answer_of(&tok) : NULL;
        if (c == TD_OK && !answer)
                c = st_fail(&st, TD_INTERNAL, "out of memory");
        device_grants_finish(rq->t->device_grants, j->handle, answer);
        r->not_before_usec = st.not_before_usec;
        if (c == TD_OK) {
                (void) page_done(r, 200, "Device approved", "The device is signed in; you may close this page.");
                return;
        }
        r->log_code = td_code_to_string(c);
        snprintf(r->log_message, sizeof r->log_message, "device approval: %.120s", st.message);
        unsigned status = c == TD_TOO_MANY_REQUESTS ? 429 : c == TD_INTERNAL ? 500 : c == TD_UNAVAILABLE ? 503 : 400;
        if (c == TD_TOO_MANY_REQUESTS) {
                char ra[24];
                snprintf(ra, sizeof ra, "%lld", (long long) (st.retry_after > 0 ? st.retry_after : 1));
                (void) reply_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
        }
        (void) page_approve(r, status, &j->q, j->code, j->csrf, st.message);
}

static int page_post(http_ext_req *rq, http_reply *r) {
        approve_job *j = calloc(1, sizeof *j);
        char cookie[44], want[DEVICE_CSRF_LEN + 1];
        const char *dup = NULL;
        bool fresh;
        int k;

        if (!j)
                return -ENOMEM;
        if (!http_content_type_is(rq->conn, "application/x-www-form-urlencoded") || rq->len > OAUTH_FORM_MAX ||
            (k = form_parse(rq->body, rq->len, &j->f, &dup)) < 0) {
                approve_job_free(j);
                return page_done(r, 400, "Bad request", "The form could not be read.");
        }
        const char *csrf = form_get(&j->f, "csrf"), *code = form_get(&j->f, "user_code"),
                   *action = form_get(&j->f, "action");
        (void) csrf_cookie(rq, cookie, &fresh);
        if (fresh || !csrf || device_grants_csrf(rq->t->device_grants, cookie, want) < 0 || strlen(csrf) != strlen(want) ||
            sodium_memcmp(csrf, want, strlen(want)) != 0) {
                approve_job_free(j);
                r->log_code = "forbidden";
                snprintf(r->log_message, sizeof r->log_message, "device approval page: bad CSRF token");
                return page_done(r, 403, "Form expired", "This form has expired or was not sent from this site. "
                                 "Open the link shown on the device again.");
        }
        if (!code || !action || (!streq(action, "approve") && !streq(action, "deny"))) {
                approve_job_free(j);
                return page_done(r, 400, "Bad request", "The form is incomplete.");
        }
        if ((k = find_code(rq, r, code, &j->q, &j->handle)) != 0) {
                approve_job_free(j);
                return k < 0 ? k : HTTP_EXT_DONE;
        }
        (void) device_user_code_normalize(code, j->code);
        memcpy(j->csrf, want, sizeof j->csrf);
        if (streq(action, "deny")) {
                k = device_grants_deny(rq->t->device_grants, j->handle) == 0
                            ? page_done(r, 200, "Device denied", "The device was refused; it gets no tokens.")
                            : page_enter_code(r, 404, "That code is no longer pending.");
                approve_job_free(j);
                return k;
        }
        if (!form_get(&j->f, "username") || !form_get(&j->f, "password")) {
                k = page_approve(r, 400, &j->q, j->code, j->csrf, "Enter your user name and password to approve.");
                approve_job_free(j);
                return k;
        }
        if (device_grants_claim(rq->t->device_grants, j->handle, now_s()) < 0) {
                approve_job_free(j);
                return page_enter_code(r, 409, "That code is being approved or is no longer pending.");
        }
        rq->job = approve_job_run;
        rq->job_free = approve_job_free;
        rq->job_data = j;
        rq->pool = HTTP_EXT_LOGIN;
        return HTTP_EXT_RUN;
}

static int page_get(http_ext_req *rq, http_reply *r) {
        const char *code = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "user_code");
        char cookie[44], csrf[DEVICE_CSRF_LEN + 1], norm[DEVICE_USER_CODE_LEN + 1];
        device_request q;
        uint64_t handle;
        bool fresh;
        int k;

        if (http_value_count(rq->conn, MHD_GET_ARGUMENT_KIND, "user_code") > 1)
                return page_enter_code(r, 400, "Give the code once.");
        if (!code || !*code)
                return page_enter_code(r, 200, NULL);
        if ((k = find_code(rq, r, code, &q, &handle)) != 0)
                return k < 0 ? k : HTTP_EXT_DONE;
        (void) device_user_code_normalize(code, norm);
        (void) csrf_cookie(rq, cookie, &fresh);
        if (device_grants_csrf(rq->t->device_grants, cookie, csrf) < 0)
                return -ENOMEM;
        if ((k = page_approve(r, 200, &q, norm, csrf, NULL)) < 0)
                return k;
        set_csrf_cookie(rq, r, cookie);
        return k;
}

int device_handle_page(http_ext_req *rq, http_reply *r) {
        return streq(rq->method, "POST") ? page_post(rq, r) : page_get(rq, r);
}

/* ---- POST /api/device/approve: an already logged-in device approves --- */

typedef struct bearer_job {
        json_t *body;
        uint64_t handle;
        device_request q;
        bool deny;
        const char *bearer; /* in MHD's memory, alive while the job runs */
} bearer_job;

static void bearer_job_free(void *p) {
        bearer_job *j = p;
        if (j)
                json_decref(j->body);
        free(j);
}

static void bearer_job_run(http_ext_req *rq, http_reply *r) {
        bearer_job *j = rq->job_data;
        char scope[DEVICE_SCOPE_MAX + 1];
        const char *aud[MAX_AUDIENCES + 1];
        td_tokens tok = { 0 };
        td_code c;

        if (!audiences_of(j->q.scope, scope, sizeof scope, aud))
                c = st_fail(&r->st, TD_INVALID_REQUEST, "the device asked for too many audiences");
        else {
                td_issue_req ir = { .device_name = *j->q.device_name ? j->q.device_name : NULL,
                                    .device_key = *j->q.device_key ? j->q.device_key : NULL,
                                    .audience = aud[0] ? aud : NULL };
                c = td_device_approve(rq->t, &rq->caller, j->bearer, &ir, &tok, &r->st);
        }
        char *answer = NULL;
        if (c == TD_OK) {
                json_t *ok = json_pack("{s:b,s:s,s:s,s:s}", "approved", 1, "client_id", j->q.client_id, "device_name",
                                       j->q.device_name, "device_id", tok.device_id);
                answer = answer_of(&tok);
                if (!answer || reply_json(r, 200, ok, false) < 0)
                        c = st_fail(&r->st, TD_INTERNAL, "out of memory");
        }
        device_grants_finish(rq->t->device_grants, j->handle, c == TD_OK ? answer : NULL);
        if (c != TD_OK) {
                erase_and_free(answer);
                reply_body(r, 0, NULL, NULL); /* r->st: answered as the socket API answers */
        }
}

int device_handle_approve_api(http_ext_req *rq, http_reply *r) {
        bearer_job *j = calloc(1, sizeof *j);
        const char *err = NULL, *code, *action;
        char key[DEVICE_CALLER_KEY_MAX + 1];
        int64_t retry = 0;

        if (!j)
                return -ENOMEM;
        j->bearer = http_bearer_of(rq->conn);
        if (!j->bearer)
                st_fail(&r->st, TD_INVALID_TOKEN, "approving a device needs an Authorization: Bearer access token");
        else if (!http_content_type_is(rq->conn, "application/json") ||
                 td_json_parse_object(rq->body, rq->len, OAUTH_FORM_MAX, 4, &j->body, &err) < 0)
                st_fail(&r->st, TD_INVALID_REQUEST, "the body must be a JSON object {user_code, action?}");
        else if (!json_is_string(json_object_get(j->body, "user_code")) ||
                 (json_object_get(j->body, "action") && !json_is_string(json_object_get(j->body, "action"))))
                st_fail(&r->st, TD_INVALID_REQUEST, "user_code and action must be strings");
        else {
                code = json_string_value(json_object_get(j->body, "user_code"));
                action = json_object_get(j->body, "action") ? json_string_value(json_object_get(j->body, "action"))
                                                            : "approve";
                j->deny = streq(action, "deny");
                caller_key(&rq->caller, key);
                int e = !j->deny && !streq(action, "approve")
                                ? -EINVAL
                                : device_grants_find(rq->t->device_grants, key, code, now_s(), &j->q, &j->handle,
                                                     &retry);
                if (e == -EINVAL)
                        st_fail(&r->st, TD_INVALID_REQUEST, "action must be approve or deny");
                else if (e == -EAGAIN) {
                        st_fail(&r->st, TD_TOO_MANY_REQUESTS, "too many wrong codes; retry in %lld s",
                                      (long long) retry);
                        r->st.retry_after = retry;
                } else if (e < 0)
                        st_fail(&r->st, TD_NOT_FOUND, "no pending device authorization has this code");
                else if (j->deny) {
                        if (device_grants_deny(rq->t->device_grants, j->handle) < 0)
                                st_fail(&r->st, TD_NOT_FOUND, "that code is no longer pending");
                        else if (reply_json(r, 200, json_pack("{s:b,s:s}", "denied", 1, "client_id", j->q.client_id),
                                            false) < 0) {
                                bearer_job_free(j);
                                return -ENOMEM;
                        }
                } else if (device_grants_claim(rq->t->device_grants, j->handle, now_s()) < 0)
                        st_fail(&r->st, TD_NOT_FOUND, "that code is no longer pending");
                else {
                        rq->job = bearer_job_run;
                        rq->job_free = bearer_job_free;
                        rq->job_data = j;
                        rq->pool = HTTP_EXT_STORE;
                        return HTTP_EXT_RUN;
                }
        }
        bearer_job_free(j);
        return HTTP_EXT_DONE;
}
