/* Strict base64url through libsodium (see b64.h). libsodium already
 * rejects bytes outside the alphabet (with ignore=NULL), leftover input and
 * non-zero trailing bits; the length rules are checked here as well so the
 * contract does not hang on one library version's behaviour. */
#include "config.h"

#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"

#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING
/* Random bytes are encoded in chunks of a multiple of 3 bytes, so the
 * concatenated chunk encodings equal the encoding of the whole. */
#define B64_RANDOM_CHUNK 48U

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

int b64url_decode(const char *in, size_t len, uint8_t **ret, size_t *ret_len) {
        _cleanup_(freep) uint8_t *buf = NULL;
        size_t max, n = 0;

        if (!b64url_len_valid(len))
                return -EBADMSG;
        if (len > 0 && !in)
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

        if (!b64url_len_valid(len) || b64url_encoded_len(out_len) != len || (len > 0 && !in)) {
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
