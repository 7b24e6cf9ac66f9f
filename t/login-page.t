#!/usr/bin/perl
# t/login-page.t - the gate's own login page and the device flow, on nginx
# and Apache alike (docs/protocol.md section 7):
#   - GET <endpoints>/login: the page, in Japanese or English by
#     Accept-Language, with its CSP and the methods the location turned on
#     (jpki_login_methods), a template of the site's (jpki_login_template)
#     and a template with a bad mark refused at startup, with its line;
#   - page.css and page.js, with their types and ETags;
#   - a browser's form login refused: back to the page with the reason;
#   - the device flow: the page starts it (a cookie of the browser), a
#     signer posts a signed login into it, the page's poll takes the
#     session, which opens the gated location; another browser's poll, a
#     second poll, a second signer, an expired flow, a forged signer and
#     a signer of an unmapped card are refused;
#   - the same without JavaScript: the page with the QR code refreshes to
#     the poll, which ends on the page asked for.
#   make build/ngx_http_jpki_module.so build/mod_auth_jpki.so build/jpkictl pki
#   prove -v t/login-page.t
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MIME::Base64 qw(decode_base64);
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl));
my @kinds = JPKIServer::kinds();

my $f = site_fixture();
my ($dir, $secret, $issuer, $map) = @$f{qw(dir secret issuer map)};

spew("$dir/page.html", "<!doctype html><html lang=\"{{lang}}\"><title>{{t:title}}"
     . "</title><h1>Our own page</h1>{{#tls}}<form method=post action=\"{{tls_url}}\">"
     . "<button>{{t:tls_start}}</button></form>{{/tls}}</html>\n", 0644);
spew("$dir/bad.html", "<html>\n<p>fine</p>\n<p>{{nonsense}}</p>\n</html>\n", 0644);

sub site {
    my ($kind, %o) = @_;
    return (secret => $secret, issuer => $issuer, store => 'shm', map => $map,
            locations => [
                '/jpki/' => { endpoints => 1, %{ $o{endpoints} // {} } },
                '/own/' => { endpoints => 1,
                             nginx => "jpki_login_template $dir/page.html;",
                             apache => "JPKILoginTemplate $dir/page.html" },
                '/deviceonly/' => { endpoints => 1, login_methods => 'device' },
                '/app/' => { gate => 1, upstream => 1, login_page => '/jpki/login' } ]);
}

# the signer: a signed JSON login of CERT (key KEY) over CH into URL
sub sign_into {
    my ($url, $ch, $cert, $key, $signed) = @_;
    return post_json($url, login_body($signed // $ch, $cert, $key // $cert,
                                      cert_form => 'b64'))
        if !defined $signed;
    my $b = login_body($signed, $cert, $key // $cert, cert_form => 'b64');
    $b->{challenge} = $ch;
    return post_json($url, $b);
}

sub start_flow {
    my ($srv, %h) = @_;
    my $r = post_form($srv->url('/jpki/device'), { return_to => '/app/here' },
                      headers => { Accept => 'application/json', %h });
    my $cookie = cookie_of($r, 'jpki_flow');
    return ($r, $cookie);
}

sub poll {
    my ($srv, $cookie, %o) = @_;
    return http('GET', $srv->url('/jpki/poll' . ($o{query} // '')),
                headers => { Accept => $o{accept} // 'application/json',
                             defined $cookie ? (Cookie => "jpki_flow=$cookie") : () });
}

# The device flow on SRV (KIND, with the store LABEL says).
sub device_flow {
    my ($kind, $srv, $label) = @_;
    $kind .= " ($label)" if $label;
    my $r;
    my ($start, $cookie) = start_flow($srv);
    is($start->{status}, 200, "$kind: a flow started") or diag $start->{content};
    my $j = $start->{json} // {};
    my ($fch) = ($j->{url} // '') =~ /challenge=([A-Za-z0-9_-]+)/;
    like($j->{url} // '', qr{^http://127\.0\.0\.1:\d+/jpki/sign\?challenge=[A-Za-z0-9_-]{100}&code=[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}$},
         "$kind: ... its URL: origin, challenge, code");
    is($j->{link}, "jpki:$j->{url}", "$kind: ... its jpki: link");
    like($j->{qr} // '', qr{^data:image/svg\+xml;base64,}, "$kind: ... its QR code");
    my $svg = decode_base64(($j->{qr} // '') =~ s/^data:[^,]*,//r);
    like($svg, qr{^<svg .*<path fill="#000" d="M}s, "$kind: ... an SVG of the modules");
    ok($cookie && $cookie =~ /^\Q$fch\E\.[0-9a-f]{32}$/, "$kind: ... bound to a cookie of the browser");
    my ($sc) = grep { /^jpki_flow=/ } set_cookies($start);
    like($sc // '', qr/HttpOnly/i, "$kind: ... HttpOnly");
    like($sc // '', qr/SameSite=Strict/i, "$kind: ... SameSite=Strict");
    like($sc // '', qr{Path=/jpki/}, "$kind: ... for the endpoints only");

    $r = poll($srv, $cookie);
    is($r->{json}{status} // '', 'pending', "$kind: the page's poll: pending");
    my $other = "$fch." . ('0' x 32);
    $r = poll($srv, $other);
    is($r->{status}, 403, "$kind: another browser's poll: 403");
    is($r->{json}{error} // '', 'flow_mismatch', "$kind: ... flow_mismatch");

    $r = sign_into($srv->url('/jpki/sign'), $fch, 'user1', 'user2');
    is($r->{status}, 401, "$kind: a forged signer (another key): 401");
    $r = poll($srv, $cookie);
    is($r->{json}{status} // '', 'pending', "$kind: ... the flow still waits");
    my $plain = challenge($srv->url('/jpki'));
    $r = sign_into($srv->url('/jpki/sign'), $plain, 'user1');
    is($r->{status}, 410, "$kind: a login of no flow into sign: 410");
    is($r->{json}{error} // '', 'flow_unknown', "$kind: ... flow_unknown");

    $r = sign_into($j->{url}, $fch, 'user1');
    is($r->{status}, 200, "$kind: the signer, at the flow's URL: ok") or diag $r->{content};
    is($r->{json}{code} // '', ($j->{url} =~ /code=(.*)$/)[0], "$kind: ... it is told the code");
    ok(!cookie_of($r), "$kind: ... the signer gets no session");
    $r = sign_into($j->{url}, $fch, 'user1');
    is($r->{status}, 410, "$kind: a second signer into the same flow: 410");
    $r = poll($srv, $other);
    is($r->{status}, 403, "$kind: another browser's poll of the signed flow: 403");

    is($j->{poll}, '/jpki/poll?return_to=/app/here', "$kind: the poll's URL keeps return_to");
    $r = poll($srv, $cookie, query => '?return_to=/app/here');
    is($r->{status}, 200, "$kind: the browser's poll: signed in") or diag $r->{content};
    is($r->{json}{account} // '', 'alice', "$kind: ... as alice");
    is($r->{json}{return_to} // '', '/app/here', "$kind: ... told where to go");
    my $session = cookie_of($r);
    ok($session, "$kind: ... with the session cookie");
    is(cookie_of($r, 'jpki_flow'), '', "$kind: ... and the flow's cookie cleared");
    $r = gated_get($srv, $session, '/app/x');
    like($r->{content} // '', qr/account=\[alice\]/, "$kind: the session opens the gated page");
    $r = poll($srv, $cookie);
    is($r->{status}, 410, "$kind: a used flow's second poll: 410");

    # a card not mapped: the signer and the page are told
    ($start, $cookie) = start_flow($srv);
    ($fch) = ($start->{json}{url} // '') =~ /challenge=([A-Za-z0-9_-]+)/;
    $r = sign_into($start->{json}{url}, $fch, 'user2');
    is($r->{json}{error} // '', 'account_not_mapped', "$kind: an unmapped card's signer: refused");
    $r = poll($srv, $cookie);
    is($r->{json}{error} // '', 'account_not_mapped', "$kind: ... the page's poll says why");

    # another site's page cannot start a flow in the browser
    ($start) = start_flow($srv, 'Sec-Fetch-Site' => 'cross-site', Origin => 'https://evil.example');
    is($start->{status}, 403, "$kind: a flow started by another site's page: 403");

    # without JavaScript: the page with the QR code, refreshed to the poll
    $r = post_form($srv->url('/jpki/device'), { return_to => '/app/nojs' },
                   headers => { Accept => 'text/html' });
    $cookie = cookie_of($r, 'jpki_flow');
    like($r->{content} // '', qr{<img class="qr" src="data:image/svg\+xml;base64,}, "$kind: without JavaScript: the QR code in the page");
    like($r->{content} // '', qr{<meta http-equiv="refresh" content="3;url=/jpki/poll\?return_to=/app/nojs">},
         "$kind: ... refreshed to the poll");
    ($fch) = ($cookie // '') =~ /^([^.]+)\./;
    $r = poll($srv, $cookie, accept => 'text/html', query => '?return_to=/app/nojs');
    like($r->{content} // '', qr/class="qr"/, "$kind: ... the poll's page while it waits");
    sign_into($srv->url('/jpki/sign'), $fch, 'user1');
    $r = poll($srv, $cookie, accept => 'text/html', query => '?return_to=/app/nojs');
    is($r->{status}, 303, "$kind: ... once signed: 303");
    is($r->{headers}{location}, '/app/nojs', "$kind: ... to the page asked for");
    ok(cookie_of($r), "$kind: ... signed in");

}

for my $kind (@kinds) {
    # a template with a bad mark: the server does not start, and says where
    my %bad = site($kind);
    $bad{locations}[1] = { endpoints => 1,
                           nginx => "jpki_login_template $dir/bad.html;",
                           apache => "JPKILoginTemplate $dir/bad.html" };
    my ($st, $out) = JPKIServer->configtest($kind, %bad);
    ok($st != 0, "$kind: a template with an unknown mark: refused at startup");
    like($out, qr/bad\.html" line 3: unknown mark \{\{nonsense\}\}/,
         "$kind: ... with the file, the line and the mark") or diag $out;
    %bad = site($kind);
    $bad{locations}[1] = { endpoints => 1, login_methods => 'tls sms' };
    ($st, $out) = JPKIServer->configtest($kind, %bad);
    ok($st != 0 && $out =~ /must be "none", or "tls" and "device"/,
       "$kind: an unknown login method: refused at startup") or diag $out;

    my $srv = JPKIServer->start($kind, name => 'page', site($kind));

    # ---- the page ----
    my $r = http('GET', $srv->url('/jpki/login?return_to=%2Fapp%2Fx'),
                 headers => { 'Accept-Language' => 'ja,en;q=0.5', Accept => 'text/html' });
    is($r->{status}, 200, "$kind: GET /jpki/login: the page");
    like($r->{headers}{'content-type'}, qr{^text/html; charset=utf-8}, "$kind: ... HTML");
    my $html = $r->{content};
    utf8::decode($html);
    like($html, qr/<html lang="ja">/, "$kind: ... in Japanese (Accept-Language ja)");
    like($html, qr/マイナンバーカードでログイン/, "$kind: ... its title");
    like($html, qr{action="/jpki/tls"}, "$kind: ... the TLS method, a plain form");
    like($html, qr{action="/jpki/device"}, "$kind: ... the device method");
    like($html, qr{name="return_to" value="/app/x"}, "$kind: ... return_to kept");
    like($r->{headers}{'content-security-policy'} // '',
         qr/default-src 'none'.*script-src 'self'.*frame-ancestors 'none'/,
         "$kind: ... a strict CSP");
    is($r->{headers}{'x-frame-options'}, 'DENY', "$kind: ... no framing");
    unlike($html, qr/<script>|onclick=|style="/, "$kind: ... no inline script or style");

    $r = http('GET', $srv->url('/jpki/login?error=cert_expired'),
              headers => { 'Accept-Language' => 'en-GB' });
    like($r->{content}, qr/<html lang="en">.*has expired/s,
         "$kind: in English, with the refusal's sentence (error=cert_expired)");
    like($r->{content}, qr/role="alert"/, "$kind: ... read out by screen readers");

    $r = http('GET', $srv->url('/own/login'));
    like($r->{content}, qr{<h1>Our own page</h1>.*action="/own/tls"}s,
         "$kind: the site's own template (jpki_login_template)");
    $r = http('GET', $srv->url('/deviceonly/login'), headers => { 'Accept-Language' => 'en' });
    ok($r->{content} !~ /m-tls/ && $r->{content} =~ /m-device/,
       "$kind: only the methods the location turned on");

    # ---- assets ----
    $r = http('GET', $srv->url('/jpki/page.js'));
    is($r->{status}, 200, "$kind: page.js");
    like($r->{headers}{'content-type'}, qr{^text/javascript}, "$kind: ... its type");
    like($r->{headers}{etag} // '', qr/^"[0-9a-f]{16}"$/, "$kind: ... its ETag");
    $r = http('GET', $srv->url('/jpki/page.css'));
    like($r->{headers}{'content-type'} // '', qr{^text/css}, "$kind: page.css");

    # ---- a gated page sends the browser to it ----
    $r = http('GET', $srv->url('/app/x'), headers => { Accept => 'text/html' });
    is($r->{status}, 302, "$kind: a gated page without a session: to the login page");
    like($r->{headers}{location} // '', qr{^/jpki/login\?return_to=/app/x}, "$kind: ... with return_to");

    # ---- a form login refused: back to the page ----
    my $ch = challenge($srv->url('/jpki'));
    $r = post_form($srv->url('/jpki/login'),
                   { %{ login_body($ch, 'user2', undef, cert_form => 'b64') },
                     return_to => '/app/x' },
                   headers => { Accept => 'text/html' });
    is($r->{status}, 303, "$kind: a form login refused: 303");
    is($r->{headers}{location}, '/jpki/login?error=account_not_mapped&return_to=/app/x',
       "$kind: ... to the page, with the reason");

    device_flow($kind, $srv);

    my @problems = $srv->log_problems;
    ok(!@problems, "$kind: no crash or alert in the log") or diag "@problems";
    $srv->stop;
}

# the same with Redis as the store (the flow's sealed record is binary)
SKIP: {
    skip 'no redis-server', 1 unless JPKITest::redis_bin();
    my $redis = JPKITest::Redis->start(name => 'redis');
    for my $kind (@kinds) {
        my %s = site($kind);
        $s{store} = 'redis=127.0.0.1:' . $redis->port;
        my $srv = JPKIServer->start($kind, name => 'redis', %s);
        device_flow($kind, $srv, 'Redis');
        $srv->stop;
    }
}

# an expired flow (the challenge's TTL, 10 s here, its least): the signer
# and the poll; both servers wait at once
my (@srv, @flows);
for my $kind (@kinds) {
    my %s = site($kind);
    $s{challenge_ttl} = '10s';
    my $srv = JPKIServer->start($kind, name => 'expiry', %s);
    push @srv, $srv;
    push @flows, [ $kind, $srv, start_flow($srv) ];
}
sleep 11 if @flows;
for my $f (@flows) {
    my ($kind, $srv, $start, $cookie) = @$f;
    my ($fch) = ($start->{json}{url} // '') =~ /challenge=([A-Za-z0-9_-]+)/;
    my $r = sign_into($start->{json}{url}, $fch, 'user1');
    is($r->{json}{error} // '', 'challenge_expired', "$kind: a signer after the flow expired: refused");
    $r = poll($srv, $cookie);
    is($r->{status}, 410, "$kind: ... the expired flow's poll: 410");
}
$_->stop for @srv;

done_testing();
