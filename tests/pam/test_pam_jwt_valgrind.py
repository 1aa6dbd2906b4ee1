# SPDX-License-Identifier: MIT
"""pam_jwt under valgrind memcheck: no invalid access, no uninitialised use,
no definite or indirect leak, on the success path and on each kind of failure
(refusal, timeout, garbage, pass-through), through pam-app and pamtester."""

import shutil

import pytest

import pamtest
from faketokend import hang, raw
from pamtest import run_app, run_pamtester

VALGRIND = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
            "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect"]
# valgrind and pam_wrapper's RTLD_DEEPBIND do not mix
ENV = {"PAM_WRAPPER_DISABLE_DEEPBIND": "1"}


@pytest.fixture(autouse=True)
def need_valgrind():
    if not shutil.which("valgrind"):
        pytest.skip("valgrind not installed")
    if pamtest.SANITIZER_PRELOAD:
        pytest.skip("ASan build: valgrind and AddressSanitizer do not run together")


def vg_app(services, svc, ops, answers):
    r = run_app(services, svc, "alice", ops, answers=answers, env=ENV, prefix=VALGRIND, timeout=120)
    assert "==" not in r.stderr, r.stderr
    return r


@pytest.mark.parametrize("case", ["valid", "refused", "timeout", "garbage", "only_tokens"])
def test_memcheck(services, fake, case):
    svc = services.jwt("sshd", "socket=%s timeout=500 %s" % (
        fake.path, "only_tokens" if case == "only_tokens" else ""),
        extra_auth="auth required pam_permit.so" if case == "only_tokens" else "")
    token = fake.issue("alice")
    answer, ops, want = {
        "valid": (token, ["auth", "acct", "open", "close"], "PAM_SUCCESS"),
        "refused": ("x.y.z", ["auth"], "PAM_AUTH_ERR"),
        "timeout": (token, ["auth"], "PAM_AUTHINFO_UNAVAIL"),
        "garbage": (token, ["auth"], "PAM_AUTHINFO_UNAVAIL"),
        "only_tokens": ("hunter2", ["auth"], "PAM_SUCCESS"),
    }[case]
    if case == "timeout":
        fake.then(hang())
    if case == "garbage":
        fake.then(raw(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"active\""))
    r = vg_app(services, svc, ops, [answer])
    assert r.returncode in (0, 1), r  # 99: valgrind found errors
    assert r.code("auth") == want, r
    if case == "valid":
        assert [c for _, c in r.codes] == ["PAM_SUCCESS"] * 4, r


def test_memcheck_pamtester(services, fake):
    svc = services.jwt("sshd", "socket=%s" % fake.path)
    p = run_pamtester(services, svc, "alice", ["authenticate", "acct_mgmt", "open_session", "close_session"],
                      stdin=fake.issue("alice") + "\n", env=ENV, prefix=VALGRIND, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "==" not in p.stderr, p.stderr
