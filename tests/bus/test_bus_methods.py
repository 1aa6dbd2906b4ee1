# SPDX-License-Identifier: MIT
"""Every method and property of io.tokend.Tokend1, called with busctl, gdbus
and python3-dbus against a real tokend on a private dbus-daemon; answers
agree with the socket API and errors come back as io.tokend.Error.*."""

import json
import os
import re
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdbus import CLIENTS, BusError, bus, bus_tokend, system_user  # noqa: E402,F401
from tdharness import ME, NO_STEP_UP, DeviceKey, jwt_parts, need_root, pam_user  # noqa: E402,F401 (fixture)

TOKEN_KEYS = {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in", "device_id",
              "user", "uid", "groups"}
FAILURE_DELAY = 5  # [Login] FailureDelay in test_login_with_a_password: long next to one bus call


def refused(client, name, message_part, method, *args, **kw):
    """The call fails with D-Bus error name (busctl shows only the message)
    and a human message containing message_part."""
    with pytest.raises(BusError) as e:
        client.call(method, *args, **kw)
    if client.kind != "busctl":
        assert e.value.name == name, e.value
    assert message_part in e.value.message, e.value
    return e.value


@pytest.fixture(params=CLIENTS)
def client(request):
    return request.param


def test_properties(bus_tokend, client):  # noqa: F811
    d = bus_tokend("[Token]\nIssuer=bus-test-issuer\n")
    c = d.bus(client)
    assert c.get_property("Issuer") == "bus-test-issuer"
    assert c.get_property("Algorithms") == ["EdDSA"]
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?.*", c.get_property("Version"))


def test_properties_follow_a_reload(bus_tokend):  # noqa: F811
    from cryptography.hazmat.primitives import serialization as s
    from cryptography.hazmat.primitives.asymmetric import ec
    d = bus_tokend()
    c = d.bus("python")
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8,
                                                                s.NoEncryption())
    path = os.path.join(d.keys_dir, "es256.pem")  # the newest file: it signs
    with open(path, "wb") as f:
        f.write(pem)
    os.chmod(path, 0o600)
    d.write_config("[Token]\nIssuer=reloaded\n")
    assert "reloaded:" in d.reload()
    assert c.get_property("Algorithms") == ["ES256", "EdDSA"]
    assert c.get_property("Issuer") == "reloaded"
    assert jwt_parts(c.call("IssueToken", "", [])["access_token"])[0]["alg"] == "ES256"


def test_issue_verify_list_revoke(bus_tokend, client):  # noqa: F811
    d = bus_tokend(NO_STEP_UP)  # peer login for sudo, as any uid
    c = d.bus(client)
    tok = c.call("IssueToken", "", ["sudo"])
    assert set(tok) == TOKEN_KEYS, tok
    assert tok["token_type"] == "Bearer" and tok["user"] == ME.pw_name and tok["uid"] == ME.pw_uid
    assert tok["expires_in"] == 900 and tok["refresh_expires_in"] == 7 * 86400
    assert tok["device_id"].startswith("dev_") and tok["groups"] and all(isinstance(g, str) for g in tok["groups"])
    header, claims = jwt_parts(tok["access_token"])
    assert claims["aud"] == ["sudo"] and claims["sub"] == ME.pw_name and claims["client_id"] == tok["device_id"]

    # the same rules as the socket: the token verifies for sudo, not for sshd
    v = c.call("Verify", tok["access_token"], ME.pw_name, "sudo")
    assert v["active"] is True and v["sub"] == ME.pw_name and v["aud"] == ["sudo"] and v["uid"] == ME.pw_uid
    assert v["client_id"] == tok["device_id"] and v["jti"] == claims["jti"] and v["exp"] == claims["exp"]
    refused(c, "io.tokend.Error.InvalidToken", "not for service sshd", "Verify", tok["access_token"], "", "sshd")
    refused(c, "io.tokend.Error.InvalidToken", "another user", "Verify", tok["access_token"], "daemon", "")
    # both front ends see one state
    assert d.api.verify(tok["access_token"], service="sudo").status == 200
    default = c.call("IssueToken", "", [])  # empty audience → [Token] DefaultAudience
    assert jwt_parts(default["access_token"])[1]["aud"] == ["sshd", "login", "su"]

    devs = {x["id"]: x for x in c.call("ListDevices", "")}
    assert {tok["device_id"], default["device_id"]} <= set(devs)
    dev = devs[tok["device_id"]]
    assert dev["user"] == ME.pw_name and dev["uid"] == ME.pw_uid and dev["name"] == "peer login"
    assert dev["revoked"] is False and dev["has_key"] is False and isinstance(dev["created"], int)
    assert {x["id"] for x in c.call("ListDevices", ME.pw_name)} == set(devs)

    assert c.call("RevokeDevice", tok["device_id"]) is None
    refused(c, "io.tokend.Error.TokenRevoked", "revoked", "Verify", tok["access_token"], "", "")
    assert d.api.verify(tok["access_token"]).error == "token_revoked"
    dev = {x["id"]: x for x in c.call("ListDevices", "")}[tok["device_id"]]
    assert dev["revoked"] is True and dev["revoke_reason"] == "owner" and dev["revoked_at"] > 0
    assert c.call("Verify", default["access_token"], "", "")["active"] is True  # the other device lives on
    refused(c, "io.tokend.Error.NotFound", "no such device", "RevokeDevice", "dev_AAAAAAAAAAAAAAAA")
    refused(c, "io.tokend.Error.NotFound", "no such device", "RevokeDevice", "")


def test_refresh_rotates_and_logout_revokes(bus_tokend, client):  # noqa: F811
    d = bus_tokend()
    c = d.bus(client)
    t1 = c.call("IssueToken", "", [])
    t2 = c.call("Refresh", t1["refresh_token"], t1["device_id"], "")
    assert set(t2) == TOKEN_KEYS and t2["device_id"] == t1["device_id"]
    assert t2["refresh_token"] != t1["refresh_token"] and t2["access_token"] != t1["access_token"]
    # a refresh token rotated over the bus is spent on the socket too: theft
    assert d.api.refresh(t1["refresh_token"], t1["device_id"]).error == "token_revoked"
    refused(c, "io.tokend.Error.TokenRevoked", "revoked", "Refresh", t2["refresh_token"], t2["device_id"], "")

    t3 = c.call("IssueToken", "", [])
    assert c.call("Logout", t3["access_token"]) is None
    refused(c, "io.tokend.Error.TokenRevoked", "revoked", "Verify", t3["access_token"], "", "")
    refused(c, "io.tokend.Error.TokenRevoked", "revoked", "Logout", t3["access_token"])
    refused(c, "io.tokend.Error.InvalidToken", "malformed", "Logout", "not.a.token")
    refused(c, "io.tokend.Error.InvalidArgs", "required", "Logout", "")
    live = c.call("IssueToken", "", [])
    refused(c, "io.tokend.Error.InvalidToken", "unknown refresh token", "Refresh", "x" * 43, live["device_id"], "")
    refused(c, "io.tokend.Error.InvalidToken", "unknown refresh token", "Refresh", "", "", "")


def test_refresh_of_a_device_with_a_key_needs_its_proof(bus_tokend):  # noqa: F811
    d = bus_tokend()
    key = DeviceKey()
    t1 = d.api.issue_token(device_key=key.public).json  # device keys are enrolled over the socket
    for kind in CLIENTS:
        c = d.bus(kind)
        refused(c, "io.tokend.Error.InvalidToken", "needs a proof", "Refresh", t1["refresh_token"],
                t1["device_id"], "")
        refused(c, "io.tokend.Error.InvalidToken", "not signed by this device",
                "Refresh", t1["refresh_token"], t1["device_id"], DeviceKey().proof(t1["device_id"]))
        proof = key.proof(t1["device_id"])  # the same proof as for POST /api/auth/refresh
        t1 = c.call("Refresh", t1["refresh_token"], t1["device_id"], proof)
        claims = jwt_parts(t1["access_token"])[1]
        assert claims["cnf"]["jkt"] == key.jkt()
        refused(c, "io.tokend.Error.InvalidToken", "already used", "Refresh", t1["refresh_token"],
                t1["device_id"], proof)


def test_get_jwks(bus_tokend, client):  # noqa: F811
    d = bus_tokend()
    jwks = json.loads(d.bus(client).call("GetJWKS"))
    assert jwks == d.api.jwks().json
    (k,) = jwks["keys"]
    assert k["kty"] == "OKP" and k["alg"] == "EdDSA" and "d" not in k


def test_errors_are_mapped(bus_tokend, client):  # noqa: F811
    d = bus_tokend("[Token]\nClockSkew=0\nDefaultAudience=sshd\nAllowedAudiences=sshd sudo\nStepUpAudiences=none\n")
    c = d.bus(client)
    refused(c, "io.tokend.Error.InvalidToken", "malformed", "Verify", "a.b.c", "", "")
    refused(c, "io.tokend.Error.InvalidToken", "malformed", "Verify", "-rf.b.c", "", "")  # not an option
    refused(c, "io.tokend.Error.InvalidArgs", "token is required", "Verify", "", "", "")
    refused(c, "io.tokend.Error.InvalidArgs", "service must be", "Verify", "a.b.c", "", "bad service!")
    refused(c, "io.tokend.Error.InvalidArgs", "audience names", "IssueToken", "", ["bad aud!"])
    refused(c, "io.tokend.Error.InvalidArgs", "at most 16", "IssueToken", "", ["sshd"] * 17)
    refused(c, "io.tokend.Error.Forbidden", "AllowedAudiences", "IssueToken", "", ["login"])
    if os.geteuid() == 0:  # only root may name another user at all
        refused(c, "io.tokend.Error.InvalidArgs", "no such user", "IssueToken", "no-such-user-tdbus", [])
    else:
        refused(c, "io.tokend.Error.Forbidden", "only root", "IssueToken", "no-such-user-tdbus", [])
    refused(c, "io.tokend.Error.InvalidArgs", "not a valid user name", "ListDevices", "bad name!")
    short = d.api.issue_token(ttl=1).json["access_token"]
    time.sleep(2.1)  # ttl is whole seconds and ClockSkew=0: 2.1 s is past it
    refused(c, "io.tokend.Error.TokenExpired", "expired", "Verify", short, "", "")
    assert c.call("IssueToken", "", ["sshd", "sudo"])["device_id"]  # control: a valid request still works


def test_login_with_a_password(pam_user, bus_tokend, client):  # noqa: F811
    user, service = pam_user
    d = bus_tokend("[Login]\nPAMService=%s\nMaxFailures=2\nFailureWindow=1h\nFailureDelay=%ds\n" % (
        service, FAILURE_DELAY))
    c = d.bus(client)
    tok = c.call("Login", user.name, user.password, "bus laptop")
    assert set(tok) == TOKEN_KEYS and tok["user"] == user.name and tok["uid"] == user.uid
    assert c.call("Verify", tok["access_token"], user.name, "sshd")["sub"] == user.name
    (dev,) = [x for x in d.bus(client).call("ListDevices", user.name) if x["id"] == tok["device_id"]]
    assert dev["name"] == "bus laptop"
    assert [a for a in d.audit("login", device_id=tok["device_id"]) if a["caller_uid"] == ME.pw_uid]
    assert user.password not in d.log()

    refused(c, "io.tokend.Error.InvalidArgs", "device_name must be", "Login", user.name, user.password, "\x01")
    refused(c, "io.tokend.Error.InvalidArgs", "password must be", "Login", user.name, "", "")
    # each failure is held back for [Login] FailureDelay, as on the socket:
    # both are decided (logged), then a later call is answered before them
    answers = {}  # from the threads; asserted here

    def fail(name, password):
        try:
            answers[name] = c.call("Login", name, password, "")
        except BusError as e:
            answers[name] = e

    threads = [threading.Thread(target=fail, args=a, daemon=True)
               for a in ((user.name, "wrong"), ("tdbus_nosuchuser", "x"))]
    for t in threads:
        t.start()
    for name in (user.name, "tdbus_nosuchuser"):
        d.wait_log("login failed for %s " % name)
    assert c.get_property("Issuer")  # the bus keeps serving meanwhile
    assert answers == {}, "a failed login was answered before FailureDelay: %r" % answers
    for t in threads:
        t.join(FAILURE_DELAY + 60)
    for name in (user.name, "tdbus_nosuchuser"):
        e = answers[name]
        assert isinstance(e, BusError) and "wrong user name or password" in e.message, (name, e)
        if client != "busctl":
            assert e.name == "io.tokend.Error.InvalidCredentials", e
    # MaxFailures=2 for this user name (the unknown name counts for itself): one
    # more failure, and now even the right password waits
    refused(c, "io.tokend.Error.InvalidCredentials", "wrong user name or password", "Login", user.name, "wrong2", "")
    refused(c, "io.tokend.Error.TooManyRequests", "retry in", "Login", user.name, user.password, "")
    assert d.api.login(user.name, user.password).status == 429  # one limit for both front ends


def test_listings_page_and_peer_login_is_rate_limited(bus_tokend, system_user):  # noqa: F811
    """ListDevicesPaged/ListAudit follow next_cursor; ListDevices still
    answers the whole list up to 1000 devices (beyond: refused, never cut
    short); IssueToken by a non-root uid counts toward [Login] PeerLoginRate."""
    need_root("call as another uid")
    user = system_user("tdbus_")
    d = bus_tokend("[Login]\nPeerLoginRate=3\nMaxDevicesPerUser=2000\n")
    c = d.bus("python")
    ids = {c.call("IssueToken", "", [])["device_id"] for _ in range(7)}
    rows, cursor, sizes = [], "", []
    while True:
        page, cursor = c.call("ListDevicesPaged", ME.pw_name, cursor, 3)
        sizes.append(len(page))
        rows += page
        if not cursor:
            break
    assert sizes == [3, 3, 1] and [x["id"] for x in rows] == [x["id"] for x in c.call("ListDevices", "")]
    assert {x["id"] for x in rows} == ids
    page, cursor = c.call("ListDevicesPaged", "", "", 0)  # 0: the default page (100)
    assert len(page) == 7 and cursor == ""
    audit, cursor = c.call("ListAudit", ME.pw_name, "", 5)
    assert len(audit) == 5 and cursor and audit[0]["event"] == "token" and audit[0]["id"] > audit[-1]["id"]
    older, _ = c.call("ListAudit", ME.pw_name, cursor, 5)
    assert older and older[0]["id"] < audit[-1]["id"]
    refused(c, "io.tokend.Error.InvalidArgs", "cursor", "ListDevicesPaged", "", "not-a-cursor", 10)
    refused(c, "io.tokend.Error.InvalidArgs", "cursor", "ListAudit", "", cursor_of(c), 10)
    refused(c, "io.tokend.Error.InvalidArgs", "limit must be 1-1000", "ListDevicesPaged", "", "", 1001)

    # the rate: three peer logins a minute for the user, then TooManyRequests; root is exempt (above)
    u = d.bus("python", user=user.name)
    for _ in range(3):
        u.call("IssueToken", "", [])
    e = refused(u, "io.tokend.Error.TooManyRequests", "[Login] PeerLoginRate", "IssueToken", "", [])
    assert "retry in" in e.message
    assert d.api.issue_token().status == 200  # control: root still enrols

    # ListDevices beyond one page of 1000: refused, pointing at the paged method
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: d.api.issue_token(), range(1000 - 8)))
    assert len(c.call("ListDevices", ME.pw_name)) == 1000  # control: exactly one page still answers
    assert d.api.issue_token().status == 200
    refused(c, "io.tokend.Error.InvalidArgs", "ListDevicesPaged", "ListDevices", ME.pw_name)


def cursor_of(c):
    """A device cursor (not an audit one)."""
    return c.call("ListDevicesPaged", "", "", 1)[1]
