/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>

#include "timespan.h"
#include "tokend-config.h"

#define ISSUER_MAX 256U
#define NAME_MAX_LEN 64U    /* PAM service, group, key name */
#define BUS_ADDRESS_MAX 1024U
#define SHOWN_VALUE_MAX 80U /* how much of a bad value an error message quotes */

/* ------------------------------------------------------------ string lists */

static void strv_free(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);

static bool strv_contains(char *const *l, const char *s) {
        for (size_t i = 0; l && l[i]; i++)
                if (streq(l[i], s))
                        return true;
        return false;
}

/* Append a string we own to a NULL-terminated list of n entries. */
static int strv_push(char ***l, size_t *n, char *s) {
        char **m = reallocarray(*l, *n + 2, sizeof(char *));
        if (!m)
                return -ENOMEM;
        m[(*n)++] = s;
        m[*n] = NULL;
        *l = m;
        return 0;
}

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
        return true;
}

static bool has_control_chars(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

/* Each check returns NULL when fine, else the reason. */
typedef const char *(*check_fn)(const char *value);

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

/* ------------------------------------------------------------ key table */

typedef enum kind {
        K_STRING,    /* char *; def NULL = optional (empty → NULL) */
        K_TIMESPAN,  /* int64_t, [min, max] */
        K_UNSIGNED,  /* unsigned, [min, max] */
        K_SIZE,      /* size_t, [min, max] */
        K_BOOL,      /* bool */
        K_MODE,      /* mode_t, octal ≤ max */
        K_ALG,       /* jose_alg */
        K_AUDIENCES, /* char **; allow_any: "*" → NULL */
        K_AUDIENCES_OR_NONE, /* char **; "none" → NULL */
        K_BUS,       /* bus + bus_address */
} kind;

typedef struct key {
        const char *section;
        const char *name;
        kind kind;
        size_t offset;
        const char *def; /* the built-in default, parsed like a file value */
        int64_t min, max;
        check_fn check;
        bool allow_any;
        const char *range; /* shown with "out of range" */
} key;

#define F(field) offsetof(tokend_config, field)
#define MiB (1024 * 1024)

static const key keys[] = {
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
        { "Store", "Database", K_STRING, F(database), "/var/lib/tokend/tokend.db", 0, 0, check_path, false, NULL },
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
};

static const key *key_find(const char *section, const char *name, bool *ret_section_known) {
        bool known = false;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                if (!streq(keys[i].section, section))
                        continue;
                known = true;
                if (streq(keys[i].name, name))
                        return &keys[i];
        }
        if (ret_section_known)
                *ret_section_known = known;
        return NULL;
}

/* Levenshtein distance, ASCII case folded, between two short names (a
 * longer name is "far": config names are at most 64 characters). */
#define SUGGEST_NAME_MAX 64U
static size_t edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b), row[SUGGEST_NAME_MAX + 1];

        if (la > SUGGEST_NAME_MAX || lb > SUGGEST_NAME_MAX)
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t diag = row[0];
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t up = row[j];
                        size_t cost = tolower((unsigned char) a[i - 1]) != tolower((unsigned char) b[j - 1]);
                        size_t best = diag + cost;
                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                        diag = up;
                }
        }
        return row[lb];
}

/* How far off a name may be and still be suggested: 1 for short names, 2 up
 * to 8 characters, 3 beyond ("AccessTokenLifetme" → AccessTokenLifetime). */
static size_t suggest_limit(const char *name) {
        size_t n = strlen(name);
        return n <= 4 ? 1 : n <= 8 ? 2 : 3;
}

/* Write " (did you mean …?)" for an unknown [section] name into out, or ""
 * when nothing is close: the nearest key of the section, else (unknown
 * section) the nearest section, else the section a key of that name (in any
 * case) belongs to. */
static void suggest(const char *section, const char *name, bool section_known, char out[160]) {
        size_t best = SIZE_MAX;
        const key *hit = NULL;

        out[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                size_t d = edit_distance(keys[i].name, name);
                if (streq(keys[i].section, section) && d <= suggest_limit(name) && d < best) {
                        best = d;
                        hit = &keys[i];
                }
        }
        if (hit) {
                snprintf(out, 160, " (did you mean %s?)", hit->name);
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(keys) && !section_known; i++) {
                size_t d = edit_distance(keys[i].section, section);
                if (d <= suggest_limit(section) && d < best) {
                        best = d;
                        hit = &keys[i];
                }
        }
        if (hit) {
                snprintf(out, 160, " (did you mean [%s]?)", hit->section);
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (strcasecmp(keys[i].name, name) == 0) {
                        snprintf(out, 160, " (did you mean %s in section [%s]?)", keys[i].name, keys[i].section);
                        return;
                }
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
                if (!tokend_audience_name_valid(w)) {
                        *reason = streq(w, "*") ? "'*' must stand alone"
                                                : "audiences are names of 1-64 characters [A-Za-z0-9_.@-]";
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

static int apply_bus(tokend_config *c, const char *v, const char **reason) {
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
static int apply_value(tokend_config *c, const key *k, const char *v, const char **reason) {
        void *field = (uint8_t *) c + k->offset;
        int64_t n;
        int r;

        switch (k->kind) {
        case K_STRING:
                if (v && k->check && (*reason = k->check(v)))
                        return -EINVAL;
                return set_string(field, v);

        case K_TIMESPAN:
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
                return apply_bus(c, v, reason);
        }
        return -EINVAL;
}

/* ------------------------------------------------------------ parsing */

typedef struct parser {
        tokend_config *config;
        const char *file;
        FILE *f;
        char *buf; /* getline() buffer */
        size_t buf_size;
        unsigned line; /* of the line inih is looking at */
        char *error;   /* first error, complete message */
        unsigned error_line;
        int error_r;
        char *where[ELEMENTSOF(keys)]; /* "FILE:LINE: [S] K=v" of the last assignment */
        bool check; /* tokend_config_check(): record every problem and read on */
} parser;

/* What a message may show of a value: bounded and printable. */
static void shown_value(const char *v, char out[SHOWN_VALUE_MAX + 4]) {
        size_t i = 0;
        for (; v[i] && i < SHOWN_VALUE_MAX; i++)
                out[i] = (unsigned char) v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
        if (v[i])
                memcpy(out + i, "...", 3), i += 3;
        out[i] = 0;
}

static void parser_fail(parser *p, int r, const char *fmt, ...) _printf_(3, 4);
static int config_add(char ***l, size_t *n, const char *fmt, va_list ap) _printf_(3, 0);

/* The first error stops loading, except in check mode: there every problem
 * goes to config->errors (up to TOKEND_CONFIG_MAX_ERRORS) and the caller
 * reads on; only -ENOMEM stops. */
static void parser_fail(parser *p, int r, const char *fmt, ...) {
        va_list ap;
        if (p->error || p->error_r)
                return;
        va_start(ap, fmt);
        if (p->check && r != -ENOMEM) {
                if (p->config->n_errors < TOKEND_CONFIG_MAX_ERRORS &&
                    config_add(&p->config->errors, &p->config->n_errors, fmt, ap) < 0)
                        p->error_r = -ENOMEM;
                va_end(ap);
                return;
        }
        if (vasprintf(&p->error, fmt, ap) < 0) {
                p->error = NULL;
                r = -ENOMEM;
        }
        va_end(ap);
        p->error_line = p->line;
        p->error_r = r;
}

static int config_add(char ***l, size_t *n, const char *fmt, va_list ap) {
        char *s;
        if (vasprintf(&s, fmt, ap) < 0)
                return -ENOMEM;
        if (strv_push(l, n, s) < 0) {
                free(s);
                return -ENOMEM;
        }
        return 0;
}

static int config_warn(tokend_config *c, const char *fmt, ...) _printf_(2, 3);
static int config_warn(tokend_config *c, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = config_add(&c->warnings, &c->n_warnings, fmt, ap);
        va_end(ap);
        return r;
}

/* inih reader: one line per call, so p->line is the line inih reports.
 * Leading blanks are dropped, which turns off inih's multi-line values (an
 * indented line would otherwise silently extend the previous key). */
static char *reader(char *str, int num, void *userdata) {
        parser *p = userdata;

        if (p->error || p->error_r)
                return NULL;
        ssize_t n = getline(&p->buf, &p->buf_size, p->f);
        if (n < 0)
                return NULL;
        p->line++;
        if (strlen(p->buf) != (size_t) n) {
                parser_fail(p, -EINVAL, "%s:%u: contains a NUL byte", p->file, p->line);
                return NULL;
        }
        const char *s = p->buf + strspn(p->buf, " \t");
        if (s[0] == '#' || s[0] == ';')
                s = "#"; /* a comment may be of any length */
        size_t len = strlen(s);
        if (len > 0 && s[len - 1] == '\n')
                len--;
        if (len + 2 > (size_t) num) {
                parser_fail(p, -EINVAL, "%s:%u: line too long (at most %d characters)", p->file, p->line, num - 2);
                return NULL;
        }
        memcpy(str, s, len);
        str[len] = '\n';
        str[len + 1] = 0;
        return str;
}

static int handler(void *userdata, const char *section, const char *name, const char *value) {
        parser *p = userdata;
        char shown[SHOWN_VALUE_MAX + 4];
        const char *reason = NULL;

        if (p->error || p->error_r)
                return 1;

        bool section_known = false;
        const key *k = key_find(section, name, &section_known);
        if (!k) {
                char hint[160];
                suggest(section, name, section_known, hint);
                const char *what = section_known ? "key" : "section";
                if (p->check) {
                        parser_fail(p, -EINVAL, "%s:%u: unknown %s [%s] %s%s", p->file, p->line, what, section,
                                    name, hint);
                        return 1;
                }
                int r = config_warn(p->config, "%s:%u: unknown %s [%s] %s%s, ignoring", p->file, p->line, what,
                                    section, name, hint);
                if (r < 0)
                        p->error_r = r;
                return 1;
        }

        shown_value(value, shown);
        /* An empty assignment resets the key to its default. */
        int r = apply_value(p->config, k, *value ? value : k->def, &reason);
        if (r == -ENOMEM) {
                p->error_r = r;
                return 0;
        }
        if (r < 0) {
                if (r == -ERANGE)
                        parser_fail(p, -EINVAL, "%s:%u: [%s] %s=%s: out of range (%s)", p->file, p->line,
                                    k->section, k->name, shown, k->range ?: "invalid");
                else
                        parser_fail(p, r, "%s:%u: [%s] %s=%s: %s", p->file, p->line, k->section, k->name, shown,
                                    reason ?: "invalid value");
                return p->check ? 1 : 0; /* check mode reads on; inih's own count is for syntax errors */
        }
        size_t i = (size_t) (k - keys);
        free(p->where[i]);
        if (asprintf(&p->where[i], "%s:%u: [%s] %s=%s", p->file, p->line, k->section, k->name, shown) < 0) {
                p->where[i] = NULL;
                p->error_r = -ENOMEM;
        }
        return 1;
}

/* Open a configuration file: regular files (or /dev/null, "masked") up to
 * the size cap. Returns 0 and *ret, or -errno with *reason. */
static int open_config(const char *path, FILE **ret, const char **reason) {
        struct stat st;

        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                *reason = NULL;
                return -errno;
        }
        if (fstat(fd, &st) < 0) {
                *reason = NULL;
                return -errno;
        }
        if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))
                ; /* /dev/null: empty */
        else if (!S_ISREG(st.st_mode)) {
                *reason = "not a regular file";
                return -EINVAL;
        } else if ((uint64_t) st.st_size > TOKEND_CONFIG_MAX_FILE_BYTES) {
                *reason = "file too large (at most 1 MiB)";
                return -EINVAL;
        }
        FILE *f = fdopen(fd, "re");
        if (!f) {
                *reason = NULL;
                return -errno;
        }
        fd = -1;
        *ret = f;
        return 0;
}

/* Parse one file into p->config. Missing files: -ENOENT without a message. */
static int parse_file(parser *p, const char *path) {
        const char *reason = NULL;
        FILE *f = NULL;

        int r = open_config(path, &f, &reason);
        if (r == -ENOENT && !reason)
                return r;
        if (r < 0) {
                if (reason)
                        parser_fail(p, r, "%s: %s", path, reason);
                else {
                        errno = -r;
                        parser_fail(p, r, "%s: cannot open: %m", path);
                }
                return r;
        }

        p->file = path;
        p->f = f;
        p->line = 0;
        /* A file that cannot grow past the cap is read line by line with
         * getline(); inih sees at most its own line length. */
        r = ini_parse_stream(reader, p, handler, p);
        fclose(f);
        p->f = NULL;

        if (p->error_r == -ENOMEM)
                return -ENOMEM;
        if (r == -2)
                return -ENOMEM;
        if (r > 0 && p->check)
                parser_fail(p, -EINVAL, "%s:%d: syntax error (expected [Section] or Key=value)", path, r);
        else if (r > 0 && (!p->error || (unsigned) r < p->error_line)) {
                free(p->error);
                p->error = NULL;
                p->error_r = 0;
                p->line = (unsigned) r;
                parser_fail(p, -EINVAL, "%s:%d: syntax error (expected [Section] or Key=value)", path, r);
        }
        return p->error_r;
}

static int dropin_compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static bool dropin_name(const char *n) {
        size_t len = strlen(n);
        return n[0] != '.' && len > 5 && streq(n + len - 5, ".conf");
}

static int parse_dropins(parser *p, const char *dir) {
        _cleanup_(strv_freep) char **names = NULL;
        size_t n = 0;
        int r = 0;

        DIR *d = opendir(dir);
        if (!d) {
                if (errno == ENOENT || errno == ENOTDIR)
                        return 0;
                r = -errno;
                parser_fail(p, r, "%s: cannot open directory: %m", dir);
                return r;
        }
        for (struct dirent *de; (errno = 0, de = readdir(d));) {
                if (!dropin_name(de->d_name))
                        continue;
                if (n >= TOKEND_CONFIG_MAX_DROPINS) {
                        r = -E2BIG;
                        parser_fail(p, r, "%s: too many drop-ins (at most %u)", dir, TOKEND_CONFIG_MAX_DROPINS);
                        break;
                }
                char *s = strdup(de->d_name);
                if (!s || strv_push(&names, &n, s) < 0) {
                        free(s);
                        r = -ENOMEM;
                        break;
                }
        }
        if (r == 0 && errno != 0) {
                r = -errno;
                parser_fail(p, r, "%s: cannot read directory: %m", dir);
        }
        closedir(d);
        if (r < 0)
                return r;

        if (n > 0)
                qsort(names, n, sizeof(char *), dropin_compare);
        for (size_t i = 0; i < n; i++) {
                _cleanup_(freep) char *path = NULL;
                if (asprintf(&path, "%s/%s", dir, names[i]) < 0)
                        return -ENOMEM;
                r = parse_file(p, path);
                if (r == -ENOENT && !p->error)
                        continue; /* removed while we read the directory */
                if (r < 0 && (!p->check || r == -ENOMEM))
                        return r;
        }
        return 0;
}

/* Rules spanning two keys, checked once every file is read. */
static int check_cross(parser *p) {
        tokend_config *c = p->config;

        if (!c->allowed_audiences)
                return 0;
        for (char **a = c->default_audience; a && *a; a++) {
                if (strv_contains(c->allowed_audiences, *a))
                        continue;
                size_t def = (size_t) (key_find("Token", "DefaultAudience", NULL) - keys),
                       allowed = (size_t) (key_find("Token", "AllowedAudiences", NULL) - keys);
                const char *where = p->where[def] ?: p->where[allowed] ?: "[Token]";
                parser_fail(p, -EINVAL, "%s: default audience '%s' is not in [Token] AllowedAudiences", where, *a);
                return -EINVAL;
        }
        return 0;
}

/* ------------------------------------------------------------ public API */

void tokend_config_free(tokend_config *c) {
        if (!c)
                return;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                switch (keys[i].kind) {
                case K_STRING:
                        free(*(char **) ((uint8_t *) c + keys[i].offset));
                        break;
                case K_AUDIENCES:
                case K_AUDIENCES_OR_NONE:
                        strv_free(*(char ***) ((uint8_t *) c + keys[i].offset));
                        break;
                default:
                        break;
                }
        free(c->bus_address);
        strv_free(c->warnings);
        strv_free(c->errors);
        free(c);
}

int tokend_config_new_default(tokend_config **ret) {
        _cleanup_(tokend_config_freep) tokend_config *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const char *reason = NULL;
                int r = apply_value(c, &keys[i], keys[i].def, &reason);
                if (r < 0)
                        return r; /* only -ENOMEM: the defaults are valid (tested) */
        }
        *ret = TAKE_PTR(c);
        return 0;
}

int tokend_config_set_bus(tokend_config *c, const char *value) {
        const char *reason = NULL;
        if (!c || !value)
                return -EINVAL;
        return apply_bus(c, value, &reason);
}

int tokend_config_set_state_dir(tokend_config *c, const char *dir) {
        _cleanup_(freep) char *abs = NULL, *db = NULL, *keydir = NULL;

        if (!c || !dir || !*dir)
                return -EINVAL;
        if (dir[0] != '/') {
                _cleanup_(freep) char *cwd = getcwd(NULL, 0);
                if (!cwd)
                        return -errno;
                if (asprintf(&abs, "%s/%s", cwd, dir) < 0)
                        return -ENOMEM;
                dir = abs;
        }
        if (asprintf(&db, "%s/tokend.db", dir) < 0 || asprintf(&keydir, "%s/keys", dir) < 0)
                return -ENOMEM;
        free(c->database);
        c->database = TAKE_PTR(db);
        free(c->keys_directory);
        c->keys_directory = TAKE_PTR(keydir);
        return 0;
}

bool tokend_config_audience_allowed(const tokend_config *c, const char *aud) {
        if (!c || !aud)
                return false;
        return !c->allowed_audiences || strv_contains(c->allowed_audiences, aud);
}

bool tokend_config_audience_step_up(const tokend_config *c, const char *aud) {
        if (!c || !aud)
                return false;
        for (char **s = c->step_up_audiences; s && *s; s++) {
                size_t n = strlen(*s);
                if (strncmp(aud, *s, n) == 0 && (aud[n] == 0 || (aud[n] == '@' && !strchr(*s, '@'))))
                        return true;
        }
        return false;
}

static int load(const char *path, const char *state_dir, bool check, tokend_config **ret, char **ret_error) {
        _cleanup_(tokend_config_freep) tokend_config *c = NULL;
        _cleanup_(freep) char *dropin_dir = NULL;
        parser p = { .check = check };
        int r;

        r = tokend_config_new_default(&c);
        if (r < 0)
                return r;
        p.config = c;

        bool explicit = path;
        if (!path)
                path = TOKEND_CONFIG_PATH;

        r = parse_file(&p, path);
        if (r == -ENOENT && !p.error) {
                r = explicit ? config_warn(c, "%s: not found, using built-in defaults", path) : 0;
        }
        if (check && r < 0 && r != -ENOMEM)
                r = 0; /* recorded in c->errors; read the drop-ins too */
        if (r >= 0) {
                if (asprintf(&dropin_dir, "%s.d", path) < 0)
                        r = -ENOMEM;
                else
                        r = parse_dropins(&p, dropin_dir);
        }
        if (check && r < 0 && r != -ENOMEM)
                r = 0;
        if (r >= 0)
                r = check_cross(&p);
        if (check && r < 0 && r != -ENOMEM)
                r = 0;
        if (r >= 0 && state_dir)
                r = tokend_config_set_state_dir(c, state_dir);
        if (r >= 0 && p.error_r < 0)
                r = p.error_r;

        free(p.buf);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                free(p.where[i]);
        if (r < 0) {
                if (ret_error && p.error)
                        *ret_error = TAKE_PTR(p.error);
                free(p.error);
                return r;
        }
        free(p.error);
        *ret = TAKE_PTR(c);
        return 0;
}

int tokend_config_load(const char *path, const char *state_dir, tokend_config **ret, char **ret_error) {
        return load(path, state_dir, false, ret, ret_error);
}

int tokend_config_check(const char *path, const char *state_dir, tokend_config **ret) {
        return load(path, state_dir, true, ret, NULL);
}

/* One key's effective value as it would be written in the file. */
static int format_value(const tokend_config *c, const key *k, char **ret) {
        const void *field = (const uint8_t *) c + k->offset;
        char buf[TIMESPAN_FORMAT_MAX];

        switch (k->kind) {
        case K_STRING: {
                const char *v = *(char *const *) field;
                *ret = strdup(v ?: "");
                break;
        }
        case K_TIMESPAN:
                *ret = strdup(timespan_format(*(const int64_t *) field, buf, sizeof buf));
                break;
        case K_UNSIGNED:
                return asprintf(ret, "%u", *(const unsigned *) field) < 0 ? -ENOMEM : 0;
        case K_SIZE:
                return asprintf(ret, "%zu", *(const size_t *) field) < 0 ? -ENOMEM : 0;
        case K_BOOL:
                *ret = strdup(*(const bool *) field ? "yes" : "no");
                break;
        case K_MODE:
                return asprintf(ret, "%04o", (unsigned) *(const mode_t *) field) < 0 ? -ENOMEM : 0;
        case K_ALG:
                *ret = strdup(jose_alg_to_string(*(const jose_alg *) field));
                break;
        case K_AUDIENCES:
        case K_AUDIENCES_OR_NONE: {
                char *const *l = *(char **const *) field;
                size_t len = 0;
                if (!l) {
                        *ret = strdup(k->kind == K_AUDIENCES_OR_NONE ? "none" : "*");
                        break;
                }
                for (size_t i = 0; l[i]; i++)
                        len += strlen(l[i]) + 1;
                char *s = calloc(1, len + 1);
                if (!s)
                        return -ENOMEM;
                for (size_t i = 0; l[i]; i++) {
                        if (i > 0)
                                strcat(s, " ");
                        strcat(s, l[i]);
                }
                *ret = s;
                break;
        }
        case K_BUS:
                *ret = strdup(c->bus == TOKEND_BUS_SYSTEM    ? "system"
                              : c->bus == TOKEND_BUS_SESSION ? "session"
                              : c->bus == TOKEND_BUS_NONE    ? "none"
                                                             : c->bus_address);
                break;
        }
        return *ret ? 0 : -ENOMEM;
}

int tokend_config_dump(const tokend_config *c, FILE *f) {
        const char *section = NULL;

        if (!c || !f)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                _cleanup_(freep) char *v = NULL;
                int r = format_value(c, &keys[i], &v);
                if (r < 0)
                        return r;
                if (!section || !streq(section, keys[i].section)) {
                        fprintf(f, "%s[%s]\n", section ? "\n" : "", keys[i].section);
                        section = keys[i].section;
                }
                fprintf(f, "%s=%s\n", keys[i].name, v);
        }
        return ferror(f) ? -EIO : 0;
}
