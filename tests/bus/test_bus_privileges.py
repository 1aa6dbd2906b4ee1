# SPDX-License-Identifier: MIT
"""Privilege matrix on the bus: {root, admin-group member, owner, other
user} × every io.tokend.Tokend1 method and property, against a device D of
the owner; the same table as the socket's (tests/integration/
test_tokend_privileges.py). A refusal is io.tokend.Error.Forbidden and
leaves D untouched; every allowed call succeeds. Peer login (IssueToken)
for a step-up audience (sudo) is root's only. Login (anyone, password)
is in test_bus_methods.py."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdbus import BusDaemon, BusError, BusTokend  # noqa: E402
from tdharness import role_users  # noqa: E402

ROLES = ("root", "admin", "owner", "other")
OK, DENIED = "ok", "denied"


@pytest.fixture(scope="module")
def world():
    with role_users("tdbpriv_") as (group, admin, owner, other):
        bus, d = BusDaemon(), None
        try:
            d = BusTokend(bus.address, "[Login]\nAdminGroup=%s\n" % group).start()
            clients = {"root": d.bus("python"), "admin": d.bus("python", user=admin.name),
                       "owner": d.bus("python", user=owner.name), "other": d.bus("python", user=other.name)}
            yield d, clients, owner, {"root": 0, "admin": admin.uid, "owner": owner.uid, "other": other.uid}
        finally:
            if d:
                d.close()
            bus.close()


def outcome(fn):
    try:
        fn()
        return OK
    except BusError as e:
        return DENIED if e.name == "io.tokend.Error.Forbidden" else e


def owner_device(clients, owner):
    return clients["root"].call("IssueToken", owner.name, [])


def alive(clients, dev):
    try:
        return clients["root"].call("Verify", dev["access_token"], "", "")["sub"] is not None
    except BusError:
        return False


def listed(c, user):
    return [x["id"] for x in c.call("ListDevices", user)]


def paged(c, method, user, key="id"):
    """Every row of a paged listing (ListDevicesPaged, ListAudit), pages of 3."""
    rows, cursor = [], ""
    while True:
        page, cursor = c.call(method, user, cursor, 3)
        rows += page
        if not cursor:
            return [x[key] for x in rows]


def audit_rows(c, user):
    rows, _ = c.call("ListAudit", user, "", 5)
    assert rows and all(a["user"] == user for a in rows)
    return [a["device_id"] for a in rows]


MATRIX = [
    # name, call(client, D, owner), expected (root, admin, owner, other), kills D, audit event of a refusal
    ("issue_self", lambda c, dev, o: c.call("IssueToken", "", []), (OK, OK, OK, OK), False, None),
    ("issue_for_owner", lambda c, dev, o: c.call("IssueToken", o.name, []), (OK, DENIED, OK, DENIED), False,
     "token_denied"),
    # step-up audiences (sudo): peer login grants them to root only
    ("issue_self_sudo", lambda c, dev, o: c.call("IssueToken", "", ["sudo"]), (OK, DENIED, DENIED, DENIED), False,
     "token_denied"),
    ("issue_for_owner_sudo", lambda c, dev, o: c.call("IssueToken", o.name, ["sudo"]),
     (OK, DENIED, DENIED, DENIED), False, "token_denied"),
    ("list_owner", lambda c, dev, o: listed(c, o.name).index(dev["device_id"]), (OK, OK, OK, DENIED), False, None),
    ("list_owner_paged", lambda c, dev, o: paged(c, "ListDevicesPaged", o.name).index(dev["device_id"]),
     (OK, OK, OK, DENIED), False, None),
    ("audit_owner", lambda c, dev, o: audit_rows(c, o.name).index(dev["device_id"]), (OK, OK, OK, DENIED), False,
     None),
    ("revoke", lambda c, dev, o: c.call("RevokeDevice", dev["device_id"]), (OK, OK, OK, DENIED), True,
     "revoke_denied"),
    # the owner's failed-login counters: admins only, like faillock --reset
    ("unlock_owner", lambda c, dev, o: c.call("Unlock", o.name), (OK, OK, DENIED, DENIED), False, "unlock_denied"),
    ("refresh_holding_token", lambda c, dev, o: c.call("Refresh", dev["refresh_token"], dev["device_id"], ""),
     (OK, OK, OK, OK), False, None),
    ("logout_holding_token", lambda c, dev, o: c.call("Logout", dev["access_token"]), (OK, OK, OK, OK), True, None),
    ("verify", lambda c, dev, o: c.call("Verify", dev["access_token"], o.name, ""), (OK, OK, OK, OK), False, None),
    ("jwks", lambda c, dev, o: c.call("GetJWKS"), (OK, OK, OK, OK), False, None),
    ("properties", lambda c, dev, o: [c.get_property(p) for p in ("Issuer", "Algorithms", "Version")],
     (OK, OK, OK, OK), False, None),
]


@pytest.mark.parametrize("name,fn,expected,kills,event", MATRIX, ids=[m[0] for m in MATRIX])
def test_bus_privilege_matrix(world, name, fn, expected, kills, event):
    d, clients, owner, uids = world
    got = {}
    for role in ROLES:
        dev = owner_device(clients, owner)  # a fresh D for every caller
        before = d.audit_count(event, uids[role]) if event else 0
        got[role] = outcome(lambda: fn(clients[role], dev, owner))
        if got[role] == DENIED:
            assert alive(clients, dev), "%s: a refused call by %s still changed D" % (name, role)
            if event:
                assert d.audit_count(event, uids[role]) > before, "no %s audit event for %s" % (event, role)
        elif got[role] == OK and kills:
            assert not alive(clients, dev), "%s by %s answered OK but D still works" % (name, role)
    assert got == dict(zip(ROLES, expected)), got
    # the listing without a name: admins see D, the others only their own
    if name == "list_owner":
        assert {r: dev_in(clients[r], owner, clients) for r in ROLES} == {
            "root": True, "admin": True, "owner": True, "other": False}


def dev_in(c, owner, clients):
    dev = owner_device(clients, owner)
    return dev["device_id"] in listed(c, "")
