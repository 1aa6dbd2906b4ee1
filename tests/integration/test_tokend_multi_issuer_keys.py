# SPDX-License-Identifier: MIT
"""Keys across two issuers on one real PostgreSQL database (pgharness),
without sharing a private key: a token signed by issuer A verifies through
issuer B (socket verify and RFC 7662 introspection) by the public key A
published in the store, while a token of a key nobody published, or
published as something that is not a usable public key, is refused. A
rotated key is in the JWKS of both at once but signs only once it has been
published for [Keys] PublishBeforeSigning= (the previous key signs until
then), and the retired key stays published, and verifies on both, until
its last token expired; on SQLite the first key signs at once."""

import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))

from pgharness import postgresql  # noqa: F401,E402
from tdharness import NO_STEP_UP, DeviceKey, jwt_parts, okp_thumbprint, tokend_factory  # noqa: F401,E402
from test_tokend_multi_issuer import own_kid, two_issuers  # noqa: E402

FORM = "application/x-www-form-urlencoded"


def introspect(issuer, token):
    r = issuer.api.request("POST", "/oauth2/introspect", urllib.parse.urlencode({"token": token}),
                           content_type=FORM)
    assert r.status == 200, r
    return r.json


def forge(token, key, kid):
    """token's header and claims under kid, signed by key (a DeviceKey):
    what whoever holds key could mint."""
    header, claims = jwt_parts(token)
    return key.sign_jws(dict(header, kid=kid), claims)


def okp_jwk(key, kid, **extra):
    return dict({"kty": "OKP", "crv": "Ed25519", "x": key.public, "kid": kid, "alg": "EdDSA", "use": "sig"},
                **extra)


def publish(postgresql, uri, kid, jwk):  # noqa: F811
    """A row in published_keys as an issuer (or whoever can write the database) would put it."""
    postgresql.sql("INSERT INTO published_keys VALUES ('%s', '%s', 0, 4102444800)" % (kid, json.dumps(jwk)), uri=uri)


def wait_until(cond, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_token_of_one_issuer_verified_by_the_other(tokend_factory, postgresql):  # noqa: F811
    a, b = two_issuers(tokend_factory, postgresql)
    ka = own_kid(a)
    issued = a.api.issue_token().json
    tok = issued["access_token"]
    assert jwt_parts(tok)[0]["kid"] == ka != own_kid(b)
    for issuer in (b, a):
        r = issuer.api.verify(tok)
        assert r.status == 200 and r.json["client_id"] == issued["device_id"], r
        i = introspect(issuer, tok)
        assert i["active"] is True and i["client_id"] == issued["device_id"] and i["jti"] == jwt_parts(tok)[1]["jti"]
    # and the other way round: B's token (a refresh through B) verifies through A
    nxt = b.api.refresh(issued["refresh_token"], issued["device_id"]).json
    assert jwt_parts(nxt["access_token"])[0]["kid"] == own_kid(b)
    assert a.api.verify(nxt["access_token"]).status == 200
    assert introspect(a, nxt["access_token"])["active"] is True

    # A key nobody published signs: refused, whether under its own kid or A's.
    stranger = DeviceKey()
    for kid in ("stranger", ka, own_kid(b)):
        forged = forge(tok, stranger, kid)
        for issuer in (a, b):
            r = issuer.api.verify(forged)
            assert r.status == 401 and r.error == "invalid_token", (kid, r)
            assert introspect(issuer, forged) == {"active": False}

    # Rows in the store that are not a usable public key are left out: a
    # private member, a symmetric key, a kid that is not the row's, a key
    # for encryption, not JSON. The same key published as it should be is
    # taken (control: the store is what verify reads; whoever can write the
    # database is trusted with the keys, as with devices and revocations).
    hostile = {
        "priv": okp_jwk(stranger, "priv", d=DeviceKey().public),
        "oct": {"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0", "kid": "oct", "alg": "HS256"},
        "notmine": okp_jwk(stranger, "someone-else"),
        "enc": okp_jwk(stranger, "enc", use="enc"),
    }
    for kid, jwk in hostile.items():
        publish(postgresql, a.database, kid, jwk)
    postgresql.sql("INSERT INTO published_keys VALUES ('junk', '{\"kty\":', 0, 4102444800)", uri=a.database)
    publish(postgresql, a.database, "good", okp_jwk(stranger, "good"))
    good = forge(tok, stranger, "good")
    # B reads the store again once the unknown-kid cooldown has passed
    wait_until(lambda: b.api.verify(good).status == 200, "B should read the newly published key")
    for kid in list(hostile) + ["junk"]:
        r = b.api.verify(forge(tok, stranger, kid))
        assert r.status == 401 and r.error == "invalid_token", (kid, r)
    served = sorted(k["kid"] for k in b.api.jwks().json["keys"])
    assert served == sorted([ka, own_kid(b), "good"]), served


def kid_of(token):
    return jwt_parts(token)[0]["kid"]


def kids(issuer):
    return [k["kid"] for k in issuer.api.jwks().json["keys"]]


def add_key(issuer, name="next.pem"):
    """A new Ed25519 key file in issuer's key directory (the newest, so the
    active one once reloaded); its kid."""
    key = DeviceKey()
    with open(os.open(os.path.join(issuer.keys_dir, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(key.pkcs8_pem())
    return okp_thumbprint(key.public)[:12]


def test_publish_before_signing(tokend_factory, postgresql):  # noqa: F811
    a, b = two_issuers(tokend_factory, postgresql, "[Keys]\nPublishBeforeSigning=1h\n")
    old = own_kid(a)
    first = a.api.issue_token().json
    assert kid_of(first["access_token"]) == old  # the first key: none older to wait for, it signs at once
    new = add_key(a)
    assert "reloaded" in a.reload()
    wait_until(lambda: new in kids(a) and new in kids(b), "the new key should be published to both issuers")
    held = a.api.issue_token().json
    assert kid_of(held["access_token"]) == old
    refreshed = a.api.refresh(first["refresh_token"], first["device_id"]).json
    assert kid_of(refreshed["access_token"]) == old
    a.wait_log("key %s signs in" % new)
    assert "until then key %s signs" % old in a.log()
    for issuer in (a, b):
        assert issuer.api.verify(held["access_token"]).status == 200

    # A shorter delay: the new key signs once it has been published that long.
    a.write_config(NO_STEP_UP + "[Keys]\nPublishBeforeSigning=2s\n")
    assert "reloaded" in a.reload()
    (row,) = postgresql.rows("SELECT published FROM published_keys WHERE kid = ?", (new,), uri=a.database)
    tokens = []

    def switched():
        tokens.append(a.api.issue_token().json["access_token"])
        return kid_of(tokens[-1]) == new

    wait_until(switched, "the new key should sign once published for 2 s")
    for t in tokens:  # iat is taken a moment before the key: 1 s of slack at the switch
        iat = jwt_parts(t)[1]["iat"]
        assert (kid_of(t) == old and iat <= row["published"] + 2) or \
            (kid_of(t) == new and iat >= row["published"] + 1), (kid_of(t), iat, row)
    for issuer in (a, b):
        assert issuer.api.verify(tokens[-1]).status == 200
        assert introspect(issuer, tokens[-1])["active"] is True
    assert kid_of(b.api.issue_token().json["access_token"]) == own_kid(b)  # B's own key is untouched

    # The retired key stays published until its last token expired, even
    # once its file is gone from A's directory: both still verify with it.
    last = max(jwt_parts(t)[1]["exp"] for t in tokens + [held["access_token"]] if kid_of(t) == old)
    (kept,) = postgresql.rows("SELECT retire_after FROM published_keys WHERE kid = ?", (old,), uri=a.database)
    assert kept["retire_after"] >= last, (kept, last)
    (old_file,) = [n for n in os.listdir(a.keys_dir) if n.endswith(".pem") and n != "next.pem"]
    os.unlink(os.path.join(a.keys_dir, old_file))
    assert "reloaded: 1 key(s)" in a.reload()
    for issuer in (a, b):
        assert old in kids(issuer)
        assert issuer.api.verify(held["access_token"]).status == 200, issuer
    # control: a token of a key never published is still refused
    assert b.api.verify(forge(held["access_token"], DeviceKey(), "stranger")).status == 401


def test_standalone_first_key_signs_at_once(tokend_factory):  # noqa: F811
    """SQLite, the zero-configuration path: the key generated at first start
    signs at once, whatever the delay; a rotation there waits for it too
    (by default it is 0 with SQLite: test_tokend_lifecycle's new key signs
    at once)."""
    d = tokend_factory("[Keys]\nPublishBeforeSigning=1h\n")
    kid = own_kid(d)
    t = d.api.issue_token()
    assert t.status == 200 and kid_of(t.json["access_token"]) == kid, t
    assert d.api.verify(t.json["access_token"]).status == 200
    new = add_key(d)
    assert "reloaded: 2 key(s)" in d.reload()
    assert kid_of(d.api.issue_token().json["access_token"]) == kid
    wait_until(lambda: new in kids(d), "the new key should be published")
    assert kid_of(d.api.issue_token().json["access_token"]) == kid
