/* SPDX-License-Identifier: MIT */
/* tokenctl devices [list] / devices revoke ID: the enrolled devices of the
 * caller (admins: anyone's), through GET/DELETE /api/devices or
 * ListDevices/RevokeDevice. The caller is identified by its uid (SO_PEERCRED,
 * or the bus's sender credentials), so no token is needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json-util.h"
#include "tokenctl-devices.h"
#include "tokenctl-state.h"
#include "tokenctl.h"
#include "tokenctl-transport.h"

static const char usage[] =
        "Usage: tokenctl devices [list | revoke ID] [--user U]\n"
        "List enrolled devices (yours; root and members of tokend's admin group: everyone's),\n"
        "or revoke one: every token of that device stops working at once.\n"
        "  --user U   only devices of user U (for revoke: refuse unless ID belongs to U)\n";

typedef struct dev_opts {
        const char *user;
} dev_opts;

static int on_opt(void *userdata, int val, const char *arg) {
        dev_opts *o = userdata;
        (void) val;
        o->user = arg;
        return 0;
}

/* This machine's device id, if a login is stored (errors are not fatal). */
static char *own_device_id(const tc_ctx *ctx, char **ret_dir) {
        _cleanup_(freep) char *dir = NULL, *path = NULL;
        tc_creds c = { 0 };
        char *id = NULL;

        if (tc_state_dir_if_any(ctx, &dir) < 0 || !(path = tc_path_join(dir, TC_CREDENTIALS_FILE)) ||
            access(path, F_OK) < 0 || tc_creds_load(ctx, dir, &c) < 0)
                return NULL;
        id = TAKE_PTR(c.device_id);
        tc_creds_done(&c);
        if (ret_dir)
                *ret_dir = TAKE_PTR(dir);
        return id;
}

static const char *short_time(const json_t *d, const char *key, char *buf, size_t size) {
        int64_t t;
        struct tm tm;
        time_t tt;

        if (td_json_object_get_int_range(d, key, 1, INT64_MAX / 2, &t) < 0)
                return "-";
        tt = (time_t) t;
        if (!localtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M", &tm) == 0)
                return "?";
        return buf;
}

static void print_table(const json_t *devs, const char *own) {
        size_t i;
        const json_t *d;
        char c1[32], c2[32], sid[256], suser[1024], sname[25], sreason[256];

        printf("  %-20s %-12s %-24s %-16s %-16s %-3s %s\n", "DEVICE", "USER", "NAME", "CREATED", "LAST USED", "KEY",
               "STATE");
        json_array_foreach(devs, i, d) {
                const char *id = td_json_object_get_str(d, "id");
                const json_t *rv = json_object_get(d, "revoked"), *hk = json_object_get(d, "has_key");
                const char *reason = td_json_object_get_str(d, "revoke_reason");
                const char *user = td_json_object_get_str(d, "user");
                /* Every string is tokend's answer: escaped before it reaches
                 * the admin's terminal (older servers took any device name);
                 * the name is cut to its 24-byte column between characters. */
                printf("%s %-20s %-12s %-24.24s %-16s %-16s %-3s %s%s%s\n", own && streq_ptr(id, own) ? "*" : " ",
                       id ? tc_safe(id, sid, sizeof sid) : "?", user ? tc_safe(user, suser, sizeof suser) : "?",
                       tc_safe(td_json_object_get_str(d, "name"), sname, sizeof sname),
                       short_time(d, "created", c1, sizeof c1), short_time(d, "last_used", c2, sizeof c2),
                       json_is_true(hk) ? "yes" : "no", json_is_true(rv) ? "revoked" : "active",
                       reason ? " by " : "", tc_safe(reason, sreason, sizeof sreason));
        }
        if (json_array_size(devs) == 0)
                printf("  (no devices)\n");
        else if (own)
                printf("(* = this machine's login)\n");
}

static int devices_list(const tc_ctx *ctx, const dev_opts *o) {
        _cleanup_(freep) char *own = NULL;
        tc_answer a = { 0 };
        int ex = tc_list_all(ctx, tc_transport_of(ctx)->devices_list, "devices", o->user, &a);

        if (ex != EXIT_OK)
                return ex;
        if (ctx->json) {
                tc_print_json(ctx, a.body);
        } else {
                own = own_device_id(ctx, NULL);
                print_table(json_object_get(a.body, "devices"), own);
        }
        tc_answer_done(&a);
        return EXIT_OK;
}

static int devices_revoke(const tc_ctx *ctx, const dev_opts *o, const char *id) {
        _cleanup_(freep) char *own = NULL, *dir = NULL;
        tc_answer a = { 0 };
        int r, ex;

        if (o->user) {
                bool found = false;
                size_t i;
                const json_t *d;
                if ((ex = tc_list_all(ctx, tc_transport_of(ctx)->devices_list, "devices", o->user, &a)) != EXIT_OK)
                        return ex;
                json_array_foreach(json_object_get(a.body, "devices"), i, d)
                        found = found || streq_ptr(td_json_object_get_str(d, "id"), id);
                tc_answer_done(&a);
                if (!found)
                        return tc_error(ctx, EXIT_REFUSED, "%s is not a device of %s: check tokenctl devices list "
                                        "--user %s", id, o->user, o->user);
        }
        r = tc_transport_of(ctx)->device_revoke(ctx, id, &a);
        if (r < 0)
                return tc_transport_exit(r);
        if (!tc_answer_ok(&a)) {
                ex = tc_answer_fail(ctx, &a);
                tc_answer_done(&a);
                return ex;
        }
        tc_answer_done(&a);
        if (ctx->json) {
                _cleanup_(json_decrefp) json_t *j = json_pack("{s:s}", "revoked", id);
                tc_print_json(ctx, j);
        } else
                printf("Revoked device %s: its tokens and refresh token no longer work.\n", id);
        own = own_device_id(ctx, &dir);
        if (own && streq(own, id)) {
                _cleanup_(closep) int lock = tc_state_lock(ctx, dir);
                if (lock >= 0 && tc_state_remove(ctx, dir) >= 0)
                        fprintf(stderr, "That was this machine's login: deleted the local credentials.\n");
        }
        return EXIT_OK;
}

/* Whether token's verification by tokend says its device was revoked. */
static int verify_token_state(const tc_ctx *ctx, const char *token, tc_device_state *ret) {
        tc_answer a = { 0 };
        int r = tc_transport_of(ctx)->verify(ctx, token, NULL, NULL, &a);

        if (r < 0)
                return tc_transport_exit(r);
        const char *code = a.body ? td_json_object_get_str(a.body, "error") : NULL;
        if (tc_answer_ok(&a) && json_is_true(json_object_get(a.body, "active")))
                ret->state = TC_DEVICE_ALIVE;
        else if (streq_ptr(code, "token_revoked"))
                ret->state = TC_DEVICE_REVOKED;
        tc_answer_done(&a);
        return EXIT_OK;
}

int tc_device_check(const tc_ctx *ctx, const tc_creds *c, const char *token, tc_device_state *ret) {
        tc_answer a = { 0 };
        size_t i;
        const json_t *d;

        *ret = (tc_device_state){ .state = TC_DEVICE_UNKNOWN };
        /* The credentials are the caller's own (the usual case): tokend on
         * the socket lists the caller's devices by its uid, no token needed. */
        if (c->uid != (int64_t) getuid() || ctx->issuer) /* the issuer lists by a bearer token only */
                return token ? verify_token_state(ctx, token, ret) : EXIT_OK;
        /* The first page only: a user with more devices than fit in it
         * (next_cursor set) falls back to the token below. */
        int r = tc_transport_of(ctx)->devices_list(ctx, c->user, NULL, &a);
        if (r < 0)
                return tc_transport_exit(r);
        if (!tc_answer_ok(&a) || !json_is_array(json_object_get(a.body, "devices"))) {
                tc_answer_done(&a);
                return token ? verify_token_state(ctx, token, ret) : EXIT_OK;
        }
        ret->state = TC_DEVICE_UNKNOWN;
        json_array_foreach(json_object_get(a.body, "devices"), i, d) {
                if (!streq_ptr(td_json_object_get_str(d, "id"), c->device_id))
                        continue;
                ret->state = json_is_true(json_object_get(d, "revoked")) ? TC_DEVICE_REVOKED : TC_DEVICE_ALIVE;
                const char *reason = td_json_object_get_str(d, "revoke_reason");
                if (reason) /* tokend's text, escaped for the terminal */
                        (void) tc_safe(reason, ret->reason, sizeof ret->reason);
                if (td_json_object_get_int_range(d, "revoked_at", 0, INT64_MAX / 2, &ret->revoked_at) < 0)
                        ret->revoked_at = 0;
                break;
        }
        /* Not listed: gone, unless the answer may be one page of more (any
         * member besides "devices"); then only a token can tell. */
        bool complete = json_object_size(a.body) == 1;
        tc_answer_done(&a);
        if (ret->state == TC_DEVICE_UNKNOWN && complete)
                ret->state = TC_DEVICE_GONE;
        else if (ret->state == TC_DEVICE_UNKNOWN && token)
                return verify_token_state(ctx, token, ret);
        return EXIT_OK;
}

const char *tc_device_state_text(const tc_device_state *s, char *buf, size_t size) {
        char when[128];
        switch (s->state) {
        case TC_DEVICE_ALIVE:
                snprintf(buf, size, "active");
                break;
        case TC_DEVICE_REVOKED:
                if (s->revoked_at > 0)
                        snprintf(buf, size, "revoked (%s, %s)", s->reason[0] ? s->reason : "no reason given",
                                 tc_format_time(s->revoked_at, when, sizeof when));
                else
                        snprintf(buf, size, "revoked");
                break;
        case TC_DEVICE_GONE:
                snprintf(buf, size, "unknown to tokend (removed, or tokend's database was replaced)");
                break;
        default:
                snprintf(buf, size, "not known (tokend could not tell)");
        }
        return buf;
}

int verb_devices(tc_ctx *ctx, int argc, char **argv) {
        static const struct option opts[] = {
                { "user", required_argument, NULL, OPT_FIRST_VERB_OPTION },
                TC_COMMON_OPTIONS,
        };
        dev_opts o = { 0 };
        int r, ex;

        if ((r = tc_parse_options(ctx, argc, argv, opts, usage, on_opt, &o, &ex)) < 0)
                return ex;
        int n = argc - r;
        char **ops = argv + r;
        if (ctx->get_bearer && (ex = ctx->get_bearer(ctx)) != EXIT_OK)
                return ex;
        if (n == 0 || (n == 1 && streq(ops[0], "list"))) {
                ctx->verb = "devices list";
                return devices_list(ctx, &o);
        }
        if (streq(ops[0], "revoke")) {
                ctx->verb = "devices revoke";
                if (n != 2)
                        return tc_usage_error(ctx, usage, "revoke needs exactly one device ID");
                return devices_revoke(ctx, &o, ops[1]);
        }
        if (streq(ops[0], "list"))
                return tc_usage_error(ctx, usage, "unexpected argument '%s'", ops[1]);
        return tc_usage_error(ctx, usage, "unknown subcommand '%s'", ops[0]);
}
