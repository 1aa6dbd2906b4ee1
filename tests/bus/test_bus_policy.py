# SPDX-License-Identifier: MIT
"""The installed D-Bus files: the system-bus policy loaded by a real
dbus-daemon on top of a config that allows everything, so the file alone
must enforce its rules (only the tokend user owns the name, everyone calls,
Set is refused, nobody eavesdrops), the
bus-activation file, and the introspection XML against what tokend
introspects as. The policy's "tokend" user is swapped for a throwaway one."""

import configparser
import json
import os
import queue
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdbus import (IFACE, NAME, PATH, PY_CLIENT, BusDaemon, BusTokend, BusError, as_user, bus,  # noqa: E402,F401
                   bus_tokend, need_tool, system_user)
from tdharness import TOP_SRCDIR, need_root  # noqa: E402

DBUS_DIR = os.path.join(TOP_SRCDIR, "etc", "dbus")


def read(name):
    with open(os.path.join(DBUS_DIR, name)) as f:
        return f.read()


def canonical(iface):
    """An <interface> element as a comparable tuple."""
    def ann(e):
        return tuple(sorted((a.get("name"), a.get("value")) for a in e.findall("annotation")))

    def args(e):
        return tuple((a.get("name"), a.get("type"), a.get("direction")) for a in e.findall("arg"))
    return (sorted((m.get("name"), args(m), ann(m)) for m in iface.findall("method")),
            sorted((s.get("name"), args(s), ann(s)) for s in iface.findall("signal")),
            sorted((p.get("name"), p.get("type"), p.get("access"), ann(p)) for p in iface.findall("property")))


def test_introspection_xml_matches_the_daemon(bus_tokend):  # noqa: F811
    import dbus
    d = bus_tokend()
    conn = dbus.bus.BusConnection(d.bus_address)
    live = conn.call_blocking(NAME, PATH, "org.freedesktop.DBus.Introspectable", "Introspect", "", ())
    conn.close()
    (live_iface,) = [i for i in ET.fromstring(str(live)).findall("interface") if i.get("name") == IFACE]
    shipped = ET.fromstring(read("io.tokend.Tokend1.xml"))
    assert shipped.tag == "node"
    (iface,) = shipped.findall("interface")
    assert iface.get("name") == IFACE and canonical(iface) == canonical(live_iface)


def test_activation_file_points_at_the_unit():
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read_string(read("io.tokend.Tokend1.service"))
    s = cp["D-BUS Service"]
    assert s["Name"] == NAME and s["SystemdService"] == "tokend.service" and s["User"] == "tokend"
    with open(os.path.join(TOP_SRCDIR, "etc", "tokend.service.in")) as f:
        unit = f.read()
    assert "\nUser=tokend\n" in unit  # the user the policy lets own the name


class Eavesdropper:
    """tdbus_client.py --eavesdrop as root: eavesdrop=true match rules (not
    BecomeMonitor, which would bypass the policy); messages collected by a
    thread."""

    def __init__(self, address):
        self.proc = subprocess.Popen(["/usr/bin/python3", "-u", PY_CLIENT, address, "--eavesdrop"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.messages = []
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.lines.get(timeout=15) == "ready\n"

    def _read(self):
        for ln in self.proc.stdout:
            self.lines.put(ln)

    def wait_for(self, needle, timeout):
        """True once a message with needle among its arguments arrived."""
        deadline = time.monotonic() + timeout
        while not any(needle in m["args"] for m in self.messages):
            try:
                ln = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return False
            self.messages.append(json.loads(ln))
        return True

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()


def eavesdropped(d, address):
    """Does an eavesdropper see a marker sent in a call to tokend, or
    tokend's answer? (Signals reach it either way: they sync the check.)"""
    ear = Eavesdropper(address)
    try:
        marker = "tdbus-eavesdrop-marker-" + os.urandom(6).hex()
        with pytest.raises(BusError):
            d.bus("python").call("Verify", marker, "", "")  # the call carries the marker
        jwks = d.bus("python").call("GetJWKS")               # the answer carries the JWKS
        dev = d.api.issue_token().json["device_id"]
        d.api.delete_device(dev)
        assert ear.wait_for(dev, 15), ear.messages  # its own copy (root subscribed), not eavesdropped
        seen = [m for m in ear.messages if marker in m["args"] or jwks in m["args"]]
        return len(seen)
    finally:
        ear.close()


@pytest.fixture
def policy(system_user, tmp_path):  # noqa: F811
    """(daemon user, caller user, policy file): the shipped policy naming a
    throwaway user instead of "tokend"."""
    need_root("run tokend and clients as other uids")
    owner, caller = system_user("tdbus_"), system_user("tdbus_")
    text = read("io.tokend.Tokend1.conf")
    assert text.count('user="tokend"') == 1
    os.chmod(tmp_path, 0o755)
    path = tmp_path / "io.tokend.Tokend1.conf"
    path.write_text(text.replace('user="tokend"', 'user="%s"' % owner.name))
    return owner, caller, str(path)


def test_shipped_policy(policy):
    owner, caller, path = policy
    bus = BusDaemon(policy=path)  # noqa: F811 - dbus-daemon refuses a malformed policy file
    daemons = []
    try:
        # root is not the tokend user: no name, but the socket serves
        intruder = BusTokend(bus.address)
        daemons.append(intruder)
        intruder.start()
        assert "cannot own the name io.tokend.Tokend1" in intruder.log(), intruder.log()
        intruder.close()

        d = BusTokend(bus.address, user=owner.name)
        daemons.append(d)
        d.start()
        assert "D-Bus: serving io.tokend.Tokend1" in d.log(), d.log()
        # everyone may call; tokend's own rules apply
        for kind in ("busctl", "gdbus", "python"):
            tok = d.bus(kind, user=caller.name).call("IssueToken", "", [])
            assert tok["user"] == caller.name
            assert d.bus(kind, user=caller.name).get_property("Issuer") == "tokend"
        assert d.bus("python").call("ListDevices", caller.name)
        # Set is not even delivered
        p = subprocess.run(as_user([need_tool("busctl"), "--address=" + bus.address, "set-property", NAME, PATH,
                                    IFACE, "Issuer", "s", "evil"], caller.name),
                           capture_output=True, text=True, timeout=30, check=False)
        assert p.returncode != 0 and "Access denied" in p.stderr, p.stderr
        # nobody eavesdrops on calls or answers
        assert eavesdropped(d, bus.address) == 0
    finally:
        for x in daemons:
            x.close()
        bus.close()


def test_eavesdropping_control(bus_tokend, bus):  # noqa: F811
    """Control for the check above: on a bus whose policy allows
    eavesdropping, the same eavesdropper sees the call and the answer."""
    d = bus_tokend()
    assert eavesdropped(d, bus.address) == 2
