#!/bin/bash
# SPDX-License-Identifier: MIT
# Refresh with rotation (durable) and verify through tokend on SQLite vs
# PostgreSQL, one issuer and two sharing one PostgreSQL database (issue 18):
# for each store and issuer count, fresh tokend(s) on temporary state dirs
# under STATEDIR_BASE (a real disk, so commits pay a real fsync), then
#   tests/bench/bench-tokend --ops refresh,verify --clients 1,8,64 --rounds 1
#   --seconds 3 [options given to this script, which override those]
# with every tokend's socket (client i uses the (i mod n)-th; the token pool
# and the refresh chains are set up through the first, so with two issuers
# half the chains rotate on the other one) and the first one's key
# directory (unique tokens for verify are minted with it; the second issuer
# verifies them through the public key the first published in the store).
# Two issuers only on PostgreSQL: an SQLite store is one host's file of one
# tokend. PostgreSQL is a throwaway server of tests/with-postgresql (run as
# nobody, Unix socket only, its directory under STATEDIR_BASE too; fsync and
# synchronous_commit as shipped, on), one fresh database per configuration.
# At the end: one table (store, issuers, clients, refresh/s, verify/s, the
# best of the rounds), the goal line of issue 18 (refresh >= 1,500/s with two
# issuers on PostgreSQL), and where the time goes for the two-issuer
# PostgreSQL refresh at WHERE_CLIENTS clients, in a separate run of
# bench-tokend --ops refresh on restarted tokends: CPU seconds per 1000
# refreshes in the tokends, in PostgreSQL (the postmaster and its children,
# bench-tokend --store-pid, in the measurement window), in the bench client,
# in the rest of the machine and idle (and the rate these CPUs would allow
# if tokend, PostgreSQL and the client had the machine to themselves);
# PostgreSQL's transactions committed (xact_commit, and the write
# transactions among them by their rows in tx_marks), WAL syncs (pg_stat_wal.wal_sync, with track_wal_io_timing on: the time
# spent in them) and WAL bytes per refresh and per commit, from psql before
# and after that run (the statistics are read after the tokends stopped, so
# their backends have flushed them; the deltas include the restarted
# tokends' start and the bench's setup, one device per client). Nothing is
# asserted: the figures are printed, measured side by side in one run.
# Run from the build directory (or set BUILDDIR), as root (PostgreSQL runs as
# nobody through runuser):
#   tests/bench/run-bench-store.sh [bench-tokend options...]
# Environment: BUILDDIR (default .), STATEDIR_BASE (default /var/tmp),
# STORES (default "sqlite postgresql"), ISSUERS (default "1 2"),
# WHERE_CLIENTS (default 64), WHERE_SECONDS (default 3).
set -euo pipefail

builddir=${BUILDDIR:-.}
here=$(cd "$(dirname "$0")" && pwd)
tokend=$builddir/tokend
bench=$builddir/tests/bench/bench-tokend
withpg=$here/../with-postgresql
base=${STATEDIR_BASE:-/var/tmp}
where_clients=${WHERE_CLIENTS:-64}
where_seconds=${WHERE_SECONDS:-3}
goal=1500
for f in "$tokend" "$bench"; do
        [[ -x $f ]] || { echo "run-bench-store: $f not built (run make, or set BUILDDIR)" >&2; exit 2; }
done

work=$(mktemp -d "$base/bench-store.XXXXXX")
pids=()    # the running tokends, by pid
pgsock=    # the PostgreSQL server's directory, once started
# Only what this script started, by pid; then the directories.
stop_tokends() {
        for p in "${pids[@]}"; do
                if kill -0 "$p" 2>/dev/null; then
                        kill -TERM "$p" 2>/dev/null || true
                        wait "$p" 2>/dev/null || true
                fi
        done
        pids=()
}
cleanup() {
        stop_tokends
        [[ -z $pgsock ]] || "$withpg" --stop "$pgsock"
        rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_tokend DIR [DATABASE]: a tokend on DIR (state, socket, log), its pid
# appended to pids once it logged "ready:" (its key is published by then).
start_tokend() {
        local d=$1 db=${2:-}
        mkdir -p "$d"
        # the bench enrols thousands of devices as one uid: no device cap, no peer-login rate
        printf '[Login]\nMaxDevicesPerUser=1000000\nPeerLoginRate=1000000\n' >"$d/tokend.conf"
        [[ -z $db ]] || printf '[Store]\nDatabase=%s\n' "$db" >>"$d/tokend.conf"
        "$tokend" --config "$d/tokend.conf" --state-dir "$d" --socket "$d/tokend.sock" --bus none \
                >>"$d/tokend.log" 2>&1 &
        local pid=$!
        pids+=("$pid")
        for _ in $(seq 200); do
                [[ -S $d/tokend.sock ]] && grep -q 'ready:' "$d/tokend.log" && return 0
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
        done
        echo "run-bench-store: tokend did not start in $d:" >&2
        cat "$d/tokend.log" >&2
        exit 1
}

psql_() { # DATABASE SQL: one value
        "$pgbin/psql" -h "$pgsock" -U postgres -d "$1" -XAtq -c "$2"
}

start_postgresql() {
        local out rc=0
        out=$(TOKEND_TEST_PGBASE=$base "$withpg" --start 2>&1) || rc=$?
        if [[ $rc -ne 0 ]]; then
                echo "run-bench-store: PostgreSQL could not be started (tests/with-postgresql --start, exit $rc):" >&2
                echo "$out" >&2
                exit 1
        fi
        pgsock=$(sed -n 's/^TOKEND_TEST_PGSOCKET=//p' <<<"$out")
        pgbin=$(sed -n 's/^TOKEND_TEST_PGBIN=//p' <<<"$out")
        pgdata=$(sed -n 's/^TOKEND_TEST_PGDATA=//p' <<<"$out")
        postmaster=$(head -1 "$pgdata/postmaster.pid")
        # the time spent in WAL syncs, in pg_stat_wal (a reload suffices)
        psql_ postgres "ALTER SYSTEM SET track_wal_io_timing = on" >/dev/null
        psql_ postgres "SELECT pg_reload_conf()" >/dev/null
        echo "== PostgreSQL $(psql_ postgres 'SHOW server_version'), postmaster $postmaster, in $pgsock" \
                "($(df --output=source,fstype "$pgsock" | tail -1 | tr -s ' ')); fsync $(psql_ postgres 'SHOW fsync')," \
                "synchronous_commit $(psql_ postgres 'SHOW synchronous_commit')," \
                "wal_sync_method $(psql_ postgres 'SHOW wal_sync_method')"
}

# run_bench STORE ISSUERS OUT [bench-tokend options...]: bench-tokend against
# the running tokends (state dirs $cfg/a, $cfg/b).
run_bench() {
        local out=$1
        shift
        local args=()
        for n in a b; do
                [[ -S $cfg/$n/tokend.sock ]] || continue
                args+=(--socket "$cfg/$n/tokend.sock")
        done
        for p in "${pids[@]}"; do
                args+=(--pid "$p")
        done
        [[ -z $pgsock || $store != postgresql ]] || args+=(--store-pid "$postmaster")
        "$bench" "${args[@]}" --key-dir "$cfg/a/keys" "$@" | tee "$out"
}

results=$work/results # store issuers op clients best/s
: >"$results"
skipped=()
echo "== uptime at start: $(uptime)"
for store in ${STORES:-sqlite postgresql}; do
        for issuers in ${ISSUERS:-1 2}; do
                if [[ $store == sqlite && $issuers != 1 ]]; then
                        skipped+=("sqlite $issuers: skipped: an SQLite store is one tokend's file on one host; several issuers share a PostgreSQL database")
                        echo "== ${skipped[-1]}"
                        continue
                fi
                cfg=$work/$store-$issuers
                db=
                if [[ $store == postgresql ]]; then
                        [[ -n $pgsock ]] || start_postgresql
                        psql_ postgres "CREATE DATABASE bench_$issuers" >/dev/null
                        db="postgresql:///bench_$issuers?host=$pgsock&user=postgres"
                fi
                start_tokend "$cfg/a" "$db"
                [[ $issuers == 1 ]] || start_tokend "$cfg/b" "$db"
                echo
                echo "== $store, $issuers issuer(s): tokend ${pids[*]} in $cfg ($(df --output=source,fstype "$cfg" | tail -1 | tr -s ' '))"
                run_bench "$cfg/bench.out" --ops refresh,verify --clients 1,8,64 --rounds 1 --seconds 3 "$@"
                awk -v s="$store" -v n="$issuers" '/^op +clients +best\/s/ { t = 1; next }
                        t && NF == 0 { t = 0 }
                        t && ($1 == "refresh" || $1 == "verify") && $2 ~ /^[0-9]+$/ { print s, n, $1, $2, $3 }' \
                        "$cfg/bench.out" >>"$results"
                if [[ $store == postgresql && $issuers == 2 ]]; then
                        # where the time goes: restarted tokends (their backends'
                        # pending statistics flushed as they exit), psql before and
                        # after, statistics read after the tokends stopped again
                        stop_tokends
                        start_tokend "$cfg/a" "$db"
                        start_tokend "$cfg/b" "$db"
                        sleep 1
                        dbn=bench_$issuers
                        stats_sql="SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = '$dbn') || ' ' ||
                                wal_sync || ' ' || wal_sync_time || ' ' || wal_bytes || ' ' ||
                                (SELECT count(*) FROM refresh_tokens WHERE rotated IS NOT NULL) FROM pg_stat_wal"
                        read -r commits0 syncs0 synct0 walb0 rot0 <<<"$(psql_ "$dbn" "$stats_sql")"
                        since=$(date +%s) # write transactions: their marks (tx_marks) from then on
                        echo
                        echo "== where the time goes: $store, $issuers issuers, refresh, $where_clients clients"
                        run_bench "$cfg/where.out" --ops refresh --clients "$where_clients" --rounds 1 \
                                --seconds "$where_seconds"
                        stop_tokends
                        sleep 1.5
                        read -r commits1 syncs1 synct1 walb1 rot1 <<<"$(psql_ "$dbn" "$stats_sql")"
                        writes=$(psql_ "$dbn" "SELECT count(*) FROM tx_marks WHERE id >= lpad(to_hex($since), 16, '0')")
                        where_line=$(grep -E "^1 +refresh +$where_clients " "$cfg/where.out" || true)
                        split_line=$(grep -A1 -E "^1 +refresh +$where_clients " "$cfg/where.out" | grep 'CPU us/op' || true)
                fi
                stop_tokends
        done
done
echo
echo "== uptime at end: $(uptime)"

echo
echo "== summary (best of the rounds; ops/s through tokend's Unix socket)"
printf '%-11s %7s %7s %10s %10s\n' store issuers clients refresh/s verify/s
awk '{ k = $1 " " $2 " " $4; if (!(k in seen)) { seen[k] = 1; order[++n] = k } v[k, $3] = $5 }
        END { for (i = 1; i <= n; i++) { split(order[i], f, " ");
                printf "%-11s %7s %7s %10s %10s\n", f[1], f[2], f[3],
                        ((order[i], "refresh") in v) ? v[order[i], "refresh"] : "-",
                        ((order[i], "verify") in v) ? v[order[i], "verify"] : "-" } }' "$results"
for s in "${skipped[@]}"; do
        echo "$s"
done

best=$(awk '$1 == "postgresql" && $2 == 2 && $3 == "refresh" && $5 > b { b = $5; c = $4 } END { if (b) print b, c }' "$results")
if [[ -n $best ]]; then
        read -r n c <<<"$best"
        echo "refresh with two issuers on PostgreSQL: $n/s at $c clients (goal >= $goal/s): $( ((n >= goal)) && echo met || echo not met)"
else
        echo "refresh with two issuers on PostgreSQL: not measured (STORES/ISSUERS)"
fi

[[ -n ${where_line:-} ]] || exit 0
echo
echo "== where the time goes: 2 issuers on PostgreSQL, refresh, $where_clients clients, $where_seconds s"
# bench-tokend's measurement line: round op clients ops/s p50 p99 errors tokend bench others
read -r _ _ _ rate p50 p99 errors _ <<<"$where_line"
echo "  $rate refreshes/s, p50 $p50 ms, p99 $p99 ms, $errors errors"
# "CPU us/op: tokend T, store S (pid P and its children), bench B, others O, idle I"
awk -v ncpu="$(nproc)" '{ for (i = 1; i <= NF; i++) { w = $i; gsub(/,/, "", $(i + 1)); if (w ~ /^(tokend|store|bench|others|idle)$/) v[w] = $(i + 1) } }
        END { printf "  CPU seconds per 1000 refreshes (in the window): tokends %.3f, postgres %.3f, bench client %.3f, " \
                "other processes %.3f, idle %.3f\n", v["tokend"] / 1000, v["store"] / 1000, v["bench"] / 1000,
                v["others"] / 1000, v["idle"] / 1000
              t = v["tokend"] + v["store"] + v["bench"]
              if (t > 0) printf "  %d CPUs / (tokends + postgres + bench) = at most %.0f refreshes/s with the machine " \
                "to themselves\n", ncpu, ncpu * 1e6 / t }' <<<"$split_line"
awk -v c="$((commits1 - commits0))" -v s="$((syncs1 - syncs0))" -v t0="$synct0" -v t1="$synct1" \
        -v b="$((walb1 - walb0))" -v r="$((rot1 - rot0))" -v w="$writes" 'BEGIN {
        printf "  PostgreSQL over the whole bench-tokend run (psql before/after): %d refreshes (rows rotated)\n", r
        printf "    xact_commit +%d (%.2f per refresh; every autocommit SELECT counts), of them %d write " \
                "transactions (their tx_marks rows; %.2f per refresh)\n", c, r ? c / r : 0, w, r ? w / r : 0
        printf "    WAL syncs (pg_stat_wal.wal_sync) +%d: %.3f per xact_commit, %.3f per write transaction, " \
                "%.3f per refresh; %.3f ms per sync (wal_sync_time)\n", s, c ? s / c : 0, w ? s / w : 0,
                r ? s / r : 0, s ? (t1 - t0) / s : 0
        printf "    WAL written: %.0f bytes per refresh\n", r ? b / r : 0 }'
