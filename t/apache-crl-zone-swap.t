#!/usr/bin/perl
# t/apache-crl-zone-swap.t - JPKICRLZone while its CRL is being replaced:
# lookups read the zone without a lock (a per-issuer sequence number tells
# them whether the index they read was replaced, its block reused, under
# them), so logins and gated requests that run while the CRL file is swapped
# over and over must each get the answer of a CRL that was in force during
# the request, and never anything else: no crash, no 5xx, a certificate
# that no CRL revokes never refused.
#
# The CRLs: generation g (CRL number 0x100 + g) revokes certificate X
# (rev-keyCompromise) when g is even and not when g is odd; every
# generation also carries a different number of other entries, so that
# consecutive indexes differ in size and the zone's blocks move (a block
# freed by a swap is reused at another offset by a later one).  Concurrent
# clients log in with X and with user1 (in no CRL) and make gated requests
# with their sessions (JPKIRecheckInterval 0: every request checks the
# CRL).  The writer replaces the file, notes when (the generation cannot be
# in force before), and waits until the health endpoint shows the new CRL
# number (in force from then on).  An answer for X over [t0, t1] may come
# from any generation between the last one seen in force before t0 and the
# last one put before t1; over most requests that is one generation, and
# its verdict is required.  The CRL generations, the clients and the
# verdicts: t/lib/JPKICRLSwap.pm (shared with t/nginx-crl-zone-swap.t).
#
# JPKI_SWAP_SECONDS: how long the swaps last (default 12).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKICRLSwap;

skip_unless(qw(jpkictl pki openssl));
skip_unless_apache();

my $SECONDS = $ENV{JPKI_SWAP_SECONDS} // 12;
my $dir = tmpdir();
my $f = JPKICRLSwap::fixture($dir, $SECONDS);

# ---------------------------------------------------------------- the server
my $conf = <<"EOF";
JPKISecretFile $f->{secret}
JPKIIssuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=$f->{crl}
JPKIStore shm size=1M
JPKICRLZone 1M
JPKIMapFile $f->{map}
JPKIRevocation crl
<Location /health>
    JPKIHealth On
</Location>
@{[ ap_gate_conf(recheck => 0, throttle => 'off') ]}
EOF
# connections spread over both children (see t/apache-crl-zone.t)
my $ap = JPKIApache::Server->start(name => 'swap', mpm => 'event', children => 2,
                                   global => "ListenCoresBucketsRatio 1\n",
                                   main => $conf);
is(scalar(my @c = $ap->children), 2, 'mpm_event, two children (16 threads each)');

# ---------------------------------------------------------------- swaps
JPKICRLSwap::run($f, $ap);

# nothing in the logs: no crash, no alert (stop checks them too)
my @p = $ap->log_problems(undef, 0);
is(scalar @p, 0, 'no crash or alert in the error log') or diag(join "\n", @p[0 .. ($#p < 10 ? $#p : 9)]);
unlike($ap->log_since(undef, 0), qr/CRL zone \S+: .*(kept changing|inconsistent)/,
       'no lookup gave up on the zone');
$ap->stop;

done_testing();
