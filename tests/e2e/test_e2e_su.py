# SPDX-License-Identifier: MIT
"""pam_jwt inside the real su (issue 4): an unprivileged throwaway user runs
`su TARGET -c 'id -un'` on a pseudo-terminal and answers the prompt with a
login-audience token of TARGET; an sshd-only token is refused.
/etc/pam.d/su is replaced for the test under a lock and put back like
/etc/pam.d/sudo in test_e2e_sudo.py. Root only."""

import os
import pty
import select
import time

from e2e import (ReplacedEtcFile, daemon, e2e_user, etc_files, issue, jwt_stack, need, system_user,  # noqa: F401
                 tokend_factory, wait_audit)

SU = "/usr/bin/su"


def su_as(caller, target, token, timeout=30):
    """(exit status, terminal output) of `su target -c 'id -un'` run by caller,
    typing token at the first prompt."""
    pid, fd = pty.fork()
    if pid == 0:  # child: no return
        try:
            os.setgroups([])
            os.setgid(caller.pw.pw_gid)
            os.setuid(caller.pw.pw_uid)
            os.execve(SU, ["su", target, "-c", "id -un"], {"PATH": "/usr/bin:/bin", "LANG": "C", "TERM": "dumb"})
        finally:
            os._exit(127)
    out, typed = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not typed and b" (tokend): " in out:
                os.write(fd, token.encode() + b"\n")
                typed = True
            if not select.select([fd], [], [], 0.5)[0]:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert typed, "su never showed pam_jwt's prompt: %r" % text
    return os.waitstatus_to_exitcode(status), text


def test_su_login_audience(e2e_user, daemon, etc_files):
    need(SU)
    target, caller = e2e_user(), e2e_user()
    pam = ReplacedEtcFile("/etc/pam.d/su", jwt_stack(daemon.socket, "login"))
    etc_files.append(pam)

    code, out = su_as(caller, target.name, issue(daemon, target.name, ["login"])[0])
    assert code == 0, out
    assert out.splitlines()[-1].strip() == target.name, out

    code, out = su_as(caller, target.name, issue(daemon, target.name, ["sshd"])[0])
    assert code == 1, out
    assert "Authentication failure" in out and target.name not in out.splitlines()[-1], out
    wait_audit(daemon, "verify_failed", "not for service login")

    for f in reversed(etc_files):
        f.close()
    with open("/etc/pam.d/su", "rb") as f:
        assert f.read() == pam.original
