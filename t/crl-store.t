#!/usr/bin/perl
# t/crl-store.t - CRLs loaded into Redis by `jpkictl crl sync`, read by the
# gate of both servers (nginx and Apache on one Redis, issuers without a CRL
# file): revocations and holds refused, a hold released by a newer CRL, a
# stale or missing CRL failing closed, and a revocation found by
# `jpkictl recheck` refusing the session at its next re-check on every node.
# A certificate is checked against the CRL of the CA key that issued it, as
# with CRL files (t/crl-keys.t): with ca1 and ca2 configured and only ca2's
# CRL synced, a ca1 certificate fails closed; a store of an older jpkictl
# (one list per issuer) is never read as good.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKIServer;
use Time::HiRes qw(sleep);

skip_unless(qw(nginx module jpkictl pki openssl redis));
skip_unless_apache();

my $dir = tmpdir();
my $pki = $JPKITest::PKI;
my $J = $JPKICTL;
my $secret = write_secret("$dir/site.secret");
my $redis = JPKITest::Redis->start(name => 'redis');
my $R = '--redis 127.0.0.1:' . $redis->port;
my $iss = "--issuer card=$pki/ca1.pem,$pki/ca2.pem --secret-file $secret";
my %acct;
for my $c (qw(user1 user2 rev-keyCompromise rev-certificateHold user-old
              user-old-revoked)) {
    $acct{$c} = "acct-$c";
    $redis->cmd('SET', 'jpki:v1:map:' . cert_id($c, $secret), $acct{$c});
}

sub sync {
    my ($crl) = @_;
    my $out = `$J crl sync --source $pki/$crl $iss $R 2>&1`;
    return ($? >> 8, $out);
}

my ($rc, $out) = sync('ca2.crl');
is($rc, 0, 'crl sync ca2.crl into Redis') or diag($out);

# the site (t/lib/JPKIServer.pm): revocation by the CRL in the store, its
# pointer read again at every check unless MORE says otherwise
sub site {
    return (secret => $secret, issuer => 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem',
            store => 'redis=127.0.0.1:' . $redis->port, revocation => 'crl',
            crl_pointer_ttl => '0',
            locations => [ '/jpki/' => { endpoints => 1, throttle => 'off' },
                           '/app/' => { gate => 1, recheck_interval => 0, upstream => 1 } ],
            @_);
}
my $ng = JPKIServer->start('nginx', name => 'ng', site());
my $ap = JPKIServer->start('apache', name => 'ap', site());
my %srv = (nginx => $ng, apache => $ap);

# A CRL of ca2 with CRL number N that revokes CERT (keyCompromise), made
# with `openssl ca -gencrl` from a database of our own.
sub new_crl_revoking {
    my ($cert, $n) = @_;
    my $d = "$dir/ca-$n";
    mkdir $d;
    my ($serial) = `openssl x509 -in $pki/$cert.pem -serial -noout` =~ /=([0-9A-F]+)/;
    my ($subj) = `openssl x509 -in $pki/$cert.pem -subject -noout -nameopt compat`
                 =~ /^subject=(.*)$/m;
    my @g = gmtime(time - 60);
    my $rev = sprintf "%02d%02d%02d%02d%02d%02dZ", $g[5] % 100, $g[4] + 1, @g[3, 2, 1, 0];
    spew("$d/index.txt", "R\t351231000000Z\t$rev,keyCompromise\t$serial\tunknown\t$subj\n", 0644);
    spew("$d/index.txt.attr", "unique_subject = no\n", 0644);
    spew("$d/crlnumber", sprintf("%02X\n", $n), 0644);
    spew("$d/ca.cnf", <<"CNF", 0644);
[ ca ]
default_ca = CA_default
[ CA_default ]
database = $d/index.txt
crlnumber = $d/crlnumber
default_md = sha256
default_crl_days = 1
crl_extensions = crl_ext
[ crl_ext ]
authorityKeyIdentifier = keyid:always
CNF
    my $out = `openssl ca -batch -gencrl -config $d/ca.cnf -cert $pki/ca2.pem -keyfile $pki/ca2.key -out $d/crl.pem 2>&1`;
    die "openssl ca -gencrl: $out" if $?;
    return "$d/crl.pem";
}



for my $name (sort keys %srv) {
    my $s = $srv{$name};
    is(login_to($s, 'user1')->{status}, 200, "$name: user1 (not listed) logs in");
    my $r = login_to($s, 'rev-keyCompromise');
    is($r->{status}, 403, "$name: revoked in the synced CRL: 403");
    is($r->{json}{error}, 'cert_revoked', "$name: ... cert_revoked");
    is(login_to($s, 'rev-certificateHold')->{json}{error}, 'cert_on_hold',
       "$name: on hold in the synced CRL");
}

($rc, $out) = sync('ca2-released.crl');
is($rc, 0, 'crl sync of a newer CRL without the hold') or diag($out);
for my $name (sort keys %srv) {
    is(login_to($srv{$name}, 'rev-certificateHold')->{status}, 200,
       "$name: the released certificate logs in at once");
    is(login_to($srv{$name}, 'rev-keyCompromise')->{json}{error}, 'cert_revoked',
       "$name: the final revocation stays");
}

# the CRL pointer kept by a process (one HGET per check): one worker, 5 s
# (the TTL counts whole seconds: a pointer read at x.99 lives 4.01 s)
{
    my $one = JPKIServer->start('nginx', name => 'ptr', workers => 1,
                                site(crl_pointer_ttl => '5s',
                                     locations => [ '/jpki/' => { endpoints => 1,
                                                                  throttle => 'off' } ]));
    my $t1 = Time::HiRes::time();
    is(login_to($one, 'rev-keyCompromise')->{json}{error}, 'cert_revoked',
       'pointer cached: revoked');
    my $calls = sub {
        my $info = $redis->cmd('INFO', 'commandstats');
        return $info =~ /cmdstat_hget:calls=(\d+)/ ? $1 : 0;
    };
    my $before = $calls->();
    login_to($one, 'rev-keyCompromise') for 1 .. 5;
    my $gets = $calls->() - $before;      # HGETs
    my ($rc5, $o5) = sync('ca2-empty.crl');
    my $r5 = login_to($one, 'rev-keyCompromise');
    is($rc5, 0, 'crl sync of CRL 4 (empty) while the pointer is cached') or diag($o5);
    SKIP: {
        # a machine too slow to stay within the TTL cannot tell
        skip 'the pointer TTL passed before the checks (slow machine)', 2
            if Time::HiRes::time() - $t1 > 3.5;
        # each login looks its certificate up in the CRL (1 HGET); the
        # pointer (GET crlmeta, HGET crlinfo id_check) is not read again
        # within its 5 s
        is($gets, 5, 'five checks within the pointer TTL: no read of the pointer');
        is($r5->{json}{error}, 'cert_revoked',
           'within the TTL the cached pointer still names the old generation (kept by crl sync)');
    }
    my $left = $t1 + 6.2 - Time::HiRes::time();
    Time::HiRes::sleep($left) if $left > 0;
    is(login_to($one, 'rev-keyCompromise')->{status}, 200,
       'after the TTL the new CRL applies');
    $one->stop;
}

# a certificate revoked in a new CRL: its session, made on one node, is
# refused on both at the next re-check (interval 0 here)
{
    my $s2 = cookie_of(login_to($ng, 'user2')) // '';
    is(gated_get($ap, $s2)->{status}, 200, 'user2 session (made on nginx) passes on Apache');
    my $crl5 = new_crl_revoking('user2', 5);
    my $o = `$J crl sync --source $crl5 $iss $R 2>&1`;
    is($? >> 8, 0, 'crl sync of CRL 5, which revokes user2') or diag($o);
    for my $name (sort keys %srv) {
        my $g = gated_get($srv{$name}, $s2);
        is($g->{status}, 403, "$name: user2's session is refused at its next re-check");
        is($g->{json}{error}, 'cert_revoked', "$name: ... cert_revoked");
    }
}

# a session made on one node; the certificate found revoked by the bulk
# re-check (a soft pass recorded while revocation data was unavailable)
my $r = login_to($ng, 'user1');
my $cookie = cookie_of($r) // '';
is(gated_get($ap, $cookie)->{status}, 200, 'a session made on nginx passes on Apache');
my $id2 = cert_id('user1', $secret);
my $now = time;
# the soft-pass record, as the gate writes it, and the revocation record
# `jpkictl recheck` writes when the newest CRL lists the certificate (the
# test PKI has no CRL revoking user2; t/jpkictl-crl.t tests recheck itself)
$redis->cmd('SET', "jpki:v1:soft:$id2:$now",
            qq({"ts":$now,"cert_id":"$id2","issuer":"x","event":"login"}));
$redis->cmd('SET', "jpki:v1:rev:$id2", "revoked|1|$now|$now|crl");
for my $name (sort keys %srv) {
    my $g = gated_get($srv{$name}, $cookie);
    is($g->{status}, 403, "$name: the revoked certificate's session is refused at the re-check");
    is($g->{json}{error}, 'cert_revoked', "$name: ... cert_revoked");
}
$redis->cmd('DEL', "jpki:v1:rev:$id2");
is(gated_get($ap, $cookie)->{status}, 200, 'the record removed: the session passes again');

# a stale CRL in the store fails closed
my $tag_key = (grep { !/crlmeta:.*\.arl/ } $redis->keys_like('jpki:v1:crlmeta:*'))[0];
ok($tag_key, 'the CRL pointer is in the store');
my $meta = $redis->cmd('GET', $tag_key);
my @f = split /\|/, $meta;
my @stale = @f;
@stale[2, 3] = ($now - 5 * 86400, $now - 4 * 86400);
$redis->cmd('SET', $tag_key, join '|', @stale);
for my $name (sort keys %srv) {
    my $x = login_to($srv{$name}, 'user1');
    is($x->{status}, 503, "$name: a stale CRL in the store: 503");
    is($x->{json}{error}, 'revocation_unavailable', "$name: ... revocation_unavailable");
}
$redis->cmd('SET', $tag_key, $meta);
is(login_to($ng, 'user1')->{status}, 200, 'the pointer restored: logins again');

# the lists per CA key: only ca2's CRL is synced so far; user-old and
# user-old-revoked are ca1's certificates (user-old-revoked is listed on
# ca1.crl only)
for my $name (sort keys %srv) {
    my $x = login_to($srv{$name}, 'user-old-revoked');
    is($x->{status}, 503, "$name: ca1's certificate revoked on ca1's CRL, only "
       . "ca2's CRL synced: 503 (before: 200)");
    is($x->{json}{error}, 'revocation_unavailable', "$name: ... revocation_unavailable");
    is(login_to($srv{$name}, 'user-old')->{status}, 503,
       "$name: a good ca1 certificate fails closed too");
}
like($ng->log_since(0), qr/no CRL of issuer "card" for the CA key that issued the certificate in the store \(list [0-9a-f]{16}\)/,
     'nginx logs which list is missing');
($rc, $out) = sync('ca1.crl');
is($rc, 0, 'crl sync ca1.crl: the list of ca1\'s key') or diag($out);
my ($list1) = $out =~ /^loaded issuer=card .* list=([0-9a-f]{16})$/m;
ok($list1, '... the line names it');
for my $name (sort keys %srv) {
    my $x = login_to($srv{$name}, 'user-old-revoked');
    is($x->{status}, 403, "$name: ca1's CRL synced: user-old-revoked 403");
    is($x->{json}{error}, 'cert_revoked', "$name: ... cert_revoked");
    my $g = login_to($srv{$name}, 'user-old');
    is($g->{status}, 200, "$name: a good ca1 certificate logs in");
    is($g->{json}{account}, 'acct-user-old', "$name: ... as its account");
    is(login_to($srv{$name}, 'user1')->{status}, 200, "$name: ca2's still answers for ca2");
}

# a store of an older jpkictl: one list per issuer (named by the issuer
# tag, no key in its record), made here from ca2's list by renaming its
# keys.  The gate does not read it: it fails closed, never answers good,
# until a new sync
$redis->cmd('DEL', $_) for $redis->keys_like("jpki:v1:crl*:$list1*");
my ($list2) = map { /^jpki:v1:crlmeta:([0-9a-f]{16})$/ ? $1 : () }
    $redis->keys_like('jpki:v1:crlmeta:*');
ok($list2, 'ca2\'s list: a 16-digit list tag');
my %info = @{ $redis->cmd('HGETALL', "jpki:v1:crlinfo:$list2") // [] };
like($info{issuer_tag} // '', qr/^[0-9a-f]{16}$/, '... its record names the issuer tag');
like($info{key_tag} // '', qr/^[0-9a-f]{16}$/, '... and the key tag');
isnt($info{issuer_tag} // '', $list2, '... the list tag is not the issuer tag');
my $itag = $info{issuer_tag} // 'none';
$redis->cmd('HDEL', "jpki:v1:crlinfo:$list2", 'issuer_tag', 'key_tag');
for my $k ($redis->keys_like("jpki:v1:crl*:$list2*")) {
    (my $old = $k) =~ s/^(jpki:v1:crl\w*:)$list2/$1$itag/ or next;
    $redis->cmd('RENAME', $k, $old);
}
is(join(' ', $redis->keys_like('jpki:v1:crlmeta:*')), "jpki:v1:crlmeta:$itag",
   'the old layout: one pointer of the issuer, named by its tag');
for my $name (sort keys %srv) {
    for my $c (qw(user1 rev-keyCompromise user-old-revoked)) {
        my $x = login_to($srv{$name}, $c);
        is("$x->{status} " . ($x->{json}{error} // ''), '503 revocation_unavailable',
           "$name: old layout: $c fails closed (not read)");
    }
}
$out = `$J crl status $R 2>&1`;
like($out, qr/^outdated list=$itag detail="one list per issuer/m, 'crl status: the old list is "outdated"');
($rc, $out) = sync('ca2-released.crl');
is($rc, 0, 'crl sync again') or diag($out);
like($out, qr/note: the store holds a CRL of issuer card in the layout of an older jpkictl/,
     '... notes the old list');
is(login_to($ng, 'user1')->{status}, 200, 'synced again: ca2\'s certificates log in');
is(login_to($ap, 'user-old')->{status}, 503, '... ca1\'s fail closed until ca1\'s CRL is synced');

# purge: no revocation data at all fails closed
$out = `$J purge --revocation $R 2>&1`;
is($? >> 8, 0, 'jpkictl purge --revocation');
for my $name (sort keys %srv) {
    is(login_to($srv{$name}, 'user1')->{status}, 503, "$name: no CRL in the store: 503");
}

$ng->stop;
$ap->stop;
$redis->stop;
done_testing();
