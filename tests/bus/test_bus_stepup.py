# SPDX-License-Identifier: MIT
"""Step-up audiences on the bus (issue 13 point 1), the same rule as the
socket (tests/integration/test_tokend_stepup.py): IssueToken (peer login)
never grants sudo to a non-root caller, a Login (password) does, and its
Refresh keeps it only within [Token] StepUpLifetime. D-Bus Refresh takes no
audience, so it gets DefaultAudience: named sudo here, and left without it
once the window has passed. Root only (second uids, a password user)."""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdbus import BusError, bus, bus_tokend, system_user  # noqa: E402,F401
from tdharness import jwt_parts, need_root, pam_user  # noqa: E402,F401 (fixture)

RULE = "is a step-up audience: it needs a password login within the last"
WINDOW = 4  # seconds


def aud(tok):
    return jwt_parts(tok["access_token"])[1]["aud"]


def forbidden(c, audience, window, method, *args):
    with pytest.raises(BusError) as e:
        c.call(method, *args)
    assert e.value.name == "io.tokend.Error.Forbidden", e.value
    assert "audience %s %s %s" % (audience, RULE, window) in e.value.message, e.value
    assert "StepUpAudiences=, StepUpLifetime=" in e.value.message, e.value
    return e.value.message


def test_issue_token_cannot_mint_sudo(bus_tokend, system_user):  # noqa: F811
    need_root("a second uid")
    d = bus_tokend()  # the defaults
    user = system_user("tdbsu_")
    me = d.bus("python", user=user.name)

    msg = forbidden(me, "sudo", "5min", "IssueToken", "", ["sudo"])
    assert "not a peer login" in msg, msg
    forbidden(me, "sudo", "5min", "IssueToken", "", ["sshd", "sudo"])
    forbidden(me, "sudo", "5min", "IssueToken", user.name, ["sudo"])
    assert [x for x in d.bus("python").call("ListDevices", user.name)] == []  # nothing enrolled
    assert d.audit_count("token_denied") == d.audit_count("token_denied", user.uid) == 3, d.audit("token_denied")

    # controls: sshd by peer login, sudo for root
    tok = me.call("IssueToken", "", ["sshd"])
    assert aud(tok) == ["sshd"]
    assert me.call("Verify", tok["access_token"], user.name, "sshd")["sub"] == user.name
    root = d.bus("python")
    t = root.call("IssueToken", user.name, ["sudo"])
    assert aud(t) == ["sudo"]
    assert root.call("Verify", t["access_token"], user.name, "sudo")["aud"] == ["sudo"]


def test_login_grants_sudo_for_the_window(bus_tokend, pam_user):  # noqa: F811
    user, service = pam_user
    d = bus_tokend("[Login]\nPAMService=%s\n[Token]\nStepUpLifetime=%ds\nDefaultAudience=sshd sudo\n"
                   % (service, WINDOW))
    me = d.bus("python", user=user.name)  # non-root all along

    # peer login: the default goes without sudo
    assert aud(me.call("IssueToken", "", [])) == ["sshd"]

    # control: the password login gets the whole default, sudo included, and verifies for sudo
    tok = me.call("Login", user.name, user.password, "bus laptop")
    logged_in = time.time()  # the window opened before this
    assert aud(tok) == ["sshd", "sudo"]
    assert me.call("Verify", tok["access_token"], user.name, "sudo")["sub"] == user.name
    # within the window a refresh keeps it
    tok = me.call("Refresh", tok["refresh_token"], tok["device_id"], "")
    assert aud(tok) == ["sshd", "sudo"]

    # the replay: after StepUpLifetime the refresh answers without sudo
    while time.time() < logged_in + WINDOW + 1.5:  # whole seconds: a margin of one more
        time.sleep(0.2)
    later = me.call("Refresh", tok["refresh_token"], tok["device_id"], "")
    assert aud(later) == ["sshd"]
    with pytest.raises(BusError) as e:
        me.call("Verify", later["access_token"], user.name, "sudo")
    assert e.value.name == "io.tokend.Error.InvalidToken", e.value
    assert me.call("Verify", later["access_token"], user.name, "sshd")["sub"] == user.name
    # and the socket, which can ask for sudo on refresh, is refused with the rule
    r = d.client(user=user.name).refresh(later["refresh_token"], later["device_id"], audience="sudo")
    assert r.status == 403 and RULE in r.message, r

    # a new password login opens a new window
    assert aud(me.call("Login", user.name, user.password, "")) == ["sshd", "sudo"]
