#!/usr/bin/env bash
# bench/lib.sh - what the bench scripts share (sourced by bench/run.sh):
# arithmetic on figures, the spread of a ratio measured in pairs, wrk, and
# the baseline of the login figures, RSA-2048 verifications on one core.
#
# A ratio is measured in JPKI_BENCH_PAIRS (5) interleaved pairs, the
# baseline and the measured run back to back, each pair giving one ratio;
# the figure is their median with the min and max on the same line:
#   figure: NAME = MEDIAN (min A, max B)
# (this machine's speed drifts from minute to minute: a pair sees the same
# machine, and the spread shows how far to trust the median).
BENCH_PAIRS=${JPKI_BENCH_PAIRS:-5}
pin=""
command -v taskset >/dev/null && pin="taskset -c 0"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a) ? b : a }'; }

# median (min A, max B) of the numbers given
spread() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.3f (min %.3f, max %.3f)", m, v[1], v[NR] }'
}
# the median alone, as an integer (rates printed beside their ratios)
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.0f", m }'
}
# figure_spread NAME RATIO...: the figure line of a ratio measured in pairs
figure_spread() {
    local name=$1
    shift
    echo "figure: $name = $(spread "$@")"
}

# RSA-2048 verifications per second on core 0 (openssl speed: a second
# signing, then a second verifying)
rsa_verify_1s() {
    $pin openssl speed -seconds 1 rsa2048 2>/dev/null \
        | awk '/^rsa 2048 bits/ {print $NF}'
}

# login_pairs SERVER SECRET BASE_URL DIR CHUNK: logins through SERVER
# (nginx, apache) from bodies signed ahead of time with the site's keys,
# each used once: a one-second run a chunk of its own (more bodies than a
# second of logins can use), each run paired with RSA-2048 verifications
# on the server's core.  Prints SERVER.logins_per_s and
# SERVER.login_vs_rsa_verify.
# JPKI_BENCH_PROFILE=DIR: the first login run of login_pairs recorded by
# perf (the whole machine, 1 s), and the server's processes' top costs
# written to DIR/SERVER.txt (by library and function), the top 12 printed
# as "profile:" lines.  Not a figure: where a login's time goes.
profile_start() {
    [ -n "${JPKI_BENCH_PROFILE:-}" ] || return 0
    perf record -q -a -o "$1/perf.data" -- sleep 1 >/dev/null 2>&1 &
    PROFILE_PID=$!
}
profile_end() {
    local comm
    [ -n "${JPKI_BENCH_PROFILE:-}" ] || return 0
    wait "$PROFILE_PID"
    case $2 in nginx) comm=nginx ;; *) comm=apache2 ;; esac
    mkdir -p "$JPKI_BENCH_PROFILE"
    perf report -i "$1/perf.data" --comm "$comm" --sort dso,symbol --stdio \
        2>/dev/null | grep -E '^ +[0-9]' > "$JPKI_BENCH_PROFILE/$2.txt"
    perf report -i "$1/perf.data" --comm "$comm" --sort dso --stdio \
        2>/dev/null | grep -E '^ +[0-9]' > "$JPKI_BENCH_PROFILE/$2.dso.txt"
    sed 's/^/profile: '"$2"' /' "$JPKI_BENCH_PROFILE/$2.dso.txt" | head -6
    sed 's/^/profile: '"$2"' /' "$JPKI_BENCH_PROFILE/$2.txt" | head -12
}

# The CPU seconds (user + system) the processes $@ have used so far, in
# clock ticks (/proc/PID/stat fields 14 and 15), summed.
cpu_ticks() {
    local p t=0
    for p in "$@"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

# LOGIN_PIDS (set by the caller): the server's processes that answer
# logins; login_pairs prints SERVER.login_server_busy, the CPU they used
# during a run (wrk's second; they idle while wrk reads its bodies) over
# its length: near 1 the server is the limit, well below it the client or
# the round trips are; and SERVER.login_server_cpu_us, their CPU time per
# login (median).
login_pairs() {
    local srv=$1 secret=$2 url=$3 dir=$4 chunk=$5 half pids="" k r l \
          lratios="" logins="" c0 c1 busy="" cpus="" hz
    hz=$(getconf CLK_TCK)
    for half in 1 2; do
        "$B/sign_bodies" "$secret" "$P/ca2.pem" "$P/user1.key" \
            "$P/user1.der" $((chunk * BENCH_PAIRS / 2 + 1)) \
            > "$dir/bodies.$half" &
        pids="$pids $!"
    done
    # shellcheck disable=SC2086
    wait $pids
    cat "$dir/bodies.1" "$dir/bodies.2" > "$dir/bodies"
    for k in $(seq 0 $((BENCH_PAIRS - 1))); do
        r=$(rsa_verify_1s)
        [ "$k" = 0 ] && profile_start "$dir"
        # shellcheck disable=SC2086
        c0=$(cpu_ticks $LOGIN_PIDS)
        l=$(wrk_rps -t1 -c8 -d1s -s bench/login.lua "$url" \
            -- "$dir/bodies" $((k * chunk + 1)))
        # shellcheck disable=SC2086
        c1=$(cpu_ticks $LOGIN_PIDS)
        [ "$k" = 0 ] && profile_end "$dir" "$srv"
        busy="$busy $(awk -v c=$((c1 - c0)) -v hz="$hz" \
            'BEGIN { printf "%.3f", c / hz / 1.0 }')"
        cpus="$cpus $(awk -v c=$((c1 - c0)) -v hz="$hz" -v n="$l" \
            'BEGIN { printf "%.1f", (n > 0) ? c / hz / n * 1e6 : 0 }')"
        logins="$logins $l"
        lratios="$lratios $(ratio "$l" "$r")"
    done
    # shellcheck disable=SC2086
    echo "figure: $srv.logins_per_s = $(median $logins)"
    # shellcheck disable=SC2086
    figure_spread "$srv.login_vs_rsa_verify" $lratios
    # shellcheck disable=SC2086
    if [ -n "${LOGIN_PIDS:-}" ]; then
        figure_spread "$srv.login_server_busy" $busy
        echo "figure: $srv.login_server_cpu_us = $(median $cpus)"
    fi
}

wrk_rps() {   # wrk args...; prints requests/s, 0 (and why) on non-2xx answers
    local out
    out=$(taskset -c 1 wrk "$@" 2>&1)
    if echo "$out" | grep -q 'Non-2xx'; then
        echo "bench: wrk saw errors: $(echo "$out" | grep Non-2xx)" >&2
        echo 0; return
    fi
    echo "$out" | awk '/^Requests\/sec/ {print $2}'
}
