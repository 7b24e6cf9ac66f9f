#!/usr/bin/perl
# t/nginx-scenarios.t - the shared scenario table (t/lib/JPKIScenarios.pm)
# against Debian's nginx with the module: once with the embedded store
# (shared memory zone, mapping file), once with Redis (mappings in the
# store, two nodes sharing it).
#   make build/ngx_http_jpki_module.so build/jpkictl pki && prove -v t/nginx-scenarios.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use JPKITest;
use JPKIScenarios;

skip_unless(qw(nginx module jpkictl pki openssl redis));

my $dir = tmpdir();
# the secrets and OCSP responders of %SITES (shared by both runs)
my ($secret, $ocsp, $ocsp_url) = JPKIScenarios::fixture($dir);
my %secret = %$secret;
my %ocsp = %$ocsp;
my %ocsp_url = %$ocsp_url;

my %S = %JPKIScenarios::SITE_SETTINGS;

# The locations of @AREAS as nginx configuration.
sub areas_conf {
    my $c = '';
    for my $a (@JPKIScenarios::AREAS) {
        my @d;
        push @d, 'jpki_endpoints;' if $a->{endpoints};
        push @d, 'jpki on;' if $a->{gate};
        push @d, "jpki_revocation $a->{revocation};" if $a->{revocation};
        push @d, "jpki_failure $a->{failure};" if $a->{failure};
        push @d, "jpki_session_lifetime $a->{lifetime}s;" if $a->{lifetime};
        push @d, "jpki_session_idle $a->{idle}s;" if defined $a->{idle};
        push @d, "jpki_recheck_interval $a->{recheck}s;" if defined $a->{recheck};
        push @d, "jpki_login_page $a->{login_page};" if $a->{login_page};
        push @d, "jpki_trusted_origins $a->{trusted_origins};" if $a->{trusted_origins};
        push @d, 'jpki_require_account on;' if $a->{require_account};
        push @d, "jpki_header $a->{header};" if $a->{header};
        my $thr = JPKIScenarios::area_throttle($a);
        push @d, "jpki_throttle $thr;" if defined $thr;
        push @d, 'proxy_pass http://127.0.0.1:@UP@;' if $a->{upstream};
        (my $t = $a->{text} // '') =~ s/\n/\\n/g;
        push @d, "return 200 \"$t\";" if defined $a->{text};
        $c .= sprintf "        location %s%s {\n%s        }\n",
            $a->{exact} ? '= ' : '', $a->{path}, join '', map { "            $_\n" } @d;
    }
    return $c;
}

sub site_conf {
    my ($name, $store, $map) = @_;
    my $s = $JPKIScenarios::SITES{$name};
    my $ca = join ',', map { "\@PKI\@/$_" } @{ $s->{ca} };
    my $iss = "card ca=$ca ocsp=$ocsp_url{ $s->{ocsp} }";
    $iss .= " crl=\@PKI\@/$s->{crl}" if $s->{crl};
    return <<"EOF" . areas_conf() . "    }\n";
    jpki_secret_file $secret{ $s->{secret} };
    jpki_issuer $iss;
    $store
    @{[ $map ? "jpki_map_file $map;" : '' ]}
    jpki_challenge_ttl $S{challenge_ttl}s;
    jpki_ocsp_timeout $S{ocsp_timeout}s;
    jpki_redis_timeout 3s;

    server {
        listen 127.0.0.1:\@PORT\@;
EOF
}

my %accounts = %JPKIScenarios::ACCOUNTS;
my $cert_id = sub { cert_id($_[0], $secret{site}) };

sub env_for {
    my ($label, $ng, %o) = @_;
    return {
        label        => $label,
        shared_store => $o{shared_store},
        base         => sub { $ng->{ $_[0] } ? $ng->{ $_[0] }->base : undef },
        cert_id      => $cert_id,
        mark         => sub { my $n = $ng->{ $_[0] };
                              return { log => $n->mark, up => $n->upstream_mark } },
        audits       => sub { $ng->{ $_[0] }->audits($_[1]{log}) },
        log_since    => sub { $ng->{ $_[0] }->log_since($_[1]{log}) },
        log_problems => sub { $ng->{ $_[0] }->log_problems($_[1]{log}) },
        upstream_hits => sub { $ng->{ $_[0] }->upstream_hits($_[1]{up}, $_[2]) },
        unmap        => $o{unmap},
        store_keys   => $o{store_keys},
    };
}

my $t0 = time;

# ---- embedded store: one zone per site, mappings in a file
my (%shm, $shm_env);
{
    my $map = "$dir/map.txt";
    my $write_map = sub {
        my (%skip) = @_;
        my $m = "# cert_id account\n";
        $m .= $cert_id->($_) . " $accounts{$_}\n" for grep { !$skip{$_} } sort keys %accounts;
        spew($map, $m, 0644);
    };
    $write_map->();
    for my $site (qw(main link down foreign)) {
        $shm{$site} = JPKITest::Nginx->start(
            name => "shm-$site",
            http => site_conf($site, "jpki_store shm zone=jpki_$site:1m;",
                              $site eq 'foreign' ? undef : $map));
    }
    $shm_env = env_for('shm', \%shm, unmap => sub {
        my ($cert) = @_;
        my $old = (stat $map)[9];
        $write_map->($cert => 1);
        utime $old + 10, $old + 10, $map;       # a new mtime, whatever the clock
    });
}

# ---- Redis: two nodes of "main" on database 0, the others on their own
my (%rds, $rds_env);
my $redis = JPKITest::Redis->start(name => 'redis', password => 'jpki-test-pw');
{
    my %db = (main => 0, peer => 0, link => 1, down => 2, foreign => 3);
    for my $site (qw(main link down)) {
        $redis->set_in($db{$site}, 'SET', 'jpki:v1:map:' . $cert_id->($_), $accounts{$_})
            for sort keys %accounts;
    }
    for my $site (qw(main peer link down foreign)) {
        my $store = 'jpki_store redis=127.0.0.1:' . $redis->port
                    . ($db{$site} ? " db=$db{$site}" : '') . ' password=jpki-test-pw;';
        $rds{$site} = JPKITest::Nginx->start(name => "redis-$site",
                                             http => site_conf($site, $store));
    }
    $rds_env = env_for('redis', \%rds, shared_store => 1,
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

$_->stop for map { $shm{$_} } sort keys %shm;
$_->stop for map { $rds{$_} } sort keys %rds;
$redis->stop;
$_->stop for values %ocsp;

done_testing();
