/* SPDX-License-Identifier: MIT */
/* tokend's configuration: /etc/tokend/tokend.conf then the drop-ins
 * tokend.conf.d/NAME.conf
 * (INI, parsed with inih; later files win), every key with a built-in default
 * so an empty or missing file works. Values are validated here; the caller
 * applies command-line overrides to the plain fields and does the logging. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "jose-key.h"
#include "macro.h"

#define TOKEND_CONFIG_PATH "/etc/tokend/tokend.conf" /* drop-ins: PATH ".d/NAME.conf" */
#define TOKEND_CONFIG_MAX_FILE_BYTES (1024U * 1024U) /* per file */
#define TOKEND_CONFIG_MAX_DROPINS 256U
#define TOKEND_CONFIG_MAX_ERRORS 100U /* problems one tokend_config_check() lists */
/* An audience is [A-Za-z0-9_.@-]{1,128} with at most one '@': SERVICE or
 * SERVICE@HOST (a 64-character host name fits). */
#define TOKEND_AUDIENCE_MAX 128U
#define TOKEND_AUDIENCES_MAX 32U /* entries in one audience list */
#define TOKEND_LISTEN_MAX 16U /* [Network] Listen= addresses */
#define TOKEND_LISTEN_WORD_MAX 64U /* "[v6 address]:port" */

typedef enum tokend_bus {
        TOKEND_BUS_SYSTEM,
        TOKEND_BUS_SESSION,
        TOKEND_BUS_NONE,
        TOKEND_BUS_ADDRESS, /* bus_address holds a D-Bus address */
} tokend_bus;

/* All strings are malloc'ed and owned by the struct (free with
 * tokend_config_free()). To override a string field, free() it and store a
 * strdup()'ed value. Time spans are seconds. */
typedef struct tokend_config {
        /* [Token] */
        char *issuer;                    /* "tokend"; never empty */
        int64_t access_token_lifetime;   /* 15min; always > 0 */
        int64_t refresh_token_lifetime;  /* 7d; 0 = refresh tokens never expire */
        jose_alg algorithm;              /* EdDSA; never JOSE_ALG_INVALID */
        char **default_audience;         /* {"sshd","login","su",NULL}; ≥ 1 entry */
        char **allowed_audiences;        /* NULL = any ("*"); else NULL-terminated, ≥ 1 entry */
        size_t max_length;               /* 511; 128..8192 */
        int64_t clock_skew;              /* 30s; 0..1h */
        int64_t refresh_reuse_grace;     /* 0 (off); 0..5min */
        char **step_up_audiences;        /* {"sudo",NULL}; NULL = none ("none") */
        int64_t step_up_lifetime;        /* 5min; 1s..1d: how recent the password login must be */

        /* [Keys] */
        char *keys_directory;            /* "/var/lib/tokend/keys"; absolute */
        char *keys_active;               /* NULL = newest key; else a file name in the directory or a kid, no '/' */
        char *keys_passphrase_file;      /* NULL = none; else an absolute path */
        int64_t keys_publish_before_signing; /* -1 (unset): 10min on a shared (PostgreSQL) store, 0 on
                                          * SQLite (tokend-jwks.c); else 0..1d */

        /* [Store] */
        char *database;                  /* "/var/lib/tokend/tokend.db"; absolute */

        /* [Socket] */
        char *socket_path;               /* "/run/tokend/tokend.sock"; absolute, < 108 bytes (sun_path) */
        mode_t socket_mode;              /* 0666; ≤ 0777 */

        /* [Bus] */
        tokend_bus bus;                  /* TOKEND_BUS_SYSTEM */
        char *bus_address;               /* set only when bus == TOKEND_BUS_ADDRESS */

        /* [Login] */
        char *pam_service;               /* "tokend" */
        bool allow_peer_login;           /* yes */
        char *admin_group;               /* "tokend-admin" */
        unsigned max_failures;           /* 5; 1..1000000 */
        int64_t failure_window;          /* 15min; > 0 */
        int64_t failure_delay;           /* 1s; 0..10s: a failed password login is answered no sooner */
        unsigned max_devices_per_user;   /* 100; 1..1000000: enrolled devices (rows) one user may have */
        unsigned peer_login_rate;        /* 10; 1..1000000: peer logins per minute per non-root caller uid */

        /* [Limits] */
        size_t max_request_bytes;        /* 65536; 1024..16MiB */
        int64_t request_timeout;         /* 10s; 1s..1h */
        unsigned max_connections;        /* 1024; 1..65536 */
        unsigned max_connections_per_user;  /* 64; 1..65536: per non-root uid */
        unsigned reserved_root_connections; /* 64; 0..32768: of MaxConnections, for uid 0 only (at most half) */

        /* [API] */
        bool enable_docs;                /* no */
        char *docs_directory;            /* /usr/share/tokend/swagger-ui: the API explorer's files */

        /* [Network]: the HTTPS listener (tokend-network.c) */
        char *network_listen;            /* NULL = none; else ADDRESS:PORT words (tokend_listen_parse) */
        char *network_certificate;       /* NULL; absolute path of a PEM certificate chain */
        char *network_private_key;       /* NULL; absolute path of its PEM private key (mode checked) */
        char *network_client_ca;         /* NULL; absolute path of PEM CA certificates for client certificates */
        char *network_public_url;        /* NULL; the issuer URL: becomes [Token] Issuer unless that is set */
        bool network_allow_plain_loopback; /* no: plain HTTP only when every Listen= address is loopback */

        /* [Verifier]: this tokend verifies for an issuer (tokend-verifier.c) */
        char *verifier_issuer;           /* NULL = not a verifier; else the issuer URL (its iss, where to fetch) */
        char *verifier_unix_socket;      /* NULL; else reach the issuer over this AF_UNIX socket (plain HTTP) */
        char *verifier_ca_file;          /* NULL = the system CAs; else PEM CA certificates of the issuer */
        char *verifier_certificate;      /* NULL; client certificate (PEM) for the issuer's ClientCA= */
        char *verifier_private_key;      /* NULL; its key */
        char *verifier_host_names;       /* NULL = the host name and its FQDN; else names, space-separated */
        bool verifier_accept_unscoped;   /* no: an audience without @HOST is refused */
        int64_t verifier_max_staleness;  /* 60s; 1s..1d */
        bool verifier_best_effort;       /* Policy=strict (false) | best_effort (true) */

        /* Non-fatal problems found while loading ("FILE:LINE: unknown key
         * [Token] Foo, ignoring"), for the caller to log. NULL-terminated;
         * NULL when there are none. */
        char **warnings;
        size_t n_warnings;

        /* Only from tokend_config_check(): every problem found ("FILE:LINE:
         * [Section] Key=value: reason", "FILE:LINE: unknown key [Token] Foo
         * (did you mean Bar?)"), NULL-terminated; NULL when the
         * configuration is good. */
        char **errors;
        size_t n_errors;
} tokend_config;

/* Built-in defaults only (what an empty file gives). Returns 0 or -ENOMEM. */
int tokend_config_new_default(tokend_config **ret);

/* Load defaults, then path (NULL → TOKEND_CONFIG_PATH), then every regular
 * "NAME.conf" file in path".d/" in lexical (strcmp) order; a later assignment
 * wins and an empty value ("Key=") resets the key to its default. A missing
 * main file or drop-in directory is fine (defaults; a warning is recorded
 * when path was given explicitly). If state_dir is non-NULL, the database
 * becomes STATE_DIR/tokend.db (unless it is a postgresql:// one) and the key
 * directory STATE_DIR/keys after loading (see tokend_config_set_state_dir()).
 * Returns 0 and *ret (free with tokend_config_free()); on failure returns
 * -EINVAL (invalid value, syntax error, over-long line, file too large or not
 * a regular file), -errno from open/read (e.g. -EACCES for an unreadable file)
 * or -ENOMEM, and sets *ret_error (if ret_error is non-NULL) to a malloc'ed
 * message "FILE:LINE: [Section] Key=value: reason" (or "FILE: reason")
 * owned by the caller; *ret is untouched. Files are opened
 * O_RDONLY|O_CLOEXEC|O_NOCTTY (symlinks are followed: admins link configs)
 * and capped at TOKEND_CONFIG_MAX_FILE_BYTES. */
_warn_unused_result_ int tokend_config_load(const char *path, const char *state_dir,
                                            tokend_config **ret, char **ret_error);

/* For tokend --check-config: load like tokend_config_load() but read on past
 * every problem (the rest of a file after a bad value, the next drop-in after
 * an unreadable or broken one) so one run names them all, and count unknown
 * sections and keys as problems, not warnings. Returns 0 and *ret with
 * (*ret)->errors listing the problems (NULL when there are none; at most
 * TOKEND_CONFIG_MAX_ERRORS); -ENOMEM only. The values of a configuration with
 * errors are the defaults and the good assignments: only for messages. */
_warn_unused_result_ int tokend_config_check(const char *path, const char *state_dir, tokend_config **ret);

/* Write the effective configuration to f in tokend.conf form: every section
 * and key in the order tokend.conf(5) lists them, with values that load back
 * to the same configuration ("Key=" for an unset optional key). Returns 0,
 * -EIO (write error), -ENOMEM. */
int tokend_config_dump(const tokend_config *c, FILE *f);

/* Point the key directory and a SQLite database (not a postgresql:// one)
 * into dir (made absolute against the current directory if relative).
 * Returns 0, -EINVAL (empty), -ENOMEM; the config is unchanged on failure. */
int tokend_config_set_state_dir(tokend_config *c, const char *dir);

/* Apply a --bus value: "system", "session", "none" or a D-Bus address
 * ("unix:path=…", "tcp:…": TRANSPORT ':' …). Returns 0, -EINVAL, -ENOMEM;
 * the config is unchanged on failure. */
int tokend_config_set_bus(tokend_config *c, const char *value);

/* Whether aud may appear in an issued token: true when AllowedAudiences=*,
 * aud is listed (exact match), or a listed pattern SERVICE@* matches it
 * (aud is SERVICE@HOST for any HOST). */
bool tokend_config_audience_allowed(const tokend_config *c, const char *aud);

/* Whether aud is a step-up audience ([Token] StepUpAudiences): one listed,
 * or SERVICE@HOST for a listed SERVICE. Such an audience is granted only
 * after a recent password login (see tokend-service.c). */
bool tokend_config_audience_step_up(const tokend_config *c, const char *aud);

/* Whether s is a syntactically valid audience name: 1-TOKEND_AUDIENCE_MAX
 * of [A-Za-z0-9_.@-], at most one '@', neither first nor last. */
bool tokend_audience_name_valid(const char *s);

/* One [Network] Listen= word: "A.B.C.D:PORT" or "[IPv6]:PORT", numeric
 * only (no host names: what is bound must not depend on DNS), port 1-65535.
 * Returns 0 and *ret and *ret_len, or -EINVAL. */
int tokend_listen_parse(const char *word, struct sockaddr_storage *ret, socklen_t *ret_len);

/* Whether sa is in 127.0.0.0 (/8) or is ::1. */
bool tokend_sockaddr_is_loopback(const struct sockaddr_storage *sa);

/* Free everything. Accepts NULL. */
void tokend_config_free(tokend_config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(tokend_config *, tokend_config_free);
