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

skip_unless(qw(nginx module jpkictl pki openssl));
skip_unless_apache();

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

# the site, a server on LISTEN: its endpoints, /app/ gated and proxied to
# the upstream, and more LOCATIONS
sub ng_conf {
    my ($zone, $listen, $locations) = @_;
    return <<"EOF";
    jpki_secret_file $secret;
    jpki_issuer $issuer;
    jpki_store shm zone=$zone:1m;
    jpki_map_file $map;
    server {
        listen $listen;
        location /jpki/ { jpki_endpoints; }
        location /app/ { jpki on; proxy_pass http://127.0.0.1:$up; }
$locations
    }
EOF
}

# the same for Apache: GLOBAL directives first, then LOCATIONS
sub ap_conf {
    my ($global, $locations) = @_;
    return <<"EOF";
$global
JPKISecretFile $secret
JPKIIssuer $issuer
JPKIStore shm size=1M
JPKIMapFile $map
<Location /jpki/>
    JPKIEndpoints On
</Location>
<Location /app/>
    AuthType JPKI
    Require valid-user
    ProxyPass http://127.0.0.1:$up/app/
</Location>
$locations
EOF
}

my $ng = JPKITest::Nginx->start(name => 'nginx', http => ng_conf('jpki', '127.0.0.1:@PORT@', <<"EOF"));
        location /fresh/ { jpki on; jpki_recheck_interval 0;
                           proxy_pass http://127.0.0.1:$up; }
        location /pass/ { jpki on; jpki_pass_cookie on;
                          proxy_pass http://127.0.0.1:$up; }
        location /pub/ { proxy_pass http://127.0.0.1:$up; }
        location /redir/ { jpki on; root $dir/nowhere;
                           error_page 404 = /pass/from-redirect; }
EOF

my $ap = JPKIApache::Server->start(name => 'apache', main => ap_conf('', <<"EOF"));
<Location /fresh/>
    AuthType JPKI
    Require valid-user
    JPKIRecheckInterval 0
    ProxyPass http://127.0.0.1:$up/fresh/
</Location>
<Location /pass/>
    AuthType JPKI
    Require valid-user
    JPKIPassCookie On
    ProxyPass http://127.0.0.1:$up/pass/
</Location>
<Location /pub/>
    ProxyPass http://127.0.0.1:$up/pub/
</Location>
<Location /redir/>
    AuthType JPKI
    Require valid-user
    ErrorDocument 404 /pass/from-redirect
</Location>
EOF

# GET PATH with these Cookie header lines: (status, what the upstream saw,
# response)
sub get_with {
    my ($srv, $path, @cookie) = @_;
    my $r = http('GET', $srv->url($path),
                 headers => @cookie ? { Cookie => @cookie == 1 ? $cookie[0] : \@cookie } : {});
    my ($seen) = ($r->{content} // '') =~ /^cookies=(.*) uri=/;
    return ($r->{status}, $seen, $r);
}

for my $s ([nginx => $ng], [apache => $ap]) {
    my ($name, $srv) = @$s;
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

    ok(!$srv->log_problems($srv->can('vh') ? (undef, 0) : (0)), "$name: no crash in the error log");
}

# HTTP/2: the cookie fields of a request are one Cookie header for the
# gate and the upstream (nginx joins them, so does mod_http2)
SKIP: {
    skip 'curl without HTTP/2', 6 unless `curl --version` =~ /\bHTTP2\b/;
    skip 'no mod_http2', 6 unless -f "$JPKIApache::MODDIR/mod_http2.so";
    my $h2 = JPKITest::Nginx->start(name => 'nginx-h2',
                                    http => ng_conf('jpki2', '127.0.0.1:@PORT@ http2', ''));
    my $ap2 = JPKIApache::Server->start(name => 'apache-h2', modules => ['http2'],
                                        main => ap_conf('Protocols h2c http/1.1', ''));
    for my $s ([nginx => $h2], [apache => $ap2]) {
        my ($name, $srv) = @$s;
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
