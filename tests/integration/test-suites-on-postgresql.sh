#!/bin/sh
# SPDX-License-Identifier: MIT
# Integration suites again with the store on PostgreSQL: rotation and reuse
# (test_tokend_refresh), lifecycle, the API contract, robustness and crash
# safety (kill -9 under load), each tokend on a fresh database of one real
# server (tests/with-postgresql; tdharness gives every Tokend its own
# database when TOKEND_TEST_DATABASE is set; the few cases that open the
# SQLite file skip). Run through tests/run-pytest as one program: every
# case's outcome goes to tests/integration/test-suites-on-postgresql.junit.xml
# (relative to the build directory), so that tests/results counts the cases
# and checks each skip against tests/skip-allowlist. Exit: pytest's, 77 when
# the server cannot run here (not root, no postgresql-15) or nothing ran.
srcdir=$(dirname "$0")/../..
TD_JUNIT_XML=tests/integration/test-suites-on-postgresql.junit.xml
export TD_JUNIT_XML
exec "$srcdir/tests/with-postgresql" "$srcdir/tests/run-pytest" \
        "$srcdir/tests/integration/test_tokend_refresh.py" "$srcdir/tests/integration/test_tokend_lifecycle.py" \
        "$srcdir/tests/integration/test_tokend_api.py" "$srcdir/tests/integration/test_tokend_robustness.py" \
        "$srcdir/tests/integration/test_tokend_crash.py"
