/* SPDX-License-Identifier: MIT */
/* JOSE benchmark (not a test): per algorithm, JWS sign and verify through
 * common/ (jws_sign_json, jws_verify) next to the raw primitive on the same
 * signing input in the same run (libsodium for Ed25519, OpenSSL EVP for the
 * rest), then the full EdDSA access-token path (at_verify) against a bare
 * crypto_sign_verify_detached (best of alternating slices, then op by op
 * interleaved). Single thread, fixed CPU time per measurement.
 * Usage: bench-jose [SECONDS-PER-MEASUREMENT] (default 1). */
#include "config.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "b64.h"
#include "jose-claims.h"
#include "jose-jws.h"
#include "jose-key.h"
#include "json-util.h"
#include "macro.h"

#define AT_OVERHEAD_TARGET 12.0 /* percent */
#define BENCH_ROUNDS 5          /* alternate ours/raw, keep the best of each */
#define BENCH_ISSUER "https://tokend.example.org"
#define BENCH_NOW 1700000000

typedef int (*bench_fn)(void *ctx);

typedef struct bench_case {
        jose_alg alg;
        jose_keyset *ks;        /* owns the key */
        const jose_key *key;    /* borrowed from ks */
        json_t *claims;
        char *token;            /* a token signed through our API */
        size_t token_len;
        size_t input_len;       /* signing input = token[0 .. input_len) */
        uint8_t sig[JOSE_MAX_SIG_LEN];
        size_t sig_len;         /* the token's raw JOSE signature */
        /* raw primitive state */
        uint8_t ed_pk[crypto_sign_PUBLICKEYBYTES];
        uint8_t ed_sk[crypto_sign_SECRETKEYBYTES];
        EVP_PKEY *pkey;         /* same key as `key`, via its PEM */
        uint8_t der_sig[JOSE_MAX_SIG_LEN + 16];
        size_t der_sig_len;     /* OpenSSL's own signature (DER for ECDSA) */
        at_check chk;
} bench_case;

/* CPU time of this thread: other processes on a busy machine (parallel
 * builds) then slow the run down without skewing the figures much. */
static double cpu_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* ops per CPU second of fn over at least `seconds`; exits on the first
 * failure so a broken build never prints a misleading figure. */
static double measure(const char *what, double seconds, bench_fn fn, void *ctx) {
        unsigned long n = 0;
        double start = cpu_now(), elapsed;
        do {
                int r = fn(ctx);
                if (r < 0) {
                        fprintf(stderr, "bench-jose: %s failed: %s\n", what, strerror(-r));
                        exit(EXIT_FAILURE);
                }
                n++;
                elapsed = cpu_now() - start;
        } while (elapsed < seconds);
        return (double) n / elapsed;
}

/* ours and raw in alternating slices (BENCH_ROUNDS of seconds/BENCH_ROUNDS
 * each), keeping the best rate of each: drift and noise hit both alike. */
static void measure_pair(const char *what, double seconds, bench_fn ours, bench_fn raw, void *ctx,
                         double *ret_ours, double *ret_raw) {
        double best_ours = 0, best_raw = 0;
        for (int i = 0; i < BENCH_ROUNDS; i++) {
                double a = measure(what, seconds / BENCH_ROUNDS, ours, ctx);
                double b = measure(what, seconds / BENCH_ROUNDS, raw, ctx);
                best_ours = a > best_ours ? a : best_ours;
                best_raw = b > best_raw ? b : best_raw;
        }
        *ret_ours = best_ours;
        *ret_raw = best_raw;
}

/* ours and raw one operation each, in turn, until both together used
 * `seconds` of CPU; *ret_* is the mean CPU time per operation (seconds).
 * Noise from other processes (cache, preemption) then lands on both sides
 * alike, which a shared 2-core machine needs; the clock reads cost both
 * sides the same few tens of nanoseconds. */
static void measure_interleaved(const char *what, double seconds, bench_fn ours, bench_fn raw, void *ctx,
                                double *ret_ours, double *ret_raw, unsigned long *ret_n) {
        double t_ours = 0, t_raw = 0;
        unsigned long n = 0;
        do {
                double t0 = cpu_now();
                int r = ours(ctx);
                double t1 = cpu_now();
                if (r >= 0)
                        r = raw(ctx);
                double t2 = cpu_now();
                if (r < 0) {
                        fprintf(stderr, "bench-jose: %s failed: %s\n", what, strerror(-r));
                        exit(EXIT_FAILURE);
                }
                t_ours += t1 - t0;
                t_raw += t2 - t1;
                n++;
        } while (t_ours + t_raw < seconds);
        *ret_ours = t_ours / (double) n;
        *ret_raw = t_raw / (double) n;
        *ret_n = n;
}

/* ---- through our API -------------------------------------------------- */

static int ours_sign(void *p) {
        bench_case *c = p;
        char *token = NULL;
        int r = jws_sign_json(c->key, "JWT", c->claims, &token, NULL);
        free(token);
        return r;
}

static int ours_verify(void *p) {
        bench_case *c = p;
        jws_result res;
        int r = jws_verify(c->ks, c->token, c->token_len, 0, &res);
        if (r < 0)
                return r;
        jws_result_done(&res);
        return 0;
}

static int ours_at_verify(void *p) {
        bench_case *c = p;
        at_claims claims;
        int r = at_verify(c->ks, c->token, c->token_len, &c->chk, &claims);
        if (r < 0)
                return r;
        at_claims_done(&claims);
        return 0;
}

/* ---- raw primitives on the same signing input --------------------------- */

static int raw_ed25519_sign(void *p) {
        bench_case *c = p;
        uint8_t sig[crypto_sign_BYTES];
        return crypto_sign_detached(sig, NULL, (const uint8_t *) c->token, c->input_len, c->ed_sk) == 0 ? 0 : -EIO;
}

static int raw_ed25519_verify(void *p) {
        bench_case *c = p;
        return crypto_sign_verify_detached(c->sig, (const uint8_t *) c->token, c->input_len, c->ed_pk) == 0
                       ? 0
                       : -EKEYREJECTED;
}

/* The usual EVP one-shot: a fresh digest context per operation, PS256 with
 * a digest-length salt (RFC 7518 §3.5). */
static int evp_init(const bench_case *c, EVP_MD_CTX *md, bool sign) {
        EVP_PKEY_CTX *pctx = NULL;
        int ok = sign ? EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, c->pkey)
                      : EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, c->pkey);
        if (ok != 1)
                return -EIO;
        if (c->alg == JOSE_ALG_PS256 && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                                         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
                return -EIO;
        return 0;
}

/* One raw EVP operation; a signature made here is kept for raw verify. */
static int raw_evp(bench_case *c, bool sign) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (!md)
                return -ENOMEM;
        const uint8_t *msg = (const uint8_t *) c->token;
        size_t len = sizeof c->der_sig;
        int r = evp_init(c, md, sign);
        if (r == 0 && sign && EVP_DigestSign(md, c->der_sig, &len, msg, c->input_len) != 1)
                r = -EIO;
        if (r == 0 && !sign && EVP_DigestVerify(md, c->der_sig, c->der_sig_len, msg, c->input_len) != 1)
                r = -EKEYREJECTED;
        EVP_MD_CTX_free(md);
        if (r == 0 && sign)
                c->der_sig_len = len;
        return r;
}

static int raw_evp_sign(void *p) {
        return raw_evp(p, true);
}

static int raw_evp_verify(void *p) {
        return raw_evp(p, false);
}

/* ---- setup --------------------------------------------------------------- */

static json_t *bench_claims(void) {
        return json_pack("{s:s, s:s, s:i, s:[s,s,s], s:I, s:I, s:s, s:s, s:s}", "iss", BENCH_ISSUER, "sub", "alice",
                         "uid", 1000, "aud", "sshd", "login", "su", "iat", (json_int_t) BENCH_NOW, "exp",
                         (json_int_t) BENCH_NOW + 900, "jti", "q9bX3yJ0c2VmK1Lr8n0o6A", "client_id",
                         "dev_Zk3s9QaP2mXv7LbN1cR0tw", "scope", "login");
}

static EVP_PKEY *evp_from_key(const jose_key *key) {
        _cleanup_(erase_and_freep) char *pem = NULL;
        if (jose_key_to_pem(key, NULL, &pem) < 0)
                return NULL;
        BIO *bio = BIO_new_mem_buf(pem, -1);
        if (!bio)
                return NULL;
        EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        BIO_free(bio);
        return pkey;
}

/* Point the case at a token: its signing input and decoded signature. */
static int case_set_token(bench_case *c, char *token, size_t len) {
        const char *dot = strrchr(token, '.');
        if (!dot)
                return -EBADMSG;
        free(c->token);
        c->token = token;
        c->token_len = len;
        c->input_len = (size_t) (dot - token);
        _cleanup_(freep) uint8_t *sig = NULL;
        size_t sig_len;
        int r = b64url_decode(dot + 1, len - c->input_len - 1, &sig, &sig_len);
        if (r < 0)
                return r;
        if (sig_len > sizeof c->sig)
                return -EBADMSG;
        memcpy(c->sig, sig, sig_len);
        c->sig_len = sig_len;
        return 0;
}

static int case_init(bench_case *c, jose_alg alg) {
        *c = (bench_case) { .alg = alg };
        jose_key *key;
        int r = jose_key_generate(alg, &key);
        if (r < 0)
                return r;
        r = jose_keyset_new(&c->ks);
        if (r >= 0)
                r = jose_keyset_add(c->ks, key);
        if (r < 0) {
                jose_key_free(key);
                return r;
        }
        c->key = jose_keyset_get(c->ks, 0);
        c->claims = bench_claims();
        if (!c->claims)
                return -ENOMEM;
        char *token;
        size_t len;
        r = jws_sign_json(c->key, "JWT", c->claims, &token, &len);
        if (r < 0)
                return r;
        r = case_set_token(c, token, len);
        if (r < 0)
                return r;
        if (alg == JOSE_ALG_EDDSA) {
                /* Raw verify checks the token's own signature with the
                 * key's public half; raw sign uses a fresh libsodium pair
                 * (Ed25519 signing cost does not depend on the key). */
                r = jose_key_ed25519_public(c->key, c->ed_pk);
                if (r < 0)
                        return r;
                uint8_t pk[crypto_sign_PUBLICKEYBYTES];
                crypto_sign_keypair(pk, c->ed_sk);
                return 0;
        }
        c->pkey = evp_from_key(c->key);
        if (!c->pkey)
                return -EIO;
        return raw_evp_sign(c); /* a DER signature for raw verify */
}

/* Switch an EdDSA case to an access token built by at_build. */
static int case_use_access_token(bench_case *c) {
        static const char *const aud[] = { "sshd", "login", "su" };
        const at_params p = {
                .issuer = BENCH_ISSUER,
                .subject = "alice",
                .uid = 1000,
                .aud = aud,
                .n_aud = ELEMENTSOF(aud),
                .iat = BENCH_NOW,
                .lifetime = 900,
                .client_id = "dev_Zk3s9QaP2mXv7LbN1cR0tw",
                .scope = "login",
        };
        char *token;
        size_t len;
        int r = at_build(c->key, &p, &token, &len, NULL, 0);
        if (r < 0)
                return r;
        c->chk = (at_check) { .issuer = BENCH_ISSUER, .audience = "sshd", .now = BENCH_NOW + 60, .skew = 30 };
        return case_set_token(c, token, len);
}

static void case_done(bench_case *c) {
        jose_keyset_free(c->ks);
        json_decref(c->claims);
        free(c->token);
        EVP_PKEY_free(c->pkey);
        sodium_memzero(c->ed_sk, sizeof c->ed_sk);
}

static void print_row(const char *alg, const char *op, double ours, double raw) {
        printf("%-6s %-7s %12.0f %12.0f %8.1f%%\n", alg, op, ours, raw, 100.0 * (raw / ours - 1.0));
}

static void usage(FILE *f) {
        fprintf(f, "usage: bench-jose [SECONDS-PER-MEASUREMENT]\n"
                   "Per algorithm, sign and verify through common/ next to the raw libsodium/OpenSSL\n"
                   "primitive on the same input (ops per CPU second, best of %d alternating slices),\n"
                   "then the EdDSA access-token verify path (at_verify) against a bare\n"
                   "crypto_sign_verify_detached: its overhead target is <= %.0f%%; the same pair is\n"
                   "then timed op by op, interleaved, which is steadier on a busy machine. SECONDS\n"
                   "(default 1, at most 60) is the CPU time per figure; the access-token pair gets\n"
                   "twice that.\n"
                   "Exit status 1 when a setup failed. A shared machine adds noise: run it a few times.\n",
                BENCH_ROUNDS, AT_OVERHEAD_TARGET);
}

int main(int argc, char **argv) {
        if (argc == 2 && (streq(argv[1], "-h") || streq(argv[1], "--help"))) {
                usage(stdout);
                return 0;
        }
        double secs = argc > 1 ? strtod(argv[1], NULL) : 1.0;
        if (argc > 2 || !(secs > 0.0 && secs <= 60.0)) {
                usage(stderr);
                return 2;
        }
        if (sodium_init() < 0)
                return EXIT_FAILURE;

        static const jose_alg algs[] = { JOSE_ALG_EDDSA, JOSE_ALG_ES256, JOSE_ALG_RS256, JOSE_ALG_PS256 };
        printf("JWS through common/ vs the raw primitive, same signing input, %.2g CPU-s per figure (best of %d slices), 1 thread\n", secs, BENCH_ROUNDS);
        printf("%-6s %-7s %12s %12s %9s\n", "alg", "op", "ours ops/s", "raw ops/s", "overhead");
        int status = EXIT_SUCCESS;
        for (size_t i = 0; i < ELEMENTSOF(algs); i++) {
                bench_case c;
                const char *name = jose_alg_to_string(algs[i]);
                int r = case_init(&c, algs[i]);
                if (r < 0) {
                        /* Keep going: one broken algorithm should not hide
                         * the figures of the others. */
                        printf("%-6s setup failed: %s\n", name, strerror(-r));
                        status = EXIT_FAILURE;
                        case_done(&c);
                        continue;
                }
                bool ed = algs[i] == JOSE_ALG_EDDSA;
                double s_ours, s_raw, v_ours, v_raw;
                measure_pair("sign", secs, ours_sign, ed ? raw_ed25519_sign : raw_evp_sign, &c, &s_ours, &s_raw);
                measure_pair("verify", secs, ours_verify, ed ? raw_ed25519_verify : raw_evp_verify, &c, &v_ours,
                             &v_raw);
                print_row(name, "sign", s_ours, s_raw);
                print_row(name, "verify", v_ours, v_raw);
                case_done(&c);
        }

        bench_case c;
        int r = case_init(&c, JOSE_ALG_EDDSA);
        if (r >= 0)
                r = case_use_access_token(&c);
        if (r < 0) {
                fprintf(stderr, "bench-jose: access-token setup failed: %s\n", strerror(-r));
                case_done(&c);
                return EXIT_FAILURE;
        }
        double best_at, best_raw;
        measure_pair("at_verify", 2 * secs, ours_at_verify, raw_ed25519_verify, &c, &best_at, &best_raw);
        double overhead = 100.0 * (best_raw / best_at - 1.0);
        printf("\nEdDSA access token (%zu bytes), best of %d alternating slices:\n", c.token_len, BENCH_ROUNDS);
        printf("  at_verify (split, base64url, JSON, signature, claims) %10.0f ops/s  %6.2f us/op\n", best_at,
               1e6 / best_at);
        printf("  crypto_sign_verify_detached (same input)              %10.0f ops/s  %6.2f us/op\n", best_raw,
               1e6 / best_raw);
        printf("at_verify overhead: %.1f%% (target <= %.0f%%): %s\n", overhead, AT_OVERHEAD_TARGET,
               overhead <= AT_OVERHEAD_TARGET ? "OK" : "ABOVE TARGET");
        /* The same pair op by op, for a figure that holds on a busy box. */
        double at_s, raw_s;
        unsigned long pairs;
        measure_interleaved("at_verify", 2 * secs, ours_at_verify, raw_ed25519_verify, &c, &at_s, &raw_s, &pairs);
        overhead = 100.0 * (at_s / raw_s - 1.0);
        printf("interleaved op by op (%lu pairs): at_verify %.2f us, raw %.2f us: overhead %.1f%%: %s\n", pairs,
               at_s * 1e6, raw_s * 1e6, overhead, overhead <= AT_OVERHEAD_TARGET ? "OK" : "ABOVE TARGET");
        case_done(&c);
        return status;
}
