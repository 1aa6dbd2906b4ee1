/* SPDX-License-Identifier: MIT */
/* tokenctl: main(), the global options and the command table. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "tokenctl-issuer.h"
#include "tokenctl-token.h"
#include "tokenctl.h"

static const char usage_main[] =
        "Usage: tokenctl [--socket PATH | --bus[=system|session|ADDRESS] | --issuer URL [--ca-file F]] [--json]\n"
        "                COMMAND [OPTIONS]\n"
        "Client of tokend: log in, print fresh tokens, manage devices and signing keys.\n"
        "\n"
        "Commands:\n"
        "  login [--user U] [--device-name N] [--peer | --device]\n"
        "                           enrol this device (password; --peer: your local identity;\n"
        "                           --device: approve a code elsewhere, RFC 8628)\n"
        "  device approve|deny CODE approve the code of a device that runs login --device\n"
        "  token [--audience A] [--host H]\n"
        "                           print a valid access token (refreshed when < 60 s remain)\n"
        "  askpass [--audience A] [PROMPT]\n"
        "                           answer an SSH_ASKPASS or sudo -A token prompt\n"
        "  refresh [--audience A]   refresh now (rotates the refresh token)\n"
        "  logout                   revoke this device and delete the local credentials\n"
        "  status                   who is logged in, expiry times, whether tokend answers\n"
        "  devices [list] [--user U]\n"
        "  devices revoke ID [--user U]\n"
        "                           list devices, revoke one (all its tokens die at once)\n"
        "  verify [--jwks FILE [--issuer I] [--signature-only]] [--user U] [--audience A] TOKEN\n"
        "                           check a token with tokend, or offline against a JWKS\n"
        "  inspect TOKEN            decode a token WITHOUT verifying it\n"
        "  audit [--user U] [--since T] [--event E]\n"
        "                           tokend's audit log (yours; admins: everyone's)\n"
        "  unlock USER              clear USER's failed-login lockout (admins; faillock --reset)\n"
        "  keys generate|rotate|list|jwks [--dir D] [--alg A] [--passphrase-file F]\n"
        "                           manage tokend's signing keys\n"
        "\n"
        "Options:\n"
        "  --socket PATH   tokend's socket (default: $TOKEND_SOCKET, else " TOKENCTL_DEFAULT_SOCKET ")\n"
        "  --bus[=WHERE]   reach tokend over D-Bus instead: WHERE is system (the default),\n"
        "                  session or a D-Bus address such as unix:path=/run/tokend/bus\n"
        "  --issuer URL    reach tokend over HTTPS at URL (default: $TOKEND_ISSUER, else\n"
        "                  issuer= in ~/.config/tokend/tokenctl.conf); state is kept per issuer\n"
        "  --ca-file F     verify the issuer against the CA certificates in F (else ca-file=,\n"
        "                  else the system's store); verification is always on\n"
        "  --json          machine-readable output\n"
        "  -h, --help      this help; tokenctl COMMAND --help shows a command's options\n"
        "  --version       print the version\n"
        "\n"
        "Exit status: 0 success, 1 refused credential or failed verification,\n"
        "2 usage error, 3 tokend cannot be reached. See tokenctl(1).\n";

static const struct {
        const char *name;
        tc_verb_fn fn;
} verbs[] = {
        { "login", verb_login },     { "token", verb_token },     { "askpass", verb_askpass },
        { "refresh", verb_refresh }, { "logout", verb_logout },   { "status", verb_status },
        { "devices", verb_devices }, { "verify", verb_verify },   { "inspect", verb_inspect },
        { "keys", verb_keys },       { "audit", verb_audit },     { "unlock", verb_unlock },
        { "device", verb_device },
};

/* A word that can only be the value of a bare --bus before the command. */
static bool bus_word(const char *s) {
        return streq(s, "system") || streq(s, "session") || (strchr(s, ':') && strchr(s, '='));
}

static int run(tc_ctx *ctx, int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "json", no_argument, NULL, OPT_JSON },
                { "bus", optional_argument, NULL, OPT_BUS },
                { "issuer", required_argument, NULL, OPT_NET_ISSUER },
                { "ca-file", required_argument, NULL, OPT_NET_CA_FILE },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1)
                switch (c) {
                case OPT_SOCKET:
                case OPT_BUS:
                case OPT_JSON:
                case OPT_NET_ISSUER:
                case OPT_NET_CA_FILE:
                        /* Before the command, "--bus session" reads as well as
                         * "--bus=session": no command is named like a bus. */
                        if (c == OPT_BUS && !optarg && optind < argc && bus_word(argv[optind]))
                                optarg = argv[optind++];
                        if (tc_common_option(ctx, usage_main, c, optarg) != 0)
                                return EXIT_USAGE;
                        break;
                case 'h':
                        fputs(usage_main, stdout);
                        return EXIT_OK;
                case 'V':
                        puts("tokenctl " PACKAGE_VERSION);
                        return EXIT_OK;
                default:
                        return tc_option_error(ctx, usage_main, c, argv);
                }
        if (optind >= argc)
                return tc_usage_error(ctx, usage_main, "a command is needed (tokenctl --help lists them)");
        const char *verb = argv[optind];
        if (streq(verb, "help")) {
                fputs(usage_main, stdout);
                return EXIT_OK;
        }
        if ((c = tc_issuer_setup(ctx)) != EXIT_OK)
                return c;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verb, verbs[i].name)) {
                        ctx->verb = verbs[i].name;
                        return verbs[i].fn(ctx, argc - optind, argv + optind);
                }
        return tc_usage_error(ctx, usage_main, "unknown command '%s'", verb);
}

/* --json anywhere on the command line (before "--") counts from the start,
 * so that even an error in the options before it is answered in JSON. */
static bool wants_json(int argc, char **argv) {
        for (int i = 1; i < argc && !streq(argv[i], "--"); i++)
                if (streq(argv[i], "--json"))
                        return true;
        return false;
}

int main(int argc, char **argv) {
        const char *env = getenv("TOKEND_SOCKET");
        tc_json_out out = { 0 };
        tc_ctx ctx = { .socket = env && *env ? env : TOKENCTL_DEFAULT_SOCKET, .out = &out,
                       .get_bearer = tc_network_bearer };
        const char *base = argv[0] ? strrchr(argv[0], '/') : NULL;
        int r;

        base = base ? base + 1 : argv[0] ? argv[0] : "tokenctl";
        json_set_alloc_funcs(malloc, td_json_wiping_free); /* tokens in jansson memory */
        if (curl_global_init(CURL_GLOBAL_NOTHING) != CURLE_OK) {
                fputs("tokenctl: cannot initialise libcurl\n", stderr);
                return EXIT_REFUSED;
        }
        if (streq(base, "tokenctl-askpass")) {
                ctx.verb = "askpass";
                r = tc_issuer_setup(&ctx);
                if (r == EXIT_OK)
                        r = askpass_main(&ctx, argc, argv);
        } else {
                ctx.json = wants_json(argc, argv);
                r = run(&ctx, argc, argv);
                tc_json_finish(&ctx, r);
        }
        tc_issuer_done(&ctx);
        curl_global_cleanup();
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "tokenctl: cannot write the output: %m\n");
                if (r == EXIT_OK)
                        r = EXIT_REFUSED;
        }
        return r;
}
