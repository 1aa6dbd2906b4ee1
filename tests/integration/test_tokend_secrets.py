# SPDX-License-Identifier: MIT
"""Secrets are wiped after use: after logins (right and wrong password),
peer issue, refresh with rotation, verify and logout over the socket, none
of the passwords, refresh tokens or access tokens that passed through
tokend is left anywhere in its writable memory (heap, thread arenas,
stacks). Control: the device ids, which tokend keeps on purpose, are found
by the same scan, so the scan does see the heap."""

import os
import secrets
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import (VALGRIND_DIR, PamService, assert_wiped, system_user,  # noqa: E402,F401
                       tokend_factory)

UNIX_STACK = "auth required pam_unix.so nodelay\naccount required pam_unix.so\n"


def ok(r):
    assert r.status == 200, r
    return r.json


def test_no_password_or_token_left_in_tokend_memory(system_user, tokend_factory):  # noqa: F811
    if VALGRIND_DIR:
        pytest.skip("under valgrind the process scanned would be valgrind's, not tokend's")
    config = ""
    user = password = None
    if os.geteuid() == 0:  # a real pam_unix login that succeeds, too
        password = "Pw-" + secrets.token_urlsafe(24)
        user = system_user("tdsec_", password).name
        svc = PamService(UNIX_STACK)
        config = "[Login]\nPAMService=%s\n" % svc.name
    try:
        t = tokend_factory(config)
        c = t.client()
        wrong = "Wrong-" + secrets.token_urlsafe(24)
        keep, secret = [], []  # strings tokend must keep / must not keep

        r = c.login("nosuchuser_tdsec", wrong)
        assert r.status == 400 and r.error == "invalid_credentials", r
        secret.append(wrong)
        if user:
            r = c.login(user, wrong)
            assert r.status == 400 and r.error == "invalid_credentials", r
            tok = ok(c.login(user, password))
            secret += [password, tok["access_token"], tok["refresh_token"]]
            keep.append(tok["device_id"])

        tok = ok(c.issue_token(device_name="secrets test"))
        keep.append(tok["device_id"])
        new = ok(c.refresh(tok["refresh_token"], tok["device_id"]))
        assert c.verify(new["access_token"]).status == 200
        assert c.verify(tok["access_token"], service="no-such-audience").status == 401
        secret += [tok["access_token"], tok["refresh_token"], new["access_token"], new["refresh_token"]]
        other = ok(c.issue_token(device_name="logged out"))
        assert c.logout(other["access_token"]).status in (200, 204)
        secret += [other["access_token"], other["refresh_token"]]
        keep.append(other["device_id"])

        assert_wiped(t.proc.pid, keep, secret)
        assert t.running()
    finally:
        if user:
            svc.close()
