# SPDX-License-Identifier: MIT
"""Growth a caller can cause, replayed against a real tokend (issue 13,
point 2): a peer-login flood by one uid is held to [Login] PeerLoginRate a
minute (429 + Retry-After), a user's devices to [Login] MaxDevicesPerUser
(403, nothing written), and device and audit listings come in pages that
a client follows with next_cursor. Every refusal has a control that must
succeed: another uid, root, a dead device making room, a valid cursor."""

import base64
import os
import pwd
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import tdharness  # noqa: E402
from tdharness import ME, need_root, system_user, tokend_factory  # noqa: E402,F401


def ok(r):
    assert r.status == 200, r
    return r.json


def flood(d, user, n, threads=8):
    """n concurrent peer logins as user (a SystemUser) → their statuses and
    Retry-After values, from one forked child with that uid."""
    def run():
        def one(_):
            r = tdharness._python_request(d.socket, "POST", "/api/auth/token", b"{}",
                                          {"Content-Type": "application/json"}, 15)
            return r.status, r.headers.get("retry-after"), r.message

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(n)))

    return tdharness._as_user(pwd.getpwnam(user.name), run)


def devices_of(d, name):
    con = d.db()
    try:
        return con.execute("SELECT count(*) FROM devices WHERE user = ?", (name,)).fetchone()[0]
    finally:
        con.close()


# ---- peer-login rate ---------------------------------------------------------

def test_peer_login_flood_is_rate_limited_per_uid(system_user, tokend_factory):  # noqa: F811
    need_root("run requests as other uids")
    attacker, bystander = system_user(), system_user()
    d = tokend_factory()  # defaults: PeerLoginRate=10, MaxDevicesPerUser=100
    answers = flood(d, attacker, 60)
    statuses = sorted(s for s, _, _ in answers)
    assert statuses.count(200) == 10 and statuses.count(429) == 50, statuses
    for status, retry_after, message in answers:
        if status == 429:
            assert 1 <= int(retry_after) <= 60, retry_after
            assert "[Login] PeerLoginRate" in message, message
    assert devices_of(d, attacker.name) == 10
    # refusals write no audit row: only the ten enrolments did
    assert len([a for a in d.audit("token") if a["user"] == attacker.name]) == 10
    assert not [a for a in d.audit() if a["user"] == attacker.name and a["event"] != "token"]
    # controls: another uid is not throttled by the attacker's bucket; root is exempt
    assert ok(d.client(user=bystander.name).issue_token())["user"]["name"] == bystander.name
    for _ in range(12):
        ok(d.api.issue_token())


# ---- device cap --------------------------------------------------------------

def test_device_cap_refuses_new_devices_and_keeps_the_owners(system_user, tokend_factory):  # noqa: F811
    need_root("run requests as other uids")
    owner, other = system_user(), system_user()
    d = tokend_factory("[Login]\nMaxDevicesPerUser=5\nPeerLoginRate=1000\n")
    me = d.client(user=owner.name)
    # a concurrent flood gets exactly the cap: count and insert are atomic
    statuses = sorted(s for s, _, _ in flood(d, owner, 30))
    assert statuses.count(200) == 5 and statuses.count(403) == 25, statuses
    r = me.issue_token()
    assert r.status == 403 and r.error == "forbidden", r
    assert "[Login] MaxDevicesPerUser" in r.message and owner.name in r.message, r.message
    assert devices_of(d, owner.name) == 5
    assert len([a for a in d.audit("token") if a["user"] == owner.name]) == 5  # refusals wrote nothing
    # root minting for the full user is held to the same cap (the bound is on the store)
    assert d.api.issue_token(user=owner.name).status == 403
    # the owner's devices all still work (nothing was evicted to make room)
    listed = ok(me.devices())["devices"]
    assert len(listed) == 5 and not any(x["revoked"] for x in listed)
    # control: another user enrols
    ok(d.client(user=other.name).issue_token())
    # a dead (logged out) device makes room, and it is the one that goes
    victim = listed[2]["id"]
    assert me.delete_device(victim).status == 204
    fresh = ok(me.issue_token())
    ids = [x["id"] for x in ok(me.devices())["devices"]]
    assert fresh["device_id"] in ids and victim not in ids and len(ids) == 5
    assert me.issue_token().status == 403  # full again


def test_device_cap_counts_expired_devices_as_dead(tokend_factory):  # noqa: F811
    d = tokend_factory("[Login]\nMaxDevicesPerUser=2\n[Token]\nRefreshTokenLifetime=1s\n")
    ok(d.api.issue_token())
    ok(d.api.issue_token())
    assert d.api.issue_token().status == 403  # both alive: full
    time.sleep(2.5)  # lifetimes are whole seconds: 2.5 s is past any 1 s expiry
    ok(d.api.issue_token())  # the expired ones make room
    ok(d.api.issue_token())
    assert devices_of(d, ME.pw_name) == 2


# ---- paging ------------------------------------------------------------------

def all_pages(fetch, key, limit):
    """Follow next_cursor; the pages' sizes and every row."""
    sizes, rows, cursor = [], [], None
    while True:
        j = ok(fetch(limit=limit, cursor=cursor))
        sizes.append(len(j[key]))
        rows += j[key]
        cursor = j.get("next_cursor")
        if cursor is None:
            return sizes, rows
        assert isinstance(cursor, str) and 0 < len(cursor) <= 128


@pytest.fixture
def many_devices(tokend_factory):  # noqa: F811
    """A tokend where root has 250 devices (root is not rate-limited)."""
    d = tokend_factory("[Login]\nMaxDevicesPerUser=1000\n")
    with ThreadPoolExecutor(8) as pool:
        toks = list(pool.map(lambda i: ok(d.api.issue_token(device_name="box %d" % i)), range(250)))
    return d, {t["device_id"] for t in toks}


def test_250_devices_in_pages_of_100_each_exactly_once(many_devices):
    d, ids = many_devices
    sizes, rows = all_pages(lambda **kw: d.api.devices(user=ME.pw_name, **kw), "devices", 100)
    assert sizes == [100, 100, 50]
    assert len(rows) == 250 and {x["id"] for x in rows} == ids
    assert [(x["created"], x["id"]) for x in rows] == sorted((x["created"], x["id"]) for x in rows)
    # the default page is 100; a page of 1000 holds them all, without a cursor
    j = ok(d.api.devices())
    assert len(j["devices"]) == 100 and "next_cursor" in j
    j = ok(d.api.devices(limit=1000))
    assert len(j["devices"]) == 250 and "next_cursor" not in j


def cursor_text(plain):
    return base64.urlsafe_b64encode(plain.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("query", [
    {"cursor": "garbage!"}, {"cursor": "Zm9v"}, {"cursor": ""}, {"cursor": "A" * 200},
    {"cursor": cursor_text("d1:x")}, {"cursor": cursor_text("d01:dev_abc")}, {"cursor": cursor_text("a5")},
    {"cursor": cursor_text("d-1:dev_abc")}, {"cursor": cursor_text("d1:dev_ab\x00c")},
    {"limit": 0}, {"limit": 1001}, {"limit": "abc"}, {"limit": -1}, {"limit": "1e2"}, {"limit": "0100"},
    {"limit": 10 ** 12},
])
def test_bad_cursor_or_limit_is_400(many_devices, query):
    d, _ = many_devices
    r = d.api.devices(**query)
    assert r.status == 400 and r.error == "invalid_request", r
    assert ("cursor" in r.message) if "cursor" in query else ("limit must be 1-1000" in r.message), r.message
    # control: a real cursor resumes
    first = ok(d.api.devices(limit=10))
    nxt = ok(d.api.devices(limit=10, cursor=first["next_cursor"]))
    assert {x["id"] for x in first["devices"]}.isdisjoint(x["id"] for x in nxt["devices"])


def test_a_cursor_does_not_widen_what_a_user_sees(system_user, many_devices):  # noqa: F811
    need_root("run requests as another uid")
    d, _ = many_devices
    user = system_user()
    mine = ok(d.client(user=user.name).issue_token())["device_id"]
    roots = ok(d.api.devices(limit=5))["next_cursor"]
    # root's cursor in the user's listing still lists only the user's devices
    j = ok(d.client(user=user.name).devices(cursor=roots))
    assert all(x["user"] == user.name for x in j["devices"])
    assert [x["id"] for x in ok(d.client(user=user.name).devices())["devices"]] == [mine]


# ---- audit listing -----------------------------------------------------------

def test_audit_listing_rules_and_pages(system_user, tokend_factory):  # noqa: F811
    need_root("run requests as other uids")
    user, other = system_user(), system_user()
    d = tokend_factory()
    me, them = d.client(user=user.name), d.client(user=other.name)
    for _ in range(5):
        ok(me.issue_token())
    ok(them.issue_token())
    ok(d.api.issue_token())
    assert me.issue_token(user="root").status == 403  # a token_denied row about root, by the user

    # a user reads the rows about themselves, newest first, page by page
    sizes, rows = all_pages(lambda **kw: me.audit_log(**kw), "audit", 2)
    assert sizes == [2, 2, 1]
    assert [r["event"] for r in rows] == ["token"] * 5 and {r["user"] for r in rows} == {user.name}
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert all(r["caller_uid"] == user.uid for r in rows)
    assert ok(me.audit_log(user=user.name))["audit"] == rows
    # … and no one else's
    r = me.audit_log(user="root")
    assert r.status == 403 and r.error == "forbidden", r
    # admins (root) read all, or one user's
    everyone = ok(d.api.audit_log(limit=1000))["audit"]
    assert {user.name, other.name, "root"} <= {r["user"] for r in everyone}
    assert len(ok(d.api.audit_log(user=other.name))["audit"]) == 1
    # a device cursor is not an audit cursor
    dev_cursor = ok(d.api.devices(limit=1))["next_cursor"]
    r = d.api.audit_log(cursor=dev_cursor)
    assert r.status == 400 and r.error == "invalid_request" and "cursor" in r.message, r
    r = d.api.audit_log(limit=0)
    assert r.status == 400 and "limit must be 1-1000" in r.message, r
