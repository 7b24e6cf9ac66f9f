#!/usr/bin/perl
# t/redis-sentinel-auth.t - sentinels with requirepass, on nginx and Apache
# alike and in jpkictl: the store's sentinel_password_file= (jpkictl
# --redis-sentinel-password-file) sends AUTH before the query and finds
# the primary; without it the sentinel refuses the query (NOAUTH), with a
# wrong one it refuses the password: 503, and the log says which, never
# the password itself.
#   make all pki && prove -v t/redis-sentinel-auth.t
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

my $f = site_fixture();
my $primary = JPKITest::Redis->start(name => 'primary');
$primary->cmd('SET', 'jpki:v1:map:' . cert_id('user1', $f->{secret}), 'alice');
my $spw = 'sentinel-secret-pw';
my $sentinel = JPKITest::Sentinel->start(name => 'sentinel', master => 'gate',
                                         primary => $primary->port, requirepass => $spw);
my $good = password_file($spw);
my $bad = password_file('not-the-password');
my $at = 'sentinel=127.0.0.1:' . $sentinel->port . ' master=gate';

for my $kind (@kinds) {
    my %site = (secret => $f->{secret}, issuer => $f->{issuer}, revocation => 'ocsp',
                redis_timeout => '1s',
                locations => [ '/jpki/' => { endpoints => 1, throttle => 'off' } ]);
    my $srv = JPKIServer->start($kind, name => "sauth-$kind", %site,
                                store => "$at sentinel_password_file=$good");
    is($srv->login('user1')->{status}, 200, "$kind: sentinel_password_file=: the primary found, a login");
    like($srv->log_since(0), qr/redis primary of "gate" is 127\.0\.0\.1:${\ $primary->port}/,
         "$kind: ... the primary named in the log");
    $srv->stop;

    $srv = JPKIServer->start($kind, name => "snoauth-$kind", %site, store => $at);
    my $m = $srv->mark;
    my $r = $srv->login('user1');
    is($r->{status}, 503, "$kind: no sentinel password: 503");
    like($srv->log_since($m), qr/redis sentinel 127\.0\.0\.1:\d+ refused the query: NOAUTH/,
         "$kind: ... the log says the sentinel wants one");
    $srv->stop;

    $srv = JPKIServer->start($kind, name => "sbad-$kind", %site,
                             store => "$at sentinel_password_file=$bad");
    $m = $srv->mark;
    $r = $srv->login('user1');
    is($r->{status}, 503, "$kind: a wrong sentinel password: 503");
    my $log = $srv->log_since($m);
    like($log, qr/redis sentinel 127\.0\.0\.1:\d+ refused the password: WRONGPASS.*\(sentinel_password_file=\)/,
         "$kind: ... the log says the password was refused");
    unlike($log, qr/not-the-password|\Q$spw\E/, "$kind: ... and shows no password");
    $srv->stop;
}

# a redis= store does not take it
my ($st, $out) = JPKIServer->configtest('nginx', secret => $f->{secret}, issuer => $f->{issuer},
    store => 'redis=127.0.0.1:' . $primary->port . " sentinel_password_file=$good");
isnt($st, 0, 'nginx: sentinel_password_file= with redis=: refused at startup');
like($out, qr/sentinel_password_file= goes with sentinel=/, '... says why');

# jpkictl
my @ctl = ('--redis-sentinel', '127.0.0.1:' . $sentinel->port, '--redis-master', 'gate');
my $o = `$JPKITest::JPKICTL map list @ctl --redis-sentinel-password-file $good 2>&1`;
is($? >> 8, 0, 'jpkictl: --redis-sentinel-password-file: through the sentinel') or diag $o;
like($o, qr/^[0-9a-f]{32} alice$/m, '... the mapping listed');
$o = `$JPKITest::JPKICTL map list @ctl 2>&1`;
isnt($? >> 8, 0, 'jpkictl: without it: refused');
like($o, qr/refused the query: NOAUTH/, '... says why');
$o = `$JPKITest::JPKICTL map list --redis 127.0.0.1:1 --redis-sentinel-password-file $good 2>&1`;
isnt($? >> 8, 0, 'jpkictl: the option without --redis-sentinel: refused');
like($o, qr/--redis-sentinel-password-file goes with --redis-sentinel/, '... says why');

done_testing();
