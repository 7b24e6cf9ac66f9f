#!/usr/bin/env bash
# t/pki/mkpki.sh OUTDIR -- build a JPKI-like test PKI with the openssl CLI.
#
#   bash t/pki/mkpki.sh build/pki
#
# OUTDIR is removed and recreated.  Needs only `openssl` (3.0+) and coreutils.
# Keys are unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY"), certificates PEM;
# every leaf also has a DER copy.  All serial numbers are random 72-bit
# positive values (first hex digit 1..7).  "J-LIS DN" below means
#   /C=JP/O=JPKI/OU=JPKI for user authentication/OU=Japan Agency for Local Authority Information Systems
# (PrintableString encoded).  Times are relative to the moment the script runs.
#
# Files produced in OUTDIR
# ------------------------
# Card user-authentication CA (RSA 2048, SHA-256, self-signed, J-LIS DN,
# valid from 2 years ago for 10 years, CA:TRUE critical, KU keyCertSign+cRLSign
# critical, SKI hash, AKI keyid):
#   ca1.key ca1.pem              old key generation
#   ca2.key ca2.pem              new key generation (same DN as ca1)
# Link certificates (subject = issuer = J-LIS DN, CA:TRUE, same validity):
#   link-new-with-old.pem        ca2's key, signed by ca1 (AKI = ca1 SKI, SKI = ca2 SKI)
#   link-old-with-new.pem        ca1's key, signed by ca2 (AKI = ca2 SKI, SKI = ca1 SKI)
#                                -> verifies ca1-issued leaves against a ca2-only anchor:
#                                   openssl verify -CAfile ca2.pem -untrusted link-old-with-new.pem user-old.pem
#                                   (and the reverse: -CAfile ca1.pem -untrusted link-new-with-old.pem user1.pem)
#   all-cas.pem                  ca1.pem ca2.pem link-new-with-old.pem link-old-with-new.pem
# Unrelated CA with the SAME J-LIS DN but its own RSA 2048 key:
#   other-ca.key other-ca.pem
# User-authentication leaves (NAME.key NAME.pem NAME.der), subject /CN=<20 hex>/C=JP,
# RSA 2048, BC critical CA:FALSE, KU critical digitalSignature, policy
# 1.2.392.200149.8.5.1.3.30, SKI, AKI keyid, CRLDP dirName (J-LIS CRL DP DN),
# AIA OCSP http://127.0.0.1:8888/, valid 1 day ago .. +4 years, unless noted:
#   user1 user2                  issued by ca2 (good users)
#   user-old                     issued by ca1
#   user-expired                 ca2; 3 years ago .. 2 days ago
#   user-notyet                  ca2; +2 days .. +3 years
#   user-nopolicy                ca2; no certificatePolicies
#   user-otherpolicy             ca2; policy 1.2.392.200149.8.5.1.1.10
#   user-isca                    ca2; basicConstraints critical CA:TRUE
#   user-keyenc                  ca2; keyUsage critical keyEncipherment only
#   user-rsa1024                 ca2; RSA 1024 key
#   user-ec                      ca2; EC P-256 key
#   user-foreign                 issued by other-ca
#   rev-unspecified rev-keyCompromise rev-cACompromise rev-affiliationChanged
#   rev-superseded rev-cessationOfOperation rev-certificateHold
#                                ca2; revoked with that reason (hold: instruction
#                                holdInstructionReject); valid 30 days ago .. +4 years,
#                                revocation time 10 days ago
#   user-old-revoked             ca1; revoked keyCompromise (30 days ago .. +4 years,
#                                revoked 10 days ago)
# Weak algorithms in the path (each refused with cert_signature_algorithm
# where noted; their database rows go to db/weak-index.txt, so that the
# files above, ca2-index.txt included, are the same as without them):
#   user-sha1                    ca2, signed with sha1WithRSAEncryption; otherwise
#                                as user1 (refused)
#   ca3.key ca3.pem              a third key generation (RSA 2048, SHA-256, J-LIS DN,
#                                self-signed, as ca1/ca2)
#   link-ca3-with-ca2-sha1.pem   ca3's key, signed by ca2 with sha1WithRSAEncryption
#                                (AKI = ca2 SKI, SKI = ca3 SKI)
#   user-ca3                     issued by ca3 (SHA-256): passes with ca3.pem as
#                                anchor, refused with ca2.pem + link-ca3-with-ca2-sha1.pem
#   link-rsa1024.key link-rsa1024.pem  J-LIS DN, CA:TRUE, RSA 1024 key, issued by ca2
#                                (SHA-256): an intermediate with a weak key
#   user-under-rsa1024           issued by link-rsa1024 (SHA-256); refused with
#                                ca2.pem + link-rsa1024.pem
#   ca-sha1self.key ca-sha1self.pem  RSA 2048 CA (J-LIS DN) self-signed with
#                                sha1WithRSAEncryption: an anchor's own signature
#                                is not checked
#   user-sha1self                issued by ca-sha1self (SHA-256): passes with
#                                ca-sha1self.pem as anchor
# Delegated OCSP responders (RSA 2048, KU critical digitalSignature, EKU OCSPSigning,
# id-pkix-ocsp-nocheck, policy 1.2.392.200149.8.5.1.3.330, 1 day ago .. +5 years,
# subject J-LIS DN + CN=...):
#   ocsp.key ocsp.pem            issued by ca2
#   ocsp1.key ocsp1.pem          issued by ca1
#   ocsp-noeku.key ocsp-noeku.pem  issued by ca2, no extendedKeyUsage at all
#   ocsp-foreign.key ocsp-foreign.pem  issued by other-ca
# OpenSSL CA databases (for `openssl ocsp -index`), + their .attr files:
#   ca2-index.txt                everything ca2 issued (users, rev-*, ocsp, ocsp-noeku,
#                                link-old-with-new); rev-* marked R with their reasons
#   ca1-index.txt                everything ca1 issued (user-old, user-old-revoked (R),
#                                ocsp1, link-new-with-old)
#   other-ca-index.txt           user-foreign, ocsp-foreign
#   phone-index.txt              phone-user, phone-user384, phone-ocsp
# CRLs, each as NAME.crl.pem (PEM) and NAME.crl (DER); all carry crlNumber and AKI:
#   ca2.crl          ca2, thisUpdate now-1min, nextUpdate now+1day, 7 rev-* entries; crlNumber 2
#   ca2-stale.crl    ca2, 5 days ago .. 4 days ago, same 7 entries;                  crlNumber 1
#   ca2-released.crl ca2, current, 6 entries (rev-certificateHold released);         crlNumber 3
#   ca2-empty.crl    ca2, current, no entries;                                      crlNumber 4
#   ca2-future.crl   ca2, thisUpdate +2 days, nextUpdate +3 days, same 7 entries;   crlNumber 5
#   ca2-wrongkey.crl J-LIS DN (issued as other-ca), signed by other-ca's key, 7 entries; crlNumber 2
#   ca1.crl          ca1, current, user-old-revoked (keyCompromise);               crlNumber 1
#   phone-ca.crl     phone-ca, current, empty;                                      crlNumber 1
# Smartphone CA (EC P-256, ecdsa-with-SHA256, DN
#   /C=JP/O=JPKI/OU=JPKI for smartphone user authentication/OU=Japan Agency for Local Authority Information Systems):
#   phone-ca.key phone-ca.pem
#   phone-user.{key,pem,der}     EC P-256 leaf, same extension layout as card users
#   phone-user384.{key,pem,der}  EC P-384 leaf
#   phone-ocsp.key phone-ocsp.pem  delegated OCSP responder of phone-ca (EC P-256)
# Working state (not needed by tests; lets `openssl ca -config db/openssl.cnf`
# be used again, see the CA_* variables in it):
#   db/openssl.cnf db/*.serial db/*.crlnum db/*-index.txt (scratch and CRL-variant
#   databases) db/newcerts/ (empty)
#
# OCSP (run in OUTDIR; checked with OpenSSL 3.0):
#   one-shot, local index: writes request and signed response, prints nothing
#   (add -resp_text to dump it); with -index the response is NOT verified:
#     openssl ocsp -index ca2-index.txt -CA ca2.pem -rsigner ocsp.pem -rkey ocsp.key \
#       -rmd sha256 -ndays 1 -issuer ca2.pem -cert rev-keyCompromise.pem \
#       -reqout req.der -respout resp.der
#   check it (status, reason, revocation time; -no_nonce because -cert builds a
#   new request whose nonce differs from req.der's):
#     openssl ocsp -respin resp.der -issuer ca2.pem -cert rev-keyCompromise.pem \
#       -CAfile ca2.pem -no_nonce
#   responder (-port is a bare number, listens on all addresses; -nrequest N exits
#   after N requests; CA ca1: -index ca1-index.txt -CA ca1.pem -rsigner ocsp1.pem):
#     openssl ocsp -index ca2-index.txt -CA ca2.pem -rsigner ocsp.pem -rkey ocsp.key \
#       -rmd sha256 -ndays 1 -port 8888
#   client:
#     openssl ocsp -issuer ca2.pem -cert user1.pem -cert rev-certificateHold.pem \
#       -url http://127.0.0.1:8888/ -CAfile ca2.pem
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

OUT=$1
rm -rf -- "$OUT"
mkdir -p -- "$OUT/db/newcerts"
cd -- "$OUT"

CNF=db/openssl.cnf
OCSP_URL=http://127.0.0.1:8888/
JLIS_OU="Japan Agency for Local Authority Information Systems"
CA_DN="/C=JP/O=JPKI/OU=JPKI for user authentication/OU=$JLIS_OU"
PHONE_DN="/C=JP/O=JPKI/OU=JPKI for smartphone user authentication/OU=$JLIS_OU"
POLICY_USER=1.2.392.200149.8.5.1.3.30
POLICY_OCSP=1.2.392.200149.8.5.1.3.330
POLICY_OTHER=1.2.392.200149.8.5.1.1.10

# ---------------------------------------------------------------- helpers

# ts 'RELATIVE' -> GeneralizedTime-style string for openssl ca / -crl_*update
ts() { date -u -d "$1" +%Y%m%d%H%M%SZ; }

# Run a command quietly; on failure show what it printed.
run() {
    local log
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        echo "mkpki: command failed: $*" >&2
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

# 20 random upper-case hex characters (the leaf CN)
randcn() { openssl rand -hex 10 | tr a-f A-F; }

# Write a random positive 72-bit serial (first hex digit 1..7) to file $1.
newserial() {
    local h
    h=$(openssl rand -hex 9 | tr a-f A-F)
    printf '%X%s\n' $(( (16#${h:0:1} % 7) + 1 )) "${h:1}" >"$1"
}

genkey() { # FILE TYPE
    case $2 in
        rsa2048) run openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" ;;
        rsa1024) run openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$1" ;;
        p256)    run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
                     -pkeyopt ec_param_enc:named_curve -out "$1" ;;
        p384)    run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 \
                     -pkeyopt ec_param_enc:named_curve -out "$1" ;;
        *) echo "mkpki: bad key type $2" >&2; return 1 ;;
    esac
}

# Select the CA database: DB NAME [INDEXFILE]. INDEXFILE defaults to NAME-index.txt.
# State files live in db/; the crlnumber file is per NAME.
usedb() {
    local idx=$1-index.txt
    [ "$1" != phone-ca ] || idx=phone-index.txt
    export CA_DB=${2:-$idx}
    export CA_SERIAL=db/$1.serial
    export CA_CRLNUM=db/$1.crlnum
    [ -f "$CA_DB" ] || : >"$CA_DB"
    [ -f "$CA_CRLNUM" ] || echo 01 >"$CA_CRLNUM"
    [ -f "$CA_SERIAL" ] || newserial "$CA_SERIAL"
}

# The config resolves these at load time; give them harmless defaults.
export CA_DB=db/unused-index.txt CA_SERIAL=db/unused.serial CA_CRLNUM=db/unused.crlnum
export CA_NEWCERTS=db/newcerts

# ---------------------------------------------------------------- config

emit_leaf_ext() { # SECTION BASICCONSTRAINTS KEYUSAGE POLICY|- CRLDP-SECTION
    echo "[$1]"
    echo "basicConstraints = critical,$2"
    echo "keyUsage = critical,$3"
    [ "$4" = - ] || echo "certificatePolicies = $4"
    echo "subjectKeyIdentifier = hash"
    echo "authorityKeyIdentifier = keyid"
    echo "crlDistributionPoints = $5"
    echo "authorityInfoAccess = OCSP;URI:$OCSP_URL"
    echo
}

emit_ocsp_ext() { # SECTION WITH-EKU(yes|no)
    echo "[$1]"
    echo "basicConstraints = CA:FALSE"
    echo "keyUsage = critical,digitalSignature"
    [ "$2" = no ] || echo "extendedKeyUsage = OCSPSigning"
    echo "noCheck = ignored"
    echo "certificatePolicies = $POLICY_OCSP"
    echo "subjectKeyIdentifier = hash"
    echo "authorityKeyIdentifier = keyid"
    echo
}

{
cat <<EOF
# generated by t/pki/mkpki.sh
# Use with: CA_DB=<index> CA_SERIAL=<file> CA_CRLNUM=<file> CA_NEWCERTS=db/newcerts
HOME = .

[ca]
default_ca = ca_default

[ca_default]
database = \$ENV::CA_DB
serial = \$ENV::CA_SERIAL
crlnumber = \$ENV::CA_CRLNUM
new_certs_dir = \$ENV::CA_NEWCERTS
default_md = sha256
default_days = 365
default_crl_days = 1
policy = policy_any
email_in_dn = no
unique_subject = no
copy_extensions = none
string_mask = default
name_opt = ca_default
cert_opt = ca_default
crl_extensions = crl_ext

[policy_any]
countryName = optional
stateOrProvinceName = optional
localityName = optional
organizationName = optional
organizationalUnitName = optional
commonName = optional

[req]
distinguished_name = req_dn
string_mask = default
utf8 = no

[req_dn]

[crl_ext]
authorityKeyIdentifier = keyid:always

[ext_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[crldp_card]
fullname = dirName:crldp_card_dn

[crldp_card_dn]
C = JP
O = JPKI
0.OU = JPKI for user authentication
1.OU = CRL Distribution Points
2.OU = $JLIS_OU
CN = JPKI-TEST-CRLDP-01

[crldp_phone]
fullname = dirName:crldp_phone_dn

[crldp_phone_dn]
C = JP
O = JPKI
0.OU = JPKI for smartphone user authentication
1.OU = CRL Distribution Points
2.OU = $JLIS_OU
CN = JPKI-TEST-CRLDP-01

EOF
emit_leaf_ext ext_user        CA:FALSE digitalSignature "$POLICY_USER"  crldp_card
emit_leaf_ext ext_nopolicy    CA:FALSE digitalSignature -               crldp_card
emit_leaf_ext ext_otherpolicy CA:FALSE digitalSignature "$POLICY_OTHER" crldp_card
emit_leaf_ext ext_isca        CA:TRUE  digitalSignature "$POLICY_USER"  crldp_card
emit_leaf_ext ext_keyenc      CA:FALSE keyEncipherment  "$POLICY_USER"  crldp_card
emit_leaf_ext ext_phone       CA:FALSE digitalSignature "$POLICY_USER"  crldp_phone
emit_ocsp_ext ext_ocsp yes
emit_ocsp_ext ext_ocsp_noeku no
} >"$CNF"

# ---------------------------------------------------------------- issuing

# ISSUE_MD (e.g. sha1) overrides the signing digest of mkca and issue;
# ISSUE_DB the CA database they record into (default: NAME-index.txt,
# db/selfsigned-index.txt for mkca).
md_opt() { [ -z "${ISSUE_MD:-}" ] || printf '%s\n' -md "$ISSUE_MD"; }

# mkca NAME KEYTYPE DN : self-signed CA, 2 years ago .. +8 years (10 years).
mkca() {
    local name=$1 kt=$2 dn=$3
    genkey "$name.key" "$kt"
    run openssl req -new -config "$CNF" -key "$name.key" -subj "$dn" -out "db/$name.csr"
    # self-signed certs go to a scratch database, not into the CA's index
    usedb selfsigned "${ISSUE_DB:-db/selfsigned-index.txt}"
    newserial "$CA_SERIAL"
    run openssl ca -batch -config "$CNF" -selfsign -preserveDN -notext $(md_opt) -keyfile "$name.key" \
        -in "db/$name.csr" -out "$name.pem" -extensions ext_ca \
        -startdate "$CA_START" -enddate "$CA_END"
}

# issue NAME ISSUER KEYTYPE EXTSECTION START END [SUBJECT [KEYFILE]]
# START/END are already formatted times.  If KEYFILE is given no key is made.
issue() {
    local name=$1 ca=$2 kt=$3 ext=$4 start=$5 end=$6
    local subj=${7:-/CN=$(randcn)/C=JP} key=${8:-$1.key}
    [ -n "${8:-}" ] || genkey "$key" "$kt"
    run openssl req -new -config "$CNF" -key "$key" -subj "$subj" -out "db/$name.csr"
    usedb "$ca" "${ISSUE_DB:-}"
    newserial "$CA_SERIAL"
    # -preserveDN: keep the CSR's RDN order (/CN=.../C=JP); the config
    # option "preserve = yes" is not honoured by openssl ca 3.0.
    run openssl ca -batch -config "$CNF" -preserveDN -notext $(md_opt) -cert "$ca.pem" -keyfile "$ca.key" \
        -in "db/$name.csr" -out "$name.pem" -extensions "$ext" \
        -startdate "$start" -enddate "$end"
}

leaf() { # NAME ISSUER KEYTYPE EXT START END
    issue "$@"
    run openssl x509 -in "$1.pem" -outform DER -out "$1.der"
}

revoke() { # NAME ISSUER REASON
    usedb "$2"
    if [ "$3" = certificateHold ]; then
        # openssl ca 3.0 also accepts `-crl_reason certificateHold` alone
        # (reason 6, no instruction).  -crl_hold OID records
        # "holdInstruction,holdInstructionReject" in the index, which gives
        # reason certificateHold plus a holdInstructionCode entry extension in
        # the CRL and a Hold Instruction Code single extension in OCSP replies.
        run openssl ca -batch -config "$CNF" -cert "$2.pem" -keyfile "$2.key" \
            -revoke "$1.pem" -crl_hold holdInstructionReject
    else
        run openssl ca -batch -config "$CNF" -cert "$2.pem" -keyfile "$2.key" \
            -revoke "$1.pem" -crl_reason "$3"
    fi
}

# backdate_revocations INDEX YYMMDDHHMMSSZ : set the revocation time of all R rows.
backdate_revocations() {
    local tmp
    tmp=$(mktemp)
    awk -F'\t' -v OFS='\t' -v d="$2" '
        $1 == "R" { n = split($3, a, ","); s = d; for (i = 2; i <= n; i++) s = s "," a[i]; $3 = s }
        { print }' "$1" >"$tmp"
    cat "$tmp" >"$1"
    rm -f "$tmp"
}

gencrl() { # OUTNAME ISSUER LASTUPDATE NEXTUPDATE [INDEXFILE [CRLNUM-NAME]]
    usedb "${6:-$2}" "${5:-$2-index.txt}"
    run openssl ca -batch -config "$CNF" -gencrl -cert "$2.pem" -keyfile "$2.key" \
        -crl_lastupdate "$3" -crl_nextupdate "$4" -out "$1.crl.pem"
    run openssl crl -in "$1.crl.pem" -outform DER -out "$1.crl"
}

# ---------------------------------------------------------------- times

CA_START=$(ts '2 years ago');       CA_END=$(ts '2 years ago + 10 years')
U_START=$(ts '1 day ago');          U_END=$(ts '+4 years')
R_START=$(ts '30 days ago')
REV_AT=$(date -u -d '10 days ago' +%y%m%d%H%M%SZ)   # index.txt uses UTCTime
OCSP_END=$(ts '+5 years')

# ---------------------------------------------------------------- CAs

mkca ca1 rsa2048 "$CA_DN"
mkca ca2 rsa2048 "$CA_DN"
mkca other-ca rsa2048 "$CA_DN"
mkca phone-ca p256 "$PHONE_DN"

# link certificates, recorded in the issuing CA's index
issue link-new-with-old ca1 - ext_ca "$CA_START" "$CA_END" "$CA_DN" ca2.key
issue link-old-with-new ca2 - ext_ca "$CA_START" "$CA_END" "$CA_DN" ca1.key
cat ca1.pem ca2.pem link-new-with-old.pem link-old-with-new.pem >all-cas.pem

# ---------------------------------------------------------------- leaves

leaf user1            ca2 rsa2048 ext_user        "$U_START" "$U_END"
leaf user2            ca2 rsa2048 ext_user        "$U_START" "$U_END"
leaf user-old         ca1 rsa2048 ext_user        "$U_START" "$U_END"
leaf user-expired     ca2 rsa2048 ext_user        "$(ts '3 years ago')" "$(ts '2 days ago')"
leaf user-notyet      ca2 rsa2048 ext_user        "$(ts '+2 days')" "$(ts '+3 years')"
leaf user-nopolicy    ca2 rsa2048 ext_nopolicy    "$U_START" "$U_END"
leaf user-otherpolicy ca2 rsa2048 ext_otherpolicy "$U_START" "$U_END"
leaf user-isca        ca2 rsa2048 ext_isca        "$U_START" "$U_END"
leaf user-keyenc      ca2 rsa2048 ext_keyenc      "$U_START" "$U_END"
leaf user-rsa1024     ca2 rsa1024 ext_user        "$U_START" "$U_END"
leaf user-ec          ca2 p256    ext_user        "$U_START" "$U_END"
leaf user-foreign     other-ca rsa2048 ext_user   "$U_START" "$U_END"

REASONS="unspecified keyCompromise cACompromise affiliationChanged superseded cessationOfOperation certificateHold"
for r in $REASONS; do
    leaf "rev-$r" ca2 rsa2048 ext_user "$R_START" "$U_END"
done
leaf user-old-revoked ca1 rsa2048 ext_user "$R_START" "$U_END"

issue ocsp         ca2      rsa2048 ext_ocsp       "$U_START" "$OCSP_END" "$CA_DN/CN=OCSP Responder 2"
issue ocsp1        ca1      rsa2048 ext_ocsp       "$U_START" "$OCSP_END" "$CA_DN/CN=OCSP Responder 1"
issue ocsp-noeku   ca2      rsa2048 ext_ocsp_noeku "$U_START" "$OCSP_END" "$CA_DN/CN=OCSP Responder 2 no EKU"
issue ocsp-foreign other-ca rsa2048 ext_ocsp       "$U_START" "$OCSP_END" "$CA_DN/CN=OCSP Responder foreign"

leaf  phone-user    phone-ca p256 ext_phone "$U_START" "$U_END"
leaf  phone-user384 phone-ca p384 ext_phone "$U_START" "$U_END"
issue phone-ocsp    phone-ca p256 ext_ocsp  "$U_START" "$OCSP_END" "$PHONE_DN/CN=OCSP Responder phone"

# ---------------------------------------------------------------- revocation

for r in $REASONS; do
    revoke "rev-$r" ca2 "$r"
done
revoke user-old-revoked ca1 keyCompromise
backdate_revocations ca2-index.txt "$REV_AT"
backdate_revocations ca1-index.txt "$REV_AT"

# ---------------------------------------------------------------- CRLs

NOW_M1=$(ts '1 minute ago'); NEXT=$(ts '+1 day')

# crlNumber order for ca2: stale 1, current 2, released 3, empty 4, future 5
gencrl ca2-stale ca2 "$(ts '5 days ago')" "$(ts '4 days ago')"
gencrl ca2       ca2 "$NOW_M1" "$NEXT"

# released: the certificateHold entry turned back into a valid row
awk -F'\t' -v OFS='\t' '$1 == "R" && $3 ~ /certificateHold|holdInstruction/ { $1 = "V"; $3 = "" } { print }' \
    ca2-index.txt >db/ca2-released-index.txt
gencrl ca2-released ca2 "$NOW_M1" "$NEXT" db/ca2-released-index.txt
: >db/ca2-empty-index.txt
gencrl ca2-empty    ca2 "$NOW_M1" "$NEXT" db/ca2-empty-index.txt
gencrl ca2-future   ca2 "$(ts '+2 days')" "$(ts '+3 days')"

# wrong key: other-ca has the same DN; give it ca2's entries and crlNumber 2
cp ca2-index.txt db/ca2-wrongkey-index.txt
echo 02 >db/ca2-wrongkey.crlnum
gencrl ca2-wrongkey other-ca "$NOW_M1" "$NEXT" db/ca2-wrongkey-index.txt ca2-wrongkey

gencrl ca1      ca1      "$NOW_M1" "$NEXT"
gencrl phone-ca phone-ca "$NOW_M1" "$NEXT" phone-index.txt phone-ca

# ---------------------------------------------------------------- weak algorithms

# Made last, recorded in db/weak-index.txt: every file above stays as it was.
# ISSUE_MD/ISSUE_DB are bash function-call assignments (restored after).
W=db/weak-index.txt
ISSUE_DB=$W ISSUE_MD=sha1 leaf user-sha1 ca2 rsa2048 ext_user "$U_START" "$U_END"

ISSUE_DB=$W mkca ca3 rsa2048 "$CA_DN"
ISSUE_DB=$W ISSUE_MD=sha1 issue link-ca3-with-ca2-sha1 ca2 - ext_ca "$CA_START" "$CA_END" "$CA_DN" ca3.key
ISSUE_DB=$W leaf user-ca3 ca3 rsa2048 ext_user "$U_START" "$U_END"

ISSUE_DB=$W issue link-rsa1024 ca2 rsa1024 ext_ca "$CA_START" "$CA_END" "$CA_DN"
ISSUE_DB=$W leaf user-under-rsa1024 link-rsa1024 rsa2048 ext_user "$U_START" "$U_END"

ISSUE_DB=$W ISSUE_MD=sha1 mkca ca-sha1self rsa2048 "$CA_DN"
ISSUE_DB=$W leaf user-sha1self ca-sha1self rsa2048 ext_user "$U_START" "$U_END"

# ---------------------------------------------------------------- tidy

rm -f db/*.csr db/*.old ./*.old db/newcerts/*.pem
rm -f db/unused-index.txt db/unused.serial db/unused.crlnum
echo "mkpki: test PKI written to $(pwd)"
