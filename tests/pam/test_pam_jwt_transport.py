# SPDX-License-Identifier: MIT
"""pam_jwt against a daemon that is down, slow, silent or speaking garbage:
every such case is PAM_AUTHINFO_UNAVAIL (never success, never ignore), and
the module gives up on its own: its log line names the reason (timed out,
refused, unusable answer) and a silent fake sees it hang up. No wall-clock
assertions: a module that never gave up is killed by run_app's timeout(1)
and fails there. Each hostile answer has a control."""

import json
import os
import socket

import pytest

import pamtest
from faketokend import answer, drip, hang, http_response, raw, slow
from pamtest import run_app



def asked_log(r, path):
    """pam_jwt's one error line about its request to tokend at path."""
    lines = [x for x in r.logs if "cannot ask tokend at %s: " % path in x or
             "unusable answer from tokend at %s " % path in x]
    assert len(lines) == 1, r.logs
    return lines[0]


def stack(services, path, extra=""):
    return services.jwt("sshd", ("socket=%s %s" % (path, extra)).strip(), account=False, session=False)


def test_socket_absent(services, sockdir):
    svc = stack(services, os.path.join(sockdir, "nothing.sock"), "timeout=1000")
    r = run_app(services, svc, "alice", answers=["a.b.c"])
    assert r.code() == "PAM_AUTHINFO_UNAVAIL", r
    assert asked_log(r, os.path.join(sockdir, "nothing.sock")).endswith(": No such file or directory")
    assert r.fail_delays == []


def test_socket_not_listening(services, sockdir):
    path = os.path.join(sockdir, "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)  # bound, never listening: ECONNREFUSED
    try:
        r = run_app(services, stack(services, path, "timeout=1000"), "alice", answers=["a.b.c"])
    finally:
        s.close()
    assert r.code() == "PAM_AUTHINFO_UNAVAIL", r
    assert asked_log(r, path).endswith(": Connection refused")


@pytest.mark.parametrize("timeout_ms", [1000, None])
def test_daemon_never_answers(services, fake, timeout_ms):
    svc = stack(services, fake.path, "timeout=%d" % timeout_ms if timeout_ms else "")
    fake.then(hang())
    r = run_app(services, svc, "alice", answers=[fake.issue("alice")])
    assert r.code() == "PAM_AUTHINFO_UNAVAIL", r
    # the module timed out and hung up; the fake would have waited 60 s
    assert asked_log(r, fake.path).endswith(": Connection timed out")
    assert fake.hung_up.wait(10), "pam_jwt never closed its connection"
    assert len(fake.requests) == 1


def test_slow_daemon(services, fake):
    svc = stack(services, fake.path, "timeout=2000")
    token = fake.issue("alice")
    # control: slower than usual but within the timeout
    fake.then(slow(0.3))
    assert run_app(services, svc, "alice", answers=[token]).code() == "PAM_SUCCESS"
    assert not fake.hung_up.is_set()
    # too slow: the answer would come long after timeout=2000
    fake.then(slow(20))
    r = run_app(services, svc, "alice", answers=[token])
    assert r.code() == "PAM_AUTHINFO_UNAVAIL", r
    assert asked_log(r, fake.path).endswith(": Connection timed out")


def test_answer_in_small_pieces(services, fake):
    """The reader copes with an answer that arrives a few bytes at a time."""
    svc = stack(services, fake.path)
    token = fake.issue("alice")
    fake.then(drip(http_response(200, dict(fake.claims(token), active=True))))
    assert run_app(services, svc, "alice", answers=[token]).code() == "PAM_SUCCESS"


def _valid_body(fake, token, **changes):
    body = dict(fake.claims(token), active=True)
    body.update(changes)
    return body


def _valid_json(fake, token):
    return json.dumps(_valid_body(fake, token)).encode()


def answer_raw_json(body):
    return raw(http_response(200, body))


HOSTILE = {
    "not_http": lambda f, t: raw(b"hello there\r\n\r\n"),
    "closed_silently": lambda f, t: raw(b""),
    "truncated_body": lambda f, t: raw(http_response(200, _valid_body(f, t))[:-5]),
    "no_content_length": lambda f, t: raw(http_response(200, _valid_body(f, t),
                                                        headers=[("Content-Type", "application/json")])),
    "two_lengths": lambda f, t: raw(http_response(200, "{}", headers=[("Content-Length", "2"),
                                                                     ("Content-Length", "2")])),
    "chunked": lambda f, t: raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
    "body_over_16k": lambda f, t: raw(http_response(200, _valid_body(f, t, pad="x" * 17000))),
    "head_over_8k": lambda f, t: raw(http_response(200, _valid_body(f, t),
                                                   headers=[("X-Pad", "y" * 9000)] +
                                                   [("Content-Length", str(len(_valid_json(f, t))))])),
    "trailing_bytes": lambda f, t: raw(http_response(200, _valid_body(f, t)) + b"HTTP/1.1 200 OK\r\n"),
    "bad_json": lambda f, t: answer_raw_json(b'{"active":true,'),
    "duplicate_keys": lambda f, t: answer_raw_json(_valid_json(f, t)[:-1] + b',"active":true}'),
    "active_string": lambda f, t: answer(200, _valid_body(f, t, active="true")),
    "no_exp": lambda f, t: answer(200, {k: v for k, v in _valid_body(f, t).items() if k != "exp"}),
    "json_array": lambda f, t: answer(200, [_valid_body(f, t)]),
    "status_500": lambda f, t: answer(500, {"error": "internal", "message": "boom"}),
    "status_503": lambda f, t: answer(503, {"error": "unavailable", "message": "later"}),
    "status_403_valid_body": lambda f, t: answer(403, _valid_body(f, t)),
    "status_201_valid_body": lambda f, t: answer(201, _valid_body(f, t)),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_answers(services, fake, case):
    svc = stack(services, fake.path, "timeout=2000")
    token = fake.issue("alice")
    fake.then(HOSTILE[case](fake, token))
    r = run_app(services, svc, "alice", answers=[token])
    assert r.code() == "PAM_AUTHINFO_UNAVAIL", r
    assert r.fail_delays == []
    # refused for what came back, not by waiting out timeout=2000
    assert "timed out" not in asked_log(r, fake.path), r.logs
    # control: the same token, answered properly
    assert run_app(services, svc, "alice", answers=[token]).code() == "PAM_SUCCESS"


def test_unavailable_is_not_ignored(services, sockdir):
    """With default=ignore the stack falls through; with required it fails:
    in neither case does a dead daemon turn into success on its own."""
    path = os.path.join(sockdir, "nothing.sock")
    svc = services.write("sshd", "auth [success=done default=ignore] %s socket=%s\n"
                                 "auth required pam_deny.so\n" % (pamtest.MODULE, path))
    r = run_app(services, svc, "alice", answers=["a.b.c"])
    assert r.code() == "PAM_AUTH_ERR", r
