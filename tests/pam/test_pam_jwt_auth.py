# SPDX-License-Identifier: MIT
"""pam_jwt authentication through real PAM stacks (pam_wrapper): verdicts,
what the module sends, input limits, options. The "valid" cases use the
`tokend` fixture and so run against the fake and a real tokend (conftest.py);
scripted answers use `fake`."""

import os

import pytest

import faketokend
import pamtest
from pamtest import run_app, run_pamtester



def delayed(r):
    """The module asked for its 2 s fail delay (libpam randomizes it)."""
    return len(r.fail_delays) == 1 and 1000000 <= r.fail_delays[0] <= 3000000


def opts(verifier, extra=""):
    return ("socket=%s %s" % (verifier.path, extra)).strip()


def test_valid_token_accepted(services, tokend):
    svc = services.jwt("sshd", opts(tokend))
    token = tokend.issue("alice")
    r = run_app(services, svc, "alice", ["auth", "setcred"], answers=[token])
    assert r.code("auth") == "PAM_SUCCESS", r
    assert r.code("setcred") == "PAM_SUCCESS", r
    assert r.prompts == [("echo_off", "JWT token for alice (tokend): ")]
    assert r.fail_delays == []
    assert not any(token in line for line in r.logs), "token logged"
    assert token not in r.stderr


def test_request_shape(services, fake):
    svc = services.jwt("sshd", opts(fake))
    token = fake.issue("alice")
    r = run_app(services, svc, "alice", answers=[token], rhost="203.0.113.7", tty="ssh")
    assert r.code() == "PAM_SUCCESS", r
    assert len(fake.requests) == 1
    req = fake.requests[0]
    assert req["path"] == "/api/auth/verify"
    headers = {k.lower(): v for k, v in req["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert headers["connection"].lower() == "close"
    assert req["json"] == {"token": token, "user": "alice", "service": "sshd",
                           "rhost": "203.0.113.7", "tty": "ssh"}


def test_request_without_rhost_tty(services, fake):
    svc = services.jwt("sshd", opts(fake))
    r = run_app(services, svc, "alice", answers=[fake.issue("alice")])
    assert r.code() == "PAM_SUCCESS", r
    assert set(fake.requests[0]["json"]) == {"token", "user", "service"}


@pytest.mark.parametrize("case", ["unknown", "expired", "revoked", "other_user", "other_service"])
def test_refused_tokens(services, tokend, case):
    svc = services.jwt("sshd", opts(tokend))
    control = tokend.issue("alice")
    token = {
        "unknown": faketokend.fake_jws({"sub": "alice"}),
        "expired": tokend.issue("alice", ttl=-60),
        "revoked": tokend.issue("alice", device="dev_revoked"),
        "other_user": tokend.issue("bob"),
        "other_service": tokend.issue("alice", aud=("sudo",)),
    }[case]
    if case == "revoked":
        tokend.revoke(token)
    r = run_app(services, svc, "alice", answers=[token])
    assert r.code() == "PAM_AUTH_ERR", r
    assert delayed(r), r
    # control: a good token on the same stack
    assert run_app(services, svc, "alice", answers=[control]).code() == "PAM_SUCCESS"


@pytest.mark.parametrize("error", ["invalid_token", "token_expired", "token_revoked", "invalid_request"])
def test_daemon_refusals(services, fake, error):
    svc = services.jwt("sshd", opts(fake))
    fake.then(faketokend.answer(400 if error == "invalid_request" else 401,
                                {"error": error, "message": "no"}))
    r = run_app(services, svc, "alice", answers=[fake.issue("alice")])
    assert r.code() == "PAM_AUTH_ERR", r
    assert delayed(r), r
    assert any(error in line for line in r.logs), r.logs


def test_subject_mismatch_in_200(services, fake):
    """tokend says valid, but for someone else: the module must still refuse."""
    svc = services.jwt("sshd", opts(fake))
    token = fake.issue("alice")
    for sub in ("mallory", "Alice", "alice "):
        fake.then(faketokend.answer(200, dict(fake.claims(token), active=True, sub=sub)))
        r = run_app(services, svc, "alice", answers=[token])
        assert r.code() == "PAM_AUTH_ERR", (sub, r)
    assert run_app(services, svc, "alice", answers=[token]).code() == "PAM_SUCCESS"


def test_rate_limited(services, fake):
    svc = services.jwt("sshd", opts(fake))
    fake.then(faketokend.answer(429, {"error": "too_many_requests", "message": "slow down"},
                                headers=[("Retry-After", "5")]))
    r = run_app(services, svc, "alice", answers=[fake.issue("alice")])
    assert r.code() == "PAM_MAXTRIES", r


def test_empty_answer(services, fake):
    svc = services.jwt("sshd", opts(fake))
    r = run_app(services, svc, "alice", answers=[""])
    assert r.code() == "PAM_AUTH_ERR", r
    assert delayed(r), r
    assert fake.requests == []


def test_answer_size_cap(services, fake, tmp_path):
    svc = services.jwt("sshd", opts(fake))
    # 10 KiB: refused before anything is sent
    big = tmp_path / "big"
    big.write_text("a" * 5000 + "." + "b" * 5000 + "." + "c" * 240)
    r = run_app(services, svc, "alice", answer_file=big)
    assert r.code() == "PAM_AUTH_ERR", r
    assert fake.requests == []
    # control: exactly 8 KiB is sent (and refused by the daemon: unknown token)
    edge = tmp_path / "edge"
    edge.write_text("a" * 4000 + "." + "b" * 4000 + "." + "c" * 190)
    assert len(edge.read_text()) == 8192
    r = run_app(services, svc, "alice", answer_file=edge)
    assert r.code() == "PAM_AUTH_ERR", r
    assert len(fake.requests) == 1 and len(fake.requests[0]["json"]["token"]) == 8192


def test_only_tokens_passes_passwords_on(services, fake):
    getitems = pamtest.wrapper_module("pam_get_items.so")
    if not getitems:
        pytest.skip("pam_wrapper's pam_get_items.so not found")
    svc = services.write("login", "\n".join([
        "auth [success=done ignore=ignore default=die] %s %s" % (pamtest.MODULE, opts(fake, "only_tokens")),
        "auth required %s" % getitems,
        "auth required pam_permit.so", ""]))
    r = run_app(services, svc, "alice", answers=["hunter2"])
    assert r.code() == "PAM_SUCCESS", r
    assert r.env.get("PAM_AUTHTOK") == "hunter2", r
    assert fake.requests == []
    # control: a token is still checked by us, and not handed on
    r = run_app(services, svc, "alice", answers=[faketokend.fake_jws({"sub": "alice"})])
    assert r.code() == "PAM_AUTH_ERR", r
    assert len(fake.requests) == 1


def test_only_tokens_ignore_is_not_success(services, fake):
    svc = services.write("login", "\n".join([
        "auth [success=done ignore=ignore default=die] %s %s" % (pamtest.MODULE, opts(fake, "only_tokens")),
        "auth required pam_deny.so", ""]))
    assert run_app(services, svc, "alice", answers=["hunter2"]).code() == "PAM_AUTH_ERR"
    assert run_app(services, svc, "alice", answers=[fake.issue("alice", aud=("login",))]).code() == "PAM_SUCCESS"


def test_valid_token_not_exported_as_authtok(services, fake):
    getitems = pamtest.wrapper_module("pam_get_items.so")
    if not getitems:
        pytest.skip("pam_wrapper's pam_get_items.so not found")
    svc = services.jwt("sshd", opts(fake), extra_auth="auth required %s" % getitems,
                       account=False, session=False)
    r = run_app(services, svc, "alice", answers=[fake.issue("alice")])
    assert r.code() == "PAM_SUCCESS", r
    assert "PAM_AUTHTOK" not in r.env


def test_without_only_tokens_everything_is_asked(services, fake):
    svc = services.jwt("sshd", opts(fake))
    r = run_app(services, svc, "alice", answers=["hunter2"])
    assert r.code() == "PAM_AUTH_ERR", r
    assert [q["json"]["token"] for q in fake.requests] == ["hunter2"]


def test_audience_option(services, tokend):
    svc = services.jwt("sudo-like", opts(tokend, "audience=sudo"))
    login_token = tokend.issue("alice")  # default audience: sshd login su
    sudo_token = tokend.issue("alice", aud=("sudo",))
    assert run_app(services, svc, "alice", answers=[login_token]).code() == "PAM_AUTH_ERR"
    assert run_app(services, svc, "alice", answers=[sudo_token]).code() == "PAM_SUCCESS"
    if tokend.scriptable:
        assert {q["json"]["service"] for q in tokend.requests} == {"sudo"}


def test_default_audience_is_service(services, tokend):
    login = services.jwt("login", opts(tokend))
    sudo = services.jwt("sudo", opts(tokend))
    token = tokend.issue("alice")
    assert run_app(services, login, "alice", answers=[token]).code() == "PAM_SUCCESS"
    assert run_app(services, sudo, "alice", answers=[token]).code() == "PAM_AUTH_ERR"
    if tokend.scriptable:
        assert [q["json"]["service"] for q in tokend.requests] == ["login", "sudo"]


def _first_pass_stack(services, fake, option):
    setitems = pamtest.wrapper_module("pam_set_items.so")
    if not setitems:
        pytest.skip("pam_wrapper's pam_set_items.so not found")
    return services.jwt("sshd", opts(fake, option), before_auth="auth required %s" % setitems,
                        account=False, session=False)


@pytest.mark.parametrize("option", ["use_first_pass", "try_first_pass"])
def test_first_pass_uses_authtok(services, fake, option):
    svc = _first_pass_stack(services, fake, option)
    token = fake.issue("alice")
    r = run_app(services, svc, "alice", env={"PAM_AUTHTOK": token})
    assert r.code() == "PAM_SUCCESS", r
    assert r.prompts == []
    r = run_app(services, svc, "alice", env={"PAM_AUTHTOK": "wrong"})
    assert r.code() == "PAM_AUTH_ERR", r
    assert r.prompts == []


def test_use_first_pass_without_authtok(services, fake):
    svc = _first_pass_stack(services, fake, "use_first_pass")
    r = run_app(services, svc, "alice", answers=[fake.issue("alice")])
    assert r.code() == "PAM_AUTHTOK_RECOVERY_ERR", r
    assert r.prompts == [] and fake.requests == []


def test_try_first_pass_without_authtok_prompts(services, fake):
    svc = _first_pass_stack(services, fake, "try_first_pass")
    r = run_app(services, svc, "alice", answers=[fake.issue("alice")])
    assert r.code() == "PAM_SUCCESS", r
    assert r.prompts == [("echo_off", "JWT token for alice (tokend): ")]


def test_prompt_option(services, fake):
    svc = services.jwt("sshd", opts(fake, "[prompt=Access token for tokend: ]"))
    r = run_app(services, svc, "alice", answers=[fake.issue("alice")])
    assert r.code() == "PAM_SUCCESS", r
    assert r.prompts == [("echo_off", "Access token for tokend: ")]


def test_unknown_option_ignored(services, tokend):
    svc = services.jwt("sshd", opts(tokend, "frobnicate=yes"))
    r = run_app(services, svc, "alice", answers=[tokend.issue("alice")])
    assert r.code() == "PAM_SUCCESS", r
    assert any('unknown option "frobnicate=yes"' in line for line in r.logs), r.logs


@pytest.mark.parametrize("bad", ["timeout=0", "timeout=abc", "timeout=99999999", "socket=relative.sock",
                                 "audience=", "audience=a/b", "socket=/" + "x" * 120])
def test_invalid_option_values_fail_closed(services, fake, bad):
    svc = services.jwt("sshd", opts(fake, bad))
    r = run_app(services, svc, "alice", answers=[fake.issue("alice")])
    assert r.code() == "PAM_SERVICE_ERR", r
    assert fake.requests == []


def test_debug_logs_without_token(services, fake):
    svc = services.jwt("sshd", opts(fake, "debug"))
    token = fake.issue("alice")
    r = run_app(services, svc, "alice", ["auth", "acct"], answers=[token])
    assert r.code("auth") == "PAM_SUCCESS" and r.code("acct") == "PAM_SUCCESS", r
    debug = [line for line in r.logs if line.startswith("(7)")]
    assert any("asking tokend" in line for line in debug), r.logs
    assert any("acct_mgmt" in line for line in debug), r.logs
    assert token not in r.stderr
    # without debug: no debug lines
    quiet = services.jwt("login", opts(fake))
    r = run_app(services, quiet, "alice", answers=[fake.issue("alice", aud=("login",))])
    assert r.code() == "PAM_SUCCESS"
    assert not any(line.startswith("(7)") for line in r.logs), r.logs


def test_pamtester(services, tokend):
    svc = services.jwt("sshd", opts(tokend))
    p = run_pamtester(services, svc, "alice", ["authenticate", "acct_mgmt"],
                      stdin=tokend.issue("alice") + "\n")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "successfully authenticated" in p.stdout + p.stderr
    p = run_pamtester(services, svc, "alice", ["authenticate"],
                      stdin=faketokend.fake_jws({"sub": "alice"}) + "\n")
    assert p.returncode != 0
    assert "Authentication failure" in p.stdout + p.stderr
