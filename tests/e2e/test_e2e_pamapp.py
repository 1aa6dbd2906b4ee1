# SPDX-License-Identifier: MIT
"""pam_jwt in a plain PAM application (tests/pam/pam-app, no pam_wrapper)
through a real /etc/pam.d service and the real tokend (issue 4): a
login-audience token passes auth, setcred, account and session and exports
TOKEND_DEVICE_ID/TOKEND_TOKEN_EXP; an sshd-only token is refused; a remote
host over its failure budget fails closed while another host logs in. The same
runs under valgrind memcheck (tests/pam/test_pam_jwt_valgrind.py uses the
fake daemon), through pam-app and pamtester. Root only."""

import shutil

import pytest

from e2e import (PAM_APP, EtcFile, daemon, e2e_user, etc_files, issue, jwt_parts, jwt_stack, need,  # noqa: F401
                 run, system_user, tokend_factory, wait_audit)

OPS = ["auth", "setcred", "acct", "open", "close"]
VALGRIND = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
            "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect"]


def pam_app(service, user, token, ops=OPS, prefix=(), rhost=None):
    """{op: PAM code}, {PAM env}, the CompletedProcess."""
    p = run(list(prefix) + [PAM_APP, "--answer", token] + (["--rhost", rhost] if rhost else []) +
            [service, user] + ops, timeout=120)
    assert p.stdout.startswith("READY\n") and p.returncode in (0, 1), p
    codes, env = {}, {}
    for line in p.stdout.splitlines()[1:]:
        word, _, rest = line.partition(" ")
        if word in ops:
            codes[word] = rest
        elif word == "ENV":
            k, _, v = rest.partition("=")
            env[k] = v
    return codes, env, p


@pytest.fixture
def service(daemon, etc_files):
    need(PAM_APP)
    f = EtcFile("/etc/pam.d", jwt_stack(daemon.socket, "login"), prefix="tde2e-app-")
    etc_files.append(f)
    return f.name


def test_pam_app_login_audience(e2e_user, daemon, service):
    user = e2e_user()
    tok, dev = issue(daemon, user.name, ["login"])
    codes, env, p = pam_app(service, user.name, tok)
    assert codes == {op: "PAM_SUCCESS" for op in OPS}, p
    assert env.get("TOKEND_DEVICE_ID") == dev, p
    assert env.get("TOKEND_TOKEN_EXP") == str(jwt_parts(tok)[1]["exp"]), p

    codes, env, p = pam_app(service, user.name, issue(daemon, user.name, ["sshd"])[0], ops=["auth"])
    assert codes == {"auth": "PAM_AUTH_ERR"}, p
    assert any(ln.startswith("FAIL_DELAY ") and ln.endswith(" PAM_AUTH_ERR") for ln in p.stdout.splitlines()), p
    wait_audit(daemon, "verify_failed", "not for service login")


def test_a_throttled_remote_host_fails_closed_through_pam(e2e_user, daemon, service):
    # root's failed verifications count per PAM_RHOST (20 x MaxFailures=5 per
    # window): once a host is over, pam_jwt gets 429 and fails (PAM_MAXTRIES),
    # even with a good token; a user on another host still logs in
    user = e2e_user()
    good, _ = issue(daemon, user.name, ["login"])
    bad, _ = issue(daemon, user.name, ["sshd"])  # not for service login: refused
    codes, _, p = pam_app(service, user.name, bad, ops=["auth"], rhost="203.0.113.7")
    assert codes == {"auth": "PAM_AUTH_ERR"}, p
    for i in range(99):  # the rest of the flood as sshd sends it, without the process start-ups
        r = daemon.api.post("/api/auth/verify", dict(token=bad, user=user.name, service="login",
                                                     rhost="203.0.113.7", tty="ssh"))
        assert r.status == 401, (i, r)
    codes, _, p = pam_app(service, user.name, good, ops=["auth"], rhost="203.0.113.7")
    assert codes == {"auth": "PAM_MAXTRIES"}, p
    codes, _, p = pam_app(service, user.name, good, rhost="198.51.100.9")  # control: another host
    assert codes == {op: "PAM_SUCCESS" for op in OPS}, p
    codes, _, p = pam_app(service, user.name, good)  # control: local, no rhost
    assert codes == {op: "PAM_SUCCESS" for op in OPS}, p
    rows = wait_audit(daemon, "verify_failed", "rhost=203.0.113.7 ")
    assert sum(a["count"] for a in rows) == 100, rows
    assert wait_audit(daemon, "verify_throttled", "203.0.113.7")


def test_memcheck_real_tokend(e2e_user, daemon, service):
    if not shutil.which("valgrind"):
        pytest.skip("valgrind not installed")
    user = e2e_user()
    codes, _, p = pam_app(service, user.name, issue(daemon, user.name, ["login"])[0], prefix=VALGRIND)
    assert p.returncode != 99 and "==" not in p.stderr, p.stderr  # 99: valgrind found errors
    assert codes == {op: "PAM_SUCCESS" for op in OPS}, p
    codes, _, p = pam_app(service, user.name, issue(daemon, user.name, ["sshd"])[0], ops=["auth"], prefix=VALGRIND)
    assert p.returncode != 99 and "==" not in p.stderr, p.stderr
    assert codes == {"auth": "PAM_AUTH_ERR"}, p

    if not shutil.which("pamtester"):
        pytest.skip("pamtester not installed")
    p = run(["timeout", "120"] + VALGRIND + [shutil.which("pamtester"), "-v", service, user.name, "authenticate",
                                            "acct_mgmt", "open_session", "close_session"],
            input=issue(daemon, user.name, ["login"])[0] + "\n", timeout=130)
    assert p.returncode == 0 and "==" not in p.stderr, p
    assert "successfully authenticated" in p.stdout + p.stderr, p
