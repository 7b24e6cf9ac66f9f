#!/usr/bin/perl
# t/nginx-redis.t - the Redis store of the nginx module beyond the scenario
# table: an ACL user, a unix socket, and a Redis restart (pooled connections
# to the old server are replaced without an error the user sees).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use JPKITest;

skip_unless(qw(nginx module jpkictl pki openssl redis));

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $sock = "$dir/redis.sock";
my $redis = JPKITest::Redis->start(name => 'redis', password => 'admin-pw',
                                   unixsocket => $sock);
my $map_key = 'jpki:v1:map:' . cert_id('user1', $secret);

sub setup { $_[0]->jpki_user($map_key => 'alice') }
setup($redis);

sub conf {
    my ($store) = @_;
    return <<"EOF";
    jpki_secret_file $secret;
    jpki_issuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp=@{[ $ocsp->url ]};
    jpki_store $store;
    jpki_redis_timeout 2s;
    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/ { jpki_endpoints; }
        location /app/  { jpki on; jpki_recheck_interval 0;
                          proxy_pass http://127.0.0.1:\@UP\@; }
    }
EOF
}

sub login { login_to($_[0], 'user1') }

sub gated { gated_get($_[0], $_[1]) }

# an ACL user limited to the jpki: keys
my $port = $redis->port;
my $acl = JPKITest::Nginx->start(name => 'acl',
    http => conf("redis=127.0.0.1:$port user=jpki password=jpki-pw"));
my $r = login($acl);
is($r->{status}, 200, 'login as the Redis ACL user jpki');
my $cookie = cookie_of($r) // '';
is(gated($acl, $cookie)->{status}, 200, 'gated request re-checked as the ACL user');
ok(scalar(my @k = $redis->keys_like('jpki:v1:ch:*')) >= 1, 'the challenge was recorded under jpki:v1:ch:');
$acl->stop;

my $wrong = JPKITest::Nginx->start(name => 'acl-wrong',
    http => conf("redis=127.0.0.1:$port user=jpki password=not-it"));
$r = login($wrong);
is($r->{status}, 503, 'a wrong ACL password: 503');
is($r->{json}{error}, 'store_error', '... store_error');
$wrong->stop;

# a unix socket
my $unix = JPKITest::Nginx->start(name => 'unix',
    http => conf("redis=unix:$sock password=admin-pw"));
$r = login($unix);
is($r->{status}, 200, 'login through Redis on a unix socket');
is(gated($unix, cookie_of($r) // '')->{status}, 200, 'gated request through the socket');
$unix->stop;

# a Redis restart: the worker's pooled connections die with the old server
my $ng = JPKITest::Nginx->start(name => 'restart', workers => 1,
    http => conf("redis=127.0.0.1:$port password=admin-pw"));
$r = login($ng);
is($r->{status}, 200, 'login before the restart');
$cookie = cookie_of($r) // '';
is(gated($ng, $cookie)->{status}, 200, 'gated request before the restart');
$redis->stop;
$r = gated($ng, $cookie);
is($r->{status}, 503, 'while Redis is down: 503 (fail closed)');
is($r->{json}{error}, 'store_error', '... store_error');
$redis = JPKITest::Redis->start(name => 'redis2', password => 'admin-pw', port => $port);
setup($redis);
for my $i (1 .. 3) {
    is(gated($ng, $cookie)->{status}, 200, "after the restart, gated request $i passes");
}
# the same once more with a connection pooled before the restart
$redis->stop;
$redis = JPKITest::Redis->start(name => 'redis3', password => 'admin-pw', port => $port);
setup($redis);
# (the idle connection sees EOF and is closed; in a race it is retried)
is(gated($ng, $cookie)->{status}, 200, 'a connection pooled before the restart is not used');
$ng->stop;

$redis->stop;
$ocsp->stop;
done_testing();
