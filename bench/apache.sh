#!/usr/bin/env bash
# Apache figures (sourced by bench/run.sh after bench/lib.sh and
# bench/nginx.sh; uses $B, $P, flood_ratio): gated vs ungated requests through the
# same Apache (mpm_event) to the same upstream, and logins per second.
AD=$PWD/$B/bench-apache
rm -rf "$AD"; mkdir -p "$AD/run" "$AD/docs"
chmod 755 "$AD" "$AD/docs"
ABASE=${JPKI_BENCH_APACHE_PORT:-18620}
AGATE=$ABASE AUPS=$((ABASE + 1)) AOCSP=$((ABASE + 2))
umask 077
printf 'secret %s\nkey 1 %s current\n' "$(openssl rand -hex 32)" \
    "$(openssl rand -hex 32)" > "$AD/secret"
umask 022
cp "$P/ca1.pem" "$P/ca2.pem" "$AD/"
"$B/jpkictl" map add --cert "$P/user1.pem" --issuer "card=$P/ca1.pem,$P/ca2.pem" \
    --secret-file "$AD/secret" --account bench --map-file "$AD/map" >/dev/null
chmod 644 "$AD/map" "$AD"/ca*.pem
user=""
[ "$(id -u)" = 0 ] && user=$'User nobody\nGroup nogroup'
M=/usr/lib/apache2/modules
cat > "$AD/httpd.conf" <<CONF
ServerRoot "$AD"
DefaultRuntimeDir "$AD/run"
PidFile "$AD/run/httpd.pid"
ServerName 127.0.0.1
ErrorLog "$AD/error.log"
LogLevel warn
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authn_core_module $M/mod_authn_core.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule authz_user_module $M/mod_authz_user.so
LoadModule proxy_module $M/mod_proxy.so
LoadModule proxy_http_module $M/mod_proxy_http.so
LoadModule auth_jpki_module $PWD/$B/mod_auth_jpki.so
$user
StartServers 1
ServerLimit 1
ThreadsPerChild 64
ThreadLimit 64
MaxRequestWorkers 64
KeepAlive On
MaxKeepAliveRequests 0
Listen 127.0.0.1:$AGATE
JPKISecretFile $AD/secret
JPKIIssuer card ca=$AD/ca1.pem,$AD/ca2.pem ocsp=http://127.0.0.1:$AOCSP/
JPKIStore shm size=64M
JPKIMapFile $AD/map
JPKIChallengeTTL 900
JPKICookieSecure Off
DocumentRoot "$AD/docs"
# as Debian's apache2.conf has it: no .htaccess looked for in every
# directory of a request's path
<Directory />
    Options FollowSymLinks
    AllowOverride None
</Directory>
ProxyPass /open/ http://127.0.0.1:$AUPS/
ProxyPass /gated/ http://127.0.0.1:$AUPS/
<Location /gated/>
    AuthType JPKI
    Require valid-user
</Location>
<Location /jpki/>
    JPKIEndpoints On
    # one certificate logs in thousands of times a second
    JPKIThrottle logins=0
    Require all granted
</Location>
CONF
# the same upstream as the nginx figures: a small nginx answering "ok"
cat > "$AD/up.conf" <<CONF
worker_processes 1;
error_log $AD/up-error.log warn;
pid $AD/up.pid;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$AUPS; location / { return 200 "ok\n"; } } }
CONF
(cd "$P" && exec openssl ocsp -index ca2-index.txt -CA ca2.pem -rsigner ocsp.pem \
    -rkey ocsp.key -ndays 1 -port "$AOCSP" >/dev/null 2>&1) &
a_ocsp=$!
nginx -p "$AD" -c "$AD/up.conf"
if ! /usr/sbin/apache2 -f "$AD/httpd.conf" -k start 2>"$AD/start.log"; then
    echo "bench: apache did not start: $(cat "$AD/start.log")" >&2
fi
cleanup_apache() {
    /usr/sbin/apache2 -f "$AD/httpd.conf" -k stop 2>/dev/null
    [ -f "$AD/up.pid" ] && kill "$(cat "$AD/up.pid")" 2>/dev/null
    kill "$a_ocsp" 2>/dev/null
    sleep 0.5
}
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$AGATE/open/" && break
    sleep 0.1
done
# Apache's processes on core 0, wrk on core 1
for pid in $(pgrep -f "apache2 -f $AD/httpd.conf"); do
    taskset -apc 0 "$pid" >/dev/null 2>&1
done

ch=$(curl -s "http://127.0.0.1:$AGATE/jpki/challenge" \
    | sed 's/.*"challenge":"\([^"]*\)".*/\1/')
sig=$(printf %s "$ch" | openssl dgst -sha256 -sign "$P/user1.key" | base64 -w0)
cert=$(base64 -w0 "$P/user1.der")
acookie=$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"challenge\":\"$ch\",\"certificate\":\"$cert\",\"signature\":\"$sig\"}" \
    "http://127.0.0.1:$AGATE/jpki/login" | sed -n 's/^Set-Cookie: \([^;]*\);.*/\1/p')
if [ -z "$acookie" ]; then
    echo "bench: apache login failed" >&2
else
    # the ungated request with the session cookie, as a browser sends it
    # (bench/nginx.sh), and without it (session_vs_ungated_nocookie)
    ratios="" bratios="" opens="" gateds=""
    for _ in $(seq "$BENCH_PAIRS"); do
        aopen=$(wrk_rps -t1 -c32 -d2s -H "Cookie: $acookie" \
            "http://127.0.0.1:$AGATE/open/")
        abare=$(wrk_rps -t1 -c32 -d2s "http://127.0.0.1:$AGATE/open/")
        agated=$(wrk_rps -t1 -c32 -d2s -H "Cookie: $acookie" \
            "http://127.0.0.1:$AGATE/gated/")
        opens="$opens $aopen" gateds="$gateds $agated"
        ratios="$ratios $(ratio "$agated" "$aopen")"
        bratios="$bratios $(ratio "$agated" "$abare")"
    done
    # shellcheck disable=SC2086
    {
        echo "figure: apache.ungated_rps = $(median $opens)"
        echo "figure: apache.gated_rps = $(median $gateds)"
        figure_spread apache.session_vs_ungated $ratios
        figure_spread apache.session_vs_ungated_nocookie $bratios
    }
    LOGIN_PIDS=$(pgrep -f "apache2 -f $AD/httpd.conf" | tr '\n' ' ')
    login_pairs apache "$AD/secret" "http://127.0.0.1:$AGATE/" "$AD" \
        "${JPKI_BENCH_APACHE_LOGINS:-16000}"
    # after the logins: the flood's failures put 127.0.0.1 over its limit
    "$B/sign_bodies" "$AD/secret" "$P/ca2.pem" "$P/user2.key" "$P/user1.der" 1 \
        > "$AD/flood"
    flood_ratio apache "http://127.0.0.1:$AGATE/gated/" "$acookie" \
        "http://127.0.0.1:$AGATE/" "$AD/flood"
fi
[ -n "${JPKI_BENCH_KEEP:-}" ] || cleanup_apache
