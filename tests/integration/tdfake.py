# SPDX-License-Identifier: MIT
"""FakeIssuer: an HTTP server between a verifier and the real issuer, shared
by tests/integration/test_tokend_verifier.py (on a Unix socket) and
tests/fleet/test_fleet_faults.py (HTTPS on a TCP socket made in the issuer's
network namespace). It passes every GET on to the issuer's Unix socket,
except that its JWKS carries keys the verifier must skip (unsupported kty,
encryption use, malformed), and that its feed answers can be switched to
forged (signed by a stranger's key under the issuer's kid, claiming
forged_device is revoked) or replayed (replay: an old answer of the
issuer)."""

import http.server
import json
import socketserver
import ssl
import sys
import threading

from tdharness import DeviceKey, UnixHTTPConnection, jwt_parts


class Quiet(socketserver.ThreadingMixIn):
    """A thread per request; a client gone half-way (a verifier stopped in
    its long poll) is no error to print."""
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FakeIssuer:
    """FakeIssuer(issuer_socket, listen, tls=None): listen is a Unix socket
    path, or a listening TCP socket served with TLS context tls."""

    def __init__(self, issuer_socket, listen, tls=None):
        self.issuer_socket, self.mode, self.replay, self.forged_device = issuer_socket, "proxy", None, None
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def address_string(self):
                return "verifier"

            def setup(self):
                if isinstance(self.request, ssl.SSLSocket):
                    self.request.do_handshake()
                super().setup()

            def send(self, status, ctype, body):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                conn = UnixHTTPConnection(fake.issuer_socket, 60)
                conn.request("GET", self.path)
                r = conn.getresponse()
                body = r.read()
                conn.close()
                if self.path == "/.well-known/jwks.json":
                    keys = json.loads(body)["keys"]
                    junk = [{"kty": "OKP", "crv": "Ed448", "x": "AAAA", "kid": "ed448"},
                            {"kty": "OKP", "crv": "Ed25519", "x": "not*base64", "kid": "broken"},
                            dict(keys[0], kid="for-encryption", use="enc"),
                            {"kty": "OKP", "crv": "X25519", "x": keys[0]["x"], "kid": "x25519"}]
                    body = json.dumps({"keys": junk + keys}).encode()
                elif fake.mode == "forge":
                    hdr, payload = jwt_parts(body.decode())
                    payload["devices"].append({"id": fake.forged_device, "until": 4102444800})
                    body = DeviceKey().sign_jws(hdr, payload).encode()
                elif fake.mode == "replay":
                    body = fake.replay
                self.send(r.status, r.getheader("Content-Type") or "application/json", body)

        if tls is None:
            class Server(Quiet, socketserver.UnixStreamServer):
                pass

            self.server = Server(listen, Handler)
        else:
            class Server(Quiet, socketserver.TCPServer):
                def get_request(self):
                    s, addr = self.socket.accept()
                    return tls.wrap_socket(s, server_side=True, do_handshake_on_connect=False), addr

            self.server = Server(listen.getsockname()[:2], Handler, bind_and_activate=False)
            self.server.socket.close()
            self.server.socket = listen
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
