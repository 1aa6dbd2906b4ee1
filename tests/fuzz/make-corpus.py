#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Regenerate the seed corpora in tests/fuzz/corpus/TARGET/ (the files are
committed; run this only to change them). Small valid and invalid inputs
built from the known-answer material: the RFC 8037 A.1 Ed25519 key and the
RFC 7515 A.3 P-256 key (the ones tests/fuzz/fuzz-util.c signs with), the
RFC 7515 A.2/A.3 and RFC 8037 A.4 tokens, the test configs. Needs
python3-cryptography. Usage: tests/fuzz/make-corpus.py"""
import base64, hashlib, json, os, shutil
from cryptography.hazmat.primitives.asymmetric import ed25519, ec, utils
from cryptography.hazmat.primitives import hashes

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
ROOT = os.path.join(HERE, 'corpus')
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()
def d64(s): return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))
ed = ed25519.Ed25519PrivateKey.from_private_bytes(d64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"))
p256 = ec.derive_private_key(int.from_bytes(d64("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"), 'big'), ec.SECP256R1())
ED_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
ED_KID = "kPrK_qmxVWaY"   # RFC 8037 A.3 thumbprint, first 12 chars
EC_X, EC_Y = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
tp = json.dumps({"crv": "P-256", "kty": "EC", "x": EC_X, "y": EC_Y}, separators=(',', ':'), sort_keys=True)
EC_KID = b64(hashlib.sha256(tp.encode()).digest())[:12]

def sign(h, p, key=ed):
    inp = (b64(h.encode()) + '.' + b64(p.encode())).encode()
    if key is ed:
        sig = ed.sign(inp)
    else:
        r, s = utils.decode_dss_signature(p256.sign(inp, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, 'big') + s.to_bytes(32, 'big')
    return inp.decode() + '.' + b64(sig)

def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())

for t in ('jws-verify', 'jwk-import', 'pam-jwt-answer', 'config', 'refresh-proof', 'str-escape'):
    shutil.rmtree(os.path.join(ROOT, t), ignore_errors=True)

# ---- jws-verify: mode byte, then a token (even) or HEADER 0xff PAYLOAD (odd)
AT_H = '{"alg":"EdDSA","typ":"at+jwt","kid":"%s"}' % ED_KID
AT_P = ('{"iss":"tokend","sub":"alice","uid":1000,"aud":["sshd","login","su"],"iat":1700000000,'
        '"exp":1700000900,"jti":"q9bX3yJ0c2VmK1Lr8n0o6A","client_id":"dev_Zk3s9QaP2mXv7LbN1cR0tw","scope":"login",'
        '"cnf":{"jkt":"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}}')
EXPIRED_P = AT_P.replace('"exp":1700000900', '"exp":1700000001')
RFC8037_TOKEN = ("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
                 ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")
RFC7515_A3 = ("eyJhbGciOiJFUzI1NiJ9"
              ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
              ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q")
good_at = sign(AT_H, AT_P)
put('jws-verify', 'raw-access-token-valid', '\0' + good_at)
put('jws-verify', 'raw-access-token-expired', '\0' + sign(AT_H, EXPIRED_P))
put('jws-verify', 'raw-access-token-es256', '\0' + sign('{"alg":"ES256","typ":"at+jwt","kid":"%s"}' % EC_KID, AT_P, p256))
put('jws-verify', 'raw-rfc8037-a4', '\0' + RFC8037_TOKEN)
put('jws-verify', 'raw-rfc7515-a3-nokid', '\0' + RFC7515_A3)
put('jws-verify', 'raw-bad-signature', '\0' + good_at[:-3] + ('AAA' if good_at[-3:] != 'AAA' else 'BAA'))
put('jws-verify', 'raw-alg-none', '\0' + b64(b'{"alg":"none","kid":"%s"}' % ED_KID.encode()) + '.' + b64(AT_P.encode()) + '.AAAA')
put('jws-verify', 'raw-shapes', '\0a.b.c')
put('jws-verify', 'raw-padding', '\0' + good_at.replace('.', '=.', 1))
put('jws-verify', 'signed-access-token', b'\x01' + AT_H.encode() + b'\xff' + AT_P.encode())
put('jws-verify', 'signed-access-token-es256', b'\x03' + ('{"alg":"ES256","typ":"at+jwt","kid":"%s"}' % EC_KID).encode() + b'\xff' + AT_P.encode())
put('jws-verify', 'signed-crit', b'\x01' + ('{"alg":"EdDSA","typ":"at+jwt","kid":"%s","crit":["exp"]}' % ED_KID).encode() + b'\xff' + AT_P.encode())
put('jws-verify', 'signed-aud-string-nbf', b'\x01' + AT_H.encode() + b'\xff' + AT_P.replace('["sshd","login","su"]', '"sshd","nbf":1700000000').encode())
put('jws-verify', 'signed-text-payload', b'\x01{"alg":"EdDSA"}\xffExample of Ed25519 signing')

# ---- jwk-import
rsa_a2 = {"kty": "RSA", "alg": "RS256", "e": "AQAB", "n":
          "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-"
          "SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-"
          "KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-"
          "DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"}
okp = {"kty": "OKP", "crv": "Ed25519", "x": ED_X}
ec_ = {"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": "a3", "use": "sig", "alg": "ES256"}
ps = dict(rsa_a2, alg="PS256", kid="rsa-pss")
J = lambda o: json.dumps(o, separators=(',', ':'))
put('jwk-import', 'jwks-all', J({"keys": [okp, ec_, rsa_a2, ps]}))
put('jwk-import', 'jwk-okp', J(okp))
put('jwk-import', 'jwk-ec', J(ec_))
put('jwk-import', 'jwk-rsa', J(rsa_a2))
put('jwk-import', 'jwks-empty', '{"keys":[]}')
put('jwk-import', 'jwk-private-d', J(dict(okp, d="nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")))
put('jwk-import', 'jwk-oct', '{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}')
put('jwk-import', 'jwk-rsa-no-alg', J({k: v for k, v in rsa_a2.items() if k != 'alg'}))
put('jwk-import', 'jwks-duplicate-kid', J({"keys": [dict(okp, kid="k"), dict(ec_, kid="k")]}))
put('jwk-import', 'jwk-ec-off-curve', J(dict(ec_, y=EC_X)))
put('jwk-import', 'jwk-x448', '{"kty":"OKP","crv":"X448","x":"AAAA"}')

# ---- pam-jwt-answer: what tokend could send back to pam_jwt
def http(status, reason, body, extra=''):
    return 'HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n%s' % (
        status, reason, extra, len(body), body)
put('pam-jwt-answer', 'valid', http(200, 'OK', '{"active":true,"sub":"alice","uid":1000,"aud":["sshd","login"],"exp":1700000900,"iat":1700000000,"client_id":"dev_x","jti":"q9bX3yJ0c2VmK1Lr8n0o6A","scope":"login"}'))
put('pam-jwt-answer', 'other-user', http(200, 'OK', '{"active":true,"sub":"bob","aud":["sshd"],"exp":1700000900}'))
put('pam-jwt-answer', 'inactive', http(200, 'OK', '{"active":false}'))
put('pam-jwt-answer', 'expired', http(401, 'Unauthorized', '{"error":"token_expired","message":"the token has expired"}'))
put('pam-jwt-answer', 'revoked', http(401, 'Unauthorized', '{"error":"token_revoked","message":"revoked"}'))
put('pam-jwt-answer', 'rate-limited', http(429, 'Too Many Requests', '{"error":"too_many_requests","message":"slow down"}', 'Retry-After: 5\r\n'))
put('pam-jwt-answer', 'server-error', http(500, 'Internal Server Error', ''))
put('pam-jwt-answer', 'chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n0\r\n\r\n')
put('pam-jwt-answer', 'garbage', 'HTTP/1.0 200\r\n\r\n{"active":true')

# ---- config
put('config', 'full', open(os.path.join(TOP, 'tests/data/conf/full.conf')).read())
put('config', 'bad-value', open(os.path.join(TOP, 'tests/data/conf/bad-value.conf')).read())
put('config', 'default', open(os.path.join(TOP, 'etc/tokend.conf')).read())
put('config', 'empty', '')
put('config', 'unknown-and-reset', '[Token]\nFoo = bar\nIssuer =\n[Nope]\nx=1\n[Bus]\nBus = none\n[Limits]\nRequestTimeout = 1h\n')
put('config', 'syntax', '[Token\nIssuer\n= x\n')

# ---- refresh-proof: mode byte, then a proof (even) or HEADER 0xff PAYLOAD (odd)
PR_H = '{"alg":"EdDSA","typ":"tokend-proof+jwt"}'
PR_P = '{"jti":"Jx2mQ0b8c9VtR3sLk1P4aw","iat":1700000100,"htm":"POST","htu":"/api/auth/refresh","device_id":"dev_AAAAAAAAAAAAAAAAAAAAAA"}'
put('refresh-proof', 'raw-valid', '\0' + sign(PR_H, PR_P))
put('refresh-proof', 'raw-stale', '\0' + sign(PR_H, PR_P.replace('1700000100', '1700000000')))
put('refresh-proof', 'raw-access-token', '\0' + good_at)
put('refresh-proof', 'signed-valid', b'\x01' + PR_H.encode() + b'\xff' + PR_P.encode())
put('refresh-proof', 'signed-wrong-htu', b'\x01' + PR_H.encode() + b'\xff' + PR_P.replace('/api/auth/refresh', '/api/auth/login').encode())
# RFC 9449 DPoP proofs of the same key (dpop_verify runs on every input too)
DP_H = json.dumps({"alg": "EdDSA", "typ": "dpop+jwt", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": ED_X}},
                  separators=(',', ':'))
DP_P = '{"jti":"Jx2mQ0b8c9VtR3sLk1P4aw","iat":1700000100,"htm":"POST","htu":"https://id.example/oauth2/token"}'
put('refresh-proof', 'raw-dpop-valid', '\0' + sign(DP_H, DP_P))
put('refresh-proof', 'signed-dpop-valid', b'\x01' + DP_H.encode() + b'\xff' + DP_P.encode())
put('refresh-proof', 'signed-dpop-query', b'\x01' + DP_H.encode() + b'\xff' +
    DP_P.replace('/oauth2/token', '/oauth2/token?a=b#c').encode())
put('refresh-proof', 'signed-short-jti', b'\x01' + PR_H.encode() + b'\xff' + PR_P.replace('Jx2mQ0b8c9VtR3sLk1P4aw', 'x').encode())

# ---- str-escape: raw text as a caller could send it
put('str-escape', 'plain', 'laptop (alice) #1')
put('str-escape', 'utf8', 'caf\u00e9 \u6771\u4eac \U0001f511')
put('str-escape', 'c0-newline-esc', 'a\x1b[2J\nforged: b\r\t\x7f\x00z')
put('str-escape', 'c1-bidi', 'x\u009b31m\u202etxt.exe\u2066\u2069\u2028\u0085')
put('str-escape', 'invalid', b'\xff\xc0\x9b\xe0\x80\x9b\xed\xa0\x80\xf4\x90\x80\x80\xe2\x80')
