# SPDX-License-Identifier: MIT
"""tokenctl audit over the socket and over D-Bus against a real tokend
(SQLite store, private dbus-daemon): admins see every row, a user only the
rows about themselves (another user's rows: 403); all pages are followed
(more rows than one page); --event and --since filter; bad --since values
are usage errors with a control that succeeds."""

import os
import sys

import pytest

from test_tokenctl_bus import TRANSPORTS, Ctl
from test_tokenctl_util import base, have_binaries  # noqa: F401 (fixture)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bus"))
from tdbus import bus, bus_tokend  # noqa: E402,F401 (fixtures)

pytestmark = [
    pytest.mark.skipif(not have_binaries(), reason="tokend/tokenctl not built"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: acts as root and as nobody"),
]


@pytest.fixture
def daemon(bus_tokend):
    # more than one page of rows needs more than the default 100 devices
    return bus_tokend("[Login]\nMaxDevicesPerUser=1000\n")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_audit_admin_all_pages_and_filters(base, daemon, transport):
    root = Ctl(base, daemon, transport)
    root.ok("login", "--peer")
    # > one page (100 rows) of peer logins: each audits one "token" row
    for _ in range(105):
        root.ok("login", "--peer")
    rows = root.json("audit")["audit"]
    logins = [r for r in rows if r["event"] == "token"]
    assert len(logins) >= 106, len(logins)
    assert rows == sorted(rows, key=lambda r: -r["id"])          # newest first
    assert {"id", "time", "event", "user", "device_id", "caller_uid", "detail"} <= set(rows[0])
    ev = root.json("audit", "--event", "token")["audit"]
    assert ev and all(r["event"] == "token" for r in ev) and len(ev) == len(logins)
    assert root.json("audit", "--event", "no_such_event")["audit"] == []
    assert len(root.json("audit", "--since", "1h")["audit"]) == len(rows)
    assert root.json("audit", "--since", "2000-01-01")["audit"] == rows
    assert root.json("audit", "--since", "2000-01-01T00:00:00Z")["audit"] == rows
    p = root.ok("audit", "--user", "root", "--event", "token")
    assert p.stdout.splitlines()[0].split()[:3] == ["TIME", "EVENT", "USER"]
    assert len(p.stdout.splitlines()) == 1 + len(ev)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_audit_users_see_their_own(base, daemon, transport):
    root = Ctl(base, daemon, transport)
    root.ok("login", "--peer")
    nobody = Ctl(base, daemon, transport, user="nobody")
    nobody.ok("login", "--peer")
    mine = nobody.json("audit")["audit"]
    assert mine and all(r["user"] == "nobody" for r in mine)     # control: own rows
    assert nobody.json("audit", "--user", "nobody")["audit"] == mine
    p = nobody.run("audit", "--user", "root")
    assert p.returncode == 1 and ("403" in p.stderr or "Forbidden" in p.stderr), p.stderr
    assert any(r["user"] == "root" for r in root.json("audit")["audit"])


@pytest.mark.parametrize("value", ["yesterday", "-1h", "2026-13-45", "2026-12-02T25:00:00", "", "1x",
                                   "2999-01-01"])
def test_audit_bad_since(base, daemon, value):
    root = Ctl(base, daemon, "socket")
    p = root.run("audit", "--since", value)
    assert p.returncode == 2 and "--since" in p.stderr and p.stdout == "", (value, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1
    root.ok("audit", "--since", "30min")                          # control
    p = root.run("audit", "--event", "")
    assert p.returncode == 2 and "--event" in p.stderr
