# SPDX-License-Identifier: MIT
"""ssh with a host-scoped token fetched over HTTPS (issue 16): a real sshd on
127.0.0.1 with pam_jwt, and a tokend that is also the issuer on TCP
([Network], certificate from a throwaway CA made with openssl). An
unprivileged "laptop" user with no state for the socket (TOKEND_SOCKET
points nowhere) logs in through `tokenctl --issuer https://127.0.0.1:PORT`
(password, real PAM stack) and sshes in through tokenctl-askpass: askpass
reads the host from ssh's "(user@HOST)" prompt prefix and fetches an
sshd@HOST token over HTTPS. A token scoped to another host name (askpass
for `ssh web2`, and one from `tokenctl token --host`) is refused by that
sshd. Root only."""

import os
import secrets
import shutil
import socket
import sys
import tempfile

import pytest

from e2e import (TOKENCTL, TOKENCTL_ASKPASS, DAEMON_CONFIG, EtcFile,  # noqa: F401
                 e2e_user, etc_files, jwt_parts, jwt_stack, need, sshd_factory, system_user, tokend_factory,
                 wait_audit)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from tdnet import TestCA, free_port, network_config  # noqa: E402
from test_e2e_askpass import UserTokenctl, tokend_has_asan  # noqa: E402

PASSWORD = "Tok-" + secrets.token_urlsafe(12)
HOST = socket.gethostname()


@pytest.fixture
def setup(e2e_user, etc_files, tokend_factory, sshd_factory):
    need(TOKENCTL, TOKENCTL_ASKPASS)
    if tokend_has_asan():
        pytest.skip("ASan build: pam_unix inside tokend cannot check the password (see test_e2e_askpass)")
    user = e2e_user(PASSWORD)
    pam = EtcFile("/etc/pam.d", "auth required pam_unix.so\naccount required pam_unix.so\n", prefix="tde2e-tokend-")
    etc_files.append(pam)
    pki = tempfile.mkdtemp(prefix="tde2e-pki-", dir="/tmp")
    os.chmod(pki, 0o755)
    ca = TestCA(os.path.join(pki, "ca"))
    os.chmod(ca.dir, 0o755)
    cert, key = ca.issue("issuer")
    port = free_port()
    url = "https://127.0.0.1:%d" % port
    daemon = tokend_factory(DAEMON_CONFIG + "[Login]\nPAMService=%s\n" % pam.name +
                            network_config("127.0.0.1:%d" % port, cert, key, public_url=url))
    sshd = sshd_factory(jwt_stack(daemon.socket, "sshd"), [user.name])
    ctl = UserTokenctl(user, os.path.join(pki, "no-such.sock"))
    conf = os.path.join(ctl.home, "config")
    os.makedirs(os.path.join(conf, "tokend"))
    with open(os.path.join(conf, "tokend", "tokenctl.conf"), "w") as f:
        f.write("issuer=%s\nca-file=%s\n" % (url, ca.cert))
    os.chown(conf, ctl.pw.pw_uid, ctl.pw.pw_gid)
    ctl.env["XDG_CONFIG_HOME"] = conf
    ctl.env["TOKEND_SOCKET"] = ""  # the file's issuer= applies only without a socket given
    yield user, daemon, sshd, ctl, url
    ctl.close()
    shutil.rmtree(pki, ignore_errors=True)


def test_ssh_with_a_host_scoped_token_over_https(setup):
    user, daemon, sshd, ctl, url = setup
    p = ctl.run("login", "--user", user.name, "--device-name", "laptop", input=PASSWORD + "\n")
    assert p.returncode == 0, p
    assert "issuers" in os.listdir(os.path.join(ctl.env["XDG_STATE_HOME"], "tokend"))

    env = {k: ctl.env[k] for k in ("TOKEND_SOCKET", "XDG_STATE_HOME", "XDG_CONFIG_HOME")}
    p = sshd.ssh(user.name, askpass=TOKENCTL_ASKPASS, as_user=ctl.pw, env=env, host=HOST)
    assert p.returncode == 0, "rc=%d %s\nsshd:\n%s\ntokend:\n%s" % (p.returncode, p.stderr, sshd.log()[-2000:],
                                                                   daemon.log()[-2000:])
    assert p.stdout.splitlines() == [user.name], p
    # what askpass fetched: a token for sshd on this host only, from the issuer
    p = ctl.run("--json", "status")
    assert p.returncode == 0 and '"issuer"' in p.stdout, p
    p = ctl.run("(%s@%s) JWT token for %s (tokend): " % (user.name, HOST, user.name), prog=TOKENCTL_ASKPASS)
    cl = jwt_parts(p.stdout.strip())[1]
    assert cl["aud"] == ["sshd@" + HOST] and cl["iss"] == url and cl["sub"] == user.name, cl

    # a token scoped to another host name is refused by this sshd, through
    # askpass (ssh web2 → sshd@web2) and handed over directly
    p = sshd.ssh(user.name, askpass=TOKENCTL_ASKPASS, as_user=ctl.pw, env=env, host="web2")
    assert p.returncode == 255 and "Permission denied" in p.stderr, p
    wait_audit(daemon, "verify_failed", "not for service sshd on this host")
    other = ctl.run("token", "--host", "web2")
    assert other.returncode == 0, other
    assert jwt_parts(other.stdout.strip())[1]["aud"] == ["sshd@web2"]
    p = sshd.ssh(user.name, other.stdout.strip())
    assert p.returncode == 255 and user.name not in p.stdout, p
    # control: the token for this host, handed over the same way, works
    mine = ctl.run("token", "--host", HOST)
    p = sshd.ssh(user.name, mine.stdout.strip())
    assert p.returncode == 0 and p.stdout.splitlines() == [user.name], p
