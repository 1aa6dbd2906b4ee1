# SPDX-License-Identifier: MIT
"""Hostile and unlucky conditions on the bus: wrong argument types and
unknown members get D-Bus errors while the socket keeps serving; a slow
password login (PAM) never holds up the bus; SIGTERM stops cleanly and
still answers a login in progress; Bus=none starts nothing; an unreachable
bus, a taken name or a bus daemon that dies leave tokend serving its socket."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdbus import NAME, PATH, BusDaemon, BusError, BusTokend, bus, bus_tokend, need_tool, system_user  # noqa: E402,F401
from tdharness import PamService, need_root  # noqa: E402

IFACE = "io.tokend.Tokend1"
PROPS = "org.freedesktop.DBus.Properties"
INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
# (object path, interface, member, signature, arguments, D-Bus error, message part)
HOSTILE = [
    (PATH, IFACE, "Login", "i", [3], INVALID_ARGS, "expecting 'sss'"),
    (PATH, IFACE, "Login", "ss", ["a", "b"], INVALID_ARGS, "expecting 'sss'"),
    (PATH, IFACE, "Login", "ssss", ["a", "b", "c", "d"], INVALID_ARGS, "expecting 'sss'"),
    (PATH, IFACE, "IssueToken", "ss", ["", "sudo"], INVALID_ARGS, "expecting 'sas'"),
    (PATH, IFACE, "IssueToken", "sai", ["", [1, 2]], INVALID_ARGS, "expecting 'sas'"),
    (PATH, IFACE, "Refresh", "", [], INVALID_ARGS, "expecting 'sss'"),
    (PATH, IFACE, "Verify", "u", [7], INVALID_ARGS, "expecting 'sss'"),
    (PATH, IFACE, "ListDevices", "as", [["root"]], INVALID_ARGS, "expecting 's'"),
    (PATH, IFACE, "RevokeDevice", "b", [True], INVALID_ARGS, "expecting 's'"),
    (PATH, IFACE, "GetJWKS", "s", ["x"], INVALID_ARGS, "expecting ''"),
    (PATH, IFACE, "DeviceRevoked", "ss", ["a", "b"], "org.freedesktop.DBus.Error.UnknownMethod", "Unknown method"),
    (PATH, IFACE, "NoSuchMethod", "", [], "org.freedesktop.DBus.Error.UnknownMethod", "Unknown method"),
    (PATH, "io.tokend.NoSuchInterface", "Login", "sss", ["a", "b", "c"], "org.freedesktop.DBus.Error.UnknownMethod",
     "Unknown method"),
    ("/io/tokend/Nope", IFACE, "GetJWKS", "", [], "org.freedesktop.DBus.Error.UnknownObject", "Unknown object"),
    (PATH, PROPS, "Set", "ssv", [IFACE, "Issuer", "evil"], "org.freedesktop.DBus.Error.PropertyReadOnly",
     "not writable"),
    (PATH, PROPS, "Get", "ss", [IFACE, "Secret"], "org.freedesktop.DBus.Error.UnknownProperty", "Unknown"),
]


def raw_call(kind, address, path, iface, member, sig, args):
    """A call with the signature as given, nothing checked on the client."""
    if kind == "python":
        import dbus
        conn = dbus.bus.BusConnection(address)
        try:
            if sig == "ssv":
                args = args[:2] + [dbus.String(args[2], variant_level=1)]
            return conn.call_blocking(NAME, path, iface, member, sig, tuple(args), timeout=30)
        except dbus.exceptions.DBusException as e:
            raise BusError(e.get_dbus_name(), e.get_dbus_message()) from None
        finally:
            conn.close()
    argv = [need_tool("busctl"), "--address=" + address, "call", "--", NAME, path, iface, member]
    if sig:
        argv.append(sig)
        for t, a in zip(sig.replace("ai", "I").replace("as", "A"), args):
            if t in "IA":
                argv += [str(len(a))] + [str(x) for x in a]
            elif t == "v":
                argv += ["s", str(a)]
            else:
                argv.append(str(a).lower() if isinstance(a, bool) else str(a))
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if p.returncode:
        raise BusError(None, p.stderr.strip())
    return p.stdout


class SocketProbe(threading.Thread):
    """HTTP verifies in a loop while the bus is being abused: all must pass."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d, self.token = d, d.api.issue_token().json["access_token"]
        self.ok = self.failed = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                r = self.d.api.verify(self.token)
            except Exception as e:  # noqa: BLE001 - collected: finish() asserts in the test's thread
                r = e
            if getattr(r, "status", None) == 200:
                self.ok += 1
            else:
                self.failed += 1
                self.last_failure = r

    def finish(self):
        self.done.set()
        self.join(30)
        assert not self.is_alive(), "the socket probe hangs"
        assert self.failed == 0 and self.ok > 0, (self.ok, self.failed, getattr(self, "last_failure", None))


@pytest.mark.parametrize("kind", ["busctl", "python"])
def test_wrong_types_and_unknown_members(bus_tokend, kind):  # noqa: F811
    d = bus_tokend()
    probe = SocketProbe(d)
    probe.start()
    for path, iface, member, sig, args, error, part in HOSTILE:
        with pytest.raises(BusError) as e:
            raw_call(kind, d.bus_address, path, iface, member, sig, args)
        if kind == "python":
            assert e.value.name == error, (member, sig, e.value)
        assert part in e.value.message, (member, sig, e.value)
        # control: the well-formed call right after works
        assert d.bus(kind).call("GetJWKS").startswith('{"keys":')
    probe.finish()
    assert d.running()
    assert d.api.verify(d.bus(kind).call("IssueToken", "", [])["access_token"]).status == 200


@pytest.fixture
def slow_pam(system_user, tmp_path):  # noqa: F811
    """(user, PAM service, marker path): auth first runs a script that
    creates the marker and sleeps 2 s, then checks the password."""
    need_root("create a user and an /etc/pam.d service")
    user = system_user("tdbus_", "Pw-" + os.urandom(6).hex())
    os.chmod(tmp_path, 0o755)
    marker = tmp_path / "in-pam"
    script = tmp_path / "slow.sh"
    script.write_text("#!/bin/sh\ntouch %s\nsleep 2\n" % marker)
    script.chmod(0o755)
    svc = PamService("auth required pam_exec.so quiet %s\nauth required pam_unix.so nodelay\n"
                     "account required pam_unix.so\n" % script)
    yield user, svc.name, marker
    svc.close()


def start_login(d, user):
    """A busctl Login in the background (it returns when tokend answers)."""
    return subprocess.Popen([need_tool("busctl"), "--address=" + d.bus_address, "--json=short", "call", "--", NAME,
                             PATH, IFACE, "Login", "sss", user.name, user.password, "slow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "PAM never started"
        time.sleep(0.02)


def test_a_slow_login_does_not_hold_up_the_bus(slow_pam, bus_tokend):  # noqa: F811
    user, service, marker = slow_pam
    d = bus_tokend("[Login]\nPAMService=%s\n" % service)
    token = d.api.issue_token().json["access_token"]
    login = start_login(d, user)
    wait_for(marker, login)
    # PAM now sleeps 2 s on a worker thread; the bus answers meanwhile
    for kind in ("python", "busctl", "gdbus"):
        assert d.bus(kind).call("Verify", token, "", "")["active"] is True
    assert login.poll() is None, "the login should still be in PAM"
    out, err = login.communicate(timeout=30)
    assert login.returncode == 0, err
    assert '"access_token"' in out and user.password not in d.log()


def test_sigterm_answers_the_login_in_progress(slow_pam, bus_tokend):  # noqa: F811
    user, service, marker = slow_pam
    d = bus_tokend("[Login]\nPAMService=%s\n" % service)
    login = start_login(d, user)
    wait_for(marker, login)
    assert d.stop() == 0, d.log()
    out, err = login.communicate(timeout=30)
    assert login.returncode == 0 and '"access_token"' in out, (out, err, d.log())
    assert "D-Bus front end stopped" in d.log()


def name_has_owner(address):
    p = subprocess.run([need_tool("busctl"), "--address=" + address, "call", "org.freedesktop.DBus",
                        "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", NAME],
                       capture_output=True, text=True, timeout=30, check=True)
    return p.stdout.strip() == "b true"


def test_sigterm_releases_the_name(bus_tokend, bus):  # noqa: F811
    d = bus_tokend()
    assert name_has_owner(bus.address)
    assert d.stop(signal.SIGTERM) == 0, d.log()
    assert not name_has_owner(bus.address)
    assert "D-Bus front end stopped" in d.log()


def test_bus_none_starts_nothing(bus_tokend, bus):  # noqa: F811
    d = bus_tokend(bus_address="none")
    assert d.api.jwks().status == 200
    assert not name_has_owner(bus.address)
    assert "D-Bus front end disabled" in d.log()
    assert d.stop() == 0


def test_unreachable_bus_leaves_the_socket_serving(bus_tokend):  # noqa: F811
    d = bus_tokend(bus_address="unix:path=/nonexistent/tdbus/bus.sock")
    assert d.api.verify(d.api.issue_token().json["access_token"]).status == 200
    log = d.log()
    assert "cannot connect to unix:path=/nonexistent/tdbus/bus.sock" in log, log
    assert "continuing without the D-Bus API" in log
    assert d.stop() == 0, d.log()


def test_a_second_tokend_does_not_take_the_name(bus_tokend, bus):  # noqa: F811
    first = bus_tokend()
    second = bus_tokend()
    assert "cannot own the name io.tokend.Tokend1" in second.log(), second.log()
    assert second.api.jwks().status == 200  # its socket serves
    # the bus still reaches the first one: its devices, not the second's
    dev = first.api.issue_token().json["device_id"]
    assert dev in {x["id"] for x in first.bus("python").call("ListDevices", "")}


def test_bus_daemon_going_away(bus_tokend):  # noqa: F811
    own = BusDaemon()
    try:
        d = bus_tokend(bus_address=own.address)
        assert d.bus("python").call("GetJWKS")
        own.close()
        deadline = time.monotonic() + 15
        while "lost the D-Bus connection" not in d.log():
            assert time.monotonic() < deadline, d.log()
            time.sleep(0.05)
        assert d.api.verify(d.api.issue_token().json["access_token"]).status == 200
        assert d.api.delete_device(d.api.issue_token().json["device_id"]).status == 204  # hook with no bus
        assert d.stop() == 0, d.log()
    finally:
        own.close()
