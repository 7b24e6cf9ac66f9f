#!/usr/bin/env bash
# CRL figures: `jpkictl crl sync` of a signed 1,000,000-entry CRL into a
# fresh redis-server, against `openssl crl -noout -in` on the same file, on
# this machine, in the same run; Redis memory per entry (INFO memory
# used_memory before and after the load).
#
#   bash bench/crl.sh                  (make bench-crl builds what it needs)
#   . bench/crl.sh; crl_bench          (from bench/run.sh)
#
# Needs $B/jpkictl, $B/crlgen (make build/crlgen), the test PKI ($P, make
# pki: the CRL is signed with ca2.key), redis-server, openssl.  Prints
# "figure: NAME = VALUE" lines.  openssl's parse and the sync run in
# JPKI_BENCH_PAIRS (5) interleaved pairs: times and their ratio are
# "MEDIAN (min A, max B)" (bench/lib.sh).  JPKI_BENCH_CRL_10M=1 adds a 10,000,000
# entry run (time and memory only; about 400 MB of CRL, a few GB of RAM).
# Env: JPKI_BUILD (build), JPKI_TEST_PKI ($B/pki), JPKI_BENCH_CRL_PORT
# (18610), JPKI_BENCH_CRL_ENTRIES (1000000).

crl_now() { date +%s.%N; }
crl_div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
crl_mem() {
    redis-cli -p "$CRL_PORT" INFO memory | tr -d '\r' \
        | awk -F: '$1 == "used_memory" { print $2 }'
}

# crl_run NAME ENTRIES: one CRL size; prints its figures.  In pairs:
# openssl's parse, then the sync into a flushed database; memory measured
# on the first sync, into the fresh server.
crl_run() {
    local name=$1 n=$2 f t0 t1 o s os="" ss="" rs="" m0 m1 out i
    f=$CRL_D/crl-$n.crl
    "$B/crlgen" "$P/ca2.pem" "$P/ca2.key" "$n" 100 "$f"
    for i in $(seq "$BENCH_PAIRS"); do
        t0=$(crl_now)
        openssl crl -noout -in "$f"
        t1=$(crl_now)
        o=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
        redis-cli -p "$CRL_PORT" FLUSHALL >/dev/null
        m0=$(crl_mem)
        t0=$(crl_now)
        out=$("$B/jpkictl" crl sync --source "$f" --issuer "card=$P/ca2.pem" \
            --secret-file "$CRL_D/secret" --redis "127.0.0.1:$CRL_PORT")
        t1=$(crl_now)
        case $out in
            loaded*) ;;
            *) echo "crl bench: sync failed: $out" >&2; return 1 ;;
        esac
        s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
        os="$os $o" ss="$ss $s" rs="$rs $(crl_div "$s" "$o")"
        if [ "$i" = 1 ]; then
            m1=$(crl_mem)
            echo "figure: $name.redis_bytes_per_entry = $(crl_div $((m1 - m0)) "$n")"
            echo "figure: $name.buckets_k = $(sed -n 's/.* k=\([0-9]*\) .*/\1/p' <<<"$out")"
        fi
    done
    echo "figure: $name.entries = $n"
    echo "figure: $name.crl_bytes = $(stat -c %s "$f")"
    # shellcheck disable=SC2086
    {
        figure_spread "$name.openssl_parse_s" $os
        figure_spread "$name.sync_s" $ss
        figure_spread "$name.sync_vs_openssl_parse" $rs
    }
    rm -f "$f"
}

crl_bench() (
    set -euo pipefail
    B=${B:-${JPKI_BUILD:-build}}
    P=${P:-${JPKI_TEST_PKI:-$PWD/$B/pki}}
    CRL_PORT=${JPKI_BENCH_CRL_PORT:-18610}
    CRL_D=$PWD/$B/bench-crl
    . bench/lib.sh
    . bench/scratch.sh
    bench_scratch "$CRL_D" "$CRL_PORT"
    local rpid=$BENCH_RPID
    trap 'kill $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf "$CRL_D"' EXIT
    crl_run crl "${JPKI_BENCH_CRL_ENTRIES:-1000000}"
    if [ "${JPKI_BENCH_CRL_10M:-0}" = 1 ]; then
        crl_run crl10m 10000000
    fi
)

# run directly (not sourced)
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    cd "$(dirname "$0")/.."
    crl_bench
fi
