# SPDX-License-Identifier: MIT
"""Peer-credential rules (SO_PEERCRED) with a second, unprivileged uid: a
throwaway user (root only) talks to the same tokend as root does, through
http.client in a setuid child and through curl under setpriv."""

import os
import pwd
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import jwt_parts, need_root, system_user, tokend_factory, transport  # noqa: E402,F401


@pytest.fixture
def setup(system_user, tokend_factory, transport):  # noqa: F811
    """(daemon, root's client, the user's client, the user)."""
    need_root("run requests as a second uid")
    user = system_user()
    d = tokend_factory("[Login]\nMaxFailures=1\nFailureWindow=1h\n")
    return d, d.client(transport), d.client(transport, user=user.name), user


def ok(r):
    assert r.status == 200, r
    return r.json


def test_own_token_is_issued_for_the_callers_uid(setup):
    d, root, me, user = setup
    tok = ok(me.issue_token())
    assert tok["user"]["name"] == user.name and tok["user"]["uid"] == user.uid
    claims = jwt_parts(tok["access_token"])[1]
    assert claims["sub"] == user.name and claims["uid"] == user.uid
    assert ok(me.verify(tok["access_token"], user=user.name))["sub"] == user.name
    # naming oneself explicitly is fine too
    assert ok(me.issue_token(user=user.name))["user"]["name"] == user.name


def test_asking_for_another_users_token_is_403(setup):
    d, root, me, user = setup
    r = me.issue_token(user="root")
    assert r.status == 403 and r.error == "forbidden", r
    assert [a for a in d.audit("token_denied") if a["caller_uid"] == user.uid], "no audit row for the attempt"
    # root may ask for anyone's
    tok = ok(root.issue_token(user=user.name))
    assert tok["user"]["name"] == user.name and jwt_parts(tok["access_token"])[1]["uid"] == user.uid


def test_device_listing_and_revocation_rules(setup):
    d, root, me, user = setup
    mine = ok(me.issue_token(device_name="mine"))
    theirs = ok(root.issue_token(device_name="root's"))

    listed = ok(me.devices())["devices"]
    assert [x["id"] for x in listed] == [mine["device_id"]]
    assert all(x["user"] == user.name for x in listed)
    r = me.devices(user="root")
    assert r.status == 403 and r.error == "forbidden", r

    everything = {x["id"] for x in ok(root.devices())["devices"]}  # admin: all users
    assert {mine["device_id"], theirs["device_id"]} <= everything
    assert [x["id"] for x in ok(root.devices(user=user.name))["devices"]] == [mine["device_id"]]

    r = me.delete_device(theirs["device_id"])
    assert r.status == 403 and r.error == "forbidden", r
    assert ok(root.verify(theirs["access_token"]))["sub"] == "root"  # untouched
    r = me.delete_device(theirs["device_id"], bearer=mine["access_token"])
    assert r.status == 403, r
    # a bearer token names the owner, but admin rights come only from the caller's uid
    listed = ok(me.devices(bearer=theirs["access_token"]))["devices"]
    assert {x["user"] for x in listed} == {"root"}
    r = me.devices(bearer=theirs["access_token"], user=user.name)
    assert r.status == 403, r

    r = root.delete_device(mine["device_id"])  # admin revokes the user's device
    assert r.status == 204, r
    r = me.verify(mine["access_token"])
    assert r.status == 401 and r.error == "token_revoked", r
    revoked = [x for x in ok(me.devices())["devices"] if x["id"] == mine["device_id"]]
    assert revoked[0]["revoked"] is True and revoked[0]["revoke_reason"] == "admin"


def test_owner_revokes_own_device(setup):
    d, root, me, user = setup
    a = ok(me.issue_token())
    b = ok(me.issue_token())
    assert me.delete_device(a["device_id"]).status == 204
    assert me.verify(a["access_token"]).error == "token_revoked"
    # with a bearer token the owner is whoever the token names
    assert me.delete_device(b["device_id"], bearer=b["access_token"]).status == 204
    assert me.verify(b["access_token"]).error == "token_revoked"


def test_a_uid_without_a_name_gets_no_token(setup):
    d, root, me, user = setup
    ghost = pwd.struct_passwd(("ghost", "x", 54321, 54321, "", "/", "/bin/false"))
    assert not [p for p in pwd.getpwall() if p.pw_uid == ghost.pw_uid]
    anon = me.as_user(ghost)
    r = anon.issue_token()
    assert r.status == 403 and r.error == "forbidden", r
    r = anon.devices()
    assert r.status == 403, r
    tok = ok(me.issue_token())
    assert ok(anon.verify(tok["access_token"]))["sub"] == user.name  # verifying needs no identity


def test_tokens_die_with_their_user(setup):
    d, root, me, user = setup
    tok = ok(me.issue_token())
    assert ok(root.verify(tok["access_token"]))["sub"] == user.name
    user.close()  # userdel
    r = root.verify(tok["access_token"])
    assert r.status == 401 and r.error == "invalid_token", r
    r = root.refresh(tok["refresh_token"], tok["device_id"])
    assert r.status == 401 and r.error == "invalid_token", r


def test_verify_failures_of_a_user_are_rate_limited(setup):
    d, root, me, user = setup
    good = ok(me.issue_token())
    # MaxFailures=1 → a uid may fail 20 verifications per window
    for _ in range(20):
        r = me.verify("a.b.c")
        assert r.status == 401, r
    r = me.verify(good["access_token"])
    assert r.status == 429 and r.error == "too_many_requests", r
    assert int(r.headers["retry-after"]) >= 1, r
    # root (sshd, sudo via pam_jwt) is never throttled
    assert ok(root.verify(good["access_token"]))["sub"] == user.name
