#!/usr/bin/perl
# t/nginx-crl.t - CRL files in the nginx module: a replaced file is picked up
# without a reload (hold, then released by a new CRL without the entry); an
# older, stale or wrongly signed replacement is refused and the loaded CRL
# stays; the health endpoint reports every CRL and whether the store answers.
# The sequence is t/lib/JPKICRLFiles.pm, which t/apache-crl.t runs too.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKICRLFiles qw(fixture file_sequence no_crl_sequence redis_health_sequence);

skip_unless(qw(nginx module jpkictl pki openssl redis));

my $dir = tmpdir();
my $f = fixture($dir);

sub conf {
    my ($store, $extra) = @_;
    return <<"EOF";
    jpki_secret_file $f->{secret};
    jpki_issuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=$f->{crl};
    jpki_issuer phone ca=\@PKI\@/phone-ca.pem;
    $store
    jpki_revocation crl;
    $extra
    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/ { jpki_endpoints; }
        location = /health { jpki_health; }
    }
EOF
}

my $shm = 'jpki_store shm zone=jpki:1m;';
my $ng = JPKITest::Nginx->start(name => 'crl', workers => 1,
                                http => conf($shm, "jpki_map_file $f->{map};"));
file_sequence($ng, $f);
$ng->stop;

# no CRL at all (file missing from the start)
unlink $f->{crl};
my $none = JPKITest::Nginx->start(name => 'nocrl', workers => 1,
                                  http => conf($shm, "jpki_map_file $f->{map};"));
no_crl_sequence($none);
$none->stop;
$f->{put}->('ca2.crl');

my $redis = JPKITest::Redis->start(name => 'redis');
my $rn = JPKITest::Nginx->start(name => 'crl-redis', workers => 1,
    http => conf('jpki_store redis=127.0.0.1:' . $redis->port . ';', 'jpki_redis_timeout 1s;'));
redis_health_sequence($rn, $redis);
$rn->stop;

my ($t_st, $t_out) = JPKITest::Nginx->test_config(name => 'grace-bad',
    http => conf($shm, 'jpki_crl_grace forever;'));
isnt($t_st, 0, 'nginx -t refuses jpki_crl_grace forever');
like($t_out, qr/jpki_crl_grace.*must be "auto" or a time/, '... with a clear message');
($t_st, $t_out) = JPKITest::Nginx->test_config(name => 'grace-ok',
    http => conf($shm, 'jpki_crl_grace 2h;'));
is($t_st, 0, 'nginx -t accepts jpki_crl_grace 2h') or diag($t_out);

done_testing();
