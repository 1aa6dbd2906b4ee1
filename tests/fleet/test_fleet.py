# SPDX-License-Identifier: MIT
"""A fleet in network namespaces (DESIGN.md "Fleet"; root only): the test
makes the namespaces tdf<pid>-iss, -web1, -web2, -lap and a router -core,
joins each to the router by a veth pair (10.77.N.0/24: .1 the router, .2
the host) and removes everything at the end. The issuer's tokend serves
HTTPS on 10.77.0.2:8443 (certificate from a throwaway CA made by
openssl); web1 and web2 run a verifier tokend (web1 Policy=strict, web2
best_effort, MaxStaleness=3s) and a real sshd whose PAM stack is pam_jwt asking the
local verifier. In the laptop namespace an unprivileged user runs
`tokenctl --issuer https://10.77.0.2:8443 --ca-file CA login` (password,
the issuer's real PAM stack) and `ssh web1` with SSH_ASKPASS=tokenctl-askpass
(forced): askpass takes the host from ssh's "(user@web1)" prompt and fetches
an sshd@web1 token over HTTPS, and the login runs. That web1-scoped token is
refused by web2 (handed over directly, and fetched by askpass for an ssh
whose name says web1 but whose address is web2's), while askpass for web2
gets in there; after `tokenctl logout` (the device revoked on the issuer)
web1 refuses the token once it applied that SEQ; with the issuer's link
cut (ip link set down on the router's end of the issuer's veth) web1
refuses every token after MaxStaleness while web2 keeps accepting, and
both accept again once the link is up. Waits are for events (a SEQ, an
answer), bounded only against a hang."""

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from tdharness import Client, find_binary, jwt_parts, system_user  # noqa: E402,F401
from tdnet import TestCA  # noqa: E402
from e2e import (MODULE, SSH, SSHD, TOKENCTL, TOKENCTL_ASKPASS, EtcFile, e2e_user, jwt_stack,  # noqa: E402,F401
                 kill_tree)

ISSUER_IP = "10.77.0.2"
ISSUER_URL = "https://%s:8443" % ISSUER_IP
LEAVES = {"iss": 0, "web1": 1, "web2": 2, "lap": 3}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces, users and sshd")


def sh(*argv, check=True):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    assert not check or p.returncode == 0, "%s: %s" % (" ".join(argv), p.stderr)
    return p


class Fleet:
    def __init__(self):
        self.prefix = "tdf%d" % os.getpid()
        self.ns = {n: "%s-%s" % (self.prefix, n) for n in ("core", "iss", "web1", "web2", "lap")}
        self.procs = []
        self.dir = tempfile.mkdtemp(prefix="tdfleet-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        for ns in self.ns.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", self.ns["core"], "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        for leaf, n in LEAVES.items():
            a, b = "%s-i%d" % (self.prefix[-6:], n), "%s-l%d" % (self.prefix[-6:], n)
            sh("ip", "link", "add", a, "netns", self.ns["core"], "type", "veth", "peer", "name", b, "netns",
               self.ns[leaf])
            sh("ip", "-n", self.ns["core"], "addr", "add", "10.77.%d.1/24" % n, "dev", a)
            sh("ip", "-n", self.ns[leaf], "addr", "add", "10.77.%d.2/24" % n, "dev", b)
            sh("ip", "-n", self.ns["core"], "link", "set", a, "up")
            sh("ip", "-n", self.ns[leaf], "link", "set", b, "up")
            sh("ip", "-n", self.ns[leaf], "route", "add", "default", "via", "10.77.%d.1" % n)

    def issuer_link(self, up):
        """The issuer's veth on the router's side: down cuts the issuer off,
        laptop ↔ web traffic still flows."""
        sh("ip", "-n", self.ns["core"], "link", "set", "%s-i0" % self.prefix[-6:], "up" if up else "down")

    def spawn(self, ns, argv, log):
        with open(log, "a") as f:
            p = subprocess.Popen(["ip", "netns", "exec", self.ns[ns]] + argv, stdin=subprocess.DEVNULL,
                                 stdout=f, stderr=f, start_new_session=True)
        self.procs.append(p)
        return p

    def close(self):
        for p in reversed(self.procs):
            kill_tree(p)
        for ns in self.ns.values():
            sh("ip", "netns", "del", ns, check=False)  # the veth pairs go with them
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def fleet():
    if not shutil.which("ip") or not os.path.exists(SSHD) or not find_binary("tokend"):
        pytest.skip("needs ip(8), sshd and a built tokend")
    f = Fleet.__new__(Fleet)
    f.procs, f.ns, f.dir = [], {}, None
    try:
        f.__init__()
        yield f
    finally:
        f.close()


def wait_until(cond, what, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(0.1)


class Node:
    """A tokend in a namespace: config text, its socket and state under DIR/name."""

    def __init__(self, fleet, ns, name, config):
        self.dir = os.path.join(fleet.dir, name)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "tokend.sock")
        self.state = os.path.join(self.dir, "state")
        self.log_path = os.path.join(self.dir, "tokend.log")
        conf = os.path.join(self.dir, "tokend.conf")
        with open(conf, "w") as f:
            f.write(config)
        self.proc = fleet.spawn(ns, [find_binary("tokend"), "--config", conf, "--state-dir", self.state, "--socket",
                                     self.socket, "--bus", "none", "-v"], self.log_path)
        self.api = Client(self.socket)
        wait_until(lambda: os.path.exists(self.socket) or self.proc.poll() is not None, "tokend should start")
        assert self.proc.poll() is None, self.log()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def feed_seq(self):
        try:
            with open(os.path.join(self.state, "verifier-feed.json")) as f:
                return json.load(f)["seq"]
        except (OSError, ValueError, KeyError):
            return -1


class NsSshd:
    """A real sshd in a namespace on 10.77.N.2:22, PAM service pam_jwt."""

    def __init__(self, fleet, leaf, verifier, users):
        self.fleet, self.leaf = fleet, leaf
        self.addr = "10.77.%d.2" % LEAVES[leaf]
        self.dir = os.path.join(fleet.dir, "sshd-" + leaf)
        os.makedirs(self.dir)
        self.pam = EtcFile("/etc/pam.d", jwt_stack(verifier.socket, "sshd", timeout_ms=2000), prefix="tdfleet-")
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

    def close(self):
        self.pam.close()


class Laptop:
    """An unprivileged user in the laptop namespace: tokenctl, tokenctl-askpass
    and ssh run as that user (setpriv inside ip netns exec), with a home of
    its own whose ~/.config/tokend/tokenctl.conf names the issuer and its CA
    (askpass takes no options) and no tokend socket at all."""

    def __init__(self, fleet, user, ca_cert):
        self.fleet, self.user = fleet, user
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
        self.ca = ca_cert

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
        True when the command ran as the user on that host."""
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


def test_fleet(fleet, e2e_user):
    from tdharness import PamService
    user = e2e_user("Fleet-pw-%d" % os.getpid())
    login_svc = PamService("auth required pam_unix.so nodelay\naccount required pam_unix.so\n")
    sshds = []
    try:
        ca = TestCA(os.path.join(fleet.dir, "ca"))
        cert, key = ca.issue("issuer", [ISSUER_IP], [])
        issuer = Node(fleet, "iss", "issuer", "[Network]\nListen=0.0.0.0:8443\nCertificate=%s\nPrivateKey=%s\n"
                      "PublicURL=%s\n[Login]\nPAMService=%s\n" % (cert, key, ISSUER_URL, login_svc.name))
        verifiers = {}
        for leaf, policy in (("web1", "strict"), ("web2", "best_effort")):
            verifiers[leaf] = Node(fleet, leaf, leaf, "[Verifier]\nIssuer=%s\nCAFile=%s\nHostNames=%s\n"
                                   "Policy=%s\nMaxStaleness=3s\n" % (ISSUER_URL, ca.cert, leaf, policy))
            sshds.append(NsSshd(fleet, leaf, verifiers[leaf], [user.name]))
        web1, web2 = sshds
        for v in verifiers.values():
            wait_until(lambda: v.feed_seq() >= 0, "a verifier should reach the issuer over HTTPS:\n" + v.log())

        # The ssh story: the laptop user logs in to the issuer with tokenctl
        # (password, the issuer's PAM stack) and sshes into web1; askpass
        # fetches an sshd@web1 token over HTTPS. web2 refuses that token.
        laptop = Laptop(fleet, user, ca.cert)
        assert "Logged in as %s" % user.name in laptop.login()
        wait_until(lambda: laptop.ssh(web1), lambda: "ssh into web1: %r\nsshd:\n%s\nverifier:\n%s" % (
            web1.last.stderr, web1.log()[-2000:], verifiers["web1"].log()[-2000:]), timeout=20)
        tok = laptop.tokenctl("token", "--host", "web1").strip()
        cl = jwt_parts(tok)[1]
        assert cl["aud"] == ["sshd@web1"] and cl["iss"] == ISSUER_URL and cl["sub"] == user.name, cl
        assert laptop.ssh(web1, token=tok)  # control: handed over directly
        assert not laptop.ssh(web2, token=tok)
        assert "Permission denied" in web2.last.stderr, web2.last
        # askpass as ssh web1 lands on web2's address (a wrong name → address)
        assert not laptop.ssh(web2, host="web1")
        assert "not for service sshd on this host" in verifiers["web2"].log()
        assert laptop.ssh(web2)  # control: askpass fetches web2's own token

        # tokenctl logout (revokes the laptop's device on the issuer): web1
        # refuses once it applied that SEQ.
        laptop.tokenctl("logout")
        seq = jwt_parts(issuer.api.request("GET", "/api/revocations?after=0").body.decode())[1]["seq"]
        wait_until(lambda: verifiers["web1"].feed_seq() >= seq, "web1 should apply SEQ %d" % seq)
        assert not laptop.ssh(web1, token=tok)
        assert verifiers["web1"].api.verify(tok, service="sshd").error == "token_revoked"

        # Links cut: strict web1 refuses after MaxStaleness, best_effort web2 accepts.
        laptop.login()
        t1 = laptop.tokenctl("token", "--host", "web1").strip()
        t2 = laptop.tokenctl("token", "--host", "web2").strip()
        assert laptop.ssh(web1, token=t1)
        fleet.issuer_link(False)
        wait_until(lambda: verifiers["web1"].api.verify(t1, service="sshd").status == 503,
                   "strict web1 should go stale")
        assert not laptop.ssh(web1, token=t1)
        assert "HTTP 503 unavailable" in verifiers["web1"].log()  # pam_jwt: PAM_AUTHINFO_UNAVAIL
        assert laptop.ssh(web2, token=t2)  # best_effort: accepted until the token expires
        fleet.issuer_link(True)
        wait_until(lambda: verifiers["web1"].api.verify(t1, service="sshd").status == 200, "web1 should recover")
        assert laptop.ssh(web1, token=t1)
        assert laptop.ssh(web2, token=t2)
    finally:
        for s in sshds:
            s.close()
        login_svc.close()
