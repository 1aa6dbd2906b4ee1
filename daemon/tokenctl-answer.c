/* SPDX-License-Identifier: MIT */
/* tokend's answers and refusals as tokenctl reports them (tokenctl-answer.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "tokenctl-answer.h"

const char *tc_transport_where(const tc_ctx *ctx, char *buf, size_t size) {
        if (ctx->issuer)
                snprintf(buf, size, "%s", ctx->issuer);
        else if (!ctx->bus)
                snprintf(buf, size, "%s", ctx->socket);
        else if (streq(ctx->bus, "system") || streq(ctx->bus, "session"))
                snprintf(buf, size, "the %s bus", ctx->bus);
        else
                snprintf(buf, size, "the bus at %s", ctx->bus);
        return buf;
}

void tc_answer_done(tc_answer *a) {
        if (!a)
                return;
        json_decref(a->body);
        free(a->bus_error);
        *a = (tc_answer){ 0 };
}

int tc_answer_refusal(tc_answer *ret, long status, const char *code, const char *message, const char *bus_error) {
        _cleanup_(json_decrefp) json_t *body = json_pack("{s:s,s:s}", "error", code, "message", message);
        char *name = NULL;

        if (!body || (bus_error && !(name = strdup(bus_error))))
                return -ENOMEM;
        *ret = (tc_answer){ .status = status, .body = TAKE_PTR(body), .bus_error = name };
        return 0;
}

static const char *hint_for(const char *code, const char *message, long status) {
        if (streq(code, "token_revoked") || streq(code, "token_expired"))
                /* tokend's message may say "log in again" already: say it once */
                return message && strstr(message, "log in again") ? "tokenctl login" : "log in again: tokenctl login";
        if (streq(code, "invalid_credentials"))
                return "check the user name and password";
        if (streq(code, "forbidden") && message && strstr(message, "is a step-up audience"))
                return "log in with your password (tokenctl login), then ask for it again within the window";
        if (streq(code, "forbidden") && message && strstr(message, "AllowedAudiences"))
                return "tokend's administrator can allow that audience: [Token] AllowedAudiences= in "
                       "tokend.conf(5), then systemctl reload tokend";
        if (streq(code, "forbidden"))
                return "this needs root or a member of tokend's admin group ([Login] AdminGroup=)";
        if (streq(code, "too_many_requests"))
                return "wait and try again";
        if (status >= 500)
                return "see tokend's log: journalctl -u tokend";
        return NULL;
}

int tc_answer_fail(const tc_ctx *ctx, const tc_answer *a) {
        const char *code = a->body ? td_json_object_get_str(a->body, "error") : NULL;
        const char *msg = a->body ? td_json_object_get_str(a->body, "message") : NULL;
        const char *hint = hint_for(code ? code : "", msg, a->status);
        char how[64];

        if (!code)
                code = "unknown_error";
        if (a->bus_error)
                snprintf(how, sizeof how, "%s", a->bus_error);
        else
                snprintf(how, sizeof how, "HTTP %ld", a->status);
        tc_error_as(ctx, 0, code, "tokend refused: %s (%s, %s)%s%s", msg ? msg : "no explanation given", code, how,
                    hint ? "; " : "", hint ? hint : "");
        return a->status == 400 && streq(code, "invalid_request") ? EXIT_USAGE : EXIT_REFUSED;
}

int tc_transport_exit(int r) {
        switch (r) {
        case -ENOENT:
        case -ENOTSOCK:
        case -EACCES:
        case -ECONNREFUSED:
        case -EAGAIN:
        case -ETIMEDOUT:
        case -ECONNABORTED: /* TLS: the issuer's certificate did not verify, or no handshake */
                return EXIT_UNREACHABLE;
        case -EINVAL:
                return EXIT_USAGE;
        default:
                return EXIT_REFUSED;
        }
}
