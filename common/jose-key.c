/* JOSE keys (see jose-key.h): OpenSSL 3 holds every key and does PEM,
 * ECDSA and RSA; Ed25519 signatures go through libsodium, whose 64-byte
 * secret key lives in guarded sodium_malloc() memory. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b64.h"
#include "jose-key.h"
#include "json-util.h"

#define ED25519_KEY_LEN 32U
#define ED25519_SIG_LEN 64U
#define P256_COORD_LEN 32U
#define ES256_SIG_LEN (2U * P256_COORD_LEN)
#define PS256_SALT_LEN 32 /* RFC 7518 §3.5: salt size = hash output size */
#define RSA_MAX_BYTES (JOSE_RSA_MAX_BITS / 8)
#define RSA_MAX_E_BYTES 8U
#define JOSE_KID_MAX 64U
#define JWKS_MAX_BYTES (1024U * 1024U)
#define JWKS_MAX_KEYS 100U

#define PEM_PLAIN_LABEL "-----BEGIN PRIVATE KEY-----"
#define PEM_ENCRYPTED_LABEL "-----BEGIN ENCRYPTED PRIVATE KEY-----"
#define PEM_ANY_LABEL "-----BEGIN "

/* Order n of the P-256 group (SEC 2 §2.4.2), big-endian. r and s of an
 * ECDSA signature must lie in 1..n-1 (FIPS 186-4 §6.4.2). */
static const uint8_t p256_order[P256_COORD_LEN] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

struct jose_key {
        jose_alg alg;
        EVP_PKEY *pkey;
        bool has_private;
        uint8_t ed_pk[ED25519_KEY_LEN];
        uint8_t *ed_sk; /* sodium_malloc'ed crypto_sign_SECRETKEYBYTES, private Ed25519 only */
        char thumbprint[JOSE_THUMBPRINT_LEN + 1];
        char kid[JOSE_KID_MAX + 1];
};

struct jose_keyset {
        jose_key **keys;
        size_t n;
};

static void EVP_PKEY_freep(EVP_PKEY **p) {
        EVP_PKEY_free(*p);
}
static void EVP_PKEY_CTX_freep(EVP_PKEY_CTX **p) {
        EVP_PKEY_CTX_free(*p);
}
static void EVP_MD_CTX_freep(EVP_MD_CTX **p) {
        EVP_MD_CTX_free(*p);
}
static void BIO_freep(BIO **p) {
        BIO_free(*p);
}
static void BN_freep(BIGNUM **p) {
        BN_free(*p);
}
static void ECDSA_SIG_freep(ECDSA_SIG **p) {
        ECDSA_SIG_free(*p);
}
static void OSSL_PARAM_BLD_freep(OSSL_PARAM_BLD **p) {
        OSSL_PARAM_BLD_free(*p);
}
static void OSSL_PARAM_freep(OSSL_PARAM **p) {
        OSSL_PARAM_free(*p);
}

static int ensure_sodium(void) {
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

void jose_key_free(jose_key *key) {
        if (!key)
                return;
        EVP_PKEY_free(key->pkey);
        sodium_free(key->ed_sk); /* wipes; accepts NULL */
        free(key);
}

/* ---- public components and thumbprint --------------------------------- */

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

/* The RFC 7638 §3.2 required members, as base64url strings. */
typedef struct jwk_public {
        const char *kty, *crv;
        char *x, *y, *n, *e;
} jwk_public;

static void jwk_public_done(jwk_public *p) {
        free(p->x);
        free(p->y);
        free(p->n);
        free(p->e);
}

static int key_public_members(const jose_key *key, jwk_public *ret) {
        jwk_public p = {};
        int r;

        switch (key->alg) {
        case JOSE_ALG_EDDSA:
                p.kty = "OKP";
                p.crv = "Ed25519";
                r = b64url_encode(key->ed_pk, sizeof(key->ed_pk), &p.x);
                break;
        case JOSE_ALG_ES256:
                p.kty = "EC";
                p.crv = "P-256";
                r = pkey_bn_param_b64(key->pkey, OSSL_PKEY_PARAM_EC_PUB_X, P256_COORD_LEN, &p.x);
                if (r >= 0)
                        r = pkey_bn_param_b64(key->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, P256_COORD_LEN, &p.y);
                break;
        case JOSE_ALG_RS256:
        case JOSE_ALG_PS256:
                p.kty = "RSA";
                r = pkey_bn_param_b64(key->pkey, OSSL_PKEY_PARAM_RSA_N, 0, &p.n);
                if (r >= 0)
                        r = pkey_bn_param_b64(key->pkey, OSSL_PKEY_PARAM_RSA_E, 0, &p.e);
                break;
        default:
                r = -EINVAL;
        }
        if (r < 0) {
                jwk_public_done(&p);
                return r;
        }
        *ret = p;
        return 0;
}

/* RFC 7638 §3.2/§3.3: required members only, lexicographic order, no
 * whitespace; the values are base64url or fixed names, so no escaping. */
static int key_compute_thumbprint(jose_key *key) {
        _cleanup_(jwk_public_done) jwk_public p = {};
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_(freep) char *s = NULL;
        uint8_t hash[crypto_hash_sha256_BYTES];
        int r;

        r = key_public_members(key, &p);
        if (r < 0)
                return r;
        if (p.n)
                j = json_pack("{s:s,s:s,s:s}", "e", p.e, "kty", p.kty, "n", p.n);
        else if (p.y)
                j = json_pack("{s:s,s:s,s:s,s:s}", "crv", p.crv, "kty", p.kty, "x", p.x, "y", p.y);
        else
                j = json_pack("{s:s,s:s,s:s}", "crv", p.crv, "kty", p.kty, "x", p.x);
        if (!j)
                return -ENOMEM;
        r = json_dump_compact(j, &s);
        if (r < 0)
                return r;

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

/* Wrap pkey (ownership taken on success only) as alg. kid may be NULL. */
static int key_new(EVP_PKEY *pkey, jose_alg alg, bool has_private, const char *kid, jose_key **ret) {
        _cleanup_(jose_key_freep) jose_key *key = NULL;
        size_t len = ED25519_KEY_LEN;
        int r;

        r = ensure_sodium();
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
        r = key_compute_thumbprint(key);
        if (r < 0) {
                key->pkey = NULL; /* not ours on failure */
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
        r = key_new(pkey, alg, true, NULL, ret);
        if (r < 0)
                return r;
        TAKE_PTR(pkey);
        return 0;
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
        r = key_new(pkey, alg, true, NULL, &key);
        if (r < 0)
                return r;
        TAKE_PTR(pkey);
        r = pss_check_restrictions(key);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(key);
        return 0;
}

int jose_key_load_pem_file(const char *path, const char *passphrase, jose_key **ret) {
        _cleanup_(closep) int fd = -EBADF;
        char *buf = NULL;
        size_t len = 0;
        struct stat st;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if (st.st_size > (off_t) JOSE_PEM_MAX_BYTES)
                return -E2BIG;

        /* One byte more than the cap, so a file that grew is noticed. */
        buf = malloc(JOSE_PEM_MAX_BYTES + 1U);
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
        erase_and_free_buf(buf, JOSE_PEM_MAX_BYTES + 1U);
        return r;
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

int jose_key_write_pem_file(const jose_key *key, const char *path, const char *passphrase) {
        _cleanup_(erase_and_freep) char *pem = NULL;
        _cleanup_(closep) int fd = -EBADF;
        size_t len, done = 0;
        int r;

        r = jose_key_to_pem(key, passphrase, &pem);
        if (r < 0)
                return r;
        len = strlen(pem);

        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        while (done < len) {
                ssize_t n = write(fd, pem + done, len - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto fail;
                }
                done += (size_t) n;
        }
        if (fsync(fd) < 0) {
                r = -errno;
                goto fail;
        }
        r = close(fd);
        fd = -EBADF;
        if (r < 0) {
                r = -errno;
                goto fail;
        }
        return 0;
fail:
        /* We created it (O_EXCL): do not leave a truncated key behind. */
        (void) unlink(path);
        return r;
}

/* ---- JWK ----------------------------------------------------------------- */

/* Ed25519 public key: 32 bytes that decode to a point of the main subgroup
 * (libsodium also refuses small-order and non-canonical encodings). */
static int key_from_ed25519_pk(const uint8_t pk[static ED25519_KEY_LEN], const char *kid, jose_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        r = ensure_sodium();
        if (r < 0)
                return r;
        if (!crypto_core_ed25519_is_valid_point(pk))
                return -EBADMSG;
        pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, ED25519_KEY_LEN);
        if (!pkey) {
                ERR_clear_error();
                return -EIO;
        }
        r = key_new(pkey, JOSE_ALG_EDDSA, false, kid, ret);
        if (r < 0)
                return r;
        TAKE_PTR(pkey);
        return 0;
}

int jose_key_from_ed25519_public(const uint8_t pk[static 32], jose_key **ret) {
        return key_from_ed25519_pk(pk, NULL, ret);
}

static int pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **ret) {
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        _cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *check = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;

        params = OSSL_PARAM_BLD_to_param(bld);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
        if (!params || !ctx)
                return -ENOMEM;
        if (EVP_PKEY_fromdata_init(ctx) <= 0 || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
                ERR_clear_error();
                return -EBADMSG;
        }
        /* EC: the point must be on the curve, coordinates < p; RSA: sane
         * n and e. */
        check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!check)
                return -ENOMEM;
        if (EVP_PKEY_public_check(check) != 1) {
                ERR_clear_error();
                return -EBADMSG;
        }
        *ret = TAKE_PTR(pkey);
        return 0;
}

static int jwk_ec_pkey(const json_t *jwk, EVP_PKEY **ret) {
        _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
        uint8_t point[1U + 2U * P256_COORD_LEN];
        const char *x = json_object_get_str(jwk, "x"), *y = json_object_get_str(jwk, "y");

        if (!x || !y)
                return -EBADMSG;
        /* SEC 1 §2.3.3 uncompressed point: 04 || X || Y, fixed width
         * coordinates (RFC 7518 §6.2.1.2). */
        point[0] = POINT_CONVERSION_UNCOMPRESSED;
        if (b64url_decode_exact(x, strlen(x), point + 1, P256_COORD_LEN) < 0 ||
            b64url_decode_exact(y, strlen(y), point + 1 + P256_COORD_LEN, P256_COORD_LEN) < 0)
                return -EBADMSG;

        bld = OSSL_PARAM_BLD_new();
        if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1, 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
                return -ENOMEM;
        return pkey_fromdata("EC", bld, ret);
}

/* Decode an RSA integer member: canonical base64url, minimal (no leading
 * zero byte, RFC 7518 §6.3.1), at most max_len bytes. */
static int jwk_rsa_bn(const json_t *jwk, const char *name, size_t max_len, BIGNUM **ret) {
        _cleanup_(freep) uint8_t *buf = NULL;
        const char *s = json_object_get_str(jwk, name);
        size_t len;
        BIGNUM *bn;

        if (!s || strlen(s) > b64url_encoded_len(max_len))
                return -EBADMSG;
        if (b64url_decode(s, strlen(s), &buf, &len) < 0 || len == 0 || len > max_len || buf[0] == 0)
                return -EBADMSG;
        bn = BN_bin2bn(buf, (int) len, NULL);
        if (!bn)
                return -ENOMEM;
        *ret = bn;
        return 0;
}

static int jwk_rsa_pkey(const json_t *jwk, EVP_PKEY **ret) {
        _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
        _cleanup_(BN_freep) BIGNUM *n = NULL, *e = NULL;
        int r, bits;

        r = jwk_rsa_bn(jwk, "n", RSA_MAX_BYTES, &n);
        if (r < 0)
                return r;
        r = jwk_rsa_bn(jwk, "e", RSA_MAX_E_BYTES, &e);
        if (r < 0)
                return r;
        bits = BN_num_bits(n);
        if (bits < JOSE_RSA_MIN_BITS || bits > JOSE_RSA_MAX_BITS)
                return -EOPNOTSUPP;
        /* e odd and > 1 (SP 800-56B §6.2.1 wants ≥ 65537; 3 exists in the wild). */
        if (!BN_is_odd(e) || BN_is_one(e))
                return -EBADMSG;

        bld = OSSL_PARAM_BLD_new();
        if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
                return -ENOMEM;
        return pkey_fromdata("RSA", bld, ret);
}

/* RFC 7517 §4.5: a kid is any string; ours are bounded and header-safe. */
static bool kid_valid(const char *kid) {
        size_t len = strlen(kid);

        if (len == 0 || len > JOSE_KID_MAX)
                return false;
        return strspn(kid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

int jose_key_from_jwk(const json_t *jwk, jose_key **ret) {
        static const char *const private_members[] = { "d", "p", "q", "dp", "dq", "qi", "oth", "k" };
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        const json_t *v;
        const char *kty, *crv, *kid = NULL;
        jose_alg alg = JOSE_ALG_INVALID, want;
        int r;

        if (!json_is_object(jwk))
                return -EBADMSG;
        /* A private (or symmetric) key in a public key set is an operator
         * mistake that leaks a secret: refuse loudly, not as "malformed". */
        for (size_t i = 0; i < ELEMENTSOF(private_members); i++)
                if (json_object_get(jwk, private_members[i]))
                        return -EPERM;

        kty = json_object_get_str(jwk, "kty");
        if (!kty)
                return -EBADMSG;
        v = json_object_get(jwk, "alg");
        if (v) {
                alg = jose_alg_from_string(json_string_value(v));
                if (alg == JOSE_ALG_INVALID)
                        return -EBADMSG;
        }
        /* RFC 7517 §4.2: we only ever verify signatures. */
        v = json_object_get(jwk, "use");
        if (v && !streq_ptr(json_string_value(v), "sig"))
                return -EBADMSG;
        v = json_object_get(jwk, "kid");
        if (v) {
                kid = json_string_value(v);
                if (!kid || !kid_valid(kid))
                        return -EBADMSG;
        }

        if (streq(kty, "OKP")) {
                uint8_t pk[ED25519_KEY_LEN];
                const char *x;

                crv = json_object_get_str(jwk, "crv");
                if (!crv)
                        return -EBADMSG;
                if (!streq(crv, "Ed25519")) /* RFC 8037: Ed448, X25519, X448 */
                        return -EOPNOTSUPP;
                if (alg != JOSE_ALG_INVALID && alg != JOSE_ALG_EDDSA)
                        return -EBADMSG;
                x = json_object_get_str(jwk, "x");
                if (!x || b64url_decode_exact(x, strlen(x), pk, sizeof(pk)) < 0)
                        return -EBADMSG;
                return key_from_ed25519_pk(pk, kid, ret);
        }

        if (streq(kty, "EC")) {
                crv = json_object_get_str(jwk, "crv");
                if (!crv)
                        return -EBADMSG;
                if (!streq(crv, "P-256"))
                        return -EOPNOTSUPP;
                if (alg != JOSE_ALG_INVALID && alg != JOSE_ALG_ES256)
                        return -EBADMSG;
                want = JOSE_ALG_ES256;
                r = jwk_ec_pkey(jwk, &pkey);
        } else if (streq(kty, "RSA")) {
                /* The same modulus could verify RS256 or PS256; the JWK must
                 * say which one this key is bound to (RFC 8725 §3.1). */
                if (alg != JOSE_ALG_RS256 && alg != JOSE_ALG_PS256)
                        return -EBADMSG;
                want = alg;
                r = jwk_rsa_pkey(jwk, &pkey);
        } else
                return -EOPNOTSUPP;
        if (r < 0)
                return r;

        r = key_new(pkey, want, false, kid, ret);
        if (r < 0)
                return r;
        TAKE_PTR(pkey);
        return 0;
}

int jose_key_to_jwk(const jose_key *key, json_t **ret) {
        _cleanup_(jwk_public_done) jwk_public p = {};
        json_t *j;
        int r;

        if (!key)
                return -EINVAL;
        r = key_public_members(key, &p);
        if (r < 0)
                return r;
        if (p.n)
                j = json_pack("{s:s,s:s,s:s}", "kty", p.kty, "n", p.n, "e", p.e);
        else if (p.y)
                j = json_pack("{s:s,s:s,s:s,s:s}", "kty", p.kty, "crv", p.crv, "x", p.x, "y", p.y);
        else
                j = json_pack("{s:s,s:s,s:s}", "kty", p.kty, "crv", p.crv, "x", p.x);
        if (!j)
                return -ENOMEM;
        if (json_object_set_new(j, "kid", json_string(key->kid)) < 0 ||
            json_object_set_new(j, "alg", json_string(jose_alg_to_string(key->alg))) < 0 ||
            json_object_set_new(j, "use", json_string("sig")) < 0) {
                json_decref(j);
                return -ENOMEM;
        }
        *ret = j;
        return 0;
}

void jose_key_thumbprint(const jose_key *key, char out[static JOSE_THUMBPRINT_LEN + 1]) {
        memcpy(out, key->thumbprint, JOSE_THUMBPRINT_LEN + 1);
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
        EVP_PKEY_CTX *pctx = NULL;
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
        if (EVP_DigestSignInit_ex(md, &pctx, "SHA256", NULL, NULL, key->pkey, NULL) <= 0 ||
            pkey_ctx_set_padding(key, pctx) < 0 || EVP_DigestSign(md, buf, &len, msg, msg_len) <= 0) {
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
        EVP_PKEY_CTX *pctx = NULL;
        int ok;

        md = EVP_MD_CTX_new();
        if (!md)
                return -ENOMEM;
        if (EVP_DigestVerifyInit_ex(md, &pctx, "SHA256", NULL, NULL, key->pkey, NULL) <= 0 ||
            pkey_ctx_set_padding(key, pctx) < 0) {
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

/* ---- key sets ------------------------------------------------------------ */

int jose_keyset_new(jose_keyset **ret) {
        jose_keyset *ks = calloc(1, sizeof(*ks));

        if (!ks)
                return -ENOMEM;
        *ret = ks;
        return 0;
}

void jose_keyset_free(jose_keyset *ks) {
        if (!ks)
                return;
        for (size_t i = 0; i < ks->n; i++)
                jose_key_free(ks->keys[i]);
        free(ks->keys);
        free(ks);
}

size_t jose_keyset_size(const jose_keyset *ks) {
        return ks ? ks->n : 0;
}

const jose_key *jose_keyset_get(const jose_keyset *ks, size_t i) {
        return ks && i < ks->n ? ks->keys[i] : NULL;
}

const jose_key *jose_keyset_find(const jose_keyset *ks, const char *kid) {
        if (!ks || !kid)
                return NULL;
        for (size_t i = 0; i < ks->n; i++)
                if (streq(ks->keys[i]->kid, kid))
                        return ks->keys[i];
        return NULL;
}

int jose_keyset_add(jose_keyset *ks, jose_key *key) {
        jose_key **k;

        if (!ks || !key)
                return -EINVAL;
        if (jose_keyset_find(ks, key->kid))
                return -EEXIST;
        k = reallocarray(ks->keys, ks->n + 1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k[ks->n++] = key;
        ks->keys = k;
        return 0;
}

int jose_keyset_from_jwks(const char *json, size_t len, jose_keyset **ret) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        _cleanup_(json_decrefp) json_t *j = NULL;
        const json_t *keys, *v;
        size_t i;
        int r;

        r = json_parse_object(json, len, JWKS_MAX_BYTES, JSON_DEFAULT_MAX_DEPTH, &j, NULL);
        if (r < 0)
                return r;
        keys = json_object_get(j, "keys");
        if (!json_is_array(keys))
                return -EBADMSG;
        if (json_array_size(keys) > JWKS_MAX_KEYS)
                return -E2BIG;

        r = jose_keyset_new(&ks);
        if (r < 0)
                return r;
        json_array_foreach (keys, i, v) {
                _cleanup_(jose_key_freep) jose_key *key = NULL;

                r = jose_key_from_jwk(v, &key);
                if (r < 0)
                        return r;
                r = jose_keyset_add(ks, key);
                if (r < 0)
                        return r;
                TAKE_PTR(key);
        }
        *ret = TAKE_PTR(ks);
        return 0;
}

int jose_keyset_to_jwks(const jose_keyset *ks, json_t **ret) {
        _cleanup_(json_decrefp) json_t *arr = NULL;
        json_t *j;
        int r;

        if (!ks)
                return -EINVAL;
        arr = json_array();
        if (!arr)
                return -ENOMEM;
        for (size_t i = 0; i < ks->n; i++) {
                json_t *jwk;

                r = jose_key_to_jwk(ks->keys[i], &jwk);
                if (r < 0)
                        return r;
                if (json_array_append_new(arr, jwk) < 0)
                        return -ENOMEM;
        }
        j = json_pack("{s:O}", "keys", arr);
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}
