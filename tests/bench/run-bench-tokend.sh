#!/bin/bash
# Start a tokend on a temporary state dir, run tests/bench/bench-tokend
# against it, stop it; nothing is left running and the directory is removed.
# Run from the build directory (or set BUILDDIR):
#   tests/bench/run-bench-tokend.sh [--profile] [bench-tokend options...]
# --profile: after the normal run, profile the daemon under verify load
# (perf record -g, software cpu-clock event) and print where its time goes.
# Environment: BUILDDIR (default .), STATEDIR_BASE (default /var/tmp: a real
# disk, so commits pay a real fsync), PROFILE_SECONDS (default 6).
set -euo pipefail

builddir=${BUILDDIR:-.}
tokend=$builddir/tokend
bench=$builddir/tests/bench/bench-tokend
profile=no
if [[ ${1:-} == --profile ]]; then
        profile=yes
        shift
fi
for f in "$tokend" "$bench"; do
        [[ -x $f ]] || { echo "run-bench-tokend: $f not built (run make, or set BUILDDIR)" >&2; exit 2; }
done

state=$(mktemp -d "${STATEDIR_BASE:-/var/tmp}/bench-tokend.XXXXXX")
pid=
cleanup() {
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
                kill -TERM "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        fi
        rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_tokend() {
        "$tokend" --state-dir "$state" --socket "$state/tokend.sock" --bus none >>"$state/tokend.log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do
                [[ -S $state/tokend.sock ]] && return 0
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

start_tokend
echo "== tokend $pid, state in $state ($(df --output=source,fstype "$state" | tail -1))"
"$bench" --socket "$state/tokend.sock" --pid "$pid" "$@"
stop_tokend

[[ $profile == yes ]] || exit 0
if ! command -v perf >/dev/null; then
        echo "run-bench-tokend: perf not installed (Debian: linux-perf); no profile" >&2
        exit 0
fi

# A fresh daemon, so the profile sees a database like the one above.
rm -rf "$state"/*
start_tokend
secs=${PROFILE_SECONDS:-6}
echo
echo "== profile: tokend $pid under verify load (8 clients), perf record -g for $secs s"
"$bench" --socket "$state/tokend.sock" --pid "$pid" --ops verify --clients 8 --seconds $((secs + 2)) \
        --pool 2000 | while IFS= read -r line; do
        printf '%s\n' "$line"
        if [[ $line == "token pool ready"* ]]; then
                # after the pool is issued: only verifies are sampled
                (sleep 1.5; perf record -q -e cpu-clock -F 999 --call-graph dwarf,8192 -p "$pid" \
                        -o "$state/perf.data" -- sleep "$secs" >/dev/null 2>&1) &
        fi
done
wait
stop_tokend

report() {
        timeout 300 perf report -i "$state/perf.data" --stdio --no-inline "$@" 2>/dev/null | grep -v '^#' | grep -v '^$'
}
echo
echo "-- self time by library"
report --no-children --sort dso | head -15
echo
echo "-- self time by function (top 40)"
report --no-children --sort dso,sym -g none | grep -v 0x0000 | head -40
echo
echo "-- inclusive time of tokend's own functions (top 45)"
report --children --sort sym -g none | grep -E '\] (td_|at_|jws_|jose_|store_|user_|http_|on_request|handle_|queue_|body_json|json_|log_|reader_|ratelimit|MHD_|sqlite3_(step|prepare|reset)|getpw|getgr|crypto_sign|__libc_start|start_thread)' | head -45
