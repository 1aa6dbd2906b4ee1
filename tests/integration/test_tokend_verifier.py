# SPDX-License-Identifier: MIT
"""Verifier mode ([Verifier] Issuer=, DESIGN.md "Fleet"): a tokend that
checks tokens against an issuer's JWKS and revocation feed, fetched over
the issuer's Unix socket here ([Verifier] UnixSocket=; tests/fleet does it
over HTTPS between network namespaces). Every wait is for an event (the
verifier's persisted SEQ, an answer changing), bounded only as a guard
against a hang; no time is asserted."""

import os
import signal
import sys
import time
import urllib.parse

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdfake import FakeIssuer  # noqa: E402
from tdharness import ME, DeviceKey, jwt_parts, tokend_factory, verifier_feed_state  # noqa: E402,F401

ISSUER = "https://issuer.test"


def verifier_conf(issuer, policy="strict", staleness="2s", extra=""):
    return ("[Verifier]\nIssuer=%s\nUnixSocket=%s\nHostNames=web1 web1.example\nPolicy=%s\nMaxStaleness=%s\n%s"
            % (ISSUER, issuer.socket, policy, staleness, extra))


def start_pair(tokend_factory, policy="strict", staleness="2s", extra=""):
    issuer = tokend_factory("[Token]\nIssuer=%s\n" % ISSUER)
    return issuer, tokend_factory(verifier_conf(issuer, policy, staleness, extra))


def feed_state(v):
    return verifier_feed_state(v.state_dir)


def wait_until(cond, what, daemon, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline and daemon.running(), what + ":\n" + daemon.log()
        time.sleep(0.05)


def issuer_seq(issuer):
    r = issuer.api.request("GET", "/api/revocations?after=0")
    assert r.status == 200, r
    return jwt_parts(r.body.decode())[1]["seq"]


def wait_applied(v, seq):
    wait_until(lambda: feed_state(v).get("seq", -1) >= seq, "the verifier should apply SEQ %d" % seq, v)


def token(issuer, audience=("sshd@web1", "sshd@web2")):
    r = issuer.api.issue_token(audience=list(audience), device_name="laptop")
    assert r.status == 200, r
    return r.json


def verify(v, tok, service="sshd"):
    return v.api.verify(tok, user=ME.pw_name, service=service)


def test_verify_locally_and_revocation_through_the_feed(tokend_factory):
    issuer, v = start_pair(tokend_factory)
    wait_applied(v, 0)
    a, b = token(issuer), token(issuer)
    r = verify(v, a["access_token"])
    assert r.status == 200 and r.json["sub"] == ME.pw_name and r.json["uid"] == ME.pw_uid, r

    # Host-scoped audiences: only sshd@web1 (a HostNames= name) is good here;
    # a web2-only token and an unscoped one (AcceptUnscoped=no) are not.
    assert verify(v, token(issuer, ["sshd@web2"])["access_token"]).status == 401
    assert verify(v, token(issuer, ["sshd"])["access_token"]).status == 401
    assert verify(v, token(issuer, ["sshd@WEB1.example"])["access_token"]).status == 200
    assert verify(v, a["access_token"], service="sudo").status == 401

    # What only the issuer does is refused, clearly.
    for r in (v.api.issue_token(), v.api.login("x", "y"), v.api.devices(), v.api.logout(a["access_token"]),
              v.api.refresh(a["refresh_token"], a["device_id"])):
        assert r.status == 403 and ISSUER in r.message, r

    # Revoke on the issuer: refused once the verifier applied that SEQ; the
    # other device is untouched (control).
    assert issuer.api.delete_device(a["device_id"]).status == 204
    wait_applied(v, issuer_seq(issuer))
    r = verify(v, a["access_token"])
    assert r.status == 401 and r.error == "token_revoked", r
    assert verify(v, b["access_token"]).status == 200
    # Logout revokes the jti and the device.
    assert issuer.api.logout(b["access_token"]).status == 204
    wait_applied(v, issuer_seq(issuer))
    assert verify(v, b["access_token"]).error == "token_revoked"
    st = feed_state(v)
    assert a["device_id"] in st["devices"] and b["device_id"] in st["devices"], st
    assert jwt_parts(b["access_token"])[1]["jti"] in st["jtis"], st


def test_cached_tokens_are_refused_once_the_feed_revokes_them(tokend_factory):
    """The verifier's verified-token cache: each token is verified twice
    (the second answer skips the signature check), then its device (DELETE)
    or its jti alone (/oauth2/revoke of the access token) is revoked on the
    issuer: refused at the first verify after the verifier applied that
    SEQ. Controls: a token of the revoked jti's device with another jti,
    and a token of another device, both cached, still verify."""
    issuer, v = start_pair(tokend_factory)
    wait_applied(v, 0)
    a, b, keep = token(issuer), token(issuer), token(issuer)
    r = issuer.api.refresh(b["refresh_token"], b["device_id"], audience=["sshd@web1"])
    assert r.status == 200, r
    b2 = r.json  # b's device, another jti
    for t in (a, b, b2, keep):
        for _ in range(2):
            assert verify(v, t["access_token"]).status == 200
    assert issuer.api.delete_device(a["device_id"]).status == 204
    wait_applied(v, issuer_seq(issuer))
    r = verify(v, a["access_token"])
    assert r.status == 401 and r.error == "token_revoked", r
    assert verify(v, keep["access_token"]).status == 200

    body = urllib.parse.urlencode(dict(token=b["access_token"], token_type_hint="access_token"))
    r = issuer.api.request("POST", "/oauth2/revoke", body, content_type="application/x-www-form-urlencoded")
    assert r.status == 200, r
    wait_applied(v, issuer_seq(issuer))
    r = verify(v, b["access_token"])
    assert r.status == 401 and r.error == "token_revoked", r
    assert verify(v, b2["access_token"]).status == 200
    assert verify(v, keep["access_token"]).status == 200


def test_strict_and_best_effort_when_the_issuer_stops(tokend_factory):
    issuer, strict = start_pair(tokend_factory, "strict")
    best = tokend_factory(verifier_conf(issuer, "best_effort"))
    wait_applied(strict, 0)
    wait_applied(best, 0)
    t = token(issuer)["access_token"]
    assert verify(strict, t).status == 200 and verify(best, t).status == 200

    issuer.send_signal(signal.SIGSTOP)
    try:
        r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(verify(strict, t)),
                       "strict should refuse once the feed is older than MaxStaleness", strict)
        assert r.error == "unavailable" and "MaxStaleness" in r.message, r
        assert verify(best, t).status == 200  # best_effort keeps accepting
    finally:
        issuer.send_signal(signal.SIGCONT)
    wait_until(lambda: verify(strict, t).status == 200, "strict should recover with the feed", strict)


def test_restart_keeps_the_revoked_set(tokend_factory):
    issuer, v = start_pair(tokend_factory, "best_effort")
    a, b = token(issuer), token(issuer)
    assert issuer.api.delete_device(a["device_id"]).status == 204
    seq = issuer_seq(issuer)
    wait_applied(v, seq)
    # The issuer is unreachable while the verifier restarts: what it knew
    # comes from its state directory.
    issuer.send_signal(signal.SIGSTOP)
    try:
        v.restart()
        assert feed_state(v)["seq"] == seq
        assert verify(v, a["access_token"]).error == "token_revoked"
        assert verify(v, b["access_token"]).status == 200  # control
    finally:
        issuer.send_signal(signal.SIGCONT)


def test_new_issuer_key_is_fetched_on_first_sight(tokend_factory):
    issuer, v = start_pair(tokend_factory)
    wait_applied(v, 0)
    old = token(issuer)["access_token"]
    assert verify(v, old).status == 200
    # Rotate: a new key file (the newest is the active one), reload.
    path = os.path.join(issuer.keys_dir, "rotated.pem")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(DeviceKey().pkcs8_pem())
    assert "reloaded" in issuer.reload()
    new = token(issuer)["access_token"]
    assert jwt_parts(new)[0]["kid"] != jwt_parts(old)[0]["kid"]
    first = verify(v, new)
    assert first.status in (200, 503), first  # 503: "fetching it" (no network call on the verify path)
    wait_until(lambda: verify(v, new).status == 200, "the verifier should fetch the new kid", v)
    assert verify(v, old).status == 200  # the old key still verifies
    assert feed_state(v)["counters"]["jwks_refreshes"] >= 2


def test_configuration_refusals(tokend_factory, tmp_path):
    from tdharness import Tokend
    for conf, needle in [
        ("[Verifier]\nIssuer=ftp://x\n", "must be an https:// URL"),
        ("[Verifier]\nIssuer=https://i\nPolicy=lenient\n", "must be strict or best_effort"),
        ("[Verifier]\nIssuer=https://i\nCertificate=/c.pem\n", "Certificate= and PrivateKey= go together"),
        ("[Verifier]\nIssuer=https://i\nHostNames=we_b\n", "expected host names"),
        ("[Verifier]\nIssuer=https://i\nMaxStaleness=0\n", "out of range"),
    ]:
        d = Tokend(conf)
        try:
            with pytest.raises(RuntimeError) as e:
                d.start()
            assert needle in str(e.value), (conf, str(e.value))
        finally:
            d.close()


def test_skipped_jwks_keys_and_refused_feed_answers(tokend_factory):
    issuer = tokend_factory("[Token]\nIssuer=%s\n" % ISSUER)
    sock = os.path.join(issuer.dir, "fake.sock")
    fake = FakeIssuer(issuer.socket, sock)
    try:
        fake.replay = issuer.api.request("GET", "/api/revocations?after=0").body  # seq 0
        v = tokend_factory("[Verifier]\nIssuer=%s\nUnixSocket=%s\nHostNames=web1\nMaxStaleness=30s\n" % (ISSUER, sock))
        wait_applied(v, 0)
        # The good key of a JWKS that also holds unusable ones verifies.
        a, b = token(issuer), token(issuer)
        assert verify(v, a["access_token"]).status == 200
        assert "left out" in v.log() and "kid ed448" in v.log() and "kid broken" in v.log()

        assert issuer.api.delete_device(a["device_id"]).status == 204
        wait_applied(v, issuer_seq(issuer))
        assert verify(v, a["access_token"]).error == "token_revoked"

        # Forged: a stranger's signature, claiming b's device is revoked.
        fake.forged_device = b["device_id"]
        refused = feed_state(v)["counters"]["feed_refused"]
        fake.mode = "forge"
        wait_until(lambda: feed_state(v)["counters"]["feed_refused"] > refused, "a forged answer is refused", v)
        assert "not signed by an issuer key" in v.log()
        assert verify(v, b["access_token"]).status == 200  # nothing of it applied

        # Replayed: the issuer's own, valid signature, but an answer to after=0.
        refused = feed_state(v)["counters"]["feed_refused"]
        fake.mode = "replay"
        wait_until(lambda: feed_state(v)["counters"]["feed_refused"] > refused, "a replayed answer is refused", v)
        assert "an answer to another request" in v.log()
        assert verify(v, a["access_token"]).error == "token_revoked"  # the revoked set stays

        # Back to the real feed: it goes on from where it was.
        fake.mode = "proxy"
        assert issuer.api.delete_device(b["device_id"]).status == 204
        wait_applied(v, issuer_seq(issuer))
        assert verify(v, b["access_token"]).error == "token_revoked"
    finally:
        fake.close()
