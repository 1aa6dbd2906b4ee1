# SPDX-License-Identifier: MIT
"""The RFC 8628 device grant against a real tokend and a real PAM stack:
POST /oauth2/device_authorization, polling /oauth2/token (authorization_pending,
slow_down, access_denied, expired_token, invalid_grant), the approval page
/device (plain HTML, CSRF token bound to a SameSite cookie, CSP
frame-ancestors 'none'), bounded guessing of user codes, approval by an
already logged-in device (POST /api/device/approve with its bearer token),
and tokenctl login --device / tokenctl device approve."""

import os
import re
import subprocess
import sys
import time
import urllib.parse

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from tdharness import (ME, DeviceKey, find_binary, jwt_parts, pam_user, system_user,  # noqa: E402,F401
                       tokend_factory)

FORM = "application/x-www-form-urlencoded"
GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


def form(c, path, params, headers=None, content_type=FORM):
    body = params if isinstance(params, (str, bytes)) else urllib.parse.urlencode(params)
    return c.request("POST", path, body, headers=headers, content_type=content_type)


def ok(r):
    assert r.status == 200, r
    return r.json


def start(c, **params):
    params.setdefault("client_id", "test-tv")
    return form(c, "/oauth2/device_authorization", params)


def poll(c, code, client_id="test-tv"):
    return form(c, "/oauth2/token", dict(grant_type=GRANT, device_code=code, client_id=client_id))


def poll_error(r, error):
    assert r.status == 400 and r.json["error"] == error, r
    assert r.headers["cache-control"] == "no-store"


def csrf_of(page):
    return re.search(r'name="csrf" value="([^"]+)"', page.body.decode()).group(1)


def cookie_of(page):
    return page.headers["set-cookie"].split(";")[0]


@pytest.fixture
def daemon(tokend_factory, pam_user):  # noqa: F811
    user, service = pam_user
    d = tokend_factory("[Login]\nPAMService=%s\nFailureDelay=0\n" % service)
    return d, user, d.client()


def approve_on_page(c, user_code, username, password, action="approve"):
    page = c.request("GET", "/device?user_code=" + user_code)
    assert page.status == 200, page
    return form(c, "/device", dict(user_code=user_code, csrf=csrf_of(page), username=username, password=password,
                                   action=action), headers={"Cookie": cookie_of(page)})


def test_authorization_answer(daemon):
    d, user, c = daemon
    r = start(c, scope="sshd su", device_name="living room tv")
    a = ok(r)
    assert r.headers["cache-control"] == "no-store"
    assert set(a) == {"device_code", "user_code", "verification_uri", "verification_uri_complete", "expires_in",
                      "interval"}
    code = a["user_code"].replace("-", "")
    assert len(code) == 8 and set(code) <= set(ALPHABET) and a["user_code"][4] == "-"
    assert a["verification_uri"] == "http://localhost/device"
    assert a["verification_uri_complete"] == "http://localhost/device?user_code=" + code
    assert a["expires_in"] == 600 and a["interval"] == 5 and len(a["device_code"]) == 43
    m = ok(c.request("GET", "/.well-known/oauth-authorization-server"))
    assert m["device_authorization_endpoint"] == "http://localhost/oauth2/device_authorization"
    assert GRANT in m["grant_types_supported"]
    # errors: no client_id, a repeated parameter, a control character
    for params in ([("scope", "sshd")], [("client_id", "a"), ("client_id", "b")], [("client_id", "a\nb")]):
        r = form(c, "/oauth2/device_authorization", params)
        assert r.status == 400 and r.json["error"] == "invalid_request", r


def test_approve_on_the_page_then_poll(daemon):
    d, user, c = daemon
    a = ok(start(c, scope="sshd su", device_name="living room tv"))
    poll_error(poll(c, a["device_code"]), "authorization_pending")
    poll_error(poll(c, a["device_code"]), "slow_down")  # at once again: too fast
    poll_error(poll(c, a["device_code"], client_id="another"), "invalid_grant")
    poll_error(poll(c, "x" * 43), "invalid_grant")
    code = a["user_code"].replace("-", "")
    page = c.request("GET", "/device?user_code=" + a["user_code"].lower())  # case and dash do not matter
    assert page.status == 200 and page.headers["content-type"].startswith("text/html"), page
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    body = page.body.decode()
    assert "<script" not in body and "living room tv" in body and "sshd su" in body and "test-tv" in body
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/device" in cookie
    # a wrong password: the page says so, the code stays pending
    r = form(c, "/device", dict(user_code=code, csrf=csrf_of(page), username=user.name, password="wrong",
                                action="approve"), headers={"Cookie": cookie_of(page)})
    assert r.status == 400 and "wrong user name or password" in r.body.decode(), r
    r = form(c, "/device", dict(user_code=code, csrf=csrf_of(page), username=user.name, password=user.password,
                                action="approve"), headers={"Cookie": cookie_of(page)})
    assert r.status == 200 and "Device approved" in r.body.decode(), r
    time.sleep(0)  # the next poll must wait out the interval (grown to 10 s by slow_down)
    deadline = time.monotonic() + 60
    while True:
        r = poll(c, a["device_code"])
        if r.status == 200:
            break
        assert r.json["error"] in ("slow_down", "authorization_pending") and time.monotonic() < deadline, r
        time.sleep(1)
    t = r.json
    assert r.headers["pragma"] == "no-cache"
    claims = jwt_parts(t["access_token"])[1]
    assert claims["sub"] == user.name and claims["aud"] == ["sshd", "su"]
    (dev,) = [x for x in ok(c.devices(user=user.name))["devices"] if x["id"] == t["device_id"]]
    assert dev["name"] == "living room tv"
    # the code is spent
    poll_error(poll(c, a["device_code"]), "invalid_grant")
    assert c.request("GET", "/device?user_code=" + code).status == 404
    # the tokens work: refresh through the token endpoint
    ok(form(c, "/oauth2/token", dict(grant_type="refresh_token", refresh_token=t["refresh_token"],
                                     client_id=t["device_id"])))


def test_deny(daemon):
    d, user, c = daemon
    a = ok(start(c))
    r = approve_on_page(c, a["user_code"], "", "", action="deny")
    assert r.status == 200 and "Device denied" in r.body.decode(), r
    poll_error(poll(c, a["device_code"]), "access_denied")
    poll_error(poll(c, a["device_code"]), "invalid_grant")  # gone after the answer


def test_csrf_and_form_checks(daemon):
    d, user, c = daemon
    a = ok(start(c))
    code = a["user_code"]
    page = c.request("GET", "/device?user_code=" + code)
    good = dict(user_code=code, csrf=csrf_of(page), username=user.name, password=user.password, action="approve")
    other = c.request("GET", "/device?user_code=" + code)  # another browser: another cookie
    for params, headers in (
            (dict(good, csrf="x" * 43), {"Cookie": cookie_of(page)}),   # a forged token
            (good, {}),                                                  # no cookie (a cross-site POST)
            (good, {"Cookie": cookie_of(other)}),                        # someone else's cookie
            ({k: v for k, v in good.items() if k != "csrf"}, {"Cookie": cookie_of(page)})):
        r = form(c, "/device", params, headers=headers)
        assert r.status == 403 and "expired" in r.body.decode(), r
    poll_error(poll(c, a["device_code"]), "authorization_pending")  # nothing happened
    r = form(c, "/device", urllib.parse.urlencode(good) + "&action=deny", headers={"Cookie": cookie_of(page)})
    assert r.status == 400, r
    # control: the same form with its own cookie approves
    r = form(c, "/device", good, headers={"Cookie": cookie_of(page)})
    assert r.status == 200 and "Device approved" in r.body.decode(), r
    # the page without a code, and with a bad one
    r = c.request("GET", "/device")
    assert r.status == 200 and 'name="user_code"' in r.body.decode() and "<script" not in r.body.decode()
    assert c.request("GET", "/device?user_code=BCDF-GHJ").status == 404
    assert c.request("GET", "/device?user_code=a&user_code=b").status == 400
    r = c.request("PUT", "/device", "")
    assert r.status == 405 and r.headers["allow"] == "GET, POST", r


def test_guessing_user_codes_is_bounded(daemon):
    d, user, c = daemon
    a = ok(start(c))
    statuses = [c.request("GET", "/device?user_code=BBBB-BB%02d" % 0).status]
    for i in range(12):
        statuses.append(c.request("GET", "/device?user_code=BBBBBB" + ALPHABET[i] + "B").status)
    assert statuses[:10] == [404] * 10 and set(statuses[10:]) == {429}, statuses
    r = c.request("GET", "/device?user_code=" + a["user_code"])
    assert r.status == 429 and int(r.headers["retry-after"]) > 0, r  # even the right code waits now
    # another caller is not blocked by this one's guesses
    other = d.client(user="nobody")
    assert other.request("GET", "/device?user_code=" + a["user_code"]).status == 200


def test_pending_authorizations_are_bounded_per_caller(daemon):
    d, user, c = daemon
    for _ in range(8):
        ok(start(c))
    r = start(c)
    assert r.status == 429 and r.json["error"] == "slow_down" and r.headers["retry-after"], r
    assert ok(start(d.client(user="nobody")))  # control: another caller may


def test_approval_by_a_logged_in_device(daemon):
    d, user, c = daemon
    me = ok(c.issue_token())
    a = ok(start(c, device_name="headless box"))
    r = c.request("POST", "/api/device/approve", {"user_code": a["user_code"]}, bearer=me["access_token"])
    assert r.status == 200 and r.json["approved"] is True and r.json["device_name"] == "headless box", r
    deadline = time.monotonic() + 30
    while (r := poll(c, a["device_code"])).status != 200:
        assert r.json["error"] in ("slow_down", "authorization_pending") and time.monotonic() < deadline, r
        time.sleep(1)
    assert jwt_parts(r.json["access_token"])[1]["sub"] == ME.pw_name
    # errors: no bearer, a bad one, an unknown code; another user's token
    b = ok(start(c))
    assert c.request("POST", "/api/device/approve", {"user_code": b["user_code"]}).status == 401
    assert c.request("POST", "/api/device/approve", {"user_code": b["user_code"]}, bearer="x.y.z").status == 401
    assert c.request("POST", "/api/device/approve", {"user_code": "BCDFBCDF"},
                     bearer=me["access_token"]).status == 404
    theirs = ok(c.issue_token(user=user.name))
    r = d.client(user="nobody").request("POST", "/api/device/approve", {"user_code": b["user_code"]},
                                         bearer=theirs["access_token"])
    assert r.status == 403, r
    r = c.request("POST", "/api/device/approve", {"user_code": b["user_code"], "action": "deny"},
                  bearer=me["access_token"])
    assert r.status == 200 and r.json["denied"] is True, r
    poll_error(poll(c, b["device_code"]), "access_denied")


def test_expired_token_after_a_restart_the_code_is_gone(daemon):
    d, user, c = daemon
    a = ok(start(c))
    d.restart()
    c = d.client()
    poll_error(poll(c, a["device_code"]), "invalid_grant")  # memory only: documented


def tokenctl(d, *args, input=None, env=None):
    binary = find_binary("tokenctl")
    return subprocess.Popen([binary, "--socket", d.socket, *args], stdin=subprocess.PIPE if input else None,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))


def test_tokenctl_login_device_and_device_approve(daemon, tmp_path):
    d, user, c = daemon
    env_new = {"XDG_STATE_HOME": str(tmp_path / "new")}
    env_old = {"XDG_STATE_HOME": str(tmp_path / "old")}
    p = subprocess.run([find_binary("tokenctl"), "--socket", d.socket, "login", "--peer"], capture_output=True,
                       text=True, env=dict(os.environ, **env_old))
    assert p.returncode == 0, p.stderr
    login = tokenctl(d, "login", "--device", "--device-name", "kiosk", env=env_new)
    # it prints the URL and the code, then polls
    line = ""
    deadline = time.monotonic() + 30
    while "user_code=" not in line:
        line += login.stderr.readline()
        assert time.monotonic() < deadline and login.poll() is None, line
    code = re.search(r"user_code=([A-Z]{8})", line).group(1)
    p = subprocess.run([find_binary("tokenctl"), "--socket", d.socket, "device", "approve", code],
                       capture_output=True, text=True, env=dict(os.environ, **env_old))
    assert p.returncode == 0, p.stderr
    assert "kiosk" in p.stdout
    out, err = login.communicate(timeout=60)
    assert login.returncode == 0, err
    assert "Logged in as %s" % ME.pw_name in out
    p = subprocess.run([find_binary("tokenctl"), "--socket", d.socket, "token"], capture_output=True, text=True,
                       env=dict(os.environ, **env_new))
    assert p.returncode == 0 and jwt_parts(p.stdout.strip())[1]["sub"] == ME.pw_name, p.stderr
    # the new device is key-bound: its refresh needs its proof
    claims = jwt_parts(p.stdout.strip())[1]
    assert claims.get("cnf", {}).get("jkt")
    # approving an unknown code fails with exit status 1
    p = subprocess.run([find_binary("tokenctl"), "--socket", d.socket, "device", "approve", "BCDFBCDF"],
                       capture_output=True, text=True, env=dict(os.environ, **env_old))
    assert p.returncode == 1, p
