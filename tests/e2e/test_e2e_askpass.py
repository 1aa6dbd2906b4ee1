# SPDX-License-Identifier: MIT
"""tokenctl-askpass used by a real ssh (issue 5): a throwaway user logs in to
tokend once (`tokenctl login`, password checked through a throwaway PAM
service of tokend), then `ssh` with SSH_ASKPASS=tokenctl-askpass and
SSH_ASKPASS_REQUIRE=force logs in to the real sshd (pam_jwt, audience sshd)
with no typing and the command runs as that user; after `tokenctl logout` the
same ssh is refused. Root only."""

import os
import secrets
import shutil
import subprocess
import tempfile

import pytest

from e2e import (TOKENCTL, TOKENCTL_ASKPASS, DAEMON_CONFIG, EtcFile,  # noqa: F401
                 e2e_user, etc_files, find_binary, jwt_stack, need, sshd_factory, system_user, tokend_factory,
                 wait_audit)

PASSWORD = "Tok-" + secrets.token_urlsafe(12)


def tokend_has_asan():
    # ASan's crypt() interceptor breaks pam_unix inside tokend (see
    # tests/integration/test_tokenctl_login.py): log in with --peer then
    try:
        with open(find_binary("tokend"), "rb") as f:
            return b"__asan_init" in f.read()
    except (OSError, TypeError):
        return False


class UserTokenctl:
    """tokenctl as a throwaway user, with its own HOME/XDG_STATE_HOME."""

    def __init__(self, user, sock):
        self.pw = user.pw
        self.home = tempfile.mkdtemp(prefix="tde2e-home-", dir="/tmp")
        os.chown(self.home, self.pw.pw_uid, self.pw.pw_gid)
        self.env = {"PATH": "/usr/bin:/bin", "HOME": self.home, "XDG_STATE_HOME": os.path.join(self.home, "state"),
                    "TOKEND_SOCKET": sock, "LANG": "C"}

    def _preexec(self):
        os.setgroups([])
        os.setgid(self.pw.pw_gid)
        os.setuid(self.pw.pw_uid)

    def run(self, *args, prog=TOKENCTL, input=None):
        return subprocess.run([prog] + list(args), env=self.env, preexec_fn=self._preexec, input=input,
                              capture_output=True, text=True, timeout=60, check=False)

    def close(self):
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def setup(e2e_user, etc_files, tokend_factory, sshd_factory):
    need(TOKENCTL, TOKENCTL_ASKPASS)
    user = e2e_user(PASSWORD)
    pam = EtcFile("/etc/pam.d", "auth required pam_unix.so\naccount required pam_unix.so\n", prefix="tde2e-tokend-")
    etc_files.append(pam)
    daemon = tokend_factory(DAEMON_CONFIG + "[Login]\nPAMService=%s\n" % pam.name)
    sshd = sshd_factory(jwt_stack(daemon.socket, "sshd"), [user.name])
    ctl = UserTokenctl(user, daemon.socket)
    yield user, daemon, sshd, ctl
    ctl.close()


def test_ssh_with_tokenctl_askpass(setup):
    user, daemon, sshd, ctl = setup
    if tokend_has_asan():
        p = ctl.run("login", "--peer", "--device-name", "e2e")
    else:
        p = ctl.run("login", "--user", user.name, "--device-name", "e2e", input=PASSWORD + "\n")
    assert p.returncode == 0, p

    # what askpass answers by itself: pam_jwt's default prompt as ssh shows it
    prompt = "(%s@127.0.0.1) JWT token for %s (tokend): " % (user.name, user.name)
    p = ctl.run(prompt, prog=TOKENCTL_ASKPASS)
    assert p.returncode == 0 and p.stdout.count(".") == 2, p
    earlier = p.stdout.strip()  # kept: after logout, sshd must refuse it itself
    p = ctl.run("(%s@127.0.0.1) Password: " % user.name, prog=TOKENCTL_ASKPASS)
    assert p.returncode == 1 and p.stdout == "", p  # not a token prompt: no answer
    p = ctl.run("(%s@127.0.0.1) Enter OTP token for %s: " % (user.name, user.name), prog=TOKENCTL_ASKPASS)
    assert p.returncode == 1 and p.stdout == "" and "not pam_jwt's prompt" in p.stderr, p

    env = {k: ctl.env[k] for k in ("TOKEND_SOCKET", "XDG_STATE_HOME")}
    p = sshd.ssh(user.name, askpass=TOKENCTL_ASKPASS, as_user=ctl.pw, env=env)
    assert p.returncode == 0, "rc=%d %s\nsshd:\n%s" % (p.returncode, p.stderr, sshd.log()[-2000:])
    assert p.stdout.splitlines() == [user.name], p

    # control: the token askpass printed earlier is good on its own
    p = sshd.ssh(user.name, earlier)
    assert p.returncode == 0 and p.stdout.splitlines() == [user.name], p

    assert ctl.run("logout").returncode == 0
    p = sshd.ssh(user.name, askpass=TOKENCTL_ASKPASS, as_user=ctl.pw, env=env)
    assert p.returncode == 255 and user.name not in p.stdout, p
    assert "Permission denied" in p.stderr, p
    # not only because askpass has nothing left to answer: the earlier token,
    # still unexpired, is refused by sshd (logout revoked its device)
    p = sshd.ssh(user.name, earlier)
    assert p.returncode == 255 and user.name not in p.stdout, p
    assert "Permission denied" in p.stderr, p
    wait_audit(daemon, "verify_failed", "revoked")


def test_askpass_ignores_token_in_host_name(e2e_user, tokend_factory):
    need(TOKENCTL, TOKENCTL_ASKPASS)
    user = e2e_user()
    ctl = UserTokenctl(user, tokend_factory(DAEMON_CONFIG).socket)
    try:
        assert ctl.run("login", "--peer").returncode == 0
        assert ctl.run("(%s@h) JWT token for %s (tokend): " % (user.name, user.name),
                       prog=TOKENCTL_ASKPASS).returncode == 0  # control
        for prompt in ("(%s@tokenhost) Password: " % user.name, "(%s@h) Token: " % user.name,
                       "Enter passphrase for key '/home/u/.ssh/id_token': "):
            p = ctl.run(prompt, prog=TOKENCTL_ASKPASS)
            assert p.returncode == 1 and p.stdout == "", (prompt, p)
    finally:
        ctl.close()
