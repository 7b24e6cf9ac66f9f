#!/usr/bin/perl
# t/apache-crl-zone.t - JPKICRLZone, as t/nginx-crl-zone.t checks
# jpki_crl_zone: a CRL file is parsed once, by one process, into shared
# memory, and every child answers from that copy; a replaced file is picked
# up the same way (one parse for all children); graceful and plain restarts
# keep the loaded CRL without parsing it again (a new size loads it again);
# a zone too small for the CRL fails closed with a clear log line.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use File::Copy qw(copy);
use JPKITest;
use JPKIApache;

skip_unless(qw(jpkictl pki openssl));
skip_unless_apache();
-x "$JPKITest::BUILD/crlgen" or plan skip_all => 'build/crlgen not built (make build/crlgen)';

my $dir = tmpdir();
my $pki = $JPKITest::PKI;
my $secret = write_secret("$dir/site.secret");
my $crl = "$dir/card.crl";
my $map = "$dir/map.txt";
spew($map, join('', map { cert_id($_, $secret) . " acct-$_\n" }
                    qw(user1 rev-certificateHold rev-keyCompromise)), 0644);
my $gen = 0;
sub put_crl {                 # replace the file with a new mtime each time
    my ($name) = @_;
    copy("$pki/$name", "$crl.tmp") or die "copy $name: $!";
    chmod 0644, "$crl.tmp";
    my $t = time + 10 * ++$gen;
    utime $t, $t, "$crl.tmp";
    rename "$crl.tmp", $crl or die "rename: $!";
}
put_crl('ca2.crl');

sub conf {
    my ($zone) = @_;
    return <<"EOF";
JPKISecretFile $secret
JPKIIssuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=$crl
JPKIStore shm size=1M
JPKICRLZone $zone
JPKIMapFile $map
JPKIRevocation crl
<Location /jpki/>
    JPKIEndpoints On
    # many logins of one revoked certificate: no throttle
    JPKIThrottle off
</Location>
<Location /health>
    JPKIHealth On
</Location>
EOF
}
# which child answered what: %P in a log of our own.  Connections spread
# over the children by the kernel (SO_REUSEPORT, one listener per child on
# this 2-core machine), not by which child's listener wakes first: under
# load one child would take every connection.
my $pidlog = qq{CustomLog "\@DIR\@/pid.log" "%P %m %U %>s"\n}
           . "ListenCoresBucketsRatio 1\n";

sub login {
    my ($ap, $cert) = @_;
    my $base = $ap->url('/jpki');
    my $ch = challenge($base) // return {};
    return post_json("$base/login", login_body($ch, $cert, $cert));
}

sub loads { my ($ap, $m) = @_; my @l = $ap->log_since(undef, $m) =~ /loaded: \d+ entries \(shared zone\)/g; scalar @l }

# the children that answered logins since byte POS of the pid log
sub login_pids {
    my ($ap, $pos) = @_;
    my $t = substr(slurp("$ap->{dir}/pid.log") // '', $pos // 0);
    my %p = map { /^(\d+) POST \/jpki\/login / ? ($1 => 1) : () } split /\n/, $t;
    return scalar keys %p;
}
sub pid_mark { my ($ap) = @_; return -s "$ap->{dir}/pid.log" // 0 }

# logins of CERT until both children have answered (8 at least, 60 at
# most): (answers seen => count, children that answered)
sub spread {
    my ($ap, $cert) = @_;
    my $pm = pid_mark($ap);
    my %seen;
    for my $n (1 .. 60) {
        my $r = login($ap, $cert);
        $seen{ $r->{json}{error} // $r->{status} // 'none' }++;
        last if $n >= 8 && login_pids($ap, $pm) >= 2;
    }
    return (\%seen, login_pids($ap, $pm));
}

# ---------------------------------------------------------------- configtest
{
    my ($st, $out) = JPKIApache::Server->configtest(name => 'ct', main => conf('1k'));
    isnt($st, 0, 'configtest: JPKICRLZone 1k refused');
    like($out, qr/JPKICRLZone must be "off" or a size of at least 32k/, '... with a sentence');
    ($st, $out) = JPKIApache::Server->configtest(name => 'ct2', main => conf('64M'));
    is($st, 0, 'configtest: JPKICRLZone 64M accepted') or diag $out;
}

# ---------------------------------------------------------------- shared CRL
my $m0 = 0;
my $ap = JPKIApache::Server->start(name => 'zone', children => 2, global => $pidlog,
                                   main => conf('1M'));
is(scalar(my @c = $ap->children), 2, 'two children');
sleep 1.2;
is(loads($ap, $m0), 1, 'two children, one parse of the CRL into the zone');

# many logins: whichever child answers, the zone's CRL is used
my ($seen, $pids) = spread($ap, 'rev-keyCompromise');
is_deeply([ keys %$seen ], [ 'cert_revoked' ], 'every child answers from the shared CRL')
    or diag explain $seen;
cmp_ok($pids, '>=', 2, '... both children answered');
is(login($ap, 'user1')->{status}, 200, 'an unlisted certificate logs in');
is(loads($ap, $m0), 1, 'still one parse');

my $m = $ap->mark;
put_crl('ca2-released.crl');
my $end = time + 5;
while (time < $end && (login($ap, 'rev-certificateHold')->{status} // 0) != 200) {
    sleep 0.2;
}
($seen, $pids) = spread($ap, 'rev-certificateHold');
is_deeply([ keys %$seen ], [ 200 ], 'the replaced file is used by every child')
    or diag explain $seen;
cmp_ok($pids, '>=', 2, '... both children answered');
sleep 1.2;
for (1 .. 6) { login($ap, 'user1') }            # every child checks the file
is(loads($ap, $m), 1, '... after one parse');
my $h = get_json($ap->url('/health'));
is($h->{status}, 200, 'health: 200');
is($h->{json}{crls}[0]{crl_number}, 3, 'health: CRL 3 from the zone');
is($h->{json}{crls}[0]{last_load}, 'ok', 'health: last load ok');

# an older file: refused once (by one process), the zone's CRL stays
$m = $ap->mark;
put_crl('ca2.crl');
$end = time + 5;
while (time < $end && $ap->log_since(undef, $m) !~ /refused: crl_stale/) {
    login($ap, 'user1');
    sleep 0.2;
}
sleep 1.2;
for (1 .. 6) { login($ap, 'user1') }
my @ref = $ap->log_since(undef, $m) =~ /CRL "[^"]*" refused: crl_stale \(older than the CRL loaded\)/g;
is(scalar @ref, 1, 'an older file: refused once for all children');
is(login($ap, 'rev-certificateHold')->{status}, 200, '... CRL 3 stays in force');
$h = get_json($ap->url('/health'));
is($h->{status}, 503, 'health: 503 after a refused load');
is($h->{json}{crls}[0]{last_load}, 'crl_stale', 'health: last load crl_stale');
put_crl('ca2-released.crl');                     # CRL 3 again, newer file
$end = time + 5;
while (time < $end && get_json($ap->url('/health'))->{status} != 200) { sleep 0.3 }
is(get_json($ap->url('/health'))->{status}, 200, 'a valid file again: health 200');

# restarts: the new children find the CRL in the zone, no new parse
for my $sig (qw(USR1 HUP)) {
    my $what = $sig eq 'USR1' ? 'graceful restart' : 'restart';
    $m = $ap->mark;
    my @old = $ap->children;
    kill $sig, $ap->pid;
    ok($ap->new_children(@old), "$what: new children");
    sleep 1.5;
    for (1 .. 6) { login($ap, 'user1') }
    is(loads($ap, $m), 0, "$what: the CRL in the zone is kept (no new parse)");
    is(login($ap, 'rev-certificateHold')->{status}, 200, '... and still answers');
    is(login($ap, 'rev-keyCompromise')->{json}{error}, 'cert_revoked', '... revocations too');
    is(get_json($ap->url('/health'))->{json}{crls}[0]{crl_number}, 3, '... health: CRL 3');
}

# a new size: a new zone, the CRL parsed again (once)
{
    my $cf = "$ap->{dir}/httpd.conf";
    my $t = slurp($cf);
    $t =~ s/JPKICRLZone 1M/JPKICRLZone 2M/ or die 'no JPKICRLZone in the conf';
    spew($cf, $t);
    $m = $ap->mark;
    my @old = $ap->children;
    kill 'USR1', $ap->pid;
    ok($ap->new_children(@old), 'resized zone: new children');
    sleep 1.5;
    for (1 .. 6) { login($ap, 'user1') }
    is(loads($ap, $m), 1, 'resized zone: the CRL parsed again, once');
    like($ap->log_since(undef, $m), qr/CRL zone \S+ resized/, '... logged');
    is(login($ap, 'rev-keyCompromise')->{json}{error}, 'cert_revoked', '... and answers');
}
$ap->stop;

# ---------------------------------------------------------------- too small
# a zone too small for the CRL: nothing loaded, CRL checks fail closed
my $big = "$dir/big.crl";
system("$JPKITest::BUILD/crlgen $pki/ca2.pem $pki/ca2.key 5000 9 $big >/dev/null 2>&1") == 0
    or BAIL_OUT('crlgen failed (make build/crlgen)');
copy($big, $crl) or die;
chmod 0644, $crl;
my $small = JPKIApache::Server->start(name => 'small', children => 2, main => conf('32k'));
sleep 1.2;
my @too = $small->log_since(undef, 0) =~ /(CRL zone \S+ too small: CRL "[^"]*" of issuer "card" needs \d+ bytes[^\n]*fail closed)/g;
is(scalar @too, 1, 'a zone too small: logged once, clearly') or diag $small->log_since(undef, 0);
my $r = login($small, 'user1');
is($r->{status}, 503, 'no CRL in the zone: 503');
is($r->{json}{error}, 'revocation_unavailable', '... revocation_unavailable');
sleep 1.2;
$r = login($small, 'user1');
is($r->{json}{error}, 'revocation_unavailable', '... still (each child)');
$h = get_json($small->url('/health'));
is($h->{status}, 503, 'health: 503');
ok(!$h->{json}{crls}[0]{loaded}, 'health: the CRL is not loaded');
is($h->{json}{crls}[0]{error}, 'store_full', 'health: store_full');
@too = $small->log_since(undef, 0) =~ /too small/g;
is(scalar @too, 1, 'the file unchanged: not tried again');
$small->stop;

done_testing();
