# SPDX-License-Identifier: MIT
"""tokenctl --json, every command against a real tokend: standard output is
exactly one JSON object (json.loads refuses a second one) with the keys that
tokenctl(1) "JSON OUTPUT" documents, for a success and for at least one
error of each command; an error is {"error": CODE, "message": TEXT} and
exits as the same command does without --json. Also: --json after a bad
option, no command, an unknown command, an unreachable tokend, and the
default audience as null in token and status alike. Root only (a password
login needs a throwaway user)."""

import json
import os

import pytest

from test_tokenctl import COMMANDS
from test_tokenctl_login import PASSWORD, account  # noqa: F401 (fixture: a throwaway user + PAM service)
from test_tokenctl_util import Client, base, have_binaries, start_tokend  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.skipif(not have_binaries(), reason="tokend/tokenctl not built"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a throwaway user, and runs as nobody"),
]

ERROR = {"error", "message"}
LOGIN = {"user", "uid", "device_id", "expires_at", "refresh_expires_at"}
TOKEN = {"access_token", "audience", "expires_at"}
STATUS_OUT = {"logged_in", "tokend_reachable", "socket", "state_dir"}
STATUS_IN = STATUS_OUT | {"user", "uid", "device_id", "device_name", "device_key", "refresh_expires_at",
                          "access_tokens", "device_state"}
INTROSPECTION = {"active", "sub", "uid", "aud", "exp", "iat", "client_id", "jti"}  # + scope when non-empty
OFFLINE = {"active", "offline", "sub", "uid", "aud", "exp", "iat", "client_id", "jti", "kid"}
SIGNATURE_ONLY = {"signature_valid", "kid", "header", "payload"}
INVALID = {"active", "error", "message"}  # verify: the token is not valid
NEW_KEY = {"file", "kid", "alg"}
PROMPT = "JWT token for root (tokend): "

# every command of tokenctl --help, with its subcommands, is exercised below
ALL = set(COMMANDS) - {"devices", "keys", "device"} | {"device approve", "device deny"} | {
    "devices list", "devices revoke", "keys generate", "keys rotate",
                                              "keys list", "keys jwks"}


class JsonRun:
    """tokenctl --json runs of one client, checked and recorded by command."""

    def __init__(self, client):
        self.c = client
        self.seen = {}  # command → {"ok", "error"}

    def __call__(self, cmd, *args, rc=0, keys=None, error=None, required=None, plain_rc=True, input=None):
        argv = cmd.split() + list(args)
        p = self.c.run("--json", *argv, input=input)
        assert p.returncode == rc, (argv, p.returncode, p.stdout, p.stderr)
        obj = json.loads(p.stdout)  # one value, nothing after it
        assert isinstance(obj, dict), (argv, p.stdout)
        if error is not None:
            assert set(obj) == (keys or ERROR) and obj["error"] == error, (argv, obj)
            assert obj["message"] and "\n" not in obj["message"], obj
            assert obj["message"] in p.stderr, (obj, p.stderr)  # the same text people read
        elif keys is not None:
            assert set(obj) == keys, (argv, sorted(obj))
        if required is not None:
            assert required <= set(obj), (argv, sorted(obj))
        if rc != 0 and plain_rc:
            # the same exit status without --json (errors change nothing to run twice)
            q = self.c.run(*argv, input=input)
            assert q.returncode == rc, (argv, q.returncode, q.stderr)
        self.seen.setdefault(cmd, set()).add("error" if rc else "ok")
        return obj


@pytest.fixture
def daemon(account):  # noqa: F811
    t = start_tokend("[Login]\nPAMService=%s\n[Token]\nAllowedAudiences=sshd login su\n" % account[1])
    yield t
    t.close()


def test_every_command_prints_one_object(base, daemon, account):  # noqa: F811
    root = Client(base, daemon.socket)
    run = JsonRun(root)
    nobody = JsonRun(Client(base, daemon.socket, user="nobody"))

    # before any login
    assert run("status", rc=1, keys=STATUS_OUT)["logged_in"] is False
    for cmd in ("token", "refresh", "logout"):
        run(cmd, rc=1, error="not_logged_in")
    run("askpass", PROMPT, rc=1, error="not_logged_in")
    run("askpass", "Password: ", rc=1, error="failed")                 # not pam_jwt's prompt: no token
    run("login", "--user", account[0], rc=1, error="invalid_credentials", input=PASSWORD + "x\n")
    run("login", "--peer", "--device-name", "", rc=2, error="usage")

    # a device, and its tokens
    who = run("login", "--peer", keys=LOGIN)
    assert who["user"] == "root" and who["device_id"].startswith("dev_")
    tok = run("token", keys=TOKEN)
    assert tok["audience"] is None                                     # the default audience: null
    assert run("token", "--audience", "su", keys=TOKEN)["audience"] == "su"
    run("token", "--audience", "tdnotallowed", rc=1, error="forbidden")
    run("token", "--audience", "not a name", rc=2, error="usage")
    assert run("refresh", keys=TOKEN)["audience"] is None
    run("refresh", "--ttl", "0", rc=2, error="usage")
    assert run("askpass", PROMPT, keys=TOKEN)["audience"] == "sshd"

    st = run("status", required=STATUS_IN)
    assert set(st) == STATUS_IN, sorted(st)
    assert st["device_state"] == "active" and st["device_id"] == who["device_id"]
    assert all(set(t) == {"audience", "expires_at"} for t in st["access_tokens"])
    # the default audience is null in status too, never "(default)"
    assert {t["audience"] for t in st["access_tokens"]} == {None, "su", "sshd"}
    run("status", "extra", rc=2, error="usage")

    # devices
    devs = run("devices list", keys={"devices"})["devices"]
    assert who["device_id"] in [d["id"] for d in devs]
    nobody("devices list", "--user", "root", rc=1, error="forbidden")
    other = Client(base, daemon.socket, name="second")
    other.ok("login", "--peer")
    victim = other.credentials()["device_id"]
    assert run("devices revoke", victim, keys={"revoked"}) == {"revoked": victim}
    run("devices revoke", "dev_AAAAAAAAAAAAAAAA", rc=1, error="not_found")

    # device approve|deny: the code of another device's login --device (RFC 8628)
    def user_code():
        r = daemon.api.request("POST", "/oauth2/device_authorization", "client_id=json-test",
                               content_type="application/x-www-form-urlencoded")
        assert r.status == 200, r
        return r.json["user_code"]
    ok = run("device approve", user_code(), keys={"approved", "client_id", "device_name", "device_id"})
    assert ok["approved"] is True and ok["client_id"] == "json-test"
    assert run("device deny", user_code(), keys={"denied", "client_id"})["denied"] is True
    run("device approve", "BCDF-BCDF", rc=1, error="not_found")
    run("device deny", "BCDF-BCDF", rc=1, error="not_found")
    run("device approve", rc=2, error="usage")

    # verify, online and offline, and inspect
    at = run("token")["access_token"]
    good = run("verify", at, required=INTROSPECTION)
    assert good["active"] is True and set(good) - INTROSPECTION <= {"scope"}, sorted(good)
    bad = run("verify", at[:-4] + "AAAA", rc=1, keys=INVALID, required=INVALID)
    assert bad["active"] is False and bad["error"] == "invalid_token"
    jwks_path = os.path.join(base, "jwks.json")
    with open(jwks_path, "w") as f:
        json.dump(daemon.api.jwks().json, f)
    run("verify", "--jwks", jwks_path, at, keys=OFFLINE)
    run("verify", "--jwks", jwks_path, "--signature-only", at, keys=SIGNATURE_ONLY)
    run("verify", "--jwks", os.path.join(base, "no-such-jwks"), at, rc=2, error="usage")
    run("verify", rc=2, error="usage")
    ins = run("inspect", at, keys={"verified", "header", "claims"})
    assert ins["verified"] is False and ins["claims"]["sub"] == "root"
    run("inspect", "not-a-token", rc=1, error="failed")

    # audit, unlock
    rows = run("audit", keys={"audit"})["audit"]
    assert rows and {"id", "time", "event", "user"} <= set(rows[0])
    run("audit", "--since", "yesterday", rc=2, error="usage")
    nobody("audit", "--user", "root", rc=1, error="forbidden")
    # root's two wrong passwords for the throwaway user (with and without
    # --json) count against uid 0's total over other names: not locked
    assert run("unlock", "root", keys={"user", "was_locked", "failures"}) == {
        "user": "root", "was_locked": False, "failures": 2}
    nobody("unlock", "root", rc=1, error="forbidden")
    run("unlock", "tdnouser-" + "x" * 8, rc=1, error="not_found")

    # keys (no tokend involved)
    kd = os.path.join(base, "keys")
    k1 = run("keys generate", "--dir", kd, keys=NEW_KEY)
    run("keys generate", "--dir", kd, "--alg", "HS256", rc=2, error="usage")
    k2 = run("keys rotate", "--dir", kd, keys=NEW_KEY)
    run("keys rotate", "--dir", os.path.join(jwks_path, "keys"), rc=1, error="failed")  # under a file
    lst = run("keys list", "--dir", kd, keys={"keys"})["keys"]             # an object, not a bare array
    assert {k["kid"] for k in lst} == {k1["kid"], k2["kid"]}
    assert all(set(k) >= {"file", "kid", "alg", "active"} for k in lst)
    run("keys list", "--dir", os.path.join(base, "nope"), rc=1, error="failed")
    jw = run("keys jwks", "--dir", kd, keys={"keys"})["keys"]
    assert {k["kid"] for k in jw} == {k1["kid"], k2["kid"]}
    os.makedirs(os.path.join(base, "empty"), mode=0o700)
    run("keys jwks", "--dir", os.path.join(base, "empty"), rc=1, error="failed")

    # logout, then the same commands unreachable
    assert run("logout", keys={"device_id", "already_revoked"}) == {"device_id": who["device_id"],
                                                                   "already_revoked": False}
    run("logout", rc=1, error="not_logged_in")
    away = JsonRun(Client(base, os.path.join(base, "no-tokend.sock"), name="away"))
    away("devices list", rc=3, error="unreachable")
    assert away("status", rc=3, keys=STATUS_OUT)["tokend_reachable"] is False

    for cmd in sorted(ALL):
        assert run.seen.get(cmd, set()) | nobody.seen.get(cmd, set()) | away.seen.get(cmd, set()) == \
            {"ok", "error"}, (cmd, run.seen.get(cmd))


@pytest.mark.parametrize("argv,rc", [
    ([], 2),                                  # no command
    (["no-such-command"], 2),
    (["devices", "--no-such-option"], 2),     # --json after the bad option counts too
    (["devices", "frobnicate"], 2),
    (["keys"], 2),
    (["--bus=not-an-address", "status"], 2),
    (["--bus=unix:path=/nonexistent/bus", "devices"], 3),
])
def test_global_errors_are_json(base, argv, rc):
    c = Client(base, "/nonexistent.sock")
    p = c.run(*(argv + ["--json"]))
    assert p.returncode == rc, p
    obj = json.loads(p.stdout)
    assert set(obj) == ERROR and obj["error"] == ("usage" if rc == 2 else "unreachable"), obj
    assert c.run(*argv).returncode == rc
    # control: --help stays text, exit 0
    assert c.run("--json", "--help").stdout.startswith("Usage: tokenctl")
