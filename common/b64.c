/* SPDX-License-Identifier: MIT */
/* Strict base64url through libsodium (see b64.h). libsodium rejects
 * leftover input and non-zero trailing bits, and most bytes outside the
 * alphabet (with ignore=NULL); the alphabet and the length rules are
 * checked here as well so the contract does not hang on one library
 * version's behaviour (1.0.18 takes bytes ≥ 0x80 for '_'). Public token
 * segments go through OpenSSL's EVP_DecodeBlock instead: a table lookup
 * several times faster than libsodium's constant-time decoder, wrapped in
 * the same strictness checks. */
#include "config.h"

#include <errno.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"

#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING
/* Random bytes are encoded in chunks of a multiple of 3 bytes, so the
 * concatenated chunk encodings equal the encoding of the whole. */
#define B64_RANDOM_CHUNK 48U
/* Characters translated and decoded per EVP_DecodeBlock call: a multiple
 * of 4, small enough for the stack. */
#define B64_PUBLIC_CHUNK 512U

size_t b64url_encoded_len(size_t n) {
        size_t rem = n % 3U;

        return n / 3U * 4U + (rem ? rem + 1U : 0U);
}

int b64url_encode(const void *in, size_t len, char **ret) {
        char *s;
        size_t sz;

        /* b64url_encoded_len() must not wrap (n/3*4 + 3 < SIZE_MAX). */
        if (len > SIZE_MAX / 4U * 3U - 3U)
                return -ENOMEM;
        sz = b64url_encoded_len(len) + 1U;
        s = malloc(sz);
        if (!s)
                return -ENOMEM;
        /* sodium_bin2base64() accepts a NULL bin only for len 0; give it a
         * valid pointer anyway. */
        sodium_bin2base64(s, sz, in ? in : (const void *) "", len, B64_VARIANT);
        *ret = s;
        return 0;
}

/* The length check libsodium folds into its trailing-bits check: one extra
 * character carries 6 bits, never a whole byte (RFC 4648 §5). */
static bool b64url_len_valid(size_t len) {
        return len % 4U != 1U;
}

/* Only [A-Za-z0-9_-]. libsodium 1.0.18 (Debian 12) maps bytes 0x80-0xff
 * to the value of '_' instead of refusing them, so "\x80A" would decode
 * like "_A": check the alphabet ourselves. No early exit and no table:
 * this also runs over secrets, and says only "valid" or "not". */
static bool b64url_alphabet_ok(const char *in, size_t len) {
        unsigned bad = 0;

        for (size_t i = 0; i < len; i++) {
                unsigned c = (unsigned char) in[i];

                bad |= 1U ^ ((unsigned) (c - 'A' < 26U) | (unsigned) (c - 'a' < 26U) | (unsigned) (c - '0' < 10U) |
                             (unsigned) (c == '-') | (unsigned) (c == '_'));
        }
        return bad == 0;
}

int b64url_decode(const char *in, size_t len, uint8_t **ret, size_t *ret_len) {
        _cleanup_(freep) uint8_t *buf = NULL;
        size_t max, n = 0;

        if (!b64url_len_valid(len))
                return -EBADMSG;
        if (len > 0 && (!in || !b64url_alphabet_ok(in, len)))
                return -EBADMSG;
        max = len / 4U * 3U + 2U; /* ≥ decoded size, leaves room for the NUL */
        buf = malloc(max + 1U);
        if (!buf)
                return -ENOMEM;
        if (len > 0 &&
            sodium_base642bin(buf, max, in, len, NULL, &n, NULL, B64_VARIANT) != 0) {
                explicit_bzero(buf, max + 1U);
                return -EBADMSG;
        }
        /* A canonical encoding has exactly this length; anything else was
         * not consumed as base64url. */
        if (b64url_encoded_len(n) != len) {
                explicit_bzero(buf, max + 1U);
                return -EBADMSG;
        }
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

int b64url_decode_exact(const char *in, size_t len, void *out, size_t out_len) {
        size_t n = 0;

        if (!b64url_len_valid(len) || b64url_encoded_len(out_len) != len || (len > 0 && !in) ||
            !b64url_alphabet_ok(in, len)) {
                explicit_bzero(out, out_len);
                return -EBADMSG;
        }
        if (len == 0)
                return 0;
        if (sodium_base642bin(out, out_len, in, len, NULL, &n, NULL, B64_VARIANT) != 0 || n != out_len) {
                explicit_bzero(out, out_len);
                return -EBADMSG;
        }
        return 0;
}

size_t b64url_decoded_len(size_t len) {
        size_t rem = len % 4U;

        return len / 4U * 3U + (rem > 1U ? rem - 1U : 0U);
}

/* Translate n base64url characters to the standard alphabet for OpenSSL:
 * '-' → '+', '_' → '/'. Anything else outside [A-Za-z0-9] — '+', '/',
 * '=', whitespace, NUL, high bytes — is refused here, so EVP_DecodeBlock's
 * own leniency (whitespace trimming, '=' handling) never comes into play. */
static bool b64url_to_std(const char *in, size_t n, unsigned char *out) {
        for (size_t i = 0; i < n; i++) {
                char c = in[i];

                if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
                        out[i] = (unsigned char) c;
                else if (c == '-')
                        out[i] = '+';
                else if (c == '_')
                        out[i] = '/';
                else
                        return false;
        }
        return true;
}

/* Decode whole 4-character groups (full is a multiple of 4). With out NULL
 * the input is only checked (the output goes to a scratch buffer). */
static bool b64url_decode_groups(const char *in, size_t full, uint8_t *out) {
        unsigned char std[B64_PUBLIC_CHUNK], scratch[B64_PUBLIC_CHUNK / 4U * 3U];

        for (size_t done = 0; done < full;) {
                size_t k = full - done < sizeof(std) ? full - done : sizeof(std);

                if (!b64url_to_std(in + done, k, std) ||
                    EVP_DecodeBlock(out ? out : scratch, std, (int) k) != (int) (k / 4U * 3U))
                        return false;
                if (out)
                        out += k / 4U * 3U;
                done += k;
        }
        return true;
}

int b64url_decode_public(const char *in, size_t len, void *out, size_t out_size, size_t *ret_len) {
        size_t full = len / 4U * 4U, rem = len % 4U, n;
        uint8_t tail[3] = {};

        if (!b64url_len_valid(len) || (len > 0 && !in))
                return -EBADMSG;
        n = b64url_decoded_len(len);

        /* The last partial group, padded with 'A' (zero bits) instead of
         * '=': the bytes past the rem-1 real ones then hold exactly the
         * encoding's trailing bits, which must be zero (RFC 4648 §3.5). */
        if (rem > 0) {
                unsigned char group[4] = { 'A', 'A', 'A', 'A' };

                if (!b64url_to_std(in + full, rem, group) || EVP_DecodeBlock(tail, group, 4) != 3 ||
                    tail[rem - 1U] != 0)
                        return -EBADMSG;
        }
        if (n > out_size)
                return b64url_decode_groups(in, full, NULL) ? -ENOBUFS : -EBADMSG;
        if (!b64url_decode_groups(in, full, out))
                return -EBADMSG;
        if (rem > 0)
                memcpy((uint8_t *) out + full / 4U * 3U, tail, rem - 1U);
        *ret_len = n;
        return 0;
}

int b64url_random(size_t n, char *out, size_t out_size) {
        uint8_t chunk[B64_RANDOM_CHUNK];
        size_t done = 0, pos = 0;

        if (n > SIZE_MAX / 4U * 3U - 3U || out_size < b64url_encoded_len(n) + 1U)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;

        do {
                size_t k = n - done < sizeof(chunk) ? n - done : sizeof(chunk);

                randombytes_buf(chunk, k);
                sodium_bin2base64(out + pos, out_size - pos, chunk, k, B64_VARIANT);
                pos += b64url_encoded_len(k);
                done += k;
        } while (done < n);

        sodium_memzero(chunk, sizeof(chunk));
        return 0;
}
