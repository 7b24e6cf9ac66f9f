#!/usr/bin/perl
# t/apache-scenarios.t - the shared scenario table (t/lib/JPKIScenarios.pm,
# the one t/nginx-scenarios.t runs against nginx) against Debian's apache2
# with mod_auth_jpki (mpm_event, two children): once with the embedded store
# (APR shared memory, mapping file), once with Redis (mappings in the store,
# "peer" a second Apache sharing "main"'s database).  Each site is a virtual
# host with its own JPKI settings, error log and echo upstream.
#   make build/mod_auth_jpki.so build/jpkictl pki && prove -v t/apache-scenarios.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use JPKITest;
use JPKIScenarios;
use JPKIApache;

skip_unless(qw(jpkictl pki openssl redis));
skip_unless_apache();

my $dir = tmpdir();
# the secrets and OCSP responders of %SITES (shared by both runs)
my ($secret, $ocsp, $ocsp_url) = JPKIScenarios::fixture($dir);
my %secret = %$secret;
my %ocsp = %$ocsp;
my %ocsp_url = %$ocsp_url;

my %S = %JPKIScenarios::SITE_SETTINGS;
my %accounts = %JPKIScenarios::ACCOUNTS;
my $cert_id = sub { cert_id($_[0], $secret{site}) };

# One virtual host per site: its own secret, issuer, store and areas.
sub site_conf {
    my ($name, $store, $map) = @_;
    my $s = $JPKIScenarios::SITES{$name};
    my $ca = join ',', map { "\@PKI\@/$_" } @{ $s->{ca} };
    my $iss = "card ca=$ca ocsp=$ocsp_url{ $s->{ocsp} }";
    $iss .= " crl=\@PKI\@/$s->{crl}" if $s->{crl};
    return <<"EOF" . JPKIApache::ap_areas_conf('@DOCS@');
    JPKISecretFile $secret{ $s->{secret} }
    JPKIIssuer $iss
    $store
    @{[ $map ? "JPKIMapFile $map" : '' ]}
    JPKIChallengeTTL $S{challenge_ttl}s
    JPKIOCSPTimeout $S{ocsp_timeout}s
    JPKIRedisTimeout 3s
EOF
}

my $t0 = time;

# ---- embedded store: one zone per site, mappings in a file
my ($shm, $shm_env);
{
    my $map = "$dir/map.txt";
    my $write_map = sub {
        my (%skip) = @_;
        my $m = "# cert_id account\n";
        $m .= $cert_id->($_) . " $accounts{$_}\n" for grep { !$skip{$_} } sort keys %accounts;
        spew($map, $m, 0644);
    };
    $write_map->();
    $shm = JPKIApache::Server->start(name => 'shm', docs => ap_area_docs(), vhosts => [
        map { ($_ => site_conf($_, "JPKIStore shm size=1M zone=jpki_$_",
                               $_ eq 'foreign' ? undef : $map)) }
        qw(main link down foreign) ]);
    $shm_env = ap_scenario_env('apache-shm',
        { map { ($_ => [$shm, $_]) } qw(main link down foreign) },
        cert_id => $cert_id,
        unmap => sub {
            my ($cert) = @_;
            my $old = (stat $map)[9];
            $write_map->($cert => 1);
            utime $old + 10, $old + 10, $map;
        });
}

# ---- Redis: "main" and "peer" (another Apache) on database 0
my ($rds, $rds_peer, $rds_env);
my $redis = JPKITest::Redis->start(name => 'redis', password => 'jpki-test-pw');
{
    my %db = (main => 0, peer => 0, link => 1, down => 2, foreign => 3);
    for my $site (qw(main link down)) {
        $redis->set_in($db{$site}, 'SET', 'jpki:v1:map:' . $cert_id->($_), $accounts{$_})
            for sort keys %accounts;
    }
    my $store = sub {
        'JPKIStore redis=127.0.0.1:' . $redis->port
            . ($db{ $_[0] } ? " db=$db{ $_[0] }" : '') . ' password=jpki-test-pw';
    };
    $rds = JPKIApache::Server->start(name => 'redis', docs => ap_area_docs(), vhosts => [
        map { ($_ => site_conf($_, $store->($_))) } qw(main link down foreign) ]);
    $rds_peer = JPKIApache::Server->start(name => 'redis-peer', docs => ap_area_docs(),
                                          vhosts => [
        peer => site_conf('peer', $store->('peer')) ]);
    $rds_env = ap_scenario_env('apache-redis',
        { (map { ($_ => [$rds, $_]) } qw(main link down foreign)),
          peer => [$rds_peer, 'peer'] },
        shared_store => 1, cert_id => $cert_id,
        unmap => sub {
            my ($cert) = @_;
            $redis->set_in($db{$_}, 'DEL', 'jpki:v1:map:' . $cert_id->($cert))
                for qw(main link down);
        },
        store_keys => sub { $redis->keys_like($_[1], $db{ $_[0] }) });
}
note(sprintf 'servers up in %.1f s', time - $t0);

JPKIScenarios::run($shm_env, $rds_env);

note(sprintf 'scenarios done in %.1f s', time - $t0);

$_->stop for $shm, $rds, $rds_peer;
$redis->stop;
$_->stop for values %ocsp;

done_testing();
