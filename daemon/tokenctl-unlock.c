/* SPDX-License-Identifier: MIT */
/* tokenctl unlock USER: clear the failure counters that lock USER out
 * (POST /api/unlock, Unlock over D-Bus), like faillock --reset. tokend
 * decides who may: root and members of its admin group. */
#include <stdio.h>
#include <stdlib.h>

#include "json-util.h"
#include "tokenctl-transport.h"
#include "tokenctl.h"

static const char usage[] =
        "Usage: tokenctl unlock USER\n"
        "Clear USER's failed-login counters, so that a locked-out USER may log in again at once\n"
        "(root and members of tokend's admin group only; like faillock --reset).\n";

int verb_unlock(tc_ctx *ctx, int argc, char **argv) {
        static const struct option opts[] = { TC_COMMON_OPTIONS };
        char safe[1024];
        tc_answer a = { 0 };
        int r, ex;

        if ((r = tc_parse_options(ctx, argc, argv, opts, usage, NULL, NULL, &ex)) < 0)
                return ex;
        if (argc - r != 1)
                return tc_usage_error(ctx, usage, argc - r == 0 ? "a USER is needed" : "exactly one USER, please");
        const char *user = argv[r];
        if ((r = tc_transport_of(ctx)->unlock(ctx, user, &a)) < 0)
                return tc_transport_exit(r);
        if (!tc_answer_ok(&a)) {
                ex = tc_answer_fail(ctx, &a);
                tc_answer_done(&a);
                return ex;
        }
        int64_t failures;
        if (td_json_object_get_int_range(a.body, "failures", 0, INT64_MAX, &failures) < 0)
                failures = 0;
        bool was_locked = json_is_true(json_object_get(a.body, "was_locked"));
        if (ctx->json)
                tc_print_json(ctx, a.body);
        else if (was_locked)
                printf("Unlocked %s: %lld failed attempt%s forgotten; %s may log in again now.\n",
                       tc_safe(user, safe, sizeof safe), (long long) failures, failures == 1 ? "" : "s",
                       tc_safe(user, safe, sizeof safe));
        else if (failures > 0)
                printf("%s was not locked out; %lld failed attempt%s forgotten.\n", tc_safe(user, safe, sizeof safe),
                       (long long) failures, failures == 1 ? "" : "s");
        else
                printf("%s was not locked out and had no failed attempts: nothing to do.\n",
                       tc_safe(user, safe, sizeof safe));
        tc_answer_done(&a);
        return EXIT_OK;
}
