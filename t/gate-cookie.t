#!/usr/bin/perl
# t/gate-cookie.t - what a gated request brings to the upstream and the
# client, through nginx and Apache alike:
#  - the sealed session cookie (a bearer token) is taken out of the Cookie
#    header(s) the upstream gets, the other cookies kept as they were; a
#    header left empty is dropped.  jpki_pass_cookie on / JPKIPassCookie On
#    keeps it.  An internal redirect from a gated location to another one
#    is checked again (the gate still reads the client's cookie) and that
#    location's setting counts.  Over HTTP/2 too (one cookie field each).
#  - a request let through with a Set-Cookie (the session sealed again)
#    carries Cache-Control: private.
# The upstream here answers with the Cookie header lines it received:
#   cookies=[<line>][<line>]... uri=<uri>
#   make build/ngx_http_jpki_module.so build/mod_auth_jpki.so build/jpkictl pki
#   prove -v t/gate-cookie.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl));
my @kinds = JPKIServer::kinds();

my $f = site_fixture();
my ($dir, $secret, $issuer, $map) = @$f{qw(dir secret issuer map)};

# ---- the upstream: the Cookie lines of each request, in order
my $listen = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1',
                                   LocalPort => 0, ReuseAddr => 1) or die "listen: $!";
my $up = $listen->sockport;
JPKITest::fork_code('cookie echo', "$dir/echo.log", sub {
    $SIG{CHLD} = 'IGNORE';
    for (;;) {
        my $c = $listen->accept or next;
        next if fork;                   # the parent accepts the next one
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            last unless sysread($c, $head, 8192, length $head);
        }
        my ($uri) = $head =~ m{^\S+ (\S+)};
        my $body = 'cookies=' . join('', map { "[$_]" } $head =~ /^Cookie: ?(.*?)\r$/mgi)
                 . " uri=" . ($uri // '') . "\n";
        print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
               . length($body) . "\r\nConnection: close\r\n\r\n$body";
        close $c;
        POSIX::_exit(0);
    }
});
close $listen;

# the site (t/lib/JPKIServer.pm): its endpoints, /app/ gated and proxied to
# the upstream, and more LOCATIONS
my $upurl = "http://127.0.0.1:$up";
sub site {
    my (%more) = @_;
    return (secret => $secret, issuer => $issuer, store => 'shm', map => $map,
            locations => [ '/jpki/' => { endpoints => 1 },
                           '/app/' => { gate => 1, upstream => $upurl },
                           @{ delete $more{locations} // [] } ],
            %more);
}

my %srv = map { ($_ => JPKIServer->start($_, name => 'main', site(locations => [
    '/fresh/' => { gate => 1, recheck_interval => 0, upstream => $upurl },
    '/pass/'  => { gate => 1, pass_cookie => 'on', upstream => $upurl },
    '/pub/'   => { upstream => $upurl },
    '/redir/' => { gate => 1, nginx => "root $dir/nowhere;\nerror_page 404 = /pass/from-redirect;",
                   apache => 'ErrorDocument 404 /pass/from-redirect' },
]))) } @kinds;

# GET PATH with these Cookie header lines: (status, what the upstream saw,
# response)
sub get_with {
    my ($srv, $path, @cookie) = @_;
    my $r = http('GET', $srv->url($path),
                 headers => @cookie ? { Cookie => @cookie == 1 ? $cookie[0] : \@cookie } : {});
    my ($seen) = ($r->{content} // '') =~ /^cookies=(.*) uri=/;
    return ($r->{status}, $seen, $r);
}

for my $name (@kinds) {
    my $srv = $srv{$name};
    my $r = login_to($srv, 'user1');
    is($r->{status}, 200, "$name: login");
    my $c = cookie_of($r);
    ok($c, "$name: ... a session") or next;

    my ($st, $seen, $resp) = get_with($srv, '/app/a', "a=1; jpki_session=$c; b=\"x y\"");
    is($st, 200, "$name: gated request with three cookies: 200");
    is($seen, '[a=1; b="x y"]', "$name: ... the upstream gets the other two, as they were");

    ($st, $seen) = get_with($srv, '/app/b', "jpki_session=$c");
    is($st, 200, "$name: the session cookie alone: 200");
    is($seen, '', "$name: ... the upstream gets no Cookie header");

    ($st, $seen) = get_with($srv, '/app/c', "jpki_session=$c;theme=dark; jpki_session=junk");
    is($st, 200, "$name: the session cookie twice: 200 (the first one counts)");
    is($seen, '[theme=dark]', "$name: ... both taken out");

    ($st, $seen) = get_with($srv, '/app/d', "theme=dark");
    is($st, 401, "$name: no session cookie: 401");

    ($st, $seen) = get_with($srv, '/pass/e', "a=1; jpki_session=$c");
    is($st, 200, "$name: jpki_pass_cookie on: 200");
    is($seen, "[a=1; jpki_session=$c]", "$name: ... the upstream gets the Cookie header as sent");

    ($st, $seen) = get_with($srv, '/pub/f', "a=1; jpki_session=$c");
    is($seen, "[a=1; jpki_session=$c]", "$name: an ungated location: the Cookie header as sent");

    # gated, then redirected inside the server to a location gated with
    # the cookie passed on: checked again there, with the client's cookie
    ($st, $seen, $resp) = get_with($srv, '/redir/x', "a=1; jpki_session=$c");
    like($resp->{content} // '', qr{uri=/pass/from-redirect}, "$name: an internal redirect "
         . "from a gated location to another: checked and passed there")
        or diag "$st $resp->{content}";
    is($seen, "[a=1; jpki_session=$c]", "$name: ... whose jpki_pass_cookie on counts");

    # Cache-Control: private when the gate sets the cookie again
    ($st, $seen, $resp) = get_with($srv, '/app/g', "jpki_session=$c");
    ok(!set_cookies($resp), "$name: a check that seals nothing: no Set-Cookie");
    unlike($resp->{headers}{'cache-control'} // '', qr/private/,
           "$name: ... and no Cache-Control: private");
    ($st, $seen, $resp) = get_with($srv, '/fresh/h', "jpki_session=$c");
    is($st, 200, "$name: a check that re-checks revocation: 200");
    ok(scalar(grep { /^jpki_session=v1\./ } set_cookies($resp)),
       "$name: ... the session sealed again (Set-Cookie)");
    my $cc = $resp->{headers}{'cache-control'};
    ok(scalar(grep { $_ eq 'private' } map { split /\s*,\s*/ } ref $cc ? @$cc : ($cc // '')),
       "$name: ... with Cache-Control: private") or diag explain $resp->{headers};
    is($seen, '', "$name: ... the upstream gets no Cookie header");

    ok(!$srv->log_problems(0), "$name: no crash in the error log");
}

# HTTP/2: the cookie fields of a request are one Cookie header for the
# gate and the upstream (nginx joins them, so does mod_http2)
SKIP: {
    skip 'curl without HTTP/2', 3 * @kinds unless `curl --version` =~ /\bHTTP2\b/;
    skip 'no mod_http2', 3 * @kinds unless -f "$JPKIApache::MODDIR/mod_http2.so";
    for my $name (@kinds) {
        my $srv = JPKIServer->start($name, name => 'h2', site(nginx_listen => 'http2',
            apache => "Protocols h2c http/1.1\n", modules => ['http2']));
        my ($ch) = curl_h2($srv->url('/jpki/challenge')) =~ /"challenge":"([^"]+)"/;
        my $out = login_h2($srv->url('/jpki'), $ch, 'user1');
        my ($c) = $out =~ /^set-cookie: jpki_session=([^;]+)/mi;
        ok($c, "$name h2: login") or diag $out;
        $out = curl_h2('-H', 'Cookie: a=1', '-H', "Cookie: jpki_session=$c; b=2",
                       $srv->url('/app/h2'));
        like($out, qr{^HTTP/2 200}, "$name h2: two cookie fields: 200") or diag $out;
        like($out, qr{^cookies=\[a=1; b=2\] uri=/app/h2$}m,
             "$name h2: ... the upstream gets the other cookies") or diag $out;
    }
}

done_testing();
