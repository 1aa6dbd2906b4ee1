#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Growth attacks on one real tokend (a program, not a test: it prints
figures). Each attack runs for a fixed time as ONE throwaway unprivileged
user (root is needed to make it) against a fresh tokend with the default
configuration, then prints the rows and database bytes it added and the
growth per hour that rate would cause if it went on:

  peer-flood    N processes POST /api/auth/token (peer login: a new device
                each) as fast as tokend answers.
  peer-cycle    the same, but each new device is logged out at once (the
                way around a per-user device cap that counts live devices).

Bytes are the bytes in use in every table and index page (SQLite's dbstat:
pgsize - unused), read after a WAL checkpoint, so they count rows, not
whole pages, and do not depend on when SQLite checkpoints.
The per-hour figure is measured over the second half of the run (after any
cap has been reached), i.e. the steady state, not the first burst.

Usage: TOP_BUILDDIR=build tests/bench/growth-attack.py [--seconds 20]
       [--procs 4] [--attack peer-flood,peer-cycle] [--config TEXT]
(TOP_BUILDDIR may point at another build, e.g. main's, to compare.)
"""

import argparse
import multiprocessing
import os
import pwd
import sqlite3
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import tdharness  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "soak"))
from soak import Conn, call  # noqa: E402 (keep-alive HTTP over the socket)

TABLES = ("devices", "refresh_tokens", "audit")


def attacker(sock, uid, gid, deadline, cycle, out):
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    conn = Conn(sock)
    counts = {}
    while time.monotonic() < deadline:
        st, body = call(conn, "POST", "/api/auth/token", {})
        counts[st] = counts.get(st, 0) + 1
        if st == 200 and cycle:
            call(conn, "POST", "/api/auth/logout", None, body["access_token"])
        elif st == 429:
            # honour nothing: an attacker retries at once (the limiter must hold anyway)
            pass
    out.put(counts)


def snapshot(db):
    c = sqlite3.connect(db, timeout=30)
    try:
        c.execute("PRAGMA wal_checkpoint(PASSIVE)")
        rows = {t: c.execute("SELECT count(*) FROM %s" % t).fetchone()[0] for t in TABLES}
        # bytes in use in every b-tree page (tables and indexes), not whole pages
        used = c.execute("SELECT sum(pgsize - unused) FROM dbstat").fetchone()[0]
        return rows, used
    finally:
        c.close()


def run_attack(name, seconds, procs, config):
    user = tdharness.SystemUser("tdgrow_")
    d = tdharness.Tokend(config)
    try:
        d.start()
        pw = pwd.getpwnam(user.name)
        rows0, bytes0 = snapshot(d.db_path)
        out = multiprocessing.Queue()
        start = time.monotonic()
        deadline = start + seconds
        ps = [multiprocessing.Process(target=attacker, args=(d.socket, pw.pw_uid, pw.pw_gid, deadline,
                                                             name == "peer-cycle", out)) for _ in range(procs)]
        for p in ps:
            p.start()
        time.sleep(seconds / 2)
        rows_mid, bytes_mid = snapshot(d.db_path)
        t_mid = time.monotonic()
        counts = {}
        for _ in ps:
            for k, v in out.get().items():
                counts[k] = counts.get(k, 0) + v
        for p in ps:
            p.join()
        t_end = time.monotonic()
        rows1, bytes1 = snapshot(d.db_path)
        # a user who is not the attacker still enrols (the limits are per user)
        control = d.api.issue_token().status
    finally:
        d.stop()
        d.close()
        user.close()

    added = {t: rows1[t] - rows0[t] for t in TABLES}
    half = t_end - t_mid
    per_hour_bytes = (bytes1 - bytes_mid) * 3600 / half if half > 0 else 0
    per_hour_rows = {t: int((rows1[t] - rows_mid[t]) * 3600 / half) for t in TABLES}
    print("%s: %d s, %d processes as one uid; answers %s" % (
        name, seconds, procs, ", ".join("%s×%d" % (k, v) for k, v in sorted(counts.items()))))
    print("  rows added: %s; bytes added: %d (%.1f B/device)" % (
        ", ".join("%s %d" % kv for kv in added.items()), bytes1 - bytes0,
        (bytes1 - bytes0) / added["devices"] if added["devices"] > 0 else 0))
    print("  steady state (second half, %.1f s): %s rows/h, %.1f MiB/h, %.2f GiB/day" % (
        half, ", ".join("%s %d" % kv for kv in per_hour_rows.items()), per_hour_bytes / 2**20,
        per_hour_bytes * 24 / 2**30))
    print("  control: root's own peer login afterwards answered %d" % control)
    return per_hour_bytes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--attack", default="peer-flood,peer-cycle")
    ap.add_argument("--config", default="", help="tokend.conf text (default: the built-in defaults)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (to make a throwaway user)", file=sys.stderr)
        return 77
    print("tokend: %s" % tdharness.find_binary("tokend"))
    for name in a.attack.split(","):
        run_attack(name, a.seconds, a.procs, a.config.replace("\\n", "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
