#!/usr/bin/perl
# t/redis-recheck.t - a session's re-check through Redis, on nginx and
# Apache alike: the cached revocation answer, the logout markers and the
# mapping read in one pipelined write (one round trip: Redis's MONITOR
# sees them back to back from one connection, nothing else); on nginx, a
# worker's connections to Redis are at most keepalive= however many
# re-checks wait at once (no connection opened and closed per re-check),
# the re-checks of the requests one pass of its event loop reads go in one
# write on one connection, and a re-check waiting for one of them is
# bounded by the Redis timeout.
#   make all pki && prove -v t/redis-recheck.t   (JPKI_SERVERS=nginx: one)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);
use JPKITest;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl redis));
my @kinds = JPKIServer::kinds();

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $cid = cert_id('user1', $secret);
my $cid2 = cert_id('user2', $secret);

sub site {
    my ($store, %o) = @_;
    return (secret => $secret, issuer => "card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp="
                                         . $ocsp->url,
            store => $store, redis_timeout => '2s',
            locations => [ '/jpki/' => { endpoints => 1 },
                           '/app/' => { gate => 1, upstream => 1,
                                        recheck_interval => 0 } ],
            %o);
}

sub gated { my ($srv, $c, $path) = @_; return $srv->get($path // '/app/x', cookie => $c, timeout => 10) }

# The commands Redis runs while CODE runs, as [client, command, key]
# (the logout log's poller left out: it polls on its own clock).
sub monitored {
    my ($redis, $code) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $redis->port,
                                     Proto => 'tcp', Timeout => 3) or die "monitor: $!";
    $sock->autoflush(1);
    print $sock JPKITest::Redis::resp('MONITOR');
    my $ok = <$sock>;
    die "MONITOR refused: $ok" unless $ok =~ /^\+OK/;
    $code->();
    my ($buf, $sel, $end) = ('', IO::Select->new($sock), time + 0.5);
    while (time < $end && $sel->can_read(0.1)) {
        sysread($sock, $buf, 65536, length $buf) or last;
    }
    close $sock;
    my @cmds;
    for (split /\r\n/, $buf) {
        next unless /^\+\S+ \[\d+ (\S+)\] "(\w+)"(?: "([^"]*)")?/;
        next if defined $3 && $3 =~ /^jpki:v1:out(?:seq|log:)/;
        push @cmds, [$1, uc $2, $3 // ''];
    }
    return @cmds;
}

# The connections Redis accepted so far (this question's own included).
sub accepted {
    my ($redis) = @_;
    my ($n) = $redis->cmd('INFO', 'stats') =~ /total_connections_received:(\d+)/;
    return $n;
}

for my $kind (@kinds) {
    my $redis = JPKITest::Redis->start(name => "redis-$kind");
    $redis->cmd('SET', "jpki:v1:map:$cid", 'alice');
    $redis->cmd('SET', "jpki:v1:map:$cid2", 'bob');

    # ---- one round trip per re-check
    my $srv = JPKIServer->start($kind, name => 'recheck', workers => 1,
                                site('redis=127.0.0.1:' . $redis->port . ' keepalive=2'));
    my $r = $srv->login('user1');
    is($r->{status}, 200, "$kind: login");
    my $cookie = cookie_of($r) // '';
    is(gated($srv, $cookie, '/app/warm')->{status}, 200, "$kind: a re-checked request");
    my $st;
    my @c = monitored($redis, sub { $st = gated($srv, $cookie, '/app/once')->{status} });
    is($st, 200, "$kind: the next one, re-checked (interval 0): 200");
    is(scalar(@c), 4, "$kind: ... four commands in Redis")
        or diag(join "\n", map { "@$_" } @c);
    is(join(' ', map { "$_->[1] " . ($_->[2] =~ s/:[0-9a-f]{32}$/:ID/r) } @c),
       'GET jpki:v1:rev:ID GET jpki:v1:out:ID GET jpki:v1:outa:ID GET jpki:v1:map:ID',
       "$kind: ... the cached answer, the two logout markers and the mapping, in one batch");
    my %from = map { $_->[0] => 1 } @c;
    is(scalar(keys %from), 1, "$kind: ... from one connection (one pipelined write)");

    # a revoked answer cached there is honoured (the batch's first reply)
    $redis->cmd('SET', "jpki:v1:rev:$cid", 'revoked|1|1|1|ocsp|1', 'PX', 60000);
    $r = gated($srv, $cookie, '/app/revoked');
    is($r->{status}, 403, "$kind: a revoked answer in the batch: 403");
    is($r->{json}{error}, 'cert_revoked', "$kind: ... cert_revoked");
    $redis->cmd('DEL', "jpki:v1:rev:$cid");
    $srv->stop;

    next unless $kind eq 'nginx';

    # ---- nginx: at most keepalive= connections per worker, whatever the
    # number of re-checks waiting at once; those that waited go together
    # on a connection that comes free, each with its own answers: two
    # sessions, one of them revoked (its answer cached), 16 clients at once
    $srv = JPKIServer->start($kind, name => 'cap', workers => 1,
                             site('redis=127.0.0.1:' . $redis->port . ' keepalive=2'));
    $cookie = cookie_of($srv->login('user1')) // '';
    my $cookie2 = cookie_of($srv->login('user2')) // '';
    is(gated($srv, $cookie, '/app/warm')->{status}, 200, "$kind: cap: a re-checked request");
    like(gated($srv, $cookie2, '/app/warm2')->{content} // '', qr/account=\[bob\]/,
         "$kind: cap: another session's");
    $redis->cmd('SET', "jpki:v1:rev:$cid2", 'revoked|1|1|1|ocsp|1', 'PX', 600000);
    my $before = accepted($redis);
    my @pids;
    for my $k (1 .. 16) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $good = 0;
            for my $i (1 .. 5) {
                my $g = gated($srv, $k % 2 ? $cookie : $cookie2, "/app/c$k-$i");
                $good++ if $k % 2 ? $g->{status} == 200 && $g->{content} =~ /account=\[alice\]/
                                  : $g->{status} == 403 && ($g->{json}{error} // '') eq 'cert_revoked';
            }
            POSIX::_exit($good);
        }
        push @pids, $pid;
    }
    my $good = 0;
    for (@pids) { waitpid($_, 0); $good += $? >> 8 }
    is($good, 80, "$kind: cap: 16 clients at once, 5 re-checked requests each: "
                  . "alice's 200, the revoked session's 403, each its own");
    my $opened = accepted($redis) - $before - 1;
    ok($opened <= 2, "$kind: cap: ... through at most keepalive=2 connections "
                     . "(opened meanwhile: $opened)");
    $srv->stop;

    # the re-checks of the requests one pass of the event loop reads go
    # together, on one connection, even with connections to spare
    # (keepalive=16): eight clients connected, the worker stopped while
    # they write their requests, then resumed: one epoll wait sees them all
    $srv = JPKIServer->start($kind, name => 'pass', workers => 1,
                             site('redis=127.0.0.1:' . $redis->port . ' keepalive=16'));
    $cookie = cookie_of($srv->login('user1')) // '';
    is(gated($srv, $cookie, '/app/warm')->{status}, 200, "$kind: pass: a re-checked request");
    my @socks = map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $srv->port,
                              Proto => 'tcp', Timeout => 5) or die "connect: $!"
    } 1 .. 8;
    sleep 0.3;                                  # accepted, waiting for a request
    my ($w) = $srv->workers;
    $before = accepted($redis);
    my @answers;
    @c = monitored($redis, sub {
        kill 'STOP', $w;
        my $k = 0;
        for my $s (@socks) {
            $k++;
            syswrite($s, "GET /app/p$k HTTP/1.1\r\nHost: localhost\r\n"
                         . "Cookie: jpki_session=$cookie\r\nConnection: close\r\n\r\n");
        }
        sleep 0.2;
        kill 'CONT', $w;
        for my $s (@socks) {
            my ($buf, $sel, $end) = ('', IO::Select->new($s), time + 10);
            while (time < $end && $sel->can_read(1)) {
                sysread($s, $buf, 65536, length $buf) or last;
            }
            push @answers, $buf =~ m{^HTTP/1\.1 (\d+)} ? $1 : 0;
        }
    });
    close $_ for @socks;
    is("@answers", join(' ', (200) x 8), "$kind: pass: eight re-checked requests at once: 200 each");
    is(scalar(@c), 32, "$kind: pass: ... their 32 commands in Redis")
        or diag(join "\n", map { "@$_" } @c);
    %from = map { $_->[0] => 1 } @c;
    # one connection, or two when the worker's poll of the logout log held
    # the pooled one at that moment or the requests took two passes; each
    # on its own would take eight
    $opened = accepted($redis) - $before - 1;
    ok(keys(%from) <= 2, "$kind: pass: ... from one connection (one write for the pass), "
                         . "with 16 allowed (connections: " . keys(%from) . ")")
        or diag(join "\n", map { "@$_" } @c);
    ok($opened <= 2, "$kind: pass: ... at most two opened meanwhile (opened: $opened)");
    $srv->stop;

    # a re-check waiting for a connection is bounded by the Redis timeout
    # (its wait and its round together): Redis silent, five at once
    # through one connection, all answered within one timeout
    $srv = JPKIServer->start($kind, name => 'wait', workers => 1,
                             site('redis=127.0.0.1:' . $redis->port . ' keepalive=1'));
    $cookie = cookie_of($srv->login('user1')) // '';
    my $m = $srv->mark;
    $redis->pause;
    my $t = time;
    @pids = ();
    for my $k (1 .. 5) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $g = gated($srv, $cookie, "/app/w$k");
            POSIX::_exit($g->{status} == 503 && ($g->{json}{error} // '') eq 'timeout'
                         ? 1 : 0);
        }
        push @pids, $pid;
    }
    my $timeouts = 0;
    for (@pids) { waitpid($_, 0); $timeouts += $? >> 8 }
    my $el = time - $t;
    $redis->resume;
    is($timeouts, 5, "$kind: wait: Redis silent, 5 re-checks through one connection: 503 timeout");
    ok($el < 3.5, sprintf('%s: wait: ... all answered in %.2f s (Redis timeout 2 s)', $kind, $el));
    like($srv->log_since($m), qr/no redis connection of the site's 1 came free in time|redis command timed out/,
         "$kind: wait: ... the log says why");
    is(gated($srv, $cookie, '/app/back')->{status}, 200, "$kind: wait: Redis back: 200");
    $srv->stop;
    $redis->stop;
}

done_testing();
