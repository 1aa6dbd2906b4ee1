# SPDX-License-Identifier: MIT
"""pam_jwt.so as a shared object: it exports the pam_sm_* functions and
nothing else, links nothing heavier than libpam and jansson, and the shipped
examples only use options the module knows."""

import glob
import os
import re
import shutil
import subprocess

import pytest

import pamtest

PAM_SM = ["pam_sm_authenticate", "pam_sm_setcred", "pam_sm_acct_mgmt",
          "pam_sm_open_session", "pam_sm_close_session"]
INTERNAL = ["jwt_verify", "jwt_verify_parse_answer", "jwt_http_parse_response", "jwt_http_post_unix",
            "jwt_token_is_jws_shaped", "options_parse", "verdict_to_pam", "state_cleanup"]
OPTIONS = re.compile(r"^(socket=/\S+|timeout=\d+|audience=[\w.-]+|prompt=.*|use_first_pass|try_first_pass"
                     r"|only_tokens|debug)$")


@pytest.fixture(scope="module")
def module():
    if not os.path.exists(pamtest.MODULE):
        pytest.skip("%s not built" % pamtest.MODULE)
    return pamtest.MODULE


DLSYM = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
for name in sys.argv[2:]:
    try:
        getattr(lib, name)
        print(name, "found")
    except AttributeError:
        print(name, "missing")
"""


def test_dlsym(module):
    # in a child: an ASan build loads only with the sanitizer runtime preloaded
    env = dict(os.environ, LD_PRELOAD=pamtest.preload(), ASAN_OPTIONS="detect_leaks=0")
    out = subprocess.run(["/usr/bin/python3", "-c", DLSYM, module] + PAM_SM + INTERNAL, env=env,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:-1] == ["%s found" % n for n in PAM_SM] + ["%s missing" % n for n in INTERNAL]


def test_dynamic_symbols(module):
    out = subprocess.run(["nm", "-D", "--defined-only", module], capture_output=True, text=True,
                         check=True).stdout
    names = sorted(line.split()[-1] for line in out.splitlines() if line.strip())
    assert names == sorted(PAM_SM)


def test_linked_libraries(module):
    out = subprocess.run(["readelf", "-d", module], capture_output=True, text=True, check=True).stdout
    needed = set(re.findall(r"\(NEEDED\).*\[(.*)\]", out))
    allowed = {"libpam.so.0", "libjansson.so.4", "libc.so.6"}
    if pamtest.SANITIZER_PRELOAD:  # --enable-sanitizers build
        allowed |= {"libasan.so.8", "libubsan.so.1", "libcrypt.so.1"}  # see SAN_LDFLAGS
    assert needed <= allowed, needed
    ldd = subprocess.run(["ldd", module], capture_output=True, text=True, check=True).stdout
    for heavy in ("libcrypto", "libssl", "libsodium", "libsqlite3", "libsystemd", "libmicrohttpd"):
        assert heavy not in ldd


def _jwt_lines(path):
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if "pam_jwt.so" in line:
                yield line


def _options(line):
    rest = line.split("pam_jwt.so", 1)[1]
    # PAM's [ ... ] quoting for arguments with spaces
    return [m.group(1) or m.group(2) for m in re.finditer(r"\[([^\]]*)\]|(\S+)", rest)]


def test_examples_use_known_options():
    files = glob.glob(os.path.join(pamtest.TOP_SRCDIR, "etc", "pam.d", "*")) + \
        [os.path.join(pamtest.TOP_SRCDIR, "etc", "pam-configs", "pam_jwt")]
    seen = 0
    for path in files:
        for line in _jwt_lines(path):
            seen += 1
            for opt in _options(line):
                assert OPTIONS.match(opt), (path, opt)
    assert seen >= 8


def test_sshd_snippet_parses(tmp_path):
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd) or not shutil.which("ssh-keygen"):
        pytest.skip("openssh-server not installed")
    if not os.path.isdir("/run/sshd"):
        if os.geteuid() != 0:
            pytest.skip("sshd -T needs /run/sshd (created by the ssh service, or by root)")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # what ssh.service does
    key = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    cfg = tmp_path / "sshd_config"
    snippet = os.path.join(pamtest.TOP_SRCDIR, "etc", "sshd_config.d", "tokend.conf")
    cfg.write_text("Include %s\nHostKey %s\n" % (snippet, key))
    p = subprocess.run([sshd, "-T", "-f", str(cfg)], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    assert "usepam yes" in p.stdout and "kbdinteractiveauthentication yes" in p.stdout
