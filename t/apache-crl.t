#!/usr/bin/perl
# t/apache-crl.t - CRL files in the Apache module, as t/nginx-crl.t checks
# them in nginx: a replaced file is picked up without a restart (hold, then
# released by a new CRL without the entry); an older, stale or wrongly
# signed replacement is refused and the loaded CRL stays; JPKIHealth reports
# every CRL and whether the store answers; JPKICRLGrace is checked by
# configtest.  One child process, so that every request sees its reloads.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use File::Copy qw(copy);
use JPKITest;
use JPKIApache;

skip_unless(qw(jpkictl pki openssl redis));
skip_unless_apache();

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
    my ($store, $extra) = @_;
    return <<"EOF";
JPKISecretFile $secret
JPKIIssuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=$crl
$store
JPKIRevocation crl
$extra
<Location /jpki/>
    JPKIEndpoints On
</Location>
<Location /health>
    JPKIHealth On
</Location>
EOF
}

sub login {
    my ($ap, $cert) = @_;
    my $base = $ap->url('/jpki');
    my $ch = challenge($base) // return {};
    return post_json("$base/login", login_body($ch, $cert, $cert));
}

sub health {
    my ($ap) = @_;
    my $r = get_json($ap->url('/health'));
    return ($r->{status}, $r->{json} // {});
}

sub eventually {
    my ($what, $code) = @_;
    my $end = time + 5;
    my $ok;
    while (!($ok = $code->()) && time < $end) { sleep 0.2 }
    return ok($ok, $what);
}

my $ap = JPKIApache::Server->start(name => 'crl', children => 1,
                                   main => conf('JPKIStore shm size=1M', "JPKIMapFile $map"));
is(login($ap, 'user1')->{status}, 200, 'user1 logs in (not in the CRL)');
my $r = login($ap, 'rev-certificateHold');
is($r->{status}, 403, 'the held certificate is refused');
is($r->{json}{error}, 'cert_on_hold', '... cert_on_hold');
is(login($ap, 'rev-keyCompromise')->{json}{error}, 'cert_revoked', 'keyCompromise: cert_revoked');

my ($st, $h) = health($ap);
is($st, 200, 'health: 200 while the CRL is fresh and the store answers');
is($h->{status}, 'ok', 'health: status ok');
is($h->{store}{type}, 'shm', 'health: store shm');
ok($h->{store}{ok}, 'health: the store answers');
is(scalar @{ $h->{crls} // [] }, 1, 'health: one CRL');
my $c = $h->{crls}[0] // {};
is($c->{issuer}, 'card', 'health: the issuer');
is($c->{crl_number}, 2, 'health: CRL number 2');
is($c->{entries}, 7, 'health: 7 entries');
ok($c->{fresh} && $c->{age} >= 0 && $c->{next_update} > $c->{this_update},
   'health: fresh, with its age and dates');
is($c->{stale_at}, $c->{this_update} + 72 * 3600, 'stale at thisUpdate + 72 h (default grace)');
is(http('POST', $ap->url('/health'))->{status}, 405, 'health: POST refused');

# the hold is released: a new CRL without the entry, no restart
put_crl('ca2-released.crl');
eventually('after the new CRL, the released certificate logs in', sub {
    login($ap, 'rev-certificateHold')->{status} == 200 });
is(login($ap, 'rev-keyCompromise')->{json}{error}, 'cert_revoked',
   'the final revocation is still there');
($st, $h) = health($ap);
is($h->{crls}[0]{crl_number}, 3, 'health: CRL number 3 now');

# an older CRL (number 2) is not loaded over number 3
my $m = $ap->mark;
put_crl('ca2.crl');
# (the files are checked by the requests, at most once a second)
eventually('an older CRL is refused (logged)', sub {
    health($ap); $ap->log_since(undef, $m) =~ /CRL "[^"]*" refused: crl_stale \(older than the CRL loaded\)/ });
is(login($ap, 'rev-certificateHold')->{status}, 200, '... the newer CRL stays in force');
($st, $h) = health($ap);
is($st, 503, 'health: 503 after a refused load');
is($h->{crls}[0]{last_load}, 'crl_stale', 'health: the last load failed (crl_stale)');
is($h->{crls}[0]{crl_number}, 3, 'health: CRL 3 still loaded');

# a CRL signed by another key with the same name, and a stale one
for ([ 'ca2-wrongkey.crl', qr/crl_unknown_issuer|crl_bad_signature/ ],
     [ 'ca2-stale.crl', qr/crl_stale/ ]) {
    my ($file, $why) = @$_;
    $m = $ap->mark;
    put_crl($file);
    eventually("$file is refused", sub { health($ap); $ap->log_since(undef, $m) =~ /refused: $why/ });
    is(login($ap, 'rev-keyCompromise')->{json}{error}, 'cert_revoked',
       "... the loaded CRL still answers after $file");
}
# a fresh valid one again: health back to ok
put_crl('ca2-empty.crl');
eventually('a newer valid CRL clears the alarm', sub { (health($ap))[0] == 200 });
$ap->stop;

# no CRL at all (file missing from the start): fail closed, health 503
unlink $crl;
my $none = JPKIApache::Server->start(name => 'nocrl', children => 1,
                                     main => conf('JPKIStore shm size=1M', "JPKIMapFile $map"));
$r = login($none, 'user1');
is($r->{status}, 503, 'no CRL loaded: 503');
is($r->{json}{error}, 'revocation_unavailable', '... revocation_unavailable');
($st, $h) = health($none);
is($st, 503, 'health: 503 without a CRL');
ok(!$h->{crls}[0]{loaded}, 'health: the CRL is not loaded');
$none->stop;
put_crl('ca2.crl');

# health over Redis: the store answers, then it does not
my $redis = JPKITest::Redis->start(name => 'redis');
my $ra = JPKIApache::Server->start(name => 'crl-redis', children => 1,
    main => conf('JPKIStore redis=127.0.0.1:' . $redis->port, 'JPKIRedisTimeout 1s'));
($st, $h) = health($ra);
is($st, 200, 'health with Redis: 200');
ok($h->{store}{ok} && $h->{store}{type} eq 'redis', 'health: redis answers');
$redis->stop;
($st, $h) = health($ra);
is($st, 503, 'health with Redis down: 503');
ok(!$h->{store}{ok}, 'health: the store does not answer');
$ra->stop;

my ($t_st, $t_out) = JPKIApache::Server->configtest(name => 'grace-bad',
    main => conf('JPKIStore shm', 'JPKICRLGrace forever'));
isnt($t_st, 0, 'configtest refuses JPKICRLGrace forever');
like($t_out, qr/JPKICRLGrace must be "auto" or a time/, '... with a clear message');
($t_st, $t_out) = JPKIApache::Server->configtest(name => 'grace-ok',
    main => conf('JPKIStore shm', 'JPKICRLGrace 2h'));
is($t_st, 0, 'configtest accepts JPKICRLGrace 2h') or diag($t_out);
($t_st, $t_out) = JPKIApache::Server->configtest(name => 'health-nosite',
    main => "<Location /health>\nJPKIHealth On\n</Location>\n");
isnt($t_st, 0, 'configtest refuses JPKIHealth without the site');
like($t_out, qr/JPKIHealth in <Location \/health>/, '... with a clear message');

done_testing();
