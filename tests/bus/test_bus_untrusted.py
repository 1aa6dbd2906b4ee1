# SPDX-License-Identifier: MIT
"""Caller uids from a bus tokend cannot trust (issue 13 point 9): a
dbus-daemon that an unprivileged user runs (as a session bus or [Bus]
Bus=ADDRESS would be) could report any uid, 0 included. tokend trusts only
a bus daemon that is root or its own uid (SO_PEERCRED of the bus socket);
on any other, every caller is nobody: a real root caller gets no admin
list, no token for anyone, no revocation and no subscription, while the
calls that carry their own proof (GetJWKS, Verify, Login with a password)
still work. Control: the same calls as root on a bus root runs."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdbus import BusDaemon, BusError, BusTokend, system_user  # noqa: E402,F401
from tdharness import need_root  # noqa: E402

FORBIDDEN = "io.tokend.Error.Forbidden"


def refused(c, method, *args):
    with pytest.raises(BusError) as e:
        c.call(method, *args)
    assert e.value.name == FORBIDDEN and "cannot vouch for who calls" in e.value.message, e.value
    return e.value


def start(bus_daemon):
    d = BusTokend(bus_daemon.address)
    d.start()
    return d


def test_user_run_bus_gives_no_root_powers(system_user):  # noqa: F811
    need_root("run a dbus-daemon as another user")
    owner = system_user("tdunt_")
    bus = BusDaemon(user=owner.name)
    d = None
    try:
        d = start(bus)
        victim = d.api.issue_token(user=owner.name).json   # a device enrolled over the socket
        root = d.bus("python")                             # we are root, and the bus says so
        refused(root, "ListDevices", "")                   # admin: would list everyone's
        refused(root, "ListDevices", owner.name)
        refused(root, "ListDevicesPaged", "", "", 0)
        refused(root, "ListAudit", "", "", 0)              # admin: would read everyone's audit rows
        refused(root, "IssueToken", "root", [])            # root: would mint for anyone
        refused(root, "IssueToken", owner.name, [])
        refused(root, "RevokeDevice", victim["device_id"])
        refused(root, "Unlock", owner.name)                # admin: would clear anyone's lockout
        refused(root, "Subscribe")
        assert d.api.verify(victim["access_token"]).status == 200   # nothing was revoked
        # calls that do not rest on the caller's uid still work here
        assert "keys" in root.call("GetJWKS")
        assert root.call("Verify", victim["access_token"], owner.name, "")["sub"] == owner.name
        root.call("Logout", victim["access_token"])         # the token is its own proof
        assert d.api.verify(victim["access_token"]).status == 401
        assert "not root or tokend's own uid" in d.log() and "uid %d" % owner.uid in d.log(), d.log()
    finally:
        if d:
            d.close()
        bus.close()


def test_root_run_bus_is_trusted():
    need_root("compare with a bus root runs")
    bus = BusDaemon()  # run by us, root: the control
    d = None
    try:
        d = start(bus)
        assert "cannot vouch" not in d.log() and "not root or tokend's own uid" not in d.log()
        dev = d.api.issue_token().json["device_id"]
        root = d.bus("python")
        assert dev in [x["id"] for x in root.call("ListDevices", "")]
        assert dev in [x["id"] for x in root.call("ListDevicesPaged", "", "", 0)[0]]
        assert root.call("ListAudit", "", "", 0)[0]
        tok = root.call("IssueToken", "nobody", [])
        assert tok["user"] == "nobody"
        root.call("RevokeDevice", tok["device_id"])
        root.call("Subscribe")
    finally:
        if d:
            d.close()
        bus.close()
