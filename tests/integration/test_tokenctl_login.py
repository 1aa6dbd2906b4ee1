# SPDX-License-Identifier: MIT
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


def on_pty(argv, env, prompt, typed):
    """Run argv with a pty as stdin and stderr; when prompt shows up, type
    typed + newline. Returns (exit status, stdout, everything the terminal
    showed), read until the pty closes (every holder of the slave side has
    exited), so that an echo of what was typed is in it."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, env=env, stdin=slave, stdout=subprocess.PIPE, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    typed_yet = False
    deadline = time.monotonic() + 60  # a guard against a hang, not a measurement
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if not r:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the slave side is closed everywhere
                break
            if not chunk:
                break
            seen += chunk
            if not typed_yet and prompt in seen:
                os.write(master, typed + b"\n")
                typed_yet = True
        else:
            p.kill()
            raise AssertionError("the pty never closed: %r" % seen)
        out, _ = p.communicate(timeout=60)
    finally:
        os.close(master)
    assert typed_yet, "no prompt %r: %r" % (prompt, seen)
    return p.returncode, out.decode(), seen


def test_pty_reader_sees_an_echo():
    """Control for the test below: with echo on (sh's read on the same pty
    set-up), the typed text does show up, so its absence there means something."""
    typed = secrets.token_urlsafe(12).encode()
    rc, out, seen = on_pty(["/bin/sh", "-c", "printf 'Say: ' >&2; read -r x; echo \"got $x\""], os.environ,
                           b"Say: ", typed)
    assert rc == 0 and out == "got %s\n" % typed.decode()
    assert typed in seen, seen


def test_login_password_from_terminal_without_echo(base, daemon, account):
    c = Client(base, daemon.socket)
    rc, out, seen = on_pty([TOKENCTL, "login", "--user", account[0]], c.env(),
                           b"Password for %s: " % account[0].encode(), PASSWORD.encode())
    assert rc == 0, seen
    assert PASSWORD.encode() not in seen, seen                   # not echoed
    assert seen.endswith(b"Password for %s: \r\n" % account[0].encode()), seen  # ECHONL: just the newline
    assert "Logged in as %s" % account[0] in out
