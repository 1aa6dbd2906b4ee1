# SPDX-License-Identifier: MIT
"""tokend's socket API end to end: every endpoint's success path through both
http.client and `curl --unix-socket`, and every error status of DESIGN.md
reached on purpose (400, 401 ×3, 403, 404, 405, 413, 415, 500, 503; 429 is
in test_tokend_login.py and test_tokend_peer.py)."""

import os
import sqlite3
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import ME, NO_STEP_UP, jwt_parts, tokend_factory, transport  # noqa: E402,F401 (fixtures)

DOCS_ON = "[API]\nEnableDocs=yes\n"


def assert_error(r, status, error=None):
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    assert isinstance(r.json, dict) and set(r.json) == {"error", "message"}, r
    assert r.message, r
    if error:
        assert r.error == error, r


def assert_tokens(r, user=ME.pw_name, uid=ME.pw_uid):
    assert r.status == 200, r
    j = r.json
    assert j["token_type"] == "Bearer"
    assert j["expires_in"] > 0 and j["refresh_expires_in"] > 0
    assert len(j["refresh_token"]) >= 43
    assert j["device_id"].startswith("dev_")
    assert j["user"]["name"] == user and j["user"]["uid"] == uid and isinstance(j["user"]["groups"], list)
    assert r.headers.get("cache-control") == "no-store"
    header, claims = jwt_parts(j["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "EdDSA"
    assert claims["sub"] == user and claims["uid"] == uid and claims["client_id"] == j["device_id"]
    return j


def test_every_endpoint_succeeds(tokend_factory, transport):  # noqa: F811
    d = tokend_factory(DOCS_ON + NO_STEP_UP)  # peer login for sudo, as any uid
    c = d.client(transport)

    tok = assert_tokens(c.issue_token(device_name="laptop", audience=["sshd", "sudo"]))
    header, claims = jwt_parts(tok["access_token"])
    assert claims["aud"] == ["sshd", "sudo"]

    r = c.verify(tok["access_token"], user=ME.pw_name, service="sudo")
    assert r.status == 200, r
    assert r.json["active"] is True and r.json["sub"] == ME.pw_name and r.json["uid"] == ME.pw_uid
    assert r.json["client_id"] == tok["device_id"] and r.json["aud"] == ["sshd", "sudo"]
    assert r.json["exp"] == claims["exp"] and r.json["iat"] == claims["iat"]

    new = assert_tokens(c.refresh(tok["refresh_token"], tok["device_id"]))
    assert new["refresh_token"] != tok["refresh_token"] and new["device_id"] == tok["device_id"]
    assert c.verify(new["access_token"]).status == 200

    r = c.devices()
    assert r.status == 200, r
    (dev,) = [x for x in r.json["devices"] if x["id"] == tok["device_id"]]
    assert dev["name"] == "laptop" and dev["user"] == ME.pw_name and dev["revoked"] is False

    r = c.jwks()
    assert r.status == 200, r
    assert header["kid"] in [k["kid"] for k in r.json["keys"]]
    assert all("d" not in k for k in r.json["keys"]), "private key material in the JWKS"

    r = c.api_doc()
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/json") and "openapi" in r.json

    r = c.logout(new["access_token"])
    assert r.status == 204 and r.body == b"", r
    assert_error(c.verify(new["access_token"]), 401, "token_revoked")
    assert_error(c.refresh(new["refresh_token"], new["device_id"]), 401, "token_revoked")
    (dev,) = [x for x in c.devices().json["devices"] if x["id"] == tok["device_id"]]
    assert dev["revoked"] is True

    other = assert_tokens(c.issue_token())
    r = c.delete_device(other["device_id"])
    assert r.status == 204 and r.body == b"", r
    assert_error(c.verify(other["access_token"]), 401, "token_revoked")


def test_api_doc_is_off_by_default(tokend_factory, transport):  # noqa: F811
    d = tokend_factory()
    assert_error(d.client(transport).api_doc(), 404)
    assert d.client(transport).jwks().status == 200  # control


def test_revoke_kills_the_token_at_once(tokend_factory):  # noqa: F811
    d = tokend_factory()
    tok = assert_tokens(d.api.issue_token())
    keep = assert_tokens(d.api.issue_token())
    assert d.api.verify(tok["access_token"]).status == 200
    assert d.api.delete_device(tok["device_id"]).status == 204
    # no sleep: the very next verification already refuses it
    assert_error(d.api.verify(tok["access_token"]), 401, "token_revoked")
    assert_error(d.api.refresh(tok["refresh_token"], tok["device_id"]), 401, "token_revoked")
    assert d.api.verify(keep["access_token"]).status == 200  # other devices unaffected


BIG = b'{"pad":"' + b"a" * 70000 + b'"}'

# (id, method, path, body, content type, status, error)
BAD_REQUESTS = [
    ("bad-json", "POST", "/api/auth/verify", b'{"token":', "application/json", 400, "invalid_request"),
    ("not-an-object", "POST", "/api/auth/verify", b"[1,2]", "application/json", 400, "invalid_request"),
    ("empty-body", "POST", "/api/auth/verify", b"", "application/json", 400, "invalid_request"),
    ("invalid-utf8", "POST", "/api/auth/verify", b'{"token":"\xff\xfe"}', "application/json", 400,
     "invalid_request"),
    ("nul-escape", "POST", "/api/auth/verify", b'{"token":"a\\u0000b"}', "application/json", 400,
     "invalid_request"),
    ("duplicate-member", "POST", "/api/auth/verify", b'{"token":"a.b.c","token":"x"}', "application/json", 400,
     "invalid_request"),
    ("missing-device-id", "POST", "/api/auth/refresh", {"refresh_token": "x" * 43}, "application/json", 400,
     "invalid_request"),
    ("missing-token", "POST", "/api/auth/verify", {}, "application/json", 400, "invalid_request"),
    ("missing-password", "POST", "/api/auth/login", {"username": "root"}, "application/json", 400,
     "invalid_request"),
    ("token-not-a-string", "POST", "/api/auth/verify", {"token": 5}, "application/json", 400, "invalid_request"),
    ("audience-not-a-string", "POST", "/api/auth/token", {"audience": 5}, "application/json", 400,
     "invalid_request"),
    ("ttl-a-string", "POST", "/api/auth/token", {"ttl": "60"}, "application/json", 400, "invalid_request"),
    ("username-an-array", "POST", "/api/auth/login", {"username": ["root"], "password": "x"},
     "application/json", 400, "invalid_request"),
    ("bad-audience-name", "POST", "/api/auth/token", {"audience": "no spaces"}, "application/json", 400,
     "invalid_request"),
    ("garbage-token", "POST", "/api/auth/verify", {"token": "a.b.c"}, "application/json", 401, "invalid_token"),
    ("unknown-refresh", "POST", "/api/auth/refresh", {"refresh_token": "x" * 43, "device_id": "dev_" + "A" * 16},
     "application/json", 401, "invalid_token"),
    ("logout-without-bearer", "POST", "/api/auth/logout", None, None, 401, "invalid_token"),
    ("no-such-path", "GET", "/nope", None, None, 404, None),
    ("no-such-device", "DELETE", "/api/devices/dev_" + "A" * 16, None, None, 404, None),
    ("not-a-device-id", "DELETE", "/api/devices/xyz", None, None, 404, None),
    ("text-plain", "POST", "/api/auth/verify", b'{"token":"a.b.c"}', "text/plain", 415, "invalid_request"),
    ("no-content-type", "POST", "/api/auth/verify", b'{"token":"a.b.c"}', None, 415, "invalid_request"),
    ("body-over-64k", "POST", "/api/auth/token", BIG, "application/json", 413, None),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_answers(tokend_factory, transport, case):  # noqa: F811
    _, method, path, body, ctype, status, error = case
    d = tokend_factory()
    c = d.client(transport)
    assert_error(c.request(method, path, body, content_type=ctype), status, error)
    assert c.jwks().status == 200  # control: still serving


# (method, path, allowed)
WRONG_METHODS = [("GET", "/api/auth/token", "POST"), ("PUT", "/api/auth/verify", "POST"),
                 ("POST", "/.well-known/jwks.json", "GET"), ("DELETE", "/api/devices", "GET"),
                 ("GET", "/api/devices/dev_" + "A" * 16, "DELETE"), ("POST", "/api", "GET")]


@pytest.mark.parametrize("method,path,allowed", WRONG_METHODS)
def test_wrong_method_is_405_with_allow(tokend_factory, transport, method, path, allowed):  # noqa: F811
    d = tokend_factory()
    r = d.client(transport).request(method, path)
    assert_error(r, 405)
    assert r.headers.get("allow") == allowed, r


def test_json_content_type_parameters_are_accepted(tokend_factory, transport):  # noqa: F811
    c = tokend_factory().client(transport)
    for ctype in ("application/json; charset=utf-8", "Application/JSON"):
        assert_tokens(c.request("POST", "/api/auth/token", b'{"ttl":60}', content_type=ctype))
    # an empty body without a content type means "all defaults"
    assert_tokens(c.request("POST", "/api/auth/token"))
    assert_error(c.request("POST", "/api/auth/token", b'{"ttl":60}', content_type="application/jsonp"), 415)


def test_ttl_shortens_but_never_lengthens(tokend_factory):  # noqa: F811
    c = tokend_factory().api
    assert assert_tokens(c.issue_token(ttl=60))["expires_in"] == 60
    assert assert_tokens(c.issue_token(ttl=10 ** 6))["expires_in"] == 900
    assert_error(c.issue_token(ttl=0), 400, "invalid_request")


def test_verify_refuses_tampered_and_foreign_audience(tokend_factory):  # noqa: F811
    d = tokend_factory()
    tok = assert_tokens(d.api.issue_token())
    at = tok["access_token"]
    assert d.api.verify(at, service="sshd").status == 200  # control
    h, p, s = at.split(".")
    flipped = s[:10] + ("A" if s[10] != "A" else "B") + s[11:]
    assert_error(d.api.verify("%s.%s.%s" % (h, p, flipped)), 401, "invalid_token")
    # sudo must be asked for explicitly: a default token is no sudo token
    assert_error(d.api.verify(at, service="sudo"), 401, "invalid_token")
    assert_error(d.api.verify(at, user="daemon" if ME.pw_name != "daemon" else "bin"), 401, "invalid_token")


def test_expired_token(tokend_factory, transport):  # noqa: F811
    d = tokend_factory("[Token]\nAccessTokenLifetime=2s\nClockSkew=0\n")
    c = d.client(transport)
    tok = assert_tokens(c.issue_token())
    assert tok["expires_in"] == 2
    assert c.verify(tok["access_token"]).status == 200
    exp = jwt_parts(tok["access_token"])[1]["exp"]
    while time.time() < exp + 1:
        time.sleep(0.2)
    assert_error(c.verify(tok["access_token"]), 401, "token_expired")
    # the refresh token outlives the access token: a fresh one verifies
    new = assert_tokens(c.refresh(tok["refresh_token"], tok["device_id"]))
    assert c.verify(new["access_token"]).status == 200


def test_peer_login_disabled_is_403(tokend_factory, transport):  # noqa: F811
    d = tokend_factory("[Login]\nAllowPeerLogin=no\n")
    assert_error(d.client(transport).issue_token(), 403, "forbidden")
    assert d.client(transport).jwks().status == 200


def test_audience_outside_allowed_is_403(tokend_factory):  # noqa: F811
    d = tokend_factory("[Token]\nAllowedAudiences=sshd sudo\nDefaultAudience=sshd\nStepUpAudiences=none\n")
    assert assert_tokens(d.api.issue_token(audience="sudo"))
    assert_error(d.api.issue_token(audience="login"), 403, "forbidden")


def test_small_max_request_bytes(tokend_factory, transport):  # noqa: F811
    d = tokend_factory("[Limits]\nMaxRequestBytes=1024\n")
    c = d.client(transport)
    ok = b'{"pad":"' + b"a" * 900 + b'"}'
    assert_tokens(c.request("POST", "/api/auth/token", ok))
    big = b'{"pad":"' + b"a" * 1100 + b'"}'
    assert_error(c.request("POST", "/api/auth/token", big), 413)
    # without Content-Length (chunked) the cap holds while the body streams in
    r = c.request("POST", "/api/auth/token", big, headers={"Transfer-Encoding": "chunked"}) \
        if transport == "curl" else c.request("POST", "/api/auth/token", iter([big[:600], big[600:]]))
    assert_error(r, 413)
    assert_tokens(c.request("POST", "/api/auth/token", ok))


def test_oversized_body_without_expect_is_answered_not_reset(tokend_factory):  # noqa: F811
    """A client that sends a too-large body straight away (no Expect:
    100-continue) must read a 413, not die on a reset connection: tokend
    drains bodies up to 1 MiB before answering."""
    import subprocess
    d = tokend_factory("[Limits]\nMaxRequestBytes=1024\n")
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
            "--unix-socket", d.socket, "-H", "Content-Type: application/json", "-H", "Expect:",
            "--data-binary", "@-", "http://localhost/api/auth/token"]
    ok = subprocess.run(argv, input=b'{"pad":"' + b"a" * 900 + b'"}', capture_output=True, check=False)
    assert (ok.returncode, ok.stdout) == (0, b"200"), ok  # control
    big = b'{"pad":"' + b"a" * (512 * 1024) + b'"}'
    for _ in range(20):
        p = subprocess.run(argv, input=big, capture_output=True, check=False)
        assert (p.returncode, p.stdout) == (0, b"413"), p
    assert d.api.issue_token().status == 200


def test_token_over_max_length_is_500_with_reason(tokend_factory, transport):  # noqa: F811
    d = tokend_factory("[Token]\nMaxLength=200\n")
    c = d.client(transport)
    r = c.issue_token()
    assert_error(r, 500, "internal_error")
    assert "MaxLength=200" in r.message, r
    assert c.devices().json["devices"] == [], "a device was enrolled for a token that was never handed out"


def test_database_locked_is_503(tokend_factory, transport):  # noqa: F811
    d = tokend_factory()
    c = d.client(transport)
    lock = sqlite3.connect(d.db_path, isolation_level=None, timeout=5)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # held longer than tokend's 2 s busy timeout
        r = c.issue_token()
        assert_error(r, 503, "unavailable")
        assert "busy" in r.message
        assert r.headers.get("retry-after") == "1", r
        assert c.jwks().status == 200  # what needs no database still works
        lock.execute("COMMIT")
    finally:
        lock.close()
    assert_tokens(c.issue_token())  # recovers once the lock is gone
