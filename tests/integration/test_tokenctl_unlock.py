# SPDX-License-Identifier: MIT
"""tokenctl unlock USER (like faillock --reset) against a real tokend, over
the socket and over D-Bus (private dbus-daemon):

* a token login through a real PAM stack: pam_jwt in tests/pam/pam-app under
  pam_wrapper, run as the user herself (as a screen locker is). Her failed
  logins lock her uid out, and then her correct token is refused
  (PAM_MAXTRIES) while another user still logs in. A non-admin's unlock is
  refused (403 / io.tokend.Error.Forbidden, exit 1) and changes nothing;
  root's unlock lets the same token log in; unlocking again is a clear no-op.
* password logins (pam_unix as tokend's PAMService): failures by two callers
  lock the user name; after the unlock both callers log in with the right
  password; a member of [Login] AdminGroup may unlock too.
* bad requests: no such user (exit 1, not_found), a malformed name (exit 2),
  no USER (exit 2), and the HTTP API's 400, 403 and 405.
Every unlock and refused unlock is in the audit log. Root only."""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile

import pytest

from tdharness import PamService, _run_locked, system_user  # noqa: F401 (fixture)
from test_tokenctl_bus import TRANSPORTS, Ctl
from test_tokenctl_util import base, have_binaries  # noqa: F401 (fixture)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bus"))
sys.path.insert(0, os.path.join(HERE, "..", "pam"))
import pamtest  # noqa: E402
from tdbus import bus, bus_tokend  # noqa: E402,F401 (fixtures)

pytestmark = [
    pytest.mark.skipif(not have_binaries(), reason="tokend/tokenctl not built"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: throwaway users, runs as each of them"),
]

VERIFY_BUDGET = 20  # failed verifications per uid: 20 x MaxFailures=1
SERVICE = "tdunlock"
PASSWORD = "Unl-" + secrets.token_urlsafe(12)


@pytest.fixture
def users(system_user):  # noqa: F811
    """alice (the one locked out) and bob (the control), with PASSWORD."""
    return system_user("tdula_", PASSWORD), system_user("tdulb_", PASSWORD)


@pytest.fixture
def pam_dir():
    """A pam_wrapper service directory every uid can read, with pam_jwt as
    the whole auth stack of SERVICE."""
    if not pamtest.find_pam_wrapper():
        pytest.skip("libpam_wrapper.so not found (Debian: libpam-wrapper)")
    for p in (pamtest.MODULE, pamtest.PAM_APP):
        if not os.path.exists(p):
            pytest.skip("%s not built" % p)
    d = tempfile.mkdtemp(prefix="tdunlock-pam-", dir="/tmp")
    os.chmod(d, 0o755)
    yield pamtest.ServiceDir(d)
    shutil.rmtree(d, ignore_errors=True)


def pam_login(services, user, token):
    """pam_jwt's verdict on token for user, from pam-app running as user."""
    prefix = ["setpriv", "--reuid=%d" % user.uid, "--regid=%d" % user.gid, "--clear-groups", "--"]
    return pamtest.run_app(services, SERVICE, user.name, answers=[token], prefix=prefix).code("auth")


def issue(daemon, user, audience):
    r = daemon.api.issue_token(user=user.name, audience=[audience])
    assert r.status == 200, r
    return r.json["access_token"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unlock_a_token_lockout_through_pam(base, bus_tokend, users, pam_dir, transport):  # noqa: F811
    alice, bob = users
    daemon = bus_tokend("[Login]\nMaxFailures=1\n[Token]\nAllowedAudiences=*\n")
    pam_dir.jwt(SERVICE, options="socket=%s timeout=5000" % daemon.socket, account=False, session=False)
    good, bad = issue(daemon, alice, SERVICE), issue(daemon, alice, "elsewhere")  # bad: not for SERVICE
    bob_good = issue(daemon, bob, SERVICE)
    assert pam_login(pam_dir, alice, good) == "PAM_SUCCESS"       # control: she can log in

    # her failed logins (a wrong token): the first through PAM, the rest
    # as her uid straight to tokend (the same verify, without the start-ups)
    assert pam_login(pam_dir, alice, bad) == "PAM_AUTH_ERR"
    api = daemon.api.as_user(alice.name)
    for i in range(VERIFY_BUDGET - 1):
        r = api.verify(bad, user=alice.name, service=SERVICE)
        assert r.status == 401, (i, r)
    # locked: her correct token is refused; bob still logs in
    assert pam_login(pam_dir, alice, good) == "PAM_MAXTRIES"
    assert api.verify(good, user=alice.name, service=SERVICE).status == 429
    assert pam_login(pam_dir, bob, bob_good) == "PAM_SUCCESS"

    # bob is no admin: refused, and she stays locked
    p = Ctl(base, daemon, transport, user=bob.name).run("unlock", alice.name)
    assert p.returncode == 1 and p.stdout == "", p
    assert ("HTTP 403" if transport == "socket" else "io.tokend.Error.Forbidden") in p.stderr, p.stderr
    assert "forbidden" in p.stderr and "AdminGroup" in p.stderr, p.stderr
    assert pam_login(pam_dir, alice, good) == "PAM_MAXTRIES"

    root = Ctl(base, daemon, transport)
    p = root.ok("unlock", alice.name)
    assert p.stdout == "Unlocked %s: %d failed attempts forgotten; %s may log in again now.\n" % (
        alice.name, VERIFY_BUDGET, alice.name), p.stdout
    assert pam_login(pam_dir, alice, good) == "PAM_SUCCESS"
    assert pam_login(pam_dir, bob, bob_good) == "PAM_SUCCESS"     # control: bob unaffected

    # not locked (any more): a clear no-op, exit 0
    p = root.ok("unlock", alice.name)
    assert p.stdout == "%s was not locked out and had no failed attempts: nothing to do.\n" % alice.name
    assert root.json("unlock", alice.name) == {"user": alice.name, "was_locked": False, "failures": 0}

    rows = daemon.audit("unlock")  # one row per unlock, oldest first
    assert [(r["user"], r["caller_uid"], r["detail"]) for r in rows] == [
        (alice.name, 0, "was locked, %d failures forgotten" % VERIFY_BUDGET)] + \
        [(alice.name, 0, "was not locked, 0 failures forgotten")] * 2, rows
    (denied,) = daemon.audit("unlock_denied")
    assert denied["user"] == alice.name and denied["caller_uid"] == bob.uid


@pytest.fixture
def pam_unix_service():
    svc = PamService("auth required pam_unix.so nodelay\naccount required pam_unix.so\n")
    yield svc.name
    svc.close()


@pytest.fixture
def admin_group(users):
    """A throwaway group with bob in it: tokend's [Login] AdminGroup."""
    group = "tdulg_" + secrets.token_hex(3)
    assert _run_locked(["groupadd", group]).returncode == 0
    assert _run_locked(["usermod", "-aG", group, users[1].name]).returncode == 0
    yield group
    _run_locked(["groupdel", group])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unlock_a_password_lockout(base, bus_tokend, users, pam_unix_service, admin_group, transport):  # noqa: F811
    alice, bob = users
    daemon = bus_tokend("[Login]\nPAMService=%s\nMaxFailures=2\nFailureWindow=1h\nFailureDelay=0\n"
                        "AdminGroup=%s\n" % (pam_unix_service, admin_group))
    root_api, nobody_api = daemon.api, daemon.api.as_user("nobody")
    # wrong passwords for alice from two callers: root's (uid 0, alice) pair
    # is full, and so is alice's name over all callers
    for api in (root_api, root_api, nobody_api):
        r = api.login(alice.name, PASSWORD + "x")
        assert r.status in (400, 429), r
    for api in (root_api, nobody_api):
        r = api.login(alice.name, PASSWORD)
        assert r.status == 429 and r.error == "too_many_requests", r    # the right password, refused
    assert root_api.login(bob.name, PASSWORD).status == 200             # control: another user logs in

    # bob is an admin here ([Login] AdminGroup): he may unlock
    admin = Ctl(base, daemon, transport, user=bob.name)
    out = admin.json("unlock", alice.name)
    assert out == {"user": alice.name, "was_locked": True, "failures": 2}, out
    for api in (root_api, nobody_api):
        r = api.login(alice.name, PASSWORD)
        assert r.status == 200, r
    (row,) = daemon.audit("unlock")
    assert row["caller_uid"] == bob.uid and row["detail"] == "was locked, 2 failures forgotten", row
    # failures that did not lock: forgotten, and said so
    assert root_api.login(alice.name, PASSWORD + "x").status == 400
    p = admin.ok("unlock", alice.name)
    assert p.stdout == "%s was not locked out; 1 failed attempt forgotten.\n" % alice.name, p.stdout


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unlock_bad_requests(base, bus_tokend, users, transport):  # noqa: F811
    daemon = bus_tokend()
    root = Ctl(base, daemon, transport)
    ghost = "tdulghost_" + secrets.token_hex(3)
    p = root.run("unlock", ghost)
    assert p.returncode == 1 and "no such user" in p.stderr and "not_found" in p.stderr, p.stderr
    p = root.run("unlock", "../etc")
    assert p.returncode == 2 and "valid user name" in p.stderr, p.stderr
    for args in ([], [users[0].name, users[1].name]):
        p = root.run("unlock", *args)
        assert p.returncode == 2 and "usage: tokenctl unlock USER" in p.stderr, p.stderr
    assert root.ok("unlock", users[0].name).stdout.endswith("nothing to do.\n")  # control
    p = root.ok("unlock", "--help")
    assert p.stdout.startswith("Usage: tokenctl unlock USER\n")


def test_unlock_http_api(bus_tokend, users):  # noqa: F811
    daemon = bus_tokend()
    name = users[0].name
    r = daemon.api.post("/api/unlock", dict(user=name))
    assert r.status == 200 and r.json == {"user": name, "was_locked": False, "failures": 0}, r
    assert r.headers["cache-control"] == "no-store"
    for body in ({}, {"user": 5}, {"user": ""}, {"user": "a/b"}):
        r = daemon.api.request("POST", "/api/unlock", body)
        assert r.status == 400 and r.error == "invalid_request", (body, r)
    r = daemon.api.as_user("nobody").post("/api/unlock", dict(user=name))
    assert r.status == 403 and r.error == "forbidden", r
    r = daemon.api.request("GET", "/api/unlock")
    assert r.status == 405 and r.headers["allow"] == "POST", r
