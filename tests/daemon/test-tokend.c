/* SPDX-License-Identifier: MIT */
/* The daemon context (daemon/tokend.c) on real files: tokend_new() fails
 * cleanly at each step it takes (configuration, override, state directory,
 * key directory, store) and leaves *ret untouched; tokend_startup() failing
 * on its socket leaves a half-started context that tokend_free() stops and
 * frees; the control case builds, starts (socket front end, Bus=none),
 * reloads and frees a whole one. Run under valgrind or ASan for the leak
 * and double-free half. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tokend.h"
#include "tmpdir.h"

typedef struct fixture {
        test_tmpdir tmp;
        char conf[128], sock[128], keys[128], db[128];
} fixture;

static int setup(void **state) {
        fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        test_tmpdir_make(&f->tmp, "test-tokend");
        snprintf(f->conf, sizeof f->conf, "%s/tokend.conf", f->tmp.dir);
        snprintf(f->sock, sizeof f->sock, "%s/tokend.sock", f->tmp.dir);
        snprintf(f->keys, sizeof f->keys, "%s/keys", f->tmp.dir);
        snprintf(f->db, sizeof f->db, "%s/tokend.db", f->tmp.dir);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;
        test_tmpdir_remove(&f->tmp);
        free(f);
        return 0;
}

/* A configuration naming the key directory and the database; extra is
 * appended as is. */
static void write_conf(const fixture *f, const char *keys, const char *db, const char *extra) {
        FILE *fp = fopen(f->conf, "we");
        assert_non_null(fp);
        fprintf(fp, "[Keys]\nDirectory=%s\n[Store]\nDatabase=%s\n%s", keys, db, extra ?: "");
        assert_int_equal(fclose(fp), 0);
}

static tokend_params params(const fixture *f) {
        return (tokend_params) { .config = f->conf, .socket = f->sock, .bus = "none" };
}

/* tokend_new fails with r < 0, frees what it built and leaves *ret alone. */
static void assert_new_fails(const tokend_params *p) {
        tokend *sentinel = (tokend *) (uintptr_t) 1, *t = sentinel;
        assert_true(tokend_new(p, &t) < 0);
        assert_ptr_equal(t, sentinel);
}

static void test_whole_context(void **state) {
        fixture *f = *state;
        tokend_params p = params(f);
        tokend *t = NULL;
        struct stat st;

        write_conf(f, f->keys, f->db, NULL);
        assert_int_equal(tokend_new(&p, &t), 0);
        assert_non_null(t);
        assert_int_equal(t->role, TOKEND_ROLE_STANDALONE);
        assert_non_null(t->store);
        assert_non_null(t->keys.active);
        assert_non_null(t->login_workers);
        assert_string_equal(t->config->socket_path, f->sock);
        assert_int_equal(t->n_frontends, 0); /* nothing listens before startup */
        assert_int_equal(stat(f->sock, &st), -1);

        assert_int_equal(tokend_startup(t), 0);
        assert_int_equal(t->n_frontends, 2); /* D-Bus (Bus=none: idle, NULL state) and the socket */
        assert_int_equal(stat(f->sock, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));

        assert_int_equal(tokend_reload(t), 0);
        assert_non_null(t->keys.active);
        assert_string_equal(t->config->socket_path, f->sock);

        assert_null(tokend_free(t));
        assert_int_equal(stat(f->sock, &st), -1); /* our socket is removed at stop */
        assert_null(tokend_free(NULL));
}

static void test_bad_config(void **state) {
        fixture *f = *state;
        tokend_params p = params(f);
        write_conf(f, f->keys, f->db, "[Token]\nAccessTokenLifetime=soon\n");
        assert_new_fails(&p);
        p.config = "/nonexistent/tokend.conf"; /* a missing file is an empty one: the control */
        p.state_dir = f->tmp.dir;
        tokend *t = NULL;
        assert_int_equal(tokend_new(&p, &t), 0);
        tokend_free(t);
}

static void test_bad_bus_override(void **state) {
        fixture *f = *state;
        tokend_params p = params(f);
        write_conf(f, f->keys, f->db, NULL);
        p.bus = "not-a-bus";
        assert_new_fails(&p);
}

static void test_bad_state_dir(void **state) {
        fixture *f = *state;
        tokend_params p = params(f);
        char sub[192];
        write_conf(f, f->keys, f->db, NULL); /* a regular file: no directory under it */
        snprintf(sub, sizeof sub, "%s/state", f->conf);
        p.state_dir = sub;
        assert_new_fails(&p);
}

static void test_bad_key_dir(void **state) {
        fixture *f = *state;
        tokend_params p = params(f);
        /* A key directory that others can write is refused (fail closed). */
        assert_int_equal(mkdir(f->keys, 0700), 0);
        assert_int_equal(chmod(f->keys, 0777), 0);
        write_conf(f, f->keys, f->db, NULL);
        assert_new_fails(&p);
        /* A key "directory" that is a regular file. */
        write_conf(f, f->conf, f->db, NULL);
        assert_new_fails(&p);
        struct stat st;
        assert_int_equal(stat(f->db, &st), -1); /* failed before the store was opened */
}

static void test_bad_store(void **state) {
        fixture *f = *state;
        tokend_params p = params(f);
        char db[192];
        snprintf(db, sizeof db, "%s/no-such-dir/tokend.db", f->tmp.dir);
        write_conf(f, f->keys, db, NULL);
        assert_new_fails(&p); /* keys were loaded (generated) before the store failed */
        struct stat st;
        assert_int_equal(stat(f->keys, &st), 0);
}

static void test_startup_fails_on_socket(void **state) {
        fixture *f = *state;
        tokend_params p = params(f);
        tokend *t = NULL;
        /* Something that is not a socket sits at the path: never touched. */
        write_conf(f, f->keys, f->db, NULL);
        FILE *fp = fopen(f->sock, "we");
        assert_non_null(fp);
        assert_int_equal(fclose(fp), 0);
        assert_int_equal(tokend_new(&p, &t), 0);
        assert_int_equal(tokend_startup(t), -EEXIST);
        assert_int_equal(t->n_frontends, 1); /* the D-Bus entry ran first: tokend_free stops it */
        tokend_free(t);
        struct stat st;
        assert_int_equal(stat(f->sock, &st), 0);
        assert_true(S_ISREG(st.st_mode));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_whole_context, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_bus_override, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_state_dir, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_key_dir, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_store, setup, teardown),
                cmocka_unit_test_setup_teardown(test_startup_fails_on_socket, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
