#!/usr/bin/perl
# t/challenge-host.t - a challenge is bound to the Host it was fetched with
# (relay of challenges between sites, docs/protocol.md), through nginx and
# Apache: a challenge fetched with `Host: other.example` and used in a login
# to 127.0.0.1 is refused with 400 challenge_host, and the other way round;
# the usual path works, and so does a Host that differs only by port, case
# or a trailing dot.  Over HTTP/2 (curl h2c) the :authority is the Host.
#   make build/ngx_http_jpki_module.so build/mod_auth_jpki.so build/jpkictl pki
#   prove -v t/challenge-host.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKIServer;
use IO::Socket::INET;

skip_unless(qw(jpkictl pki openssl));
my @kinds = JPKIServer::kinds();

my $f = site_fixture();
my ($dir, $secret, $issuer) = @$f{qw(dir secret issuer)};

# the site (t/lib/JPKIServer.pm): the endpoints and /app/ gated, MORE
# settings
sub site {
    return (secret => $secret, issuer => $issuer, store => 'shm', map => "$dir/map.txt",
            locations => [ '/jpki/' => { endpoints => 1 }, '/app/' => { gate => 1, upstream => 1 } ],
            @_);
}
my %srv = map { ($_ => JPKIServer->start($_, name => 'main', site())) } @kinds;

# HTTP::Tiny will not send another Host: one request on its own socket
# (HOST undef: none, HTTP/1.0).
# -> { status, headers (lower-case names), content, json }
sub raw_http {
    my ($url, $method, $host, $body) = @_;
    my ($port, $path) = $url =~ m{^http://127\.0\.0\.1:(\d+)(/.*)$} or die $url;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 10) or die "connect: $!";
    my $req = defined $host
        ? "$method $path HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n"
        : "$method $path HTTP/1.0\r\n";
    $req .= "Content-Type: application/json\r\nContent-Length: "
          . length($body) . "\r\n" if defined $body;
    print $s "$req\r\n", $body // '';
    local $/;
    my $out = <$s> // '';
    close $s;
    my ($head, $content) = split /\r\n\r\n/, $out, 2;
    my ($st) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    my %h;
    for (split /\r\n/, $head // '') {
        next unless /^([^:]+):\s*(.*)$/;
        my $k = lc $1;
        $h{$k} = exists $h{$k} ? [ (ref $h{$k} ? @{ $h{$k} } : $h{$k}), $2 ] : $2;
    }
    $content //= '';
    $content =~ s/^[0-9a-f]+\r\n(.*?)\r\n0\r\n\r\n$/$1/s
        if ($h{'transfer-encoding'} // '') =~ /chunked/i;
    return { status => $st // 0, headers => \%h, content => $content,
             json => json_decode($content) };
}

# GET <base>/challenge with Host: HOST (undef: the URL's own).
sub challenge_for {
    my ($base, $host) = @_;
    my $r = defined $host ? raw_http("$base/challenge", 'GET', $host)
                          : http('GET', "$base/challenge");
    return $r->{status} == 200 && $r->{json} ? $r->{json}{challenge} : undef;
}

sub login_with {
    my ($base, $ch, $host) = @_;
    my $body = login_body($ch // 'none', 'user1');
    return defined $host
        ? raw_http("$base/login", 'POST', $host, json_encode($body))
        : post_json("$base/login", $body);
}

for my $name (@kinds) {
    my $srv = $srv{$name};
    my $base = $srv->url('/jpki');
    my $port = $srv->port;

    # the usual path: the Host is 127.0.0.1:PORT both times
    my $r = login_with($base, challenge_for($base));
    is($r->{status}, 200, "$name: challenge and login to 127.0.0.1:$port");
    my $cookie = cookie_of($r);
    ok($cookie, "$name: ... a session");
    $r = gated_get($srv, $cookie);
    is($r->{status}, 200, "$name: ... which opens the gate");

    # relayed: fetched for another host, used here
    my $ch = challenge_for($base, 'other.example');
    ok($ch, "$name: a challenge for Host other.example");
    $r = login_with($base, $ch);
    is($r->{status}, 400, "$name: ... used in a login to 127.0.0.1: 400");
    is($r->{json} && $r->{json}{error}, 'challenge_host',
       "$name: ... challenge_host") or diag $r->{content};
    ok(!cookie_of($r), "$name: ... no session");
    $r = login_with($base, $ch, 'other.example:8443');
    is($r->{status}, 200, "$name: ... accepted for other.example:8443")
        or diag $r->{content};

    # fetched here, used for another host
    $r = login_with($base, challenge_for($base), 'evil.example');
    is($r->{json} && $r->{json}{error}, 'challenge_host',
       "$name: a challenge for 127.0.0.1 used with Host evil.example: "
       . "challenge_host");

    # port, case and trailing dot do not matter
    $r = login_with($base, challenge_for($base, 'Gate.EXAMPLE:8443'),
                    'gate.example.');
    is($r->{status}, 200, "$name: Gate.EXAMPLE:8443, then gate.example.")
        or diag $r->{content};
    $r = login_with($base, challenge_for($base, "127.0.0.1:$port"),
                    '127.0.0.1');
    is($r->{status}, 200, "$name: 127.0.0.1:$port, then 127.0.0.1")
        or diag $r->{content};
    $r = login_with($base, challenge_for($base, '[::1]:443'), '[::1]');
    is($r->{status}, 200, "$name: [::1]:443, then [::1]") or diag $r->{content};

    # no valid Host to bind it to: none issued (bound to the empty host, it
    # would be good under any other invalid Host)
    $r = raw_http("$base/challenge", 'GET', 'a' x 300);
    is($r->{status}, 400, "$name: a challenge for a Host of 300 characters: 400")
        or diag $r->{content};
    is($r->{json} && $r->{json}{error}, 'bad_host', "$name: ... bad_host");
    ok($r->{json} && !exists $r->{json}{challenge}, "$name: ... no challenge");

    # HTTP/1.0 without Host: bound to the host the server found for it
    $r = raw_http("$base/challenge", 'GET', undef);
    is($r->{status}, 200, "$name: HTTP/1.0 without Host: a challenge")
        or diag $r->{content};
    $ch = $r->{json} && $r->{json}{challenge};
    $r = raw_http("$base/login", 'POST', undef,
                  json_encode(login_body($ch // 'none', 'user1')));
    is($r->{status}, 200, "$name: ... and a login with it, HTTP/1.0 without Host")
        or diag $r->{content};
    $r = login_with($base, $ch, 'other.example');
    is($r->{json} && $r->{json}{error}, 'challenge_host',
       "$name: ... which is not good for Host other.example");
}

# HTTP/2: the :authority (curl puts the URL's host there; -H Host: too)
SKIP: {
    skip 'curl without HTTP/2', 3 * @kinds unless `curl --version` =~ /\bHTTP2\b/;
    skip 'no mod_http2', 3 * @kinds unless -f "$JPKIApache::MODDIR/mod_http2.so";
    for my $name (@kinds) {
        my $srv = JPKIServer->start($name, name => 'h2', site(nginx_listen => 'http2',
            apache => "Protocols h2c http/1.1\n", modules => ['http2']));
        my $u = $srv->url('/jpki');
        my $curl = \&curl_h2;
        my $h2login = sub {
            my ($ch) = @_;
            my $out = login_h2($u, $ch, 'user1');
            my ($st) = $out =~ m{^HTTP/\S+ (\d+)};
            my ($err) = $out =~ /"error":"([^"]+)"/;
            return ($st // 0, $err // '', $out);
        };
        my ($ch) = $curl->("$u/challenge") =~ /"challenge":"([^"]+)"/;
        my ($st, $err, $out) = $h2login->($ch);
        is($st, 200, "$name h2: challenge and login over HTTP/2") or diag $out;
        ($ch) = $curl->('-H', 'Host: other.example', "$u/challenge")
            =~ /"challenge":"([^"]+)"/;
        ok($ch, "$name h2: a challenge for :authority other.example");
        ($st, $err, $out) = $h2login->($ch);
        is($err, 'challenge_host',
           "$name h2: ... refused for 127.0.0.1") or diag $out;
    }
}

done_testing();
