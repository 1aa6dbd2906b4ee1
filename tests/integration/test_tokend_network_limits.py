# SPDX-License-Identifier: MIT
"""The [Network] listener under pressure: failed logins counted per client
address (127.0.0.1 locked out with 429 while 127.0.0.2 logs in), 1,000
idle TCP connections plus slowloris senders while an honest client from
another address is served, the per-address connection cap (the control
address still connects), and a certificate replaced + SIGHUP: new
connections get the new certificate and no request in flight fails."""

import os
import resource
import secrets
import signal
import socket
import ssl
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import pam_user, system_user, tokend_factory  # noqa: E402,F401
from tdnet import NetClient, TestCA, free_port, network_config  # noqa: E402


@pytest.fixture
def pki(tmp_path):
    ca = TestCA(str(tmp_path / "ca"))
    cert, key = ca.issue("tokend-server")
    return ca, cert, key


def start(factory, pki, extra="", service=None):
    ca, cert, key = pki
    port = free_port()
    conf = ("[Login]\nPAMService=%s\n" % service if service else "[Login]\n") + extra
    d = factory(conf + network_config("127.0.0.1:%d" % port, cert, key))
    return d, NetClient("127.0.0.1", port, ca.cert)


def test_failed_logins_are_limited_per_client_address(pki, pam_user, tokend_factory):  # noqa: F811
    user, service = pam_user
    # MaxFailures=2: an address may fail 4 × 2 = 8 times over other users' names
    d, net = start(tokend_factory, pki, "MaxFailures=2\nFailureDelay=0\n", service)
    a = net.from_address("127.0.0.1")
    for i in range(8):
        r = a.login("tdnobody_%s" % secrets.token_hex(4), "wrong")
        assert r.status == 400 and r.error == "invalid_credentials", (i, r)
    r = a.login(user.name, user.password)
    assert r.status == 429 and r.error == "too_many_requests" and int(r.headers["retry-after"]) > 0, r
    # another address is another caller: it logs in
    b = net.from_address("127.0.0.2")
    r = b.login(user.name, user.password)
    assert r.status == 200, (r, d.log())
    assert "client 127.0.0.1" in d.log()


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= n


def test_idle_connections_and_slowloris_do_not_starve_an_honest_client(pki, tokend_factory):  # noqa: F811
    if not raise_nofile(1300):
        pytest.skip("cannot raise the file descriptor limit to 1300")
    d, net = start(tokend_factory, pki, "[Limits]\nMaxConnections=1100\nMaxConnectionsPerUser=64\n"
                                        "RequestTimeout=1h\n")
    held = []
    try:
        # 1,000 idle TCP connections from 16 addresses of 127/8 (64 each at most)
        for i in range(1000):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.1.%d" % (i % 16 + 1), 0))
            s.connect(("127.0.0.1", net.port))
            held.append(s)
        # slowloris: TLS handshakes begun and never finished
        slow = []
        for i in range(20):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.2.1", 0))
            s.connect(("127.0.0.1", net.port))
            s.send(b"\x16")
            slow.append(s)
        held += slow
        # the honest client, from an address of its own, is served
        honest = net.from_address("127.0.0.9")
        for _ in range(3):
            r = honest.jwks()
            assert r.status == 200, r
        assert d.running()
    finally:
        for s in held:
            s.close()
    assert net.jwks().status == 200


def test_connections_are_capped_per_client_address(pki, tokend_factory):  # noqa: F811
    d, net = start(tokend_factory, pki, "[Limits]\nMaxConnectionsPerUser=4\nRequestTimeout=1h\n")
    held = []
    try:
        for _ in range(5):
            held.append(socket.create_connection(("127.0.0.1", net.port), source_address=("127.0.0.1", 0)))
        # exactly one of the five is closed at once, before any TLS (no
        # deadline closes the others: RequestTimeout=1h)
        d.wait_log("client network 127.0.0.1 already has 4 connections open")
        closed = []
        for s in held:
            s.settimeout(0.5)
            try:
                closed.append(s.recv(100) == b"")
            except socket.timeout:
                closed.append(False)
        assert closed.count(True) == 1, closed
        # control: another address
        assert net.from_address("127.0.0.3").jwks().status == 200
    finally:
        for s in held:
            s.close()


def peer_cert(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.getpeercert(binary_form=True)


def test_certificate_reload_on_sighup_keeps_requests_in_flight(pki, pam_user, tokend_factory):  # noqa: F811
    ca, cert, key = pki
    user, service = pam_user
    d, net = start(tokend_factory, pki, "FailureDelay=3s\nMaxFailures=100\n", service)
    old = peer_cert(net.port, ca.cert)
    # a login that is in flight across the reload (a failed one is held back FailureDelay)
    slow = {}
    t = threading.Thread(target=lambda: slow.setdefault("r", net.login(user.name, "wrong password")))
    t.start()
    d.wait_log("login failed for %s " % user.name)
    # traffic on new connections and on one kept-alive connection all along
    stop, errors, count = threading.Event(), [], [0]

    def traffic():
        while not stop.is_set():
            try:
                assert net.jwks().status == 200
                count[0] += 1
            except Exception as e:  # noqa: B902 - collected, asserted below
                errors.append(repr(e))
    workers = [threading.Thread(target=traffic) for _ in range(2)]
    for w in workers:
        w.start()
    # a new certificate (and key) in place of the old files
    new_cert, new_key = ca.issue("tokend-server-2")
    os.replace(new_cert, cert)
    os.replace(new_key, key)
    before = count[0]
    line = d.reload()
    assert "reloaded" in line, line
    while count[0] < before + 20:
        time.sleep(0.05)
    stop.set()
    for w in workers:
        w.join()
    t.join()
    assert not errors, errors[:5]
    assert slow["r"].status == 400 and slow["r"].error == "invalid_credentials", slow
    new = peer_cert(net.port, ca.cert)
    assert new != old, "still the old certificate after SIGHUP"
    assert net.login(user.name, user.password).status == 200
    # a key that does not load keeps the running certificate
    with open(key, "w") as f:
        f.write("not a key\n")
    os.chmod(key, 0o600)
    assert "reloaded" in d.reload()
    assert "keeping the running certificate" in d.log()
    assert peer_cert(net.port, ca.cert) == new
    assert d.proc.send_signal(signal.SIGTERM) is None
