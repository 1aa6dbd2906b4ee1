/* SPDX-License-Identifier: MIT */
/* Strict base64url (RFC 4648 §5, no padding) through libsodium's
 * URL-safe-no-padding variant, plus a faster OpenSSL-backed decoder for
 * public data (token segments). Decoding rejects '=', '+', '/', whitespace,
 * non-zero trailing bits and lengths ≡ 1 (mod 4): one token has exactly one
 * encoding, so signatures cannot be malleated through the text form. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Number of characters base64url needs for n bytes (no padding, no NUL). */
size_t b64url_encoded_len(size_t n);

/* Encode len bytes. On success *ret is a malloc'ed NUL-terminated string
 * owned by the caller and 0 is returned; -ENOMEM on allocation failure. */
int b64url_encode(const void *in, size_t len, char **ret);

/* Decode exactly len characters of in (no NUL needed). On success *ret is a
 * malloc'ed buffer (one extra NUL byte appended, not counted in *ret_len)
 * owned by the caller. Returns -EBADMSG for anything that is not canonical
 * base64url, -ENOMEM. Nothing is written on failure. */
_warn_unused_result_ int b64url_decode(const char *in, size_t len, uint8_t **ret, size_t *ret_len);

/* Decode into a fixed buffer: succeeds only if the input decodes to exactly
 * out_len bytes. Returns 0, -EBADMSG (not canonical or wrong length). out is
 * wiped on failure. */
_warn_unused_result_ int b64url_decode_exact(const char *in, size_t len, void *out, size_t out_len);

/* Decoded size of a len-character base64url string that passes the length
 * rule (len % 4 != 1); an upper bound otherwise. */
size_t b64url_decoded_len(size_t len);

/* Decode PUBLIC data (JWS header, payload, signature) into out with
 * OpenSSL's table-driven EVP_DecodeBlock: same strictness as
 * b64url_decode, but not constant-time, so never for secrets. Returns 0 and
 * *ret_len; -EBADMSG for anything not canonical base64url (checked over the
 * whole input first); -ENOBUFS if the well-formed input decodes to more than
 * out_size bytes. out (of out_size bytes) may be partly written on failure. */
_warn_unused_result_ int b64url_decode_public(const char *in, size_t len, void *out, size_t out_size,
                                              size_t *ret_len);

/* Fill a caller buffer of b64url_encoded_len(n)+1 bytes with the encoding of
 * n random bytes (libsodium randombytes). Used for jti, device ids, refresh
 * tokens. Returns 0 or -EINVAL if out_size is too small. */
int b64url_random(size_t n, char *out, size_t out_size);
