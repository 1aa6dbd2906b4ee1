# SPDX-License-Identifier: MIT
"""DeviceRevoked(s user, s device_id) is emitted for every revocation, from
either front end: HTTP DELETE and logout on the socket, RevokeDevice and
Logout on the bus, and refresh-token reuse detection on both; subscribed
clients see it if they own the device or are admins (root here; who else
does not is in test_bus_signal_privacy.py). Refused revocations emit
nothing."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdbus import BusError, bus, bus_tokend, system_user, watcher  # noqa: E402,F401
from tdharness import ME, need_root  # noqa: E402


def test_revocation_through_the_socket(system_user, bus_tokend, watcher):  # noqa: F811
    need_root("subscribe as a second uid")
    other = system_user("tdbus_")
    d = bus_tokend()
    watchers = [watcher("python"), watcher("python", user=other.name)]

    dev = d.api.issue_token().json["device_id"]
    assert d.api.delete_device(dev).status == 204
    assert watchers[0].wait_for(dev) == (ME.pw_name, dev)   # root's own (and root is admin)

    tok = d.api.issue_token(user=other.name).json
    assert d.api.logout(tok["access_token"]).status == 204
    for w in watchers:  # the owner and root
        assert w.wait_for(tok["device_id"]) == (other.name, tok["device_id"])
    assert watchers[1].seen == [(other.name, tok["device_id"])]  # not root's device


@pytest.mark.parametrize("front", ["socket", "bus"])
def test_refresh_token_reuse(bus_tokend, watcher, front):  # noqa: F811
    d = bus_tokend()
    w = watcher("python")
    c = d.bus("python")
    t1 = d.api.issue_token().json
    if front == "socket":
        assert d.api.refresh(t1["refresh_token"], t1["device_id"]).status == 200
        assert d.api.refresh(t1["refresh_token"], t1["device_id"]).error == "token_revoked"  # theft
    else:
        c.call("Refresh", t1["refresh_token"], t1["device_id"], "")
        with pytest.raises(BusError) as e:
            c.call("Refresh", t1["refresh_token"], t1["device_id"], "")
        assert e.value.name == "io.tokend.Error.TokenRevoked" and "already used" in e.value.message
    assert w.wait_for(t1["device_id"]) == (ME.pw_name, t1["device_id"])
    assert d.audit("refresh_reuse", device_id=t1["device_id"])


def test_revocation_through_the_bus_and_refusals_emit_nothing(system_user, bus_tokend, watcher):  # noqa: F811
    need_root("call as a second uid")
    other = system_user("tdbus_")
    d = bus_tokend()
    w = watcher("python")
    root, me = d.bus("busctl"), d.bus("busctl", user=other.name)

    roots = root.call("IssueToken", "", [])["device_id"]
    with pytest.raises(BusError) as e:  # refused: not the owner (python3-dbus shows the error name)
        d.bus("python", user=other.name).call("RevokeDevice", roots)
    assert e.value.name == "io.tokend.Error.Forbidden", e.value
    assert "belongs to another user" in e.value.message, e.value
    gone = root.call("IssueToken", "", [])["device_id"]
    root.call("RevokeDevice", gone)
    root.call("RevokeDevice", gone)  # already revoked: no second signal
    tok = me.call("IssueToken", "", [])
    me.call("Logout", tok["access_token"])
    # signals arrive in order: by the time the logout's is here, any
    # signal of the refused or repeated revocations would be too
    assert w.wait_for(tok["device_id"]) == (other.name, tok["device_id"])
    assert w.seen == [(ME.pw_name, gone), (other.name, tok["device_id"])]
