#!/bin/sh
# SPDX-License-Identifier: MIT
# The store unit tests on a real PostgreSQL server started for them
# (tests/with-postgresql): test-store, the suite SQLite passes, run on the
# PostgreSQL backend, then test-store-pg (what only that backend has).
# Run from the build directory, as make check does.
srcdir=$(dirname "$0")/../..
exec "$srcdir/tests/with-postgresql" sh -c './tests/daemon/test-store && ./tests/daemon/test-store-pg'
