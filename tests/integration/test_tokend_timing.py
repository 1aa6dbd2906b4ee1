"""Login failure timing: a wrong password for an existing user and any
password for a user that does not exist must not be told apart by how long
tokend takes to answer. pam_unix fails an unknown user in microseconds but
a wrong password only after the yescrypt hash; tokend holds every failed
password login back until [Login] FailureDelay has passed since it started.

Statistic: the probability that a random "existing" sample is slower than
a random "unknown" one (the Mann-Whitney AUC). 0.5 means no difference;
the control run (FailureDelay=0) must show the leak (AUC near 1), the real
run must not (AUC well inside 0.5 ± 0.3, i.e. about 3 standard errors)."""

import os
import secrets
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import VALGRIND_DIR, PamService, need_root, system_user, tokend_factory  # noqa: E402,F401

ROUNDS = 16


def auc(slow, fast):
    """P(a sample of slow > a sample of fast), ties counting one half."""
    wins = sum((a > b) + 0.5 * (a == b) for a in slow for b in fast)
    return wins / (len(slow) * len(fast))


def measure(d, user):
    """ROUNDS pairs, each pair sent at the same moment from two threads."""
    existing, unknown = [], []

    def one(name, out):
        c = d.client()
        t = time.perf_counter()
        r = c.login(name, "not-the-password")
        out.append(time.perf_counter() - t)
        assert r.status == 400 and r.error == "invalid_credentials", r

    for _ in range(ROUNDS):
        ts = [threading.Thread(target=one, args=(user.name, existing)),
              threading.Thread(target=one, args=("tdnone_" + secrets.token_hex(4), unknown))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return existing, unknown


@pytest.fixture
def pam_unix_daemon(system_user, tokend_factory):  # noqa: F811
    need_root("a throwaway user with a password and a pam_unix service")
    user = system_user("tdtime_", password="Pw-" + secrets.token_urlsafe(9))
    svc = PamService("auth required pam_unix.so\naccount required pam_unix.so\n")

    def start(delay):
        return tokend_factory("[Login]\nPAMService=%s\nMaxFailures=100000\nFailureDelay=%s\n" % (svc.name, delay))
    yield start, user
    svc.close()


def test_failed_logins_take_as_long_for_unknown_users(pam_unix_daemon):
    if VALGRIND_DIR:
        pytest.skip("under valgrind the daemon's own slowdown swamps the hash time this test measures")
    start, user = pam_unix_daemon
    # control: without the delay, the hash gives existing users away
    d0 = start("0")
    existing, unknown = measure(d0, user)
    leak = auc(existing, unknown)
    assert leak >= 0.9, "control: expected the timing leak without FailureDelay (AUC %.2f)" % leak
    assert d0.api.login(user.name, user.password).status == 200  # and logins work
    # with the delay: indistinguishable, and at least the delay
    d1 = start("1s")
    existing, unknown = measure(d1, user)
    a = auc(existing, unknown)
    print("AUC without delay %.2f, with 1s delay %.2f; medians %.1f / %.1f ms" % (
        leak, a, sorted(existing)[ROUNDS // 2] * 1000, sorted(unknown)[ROUNDS // 2] * 1000))
    assert min(existing + unknown) >= 0.99, "a failed login was answered before FailureDelay"
    assert 0.2 <= a <= 0.8, "failed logins of existing and unknown users are separable (AUC %.2f)" % a
    assert d1.api.login(user.name, user.password).status == 200
