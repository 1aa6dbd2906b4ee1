/* SPDX-License-Identifier: MIT */
/* The key table and one value's parsing and checks. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "strv.h"
#include "timespan.h"
#include "tokend-config-keys.h"

#define ISSUER_MAX 256U
#define NAME_MAX_LEN 64U    /* PAM service, group, key name */
#define BUS_ADDRESS_MAX 1024U

static int parse_decimal(const char *v, int64_t min, int64_t max, int64_t *ret);

/* ------------------------------------------------------------ value checks */

static bool valid_audience_char(char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '_' || ch == '.' || ch == '@' || ch == '-';
}

bool tokend_audience_name_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > TOKEND_AUDIENCE_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!valid_audience_char(s[i]))
                        return false;
        const char *at = strchr(s, '@');
        return !at || (at != s && at[1] && !strchr(at + 1, '@'));
}

/* "SERVICE@*" (AllowedAudiences=): SERVICE@HOST for every HOST. */
static bool audience_pattern_valid(const char *s) {
        size_t n = strlen(s);
        if (n < 3 || s[n - 2] != '@' || s[n - 1] != '*')
                return false;
        for (size_t i = 0; i < n - 2; i++)
                if (!valid_audience_char(s[i]) || s[i] == '@')
                        return false;
        return true;
}

static bool has_control_chars(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}


static const char *check_issuer(const char *v) {
        if (strlen(v) > ISSUER_MAX)
                return "too long (at most 256 bytes)";
        if (has_control_chars(v))
                return "contains control characters";
        return NULL;
}

/* PAM service, group name: portable names, not an option, not a path. */
static const char *check_name(const char *v) {
        if (strlen(v) > NAME_MAX_LEN)
                return "too long (at most 64 characters)";
        if (v[0] == '-' || v[0] == '.')
                return "must not start with '-' or '.'";
        for (const char *p = v; *p; p++)
                if (!valid_audience_char(*p) || *p == '@')
                        return "may only contain letters, digits, '_', '.' and '-'";
        return NULL;
}

static const char *check_key_name(const char *v) {
        if (strlen(v) > NAME_MAX_LEN * 4)
                return "too long";
        if (strchr(v, '/') || streq(v, ".") || streq(v, ".."))
                return "must be a file name in the key directory or a kid, without '/'";
        if (has_control_chars(v))
                return "contains control characters";
        return NULL;
}

static const char *check_path(const char *v) {
        if (v[0] != '/')
                return "must be an absolute path";
        if (strlen(v) >= PATH_MAX)
                return "path too long";
        if (has_control_chars(v))
                return "contains control characters";
        return NULL;
}

/* [Store] Database=: an absolute path (SQLite) or a libpq connection URI
 * (postgresql://[user@][host][:port][/dbname][?param=value&…], a socket
 * directory as ?host=/run/postgresql). No password in it: tokend.conf is
 * world-readable and its values are quoted in messages; libpq reads one from
 * ~/.pgpass or passfile=. */
static const char *check_database(const char *v) {
        const char *rest;
        if (strncmp(v, "postgresql://", 13) == 0)
                rest = v + 13;
        else if (strncmp(v, "postgres://", 11) == 0)
                rest = v + 11;
        else
                return check_path(v) ? "must be an absolute path (SQLite) or a postgresql:// URI" : NULL;
        if (strlen(v) > 4096)
                return "URI too long";
        if (has_control_chars(v) || strpbrk(v, " \t"))
                return "contains control characters or blanks (percent-encode them)";
        const char *at = strchr(rest, '@'), *end = strpbrk(rest, "/?");
        if ((at && (!end || at < end) && memchr(rest, ':', (size_t) (at - rest))) || strstr(v, "password="))
                return "must not contain a password (use ~/.pgpass or passfile=)";
        return NULL;
}

static const char *check_socket_path(const char *v) {
        const char *r = check_path(v);
        if (r)
                return r;
        if (strlen(v) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                return "too long for a Unix socket path (at most 107 bytes)";
        return NULL;
}

static const char *check_bus_address(const char *v) {
        /* D-Bus spec "Server Addresses": transport ':' key=value,… */
        const char *colon = strchr(v, ':');
        if (!colon || colon == v)
                return "must be system, session, none or a D-Bus address (TRANSPORT:KEY=VALUE,…)";
        for (const char *p = v; p < colon; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
                        return "must be system, session, none or a D-Bus address (TRANSPORT:KEY=VALUE,…)";
        if (strlen(v) > BUS_ADDRESS_MAX)
                return "D-Bus address too long";
        for (const char *p = v; *p; p++)
                if ((unsigned char) *p <= 0x20 || *p == 0x7f)
                        return "D-Bus address contains whitespace or control characters";
        return NULL;
}

/* [Network] PublicURL=: the issuer URL (`iss`, metadata), https:// (http://
 * for a plain loopback test listener), no spaces, no fragment. */
static const char *check_public_url(const char *v) {
        const char *r = check_issuer(v);
        if (r)
                return r;
        if (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0)
                return "must be an https:// URL";
        if (strpbrk(v, " \t#"))
                return "must not contain spaces or a fragment";
        return NULL;
}

/* [Verifier] HostNames=: host names, space-separated, each usable after
 * the '@' of an audience. */
static const char *check_host_names(const char *v) {
        size_t n = 0;
        for (const char *p = v + strspn(v, " \t"); *p; p += strspn(p, " \t")) {
                size_t l = strcspn(p, " \t");
                if (l > 63 || strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-") < l)
                        return "expected host names of [A-Za-z0-9.-], at most 63 characters each";
                p += l;
                if (++n > 16)
                        return "too many names (at most 16)";
        }
        return n ? NULL : "expected at least one host name";
}

/* [Network] Listen=: whitespace-separated numeric ADDRESS:PORT words. */
static const char *check_listen(const char *v) {
        struct sockaddr_storage sa;
        socklen_t len;
        size_t n = 0;
        for (const char *p = v + strspn(v, " \t"); *p; p += strspn(p, " \t")) {
                char w[TOKEND_LISTEN_WORD_MAX + 1];
                size_t l = strcspn(p, " \t");
                if (l > TOKEND_LISTEN_WORD_MAX)
                        return "an address is too long";
                memcpy(w, p, l);
                w[l] = 0;
                p += l;
                if (tokend_listen_parse(w, &sa, &len) < 0)
                        return "expected numeric ADDRESS:PORT words, e.g. 0.0.0.0:8443 [::]:8443";
                if (++n > TOKEND_LISTEN_MAX)
                        return "too many addresses (at most 16)";
        }
        return NULL;
}

/* ------------------------------------------------------------ key table */

#define F(field) offsetof(tokend_config, field)
#define MiB (1024 * 1024)

const config_key config_keys[] = {
        { "Token", "Issuer", K_STRING, F(issuer), "tokend", 0, 0, check_issuer, false, NULL },
        { "Token", "AccessTokenLifetime", K_TIMESPAN, F(access_token_lifetime), "15min", 1, TIMESPAN_MAX, NULL, false, "must be more than 0" },
        { "Token", "RefreshTokenLifetime", K_TIMESPAN, F(refresh_token_lifetime), "7d", 0, TIMESPAN_MAX, NULL, false, NULL },
        { "Token", "Algorithm", K_ALG, F(algorithm), "EdDSA", 0, 0, NULL, false, NULL },
        { "Token", "DefaultAudience", K_AUDIENCES, F(default_audience), "sshd login su", 0, 0, NULL, false, NULL },
        { "Token", "AllowedAudiences", K_AUDIENCES, F(allowed_audiences), "*", 0, 0, NULL, true, NULL },
        { "Token", "MaxLength", K_SIZE, F(max_length), "511", 128, 8192, NULL, false, "128..8192" },
        { "Token", "ClockSkew", K_TIMESPAN, F(clock_skew), "30s", 0, 3600, NULL, false, "at most 1h" },
        { "Token", "StepUpAudiences", K_AUDIENCES_OR_NONE, F(step_up_audiences), "sudo", 0, 0, NULL, false, NULL },
        { "Token", "StepUpLifetime", K_TIMESPAN, F(step_up_lifetime), "5min", 1, 24 * 3600, NULL, false, "1s..1d" },
        { "Token", "RefreshReuseGrace", K_TIMESPAN, F(refresh_reuse_grace), "0", 0, 300, NULL, false, "at most 5min" },
        { "Keys", "Directory", K_STRING, F(keys_directory), "/var/lib/tokend/keys", 0, 0, check_path, false, NULL },
        { "Keys", "Active", K_STRING, F(keys_active), NULL, 0, 0, check_key_name, false, NULL },
        { "Keys", "PassphraseFile", K_STRING, F(keys_passphrase_file), NULL, 0, 0, check_path, false, NULL },
        { "Keys", "PublishBeforeSigning", K_TIMESPAN, F(keys_publish_before_signing), NULL, 0, 86400, NULL, false,
          "at most 1d" },
        { "Store", "Database", K_STRING, F(database), "/var/lib/tokend/tokend.db", 0, 0, check_database, false, NULL },
        { "Socket", "Path", K_STRING, F(socket_path), "/run/tokend/tokend.sock", 0, 0, check_socket_path, false, NULL },
        { "Socket", "Mode", K_MODE, F(socket_mode), "0666", 0, 0777, NULL, false, NULL },
        { "Bus", "Bus", K_BUS, 0, "system", 0, 0, NULL, false, NULL },
        { "Login", "PAMService", K_STRING, F(pam_service), "tokend", 0, 0, check_name, false, NULL },
        { "Login", "AllowPeerLogin", K_BOOL, F(allow_peer_login), "yes", 0, 0, NULL, false, NULL },
        { "Login", "AdminGroup", K_STRING, F(admin_group), "tokend-admin", 0, 0, check_name, false, NULL },
        { "Login", "MaxFailures", K_UNSIGNED, F(max_failures), "5", 1, 1000000, NULL, false, "1..1000000" },
        { "Login", "FailureWindow", K_TIMESPAN, F(failure_window), "15min", 1, TIMESPAN_MAX, NULL, false, "must be more than 0" },
        { "Login", "FailureDelay", K_TIMESPAN, F(failure_delay), "1s", 0, 10, NULL, false, "at most 10s" },
        { "Login", "MaxDevicesPerUser", K_UNSIGNED, F(max_devices_per_user), "100", 1, 1000000, NULL, false, "1..1000000" },
        { "Login", "PeerLoginRate", K_UNSIGNED, F(peer_login_rate), "10", 1, 1000000, NULL, false, "1..1000000" },
        { "Limits", "MaxRequestBytes", K_SIZE, F(max_request_bytes), "65536", 1024, 16 * MiB, NULL, false, "1024..16777216" },
        { "Limits", "RequestTimeout", K_TIMESPAN, F(request_timeout), "10s", 1, 3600, NULL, false, "1s..1h" },
        { "Limits", "MaxConnections", K_UNSIGNED, F(max_connections), "1024", 1, 65536, NULL, false, "1..65536" },
        { "Limits", "MaxConnectionsPerUser", K_UNSIGNED, F(max_connections_per_user), "64", 1, 65536, NULL, false, "1..65536" },
        { "Limits", "ReservedRootConnections", K_UNSIGNED, F(reserved_root_connections), "64", 0, 32768, NULL, false, "0..32768" },
        { "API", "EnableDocs", K_BOOL, F(enable_docs), "no", 0, 0, NULL, false, NULL },
        { "API", "DocsDirectory", K_STRING, F(docs_directory), "/usr/share/tokend/swagger-ui", 0, 0, check_path, false,
          NULL },
        { "Network", "Listen", K_STRING, F(network_listen), NULL, 0, 0, check_listen, false, NULL },
        { "Network", "Certificate", K_STRING, F(network_certificate), NULL, 0, 0, check_path, false, NULL },
        { "Network", "PrivateKey", K_STRING, F(network_private_key), NULL, 0, 0, check_path, false, NULL },
        { "Network", "ClientCA", K_STRING, F(network_client_ca), NULL, 0, 0, check_path, false, NULL },
        { "Network", "PublicURL", K_STRING, F(network_public_url), NULL, 0, 0, check_public_url, false, NULL },
        { "Network", "AllowPlainLoopback", K_BOOL, F(network_allow_plain_loopback), "no", 0, 0, NULL, false, NULL },
        { "Verifier", "Issuer", K_STRING, F(verifier_issuer), NULL, 0, 0, check_public_url, false, NULL },
        { "Verifier", "UnixSocket", K_STRING, F(verifier_unix_socket), NULL, 0, 0, check_socket_path, false, NULL },
        { "Verifier", "CAFile", K_STRING, F(verifier_ca_file), NULL, 0, 0, check_path, false, NULL },
        { "Verifier", "Certificate", K_STRING, F(verifier_certificate), NULL, 0, 0, check_path, false, NULL },
        { "Verifier", "PrivateKey", K_STRING, F(verifier_private_key), NULL, 0, 0, check_path, false, NULL },
        { "Verifier", "HostNames", K_STRING, F(verifier_host_names), NULL, 0, 0, check_host_names, false, NULL },
        { "Verifier", "AcceptUnscoped", K_BOOL, F(verifier_accept_unscoped), "no", 0, 0, NULL, false, NULL },
        { "Verifier", "MaxStaleness", K_TIMESPAN, F(verifier_max_staleness), "60s", 1, 86400, NULL, false, "1s..1d" },
        { "Verifier", "Policy", K_POLICY, F(verifier_best_effort), "strict", 0, 0, NULL, false, NULL },
};

int tokend_listen_parse(const char *w, struct sockaddr_storage *ret, socklen_t *ret_len) {
        char host[INET6_ADDRSTRLEN];
        const char *port;
        size_t hl;
        int64_t n;
        bool v6 = w && w[0] == '[';

        if (!w)
                return -EINVAL;
        if (v6) { /* RFC 3986 §3.2.2: an IPv6 literal in brackets */
                const char *e = strchr(w, ']');
                if (!e || e[1] != ':')
                        return -EINVAL;
                hl = (size_t) (e - w - 1);
                port = e + 2;
                w++;
        } else {
                const char *c = strrchr(w, ':');
                if (!c || memchr(w, ':', (size_t) (c - w)))
                        return -EINVAL; /* no port, or an IPv6 address without brackets */
                hl = (size_t) (c - w);
                port = c + 1;
        }
        if (hl == 0 || hl >= sizeof host || parse_decimal(port, 1, 65535, &n) < 0)
                return -EINVAL;
        memcpy(host, w, hl);
        host[hl] = 0;
        struct sockaddr_storage sa = { 0 };
        struct sockaddr_in *in4 = (struct sockaddr_in *) &sa;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &sa;
        if (!v6 && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
                in4->sin_family = AF_INET;
                in4->sin_port = htons((uint16_t) n);
                *ret_len = sizeof *in4;
        } else if (v6 && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) n);
                *ret_len = sizeof *in6;
        } else
                return -EINVAL;
        *ret = sa;
        return 0;
}

bool tokend_sockaddr_is_loopback(const struct sockaddr_storage *sa) {
        if (sa->ss_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *) sa)->sin_addr.s_addr) >> 24) == 127;
        if (sa->ss_family == AF_INET6)
                return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *) sa)->sin6_addr);
        return false;
}

const config_key *config_key_find(const char *section, const char *name, bool *ret_section_known) {
        bool known = false;
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                if (!streq(config_keys[i].section, section))
                        continue;
                known = true;
                if (streq(config_keys[i].name, name))
                        return &config_keys[i];
        }
        if (ret_section_known)
                *ret_section_known = known;
        return NULL;
}

/* ------------------------------------------------------------ value parsers */

static int parse_decimal(const char *v, int64_t min, int64_t max, int64_t *ret) {
        int64_t n = 0;
        if (!*v)
                return -EINVAL;
        for (const char *p = v; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                n = n * 10 + (*p - '0');
                if (n > max)
                        return -ERANGE;
        }
        if (n < min)
                return -ERANGE;
        *ret = n;
        return 0;
}

static int parse_bool(const char *v, bool *ret) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(v, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(v, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

/* Whitespace-separated audience names, duplicates dropped; "*" alone → NULL
 * when allow_any. */
static int parse_audiences(const char *v, bool allow_any, char ***ret, const char **reason) {
        _cleanup_(strv_freep) char **l = NULL;
        size_t n = 0;
        const char *p = v;

        if (allow_any && streq(v, "*")) {
                *ret = NULL;
                return 0;
        }
        for (;;) {
                p += strspn(p, " \t");
                if (!*p)
                        break;
                size_t len = strcspn(p, " \t");
                _cleanup_(freep) char *w = strndup(p, len);
                if (!w)
                        return -ENOMEM;
                p += len;
                if (!tokend_audience_name_valid(w) && !(allow_any && audience_pattern_valid(w))) {
                        *reason = streq(w, "*") ? "'*' must stand alone"
                                                : "audiences are names of 1-128 characters [A-Za-z0-9_.@-] with at "
                                                  "most one '@' (SERVICE@HOST)";
                        return -EINVAL;
                }
                if (strv_contains(l, w))
                        continue;
                if (n >= TOKEND_AUDIENCES_MAX) {
                        *reason = "too many audiences (at most 32)";
                        return -EINVAL;
                }
                if (strv_push(&l, &n, w) < 0)
                        return -ENOMEM;
                w = NULL;
        }
        if (n == 0) {
                *reason = "needs at least one audience";
                return -EINVAL;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int set_string(char **field, const char *v) {
        char *s = NULL;
        if (v) {
                s = strdup(v);
                if (!s)
                        return -ENOMEM;
        }
        free(*field);
        *field = s;
        return 0;
}

int config_apply_bus(tokend_config *c, const char *v, const char **reason) {
        tokend_bus bus;
        if (streq(v, "system"))
                bus = TOKEND_BUS_SYSTEM;
        else if (streq(v, "session"))
                bus = TOKEND_BUS_SESSION;
        else if (streq(v, "none"))
                bus = TOKEND_BUS_NONE;
        else {
                *reason = check_bus_address(v);
                if (*reason)
                        return -EINVAL;
                bus = TOKEND_BUS_ADDRESS;
        }
        if (set_string(&c->bus_address, bus == TOKEND_BUS_ADDRESS ? v : NULL) < 0)
                return -ENOMEM;
        c->bus = bus;
        return 0;
}

/* Parse v (already defaulted when empty) for key k into c. On failure the
 * field is unchanged and either *reason says why (-EINVAL) or the value is
 * outside k's range (-ERANGE). */
int config_apply_value(tokend_config *c, const config_key *k, const char *v, const char **reason) {
        void *field = (uint8_t *) c + k->offset;
        int64_t n;
        int r;

        switch (k->kind) {
        case K_STRING:
                if (v && k->check && (*reason = k->check(v)))
                        return -EINVAL;
                return set_string(field, v);

        case K_TIMESPAN:
                if (!v) { /* no built-in default: the daemon decides (-1) */
                        *(int64_t *) field = -1;
                        return 0;
                }
                if (timespan_parse(v, &n) < 0) {
                        *reason = "not a time span (e.g. 90s, 15min, 1h 30min, 7d)";
                        return -EINVAL;
                }
                if (n < k->min || n > k->max)
                        return -ERANGE;
                *(int64_t *) field = n;
                return 0;

        case K_UNSIGNED:
        case K_SIZE:
                r = parse_decimal(v, k->min, k->max, &n);
                if (r == -EINVAL)
                        *reason = "not a decimal number";
                if (r < 0)
                        return r;
                if (k->kind == K_SIZE)
                        *(size_t *) field = (size_t) n;
                else
                        *(unsigned *) field = (unsigned) n;
                return 0;

        case K_BOOL:
                if (parse_bool(v, field) < 0) {
                        *reason = "not a boolean (yes/no, true/false, on/off, 1/0)";
                        return -EINVAL;
                }
                return 0;

        case K_POLICY:
                if (!streq(v, "strict") && !streq(v, "best_effort")) {
                        *reason = "must be strict or best_effort";
                        return -EINVAL;
                }
                *(bool *) field = streq(v, "best_effort");
                return 0;

        case K_MODE:
                n = 0;
                if (!*v || strlen(v) > 4 || strspn(v, "01234567") != strlen(v) ||
                    (n = strtol(v, NULL, 8)) > k->max) {
                        *reason = "not an octal file mode of at most 0777";
                        return -EINVAL;
                }
                *(mode_t *) field = (mode_t) n;
                return 0;

        case K_ALG: {
                jose_alg alg = jose_alg_from_string(v);
                if (alg == JOSE_ALG_INVALID) {
                        *reason = "must be one of EdDSA, ES256, RS256, PS256";
                        return -EINVAL;
                }
                *(jose_alg *) field = alg;
                return 0;
        }

        case K_AUDIENCES:
        case K_AUDIENCES_OR_NONE: {
                char **l = NULL;
                bool none = k->kind == K_AUDIENCES_OR_NONE && streq(v, "none");
                r = none ? 0 : parse_audiences(v, k->allow_any, &l, reason);
                if (r < 0)
                        return r;
                if (k->kind == K_AUDIENCES_OR_NONE && strv_contains(l, "none")) {
                        strv_free(l);
                        *reason = "'none' must stand alone";
                        return -EINVAL;
                }
                strv_free(*(char ***) field);
                *(char ***) field = l;
                return 0;
        }

        case K_BUS:
                return config_apply_bus(c, v, reason);
        }
        return -EINVAL;
}
