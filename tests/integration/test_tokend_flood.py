# SPDX-License-Identifier: MIT
"""Floods that used to write one audit row per request or were never
throttled (issue 13, points 2 and 4): failed verifications by root (pam_jwt
in sshd, for clients that are not logged in yet, with the remote host they
report) are throttled per remote host without locking out other hosts'
users; repeated refusals (token_denied, revoke_denied, verify_failed) are
coalesced into one audit row with a count per window, and a caller that
varies the key is held to a fixed number of rows per window. Each attack
has a control that the legitimate path still works."""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import need_root, system_user, tokend_factory  # noqa: E402,F401

WINDOW = 60          # TD_AUDIT_WINDOW
KEYS = 32            # STORE_AUDIT_COALESCE_KEYS


def verify(client, token, rhost=None, user=None, tty="ssh"):
    return client.post("/api/auth/verify", dict(token=token, user=user, service="sshd", rhost=rhost, tty=tty))


def windows(started):
    """How many coalescing windows a run that started at started can span
    (rows per key: never assume the run fits one window)."""
    return 1 + int((time.monotonic() - started) // WINDOW) + 1


@pytest.fixture
def daemon(tokend_factory):  # noqa: F811
    # MaxFailures=1 → a remote host may fail 20 verifications per window
    return tokend_factory("[Login]\nMaxFailures=1\nFailureWindow=1h\n")


def good_token(d):
    r = d.api.issue_token(audience="sshd")
    assert r.status == 200, r
    return r.json["access_token"]


def test_root_verify_failures_are_throttled_per_remote_host(daemon):
    d = daemon
    tok = good_token(d)
    started = time.monotonic()
    for i in range(20):
        r = verify(d.api, "a.b.c", rhost="203.0.113.7")
        assert r.status == 401, (i, r)
    r = verify(d.api, tok, rhost="203.0.113.7")  # even a good token, from that host
    assert r.status == 429 and r.error == "too_many_requests", r
    assert int(r.headers["retry-after"]) >= 1, r
    # another host's user still verifies (no lock-out of everyone by one host)
    r = verify(d.api, tok, rhost="198.51.100.9", user="root")
    assert r.status == 200 and r.json["sub"] == "root", r
    # so does a local service (no rhost: sudo, su; not throttled)
    assert verify(d.api, tok).status == 200
    # and host names are compared without case
    for _ in range(20):
        assert verify(d.api, "a.b.c", rhost="Attacker.Example").status == 401
    assert verify(d.api, tok, rhost="attacker.example").status == 429
    assert verify(d.api, tok, rhost="friend.example").status == 200
    # the 20 failures of 203.0.113.7 are one audit row, counted
    rows = [a for a in d.audit("verify_failed") if "rhost=203.0.113.7 " in a["detail"]]
    assert sum(a["count"] for a in rows) == 20 and len(rows) <= windows(started), rows
    assert [a for a in d.audit("verify_throttled") if "203.0.113.7" in a["detail"]]


def test_one_ipv6_client_is_one_host(daemon):
    # a client owns a whole /64: rotating addresses inside it does not escape
    d = daemon
    tok = good_token(d)
    for i in range(20):
        assert verify(d.api, "a.b.c", rhost="2001:db8:1:2::%x" % (i + 1)).status == 401
    r = verify(d.api, tok, rhost="2001:db8:1:2:ffff::1")
    assert r.status == 429, r
    assert verify(d.api, tok, rhost="2001:db8:1:3::1").status == 200  # the next /64: another host


def test_rotating_hosts_write_a_bounded_number_of_rows(daemon):
    # every failure from another IPv4 address: not throttled per host, but the
    # audit trail keeps at most KEYS + 1 rows per window for root's verify_failed,
    # and every failure is still counted
    d = daemon
    tok = good_token(d)
    started = time.monotonic()
    n = KEYS * 3
    for i in range(n):
        assert verify(d.api, "a.b.c", rhost="192.0.2.%d" % (i + 1)).status == 401
    rows = [a for a in d.audit("verify_failed") if a["caller_uid"] == 0]
    assert len(rows) <= (KEYS + 1) * windows(started), len(rows)
    assert sum(a["count"] for a in rows) == n
    assert [a for a in rows if "counted here" in (a["detail"] or "")], "no overflow row"
    assert verify(d.api, tok, rhost="192.0.2.250").status == 200  # control


def test_a_flood_of_denied_requests_is_one_row(daemon, system_user):  # noqa: F811
    need_root("run requests as a second uid")
    d = daemon
    user = system_user()
    me = d.client(user=user.name)
    roots = d.api.issue_token().json["device_id"]
    started = time.monotonic()
    for _ in range(30):
        r = me.issue_token(user="root")
        assert r.status == 403, r
    for _ in range(10):
        r = me.delete_device(roots)
        assert r.status == 403, r
    rows = [a for a in d.audit("token_denied") if a["caller_uid"] == user.uid]
    assert sum(a["count"] for a in rows) == 30 and len(rows) <= windows(started), rows
    assert rows[0]["user"] == "root" and rows[0]["last_time"] >= rows[0]["time"]
    rows = [a for a in d.audit("revoke_denied") if a["caller_uid"] == user.uid]
    assert sum(a["count"] for a in rows) == 10 and len(rows) <= windows(started), rows
    assert rows[0]["device_id"] == roots
    # control: successes are not coalesced, one row each
    mine = [me.issue_token().json["device_id"] for _ in range(2)]
    for dev in mine:
        (row,) = d.audit("token", device_id=dev)
        assert row["count"] == 1 and row["caller_uid"] == user.uid
    # and the refused uid's own requests work
    assert me.delete_device(mine[0]).status == 204


def test_non_root_verify_failures_still_limited_per_uid(daemon, system_user):  # noqa: F811
    # the rhost a non-root caller sends does not give it a fresh budget
    need_root("run requests as a second uid")
    d = daemon
    user = system_user()
    me = d.client(user=user.name)
    tok = me.issue_token(audience="sshd").json["access_token"]
    for i in range(20):
        assert verify(me, "a.b.c", rhost="10.0.0.%d" % i).status == 401
    assert verify(me, tok, rhost="10.9.9.9").status == 429
    assert verify(d.api, tok, rhost="10.9.9.9").status == 200  # root, that host: fine
