# SPDX-License-Identifier: MIT
"""The README's set-up walkthrough, run from the README itself, so that the
documentation cannot drift from the code.

Blocks are found by their marker, an HTML comment `<!-- walkthrough: NAME … -->`
on the line before a fenced block; this file runs exactly those blocks. What
cannot run literally is mapped, and only this:

* "pam.d/sshd": the README's instruction (its two `auth` lines in place of
  `@include common-auth`, its `account` line just above `@include
  common-account`) is applied to this machine's /etc/pam.d/sshd, copied with
  the common-* files into a pam_wrapper service directory (the host's
  /etc/pam.d is never written). `pam_jwt.so` → the build tree's module with
  `socket=` the test's tokend.
* "test the stack": run by bash as root, verbatim, with the build tree first
  on PATH (`tokenctl`), TOKEND_SOCKET naming the test's tokend (instead of
  /run/tokend/tokend.sock), a temporary HOME/XDG_STATE_HOME, and pam_wrapper
  preloaded (PAM_WRAPPER_SERVICE_DIR instead of /etc/pam.d). Control: the same
  block with a `tokenctl` in front on PATH that changes the token's last
  character is refused, and the host's unedited sshd stack refuses the good
  token.
* "without systemd": run by bash as root with `/usr/sbin/tokend` → the built
  tokend, `/etc/tokend/tokend.conf` → the shipped etc/tokend.conf,
  `/run/tokend` and `/var/lib/tokend` → temporary directories, and the user
  and group `tokend` (`-o/-g`, `--reuid/--regid`) → `nobody`/`nogroup`.
  The running daemon must have what the README says the lines give.

Installing the packages themselves is scripts/check-deb's part (it runs the
packaged tokend and pam_jwt.so the same way)."""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pam"))
from pamtest import MODULE, TOP_BUILDDIR, TOP_SRCDIR, find_pam_wrapper, pam_wrapper_init_lock  # noqa: E402

TOKEND = os.path.join(TOP_BUILDDIR, "tokend")
BASH = "/bin/bash"


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root (runs the README's commands as root, starts tokend as nobody)")


def readme_blocks():
    """{name: text} of every marked fenced block in README.md."""
    with open(os.path.join(TOP_SRCDIR, "README.md")) as f:
        text = f.read()
    blocks = {}
    for m in re.finditer(r"(?m)^<!-- walkthrough: ([^(>]+?)\s*(?:\([^)]*\))?\s*-->\n```[a-z]*\n(.*?)^```$", text,
                         re.S):
        assert m.group(1) not in blocks, "two README blocks named %r" % m.group(1)
        blocks[m.group(1)] = m.group(2)
    return blocks


def block(name):
    b = readme_blocks()
    assert name in b, "README.md has no block marked <!-- walkthrough: %s --> (found %s)" % (name, sorted(b))
    return b[name]


def test_readme_marks_the_walkthrough():
    assert set(readme_blocks()) == {"pam.d/sshd", "test the stack", "without systemd"}


def start_tokend(tmp):
    sock = os.path.join(tmp, "tokend.sock")
    log = open(os.path.join(tmp, "tokend.log"), "w+")
    p = subprocess.Popen([TOKEND, "--config", "/dev/null", "--state-dir", tmp, "--socket", sock, "--bus", "none"],
                         stdout=log, stderr=subprocess.STDOUT)
    for _ in range(400):
        if os.path.exists(sock) or p.poll() is not None:
            break
        time.sleep(0.05)
    assert os.path.exists(sock), "tokend did not start: " + open(log.name).read()
    return p, sock


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


HOST_SSHD = "/etc/pam.d/sshd"
# Debian 12's /etc/pam.d/sshd, auth and account part, for machines without openssh-server
DEBIAN_SSHD = "@include common-auth\naccount    required     pam_nologin.so\n@include common-account\n"


def sshd_base():
    if os.path.exists(HOST_SSHD):
        with open(HOST_SSHD) as f:
            return f.read()
    return DEBIAN_SSHD


def apply_readme_edit(base, readme_lines, sock):
    """What the README says to do with /etc/pam.d/sshd, done to BASE."""
    lines = [ln for ln in readme_lines.splitlines() if ln.strip()]
    auth = [ln for ln in lines if ln.split()[0] == "auth"]
    account = [ln for ln in lines if ln.split()[0] == "account"]
    assert len(auth) == 2 and len(account) == 1 and len(lines) == 3, readme_lines
    out, n_auth, n_acct = [], 0, 0
    for ln in base.splitlines():
        if ln.strip() == "@include common-auth":
            out += auth
            n_auth += 1
            continue
        if ln.strip() == "@include common-account":
            out += account
            n_acct += 1
        out.append(ln)
    assert n_auth == 1 and n_acct == 1, "the base sshd file has no single @include common-auth/common-account"
    text = "\n".join(out) + "\n"
    text, n = re.subn(r"(?<![\w/.-])pam_jwt\.so(?=\s|$)", "%s socket=%s" % (MODULE, sock), text)
    assert n == 2
    return text


@pytest.fixture
def sandbox():
    need_root()
    wrapper = find_pam_wrapper()
    if not wrapper or not shutil.which("pamtester"):
        pytest.fail("libpam-wrapper and pamtester are needed (scripts/deps)")
    tmp = tempfile.mkdtemp(prefix="tokend-walkthrough-")
    p, sock = start_tokend(tmp)
    svc = os.path.join(tmp, "pam.d")
    os.mkdir(svc)
    for n in os.listdir("/etc/pam.d"):
        if n.startswith("common-") or n == "other":
            shutil.copy(os.path.join("/etc/pam.d", n), svc)
    home = os.path.join(tmp, "home")
    os.mkdir(home, 0o700)
    env = {"PATH": TOP_BUILDDIR + ":/usr/sbin:/usr/bin:/sbin:/bin", "HOME": home, "USER": "root",
           "XDG_STATE_HOME": os.path.join(home, "state"), "TOKEND_SOCKET": sock, "LANG": "C.UTF-8",
           "LD_PRELOAD": " ".join(x for x in (os.environ.get("TD_SANITIZER_PRELOAD"), wrapper) if x), "PAM_WRAPPER": "1", "PAM_WRAPPER_SERVICE_DIR": svc}
    yield {"tmp": tmp, "sock": sock, "svc": svc, "env": env}
    stop(p)
    shutil.rmtree(tmp, ignore_errors=True)


def run_block(text, env):
    # pam_wrapper sets itself up per process under /tmp: hold the tests' lock
    with pam_wrapper_init_lock():
        return subprocess.run([BASH, "-euo", "pipefail", "-c", text], env=env, capture_output=True, text=True,
                              timeout=120)


def write_sshd(sb, text):
    with open(os.path.join(sb["svc"], "sshd"), "w") as f:
        f.write(text)


def test_walkthrough_pam_stack_accepts_a_token(sandbox):
    write_sshd(sandbox, apply_readme_edit(sshd_base(), block("pam.d/sshd"), sandbox["sock"]))
    r = run_block(block("test the stack"), sandbox["env"])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    # what the README says pamtester prints
    assert "JWT token for root (tokend): " in out, out
    assert "pamtester: successfully authenticated" in out, out


def test_walkthrough_pam_stack_refuses_a_wrong_token(sandbox):
    """Control: the README's block, with the token's last character changed."""
    write_sshd(sandbox, apply_readme_edit(sshd_base(), block("pam.d/sshd"), sandbox["sock"]))
    shim = os.path.join(sandbox["tmp"], "shim")
    os.mkdir(shim)
    with open(os.path.join(shim, "tokenctl"), "w") as f:
        f.write('#!/bin/bash\nset -euo pipefail\nif [ "$1" = token ]; then t=$(%s "$@")\n'
                '  printf "%%s\\n" "${t%%?}$([ "${t: -1}" = A ] && echo B || echo A)"\n'
                'else exec %s "$@"; fi\n' % (os.path.join(TOP_BUILDDIR, "tokenctl"),
                                              os.path.join(TOP_BUILDDIR, "tokenctl")))
    os.chmod(os.path.join(shim, "tokenctl"), 0o755)
    env = dict(sandbox["env"], PATH=shim + ":" + sandbox["env"]["PATH"])
    r = run_block(block("test the stack"), env)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "successfully authenticated" not in out, out
    assert "Token not accepted for sshd" in out, out


def test_unedited_sshd_stack_refuses_the_token(sandbox):
    """Control: without the README's edit, the same token is not a login."""
    write_sshd(sandbox, sshd_base())
    r = run_block(block("test the stack"), sandbox["env"])
    assert r.returncode != 0 and "successfully authenticated" not in r.stdout + r.stderr, r.stdout + r.stderr


NOBODY = {"-o tokend": "-o nobody", "-g tokend": "-g nogroup", "--reuid=tokend": "--reuid=nobody",
          "--regid=tokend": "--regid=nogroup"}


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(ln.split(":\t", 1) for ln in f.read().splitlines() if ":\t" in ln)


def test_without_systemd_block(tmp_path):
    need_root()
    text = block("without systemd")
    for k, v in NOBODY.items():
        assert k in text, k
        text = text.replace(k, v)
    tmp = tempfile.mkdtemp(prefix="tokend-nosystemd-")
    os.chmod(tmp, 0o755)  # nobody must reach the directories below
    run, state = os.path.join(tmp, "run", "tokend"), os.path.join(tmp, "lib", "tokend")
    os.makedirs(os.path.dirname(run), 0o755)
    os.makedirs(os.path.dirname(state), 0o755)
    subst = {"/usr/sbin/tokend": TOKEND, "/etc/tokend/tokend.conf": os.path.join(TOP_SRCDIR, "etc", "tokend.conf"),
             "/run/tokend": run, "/var/lib/tokend": state}
    for k, v in subst.items():
        assert k in text, k
        text = text.replace(k, v)
    sock = os.path.join(run, "tokend.sock")
    log = open(str(tmp_path / "log"), "w+")
    p = subprocess.Popen([BASH, "-euo", "pipefail", "-c", text], stdout=log, stderr=subprocess.STDOUT,
                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    try:
        for _ in range(400):
            if os.path.exists(sock) or p.poll() is not None:
                break
            time.sleep(0.05)
        assert os.path.exists(sock), "tokend did not start: " + open(log.name).read()
        # `exec` all the way: the process bash started is tokend itself
        assert os.readlink("/proc/%d/exe" % p.pid) == os.path.realpath(TOKEND)
        st = proc_status(p.pid)
        nobody = subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True).stdout.strip()
        assert st["Uid"].split() == [nobody] * 4, st["Uid"]
        assert st["NoNewPrivs"].strip() == "1"
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(st[cap], 16) == 0, (cap, st[cap])
        assert st["Umask"].strip() == "0077"
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o666
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(os.path.join(state, "keys")).st_mode) == 0o700
        with open("/proc/%d/limits" % p.pid) as f:
            core = [ln for ln in f if ln.startswith("Max core file size")][0].split()
        assert core[4:6] == ["0", "0"], core
        # it serves: a peer login as root (tokend trusts SO_PEERCRED)
        c = socket.socket(socket.AF_UNIX)
        c.connect(sock)
        c.sendall(b"POST /api/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
        answer = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            answer += chunk
        c.close()
        assert answer.startswith(b"HTTP/1.1 200") and b'"access_token"' in answer, answer[:300]
        # files it creates are its own, 0600
        db = os.path.join(state, "tokend.db")
        assert os.stat(db).st_uid == int(nobody) and stat.S_IMODE(os.stat(db).st_mode) == 0o600
    finally:
        stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    assert p.returncode == 0, open(log.name).read()


def test_prompts_and_messages_in_the_docs_are_the_code_s():
    """Every pam_jwt prompt and user message the README and the shipped PAM
    examples quote is one pam_jwt.c prints (the old "Token: " is gone)."""
    with open(os.path.join(TOP_SRCDIR, "pam", "pam_jwt.c")) as f:
        src = f.read()
    fmt = re.search(r'#define DEFAULT_PROMPT_FMT "([^"]*)"', src).group(1)
    assert fmt == "JWT token for %s (tokend): "
    prompt = re.compile(re.escape(fmt).replace("%s", r"[\w.-]+"))
    docs = [os.path.join(TOP_SRCDIR, "README.md")] + \
        [os.path.join(TOP_SRCDIR, "etc", "pam.d", n) for n in os.listdir(os.path.join(TOP_SRCDIR, "etc", "pam.d"))]
    seen = 0
    for path in docs:
        with open(path) as f:
            text = re.sub(r"\n(?:#\s*)?", " ", f.read())  # quotes broken over (comment) lines
        assert "Token: " not in text.replace("JWT token for", ""), path
        for m in re.finditer(r"JWT token for [^`\"]*", text):
            assert prompt.fullmatch(m.group(0)), "%s: %r is not pam_jwt's prompt" % (path, m.group(0))
            seen += 1
    assert seen >= 3
    with open(docs[0]) as f:
        readme = f.read()
    messages = re.findall(r'pam_error\(pamh, "([^"]*)"', src)
    assert "Token not accepted for %s (invalid, or not issued for it): " in messages, messages

    def is_prefix_of_message(quoted):
        for m in messages:
            for k in range(1, len(m) + 1):
                if m[:k].endswith("%"):
                    continue
                if re.fullmatch(re.escape(m[:k]).replace("%s", r"\w+"), quoted):
                    return True
        return False
    quoted = re.findall(r"`(Token [^`]*?)(?: …)?`", readme)
    assert quoted
    for q in quoted:
        assert is_prefix_of_message(q), "README quotes %r, pam_jwt.c has %s" % (q, messages)
