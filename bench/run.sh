#!/usr/bin/env bash
# make bench: performance figures as ratios against a baseline measured in
# the same run on this machine.  Prints "figure: NAME = VALUE" lines; a
# ratio is "MEDIAN (min A, max B)" of JPKI_BENCH_PAIRS (5) interleaved
# pairs (bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${JPKI_BUILD:-build}
export JPKI_TEST_PKI=${JPKI_TEST_PKI:-$PWD/$B/pki}

. bench/lib.sh

# The core's logins per second on core 0 (the better of two rounds of 1000
# logins, the chain cache warm, then cold), each run paired with RSA-2048
# verifications per second on the same core.
warm_r="" cold_r="" rsas="" warms="" colds=""
for _ in $(seq "$BENCH_PAIRS"); do
    r=$(rsa_verify_1s)
    read -r _ w c < <($pin "$B/bench_core" 2)
    rsas="$rsas $r" warms="$warms $w" colds="$colds $c"
    warm_r="$warm_r $(ratio "$w" "$r")"
    cold_r="$cold_r $(ratio "$c" "$r")"
done
# shellcheck disable=SC2086
echo "figure: core.rsa2048_verify_per_s = $(median $rsas)"
echo "figure: core.login_per_s = $(median $warms)"
echo "figure: core.login_cold_chain_per_s = $(median $colds)"
figure_spread core.login_vs_rsa_verify $warm_r
figure_spread core.login_cold_chain_vs_rsa_verify $cold_r

# The embedded store: what a 16 MiB zone holds of a challenge, a logout
# marker, a throttle counter (filled through the core's store commands
# until it refuses one)
"$B/store_fill"

P=$JPKI_TEST_PKI
. bench/nginx.sh
. bench/apache.sh
. bench/crl.sh
crl_bench
. bench/map.sh
map_bench
