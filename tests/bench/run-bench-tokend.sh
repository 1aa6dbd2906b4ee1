#!/bin/bash
# SPDX-License-Identifier: MIT
# Start a tokend on a temporary state dir, run tests/bench/bench-tokend
# against it (with --key-dir on the daemon's key directory, so the unique
# tokens are minted fresh), stop it; nothing is left running and the
# directory is removed.
# Run from the build directory (or set BUILDDIR):
#   tests/bench/run-bench-tokend.sh [--verifier] [--profile] [bench-tokend options...]
# --verifier: the daemon measured is a verifier ([Verifier] Issuer= over the
# Unix socket of a second tokend, the issuer, started first; AcceptUnscoped=
# yes, so the bench's "sshd" tokens count): the pool's tokens come from the
# issuer (bench-tokend --issuer-socket), the unique ones are minted with the
# issuer's key; only null, verify, vrepeat and vconnect make sense there.
# --profile: afterwards, profile a fresh daemon under unique-token verify,
# repeated-token verify and refresh load (8 clients each; see PROFILE_OPS):
# perf record -g -p PID for PROFILE_SECONDS while bench-tokend loads it (the
# recording starts once the bench printed its raw-verify line, or that its
# unique tokens are minted), then perf report --stdio --no-children (head -60), self time by library
# and inclusive time by function. With the default -g (frame pointers), call
# chains through tokend need a build with CFLAGS='-O2 -g
# -fno-omit-frame-pointer' and still break inside Debian's libraries;
# PROFILE_CALLGRAPH=dwarf unwinds everything (bigger perf.data).
# Without a hardware PMU (VMs) perf samples cpu-clock; kernel time then
# piles up on pvm_irq_enable/irq-enable points: read it as "in syscalls".
# Environment: BUILDDIR (default .), STATEDIR_BASE (default /var/tmp: a real
# disk, so commits pay a real fsync), TOKEND_BENCH_DATABASE ([Store]
# Database= for the daemon, e.g. a postgresql:// URI; default SQLite in the
# state dir), PROFILE_SECONDS (default 10),
# PROFILE_OPS (default "verify vrepeat refresh"; any of bench-tokend's --ops),
# PROFILE_CALLGRAPH (fp, the default, or dwarf), TOKEND_BENCH_EXTRA_DEVICES
# (before the bench, this many more devices of another user are written
# straight into the daemon's database, with sqlite3 or, for a postgresql://
# TOKEND_BENCH_DATABASE, with psql on that URI (then VACUUMed, ANALYZEd and
# CHECKPOINTed; both synced to disk before the bench starts), e.g. 1000000
# for the issue's "p99 flat from 1 k to 1 M devices"; the pool's devices
# come on top).
set -euo pipefail

builddir=${BUILDDIR:-.}
tokend=$builddir/tokend
bench=$builddir/tests/bench/bench-tokend
profile=no
verifier=no
if [[ ${1:-} == --verifier ]]; then
        verifier=yes
        shift
fi
if [[ ${1:-} == --profile ]]; then
        profile=yes
        shift
fi
for f in "$tokend" "$bench"; do
        [[ -x $f ]] || { echo "run-bench-tokend: $f not built (run make, or set BUILDDIR)" >&2; exit 2; }
done

state=$(mktemp -d "${STATEDIR_BASE:-/var/tmp}/bench-tokend.XXXXXX")
pid=
bench_pid=
issuer_pid=
# Only the processes this script started, by pid.
cleanup() {
        for p in "$bench_pid" "$pid" "$issuer_pid"; do
                if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
                        kill -TERM "$p" 2>/dev/null || true
                        wait "$p" 2>/dev/null || true
                fi
        done
        rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

issuer_url=https://bench-issuer.invalid
# --verifier: the issuer, in $state/issuer (the verifier is "the daemon").
start_issuer() {
        mkdir -p "$state/issuer"
        printf '[Token]\nIssuer=%s\n[Login]\nMaxDevicesPerUser=1000000\nPeerLoginRate=1000000\n' "$issuer_url" \
                >"$state/issuer/tokend.conf"
        "$tokend" --config "$state/issuer/tokend.conf" --state-dir "$state/issuer" --socket "$state/issuer/tokend.sock" \
                --bus none >>"$state/issuer/tokend.log" 2>&1 &
        issuer_pid=$!
        for _ in $(seq 100); do
                [[ -S $state/issuer/tokend.sock ]] && return 0
                sleep 0.1
        done
        echo "run-bench-tokend: the issuer did not start:" >&2
        cat "$state/issuer/tokend.log" >&2
        exit 1
}

start_tokend() {
        # the bench enrols thousands of devices as one uid: no device cap, no peer-login rate
        printf '[Login]\nMaxDevicesPerUser=1000000\nPeerLoginRate=1000000\n' >"$state/tokend.conf"
        if [[ $verifier == yes ]]; then
                [[ -n $issuer_pid ]] || start_issuer
                printf '[Verifier]\nIssuer=%s\nUnixSocket=%s\nAcceptUnscoped=yes\n' "$issuer_url" \
                        "$state/issuer/tokend.sock" >"$state/tokend.conf"
        fi
        # the store elsewhere, e.g. PostgreSQL: tests/with-postgresql sh -c \
        #   'TOKEND_BENCH_DATABASE=$TOKEND_TEST_DATABASE tests/bench/run-bench-tokend.sh ...'
        if [[ -n ${TOKEND_BENCH_DATABASE:-} ]]; then
                printf '[Store]\nDatabase=%s\n' "$TOKEND_BENCH_DATABASE" >>"$state/tokend.conf"
        fi
        "$tokend" --config "$state/tokend.conf" --state-dir "$state" --socket "$state/tokend.sock" --bus none \
                >>"$state/tokend.log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do
                # a verifier: also its first JWKS and feed answer
                [[ -S $state/tokend.sock && ($verifier == no || -s $state/verifier-feed.json) ]] && return 0
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
        done
        echo "run-bench-tokend: tokend did not start:" >&2
        cat "$state/tokend.log" >&2
        exit 1
}

stop_tokend() {
        kill -TERM "$pid"
        wait "$pid" || true
        pid=
}

echo "== uptime at start: $(uptime)"
start_tokend
if [[ ${TOKEND_BENCH_EXTRA_DEVICES:-0} -gt 0 ]]; then
        n=$TOKEND_BENCH_EXTRA_DEVICES
        [[ $n =~ ^[0-9]+$ ]] || { echo "run-bench-tokend: TOKEND_BENCH_EXTRA_DEVICES is a number" >&2; exit 2; }
        stop_tokend
        t0=$(date +%s)
        case ${TOKEND_BENCH_DATABASE:-} in
        "")
                command -v sqlite3 >/dev/null || { echo "run-bench-tokend: TOKEND_BENCH_EXTRA_DEVICES needs sqlite3" >&2; exit 2; }
                where=$state/tokend.db
                sqlite3 "$where" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $n)
                        INSERT INTO devices (id, user, uid, name, created, last_used) SELECT printf('dev_fill%09d', i),
                        'bench-filler', 65534, '', strftime('%s', 'now'), strftime('%s', 'now') FROM n;" >/dev/null
                ;;
        postgresql://* | postgres://*)
                command -v psql >/dev/null || { echo "run-bench-tokend: TOKEND_BENCH_EXTRA_DEVICES needs psql" >&2; exit 2; }
                where="the PostgreSQL database"
                psql "$TOKEND_BENCH_DATABASE" -XqAt -v ON_ERROR_STOP=1 \
                        -c "INSERT INTO devices (id, \"user\", uid, name, created, last_used)
                            SELECT 'dev_fill' || lpad(i::text, 9, '0'), 'bench-filler', 65534, '',
                                   extract(epoch FROM now())::bigint, extract(epoch FROM now())::bigint
                            FROM generate_series(1, $n) AS i" -c "VACUUM (ANALYZE) devices" >/dev/null
                # a superuser's (or pg_checkpoint's) right: without it the bench still runs
                psql "$TOKEND_BENCH_DATABASE" -XqAt -c "CHECKPOINT" >/dev/null 2>&1 ||
                        echo "run-bench-tokend: no CHECKPOINT (not allowed for this user); the checkpointer may run during the bench" >&2
                ;;
        *) echo "run-bench-tokend: TOKEND_BENCH_EXTRA_DEVICES: a database that is neither SQLite nor postgresql://" >&2; exit 2 ;;
        esac
        # written back before the measurement starts, not during it
        sync
        echo "== $n more devices written into $where in $(($(date +%s) - t0)) s"
        start_tokend
fi
echo "== tokend $pid, state in $state ($(df --output=source,fstype "$state" | tail -1))"
keys=$state/keys
issuer_opt=()
if [[ $verifier == yes ]]; then
        echo "== a verifier of the issuer tokend $issuer_pid ($state/issuer)"
        keys=$state/issuer/keys
        issuer_opt=(--issuer-socket "$state/issuer/tokend.sock")
fi
extra_opt=()
[[ ${TOKEND_BENCH_EXTRA_DEVICES:-0} -eq 0 ]] || extra_opt=(--extra-devices "$TOKEND_BENCH_EXTRA_DEVICES")
"$bench" --socket "$state/tokend.sock" --pid "$pid" --key-dir "$keys" "${issuer_opt[@]}" "${extra_opt[@]}" "$@"
stop_tokend
echo "== uptime at end: $(uptime)"

[[ $profile == yes ]] || exit 0
if ! command -v perf >/dev/null; then
        echo "run-bench-tokend: perf not installed (Debian: linux-perf); no profile" >&2
        exit 0
fi
secs=${PROFILE_SECONDS:-10}
case ${PROFILE_CALLGRAPH:-fp} in
fp) callgraph="-g -F 999" ;;
dwarf) callgraph="--call-graph dwarf,16384 -F 499" ;; # Debian's libraries have no frame pointers
*) echo "run-bench-tokend: PROFILE_CALLGRAPH is fp or dwarf" >&2; exit 2 ;;
esac

# Profile a fresh daemon under one kind of load: the bench runs one long
# measurement in the background; perf samples the daemon during its middle.
profile_op() {
        local op=$1
        local out=$state/bench-$op.out data=$state/perf-$op.data
        rm -rf "${state:?}"/tokend.* "$state"/keys "$state"/verifier-*
        start_tokend
        echo
        echo "== profile: tokend $pid under $op load (8 clients), perf record $callgraph -p $pid for $secs s"
        "$bench" --socket "$state/tokend.sock" --pid "$pid" --key-dir "$keys" "${issuer_opt[@]}" --ops "$op" --clients 8 --rounds 1 \
                --seconds $((secs + 4)) --pool 2000 >"$out" 2>&1 &
        bench_pid=$!
        # The raw verify measurement comes first, then (unique-token ops)
        # the minting; the load starts right after.
        local ready='raw Ed25519 verify:'
        [[ $op == verify || $op == vconnect ]] && ready='unique tokens minted'
        for _ in $(seq 1200); do
                grep -q "$ready" "$out" && break
                kill -0 "$bench_pid" 2>/dev/null || break
                sleep 0.1
        done
        sleep 1.5
        timeout $((secs + 60)) perf record $callgraph -p "$pid" -o "$data" -- sleep "$secs" \
                >"$state/perf-record.log" 2>&1 ||
                echo "run-bench-tokend: perf record failed: $(tail -3 "$state/perf-record.log")" >&2
        wait "$bench_pid" || echo "run-bench-tokend: bench-tokend failed" >&2
        bench_pid=
        grep -E "^1 +$op " "$out" || cat "$out"
        stop_tokend
        [[ -s $data ]] || return 0
        echo
        echo "-- perf report --stdio --no-children | head -60"
        timeout 300 perf report -i "$data" --stdio --no-children 2>/dev/null | head -60 || true
        echo
        echo "-- self time by library"
        timeout 300 perf report -i "$data" --stdio --no-children --no-inline -g none --sort dso 2>/dev/null |
                grep -v '^#' | grep -v '^$' | head -12 || true
        echo
        echo "-- inclusive time by function (top 50 named; complete with PROFILE_CALLGRAPH=dwarf)"
        timeout 300 perf report -i "$data" --stdio --children --no-inline -g none --sort sym 2>/dev/null |
                grep -v '^#' | grep -v '^$' | grep -v '\] 0x' | head -50 || true
}

for op in ${PROFILE_OPS:-verify vrepeat refresh}; do
        profile_op "$op"
done
