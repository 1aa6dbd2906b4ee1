# SPDX-License-Identifier: MIT
"""GET /metrics (Prometheus text format): on the [Network] listener for
loopback clients, on the Unix socket for root only; `promtool check
metrics` accepts the output; the login counter moves by one after a login
(and the refused one by one after a wrong password); a non-root socket
caller gets 403 (control: root gets 200)."""

import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import pam_user, system_user, tokend_factory  # noqa: E402,F401
from tdnet import NetClient, TestCA, free_port, network_config  # noqa: E402

PROMTOOL = shutil.which("promtool")


def sample(text, name, **labels):
    """The value of one sample of the exposition text (0 when absent)."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted((m.group(2) or "").split(","))) if m.group(2) else ""
        if got == want:
            return float(m.group(3))
    return 0.0


@pytest.fixture
def issuer(tmp_path, pam_user, tokend_factory):  # noqa: F811
    user, service = pam_user
    ca = TestCA(str(tmp_path / "ca"))
    cert, key = ca.issue("tokend-server")
    port = free_port()
    d = tokend_factory("[Login]\nPAMService=%s\nFailureDelay=0\n" % service +
                       network_config("127.0.0.1:%d" % port, cert, key))
    return d, NetClient("127.0.0.1", port, ca.cert), user


def test_metrics_pass_promtool_and_count_logins(issuer):
    if not PROMTOOL:
        pytest.skip("promtool not installed (Debian: prometheus)")
    d, net, user = issuer
    before = net.request("GET", "/metrics")
    assert before.status == 200, before
    assert before.headers["content-type"].startswith("text/plain; version=0.0.4"), before.headers
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=before.body, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert net.login(user.name, user.password).status == 200
    assert net.login(user.name, "wrong").status == 400
    after = net.request("GET", "/metrics")
    text0, text1 = before.body.decode(), after.body.decode()
    ok0, ok1 = (sample(t, "tokend_logins_total", result="success") for t in (text0, text1))
    bad0, bad1 = (sample(t, "tokend_logins_total", result="refused") for t in (text0, text1))
    assert ok1 == ok0 + 1 and bad1 == bad0 + 1, (ok0, ok1, bad0, bad1)
    assert sample(text1, "tokend_http_requests_total", endpoint="/api/auth/login", code="200") >= 1
    assert sample(text1, "tokend_http_request_duration_seconds_count", endpoint="/api/auth/login") >= 2
    assert sample(text1, "tokend_signing_keys") == 1
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=after.body, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def test_metrics_on_the_socket_are_for_root_only(issuer, system_user):  # noqa: F811
    d, net, user = issuer
    if os.geteuid() != 0:
        pytest.skip("needs root for the control and another uid")
    assert d.api.request("GET", "/metrics").status == 200  # root: control
    other = system_user("tdmet_")
    r = d.client(user=other.name).request("GET", "/metrics")
    assert r.status == 403 and r.error == "forbidden", r


def non_loopback_address():
    p = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False)
    for a in p.stdout.split():
        if "." in a and not a.startswith("127."):
            return a
    return None


def remote_issuer(tmp_path, factory, client_ca=None):
    """A tokend listening on this machine's non-loopback address and on
    127.0.0.1: (address, port, server CA)."""
    addr = non_loopback_address()
    if not addr:
        pytest.skip("no non-loopback IPv4 address on this machine")
    ca = TestCA(str(tmp_path / "ca"))
    cert, key = ca.issue("tokend-server", ips=("127.0.0.1", addr))
    port = free_port()
    factory(network_config("%s:%d 127.0.0.1:%d" % (addr, port, port), cert, key, client_ca=client_ca))
    return addr, port, ca


def test_metrics_refused_to_a_non_loopback_client_without_certificate(tmp_path, tokend_factory):  # noqa: F811
    addr, port, ca = remote_issuer(tmp_path, tokend_factory)
    r = NetClient(addr, port, ca.cert, source=addr).request("GET", "/metrics")
    assert r.status == 403 and r.error == "forbidden", r
    assert NetClient(addr, port, ca.cert, source=addr).jwks().status == 200  # the rest of the API is served
    assert NetClient("127.0.0.1", port, ca.cert).request("GET", "/metrics").status == 200  # control: loopback


def test_client_certificate_opens_metrics_to_a_remote_verifier(tmp_path, tokend_factory):  # noqa: F811
    verifiers = TestCA(str(tmp_path / "verifiers"), name="verifier hosts CA")
    good = verifiers.issue("web1.example.com", ips=(), dns=("web1.example.com",), client=True)
    stranger = TestCA(str(tmp_path / "other"), name="not trusted").issue("web2", ips=(), dns=("web2",), client=True)
    addr, port, ca = remote_issuer(tmp_path, tokend_factory, client_ca=verifiers.cert)
    r = NetClient(addr, port, ca.cert, source=addr, cert=good).request("GET", "/metrics")
    assert r.status == 200 and b"tokend_http_requests_total" in r.body, r
    # a certificate from another CA, and none at all: refused
    r = NetClient(addr, port, ca.cert, source=addr, cert=stranger).request("GET", "/metrics")
    assert r.status == 403, r
    r = NetClient(addr, port, ca.cert, source=addr).request("GET", "/metrics")
    assert r.status == 403, r
    # the certificate adds nothing else: peer login stays refused
    assert NetClient(addr, port, ca.cert, source=addr, cert=good).issue_token().status == 403
