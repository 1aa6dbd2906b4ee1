# SPDX-License-Identifier: MIT
"""Clients nobody here wrote, from npm (tests/oauth/node/package.json,
pinned by its package-lock.json, installed with `npm ci` into the build
tree), against tokend's [Network] HTTPS listener with a throwaway CA: node
openid-client — discovery from the metadata URL and the whole device flow
(initiateDeviceAuthorization + pollDeviceAuthorizationGrant), approved in
headless Chromium on /device; node jose — createRemoteJWKSet + jwtVerify of
an access token against the issuer's jwks_uri. And the API explorer
(/api/docs, Swagger UI from the npm package swagger-ui-dist) in the same
browser: a "try it out" call of /.well-known/jwks.json answers 200.
Screenshots go to tests/oauth/screenshots/ in the build tree."""

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "integration"))
import npmproject  # noqa: E402
from tdharness import TOP_BUILDDIR, PamService, UNIX_STACK, jwt_parts, system_user, tokend_factory  # noqa: E402,F401
from tdnet import NetClient, TestCA, free_port, network_config  # noqa: E402

sys.path.insert(0, str(HERE))
import chromium  # noqa: E402  (skips without python3-selenium)
from chromium import shot  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402



@pytest.fixture(scope="module")
def node_dir():
    return npmproject.install(HERE / "node", Path(TOP_BUILDDIR) / "tests" / "oauth" / "node",
                              ["oauth-clients.mjs", ".npmrc"], "openid-client")


def spki_hash(cert):
    """base64 SHA-256 of the certificate's public key: what Chromium is told to trust."""
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"], capture_output=True, check=True)
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub.stdout, capture_output=True,
                         check=True)
    return base64.b64encode(hashlib.sha256(der.stdout).digest()).decode()


class Issuer:
    pass


@pytest.fixture
def issuer(tmp_path, system_user, tokend_factory, node_dir):  # noqa: F811
    iss = Issuer()
    iss.user = system_user("tdnd_", "N0de-pw-" + os.urandom(3).hex())
    svc = PamService(UNIX_STACK)
    iss.ca = TestCA(str(tmp_path / "ca"))
    iss.cert, key = iss.ca.issue("tokend-server")
    port = free_port()
    iss.url = "https://127.0.0.1:%d" % port
    docs = node_dir / "node_modules" / "swagger-ui-dist"
    iss.d = tokend_factory("[Login]\nPAMService=%s\nFailureDelay=0\n[API]\nEnableDocs=yes\nDocsDirectory=%s\n"
                           % (svc.name, docs) + network_config("127.0.0.1:%d" % port, iss.cert, key,
                                                              public_url=iss.url))
    iss.net = NetClient("127.0.0.1", port, iss.ca.cert)
    iss.node = node_dir
    yield iss
    svc.close()


@pytest.fixture
def browser(tmp_path, issuer):
    # Trust exactly the test server's key (the throwaway CA is in no store).
    drv = chromium.start(tmp_path / "profile", "--ignore-certificate-errors-spki-list=" + spki_hash(issuer.cert))
    yield drv
    drv.quit()


def node(iss, *args, **kw):
    env = dict(os.environ, NODE_EXTRA_CA_CERTS=iss.ca.cert)
    return subprocess.Popen(["node", "--no-warnings", str(iss.node / "oauth-clients.mjs"), *args], cwd=iss.node,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_openid_client_discovery_and_device_flow(issuer, browser):
    p = node(issuer, "device", issuer.url, "oidc-kiosk", "sshd su")
    try:
        first = json.loads(p.stdout.readline() or '{"step":"none"}')
        assert first["step"] == "authorize", (first, p.stderr.read() if p.poll() is not None else "")
        assert first["issuer"] == issuer.url
        assert first["device_authorization_endpoint"] == issuer.url + "/oauth2/device_authorization"
        browser.get(first["verification_uri_complete"])
        WebDriverWait(browser, 20).until(EC.presence_of_element_located((By.ID, "approve")))
        assert browser.find_element(By.ID, "client").text == "oidc-kiosk"
        browser.find_element(By.ID, "username").send_keys(issuer.user.name)
        browser.find_element(By.ID, "password").send_keys(issuer.user.password)
        shot(browser, "openid-client-1-approval")
        browser.find_element(By.ID, "approve").click()
        WebDriverWait(browser, 20).until(EC.title_contains("Device approved"))
        shot(browser, "openid-client-2-approved")
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, (out, err)
    tokens = json.loads(out.strip().splitlines()[-1])
    assert tokens["step"] == "tokens" and tokens["token_type"].lower() == "bearer"
    claims = jwt_parts(tokens["access_token"])[1]
    assert claims["sub"] == issuer.user.name and claims["aud"] == ["sshd", "su"] and claims["iss"] == issuer.url


def test_jose_remote_jwks_verifies_an_access_token(issuer):
    meta = issuer.net.request("GET", "/.well-known/openid-configuration").json
    tok = issuer.net.login(issuer.user.name, issuer.user.password).json["access_token"]
    p = node(issuer, "verify", meta["jwks_uri"], meta["issuer"], "sshd", tok)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, (out, err)
    v = json.loads(out)
    assert v["payload"]["sub"] == issuer.user.name and v["protectedHeader"]["typ"] == "at+jwt"
    assert v["protectedHeader"]["alg"] in meta["id_token_signing_alg_values_supported"]
    # controls: the wrong audience, and a token signed by another tokend's key, are refused
    p = node(issuer, "verify", meta["jwks_uri"], meta["issuer"], "sudo", tok)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 1 and "ERR_JWT_CLAIM_VALIDATION_FAILED" in out, out
    h, c, s = tok.split(".")
    forged = "%s.%s.%s" % (h, c, ("A" if s[0] != "A" else "B") + s[1:])
    p = node(issuer, "verify", meta["jwks_uri"], meta["issuer"], "sshd", forged)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 1 and "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" in out, out


def test_api_explorer_try_it_out(issuer, browser):
    r = issuer.net.request("GET", "/api/docs")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html"), r
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    browser.get(issuer.url + "/api/docs")
    op = WebDriverWait(browser, 30).until(EC.presence_of_element_located((By.ID, "operations-keys-getJwks")))
    assert "tokend" in browser.title
    op.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    WebDriverWait(browser, 20).until(EC.element_to_be_clickable((By.CSS_SELECTOR,
                                                                 "#operations-keys-getJwks .try-out__btn"))).click()
    WebDriverWait(browser, 20).until(EC.element_to_be_clickable((By.CSS_SELECTOR,
                                                                 "#operations-keys-getJwks .execute"))).click()
    status = WebDriverWait(browser, 30).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, "#operations-keys-getJwks .live-responses-table tbody .response-col_status")))
    assert status.text.strip().startswith("200"), status.text
    body = browser.find_element(By.CSS_SELECTOR, "#operations-keys-getJwks .live-responses-table tbody "
                                                 ".response-col_description")
    assert '"keys"' in body.text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", status)
    shot(browser, "api-explorer-jwks-try-it-out")
    # no CSP violation was reported while it ran
    logs = [e for e in browser.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert not logs, logs
