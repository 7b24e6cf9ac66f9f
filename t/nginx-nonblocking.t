#!/usr/bin/perl
# t/nginx-nonblocking.t - the module never blocks a worker: with ONE worker
# process, a login or gated request waiting on a stalled Redis (SIGSTOP) or
# on an OCSP responder that never answers (a "black hole") ends after the
# configured timeout with a 503 JSON answer, while other requests to the
# same worker are answered at once.
#   make build/ngx_http_jpki_module.so build/jpkictl pki && prove -v t/nginx-nonblocking.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use JPKITest;

skip_unless(qw(nginx module jpkictl pki openssl redis));

my $TIMEOUT = 2;          # jpki_redis_timeout and jpki_ocsp_timeout, seconds
my $PROMPT = 0.5;         # "at once", seconds

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $redis = JPKITest::Redis->start(name => 'redis');
my $hole = JPKITest::BlackHole->start;
my %acct = (user1 => 'alice', user2 => 'bob', 'user-ec' => 'ecuser',
            'rev-superseded' => 'rev');
$redis->cmd('SET', 'jpki:v1:map:' . cert_id($_, $secret), $acct{$_}) for sort keys %acct;

my $ng = JPKITest::Nginx->start(name => 'one-worker', workers => 1, http => <<"EOF");
    jpki_secret_file $secret;
    jpki_issuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp=@{[ $hole->url ]} crl=\@PKI\@/ca2.crl;
    jpki_store redis=127.0.0.1:@{[ $redis->port ]};
    jpki_redis_timeout ${TIMEOUT}s;
    jpki_redis_connect_timeout 1s;
    jpki_ocsp_timeout ${TIMEOUT}s;

    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/     { jpki_endpoints; }
        location /crl/jpki/ { jpki_endpoints; jpki_revocation crl; }
        location /app/      { jpki on; jpki_recheck_interval 0; jpki_revocation crl;
                              proxy_pass http://127.0.0.1:\@UP\@; }
        location /pub/      { proxy_pass http://127.0.0.1:\@UP\@; }
    }
EOF
my $base = $ng->base;
is(scalar $ng->worker_pids, 1, 'nginx runs one worker process');

# ---------------------------------------------------------------- helpers

# A request in a child process; bg_wait() gives its response summary.
sub bg {
    my ($what, @args) = @_;
    my $out = "$dir/bg." . rand();
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $r = eval { $what->(@args) } // { status => 0, content => $@ };
        spew($out, json_encode({ status => $r->{status}, elapsed => $r->{elapsed},
                                 error => $r->{json} ? $r->{json}{error} : undef,
                                 content => $r->{content} }));
        POSIX::_exit(0);
    }
    return { pid => $pid, out => $out, t0 => time };
}

sub bg_wait {
    my ($h) = @_;
    waitpid $h->{pid}, 0;
    return json_decode(slurp($h->{out})) // { status => 0 };
}

sub login {
    my ($area, $cert, %o) = @_;
    my $ch = challenge("$base$area");
    return { status => 0, content => 'no challenge' } unless $ch;
    return post_json("$base$area/login", login_body($ch, $cert), %o);
}

sub gated {
    my ($path, $cookie, %o) = @_;
    return http('GET', "$base$path", %o, headers => { Cookie => "jpki_session=$cookie" });
}

# Other requests to the same worker while something waits: answered at once.
sub prompt_ok {
    my ($what) = @_;
    my $r = http('GET', "$base/pub/ping");
    is($r->{status}, 200, "$what: ungated location answers");
    cmp_ok($r->{elapsed}, '<', $PROMPT, "$what: ... within $PROMPT s")
        or diag(sprintf 'took %.3f s', $r->{elapsed});
    my $c = challenge("$base/jpki");
    ok($c, "$what: challenge endpoint answers");
}

sub slow_503 {
    my ($what, $res, $reason) = @_;
    is($res->{status}, 503, "$what: 503");
    is($res->{error}, $reason, "$what: error $reason");
    cmp_ok($res->{elapsed}, '>=', $TIMEOUT - 0.3, "$what: waited for the timeout");
    cmp_ok($res->{elapsed}, '<', $TIMEOUT + 1.5, "$what: ... and not much longer")
        or diag(sprintf 'took %.3f s', $res->{elapsed});
}

# ---------------------------------------------------------------- baseline

my $r = login('/crl/jpki', 'user1');
is($r->{status}, 200, 'baseline: login (CRL) with Redis up');
my $cookie = cookie_of($r);
ok($cookie, 'baseline: session cookie');
$r = gated('/app/a', $cookie);
is($r->{status}, 200, 'baseline: gated request (Redis re-check)');
like($r->{content}, qr/account=\[alice\]/, 'baseline: account header upstream');

# ---------------------------------------------------------------- OCSP black hole

{
    my $t0 = time;
    # three certificates: a login of the same one would join the first one's
    # OCSP query and its timer, and end sooner than its own timeout
    my @h = (bg(\&login, '/jpki', 'user1'), bg(\&login, '/jpki', 'user2'),
             bg(\&login, '/jpki', 'user-ec'));
    sleep 0.4;                             # the logins are waiting on OCSP
    prompt_ok('OCSP black hole');
    # a client that gives up while its login waits on OCSP
    $r = login('/jpki', 'rev-superseded', timeout => 0.5);
    is($r->{status}, 599, 'OCSP black hole: a client gives up after 0.5 s');
    $r = gated('/app/b', $cookie);
    is($r->{status}, 200, 'OCSP black hole: gated request with a Redis re-check answers');
    cmp_ok($r->{elapsed}, '<', $PROMPT, 'OCSP black hole: ... within 0.5 s');
    my @res = map { bg_wait($_) } @h;
    sleep 0.5 while time - $t0 < $TIMEOUT + 1;     # the abandoned one ends too
    slow_503("OCSP black hole: login $_", $res[$_ - 1], 'revocation_unavailable') for 1 .. 3;
    cmp_ok(time - $t0, '<', $TIMEOUT + 2, 'OCSP black hole: the three logins waited together');
    like($ng->log_since, qr/OCSP responder timed out/, 'OCSP black hole: timeout logged');
}

# ---------------------------------------------------------------- Redis stopped

{
    $redis->pause;
    my $t0 = time;
    my @h = (bg(\&login, '/crl/jpki', 'user1'), bg(\&gated, '/app/c', $cookie));
    sleep 0.4;
    prompt_ok('Redis stopped');
    # a client that gives up while its request waits on Redis
    $r = gated('/app/d', $cookie, timeout => 0.5);
    is($r->{status}, 599, 'Redis stopped: a client gives up after 0.5 s');
    my ($login, $gate) = map { bg_wait($_) } @h;
    slow_503('Redis stopped: login', $login, 'timeout');
    slow_503('Redis stopped: gated request', $gate, 'timeout');
    like($ng->log_since, qr/redis command timed out/, 'Redis stopped: timeout logged');
    sleep 0.5 while time - $t0 < $TIMEOUT + 0.8;   # the abandoned one ends too
    $redis->resume;

    $r = login('/crl/jpki', 'user1');
    is($r->{status}, 200, 'Redis back: login');
    $r = gated('/app/e', $cookie);
    is($r->{status}, 200, 'Redis back: gated request');
}

# ---------------------------------------------------------------- Redis gone

{
    $redis->stop;
    my $t0 = time;
    $r = gated('/app/f', $cookie);
    is($r->{status}, 503, 'Redis stopped for good: gated request 503');
    is($r->{json} && $r->{json}{error}, 'store_error', 'Redis stopped for good: error store_error')
        or diag($r->{content});
    cmp_ok($r->{elapsed}, '<', $PROMPT + 1, 'Redis stopped for good: answered without waiting long');
    prompt_ok('Redis gone');
}

# ---------------------------------------------------------------- AUTH refused

{
    my $locked = JPKITest::Redis->start(name => 'redis-pw', password => 'right');
    my $ng2 = JPKITest::Nginx->start(name => 'wrong-password', workers => 1, http => <<"EOF");
    jpki_secret_file $secret;
    jpki_issuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=\@PKI\@/ca2.crl;
    jpki_store redis=127.0.0.1:@{[ $locked->port ]} db=2 password_file=@{[ password_file("wrong") ]};
    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/ { jpki_endpoints; jpki_revocation crl; }
    }
EOF
    my $ch = challenge($ng2->url('/jpki'));
    $r = post_json($ng2->url('/jpki/login'), login_body($ch, 'user1'));
    is($r->{status}, 503, 'Redis refuses AUTH: login 503');
    is($r->{json} && $r->{json}{error}, 'store_error', 'Redis refuses AUTH: error store_error');
    cmp_ok($r->{elapsed}, '<', $PROMPT, 'Redis refuses AUTH: answered at once');
    like($ng2->log_since, qr/redis AUTH or SELECT refused/, 'Redis refuses AUTH: logged');
    $ng2->stop;
    $locked->stop;
}

# ---------------------------------------------------------------- sentinels

# The primary asked of the sentinels in a round like Redis's: the first
# sentinel a black hole (its answer never comes), the second a small
# impostor naming a Redis that is then stopped.  The worker answers others
# meanwhile.
{
    my $r3 = JPKITest::Redis->start(name => 'redis-sentinel');
    $r3->cmd('SET', 'jpki:v1:map:' . cert_id('user1', $secret), 'alice');
    my $lie = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16,
                                    ReuseAddr => 1) or die "listen: $!";
    my $ans = "*2\r\n\$9\r\n127.0.0.1\r\n\$" . length($r3->port) . "\r\n" . $r3->port . "\r\n";
    my $lpid = fork // die;
    if ($lpid == 0) {
        while (my $c = $lie->accept) {
            my $b;
            sysread($c, $b, 512);
            print $c $ans;
            close $c;
            open my $n, '>>', "$dir/sentinel-asked" or die;
            print $n "asked\n";
            close $n;
        }
        POSIX::_exit(0);
    }
    my $ng3 = JPKITest::Nginx->start(name => 'sentinels', workers => 1, http => <<"EOF");
    jpki_secret_file $secret;
    jpki_issuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=\@PKI\@/ca2.crl;
    jpki_store sentinel=127.0.0.1:@{[ $hole->port ]},127.0.0.1:@{[ $lie->sockport ]} master=gate;
    jpki_redis_timeout ${TIMEOUT}s;
    jpki_redis_connect_timeout 1s;
    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/ { jpki_endpoints; jpki_revocation crl; }
        location /pub/  { proxy_pass http://127.0.0.1:\@UP\@; }
    }
EOF
    my $saved = $base;
    $base = $ng3->base;
    my @h = map { bg(\&login, '/jpki', 'user1') } 1 .. 3;
    sleep 0.4;
    prompt_ok('a sentinel that never answers');
    my @res = map { bg_wait($_) } @h;
    is(join(' ', map { $_->{status} } @res), '200 200 200',
       'a sentinel that never answers: the next one asked, 3 logins at once 200');
    cmp_ok($res[0]{elapsed}, '>=', $TIMEOUT - 1.3, '... after the first one\'s timeout');
    is(scalar(() = (slurp("$dir/sentinel-asked") // '') =~ /asked/g), 1,
       '... one discovery in the worker: the sentinel that answered was asked once');
    like($ng3->log_since, qr/redis sentinel timed out \(127\.0\.0\.1:\d+\)/, '... its timeout logged');
    $r = login('/jpki', 'user1');
    is($r->{status}, 200, 'the primary known: login');
    cmp_ok($r->{elapsed}, '<', $PROMPT, '... at once (the sentinel that answered is asked first)');

    $r3->pause;
    my $h = bg(\&login, '/jpki', 'user1');
    sleep 0.4;
    prompt_ok('the primary stopped');
    slow_503('the primary stopped: login', bg_wait($h), 'timeout');
    like($ng3->log_since, qr/redis primary 127\.0\.0\.1:\d+ of "gate" lost: asking the sentinels again/,
         'the primary stopped: forgotten, logged');
    $r3->resume;
    $r = login('/jpki', 'user1');
    is($r->{status}, 200, 'the primary back: login (asked of the sentinels again)');
    $base = $saved;
    $ng3->stop;
    kill 'KILL', $lpid;
    waitpid($lpid, 0);
    $r3->stop;
}

$ng->stop;
$hole->stop;

done_testing();
