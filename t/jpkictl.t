#!/usr/bin/perl
# t/jpkictl.t - jpkictl sig-verify, cert-check, crl inspect against the test
# PKI (make pki) and the real J-LIS CA certificates when present.
#   prove -v t/jpkictl.t
# Env: JPKI_BUILD (default build), JPKI_TEST_PKI (default build/pki),
#      JPKI_REAL_CA_DIR (default <repo>/../shared/data/jpki-ca).
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use File::Spec;
use Cwd qw(abs_path);
use Digest::SHA qw(sha256);
use Math::BigInt;
use POSIX qw(strftime);

my $repo  = abs_path(File::Spec->catdir((File::Spec->splitpath(abs_path($0)))[1], '..'));
my $build = $ENV{JPKI_BUILD} // "$repo/build";
my $pki   = $ENV{JPKI_TEST_PKI} // "$build/pki";
my $ctl   = $ENV{JPKI_JPKICTL} // "$build/jpkictl";
my $real  = $ENV{JPKI_REAL_CA_DIR} // "$repo/../shared/data/jpki-ca";

plan skip_all => "$ctl not built (make build/jpkictl)" unless -x $ctl;
plan skip_all => "no test PKI in $pki (make pki)" unless -f "$pki/user1.pem";
plan skip_all => 'openssl CLI not found'
    unless system('openssl version >/dev/null 2>&1') == 0;

my $tmp = tempdir(CLEANUP => 1);

# ---------------------------------------------------------------- helpers

sub slurp { my ($f) = @_; open my $h, '<:raw', $f or die "$f: $!"; local $/; my $d = <$h>; $d // '' }
sub spew  { my ($f, $d) = @_; open my $h, '>:raw', $f or die "$f: $!"; print $h $d; close $h or die }

# Runs jpkictl; returns (exit status, stdout, stderr).
sub ctl {
    my @args = @_;
    my ($o, $e) = ("$tmp/out", "$tmp/err");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $o or die; open STDERR, '>', $e or die;
        exec $ctl, @args or exit 127;
    }
    waitpid $pid, 0;
    my $st = $?;
    return ($st & 127 ? 128 + ($st & 127) : $st >> 8, slurp($o), slurp($e));
}

sub openssl {
    my @args = @_;
    system('openssl', @args) == 0 or die "openssl @args failed";
}

# sign MSGFILE KEY DIGEST -> signature file (raw; DER for ECDSA)
my $nsig = 0;
sub sign {
    my ($msg, $key, $md) = @_;
    my $out = "$tmp/sig" . ++$nsig;
    openssl('dgst', "-$md", '-sign', "$pki/$key.key", '-out', $out, $msg);
    return $out;
}

# raw PKCS#1 v1.5 type-1 signature over the given DigestInfo bytes
sub sign_digestinfo {
    my ($di, $key) = @_;
    my $in = "$tmp/di" . ++$nsig;
    spew($in, $di);
    openssl('pkeyutl', '-sign', '-inkey', "$pki/$key.key",
            '-pkeyopt', 'rsa_padding_mode:pkcs1', '-in', $in, '-out', "$in.sig");
    return "$in.sig";
}

# ECDSA-Sig-Value DER (short lengths: P-256/P-384) -> (r, s) magnitudes
sub der_ecdsa_rs {
    my ($d) = @_;
    my @b = unpack('C*', $d);
    die 'not a short-form SEQUENCE' unless $b[0] == 0x30 && $b[1] < 0x80;
    my ($i, @ints) = (2);
    for (1 .. 2) {
        die 'not an INTEGER' unless $b[$i] == 0x02;
        my $len = $b[$i + 1];
        my $v = substr($d, $i + 2, $len);
        $v =~ s/^\x00+//;
        push @ints, $v;
        $i += 2 + $len;
    }
    return @ints;
}

sub sigv {
    my ($keyopt, $keyfile, $alg, $msg, $sig, @more) = @_;
    return ctl('sig-verify', $keyopt, $keyfile, '--alg', $alg, '--msg', $msg,
               '--sig', $sig, @more);
}

sub is_valid {
    my ($name, @r) = @_;
    is($r[0], 0, "$name: exit 0") or diag("stdout: $r[1]stderr: $r[2]");
    is($r[1], "signature valid\n", "$name: says valid");
}

sub is_invalid {
    my ($name, $reason, @r) = @_;
    is($r[0], 1, "$name: exit 1") or diag("stdout: $r[1]stderr: $r[2]");
    is($r[1], "signature invalid: $reason\n", "$name: reason $reason");
}

sub is_usage {
    my ($name, $re, @r) = @_;
    is($r[0], 2, "$name: exit 2") or diag("stdout: $r[1]stderr: $r[2]");
    like($r[2], $re, "$name: message on stderr");
    is($r[1], '', "$name: nothing on stdout");
}

# ---------------------------------------------------------------- general

{
    my @r = ctl();
    is($r[0], 2, 'no arguments: exit 2');
    like($r[2], qr/usage: jpkictl/, 'no arguments: usage on stderr');
    @r = ctl('help');
    is($r[0], 0, 'help: exit 0');
    like($r[1], qr/sig-verify.*cert-check.*crl inspect/s, 'help: all commands on stdout');
    @r = ctl('version');
    is($r[0], 0, 'version: exit 0');
    like($r[1], qr/^jpkictl \d+\.\d+\.\d+$/, 'version: printed');
    @r = ctl('frobnicate');
    is($r[0], 2, 'unknown command: exit 2');
    @r = ctl('sig-verify', '--help');
    is($r[0], 0, 'sig-verify --help: exit 0');
    like($r[1], qr/--allow-sha1/, 'sig-verify --help: its usage');
}

# ---------------------------------------------------------------- sig-verify

my $msg = "$tmp/msg";
spew($msg, "jpki-challenge-" . ('A' x 85));     # 100 ASCII chars, like a challenge
my $msg2 = "$tmp/msg2";
spew($msg2, "jpki-challenge-" . ('A' x 84) . 'B');
my $u1 = "$pki/user1.pem";

for my $md (qw(sha256 sha384 sha512)) {
    my $sig = sign($msg, 'user1', $md);
    is_valid("rsa $md", sigv('--cert', $u1, "rsa-pkcs1-$md", $msg, $sig));
    is_valid("rsa $md, DER certificate", sigv('--cert', "$pki/user1.der", "rsa-pkcs1-$md", $msg, $sig));
}

my $sig256 = sign($msg, 'user1', 'sha256');
{
    # base64 with line breaks (openssl base64 wraps at 64)
    my $b64 = "$tmp/sig256.b64";
    openssl('base64', '-in', $sig256, '-out', $b64);
    like(slurp($b64), qr/\n./, 'base64 signature has line breaks');
    is_valid('base64 signature', sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, $b64));
    (my $url = slurp($b64)) =~ tr{+/=\n}{-_}d;
    spew("$tmp/sig256.b64url", "$url\r\n");
    is_valid('base64url signature, CRLF', sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, "$tmp/sig256.b64url"));

    my $pub = "$tmp/user1.pub.pem";
    openssl('x509', '-in', $u1, '-pubkey', '-noout', '-out', $pub);
    like(slurp($pub), qr/BEGIN PUBLIC KEY/, 'PEM public key made');
    is_valid('--pubkey PEM', sigv('--pubkey', $pub, 'rsa-pkcs1-sha256', $msg, $sig256));
    my $pubder = "$tmp/user1.pub.der";
    openssl('pkey', '-pubin', '-in', $pub, '-outform', 'DER', '-out', $pubder);
    is_valid('--pubkey DER', sigv('--pubkey', $pubder, 'rsa-pkcs1-sha256', $msg, $sig256));

    is_invalid('other key', 'signature_invalid',
               sigv('--cert', "$pki/user2.pem", 'rsa-pkcs1-sha256', $msg, $sig256));
    is_invalid('modified message', 'signature_invalid',
               sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg2, $sig256));
    is_invalid('hash other than --alg', 'signature_invalid',
               sigv('--cert', $u1, 'rsa-pkcs1-sha384', $msg, $sig256));

    my $raw = slurp($sig256);
    is(length $raw, 256, 'RSA 2048 signature is 256 bytes');
    spew("$tmp/trunc", substr($raw, 0, 255));
    is_invalid('truncated signature', 'signature_invalid',
               sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, "$tmp/trunc"));
    spew("$tmp/trail", $raw . "\x00");
    is_invalid('signature with a trailing byte', 'signature_invalid',
               sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, "$tmp/trail"));
    my $flip = $raw;
    substr($flip, 100, 1) = chr(ord(substr($flip, 100, 1)) ^ 1);
    spew("$tmp/flip", $flip);
    is_invalid('one bit flipped', 'signature_invalid',
               sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, "$tmp/flip"));
}

{
    my $sig1 = sign($msg, 'user1', 'sha1');
    my @r = sigv('--cert', $u1, 'rsa-pkcs1-sha1', $msg, $sig1);
    is_invalid('sha1 without --allow-sha1', 'signature_algorithm', @r);
    like($r[2], qr/--allow-sha1/, 'sha1 refusal hints at --allow-sha1');
    is_valid('sha1 with --allow-sha1',
             sigv('--cert', $u1, 'rsa-pkcs1-sha1', $msg, $sig1, '--allow-sha1'));
    is_invalid('sha1 with --allow-sha1, modified message', 'signature_invalid',
               sigv('--cert', $u1, 'rsa-pkcs1-sha1', $msg2, $sig1, '--allow-sha1'));
}

# DigestInfo encodings: only the exact DER of RFC 8017 is accepted.
{
    my $h = sha256(slurp($msg));
    my $der = pack('H*', '3031300d060960864801650304020105000420') . $h;
    is_valid('hand-built DER DigestInfo (pkeyutl)',
             sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, sign_digestinfo($der, 'user1')));
    my $nonull = pack('H*', '302f300b0609608648016503040201' . '0420') . $h;
    is_invalid('DigestInfo without the NULL parameter', 'signature_invalid',
               sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, sign_digestinfo($nonull, 'user1')));
    my $longlen = pack('H*', '308131300d060960864801650304020105000420') . $h;
    is_invalid('DigestInfo with a long-form length (BER)', 'signature_invalid',
               sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, sign_digestinfo($longlen, 'user1')));
    is_invalid('DigestInfo with trailing data', 'signature_invalid',
               sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, sign_digestinfo($der . "\x00", 'user1')));
}

# ECDSA (openssl dgst -sign writes a DER ECDSA-Sig-Value)
{
    my $sec = sign($msg, 'user-ec', 'sha256');
    is_valid('ecdsa-sha256 user-ec', sigv('--cert', "$pki/user-ec.pem", 'ecdsa-sha256', $msg, $sec));
    is_invalid('ecdsa-sha256 user-ec, modified message', 'signature_invalid',
               sigv('--cert', "$pki/user-ec.pem", 'ecdsa-sha256', $msg2, $sec));
    my $sp = sign($msg, 'phone-user', 'sha256');
    is_valid('ecdsa-sha256 phone-user', sigv('--cert', "$pki/phone-user.pem", 'ecdsa-sha256', $msg, $sp));
    my $sp384 = sign($msg, 'phone-user384', 'sha384');
    is_valid('ecdsa-sha384 phone-user384',
             sigv('--cert', "$pki/phone-user384.pem", 'ecdsa-sha384', $msg, $sp384));
    is_invalid('ECDSA signature by another key', 'signature_invalid',
               sigv('--cert', "$pki/user-ec.pem", 'ecdsa-sha256', $msg, $sp));
    # raw r||s (WebCrypto / PKCS#11 form) is not DER: refused
    my ($r, $s) = der_ecdsa_rs(slurp($sec));
    spew("$tmp/ec-rs", ("\0" x (32 - length $r)) . $r . ("\0" x (32 - length $s)) . $s);
    is(-s "$tmp/ec-rs", 64, 'raw r||s made from the DER signature');
    is_invalid('ECDSA raw r||s', 'signature_invalid',
               sigv('--cert', "$pki/user-ec.pem", 'ecdsa-sha256', $msg, "$tmp/ec-rs"));
    spew("$tmp/ectrail", slurp($sec) . "\x00");
    is_invalid('ECDSA signature with a trailing byte', 'signature_invalid',
               sigv('--cert', "$pki/user-ec.pem", 'ecdsa-sha256', $msg, "$tmp/ectrail"));

    # wrong algorithm for the key type
    is_invalid('ecdsa alg with an RSA key', 'signature_algorithm',
               sigv('--cert', $u1, 'ecdsa-sha256', $msg, $sig256));
    is_invalid('rsa alg with an EC key', 'signature_algorithm',
               sigv('--cert', "$pki/user-ec.pem", 'rsa-pkcs1-sha256', $msg, $sec));
}

# usage and input errors: exit 2
{
    spew("$tmp/garbage", "this is not a key\n" x 3);
    is_usage('missing --sig', qr/--sig is required/,
             ctl('sig-verify', '--cert', $u1, '--alg', 'rsa-pkcs1-sha256', '--msg', $msg));
    is_usage('unknown alg', qr/unknown --alg/,
             sigv('--cert', $u1, 'rsa-pkcs1-md5', $msg, $sig256));
    is_usage('unreadable message file', qr/cannot read message file/,
             sigv('--cert', $u1, 'rsa-pkcs1-sha256', "$tmp/nonexistent", $sig256));
    is_usage('unreadable key file', qr/cannot read key file/,
             sigv('--cert', "$tmp/nonexistent", 'rsa-pkcs1-sha256', $msg, $sig256));
    is_usage('garbage key', qr/no usable public key/,
             sigv('--pubkey', "$tmp/garbage", 'rsa-pkcs1-sha256', $msg, $sig256));
    is_usage('private key given as key', qr/no usable public key/,
             sigv('--pubkey', "$pki/user1.key", 'rsa-pkcs1-sha256', $msg, $sig256));
    is_usage('both --cert and --pubkey', qr/exactly one of --cert and --pubkey/,
             sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, $sig256, '--pubkey', $u1));
    is_usage('neither --cert nor --pubkey', qr/exactly one/,
             ctl('sig-verify', '--alg', 'rsa-pkcs1-sha256', '--msg', $msg, '--sig', $sig256));
    is_usage('option given twice', qr/--alg given twice/,
             sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, $sig256, '--alg', 'rsa-pkcs1-sha256'));
    is_usage('unknown option', qr/unknown option "--frob"/,
             sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, $sig256, '--frob'));
    is_usage('abbreviated option refused', qr/unknown option "--al"/,
             ctl('sig-verify', '--cert', $u1, '--al', 'rsa-pkcs1-sha256', '--msg', $msg, '--sig', $sig256));
    is_usage('option value missing', qr/--msg needs a value/,
             ctl('sig-verify', '--cert', $u1, '--alg', 'rsa-pkcs1-sha256', '--sig', $sig256, '--msg'));
    is_usage('flag with a value', qr/takes no value/,
             sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, $sig256, '--allow-sha1=yes'));
    spew("$tmp/empty", '');
    is_usage('empty signature file', qr/empty/,
             sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, "$tmp/empty"));
    spew("$tmp/badb64", "QUJD=QUJD\n");
    is_usage('broken base64 signature', qr/does not decode/,
             sigv('--cert', $u1, 'rsa-pkcs1-sha256', $msg, "$tmp/badb64"));
    is_valid('--opt=value form',
             ctl('sig-verify', "--cert=$u1", '--alg=rsa-pkcs1-sha256', "--msg=$msg", "--sig=$sig256"));
}

# ---------------------------------------------------------------- cert-check

sub cc {
    my ($cert, @more) = @_;
    return ctl('cert-check', '--cert', $cert, @more);
}

sub cc_ok {
    my ($name, $issuer, @r) = @_;
    is($r[0], 0, "$name: exit 0") or diag("stdout: $r[1]stderr: $r[2]");
    like($r[1], qr/^OK issuer=\Q$issuer\E cert_id=[0-9a-f]{32} not_after=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n\z/,
         "$name: OK line");
}

sub cc_fail {
    my ($name, $reason, @r) = @_;
    is($r[0], 1, "$name: exit 1") or diag("stdout: $r[1]stderr: $r[2]");
    like($r[1], qr/^FAIL \Q$reason\E: \S.*\n\z/, "$name: FAIL $reason");
}

my $card2 = "card=$pki/ca2.pem";
my $card12 = "card=$pki/ca1.pem,$pki/ca2.pem";

cc_ok('user1 / ca2', 'card', cc($u1, '--issuer', $card2));
cc_ok('user1 DER / ca2', 'card', cc("$pki/user1.der", '--issuer', $card2));
cc_ok('user-old / ca1+ca2', 'card', cc("$pki/user-old.pem", '--issuer', $card12));
cc_ok('user-old / ca2 + link-old-with-new', 'card',
      cc("$pki/user-old.pem", '--issuer', "card=$pki/ca2.pem,$pki/link-old-with-new.pem"));
cc_ok('user1 / all-cas.pem bundle', 'card', cc($u1, '--issuer', "card=$pki/all-cas.pem"));
cc_fail('user-old / ca2 only', 'cert_unknown_issuer', cc("$pki/user-old.pem", '--issuer', $card2));
cc_ok('phone-user / phone-ca', 'phone',
      cc("$pki/phone-user.pem", '--issuer', $card2, '--issuer', "phone=$pki/phone-ca.pem"));
cc_ok('phone-user384 / phone-ca', 'phone',
      cc("$pki/phone-user384.pem", '--issuer', "phone=$pki/phone-ca.pem"));
cc_ok('user-ec / ca2', 'card', cc("$pki/user-ec.pem", '--issuer', $card2));

my %bad = ('user-expired' => 'cert_expired', 'user-notyet' => 'cert_not_yet_valid',
           'user-isca' => 'cert_is_ca', 'user-keyenc' => 'cert_key_usage',
           'user-nopolicy' => 'cert_policy', 'user-otherpolicy' => 'cert_policy',
           'user-rsa1024' => 'cert_key_not_allowed', 'user-foreign' => 'cert_unknown_issuer');
for my $u (sort keys %bad) {
    cc_fail($u, $bad{$u}, cc("$pki/$u.pem", '--issuer', $card12));
}
# weak algorithms in the path: cert_signature_algorithm, the detail says
# which certificate and which algorithm
{
    my @r = cc("$pki/user-sha1.pem", '--issuer', $card12);
    cc_fail('user-sha1 (leaf signed with SHA-1)', 'cert_signature_algorithm', @r);
    like($r[1], qr/the leaf certificate is signed with sha1WithRSAEncryption/,
         'user-sha1: the detail names the leaf and the algorithm');
    @r = cc("$pki/user-ca3.pem", '--issuer', "card=$pki/ca2.pem,$pki/link-ca3-with-ca2-sha1.pem");
    cc_fail('user-ca3 through a link certificate signed with SHA-1', 'cert_signature_algorithm', @r);
    like($r[1], qr/link or intermediate certificate at depth 1 is signed with sha1WithRSAEncryption/,
         'user-ca3: the detail names the link and the algorithm');
    cc_ok('user-ca3 under its own anchor ca3', 'card', cc("$pki/user-ca3.pem", '--issuer', "card=$pki/ca3.pem"));
    @r = cc("$pki/user-under-rsa1024.pem", '--issuer', "card=$pki/ca2.pem,$pki/link-rsa1024.pem");
    cc_fail('user-under-rsa1024 (intermediate with an RSA 1024 key)', 'cert_signature_algorithm', @r);
    like($r[1], qr/link or intermediate certificate at depth 1 has a key too weak .*RSA, 1024 bits/,
         'user-under-rsa1024: the detail names the intermediate and its key size');
    cc_ok('user-sha1self under an anchor self-signed with SHA-1', 'card',
          cc("$pki/user-sha1self.pem", '--issuer', "card=$pki/ca-sha1self.pem"));
}

cc_ok('user-nopolicy with --policy card=none', 'card',
      cc("$pki/user-nopolicy.pem", '--issuer', $card2, '--policy', 'card=none'));
cc_ok('user-otherpolicy with its policy', 'card',
      cc("$pki/user-otherpolicy.pem", '--issuer', $card2, '--policy', 'card=1.2.392.200149.8.5.1.1.10'));
cc_fail('user1 with another required policy', 'cert_policy',
        cc($u1, '--issuer', $card2, '--policy', 'card=1.2.392.200149.8.5.1.1.10'));

{
    my $past = strftime('%Y-%m-%dT%H:%M:%SZ', gmtime(time - 3 * 86400));
    cc_fail('user1 --at before notBefore', 'cert_not_yet_valid', cc($u1, '--issuer', $card2, '--at', $past));
    cc_fail('user1 --at epoch before notBefore', 'cert_not_yet_valid',
            cc($u1, '--issuer', $card2, '--at', time - 3 * 86400));
    my $later = strftime('%Y-%m-%dT%H:%M:%SZ', gmtime(time + 5 * 365 * 86400));
    cc_fail('user1 --at after notAfter', 'cert_expired', cc($u1, '--issuer', $card2, '--at', $later));
    my $then = strftime('%Y-%m-%dT%H:%M:%SZ', gmtime(time - 10 * 86400));
    cc_ok('user-expired --at while it was valid', 'card',
          cc("$pki/user-expired.pem", '--issuer', $card2, '--at', $then));
    for my $bad ('2026-02-30T00:00:00Z', '2026-1-01T00:00:00Z', 'yesterday', '2026-01-01 00:00:00Z') {
        is_usage("--at $bad refused", qr/--at: expected/, cc($u1, '--issuer', $card2, '--at', $bad));
    }
}

spew("$tmp/garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n");
cc_fail('garbage certificate', 'cert_malformed', cc("$tmp/garbage.pem", '--issuer', $card2));
cc_fail('random bytes as certificate', 'cert_malformed', cc("$tmp/garbage", '--issuer', $card2));

# serial numbers never appear
{
    for my $u (qw(user1 user-expired user-isca user-foreign user-old user-sha1)) {
        open my $ph, '-|', 'openssl', 'x509', '-in', "$pki/$u.pem", '-serial', '-noout' or die;
        my ($hex) = do { local $/; <$ph> } =~ /serial=([0-9A-Fa-f]+)/;
        close $ph;
        ok($hex, "$u: serial read with openssl");
        my $dec = Math::BigInt->from_hex($hex)->bstr;
        my @r = cc("$pki/$u.pem", '--issuer', $card12);
        my $all = $r[1] . $r[2];
        unlike($all, qr/\Q$hex\E/i, "$u: no serial in hex");
        unlike($all, qr/\Q$dec\E/, "$u: no serial in decimal");
        (my $colons = lc $hex) =~ s/(..)(?=.)/$1:/g;
        unlike(lc $all, qr/\Q$colons\E/, "$u: no serial as colon hex");
    }
}

# cert_id: random without a secret file, stable with one
{
    my @a = cc($u1, '--issuer', $card2);
    my @b = cc($u1, '--issuer', $card2);
    like($a[2], qr/random secret/, 'no --secret-file: note on stderr');
    my ($ida) = $a[1] =~ /cert_id=(\w+)/;
    my ($idb) = $b[1] =~ /cert_id=(\w+)/;
    isnt($ida, $idb, 'no --secret-file: cert_id differs between runs');

    my $sf = "$tmp/secret";
    spew($sf, "# site secret\nsecret " . ('ab' x 32) . "\n");
    chmod 0600, $sf;
    my @c = cc($u1, '--issuer', $card2, '--secret-file', $sf);
    my @d = cc("$pki/user1.der", '--issuer', "card=$pki/ca1.pem,$pki/ca2.pem", '--secret-file', $sf);
    cc_ok('with --secret-file', 'card', @c);
    unlike($c[2], qr/random secret/, 'with --secret-file: no note');
    my ($idc) = $c[1] =~ /cert_id=(\w+)/;
    my ($idd) = $d[1] =~ /cert_id=(\w+)/;
    is($idc, $idd, 'with --secret-file: cert_id stable (PEM/DER, other anchor set)');
    my @e = cc("$pki/user2.pem", '--issuer', $card2, '--secret-file', $sf);
    my ($ide) = $e[1] =~ /cert_id=(\w+)/;
    isnt($ide, $idc, 'another certificate, another cert_id');

    chmod 0644, $sf;
    is_usage('world-readable secret file', qr/must not be accessible by group or others/,
             cc($u1, '--issuer', $card2, '--secret-file', $sf));
}

# configuration and usage errors: exit 2
is_usage('cert-check without --issuer', qr/--issuer is required/, cc($u1));
is_usage('cert-check without --cert', qr/--cert is required/, ctl('cert-check', '--issuer', $card2));
is_usage('--issuer without =', qr/expected NAME=/, cc($u1, '--issuer', "$pki/ca2.pem"));
is_usage('--issuer bad name', qr/expected NAME=/, cc($u1, '--issuer', "ca rd=$pki/ca2.pem"));
is_usage('--issuer missing CA file', qr/cannot read/, cc($u1, '--issuer', "card=$tmp/nonexistent.pem"));
is_usage('--issuer garbage CA file', qr/no PEM certificate/, cc($u1, '--issuer', "card=$tmp/garbage"));
is_usage('--issuer leaf as CA', qr/not a CA certificate/, cc($u1, '--issuer', "card=$u1"));
is_usage('--issuer link only (no anchor)', qr/no self-signed trust anchor/,
         cc("$pki/user-old.pem", '--issuer', "card=$pki/link-old-with-new.pem"));
is_usage('--issuer name twice', qr/given twice/, cc($u1, '--issuer', $card2, '--issuer', $card2));
is_usage('--policy for an unknown issuer', qr/no --issuer of that name/,
         cc($u1, '--issuer', $card2, '--policy', 'phone=none'));
is_usage('--policy not an OID', qr/not a dotted OID/,
         cc($u1, '--issuer', $card2, '--policy', 'card=jpki-auth'));
is_usage('unreadable certificate', qr/cannot read certificate file/,
         cc("$tmp/nonexistent.pem", '--issuer', $card2));
is_usage('sig-verify option in cert-check', qr/unknown option "--alg"/,
         cc($u1, '--issuer', $card2, '--alg', 'rsa-pkcs1-sha256'));

# ---------------------------------------------------------------- real J-LIS CAs

SKIP: {
    my ($c15, $c23) = ("$real/auth_ca_2015.pem", "$real/auth_ca_2023.pem");
    skip "real J-LIS CA certificates not in $real", 6 unless -f $c15 && -f $c23;
    my @r = cc($c23, '--issuer', "jlis=$c15,$c23");
    cc_fail('auth_ca_2023 as a login certificate (anchors 2015+2023)', 'cert_is_ca', @r);
    @r = cc($c15, '--issuer', "jlis=$c15,$c23");
    cc_fail('auth_ca_2015 as a login certificate', 'cert_is_ca', @r);
    # a test leaf is not issued by the real CAs
    @r = cc($u1, '--issuer', "jlis=$c15,$c23");
    cc_fail('test user1 against the real anchors', 'cert_unknown_issuer', @r);
}

# ---------------------------------------------------------------- crl inspect

sub crl { return ctl('crl', 'inspect', '--crl', @_) }

{
    my @r = crl("$pki/ca2.crl", '--issuer', $card12);
    is($r[0], 0, 'ca2.crl: exit 0') or diag("stdout: $r[1]stderr: $r[2]");
    like($r[1], qr/^issuer: card$/m, 'ca2.crl: issuer');
    like($r[1], qr/^thisUpdate: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m, 'ca2.crl: thisUpdate');
    like($r[1], qr/^nextUpdate: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m, 'ca2.crl: nextUpdate');
    like($r[1], qr/^crlNumber: 2$/m, 'ca2.crl: crlNumber');
    like($r[1], qr/^entries: 7$/m, 'ca2.crl: entries');
    like($r[1], qr/^signature: ok$/m, 'ca2.crl: signature ok');
    like($r[1], qr/^fresh: yes$/m, 'ca2.crl: fresh');

    @r = crl("$pki/ca2.crl.pem", '--issuer', $card2);
    is($r[0], 0, 'ca2.crl.pem (PEM): exit 0');

    @r = crl("$pki/ca2-stale.crl", '--issuer', $card12);
    is($r[0], 1, 'ca2-stale.crl: exit 1');
    like($r[1], qr/^signature: ok$/m, 'ca2-stale.crl: signature ok');
    like($r[1], qr/^fresh: stale$/m, 'ca2-stale.crl: stale');
    like($r[1], qr/^crlNumber: 1$/m, 'ca2-stale.crl: still prints what is known');
    @r = crl("$pki/ca2-stale.crl", '--issuer', $card12, '--grace', 6 * 86400);
    is($r[0], 0, 'ca2-stale.crl with --grace 6 days: exit 0');
    like($r[1], qr/^fresh: yes$/m, 'ca2-stale.crl with --grace: fresh');
    @r = crl("$pki/ca2-stale.crl", '--issuer', $card12, '--at', time - int(4.5 * 86400));
    is($r[0], 0, 'ca2-stale.crl --at within its window: exit 0');

    @r = crl("$pki/ca2-future.crl", '--issuer', $card12);
    is($r[0], 1, 'ca2-future.crl: exit 1');
    like($r[1], qr/^fresh: not_yet_valid$/m, 'ca2-future.crl: not yet valid');

    @r = crl("$pki/ca2-wrongkey.crl", '--issuer', $card12);
    is($r[0], 1, 'ca2-wrongkey.crl: exit 1');
    like($r[1], qr/^signature: crl_(bad_signature|unknown_issuer): /m, 'ca2-wrongkey.crl: refused');
    unlike($r[1], qr/signature: ok/, 'ca2-wrongkey.crl: signature not ok');

    @r = crl("$pki/ca1.crl", '--issuer', $card2);
    is($r[0], 1, 'ca1.crl with only ca2 configured: exit 1');
    like($r[1], qr/^signature: crl_unknown_issuer: /m, 'ca1.crl with only ca2: unknown issuer');

    @r = crl("$tmp/garbage", '--issuer', $card12);
    is($r[0], 1, 'garbage CRL: exit 1');
    like($r[1], qr/^signature: crl_malformed: /m, 'garbage CRL: crl_malformed');
    @r = crl($u1, '--issuer', $card12);
    is($r[0], 1, 'certificate given as CRL: exit 1');

    is_usage('crl without inspect', qr/expected "crl inspect"/, ctl('crl', '--crl', "$pki/ca2.crl"));
    is_usage('crl inspect without --issuer', qr/--issuer is required/, crl("$pki/ca2.crl"));
    is_usage('crl inspect bad --grace', qr/--grace/, crl("$pki/ca2.crl", '--issuer', $card2, '--grace', '-5'));
    is_usage('crl inspect unreadable', qr/cannot read CRL file/, crl("$tmp/nonexistent.crl", '--issuer', $card2));
}

# ---------------------------------------------------------------- --redis

# Checked before any store command runs: a mistyped port or database is a
# usage error (exit 2), not a store failure on port 1 or database 0.
# Port 1: nothing listens there, so the old reading failed with exit 5.
{
    for my $c (['crl', 'status'], ['map', 'list'], ['purge', '--revocation']) {
        is_usage("@$c --redis 127.0.0.1:1x", qr/--redis: expected HOST:PORT/,
                 ctl(@$c, '--redis', '127.0.0.1:1x'));
        is_usage("@$c --redis-db=x", qr/--redis-db: expected a number/,
                 ctl(@$c, '--redis', '127.0.0.1:1', '--redis-db=x'));
    }
    is_usage('--redis :1 (no host)', qr/--redis: expected HOST:PORT/,
             ctl('crl', 'status', '--redis', ':1'));
    is_usage('--redis 127.0.0.1:65536', qr/--redis: expected HOST:PORT/,
             ctl('crl', 'status', '--redis', '127.0.0.1:65536'));
    is_usage('--redis-db -1', qr/--redis-db: expected a number/,
             ctl('crl', 'status', '--redis', '127.0.0.1:1', '--redis-db=-1'));
    my @r = ctl('crl', 'status', '--redis', '127.0.0.1:1', '--redis-db', '3');
    is($r[0], 5, 'a valid --redis-db passes the check (then Redis is down: 5)')
        or diag($r[2]);
}

done_testing();
