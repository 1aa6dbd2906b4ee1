/* SPDX-License-Identifier: MIT */
/* The key directory: every *.pem in it is a PKCS#8 private key that
 * verifies tokens; the one named by [Keys] Active= (file name, with or
 * without .pem, or kid) — else the newest by modification time — signs.
 * Shared by tokend (load, first-start generation) and tokenctl (keys …). */
#pragma once

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "jose-key.h"
#include "jose-keyset.h"

typedef struct keydir {
        jose_keyset *keys;    /* every key, for verification */
        const jose_key *active; /* borrowed from keys: signs new tokens */
        char *active_file;    /* file name of the active key */
} keydir;

/* Read the passphrase for encrypted keys: passphrase_file if set, else
 * $CREDENTIALS_DIRECTORY/tokend-passphrase (systemd LoadCredential=), else
 * fallback (tokend: what keydir_take_env_passphrase() took; tokenctl:
 * $TOKEND_PASSPHRASE; may be NULL), else none (*ret = NULL). Trailing
 * newline stripped. *ret is in locked, non-dumpable sodium_malloc() memory:
 * release with keydir_passphrase_free(). Returns 0 or -errno (file set but
 * unreadable, over 4 KiB). */
int keydir_passphrase(const char *passphrase_file, const char *fallback, char **ret);

/* Move $TOKEND_PASSPHRASE into locked memory (NULL if unset or on ENOMEM)
 * and remove it from the environment, overwriting its bytes in the initial
 * environment block so /proc/PID/environ no longer shows it. Call before
 * any thread starts (it edits the environment). */
char *keydir_take_env_passphrase(void);

/* Wipe and free a passphrase of keydir_passphrase(); NULL is fine. */
void keydir_passphrase_free(char *p);
static inline void keydir_passphrase_freep(char **p) {
        keydir_passphrase_free(*p);
}

/* Who may own the key directory and its key files besides root: tokend
 * passes its effective uid; tokenctl, which does not know tokend's user,
 * KEYDIR_OWNER_OF_DIR (whoever owns the directory). Both refuse a
 * directory or key file group or others can write, and a key file group or
 * others can read (fail closed: README "Security model"). */
#define KEYDIR_OWNER_OF_DIR ((uid_t) -1)

/* Read at most max bytes of path (not through a symbolic link) into
 * NUL-terminated sodium_malloc() memory: release with
 * keydir_passphrase_free(). Returns 0, -E2BIG or -errno. */
int keydir_read_small_file(const char *path, size_t max, char **ret);

/* Read a private key kept outside the key directory (the [Network] TLS
 * key) under the rules of a key file: a regular file, not a symbolic link,
 * owned by owner or root, neither readable nor writable by group or
 * others, at most max bytes. *ret is NUL-terminated, in sodium_malloc()
 * memory: release with keydir_passphrase_free(). Returns 0; -EPERM with
 * *ret_why (malloc'ed reason, may stay NULL on ENOMEM); -E2BIG; -errno. */
int keydir_read_private_file(const char *path, uid_t owner, size_t max, char **ret, char **ret_why);

/* true for the names the key directory loads: *.pem, not hidden. */
bool keydir_is_key_name(const char *name);

/* Open dir (O_NOFOLLOW: not through a symbolic link) and check it can be
 * trusted. Returns its fd (O_CLOEXEC, caller closes) and *ret_owner
 * (optional): the uid key files may have besides root (owner, or the
 * directory's for KEYDIR_OWNER_OF_DIR). -ENOENT when missing; -EPERM
 * (untrusted) or -ENOTDIR with *ret_error (malloc'ed, naming dir and
 * reason); other -errno. */
int keydir_open(const char *dir, uid_t owner, uid_t *ret_owner, char **ret_error);

/* Load the key file name of the directory dfd (from keydir_open), opened
 * relative to dfd with O_NOFOLLOW and checked on that fd (no check-then-use
 * race). Returns 0 with *ret (and *ret_st, optional: its fstat); 1 when it
 * is a symbolic link or not a regular file (skipped, nothing written);
 * -errno with *ret_why, the reason without the path (malloc'ed, may be NULL
 * on ENOMEM): -EPERM untrusted owner or mode, -EKEYREJECTED, -EBADMSG,
 * -EOPNOTSUPP, -EACCES, … */
int keydir_load_key(int dfd, const char *name, uid_t owner, const char *passphrase, jose_key **ret,
                    struct stat *ret_st, char **ret_why);

/* Load every *.pem of dir (see keydir_open and keydir_load_key for owner
 * and the trust rules). Symbolic links and files that are not regular are
 * skipped. A key that fails to load or is not trusted fails the whole load,
 * with *ret_error naming the file and reason (malloc'ed). No key at all →
 * -ENOENT. active may be NULL/"" (newest). Returns 0 or -errno. */
int keydir_load(const char *dir, uid_t owner, const char *active, const char *passphrase, keydir *ret,
                char **ret_error);

/* Generate a key of alg into dir (created 0700 if missing; refused, with
 * *ret_error, when group or others can write it) as
 * "<unix time>-<kid>.pem", mode 0600, encrypted if passphrase, and owned by
 * the directory's owner (when run as root for another owner's directory).
 * *ret_path (optional) receives the path. Returns 0 or -errno. */
int keydir_generate(const char *dir, jose_alg alg, const char *passphrase, char **ret_path, char **ret_error);

/* Free what keydir_load filled and zero *kd; a zeroed keydir is fine. */
void keydir_done(keydir *kd);
