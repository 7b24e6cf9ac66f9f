#!/usr/bin/perl
# t/nginx-crl-zone.t - jpki_crl_zone: a CRL file is parsed once, by one
# worker, into shared memory, and every worker answers from that copy; a
# replaced file is picked up the same way; a reload keeps the loaded CRL
# without parsing it again; a zone too small for the CRL fails closed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use File::Copy qw(copy);
use JPKITest;
use JPKICRLFiles qw(fixture);

skip_unless(qw(nginx module jpkictl pki openssl));

my $dir = tmpdir();
my $pki = $JPKITest::PKI;
my $f = fixture($dir);
my ($secret, $crl, $map, $put_crl) = @$f{qw(secret crl map put)};

sub conf {
    my ($zone) = @_;
    return <<"EOF";
    jpki_secret_file $secret;
    jpki_issuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=$crl;
    jpki_store shm zone=jpki:1m;
    jpki_crl_zone $zone;
    jpki_map_file $map;
    jpki_revocation crl;
    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/ { jpki_endpoints; jpki_throttle off; }
        location = /health { jpki_health; }
    }
EOF
}


sub loads { my ($ng, $m) = @_; my @l = $ng->log_since($m) =~ /loaded: \d+ entries \(shared zone\)/g; scalar @l }

my $m0 = 0;
my $ng = JPKITest::Nginx->start(name => 'zone', workers => 2, http => conf('crl:1m'));
# the first parse (a worker's thread), then both workers past their first
# timer: still one parse
my $t_end = time + 10;
sleep 0.1 while loads($ng, $m0) < 1 && time < $t_end;
sleep 1.5;
is(loads($ng, $m0), 1, 'two workers, one parse of the CRL into the zone');
# many requests: whichever worker answers, the zone's CRL is used
my %seen;
for (1 .. 8) {
    my $r = login_to($ng, 'rev-keyCompromise');
    $seen{ $r->{json}{error} // $r->{status} }++;
}
is_deeply(\%seen, { cert_revoked => 8 }, 'every worker answers from the shared CRL');
is(login_to($ng, 'user1')->{status}, 200, 'an unlisted certificate logs in');

my $m = $ng->mark;
$put_crl->('ca2-released.crl');
my $end = time + 5;
my $ok;
while (time < $end) {
    $ok = 1;
    for (1 .. 4) { $ok = 0 if (login_to($ng, 'rev-certificateHold')->{status} // 0) != 200 }
    last if $ok;
    sleep 0.3;
}
ok($ok, 'the replaced file is used by every worker');
sleep 1.2;
is(loads($ng, $m), 1, '... after one parse');
my $h = get_json($ng->url('/health'))->{json} // {};
is($h->{crls}[0]{crl_number}, 3, 'health: CRL 3 from the zone');

# reload: the new workers find the CRL in the zone and do not parse it again
$m = $ng->mark;
kill 'HUP', $ng->{pid};
sleep 2;
is(loads($ng, $m), 0, 'after a reload the CRL in the zone is kept (no new parse)');
is(login_to($ng, 'rev-certificateHold')->{status}, 200, '... and still answers');
is(login_to($ng, 'rev-keyCompromise')->{json}{error}, 'cert_revoked', '... revocations too');
$ng->stop;

# a national-size CRL (1,000,000 entries) is parsed in a thread: the single
# worker keeps answering meanwhile
{
    $put_crl->('ca2.crl');
    my $one = JPKITest::Nginx->start(name => 'big', workers => 1,
        http => conf('crl:128m'));
    sleep 1.2;
    my $huge = "$dir/huge.crl";
    system("$JPKITest::BUILD/crlgen $pki/ca2.pem $pki/ca2.key 1000000 20 $huge >/dev/null 2>&1") == 0
        or BAIL_OUT('crlgen failed (make build/crlgen)');
    my $m1 = $one->mark;
    my $t = time + 50;
    utime $t, $t, $huge;
    chmod 0644, $huge;
    rename $huge, $crl or die;
    my ($worst, $n, $loaded) = $one->answers_until('/health', 15, 0.05, sub {
        (($_[0]{json} // {})->{crls}[0]{crl_number} // 0) == 20 });
    ok($loaded, 'the 1,000,000-entry CRL is loaded (CRL 20)');
    ok($n >= 3, "the worker answered $n times while it was parsed");
    ok($worst < 0.5, sprintf('... each within %.3f s (< 0.5 s): the parse did not stall it', $worst));
    like($one->log_since($m1), qr/loaded: 1000000 entries \(shared zone\)/, 'logged');
    $one->stop;
}

# a zone too small for the CRL: nothing loaded, CRL checks fail closed
my $big = "$dir/big.crl";
system("$JPKITest::BUILD/crlgen $pki/ca2.pem $pki/ca2.key 5000 9 $big >/dev/null 2>&1") == 0
    or BAIL_OUT('crlgen failed (make build/crlgen)');
copy($big, $crl) or die;
chmod 0644, $crl;
my $small = JPKITest::Nginx->start(name => 'small', workers => 1, http => conf('crl:32k'));
$t_end = time + 10;
sleep 0.1 while $small->log_since(0) !~ /CRL zone "crl" too small/ && time < $t_end;
like($small->log_since(0), qr/CRL zone "crl" too small/, 'a zone too small: logged');
my $r = login_to($small, 'user1');
is($r->{status}, 503, 'no CRL in the zone: 503');
is($r->{json}{error}, 'revocation_unavailable', '... revocation_unavailable');
$small->stop;

done_testing();
