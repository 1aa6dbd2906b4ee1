/* SPDX-License-Identifier: MIT */
/* Strict base64url: canonical round trips, and every non-canonical form
 * rejected next to a control that is accepted — by both decoders: the
 * libsodium one (secrets) and the OpenSSL-backed one (public token
 * segments), which must agree on every input. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "b64.h"

static int decode_str(const char *s, uint8_t **ret, size_t *ret_len) {
        return b64url_decode(s, strlen(s), ret, ret_len);
}

static void assert_decodes_to(const char *s, const void *want, size_t want_len) {
        _cleanup_(freep) uint8_t *out = NULL;
        uint8_t pub[64];
        size_t len = 0;

        assert_int_equal(decode_str(s, &out, &len), 0);
        assert_int_equal(len, want_len);
        assert_memory_equal(out, want, want_len);
        assert_int_equal(out[len], 0);

        len = 0;
        assert_int_equal(b64url_decode_public(s, strlen(s), pub, sizeof(pub), &len), 0);
        assert_int_equal(len, want_len);
        assert_memory_equal(pub, want, want_len);
        assert_int_equal(b64url_decoded_len(strlen(s)), want_len);
        /* An exactly sized buffer is enough (the last group is not
         * decoded in place), one byte less is -ENOBUFS. */
        assert_int_equal(b64url_decode_public(s, strlen(s), pub, want_len, &len), 0);
        if (want_len > 0)
                assert_int_equal(b64url_decode_public(s, strlen(s), pub, want_len - 1, &len), -ENOBUFS);
}

static void assert_rejected(const char *s) {
        uint8_t *out = (uint8_t *) 0x1, pub[64];
        size_t len = 12345;

        assert_int_equal(decode_str(s, &out, &len), -EBADMSG);
        /* Nothing written on failure. */
        assert_ptr_equal(out, (uint8_t *) 0x1);
        assert_int_equal(len, 12345);

        assert_int_equal(b64url_decode_public(s, strlen(s), pub, sizeof(pub), &len), -EBADMSG);
        assert_int_equal(len, 12345);
        /* Malformed stays -EBADMSG, not -ENOBUFS, when it would not fit. */
        assert_int_equal(b64url_decode_public(s, strlen(s), pub, 0, &len), -EBADMSG);
}

static void test_encoded_len(void **state _unused_) {
        assert_int_equal(b64url_encoded_len(0), 0);
        assert_int_equal(b64url_encoded_len(1), 2);
        assert_int_equal(b64url_encoded_len(2), 3);
        assert_int_equal(b64url_encoded_len(3), 4);
        assert_int_equal(b64url_encoded_len(32), 43);
        assert_int_equal(b64url_encoded_len(64), 86);
}

/* Every length 0..70: encode → canonical alphabet, right length → decode
 * back to the same bytes; re-encoding the decoded bytes gives the text. */
static void test_round_trip(void **state _unused_) {
        uint8_t in[71];

        for (size_t i = 0; i < sizeof(in); i++)
                in[i] = (uint8_t) (i * 37U + 0xf9U); /* hits '-' and '_' */

        for (size_t n = 0; n <= 70; n++) {
                _cleanup_(freep) char *s = NULL, *again = NULL;
                _cleanup_(freep) uint8_t *out = NULL;
                size_t len;

                assert_int_equal(b64url_encode(in, n, &s), 0);
                assert_int_equal(strlen(s), b64url_encoded_len(n));
                assert_int_equal(strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                                 strlen(s));
                assert_int_equal(b64url_decode(s, strlen(s), &out, &len), 0);
                assert_int_equal(len, n);
                assert_memory_equal(out, in, n);
                assert_int_equal(b64url_encode(out, len, &again), 0);
                assert_string_equal(again, s);
        }
}

/* RFC 4648 §10 test vectors, base64url without padding. */
static void test_rfc4648_vectors(void **state _unused_) {
        assert_decodes_to("", "", 0);
        assert_decodes_to("Zg", "f", 1);
        assert_decodes_to("Zm8", "fo", 2);
        assert_decodes_to("Zm9v", "foo", 3);
        assert_decodes_to("Zm9vYg", "foob", 4);
        assert_decodes_to("Zm9vYmE", "fooba", 5);
        assert_decodes_to("Zm9vYmFy", "foobar", 6);
        /* the URL-safe alphabet: 0xfb 0xff → "-_8" */
        assert_decodes_to("-_8", "\xfb\xff", 2);
}

static void test_reject_padding(void **state _unused_) {
        assert_decodes_to("Zg", "f", 1);
        assert_rejected("Zg==");
        assert_rejected("Zg=");
        assert_rejected("Zm8=");
        assert_rejected("Zm9v=");
        assert_rejected("=");
}

static void test_reject_std_alphabet(void **state _unused_) {
        assert_decodes_to("-_8", "\xfb\xff", 2);
        assert_rejected("+/8");
        assert_rejected("-/8");
        assert_rejected("+_8");
}

static void test_reject_whitespace(void **state _unused_) {
        assert_decodes_to("Zm9vYmFy", "foobar", 6);
        assert_rejected("Zm9v YmFy");
        assert_rejected("Zm9v\nYmFy");
        assert_rejected("Zm9vYmFy\n");
        assert_rejected(" Zm9vYmFy");
        assert_rejected("Zm9v\tYmFy");
        assert_rejected("Zm9v\rYmFy");
}

/* One byte "f" (0x66) is "Zg"; "Zh".."Zv" carry the same byte with non-zero
 * trailing bits: alternative encodings of one value must not decode. */
static void test_reject_trailing_bits(void **state _unused_) {
        assert_decodes_to("Zg", "f", 1);
        assert_rejected("Zh");
        assert_rejected("Zi");
        assert_rejected("Zv");
        assert_decodes_to("Zm8", "fo", 2);
        assert_rejected("Zm9");
        assert_rejected("Zm-");
}

static void test_reject_bad_length(void **state _unused_) {
        assert_decodes_to("Zm9vYg", "foob", 4);
        assert_rejected("Z");
        assert_rejected("Zm9vY");
        assert_rejected("Zm9vYmFyZ");
}

static void test_reject_other_bytes(void **state _unused_) {
        uint8_t *out, buf[8];
        size_t len;

        assert_decodes_to("Zm9v", "foo", 3);
        assert_rejected("Zm9.");
        assert_rejected("Zm9\xc3\xa9");
        /* High bytes where a whole sextet goes: libsodium 1.0.18 alone
         * takes them for '_' ("\x80A" would be "_A", 0xfc). */
        assert_decodes_to("_A", "\xfc", 1);
        assert_rejected("\x80" "A");
        assert_rejected("\xff" "A");
        assert_rejected("Zm\xc3\xa9");
        assert_rejected("\x80" "AAA");
        /* An embedded NUL inside the counted length. */
        assert_int_equal(b64url_decode("Zm\0v", 4, &out, &len), -EBADMSG);
        assert_int_equal(b64url_decode_public("Zm\0v", 4, buf, sizeof(buf), &len), -EBADMSG);
        assert_int_equal(b64url_decode_public("Zm9\0", 4, buf, sizeof(buf), &len), -EBADMSG);
        /* Only len characters are read: the tail after them is ignored. */
        assert_int_equal(b64url_decode("Zm9v====", 4, &out, &len), 0);
        assert_int_equal(len, 3);
        free(out);
        assert_int_equal(b64url_decode_public("Zm9v====", 4, buf, sizeof(buf), &len), 0);
        assert_int_equal(len, 3);
        assert_int_equal(b64url_decode_public(NULL, 0, buf, sizeof(buf), &len), 0);
        assert_int_equal(len, 0);
        assert_int_equal(b64url_decode_public(NULL, 4, buf, sizeof(buf), &len), -EBADMSG);
}

/* Differential: every string of up to 4 characters over an alphabet of
 * good and bad bytes, alone and after a full group, gets the same verdict
 * and the same bytes from both decoders. */
static void test_public_matches_sodium(void **state _unused_) {
        static const char alphabet[] = "AQZghv9-_+/= \n.\x80";
        static const char *const prefixes[] = { "", "Zm9v" };
        const size_t k = sizeof(alphabet) - 1;
        size_t compared = 0, accepted = 0;

        for (size_t p = 0; p < ELEMENTSOF(prefixes); p++)
                for (size_t n = 0, total = 1; n <= 4; n++, total *= k)
                        for (size_t idx = 0; idx < total; idx++) {
                                _cleanup_(freep) uint8_t *a = NULL;
                                size_t a_len = 0, b_len = 0, x = idx, plen = strlen(prefixes[p]);
                                uint8_t b[8];
                                char s[8];
                                int ra, rb;

                                memcpy(s, prefixes[p], plen);
                                for (size_t i = 0; i < n; i++, x /= k)
                                        s[plen + i] = alphabet[x % k];
                                ra = b64url_decode(s, plen + n, &a, &a_len);
                                rb = b64url_decode_public(s, plen + n, b, sizeof(b), &b_len);
                                assert_int_equal(ra, rb);
                                if (ra == 0) {
                                        assert_int_equal(a_len, b_len);
                                        assert_memory_equal(a, b, a_len);
                                        accepted++;
                                }
                                compared++;
                        }
        print_message("%zu strings compared, %zu canonical\n", compared, accepted);
}

/* Long inputs cross the decoder's internal chunks: round trips at every
 * length around the chunk size, and a bad byte far into the input. */
static void test_public_long(void **state _unused_) {
        static uint8_t in[2100], out[2100];

        for (size_t i = 0; i < sizeof(in); i++)
                in[i] = (uint8_t) (i * 131U + 7U);
        for (size_t n = 370; n <= 2100; n += (n < 400 || (n > 760 && n < 790) ? 1 : 97)) {
                _cleanup_(freep) char *s = NULL;
                size_t len = 0, slen;

                assert_int_equal(b64url_encode(in, n, &s), 0);
                slen = strlen(s);
                assert_int_equal(b64url_decode_public(s, slen, out, sizeof(out), &len), 0);
                assert_int_equal(len, n);
                assert_memory_equal(out, in, n);
                assert_int_equal(b64url_decode_public(s, slen, out, n - 1, &len), -ENOBUFS);

                /* A '+' in the last chunk, and past the decodable size. */
                s[slen - 3] = '+';
                assert_int_equal(b64url_decode_public(s, slen, out, sizeof(out), &len), -EBADMSG);
                assert_int_equal(b64url_decode_public(s, slen, out, 10, &len), -EBADMSG);
        }
}

static void test_decode_exact(void **state _unused_) {
        uint8_t buf[3], big[4];

        assert_int_equal(b64url_decode_exact("Zm9v", 4, buf, sizeof(buf)), 0);
        assert_memory_equal(buf, "foo", 3);
        assert_int_equal(b64url_decode_exact("", 0, buf, 0), 0);

        /* wrong decoded length: buffer wiped */
        memset(big, 0xaa, sizeof(big));
        assert_int_equal(b64url_decode_exact("Zm9v", 4, big, sizeof(big)), -EBADMSG);
        assert_memory_equal(big, "\0\0\0\0", 4);
        assert_int_equal(b64url_decode_exact("Zm9vYg", 6, buf, sizeof(buf)), -EBADMSG);
        assert_int_equal(b64url_decode_exact("Zm8", 3, buf, sizeof(buf)), -EBADMSG);
        /* not canonical */
        memset(buf, 0xaa, sizeof(buf));
        assert_int_equal(b64url_decode_exact("Zm9=", 4, buf, sizeof(buf)), -EBADMSG);
        assert_memory_equal(buf, "\0\0\0", 3);
        assert_int_equal(b64url_decode_exact("Zm8\n", 4, buf, sizeof(buf)), -EBADMSG);
        assert_int_equal(b64url_decode_exact("Zm8h", 4, buf, sizeof(buf)), 0); /* control: "fo!" */
        assert_memory_equal(buf, "fo!", 3);
        assert_int_equal(b64url_decode_exact("\xffm8h", 4, buf, sizeof(buf)), -EBADMSG);
        assert_int_equal(b64url_decode_exact("_m8h", 4, buf, sizeof(buf)), 0); /* control */
}

static void test_random(void **state _unused_) {
        char a[44], b[44], tiny[43];

        assert_int_equal(b64url_random(32, a, sizeof(a)), 0);
        assert_int_equal(strlen(a), 43);
        assert_int_equal(b64url_random(32, b, sizeof(b)), 0);
        assert_string_not_equal(a, b);
        /* The output is canonical: it decodes to exactly 32 bytes. */
        uint8_t raw[32];
        assert_int_equal(b64url_decode_exact(a, strlen(a), raw, sizeof(raw)), 0);

        /* No room for the NUL terminator. */
        assert_int_equal(b64url_random(32, tiny, sizeof(tiny)), -EINVAL);

        /* Longer than one internal chunk, and the empty case. */
        char big[134 + 1]; /* b64url_encoded_len(100) + 1 */
        assert_int_equal(b64url_random(100, big, sizeof(big)), 0);
        assert_int_equal(strlen(big), b64url_encoded_len(100));
        _cleanup_(freep) uint8_t *out = NULL;
        size_t len;
        assert_int_equal(b64url_decode(big, strlen(big), &out, &len), 0);
        assert_int_equal(len, 100);

        char empty[1] = { 'x' };
        assert_int_equal(b64url_random(0, empty, sizeof(empty)), 0);
        assert_int_equal(empty[0], 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_encoded_len),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_rfc4648_vectors),
                cmocka_unit_test(test_reject_padding),
                cmocka_unit_test(test_reject_std_alphabet),
                cmocka_unit_test(test_reject_whitespace),
                cmocka_unit_test(test_reject_trailing_bits),
                cmocka_unit_test(test_reject_bad_length),
                cmocka_unit_test(test_reject_other_bytes),
                cmocka_unit_test(test_decode_exact),
                cmocka_unit_test(test_public_matches_sodium),
                cmocka_unit_test(test_public_long),
                cmocka_unit_test(test_random),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
