/* SPDX-License-Identifier: MIT */
/* Shared by the libFuzzer targets in tests/fuzz/: a crash-on-violation
 * check that survives NDEBUG, the RFC example keys the seed corpora are
 * signed with, and the "sign what the fuzzer wrote" helper that lets
 * mutated headers and payloads reach the code behind a good signature. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "jose-key.h"
#include "jose-keyset.h"

/* An invariant of the code under test: abort (libFuzzer keeps the input). */
#define FUZZ_CHECK(cond)                                                          \
        do {                                                                      \
                if (!(cond)) {                                                    \
                        fuzz_check_failed(#cond, __FILE__, __LINE__);             \
                }                                                                 \
        } while (0)

_Noreturn void fuzz_check_failed(const char *what, const char *file, int line);

/* RFC 8037 A.1 Ed25519 key and RFC 7515 A.3 P-256 key (private, PKCS#8):
 * published test keys, so the corpora can carry tokens they signed. */
extern const char fuzz_rfc8037_pem[];
extern const char fuzz_rfc7515_a3_pem[];

/* Load one of the PEMs above; aborts on failure (a broken build). */
jose_key *fuzz_load_key(const char *pem);

/* A keyset holding the public halves of the given keys (via their JWKs,
 * so the import path is the one verifiers use). Aborts on failure. */
jose_keyset *fuzz_public_keyset(const jose_key *const *keys, size_t n);

/* Split data at the first 0xff byte into header and payload (the payload
 * is empty when there is none), sign base64url(header) "." base64url(payload)
 * with key and return the compact token (malloc'ed, NUL-terminated) or NULL
 * when the input is too large to make a token of. */
char *fuzz_sign_split(const jose_key *key, const uint8_t *data, size_t size, size_t *ret_len);
