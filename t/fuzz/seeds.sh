#!/usr/bin/env bash
# seeds.sh PKI OUT: the seed corpora of the fuzz targets, from the test PKI.
# fuzz_parsers: one byte choosing the parser, then the input.
set -eu
P=$1 O=$2
mkdir -p "$O/parsers" "$O/login"
seed() { { printf "\\x$1"; cat; } > "$O/parsers/$2"; }
seed 00 cert-der < "$P/user1.der"
seed 00 cert-pem < "$P/user-ec.pem"
seed 00 cert-phone < "$P/phone-user384.der"
seed 01 crl < "$P/ca2.crl"
seed 01 crl-empty < "$P/ca2-empty.crl"
# an OCSP response of the test responder's making (openssl ocsp -respout)
openssl ocsp -issuer "$P/ca2.pem" -cert "$P/user1.pem" -reqout "$O/req.der" -no_nonce >/dev/null 2>&1
openssl ocsp -index "$P/ca2-index.txt" -CA "$P/ca2.pem" -rsigner "$P/ocsp.pem" \
    -rkey "$P/ocsp.key" -reqin "$O/req.der" -respout "$O/resp.der" -ndays 1 >/dev/null 2>&1
seed 02 ocsp < "$O/resp.der"
rm -f "$O/req.der" "$O/resp.der"
printf 'HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: 5\r\n\r\nhello' | seed 03 http
printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' | seed 03 http-chunked
printf '+OK\r\n$3\r\nabc\r\n*2\r\n:1\r\n$-1\r\n-ERR x\r\n' | seed 04 resp
printf '7|b14|1795300498|1795386958|1042|1000000|1795303722' | seed 04 crlptr
printf '1|4|0|0|-1|0|0' | seed 04 crlptr-layout1
printf 'v1.AQEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' | seed 05 cookie
printf 'AgEAAAAAaSbdBTfTvr4C1N8XJkm3y5gZQn2PxM1vQbF5d0KXw9hE8tGkB1aIxJNqEVjzdFcQmZpYpLOcjW8uA6eRr2sTgHyU4ik0L' | seed 06 challenge
printf 'GATE.Example.:8443' | seed 06 host
printf '[FE80::1]:443' | seed 06 host-v6
printf '{"seq":1,"prev":"%064d","ts":1,"event":"login","mac":"%064d"}\n{"seq":2,"prev":"%064d","ts":2,"mac":"%064d"}\n{"seq":' 0 0 0 0 | seed 07 audit
printf '*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n' | seed 08 sentinel
printf '*3\r\n$6\r\nmaster\r\n:10\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n$2\r\n10\r\n' | seed 08 role
CERT=$(base64 -w0 "$P/user1.der")
SIG=$(head -c 256 /dev/urandom | base64 -w0)
printf '\x01{"challenge":"@CH@","certificate":"%s","signature":"%s"}' "$CERT" "$SIG" > "$O/login/json"
printf '\x03challenge=@CH@&certificate=%s&signature=%s&return_to=/x' "$CERT" "$SIG" > "$O/login/form"
printf '\x01{"challenge":"@CH@","certificate":"%s","signature":"%s","algorithm":"ecdsa-sha256"}' \
    "$(base64 -w0 "$P/user-ec.der")" "$SIG" > "$O/login/json-ec"
