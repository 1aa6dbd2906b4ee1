# SPDX-License-Identifier: MIT
"""Permission rules on the bus, proven with a second, unprivileged uid (a
throwaway user calling through runuser): the caller is the uid the bus
daemon reports, a user sees and revokes only its own devices and gets only
its own tokens; root may name others. The same rules as the socket."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdbus import CLIENTS, BusError, bus, bus_tokend, system_user  # noqa: E402,F401
from tdharness import ME, jwt_parts, need_root  # noqa: E402


@pytest.fixture(params=CLIENTS)
def setup(request, system_user, bus_tokend):  # noqa: F811
    """(daemon, root's client, the user's client, the user)."""
    need_root("run D-Bus clients as a second uid")
    user = system_user("tdbus_")
    d = bus_tokend()
    return d, d.bus(request.param), d.bus(request.param, user=user.name), user


def forbidden(client, message_part, method, *args):
    with pytest.raises(BusError) as e:
        client.call(method, *args)
    if client.kind != "busctl":  # busctl prints only the message
        assert e.value.name == "io.tokend.Error.Forbidden", e.value
    assert message_part in e.value.message, e.value


def test_tokens_are_for_the_callers_own_uid(setup):
    d, root, me, user = setup
    tok = me.call("IssueToken", "", [])
    assert tok["user"] == user.name and tok["uid"] == user.uid
    claims = jwt_parts(tok["access_token"])[1]
    assert claims["sub"] == user.name and claims["uid"] == user.uid
    assert me.call("IssueToken", user.name, ["sshd"])["user"] == user.name  # naming oneself is fine
    forbidden(me, "only root may ask for another user's token", "IssueToken", "root", [])
    assert [a for a in d.audit("token_denied") if a["caller_uid"] == user.uid and a["user"] == "root"]
    # the audit log names the bus caller's uid and pid
    (row,) = d.audit("token", device_id=tok["device_id"])
    assert row["caller_uid"] == user.uid and row["caller_pid"] > 0
    # root may ask for anyone's
    other = root.call("IssueToken", user.name, [])
    assert other["user"] == user.name and other["uid"] == user.uid
    # anyone may verify any token
    assert me.call("Verify", other["access_token"], user.name, "sshd")["sub"] == user.name
    assert me.call("Verify", root.call("IssueToken", "", [])["access_token"], "", "")["sub"] == ME.pw_name


def test_own_devices_only_root_names_others(setup):
    d, root, me, user = setup
    mine = me.call("IssueToken", "", [])["device_id"]
    roots = root.call("IssueToken", "", [])["device_id"]

    assert {x["id"] for x in me.call("ListDevices", "")} == {mine}
    assert {x["user"] for x in me.call("ListDevices", user.name)} == {user.name}
    forbidden(me, "only an admin may list another user's devices", "ListDevices", "root")
    # root: "" lists everyone's, a name filters
    assert {mine, roots} <= {x["id"] for x in root.call("ListDevices", "")}
    assert {x["id"] for x in root.call("ListDevices", user.name)} == {mine}

    forbidden(me, "belongs to another user", "RevokeDevice", roots)
    assert [a for a in d.audit("revoke_denied", device_id=roots) if a["caller_uid"] == user.uid]
    assert not {x["id"]: x for x in root.call("ListDevices", "")}[roots]["revoked"]
    assert me.call("RevokeDevice", mine) is None
    assert {x["id"]: x for x in me.call("ListDevices", "")}[mine]["revoke_reason"] == "owner"

    again = me.call("IssueToken", "", [])["device_id"]
    assert root.call("RevokeDevice", again) is None  # root revokes anyone's
    assert {x["id"]: x for x in me.call("ListDevices", "")}[again]["revoke_reason"] == "admin"


def test_refresh_and_logout_need_only_the_secret(setup):
    """Holding the token is what counts, whoever calls (as on the socket)."""
    d, root, me, user = setup
    tok = root.call("IssueToken", user.name, [])
    new = me.call("Refresh", tok["refresh_token"], tok["device_id"], "")
    assert new["user"] == user.name
    assert me.call("Logout", new["access_token"]) is None
    assert {x["id"]: x for x in me.call("ListDevices", "")}[tok["device_id"]]["revoke_reason"] == "logout"
