# SPDX-License-Identifier: MIT
"""device_name over the bus (issue 13 point 5): Login refuses a name with
ESC, a newline, U+009B (CSI) or U+202E (right-to-left override) with
io.tokend.Error.InvalidArgs naming device_name, through busctl, gdbus and
python3-dbus, and enrols nothing; an ordinary (non-ASCII) name works."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdbus import CLIENTS, BusError, bus, bus_tokend, system_user  # noqa: E402,F401
from tdharness import PamService, need_root  # noqa: E402

UNIX_STACK = "auth required pam_unix.so nodelay\naccount required pam_unix.so\n"
BAD_NAMES = ["lap\x1b[2Jtop", "lap\ntop", "lap\u009btop", "evil\u202etxt.exe"]


@pytest.mark.parametrize("client", CLIENTS)
def test_login_refuses_control_device_name(system_user, bus_tokend, client):  # noqa: F811
    need_root("create a user and an /etc/pam.d service")
    user = system_user("tdbus_", "S3cret-pw-" + os.urandom(4).hex())
    svc = PamService(UNIX_STACK)
    try:
        d = bus_tokend("[Login]\nPAMService=%s\nFailureDelay=0\n" % svc.name)
        c = d.bus(client)
        for name in BAD_NAMES:
            with pytest.raises(BusError) as e:
                c.call("Login", user.name, user.password, name)
            assert "device_name must be" in e.value.message, (name, e.value)
            if client != "busctl":  # busctl prints only the message
                assert e.value.name == "io.tokend.Error.InvalidArgs"
        assert c.call("ListDevices", user.name) == []                  # nothing enrolled
        tok = c.call("Login", user.name, user.password, "Büro-PC 東京")  # control
        (dev,) = c.call("ListDevices", user.name)
        assert dev["id"] == tok["device_id"] and dev["name"] == "Büro-PC 東京"
        with open(d.log_path, "rb") as f:
            log = f.read()
        assert b"\x1b" not in log and "\u009b".encode() not in log and "\u202e".encode() not in log
    finally:
        svc.close()
