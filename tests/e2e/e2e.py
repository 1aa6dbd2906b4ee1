# SPDX-License-Identifier: MIT
"""Shared machinery of the end-to-end tests: pam_jwt.so inside the real sshd,
sudo, su and a plain PAM application, against the real tokend (root only).

EtcFile           a new file in /etc with a unique name (tde2e-…), removed at close().
ReplacedEtcFile   a fixed-name file (/etc/pam.d/sudo, /etc/pam.d/su) replaced
                  under a file lock in /run for the whole test; the original
                  bytes are saved to /run first and put back at close(), from a
                  SIGTERM/SIGHUP, at exit, or (after a SIGKILL) by the next run.
jwt_stack()       the text of a PAM service with pam_jwt (built module) in it.
Sshd              a real /usr/sbin/sshd on 127.0.0.1 started through a symlink
                  whose name is its own /etc/pam.d service; ssh() logs in with
                  keyboard-interactive, answering through SSH_ASKPASS.
Fixtures          e2e_user (throwaway users tde2e_*, shell /bin/sh), etc_files
                  (EtcFile/ReplacedEtcFile closed at teardown), daemon (a real
                  tokend, ClockSkew=0 so short tokens expire on time), sshd_factory;
                  tokend_factory and system_user come from tdharness.

Binaries come from $TOP_BUILDDIR like tests/integration/tdharness.py.
"""

import atexit
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from tdharness import (TOP_BUILDDIR, PamService, SystemUser, Tokend, _run_locked,  # noqa: E402,F401
                       find_binary, jwt_parts, system_user, tokend_factory)

if os.environ.get("TD_SANITIZER_PRELOAD"):
    # An ASan-built pam_jwt.so loads only into a process that has the ASan
    # runtime first, and setuid sudo/su ignore LD_PRELOAD. The plain build
    # runs these; the ASan pass covers pam_jwt through pam_wrapper.
    pytest.skip("ASan build: sshd, sudo and su cannot load an ASan pam_jwt.so", allow_module_level=True)

MODULE = os.path.join(TOP_BUILDDIR, "pam", ".libs", "pam_jwt.so")
PAM_APP = os.path.join(TOP_BUILDDIR, "tests", "pam", "pam-app")
TOKENCTL = find_binary("tokenctl") or os.path.join(TOP_BUILDDIR, "tokenctl")
TOKENCTL_ASKPASS = os.path.join(os.path.dirname(TOKENCTL), "tokenctl-askpass")
SSHD = "/usr/sbin/sshd"
SSH = shutil.which("ssh") or "/usr/bin/ssh"
USER_PREFIX = "tde2e_"
BACKUP_DIR = "/run/tde2e-backup"  # originals of replaced /etc files, for a crash
DAEMON_CONFIG = "[Token]\nClockSkew=0\nAllowedAudiences=*\n"


def need(*paths):
    """Skip unless root and every path exists."""
    if os.geteuid() != 0:
        pytest.skip("end-to-end tests need root (users, /etc/pam.d, sshd, setuid sudo/su)")
    for p in (MODULE,) + paths:
        if not os.path.exists(p):
            pytest.skip("%s is missing (build it, or install its Debian package)" % p)


def run(argv, timeout=60, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(argv, timeout=timeout, check=False, **kw)


# ---- /etc files that are put back whatever happens --------------------------

_open_files = []


def _restore_all():
    for f in list(_open_files):
        try:
            f.close()
        except OSError as e:  # keep going: the others must be put back too
            print("tde2e: cannot restore %s: %s" % (f.path, e), file=sys.stderr)


def _on_signal(signum, frame):
    # a "trap": turn SIGTERM/SIGHUP (make's timeout, a closed terminal) into
    # an exception, so that finally blocks and fixture finalizers run; restore
    # first in case the exception is swallowed somewhere
    _restore_all()
    raise KeyboardInterrupt("signal %d" % signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)
atexit.register(_restore_all)


def _write_atomic(path, data, mode, uid=0, gid=0):
    tmp = os.path.join(os.path.dirname(path), ".%s.tde2e-tmp" % os.path.basename(path))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        os.fchown(fd, uid, gid)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


class EtcFile(PamService):
    """A new file DIR/PREFIX<hex> (mode 0644 unless given); close() removes it
    (tdharness.PamService with any directory, prefix and mode).
    check(tmp_path) may vet the content before it goes live (visudo -c -f)."""

    def __init__(self, directory, text, prefix="tde2e-", mode=0o644, check=None):
        self.name = prefix + secrets.token_hex(4)
        self.path = os.path.join(directory, self.name)
        assert not os.path.exists(self.path)
        tmp = os.path.join(directory, ".%s.tde2e-tmp" % self.name)  # a dot: sudo and PAM ignore it
        with open(tmp, "x") as f:
            f.write(text)
        os.chmod(tmp, mode)
        try:
            if check:
                check(tmp)
            os.rename(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise
        _open_files.append(self)

    def close(self):
        super().close()
        if self in _open_files:
            _open_files.remove(self)


class ReplacedEtcFile:
    """Replace a fixed-name file (e.g. /etc/pam.d/sudo) for one test.

    Holds flock(/run/tde2e-<path>.lock) from before the original is read until
    it is back, so two tests never interleave. The original bytes, mode and
    owner go to BACKUP_DIR before the file is touched; a backup found there at
    start comes from a run that was killed (SIGKILL) and is put back first."""

    def __init__(self, path, text, timeout=300):
        self.path = path
        key = path.strip("/").replace("/", "-")
        self.lock_fd = os.open("/run/tde2e-%s.lock" % key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.lock_fd)
                    raise AssertionError("%s stayed locked for %ss" % (path, timeout))
                time.sleep(0.1)
        self.backup = os.path.join(BACKUP_DIR, key)
        self.meta = self.backup + ".meta"
        try:
            os.makedirs(BACKUP_DIR, mode=0o700, exist_ok=True)
            if os.path.exists(self.meta):
                self._put_back()  # left by a killed run: that is the real original
            st = os.stat(path)
            with open(path, "rb") as f:
                self.original = f.read()
            self.mode, self.uid, self.gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
            _write_atomic(self.backup, self.original, 0o600)
            _write_atomic(self.meta, ("%o %d %d\n" % (self.mode, self.uid, self.gid)).encode(), 0o600)
            self.live = True
            _open_files.append(self)
            _write_atomic(path, text.encode(), self.mode, self.uid, self.gid)
        except BaseException:
            self.close()
            raise

    def _put_back(self):
        with open(self.meta) as f:
            mode, uid, gid = f.read().split()
        with open(self.backup, "rb") as f:
            data = f.read()
        _write_atomic(self.path, data, int(mode, 8), int(uid), int(gid))
        os.unlink(self.backup)
        os.unlink(self.meta)

    def close(self):
        if getattr(self, "live", False):
            self._put_back()
            self.live = False
        if self in _open_files:
            _open_files.remove(self)
        if self.lock_fd >= 0:
            os.close(self.lock_fd)  # releases the lock
            self.lock_fd = -1


def jwt_stack(sock, audience=None, timeout_ms=3000, session_env=True, extra_options="", extra_auth=""):
    """A PAM service: pam_jwt decides auth; account re-checks revocation
    through pam_jwt, then pam_unix (expiry); session exports the device id."""
    opts = "socket=%s timeout=%d %s %s" % (sock, timeout_ms, "audience=" + audience if audience else "",
                                           extra_options)
    lines = ["auth required %s %s" % (MODULE, opts)]
    lines += [extra_auth] if extra_auth else []
    lines += ["account required %s %s" % (MODULE, opts), "account required pam_unix.so"]
    lines += ["session optional %s %s" % (MODULE, opts)] if session_env else []
    lines += ["session required pam_permit.so"]
    return "\n".join(lines) + "\n"


# ---- tokens -----------------------------------------------------------------

def issue(daemon, user, audience, ttl=None):
    """(access token, device id) for user from tokend (root may ask for anyone)."""
    r = daemon.api.issue_token(user=user, audience=audience, ttl=ttl)
    assert r.status == 200, r
    return r.json["access_token"], r.json["device_id"]


def revoke(daemon, device_id):
    r = daemon.api.delete_device(device_id)
    assert r.status == 204, r


def wait_expired(token):
    """Sleep until the token's exp has passed by a second (ClockSkew=0)."""
    exp = jwt_parts(token)[1]["exp"]
    while time.time() < exp + 1:
        time.sleep(0.2)


def wait_audit(daemon, event, needle, timeout=10):
    """The first audit row of event whose detail contains needle (polled)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [a for a in daemon.audit(event) if needle in (a.get("detail") or "")]
        if rows:
            return rows
        assert time.monotonic() < deadline, "no %s audit row with %r in %r" % (
            event, needle, [a.get("detail") for a in daemon.audit(event)])
        time.sleep(0.1)


# ---- processes ----------------------------------------------------------------

def descendants(pid):
    """Pids of every process below pid (from /proc), deepest last."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_tree(proc, timeout=10):
    """SIGTERM a Popen and everything it started (collected before it dies),
    then SIGKILL what is left."""
    if proc is None:
        return
    pids = descendants(proc.pid)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- sshd -----------------------------------------------------------------

class Sshd:
    """sshd -D -e on 127.0.0.1:PORT, run through DIR/<name> → /usr/sbin/sshd so
    its PAM service is /etc/pam.d/<name> (sshd uses argv[0]'s basename)."""

    def __init__(self, pam_text, users):
        need(SSHD, SSH)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="tde2e-sshd-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.pam = EtcFile("/etc/pam.d", pam_text, prefix="tde2e-sshd-")
        self.name = self.pam.name
        self.program = os.path.join(self.dir, self.name)
        os.symlink(SSHD, self.program)
        self.hostkey = os.path.join(self.dir, "ssh_host_ed25519_key")
        p = run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tde2e", "-f", self.hostkey])
        assert p.returncode == 0, p.stderr
        self.config = os.path.join(self.dir, "sshd_config")
        self.log_path = os.path.join(self.dir, "sshd.log")
        self.users = users

    def _write_config(self):
        with open(self.config, "w") as f:
            f.write("\n".join([
                "ListenAddress 127.0.0.1:%d" % self.port,
                "HostKey %s" % self.hostkey,
                "PidFile %s" % os.path.join(self.dir, "sshd.pid"),
                "UsePAM yes",
                "KbdInteractiveAuthentication yes",
                "PasswordAuthentication no",
                "PubkeyAuthentication no",
                "HostbasedAuthentication no",
                "AuthorizedKeysFile none",
                "PermitRootLogin no",
                "AllowUsers %s" % " ".join(self.users),
                "MaxAuthTries 3",
                "LoginGraceTime 60",
                "PrintMotd no",
                "PrintLastLog no",
                "X11Forwarding no",
                "AllowTcpForwarding no",
                "LogLevel VERBOSE",
            ]) + "\n")

    def start(self, attempts=5):
        for _ in range(attempts):  # another test may take the free port first
            self.port = free_port()
            self._write_config()
            p = run([self.program, "-t", "-f", self.config])
            assert p.returncode == 0, "sshd -t: %s" % p.stderr
            with open(self.log_path, "a") as log:
                self.proc = subprocess.Popen([self.program, "-D", "-e", "-f", self.config],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            if self.wait_ready():
                return self
            kill_tree(self.proc)
        raise AssertionError("sshd did not start:\n" + self.log())

    def wait_ready(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.answers():
                return True
            time.sleep(0.05)
        return False

    def answers(self):
        """True when a new TCP connection gets an SSH banner."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                return s.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False

    log = Tokend.log  # the text of self.log_path ("" before the first start)

    def ssh(self, user, token=None, askpass=None, as_user=None, env=None, command="id -un", timeout=60, host=None):
        """ssh USER@127.0.0.1 COMMAND with keyboard-interactive only, the
        prompt answered by SSH_ASKPASS (forced): a script printing token, or
        the program askpass. as_user: run ssh (and so askpass) as that pwd
        entry. host: the name ssh is given (its prompts say "(USER@host)"),
        connecting to 127.0.0.1 all the same (HostName=, HostKeyAlias=). Returns the
        CompletedProcess plus .prompts (what askpass saw, with a token script)."""
        work = tempfile.mkdtemp(prefix="tde2e-ssh-", dir="/tmp")
        try:
            os.chmod(work, 0o755)
            prompts = os.path.join(work, "prompts")
            if token is not None:
                tokfile = os.path.join(work, "token")
                with open(tokfile, "w") as f:
                    f.write(token + "\n")
                askpass = os.path.join(work, "askpass")
                with open(askpass, "w") as f:
                    f.write("#!/bin/sh\nprintf '%%s\\n' \"$1\" >> %s\ncat %s\n" % (prompts, tokfile))
                os.chmod(askpass, 0o755)
            known = os.path.join(work, "known_hosts")
            e = {"PATH": "/usr/bin:/bin", "HOME": work, "LANG": "C", "DISPLAY": ":0",
                 "SSH_ASKPASS": askpass, "SSH_ASKPASS_REQUIRE": "force"}
            e.update(env or {})
            preexec = None
            if as_user is not None:
                os.chown(work, as_user.pw_uid, as_user.pw_gid)

                def preexec():
                    os.setgroups([])
                    os.setgid(as_user.pw_gid)
                    os.setuid(as_user.pw_uid)
            argv = [SSH, "-F", "/dev/null", "-p", str(self.port), "-l", user,
                    "-o", "BatchMode=no", "-o", "PreferredAuthentications=keyboard-interactive",
                    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=" + known,
                    "-o", "GlobalKnownHostsFile=/dev/null", "-o", "NumberOfPasswordPrompts=1",
                    "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
            # ssh puts HostName= in its "(user@host)" prompt prefix, unless a
            # HostKeyAlias= is set: that is the name a user's ssh config gives
            argv += ["-o", "HostName=127.0.0.1", "-o", "HostKeyAlias=" + host, host] if host else ["127.0.0.1"]
            argv.append(command)
            p = subprocess.run(argv, env=e, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout, start_new_session=True, preexec_fn=preexec, check=False)
            try:
                with open(prompts) as f:
                    p.prompts = f.read().splitlines()
            except FileNotFoundError:
                p.prompts = []
            return p
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def close(self):
        kill_tree(self.proc)
        self.proc = None
        self.pam.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- fixtures -------------------------------------------------------------

@pytest.fixture
def e2e_user(system_user):
    """make(password=None) → a throwaway tdharness.SystemUser tde2e_* whose
    shell is /bin/sh (sshd and su run commands through it); deleted at the end."""
    def make(password=None):
        u = system_user(USER_PREFIX, password)
        p = _run_locked(["usermod", "-s", "/bin/sh", u.name])
        assert p.returncode == 0, p.stderr
        u.pw = pwd.getpwnam(u.name)
        return u
    need()
    return make


@pytest.fixture
def etc_files():
    """Closes every EtcFile/ReplacedEtcFile appended to it, even on failure."""
    made = []
    yield made
    for f in reversed(made):
        f.close()


@pytest.fixture
def daemon(tokend_factory):
    """A real tokend (tdharness) whose tokens expire on the second."""
    need()
    return tokend_factory(DAEMON_CONFIG)


@pytest.fixture
def sshd_factory():
    """make(pam_text, users) → a started Sshd; stopped and removed at the end."""
    made = []

    def make(pam_text, users):
        s = Sshd(pam_text, users)
        made.append(s)
        return s.start()

    yield make
    for s in made:
        s.close()
