# SPDX-License-Identifier: MIT
"""Harness for the io.tokend.Tokend1 D-Bus tests: a private dbus-daemon,
tokend on it, and three D-Bus clients nobody here wrote.

BusDaemon     `dbus-daemon --config-file=…` on unix:path=DIR/bus.sock with a
              custom config that lets every uid connect, call, own, receive
              and eavesdrop; with policy=FILE that file is included after it,
              so FILE alone must enforce its rules (the shipped policy);
              with user=NAME the daemon runs as that user (a bus tokend
              must not trust), else as us (root: a bus it trusts).
BusTokend     tdharness.Tokend started with `--bus ADDRESS` instead of
              `--bus none`.
BusClient     one method call through busctl, gdbus or python3-dbus,
              optionally as another user (runuser); answers come back as
              plain Python values, D-Bus errors as BusError(name, message)
              (busctl prints only the message: name is None there).
SignalWatcher DeviceRevoked as a listening client sees it: python3-dbus
              (GLib main loop, a child process, optionally as another user)
              that calls Subscribe() (or not, subscribe=False), or `gdbus
              monitor` (which cannot subscribe: it sees only what others'
              signals an open bus lets it eavesdrop on).
Fixtures      bus (a BusDaemon), bus_tokend(config="", bus_address=None) → started
              BusTokend, watcher(kind, user=None) → SignalWatcher; all stopped
              at teardown. Also re-exported: system_user.
"""

import json
import os
import pwd
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from tdharness import Tokend, system_user  # noqa: E402,F401

sys.path.insert(0, HERE)
from tdbus_client import IFACE, NAME, PATH, BusError, py_call, py_property  # noqa: E402,F401

CLIENTS = ("busctl", "gdbus", "python")
# in-signatures of the interface (busctl needs them spelled out)
SIGNATURES = {
    "Login": "sss", "IssueToken": "sas", "Refresh": "sss", "Logout": "s", "Verify": "sss",
    "ListDevices": "s", "ListDevicesPaged": "ssu", "ListAudit": "ssu", "RevokeDevice": "s", "GetJWKS": "",
    "Unlock": "s",
}
PY_CLIENT = os.path.join(HERE, "tdbus_client.py")


def need_tool(name):
    path = shutil.which(name) or (os.path.join("/usr/bin", name) if os.path.exists("/usr/bin/" + name) else None)
    if not path:
        pytest.skip("%s is not installed" % name)
    return path


def as_user(argv, user, long_running=False):
    """argv run as user (a name) with runuser; unchanged when user is None.
    long_running: with setpriv, which execs the program itself (runuser
    stays its parent and, when terminated, waits 2 s before a SIGKILL)."""
    if user is None:
        return argv
    if long_running:
        pw = pwd.getpwnam(user)
        return ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--clear-groups"] + argv
    return ["runuser", "-u", user, "--"] + argv


# ---- the bus daemon --------------------------------------------------------

OPEN_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path=%(sock)s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*" eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  %(include)s
</busconfig>
"""

class BusDaemon:
    """A dbus-daemon of our own; .address is its D-Bus address."""

    def __init__(self, policy=None, user=None):
        binary = need_tool("dbus-daemon")
        self.dir = tempfile.mkdtemp(prefix="tdbus-", dir="/tmp")
        os.chmod(self.dir, 0o755)  # other uids must reach the socket
        if user:
            pw = pwd.getpwnam(user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)  # it creates the socket
        self.sock = os.path.join(self.dir, "bus.sock")
        self.address = "unix:path=" + self.sock
        self.config = os.path.join(self.dir, "bus.conf")
        with open(self.config, "w") as f:
            f.write(OPEN_CONFIG % {"sock": self.sock, "include": "<include>%s</include>" % policy if policy else ""})
        self.log_path = os.path.join(self.dir, "dbus.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(as_user([binary, "--config-file=" + self.config, "--nofork", "--print-address"],
                                             user, long_running=True),
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()  # printed once it listens
        assert line.startswith("unix:"), "dbus-daemon did not start: %r\n%s" % (line, self.read_log())

    def read_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def close(self):
        if self.proc.stdin:
            self.proc.stdin.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class BusTokend(Tokend):
    """A Tokend on bus_address (any D-Bus address, or "none")."""

    def __init__(self, bus_address, config="", env=None, user=None):
        super().__init__(config, env=env, user=user, bus_address=bus_address)

    def bus(self, kind="busctl", user=None):
        return BusClient(self.bus_address, kind, user)


# ---- clients ---------------------------------------------------------------

def _unwrap_busctl(sig, data):
    """busctl --json=short values → plain Python (variants unwrapped)."""
    if isinstance(data, dict) and set(data) == {"type", "data"}:
        return _unwrap_busctl(data["type"], data["data"])
    if sig.startswith("a{"):
        return {k: _unwrap_busctl(sig[3:-1], v) for k, v in data.items()}
    if sig.startswith("a"):
        return [_unwrap_busctl(sig[1:], v) for v in data]
    return data


def _busctl_args(sig, args):
    out = []
    for t, a in zip(_split_signature(sig), args):
        if t == "as":
            out += [str(len(a))] + list(a)
        else:
            out.append(str(a))
    return out


def _complete_type(sig, i=0):
    """End index of the single complete type starting at sig[i]."""
    if sig[i] == "a":
        return _complete_type(sig, i + 1)
    if sig[i] in "({":
        close, j = {"(": ")", "{": "}"}[sig[i]], i + 1
        while sig[j] != close:
            j = _complete_type(sig, j)
        return j + 1
    return i + 1


def _split_signature(sig):
    """'sasaa{sv}' → ['s', 'as', 'aa{sv}']."""
    out, i = [], 0
    while i < len(sig):
        j = _complete_type(sig, i)
        out.append(sig[i:j])
        i = j
    return out


class BusClient:
    """Calls to io.tokend.Tokend1 on one bus with one client program.
    kind: "busctl", "gdbus" or "python" (python3-dbus; in this process when
    user is None, else tdbus_client.py under runuser)."""

    def __init__(self, address, kind="busctl", user=None, timeout=30):
        assert kind in CLIENTS
        self.address, self.kind, self.user, self.timeout = address, kind, user, timeout

    def call(self, method, *args, signature=None):
        """Call method with args (str or list of str); signature overrides
        the interface's (to send wrong types). Returns the answer's values
        (one value → that value; none → None) or raises BusError."""
        sig = SIGNATURES.get(method, "") if signature is None else signature
        if self.kind == "busctl":
            return self._busctl(method, sig, args)
        if self.kind == "gdbus":
            return self._gdbus(method, sig, args)
        if self.user is None:
            return py_call(self.address, method, sig, list(args))
        return self._run_py(method, sig, args)

    def _run(self, argv):
        return subprocess.run(as_user(argv, self.user), capture_output=True, text=True, timeout=self.timeout,
                              check=False)

    def _busctl(self, method, sig, args):
        # "--": base64url secrets may start with '-', which busctl would take for an option
        argv = [need_tool("busctl"), "--address=" + self.address, "--json=short", "call", "--", NAME, PATH, IFACE,
                method] + ([sig] + _busctl_args(sig, args) if sig else [])
        p = self._run(argv)
        if p.returncode != 0:
            msg = p.stderr.strip()
            assert msg.startswith("Call failed: "), p.stderr
            raise BusError(None, msg[len("Call failed: "):])
        if not p.stdout.strip():
            return None
        out = json.loads(p.stdout)
        vals = [_unwrap_busctl(t, v) for t, v in zip(_split_signature(out["type"]), out["data"])]
        return vals[0] if len(vals) == 1 else vals

    def _gdbus(self, method, sig, args):
        from gi.repository import GLib
        argv = [need_tool("gdbus"), "call", "--address", self.address, "--dest", NAME, "--object-path", PATH,
                "--method", IFACE + "." + method, "--"]
        argv += [GLib.Variant(t, a).print_(False) for t, a in zip(_split_signature(sig), args)]
        p = self._run(argv)
        if p.returncode != 0:
            # "Error: GDBus.Error:io.tokend.Error.X: message"
            err = p.stderr.strip().splitlines()[0]
            prefix = "Error: GDBus.Error:"
            assert err.startswith(prefix), p.stderr
            name, _, msg = err[len(prefix):].partition(": ")
            raise BusError(name, msg)
        vals = GLib.Variant.parse(None, p.stdout.strip(), None, None).unpack()
        return vals[0] if len(vals) == 1 else (None if not vals else list(vals))

    def _run_py(self, method, sig, args):
        p = self._run(["/usr/bin/python3", PY_CLIENT, self.address, method, sig, json.dumps(list(args))])
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        if "error" in out:
            raise BusError(out["error"], out["message"])
        return out["result"]

    def get_property(self, name):
        if self.kind == "busctl":
            p = self._run([need_tool("busctl"), "--address=" + self.address, "--json=short", "get-property", NAME,
                           PATH, IFACE, name])
            assert p.returncode == 0, p.stderr
            out = json.loads(p.stdout)
            return _unwrap_busctl(out["type"], out["data"])
        if self.kind == "gdbus":
            from gi.repository import GLib
            p = self._run([need_tool("gdbus"), "call", "--address", self.address, "--dest", NAME, "--object-path",
                           PATH, "--method", "org.freedesktop.DBus.Properties.Get", IFACE, name])
            assert p.returncode == 0, p.stderr
            return GLib.Variant.parse(None, p.stdout.strip(), None, None).unpack()[0]
        return py_property(self.address, name)


# ---- signals ---------------------------------------------------------------

class SignalWatcher:
    """A subscribed client printing each DeviceRevoked it receives;
    wait_for(device_id) returns the (user, device_id) pair seen."""

    def __init__(self, address, kind="python", user=None, subscribe=True):
        if kind == "python":
            argv = ["/usr/bin/python3", "-u", PY_CLIENT, address, "--watch"] + ([] if subscribe else
                                                                                 ["--no-subscribe"])
        else:
            argv = [need_tool("gdbus"), "monitor", "--address", address, "--dest", NAME,
                    "--object-path", PATH]
        self.kind = kind
        self.proc = subprocess.Popen(as_user(argv, user, long_running=True), stdout=subprocess.PIPE,
                                     stdin=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()
        ready = "ready" if kind == "python" else "Monitoring signals"
        self._next(lambda ln: ready in ln, 15, "the watcher did not start")

    def _read(self):
        for ln in self.proc.stdout:
            self.lines.put(ln.rstrip("\n"))
        self.lines.put(None)

    def _next(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            try:
                ln = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("%s within %ss (saw %r)" % (what, timeout, self.seen)) from None
            assert ln is not None, "the watcher exited (saw %r)" % self.seen
            sig = self._parse(ln)
            if sig:
                self.seen.append(sig)
            if pred(ln) or (sig and pred(sig)):
                return sig

    def _parse(self, ln):
        if self.kind == "python":
            return tuple(json.loads(ln)) if ln.startswith("[") else None
        # gdbus: "/io/tokend/Tokend1: io.tokend.Tokend1.DeviceRevoked ('alice', 'dev_…')"
        if IFACE + ".DeviceRevoked " not in ln:
            return None
        from gi.repository import GLib
        return tuple(GLib.Variant.parse(None, ln.split("DeviceRevoked ", 1)[1], None, None).unpack())

    def wait_for(self, device_id, timeout=15):
        for s in self.seen:
            if s[1] == device_id:
                return s
        return self._next(lambda x: isinstance(x, tuple) and x[1] == device_id, timeout,
                          "no DeviceRevoked for %s" % device_id)

    def barrier(self, timeout=15):
        """(python) Return once every signal the bus had queued for this
        watcher before now has been read into seen."""
        self.proc.stdin.write("ping\n")
        self.proc.stdin.flush()
        self._next(lambda ln: ln == "pong", timeout, "no pong")

    def sync(self, tokend):
        """For watchers that subscribe asynchronously (gdbus): revoke
        throwaway devices until one is seen, so the subscription is live."""
        deadline = time.monotonic() + 15
        while True:
            dev = tokend.api.issue_token().json["device_id"]
            assert tokend.api.delete_device(dev).status == 204
            try:
                self.wait_for(dev, timeout=0.5)
                return
            except AssertionError:
                assert time.monotonic() < deadline, "the watcher never saw a signal"

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


# ---- fixtures ----------------------------------------------------------------

@pytest.fixture
def bus():
    b = BusDaemon()
    yield b
    b.close()


@pytest.fixture
def bus_tokend(bus):
    """make(config="", bus_address=None, user=None) → a started BusTokend on
    the test's bus (or on bus_address); killed and removed at teardown."""
    made = []

    def make(config="", bus_address=None, user=None):
        d = BusTokend(bus_address or bus.address, config, user=user)
        made.append(d)
        return d.start()

    yield make
    for d in made:
        d.close()


@pytest.fixture
def watcher(bus):
    made = []

    def make(kind="python", user=None, address=None, subscribe=True):
        w = SignalWatcher(address or bus.address, kind, user, subscribe)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()
