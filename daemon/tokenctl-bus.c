/* SPDX-License-Identifier: MIT */
/* The D-Bus transport of tokenctl (--bus): io.tokend.Tokend1 (see
 * io.tokend.Tokend1(5)) on the system bus, the session bus or a given
 * address, through sd-bus. Its a{sv} answers become the socket API's JSON
 * shapes and its io.tokend.Error.* names the socket's statuses and error
 * codes, so commands see no difference. Calls and answers that carry a
 * password or token are marked sensitive: sd-bus wipes them when it frees
 * them, and the JSON made from them is wiped on free too (tokenctl.c). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "json-util.h"
#include "tokenctl-answer.h"
#include "tokenctl-transport.h"

#define BUS_NAME "io.tokend.Tokend1"
#define BUS_PATH "/io/tokend/Tokend1"
#define BUS_IFACE "io.tokend.Tokend1"
/* IssueToken names the device it enrols (io.tokend.Tokend1(5)). */
#define PEER_DEVICE_NAME "peer login"
/* Bytes charged per dictionary entry or array element on top of its
 * strings, so an answer of many tiny items is capped too. */
#define ITEM_COST 16U
#define ANSWER_MAX_DEPTH 16U

/* io.tokend.Tokend1(5) ERRORS: each name with the status and error code
 * the socket answers for the same refusal. */
static const struct {
        const char *name;
        long status;
        const char *code;
} tokend_errors[] = {
        { "io.tokend.Error.InvalidArgs", 400, "invalid_request" },
        { "io.tokend.Error.InvalidCredentials", 400, "invalid_credentials" },
        { "io.tokend.Error.InvalidToken", 401, "invalid_token" },
        { "io.tokend.Error.TokenExpired", 401, "token_expired" },
        { "io.tokend.Error.TokenRevoked", 401, "token_revoked" },
        { "io.tokend.Error.Forbidden", 403, "forbidden" },
        { "io.tokend.Error.NotFound", 404, "not_found" },
        { "io.tokend.Error.TooManyRequests", 429, "too_many_requests" },
        { "io.tokend.Error.Unavailable", 503, "unavailable" },
        { "io.tokend.Error.Internal", 500, "internal_error" },
};

/* What a method answers, and how it becomes the socket API's JSON. */
typedef enum answer_kind {
        ANSWER_NONE,      /* () → 204, no body */
        ANSWER_TOKENS,    /* a{sv} with user/uid/groups → {…, "user": {name, uid, groups}} */
        ANSWER_DICT,      /* a{sv} → object */
        ANSWER_DEVICES,   /* aa{sv} s → {"devices": […], "next_cursor": s (unless "")} */
        ANSWER_AUDIT,     /* aa{sv} s → {"audit": […], "next_cursor": s (unless "")} */
        ANSWER_JSON_TEXT, /* s holding a JSON object → that object */
} answer_kind;

/* ---- connecting ------------------------------------------------------- */

static int bus_connect(const tc_ctx *ctx, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        char where[TC_BUS_ADDRESS_MAX + 32];
        int r;

        tc_transport_where(ctx, where, sizeof where);
        if (streq(ctx->bus, "system"))
                r = sd_bus_open_system(&bus);
        else if (streq(ctx->bus, "session"))
                r = sd_bus_open_user(&bus);
        else if ((r = sd_bus_new(&bus)) >= 0 && (r = sd_bus_set_address(bus, ctx->bus)) >= 0 &&
                 (r = sd_bus_set_bus_client(bus, 1)) >= 0)
                /* libsystemd 252 has no sd_bus_open_with_address() */
                r = sd_bus_start(bus);
        if (r == -ENOMEM) {
                tc_error(ctx, 0, "out of memory");
                return r;
        }
        if (r == -EINVAL && !streq(ctx->bus, "system") && !streq(ctx->bus, "session")) {
                tc_error(ctx, 0, "--bus=%s is not a usable D-Bus address (like unix:path=/run/tokend/bus): %s",
                         ctx->bus, strerror(-r));
                return -EINVAL;
        }
        if (r < 0) {
                if (streq(ctx->bus, "system"))
                        tc_error(ctx, 0, "cannot connect to the system bus (%s): is D-Bus running (systemctl "
                                 "status dbus)? Or reach tokend over its socket: drop --bus", strerror(-r));
                else if (streq(ctx->bus, "session"))
                        tc_error(ctx, 0, "cannot connect to the session bus (%s): is DBUS_SESSION_BUS_ADDRESS or "
                                 "XDG_RUNTIME_DIR set? Or use --bus=system, or drop --bus for the socket",
                                 strerror(-r));
                else
                        tc_error(ctx, 0, "cannot connect to %s (%s): check the address and that a dbus-daemon "
                                 "listens there", where, strerror(-r));
                return -ECONNREFUSED;
        }
        (void) sd_bus_set_description(bus, "tokenctl");
        *ret = TAKE_PTR(bus);
        return 0;
}

/* A failed call: a refusal by tokend fills *ret (returns 0); anything else
 * is printed with what to do and returned as -errno. */
static int call_failed(const tc_ctx *ctx, const char *method, const sd_bus_error *e, int r, tc_answer *ret) {
        char where[TC_BUS_ADDRESS_MAX + 32];
        const char *msg = e->message ? e->message : "no explanation given";

        tc_transport_where(ctx, where, sizeof where);
        for (size_t i = 0; e->name && i < ELEMENTSOF(tokend_errors); i++)
                if (sd_bus_error_has_name(e, tokend_errors[i].name)) {
                        if (tc_answer_refusal(ret, tokend_errors[i].status, tokend_errors[i].code, msg, e->name) < 0)
                                return tc_error(ctx, -ENOMEM, "out of memory");
                        return 0;
                }
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                if (streq(ctx->bus, "system"))
                        tc_error(ctx, 0, "tokend is not on the system bus: systemctl start tokend (and check "
                                 "[Bus] Bus= in tokend.conf)");
                else
                        tc_error(ctx, 0, "tokend is not on %s: start it there (tokend --bus %s)", where,
                                 streq(ctx->bus, "session") ? "session" : ctx->bus);
                return -ECONNREFUSED;
        }
        if (e->name && strncmp(e->name, "org.freedesktop.DBus.Error.Spawn.", 33) == 0) {
                tc_error(ctx, 0, "%s could not start tokend (%s: %s): systemctl status tokend", where, e->name, msg);
                return -ECONNREFUSED;
        }
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT,
                                   "org.freedesktop.DBus.Error.TimedOut") ||
            r == -ETIMEDOUT) {
                tc_error(ctx, 0, "tokend on %s did not answer in time: check it with systemctl status tokend", where);
                return -ETIMEDOUT;
        }
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED)) {
                tc_error(ctx, 0, "the policy of %s does not let you call tokend (%s): check "
                         "/usr/share/dbus-1/system.d/io.tokend.Tokend1.conf, or drop --bus for the socket",
                         where, msg);
                return -ECONNREFUSED;
        }
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_DISCONNECTED, SD_BUS_ERROR_NO_SERVER) || r == -ENOTCONN ||
            r == -ECONNRESET) {
                tc_error(ctx, 0, "no connection to %s (%s): %s", where, strerror(-r),
                         streq(ctx->bus, "system") ? "is D-Bus running (systemctl status dbus)?"
                                                   : "check that a dbus-daemon listens there");
                return -ECONNREFUSED;
        }
        if (e->name)
                tc_error(ctx, 0, "%s on %s failed with %s: %s; is this really tokend (io.tokend.Tokend1(5))?", method,
                         where, e->name, msg);
        else
                tc_error(ctx, 0, "%s on %s failed: %s", method, where, strerror(-r));
        return -EIO;
}

/* ---- answers ------------------------------------------------------------ */

static int charge(size_t *budget, size_t n) {
        if (n > *budget)
                return -E2BIG;
        *budget -= n;
        return 0;
}

static int read_strv(sd_bus_message *m, size_t *budget, json_t **ret) {
        _cleanup_(json_decrefp) json_t *a = json_array();
        const char *s;
        int r;

        if (!a)
                return -ENOMEM;
        if ((r = sd_bus_message_enter_container(m, 'a', "s")) < 0)
                return r;
        while ((r = sd_bus_message_read(m, "s", &s)) > 0) {
                if ((r = charge(budget, strlen(s) + ITEM_COST)) < 0)
                        return r;
                if (json_array_append_new(a, json_string(s)) < 0)
                        return -ENOMEM;
        }
        if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
}

/* The value at the read position (inside a variant of signature sig) as
 * JSON; *ret = NULL (skipped) for a type no answer of tokend has. */
static int read_value(sd_bus_message *m, const char *sig, size_t *budget, json_t **ret) {
        union {
                const char *s;
                int b;
                uint8_t y;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
        } v;
        json_t *j = NULL;
        int r;

        if (streq(sig, "as"))
                return read_strv(m, budget, ret);
        if (strlen(sig) != 1 || !strchr("sogbynqiuxtd", sig[0])) {
                *ret = NULL;
                return sd_bus_message_skip(m, sig);
        }
        if ((r = sd_bus_message_read_basic(m, sig[0], &v)) < 0)
                return r;
        switch (sig[0]) {
        case 's': case 'o': case 'g':
                if ((r = charge(budget, strlen(v.s))) < 0)
                        return r;
                j = json_string(v.s);
                break;
        case 'b': j = json_boolean(v.b); break;
        case 'y': j = json_integer(v.y); break;
        case 'n': j = json_integer(v.n); break;
        case 'q': j = json_integer(v.q); break;
        case 'i': j = json_integer(v.i); break;
        case 'u': j = json_integer(v.u); break;
        case 'x': j = json_integer(v.x); break;
        case 't':
                if (v.t > INT64_MAX)
                        return -EBADMSG;
                j = json_integer((json_int_t) v.t);
                break;
        case 'd': j = json_real(v.d); break;
        }
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

/* a{sv} at the read position → a JSON object (later duplicate keys win). */
static int read_dict(sd_bus_message *m, size_t *budget, json_t **ret) {
        _cleanup_(json_decrefp) json_t *o = json_object();
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key, *sig;
                json_t *v = NULL;
                if ((r = sd_bus_message_read(m, "s", &key)) < 0 || (r = charge(budget, strlen(key) + ITEM_COST)) < 0 ||
                    (r = sd_bus_message_peek_type(m, NULL, &sig)) < 0 ||
                    (r = sd_bus_message_enter_container(m, 'v', sig)) < 0 || (r = read_value(m, sig, budget, &v)) < 0)
                        return r;
                if (v && json_object_set_new(o, key, v) < 0)
                        return -ENOMEM;
                if ((r = sd_bus_message_exit_container(m)) < 0 || (r = sd_bus_message_exit_container(m)) < 0)
                        return r;
        }
        if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

/* A page of a listing: aa{sv} s → {key: […], "next_cursor": s (unless "")}. */
static int read_listing(sd_bus_message *m, size_t *budget, const char *key, json_t **ret) {
        _cleanup_(json_decrefp) json_t *list = json_array();
        int r;

        if (!list)
                return -ENOMEM;
        if ((r = sd_bus_message_enter_container(m, 'a', "a{sv}")) < 0)
                return r;
        while ((r = sd_bus_message_at_end(m, false)) == 0) {
                json_t *d = NULL;
                if ((r = read_dict(m, budget, &d)) < 0)
                        return r;
                if (json_array_append_new(list, d) < 0)
                        return -ENOMEM;
        }
        const char *next;
        if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0 || (r = sd_bus_message_read(m, "s", &next)) < 0)
                return r;
        *ret = json_pack("{s:o}", key, TAKE_PTR(list));
        if (*ret && *next && json_object_set_new(*ret, "next_cursor", json_string(next)) < 0) {
                json_decref(*ret);
                *ret = NULL;
        }
        return *ret ? 0 : -ENOMEM;
}

/* The token dictionary flattens the socket's user object (name, uid,
 * groups) into user, uid, groups: nest them again. */
static int unflatten_user(json_t *tokens) {
        json_t *name = json_object_get(tokens, "user");
        if (!json_is_string(name))
                return 0; /* checked by the command: "lacks the user" */
        json_t *u = json_pack("{s:O,s:O?,s:O?}", "name", name, "uid", json_object_get(tokens, "uid"), "groups",
                              json_object_get(tokens, "groups"));
        if (!u)
                return -ENOMEM;
        (void) json_object_del(tokens, "uid");
        (void) json_object_del(tokens, "groups");
        return json_object_set_new(tokens, "user", u) < 0 ? -ENOMEM : 0;
}

static int read_answer(sd_bus_message *reply, answer_kind kind, json_t **ret) {
        size_t budget = TC_ANSWER_MAX;
        const char *text;
        int r;

        switch (kind) {
        case ANSWER_NONE:
                *ret = NULL;
                return 0;
        case ANSWER_TOKENS:
                if ((r = read_dict(reply, &budget, ret)) < 0)
                        return r;
                return unflatten_user(*ret);
        case ANSWER_DICT:
                return read_dict(reply, &budget, ret);
        case ANSWER_DEVICES:
                return read_listing(reply, &budget, "devices", ret);
        case ANSWER_AUDIT:
                return read_listing(reply, &budget, "audit", ret);
        case ANSWER_JSON_TEXT:
                if ((r = sd_bus_message_read(reply, "s", &text)) < 0)
                        return r;
                return td_json_parse_object(text, strlen(text), TC_ANSWER_MAX, ANSWER_MAX_DEPTH, ret, NULL);
        }
        return -EINVAL;
}

/* ---- calls ------------------------------------------------------------- */

/* Call method with the arguments of types; sensitive: the call or its
 * answer carries a secret. Fills *ret with the answer as kind says (200 or
 * 204) or with tokend's refusal; returns 0, or -errno after printing why. */
static int bus_op(const tc_ctx *ctx, const char *method, bool sensitive, answer_kind kind, tc_answer *ret,
                  const char *types, ...) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        json_t *body = NULL;
        va_list ap;
        int r;

        if ((r = bus_connect(ctx, &bus)) < 0)
                return r;
        r = sd_bus_message_new_method_call(bus, &call, BUS_NAME, BUS_PATH, BUS_IFACE, method);
        if (r >= 0 && sensitive)
                r = sd_bus_message_sensitive(call);
        if (r >= 0) {
                va_start(ap, types);
                r = sd_bus_message_appendv(call, types, ap);
                va_end(ap);
        }
        if (r == -ENOMEM)
                return tc_error(ctx, r, "out of memory");
        if (r < 0)
                /* D-Bus strings must be UTF-8 without NUL: an argument is unusable */
                return tc_error(ctx, -EINVAL, "cannot send %s: an argument is not valid UTF-8 text (%s)", method,
                                strerror(-r));
        r = sd_bus_call(bus, call, (uint64_t) TC_CALL_TIMEOUT_MS * 1000U, &error, &reply);
        if (r < 0)
                return call_failed(ctx, method, &error, r, ret);
        if (sensitive)
                (void) sd_bus_message_sensitive(reply); /* wiped when freed */
        r = read_answer(reply, kind, &body);
        if (r < 0) {
                char where[TC_BUS_ADDRESS_MAX + 32];
                json_decref(body);
                if (r == -ENOMEM)
                        return tc_error(ctx, r, "out of memory");
                return tc_error(ctx, r == -E2BIG ? -E2BIG : -EBADMSG, "the answer to %s on %s is %s; is this really "
                                "tokend (io.tokend.Tokend1(5))?", method, tc_transport_where(ctx, where, sizeof where),
                                r == -E2BIG ? "too large" : "malformed");
        }
        *ret = (tc_answer){ .status = kind == ANSWER_NONE ? 204 : 200, .body = body };
        return 0;
}

static const char *empty_if_null(const char *s) {
        return s ? s : ""; /* the interface's "not given" */
}

static int bus_login(const tc_ctx *ctx, const tc_login_req *req, tc_answer *ret) {
        /* Login takes no device key and IssueToken neither a key nor a name:
         * registers_device_key and peer_device_name below say so. */
        if (req->password)
                return bus_op(ctx, "Login", true, ANSWER_TOKENS, ret, "sss", req->user, req->password,
                              empty_if_null(req->device_name));
        return bus_op(ctx, "IssueToken", true, ANSWER_TOKENS, ret, "sas", empty_if_null(req->user), 0);
}

static int bus_refresh(const tc_ctx *ctx, const tc_refresh_req *req, tc_answer *ret) {
        return bus_op(ctx, "Refresh", true, ANSWER_TOKENS, ret, "sss", req->refresh_token, req->device_id,
                      empty_if_null(req->proof));
}

static int bus_logout(const tc_ctx *ctx, const char *access_token, tc_answer *ret) {
        return bus_op(ctx, "Logout", true, ANSWER_NONE, ret, "s", access_token);
}

static int bus_verify(const tc_ctx *ctx, const char *token, const char *user, const char *service, tc_answer *ret) {
        return bus_op(ctx, "Verify", true, ANSWER_DICT, ret, "sss", token, empty_if_null(user),
                      empty_if_null(service));
}

static int bus_devices_list(const tc_ctx *ctx, const char *user, const char *cursor, tc_answer *ret) {
        return bus_op(ctx, "ListDevicesPaged", false, ANSWER_DEVICES, ret, "ssu", empty_if_null(user),
                      empty_if_null(cursor), (uint32_t) TC_DEVICES_PAGE);
}

static int bus_audit_list(const tc_ctx *ctx, const char *user, const char *cursor, tc_answer *ret) {
        return bus_op(ctx, "ListAudit", false, ANSWER_AUDIT, ret, "ssu", empty_if_null(user), empty_if_null(cursor),
                      (uint32_t) TC_DEVICES_PAGE);
}

static int bus_device_revoke(const tc_ctx *ctx, const char *device_id, tc_answer *ret) {
        return bus_op(ctx, "RevokeDevice", false, ANSWER_NONE, ret, "s", device_id);
}

static int bus_unlock(const tc_ctx *ctx, const char *user, tc_answer *ret) {
        return bus_op(ctx, "Unlock", false, ANSWER_DICT, ret, "s", user);
}

static int bus_jwks(const tc_ctx *ctx, tc_answer *ret) {
        return bus_op(ctx, "GetJWKS", false, ANSWER_JSON_TEXT, ret, "");
}

const tc_transport tc_transport_bus = {
        .name = "D-Bus",
        .registers_device_key = false,
        .chooses_audience = false,
        .peer_device_name = PEER_DEVICE_NAME,
        .login = bus_login,
        .refresh = bus_refresh,
        .logout = bus_logout,
        .verify = bus_verify,
        .devices_list = bus_devices_list,
        .audit_list = bus_audit_list,
        .device_revoke = bus_device_revoke,
        .unlock = bus_unlock,
        .jwks = bus_jwks,
};
