# SPDX-License-Identifier: MIT
"""Keys across two issuers on one real PostgreSQL database (pgharness),
without sharing a private key: a token signed by issuer A verifies through
issuer B (socket verify and RFC 7662 introspection) by the public key A
published in the store, while a token of a key nobody published, or
published as something that is not a usable public key, is refused."""

import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))

from pgharness import postgresql  # noqa: F401,E402
from tdharness import DeviceKey, jwt_parts, tokend_factory  # noqa: F401,E402
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
