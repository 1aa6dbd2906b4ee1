# SPDX-License-Identifier: MIT
"""Faults in a fleet in network namespaces (DESIGN.md "Fleet"; root only),
on the set-up of test_fleet.py (fleetns.start_fleet: namespaces tdf<pid>-*,
the issuer's tokend on HTTPS at 10.77.0.2:8443, verifiers on web1/web2
fetching its JWKS and revocation feed over HTTPS across the router, all
removed at the end). One fleet per test:

- the issuer SIGSTOPped (its link up: connections hang, nothing answers):
  strict web1 refuses (503, MaxStaleness) once stale, best_effort web2
  accepts; after SIGCONT both accept and a new revocation reaches both;
- the issuer restarted (SIGTERM, the same state directory): a device
  revoked just before the stop and one revoked after the restart are both
  refused on the verifier, the issuer's SEQ goes on from where it was;
- the verifier restarted while the issuer's link is cut: its revoked set
  and JWKS come from its state directory (a revoked token refused, another
  accepted by best_effort, through sshd's PAM stack too);
- a new signing key on the issuer (a key file + SIGHUP): the verifier
  fetches the new kid on first sight, old tokens still verify;
- a FakeIssuer (tests/integration/tdfake.py) on HTTPS in the issuer's
  namespace at 10.77.0.2:8444 (a certificate of the test's CA) in front of
  the issuer, which names it as its PublicURL=: its JWKS adds unsupported
  and malformed keys (the good key still verifies), its forged and replayed
  feed answers are refused and counted (verifier-feed.json's feed_refused,
  tokend_verifier_feed_answers_total in /metrics), and nothing of them is
  applied; the real feed then goes on.

Every wait is for an event (a SEQ applied, an answer changing), bounded
only against a hang; no time is asserted. Each scenario has a control that
must succeed (a token that is not revoked, a good answer after the bad)."""

import os
import signal
import ssl
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fleetns import (ISSUER_IP, Laptop, Node, fleet, jwt_parts, start_fleet, verifier_config,  # noqa: E402,F401
                     wait_until)
from tdfake import FakeIssuer  # noqa: E402
from tdharness import DeviceKey  # noqa: E402
from test_tokend_metrics import sample  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces, users and sshd")

FAKE_URL = "https://%s:8444" % ISSUER_IP


def token(issuer, user, audience=("sshd@web1", "sshd@web2")):
    """An access token of a new device of user, issued on the issuer's socket."""
    r = issuer.api.issue_token(audience=list(audience), device_name="laptop", user=user.name)
    assert r.status == 200, r
    return r.json


def verify(v, tok):
    return v.api.verify(tok["access_token"], service="sshd")


def answer(v, tok, status):
    """Wait for verify to answer status; that answer."""
    return wait_until(lambda: (lambda r: r if r.status == status else None)(verify(v, tok)),
                      lambda: "verify should answer %d: %r\n%s" % (status, verify(v, tok), v.log()[-3000:]))


def metrics(v):
    r = v.api.request("GET", "/metrics")
    assert r.status == 200, r
    return r.body.decode()


def answers_refused(v, fake, mode, result, why):
    """Switch the fake's feed answers to mode; wait until the verifier
    refused one (its feed_refused counter), logged why, and counted it as
    result in /metrics."""
    refused = v.feed_state()["counters"]["feed_refused"]
    counted = sample(metrics(v), "tokend_verifier_feed_answers_total", result=result)
    fake.mode = mode
    wait_until(lambda: v.feed_state()["counters"]["feed_refused"] > refused,
               lambda: "a %s answer should be refused:\n%s" % (mode, v.log()[-3000:]))
    assert why in v.log()
    assert sample(metrics(v), "tokend_verifier_feed_answers_total", result=result) > counted


def revoke(issuer, tok):
    """DELETE the token's device on the issuer; the SEQ that carries it."""
    r = issuer.api.delete_device(tok["device_id"])
    assert r.status == 204, r
    return issuer.issuer_seq()


def test_issuer_stopped(fleet):
    _, issuer, user, vs, _ = start_fleet(fleet, "tdff_", (("web1", "strict"), ("web2", "best_effort")), "3s")
    web1, web2 = vs["web1"], vs["web2"]
    t, other = token(issuer, user), token(issuer, user)
    assert verify(web1, t).status == 200 and verify(web2, t).status == 200  # control

    issuer.send_signal(signal.SIGSTOP)
    try:
        r = answer(web1, t, 503)
        assert r.error == "unavailable" and "MaxStaleness" in r.message, r
        assert verify(web2, t).status == 200  # best_effort: accepted until the token expires
    finally:
        issuer.send_signal(signal.SIGCONT)
    answer(web1, t, 200)
    assert verify(web2, t).status == 200
    # The feed flows again: a revocation reaches both, the other device is untouched.
    seq = revoke(issuer, t)
    for v in (web1, web2):
        v.wait_seq(seq)
        assert verify(v, t).error == "token_revoked"
        assert verify(v, other).status == 200


def test_issuer_restart_loses_no_revocation(fleet):
    _, issuer, user, vs, _ = start_fleet(fleet, "tdff_", (("web1", "strict"),), "30s")
    web1 = vs["web1"]
    before, after, keep = token(issuer, user), token(issuer, user), token(issuer, user)
    for t in (before, after, keep):
        assert verify(web1, t).status == 200

    # Revoked just before the stop: the verifier may or may not have it yet.
    seq1 = revoke(issuer, before)
    issuer.restart()
    assert issuer.issuer_seq() == seq1  # the SEQ goes on from the store, not from 0
    seq2 = revoke(issuer, after)
    assert seq2 > seq1
    web1.wait_seq(seq2)
    assert verify(web1, before).error == "token_revoked"
    assert verify(web1, after).error == "token_revoked"
    assert verify(web1, keep).status == 200  # control
    st = web1.feed_state()
    assert before["device_id"] in st["devices"] and after["device_id"] in st["devices"], st


def test_verifier_restart_keeps_the_revoked_set(fleet):
    ca, issuer, user, vs, sshds = start_fleet(fleet, "tdff_", (("web2", "best_effort"),), "3s")
    web2 = vs["web2"]
    gone, keep = token(issuer, user, ["sshd@web2"]), token(issuer, user, ["sshd@web2"])
    seq = revoke(issuer, gone)
    web2.wait_seq(seq)

    # Cut off from the issuer, the verifier restarts: what it knew comes
    # from its state directory (SEQ, revoked devices, the JWKS).
    fleet.issuer_link(False)
    web2.restart()
    assert web2.feed_seq() == seq
    assert verify(web2, gone).error == "token_revoked"
    assert verify(web2, keep).status == 200  # control: best_effort, stale but not revoked
    laptop = Laptop(fleet, user, ca.cert)
    assert laptop.ssh(sshds["web2"], token=keep["access_token"]), sshds["web2"].last
    assert not laptop.ssh(sshds["web2"], token=gone["access_token"])
    assert "Permission denied" in sshds["web2"].last.stderr, sshds["web2"].last
    assert web2.feed_seq() == seq  # nothing came from the issuer meanwhile
    fleet.issuer_link(True)


def test_signing_key_rotation(fleet):
    _, issuer, user, vs, _ = start_fleet(fleet, "tdff_", (("web1", "strict"),), "6s")
    web1 = vs["web1"]
    old = token(issuer, user)
    assert verify(web1, old).status == 200
    refreshes = web1.feed_state()["counters"]["jwks_refreshes"]
    refused = web1.feed_state()["counters"]["feed_refused"]

    # Rotate: a new key file (the newest is the active one), reload.
    path = os.path.join(issuer.state, "keys", "rotated.pem")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(DeviceKey().pkcs8_pem())
    assert "reloaded" in issuer.reload()
    new = token(issuer, user)
    assert jwt_parts(new["access_token"])[0]["kid"] != jwt_parts(old["access_token"])[0]["kid"]
    first = verify(web1, new)
    assert first.status in (200, 503), first  # 503: "fetching it" (no network call on the verify path)
    # Within JWKS_COOLDOWN (10 s) of the verifier's last JWKS fetch (here:
    # its start): the unknown kid ends the long poll, the JWKS is fetched,
    # and the first feed answer signed by the new key is applied, not
    # counted as forged.
    answer(web1, new, 200)
    assert verify(web1, old).status == 200  # control: the old key still verifies
    assert web1.feed_state()["counters"]["jwks_refreshes"] > refreshes
    # The feed, now signed by the new key, still applies.
    seq = revoke(issuer, old)
    web1.wait_seq(seq)
    assert verify(web1, old).error == "token_revoked"
    assert verify(web1, new).status == 200
    assert web1.feed_state()["counters"]["feed_refused"] == refused  # the new key's answers are the issuer's


def test_fake_issuer_keys_and_feed_answers(fleet):
    ca, issuer, user, _, _ = start_fleet(fleet, "tdff_", (), "6s", public_url=FAKE_URL)
    cert, key = ca.issue("fake-issuer", [ISSUER_IP], [])
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    fake = FakeIssuer(issuer.socket, fleet.listen("iss", ISSUER_IP, 8444), tls)
    fleet.closers.append(fake.close)
    fake.replay = issuer.api.request("GET", "/api/revocations?after=0").body  # seq 0
    v = Node(fleet, "web1", "web1", verifier_config(ca.cert, "web1", "best_effort", "6s", issuer=FAKE_URL))
    v.wait_seq(0)

    # The good key of a JWKS that also holds unusable ones verifies.
    a, b = token(issuer, user), token(issuer, user)
    assert verify(v, a).status == 200
    assert "left out" in v.log() and "kid ed448" in v.log() and "kid broken" in v.log()
    assert sample(metrics(v), "tokend_verifier_jwks_keys") == 1
    v.wait_seq(revoke(issuer, a))
    assert verify(v, a).error == "token_revoked"

    # Forged: a stranger's signature, claiming b's device is revoked.
    fake.forged_device = b["device_id"]
    answers_refused(v, fake, "forge", "forged", "not signed by an issuer key")
    assert verify(v, b).status == 200  # nothing of it applied
    assert b["device_id"] not in v.feed_state()["devices"]

    # Replayed: the issuer's own, valid signature, but an answer to after=0.
    answers_refused(v, fake, "replay", "replayed", "an answer to another request")
    assert verify(v, a).error == "token_revoked"  # the revoked set stays
    assert v.feed_seq() >= 1  # and its SEQ: not back to the replayed 0

    # Control: back to the real feed, it goes on from where it was.
    fake.mode = "proxy"
    v.wait_seq(revoke(issuer, b))
    assert verify(v, b).error == "token_revoked"
    assert sample(metrics(v), "tokend_verifier_feed_answers_total", result="applied") >= 2
