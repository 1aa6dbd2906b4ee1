# SPDX-License-Identifier: MIT
"""The reason reaches the admin: pam_jwt's syslog line carries tokend's
message (escaped), captured from a syslog socket the test owns, and the user
gets one short PAM_ERROR_MSG line (none with PAM_SILENT).

Real libpam (no pam_wrapper, which would print pam_syslog() itself): a
throwaway /etc/pam.d service and tests/pam/pam-app run in a private mount
namespace (unshare -m) whose /dev is a fresh tmpfs with the few device
nodes bound in and /dev/log a symlink to the test's AF_UNIX datagram
socket, so syslog(3) talks to the test and nothing on the host changes.
Root only (the namespace and /etc/pam.d)."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import faketokend  # noqa: E402
import pamtest  # noqa: E402
from tdharness import PamService, Tokend  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="needs root and unshare(1) for a private /dev/log")

NS_SCRIPT = r'''
set -e
mount --rbind /dev "$OLD_DEV"
mount -t tmpfs -o mode=0755 tmpfs /dev
for n in null zero full random urandom tty; do
        if [ -e "$OLD_DEV/$n" ]; then : > "/dev/$n"; mount --bind "$OLD_DEV/$n" "/dev/$n"; fi
done
ln -s "$LOG_SOCKET" /dev/log
exec "$@"
'''


class Syslog:
    """An AF_UNIX datagram socket standing in for /dev/log."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pamlog-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.path = os.path.join(self.dir, "log")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)

    def drain(self):
        out = []
        while True:
            try:
                out.append(self.sock.recv(65536))
            except BlockingIOError:
                return out

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def syslog():
    s = Syslog()
    yield s
    s.close()


def run_app(syslog, service, answer, op="auth"):
    """pam-app on the real PAM stack of service in the private namespace; returns
    (stdout, [syslog datagrams as bytes])."""
    if not os.path.exists(pamtest.PAM_APP) or not os.path.exists(pamtest.MODULE):
        pytest.skip("pam-app or pam_jwt.so not built")
    old = tempfile.mkdtemp(prefix="olddev-", dir=syslog.dir)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OLD_DEV": old, "LOG_SOCKET": syslog.path}
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", NS_SCRIPT, "sh",
                        pamtest.PAM_APP, "--answer", answer, service, "root", op],
                       env=env, capture_output=True, text=True, timeout=60)
    assert "READY" in p.stdout, p.stderr
    return p.stdout, syslog.drain()


def service_for(socket_path, audience):
    return PamService("auth required %s socket=%s audience=%s\naccount required pam_permit.so\n"
                      % (pamtest.MODULE, socket_path, audience))


def jwt_lines(datagrams):
    return [d.decode("utf-8", "replace") for d in datagrams if b"pam_jwt(" in d]


def errors(stdout):
    return [ln[6:] for ln in stdout.splitlines() if ln.startswith("ERROR ")]


@pytest.fixture
def daemon():
    t = Tokend()
    t.start()
    yield t
    t.close()


def test_refusal_logs_tokends_reason(syslog, daemon):
    svc = service_for(daemon.socket, "sudo")
    try:
        # Control: a sudo token is accepted, logged through the same socket.
        ok = daemon.api.issue_token(audience=["sudo"], device_name="ok").json["access_token"]
        out, logs = run_app(syslog, svc.name, ok)
        assert "auth PAM_SUCCESS" in out, out
        lines = jwt_lines(logs)
        assert any("auth: token of device dev_" in ln and "accepted for user root, service sudo" in ln
                   for ln in lines), logs
        assert errors(out) == []

        # A login token (aud sshd) for sudo: the line says why, in tokend's words.
        sshd = daemon.api.issue_token(audience=["sshd"], device_name="login").json["access_token"]
        out, logs = run_app(syslog, svc.name, sshd)
        assert "auth PAM_AUTH_ERR" in out, out
        lines = jwt_lines(logs)
        assert len(lines) == 1, logs
        assert ("pam_jwt(%s:auth): auth: token refused for user root, service sudo: invalid_token "
                "(the token is not for service sudo" % svc.name) in lines[0], lines
        assert sshd not in lines[0]
        # The user: one short line with what to do.
        assert errors(out) == ["Token not accepted for sudo (invalid, or not issued for it): "
                               "tokenctl token --audience sudo"]
        # PAM_SILENT: the same refusal, logged, and nothing for the user.
        out, logs = run_app(syslog, svc.name, sshd, op="auth-silent")
        assert "auth-silent PAM_AUTH_ERR" in out and errors(out) == []
        assert "token refused for user root" in jwt_lines(logs)[0]

        # A revoked device.
        r = daemon.api.issue_token(audience=["sudo"], device_name="gone").json
        assert daemon.api.delete_device(r["device_id"]).status == 204
        out, logs = run_app(syslog, svc.name, r["access_token"])
        assert "auth PAM_AUTH_ERR" in out
        assert ("token revoked for user root, service sudo: token_revoked (the token's device was revoked)"
                in jwt_lines(logs)[0]), logs
        assert errors(out) == ["Token revoked with its device: log in again with tokenctl login"]
    finally:
        svc.close()


def test_hostile_message_is_escaped(syslog):
    d = tempfile.mkdtemp(prefix="pamjwt-", dir="/tmp")
    fake = faketokend.FakeTokend(os.path.join(d, "tokend.sock")).start()
    svc = service_for(fake.path, "sshd")
    try:
        tok = fake.issue("root", uid=0)
        fake.then(faketokend.answer(401, {"error": "invalid_token",
                                          "message": "evil\x1b[2J\nFAKE: root accepted \u202e"}))
        out, logs = run_app(syslog, svc.name, tok)
        assert "auth PAM_AUTH_ERR" in out
        lines = jwt_lines(logs)
        assert len(lines) == 1, logs
        assert "\x1b" not in lines[0] and "\n" not in lines[0].rstrip("\n") and "\u202e" not in lines[0]
        assert "invalid_token (evil\\x1b[2J\\x0aFAKE: root accepted \\u{202e})" in lines[0], lines
        # Control: the next answer (the fake's registry) accepts the same token.
        out, logs = run_app(syslog, svc.name, tok)
        assert "auth PAM_SUCCESS" in out, out
    finally:
        svc.close()
        fake.stop()
        shutil.rmtree(d, ignore_errors=True)
