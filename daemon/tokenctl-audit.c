/* SPDX-License-Identifier: MIT */
/* tokenctl audit: tokend's audit log (GET /api/audit, ListAudit over
 * D-Bus), newest first, all pages. tokend decides who sees what: admins every
 * row, a user the rows about themselves. --since and --event filter here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json-util.h"
#include "timespan.h"
#include "tokenctl-transport.h"
#include "tokenctl.h"

static const char usage[] =
        "Usage: tokenctl audit [--user U] [--since T] [--event E]\n"
        "Show tokend's audit log, newest first (yours; root and members of tokend's admin group:\n"
        "everyone's).\n"
        "  --user U    only rows about user U\n"
        "  --since T   only rows from T on: a time span back from now (1h, 2d, 30min) or a time\n"
        "              (2026-12-02, 2026-12-02 10:00[:00], 2026-12-02T10:00:00[Z|+01:00])\n"
        "  --event E   only rows of event E (token, login, login_failed, refresh, revoke, ...)\n";

enum {
        OPT_USER = OPT_FIRST_VERB_OPTION,
        OPT_SINCE,
        OPT_EVENT,
};

#define AUDIT_EVENT_MAX 64U

typedef struct audit_opts {
        const tc_ctx *ctx;
        const char *user;
        const char *event;
        int64_t since; /* 0: no lower bound */
} audit_opts;

/* An ISO 8601 date or time, local time unless it names its zone (strptime
 * does the parsing). Returns 0 with *ret, or -EINVAL. */
static int parse_iso_time(const char *s, int64_t *ret) {
        static const struct {
                const char *fmt;
                bool zoned;
        } forms[] = {
                { "%Y-%m-%dT%H:%M:%S%z", true }, { "%Y-%m-%d %H:%M:%S%z", true }, { "%Y-%m-%dT%H:%M%z", true },
                { "%Y-%m-%dT%H:%M:%S", false },  { "%Y-%m-%d %H:%M:%S", false },  { "%Y-%m-%dT%H:%M", false },
                { "%Y-%m-%d %H:%M", false },     { "%Y-%m-%d", false },
        };
        for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
                struct tm tm = { .tm_isdst = -1 };
                const char *end = strptime(s, forms[i].fmt, &tm);
                if (!end || *end)
                        continue;
                time_t t;
                if (forms[i].zoned) {
                        long off = tm.tm_gmtoff;
                        t = timegm(&tm);
                        if (t != (time_t) -1)
                                t -= off;
                } else
                        t = mktime(&tm);
                if (t == (time_t) -1 || t <= 0)
                        return -EINVAL;
                *ret = (int64_t) t;
                return 0;
        }
        return -EINVAL;
}

static int on_opt(void *userdata, int val, const char *arg) {
        audit_opts *o = userdata;
        int64_t span;

        switch (val) {
        case OPT_USER:
                o->user = arg;
                return 0;
        case OPT_EVENT:
                if (!*arg || strlen(arg) > AUDIT_EVENT_MAX)
                        return tc_usage_error(o->ctx, usage, "--event: an event name of 1-%u characters is needed",
                                              AUDIT_EVENT_MAX);
                o->event = arg;
                return 0;
        default:
                if (timespan_parse(arg, &span) == 0 && span > 0) {
                        o->since = (int64_t) time(NULL) - span;
                        return 0;
                }
                if (parse_iso_time(arg, &o->since) == 0) {
                        if (o->since > (int64_t) time(NULL))
                                return tc_usage_error(o->ctx, usage, "--since %s is in the future", arg);
                        return 0;
                }
                return tc_usage_error(o->ctx, usage, "--since %s: neither a time span (1h, 2d) nor a time "
                                      "(2026-12-02 10:00:00, 2026-12-02T10:00:00Z)", arg);
        }
}

/* The integer key of an audit row, or dflt when absent or out of range. */
static int64_t row_int(const json_t *e, const char *key, int64_t dflt) {
        int64_t v;
        return td_json_object_get_int_range(e, key, -1, INT64_MAX / 2, &v) == 0 ? v : dflt;
}

/* When a row last happened: a coalesced row counts by its last occurrence. */
static int64_t row_time(const json_t *e) {
        int64_t t = row_int(e, "time", 0), last = row_int(e, "last_time", 0);
        return last > t ? last : t;
}

/* Keep the rows that pass --since and --event (a coalesced row counts by
 * its last occurrence, row_time()). Returns 0 or -ENOMEM. */
static int filter_rows(json_t *rows, const audit_opts *o) {
        _cleanup_(json_decrefp) json_t *keep = json_array();
        size_t i;
        json_t *e;

        if (!keep)
                return -ENOMEM;
        json_array_foreach(rows, i, e) {
                if (o->since > 0 && row_time(e) < o->since)
                        continue;
                if (o->event && !streq_ptr(td_json_object_get_str(e, "event"), o->event))
                        continue;
                if (json_array_append(keep, e) < 0)
                        return -ENOMEM;
        }
        return json_array_clear(rows) < 0 || json_array_extend(rows, keep) < 0 ? -ENOMEM : 0;
}

static void print_rows(const json_t *rows) {
        size_t i;
        const json_t *e;
        char when[32], suser[256], sev[AUDIT_EVENT_MAX * 4 + 1], sdev[256], sdet[1024];

        printf("%-19s %-16s %-12s %-20s %-8s %s\n", "TIME", "EVENT", "USER", "DEVICE", "CALLER", "DETAIL");
        json_array_foreach(rows, i, e) {
                int64_t t = row_time(e), n = row_int(e, "count", 1), uid = row_int(e, "caller_uid", -1);
                struct tm tm;
                time_t tt = (time_t) t;
                if (t <= 0 || !localtime_r(&tt, &tm) || strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                        snprintf(when, sizeof when, "?");
                const char *dev = td_json_object_get_str(e, "device_id");
                printf("%-19s %-16s %-12s %-20s %-8lld %s", when, tc_safe(td_json_object_get_str(e, "event"), sev,
                                                                            sizeof sev),
                       tc_safe(td_json_object_get_str(e, "user"), suser, sizeof suser),
                       dev && *dev ? tc_safe(dev, sdev, sizeof sdev) : "-", (long long) uid,
                       tc_safe(td_json_object_get_str(e, "detail"), sdet, sizeof sdet));
                if (n > 1)
                        printf(" (x%lld)", (long long) n);
                putchar('\n');
        }
        if (json_array_size(rows) == 0)
                printf("(no audit rows)\n");
}

int verb_audit(tc_ctx *ctx, int argc, char **argv) {
        static const struct option opts[] = {
                { "user", required_argument, NULL, OPT_USER },
                { "since", required_argument, NULL, OPT_SINCE },
                { "event", required_argument, NULL, OPT_EVENT },
                TC_COMMON_OPTIONS,
        };
        audit_opts o = { .ctx = ctx };
        tc_answer a = { 0 };
        int r, ex;

        if ((r = tc_parse_options(ctx, argc, argv, opts, usage, on_opt, &o, &ex)) < 0)
                return ex;
        if (r < argc)
                return tc_usage_error(ctx, usage, "unexpected argument '%s'", argv[r]);
        if (ctx->get_bearer && (ex = ctx->get_bearer(ctx)) != EXIT_OK)
                return ex;
        if ((ex = tc_list_all(ctx, tc_transport_of(ctx)->audit_list, "audit", o.user, &a)) != EXIT_OK)
                return ex;
        json_t *rows = json_object_get(a.body, "audit");
        if (filter_rows(rows, &o) < 0) {
                tc_answer_done(&a);
                return tc_error(ctx, EXIT_REFUSED, "out of memory");
        }
        if (ctx->json)
                tc_print_json(ctx, a.body);
        else
                print_rows(rows);
        tc_answer_done(&a);
        return EXIT_OK;
}
