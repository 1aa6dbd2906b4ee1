"""tokenctl's messages say what to do about the actual cause: a 403 about
[Token] AllowedAudiences points to AllowedAudiences (not to the admin
group, which stays the hint for a real permission refusal)."""

import os

import pytest

from test_tokenctl_util import Client, base, have_binaries, start_tokend  # noqa: F401 (fixture)

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
