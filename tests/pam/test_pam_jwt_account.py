# SPDX-License-Identifier: MIT
"""pam_jwt after authentication: the account phase re-asks tokend (revoked
in between → PAM_PERM_DENIED, expired → PAM_ACCT_EXPIRED), the session
exports TOKEND_DEVICE_ID / TOKEND_TOKEN_EXP, and a handle that pam_jwt did
not authenticate is none of its business (PAM_IGNORE)."""

import time

import pytest

import pamtest
from faketokend import answer, hang
from pamtest import run_app

ALL = ["auth", "acct", "open", "close"]


def opts(verifier, extra=""):
    return ("socket=%s %s" % (verifier.path, extra)).strip()


def test_full_transaction(services, tokend):
    svc = services.jwt("sshd", opts(tokend))
    token = tokend.issue("alice", device="dev_full0001")
    r = run_app(services, svc, "alice", ALL, answers=[token])
    assert r.codes == [(op, "PAM_SUCCESS") for op in ALL], r
    if tokend.scriptable:
        claims = tokend.claims(token)
        assert r.env["TOKEND_DEVICE_ID"] == "dev_full0001"
        assert r.env["TOKEND_TOKEN_EXP"] == str(claims["exp"])
        # the account phase asked again, with the same token, user and service
        assert [q["json"] for q in tokend.requests] == [tokend.requests[0]["json"]] * 2
    else:
        assert r.env["TOKEND_DEVICE_ID"].startswith("dev_")
        assert int(r.env["TOKEND_TOKEN_EXP"]) > time.time()


def test_revoked_between_auth_and_account(services, fake):
    svc = services.jwt("sshd", opts(fake))
    token = fake.issue("alice")
    fake.then(answer(200, dict(fake.claims(token), active=True)),
              answer(401, {"error": "token_revoked", "message": "device revoked"}))
    r = run_app(services, svc, "alice", ALL, answers=[token])
    assert r.code("auth") == "PAM_SUCCESS", r
    assert r.code("acct") == "PAM_PERM_DENIED", r
    assert r.code("open") == "PAM_SESSION_ERR", r
    assert "TOKEND_DEVICE_ID" not in r.env


@pytest.mark.parametrize("second, code", [
    (answer(401, {"error": "token_expired", "message": "x"}), "PAM_ACCT_EXPIRED"),
    (answer(401, {"error": "invalid_token", "message": "x"}), "PAM_PERM_DENIED"),
    (answer(500, {"error": "internal", "message": "x"}), "PAM_AUTHINFO_UNAVAIL"),
    (answer(429, {"error": "too_many_requests", "message": "x"}), "PAM_AUTHINFO_UNAVAIL"),
    (hang(), "PAM_AUTHINFO_UNAVAIL"),
], ids=["expired", "invalid", "status_500", "status_429", "no_answer"])
def test_account_recheck_verdicts(services, fake, second, code):
    svc = services.jwt("sshd", opts(fake, "timeout=1000"))
    token = fake.issue("alice")
    fake.then(answer(200, dict(fake.claims(token), active=True)), second)
    r = run_app(services, svc, "alice", ["auth", "acct"], answers=[token])
    assert r.code("auth") == "PAM_SUCCESS", r
    assert r.code("acct") == code, r


def test_expired_locally(services, fake):
    """tokend said valid, but exp has passed by the account phase: no need to ask."""
    svc = services.jwt("sshd", opts(fake))
    token = fake.issue("alice")
    fake.then(answer(200, dict(fake.claims(token), active=True, exp=int(time.time()) - 5)))
    r = run_app(services, svc, "alice", ["auth", "acct"], answers=[token])
    assert r.code("auth") == "PAM_SUCCESS", r
    assert r.code("acct") == "PAM_ACCT_EXPIRED", r
    assert len(fake.requests) == 1


def test_user_changed_after_auth(services, fake):
    svc = services.jwt("sshd", opts(fake))
    r = run_app(services, svc, "alice", ["auth", "user:bob", "acct"], answers=[fake.issue("alice")])
    assert r.code("auth") == "PAM_SUCCESS", r
    assert r.code("acct") == "PAM_PERM_DENIED", r
    assert len(fake.requests) == 1


def test_account_checked_once_per_handle(services, fake):
    svc = services.jwt("sshd", opts(fake))
    token = fake.issue("alice")
    fake.then(answer(200, dict(fake.claims(token), active=True)),
              answer(401, {"error": "token_revoked", "message": "x"}))
    r = run_app(services, svc, "alice", ["auth", "acct", "acct"], answers=[token])
    # the token was wiped after the first check; the verdict sticks
    assert [c for _, c in r.codes] == ["PAM_SUCCESS", "PAM_PERM_DENIED", "PAM_PERM_DENIED"], r
    assert len(fake.requests) == 2


def test_not_ours_is_ignored(services, fake):
    """Authenticated by another module: account and session are not ours."""
    m = pamtest.MODULE
    svc = services.write("sshd", "\n".join([
        "auth required pam_permit.so",
        "account [success=done ignore=ignore default=die] %s %s" % (m, opts(fake)),
        "account required pam_deny.so",
        "session [success=done ignore=ignore default=die] %s %s" % (m, opts(fake)),
        "session required pam_permit.so", ""]))
    r = run_app(services, svc, "alice", ["auth", "setcred", "acct", "open", "close"])
    assert r.code("auth") == "PAM_SUCCESS", r
    # ignore, not success: the pam_deny after it decides
    assert r.code("acct") != "PAM_SUCCESS", r
    assert r.code("open") == "PAM_SUCCESS", r
    assert "TOKEND_DEVICE_ID" not in r.env and "TOKEND_TOKEN_EXP" not in r.env
    assert fake.requests == []
    # control: with pam_permit after it, the same ignore lets the account pass
    svc = services.write("login", "\n".join([
        "auth required pam_permit.so",
        "account [success=done ignore=ignore default=die] %s %s" % (m, opts(fake)),
        "account required pam_permit.so", ""]))
    assert run_app(services, svc, "alice", ["auth", "acct"]).code("acct") == "PAM_SUCCESS"


def test_failed_auth_leaves_nothing(services, fake):
    svc = services.write("sshd", "\n".join([
        "auth optional %s %s" % (pamtest.MODULE, opts(fake)),
        "auth required pam_permit.so",
        "account [success=done ignore=ignore default=die] %s %s" % (pamtest.MODULE, opts(fake)),
        "account required pam_permit.so", ""]))
    r = run_app(services, svc, "alice", ["auth", "acct"], answers=["x.y.z"])
    assert r.code("auth") == "PAM_SUCCESS", r  # pam_permit carried it
    assert r.code("acct") == "PAM_SUCCESS", r
    assert len(fake.requests) == 1  # no re-check: pam_jwt holds no state
