#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Soak: a mixed load on one real tokend for a long time (default 10 min),
then a report: error count (must be 0), tokend's RSS at start/end/peak, and
per-minute throughput and p50/p99 latency. A program, not a test: it prints
figures and exits 1 when an answer was wrong or the daemon died.

Mix per client process (keep-alive connections): 85% verify of one of its
own live tokens, 5% peer issue (new device), 5% refresh with rotation, 3%
revoke of one of its devices (its tokens must then verify 401), 2% password
login through pam_unix for a throwaway user (root only; else peer issue).

Usage: TOP_BUILDDIR=build tests/soak/soak.py [--duration SECONDS] [--clients N]
"""

import argparse
import http.client
import json
import multiprocessing
import os
import random
import secrets
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import tdharness  # noqa: E402


class Conn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(conn, method, path, body=None, bearer=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if bearer:
        headers["Authorization"] = "Bearer " + bearer
    for attempt in (0, 1):  # a keep-alive connection the server closed: reconnect once
        try:
            conn.request(method, path, json.dumps(body) if body is not None else None, headers)
            r = conn.getresponse()
            data = r.read()
            return r.status, (json.loads(data) if data else None)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            conn.close()
            if attempt:
                raise


def client(idx, sock, deadline, login, out):
    rng = random.Random(idx)
    conn = Conn(sock)
    devices = []   # [device_id, refresh_token, [access tokens]]
    stats = {}     # minute -> {"n": int, "err": int, "lat": [ms]}
    errors = []
    t0 = time.time()

    def record(kind, start, ok, what=""):
        m = int((time.time() - t0) // 60)
        s = stats.setdefault(m, {"n": 0, "err": 0, "lat": []})
        s["n"] += 1
        s["lat"].append((time.perf_counter() - start) * 1000)
        if not ok:
            s["err"] += 1
            if len(errors) < 20:
                errors.append("%s: %s" % (kind, what))

    def issue():
        st = time.perf_counter()
        if login and rng.random() < 0.3:
            code, j = call(conn, "POST", "/api/auth/login", {"username": login[0], "password": login[1]})
            kind = "login"
        else:
            code, j = call(conn, "POST", "/api/auth/token", {})
            kind = "issue"
        record(kind, st, code == 200, "%s %s" % (code, j))
        if code == 200:
            devices.append([j["device_id"], j["refresh_token"], [j["access_token"]]])

    while time.time() < deadline:
        x = rng.random()
        try:
            if not devices or x < 0.05:
                issue()
            elif x < 0.90:
                dev = rng.choice(devices)
                tok = rng.choice(dev[2])
                st = time.perf_counter()
                code, j = call(conn, "POST", "/api/auth/verify", {"token": tok})
                record("verify", st, code == 200 and j.get("active") is True, "%s %s" % (code, j))
            elif x < 0.95:
                dev = rng.choice(devices)
                st = time.perf_counter()
                code, j = call(conn, "POST", "/api/auth/refresh", {"refresh_token": dev[1], "device_id": dev[0]})
                record("refresh", st, code == 200, "%s %s" % (code, j))
                if code == 200:
                    dev[1] = j["refresh_token"]
                    dev[2] = (dev[2] + [j["access_token"]])[-5:]
            elif x < 0.98:
                dev = devices.pop(rng.randrange(len(devices)))
                st = time.perf_counter()
                code, _ = call(conn, "DELETE", "/api/devices/" + dev[0])
                record("revoke", st, code == 204, str(code))
                st = time.perf_counter()
                code, j = call(conn, "POST", "/api/auth/verify", {"token": dev[2][-1]})
                record("verify-revoked", st, code == 401 and j.get("error") == "token_revoked", "%s %s" % (code, j))
            else:
                issue()
            if len(devices) > 50:  # keep the working set bounded
                devices.pop(0)
        except Exception as e:  # noqa: BLE001 - every failure is counted and reported
            record("exception", time.perf_counter(), False, repr(e))
            conn.close()
            time.sleep(0.1)
    out.put((stats, errors))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=600)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()

    login, user, svc = None, None, None
    if os.geteuid() == 0:
        pw = "Soak-" + secrets.token_urlsafe(9)
        user = tdharness.SystemUser("tdsoak_", password=pw)
        svc = tdharness.PamService("auth required pam_unix.so\naccount required pam_unix.so\n")
        login = (user.name, pw)
    # a long mixed load enrols far more devices than a user may keep: no cap
    conf = "[Login]\nMaxFailures=1000000\nMaxDevicesPerUser=1000000\nPeerLoginRate=1000000\n" + ("PAMService=%s\n" % svc.name if svc else "")
    d = tdharness.Tokend(conf, verbose=False)
    try:
        d.start()
        pid = d.proc.pid
        call(Conn(d.socket), "GET", "/.well-known/jwks.json")
        rss = [(0, rss_kib(pid))]
        q = multiprocessing.Queue()
        deadline = time.time() + args.duration
        procs = [multiprocessing.Process(target=client, args=(i, d.socket, deadline, login, q))
                 for i in range(args.clients)]
        start = time.time()
        for p in procs:
            p.start()
        while time.time() < deadline:
            time.sleep(min(10, max(0.1, deadline - time.time())))
            if not d.running():
                print("tokend died:\n" + d.log()[-3000:])
                return 1
            rss.append((int(time.time() - start), rss_kib(pid)))
        results = [q.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
        alive = d.running()
    finally:
        d.stop()
        d.close()
        if svc:
            svc.close()
        if user:
            user.close()

    minutes = {}
    errors = []
    for stats, errs in results:
        errors += errs
        for m, s in stats.items():
            agg = minutes.setdefault(m, {"n": 0, "err": 0, "lat": []})
            agg["n"] += s["n"]
            agg["err"] += s["err"]
            agg["lat"] += s["lat"]
    total = sum(s["n"] for s in minutes.values())
    nerr = sum(s["err"] for s in minutes.values())
    print("soak: %d s, %d clients, %s" % (args.duration, args.clients,
                                          "with pam_unix logins" if login else "no logins (not root)"))
    print("%-7s %9s %7s %9s %9s %7s" % ("minute", "requests", "req/s", "p50 ms", "p99 ms", "errors"))
    for m in sorted(minutes):
        s = minutes[m]
        span = min(60, args.duration - 60 * m) or 60
        print("%-7d %9d %7.0f %9.2f %9.2f %7d" % (m, s["n"], s["n"] / span, pct(s["lat"], 0.5),
                                                 pct(s["lat"], 0.99), s["err"]))
    peak = max(r for _, r in rss)
    print("tokend RSS: start %d KiB, after 1 min %d KiB, end %d KiB, peak %d KiB" % (
        rss[0][1], next((r for t, r in rss if t >= 60), rss[-1][1]), rss[-1][1], peak))
    print("total %d requests, %d errors, daemon %s" % (total, nerr, "alive" if alive else "DEAD"))
    for e in errors[:20]:
        print("  error:", e)
    return 0 if nerr == 0 and alive and total > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
