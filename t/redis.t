#!/usr/bin/perl
# t/redis.t - the Redis store beyond the scenario table, on nginx and Apache
# alike (t/lib/JPKIServer.pm): an ACL user (and parallel logins over the
# connection pool), a wrong password, a unix socket and a database, logouts
# through the nodes' mirrors of the logout log, a Redis restart under a
# running server (pooled connections replaced without an error the user
# sees), a Redis that stops answering (bounded by the Redis timeout) or is
# gone (refused at once), and TLS with the server always verified (CA and
# name), its configuration mistakes caught by the configuration test.
#   make all pki && prove -v t/redis.t   (JPKI_SERVERS=nginx: one server)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use JPKITest;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl redis));
my @kinds = JPKIServer::kinds();

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $map_key = 'jpki:v1:map:' . cert_id('user1', $secret);
my $out_key = 'jpki:v1:out:' . cert_id('user1', $secret);

sub setup { $_[0]->jpki_user($map_key => 'alice') }

# The site on STORE: endpoints at /jpki/, /app/ gated and proxied (re-checked
# on every request unless recheck => undef).
sub site {
    my ($store, %o) = @_;
    my $recheck = exists $o{recheck} ? delete $o{recheck} : 0;
    return (secret => $secret, issuer => "card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp="
                                         . $ocsp->url,
            store => $store, redis_timeout => '2s',
            locations => [ '/jpki/' => { endpoints => 1 },
                           '/app/' => { gate => 1, upstream => 1,
                                        recheck_interval => $recheck } ],
            %o);
}

sub gated { my ($srv, $c, $path) = @_; return $srv->get($path // '/app/x', cookie => $c, timeout => 10) }

for my $kind (@kinds) {
    # a Redis of its own for each server (the restart below ends with it gone)
    my $sock = "$dir/redis-$kind.sock";
    my $redis = JPKITest::Redis->start(name => "redis-$kind", password => 'admin-pw',
                                       unixsocket => $sock);
    my $port = $redis->port;
    setup($redis);

    # ---- an ACL user limited to the jpki: keys
    my $acl = JPKIServer->start($kind, name => 'acl',
                                site("redis=127.0.0.1:$port user=jpki password_file=@{[password_file('jpki-pw')]}"));
    my $r = $acl->login('user1');
    is($r->{status}, 200, "$kind: login as the Redis ACL user jpki");
    my $cookie = cookie_of($r) // '';
    is(gated($acl, $cookie)->{status}, 200, "$kind: gated request re-checked as the ACL user");
    ok(scalar(my @k = $redis->keys_like('jpki:v1:ch:*')) >= 1,
       "$kind: the challenge was recorded under jpki:v1:ch:");
    is($acl->parallel_logins(8, 5), 40, "$kind: 8 clients at once, 5 logins each (connection pool)");
    $acl->stop;

    my $wrong = JPKIServer->start($kind, name => 'acl-wrong',
                                  site("redis=127.0.0.1:$port user=jpki password_file=@{[password_file('not-it')]}"));
    my $wm = $wrong->mark;
    $r = $wrong->login('user1');
    is($r->{status}, 503, "$kind: a wrong ACL password: 503");
    is($r->{json}{error}, 'store_error', '... store_error');
    like($wrong->log_since($wm), qr/redis AUTH or SELECT refused/, '... the error log says why');
    $wrong->stop;

    # ---- a unix socket (and a database)
    my $unix = JPKIServer->start($kind, name => 'unix',
                                 site("redis=unix:$sock password_file=@{[password_file('admin-pw')]} db=3"));
    $redis->set_in(3, 'SET', $map_key, 'alice-db3');
    $r = $unix->login('user1');
    is($r->{status}, 200, "$kind: login through Redis on a unix socket");
    is($r->{json}{account}, 'alice-db3', '... mapping read from db 3');
    like(gated($unix, cookie_of($r) // '')->{content}, qr/account=\[alice-db3\]/,
         "$kind: gated request through the socket");
    $unix->stop;

    # ---- logouts: the logout of a node reaches every node within a
    # second, without a re-check in Redis (the default interval): each
    # worker or child polls the logout log into the node's table (the
    # mirror) that every request reads.  The marker in Redis is deleted at
    # once here: only the mirror can refuse.
    {
        my @n = map { JPKIServer->start($kind, name => "mirror$_",
                                        site("redis=127.0.0.1:$port password_file=@{[password_file('admin-pw')]}",
                                             recheck => undef)) } 1, 2;
        my $c = cookie_of($n[0]->login('user1')) // '';
        my $ok = 0;
        $ok += gated($_, $c)->{status} == 200 for @n, @n;
        is($ok, 4, "$kind: mirror: a session valid on both nodes");
        $r = $n[0]->logout($c);
        is($r->{status}, 200, "$kind: mirror: logout on node 1");
        $redis->cmd('DEL', $out_key);
        my $refused = 0;
        $refused += gated($n[0], $c, "/app/n1-$_")->{status} == 401 for 1 .. 4;
        is($refused, 4, "$kind: mirror: node 1 refuses the session on every worker at once");
        my ($t0, $dt) = (time, undef);
        while (time - $t0 < 3) {
            my $g = gated($n[1], $c, '/app/n2');
            if ($g->{status} == 401 && ($g->{json}{error} // '') eq 'session_logged_out') {
                $dt = time - $t0;
                last;
            }
            sleep 0.05;
        }
        ok(defined $dt && $dt <= 1.0, "$kind: mirror: node 2 refuses it within a second, "
           . 'from its mirror' . (defined $dt ? sprintf(' (%.2f s)', $dt) : ''));
        $_->stop for @n;
        # the logout's record stays in the log (a new node's first poll
        # copies it) while its marker in Redis was deleted above, so a login
        # of user1 in that same second would not start a second later: the
        # next one is made in a later second
        sleep 1.1;
    }

    # ---- a Redis restart: the workers' pooled connections die with it
    # (one worker, one Apache child: the requests below are all its, so the
    # first one after the stop, or its logout poller before it, finds its
    # dead pooled connection; with two, the other might serve them all with
    # an empty pool.  The poller says what it finds at the debug level.)
    my $srv = JPKIServer->start($kind, name => 'restart', loglevel => 'notice auth_jpki:debug',
                                site("redis=127.0.0.1:$port password_file=@{[password_file('admin-pw')]} keepalive=8",
                                     redis_connect_timeout => '1s', workers => 1));
    $r = $srv->login('user1');
    is($r->{status}, 200, "$kind: login before the restart");
    $cookie = cookie_of($r) // '';
    my $ok = 0;
    $ok += gated($srv, $cookie, "/app/b$_")->{status} == 200 for 1 .. 20;
    is($ok, 20, "$kind: gated requests before the restart (the pool filled)");
    # (from here: the first request after the stop finds a dead pooled
    # connection)
    my $m = $srv->mark;
    $redis->stop;
    $r = gated($srv, $cookie);
    is($r->{status}, 503, "$kind: while Redis is down: 503 (fail closed)");
    is($r->{json}{error}, 'store_error', '... store_error');
    $redis = JPKITest::Redis->start(name => "redis-$kind-2", password => 'admin-pw',
                                    port => $port, unixsocket => $sock);
    setup($redis);
    $ok = 0;
    $ok += gated($srv, $cookie, "/app/a$_")->{status} == 200 for 1 .. 20;
    is($ok, 20, "$kind: after the restart, every gated request passes");
    # Apache only: it logs the dead pooled connections it drops (at info
    # level for a request, debug for the poller); nginx closes an idle
    # connection on its EOF without a word
    like($srv->log_since($m), qr/pooled redis connection (lost|closed)/,
         "$kind: dead pooled connections were noticed and replaced") unless $srv->nginx;
    # the same once more with connections pooled before the restart
    $redis->stop;
    $redis = JPKITest::Redis->start(name => "redis-$kind-3", password => 'admin-pw',
                                    port => $port, unixsocket => $sock);
    setup($redis);
    # (an idle connection sees EOF and is closed; in a race it is retried)
    is(gated($srv, $cookie, '/app/pooled')->{status}, 200,
       "$kind: a connection pooled before the restart is not used");

    # ---- Redis stops answering (SIGSTOP): bounded by the Redis timeout
    $redis->pause;
    my $t = time;
    $r = gated($srv, $cookie, '/app/stopped');
    my $el = time - $t;
    $redis->resume;
    is($r->{status}, 503, "$kind: Redis silent: 503");
    is($r->{json}{error}, 'timeout', "$kind: Redis silent: timeout");
    ok($el < 3.5, sprintf('%s: Redis silent: answered in %.2f s (Redis timeout 2 s)', $kind, $el));
    is(gated($srv, $cookie, '/app/back')->{status}, 200, "$kind: Redis back: gated request passes");

    # ---- Redis gone: refused at once
    $redis->stop;
    $t = time;
    $r = gated($srv, $cookie, '/app/gone');
    is($r->{status}, 503, "$kind: Redis gone: 503");
    is($r->{json}{error}, 'store_error', "$kind: Redis gone: store_error");
    ok(time - $t < 1.5, "$kind: Redis gone: answered at once");
    $srv->stop;
}

# ---------------------------------------------------------------- TLS

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
    skip "redis-server without TLS: $@", 30 * @kinds unless $tls;
    $tls->cmd('SET', $map_key, 'alice');
    my $tp = $tls->tls_port;
    my $tsite = sub { site("redis=127.0.0.1:$tp password_file=@{[password_file('tls-pw')]} $_[0]", @_[1 .. $#_]) };
    for my $kind (@kinds) {
        # verified by IP address (the default name is the host of redis=)
        my $ok = JPKIServer->start($kind, name => 'tls-ok', workers => 1,
                                   $tsite->("tls=on tls_ca=$dir/ca.pem"));
        for my $round (1, 2) {             # the second reuses a pooled connection
            my $r = $ok->login('user1');
            is($r->{status}, 200, "$kind: login through Redis over TLS (round $round)");
            my $g = gated($ok, cookie_of($r) // '');
            is($g->{status}, 200, "$kind: gated request re-checked through Redis over TLS "
               . "(round $round)");
            like($g->{content}, qr/account=\[alice\]/, "$kind: the account reaches the upstream");
        }
        $ok->stop;

        # verified by DNS name
        my $dns = JPKIServer->start($kind, name => 'tls-dns',
                                    $tsite->("tls=on tls_ca=$dir/ca.pem tls_name=redis.test"));
        is($dns->login('user1')->{status}, 200, "$kind: tls_name=redis.test matches the certificate");
        $dns->stop;

        # another CA: refused after the handshake, with the reason
        my $bad = JPKIServer->start($kind, name => 'tls-badca',
                                    $tsite->("tls=on tls_ca=$dir/other.pem"));
        my $m = $bad->mark;
        my $r = $bad->login('user1');
        is($r->{status}, 503, "$kind: a Redis certificate from another CA: 503");
        is($r->{json}{error}, 'store_error', '... store_error');
        like($bad->log_since($m), qr/jpki: redis TLS handshake failed|certificate refused/,
             '... and the error log says why');
        $bad->stop;

        # a name the certificate does not carry
        my $name = JPKIServer->start($kind, name => 'tls-name',
            $tsite->("tls=on tls_ca=$dir/ca.pem tls_name=elsewhere.test"));
        $m = $name->mark;
        $r = $name->login('user1');
        is($r->{status}, 503, "$kind: a certificate for another name: 503");
        like($name->log_since($m), qr/does not name "elsewhere\.test"/,
             '... the error log names it');
        $name->stop;

        # plain text to a TLS port fails closed, within the timeout
        my $plain = JPKIServer->start($kind, name => 'tls-plain', $tsite->(''));
        my $t = time;
        $r = $plain->login('user1');
        is($r->{status}, 503, "$kind: plain Redis protocol to the TLS port: 503");
        ok(time - $t < 5, "$kind: plain to the TLS port: bounded");
        $plain->stop;

        for ([ 'tls=on', qr/tls=on needs tls_ca=FILE/ ],
             [ "tls_ca=$dir/ca.pem", qr/tls_ca= without tls=on/ ],
             [ "tls=on tls_ca=$dir/missing.pem", qr/missing\.pem/ ]) {
            my ($st, $out) = JPKIServer->configtest($kind, name => 'tls-t', $tsite->($_->[0]));
            isnt($st, 0, "$kind: the configuration test refuses \"$_->[0]\"");
            like($out, $_->[1], '... with a clear message');
        }
    }
    $tls->stop;
}

$ocsp->stop;
done_testing();
