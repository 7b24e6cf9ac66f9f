package JPKICRLFiles;
# The CRL-file checks t/crl.t runs on either server, and the fixture of
# the CRL tests (also used by t/crl-zone.t; eventually() by t/crl-keys.t):
#
#   my $f = JPKICRLFiles::fixture($dir);   # secret, map, crl, put
#   $f->{put}->('ca2-released.crl');        # replace the CRL file (new mtime)
#   JPKICRLFiles::file_sequence($srv, $f);  # the sequence below
#
# A server is an nginx (JPKITest::Nginx) or Apache (JPKIApache::Server)
# instance whose main site has `crl=$f->{crl}`, revocation crl, the mapping
# file $f->{map}, endpoints at /jpki/ and health at /health.  Apache checks
# its files in requests (at most once a second), nginx on a timer: the
# sequence makes requests while it waits, so both see a replaced file.
use strict;
use warnings;
use Exporter 'import';
use Test::More;
use Time::HiRes qw(sleep time);
use JPKITest;

our @EXPORT_OK = qw(fixture health eventually log_since file_sequence
                    no_crl_sequence redis_health_sequence);

# The secret, the mapping file (user1 and two revoked certificates mapped)
# and the CRL file (ca2.crl: CRL 2, 7 entries) of a test in DIR.
sub fixture {
    my ($dir) = @_;
    my $f = { secret => write_secret("$dir/site.secret"),
              crl    => "$dir/card.crl",
              map    => "$dir/map.txt" };
    spew($f->{map}, join('', map { cert_id($_, $f->{secret}) . " acct-$_\n" }
                             qw(user1 rev-certificateHold rev-keyCompromise)),
         0644);
    my $gen = 0;
    # each replacement gets a new, later mtime (as a deploy would)
    $f->{put} = sub { put_file("$JPKITest::PKI/$_[0]", $f->{crl}, time + 10 * ++$gen) };
    $f->{put}->('ca2.crl');
    return $f;
}

sub health {
    my ($srv) = @_;
    my $r = get_json($srv->url('/health'));
    return ($r->{status}, $r->{json} // {});
}

# ok(CODE) within 5 s (retried every 0.2 s).
sub eventually {
    my ($what, $code) = @_;
    my $end = time + 5;
    my $ok;
    while (!($ok = $code->()) && time < $end) { sleep 0.2 }
    return ok($ok, $what);
}

# The error log of SRV's main site since MARK ($srv->mark), either server.
sub log_since {
    my ($srv, $mark) = @_;
    return $srv->isa('JPKIApache::Server') ? $srv->log_since(undef, $mark)
                                           : $srv->log_since($mark);
}

# A message in the log since MARK, waited for (a health request each try:
# Apache checks its files in requests).
sub logged {
    my ($srv, $mark, $re, $what) = @_;
    return eventually($what, sub { health($srv); log_since($srv, $mark) =~ $re });
}

# A replaced file is picked up without a reload (hold, then released by a
# new CRL without the entry); an older, stale or wrongly signed replacement
# (or another issuer's CRL) is refused and the loaded CRL stays; health
# reports every CRL.  SRV's main site also has the issuer phone
# (phone-ca.pem), without a CRL.
sub file_sequence {
    my ($srv, $f) = @_;

    # (nginx parses its CRL files in a thread at start: wait for it)
    eventually('the CRL is loaded', sub { (health($srv))[0] == 200 });
    is(login_to($srv, 'user1')->{status}, 200, 'user1 logs in (not in the CRL)');
    my $r = login_to($srv, 'rev-certificateHold');
    is($r->{status}, 403, 'the held certificate is refused');
    is($r->{json}{error}, 'cert_on_hold', '... cert_on_hold');
    is(login_to($srv, 'rev-keyCompromise')->{json}{error}, 'cert_revoked',
       'keyCompromise: cert_revoked');

    my ($st, $h) = health($srv);
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
    is($c->{stale_at}, $c->{this_update} + 72 * 3600,
       'stale at thisUpdate + 72 h (default grace)');
    my $no = http('POST', $srv->url('/health'));
    is($no->{status}, 405, 'health: POST refused');
    is($no->{json}{error} // '', 'method_not_allowed', '... in JSON, like every answer of the gate');
    is($no->{headers}{allow} // '', 'GET, HEAD', '... naming the methods taken');

    # the hold is released: a new CRL without the entry, no reload
    $f->{put}->('ca2-released.crl');
    eventually('after the new CRL, the released certificate logs in', sub {
        login_to($srv, 'rev-certificateHold')->{status} == 200 });
    is(login_to($srv, 'rev-keyCompromise')->{json}{error}, 'cert_revoked',
       'the final revocation is still there');
    ($st, $h) = health($srv);
    is($h->{crls}[0]{crl_number}, 3, 'health: CRL number 3 now');

    # an older CRL (number 2) is not loaded over number 3
    my $m = $srv->mark;
    $f->{put}->('ca2.crl');
    logged($srv, $m, qr/CRL "[^"]*" refused: crl_stale \(older than the CRL loaded\)/,
           'an older CRL is refused (logged)');
    is(login_to($srv, 'rev-certificateHold')->{status}, 200,
       '... the newer CRL stays in force');
    ($st, $h) = health($srv);
    is($st, 503, 'health: 503 after a refused load');
    is($h->{crls}[0]{last_load}, 'crl_stale', 'health: the last load failed (crl_stale)');
    is($h->{crls}[0]{crl_number}, 3, 'health: CRL 3 still loaded');

    # a CRL signed by another key with the same name, and a stale one
    for ([ 'ca2-wrongkey.crl', qr/crl_unknown_issuer|crl_bad_signature/ ],
         [ 'ca2-stale.crl', qr/crl_stale/ ]) {
        my ($file, $why) = @$_;
        $m = $srv->mark;
        $f->{put}->($file);
        logged($srv, $m, qr/refused: $why/, "$file is refused");
        is(login_to($srv, 'rev-keyCompromise')->{json}{error}, 'cert_revoked',
           "... the loaded CRL still answers after $file");
    }

    # another configured issuer's genuine, fresh CRL in this issuer's slot
    # (a swapped path, or a CRL directory writable by others): would
    # answer good for every certificate of this issuer
    $m = $srv->mark;
    $f->{put}->('phone-ca.crl');
    logged($srv, $m, qr/refused: crl_unknown_issuer \(a CRL of issuer "phone", not of "card"\)/,
           "another issuer's CRL is refused in this issuer's slot");
    is(login_to($srv, 'rev-keyCompromise')->{json}{error}, 'cert_revoked',
       "... the loaded CRL still answers after another issuer's CRL");

    # a fresh valid one again: health back to ok
    $f->{put}->('ca2-empty.crl');
    eventually('a newer valid CRL clears the alarm', sub { (health($srv))[0] == 200 });
}

# SRV started without its CRL file: checks fail closed, health 503.
sub no_crl_sequence {
    my ($srv) = @_;
    my $r = login_to($srv, 'user1');
    is($r->{status}, 503, 'no CRL loaded: 503');
    is($r->{json}{error}, 'revocation_unavailable', '... revocation_unavailable');
    my ($st, $h) = health($srv);
    is($st, 503, 'health: 503 without a CRL');
    ok(!$h->{crls}[0]{loaded}, 'health: the CRL is not loaded');
}

# SRV on REDIS: health says whether the store answers (REDIS is stopped).
# The reasons of a health answer, "reason:issuer:source" sorted.
sub reasons {
    my ($h) = @_;
    return join ' ', sort map { join ':', grep { defined } @$_{qw(reason issuer source)} }
                          @{ $h->{reasons} // [] };
}

# With Redis, phone (no CRL file) is read from Redis, where no CRL was
# synced: degraded for that alone once the file's CRL is loaded.
sub redis_health_sequence {
    my ($srv, $redis) = @_;
    # (nginx parses its CRL files in a thread at start: wait for it)
    eventually('health with Redis: only phone\'s CRL missing in Redis',
               sub { reasons((health($srv))[1]) eq 'crl_missing:phone:redis' });
    my ($st, $h) = health($srv);
    is($st, 503, 'health with Redis: 503 degraded');
    ok($h->{store}{ok} && $h->{store}{type} eq 'redis', 'health: redis answers');
    $redis->stop;
    ($st, $h) = health($srv);
    is($st, 503, 'health with Redis down: 503');
    ok(!$h->{store}{ok}, 'health: the store does not answer');
    is(reasons($h), 'store_down', 'health: store_down (the CRLs in Redis unknown)');
}

1;
