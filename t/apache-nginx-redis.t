#!/usr/bin/perl
# t/apache-nginx-redis.t - the two adapters are interchangeable on one
# store: an nginx node and two Apache nodes of one site (same secret, same
# Redis database).  A challenge of one node is accepted by the others, once;
# a session made on one is valid on the others and its logout is seen by
# all; a revocation answer cached by one is used by the others; and the same
# request gets the same answer (status, JSON body, cookie attributes) from
# nginx and from Apache.
#   make build/ngx_http_jpki_module.so build/mod_auth_jpki.so build/jpkictl pki
#   prove -v t/apache-nginx-redis.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(nginx module jpkictl pki openssl redis));
skip_unless_apache();

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $redis = JPKITest::Redis->start(name => 'redis', password => 'pw');
my %acct = (user1 => 'alice', user2 => 'bob', 'rev-keyCompromise' => 'eve',
            'user-ec' => 'ec-user');
$redis->cmd('SET', 'jpki:v1:map:' . cert_id($_, $secret), $acct{$_}) for keys %acct;

my $issuer = 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem ocsp=' . $ocsp->url;
# the site (t/lib/JPKIServer.pm), the same on every node
my %site = (secret => $secret, issuer => $issuer,
            store => 'redis=127.0.0.1:' . $redis->port . ' password_file=' . password_file('pw'),
            locations => [ '/jpki/' => { endpoints => 1 },
                           '/app/' => { gate => 1, recheck_interval => 0, upstream => 1 },
                           '/web/' => { gate => 1, login_page => '/login.html', upstream => 1 } ]);
my $ng = JPKIServer->start('nginx', name => 'nginx', %site);
my @ap = map { JPKIServer->start('apache', name => "apache$_", %site) } 1, 2;

my %node = (nginx => $ng, apache1 => $ap[0], apache2 => $ap[1]);
my @names = qw(nginx apache1 apache2);
sub base { return $node{ $_[0] }->url($_[1] // '') }

# ---- challenges: made by one node, used on another, once
for my $from (@names) {
    my @others = grep { $_ ne $from } @names;
    my $ch = challenge(base($from, '/jpki'));
    ok($ch, "$from: challenge");
    my $body = login_body($ch, 'user1');
    my $r = post_json(base($others[0], '/jpki/login'), $body);
    is($r->{status}, 200, "challenge of $from accepted by $others[0]");
    for my $n ($from, $others[1]) {
        $r = post_json(base($n, '/jpki/login'), $body);
        is($r->{json} && $r->{json}{error}, 'challenge_replayed', "... and refused by $n afterwards");
    }
}

# ---- sessions: made on one node, valid on the others; logout seen by all
for my $from (@names) {
    my $r = post_json(base($from, '/jpki/login'),
                      login_body(challenge(base($from, '/jpki')), 'user2'));
    my $c = cookie_of($r);
    ok($c, "$from: session for bob");
    for my $n (@names) {
        $r = http('GET', base($n, '/app/x'), headers => { Cookie => "jpki_session=$c",
                                                          'X-JPKI-Account' => 'mallory' });
        is($r->{content}, "account=[bob] spoof=[] other=[] user=[] uri=/app/x\n",
           "session of $from valid on $n (account header upstream)");
    }
    my ($by) = grep { $_ ne $from } @names;
    $r = http('POST', base($by, '/jpki/logout'), headers => { Cookie => "jpki_session=$c" });
    is($r->{status}, 200, "session of $from logged out on $by");
    for my $n (@names) {
        $r = http('GET', base($n, '/app/y'), headers => { Cookie => "jpki_session=$c" });
        is($r->{json} && $r->{json}{error}, 'session_logged_out', "... refused by $n");
    }
}

# ---- revocation cache written by one adapter, read by the other (a
# login writes it once it succeeds: a refused one writes only its throttle
# counters)
{
    my $m = $ap[0]->mark;
    my $r = post_json(base('nginx', '/jpki/login'),
                      login_body(challenge(base('nginx', '/jpki')), 'rev-keyCompromise'));
    is($r->{json} && $r->{json}{error}, 'cert_revoked', 'nginx: revoked certificate (OCSP)');
    $r = post_json(base('apache1', '/jpki/login'),
                   login_body(challenge(base('apache1', '/jpki')), 'rev-keyCompromise'));
    is($r->{json} && $r->{json}{error}, 'cert_revoked', 'apache: revoked certificate');
    $r = post_json(base('nginx', '/jpki/login'),
                   login_body(challenge(base('nginx', '/jpki')), 'user-ec'));
    is($r->{status}, 200, 'nginx: login (OCSP answer cached)');
    $m = $ap[0]->mark;
    $r = post_json(base('apache1', '/jpki/login'),
                   login_body(challenge(base('apache1', '/jpki')), 'user-ec'));
    is($r->{status}, 200, 'apache: login of the same certificate');
    my @a = $ap[0]->audits($m);
    is(@a ? $a[-1]{revocation} : undef, 'cache', 'apache: answer from the cache nginx wrote');
}

# ---- same request, same answer
{
    my $r = post_json(base('nginx', '/jpki/login'),
                      login_body(challenge(base('nginx', '/jpki')), 'user1'));
    my $alice = cookie_of($r);
    my $tampered = $alice;
    substr($tampered, 40, 1) = substr($tampered, 40, 1) eq 'A' ? 'B' : 'A';
    my $ch = challenge(base('nginx', '/jpki'));
    my %good = %{ login_body($ch, 'user1') };
    my @cases = (
        ['status with a session', 'GET', '/jpki/status', cookie => $alice],
        ['status without a session', 'GET', '/jpki/status'],
        ['gated request, no session', 'GET', '/app/x'],
        ['gated request, browser', 'GET', '/web/p?a=1&b=%2F', accept => 'text/html'],
        ['tampered cookie', 'GET', '/app/x', cookie => $tampered],
        ['garbage cookie', 'GET', '/app/x', cookie => 'garbage'],
        ['login with GET', 'GET', '/jpki/login'],
        ['challenge with POST', 'POST', '/jpki/challenge', json => '{}'],
        ['unknown endpoint', 'GET', '/jpki/nope'],
        ['malformed JSON', 'POST', '/jpki/login', json => '{"challenge": '],
        ['JSON array', 'POST', '/jpki/login', json => '[1,2]'],
        ['unsupported content type', 'POST', '/jpki/login', json => '{}', ct => 'text/plain'],
        ['malformed challenge', 'POST', '/jpki/login',
         json => json_encode({ %good, challenge => 'x' })],
        ['wrong algorithm', 'POST', '/jpki/login',
         json => json_encode({ %good, algorithm => 'ecdsa-sha256' })],
        ['certificate not mapped (a fresh challenge of each node)', 'POST',
         '/jpki/login', json => sub {
             json_encode(login_body(challenge(base($_[0], '/jpki')), 'user-old')) }],
        ['70 KiB body', 'POST', '/jpki/login', json => '{"x":"' . ('A' x 70000) . '"}'],
        ['logout without a session', 'POST', '/jpki/logout'],
        ['logout with GET', 'GET', '/jpki/logout', cookie => $alice],
    );
    for my $c (@cases) {
        my ($what, $method, $path, %o) = @$c;
        my %h;
        $h{Cookie} = "jpki_session=$o{cookie}" if defined $o{cookie};
        $h{Accept} = $o{accept} if $o{accept};
        $h{'Content-Type'} = $o{ct} // 'application/json' if defined $o{json};
        my %ans;
        for my $n (qw(nginx apache1)) {
            my $json = ref $o{json} ? $o{json}->($n) : $o{json};
            my $r = http($method, base($n, $path), headers => \%h,
                         defined $json ? (content => $json) : ());
            my @sc = map { (my $x = $_) =~ s/=v1\.[^;]+;/=v1.X;/; $x } set_cookies($r);
            $ans{$n} = join "\n", $r->{status}, $r->{headers}{'content-type'} // '',
                $r->{headers}{location} // '', @sc, $r->{content} // '';
        }
        is($ans{apache1}, $ans{nginx}, "same answer from nginx and Apache: $what");
    }
}

$_->stop for @ap;
$ng->stop;
$redis->stop;
$ocsp->stop;

done_testing();
