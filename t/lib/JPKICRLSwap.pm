package JPKICRLSwap;
# The CRL-swap run of t/crl-zone-swap.t (nginx and Apache alike): a shared
# CRL zone whose CRL is replaced over and over while
# concurrent clients log in and make gated requests; every answer must be
# the one of a CRL that was in force during the request.
#
#   my $f = JPKICRLSwap::fixture($dir, $seconds);   # secret, map, crl, CRLs
#   ... start a server: crl=$f->{crl}, revocation crl, map $f->{map}, the
#       endpoints at /jpki/, health at /health, /app/ gated with a recheck
#       interval of 0 (every gated request checks the CRL) ...
#   JPKICRLSwap::run($f, $srv);                     # the checks below
#
# The CRLs: generation g (CRL number 0x100 + g) revokes certificate X
# (rev-keyCompromise) when g is even and not when g is odd; every
# generation also carries a different number of other entries, so that
# consecutive indexes differ in size and the zone's blocks move (a block
# freed by a swap is reused at another offset by a later one).  Concurrent
# clients log in with X and with user1 (in no CRL) and make gated requests
# with their sessions.  The writer replaces the file, notes when (the
# generation cannot be in force before), and waits until the health
# endpoint shows the new CRL number (in force from then on).  An answer for
# X over [t0, t1] may come from any generation between the last one seen in
# force before t0 and the last one put before t1; over most requests that
# is one generation, and its verdict is required.  user1 is never refused,
# and no request fails otherwise (no 5xx, no connection lost).
use strict;
use warnings;
use Exporter 'import';
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use JPKITest;

our @EXPORT_OK = qw(fixture run);

our $BASE_NUMBER = 0x100;
our $X = 'rev-keyCompromise';           # revoked by the even generations
our $GOOD = 'user1';                    # revoked by none

# fixture(DIR, SECONDS, fill => CODE): the secret, the mapping file (X and
# user1) and the CRL generations (enough for SECONDS of swaps) in DIR;
# generation 0 put as the CRL file.  CODE(g): the number of other entries
# of generation g (default 0 .. 370, varying).
# -> { dir, secret, map, crl, seconds, ngen }
sub fixture {
    my ($dir, $seconds, %o) = @_;
    my $fill_of = $o{fill} // sub { 37 * (($_[0] * 7) % 11) };
    my $pki = $JPKITest::PKI;
    my $f = { dir => $dir, seconds => $seconds, crl => "$dir/card.crl",
              map => "$dir/map.txt", secret => write_secret("$dir/site.secret"),
              ngen => 8 + 3 * $seconds };          # more than the swaps can use
    spew($f->{map}, join('', map { cert_id($_, $f->{secret}) . " acct-$_\n" } $X, $GOOD),
         0644);

    # openssl ca -gencrl over index files of our own: ca2's revoked rows
    # (X's row only in the even generations) and fillers.
    my ($xserial) = `openssl x509 -in $pki/$X.pem -noout -serial` =~ /serial=([0-9A-F]+)/
        or BAIL_OUT("no serial for $X");
    my @rows = grep { /^R\t/ } split /\n/, slurp("$pki/ca2-index.txt");
    my ($xrow) = grep { (split /\t/)[3] eq $xserial } @rows
        or BAIL_OUT("$X is not revoked in ca2-index.txt");
    my @others = grep { $_ ne $xrow } @rows;
    my ($exp, $revdate) = (split /\t/, $xrow)[1, 2];
    $revdate =~ s/,.*//;

    for my $g (0 .. $f->{ngen}) {
        my $fill = $fill_of->($g);
        my @r = (@others, $g % 2 == 0 ? ($xrow) : (),
                 map { sprintf "R\t%s\t%s,superseded\t7E%06X%010X\tunknown\t/CN=filler",
                       $exp, $revdate, $g, $_ } 1 .. $fill);
        spew("$dir/index-$g.txt", join('', map { "$_\n" } @r));
        JPKITest::ca2_crl($dir, "$dir/index-$g.txt", $BASE_NUMBER + $g,
                          "$dir/gen-$g.crl.pem", "$dir/openssl.log")
            && system("openssl crl -in $dir/gen-$g.crl.pem -outform DER -out $dir/gen-$g.crl "
                      . ">>$dir/openssl.log 2>&1") == 0
            or BAIL_OUT("openssl ca -gencrl failed: " . slurp("$dir/openssl.log"));
    }

    put_file("$dir/gen-0.crl", $f->{crl}, time);
    return $f;
}

# The CRL number the health endpoint of SRV shows (-1: none, or no answer
# within 2 s: the writer asks again, maybe another worker or child).
sub crl_number {
    my ($srv) = @_;
    my $h = get_json($srv->url('/health'), timeout => 2);
    return $h->{json} && $h->{json}{crls} ? $h->{json}{crls}[0]{crl_number} // -1 : -1;
}

# run(F, SRV, clients => 4): generation 0 checked in force, then the
# clients and the swaps for F's seconds, then the verdicts (test
# assertions).  Returns the counts of answers (kind cert => n).
sub run {
    my ($f, $srv, %o) = @_;
    my ($dir, $crl, $seconds) = @$f{qw(dir crl seconds)};
    my $nclients = $o{clients} // 4;

    my $end = time + 10;
    sleep 0.1 while crl_number($srv) != $BASE_NUMBER && time < $end;
    is(crl_number($srv), $BASE_NUMBER, 'generation 0 in force');
    is(login_to($srv, $X)->{json}{error}, 'cert_revoked', 'generation 0 revokes X');
    is(login_to($srv, $GOOD)->{status}, 200, 'user1 logs in');

    # Each client logs in with its certificate, then makes gated requests
    # with the session, over and over; one line per answer: kind, cert, t0,
    # t1, status, error (t0 when the request is sent, t1 when its answer is
    # in).
    my $start = time;
    my $stop_at = $start + $seconds;
    my @clients;
    for my $i (0 .. $nclients - 1) {
        my $cert = $i % 2 ? $GOOD : $X;
        my $out = "$dir/client-$i.txt";
        push @clients, [ $out, JPKITest::fork_code("client $i", "$dir/client-$i.log", sub {
            open my $fh, '>', $out or die "$out: $!";
            $fh->autoflush(1);
            my $rec = sub {
                my ($kind, $t0, $r) = @_;
                printf $fh "%s\t%s\t%.6f\t%.6f\t%s\t%s\n", $kind, $cert, $t0, time,
                    $r->{status} // 0, ($r->{json} && $r->{json}{error}) // '-';
            };
            my $base = $srv->url('/jpki');
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
                    $rec->('gate', $t0, gated_get($srv, $cookie));
                }
            }
            close $fh;
        }) ];
    }

    # put[g]: before the file of g was put (g cannot be in force earlier);
    # seen[g]: once health showed g (in force from then on).
    my (@put, @seen);
    $put[0] = 0;
    $seen[0] = $start;
    my ($g, $late) = (0, 0);
    while (time < $stop_at && $g < $f->{ngen}) {
        $g++;
        $put[$g] = time;
        put_file("$dir/gen-$g.crl", $crl, int(time) + 10 * $g);
        my $until = time + 15;
        my $n;
        while (($n = crl_number($srv)) < $BASE_NUMBER + $g && time < $until) { sleep 0.05 }
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
    cmp_ok($gens, '>=', $seconds / 4, "... $gens swaps in $seconds s");

    for my $c (@clients) {
        my $pid = $c->[1];
        my $until = time + 60;
        sleep 0.1 while JPKITest::alive($pid) && time < $until;
        JPKITest::stop_pid($pid, 'TERM', 3) if JPKITest::alive($pid);
        delete $JPKITest::KIDS{$pid};
    }

    # The generations that may have answered a request over [t0, t1].
    my $window = sub {
        my ($t0, $t1) = @_;
        my ($lo, $hi) = (0, 0);
        for my $k (0 .. $gens) {
            $lo = $k if defined $seen[$k] && $seen[$k] <= $t0;
            $hi = $k if $put[$k] <= $t1;
        }
        return ($lo, $hi);
    };

    my (%count, @bad);
    for my $c (@clients) {
        for my $line (split /\n/, slurp($c->[0]) // '') {
            my ($kind, $cert, $t0, $t1, $st, $err) = split /\t/, $line;
            $count{"$kind $cert"}++;
            my $answer = $st == 200 ? 'good' : $st == 403 && $err eq 'cert_revoked' ? 'revoked'
                       : "status $st $err";
            if ($kind eq 'challenge' || $answer =~ /^status/) {
                push @bad, sprintf "%s %s: %s over %.3f..%.3f", $kind, $cert, $answer,
                    $t0 - $start, $t1 - $start;
                next;
            }
            if ($cert eq $GOOD) {
                push @bad, "$kind $cert: $answer (revoked by no CRL)" if $answer ne 'good';
                next;
            }
            my ($lo, $hi) = $window->($t0, $t1);
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
    cmp_ok($count{"login $X"} // 0, '>=', $seconds, "logins with X during the swaps");
    cmp_ok($count{"login $GOOD"} // 0, '>=', $seconds, 'logins with user1 during the swaps');
    cmp_ok($count{"gate $X"} // 0, '>', 0, 'gated requests with a session of X');
    cmp_ok($count{"strict revoked"} // 0, '>', 0,
           'X refused when only a revoking CRL could answer');
    cmp_ok($count{"strict good"} // 0, '>', 0,
           'X accepted when only a CRL without it could answer');
    return \%count;
}

1;
