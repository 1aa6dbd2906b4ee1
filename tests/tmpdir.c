/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "macro.h"
#include "tmpdir.h"

void test_tmpdir_make(test_tmpdir *t, const char *prefix) {
        int n = snprintf(t->dir, sizeof t->dir, "/tmp/%s-XXXXXX", prefix);
        assert_true(n > 0 && (size_t) n < sizeof t->dir);
        assert_non_null(mkdtemp(t->dir));
}

static int rm_entry(const char *path, const struct stat *st _unused_, int flag _unused_, struct FTW *ftw _unused_) {
        return remove(path);
}

void test_tmpdir_remove(test_tmpdir *t) {
        if (t->dir[0])
                (void) nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        t->dir[0] = 0;
}

char *test_tmpdir_path(const test_tmpdir *t, const char *name, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s/%s", t->dir, name);
        assert_true(n > 0 && (size_t) n < size);
        return buf;
}

int test_tmpdir_setup(void **state) {
        test_tmpdir *t = calloc(1, sizeof *t);
        assert_non_null(t);
        test_tmpdir_make(t, program_invocation_short_name);
        *state = t;
        return 0;
}

int test_tmpdir_teardown(void **state) {
        test_tmpdir *t = *state;
        test_tmpdir_remove(t);
        free(t);
        return 0;
}
