# SPDX-License-Identifier: MIT
"""Login failure timing: a wrong password for an existing user and any
password for a user that does not exist must not be told apart by how long
tokend takes to answer. pam_unix fails an unknown user in microseconds but
a wrong password only after the yescrypt hash; tokend holds every failed
password login back until [Login] FailureDelay has passed since it started.

Checked by events, not by timing: both failures are decided (tokend logs
"login failed for ...") and then held back, while the control, a login with
the right password sent after them, is answered at once; only then do the two
failures come back, both as 400 invalid_credentials. The timing statistics
(medians, the Mann-Whitney AUC with and without the delay) are printed by
the benchmark tests/bench/bench-login-timing, which asserts nothing."""

import os
import secrets
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import PamService, need_root, system_user, tokend_factory  # noqa: E402,F401

# [Login] FailureDelay (its maximum): long next to one request, so that the
# control is answered while both failures are held back even on a loaded
# machine.
DELAY = 10


@pytest.fixture
def pam_unix_daemon(system_user, tokend_factory):  # noqa: F811
    need_root("a throwaway user with a password and a pam_unix service")
    user = system_user("tdtime_", password="Pw-" + secrets.token_urlsafe(9))
    svc = PamService("auth required pam_unix.so\naccount required pam_unix.so\n")

    def start(delay):
        return tokend_factory("[Login]\nPAMService=%s\nMaxFailures=100000\nFailureDelay=%s\n" % (svc.name, delay))
    yield start, user
    svc.close()


def test_failed_logins_are_held_back_for_existing_and_unknown_users(pam_unix_daemon):
    start, user = pam_unix_daemon
    d = start("%ds" % DELAY)
    unknown = "tdnone_" + secrets.token_hex(4)
    answers = {}  # filled by the threads, checked here (a failed assert in a thread is only a warning)

    def fail(name):
        answers[name] = d.client().login(name, "not-the-password")

    threads = [threading.Thread(target=fail, args=(name,), daemon=True) for name in (user.name, unknown)]
    for t in threads:
        t.start()
    # both refused by PAM (the existing user after the hash) ...
    for name in (user.name, unknown):
        d.wait_log("login failed for %s " % name)
    # ... and held back: the right password, sent after them, is answered first
    ok = d.api.login(user.name, user.password)
    assert ok.status == 200 and ok.json["user"]["name"] == user.name, ok
    assert answers == {}, "a failed login was answered before FailureDelay: %r" % answers
    for t in threads:
        t.join(DELAY + 60)
    assert not any(t.is_alive() for t in threads), "a held-back login never came back"
    for name in (user.name, unknown):
        r = answers[name]
        assert r.status == 400 and r.error == "invalid_credentials", (name, r)
        assert r.message == "wrong user name or password", r  # the same words for both
