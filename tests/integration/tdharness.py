# SPDX-License-Identifier: MIT
"""Harness for integration tests that drive the real tokend over its socket.

Tokend         starts tokend on a temporary state dir (optional config text),
               waits until the socket answers, reloads (SIGHUP), stops
               (SIGTERM → exit code), restarts on the same dir, reads its
               SQLite file and its stderr log.
Client         HTTP/1.1 over AF_UNIX, through Python's http.client or through
               `curl --unix-socket` (transport="python" | "curl"), optionally
               as another uid; helpers issue_token(), login(), refresh(),
               logout(), verify(), devices(), audit_log(), delete_device(), jwks(),
               api_doc().
DeviceKey      an Ed25519 device key: public key for `device_key`, RFC 7638
               thumbprint, DPoP-style refresh proofs.
SystemUser, PamService   throwaway users and /etc/pam.d files (root only),
               removed again by close() / the fixtures; role_users: an admin
               group and three users for privilege matrices.
raw_exchange   raw bytes on a fresh connection (malformed HTTP).
memory_hits    where byte strings occur in a running process's writable memory;
assert_wiped   none of some secrets is left in a process, while strings it
               keeps on purpose are found (the scan's control case).
jwt_parts, b64url, okp_thumbprint, ME (the pwd entry of the test's own uid).
Fixtures       tokend_factory (daemons killed and removed at teardown),
               system_user (userdel at teardown: request it BEFORE
               tokend_factory when a daemon runs as that user), transport
               (parametrizes over "python" and "curl"). Import them into a
               test module (`from tdharness import tokend_factory  # noqa: F401`).

With $TOKEND_TEST_DATABASE set (tests/with-postgresql), every Tokend gets a
fresh PostgreSQL database of that server ([Store] Database= written before
the test's own config); audit() and query() read it through psql, and
db_path and db() (the SQLite file) skip the test.

Binaries are found under $TOP_BUILDDIR (default: ../../build next to this
file). Import with sys.path.insert(0, os.path.dirname(__file__)).
"""

import base64
import contextlib
import hashlib
import http.client
import json
import os
import pickle
import pwd
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR") or os.path.abspath(os.path.join(HERE, "..", "..", "build"))

ME = pwd.getpwuid(os.getuid())  # the user the tests run as: peer tokens are for it
REFRESH_PATH = "/api/auth/refresh"
PROOF_TYP = "tokend-proof+jwt"
CURL = shutil.which("curl") or "/usr/bin/curl"
# A directory for memcheck logs: when set, every Tokend runs under valgrind.
VALGRIND_DIR = os.environ.get("TD_TEST_VALGRIND_DIR")


def find_binary(name):
    """Path of a built program (TOP_BUILDDIR/NAME or TOP_BUILDDIR/daemon/NAME), or None."""
    for d in (TOP_BUILDDIR, os.path.join(TOP_BUILDDIR, "daemon")):
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def need_root(what):
    """Skip the calling test unless we are root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to %s" % what)


# ---- base64url / JOSE -------------------------------------------------------

def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verifier_feed_state(state_dir):
    """A verifier's verifier-feed.json in state_dir (SEQ, revoked set,
    counters) as a dict; {} before the verifier wrote it."""
    try:
        with open(os.path.join(state_dir, "verifier-feed.json")) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return {}


def jwt_parts(token):
    """(header, claims) of a compact JWS, NOT verified."""
    h, p, _ = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p))


def okp_thumbprint(x):
    """RFC 7638 thumbprint of an Ed25519 JWK with public value x (base64url)."""
    canon = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canon.encode()).digest())


class DeviceKey:
    """An Ed25519 key as a client device holds it (python3-cryptography)."""

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        self.key = Ed25519PrivateKey.generate()

    @property
    def public(self):
        """Raw 32-byte public key, base64url: the `device_key` member."""
        from cryptography.hazmat.primitives import serialization as s
        return b64url(self.key.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw))

    def jkt(self):
        return okp_thumbprint(self.public)

    def sign_jws(self, header, payload):
        """Compact JWS of two JSON-able objects, signed EdDSA."""
        signing_input = b64url(json.dumps(header)) + "." + b64url(json.dumps(payload))
        return signing_input + "." + b64url(self.key.sign(signing_input.encode()))

    def proof(self, device_id, iat=None, jti=None, htm="POST", htu=REFRESH_PATH, typ=PROOF_TYP):
        """A refresh proof: fresh random jti and iat=now unless given."""
        payload = {"jti": jti or secrets.token_urlsafe(24), "iat": int(time.time()) if iat is None else iat,
                   "htm": htm, "htu": htu, "device_id": device_id}
        return self.sign_jws({"alg": "EdDSA", "typ": typ}, payload)

    def pkcs8_pem(self):
        """The private key as unencrypted PKCS#8 PEM (a tokend signing key file)."""
        from cryptography.hazmat.primitives import serialization as s
        return self.key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())


# ---- HTTP over AF_UNIX -----------------------------------------------------

class Response:
    """One HTTP answer: status, headers (lower-case names), body bytes, json."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def error(self):
        return self.json.get("error") if isinstance(self.json, dict) else None

    @property
    def message(self):
        return self.json.get("message") if isinstance(self.json, dict) else None

    def __repr__(self):
        return "Response(%s, %r, %r)" % (self.status, self.headers, self.body[:600])


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (the Host header says localhost)."""

    def __init__(self, path, timeout=15):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def _python_request(sock_path, method, path, body, headers, timeout):
    conn = UnixHTTPConnection(sock_path, timeout)
    try:
        try:
            conn.request(method, path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (413) and closed before the whole body went out: read the answer
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def _as_user(user, fn):
    """Run fn() in a forked child with user's uid/gid (a pwd entry); return
    its result or re-raise its exception here."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no return from here
        os.close(rfd)
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            out = ("ok", fn())
        except BaseException as e:  # noqa: B902 - handed to the parent
            out = ("err", e)
        with os.fdopen(wfd, "wb") as f:
            pickle.dump(out, f)
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, val = pickle.loads(data)
    if kind == "err":
        raise val
    return val


def _parse_curl_output(out):
    """Split `curl -i` output into a Response (skipping 1xx interim answers)."""
    while True:
        head, sep, rest = out.partition(b"\r\n\r\n")
        assert sep, "curl printed no complete header block: %r" % out[:300]
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        if 100 <= status < 200:
            out = rest
            continue
        headers = [tuple(x.strip() for x in ln.decode("latin-1").split(":", 1)) for ln in lines[1:] if b":" in ln]
        return Response(status, headers, rest)


def _curl_request(sock_path, method, path, body, headers, timeout, user):
    argv = [CURL, "-sS", "-i", "--max-time", str(timeout), "--unix-socket", sock_path, "-X", method]
    # tokend answers 413 as soon as it sees an oversized Content-Length and
    # closes; curl (< 1 MiB: no Expect by default) may then fail on its send
    # with EPIPE before it reads that answer. Waiting for 100-continue first
    # is how a client should send a large body, and makes that deterministic.
    argv += ["-H", "Expect: 100-continue" if body is not None and len(body) > 1024 else "Expect:"]
    for k, v in headers.items():
        argv += ["-H", "%s: %s" % (k, v)]
    if body is not None:
        argv += ["--data-binary", "@-"]
    argv.append("http://localhost" + path)
    if user is not None:
        argv = ["setpriv", "--reuid=%d" % user.pw_uid, "--regid=%d" % user.pw_gid, "--clear-groups"] + argv
    p = subprocess.run(argv, input=body or b"", capture_output=True, timeout=timeout + 5, check=False)
    assert p.returncode == 0, "curl failed (%d): %s" % (p.returncode, p.stderr.decode(errors="replace"))
    return _parse_curl_output(p.stdout)


def encode_request(body, headers, content_type, bearer):
    """(body bytes or None, headers dict) of a request as Client.request takes it."""
    hdrs = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    if body is not None and content_type is not None:
        hdrs.setdefault("Content-Type", content_type)
    if bearer is not None:
        hdrs["Authorization"] = "Bearer " + bearer
    return body, hdrs


class Client:
    """Requests to one tokend socket.

    transport: "python" (http.client) or "curl" (`curl --unix-socket`).
    user: a user name (or a pwd.struct_passwd, e.g. of a uid without a
    passwd entry); requests then run with its uid/gid (root only).
    Every call returns a Response; nothing raises on an HTTP error status."""

    def __init__(self, socket_path, transport="python", user=None, timeout=15):
        assert transport in ("python", "curl")
        self.socket_path = socket_path
        self.transport = transport
        self.user = pwd.getpwnam(user) if isinstance(user, str) else user
        self.timeout = timeout

    def as_user(self, user):
        return Client(self.socket_path, self.transport, user, self.timeout)

    def request(self, method, path, body=None, headers=None, content_type="application/json", bearer=None):
        """body: dict/list (sent as JSON), str/bytes (sent as is) or None."""
        body, hdrs = encode_request(body, headers, content_type, bearer)
        if self.transport == "curl":
            return _curl_request(self.socket_path, method, path, body, hdrs, self.timeout, self.user)
        call = lambda: _python_request(self.socket_path, method, path, body, hdrs, self.timeout)  # noqa: E731
        return call() if self.user is None else _as_user(self.user, call)

    def post(self, path, members=None, **kw):
        """POST a JSON object made of the members that are not None."""
        body = {k: v for k, v in (members or {}).items() if v is not None}
        return self.request("POST", path, body, **kw)

    # -- the API --------------------------------------------------------------
    def issue_token(self, audience=None, ttl=None, device_name=None, user=None, device_key=None, **extra):
        return self.post("/api/auth/token", dict(audience=audience, ttl=ttl, device_name=device_name, user=user,
                                                 device_key=device_key, **extra))

    def login(self, username, password, device_name=None, device_key=None, audience=None):
        return self.post("/api/auth/login", dict(username=username, password=password, device_name=device_name,
                                                 device_key=device_key, audience=audience))

    def refresh(self, refresh_token, device_id, proof=None, audience=None):
        return self.post(REFRESH_PATH, dict(refresh_token=refresh_token, device_id=device_id, proof=proof,
                                            audience=audience))

    def logout(self, access_token):
        return self.request("POST", "/api/auth/logout", bearer=access_token)

    def verify(self, token, user=None, service=None):
        return self.post("/api/auth/verify", dict(token=token, user=user, service=service))

    def devices(self, bearer=None, user=None, limit=None, cursor=None):
        return self.request("GET", _listing("/api/devices", user=user, limit=limit, cursor=cursor), bearer=bearer)

    def audit_log(self, bearer=None, user=None, limit=None, cursor=None):
        return self.request("GET", _listing("/api/audit", user=user, limit=limit, cursor=cursor), bearer=bearer)

    def delete_device(self, device_id, bearer=None):
        return self.request("DELETE", "/api/devices/" + device_id, bearer=bearer)

    def jwks(self):
        return self.request("GET", "/.well-known/jwks.json")

    def api_doc(self):
        return self.request("GET", "/api")


def _listing(path, **query):
    """path?k=v&… of the query members that are not None (values sent as given, URL-quoted)."""
    q = "&".join("%s=%s" % (k, urllib.parse.quote(str(v), safe="")) for k, v in query.items() if v is not None)
    return path + ("?" + q if q else "")


def raw_exchange(socket_path, data, timeout=10, read=True):
    """Send raw bytes on a fresh connection; return what comes back until the
    server closes (b"" = closed without answering). A reset counts as closed."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(socket_path)
    out = b""
    try:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed early: what it said before closing is still readable
        while read:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    return out


# ---- the daemon ------------------------------------------------------------

MEMORY_REGION_MAX = 256 << 20  # sanitizer shadow maps are terabytes: not scanned


def memory_hits(pid, needles, tail=18):
    """{needle: [(mapping, address), ...]}: where the last `tail` bytes of
    each needle occur in the readable, writable mappings (heap, thread
    arenas, stacks, .data) of process pid. The tail, because free() writes
    its list pointers over the first 16 bytes of a freed block. Raises
    PermissionError when /proc/PID/mem cannot be read (ptrace rules)."""
    hits = {n: [] for n in needles}
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            f = line.split()
            start, end = (int(x, 16) for x in f[0].split("-"))
            if not f[1].startswith("rw") or end - start > MEMORY_REGION_MAX:
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except OSError:  # e.g. a guard page or a mapping gone meanwhile
                continue
            for n in needles:
                i = data.find(n[-tail:])
                while i >= 0:
                    hits[n].append((f[5] if len(f) > 5 else "[anon]", hex(start + i)))
                    i = data.find(n[-tail:], i + 1)
    return hits


def assert_wiped(pid, keep, secret):
    """Fail when any string of secret is still in pid's memory; skip when
    the memory cannot be read. Control: every string of keep (kept on
    purpose, e.g. device ids) must be found, or the scan proves nothing."""
    try:
        hits = memory_hits(pid, [s.encode() for s in keep + secret])
    except PermissionError as err:
        pytest.skip("cannot read the memory of process %d: %s" % (pid, err))
    for k in keep:
        assert hits[k.encode()], "control: %s not found: the scan does not see the heap" % k
    left = {s[:8] + "…": hits[s.encode()] for s in secret if hits[s.encode()]}
    assert not left, "secrets left in process %d's memory: %s" % (pid, left)


# Config for tests that peer-login for sudo as whatever uid runs them (root
# is exempt from the step-up rule anyway); the rule itself: test_*_stepup.py.
NO_STEP_UP = "[Token]\nStepUpAudiences=none\n"


class Tokend:
    """One tokend on a temporary directory (mode 0755, so other uids reach the
    0666 socket): DIR/tokend.sock, DIR/state (database, keys), DIR/tokend.conf
    (always passed, so /etc/tokend is never read), DIR/tokend.log (stderr).
    user: a user name to run the daemon as (root only; DIR is chowned to it)."""

    def __init__(self, config="", env=None, user=None, verbose=True, bus_address="none"):
        binary = find_binary("tokend")
        self.bus_address = bus_address
        if not binary:
            pytest.skip("tokend is not built under %s" % TOP_BUILDDIR)
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="td-", dir="/tmp")  # sun_path holds only 108 bytes
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "tokend.sock")
        self.state_dir = os.path.join(self.dir, "state")
        self.config_path = os.path.join(self.dir, "tokend.conf")
        self.log_path = os.path.join(self.dir, "tokend.log")
        self.env = dict(os.environ, **(env or {}))
        self.user = pwd.getpwnam(user) if user is not None else None
        if self.user:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.verbose = verbose
        # Socket activation (test_tokend_socket_activation.py): a command
        # that execs tokend with the sockets it passed, and the fds it needs.
        self.launcher = []
        self.pass_fds = ()
        self.proc = None
        self.database = None
        if os.environ.get("TOKEND_TEST_DATABASE"):
            from pgharness import PostgreSQL
            self.pg = PostgreSQL()
            self.database = self.pg.new_database()
        self.write_config(config)
        self.api = Client(self.socket)

    @property
    def db_path(self):
        if self.database:
            pytest.skip("uses the SQLite file, and the store is on PostgreSQL (TOKEND_TEST_DATABASE)")
        return os.path.join(self.state_dir, "tokend.db")

    @property
    def keys_dir(self):
        return os.path.join(self.state_dir, "keys")

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            if self.database:
                # one issuer, as on SQLite: a new key signs at once (the
                # PostgreSQL default would hold it back 10 min)
                f.write("[Store]\nDatabase=%s\n[Keys]\nPublishBeforeSigning=0\n" % self.database)
            f.write(text or "")

    def client(self, transport="python", user=None):
        return Client(self.socket, transport, user)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, needle, timeout=60):
        """Wait for needle in the daemon's log (an event to wait for instead
        of a sleep); fails after timeout seconds, a guard against a hang."""
        deadline = time.monotonic() + timeout
        while needle not in self.log():
            assert time.monotonic() < deadline and self.running(), "no %r in the log:\n%s" % (needle, self.log())
            time.sleep(0.05)

    def start(self, timeout=15):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        argv = [self.binary, "--config", self.config_path, "--state-dir", self.state_dir,
                "--socket", self.socket, "--bus", self.bus_address] + (["-v"] if self.verbose else [])
        if VALGRIND_DIR:
            # memcheck on the daemon (scripts/valgrind-tokend): one log per
            # process, read by that script; errors also turn the exit code.
            argv = ["valgrind", "--error-exitcode=99", "--leak-check=full",
                    "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
                    "--log-file=%s/tokend.%%p.vg" % VALGRIND_DIR] + argv
            timeout = max(timeout, 120)
        argv = self.launcher + argv
        if self.user:
            argv = ["setpriv", "--reuid=%d" % self.user.pw_uid, "--regid=%d" % self.user.pw_gid,
                    "--clear-groups"] + argv
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                         env=self.env, pass_fds=self.pass_fds)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=15):
        """Poll GET /.well-known/jwks.json until it answers 200."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("tokend exited with %d during start-up:\n%s" % (self.proc.returncode, self.log()))
            try:
                if self.api.jwks().status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("tokend did not answer within %ss:\n%s" % (timeout, self.log()))
            time.sleep(0.05)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, timeout=10):
        """SIGHUP, then wait for the "reloaded"/"reload failed" log line; return it."""
        def marks():
            return [ln for ln in self.log().splitlines() if "reloaded:" in ln or "reload failed" in ln]
        before = len(marks())
        self.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while len(marks()) <= before:
            assert self.running(), "tokend died on SIGHUP:\n" + self.log()
            assert time.monotonic() < deadline, "no reload line after SIGHUP:\n" + self.log()
            time.sleep(0.05)
        return marks()[before]

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Signal the daemon and return its exit code (SIGKILL after timeout)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("tokend ignored signal %s for %ss:\n%s" % (sig, timeout, self.log()))

    def restart(self):
        code = self.stop()
        assert code == 0, "tokend exited with %s:\n%s" % (code, self.log())
        return self.start()

    def close(self):
        """Kill (if still running) and remove the directory. Under valgrind,
        SIGTERM first so that the leak check runs at exit."""
        if self.proc is not None and self.proc.poll() is None and VALGRIND_DIR:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the database (read with Python's sqlite3) -----------------------------
    def db(self):
        return sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True, timeout=10)

    def query(self, sql, args=()):
        """The rows (tuples) of sql ('?' placeholders bound from args) on the
        store: the SQLite file, or the PostgreSQL database (through psql:
        name every result column, numbers come back as int)."""
        if self.database:
            return [tuple(r.values()) for r in self.pg.rows(sql, args, uri=self.database)]
        con = self.db()
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def audit(self, event=None, device_id=None):
        """Audit rows as dicts, oldest first, optionally filtered."""
        q, args = "SELECT * FROM audit WHERE 1=1", []
        if event:
            q, args = q + " AND event = ?", args + [event]
        if device_id:
            q, args = q + " AND device_id = ?", args + [device_id]
        if self.database:
            return self.pg.rows(q + " ORDER BY id", args, uri=self.database)
        con = self.db()
        try:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(q + " ORDER BY id", args)]
        finally:
            con.close()

    def audit_count(self, event, caller_uid=None, device_id=None):
        """How many events the audit trail counts (a refusal repeated within
        a minute shares one row with a count), optionally of one caller uid."""
        return sum(a["count"] for a in self.audit(event, device_id)
                   if caller_uid is None or a["caller_uid"] == caller_uid)


# ---- throwaway system state (root only) --------------------------------------

def _run_locked(argv, input=None):
    """Run a shadow-utils tool, retrying while another one (a parallel test)
    holds the passwd/group lock."""
    for _ in range(20):
        p = subprocess.run(argv, input=input, capture_output=True, text=True, check=False)
        if p.returncode == 0 or "lock" not in p.stderr:
            return p
        time.sleep(0.25)
    return p


class SystemUser:
    """A user made with useradd -M (no home), optionally with a password;
    close() runs userdel. name is PREFIX + random hex (≤ 32 bytes)."""

    def __init__(self, prefix="tdtest_", password=None):
        need_root("create a throwaway user")
        self.name = "%s%s" % (prefix, secrets.token_hex(4))
        self.password = password
        p = _run_locked(["useradd", "-M", "-s", "/usr/sbin/nologin", self.name])
        assert p.returncode == 0, "useradd %s: %s" % (self.name, p.stderr)
        if password is not None:
            p = _run_locked(["chpasswd"], "%s:%s\n" % (self.name, password))
            if p.returncode != 0:
                self.close()
                raise AssertionError("chpasswd: %s" % p.stderr)
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid

    def close(self):
        """userdel; fails (loudly) while a process of the user still runs, so
        stop daemons running as it first (request tokend_factory after system_user)."""
        p = _run_locked(["userdel", self.name])
        assert p.returncode in (0, 6), "userdel %s: %s" % (self.name, p.stderr)  # 6: already gone


@contextlib.contextmanager
def role_users(prefix):
    """The non-root roles of a privilege matrix: a throwaway admin group and
    three throwaway users, the first in that group. Yields (group, admin,
    owner, other); users and group are deleted on exit. Stop daemons that
    run as these users inside the with-block."""
    need_root("create throwaway users and a group")
    group = "tdadm_" + secrets.token_hex(3)
    p = _run_locked(["groupadd", group])
    assert p.returncode == 0, p.stderr
    users = []
    try:
        users = [SystemUser(prefix) for _ in range(3)]
        p = _run_locked(["usermod", "-aG", group, users[0].name])
        assert p.returncode == 0, p.stderr
        yield (group, *users)
    finally:
        for u in users:
            u.close()
        _run_locked(["groupdel", group])


class PamService:
    """/etc/pam.d/tokend-test-XXXX with the given text; close() removes it."""

    def __init__(self, text):
        need_root("write a PAM service into /etc/pam.d")
        self.name = "tokend-test-" + secrets.token_hex(4)
        self.path = os.path.join("/etc/pam.d", self.name)
        with open(self.path, "x") as f:
            f.write(text)

    def close(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


# ---- pytest fixtures (import them into the test module) ----------------------

@pytest.fixture
def tokend_factory():
    """make(config_text="", env=None, user=None) → a started Tokend; all
    killed and removed at the end of the test."""
    made = []

    def make(config="", env=None, user=None):
        d = Tokend(config, env=env, user=user)
        made.append(d)
        return d.start()

    yield make
    for d in made:
        d.close()


@pytest.fixture
def system_user():
    """make(prefix="tdtest_", password=None) → a SystemUser, deleted at the end."""
    made = []

    def make(prefix="tdtest_", password=None):
        u = SystemUser(prefix, password)
        made.append(u)
        return u

    yield make
    errors = []
    for u in made:
        try:
            u.close()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, errors


UNIX_STACK = "auth required pam_unix.so nodelay\naccount required pam_unix.so\n"


@pytest.fixture
def pam_user(system_user):
    """(a throwaway user with a password, the name of a throwaway /etc/pam.d
    service that checks it with pam_unix): for tokend's [Login] PAMService=."""
    need_root("create a user and an /etc/pam.d service")
    user = system_user("tdpw_", "S3cret-pw-" + secrets.token_hex(4))
    svc = PamService(UNIX_STACK)
    yield user, svc.name
    svc.close()


@pytest.fixture(params=["python", "curl"])
def transport(request):
    """Parametrizes a test over both HTTP clients."""
    return request.param
