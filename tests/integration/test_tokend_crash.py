# SPDX-License-Identifier: MIT
"""Crash safety: several clients issue, refresh and revoke while tokend is
killed with SIGKILL at random moments (24 times), with the store in SQLite
or (TOKEND_TEST_DATABASE, test-suites-on-postgresql.sh) on PostgreSQL,
which survives the kill: there the test checks what tokend committed
through it. After each restart the invariants of
crashcheck.check_after_restart hold: integrity (SQLite), an acknowledged
refresh token still works and a lost operation either did not commit or
left its revocation and audit row, no refresh token accepted twice, no
revoked device alive, no acknowledged audit row lost. Control: the checks
fail on a store with each of those violations written into it.
"""

import os
import random
import signal
import sqlite3
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from crashcheck import CONFIG, Worker, acknowledged, check_after_restart, check_load_was_real, \
    lost_committed, run_until_dead  # noqa: E402
from tdharness import tokend_factory  # noqa: E402,F401 (fixture)

KILLS = 24
CLIENTS = 4


def test_kill_9_under_load_loses_nothing(tokend_factory):  # noqa: F811
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    d = tokend_factory(CONFIG)
    workers = [Worker(rng.random()) for _ in range(CLIENTS)]
    for i in range(KILLS):
        threads = run_until_dead(workers, d)
        time.sleep(rng.uniform(0.05, 0.6))
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        for t in threads:
            t.join(30)
            assert not t.is_alive(), "a client hangs on a dead daemon"
        d.start()
        check_after_restart(d, workers)
    check_load_was_real(d, workers, KILLS)
    print("kills=%d acknowledged operations=%d unacknowledged-but-committed=%r" % (
        KILLS, acknowledged(workers), lost_committed(workers)))


def tamper(d, sql):
    """Write to the store behind tokend's back (the checks' control case)."""
    if d.database:
        d.pg.sql(sql, uri=d.database)
        return
    con = sqlite3.connect(d.db_path, timeout=10)
    try:
        con.execute(sql)
        con.commit()
    finally:
        con.close()


def test_checks_catch_violations(tokend_factory):  # noqa: F811
    """Control: check_after_restart passes on an honest store, and fails on
    each violation written into it: a rotated refresh token live again, a
    revoked device alive again, an acknowledged audit row gone."""
    d = tokend_factory(CONFIG)
    keep, gone = Worker(1), Worker(2)
    keep.rng.random = gone.rng.random = lambda: 0.5  # issue, then refresh
    for _ in range(3):
        assert keep.step(d.api) and gone.step(d.api)
    gone.rng.random = lambda: 0.0  # its next step revokes
    assert gone.step(d.api) and gone.revoked
    check_after_restart(d, [keep, gone])
    dev, revoked = keep.device, next(iter(gone.revoked))
    first = "(SELECT min(generation) FROM refresh_tokens WHERE device_id = '%s')" % dev
    for violation, undo, says in [
            ("UPDATE refresh_tokens SET rotated = NULL WHERE device_id = '%s' AND generation = %s" % (dev, first),
             "UPDATE refresh_tokens SET rotated = 1 WHERE device_id = '%s' AND generation = %s" % (dev, first),
             "live refresh tokens"),
            ("UPDATE devices SET revoked = NULL WHERE id = '%s'" % revoked,
             "UPDATE devices SET revoked = 1 WHERE id = '%s'" % revoked, "alive again"),
            ("DELETE FROM audit WHERE device_id = '%s' AND event = 'token'" % dev, None, "audit lost")]:
        tamper(d, violation)
        with pytest.raises(AssertionError, match=says):
            check_after_restart(d, [keep, gone])
        if undo:
            tamper(d, undo)
            check_after_restart(d, [keep, gone])
