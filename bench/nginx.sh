#!/usr/bin/env bash
# nginx figures (sourced by bench/run.sh after bench/lib.sh; needs $B, $P):
# gated vs ungated requests through the same nginx to the same upstream
# (shm store and Redis), and logins per second through one worker.
D=$PWD/$B/bench-nginx
rm -rf "$D"; mkdir -p "$D/logs"
BASE=${JPKI_BENCH_PORT:-18600}
GATE=$BASE UPS=$((BASE + 1)) OCSP=$((BASE + 2)) REDIS=$((BASE + 3))
umask 077
printf 'secret %s\nkey 1 %s current\n' "$(openssl rand -hex 32)" \
    "$(openssl rand -hex 32)" > "$D/secret"
umask 022
"$B/jpkictl" map add --cert "$P/user1.pem" --issuer "card=$P/ca1.pem,$P/ca2.pem" \
    --secret-file "$D/secret" --account bench --map-file "$D/map" >/dev/null
chmod 644 "$D/map"                   # new: 0640; the workers run as nobody

(cd "$P" && exec openssl ocsp -index ca2-index.txt -CA ca2.pem -rsigner ocsp.pem \
    -rkey ocsp.key -ndays 1 -port "$OCSP" >/dev/null 2>&1) &
ocsp_pid=$!
redis-server --port "$REDIS" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no >/dev/null 2>&1 &
redis_pid=$!
cleanup_nginx() {
    [ -f "$D/nginx.pid" ] && kill "$(cat "$D/nginx.pid")" 2>/dev/null
    kill "$ocsp_pid" "$redis_pid" 2>/dev/null
    sleep 0.3
}
trap cleanup_nginx EXIT

start_nginx() {   # $1: jpki_store line
    local old
    if [ -f "$D/nginx.pid" ]; then
        old=$(cat "$D/nginx.pid")
        kill "$old" 2>/dev/null
        while kill -0 "$old" 2>/dev/null; do sleep 0.1; done
    fi
    cat > "$D/nginx.conf" <<CONF
load_module $PWD/$B/ngx_http_jpki_module.so;
worker_processes 1;
error_log $D/logs/error.log notice;
pid $D/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $D/body;
    proxy_temp_path $D/proxy;
    jpki_secret_file $D/secret;
    jpki_issuer card ca=$P/ca1.pem,$P/ca2.pem ocsp=http://127.0.0.1:$OCSP/;
    $1
    jpki_map_file $D/map;
    jpki_challenge_ttl 900;
    jpki_cookie_secure off;
    upstream app { server 127.0.0.1:$UPS; keepalive 32; }
    server {
        listen 127.0.0.1:$UPS;
        location / { return 200 "ok\n"; }
    }
    server {
        listen 127.0.0.1:$GATE;
        client_header_buffer_size 4k;   # docs/nginx.md: a login read at once
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        # one certificate logs in thousands of times a second: no limit on
        # logins per certificate (the failure limits stay on)
        location /jpki/ { jpki_endpoints; client_body_buffer_size 64k;
                          jpki_throttle logins=0; }
        location /open/ { proxy_pass http://app; }
        location /gated/ { jpki on; proxy_pass http://app; }
        location /gated0/ { jpki on; jpki_recheck_interval 0;
                            proxy_pass http://app; }
    }
}
CONF
    nginx -p "$D" -c "$D/nginx.conf"
    for _ in $(seq 50); do
        curl -s -o /dev/null "http://127.0.0.1:$GATE/open/" && break
        sleep 0.1
    done
}

login_cookie() {
    local ch sig cert
    ch=$(curl -s "http://127.0.0.1:$GATE/jpki/challenge" \
        | sed 's/.*"challenge":"\([^"]*\)".*/\1/')
    sig=$(printf %s "$ch" | openssl dgst -sha256 -sign "$P/user1.key" | base64 -w0)
    cert=$(base64 -w0 "$P/user1.der")
    curl -s -D - -o /dev/null -H 'Content-Type: application/json' \
        -d "{\"challenge\":\"$ch\",\"certificate\":\"$cert\",\"signature\":\"$sig\"}" \
        "http://127.0.0.1:$GATE/jpki/login" \
        | sed -n 's/^Set-Cookie: \([^;]*\);.*/\1/p'
}

# Gated requests per second while a flood of bad-signature logins (one
# reusable body, 50 connections) runs, over the same without it, in pairs.
# $1 figure prefix, $2 gated URL, $3 cookie, $4 login base URL, $5 body file
flood_ratio() {
    local quiet busy fpid ratios=""
    for _ in $(seq "$BENCH_PAIRS"); do
        quiet=$(wrk_rps -t1 -c32 -d2s -H "Cookie: $3" "$2")
        taskset -c 1 wrk -t1 -c50 -d4s -s bench/login.lua "$4" -- "$5" 1 \
            >/dev/null 2>&1 & fpid=$!
        sleep 1
        busy=$(wrk_rps -t1 -c32 -d2s -H "Cookie: $3" "$2")
        wait $fpid
        ratios="$ratios $(ratio "$busy" "$quiet")"
    done
    # shellcheck disable=SC2086
    figure_spread "$1.gated_during_login_flood_vs_quiet" $ratios
}

session_ratio() {   # $1 name, $2 store line
    local cookie open bare gated recheck ratios="" bratios="" rratios="" \
          opens="" gateds="" rechecks=""
    start_nginx "$2"
    # a session signed in before the worker's first complete poll of the
    # logout log is checked in the store once (its cookie is resealed,
    # which wrk does not take): sign in a second later
    sleep 1.1
    cookie=$(login_cookie)
    [ -n "$cookie" ] || { echo "bench: login failed ($1)" >&2; return 1; }
    # nginx's worker on core 0, wrk on core 1
    taskset -pc 0 "$(pgrep -P "$(cat "$D/nginx.pid")" | head -1)" >/dev/null
    # pairs: ungated then gated; cached (interval 5 min: no store access)
    # then re-checked at every request (interval 0: logout marker, mapping
    # and the cached revocation answer in the store).  The ungated request
    # carries the session cookie as a browser sends it (Path=/: to every
    # path of the site), so that the two differ by the gate alone; the
    # same without the cookie too (session_vs_ungated_nocookie).
    for _ in $(seq "$BENCH_PAIRS"); do
        open=$(wrk_rps -t1 -c32 -d2s -H "Cookie: $cookie" \
            "http://127.0.0.1:$GATE/open/")
        bare=$(wrk_rps -t1 -c32 -d2s "http://127.0.0.1:$GATE/open/")
        gated=$(wrk_rps -t1 -c32 -d2s -H "Cookie: $cookie" \
            "http://127.0.0.1:$GATE/gated/")
        recheck=$(wrk_rps -t1 -c32 -d2s -H "Cookie: $cookie" \
            "http://127.0.0.1:$GATE/gated0/")
        opens="$opens $open" gateds="$gateds $gated" rechecks="$rechecks $recheck"
        ratios="$ratios $(ratio "$gated" "$open")"
        bratios="$bratios $(ratio "$gated" "$bare")"
        rratios="$rratios $(ratio "$recheck" "$gated")"
    done
    # shellcheck disable=SC2086
    {
        echo "figure: nginx.ungated_rps.$1 = $(median $opens)"
        echo "figure: nginx.gated_rps.$1 = $(median $gateds)"
        figure_spread "nginx.session_vs_ungated.$1" $ratios
        figure_spread "nginx.session_vs_ungated_nocookie.$1" $bratios
        echo "figure: nginx.recheck_rps.$1 = $(median $rechecks)"
        figure_spread "nginx.recheck_vs_cached.$1" $rratios
    }
}

session_ratio shm "jpki_store shm zone=jpki size=16m;"
# the flood: one body signed with another key than its certificate's
"$B/sign_bodies" "$D/secret" "$P/ca2.pem" "$P/user2.key" "$P/user1.der" 1 \
    > "$D/flood"
flood_ratio nginx "http://127.0.0.1:$GATE/gated/" "$(login_cookie)" \
    "http://127.0.0.1:$GATE/" "$D/flood"
session_ratio redis "jpki_store redis=127.0.0.1:$REDIS;"

# Logins through one worker: challenges issued and signed ahead of time with
# the site's keys; the first login warms the revocation cache.
start_nginx "jpki_store shm zone=jpki size=64m;"
LOGIN_PIDS=$(pgrep -P "$(cat "$D/nginx.pid")" | head -1)
taskset -pc 0 "$LOGIN_PIDS" >/dev/null
[ -n "$(login_cookie)" ] || echo "bench: warm-up login failed" >&2
login_pairs nginx "$D/secret" "http://127.0.0.1:$GATE/" "$D" \
    "${JPKI_BENCH_LOGINS:-24000}"
if grep -E '\[(alert|crit|emerg)\]' "$D/logs/error.log" >&2; then
    echo "bench: nginx logged alerts" >&2
fi
