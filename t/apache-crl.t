#!/usr/bin/perl
# t/apache-crl.t - CRL files in the Apache module, the sequence t/nginx-crl.t
# runs (t/lib/JPKICRLFiles.pm): a replaced file is picked up without a
# restart; an older, stale or wrongly signed replacement is refused and the
# loaded CRL stays; JPKIHealth reports every CRL and whether the store
# answers; JPKICRLGrace and JPKIHealth are checked by configtest.  One child
# process, so that every request sees its reloads.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKICRLFiles qw(fixture file_sequence no_crl_sequence redis_health_sequence);

skip_unless(qw(jpkictl pki openssl redis));
skip_unless_apache();

my $dir = tmpdir();
my $f = fixture($dir);

sub conf {
    my ($store, $extra) = @_;
    return <<"EOF";
JPKISecretFile $f->{secret}
JPKIIssuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=$f->{crl}
JPKIIssuer phone ca=\@PKI\@/phone-ca.pem
$store
JPKIRevocation crl
$extra
<Location /jpki/>
    JPKIEndpoints On
</Location>
<Location /health>
    JPKIHealth On
</Location>
EOF
}

my $shm = 'JPKIStore shm size=1M';
my $ap = JPKIApache::Server->start(name => 'crl', children => 1,
                                   main => conf($shm, "JPKIMapFile $f->{map}"));
file_sequence($ap, $f);
$ap->stop;

# no CRL at all (file missing from the start)
unlink $f->{crl};
my $none = JPKIApache::Server->start(name => 'nocrl', children => 1,
                                     main => conf($shm, "JPKIMapFile $f->{map}"));
no_crl_sequence($none);
$none->stop;
$f->{put}->('ca2.crl');

my $redis = JPKITest::Redis->start(name => 'redis');
my $ra = JPKIApache::Server->start(name => 'crl-redis', children => 1,
    main => conf('JPKIStore redis=127.0.0.1:' . $redis->port, 'JPKIRedisTimeout 1s'));
redis_health_sequence($ra, $redis);
$ra->stop;

my ($t_st, $t_out) = JPKIApache::Server->configtest(name => 'grace-bad',
    main => conf('JPKIStore shm', 'JPKICRLGrace forever'));
isnt($t_st, 0, 'configtest refuses JPKICRLGrace forever');
like($t_out, qr/JPKICRLGrace must be "auto" or a time/, '... with a clear message');
($t_st, $t_out) = JPKIApache::Server->configtest(name => 'grace-ok',
    main => conf('JPKIStore shm', 'JPKICRLGrace 2h'));
is($t_st, 0, 'configtest accepts JPKICRLGrace 2h') or diag($t_out);
($t_st, $t_out) = JPKIApache::Server->configtest(name => 'health-nosite',
    main => "<Location /health>\nJPKIHealth On\n</Location>\n");
isnt($t_st, 0, 'configtest refuses JPKIHealth without the site');
like($t_out, qr/JPKIHealth in <Location \/health>/, '... with a clear message');

done_testing();
