# SPDX-License-Identifier: MIT
"""pam_jwt inside the real sudo (issue 4): a throwaway user runs
`sudo -S id -u` with a token on stdin; a sudo-audience token runs the command
as root, an sshd-audience token (an everyday login token) is refused. The
user, a sudoer, cannot get a sudo token by peer login (step-up audience,
issue 13): only with its password (a password login through pam_unix).
/etc/pam.d/sudo is replaced for the test under a lock and put back (fixture
finalizer, SIGTERM/SIGHUP trap, or the next run after a kill); the sudoers
drop-in is checked with visudo before it goes live and removed. Root only."""

import os

from e2e import (DAEMON_CONFIG, ReplacedEtcFile, EtcFile, PamService, e2e_user, etc_files, issue,  # noqa: F401
                 jwt_parts, jwt_stack, need, run, system_user, tokend_factory, wait_audit)

SUDO = "/usr/bin/sudo"
PROMPT = "tde2e-sudo-token:"


def visudo_check(path):
    p = run(["visudo", "-c", "-q", "-f", path])
    assert p.returncode == 0, "visudo -c -f %s: %s%s" % (path, p.stdout, p.stderr)


def sudo(user, token):
    """runuser -u USER -- sudo -S: the token is the only line on stdin."""
    return run(["/usr/sbin/runuser", "-u", user, "--", SUDO, "-S", "-p", PROMPT, "sh", "-c",
                "id -u; echo device=$TOKEND_DEVICE_ID"], input=token + "\n", timeout=60,
               env={"PATH": "/usr/bin:/bin", "LANG": "C"})


def sudo_stack(user, etc_files, pam_text):
    """/etc/pam.d/sudo replaced by pam_text, and a sudoers rule letting user
    run anything (one try, no cached credentials). Returns the ReplacedEtcFile."""
    need(SUDO, "/usr/sbin/visudo", "/usr/sbin/runuser")
    pam = ReplacedEtcFile("/etc/pam.d/sudo", pam_text)
    etc_files.append(pam)
    # under pam's lock: only these tests write tde2e_* rules, so any found now
    # were left by a killed run
    for name in os.listdir("/etc/sudoers.d"):
        if name.startswith("tde2e_"):
            os.unlink(os.path.join("/etc/sudoers.d", name))
    rules = ("Defaults:%s !lecture, passwd_tries=1, timestamp_timeout=0, !mail_badpass\n"
             "%s ALL=(ALL:ALL) ALL\n" % (user, user))
    etc_files.append(EtcFile("/etc/sudoers.d", rules, prefix="tde2e_", mode=0o440, check=visudo_check))
    p = run(["visudo", "-c", "-q"])
    assert p.returncode == 0, p.stdout + p.stderr
    return pam


def test_sudo_audience(e2e_user, tokend_factory, etc_files):
    user = e2e_user(password="S3cret-pw-" + os.urandom(4).hex())
    svc = PamService("auth required pam_unix.so nodelay\naccount required pam_unix.so\n")
    etc_files.append(svc)
    daemon = tokend_factory(DAEMON_CONFIG + "[Login]\nPAMService=%s\n" % svc.name)
    pam = sudo_stack(user.name, etc_files, jwt_stack(daemon.socket))  # audience: the service name, sudo

    tok, dev = issue(daemon, user.name, ["sudo"])
    p = sudo(user.name, tok)
    assert p.returncode == 0, p
    out = p.stdout.splitlines()
    assert out[0] == "0", p  # ran as root
    assert "device=%s" % dev in out, p  # pam_jwt's open_session reached the command's environment

    everyday, _ = issue(daemon, user.name, ["sshd", "login", "su"])
    p = sudo(user.name, everyday)
    assert p.returncode == 1, p
    assert "0" not in p.stdout.splitlines(), p
    assert "incorrect password attempt" in p.stderr, p
    wait_audit(daemon, "verify_failed", "not for service sudo")

    # the attack of issue 13: code running as the sudoer asks peer login for a
    # sudo token, which would make sudo NOPASSWD; refused with the rule
    me = daemon.client(user=user.name)
    r = me.issue_token(audience="sudo")
    assert r.status == 403 and "audience sudo is a step-up audience" in r.message, r
    # control: with the password (a password login), the user's own sudo token works in sudo
    r = me.login(user.name, user.password, audience="sudo")
    assert r.status == 200, r
    assert jwt_parts(r.json["access_token"])[1]["aud"] == ["sudo"]
    p = sudo(user.name, r.json["access_token"])
    assert p.returncode == 0 and p.stdout.splitlines()[0] == "0", p

    # put back exactly (the finalizer would too; checked here, where it can fail the test)
    for f in reversed(etc_files):
        f.close()
    with open("/etc/pam.d/sudo", "rb") as f:
        assert f.read() == pam.original
    assert not [n for n in os.listdir("/etc/sudoers.d") if n.startswith("tde2e_")]
    assert run(["visudo", "-c", "-q"]).returncode == 0
