# SPDX-License-Identifier: MIT
"""Install a test-only npm project (package.json + package-lock.json, e.g.
tests/interop/, tests/daemon/openapi-validate/) into the build tree with
`npm ci`, once per package-lock.json (srcdir may be read-only, e.g. make
distcheck). Used by tests/interop/test_interop.py and
tests/daemon/test_openapi.py; skips when node/npm or the registry are
unavailable (which a root scripts/check run reports as a failure: neither
skip is on tests/skip-allowlist)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def install(src: Path, dest: Path, files, probe: str) -> Path:
    """Copy src/package.json, src/package-lock.json and src/FILES to dest and
    `npm ci` there unless dest/node_modules/PROBE/package.json exists from the
    same lock file. Returns dest."""
    for prog in ("node", "npm"):
        if not shutil.which(prog):
            pytest.skip(f"{prog} not installed: the npm tests of {src.name} cannot run")
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json", *files):
        s, d = src / name, dest / name
        if not d.exists() or not os.path.samefile(s, d):
            shutil.copyfile(s, d)
    marker = dest / ".installed-lock.json"
    lock = (src / "package-lock.json").read_bytes()
    if (dest / "node_modules" / probe / "package.json").exists() and marker.exists() \
            and marker.read_bytes() == lock:
        return dest
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false"}
    try:
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=dest, env=env, capture_output=True,
                           text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("npm ci timed out (npm registry unreachable?)")
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines() or ["?"]
        why = next((line for line in lines if " code " in line or "ERR" in line), lines[0])
        pytest.skip(f"npm ci failed (no npm registry?): {why}")
    marker.write_bytes(lock)
    return dest
