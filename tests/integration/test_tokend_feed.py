# SPDX-License-Identifier: MIT
"""The issuer's revocation feed, GET /api/revocations?after=SEQ&wait=SECONDS
(DESIGN.md "Fleet"): a JWS (typ tokend-revocations+jwt) signed with the
active key, verified here against the daemon's own JWKS with
python3-cryptography. Every kind of revocation shows up after the SEQ
before it (logout: device and jti; devices revoke; refresh-token reuse);
a long poll is woken by a revocation (the test waits for the daemon's
"waits" log line, then revokes: no time is asserted); the waiting requests
are bounded; hostile parameters are 400 next to a 200 control."""

import http.client
import os
import signal
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import UnixHTTPConnection, b64url_decode, jwt_parts, tokend_factory  # noqa: E402,F401

FEED = "/api/revocations"
TYP = "tokend-revocations+jwt"


def verify_feed(daemon, jws):
    """The payload of a feed answer after checking its signature against
    the JWKS; raises on a bad one."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    header, payload = jwt_parts(jws)[:2]
    assert header["typ"] == TYP and header["alg"] == "EdDSA", header
    keys = {k["kid"]: k for k in daemon.api.jwks().json["keys"]}
    pub = Ed25519PublicKey.from_public_bytes(b64url_decode(keys[header["kid"]]["x"]))
    head, body, sig = jws.split(".")
    pub.verify(b64url_decode(sig), (head + "." + body).encode())  # raises InvalidSignature
    return payload


def feed(daemon, after=0, wait=None, client=None):
    path = "%s?after=%d" % (FEED, after) + ("" if wait is None else "&wait=%d" % wait)
    r = (client or daemon.api).request("GET", path)
    assert r.status == 200, r
    assert r.headers["content-type"] == "application/jwt", r
    p = verify_feed(daemon, r.body.decode())
    assert p["after"] == after and p["exp"] - p["iat"] == 60 and p["iss"] == "tokend", p
    return p


def device_ids(p):
    return [d["id"] for d in p["devices"]]


def peer_tokens(daemon, name):
    r = daemon.api.issue_token(device_name=name)
    assert r.status == 200, r
    return r.json


def test_every_revocation_appears_after_its_seq(tokend_factory):
    d = tokend_factory()
    p = feed(d)
    assert p["seq"] == 0 and p["devices"] == [] and p["jtis"] == [] and p["more"] is False, p

    # Logout: the device and the token's jti.
    a = peer_tokens(d, "a")
    alive = peer_tokens(d, "control")  # never revoked: never listed
    assert d.api.logout(a["access_token"]).status == 204
    p = feed(d)
    assert device_ids(p) == [a["device_id"]], p
    jti = jwt_parts(a["access_token"])[1]["jti"]
    exp = jwt_parts(a["access_token"])[1]["exp"]
    assert p["jtis"] == [{"jti": jti, "exp": exp}], p
    seq = p["seq"]
    assert seq == 2
    assert p["devices"][0]["until"] >= exp  # the device entry outlives every token it issued

    # devices revoke: only what came after seq.
    b = peer_tokens(d, "b")
    assert d.api.delete_device(b["device_id"]).status == 204
    p = feed(d, after=seq)
    assert device_ids(p) == [b["device_id"]] and p["jtis"] == [] and p["seq"] == seq + 1, p
    seq = p["seq"]

    # Reuse detection of a rotated refresh token revokes the device.
    c = peer_tokens(d, "c")
    r1 = d.api.refresh(c["refresh_token"], c["device_id"])
    assert r1.status == 200, r1
    assert d.api.refresh(c["refresh_token"], c["device_id"]).status == 401
    p = feed(d, after=seq)
    assert device_ids(p) == [c["device_id"]] and p["seq"] == seq + 1, p

    # Nothing new: the same seq, nothing listed; the control device never was.
    q = feed(d, after=p["seq"])
    assert q["seq"] == p["seq"] and q["devices"] == [] and q["jtis"] == [], q
    everything = feed(d)
    assert alive["device_id"] not in device_ids(everything)
    assert len(everything["devices"]) == 3

    # A restart keeps the log and its numbers.
    d.restart()
    assert feed(d)["seq"] == p["seq"]
    assert device_ids(feed(d)) == device_ids(everything)


def wait_in_thread(daemon, after, wait):
    out = {}

    def run():
        r = daemon.api.request("GET", "%s?after=%d&wait=%d" % (FEED, after, wait))
        out["r"] = r
    t = threading.Thread(target=run)
    t.start()
    return t, out


def wait_until(cond, what, daemon, timeout=30):
    """Wait for an event (a guard against a hang, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline and daemon.running(), what + ":\n" + daemon.log()
        time.sleep(0.05)


def waiting_lines(daemon):
    return daemon.log().count("waits after seq")


def test_long_poll_wakes_on_a_revocation(tokend_factory):
    # RequestTimeout far below the wait: a waiting request is not cut off.
    d = tokend_factory("[Limits]\nRequestTimeout=1s\n")
    a = peer_tokens(d, "a")
    t, out = wait_in_thread(d, 0, 60)
    d.wait_log("waits after seq 0")
    assert d.api.delete_device(a["device_id"]).status == 204
    t.join(30)
    assert not t.is_alive()
    r = out["r"]
    assert r.status == 200, r
    p = verify_feed(d, r.body.decode())
    assert p["seq"] == 1 and device_ids(p) == [a["device_id"]], p

    # Control: nobody revokes; the wait ends with the same seq and no entries.
    r = d.api.request("GET", FEED + "?after=1&wait=2")
    assert r.status == 200, r
    p = verify_feed(d, r.body.decode())
    assert p["seq"] == 1 and p["devices"] == [] and p["jtis"] == [], p

    # An after that is already behind answers at once, wait or not.
    assert device_ids(feed(d, after=0, wait=60)) == [a["device_id"]]


def test_waiting_requests_are_bounded_and_answered_at_stop(tokend_factory):
    # MaxConnections=8: two feed requests may wait (a quarter).
    d = tokend_factory("[Limits]\nMaxConnections=8\nMaxConnectionsPerUser=8\nReservedRootConnections=0\n")
    waiting = [wait_in_thread(d, 0, 60) for _ in range(2)]
    wait_until(lambda: waiting_lines(d) == 2, "two feed requests should wait", d)
    r = d.api.request("GET", FEED + "?after=0&wait=60")
    assert r.status == 503 and r.error == "unavailable" and "Retry-After" in {k.title() for k in r.headers}, r
    assert d.api.request("GET", FEED + "?after=0").status == 200  # control: no wait, no limit

    # SIGTERM answers the waiting requests, and the daemon exits cleanly.
    assert d.stop() == 0, d.log()
    for t, out in waiting:
        t.join(30)
        assert out["r"].status == 200, out["r"]


def test_a_kept_alive_connection_asking_again_at_stop(tokend_factory):
    """SIGTERM answers a waiting feed request; its client (a verifier)
    asks again at once on the same kept-alive connection: that request does
    not wait either (libmicrohttpd aborts the process when stopped with a
    suspended connection), and the daemon exits 0."""
    d = tokend_factory()
    conn = UnixHTTPConnection(d.socket, 30)
    try:
        conn.request("GET", FEED + "?after=0&wait=60")
        d.wait_log("waits after seq 0")
        d.send_signal(signal.SIGTERM)
        r = conn.getresponse()
        assert r.status == 200 and jwt_parts(r.read().decode())[1]["seq"] == 0, r.status
        try:
            conn.request("GET", FEED + "?after=0&wait=60")
            r = conn.getresponse()
            assert r.status == 200, r.status  # at once, or the connection closed
            r.read()
        except (http.client.RemoteDisconnected, ConnectionError):
            pass
    finally:
        conn.close()
    assert d.proc.wait(30) == 0, d.log()


@pytest.mark.parametrize("query", [
    "after=-1", "after=abc", "after=1e3", "after=0x10", "after=01", "after=", "after=99999999999999999999",
    "after=%2B1", "after=1%00", "wait=61", "wait=-1", "wait=1.5", "wait=01", "after=0&wait=600",
])
def test_hostile_parameters(tokend_factory, query):
    d = tokend_factory()
    r = d.api.request("GET", FEED + "?" + query)
    assert r.status == 400 and r.error == "invalid_request", r
    assert "after must be" in r.message, r
    # Control: the same daemon answers a good request.
    assert feed(d, after=0, wait=0)["seq"] == 0
    r = d.api.request("POST", FEED, {})
    assert r.status == 405 and r.headers["allow"] == "GET", r
