/* SPDX-License-Identifier: MIT */
/* The RFC 8628 device grant from tokenctl: login --device (ask tokend for a
 * code, print where to approve it, poll the token endpoint) and device
 * approve|deny CODE (approve another device's code with this device's
 * access token). Socket transport only. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json-util.h"
#include "tokenctl-device.h"
#include "tokenctl-token.h"
#include "tokenctl-transport.h"
#include "tokenctl.h"

#define DEVICE_CLIENT_ID "tokenctl"
#define GRANT_DEVICE_CODE "urn:ietf:params:oauth:grant-type:device_code"
#define POLL_INTERVAL_MAX 60

/* "&name=value" appended to *form, value URL-encoded (secret forms: wiped). */
static int form_add(char **form, const char *name, const char *value) {
        if (!value)
                return 0;
        char *e = curl_easy_escape(NULL, value, 0);
        if (!e)
                return -ENOMEM;
        char *n = NULL;
        int k = asprintf(&n, "%s%s%s=%s", *form ? *form : "", *form ? "&" : "", name, e);
        explicit_bzero(e, strlen(e));
        curl_free(e);
        if (k < 0)
                return -ENOMEM;
        erase_and_free(*form);
        *form = n;
        return 0;
}

static const char *oauth_error_of(const tc_answer *a, const char **ret_desc) {
        const char *e = a->body ? td_json_object_get_str(a->body, "error") : NULL;
        *ret_desc = a->body ? td_json_object_get_str(a->body, "error_description") : NULL;
        if (!*ret_desc)
                *ret_desc = a->body ? td_json_object_get_str(a->body, "message") : NULL;
        return e ? e : "";
}

int tc_device_grant(const tc_ctx *ctx, const tc_login_req *req, tc_answer *ret) {
        _cleanup_(erase_and_freep) char *form = NULL, *poll = NULL, *device_code = NULL;
        tc_answer a = { 0 };
        const char *desc;
        int64_t interval = 5, expires_in = 600;
        char safe[512];
        int r;

        if (ctx->bus)
                return tc_error(ctx, -EINVAL, "login --device needs the socket (or an issuer), not --bus");
        if (form_add(&form, "client_id", DEVICE_CLIENT_ID) < 0 || form_add(&form, "device_name", req->device_name) < 0 ||
            form_add(&form, "device_key", req->device_key) < 0)
                return tc_error(ctx, -ENOMEM, "out of memory");
        if ((r = tc_http_form(ctx, "/oauth2/device_authorization", form, &a)) < 0)
                return r;
        const char *uri = a.body ? td_json_object_get_str(a.body, "verification_uri") : NULL;
        const char *complete = a.body ? td_json_object_get_str(a.body, "verification_uri_complete") : NULL;
        const char *user_code = a.body ? td_json_object_get_str(a.body, "user_code") : NULL;
        const char *code = a.body ? td_json_object_get_str(a.body, "device_code") : NULL;
        if (!tc_answer_ok(&a) || !uri || !user_code || !code) {
                const char *e = oauth_error_of(&a, &desc);
                tc_error(ctx, 0, "tokend refused the device authorization: %s%s%s", e, desc ? ": " : "",
                         desc ? tc_safe(desc, safe, sizeof safe) : "");
                tc_answer_done(&a);
                return -EPERM;
        }
        /* Absent or odd: RFC 8628's defaults (5 s; tokend's 600 s lifetime). */
        if (td_json_object_get_int_range(a.body, "interval", 1, POLL_INTERVAL_MAX, &interval) < 0)
                interval = 5;
        if (td_json_object_get_int_range(a.body, "expires_in", 1, 86400, &expires_in) < 0)
                expires_in = 600;
        char s1[512], s2[64], s3[512];
        fprintf(stderr, "To sign this device in, open %s\nand enter the code %s", tc_safe(uri, s1, sizeof s1),
                tc_safe(user_code, s2, sizeof s2));
        if (complete)
                fprintf(stderr, ", or open %s", tc_safe(complete, s3, sizeof s3));
        fputs("\n(or run: tokenctl device approve CODE on a device that is logged in already)\n", stderr);
        fflush(stderr);
        device_code = strdup(code);
        tc_answer_done(&a);
        if (!device_code || form_add(&poll, "grant_type", GRANT_DEVICE_CODE) < 0 ||
            form_add(&poll, "device_code", device_code) < 0 || form_add(&poll, "client_id", DEVICE_CLIENT_ID) < 0)
                return tc_error(ctx, -ENOMEM, "out of memory");
        for (int64_t deadline = (int64_t) time(NULL) + expires_in;;) {
                if ((int64_t) time(NULL) >= deadline)
                        return tc_error(ctx, -ETIME, "the code expired before it was approved; run login --device "
                                        "again");
                (void) sleep((unsigned) interval);
                if ((r = tc_http_form(ctx, "/oauth2/token", poll, &a)) < 0)
                        return r;
                if (tc_answer_ok(&a)) {
                        *ret = a;
                        return 0;
                }
                const char *e = oauth_error_of(&a, &desc);
                if (streq(e, "authorization_pending")) {
                        tc_answer_done(&a);
                        continue;
                }
                if (streq(e, "slow_down")) {
                        interval = interval + 5 > POLL_INTERVAL_MAX ? POLL_INTERVAL_MAX : interval + 5;
                        tc_answer_done(&a);
                        continue;
                }
                tc_error(ctx, 0, "%s%s%s", streq(e, "access_denied") ? "the device was denied" : e,
                         desc ? ": " : "", desc ? tc_safe(desc, safe, sizeof safe) : "");
                tc_answer_done(&a);
                return streq(e, "expired_token") ? -ETIME : -EPERM;
        }
}

int verb_device(tc_ctx *ctx, int argc, char **argv) {
        static const char usage[] =
                "Usage: tokenctl device approve|deny CODE\n"
                "Approve (or deny) the code another device shows after tokenctl login --device or\n"
                "another OAuth 2.0 device-grant client: the new device is enrolled for you,\n"
                "authenticated by this device's access token (no password, so no step-up audience).\n";
        static const struct option opts[] = {
                TC_COMMON_OPTIONS,
        };
        _cleanup_(erase_and_freep) char *token = NULL;
        _cleanup_(json_decrefp) json_t *body = NULL;
        tc_answer a = { 0 };
        char s1[256], s2[256];
        int r, ex;

        if ((r = tc_parse_options(ctx, argc, argv, opts, usage, NULL, NULL, &ex)) < 0)
                return ex;
        if (r + 2 != argc || (!streq(argv[r], "approve") && !streq(argv[r], "deny")))
                return tc_usage_error(ctx, usage, "give approve or deny and the code");
        const char *action = argv[r], *code = argv[r + 1];
        if (ctx->bus)
                return tc_usage_error(ctx, usage, "device approve needs the socket, not --bus");
        if ((ex = tc_access_token(ctx, NULL, false, 0, &token, NULL)) != EXIT_OK)
                return ex;
        if (!(body = json_pack("{s:s,s:s}", "user_code", code, "action", action)))
                return tc_error(ctx, EXIT_REFUSED, "out of memory");
        if ((r = tc_http_json(ctx, "/api/device/approve", body, token, &a)) < 0)
                return tc_transport_exit(r);
        if (!tc_answer_ok(&a)) {
                ex = tc_answer_fail(ctx, &a);
                tc_answer_done(&a);
                return ex;
        }
        if (ctx->json)
                tc_print_json(ctx, a.body);
        else if (streq(action, "deny"))
                printf("Denied the device of client %s.\n",
                       tc_safe(td_json_object_get_str(a.body, "client_id"), s1, sizeof s1));
        else
                printf("Approved device \"%s\" (client %s): it is now enrolled as %s.\n",
                       tc_safe(td_json_object_get_str(a.body, "device_name"), s1, sizeof s1),
                       tc_safe(td_json_object_get_str(a.body, "client_id"), s2, sizeof s2),
                       td_json_object_get_str(a.body, "device_id") ? td_json_object_get_str(a.body, "device_id") : "?");
        tc_answer_done(&a);
        return EXIT_OK;
}
