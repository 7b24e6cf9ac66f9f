#!/usr/bin/perl
# t/demo.t - `make demo` and `make demo SERVER=apache` (tools/demo.sh) run
# the snippets of conf.example/ (Debian's layout) with the
# test PKI: the protected page is shown after a login, a replay is refused,
# and `tools/demo.sh stop` leaves nothing running.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIServer;
use IO::Socket::INET;

skip_unless(qw(jpkictl pki openssl));

# three consecutive free ports, reserved among the test files run in
# parallel: nginx, the OCSP responder, the application
my $port;
for (1 .. 50) {
    $port = JPKITest::free_port();
    last if JPKITest::reserve_port($port + 1) && JPKITest::reserve_port($port + 2);
}
for my $kind (JPKIServer::kinds()) {
    my $out = `SERVER=$kind JPKI_DEMO_PORT=$port bash $FindBin::Bin/../tools/demo.sh 2>&1`;
    is($? >> 8, 0, "$kind: tools/demo.sh succeeds") or diag($out);
    like($out, qr/"error":"unauthenticated"/, "$kind: without a session: 401 JSON");
    like($out, qr/"status":"ok","account":"demo-user-0001"/, "$kind: the login succeeds");
    like($out, qr/The gate says the account is: demo-user-0001\n/,
         "$kind: the protected page shows the account the gate set (not the spoofed one)");
    like($out, qr/"error":"challenge_replayed"/, "$kind: the replayed login is refused");
    like($out, qr/^   account=demo-user-0001 expires=\d+$/m,
         "$kind: jpki-login with a SoftHSM token signs in");
    like($out, qr/^   The gate says the account is: demo-user-0001$/m,
         "$kind: ... and its cookie jar opens the protected page");
    like($out, qr/^   jpki-login: Sign in to http:\/\/127\.0\.0\.1:\d+ with code [2-9A-Z]{4}-[2-9A-Z]{4} /m,
         "$kind: the device flow: jpki-login shows the origin and the code");
    like($out, qr/^   \{"status":"ok","account":"demo-user-0001","expires":\d+,"return_to":"\/"\}$/m,
         "$kind: ... the browser's poll takes the session");
    like($out, qr{login page:\n\Qhttp://127.0.0.1:$port/jpki/login\E}, "$kind: the login page's address is shown");
    like($out, qr/jpki audit: \{"ts":\d+,"event":"login","result":"ok"/, "$kind: audit lines are shown");
    unlike($out, qr/\[(alert|crit|emerg)\]/, "$kind: no alerts");
    my $stop = `bash $FindBin::Bin/../tools/demo.sh stop 2>&1`;
    like($stop, qr/demo stopped/, "$kind: tools/demo.sh stop");
    sleep 1;
    my $still = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 1);
    ok(!$still, "$kind: nothing listens on the demo port afterwards");
}
done_testing();
