#!/bin/sh
# SPDX-License-Identifier: MIT
# Integration suites again with the store on PostgreSQL: rotation and reuse
# (test_tokend_refresh), lifecycle, the API contract and robustness, each
# tokend on a fresh database of one real server (tests/with-postgresql;
# tdharness gives every Tokend its own database when TOKEND_TEST_DATABASE
# is set; the few cases that open the SQLite file skip). Exit: pytest's,
# 77 when the server cannot run here (not root, no postgresql-15).
srcdir=$(dirname "$0")/../..
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$srcdir/tests/with-postgresql" sh -c '
        py=$1; shift
        "$py" -m pytest -q -p no:cacheprovider -rs "$@"
        rc=$?
        [ "$rc" -eq 5 ] && exit 77
        exit "$rc"' sh "$py" \
        "$srcdir/tests/integration/test_tokend_refresh.py" "$srcdir/tests/integration/test_tokend_lifecycle.py" \
        "$srcdir/tests/integration/test_tokend_api.py" "$srcdir/tests/integration/test_tokend_robustness.py"
