# SPDX-License-Identifier: MIT
"""Socket activation of the [Network] listener (tokend-network.socket):
tokend takes the TCP sockets systemd passes under the name "network" and
serves HTTPS on them without binding anything itself. systemd's own
systemd-socket-activate passes a TCP and the Unix socket for a password
login (real PAM stack) and verify over TLS (a throwaway CA made with the
openssl CLI); a small exec wrapper passes hand-made fds for the hostile
cases, each beside a control that starts: a plain-HTTP socket off loopback,
fds of the wrong kind (UDP, not listening, AF_UNIX as "network", TCP as the
API socket), an unknown name, a socket that is not one of Listen= and
"network" sockets without Listen= are refused at start-up with the fd and
the reason in the log. In the sandbox tokend.service keeps with the socket
unit (a network namespace of its own, no AF_INET/AF_INET6 socket()) the
passed socket serves, while Listen= without it cannot even be bound."""

import os
import platform
import shutil
import socket
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import Tokend, need_root, pam_user, system_user  # noqa: E402,F401
from tdnet import NetClient, TestCA, free_port, network_config  # noqa: E402

# Renumber the inherited fds to 3.. and set $LISTEN_* for this very process
# (LISTEN_PID must be tokend's pid: exec keeps it), as systemd does. With
# "deny-inet", first the seccomp filter systemd installs for
# RestrictAddressFamilies=AF_UNIX (x86_64): socket(AF_INET/AF_INET6) fails
# with EAFNOSUPPORT.
WRAPPER = r"""
import ctypes, fcntl, os, socket, struct, sys
names, fds, argv = sys.argv[1], [int(f) for f in sys.argv[2].split(",") if f], sys.argv[4:]
high = [fcntl.fcntl(f, fcntl.F_DUPFD, 100) for f in fds]
for f in fds:
    os.close(f)
for i, h in enumerate(high):
    os.dup2(h, 3 + i)
    os.close(h)
if fds:  # systemd never says LISTEN_FDS=0 (and sd_listen_fds_with_names() calls that invalid)
    os.environ.update(LISTEN_FDS=str(len(fds)), LISTEN_PID=str(os.getpid()))
if fds and names != "-":
    os.environ["LISTEN_FDNAMES"] = names
if sys.argv[3] == "deny-inet":
    ld, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
    prog = [(ld, 0, 0, 4), (jeq, 0, 5, 0xC000003E),  # seccomp_data.arch: x86_64, else allow
            (ld, 0, 0, 0), (jeq, 0, 3, 41),  # nr: socket(2)
            (ld, 0, 0, 16), (jeq, 2, 0, socket.AF_INET), (jeq, 1, 0, socket.AF_INET6),  # args[0]
            (ret, 0, 0, 0x7FFF0000), (ret, 0, 0, 0x00050000 | 97)]  # ALLOW, ERRNO(EAFNOSUPPORT)
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    fprog = ctypes.create_string_buffer(struct.pack("HxxxxxxP", len(prog), ctypes.addressof(code)))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(38, 1, None, 0, 0) or libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0):  # NO_NEW_PRIVS, SECCOMP
        sys.exit("seccomp: %s" % os.strerror(ctypes.get_errno()))
os.execv(argv[0], argv)
"""

SERVED = "serving the API over"


@pytest.fixture
def pki(tmp_path):
    ca = TestCA(str(tmp_path / "ca"))
    cert, key = ca.issue("tokend-server")
    return ca, cert, key


@pytest.fixture
def daemons():
    made = []

    def make(config):
        d = Tokend(config)
        made.append(d)
        return d
    yield make
    for d in made:
        d.close()


def tcp(host="127.0.0.1", port=0, listen=True, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    if listen:
        s.listen(16)
    return s


def unix_listener(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(16)
    return s


def activate(d, socks, names, sandbox=False):
    """Start d with socks as fds 3.. named names ("-": no $LISTEN_FDNAMES);
    sandbox: in a network namespace of its own and with socket() of
    AF_INET/AF_INET6 refused, as tokend.service runs (PrivateNetwork=yes,
    RestrictAddressFamilies=AF_UNIX)."""
    fds = [s.fileno() for s in socks]
    d.launcher = ((["unshare", "--net", "--"] if sandbox else []) +
                  [sys.executable, "-c", WRAPPER, names, ",".join(map(str, fds)), "deny-inet" if sandbox else "-"])
    d.pass_fds = tuple(fds)
    return d.start()


def refused(d, socks, names, sandbox=False):
    """Start d as activate() does: it must exit before serving. → what it logged."""
    before = len(d.log())
    with pytest.raises(RuntimeError) as e:
        activate(d, socks, names, sandbox)
    log = d.log()[before:]
    assert "exited with" in str(e.value) and SERVED not in log, e.value
    return log


def test_https_login_on_sockets_from_systemd_socket_activate(pki, pam_user, daemons):  # noqa: F811
    tool = shutil.which("systemd-socket-activate")
    if not tool:
        pytest.skip("systemd-socket-activate (Debian package systemd) is not installed")
    ca, cert, key = pki
    user, service = pam_user
    port = free_port()
    url = "https://127.0.0.1:%d" % port
    d = daemons("[Login]\nPAMService=%s\nFailureDelay=0\n" % service +
                network_config("127.0.0.1:%d" % port, cert, key, public_url=url))
    # systemd-socket-activate passes only a few variables on: the sanitizers' too
    keep = [a for v in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS") if v in os.environ for a in ("-E", v)]
    # It execs tokend at the first connection: wait_ready's on the Unix socket.
    d.launcher = [tool, "-l", "127.0.0.1:%d" % port, "-l", d.socket, "--fdname=network:api"] + keep
    d.start()
    assert "serving the API over HTTPS on 127.0.0.1:%d (socket from systemd)" % port in d.log(), d.log()
    net = NetClient("127.0.0.1", port, ca.cert)
    r = net.login(user.name, user.password, device_name="laptop")
    assert r.status == 200, (r, d.log())
    v = net.verify(r.json["access_token"], user=user.name, service="sshd")
    assert v.status == 200 and v.json["active"] is True, v
    assert d.api.verify(r.json["access_token"]).status == 200  # the Unix socket from systemd serves too
    assert net.issue_token().status == 403  # same rules as a listener tokend binds: no peer login over TCP


def test_inherited_and_own_listener_together(pki, daemons):
    """Listen= names two addresses, systemd passes one: tokend binds the other."""
    ca, cert, key = pki
    s = tcp()
    port, own = s.getsockname()[1], free_port()
    d = daemons(network_config("127.0.0.1:%d 127.0.0.2:%d" % (port, own), cert, key))
    activate(d, [s], "network")
    s.close()
    log = d.log()
    assert "on 127.0.0.1:%d (socket from systemd)" % port in log, log
    assert "HTTPS on 127.0.0.2:%d" % own in log and "127.0.0.2:%d (socket from systemd)" % own not in log, log
    for host, p in (("127.0.0.1", port), ("127.0.0.2", own)):
        assert NetClient(host, p, ca.cert).jwks().status == 200


def test_plain_socket_off_loopback_is_refused(daemons):
    s = tcp("0.0.0.0")
    d = daemons(network_config("127.0.0.1:%d" % free_port(), plain=True))
    err = refused(d, [s], "network")
    assert "listens on 0.0.0.0:%d: plain HTTP only on loopback" % s.getsockname()[1] in err, err
    # control: a loopback socket for the same plain configuration
    ok = tcp()
    d.write_config(network_config("127.0.0.1:%d" % ok.getsockname()[1], plain=True))
    activate(d, [ok], "network")
    assert "plain HTTP (loopback) on 127.0.0.1:%d (socket from systemd)" % ok.getsockname()[1] in d.log()
    assert NetClient("127.0.0.1", ok.getsockname()[1], None).jwks().status == 200


def test_fd_of_the_wrong_kind_is_refused(pki, daemons):
    ca, cert, key = pki
    good = tcp()
    port = good.getsockname()[1]
    d = daemons(network_config("127.0.0.1:%d" % port, cert, key))
    wrong = [
        (tcp(kind=socket.SOCK_DGRAM, listen=False), "network", "is an AF_INET/AF_INET6 socket that is not a stream"),
        (tcp(listen=False), "network", "is a TCP socket that is not listening"),
        (unix_listener(os.path.join(d.dir, "other.sock")), "network", "is a listening AF_UNIX stream socket, but a "
         "[Network] listener must be"),
        (tcp(), "api", "is a listening TCP socket, but the API socket must be"),
        (tcp(), "-", "FileDescriptorName=network"),  # no names at all: fd 3 would be the API socket
    ]
    for sock, name, why in wrong:
        err = refused(d, [sock], name)
        assert "fd 3" in err and why in err, (name, why, err)
        sock.close()
    # control: the listening TCP socket named "network", and the Unix one as
    # the API socket, named or not
    for names in ("network:api", "network:tokend.socket", "network:unknown"):
        if os.path.exists(d.socket):
            os.unlink(d.socket)
        api = unix_listener(d.socket)
        before = d.log().count("on 127.0.0.1:%d (socket from systemd)" % port)
        activate(d, [good, api], names)
        assert d.log().count("on 127.0.0.1:%d (socket from systemd)" % port) == before + 1, d.log()
        assert NetClient("127.0.0.1", port, ca.cert).jwks().status == 200
        assert d.api.jwks().status == 200
        assert d.stop() == 0
        api.close()


def test_unknown_name_or_address_is_refused(pki, daemons):
    ca, cert, key = pki
    s = tcp()
    port = s.getsockname()[1]
    d = daemons(network_config("127.0.0.1:%d" % port, cert, key))
    err = refused(d, [s], "bogus")
    assert 'fd 3 has the name "bogus"' in err, err
    # a socket that is none of Listen=
    other = tcp()
    err = refused(d, [s, other], "network:network")
    assert "fd 4 listens on 127.0.0.1:%d, which is not one of [Network] Listen=" % other.getsockname()[1] in err, err
    # "network" sockets when tokend.conf has no Listen=: no issuer, refused
    plain = daemons("")
    err = refused(plain, [s], "network")
    assert "[Network] Listen= is not set" in err, err
    # control: the same socket under its name
    activate(d, [s], "network")
    assert NetClient("127.0.0.1", port, ca.cert).jwks().status == 200


def test_passed_socket_serves_in_the_units_sandbox(pki, daemons):
    """The claim tokend-network.conf makes: with tokend-network.socket the
    service needs no network of its own and no Internet sockets. Under
    unshare --net and a seccomp filter refusing socket(AF_INET/AF_INET6),
    login-free checks over HTTPS on the passed socket work; the control,
    the same sandbox without a passed socket, cannot open Listen=."""
    need_root("unshare --net")
    if platform.machine() != "x86_64" or not shutil.which("unshare"):
        pytest.skip("the seccomp filter here is for x86_64, and needs unshare(1)")
    ca, cert, key = pki
    s = tcp()
    port = s.getsockname()[1]
    d = daemons(network_config("127.0.0.1:%d" % port, cert, key))
    s.close()  # free the port: tokend must bind it itself, and cannot
    err = refused(d, [], "-", sandbox=True)
    assert "Listen=127.0.0.1:%d: cannot listen: Address family not supported by protocol" % port in err, err
    s = tcp(port=port)
    activate(d, [s], "network", sandbox=True)
    assert "HTTPS on 127.0.0.1:%d (socket from systemd)" % port in d.log(), d.log()
    tok = d.api.issue_token().json["access_token"]  # the Unix socket: pam_jwt's way in
    net = NetClient("127.0.0.1", port, ca.cert)
    v = net.verify(tok)
    assert v.status == 200 and v.json["active"] is True, v
    assert os.stat("/proc/%d/ns/net" % d.proc.pid).st_ino != os.stat("/proc/self/ns/net").st_ino  # its own netns
