#!/usr/bin/env bash
# make demo: the core against the test PKI (the nginx demo replaces this once
# the nginx module lands, see issue 3).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${JPKI_BUILD:-build}
P=$B/pki
CTL=$B/jpkictl
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "A user-authentication certificate checked against the two CA generations"
$CTL cert-check --cert "$P/user1.pem" --issuer "card=$P/ca1.pem,$P/ca2.pem"

step "Refusals, each with its reason"
for c in user-expired user-foreign user-isca user-nopolicy; do
    $CTL cert-check --cert "$P/$c.pem" --issuer "card=$P/ca1.pem,$P/ca2.pem" \
        || true
done

step "The card signs a challenge (here: openssl with the test key)"
openssl rand -base64 48 | tr -d '\n' > "$tmp/challenge"
openssl dgst -sha256 -sign "$P/user1.key" -out "$tmp/sig" "$tmp/challenge"
echo "challenge: $(cat "$tmp/challenge")"
$CTL sig-verify --cert "$P/user1.pem" --alg rsa-pkcs1-sha256 \
    --msg "$tmp/challenge" --sig "$tmp/sig"
printf 'tampered' >> "$tmp/challenge"
$CTL sig-verify --cert "$P/user1.pem" --alg rsa-pkcs1-sha256 \
    --msg "$tmp/challenge" --sig "$tmp/sig" || true

step "The CA's CRL"
$CTL crl inspect --crl "$P/ca2.crl" --issuer "card=$P/ca1.pem,$P/ca2.pem" \
    || true

step "Whole logins through the core's transaction (embedded store, openssl ocsp)"
make -s "$B/t/test_txn" >/dev/null
JPKI_TEST_PKI=$PWD/$P "$B/t/test_txn" | grep -E '^(ok|not ok)' \
    | sed 's/^ok [0-9]* - /  pass: /; s/^not ok [0-9]* - /  FAIL: /'
echo
echo "Demo done: nothing is left running."
