/* SPDX-License-Identifier: MIT */
/* The key directory: every *.pem in it is a PKCS#8 private key that
 * verifies tokens; the one named by [Keys] Active= (file name, with or
 * without .pem, or kid) — else the newest by modification time — signs.
 * Shared by tokend (load, first-start generation) and tokenctl (keys …). */
#pragma once

#include <stdbool.h>

#include "jose-key.h"

typedef struct keydir {
        jose_keyset *keys;    /* every key, for verification */
        const jose_key *active; /* borrowed from keys: signs new tokens */
        char *active_file;    /* file name of the active key */
} keydir;

/* Read the passphrase for encrypted keys: passphrase_file if set, else
 * $CREDENTIALS_DIRECTORY/tokend-passphrase (systemd LoadCredential=), else
 * $TOKEND_PASSPHRASE, else none (*ret = NULL). Trailing newline stripped;
 * release with erase_and_free(). Returns 0 or -errno (file set but
 * unreadable, over 4 KiB). */
int keydir_passphrase(const char *passphrase_file, char **ret);

/* Load every *.pem of dir. Files that are not regular (symlinks are not
 * followed) are skipped. A key that fails to load fails the whole load,
 * with *ret_error naming the file and reason (malloc'ed). No key at all →
 * -ENOENT. active may be NULL/"" (newest). Returns 0 or -errno. */
int keydir_load(const char *dir, const char *active, const char *passphrase, keydir *ret, char **ret_error);

/* Generate a key of alg into dir (created 0700 if missing) as
 * "<unix time>-<kid>.pem", mode 0600, encrypted if passphrase. *ret_path
 * (optional) receives the path. Returns 0 or -errno. */
int keydir_generate(const char *dir, jose_alg alg, const char *passphrase, char **ret_path);

void keydir_done(keydir *kd);
