# SPDX-License-Identifier: MIT
"""The [Network] listener: the socket API over HTTPS on 127.0.0.1 (and
::1), with a throwaway CA made by the test with the openssl CLI. A password
login of a throwaway user through a real PAM stack (pam_unix), then verify,
refresh, devices and logout over TLS, `iss` = PublicURL=; peer login is
403 over TCP and admin rights do not exist there (the socket's controls
succeed); a client with the wrong CA, plain HTTP to the TLS port and TLS 1.1
are refused while TLS 1.2 and 1.3 work; the configuration refuses plain
HTTP off loopback and a private key others can read."""

import os
import socket
import ssl
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import Tokend, find_binary, jwt_parts, pam_user, system_user, tokend_factory  # noqa: E402,F401
from tdnet import NetClient, TestCA, free_port, has_ipv6, network_config  # noqa: E402


@pytest.fixture
def pki(tmp_path):
    """(CA, server cert, server key, another CA)."""
    ca = TestCA(str(tmp_path / "ca"))
    cert, key = ca.issue("tokend-server")
    other = TestCA(str(tmp_path / "other"), name="some other CA")
    return ca, cert, key, other


@pytest.fixture
def issuer(pki, pam_user, tokend_factory):  # noqa: F811
    """A tokend serving HTTPS on 127.0.0.1 (and [::1]) with pam_unix logins:
    (daemon, client, user, password, url)."""
    ca, cert, key, _ = pki
    user, service = pam_user
    port = free_port()
    url = "https://127.0.0.1:%d" % port
    listen = "127.0.0.1:%d" % port + (" [::1]:%d" % port if has_ipv6() else "")
    d = tokend_factory("[Login]\nPAMService=%s\nFailureDelay=0\n" % service +
                       network_config(listen, cert, key, public_url=url))
    return d, NetClient("127.0.0.1", port, ca.cert), user.name, user.password, url


def test_password_login_refresh_logout_over_https(issuer):
    d, net, user, password, url = issuer
    r = net.login(user, password, device_name="laptop")
    assert r.status == 200, (r, d.log())
    tok = r.json
    claims = jwt_parts(tok["access_token"])[1]
    assert claims["sub"] == user and claims["iss"] == url
    v = net.verify(tok["access_token"], user=user, service="sshd")
    assert v.status == 200 and v.json["active"] is True, v
    devs = net.devices(bearer=tok["access_token"])
    assert devs.status == 200 and [x["name"] for x in devs.json["devices"]] == ["laptop"], devs
    r2 = net.refresh(tok["refresh_token"], tok["device_id"])
    assert r2.status == 200, r2
    assert net.refresh(tok["refresh_token"], tok["device_id"]).status == 401  # rotated: reuse detected
    # reuse detection revoked the device: its new access token is dead too
    assert net.verify(r2.json["access_token"]).status == 401
    tok = net.login(user, password).json
    assert net.logout(tok["access_token"]).status == 204
    assert d.api.verify(tok["access_token"]).error == "token_revoked"  # the socket sees the same store
    assert password not in d.log()


def test_peer_login_is_403_over_tcp(issuer):
    d, net, *_ = issuer
    r = net.issue_token()
    assert r.status == 403 and r.error == "forbidden", r
    assert "local caller" in r.message
    assert d.api.issue_token().status == 200  # control: the socket's peer login works


def test_no_admin_over_tcp(issuer):
    d, net, user, password, _ = issuer
    tok = net.login(user, password).json
    # Without a bearer there is no identity at all over TCP.
    r = net.devices()
    assert r.status == 403, r
    # Another user's devices need an admin, which a TCP caller never is.
    r = net.devices(bearer=tok["access_token"], user="root")
    assert r.status == 403, r
    r = net.audit_log(bearer=tok["access_token"], user="root")
    assert r.status == 403, r
    # control: root on the socket is an admin
    assert d.api.devices(user=user).status == 200


def test_wrong_ca_is_refused(issuer, pki):
    d, net, user, password, _ = issuer
    other = pki[3]
    bad = NetClient("127.0.0.1", net.port, other.cert)
    with pytest.raises(ssl.SSLCertVerificationError):
        bad.jwks()
    p = subprocess.run(["curl", "-sS", "--cacert", other.cert, "https://127.0.0.1:%d/.well-known/jwks.json" % net.port],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 60, (p.returncode, p.stderr)  # CURLE_PEER_FAILED_VERIFICATION
    # control: the right CA
    assert net.jwks().status == 200
    p = subprocess.run(["curl", "-sS", "--cacert", pki[0].cert, "https://127.0.0.1:%d/.well-known/jwks.json" %
                        net.port], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and '"keys"' in p.stdout, p.stderr


def test_plain_http_to_the_tls_port_is_refused(issuer):
    d, net, *_ = issuer
    s = socket.create_connection(("127.0.0.1", net.port), timeout=15)
    s.sendall(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n")
    out = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    assert not out.startswith(b"HTTP/") and b'"keys"' not in out, out
    assert net.jwks().status == 200  # control, and the daemon still serves


def s_client(port, *args):
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args),
                       input="", capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def test_tls_1_1_is_refused_1_2_and_1_3_work(issuer, pki):
    d, net, *_ = issuer
    # SECLEVEL=0: OpenSSL 3 would not even offer TLS 1.1 otherwise; then
    # the refusal would be the client's, not tokend's.
    rc, out = s_client(net.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0 and "Cipher is (NONE)" in out, out
    for v in ("-tls1_2", "-tls1_3"):  # control
        rc, out = s_client(net.port, v, "-CAfile", pki[0].cert, "-verify_return_error")
        assert rc == 0 and "Cipher is (NONE)" not in out and "Verify return code: 0 (ok)" in out, out
    assert net.jwks().status == 200


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback on this machine")
def test_ipv6_listener(issuer, pki):
    d, net, *_ = issuer
    r = NetClient("::1", net.port, pki[0].cert)
    assert r.jwks().status == 200
    assert r.issue_token().status == 403  # an IPv6 client is no local caller either


def test_plain_http_only_on_loopback(tmp_path, tokend_factory):  # noqa: F811
    port = free_port()
    d = tokend_factory(network_config("127.0.0.1:%d" % port, plain=True))
    net = NetClient("127.0.0.1", port, None)
    assert net.jwks().status == 200
    assert net.issue_token().status == 403
    # not loopback, or not asked for: refused with the reason
    tokend = find_binary("tokend")
    for conf in (network_config("0.0.0.0:%d" % port, plain=True), network_config("127.0.0.1:%d" % port)):
        (tmp_path / "t.conf").write_text(conf)
        p = subprocess.run([tokend, "--check-config", "--config", str(tmp_path / "t.conf"), "--state-dir",
                            str(tmp_path / "st")], capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and "Certificate=" in p.stderr and "AllowPlainLoopback" in p.stderr, p.stderr
    d.stop()


def test_private_key_readable_by_others_stops_startup(pki, tmp_path):
    ca, cert, key, _ = pki
    os.chmod(key, 0o644)
    port = free_port()
    d = Tokend(network_config("127.0.0.1:%d" % port, cert, key))
    try:
        with pytest.raises(RuntimeError) as e:
            d.start()
        assert "readable by group or others" in str(e.value) and key in str(e.value), e.value
        os.chmod(key, 0o600)  # control
        d.start()
        assert NetClient("127.0.0.1", port, ca.cert).jwks().status == 200
    finally:
        d.close()


def test_mismatched_key_stops_startup(pki, tmp_path):
    ca, cert, key, _ = pki
    _, other_key = ca.issue("another")
    port = free_port()
    d = Tokend(network_config("127.0.0.1:%d" % port, cert, other_key))
    try:
        with pytest.raises(RuntimeError) as e:
            d.start()
        assert "is not the key of" in str(e.value), e.value
    finally:
        d.close()


def test_public_url_conflicting_with_issuer_is_an_error(tmp_path):
    tokend = find_binary("tokend")
    conf = "[Token]\nIssuer=other\n" + network_config("127.0.0.1:1", plain=True, public_url="https://id.example")
    (tmp_path / "t.conf").write_text(conf)
    p = subprocess.run([tokend, "--check-config", "--config", str(tmp_path / "t.conf"), "--state-dir",
                        str(tmp_path / "st")], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "PublicURL" in p.stderr, p.stderr
    (tmp_path / "t.conf").write_text(network_config("127.0.0.1:1", plain=True, public_url="https://id.example"))
    p = subprocess.run([tokend, "--check-config", "--config", str(tmp_path / "t.conf"), "--state-dir",
                        str(tmp_path / "st")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr  # control
