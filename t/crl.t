#!/usr/bin/perl
# t/crl.t - CRL files, on nginx and Apache alike (t/lib/JPKIServer.pm): a
# replaced file is picked up without a reload or restart (hold, then
# released by a new CRL without the entry); an older, stale or wrongly
# signed replacement is refused and the loaded CRL stays; the health
# endpoint reports every CRL and whether the store answers; the CRL grace
# and the health endpoint are checked by `nginx -t` / `apache2 -t`.  The
# sequences are t/lib/JPKICRLFiles.pm's.  One worker (nginx) or child
# (Apache), so that every request sees its reloads.
#   make all pki && prove -v t/crl.t   (JPKI_SERVERS=nginx: one server)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIServer;
use JPKICRLFiles qw(fixture file_sequence no_crl_sequence redis_health_sequence);

skip_unless(qw(jpkictl pki openssl redis));
my @kinds = JPKIServer::kinds();
my $dir = tmpdir();

# The site of these tests: ca1 and ca2 with the CRL file, phone without
# one, revocation by CRL, endpoints and health.
sub site {
    my ($f, %more) = @_;
    return (issuer => [ "card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=$f->{crl}",
                        'phone ca=@PKI@/phone-ca.pem' ],
            secret => $f->{secret}, revocation => 'crl', workers => 1,
            locations => [ '/jpki/' => { endpoints => 1 },
                           '/health' => { health => 1, exact => 1 } ],
            %more);
}

for my $kind (@kinds) {
    subtest $kind => sub {
        mkdir "$dir/$kind";
        my $f = fixture("$dir/$kind");
        my $srv = JPKIServer->start($kind, name => 'crl', site($f, store => 'shm',
                                                               map => $f->{map}));
        file_sequence($srv, $f);
        $srv->stop;

        # no CRL at all (file missing from the start)
        unlink $f->{crl};
        my $none = JPKIServer->start($kind, name => 'nocrl', site($f, store => 'shm',
                                                                 map => $f->{map}));
        no_crl_sequence($none);
        $none->stop;
        $f->{put}->('ca2.crl');

        my $redis = JPKITest::Redis->start(name => "redis-$kind");
        my $rs = JPKIServer->start($kind, name => 'crl-redis',
            site($f, store => 'redis=127.0.0.1:' . $redis->port, redis_timeout => '1s'));
        redis_health_sequence($rs, $redis);
        $rs->stop;

        my $grace = JPKIServer::directive_name($kind, 'crl_grace');
        my ($st, $out) = JPKIServer->configtest($kind, name => 'grace-bad',
                                                site($f, store => 'shm', crl_grace => 'forever'));
        isnt($st, 0, "$kind: the configuration test refuses $grace forever");
        like($out, qr/\Q$grace\E.*must be "auto" or a time/, '... with a clear message');
        ($st, $out) = JPKIServer->configtest($kind, name => 'grace-ok',
                                             site($f, store => 'shm', crl_grace => '2h'));
        is($st, 0, "$kind: the configuration test accepts $grace 2h") or diag($out);

        # a health location without the site
        ($st, $out) = JPKIServer->configtest($kind, name => 'health-nosite',
                                             locations => [ '/health' => { health => 1 } ]);
        my $health = JPKIServer::directive_name($kind, 'health');
        isnt($st, 0, "$kind: the configuration test refuses $health without the site");
        like($out, $kind eq 'nginx' ? qr/"jpki_health" needs jpki_secret_file/
                                    : qr/JPKIHealth in <Location \/health>/,
             '... with a clear message');
    };
}

done_testing();
