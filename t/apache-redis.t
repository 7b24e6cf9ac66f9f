#!/usr/bin/perl
# t/apache-redis.t - the Redis store of the Apache module beyond the
# scenario table (as t/nginx-redis.t and t/nginx-redis-tls.t for nginx): an
# ACL user, a unix socket, logouts through the nodes' mirrors of the
# logout log, parallel logins over the connection pool, a
# Redis restart under a running Apache (pooled connections replaced without
# an error the user sees), a Redis that stops answering (bounded by
# JPKIRedisTimeout) or is gone (refused at once), and TLS with the server
# always verified (CA and name), configuration mistakes caught by
# configtest.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use JPKITest;
use JPKIApache;

skip_unless(qw(jpkictl pki openssl redis));
skip_unless_apache();

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $sock = "$dir/redis.sock";
my $redis = JPKITest::Redis->start(name => 'redis', password => 'admin-pw',
                                   unixsocket => $sock);
my $port = $redis->port;
my $map_key = 'jpki:v1:map:' . cert_id('user1', $secret);

sub setup { $_[0]->jpki_user($map_key => 'alice') }
setup($redis);

sub conf {
    my ($store, $extra) = @_;
    return <<"EOF";
JPKISecretFile $secret
JPKIIssuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp=@{[ $ocsp->url ]}
JPKIStore $store
JPKIRedisTimeout 2s
@{[ $extra // '' ]}
@{[ ap_gate_conf(recheck => 0) ]}
EOF
}

sub login { login_to($_[0], 'user1') }

sub gated { gated_get($_[0], $_[1], $_[2], timeout => 10) }

# N clients at once, M logins and gated requests each: rounds that passed
sub parallel {
    my ($ap, $n, $m) = @_;
    my @pids;
    for my $k (1 .. $n) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $good = 0;
            for my $i (1 .. $m) {
                my $r = login($ap);
                my $c = cookie_of($r);
                $good++ if $r->{status} == 200 && $c
                           && gated($ap, $c, "/app/p$k-$i")->{status} == 200;
            }
            POSIX::_exit($good);
        }
        push @pids, $pid;
    }
    my $total = 0;
    for (@pids) { waitpid($_, 0); $total += $? >> 8 }
    return $total;
}

# ---- an ACL user limited to the jpki: keys
my $acl = JPKIApache::Server->start(name => 'acl',
    main => conf("redis=127.0.0.1:$port user=jpki password=jpki-pw"));
my $r = login($acl);
is($r->{status}, 200, 'login as the Redis ACL user jpki');
my $cookie = cookie_of($r) // '';
is(gated($acl, $cookie)->{status}, 200, 'gated request re-checked as the ACL user');
ok(scalar(my @k = $redis->keys_like('jpki:v1:ch:*')) >= 1,
   'the challenge was recorded under jpki:v1:ch:');
is(parallel($acl, 8, 5), 40, '8 clients at once, 5 logins each (connection pool)');
$acl->stop;

my $wrong = JPKIApache::Server->start(name => 'acl-wrong',
    main => conf("redis=127.0.0.1:$port user=jpki password=not-it"));
$r = login($wrong);
is($r->{status}, 503, 'a wrong ACL password: 503');
is($r->{json}{error}, 'store_error', '... store_error');
like($wrong->log_since, qr/redis AUTH or SELECT refused/, '... the error log says why');
$wrong->stop;

# ---- a unix socket (and a database)
my $unix = JPKIApache::Server->start(name => 'unix',
    main => conf("redis=unix:$sock password=admin-pw db=3"));
$redis->set_in(3, 'SET', $map_key, 'alice-db3');
$r = login($unix);
is($r->{status}, 200, 'login through Redis on a unix socket');
is($r->{json}{account}, 'alice-db3', '... mapping read from db 3');
like(gated($unix, cookie_of($r) // '')->{content}, qr/account=\[alice-db3\]/,
     'gated request through the socket');
$unix->stop;

# ---- logouts: the logout of a node reaches every node within a second,
# without a re-check in Redis (the default interval): each child polls the
# logout log into the node's table (the mirror) that every request reads.
# The marker in Redis is deleted at once here: only the mirror can refuse.
{
    my $mconf = <<"EOF";
JPKISecretFile $secret
JPKIIssuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp=@{[ $ocsp->url ]}
JPKIStore redis=127.0.0.1:$port password=admin-pw
@{[ ap_gate_conf() ]}
EOF
    my @n = map { JPKIApache::Server->start(name => "mirror$_", main => $mconf) } 1, 2;
    my $c = cookie_of(login($n[0])) // '';
    my $ok = 0;
    $ok += gated($_, $c)->{status} == 200 for @n, @n;
    is($ok, 4, 'mirror: a session valid on both nodes');
    $r = http('POST', $n[0]->url('/jpki/logout'), headers => { Cookie => "jpki_session=$c" });
    is($r->{status}, 200, 'mirror: logout on node 1');
    $redis->cmd('DEL', 'jpki:v1:out:' . cert_id('user1', $secret));
    my $refused = 0;
    $refused += gated($n[0], $c, "/app/n1-$_")->{status} == 401 for 1 .. 4;
    is($refused, 4, 'mirror: node 1 refuses the session on every child at once');
    my ($t0, $dt) = (time, undef);
    while (time - $t0 < 3) {
        my $g = gated($n[1], $c, '/app/n2');
        if ($g->{status} == 401 && ($g->{json}{error} // '') eq 'session_logged_out') {
            $dt = time - $t0;
            last;
        }
        sleep 0.05;
    }
    ok(defined $dt && $dt <= 1.0, 'mirror: node 2 refuses it within a second, from its '
       . 'mirror' . (defined $dt ? sprintf(' (%.2f s)', $dt) : ''));
    $_->stop for @n;
    # the logout's record stays in the log (a new node's first poll copies
    # it) while its marker in Redis was deleted above, so a login of user1
    # in that same second would not start a second later: the next one is
    # made in a later second
    sleep 1.1;
}

# ---- a Redis restart: the children's pooled connections die with it
my $ap = JPKIApache::Server->start(name => 'restart', loglevel => 'notice auth_jpki:info',
                                   main => conf("redis=127.0.0.1:$port password=admin-pw keepalive=8",
                                                'JPKIRedisConnectTimeout 1s'));
$r = login($ap);
is($r->{status}, 200, 'login before the restart');
$cookie = cookie_of($r) // '';
my $ok = 0;
$ok += gated($ap, $cookie, "/app/b$_")->{status} == 200 for 1 .. 20;
is($ok, 20, 'gated requests before the restart (pools of both children filled)');
$redis->stop;
$r = gated($ap, $cookie);
is($r->{status}, 503, 'while Redis is down: 503 (fail closed)');
is($r->{json}{error}, 'store_error', '... store_error');
$redis = JPKITest::Redis->start(name => 'redis2', password => 'admin-pw', port => $port,
                                unixsocket => $sock);
setup($redis);
my $m = $ap->mark;
$ok = 0;
$ok += gated($ap, $cookie, "/app/a$_")->{status} == 200 for 1 .. 20;
is($ok, 20, 'after the restart, every gated request passes');
like($ap->log_since(undef, $m), qr/pooled redis connection (lost|closed)/,
     'dead pooled connections were noticed and replaced');

# ---- Redis stops answering (SIGSTOP): bounded by JPKIRedisTimeout
$redis->pause;
my $t = time;
$r = gated($ap, $cookie, '/app/stopped');
my $el = time - $t;
$redis->resume;
is($r->{status}, 503, 'Redis silent: 503');
is($r->{json}{error}, 'timeout', 'Redis silent: timeout');
ok($el < 3.5, sprintf('Redis silent: answered in %.2f s (JPKIRedisTimeout 2s)', $el));
is(gated($ap, $cookie, '/app/back')->{status}, 200, 'Redis back: gated request passes');

# ---- Redis gone: refused at once
$redis->stop;
$t = time;
$r = gated($ap, $cookie, '/app/gone');
is($r->{status}, 503, 'Redis gone: 503');
is($r->{json}{error}, 'store_error', 'Redis gone: store_error');
ok(time - $t < 1.5, 'Redis gone: answered at once');
$ap->stop;

# ---- TLS
sub ossl { system("openssl @_ >/dev/null 2>&1") == 0 or die "openssl @_ failed" }
ossl("req -x509 -newkey rsa:2048 -nodes -keyout $dir/ca.key -out $dir/ca.pem -days 2 -subj /CN=redis-test-ca");
ossl("req -x509 -newkey rsa:2048 -nodes -keyout $dir/other.key -out $dir/other.pem -days 2 -subj /CN=other-ca");
ossl("req -newkey rsa:2048 -nodes -keyout $dir/srv.key -out $dir/srv.csr -subj /CN=redis.test");
spew("$dir/ext", "subjectAltName=IP:127.0.0.1,DNS:redis.test\n", 0644);
ossl("x509 -req -in $dir/srv.csr -CA $dir/ca.pem -CAkey $dir/ca.key -CAcreateserial -out $dir/srv.pem -days 2 -extfile $dir/ext");
chmod 0644, glob "$dir/*.pem";
chmod 0644, glob "$dir/*.key";

my $tls = eval { JPKITest::Redis->start(name => 'redis-tls', password => 'tls-pw',
    tls => { cert => "$dir/srv.pem", key => "$dir/srv.key", ca => "$dir/ca.pem" }) };
SKIP: {
    skip "redis-server without TLS: $@", 19 unless $tls;
    $tls->cmd('SET', $map_key, 'alice');
    my $tp = $tls->tls_port;
    my $tconf = sub { conf("redis=127.0.0.1:$tp password=tls-pw $_[0]") };

    # verified by IP address (the default name is the host of redis=)
    my $ok_ap = JPKIApache::Server->start(name => 'tls-ok', children => 1,
                                          main => $tconf->("tls=on tls_ca=$dir/ca.pem"));
    for my $round (1, 2) {                 # the second reuses a pooled connection
        my $r = login($ok_ap);
        is($r->{status}, 200, "login through Redis over TLS (round $round)");
        my $g = gated($ok_ap, cookie_of($r) // '');
        is($g->{status}, 200, "gated request re-checked through Redis over TLS (round $round)");
        like($g->{content}, qr/account=\[alice\]/, 'the account reaches the upstream');
    }
    $ok_ap->stop;

    # verified by DNS name
    my $dns = JPKIApache::Server->start(name => 'tls-dns',
        main => $tconf->("tls=on tls_ca=$dir/ca.pem tls_name=redis.test"));
    is(login($dns)->{status}, 200, 'tls_name=redis.test matches the certificate');
    $dns->stop;

    # another CA: refused after the handshake, with the reason
    my $bad = JPKIApache::Server->start(name => 'tls-badca',
                                        main => $tconf->("tls=on tls_ca=$dir/other.pem"));
    my $m = $bad->mark;
    my $r = login($bad);
    is($r->{status}, 503, 'a Redis certificate from another CA: 503');
    is($r->{json}{error}, 'store_error', '... store_error');
    like($bad->log_since(undef, $m), qr/jpki: redis TLS handshake failed|certificate refused/,
         '... and the error log says why');
    $bad->stop;

    # a name the certificate does not carry
    my $name = JPKIApache::Server->start(name => 'tls-name',
        main => $tconf->("tls=on tls_ca=$dir/ca.pem tls_name=elsewhere.test"));
    $m = $name->mark;
    $r = login($name);
    is($r->{status}, 503, 'a certificate for another name: 503');
    like($name->log_since(undef, $m), qr/does not name "elsewhere\.test"/,
         '... the error log names it');
    $name->stop;

    # plain text to a TLS port fails closed, within the timeout
    my $plain = JPKIApache::Server->start(name => 'tls-plain', main => $tconf->(''));
    $t = time;
    $r = login($plain);
    is($r->{status}, 503, 'plain Redis protocol to the TLS port: 503');
    ok(time - $t < 5, 'plain to the TLS port: bounded');
    $plain->stop;

    for ([ 'tls=on', qr/tls=on needs tls_ca=FILE/ ],
         [ "tls_ca=$dir/ca.pem", qr/tls_ca= without tls=on/ ],
         [ "tls=on tls_ca=$dir/missing.pem", qr/missing\.pem/ ]) {
        my ($st, $out) = JPKIApache::Server->configtest(name => 'tls-t', main => $tconf->($_->[0]));
        isnt($st, 0, "configtest refuses \"$_->[0]\"");
        like($out, $_->[1], '... with a clear message');
    }
    $tls->stop;
}

$ocsp->stop;
done_testing();
