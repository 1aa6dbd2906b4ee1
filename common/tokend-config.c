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

#include "strv.h"
#include "tokend-config-keys.h"

#define SHOWN_VALUE_MAX 80U /* how much of a bad value an error message quotes */

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
        char *where[ELEMENTSOF(config_keys)]; /* "FILE:LINE: [S] K=v" of the last assignment */
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
        const config_key *k = config_key_find(section, name, &section_known);
        if (!k) {
                char hint[160];
                config_suggest(section, name, section_known, hint);
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
        int r = config_apply_value(p->config, k, *value ? value : k->def, &reason);
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
        size_t i = (size_t) (k - config_keys);
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

/* Where the last assignment of [section] name was made, or fallback. */
static const char *where_of(const parser *p, const char *section, const char *name, const char *fallback) {
        const char *w = p->where[(size_t) (config_key_find(section, name, NULL) - config_keys)];
        return w ?: fallback;
}

/* [Network]: TLS unless every address is loopback and plain HTTP is asked
 * for; PublicURL= is the issuer unless [Token] Issuer= says otherwise. */
static int check_network(parser *p) {
        tokend_config *c = p->config;
        const char *where = where_of(p, "Network", "Listen", "[Network]");

        if (c->network_public_url) {
                const char *wi = p->where[(size_t) (config_key_find("Token", "Issuer", NULL) - config_keys)];
                if (wi && !streq(c->issuer, c->network_public_url)) {
                        parser_fail(p, -EINVAL, "%s: differs from [Network] PublicURL=%s (the issuer URL); set one",
                                    wi, c->network_public_url);
                        return -EINVAL;
                }
                char *s = strdup(c->network_public_url);
                if (!s)
                        return -ENOMEM;
                free(c->issuer);
                c->issuer = s;
        }
        if (!!c->network_certificate != !!c->network_private_key) {
                parser_fail(p, -EINVAL, "%s: [Network] Certificate= and PrivateKey= go together",
                            where_of(p, "Network", c->network_certificate ? "Certificate" : "PrivateKey", where));
                return -EINVAL;
        }
        if (c->network_client_ca && !c->network_certificate) {
                parser_fail(p, -EINVAL, "%s: [Network] ClientCA= needs Certificate= and PrivateKey= (TLS)",
                            where_of(p, "Network", "ClientCA", where));
                return -EINVAL;
        }
        if (!c->network_listen || c->network_certificate)
                return 0;
        bool loopback = true;
        for (const char *w = c->network_listen + strspn(c->network_listen, " \t"); *w; w += strspn(w, " \t")) {
                char word[TOKEND_LISTEN_WORD_MAX + 1];
                size_t l = strcspn(w, " \t");
                struct sockaddr_storage sa;
                socklen_t len;
                snprintf(word, sizeof word, "%.*s", (int) l, w);
                w += l;
                if (tokend_listen_parse(word, &sa, &len) < 0 || !tokend_sockaddr_is_loopback(&sa))
                        loopback = false;
        }
        if (!loopback || !c->network_allow_plain_loopback) {
                parser_fail(p, -EINVAL, "%s: the network listener needs [Network] Certificate= and PrivateKey= "
                            "(plain HTTP only with AllowPlainLoopback=yes and loopback addresses only)", where);
                return -EINVAL;
        }
        return 0;
}

/* [Verifier]: Issuer= is the iss tokens must carry; a verifier issues
 * nothing, so it has no network listener; client certificate and key go
 * together. */
static int check_verifier(parser *p) {
        tokend_config *c = p->config;
        const char *where = where_of(p, "Verifier", "Issuer", "[Verifier]");
        if (!c->verifier_issuer)
                return 0;
        if (!!c->verifier_certificate != !!c->verifier_private_key) {
                parser_fail(p, -EINVAL, "%s: [Verifier] Certificate= and PrivateKey= go together",
                            where_of(p, "Verifier", c->verifier_certificate ? "Certificate" : "PrivateKey", where));
                return -EINVAL;
        }
        if (c->network_listen) {
                parser_fail(p, -EINVAL, "%s: a verifier ([Verifier] Issuer=) issues no tokens and has no [Network] "
                            "Listen=", where);
                return -EINVAL;
        }
        char *s = strdup(c->verifier_issuer);
        if (!s)
                return -ENOMEM;
        free(c->issuer);
        c->issuer = s;
        return 0;
}

/* Rules spanning two keys, checked once every file is read. */
static int check_cross(parser *p) {
        tokend_config *c = p->config;

        int r = check_network(p);
        if (r >= 0)
                r = check_verifier(p);
        if (r < 0)
                return r;
        if (!c->allowed_audiences)
                return 0;
        for (char **a = c->default_audience; a && *a; a++) {
                if (tokend_config_audience_allowed(c, *a))
                        continue;
                size_t def = (size_t) (config_key_find("Token", "DefaultAudience", NULL) - config_keys),
                       allowed = (size_t) (config_key_find("Token", "AllowedAudiences", NULL) - config_keys);
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
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                switch (config_keys[i].kind) {
                case K_STRING:
                        free(*(char **) ((uint8_t *) c + config_keys[i].offset));
                        break;
                case K_AUDIENCES:
                case K_AUDIENCES_OR_NONE:
                        strv_free(*(char ***) ((uint8_t *) c + config_keys[i].offset));
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
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                const char *reason = NULL;
                int r = config_apply_value(c, &config_keys[i], config_keys[i].def, &reason);
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
        return config_apply_bus(c, value, &reason);
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
        /* A PostgreSQL database is not a file of the state directory. */
        if (!c->database || (strncmp(c->database, "postgresql://", 13) != 0 &&
                             strncmp(c->database, "postgres://", 11) != 0)) {
                free(c->database);
                c->database = TAKE_PTR(db);
        }
        free(c->keys_directory);
        c->keys_directory = TAKE_PTR(keydir);
        return 0;
}

bool tokend_config_audience_allowed(const tokend_config *c, const char *aud) {
        if (!c || !aud)
                return false;
        if (!c->allowed_audiences || strv_contains(c->allowed_audiences, aud))
                return true;
        const char *at = strchr(aud, '@');
        for (char **a = c->allowed_audiences; at && *a; a++) {
                size_t n = strlen(*a);
                if (n >= 2 && streq(*a + n - 2, "@*") && (size_t) (at - aud) == n - 2 && strncmp(aud, *a, n - 2) == 0)
                        return true;
        }
        return false;
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
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
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

