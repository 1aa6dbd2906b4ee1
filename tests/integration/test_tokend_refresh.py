# SPDX-License-Identifier: MIT
"""Refresh-token rotation, reuse detection (the stolen-token scenario, RFC
9700) and device-key proofs (RFC 9449 style) against a real tokend."""

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import ME, DeviceKey, b64url, jwt_parts, tokend_factory, transport  # noqa: E402,F401


def ok(r):
    assert r.status == 200, r
    return r.json


def refused(r, error="invalid_token"):
    assert r.status == 401 and r.error == error, r


def device(client, device_id):
    (d,) = [x for x in ok(client.devices())["devices"] if x["id"] == device_id]
    return d


def test_every_refresh_rotates(tokend_factory, transport):  # noqa: F811
    c = tokend_factory().client(transport)
    t1 = ok(c.issue_token())
    t2 = ok(c.refresh(t1["refresh_token"], t1["device_id"]))
    t3 = ok(c.refresh(t2["refresh_token"], t2["device_id"]))
    assert len({t1["refresh_token"], t2["refresh_token"], t3["refresh_token"]}) == 3
    assert len({jwt_parts(t["access_token"])[1]["jti"] for t in (t1, t2, t3)}) == 3
    assert t1["device_id"] == t2["device_id"] == t3["device_id"]
    for t in (t1, t2, t3):  # rotation alone does not revoke access tokens
        assert c.verify(t["access_token"]).status == 200
    # the right token with another device id is unknown, not theft
    other = ok(c.issue_token())
    refused(c.refresh(t3["refresh_token"], other["device_id"]))
    assert ok(c.refresh(t3["refresh_token"], t3["device_id"]))


@pytest.mark.parametrize("first", ["victim", "attacker"])
def test_reused_refresh_token_kills_the_family(tokend_factory, transport, first):  # noqa: F811
    d = tokend_factory()
    c = d.client(transport)
    stolen = ok(c.issue_token())
    bystander = ok(c.issue_token())
    rt, dev = stolen["refresh_token"], stolen["device_id"]

    winner = ok(c.refresh(rt, dev))       # whoever comes first gets new tokens …
    refused(c.refresh(rt, dev), "token_revoked")  # … the second presentation is theft
    refused(c.refresh(winner["refresh_token"], dev), "token_revoked")  # the newest token dies too
    refused(c.verify(winner["access_token"]), "token_revoked")
    refused(c.verify(stolen["access_token"]), "token_revoked")
    info = device(c, dev)
    assert info["revoked"] is True and info["revoke_reason"] == "refresh_reuse"

    rows = d.audit("refresh_reuse", device_id=dev)
    assert len(rows) == 1 and rows[0]["user"] == ME.pw_name and rows[0]["caller_uid"] == ME.pw_uid, rows
    assert stolen["refresh_token"] not in str(d.audit()), "a refresh token was written into the audit log"
    # another device of the same user lives on
    assert ok(c.refresh(bystander["refresh_token"], bystander["device_id"]))


def test_refresh_token_expires(tokend_factory):  # noqa: F811
    d = tokend_factory("[Token]\nRefreshTokenLifetime=2s\n")
    c = d.api
    t1 = ok(c.issue_token())
    assert t1["refresh_expires_in"] == 2
    t2 = ok(c.refresh(t1["refresh_token"], t1["device_id"]))
    time.sleep(3)  # lifetimes are whole seconds: 3 s is past any 2 s expiry
    refused(c.refresh(t2["refresh_token"], t2["device_id"]), "token_expired")
    assert device(c, t1["device_id"])["revoked"] is False  # expiry is no theft …
    # … but replaying the rotated token still is, after its expiry too
    refused(c.refresh(t1["refresh_token"], t1["device_id"]), "token_revoked")
    assert d.audit("refresh_reuse", device_id=t1["device_id"])


def concurrent_refreshes(client, tok, n=8):
    """n threads present the same refresh token at once; their Responses."""
    barrier = threading.Barrier(n)

    def one(_):
        barrier.wait()
        return client.refresh(tok["refresh_token"], tok["device_id"])

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_racing_refreshes_issue_at_most_one_token(tokend_factory):  # noqa: F811
    c = tokend_factory().api
    tok = ok(c.issue_token())
    answers = concurrent_refreshes(c, tok)
    winners = [r for r in answers if r.status == 200]
    assert len(winners) == 1, answers
    assert all(r.status == 401 for r in answers if r.status != 200), answers
    # without a grace period a double presentation is theft: the family is dead
    assert device(c, tok["device_id"])["revoked"] is True
    for w in winners:
        assert c.verify(w.json["access_token"]).error == "token_revoked"


def test_reuse_grace_tolerates_a_double_refresh(tokend_factory):  # noqa: F811
    c = tokend_factory("[Token]\nRefreshReuseGrace=30s\n").api
    tok = ok(c.issue_token())
    answers = concurrent_refreshes(c, tok)
    winners = [r for r in answers if r.status == 200]
    assert len(winners) == 1, answers
    assert all(r.status == 401 and r.error == "invalid_token" for r in answers if r.status != 200), answers
    assert device(c, tok["device_id"])["revoked"] is False
    assert ok(c.refresh(winners[0].json["refresh_token"], tok["device_id"]))


@pytest.fixture
def keyed(tokend_factory, transport):  # noqa: F811
    """(client, device key, tokens of a device registered with that key)."""
    c = tokend_factory().client(transport)
    key = DeviceKey()
    return c, key, ok(c.issue_token(device_key=key.public))


def test_access_token_carries_the_key_thumbprint(keyed):
    c, key, tok = keyed
    assert jwt_parts(tok["access_token"])[1]["cnf"] == {"jkt": key.jkt()}
    assert device(c, tok["device_id"])["has_key"] is True
    new = ok(c.refresh(tok["refresh_token"], tok["device_id"], proof=key.proof(tok["device_id"])))
    assert jwt_parts(new["access_token"])[1]["cnf"] == {"jkt": key.jkt()}
    plain = ok(c.issue_token())
    assert "cnf" not in jwt_parts(plain["access_token"])[1]


def test_refresh_needs_a_fresh_proof_by_the_device_key(keyed):
    c, key, tok = keyed
    rt, dev = tok["refresh_token"], tok["device_id"]
    good = key.proof(dev)
    tok = ok(c.refresh(rt, dev, proof=good))
    rt = tok["refresh_token"]

    bad = {
        "missing": None,
        "replayed": good,
        "stale": key.proof(dev, iat=int(time.time()) - 120),
        "future": key.proof(dev, iat=int(time.time()) + 120),
        "other-key": DeviceKey().proof(dev),
        "other-device": key.proof("dev_" + "A" * 16),
        "wrong-htu": key.proof(dev, htu="/api/auth/token"),
        "wrong-typ": key.proof(dev, typ="JWT"),
        "short-jti": key.proof(dev, jti="short"),
        "garbage": "not.a.jws",
    }
    for name, proof in bad.items():
        r = c.refresh(rt, dev, proof=proof)
        assert r.status == 401 and r.error == "invalid_token", (name, r)
    # over the 2048-byte cap: refused before any parsing
    r = c.refresh(rt, dev, proof=key.proof(dev, jti="j" * 2100))
    assert r.status == 400 and r.error == "invalid_request" and "too long" in r.message, r

    # failed proofs neither revoke the device nor use up the refresh token
    info = device(c, dev)
    assert info["revoked"] is False
    assert c.verify(tok["access_token"]).status == 200
    assert ok(c.refresh(rt, dev, proof=key.proof(dev)))


def test_device_key_must_be_an_ed25519_point(tokend_factory):  # noqa: F811
    c = tokend_factory().api
    identity = b64url(b"\x01" + bytes(31))  # decodes, but a small-order point
    for key in ("short", "A" * 43 + "!", DeviceKey().public + "AA", identity):
        r = c.issue_token(device_key=key)
        assert r.status == 400 and r.error == "invalid_request", (key, r)
    assert ok(c.issue_token(device_key=DeviceKey().public))
