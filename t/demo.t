#!/usr/bin/perl
# t/demo.t - `make demo` (tools/demo.sh) runs conf.example/nginx/ (Debian layout) with the
# test PKI: the protected page is shown after a login, a replay is refused,
# and `tools/demo.sh stop` leaves nothing running.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use IO::Socket::INET;

skip_unless(qw(nginx module jpkictl pki openssl));

# three consecutive free ports, reserved among the test files run in
# parallel: nginx, the OCSP responder, the application
my $port;
for (1 .. 50) {
    $port = JPKITest::free_port();
    last if JPKITest::reserve_port($port + 1) && JPKITest::reserve_port($port + 2);
}
my $out = `JPKI_DEMO_PORT=$port bash $FindBin::Bin/../tools/demo.sh 2>&1`;
is($? >> 8, 0, 'tools/demo.sh succeeds') or diag($out);
like($out, qr/"error":"unauthenticated"/, 'without a session: 401 JSON');
like($out, qr/"status":"ok","account":"demo-user-0001"/, 'the login succeeds');
like($out, qr/The gate says the account is: demo-user-0001\n/,
     'the protected page shows the account the gate set (not the spoofed one)');
like($out, qr/"error":"challenge_replayed"/, 'the replayed login is refused');
like($out, qr/^   account=demo-user-0001 expires=\d+$/m,
     'jpki-login with a SoftHSM token signs in');
like($out, qr/^   The gate says the account is: demo-user-0001$/m,
     '... and its cookie jar opens the protected page');
like($out, qr/jpki audit: \{"ts":\d+,"event":"login","result":"ok"/, 'audit lines are shown');
unlike($out, qr/\[(alert|crit|emerg)\]/, 'no alerts');
my $stop = `bash $FindBin::Bin/../tools/demo.sh stop 2>&1`;
like($stop, qr/demo stopped/, 'tools/demo.sh stop');
sleep 1;
my $still = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 1);
ok(!$still, 'nothing listens on the demo port afterwards');
done_testing();
