# SPDX-License-Identifier: MIT
"""Hostile and slow clients: malformed HTTP, oversized headers and bodies,
invalid JSON, wrong content types and half-sent requests get a clear 4xx (or,
for bytes that are not HTTP, a closed connection) while a well-behaved
client keeps being served; a slow client is dropped after RequestTimeout."""

import os
import socket
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import Tokend, UnixHTTPConnection, raw_exchange  # noqa: E402

TIMEOUT = 2  # [Limits] RequestTimeout


@pytest.fixture(scope="module")
def daemon():
    # The good clients enrol a device per round for the whole module: no
    # device cap here (it has its own tests, test_tokend_growth.py).
    with Tokend("[Limits]\nRequestTimeout=%ds\n[Login]\nMaxDevicesPerUser=1000000\n" % TIMEOUT) as d:
        yield d.start()


class GoodClient(threading.Thread):
    """Issues, verifies and reads the JWKS in a loop until stopped; every
    answer must be right."""

    def __init__(self, daemon):
        super().__init__(daemon=True)
        self.api = daemon.client()
        self.halt = threading.Event()
        self.done = 0
        self.failures = []

    def run(self):
        while not self.halt.is_set():
            try:
                tok = self.api.issue_token()
                assert tok.status == 200, tok
                r = self.api.verify(tok.json["access_token"])
                assert r.status == 200 and r.json["active"] is True, r
                r = self.api.jwks()
                assert r.status == 200, r
                self.done += 1
            except Exception as e:  # noqa: BLE001 - collected for the main thread
                self.failures.append(repr(e))
            time.sleep(0.01)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:  # the test body failed: report that, not us
            self.halt.set()
            self.join(15)
            return
        start = self.done
        deadline = time.monotonic() + 10
        while self.done < start + 3 and time.monotonic() < deadline:  # still served afterwards
            time.sleep(0.05)
        self.halt.set()
        self.join(15)
        assert not self.failures, self.failures[:3]
        assert self.done >= start + 3, "the good client stalled"


def status_of(answer):
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split()[1])


RAW = [
    # request line without a version
    ("no-version", b"GET /.well-known/jwks.json\r\n\r\n", 400),
    ("bad-version", b"GET /.well-known/jwks.json HTTP/9.9\r\nHost: x\r\n\r\n", 505),
    ("header-over-64k", b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
     431),
    ("many-headers", b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 12000 + b"\r\n", 431),
    ("bad-chunk", b"POST /api/auth/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400),
    ("body-over-limit", b"POST /api/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Content-Length: 100000\r\n\r\n" + b"{" * 100000, 413),
    ("invalid-json", b"POST /api/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Content-Length: 9\r\nConnection: close\r\n\r\n{\"ttl\":,}", 400),
    ("deep-json", b"POST /api/auth/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Content-Length: 2000\r\nConnection: close\r\n\r\n" + b"[" * 1000 + b"]" * 1000, 400),
    ("wrong-type", b"POST /api/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
     b"Content-Length: 5\r\nConnection: close\r\n\r\nttl=5", 415),
]


@pytest.mark.parametrize("data,status", [c[1:] for c in RAW], ids=[c[0] for c in RAW])
def test_malformed_http_gets_a_4xx_while_others_are_served(daemon, data, status):
    with GoodClient(daemon):
        for _ in range(3):
            assert status_of(raw_exchange(daemon.socket, data)) == status


@pytest.mark.parametrize("data", [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200),
                                  b"GARBAGE\r\n\r\n", b"\x00" * 64 + b"\r\n\r\n", os.urandom(4096)],
                         ids=["tls-hello", "one-word", "nul-bytes", "random"])
def test_garbage_is_refused_or_dropped(daemon, data):
    with GoodClient(daemon):
        answer = raw_exchange(daemon.socket, data, timeout=TIMEOUT + 8)
        # not HTTP: a 4xx or the connection closed, never a 2xx or a hang
        assert answer == b"" or 400 <= status_of(answer) < 500


def test_good_request_on_raw_socket(daemon):
    """Control for the raw cases: the same framing, well-formed, succeeds."""
    answer = raw_exchange(daemon.socket, b"POST /api/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          b"application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    assert status_of(answer) == 200 and b'"access_token"' in answer


def test_keep_alive_connection_serves_several_requests(daemon):
    conn = UnixHTTPConnection(daemon.socket)
    try:
        for _ in range(3):
            conn.request("POST", "/api/auth/token", body=b"{}", headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            assert r.status == 200 and b"access_token" in r.read()
            conn.request("GET", "/nope")
            r = conn.getresponse()
            assert r.status == 404
            r.read()
    finally:
        conn.close()


def half_request(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(b"POST /api/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{\"ttl\"")
    return s


def test_slow_clients_do_not_block_and_are_dropped(daemon):
    slow = [half_request(daemon.socket) for _ in range(20)]
    try:
        head_only = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        head_only.connect(daemon.socket)
        head_only.sendall(b"GET /.well-known/jwks")  # not even a full request line
        slow.append(head_only)
        with GoodClient(daemon):
            time.sleep(0.5)
        # each slow connection is closed by the server: bounded wait, no answer needed
        for s in slow:
            s.settimeout(TIMEOUT + 8)
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            except socket.timeout:
                pytest.fail("a slow client was not dropped after RequestTimeout=%ds" % TIMEOUT)
            assert data == b"" or 400 <= status_of(data) < 500, data
    finally:
        for s in slow:
            s.close()
    assert daemon.api.jwks().status == 200
