#!/usr/bin/perl
# t/subrequest.t - the gate in subrequests and internal redirects.
# On nginx and Apache alike (t/lib/JPKIServer.pm):
#   - a gated location reached by an SSI include (nginx's ssi, Apache's
#     mod_include) is gated like a request: without a session the included
#     content never appears and the upstream is not asked; with one, the
#     included request carries the account.  A client's account header is
#     stripped from subrequests too;
#   - an internal redirect (error_page / ErrorDocument) out of a gated
#     location keeps the gate's account, not a client's.
# nginx only (auth_request and $jpki_* variables have no Apache
# counterpart):
#   1. the cookie a gated subrequest's check sets (resealed after a
#      re-check or an idle deadline slide, cleared for a dead session)
#      reaches the client with the main request's answer: nginx never sends
#      a subrequest's headers (auth_request and SSI copy its status only),
#      so with `auth_request` into a gated location a session would be
#      re-checked on every request once jpki_recheck_interval passed, and
#      end after jpki_session_idle however active its user;
#      $jpki_set_cookie holds it too;
#   2. nested subrequests (SSI includes in an include) carry the account of
#      the nearest request whose gate let them through, not only the main
#      request's: no header lost, no false "client sent gate header"
#      warning; the $jpki_* variables fall back to that check too.
#   make all pki && prove -v t/subrequest.t   (JPKI_SERVERS=nginx: one server)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use JPKITest;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl));
my @kinds = JPKIServer::kinds();

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
spew("$dir/site.map", cert_id('user1', $secret) . " alice\n", 0644);
my $www = "$dir/www";
mkdir $www;
mkdir "$www/$_" for qw(gated ssi static);
chmod 0755, $www, map { "$www/$_" } qw(gated ssi static);
spew("$www/page.shtml", "before\n<!--#include virtual=\"/app/inc\" -->\nafter\n", 0644);
spew("$www/pub.shtml", "<!--#include virtual=\"/pub/echo\" -->\n", 0644);

# The site: revocation by CRL (no responder to wait for), the endpoints,
# /app/ gated, /pub/ ungated (both proxied to the echo upstream), /err/
# gated and answered by an internal redirect to /pub/echo, and the .shtml
# pages of $www with SSI.
my %site = (
    secret => $secret, issuer => 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem crl=@PKI@/ca2.crl',
    store => 'shm zone=sub', map => "$dir/site.map", revocation => 'crl',
    locations => [
        '/jpki/' => { endpoints => 1 },
        '/app/'  => { gate => 1, upstream => 1, recheck_interval => 0 },
        '/pub/'  => { upstream => 1 },
        '/err/'  => { gate => 1, nginx => "root $dir/nowhere;\nerror_page 404 = /pub/echo;",
                      apache => 'ErrorDocument 404 /pub/echo' },
    ],
    nginx_server => "        location ~ \\.shtml\$ { ssi on; types { text/html shtml; } root $www; }\n",
    apache => <<"EOF",
DocumentRoot "$www"
<Directory "$www">
    Options +Includes
    SetOutputFilter INCLUDES
    Require all granted
</Directory>
EOF
    modules => ['include'],
    workers => 1,
);

# The first login of user1 on SRV: nginx reads its CRL files in a thread
# after the start (revocation_unavailable until then: waited for, 5 s).
sub first_login {
    my ($srv) = @_;
    my ($r, $end) = (undef, time + 5);
    while (($r = $srv->login('user1'))->{status} == 503 && time < $end
           && ($r->{json}{error} // '') eq 'revocation_unavailable') {
        sleep 0.1;
    }
    return $r;
}

for my $kind (@kinds) {
    my $srv = JPKIServer->start($kind, name => 'ssi', %site);
    my $mark = $srv->mark;
    my $r = $srv->get('/page.shtml');
    is($r->{status}, 200, "$kind: ungated page with a gated include: 200");
    like($r->{content}, qr/before.*after/s, '... its own text');
    unlike($r->{content}, qr/account=/, "$kind: without a session the included content is not there");
    is($srv->upstream_hits($mark, 0), 0, '... and the upstream was not asked');

    my $login = first_login($srv);
    is($login->{status}, 200, "$kind: login");
    my $cookie = cookie_of($login) // '';
    $r = $srv->get('/page.shtml', cookie => $cookie);
    like($r->{content}, qr/account=\[alice\]/, "$kind: with a session the include carries the account");

    # an internal redirect from a gated location to an ungated one keeps
    # the account the gate set, not a client's
    $r = $srv->get('/err/none', cookie => $cookie, headers => { 'X-JPKI-Account' => 'mallory' });
    like($r->{content}, qr/account=\[alice\]/, "$kind: internal redirect after the gate: the account stays");
    unlike($r->{content}, qr/mallory/, "... not the client's");
    $r = $srv->get('/err/none');
    is($r->{status}, 401, "$kind: without a session the gated location refuses first");

    $r = $srv->get('/page.shtml', cookie => 'v1.forged');
    unlike($r->{content}, qr/account=/, "$kind: a forged cookie: no included content");

    $r = $srv->get('/pub.shtml', headers => { 'X-JPKI-Account' => 'mallory' });
    like($r->{content}, qr/account=\[\]/, "$kind: an ungated include: the client's account header is stripped");
    $srv->stop;
}

# ================================================================ nginx only
# (auth_request, nested SSI includes and the $jpki_* variables)

if (grep { $_ eq 'nginx' } @kinds) {
    # an ungated page including a gated page that includes an ungated location
    spew("$www/nest.html", "1\n<!--# include virtual=\"/gated/inner.html\" -->2\n", 0644);
    spew("$www/gated/inner.html", "<!--# include virtual=\"/pub/inc\" -->", 0644);
    # one level deeper: ungated page > gated page > ungated page > ungated
    # location (and the variables in the ungated page)
    spew("$www/deep.html", "1\n<!--# include virtual=\"/gated/mid.html\" -->2\n", 0644);
    spew("$www/gated/mid.html", "m\n<!--# include virtual=\"/ssi/leaf.html\" -->", 0644);
    spew("$www/ssi/leaf.html", "var=[<!--# echo var=\"jpki_account\" default=\"\" -->]\n"
                               . "<!--# include virtual=\"/pub/inc\" -->", 0644);
    # a gated page whose include is gated too (its own check)
    spew("$www/gated/self.html", "<!--# include virtual=\"/app/self\" -->", 0644);
    spew("$www/static/f.txt", "static file\n", 0644);

    # an upstream of its own that sets a cookie: the client must get both its
    # cookie and the gate's
    my $up2 = JPKITest::free_port();
    my $ng = JPKIServer->start('nginx', name => 'sub', workers => 1,
        %site{qw(secret issuer store map revocation)},
        locations => [ '/jpki/' => { endpoints => 1 } ],
        nginx => <<"EOF", nginx_server => <<"EOF");
    server {
        listen 127.0.0.1:$up2;
        location / {
            add_header Set-Cookie "app=upstream; Path=/";
            return 200 "app uri=\$request_uri\\n";
        }
    }
EOF
        # the auth_request target: re-checks a session 2 s after its last
        # check (the cookie then carries the new time)
        location = /check {
            internal;
            jpki on;
            jpki_recheck_interval 2s;
            proxy_pass http://127.0.0.1:\@UP\@;
        }
        location /private/ {
            auth_request /check;
            proxy_pass http://127.0.0.1:$up2;
        }
        location /echo/ {
            auth_request /check;
            auth_request_set \$acct \$jpki_account;
            auth_request_set \$sc \$jpki_set_cookie;
            proxy_set_header X-JPKI-Other \$acct;
            proxy_set_header X-Remote-User \$sc;
            proxy_pass http://127.0.0.1:\@UP\@;
        }
        location /static/ {
            auth_request /check;
            root $www;
        }
        location /app/  { jpki on; jpki_recheck_interval 0; proxy_pass http://127.0.0.1:\@UP\@; }
        location /pub/  {
            proxy_set_header X-JPKI-Other \$jpki_account;
            proxy_pass http://127.0.0.1:\@UP\@;
        }
        location ~ ^/[a-z]+\\.html\$ { ssi on; root $www; }
        location /gated/ { jpki on; jpki_recheck_interval 0; ssi on; root $www; }
        location /ssi/ { ssi on; root $www; }
EOF

    my $r = first_login($ng);
    is($r->{status}, 200, 'login');
    my $c0 = cookie_of($r) // '';
    my $get = sub {
        my ($path, $cookie, %h) = @_;
        return $ng->get($path, cookie => $cookie, headers => \%h);
    };
    my $gate_cookies = sub { grep { /^jpki_session=/ } set_cookies($_[0]) };

    # ------------------------------------------------ 1. the subrequest's cookie

    $r = $get->('/private/a', $c0);
    is($r->{status}, 200, 'auth_request, checked within jpki_recheck_interval: 200');
    is(scalar $gate_cookies->($r), 0, '... no cookie to set');
    is($r->{content}, "app uri=/private/a\n", '... the upstream answered');
    $r = $get->('/echo/a', $c0);
    is($r->{content}, "account=[] spoof=[] other=[alice] user=[] uri=/echo/a\n",
       '... $jpki_set_cookie empty');

    sleep 2.2;                              # past jpki_recheck_interval
    my $mark = $ng->mark;
    $r = $get->('/private/b', $c0);
    is($r->{status}, 200, 'auth_request, jpki_recheck_interval passed: 200 (re-checked)');
    my @gc = $gate_cookies->($r);
    is(scalar @gc, 1, '... the resealed cookie reaches the client (proxied answer)')
        or diag(explain($r->{headers}));
    my ($c1) = ($gc[0] // '') =~ /^jpki_session=([^;]+);/;
    ok($c1 && $c1 ne $c0, '... a new session cookie');
    like($gc[0] // '', qr/; Path=\/; Max-Age=\d+; Secure; HttpOnly; SameSite=Lax$/,
         '... with its attributes');
    ok((grep { /^app=upstream;/ } set_cookies($r)), "... next to the upstream's own cookie");

    $r = $get->('/static/f.txt', $c0);
    is($r->{status}, 200, 'auth_request to a static file, the old cookie: 200');
    is(scalar $gate_cookies->($r), 1, '... resealed again (nginx answered, no upstream): '
       . 'the cookie reaches the client');
    is($r->{content}, "static file\n", '... the file');

    $r = $get->('/echo/b', $c0);
    my ($set) = $gate_cookies->($r);
    ok($set, 'auth_request_set with $jpki_set_cookie: the cookie set')
        or diag(explain($r->{headers}));
    is($r->{content}, "account=[] spoof=[] other=[alice] user=[$set] uri=/echo/b\n",
       '... is the one in $jpki_set_cookie');

    $r = $get->('/private/c', $c1);
    is($r->{status}, 200, 'the resealed cookie: 200');
    is(scalar $gate_cookies->($r), 0, '... not re-checked again (nothing to set): the check '
       . 'time it carries is in force');

    # a logged-out session: the gate clears the cookie of the refused check
    $r = $ng->logout($c1);
    is($r->{status}, 200, 'logout');
    sleep 2.2;                              # (a re-check finds the logout marker)
    $r = $get->('/private/f', $c1);
    is($r->{status}, 401, 'auth_request with the logged-out session: 401');
    is_deeply([ $gate_cookies->($r) ],
              [ 'jpki_session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax' ],
              '... and the cookie is cleared');
    is_deeply([ $ng->log_problems($mark) ], [], 'no alert, crash or sanitizer report');

    # ------------------------------------------------ 2. nested subrequests

    $r = $ng->login('user1');
    my $c = cookie_of($r) // '';
    $mark = $ng->mark;

    $r = $get->('/nest.html', $c);
    is($r->{content}, "1\naccount=[alice] spoof=[] other=[alice] user=[] uri=/pub/inc\n2\n",
       'ungated page > gated page > ungated location: the account of the gated page, header '
       . 'and variable');
    $r = $get->('/deep.html', $c);
    is($r->{content}, "1\nm\nvar=[alice]\naccount=[alice] spoof=[] other=[alice] user=[] "
       . "uri=/pub/inc\n2\n",
       'one level deeper (ungated > gated > ungated page > ungated location): the same');
    $r = $get->('/gated/self.html', $c);
    is($r->{content}, "account=[alice] spoof=[] other=[] user=[] uri=/app/self\n",
       'a gated page including a gated location: its own check');
    is($ng->upstream_hits($mark, 3), 3, '(the upstream saw the three)');
    unlike($ng->log_since($mark), qr/client sent gate header/,
           'no "client sent gate header" warning for the headers the gates set');

    $r = $get->('/nest.html', undef);
    is($r->{content}, "1\n2\n", 'without a session: the gated page and what it includes left out');
    $r = $get->('/deep.html', 'forged', 'X-JPKI-Account' => 'admin', 'X-JPKI-Other' => 'admin');
    is($r->{content}, "1\n2\n", 'a forged cookie and client gate headers: nothing included');
    $mark = $ng->mark;
    $r = $get->('/deep.html', $c, 'X-JPKI-Account' => 'admin', 'X_JPKI_Other' => 'admin');
    is($r->{content}, "1\nm\nvar=[alice]\naccount=[alice] spoof=[] other=[alice] user=[] "
       . "uri=/pub/inc\n2\n",
       'client copies of the gate headers: removed, the gate\'s account kept at every level');
    like($ng->log_since($mark), qr/client sent gate header "X-JPKI-Account": removed/i,
         '... (their removal logged)');
    $r = $get->('/ssi/leaf.html', $c);
    is($r->{content}, "var=[]\naccount=[] spoof=[] other=[] user=[] uri=/pub/inc\n",
       'the ungated page requested directly: no account (no gate passed)');

    $ng->stop;
}

done_testing();
