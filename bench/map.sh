#!/usr/bin/env bash
# Account figures: `jpkictl map import` of a CSV of 100,000 rows (issuer,
# serial, account; generated serials, one account per 3 rows) into a fresh
# redis-server, against `redis-benchmark -t set -P 16` (pipelined SETs of
# the same server) on this machine, in the same run.  An imported row is a
# GET of its map: key, its share of the GET of its account's list, and
# SETs of map:, mapi: and the account's acct: list: about 4.3 commands.
#
#   bash bench/map.sh                  (make bench-map builds what it needs)
#   . bench/map.sh; map_bench          (from bench/run.sh)
#
# Needs $B/jpkictl, the test PKI ($P, make pki), redis-server,
# redis-benchmark, redis-cli.  Prints "figure: NAME = VALUE" lines.  The
# import and redis-benchmark run in JPKI_BENCH_PAIRS (5) interleaved pairs
# (the Redis database flushed before each), the ratio "MEDIAN (min A, max
# B)" (bench/lib.sh).
# Env: JPKI_BUILD (build), JPKI_TEST_PKI ($B/pki), JPKI_BENCH_MAP_PORT
# (18620), JPKI_BENCH_MAP_ROWS (100000).

map_now() { date +%s.%N; }

map_bench() (
    set -euo pipefail
    B=${B:-${JPKI_BUILD:-build}}
    P=${P:-${JPKI_TEST_PKI:-$PWD/$B/pki}}
    local port=${JPKI_BENCH_MAP_PORT:-18620} n=${JPKI_BENCH_MAP_ROWS:-100000}
    local d=$PWD/$B/bench-map rates="" sets="" rs="" rate t0 t1 out s i
    . bench/lib.sh
    . bench/scratch.sh
    bench_scratch "$d" "$port"
    local rpid=$BENCH_RPID
    trap 'kill $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf "$d"' EXIT
    awk -v n="$n" 'BEGIN { srand(12); print "issuer,serial,account";
        for (i = 1; i <= n; i++)
            printf "card,%d%09d,user%d\n", 1000000 + i, int(rand() * 1e9),
                   int(i / 3) }' > "$d/rows.csv"
    for i in $(seq "$BENCH_PAIRS"); do
        redis-cli -p "$port" FLUSHALL >/dev/null
        t0=$(map_now)
        out=$("$B/jpkictl" map import "$d/rows.csv" \
            --issuer "card=$P/ca1.pem,$P/ca2.pem" --secret-file "$d/secret" \
            --redis "127.0.0.1:$port")
        t1=$(map_now)
        case $out in
            "imported: $n rows, $n bound,"*) ;;
            *) echo "map bench: import failed: $out" >&2; return 1 ;;
        esac
        rate=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
        redis-cli -p "$port" FLUSHALL >/dev/null
        s=$(redis-benchmark -p "$port" -t set -P 16 -n 200000 -q 2>/dev/null \
            | tr '\r' '\n' | awk '/^SET: [0-9]/ { v = $2 } END { print v + 0 }')
        rates="$rates $rate" sets="$sets $s" rs="$rs $(ratio "$rate" "$s")"
    done
    echo "figure: jpkictl.map_import_rows = $n"
    # shellcheck disable=SC2086
    {
        echo "figure: jpkictl.map_import_rows_per_s = $(median $rates)"
        echo "figure: jpkictl.redis_set_p16_per_s = $(median $sets)"
        figure_spread jpkictl.map_import_rows_vs_redis_set $rs
    }
)

# run directly (not sourced)
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    cd "$(dirname "$0")/.."
    map_bench
fi
