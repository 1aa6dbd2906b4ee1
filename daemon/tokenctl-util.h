/* SPDX-License-Identifier: MIT */
/* tokenctl's base layer, below the verbs and the transports: the shared
 * context, exit statuses, option parsing with one-line usage errors,
 * messages, escaping, JSON printing, paths and times. It calls nothing of
 * tokenctl above it. */
#pragma once

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "macro.h"

#define TOKENCTL_DEFAULT_SOCKET "/run/tokend/tokend.sock"
#define TOKENCTL_DEFAULT_KEYDIR "/var/lib/tokend/keys"
/* Refresh when fewer than this many seconds of the cached token remain. */
#define TOKENCTL_REFRESH_MARGIN 60

/* Exit statuses (DESIGN.md "tokenctl"). */
enum {
        EXIT_OK = 0,
        EXIT_REFUSED = 1,     /* refused credential, failed verification, other failures */
        EXIT_USAGE = 2,       /* usage errors */
        EXIT_UNREACHABLE = 3, /* tokend cannot be reached */
};

/* What a run under --json has put on stdout, or will (tokenctl(1) "JSON
 * OUTPUT"): exactly one object, the answer or {"error","message"}. */
#define TC_ERROR_CODE_MAX 48U
#define TC_ERROR_MESSAGE_MAX 4096U
typedef struct tc_json_out {
        bool printed;                         /* an object is on stdout already */
        char code[TC_ERROR_CODE_MAX];         /* the error to report ("": from the exit status) */
        char message[TC_ERROR_MESSAGE_MAX];   /* its text, as on stderr ("": none recorded) */
} tc_json_out;

typedef struct tc_ctx {
        const char *socket;   /* --socket, $TOKEND_SOCKET, or the default */
        bool socket_given;    /* --socket was on the command line */
        const char *bus;      /* --bus: "system", "session" or a D-Bus address; NULL: the socket */
        bool json;            /* --json: machine-readable output */
        const char *verb;     /* "token", "devices revoke", … for messages */
        tc_json_out *out;     /* main()'s; may be NULL (nothing recorded) */
        /* Over the network (tokenctl-issuer.h): the issuer's https:// base
         * URL, NULL: local; the CA file to verify it with, NULL: the system's. */
        const char *issuer;
        bool issuer_given;    /* --issuer was on the command line */
        const char *ca_file;
        char *owned_issuer, *owned_ca_file;
        /* Over the network there is no uid to be known by: listings and
         * revocations send this access token (tc_network_bearer); secret. */
        char *bearer;
        /* Fills bearer (tc_network_bearer, set by main(): verbs below the
         * token layer call it through here). Returns an exit status. */
        int (*get_bearer)(struct tc_ctx *ctx);
} tc_ctx;

/* One verb: argc/argv start at the verb name (argv[0]). */
typedef int (*tc_verb_fn)(tc_ctx *ctx, int argc, char **argv);

/* Options every verb accepts besides its own (--socket, --bus, --json, --help). */
enum {
        OPT_SOCKET = 0x100,
        OPT_BUS,
        OPT_JSON,
        OPT_HELP,
        OPT_NET_ISSUER,
        OPT_NET_CA_FILE,
        OPT_FIRST_VERB_OPTION, /* verbs number their own long options from here */
};

/* The common entries and the terminator of a verb's option table. */
#define TC_COMMON_OPTIONS                                       \
        { "socket", required_argument, NULL, OPT_SOCKET },      \
        { "bus", optional_argument, NULL, OPT_BUS },            \
        { "json", no_argument, NULL, OPT_JSON },                \
        { "help", no_argument, NULL, OPT_HELP },                \
        {}

/* Parse the options of a verb with getopt_long (opts must end with {}).
 * Common options are handled here. For each verb-specific option, calls
 * on_opt(userdata, val, optarg) which returns 0, or EXIT_USAGE for a bad
 * value (after printing why with tc_usage_error()). Returns the index of the first operand, or -1 with
 * *ret_exit set: EXIT_OK after --help (usage printed to stdout), EXIT_USAGE
 * after an unknown option (one line of usage on stderr). */
int tc_parse_options(tc_ctx *ctx, int argc, char **argv, const struct option *opts, const char *usage,
                     int (*on_opt)(void *userdata, int val, const char *arg), void *userdata, int *ret_exit);

/* "tokenctl VERB: usage: …" (first line of usage) on stderr; returns EXIT_USAGE. */
int tc_usage_error(const tc_ctx *ctx, const char *usage, const char *fmt, ...) _printf_(3, 4);

/* Error message "tokenctl VERB: …" on stderr. Returns code. The latest
 * message is also what --json reports if the run fails (tc_json_finish). */
int tc_error(const tc_ctx *ctx, int code, const char *fmt, ...) _printf_(3, 4);

/* tc_error that also names the --json error code (error_code: "not_logged_in",
 * tokend's "forbidden", …; tokenctl(1) lists them). Returns code. */
int tc_error_as(const tc_ctx *ctx, int code, const char *error_code, const char *fmt, ...) _printf_(4, 5);

/* A warning "tokenctl VERB: …, ignoring" on stderr: never the error --json reports. */
void tc_warn(const tc_ctx *ctx, const char *fmt, ...) _printf_(2, 3);

/* The end of a run: under --json, when it failed (status ≠ EXIT_OK) and
 * put no object on stdout, print {"error": code, "message": text} there:
 * the recorded code, else one from status (usage, unreachable, failed). */
void tc_json_finish(const tc_ctx *ctx, int status);

/* Format a unix time as "YYYY-MM-DD HH:MM:SS TZ (in 14min 59s)" /
 * "(… ago)" into buf. Returns buf. */
char *tc_format_time(long long t, char *buf, size_t size);

/* s with control, bidi and invalid UTF-8 characters escaped
 * (str_escape_controls()) into buf, for printing text that came from tokend
 * or a token. Returns buf, or "" for NULL. Error messages (tc_error(),
 * tc_usage_error()) are escaped already. */
const char *tc_safe(const char *s, char *buf, size_t size);

/* Print j indented, with a newline, on stdout (NULL: nothing); non-ASCII
 * characters as \u escapes. The run's one object: a second is not printed. */
void tc_print_json(const tc_ctx *ctx, const json_t *j);

/* "a/b", malloc'ed; NULL on allocation failure. */
char *tc_path_join(const char *a, const char *b);

/* The TOKEN operand of verify/inspect: "-" reads one line from stdin (at
 * most JWS_MAX_TOKEN_BYTES, trailing white space stripped), anything else is
 * the token itself. *ret is malloc'ed (release with erase_and_free()).
 * Returns EXIT_OK, or the exit status after printing why (usage, with
 * usage, for an empty or over-long token). */
int tc_token_operand(const tc_ctx *ctx, const char *usage, const char *arg, char **ret);

/* --socket, --bus and --json, accepted before the command and among its
 * options: c is OPT_SOCKET, OPT_BUS or OPT_JSON, value the option's argument
 * (--bus: NULL for the system bus). Returns 0, or EXIT_USAGE after a
 * one-line usage error. */
int tc_common_option(tc_ctx *ctx, const char *usage, int c, const char *value);

/* The one-line usage error for getopt's ':' (missing value) and '?'
 * (unknown option) c. Returns EXIT_USAGE. */
int tc_option_error(const tc_ctx *ctx, const char *usage, int c, char **argv);

/* Is s a usable --bus value: "system", "session" or a D-Bus address
 * ("transport:key=value[,…][;…]", printable, ≤ TC_BUS_ADDRESS_MAX bytes)? */
#define TC_BUS_ADDRESS_MAX 1024U
bool tc_bus_value_valid(const char *s);
