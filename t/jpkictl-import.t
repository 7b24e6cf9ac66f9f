#!/usr/bin/perl
# t/jpkictl-import.t - jpkictl map import | export | prune (docs/admin.md):
#   - 100,000 rows (generated serials, decimal and 0x-hex, and the real
#     serials of user1 and user2) imported into Redis: user1 then signs in
#     through a gate that has the Redis store and no mapping file, as the
#     account of its row; the admin API lists it (the acct: list and mapi:
#     written as its bind writes them); a second run binds nothing more;
#   - the same import into a mapping file, and a login through it;
#   - malformed rows (bad serial, unknown issuer, overlong line, ...)
#     refused by line number; a certificate for a second account, a 13th
#     certificate for an account: skipped by line number, counted;
#   - export: cert_id, issuer, account, times, and no serial;
#   - prune after expiry and after revocation (certificateHold kept), the
#     dry run first changing nothing;
#   - no serial of the run, in hex or in decimal, in jpkictl's output, the
#     servers' logs, the mapping file or a dump of every Redis key and
#     value.
#   make build/jpkictl build/ngx_http_jpki_module.so build/mod_auth_jpki.so pki
#   prove -v t/jpkictl-import.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use Math::BigInt;
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl));
plan skip_all => 'redis-server not found' unless JPKITest::redis_bin();
my @kinds = JPKIServer::kinds();

my $f = site_fixture();
my ($dir, $secret, $issuer) = @$f{qw(dir secret issuer)};
my $TOKEN = JPKITest::rand_hex(24);
spew("$dir/admin.token", "$TOKEN\n", 0600);
# the CSV files and the list of serials: outside the directory scanned for
# serials at the end (they hold them, by design)
my $in = tempdir('jpki-import-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $ISS = "card=$PKI/ca1.pem,$PKI/ca2.pem";
my $out = "$dir/jpkictl-out";            # every jpkictl output, scanned
mkdir $out;

# jpkictl ARGS... -> (exit, stdout, stderr); both kept in $out
sub ctl { return run_out($out, $JPKICTL, @_) }

sub serial_hex { my ($c) = @_; my ($s) = `openssl x509 -in $PKI/$c.pem -serial -noout` =~ /=([0-9A-F]+)/; $s }

# ---------------------------------------------------------------- the rows
my $N = 100_000;
my @serials;                              # Math::BigInt-free: 61-bit ints
my $csv = "issuer,serial,account\n";
for my $i (1 .. $N) {
    my $s = (1 << 60) | (int(rand(2**30)) << 30) | int(rand(2**30));
    push @serials, $s;
    $csv .= sprintf("card,%s,user%d\n", $i % 2 ? sprintf('0x%x', $s) : $s, int($i / 3));
}
my $u1 = serial_hex('user1');
my $u2 = serial_hex('user2');
my $u2dec = Math::BigInt->from_hex($u2)->bstr;
$csv .= "card,0x$u1,alice\n\"card\", $u2dec ,\"bob, the builder\"\n";
spew("$in/rows.csv", $csv);
my $ROWS = $N + 2;
# every serial of the run, in hex (any case, no 0x) and in decimal
{
    open my $p, '>', "$in/serials" or die;
    print $p sprintf("%x\n%s\n", $_, $_) for @serials;
    print $p "$u1\n", Math::BigInt->from_hex($u1)->bstr, "\n$u2\n$u2dec\n";
    close $p;
}
my $id1 = cert_id('user1', $secret);
my $id2 = cert_id('user2', $secret);

# ---------------------------------------------------------------- Redis
my $redis = JPKITest::Redis->start(name => 'redis');
my @R = ('--redis', '127.0.0.1:' . $redis->port);
my @I = ('--issuer', $ISS, '--secret-file', $secret);

my ($rc, $o, $e) = ctl(qw(map import), "$in/rows.csv", @I, @R);
is($rc, 0, "import of $ROWS rows into Redis: exit 0") or diag $e;
like($o, qr/^imported: $ROWS rows, $ROWS bound, 0 already bound, 0 skipped .* 0 malformed$/m,
     '... every row bound');
my $accounts = int($N / 3) + 1 + 2;       # user0 .. user33333, alice, bob
is($redis->cmd('DBSIZE'), 2 * $ROWS + $accounts,
   '... map: and mapi: for each row, acct: for each account, nothing else');
is($redis->cmd('GET', "jpki:v1:map:$id1"), 'alice', "... user1's serial (hex) bound to alice");
is($redis->cmd('GET', "jpki:v1:map:$id2"), 'bob, the builder',
   "... user2's serial (decimal, quoted fields) bound to its account");
like($redis->cmd('GET', "jpki:v1:mapi:$id1") // '', qr/^[0-9a-f]{16}\|0\|(\d+)$/,
     '... mapi: issuer tag, not_after unknown (0), bound now');
my ($bound) = ($redis->cmd('GET', "jpki:v1:mapi:$id1") // '') =~ /\|(\d+)$/;
ok($bound && abs($bound - time) < 120, '... bound_at is now');

($rc, $o, $e) = ctl(qw(map import), "$in/rows.csv", @I, @R);
is($rc, 0, 'the same import again: exit 0');
like($o, qr/^imported: $ROWS rows, 0 bound, $ROWS already bound, 0 skipped/m,
     '... nothing bound again (already bound)');
is($redis->cmd('DBSIZE'), 2 * $ROWS + $accounts, '... nothing added');

# ---------------------------------------------------------------- the gate
sub admin_lines {
    my ($kind) = @_;
    return $kind eq 'nginx'
        ? "jpki_admin;\njpki_admin_token_file $dir/admin.token;\njpki_admin_allow 127.0.0.0/8;"
        : "JPKIAdmin On\nJPKIAdminTokenFile $dir/admin.token\nJPKIAdminAllow 127.0.0.0/8";
}
sub site {
    my ($kind, %o) = @_;
    return (secret => $secret, issuer => $issuer, %o,
            locations => [ '/jpki/' => { endpoints => 1 },
                           '/admin/' => { $kind => admin_lines($kind) },
                           '/app/' => { gate => 1, upstream => 1 } ]);
}
sub certs_of {
    my ($srv, $acct) = @_;
    (my $q = $acct) =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;
    my $r = http('GET', $srv->url("/admin/certs?account=$q"),
                 headers => { Authorization => "Bearer $TOKEN", Accept => 'application/json' });
    return $r->{json}{certs} // [];
}

my @servers;
for my $kind (@kinds) {
    my $srv = JPKIServer->start($kind, name => "import-redis",
                                site($kind, store => 'redis=127.0.0.1:' . $redis->port));
    push @servers, $srv;
    my $r = login_to($srv, 'user1');
    is($r->{status}, 200, "$kind, Redis store, no mapping file: user1 signs in") or diag $r->{content};
    is($r->{json}{account} // '', 'alice', "$kind: ... as alice, the account of its imported row");
    my $c = cookie_of($r);
    $r = gated_get($srv, $c, '/app/x');
    like($r->{content} // '', qr/account=\[alice\]/, "$kind: ... and opens the gated page as alice");
    $r = login_to($srv, 'user2');
    is($r->{json}{account} // '', 'bob, the builder', "$kind: user2 (decimal serial) signs in as its account");
    my $certs = certs_of($srv, 'alice');
    is(scalar @$certs, 1, "$kind: the admin API lists alice's imported certificate (acct: list)");
    is($certs->[0]{cert_id} // '', $id1, "$kind: ... by cert_id");
    is($certs->[0]{issuer} // '', 'card', "$kind: ... with its issuer (mapi:'s tag)");
    ok(($certs->[0]{bound_at} // 0) == $bound, "$kind: ... and its bound_at");
    is(scalar @{ certs_of($srv, 'user7') }, 3, "$kind: user7's three imported certificates listed");
}

# ---------------------------------------------------------------- the rules
# one account a certificate; at most 12 certificates an account
{
    my $rows = "card,0x$u1,mallory\n";                          # line 1: elsewhere
    $rows .= "card,$_,dozen\n" for 1001 .. 1013;                  # lines 2..14
    $rows .= "card,5001,eve\ncard,5001,trent\ncard,5001,eve\n";   # lines 15..17
    spew("$in/rules.csv", $rows);
    ($rc, $o, $e) = ctl(qw(map import), "$in/rules.csv", @I, @R);
    is($rc, 1, 'a file with rows against the rules: exit 1');
    like($e, qr/^jpkictl: line 1: the certificate is bound to another account: skipped$/m,
         '... a certificate bound to another account: skipped, by line number');
    like($e, qr/^jpkictl: line 14: the account has 12 certificates: skipped$/m,
         '... a 13th certificate for an account: skipped, by line number');
    like($e, qr/^jpkictl: line 16: the certificate of line 15, for another account: skipped/m,
         '... the same certificate for a second account in the file: skipped');
    unlike($e, qr/line (1[0-3]|[2-9]|15|17):/, '... the other rows are fine');
    like($o, qr/^imported: 17 rows, 13 bound, 1 already bound, 3 skipped \(2 bound to another account, 1 account full\), 0 malformed$/m,
         '... and counted');
    is($redis->cmd('GET', "jpki:v1:map:$id1"), 'alice', '... user1 stays alice\'s');
    is(scalar @{ certs_of($servers[0], 'dozen') }, 12, '... dozen has 12 certificates');
}

# malformed rows, by line number, never their content
{
    my $long = 'card,1,' . ('a' x 1100);
    my $rows = "issuer,serial,account\n"                 # 1 the header
             . "card,12x,bob\n"                          # 2 bad serial
             . "phone,0x$u1,bob\n"                       # 3 unknown issuer
             . "$long\n"                                 # 4 overlong line
             . "card,0x$u2\n"                            # 5 two fields
             . "card,\"0x$u2,bob\n"                      # 6 quote not closed
             . "card,-$u2dec,bob\n"                      # 7 a sign
             . "card,0x$u2,\"a\"\"b\"\n"                # 8 a quote in an account
             . "card,0x$u2,a\tb\n"                       # 9 a control character
             . ('x' x 70000) . "\n"                      # 10 over the read buffer
             . "card,0x$u2,bob,extra\n"                  # 11 four fields
             . "\n"                                      # 12 empty: ignored
             . "card,4242,frank\n";                      # 13 good
    spew("$in/bad.csv", $rows);
    ($rc, $o, $e) = ctl(qw(map import), "$in/bad.csv", @I, @R);
    is($rc, 1, 'malformed rows: exit 1');
    my %why = (2 => 'the serial is not a decimal or 0x-hex number',
               3 => 'unknown issuer', 4 => 'the line is longer than 1024 bytes',
               5 => 'expected 3 fields', 6 => 'field 2 (serial): malformed quotes',
               7 => 'the serial is not a decimal or 0x-hex number',
               8 => 'the account is empty, or holds a control character',
               9 => 'the account is empty, or holds a control character',
               10 => 'the line is longer than 1024 bytes', 11 => 'expected 3 fields');
    for my $l (sort { $a <=> $b } keys %why) {
        like($e, qr/^jpkictl: line $l: \Q$why{$l}\E/m, "line $l refused: $why{$l}");
    }
    unlike($e, qr/line (1|12|13):/, '... the header, the empty line and the good row are not');
    like($o, qr/^imported: 11 rows, 1 bound, 0 already bound, 0 skipped .* 10 malformed$/m,
         '... the good row imported, the bad ones counted');
    ($rc, $o, $e) = ctl(qw(map import), "$in/nothere.csv", @I, @R);
    is($rc, 2, 'a FILE that cannot be read: exit 2');
    ($rc, $o, $e) = ctl(qw(map import), "$in/rows.csv", '--issuer', $ISS, @R);
    is($rc, 2, 'no --secret-file: exit 2 (a cert_id needs the site secret)');
    ($rc, $o, $e) = ctl(qw(map import), "$in/rows.csv", @I);
    is($rc, 2, 'no --redis and no --map-file: exit 2');
}

# --dry-run: checked, nothing written
{
    spew("$in/dry.csv", "card,777001,dryrun\n");
    my $before = $redis->cmd('DBSIZE');
    ($rc, $o, $e) = ctl(qw(map import), "$in/dry.csv", @I, @R, '--dry-run');
    like($o, qr/^import \(dry run, nothing written\): 1 rows, 1 to be bound/m, 'import --dry-run: says what it would bind');
    is($redis->cmd('DBSIZE'), $before, '... and writes nothing');
}

# ---------------------------------------------------------------- export
($rc, $o, $e) = ctl(qw(map export), @R, '--issuer', $ISS);
is($rc, 0, 'export from Redis: exit 0') or diag $e;
my @lines = split /\n/, $o;
is($lines[0], 'cert_id,issuer,account,not_after,bound_at', '... a header line');
is(scalar @lines - 1, $ROWS + 13 + 1, '... a line for each binding');
ok(grep({ $_ eq "$id1,card,alice,0,$bound" } @lines), '... user1: cert_id, issuer name, account, times');
ok(grep({ $_ eq "$id2,card,\"bob, the builder\",0,$bound" } @lines), '... an account with a comma: quoted');
ok(!grep({ !/^[0-9a-f]{32},card,/ } @lines[1 .. $#lines]), '... every line starts with a cert_id');
($rc, $o, $e) = ctl(qw(map export), @R);
my ($tag) = $o =~ /^\Q$id1\E,([0-9a-f]{16}),alice,/m;
ok($tag, 'without --issuer: the issuer tag');

# ---------------------------------------------------------------- mapping file
my $map = "$dir/import.map";
($rc, $o, $e) = ctl(qw(map import), "$in/rows.csv", @I, '--map-file', $map);
is($rc, 0, 'import into a mapping file: exit 0') or diag $e;
like($o, qr/^imported: $ROWS rows, $ROWS bound/m, '... every row bound');
my $text = slurp($map);
is(($text =~ tr/\n//), $ROWS, '... one line a row');
like($text, qr/^\Q$id1\E alice$/m, "... user1's line");
($rc, $o, $e) = ctl(qw(map list), '--map-file', $map);
is($e, '', '... the gate\'s parser reads every line (no warning)');
is_deeply([ sort grep { !/\.lock$/ } glob("$dir/import.map*") ], [$map], '... no temporary file left');
($rc, $o, $e) = ctl(qw(map import), "$in/rows.csv", @I, '--map-file', $map);
like($o, qr/^imported: $ROWS rows, 0 bound, $ROWS already bound/m, 'the same import again: nothing bound');
is(slurp($map), $text, '... the file unchanged');
($rc, $o, $e) = ctl(qw(map export), '--map-file', $map);
like($o, qr/^\Q$id1\E,,alice,0,0$/m, 'export of a mapping file: cert_id and account (no issuer, no times)');
chmod 0644, $map;              # the test's nginx workers run as nobody
for my $kind (@kinds) {
    my $srv = JPKIServer->start($kind, name => "import-file", site($kind, store => 'shm', map => $map));
    my $r = login_to($srv, 'user1');
    is($r->{json}{account} // '', 'alice', "$kind, mapping file: user1 signs in as alice")
        or diag "$r->{status} $r->{content}";
    push @servers, $srv;
}

# ---------------------------------------------------------------- prune
{
    my $past = time - 86400;
    my $future = time + 86400 * 30;
    # user2: expired; user1: revoked; two of user7's: hold, and not expired
    $redis->cmd('SET', "jpki:v1:mapi:$id2", "$tag|$past|$bound");
    $redis->cmd('SET', "jpki:v1:rev:$id1", "revoked|1|" . ($past) . "|" . time . "|ocsp", 'PX', 3600_000);
    my @u7 = map { $_->{cert_id} } @{ certs_of($servers[0], 'user7') };
    $redis->cmd('SET', "jpki:v1:rev:$u7[0]", "hold|6|$past|" . time . "|crl", 'PX', 3600_000);
    $redis->cmd('SET', "jpki:v1:mapi:$u7[1]", "$tag|$future|$bound");
    my $size = $redis->cmd('DBSIZE');
    my $snap = join "\n", map { $_ // '-' } map { $redis->cmd('GET', $_) }
        map { ("jpki:v1:map:$_", "jpki:v1:mapi:$_") } $id1, $id2, @u7;

    ($rc, $o, $e) = ctl(qw(map prune --dry-run), @R, '--secret-file', $secret);
    is($rc, 0, 'prune --dry-run: exit 0') or diag $e;
    is(join("\n", grep { /^would remove/ } split /\n/, $o),
       join("\n", sort { ($a =~ /=(\w+)/)[0] cmp ($b =~ /=(\w+)/)[0] }
            "would remove cert_id=$id1 why=revoked account=alice",
            "would remove cert_id=$id2 why=expired account=bob, the builder"),
       '... lists the revoked and the expired binding (cert_id, why, account), nothing else');
    like($o, qr/^prune \(dry run, nothing removed\): \d+ bindings, 2 to remove \(1 expired, 1 revoked\)$/m, '... and counts them');
    is($redis->cmd('DBSIZE'), $size, '... nothing removed');
    is(join("\n", map { $_ // '-' } map { $redis->cmd('GET', $_) }
                  map { ("jpki:v1:map:$_", "jpki:v1:mapi:$_") } $id1, $id2, @u7),
       $snap, '... nothing changed');
    is(scalar @{ certs_of($servers[0], 'alice') }, 1, '... alice keeps her certificate');

    ($rc, $o, $e) = ctl(qw(map prune), @R, '--secret-file', $secret);
    is($rc, 0, 'prune: exit 0') or diag $e;
    like($o, qr/^removed cert_id=$id1 why=revoked account=alice$/m, '... the revoked binding removed');
    like($o, qr/^removed cert_id=$id2 why=expired account=bob, the builder$/m, '... the expired one');
    like($o, qr/^pruned: \d+ bindings, 2 removed \(1 expired, 1 revoked\)$/m, '... counted');
    ok(!defined $redis->cmd('GET', "jpki:v1:map:$_") && !defined $redis->cmd('GET', "jpki:v1:mapi:$_"),
       "... map: and mapi: of $_ gone") for $id1, $id2;
    is(scalar @{ certs_of($servers[0], 'alice') }, 0, "... alice's list has it no more");
    is(scalar @{ certs_of($servers[0], 'bob, the builder') }, 0, "... nor bob's");
    my @left = map { $_->{cert_id} } @{ certs_of($servers[0], 'user7') };
    is(scalar @left, 3, '... certificateHold and a future not_after: kept');
    is($redis->cmd('DBSIZE'), $size - 6, '... 2 map:, 2 mapi:, 2 emptied acct: removed, nothing else');
    my $r = login_to($servers[0], 'user2');
    is($r->{json}{error} // '', 'account_not_mapped', "$kinds[0]: user2 (expired binding pruned): not mapped");
    ($rc, $o, $e) = ctl(qw(map prune), @R, '--secret-file', $secret);
    like($o, qr/^pruned: \d+ bindings, 0 removed/m, 'prune again: nothing left to remove');
    ($rc, $o, $e) = ctl(qw(map prune --map-file), $map, '--secret-file', $secret);
    is($rc, 2, 'prune of a mapping file: refused (no expiry, no revocation there)');
}

for my $srv (@servers) {
    my @problems = $srv->log_problems;
    ok(!@problems, $srv->kind . ' ' . $srv->name . ': no crash or alert in the log') or diag "@problems";
    $srv->stop;
}

# ---------------------------------------------------------------- no serial
# a dump of every key and value: redis-cli --scan, then GET and DUMP of
# each (pipelined)
{
    my @keys = split /\n/, `redis-cli -p @{[ $redis->port ]} --scan`;
    ok(@keys > $ROWS, 'redis-cli --scan lists the keys');
    my $sock = $redis->conn(0);
    open my $d, '>:raw', "$dir/redis.dump" or die;
    while (my @batch = splice @keys, 0, 2000) {
        print $sock JPKITest::Redis::resp('TYPE', $_), JPKITest::Redis::resp('DUMP', $_) for @batch;
        my @strings;
        for my $k (@batch) {
            my $type = JPKITest::Redis::read_reply($sock);
            my $dump = JPKITest::Redis::read_reply($sock) // '';
            print $d "$k\n$dump\n";
            push @strings, $k if $type eq 'string';
        }
        print $sock JPKITest::Redis::resp('GET', $_) for @strings;
        print $d((JPKITest::Redis::read_reply($sock) // ''), "\n") for @strings;
    }
    close $d;
    close $sock;
    ok(-s "$dir/redis.dump" > 1_000_000, 'a dump of every key and value');
    # every file of the run: jpkictl's output, the servers' logs and
    # configurations, the mapping file, the dump (not the OCSP responder's
    # log: it stands for the CA's)
    my $hits = `LC_ALL=C grep -r -a -F -i -o --exclude-dir=ocsp -f $in/serials $dir | head -5`;
    is($hits, '', 'no serial of the run (hex or decimal) in jpkictl\'s output, the logs, '
       . 'the mapping file or the store dump');
    # the test of the test: the serials are found where they are
    my $seen = `LC_ALL=C grep -a -F -i -c -f $in/serials $in/rows.csv`;
    chomp $seen;
    is($seen, $ROWS, '... (the same search finds each of them in the CSV)');
}

done_testing();
