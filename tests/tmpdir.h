/* SPDX-License-Identifier: MIT */
/* The unit tests' temporary directory: a fresh /tmp/NAME-XXXXXX made for a
 * test and removed, with everything in it, after. Use as the cmocka setup
 * and teardown (state: a test_tmpdir *), or embed a test_tmpdir in a larger
 * fixture and call test_tmpdir_make/test_tmpdir_remove from its own. The
 * helpers assert (cmocka): a test cannot run without its directory. */
#pragma once

#include <stddef.h>

typedef struct test_tmpdir {
        char dir[64];
} test_tmpdir;

/* mkdtemp /tmp/<prefix>-XXXXXX into t->dir. */
void test_tmpdir_make(test_tmpdir *t, const char *prefix);

/* Remove t->dir and everything under it (not following symbolic links). */
void test_tmpdir_remove(test_tmpdir *t);

/* "<t->dir>/<name>" into buf (asserts it fits); returns buf. */
char *test_tmpdir_path(const test_tmpdir *t, const char *name, char *buf, size_t size);

/* cmocka setup/teardown: *state becomes a calloc'ed test_tmpdir named after
 * the test program (program_invocation_short_name). */
int test_tmpdir_setup(void **state);
int test_tmpdir_teardown(void **state);
