# SPDX-License-Identifier: MIT
"""tokenctl token --ttl SPAN: a fresh access token of at most SPAN (the
refresh request's ttl; tokend caps it at AccessTokenLifetime), never served
from nor written to the cache; bad spans and --bus are usage errors; the
refresh endpoint checks ttl like the token endpoint."""

import json

import pytest

from test_tokenctl_util import Client, audit_count, base, claims, daemon, have_binaries  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not have_binaries(), reason="tokend/tokenctl not built")


def lifetime(tok):
    c = claims(tok)
    return c["exp"] - c["iat"]


def test_ttl_gives_a_short_fresh_uncached_token(base, daemon):
    c = Client(base, daemon.socket)
    c.ok("login", "--peer")
    normal = c.ok("token", "--audience", "sudo").stdout.strip()
    assert lifetime(normal) == 900                                     # control: the configured 15 min
    cache = open(c.path("access-tokens")).read()
    refreshes = audit_count(daemon, "refresh")

    short = c.ok("token", "--audience", "sudo", "--ttl", "2min").stdout.strip()
    assert lifetime(short) == 120 and claims(short)["aud"] == ["sudo"]
    assert audit_count(daemon, "refresh") == refreshes + 1              # always a refresh
    again = c.ok("token", "--audience", "sudo", "--ttl", "90s").stdout.strip()
    assert lifetime(again) == 90 and again != short
    assert open(c.path("access-tokens")).read() == cache               # the cache is untouched
    assert c.ok("token", "--audience", "sudo").stdout.strip() == normal
    for tok in (short, again):
        assert c.ok("verify", "--audience", "sudo", tok).stdout.startswith("VALID")

    # Never longer than AccessTokenLifetime.
    assert lifetime(c.ok("token", "--ttl", "1h").stdout.strip()) == 900
    # refresh --ttl, and --json shows the short expiry.
    j = json.loads(c.ok("--json", "refresh", "--ttl", "1min").stdout)
    assert lifetime(j["access_token"]) == 60


@pytest.mark.parametrize("span", ["0", "abc", "5 parsecs", "-1min", ""])
def test_bad_ttl_is_a_usage_error(base, span):
    p = Client(base, "/nonexistent.sock").run("token", "--ttl", span)
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.splitlines()) == 1 and "--ttl" in p.stderr and "usage: tokenctl token" in p.stderr


def test_ttl_needs_the_socket(base, daemon):
    c = Client(base, daemon.socket)
    c.ok("login", "--peer")
    p = c.run("--bus=unix:path=/nonexistent/bus", "token", "--ttl", "1min")
    assert p.returncode == 2 and p.stdout == "" and "--ttl needs the socket" in p.stderr


def test_refresh_endpoint_checks_ttl(daemon):
    body = {"refresh_token": "x" * 43, "device_id": "dev_nope"}
    r = daemon.api.post("/api/auth/refresh", dict(body, ttl="60"))
    assert r.status == 400 and r.error == "invalid_request" and "ttl" in r.message
    r = daemon.api.post("/api/auth/refresh", dict(body, ttl=0))
    assert r.status == 400 and r.error == "invalid_request"
    # Control: a well-formed ttl gets past the parser to the credential check.
    r = daemon.api.post("/api/auth/refresh", dict(body, ttl=60))
    assert r.status == 401 and r.error == "invalid_token"
