#!/usr/bin/perl
# t/nginx-crl.t - CRL files in the nginx module: a replaced file is picked up
# without a reload (hold, then released by a new CRL without the entry); an
# older, stale or wrongly signed replacement is refused and the loaded CRL
# stays; the health endpoint reports every CRL and whether the store answers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use JPKITest;

skip_unless(qw(nginx module jpkictl pki openssl redis));

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
    put_file("$pki/$name", $crl, time + 10 * ++$gen);
}
put_crl('ca2.crl');

sub conf {
    my ($store, $extra) = @_;
    return <<"EOF";
    jpki_secret_file $secret;
    jpki_issuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=$crl;
    $store
    jpki_revocation crl;
    $extra
    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/ { jpki_endpoints; }
        location = /health { jpki_health; }
    }
EOF
}


sub health {
    my ($ng) = @_;
    my $r = get_json($ng->url('/health'));
    return ($r->{status}, $r->{json} // {});
}

# wait until a worker answers as expected (each worker reloads on its own
# second timer)
sub eventually {
    my ($what, $code) = @_;
    my $end = time + 5;
    my $ok;
    while (!($ok = $code->()) && time < $end) { sleep 0.2 }
    return ok($ok, $what);
}

my $ng = JPKITest::Nginx->start(name => 'crl', workers => 1,
                                http => conf('jpki_store shm zone=jpki:1m;', "jpki_map_file $map;"));
is(login_to($ng, 'user1')->{status}, 200, 'user1 logs in (not in the CRL)');
my $r = login_to($ng, 'rev-certificateHold');
is($r->{status}, 403, 'the held certificate is refused');
is($r->{json}{error}, 'cert_on_hold', '... cert_on_hold');
is(login_to($ng, 'rev-keyCompromise')->{json}{error}, 'cert_revoked', 'keyCompromise: cert_revoked');

my ($st, $h) = health($ng);
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

# the hold is released: a new CRL without the entry, no reload
put_crl('ca2-released.crl');
eventually('after the new CRL, the released certificate logs in', sub {
    login_to($ng, 'rev-certificateHold')->{status} == 200 });
is(login_to($ng, 'rev-keyCompromise')->{json}{error}, 'cert_revoked',
   'the final revocation is still there');
($st, $h) = health($ng);
is($h->{crls}[0]{crl_number}, 3, 'health: CRL number 3 now');

# an older CRL (number 2) is not loaded over number 3
my $m = $ng->mark;
put_crl('ca2.crl');
eventually('an older CRL is refused (logged)', sub {
    $ng->log_since($m) =~ /CRL "[^"]*" refused: crl_stale \(older than the CRL loaded\)/ });
is(login_to($ng, 'rev-certificateHold')->{status}, 200, '... the newer CRL stays in force');
($st, $h) = health($ng);
is($st, 503, 'health: 503 after a refused load');
is($h->{crls}[0]{last_load}, 'crl_stale', 'health: the last load failed (crl_stale)');
is($h->{crls}[0]{crl_number}, 3, 'health: CRL 3 still loaded');

# a CRL signed by another key with the same name, and a stale one
for ([ 'ca2-wrongkey.crl', qr/crl_unknown_issuer|crl_bad_signature/ ],
     [ 'ca2-stale.crl', qr/crl_stale/ ]) {
    my ($file, $why) = @$_;
    $m = $ng->mark;
    put_crl($file);
    eventually("$file is refused", sub { $ng->log_since($m) =~ /refused: $why/ });
    is(login_to($ng, 'rev-keyCompromise')->{json}{error}, 'cert_revoked',
       "... the loaded CRL still answers after $file");
}
# a fresh valid one again: health back to ok
put_crl('ca2-empty.crl');
eventually('a newer valid CRL clears the alarm', sub { (health($ng))[0] == 200 });
$ng->stop;

# no CRL at all (file unreadable from the start): fail closed, health 503
unlink $crl;
my $none = JPKITest::Nginx->start(name => 'nocrl', workers => 1,
                                  http => conf('jpki_store shm zone=jpki:1m;', "jpki_map_file $map;"));
$r = login_to($none, 'user1');
is($r->{status}, 503, 'no CRL loaded: 503');
is($r->{json}{error}, 'revocation_unavailable', '... revocation_unavailable');
($st, $h) = health($none);
is($st, 503, 'health: 503 without a CRL');
ok(!$h->{crls}[0]{loaded}, 'health: the CRL is not loaded');
$none->stop;
put_crl('ca2.crl');

# health over Redis: the store answers, then it does not
my $redis = JPKITest::Redis->start(name => 'redis');
my $rn = JPKITest::Nginx->start(name => 'crl-redis', workers => 1,
    http => conf('jpki_store redis=127.0.0.1:' . $redis->port . ';', 'jpki_redis_timeout 1s;'));
($st, $h) = health($rn);
is($st, 200, 'health with Redis: 200');
ok($h->{store}{ok} && $h->{store}{type} eq 'redis', 'health: redis answers');
$redis->stop;
($st, $h) = health($rn);
is($st, 503, 'health with Redis down: 503');
ok(!$h->{store}{ok}, 'health: the store does not answer');
$rn->stop;

my ($t_st, $t_out) = JPKITest::Nginx->test_config(name => 'grace-bad',
    http => conf('jpki_store shm zone=jpki:1m;', 'jpki_crl_grace forever;'));
isnt($t_st, 0, 'nginx -t refuses jpki_crl_grace forever');
like($t_out, qr/jpki_crl_grace.*must be "auto" or a time/, '... with a clear message');

done_testing();
