# SPDX-License-Identifier: MIT
"""Run real PAM stacks under pam_wrapper for the pam_jwt tests.

A ServiceDir holds the PAM service files a test writes (pam_wrapper reads them
instead of /etc/pam.d); run_app() drives tests/pam/pam-app through them and
parses its output; run_pamtester() does the same with pamtester.
"""

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time

TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
MODULE = os.path.join(TOP_BUILDDIR, "pam", ".libs", "pam_jwt.so")
PAM_APP = os.path.join(TOP_BUILDDIR, "tests", "pam", "pam-app")
WRAPPER_MODULES = "/usr/lib/x86_64-linux-gnu/pam_wrapper"
# pam_wrapper (1.1.4) sets up a private copy of libpam's config in /tmp/pam.<char>
# in each process's constructor, and two processes starting at the same moment
# can end up sharing (and overwriting) one directory. Everyone who starts a
# pam_wrapper process through this file holds this lock until the set-up is done.
INIT_LOCK = "/tmp/pam_wrapper-init.lock"


@contextlib.contextmanager
def pam_wrapper_init_lock():
    fd = os.open(INIT_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def find_pam_wrapper():
    """Path of libpam_wrapper.so (from dpkg -L libpam-wrapper), or None."""
    try:
        out = subprocess.run(["dpkg", "-L", "libpam-wrapper"], capture_output=True, text=True,
                             check=False).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        if line.endswith("/libpam_wrapper.so") and os.path.exists(line):
            return line
    return None


# Set by make check in --enable-sanitizers builds: the ASan runtime, which
# must come first in any process that loads our ASan-built pam_jwt.so.
SANITIZER_PRELOAD = os.environ.get("TD_SANITIZER_PRELOAD") or None


def preload(*libs):
    """An LD_PRELOAD value: the sanitizer runtime (if any) first, then libs."""
    return " ".join(x for x in (SANITIZER_PRELOAD,) + libs if x)


def wrapper_module(name):
    """pam_wrapper's helper modules (pam_set_items.so, pam_get_items.so)."""
    for d in (WRAPPER_MODULES, os.path.dirname(find_pam_wrapper() or "/") + "/pam_wrapper"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return None


class ServiceDir:
    """A PAM_WRAPPER_SERVICE_DIR. `other` denies everything, like Debian's."""

    def __init__(self, path):
        self.path = str(path)
        os.makedirs(self.path, exist_ok=True)
        self.write("other", "auth required pam_deny.so\naccount required pam_deny.so\n"
                            "password required pam_deny.so\nsession required pam_deny.so\n")

    def write(self, service, text):
        with open(os.path.join(self.path, service), "w") as f:
            f.write(text)
        return service

    def jwt(self, service, options="", auth_control="required", extra_auth="",
            account=True, session=True, before_auth=""):
        """A service with pam_jwt in every phase it implements."""
        lines = []
        if before_auth:
            lines.append(before_auth)
        lines.append("auth %s %s %s" % (auth_control, MODULE, options))
        if extra_auth:
            lines.append(extra_auth)
        if account:
            lines.append("account required %s %s" % (MODULE, options))
        if session:
            lines.append("session required %s %s" % (MODULE, options))
        return self.write(service, "\n".join(lines) + "\n")

    def env(self, extra=None):
        lib = find_pam_wrapper()
        env = dict(os.environ)
        # debug level 2: pam_syslog() lines appear on stderr as "SYSLOG(prio): …"
        env.update({"LD_PRELOAD": preload(lib), "PAM_WRAPPER": "1", "PAM_WRAPPER_SERVICE_DIR": self.path,
                    "PAM_WRAPPER_DEBUGLEVEL": "2"})
        env.pop("PAM_AUTHTOK", None)
        env.update(extra or {})
        return env


class AppResult:
    LINE = re.compile(r"^(auth|setcred|acct|open|close|user:\S*) (PAM_\w+)$")

    def __init__(self, proc, elapsed):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.elapsed = elapsed
        self.codes = []      # [(op, PAM_CODE)] in order
        self.prompts = []    # [(style, text)]
        self.fail_delays = []
        self.env = {}
        for line in proc.stdout.splitlines():
            m = self.LINE.match(line)
            if m:
                self.codes.append((m.group(1), m.group(2)))
            elif line.startswith("PROMPT "):
                style, _, text = line[7:].partition(" ")
                self.prompts.append((style, text))
            elif line.startswith("FAIL_DELAY "):
                # libpam calls the delay function after every call, with 0 when
                # no module asked for a delay
                usec = int(line.split()[1])
                if usec:
                    self.fail_delays.append(usec)
            elif line.startswith("ENV "):
                k, _, v = line[4:].partition("=")
                self.env[k] = v

    @property
    def logs(self):
        """pam_syslog() lines, as pam_wrapper prints them."""
        return [line.split(" - SYSLOG", 1)[1] for line in self.stderr.splitlines() if " - SYSLOG" in line]

    def code(self, op="auth", index=0):
        found = [c for o, c in self.codes if o == op]
        return found[index] if len(found) > index else None

    def __repr__(self):
        return "AppResult(rc=%s, codes=%s, stdout=%r, stderr=%r)" % (
            self.returncode, self.codes, self.stdout[-2000:], self.stderr[-2000:])


def run_app(services, service, user, ops=("auth",), answers=(), answer_file=None, rhost=None,
            tty=None, env=None, timeout=30, prefix=()):
    argv = list(prefix) + [PAM_APP]
    for a in answers:
        argv += ["--answer", a]
    if answer_file:
        argv += ["--answer-file", str(answer_file)]
    if rhost:
        argv += ["--rhost", rhost]
    if tty:
        argv += ["--tty", tty]
    argv += [service, user] + list(ops)
    with tempfile.TemporaryFile(mode="w+") as errfile:
        with pam_wrapper_init_lock():
            proc = subprocess.Popen(["timeout", str(timeout)] + argv, stdout=subprocess.PIPE,
                                    stderr=errfile, text=True, env=services.env(env))
            ready = proc.stdout.readline()  # pam-app's "READY": pam_wrapper is set up
        # elapsed: from READY (process and pam_wrapper start-up excluded) to exit
        start = time.monotonic()
        out = proc.stdout.read()
        proc.wait()
        elapsed = time.monotonic() - start
        proc.stdout.close()
        errfile.seek(0)
        err = errfile.read()
    res = AppResult(subprocess.CompletedProcess(argv, proc.returncode, ready + out, err), elapsed)
    assert ready == "READY\n" and proc.returncode in (0, 1), res
    return res


def run_pamtester(services, service, user, ops=("authenticate",), stdin="", env=None, timeout=30,
                  prefix=()):
    """pamtester always under `timeout`: without pam_wrapper it spins on EOF."""
    argv = ["timeout", str(timeout)] + list(prefix) + [shutil.which("pamtester") or "pamtester",
                                                        "-v", service, user] + list(ops)
    with pam_wrapper_init_lock():  # pamtester gives no sign when set-up is over
        return subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              env=services.env(env), check=False)
