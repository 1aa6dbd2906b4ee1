# SPDX-License-Identifier: MIT
"""Resource exhaustion: many idle connections plus a slowloris client do not
keep an honest client from being served; a full disk makes writes answer
503 with a clear message while reads keep working, and nothing is corrupt
once space returns. (A database locked by another process → bounded wait,
then 503: test_tokend_api.py::test_database_locked_is_503.)"""

import os
import resource
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import VALGRIND_DIR, Tokend, need_root, tokend_factory  # noqa: E402,F401 (fixture)

TIMEOUT = 3  # [Limits] RequestTimeout
IDLE = 1000


class Slowloris(threading.Thread):
    """Sends a request header one byte at a time, never finishing it."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.halt = threading.Event()
        self.sent = 0

    def run(self):
        line = b"POST /api/auth/token HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100000
        for b in line:
            if self.halt.wait(0.2):
                return
            try:
                self.sock.send(bytes([b]))
            except OSError:
                return
            self.sent += 1


def still_connected(s):
    """True while the server has not closed s (nothing to read, no EOF)."""
    try:
        return s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_idle_connections_and_slowloris_do_not_starve_an_honest_client(tokend_factory):  # noqa: F811
    if VALGRIND_DIR:
        pytest.skip("valgrind caps the daemon's open files at 1036 for its own use: 1,000 idle connections do not fit")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < IDLE + 100:
        pytest.skip("RLIMIT_NOFILE hard limit %d is below %d" % (hard, IDLE + 100))
    # tokend starts with the usual soft limit (1024) and must raise it itself
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        d = tokend_factory("[Limits]\nRequestTimeout=%ds\nMaxConnections=%d\n" % (TIMEOUT, IDLE + 24))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, IDLE + 100), hard))
    with open("/proc/%d/limits" % d.proc.pid) as f:
        line = [ln for ln in f if ln.startswith("Max open files")][0]
    assert int(line.split()[3]) >= IDLE + 24 + 64, line
    # control: served when nobody else is connected
    t0 = d.api.issue_token()
    assert t0.status == 200, t0
    idle, slow = [], Slowloris(d.socket)
    try:
        for _ in range(IDLE):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.socket)
            idle.append(s)
        slow.start()
        honest = d.client()
        for i in range(5):
            r = honest.issue_token()
            assert r.status == 200, r
            v = honest.verify(r.json["access_token"])
            assert v.status == 200 and v.json["active"] is True, v
            if i == 0:
                # served while the server still holds the slowloris and every
                # idle connection: not by waiting for any of them to be dropped
                # once RequestTimeout has passed
                dropped = [n for n, s in enumerate(idle + [slow.sock]) if not still_connected(s)]
                assert dropped == [], "connections dropped before the honest client was served: %d" % len(
                    dropped)
            time.sleep(0.3)
        # the idle ones are dropped by the server once RequestTimeout passes
        idle[0].settimeout(TIMEOUT + 10)
        assert idle[0].recv(1) == b"", "an idle connection was not dropped"
        assert slow.sent > 0
    finally:
        slow.halt.set()
        slow.join(5)
        slow.sock.close()
        for s in idle:
            s.close()
    assert d.api.jwks().status == 200
    assert "refusing" not in d.log()


def test_full_disk_gives_503_and_reads_keep_working():
    need_root("mount a small tmpfs")
    d = Tokend()
    mnt = d.state_dir
    os.makedirs(mnt)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", mnt],
                       capture_output=True, text=True, check=False)
    if p.returncode != 0:
        d.close()
        pytest.skip("cannot mount a tmpfs here: %s" % p.stderr.strip())
    filler = os.path.join(mnt, "filler")
    try:
        d.start()
        ok = d.api.issue_token()
        assert ok.status == 200, ok  # control, with space left
        # fill the file system to the last block
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        r = d.api.issue_token()
        assert r.status == 503 and r.error == "unavailable", r
        assert r.headers.get("retry-after"), r
        assert "disk" in r.message or "space" in r.message or "full" in r.message, r.message
        r2 = d.api.refresh(ok.json["refresh_token"], ok.json["device_id"])
        assert r2.status == 503, r2
        # reads still work: verify, device list, JWKS
        v = d.api.verify(ok.json["access_token"])
        assert v.status == 200 and v.json["active"] is True, v
        assert d.api.jwks().status == 200
        assert d.api.devices().status == 200
        assert "full" in d.log() or "space" in d.log()
        # space returns → writes work again, the old refresh token was not spent
        os.unlink(filler)
        r3 = d.api.refresh(ok.json["refresh_token"], ok.json["device_id"])
        assert r3.status == 200, r3
        assert d.api.issue_token().status == 200
        con = d.db()
        try:
            assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            con.close()
        assert d.stop() == 0
    finally:
        d.stop(timeout=20)
        subprocess.run(["umount", "-l", mnt], check=False)
        d.close()
