/* SPDX-License-Identifier: MIT */
/* JWS compact serialization: signing and the RFC 8725 verifier. The token
 * is checked in order of cost: byte cap, character set, segment shape,
 * header JSON and header policy, key choice, signature — the payload is
 * decoded and parsed only after the signature is known to be good. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "b64.h"
#include "jose-jws.h"
#include "jose-key-internal.h"
#include "json-util.h"

/* Header objects are flat; a little depth leaves room for array values. */
#define JWS_HEADER_MAX_DEPTH 4U
/* The largest signature any key we can hold verifies: a public RSA-8192
 * JWK (JOSE_MAX_SIG_LEN bounds only our own private keys). */
#define JWS_MAX_SIG_BYTES (JOSE_RSA_MAX_BITS / 8)

typedef struct jws_parts {
        const char *header;
        size_t header_len;
        const char *payload;
        size_t payload_len;
        const char *sig;
        size_t sig_len;
        size_t signing_input_len; /* header '.' payload */
} jws_parts;

static bool is_b64url_char(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '_';
}

/* Size cap first (so a 1 MiB input costs one comparison), then one pass
 * over the whole input: only [A-Za-z0-9_-] and exactly two dots, header
 * and all three segments non-empty (an empty signature is "none" in
 * disguise). Returns 0, -E2BIG, -EBADMSG. */
static int jws_split(const char *s, size_t len, size_t max, jws_parts *ret) {
        size_t dots[2], n_dots = 0;

        if (len > max)
                return -E2BIG;
        if (!s)
                return -EBADMSG;

        for (size_t i = 0; i < len; i++) {
                if (s[i] == '.') {
                        if (n_dots >= ELEMENTSOF(dots))
                                return -EBADMSG;
                        dots[n_dots++] = i;
                } else if (!is_b64url_char(s[i]))
                        return -EBADMSG;
        }
        if (n_dots != 2)
                return -EBADMSG;
        if (dots[0] == 0 || dots[1] == dots[0] + 1 || dots[1] + 1 == len)
                return -EBADMSG;

        *ret = (jws_parts) {
                .header = s,
                .header_len = dots[0],
                .payload = s + dots[0] + 1,
                .payload_len = dots[1] - dots[0] - 1,
                .sig = s + dots[1] + 1,
                .sig_len = len - dots[1] - 1,
                .signing_input_len = dots[1],
        };
        return 0;
}

bool jws_looks_like_compact(const char *s, size_t len, size_t max) {
        jws_parts parts;

        return jws_split(s, len, max, &parts) >= 0;
}

/* Decode and parse a protected header: strict base64url, at most
 * JWS_MAX_HEADER_BYTES, duplicate members rejected (so a second "alg"
 * cannot hide behind the first). Token segments are public, so they take
 * the fast decoder, into a stack buffer. Returns 0, -EBADMSG, -ENOMEM. */
static int jws_parse_header(const char *h64, size_t h64_len, json_t **ret) {
        uint8_t raw[JWS_MAX_HEADER_BYTES];
        size_t raw_len;
        int r;

        if (h64_len > b64url_encoded_len(JWS_MAX_HEADER_BYTES))
                return -EBADMSG;
        r = b64url_decode_public(h64, h64_len, raw, sizeof(raw), &raw_len);
        if (r < 0)
                return -EBADMSG; /* -ENOBUFS cannot happen after the length check */
        r = td_json_parse_object((const char *) raw, raw_len, JWS_MAX_HEADER_BYTES, JWS_HEADER_MAX_DEPTH, ret,
                              NULL);
        if (r == -E2BIG)
                return -EBADMSG;
        return r;
}

/* Split a token and decode and parse its protected header. Returns 0,
 * -E2BIG, -EBADMSG, -ENOMEM. */
static int jws_open(const char *token, size_t len, jws_parts *parts, json_t **ret) {
        int r;

        r = jws_split(token, len, JWS_MAX_TOKEN_BYTES, parts);
        if (r < 0)
                return r;
        return jws_parse_header(parts->header, parts->header_len, ret);
}

/* Decode the payload; *ret_json is the parsed object or NULL when the
 * payload is not a (strict) JSON object. Returns 0, -EBADMSG, -ENOMEM. */
static int jws_decode_payload(const jws_parts *parts, uint8_t **ret_raw, size_t *ret_len, json_t **ret_json) {
        _cleanup_(freep) uint8_t *raw = NULL;
        json_t *j = NULL;
        size_t raw_len, max;
        int r;

        /* One exact allocation, with room for the NUL of payload_raw. */
        max = b64url_decoded_len(parts->payload_len);
        raw = malloc(max + 1U);
        if (!raw)
                return -ENOMEM;
        r = b64url_decode_public(parts->payload, parts->payload_len, raw, max, &raw_len);
        if (r < 0)
                return -EBADMSG;
        raw[raw_len] = 0;
        r = td_json_parse_object((const char *) raw, raw_len, JWS_MAX_TOKEN_BYTES, TD_JSON_DEFAULT_MAX_DEPTH, &j,
                              NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                j = NULL;

        *ret_raw = TAKE_PTR(raw);
        *ret_len = raw_len;
        *ret_json = j;
        return 0;
}

/* RFC 7515 §4.1 / RFC 8725 §3.1-3.2 header policy, the part that needs
 * no key: no forbidden member, a supported alg. Returns 0 and *ret_alg,
 * or -EBADMSG. */
static int jws_check_header_policy(const json_t *header, jws_flags flags, jose_alg *ret_alg) {
        /* RFC 7515 §4.1.11: we implement no extension, so any crit (even
         * an empty list, which §4.1.11 forbids anyway) is fatal. jku, x5u,
         * x5c and jwk would let the token pick its own key (RFC 8725 §3.10). */
        static const char *const forbidden[] = { "crit", "jku", "x5u", "x5c", "jwk" };
        const char *alg_str;
        jose_alg alg;

        for (size_t i = 0; i < ELEMENTSOF(forbidden); i++)
                if (json_object_get(header, forbidden[i]) &&
                    !((flags & JWS_EMBEDDED_JWK) && streq(forbidden[i], "jwk")))
                        return -EBADMSG;

        alg_str = td_json_object_get_str(header, "alg");
        if (!alg_str)
                return -EBADMSG;
        alg = jose_alg_from_string(alg_str); /* "none", HS*, RS512, … → INVALID */
        if (alg == JOSE_ALG_INVALID)
                return -EBADMSG;
        *ret_alg = alg;
        return 0;
}

/* The whole header check: policy, then the key from the keyset by kid, the
 * algorithm from the key; the header's alg must merely agree. Returns 0
 * and *ret_key, or -EBADMSG / -ENOKEY. */
static int jws_check_header(const json_t *header, const jose_keyset *ks, jws_flags flags,
                            const jose_key **ret_key) {
        const jose_key *key;
        const json_t *kid;
        jose_alg alg;
        int r;

        r = jws_check_header_policy(header, flags, &alg);
        if (r < 0)
                return r;

        kid = json_object_get(header, "kid");
        if (flags & JWS_EMBEDDED_JWK)
                key = jose_keyset_size(ks) == 1 ? jose_keyset_get(ks, 0) : NULL;
        else if (kid) {
                if (!json_is_string(kid))
                        return -EBADMSG;
                key = jose_keyset_find(ks, json_string_value(kid));
        } else if (flags & JWS_ALLOW_NO_KID)
                key = jose_keyset_size(ks) == 1 ? jose_keyset_get(ks, 0) : NULL;
        else
                return -EBADMSG; /* our tokens always name their key */
        if (!key)
                return -ENOKEY;

        /* RFC 8725 §3.1: a key verifies under its own algorithm only. */
        if (jose_key_alg(key) != alg)
                return -EBADMSG;

        *ret_key = key;
        return 0;
}

static const jose_key_jws_cache *jws_key_cache(const jose_key *key);

/* The key of ks whose cached header (jws_key_cache) the token
 * carries byte for byte, or NULL. Such a header was decoded, parsed and
 * passed jws_check_header_policy when it was cached, names that key's kid
 * (unique within a keyset, so jose_keyset_find would pick the same key)
 * and that key's alg: the slow path could only reach the same verdict. */
static const jose_key *jws_cached_header_key(const jose_keyset *ks, const jws_parts *parts,
                                             const json_t **ret_header) {
        size_t n = jose_keyset_size(ks);

        for (size_t i = 0; i < n; i++) {
                const jose_key *k = jose_keyset_get(ks, i);
                const jose_key_jws_cache *c = jws_key_cache(k);

                if (c && c->b64_len == parts->header_len && memcmp(c->b64, parts->header, parts->header_len) == 0) {
                        *ret_header = c->header;
                        return k;
                }
        }
        return NULL;
}

/* jws_verify, and jws_reopen_verified (check_sig false). */
static int verify(const jose_keyset *ks, const char *token, size_t len, jws_flags flags, bool check_sig,
                  jws_result *ret) {
        _cleanup_(json_decrefp) json_t *header = NULL, *payload = NULL;
        _cleanup_(freep) uint8_t *payload_raw = NULL;
        uint8_t sig[JWS_MAX_SIG_BYTES]; /* public: no wipe needed */
        size_t sig_len, payload_len;
        const json_t *cached = NULL;
        const jose_key *key;
        jws_parts parts;
        int r;

        if (!ks || !ret)
                return -EINVAL;

        r = jws_split(token, len, JWS_MAX_TOKEN_BYTES, &parts);
        if (r < 0)
                return r;
        key = jws_cached_header_key(ks, &parts, &cached);
        if (key)
                header = json_incref((json_t *) cached);
        else {
                r = jws_parse_header(parts.header, parts.header_len, &header);
                if (r < 0)
                        return r;
                r = jws_check_header(header, ks, flags, &key);
                if (r < 0)
                        return r;
        }

        /* Length, ES256 r/s range and the signature itself are the key's
         * business: any mismatch is -EKEYREJECTED, and so is a well-formed
         * signature longer than any key's (-ENOBUFS from the decoder). */
        if (check_sig) {
                r = b64url_decode_public(parts.sig, parts.sig_len, sig, sizeof(sig), &sig_len);
                if (r == -ENOBUFS)
                        return -EKEYREJECTED;
                if (r < 0)
                        return r;
                r = jose_key_verify(key, token, parts.signing_input_len, sig, sig_len);
                if (r < 0)
                        return r;
        }

        /* Verified: only now is the payload decoded and parsed. */
        r = jws_decode_payload(&parts, &payload_raw, &payload_len, &payload);
        if (r < 0)
                return r;

        *ret = (jws_result) {
                .header = TAKE_PTR(header),
                .payload = TAKE_PTR(payload),
                .payload_raw = TAKE_PTR(payload_raw),
                .payload_len = payload_len,
                .key = key,
        };
        return 0;
}

int jws_verify(const jose_keyset *ks, const char *token, size_t len, jws_flags flags, jws_result *ret) {
        return verify(ks, token, len, flags, true, ret);
}

int jws_reopen_verified(const jose_keyset *ks, const char *token, size_t len, jws_flags flags, jws_result *ret) {
        return verify(ks, token, len, flags, false, ret);
}

void jws_result_done(jws_result *r) {
        if (!r)
                return;
        json_decrefp(&r->header);
        json_decrefp(&r->payload);
        free(r->payload_raw);
        *r = (jws_result) {};
}

int jws_decode_unverified(const char *token, size_t len, json_t **ret_header, json_t **ret_payload) {
        _cleanup_(json_decrefp) json_t *header = NULL, *payload = NULL;
        _cleanup_(freep) uint8_t *payload_raw = NULL;
        size_t payload_len;
        jws_parts parts;
        int r;

        if (!ret_header || !ret_payload)
                return -EINVAL;

        r = jws_open(token, len, &parts, &header);
        if (r < 0)
                return r;
        r = jws_decode_payload(&parts, &payload_raw, &payload_len, &payload);
        if (r < 0)
                return r;
        if (!payload)
                return -EBADMSG;

        *ret_header = TAKE_PTR(header);
        *ret_payload = TAKE_PTR(payload);
        return 0;
}

int jws_decode_header_unverified(const char *token, size_t len, json_t **ret_header) {
        jws_parts parts;

        if (!ret_header)
                return -EINVAL;
        return jws_open(token, len, &parts, ret_header);
}

/* ---- signing ------------------------------------------------------- */

/* h64 '.' base64url(payload) '.' base64url(sig), no checks on the header:
 * callers have validated or built it and pass it already encoded. */
static int jws_sign_segments(const jose_key *key, const char *h64, const void *payload, size_t payload_len,
                             char **ret, size_t *ret_len) {
        _cleanup_(freep) char *p64 = NULL, *input = NULL;
        _cleanup_(erase_and_freep) char *s64 = NULL;
        uint8_t sig[JOSE_MAX_SIG_LEN];
        size_t h_len, p_len, s_len, in_len, sig_len;
        char *out;
        int r;

        /* Our own verifier refuses anything longer, so never produce it
         * (this also keeps every length below far from overflow). */
        h_len = strlen(h64);
        if (h_len > b64url_encoded_len(JWS_MAX_HEADER_BYTES) || payload_len > JWS_MAX_TOKEN_BYTES)
                return -EINVAL;

        r = b64url_encode(payload, payload_len, &p64);
        if (r < 0)
                return r;
        p_len = strlen(p64);
        in_len = h_len + 1 + p_len;
        if (in_len >= JWS_MAX_TOKEN_BYTES)
                return -EINVAL;

        input = malloc(in_len + 1);
        if (!input)
                return -ENOMEM;
        memcpy(input, h64, h_len);
        input[h_len] = '.';
        memcpy(input + h_len + 1, p64, p_len + 1);

        r = jose_key_sign(key, input, in_len, sig, &sig_len);
        if (r < 0)
                return r;
        r = b64url_encode(sig, sig_len, &s64);
        explicit_bzero(sig, sizeof(sig));
        if (r < 0)
                return r;
        s_len = strlen(s64);
        if (in_len + 1 + s_len > JWS_MAX_TOKEN_BYTES)
                return -EINVAL;

        out = malloc(in_len + 1 + s_len + 1);
        if (!out)
                return -ENOMEM;
        memcpy(out, input, in_len);
        out[in_len] = '.';
        memcpy(out + in_len + 1, s64, s_len + 1);

        *ret = out;
        if (ret_len)
                *ret_len = in_len + 1 + s_len;
        return 0;
}

int jws_sign_bytes(const jose_key *key, const void *header, size_t header_len, const void *payload,
                   size_t payload_len, char **ret) {
        _cleanup_(json_decrefp) json_t *h = NULL;
        _cleanup_(freep) char *h64 = NULL;
        const char *alg;
        int r;

        if (!key || !header || (!payload && payload_len > 0) || !ret)
                return -EINVAL;

        if (td_json_parse_object(header, header_len, JWS_MAX_HEADER_BYTES, JWS_HEADER_MAX_DEPTH, &h, NULL) < 0)
                return -EINVAL;
        alg = td_json_object_get_str(h, "alg");
        if (!alg || jose_alg_from_string(alg) != jose_key_alg(key))
                return -EINVAL;

        r = b64url_encode(header, header_len, &h64);
        if (r < 0)
                return r;
        return jws_sign_segments(key, h64, payload ?: "", payload_len, ret, NULL);
}

/* base64url of the header jws_sign_json emits for key and typ:
 * {"alg":<key alg>,"typ":typ,"kid":<key kid>}, in that order (jansson
 * keeps insertion order), typ omitted when NULL. Returns 0, -EINVAL,
 * -ENOMEM. */
static int jws_header_encode(const jose_key *key, const char *typ, char **ret) {
        _cleanup_(json_decrefp) json_t *h = NULL;
        _cleanup_(freep) char *header = NULL;
        const char *alg, *kid;
        int r;

        alg = jose_alg_to_string(jose_key_alg(key));
        if (!alg)
                return -EINVAL;
        kid = jose_key_kid(key);

        h = json_object();
        if (!h)
                return -ENOMEM;
        if (json_object_set_new(h, "alg", json_string(alg)) < 0)
                return -ENOMEM;
        if (typ && json_object_set_new(h, "typ", json_string(typ)) < 0)
                return -EINVAL; /* NULL from json_string: not UTF-8 */
        if (kid && json_object_set_new(h, "kid", json_string(kid)) < 0)
                return -EINVAL;

        r = td_json_dump_compact(h, &header);
        if (r < 0)
                return r;
        return b64url_encode(header, strlen(header), ret);
}

int jws_sign_json(const jose_key *key, const char *typ, const json_t *payload, char **ret, size_t *ret_len) {
        _cleanup_(freep) char *own_h64 = NULL, *body = NULL;
        const jose_key_jws_cache *c = NULL;
        const char *h64;
        int r;

        if (!key || !payload || !ret)
                return -EINVAL;

        if (typ && streq(typ, JWS_AT_TYP))
                c = jws_key_cache(key);
        if (c)
                h64 = c->b64; /* the very bytes jws_header_encode gives */
        else {
                r = jws_header_encode(key, typ, &own_h64);
                if (r < 0)
                        return r;
                h64 = own_h64;
        }
        r = td_json_dump_compact(payload, &body);
        if (r < 0)
                return r;

        return jws_sign_segments(key, h64, body, strlen(body), ret, ret_len);
}

/* ---- the per-key header cache --------------------------------------- */

/* A new cache entry for key: exactly what jws_sign_json puts on the wire
 * for JWS_AT_TYP, then exactly what the verifier does with it (decode,
 * strict parse, key-free policy) and what jws_check_header would ask of
 * the key it picks. An entry without header when any of it fails. NULL
 * only when out of memory. */
static jose_key_jws_cache *jws_key_cache_build(const jose_key *key) {
        _cleanup_(json_decrefp) json_t *header = NULL;
        _cleanup_(freep) char *h64 = NULL;
        jose_key_jws_cache *c;
        size_t len = 0;
        jose_alg alg;
        bool ok;

        ok = jws_header_encode(key, JWS_AT_TYP, &h64) >= 0 && jws_parse_header(h64, strlen(h64), &header) >= 0 &&
             jws_check_header_policy(header, 0, &alg) >= 0 && alg == jose_key_alg(key) &&
             streq_ptr(td_json_object_get_str(header, "kid"), jose_key_kid(key)) && json_object_size(header) == 3;
        if (ok)
                len = strlen(h64);
        c = malloc(sizeof(*c) + len + 1U);
        if (!c)
                return NULL;
        c->header = ok ? TAKE_PTR(header) : NULL;
        c->b64_len = len;
        memcpy(c->b64, ok ? h64 : "", len + 1U);
        return c;
}

/* key's header cache, built on first use and then kept with the key; NULL
 * when this key's header is not cacheable (or memory ran out: the next
 * call tries again). Keys are const to their users and shared by threads,
 * but the cache slot is filled once, by compare-and-swap: a thread that
 * loses the race frees its own entry and takes the winner's. (A key is
 * always a calloc'ed object, never a const one, so writing the slot is
 * defined.) */
static const jose_key_jws_cache *jws_key_cache(const jose_key *key) {
        jose_key_jws_cache **slot = &((jose_key *) key)->jws_cache;
        jose_key_jws_cache *c = __atomic_load_n(slot, __ATOMIC_ACQUIRE), *expected = NULL;

        if (!c) {
                c = jws_key_cache_build(key);
                if (!c)
                        return NULL;
                if (!__atomic_compare_exchange_n(slot, &expected, c, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                        jose_key_jws_cache_free(c);
                        c = expected;
                }
        }
        return c->header ? c : NULL;
}
