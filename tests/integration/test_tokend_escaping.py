# SPDX-License-Identifier: MIT
"""Control characters from callers never reach a log line, an audit row or a
terminal as themselves (issue 13 point 5). Each hostile value carries ESC,
a newline (where the protocol lets one through), U+009B (a one-character
CSI) and U+202E (a right-to-left override):

* the HTTP method quoted in the 405 answer and its log line is escaped;
* verify's rhost and tty are escaped in the verify_failed audit row;
* device_name is refused with 400 invalid_request naming the field, at
  password login and at peer login (the bus Login is in tests/bus);
* tokenctl escapes what tokend answers (device names, users) and what it
  echoes back of its command line.

Each case has a control: the ordinary value goes through unchanged."""

import json
import os
import sqlite3
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import PamService, need_root, raw_exchange, system_user, tokend_factory  # noqa: E402,F401
from test_tokenctl_util import Client, base, have_binaries  # noqa: E402,F401

ESC, CSI, RLO = "\x1b", "\u009b", "\u202e"
HOSTILE = "a" + ESC + "[2J" + "\nforged: b" + CSI + "31m" + RLO + "cba"
RAW = (ESC.encode(), b"\n", CSI.encode(), RLO.encode())   # none may appear as itself
TABLE_NAME = ESC + "[2J" + CSI + "31m" + RLO + "\nforged line"
UNIX_STACK = "auth required pam_unix.so\naccount required pam_unix.so\n"


def assert_no_raw(data, what):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    for r in RAW:
        if r == b"\n":
            continue  # lines are separated by newlines; checked per line by the callers
        assert r not in data, "%r found raw in %s: %r" % (r, what, data)


def log_lines(d, needle):
    return [ln for ln in d.log().splitlines() if needle in ln]


# ---- the 405 method ----------------------------------------------------------

def method_405(d, method):
    ans = raw_exchange(d.socket, method + b" /api/auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    head, _, body = ans.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_405_method_is_escaped(tokend_factory):  # noqa: F811
    d = tokend_factory()
    status, body = method_405(d, b"PUT")                        # control
    assert status == 405 and json.loads(body)["message"] == "method PUT is not allowed here; use POST"
    assert log_lines(d, "method PUT is not allowed here")

    # ESC, U+009B, U+202E and a byte that is not UTF-8; libmicrohttpd ends
    # the request line at a newline, so none can be in a method.
    hostile = b"X" + ESC.encode() + b"[2J" + CSI.encode() + RLO.encode() + b"\xff"
    status, body = method_405(d, hostile)
    assert status == 405
    msg = json.loads(body)["message"]                          # valid JSON, valid UTF-8
    assert msg == "method X\\x1b[2J\\u{9b}\\u{202e}\\xff is not allowed here; use POST"
    lines = log_lines(d, "is not allowed here")
    assert len(lines) == 2 and "X\\x1b[2J\\u{9b}\\u{202e}\\xff" in lines[1], lines
    with open(d.log_path, "rb") as f:
        assert_no_raw(f.read(), "the log")
    assert d.api.issue_token().status == 200                  # still serving


# ---- verify's rhost and tty into audit rows -----------------------------------

def test_verify_rhost_tty_escaped_in_audit(tokend_factory):  # noqa: F811
    d = tokend_factory()
    tok = d.api.issue_token().json["access_token"]
    bad = tok[:-4] + ("AAAA" if not tok.endswith("AAAA") else "BBBB")
    # control: ordinary values are kept as they are
    r = d.api.post("/api/auth/verify", dict(token=bad, service="sshd", rhost="host-1.example", tty="pts/3"))
    assert r.status == 401
    r = d.api.post("/api/auth/verify", dict(token=bad, service="sshd", rhost=HOSTILE, tty="tty" + ESC + "\n" + RLO))
    assert r.status == 401
    rows = d.audit("verify_failed")
    assert len(rows) == 2
    assert "rhost=host-1.example tty=pts/3:" in rows[0]["detail"]
    want = "rhost=a\\x1b[2J\\x0aforged: b\\u{9b}31m\\u{202e}cba tty=tty\\x1b\\x0a\\u{202e}:"
    assert want in rows[1]["detail"], rows[1]
    for row in rows:
        assert "\n" not in row["detail"]
        assert_no_raw(row["detail"], "an audit row")
    # the good token still verifies
    assert d.api.post("/api/auth/verify", dict(token=tok, service="sshd", rhost=HOSTILE)).status == 200


# ---- device_name --------------------------------------------------------------

# (invalid UTF-8 cannot be sent: tokend's JSON parser refuses the whole body)
BAD_NAMES = ["lap" + ESC + "[2Jtop", "lap\ntop", "lap" + CSI + "top", "evil" + RLO + "txt.exe", "x\u2066y",
             "lap\x7ftop", "lap\u0085top"]


def name_refused(r):
    return r.status == 400 and r.error == "invalid_request" and "device_name" in r.message


def _json_body(name):
    return json.dumps({"device_name": name}, ensure_ascii=False).encode()


def test_peer_login_refuses_control_device_name(tokend_factory):  # noqa: F811
    d = tokend_factory()
    for name in BAD_NAMES:
        r = d.api.request("POST", "/api/auth/token", _json_body(name))
        assert name_refused(r), (name, r)
    assert d.db().execute("SELECT count(*) FROM devices").fetchone()[0] == 0   # nothing enrolled
    for good in ("laptop", "café 東京 🔑", "Büro-PC (2)"):                  # controls
        r = d.api.issue_token(device_name=good)
        assert r.status == 200, r
        (name,) = d.db().execute("SELECT name FROM devices WHERE id = ?", (r.json["device_id"],)).fetchone()
        assert name == good


def test_password_login_refuses_control_device_name(tokend_factory, system_user):  # noqa: F811
    need_root("create a user and an /etc/pam.d service")
    user = system_user("tdesc_", "S3cret-pw-" + os.urandom(4).hex())
    svc = PamService(UNIX_STACK)
    try:
        d = tokend_factory("[Login]\nPAMService=%s\nFailureDelay=0\n" % svc.name)
        for name in (BAD_NAMES[0], BAD_NAMES[2], BAD_NAMES[3]):
            r = d.api.login(user.name, user.password, device_name=name)
            assert name_refused(r), (name, r)
        r = d.api.login(user.name, user.password, device_name="work laptop")   # control
        assert r.status == 200, r
        assert [x["name"] for x in d.api.devices(user=user.name).json["devices"]] == ["work laptop"]
    finally:
        svc.close()


# ---- tokenctl's terminal output -------------------------------------------------

pytestmark_tokenctl = pytest.mark.skipif(not have_binaries(), reason="tokend/tokenctl not built")


@pytestmark_tokenctl
def test_tokenctl_devices_escapes_names(base, tokend_factory):  # noqa: F811
    d = tokend_factory()
    c = Client(base, d.socket)
    c.ok("login", "--peer", "--device-name", "plain box")
    good = c.credentials()["device_id"]
    dev = d.api.issue_token(device_name="old").json["device_id"]
    # A row written before names were checked (an older tokend): tokend
    # still lists it, tokenctl must not hand it to the terminal raw.
    con = sqlite3.connect(d.db_path, timeout=10)
    with con:
        con.execute("UPDATE devices SET name = ? WHERE id = ?", (TABLE_NAME, dev))
    con.close()
    p = c.ok("devices")
    assert_no_raw(p.stdout, "tokenctl devices")
    lines = p.stdout.splitlines()
    assert len(lines) == 4, lines      # header, two devices, footnote: no forged line
    (row,) = [ln for ln in lines if dev in ln]
    assert "\\x1b[2J\\u{9b}31m\\u{202e}" in row   # the NAME column is 24 wide
    (mine,) = [ln for ln in lines if good in ln]
    assert mine.startswith("* ") and "plain box" in mine          # control
    # --json: the same bytes as \u escapes, still the same JSON value
    out = c.ok("devices", "--json").stdout
    assert_no_raw(out, "tokenctl devices --json")
    assert "\\u009b" in out.lower() and "\\u202e" in out.lower()
    assert TABLE_NAME in [x["name"] for x in json.loads(out)["devices"]]


@pytestmark_tokenctl
def test_tokenctl_error_messages_escaped(base, tokend_factory):  # noqa: F811
    d = tokend_factory()
    c = Client(base, d.socket)
    p = c.run("devices", "x" + ESC + "]0;pwned" + CSI + RLO)
    assert p.returncode == 2
    assert "unknown subcommand 'x\\x1b]0;pwned\\u{9b}\\u{202e}'" in p.stderr
    assert_no_raw(p.stderr, "tokenctl's usage error")
    p = c.run("devices", "bogus")                                                  # control
    assert p.returncode == 2 and "unknown subcommand 'bogus'" in p.stderr
    # tokend's refusal, printed by tokenctl
    p = c.run("login", "--peer", "--device-name", "box" + CSI + "2J")
    assert p.returncode == 2 and "device_name must be" in p.stderr, p.stderr
    assert_no_raw(p.stderr, "tokenctl login")
    c.ok("login", "--peer", "--device-name", "box")                                # control
