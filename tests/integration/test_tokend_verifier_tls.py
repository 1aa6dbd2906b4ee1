# SPDX-License-Identifier: MIT
"""A verifier following a real issuer over HTTPS on 127.0.0.1 (certificates
made here with the openssl CLI), watched through its GET /metrics (root on
the verifier's socket; a verifier has no network listener): the feed's SEQ
gauge moves once a revocation is applied, verifications count by result,
a forged feed answer counts as forged while good answers count as applied
(the control), the staleness gauge grows while the issuer is SIGSTOPped and
falls again after SIGCONT, and `promtool check metrics` accepts every
output, also that of a verifier that never reached its issuer (+Inf ages).
With [Network] ClientCA= on the issuer, the feed is served over TCP only
to a client certificate of that CA: the verifier's [Verifier]
Certificate= follows it (control); curl without a certificate, curl with
one of another CA and a verifier without one are refused.

The issuer's feed and JWKS pass through FeedProxy, an HTTPS server in front
of the issuer's own HTTPS listener that can switch to forging feed answers;
the issuer's PublicURL= is the proxy's URL, so iss matches on both sides.
Every wait is for a value of the metrics (bounded only against a hang); no
time is asserted."""

import http.client
import http.server
import json
import os
import signal
import socketserver
import ssl
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import CURL, DeviceKey, jwt_parts, tokend_factory  # noqa: E402,F401
from tdnet import TestCA, free_port, network_config  # noqa: E402
from test_tokend_metrics import PROMTOOL, sample  # noqa: E402
from test_tokend_verifier import issuer_seq, token, verify, wait_until  # noqa: E402

STALENESS = 6  # MaxStaleness= of the verifiers here, seconds


def need_root():
    if os.geteuid() != 0:
        pytest.skip("a verifier's /metrics is for root on its socket")


def metrics(v):
    r = v.api.request("GET", "/metrics")
    assert r.status == 200, r
    return r.body.decode()


def promtool_ok(text):
    assert PROMTOOL, "promtool is not installed (Debian: prometheus, in scripts/deps)"
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert p.returncode == 0, (p.stdout + p.stderr).decode() + "\n" + text


def wait_metric(v, name, pred, what, **labels):
    """Poll the verifier's metrics until pred(value of name{labels}); the text."""
    def check():
        text = metrics(v)
        return text if pred(sample(text, name, **labels)) else None
    return wait_until(check, what, v)


class FeedProxy:
    """HTTPS on 127.0.0.1 (a certificate of the test CA) passing GETs on to
    the issuer's HTTPS port; with forge set, feed answers are re-signed by a
    stranger's key under the issuer's kid."""

    def __init__(self, ca, issuer_port):
        cert, key = ca.issue("feed-proxy")
        self.port, self.forge = free_port(), False
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
        upstream = ssl.create_default_context(cafile=ca.cert)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def setup(self):
                self.request.do_handshake()
                super().setup()

            def do_GET(self):
                conn = http.client.HTTPSConnection("127.0.0.1", issuer_port, context=upstream, timeout=120)
                try:
                    conn.request("GET", self.path)
                    r = conn.getresponse()
                    status, ctype, body = r.status, r.getheader("Content-Type") or "text/plain", r.read()
                finally:
                    conn.close()
                if proxy.forge and self.path.startswith("/api/revocations") and status == 200:
                    hdr, payload = jwt_parts(body.decode())
                    body = DeviceKey().sign_jws(hdr, payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

            def get_request(self):
                s, addr = self.socket.accept()
                return server_ctx.wrap_socket(s, server_side=True, do_handshake_on_connect=False), addr

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fleet(tmp_path, tokend_factory):  # noqa: F811
    """(issuer, verifier, proxy): the verifier's Issuer= is the proxy."""
    need_root()
    ca = TestCA(str(tmp_path / "ca"))
    cert, key = ca.issue("tokend-issuer")
    port = free_port()
    proxy = FeedProxy(ca, port)
    url = "https://127.0.0.1:%d" % proxy.port
    try:
        issuer = tokend_factory(network_config("127.0.0.1:%d" % port, cert, key, public_url=url))
        v = tokend_factory("[Verifier]\nIssuer=%s\nCAFile=%s\nHostNames=web1\nPolicy=best_effort\n"
                           "MaxStaleness=%ds\n" % (url, ca.cert, STALENESS))
        yield issuer, v, proxy
    finally:
        proxy.close()


def test_feed_and_verification_metrics(fleet):
    issuer, v, proxy = fleet
    text = wait_metric(v, "tokend_verifier_feed_answers_total", lambda n: n >= 1,
                       "the verifier should apply a first feed answer", result="applied")
    promtool_ok(text)
    assert sample(text, "tokend_verifier_feed_seq") == issuer_seq(issuer) == 0
    assert sample(text, "tokend_verifier_jwks_refreshes_total", result="success") >= 1
    assert sample(text, "tokend_verifier_jwks_keys") == 1
    assert 0 <= sample(text, "tokend_verifier_jwks_age_seconds") < 600
    assert sample(text, "tokend_verifier_feed_max_staleness_seconds") == STALENESS

    # Verifications by result: one accepted, one refused (a web2 token on web1).
    a, b = token(issuer), token(issuer)
    before = metrics(v)
    assert verify(v, a["access_token"]).status == 200
    assert verify(v, token(issuer, ["sshd@web2"])["access_token"]).status == 401
    after = metrics(v)
    for result in ("accepted", "refused"):
        n0, n1 = (sample(t, "tokend_verifier_verifications_total", result=result) for t in (before, after))
        assert n1 == n0 + 1, (result, n0, n1)
    assert sample(after, "tokend_verifier_verifications_total", result="revoked") == 0

    # A revocation on the issuer moves the SEQ gauge; the token is then
    # refused and counted as revoked.
    assert issuer.api.delete_device(a["device_id"]).status == 204
    seq = issuer_seq(issuer)
    assert seq >= 1
    text = wait_metric(v, "tokend_verifier_feed_seq", lambda n: n >= seq, "the verifier should apply SEQ %d" % seq)
    assert sample(text, "tokend_verifier_revoked", kind="device") >= 1
    assert verify(v, a["access_token"]).error == "token_revoked"
    assert sample(metrics(v), "tokend_verifier_verifications_total", result="revoked") == 1
    promtool_ok(text)

    # Control: good answers count as applied, none as forged.
    applied = sample(text, "tokend_verifier_feed_answers_total", result="applied")
    text = wait_metric(v, "tokend_verifier_feed_answers_total", lambda n: n >= applied + 2,
                       "the verifier should go on applying feed answers", result="applied")
    assert sample(text, "tokend_verifier_feed_answers_total", result="forged") == 0, text
    # Forged: a stranger's signature under the issuer's kid.
    proxy.forge = True
    text = wait_metric(v, "tokend_verifier_feed_answers_total", lambda n: n >= 1,
                       "a forged feed answer should be refused and counted", result="forged")
    assert "not signed by an issuer key" in v.log()
    assert sample(text, "tokend_verifier_feed_seq") == seq
    assert verify(v, b["access_token"]).status == 200  # nothing of it applied
    promtool_ok(text)
    proxy.forge = False
    applied = sample(metrics(v), "tokend_verifier_feed_answers_total", result="applied")
    wait_metric(v, "tokend_verifier_feed_answers_total", lambda n: n > applied,
                "the verifier should apply good answers again", result="applied")


def test_staleness_grows_while_the_issuer_is_stopped(fleet):
    issuer, v, proxy = fleet
    text = wait_metric(v, "tokend_verifier_feed_answers_total", lambda n: n >= 1,
                       "the verifier should apply a first feed answer", result="applied")
    assert sample(text, "tokend_verifier_feed_staleness_seconds") < float("inf")
    issuer.send_signal(signal.SIGSTOP)
    try:
        text = wait_metric(v, "tokend_verifier_feed_staleness_seconds", lambda n: STALENESS < n < float("inf"),
                           "the staleness gauge should pass MaxStaleness while the issuer is stopped")
        promtool_ok(text)
    finally:
        issuer.send_signal(signal.SIGCONT)
    # and falls back once the issuer answers again
    wait_metric(v, "tokend_verifier_feed_staleness_seconds", lambda n: n < STALENESS,
                "the staleness gauge should fall once the issuer answers again")


def test_never_reached_issuer(tmp_path, tokend_factory):  # noqa: F811
    """Nothing listens at Issuer=: staleness and JWKS age are +Inf, the
    failed JWKS fetches are counted, and promtool accepts it."""
    need_root()
    ca = TestCA(str(tmp_path / "ca"))
    v = tokend_factory("[Verifier]\nIssuer=https://127.0.0.1:%d\nCAFile=%s\nHostNames=web1\n"
                       % (free_port(), ca.cert))
    text = wait_metric(v, "tokend_verifier_jwks_refreshes_total", lambda n: n >= 1,
                       "the failed JWKS fetch should be counted", result="unreachable")
    assert sample(text, "tokend_verifier_feed_staleness_seconds") == float("inf")
    assert sample(text, "tokend_verifier_jwks_age_seconds") == float("inf")
    assert sample(text, "tokend_verifier_feed_seq") == 0
    assert sample(text, "tokend_signing_keys") == 0
    promtool_ok(text)


def curl_feed(ca, port, cert=None):
    """GET /api/revocations with the curl CLI: (HTTP status, body)."""
    argv = [CURL, "-sS", "--cacert", ca.cert, "-o", "-", "-w", "\n%{http_code}",
            "https://127.0.0.1:%d/api/revocations?after=0" % port]
    if cert:
        argv[1:1] = ["--cert", cert[0], "--key", cert[1]]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    body, _, code = p.stdout.rpartition("\n")
    return int(code), body


def test_feed_needs_a_client_certificate_with_client_ca(tmp_path, tokend_factory):  # noqa: F811
    """[Network] ClientCA=: over TCP the feed is for verifier hosts with a
    certificate of that CA; the verifier presents its [Verifier]
    Certificate= and follows (control); no certificate, a certificate of
    another CA, and a verifier without one are refused; the JWKS stays
    public."""
    need_root()
    ca = TestCA(str(tmp_path / "ca"))
    cert, key = ca.issue("tokend-issuer")
    hosts = TestCA(str(tmp_path / "hosts"), name="verifier hosts CA")
    web1 = hosts.issue("web1", ips=(), dns=("web1",), client=True)
    stranger = TestCA(str(tmp_path / "other"), name="not trusted").issue("web2", ips=(), dns=("web2",), client=True)
    port = free_port()
    url = "https://127.0.0.1:%d" % port
    issuer = tokend_factory(network_config("127.0.0.1:%d" % port, cert, key, public_url=url, client_ca=hosts.cert))
    conf = "[Verifier]\nIssuer=%s\nCAFile=%s\nHostNames=web1\nMaxStaleness=30s\n" % (url, ca.cert)
    v = tokend_factory(conf + "Certificate=%s\nPrivateKey=%s\n" % web1)

    # Control: the verifier with its certificate follows the feed.
    wait_metric(v, "tokend_verifier_feed_answers_total", lambda n: n >= 1,
                "the verifier with a client certificate should apply the feed", result="applied")
    a = token(issuer)
    assert verify(v, a["access_token"]).status == 200
    assert issuer.api.delete_device(a["device_id"]).status == 204
    seq = issuer_seq(issuer)  # on the socket: no certificate needed there
    wait_metric(v, "tokend_verifier_feed_seq", lambda n: n >= seq, "the verifier should apply SEQ %d" % seq)
    assert verify(v, a["access_token"]).error == "token_revoked"
    status, body = curl_feed(ca, port, cert=web1)
    assert status == 200 and jwt_parts(body)[1]["seq"] == seq, (status, body)

    # No certificate (from loopback too), or one of another CA: 403.
    for c in (None, stranger):
        status, body = curl_feed(ca, port, cert=c)
        assert status == 403 and json.loads(body)["error"] == "forbidden", (c, status, body)
        assert "client certificate" in json.loads(body)["message"], body
    assert "revocation feed refused to client 127.0.0.1" in issuer.log()

    # A verifier without a certificate gets the (public) JWKS but no feed:
    # it stays stale.
    bare = tokend_factory(conf)
    text = wait_metric(bare, "tokend_verifier_feed_unreachable_total", lambda n: n >= 1,
                       "the feed should refuse a verifier without a certificate")
    assert sample(text, "tokend_verifier_jwks_refreshes_total", result="success") >= 1, text
    assert sample(text, "tokend_verifier_feed_answers_total", result="applied") == 0, text
    assert sample(text, "tokend_verifier_feed_staleness_seconds") == float("inf"), text
    assert verify(bare, token(issuer)["access_token"]).status == 503  # strict and never synced
