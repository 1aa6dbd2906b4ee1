# SPDX-License-Identifier: MIT
"""POST /oauth2/introspect on the [Network] HTTPS listener, authenticated by a
client certificate (RFC 7662 §2.1 leaves the means to the server): any
certificate that verifies against [Network] ClientCA= for TLS client
authentication may introspect (man tokend.conf(5)). CAs and certificates
are made with the openssl CLI (tdnet.TestCA). With such a certificate a
good token answers its details; without one, with one from another CA, or
with one of the right CA but not for client authentication, 401
invalid_client; a bad token is exactly {"active":false}. Control: root on
the Unix socket introspects as before."""

import os
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from tdharness import jwt_parts, tokend_factory  # noqa: E402,F401
from tdnet import NetClient, TestCA, https_tokend  # noqa: E402

FORM = "application/x-www-form-urlencoded"


def introspect(c, token):
    return c.request("POST", "/oauth2/introspect", urllib.parse.urlencode(dict(token=token)), content_type=FORM)


def unauthorized(r):
    assert r.status == 401 and r.json["error"] == "invalid_client", r
    assert "www-authenticate" in r.headers, r
    assert "active" not in r.json, r  # nothing about the token


def test_introspection_by_client_certificate(tokend_factory, tmp_path):  # noqa: F811
    servers = TestCA(str(tmp_path / "rs"), name="resource servers CA")
    good = servers.issue("rs1.example.com", ips=(), dns=("rs1.example.com",), client=True)
    not_client = servers.issue("rs2.example.com", ips=(), dns=("rs2.example.com",))  # serverAuth only
    stranger = TestCA(str(tmp_path / "other"), name="not trusted").issue("rs3", ips=(), dns=("rs3",), client=True)
    d, ca, url, port = https_tokend(tokend_factory, str(tmp_path / "ca"), client_ca=servers.cert)
    tok = d.client().issue_token(audience=["sshd", "login"]).json  # root's peer login on the socket
    claims = jwt_parts(tok["access_token"])[1]

    def over_tls(cert=None):
        return NetClient("127.0.0.1", port, cafile=ca.cert, cert=cert)

    r = introspect(over_tls(good), tok["access_token"])
    assert r.status == 200 and r.headers["cache-control"] == "no-store", r
    i = r.json
    assert i["active"] is True and i["token_type"] == "Bearer" and i["iss"] == url == claims["iss"]
    assert i["sub"] == i["username"] == claims["sub"] and i["client_id"] == tok["device_id"]
    assert i["aud"] == claims["aud"] == ["sshd", "login"] and i["scope"] == claims.get("scope", "")
    assert (i["exp"], i["iat"], i["jti"]) == (claims["exp"], claims["iat"], claims["jti"])
    # a bad token: exactly inactive, never why
    for bad in (tok["access_token"][:-4] + "AAAA", "x", tok["refresh_token"] + "x"):
        r = introspect(over_tls(good), bad)
        assert r.status == 200 and r.body == b'{"active":false}', r
    # no certificate; one from another CA (the TLS session is made, the certificate is not trusted);
    # one of the right CA but without clientAuth: refused, and the token is not described
    for cert in (None, stranger, not_client):
        unauthorized(introspect(over_tls(cert), tok["access_token"]))
    # the certificate is no other right: peer login over TCP stays refused
    assert over_tls(good).issue_token().status == 403
    # revoked by its holder (RFC 7009), then inactive for the certificate holder too
    r = over_tls().request("POST", "/oauth2/revoke", urllib.parse.urlencode(dict(token=tok["access_token"])),
                           content_type=FORM)
    assert r.status == 200, r
    r = introspect(over_tls(good), tok["access_token"])
    assert r.status == 200 and r.body == b'{"active":false}', r
    # control: root on the socket introspects as before
    tok2 = d.client().issue_token().json
    i = introspect(d.client(), tok2["access_token"]).json
    assert i["active"] is True and i["jti"] == jwt_parts(tok2["access_token"])[1]["jti"]


def test_no_client_ca_no_network_introspection(tokend_factory, tmp_path):  # noqa: F811
    """Without ClientCA= no certificate is asked for nor trusted: 401 for everyone over TCP."""
    servers = TestCA(str(tmp_path / "rs"), name="resource servers CA")
    good = servers.issue("rs1.example.com", ips=(), dns=("rs1.example.com",), client=True)
    d, ca, url, port = https_tokend(tokend_factory, str(tmp_path / "ca"))
    tok = d.client().issue_token().json
    unauthorized(introspect(NetClient("127.0.0.1", port, cafile=ca.cert, cert=good), tok["access_token"]))
    assert introspect(d.client(), tok["access_token"]).json["active"] is True  # control
