#!/usr/bin/perl
# t/redis-replicas.t - jpki_store ... replicas=N (JPKIStore the same), on
# nginx and Apache alike: a primary and its replica (real redis-server
# processes).  Redis replicates asynchronously: a challenge used, or a
# logout marker written, on a primary that dies before its replica has it
# would be undone by a failover (the challenge could be replayed, the
# session would live on).  With replicas=1 both count only once the
# replica acknowledged them (WAIT, in the same round): the replica stopped
# (SIGSTOP), a login and a logout answer 503 store_error and the log says
# why; the replica back, both work again.
#   make all pki && prove -v t/redis-replicas.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl redis));
my @kinds = JPKIServer::kinds();

my $f = site_fixture();
my $primary = JPKITest::Redis->start(name => 'primary');
my $replica = JPKITest::Redis->start(name => 'replica',
    args => [ '--replicaof', '127.0.0.1', $primary->port ]);
$primary->cmd('SET', 'jpki:v1:map:' . cert_id('user1', $f->{secret}), 'alice');

sub wait_for { my ($t, $cond) = @_; my $end = time + $t;
               while (time < $end) { return 1 if $cond->(); sleep 0.05 } return 0 }
ok(wait_for(10, sub { ($replica->try_cmd('GET', 'jpki:v1:map:' . cert_id('user1', $f->{secret})) // '') eq 'alice' }),
   'the replica has caught up');

for my $kind (@kinds) {
    my $srv = JPKIServer->start($kind, name => "replicas-$kind",
        secret => $f->{secret}, issuer => $f->{issuer}, revocation => 'ocsp',
        store => 'redis=127.0.0.1:' . $primary->port . ' replicas=1', redis_timeout => '1s',
        locations => [ '/jpki/' => { endpoints => 1, throttle => 'off' },
                       '/app/' => { gate => 1, upstream => 1, recheck_interval => 0 } ]);
    my $r = $srv->login('user1');
    is($r->{status}, 200, "$kind: replicas=1, the replica up: a login");
    my $cookie = cookie_of($r);
    is($srv->get('/app/x', cookie => $cookie)->{status}, 200, "$kind: ... its session");
    my $wait0 = ($primary->cmd('INFO', 'commandstats') =~ /cmdstat_wait:calls=(\d+)/)[0] // 0;
    ok($wait0 >= 1, "$kind: ... WAIT asked of the primary ($wait0)");

    $replica->pause;
    my $m = $srv->mark;
    my $t0 = time;
    $r = $srv->login('user1');
    my $took = time - $t0;
    is($r->{status}, 503, "$kind: the replica stopped: a login refused 503");
    is($r->{json} && $r->{json}{error}, 'store_error', "$kind: ... store_error");
    ok($took >= 0.4 && $took < 2, sprintf("$kind: ... after WAIT's half of the store's deadline (%.2f s)", $took));
    like($srv->log_since($m), qr/the challenge's use reached 0 of the 1 replicas within 500 ms \(store replicas=\): refused/,
         "$kind: ... the log says why");
    $r = $srv->logout($cookie);
    is($r->{status}, 503, "$kind: ... a logout refused 503 (its marker could be lost)");
    like($srv->log_since($m), qr/the logout marker reached 0 of the 1 replicas/, "$kind: ... the log says why");

    $replica->resume;
    ok(wait_for(5, sub { $srv->login('user1')->{status} == 200 }), "$kind: the replica back: logins again");
    $r = $srv->logout($cookie);
    is($r->{status}, 200, "$kind: ... and the logout");
    is($srv->get('/app/x', cookie => $cookie)->{status}, 401, "$kind: ... the session ended");
    is(($replica->try_cmd('GET', 'jpki:v1:out:' . cert_id('user1', $f->{secret})) // '') ne '', 1,
       "$kind: ... its marker on the replica");
    ok(!$srv->log_problems($m), "$kind: no crash") or diag join "\n", $srv->log_problems($m);
    $srv->stop;
}

done_testing();
