#!/usr/bin/perl
# t/nginx-redis-tls.t - the nginx module talks to Redis over TLS and always
# verifies the server: a certificate from another CA, or one that does not
# name the configured host, is refused (503 store_error, the reason in the
# error log); configuration mistakes are `nginx -t` errors.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;

skip_unless(qw(nginx module jpkictl pki openssl redis));

my $dir = tmpdir();
sub ossl { system("openssl @_ >/dev/null 2>&1") == 0 or die "openssl @_ failed" }
ossl("req -x509 -newkey rsa:2048 -nodes -keyout $dir/ca.key -out $dir/ca.pem -days 2 -subj /CN=redis-test-ca");
ossl("req -x509 -newkey rsa:2048 -nodes -keyout $dir/other.key -out $dir/other.pem -days 2 -subj /CN=other-ca");
ossl("req -newkey rsa:2048 -nodes -keyout $dir/srv.key -out $dir/srv.csr -subj /CN=redis.test");
spew("$dir/ext", "subjectAltName=IP:127.0.0.1,DNS:redis.test\n", 0644);
ossl("x509 -req -in $dir/srv.csr -CA $dir/ca.pem -CAkey $dir/ca.key -CAcreateserial -out $dir/srv.pem -days 2 -extfile $dir/ext");
chmod 0644, glob "$dir/*";

my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $redis = eval { JPKITest::Redis->start(name => 'redis-tls', password => 'tls-pw',
    tls => { cert => "$dir/srv.pem", key => "$dir/srv.key", ca => "$dir/ca.pem" }) };
plan skip_all => "redis-server without TLS: $@" unless $redis;
$redis->cmd('SET', 'jpki:v1:map:' . cert_id('user1', $secret), 'alice');

sub conf {
    my ($tls) = @_;
    return <<"EOF";
    jpki_secret_file $secret;
    jpki_issuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp=@{[ $ocsp->url ]};
    jpki_store redis=127.0.0.1:@{[ $redis->tls_port ]} password=tls-pw $tls;
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

# verified by IP address (the default name is the host of redis=)
my $ok = JPKITest::Nginx->start(name => 'tls-ok', http => conf("tls=on tls_ca=$dir/ca.pem"));
for my $round (1, 2) {                     # the second reuses a pooled connection
    my $r = login($ok);
    is($r->{status}, 200, "login through Redis over TLS (round $round)");
    my $c = cookie_of($r) // '';
    my $g = http('GET', $ok->url('/app/x'), headers => { Cookie => "jpki_session=$c" });
    is($g->{status}, 200, "gated request re-checked through Redis over TLS (round $round)");
    like($g->{content}, qr/account=\[alice\]/, 'the account reaches the upstream');
}
$ok->stop;

# verified by DNS name
my $dns = JPKITest::Nginx->start(name => 'tls-dns',
    http => conf("tls=on tls_ca=$dir/ca.pem tls_name=redis.test"));
is(login($dns)->{status}, 200, 'tls_name=redis.test matches the certificate');
$dns->stop;

# another CA: the handshake is refused
my $bad = JPKITest::Nginx->start(name => 'tls-badca', http => conf("tls=on tls_ca=$dir/other.pem"));
my $m = $bad->mark;
my $r = login($bad);
is($r->{status}, 503, 'a Redis certificate from another CA: 503');
is($r->{json}{error}, 'store_error', '... store_error');
like($bad->log_since($m), qr/jpki: redis TLS handshake failed|certificate refused/,
     '... and the error log says why');
$bad->stop;

# a name the certificate does not carry
my $name = JPKITest::Nginx->start(name => 'tls-name',
    http => conf("tls=on tls_ca=$dir/ca.pem tls_name=elsewhere.test"));
$m = $name->mark;
$r = login($name);
is($r->{status}, 503, 'a certificate for another name: 503');
like($name->log_since($m), qr/does not name "elsewhere\.test"/, '... the error log names it');
$name->stop;

# plain text to a TLS port fails closed, not open
my $plain = JPKITest::Nginx->start(name => 'tls-plain', http => conf(''));
$r = login($plain);
is($r->{status}, 503, 'plain Redis protocol to the TLS port: 503');
$plain->stop;

for ([ 'tls=on', qr/tls=on needs tls_ca=FILE/ ],
     [ "tls_ca=$dir/ca.pem", qr/tls_ca= without tls=on/ ],
     [ "tls=on tls_ca=$dir/missing.pem", qr/missing\.pem/ ]) {
    my ($st, $out) = JPKITest::Nginx->test_config(name => 'tls-t', http => conf($_->[0]));
    isnt($st, 0, "nginx -t refuses \"$_->[0]\"");
    like($out, $_->[1], '... with a clear message');
}

$ocsp->stop;
$redis->stop;
done_testing();
