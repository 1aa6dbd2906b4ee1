# SPDX-License-Identifier: MIT
"""tokenctl --bus: every command that talks to tokend, over D-Bus
(io.tokend.Tokend1 on a private dbus-daemon, tests/bus/tdbus.py) and, for
the same assertions, over the socket. Over the bus, $TOKEND_SOCKET points
nowhere, so nothing can silently fall back to the socket. Also: password
login through a throwaway PAM service, refresh with the device-key proof at
the refresh point, permissions as a second uid, --bus=system/session
through $DBUS_*_BUS_ADDRESS, unreachable buses and their exit codes, and a
fake io.tokend.Tokend1 giving oversize, mistyped and foreign answers."""

import json
import os
import secrets
import subprocess
import sys

import pytest

from test_tokenctl_login import PASSWORD, account  # noqa: F401 (fixture: a throwaway user + PAM service)
from test_tokenctl_util import (Client, audit_count, base, claims, have_binaries, rmtree,  # noqa: F401 (fixture)
                                tmpdir)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bus"))
from tdbus import bus, bus_tokend  # noqa: E402,F401 (fixtures: a private dbus-daemon, tokend on it)

pytestmark = [
    pytest.mark.skipif(not have_binaries(), reason="tokend/tokenctl not built"),
    # the assertions name root's devices and run a second uid (nobody)
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: acts as root and as nobody"),
]

NO_SOCKET = "/nonexistent/tokend.sock"
TRANSPORTS = ["socket", "bus"]


class Ctl(Client):
    """tokenctl with --bus=ADDRESS (bus set) or over the socket."""

    def __init__(self, base, daemon, transport, user=None, name=None):
        self.daemon = daemon
        self.transport = transport
        over_bus = transport == "bus"
        super().__init__(base, NO_SOCKET if over_bus else daemon.socket, user=user,
                         name=(name or user or "root") + "-" + transport)
        self.prefix = ["--bus=" + daemon.bus_address] if over_bus else []

    def where(self):
        return "the bus at " + self.daemon.bus_address if self.prefix else self.daemon.socket

    def run(self, *args, **kw):
        return super().run(*(self.prefix + list(args)), **kw)

    def popen(self, *args, **kw):
        return super().popen(*(self.prefix + list(args)), **kw)


@pytest.fixture
def daemon(bus_tokend):
    return bus_tokend()


@pytest.fixture(params=TRANSPORTS)
def ctl(request, base, daemon):
    """A peer-logged-in tokenctl over request.param."""
    c = Ctl(base, daemon, request.param)
    c.ok("login", "--peer")
    return c


def device(c, dev):
    return [d for d in c.json("devices")["devices"] if d["id"] == dev]


# ---- login, token, refresh ---------------------------------------------------

def test_peer_login_token_refresh(ctl, daemon):
    cred = ctl.credentials()
    assert cred["user"] == "root" and cred["device_id"].startswith("dev_")
    over_bus = ctl.transport == "bus"
    # D-Bus Login/IssueToken register no device key: no key is kept, and the device says so
    assert ("device_key" in cred) == (not over_bus)
    assert [d["has_key"] for d in device(ctl, cred["device_id"])] == [not over_bus]
    t1 = ctl.ok("token").stdout.strip()
    assert ctl.ok("token").stdout.strip() == t1          # cached
    assert claims(t1)["sub"] == "root" and claims(t1)["client_id"] == cred["device_id"]
    assert ctl.ok("verify", t1).stdout.startswith("VALID: sub=root")
    ctl.ok("refresh")
    assert audit_count(daemon, "refresh") == 1
    assert ctl.credentials()["refresh_token"] != cred["refresh_token"]
    t2 = ctl.ok("token").stdout.strip()
    assert t2 != t1
    ctl.ok("verify", t2)
    assert audit_count(daemon, "refresh_reuse") == 0


def test_bus_login_notes_missing_device_key(base, daemon):
    p = Ctl(base, daemon, "bus").ok("login", "--peer")
    assert "without a device key" in p.stderr and "without --bus" in p.stderr
    p = Ctl(base, daemon, "socket").ok("login", "--peer")      # control: the socket registers the key
    assert "device key" not in p.stderr


def test_bus_refresh_sends_the_device_key_proof(base, daemon):
    """Enrolled over the socket with a key; refreshed over the bus: the
    proof is required there too (a wrong key is refused, the right one works)."""
    sock = Ctl(base, daemon, "socket")
    sock.ok("login", "--peer")
    viabus = Ctl(base, daemon, "bus", name="root")            # same uid, its own state dir: copy the login
    os.makedirs(viabus.state, mode=0o700)
    cred = sock.credentials()
    other = Ctl(base, daemon, "socket", name="other")
    other.ok("login", "--peer")
    forged = dict(cred, device_key=other.credentials()["device_key"])
    with open(os.open(viabus.path("credentials"), os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        json.dump(forged, f)
    p = viabus.run("refresh")
    assert p.returncode == 1 and "proof" in p.stderr and "io.tokend.Error.InvalidToken" in p.stderr
    assert audit_count(daemon, "refresh_proof_failed") == 1
    with open(viabus.path("credentials"), "w") as f:           # control: the real key
        json.dump(cred, f)
    viabus.ok("refresh")
    assert audit_count(daemon, "refresh") == 1
    assert [d["revoked"] for d in device(viabus, cred["device_id"])] == [False]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_token_at_the_refresh_point(base, bus_tokend, transport):
    """Every cached token is within 60 s of expiry: `token` refreshes; two
    concurrent runs rotate exactly once and the device stays valid."""
    d = bus_tokend("[Token]\nAccessTokenLifetime=61s\n")
    c = Ctl(base, d, transport)
    c.ok("login", "--peer")
    cache = json.load(open(c.path("access-tokens")))
    for e in cache.values():
        e["expires_at"] -= 5                                    # 56 s left: the refresh point
        e["fetched_at"] -= 5
    with open(c.path("access-tokens"), "w") as f:
        json.dump(cache, f)
    t = c.ok("token").stdout.strip()
    assert audit_count(d, "refresh") == 1
    assert c.ok("token").stdout.strip() == t                    # 61 s left: cached again
    c.ok("verify", t)
    for rnd in range(2):
        os.unlink(c.path("access-tokens"))
        before = audit_count(d, "refresh")
        procs = [c.popen("token") for _ in range(2)]
        outs = [p.communicate(timeout=60) for p in procs]
        for p, (_, err) in zip(procs, outs):
            assert p.returncode == 0, err
        assert audit_count(d, "refresh") == before + 1, "round %d" % rnd
        for out, _ in outs:
            assert c.ok("verify", out.strip()).stdout.startswith("VALID")
    assert audit_count(d, "refresh_reuse") == 0
    assert [x["revoked"] for x in c.json("devices")["devices"]] == [False]


def test_token_audience_over_bus(base, daemon):
    c = Ctl(base, daemon, "bus")
    c.ok("login", "--peer")
    # the default audience (sshd login su) covers sshd: served from it
    sshd = c.ok("token", "--audience", "sshd").stdout.strip()
    assert "sshd" in claims(sshd)["aud"]
    c.ok("verify", "--audience", "sshd", sshd)
    assert claims(c.ok("askpass", "JWT token for root (tokend): ").stdout.strip())["aud"] == claims(sshd)["aud"]
    # Refresh over D-Bus takes no audience: sudo is refused with what to do
    p = c.run("token", "--audience", "sudo")
    assert p.returncode == 1 and p.stdout == ""
    assert "DefaultAudience" in p.stderr and "drop --bus" in p.stderr
    c.ok("verify", c.ok("token").stdout.strip())               # the rotation was kept: still logged in
    assert audit_count(daemon, "refresh_reuse") == 0
    s = Ctl(base, daemon, "socket")                            # control: the socket asks for sudo
    s.ok("login", "--peer")
    assert claims(s.ok("token", "--audience", "sudo").stdout.strip())["aud"] == ["sudo"]


def test_peer_login_device_name_over_bus(base, daemon):
    c = Ctl(base, daemon, "bus")
    p = c.run("login", "--peer", "--device-name", "box")
    assert p.returncode == 2 and "peer login" in p.stderr and len(p.stderr.splitlines()) == 1
    c.ok("login", "--peer")                                    # control
    assert c.credentials()["device_name"] == "peer login"
    assert [d["name"] for d in device(c, c.credentials()["device_id"])] == ["peer login"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_invalid_request_exits_2(base, daemon, transport):
    c = Ctl(base, daemon, transport)
    p = c.run("login", "--peer", "--user", "no_such_user_" + secrets.token_hex(3))
    assert p.returncode == 2 and "invalid_request" in p.stderr and "no such user" in p.stderr
    p = c.run("devices", "--user", "not a user!")
    assert p.returncode == 2 and "invalid_request" in p.stderr
    c.ok("login", "--peer", "--user", "root")                  # control
    c.ok("devices", "--user", "root")


# ---- password login through PAM (account: user with PASSWORD, pam_unix service) ----

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_password_login(base, bus_tokend, account, transport):
    user, svc = account
    d = bus_tokend("[Login]\nPAMService=%s\n" % svc)
    c = Ctl(base, d, transport)
    p = c.run("login", "--user", user, input="wrong-" + PASSWORD + "\n")
    assert p.returncode == 1
    assert "invalid_credentials" in p.stderr and "check the user name and password" in p.stderr
    assert not os.path.exists(c.path("credentials"))
    assert audit_count(d, "login_failed") == 1
    p = c.ok("login", "--user", user, "--device-name", "laptop", input=PASSWORD + "\n")   # control
    assert "Logged in as %s" % user in p.stdout
    assert PASSWORD not in p.stdout + p.stderr
    cred = c.credentials()
    assert cred["user"] == user and cred["device_name"] == "laptop"
    assert PASSWORD not in open(c.path("credentials")).read()
    assert [x["name"] for x in device(c, cred["device_id"])] == ["laptop"]
    tok = c.ok("token").stdout.strip()
    assert claims(tok)["sub"] == user
    c.ok("verify", "--user", user, tok)
    c.ok("refresh")
    assert audit_count(d, "login") == 1 and audit_count(d, "refresh") == 1
    assert PASSWORD not in d.log()


# ---- logout, status, devices ---------------------------------------------------

def test_logout(ctl):
    tok = ctl.ok("token").stdout.strip()
    dev = ctl.credentials()["device_id"]
    p = ctl.ok("logout")
    assert "revoked" in p.stdout
    assert not os.path.exists(ctl.path("credentials"))
    v = ctl.run("verify", tok)
    assert v.returncode == 1 and v.stdout.startswith("INVALID")
    assert [d["revoked"] for d in device(ctl, dev)] == [True]
    assert ctl.run("token").returncode == 1
    assert ctl.run("logout").returncode == 1                    # nothing to log out


def test_logout_of_revoked_device_cleans_up(ctl):
    dev = ctl.credentials()["device_id"]
    ctl.ok("devices", "revoke", dev)            # this machine's device: the local login goes too
    assert not os.path.exists(ctl.path("credentials"))
    ctl.ok("login", "--peer")
    other = ctl.credentials()["device_id"]
    Ctl(os.path.dirname(ctl.home), ctl.daemon, "socket", name="admin").ok("devices", "revoke", other)
    p = ctl.ok("logout")                        # tokend no longer accepts it: cleaned up all the same
    assert "no longer accepts" in p.stdout and not os.path.exists(ctl.path("credentials"))


def test_status(ctl, daemon):
    p = ctl.ok("status")
    dev = ctl.credentials()["device_id"]
    assert "User:           root (uid 0)" in p.stdout
    assert dev in p.stdout and "reachable on %s" % ctl.where() in p.stdout
    j = ctl.json("status")
    assert j["logged_in"] and j["tokend_reachable"] and j["device_id"] == dev
    assert j.get("bus" if ctl.prefix else "socket") == (daemon.bus_address if ctl.prefix else daemon.socket)
    daemon.stop()
    p = ctl.run("--json", "status")
    assert p.returncode == 3 and json.loads(p.stdout)["tokend_reachable"] is False
    hint = ("tokend is not on %s: start it there" % ctl.where() if ctl.prefix else
            "cannot reach tokend: no socket at %s (No such file or directory)" % daemon.socket)
    assert hint in p.stderr


def test_status_not_logged_in(base, daemon):
    for transport in TRANSPORTS:
        p = Ctl(base, daemon, transport).run("--json", "status")
        assert p.returncode == 1 and json.loads(p.stdout)["logged_in"] is False
        assert json.loads(p.stdout)["tokend_reachable"] is True


def test_devices_list_and_revoke(base, ctl, daemon):
    dev = ctl.credentials()["device_id"]
    p = ctl.ok("devices")
    assert "DEVICE" in p.stdout.splitlines()[0]
    assert any(line.startswith("* " + dev) for line in p.stdout.splitlines())
    assert ctl.ok("devices", "list", "--user", "root").stdout == p.stdout
    other = Ctl(base, daemon, "socket", name="other")
    other.ok("login", "--peer")
    dev2 = other.credentials()["device_id"]
    tok2 = other.ok("token").stdout.strip()
    p = ctl.run("devices", "revoke", dev2, "--user", "daemon")  # not daemon's: refused before anything
    assert p.returncode == 1 and "is not a device of daemon" in p.stderr
    ctl.ok("verify", tok2)
    j = ctl.json("devices", "revoke", dev2, "--user", "root")
    assert j == {"revoked": dev2}
    assert ctl.run("verify", tok2).returncode == 1
    p = ctl.run("devices", "revoke", "dev_AAAAAAAAAAAAAAAA")
    assert p.returncode == 1 and "not_found" in p.stderr
    assert os.path.exists(ctl.path("credentials"))             # not this machine's device
    assert ctl.json("devices", "revoke", dev2) == {"revoked": dev2}   # again: no change, no error


def test_devices_json_same_over_both(base, daemon):
    """The device list is the same document whichever transport answered."""
    s, b = Ctl(base, daemon, "socket"), Ctl(base, daemon, "bus")
    s.ok("login", "--peer", "--device-name", "box one")
    b.ok("login", "--peer")
    s.ok("devices", "revoke", b.credentials()["device_id"])
    over_socket, over_bus = s.json("devices"), b.json("devices")
    assert over_bus == over_socket
    assert sorted(d["name"] for d in over_bus["devices"]) == ["box one", "peer login"]
    revoked = [d for d in over_bus["devices"] if d["revoked"]]
    assert len(revoked) == 1 and revoked[0]["revoke_reason"] and revoked[0]["revoked_at"] > 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_second_uid(base, daemon, transport):
    """nobody: own devices only, no peer login for root, no revoking root's device."""
    root = Ctl(base, daemon, transport)
    root.ok("login", "--peer")
    dev = root.credentials()["device_id"]
    nobody = Ctl(base, daemon, transport, user="nobody")
    assert nobody.json("devices")["devices"] == []             # control: own (none yet)
    p = nobody.run("devices", "revoke", dev)
    assert p.returncode == 1 and "forbidden" in p.stderr and "admin group" in p.stderr
    p = nobody.run("devices", "--user", "root")
    assert p.returncode == 1 and "forbidden" in p.stderr
    p = nobody.run("login", "--peer", "--user", "root")
    assert p.returncode == 1 and "forbidden" in p.stderr
    assert not os.path.exists(nobody.path("credentials"))
    nobody.ok("login", "--peer")                                 # control: for itself
    own = nobody.credentials()["device_id"]
    assert [d["id"] for d in nobody.json("devices")["devices"]] == [own]
    assert nobody.credentials()["user"] == "nobody"
    tok = nobody.ok("token").stdout.strip()
    assert claims(tok)["sub"] == "nobody"
    nobody.ok("verify", "--user", "nobody", tok)
    root.ok("verify", root.ok("token").stdout.strip())           # root's device untouched
    nobody.ok("devices", "revoke", own)                          # control: its own device
    assert not os.path.exists(nobody.path("credentials"))
    assert [d["revoked"] for d in device(root, own)] == [True]


# ---- verify ---------------------------------------------------------------------

def test_verify(ctl, daemon):
    tok = ctl.ok("token").stdout.strip()
    j = ctl.json("verify", "--user", "root", "--audience", "sshd", tok)
    assert j["active"] is True and j["sub"] == "root" and j["uid"] == 0 and "sshd" in j["aud"]
    p = ctl.run("verify", "--user", "daemon", tok)
    assert p.returncode == 1 and "another user" in p.stdout
    p = ctl.run("verify", "--audience", "sudo", tok)
    assert p.returncode == 1 and p.stdout.startswith("INVALID")
    h, pl, s = tok.split(".")
    bad = ".".join([h, pl, ("A" if s[0] != "A" else "B") + s[1:]])
    assert ctl.run("verify", bad).returncode == 1
    p = ctl.run("--json", "verify", "garbage")
    assert p.returncode == 1 and json.loads(p.stdout)["active"] is False
    assert ctl.run("verify", "-", input=tok + "\n").returncode == 0


def test_verify_jwks_stays_offline(base, daemon):
    c = Ctl(base, daemon, "bus")
    c.ok("login", "--peer")
    tok = c.ok("token").stdout.strip()
    jwks = os.path.join(c.home, "jwks.json")
    with open(jwks, "w") as f:
        f.write(c.ok("keys", "jwks", "--dir", daemon.keys_dir).stdout)
    for prefix in (["--bus=unix:path=/nonexistent/bus"], ["--bus"], []):   # no bus, nor tokend, is asked
        p = Client(base, NO_SOCKET).run(*(prefix + ["verify", "--jwks", jwks, tok]))
        assert p.returncode == 0 and p.stdout.startswith("VALID"), p.stderr
    daemon.stop()
    assert Client(base, NO_SOCKET).run("--bus", "verify", "--jwks", jwks, tok).returncode == 0


# ---- choosing the bus, unreachable buses -----------------------------------------

def test_bus_system_and_session_from_the_environment(base, daemon):
    """--bus (= system) and --bus session use $DBUS_SYSTEM_BUS_ADDRESS /
    $DBUS_SESSION_BUS_ADDRESS like every D-Bus client."""
    c = Client(base, NO_SOCKET)
    env = {"DBUS_SYSTEM_BUS_ADDRESS": daemon.bus_address}
    c.ok("--bus", "login", "--peer", env=env)
    tok = c.ok("--bus", "token", env=env).stdout.strip()
    c.ok("--bus=system", "verify", tok, env=env)
    p = c.ok("--bus", "status", env=env)
    assert "reachable on the system bus" in p.stdout
    senv = {"DBUS_SESSION_BUS_ADDRESS": daemon.bus_address}
    c.ok("--bus", "session", "verify", tok, env=senv)            # "--bus session" reads like --bus=session
    c.ok("verify", "--bus=session", tok, env=senv)               # also among a command's options
    p = c.ok("--bus=session", "--json", "status", env=senv)
    assert json.loads(p.stdout)["bus"] == "session"


def test_tokend_not_on_the_bus(base, bus):
    c = Client(base, NO_SOCKET)
    p = c.run("--bus", "devices", env={"DBUS_SYSTEM_BUS_ADDRESS": bus.address})
    assert p.returncode == 3 and p.stdout == ""
    assert "tokend is not on the system bus: systemctl start tokend" in p.stderr
    p = c.run("--bus=session", "verify", "a.b.c", env={"DBUS_SESSION_BUS_ADDRESS": bus.address})
    assert p.returncode == 3 and "tokend is not on the session bus: start it there (tokend --bus session)" in p.stderr
    p = c.run("--bus=" + bus.address, "login", "--peer")
    assert p.returncode == 3 and "tokend is not on the bus at %s" % bus.address in p.stderr
    assert not os.path.exists(c.path("credentials"))


@pytest.mark.parametrize("args,control_rc", [(["devices"], 0), (["verify", "a.b.c"], 1), (["login", "--peer"], 0),
                                             (["devices", "revoke", "dev_AAAAAAAAAAAAAAAA"], 1)])
def test_wrong_bus_address_exits_3(base, daemon, args, control_rc):
    d = tmpdir()
    try:
        gone = "unix:path=%s/bus.sock" % d
        p = Client(base, NO_SOCKET).run("--bus=" + gone, *args)
        assert p.returncode == 3 and p.stdout == "", p.stderr
        assert "cannot connect to the bus at %s (No such file or directory): check the address" % gone in p.stderr
        assert not os.path.exists(Client(base, NO_SOCKET).path("credentials"))
    finally:
        rmtree(d)
    p = Ctl(base, daemon, "bus").run(*args)                      # control: the right address reaches tokend
    assert p.returncode == control_rc, p.stderr


def test_logged_in_commands_on_a_dead_bus_exit_3(base, daemon, bus):
    c = Ctl(base, daemon, "bus")
    c.ok("login", "--peer")
    bus.close()
    for args in (["refresh"], ["logout"], ["devices"], ["status"]):
        p = c.run(*args)
        assert p.returncode == 3, (args, p.stderr)
        assert "cannot connect to the bus at %s" % daemon.bus_address in p.stderr
    assert os.path.exists(c.path("credentials"))                 # logout kept them: nothing was revoked


def test_system_bus_missing_exits_3(base):
    p = Client(base, NO_SOCKET).run("--bus", "devices",
                                    env={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/system_bus_socket"})
    assert p.returncode == 3
    assert "cannot connect to the system bus" in p.stderr and "drop --bus" in p.stderr


@pytest.mark.parametrize("value", ["bogus", "", "unix path", ":path=/x", "x" * 1100 + ":a=b"])
def test_malformed_bus_value_exits_2(base, value):
    p = Client(base, NO_SOCKET).run("--bus=" + value, "devices")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "not system, session or a D-Bus address" in lines[0] and "usage:" in lines[0]


def test_socket_and_bus_exclude_each_other(base, daemon):
    c = Client(base, NO_SOCKET)
    for args in (["--socket", daemon.socket, "--bus", "devices"], ["--bus", "devices", "--socket", daemon.socket]):
        p = c.run(*args)
        assert p.returncode == 2 and "exclude each other" in p.stderr
    c.ok("--socket", daemon.socket, "devices")                   # control: either one alone
    c.ok("--bus=" + daemon.bus_address, "devices")


def test_help_mentions_bus(base):
    p = Client(base, NO_SOCKET).ok("--help")
    assert "--bus[=WHERE]" in p.stdout and "not supported" not in p.stdout


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_devices_list_follows_the_cursors(base, bus_tokend, transport):  # noqa: F811
    """250 devices come in pages of 100 (socket ?cursor=, bus ListDevicesPaged):
    tokenctl lists every one exactly once, and revoke --user finds one on
    the last page."""
    from concurrent.futures import ThreadPoolExecutor
    d = bus_tokend("[Login]\nMaxDevicesPerUser=1000\n")
    with ThreadPoolExecutor(8) as pool:
        ids = [r.json["device_id"] for r in pool.map(lambda i: d.api.issue_token(device_name="b%d" % i), range(250))]
    c = Ctl(base, d, transport)
    listed = [x["id"] for x in c.json("devices")["devices"]]
    assert len(listed) == 250 and set(listed) == set(ids)
    table = c.ok("devices").stdout
    assert all(i in table for i in ids)
    last = listed[-1]
    c.ok("devices", "revoke", last, "--user", "root")
    assert [x["revoked"] for x in c.json("devices")["devices"] if x["id"] == last] == [True]


# ---- hostile answers: somebody else owns io.tokend.Tokend1 --------------------

FAKE_TOKEND = r'''
import sys
import dbus, dbus.bus, dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

address, mode = sys.argv[1], sys.argv[2]
IFACE = "io.tokend.Tokend1"
DBusGMainLoop(set_as_default=True)
conn = dbus.bus.BusConnection(address)


def dev(i, name="box"):
    return {"id": "dev_%016d" % i, "user": "root", "uid": dbus.UInt32(0), "name": name,
            "created": dbus.Int64(1700000000), "last_used": dbus.Int64(1700000000),
            "has_key": False, "revoked": False,
            "extra": dbus.Dictionary({"a": "b"}, signature="ss")}      # a type tokend never sends: skipped


class Fake(dbus.service.Object):
    @dbus.service.method(IFACE, in_signature="s", out_signature="s" if mode == "wrongtype" else "aa{sv}")
    def ListDevices(self, user):
        if mode == "wrongtype":
            return "surprise"
        if mode == "big":                                               # > 1 MiB of answer
            return [dev(i, "n" * 400) for i in range(3000)]
        if mode == "overflow":
            return [dict(dev(1), created=dbus.UInt64(2 ** 64 - 1))]
        if mode == "foreign":
            raise dbus.exceptions.DBusException("boom", name="org.example.Error.Boom")
        if mode == "refused":
            raise dbus.exceptions.DBusException("not yours", name="io.tokend.Error.Forbidden")
        return [dev(1)]

    # what tokenctl calls: the same answers, one page ("": no more), except
    # "loop", which hands back the cursor it was given (tokenctl must stop)
    @dbus.service.method(IFACE, in_signature="ssu", out_signature="s" if mode == "wrongtype" else "aa{sv}s")
    def ListDevicesPaged(self, user, cursor, limit):
        if mode == "wrongtype":
            return "surprise"
        if mode == "loop":
            return ([dev(1)], cursor or "again")
        return (self.ListDevices(user), "")

    @dbus.service.method(IFACE, in_signature="sas", out_signature="a{sv}")
    def IssueToken(self, user, audience):
        return {"access_token": "a.b.c", "refresh_token": "r" * 43}     # no device, expiry, user


name = dbus.service.BusName("io.tokend.Tokend1", conn)
Fake(conn, "/io/tokend/Tokend1")
print("ready", flush=True)
GLib.MainLoop().run()
'''


@pytest.fixture
def fake_tokend(bus):
    procs = []

    def start(mode):
        p = subprocess.Popen(["/usr/bin/python3", "-c", FAKE_TOKEND, bus.address, mode], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "ready"
        return bus.address

    yield start
    for p in procs:
        p.kill()
        p.wait()
        p.stdout.close()


@pytest.mark.parametrize("mode,rc,message", [
    ("control", 0, None),
    ("big", 1, "is too large; is this really tokend"),
    ("wrongtype", 1, "is malformed; is this really tokend"),
    ("loop", 1, "has no usable device list; is this really tokend"),
    ("overflow", 1, "is malformed; is this really tokend"),
    ("foreign", 1, "failed with org.example.Error.Boom: boom; is this really tokend"),
    ("refused", 1, "tokend refused: not yours (forbidden, io.tokend.Error.Forbidden); this needs root"),
])
def test_hostile_answers(base, fake_tokend, mode, rc, message):
    address = fake_tokend(mode)
    c = Client(base, NO_SOCKET)
    p = c.run("--bus=" + address, "devices")
    assert p.returncode == rc, p.stderr
    if message:
        assert message in p.stderr and p.stdout == ""
    else:
        assert "dev_0000000000000001" in p.stdout
        j = c.json("--bus=" + address, "devices")
        assert j == {"devices": [{"id": "dev_0000000000000001", "user": "root", "uid": 0, "name": "box",
                                  "created": 1700000000, "last_used": 1700000000, "has_key": False,
                                  "revoked": False}]}


def test_hostile_token_answer(base, fake_tokend):
    c = Client(base, NO_SOCKET)
    p = c.run("--bus=" + fake_tokend("control"), "login", "--peer")
    assert p.returncode == 1 and "is this really tokend" in p.stderr
    assert not os.path.exists(c.path("credentials"))
