#!/usr/bin/perl
# t/metrics.t - the metrics (Prometheus text) and the health's reasons, on
# nginx and Apache alike (docs/operations.md):
#   - the text parsed by the real parser of prometheus_client (a parse
#     error fails); logins ok and refused (several reasons), gated
#     requests, a throttled login, OCSP queries and cache hits move their
#     counters by exactly what was done; many requests over two workers
#     (nginx) or two children (Apache) add up in every scrape (the counters
#     are shared); histograms cumulative, +Inf equal to _count;
#   - who may scrape: no token, a wrong token (401), outside the allow-list
#     (403), a POST (405); a location with neither a list nor a token file
#     refused at startup;
#   - health degraded with its reason, then ok again: the OCSP responder
#     killed (ocsp_failing), Redis stopped (store_down), a CRL file missing
#     or stale (crl_missing, crl_stale), a CRL missing or stale in Redis.
#   make all pki && prove -v t/metrics.t     (needs python3-prometheus-client)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use JPKITest;
use JPKIApache;
use JPKIServer;
use JPKICRLFiles ();

skip_unless(qw(jpkictl pki openssl redis));
my $PY = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';
plan skip_all => 'python3-prometheus-client is not installed (.ci/deps)'
    if system($PY, '-c', 'import prometheus_client.parser') != 0;
my @kinds = JPKIServer::kinds();

my $f = site_fixture();
my $dir = $f->{dir};
my $secret = $f->{secret};
spew($f->{map}, join('', map { cert_id($_->[0], $secret) . " $_->[1]\n" }
                         [ user1 => 'alice' ], [ 'user-ec' => 'bob' ],
                         [ 'rev-keyCompromise' => 'carol' ]),
     0644);
my $TOKEN = 'm' x 24 . JPKITest::rand_hex(16);
spew("$dir/metrics.token", "$TOKEN\n", 0600);
my $ocsp_port = $f->{ocsp}->port;

# The parser: every sample as "name{k="v",...}" (labels sorted) => value,
# and each family's type.
my $parser = "$dir/parse.py";
spew($parser, <<'PY');
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples, types = {}, {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    types[fam.name] = fam.type
    for s in fam.samples:
        key = s.name + '{' + ','.join('%s="%s"' % kv for kv in sorted(s.labels.items())) + '}'
        if key in samples:
            raise SystemExit('duplicate sample ' + key)
        samples[key] = s.value
print(json.dumps({'samples': samples, 'types': types}))
PY

sub metrics_lines {
    my ($kind, $allow, $token) = @_;
    my @l = $kind eq 'nginx' ? ('jpki_metrics;') : ('JPKIMetrics On');
    push @l, JPKIServer::directive($kind, 'admin_allow', $allow) if $allow;
    push @l, $kind eq 'nginx' ? "jpki_admin_token_file $token;" : "JPKIAdminTokenFile $token"
        if $token;
    return join "\n", @l;
}

# The text of a scrape, parsed: { samples, types, status, ctype }.
sub scrape {
    my ($srv, %o) = @_;
    my %h;
    $h{Authorization} = "Bearer " . ($o{token} // $TOKEN) unless $o{no_token};
    my $r = http($o{method} // 'GET', $srv->url($o{path} // '/metrics'), headers => \%h);
    my $out = { status => $r->{status}, ctype => $r->{headers}{'content-type'} // '',
                json => $r->{json}, text => $r->{content} };
    return $out unless $r->{status} == 200;
    spew("$dir/scrape.txt", $r->{content});
    my $j = `$PY $parser < $dir/scrape.txt 2>&1`;
    my $p = $? == 0 ? JPKITest::json_decode($j) : undef;
    ok($p, "the text parses (prometheus_client)") or diag "$j\n$r->{content}";
    return { %$out, %{ $p // { samples => {}, types => {} } } };
}

# The value of NAME{LABELS} in a scrape (0 when absent).
sub val {
    my ($m, $name, %l) = @_;
    my $k = $name . '{' . join(',', map { qq($_="$l{$_}") } sort keys %l) . '}';
    return $m->{samples}{$k} // 0;
}

sub delta { my ($a, $b, @k) = @_; return val($b, @k) - val($a, @k) }

sub health { my ($srv) = @_; my $r = get_json($srv->url('/health')); return ($r->{status}, $r->{json} // {}) }
sub reasons { JPKICRLFiles::reasons(@_) }

sub eventually {
    my ($secs, $code) = @_;
    my $end = time + $secs;
    my $ok;
    while (!($ok = $code->()) && time < $end) { sleep 0.1 }
    return $ok;
}

# ---------------------------------------------------------------- startup

for my $kind (@kinds) {
    my ($st, $out) = JPKIServer->configtest($kind, name => 'metrics-open',
        secret => $secret, issuer => $f->{issuer}, store => 'shm',
        locations => [ '/metrics' => { $kind => metrics_lines($kind) } ]);
    my $allow = JPKIServer::directive_name($kind, 'admin_allow');
    ok($st != 0 && $out =~ /\Q$allow\E or .*token_file|needs \Q$allow\E or \w+TokenFile/i,
       "$kind: a metrics location with neither an allow-list nor a token file: refused at startup")
        or diag $out;
    ($st, $out) = JPKIServer->configtest($kind, name => 'metrics-list',
        secret => $secret, issuer => $f->{issuer}, store => 'shm',
        locations => [ '/metrics' => { $kind => metrics_lines($kind, '127.0.0.1') } ]);
    is($st, 0, "$kind: ... with an allow-list only: accepted") or diag $out;
}

# ---------------------------------------------------------------- counting

my $redis = JPKITest::Redis->start(name => 'redis');
my $rport = $redis->port;

for my $kind (@kinds) {
    $redis->cmd('FLUSHALL');
    my $srv = JPKIServer->start($kind, name => 'metrics', workers => 2,
        secret => $secret, issuer => $f->{issuer}, map => $f->{map},
        store => "redis=127.0.0.1:$rport", revocation => 'ocsp', redis_timeout => '1s',
        locations => [
            '/jpki/' => { endpoints => 1, throttle => 'off' },
            '/t/jpki/' => { endpoints => 1, throttle => 'logins=1 window=120' },
            '/app/' => { gate => 1, upstream => 1 },
            '/health' => { health => 1, exact => 1 },
            '/metrics' => { exact => 1, $kind => metrics_lines($kind, '127.0.0.0/8 ::1',
                                                              "$dir/metrics.token") },
            '/metrics-far' => { exact => 1, $kind => metrics_lines($kind, '192.0.2.0/24',
                                                                  "$dir/metrics.token") },
            '/metrics-ip' => { exact => 1, $kind => metrics_lines($kind, '127.0.0.1') },
        ]);

    # who may scrape
    my $m = scrape($srv, no_token => 1);
    is($m->{status}, 401, "$kind: no token: 401");
    is($m->{json}{error} // '', 'unauthenticated', "$kind: ... JSON unauthenticated");
    is(scrape($srv, token => 'x' x 40)->{status}, 401, "$kind: a wrong token: 401");
    $m = scrape($srv, path => '/metrics-far');
    is($m->{status}, 403, "$kind: outside the allow-list, with the token: 403");
    is($m->{json}{error} // '', 'forbidden', "$kind: ... JSON forbidden");
    is(scrape($srv, method => 'POST')->{status}, 405, "$kind: a POST: 405");
    is(scrape($srv, path => '/metrics-ip', no_token => 1)->{status}, 200,
       "$kind: an allow-list without a token file: the address is enough");

    my $m0 = scrape($srv);
    is($m0->{status}, 200, "$kind: a scrape: 200");
    like($m0->{ctype}, qr{^text/plain; version=0\.0\.4}, "$kind: ... Prometheus text 0.0.4");
    is($m0->{types}{jpki_logins}, 'counter', "$kind: jpki_logins_total is a counter");
    is($m0->{types}{jpki_store_round_duration_seconds}, 'histogram', "$kind: store time: a histogram");

    # logins, ok and refused; a throttled one; OCSP queries and a cache hit
    my @seq = ([ 'user1', 200 ], [ 'user1', 200 ], [ 'rev-keyCompromise', 403 ],
               [ 'user-expired', 401 ], [ 'user2', 403 ]);
    for (@seq) {
        my $r = login_to($srv, $_->[0]);
        is($r->{status}, $_->[1], "$kind: login $_->[0]: $_->[1]");
    }
    is(login_to($srv, 'user1', key => 'user2')->{status}, 401, "$kind: a signature of another key: 401");
    my $r = login_to($srv, 'user-ec', prefix => '/t');
    is($r->{status}, 200, "$kind: user-ec at the throttled location: 200");
    my $cookie = cookie_of($r);
    is(login_to($srv, 'user-ec', prefix => '/t')->{status}, 429, "$kind: ... again: 429");
    is($srv->get('/app/x', cookie => $cookie)->{status}, 200, "$kind: a gated request: 200");
    is($srv->get('/app/x', headers => { Accept => 'application/json' })->{status}, 401,
       "$kind: a gated request without a session: 401");

    my $m1 = scrape($srv);
    my %L = (method => 'signature');
    is(delta($m0, $m1, 'jpki_logins_total', %L, result => 'ok', reason => 'ok'), 3, "$kind: 3 logins ok");
    is(delta($m0, $m1, 'jpki_logins_total', %L, result => 'denied', reason => 'cert_revoked'), 1,
       "$kind: 1 refused cert_revoked");
    is(delta($m0, $m1, 'jpki_logins_total', %L, result => 'denied', reason => 'cert_expired'), 1,
       "$kind: 1 refused cert_expired");
    is(delta($m0, $m1, 'jpki_logins_total', %L, result => 'denied', reason => 'account_not_mapped'), 1,
       "$kind: 1 refused account_not_mapped");
    is(delta($m0, $m1, 'jpki_logins_total', %L, result => 'denied', reason => 'signature_invalid'), 1,
       "$kind: 1 refused signature_invalid");
    is(delta($m0, $m1, 'jpki_logins_total', %L, result => 'denied', reason => 'too_many_attempts'), 1,
       "$kind: 1 refused too_many_attempts");
    is(delta($m0, $m1, 'jpki_throttled_total', endpoint => 'login'), 1, "$kind: jpki_throttled_total: 1");
    is(delta($m0, $m1, 'jpki_gated_requests_total', result => 'ok', reason => 'ok'), 1, "$kind: 1 gated request passed");
    is(delta($m0, $m1, 'jpki_gated_requests_total', result => 'denied', reason => 'unauthenticated'), 1,
       "$kind: 1 gated request refused unauthenticated");
    is(delta($m0, $m1, 'jpki_ocsp_queries_total', issuer => 'card', outcome => 'ok'), 3,
       "$kind: 3 OCSP queries answered");
    is(delta($m0, $m1, 'jpki_revocation_checks_total', issuer => 'card', source => 'cache'), 1,
       "$kind: 1 cached OCSP answer used");
    is(delta($m0, $m1, 'jpki_ocsp_query_duration_seconds_count', issuer => 'card'), 3,
       "$kind: 3 OCSP queries timed");
    ok(delta($m0, $m1, 'jpki_store_rounds_total', store => 'redis', result => 'ok') >= 8,
       "$kind: the store rounds counted");
    for my $h ([ 'jpki_store_round_duration_seconds', store => 'redis' ],
               [ 'jpki_ocsp_query_duration_seconds', issuer => 'card' ]) {
        my ($name, %l) = @$h;
        my @le = sort { $a <=> $b } map { /le="([^"]+)"/ && $1 ne '+Inf' ? $1 : () }
                 grep { /^\Q$name\E_bucket\{/ && /\Q$l{(keys %l)[0]}\E/ } keys %{ $m1->{samples} };
        my @c = map { val($m1, "${name}_bucket", %l, le => $_) } @le;
        ok(@le >= 10 && !grep({ $c[$_] < $c[$_ - 1] } 1 .. $#c), "$kind: $name: buckets cumulative");
        is(val($m1, "${name}_bucket", %l, le => '+Inf'), val($m1, "${name}_count", %l),
           "$kind: $name: le=\"+Inf\" == _count");
        ok(val($m1, "${name}_count", %l) > 0 && val($m1, "${name}_sum", %l) > 0, "$kind: $name: observed");
    }
    unlike($m1->{text}, qr/\b[0-9a-f]{32,}\b/, "$kind: no cert_id, key or serial in the text");
    # Redis's fill level (INFO memory): its used_memory and maxmemory
    $redis->cmd('CONFIG', 'SET', 'maxmemory', '67108864');
    my $mf = scrape($srv);
    my ($used) = ($redis->cmd('INFO', 'memory') =~ /^used_memory:(\d+)/m);
    my $u = val($mf, 'jpki_store_used_bytes', store => 'redis');
    ok($u && abs($u - $used) < 1048576, "$kind: jpki_store_used_bytes: Redis's used_memory ($u ~ $used)");
    is(val($mf, 'jpki_store_max_bytes', store => 'redis'), 67108864, "$kind: jpki_store_max_bytes: its maxmemory");
    $redis->cmd('CONFIG', 'SET', 'maxmemory', '0');
    is(val(scrape($srv), 'jpki_store_max_bytes', store => 'redis'), 0, "$kind: ... 0: no limit");
    ok(!grep({ /^jpki_store_(entries|capacity)\b/ } keys %{ $mf->{samples} }),
       "$kind: ... and no embedded store's gauges");

    # many requests over the processes: every scrape has them all
    my @pids = $srv->workers;
    is(scalar @pids, 2, "$kind: two " . ($kind eq 'nginx' ? 'workers' : 'children'));
    my $good = $srv->parallel_logins(4, 6);
    is($good, 24, "$kind: 24 logins and gated requests from 4 clients at once");
    my @totals;
    for (1 .. 6) {
        my $m2 = scrape($srv);
        push @totals, delta($m1, $m2, 'jpki_logins_total', %L, result => 'ok', reason => 'ok')
                      . '/' . delta($m1, $m2, 'jpki_gated_requests_total', result => 'ok', reason => 'ok');
    }
    is_deeply(\@totals, [ ('24/24') x 6 ], "$kind: every scrape, whichever process answers it, counts 24 and 24");

    # health: ok; the OCSP responder killed: three failed answers degrade it
    my ($hs, $h) = health($srv);
    is($hs, 200, "$kind: health 200") or diag explain $h;
    is_deeply($h->{reasons}, [], "$kind: ... no reasons");
    is($h->{ocsp}[0]{issuer} // '', 'card', "$kind: ... the OCSP state of card");
    $f->{ocsp}->stop;
    $redis->cmd('FLUSHALL');                          # no cached answers
    for my $i (1 .. 3) {
        is(login_to($srv, 'user1')->{json}{error} // '', 'revocation_unavailable',
           "$kind: the responder down: login $i refused revocation_unavailable");
        ($hs, $h) = health($srv) if $i == 2;
    }
    is($hs, 200, "$kind: ... after two failures still ok");
    ($hs, $h) = health($srv);
    is($hs, 503, "$kind: ... after three: 503");
    is(reasons($h), 'ocsp_failing:card', "$kind: ... ocsp_failing for card");
    ok($h->{ocsp}[0]{failing} && $h->{ocsp}[0]{consecutive_failures} >= 3, "$kind: ... its OCSP entry");
    my $m3 = scrape($srv);
    is(val($m3, 'jpki_ocsp_failing', issuer => 'card'), 1, "$kind: jpki_ocsp_failing 1");
    is(val($m3, 'jpki_health_ok'), 0, "$kind: jpki_health_ok 0");
    is(delta($m1, $m3, 'jpki_ocsp_queries_total', issuer => 'card', outcome => 'no_answer'), 3,
       "$kind: 3 OCSP queries without an answer");
    $f->{ocsp} = JPKITest::Ocsp->start(name => "ocsp-$kind", port => $ocsp_port);
    is(login_to($srv, 'user1')->{status}, 200, "$kind: the responder back: a login");
    ($hs, $h) = health($srv);
    is($hs, 200, "$kind: ... health ok again") or diag explain $h;

    # Redis stopped: store_down; back: ok
    $redis->stop;
    ($hs, $h) = health($srv);
    is($hs, 503, "$kind: Redis stopped: health 503");
    is(reasons($h), 'store_down', "$kind: ... store_down");
    $m3 = scrape($srv);
    is(val($m3, 'jpki_store_up', store => 'redis'), 0, "$kind: jpki_store_up 0");
    ok(delta($m1, $m3, 'jpki_store_rounds_total', store => 'redis', result => 'error')
       + delta($m1, $m3, 'jpki_store_rounds_total', store => 'redis', result => 'timeout') >= 2,
       "$kind: store rounds failed, counted");
    $redis = JPKITest::Redis->start(name => "redis-$kind", port => $rport);
    ok(eventually(5, sub { (health($srv))[0] == 200 }), "$kind: Redis back: health 200");
    is(val(scrape($srv), 'jpki_store_up', store => 'redis'), 1, "$kind: jpki_store_up 1");
    $srv->stop;
}

# ---------------------------------------------------------------- CRLs

my $J = $JPKITest::JPKICTL;
my $pki = $JPKITest::PKI;
my $R = "--redis 127.0.0.1:$rport";
sub sync {
    my ($crl, $iss, @more) = @_;
    my $out = `$J crl sync --source $pki/$crl --issuer $iss --secret-file $secret $R @more 2>&1`;
    return $? >> 8;
}

for my $kind (@kinds) {
    # card's CRL a file (missing at first), phone's in Redis (none yet)
    $redis->cmd('FLUSHALL');
    my $crl = "$dir/card-$kind.crl";
    unlink $crl;
    my $srv = JPKIServer->start($kind, name => 'metrics-crl', workers => 1,
        secret => $secret, map => $f->{map}, revocation => 'crl',
        issuer => [ "card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=$crl", 'phone ca=@PKI@/phone-ca.pem' ],
        store => "redis=127.0.0.1:$rport",
        locations => [ '/jpki/' => { endpoints => 1, throttle => 'off' },
                       '/health' => { health => 1, exact => 1 },
                       '/metrics' => { exact => 1, $kind => metrics_lines($kind, '127.0.0.1') } ]);
    my ($hs, $h) = health($srv);
    is($hs, 503, "$kind: no CRL file, none in Redis: 503");
    is(reasons($h), 'crl_missing:card:file crl_missing:phone:redis',
       "$kind: ... crl_missing for card's file and phone's Redis lists") or diag explain $h;
    my ($e) = grep { ($_->{source} // '') eq 'redis' } @{ $h->{crls} };
    ok($e && !$e->{loaded} && $e->{lists} == 1 && $e->{lists_loaded} == 0, "$kind: ... phone's entry");
    my $m = scrape($srv, path => '/metrics', no_token => 1);
    is(val($m, 'jpki_crl_ok', issuer => 'card', source => 'file'), 0, "$kind: jpki_crl_ok card file 0");

    put_file("$pki/ca2-stale.crl", $crl, time - 100);
    ok(eventually(5, sub { reasons((health($srv))[1]) =~ /\bcrl_stale:card:file\b/ }),
       "$kind: a stale CRL file: crl_stale") or diag explain [ health($srv) ];
    put_file("$pki/ca2.crl", $crl, time + 10);
    is(sync('phone-ca.crl', "phone=$pki/phone-ca.pem"), 0, "$kind: phone's CRL synced into Redis");
    ok(eventually(5, sub { (health($srv))[0] == 200 }), "$kind: the CRL file and Redis's: 200")
        or diag explain [ health($srv) ];
    $m = scrape($srv, path => '/metrics', no_token => 1);
    for my $s ([ card => 'file' ], [ phone => 'redis' ]) {
        my %l = (issuer => $s->[0], source => $s->[1]);
        is(val($m, 'jpki_crl_ok', %l), 1, "$kind: jpki_crl_ok $s->[0] $s->[1] 1");
        my $age = val($m, 'jpki_crl_age_seconds', %l);
        ok($age > 0 && $age < 2 * 86400, "$kind: jpki_crl_age_seconds $s->[0] $s->[1]: $age");
    }
    $srv->stop;

    # card's CRLs in Redis: a stale one, then a fresh one
    $redis->cmd('FLUSHALL');
    $srv = JPKIServer->start($kind, name => 'metrics-crl2', workers => 1,
        secret => $secret, map => $f->{map}, revocation => 'crl', store => "redis=127.0.0.1:$rport",
        issuer => 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem',
        locations => [ '/health' => { health => 1, exact => 1 } ]);
    sync('ca2-stale.crl', "card=$pki/ca1.pem,$pki/ca2.pem");
    ($hs, $h) = health($srv);
    is(reasons($h), 'crl_stale:card:redis', "$kind: a stale CRL in Redis: crl_stale") or diag explain $h;
    is(sync('ca2.crl', "card=$pki/ca1.pem,$pki/ca2.pem"), 0, "$kind: a fresh one synced");
    ok(eventually(3, sub { (health($srv))[0] == 200 }), "$kind: ... 200 (one list of two keys loaded)")
        or diag explain [ health($srv) ];
    $srv->stop;
}

# ---------------------------------------------------------------- fill, ACL
# The gate's Redis user as docs/operations.md lists it, without +info: the
# scrape answers, the store up, no fill level; with +info, the fill level.
$redis->cmd('ACL', 'SETUSER', 'gate', 'on', '>gate-pw', '~jpki:*', '-@all',
            map { "+$_" } qw(get set del hget incr decr pexpire));
for my $kind (@kinds) {
    my $srv = JPKIServer->start($kind, name => 'metrics-acl',
        secret => $secret, issuer => $f->{issuer}, map => $f->{map},
        store => "redis=127.0.0.1:$rport user=gate password_file=" . password_file('gate-pw'),
        revocation => 'ocsp',
        locations => [
            '/jpki/' => { endpoints => 1, throttle => 'off' },
            '/metrics' => { exact => 1, $kind => metrics_lines($kind, '127.0.0.0/8 ::1',
                                                              "$dir/metrics.token") },
        ]);
    $redis->cmd('ACL', 'SETUSER', 'gate', '-info');
    my $m = scrape($srv);
    is(val($m, 'jpki_store_up', store => 'redis'), 1, "$kind: ACL without +info: the store up");
    ok(!exists $m->{samples}{'jpki_store_used_bytes{store="redis"}'}, "$kind: ... no fill level");
    $redis->cmd('ACL', 'SETUSER', 'gate', '+info');
    $m = scrape($srv);
    ok(val($m, 'jpki_store_used_bytes', store => 'redis') > 0, "$kind: with +info: the fill level");
    is(login_to($srv, 'user1')->{status}, 200, "$kind: logins with the documented ACL");
    $srv->stop;
}

done_testing();
