# SPDX-License-Identifier: MIT
"""Step-up audiences over the socket (issue 13 point 1): with the defaults
([Token] StepUpAudiences=sudo, StepUpLifetime=5min) a process running as a
user must not get a sudo token without that user's password. Replays: a
non-root uid asks peer login for sudo (403 naming the rule, nothing enrolled),
and a refresh after StepUpLifetime asks for sudo again (403, the refresh
token survives; a default audience that names sudo goes without it).
Controls: a password login grants sudo and its refreshes keep it within the
window, root's peer login still mints sudo, peer login for sshd still works.
Root only (a second uid, a throwaway user with a password, /etc/pam.d)."""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import jwt_parts, need_root, pam_user, system_user, tokend_factory  # noqa: E402,F401

RULE = "is a step-up audience: it needs a password login within the last"
KEYS = "([Token] StepUpAudiences=, StepUpLifetime=)"
WINDOW = 4  # StepUpLifetime of the tests that wait it out, in seconds


def aud(tok):
    return jwt_parts(tok["access_token"])[1]["aud"]


def ok(r):
    assert r.status == 200, r
    return r.json


def forbidden(r, audience, window="5min"):
    assert r.status == 403 and r.error == "forbidden", r
    assert "audience %s %s %s" % (audience, RULE, window) in r.message, r
    assert r.message.endswith(KEYS), r
    return r.message


def devices_of(d, name):
    return [x["id"] for x in ok(d.api.devices(user=name))["devices"]]


def test_peer_login_cannot_mint_sudo(tokend_factory, system_user):  # noqa: F811
    need_root("a second uid")
    d = tokend_factory()  # the defaults: AllowPeerLogin=yes, AllowedAudiences=*, StepUpAudiences=sudo
    user = system_user("tdsu_")
    me = d.client(user=user.name)

    # the attack: any code running as the user asks for a sudo token
    msg = forbidden(me.issue_token(audience="sudo"), "sudo")
    assert "not a peer login" in msg, msg
    forbidden(me.issue_token(audience=["sshd", "sudo"]), "sudo")
    forbidden(me.issue_token(audience="sudo@web1"), "sudo@web1")  # the host-scoped form too
    forbidden(me.issue_token(audience="sudo", user=user.name), "sudo")
    assert devices_of(d, user.name) == []  # nothing enrolled
    rows = d.audit("token_denied")  # repeated refusals share a row with a count
    assert d.audit_count("token_denied") == d.audit_count("token_denied", user.uid) == 4, rows
    assert all(RULE in a["detail"] for a in rows), rows

    # controls: the everyday peer login still works, and cannot be widened to sudo on refresh
    tok = ok(me.issue_token(audience="sshd"))
    assert aud(tok) == ["sshd"]
    assert ok(me.verify(tok["access_token"], user=user.name, service="sshd"))["sub"] == user.name
    assert ok(me.issue_token())["user"]["name"] == user.name  # DefaultAudience (sshd login su)
    msg = forbidden(me.refresh(tok["refresh_token"], tok["device_id"], audience="sudo"), "sudo")
    assert "older or none" in msg, msg
    # a refused refresh spends nothing: the same refresh token still works
    tok = ok(me.refresh(tok["refresh_token"], tok["device_id"], audience="sshd"))
    assert aud(tok) == ["sshd"]
    # without the current refresh token the rule is no oracle: the usual 401
    r = me.refresh("A" * 43, tok["device_id"], audience="sudo")
    assert r.status == 401 and r.error == "invalid_token", r

    # root may still mint anything: for itself, for the user, and refresh it so
    t = ok(d.api.issue_token(audience="sudo", user=user.name))
    assert aud(t) == ["sudo"]
    assert ok(d.api.verify(t["access_token"], user=user.name, service="sudo"))["sub"] == user.name
    assert aud(ok(d.api.issue_token(audience="sudo"))) == ["sudo"]
    assert aud(ok(d.api.refresh(tok["refresh_token"], tok["device_id"], audience="sudo"))) == ["sudo"]
    # but that root-minted device gives the user no sudo on its own refresh
    forbidden(me.refresh(t["refresh_token"], t["device_id"], audience="sudo"), "sudo")
    assert aud(ok(me.refresh(t["refresh_token"], t["device_id"], audience="sshd"))) == ["sshd"]


def test_default_audience_naming_sudo(tokend_factory, system_user):  # noqa: F811
    """An admin who puts sudo into DefaultAudience does not open it to peer
    login: the default goes without it; a default of only step-up audiences
    is refused."""
    need_root("a second uid")
    user = system_user("tdsu_")
    d = tokend_factory("[Token]\nDefaultAudience=sshd sudo\n")
    me = d.client(user=user.name)
    assert aud(ok(me.issue_token())) == ["sshd"]
    assert aud(ok(d.api.issue_token(user=user.name))) == ["sshd", "sudo"]  # root: the whole default
    d2 = tokend_factory("[Token]\nDefaultAudience=sudo\n")
    forbidden(d2.client(user=user.name).issue_token(), "sudo")
    assert aud(ok(d2.api.issue_token(user=user.name))) == ["sudo"]


def test_step_up_audiences_configurable(tokend_factory, system_user):  # noqa: F811
    need_root("a second uid")
    user = system_user("tdsu_")
    d = tokend_factory("[Token]\nStepUpAudiences=su\nStepUpLifetime=90s\n")
    me = d.client(user=user.name)
    forbidden(me.issue_token(audience="su"), "su", window="1min 30s")
    assert aud(ok(me.issue_token(audience="sudo"))) == ["sudo"]  # no longer step-up here
    off = tokend_factory("[Token]\nStepUpAudiences=none\n")
    assert aud(ok(off.client(user=user.name).issue_token(audience="sudo"))) == ["sudo"]


def wait_past_window(since):
    """Sleep until the StepUpLifetime window of a password login answered by
    since has closed (tokend counts whole seconds: a margin of one more)."""
    while time.time() < since + WINDOW + 1.5:
        time.sleep(0.2)


def test_password_login_grants_sudo_for_the_window(tokend_factory, pam_user):  # noqa: F811
    user, service = pam_user
    d = tokend_factory("[Login]\nPAMService=%s\n[Token]\nStepUpLifetime=%ds\nDefaultAudience=sshd sudo\n"
                       % (service, WINDOW))
    me = d.client(user=user.name)  # a non-root caller all along: no root exemption

    # control: the password login is the proof; it may ask for sudo
    tok = ok(me.login(user.name, user.password, device_name="laptop", audience="sudo"))
    assert aud(tok) == ["sudo"]
    assert ok(me.verify(tok["access_token"], user=user.name, service="sudo"))["sub"] == user.name
    # a plain login gets the default, sudo included
    plain = ok(me.login(user.name, user.password))
    logged_in = time.time()  # both password logins are done: their windows opened before this
    assert aud(plain) == ["sshd", "sudo"]
    # within the window its refreshes may ask for sudo again (tokenctl login && tokenctl token --audience sudo)
    tok = ok(me.refresh(tok["refresh_token"], tok["device_id"], audience="sudo"))
    assert aud(tok) == ["sudo"]
    plain = ok(me.refresh(plain["refresh_token"], plain["device_id"]))
    assert aud(plain) == ["sshd", "sudo"]

    # the replay: a refresh after StepUpLifetime gets no sudo
    wait_past_window(logged_in)
    msg = forbidden(me.refresh(tok["refresh_token"], tok["device_id"], audience="sudo"), "sudo",
                    window="%ds" % WINDOW)
    assert "log in with the password again" in msg, msg
    assert d.audit_count("token_denied", user.uid, tok["device_id"]) == 1
    forbidden(me.refresh(tok["refresh_token"], tok["device_id"], audience=["sshd", "sudo"]), "sudo",
              window="%ds" % WINDOW)
    # the default audience drops sudo, and the refresh token was not spent by the refusals
    later = ok(me.refresh(tok["refresh_token"], tok["device_id"]))
    assert aud(later) == ["sshd"]
    r = me.verify(later["access_token"], user=user.name, service="sudo")
    assert r.status == 401 and r.error == "invalid_token", r
    assert aud(ok(me.refresh(plain["refresh_token"], plain["device_id"]))) == ["sshd"]
    # a new password login opens a new window
    again = ok(me.login(user.name, user.password, audience=["sshd", "sudo"]))
    assert aud(again) == ["sshd", "sudo"]
    assert aud(ok(me.refresh(again["refresh_token"], again["device_id"], audience="sudo"))) == ["sudo"]
