# SPDX-License-Identifier: MIT
"""OAuth 2.0 clients nobody here wrote, against the real tokend: authlib
(python3-authlib) — the password grant, refresh, introspection and
revocation — against the [Network] HTTPS listener with a throwaway CA (made
by openssl) and, as root/admin for introspection, over the Unix socket
(requests' transport for AF_UNIX, python3-requests-unixsocket; those URLs
are http+unix://, so the libraries' https-only check is lifted with their
documented switches); requests-oauthlib (python3-requests-oauthlib) —
refresh. Discovery comes from the metadata document, as a client configured
with only the issuer would do it."""

import os
import sys
import urllib.parse

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from tdharness import jwt_parts, pam_user, system_user, tokend_factory  # noqa: E402,F401
from tdnet import https_tokend  # noqa: E402

authlib_client = pytest.importorskip("authlib.integrations.requests_client",
                                     reason="python3-authlib is not installed")
requests_unixsocket = pytest.importorskip("requests_unixsocket", reason="python3-requests-unixsocket is not installed")


@pytest.fixture
def plain_http_over_the_socket(monkeypatch):
    """The socket is local and kernel-authenticated: no TLS on it."""
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def unix_base(d):
    return "http+unix://" + urllib.parse.quote(d.socket, safe="")


def on_socket(d, url):
    """A metadata URL (http://localhost/…) as the same path on d's socket."""
    u = urllib.parse.urlsplit(url)
    assert u.netloc == "localhost", url
    return unix_base(d) + u.path


def mount(session):
    session.mount("http+unix://", requests_unixsocket.UnixAdapter())
    return session


def discover(d):
    with mount(requests_unixsocket.Session()) as s:
        r = s.get(unix_base(d) + "/.well-known/oauth-authorization-server")
        r.raise_for_status()
        m = r.json()
    return {k: on_socket(d, v) for k, v in m.items() if k.endswith("_endpoint")}


def test_authlib_over_https(tokend_factory, pam_user, tmp_path, monkeypatch):  # noqa: F811
    """The whole client side over TLS, verified against the test CA; nothing insecure allowed."""
    from authlib.integrations.base_client.errors import OAuthError
    import requests
    monkeypatch.delenv("AUTHLIB_INSECURE_TRANSPORT", raising=False)
    user, service = pam_user
    d, ca, url, _ = https_tokend(tokend_factory, str(tmp_path / "ca"),
                                 "[Login]\nPAMService=%s\nFailureDelay=0\n" % service)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca.cert)  # requests' documented trust store switch
    meta = requests.get(url + "/.well-known/oauth-authorization-server", timeout=15).json()
    assert meta["issuer"] == url and meta["token_endpoint"] == url + "/oauth2/token"
    OAuth2Session = authlib_client.OAuth2Session
    with OAuth2Session(client_id="laptop", token_endpoint_auth_method="none") as s:
        tok = s.fetch_token(meta["token_endpoint"], grant_type="password", username=user.name,
                            password=user.password)
        assert jwt_parts(tok["access_token"])[1]["iss"] == url
    with OAuth2Session(client_id=tok["device_id"], token_endpoint_auth_method="none", token=tok,
                       revocation_endpoint_auth_method="none") as s:
        new = s.refresh_token(meta["token_endpoint"])
        assert new["refresh_token"] != tok["refresh_token"]
        # no kernel identity and no client certificate over TCP: introspection is refused
        r = s.introspect_token(meta["introspection_endpoint"], token=new["access_token"])
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
        assert "www-authenticate" in {k.lower() for k in r.headers}
        r = s.revoke_token(meta["revocation_endpoint"], token=new["refresh_token"], token_type_hint="refresh_token")
        assert r.status_code == 200, r.text
        with pytest.raises(OAuthError) as e:
            s.refresh_token(meta["token_endpoint"], refresh_token=new["refresh_token"])
        assert e.value.error == "invalid_grant"
    # the socket (root) sees the same store: the device is revoked
    assert d.api.verify(new["access_token"]).error == "token_revoked"


def test_authlib_password_refresh_introspect_revoke(tokend_factory, pam_user,  # noqa: F811
                                                   plain_http_over_the_socket):
    from authlib.integrations.base_client.errors import OAuthError
    user, service = pam_user
    d = tokend_factory("[Login]\nPAMService=%s\nFailureDelay=0\n" % service)
    ep = discover(d)
    OAuth2Session = authlib_client.OAuth2Session
    with mount(OAuth2Session(client_id="laptop", token_endpoint_auth_method="none")) as s:
        tok = s.fetch_token(ep["token_endpoint"], grant_type="password", username=user.name, password=user.password)
        assert tok["token_type"] == "Bearer" and tok["refresh_token"]
        assert jwt_parts(tok["access_token"])[1]["sub"] == user.name
        with pytest.raises(OAuthError) as e:
            s.fetch_token(ep["token_endpoint"], grant_type="password", username=user.name, password="wrong")
        assert e.value.error == "invalid_grant"
    # the device id is the client id from here on
    device = tok["device_id"]
    with mount(OAuth2Session(client_id=device, token_endpoint_auth_method="none", token=tok,
                             revocation_endpoint_auth_method="none")) as s:
        new = s.refresh_token(ep["token_endpoint"])
        assert new["refresh_token"] != tok["refresh_token"] and new["device_id"] == device
        r = s.introspect_token(ep["introspection_endpoint"], token=new["access_token"])
        assert r.status_code == 200 and r.json()["active"] is True and r.json()["client_id"] == device
        r = s.revoke_token(ep["revocation_endpoint"], token=new["access_token"], token_type_hint="access_token")
        assert r.status_code == 200
        assert s.introspect_token(ep["introspection_endpoint"], token=new["access_token"]).json() == \
            {"active": False}
        # revoking the refresh token ends the device
        newer = s.refresh_token(ep["token_endpoint"], refresh_token=new["refresh_token"])
        r = s.revoke_token(ep["revocation_endpoint"], token=newer["refresh_token"], token_type_hint="refresh_token")
        assert r.status_code == 200
        assert s.introspect_token(ep["introspection_endpoint"], token=newer["access_token"]).json() == \
            {"active": False}
        with pytest.raises(OAuthError) as e:
            s.refresh_token(ep["token_endpoint"], refresh_token=newer["refresh_token"])
        assert e.value.error == "invalid_grant"


def test_requests_oauthlib_refresh(tokend_factory, plain_http_over_the_socket):  # noqa: F811
    from requests_oauthlib import OAuth2Session
    d = tokend_factory()
    tok = d.client().issue_token().json
    ep = discover(d)
    s = mount(OAuth2Session(client_id=tok["device_id"], token=tok))
    new = s.refresh_token(ep["token_endpoint"], client_id=tok["device_id"], include_client_id=True)
    assert new["refresh_token"] != tok["refresh_token"] and new["device_id"] == tok["device_id"]
    # the session now sends the new access token as its bearer
    r = s.get(unix_base(d) + "/api/devices")
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["devices"]].count(tok["device_id"]) == 1
    s.close()
