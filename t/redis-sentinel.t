#!/usr/bin/perl
# t/redis-sentinel.t - Redis beyond one server, on nginx and Apache alike:
# a primary, its replica and three sentinels (quorum 2); both servers find
# the primary through the sentinels (jpki_store sentinel=... master=...).
# Logins and gated requests run throughout while the primary is killed
# (SIGKILL): the sentinels promote the replica, and both servers resume on
# it, asking the sentinels again.  No worker crashes, no login is taken
# without its store write (every challenge used after the failover is
# refused when replayed), a revoked certificate stays refused, and a
# server that a sentinel names but which is a replica is never written to
# (ROLE first: its rejected commands stay 0).  Printed: the requests that
# failed during the failover, and the seconds from the promotion to the
# first successful login of each server.
#   make all pki && prove -v t/redis-sentinel.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use POSIX ();
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl redis));
my @kinds = JPKIServer::kinds();

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $pw = 'sentinel-test-pw';

my $primary = JPKITest::Redis->start(name => 'primary', password => $pw);
my $replica = JPKITest::Redis->start(name => 'replica', password => $pw,
    args => [ '--replicaof', '127.0.0.1', $primary->port, '--masterauth', $pw ]);
my @sentinels = map { JPKITest::Sentinel->start(name => "sentinel$_", master => 'gate',
                                                primary => $primary->port, password => $pw,
                                                down_after => 1000, failover_timeout => 3000) } 1 .. 3;
my %acct = (user1 => 'alice', user2 => 'bob', 'rev-keyCompromise' => 'eve');
$primary->cmd('SET', 'jpki:v1:map:' . cert_id($_, $secret), $acct{$_}) for keys %acct;

# the replica has caught up, and the sentinels know one another
sub wait_for { my ($what, $t, $cond) = @_; my $end = time + $t;
               while (time < $end) { return 1 if $cond->(); sleep 0.05 } return 0 }
ok(wait_for('replica', 10, sub { ($replica->try_cmd('GET', 'jpki:v1:map:' . cert_id('user1', $secret)) // '') eq 'alice' }),
   'the replica has the mappings');
ok(wait_for('sentinels', 15, sub {
       my $r = $sentinels[0]->try_cmd('SENTINEL', 'master', 'gate');
       my %h = ref $r eq 'ARRAY' ? @$r : ();
       ($h{'num-other-sentinels'} // 0) >= 2 && ($h{'num-slaves'} // 0) >= 1 }),
   'the sentinels know one another and the replica');

my $store = 'sentinel=' . join(',', map { '127.0.0.1:' . $_->port } @sentinels)
          . ' master=gate password_file=' . password_file($pw);
my %site = (secret => $secret,
            issuer => 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem ocsp=' . $ocsp->url,
            store => $store, redis_timeout => '1s', redis_connect_timeout => '500ms',
            locations => [ '/jpki/' => { endpoints => 1, throttle => 'cert=0 addr=0 logins=0' },
                           '/app/' => { gate => 1, upstream => 1, recheck_interval => 0 } ]);
my %srv = map { ($_ => JPKIServer->start($_, name => "sentinel-$_", %site)) } @kinds;

for my $kind (@kinds) {
    my $r = $srv{$kind}->login('user1');
    is($r->{status}, 200, "$kind: login through the primary the sentinels name");
    is($srv{$kind}->get('/app/x', cookie => cookie_of($r) // '')->{status}, 200,
       "$kind: gated request through it");
    like($srv{$kind}->log_since(0), qr/redis primary of "gate" is 127\.0\.0\.1:${\ $primary->port}/,
         "$kind: the error log names the primary found");
}

# jpkictl finds the primary the same way (--redis-sentinel, --redis-master)
my @ctl = ('--redis-sentinel', join(',', map { '127.0.0.1:' . $_->port } @sentinels),
           '--redis-master', 'gate', '--redis-password-file', password_file($pw));
sub ctl { my $out = `$JPKITest::JPKICTL @_ 2>&1`; return ($? >> 8, $out) }
{
    my ($rc, $out) = ctl('map', 'list', @ctl);
    is($rc, 0, 'jpkictl map list through the sentinels');
    is(scalar(() = $out =~ /^[0-9a-f]{32} \S+$/mg), 3, '... the three mappings');
    # a sentinel that does not answer is skipped, one that does not know
    # the name says so: the gates' discovery, and its sentence
    my $dead = '127.0.0.1:' . JPKITest::free_port();
    ($rc, $out) = ctl('map', 'list', '--redis-sentinel',
                      join(',', $dead, map { '127.0.0.1:' . $_->port } @sentinels),
                      '--redis-master', 'gate', '--redis-password-file', password_file($pw));
    is($rc, 0, 'jpkictl: a sentinel down first, the next one asked') or diag($out);
    ($rc, $out) = ctl('map', 'list', '--redis-sentinel', $dead, '--redis-master', 'gate',
                      '--redis-password-file', password_file($pw));
    isnt($rc, 0, 'jpkictl: no sentinel answering: refused');
    like($out, qr/redis: no sentinel named the redis primary of "gate"/,
         '... and says so') or diag($out);
}

# ---- the load: each server, a client in a loop of a login and a gated
# request, every answer written down (time, what, status, the challenge
# of a login that passed)
my $stop = "$dir/stop-load";
my %load;
for my $kind (@kinds) {
    my $file = "$dir/load-$kind.log";
    my $s = $srv{$kind};
    my $cookie = '';
    my $pid = load($file, $stop, sub {
        my ($out) = @_;
        my $t0 = time;
        my $ch = challenge($s->url('/jpki'));
        my $r = $ch ? post_json($s->url('/jpki/login'), login_body($ch, 'user1'))
                    : { status => 0 };
        printf $out "%.3f login %d %s %.3f\n", time, $r->{status},
            $r->{status} == 200 ? $ch : '-', $t0;
        $cookie = cookie_of($r) // $cookie if $r->{status} == 200;
        $t0 = time;
        my $g = $s->get('/app/l', cookie => $cookie, timeout => 5);
        printf $out "%.3f gated %d - %.3f\n", time, $g->{status}, $t0;
        sleep 0.02;
    });
    $load{$kind} = { pid => $pid, file => $file };
}
sleep 1.5;

# ---- the failover
my $old = $primary->port;
$primary->crash;
my $t_kill = time;
# the promotion: the first moment any sentinel names the replica (asked
# every 10 ms)
my $t_promo;
while (!defined $t_promo && time - $t_kill < 30) {
    for (@sentinels) {
        next unless ($_->primary_port // 0) == $replica->port;
        $t_promo = time;
        last;
    }
    sleep 0.01;
}
ok(defined $t_promo, 'the sentinels promoted the replica');
diag(sprintf('failover: primary killed, replica promoted %.2f s later', ($t_promo // time) - $t_kill));
ok(($replica->try_cmd('ROLE') // [])->[0] eq 'master', 'the replica is the primary now');

# logins resume on both servers
my %first;
wait_for('logins', 15, sub {
    for my $kind (@kinds) {
        next if $first{$kind};
        for (split /\n/, slurp($load{$kind}{file})) {
            my ($t, $what, $st) = split / /;
            if ($what eq 'login' && $st == 200 && $t > $t_kill) { $first{$kind} = $t; last }
        }
    }
    return keys %first == @kinds;
});
sleep 1;
spew($stop, '');
waitpid($load{$_}{pid}, 0) for @kinds;

for my $kind (@kinds) {
    my @rec = map { [ split / / ] } split /\n/, slurp($load{$kind}{file});
    my @during = grep { $_->[0] > $t_kill && (!$first{$kind} || $_->[0] < $first{$kind}) } @rec;
    my @failed = grep { $_->[2] != 200 } @during;
    my %codes;
    $codes{"$_->[1] $_->[2]"}++ for @failed;
    ok($first{$kind}, "$kind: logins resume after the failover");
    my $secs = $first{$kind} && $t_promo ? $first{$kind} - $t_promo : undef;
    diag(sprintf("%s: %d requests failed during the failover (%s); first successful "
                 . "login %.2f s after the promotion (%.2f s after the kill)",
                 $kind, scalar @failed, join(', ', map { "$_: $codes{$_}" } sort keys %codes) || 'none',
                 $secs // -1, ($first{$kind} // time) - $t_kill));
    ok(defined $secs && $secs <= 5, "$kind: the first login within 5 s of the promotion"
       . (defined $secs ? sprintf(' (%.2f s; goal 2 s)', $secs) : ''));
    my @bad = grep { $_->[2] != 200 && $_->[2] != 503 } @during;
    is(scalar @bad, 0, "$kind: what failed during the failover failed closed (503)")
        or diag(join "\n", map { "@$_" } @bad);
    ok(scalar(grep { $_->[0] > ($first{$kind} // 9e9) && $_->[1] eq 'gated' && $_->[2] == 200 } @rec) > 0,
       "$kind: gated requests pass again on the new primary");

    # every login made after the kill wrote its challenge to the new
    # primary: each one replayed is refused.  (One the old primary took
    # just before it died may be lost with it: Redis replicates after it
    # answers.)
    my @after = grep { $_->[1] eq 'login' && $_->[2] == 200 && $_->[4] > $t_kill } @rec;
    my $replayed = 0;
    for (@after) {
        my $r = post_json($srv{$kind}->url('/jpki/login'), login_body($_->[3], 'user1'));
        next if ($r->{json}{error} // '') eq 'challenge_replayed';
        $replayed++;
        diag("$kind: the login of $_->[0] replayed: $r->{status} " . ($r->{json}{error} // ''));
    }
    ok(@after > 0, "$kind: " . scalar(@after) . ' logins passed after the kill');
    is($replayed, 0, "$kind: every one of them refused when replayed (its store write was made)");

    # a revoked certificate stays refused
    my $r = $srv{$kind}->login('rev-keyCompromise');
    is($r->{json} && $r->{json}{error}, 'cert_revoked', "$kind: a revoked certificate is refused after the failover");
    like($srv{$kind}->log_since(0), qr/redis primary of "gate" is 127\.0\.0\.1:${\ $replica->port}/,
         "$kind: the error log names the new primary");
}
ok(($replica->cmd('DBSIZE') // 0) > 0, 'the new primary holds the gate\'s keys');
{
    my $id = cert_id('user2', $secret);
    my ($rc, $out) = ctl('map', 'remove', '--cert-id', $id, @ctl);
    is($rc, 0, 'jpkictl writes through the sentinels after the failover') or diag($out);
    is($replica->cmd('GET', "jpki:v1:map:$id"), undef, '... to the new primary');
}

# ---- a sentinel that names a replica: ROLE first, nothing written there.
# A small impostor answers every query with a replica's address.
{
    my $r2 = JPKITest::Redis->start(name => 'replica2', password => $pw,
        args => [ '--replicaof', '127.0.0.1', $replica->port, '--masterauth', $pw ]);
    my $lie = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16,
                                    ReuseAddr => 1) or die "listen: $!";
    my $lport = $lie->sockport;
    my $ans = "*2\r\n\$9\r\n127.0.0.1\r\n\$" . length($r2->port) . "\r\n" . $r2->port . "\r\n";
    my $lpid = fork // die;
    if ($lpid == 0) {
        while (my $c = $lie->accept) { my $b; sysread($c, $b, 512); print $c $ans; close $c }
        POSIX::_exit(0);
    }
    $r2->cmd('CONFIG', 'RESETSTAT');
    for my $kind (@kinds) {
        my $s = JPKIServer->start($kind, name => "liar-$kind", %site,
                                  store => "sentinel=127.0.0.1:$lport master=gate password_file="
                                           . password_file($pw));
        my $m = $s->mark;
        my $r = $s->login('user1');
        is($r->{status}, 503, "$kind: a primary that is a replica: 503");
        like($s->log_since($m), qr/redis is not the primary \(ROLE: slave\)/,
             "$kind: ... the error log says why");
        $s->stop;
    }
    my ($rc, $out) = ctl('map', 'list', '--redis-sentinel', "127.0.0.1:$lport", '--redis-master', 'gate',
                         '--redis-password-file', password_file($pw));
    is($rc, 5, 'jpkictl: a primary that is a replica: store failed');
    like($out, qr/redis: 127\.0\.0\.1:\d+ is not the primary \(ROLE: slave\)/, '... saying so');
    my $stats = $r2->cmd('INFO', 'commandstats');
    my @rejected = $stats =~ /cmdstat_(\w+):[^\r\n]*rejected_calls=([1-9]\d*)/g;
    is("@rejected", '', 'no command was sent to the replica (none rejected -READONLY)');
    ok($stats =~ /cmdstat_role:calls=\d+/, '... it was asked ROLE, nothing more');
    kill 'KILL', $lpid;
    waitpid($lpid, 0);
    $r2->stop;
}

$_->stop for values %srv;
$_->stop for @sentinels;
$replica->stop;
$ocsp->stop;
done_testing();
