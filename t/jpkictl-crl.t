#!/usr/bin/perl
# t/jpkictl-crl.t - jpkictl crl sync | crl status | purge --revocation |
# recheck against a real redis-server (and a local HTTP server, and a real
# slapd when Debian's slapd is installed), with the test PKI (make pki);
# replies a real server never gives come from a fake one (fake_redis).
#   prove -v t/jpkictl-crl.t
# Env: JPKI_BUILD (default build), JPKI_TEST_PKI (default build/pki).
#
# Lookups are made here exactly as docs/store-schema.md tells the gate to:
# GET jpki:v1:crlmeta:<list>, then HGET of the bucket and the binary field;
# a list is one 16-hex list tag (of the issuer tag and the key tag, both
# in its crlinfo), the CRLs of one CA key.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use JPKITest ();
use File::Temp qw(tempdir);
use File::Copy qw(copy);
use IO::Socket::INET;
use MIME::Base64 ();
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);

sub now { Time::HiRes::time() }

my $B   = $ENV{JPKI_BUILD}    // 'build';
my $P   = $ENV{JPKI_TEST_PKI} // "$B/pki";
my $J   = $ENV{JPKI_JPKICTL} // "$B/jpkictl";
my $dir = tempdir(CLEANUP => 1);

plan skip_all => "$J not built (make build/jpkictl)" unless -x $J;
plan skip_all => "no test PKI in $P (make pki)" unless -f "$P/ca2.crl";
plan skip_all => 'no redis-server' unless -x '/usr/bin/redis-server';

my @kids;
END { kill 'TERM', @kids if @kids; }

# ---------------------------------------------------------------- helpers

sub slurp { my ($f) = @_; open my $h, '<:raw', $f or die "$f: $!"; local $/; my $d = <$h>; $d // '' }
sub spew  { my ($f, $d) = @_; open my $h, '>:raw', $f or die "$f: $!"; print $h $d; close $h or die }

my $all_out = '';
our $ctl_deadline = 0;    # seconds; a run still going then is killed (137)
# Runs jpkictl; returns (exit status, stdout, stderr).
sub ctl {
    my @args = @_;
    my ($o, $e) = ("$dir/out", "$dir/err");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $o or die; open STDERR, '>', $e or die;
        exec $J, @args or POSIX::_exit(127);
    }
    if ($ctl_deadline) {
        my $t0 = now();
        sleep 0.05 while waitpid($pid, WNOHANG) == 0 && now() - $t0 < $ctl_deadline;
        if (kill 0, $pid) { kill 'KILL', $pid; waitpid $pid, 0 }
    } else {
        waitpid $pid, 0;
    }
    my $st = $?;
    my ($so, $se) = (slurp($o), slurp($e));
    $all_out .= $so . $se;
    return ($st & 127 ? 128 + ($st & 127) : $st >> 8, $so, $se);
}

# reserved among the test files run in parallel (t/lib/JPKITest.pm)
sub free_port { return JPKITest::free_port() }

sub wait_port {
    my ($port) = @_;
    for (1 .. 100) {
        return 1 if IO::Socket::INET->new("127.0.0.1:$port");
        sleep 0.05;
    }
    return 0;
}

# A tiny RESP client (core Perl): cmd(...) returns the reply; errors come
# back as a hash {err => text}.
package MiniRedis {
    sub new {
        my ($c, $port) = @_;
        my $s = IO::Socket::INET->new("127.0.0.1:$port") or die "redis: $!";
        binmode $s;
        return bless {s => $s}, $c;
    }
    sub cmd {
        my ($self, @a) = @_;
        my $m = '*' . @a . "\r\n";
        $m .= '$' . length($_) . "\r\n$_\r\n" for @a;
        print { $self->{s} } $m;
        return $self->reply;
    }
    sub reply {
        my ($self) = @_;
        my $s = $self->{s};
        local $/ = "\r\n";
        my $l = <$s>;
        die 'redis: connection closed' unless defined $l;
        chomp $l;
        my $t = substr $l, 0, 1, '';
        return $l if $t eq '+';
        return {err => $l} if $t eq '-';
        return 0 + $l if $t eq ':';
        if ($t eq '$') {
            return undef if $l < 0;
            my $d = '';
            while (length $d < $l + 2) {
                my $n = read $s, $d, $l + 2 - length $d, length $d;
                die 'redis: short read' unless $n;
            }
            return substr $d, 0, $l;
        }
        if ($t eq '*') {
            return undef if $l < 0;
            return [map { $self->reply } 1 .. $l];
        }
        die "redis: unexpected reply type $t";
    }
    sub keys_matching {
        my ($self, $pat) = @_;
        my ($cur, @k) = (0);
        do {
            my $r = $self->cmd('SCAN', $cur, 'MATCH', $pat, 'COUNT', 1000);
            $cur = $r->[0];
            push @k, @{ $r->[1] };
        } while ($cur ne '0');
        return wantarray ? sort @k : scalar @k;
    }
}

# The generation, bucket and field of a cert_id (hex) under a pointer:
# "b<bits>": the bucket is the cert_id's first bits bits (ceil(bits/4) hex
# digits), the field its octets bits/8 .. 7; "<k>" (an older jpkictl's): k
# hex digits, octets k/2 .. 15.
sub entry_of {
    my ($meta, $id) = @_;
    my ($gen, $shape) = split /\|/, $meta;
    if ($shape =~ /^b(\d+)$/) {
        my $bits = $1;
        my $bucket = sprintf '%0*x', int(($bits + 3) / 4),
                             hex(substr $id, 0, 8) >> (32 - $bits);
        my $o = int($bits / 8);
        return ($gen, $bucket, pack('H*', substr($id, 2 * $o, 16 - 2 * $o)));
    }
    return ($gen, substr($id, 0, $shape), pack('H*', substr($id, 2 * int($shape / 2))));
}

# The reader's procedure of docs/store-schema.md.  Returns undef when the
# certificate is not listed, (reason, revoked_at) when it is, 'nolist'
# when no CRL is loaded.
sub lookup {
    my ($r, $tag, $id) = @_;
    my $meta = $r->cmd('GET', "jpki:v1:crlmeta:$tag");
    return 'nolist' unless defined $meta;
    my ($gen, $bucket, $field) = entry_of($meta, $id);
    my $v = $r->cmd('HGET', "jpki:v1:crl:$tag:$gen:$bucket", $field);
    return undef unless defined $v;
    my ($reason, $at) = unpack 'C N', $v;
    return ($reason == 255 ? -1 : $reason, $at);
}

# ---------------------------------------------------------------- setup

open my $fh, '>', "$dir/secret" or die;
printf $fh "secret %s\n", unpack('H*', join '', map { chr int rand 256 } 1 .. 32);
close $fh;
chmod 0600, "$dir/secret";
open $fh, '>', "$dir/secret2" or die;
printf $fh "secret %s\n", unpack('H*', join '', map { chr int rand 256 } 1 .. 32);
close $fh;
chmod 0600, "$dir/secret2";

my $card2  = "card=$P/ca2.pem";
my $card12 = "card=$P/ca1.pem,$P/ca2.pem";
my $phone  = "phone=$P/phone-ca.pem";

sub cert_id {
    my ($cert, $iss) = @_;
    my ($rc, $out) = ctl('cert-check', '--cert', "$P/$cert.pem", '--issuer', $iss,
                         '--secret-file', "$dir/secret");
    my ($id) = $out =~ /cert_id=([0-9a-f]{32})/;
    return $id;
}
my %id = map { $_ => cert_id($_, $card2) }
    qw(rev-keyCompromise rev-certificateHold rev-unspecified rev-superseded user1 user2);
my $id_old = cert_id('user-old-revoked', $card12);
ok($id{$_}, "cert_id of $_") for sort keys %id;
my %serial;
for my $c (qw(rev-keyCompromise rev-certificateHold rev-unspecified rev-superseded
              rev-cACompromise rev-affiliationChanged rev-cessationOfOperation
              user-old-revoked user1 user2)) {
    my ($s) = `openssl x509 -in $P/$c.pem -serial -noout` =~ /=([0-9A-F]+)/;
    $serial{$c} = $s;
}

my $port = free_port();
my $rpid = fork // die;
if ($rpid == 0) {
    chdir $dir;
    open STDOUT, '>', '/dev/null';
    { exec '/usr/bin/redis-server', '--port', $port, '--bind', '127.0.0.1', '--save', '',
          '--appendonly', 'no' };
    POSIX::_exit(1);
}
push @kids, $rpid;
ok(wait_port($port), 'redis-server answers');
my $r = MiniRedis->new($port);
# an ACL user with exactly the rights docs/operations.md lists
is($r->cmd('ACL', 'SETUSER', 'jpkictl', 'on', '>ctl-pw', '~jpki:*', '-@all',
           qw(+get +set +del +unlink +scan +hset +hget +hgetall +hdel +expire
              +pexpire +incr +watch +unwatch +multi +exec +discard +eval)), 'OK',
   'ACL user for jpkictl');
my @R  = ('--redis', "127.0.0.1:$port", '--redis-user', 'jpkictl',
          '--redis-password-file', JPKITest::password_file('ctl-pw'));
my @S  = ('--secret-file', "$dir/secret");

sub sync {
    my ($src, $iss, @more) = @_;
    return ctl('crl', 'sync', '--source', $src, '--issuer', $iss, @S, @R, @more);
}

my ($rc, $out, $err);

# ---------------------------------------------------------------- usage

($rc, $out, $err) = ctl('crl', 'sync', '--issuer', $card2, @S, @R);
is($rc, 2, 'crl sync without --source: exit 2');
like($err, qr/--source is required/, '... says so');
($rc) = ctl('crl', 'sync', '--source', "$P/ca2.crl", '--issuer', $card2, @R);
is($rc, 2, 'crl sync without --secret-file: exit 2');
($rc) = sync("$P/ca2.crl", $card2, '--watch', '0');
is($rc, 2, '--watch 0: exit 2');
($rc) = sync("$P/ca2.crl", $card2, '--keep-old', 'x');
is($rc, 2, '--keep-old x: exit 2');
# readers may keep a pointer 60 s (the gate's largest crl_pointer_ttl), then
# read the generation it names: a replaced one must outlive that
($rc, $out, $err) = sync("$P/ca2.crl", $card2, '--keep-old', 89);
is($rc, 2, '--keep-old 89 (under the pointer cache time + a request): exit 2');
like($err, qr/--keep-old: expected a number, 90\.\./, '... says the least value');
($rc, $out) = ctl('crl', 'status', @R);
is($rc, 1, 'crl status with nothing loaded: exit 1');
like($out, qr/^missing /m, '... "missing"');

# ---------------------------------------------------------------- first load

($rc, $out, $err) = sync("$P/ca2.crl", $card2);
is($rc, 0, 'sync ca2.crl: exit 0') or diag($out, $err);
like($out, qr/^loaded issuer=card crl_number=2 .* entries=7 stored=7 bits=1 gen=1 mode=full /,
     'one line: loaded, crlNumber, entries');
($rc, $out) = ctl('crl', 'status', @R, '--issuer', $card2);
is($rc, 0, 'crl status: exit 0');
my ($tag) = $out =~ /^fresh issuer=card list=([0-9a-f]{16}) kind=crl crl_number=2 .* entries=7 /m;
ok($tag, 'crl status: fresh, issuer, list (a list tag), number, entries') or diag($out);
# the issuer tag (soft records): in the list's record, not in its name
my $itag = $r->cmd('HGET', 'jpki:v1:crlinfo:' . ($tag // ''), 'issuer_tag') // '';
like($itag, qr/^[0-9a-f]{16}$/, 'crlinfo: the issuer tag');
isnt($itag, $tag, '... the list is not named by it');
like($out, qr/age=\d+s .*source=\Q$P\E\/ca2.crl$/m, 'crl status: age and source');
# with the gate's secret file the list's id_check is compared: a CRL
# loaded with another secret is found by the gate but never matches
($rc, $out) = ctl('crl', 'status', @R, '--issuer', $card2, @S);
is($rc, 0, 'crl status with the same --secret-file: exit 0');
like($out, qr/^fresh issuer=card list=\Q$tag\E /m, '... fresh');
($rc, $out) = ctl('crl', 'status', @R, '--issuer', $card2, '--secret-file',
                  "$dir/secret2");
is($rc, 1, 'crl status with another --secret-file: exit 1');
like($out, qr/^mismatch issuer=card list=\Q$tag\E kind=crl detail="id_check differs: /m,
     '... "mismatch", the list and why') or diag($out);
unlike($out, qr/^fresh issuer=card list=\Q$tag\E /m, '... not "fresh"');
($rc, $out, $err) = ctl('crl', 'status', @R, @S);
is($rc, 2, 'crl status --secret-file without --issuer: exit 2');

is((lookup($r, $tag, $id{'rev-keyCompromise'}))[0], 1, 'keyCompromise listed with reason 1');
my $hold_at = (lookup($r, $tag, $id{'rev-certificateHold'}))[1];
is((lookup($r, $tag, $id{'rev-certificateHold'}))[0], 6, 'certificateHold listed with reason 6');
ok(abs($hold_at - (time - 10 * 86400)) < 86400 * 2, 'revocation date kept (10 days ago)');
is((lookup($r, $tag, $id{'rev-unspecified'}))[0], 0, 'unspecified listed with reason 0');
is(scalar(() = lookup($r, $tag, $id{user1})), 1, 'user1 not listed');
ok(!defined((lookup($r, $tag, $id{user1}))[0]), 'user1 lookup: nil');
my $meta1 = $r->cmd('GET', "jpki:v1:crlmeta:$tag");
like($meta1, qr/^1\|b1\|\d+\|\d+\|2\|7\|\d+$/, 'pointer: gen|shape|thisUpdate|nextUpdate|number|entries|loaded_at');
my $info = { @{ $r->cmd('HGETALL', "jpki:v1:crlinfo:$tag") } };
is($info->{issuer}, 'card', 'crlinfo: issuer');
like($info->{sha256}, qr/^[0-9a-f]{64}$/, 'crlinfo: sha256');
like($info->{key_tag}, qr/^[0-9a-f]{16}$/, 'crlinfo: key_tag (the CA key hashed)');
ok(!exists $info->{loading_gen}, 'crlinfo: no load in progress');
for my $k ($r->keys_matching("jpki:v1:crl:$tag:1:*")) {
    is($r->cmd('OBJECT', 'ENCODING', $k), 'listpack', "bucket $k is a compact listpack");
    last;
}

# ---------------------------------------------------------------- refusals

sub unchanged_store {
    my ($what) = @_;
    is($r->cmd('GET', "jpki:v1:crlmeta:$tag"), $meta1, "$what: the pointer is unchanged");
    is((lookup($r, $tag, $id{'rev-keyCompromise'}))[0], 1, "$what: the old set still answers");
    is(scalar($r->keys_matching("jpki:v1:crl:$tag:2:*")), 0, "$what: no new generation left behind");
}

($rc, $out) = sync("$P/ca2.crl", $card2);
is($rc, 3, 'the same CRL again: exit 3');
like($out, qr/^unchanged issuer=card crl_number=2 /, '... "unchanged"');
unchanged_store('unchanged');

($rc, $out) = sync("$P/ca2-stale.crl", $card2);
is($rc, 3, 'an older CRL (crlNumber 1): exit 3');
like($out, qr/^older issuer=card crl_number=1 .* loaded_crl_number=2$/, '... "older"');
unchanged_store('older');

($rc, $out) = sync("$P/ca2-wrongkey.crl", $card2);
is($rc, 1, 'a CRL signed by the wrong key: exit 1');
like($out, qr/^invalid source=\S+ reason=crl_(unknown_issuer|bad_signature) /, '... "invalid" with the reason');
unchanged_store('wrong key');

my $crl = slurp("$P/ca2-released.crl");
spew("$dir/truncated.crl", substr($crl, 0, length($crl) - 40));
($rc, $out) = sync("$dir/truncated.crl", $card2);
is($rc, 1, 'a truncated CRL: exit 1');
like($out, qr/^invalid .*reason=crl_malformed/, '... crl_malformed');
unchanged_store('truncated');

($rc, $out) = sync("$P/ca1.crl", $card2);
is($rc, 1, 'ca1.crl with only ca2 configured: exit 1');
like($out, qr/reason=crl_unknown_issuer/, '... crl_unknown_issuer');
unchanged_store('other issuer');

($rc, $out) = sync("$P/ca2-future.crl", $card2);
is($rc, 1, 'a CRL not yet valid: exit 1');
like($out, qr/^invalid .*reason=crl_not_yet_valid/, '... not yet valid');
unchanged_store('future');

($rc, $out) = sync("$dir/none.crl", $card2);
is($rc, 4, 'a missing file: exit 4');
like($out, qr/^fetch_failed /, '... fetch_failed');

($rc, $out) = ctl('crl', 'sync', '--source', "$P/ca2-released.crl", '--issuer', $card2, @S,
                  '--redis', "127.0.0.1:$port", '--redis-user', 'jpkictl', '--redis-password-file', JPKITest::password_file('bad'));
is($rc, 5, 'a wrong Redis password: exit 5');
like($out, qr/^store_failed /, '... store_failed');
unchanged_store('wrong password');

# a load that fails half way (Redis out of memory) leaves the old set
{
    my $idx = "$dir/big-index.txt";
    open my $o, '>', $idx or die;
    print $o grep { /^R/ } split /^/m, slurp("$P/ca2-index.txt");
    printf $o "R\t351121223547Z\t261101000000Z,keyCompromise\t%02X%016X\tunknown\t/CN=X%d/C=JP\n",
        0x10 + ($_ % 0x60), $_ * 2654435761, $_ for 1 .. 30000;
    close $o;
}
my $crln = 10;
sub gencrl {    # a CRL of ca2 with the 7 rev-* entries + 30000 others
    my ($out) = @_;
    JPKITest::ca2_crl($dir, "$dir/big-index.txt", $crln++, $out) or die 'openssl ca -gencrl';
}
gencrl("$dir/big10.crl");
my $used = $r->cmd('INFO', 'memory') =~ /^used_memory:(\d+)/m ? $1 : 0;
$r->cmd('CONFIG', 'SET', 'maxmemory', $used + 300_000);
$r->cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
($rc, $out, $err) = sync("$dir/big10.crl", $card2);
is($rc, 5, 'Redis full during the load: exit 5');
like($out, qr/^store_failed issuer=card /, '... store_failed');
like($err, qr/OOM|memory/i, '... Redis said why');
$r->cmd('CONFIG', 'SET', 'maxmemory', 0);
unchanged_store('failed load');
$info = { @{ $r->cmd('HGETALL', "jpki:v1:crlinfo:$tag") } };
ok(!exists $info->{loading_gen}, 'the failed load is cleaned up');

# a command refused inside the MULTI of the pointer switch (a user that may
# only read the pointer: NOPERM, as OOM would be): the transaction is
# discarded, so that the clean-up and the lock release that follow are
# carried out, not queued in it
SKIP: {
    my ($rv) = $r->cmd('INFO', 'server') =~ /^redis_version:(\d+)/m;
    skip "Redis $rv: no read-only key patterns (%R~, Redis 7)", 10 unless $rv >= 7;
    is($r->cmd('ACL', 'SETUSER', 'roptr', 'on', '>ro-pw', '%R~jpki:v1:crlmeta:*',
               '~jpki:v1:crl:*', '~jpki:v1:crlinfo:*', '~jpki:v1:crlgen:*', '~jpki:v1:crllock:*',
               '-@all', qw(+get +set +del +unlink +scan +hset +hget +hgetall +hdel +expire
                           +pexpire +incr +watch +unwatch +multi +exec +discard +eval)), 'OK',
       'ACL user that cannot write the pointer');
    ($rc, $out, $err) = ctl('crl', 'sync', '--source', "$P/ca2-released.crl", '--issuer', $card2,
                            @S, '--redis', "127.0.0.1:$port", '--redis-user', 'roptr',
                            '--redis-password-file', JPKITest::password_file('ro-pw'));
    is($rc, 5, 'the pointer switch refused: exit 5');
    like($out, qr/^store_failed issuer=card error="switching the pointer"/, '... store_failed');
    like($err, qr/NOPERM/, '... Redis said why');
    is($r->cmd('EXISTS', "jpki:v1:crllock:$tag"), 0, '... the lock is released');
    is(scalar(grep { !/:1:[0-9a-f]+$/ } $r->keys_matching("jpki:v1:crl:$tag:*")), 0,
       '... the new generation is removed');
    $info = { @{ $r->cmd('HGETALL', "jpki:v1:crlinfo:$tag") } };
    ok(!exists $info->{loading_gen}, '... and its record');
    unchanged_store('refused switch');
}

# a failed load that could not clean up (killed): the next sync removes it
$r->cmd('HSET', "jpki:v1:crlinfo:$tag", 'loading_gen', 77, 'loading_k', 1, 'loading_since', time);
$r->cmd('HSET', "jpki:v1:crl:$tag:77:a", 'x', 'y');

# ---------------------------------------------------------------- hold, release

($rc, $out, $err) = sync("$P/ca2-released.crl", $card2, '--keep-old', 90);
is($rc, 0, 'ca2-released.crl (crlNumber 3): exit 0') or diag($out, $err);
like($out, qr/^loaded issuer=card crl_number=3 .* entries=6 /, '... loaded, 6 entries');
like($err, qr/removing generation 77/, 'the leftovers of an unfinished load are removed');
is(scalar($r->keys_matching("jpki:v1:crl:$tag:77:*")), 0, '... all of them');
ok(!defined((lookup($r, $tag, $id{'rev-certificateHold'}))[0]), 'the hold is released');
is((lookup($r, $tag, $id{'rev-keyCompromise'}))[0], 1, 'keyCompromise still listed');
my @old = $r->keys_matching("jpki:v1:crl:$tag:1:*");
ok(@old > 0, 'the replaced generation is still readable');
my $ttl = $r->cmd('TTL', $old[0]);
ok($ttl > 0 && $ttl <= 90, "... and expires (--keep-old 90: TTL $ttl)");
is($r->cmd('TTL', "jpki:v1:crlmeta:$tag"), -1, 'the pointer has no TTL');
$info = { @{ $r->cmd('HGETALL', "jpki:v1:crlinfo:$tag") } };
ok(!exists $info->{prev_gen}, 'crlinfo: the previous generation is handled');

($rc, $out) = sync("$P/ca2-empty.crl", $card2);
is($rc, 0, 'ca2-empty.crl (crlNumber 4): exit 0');
like($out, qr/entries=0 stored=0 /, '... no entries');
ok(!defined((lookup($r, $tag, $id{'rev-keyCompromise'}))[0]), 'nothing listed any more');
($rc, $out) = sync("$P/ca2.crl", $card2);
is($rc, 3, 'ca2.crl (2) after ca2-empty.crl (4): older, exit 3');

# ---------------------------------------------------------------- atomic swap

# A reader hammers the lookup of a certificate every CRL lists while sync
# swaps generations: it must never miss it.
gencrl("$dir/big$_.crl") for 11 .. 16;
($rc, $out) = sync("$dir/big10.crl", $card2);
is($rc, 0, 'a large CRL (30007 entries) loaded');
my $stop = "$dir/stop-reader";
my $rres = "$dir/reader";
my $reader = fork // die;
if ($reader == 0) {
    my $rr = MiniRedis->new($port);
    my ($n, $miss, %gens) = (0, 0);
    my $t0 = now();
    while (!-e $stop && now() - $t0 < 120) {
        for (1 .. 50) {
            my $meta = $rr->cmd('GET', "jpki:v1:crlmeta:$tag");
            my ($g) = split /\|/, $meta;
            $gens{$g} = 1;
            my @v = lookup($rr, $tag, $id{'rev-keyCompromise'});
            $miss++ unless defined $v[0] && $v[0] == 1;
            $n++;
        }
    }
    spew($rres, "$n $miss " . scalar(keys %gens));
    POSIX::_exit(0);
}
push @kids, $reader;
my $swaps = 0;
for my $i (11 .. 16) {
    # --full: a new generation each time (the same entries would be a
    # delta sync of nothing but the pointer)
    ($rc, $out, $err) = sync("$dir/big$i.crl", $card2, '--full');
    $swaps++ if $rc == 0;
    diag($out, $err) if $rc != 0;
}
spew($stop, '');
waitpid $reader, 0;
my ($reads, $misses, $gens) = split ' ', slurp($rres);
is($swaps, 6, 'six more loaded one after another');
ok($reads > 100, "the reader made $reads lookups");
is($misses, 0, 'it never missed the revoked certificate');
ok($gens >= 2, "it saw $gens generations");
like($out, qr/entries=30007 stored=30007 bits=9 gen=\d+ mode=full /,
     'a 30007-entry CRL: 9 bits, 512 buckets (256 would exceed 128 fields a bucket)');
my ($gen_now) = split /\|/, $r->cmd('GET', "jpki:v1:crlmeta:$tag");
my ($maxb, $nb, $sum) = (0, 0, 0);
for my $k ($r->keys_matching("jpki:v1:crl:$tag:$gen_now:*")) {
    my $n = $r->cmd('HLEN', $k);
    $maxb = $n if $n > $maxb;
    $nb++;
    $sum += $n;
}
ok($maxb > 0 && $maxb <= 128, "largest bucket $maxb fields (<= 128)");
is($sum, 30007, '... every entry in one of them');
ok($nb <= 512, "$nb buckets (at most 2^9)");

# ---------------------------------------------------------------- key generations, other issuers

# ca1 and ca2 share the DN: a ca1-signed CRL lists ca1's certificates, in
# the list of ca1's key (the gate looks a certificate up in the list of the
# key that issued it); only ca1's cert_ids are stored.
($rc, $out) = sync("$P/ca1.crl", $card12);
is($rc, 0, 'ca1.crl with ca1+ca2 configured: its own list, exit 0');
like($out, qr/entries=1 stored=1 .* list=[0-9a-f]{16}$/,
     'one entry, stored for the key that signed it; the line names the list');
($rc, $out) = ctl('crl', 'status', @R, '--issuer', $card12);
my ($tag12) = $out =~ /^fresh issuer=card list=([0-9a-f]{16}) .*crl_number=1 /m;
ok($tag12 && $tag12 ne $tag, 'another list (the issuer tag follows the CA files)');
is($rc, 1, '... status exit 1: ca2\'s key of that issuer has no list');
my @miss = $out =~ /^missing issuer=card list=(\S+) ca="[^"]*JPKI[^"]*"$/mg;
is(scalar @miss, 1, '... one "missing" line, naming the CA') or diag($out);
ok(@miss && $miss[0] =~ /^[0-9a-f]{16}$/ && $miss[0] ne $tag12,
   '... the list of the other key');
is((lookup($r, $tag12, $id_old))[0], 1, 'user-old-revoked (issued by ca1) listed');
is((lookup($r, $miss[0] // 'x', $id_old))[0], 'nolist', '... and nowhere else');
($rc, $out) = sync("$P/ca2.crl", $card12);
is($rc, 0, 'ca2.crl with ca1+ca2 configured: exit 0') or diag($out);
like($out, qr/ list=\Q@{[ $miss[0] \/\/ '' ]}\E$/, '... into the list of ca2\'s key');
($rc, $out) = ctl('crl', 'status', @R, '--issuer', $card12);
is(scalar(() = $out =~ /^fresh issuer=card list=(?:\Q$tag12\E|\Q@{[ $miss[0] \/\/ 'x' ]}\E) /mg), 2,
   'crl status: both keys of the issuer fresh') or diag($out);
my $itag12;                     # the issuer tag of ca1+ca2 (soft records)
{
    my @i = map { $r->cmd('HGET', "jpki:v1:crlinfo:$_", 'issuer_tag') // '' } $tag12, $miss[0] // 'x';
    my @k = map { $r->cmd('HGET', "jpki:v1:crlinfo:$_", 'key_tag') // '' } $tag12, $miss[0] // 'x';
    ok($i[0] =~ /^[0-9a-f]{16}$/ && $i[0] eq $i[1] && $i[0] ne $itag,
       '... their records name the same issuer tag (not that of ca2 alone)');
    $itag12 = $i[0];
    ok($k[0] =~ /^[0-9a-f]{16}$/ && $k[1] =~ /^[0-9a-f]{16}$/ && $k[0] ne $k[1],
       '... and each its own key tag');
}
unlike($out, qr/^missing /m, '... none missing');
is((lookup($r, $tag12, $id_old))[0], 1, 'ca1\'s list unchanged by ca2\'s sync');

# the one list per issuer of an older jpkictl: reported, and never read by
# the gate (it fails closed for a key without a list of its own)
$r->cmd('SET', "jpki:v1:crlmeta:$itag", "1|1|1|0|-1|0|1");
($rc, $out) = ctl('crl', 'status', @R);
is($rc, 1, 'an old one-list-per-issuer pointer: crl status exit 1');
like($out, qr/^outdated list=$itag detail="one list per issuer, loaded by an older jpkictl: the gate does not read it; run crl sync with the CRL of each CA key/m,
     '... "outdated", with what to do');
($rc, $out, $err) = sync("$P/ca2.crl", $card2);
is($rc, 3, 'crl sync with it in the store: runs (not newer than the loaded)');
like($err, qr/note: the store holds a CRL of issuer card in the layout of an older jpkictl \(jpki:v1:crlmeta:$itag: one list per issuer\), which the gate no longer reads.*fails closed \(revocation_unavailable\)/,
     '... and notes the old list and the gate\'s answer');
$r->cmd('DEL', "jpki:v1:crlmeta:$itag");
# the lists per key of jpkictl 06b82fb, "<issuer tag>.<key tag>": reported
# too (the gate reads each key's list under its list tag)
$r->cmd('SET', "jpki:v1:crlmeta:$itag.0123456789abcdef", "1|1|1|0|-1|0|1");
($rc, $out) = ctl('crl', 'status', @R);
is($rc, 1, 'a list named <issuer tag>.<key tag>: crl status exit 1');
like($out, qr/^outdated list=$itag\.0123456789abcdef detail="a list per key named by an older jpkictl: the gate does not read it/m,
     '... "outdated"') or diag($out);
$r->cmd('DEL', "jpki:v1:crlmeta:$itag.0123456789abcdef");
{
    my $ktag = $r->cmd('HGET', "jpki:v1:crlinfo:$tag", 'key_tag') // 'none';
    $r->cmd('SET', "jpki:v1:crlmeta:$itag.$ktag", "1|1|1|0|-1|0|1");
    ($rc, $out, $err) = sync("$P/ca2.crl", $card2);
    like($err, qr/note: the store holds a CRL of issuer card in the layout of an older jpkictl \(jpki:v1:crlmeta:$itag\.$ktag: a list per key named <issuer tag>\.<key tag>\), which the gate no longer reads/,
         'crl sync notes the list of the key in the 06b82fb name') or diag($err);
    $r->cmd('DEL', "jpki:v1:crlmeta:$itag.$ktag");
}
$r->cmd('SET', "jpki:v1:crlmeta:$itag.x", "1|1|1|0|-1|0|1");
($rc, $out) = ctl('crl', 'status', @R);
like($out, qr/^broken list=$itag\.x detail="not a list name"$/m, 'a pointer that is no list name: "broken"');
is($rc, 1, '... exit 1');
$r->cmd('DEL', "jpki:v1:crlmeta:$itag.x");
# a list whose record names another issuer or key than its name is made of
{
    my $good = $r->cmd('HGET', "jpki:v1:crlinfo:$tag", 'key_tag');
    $r->cmd('HSET', "jpki:v1:crlinfo:$tag", 'key_tag', '0123456789abcdef');
    ($rc, $out) = ctl('crl', 'status', @R);
    is($rc, 1, 'a record naming another key: crl status exit 1');
    like($out, qr/^broken list=$tag detail="its record \(crlinfo issuer_tag, key_tag\) names another list"$/m,
         '... "broken"') or diag($out);
    $r->cmd('HSET', "jpki:v1:crlinfo:$tag", 'key_tag', $good);
    $r->cmd('HSET', "jpki:v1:crlinfo:$tag", 'issuer_tag', 'ffffffffffffffff');
    ($rc, $out) = ctl('crl', 'status', @R);
    like($out, qr/^broken list=$tag detail="its record/m, '... another issuer tag: "broken"');
    $r->cmd('HSET', "jpki:v1:crlinfo:$tag", 'issuer_tag', "${itag}0");
    ($rc, $out) = ctl('crl', 'status', @R);
    like($out, qr/^broken list=$tag detail="its record/m, '... the issuer tag and one more digit: "broken"');
    $r->cmd('HSET', "jpki:v1:crlinfo:$tag", 'issuer_tag', "");
    ($rc, $out) = ctl('crl', 'status', @R);
    like($out, qr/^broken list=$tag detail="its record/m, '... an empty issuer tag: "broken"');
    $r->cmd('HSET', "jpki:v1:crlinfo:$tag", 'issuer_tag', $itag);
    ($rc, $out) = ctl('crl', 'status', @R, '--issuer', $card2);
    like($out, qr/^fresh issuer=card list=$tag /m, '... restored: fresh');
}
($rc, $out) = sync("$P/phone-ca.crl", "$card2", '--issuer', $phone);
is($rc, 0, 'phone-ca.crl with two issuers configured: exit 0');
like($out, qr/^loaded issuer=phone /, '... loaded as the phone issuer');
($rc, $out) = ctl('crl', 'status', @R, '--issuer', $card2, '--issuer', $phone);
is($rc, 0, 'crl status: every configured issuer fresh');
is(scalar(() = $out =~ /^fresh /mg), 4, '... four lists (card2\'s, both keys of ca1+ca2, phone\'s)');
($rc, $out) = ctl('crl', 'status', @R, '--at', time + 3 * 86400 + 60);
is($rc, 1, 'crl status three days later: exit 1');
like($out, qr/^stale issuer=card /m, '... stale');

# ARL: kept apart from the CRL
($rc, $out) = sync("$P/ca2-empty.crl", $card2, '--arl');
is($rc, 0, '--arl: loaded');
ok(defined $r->cmd('GET', "jpki:v1:crlmeta:$tag.arl"), '... as list <list tag>.arl');
is($r->cmd('HGET', "jpki:v1:crlinfo:$tag.arl", 'key_tag'), $r->cmd('HGET', "jpki:v1:crlinfo:$tag", 'key_tag'),
   '... of the same key');
like($r->cmd('GET', "jpki:v1:crlmeta:$tag"), qr/\|16\|30007\|/, '... the CRL is untouched');

# ---------------------------------------------------------------- HTTP

my $www = "$dir/www";
mkdir $www;
my $hport = free_port();
my $hpid = fork // die;
if ($hpid == 0) {
    # a client that stops reading (--max-size) must not kill the server
    $SIG{PIPE} = 'IGNORE';
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $hport, Listen => 8,
                                  ReuseAddr => 1) or POSIX::_exit(1);
    # private-*: HTTP Basic, user crl, password s3cret
    my $auth = 'Basic ' . MIME::Base64::encode_base64('crl:s3cret', '');
    while (my $c = $l->accept) {
        my $req = <$c> // '';
        my $got = '';
        while (my $h = <$c>) {
            last if $h =~ /^\r?\n$/;
            $got = $1 if $h =~ /^Authorization:\s*(.*?)\r?\n$/i;
        }
        my ($path) = $req =~ m{^GET /(\S*) HTTP};
        if (defined $path && $path =~ /^private-/ && $got ne $auth) {
            print $c "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"crl\"\r\n"
                . "Content-Length: 0\r\nConnection: close\r\n\r\n";
        } elsif (defined $path && $path =~ /^[\w.-]+$/ && -f "$www/$path") {
            my $b = slurp("$www/$path");
            print $c "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\n"
                . "Content-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b";
        } else {
            print $c "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        }
        close $c;
    }
    POSIX::_exit(0);
}
push @kids, $hpid;
ok(wait_port($hport), 'HTTP server answers');
copy("$P/ca2.crl.pem", "$www/a.crl") or die;
my $ures = `$J purge --revocation @R`;
like($ures, qr/^purged \d+ keys/, 'purge before the HTTP fetch');
($rc, $out, $err) = sync("http://127.0.0.1:$hport/a.crl", $card2);
is($rc, 0, 'HTTP fetch (PEM): loaded') or diag($out, $err);
like($out, qr/^loaded issuer=card crl_number=2 /, '... crlNumber 2');
is((lookup($r, $tag, $id{'rev-certificateHold'}))[0], 6, '... hold listed');
($rc, $out) = sync("http://127.0.0.1:$hport/missing.crl", $card2);
is($rc, 4, 'HTTP 404: exit 4');
like($out, qr/^fetch_failed .*HTTP status 404/, '... with the status');
copy("$dir/big10.crl", "$www/b.crl") or die;
($rc, $out, $err) = sync("http://user:secretpw\@127.0.0.1:$hport/b.crl", $card2, '--max-size', 100000);
is($rc, 4, 'over --max-size: exit 4');
like($out, qr/larger than 100000 bytes/, '... says so');
unlike($out . $err, qr/secretpw/, 'the URL password is never shown');
like($err, qr/warning: --source carries a password.*JPKI_SOURCE_USERPWD/,
     '... and a password in the URL (the process list shows it) is warned about');
# credentials kept out of the command line
copy("$P/ca2.crl.pem", "$www/private-a.crl") or die;
($rc, $out) = sync("http://127.0.0.1:$hport/private-a.crl", $card2);
is($rc, 4, 'HTTP Basic without credentials: exit 4');
like($out, qr/HTTP status 401/, '... 401');
{
    local $ENV{JPKI_SOURCE_USERPWD} = 'crl:s3cret';
    ($rc, $out, $err) = sync("http://127.0.0.1:$hport/private-a.crl", $card2);
    is($rc, 3, 'HTTP Basic with JPKI_SOURCE_USERPWD: fetched (unchanged, exit 3)') or diag($out, $err);
    like($out, qr/^unchanged issuer=card crl_number=2 /, '... the CRL served');
    ($rc, $out, $err) = sync("http://bad:wrong\@127.0.0.1:$hport/private-a.crl", $card2);
    is($rc, 3, '... and it replaces the URL\'s credentials') or diag($out, $err);
}
spew("$dir/netrc", "machine 127.0.0.1 login crl password s3cret\n");
chmod 0600, "$dir/netrc";
{
    local $ENV{JPKI_SOURCE_NETRC} = "$dir/netrc";
    ($rc, $out, $err) = sync("http://127.0.0.1:$hport/private-a.crl", $card2);
    is($rc, 3, 'HTTP Basic with a netrc file (JPKI_SOURCE_NETRC): fetched') or diag($out, $err);
}
my $dead = free_port();
($rc, $out) = sync("http://127.0.0.1:$dead/b.crl", $card2, '--timeout', 5);
is($rc, 4, 'nothing listening: exit 4');

# ---------------------------------------------------------------- watch

copy("$P/ca2-released.crl", "$dir/watch.crl") or die;
my $wlog = "$dir/watch.log";
my $wpid = fork // die;
if ($wpid == 0) {
    open STDOUT, '>', $wlog or die; open STDERR, '>', "$wlog.err" or die;
    { exec $J, 'crl', 'sync', '--source', "$dir/watch.crl", '--issuer', $card2, @S, @R,
          '--watch', 1 };
    POSIX::_exit(127);
}
push @kids, $wpid;
my $t0 = now();
sleep 0.1 until (-s $wlog && slurp($wlog) =~ /crl_number=3/) || now() - $t0 > 20;
copy("$P/ca2-empty.crl", "$dir/watch.tmp") or die;
rename "$dir/watch.tmp", "$dir/watch.crl" or die;
sleep 0.1 until slurp($wlog) =~ /unchanged issuer=card crl_number=4/ || now() - $t0 > 30;
kill 'TERM', $wpid;
waitpid $wpid, 0;
is($? >> 8, 0, '--watch: SIGTERM ends it with exit 0');
my $w = slurp($wlog);
like($w, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ loaded issuer=card crl_number=3 .* exit=0$/m,
     '--watch: a time-stamped line per check (loaded)');
like($w, qr/loaded issuer=card crl_number=4 .* exit=0$/m, '--watch: picks up a replaced file');
like($w, qr/unchanged issuer=card crl_number=4 .* exit=3$/m, '--watch: then unchanged');

# the reader of the lines goes away: the watch ends (SIGPIPE is ignored,
# so without the check it would go on forever, writing to nobody)
{
    pipe my $rd, my $wr or die "pipe: $!";
    my $pid = fork // die;
    if ($pid == 0) {
        close $rd;
        open STDOUT, '>&', $wr or die; open STDERR, '>', "$wlog.pipe-err" or die;
        { exec $J, 'crl', 'sync', '--source', "$dir/watch.crl", '--issuer', $card2, @S, @R,
              '--watch', 1 };
        POSIX::_exit(127);
    }
    push @kids, $pid;
    close $wr;
    my $first = <$rd>;
    like($first // '', qr/ issuer=card crl_number=4 /, '--watch into a pipe: its first line');
    close $rd;
    my $t1 = now();
    sleep 0.1 until waitpid($pid, POSIX::WNOHANG()) == $pid || now() - $t1 > 10;
    my $gone = now() - $t1 <= 10;
    kill 'KILL', $pid unless $gone;
    waitpid $pid, 0 unless $gone;
    ok($gone, '--watch: ends once nobody reads its lines');
    is($? >> 8, 2, '... with exit 2');
    like(slurp("$wlog.pipe-err"), qr/cannot write the status line/, '... and says why');
}

# ---------------------------------------------------------------- LDAP

SKIP: {
    skip 'slapd not installed (Debian packages slapd ldap-utils)', 6
        unless -x '/usr/sbin/slapd' && -x '/usr/sbin/slapadd' && -f '/etc/ldap/schema/core.schema';
    my $ld = "$dir/ldap";
    mkdir $ld; mkdir "$ld/db";
    my $lport = free_port();
    spew("$ld/slapd.conf", <<"CONF");
include /etc/ldap/schema/core.schema
pidfile $ld/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
suffix "o=JPKI,c=JP"
rootdn "cn=admin,o=JPKI,c=JP"
directory $ld/db
maxsize 10485760
CONF
    copy("$P/ca2-released.crl", "$ld/crl.der") or die;
    spew("$ld/data.ldif", <<"LDIF");
dn: o=JPKI,c=JP
objectClass: organization
o: JPKI

dn: cn=CRL1,o=JPKI,c=JP
objectClass: cRLDistributionPoint
cn: CRL1
certificateRevocationList;binary:< file://$ld/crl.der
LDIF
    my $sa = system("/usr/sbin/slapadd -f $ld/slapd.conf -l $ld/data.ldif >$ld/slapadd.log 2>&1");
    my @u = $> == 0 ? ('-u', 'nobody', '-g', 'nogroup') : ();
    system("chown -R nobody:nogroup $ld >/dev/null 2>&1") if @u;
    chmod 0755, $dir;
    my $st = $sa == 0 ? system('/usr/sbin/slapd', '-f', "$ld/slapd.conf", '-h', "ldap://127.0.0.1:$lport/", @u) : -1;
    skip "slapd did not start (slapadd: $sa, slapd: $st): " . slurp("$ld/slapadd.log"), 6
        unless $st == 0 && wait_port($lport);
    my $base = "ldap://127.0.0.1:$lport/cn=CRL1,o=JPKI,c=JP";
    `$J purge --revocation @R`;
    ($rc, $out, $err) = sync("$base?certificateRevocationList;binary", $card2);
    is($rc, 0, 'LDAP fetch from slapd: loaded') or diag($out, $err);
    like($out, qr/^loaded issuer=card crl_number=3 /, '... the CRL stored in the directory');
    ok(!defined((lookup($r, $tag, $id{'rev-certificateHold'}))[0]), '... hold released, as in that CRL');
    ($rc, $out) = sync("ldap://127.0.0.1:$lport/cn=NONE,o=JPKI,c=JP?certificateRevocationList;binary", $card2);
    is($rc, 4, 'LDAP: no such entry: exit 4');
    ($rc, $out) = sync("$base?cn", $card2);
    is($rc, 4, 'LDAP: no CRL attribute in the answer: exit 4');
    like($out, qr/no certificateRevocationList/, '... says so');
    my $spid = slurp("$ld/slapd.pid") =~ /(\d+)/ ? $1 : 0;
    kill 'TERM', $spid if $spid;
}

# ---------------------------------------------------------------- stale

$ures = `$J purge --revocation @R`;
($rc, $out) = sync("$P/ca2-stale.crl", $card2);
is($rc, 1, 'a stale CRL into an empty store: exit 1');
like($out, qr/^stale issuer=card crl_number=1 .*detail="loaded/, '... loaded all the same (newer than nothing)');
ok(defined $r->cmd('GET', "jpki:v1:crlmeta:$tag"), '... the pointer is there');
($rc, $out) = sync("$P/ca2-stale.crl", $card2);
is($rc, 1, 'the same stale CRL again: exit 1 (the loaded one is stale)');
like($out, qr/^stale .*nothing newer/, '... says so');
($rc, $out) = sync("$P/ca2-stale.crl", $card2, '--grace', 6 * 86400);
is($rc, 3, '... with --grace 6 days it is merely unchanged: exit 3');
($rc, $out) = ctl('crl', 'status', @R);
is($rc, 1, 'crl status: stale, exit 1');

# ---------------------------------------------------------------- recheck

($rc, $out) = sync("$P/ca2.crl", $card2);
is($rc, 0, 'ca2.crl loaded for the re-check');
my ($tu) = $r->cmd('GET', "jpki:v1:crlmeta:$tag") =~ /^\d+\|b\d+\|(\d+)\|/;
my %soft = ('rev-keyCompromise' => $tu - 100, 'rev-certificateHold' => $tu - 50,
            'user1' => $tu - 10);
for my $c (sort keys %soft) {
    $r->cmd('SET', "jpki:v1:soft:$id{$c}:$soft{$c}",
            qq({"ts":$soft{$c},"cert_id":"$id{$c}","issuer":"$itag","event":"login"}),
            'EX', 2592000);
}
$r->cmd('SET', "jpki:v1:soft:$id{'rev-unspecified'}:" . ($tu + 3600),
        qq({"ts":0,"cert_id":"$id{'rev-unspecified'}","issuer":"$itag","event":"login"}), 'EX', 60);
$r->cmd('SET', "jpki:v1:soft:$id{'rev-unspecified'}:" . ($tu - 5),
        qq({"ts":0,"cert_id":"$id{'rev-unspecified'}","issuer":"ffffffffffffffff","event":"login"}), 'EX', 60);
# the gate's record of a day (key: the day's first second) whose latest
# soft pass (ts) came after the CRL
$r->cmd('SET', "jpki:v1:soft:$id{'rev-superseded'}:" . ($tu - 200),
        qq({"ts":@{[ $tu + 100 ]},"cert_id":"$id{'rev-superseded'}","issuer":"$itag","event":"check"}), 'EX', 60);
# user2 is not listed: logins after the CRL's thisUpdate are not covered
$r->cmd('SET', "jpki:v1:soft:$id{user2}:" . ($tu + 3600),
        qq({"ts":0,"cert_id":"$id{user2}","issuer":"$itag","event":"login"}), 'EX', 60);
$r->cmd('SET', "jpki:v1:soft:$id{user2}:" . ($tu - 200),
        qq({"ts":@{[ $tu + 100 ]},"cert_id":"$id{user2}","issuer":"$itag","event":"check"}), 'EX', 60);
$r->cmd('DEL', "jpki:v1:rev:$id{'rev-keyCompromise'}");
($rc, $out, $err) = ctl('recheck', @R, '--issuer', $card2, @S);
is($rc, 1, 'recheck: some revoked, exit 1') or diag($out, $err);
like($out, qr/^revoked cert_id=$id{'rev-keyCompromise'} issuer=card reason=keyCompromise revoked_at=\S+ auth_time=\S+$/m,
     'recheck lists the revoked certificate (cert_id, reason, auth time)');
like($out, qr/^revoked cert_id=$id{'rev-certificateHold'} .*reason=certificateHold /m, '... and the one on hold');
unlike($out, qr/$id{user1}/, '... not the good one');
# a CRL that lists the certificate proves it revoked, however old the CRL:
# the usual case after an outage (logins went on, the CRL came back later)
like($out, qr/^revoked cert_id=$id{'rev-unspecified'} issuer=card reason=\w+ .*auth_time=\S+$/m,
     'a login after the CRL thisUpdate, listed in it: revoked');
like($out, qr/^revoked cert_id=$id{'rev-superseded'} issuer=card /m,
     'a record whose latest pass (ts) is after the CRL thisUpdate, listed: revoked');
unlike($out, qr/^unchecked cert_id=$id{'rev-unspecified'} .*crl_older_than_login/m,
       '... not "unchecked"');
like($r->cmd('GET', "jpki:v1:rev:$id{'rev-unspecified'}") // '', qr/^revoked\|0\|\d+\|\d+\|crl$/,
     '... and its rev:<cert_id> is written');
is(scalar(() = $out =~ /^unchecked cert_id=$id{user2} auth_time=\S+ why=crl_older_than_login$/mg), 2,
   'not listed, login (key time, or latest pass ts) after the CRL thisUpdate: unchecked');
like($out, qr/why=issuer_not_configured$/m, 'a record of an issuer not configured: unchecked');
like($out, qr/^recheck: records=8 revoked=4 unchecked=3 good=1$/m, 'summary line');
# the newest CRL itself past nextUpdate + grace: listed is still revoked,
# not listed proves nothing (as stale as what the soft pass had)
($rc, $out, $err) = ctl('recheck', @R, '--issuer', $card2, @S, '--at', time + 3 * 86400 + 60);
is($rc, 1, 'recheck against a stale CRL: some revoked, exit 1') or diag($out, $err);
like($out, qr/^unchecked cert_id=$id{user1} auth_time=\S+ why=crl_stale$/m,
     '... a certificate it does not list: unchecked, crl_stale');
like($out, qr/^recheck: records=8 revoked=4 unchecked=4 good=0$/m, '... the listed ones still revoked');
($rc, $out) = ctl('recheck', @R, '--issuer', $card2, @S, '--at', time + 3 * 86400 + 60,
                  '--grace', 864000);
like($out, qr/good=1$/m, '... not stale with a longer --grace');
my $rev = $r->cmd('GET', "jpki:v1:rev:$id{'rev-keyCompromise'}");
like($rev, qr/^revoked\|1\|\d+\|\d+\|crl$/, 'rev:<cert_id> written: revoked|1|at|checked|crl');
my $rttl = $r->cmd('PTTL', "jpki:v1:rev:$id{'rev-keyCompromise'}");
ok($rttl > 29 * 86400 * 1000 && $rttl <= 30 * 86400 * 1000, '... with a 30-day TTL');
like($r->cmd('GET', "jpki:v1:rev:$id{'rev-certificateHold'}"), qr/^hold\|6\|/, 'hold cached as hold');
ok($r->cmd('PTTL', "jpki:v1:rev:$id{'rev-certificateHold'}") <= 300_000, '... for a short time');
($rc, $out, $err) = ctl('recheck', @R, '--issuer', $card2, '--secret-file', "$dir/secret2");
is($rc, 2, 'recheck with another secret: exit 2');
like($err, qr/another --secret-file/, '... says the cert_ids do not match');
our $idc_card2;    # the list's id_check, for the fake Redis below
{   # a list without its id_check proves nothing either (the gate refuses it)
    my $idc = $idc_card2 = $r->cmd('HGET', "jpki:v1:crlinfo:$tag", 'id_check');
    $r->cmd('HDEL', "jpki:v1:crlinfo:$tag", 'id_check');
    ($rc, $out, $err) = ctl('recheck', @R, '--issuer', $card2, @S);
    is($rc, 2, 'recheck of a list without id_check: exit 2');
    like($err, qr/has no id_check/, '... says so');
    $r->cmd('HSET', "jpki:v1:crlinfo:$tag", 'id_check', $idc);
}
($rc, $out) = ctl('recheck', '--redis', "127.0.0.1:$dead", '--issuer', $card2, @S);
is($rc, 5, 'recheck: Redis down, exit 5');
$r->cmd('DEL', $_) for $r->keys_matching('jpki:v1:soft:*');
$r->cmd('SET', "jpki:v1:soft:$id{user1}:" . ($tu - 1),
        qq({"ts":0,"cert_id":"$id{user1}","issuer":"$itag","event":"login"}), 'EX', 60);
($rc, $out) = ctl('recheck', @R, '--issuer', $card2, @S);
is($rc, 0, 'recheck: none revoked, exit 0');

# lists per CA key: a record names the list of its certificate's key (the
# gate writes it); one of an older gate is looked up in all of its
# issuer's lists, and "not listed" proves nothing while one is missing
$r->cmd('DEL', $_) for $r->keys_matching('jpki:v1:soft:*');
$r->cmd('DEL', "jpki:v1:rev:$id{'rev-keyCompromise'}");
$r->cmd('SET', "jpki:v1:soft:$id{'rev-keyCompromise'}:" . ($tu - 1),
        qq({"ts":0,"cert_id":"$id{'rev-keyCompromise'}","issuer":"$itag","list":"$tag","event":"login"}), 'EX', 60);
$r->cmd('SET', "jpki:v1:soft:$id{user1}:" . ($tu - 1),
        qq({"ts":0,"cert_id":"$id{user1}","issuer":"$itag","list":"0123456789abcdef","event":"login"}), 'EX', 60);
$r->cmd('SET', "jpki:v1:soft:$id{user2}:" . ($tu - 1),
        qq({"ts":0,"cert_id":"$id{user2}","issuer":"ffffffffffffffff","list":"$tag","event":"login"}), 'EX', 60);
# a gate of 06b82fb named the list "<issuer tag>.<key tag>": every list of
# the issuer, as a record without one
$r->cmd('SET', "jpki:v1:soft:$id{'rev-unspecified'}:" . ($tu - 1),
        qq({"ts":0,"cert_id":"$id{'rev-unspecified'}","issuer":"$itag","list":"$itag.0123456789abcdef","event":"login"}), 'EX', 60);
$r->cmd('SET', "jpki:v1:soft:$id{'rev-superseded'}:" . ($tu - 1),
        qq({"ts":0,"cert_id":"$id{'rev-superseded'}","issuer":"$itag","list":"0123456789abcdeg","event":"login"}), 'EX', 60);
$r->cmd('SET', "jpki:v1:soft:$id{'rev-certificateHold'}:" . ($tu - 1),
        qq({"ts":0,"cert_id":"$id{'rev-certificateHold'}","issuer":"$itag","list":"0123456789abc","event":"login"}), 'EX', 60);
($rc, $out, $err) = ctl('recheck', @R, '--issuer', $card2, @S);
is($rc, 1, 'recheck, records naming their list: exit 1') or diag($out, $err);
like($out, qr/^revoked cert_id=$id{'rev-keyCompromise'} issuer=card reason=keyCompromise /m,
     '... listed in the list it names: revoked');
like($out, qr/^unchecked cert_id=$id{user1} auth_time=\S+ why=issuer_not_configured$/m,
     '... a list of a key not configured: unchecked');
like($out, qr/^unchecked cert_id=$id{user2} auth_time=\S+ why=malformed_record$/m,
     '... a list of another issuer than the record\'s: malformed');
like($out, qr/^revoked cert_id=$id{'rev-unspecified'} issuer=card /m,
     '... a list named as by a gate of 06b82fb: the issuer\'s lists (revoked)');
like($out, qr/^revoked cert_id=$id{'rev-superseded'} issuer=card /m,
     '... a list field that is not hex: the issuer\'s lists too (revoked)')
    or diag($out);
like($out, qr/^unchecked cert_id=$id{'rev-certificateHold'} auth_time=\S+ why=malformed_record$/m,
     '... a list name of 13 digits: malformed')
    or diag($out);
{
    $r->cmd('DEL', $_) for $r->keys_matching('jpki:v1:soft:*');
    ($rc, $out) = sync("$P/ca2.crl", $card12);
    is($rc, 0, 'ca2.crl for ca1+ca2 (ca1\'s key without a list)') or diag($out);
    $r->cmd('SET', "jpki:v1:soft:$id_old:" . ($tu - 1),
            qq({"ts":0,"cert_id":"$id_old","issuer":"$itag12","event":"login"}), 'EX', 60);
    ($rc, $out, $err) = ctl('recheck', @R, '--issuer', $card12, @S);
    like($out, qr/^unchecked cert_id=$id_old auth_time=\S+ why=no_crl$/m,
         'a ca1 certificate, a record without its list, only ca2\'s list loaded: '
         . 'unchecked (not good)') or diag($out, $err);
    ($rc, $out) = sync("$P/ca1.crl", $card12);
    is($rc, 0, 'ca1.crl for ca1+ca2') or diag($out);
    ($rc, $out, $err) = ctl('recheck', @R, '--issuer', $card12, @S);
    like($out, qr/^revoked cert_id=$id_old issuer=card reason=\w+ /m,
         '... with ca1\'s list: revoked') or diag($out, $err);
    # the store as before this block, for the purge counts below
    $r->cmd('DEL', $_) for $r->keys_matching('jpki:v1:soft:*');
    $r->cmd('DEL', "jpki:v1:rev:$id_old");
    $r->cmd('SET', "jpki:v1:soft:$id{user1}:" . ($tu - 1),
            qq({"ts":0,"cert_id":"$id{user1}","issuer":"$itag","event":"login"}), 'EX', 60);
}

# ---------------------------------------------------------------- large cRLNumber

# RFC 5280 allows 20 octets; the pointer holds any int64 (19 digits), and
# what it cannot hold is refused before anything is written
{
    open my $o, '>', "$dir/small-index.txt" or die;
    print $o grep { /^R/ } split /^/m, slurp("$P/ca2-index.txt");
    close $o;
}
sub crl_numbered {
    my ($n, $out) = @_;
    JPKITest::ca2_crl($dir, "$dir/small-index.txt", $n, $out) or die 'openssl ca -gencrl';
    return $out;
}
my $e18 = 1_000_000_000_000_000_000;
crl_numbered($e18, "$dir/e18.crl");
($rc, $out, $err) = sync("$dir/e18.crl", $card2);
is($rc, 0, 'cRLNumber 10^18: loaded') or diag($out, $err);
like($out, qr/^loaded issuer=card crl_number=1000000000000000000 /, '... with its number');
like($r->cmd('GET', "jpki:v1:crlmeta:$tag"), qr/^\d+\|b\d+\|\d+\|\d+\|1000000000000000000\|7\|\d+$/,
     '... into the pointer');
($rc, $out, $err) = sync("$dir/e18.crl", $card2);
is($rc, 3, 'the same again: unchanged (the pointer it wrote reads back)') or diag($out, $err);
($rc, $out) = ctl('crl', 'status', @R, '--issuer', $card2);
like($out, qr/^fresh issuer=card list=$tag kind=crl crl_number=1000000000000000000 /m,
     'crl status reads it');
crl_numbered($e18 + 1, "$dir/e18b.crl");
($rc, $out, $err) = sync("$dir/e18b.crl", $card2);
is($rc, 0, 'a higher one (10^18 + 1): loaded') or diag($out, $err);
like($out, qr/^loaded issuer=card crl_number=1000000000000000001 /, '... with its number');
my $meta_e18 = $r->cmd('GET', "jpki:v1:crlmeta:$tag");
crl_numbered(9223372036854775808, "$dir/e63.crl");    # 2^63
($rc, $out, $err) = sync("$dir/e63.crl", $card2);
is($rc, 1, 'cRLNumber 2^63 (over int64): exit 1') or diag($out, $err);
like($out, qr/^invalid issuer=card reason=crl_number detail="cRLNumber negative or over 9223372036854775807/,
     '... refused as invalid, says why');
is($r->cmd('GET', "jpki:v1:crlmeta:$tag"), $meta_e18, '... nothing written');

# ---------------------------------------------------------------- purge

my @before = ($r->keys_matching('jpki:v1:crl*'), $r->keys_matching('jpki:v1:rev:*'),
              $r->keys_matching('jpki:v1:soft:*'));
$r->cmd('SET', 'jpki:v1:map:' . $id{user1}, 'alice');
($rc, $out) = ctl('purge', '--revocation', @R);
is($rc, 0, 'purge --revocation: exit 0');
like($out, qr/^purged ${\ scalar @before} keys: crl=\d+ rev=4 soft=1$/, 'purge counts every key it erased');
is(scalar($r->keys_matching('jpki:v1:crl*')) + scalar($r->keys_matching('jpki:v1:rev:*'))
   + scalar($r->keys_matching('jpki:v1:soft:*')), 0, 'no revocation data left');
is($r->cmd('GET', 'jpki:v1:map:' . $id{user1}), 'alice', 'mappings are kept');
($rc, $out) = ctl('purge', '--revocation', @R);
like($out, qr/^purged 0 keys/, 'purge again: 0 keys');
($rc, $out) = ctl('purge', '--revocation', '--map-file', "$dir/map");
is($rc, 0, 'purge --map-file: exit 0');
like($out, qr/^nothing to purge: the mapping file holds no revocation data/, '... says there is nothing');
($rc) = ctl('purge', @R);
is($rc, 2, 'purge without --revocation: exit 2');

# ---------------------------------------------------------------- replies Redis never gives

# A fake Redis: AUTH, SELECT and PING answer +OK, every other command what
# $answer->(\@argv) returns (RESP text); one connection at a time,
# pipelined commands answered in order.
sub fake_redis {
    my ($answer) = @_;
    my $fport = free_port();
    my $pid = fork // die;
    if ($pid == 0) {
        $SIG{PIPE} = 'IGNORE';        # a client gone does not end the server
        my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $fport, Listen => 8,
                                      ReuseAddr => 1) or POSIX::_exit(1);
        while (my $c = $l->accept) {
            binmode $c;
            local $/ = "\r\n";
            while (defined(my $h = <$c>)) {
                last unless $h =~ /^\*(\d+)\r\n$/;
                my @a;
                for (1 .. $1) {
                    my $bh = <$c> // last;
                    last unless $bh =~ /^\$(\d+)\r\n$/;
                    my ($n, $d) = ($1, '');
                    while (length $d < $n + 2) {
                        last unless read $c, $d, $n + 2 - length $d, length $d;
                    }
                    push @a, substr $d, 0, $n;
                }
                print $c $a[0] =~ /^(AUTH|SELECT|PING)$/i ? "+OK\r\n" : $answer->(\@a);
            }
            close $c;
        }
        POSIX::_exit(0);
    }
    push @kids, $pid;
    wait_port($fport) or die 'fake redis';
    return ($pid, '--redis', "127.0.0.1:$fport");
}
sub bulk { my ($d) = @_; return defined $d ? '$' . length($d) . "\r\n$d\r\n" : "\$-1\r\n" }
sub arr  { return '*' . @_ . "\r\n" . join '', @_ }

{
    local $ctl_deadline = 20;    # a SCAN that never ends is killed
    my %bad = ('an integer cursor' => arr(":0\r\n", arr()),
               'an integer key'    => arr(bulk('0'), arr(":1\r\n")),
               'a cursor not digits' => arr(bulk('x'), arr()),
               'keys not an array' => arr(bulk('0'), bulk('k')));
    for my $what (sort keys %bad) {
        my ($fpid, @F) = fake_redis(sub {
            my ($q) = @_;
            return uc $q->[0] eq 'SCAN' ? $bad{$what}
                 : uc $q->[0] eq 'GET' ? bulk(undef)
                 : uc $q->[0] eq 'HGETALL' ? arr() : "-ERR unexpected\r\n";
        });
        ($rc, $out, $err) = ctl('purge', '--revocation', @F);
        is($rc, 5, "purge, SCAN answers $what: exit 5");
        like($err, qr/SCAN answered an unexpected reply/, '... says so');
        like($out, qr/^store_failed purged 0 keys before the failure/, '... and nothing went');
        ($rc, $out, $err) = ctl('recheck', @F, '--issuer', $card2, @S);
        is($rc, 5, "recheck, SCAN answers $what: exit 5");
        like($err, qr/SCAN answered an unexpected reply/, '... says so');
        ($rc, $out, $err) = ctl('crl', 'status', @F);
        is($rc, 5, "crl status, SCAN answers $what: exit 5");
        kill 'TERM', $fpid;
        waitpid $fpid, 0;
    }
}

# purge failing part way tells what went
{
    my ($fpid, @F) = fake_redis(sub {
        my ($q) = @_;
        return uc $q->[0] eq 'UNLINK' ? ':' . (@$q - 1) . "\r\n"
             : $q->[3] eq 'jpki:v1:crl*' ? arr(bulk('0'), arr(bulk('jpki:v1:crl:a'), bulk('jpki:v1:crlmeta:a')))
             : "-ERR busy\r\n";
    });
    ($rc, $out, $err) = ctl('purge', '--revocation', @F);
    is($rc, 5, 'purge failing at the second pattern: exit 5');
    like($out, qr/^store_failed purged 2 keys before the failure: crl=2 rev=0 soft=0/,
         '... with the counts of what went');
    kill 'TERM', $fpid;
    waitpid $fpid, 0;
}

# SCAN may return a key twice (the table grew meanwhile): counted once
{
    my $now = time;
    my $soft = "jpki:v1:soft:$id{'rev-keyCompromise'}:" . ($now - 100);
    my ($fpid, @F) = fake_redis(sub {
        my ($q) = @_;
        my $c = uc $q->[0];
        return $c eq 'GET' && $q->[1] =~ /crlmeta/ ? bulk("9|1|$now|" . ($now + 86400) . "|5|1|$now")
             : $c eq 'GET' ? bulk(qq({"ts":@{[ $now - 100 ]},"cert_id":"$id{'rev-keyCompromise'}","issuer":"$itag","event":"login"}))
             : $c eq 'HGETALL' ? arr(bulk('id_check'), bulk($idc_card2))
             : $c eq 'SCAN' ? arr(bulk($q->[1] eq '0' ? '17' : '0'), arr(bulk($soft), bulk($soft)))
             : $c eq 'HGET' ? bulk(pack 'C N', 1, $now - 1000)
             : $c eq 'SET' ? "+OK\r\n" : "-ERR unexpected\r\n";
    });
    ($rc, $out, $err) = ctl('recheck', @F, '--issuer', $card2, @S);
    is($rc, 1, 'recheck, a key SCAN returns four times: exit 1') or diag($out, $err);
    is(scalar(() = $out =~ /^revoked cert_id=/mg), 1, '... listed once');
    like($out, qr/^recheck: records=1 revoked=1 unchecked=0 good=0$/m, '... counted once');
    kill 'TERM', $fpid;
    waitpid $fpid, 0;
}

# ---------------------------------------------------------------- no serials

for my $c (sort keys %serial) {
    unlike($all_out, qr/$serial{$c}/i, "the serial of $c is never printed");
}

kill 'TERM', $rpid, $hpid;
waitpid $_, 0 for $rpid, $hpid;
@kids = ();
done_testing();
