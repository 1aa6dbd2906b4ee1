# SPDX-License-Identifier: MIT
"""Foreign JWKS through tokenctl verify --jwks (RFC 7517 §4.2-4.5, §5): the
RFC 7520 §4 signature examples with the RFC's own keys (an RSA JWK without
"alg" and with the kid "bilbo.baggins@hobbiton.example"), keys left out of a
set rather than spoiling it (unsupported, for another purpose, malformed),
and the limits that stay fatal. Each refusal has a control that verifies."""

import base64
import json
import os

import pytest

from test_tokenctl_util import Client, base, have_binaries  # noqa: F401

pytestmark = pytest.mark.skipif(not have_binaries(), reason="tokenctl not built")

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
RFC = json.load(open(os.path.join(TOP_SRCDIR, "tests", "data", "rfc7520-jws.json")))
KID = "bilbo.baggins@hobbiton.example"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


@pytest.fixture
def ctl(base):
    return Client(base, "/nonexistent.sock")


def write_jwks(base, name, *keys):
    path = os.path.join(base, name)
    with open(path, "w") as f:
        json.dump({"keys": list(keys)}, f)
    return path


def test_rfc7520_rs256_with_the_rfcs_jwk(base, ctl):
    """§4.1 verifies with §3.4's public key as the RFC prints it: no alg (taken
    as RS256), use sig, a kid with '@' matched exactly."""
    jwks = write_jwks(base, "rsa.json", RFC["rsa_key"])
    p = ctl.ok("verify", "--jwks", jwks, "--signature-only", RFC["4.1"])
    assert p.stdout.startswith("VALID SIGNATURE by key %s (RS256)" % KID), p.stdout
    j = ctl.json("verify", "--jwks", jwks, "--signature-only", RFC["4.1"])
    assert j["signature_valid"] is True and j["kid"] == KID and j["header"] == {"alg": "RS256", "kid": KID}
    assert "payload" not in j or j["payload"] is None          # the RFC's payload is text, not JSON
    # tampered payload, and a kid that differs only in case: refused
    h, pl, s = RFC["4.1"].split(".")
    other = b64url(RFC["payload"].replace("Frodo", "Sam").encode())
    p = ctl.run("verify", "--jwks", jwks, "--signature-only", ".".join([h, other, s]))
    assert p.returncode == 1 and "signature is invalid" in p.stdout, (p.stdout, p.stderr)
    upper = write_jwks(base, "upper.json", dict(RFC["rsa_key"], kid=KID.upper()))
    p = ctl.run("verify", "--jwks", upper, "--signature-only", RFC["4.1"])
    assert p.returncode == 1 and "not in the JWKS" in p.stdout, (p.stdout, p.stderr)
    # an RSA key without alg is RS256 only: the same key marked PS256 refuses the RS256 example
    ps = write_jwks(base, "ps.json", dict(RFC["rsa_key"], alg="PS256"))
    assert ctl.run("verify", "--jwks", ps, "--signature-only", RFC["4.1"]).returncode == 1


def test_rfc7520_unsupported_algorithms_say_so(base, ctl):
    """§4.2 (PS384) and §4.3 (ES512, P-521 key) are not algorithms tokend
    implements: a clear answer, not "malformed"; the P-521 key is left out of a
    set that also holds the RSA key under the same kid, and §4.1 still verifies."""
    rsa = write_jwks(base, "rsa.json", RFC["rsa_key"])
    p = ctl.run("verify", "--jwks", rsa, "--signature-only", RFC["4.2"])
    assert p.returncode == 1 and "algorithm PS384 is not supported" in p.stdout, (p.stdout, p.stderr)

    ec = write_jwks(base, "ec.json", RFC["ec_key"])
    p = ctl.run("verify", "--jwks", ec, "--signature-only", RFC["4.3"])
    assert p.returncode == 2 and "holds no key that can verify" in p.stderr, (p.stdout, p.stderr)
    assert "key 0 (kid \"%s\") left out: unsupported key type, curve or algorithm" % KID in p.stderr

    both = write_jwks(base, "both.json", RFC["ec_key"], RFC["rsa_key"])
    p = ctl.run("verify", "--jwks", both, "--signature-only", RFC["4.1"])
    assert p.returncode == 0 and p.stdout.startswith("VALID SIGNATURE"), (p.stdout, p.stderr)
    assert "key 0" in p.stderr and "key 1" not in p.stderr
    p = ctl.run("verify", "--jwks", both, "--signature-only", RFC["4.3"])
    assert p.returncode == 1 and "algorithm ES512 is not supported" in p.stdout, (p.stdout, p.stderr)


def ed25519():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    k = Ed25519PrivateKey.generate()
    return k, b64url(k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def sign(k, kid, payload=b'{"hello":"world"}'):
    si = b64url(json.dumps({"alg": "EdDSA", "kid": kid}).encode()) + "." + b64url(payload)
    return si + "." + b64url(k.sign(si.encode()))


def test_unusable_keys_are_left_out_not_fatal(base, ctl):
    """RFC 7517 §5: keys that cannot or must not verify are ignored; the good
    key of the set still works, and each left-out key is named on stderr."""
    good, gx = ed25519()
    other, ox = ed25519()
    keys = [
        {"kty": "OKP", "crv": "X25519", "x": ox, "kid": "x25519"},           # unsupported curve
        {"kty": "oct-ish", "kid": "weird"},                                   # unsupported kty
        {"kty": "OKP", "crv": "Ed25519", "x": ox, "kid": "enc", "use": "enc"},  # another purpose
        {"kty": "OKP", "crv": "Ed25519", "x": ox, "kid": "signer", "key_ops": ["sign"]},
        {"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "short"},        # malformed
        {"kty": "OKP", "crv": "Ed25519", "kid": "nox"},                       # malformed
        "not an object",
        {"kty": "OKP", "crv": "Ed25519", "x": gx, "kid": "good", "use": "sig", "key_ops": ["verify"]},
    ]
    jwks = write_jwks(base, "mixed.json", *keys)
    p = ctl.run("verify", "--jwks", jwks, "--signature-only", sign(good, "good"))
    assert p.returncode == 0 and p.stdout.startswith("VALID SIGNATURE by key good (EdDSA)"), (p.stdout, p.stderr)
    for i, why in [(0, "unsupported"), (1, "unsupported"), (2, "not a signature verification key"),
                   (3, "not a signature verification key"), (4, "malformed"), (5, "malformed"), (6, "malformed")]:
        assert "key %d" % i in p.stderr and why in p.stderr.split("key %d" % i)[1].split("\n")[0], (i, p.stderr)
    assert "key 7" not in p.stderr

    # The key material of "enc" and "signer" is real: it still never verifies.
    for kid in ("enc", "signer"):
        p = ctl.run("verify", "--jwks", jwks, "--signature-only", sign(other, kid))
        assert p.returncode == 1 and "not in the JWKS" in p.stdout, (kid, p.stdout)
    # control: the same key without the purpose members verifies
    plain = write_jwks(base, "plain.json", {"kty": "OKP", "crv": "Ed25519", "x": ox, "kid": "enc"})
    assert ctl.run("verify", "--jwks", plain, "--signature-only", sign(other, "enc")).returncode == 0


def test_kid_is_any_string_escaped_on_output(base, ctl):
    """A kid is any string (RFC 7517 §4.5), printed escaped: an ANSI escape in
    a foreign kid does not reach the terminal."""
    k, x = ed25519()
    kid = "evil\x1b[31mred\u202e"
    jwks = write_jwks(base, "kid.json", {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid})
    p = ctl.ok("verify", "--jwks", jwks, "--signature-only", sign(k, kid))
    assert p.stdout.startswith("VALID SIGNATURE by key evil\\x1b[31mred\\u{202e} (EdDSA)"), p.stdout
    assert "\x1b" not in p.stdout and "\u202e" not in p.stdout
    assert ctl.json("verify", "--jwks", jwks, "--signature-only", sign(k, kid))["kid"] == kid
    # over 64 bytes: that key is malformed, so the set holds none
    long = write_jwks(base, "long.json", {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k" * 65})
    p = ctl.run("verify", "--jwks", long, "--signature-only", sign(k, "k" * 65))
    assert p.returncode == 2 and "malformed" in p.stderr, (p.stdout, p.stderr)


def test_fatal_sets_stay_fatal(base, ctl):
    """A private member anywhere, or two usable keys under one kid, refuse the
    whole set (a leaked secret, an ambiguous key): exit 2, nothing verified."""
    k, x = ed25519()
    _, x2 = ed25519()
    good = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "a"}
    tok = sign(k, "a")
    assert ctl.run("verify", "--jwks", write_jwks(base, "ok.json", good), "--signature-only", tok).returncode == 0
    p = ctl.run("verify", "--jwks", write_jwks(base, "priv.json", good, dict(good, kid="b", d="AAAA")),
                "--signature-only", tok)
    assert p.returncode == 2 and "private key members" in p.stderr, p.stderr
    p = ctl.run("verify", "--jwks", write_jwks(base, "dup.json", good, dict(good, x=x2)), "--signature-only", tok)
    assert p.returncode == 2 and "duplicate kid" in p.stderr, p.stderr
