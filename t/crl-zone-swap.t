#!/usr/bin/perl
# t/crl-zone-swap.t - the CRL zone while its CRL is being replaced, on nginx
# (jpki_crl_zone, two workers) and Apache (JPKICRLZone, mpm_event, two
# children): lookups read the zone without a lock, a per-CRL sequence number
# telling them whether the CRL they read was replaced and its block reused
# under them (common/crlzone.c).  Logins and gated requests made while the
# CRL file is swapped over and over must each get the answer of a CRL that
# was in force during the request, and never anything else: no crash, no
# 5xx, a certificate that no CRL revokes never refused.  The CRL
# generations (their sizes keep changing: the blocks move), the clients and
# the verdicts: t/lib/JPKICRLSwap.pm.
#
# JPKI_SWAP_SECONDS: how long the swaps last (default 12).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIServer;
use JPKICRLSwap;

skip_unless(qw(jpkictl pki openssl));
my @kinds = JPKIServer::kinds();
my $SECONDS = $ENV{JPKI_SWAP_SECONDS} // 12;

for my $kind (@kinds) {
    subtest $kind => sub {
        my $dir = tmpdir() . "/$kind";             # each server its own files
        mkdir $dir;
        # 90 .. 1110 other entries (up to 27 KB) in an order that keeps
        # changing the sizes: a block freed by a swap is reused by blocks
        # that start elsewhere
        my $f = JPKICRLSwap::fixture($dir, $SECONDS,
                                     fill => sub { 90 + 170 * (($_[0] * 5) % 7) });
        my $srv = JPKIServer->start($kind, name => 'swap', workers => 2, mpm => 'event',
            issuer => "card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=$f->{crl}",
            secret => $f->{secret}, store => 'shm', map => $f->{map}, revocation => 'crl',
            # two workers: reuseport (nginx) or a listener per child
            # (Apache) spreads the clients' connections over both
            nginx => "    jpki_crl_zone crl:1m;\n"
                     . "    log_format swap '\$pid \$status \$request_uri';\n",
            nginx_listen => 'reuseport',
            nginx_server => '        access_log @DIR@/swap.log swap;',
            apache => "JPKICRLZone 1M\nListenCoresBucketsRatio 1\n"
                      . qq{CustomLog "\@DIR\@/swap.log" "%P %>s %U"\n},
            locations => [ '/jpki/' => { endpoints => 1, throttle => 'off' },
                           '/health' => { health => 1, exact => 1 },
                           '/app/' => { gate => 1, upstream => 1, recheck_interval => 0 } ]);
        my @workers = sort { $a <=> $b } $srv->workers;
        is(scalar @workers, 2, "$kind: two workers");

        JPKICRLSwap::run($f, $srv);

        # both workers answered logins and gated requests
        my %by;
        for (split /\n/, slurp("$srv->{srv}{dir}/swap.log") // '') {
            my ($pid, $st, $uri) = split / /;
            $by{$pid}++ if ($uri // '') =~ m{^/(app/|jpki/login)};
        }
        note(join ', ', map { "worker $_: $by{$_}" } sort keys %by);
        is(scalar(grep { $by{$_} >= 10 } keys %by), 2, 'both workers answered during the swaps');
        is_deeply([ sort { $a <=> $b } $srv->workers ], \@workers, 'the workers are still the same');
        my @p = $srv->log_problems;
        is(scalar @p, 0, 'no crash, alert or sanitizer report in the error log')
            or diag(join "\n", @p[0 .. ($#p < 10 ? $#p : 9)]);
        unlike($srv->log_since(0), qr/kept changing during a lookup|too small/,
               'no lookup gave up on the zone, no CRL left out');
        $srv->stop;
    };
}

done_testing();
