/* SPDX-License-Identifier: MIT */
/* Signing/verification keys for JWS: Ed25519 (EdDSA, through libsodium),
 * P-256 (ES256), RSA ≥ 2048 (RS256, or PS256 for RSA-PSS keys), via
 * OpenSSL 3. A key is bound to exactly one algorithm for its whole life
 * (RFC 8725 §3.1): it never verifies under another. Also RFC 7638
 * thumbprints (which double as key ids). JWK/JWKS import and export are in
 * jose-jwk.h, key sets in jose-keyset.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef enum jose_alg {
        JOSE_ALG_INVALID = 0,
        JOSE_ALG_EDDSA,
        JOSE_ALG_ES256,
        JOSE_ALG_RS256,
        JOSE_ALG_PS256,
} jose_alg;

#define JOSE_THUMBPRINT_LEN 43U /* base64url(SHA-256) */
#define JOSE_KID_LEN 12U        /* kid = thumbprint prefix, keeps tokens ≤ 511 B */
#define JOSE_MAX_SIG_LEN 512U   /* RSA-4096 */
#define JOSE_RSA_MIN_BITS 2048
#define JOSE_RSA_MAX_BITS 8192
#define JOSE_PEM_MAX_BYTES (64U * 1024U)

/* "EdDSA", "ES256", "RS256", "PS256"; NULL for JOSE_ALG_INVALID. */
const char *jose_alg_to_string(jose_alg alg);
/* Exact, case-sensitive: "none", "None", "HS256", "RS512", … → INVALID. */
jose_alg jose_alg_from_string(const char *s);

typedef struct jose_key jose_key;

/* Generate a new private key for alg (RSA: 2048 bits). Returns 0, -EINVAL,
 * -EIO (crypto failure), -ENOMEM. */
int jose_key_generate(jose_alg alg, jose_key **ret);

/* Load a PKCS#8 PEM private key ("PRIVATE KEY" or "ENCRYPTED PRIVATE KEY").
 * passphrase may be NULL for an unencrypted key. Type decides the alg:
 * Ed25519 → EdDSA, P-256 → ES256, rsaEncryption → RS256, RSASSA-PSS → PS256.
 * Returns 0; -E2BIG (> JOSE_PEM_MAX_BYTES); -EBADMSG (not PKCS#8 PEM);
 * -EKEYREJECTED (wrong or missing passphrase); -EOPNOTSUPP (other key type,
 * other curve, RSA < 2048 bits). */
_warn_unused_result_ int jose_key_load_pem(const char *pem, size_t len, const char *passphrase, jose_key **ret);

/* Same, from a file opened O_NOFOLLOW|O_CLOEXEC; -errno from open/read. */
_warn_unused_result_ int jose_key_load_pem_file(const char *path, const char *passphrase, jose_key **ret);

/* Same, from the open file fd (read from its current offset; not closed).
 * -EBADMSG when fd is not a regular file. The PEM text is read into
 * locked, non-dumpable sodium_malloc() memory and wiped. */
_warn_unused_result_ int jose_key_load_pem_fd(int fd, const char *passphrase, jose_key **ret);

/* PKCS#8 PEM of the private key, encrypted (PBES2, AES-256-CBC) when
 * passphrase is non-NULL. *ret is a NUL-terminated string the caller must
 * release with erase_and_free(). -EINVAL for a public-only key. */
int jose_key_to_pem(const jose_key *key, const char *passphrase, char **ret);

/* Write to_pem() to path with mode 0600, created exclusively (O_EXCL) then
 * fsync'ed. Returns 0 or -errno (-EEXIST if present). */
int jose_key_write_pem_file(const jose_key *key, const char *path, const char *passphrase);

/* Write to_pem() to the open file fd and fsync it; fd is not closed, and
 * on failure the caller removes what it created. Returns 0 or -errno. */
int jose_key_write_pem_fd(const jose_key *key, int fd, const char *passphrase);

/* RFC 7638 thumbprint (SHA-256, base64url) into out (NUL-terminated). */
void jose_key_thumbprint(const jose_key *key, char out[static JOSE_THUMBPRINT_LEN + 1]);

jose_alg jose_key_alg(const jose_key *key);
const char *jose_key_kid(const jose_key *key); /* owned by the key */
bool jose_key_has_private(const jose_key *key);
/* For Ed25519 keys: the raw 32-byte public key; -EINVAL for other types. */
int jose_key_ed25519_public(const jose_key *key, uint8_t out[static 32]);
/* Ed25519 public key from 32 raw bytes (device keys). */
int jose_key_from_ed25519_public(const uint8_t pk[static 32], jose_key **ret);

/* Raw JWS signature over msg (RFC 7518 §3: ES256 is r||s, 64 bytes).
 * sig must hold JOSE_MAX_SIG_LEN bytes. Returns 0 and *ret_sig_len, -EINVAL
 * (no private key), -EIO. */
int jose_key_sign(const jose_key *key, const void *msg, size_t msg_len, uint8_t *sig, size_t *ret_sig_len);

/* Verify a raw JWS signature. Returns 0 only if valid; -EKEYREJECTED for
 * any invalid signature (wrong length, ES256 r/s outside 1..n-1, mismatch). */
_warn_unused_result_ int jose_key_verify(const jose_key *key, const void *msg, size_t msg_len, const uint8_t *sig,
                                         size_t sig_len);

/* Accepts NULL. Private material is wiped. */
void jose_key_free(jose_key *key);
DEFINE_TRIVIAL_CLEANUP_FUNC(jose_key *, jose_key_free);
