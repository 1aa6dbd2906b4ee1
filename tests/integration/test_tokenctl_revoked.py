# SPDX-License-Identifier: MIT
"""State that is true: after tokend revoked a device (reuse detection of a
rotated refresh token, or a revocation from elsewhere), `tokenctl status`
asks tokend and says "revoked (reason, when)" with exit 1, and `token` /
`askpass` do not hand out the access tokens still in the local cache: no
output, the reason on stderr, the cache dropped. Each case has the control
before the revocation (same cached token handed out, status 0)."""

import json
import os
import shutil
import time

import pytest

from test_tokenctl_util import ASKPASS, Client, audit_count, base, daemon, have_binaries  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not have_binaries(), reason="tokend/tokenctl not built")


def save(c, name):
    shutil.copy(c.path(name), c.path(name) + ".saved")


def restore(c, name):
    shutil.copy(c.path(name) + ".saved", c.path(name))


def test_reuse_detection_then_status_token_askpass(base, daemon):
    c = Client(base, daemon.socket)
    c.ok("login", "--peer", "--device-name", "laptop")
    dev = c.credentials()["device_id"]
    default_tok = c.ok("token").stdout.strip()
    sshd_tok = c.ok("token", "--audience", "sshd").stdout.strip()

    # Controls while the device is alive: status 0 and "active", the cached
    # tokens are handed out as they are (no refresh).
    p = c.ok("status")
    assert "Device state:   active\n" in p.stdout
    assert c.json("status")["device_state"] == "active"
    refreshes = audit_count(daemon, "refresh")
    assert c.ok("token").stdout.strip() == default_tok
    p = c.run("JWT token for root (tokend): ", prog=ASKPASS)
    assert p.returncode == 0 and p.stdout.strip() == sshd_tok, p.stderr
    assert audit_count(daemon, "refresh") == refreshes

    # Replay a rotated refresh token: keep the credentials, rotate, put the
    # old ones back and refresh with them. tokend revokes the device.
    save(c, "credentials")
    c.ok("refresh")
    restore(c, "credentials")
    p = c.run("refresh")
    assert p.returncode == 1 and "token_revoked" in p.stderr, p.stderr
    # tokend's message says "log in again" already: tokenctl does not repeat it.
    assert p.stderr.count("log in again") == 1 and "; tokenctl login" in p.stderr, p.stderr
    assert audit_count(daemon, "refresh_reuse") == 1
    assert [d["revoked"] for d in daemon.api.devices().json["devices"]] == [True]
    # The cache still holds tokens that look valid locally.
    cache = json.load(open(c.path("access-tokens")))
    assert {e["access_token"] for e in cache.values()} >= {sshd_tok}
    assert all(e["expires_at"] > time.time() + 60 for e in cache.values())
    save(c, "access-tokens")

    p = c.run("status")
    assert p.returncode == 1, p.stdout + p.stderr
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("Device state:")]
    assert line and line[0].startswith("Device state:   revoked (refresh_reuse, "), p.stdout
    assert line[0].endswith(": run tokenctl login")
    assert "valid until" not in p.stdout and "Refresh token:  dead with the device" in p.stdout
    j = json.loads(c.run("--json", "status").stdout)
    assert j["device_state"] == "revoked" and j["revoke_reason"] == "refresh_reuse"
    assert abs(j["revoked_at"] - time.time()) < 600
    assert j["tokend_reachable"] is True

    # askpass: no token, the reason on stderr, the cache emptied.
    p = c.run("JWT token for root (tokend): ", prog=ASKPASS)
    assert p.returncode == 1 and p.stdout == ""
    assert ("not handing out the cached access token: device %s is revoked (refresh_reuse, " % dev) in p.stderr
    assert json.load(open(c.path("access-tokens"))) == {}

    # token, from the same cache again.
    restore(c, "access-tokens")
    p = c.run("token")
    assert p.returncode == 1 and p.stdout == ""
    assert "device %s is revoked (refresh_reuse, " % dev in p.stderr and "run tokenctl login" in p.stderr
    assert json.load(open(c.path("access-tokens"))) == {}
    # With the cache gone, token asks for a refresh, which tokend refuses.
    p = c.run("token")
    assert p.returncode == 1 and p.stdout == "" and "token_revoked" in p.stderr

    # A new login is alive again (control for the whole chain).
    c.ok("login", "--peer")
    assert c.ok("status").returncode == 0
    assert c.ok("token").stdout.strip()


def test_revoked_elsewhere_and_expired_login(base, daemon):
    c = Client(base, daemon.socket)
    c.ok("login", "--peer")
    dev = c.credentials()["device_id"]
    tok = c.ok("token").stdout.strip()
    save(c, "credentials")
    save(c, "access-tokens")
    # Revoked through the API (another tokenctl, an admin): the local files
    # never heard of it.
    r = daemon.api.delete_device(dev)
    assert r.status == 204, r
    p = c.run("status")
    assert p.returncode == 1 and "Device state:   revoked (owner, " in p.stdout, p.stdout
    p = c.run("token")
    assert p.returncode == 1 and p.stdout == "" and "is revoked (owner, " in p.stderr

    # An expired login (refresh token past its end): the cached access token
    # is not handed out either, without asking tokend.
    c.ok("login", "--peer")
    tok = c.ok("token").stdout.strip()
    cred = c.credentials()
    cred["refresh_expires_at"] = int(time.time()) - 10
    with open(c.path("credentials"), "w") as f:
        json.dump(cred, f)
    p = c.run("token")
    assert p.returncode == 1 and p.stdout == "", p.stderr
    assert "this device's login expired" in p.stderr and tok not in p.stdout
    assert json.load(open(c.path("access-tokens"))) == {}


def test_unreachable_tokend_hands_out_nothing(base, daemon):
    c = Client(base, daemon.socket)
    c.ok("login", "--peer")
    c.ok("token")
    daemon.stop()
    p = c.run("token")
    assert p.returncode == 3 and p.stdout == "" and "cannot reach tokend" in p.stderr


def test_device_gone_from_tokend(base, daemon):
    """A device tokend no longer knows (pruned, or the database replaced):
    status says so (exit 1) and the cached token is not handed out."""
    import sqlite3
    c = Client(base, daemon.socket)
    c.ok("login", "--peer")
    dev = c.credentials()["device_id"]
    tok = c.ok("token").stdout.strip()
    assert daemon.stop() == 0
    with sqlite3.connect(daemon.db_path) as db:
        db.execute("PRAGMA foreign_keys = ON")
        assert db.execute("DELETE FROM devices WHERE id = ?", (dev,)).rowcount == 1
    daemon.start()
    p = c.run("status")
    assert p.returncode == 1 and "Device state:   unknown to tokend" in p.stdout, p.stdout + p.stderr
    assert json.loads(c.run("--json", "status").stdout)["device_state"] == "gone"
    p = c.run("token")
    assert p.returncode == 1 and p.stdout == "" and tok not in p.stdout
    assert "device %s is unknown to tokend" % dev in p.stderr, p.stderr
