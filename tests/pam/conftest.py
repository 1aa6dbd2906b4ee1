"""Fixtures of the pam_jwt pytest suites.

services: a pam_wrapper service directory (skips when pam_wrapper, the module
          or pam-app is missing).
fake:     a FakeTokend on a fresh socket (always the fake: scriptable).
tokend:   the verifier for the "valid" cases: the fake, or a running tokend
          when PAM_JWT_TEST_SOCKET names its socket (then issue()/revoke()
          go through its API).
"""

import os
import shutil
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


@pytest.fixture
def tokend(sockdir):
    real = os.environ.get("PAM_JWT_TEST_SOCKET")
    if real:
        yield faketokend.RealTokend(real)
        return
    f = faketokend.FakeTokend(os.path.join(sockdir, "tokend.sock")).start()
    yield f
    f.stop()
