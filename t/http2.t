#!/usr/bin/perl
# t/http2.t - the gate over HTTP/2 (curl, cleartext h2), nginx (listen
# http2) and Apache (mod_http2, Protocols h2c): challenge, login with a
# Content-Length and without one (DATA frames only), a gated request with
# the session, a refusal as JSON, the client's account header removed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl));
my @kinds = JPKIServer::kinds();
plan skip_all => 'curl without HTTP/2' unless `curl --version` =~ /\bHTTP2\b/;
plan skip_all => 'no mod_http2' unless -f "$JPKIApache::MODDIR/mod_http2.so";

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
spew("$dir/map.txt", cert_id('user1', $secret) . " alice\n", 0644);

# curl over h2c (prior knowledge): (HTTP version, status, headers+body)
sub h2 {
    my (@args) = @_;
    open my $p, '-|', 'curl', '-s', '-i', '--http2-prior-knowledge', '--max-time', '10', @args
        or die "curl: $!";
    local $/;
    my $out = <$p> // '';
    close $p;
    my ($ver, $st) = $out =~ m{^HTTP/(\S+) (\d+)};
    return ($ver // '', $st // 0, $out);
}

sub flows {
    my ($label, $srv) = @_;
    my $u = $srv->url('');
    my ($v, $st, $out) = h2("$u/jpki/challenge");
    is($v, '2', "$label: the challenge comes over HTTP/2");
    my ($ch) = $out =~ /"challenge":"([^"]+)"/;
    ok($ch, "$label: ... a challenge");

    spew("$dir/body.json", json_encode(login_body($ch, 'user1', 'user1')));
    ($v, $st, $out) = h2('-H', 'Content-Type: application/json',
                         '--data-binary', "\@$dir/body.json", "$u/jpki/login");
    is($st, 200, "$label: login over HTTP/2") or diag $out;
    my ($cookie) = $out =~ /set-cookie: jpki_session=([^;]+)/i;
    ok($cookie, "$label: ... a session cookie");

    # a body without a length: DATA frames until END_STREAM
    ($v, $st, $out) = h2("$u/jpki/challenge");
    ($ch) = $out =~ /"challenge":"([^"]+)"/;
    spew("$dir/body2.json", json_encode(login_body($ch, 'user1', 'user1')));
    ($v, $st, $out) = h2('-H', 'Content-Type: application/json', '-H', 'Transfer-Encoding: chunked',
                         '--data-binary', "\@$dir/body2.json", "$u/jpki/login");
    is($st, 200, "$label: login without a Content-Length") or diag $out;

    ($v, $st, $out) = h2('-b', "jpki_session=$cookie", '-H', 'X-JPKI-Account: mallory',
                         "$u/app/x");
    is($st, 200, "$label: gated request with the session over HTTP/2");
    like($out, qr/account=\[alice\]/, "$label: ... the upstream got the account, not the client's");

    ($v, $st, $out) = h2('-H', 'Content-Type: application/json', '--data-binary',
                         "\@$dir/body.json", "$u/jpki/login");
    is($st, 401, "$label: a replayed login: 401");
    like($out, qr/"error":"challenge_replayed"/, "$label: ... JSON reason");
}

# the site (t/lib/JPKIServer.pm) on each server, over h2c
for my $kind (@kinds) {
    my $srv = JPKIServer->start($kind, name => 'h2', workers => 1,
        secret => $secret, issuer => 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem crl=@PKI@/ca2.crl',
        store => 'shm', map => "$dir/map.txt", revocation => 'crl', cookie_secure => 'off',
        locations => [ '/jpki/' => { endpoints => 1 }, '/app/' => { gate => 1, upstream => 1 } ],
        nginx_listen => 'http2', apache => "Protocols h2c http/1.1\n", modules => ['http2']);
    flows($kind, $srv);
    $srv->stop;
}

done_testing();
