# SPDX-License-Identifier: MIT
"""A fake tokend for the pam_jwt tests.

A real HTTP/1.1 server (http.server) on an AF_UNIX socket that answers
``POST /api/auth/verify`` the way tokend does (DESIGN.md, "Unix socket API"):
from tokens the test registered with issue(), honouring revoke() and expiry.
A test can also script the next answers with then(...): an arbitrary status
and JSON, raw bytes, a hang, a slow or dripped answer. Every request is
recorded (path, headers, raw body, parsed JSON) so tests can assert what the
module sent.

RealTokend offers the same issue()/revoke() interface in front of a running
tokend, so the "valid" cases can run against the real daemon too.
"""

import base64
import http.client
import http.server
import json
import os
import secrets
import socket
import socketserver
import threading
import time

VERIFY_PATH = "/api/auth/verify"


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fake_jws(claims):
    """JWS-shaped (three base64url segments), signature random: only the
    fake daemon's registry makes it valid."""
    header = {"alg": "EdDSA", "typ": "at+jwt", "kid": "fake"}
    return ".".join([b64url(json.dumps(header)), b64url(json.dumps(claims)),
                     b64url(secrets.token_bytes(64))])


# ---------------------------------------------------------------- behaviours
# Each is a callable(handler, fake, request_json) that writes the answer.

def _send_json(handler, status, obj, extra_headers=()):
    data = json.dumps(obj).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for k, v in extra_headers:
        handler.send_header(k, v)
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(data)
    handler.close_connection = True


def answer(status, obj, headers=()):
    """Answer with this status and JSON body, whatever was asked."""
    return lambda h, fake, req: _send_json(h, status, obj, headers)


def raw(data):
    """Write these bytes (HTTP or not) and close."""
    def run(h, fake, req):
        h.wfile.write(data)
        h.wfile.flush()
        h.close_connection = True
    return run


def hang():
    """Accept the request, never answer (until the fake stops); when the
    client hangs up first, set fake.hung_up: the event a test checks instead
    of timing the client."""
    def run(h, fake, req):
        conn = h.connection
        conn.settimeout(0.05)
        while not fake.stopping.is_set():
            try:
                if conn.recv(4096) == b"":
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        else:
            h.close_connection = True
            return
        fake.hung_up.set()
        h.close_connection = True
    return run


def slow(seconds, then=None):
    """Wait, then answer like the registry (or like `then`)."""
    def run(h, fake, req):
        fake.stopping.wait(seconds)
        (then or registry())(h, fake, req)
    return run


def drip(data, chunk=7, pause=0.01):
    """Write the answer a few bytes at a time (checks incremental reading)."""
    def run(h, fake, req):
        for i in range(0, len(data), chunk):
            h.wfile.write(data[i:i + chunk])
            h.wfile.flush()
            time.sleep(pause)
        h.close_connection = True
    return run


def registry():
    """The default: judge the token like tokend would."""
    def run(h, fake, req):
        status, obj = fake.judge(req)
        _send_json(h, status, obj)
    return run


def http_response(status, body, headers=None):
    """Bytes of a well-formed response, for raw()/drip()."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    hdrs = headers if headers is not None else [("Content-Type", "application/json"),
                                                ("Content-Length", str(len(body)))]
    head = "HTTP/1.1 %d X\r\n" % status + "".join("%s: %s\r\n" % kv for kv in hdrs) + "\r\n"
    return head.encode() + body


# ---------------------------------------------------------------- server

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30

    def log_message(self, fmt, *args):  # quiet, and client_address is '' on AF_UNIX
        pass

    def do_POST(self):
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        fake.record(self.path, dict(self.headers.items()), body, parsed)
        fake.next_behaviour()(self, fake, parsed)

    def do_GET(self):
        _send_json(self, 405, {"error": "method_not_allowed", "message": "POST only"})


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False


class FakeTokend:
    scriptable = True

    def __init__(self, path):
        self.path = path
        self.requests = []
        self.script = []
        self.tokens = {}
        self.revoked = set()
        self.stopping = threading.Event()
        self.hung_up = threading.Event()  # see hang()
        self._lock = threading.Lock()
        self._server = None

    # -- lifecycle
    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._server = _Server(self.path, _Handler)
        self._server.fake = self
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self):
        self.stopping.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    # -- the test's handles
    def issue(self, user, aud=("sshd", "login", "su"), ttl=3600, device="dev_fake0001", uid=1000):
        now = int(time.time())
        claims = {"iss": "fake-tokend", "sub": user, "uid": uid, "aud": list(aud),
                  "iat": now, "nbf": now, "exp": now + ttl,
                  "jti": secrets.token_urlsafe(16), "client_id": device, "scope": ""}
        token = fake_jws(claims)
        with self._lock:
            self.tokens[token] = claims
        return token

    def claims(self, token):
        return self.tokens[token]

    def revoke(self, token):
        with self._lock:
            self.revoked.add(token)

    def then(self, *behaviours):
        """Script the next answers, in order; afterwards the registry answers."""
        with self._lock:
            self.script.extend(behaviours)
        return self

    # -- server side
    def record(self, path, headers, body, parsed):
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "raw": body, "json": parsed})

    def next_behaviour(self):
        with self._lock:
            return self.script.pop(0) if self.script else registry()

    def judge(self, req):
        if not isinstance(req, dict) or not isinstance(req.get("token"), str):
            return 400, {"error": "invalid_request", "message": "token missing"}
        with self._lock:
            claims = self.tokens.get(req["token"])
            revoked = req["token"] in self.revoked
        if claims is None:
            return 401, {"error": "invalid_token", "message": "unknown token"}
        if revoked:
            return 401, {"error": "token_revoked", "message": "device revoked"}
        if claims["exp"] <= time.time():
            return 401, {"error": "token_expired", "message": "expired"}
        if "user" in req and req["user"] != claims["sub"]:
            return 401, {"error": "invalid_token", "message": "not this user's token"}
        if "service" in req and req["service"] not in claims["aud"]:
            return 401, {"error": "invalid_token", "message": "not for this service"}
        return 200, dict(claims, active=True)


# ---------------------------------------------------------------- real daemon

class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class RealTokend:
    """issue()/revoke() against a running tokend (run as root: it may issue
    for any user through POST /api/auth/token). Not scriptable."""
    scriptable = False

    def __init__(self, path):
        self.path = path
        self.requests = None  # the real daemon does not tell us

    def _call(self, method, url, body=None, token=None):
        conn = _UnixHTTPConnection(self.path)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        conn.request(method, url, body=json.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, (json.loads(data) if data else None)

    def issue(self, user, aud=("sshd", "login", "su"), ttl=3600, device=None, uid=None):
        """ttl <= 0 (an expired token): the daemon issues no such thing, so a
        1 s token is waited out (run the daemon with [Token] ClockSkew=0)."""
        req = {"user": user, "audience": list(aud), "ttl": max(ttl, 1)}
        if device:
            req["device_name"] = device
        status, obj = self._call("POST", "/api/auth/token", req)
        assert status == 200, (status, obj)
        token = obj["access_token"]
        if ttl <= 0:
            payload = token.split(".")[1]
            exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
            while time.time() < exp + 1:
                time.sleep(0.1)
        return token

    def revoke(self, token):
        status, _ = self._call("POST", "/api/auth/logout", token=token)
        assert status == 204, status

    def start(self):
        return self

    def stop(self):
        pass
