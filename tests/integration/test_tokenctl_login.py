"""tokenctl login with a password, through tokend's PAM service: a throwaway
user and a throwaway PAM service (pam_unix) are created for the test and
removed afterwards. Needs root."""

import os
import pty
import secrets
import select
import stat
import subprocess
import time

import pytest

from test_tokenctl_util import (TOKENCTL, Client, PamService, SystemUser, audit_count, base, claims,  # noqa: F401
                                find_binary, have_binaries, start_tokend)

pytestmark = [
    pytest.mark.skipif(not have_binaries(), reason="tokend/tokenctl not built"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates a user and a PAM service"),
]

PASSWORD = "Tok-" + secrets.token_urlsafe(12)


@pytest.fixture(scope="module")
def account():
    """(user name, PAM service): a throwaway user with PASSWORD, pam_unix."""
    user = SystemUser("tdctl_", PASSWORD)
    try:
        svc = PamService("auth required pam_unix.so\naccount required pam_unix.so\n")
        try:
            yield user.name, svc.name
        finally:
            svc.close()
    finally:
        user.close()


@pytest.fixture
def daemon(account):
    t = start_tokend("[Login]\nPAMService=%s\n" % account[1])
    yield t
    t.close()


def test_login_with_password_on_stdin(base, daemon, account):
    user = account[0]
    c = Client(base, daemon.socket)
    p = c.ok("login", "--user", user, "--device-name", "laptop", input=PASSWORD + "\n")
    assert "Logged in as %s" % user in p.stdout
    assert PASSWORD not in p.stdout + p.stderr
    cred = c.credentials()
    assert cred["user"] == user and cred["device_name"] == "laptop"
    assert stat.S_IMODE(os.stat(c.path("credentials")).st_mode) == 0o600
    assert PASSWORD not in open(c.path("credentials")).read()
    tok = c.ok("token").stdout.strip()
    assert claims(tok)["sub"] == user
    c.ok("verify", "--user", user, tok)
    c.ok("refresh")                                              # the registered device key signs the proof
    assert audit_count(daemon, "login") == 1 and audit_count(daemon, "refresh") == 1


def test_login_wrong_password(base, daemon, account):
    c = Client(base, daemon.socket)
    p = c.run("login", "--user", account[0], input="wrong-" + PASSWORD + "\n")
    assert p.returncode == 1
    assert "invalid_credentials" in p.stderr and "check the user name and password" in p.stderr
    assert not os.path.exists(c.path("credentials"))
    assert audit_count(daemon, "login_failed") == 1
    p = c.run("login", "--user", account[0], input="")            # no password at all
    assert p.returncode == 2 and "no password" in p.stderr


def test_login_password_from_terminal_without_echo(base, daemon, account):
    c = Client(base, daemon.socket)
    master, slave = pty.openpty()
    p = subprocess.Popen([TOKENCTL, "login", "--user", account[0]], env=c.env(), stdin=slave, stdout=subprocess.PIPE,
                         stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30

    def read_until(pred):
        nonlocal seen
        while not pred() and time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
            if p.poll() is not None and not r:
                break

    read_until(lambda: b"Password for %s: " % account[0].encode() in seen)
    assert b"Password for" in seen, seen
    os.write(master, (PASSWORD + "\n").encode())
    out, _ = p.communicate(timeout=30)
    read_until(lambda: True)
    os.close(master)
    assert p.returncode == 0, seen
    assert PASSWORD.encode() not in seen                         # not echoed
    assert "Logged in as %s" % account[0] in out.decode()
