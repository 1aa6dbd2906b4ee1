# SPDX-License-Identifier: MIT
"""`make install DESTDIR=…` from $TOP_BUILDDIR: the file list, modes and
contents of what an administrator gets, and `make uninstall` removing it all.

Paths come from the Makefile's own variables (prefix, pammoddir, systemd
unit dir, …), so the test holds for any configure options. The D-Bus files
and man pages other parts install are checked by name: every file under
etc/dbus/ in the source tree must be installed somewhere.
"""

import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR") or os.path.abspath(os.path.join(HERE, "..", "..", "build"))

VARS = ("prefix", "bindir", "sbindir", "sysconfdir", "datadir", "mandir", "docdir", "pammoddir",
        "systemdsystemunitdir", "sysusersdir", "tmpfilesdir", "bashcompletiondir")


def make_env():
    """The environment for a make run from inside `make check`: the parent's
    jobserver file descriptors are not ours to use."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR"):
        env.pop(k, None)
    return env


def make(*args):
    # the usual umask, so directory modes do not depend on the caller's
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", TOP_BUILDDIR, *args],
                          capture_output=True, text=True, env=make_env(), timeout=600,
                          preexec_fn=lambda: os.umask(0o022))


def make_vars():
    """The installation directories, fully expanded, as make sees them."""
    snippet = "print-vars:\n" + "".join("\t@echo '%s=$(%s)'\n" % (v, v) for v in VARS)
    r = subprocess.run(["make", "-s", "--no-print-directory", "-C", TOP_BUILDDIR, "-f", "Makefile", "-f", "-",
                        "print-vars"], input=snippet, capture_output=True, text=True, env=make_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    out = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    assert set(out) == set(VARS), out
    return out


def files_under(root):
    """Relative paths of every non-directory below root."""
    found = set()
    for d, _, names in os.walk(root):
        for n in names:
            found.add(os.path.relpath(os.path.join(d, n), root))
    return found


@pytest.fixture(scope="module")
def dirs():
    return make_vars()


@pytest.fixture(scope="module")
def destdir():
    d = tempfile.mkdtemp(prefix="tokend-install-")
    r = make("install", "DESTDIR=" + d)
    assert r.returncode == 0, r.stdout + r.stderr
    yield d
    shutil.rmtree(d, ignore_errors=True)


def expected_files(v):
    """Every file make install must install (relative to DESTDIR), with its mode
    (None for symbolic links)."""
    rel = lambda *p: os.path.join(*p).lstrip("/")  # noqa: E731
    exp = {
        rel(v["sbindir"], "tokend"): 0o755,
        rel(v["bindir"], "tokenctl"): 0o755,
        rel(v["bindir"], "tokenctl-askpass"): None,
        rel(v["pammoddir"], "pam_jwt.so"): 0o644,
        rel(v["systemdsystemunitdir"], "tokend.service"): 0o644,
        rel(v["systemdsystemunitdir"], "tokend.socket"): 0o644,
        rel(v["systemdsystemunitdir"], "tokend-network.socket"): 0o644,
        rel(v["sysusersdir"], "tokend.conf"): 0o644,
        rel(v["tmpfilesdir"], "tokend.conf"): 0o644,
        rel(v["sysconfdir"], "tokend", "tokend.conf"): 0o644,
        rel(v["sysconfdir"], "pam.d", "tokend"): 0o644,
        rel(v["datadir"], "pam-configs", "pam_jwt"): 0o644,
        rel(v["bashcompletiondir"], "tokenctl"): 0o644,
        rel(v["mandir"], "man1", "tokenctl.1"): 0o644,
        rel(v["mandir"], "man5", "tokend.conf.5"): 0o644,
        rel(v["mandir"], "man8", "tokend.8"): 0o644,
        rel(v["mandir"], "man8", "pam_jwt.8"): 0o644,
        rel(v["docdir"], "README.md"): 0o644,
        rel(v["docdir"], "examples", "pam.d", "tokend-only"): 0o644,
        rel(v["docdir"], "examples", "pam.d", "tokend-or-password"): 0o644,
        rel(v["docdir"], "examples", "pam.d", "sudo"): 0o644,
        rel(v["docdir"], "examples", "sshd_config.d", "tokend.conf"): 0o644,
        rel(v["docdir"], "examples", "systemd", "tokend-network.conf"): 0o644,
        rel(v["docdir"], "examples", "systemd", "tokend-verifier.conf"): 0o644,
    }
    # every man page of the source tree (io.tokend.Tokend1.5 comes from the D-Bus part)
    for n in sorted(os.listdir(os.path.join(TOP_SRCDIR, "man"))):
        m = re.fullmatch(r".+\.([1-8])", n)
        if m:
            exp[rel(v["mandir"], "man" + m.group(1), n)] = 0o644
    return exp


def dbus_sources():
    d = os.path.join(TOP_SRCDIR, "etc", "dbus")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_file_list(destdir, dirs):
    installed = files_under(destdir)
    exp = expected_files(dirs)
    missing = sorted(set(exp) - installed)
    assert not missing, "not installed: %s" % missing
    # D-Bus policy, activation and introspection files: installed by name
    names = {os.path.basename(p): p for p in installed}
    for n in dbus_sources():
        assert n in names, "etc/dbus/%s is not installed" % n
    extra = sorted(p for p in installed - set(exp) if os.path.basename(p) not in dbus_sources())
    assert not extra, "unexpected files installed: %s" % extra


def test_modes(destdir, dirs):
    exp = expected_files(dirs)
    for d, subdirs, names in os.walk(destdir):
        for n in subdirs:
            st = os.lstat(os.path.join(d, n))
            assert stat.S_IMODE(st.st_mode) == 0o755, "%s: directory mode %o" % (n, st.st_mode)
        for n in names:
            path = os.path.join(d, n)
            relp = os.path.relpath(path, destdir)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                assert exp.get(relp, 0) is None, "%s: unexpected symbolic link" % relp
                continue
            assert stat.S_ISREG(st.st_mode), relp
            # nothing setuid/setgid/sticky, nothing writable by group or others
            assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), "%s: mode %o" % (relp, mode)
            assert not mode & 0o022, "%s: writable by others (%o)" % (relp, mode)
            want = exp.get(relp, 0o644)  # D-Bus files: plain data
            assert mode == want, "%s: mode %o, want %o" % (relp, mode, want)


def test_askpass_is_tokenctl(destdir, dirs):
    link = os.path.join(destdir, dirs["bindir"].lstrip("/"), "tokenctl-askpass")
    assert os.readlink(link) == "tokenctl"


def test_pam_module_is_a_module(destdir, dirs):
    d = os.path.join(destdir, dirs["pammoddir"].lstrip("/"))
    assert sorted(os.listdir(d)) == ["pam_jwt.so"]  # no libtool .la, no .a
    with open(os.path.join(d, "pam_jwt.so"), "rb") as f:
        assert f.read(4) == b"\x7fELF"


def read(destdir, *parts):
    with open(os.path.join(destdir, os.path.join(*parts).lstrip("/"))) as f:
        return f.read()


def test_units(destdir, dirs):
    svc = read(destdir, dirs["systemdsystemunitdir"], "tokend.service")
    sock = read(destdir, dirs["systemdsystemunitdir"], "tokend.socket")
    assert not re.search(r"@\w+@", svc), "unsubstituted @…@ in tokend.service"
    m = re.search(r"(?m)^ExecStart=(\S+) --config (\S+)$", svc)
    assert m and m.group(1) == os.path.join(dirs["sbindir"], "tokend"), svc
    assert m.group(2) == os.path.join(dirs["sysconfdir"], "tokend", "tokend.conf")
    for line in ("Type=notify", "User=tokend", "SupplementaryGroups=shadow", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=", "ProtectSystem=strict", "Requires=tokend.socket",
                 "LimitCORE=0"):  # no core file with keys, passwords and tokens in it
        assert re.search("(?m)^%s$" % re.escape(line), svc), line
    assert re.search(r"(?m)^ListenStream=/run/tokend/tokend\.sock$", sock)
    assert re.search(r"(?m)^SocketMode=0666$", sock)


def test_sysusers_and_tmpfiles(destdir, dirs):
    su = [line.split() for line in read(destdir, dirs["sysusersdir"], "tokend.conf").splitlines()
          if line.strip() and not line.startswith("#")]
    assert ["u", "tokend"] == su[0][:2]
    assert ["m", "tokend", "shadow"] in su
    assert any(e[:2] == ["g", "tokend-admin"] for e in su)
    tf = read(destdir, dirs["tmpfilesdir"], "tokend.conf")
    assert re.search(r"(?m)^d\s+/var/lib/tokend\s+0700\s+tokend\s+tokend", tf)
    assert re.search(r"(?m)^d\s+/var/lib/tokend/keys\s+0700\s+tokend\s+tokend", tf)


def config_keys():
    """(section, key, default) of every key in common/tokend-config-keys.c's table."""
    with open(os.path.join(TOP_SRCDIR, "common", "tokend-config-keys.c")) as f:
        src = f.read()
    keys = re.findall(r'\{ "(\w+)", "(\w+)", K_\w+, [^,]+, (NULL|"[^"]*"),', src)
    assert len(keys) >= 20, "cannot read the key table"
    return [(s, k, "" if d == "NULL" else d.strip('"')) for s, k, d in keys]


def test_default_config_documents_every_key(destdir, dirs):
    conf = read(destdir, dirs["sysconfdir"], "tokend", "tokend.conf")
    section = None
    seen = {}
    for line in conf.splitlines():
        if not line.strip() or line.startswith("#") and not re.match(r"#\w+=", line):
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
            continue
        m = re.fullmatch(r"#(\w+)=(.*)", line)
        assert m, "not a section, a comment or a commented key: %r" % line
        seen[(section, m.group(1))] = m.group(2)
    for s, k, d in config_keys():
        assert (s, k) in seen, "[%s] %s is missing from etc/tokend.conf" % (s, k)
        assert seen[(s, k)] == d, "[%s] %s=%s, but the built-in default is %r" % (s, k, seen[(s, k)], d)
    man = read(destdir, dirs["mandir"], "man5", "tokend.conf.5")
    for s, k, d in config_keys():
        assert re.search(r"(?m)^\.SH \[%s\]$" % s, man), "tokend.conf(5) has no section [%s]" % s
        want = ".BI %s= %s" % (k, d.replace("-", "\\-")) if d else ".BI %s=" % k
        assert re.search("(?m)^%s$" % re.escape(want), man) or \
            re.search('(?m)^%s$' % re.escape('.BI %s= "%s"' % (k, d)), man), \
            "tokend.conf(5) does not document %s with its default %r" % (k, d)


def test_installed_tokend_reads_the_installed_config(destdir, dirs, tmp_path):
    """The commented default file gives a clean start: no warning, no error."""
    tokend = os.path.join(destdir, dirs["sbindir"].lstrip("/"), "tokend")
    conf = os.path.join(destdir, dirs["sysconfdir"].lstrip("/"), "tokend", "tokend.conf")
    sock = str(tmp_path / "s")
    p = subprocess.Popen([tokend, "--config", conf, "--state-dir", str(tmp_path / "state"), "--socket", sock,
                          "--bus", "none"], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            if os.path.exists(sock) or p.poll() is not None:
                break
            time.sleep(0.05)
        assert os.path.exists(sock), "tokend did not start"
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "warning" not in err and "error" not in err, err


def test_man_pages_render_without_warnings(destdir, dirs):
    if not shutil.which("groff"):
        pytest.skip("groff is not installed")
    mandir = os.path.join(destdir, dirs["mandir"].lstrip("/"))
    pages = sorted(os.path.join(d, n) for d, _, ns in os.walk(mandir) for n in ns)
    assert len(pages) >= 4
    for page in pages:
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", page], capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr, "%s: %s" % (page, r.stderr)


def test_unit_hardening(destdir, dirs):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    unit = os.path.join(destdir, dirs["systemdsystemunitdir"].lstrip("/"), "tokend.service")
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", unit],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for tokend\.service: (\d+\.\d+)", r.stdout)
    assert m, r.stdout[-2000:] + r.stderr
    assert float(m.group(1)) <= 1.5, r.stdout


def test_unit_exposure_with_drop_ins(destdir, dirs, tmp_path):
    """systemd-analyze security --offline on tokend.service with each shipped
    drop-in (examples/systemd/): an issuer whose listener comes from
    tokend-network.socket stays <= 1.0 and may not allocate Internet sockets
    at all; only the verifier's drop-in allows AF_INET/AF_INET6 (outbound
    HTTPS to its issuer). The figures in the drop-ins' comments are the ones
    measured, also for the self-binding variant tokend-network.conf describes."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    units = os.path.join(destdir, dirs["systemdsystemunitdir"].lstrip("/"))
    examples = os.path.join(destdir, dirs["docdir"].lstrip("/"), "examples", "systemd")

    def analyze(name, text):
        sysdir = tmp_path / name / "etc" / "systemd" / "system"
        (sysdir / "tokend.service.d").mkdir(parents=True)
        for u in ("tokend.service", "tokend.socket", "tokend-network.socket"):
            shutil.copy(os.path.join(units, u), str(sysdir / u))
        if text is not None:
            (sysdir / "tokend.service.d" / "50-test.conf").write_text(text)
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                            "--root=" + str(tmp_path / name), "tokend.service"],
                           capture_output=True, text=True, timeout=120)
        m = re.search(r"Overall exposure level for tokend\.service: (\d+\.\d+)", r.stdout)
        assert m, r.stdout[-2000:] + r.stderr
        inet = re.search(r"Service (cannot|may) allocate Internet sockets", r.stdout)
        assert inet, r.stdout
        return float(m.group(1)), inet.group(1) == "may", r.stdout

    def dropin(name):
        with open(os.path.join(examples, name)) as f:
            return f.read()

    base, base_inet, _ = analyze("base", None)
    network_text, verifier_text = dropin("tokend-network.conf"), dropin("tokend-verifier.conf")
    network, network_inet, out = analyze("network", network_text)
    assert network <= 1.0 and not network_inet and not base_inet, out
    assert "%.1f with this" % network in network_text and "%.1f without" % base in verifier_text
    verifier, verifier_inet, out = analyze("verifier", verifier_text)
    assert verifier_inet and "Service has access to the host's network" in out, out  # the drop-in was read
    assert "%.1f with this drop-in" % verifier in verifier_text, (verifier, verifier_text)
    # the self-binding variant, as its comment lists it: Internet sockets, and the figure given
    lines = network_text.split("#   [Service]\n", 1)[1].split("[Unit]", 1)[0]
    bind = "[Service]\n" + "".join(ln[4:] + "\n" for ln in lines.splitlines() if ln.startswith("#   "))
    selfbind, selfbind_inet, out = analyze("self-binding", bind)
    assert selfbind_inet and selfbind > 1.0 and "measured %.1f" % selfbind in network_text, (selfbind, bind)


def test_uninstall_removes_everything(destdir):
    # runs last in this file: it empties the shared DESTDIR
    assert files_under(destdir)
    r = make("uninstall", "DESTDIR=" + destdir)
    assert r.returncode == 0, r.stdout + r.stderr
    left = sorted(files_under(destdir))
    assert not left, "left behind by make uninstall: %s" % left

