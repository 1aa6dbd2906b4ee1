# SPDX-License-Identifier: MIT
"""Two tokends (two issuers, each with its own signing key) on one real
PostgreSQL database (pgharness): a refresh token raced by 32 clients split
across both rotates exactly once (reuse detected without a grace, one
successor and no revocation within one); a device revoked through one is
refused by the other on the next request; devices and audit read the same
from both; both serve the union of their public keys; a stopped database is
503 on both, then recovery without a false reuse; either issuer killed with
SIGKILL under issue/refresh/revoke load breaks none of the crash test's
invariants (crashcheck)."""

import os
import random
import shutil
import signal
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pam"))

from crashcheck import CONFIG, Worker, acknowledged, check_after_restart, check_load_was_real, \
    lost_committed, run_until_dead  # noqa: E402
from pgharness import postgresql  # noqa: F401,E402
from tdharness import ME, NO_STEP_UP, Client, jwt_parts, need_root, tokend_factory  # noqa: F401,E402

import pamtest  # noqa: E402

RACERS = 32
# pam_strerror(PAM_AUTHINFO_UNAVAIL), as pamtester prints it
AUTHINFO_UNAVAIL = "Authentication service cannot retrieve authentication info"
KILLS = 16


def jwt_header(token):
    return jwt_parts(token)[0]


def two_issuers(tokend_factory, postgresql, extra=""):  # noqa: F811
    uri = postgresql.new_database()
    config = "[Store]\nDatabase=%s\n%s%s" % (uri, NO_STEP_UP, extra)
    a = tokend_factory(config)
    b = tokend_factory(config)
    for issuer in (a, b):
        issuer.wait_log("ready:")  # its public keys are published by then
        issuer.database, issuer.pg = uri, postgresql
    return a, b


def race(a, b, refresh_token, device_id):
    """RACERS concurrent refreshes of one token, alternating between a and b;
    the answers in racer order."""
    answers = [None] * RACERS
    start = threading.Barrier(RACERS)

    def one(i):
        client = Client((a if i % 2 == 0 else b).socket)
        start.wait()
        answers[i] = client.refresh(refresh_token, device_id)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def device_of(issuer, device_id):
    r = issuer.api.devices()
    assert r.status == 200, r
    found = [d for d in r.json["devices"] if d["id"] == device_id]
    assert len(found) == 1, r.json
    return found[0]


def audit_events(issuer, event):
    r = issuer.api.audit_log()
    assert r.status == 200, r
    return [e for e in r.json["audit"] if e["event"] == event]


def test_race_without_grace_one_winner_reuse_detected(tokend_factory, postgresql):  # noqa: F811
    a, b = two_issuers(tokend_factory, postgresql)
    first = a.api.issue_token().json
    answers = race(a, b, first["refresh_token"], first["device_id"])

    codes = [r.status for r in answers]
    assert codes.count(200) == 1, [(r.status, r.body) for r in answers]
    assert all(c == 401 for c in codes if c != 200), codes  # refused, never a 5xx or a second token
    reused = [r for r in answers if r.status == 401 and "already used" in (r.message or "")]
    assert len(reused) == 1, [r.body for r in answers]
    for issuer in (a, b):
        d = device_of(issuer, first["device_id"])
        assert d["revoked"] and d["revoke_reason"] == "refresh_reuse", d
        assert len(audit_events(issuer, "refresh_reuse")) == 1
        assert len(audit_events(issuer, "refresh")) == 1
    winner = next(r for r in answers if r.status == 200).json
    assert b.api.refresh(winner["refresh_token"], winner["device_id"]).status == 401  # the family is dead


def test_race_within_grace_one_successor(tokend_factory, postgresql):  # noqa: F811
    a, b = two_issuers(tokend_factory, postgresql, "[Token]\nRefreshReuseGrace=60s\n")
    first = a.api.issue_token().json
    answers = race(a, b, first["refresh_token"], first["device_id"])

    codes = [r.status for r in answers]
    assert codes.count(200) == 1, [(r.status, r.body) for r in answers]
    losers = [r for r in answers if r.status != 200]
    assert all(r.status == 401 and "concurrent request" in r.message for r in losers), [r.body for r in losers]
    winner = next(r for r in answers if r.status == 200).json
    for issuer in (a, b):
        d = device_of(issuer, first["device_id"])
        assert not d["revoked"], d
        assert audit_events(issuer, "refresh_reuse") == []
    # the one successor works on either issuer (control: the chain is alive)
    nxt = b.api.refresh(winner["refresh_token"], winner["device_id"])
    assert nxt.status == 200, nxt
    assert a.api.refresh(nxt.json["refresh_token"], nxt.json["device_id"]).status == 200


def test_revoke_through_one_refused_by_other(tokend_factory, postgresql):  # noqa: F811
    a, b = two_issuers(tokend_factory, postgresql)
    first = a.api.issue_token().json
    # b takes over the device a enrolled and signs with its own key
    at_b = b.api.refresh(first["refresh_token"], first["device_id"])
    assert at_b.status == 200, at_b
    token = at_b.json["access_token"]
    assert b.api.verify(token).status == 200  # control
    assert a.api.delete_device(first["device_id"]).status in (200, 204)
    refused = b.api.verify(token)
    assert refused.status == 401 and refused.error == "token_revoked", refused
    assert b.api.refresh(at_b.json["refresh_token"], first["device_id"]).status == 401
    assert device_of(b, first["device_id"])["revoked"]


def own_kid(issuer):
    return [line for line in issuer.log().splitlines() if "ready:" in line][0].rsplit("kid ", 1)[1].rstrip(")\n")


def test_jwks_union(tokend_factory, postgresql):  # noqa: F811
    """Each issuer signs with its own key and publishes only its public JWK:
    both serve the union, and a token of either verifies against it."""
    a, b = two_issuers(tokend_factory, postgresql)
    ka, kb = own_kid(a), own_kid(b)
    assert ka != kb
    for issuer in (a, b):
        keys = issuer.api.jwks().json["keys"]
        assert sorted(k["kid"] for k in keys) == sorted([ka, kb]), keys
        assert all("d" not in k for k in keys), "private key material in the JWKS"
    # the same keys, member for member, from both (each lists its own first)
    served = [sorted(issuer.api.jwks().json["keys"], key=lambda k: k["kid"]) for issuer in (a, b)]
    assert served[0] == served[1], served
    assert jwt_header(a.api.issue_token().json["access_token"])["kid"] == ka
    assert jwt_header(b.api.issue_token().json["access_token"])["kid"] == kb
    # a published row that is not a usable public key is not served (control: the two above are)
    postgresql.sql("INSERT INTO published_keys VALUES ('evil', '{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\","
                   "\"d\":\"%s\",\"kid\":\"evil\"}', 0, 4102444800)" % ("A" * 43, "A" * 43), uri=a.database)
    assert sorted(k["kid"] for k in b.api.jwks().json["keys"]) == sorted([ka, kb])


@pytest.fixture
def services(tmp_path):
    """A pam_wrapper service directory (tests/pam/pamtest.py)."""
    need_root("run pamtester under pam_wrapper as root, as sshd runs pam_jwt")
    if not pamtest.find_pam_wrapper() or not shutil.which("pamtester"):
        pytest.skip("pam_wrapper or pamtester not installed (Debian: libpam-wrapper, pamtester)")
    if not os.path.exists(pamtest.MODULE):
        pytest.skip("%s not built" % pamtest.MODULE)
    return pamtest.ServiceDir(tmp_path / "pam.d")


def pam_login(services, issuer, token):
    """pamtester's sshd authentication with token through pam_jwt asking issuer."""
    svc = services.jwt("sshd", "socket=%s timeout=5000" % issuer.socket, account=False, session=False)
    p = pamtest.run_pamtester(services, svc, ME.pw_name, ["authenticate"], stdin=token + "\n")
    return p, p.stdout + p.stderr


def test_database_restart(tokend_factory, postgresql, services):  # noqa: F811
    """PostgreSQL stopped under both issuers: refresh and verify answer 503
    with Retry-After (fail closed), pam_jwt logins through either are
    PAM_AUTHINFO_UNAVAIL, nothing is revoked; once it is back the same
    refresh token rotates on either issuer and the logins succeed again."""
    a, b = two_issuers(tokend_factory, postgresql)
    first = a.api.issue_token().json
    tokens = {a: first["access_token"], b: b.api.issue_token().json["access_token"]}
    for issuer in (a, b):
        assert issuer.api.verify(tokens[issuer]).status == 200  # control
        p, out = pam_login(services, issuer, tokens[issuer])
        assert p.returncode == 0 and "successfully authenticated" in out, out
    postgresql.stop()
    try:
        for issuer in (a, b):
            r = issuer.api.refresh(first["refresh_token"], first["device_id"])
            assert r.status == 503 and r.headers.get("retry-after"), r
            v = issuer.api.verify(tokens[issuer])
            assert v.status == 503, v
            p, out = pam_login(services, issuer, tokens[issuer])
            assert p.returncode != 0 and AUTHINFO_UNAVAIL in out and "successfully" not in out, out
    finally:
        postgresql.start()
    r = b.api.refresh(first["refresh_token"], first["device_id"])
    assert r.status == 200, r
    assert not device_of(a, first["device_id"])["revoked"]
    assert audit_events(a, "refresh_reuse") == []
    assert a.api.refresh(r.json["refresh_token"], first["device_id"]).status == 200
    for issuer in (a, b):
        p, out = pam_login(services, issuer, tokens[issuer])
        assert p.returncode == 0 and "successfully authenticated" in out, out


def wait_for(what, cond, timeout=90):
    """Wait for cond() (an event, polled); the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "no %s within %ds" % (what, timeout)
        time.sleep(0.02)


def test_database_restart_under_load(tokend_factory, postgresql):  # noqa: F811
    """PostgreSQL stopped mid-load (pg_ctl stop -m fast, later -m immediate:
    a crash) and started again while 4 clients issue, refresh and revoke
    through both issuers: the clients get 503s with Retry-After while it is
    down, then every client goes on. Nothing is revoked by the outage, not
    even after an immediate stop lost the answer to a COMMIT that went
    through (the store asks the server what became of it, instead of a 503
    whose retry would be reuse); the reuse audit is unchanged and the crash
    test's invariants (crashcheck) hold."""
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    a, b = two_issuers(tokend_factory, postgresql, CONFIG)
    workers = [Worker(rng.random(), busy_ok=True) for _ in range(4)]
    reuse_before = a.query("SELECT count(*) AS n FROM audit WHERE event = 'refresh_reuse'")[0][0]
    stop = threading.Event()
    threads = run_until_dead(workers, a, b, stop=stop)
    busy = {}
    try:
        for mode in ("fast", "immediate"):
            acked = [acknowledged([w]) for w in workers]
            wait_for("load", lambda: all(acknowledged([w]) >= n + 5 for w, n in zip(workers, acked)))
            before = sum(w.busy for w in workers)
            postgresql.stop(mode)
            try:
                # (a request whose COMMIT answer was lost waits for the server: not every client sees a 503)
                wait_for("503s", lambda: sum(w.busy for w in workers) >= before + 8)
            finally:
                postgresql.start()
            acked = [acknowledged([w]) for w in workers]
            wait_for("recovery", lambda: all(acknowledged([w]) > n for w, n in zip(workers, acked)))
            busy[mode] = sum(w.busy for w in workers) - before
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    logs = "\ntokend A:\n%s\ntokend B:\n%s" % (a.log()[-4000:], b.log()[-4000:])
    for w in workers:
        assert not w.errors, (w.errors, logs)
        assert not w.revoked_after_busy, "devices revoked by the outage: %r%s" % (w.revoked_after_busy, logs)
    # the only revocations: those the clients asked for
    asked = {dev for w in workers for dev in w.revoked}
    assert {dev: reason for dev, reason in a.query("SELECT id, revoke_reason FROM devices WHERE revoked IS NOT NULL")
            if dev not in asked or reason != "owner"} == {}
    assert a.query("SELECT count(*) AS n FROM audit WHERE event = 'refresh_reuse'")[0][0] == reuse_before
    check_after_restart(b, workers)
    check_load_was_real(a, workers, 2)
    print("PostgreSQL stopped under load and started again: %d operations acknowledged, 503 (all with "
          "Retry-After): %r" % (acknowledged(workers), busy))


def test_kill9_either_issuer_under_load(tokend_factory, postgresql):  # noqa: F811
    """The crash test's load and invariants (crashcheck) on two issuers:
    4 clients issue, refresh and revoke through either at random while one
    of them, in turn, is killed with SIGKILL (KILLS times). After each
    restart, through either issuer and SQL on the shared database: no
    refresh token accepted twice, no revoked device alive, no acknowledged
    audit row lost, a lost operation either not committed or complete."""
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    a, b = two_issuers(tokend_factory, postgresql, CONFIG)
    workers = [Worker(rng.random()) for _ in range(4)]
    first = rng.randrange(2)
    for i in range(KILLS):
        victim = (a, b)[(first + i) % 2]
        threads = run_until_dead(workers, a, b)
        time.sleep(rng.uniform(0.05, 0.6))
        victim.send_signal(signal.SIGKILL)
        victim.proc.wait()
        for t in threads:
            t.join(30)
            assert not t.is_alive(), "a client hangs"
        victim.start()
        check_after_restart(rng.choice((a, b)), workers)
    check_load_was_real(b, workers, KILLS)
    print("kill -9 x%d of either issuer: %d operations acknowledged, lost but committed: %r" % (
        KILLS, acknowledged(workers), lost_committed(workers)))
