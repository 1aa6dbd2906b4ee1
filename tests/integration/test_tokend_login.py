# SPDX-License-Identifier: MIT
"""Password login through a real PAM stack: pam_unix with a throwaway user
and a throwaway /etc/pam.d service (root only), and pam_matrix under
pam_wrapper (any uid). Right password → tokens, wrong password and unknown
user → the same 400 invalid_credentials, repeated failures → 429 with
Retry-After and recovery after [Login] FailureWindow, a broken PAM stack →
500. The limiter holds concurrent guesses to MaxFailures (each attempt is
reserved before PAM runs), and a caller's failures for other users' names
never block her own login."""

import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import (DeviceKey, PamService, jwt_parts, need_root, system_user,  # noqa: E402,F401
                       tokend_factory, transport)

UNIX_STACK = "auth required pam_unix.so\naccount required pam_unix.so\n"


def pam_wrapper_paths():
    """(libpam_wrapper.so, pam_matrix.so) from dpkg -L libpam-wrapper, or None."""
    out = subprocess.run(["dpkg", "-L", "libpam-wrapper"], capture_output=True, text=True, check=False).stdout
    files = [ln for ln in out.splitlines() if os.path.exists(ln)]
    lib = [f for f in files if f.endswith("/libpam_wrapper.so")]
    matrix = [f for f in files if f.endswith("/pam_matrix.so")]
    return (lib[0], matrix[0]) if lib and matrix else None


class Backend:
    """A PAM stack that knows one user with one password; start(extra)
    starts tokend on it."""

    def __init__(self, kind, factory, system_user):  # noqa: F811
        self.kind = kind
        self.factory = factory
        self.password = secrets.token_urlsafe(12)
        self.env = None
        self.cleanup = []
        if kind == "pam_unix":
            need_root("create a user and an /etc/pam.d service")
            self.user = system_user("tdpw_", self.password).name
            svc = PamService(UNIX_STACK)
            self.cleanup.append(svc.close)
            self.service = svc.name
            self.daemon_user = None
        else:
            paths = pam_wrapper_paths()
            if not paths:
                pytest.skip("pam_wrapper not installed (Debian: libpam-wrapper)")
            lib, matrix = paths
            # tokend runs unprivileged: as a throwaway user when we are root, else as us;
            # it logs that user in (who must exist: tokend looks the user up)
            self.daemon_user = system_user("tdmx_").name if os.geteuid() == 0 else None
            self.user = self.daemon_user or pwd.getpwuid(os.getuid()).pw_name
            d = tempfile.mkdtemp(prefix="td-pamw-")
            os.chmod(d, 0o755)
            self.cleanup.append(lambda: shutil.rmtree(d, ignore_errors=True))
            self.service = "tdmatrix"
            passdb = os.path.join(d, "passdb")
            with open(passdb, "w") as f:
                f.write("%s:%s:%s\n" % (self.user, self.password, self.service))
            with open(os.path.join(d, self.service), "w") as f:
                f.write("auth required %s passdb=%s\naccount required %s passdb=%s\n" % (matrix, passdb, matrix,
                                                                                         passdb))
            with open(os.path.join(d, "other"), "w") as f:
                f.write("auth required pam_deny.so\naccount required pam_deny.so\n")
            preload = " ".join(filter(None, [os.environ.get("TD_SANITIZER_PRELOAD"), lib]))
            self.env = {"LD_PRELOAD": preload, "PAM_WRAPPER": "1", "PAM_WRAPPER_SERVICE_DIR": d}
        self.uid = pwd.getpwnam(self.user).pw_uid

    def start(self, extra=""):
        return self.factory("[Login]\nPAMService=%s\n%s" % (self.service, extra), env=self.env,
                            user=self.daemon_user)

    def close(self):
        for fn in reversed(self.cleanup):
            fn()


@pytest.fixture(params=["pam_unix", "pam_matrix"])
def backend(request, system_user, tokend_factory):  # noqa: F811
    # system_user first: its teardown (userdel) must come after the daemons'
    b = Backend(request.param, tokend_factory, system_user)
    yield b
    b.close()


def test_right_password_gives_tokens(backend, transport):  # noqa: F811
    d = backend.start()
    c = d.client(transport)
    r = c.login(backend.user, backend.password, device_name="laptop")
    assert r.status == 200, (r, d.log())
    tok = r.json
    assert tok["user"]["name"] == backend.user and tok["user"]["uid"] == backend.uid
    assert tok["token_type"] == "Bearer" and tok["device_id"].startswith("dev_")
    claims = jwt_parts(tok["access_token"])[1]
    assert claims["sub"] == backend.user and claims["uid"] == backend.uid
    assert c.verify(tok["access_token"], user=backend.user).json["active"] is True
    assert c.refresh(tok["refresh_token"], tok["device_id"]).status == 200
    devs = c.devices(user=backend.user).json["devices"]
    assert [(x["id"], x["name"]) for x in devs] == [(tok["device_id"], "laptop")]
    (row,) = d.audit("login", device_id=tok["device_id"])
    assert row["user"] == backend.user
    assert backend.password not in d.log(), "the password was logged"
    if backend.daemon_user:  # the pam_wrapper variant really ran unprivileged
        assert os.stat("/proc/%d" % d.proc.pid).st_uid == backend.uid


def test_login_with_a_device_key(backend):
    d = backend.start()
    key = DeviceKey()
    tok = d.api.login(backend.user, backend.password, device_key=key.public).json
    assert jwt_parts(tok["access_token"])[1]["cnf"]["jkt"] == key.jkt()
    r = d.api.refresh(tok["refresh_token"], tok["device_id"])
    assert r.status == 401, r
    assert d.api.refresh(tok["refresh_token"], tok["device_id"], proof=key.proof(tok["device_id"])).status == 200


def test_wrong_password_and_unknown_user_answer_alike(backend, transport):  # noqa: F811
    d = backend.start("MaxFailures=100\n")
    c = d.client(transport)
    wrong = c.login(backend.user, backend.password + "x")
    unknown = c.login("tdnobody_" + secrets.token_hex(4), backend.password)
    for r in (wrong, unknown):
        assert r.status == 400 and r.error == "invalid_credentials", r
    assert wrong.body == unknown.body, "the answer tells whether the user exists"
    assert c.devices().json["devices"] == []
    assert len(d.audit("login_failed")) == 2
    assert c.login(backend.user, backend.password).status == 200  # control


def test_bad_login_requests(backend):
    d = backend.start()
    for body in ({"username": "../etc", "password": "x"}, {"username": backend.user, "password": ""},
                 {"username": backend.user, "password": 12345}, {"username": backend.user}):
        r = d.api.request("POST", "/api/auth/login", body)
        assert r.status == 400 and r.error == "invalid_request", (body, r)


def test_failed_logins_are_throttled_then_recover(backend):
    # FailureDelay=0: the two failures must land inside the 3 s window even
    # on a slow run (valgrind); the delay has its own test (test_tokend_timing.py)
    d = backend.start("MaxFailures=2\nFailureWindow=3s\nFailureDelay=0\n")
    for _ in range(2):
        r = d.api.login(backend.user, "wrong")
        assert r.status == 400 and r.error == "invalid_credentials", r
    r = d.api.login(backend.user, backend.password)  # even the right password
    assert r.status == 429 and r.error == "too_many_requests", r
    wait = int(r.headers["retry-after"])
    assert 1 <= wait <= 3, r
    assert d.audit("login_throttled")
    time.sleep(wait)
    deadline = time.monotonic() + 5
    while r.status == 429 and time.monotonic() < deadline:  # the window is counted in whole seconds
        time.sleep(0.25)
        r = d.api.login(backend.user, backend.password)
    assert r.status == 200, r


def test_broken_pam_stack_is_500(tokend_factory):  # noqa: F811
    broken = PamService("auth required pam_tokend_test_missing.so\naccount required pam_unix.so\n")
    try:
        d = tokend_factory("[Login]\nPAMService=%s\nMaxFailures=1\n" % broken.name)
        for _ in range(2):  # server-side failures do not count as the user's failures
            r = d.api.login("root", "whatever")
            assert r.status == 500 and r.error == "internal_error", r
            assert "server side" in r.message
        (row,) = d.audit("login_error")  # the same refusal twice: one row, counted twice
        assert row["count"] == 2 and row["user"] == "root", row
        assert not d.audit("login_throttled")
    finally:
        broken.close()


def test_concurrent_guesses_are_held_to_max_failures(backend):
    # 12 wrong passwords at once from one caller: each attempt is reserved before
    # PAM runs, so no more than MaxFailures of them reach PAM (the old
    # check-then-count let MaxFailures + workers - 1 through)
    d = backend.start("MaxFailures=3\nFailureWindow=1h\n")
    results, start = [], threading.Barrier(12)

    def guess(i):
        start.wait()
        results.append(d.api.login(backend.user, "wrong-%d" % i))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    statuses = sorted(r.status for r in results)
    assert statuses == [400] * 3 + [429] * 9, (statuses, d.log())
    assert all(r.error == "too_many_requests" for r in results if r.status == 429)
    rows = d.audit("login_failed")
    assert sum(r["count"] for r in rows) == 3, rows  # exactly 3 passwords were tried
    # the right password is refused too within the window
    r = d.api.login(backend.user, backend.password)
    assert r.status == 429, r
    # the refusals are coalesced: one row per window, counted
    assert sum(r["count"] for r in d.audit("login_throttled")) == 10


def test_other_names_do_not_lock_a_user_out_of_her_own_login(backend):
    # a uid that mistypes other users' names (even past MaxFailures, up to the
    # per-uid total of 4 x MaxFailures) still logs in as herself
    need_root("call tokend as the user herself")
    d = backend.start("MaxFailures=3\nFailureWindow=1h\nFailureDelay=0\n")
    me = d.client(user=backend.user)
    others = ["root", backend.user + "x", "tdnobody_" + secrets.token_hex(4)]
    for i in range(5):
        r = me.login(others[i % len(others)], "typo")
        assert r.status == 400 and r.error == "invalid_credentials", r
    r = me.login(backend.user, backend.password)
    assert r.status == 200, (r, d.log())
    # the per-uid total over other names (4 x 3 = 12) still stops spraying
    for i in range(7):
        r = me.login("tdspray_%d_%s" % (i, secrets.token_hex(2)), "guess")
        assert r.status == 400, (i, r)
    r = me.login("tdspray_last_" + secrets.token_hex(2), "guess")
    assert r.status == 429 and r.error == "too_many_requests", r
    # ... and still not her own login
    assert me.login(backend.user, backend.password).status == 200
    # control: her own wrong passwords do count, for her own login (MaxFailures)
    for _ in range(3):
        assert me.login(backend.user, "wrong").status == 400
    r = me.login(backend.user, backend.password)
    assert r.status == 429, r
    # her failures as herself count for her uid only: another caller (root) who
    # knows the password still gets in
    assert d.api.login(backend.user, backend.password).status == 200


def test_other_callers_failures_do_not_lock_out_the_owner(backend):
    need_root("call tokend as the user herself")
    d = backend.start("MaxFailures=3\nFailureWindow=1h\nFailureDelay=0\n")
    for _ in range(3):  # another caller (root here) guesses her password
        assert d.api.login(backend.user, "guess").status == 400
    r = d.api.login(backend.user, backend.password)
    assert r.status == 429, r  # that caller is stopped
    # she, calling as herself, is not locked out by someone else's guesses
    r = d.client(user=backend.user).login(backend.user, backend.password)
    assert r.status == 200, (r, d.log())
