# SPDX-License-Identifier: MIT
"""tokenctl's messages say what to do about the actual cause, and the docs
say what happens (issue 14, "Docs that match"): a 403 about [Token]
AllowedAudiences points to AllowedAudiences (the admin group stays the hint
for a real permission refusal); the default device name is the host and
its OS; `devices` without a login does not tell root to log in; askpass
explains ssh's host-key question; the example and README texts."""

import os
import socket

import pytest

from test_tokenctl_util import ASKPASS, Client, base, have_binaries, start_tokend  # noqa: F401 (fixture)
from tdharness import TOP_SRCDIR  # noqa: E402

pytestmark = pytest.mark.skipif(not have_binaries(), reason="tokend/tokenctl not built")


def test_allowed_audiences_refusal_names_allowed_audiences(base):
    d = start_tokend("[Token]\nAllowedAudiences=sshd login su sudo\n")
    try:
        c = Client(base, d.socket)
        c.ok("login", "--peer")
        p = c.run("token", "--audience", "backup")
        assert p.returncode == 1 and p.stdout == ""
        assert 'audience "backup" is not in [Token] AllowedAudiences' in p.stderr, p.stderr
        assert "[Token] AllowedAudiences= in tokend.conf(5)" in p.stderr
        assert "admin group" not in p.stderr
        assert c.ok("token", "--audience", "sudo").stdout.strip()          # control: an allowed one
        # Control: a refusal for want of privilege keeps the admin-group hint.
        if os.geteuid() == 0:
            p = Client(base, d.socket, user="nobody").run("devices", "--user", "root")
            assert p.returncode == 1 and "forbidden" in p.stderr, p.stderr
            assert "admin group" in p.stderr and "AllowedAudiences" not in p.stderr
    finally:
        d.close()


def expected_device_name():
    """HOST (PRETTY_NAME of os-release), as tokenctl login names a device."""
    pretty = None
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("PRETTY_NAME="):
                        pretty = line[12:].strip().strip('"').strip("'")
                        break
        except FileNotFoundError:
            continue
        if pretty:
            break
    if not pretty:
        u = os.uname()
        pretty = "%s %s" % (u.sysname, u.release)
    return "%s (%s)" % (socket.gethostname()[:64], pretty)


def test_default_device_name_is_host_and_os(base):
    d = start_tokend()
    try:
        c = Client(base, d.socket)
        c.ok("login", "--peer")
        want = expected_device_name()
        assert c.credentials()["device_name"] == want
        assert [x["name"] for x in c.json("devices")["devices"]] == [want]
        assert "tokenctl on" not in c.ok("status").stdout
        # Control: --device-name still wins.
        c.ok("login", "--peer", "--device-name", "my laptop")
        assert c.credentials()["device_name"] == "my laptop"
    finally:
        d.close()


def test_devices_without_a_login_says_nothing_about_logging_in(base):
    d = start_tokend()
    try:
        c = Client(base, d.socket)
        p = c.run("devices")
        assert p.returncode == 0 and p.stderr == "", p.stderr   # root (an admin) lists, no "not logged in"
        assert "(no devices)" in p.stdout
        # Control: after a login the list marks this machine's device.
        c.ok("login", "--peer")
        p = c.ok("devices")
        assert p.stderr == "" and "(* = this machine's login)" in p.stdout
    finally:
        d.close()


def test_askpass_explains_the_host_key_question(base):
    c = Client(base, "/nonexistent.sock")
    q = ("The authenticity of host 'server (192.0.2.1)' can't be established.\n"
         "ED25519 key fingerprint is SHA256:abc.\n"
         "Are you sure you want to continue connecting (yes/no/[fingerprint])? ")
    p = c.run(q, prog=ASKPASS)
    assert p.returncode == 1 and p.stdout == ""
    assert "ssh asks whether to trust this server's unknown host key" in p.stderr
    assert "SSH_ASKPASS_REQUIRE=force" in p.stderr and "known_hosts" in p.stderr
    # Control: other foreign prompts get only the refusal, not this explanation.
    p = c.run("alice@server's password: ", prog=ASKPASS)
    assert p.returncode == 1 and p.stdout == "" and "not pam_jwt's prompt" in p.stderr
    assert "host key" not in p.stderr, p.stderr


def test_docs_say_what_happens():
    def read(*parts):
        with open(os.path.join(TOP_SRCDIR, *parts)) as f:
            return f.read()
    sshd_conf = read("etc", "sshd_config.d", "tokend.conf")
    assert "tokend-only" in sshd_conf.split("#AuthenticationMethods keyboard-interactive")[0]
    readme = read("README.md")
    block = readme.split("or edit one service, e.g. `/etc/pam.d/sshd`", 1)[1].split("```", 2)[1]
    assert "pam_jwt.so" in block and "@include common-account" not in block     # no doubled account stack
    assert "Host key verification failed" in readme
    # the double prompt is named as it is now (pam_jwt's marked prompt), not the old "Token: Token:"
    for text in (read("etc", "pam.d", "sudo"), readme):
        assert "Token: Token:" not in text
        assert "JWT token for" in text and "(tokend): " in text
