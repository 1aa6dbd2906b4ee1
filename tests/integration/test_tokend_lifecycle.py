# SPDX-License-Identifier: MIT
"""tokend across its lifetime: SIGTERM stops it cleanly (exit 0) and a new
start on the same state dir keeps devices, refresh-token chains, revocations
and the signing key; SIGHUP reloads the configuration and the key directory
(a new active key signs, the old one keeps verifying)."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import DeviceKey, jwt_parts, okp_thumbprint, tokend_factory  # noqa: E402,F401


def ok(r):
    assert r.status == 200, r
    return r.json


def kids(client):
    return [k["kid"] for k in ok(client.jwks())["keys"]]


def test_state_survives_a_restart(tokend_factory):  # noqa: F811
    d = tokend_factory()
    c = d.api
    (kid,) = kids(c)
    key = DeviceKey()

    kept = ok(c.issue_token(device_name="kept"))
    rotated = ok(c.refresh(kept["refresh_token"], kept["device_id"]))
    keyed = ok(c.issue_token(device_name="keyed", device_key=key.public))
    revoked = ok(c.issue_token(device_name="revoked"))
    assert c.delete_device(revoked["device_id"]).status == 204
    gone = ok(c.issue_token(device_name="logged out"))
    assert c.logout(gone["access_token"]).status == 204

    assert d.stop(signal.SIGTERM) == 0, d.log()
    assert not os.path.exists(d.socket), "the socket was left behind"
    d.start()

    assert kids(c) == [kid], "a new key was generated instead of reusing the stored one"
    assert jwt_parts(ok(c.issue_token())["access_token"])[0]["kid"] == kid
    devs = {x["name"]: x for x in ok(c.devices())["devices"]}
    assert devs["kept"]["revoked"] is False and devs["keyed"]["has_key"] is True
    assert devs["revoked"]["revoked"] is True and devs["logged out"]["revoked"] is True

    assert ok(c.verify(rotated["access_token"]))["client_id"] == kept["device_id"]
    for t in (revoked, gone):
        r = c.verify(t["access_token"])
        assert r.status == 401 and r.error == "token_revoked", r
    r = c.refresh(revoked["refresh_token"], revoked["device_id"])
    assert r.status == 401 and r.error == "token_revoked", r
    # the device key and the proof replay cache came back too
    proof = key.proof(keyed["device_id"])
    keyed2 = ok(c.refresh(keyed["refresh_token"], keyed["device_id"], proof=proof))
    assert d.restart()
    r = c.refresh(keyed2["refresh_token"], keyed2["device_id"], proof=proof)
    assert r.status == 401 and r.error == "invalid_token", r
    # the rotation chain persisted: the current token works once, the rotated one is theft
    ok(c.refresh(rotated["refresh_token"], rotated["device_id"]))
    r = c.refresh(kept["refresh_token"], kept["device_id"])
    assert r.status == 401 and r.error == "token_revoked", r


def test_sighup_activates_a_new_key(tokend_factory):  # noqa: F811
    d = tokend_factory()
    c = d.api
    (old_kid,) = kids(c)
    before = ok(c.issue_token())

    new = DeviceKey()  # any Ed25519 key will do as a signing key
    path = os.path.join(d.keys_dir, "next.pem")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(new.pkcs8_pem())
    d.write_config("[Keys]\nActive=next.pem\n")
    assert "reloaded" in d.reload()

    jwks = ok(c.jwks())["keys"]
    assert len(jwks) == 2 and old_kid in [k["kid"] for k in jwks]
    (new_jwk,) = [k for k in jwks if k["x"] == new.public]
    assert okp_thumbprint(new.public).startswith(new_jwk["kid"])
    after = ok(c.issue_token())
    assert jwt_parts(after["access_token"])[0]["kid"] == new_jwk["kid"]
    assert ok(c.verify(after["access_token"]))
    assert ok(c.verify(before["access_token"])), "a token of the previous key stopped verifying"
    assert jwt_parts(ok(c.refresh(before["refresh_token"], before["device_id"]))["access_token"])[0]["kid"] \
        == new_jwk["kid"]

    # Active= may name a kid as well
    d.write_config("[Keys]\nActive=%s\n" % old_kid)
    assert "reloaded" in d.reload()
    assert jwt_parts(ok(c.issue_token())["access_token"])[0]["kid"] == old_kid
    d.write_config("[Keys]\nActive=next.pem\n")
    assert "reloaded" in d.reload()

    # a broken configuration is refused and the running one stays
    d.write_config("[Token]\nAccessTokenLifetime=banana\n")
    assert "reload failed" in d.reload()
    assert jwt_parts(ok(c.issue_token())["access_token"])[0]["kid"] == new_jwk["kid"]
    assert d.stop() == 0
