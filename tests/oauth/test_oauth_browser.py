# SPDX-License-Identifier: MIT
"""A real browser on the device approval page: headless Chromium (Debian
chromium + chromium-driver, driven by python3-selenium) opens /device,
enters the code, the user name and the password, approves — and the polling
client gets tokens; the denial path and a wrong password too. Screenshots
go to tests/oauth/screenshots/ in the build tree. The browser reaches
tokend's [Network] listener, plain HTTP on loopback (AllowPlainLoopback=yes,
PublicURL= that address), so the verification URIs in the answers are the
ones it opens, and the approver is a network caller (its client address)."""

import os
import sys
import time
import urllib.parse

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from tdharness import PamService, UNIX_STACK, jwt_parts, system_user, tokend_factory  # noqa: E402,F401
from tdnet import free_port, network_config  # noqa: E402

sys.path.insert(0, HERE)
import chromium  # noqa: E402  (skips without python3-selenium)
from chromium import shot  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
FORM = "application/x-www-form-urlencoded"


def form(c, path, params):
    return c.request("POST", path, urllib.parse.urlencode(params), content_type=FORM)


@pytest.fixture
def browser(tmp_path):
    drv = chromium.start(tmp_path / "profile")
    yield drv
    drv.quit()


class Site:
    def __init__(self, d, url):
        self.d, self.url = d, url
        self.c = d.client()


@pytest.fixture
def site(system_user, tokend_factory):  # noqa: F811
    """A tokend with a plain loopback listener as its issuer URL, and a user."""
    user = system_user("tdbr_", "Br0wser-pw-" + os.urandom(3).hex())
    svc = PamService(UNIX_STACK)
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    d = tokend_factory("[Login]\nPAMService=%s\nFailureDelay=0\n" % svc.name +
                       network_config("127.0.0.1:%d" % port, public_url=url, plain=True))
    yield Site(d, url), user
    svc.close()


def poll_until(c, code, want_status):
    deadline = time.monotonic() + 60
    while True:
        r = form(c, "/oauth2/token", dict(grant_type=GRANT, device_code=code, client_id="living-room-tv"))
        if r.status == want_status and (want_status == 200 or r.json["error"] not in ("authorization_pending",
                                                                                       "slow_down")):
            return r
        assert r.status == 400 and r.json["error"] in ("authorization_pending", "slow_down"), r
        assert time.monotonic() < deadline, "no answer but pending within 60 s"
        time.sleep(1)


def h1(drv):
    return WebDriverWait(drv, 20).until(EC.presence_of_element_located((By.TAG_NAME, "h1"))).text


def test_approve_in_the_browser(browser, site):
    st, user = site
    c, url = st.c, st.url
    a = form(c, "/oauth2/device_authorization", dict(client_id="living-room-tv", scope="sshd login",
                                                     device_name="TV <b>in</b> the living room")).json
    assert a["verification_uri_complete"].startswith(url + "/device?user_code=")
    browser.get(a["verification_uri_complete"])
    assert h1(browser) == "Approve a device"
    assert browser.find_element(By.ID, "code").text == a["user_code"]
    assert browser.find_element(By.ID, "client").text == "living-room-tv"
    # what the device sent is shown as text, never as markup
    assert browser.find_element(By.ID, "device_name").text == "TV <b>in</b> the living room"
    assert browser.find_element(By.ID, "audiences").text == "sshd login"
    assert not browser.find_elements(By.TAG_NAME, "script")
    shot(browser, "device-1-approval-page")
    # a wrong password first: the page says so and the code stays pending
    browser.find_element(By.ID, "username").send_keys(user.name)
    browser.find_element(By.ID, "password").send_keys("not-the-password")
    browser.find_element(By.ID, "approve").click()
    WebDriverWait(browser, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "p.error")))
    assert "wrong user name or password" in browser.find_element(By.CSS_SELECTOR, "p.error").text
    shot(browser, "device-2-wrong-password")
    r = form(c, "/oauth2/token", dict(grant_type=GRANT, device_code=a["device_code"], client_id="living-room-tv"))
    assert r.json["error"] == "authorization_pending", r
    browser.find_element(By.ID, "username").clear()
    browser.find_element(By.ID, "username").send_keys(user.name)
    browser.find_element(By.ID, "password").send_keys(user.password)
    browser.find_element(By.ID, "approve").click()
    WebDriverWait(browser, 20).until(EC.title_contains("Device approved"))
    shot(browser, "device-3-approved")
    t = poll_until(c, a["device_code"], 200).json
    claims = jwt_parts(t["access_token"])[1]
    assert claims["sub"] == user.name and claims["aud"] == ["sshd", "login"] and claims["iss"] == url
    assert c.verify(t["access_token"], user=user.name, service="sshd").status == 200


def test_deny_in_the_browser_after_typing_the_code(browser, site):
    st, user = site
    c, url = st.c, st.url
    a = form(c, "/oauth2/device_authorization", dict(client_id="living-room-tv")).json
    browser.get(a["verification_uri"])
    assert h1(browser) == "Approve a device"
    box = browser.find_element(By.ID, "user_code")
    box.send_keys(a["user_code"].lower())
    shot(browser, "device-4-enter-code")
    box.submit()
    WebDriverWait(browser, 20).until(EC.presence_of_element_located((By.ID, "deny")))
    assert browser.find_element(By.ID, "code").text == a["user_code"]
    browser.find_element(By.ID, "deny").click()
    WebDriverWait(browser, 20).until(EC.title_contains("Device denied"))
    shot(browser, "device-5-denied")
    r = poll_until(c, a["device_code"], 400)
    assert r.json["error"] == "access_denied", r


def test_an_unknown_code_in_the_browser(browser, site):
    st, user = site
    c, url = st.c, st.url
    browser.get(url + "/device?user_code=BCDF-GHJK")
    WebDriverWait(browser, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "p.error")))
    assert "unknown or has expired" in browser.find_element(By.CSS_SELECTOR, "p.error").text
    shot(browser, "device-6-unknown-code")
