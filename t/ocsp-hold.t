#!/usr/bin/perl
# t/ocsp-hold.t - a hold answered by OCSP is cached only briefly (site policy
# jpki_ocsp_cache_hold / JPKIOCSPCacheHold), so a release at the responder is
# noticed: on nginx and on Apache, the held certificate is refused, then
# logs in once the responder says good.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use File::Copy qw(copy);
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl));
my @kinds = JPKIServer::kinds();

my $dir = tmpdir();
my $pki = $JPKITest::PKI;
my $secret = write_secret("$dir/site.secret");
my $index = "$dir/index.txt";
copy("$pki/ca2-index.txt", $index) or die;
copy("$pki/ca2-index.txt.attr", "$index.attr") or die;
chmod 0644, $index, "$index.attr";
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp', index => $index);
my $map = "$dir/map.txt";
spew($map, join('', map { cert_id($_, $secret) . " acct-$_\n" }
                    qw(user1 rev-certificateHold)), 0644);

# the site (t/lib/JPKIServer.pm) on each server: a "hold" answer cached 1 s
my %srv = map { ($_ => JPKIServer->start($_, name => 'hold',
    secret => $secret, issuer => 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem ocsp=' . $ocsp->url,
    store => 'shm', map => $map, ocsp_cache_hold => '1s',
    locations => [ '/jpki/' => { endpoints => 1 } ])) } @kinds;


for my $name (sort keys %srv) {
    my $r = login_to($srv{$name}, 'rev-certificateHold');
    is($r->{status}, 403, "$name: held certificate refused (OCSP)");
    is($r->{json}{error}, 'cert_on_hold', "$name: ... cert_on_hold");
}

# the hold is released at the responder: the index line goes back to valid
my ($serial) = `openssl x509 -in $pki/rev-certificateHold.pem -serial -noout` =~ /=([0-9A-F]+)/;
my $text = slurp($index);
my $n = ($text =~ s/^R(\t[^\t]*)\t[^\t]*(\t$serial\t)/V$1\t$2/m);
is($n, 1, 'the hold is released in the responder\'s index');
spew("$index.new", $text, 0644);
rename "$index.new", $index or die;
my $later = time + 5;
utime $later, $later, $index;

for my $name (sort keys %srv) {
    my $st = 0;
    my $end = time + 8;
    while (time < $end) {
        $st = login_to($srv{$name}, 'rev-certificateHold')->{status} // 0;
        last if $st == 200;
        sleep 0.3;
    }
    is($st, 200, "$name: after the release (and the short hold cache), the certificate logs in");
}
is(login_to($srv{ $kinds[0] }, 'user1')->{status}, 200, 'a good certificate is unaffected');

$srv{$_}->stop for @kinds;
$ocsp->stop;
done_testing();
