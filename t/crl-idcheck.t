#!/usr/bin/perl
# t/crl-idcheck.t - a CRL loaded into Redis by `jpkictl crl sync` with
# another site secret than the gate's: its list is found (the list key
# depends on the CA files only) but its entries, keyed by cert_id (an HMAC
# under the secret), never match, so "not listed" would let every revoked
# certificate in.  The gate compares the list's id_check with its own and
# treats such a list as unavailable (failure policy: 503 when closed, a
# soft pass when open), on nginx and Apache, and says what to do in the log.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl redis));
my @kinds = JPKIServer::kinds();

my $dir = tmpdir();
my $pki = $JPKITest::PKI;
my $J = $JPKICTL;
my $secret = write_secret("$dir/site.secret");
my $other = write_secret("$dir/other.secret");
my $redis = JPKITest::Redis->start(name => 'redis');
my $R = '--redis 127.0.0.1:' . $redis->port;
my $cas = "card=$pki/ca1.pem,$pki/ca2.pem";
for my $c (qw(user1 rev-keyCompromise)) {
    $redis->cmd('SET', 'jpki:v1:map:' . cert_id($c, $secret), "acct-$c");
}

sub sync {
    my ($sec) = @_;
    my $out = `$J crl sync --source $pki/ca2.crl --issuer $cas --secret-file $sec $R 2>&1`;
    return ($? >> 8, $out);
}

my ($rc, $out) = sync($other);
is($rc, 0, 'crl sync of ca2.crl with another secret file than the gate\'s')
    or diag($out);
my ($tag_key) = grep { !/\.arl$/ } $redis->keys_like('jpki:v1:crlmeta:*');
(my $info_key = $tag_key // '') =~ s/crlmeta/crlinfo/;
my $idc_other = $redis->cmd('HGET', $info_key, 'id_check') // '';
like($idc_other, qr/^[0-9a-f]{32}$/, 'the list records its id_check');

# the default pointer cache time (10 s): a list refused is not cached, so
# the list synced again with the right secret applies at once
# an nginx site checking revocation by the CRL in Redis, EXTRA directives
# the site (t/lib/JPKIServer.pm) on each server: revocation by the CRL in
# the store, failure closed at /jpki/, open at /open/jpki/
my %srv = map { ($_ => JPKIServer->start($_, name => 'crl',
    secret => $secret, issuer => 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem',
    store => 'redis=127.0.0.1:' . $redis->port, revocation => 'crl',
    locations => [ '/jpki/' => { endpoints => 1 },
                   '/open/jpki/' => { endpoints => 1, failure => 'open' } ])) } @kinds;

my $clear = qr/CRL of issuer "card" in the store is not usable: its id_check (?:does not match|is missing), so it was loaded with another site secret or other CA files.*Re-run `jpkictl crl sync` with the gate's --secret-file and --issuer files/;

for my $name (@kinds) {
    my $s = $srv{$name};
    my $m = $s->mark;
    my $r = login_to($s, 'rev-keyCompromise');
    is($r->{status}, 503, "$name: revoked certificate, CRL of another secret: 503 (not 200)");
    is($r->{json}{error}, 'revocation_unavailable', "$name: ... revocation_unavailable");
    is(login_to($s, 'user1')->{status}, 503, "$name: user1 too: the list is unavailable");
    my $log = $s->log_since($m);
    like($log, $clear, "$name: the log says the CRL was loaded with another secret and what to do");
    unlike($log, qr/\Q$idc_other\E/, "$name: ... without the id_check value");
}
for my $name (@kinds) {
    my $s = $srv{$name};
    my $m = $s->mark;
    my $r = login_to($s, 'rev-keyCompromise', prefix => '/open');
    is($r->{status}, 200, "$name: failure open: a soft pass (revocation data unavailable)");
    my @a = grep { ($_->{event} // '') eq 'login' } $s->audits($m);
    ok(@a && $a[-1]{soft_pass}, "$name: ... audited as a soft pass") or diag(explain(\@a));
    like($s->log_since($m), $clear, "$name: ... and the log says why");
}

# the id_check removed (a list loaded by hand, or by an older jpkictl)
$redis->cmd('HDEL', $info_key, 'id_check');
for my $name (@kinds) {
    my $s = $srv{$name};
    my $m = $s->mark;
    is(login_to($s, 'rev-keyCompromise')->{status}, 503,
       "$name: a list without id_check: 503");
    like($s->log_since($m), qr/its id_check is missing/, "$name: ... the log says it is missing");
}

($rc, $out) = sync($secret);
is($rc, 0, 'crl sync again with the gate\'s secret file') or diag($out);
isnt($redis->cmd('HGET', $info_key, 'id_check') // '', $idc_other,
     'the list now carries the gate\'s id_check');
for my $name (@kinds) {
    my $s = $srv{$name};
    my $m = $s->mark;
    my $r = login_to($s, 'rev-keyCompromise');
    is($r->{status}, 403, "$name: the same login is refused as revoked");
    is($r->{json}{error}, 'cert_revoked', "$name: ... cert_revoked");
    is(login_to($s, 'user1')->{status}, 200, "$name: a good certificate logs in");
    unlike($s->log_since($m), qr/id_check/, "$name: no id_check complaint");
}

$srv{$_}->stop for @kinds;
$redis->stop;
done_testing();
