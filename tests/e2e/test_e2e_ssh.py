# SPDX-License-Identifier: MIT
"""pam_jwt inside the real sshd (issue 4): keyboard-interactive answered with
a token from the real tokend logs a throwaway user in and runs a command as
that user; revoked, expired, wrong-user and wrong-audience tokens are refused
(each next to an accepted control); with tokend stopped the login is refused
and sshd still answers, and logins work again once tokend is back. Root only.
(The shipped etc/pam.d files themselves: test_e2e_shipped.py.)"""

from e2e import (daemon, e2e_user, issue, jwt_stack, revoke,  # noqa: F401
                 sshd_factory, system_user, tokend_factory, wait_audit, wait_expired)


def stack(daemon, **kw):
    return jwt_stack(daemon.socket, "sshd", **kw)


def accepted(sshd, user, token, command="id -un"):
    p = sshd.ssh(user, token, command=command)
    assert p.returncode == 0, "ssh refused a valid token: rc=%d %s\nsshd:\n%s" % (
        p.returncode, p.stderr, sshd.log()[-3000:])
    assert p.stdout.splitlines()[0] == user, p.stdout
    assert len(p.prompts) == 1 and p.prompts[0].endswith(" (tokend): "), p.prompts  # one prompt, pam_jwt's
    return p


def refused(sshd, user, token):
    p = sshd.ssh(user, token)
    assert p.returncode == 255, "ssh let a bad token in: rc=%d out=%r err=%r" % (p.returncode, p.stdout, p.stderr)
    assert user not in p.stdout
    assert "Permission denied" in p.stderr, p.stderr
    return p


def test_ssh_login_and_refusals(e2e_user, daemon, sshd_factory):
    user, other = e2e_user(), e2e_user()
    sshd = sshd_factory(stack(daemon), [user.name, other.name])

    tok, dev = issue(daemon, user.name, ["sshd"])
    accepted(sshd, user.name, tok)
    assert "Accepted keyboard-interactive/pam for %s" % user.name in sshd.log()

    # revoked device: the token that just worked is refused, a fresh device still works
    revoke(daemon, dev)
    refused(sshd, user.name, tok)
    wait_audit(daemon, "verify_failed", "revoked")
    accepted(sshd, user.name, issue(daemon, user.name, ["sshd"])[0])

    # expired (tokend runs with ClockSkew=0)
    short, _ = issue(daemon, user.name, ["sshd"], ttl=1)
    wait_expired(short)
    refused(sshd, user.name, short)
    wait_audit(daemon, "verify_failed", "expired")

    # a valid token of another user: good for `other`, not for `user`
    theirs, _ = issue(daemon, other.name, ["sshd"])
    refused(sshd, user.name, theirs)
    wait_audit(daemon, "verify_failed", "another user")
    accepted(sshd, other.name, theirs)

    # a login-audience token is not an sshd token
    login_only, _ = issue(daemon, user.name, ["login"])
    refused(sshd, user.name, login_only)
    wait_audit(daemon, "verify_failed", "not for service sshd")
    accepted(sshd, user.name, issue(daemon, user.name, ["login", "sshd"])[0])


def test_ssh_tokend_down(e2e_user, daemon, sshd_factory):
    user = e2e_user()
    sshd = sshd_factory(stack(daemon, timeout_ms=1000), [user.name])
    tok, _ = issue(daemon, user.name, ["sshd"])
    accepted(sshd, user.name, tok)

    assert daemon.stop() == 0
    refused(sshd, user.name, tok)
    assert sshd.answers(), "sshd stopped answering after tokend went away:\n" + sshd.log()[-3000:]
    refused(sshd, user.name, tok)  # and a second connection is handled the same way

    daemon.start()  # same state dir and keys: the token is good again
    accepted(sshd, user.name, tok)


def test_ssh_session_has_device_id(e2e_user, daemon, sshd_factory):
    user = e2e_user()
    sshd = sshd_factory(stack(daemon), [user.name])
    tok, dev = issue(daemon, user.name, ["sshd"])
    p = accepted(sshd, user.name, tok, command="id -un; echo device=$TOKEND_DEVICE_ID")
    assert "device=%s" % dev in p.stdout.splitlines(), p.stdout
