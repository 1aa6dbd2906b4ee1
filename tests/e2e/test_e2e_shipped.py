# SPDX-License-Identifier: MIT
"""The PAM files we ship (etc/pam.d/*), loaded as shipped into the programs
they are written for: only pam_jwt.so's path (the build tree's module) and a
socket= option (the test's tokend) are substituted, every other line (the
@includes of Debian's common-* files too) stays. Each accepts what its
comments promise and refuses a control. Root only."""

import os
import re
import secrets

from e2e import (EtcFile, MODULE, daemon, e2e_user, etc_files, issue, revoke,  # noqa: F401
                 sshd_factory, system_user, tokend_factory, wait_audit, DAEMON_CONFIG)
from tdharness import TOP_SRCDIR
from test_e2e_sudo import sudo, sudo_stack

SHIPPED = os.path.join(TOP_SRCDIR, "etc", "pam.d")
TESTED = {"tokend", "tokend-only", "tokend-or-password", "sudo"}


def shipped(name, sock):
    """etc/pam.d/NAME with pam_jwt.so → MODULE socket=SOCK."""
    with open(os.path.join(SHIPPED, name)) as f:
        text = f.read()
    out, n = re.subn(r"(?<![\w/.-])pam_jwt\.so(?=\s)", "%s socket=%s" % (MODULE, sock), text)
    # every module line naming pam_jwt was substituted (comments may name it too)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert n == sum("pam_jwt.so" in ln for ln in lines), (name, n)
    return out


def test_every_shipped_file_is_tested():
    assert set(os.listdir(SHIPPED)) == TESTED


def ssh_ok(sshd, user, answer, prompt):
    p = sshd.ssh(user, answer, command="id -un; echo device=$TOKEND_DEVICE_ID")
    assert p.returncode == 0, "rc=%d %s\nsshd:\n%s" % (p.returncode, p.stderr, sshd.log()[-3000:])
    assert p.stdout.splitlines()[0] == user, p.stdout
    assert len(p.prompts) == 1 and p.prompts[0].endswith(prompt), p.prompts
    return p


def ssh_refused(sshd, user, answer):
    p = sshd.ssh(user, answer)
    assert p.returncode == 255, "ssh let it in: rc=%d out=%r err=%r" % (p.returncode, p.stdout, p.stderr)
    assert user not in p.stdout and "Permission denied" in p.stderr, p.stderr
    return p


def test_tokend_only_in_sshd(e2e_user, daemon, sshd_factory):
    """tokend-only: a token and nothing else; account re-asks tokend."""
    password = "Pw-" + secrets.token_urlsafe(9)
    user = e2e_user(password=password)
    sshd = sshd_factory(shipped("tokend-only", daemon.socket), [user.name])
    # no audience= in the file: the audience is the PAM service's name, which
    # for this sshd is its program name (tde2e-sshd-XXXX), not "sshd"
    tok, dev = issue(daemon, user.name, [sshd.name])
    p = ssh_ok(sshd, user.name, tok, ") JWT token for %s (tokend): " % user.name)
    assert "device=%s" % dev in p.stdout.splitlines(), p.stdout  # session optional pam_jwt.so
    # refused: the user's real password (no fallback), a token for another service
    ssh_refused(sshd, user.name, password)
    ssh_refused(sshd, user.name, issue(daemon, user.name, ["sshd", "login"])[0])
    wait_audit(daemon, "verify_failed", "not for service %s" % sshd.name)
    # and the token that just worked, once its device is revoked
    revoke(daemon, dev)
    ssh_refused(sshd, user.name, tok)
    wait_audit(daemon, "verify_failed", "revoked")


def test_tokend_or_password_in_sshd(e2e_user, daemon, sshd_factory):
    """tokend-or-password: a token or the password at the same prompt."""
    password = "Pw-" + secrets.token_urlsafe(9)
    user = e2e_user(password=password)
    sshd = sshd_factory(shipped("tokend-or-password", daemon.socket), [user.name])
    tok, dev = issue(daemon, user.name, [sshd.name])  # the service's name, as above
    ssh_ok(sshd, user.name, tok, ") Token or password: ")
    p = ssh_ok(sshd, user.name, password, ") Token or password: ")  # pam_unix try_first_pass: no 2nd prompt
    assert "device=" in p.stdout.splitlines(), p.stdout  # no token, no device id
    # refused: a wrong password, and a revoked token (pam_unix then asks for
    # the password, and gets the token again)
    ssh_refused(sshd, user.name, "wrong-" + password)
    revoke(daemon, dev)
    ssh_refused(sshd, user.name, tok)
    wait_audit(daemon, "verify_failed", "revoked")


def test_sudo_shipped(e2e_user, daemon, etc_files):
    """sudo: a sudo-audience token runs the command as root; an everyday
    login token does not (it falls through to common-auth's password, which
    stdin does not hold)."""
    user = e2e_user()
    sudo_stack(user.name, etc_files, shipped("sudo", daemon.socket))
    tok, dev = issue(daemon, user.name, ["sudo"])
    p = sudo(user.name, tok)
    assert p.returncode == 0 and p.stdout.splitlines()[0] == "0", p
    everyday, _ = issue(daemon, user.name, ["sshd", "login", "su"])
    p = sudo(user.name, everyday)
    assert p.returncode == 1 and "0" not in p.stdout.splitlines(), p
    wait_audit(daemon, "verify_failed", "not for service sudo")


def test_tokend_service_for_password_logins(e2e_user, tokend_factory, etc_files):  # noqa: F811
    """tokend: the service tokend checks passwords with ([Login] PAMService)."""
    password = "Pw-" + secrets.token_urlsafe(9)
    user = e2e_user(password=password)
    pam = EtcFile("/etc/pam.d", shipped("tokend", "/nonexistent"), prefix="tde2e-tokend-")
    etc_files.append(pam)
    d = tokend_factory(DAEMON_CONFIG + "[Login]\nPAMService=%s\n" % pam.name)
    r = d.api.login(user.name, "wrong-" + password)
    assert r.status == 400 and r.error == "invalid_credentials", r
    r = d.api.login(user.name, password)
    assert r.status == 200 and r.json["user"]["name"] == user.name, r
