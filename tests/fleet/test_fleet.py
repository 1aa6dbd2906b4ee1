# SPDX-License-Identifier: MIT
"""A fleet in network namespaces (DESIGN.md "Fleet"; root only): the test
makes the namespaces tdf<pid>-iss, -web1, -web2, -lap and a router -core,
joins each to the router by a veth pair (10.77.N.0/24: .1 the router, .2
the host) and removes everything at the end. The issuer's tokend serves
HTTPS on 10.77.0.2:8443 (certificate from a throwaway CA made by
openssl); web1 and web2 run a verifier tokend (web1 Policy=strict, web2
best_effort, MaxStaleness=3s) and a real sshd whose PAM stack is pam_jwt asking the
local verifier. In the laptop namespace an unprivileged user runs
`tokenctl --issuer https://10.77.0.2:8443 --ca-file CA login` (password,
the issuer's real PAM stack) and `ssh web1` with SSH_ASKPASS=tokenctl-askpass
(forced): askpass takes the host from ssh's "(user@web1)" prompt and fetches
an sshd@web1 token over HTTPS, and the login runs. That web1-scoped token is
refused by web2 (handed over directly, and fetched by askpass for an ssh
whose name says web1 but whose address is web2's), while askpass for web2
gets in there; after `tokenctl logout` (the device revoked on the issuer)
web1 refuses the token once it applied that SEQ; with the issuer's link
cut (ip link set down on the router's end of the issuer's veth) web1
refuses every token after MaxStaleness while web2 keeps accepting, and
both accept again once the link is up. Waits are for events (a SEQ, an
answer), bounded only against a hang. The set-up is fleetns.py, shared
with `scripts/demo fleet`, which test_scripts_demo_fleet runs whole."""

import os
import pwd
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fleetns import (ISSUER_URL, SSHD, Laptop, find_binary, fleet, jwt_parts, sh, start_fleet,  # noqa: E402,F401
                     wait_until)
from tdharness import TOP_BUILDDIR, TOP_SRCDIR  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces, users and sshd")


def test_fleet(fleet):
    ca, issuer, user, verifiers, sshds = start_fleet(fleet, "tde2e_", (("web1", "strict"), ("web2", "best_effort")),
                                                     "3s")
    web1, web2 = sshds["web1"], sshds["web2"]

    # The ssh story: the laptop user logs in to the issuer with tokenctl
    # (password, the issuer's PAM stack) and sshes into web1; askpass
    # fetches an sshd@web1 token over HTTPS. web2 refuses that token.
    laptop = Laptop(fleet, user, ca.cert)
    assert "Logged in as %s" % user.name in laptop.login()
    wait_until(lambda: laptop.ssh(web1), lambda: "ssh into web1: %r\nsshd:\n%s\nverifier:\n%s" % (
        web1.last.stderr, web1.log()[-2000:], verifiers["web1"].log()[-2000:]), timeout=20)
    tok = laptop.tokenctl("token", "--host", "web1").strip()
    cl = jwt_parts(tok)[1]
    assert cl["aud"] == ["sshd@web1"] and cl["iss"] == ISSUER_URL and cl["sub"] == user.name, cl
    assert laptop.ssh(web1, token=tok)  # control: handed over directly
    assert not laptop.ssh(web2, token=tok)
    assert "Permission denied" in web2.last.stderr, web2.last
    # askpass as ssh web1 lands on web2's address (a wrong name → address)
    assert not laptop.ssh(web2, host="web1")
    assert "not for service sshd on this host" in verifiers["web2"].log()
    assert laptop.ssh(web2)  # control: askpass fetches web2's own token

    # tokenctl logout (revokes the laptop's device on the issuer): web1
    # refuses once it applied that SEQ.
    laptop.tokenctl("logout")
    seq = issuer.issuer_seq()
    wait_until(lambda: verifiers["web1"].feed_seq() >= seq, "web1 should apply SEQ %d" % seq)
    assert not laptop.ssh(web1, token=tok)
    assert verifiers["web1"].api.verify(tok, service="sshd").error == "token_revoked"

    # Links cut: strict web1 refuses after MaxStaleness, best_effort web2 accepts.
    laptop.login()
    t1 = laptop.tokenctl("token", "--host", "web1").strip()
    t2 = laptop.tokenctl("token", "--host", "web2").strip()
    assert laptop.ssh(web1, token=t1)
    fleet.issuer_link(False)
    wait_until(lambda: verifiers["web1"].api.verify(t1, service="sshd").status == 503,
               "strict web1 should go stale")
    assert not laptop.ssh(web1, token=t1)
    assert "HTTP 503 unavailable" in verifiers["web1"].log()  # pam_jwt: PAM_AUTHINFO_UNAVAIL
    assert laptop.ssh(web2, token=t2)  # best_effort: accepted until the token expires
    fleet.issuer_link(True)
    wait_until(lambda: verifiers["web1"].api.verify(t1, service="sshd").status == 200, "web1 should recover")
    assert laptop.ssh(web1, token=t1)
    assert laptop.ssh(web2, token=t2)


def test_scripts_demo_fleet():
    """`scripts/demo fleet` with this build: exit 0 and the lines of its
    story (a web2 refusal of the web1 token, the revoke time, the stale
    refusal), and nothing left of it; as nobody it exits 77 (control: root)."""
    if not shutil.which("ip") or not os.path.exists(SSHD) or not find_binary("tokend"):
        pytest.skip("needs ip(8), sshd and a built tokend")
    demo = [os.path.join(TOP_SRCDIR, "scripts", "demo"), "fleet", "--no-install", "--no-build"]
    env = dict(os.environ, BUILD_DIR=TOP_BUILDDIR)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + demo, env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 77 and "needs root" in p.stderr, p
    p = subprocess.run(demo, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
                       check=False)
    out = p.stdout
    assert p.returncode == 0, "rc=%d\n%s\n%s" % (p.returncode, out, p.stderr)
    user = re.search(r"^    ssh web1 id -un → (tdemo_[0-9a-f]+): logged in on web1$", out, re.M)
    assert user, out
    assert re.search(r"^    ssh web2 with the web1 token → refused by web2: .*Permission denied", out, re.M), out
    m = re.search(r"^    revoked device dev_\S+ on the issuer → web1 applied SEQ (\d+) (\d+) ms after the revocation",
                  out, re.M)
    assert m and int(m.group(1)) >= 1, out
    assert re.search(r"^    ssh web1 with the revoked token → refused by web1: .*Permission denied", out, re.M), out
    assert re.search(r"^    web1 \(Policy=strict, MaxStaleness=5s\) refuses every token \d+\.\d s after the issuer "
                     r"stopped: .*unavailable", out, re.M), out
    assert re.search(r"^    ssh web1 → refused by stale web1: .*Permission denied", out, re.M), out
    assert re.search(r"^    ssh web2 \(Policy=best_effort\) → tdemo_\w+: accepted", out, re.M), out
    assert "    left over: nothing" in out, out
    prefix = re.search(r"namespaces (tddemo\d+)-", out).group(1)
    assert prefix not in sh("ip", "netns", "list").stdout
    with pytest.raises(KeyError):
        pwd.getpwnam(user.group(1))
