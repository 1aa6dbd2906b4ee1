# SPDX-License-Identifier: MIT
"""Helpers for tests of tokend's [Network] listener (HTTPS on TCP).

TestCA        a throwaway CA made with the openssl CLI in a directory:
              issue(name, ips, dns) → (cert, key) paths of a server or
              client certificate signed by it (keys mode 0600).
free_port()   a TCP port that was free on 127.0.0.1 and ::1 a moment ago.
NetClient     tdharness.Client over HTTPS (or plain HTTP) to one base URL,
              verifying the server against a CA file, optionally from a
              given source address (127.0.0.2, …) and with a client
              certificate; every call returns a tdharness.Response.
network_config(...) the [Network] section of a tokend.conf.
https_tokend(...) a tokend with an HTTPS listener of a new TestCA's
              certificate, PublicURL= its URL.
"""

import http.client
import os
import socket
import ssl
import subprocess

from tdharness import Client, Response, encode_request

OPENSSL = "openssl"


class TestCA:
    __test__ = False  # not a pytest class

    def __init__(self, directory, name="tokend test CA"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.cert = os.path.join(directory, "ca.pem")
        self.key = os.path.join(directory, "ca.key")
        self._run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                   "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=" + name])

    def _run(self, args):
        p = subprocess.run([OPENSSL] + args, capture_output=True, text=True, timeout=60, check=False)
        assert p.returncode == 0, "openssl %s: %s" % (" ".join(args[:2]), p.stderr)

    def issue(self, name, ips=("127.0.0.1", "127.0.0.2", "::1"), dns=("localhost",), client=False):
        """A certificate for CN=name with those subjectAltNames: (cert, key)."""
        base = os.path.join(self.dir, name.replace("/", "_"))
        cert, key, csr, ext = base + ".pem", base + ".key", base + ".csr", base + ".ext"
        self._run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                   "-out", csr, "-subj", "/CN=" + name])
        sans = ["IP:" + i for i in ips] + ["DNS:" + d for d in dns]
        with open(ext, "w") as f:
            if sans:
                f.write("subjectAltName=%s\n" % ",".join(sans))
            f.write("extendedKeyUsage=%s\n" % ("clientAuth" if client else "serverAuth"))
        self._run(["x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial",
                   "-out", cert, "-days", "2", "-extfile", ext])
        os.chmod(key, 0o600)
        return cert, key


def free_port():
    """A port free on 127.0.0.1 (and ::1 when there is IPv6) right now."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if not has_ipv6():
            return port
        try:
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s6.bind(("::1", port))
            s6.close()
            return port
        except OSError:
            continue
    raise AssertionError("no free port")


def has_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def network_config(listen, cert=None, key=None, public_url=None, client_ca=None, plain=False):
    lines = ["[Network]", "Listen=" + listen]
    if cert:
        lines += ["Certificate=" + cert, "PrivateKey=" + key]
    if client_ca:
        lines.append("ClientCA=" + client_ca)
    if public_url:
        lines.append("PublicURL=" + public_url)
    if plain:
        lines.append("AllowPlainLoopback=yes")
    return "\n".join(lines) + "\n"


def https_tokend(factory, directory, config="", client_ca=None):
    """factory(config + an HTTPS listener on 127.0.0.1 with a certificate of a
    new TestCA in directory, PublicURL= its URL; client_ca: ClientCA=, True
    for that same CA): (tokend, ca, url, port)."""
    ca = TestCA(directory)
    cert, key = ca.issue("tokend-server")
    port = free_port()
    url = "https://127.0.0.1:%d" % port
    d = factory(config + network_config("127.0.0.1:%d" % port, cert, key, public_url=url,
                                        client_ca=ca.cert if client_ca is True else client_ca))
    return d, ca, url, port


class _Conn(http.client.HTTPSConnection):
    """HTTPS (or plain, context None) from a chosen source address."""

    def __init__(self, host, port, context, source, timeout):
        super().__init__(host, port, timeout=timeout, context=context or ssl.create_default_context(),
                         source_address=(source, 0) if source else None)
        self.plain = context is None

    def connect(self):
        if self.plain:
            http.client.HTTPConnection.connect(self)
        else:
            super().connect()


class NetClient(Client):
    """The socket API over TCP: host, port, CA file (None: plain HTTP)."""

    def __init__(self, host, port, cafile=None, source=None, cert=None, timeout=15):
        super().__init__(None, timeout=timeout)
        self.host, self.port, self.source = host, port, source
        self.context = None
        if cafile:
            self.context = ssl.create_default_context(cafile=cafile)
            if cert:
                self.context.load_cert_chain(cert[0], cert[1])

    def from_address(self, source):
        c = NetClient(self.host, self.port, None, source, timeout=self.timeout)
        c.context = self.context
        return c

    def request(self, method, path, body=None, headers=None, content_type="application/json", bearer=None):
        body, hdrs = encode_request(body, headers, content_type, bearer)
        conn = _Conn(self.host, self.port, self.context, self.source, self.timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()
