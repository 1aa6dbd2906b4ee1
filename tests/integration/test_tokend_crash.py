# SPDX-License-Identifier: MIT
"""Crash safety: several clients issue, refresh and revoke while tokend is
killed with SIGKILL at random moments (24 times). After each restart:

* `PRAGMA integrity_check` is ok;
* every client whose last refresh was acknowledged can refresh with the
  token it holds; a client whose last refresh died with the daemon either
  still can (the rotation was not committed) or finds its device revoked
  with a `refresh_reuse` audit row saying why — nothing in between;
* a refresh token is never accepted twice: per device at most one
  unrotated token, and exactly one `refresh` audit row per rotation;
* an acknowledged revocation stays: the device is revoked in the database
  and its refresh token is refused;
* no audit row is lost for an acknowledged operation (token, refresh,
  revoke counted by the clients ≤ rows in the database).
"""

import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import tokend_factory  # noqa: E402,F401 (fixture)

KILLS = 24
CLIENTS = 4
# No device cap: at the cap revoked devices are deleted to make room, and
# this test checks that every revoked device is still there, revoked.
CONFIG = "[Token]\nRefreshReuseGrace=0\n[Login]\nMaxDevicesPerUser=1000000\n"


class Worker:
    """One client's view: the device and refresh token it holds, and what
    tokend acknowledged to it."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.device = None
        self.rt = None
        self.uncertain = None       # "refresh"/"revoke" sent, answer lost with the daemon
        self.acked = {}             # (device, event) -> count acknowledged
        self.revoked = {}           # device -> last refresh token, revocation acknowledged
        self.errors = []
        self.lost = {}              # lost operations found committed after the restart

    def ack(self, device, event):
        self.acked[(device, event)] = self.acked.get((device, event), 0) + 1

    def step(self, api):
        """One operation; returns False when the daemon is gone."""
        try:
            if self.device is None:
                r = api.issue_token(device_name="crash")
                if r.status != 200:
                    self.errors.append("issue: %r" % r)
                    return True
                self.device, self.rt = r.json["device_id"], r.json["refresh_token"]
                self.ack(self.device, "token")
            elif self.uncertain:
                return False  # settled by the check after the restart
            elif self.rng.random() < 0.08:
                self.uncertain = "revoke"
                r = api.delete_device(self.device)
                self.uncertain = None
                if r.status not in (200, 204):
                    self.errors.append("revoke %s: %r" % (self.device, r))
                    return True
                self.ack(self.device, "revoke")
                self.revoked[self.device] = self.rt
                self.device = self.rt = None
            else:
                self.uncertain = "refresh"
                r = api.refresh(self.rt, self.device)
                self.uncertain = None
                if r.status != 200:
                    self.errors.append("refresh of an acknowledged token refused: %r" % r)
                    self.device = self.rt = None
                    return True
                self.rt = r.json["refresh_token"]
                self.ack(self.device, "refresh")
        except OSError:
            return False  # killed mid-request: the outcome is unknown to us
        return True


def run_until_dead(d, workers):
    def loop(w):
        try:
            while w.step(d.api):
                pass
        except Exception as e:  # noqa: BLE001 - in a thread it would only be a warning: the test asserts w.errors
            w.errors.append("worker died: %r" % e)
    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    return threads


def db_rows(d, sql, args=()):
    con = d.db()
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def check_after_restart(d, workers):
    assert db_rows(d, "PRAGMA integrity_check") == [("ok",)]
    for w in workers:
        assert not w.errors, w.errors
        if w.device is not None:
            r = d.api.refresh(w.rt, w.device)
            if r.status == 200:
                # the lost operation did not commit (else this token would be dead)
                w.ack(w.device, "refresh")
                w.rt, w.uncertain = r.json["refresh_token"], None
            else:
                assert w.uncertain, "acknowledged refresh token of %s refused after restart: %r" % (w.device, r)
                assert r.status == 401 and r.error == "token_revoked", r
                # the lost operation committed: the device is revoked, and the audit says why
                why, event = {"refresh": ("refresh_reuse", "refresh_reuse"), "revoke": ("owner", "revoke")}[w.uncertain]
                row = db_rows(d, "SELECT revoked, revoke_reason FROM devices WHERE id = ?", (w.device,))
                assert row and row[0][0] is not None and row[0][1] == why, (w.uncertain, row)
                assert db_rows(d, "SELECT count(*) FROM audit WHERE device_id = ? AND event = ?",
                               (w.device, event))[0][0] == 1
                w.lost[w.uncertain] = w.lost.get(w.uncertain, 0) + 1
                w.device = w.rt = None
                w.uncertain = None
        for dev, rt in w.revoked.items():
            row = db_rows(d, "SELECT revoked FROM devices WHERE id = ?", (dev,))
            assert row and row[0][0] is not None, "revoked device %s alive again: %r" % (dev, row)
            r = d.api.refresh(rt, dev)
            assert r.status == 401, "refresh on revoked device %s: %r" % (dev, r)
        for (dev, event), n in w.acked.items():
            have = db_rows(d, "SELECT count(*) FROM audit WHERE device_id = ? AND event = ?", (dev, event))[0][0]
            assert have >= n, "audit lost: device %s event %s: %d acknowledged, %d in the database" % (
                dev, event, n, have)
    # a refresh token is accepted at most once: linear chains, one audit row per rotation
    for dev, live, rotated in db_rows(d, "SELECT device_id, sum(rotated IS NULL), sum(rotated IS NOT NULL) "
                                         "FROM refresh_tokens GROUP BY device_id"):
        assert live <= 1, "device %s has %d live refresh tokens" % (dev, live)
        audits = db_rows(d, "SELECT count(*) FROM audit WHERE device_id = ? AND event = 'refresh'", (dev,))[0][0]
        assert audits == rotated, "device %s: %d rotations but %d refresh audit rows" % (dev, rotated, audits)


def test_kill_9_under_load_loses_nothing(tokend_factory):  # noqa: F811
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    d = tokend_factory(CONFIG)
    workers = [Worker(rng.random()) for _ in range(CLIENTS)]
    acked_total = 0
    for i in range(KILLS):
        threads = run_until_dead(d, workers)
        time.sleep(rng.uniform(0.05, 0.6))
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        for t in threads:
            t.join(30)
            assert not t.is_alive(), "a client hangs on a dead daemon"
        d.start()
        check_after_restart(d, workers)
        acked_total = sum(sum(w.acked.values()) for w in workers)
    # the load was real: many acknowledged operations, and the control path works
    assert acked_total > KILLS * CLIENTS, acked_total
    assert any(ev == "refresh" for w in workers for (_, ev) in w.acked)
    for w in workers:
        if w.device is not None:
            assert d.api.refresh(w.rt, w.device).status == 200
    lost = {}
    for w in workers:
        for k, v in w.lost.items():
            lost[k] = lost.get(k, 0) + v
    print("kills=%d acknowledged operations=%d unacknowledged-but-committed=%r" % (KILLS, acked_total, lost))
