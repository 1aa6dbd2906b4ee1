/* SPDX-License-Identifier: MIT */
/* JOSE keys (see jose-key.h): OpenSSL 3 holds every key and does PEM,
 * ECDSA and RSA; Ed25519 signatures go through libsodium, whose 64-byte
 * secret key lives in guarded sodium_malloc() memory. RFC 7638
 * thumbprints are made here from the public members jose-jwk.c exports;
 * JWK/JWKS import is in jose-jwk.c, key sets in jose-keyset.c. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b64.h"
#include "jose-key-internal.h"

#define ED25519_SIG_LEN 64U
#define ES256_SIG_LEN (2U * P256_COORD_LEN)
#define PS256_SALT_LEN 32 /* RFC 7518 §3.5: salt size = hash output size */

#define PEM_PLAIN_LABEL "-----BEGIN PRIVATE KEY-----"
#define PEM_ENCRYPTED_LABEL "-----BEGIN ENCRYPTED PRIVATE KEY-----"
#define PEM_ANY_LABEL "-----BEGIN "

/* Order n of the P-256 group (SEC 2 §2.4.2), big-endian. r and s of an
 * ECDSA signature must lie in 1..n-1 (FIPS 186-4 §6.4.2). */
static const uint8_t p256_order[P256_COORD_LEN] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

static void EVP_MD_CTX_freep(EVP_MD_CTX **p) {
        EVP_MD_CTX_free(*p);
}
static void BIO_freep(BIO **p) {
        BIO_free(*p);
}
static void ECDSA_SIG_freep(ECDSA_SIG **p) {
        ECDSA_SIG_free(*p);
}

static int key_init_templates(jose_key *key);

int jose_sodium_ready(void) {
        return sodium_init() < 0 ? -EIO : 0;
}

const char *jose_alg_to_string(jose_alg alg) {
        switch (alg) {
        case JOSE_ALG_EDDSA:
                return "EdDSA";
        case JOSE_ALG_ES256:
                return "ES256";
        case JOSE_ALG_RS256:
                return "RS256";
        case JOSE_ALG_PS256:
                return "PS256";
        default:
                return NULL;
        }
}

jose_alg jose_alg_from_string(const char *s) {
        if (!s)
                return JOSE_ALG_INVALID;
        for (jose_alg a = JOSE_ALG_EDDSA; a <= JOSE_ALG_PS256; a++)
                if (streq(s, jose_alg_to_string(a)))
                        return a;
        return JOSE_ALG_INVALID;
}

void jose_key_jws_cache_free(jose_key_jws_cache *c) {
        if (!c)
                return;
        json_decref(c->header);
        free(c);
}

void jose_key_free(jose_key *key) {
        if (!key)
                return;
        EVP_MD_CTX_free(key->sign_tmpl);
        EVP_MD_CTX_free(key->verify_tmpl);
        jose_key_jws_cache_free(key->jws_cache);
        EVP_PKEY_free(key->pkey);
        sodium_free(key->ed_sk); /* wipes; accepts NULL */
        free(key);
}

/* ---- public members and RFC 7638 thumbprint ------------------------------ */

/* base64url of a BIGNUM parameter without leading zero bytes
 * (RFC 7518 §6.3.1: n and e are unsigned big-endian, minimal). */
static int pkey_bn_param_b64(const EVP_PKEY *pkey, const char *name, size_t pad, char **ret) {
        _cleanup_(BN_freep) BIGNUM *bn = NULL;
        uint8_t buf[RSA_MAX_BYTES];
        int len;

        if (!EVP_PKEY_get_bn_param(pkey, name, &bn))
                return -EIO;
        if (pad > 0)
                len = pad <= sizeof(buf) ? BN_bn2binpad(bn, buf, (int) pad) : -1;
        else
                len = BN_num_bytes(bn) <= (int) sizeof(buf) ? BN_bn2bin(bn, buf) : -1;
        if (len < 0)
                return -EIO;
        return b64url_encode(buf, (size_t) len, ret);
}

/* See jose-key-internal.h. */
int jose_key_public_members(const jose_key *key, json_t **ret) {
        _cleanup_(freep) char *a = NULL, *b = NULL;
        json_t *j;
        int r;

        switch (key->alg) {
        case JOSE_ALG_EDDSA:
                r = b64url_encode(key->ed_pk, sizeof(key->ed_pk), &a);
                if (r < 0)
                        return r;
                j = json_pack("{s:s,s:s,s:s}", "kty", "OKP", "crv", "Ed25519", "x", a);
                break;
        case JOSE_ALG_ES256:
                r = pkey_bn_param_b64(key->pkey, OSSL_PKEY_PARAM_EC_PUB_X, P256_COORD_LEN, &a);
                if (r >= 0)
                        r = pkey_bn_param_b64(key->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, P256_COORD_LEN, &b);
                if (r < 0)
                        return r;
                j = json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256", "x", a, "y", b);
                break;
        case JOSE_ALG_RS256:
        case JOSE_ALG_PS256:
                r = pkey_bn_param_b64(key->pkey, OSSL_PKEY_PARAM_RSA_N, 0, &a);
                if (r >= 0)
                        r = pkey_bn_param_b64(key->pkey, OSSL_PKEY_PARAM_RSA_E, 0, &b);
                if (r < 0)
                        return r;
                j = json_pack("{s:s,s:s,s:s}", "kty", "RSA", "n", a, "e", b);
                break;
        default:
                return -EINVAL;
        }
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

/* Fill key->thumbprint and, when key->kid is empty, key->kid from it.
 * RFC 7638 §3.2/§3.3: required members only, lexicographic order
 * (JSON_SORT_KEYS: the names are ASCII), no whitespace; the values are
 * base64url or fixed names, so nothing is escaped. Returns 0, -EIO,
 * -ENOMEM. */
static int key_init_thumbprint(jose_key *key) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_(freep) char *s = NULL;
        uint8_t hash[crypto_hash_sha256_BYTES];
        int r;

        r = jose_key_public_members(key, &j);
        if (r < 0)
                return r;
        s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s)
                return -ENOMEM;

        crypto_hash_sha256(hash, (const uint8_t *) s, strlen(s));
        sodium_bin2base64(key->thumbprint, sizeof(key->thumbprint), hash, sizeof(hash),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        if (key->kid[0] == 0) {
                memcpy(key->kid, key->thumbprint, JOSE_KID_LEN);
                key->kid[JOSE_KID_LEN] = 0;
        }
        return 0;
}

/* ---- construction ------------------------------------------------------ */

/* Classify an OpenSSL key and check the size/curve policy. */
static int pkey_classify(EVP_PKEY *pkey, jose_alg *ret) {
        if (EVP_PKEY_is_a(pkey, "ED25519")) {
                *ret = JOSE_ALG_EDDSA;
                return 0;
        }
        if (EVP_PKEY_is_a(pkey, "EC")) {
                char group[64];
                if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) ||
                    !streq(group, SN_X9_62_prime256v1))
                        return -EOPNOTSUPP;
                *ret = JOSE_ALG_ES256;
                return 0;
        }
        /* RFC 8725 §3.1 one key, one alg: an RSASSA-PSS key (its own OID in
         * PKCS#8) signs PS256, a plain rsaEncryption key RS256. */
        if (EVP_PKEY_is_a(pkey, "RSA-PSS") || EVP_PKEY_is_a(pkey, "RSA")) {
                int bits = EVP_PKEY_get_bits(pkey);
                if (bits < JOSE_RSA_MIN_BITS || bits > JOSE_RSA_MAX_BITS)
                        return -EOPNOTSUPP;
                *ret = EVP_PKEY_is_a(pkey, "RSA-PSS") ? JOSE_ALG_PS256 : JOSE_ALG_RS256;
                return 0;
        }
        return -EOPNOTSUPP;
}

int jose_key_new_from_pkey(EVP_PKEY *pkey, jose_alg alg, bool has_private, const char *kid, jose_key **ret) {
        _cleanup_(jose_key_freep) jose_key *key = NULL;
        size_t len = ED25519_KEY_LEN;
        int r;

        r = jose_sodium_ready();
        if (r < 0)
                return r;
        key = calloc(1, sizeof(*key));
        if (!key)
                return -ENOMEM;
        key->alg = alg;
        key->has_private = has_private;
        if (kid) {
                if (strlen(kid) > JOSE_KID_MAX)
                        return -EINVAL;
                strcpy(key->kid, kid);
        }

        if (alg == JOSE_ALG_EDDSA) {
                if (!EVP_PKEY_get_raw_public_key(pkey, key->ed_pk, &len) || len != ED25519_KEY_LEN)
                        return -EIO;
                if (has_private) {
                        uint8_t seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES];

                        key->ed_sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
                        if (!key->ed_sk)
                                return -ENOMEM;
                        len = sizeof(seed);
                        if (!EVP_PKEY_get_raw_private_key(pkey, seed, &len) || len != sizeof(seed)) {
                                sodium_memzero(seed, sizeof(seed));
                                return -EIO;
                        }
                        r = crypto_sign_seed_keypair(pk, key->ed_sk, seed);
                        sodium_memzero(seed, sizeof(seed));
                        /* The seed must belong to the public key OpenSSL
                         * reports (a PKCS#8 v2 file may carry both). */
                        if (r != 0 || sodium_memcmp(pk, key->ed_pk, sizeof(pk)) != 0)
                                return -EIO;
                }
        }

        /* Signatures of private keys must fit the JOSE_MAX_SIG_LEN buffer
         * callers of jose_key_sign() provide. */
        if (has_private && EVP_PKEY_get_size(pkey) > (int) JOSE_MAX_SIG_LEN)
                return -EOPNOTSUPP;

        key->pkey = pkey;
        r = key_init_thumbprint(key);
        if (r < 0) {
                key->pkey = NULL; /* not ours on failure */
                return r;
        }
        r = key_init_templates(key);
        if (r < 0) {
                key->pkey = NULL; /* templates hold their own references */
                return r;
        }
        *ret = TAKE_PTR(key);
        return 0;
}

int jose_key_generate(jose_alg alg, jose_key **ret) {
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        switch (alg) {
        case JOSE_ALG_EDDSA:
                pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
                break;
        case JOSE_ALG_ES256:
                pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", SN_X9_62_prime256v1);
                break;
        case JOSE_ALG_RS256:
                pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) JOSE_RSA_MIN_BITS);
                break;
        case JOSE_ALG_PS256:
                /* EVP_PKEY_Q_keygen() knows only "RSA", not "RSA-PSS". An
                 * unrestricted RSASSA-PSS key: PS256 sets the parameters. */
                ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
                if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 ||
                    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, JOSE_RSA_MIN_BITS) <= 0 ||
                    EVP_PKEY_generate(ctx, &pkey) <= 0)
                        pkey = NULL;
                break;
        default:
                return -EINVAL;
        }
        if (!pkey) {
                ERR_clear_error();
                return -EIO;
        }
        r = jose_key_new_from_pkey(pkey, alg, true, NULL, ret);
        if (r < 0)
                return r;
        TAKE_PTR(pkey);
        return 0;
}

/* libsodium also refuses small-order and non-canonical encodings. */
int jose_key_new_ed25519_public(const uint8_t pk[static ED25519_KEY_LEN], const char *kid, jose_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        r = jose_sodium_ready();
        if (r < 0)
                return r;
        if (!crypto_core_ed25519_is_valid_point(pk))
                return -EBADMSG;
        pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, ED25519_KEY_LEN);
        if (!pkey) {
                ERR_clear_error();
                return -EIO;
        }
        r = jose_key_new_from_pkey(pkey, JOSE_ALG_EDDSA, false, kid, ret);
        if (r < 0)
                return r;
        TAKE_PTR(pkey);
        return 0;
}

int jose_key_from_ed25519_public(const uint8_t pk[static 32], jose_key **ret) {
        return jose_key_new_ed25519_public(pk, NULL, ret);
}

/* ---- PEM ----------------------------------------------------------------- */

typedef struct pem_pass {
        const char *passphrase;
        bool asked;
} pem_pass;

/* Never prompt (OpenSSL's default callback reads the terminal): hand out
 * the configured passphrase or fail. */
static int pem_pass_cb(char *buf, int size, int rwflag _unused_, void *userdata) {
        pem_pass *p = userdata;
        size_t len;

        p->asked = true;
        if (!p->passphrase)
                return -1;
        len = strlen(p->passphrase);
        if (size < 0 || len > (size_t) size)
                return -1;
        memcpy(buf, p->passphrase, len);
        return (int) len;
}

/* PKCS#8 only: exactly one PEM block, labelled PRIVATE KEY or ENCRYPTED
 * PRIVATE KEY. Traditional "RSA/EC PRIVATE KEY" blocks (no algorithm
 * identifier, legacy encryption) never reach the decoder. */
static int pem_check_label(const char *pem, size_t len, bool *ret_encrypted) {
        const char *p, *end = pem + len, *found = NULL;

        for (p = pem; (p = memmem(p, (size_t) (end - p), PEM_ANY_LABEL, strlen(PEM_ANY_LABEL))); p++) {
                if (found)
                        return -EBADMSG;
                found = p;
        }
        if (!found)
                return -EBADMSG;
        if ((size_t) (end - found) > strlen(PEM_PLAIN_LABEL) &&
            memcmp(found, PEM_PLAIN_LABEL, strlen(PEM_PLAIN_LABEL)) == 0 &&
            (found[strlen(PEM_PLAIN_LABEL)] == '\n' || found[strlen(PEM_PLAIN_LABEL)] == '\r')) {
                *ret_encrypted = false;
                return 0;
        }
        if ((size_t) (end - found) > strlen(PEM_ENCRYPTED_LABEL) &&
            memcmp(found, PEM_ENCRYPTED_LABEL, strlen(PEM_ENCRYPTED_LABEL)) == 0 &&
            (found[strlen(PEM_ENCRYPTED_LABEL)] == '\n' || found[strlen(PEM_ENCRYPTED_LABEL)] == '\r')) {
                *ret_encrypted = true;
                return 0;
        }
        return -EBADMSG;
}

/* An RSASSA-PSS key may carry parameter restrictions (RFC 4055 §3.1) that
 * OpenSSL enforces: digest, MGF1 digest, minimum salt length. Refuse at
 * load time a key that cannot make PS256 signatures rather than fail on
 * every sign later: one trial signature tells, whatever the encoding. */
static int pss_check_restrictions(const jose_key *key) {
        static const char probe[] = "tokend PS256 parameter probe";
        uint8_t sig[JOSE_MAX_SIG_LEN];
        size_t len;

        if (key->alg != JOSE_ALG_PS256)
                return 0;
        if (jose_key_sign(key, probe, sizeof(probe) - 1, sig, &len) < 0 ||
            jose_key_verify(key, probe, sizeof(probe) - 1, sig, len) < 0)
                return -EOPNOTSUPP;
        return 0;
}

int jose_key_load_pem(const char *pem, size_t len, const char *passphrase, jose_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        _cleanup_(jose_key_freep) jose_key *key = NULL;
        _cleanup_(BIO_freep) BIO *bio = NULL;
        pem_pass pass = { .passphrase = passphrase };
        bool encrypted;
        jose_alg alg;
        int r;

        if (len > JOSE_PEM_MAX_BYTES)
                return -E2BIG;
        if (!pem || memchr(pem, 0, len))
                return -EBADMSG;
        r = pem_check_label(pem, len, &encrypted);
        if (r < 0)
                return r;

        bio = BIO_new_mem_buf(pem, (int) len);
        if (!bio)
                return -ENOMEM;
        pkey = PEM_read_bio_PrivateKey_ex(bio, NULL, pem_pass_cb, &pass, NULL, NULL);
        ERR_clear_error();
        if (!pkey)
                return encrypted ? -EKEYREJECTED : -EBADMSG;

        r = pkey_classify(pkey, &alg);
        if (r < 0)
                return r;
        r = jose_key_new_from_pkey(pkey, alg, true, NULL, &key);
        if (r < 0)
                return r;
        TAKE_PTR(pkey);
        r = pss_check_restrictions(key);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(key);
        return 0;
}

int jose_key_load_pem_fd(int fd, const char *passphrase, jose_key **ret) {
        char *buf = NULL;
        size_t len = 0;
        struct stat st;
        int r;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if (st.st_size > (off_t) JOSE_PEM_MAX_BYTES)
                return -E2BIG;

        r = jose_sodium_ready();
        if (r < 0)
                return r;
        /* The PEM text is the key (or its encrypted form): locked, not
         * dumped, wiped by sodium_free(). One byte more than the cap, so a
         * file that grew is noticed. */
        buf = sodium_malloc(JOSE_PEM_MAX_BYTES + 1U);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + len, JOSE_PEM_MAX_BYTES + 1U - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto out;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > JOSE_PEM_MAX_BYTES) {
                        r = -E2BIG;
                        goto out;
                }
        }
        r = jose_key_load_pem(buf, len, passphrase, ret);
out:
        sodium_free(buf);
        return r;
}

int jose_key_load_pem_file(const char *path, const char *passphrase, jose_key **ret) {
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return -errno;
        return jose_key_load_pem_fd(fd, passphrase, ret);
}

int jose_key_to_pem(const jose_key *key, const char *passphrase, char **ret) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        char *data, *s;
        long n;
        int ok;

        if (!key || !key->has_private)
                return -EINVAL;
        if (passphrase && (passphrase[0] == 0 || strlen(passphrase) > INT_MAX))
                return -EINVAL;

        /* secmem BIO: its buffer is cleansed when freed. */
        bio = BIO_new(BIO_s_secmem());
        if (!bio)
                return -ENOMEM;
        if (passphrase)
                /* PKCS#8 v2 PBES2: PBKDF2 (HMAC-SHA256) + AES-256-CBC. */
                ok = PEM_write_bio_PKCS8PrivateKey(bio, key->pkey, EVP_aes_256_cbc(), passphrase,
                                                   (int) strlen(passphrase), NULL, NULL);
        else
                ok = PEM_write_bio_PKCS8PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL);
        if (!ok) {
                ERR_clear_error();
                return -EIO;
        }
        n = BIO_get_mem_data(bio, &data);
        if (n <= 0)
                return -EIO;
        s = malloc((size_t) n + 1U);
        if (!s)
                return -ENOMEM;
        memcpy(s, data, (size_t) n);
        s[n] = 0;
        *ret = s;
        return 0;
}

int jose_key_write_pem_fd(const jose_key *key, int fd, const char *passphrase) {
        _cleanup_(erase_and_freep) char *pem = NULL;
        size_t len, done = 0;
        int r;

        r = jose_key_to_pem(key, passphrase, &pem);
        if (r < 0)
                return r;
        len = strlen(pem);
        while (done < len) {
                ssize_t n = write(fd, pem + done, len - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t) n;
        }
        return fsync(fd) < 0 ? -errno : 0;
}

int jose_key_write_pem_file(const jose_key *key, const char *path, const char *passphrase) {
        int fd, r;

        if (!key || !key->has_private)
                return -EINVAL;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        r = jose_key_write_pem_fd(key, fd, passphrase);
        if (close(fd) < 0 && r >= 0)
                r = -errno;
        if (r < 0)
                /* We created it (O_EXCL): do not leave a truncated key behind. */
                (void) unlink(path);
        return r;
}

jose_alg jose_key_alg(const jose_key *key) {
        return key ? key->alg : JOSE_ALG_INVALID;
}

const char *jose_key_kid(const jose_key *key) {
        return key ? key->kid : NULL;
}

bool jose_key_has_private(const jose_key *key) {
        return key && key->has_private;
}

int jose_key_ed25519_public(const jose_key *key, uint8_t out[static 32]) {
        if (!key || key->alg != JOSE_ALG_EDDSA)
                return -EINVAL;
        memcpy(out, key->ed_pk, ED25519_KEY_LEN);
        return 0;
}

/* ---- sign / verify ------------------------------------------------------ */

/* RSA padding for the key's alg; no-op for EC. */
static int pkey_ctx_set_padding(const jose_key *key, EVP_PKEY_CTX *pctx) {
        if (key->alg == JOSE_ALG_RS256)
                return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0 ? 0 : -EIO;
        if (key->alg == JOSE_ALG_PS256) {
                /* RFC 7518 §3.5: MGF1 with SHA-256, salt = 32 bytes. */
                if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
                    EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", NULL) <= 0 ||
                    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, PS256_SALT_LEN) <= 0)
                        return -EIO;
        }
        return 0;
}

/* A SHA-256 digest-sign/verify context for key: a copy of the key's
 * template when it has one (EVP_MD_CTX_copy_ex reads it only), else a
 * fresh init. Returns 0 or -EIO; OpenSSL errors are left to the caller. */
static int md_ctx_init(const jose_key *key, EVP_MD_CTX *md, bool sign) {
        const EVP_MD_CTX *tmpl = sign ? key->sign_tmpl : key->verify_tmpl;
        EVP_PKEY_CTX *pctx = NULL;
        int ok;

        if (tmpl)
                return EVP_MD_CTX_copy_ex(md, tmpl) == 1 ? 0 : -EIO;
        ok = sign ? EVP_DigestSignInit_ex(md, &pctx, "SHA256", NULL, NULL, key->pkey, NULL)
                  : EVP_DigestVerifyInit_ex(md, &pctx, "SHA256", NULL, NULL, key->pkey, NULL);
        if (ok <= 0 || pkey_ctx_set_padding(key, pctx) < 0)
                return -EIO;
        return 0;
}

/* Build the per-key templates once. A key OpenSSL cannot initialise for
 * an operation keeps a NULL template and fails that operation later,
 * exactly as before templates existed. Only -ENOMEM is fatal. */
static int key_init_templates(jose_key *key) {
        if (key->alg == JOSE_ALG_EDDSA) /* libsodium, no OpenSSL context */
                return 0;
        for (int sign = 0; sign <= (int) key->has_private; sign++) {
                EVP_MD_CTX *md = EVP_MD_CTX_new();

                if (!md)
                        return -ENOMEM;
                if (md_ctx_init(key, md, sign) < 0) {
                        ERR_clear_error();
                        EVP_MD_CTX_free(md);
                        continue;
                }
                if (sign)
                        key->sign_tmpl = md;
                else
                        key->verify_tmpl = md;
        }
        return 0;
}

static int es256_der_to_raw(const uint8_t *der, size_t der_len, uint8_t out[static ES256_SIG_LEN]) {
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *es = NULL;
        const unsigned char *p = der;
        const BIGNUM *r, *s;

        es = d2i_ECDSA_SIG(NULL, &p, (long) der_len);
        if (!es)
                return -EIO;
        ECDSA_SIG_get0(es, &r, &s);
        if (BN_bn2binpad(r, out, P256_COORD_LEN) < 0 || BN_bn2binpad(s, out + P256_COORD_LEN, P256_COORD_LEN) < 0)
                return -EIO;
        return 0;
}

int jose_key_sign(const jose_key *key, const void *msg, size_t msg_len, uint8_t *sig, size_t *ret_sig_len) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
        uint8_t buf[JOSE_MAX_SIG_LEN];
        size_t len = sizeof(buf);
        int r;

        if (!key || !key->has_private || !sig)
                return -EINVAL;

        if (key->alg == JOSE_ALG_EDDSA) {
                unsigned long long n;
                if (crypto_sign_detached(sig, &n, msg, msg_len, key->ed_sk) != 0)
                        return -EIO;
                *ret_sig_len = (size_t) n;
                return 0;
        }

        md = EVP_MD_CTX_new();
        if (!md)
                return -ENOMEM;
        if (md_ctx_init(key, md, true) < 0 || EVP_DigestSign(md, buf, &len, msg, msg_len) <= 0) {
                ERR_clear_error();
                return -EIO;
        }

        if (key->alg == JOSE_ALG_ES256) {
                /* RFC 7518 §3.4: JWS carries R || S, not DER. */
                r = es256_der_to_raw(buf, len, sig);
                if (r < 0)
                        return r;
                len = ES256_SIG_LEN;
        } else
                memcpy(sig, buf, len);
        *ret_sig_len = len;
        return 0;
}

/* An ES256 r or s must be in 1..n-1. Fixed-width big-endian, so memcmp
 * compares numerically; these values are public. */
static bool p256_scalar_valid(const uint8_t v[static P256_COORD_LEN]) {
        static const uint8_t zero[P256_COORD_LEN] = {};

        return memcmp(v, zero, P256_COORD_LEN) != 0 && memcmp(v, p256_order, P256_COORD_LEN) < 0;
}

/* Raw r||s → DER ECDSA-Sig-Value for OpenSSL. *ret is OPENSSL_malloc'ed. */
static int es256_raw_to_der(const uint8_t *sig, uint8_t **ret, size_t *ret_len) {
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *es = NULL;
        BIGNUM *r = NULL, *s = NULL;
        unsigned char *der = NULL;
        int len;

        es = ECDSA_SIG_new();
        r = BN_bin2bn(sig, P256_COORD_LEN, NULL);
        s = BN_bin2bn(sig + P256_COORD_LEN, P256_COORD_LEN, NULL);
        if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
                BN_free(r);
                BN_free(s);
                return -ENOMEM;
        }
        len = i2d_ECDSA_SIG(es, &der);
        if (len <= 0)
                return -ENOMEM;
        *ret = der;
        *ret_len = (size_t) len;
        return 0;
}

static int verify_evp(const jose_key *key, const void *msg, size_t msg_len, const uint8_t *sig, size_t sig_len) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
        int ok;

        md = EVP_MD_CTX_new();
        if (!md)
                return -ENOMEM;
        if (md_ctx_init(key, md, false) < 0) {
                ERR_clear_error();
                return -EKEYREJECTED;
        }
        ok = EVP_DigestVerify(md, sig, sig_len, msg, msg_len);
        ERR_clear_error();
        return ok == 1 ? 0 : -EKEYREJECTED;
}

int jose_key_verify(const jose_key *key, const void *msg, size_t msg_len, const uint8_t *sig, size_t sig_len) {
        uint8_t *der = NULL;
        size_t der_len;
        int r;

        if (!key || !sig || (!msg && msg_len > 0))
                return -EKEYREJECTED;

        switch (key->alg) {
        case JOSE_ALG_EDDSA:
                if (sig_len != ED25519_SIG_LEN)
                        return -EKEYREJECTED;
                return crypto_sign_verify_detached(sig, msg, msg_len, key->ed_pk) == 0 ? 0 : -EKEYREJECTED;
        case JOSE_ALG_ES256:
                if (sig_len != ES256_SIG_LEN || !p256_scalar_valid(sig) || !p256_scalar_valid(sig + P256_COORD_LEN))
                        return -EKEYREJECTED;
                r = es256_raw_to_der(sig, &der, &der_len);
                if (r < 0)
                        return -EKEYREJECTED;
                r = verify_evp(key, msg, msg_len, der, der_len);
                OPENSSL_free(der);
                return r;
        case JOSE_ALG_RS256:
        case JOSE_ALG_PS256:
                /* RFC 8017 §8.2.2 / §8.1.2: exactly k octets. */
                if (sig_len != (size_t) EVP_PKEY_get_size(key->pkey))
                        return -EKEYREJECTED;
                return verify_evp(key, msg, msg_len, sig, sig_len);
        default:
                return -EKEYREJECTED;
        }
}

void jose_key_thumbprint(const jose_key *key, char out[static JOSE_THUMBPRINT_LEN + 1]) {
        memcpy(out, key->thumbprint, JOSE_THUMBPRINT_LEN + 1);
}
