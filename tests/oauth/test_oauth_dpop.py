# SPDX-License-Identifier: MIT
"""RFC 9449 DPoP proofs at POST /oauth2/token (daemon/tokend-dpop.c), made by
a JOSE library nobody here wrote: authlib.jose (Debian python3-authlib) holds
the device's Ed25519 key (OKPKey) and signs each dpop+jwt with the public key
in its jwk header. A key-bound device refreshes with one (control); every
hostile proof — wrong htm, wrong htu, stale or future iat, a replayed jti, a
jwk with the private "d", the jwk of another key, a signature by another
key, alg none and HS256, an oversized proof, the wrong typ — is 400
invalid_dpop_proof with the reason in the log, and does not consume the
refresh token: the correct refresh that follows succeeds. Over the socket
(htu = the metadata's http://localhost/oauth2/token when there is no issuer
URL) and over the HTTPS listener (htu = [Network] PublicURL/oauth2/token, on
the socket too: the metadata's token_endpoint is the one URL)."""

import json
import os
import secrets
import sys
import time
import urllib.parse

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from tdharness import DeviceKey, b64url, jwt_parts, pam_user, system_user, tokend_factory  # noqa: E402,F401
from tdnet import NetClient, https_tokend  # noqa: E402

jose = pytest.importorskip("authlib.jose", reason="python3-authlib is not installed")

FORM = "application/x-www-form-urlencoded"


class DPoPKey:
    """A client's DPoP key pair, entirely in authlib.jose."""

    def __init__(self):
        self.key = jose.OKPKey.generate_key("Ed25519", is_private=True)

    @property
    def jwk(self):
        return self.key.as_dict(is_private=False)

    @property
    def device_key(self):
        """The raw public key, base64url: the password grant's device_key."""
        return self.jwk["x"]

    def proof(self, htu, htm="POST", iat=None, jti=None, header=None, claims=None, alg="EdDSA", key=None):
        h = {"typ": "dpop+jwt", "alg": alg, "jwk": self.jwk}
        h.update(header or {})
        c = {"jti": jti or secrets.token_urlsafe(24), "htm": htm, "htu": htu,
             "iat": int(time.time()) if iat is None else iat}
        c.update(claims or {})
        jws = jose.JsonWebSignature(algorithms=[alg])
        return jws.serialize_compact({k: v for k, v in h.items() if v is not None},
                                     json.dumps(c).encode(), key or self.key).decode()


def token(c, params, headers=None):
    return c.request("POST", "/oauth2/token", urllib.parse.urlencode(params), headers=headers, content_type=FORM)


def refresh(c, tok, dpop=None, **params):
    """The refresh_token grant; dpop: the DPoP header."""
    return token(c, dict(grant_type="refresh_token", refresh_token=tok["refresh_token"],
                         client_id=tok["device_id"], **params), headers={"DPoP": dpop} if dpop else None)


def ok(r):
    assert r.status == 200, r
    return r.json


def refused(r, error="invalid_dpop_proof"):
    assert r.status == 400 and r.json["error"] == error, r
    assert r.headers.get("cache-control") == "no-store", r
    return r.json["error_description"]


def enrol(c, user, key):
    t = ok(token(c, dict(grant_type="password", username=user.name, password=user.password,
                         device_key=key.device_key)))
    # the device's tokens are bound to the key authlib computes the thumbprint of (RFC 7638)
    assert jwt_parts(t["access_token"])[1]["cnf"]["jkt"] == key.key.thumbprint()
    return t


def hostile_proofs(key, htu):
    """(name, DPoP header value, what the log must say) — each must be refused."""
    other = DPoPKey()
    jwk_d = dict(key.key.as_dict(is_private=True))  # the private "d" in the header
    now = int(time.time())
    hs = jose.OctKey.import_key(key.device_key.encode())  # RFC 8725 §2.1: HMAC keyed with the public key
    h64 = b64url(json.dumps({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}))
    p64 = b64url(json.dumps({"jti": secrets.token_urlsafe(24), "htm": "POST", "htu": htu, "iat": now}))
    good = key.proof(htu)
    h, p, s = good.split(".")
    return [
        ("wrong htm", key.proof(htu, htm="GET"), "htm is not"),
        ("wrong htu: another path", key.proof(htu.replace("/oauth2/token", "/api/auth/refresh")), "htu is not"),
        ("wrong htu: another host", key.proof(htu.replace("://", "://evil.")), "htu is not"),
        ("wrong htu: relative", key.proof("/oauth2/token"), "htu is not"),
        ("stale iat", key.proof(htu, iat=now - 3600), "iat is too old"),
        ("future iat", key.proof(htu, iat=now + 3600), "iat is too old"),
        ("no jti", key.proof(htu, claims={"jti": None}), "jti is missing"),
        ("short jti", key.proof(htu, jti="abc"), "jti is missing"),
        ("jwk with private d", key.proof(htu, header={"jwk": jwk_d}), "private key member"),
        ("another key's jwk and signature", other.proof(htu), "thumbprint"),
        ("another key's jwk, signed by the device key", key.proof(htu, header={"jwk": other.jwk}), "thumbprint"),
        ("the device's jwk, signed by another key", key.proof(htu, key=other.key), "signature"),
        ("alg none", h64 + "." + p64 + ".", "not a compact JWS"),
        ("alg none with a signature", h64 + "." + p + "." + s, "alg must be"),
        ("HS256", key.proof(htu, alg="HS256", key=hs), "alg must be"),
        ("no jwk", key.proof(htu, header={"jwk": None}), "no jwk"),
        ("typ of tokend's own proof", key.proof(htu, header={"typ": "tokend-proof+jwt"}), "typ"),
        ("oversized proof", key.proof(htu, claims={"pad": "x" * 2100}), "longer than 2048"),
        ("oversized JWS header", key.proof(htu, header={"pad": "y" * 1000}), "at most 1024"),
        ("tampered payload", h + "." + b64url(json.dumps({"jti": secrets.token_urlsafe(24), "htm": "POST",
                                                           "htu": htu, "iat": now})) + "." + s, "signature"),
        ("not a JWS", "hello", "not a compact JWS"),
    ]


def check_dpop_refresh(d, c, user, htu):
    key = DPoPKey()
    t = enrol(c, user, key)
    # control: a correct proof refreshes, and the answer says the token is DPoP-bound (RFC 9449 §5)
    proof = key.proof(htu)
    t2 = ok(refresh(c, t, proof))
    assert t2["token_type"] == "DPoP" and t2["refresh_token"] != t["refresh_token"]
    assert jwt_parts(t2["access_token"])[1]["cnf"]["jkt"] == key.key.thumbprint()
    cases = hostile_proofs(key, htu) + [("replayed jti", proof, "already used")]
    for name, bad, why in cases:
        desc = refused(refresh(c, t2, bad))
        assert why in desc, (name, desc)
        d.wait_log("invalid_dpop_proof for ")
        d.wait_log(desc)  # the reason is in the log
    # none of them consumed t2: the correct refresh that follows succeeds, and rotates
    t3 = ok(refresh(c, t2, key.proof(htu)))
    assert t3["refresh_token"] != t2["refresh_token"]
    # a proof made for this request, with a query and a fragment in htu (RFC 9449 §4.3: ignored)
    t4 = ok(refresh(c, t3, key.proof(htu + "?x=1#frag")))
    # without any proof a key-bound device is refused as before (invalid_grant), nothing consumed
    refused(refresh(c, t4), "invalid_grant")
    ok(refresh(c, t4, key.proof(htu)))
    return key


def test_dpop_refresh_over_the_socket(tokend_factory, pam_user):  # noqa: F811
    user, service = pam_user
    d = tokend_factory("[Login]\nPAMService=%s\nFailureDelay=0\n" % service)
    c = d.client()
    htu = ok(c.request("GET", "/.well-known/oauth-authorization-server"))["token_endpoint"]
    assert htu == "http://localhost/oauth2/token"
    meta = ok(c.request("GET", "/.well-known/oauth-authorization-server"))
    assert meta["dpop_signing_alg_values_supported"] == ["EdDSA"]
    check_dpop_refresh(d, c, user, htu)
    # scheme and host compare case-insensitively, the default port is the same URL
    key = DPoPKey()
    t = enrol(c, user, key)
    t = ok(refresh(c, t, key.proof("HTTP://LocalHost:80/oauth2/token")))
    t = ok(refresh(c, t, key.proof("http://localhost/oauth2/../oauth2/token")))
    refused(refresh(c, t, key.proof("https://localhost/oauth2/token")))  # another scheme, another URL
    refused(refresh(c, t, key.proof("http://localhost:8080/oauth2/token")))
    ok(refresh(c, t, key.proof(htu)))


def test_dpop_only_where_it_binds(tokend_factory, pam_user):  # noqa: F811
    """A DPoP header is refused where tokend would not bind it, rather than ignored."""
    user, service = pam_user
    d = tokend_factory("[Login]\nPAMService=%s\nFailureDelay=0\n" % service)
    c = d.client()
    htu = "http://localhost/oauth2/token"
    key = DPoPKey()
    login = dict(grant_type="password", username=user.name, password=user.password)
    refused(token(c, login, headers={"DPoP": key.proof(htu)}))  # the password grant binds by device_key
    plain = ok(token(c, login))  # control: the same login without the header, a device with no key
    assert "cnf" not in jwt_parts(plain["access_token"])[1]
    assert "no key" in refused(refresh(c, plain, key.proof(htu)))
    plain2 = ok(refresh(c, plain))  # not consumed; a keyless device refreshes without a proof
    assert plain2["token_type"] == "Bearer"
    # tokend's own proof form still works in the form's proof parameter, not in the DPoP header
    dk = DeviceKey()
    t = ok(token(c, dict(login, device_key=dk.public)))
    own = dk.proof(t["device_id"], htu="/oauth2/token")
    assert "typ" in refused(refresh(c, t, own))
    t2 = ok(refresh(c, t, proof=own))
    assert t2["token_type"] == "Bearer"


def test_dpop_refresh_over_https(tokend_factory, pam_user, tmp_path):  # noqa: F811
    """On the network listener htu is [Network] PublicURL's token endpoint."""
    user, service = pam_user
    d, ca, url, port = https_tokend(tokend_factory, str(tmp_path / "ca"),
                                    "[Login]\nPAMService=%s\nFailureDelay=0\n" % service)
    c = NetClient("127.0.0.1", port, cafile=ca.cert)
    meta = ok(c.request("GET", "/.well-known/oauth-authorization-server"))
    assert meta["token_endpoint"] == url + "/oauth2/token"
    dk = check_dpop_refresh(d, c, user, meta["token_endpoint"])
    # the URL tokend names without an issuer URL is not this one; the socket's metadata names
    # the same token endpoint as the listener's (one issuer), so the same htu works there
    t = enrol(c, user, dk)
    refused(refresh(c, t, dk.proof("http://localhost/oauth2/token")))
    sock = d.client()
    assert ok(sock.request("GET", "/.well-known/oauth-authorization-server"))["token_endpoint"] == \
        meta["token_endpoint"]
    t = ok(refresh(sock, t, dk.proof(meta["token_endpoint"])))
    refused(refresh(sock, t, dk.proof("http://localhost/oauth2/token")))
    ok(refresh(c, t, dk.proof(meta["token_endpoint"])))
