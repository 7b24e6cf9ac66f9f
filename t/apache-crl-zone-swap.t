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
# its verdict is required.
#
# JPKI_SWAP_SECONDS: how long the swaps last (default 12).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use JPKITest;
use JPKIApache;

skip_unless(qw(jpkictl pki openssl));
skip_unless_apache();

my $SECONDS = $ENV{JPKI_SWAP_SECONDS} // 12;
my $BASE_NUMBER = 0x100;
my $X = 'rev-keyCompromise';            # revoked by the even generations
my $GOOD = 'user1';                     # revoked by none

my $dir = tmpdir();
my $pki = $JPKITest::PKI;
my $secret = write_secret("$dir/site.secret");
my $crl = "$dir/card.crl";
my $map = "$dir/map.txt";
spew($map, join('', map { cert_id($_, $secret) . " acct-$_\n" } $X, $GOOD), 0644);

# ---------------------------------------------------------------- the CRLs
# openssl ca -gencrl over index files of our own: ca2's revoked rows (X's
# row only in the even generations) and fillers.
my ($xserial) = `openssl x509 -in $pki/$X.pem -noout -serial` =~ /serial=([0-9A-F]+)/
    or BAIL_OUT("no serial for $X");
my @rows = grep { /^R\t/ } split /\n/, slurp("$pki/ca2-index.txt");
my ($xrow) = grep { (split /\t/)[3] eq $xserial } @rows
    or BAIL_OUT("$X is not revoked in ca2-index.txt");
my @others = grep { $_ ne $xrow } @rows;
my ($exp, $revdate) = (split /\t/, $xrow)[1, 2];
$revdate =~ s/,.*//;

sub make_crl {
    my ($g) = @_;
    my $fill = 37 * (($g * 7) % 11);            # 0 .. 370 other entries
    my @r = (@others, $g % 2 == 0 ? ($xrow) : (),
             map { sprintf "R\t%s\t%s,superseded\t7E%06X%010X\tunknown\t/CN=filler", $exp,
                   $revdate, $g, $_ } 1 .. $fill);
    spew("$dir/index-$g.txt", join('', map { "$_\n" } @r));
    spew("$dir/crlnum", sprintf("%04X\n", $BASE_NUMBER + $g));
    spew("$dir/serial", "01\n");
    local $ENV{CA_DB} = "$dir/index-$g.txt";
    local $ENV{CA_SERIAL} = "$dir/serial";
    local $ENV{CA_CRLNUM} = "$dir/crlnum";
    local $ENV{CA_NEWCERTS} = $dir;
    system("openssl ca -batch -config $pki/db/openssl.cnf -gencrl -cert $pki/ca2.pem "
           . "-keyfile $pki/ca2.key -out $dir/gen-$g.crl.pem >>$dir/openssl.log 2>&1") == 0
        && system("openssl crl -in $dir/gen-$g.crl.pem -outform DER -out $dir/gen-$g.crl "
                  . ">>$dir/openssl.log 2>&1") == 0
        or BAIL_OUT("openssl ca -gencrl failed: " . slurp("$dir/openssl.log"));
}
my $NGEN = 8 + 3 * $SECONDS;                    # more than the swaps can use
make_crl($_) for 0 .. $NGEN;

put_file("$dir/gen-0.crl", $crl, time);

# ---------------------------------------------------------------- the server
my $conf = <<"EOF";
JPKISecretFile $secret
JPKIIssuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=$crl
JPKIStore shm size=1M
JPKICRLZone 1M
JPKIMapFile $map
JPKIRevocation crl
<Location /health>
    JPKIHealth On
</Location>
@{[ ap_gate_conf(recheck => 0) ]}
EOF
# connections spread over both children (see t/apache-crl-zone.t)
my $ap = JPKIApache::Server->start(name => 'swap', mpm => 'event', children => 2,
                                   global => "ListenCoresBucketsRatio 1\n",
                                   main => $conf);
is(scalar(my @c = $ap->children), 2, 'mpm_event, two children (16 threads each)');

sub crl_number {
    my $h = get_json($ap->url('/health'));
    return $h->{json} && $h->{json}{crls} ? $h->{json}{crls}[0]{crl_number} // -1 : -1;
}
my $end = time + 10;
sleep 0.1 while crl_number() != $BASE_NUMBER && time < $end;
is(crl_number(), $BASE_NUMBER, 'generation 0 in force');
is(login_to($ap, $X)->{json}{error}, 'cert_revoked', 'generation 0 revokes X');
is(login_to($ap, $GOOD)->{status}, 200, 'user1 logs in');

# ---------------------------------------------------------------- clients
# Each client logs in with its certificate, then makes gated requests with
# the session, over and over; one line per answer: kind, cert, t0, t1,
# status, error (t0 when the request is sent, t1 when its answer is in).
my $start = time;
my $stop_at = $start + $SECONDS;
my @clients;
for my $i (0 .. 3) {
    my $cert = $i % 2 ? $GOOD : $X;
    my $out = "$dir/client-$i.txt";
    push @clients, [ $out, JPKIApache::fork_code("client $i", "$dir/client-$i.log", sub {
        open my $fh, '>', $out or die "$out: $!";
        $fh->autoflush(1);
        my $rec = sub {
            my ($kind, $t0, $r) = @_;
            printf $fh "%s\t%s\t%.6f\t%.6f\t%s\t%s\n", $kind, $cert, $t0, time,
                $r->{status} // 0, ($r->{json} && $r->{json}{error}) // '-';
        };
        my $base = $ap->url('/jpki');
        while (time < $stop_at) {
            my $ch = challenge($base);
            unless (defined $ch) {
                $rec->('challenge', time, { status => 0 });
                sleep 0.05;
                next;
            }
            my $body = login_body($ch, $cert, $cert);
            my $t0 = time;
            my $r = post_json("$base/login", $body);
            $rec->('login', $t0, $r);
            my $cookie = cookie_of($r);
            next unless $cookie && $r->{status} == 200;
            for (1 .. 12) {
                last if time >= $stop_at;
                $t0 = time;
                $rec->('gate', $t0, gated_get($ap, $cookie));
            }
        }
        close $fh;
    }) ];
}

# ---------------------------------------------------------------- swaps
# put[g]: before the file of g was put (g cannot be in force earlier);
# seen[g]: once health showed g (in force from then on).
my (@put, @seen);
$put[0] = 0;
$seen[0] = $start;
my ($g, $late) = (0, 0);
while (time < $stop_at && $g < $NGEN) {
    $g++;
    $put[$g] = time;
    put_file("$dir/gen-$g.crl", $crl, int(time) + 10 * $g);
    my $until = time + 15;
    my $n;
    while (($n = crl_number()) < $BASE_NUMBER + $g && time < $until) { sleep 0.05 }
    if ($n != $BASE_NUMBER + $g) {
        $late++;
        diag("generation $g not in force after 15 s (health says CRL number $n)");
        last;
    }
    $seen[$g] = time;
    sleep 0.2 + rand(0.5);    # some time with one generation in force
}
my $gens = $g;
is($late, 0, "every new CRL put in force (generations 1 .. $gens)");
cmp_ok($gens, '>=', $SECONDS / 4, "... $gens swaps in $SECONDS s");

for my $c (@clients) {
    my $pid = $c->[1];
    my $until = time + 60;
    sleep 0.1 while JPKITest::alive($pid) && time < $until;
    JPKITest::stop_pid($pid, 'TERM', 3) if JPKITest::alive($pid);
    delete $JPKITest::KIDS{$pid};
}

# ---------------------------------------------------------------- verdicts
# The generations that may have answered a request over [t0, t1].
sub window {
    my ($t0, $t1) = @_;
    my ($lo, $hi) = (0, 0);
    for my $k (0 .. $gens) {
        $lo = $k if defined $seen[$k] && $seen[$k] <= $t0;
        $hi = $k if $put[$k] <= $t1;
    }
    return ($lo, $hi);
}

my (%count, @bad);
for my $c (@clients) {
    for my $line (split /\n/, slurp($c->[0]) // '') {
        my ($kind, $cert, $t0, $t1, $st, $err) = split /\t/, $line;
        $count{"$kind $cert"}++;
        my $answer = $st == 200 ? 'good' : $st == 403 && $err eq 'cert_revoked' ? 'revoked'
                   : "status $st $err";
        if ($kind eq 'challenge' || $answer =~ /^status/) {
            push @bad, "$kind $cert: $answer";
            next;
        }
        if ($cert eq $GOOD) {
            push @bad, "$kind $cert: $answer (revoked by no CRL)" if $answer ne 'good';
            next;
        }
        my ($lo, $hi) = window($t0, $t1);
        my %may = map { ($_ % 2 ? 'good' : 'revoked') => 1 } $lo .. $hi;
        if (!$may{$answer}) {
            push @bad, sprintf "%s %s: %s over %.3f..%.3f, generations %d..%d", $kind,
                $cert, $answer, $t0 - $start, $t1 - $start, $lo, $hi;
        }
        $count{"strict $answer"}++ if keys %may == 1;
    }
}
note(join ", ", map { "$_: $count{$_}" } sort keys %count);
is(scalar @bad, 0, 'every answer is the one of a CRL in force during the request')
    or diag(join "\n", @bad[0 .. ($#bad < 30 ? $#bad : 29)]);
cmp_ok($count{"login $X"} // 0, '>=', $SECONDS, "logins with X during the swaps");
cmp_ok($count{"login $GOOD"} // 0, '>=', $SECONDS, 'logins with user1 during the swaps');
cmp_ok($count{"gate $X"} // 0, '>', 0, 'gated requests with a session of X');
cmp_ok($count{"strict revoked"} // 0, '>', 0, 'X refused when only a revoking CRL could answer');
cmp_ok($count{"strict good"} // 0, '>', 0, 'X accepted when only a CRL without it could answer');

# nothing in the logs: no crash, no alert (stop checks them too)
my @p = $ap->log_problems(undef, 0);
is(scalar @p, 0, 'no crash or alert in the error log') or diag(join "\n", @p[0 .. ($#p < 10 ? $#p : 9)]);
unlike($ap->log_since(undef, 0), qr/CRL zone \S+: .*(kept changing|inconsistent)/,
       'no lookup gave up on the zone');
$ap->stop;

done_testing();
