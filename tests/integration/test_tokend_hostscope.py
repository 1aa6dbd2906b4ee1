# SPDX-License-Identifier: MIT
"""Host-scoped audiences (DESIGN.md "Host-scoped audiences") on a standalone
tokend: a token for SERVICE@HOST verifies for SERVICE only when HOST is one
of this machine's names (host name, FQDN, localhost, 127.0.0.1; case does
not matter), a token for another host is refused with the reason, an
unscoped token still works (the embedded default); AllowedAudiences=
takes SERVICE@* patterns; the worst-case scoped token (32-byte user name,
64-character host name, device key) fits MaxLength=511 (measured)."""

import os
import socket
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import DeviceKey, find_binary, jwt_parts, system_user, tokend_factory  # noqa: E402,F401

HOST = socket.gethostname()


def verify(d, tok, service="sshd"):
    return d.api.verify(tok, service=service)


def test_scoped_token_verifies_only_for_this_hosts_names(tokend_factory):  # noqa: F811
    d = tokend_factory()
    for name in (HOST, HOST.upper(), "localhost", "127.0.0.1"):
        r = d.api.issue_token(audience="sshd@" + name)
        assert r.status == 200, r
        tok = r.json["access_token"]
        assert jwt_parts(tok)[1]["aud"] == ["sshd@" + name]
        v = verify(d, tok)
        assert v.status == 200 and v.json["active"] is True, (name, v)
        # scoped to sshd: not a login or su token
        assert verify(d, tok, "login").status == 401
    other = d.api.issue_token(audience="sshd@not-" + HOST).json["access_token"]
    v = verify(d, other)
    assert v.status == 401 and "not for service sshd on this host" in v.message, v
    # a host name that merely starts like ours is another host
    v = verify(d, d.api.issue_token(audience="sshd@" + HOST + "x").json["access_token"])
    assert v.status == 401, v
    # control: an unscoped token is accepted on a standalone tokend
    assert verify(d, d.api.issue_token(audience="sshd").json["access_token"]).status == 200


def test_scoped_tokens_carry_no_uid_or_cnf(tokend_factory):  # noqa: F811
    d = tokend_factory()
    key = DeviceKey()
    scoped = jwt_parts(d.api.issue_token(audience="sshd@web1", device_key=key.public).json["access_token"])[1]
    assert "uid" not in scoped and "cnf" not in scoped, scoped
    plain = jwt_parts(d.api.issue_token(device_key=key.public).json["access_token"])[1]
    assert plain["cnf"]["jkt"] == key.jkt() and "uid" in plain  # control


def test_allowed_audiences_patterns(tokend_factory):  # noqa: F811
    d = tokend_factory("[Token]\nAllowedAudiences=sshd login su sshd@*\nStepUpAudiences=none\n")
    assert d.api.issue_token(audience="sshd@web1").status == 200
    assert d.api.issue_token(audience="sshd@" + "h" * 64).status == 200
    assert d.api.issue_token(audience="su@web1").status == 403  # only sshd@* is allowed scoped
    assert d.api.issue_token(audience="login").status == 200  # control
    r = d.api.issue_token(audience="sshd@a@b")
    assert r.status == 400, r


def test_bad_patterns_stop_startup(tmp_path):
    for bad in ("*@web1", "sshd@*x", "@*", "sshd@a@*"):
        (tmp_path / "t.conf").write_text("[Token]\nAllowedAudiences=sshd login su %s\n" % bad)
        p = subprocess.run([find_binary("tokend"), "--check-config", "--config", str(tmp_path / "t.conf"),
                            "--state-dir", str(tmp_path / "st")], capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and "AllowedAudiences" in p.stderr, (bad, p.stderr)


def test_worst_case_scoped_token_fits_max_length(system_user, tokend_factory):  # noqa: F811
    if os.geteuid() != 0:
        pytest.skip("needs root: a 32-byte user name and tokens for another user")
    u = system_user("tdlong_" + "x" * 17)  # 7 + 17 + 8 hex = 32 bytes
    assert len(u.name) == 32
    d = tokend_factory()
    key = DeviceKey()
    host = "h" * 64
    r = d.api.issue_token(user=u.name, audience="sshd@" + host, device_key=key.public)
    assert r.status == 200, r
    scoped = len(r.json["access_token"])
    r = d.api.issue_token(user=u.name, device_key=key.public)
    default = len(r.json["access_token"])
    print("token length: worst-case scoped %d bytes, default audience %d bytes" % (scoped, default))
    assert scoped <= 511 and default <= 511, (scoped, default)
