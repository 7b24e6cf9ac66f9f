#!/usr/bin/env bash
# run.sh BUILD SECONDS: each fuzz target for SECONDS from its seeds (made
# from the test PKI) and the corpus it grew before; fails on a crash, a
# leak or a sanitizer report (the input is kept: BUILD/fuzz/crash-*).
set -eu
B=$1 S=$2
cd "$(dirname "$0")/../.."
export JPKI_TEST_PKI=${JPKI_TEST_PKI:-$PWD/$B/pki}
bash t/fuzz/seeds.sh "$JPKI_TEST_PKI" "$B/fuzz/seeds"
for t in login parsers; do
    mkdir -p "$B/fuzz/corpus-$t"
    echo "  FUZZ  $t ($S s)"
    if ! "$B/fuzz/fuzz_$t" -max_total_time="$S" -timeout=10 -rss_limit_mb=2048 \
         -artifact_prefix="$B/fuzz/" -print_final_stats=0 \
         "$B/fuzz/corpus-$t" "$B/fuzz/seeds/$t" > "$B/fuzz/$t.log" 2>&1; then
        tail -40 "$B/fuzz/$t.log"
        echo "fuzz_$t failed: see $B/fuzz/$t.log" >&2
        exit 1
    fi
    grep -E '^Done [0-9]+ runs' "$B/fuzz/$t.log" | tail -1 | sed "s/^/  fuzz_$t: /" || true
done
