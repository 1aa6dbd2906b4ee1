# SPDX-License-Identifier: MIT
"""The OAuth 2.0 endpoints over the Unix socket, against a real tokend and a
real PAM stack (pam_unix, a throwaway user): metadata (RFC 8414 + the OpenID
discovery mirror), the token endpoint (RFC 6749 password and refresh_token
grants) with every §5.2 error reached on purpose and the form-encoding edge
cases (each with a control that succeeds), introspection (RFC 7662: only
root/admins ask, an inactive token is exactly {"active":false}) and
revocation (RFC 7009). The same rules as /api/auth/*: one failed-login
limiter, one rotation chain."""

import base64
import json
import os
import sys
import time
import urllib.parse

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from tdharness import (ME, DeviceKey, jwt_parts, pam_user, role_users, system_user,  # noqa: E402,F401
                       tokend_factory)

FORM = "application/x-www-form-urlencoded"
INACTIVE = b'{"active":false}'


def form(c, path, params, headers=None, content_type=FORM):
    """POST params (a dict, or a list of pairs to repeat a name) form-encoded."""
    body = params if isinstance(params, (str, bytes)) else urllib.parse.urlencode(params)
    return c.request("POST", path, body, headers=headers, content_type=content_type)


def token(c, params, **kw):
    return form(c, "/oauth2/token", params, **kw)


def oauth_error(r, error, status=400):
    assert r.status == status and r.json and r.json.get("error") == error, r
    assert r.headers.get("cache-control") == "no-store", r
    assert isinstance(r.json.get("error_description"), str) and r.json["error_description"], r
    return r


def ok(r):
    assert r.status == 200, r
    return r.json


@pytest.fixture
def daemon(tokend_factory, pam_user):  # noqa: F811
    """(tokend with the throwaway PAM service, the user, a client)."""
    user, service = pam_user

    def make(extra=""):
        d = tokend_factory("[Login]\nPAMService=%s\nFailureDelay=0\n%s" % (service, extra))
        return d, user, d.client()
    return make


def password_grant(c, user, **extra):
    return token(c, dict(grant_type="password", username=user.name, password=user.password, **extra))


# ---- metadata ------------------------------------------------------------------

def test_metadata_names_the_issuer_and_endpoints(tokend_factory):  # noqa: F811
    for issuer, base in (("", "http://localhost"), ("https://id.example/", "https://id.example")):
        d = tokend_factory("[Token]\nIssuer=%s\n" % issuer if issuer else "")
        c = d.client()
        iss = jwt_parts(ok(c.issue_token())["access_token"])[1]["iss"]
        m = ok(c.request("GET", "/.well-known/oauth-authorization-server"))
        assert m["issuer"] == iss
        assert m["token_endpoint"] == base + "/oauth2/token"
        assert m["jwks_uri"] == base + "/.well-known/jwks.json"
        assert m["introspection_endpoint"] == base + "/oauth2/introspect"
        assert m["revocation_endpoint"] == base + "/oauth2/revoke"
        assert {"password", "refresh_token"} <= set(m["grant_types_supported"])
        assert m["token_endpoint_auth_methods_supported"] == ["none"]
        assert m["response_types_supported"] == []
        o = ok(c.request("GET", "/.well-known/openid-configuration"))
        assert {k: v for k, v in o.items() if k in m} == m
        assert o["id_token_signing_alg_values_supported"] == ["EdDSA"]
        assert o["subject_types_supported"] == ["public"]
        for k in ok(c.jwks())["keys"]:
            assert k["alg"] == "EdDSA" and k["use"] == "sig", k
        r = c.request("POST", "/.well-known/oauth-authorization-server", "")
        assert r.status == 405 and r.headers["allow"] == "GET", r


# ---- the token endpoint ----------------------------------------------------------

def test_password_grant_then_refresh(daemon):
    d, user, c = daemon()
    r = password_grant(c, user, device_name="oauth laptop")
    t = ok(r)
    assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    assert t["token_type"] == "Bearer" and t["expires_in"] > 0 and t["refresh_token"]
    claims = jwt_parts(t["access_token"])[1]
    assert claims["sub"] == user.name and claims["client_id"] == t["device_id"]
    assert c.verify(t["access_token"], user=user.name, service="sshd").status == 200
    t2 = ok(token(c, dict(grant_type="refresh_token", refresh_token=t["refresh_token"], client_id=t["device_id"])))
    assert t2["device_id"] == t["device_id"] and t2["refresh_token"] != t["refresh_token"]
    # the same rotation chain as /api/auth/refresh: replaying t's token is theft
    oauth_error(token(c, dict(grant_type="refresh_token", refresh_token=t["refresh_token"],
                              client_id=t["device_id"])), "invalid_grant")
    assert c.refresh(t2["refresh_token"], t2["device_id"]).status == 401
    assert c.verify(t2["access_token"]).status == 401


def test_client_id_through_basic_with_an_empty_password(daemon):
    d, user, c = daemon()
    t = ok(password_grant(c, user))
    basic = "Basic " + base64.b64encode((t["device_id"] + ":").encode()).decode()
    t2 = ok(token(c, dict(grant_type="refresh_token", refresh_token=t["refresh_token"]),
                  headers={"Authorization": basic}))
    assert t2["device_id"] == t["device_id"]


def test_one_failed_login_limiter_for_both_apis(daemon):
    d, user, c = daemon("MaxFailures=3\n")
    for _ in range(3):
        oauth_error(token(c, dict(grant_type="password", username=user.name, password="wrong")), "invalid_grant")
    r = c.login(user.name, user.password)  # the JSON API counts the form's failures
    assert r.status == 429 and r.headers.get("retry-after"), r
    r = password_grant(c, user)
    oauth_error(r, "too_many_requests", 429)
    assert r.headers.get("retry-after")


def test_every_section_5_2_error(daemon):
    d, user, c = daemon("MaxDevicesPerUser=1\n[Token]\nAllowedAudiences=sshd login su sudo\n")
    # invalid_request: no grant_type, a repeated parameter, missing members
    oauth_error(token(c, dict(username=user.name, password=user.password)), "invalid_request")
    oauth_error(token(c, [("grant_type", "password"), ("username", user.name), ("password", user.password),
                          ("username", user.name)]), "invalid_request")
    oauth_error(token(c, dict(grant_type="password", username=user.name)), "invalid_request")
    oauth_error(token(c, dict(grant_type="refresh_token", refresh_token="x" * 43)), "invalid_request")
    # unsupported_grant_type
    for g in ("client_credentials", "authorization_code", "PASSWORD"):
        oauth_error(token(c, dict(grant_type=g, username=user.name, password=user.password)),
                    "unsupported_grant_type")
    # invalid_client: a client secret (tokend's clients are public), another scheme
    basic = "Basic " + base64.b64encode(b"client:secret").decode()
    for auth in (basic, "Bearer abc", "Basic !!!"):
        r = oauth_error(token(c, dict(grant_type="password", username=user.name, password=user.password),
                              headers={"Authorization": auth}), "invalid_client", 401)
        assert r.headers["www-authenticate"].startswith("Basic realm="), r
    # invalid_grant: a wrong password, an unknown refresh token
    oauth_error(token(c, dict(grant_type="password", username=user.name, password="nope")), "invalid_grant")
    oauth_error(token(c, dict(grant_type="refresh_token", refresh_token="A" * 43, client_id="dev_AAAAAAAAAAAAAAAA")),
                "invalid_grant")
    # invalid_scope: an audience AllowedAudiences= does not have, too many of them
    oauth_error(password_grant(c, user, scope="ftp"), "invalid_scope")
    oauth_error(password_grant(c, user, scope=" ".join("a%d" % i for i in range(17))), "invalid_scope")
    # control: the same grant succeeds, with a scope that is allowed
    t = ok(password_grant(c, user, scope="sshd su"))
    assert jwt_parts(t["access_token"])[1]["aud"] == ["sshd", "su"]
    # unauthorized_client: the user may not enrol one more device (MaxDevicesPerUser=1)
    oauth_error(password_grant(c, user), "unauthorized_client")
    # invalid_request again: client_id twice (Basic and the form)
    basic = "Basic " + base64.b64encode((t["device_id"] + ":").encode()).decode()
    oauth_error(token(c, dict(grant_type="refresh_token", refresh_token=t["refresh_token"],
                              client_id=t["device_id"]), headers={"Authorization": basic}), "invalid_request")
    # control: the device still refreshes
    ok(token(c, dict(grant_type="refresh_token", refresh_token=t["refresh_token"], client_id=t["device_id"])))


def test_form_encoding_edge_cases(daemon):
    d, user, c = daemon()
    params = dict(grant_type="password", username=user.name, password=user.password)
    body = urllib.parse.urlencode(params)
    # the content type is checked: JSON, none, multipart are refused
    oauth_error(token(c, json.dumps(params), content_type="application/json"), "invalid_request")
    oauth_error(token(c, body, content_type=None), "invalid_request")
    oauth_error(token(c, body, content_type="multipart/form-data; boundary=x"), "invalid_request")
    # repeated parameters, also with an empty first value
    oauth_error(token(c, body + "&password=x"), "invalid_request")
    oauth_error(token(c, "grant_type=&" + body), "invalid_request")
    # a NUL byte, raw or encoded
    oauth_error(token(c, body + "&device_name=a%00b"), "invalid_request")
    oauth_error(token(c, body.encode() + b"&x=\0"), "invalid_request")
    # too many parameters
    oauth_error(token(c, body + "".join("&p%d=1" % i for i in range(40))), "invalid_request")
    # oversized: over the form cap (16 KiB) and over MaxRequestBytes
    r = token(c, body + "&pad=" + "a" * 20000)
    oauth_error(r, "invalid_request", 413)
    r = token(c, body + "&pad=" + "a" * 70000)
    assert r.status == 413 and r.headers["cache-control"] == "no-store", r
    # controls: unknown and empty parameters are ignored, '+' and %XX decode,
    # a charset parameter on the content type is fine
    ok(token(c, body + "&unknown=1&scope=&device_name=my+laptop%21", content_type=FORM + "; charset=UTF-8"))
    (dev,) = [x for x in ok(c.devices(user=user.name))["devices"] if x["name"] == "my laptop!"]
    assert dev["user"] == user.name


def test_password_with_reserved_characters(tokend_factory, system_user):  # noqa: F811
    from tdharness import UNIX_STACK, PamService
    pw = "a b+c&d=e%f\u00e9!"
    user = system_user("tdpw_", pw)
    svc = PamService(UNIX_STACK)
    try:
        d = tokend_factory("[Login]\nPAMService=%s\nFailureDelay=0\n" % svc.name)
        c = d.client()
        ok(token(c, dict(grant_type="password", username=user.name, password=pw)))
        oauth_error(token(c, dict(grant_type="password", username=user.name, password=pw.replace(" ", "+"))),
                    "invalid_grant")
    finally:
        svc.close()


def test_device_key_proof_as_form_member_not_dpop_header(daemon):
    d, user, c = daemon()
    key = DeviceKey()
    t = ok(password_grant(c, user, device_key=key.public))
    assert jwt_parts(t["access_token"])[1]["cnf"]["jkt"] == key.jkt()

    def refresh(tok, **kw):
        return token(c, dict(grant_type="refresh_token", refresh_token=tok["refresh_token"],
                             client_id=tok["device_id"], **kw.pop("params", {})), **kw)
    oauth_error(refresh(t), "invalid_grant")  # no proof
    oauth_error(refresh(t, params=dict(proof=key.proof(t["device_id"]))), "invalid_grant")  # htu of the JSON API
    proof = key.proof(t["device_id"], htu="/oauth2/token")
    oauth_error(refresh(t, params=dict(proof=proof), headers={"DPoP": proof}), "invalid_request")
    # the DPoP header takes an RFC 9449 proof (tests/oauth/test_oauth_dpop.py), not this form
    oauth_error(refresh(t, headers={"DPoP": proof}), "invalid_dpop_proof")
    t2 = ok(refresh(t, params=dict(proof=proof)))
    oauth_error(refresh(t2, params=dict(proof=proof)), "invalid_grant")  # replayed
    ok(refresh(t2, params=dict(proof=key.proof(t["device_id"], htu="/oauth2/token"))))


# ---- introspection ----------------------------------------------------------------

def test_introspection_active_and_inactive(tokend_factory):  # noqa: F811
    d = tokend_factory("[Token]\nClockSkew=0\n")
    c = d.client()
    t = ok(c.issue_token(audience=["sshd", "login"]))
    r = form(c, "/oauth2/introspect", dict(token=t["access_token"], token_type_hint="access_token"))
    i = ok(r)
    assert r.headers["cache-control"] == "no-store"
    claims = jwt_parts(t["access_token"])[1]
    assert i["active"] is True and i["token_type"] == "Bearer"
    for k in ("sub", "client_id", "aud", "iss", "exp", "iat", "jti"):
        assert i[k] == claims[k], k
    assert i["username"] == ME.pw_name and "scope" in i

    short = ok(c.issue_token(ttl=1))
    revoked = ok(c.issue_token())
    assert c.logout(revoked["access_token"]).status == 204
    h, p, s = t["access_token"].split(".")
    bad_sig = "%s.%s.%s" % (h, p, ("A" if s[0] != "A" else "B") + s[1:])
    other = tokend_factory().client()
    foreign = ok(other.issue_token())["access_token"]
    inactive = [bad_sig, "garbage", "a.b.c", revoked["access_token"], t["refresh_token"], foreign, "x" * 9000]
    deadline = time.monotonic() + 30
    while form(c, "/oauth2/introspect", dict(token=short["access_token"])).body != INACTIVE:
        assert time.monotonic() < deadline, "a 1 s token never became inactive"
        time.sleep(0.2)
    inactive.append(short["access_token"])
    for tok in inactive:
        r = form(c, "/oauth2/introspect", dict(token=tok))
        assert r.status == 200 and r.body == INACTIVE, (tok[:40], r)
    # control: the good token is still active after all that
    assert ok(form(c, "/oauth2/introspect", dict(token=t["access_token"])))["active"] is True
    oauth_error(form(c, "/oauth2/introspect", dict(token_type_hint="access_token")), "invalid_request")
    oauth_error(form(c, "/oauth2/introspect", [("token", "a"), ("token", "b")]), "invalid_request")
    oauth_error(form(c, "/oauth2/introspect", json.dumps(dict(token="a")), content_type="application/json"),
                "invalid_request")


def test_introspection_is_for_root_and_admins():
    with role_users("tdoi_") as (group, admin, owner, other):
        from tdharness import Tokend
        with Tokend("[Login]\nAdminGroup=%s\n" % group) as d:
            d.start()
            t = ok(d.client().issue_token(user=owner.name))
            for who in (owner.name, other.name):
                r = form(d.client(user=who), "/oauth2/introspect", dict(token=t["access_token"]))
                oauth_error(r, "invalid_client", 401)
                assert r.headers["www-authenticate"]
                # not even whether the token is active leaks
                assert "active" not in r.body.decode()
            assert ok(form(d.client(user=admin.name), "/oauth2/introspect",
                           dict(token=t["access_token"])))["active"] is True


# ---- revocation ----------------------------------------------------------------------

def test_revocation(tokend_factory):  # noqa: F811
    d = tokend_factory()
    c = d.client()
    t = ok(c.issue_token())

    def introspect(tok):
        return ok(form(c, "/oauth2/introspect", dict(token=tok)))["active"]

    # an access token: that token dies, its device lives on
    r = form(c, "/oauth2/revoke", dict(token=t["access_token"], token_type_hint="access_token"))
    assert r.status == 200 and r.body == b"" and r.headers["cache-control"] == "no-store", r
    assert not introspect(t["access_token"])
    t2 = ok(c.refresh(t["refresh_token"], t["device_id"]))
    assert introspect(t2["access_token"])
    # unknown or invalid tokens: 200 all the same
    for tok in ("garbage", "a.b.c", "A" * 43):
        assert form(c, "/oauth2/revoke", dict(token=tok, client_id=t["device_id"])).status == 200
    assert form(c, "/oauth2/revoke", dict(token=t["access_token"])).status == 200  # again
    # errors: no token; a refresh token without its device; another client's access token
    oauth_error(form(c, "/oauth2/revoke", dict(token_type_hint="refresh_token")), "invalid_request")
    oauth_error(form(c, "/oauth2/revoke", dict(token=t2["refresh_token"])), "invalid_request")
    other = ok(c.issue_token())
    oauth_error(form(c, "/oauth2/revoke", dict(token=t2["access_token"], client_id=other["device_id"])),
                "unauthorized_client")
    assert introspect(t2["access_token"])  # control: refused means untouched
    # a refresh token: the whole device is revoked
    assert form(c, "/oauth2/revoke", dict(token=t2["refresh_token"], client_id=t2["device_id"])).status == 200
    assert not introspect(t2["access_token"])
    assert c.refresh(t2["refresh_token"], t2["device_id"]).status == 401
    (dev,) = [x for x in ok(c.devices())["devices"] if x["id"] == t["device_id"]]
    assert dev["revoked"]
    assert introspect(other["access_token"])  # control: the other device is alive


# ---- the API explorer ------------------------------------------------------------------

def test_api_explorer_pages(tokend_factory, tmp_path):  # noqa: F811
    off = tokend_factory().client()
    for path in ("/api/docs", "/api/docs/start.js", "/api/docs/swagger-ui-bundle.js"):
        r = off.request("GET", path)
        assert r.status == 404 and "EnableDocs" in r.message, r
    docs = tmp_path / "swagger-ui"
    docs.mkdir()
    (docs / "swagger-ui-bundle.js").write_text("/* stand-in */ window.SwaggerUIBundle = function () {};\n")
    c = tokend_factory("[API]\nEnableDocs=yes\nDocsDirectory=%s\n" % docs).client()
    r = c.request("GET", "/api/docs")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html"), r
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    assert "script-src 'self' 'unsafe-inline'" not in csp and r.headers["x-frame-options"] == "DENY"
    page = r.body.decode()
    assert '<script src="/api/docs/swagger-ui-bundle.js">' in page and "<script>" not in page  # nothing inline
    r = c.request("GET", "/api/docs/start.js")
    assert r.status == 200 and r.headers["content-type"].startswith("text/javascript") and b'"/api"' in r.body
    r = c.request("GET", "/api/docs/swagger-ui-bundle.js")
    assert r.status == 200 and r.body == (docs / "swagger-ui-bundle.js").read_bytes(), r
    # a file that is not installed: 404 with the reason; other names are not files at all
    r = c.request("GET", "/api/docs/swagger-ui.css")
    assert r.status == 404 and "DocsDirectory" in r.message, r
    for path in ("/api/docs/../../etc/passwd", "/api/docs/index.html", "/api/docs/"):
        assert c.request("GET", path).status == 404, path
    assert c.request("POST", "/api/docs", "").status == 405
