# SPDX-License-Identifier: MIT
"""tokenctl keys generate/rotate/list/jwks, and verify --jwks offline (with
tokend stopped), and a key rotation on a running tokend: tokens of the old
key keep verifying while new tokens carry the new kid. The trust rules of
the key directory (owner and mode of the directory and of every key, at
start and on SIGHUP), and a root-run rotation tokend can read."""

import base64
import json
import os
import shutil
import stat

import pytest

from tdharness import system_user  # noqa: F401 (fixture)
from test_tokenctl_util import NO_STEP_UP, Client, Tokend, base, claims, have_binaries, header, start_tokend  # noqa: F401

pytestmark = pytest.mark.skipif(not have_binaries(), reason="tokend/tokenctl not built")


@pytest.fixture
def ctl(base):
    return Client(base, "/nonexistent.sock")


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def test_generate_list_jwks(base, ctl):
    d = os.path.join(base, "keys")
    k1 = ctl.json("keys", "generate", "--dir", d)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(k1["file"]).st_mode) == 0o600
    assert k1["alg"] == "EdDSA"
    rows = ctl.ok("keys", "list", "--dir", d).stdout.splitlines()
    assert rows[1].startswith("* ") and k1["kid"] in rows[1]
    k2 = ctl.json("keys", "generate", "--alg", "ES256", "--dir", d)
    lst = ctl.json("keys", "list", "--dir", d)["keys"]
    assert {(k["kid"], k["alg"], k["active"]) for k in lst} == {(k1["kid"], "EdDSA", False),
                                                                 (k2["kid"], "ES256", True)}
    jwks = json.loads(ctl.ok("keys", "jwks", "--dir", d).stdout)
    assert sorted(k["kid"] for k in jwks["keys"]) == sorted([k1["kid"], k2["kid"]])
    assert all("d" not in k for k in jwks["keys"])                 # public members only


def test_passphrase(base, ctl):
    d = os.path.join(base, "keys")
    pf = os.path.join(base, "pass")
    with open(pf, "w") as f:
        f.write("correct horse\n")
    k = ctl.json("keys", "generate", "--dir", d, "--passphrase-file", pf)
    assert "ENCRYPTED PRIVATE KEY" in open(k["file"]).read()
    p = ctl.run("keys", "list", "--dir", d)
    assert "cannot load: wrong or missing passphrase" in p.stdout
    assert ctl.run("keys", "jwks", "--dir", d).returncode == 1
    jwks = json.loads(ctl.ok("keys", "jwks", "--dir", d, "--passphrase-file", pf).stdout)
    assert [x["kid"] for x in jwks["keys"]] == [k["kid"]]
    p = ctl.ok("keys", "jwks", "--dir", d, env={"TOKEND_PASSPHRASE": "correct horse"})
    assert k["kid"] in p.stdout


def test_missing_or_empty_dir(base, ctl):
    p = ctl.run("keys", "list", "--dir", os.path.join(base, "nope"))
    assert p.returncode == 1 and "cannot read" in p.stderr
    os.mkdir(os.path.join(base, "empty"))
    p = ctl.run("keys", "jwks", "--dir", os.path.join(base, "empty"))
    assert p.returncode == 1 and "keys generate" in p.stderr
    assert ctl.run("keys", "frob", "--dir", base).returncode == 2
    assert ctl.run("keys", "list", "--alg", "EdDSA", "--dir", base).returncode == 2


def test_verify_offline_with_tokend_stopped(base):
    d = start_tokend(NO_STEP_UP)  # token --audience sudo after a peer login, as any uid
    c = Client(base, d.socket)
    try:
        c.ok("login", "--peer")
        tok = c.ok("token").stdout.strip()
        sudo = c.ok("token", "--audience", "sudo").stdout.strip()
        jwks = os.path.join(base, "jwks.json")
        with open(jwks, "w") as f:
            f.write(c.ok("keys", "jwks", "--dir", d.keys_dir).stdout)
        assert json.load(open(jwks)) == d.api.jwks().json
        d.stop()
        assert c.run("status").returncode == 3                     # really stopped
    finally:
        d.close()
    p = c.ok("verify", "--jwks", jwks, tok)
    assert p.stdout.startswith("VALID: sub=root aud=sshd,login,su")
    j = c.json("verify", "--jwks", jwks, "--user", "root", "--audience", "sshd", tok)
    assert j["active"] and j["offline"] and j["kid"] == header(tok)["kid"]
    c.ok("verify", "--jwks", jwks, "--audience", "sudo", sudo)
    assert c.run("verify", "--jwks", jwks, "--audience", "sudo", tok).returncode == 1
    assert c.run("verify", "--jwks", jwks, "--user", "daemon", tok).returncode == 1
    assert c.run("verify", "--jwks", jwks, "--issuer", "someone-else", tok).returncode == 1
    h, pl, s = tok.split(".")
    forged = dict(claims(tok), sub="daemon")
    bad = ".".join([h, b64url(json.dumps(forged).encode()), s])
    p = c.run("verify", "--jwks", jwks, bad)
    assert p.returncode == 1 and "signature is invalid" in p.stdout
    # a JWKS without the signing key
    other = os.path.join(base, "other")
    c.ok("keys", "generate", "--dir", other)
    with open(os.path.join(base, "other.json"), "w") as f:
        f.write(c.ok("keys", "jwks", "--dir", other).stdout)
    p = c.run("verify", "--jwks", os.path.join(base, "other.json"), tok)
    assert p.returncode == 1 and "not in the JWKS" in p.stdout
    j = c.json("verify", "--jwks", jwks, "--signature-only", tok)
    assert j["signature_valid"] and j["payload"]["sub"] == "root"
    assert c.run("verify", "--jwks", jwks, "--signature-only", bad).returncode == 1


def test_signature_only_plain_jws(base):
    """A plain JWS from elsewhere: no kid, not an access token."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    c = Client(base, "/nonexistent.sock")
    k = Ed25519PrivateKey.generate()
    x = b64url(k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    jwks = os.path.join(base, "plain.json")
    with open(jwks, "w") as f:
        json.dump({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x}]}, f)
    signing_input = b64url(b'{"alg":"EdDSA"}') + "." + b64url(b'{"hello":"world"}')
    jws = signing_input + "." + b64url(k.sign(signing_input.encode()))
    j = c.json("verify", "--jwks", jwks, "--signature-only", jws)
    assert j["signature_valid"] and j["payload"] == {"hello": "world"}
    assert c.run("verify", "--jwks", jwks, jws).returncode == 1     # not an access token
    tampered = signing_input + "." + b64url(k.sign(b"something else"))
    assert c.run("verify", "--jwks", jwks, "--signature-only", tampered).returncode == 1


def test_rotate_on_running_tokend(base):
    d = start_tokend()
    try:
        c = Client(base, d.socket)
        c.ok("login", "--peer")
        old = c.ok("token").stdout.strip()
        old_kid = header(old)["kid"]
        p = c.ok("keys", "rotate", "--dir", d.keys_dir)
        assert "AccessTokenLifetime" in p.stdout and "keep verifying" in p.stdout
        new_kid = [k["kid"] for k in c.json("keys", "list", "--dir", d.keys_dir)["keys"] if k["active"]][0]
        assert new_kid != old_kid
        assert "reloaded" in d.reload()
        assert len(d.api.jwks().json["keys"]) == 2
        c.ok("refresh")
        new = c.ok("token").stdout.strip()
        assert header(new)["kid"] == new_kid
        assert c.ok("verify", old).stdout.startswith("VALID")      # old key still verifies
        assert c.ok("verify", new).stdout.startswith("VALID")
        assert len(os.listdir(d.keys_dir)) == 2                          # old key kept
    finally:
        d.close()


# ---- key directory trust ---------------------------------------------------

def forge(tok, pem, kid, audience="sudo"):
    """tok's claims plus audience, signed by the Ed25519 key pem under kid:
    what whoever planted that key could mint."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    h = dict(header(tok), kid=kid)
    c = dict(claims(tok), aud=sorted(set(claims(tok)["aud"]) | {audience}))
    si = b64url(json.dumps(h, separators=(",", ":")).encode()) + "." + b64url(json.dumps(c).encode())
    return si + "." + b64url(load_pem_private_key(pem, None).sign(si.encode()))


def attacker_key(base, ctl, tok):
    """A key made elsewhere (tokenctl's JSON: file, kid) and the forged token it signs."""
    att = ctl.json("keys", "generate", "--dir", os.path.join(base, "attacker"))
    with open(att["file"], "rb") as f:
        return att, forge(tok, f.read(), att["kid"])


@pytest.fixture
def daemon():
    d = Tokend()
    try:
        yield d.start()
    finally:
        d.close()


def key_files(d):
    return [os.path.join(d.keys_dir, n) for n in os.listdir(d.keys_dir) if n.endswith(".pem")]


def assert_start_refused(d, *words):
    assert d.stop() == 0
    with pytest.raises(RuntimeError) as e:
        d.start()
    assert all(w in str(e.value) for w in words), (words, str(e.value))


def test_planted_key_in_writable_directory(base, ctl, daemon):
    d = daemon
    tok = d.api.issue_token().json["access_token"]
    att, forged = attacker_key(base, ctl, tok)
    planted = os.path.join(d.keys_dir, "zz-planted.pem")  # root's, 0600: only the directory gives it away
    for mode in (0o770, 0o730, 0o707, 0o777, 0o1777):
        os.chmod(d.keys_dir, mode)
        shutil.copy(att["file"], planted)
        os.chmod(planted, 0o600)
        line = d.reload()
        assert "reload failed, keeping the running keys" in line and d.keys_dir in line, line
        assert "writable by group or others (mode %04o)" % mode in line, line
        assert d.api.verify(forged, service="sudo").status == 401
        assert d.api.verify(tok).status == 200                        # the running keys still serve
        assert len(d.api.jwks().json["keys"]) == 1
        os.unlink(planted)
    shutil.copy(att["file"], planted)
    os.chmod(planted, 0o600)
    assert_start_refused(d, d.keys_dir, "the key directory", "writable by group or others (mode 1777)")
    # control: the same key in a directory only tokend's user can write is
    # an administrator's key, and loads (so the refusal is what stops the forgery)
    os.chmod(d.keys_dir, 0o700)
    d.start()
    assert len(d.api.jwks().json["keys"]) == 2
    assert d.api.verify(forged, service="sudo").status == 200


def test_key_readable_by_others(daemon):
    d = daemon
    tok = d.api.issue_token().json["access_token"]
    (key,) = key_files(d)
    for mode in (0o640, 0o604, 0o644, 0o660, 0o602):
        os.chmod(key, mode)
        line = d.reload()
        assert "reload failed" in line and key in line, line
        assert ("readable by group or others (mode %04o)" % mode in line or
                "writable by group or others (mode %04o)" % mode in line), line
        assert d.api.verify(tok).status == 200
    os.chmod(key, 0o644)
    assert_start_refused(d, key, "refusing a private key readable by group or others (mode 0644)", "chmod 0600")
    os.chmod(key, 0o600)                                                 # control
    d.start()
    assert "reloaded:" in d.reload()
    assert d.api.verify(tok).status == 200


def test_key_or_directory_owned_by_another_user(base, ctl, daemon):
    d = daemon
    tok = d.api.issue_token().json["access_token"]
    att, forged = attacker_key(base, ctl, tok)
    planted = os.path.join(d.keys_dir, "zz-planted.pem")
    shutil.copy(att["file"], planted)
    os.chmod(planted, 0o600)
    os.chown(planted, 65534, 65534)                                      # nobody's key, mode 0600
    line = d.reload()
    assert "reload failed" in line and planted in line and "owned by uid 65534, not by uid 0" in line, line
    assert d.api.verify(forged, service="sudo").status == 401
    os.unlink(planted)
    os.chown(d.keys_dir, 65534, 65534)
    line = d.reload()
    assert "reload failed" in line and "the key directory: refusing: owned by uid 65534" in line, line
    assert_start_refused(d, d.keys_dir, "owned by uid 65534")
    os.chown(d.keys_dir, 0, 0)                                           # control
    d.start()
    assert d.api.verify(tok).status == 200
    # tokenctl reports the same refusals
    os.chmod(d.keys_dir, 0o777)
    p = ctl.run("keys", "list", "--dir", d.keys_dir)
    assert p.returncode == 1 and "writable by group or others (mode 0777)" in p.stderr, p
    p = ctl.run("keys", "generate", "--dir", d.keys_dir)
    assert p.returncode == 1 and "writable by group or others" in p.stderr, p
    assert len(key_files(d)) == 1                                        # nothing written there
    os.chmod(d.keys_dir, 0o700)
    (key,) = key_files(d)
    os.chmod(key, 0o644)
    assert "refusing a private key readable" in ctl.ok("keys", "list", "--dir", d.keys_dir).stdout


def test_root_rotation_for_an_unprivileged_tokend(base, ctl, system_user):  # noqa: F811
    u = system_user()
    d = Tokend(user=u.name)
    try:
        d.start()
        st = os.stat(d.keys_dir)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (u.uid, 0o700)
        old = d.api.issue_token().json["access_token"]
        # what a root-run rotation left before: a key of root's that tokend's user cannot open
        stale = os.path.join(d.keys_dir, "9999999999-root.pem")
        ctl.ok("keys", "generate", "--dir", os.path.join(base, "rootkeys"))
        (src,) = os.listdir(os.path.join(base, "rootkeys"))
        shutil.copy(os.path.join(base, "rootkeys", src), stale)
        os.chmod(stale, 0o600)
        line = d.reload()
        assert "reload failed" in line and stale in line and "Permission denied" in line, line
        os.unlink(stale)

        new = ctl.json("keys", "rotate", "--dir", d.keys_dir)              # run as root
        st = os.stat(new["file"])
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (u.uid, u.gid, 0o600)
        assert "reloaded: 2 key(s)" in d.reload()
        tok = d.api.issue_token().json["access_token"]
        assert header(tok)["kid"] == new["kid"]
        assert d.api.verify(old).status == 200 and d.api.verify(tok).status == 200
        d.restart()                                                      # and it starts with it
        assert header(d.api.issue_token().json["access_token"])["kid"] == new["kid"]
        assert [k["kid"] for k in ctl.json("keys", "list", "--dir", d.keys_dir)["keys"] if k["active"]] == [new["kid"]]
    finally:
        d.close()
