#!/usr/bin/env bash
# bench_scratch DIR PORT: what a Redis figure starts from (bench/crl.sh,
# bench/map.sh): DIR made afresh with a site secret (DIR/secret, mode
# 0600) and a fresh redis-server on 127.0.0.1:PORT (no persistence, its log
# DIR/redis.log), answering PING; its pid in BENCH_RPID.  The caller's EXIT
# trap stops it and removes DIR.
bench_scratch() {
    local d=$1 port=$2
    rm -rf "$d"
    mkdir -p "$d"
    umask 077
    printf 'secret %s\n' "$(openssl rand -hex 32)" > "$d/secret"
    umask 022
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no >"$d/redis.log" 2>&1 &
    BENCH_RPID=$!
    for _ in $(seq 50); do
        redis-cli -p "$port" PING >/dev/null 2>&1 && break
        sleep 0.1
    done
}
