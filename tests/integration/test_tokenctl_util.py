# SPDX-License-Identifier: MIT
"""Helpers of the tokenctl integration tests (no tests in here): a tokenctl
runner with its own $XDG_STATE_HOME, on top of tdharness (the real tokend)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tdharness import NO_STEP_UP, TOP_BUILDDIR, PamService, SystemUser, Tokend, find_binary, jwt_parts  # noqa: E402,F401

TOKENCTL = find_binary("tokenctl") or os.path.join(TOP_BUILDDIR, "tokenctl")
ASKPASS = os.path.join(os.path.dirname(TOKENCTL), "tokenctl-askpass")


def have_binaries():
    return bool(find_binary("tokend")) and os.access(TOKENCTL, os.X_OK)


def start_tokend(config=""):
    """A started tdharness.Tokend; call close() when done."""
    d = Tokend(config)
    try:
        return d.start()
    except BaseException:
        d.close()
        raise


def audit_count(d, event):
    return len(d.audit(event))


class Client:
    """Runs tokenctl with its own state dir against a tokend socket."""

    def __init__(self, base, sock, user=None, name=None):
        self.home = os.path.join(base, "home-%s" % (name or user or "root"))
        self.state_home = os.path.join(self.home, ".local", "state")
        os.makedirs(self.home, exist_ok=True)
        self.state = os.path.join(self.state_home, "tokend")
        self.sock = sock
        self.user = user
        if user:
            import pwd
            pw = pwd.getpwnam(user)
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
            os.chown(self.home, self.uid, self.gid)
            os.chmod(os.path.dirname(self.home), 0o755)
        else:
            self.uid = self.gid = None

    def env(self, extra=None):
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home,
             "XDG_STATE_HOME": self.state_home, "TOKEND_SOCKET": self.sock, "LANG": "C", "TZ": "UTC"}
        e.update(extra or {})
        return e

    def _preexec(self):
        if self.uid is not None:
            os.setgroups([])
            os.setgid(self.gid)
            os.setuid(self.uid)

    def popen(self, *args, env=None, prog=TOKENCTL, **kw):
        return subprocess.Popen([prog] + list(args), env=self.env(env), preexec_fn=self._preexec,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

    def run(self, *args, input=None, env=None, prog=TOKENCTL, timeout=60):
        p = subprocess.run([prog] + list(args), env=self.env(env), preexec_fn=self._preexec, input=input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        return p

    def ok(self, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode == 0, "tokenctl %s: rc=%d\nstdout: %s\nstderr: %s" % (
            " ".join(args), p.returncode, p.stdout, p.stderr)
        return p

    def json(self, *args, **kw):
        return json.loads(self.ok("--json", *args, **kw).stdout)

    def path(self, name):
        return os.path.join(self.state, name)

    def credentials(self):
        with open(self.path("credentials")) as f:
            return json.load(f)


def claims(token):
    """The claims of a JWS (not verified: the tests verify separately)."""
    return jwt_parts(token)[1]


def header(token):
    return jwt_parts(token)[0]


def tmpdir():
    # sun_path holds 108 bytes: pytest's tmp_path can be longer than that
    d = tempfile.mkdtemp(prefix="tokenctl-", dir="/tmp")
    os.chmod(d, 0o755)
    return d


def rmtree(d):
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def base():
    """A fresh directory under /tmp (short enough for a socket path)."""
    d = tmpdir()
    yield d
    rmtree(d)


@pytest.fixture
def daemon():
    """A started tokend with the default configuration, closed afterwards."""
    t = start_tokend()
    yield t
    t.close()
