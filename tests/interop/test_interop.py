# SPDX-License-Identifier: MIT
"""Interoperability of our JWS/JWKS (common/, through tests/interop/jose-tool) with
PyJWT (Debian python3-jwt) and the npm "jose" package, both ways, for
EdDSA, ES256, RS256 and PS256, plus the at+jwt access-token profile.

Every positive check has negative controls: a tampered payload and a token
whose header names another algorithm must fail on both sides. The node half
installs jose into the build tree on first run and is skipped (with the
reason) when node/npm or the registry are unavailable."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import npmproject  # noqa: E402  (tests/npmproject.py)

TOP_SRCDIR = Path(os.environ.get("TOP_SRCDIR") or HERE.parent.parent)
TOP_BUILDDIR = Path(os.environ.get("TOP_BUILDDIR") or TOP_SRCDIR)
TOOL = TOP_BUILDDIR / "tests" / "interop" / "jose-tool"
ALGS = ["EdDSA", "ES256", "RS256", "PS256"]
OTHER_ALG = {"EdDSA": "ES256", "ES256": "EdDSA", "RS256": "PS256", "PS256": "RS256"}
ISSUER = "https://tokend.interop.test"
PAYLOAD = {"sub": "alice", "uid": 1000, "scope": "login", "n": [1, 2, 3], "x": "é✓"}


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_json(obj) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def b64u_uint(n: int, size: int) -> str:
    # RFC 7518 §6.2.1.2/§6.3.1.1: EC coordinates are full-length octet strings.
    return b64u(n.to_bytes(size, "big"))


def tampered(token: str) -> str:
    """Same header and signature, another payload (sub changed)."""
    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims["sub"] = "mallory"
    return ".".join([h, b64u_json(claims), s])


def rewrite_alg(token: str, alg: str) -> str:
    """Same payload and signature, header claiming another algorithm."""
    h, p, s = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))
    header["alg"] = alg
    return ".".join([b64u_json(header), p, s])


def hs256_confusion(kid: str, public_pem: bytes, payload) -> str:
    """The classic RFC 8725 §2.1 attack: HMAC keyed with the public key."""
    signing_input = b64u_json({"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + b64u_json(payload)
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64u(mac)


def none_token(kid: str, payload) -> str:
    return b64u_json({"alg": "none", "kid": kid}) + "." + b64u_json(payload) + "."


# ---- our side ----------------------------------------------------------------


def tool(*args, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([str(TOOL), *map(str, args)], input=stdin, capture_output=True, text=True, timeout=60)


def tool_ok(*args, stdin: str = "") -> str:
    r = tool(*args, stdin=stdin)
    assert r.returncode == 0, f"jose-tool {args[0]} failed: {r.stderr}"
    return r.stdout.strip()


def assert_we_reject(jwks_path: Path, token: str, errname: str, *extra):
    r = tool("verify", jwks_path, *extra, stdin=token)
    assert r.returncode == 1, f"accepted a bad token: {r.stdout}"
    assert f"-{errname}" in r.stderr, r.stderr


class KeyCache(dict):
    """One key per alg, made on first use, so a failing alg fails only its
    own tests."""

    def __init__(self, make, directory: Path):
        super().__init__()
        self.make, self.dir = make, directory

    def __missing__(self, alg):
        self[alg] = self.make(alg, self.dir)
        return self[alg]


class OurKey:
    def __init__(self, alg: str, directory: Path):
        self.alg = alg
        self.pem = directory / f"{alg}.pem"
        self.kid = tool_ok("gen", alg, self.pem)
        self.jwks = json.loads(tool_ok("jwks", self.pem))
        self.jwks_path = directory / f"{alg}.jwks.json"
        self.jwks_path.write_text(json.dumps(self.jwks))
        self.pyjwk = jwt.PyJWKSet.from_dict(self.jwks)[self.kid]

    def sign(self, payload=PAYLOAD, typ="JWT") -> str:
        return tool_ok("sign", self.pem, typ, stdin=json.dumps(payload))

    def access_token(self, *aud) -> str:
        return tool_ok("at", self.pem, ISSUER, "alice", *aud)

    def public_pem(self) -> bytes:
        return self.pyjwk.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def our_keys(tmp_path_factory):
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"{TOOL} is not built (make check builds it)")
    return KeyCache(OurKey, tmp_path_factory.mktemp("ours"))


# ---- PyJWT's side --------------------------------------------------------------


def py_generate(alg: str):
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(alg: str, pub) -> dict:
    """Public JWK with an RFC 7638 thumbprint kid, "alg" and "use"."""
    if alg == "EdDSA":
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": b64u(raw)}
    elif alg == "ES256":
        # Not PyJWT 2.6's to_jwk(): it drops leading zero bytes of x/y (a
        # 31-byte coordinate 1 time in 128), which RFC 7518 §6.2.1.2 forbids.
        nums = pub.public_numbers()
        members = {"crv": "P-256", "kty": "EC", "x": b64u_uint(nums.x, 32), "y": b64u_uint(nums.y, 32)}
    else:
        nums = pub.public_numbers()
        members = {"e": b64u_uint(nums.e, (nums.e.bit_length() + 7) // 8), "kty": "RSA",
                   "n": b64u_uint(nums.n, (nums.n.bit_length() + 7) // 8)}
    canon = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return {**members, "kid": b64u(hashlib.sha256(canon).digest()), "alg": alg, "use": "sig"}


class PyKey:
    def __init__(self, alg: str, directory: Path):
        self.alg = alg
        self.key = py_generate(alg)
        self.jwk = public_jwk(alg, self.key.public_key())
        self.kid = self.jwk["kid"]
        self.jwks_path = directory / f"py-{alg}.jwks.json"
        self.jwks_path.write_text(json.dumps({"keys": [self.jwk]}))

    def sign(self, payload=PAYLOAD, alg=None, headers=None) -> str:
        return jwt.encode(payload, self.key, algorithm=alg or self.alg, headers={"kid": self.kid, **(headers or {})})

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def py_keys(tmp_path_factory):
    return KeyCache(PyKey, tmp_path_factory.mktemp("pyjwt"))


# ---- Python half: us → PyJWT ------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_our_jwks_imports_in_pyjwt(our_keys, alg):
    k = our_keys[alg]
    (jwk,) = k.jwks["keys"]
    assert jwk["alg"] == alg and jwk["use"] == "sig" and jwk["kid"] == k.kid
    assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()
    assert k.pyjwk.key_id == k.kid


@pytest.mark.parametrize("alg", ALGS)
def test_ours_verified_by_pyjwt(our_keys, alg):
    k = our_keys[alg]
    token = k.sign()
    header = jwt.get_unverified_header(token)
    assert header == {"alg": alg, "typ": "JWT", "kid": k.kid}
    assert jwt.decode(token, k.pyjwk.key, algorithms=[alg]) == PAYLOAD
    # Negative controls: PyJWT must refuse what we would refuse.
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tampered(token), k.pyjwk.key, algorithms=[alg])
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(rewrite_alg(token, OTHER_ALG[alg]), k.pyjwk.key, algorithms=[alg])


# ---- Python half: PyJWT → us ------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_pyjwt_verified_by_ours(py_keys, alg):
    k = py_keys[alg]
    token = k.sign()
    assert json.loads(tool_ok("verify", k.jwks_path, stdin=token)) == PAYLOAD
    # Trailing newline as a shell pipe would send it: the tool strips it.
    assert json.loads(tool_ok("verify", k.jwks_path, stdin=token + "\n")) == PAYLOAD
    assert_we_reject(k.jwks_path, tampered(token), "EKEYREJECTED")


@pytest.mark.parametrize("alg", ALGS)
def test_pyjwt_wrong_alg_rejected_by_ours(py_keys, alg):
    k = py_keys[alg]
    # Control: the same key and claims with the right alg verify.
    assert json.loads(tool_ok("verify", k.jwks_path, stdin=k.sign())) == PAYLOAD
    if alg in ("RS256", "PS256"):
        # A genuine signature by the right key under the other RSA scheme:
        # the key's JWK says alg, and a key only verifies with its own.
        assert_we_reject(k.jwks_path, k.sign(alg=OTHER_ALG[alg]), "EBADMSG")
    assert_we_reject(k.jwks_path, rewrite_alg(k.sign(), OTHER_ALG[alg]), "EBADMSG")
    assert_we_reject(k.jwks_path, hs256_confusion(k.kid, k.public_pem(), PAYLOAD), "EBADMSG")
    assert_we_reject(k.jwks_path, none_token(k.kid, PAYLOAD), "EBADMSG")


def test_pyjwt_without_kid(py_keys):
    k = py_keys["EdDSA"]
    token = jwt.encode(PAYLOAD, k.key, algorithm="EdDSA")
    assert "kid" not in jwt.get_unverified_header(token)
    assert json.loads(tool_ok("verify", k.jwks_path, "--no-kid", stdin=token)) == PAYLOAD
    r = tool("verify", k.jwks_path, stdin=token)
    assert r.returncode == 1, "a token without kid verified although kid is required"


def test_es256_jwk_short_coordinate_rejected(tmp_path):
    """PyJWT 2.6's to_jwk() drops leading zero bytes of EC coordinates;
    RFC 7518 §6.2.1.2 requires the full 32 bytes and PyJWT's own from_jwk()
    refuses such JWKs. We refuse them too: such a key is left out of the
    set (RFC 7517 §5), so the token names a key that is not there; the padded
    JWK of the same key is the control."""
    for _ in range(5000):  # a coordinate starts with 0x00 one key in ~64
        key = ec.generate_private_key(ec.SECP256R1())
        short = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        if len(short["x"]) < 43 or len(short["y"]) < 43:
            break
    else:
        pytest.fail("no P-256 key with a short coordinate found")
    token = jwt.encode(PAYLOAD, key, algorithm="ES256", headers={"kid": "k1"})
    good = {**public_jwk("ES256", key.public_key()), "kid": "k1"}
    for jwk, ok in ((good, True), ({**short, "kid": "k1", "alg": "ES256"}, False)):
        path = tmp_path / "jwks.json"
        path.write_text(json.dumps({"keys": [jwk]}))
        r = tool("verify", path, stdin=token)
        if ok:
            assert r.returncode == 0 and json.loads(r.stdout) == PAYLOAD, r.stderr
        else:
            assert r.returncode == 1 and "JWKS key 0 left out: -EBADMSG" in r.stderr, r.stderr
            assert "jws_verify: -ENOKEY" in r.stderr, r.stderr
            with pytest.raises(jwt.InvalidKeyError):
                jwt.PyJWK(jwk)


def test_ps256_salt_length_is_digest_length(our_keys, py_keys):
    """RFC 7518 §3.5: PS256 uses a 32-byte salt. PyJWT 2.6 signs with
    salt_length = digest size (32), not PSS.MAX_LENGTH; check both sides by
    verifying with the salt length pinned to 32."""
    pss32 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    for token, pub in ((py_keys["PS256"].sign(), py_keys["PS256"].key.public_key()),
                       (our_keys["PS256"].sign(), our_keys["PS256"].pyjwk.key)):
        h, p, s = token.split(".")
        sig = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
        pub.verify(sig, f"{h}.{p}".encode(), pss32, hashes.SHA256())
        with pytest.raises(InvalidSignature):
            pub.verify(sig, f"{h}.{p}x".encode(), pss32, hashes.SHA256())


# ---- at+jwt ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_our_access_token_in_pyjwt(our_keys, alg):
    k = our_keys[alg]
    token = k.access_token("sshd", "login")
    assert jwt.get_unverified_header(token) == {"alg": alg, "typ": "at+jwt", "kid": k.kid}
    claims = jwt.decode(token, k.pyjwk.key, algorithms=[alg], audience="sshd", issuer=ISSUER,
                        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]})
    assert claims["sub"] == "alice" and claims["uid"] == 1000 and claims["aud"] == ["sshd", "login"]
    assert claims["client_id"] == "dev_interop" and claims["exp"] - claims["iat"] == 900
    assert len(base64.urlsafe_b64decode(claims["jti"] + "==")) >= 16
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, k.pyjwk.key, algorithms=[alg], audience="sudo", issuer=ISSUER)
    with pytest.raises(jwt.InvalidIssuerError):
        jwt.decode(token, k.pyjwk.key, algorithms=[alg], audience="sshd", issuer=ISSUER + "/evil")
    # Our own verifier agrees, and refuses the audience the token lacks.
    ours = json.loads(tool_ok("verify-at", k.jwks_path, ISSUER, "login", stdin=token))
    assert ours["jti"] == claims["jti"] and ours["kid"] == k.kid
    r = tool("verify-at", k.jwks_path, ISSUER, "sudo", stdin=token)
    assert r.returncode == 1 and "-EACCES" in r.stderr, r.stderr


@pytest.mark.parametrize("alg", ALGS)
def test_pyjwt_access_token_verified_by_ours(py_keys, alg):
    k = py_keys[alg]
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "alice", "uid": 1000, "aud": ["sshd"], "iat": now, "exp": now + 300,
              "jti": b64u(os.urandom(16)), "client_id": "dev_py"}
    token = k.sign(claims, headers={"typ": "at+jwt"})
    ours = json.loads(tool_ok("verify-at", k.jwks_path, ISSUER, "sshd", stdin=token))
    assert ours["sub"] == "alice" and ours["aud"] == ["sshd"] and ours["client_id"] == "dev_py"
    # A plain JWT (typ JWT) is not an access token (RFC 9068 §4).
    r = tool("verify-at", k.jwks_path, ISSUER, "sshd", stdin=k.sign(claims, headers={"typ": "JWT"}))
    assert r.returncode == 1 and "-EBADMSG" in r.stderr, r.stderr


# ---- Node half: npm jose --------------------------------------------------------------


class Node:
    def __init__(self, directory: Path):
        self.dir = directory

    def run(self, *args, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(["node", "--no-warnings", str(self.dir / "jose-interop.mjs"), *map(str, args)],
                              input=stdin, capture_output=True, text=True, timeout=60, cwd=self.dir)

    def ok(self, *args, stdin: str = ""):
        r = self.run(*args, stdin=stdin)
        assert r.returncode == 0, f"node jose {args[0]} failed: {r.stderr}"
        return json.loads(r.stdout)

    def rejects(self, *args, stdin: str, code: str):
        r = self.run(*args, stdin=stdin)
        assert r.returncode == 1, f"jose accepted a bad token: {r.stdout}"
        assert r.stderr.startswith(code), r.stderr


@pytest.fixture(scope="module")
def node():
    return Node(npmproject.install(HERE, TOP_BUILDDIR / "tests" / "interop", ["jose-interop.mjs"], "jose"))


@pytest.mark.parametrize("alg", ALGS)
def test_ours_verified_by_node(node, our_keys, alg):
    k = our_keys[alg]
    token = k.sign()
    for cmd in ("verify", "verify-jwk"):  # createLocalJWKSet, importJWK
        out = node.ok(cmd, k.jwks_path, alg, stdin=token)
        assert out["payload"] == PAYLOAD and out["header"]["kid"] == k.kid
    node.rejects("verify", k.jwks_path, alg, stdin=tampered(token), code="ERR_JWS_SIGNATURE_VERIFICATION_FAILED")
    node.rejects("verify", k.jwks_path, alg, stdin=rewrite_alg(token, OTHER_ALG[alg]),
                 code="ERR_JOSE_ALG_NOT_ALLOWED")


@pytest.mark.parametrize("alg", ALGS)
def test_node_verified_by_ours(node, tmp_path, alg):
    out = node.ok("sign", alg, stdin=json.dumps(PAYLOAD))
    jwks_path = tmp_path / "node.jwks.json"
    jwks_path.write_text(json.dumps(out["jwks"]))
    (jwk,) = out["jwks"]["keys"]
    assert json.loads(tool_ok("verify", jwks_path, stdin=out["token"])) == PAYLOAD
    assert_we_reject(jwks_path, tampered(out["token"]), "EKEYREJECTED")
    assert_we_reject(jwks_path, rewrite_alg(out["token"], OTHER_ALG[alg]), "EBADMSG")
    pub = jwt.PyJWK(jwk).key.public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    assert_we_reject(jwks_path, hs256_confusion(jwk["kid"], pub, PAYLOAD), "EBADMSG")


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_node_cross_rsa_alg_rejected_by_ours(node, tmp_path, alg):
    # jose signs with the other RSA scheme; the JWKS publishes the key as alg.
    out = node.ok("sign", alg, OTHER_ALG[alg], stdin=json.dumps(PAYLOAD))
    assert jwt.get_unverified_header(out["token"])["alg"] == OTHER_ALG[alg]
    jwks_path = tmp_path / "node.jwks.json"
    jwks_path.write_text(json.dumps(out["jwks"]))
    assert_we_reject(jwks_path, out["token"], "EBADMSG")


@pytest.mark.parametrize("alg", ALGS)
def test_our_access_token_in_node(node, our_keys, alg):
    k = our_keys[alg]
    token = k.access_token("sshd", "login")
    out = node.ok("verify", k.jwks_path, alg, ISSUER, "login", "at+jwt", stdin=token)
    assert out["header"]["typ"] == "at+jwt" and out["payload"]["aud"] == ["sshd", "login"]
    node.rejects("verify", k.jwks_path, alg, ISSUER, "sudo", "at+jwt", stdin=token,
                 code="ERR_JWT_CLAIM_VALIDATION_FAILED")
    node.rejects("verify", k.jwks_path, alg, ISSUER, "sshd", "JWT", stdin=token,
                 code="ERR_JWT_CLAIM_VALIDATION_FAILED")
