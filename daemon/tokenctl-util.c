/* SPDX-License-Identifier: MIT */
/* tokenctl's helpers shared by the verbs and the transports (tokenctl-util.h). */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jose-jws.h"
#include "json-util.h"
#include "str-escape.h"
#include "timespan.h"
#include "tokenctl-util.h"

/* Messages quote tokend's answers and the command line: formatted, then
 * escaped (str_escape_controls()) so neither can drive the terminal. */
static _printf_(3, 0) void vformat_safe(char *buf, size_t size, const char *fmt, va_list ap) {
        char raw[2048];
        (void) vsnprintf(raw, sizeof raw, fmt, ap);
        (void) str_escape_controls(raw, strlen(raw), buf, size);
}

const char *tc_safe(const char *s, char *buf, size_t size) {
        if (!s)
                return "";
        (void) str_escape_controls(s, strlen(s), buf, size);
        return buf;
}

/* "tokenctl VERB: msg" on stderr; with error_code non-NULL ("" = none
 * known) msg is also kept as the error --json reports. */
static void emit(const tc_ctx *ctx, const char *error_code, const char *msg) {
        fprintf(stderr, "tokenctl%s%s: %s\n", ctx && ctx->verb ? " " : "", ctx && ctx->verb ? ctx->verb : "", msg);
        if (!error_code || !ctx || !ctx->out)
                return;
        snprintf(ctx->out->code, sizeof ctx->out->code, "%s", error_code);
        snprintf(ctx->out->message, sizeof ctx->out->message, "%s", msg);
}

static _printf_(3, 0) void vmessage(const tc_ctx *ctx, const char *error_code, const char *fmt, va_list ap) {
        char msg[TC_ERROR_MESSAGE_MAX];
        vformat_safe(msg, sizeof msg, fmt, ap); /* keeps errno for %m */
        emit(ctx, error_code, msg);
}

int tc_error(const tc_ctx *ctx, int code, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vmessage(ctx, "", fmt, ap);
        va_end(ap);
        return code;
}

int tc_error_as(const tc_ctx *ctx, int code, const char *error_code, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vmessage(ctx, error_code, fmt, ap);
        va_end(ap);
        return code;
}

void tc_warn(const tc_ctx *ctx, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vmessage(ctx, NULL, fmt, ap);
        va_end(ap);
}

void tc_json_finish(const tc_ctx *ctx, int status) {
        if (!ctx->json || !ctx->out || ctx->out->printed || status == EXIT_OK)
                return;
        const char *code = ctx->out->code[0] ? ctx->out->code : status == EXIT_USAGE ? "usage" :
                           status == EXIT_UNREACHABLE ? "unreachable" : "failed";
        _cleanup_(json_decrefp) json_t *j = json_pack("{s:s,s:s}", "error", code, "message",
                                                      ctx->out->message[0] ? ctx->out->message : "failed");
        tc_print_json(ctx, j);
}

int tc_usage_error(const tc_ctx *ctx, const char *usage, const char *fmt, ...) {
        va_list ap;
        const char *u = usage, *nl;
        char msg[TC_ERROR_MESSAGE_MAX / 2], line[TC_ERROR_MESSAGE_MAX];

        if (strncmp(u, "Usage: ", 7) == 0)
                u += 7;
        nl = strchr(u, '\n');
        va_start(ap, fmt);
        vformat_safe(msg, sizeof msg, fmt, ap);
        va_end(ap);
        int ulen = nl ? (int) (nl - u) : (int) strlen(u);
        snprintf(line, sizeof line, "%s; usage: %.*s", msg, ulen < 1024 ? ulen : 1024, u);
        emit(ctx, "usage", line);
        return EXIT_USAGE;
}

int tc_common_option(tc_ctx *ctx, const char *usage, int c, const char *value) {
        switch (c) {
        case OPT_SOCKET:
                ctx->socket = value;
                ctx->socket_given = true;
                break;
        case OPT_BUS:
                if (value && !tc_bus_value_valid(value))
                        return tc_usage_error(ctx, usage, "--bus=%s: not system, session or a D-Bus address "
                                              "(like unix:path=/run/tokend/bus)", value);
                ctx->bus = value ? value : "system";
                break;
        case OPT_NET_ISSUER:
                ctx->issuer = value;
                ctx->issuer_given = true;
                break;
        case OPT_NET_CA_FILE:
                ctx->ca_file = value;
                break;
        default:
                ctx->json = true;
        }
        if (ctx->socket_given && ctx->bus)
                return tc_usage_error(ctx, usage, "--socket and --bus exclude each other: pick one way to tokend");
        if (ctx->issuer_given && (ctx->socket_given || ctx->bus))
                return tc_usage_error(ctx, usage, "--issuer excludes --socket and --bus: pick one way to tokend");
        if (c == OPT_SOCKET || c == OPT_BUS)
                ctx->issuer = NULL; /* one from $TOKEND_ISSUER or tokenctl.conf: the command line wins */
        return 0;
}

int tc_option_error(const tc_ctx *ctx, const char *usage, int c, char **argv) {
        if (c == ':')
                return tc_usage_error(ctx, usage, "option %s needs a value", argv[optind - 1]);
        if (optopt > 0 && optopt < 0x80 && isprint(optopt))
                return tc_usage_error(ctx, usage, "unknown option -%c", optopt);
        return tc_usage_error(ctx, usage, "unknown option %s", argv[optind - 1]);
}

int tc_parse_options(tc_ctx *ctx, int argc, char **argv, const struct option *opts, const char *usage,
                     int (*on_opt)(void *userdata, int val, const char *arg), void *userdata, int *ret_exit) {
        int c;

        optind = 0; /* GNU: full re-initialisation for this argv */
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1)
                switch (c) {
                case OPT_SOCKET:
                case OPT_BUS:
                case OPT_JSON:
                        if (tc_common_option(ctx, usage, c, optarg) != 0) {
                                *ret_exit = EXIT_USAGE;
                                return -1;
                        }
                        break;
                case 'h':
                case OPT_HELP:
                        fputs(usage, stdout);
                        *ret_exit = EXIT_OK;
                        return -1;
                case ':':
                case '?':
                        *ret_exit = tc_option_error(ctx, usage, c, argv);
                        return -1;
                default:
                        if (!on_opt || on_opt(userdata, c, optarg) != 0) {
                                *ret_exit = EXIT_USAGE;
                                return -1;
                        }
                }
        return optind;
}

void tc_print_json(const tc_ctx *ctx, const json_t *j) {
        if (!j || (ctx->out && ctx->out->printed))
                return;
        /* ASCII only: a C1 control or bidi override in a device name
         * arrives as a \u escape, never as itself. */
        if (json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII) == 0)
                putchar('\n');
        if (ctx->out)
                ctx->out->printed = true;
}

char *tc_path_join(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        char *s = malloc(la + 1 + lb + 1);
        if (!s)
                return NULL;
        memcpy(s, a, la);
        s[la] = '/';
        memcpy(s + la + 1, b, lb + 1);
        return s;
}

char *tc_format_time(long long t, char *buf, size_t size) {
        char when[64] = "?", span[TIMESPAN_FORMAT_MAX];
        time_t tt = (time_t) t;
        struct tm tm;
        long long d = t - (long long) time(NULL);

        if (localtime_r(&tt, &tm))
                (void) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", &tm);
        timespan_format(d < 0 ? -d : d, span, sizeof span);
        if (d == 0)
                snprintf(buf, size, "%s (now)", when);
        else
                snprintf(buf, size, "%s (%s%s%s)", when, d > 0 ? "in " : "", span, d > 0 ? "" : " ago");
        return buf;
}

/* "-": one line of stdin, at most JWS_MAX_TOKEN_BYTES; 0, -EINVAL (empty),
 * -E2BIG, -ENOMEM, -EIO. A token typed as an argument is visible to every
 * local user in ps(1) and /proc: "-" keeps it out of argv. */
static int read_token(const char *arg, char **ret) {
        size_t n = 0;
        char *s;

        if (!streq(arg, "-"))
                s = strdup(arg);
        else {
                s = malloc(JWS_MAX_TOKEN_BYTES + 1);
                if (!s)
                        return -ENOMEM;
                for (int ch; (ch = getchar()) != EOF && ch != '\n';) {
                        if (n == JWS_MAX_TOKEN_BYTES) {
                                erase_and_free_buf(s, JWS_MAX_TOKEN_BYTES + 1);
                                return -E2BIG;
                        }
                        s[n++] = (char) ch;
                }
                if (ferror(stdin)) {
                        erase_and_free_buf(s, JWS_MAX_TOKEN_BYTES + 1);
                        return -EIO;
                }
                while (n > 0 && isspace((unsigned char) s[n - 1]))
                        n--;
                s[n] = 0;
        }
        if (!s)
                return -ENOMEM;
        if (!*s) {
                erase_and_free(s);
                return -EINVAL;
        }
        *ret = s;
        return 0;
}

int tc_token_operand(const tc_ctx *ctx, const char *usage, const char *arg, char **ret) {
        int r = read_token(arg, ret);
        if (r == -E2BIG)
                return tc_usage_error(ctx, usage, "the token on standard input is longer than %u bytes: refused",
                                      JWS_MAX_TOKEN_BYTES);
        if (r == -EINVAL)
                return tc_usage_error(ctx, usage, "no TOKEN: %s is empty", streq(arg, "-") ? "standard input" :
                                      "the argument");
        if (r < 0)
                return tc_error(ctx, EXIT_REFUSED, "cannot read the token: %s", strerror(-r));
        return EXIT_OK;
}

bool tc_bus_value_valid(const char *s) {
        size_t n = strlen(s);
        const char *colon = strchr(s, ':');

        if (streq(s, "system") || streq(s, "session"))
                return true;
        /* D-Bus specification "Server Addresses": transport:key=value,…;…
         * sd-bus checks the rest when it connects. */
        if (n == 0 || n > TC_BUS_ADDRESS_MAX || !colon || colon == s)
                return false;
        for (const char *p = s; *p; p++)
                if (!isprint((unsigned char) *p) || *p == ' ')
                        return false;
        return true;
}
