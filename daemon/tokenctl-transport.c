/* SPDX-License-Identifier: MIT */
/* Above both transports, which never call back up: choosing one, and
 * following a listing's cursors. */
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "tokenctl-transport.h"

const tc_transport *tc_transport_of(const tc_ctx *ctx) {
        return ctx->issuer ? &tc_transport_network : ctx->bus ? &tc_transport_bus : &tc_transport_socket;
}

int tc_list_all(const tc_ctx *ctx, tc_page_fn page_fn, const char *key, const char *user, tc_answer *ret) {
        _cleanup_(json_decrefp) json_t *all = json_array();
        _cleanup_(freep) char *cursor = NULL;
        tc_answer a = { 0 };

        if (!all)
                return tc_error(ctx, EXIT_REFUSED, "out of memory");
        for (;;) {
                int r = page_fn(ctx, user, cursor, &a);
                if (r < 0)
                        return tc_transport_exit(r);
                if (!tc_answer_ok(&a)) {
                        r = tc_answer_fail(ctx, &a);
                        tc_answer_done(&a);
                        return r;
                }
                json_t *page = json_object_get(a.body, key);
                const char *next = td_json_object_get_str(a.body, "next_cursor");
                if (!json_is_array(page) || (next && (json_array_size(page) == 0 || streq_ptr(next, cursor)))) {
                        tc_answer_done(&a);
                        return tc_error(ctx, EXIT_REFUSED, "tokend's answer has no usable %s list; is this "
                                        "really tokend?", streq(key, "devices") ? "device" : key);
                }
                if (json_array_extend(all, page) < 0 || (next && !(next = strdup(next)))) {
                        tc_answer_done(&a);
                        return tc_error(ctx, EXIT_REFUSED, "out of memory");
                }
                free(cursor);
                cursor = (char *) next;
                if (!cursor)
                        break;
                tc_answer_done(&a);
        }
        json_object_set_new(a.body, key, TAKE_PTR(all));
        *ret = a;
        return EXIT_OK;
}
