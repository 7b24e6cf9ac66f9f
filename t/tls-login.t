#!/usr/bin/perl
# t/tls-login.t - a login by the client certificate of the TLS handshake,
# <endpoints>/tls, on nginx (ssl_verify_client optional_no_ca: the module
# reads the certificate itself) and Apache (mod_ssl, SSLVerifyClient
# optional_no_ca; also in the endpoints' <Location> only, by renegotiation)
# alike: the same checks as a signed challenge's (issuer by
# key, path, validity, revocation, mapping) and the same session, which
# then opens a gated location.  curl is the client: a good, a revoked, an
# unknown-CA and an unmapped certificate over TLS 1.2, none over TLS 1.2,
# and a client that speaks only TLS 1.3 without one (told that TLS 1.2 is
# needed: the card signs only PKCS#1 v1.5, which TLS 1.3 refuses).
#   make build/ngx_http_jpki_module.so build/mod_auth_jpki.so build/jpkictl pki
#   prove -v t/tls-login.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl));
plan skip_all => 'curl not found' unless system('curl --version >/dev/null 2>&1') == 0;
my @kinds = JPKIServer::kinds();

my $f = site_fixture();
my ($dir, $secret, $issuer, $map) = @$f{qw(dir secret issuer map)};
my $pki = $JPKITest::PKI;

# the server's certificate for 127.0.0.1
sub ossl { system("openssl @_ >/dev/null 2>&1") == 0 or die "openssl @_ failed" }
ossl("req -x509 -newkey rsa:2048 -nodes -keyout $dir/srvca.key -out $dir/srvca.pem "
     . "-days 2 -subj /CN=tls-login-test-ca");
ossl("req -newkey rsa:2048 -nodes -keyout $dir/srv.key -out $dir/srv.csr -subj /CN=127.0.0.1");
spew("$dir/ext", "subjectAltName=IP:127.0.0.1\n", 0644);
ossl("x509 -req -in $dir/srv.csr -CA $dir/srvca.pem -CAkey $dir/srvca.key "
     . "-CAcreateserial -out $dir/srv.pem -days 2 -extfile $dir/ext");
chmod 0644, glob("$dir/*.pem"), glob("$dir/*.key");

# user1 is alice (the fixture); the revoked one is mapped, user2 is not
spew($map, cert_id('user1', $secret) . " alice\n"
           . cert_id('rev-keyCompromise', $secret) . " revoked\n", 0644);

sub site {
    my ($kind) = @_;
    my %s = (secret => $secret, issuer => $issuer, store => 'shm', map => $map,
             locations => [ '/jpki/' => { endpoints => 1 },
                            '/app/' => { gate => 1, upstream => 1 } ]);
    if ($kind =~ /nginx/) {
        $s{nginx_listen} = 'ssl';
        $s{nginx_server} = "ssl_certificate $dir/srv.pem;\n"
                         . "ssl_certificate_key $dir/srv.key;\n"
                         . "ssl_protocols TLSv1.2 TLSv1.3;\n"
                         . "ssl_verify_client optional_no_ca;\n";
    } else {
        $s{modules} = ['socache_shmcb', 'ssl'];
        $s{apache} = "SSLEngine on\nSSLCertificateFile $dir/srv.pem\n"
                   . "SSLCertificateKeyFile $dir/srv.key\n"
                   . "SSLProtocol -all +TLSv1.2 +TLSv1.3\nSSLVerifyClient optional_no_ca\n";
    }
    return %s;
}

# curl over TLS: (status, body, headers) of METHOD https://.../PATH
sub tls_req {
    my ($srv, $method, $path, %o) = @_;
    my @a = ('-s', '-i', '-k', '--max-time', '10', '-X', $method,
             '-H', 'Accept: application/json');
    push @a, '--cert', "$pki/$o{cert}.pem", '--key', "$pki/$o{cert}.key" if $o{cert};
    push @a, '--tlsv1.2', '--tls-max', '1.2' if ($o{tls} // '1.2') eq '1.2';
    push @a, '--tlsv1.3' if ($o{tls} // '') eq '1.3';
    push @a, '-H', "Cookie: jpki_session=$o{cookie}" if $o{cookie};
    open my $p, '-|', 'curl', @a, 'https://127.0.0.1:' . $srv->port . $path
        or die "curl: $!";
    local $/;
    my $out = <$p> // '';
    close $p;
    my ($head, $body) = split /\r\n\r\n/, $out, 2;
    my ($st) = ($head // '') =~ m{^HTTP/\S+ (\d+)};
    return ($st // 0, $body // '', $head // '');
}

# the TLS version curl and the server agreed on (curl's own choice: it
# offers TLS 1.2 and 1.3), with or without a certificate
sub tls_version_of {
    my ($srv, %o) = @_;
    my $cert = $o{cert} ? "--cert $pki/$o{cert}.pem --key $pki/$o{cert}.key" : '';
    my $out = `curl -s -v -k --max-time 10 -o /dev/null $cert -X POST https://127.0.0.1:@{[ $srv->port ]}/jpki/tls 2>&1`;
    return $out =~ /SSL connection using (TLSv1\.[0-3])/ ? $1 : '';
}

for my $kind (@kinds) {
    my $srv = JPKIServer->start($kind, name => 'tls', site($kind));

    my ($st, $body, $head) = tls_req($srv, 'POST', '/jpki/tls', cert => 'user1');
    is($st, 200, "$kind: a card's certificate over TLS 1.2: signed in") or diag $head . $body;
    like($body, qr/"account":"alice"/, "$kind: ... as its account");
    my ($cookie) = $head =~ /^Set-Cookie: jpki_session=([^;\s]+)/mi;
    ok($cookie, "$kind: ... with a session cookie");
    ($st, $body) = tls_req($srv, 'GET', '/app/x', cookie => $cookie);
    is($st, 200, "$kind: the session opens the gated location");
    like($body, qr/account=\[alice\]/, "$kind: ... the account reaches the upstream");

    ($st, $body) = tls_req($srv, 'POST', '/jpki/tls', cert => 'rev-keyCompromise');
    is($st, 403, "$kind: a revoked certificate: 403");
    like($body, qr/"error":"cert_revoked"/, "$kind: ... cert_revoked");
    ($st, $body) = tls_req($srv, 'POST', '/jpki/tls', cert => 'user-foreign');
    is($st, 401, "$kind: a certificate of another CA (the J-LIS name): 401");
    like($body, qr/"error":"cert_unknown_issuer"/, "$kind: ... cert_unknown_issuer");
    ($st, $body) = tls_req($srv, 'POST', '/jpki/tls', cert => 'user2');
    is($st, 403, "$kind: a certificate not mapped: 403");
    like($body, qr/"error":"account_not_mapped"/, "$kind: ... account_not_mapped");
    ($st, $body) = tls_req($srv, 'POST', '/jpki/tls');
    is($st, 401, "$kind: TLS 1.2 without a certificate: 401");
    like($body, qr/"error":"no_client_cert"/, "$kind: ... no_client_cert");
    ($st, $body) = tls_req($srv, 'POST', '/jpki/tls', tls => '1.3');
    is($st, 400, "$kind: a client of TLS 1.3 only, without a certificate: 400");
    like($body, qr/"error":"tls_version".*TLS 1\.2/, "$kind: ... told TLS 1.2 is needed");
    ($st) = tls_req($srv, 'GET', '/jpki/tls', cert => 'user1');
    is($st, 405, "$kind: GET: 405");

    my @bad = grep { /serial|BEGIN CERT/i } split /\n/, $srv->log_since(0) // '';
    is(scalar @bad, 0, "$kind: no serial or certificate in the log");
    is(tls_version_of($srv), 'TLSv1.3', "$kind: without jpki_tls_hold12, a client "
       . 'of TLS 1.2 and 1.3 gets 1.3 (where a card cannot sign)') if $kind =~ /nginx/;
    $srv->stop;

    if ($kind !~ /nginx/) {
        # Apache: the certificate asked for in the endpoints' <Location>
        # only, by renegotiation (TLS 1.2)
        my %s = site($kind);
        $s{apache} =~ s/SSLVerifyClient optional_no_ca\n//;
        $s{locations}[1]{apache} = 'SSLVerifyClient optional_no_ca';
        my $reneg = JPKIServer->start($kind, name => 'tls-reneg', %s);
        ($st, $body) = tls_req($reneg, 'POST', '/jpki/tls', cert => 'user1');
        is($st, 200, "$kind: SSLVerifyClient in the <Location> only (renegotiation): "
           . 'signed in') or diag $body;
        ($st, $body) = tls_req($reneg, 'POST', '/jpki/tls');
        is($st, 401, "$kind: ... without a certificate: 401");
        $reneg->stop;
        next;
    }
    # jpki_tls_hold12 on: a client that offers TLS 1.2 is held to it; one
    # of TLS 1.3 only goes on and is told why
    my %s = site($kind);
    $s{nginx_server} .= "jpki_tls_hold12 on;\n";
    my $hold = JPKIServer->start($kind, name => 'tls-hold', %s);
    is(tls_version_of($hold), 'TLSv1.2', "$kind: jpki_tls_hold12 on: a client of TLS "
       . '1.2 and 1.3 is held to 1.2');
    is(tls_version_of($hold, cert => 'user1'), 'TLSv1.2', "$kind: ... with a certificate too");
    ($st, $body) = tls_req($hold, 'POST', '/jpki/tls', cert => 'user1', tls => 'any');
    is($st, 200, "$kind: ... and it signs in");
    ($st, $body) = tls_req($hold, 'POST', '/jpki/tls', tls => '1.3');
    like($body, qr/"error":"tls_version"/, "$kind: a client of TLS 1.3 only still "
         . 'connects, and is told TLS 1.2 is needed');
    $hold->stop;
    my ($cst, $cout) = JPKIServer->configtest($kind, name => 'hold-nossl',
        secret => $secret, issuer => $issuer, store => 'shm',
        nginx_server => "jpki_tls_hold12 on;\n");
    isnt($cst, 0, "$kind: jpki_tls_hold12 on a server without TLS: refused");
    like($cout, qr/"jpki_tls_hold12" needs a server with ssl_certificate/, '... saying why');
}

done_testing();
