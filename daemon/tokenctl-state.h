/* SPDX-License-Identifier: MIT */
/* tokenctl's local state under $XDG_STATE_HOME/tokend/: the credentials of
 * this device (device id, refresh token, device key; 0600) and the cached
 * access token per audience (0600), written atomically (temp file, fsync,
 * rename), guarded by an exclusive flock on "lock". Files that others could
 * read, or that someone else owns, are refused. Errors are printed here,
 * with what to do; functions return 0 or -errno. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "tokenctl-util.h"

#define TC_CREDENTIALS_FILE "credentials"
#define TC_TOKENS_FILE "access-tokens"
#define TC_LOCK_FILE "lock"
#define TC_STATE_FILE_MAX (64U * 1024U)
#define TC_DEFAULT_AUDIENCE_KEY "(default)" /* not a valid audience name */

typedef struct tc_creds {
        char *user;
        int64_t uid;
        char *device_id;
        char *device_name;        /* may be NULL */
        char *refresh_token;      /* secret */
        int64_t refresh_expires_at; /* unix time; 0 = never */
        char *device_key_pem;     /* secret: PKCS#8 PEM of the Ed25519 device key, NULL if none */
        int64_t created;
} tc_creds;

void tc_creds_done(tc_creds *c);

/* $ENV if it is an absolute path, else ~/FALLBACK (XDG base directories),
 * malloc'ed. Returns 0, -ENOENT (no home), -ENOMEM. */
int tc_xdg_dir(const char *env, const char *fallback, char **ret);

/* The state directory ($XDG_STATE_HOME/tokend, else ~/.local/state/tokend;
 * with an issuer its subdirectory issuers/ESCAPED-URL), malloc'ed. With create, missing directories are made 0700. The tokend
 * directory must be ours and not writable by group/others (-EPERM).
 * Returns 0, -ENOENT (missing, !create), -EPERM, -errno. */
int tc_state_dir(const tc_ctx *ctx, bool create, char **ret);

/* tc_state_dir(ctx, false, ret), but silent when there is no state
 * directory at all (-ENOENT): for commands that only mark this machine's
 * login if there is one (devices). Other problems are printed. */
int tc_state_dir_if_any(const tc_ctx *ctx, char **ret);

/* Take the exclusive lock of the state directory (blocks). Returns the
 * lock fd (close it to unlock) or -errno. */
int tc_state_lock(const tc_ctx *ctx, const char *dir);

/* Load the credentials. -ENOENT: not logged in (message printed: "run
 * tokenctl login"); -EPERM: the file is readable by others or not ours;
 * -EBADMSG: malformed. */
int tc_creds_load(const tc_ctx *ctx, const char *dir, tc_creds *ret);
int tc_creds_save(const tc_ctx *ctx, const char *dir, const tc_creds *c);

/* The token cache: a JSON object { AUDIENCE_KEY: {access_token,
 * expires_at, fetched_at, device_id} }. A missing file gives an empty
 * object. New reference in *ret. */
int tc_tokens_load(const tc_ctx *ctx, const char *dir, json_t **ret);
int tc_tokens_save(const tc_ctx *ctx, const char *dir, const json_t *tokens);

/* Remove the credentials and the token cache. Returns 0 or -errno. */
int tc_state_remove(const tc_ctx *ctx, const char *dir);
