/* SPDX-License-Identifier: MIT */
/* The key directory (daemon/tokend-keydir.c) on real files in a temporary
 * directory: the newest key signs unless [Keys] Active= names one (by file
 * name, with or without .pem, or by kid); every key verifies; what is not a
 * key is skipped; and the refusals (untrusted directory or key, a key that
 * does not load, a wrong passphrase, a duplicate kid, an Active= that
 * matches nothing), each next to a control that loads. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "tmpdir.h"
#include "tokend-keydir.h"

/* Generate a key into t->dir as name (keydir_generate's file renamed) with
 * modification time mtime; its kid into kid (128 bytes; may be NULL). */
static void make_key(test_tmpdir *t, const char *name, time_t mtime, const char *passphrase, char *kid) {
        _cleanup_(freep) char *path = NULL, *err = NULL;
        char to[256];
        assert_int_equal(keydir_generate(t->dir, JOSE_ALG_EDDSA, passphrase, &path, &err), 0);
        assert_null(err);
        test_tmpdir_path(t, name, to, sizeof to);
        assert_int_equal(rename(path, to), 0);
        struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
        assert_int_equal(utimensat(AT_FDCWD, to, ts, 0), 0);
        if (kid) {
                /* the kid is what keydir_generate put after "<time>-" */
                const char *base = strrchr(path, '/') + 1;
                const char *dash = strchr(base, '-');
                assert_non_null(dash);
                snprintf(kid, 128, "%.*s", (int) (strlen(dash + 1) - 4), dash + 1);
        }
}

static void write_file(test_tmpdir *t, const char *name, const char *content, mode_t mode) {
        char p[256];
        test_tmpdir_path(t, name, p, sizeof p);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t) strlen(content));
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

/* keydir_load of t->dir (owner: us); returns its result. */
static int load(test_tmpdir *t, const char *active, const char *passphrase, keydir *kd, char **err) {
        *kd = (keydir){ 0 };
        *err = NULL;
        return keydir_load(t->dir, geteuid(), active, passphrase, kd, err);
}

/* Load and expect success, the active key in file active_file with kid,
 * and nkeys keys in all. */
static void load_ok(test_tmpdir *t, const char *active, const char *passphrase, const char *active_file,
                    const char *kid, size_t nkeys) {
        _cleanup_(freep) char *err = NULL;
        keydir kd;
        assert_int_equal(load(t, active, passphrase, &kd, &err), 0);
        assert_null(err);
        assert_non_null(kd.active);
        assert_string_equal(kd.active_file, active_file);
        if (kid)
                assert_string_equal(jose_key_kid(kd.active), kid);
        assert_int_equal(jose_keyset_size(kd.keys), nkeys);
        keydir_done(&kd);
}

/* Load and expect error r with a message that contains want. */
static void load_fails(test_tmpdir *t, const char *active, const char *passphrase, int r, const char *want) {
        _cleanup_(freep) char *err = NULL;
        keydir kd;
        assert_int_equal(load(t, active, passphrase, &kd, &err), r);
        if (want) {
                assert_non_null(err);
                if (!strstr(err, want))
                        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
        }
        assert_null(kd.keys);
}

static void test_newest_signs(void **state) {
        test_tmpdir *t = *state;
        char kid[3][128];
        make_key(t, "a.pem", 1000, NULL, kid[0]);
        make_key(t, "b.pem", 3000, NULL, kid[1]);
        make_key(t, "c.pem", 2000, NULL, kid[2]);
        load_ok(t, NULL, NULL, "b.pem", kid[1], 3);
        load_ok(t, "", NULL, "b.pem", kid[1], 3); /* Active= empty: the same */
        /* a newer key, as after tokenctl keys rotate, takes over */
        make_key(t, "d.pem", 4000, NULL, NULL);
        load_ok(t, NULL, NULL, "d.pem", NULL, 4);
        /* the same modification time: the greatest name wins, whatever the
         * order readdir returns */
        make_key(t, "e.pem", 4000, NULL, NULL);
        load_ok(t, NULL, NULL, "e.pem", NULL, 5);
}

static void test_active_by_name_and_kid(void **state) {
        test_tmpdir *t = *state;
        char kid[2][128];
        make_key(t, "2023-old.pem", 1000, NULL, kid[0]);
        make_key(t, "2024-new.pem", 2000, NULL, kid[1]);
        load_ok(t, NULL, NULL, "2024-new.pem", kid[1], 2);                /* control: the newest */
        load_ok(t, "2023-old.pem", NULL, "2023-old.pem", kid[0], 2);     /* file name */
        load_ok(t, "2023-old", NULL, "2023-old.pem", kid[0], 2);         /* without .pem */
        load_ok(t, kid[0], NULL, "2023-old.pem", kid[0], 2);             /* kid */
        load_ok(t, kid[1], NULL, "2024-new.pem", kid[1], 2);
        /* no match: refused (never silently the newest), named in the error */
        load_fails(t, "2023", NULL, -ENOKEY, "no key matches Active=2023");
        load_fails(t, "2023-old.pe", NULL, -ENOKEY, "no key matches Active=");
        load_fails(t, "nothing", NULL, -ENOKEY, "no key matches Active=nothing");
}

static void test_what_is_not_a_key(void **state) {
        test_tmpdir *t = *state;
        char p[256], to[256];
        assert_true(keydir_is_key_name("k.pem"));
        assert_false(keydir_is_key_name(".k.pem"));
        assert_false(keydir_is_key_name(".pem"));
        assert_false(keydir_is_key_name("k.pem~"));
        assert_false(keydir_is_key_name("k.key"));
        load_fails(t, NULL, NULL, -ENOENT, NULL); /* empty directory: no key */
        make_key(t, "k.pem", 1000, NULL, NULL);
        write_file(t, "README", "not a key\n", 0600);
        write_file(t, "k.pem.bak", "not a key\n", 0600);
        write_file(t, ".hidden.pem", "not a key\n", 0600);
        /* a symbolic link to a key and a directory named *.pem are skipped */
        assert_int_equal(symlink(test_tmpdir_path(t, "k.pem", to, sizeof to),
                                 test_tmpdir_path(t, "link.pem", p, sizeof p)), 0);
        assert_int_equal(mkdir(test_tmpdir_path(t, "dir.pem", p, sizeof p), 0700), 0);
        load_ok(t, NULL, NULL, "k.pem", NULL, 1);
        /* Active= naming the skipped link finds nothing */
        load_fails(t, "link.pem", NULL, -ENOKEY, "no key matches Active=link.pem");
}

static void test_missing_directory(void **state) {
        test_tmpdir *t = *state;
        _cleanup_(freep) char *err = NULL;
        char p[256];
        keydir kd = { 0 };
        assert_int_equal(keydir_load(test_tmpdir_path(t, "missing", p, sizeof p), geteuid(), NULL, NULL, &kd, &err),
                         -ENOENT);
        /* a symbolic link to a good key directory: refused */
        make_key(t, "k.pem", 1000, NULL, NULL);
        char link[256];
        assert_int_equal(symlink(t->dir, test_tmpdir_path(t, "link", link, sizeof link)), 0);
        assert_int_equal(keydir_load(link, geteuid(), NULL, NULL, &kd, &err), -ENOTDIR);
        assert_non_null(strstr(err, "symbolic link"));
        load_ok(t, NULL, NULL, "k.pem", NULL, 1); /* control: the real one */
}

static void test_untrusted_refused(void **state) {
        test_tmpdir *t = *state;
        char p[256];
        make_key(t, "a.pem", 1000, NULL, NULL);
        make_key(t, "b.pem", 2000, NULL, NULL);
        load_ok(t, NULL, NULL, "b.pem", NULL, 2); /* control */
        test_tmpdir_path(t, "a.pem", p, sizeof p);

        /* a key others can read: refused, even when it is not the active one */
        assert_int_equal(chmod(p, 0644), 0);
        load_fails(t, NULL, NULL, -EPERM, "a.pem: refusing a private key readable by group or others (mode 0644)");
        assert_int_equal(chmod(p, 0620), 0);
        load_fails(t, NULL, NULL, -EPERM, "writable by group or others (mode 0620)");
        assert_int_equal(chmod(p, 0600), 0);
        load_ok(t, NULL, NULL, "b.pem", NULL, 2);

        /* a key of another user (we are root: chown works; else skip that part) */
        if (geteuid() == 0) {
                assert_int_equal(chown(p, 4242, 4242), 0);
                load_fails(t, NULL, NULL, -EPERM, "a.pem: refusing: owned by uid 4242");
                assert_int_equal(chown(p, 0, 0), 0);
                load_ok(t, NULL, NULL, "b.pem", NULL, 2);
        }

        /* a directory others could plant keys in */
        assert_int_equal(chmod(t->dir, 0777), 0);
        load_fails(t, NULL, NULL, -EPERM, "the key directory: refusing: writable by group or others (mode 0777)");
        _cleanup_(freep) char *path = NULL, *err = NULL;
        assert_int_equal(keydir_generate(t->dir, JOSE_ALG_EDDSA, NULL, &path, &err), -EPERM);
        assert_null(path);
        assert_non_null(strstr(err, "writable by group or others"));
        assert_int_equal(chmod(t->dir, 0755), 0);
        load_ok(t, NULL, NULL, "b.pem", NULL, 2);
}

static void test_bad_keys_refused(void **state) {
        test_tmpdir *t = *state;
        char p[256], q[256];
        make_key(t, "good.pem", 1000, NULL, NULL);
        load_ok(t, NULL, NULL, "good.pem", NULL, 1); /* control */

        /* a file that is not a PKCS#8 key fails the whole load, named */
        write_file(t, "junk.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 0600);
        load_fails(t, NULL, NULL, -EBADMSG, "junk.pem: not a PKCS#8 PEM private key");
        assert_int_equal(unlink(test_tmpdir_path(t, "junk.pem", p, sizeof p)), 0);
        load_ok(t, NULL, NULL, "good.pem", NULL, 1);

        /* the same key twice under two names: a duplicate kid */
        assert_int_equal(link(test_tmpdir_path(t, "good.pem", p, sizeof p), test_tmpdir_path(t, "copy.pem", q, sizeof q)),
                         0);
        load_fails(t, NULL, NULL, -EEXIST, "is already loaded");
        assert_int_equal(unlink(q), 0);
        load_ok(t, NULL, NULL, "good.pem", NULL, 1);
}

static void test_passphrase(void **state) {
        test_tmpdir *t = *state;
        char kid[128], p[256];
        make_key(t, "sealed.pem", 1000, "correct horse", kid);
        load_ok(t, NULL, "correct horse", "sealed.pem", kid, 1); /* control */
        load_fails(t, NULL, "wrong horse", -EKEYREJECTED, "sealed.pem: wrong or missing passphrase");
        load_fails(t, NULL, NULL, -EKEYREJECTED, "wrong or missing passphrase");

        /* the passphrase file: trailing newline stripped, size capped */
        _cleanup_(keydir_passphrase_freep) char *pw = NULL;
        write_file(t, "pass", "correct horse\r\n", 0600);
        assert_int_equal(keydir_passphrase(test_tmpdir_path(t, "pass", p, sizeof p), "fallback", &pw), 0);
        assert_string_equal(pw, "correct horse");
        keydir_passphrase_free(TAKE_PTR(pw));
        static char big[4098];
        memset(big, 'x', sizeof big - 1);
        write_file(t, "big", big, 0600);
        assert_int_equal(keydir_passphrase(test_tmpdir_path(t, "big", p, sizeof p), NULL, &pw), -E2BIG);
        assert_int_equal(keydir_passphrase(test_tmpdir_path(t, "absent", p, sizeof p), NULL, &pw), -ENOENT);
        assert_null(pw);
}

int main(void) {
        /* keydir_passphrase reads $CREDENTIALS_DIRECTORY when no file is set */
        (void) unsetenv("CREDENTIALS_DIRECTORY");
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_newest_signs, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_active_by_name_and_kid, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_what_is_not_a_key, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_missing_directory, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_untrusted_refused, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_bad_keys_refused, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_passphrase, test_tmpdir_setup, test_tmpdir_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
