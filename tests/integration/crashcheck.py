# SPDX-License-Identifier: MIT
"""Load that tokend may be killed under, and the invariants checked after a
restart (test_tokend_crash.py on one tokend, SQLite or PostgreSQL;
test_tokend_multi_issuer.py on two issuers sharing one PostgreSQL).

Worker          one client: issues a device, refreshes it, now and then
                revokes it and starts over; it counts what tokend
                acknowledged and remembers the operation whose answer was
                lost with a daemon (`uncertain`).
run_until_dead  every worker in a thread, each step through one of the
                given daemons at random, until a step finds its daemon gone.
check_after_restart(d, workers)  through d (any running daemon of the
                store: its API and its database, Tokend.query):
  * SQLite: `PRAGMA integrity_check` is ok;
  * every client whose last operation was acknowledged can refresh with the
    token it holds; one whose last operation died with the daemon either
    still can (it did not commit) or finds its device revoked with the
    audit row saying why (refresh_reuse after a lost refresh, owner after a
    lost revoke) — nothing in between;
  * a refresh token is never accepted twice: per device at most one
    unrotated token, and exactly one `refresh` audit event per rotation;
  * an acknowledged revocation stays: the device is revoked in the
    database and its refresh token is refused;
  * no audit event is lost for an acknowledged operation (token, refresh,
    revoke counted by the clients <= events in the database).
"""

import http.client
import random
import threading
import time

# No device cap: at the cap revoked devices are deleted to make room, and
# the checks expect every revoked device to be still there, revoked.
CONFIG = "[Token]\nRefreshReuseGrace=0\n[Login]\nMaxDevicesPerUser=1000000\n"


class Worker:
    """One client's view: the device and refresh token it holds, and what
    tokend acknowledged to it. busy_ok: a 503 (the store unavailable) is
    not an error: the worker retries the same operation after a short pause,
    and records the answer (it must carry Retry-After)."""

    def __init__(self, seed, busy_ok=False):
        self.rng = random.Random(seed)
        self.device = None
        self.rt = None
        self.uncertain = None       # "refresh"/"revoke" sent, answer lost with the daemon
        self.acked = {}             # (device, event) -> count acknowledged
        self.revoked = {}           # device -> last refresh token, revocation acknowledged
        self.errors = []
        self.lost = {}              # lost operations found committed after the restart
        self.busy_ok = busy_ok
        self.busy = 0               # 503s answered
        self.retry = None           # the operation answered 503, sent again next
        self.revoked_after_busy = []  # devices refused as revoked when a 503'd refresh was retried

    def ack(self, device, event):
        self.acked[(device, event)] = self.acked.get((device, event), 0) + 1

    def unavailable(self, r, op):
        if not r.headers.get("retry-after"):
            self.errors.append("%s: 503 without Retry-After: %r" % (op, r))
        self.busy += 1
        self.retry = op if op != "token" else None
        time.sleep(0.05)

    def step(self, api):
        """One operation; returns False when the daemon is gone."""
        try:
            if self.device is None:
                op = "token"
            elif self.uncertain:
                return False  # settled by the check after the restart
            else:
                op = self.retry or ("revoke" if self.rng.random() < 0.08 else "refresh")
            if op == "token":
                r = api.issue_token(device_name="crash")
            else:
                self.uncertain = op
                r = api.delete_device(self.device) if op == "revoke" else api.refresh(self.rt, self.device)
                self.uncertain = None
            if r.status == 503 and self.busy_ok:
                self.unavailable(r, op)
                return True
            retried, self.retry = self.retry, None
            if op == "token":
                if r.status != 200:
                    self.errors.append("issue: %r" % r)
                    return True
                self.device, self.rt = r.json["device_id"], r.json["refresh_token"]
                self.ack(self.device, "token")
            elif op == "revoke":
                if r.status not in (200, 204):
                    self.errors.append("revoke %s: %r" % (self.device, r))
                    return True
                self.ack(self.device, "revoke")
                self.revoked[self.device] = self.rt
                self.device = self.rt = None
            else:
                if r.status != 200:
                    if retried and r.status == 401 and r.error == "token_revoked":
                        self.revoked_after_busy.append(self.device)
                    else:
                        self.errors.append("refresh of an acknowledged token refused: %r" % r)
                    self.device = self.rt = None
                    return True
                self.rt = r.json["refresh_token"]
                self.ack(self.device, "refresh")
        except (OSError, http.client.HTTPException):
            return False  # killed mid-request (or refused: not sent): the outcome is unknown to us
        return True


def run_until_dead(workers, *daemons, stop=None):
    """Start every worker's loop in a thread, each step through one of
    daemons (Tokend) at random, until a step finds its daemon gone (or
    the event stop is set); the threads."""
    def loop(w):
        try:
            while not (stop and stop.is_set()) and w.step(w.rng.choice(daemons).api):
                pass
        except Exception as e:  # noqa: BLE001 - in a thread it would only be a warning: the test asserts w.errors
            w.errors.append("worker died: %r" % e)
    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    return threads


def settle(d, w):
    """After a restart: the lost operation of w (if any) did or did not
    commit, told by refreshing with the token it holds. Returns (device,
    why, audit event) of a lost operation that committed, else None."""
    assert not w.errors, w.errors
    if w.device is None:
        return None
    r = d.api.refresh(w.rt, w.device)
    if r.status == 200:
        # the lost operation did not commit (else this token would be dead)
        w.ack(w.device, "refresh")
        w.rt, w.uncertain = r.json["refresh_token"], None
        return None
    assert w.uncertain, "acknowledged refresh token of %s refused after restart: %r" % (w.device, r)
    assert r.status == 401 and r.error == "token_revoked", r
    # the lost operation committed: the device is revoked, and the audit must say why
    lost = (w.device,) + {"refresh": ("refresh_reuse", "refresh_reuse"), "revoke": ("owner", "revoke")}[w.uncertain]
    w.lost[w.uncertain] = w.lost.get(w.uncertain, 0) + 1
    w.device = w.rt = w.uncertain = None
    return lost


def check_after_restart(d, workers):
    if not d.database:
        assert d.query("PRAGMA integrity_check") == [("ok",)]
    committed_lost = [x for x in (settle(d, w) for w in workers) if x]
    # the database once, after the settling requests
    devices = {dev: (revoked, reason) for dev, revoked, reason in
               d.query("SELECT id, revoked, revoke_reason FROM devices")}
    events = {(dev, event): n for dev, event, n in
              d.query("SELECT device_id, event, sum(count) AS n FROM audit GROUP BY device_id, event")}
    for dev, why, event in committed_lost:
        revoked, reason = devices.get(dev, (None, None))
        assert revoked is not None and reason == why, (dev, why, devices.get(dev))
        assert events.get((dev, event)) == 1, (dev, event, events.get((dev, event)))
    for w in workers:
        for dev, rt in w.revoked.items():
            assert devices.get(dev, (None,))[0] is not None, "revoked device %s alive again: %r" % (
                dev, devices.get(dev))
            r = d.api.refresh(rt, dev)
            assert r.status == 401, "refresh on revoked device %s: %r" % (dev, r)
        for (dev, event), n in w.acked.items():
            have = events.get((dev, event), 0)
            assert have >= n, "audit lost: device %s event %s: %d acknowledged, %d in the database" % (
                dev, event, n, have)
    # a refresh token is accepted at most once: linear chains, one audit event per rotation
    for dev, live, rotated in d.query(
            "SELECT device_id, sum(CASE WHEN rotated IS NULL THEN 1 ELSE 0 END) AS live, "
            "sum(CASE WHEN rotated IS NULL THEN 0 ELSE 1 END) AS rotated FROM refresh_tokens GROUP BY device_id"):
        assert live <= 1, "device %s has %d live refresh tokens" % (dev, live)
        audits = events.get((dev, "refresh"), 0)
        assert audits == rotated, "device %s: %d rotations but %d refresh audit events" % (dev, rotated, audits)


def acknowledged(workers):
    return sum(sum(w.acked.values()) for w in workers)


def lost_committed(workers):
    """{operation: how many} lost with a daemon but found committed."""
    lost = {}
    for w in workers:
        for k, v in w.lost.items():
            lost[k] = lost.get(k, 0) + v
    return lost


def check_load_was_real(d, workers, kills):
    """Many acknowledged operations, refreshes among them, and the control
    path: every live client refreshes with the token it holds."""
    assert acknowledged(workers) > kills * len(workers), acknowledged(workers)
    assert any(ev == "refresh" for w in workers for (_, ev) in w.acked)
    for w in workers:
        if w.device is not None:
            assert d.api.refresh(w.rt, w.device).status == 200
