#!/usr/bin/perl
# t/guard.t - what keeps one client from hurting the others, through nginx
# and Apache alike (docs/security.md "Floods and the store"):
#   - a refused login writes nothing but its throttle counters: thousands of
#     logins with a valid but unmapped certificate leave a 1 MiB embedded
#     store (and a Redis at maxmemory) room for everyone else;
#   - a store that is really full answers store_full (login, log, health)
#     and existing sessions keep working;
#   - failed logins are throttled per certificate and per address, in the
#     store (across nodes): 429, Retry-After, too_many_attempts; refusal
#     audit lines are rate-limited and the left-out ones counted;
#   - a cap on the logins a worker or child verifies at once (503 busy);
#   - a logout is refused on the very next request on its node and within a
#     second on the others (nginx -> Apache and back, through Redis), and
#     `jpkictl logout --account` reaches every node the same way.
#   make all pki build/sign_bodies; prove -v t/guard.t
#   (JPKI_GUARD_ONLY="flood full throttle busy logout": some parts only)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use HTTP::Tiny;
use IO::Socket::INET;
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(nginx module jpkictl pki openssl redis));
skip_unless_apache();
my $SIGN = "$ENV{JPKI_BUILD}/sign_bodies";
plan skip_all => "no $SIGN (make build/sign_bodies)" unless -x $SIGN;

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $PKI = $JPKITest::PKI;
spew("$dir/map.txt", cert_id('user1', $secret) . " alice\n", 0644);
my $issuer = 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem ocsp=' . $ocsp->url;
my $redis = JPKITest::Redis->start(name => 'redis');
# JPKI_GUARD_ONLY="flood throttle": only those parts (while developing)
sub part { my $o = $ENV{JPKI_GUARD_ONLY}; return !$o || $o =~ /\b$_[0]\b/ }
my $rport = $redis->port;

# Login bodies signed ahead (fresh challenges of the site's key ring, for
# Host 127.0.0.1): N of them for CERT.
sub bodies {
    my ($cert, $n) = @_;
    open my $p, '-|', $SIGN, $secret, "$PKI/ca2.pem", "$PKI/$cert.key",
        "$PKI/$cert.der", $n or die "sign_bodies: $!";
    my @b = <$p>;
    close $p or die "sign_bodies failed";
    chomp @b;
    return @b;
}

# The locations of every server of this test (the same on both servers):
#   /jpki/        endpoints, the default throttle
#   /nothr/jpki/  endpoints, no throttle (what a refused login writes)
#   /thr/jpki/    endpoints, window 2 s, 3 failures a certificate, 6 an
#                 address, no login limit
#   /one/jpki/    endpoints, one login verified at once
#   /app/         gated (the default re-check interval: 5 minutes)
#   /health       the health endpoint
my %LOC = (
    '/jpki/'       => undef,
    '/nothr/jpki/' => 'off',
    '/thr/jpki/'   => 'window=2s cert=3 addr=6 logins=0',
    '/one/jpki/'   => 'concurrency=1',
    '/many/jpki/'  => 'logins=0',
    '/aud/jpki/'   => 'window=5s cert=3 addr=100 logins=0',
);

# The site (t/lib/JPKIServer.pm) on STORE.
sub site {
    my ($store) = @_;
    return (secret => $secret, issuer => $issuer, store => $store, map => "$dir/map.txt",
            redis_timeout => '2s',
            locations => [ (map { ($_ => { endpoints => 1, throttle => $LOC{$_} }) } sort keys %LOC),
                           '/app/' => { gate => 1, upstream => 1 },
                           '/health' => { health => 1, exact => 1 },
                           '/metrics' => { exact => 1, nginx => "jpki_metrics;\njpki_admin_allow 127.0.0.0/8;",
                                           apache => "JPKIMetrics On\nJPKIAdminAllow 127.0.0.0/8" } ]);
}

# A counter of the scrape's text (no labels).
sub counter_of {
    my ($srv, $name) = @_;
    my $r = http('GET', $srv->url('/metrics'));
    return $r->{status} == 200 && $r->{content} =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

# A server: nginx or apache, on the embedded store of SIZE or on Redis.
sub server {
    my ($kind, $name, $store, %o) = @_;
    return JPKIServer->start($kind, name => $name, workers => $o{workers} // 2, site($store));
}
sub shm_store { my ($name, $size) = @_; return "shm zone=$name size=$size" }
my $REDIS = "redis=127.0.0.1:$rport";

# A login body POSTed on a kept-alive connection, the request written at
# once (HTTP::Tiny writes the head and the body apart: Nagle and delayed
# ACKs then cost 40 ms a request).
my %conn;
sub post_body {
    my ($srv, $area, $body) = @_;
    my $port = $srv->port;
    my $s = $conn{$port};
    for my $try (1, 2) {
        $s = $conn{$port} = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $port, Timeout => 10) or die "connect: $!" unless $s;
        print $s "POST ${area}jpki/login HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
               . "Content-Type: application/json\r\nContent-Length: "
               . length($body) . "\r\n\r\n$body";
        my ($head, $line) = ('');
        while (defined($line = <$s>)) {
            last if $line eq "\r\n";
            $head .= $line;
        }
        if ($head eq '') {                     # closed: once more, anew
            close $s;
            $s = undef;
            next;
        }
        my ($st) = $head =~ m{^HTTP/1\.\d (\d+)};
        my %h = map { /^([^:]+):\s*(.*?)\r?$/ ? (lc $1 => $2) : () } split /\n/, $head;
        my $content = '';
        read($s, $content, $h{'content-length'} // 0);
        if (($h{connection} // '') =~ /close/i) {
            close $s;
            delete $conn{$port};
        }
        return { status => $st, headers => \%h, content => $content,
                 json => json_decode($content) };
    }
    die "no answer from $port";
}
sub health { my $r = http('GET', $_[0]->url('/health')); return $r->{json} // {} }
sub error_of { my ($r) = @_; return $r->{json} ? $r->{json}{error} // '' : '' }

# ---------------------------------------------------------------- floods

# The loop of the report: "get a challenge, sign it with a valid but
# unmapped certificate, log in", N times, on AREA; -> { status => count }
sub unmapped_loop {
    my ($srv, $area, $n) = @_;
    my %st;
    for my $b (bodies('user2', $n)) {
        my $r = post_body($srv, $area, $b);
        $st{ $r->{status} }++;
        $st{"first $r->{status}"} //= $r->{content} if $r->{status} != 403;
    }
    return \%st;
}

for my $kind (part('flood') ? qw(nginx apache) : ()) {
    for my $st ([shm => shm_store("g$kind", '1m')], [redis => $REDIS]) {
        my ($sname, $store) = @$st;
        my $t = "$kind/$sname";
        $redis->cmd('FLUSHALL');
        my $srv = server($kind, "$kind-$sname", $store);
        my $r = login_to($srv, 'user1');
        my $s0 = cookie_of($r);
        ok($s0, "$t: a session before the flood");

        if ($sname eq 'redis') {
            my ($used) = $redis->cmd('INFO', 'memory') =~ /used_memory:(\d+)/;
            $redis->cmd('CONFIG', 'SET', 'maxmemory', $used + 256 * 1024);
        }
        # no throttle: 3000 refused logins (the zone holds about 2,500
        # entries: before, it was full after 1,299 of them)
        my $c = unmapped_loop($srv, '/nothr/', 3000);
        is($c->{403} // 0, 3000, "$t: 3000 unmapped logins, no throttle: all 403 "
           . "account_not_mapped") or diag explain $c;
        $r = login_to($srv, 'user1');
        is($r->{status}, 200, "$t: ... then a mapped user logs in") or diag $r->{content};
        is(gated_get($srv, $s0)->{status}, 200, "$t: ... the session from before works");
        is(health($srv)->{status}, 'ok', "$t: ... health ok");
        if ($sname eq 'redis') {
            my @k = $redis->keys_like('jpki:v1:*');
            is(scalar(grep { /^jpki:v1:ch:/ } @k), 2, "$t: ... the store holds the two "
               . "mapped logins' challenges, none of the refused ones")
                or diag join ' ', @k;
        }

        # the default throttle: 10 failed logins a certificate a minute
        my @b = bodies('user2', 14);
        my @got = map { post_body($srv, '/', $_) } @b;
        is(join(',', map { $_->{status} } @got[0 .. 9]), join(',', (403) x 10),
           "$t: default throttle: 10 refusals of one certificate answered");
        is(join(',', map { $_->{status} } @got[10 .. 13]), '429,429,429,429',
           "$t: ... then 429") or diag $got[10]{content};
        is(error_of($got[10]), 'too_many_attempts', "$t: ... too_many_attempts");
        like($got[10]{headers}{'retry-after'} // '', qr/^[1-9]\d*$/,
             "$t: ... with Retry-After");
        $r = login_to($srv, 'user1');
        is($r->{status}, 200, "$t: ... another certificate from the same address "
           . "logs in") or diag $r->{content};
        $redis->cmd('CONFIG', 'SET', 'maxmemory', 0) if $sname eq 'redis';
        $srv->stop;
    }
}

# A store that is really full: store_full, and the sessions go on.
for my $kind (part('full') ? qw(nginx apache) : ()) {
    for my $sname (qw(shm redis)) {
        my $t = "$kind/$sname full";
        $redis->cmd('FLUSHALL');
        my $srv = server($kind, "$kind-full-$sname",
                         $sname eq 'shm' ? shm_store("f$kind", '64k') : $REDIS);
        my $s0 = cookie_of(login_to($srv, 'user1'));
        ok($s0, "$t: a session");
        my ($r, $n) = ({}, 0);
        if ($sname eq 'redis') {
            # Redis past maxmemory (noeviction): every write refused -OOM
            $redis->cmd('CONFIG', 'SET', 'maxmemory', 1);
            $r = post_body($srv, '/many/', (bodies('user1', 1))[0]);
        } else {
            # every login uses up its challenge until the challenge expires
            for my $b (bodies('user1', 400)) {
                $r = post_body($srv, '/many/', $b);
                $n++;
                last if $r->{status} != 200;
            }
        }
        is($r->{status}, 503, "$t: a login when the store is full: 503"
           . ($n ? " (after $n logins)" : '')) or diag $r->{content};
        is(error_of($r), 'store_full', "$t: ... store_full");
        like($srv->log_since(0), qr/store_full/, "$t: ... in the error log");
        my $h = health($srv);
        is($h->{status}, 'degraded', "$t: health degraded");
        is($h->{store} && $h->{store}{error}, 'store_full', "$t: ... store_full")
            or diag explain $h;
        is(gated_get($srv, $s0)->{status}, 200, "$t: the session goes on");
        $redis->cmd('CONFIG', 'SET', 'maxmemory', 0) if $sname eq 'redis';
        $srv->stop;
    }
}

# ---------------------------------------------------------------- throttle

# A login with a wrong signature (a valid challenge, signed by another key).
sub bad_sig {
    my ($srv, $area, $cert) = @_;
    my $ch = challenge($srv->url("${area}jpki"));
    my $b = login_body($ch, $cert, 'user-ec');
    return post_body($srv, $area, json_encode($b));
}

if (part('throttle')) {
    $redis->cmd('FLUSHALL');
    my $ng = server('nginx', 'ng-thr', $REDIS, workers => 1);
    my $ap = server('apache', 'ap-thr', $REDIS, workers => 1);
    for my $s ([nginx => $ng, $ap], [apache => $ap, $ng]) {
        my ($name, $srv, $other) = @$s;
        my @st = map { bad_sig($srv, '/thr/', 'user1')->{status} } 1 .. 3;
        is("@st", '401 401 401', "$name: 3 bad signatures of one certificate: 401");
        my $t0 = time;
        my $r = bad_sig($other, '/thr/', 'user1');
        is($r->{status}, 429, "$name: the 4th, on the other server: 429 (counters "
           . "in the store)") or diag $r->{content};
        is(error_of($r), 'too_many_attempts', "$name: ... too_many_attempts");
        like($r->{headers}{'retry-after'} // '', qr/^[1-4]$/, "$name: ... Retry-After 1..4 s");
        ok(time - $t0 >= 0.9, "$name: ... held a second" . ($name eq 'apache'
           ? ' (by nginx)' : '')) if $other == $ng;
        $r = login_to($srv, 'user1', prefix => '/thr');
        is($r->{status}, 200, "$name: a good login of that certificate passes (who has "
           . "a card's certificate cannot lock its holder out)") or diag $r->{content};
        sleep 4.2;                                 # two windows
        $r = bad_sig($srv, '/thr/', 'user1');
        is($r->{status}, 401, "$name: after the window, a bad signature is a 401 again");
        sleep 4.2;
    }

    # per address: 6 failures of different certificates
    my @st = map { bad_sig($ng, '/thr/', $_)->{status} }
             qw(user1 user2 user-old rev-superseded user1 user2);
    is("@st", '401 401 401 401 401 401', 'six failures of four certificates from one address');
    my $r = bad_sig($ap, '/thr/', 'user-ec');
    is($r->{status}, 429, '... the 7th, of a fresh certificate, on the other server: 429 '
       . '(the address\'s limit)');
    sleep 4.2;

    # audit lines: at most 10 refusals a window per certificate (per
    # process), the others counted in the next line
    my $mark = $ng->mark;
    my @kids;
    for (1 .. 13) {                # at once: a throttled answer is held 1 s
        my $pid = fork // die;
        if (!$pid) { %conn = (); bad_sig($ng, '/aud/', 'rev-cessationOfOperation'); exit 0 }
        push @kids, $pid;
    }
    waitpid $_, 0 for @kids;
    my @a = grep { $_->{event} eq 'login' } $ng->audits($mark);
    is(scalar @a, 10, '13 refused logins in one window: 10 audit lines');
    sleep 5.2;
    $mark = $ng->mark;
    bad_sig($ng, '/aud/', 'rev-cessationOfOperation');
    @a = grep { $_->{event} eq 'login' } $ng->audits($mark);
    is($a[0] && $a[0]{suppressed}, 3, '... the next window\'s first line: suppressed 3')
        or diag explain \@a;
    $ng->stop;
    $ap->stop;
}

# ---------------------------------------------------------------- concurrency

for my $kind (part('busy') ? qw(nginx apache) : ()) {
    $redis->cmd('FLUSHALL');
    my $srv = server($kind, "$kind-one", $REDIS);
    my @b = bodies('user1', 8);
    $redis->pause;
    my @pids;
    my $out = "$dir/one-$kind";
    for my $i (0 .. 7) {
        my $pid = fork // die;
        if (!$pid) {
            my $r = HTTP::Tiny->new(timeout => 10)->request('POST',
                $srv->url('/one/jpki/login'),
                { headers => { 'Content-Type' => 'application/json' }, content => $b[$i] });
            spew("$out.$i", "$r->{status} " . ($r->{headers}{'retry-after'} // '-')
                 . " $r->{content}");
            exit 0;
        }
        push @pids, $pid;
        sleep 0.05;
    }
    sleep 1;
    $redis->resume;
    waitpid $_, 0 for @pids;
    my @res = map { slurp("$out.$_") } 0 .. 7;
    my @busy = grep { /^503 1 .*"busy"/ } @res;
    ok(@busy >= 4, "$kind: 8 logins at once while the store hangs, one at a time per "
       . "process: " . scalar(@busy) . " answered 503 busy with Retry-After: 1")
        or diag join "\n", @res;
    is(counter_of($srv, 'jpki_login_busy_total'), scalar @busy,
       "$kind: ... each counted in jpki_login_busy_total, summed over the processes");
    is(login_to($srv, 'user1', prefix => '/one')->{status}, 200,
       "$kind: ... then a login goes through");
    $srv->stop;
}

# ---------------------------------------------------------------- logouts

# Polls COOKIE on SRV until it is refused; the seconds it took (undef: not
# within LIMIT).
sub refused_within {
    my ($srv, $cookie, $limit) = @_;
    my $t0 = time;
    while (time - $t0 < $limit) {
        my $r = gated_get($srv, $cookie);
        return time - $t0 if $r->{status} == 401 && error_of($r) eq 'session_logged_out';
        sleep 0.05;
    }
    return undef;
}

if (part('logout')) {
    $redis->cmd('FLUSHALL');
    my $ng = server('nginx', 'ng-out', $REDIS);
    my $ap = server('apache', 'ap-out', $REDIS);
    for my $s ([nginx => $ng, $ap], [apache => $ap, $ng]) {
        my ($name, $srv, $other) = @$s;
        my $r = login_to($srv, 'user1');
        my $c = cookie_of($r);
        is(gated_get($other, $c)->{status}, 200, "$name: a session, used on the other server");
        is(gated_get($srv, $c)->{status}, 200, "$name: ... and on its own");
        $r = http('POST', $srv->url('/jpki/logout'),
                  headers => { Cookie => "jpki_session=$c" });
        is($r->{status}, 200, "$name: logout");
        $r = gated_get($srv, $c);
        is($r->{status}, 401, "$name: the very next request on this server: 401");
        is(error_of($r), 'session_logged_out', "$name: ... session_logged_out");
        my $dt = refused_within($other, $c, 3);
        ok(defined $dt && $dt <= 1.0, "$name: the other server refuses it within a second"
           . (defined $dt ? sprintf(' (%.2f s)', $dt) : ''));
        sleep 1.1;                     # a new login in another second
        $r = login_to($srv, 'user1');
        is(gated_get($other, cookie_of($r))->{status}, 200,
           "$name: a login after the logout is not concerned");
    }

    # jpkictl logout --account: every session of the account, every node
    my @c = map { cookie_of(login_to($_, 'user1')) } $ng, $ap;
    is(gated_get($_, $c[0])->{status}, 200, 'a session before jpkictl logout') for $ng, $ap;
    my $out = `$JPKICTL logout --account alice --secret-file $secret --redis 127.0.0.1:$rport 2>&1`;
    is($? >> 8, 0, 'jpkictl logout --account alice') or diag $out;
    for my $s ([nginx => $ng], [apache => $ap]) {
        for my $k (0, 1) {
            my $dt = refused_within($s->[1], $c[$k], 3);
            ok(defined $dt && $dt <= 1.0, "$s->[0]: session $k of alice refused within a "
               . 'second' . (defined $dt ? sprintf(' (%.2f s)', $dt) : ''));
        }
    }
    $out = `$JPKICTL logout --account 'bad"acct' --secret-file $secret --redis 127.0.0.1:$rport 2>&1`;
    is($? >> 8, 2, 'jpkictl logout with an invalid account: usage error');
    $ng->stop;
    $ap->stop;
}

done_testing();
