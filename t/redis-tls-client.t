#!/usr/bin/perl
# t/redis-tls-client.t - Redis over TLS with client certificates
# (tls-auth-clients yes), on nginx and Apache alike: the gate presents
# tls_cert= and tls_key=; without them, or with a certificate of another
# CA, Redis refuses it; a tls_ca= the server's certificate does not chain
# to is refused by the gate (503 and a log line each).  Then a sentinel
# over TLS (client certificates too) naming a primary over TLS: the gate's
# certificate serves both.  The PKI is made here with openssl.
#   make all pki && prove -v t/redis-tls-client.t
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

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');

sub ossl { system("openssl @_ >/dev/null 2>&1") == 0 or die "openssl @_ failed" }
my $ec = '-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes';
ossl("req -x509 $ec -keyout $dir/ca.key -out $dir/ca.pem -days 2 -subj /CN=redis-ca");
ossl("req -x509 $ec -keyout $dir/other.key -out $dir/other.pem -days 2 -subj /CN=other-ca");
spew("$dir/ext", "subjectAltName=IP:127.0.0.1,DNS:redis.test\n", 0644);
for ([ 'srv', 'ca', 'redis.test' ], [ 'gate', 'ca', 'gate' ], [ 'stranger', 'other', 'stranger' ]) {
    my ($n, $ca, $cn) = @$_;
    ossl("req $ec -keyout $dir/$n.key -out $dir/$n.csr -subj /CN=$cn");
    ossl("x509 -req -in $dir/$n.csr -CA $dir/$ca.pem -CAkey $dir/$ca.key -CAcreateserial "
         . "-out $dir/$n.pem -days 2 -extfile $dir/ext");
}
chmod 0644, glob("$dir/*.pem"), glob("$dir/*.key");

my $pw = 'tls-client-pw';
my $tls = eval { JPKITest::Redis->start(name => 'redis-tls', password => $pw,
    tls => { cert => "$dir/srv.pem", key => "$dir/srv.key", ca => "$dir/ca.pem", auth => 1 }) };
plan(skip_all => "redis-server without TLS: $@") unless $tls;
$tls->cmd('SET', 'jpki:v1:map:' . cert_id('user1', $secret), 'alice');

sub site {
    my ($store) = @_;
    return (secret => $secret, issuer => 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem ocsp=' . $ocsp->url,
            store => "$store password_file=" . password_file($pw), redis_timeout => '2s',
            locations => [ '/jpki/' => { endpoints => 1 },
                           '/app/' => { gate => 1, upstream => 1, recheck_interval => 0 } ]);
}
my $at = '127.0.0.1:' . $tls->tls_port;
my $cert = "tls_cert=$dir/gate.pem tls_key=$dir/gate.key";

for my $kind (@kinds) {
    my $ok = JPKIServer->start($kind, name => 'tls-cert', site("redis=$at tls=on tls_ca=$dir/ca.pem $cert"));
    for my $round (1, 2) {
        my $r = $ok->login('user1');
        is($r->{status}, 200, "$kind: login with the gate's client certificate (round $round)");
        is($ok->get('/app/x', cookie => cookie_of($r) // '')->{status}, 200,
           "$kind: gated request through it (round $round)");
    }
    $ok->stop;

    for my $case ([ 'without a client certificate', "tls=on tls_ca=$dir/ca.pem",
                    qr/jpki: redis TLS (?:connection|handshake) failed: .*(?:certificate required|handshake failure|alert)/ ],
                  [ 'with a certificate of another CA',
                    "tls=on tls_ca=$dir/ca.pem tls_cert=$dir/stranger.pem tls_key=$dir/stranger.key",
                    qr/jpki: redis TLS (?:connection|handshake) failed: .*(?:unknown ca|certificate unknown|bad certificate|alert)/ ],
                  [ 'with a tls_ca= the server does not chain to', "tls=on tls_ca=$dir/other.pem $cert",
                    qr/jpki: redis server certificate refused: /]) {
        my ($what, $words, $re) = @$case;
        my $s = JPKIServer->start($kind, name => 'tls-refused', site("redis=$at $words"));
        my $m = $s->mark;
        my $r = $s->login('user1');
        is($r->{status}, 503, "$kind: $what: 503");
        is($r->{json} && $r->{json}{error}, 'store_error', '... store_error');
        like($s->log_since($m), $re, '... and the error log says why');
        $s->stop;
    }
}

# ---- jpkictl over TLS (a tunnel for hiredis, the core's verification)
sub ctl { my $out = `$JPKITest::JPKICTL @_ 2>&1`; return ($? >> 8, $out) }
my @pwf = ('--redis-password-file', password_file($pw));
{
    my ($rc, $out) = ctl('map', 'list', '--redis', $at, @pwf, '--redis-tls-ca', "$dir/ca.pem",
                         '--redis-tls-cert', "$dir/gate.pem", '--redis-tls-key', "$dir/gate.key");
    is($rc, 0, 'jpkictl over TLS with the client certificate') or diag($out);
    like($out, qr/^[0-9a-f]{32} alice$/m, '... lists the mapping');
    ($rc, $out) = ctl('map', 'list', '--redis', $at, @pwf, '--redis-tls-ca', "$dir/ca.pem");
    is($rc, 5, 'jpkictl over TLS without a client certificate: store failed');
    ($rc, $out) = ctl('map', 'list', '--redis', $at, @pwf, '--redis-tls-ca', "$dir/other.pem",
                      '--redis-tls-cert', "$dir/gate.pem", '--redis-tls-key', "$dir/gate.key");
    is($rc, 5, 'jpkictl: a server of another CA: store failed');
    like($out, qr/redis server certificate refused/, '... saying why');
    ($rc, $out) = ctl('map', 'list', '--redis', $at, @pwf, '--redis-tls-ca', "$dir/ca.pem",
                      '--redis-tls-name', 'elsewhere.test', '--redis-tls-cert', "$dir/gate.pem",
                      '--redis-tls-key', "$dir/gate.key");
    is($rc, 5, 'jpkictl: a certificate for another name: store failed');
    like($out, qr/does not name "elsewhere\.test"/, '... saying why');
    ($rc, $out) = ctl('map', 'list', '--redis', $at, @pwf, '--redis-tls-cert', "$dir/gate.pem",
                      '--redis-tls-key', "$dir/gate.key");
    is($rc, 2, 'jpkictl: --redis-tls-cert without --redis-tls-ca: usage');
    ($rc, $out) = ctl('map', 'list', '--redis', $at, @pwf, '--redis-tls-ca', "$dir/ca.pem",
                      '--redis-tls-cert', "$dir/gate.pem");
    is($rc, 2, 'jpkictl: --redis-tls-cert without --redis-tls-key: usage');
    ($rc, $out) = ctl('map', 'list', '--redis', $at, @pwf, '--redis-tls-ca', "$dir/ca.pem",
                      '--redis-tls-cert', "$dir/gate.pem", '--redis-tls-key', "$dir/stranger.key");
    is($rc, 2, 'jpkictl: another certificate\'s key: usage');
    like($out, qr/tls_key is not the key of tls_cert/, '... the core\'s sentence');
}

# ---- a sentinel over TLS naming a primary over TLS
{
    my $sport = JPKITest::free_port();
    my $sentinel = JPKITest::Sentinel->start(name => 'sentinel-tls', master => 'gate',
        primary => $tls->tls_port, password => $pw, conf => [
            "tls-port $sport", "tls-cert-file $dir/srv.pem", "tls-key-file $dir/srv.key",
            "tls-ca-cert-file $dir/ca.pem", 'tls-auth-clients yes', 'tls-replication yes' ]);
    for my $kind (@kinds) {
        my $s = JPKIServer->start($kind, name => 'tls-sentinel',
                                  site("sentinel=127.0.0.1:$sport master=gate tls=on "
                                       . "tls_ca=$dir/ca.pem $cert"));
        my $r = $s->login('user1');
        is($r->{status}, 200, "$kind: login through a sentinel and a primary, both over TLS "
           . 'with the client certificate');
        is($s->get('/app/x', cookie => cookie_of($r) // '')->{status}, 200, "$kind: gated request");
        $s->stop;

        if ($kind eq $kinds[0]) {
            my ($rc, $out) = ctl('map', 'list', '--redis-sentinel', "127.0.0.1:$sport",
                                 '--redis-master', 'gate', @pwf, '--redis-tls-ca', "$dir/ca.pem",
                                 '--redis-tls-cert', "$dir/gate.pem", '--redis-tls-key', "$dir/gate.key");
            is($rc, 0, 'jpkictl through a sentinel and a primary, both over TLS') or diag($out);
        }

        $s = JPKIServer->start($kind, name => 'tls-sentinel-nocert',
                               site("sentinel=127.0.0.1:$sport master=gate tls=on tls_ca=$dir/ca.pem"));
        my $m = $s->mark;
        $r = $s->login('user1');
        is($r->{status}, 503, "$kind: the sentinel without a client certificate: 503");
        like($s->log_since($m), qr/jpki: redis sentinel.*certificate required.*\n(?s:.*)jpki: no sentinel named the redis primary of "gate"/,
             '... the error log says why');
        $s->stop;
    }
    $sentinel->stop;
}

$tls->stop;
$ocsp->stop;
done_testing();
