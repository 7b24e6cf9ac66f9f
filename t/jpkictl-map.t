#!/usr/bin/perl
# jpkictl map add|remove|list against a mapping file and a real redis-server.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;

my $B   = $ENV{JPKI_BUILD}    // 'build';
my $P   = $ENV{JPKI_TEST_PKI} // "$B/pki";
my $J   = $ENV{JPKI_JPKICTL} // "$B/jpkictl";
my $dir = tempdir(CLEANUP => 1);
my $iss = "card=$P/ca1.pem,$P/ca2.pem";

sub run { my $out = `@_ 2>&1`; return ($? >> 8, $out) }

open my $fh, '>', "$dir/secret" or die;
printf $fh "secret %s\n", unpack('H*', join '', map { chr int rand 256 } 1 .. 32);
close $fh;
chmod 0600, "$dir/secret";
my $S = "--secret-file $dir/secret";

my ($rc, $out) = run("$J cert-check --cert $P/user1.pem --issuer $iss $S");
my ($id1) = $out =~ /cert_id=([0-9a-f]{32})/;
ok($id1, 'cert_id of user1');

# --- mapping file ---------------------------------------------------------
my $map = "$dir/map";
($rc, $out) = run("$J map add --cert $P/user1.pem --issuer $iss $S --account alice --map-file $map");
is($rc, 0, 'map add (file)');
like($out, qr/cert_id=$id1 account=alice/, 'map add prints cert_id and account');
my ($serial) = `openssl x509 -in $P/user1.pem -serial -noout` =~ /=([0-9A-F]+)/;
($rc, $out) = run("$J map add --serial 0x$serial --issuer $iss $S --account alice2 --map-file $map");
is($rc, 0, 'map add by serial');
like($out, qr/cert_id=$id1 /, 'the serial gives the same cert_id as the certificate');
unlike($out, qr/$serial/i, 'the serial is not printed');
($rc, $out) = run("echo 0x$serial | $J map add --serial - --issuer $iss $S --account alice3 --map-file $map");
is($rc, 0, 'map add --serial - (from standard input)');
like($out, qr/cert_id=$id1 account=alice3/, '... the same cert_id');
($rc, $out) = run("$J map add --serial - --issuer $iss $S --account alice3 --map-file $map </dev/null");
is($rc, 2, '--serial - with nothing on standard input: usage error');
($rc, $out) = run("$J map add --serial 0x$serial --issuer $iss $S --account alice2 --map-file $map");
($rc, $out) = run("$J map list --map-file $map");
is($out, "$id1 alice2\n", 'a new mapping replaces the old line');
($rc, $out) = run("$J map add --cert $P/user-expired.pem --issuer $iss $S --account x --map-file $map");
is($rc, 1, 'an expired certificate is not mapped');
like($out, qr/cert_expired/, 'with its reason');
($rc, $out) = run("$J map add --cert $P/user1.pem --issuer $iss $S --account 'a\"b' --map-file $map");
is($rc, 2, 'an account with a quote is refused');
($rc, $out) = run("$J map add --cert $P/user1.pem --issuer $iss --account a --map-file $map");
is($rc, 2, 'no secret file: refused (cert_id would be wrong)');
($rc, $out) = run("$J map add --cert $P/user1.pem --issuer $iss $S --account a");
is($rc, 2, 'no backend: refused');
($rc, $out) = run("$J map remove --cert-id $id1 --map-file $map");
is($rc, 0, 'map remove by cert_id');
($rc, $out) = run("$J map remove --cert-id $id1 --map-file $map");
is($rc, 1, 'removing again: not mapped');
($rc, $out) = run("$J map remove --cert-id XYZ --map-file $map");
is($rc, 2, 'a malformed cert_id is refused');

# --- redis ----------------------------------------------------------------
SKIP: {
    skip 'no redis-server', 6 unless -x '/usr/bin/redis-server';
    my $port;
    for (1 .. 50) {
        $port = 20000 + int rand 20000;
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 1, ReuseAddr => 1);
        last if $s;
    }
    my $pid = fork // die;
    if ($pid == 0) {
        chdir $dir;
        exec '/usr/bin/redis-server', '--port', $port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
            '--requirepass', 'pw1';
        exit 1;
    }
    for (1 .. 50) { last if IO::Socket::INET->new("127.0.0.1:$port"); select undef, undef, undef, 0.1 }
    my $R = "--redis 127.0.0.1:$port --redis-password pw1";
    ($rc, $out) = run("$J map add --cert $P/user1.pem --issuer $iss $S --account alice $R");
    is($rc, 0, 'map add (redis)');
    ($rc, $out) = run("$J map list $R");
    is($out, "$id1 alice\n", 'map list (redis) shows cert_id and account only');
    ($rc, $out) = run("$J map list --redis 127.0.0.1:$port --redis-password wrong");
    is($rc, 2, 'a wrong password is refused');
    ($rc, $out) = run("$J map remove --cert $P/user1.pem --issuer $iss $S $R");
    is($rc, 0, 'map remove (redis)');
    ($rc, $out) = run("$J map list $R");
    is($out, '', 'nothing left');
    ($rc, $out) = run("$J map list --redis 127.0.0.1:1");
    is($rc, 2, 'redis down: exit 2');
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

done_testing();
