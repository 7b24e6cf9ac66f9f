#!/usr/bin/perl
# t/crl-delta.t - `jpkictl crl sync` of a CRL that differs a little from the
# loaded one writes only the difference (a delta sync): the entries added,
# changed and removed and the new pointer in one MULTI/EXEC, into the
# loaded generation.  Against a real redis-server and the gate of each
# server (t/lib/JPKIServer.pm kinds): entries added are revoked, entries
# removed are not, the pointer's thisUpdate advances with them; what Redis
# received (INFO commandstats, total_net_input_bytes) is a small part of
# what a full sync of the same CRL sends; a large change, or --full, loads
# a new generation instead; a delta refused by the server (NOPERM inside
# the transaction, OOM) leaves the old set and pointer; a reader looking up
# a certificate both CRLs list never misses it during delta syncs.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKIServer;
use Time::HiRes qw(sleep);
use IO::Select;
use IO::Socket::INET;

skip_unless(qw(jpkictl pki openssl redis));
my @kinds = JPKIServer::kinds();

my $dir = tmpdir();
my $pki = $JPKITest::PKI;
my $J = $JPKICTL;
my $secret = write_secret("$dir/site.secret");
my $redis = JPKITest::Redis->start(name => 'redis');
my @R = ('--redis', '127.0.0.1:' . $redis->port);
my $iss = "card=$pki/ca1.pem,$pki/ca2.pem";
my %id;
for my $c (qw(user1 user2 rev-keyCompromise rev-certificateHold)) {
    $id{$c} = cert_id($c, $secret);
    $redis->cmd('SET', "jpki:v1:map:$id{$c}", "acct-$c");
}

# Runs jpkictl crl sync; (exit status, stdout, stderr).
sub sync {
    my ($crl, @more) = @_;
    return run_out($dir, $J, 'crl', 'sync', '--source', $crl, '--issuer', $iss,
                   '--secret-file', $secret, @R, @more);
}

# ---------------------------------------------------------------- CRLs

# ca2's CRLs from an index of our own: the rev-* certificates of the test
# PKI, FILLER other entries (serials of no certificate here), the first
# REPLACED of them swapped for new ones, user2 revoked when asked, the hold
# (rev-certificateHold) left out when asked.
my ($user2_serial) = `openssl x509 -in $pki/user2.pem -serial -noout` =~ /=([0-9A-F]+)/;
my ($user2_subj) = `openssl x509 -in $pki/user2.pem -subject -noout -nameopt compat`
                   =~ /^subject=(.*)$/m;
my ($hold_serial) = `openssl x509 -in $pki/rev-certificateHold.pem -serial -noout`
                    =~ /=([0-9A-F]+)/;
my $crln = 10;
sub make_crl {
    my (%o) = @_;
    my $idx = "$dir/index-$crln.txt";
    open my $o, '>', $idx or die;
    for (grep { /^R/ } split /^/m, slurp("$pki/ca2-index.txt")) {
        next if $o{no_hold} && /\t\Q$hold_serial\E\t/;
        print $o $_;
    }
    for my $i (1 .. $o{filler}) {
        my $n = $i <= ($o{replaced} // 0) ? 1_000_000 + $i : $i;
        printf $o "R\t351121223547Z\t261101000000Z,keyCompromise\t%02X%016X\tunknown\t/CN=X%d/C=JP\n",
            0x10 + ($n % 0x60), $n * 2654435761, $n;
    }
    print $o "R\t351231000000Z\t261201000000Z,keyCompromise\t$user2_serial\tunknown\t$user2_subj\n"
        if $o{user2};
    close $o;
    spew("$idx.attr", "unique_subject = no\n", 0644);
    my $out = "$dir/crl-$crln.crl";
    JPKITest::ca2_crl($dir, $idx, $crln++, $out) or die 'openssl ca -gencrl';
    sleep 1.1;                  # the next one's thisUpdate is later
    return $out;
}
my $base = make_crl(filler => 2000);
# 1%: 20 of the 2000 others replaced, user2 revoked, the hold released
my $day2 = make_crl(filler => 2000, replaced => 20, user2 => 1, no_hold => 1);
my $day3 = make_crl(filler => 2000, replaced => 20, user2 => 1);    # hold again
my $big = make_crl(filler => 2000, replaced => 600, user2 => 1);    # 30%
my $day5 = make_crl(filler => 2000, replaced => 610, user2 => 1);
my $day6 = make_crl(filler => 2000, replaced => 620, user2 => 1);
my $day7 = make_crl(filler => 2000, replaced => 630, user2 => 1, no_hold => 1);

# ---------------------------------------------------------------- helpers

my ($tag_key, $tag);
sub meta { return $redis->cmd('GET', $tag_key) }
sub fields { return split /\|/, (meta() // '') }

# The reader's procedure of docs/store-schema.md: (reason, date) when the
# cert_id is listed, () when not.
sub lookup {
    my ($conn, $cid) = @_;      # a JPKITest::Redis
    my ($gen, $shape) = split /\|/, ($conn->cmd('GET', $tag_key) // '');
    my ($bits) = ($shape // '') =~ /^b(\d+)$/ or return ('no pointer');
    my $bucket = sprintf '%0*x', int(($bits + 3) / 4), hex(substr $cid, 0, 8) >> (32 - $bits);
    my $o = int($bits / 8);
    my $v = $conn->cmd('HGET', "jpki:v1:crl:$tag:$gen:$bucket",
                       pack('H*', substr($cid, 2 * $o, 16 - 2 * $o)));
    return defined $v ? unpack('C N', $v) : ();
}

# What Redis received meanwhile: commands by name, bytes.
sub stats_reset { $redis->cmd('CONFIG', 'RESETSTAT') }
sub stats {
    my %s;
    for (split /\r?\n/, $redis->cmd('INFO', 'commandstats')) {
        $s{$1} = $2 if /^cmdstat_(\w+(?:\|\w+)?):calls=(\d+)/;
    }
    ($s{net_in}) = $redis->cmd('INFO', 'stats') =~ /^total_net_input_bytes:(\d+)/m;
    return \%s;
}

my %srv = map { ($_ => JPKIServer->start($_, name => 'delta',
    secret => $secret, issuer => 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem',
    store => 'redis=127.0.0.1:' . $redis->port, revocation => 'crl',
    crl_pointer_ttl => '0',
    locations => [ '/jpki/' => { endpoints => 1, throttle => 'off' } ])) } @kinds;

# The commands Redis runs while CODE runs, as [command, first argument]
# in their order (a MONITOR connection's lines, read until it is quiet).
sub monitored {
    my ($code) = @_;
    my $s = IO::Socket::INET->new('127.0.0.1:' . $redis->port) or die "monitor: $!";
    my $got = '';
    syswrite($s, "MONITOR\r\n");
    sysread($s, $got, 5) == 5 && $got eq "+OK\r\n" or die "MONITOR: $got";
    $code->();
    my $sel = IO::Select->new($s);
    $got = '';
    1 while $sel->can_read(0.5) && sysread($s, $got, 1 << 16, length $got);
    close $s;
    return map { /^\+[\d.]+ \[\d+ \S+\] "(\w+)"(?: "([^"]*)")?/ ? [uc $1, $2 // ''] : () }
           split /\r\n/, $got;
}

# Each server's gate on the three certificates the CRLs disagree or agree
# on: WANT{cert} is 200 or the error.
sub gates_agree {
    my ($what, %want) = @_;
    for my $name (@kinds) {
        for my $c (sort keys %want) {
            my $r = login_to($srv{$name}, $c);
            my $got = $r->{status} == 200 ? 200 : $r->{json}{error} // $r->{status};
            is($got, $want{$c}, "$name: $what: $c: $want{$c}");
        }
    }
}

# ---------------------------------------------------------------- first load

stats_reset();
my ($rc, $out, $err) = sync($base);
is($rc, 0, 'the base CRL (2007 entries): loaded') or diag($out, $err);
like($out, qr/^loaded issuer=card .* entries=2007 stored=2007 bits=\d+ gen=1 mode=full /,
     '... by a full sync (nothing loaded before)');
my $full = stats();
($tag_key) = grep { !/\.arl$/ } $redis->keys_like('jpki:v1:crlmeta:*');
($tag) = ($tag_key // '') =~ /crlmeta:(\w+)$/;
ok($tag, 'the list is in the store');
my @m1 = fields();
is($m1[0], 1, 'generation 1');
ok((lookup($redis, $id{'rev-certificateHold'}))[0] == 6, 'the hold is listed');
ok(!(lookup($redis, $id{user2})), 'user2 is not');
gates_agree('base CRL', user1 => 200, user2 => 200,
            'rev-keyCompromise' => 'cert_revoked', 'rev-certificateHold' => 'cert_on_hold');

# ---------------------------------------------------------------- delta

stats_reset();
($rc, $out, $err) = sync($day2);
is($rc, 0, 'a CRL 1% different: loaded') or diag($out, $err);
like($out, qr/ stored=2007 bits=\d+ gen=1 mode=delta changed=42 /,
     '... by a delta sync into the loaded generation: 20 replaced (40), user2 added, the hold removed')
    or diag($out);
my $delta = stats();
my @m2 = fields();
is($m2[0], 1, 'the pointer still names generation 1');
ok($m2[2] > $m1[2], "its thisUpdate advanced ($m1[2] -> $m2[2])");
is($m2[4], 11, '... and its cRLNumber');
is($m2[5], 2007, '... and its entry count');
is(scalar(grep { !/:1:[0-9a-f]+$/ } $redis->keys_like("jpki:v1:crl:$tag:*")), 0,
   'no other generation was written');
is((lookup($redis, $id{user2}))[0], 1, 'user2, added: listed (keyCompromise)');
ok(!(lookup($redis, $id{'rev-certificateHold'})), 'the hold, removed: not listed');
is((lookup($redis, $id{'rev-keyCompromise'}))[0], 1, 'rev-keyCompromise, in both: still listed');
# only the difference reached Redis: an HSET and an HDEL per bucket that
# gains or loses entries (and the record's HSET, the HDEL of loading_*),
# in one transaction; the bytes Redis received, a small part of a full
# sync's (each entry about 20 bytes of RESP)
my $nb = 2 ** ((split /\|/, meta())[1] =~ s/^b//r);
ok(($delta->{hset} // 0) >= 2 && $delta->{hset} <= $nb + 1,
   "HSET commands of the delta: $delta->{hset} (at most one a bucket, $nb, + crlinfo)");
ok(($delta->{hdel} // 0) >= 2 && $delta->{hdel} <= $nb + 1,
   "HDEL commands of the delta: $delta->{hdel}");
is($delta->{exec} // 0, 1, 'one transaction (EXEC)');
ok($delta->{net_in} < $full->{net_in} / 4,
   "bytes received by Redis: delta $delta->{net_in}, full $full->{net_in}");
is($redis->cmd('EXISTS', "jpki:v1:crllock:$tag"), 0, 'the lock is released');
gates_agree('after the delta', user1 => 200, user2 => 'cert_revoked',
            'rev-keyCompromise' => 'cert_revoked', 'rev-certificateHold' => 200);

# a hammering reader: rev-keyCompromise is in every CRL from
# here on
my $stop = "$dir/stop";
my $reader = JPKITest::fork_code('reader', "$dir/reader.log", sub {
    my ($n, $miss) = (0, 0);
    my $t0 = Time::HiRes::time();
    while (!-e $stop && Time::HiRes::time() - $t0 < 120) {
        my @v = lookup($redis, $id{'rev-keyCompromise'});
        $miss++ unless @v == 2 && $v[0] == 1;
        $n++;
    }
    spew("$dir/reader", "$n $miss");
});

($rc, $out, $err) = sync($day3);
like($out, qr/ mode=delta changed=1 /, 'the hold again: a delta of one entry') or diag($out, $err);
is((lookup($redis, $id{'rev-certificateHold'}))[0], 6, '... listed on hold again');
gates_agree('the hold again', 'rev-certificateHold' => 'cert_on_hold');

# ---------------------------------------------------------------- large change: full

stats_reset();
($rc, $out, $err) = sync($big);
is($rc, 0, 'a CRL 30% different: loaded') or diag($out, $err);
like($out, qr/ gen=2 mode=full changed=1160 /,
     '... as a new generation (1160 changes: over 10% of the entries)') or diag($out);
my @m3 = fields();
is($m3[0], 2, 'the pointer names generation 2');
my @old = $redis->keys_like("jpki:v1:crl:$tag:1:*");
ok(@old > 0 && $redis->cmd('TTL', $old[0]) > 0, 'generation 1 expires (--keep-old)');
is((lookup($redis, $id{user2}))[0], 1, 'user2 still listed');

($rc, $out, $err) = sync($day5, '--full');
like($out, qr/ gen=3 mode=full /, '--full: a small change loaded as a new generation too')
    or diag($out, $err);
unlike($out, qr/changed=/, '... without comparing');

($rc, $out, $err) = sync($day6);
like($out, qr/ gen=3 mode=delta changed=20 /, 'the next small change: a delta again') or diag($out, $err);

spew($stop, '');
waitpid $reader, 0;
my ($reads, $misses) = split ' ', (slurp("$dir/reader") // '0 0');
ok($reads > 50, "a reader made $reads lookups meanwhile");
is($misses, 0, '... and never missed the certificate every CRL lists');

# ---------------------------------------------------------------- refused deltas

# What the list looks like before a refused delta: the pointer, an entry
# the delta would remove (the hold, absent from day7), one it keeps.
sub unchanged_after {
    my ($what, $meta) = @_;
    is(meta(), $meta, "$what: the pointer is unchanged (thisUpdate not advanced)");
    is((lookup($redis, $id{'rev-certificateHold'}))[0], 6, "$what: the entry it would remove stays");
    is((lookup($redis, $id{user2}))[0], 1, "$what: the others stay");
    my %info = @{ $redis->cmd('HGETALL', "jpki:v1:crlinfo:$tag") };
    is($info{crl_number}, 15, "$what: crlinfo still names the loaded CRL");
}

# a user whose ACL refuses some writes of the transaction: queued
# commands refused make EXEC run nothing
sub refused_by_acl {
    my ($what, @keys) = @_;
    my $meta = meta();
    $redis->cmd('ACL', 'SETUSER', 'part', 'reset', 'on', '>part-pw', @keys, '+@all');
    my ($rc, $out, $err) = run_out($dir, $J, 'crl', 'sync', '--source', $day7,
        '--issuer', $iss, '--secret-file', $secret, @R, '--redis-user', 'part',
        '--redis-password-file', JPKITest::password_file('part-pw'));
    is($rc, 5, "$what: exit 5") or diag($out, $err);
    like($out, qr/^store_failed issuer=card error="switching the pointer"/, "$what: store_failed");
    like($err, qr/NOPERM/, "$what: Redis said why");
    unchanged_after($what, $meta);
    is($redis->cmd('EXISTS', "jpki:v1:crllock:$tag"), 0, "$what: the lock is released");
}
SKIP: {
    my ($rv) = $redis->cmd('INFO', 'server') =~ /^redis_version:(\d+)/m;
    skip "Redis $rv: no read-only key patterns (%R~, Redis 7)", 16 unless $rv >= 7;
    refused_by_acl('a delta whose pointer write is refused', '%R~jpki:v1:crlmeta:*',
                   '~jpki:v1:crl:*', '~jpki:v1:crlinfo:*', '~jpki:v1:crlgen:*',
                   '~jpki:v1:crllock:*');
    refused_by_acl('a delta whose entry writes are refused', '~jpki:v1:crlmeta:*',
                   '%R~jpki:v1:crl:*', '~jpki:v1:crlinfo:*', '~jpki:v1:crlgen:*',
                   '~jpki:v1:crllock:*');
}

{
    # the connection lost just before EXEC (jpkictl killed, the network
    # cut): a proxy that forwards everything up to the first EXEC
    my $pport = JPKITest::free_port();
    my $proxy = JPKITest::fork_code('proxy', "$dir/proxy.log", sub {
        my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $pport,
                                      Listen => 5, ReuseAddr => 1) or die "listen: $!";
        while (my $c = $l->accept) {
            my $u = IO::Socket::INET->new('127.0.0.1:' . $redis->port) or die;
            my $sel = IO::Select->new($c, $u);
            my $cut = 0;
            LOOP: while (my @r = $sel->can_read(30)) {
                for my $h (@r) {
                    my $n = sysread $h, my $buf, 65536;
                    last LOOP unless $n;
                    if ($h == $c && $buf =~ /\*1\r\n\$4\r\nEXEC\r\n/i) {
                        $cut = 1;
                        last LOOP;
                    }
                    syswrite($h == $c ? $u : $c, $buf);
                }
            }
            close $c;
            close $u;
            last if $cut;
        }
    });
    JPKITest::wait_port($pport);
    my $meta = meta();
    my ($rc, $out, $err) = run_out($dir, $J, 'crl', 'sync', '--source', $day7,
        '--issuer', $iss, '--secret-file', $secret, '--redis', "127.0.0.1:$pport");
    is($rc, 5, 'a delta cut off before EXEC: exit 5') or diag($out, $err);
    like($out, qr/^store_failed issuer=card /, '... store_failed');
    unchanged_after('cut before EXEC', $meta);
    $redis->cmd('DEL', "jpki:v1:crllock:$tag");     # its owner is gone
    waitpid $proxy, 0;
}

($rc, $out, $err) = sync($day7);
like($out, qr/ mode=delta changed=21 /, 'the same delta once Redis takes it') or diag($out, $err);
ok(!(lookup($redis, $id{'rev-certificateHold'})), '... the hold is released');
gates_agree('after the refused deltas', 'rev-certificateHold' => 200, user2 => 'cert_revoked');

# a loaded generation that is not what crl sync writes: no delta from it,
# a new generation, and why
# the field of a 64-bit key whose first bits are bucket B
sub field_in {
    my ($b, $bits) = @_;
    return substr(pack('Q>', ($b << (64 - $bits)) | 1), int($bits / 8));
}
my @bad = (
    ['a field of another length', sub { ('not-8-octets-long', "\x01\0\0\0\0") },
     qr/a field or value of another length or content/],
    ['a value of another length', sub { (field_in(@_), "\x01\0\0\0") },
     qr/a field or value of another length or content/],
    ['a reason octet 7', sub { (field_in(@_), "\x07\0\0\0\0") },
     qr/a field or value of another length or content/],
    ['an entry in the wrong bucket', sub { (field_in($_[0] ^ 1, $_[1]), "\x01\0\0\0\0") },
     qr/an entry in the wrong bucket/],
);
my $replaced = 640;
for my $t (@bad) {
    my ($what, $make, $why) = @$t;
    my ($g, $shape) = fields();
    my ($bits) = $shape =~ /^b(\d+)$/;
    SKIP: {
        skip 'the field holds no bucket bits', 2
            if $what =~ /wrong bucket/ && $bits % 8 == 0;
        my ($some) = sort $redis->keys_like("jpki:v1:crl:$tag:$g:*");
        my ($b) = $some =~ /:([0-9a-f]+)$/;
        $redis->cmd('HSET', $some, $make->(hex $b, $bits));
        my $crl = make_crl(filler => 2000, replaced => ($replaced += 10), user2 => 1);
        ($rc, $out, $err) = sync($crl);
        like($out, qr/ gen=@{[ $g + 1 ]} mode=full /, "$what in the loaded set: a full sync instead")
            or diag($out, $err);
        like($err, qr/no delta sync: the loaded generation $g: $why/, '... and why');
    }
}
{
    my ($g) = fields();
    my ($some) = sort $redis->keys_like("jpki:v1:crl:$tag:$g:*");
    $redis->cmd('SET', $some, 'a string');
    ($rc, $out, $err) = sync(make_crl(filler => 2000, replaced => ($replaced += 10), user2 => 1));
    like($out, qr/ gen=@{[ $g + 1 ]} mode=full /, 'a bucket that is not a hash: a full sync instead')
        or diag($out, $err);
    like($err, qr/WRONGTYPE.*\n.*no delta sync: the loaded generation $g: a bucket could not be read/s,
         '... and why');
}

# the limits of a delta: --delta-max, and buckets that would grow past
# hash-max-listpack-entries (a lower one set since the load)
($rc, $out, $err) = sync(make_crl(filler => 2000, replaced => ($replaced += 10), user2 => 1),
                         '--delta-max', 19);
like($out, qr/ mode=full changed=20 /, '20 changes with --delta-max 19: a full sync') or diag($out, $err);
$redis->cmd('CONFIG', 'SET', 'hash-max-listpack-entries', 4);
($rc, $out, $err) = sync(make_crl(filler => 2000, replaced => ($replaced += 10), user2 => 1));
$redis->cmd('CONFIG', 'SET', 'hash-max-listpack-entries', 128);
like($out, qr/ mode=full changed=20 /, 'buckets over hash-max-listpack-entries: a full sync')
    or diag($out, $err);
($rc, $out, $err) = sync(make_crl(filler => 2000, replaced => ($replaced += 10), user2 => 1),
                         '--delta-max', 20);
like($out, qr/ mode=delta changed=20 /, '20 changes with --delta-max 20: a delta') or diag($out, $err);

# the delta's transaction, bucket by bucket in their order, a bucket's
# HDEL before its HSET: no bucket holds more fields meanwhile than before
# or after (one at hash-max-listpack-entries would become a hash table
# for good), and Redis finds the bucket it just changed in its cache
{
    my @cmds = monitored(sub {
        ($rc, $out, $err) = sync(make_crl(filler => 2000, replaced => ($replaced += 90), user2 => 1));
    });
    like($out, qr/ mode=delta changed=180 /, '90 replaced: a delta') or diag($out, $err);
    # (bucket, 0 HDEL or 1 HSET) of each command on the list's buckets
    my @seq = map { $_->[1] =~ /^jpki:v1:crl:\Q$tag\E:\d+:([0-9a-f]+)$/
                    ? [hex $1, $_->[0] eq 'HSET' ? 1 : 0] : () }
              grep { $_->[0] =~ /^H(?:SET|DEL)$/ } @cmds;
    my %n;
    $n{ $_->[1] }++ for @seq;
    ok(($n{0} // 0) >= 2 && ($n{1} // 0) >= 2,
       "the transaction's HDEL and HSET commands on buckets: @{[ $n{0} // 0 ]}, @{[ $n{1} // 0 ]}");
    my @out_of_order = grep { $seq[$_ - 1][0] > $seq[$_][0]
                              || ($seq[$_ - 1][0] == $seq[$_][0] && $seq[$_ - 1][1] > $seq[$_][1]) }
                       1 .. $#seq;
    is(scalar(@out_of_order), 0, '... in the buckets\' order, HDEL before HSET in a bucket');
    my ($g) = fields();
    my @enc = grep { $_ ne 'listpack' }
              map { $redis->cmd('OBJECT', 'ENCODING', $_) } $redis->keys_like("jpki:v1:crl:$tag:$g:*");
    is(scalar(@enc), 0, '... and every bucket still a listpack');
}
($rc, $out, $err) = sync($base, '--delta-max', 'x');
is($rc, 2, '--delta-max x: exit 2');
gates_agree('at the end', user1 => 200, user2 => 'cert_revoked',
            'rev-keyCompromise' => 'cert_revoked', 'rev-certificateHold' => 'cert_on_hold');

# ---------------------------------------------------------------- local state

# --state-dir: after each sync, the state of the list (each entry's keyed
# digest and stored cert_id octets); the next delta takes the changes from
# it and the walk alone (no HGETALL: the list is not read back), and
# loads exactly the set a full sync loads.  A state that is missing,
# changed, of another load, secret or list is a note and the read-back
# delta.
my $sd = "$dir/state";
mkdir $sd, 0700;
my $sfile = "$sd/$tag.crlstate";

# The loaded set of database DB, whatever its generation and bucket bits:
# "cert_id octets=value" lines, sorted.
sub loaded_set {
    my ($db) = @_;
    my $meta = $redis->set_in($db, 'GET', $tag_key) // return '';
    my ($g, $shape) = split /\|/, $meta;
    my ($bits) = $shape =~ /^b(\d+)$/;
    my $pre = int($bits / 8);
    my @l;
    for my $k ($redis->keys_like("jpki:v1:crl:$tag:$g:*", $db)) {
        my ($b) = $k =~ /:([0-9a-f]+)$/;
        my %h = @{ $redis->set_in($db, 'HGETALL', $k) };
        my $head = join '', map { sprintf '%02x', (hex($b) >> ($bits - 8 * ($_ + 1))) & 0xff }
                            0 .. $pre - 1;
        push @l, map { $head . unpack('H*', $_) . '=' . unpack('H*', $h{$_}) } keys %h;
    }
    return join "\n", sort @l;
}
# CRL loaded by a full sync into database 1: what a delta must load
sub full_set {
    my ($crl) = @_;
    my ($rc, $out, $err) = sync($crl, '--full', '--redis-db', 1);
    $rc == 0 or diag($out, $err);
    return loaded_set(1);
}
# sync CRL with the state: (stdout, stderr, HGETALL calls, the set)
sub state_sync {
    my ($crl, @more) = @_;
    stats_reset();
    my ($rc, $out, $err) = sync($crl, '--state-dir', $sd, @more);
    is($rc, 0, "state sync of $crl: loaded") or diag($out, $err);
    return ($out, $err, stats()->{hgetall} // 0, loaded_set(0));
}

my $n = 700;
my ($s_out, $s_err, $s_hget, $s_set) = state_sync(make_crl(filler => 2000, replaced => $n, user2 => 1),
                                                   '--full');
like($s_out, qr/ mode=full /, 'a full sync with --state-dir');
ok(-f $sfile, "it writes the list's state ($sfile)");
is((stat $sfile)[2] & 0777, 0600, '... mode 0600');
{
    # no serial in clear: the CRL's serials' octets are nowhere in it
    my $st = slurp($sfile);
    my @serials = map { pack 'H*', sprintf '%02X%016X', 0x10 + ($_ % 0x60), $_ * 2654435761 }
                  (1 .. 2000, 1_000_001 .. 1_000_000 + $n);
    push @serials, map { pack 'H*', (length($_) % 2 ? '0' : '') . $_ } $user2_serial, $hold_serial;
    is(scalar(grep { index($st, $_) >= 0 } @serials), 0,
       'the state holds none of the ' . @serials . ' serials');
}

my $crl = make_crl(filler => 2000, replaced => ($n += 10), user2 => 1, no_hold => 1);
($s_out, $s_err, $s_hget, $s_set) = state_sync($crl);
like($s_out, qr/ mode=delta changed=21 /, 'the next CRL: a delta from the state') or diag($s_out);
unlike($s_err, qr/note:/, '... without a note');
is($s_hget, 1, '... and without reading the list back (one HGETALL: its record)');
ok($s_set eq full_set($crl) && length $s_set, '... loading exactly the set a full sync loads');
ok(!(lookup($redis, $id{'rev-certificateHold'})), '... the hold released');

# each state not to be trusted: a note, the list read back, the same set
my $good = slurp($sfile);
my $other_secret = write_secret("$dir/other.secret");
my @cases = (
    ['a missing state', sub { unlink $sfile }, qr/there is none yet/],
    ['a state of another load of the list', sub { spew($sfile, $good, 0600) },
     qr/it describes another load of the list/],
    ['a state with a byte changed', sub {
        my $st = slurp($sfile);
        substr($st, length($st) - 100, 1) ^= "\x01";      # a record
        spew($sfile, $st, 0600) }, qr/does not verify/],
    ['a state written with another secret', sub {
        mkdir "$dir/state2";
        run_out($dir, $J, 'crl', 'sync', '--source', $crl, '--issuer', $iss,
                '--secret-file', $other_secret, @R, '--redis-db', 2,
                '--state-dir', "$dir/state2");
        spew($sfile, slurp("$dir/state2/$tag.crlstate"), 0600) }, qr/does not verify/],
    ['a state of another list', sub {
        my ($rc, $out, $err) = run_out($dir, $J, 'crl', 'sync', '--source', "$pki/ca1.crl",
            '--issuer', $iss, '--secret-file', $secret, @R, '--redis-db', 2,
            '--state-dir', "$dir/state2");
        my ($l) = $out =~ / list=(\w+)/;
        spew($sfile, slurp("$dir/state2/$l.crlstate"), 0600) }, qr/is of another list/],
);
for my $c (@cases) {
    my ($what, $prep, $why) = @$c;
    my $good_now = slurp($sfile);
    $prep->();
    $crl = make_crl(filler => 2000, replaced => ($n += 10), user2 => 1);
    ($s_out, $s_err, $s_hget, $s_set) = state_sync($crl);
    like($s_err, qr/note: the local state of list $tag is not used: $why/, "$what: a note says why")
        or diag($s_err);
    like($s_out, qr/ mode=delta changed=\d+ /, "$what: a delta all the same");
    ok($s_hget > 1, "$what: the list read back ($s_hget HGETALL)");
    ok($s_set eq full_set($crl), "$what: the set a full sync loads");
    ok(-f $sfile && slurp($sfile) ne $good_now, "$what: a new state written");
}
# the state usable again after its fallback
$crl = make_crl(filler => 2000, replaced => ($n += 10), user2 => 1, no_hold => 1);
($s_out, $s_err, $s_hget, $s_set) = state_sync($crl);
is($s_hget, 1, 'after them, a delta from the state again');
ok($s_set eq full_set($crl), '... the set a full sync loads');

# a certificate listed twice, once unchanged and once new (crlgen's
# TWICE: a second entry of the same serial, a day later): the walk cannot
# tell its value without the other entry, so the state is not used and
# the list is read back; in database 3 (crlgen's CRLs, their thisUpdate a
# minute ago, would be older than the ones loaded above)
SKIP: {
    my $gen = "$JPKITest::BUILD/crlgen";
    skip 'build/crlgen not built (make build/crlgen)', 5 unless -x $gen;
    my $sd3 = "$dir/state3";
    mkdir $sd3, 0700;
    my ($g1, $g2) = ("$dir/gen-1.crl", "$dir/gen-2.crl");
    system("$gen $pki/ca2.pem $pki/ca2.key 3000 1 $g1 >/dev/null 2>&1") == 0
        && system("$gen $pki/ca2.pem $pki/ca2.key 3000 2 $g2 30 2 >/dev/null 2>&1") == 0
        or die 'crlgen failed';
    my ($rc, $out, $err) = sync($g1, '--redis-db', 3, '--state-dir', $sd3);
    like($out, qr/ mode=full /, 'crlgen CRL: loaded with a state') or diag($out, $err);
    ($rc, $out, $err) = sync($g2, '--redis-db', 3, '--state-dir', $sd3);
    like($err, qr/note: the local state of list $tag is not used: an unchanged entry shares its stored cert_id octets with a changed one/,
         'an entry listed again: the state is not used, and why') or diag($out, $err);
    like($out, qr/ mode=delta changed=\d+ /, '... a delta all the same') or diag($out, $err);
    unlike($err, qr/warning/, '... without a warning') or diag($err);
    sync($g2, '--full', '--redis-db', 4);
    ok(loaded_set(3) eq loaded_set(4) && length loaded_set(4), '... loading the set a full sync loads');
}

$_->stop for values %srv;
done_testing();
