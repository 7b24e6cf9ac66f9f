#!/usr/bin/env bash
# make bench: performance figures as ratios against a baseline measured in
# the same run on this machine.  Prints "figure: NAME = VALUE" lines.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${JPKI_BUILD:-build}
export JPKI_TEST_PKI=${JPKI_TEST_PKI:-$PWD/$B/pki}

# Baseline: RSA-2048 verifications per second on one core (openssl speed);
# the core's logins per second on the same core (taskset pins both when
# available).  This machine's speed drifts from minute to minute: the two
# are measured alternately, twice each, and the best of each is kept.
pin=""
command -v taskset >/dev/null && pin="taskset -c 0"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a) ? b : a }'; }
rsa_verify=0 warm=0 cold=0
for _ in 1 2; do
    r=$($pin openssl speed -seconds 3 rsa2048 2>/dev/null \
        | awk '/^rsa 2048 bits/ {print $NF}')
    rsa_verify=$(max "$rsa_verify" "$r")
    read -r _ w c < <($pin "$B/bench_core")
    warm=$(max "$warm" "$w")
    cold=$(max "$cold" "$c")
done

echo "figure: core.rsa2048_verify_per_s = $rsa_verify"
echo "figure: core.login_per_s = $warm"
echo "figure: core.login_cold_chain_per_s = $cold"
echo "figure: core.login_vs_rsa_verify = $(ratio "$warm" "$rsa_verify")"
echo "figure: core.login_cold_chain_vs_rsa_verify = $(ratio "$cold" "$rsa_verify")"

P=$JPKI_TEST_PKI
. bench/nginx.sh
. bench/apache.sh
. bench/crl.sh
crl_bench
. bench/map.sh
map_bench
