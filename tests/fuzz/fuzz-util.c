/* SPDX-License-Identifier: MIT */
/* See fuzz-util.h. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "b64.h"
#include "fuzz-util.h"
#include "jose-jwk.h"
#include "jose-jws.h"
#include "json-util.h"
#include "macro.h"

const char fuzz_rfc8037_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
                                "-----END PRIVATE KEY-----\n";

const char fuzz_rfc7515_a3_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                   "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjpsQnnGQmL+YBIff\n"
                                   "H1136cspYG6+0iY7X1fCE9+E9LKhRANCAAR/zc4ncPbEXUGDy+5v20t7WAczNXvp\n"
                                   "7xO6z248e9FURcfxRM0bvZt+hyzf7bnuufSzaV1uqQskrYpGIyiFiOWt\n"
                                   "-----END PRIVATE KEY-----\n";

void fuzz_check_failed(const char *what, const char *file, int line) {
        fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
        abort();
}

jose_key *fuzz_load_key(const char *pem) {
        jose_key *key = NULL;

        FUZZ_CHECK(jose_key_load_pem(pem, strlen(pem), NULL, &key) == 0);
        return key;
}

jose_keyset *fuzz_public_keyset(const jose_key *const *keys, size_t n) {
        jose_keyset *ks = NULL;

        FUZZ_CHECK(jose_keyset_new(&ks) == 0);
        for (size_t i = 0; i < n; i++) {
                _cleanup_(json_decrefp) json_t *jwk = NULL;
                jose_key *pub = NULL;

                FUZZ_CHECK(jose_key_to_jwk(keys[i], &jwk) == 0);
                FUZZ_CHECK(jose_key_from_jwk(jwk, &pub) == 0);
                FUZZ_CHECK(jose_keyset_add(ks, pub) == 0);
        }
        return ks;
}

char *fuzz_sign_split(const jose_key *key, const uint8_t *data, size_t size, size_t *ret_len) {
        _cleanup_(freep) char *h64 = NULL, *p64 = NULL, *s64 = NULL;
        const uint8_t *sep = memchr(data, 0xff, size);
        size_t h_len = sep ? (size_t) (sep - data) : size, in_len, len;
        uint8_t sig[JOSE_MAX_SIG_LEN];
        size_t sig_len;
        char *token;

        if (size > JWS_MAX_TOKEN_BYTES)
                return NULL;
        if (b64url_encode(data, h_len, &h64) < 0 ||
            b64url_encode(sep ? sep + 1 : data + size, sep ? size - h_len - 1 : 0, &p64) < 0)
                return NULL;
        in_len = strlen(h64) + 1 + strlen(p64);
        len = in_len + 1 + b64url_encoded_len(JOSE_MAX_SIG_LEN);
        token = malloc(len + 1);
        if (!token)
                return NULL;
        snprintf(token, len + 1, "%s.%s", h64, p64);
        FUZZ_CHECK(jose_key_sign(key, token, in_len, sig, &sig_len) == 0);
        FUZZ_CHECK(b64url_encode(sig, sig_len, &s64) == 0);
        snprintf(token + in_len, len + 1 - in_len, ".%s", s64);
        *ret_len = strlen(token);
        return token;
}
