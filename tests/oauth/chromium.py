# SPDX-License-Identifier: MIT
"""Headless Chromium for the tests of tests/oauth (Debian chromium +
chromium-driver, driven by python3-selenium): start(profile_dir, *args)
gives a webdriver (skips when the browser is not installed); shot(driver,
name) saves a screenshot to tests/oauth/screenshots/NAME.png in the build tree."""

import os
import shutil

import pytest

from tdharness import TOP_BUILDDIR

webdriver = pytest.importorskip("selenium.webdriver", reason="python3-selenium is not installed")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = os.path.join(TOP_BUILDDIR, "tests", "oauth", "screenshots")


def start(profile_dir, *args):
    for prog in (CHROMIUM, CHROMEDRIVER):
        if not os.access(prog, os.X_OK):
            pytest.skip("%s is not installed (Debian: chromium, chromium-driver)" % prog)
    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1200,1000", "--user-data-dir=%s" % profile_dir, *args):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def shot(drv, name):
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, name + ".png")
    assert drv.save_screenshot(path) and os.path.getsize(path) > 1000, path
