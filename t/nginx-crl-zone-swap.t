#!/usr/bin/perl
# t/nginx-crl-zone-swap.t - jpki_crl_zone while its CRL is being replaced:
# workers look up the zone's index without a lock, and the block of an index
# replaced is freed only once no worker can still be reading it (each worker
# marks when it reads; see "The CRL zone" in ngx_http_jpki_module.c).  So
# logins and gated requests that run on two workers while the CRL file is
# swapped over and over must each get the answer of a CRL that was in force
# during the request, and never anything else: no crash, no 5xx, a
# certificate that no CRL revokes never refused.  The CRL generations, the
# clients and the verdicts: t/lib/JPKICRLSwap.pm (shared with
# t/apache-crl-zone-swap.t).
#
# JPKI_SWAP_SECONDS: how long the swaps last (default 12).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use JPKITest;
use JPKICRLSwap;

skip_unless(qw(nginx module jpkictl pki openssl));

my $SECONDS = $ENV{JPKI_SWAP_SECONDS} // 12;
my $dir = tmpdir();
# the sizes: nginx's slab allocator gives an index of more than half a page
# whole pages, the first free run that fits, from its start; 90 .. 1110
# other entries (1 .. 7 pages) in an order that keeps changing the run
# sizes, so a run freed by a swap is reused by blocks that start elsewhere
# (an index read from a freed block would be read from the middle of
# another one)
my $f = JPKICRLSwap::fixture($dir, $SECONDS, fill => sub { 90 + 170 * (($_[0] * 5) % 7) });

# two workers; reuseport spreads the clients' connections over both
my $ng = JPKITest::Nginx->start(name => 'swap', workers => 2, http => <<"EOF");
    log_format swap '\$pid \$status \$request_uri';
    jpki_secret_file $f->{secret};
    jpki_issuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=$f->{crl};
    jpki_store shm zone=jpki:1m;
    jpki_crl_zone crl:1m;
    jpki_map_file $f->{map};
    jpki_revocation crl;
    server {
        listen 127.0.0.1:\@PORT\@ reuseport;
        access_log \@DIR\@/swap.log swap;
        # hundreds of logins of one revoked certificate: no throttle
        location /jpki/ { jpki_endpoints; jpki_throttle off; }
        location = /health { jpki_health; }
        location /app/  { jpki on; jpki_recheck_interval 0; proxy_pass http://127.0.0.1:\@UP\@; }
    }
EOF
my @workers = $ng->worker_pids;
is(scalar @workers, 2, 'two workers');

JPKICRLSwap::run($f, $ng);

# both workers answered logins and gated requests
my %by;
for (split /\n/, slurp("$ng->{dir}/swap.log")) {
    my ($pid, $st, $uri) = split / /;
    $by{$pid}++ if $uri =~ m{^/(app/|jpki/login)};
}
note(join ', ', map { "worker $_: $by{$_}" } sort keys %by);
is(scalar(grep { $by{$_} >= 10 } keys %by), 2, 'both workers answered during the swaps');
is_deeply([ sort $ng->worker_pids ], [ sort @workers ], 'the workers are still the same');
is_deeply([ $ng->log_problems ], [], 'no crash, alert or sanitizer report in the error log');
unlike($ng->log_since(0), qr/ waits: the CRLs it replaces/,
       'no new CRL had to wait for a reader (lookups are short)');
$ng->stop;

done_testing();
