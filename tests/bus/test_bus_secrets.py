# SPDX-License-Identifier: MIT
"""Secrets are wiped after use on the bus too: after Login (wrong
password), IssueToken, Refresh, Verify and Logout over io.tokend.Tokend1,
none of the password, refresh tokens or access tokens is left in tokend's
writable memory (sd-bus wipes SENSITIVE calls and replies, tokend its own
copies). Control: the device ids, which tokend keeps, are found by the same
scan."""

import os
import secrets
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdbus import BusError, bus, bus_tokend  # noqa: E402,F401
from tdharness import VALGRIND_DIR, assert_wiped  # noqa: E402


def test_no_password_or_token_left_in_tokend_memory(bus_tokend):  # noqa: F811
    if VALGRIND_DIR:
        pytest.skip("under valgrind the process scanned would be valgrind's, not tokend's")
    t = bus_tokend()
    c = t.bus("python")
    wrong = "Wrong-" + secrets.token_urlsafe(24)
    with pytest.raises(BusError) as e:
        c.call("Login", "nosuchuser_tdsec", wrong, "bus secrets")
    assert e.value.name == "io.tokend.Error.InvalidCredentials", e.value

    tok = c.call("IssueToken", "", [])
    new = c.call("Refresh", tok["refresh_token"], tok["device_id"], "")
    assert c.call("Verify", new["access_token"], "", "")["active"] is True
    other = c.call("IssueToken", "", [])
    c.call("Logout", other["access_token"])
    keep = [tok["device_id"], other["device_id"]]
    secret = [wrong] + [x[k] for x in (tok, new, other) for k in ("access_token", "refresh_token")]

    assert_wiped(t.proc.pid, keep, secret)
    assert t.running()
