# SPDX-License-Identifier: MIT
"""tokenctl against a real tokend: login (peer), token caching and refresh
with the device-key proof, the state lock under concurrency, credential file
permissions, logout, status, devices, verify, inspect, askpass prompt
matching, usage and exit codes."""

import json
import os
import stat

import pytest

from test_tokenctl_util import (ASKPASS, TOKENCTL, Client, audit_count, base, claims,  # noqa: F401 (fixture)
                                NO_STEP_UP, have_binaries, header, start_tokend)

pytestmark = pytest.mark.skipif(not have_binaries(), reason="tokend/tokenctl not built")

COMMANDS = ["login", "token", "askpass", "refresh", "logout", "status", "devices", "verify", "inspect", "keys",
            "audit", "unlock", "device"]


@pytest.fixture
def daemon():
    t = start_tokend(NO_STEP_UP)  # token --audience sudo after a peer login, as any uid
    yield t
    t.close()


@pytest.fixture
def client(base, daemon):
    c = Client(base, daemon.socket)
    c.ok("login", "--peer", "--device-name", "test box")
    return c


# ---- usage and exit codes ------------------------------------------------

@pytest.mark.parametrize("cmd", [[]] + [[c] for c in COMMANDS] + [["devices", "revoke"], ["keys", "list"]])
def test_help_exits_0(cmd, base):
    c = Client(base, "/nonexistent.sock")
    p = c.run(*(cmd + ["--help"]))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Usage: tokenctl")
    assert p.stderr == ""


def test_askpass_link_help(base):
    p = Client(base, "/nonexistent.sock").run("--help", prog=ASKPASS)
    assert p.returncode == 0 and p.stdout.startswith("Usage: tokenctl-askpass")


@pytest.mark.parametrize("cmd", [[]] + [[c] for c in COMMANDS])
def test_wrong_flag_exits_2_with_one_line(cmd, base):
    c = Client(base, "/nonexistent.sock")
    p = c.run(*(cmd + ["--no-such-flag"]))
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert "--no-such-flag" in lines[0] and "usage: tokenctl" in lines[0]


def test_usage_errors(base):
    c = Client(base, "/nonexistent.sock")
    assert c.run().returncode == 2                                    # no command
    assert c.run("frobnicate").returncode == 2
    assert c.run("token", "--audience").returncode == 2               # missing value
    assert c.run("token", "--audience", "no spaces").returncode == 2  # not an audience name
    assert c.run("devices", "revoke").returncode == 2                 # missing ID
    assert c.run("verify").returncode == 2
    assert c.run("verify", "--signature-only", "x.y.z").returncode == 2  # needs --jwks
    assert c.run("keys", "generate", "--alg", "HS256").returncode == 2
    p = c.run("--bus=no-address", "token")
    assert p.returncode == 2 and "not system, session or a D-Bus address" in p.stderr


def test_unreachable_exits_3(base, daemon, client):
    daemon.stop()
    for args in (["devices"], ["verify", "a.b.c"], ["refresh"], ["status"]):
        p = client.run(*args)
        assert p.returncode == 3, (args, p.stderr)
        assert "cannot reach tokend: no socket at %s (No such file or directory)" % daemon.socket in p.stderr


def test_not_logged_in(base, daemon):
    c = Client(base, daemon.socket)
    p = c.run("token")
    assert p.returncode == 1 and p.stdout == ""
    assert "run tokenctl login" in p.stderr


# ---- login, token, refresh ------------------------------------------------

def test_login_stores_private_state(client, daemon):
    st = os.stat(client.state)
    assert stat.S_IMODE(st.st_mode) == 0o700
    for name in ("credentials", "access-tokens"):
        assert stat.S_IMODE(os.stat(client.path(name)).st_mode) == 0o600
    cred = client.credentials()
    assert cred["device_id"].startswith("dev_")
    assert cred["user"] == "root"
    assert "PRIVATE KEY" in cred["device_key"]
    dev = client.json("devices")["devices"]
    assert [d["has_key"] for d in dev if d["id"] == cred["device_id"]] == [True]


def test_token_cached_then_refresh_rotates(client, daemon):
    t1 = client.ok("token").stdout.strip()
    t2 = client.ok("token").stdout.strip()
    assert t1 == t2                                  # 15 min left: the cached token
    assert audit_count(daemon, "refresh") == 0
    assert client.ok("verify", t1).stdout.startswith("VALID: sub=root")
    rt_before = client.credentials()["refresh_token"]
    client.ok("refresh")
    assert audit_count(daemon, "refresh") == 1
    assert client.credentials()["refresh_token"] != rt_before
    t3 = client.ok("token").stdout.strip()
    assert t3 != t1
    client.ok("verify", t3)


def test_token_audience(client, daemon):
    sudo = client.ok("token", "--audience", "sudo").stdout.strip()
    assert claims(sudo)["aud"] == ["sudo"]
    assert audit_count(daemon, "refresh") == 1        # no cached sudo token: refreshed
    assert client.ok("token", "--audience", "sudo").stdout.strip() == sudo
    assert client.run("verify", "--audience", "sshd", sudo).returncode == 1
    client.ok("verify", "--audience", "sudo", sudo)
    j = client.json("token", "--audience", "sudo")
    assert j["access_token"] == sudo and j["audience"] == "sudo"


def test_refresh_needs_the_device_key(client, daemon):
    """A stolen credentials file without the matching device key is useless,
    and a bad proof does not revoke the device."""
    cred = client.credentials()
    other = Client(os.path.dirname(client.home), daemon.socket, name="other")
    other.ok("login", "--peer")
    forged = dict(cred, device_key=other.credentials()["device_key"])
    with open(client.path("credentials"), "w") as f:
        json.dump(forged, f)
    p = client.run("refresh")
    assert p.returncode == 1
    assert "proof" in p.stderr
    with open(client.path("credentials"), "w") as f:            # control: the real key
        json.dump(cred, f)
    client.ok("refresh")
    assert audit_count(daemon, "refresh_proof_failed") == 1


def test_concurrent_token_rotates_once(base):
    """Every cached token is within 60 s of expiry: both processes are at
    the refresh point at once; the lock lets exactly one rotate."""
    d = start_tokend("[Token]\nAccessTokenLifetime=61s\n")
    try:
        c = Client(base, d.socket)
        c.ok("login", "--peer")
        for rnd in range(3):
            os.unlink(c.path("access-tokens"))          # nothing cached: refresh point
            before = audit_count(d, "refresh")
            procs = [c.popen("token") for _ in range(2)]
            outs = [p.communicate(timeout=60) for p in procs]
            for p, (out, err) in zip(procs, outs):
                assert p.returncode == 0, err
            assert audit_count(d, "refresh") == before + 1, "round %d" % rnd
            for out, _ in outs:
                assert c.ok("verify", out.strip()).stdout.startswith("VALID")
        devs = c.json("devices")["devices"]
        assert [x["revoked"] for x in devs] == [False]
        assert audit_count(d, "refresh_reuse") == 0
    finally:
        d.close()


def test_token_close_to_expiry_refreshes(base):
    d = start_tokend("[Token]\nAccessTokenLifetime=61s\n")
    try:
        c = Client(base, d.socket)
        c.ok("login", "--peer")
        cache = json.load(open(c.path("access-tokens")))
        for e in cache.values():
            e["expires_at"] -= 5                       # 56 s left
            e["fetched_at"] -= 5
        with open(c.path("access-tokens"), "w") as f:
            json.dump(cache, f)
        t = c.ok("token").stdout.strip()
        assert audit_count(d, "refresh") == 1
        c.ok("verify", t)
    finally:
        d.close()


# ---- credential file permissions ------------------------------------------

@pytest.mark.parametrize("name", ["credentials", "access-tokens"])
def test_group_readable_file_refused(client, name):
    os.chmod(client.path(name), 0o644)
    p = client.run("token")
    assert p.returncode == 1 and p.stdout == ""
    assert "chmod 600 %s" % client.path(name) in p.stderr
    os.chmod(client.path(name), 0o600)                  # control
    client.ok("token")


def test_foreign_owned_file_refused(client):
    os.chown(client.path("credentials"), 65534, 65534)
    p = client.run("token")
    assert p.returncode == 1 and "owned by uid 65534" in p.stderr
    os.chown(client.path("credentials"), 0, 0)
    client.ok("token")


def test_writable_state_dir_refused(client):
    os.chmod(client.state, 0o777)
    p = client.run("token")
    assert p.returncode == 1 and "chmod 700" in p.stderr
    os.chmod(client.state, 0o700)
    client.ok("token")


def test_symlinked_credentials_refused(client):
    real = client.path("credentials")
    os.rename(real, real + ".real")
    os.symlink(real + ".real", real)
    p = client.run("token")
    assert p.returncode == 1 and "symbolic link" in p.stderr


# ---- logout, status, devices ------------------------------------------------

def test_logout(client, daemon):
    tok = client.ok("token").stdout.strip()
    dev = client.credentials()["device_id"]
    p = client.ok("logout")
    assert "revoked" in p.stdout
    assert not os.path.exists(client.path("credentials"))
    assert not os.path.exists(client.path("access-tokens"))
    v = client.run("verify", tok)
    assert v.returncode == 1 and v.stdout.startswith("INVALID")
    assert [d["revoked"] for d in client.json("devices")["devices"] if d["id"] == dev] == [True]
    assert client.run("token").returncode == 1


def test_logout_of_revoked_device_cleans_up(client):
    dev = client.credentials()["device_id"]
    client.ok("devices", "revoke", dev)       # also removes the local login: it was this machine's
    assert not os.path.exists(client.path("credentials"))
    assert client.run("logout").returncode == 1   # nothing to log out


def test_status(client, daemon):
    client.ok("token", "--audience", "sudo")
    p = client.ok("status")
    dev = client.credentials()["device_id"]
    assert "User:           root (uid 0)" in p.stdout
    assert dev in p.stdout and "reachable on %s" % daemon.socket in p.stdout
    assert "sudo: valid until" in p.stdout
    j = client.json("status")
    assert j["logged_in"] and j["tokend_reachable"] and j["device_id"] == dev and j["device_key"]
    assert {t["audience"] for t in j["access_tokens"]} == {None, "sudo"}  # null: the default, as in token --json
    daemon.stop()
    p = client.run("--json", "status")
    assert p.returncode == 3 and json.loads(p.stdout)["tokend_reachable"] is False


def test_status_not_logged_in(base, daemon):
    p = Client(base, daemon.socket).run("--json", "status")
    assert p.returncode == 1
    assert json.loads(p.stdout)["logged_in"] is False


def test_devices_list_and_revoke(base, client, daemon):
    dev = client.credentials()["device_id"]
    p = client.ok("devices")
    assert "DEVICE" in p.stdout.splitlines()[0]
    assert any(line.startswith("* " + dev) and "test box" in line for line in p.stdout.splitlines())
    assert client.ok("devices", "list", "--user", "root").stdout == p.stdout
    other = Client(base, daemon.socket, name="other")
    other.ok("login", "--peer")
    dev2 = other.credentials()["device_id"]
    tok2 = other.ok("token").stdout.strip()
    # --user that does not own the device: refused before anything is revoked
    p = client.run("devices", "revoke", dev2, "--user", "daemon")
    assert p.returncode == 1 and "is not a device of daemon" in p.stderr
    client.ok("verify", tok2)
    client.ok("devices", "revoke", dev2, "--user", "root")
    v = client.run("verify", tok2)
    assert v.returncode == 1
    assert client.run("devices", "revoke", "dev_AAAAAAAAAAAAAAAA").returncode == 1   # no such device
    assert os.path.exists(client.path("credentials"))            # not this machine's device


def test_devices_forbidden_for_other_users(base, client, daemon):
    dev = client.credentials()["device_id"]
    nobody = Client(base, daemon.socket, user="nobody")
    p = nobody.run("devices", "revoke", dev)
    assert p.returncode == 1 and "403" in p.stderr
    p = nobody.run("devices", "--user", "root")
    assert p.returncode == 1 and "admin" in p.stderr
    assert nobody.json("devices")["devices"] == []               # control: own (none)
    client.ok("verify", client.ok("token").stdout.strip())


# ---- verify, inspect ---------------------------------------------------------

def test_verify_online(client):
    tok = client.ok("token").stdout.strip()
    j = client.json("verify", "--user", "root", "--audience", "sshd", tok)
    assert j["active"] is True and j["sub"] == "root"
    p = client.run("verify", "--user", "daemon", tok)
    assert p.returncode == 1 and "another user" in p.stdout
    h, pl, s = tok.split(".")
    bad = ".".join([h, pl, ("A" if s[0] != "A" else "B") + s[1:]])
    assert client.run("verify", bad).returncode == 1
    assert client.run("verify", "garbage").returncode == 1
    p = client.run("--json", "verify", "garbage")
    assert json.loads(p.stdout)["active"] is False
    p = client.run("verify", "-", input=tok + "\n")               # from stdin
    assert p.returncode == 0


def test_inspect(client):
    tok = client.ok("token").stdout.strip()
    p = client.ok("inspect", tok)
    lines = p.stdout.splitlines()
    assert lines[0].startswith("UNVERIFIED")
    assert any(line.startswith("exp ") and "UTC (in " in line for line in lines)
    assert '"typ": "at+jwt"' in p.stdout
    j = client.json("inspect", tok)
    assert j["verified"] is False and j["claims"]["sub"] == "root" and j["header"]["alg"] == "EdDSA"
    assert client.run("inspect", "not-a-token").returncode == 1


def test_token_from_stdin(client):
    """verify - and inspect - read the token from stdin (ps shows no token);
    over-long or empty input is refused with a clear error."""
    tok = client.ok("token").stdout.strip()
    j = client.json("verify", "--user", "root", "-", input=tok + "\n")
    assert j["active"] is True and j["sub"] == "root"
    assert client.ok("verify", "-", input=tok).stdout.startswith("VALID")           # no newline at the end
    assert client.json("inspect", "-", input=tok + "\r\n")["claims"]["sub"] == "root"
    p = client.run("verify", "-", input=tok[:-2] + "\n")
    assert p.returncode == 1 and p.stdout.startswith("INVALID")
    for verb in ("verify", "inspect"):
        p = client.run(verb, "-", input="A" * 16385 + "\n")                     # JWS_MAX_TOKEN_BYTES + 1
        assert p.returncode == 2 and "token on standard input is longer than 16384 bytes" in p.stderr, p
        p = client.run(verb, "-", input="x" * (1 << 20))                      # 1 MiB, no newline
        assert p.returncode == 2 and "longer than 16384 bytes" in p.stderr, p
        p = client.run(verb, "-", input="\n")
        assert p.returncode == 2 and "standard input is empty" in p.stderr, p
    # the longest accepted line is not refused as too long (control of the cap)
    p = client.run("inspect", "-", input="A" * 16384 + "\n")
    assert p.returncode == 1 and "not a JWS" in p.stderr, p


# ---- askpass -----------------------------------------------------------------

PROMPT = "JWT token for root (tokend): "  # pam_jwt's default prompt for root


@pytest.mark.parametrize("prompt,aud", [(PROMPT, "sshd"), ("(root@server) " + PROMPT, "sshd@server"),
                                        ("(root@10.0.0.1) " + PROMPT, "sshd@10.0.0.1"),
                                        ("JWT token for alice.b-c_d@EXAMPLE\\x (tokend): ", "sshd")])
def test_askpass_answers_pam_jwt_prompt(client, prompt, aud):
    # ssh's "(user@host) " prefix scopes the token to that host (issue 16)
    for prog, args in ((TOKENCTL, ["askpass", prompt]), (ASKPASS, [prompt])):
        p = client.run(*args, prog=prog)
        assert p.returncode == 0, p.stderr
        tok = p.stdout.strip()
        assert claims(tok)["aud"] == [aud] and p.stdout.endswith("\n")


@pytest.mark.parametrize("prompt", [
    # other modules' and servers' prompts, even when they ask for a "token"
    "Enter OTP token for alice: ", "Token: ", "(root@server) Token: ", "Enter your TOKEN for sudo:",
    "(alice@h) Password token: ", "Password: ", "root@server's password: ", "(root@server) Password: ",
    "Are you sure you want to continue connecting (yes/no/[fingerprint])? ",
    "Enter passphrase for key '/root/.ssh/id_ed25519': ",
    # near misses of pam_jwt's own prompt
    "jwt token for root (tokend): ", "JWT token for root (tokend):", "JWT token for root (tokend): \n",
    "JWT token for  (tokend): ", "JWT token for ro ot (tokend): ", "JWT token for root (tokend): again? ",
    "Enter the JWT token for root (tokend): ", "JWT token for root (tokend): (tokend): ",
    "JWT token for " + "a" * 65 + " (tokend): ", "(root@server)" + PROMPT, "(root@ser ver) " + PROMPT,
    "(root@server) (x@y) " + PROMPT, "JWT token for r\x1bt (tokend): ", "JWT token for ro\u202et (tokend): ",
    "", "(", "(root@server) "])
def test_askpass_refuses_other_prompts(client, prompt):
    for prog, args in ((TOKENCTL, ["askpass", prompt]), (ASKPASS, [prompt])):
        p = client.run(*args, prog=prog)
        assert (p.returncode, p.stdout) == (1, ""), (prompt, p)
        assert "not pam_jwt's prompt" in p.stderr, p                           # says why, on stderr
        assert not any(c in p.stderr for c in ("OTP", "\x1b", "\u202e")), p  # never echoes the prompt
        # ssh's host-key question also gets an explanation on stderr (no answer)
        assert ("unknown host key" in p.stderr) == ("continue connecting" in prompt), p
    assert client.run(PROMPT, prog=ASKPASS).returncode == 0                    # control


def test_askpass_audience(client):
    p = client.ok(PROMPT, prog=ASKPASS, env={"TOKENCTL_AUDIENCE": "sudo"})
    assert claims(p.stdout.strip())["aud"] == ["sudo"]
    p = client.ok("askpass", "--audience", "su", PROMPT)
    assert claims(p.stdout.strip())["aud"] == ["su"]
    assert header(p.stdout.strip())["typ"] == "at+jwt"


def test_askpass_not_logged_in_fails_closed(base, daemon):
    p = Client(base, daemon.socket).run(PROMPT, prog=ASKPASS)
    assert p.returncode == 1 and p.stdout == ""
