#!/usr/bin/perl
# t/redis-outage.t - Redis killed and restarted under load, on nginx and
# Apache alike, and what the outage does to signed-in users, a location's
# choice (jpki_store_outage / JPKIStoreOutage):
#   closed (the default): once the node's logout mirror can no longer vouch
#     for a session, its gated requests answer 503 until Redis is back;
#   sessions: a session whose re-check is not due passes without reading
#     the logout markers, while logins, logouts and due re-checks (a
#     location with jpki_recheck_interval 0) answer 503.
# After the restart, logins resume within seconds (printed, with the
# requests that failed during the outage).
#   make all pki && prove -v t/redis-outage.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(pki openssl redis));
my @kinds = JPKIServer::kinds();

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $map = "$dir/accounts.map";
spew($map, cert_id('user1', $secret) . " alice\n" . cert_id('user2', $secret) . " bob\n", 0644);
my $redis = JPKITest::Redis->start(name => 'redis', password => 'outage-pw');

my %site = (secret => $secret,
            issuer => 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem ocsp=' . $ocsp->url,
            store => 'redis=127.0.0.1:' . $redis->port . ' password_file='
                     . password_file('outage-pw'),
            map => $map, redis_timeout => '500ms', redis_connect_timeout => '500ms',
            locations => [ '/jpki/' => { endpoints => 1, throttle => 'cert=0 addr=0 logins=0' },
                           '/app/' => { gate => 1, upstream => 1 },
                           '/sess/' => { gate => 1, upstream => 1, store_outage => 'sessions' },
                           '/due/' => { gate => 1, upstream => 1, store_outage => 'sessions',
                                        recheck_interval => 0 },
                           '/metrics' => { nginx => "jpki_metrics;\njpki_admin_allow 127.0.0.1;",
                                           apache => "JPKIMetrics On\nJPKIAdminAllow 127.0.0.1" } ]);
my %srv = map { ($_ => JPKIServer->start($_, name => "outage-$_", %site)) } @kinds;

my (%cookie, %other);
for my $kind (@kinds) {
    my $s = $srv{$kind};
    my $r = $s->login('user1');
    is($r->{status}, 200, "$kind: login while Redis runs");
    $cookie{$kind} = cookie_of($r) // '';
    $other{$kind} = cookie_of($s->login('user2')) // '';
    for my $p (qw(/app/x /sess/x /due/x)) {
        is($s->get($p, cookie => $cookie{$kind})->{status}, 200, "$kind: $p with the session");
    }
}

# ---- the load: logins and gated requests of a session of its own,
# every answer written down
my $stop = "$dir/stop-load";
my %load;
for my $kind (@kinds) {
    my $file = "$dir/load-$kind.log";
    my $s = $srv{$kind};
    my $pid = load($file, $stop, sub {
        my ($out) = @_;
        printf $out "%.3f login %d\n", time, $s->login('user2')->{status};
        sleep 0.03;
    });
    $load{$kind} = { pid => $pid, file => $file };
}
sleep 0.5;

# ---- Redis killed
$redis->crash;
my $t_kill = time;

# sessions: every request with the session passes, all along
my %sess_bad = map { ($_ => 0) } @kinds;
my %closed_503;
while (time - $t_kill < 4.5) {
    for my $kind (@kinds) {
        my $s = $srv{$kind};
        $sess_bad{$kind}++ if $s->get('/sess/s', cookie => $cookie{$kind}, timeout => 5)->{status} != 200;
        $closed_503{$kind} //= time - $t_kill
            if $s->get('/app/c', cookie => $cookie{$kind}, timeout => 5)->{status} == 503;
    }
    sleep 0.1;
}
for my $kind (@kinds) {
    my $s = $srv{$kind};
    is($sess_bad{$kind}, 0, "$kind: store_outage sessions: the session passes while Redis is down");
    ok(defined $closed_503{$kind}, "$kind: store_outage closed: 503 once the logout mirror "
       . 'cannot vouch' . (defined $closed_503{$kind} ? sprintf(' (after %.1f s)', $closed_503{$kind}) : ''));
    my $r = $s->get('/app/x', cookie => $cookie{$kind}, timeout => 5);
    is($r->{status}, 503, "$kind: closed: a gated request now: 503");
    is($r->{json} && $r->{json}{error}, 'store_error', '... store_error');
    my $t = time;
    is($s->get('/sess/x', cookie => $cookie{$kind}, timeout => 5)->{status}, 200,
       "$kind: sessions: a gated request now: 200");
    ok(time - $t < 0.4, "$kind: ... at once (the poller knows the store is down)");
    is($s->get('/due/x', cookie => $cookie{$kind}, timeout => 5)->{status}, 503,
       "$kind: sessions, re-check due (interval 0): 503");
    is($s->login('user1')->{status}, 503, "$kind: a login: 503");
    # (another session's: a logout still ends it on this node at once)
    is($s->logout($other{$kind})->{status}, 503, "$kind: a logout: 503");
    is($s->get('/sess/y', cookie => 'v1.garbage')->{status}, 401,
       "$kind: sessions: a bad cookie is still refused");
    my ($passes) = ($s->get('/metrics')->{content} // '')
        =~ /^jpki_store_outage_passes_total (\d+)$/m;
    ok(($passes // 0) > 0, "$kind: ... the passes counted in the metrics ("
       . ($passes // 'none') . ')');
}

# ---- Redis back (empty): logins resume
$redis->restart;
my $t_up = time;
my %back;
while (time - $t_up < 10 && keys %back < @kinds) {
    for my $kind (@kinds) {
        next if $back{$kind};
        $back{$kind} = time - $t_up if $srv{$kind}->login('user1')->{status} == 200;
    }
    sleep 0.02 if keys %back < @kinds;
}
spew($stop, '');
waitpid($load{$_}{pid}, 0) for @kinds;

for my $kind (@kinds) {
    my @rec = map { [ split / / ] } split /\n/, slurp($load{$kind}{file});
    my @out = grep { $_->[0] > $t_kill && $_->[0] < $t_up + ($back{$kind} // 0) } @rec;
    my $failed = grep { $_->[2] != 200 } @out;
    my $other = grep { $_->[2] != 200 && $_->[2] != 503 } @out;
    diag(sprintf('%s: Redis down %.1f s: %d of %d logins of the load failed (503); first '
                 . 'login %.2f s after the restart', $kind, $t_up - $t_kill, $failed,
                 scalar @out, $back{$kind} // -1));
    is($other, 0, "$kind: the logins during the outage failed closed (503)");
    ok(defined $back{$kind} && $back{$kind} <= 5, "$kind: logins resume within 5 s of the "
       . 'restart' . (defined $back{$kind} ? sprintf(' (%.2f s; goal 2 s)', $back{$kind}) : ''));
    my $s = $srv{$kind};
    is($s->get('/app/z', cookie => $cookie{$kind})->{status}, 200,
       "$kind: closed: the session passes again");
    is($s->get('/due/z', cookie => $cookie{$kind})->{status}, 200,
       "$kind: due re-checks pass again");
}
# (a logout ends every session of the certificate, on every node: after
# the checks above)
for my $kind (@kinds) {
    my $s = $srv{$kind};
    is($s->logout($cookie{$kind})->{status}, 200, "$kind: a logout");
    is($s->get('/sess/z', cookie => $cookie{$kind})->{json}{error}, 'session_logged_out',
       "$kind: sessions: a logged-out session is refused again");
}

$_->stop for values %srv;
$redis->stop;
$ocsp->stop;
done_testing();
