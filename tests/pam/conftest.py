# SPDX-License-Identifier: MIT
"""Fixtures of the pam_jwt pytest suites.

services: a pam_wrapper service directory (skips when pam_wrapper, the module
          or pam-app is missing).
fake:     a FakeTokend on a fresh socket (always the fake: scriptable).
tokend:   the verifier for the "valid" cases, parametrized: [fake] the
          FakeTokend, [tokend] a real tokend (root only; started once per
          module, knows the users alice and bob through nss_wrapper) or, when
          PAM_JWT_TEST_SOCKET names a running one's socket, that daemon;
          issue()/revoke() then go through its API (faketokend.RealTokend).
"""

import os
import shutil
import sys
import tempfile

import pytest

import faketokend
import pamtest


@pytest.fixture
def services(tmp_path):
    if not pamtest.find_pam_wrapper():
        pytest.skip("libpam_wrapper.so not found (Debian: libpam-wrapper)")
    for p in (pamtest.MODULE, pamtest.PAM_APP):
        if not os.path.exists(p):
            pytest.skip("%s not built" % p)
    return pamtest.ServiceDir(tmp_path / "pam.d")


@pytest.fixture
def sockdir():
    # sun_path holds 108 bytes: pytest's tmp_path can be longer than that
    d = tempfile.mkdtemp(prefix="pamjwt-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake(sockdir):
    f = faketokend.FakeTokend(os.path.join(sockdir, "tokend.sock")).start()
    yield f
    f.stop()


NSS_WRAPPER = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"
# The users the pam tests name, for the real tokend only (nss_wrapper: the
# system's passwd is not touched).
TEST_USERS = (("alice", 61000), ("bob", 61001))


@pytest.fixture(scope="module")
def real_tokend():
    real = os.environ.get("PAM_JWT_TEST_SOCKET")
    if real:
        yield faketokend.RealTokend(real)
        return
    if os.geteuid() != 0:
        pytest.skip("the real tokend issues tokens for alice and bob only to root")
    if not os.path.exists(NSS_WRAPPER):
        pytest.skip("libnss_wrapper.so not found (Debian: libnss-wrapper)")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
    from tdharness import Tokend
    d = tempfile.mkdtemp(prefix="pamjwt-nss-", dir="/tmp")
    try:
        with open("/etc/passwd") as f, open(os.path.join(d, "passwd"), "w") as out:
            out.write(f.read() + "".join("%s:x:%d:%d::/nonexistent:/usr/sbin/nologin\n" % (u, i, i)
                                         for u, i in TEST_USERS))
        with open("/etc/group") as f, open(os.path.join(d, "group"), "w") as out:
            out.write(f.read() + "".join("%s:x:%d:\n" % (u, i) for u, i in TEST_USERS))
        env = {"LD_PRELOAD": pamtest.preload(NSS_WRAPPER), "NSS_WRAPPER_PASSWD": os.path.join(d, "passwd"),
               "NSS_WRAPPER_GROUP": os.path.join(d, "group")}
        # ClockSkew=0: RealTokend.issue(ttl<=0) waits its 1 s token out
        t = Tokend("[Token]\nClockSkew=0\n", env=env).start()
        try:
            yield faketokend.RealTokend(t.socket)
        finally:
            t.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["fake", "tokend"])
def tokend(request, sockdir):
    if request.param == "tokend":
        yield request.getfixturevalue("real_tokend")
        return
    f = faketokend.FakeTokend(os.path.join(sockdir, "tokend.sock")).start()
    yield f
    f.stop()
