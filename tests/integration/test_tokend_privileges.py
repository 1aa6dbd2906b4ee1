# SPDX-License-Identifier: MIT
"""Privilege matrix over the socket API: {root, admin-group member, owner,
other user} × every endpoint, against a device D that belongs to the owner.
Every cross-user action is refused (403, and D is untouched), every allowed
one succeeds. Step-up audiences (sudo) come from peer login or a refresh of a
peer-login device only for root. Password login (anyone) is in test_tokend_login.py; the D-Bus
methods have their own matrix in tests/bus/."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import Tokend, role_users  # noqa: E402

ROLES = ("root", "admin", "owner", "other")
OK, DENIED = "ok", "denied"


@pytest.fixture(scope="module")
def world():
    """(daemon, a client per role, the owner), made once for the module."""
    with role_users("tdpriv_") as (group, admin, owner, other):
        d = Tokend("[Login]\nAdminGroup=%s\n[API]\nEnableDocs=yes\n" % group).start()
        try:
            clients = {"root": d.client(), "admin": d.client(user=admin.name), "owner": d.client(user=owner.name),
                       "other": d.client(user=other.name)}
            yield d, clients, owner, {"root": 0, "admin": admin.uid, "owner": owner.uid, "other": other.uid}
        finally:
            d.close()


def owner_device(clients, owner):
    r = clients["root"].issue_token(user=owner.name, device_name="D")
    assert r.status == 200, r
    return r.json


def alive(clients, dev):
    r = clients["root"].verify(dev["access_token"])
    return r.status == 200 and r.json["active"] is True


def act_issue_self(c, dev, owner):
    r = c.issue_token()
    return OK if r.status == 200 else (DENIED if r.status == 403 else r)


def act_issue_for_owner(c, dev, owner):
    r = c.issue_token(user=owner.name)
    if r.status == 200:
        assert r.json["user"]["name"] == owner.name
        return OK
    return DENIED if r.status == 403 and r.error == "forbidden" else r


def step_up_refused(r):
    """403 naming the step-up rule ([Token] StepUpAudiences=sudo)."""
    return r.status == 403 and r.error == "forbidden" and "is a step-up audience" in r.message


def act_issue_self_sudo(c, dev, owner):
    """Peer login for sudo: only root, never a non-root caller without a password."""
    r = c.issue_token(audience="sudo")
    return OK if r.status == 200 else (DENIED if step_up_refused(r) else r)


def act_issue_for_owner_sudo(c, dev, owner):
    r = c.issue_token(user=owner.name, audience="sudo")
    if r.status == 200:
        assert r.json["user"]["name"] == owner.name
        return OK
    return DENIED if r.status == 403 and r.error == "forbidden" else r


def act_refresh_to_sudo(c, dev, owner):
    """D came from peer login: no refresh of it is a way to sudo, except root's."""
    r = c.refresh(dev["refresh_token"], dev["device_id"], audience="sudo")
    if r.status == 200:
        return OK
    assert step_up_refused(r), r
    # the refusal spent nothing: D's refresh token still works
    r = c.refresh(dev["refresh_token"], dev["device_id"], audience="sshd")
    assert r.status == 200, r
    return DENIED


def act_list_owner(c, dev, owner):
    r = c.devices(user=owner.name)
    if r.status == 200:
        assert dev["device_id"] in [x["id"] for x in r.json["devices"]]
        return OK
    return DENIED if r.status == 403 and r.error == "forbidden" else r


def act_list_default(c, dev, owner):
    """Without ?user: admins see everyone's devices, others only their own."""
    r = c.devices()
    assert r.status == 200, r
    return OK if dev["device_id"] in [x["id"] for x in r.json["devices"]] else DENIED


def act_list_owner_pages(c, dev, owner):
    """?user=owner followed page by page (limit 2, next_cursor)."""
    ids, cursor = [], None
    while True:
        r = c.devices(user=owner.name, limit=2, cursor=cursor)
        if r.status != 200:
            return DENIED if r.status == 403 and r.error == "forbidden" else r
        ids += [x["id"] for x in r.json["devices"]]
        cursor = r.json.get("next_cursor")
        if not cursor:
            break
    assert len(ids) == len(set(ids)) > 2
    return OK if dev["device_id"] in ids else r


def act_audit_owner(c, dev, owner):
    r = c.audit_log(user=owner.name, limit=5)
    if r.status == 200:
        assert dev["device_id"] in [a["device_id"] for a in r.json["audit"]]  # its "token" row, newest
        assert {a["user"] for a in r.json["audit"]} == {owner.name}
        return OK
    return DENIED if r.status == 403 and r.error == "forbidden" else r


def act_audit_default(c, dev, owner):
    """Without ?user: admins read every row, others only the rows about themselves."""
    r = c.audit_log(limit=1000)
    assert r.status == 200, r
    return OK if dev["device_id"] in [a["device_id"] for a in r.json["audit"]] else DENIED


def act_revoke(c, dev, owner):
    r = c.delete_device(dev["device_id"])
    if r.status == 204:
        return OK
    return DENIED if r.status == 403 and r.error == "forbidden" else r


def act_unlock_owner(c, dev, owner):
    r = c.post("/api/unlock", dict(user=owner.name))
    if r.status == 200:
        assert r.json["user"] == owner.name
        return OK
    return DENIED if r.status == 403 and r.error == "forbidden" else r


def act_refresh_holding_token(c, dev, owner):
    r = c.refresh(dev["refresh_token"], dev["device_id"])
    return OK if r.status == 200 else r


def act_logout_holding_token(c, dev, owner):
    r = c.logout(dev["access_token"])
    return OK if r.status == 204 else r


def act_verify(c, dev, owner):
    r = c.verify(dev["access_token"], user=owner.name)
    return OK if r.status == 200 and r.json["sub"] == owner.name else r


def act_jwks(c, dev, owner):
    r = c.jwks()
    return OK if r.status == 200 and r.json["keys"] else r


def act_api_doc(c, dev, owner):
    r = c.api_doc()
    return OK if r.status == 200 else r


# action, expected per role (root, admin, owner, other), whether an OK kills
# D, and the audit event a refusal leaves
MATRIX = [
    (act_issue_self, (OK, OK, OK, OK), False, None),
    (act_issue_for_owner, (OK, DENIED, OK, DENIED), False, "token_denied"),
    (act_issue_self_sudo, (OK, DENIED, DENIED, DENIED), False, "token_denied"),         # step-up: no password
    (act_issue_for_owner_sudo, (OK, DENIED, DENIED, DENIED), False, "token_denied"),
    (act_refresh_to_sudo, (OK, DENIED, DENIED, DENIED), False, "token_denied"),         # a peer-login device
    (act_list_owner, (OK, OK, OK, DENIED), False, None),
    (act_list_default, (OK, OK, OK, DENIED), False, None),
    (act_list_owner_pages, (OK, OK, OK, DENIED), False, None),
    (act_audit_owner, (OK, OK, OK, DENIED), False, None),
    (act_audit_default, (OK, OK, OK, DENIED), False, None),
    (act_revoke, (OK, OK, OK, DENIED), True, "revoke_denied"),
    (act_unlock_owner, (OK, OK, DENIED, DENIED), False, "unlock_denied"),  # like faillock --reset: admins
    (act_refresh_holding_token, (OK, OK, OK, OK), False, None),   # the refresh token is the credential
    (act_logout_holding_token, (OK, OK, OK, OK), True, None),     # so is the access token
    (act_verify, (OK, OK, OK, OK), False, None),
    (act_jwks, (OK, OK, OK, OK), False, None),
    (act_api_doc, (OK, OK, OK, OK), False, None),
]


@pytest.mark.parametrize("action,expected,kills,event", MATRIX, ids=[m[0].__name__[4:] for m in MATRIX])
def test_privilege_matrix(world, action, expected, kills, event):
    d, clients, owner, uids = world
    got = {}
    for role, want in zip(ROLES, expected):
        dev = owner_device(clients, owner)  # a fresh D for every caller
        before = d.audit_count(event, uids[role]) if event else 0
        outcome = action(clients[role], dev, owner)
        got[role] = outcome
        if outcome == DENIED:
            assert alive(clients, dev), "%s: a refused action by %s still changed D" % (action.__name__, role)
            if event:
                assert d.audit_count(event, uids[role]) > before, "no %s audit event for %s" % (event, role)
        elif outcome == OK and kills:
            assert not alive(clients, dev), "%s by %s answered OK but D still works" % (action.__name__, role)
    assert got == dict(zip(ROLES, expected)), got
