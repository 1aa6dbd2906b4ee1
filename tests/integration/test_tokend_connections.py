# SPDX-License-Identifier: MIT
"""Connection slots (issue 13.3): one unprivileged uid that opens connection
after connection and dribbles one header byte a second cannot take every
slot. Each non-root uid gets [Limits] MaxConnectionsPerUser connections (the
ones beyond are answered 429 and closed), the last ReservedRootConnections of
MaxConnections stay for root (pam_jwt inside sshd and sudo), and a request
must be complete within RequestTimeout of its start however slowly it keeps
arriving. Controls: the attacker's admitted connections are served, another
user's request and a pam_jwt login through pamtester succeed during the attack.

The attacker is a separate process (tests/integration: ATTACKER below) run as
a throwaway user through setpriv; it reports what happens to each of its
connections as JSON lines. Root only."""

import http.client
import json
import os
import queue
import select
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pam"))
from tdharness import VALGRIND_DIR, UnixHTTPConnection, need_root, system_user, tokend_factory  # noqa: E402,F401

import pamtest  # noqa: E402

LONG = "10min"  # a RequestTimeout that does not end anything during a test

# Opens connections, dribbles one byte of an unfinished request header on
# each open one every INTERVAL seconds, and prints an event per line:
# open I / closed I (with the bytes tokend sent first) / answer I STATUS.
# Commands on stdin: open N | finish I (end the header: a complete request,
# whose answer it reports) | close I | quit.
ATTACKER = r'''
import json, os, select, socket, sys, threading
path, interval = sys.argv[1], float(sys.argv[2])
HEAD = b"POST /api/auth/token HTTP/1.1\r\nHost: x\r\nX-Slow: "
lock = threading.Lock()
conns = {}   # i -> [socket, bytes sent, finishing]
count = [0]
graveyard = []  # sockets closed by a command, for the main loop to release
def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n"); sys.stdout.flush()
def commands():
    for line in sys.stdin:
        cmd, _, arg = line.partition(" ")
        with lock:
            if cmd == "open":
                for _ in range(int(arg)):
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(path)
                    i = count[0]
                    count[0] += 1
                    conns[i] = [s, 0, False]
                    emit(ev="open", i=i)
            elif cmd == "finish":
                c = conns[int(arg)]
                c[2] = True
                c[0].sendall(HEAD[c[1]:] + b"a\r\n\r\n")
            elif cmd == "close":
                # shut down here, close in the main loop: it may be inside
                # select() on this socket right now (closing it there is EBADF)
                s = conns.pop(int(arg))[0]
                if s is not None:
                    s.shutdown(socket.SHUT_RDWR)
                    graveyard.append(s)
            else:
                break
    os._exit(0)
threading.Thread(target=commands, daemon=True).start()
while True:
    with lock:
        while graveyard:
            graveyard.pop().close()
        live = {i: c for i, c in conns.items() if c[0] is not None}
        for i, c in live.items():
            if c[2]:
                continue
            b = HEAD[c[1]:c[1] + 1] or b"a"
            try:
                c[0].send(b)
                c[1] += 1
            except OSError:
                pass  # refused: tokend shut the socket down; reading tells
    r = select.select([c[0] for c in live.values()], [], [], interval)[0] if live else []
    if not live:
        select.select([], [], [], interval)
    with lock:
        for i, c in list(conns.items()):
            if c[0] not in r:
                continue
            data, chunk = b"", b""
            try:
                while True:
                    chunk = c[0].recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if c[2] and b"\r\n\r\n" in data:
                        head, _, body = data.partition(b"\r\n\r\n")
                        n = [int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")]
                        if n and len(body) >= n[0]:
                            break
            except OSError:
                pass
            if c[2] and data:
                emit(ev="answer", i=i, status=int(data.split()[1]), sent=c[1], data=data.decode("latin-1"))
                c[2] = False
                c[1] = 0    # kept alive: dribble the next request
                if not chunk:
                    emit(ev="closed", i=i, sent=c[1], data="")
                    c[0].close(); c[0] = None
            else:
                emit(ev="closed", i=i, sent=c[1], data=data.decode("latin-1"))
                c[0].close(); c[0] = None
'''


class Attacker:
    """ATTACKER running as user (a SystemUser) against a tokend socket."""

    def __init__(self, user, socket_path, interval=1.0):
        argv = ["setpriv", "--reuid=%d" % user.uid, "--regid=%d" % user.gid, "--clear-groups",
                sys.executable, "-c", ATTACKER, socket_path, str(interval)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.events = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put(None)

    def send(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def drain(self):
        """Take in the events that arrived so far."""
        while True:
            try:
                e = self.events.get_nowait()
            except queue.Empty:
                return
            assert e is not None, "the attacker exited: %r" % self.seen
            self.seen.append(e)

    def wait(self, pred, count=1, timeout=60):
        """The first `count` events matching pred (dicts), since the start,
        waiting for them as needed; fails after timeout seconds (an upper
        bound, not a measurement)."""
        got = [e for e in self.seen if pred(e)]
        end = time.monotonic() + timeout
        while len(got) < count:
            left = end - time.monotonic()
            assert left > 0, "waited %ss for %d events, got %r (all: %r)" % (timeout, count, got, self.seen)
            try:
                e = self.events.get(timeout=left)
            except queue.Empty:
                continue
            assert e is not None, "the attacker exited: %r" % self.seen
            self.seen.append(e)
            if pred(e):
                got.append(e)
        return got[:count]

    def open(self, n):
        """Open n more connections; their indexes."""
        self.drain()
        before = len([e for e in self.seen if e["ev"] == "open"])
        self.send("open %d" % n)
        return [e["i"] for e in self.wait(lambda e: e["ev"] == "open", before + n)][before:]

    def closed(self):
        self.drain()
        return {e["i"]: e for e in self.seen if e["ev"] == "closed"}

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def attackers():
    made = []

    def make(user, socket_path, interval=1.0):
        a = Attacker(user, socket_path, interval)
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()


def tokend_connections(d):
    """How many client connections tokend holds: its sockets that
    /proc/net/unix shows bound to the tokend socket's path, less the
    listening one (accepted sockets carry the listener's address)."""
    accepted = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split()
            # Num RefCount Protocol Flags Type St Inode Path; flag 00010000: listening
            if len(fields) == 8 and fields[7] == d.socket and fields[3] != "00010000":
                accepted.add(fields[6])
    fd_dir = "/proc/%d/fd" % d.proc.pid
    n = 0
    for name in os.listdir(fd_dir):
        try:
            n += os.readlink(os.path.join(fd_dir, name)) in {"socket:[%s]" % i for i in accepted}
        except FileNotFoundError:
            pass
    return n


def wait_connections(d, want, timeout=30):
    """Until tokend holds exactly want connections (refused or ended ones
    are reaped a moment after the client sees them end)."""
    end = time.monotonic() + timeout
    while tokend_connections(d) != want:
        assert time.monotonic() < end, "tokend holds %d connections, expected %d" % (tokend_connections(d), want)
        time.sleep(0.05)


def status_of(raw):
    return int(raw.split()[1]) if raw.startswith("HTTP/1.1 ") else None


def pam_login(d, services, user):
    """A pam_jwt login of user through pamtester (pam_wrapper), as pam_jwt
    in sshd does it: root asks tokend to verify. The pamtester result."""
    tok = d.api.issue_token(user=user.name)
    assert tok.status == 200, tok
    svc = services.jwt("sshd", "socket=%s timeout=5000" % d.socket, account=False, session=False)
    return pamtest.run_pamtester(services, svc, user.name, ["authenticate"], stdin=tok.json["access_token"] + "\n")


@pytest.fixture
def services(tmp_path):
    if not pamtest.find_pam_wrapper() or not shutil.which("pamtester"):
        pytest.skip("pam_wrapper or pamtester not installed (Debian: libpam-wrapper, pamtester)")
    if not os.path.exists(pamtest.MODULE):
        pytest.skip("%s not built" % pamtest.MODULE)
    return pamtest.ServiceDir(tmp_path / "pam.d")


@pytest.fixture(autouse=True)
def _root():
    need_root("run attackers as other uids")
    if VALGRIND_DIR:
        pytest.skip("counts tokend's sockets and races its accept loop: not under valgrind")


def test_connections_beyond_the_per_user_cap_are_refused(system_user, tokend_factory, attackers):  # noqa: F811
    mallory = system_user("tdconn_")
    d = tokend_factory("[Limits]\nRequestTimeout=%s\nMaxConnections=40\nMaxConnectionsPerUser=8\n"
                       "ReservedRootConnections=8\n" % LONG)
    a = attackers(mallory, d.socket)
    opened = a.open(13)
    # 5 of the 13 are refused: an answer that names the limit, then end-of-file
    refused = a.wait(lambda e: e["ev"] == "closed", 5)
    for e in refused:
        assert status_of(e["data"]) == 429, e
        assert "MaxConnectionsPerUser=8" in e["data"] and "uid %d" % mallory.uid in e["data"], e
    wait_connections(d, 8)  # tokend holds the 8 admitted ones
    assert "refused a connection from uid=%d" % mallory.uid in d.log()
    # control: the 8 admitted connections are real slots, served as usual
    admitted = [i for i in opened if i not in a.closed()]
    assert len(admitted) == 8, a.seen
    a.send("finish %d" % admitted[0])
    ans = a.wait(lambda e: e["ev"] == "answer")[0]
    assert ans["status"] == 200 and "access_token" in ans["data"], ans
    # a slot given back is free again: one closed, one more admitted (served)
    a.send("close %d" % admitted[1])
    wait_connections(d, 7)
    [new] = a.open(1)
    a.send("finish %d" % new)
    ans = a.wait(lambda e: e["ev"] == "answer" and e["i"] == new)[0]
    assert ans["status"] == 200, ans
    # and the cap still holds after it
    [extra] = a.open(1)
    e = a.wait(lambda e: e["ev"] == "closed" and e["i"] == extra)[0]
    assert status_of(e["data"]) == 429, e


def test_one_uid_cannot_take_every_slot_from_logins(system_user, tokend_factory, attackers, services):  # noqa: F811
    mallory, bob, carol = system_user("tdconn_"), system_user("tdconn_"), system_user("tdconn_")
    d = tokend_factory("[Limits]\nRequestTimeout=%s\nMaxConnections=40\nMaxConnectionsPerUser=8\n"
                       "ReservedRootConnections=8\n" % LONG)
    # control before the attack
    p = pam_login(d, services, carol)
    assert p.returncode == 0 and "successfully authenticated" in p.stdout + p.stderr, p
    a = attackers(mallory, d.socket)
    a.open(40)  # every slot there is, one header byte a second on each
    assert len(a.wait(lambda e: e["ev"] == "closed", 32)) == 32
    assert all(status_of(e["data"]) == 429 for e in a.closed().values()), a.closed()
    # with the attack running: another user's own request, and a pam_jwt login
    r = d.client(user=bob.name).issue_token()
    assert r.status == 200, r
    p = pam_login(d, services, carol)
    assert p.returncode == 0 and "successfully authenticated" in p.stdout + p.stderr, p
    # the attacker's 8 are still open: it was capped, not merely slow
    wait_connections(d, 8)
    assert len(a.closed()) == 32, a.seen


def test_a_dribbling_request_is_closed_at_its_deadline(system_user, tokend_factory, attackers):  # noqa: F811
    mallory = system_user("tdconn_")
    timeout = 4
    d = tokend_factory("[Limits]\nRequestTimeout=%ds\n" % timeout)
    # a byte every 0.5 s: an idle timer of RequestTimeout would never end it
    a = attackers(mallory, d.socket, interval=0.5)
    [i] = a.open(1)
    e = a.wait(lambda e: e["ev"] == "closed" and e["i"] == i, timeout=timeout + 60)[0]
    assert e["data"] == "", e  # closed, no answer: the request never ended
    assert e["sent"] >= 2, e  # it was still sending
    assert "RequestTimeout=%ds" % timeout in d.log()
    # right after a quick request: the sweeper then sleeps until the quick
    # one's deadline (its slot long gone) and is not woken for the
    # dribbler's later one, yet still ends it at that deadline
    assert d.client(user=mallory.name).issue_token().status == 200
    [j] = a.open(1)
    e = a.wait(lambda e: e["ev"] == "closed" and e["i"] == j, timeout=timeout + 60)[0]
    assert e["data"] == "" and e["sent"] >= 2, e
    # the body, too: headers whole at once, then a body byte every 0.5 s
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(d.socket)
        s.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 60000\r\n\r\n{")
        sent, end = 0, time.monotonic() + timeout + 60
        while True:
            assert time.monotonic() < end, "a dribbled body was not cut off (%d bytes sent)" % sent
            if select.select([s], [], [], 0.5)[0]:
                try:
                    assert s.recv(4096) == b""  # closed, no answer
                except ConnectionResetError:
                    pass
                break
            try:
                s.send(b" ")
                sent += 1
            except OSError:
                pass  # shut down: reading tells
        assert sent >= 2, sent
    finally:
        s.close()
    # controls: a quick request, and a complete request sent in pieces
    # (well within the deadline), are answered
    assert d.client(user=mallory.name).issue_token().status == 200
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(30)
        s.connect(d.socket)
        for piece in (b"POST /api/auth/token HTTP/1.1\r\n", b"Host: x\r\n", b"Content-Length: 0\r\n", b"\r\n"):
            s.sendall(piece)
            time.sleep(0.1)
        r = http.client.HTTPResponse(s)
        r.begin()
        assert r.status == 200 and b"access_token" in r.read()
    finally:
        s.close()
    # tokend stops cleanly (sanitizer builds: no leak, no error) with
    # dribbling connections still open: the grace period ends them
    a.open(3)
    wait_connections(d, 3)
    assert d.stop() == 0, d.log()
    assert len(a.wait(lambda e: e["ev"] == "closed", 4)) == 4


def test_root_keeps_its_reserved_slots(system_user, tokend_factory, attackers, services):  # noqa: F811
    users = [system_user("tdconn_") for _ in range(4)]
    d = tokend_factory("[Limits]\nRequestTimeout=%s\nMaxConnections=24\nMaxConnectionsPerUser=8\n"
                       "ReservedRootConnections=4\n" % LONG)
    # three uids fill the 20 slots that are not root's: 8 + 8 + 4
    fleet = [attackers(u, d.socket) for u in users[:3]]
    for a in fleet:
        a.open(8)
        wait_connections(d, min(20, 8 * (fleet.index(a) + 1)))
    last = fleet[2].wait(lambda e: e["ev"] == "closed", 4)
    assert all(status_of(e["data"]) == 503 and "ReservedRootConnections=4" in e["data"] for e in last), last
    wait_connections(d, 20)
    # a fourth non-root user, under its own cap, finds no slot either
    r = d.client(user=users[3].name).issue_token()
    assert r.status == 503 and "ReservedRootConnections" in r.message, r
    # root does: two idle connections of its own, a request, and a pam_jwt login
    idle = []
    try:
        for _ in range(2):  # (one slot left for a closed one that tokend has not reaped yet)
            c = UnixHTTPConnection(d.socket)
            c.connect()
            idle.append(c)
        wait_connections(d, 22)
        assert d.api.jwks().status == 200
        p = pam_login(d, services, users[3])
        assert p.returncode == 0 and "successfully authenticated" in p.stdout + p.stderr, p
    finally:
        for c in idle:
            c.close()
