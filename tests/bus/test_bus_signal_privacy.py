# SPDX-License-Identifier: MIT
"""DeviceRevoked is not a broadcast (issue 13 point 6): tokend sends each
revocation as a unicast signal to the connections that called Subscribe(),
and only to the device's owner and to admins (root, [Login] AdminGroup=).
Another unprivileged user's listener never sees the owner's user name or
device id, subscribed or not. Controls: the owner, an AdminGroup member and
root each receive it; the other user receives its own; a subscription ends
with its connection, a new one works."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tdbus import bus, bus_tokend, watcher  # noqa: E402,F401
from tdharness import need_root, role_users  # noqa: E402


def test_only_owner_and_admins_receive(bus_tokend, watcher):  # noqa: F811
    need_root("create throwaway users and a group")
    with role_users("tdsig_") as (group, admin, owner, other):
        d = bus_tokend("[Login]\nAdminGroup=%s\n" % group)
        w_owner = watcher("python", user=owner.name)
        w_admin = watcher("python", user=admin.name)
        w_other = watcher("python", user=other.name)
        w_root = watcher("python")
        w_quiet = watcher("python", user=owner.name, subscribe=False)   # listens, never subscribed
        try:
            # the owner's device, revoked through the socket (DELETE)
            dev = d.api.issue_token(user=owner.name).json["device_id"]
            assert d.api.delete_device(dev).status == 204
            for w in (w_owner, w_admin, w_root):                           # controls
                assert w.wait_for(dev) == (owner.name, dev)
            # the other user's own device, by its own logout over the bus: it
            # gets that one (control), and none before it
            c = d.bus("python", user=other.name)
            tok = c.call("IssueToken", "", [])
            c.call("Logout", tok["access_token"])
            assert w_other.wait_for(tok["device_id"]) == (other.name, tok["device_id"])
            for w in (w_admin, w_root):
                assert w.wait_for(tok["device_id"]) == (other.name, tok["device_id"])
            for w in (w_owner, w_other, w_quiet):
                w.barrier()   # whatever the bus had for them is read now
            assert w_other.seen == [(other.name, tok["device_id"])]         # never the owner's
            assert w_owner.seen == [(owner.name, dev)]                      # never the other's
            assert w_quiet.seen == []                                       # not subscribed: nothing
            assert w_admin.seen == w_root.seen == [(owner.name, dev), (other.name, tok["device_id"])]
        finally:
            for w in (w_owner, w_admin, w_other, w_quiet):
                w.close()  # before role_users deletes their users


def test_subscription_ends_with_the_connection(bus_tokend, watcher):  # noqa: F811
    d = bus_tokend()
    w1 = watcher("python")
    dev = d.api.issue_token().json["device_id"]
    assert d.api.delete_device(dev).status == 204
    assert w1.wait_for(dev)
    w1.close()
    w2 = watcher("python")                              # control: a new connection, subscribed
    dev2 = d.api.issue_token().json["device_id"]
    assert d.api.delete_device(dev2).status == 204
    assert w2.wait_for(dev2)
    assert "cannot send DeviceRevoked" not in d.log()


def test_subscribe_is_bounded_per_uid(bus_tokend):  # noqa: F811
    need_root("call as a second uid")
    import dbus
    import dbus.bus
    from tdbus_client import IFACE, NAME, PATH

    d = bus_tokend()
    pid = os.fork()
    if pid == 0:  # as nobody: 17 connections, the 17th is refused
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            conns = [dbus.bus.BusConnection(d.bus_address) for _ in range(17)]
            for cn in conns[:16]:
                cn.call_blocking(NAME, PATH, IFACE, "Subscribe", "", [])
            conns[0].call_blocking(NAME, PATH, IFACE, "Subscribe", "", [])  # again: no new slot
            try:
                conns[16].call_blocking(NAME, PATH, IFACE, "Subscribe", "", [])
                code = 2
            except dbus.DBusException as e:
                code = 0 if e.get_dbus_name() == "io.tokend.Error.TooManyRequests" else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, status
    # root is not capped, and nobody's connections are gone: room again
    conn = dbus.bus.BusConnection(d.bus_address)
    for _ in range(3):
        conn.call_blocking(NAME, PATH, IFACE, "Subscribe", "", [])
    conn.close()
