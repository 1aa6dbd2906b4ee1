#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Load run: socket (HTTP) and D-Bus clients against one tokend at once, to
show that neither front end starves the other. Not part of `make check`.

Starts a private dbus-daemon and a tokend on it (like tests/bus), then runs
three phases with client processes that loop over Verify (90 %) and
IssueToken (10 %): socket clients alone, bus clients alone, then both
together. Prints per-front-end throughput and latency percentiles. Each
client keeps one connection (HTTP keep-alive; one bus connection) unless
--new-connections.

  TOP_BUILDDIR=/path/to/build tests/bus/bench-bus-mix.py [--seconds 10]
      [--solo-seconds 3] [--socket-clients 2] [--bus-clients 2]
      [--new-connections] [--json]
"""

import argparse
import json
import multiprocessing as mp
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tdbus import IFACE, NAME, PATH, BusDaemon, BusTokend  # noqa: E402
from tdharness import UnixHTTPConnection  # noqa: E402


def socket_worker(sock, token, seconds, new_connections, out):
    """HTTP/1.1 on one kept-alive connection (like the bus client's one
    connection), or a new connection per request (like pam_jwt)."""
    conn = None
    verify = json.dumps({"token": token})
    issue = json.dumps({"audience": ["sshd"]})
    lat, errors, i = [], 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        if conn is None or new_connections:
            conn = UnixHTTPConnection(sock, timeout=30)
        path, body = ("/api/auth/token", issue) if i % 10 == 9 else ("/api/auth/verify", verify)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            errors += r.status != 200
        except OSError:
            errors += 1
            conn = None
        if new_connections and conn is not None:
            conn.close()
        lat.append(time.monotonic() - t0)
        i += 1
    out.put(("socket", lat, errors))


def bus_worker(address, token, seconds, out):
    import dbus
    import dbus.bus
    conn = dbus.bus.BusConnection(address)
    lat, errors, i = [], 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            if i % 10 == 9:
                conn.call_blocking(NAME, PATH, IFACE, "IssueToken", "sas", ("", ["sshd"]), timeout=30)
            else:
                conn.call_blocking(NAME, PATH, IFACE, "Verify", "sss", (token, "", ""), timeout=30)
        except dbus.exceptions.DBusException:
            errors += 1
        lat.append(time.monotonic() - t0)
        i += 1
    out.put(("bus", lat, errors))


def pct(sorted_lat, p):
    return sorted_lat[min(len(sorted_lat) - 1, int(p / 100.0 * len(sorted_lat)))] * 1000


def phase(name, d, token, seconds, n_socket, n_bus, new_connections):
    out = mp.Queue()
    procs = [mp.Process(target=socket_worker, args=(d.socket, token, seconds, new_connections, out))
             for _ in range(n_socket)]
    procs += [mp.Process(target=bus_worker, args=(d.bus_address, token, seconds, out)) for _ in range(n_bus)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    rows = []
    for front in ("socket", "bus"):
        lat = sorted(x for f, ls, _ in results if f == front for x in ls)
        if not lat:
            continue
        errors = sum(e for f, _, e in results if f == front)
        rows.append({"phase": name, "front": front, "clients": n_socket if front == "socket" else n_bus,
                     "ops": len(lat), "ops_per_s": len(lat) / seconds, "p50_ms": pct(lat, 50),
                     "p99_ms": pct(lat, 99), "max_ms": lat[-1] * 1000, "errors": errors})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--solo-seconds", type=float, default=3)
    ap.add_argument("--socket-clients", type=int, default=2)
    ap.add_argument("--bus-clients", type=int, default=2)
    ap.add_argument("--new-connections", action="store_true",
                    help="socket clients connect anew for every request (default: keep-alive)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    a = ap.parse_args()

    bus = BusDaemon()
    d = BusTokend(bus.address, "[Limits]\nMaxConnections=4096\n[Login]\nMaxDevicesPerUser=1000000\n")  # it enrols many
    try:
        d.start()
        token = d.api.issue_token().json["access_token"]
        nc = a.new_connections
        rows = phase("socket alone", d, token, a.solo_seconds, a.socket_clients, 0, nc)
        rows += phase("bus alone", d, token, a.solo_seconds, 0, a.bus_clients, nc)
        rows += phase("mixed", d, token, a.seconds, a.socket_clients, a.bus_clients, nc)
    finally:
        d.close()
        bus.close()
    if a.json:
        print(json.dumps(rows, indent=1))
        return
    print("%-13s %-6s %7s %8s %9s %8s %8s %8s %6s" % ("phase", "front", "clients", "ops", "ops/s", "p50 ms",
                                                     "p99 ms", "max ms", "errors"))
    for r in rows:
        print("%-13s %-6s %7d %8d %9.0f %8.2f %8.2f %8.1f %6d" % (r["phase"], r["front"], r["clients"], r["ops"],
                                                                 r["ops_per_s"], r["p50_ms"], r["p99_ms"],
                                                                 r["max_ms"], r["errors"]))


if __name__ == "__main__":
    main()
