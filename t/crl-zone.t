#!/usr/bin/perl
# t/crl-zone.t - the CRL zone on nginx (jpki_crl_zone) and Apache
# (JPKICRLZone) alike, one design in the core (common/crlzone.c): a CRL
# file is parsed once, by one process, into shared memory, and every worker
# (child) answers from that copy; a replaced file is picked up the same way
# (one parse for all); an older file is refused once for all; a reload
# (nginx) or a graceful or plain restart (Apache) keeps the CRLs in force
# without parsing them again; a zone too small for a CRL fails closed with
# one clear log line.  nginx only: a national-size CRL (1,000,000 entries)
# is parsed in a thread while the worker keeps answering.  Apache only: a
# new size is a new zone (the CRL parsed again, once).
#   make all pki build/crlgen && prove -v t/crl-zone.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use File::Copy qw(copy);
use JPKITest;
use JPKIServer;
use JPKICRLFiles qw(fixture);

skip_unless(qw(jpkictl pki openssl));
-x "$JPKITest::BUILD/crlgen" or plan skip_all => 'build/crlgen not built (make build/crlgen)';
my @kinds = JPKIServer::kinds();
my $pki = $JPKITest::PKI;

# The site: ca1 and ca2 with the CRL file (ca1's key has no CRL here: a
# warning at start), a zone of SIZE (nginx's words: 1m, 32k), two workers
# whose answers are logged with their pid.
sub site {
    my ($kind, $f, $size, %more) = @_;
    (my $apsize = uc $size) =~ s/K$/k/;
    return (issuer => "card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=$f->{crl}",
            secret => $f->{secret}, store => 'shm', map => $f->{map},
            revocation => 'crl', workers => 2,
            nginx => "    jpki_crl_zone crl:$size;\n"
                     . "    log_format pid '\$pid \$request_method \$request_uri \$status';\n",
            nginx_listen => 'reuseport',
            nginx_server => '        access_log @DIR@/pid.log pid;',
            apache => "JPKICRLZone $apsize\nListenCoresBucketsRatio 1\n"
                      . qq{CustomLog "\@DIR\@/pid.log" "%P %m %U %>s"\n},
            locations => [ '/jpki/' => { endpoints => 1, throttle => 'off' },
                           '/health' => { health => 1, exact => 1 } ],
            %more);
}

sub loads {
    my ($srv, $m) = @_;
    my @l = $srv->log_since($m) =~ /loaded: \d+ entries \(shared zone\)/g;
    return scalar @l;
}

# logins of CERT until both workers have answered (8 at least, 60 at
# most): (answers seen => count, workers that answered)
sub spread {
    my ($srv, $cert) = @_;
    my $log = "$srv->{srv}{dir}/pid.log";
    my $pos = -s $log // 0;
    my (%seen, %pids);
    for my $n (1 .. 60) {
        my $r = $srv->login($cert);
        $seen{ ($r->{json} // {})->{error} // $r->{status} // 'none' }++;
        %pids = map { /^(\d+) POST \/jpki\/login / ? ($1 => 1) : () }
                split /\n/, substr(slurp($log) // '', $pos);
        last if $n >= 8 && keys %pids >= 2;
    }
    return (\%seen, scalar keys %pids);
}

sub health { my ($srv) = @_; my $h = get_json($srv->url('/health')); return ($h->{status}, $h->{json} // {}) }

sub wait_for {
    my ($secs, $code) = @_;
    my $end = time + $secs;
    my $ok;
    while (!($ok = $code->()) && time < $end) { sleep 0.2 }
    return $ok;
}

for my $kind (@kinds) {
    subtest $kind => sub {
        my $dir = tmpdir() . "/$kind";             # each server its own files
        mkdir $dir;
        my $f = fixture($dir);

        # ---- the configuration test: the zone's smallest size
        my ($st, $out) = JPKIServer->configtest($kind, name => 'ct', site($kind, $f, '1k'));
        isnt($st, 0, "$kind: a zone of 1k refused");
        like($out, qr/at least 32k/, '... with a sentence');
        ($st, $out) = JPKIServer->configtest($kind, name => 'ct2', site($kind, $f, '64m'));
        is($st, 0, "$kind: a zone of 64m accepted") or diag $out;

        # ---- one parse, every worker answers from the zone
        my $srv = JPKIServer->start($kind, name => 'zone', site($kind, $f, '1m'));
        is(scalar(my @w = $srv->workers), 2, 'two workers');
        wait_for(10, sub { loads($srv, 0) >= 1 });
        sleep 1.5;
        $srv->login('user1') for 1 .. 4;            # Apache: children check in requests
        is(loads($srv, 0), 1, 'two workers, one parse of the CRL into the zone');
        my ($seen, $pids) = spread($srv, 'rev-keyCompromise');
        is_deeply([ keys %$seen ], [ 'cert_revoked' ], 'every worker answers from the zone')
            or diag explain $seen;
        cmp_ok($pids, '>=', 2, '... both workers answered');
        is($srv->login('user1')->{status}, 200, 'an unlisted certificate logs in');

        # ---- a replaced file: one parse, every worker
        my $m = $srv->mark;
        $f->{put}->('ca2-released.crl');
        wait_for(5, sub { ($srv->login('rev-certificateHold')->{status} // 0) == 200 });
        ($seen, $pids) = spread($srv, 'rev-certificateHold');
        is_deeply([ keys %$seen ], [ 200 ], 'the replaced file is used by every worker')
            or diag explain $seen;
        sleep 1.2;
        $srv->login('user1') for 1 .. 6;
        is(loads($srv, $m), 1, '... after one parse');
        my ($hs, $h) = health($srv);
        is($h->{crls}[0]{crl_number}, 3, 'health: CRL 3 from the zone');
        is($h->{crls}[0]{last_load}, 'ok', 'health: last load ok');

        # ---- an older file: refused once for all, the zone's CRL stays
        $m = $srv->mark;
        $f->{put}->('ca2.crl');
        wait_for(5, sub { $srv->login('user1'); $srv->log_since($m) =~ /refused: crl_stale/ });
        sleep 1.2;
        $srv->login('user1') for 1 .. 6;
        my @ref = $srv->log_since($m) =~ /CRL "[^"]*" refused: crl_stale \(older than the CRL loaded\)/g;
        is(scalar @ref, 1, 'an older file: refused once for all workers');
        is($srv->login('rev-certificateHold')->{status}, 200, '... CRL 3 stays in force');
        ($hs, $h) = health($srv);
        is($hs, 503, 'health: 503 after a refused load');
        is($h->{crls}[0]{last_load}, 'crl_stale', 'health: last load crl_stale');
        $f->{put}->('ca2-released.crl');            # CRL 3 again, a newer file
        ok(wait_for(5, sub { (health($srv))[0] == 200 }), 'a valid file again: health 200');

        # ---- reloads and restarts keep the zone's CRLs
        for my $sig ($kind eq 'nginx' ? ('HUP') : ('USR1', 'HUP')) {
            $m = $srv->mark;
            ok($srv->reload(signal => $sig), "$sig: new workers");
            sleep 1.5;
            $srv->login('user1') for 1 .. 6;
            is(loads($srv, $m), 0, "$sig: the CRL in the zone is kept (no new parse)");
            is($srv->login('rev-certificateHold')->{status}, 200, '... and still answers');
            is($srv->login('rev-keyCompromise')->{json}{error}, 'cert_revoked',
               '... revocations too');
            is((health($srv))[1]{crls}[0]{crl_number}, 3, '... health: CRL 3');
        }

        # ---- Apache: a new size is a new zone, the CRL parsed again once
        if ($kind eq 'apache') {
            my $cf = "$srv->{srv}{dir}/httpd.conf";
            my $t = slurp($cf);
            $t =~ s/JPKICRLZone 1M/JPKICRLZone 2M/ or die 'no JPKICRLZone in the conf';
            spew($cf, $t);
            $m = $srv->mark;
            ok($srv->reload(signal => 'USR1'), 'resized zone: new children');
            sleep 1.5;
            $srv->login('user1') for 1 .. 6;
            is(loads($srv, $m), 1, 'resized zone: the CRL parsed again, once');
            like($srv->log_since($m), qr/CRL zone \S+ resized/, '... logged');
            is($srv->login('rev-keyCompromise')->{json}{error}, 'cert_revoked', '... and answers');
        }
        $srv->stop;

        # ---- nginx: a national-size CRL parsed in a thread, the single
        # worker answering meanwhile
        if ($kind eq 'nginx') {
            $f->{put}->('ca2.crl');
            my $one = JPKIServer->start($kind, name => 'big', site($kind, $f, '128m', workers => 1));
            sleep 1.2;
            my $huge = "$dir/huge.crl";
            system("$JPKITest::BUILD/crlgen $pki/ca2.pem $pki/ca2.key 1000000 20 $huge >/dev/null 2>&1") == 0
                or BAIL_OUT('crlgen failed');
            my $m1 = $one->mark;
            my $t = time + 50;
            utime $t, $t, $huge;
            chmod 0644, $huge;
            my $t0 = time;
            rename $huge, $f->{crl} or die;
            my ($worst, $n, $loaded) = $one->srv->answers_until('/health', 15, 0.05, sub {
                (($_[0]{json} // {})->{crls}[0]{crl_number} // 0) == 20 });
            my $took = time - $t0;
            ok($loaded, sprintf('the 1,000,000-entry CRL is loaded (CRL 20) in %.2f s', $took));
            ok($n >= 3, "the worker answered $n times while it was parsed");
            # a worker that parsed it itself would answer nothing meanwhile:
            # its slowest answer would take about the whole load
            ok($worst < $took / 2, sprintf('... each within %.3f s (< half of the load\'s %.2f s)',
                                            $worst, $took));
            like($one->log_since($m1), qr/loaded: 1000000 entries \(shared zone\)/, 'logged');
            $one->stop;
        }

        # ---- a zone too small for the CRL: nothing loaded, checks fail
        # closed, one clear line
        my $big = "$dir/big.crl";
        system("$JPKITest::BUILD/crlgen $pki/ca2.pem $pki/ca2.key 5000 9 $big >/dev/null 2>&1") == 0
            or BAIL_OUT('crlgen failed');
        copy($big, $f->{crl}) or die;
        chmod 0644, $f->{crl};
        my $small = JPKIServer->start($kind, name => 'small', site($kind, $f, '32k'));
        wait_for(10, sub { $small->login('user1'); $small->log_since(0) =~ /too small/ });
        sleep 1.2;
        $small->login('user1') for 1 .. 4;
        my @too = $small->log_since(0) =~ /(CRL zone "[^"]+" too small: CRL "[^"]*" of issuer "card" needs \d+ bytes[^\n]*fail closed)/g;
        is(scalar @too, 1, 'a zone too small: logged once, clearly') or diag $small->log_since(0);
        my $r = $small->login('user1');
        is($r->{status}, 503, 'no CRL in the zone: 503');
        is($r->{json}{error}, 'revocation_unavailable', '... revocation_unavailable');
        ($hs, $h) = health($small);
        is($hs, 503, 'health: 503');
        ok(!$h->{crls}[0]{loaded}, 'health: the CRL is not loaded');
        is($h->{crls}[0]{error}, 'store_full', 'health: store_full');
        $small->stop;
    };
}

done_testing();
