# SPDX-License-Identifier: MIT
"""tokenctl names why tokend cannot be reached over the socket: no such
file (and that the path is not the default one, and where it came from), a
regular file or a directory instead of a socket, permission denied (a 0600
root socket for an unprivileged user), nothing listening, a listener that
never answers. Each message carries the errno text; every case exits 3,
`tokenctl status` too when nobody is logged in (it used to exit 1). Each
hostile case has a control that reaches a real tokend."""

import os
import socket

import pytest

from test_tokenctl_util import Client, base, have_binaries, start_tokend  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(not have_binaries(), reason="tokend/tokenctl not built")

DEFAULT = "/run/tokend/tokend.sock"


def unreachable(c, *args, **kw):
    """Run status (not logged in) and devices; both must exit 3 with the same
    cause; return status's stderr line about it."""
    for cmd in (["status"], ["devices"]):
        p = c.run(*(list(args) + cmd), **kw)
        assert p.returncode == 3, (cmd, p.returncode, p.stderr)
        lines = [ln for ln in p.stderr.splitlines() if "cannot reach tokend" in ln]
        assert len(lines) == 1, p.stderr
        if cmd == ["status"]:
            first = lines[0]
            assert "NOT reachable" in p.stdout
        else:
            assert lines[0].split(": ", 1)[1] == first.split(": ", 1)[1]
    return first


def test_no_such_file_names_path_and_origin(base):
    missing = os.path.join(base, "nowhere.sock")
    c = Client(base, missing)
    msg = unreachable(c)
    assert "no socket at %s (No such file or directory)" % missing in msg
    assert "this path comes from $TOKEND_SOCKET, the default is %s" % DEFAULT in msg
    msg = unreachable(c, "--socket", missing)
    assert "this path comes from --socket, the default is %s" % DEFAULT in msg
    # A missing directory on the way is the same cause.
    msg = unreachable(c, "--socket", "/etc/passwd/x.sock")
    assert "no socket at /etc/passwd/x.sock (Not a directory)" in msg


@pytest.mark.skipif(os.path.exists(DEFAULT), reason="a tokend socket exists at the default path")
def test_no_such_file_at_the_default_path(base):
    msg = unreachable(Client(base, DEFAULT))
    assert msg.endswith("no socket at %s (No such file or directory): tokend is not running: "
                        "systemctl start tokend.socket" % DEFAULT), msg


def test_not_a_socket(base):
    regular = os.path.join(base, "file")
    with open(regular, "w") as f:
        f.write("not a socket\n")
    msg = unreachable(Client(base, regular))
    assert "%s is a regular file, not a socket (Socket operation on non-socket)" % regular in msg
    msg = unreachable(Client(base, "/etc/passwd"), "--socket", "/etc/passwd")
    assert "/etc/passwd is a regular file, not a socket" in msg
    msg = unreachable(Client(base, base))
    assert "%s is a directory, not a socket (Socket operation on non-socket)" % base in msg


def test_nothing_listening(base):
    path = os.path.join(base, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # the file stays, nobody listens
    msg = unreachable(Client(base, path))
    assert "nothing is listening on %s (Connection refused): tokend is not running" % path in msg


def test_permission_denied_for_unprivileged_user(base):
    if os.geteuid() != 0:
        pytest.skip("needs root to run tokenctl as nobody")
    d = start_tokend("[Socket]\nMode=0600\n")
    try:
        os.chmod(os.path.dirname(d.socket), 0o755)
        st = os.stat(d.socket)
        assert st.st_uid == 0 and st.st_mode & 0o777 == 0o600
        c = Client(base, d.socket, user="nobody")
        msg = unreachable(c)
        assert "permission denied on %s (Permission denied): you (uid %d) may not use the socket" % (
            d.socket, c.uid) in msg
        # Control: the same user on the same socket once it is 0666.
        os.chmod(d.socket, 0o666)
        p = c.run("status")
        assert p.returncode == 1, p.stderr                    # reachable, not logged in
        assert "reachable on %s" % d.socket in p.stdout and "cannot reach" not in p.stderr
        # Root reaches the 0600 socket: the control for the mode itself.
        os.chmod(d.socket, 0o600)
        p = Client(base, d.socket).run("status")
        assert p.returncode == 1 and "cannot reach" not in p.stderr, p.stderr
    finally:
        d.close()


def test_listener_that_never_answers(base):
    path = os.path.join(base, "mute.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)  # accepts into the backlog, never reads or answers
    try:
        p = Client(base, path).run("status", timeout=120)
    finally:
        s.close()
    assert p.returncode == 3, p.stderr
    assert ("cannot reach tokend: %s accepted the connection but nothing answered within 30 s "
            "(Connection timed out)" % path) in p.stderr, p.stderr


def test_control_real_tokend(base):
    d = start_tokend()
    try:
        c = Client(base, d.socket)
        p = c.run("status")
        assert p.returncode == 1 and "reachable on %s" % d.socket in p.stdout, p.stderr  # not logged in
        c.ok("login", "--peer")
        assert c.run("status").returncode == 0
        d.stop()
        # The same client once tokend is gone: logged in, unreachable → 3.
        p = c.run("status")
        assert p.returncode == 3 and "no socket at %s" % d.socket in p.stderr, p.stderr
    finally:
        d.close()
