#!/usr/bin/env bash
# make demo [SERVER=nginx|apache]: nginx (or Apache httpd) with the JPKI
# gate in front of a small upstream, on localhost, with the test PKI and the
# snippets of conf.example/ (Debian's layout); logs in with a signed
# challenge (openssl and curl play the card and the browser) and prints the
# protected page; then the same with a SoftHSM token as the card and the
# jpki-login client.
#   SERVER=apache bash tools/demo.sh   start and log in (default: nginx)
#   bash tools/demo.sh stop            stop what the demo started
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
B=${JPKI_BUILD:-build}
case $B in /*) ;; *) B=$TOP/$B ;; esac
P=$B/pki
D=$B/demo
PORT=${JPKI_DEMO_PORT:-8480}
OCSP_PORT=$((PORT + 1))
APP_PORT=$((PORT + 2))
SERVER=${SERVER:-nginx}
case $SERVER in
    nginx|apache) ;;
    *) echo "demo: SERVER is nginx or apache, not \"$SERVER\"" >&2; exit 2 ;;
esac

stop() {
    [ -f "$D/nginx.pid" ] && nginx -p "$D" -c "$D/nginx.conf" -s stop 2>/dev/null || true
    [ -f "$D/apache/run/apache2.pid" ] \
        && kill "$(cat "$D/apache/run/apache2.pid")" 2>/dev/null || true
    [ -f "$D/ocsp.pid" ] && kill "$(cat "$D/ocsp.pid")" 2>/dev/null || true
    rm -f "$D/ocsp.pid"
    for _ in $(seq 50); do
        [ -f "$D/apache/run/apache2.pid" ] || [ -f "$D/nginx.pid" ] || break
        sleep 0.1
    done
}
if [ "${1:-}" = stop ]; then stop; echo "demo stopped"; exit 0; fi

stop
rm -rf "$D/logs"
mkdir -p "$D/logs" "$D/www"
umask 077
printf 'secret %s\nkey 1 %s current\n' "$(openssl rand -hex 32)" \
    "$(openssl rand -hex 32)" > "$D/secret"
umask 022
cat "$P/ca1.pem" "$P/ca2.pem" > "$D/jlis-ca.pem"
rm -rf "$D/crl" && mkdir -p "$D/crl"
cp "$P/ca1.crl" "$P/ca2.crl" "$D/crl/"      # a CRL per CA key generation

demo_sed() {
    sed -e "s|/etc/jpki|$D|g; s|/var/www/jpki|$D/www|" \
        -e "s|/var/log/nginx|$D/logs|g; s|/var/log/apache2|$D/logs|g" \
        -e "s|127.0.0.1:8888|127.0.0.1:$OCSP_PORT|; s|127.0.0.1:8080|127.0.0.1:$PORT|" \
        -e "s|127.0.0.1:9000|127.0.0.1:$APP_PORT|" "$@"
}
rm -rf "$D/modules-enabled" "$D/conf.d" "$D/sites-enabled" "$D/apache"

# The snippets a newcomer starts from (conf.example/nginx/, Debian's layout:
# modules-enabled, conf.d, sites-enabled), with the demo's paths and ports,
# under a main nginx.conf shaped like Debian's; with SERVER=apache, only the
# application (a small server showing what the gate told it).
nginx_conf() {
    mkdir -p "$D/modules-enabled" "$D/conf.d" "$D/sites-enabled"
    sed "s|modules/ngx_http_jpki_module.so|$B/ngx_http_jpki_module.so|" \
        conf.example/nginx/modules-available/mod-http-jpki.conf \
        > "$D/modules-enabled/50-mod-http-jpki.conf"
    demo_sed conf.example/nginx/conf.d/jpki.conf > "$D/conf.d/jpki.conf"
    # The demo is plain http on localhost: let the browser keep the cookie.
    echo 'jpki_cookie_secure off;' >> "$D/conf.d/jpki.conf"
    demo_sed conf.example/nginx/sites-available/jpki > "$D/sites-enabled/jpki"
    if [ "$SERVER" = apache ]; then
        rm -f "$D/modules-enabled/"* "$D/conf.d/"* "$D/sites-enabled/"*
    fi
    cat > "$D/nginx.conf" <<CONF
include $D/modules-enabled/*.conf;
worker_processes 2;
pid $D/nginx.pid;
error_log $D/logs/error.log;
events { worker_connections 768; }
http {
    access_log $D/logs/access.log;
    client_body_temp_path $D/body;
    proxy_temp_path $D/proxy;
    include $D/conf.d/*.conf;
    include $D/sites-enabled/*;

    # A small upstream application: shows what the gate told it.
    server {
        listen 127.0.0.1:$APP_PORT;
        location / {
            default_type text/plain;
            return 200 "Protected page of the demo application.\\nThe gate says the account is: \$http_x_jpki_account\\n";
        }
    }
}
CONF
}

# Apache: the snippets of conf.example/apache2/ (mods-enabled, conf-enabled,
# sites-enabled) under an apache2.conf shaped like Debian's.
apache_conf() {
    local A=$D/apache M=/usr/lib/apache2/modules
    mkdir -p "$A/mods-enabled" "$A/conf-enabled" "$A/sites-enabled" "$A/run"
    sed "s|/usr/lib/apache2/modules/mod_auth_jpki.so|$B/mod_auth_jpki.so|" \
        conf.example/apache2/mods-available/auth_jpki.load \
        > "$A/mods-enabled/auth_jpki.load"
    demo_sed conf.example/apache2/conf-available/jpki.conf > "$A/conf-enabled/jpki.conf"
    # The demo is plain http on localhost: let the browser keep the cookie.
    echo 'JPKICookieSecure Off' >> "$A/conf-enabled/jpki.conf"
    demo_sed conf.example/apache2/sites-available/jpki.conf \
        > "$A/sites-enabled/jpki.conf"
    {
        echo "DefaultRuntimeDir $A/run"
        echo "PidFile $A/run/apache2.pid"
        echo "ServerName localhost"
        [ "$(id -u)" = 0 ] && printf 'User nobody\nGroup nogroup\n'
        echo "ErrorLog $D/logs/error.log"
        for m in mpm_event authn_core authz_core authz_host authz_user proxy \
                 proxy_http; do
            echo "LoadModule ${m}_module $M/mod_$m.so"
        done
        printf '<Directory />\n    AllowOverride None\n    Require all denied\n</Directory>\n'
        printf '<Directory %s/www>\n    Require all granted\n</Directory>\n' "$D"
        echo "IncludeOptional mods-enabled/*.load"
        echo "IncludeOptional conf-enabled/*.conf"
        echo "IncludeOptional sites-enabled/*.conf"
    } > "$A/apache2.conf"
}

nginx_conf
if [ "$SERVER" = apache ]; then apache_conf; fi

# The J-LIS OCSP responder's stand-in.
(cd "$P" && exec openssl ocsp -index ca2-index.txt -CA ca2.pem \
    -rsigner ocsp.pem -rkey ocsp.key -ndays 1 -port "$OCSP_PORT" \
    > "$D/logs/ocsp.log" 2>&1) &
echo $! > "$D/ocsp.pid"

# Map the demo card's certificate to an account (cert_id, never the serial).
# The secret is new on every run, so are the cert_ids: a fresh file.
rm -f "$D/accounts"
"$B/jpkictl" map add --cert "$P/user1.pem" --issuer "card=$D/jlis-ca.pem" \
    --secret-file "$D/secret" --account demo-user-0001 \
    --map-file "$D/accounts" >/dev/null
# A new mapping file is 0640 (it says who may log in as whom); a site gives
# it the group of the server's workers.  The demo's workers run as nobody.
chmod 0644 "$D/accounts"

nginx -t -q -p "$D" -c "$D/nginx.conf"
nginx -p "$D" -c "$D/nginx.conf"
if [ "$SERVER" = apache ]; then
    apache2 -t -d "$D/apache" -f "$D/apache/apache2.conf" 2>&1 \
        | grep -v 'Syntax OK' >&2 || true
    apache2 -d "$D/apache" -f "$D/apache/apache2.conf" -k start
fi
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/jpki/status" && break
    sleep 0.1
done

U=http://127.0.0.1:$PORT
echo "== 1. Without a session the application is closed:"
curl -s "$U/account/"; echo
echo "== 2. The site gives a challenge:"
CH=$(curl -s "$U/jpki/challenge" | sed 's/.*"challenge":"\([^"]*\)".*/\1/')
echo "   $CH"
echo "== 3. The card signs it (here: openssl with the test key); the client sends"
echo "      challenge, certificate and signature:"
SIG=$(printf %s "$CH" | openssl dgst -sha256 -sign "$P/user1.key" | base64 -w0)
CERT=$(base64 -w0 "$P/user1.der")
curl -s -c "$D/cookies" -H 'Content-Type: application/json' \
    -d "{\"challenge\":\"$CH\",\"certificate\":\"$CERT\",\"signature\":\"$SIG\"}" \
    "$U/jpki/login"; echo
echo "== 4. With the session cookie, the protected page:"
curl -s -b "$D/cookies" -H 'X-JPKI-Account: someone-else' "$U/account/"
echo "   (the X-JPKI-Account header the client sent was removed by the gate)"
echo "== 5. The same signed challenge again is refused:"
curl -s -H 'Content-Type: application/json' \
    -d "{\"challenge\":\"$CH\",\"certificate\":\"$CERT\",\"signature\":\"$SIG\"}" \
    "$U/jpki/login"; echo
if command -v softhsm2-util >/dev/null && command -v pkcs11-tool >/dev/null \
   && [ -x "$B/jpki-login" ]; then
    echo "== 6. The same with a PKCS#11 token as the card (SoftHSM here, OpenSC's"
    echo "      module with a real My Number Card) and the jpki-login client:"
    T=$D/token
    rm -rf "$T" && mkdir -p "$T/tokens"
    printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\n' "$T" \
        > "$T/softhsm2.conf"
    export SOFTHSM2_CONF=$T/softhsm2.conf
    HSM=/usr/lib/softhsm/libsofthsm2.so
    softhsm2-util --init-token --free --label demo-card --so-pin 12345678 \
        --pin 1234 >/dev/null
    openssl pkcs8 -topk8 -nocrypt -in "$P/user1.key" -out "$T/user1.p8"
    softhsm2-util --import "$T/user1.p8" --token demo-card --label auth \
        --id 01 --pin 1234 >/dev/null
    pkcs11-tool --module "$HSM" --token-label demo-card --login --pin 1234 \
        --write-object "$P/user1.der" --type cert --id 01 --label auth \
        >/dev/null 2>&1
    rm -f "$T/user1.p8"
    (umask 077; echo 1234 > "$T/pin")
    echo "   \$ jpki-login --url $U/jpki --module $HSM --pin-file PIN --cookie-jar JAR"
    "$B/jpki-login" --url "$U/jpki" --module "$HSM" --pin-file "$T/pin" \
        --cookie-jar "$T/jar" | sed 's/^/   /'
    curl -s -b "$T/jar" "$U/account/" | sed 's/^/   /'
    echo "== 7. The login page's device flow: a browser's page starts it (the QR"
    echo "      code and jpki: link of $U/jpki/login), a phone or jpki-login signs:"
    LINK=$(curl -s -c "$T/browser" -H 'Accept: application/json' -X POST \
           "$U/jpki/device" | grep -o '"link":"[^"]*"' | cut -d'"' -f4)
    echo "   \$ jpki-login --device $LINK ..." | cut -c1-78
    "$B/jpki-login" --device "$LINK" --module "$HSM" --pin-file "$T/pin" \
        2>&1 | sed 's/^/   /'
    echo "   the browser's poll:"
    curl -s -b "$T/browser" -c "$T/browser" -H 'Accept: application/json' \
        "$U/jpki/poll" | sed 's/^/   /'; echo
    curl -s -b "$T/browser" "$U/account/" | sed 's/^/   /'
fi
echo "== Audit lines (error log):"
grep -o 'jpki audit: .*' "$D/logs/error.log" | sed 's/, client:.*//' | awk 'NR <= 3'
echo
echo "The demo runs at $U/ ($SERVER and an OCSP responder); its login page:"
echo "$U/jpki/login"
echo "Stop it with: bash tools/demo.sh stop"
