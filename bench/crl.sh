#!/usr/bin/env bash
# CRL figures: `jpkictl crl sync` of a signed 1,000,000-entry CRL into a
# fresh redis-server, against `openssl crl -noout -in` on the same file, on
# this machine, in the same run; Redis memory per entry (INFO memory
# used_memory before and after the load); a delta sync of a CRL 1%
# different from the loaded one, from the local state the sync before
# left (--state-dir), against a full sync of it; the same for
# 10,000,000 entries, with lookups timed while it loads.
#
#   bash bench/crl.sh                  (make bench-crl builds what it needs)
#   . bench/crl.sh; crl_bench          (from bench/run.sh)
#
# Needs $B/jpkictl, $B/crlgen (make build/crlgen), the test PKI ($P, make
# pki: the CRL is signed with ca2.key), redis-server, openssl, perl.  Prints
# "figure: NAME = VALUE" lines.  openssl's parse and the sync run in
# JPKI_BENCH_PAIRS (5) interleaved pairs: times and their ratio are
# "MEDIAN (min A, max B)" (bench/lib.sh); so are the delta and full syncs.
# The 10,000,000-entry run (about 400 MB of CRL, 2-3 GB of RAM at its
# peak, most of it openssl's): openssl's parse once, the sync against the
# 1,000,000-entry one in JPKI_BENCH_CRL_10M_PAIRS (3) pairs;
# JPKI_BENCH_CRL_10M=0 leaves it out.
# Env: JPKI_BUILD (build), JPKI_TEST_PKI ($B/pki), JPKI_BENCH_CRL_PORT
# (18610), JPKI_BENCH_CRL_ENTRIES (1000000).

crl_now() { date +%s.%N; }
crl_div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
crl_mem() {
    redis-cli -p "$CRL_PORT" INFO memory | tr -d '\r' \
        | awk -F: '$1 == "used_memory" { print $2 }'
}
# crl_sync FILE [ARGS...]: one sync; its line in CRL_OUT, its seconds in
# CRL_S; fails unless it loaded
crl_sync() {
    local f=$1 t0 t1
    shift
    t0=$(crl_now)
    CRL_OUT=$("$B/jpkictl" crl sync --source "$f" --issuer "card=$P/ca2.pem" \
        --secret-file "$CRL_D/secret" --redis "127.0.0.1:$CRL_PORT" "$@")
    t1=$(crl_now)
    case $CRL_OUT in
        loaded*) ;;
        *) echo "crl bench: sync failed: $CRL_OUT" >&2; return 1 ;;
    esac
    CRL_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
}

# crl_run NAME FILE ENTRIES PAIRS [SYNC ARGS...]: one CRL size; prints its
# figures.  In pairs: openssl's parse, then the sync into a flushed
# database; memory measured on the first sync.
crl_run() {
    local name=$1 f=$2 n=$3 pairs=$4 t0 t1 o os="" ss="" rs="" m0 m1 i
    shift 4
    for i in $(seq "$pairs"); do
        t0=$(crl_now)
        openssl crl -noout -in "$f"
        t1=$(crl_now)
        o=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
        redis-cli -p "$CRL_PORT" FLUSHALL >/dev/null
        m0=$(crl_mem)
        crl_sync "$f" "$@"
        os="$os $o" ss="$ss $CRL_S" rs="$rs $(crl_div "$CRL_S" "$o")"
        if [ "$i" = 1 ]; then
            m1=$(crl_mem)
            echo "figure: $name.redis_bytes_per_entry = $(crl_div $((m1 - m0)) "$n")"
            echo "figure: $name.buckets_bits = $(sed -n 's/.* bits=\([0-9]*\) .*/\1/p' <<<"$CRL_OUT")"
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
}

# crl_delta NAME BASE VARIANT: BASE loaded (full) with --state-dir, then
# VARIANT synced by a delta from that local state (the daily case: the
# state of the day before in place), then the same by a full sync
# (--full, no state) from BASE again, in pairs.
crl_delta() {
    local name=$1 base=$2 var=$3 ds="" fs="" rs="" i changed="" sd=$CRL_D/state
    for i in $(seq "$BENCH_PAIRS"); do
        redis-cli -p "$CRL_PORT" FLUSHALL >/dev/null
        rm -rf "$sd"
        mkdir -m 700 "$sd"
        crl_sync "$base" --state-dir "$sd"
        crl_sync "$var" --state-dir "$sd" 2>"$CRL_D/delta.err"
        case $CRL_OUT in
            *mode=delta*) ;;
            *) echo "crl bench: not a delta sync: $CRL_OUT" >&2; return 1 ;;
        esac
        if grep -q 'note: the local state' "$CRL_D/delta.err"; then
            echo "crl bench: the delta did not use the state: $(cat "$CRL_D/delta.err")" >&2
            return 1
        fi
        changed=$(sed -n 's/.* changed=\([0-9]*\) .*/\1/p' <<<"$CRL_OUT")
        local d=$CRL_S
        redis-cli -p "$CRL_PORT" FLUSHALL >/dev/null
        crl_sync "$base"
        crl_sync "$var" --full
        ds="$ds $d" fs="$fs $CRL_S" rs="$rs $(crl_div "$d" "$CRL_S")"
    done
    echo "figure: $name.delta_changed_entries = $changed"
    # shellcheck disable=SC2086
    {
        figure_spread "$name.delta_sync_s" $ds
        figure_spread "$name.delta_full_sync_s" $fs
        figure_spread "$name.delta_sync_vs_full" $rs
    }
}

# crl_10m BASE N: 10,000,000 entries.  openssl's parse once (a minute,
# and the most memory: 2-3 GB); then JPKI_BENCH_CRL_10M_PAIRS (3) pairs of
# BASE (N entries) synced into a flushed database and the 10M CRL synced
# over it (--full), their ratio the figure crl.sync_10m_vs_1m; memory
# measured on the first 10M sync; lookups of the loaded list go on during
# that sync (bench/crl_lookups.pl: a cert_id that is not listed, one a
# millisecond; gens=2: it saw both generations).
crl_10m() {
    local base=$1 n=$2 f=$CRL_D/10m.crl t0 t1 o ts="" rs="" i m0 m1 list id lpid
    "$B/crlgen" "$P/ca2.pem" "$P/ca2.key" 10000000 200 "$f"
    t0=$(crl_now)
    openssl crl -noout -in "$f"
    t1=$(crl_now)
    o=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    id=$("$B/jpkictl" cert-check --cert "$P/user1.pem" --issuer \
         "card=$P/ca2.pem" --secret-file "$CRL_D/secret" \
         | sed -n 's/.*cert_id=\([0-9a-f]*\).*/\1/p')
    for i in $(seq "${JPKI_BENCH_CRL_10M_PAIRS:-3}"); do
        redis-cli -p "$CRL_PORT" FLUSHALL >/dev/null
        crl_sync "$base"
        local one=$CRL_S
        if [ "$i" = 1 ]; then
            list=$(sed -n 's/.* list=\([0-9a-f]*\).*/\1/p' <<<"$CRL_OUT")
            rm -f "$CRL_D/stop"
            perl bench/crl_lookups.pl "$CRL_PORT" "$list" "$id" \
                "$CRL_D/stop" > "$CRL_D/lookups" &
            lpid=$!
            m0=$(crl_mem)
        fi
        crl_sync "$f" --full
        if [ "$i" = 1 ]; then
            m1=$(crl_mem)
            touch "$CRL_D/stop"
            wait "$lpid"
            echo "figure: crl10m.buckets_bits = $(sed -n 's/.* bits=\([0-9]*\) .*/\1/p' <<<"$CRL_OUT")"
            echo "figure: crl.redis_bytes_per_entry_10m = $(crl_div $((m1 - m0)) 10000000)"
            echo "figure: crl.lookups_during_10m_sync = $(cat "$CRL_D/lookups")"
        fi
        ts="$ts $CRL_S" rs="$rs $(crl_div "$CRL_S" "$one")"
    done
    echo "figure: crl10m.entries = 10000000"
    echo "figure: crl10m.crl_bytes = $(stat -c %s "$f")"
    echo "figure: crl10m.openssl_parse_s = $o (one run)"
    # shellcheck disable=SC2086
    {
        figure_spread crl10m.sync_s $ts
        echo "figure: crl10m.sync_vs_openssl_parse = $(crl_div "$(spread $ts | cut -d' ' -f1)" "$o") (the median sync, the one parse)"
        figure_spread crl.sync_10m_vs_1m $rs
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
    local rpid=$BENCH_RPID n=${JPKI_BENCH_CRL_ENTRIES:-1000000}
    trap 'kill $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf "$CRL_D"' EXIT
    # the day's CRL and the next day's: 1% of the entries changed (half
    # of them removed, half added)
    "$B/crlgen" "$P/ca2.pem" "$P/ca2.key" "$n" 100 "$CRL_D/base.crl"
    "$B/crlgen" "$P/ca2.pem" "$P/ca2.key" "$n" 101 "$CRL_D/next.crl" \
        $((n / 200))
    crl_run crl "$CRL_D/base.crl" "$n" "$BENCH_PAIRS"
    crl_delta crl "$CRL_D/base.crl" "$CRL_D/next.crl"
    rm -f "$CRL_D/next.crl"
    [ "${JPKI_BENCH_CRL_10M:-1}" = 1 ] || return 0
    crl_10m "$CRL_D/base.crl" "$n"
    rm -f "$CRL_D/10m.crl"
)

# run directly (not sourced)
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    cd "$(dirname "$0")/.."
    crl_bench
fi
