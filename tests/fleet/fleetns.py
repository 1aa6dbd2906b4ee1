# SPDX-License-Identifier: MIT
"""The fleet of DESIGN.md "Fleet" in network namespaces (root only), shared
by tests/fleet/test_fleet.py, tests/bench/bench-fleet and `scripts/demo
fleet`.

Fleet(prefix)  the namespaces PREFIX-iss, -web1, -web2, -lap and a router
               -core, each leaf joined to the router by a veth pair
               (10.77.N.0/24: .1 the router, .2 the host); close() stops
               what was started, runs the registered closers (PAM files,
               users) and deletes the namespaces (the veth pairs go with them).
Fleet.listen() a listening TCP socket made in a namespace (tests/fleet's
               FakeIssuer serves HTTPS on it in the issuer's namespace).
Node           a tokend in a namespace (config text, state under the fleet dir);
               restart() (SIGTERM, then again on the same state), reload()
               (SIGHUP), the verifier's persisted feed state.
NsSshd         a real sshd on 10.77.N.2:22 whose PAM service is pam_jwt
               asking a local tokend.
Laptop         an unprivileged user in the laptop namespace running tokenctl,
               tokenctl-askpass and ssh (setpriv inside ip netns exec).
fleet         the pytest fixture: a Fleet, closed after the test.
start_fleet()  the whole fleet: a CA made with openssl, the issuer on HTTPS
               with a password login (pam_unix), a verifier + sshd on web1
               and web2, and a user with a password.
"""

import base64
import ctypes
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from tdharness import (Client, PamService, SystemUser, Tokend, _run_locked, find_binary, jwt_parts,  # noqa: E402,F401
                       verifier_feed_state)
from tdnet import TestCA  # noqa: E402
from e2e import MODULE, SSH, SSHD, TOKENCTL, TOKENCTL_ASKPASS, EtcFile, jwt_stack, kill_tree  # noqa: E402,F401

ISSUER_IP = "10.77.0.2"
ISSUER_URL = "https://%s:8443" % ISSUER_IP
LEAVES = {"iss": 0, "web1": 1, "web2": 2, "lap": 3}
CLONE_NEWNET = 0x40000000
UNIX_LOGIN = "auth required pam_unix.so nodelay\naccount required pam_unix.so\n"


def sh(*argv, check=True):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    assert not check or p.returncode == 0, "%s: %s" % (" ".join(argv), p.stderr)
    return p


def wait_until(cond, what, timeout=60, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(interval)


class Fleet:
    """The namespaces and links; on a failure half-way, what exists is removed."""

    def __init__(self, prefix=None):
        self.prefix = prefix or "tdf%d" % os.getpid()
        self.ns = {n: "%s-%s" % (self.prefix, n) for n in ("core", "iss", "web1", "web2", "lap")}
        self.procs, self.closers, self.made, self.users = [], [], [], []
        self.dir = tempfile.mkdtemp(prefix="tdfleet-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        try:
            self._links()
        except BaseException:
            self.close()
            raise

    def _links(self):
        for ns in self.ns.values():
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", self.ns["core"], "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        for leaf, n in LEAVES.items():
            a, b = self.veth(n), "%s-l%d" % (self.prefix[-6:], n)
            sh("ip", "link", "add", a, "netns", self.ns["core"], "type", "veth", "peer", "name", b, "netns",
               self.ns[leaf])
            sh("ip", "-n", self.ns["core"], "addr", "add", "10.77.%d.1/24" % n, "dev", a)
            sh("ip", "-n", self.ns[leaf], "addr", "add", "10.77.%d.2/24" % n, "dev", b)
            sh("ip", "-n", self.ns["core"], "link", "set", a, "up")
            sh("ip", "-n", self.ns[leaf], "link", "set", b, "up")
            sh("ip", "-n", self.ns[leaf], "route", "add", "default", "via", "10.77.%d.1" % n)

    def veth(self, n):
        """The router's end of leaf N's veth pair."""
        return "%s-i%d" % (self.prefix[-6:], n)

    def issuer_link(self, up):
        """The issuer's veth on the router's side: down cuts the issuer off,
        laptop ↔ web traffic still flows."""
        sh("ip", "-n", self.ns["core"], "link", "set", self.veth(0), "up" if up else "down")

    def listen(self, leaf, addr, port):
        """A TCP socket listening on addr:port in leaf's namespace: this
        thread enters it (setns(2)) for the socket(2) and bind(2), then comes
        back; the socket stays in the namespace it was made in."""
        libc = ctypes.CDLL(None, use_errno=True)
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        there = os.open("/run/netns/" + self.ns[leaf], os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(there, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns " + self.ns[leaf])
            try:
                return socket.create_server((addr, port))
            finally:
                if libc.setns(here, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(here)
            os.close(there)

    def spawn(self, ns, argv, log):
        with open(log, "a") as f:
            p = subprocess.Popen(["ip", "netns", "exec", self.ns[ns]] + argv, stdin=subprocess.DEVNULL,
                                 stdout=f, stderr=f, start_new_session=True)
        self.procs.append(p)
        return p

    def user(self, prefix, password):
        """A throwaway user with a password and /bin/sh (sshd runs the command
        through it), deleted at close() once its processes are gone."""
        u = SystemUser(prefix, password)
        self.closers.append(u.close)
        self.users.append(u.name)
        p = _run_locked(["usermod", "-s", "/bin/sh", u.name])
        assert p.returncode == 0, p.stderr
        return u

    def close(self):
        errors = []
        for p in reversed(self.procs):
            kill_tree(p)
        for c in reversed(self.closers):
            try:
                c()
            except (AssertionError, OSError) as e:
                errors.append(str(e))
        self.procs, self.closers = [], []
        for ns in reversed(self.made):
            sh("ip", "netns", "del", ns, check=False)  # the veth pairs go with them
        self.made = []
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        assert not errors, errors


@pytest.fixture
def fleet():
    """A Fleet for a test, closed after it; skips without ip(8), sshd or tokend."""
    if not shutil.which("ip") or not os.path.exists(SSHD) or not find_binary("tokend"):
        pytest.skip("needs ip(8), sshd and a built tokend")
    f = Fleet()
    try:
        yield f
    finally:
        f.close()


class Node:
    """A tokend in a namespace: config text, its socket and state under DIR/name."""

    def __init__(self, fleet, ns, name, config):
        self.fleet, self.ns = fleet, ns
        self.dir = os.path.join(fleet.dir, name)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "tokend.sock")
        self.state = os.path.join(self.dir, "state")
        self.log_path = os.path.join(self.dir, "tokend.log")
        self.conf = os.path.join(self.dir, "tokend.conf")
        with open(self.conf, "w") as f:
            f.write(config)
        self.api = Client(self.socket)
        self.start()

    def start(self):
        if os.path.exists(self.socket):
            os.unlink(self.socket)  # left by a stopped one: wait for this one's
        self.proc = self.fleet.spawn(self.ns, [find_binary("tokend"), "--config", self.conf, "--state-dir",
                                               self.state, "--socket", self.socket, "--bus", "none", "-v"],
                                     self.log_path)
        wait_until(lambda: os.path.exists(self.socket) or self.proc.poll() is not None, "tokend should start")
        assert self.proc.poll() is None, self.log()

    def running(self):
        return self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)  # ip netns exec execs tokend: the pid is tokend's

    reload = Tokend.reload  # SIGHUP, then wait for its "reloaded:"/"reload failed" line

    def restart(self):
        """SIGTERM, exit 0, then a new tokend on the same config and state."""
        self.send_signal(signal.SIGTERM)
        assert self.proc.wait(20) == 0, self.log()
        self.fleet.procs.remove(self.proc)
        self.start()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        kill_tree(self.proc)

    def feed_state(self):
        """This verifier's verifier-feed.json (SEQ, revoked set, counters), {} before the first."""
        return verifier_feed_state(self.state)

    def feed_seq(self):
        """The SEQ this verifier applied last, -1 before the first."""
        return self.feed_state().get("seq", -1)

    def wait_seq(self, seq):
        wait_until(lambda: self.feed_seq() >= seq, lambda: "the verifier should apply SEQ %d:\n%s" % (
            seq, self.log()[-3000:]))

    def issuer_seq(self):
        """The issuer's newest SEQ, from its own feed (the JWS is not verified here)."""
        r = self.api.request("GET", "/api/revocations?after=0")
        assert r.status == 200, r
        payload = r.body.split(b".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))["seq"]


class NsSshd:
    """A real sshd in a namespace on 10.77.N.2:22, PAM service pam_jwt."""

    def __init__(self, fleet, leaf, verifier, users):
        self.fleet, self.leaf, self.last = fleet, leaf, None
        self.addr = "10.77.%d.2" % LEAVES[leaf]
        self.dir = os.path.join(fleet.dir, "sshd-" + leaf)
        os.makedirs(self.dir)
        self.pam = EtcFile("/etc/pam.d", jwt_stack(verifier.socket, "sshd", timeout_ms=2000), prefix="tdfleet-")
        fleet.closers.append(self.pam.close)
        program = os.path.join(self.dir, self.pam.name)
        os.symlink(SSHD, program)
        key = os.path.join(self.dir, "host_key")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
        conf = os.path.join(self.dir, "sshd_config")
        with open(conf, "w") as f:
            f.write("\n".join(["ListenAddress %s:22" % self.addr, "HostKey " + key,
                               "PidFile " + os.path.join(self.dir, "pid"), "UsePAM yes",
                               "KbdInteractiveAuthentication yes", "PasswordAuthentication no",
                               "PubkeyAuthentication no", "AuthorizedKeysFile none", "PermitRootLogin no",
                               "AllowUsers " + " ".join(users), "PrintMotd no", "LogLevel VERBOSE"]) + "\n")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.log_path = os.path.join(self.dir, "sshd.log")
        self.proc = fleet.spawn(leaf, [program, "-D", "-e", "-f", conf], self.log_path)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


class Laptop:
    """An unprivileged user in the laptop namespace: tokenctl, tokenctl-askpass
    and ssh run as that user (setpriv inside ip netns exec), with a home of
    its own whose ~/.config/tokend/tokenctl.conf names the issuer and its CA
    (askpass takes no options) and no tokend socket at all."""

    def __init__(self, fleet, user, ca_cert):
        self.fleet, self.user, self.ca = fleet, user, ca_cert
        pw = pwd.getpwnam(user.name)
        self.ids = ["--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--clear-groups"]
        self.home = os.path.join(fleet.dir, "home-" + user.name)
        conf = os.path.join(self.home, ".config", "tokend")
        os.makedirs(conf)
        with open(os.path.join(conf, "tokenctl.conf"), "w") as f:
            f.write("issuer=%s\nca-file=%s\n" % (ISSUER_URL, ca_cert))
        for d, _, files in os.walk(self.home):
            for x in [d] + [os.path.join(d, n) for n in files]:
                os.chown(x, pw.pw_uid, pw.pw_gid)
        self.env = {"PATH": "/usr/bin:/bin", "HOME": self.home, "LANG": "C", "TOKEND_SOCKET": "",
                    "XDG_STATE_HOME": os.path.join(self.home, "state"),
                    "XDG_CONFIG_HOME": os.path.join(self.home, ".config")}

    def run(self, argv, input=None, env=None):
        e = dict(self.env, **(env or {}))
        return subprocess.run(["ip", "netns", "exec", self.fleet.ns["lap"], "setpriv"] + self.ids +
                              ["--no-new-privs", "--"] + argv, env=e, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=60, start_new_session=True, check=False)

    def tokenctl(self, *args, input=None):
        p = self.run([TOKENCTL, "--issuer", ISSUER_URL, "--ca-file", self.ca] + list(args), input=input)
        assert p.returncode == 0, "tokenctl %s: rc=%d %s" % (" ".join(args), p.returncode, p.stderr)
        return p.stdout

    def login(self):
        """tokenctl login with the password (the issuer's PAM stack checks it)."""
        return self.tokenctl("login", "--user", self.user.name, "--device-name", "laptop",
                             input=self.user.password + "\n")

    def ssh(self, sshd, host=None, token=None):
        """ssh HOST (default: sshd's own name) connecting to sshd's address:
        its prompt says "(user@HOST)", so tokenctl-askpass fetches an
        sshd@HOST token over HTTPS; with token, a script answers it instead.
        True when the command ran as the user on that host; sshd.last is
        the CompletedProcess."""
        env = {"DISPLAY": ":0", "SSH_ASKPASS": TOKENCTL_ASKPASS, "SSH_ASKPASS_REQUIRE": "force"}
        if token is not None:
            env["SSH_ASKPASS"] = os.path.join(self.home, "askpass-token")
            with open(env["SSH_ASKPASS"], "w") as f:
                f.write("#!/bin/sh\ncat <<'EOF'\n%s\nEOF\n" % token)
            os.chmod(env["SSH_ASKPASS"], 0o755)
        host = host or sshd.leaf
        p = self.run([SSH, "-F", "/dev/null", "-l", self.user.name, "-o", "HostName=" + sshd.addr,
                      "-o", "HostKeyAlias=" + host, "-o", "PreferredAuthentications=keyboard-interactive",
                      "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                      "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
                      host, "id -un"], env=env)
        sshd.last = p
        return p.returncode == 0 and p.stdout.strip() == self.user.name


def issuer_config(cert, key, login_service, public_url=ISSUER_URL):
    return ("[Network]\nListen=0.0.0.0:8443\nCertificate=%s\nPrivateKey=%s\nPublicURL=%s\n[Login]\nPAMService=%s\n"
            % (cert, key, public_url, login_service))


def verifier_config(ca_cert, leaf, policy, max_staleness, issuer=ISSUER_URL):
    return ("[Verifier]\nIssuer=%s\nCAFile=%s\nHostNames=%s\nPolicy=%s\nMaxStaleness=%s\n"
            % (issuer, ca_cert, leaf, policy, max_staleness))


def start_fleet(fleet, user_prefix, policies, max_staleness, public_url=ISSUER_URL):
    """The CA, the issuer (HTTPS, password login through a throwaway
    pam_unix service), a user with a password, and for each (leaf, policy)
    a verifier plus sshd; returns (ca, issuer, user, verifiers, sshds) once
    every verifier has its first feed answer. public_url: the issuer's
    PublicURL= (its iss), which its verifiers fetch from."""
    login = PamService(UNIX_LOGIN)
    fleet.closers.append(login.close)
    user = fleet.user(user_prefix, "Fleet-pw-" + secrets.token_hex(6))
    ca = TestCA(os.path.join(fleet.dir, "ca"))
    cert, key = ca.issue("issuer", [ISSUER_IP], [])
    issuer = Node(fleet, "iss", "issuer", issuer_config(cert, key, login.name, public_url))
    verifiers, sshds = {}, {}
    for leaf, policy in policies:
        verifiers[leaf] = Node(fleet, leaf, leaf, verifier_config(ca.cert, leaf, policy, max_staleness, public_url))
        sshds[leaf] = NsSshd(fleet, leaf, verifiers[leaf], [user.name])
    for v in verifiers.values():
        v.wait_seq(0)  # it reached the issuer over HTTPS
    return ca, issuer, user, verifiers, sshds
