#!/usr/bin/perl
# t/scenarios.t - the shared scenario table (t/lib/JPKIScenarios.pm) against
# nginx and Apache (t/lib/JPKIServer.pm), each once with the embedded store
# (one zone per site, a mapping file) and once with Redis (mappings in the
# store, "peer" a second server sharing "main"'s database).  nginx runs one
# instance per site; Apache one instance with a virtual host per site (its
# own JPKI settings, error log and echo upstream), mpm_event, two children.
# The four runs go through the table together: the late scenarios' waits
# overlap.
#   make all pki && prove -v t/scenarios.t   (JPKI_SERVERS=nginx: one server)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use JPKITest;
use JPKIServer;
use JPKIScenarios;

skip_unless(qw(jpkictl pki openssl redis));
my @kinds = JPKIServer::kinds();

my $dir = tmpdir();
# the secrets and OCSP responders of %SITES (shared by every run)
my ($secret, $ocsp, $ocsp_url) = JPKIScenarios::fixture($dir);
my %S = %JPKIScenarios::SITE_SETTINGS;
my %accounts = %JPKIScenarios::ACCOUNTS;
my $cert_id = sub { cert_id($_[0], $secret->{site}) };

# The areas of the table as locations of a site description.
my %AREA_KEY = (lifetime => 'session_lifetime', idle => 'session_idle',
                recheck => 'recheck_interval');
my @locations = map {
    my $a = $_;
    my %l = map { ($AREA_KEY{$_} // $_) => $a->{$_} } grep { $_ ne 'path' } keys %$a;
    $l{$AREA_KEY{$_}} .= 's' for grep { defined $a->{$_} } keys %AREA_KEY;
    $l{throttle} = JPKIScenarios::area_throttle($a);
    ($a->{path} => \%l);
} @JPKIScenarios::AREAS;

# The description of site NAME on STORE (MAP: its mapping file).
sub site {
    my ($name, $store, $map) = @_;
    my $s = $JPKIScenarios::SITES{$name};
    my $iss = 'card ca=' . join(',', map { "\@PKI\@/$_" } @{ $s->{ca} })
            . " ocsp=$ocsp_url->{ $s->{ocsp} }" . join('', map { " crl=\@PKI\@/$_" } split ' ', $s->{crl} // '');
    return { secret => $secret->{ $s->{secret} }, issuer => $iss, store => $store,
             map => $map, challenge_ttl => "$S{challenge_ttl}s",
             ocsp_timeout => "$S{ocsp_timeout}s", redis_timeout => '3s',
             locations => \@locations };
}

my $t0 = time;
my (@envs, @servers, @redis);
for my $kind (@kinds) {
    # ---- embedded store: one zone per site, mappings in a file
    my $map = "$dir/map-$kind.txt";
    my $write_map = sub {
        my (%skip) = @_;
        my $m = "# cert_id account\n";
        $m .= $cert_id->($_) . " $accounts{$_}\n" for grep { !$skip{$_} } sort keys %accounts;
        spew($map, $m, 0644);
    };
    $write_map->();
    my $shm = JPKIServer->start_sites($kind, name => 'shm', sites => [
        map { ($_ => site($_, "shm zone=jpki_$_", $_ eq 'foreign' ? undef : $map)) }
        qw(main link down foreign) ]);
    push @envs, JPKIServer::scenario_env("$kind-shm", $shm, cert_id => $cert_id,
        unmap => sub {
            my ($cert) = @_;
            my $old = (stat $map)[9];
            $write_map->($cert => 1);
            utime $old + 10, $old + 10, $map;       # a new mtime, whatever the clock
        });

    # ---- Redis (one per server): "main" and "peer" on database 0, the
    # others on their own
    my $redis = JPKITest::Redis->start(name => "redis-$kind", password => 'jpki-test-pw');
    my %db = (main => 0, peer => 0, link => 1, down => 2, foreign => 3);
    for my $site (qw(main link down)) {
        $redis->set_in($db{$site}, 'SET', 'jpki:v1:map:' . $cert_id->($_), $accounts{$_})
            for sort keys %accounts;
    }
    my $store = sub {
        'redis=127.0.0.1:' . $redis->port . ($db{ $_[0] } ? " db=$db{ $_[0] }" : '')
            . ' password_file=' . password_file('jpki-test-pw');
    };
    my $rds = JPKIServer->start_sites($kind, name => 'redis', sites => [
        map { ($_ => site($_, $store->($_))) } qw(main link down foreign) ]);
    my $peer = JPKIServer->start_sites($kind, name => 'redis-peer',
                                       sites => [ peer => site('peer', $store->('peer')) ]);
    push @envs, JPKIServer::scenario_env("$kind-redis", { %$rds, %$peer }, shared_store => 1,
        cert_id => $cert_id,
        unmap => sub {
            my ($cert) = @_;
            $redis->set_in($db{$_}, 'DEL', 'jpki:v1:map:' . $cert_id->($cert))
                for qw(main link down);
        },
        store_keys => sub { $redis->keys_like($_[1], $db{ $_[0] }) });
    push @servers, values %$shm, values %$rds, values %$peer;
    push @redis, $redis;
}
note(sprintf 'servers up in %.1f s', time - $t0);

JPKIScenarios::run(@envs);

note(sprintf 'scenarios done in %.1f s', time - $t0);

# (Apache's sites are virtual hosts of one instance: stopped once)
my %seen;
$_->stop for grep { !$seen{ $_->srv }++ } sort { $a->name cmp $b->name } @servers;
$_->stop for @redis;
$_->stop for values %$ocsp;

done_testing();
