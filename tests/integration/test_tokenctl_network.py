# SPDX-License-Identifier: MIT
"""tokenctl --issuer URL over HTTPS, as an unprivileged throwaway user with
no tokend socket at all (TOKEND_SOCKET points nowhere): password login
through tokend's real PAM stack (pam_unix), token, refresh, status,
devices, askpass and logout, with the CA from --ca-file, TOKEND_ISSUER or
~/.config/tokend/tokenctl.conf; state is kept per issuer. A client whose CA
does not match exits 3 naming the TLS failure (control: the right CA); an
http:// issuer and --issuer with --socket are usage errors. Needs root
(throwaway user, /etc/pam.d service)."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import jwt_parts, pam_user, system_user, tokend_factory  # noqa: E402,F401
from tdnet import TestCA, free_port, network_config  # noqa: E402
from test_tokenctl_util import TOKENCTL, Client, base, have_binaries  # noqa: E402,F401

pytestmark = pytest.mark.skipif(not have_binaries(), reason="tokend/tokenctl not built")
ASKPASS = os.path.join(os.path.dirname(TOKENCTL), "tokenctl-askpass")


@pytest.fixture
def net(base, pam_user, tokend_factory):  # noqa: F811
    """(daemon, url, ca, client as the user, user, password); base is 0755."""
    user, service = pam_user
    ca = TestCA(os.path.join(base, "ca"))
    cert, key = ca.issue("issuer")
    os.chmod(ca.dir, 0o755)
    port = free_port()
    url = "https://127.0.0.1:%d" % port
    d = tokend_factory("[Login]\nPAMService=%s\nFailureDelay=0\n" % service +
                       network_config("127.0.0.1:%d" % port, cert, key, public_url=url))
    c = Client(os.path.join(base, "clients"), os.path.join(base, "no-such.sock"), user=user.name)
    return d, url, ca, c, user.name, user.password


def issuer_state(c, url):
    return os.path.join(c.state, "issuers", url.replace(":", "%3A").replace("/", "%2F"))


def test_login_token_refresh_status_devices_logout(net):
    d, url, ca, c, user, password = net
    g = ["--issuer", url, "--ca-file", ca.cert]
    p = c.ok(*g, "login", "--user", user, "--device-name", "laptop", input=password + "\n")
    assert "Logged in as %s" % user in p.stdout, p.stdout
    assert password not in p.stdout + p.stderr
    # state of this issuer, and nothing for the (absent) socket
    st = issuer_state(c, url)
    assert os.path.isfile(os.path.join(st, "credentials")), os.listdir(c.state)
    assert not os.path.exists(os.path.join(c.state, "credentials"))
    assert os.stat(os.path.join(st, "credentials")).st_uid == c.uid
    tok = c.ok(*g, "token").stdout.strip()
    cl = jwt_parts(tok)[1]
    assert cl["sub"] == user and cl["iss"] == url
    assert c.ok(*g, "token").stdout.strip() == tok  # cached
    c.ok(*g, "refresh")
    tok2 = c.ok(*g, "token").stdout.strip()
    assert tok2 != tok
    s = c.json(*g, "status")
    assert s["logged_in"] and s["tokend_reachable"] and s["issuer"] == url and s["user"] == user, s
    devs = c.json(*g, "devices")
    assert [x["name"] for x in devs["devices"]] == ["laptop"], devs
    c.ok(*g, "verify", "--user", user, tok2)
    rows = c.json(*g, "audit")["audit"]
    assert rows and all(r["user"] == user for r in rows), rows
    # the socket knows nothing of this: no state, no socket
    r = c.run("token")
    assert r.returncode in (1, 3), (r.returncode, r.stderr)
    c.ok(*g, "logout")
    assert not os.path.exists(os.path.join(st, "credentials"))
    assert d.api.verify(tok2).error == "token_revoked"
    r = c.run(*g, "token")
    assert r.returncode == 1 and "login" in r.stderr, r.stderr


def test_issuer_from_environment_and_config_file_and_askpass(net):
    d, url, ca, c, user, password = net
    env = {"TOKEND_ISSUER": url}
    c.ok("--ca-file", ca.cert, "login", "--user", user, input=password + "\n", env=env)
    tok = c.ok("--ca-file", ca.cert, "token", env=env).stdout.strip()
    assert jwt_parts(tok)[1]["iss"] == url
    # the configuration file: issuer= and ca-file=
    conf = os.path.join(c.home, ".config", "tokend")
    os.makedirs(conf)
    with open(os.path.join(conf, "tokenctl.conf"), "w") as f:
        f.write("# tokenctl\nissuer=%s\nca-file=%s\n" % (url, ca.cert))
    env = {"TOKEND_SOCKET": ""}  # the file's issuer= yields to $TOKEND_SOCKET, so unset it here
    assert c.ok("token", env=env).stdout.strip() == tok
    p = c.ok("(%s@127.0.0.1) JWT token for %s (tokend): " % (user, user), prog=ASKPASS, env=env)
    assert jwt_parts(p.stdout.strip())[1]["sub"] == user
    # --socket on the command line beats the file's issuer
    r = c.run("--socket", "/nonexistent/tokend.sock", "token", env=env)
    assert r.returncode == 1 and "/tokend/credentials" in r.stderr and "issuers" not in r.stderr, r.stderr


def test_wrong_ca_exits_3_naming_tls(net, base):
    d, url, ca, c, user, password = net
    other = TestCA(os.path.join(base, "other"), name="not the issuer's CA")
    os.chmod(other.dir, 0o755)
    r = c.run("--issuer", url, "--ca-file", other.cert, "login", "--user", user, input=password + "\n")
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "TLS" in r.stderr and "certificate" in r.stderr.lower(), r.stderr
    assert password not in r.stderr
    # without --ca-file: the system store does not know the test CA either
    r = c.run("--issuer", url, "status")
    assert r.returncode == 3 and "TLS" in r.stderr, r.stderr
    # --json: the error as JSON too
    r = c.run("--json", "--issuer", url, "--ca-file", other.cert, "status")
    assert r.returncode == 3
    json.loads(r.stdout)
    # control: the right CA
    c.ok("--issuer", url, "--ca-file", ca.cert, "login", "--user", user, input=password + "\n")


def test_usage_errors(net):
    d, url, ca, c, user, password = net
    for args in (["--issuer", url.replace("https", "http"), "status"],
                 ["--issuer", "https://", "status"],
                 ["--issuer", url + "/?x=1", "status"],
                 ["--issuer", url, "--socket", "/tmp/x.sock", "status"]):
        r = c.run(*args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
    r = c.run("--issuer", url + "/", "--ca-file", ca.cert, "status")
    assert r.returncode == 1 and "login" in r.stdout + r.stderr, r  # reachable, not logged in


def test_host_scoped_tokens(net):
    d, url, ca, c, user, password = net
    g = ["--issuer", url, "--ca-file", ca.cert]
    c.ok(*g, "login", "--user", user, input=password + "\n")
    cl = jwt_parts(c.ok(*g, "token", "--host", "web1").stdout.strip())[1]
    assert cl["aud"] == ["sshd@web1"] and "uid" not in cl and "cnf" not in cl, cl
    cl = jwt_parts(c.ok(*g, "token", "--host", "web1", "--audience", "login").stdout.strip())[1]
    assert cl["aud"] == ["login@web1"], cl
    # askpass: the host from ssh's "(user@host) " prefix
    env = {"TOKEND_ISSUER": url}
    prompt = "(%s@web2.example.com) JWT token for %s (tokend): " % (user, user)
    tok = c.ok("--ca-file", ca.cert, "askpass", prompt, env=env).stdout.strip()
    assert jwt_parts(tok)[1]["aud"] == ["sshd@web2.example.com"]
    r = c.run("--ca-file", ca.cert, "askpass", "(%s@::1) JWT token for %s (tokend): " % (user, user), env=env)
    assert r.returncode == 1 and r.stdout == "" and "host name" in r.stderr, r
    for bad in ("::1", "-x", "a" * 65, "a b"):
        r = c.run(*g, "token", "--host", bad)
        assert r.returncode == 2, (bad, r.stderr)
    r = c.run(*g, "token", "--host", "web1", "--audience", "sshd@web2")
    assert r.returncode == 2, r.stderr
