# SPDX-License-Identifier: MIT
"""tokend --check-config [--dump] (like sshd -t): the real binary on good,
bad, misspelt and drop-in configurations; every problem is named with file,
line and reason on stderr and exits 1, a good configuration exits 0; the
dump is every key in tokend.conf form and loads back to itself. A check
writes nothing (no key, no database). At a normal start a misspelt key stays
a warning, now with the hint."""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import TOP_SRCDIR, Tokend, find_binary, jwt_parts, tokend_factory  # noqa: F401,E402

TOKEND = find_binary("tokend")


@pytest.fixture
def work(tmp_path):
    if not TOKEND:
        pytest.skip("tokend is not built")
    conf = tmp_path / "tokend.conf"
    conf.write_text("")
    return tmp_path


def check(work, *extra, config=None):
    argv = [TOKEND, "--check-config", "--config", str(config or work / "tokend.conf"),
            "--state-dir", str(work / "state")] + list(extra)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_good_config_exits_0_and_writes_nothing(work):
    (work / "tokend.conf").write_text("[Token]\nAccessTokenLifetime=5min\nDefaultAudience=sudo\n")
    r = check(work)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    # The only message: no key yet (tokend makes one when it starts).
    assert r.stderr == "tokend: note: no signing key in %s/state/keys yet; tokend generates one when it starts\n" % work
    assert not (work / "state").exists(), "a check must not create the state directory, keys or database"


def test_every_problem_named_with_file_line_reason(work):
    conf = work / "tokend.conf"
    conf.write_text("[Token]\n"
                    "AccessTokenLifetme=5min\n"          # line 2: typo
                    "MaxLength=1\n"                      # line 3: out of range
                    "Issuer=fine\n"
                    "[Login]\n"
                    "MaxFailures=many\n")                # line 6: not a number
    d = work / "tokend.conf.d"
    d.mkdir()
    (d / "10-skew.conf").write_text("[Token]\nClockSkew=2h\n")
    (d / "20-ok.conf").write_text("[Token]\nIssuer=ok\n")
    (d / "30-bus.conf").write_text("# comment\n[Bus]\nBus=nonsense\n")
    r = check(work)
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines == [
        "tokend: %s:2: unknown key [Token] AccessTokenLifetme (did you mean AccessTokenLifetime?)" % conf,
        "tokend: %s:3: [Token] MaxLength=1: out of range (128..8192)" % conf,
        "tokend: %s:6: [Login] MaxFailures=many: not a decimal number" % conf,
        "tokend: %s/10-skew.conf:2: [Token] ClockSkew=2h: out of range (at most 1h)" % d,
        "tokend: %s/30-bus.conf:3: [Bus] Bus=nonsense: must be system, session, none or a D-Bus address "
        "(TRANSPORT:KEY=VALUE,…)" % d,
        "tokend: 5 problems in the configuration; not loaded",
    ], r.stderr
    # --dump never prints a configuration that has problems.
    r = check(work, "--dump")
    assert r.returncode == 1 and r.stdout == ""


def test_typo_is_an_error_under_check_and_a_warning_at_start(work, tokend_factory):  # noqa: F811
    text = "[Token]\nAccessTokenLifetme=5min\n"
    (work / "tokend.conf").write_text(text)
    r = check(work)
    assert r.returncode == 1
    assert "tokend.conf:2: unknown key [Token] AccessTokenLifetme (did you mean AccessTokenLifetime?)" in r.stderr
    # Control: the right spelling passes.
    (work / "tokend.conf").write_text("[Token]\nAccessTokenLifetime=5min\n")
    assert check(work).returncode == 0

    # A daemon started without the check (no systemd) still starts, warns
    # with the hint, and keeps the default: the documented behaviour.
    t = tokend_factory(text)
    assert "unknown key [Token] AccessTokenLifetme (did you mean AccessTokenLifetime?), ignoring" in t.log()
    r = t.api.issue_token()
    assert r.status == 200, r
    claims = jwt_parts(r.json["access_token"])[1]
    assert claims["exp"] - claims["iat"] == 15 * 60


def test_broken_dropins_named(work):
    d = work / "tokend.conf.d"
    d.mkdir()
    (d / "a.conf").write_bytes(b"[Token]\nIss\0uer=x\n")
    (d / "b.conf").mkdir()
    (d / "c.conf").write_text("no section, no equals sign\n")
    (d / "d.conf").write_text("[Tokens]\nIssuer=x\n")
    (d / "e.conf.disabled").write_text("[Token]\nMaxLength=1\n")   # not a drop-in: ignored
    r = check(work)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "tokend: %s/a.conf:2: contains a NUL byte" % d,
        "tokend: %s/b.conf: not a regular file" % d,
        "tokend: %s/c.conf:1: syntax error (expected [Section] or Key=value)" % d,
        "tokend: %s/d.conf:2: unknown section [Tokens] Issuer (did you mean [Token]?)" % d,
        "tokend: 4 problems in the configuration; not loaded",
    ], r.stderr


def test_cross_key_rule(work):
    (work / "tokend.conf").write_text("[Token]\nDefaultAudience=sshd sudo\nAllowedAudiences=sshd\n")
    r = check(work)
    assert r.returncode == 1
    assert "tokend.conf:2: [Token] DefaultAudience=sshd sudo: default audience 'sudo' is not in [Token] " \
           "AllowedAudiences" in r.stderr


def test_dump_round_trips(work):
    (work / "tokend.conf").write_text("[Token]\nIssuer=me\nAccessTokenLifetime=90min\nAllowedAudiences=sshd sudo\n"
                                      "DefaultAudience=sudo\n[Socket]\nMode=600\n")
    d = work / "tokend.conf.d"
    d.mkdir()
    (d / "50-login.conf").write_text("[Login]\nMaxFailures=9\nAllowPeerLogin=off\n")
    r = check(work, "--dump", "--bus", "none")
    assert r.returncode == 0, r.stderr
    dump = r.stdout
    for line in ("[Token]", "Issuer=me", "AccessTokenLifetime=1h 30min", "AllowedAudiences=sshd sudo",
                 "DefaultAudience=sudo", "Mode=0600", "MaxFailures=9", "AllowPeerLogin=no",
                 "Directory=%s/state/keys" % work, "Database=%s/state/tokend.db" % work,
                 "Bus=none", "Active=", "RefreshTokenLifetime=1w", "[API]", "EnableDocs=no"):
        assert line in dump.splitlines(), (line, dump)
    # Every key of the table is there: one "Key=" line per key of a section
    # (names repeat across sections: [Token] Issuer=, [Verifier] Issuer=).
    keys, section = [], None
    for ln in dump.splitlines():
        if ln.startswith("["):
            section = ln
        elif "=" in ln:
            keys.append((section, ln.split("=")[0]))
    assert len(keys) == len(set(keys)) and len(keys) >= 26

    again = work / "again.conf"
    again.write_text(dump)
    r2 = check(work, "--dump", config=again)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout == dump


def test_keys_checked_read_only(work):
    keys = work / "state" / "keys"
    keys.mkdir(parents=True)
    (keys / "broken.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    r = check(work)
    assert r.returncode == 1
    assert "tokend: keys: " in r.stderr and "broken.pem" in r.stderr, r.stderr
    assert sorted(os.listdir(keys)) == ["broken.pem"]
    # Control: a real key (made by a daemon start) passes, silently.
    (keys / "broken.pem").unlink()
    t = Tokend(config="")
    try:
        t.state_dir = str(work / "state")
        t.start()
        t.stop()
    finally:
        t.close()
    r = check(work)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_bad_command_line_override(work):
    r = check(work, "--bus", "no-colon")
    assert r.returncode == 1
    assert "--bus no-colon: not system, session, none or a D-Bus address" in r.stderr


def test_unit_checks_before_start_and_reload():
    with open(os.path.join(TOP_SRCDIR, "etc", "tokend.service.in")) as f:
        unit = f.read().splitlines()
    pre = [ln for ln in unit if ln.startswith("ExecStartPre=")]
    reload_ = [ln for ln in unit if ln.startswith("ExecReload=")]
    assert pre == ["ExecStartPre=@sbindir@/tokend --check-config --config @sysconfdir@/tokend/tokend.conf"]
    # The check first: a failing ExecReload= line stops the ones after it,
    # so a bad edit never reaches the running daemon.
    assert reload_ == ["ExecReload=@sbindir@/tokend --check-config --config @sysconfdir@/tokend/tokend.conf",
                       "ExecReload=/bin/kill -HUP $MAINPID"]


def test_hostile_dropin_name_escaped(work):
    d = work / "tokend.conf.d"
    d.mkdir()
    (d / "a\x1b[31mred.conf").write_text("[Token]\nMaxLength=1\n")
    (d / "b.conf").write_text("[Token]\nClockSkew=2h\n")     # control: a plain name, as is
    r = check(work)
    assert r.returncode == 1
    assert "\x1b" not in r.stderr
    assert "a\\x1b[31mred.conf:2: [Token] MaxLength=1: out of range" in r.stderr, r.stderr
    assert "%s/b.conf:2: [Token] ClockSkew=2h" % d in r.stderr
