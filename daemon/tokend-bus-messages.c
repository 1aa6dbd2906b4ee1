/* SPDX-License-Identifier: MIT */
/* The message bodies of io.tokend.Tokend1 (io.tokend.Tokend1(5) "Answer
 * dictionaries"): service results appended as readable a{sv} dictionaries,
 * and the audience array read from a call. No threads, no logging. */
#include <stdint.h>

#include "macro.h"
#include "tokend-bus-messages.h"

static int append_strv_entry(sd_bus_message *r, const char *key, char *const *v) {
        int k;
        if ((k = sd_bus_message_open_container(r, 'e', "sv")) < 0 || (k = sd_bus_message_append(r, "s", key)) < 0 ||
            (k = sd_bus_message_open_container(r, 'v', "as")) < 0 ||
            (k = sd_bus_message_append_strv(r, (char **) v)) < 0 || (k = sd_bus_message_close_container(r)) < 0)
                return k;
        return sd_bus_message_close_container(r);
}

/* A token answer as a{sv} with the RFC 6749 §5.1 names of the socket API;
 * the user object is flattened into user, uid, groups. */
int bus_append_tokens(sd_bus_message *r, const td_tokens *tok) {
        int k;
        if ((k = sd_bus_message_open_container(r, 'a', "{sv}")) < 0 ||
            (k = sd_bus_message_append(r, "{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}",
                                       "access_token", "s", tok->access_token,
                                       "token_type", "s", "Bearer",
                                       "expires_in", "x", tok->expires_in,
                                       "refresh_token", "s", tok->refresh_token,
                                       "refresh_expires_in", "x", tok->refresh_expires_in,
                                       "device_id", "s", tok->device_id,
                                       "user", "s", tok->user,
                                       "uid", "u", (uint32_t) tok->uid)) < 0 ||
            (k = append_strv_entry(r, "groups", tok->groups)) < 0)
                return k;
        return sd_bus_message_close_container(r);
}

/* One JSON object of flat members as a{sv}: strings s, integers x (uid: u),
 * booleans b; other member types are not produced by the service and skipped. */
static int append_json_dict(sd_bus_message *r, const json_t *o) {
        const char *key;
        const json_t *v;
        int k;

        if ((k = sd_bus_message_open_container(r, 'a', "{sv}")) < 0)
                return k;
        json_object_foreach((json_t *) o, key, v) {
                if (json_is_string(v))
                        k = sd_bus_message_append(r, "{sv}", key, "s", json_string_value(v));
                else if (json_is_integer(v) && streq(key, "uid"))
                        k = sd_bus_message_append(r, "{sv}", key, "u", (uint32_t) json_integer_value(v));
                else if (json_is_integer(v))
                        k = sd_bus_message_append(r, "{sv}", key, "x", (int64_t) json_integer_value(v));
                else if (json_is_boolean(v))
                        k = sd_bus_message_append(r, "{sv}", key, "b", (int) json_is_true(v));
                else
                        continue;
                if (k < 0)
                        return k;
        }
        return sd_bus_message_close_container(r);
}

int bus_append_devices(sd_bus_message *r, const json_t *list) {
        const json_t *d;
        size_t i;
        int k = sd_bus_message_open_container(r, 'a', "a{sv}");
        if (k < 0)
                return k;
        json_array_foreach(list, i, d)
                if ((k = append_json_dict(r, d)) < 0)
                        return k;
        return sd_bus_message_close_container(r);
}

int bus_append_claims(sd_bus_message *r, const td_introspection *in) {
        int k;
        if ((k = sd_bus_message_open_container(r, 'a', "{sv}")) < 0 ||
            (k = sd_bus_message_append(r, "{sv}{sv}{sv}{sv}{sv}{sv}", "active", "b", 1, "sub", "s", in->sub, "exp",
                                       "x", in->exp, "iat", "x", in->iat, "client_id", "s", in->client_id, "jti",
                                       "s", in->jti)) < 0 ||
            (k = append_strv_entry(r, "aud", in->aud)) < 0)
                return k;
        if (in->uid >= 0 && (k = sd_bus_message_append(r, "{sv}", "uid", "u", (uint32_t) in->uid)) < 0)
                return k;
        if (in->scope && (k = sd_bus_message_append(r, "{sv}", "scope", "s", in->scope)) < 0)
                return k;
        return sd_bus_message_close_container(r);
}

/* Read "as" into a NULL-terminated vector of at most MAX_AUDIENCES entries
 * pointing into m. An empty array gives *ret = NULL (the default). */
int bus_read_audience(sd_bus_message *m, const char *buf[static BUS_MAX_AUDIENCES + 1], const char *const **ret) {
        size_t n = 0;
        const char *s;
        int r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(m, "s", &s)) > 0) {
                if (n == BUS_MAX_AUDIENCES)
                        return -E2BIG;
                buf[n++] = s;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        buf[n] = NULL;
        *ret = n > 0 ? buf : NULL;
        return 0;
}

