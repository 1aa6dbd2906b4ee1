# SPDX-License-Identifier: MIT
"""Secrets are wiped after use: after logins (right and wrong password),
peer issue, refresh with rotation, verify and logout over the socket, none
of the passwords, refresh tokens or access tokens that passed through
tokend is left anywhere in its writable memory (heap, thread arenas,
stacks). Control: the device ids, which tokend keeps on purpose, are found
by the same scan, so the scan does see the heap."""

import json
import os
import re
import secrets
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import (VALGRIND_DIR, PamService, Tokend, assert_wiped, find_binary,  # noqa: E402,F401
                       system_user, tokend_factory)

UNIX_STACK = "auth required pam_unix.so nodelay\naccount required pam_unix.so\n"


def ok(r):
    assert r.status == 200, r
    return r.json


def test_no_password_or_token_left_in_tokend_memory(system_user, tokend_factory):  # noqa: F811
    if VALGRIND_DIR:
        pytest.skip("under valgrind the process scanned would be valgrind's, not tokend's")
    config = ""
    user = password = None
    if os.geteuid() == 0:  # a real pam_unix login that succeeds, too
        password = "Pw-" + secrets.token_urlsafe(24)
        user = system_user("tdsec_", password).name
        svc = PamService(UNIX_STACK)
        config = "[Login]\nPAMService=%s\n" % svc.name
    try:
        t = tokend_factory(config)
        c = t.client()
        wrong = "Wrong-" + secrets.token_urlsafe(24)
        keep, secret = [], []  # strings tokend must keep / must not keep

        r = c.login("nosuchuser_tdsec", wrong)
        assert r.status == 400 and r.error == "invalid_credentials", r
        secret.append(wrong)
        if user:
            r = c.login(user, wrong)
            assert r.status == 400 and r.error == "invalid_credentials", r
            tok = ok(c.login(user, password))
            secret += [password, tok["access_token"], tok["refresh_token"]]
            keep.append(tok["device_id"])

        tok = ok(c.issue_token(device_name="secrets test"))
        keep.append(tok["device_id"])
        new = ok(c.refresh(tok["refresh_token"], tok["device_id"]))
        assert c.verify(new["access_token"]).status == 200
        assert c.verify(tok["access_token"], service="no-such-audience").status == 401
        secret += [tok["access_token"], tok["refresh_token"], new["access_token"], new["refresh_token"]]
        other = ok(c.issue_token(device_name="logged out"))
        assert c.logout(other["access_token"]).status in (200, 204)
        secret += [other["access_token"], other["refresh_token"]]
        keep.append(other["device_id"])

        assert_wiped(t.proc.pid, keep, secret)
        assert t.running()
    finally:
        if user:
            svc.close()


# ---- the key passphrase, core dumps, locked key memory -----------------------

TOKENCTL = find_binary("tokenctl")


def test_passphrase_leaves_the_environment():
    """TOKEND_PASSPHRASE is gone from /proc/PID/environ of a running tokend
    (the bytes of the initial environment block are overwritten, not only
    unset), and the encrypted key it opens still loads, also on SIGHUP."""
    if VALGRIND_DIR:
        pytest.skip("under valgrind /proc/PID/environ is valgrind's own")
    pw = "Pass-" + secrets.token_urlsafe(24)
    mark = "mark-" + secrets.token_hex(8)
    d = Tokend(env={"TOKEND_PASSPHRASE": pw, "TD_MARK": mark})
    try:
        os.makedirs(d.keys_dir, mode=0o700)
        p = subprocess.run([TOKENCTL, "--json", "keys", "generate", "--alg", "ES256", "--dir", d.keys_dir],
                           env=dict(os.environ, TOKEND_PASSPHRASE=pw), capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        kid = json.loads(p.stdout)["kid"]
        with open(os.path.join(d.keys_dir, os.listdir(d.keys_dir)[0])) as f:
            assert "ENCRYPTED PRIVATE KEY" in f.read()
        d.start()
        assert [k["kid"] for k in ok(d.api.jwks())["keys"]] == [kid]            # control: it was decrypted
        with open("/proc/%d/environ" % d.proc.pid, "rb") as f:
            env = f.read()
        assert ("TD_MARK=" + mark).encode() in env                             # control: the read works
        assert pw.encode() not in env and pw[-12:].encode() not in env
        assert "reloaded: 1 key(s)" in d.reload()                              # kept (locked) for reloads
        at = ok(d.api.issue_token())["access_token"]
        assert ok(d.api.verify(at))
        # the secure heap holds the private key's numbers
        m = re.search(r"OpenSSL secure heap: (\d+) bytes of (\d+) KiB in use by the keys", d.log())
        assert m and int(m.group(1)) > 0 and m.group(2) == "1024", d.log()
    finally:
        d.close()


def test_tokend_is_not_dumpable(system_user, tokend_factory):  # noqa: F811
    """prctl(PR_SET_DUMPABLE, 0): no core file, and tokend's own user cannot
    read its /proc/PID/environ or mem (the kernel gives those files to root).
    Control: another process of the same user stays readable by it."""
    if VALGRIND_DIR:
        pytest.skip("the process would be valgrind's")
    u = system_user("tddump_")
    t = tokend_factory(user=u.name)
    as_user = ["setpriv", "--reuid=%d" % u.uid, "--regid=%d" % u.gid, "--clear-groups"]
    other = subprocess.Popen(as_user + ["sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        while open("/proc/%d/comm" % other.pid).read() != "sleep\n":            # setpriv has exec'd it
            assert time.monotonic() < deadline
            time.sleep(0.02)
        for pid, dumpable in ((other.pid, True), (t.proc.pid, False)):
            for name in ("environ", "mem"):
                st = os.stat("/proc/%d/%s" % (pid, name))
                assert st.st_uid == (u.uid if dumpable else 0), (pid, name, st.st_uid)
            p = subprocess.run(as_user + ["head", "-c", "1", "/proc/%d/environ" % pid], capture_output=True)
            assert (p.returncode == 0) == dumpable, (pid, p)
            if not dumpable:
                assert b"Permission denied" in p.stderr, p
        assert ok(t.api.issue_token())                                         # it serves as before
    finally:
        other.kill()
        other.wait()
