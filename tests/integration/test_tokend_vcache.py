# SPDX-License-Identifier: MIT
"""tokend's verified-token and user caches (daemon/tokend-vcache.h,
daemon/tokend-usercache.h) never keep a token alive: a token verified
twice (so the second answer came from the cache) is refused on the very
next verify once its device is revoked (DELETE, logout, refresh-token
reuse), once its jti alone is revoked (/oauth2/revoke), once it expires, once its key is retired by a reload, and once its
user is removed from the passwd database; the checks the cache does not
replace (service, user) still apply to a cached token. Each case has a
control: another token, still cached, still verifies."""

import os
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from tdharness import NO_STEP_UP, need_root, system_user, tokend_factory  # noqa: E402,F401 (fixtures)


def ok(r):
    assert r.status == 200, r
    return r.json


def refused(r, error):
    assert r.status == 401 and r.error == error, r


def cached(d, *toks, **kw):
    """Verify each of toks twice: the second answer is the cache's. (After
    the last enrolment: a new device of the user drops the user's cached
    tokens, since the enrolment may have deleted dead devices.)"""
    for tok in toks:
        for _ in range(2):
            ok(d.api.verify(tok["access_token"], **kw))
    return toks[0] if len(toks) == 1 else toks


def test_device_revocation(tokend_factory):  # noqa: F811
    d = tokend_factory()
    tok, keep = cached(d, ok(d.api.issue_token()), ok(d.api.issue_token()))
    assert d.api.delete_device(tok["device_id"]).status == 204
    refused(d.api.verify(tok["access_token"]), "token_revoked")
    ok(d.api.verify(keep["access_token"]))  # control: another device, cached too


def test_logout_revokes_the_jti_and_the_device(tokend_factory):  # noqa: F811
    d = tokend_factory()
    first, keep = ok(d.api.issue_token()), ok(d.api.issue_token())
    second = ok(d.api.refresh(first["refresh_token"], first["device_id"]))  # same device
    cached(d, first, second, keep)
    assert d.api.logout(second["access_token"]).status == 204
    refused(d.api.verify(second["access_token"]), "token_revoked")
    refused(d.api.verify(first["access_token"]), "token_revoked")
    ok(d.api.verify(keep["access_token"]))


def test_revoking_one_jti(tokend_factory):  # noqa: F811
    d = tokend_factory()
    first = ok(d.api.issue_token())
    second = ok(d.api.refresh(first["refresh_token"], first["device_id"]))  # same device, another jti
    cached(d, first, second)
    body = urllib.parse.urlencode(dict(token=first["access_token"], token_type_hint="access_token"))
    r = d.api.request("POST", "/oauth2/revoke", body, content_type="application/x-www-form-urlencoded")
    assert r.status == 200, r
    refused(d.api.verify(first["access_token"]), "token_revoked")
    ok(d.api.verify(second["access_token"]))  # control: its device lives on


def test_refresh_token_reuse_revokes_at_once(tokend_factory):  # noqa: F811
    d = tokend_factory()
    tok, keep = ok(d.api.issue_token()), ok(d.api.issue_token())
    new = ok(d.api.refresh(tok["refresh_token"], tok["device_id"]))
    cached(d, tok, new, keep)
    refused(d.api.refresh(tok["refresh_token"], tok["device_id"]), "token_revoked")  # replay: theft
    refused(d.api.verify(new["access_token"]), "token_revoked")
    refused(d.api.verify(tok["access_token"]), "token_revoked")
    ok(d.api.verify(keep["access_token"]))


def test_the_other_checks_still_apply_to_a_cached_token(tokend_factory):  # noqa: F811
    d = tokend_factory(NO_STEP_UP)
    tok = cached(d, ok(d.api.issue_token(audience=["sshd"])), service="sshd")
    r = d.api.verify(tok["access_token"], service="sudo")
    assert r.status == 401 and r.error == "invalid_token" and "sudo" in r.message, r
    refused(d.api.verify(tok["access_token"], user="root" if os.geteuid() else "nobody"), "invalid_token")
    ok(d.api.verify(tok["access_token"], service="sshd"))  # control


def test_a_cached_token_expires(tokend_factory):  # noqa: F811
    d = tokend_factory("[Token]\nClockSkew=0\n")
    # 3 s: time enough to verify it twice on a loaded machine under ASan (1 s was not, in CI)
    keep = ok(d.api.issue_token())
    tok = cached(d, ok(d.api.issue_token(ttl=3)))
    cached(d, keep)
    # wait for the event (its expiry), not for a time: at most exp + 1 s of
    # cached answers would be a bug the deadline then shows
    deadline = time.monotonic() + 30
    while d.api.verify(tok["access_token"]).status == 200:
        assert time.monotonic() < deadline, "a 3-second token still verifies"
        time.sleep(0.05)
    refused(d.api.verify(tok["access_token"]), "token_expired")
    ok(d.api.verify(keep["access_token"]))


def test_a_retired_key_fails_its_cached_tokens(tokend_factory):  # noqa: F811
    d = tokend_factory()
    tok = cached(d, ok(d.api.issue_token()))
    (old,) = [os.path.join(d.keys_dir, n) for n in os.listdir(d.keys_dir) if n.endswith(".pem")]
    new = os.path.join(d.keys_dir, "next.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", new], check=True, capture_output=True)
    os.chmod(new, 0o600)
    os.unlink(old)
    assert "reloaded:" in d.reload()
    refused(d.api.verify(tok["access_token"]), "invalid_token")
    cached(d, ok(d.api.issue_token()))  # control: the new key's tokens verify


USER_CACHE_LIFETIME = 5  # seconds, daemon/tokend-usercache.h


def test_a_removed_user_is_refused_within_the_user_cache_lifetime(system_user, tokend_factory):  # noqa: F811
    need_root("create and remove a user")
    d = tokend_factory()
    user, other = system_user(), system_user()
    tok, keep = cached(d, ok(d.api.issue_token(user=user.name)), ok(d.api.issue_token(user=other.name)))
    # userdel: /etc/passwd is replaced; the user cache's inotify watcher
    # drops everything as soon as it wakes up (and at the latest the entry
    # expires after USER_CACHE_LIFETIME). Wait for the refusal, giving up
    # well past the lifetime: a user still accepted then is the failure.
    removed = time.monotonic()
    user.close()
    while True:
        r = d.api.verify(tok["access_token"])
        if r.status != 200 or time.monotonic() - removed > USER_CACHE_LIFETIME + 10:
            break
        time.sleep(0.05)
    refused(r, "invalid_token")
    ok(d.api.verify(keep["access_token"]))
