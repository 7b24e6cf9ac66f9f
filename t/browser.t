#!/usr/bin/perl
# t/browser.t - the gate as a real browser (headless Chromium, driven by
# chromedriver) sees it,
# nginx and Apache alike:
#   - a gated page sends the browser to the login page (302, return_to); the
#     page signs the challenge and posts the form login; the 303 brings the
#     browser back to the page, which the upstream serves with the account;
#   - an app page logs in with fetch() (JSON), the session cookie is HttpOnly
#     (scripts cannot read it) yet sent with the page's requests; status,
#     logout, and the gate refusing the cookie after the logout;
#   - login CSRF: a page of another site (http://localhost:PORT, the gate
#     being http://127.0.0.1:PORT) auto-submits a signed form login: the
#     browser's Sec-Fetch-Site makes the gate refuse it (403 cross_origin);
#     the same page served by the gate's own origin signs in.
# The card is played by WebCrypto: the page holds the test user's key and
# signs RSASSA-PKCS1-v1_5 with SHA-256, what the card does.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKIBrowser;

JPKIBrowser::skip_unless();
skip_unless(qw(nginx module jpkictl pki openssl));
skip_unless_apache();

my $dir = tmpdir();
my $pki = $JPKITest::PKI;
my $secret = write_secret("$dir/site.secret");
my $map = "$dir/map.txt";
spew($map, cert_id('user1', $secret) . " alice\n", 0644);

sub b64_of_der {
    my (@cmd) = @_;
    my $der = `@cmd`;
    die "@cmd failed" if $? || !length $der;
    require MIME::Base64;
    return MIME::Base64::encode_base64($der, '');
}
my $KEY = b64_of_der("openssl pkcs8 -topk8 -nocrypt -in $pki/user1.key -outform DER");
my $CERT = b64_of_der("openssl x509 -in $pki/user1.pem -outform DER");

# The site's login page: signs with WebCrypto.  ?mode=api: a JSON login
# by fetch(), then status, a gated request, logout, a gated request again;
# otherwise a form login back to return_to.
my $LOGIN_PAGE = <<"EOF";
<!doctype html><html><head><meta charset="utf-8"><title>login</title></head>
<body><pre id="out">pending</pre><script>
const KEY = "$KEY", CERT = "$CERT";
const out = (t) => { document.getElementById('out').textContent = t; };
const bytes = (b64) => Uint8Array.from(atob(b64), c => c.charCodeAt(0));
async function sign(text) {
  const k = await crypto.subtle.importKey('pkcs8', bytes(KEY),
      {name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256'}, false, ['sign']);
  const s = await crypto.subtle.sign('RSASSA-PKCS1-v1_5', k, new TextEncoder().encode(text));
  return btoa(String.fromCharCode(...new Uint8Array(s)));
}
async function main() {
  const q = new URLSearchParams(location.search);
  const ch = (await (await fetch('/jpki/challenge')).json()).challenge;
  const signature = await sign(ch);
  if (q.get('mode') !== 'api') {
    const f = document.createElement('form');
    f.method = 'post'; f.action = '/jpki/login';
    const v = {challenge: ch, certificate: CERT, signature: signature,
               return_to: q.get('return_to') || '/'};
    for (const n in v) {
      const i = document.createElement('input');
      i.type = 'hidden'; i.name = n; i.value = v[n]; f.appendChild(i);
    }
    document.body.appendChild(f);
    f.submit();
    return;
  }
  const json = {'Accept': 'application/json'};
  const lines = [];
  let r = await fetch('/jpki/login', {method: 'POST',
      headers: {'Content-Type': 'application/json', 'Accept': 'application/json'},
      body: JSON.stringify({challenge: ch, certificate: CERT, signature: signature})});
  let j = await r.json();
  lines.push('login=' + r.status + ' ' + (j.account || j.error));
  lines.push('script_sees_cookie=' + (document.cookie.indexOf('jpki_session') >= 0));
  r = await fetch('/jpki/status', {headers: json}); j = await r.json();
  lines.push('status=' + r.status + ' ' + j.authenticated + ' ' + j.account);
  r = await fetch('/app/x', {headers: json});
  lines.push('app=' + r.status + ' ' + (await r.text()).trim());
  r = await fetch('/jpki/logout', {method: 'POST', headers: json});
  lines.push('logout=' + r.status);
  r = await fetch('/app/y', {headers: json}); j = await r.json();
  lines.push('after_logout=' + r.status + ' ' + j.error);
  out(lines.join('\\n'));
}
main().catch(e => out('error: ' + e));
</script></body></html>
EOF

# A page that posts a login signed beforehand (what a login-CSRF page does
# with the attacker's own card): the challenge and signature are put in by
# the test.
sub posted_page {
    my ($action, $ch) = @_;
    my $sig = sign_b64($ch, 'user1');
    return <<"EOF";
<!doctype html><html><body>
<form id="f" method="post" action="$action">
<input type="hidden" name="challenge" value="$ch">
<input type="hidden" name="certificate" value="$CERT">
<input type="hidden" name="signature" value="$sig">
<input type="hidden" name="return_to" value="/web/csrf">
</form><script>document.getElementById('f').submit();</script>
</body></html>
EOF
}

# A headless Chromium driven by chromedriver (t/lib/JPKIBrowser.pm): each
# browse() is a fresh browser profile.  The text of URL's final page (after
# its scripts, redirects and form posts), once it matches WANT (or after
# 15 s).
my $br = JPKIBrowser->start;

sub browse {
    my ($url, $want) = @_;
    my $s = $br->session;
    my $text = '';
    eval {
        $s->go($url) or die $@;
        my $end = time + 15;
        while (1) {
            $text = $s->text;
            last if $text =~ $want || time > $end;
            select undef, undef, undef, 0.1;
        }
        1;
    } or diag("browse $url: $@");
    $s->quit;
    return $text;
}

# The four flows against SRV (whose pages are in DOCS); EVIL_PORT serves
# EVIL_DOCS as another site (http://localhost:EVIL_PORT).
sub flows {
    my ($label, $srv, $docs, $evil_port, $evil_docs, $audits) = @_;
    my $gate = $srv->url('');
    (my $port) = $gate =~ /:(\d+)$/;

    # 1. a gated page: 302 to the login page, form login, 303 back
    my $dom = browse($srv->url('/web/page?x=1'), qr/account=/);
    like($dom, qr/account=\[alice\]/, "$label: form login: the upstream got the account");
    like($dom, qr/uri=\/web\/page\?x=1/, "$label: ... on the page asked for (return_to)");

    # 2. fetch() login, HttpOnly cookie sent but unreadable, logout
    $dom = browse($srv->url('/login.html?mode=api'), qr/after_logout=|error:/);
    like($dom, qr/login=200 alice/, "$label: JSON login from the page");
    like($dom, qr/script_sees_cookie=false/, "$label: the session cookie is HttpOnly");
    like($dom, qr/status=200 true alice/, "$label: status: signed in as alice");
    like($dom, qr/app=200 account=\[alice\]/, "$label: the page's requests carry the session");
    like($dom, qr/logout=200/, "$label: logout");
    like($dom, qr/after_logout=401 (unauthenticated|session_logged_out)/,
         "$label: after the logout the gate refuses");

    # 3. login CSRF: another site's page posts a signed login
    my $m = $srv->mark;
    spew("$evil_docs/evil.html",
         posted_page("http://127.0.0.1:$port/jpki/login", challenge($srv->url('/jpki'))), 0644);
    $dom = browse("http://localhost:$evil_port/evil.html", qr/"error"/);
    like($dom, qr/cross_origin/, "$label: a login posted by another site's page: cross_origin");
    unlike($dom, qr/account=\[/, "$label: ... the browser is not signed in");
    my @a = grep { ($_->{event} // '') eq 'login' } $audits->($m);
    is($a[-1] && $a[-1]{reason}, 'cross_origin', "$label: ... audited (cross_origin)");

    # 4. the very same page from the gate's own origin signs in
    spew("$docs/posted.html", posted_page('/jpki/login', challenge($srv->url('/jpki'))), 0644);
    $dom = browse($srv->url('/posted.html'), qr/account=/);
    like($dom, qr/account=\[alice\].*uri=\/web\/csrf/s, "$label: the same page of the site itself signs in");
}

# ---------------------------------------------------------------- nginx
{
    my $docs = "$dir/docs-nginx";
    mkdir $docs;
    chmod 0755, $docs;
    spew("$docs/login.html", $LOGIN_PAGE, 0644);
    my $evil = free_port();
    my $ng = JPKITest::Nginx->start(name => 'browser', workers => 1, http => <<"EOF");
    jpki_secret_file $secret;
    jpki_issuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=\@PKI\@/ca2.crl;
    jpki_store shm zone=jpki:1m;
    jpki_map_file $map;
    jpki_revocation crl;
    jpki_cookie_secure off;              # plain http on the loopback
    server {
        listen 127.0.0.1:\@PORT\@;
        root $docs;
        location /jpki/ { jpki_endpoints; }
        location /web/ { jpki on; jpki_login_page /login.html; jpki_recheck_interval 0;
                         proxy_pass http://127.0.0.1:\@UP\@; }
        location /app/ { jpki on; jpki_recheck_interval 0; proxy_pass http://127.0.0.1:\@UP\@; }
    }
    server {                             # another site, as http://localhost:$evil
        listen 127.0.0.1:$evil;
        root $docs;
    }
EOF
    flows('nginx', $ng, $docs, $evil, $docs, sub { $ng->audits($_[0]) });
    $ng->stop;
}

# ---------------------------------------------------------------- Apache
{
    my $site = <<"EOF";
JPKISecretFile $secret
JPKIIssuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem crl=\@PKI\@/ca2.crl
JPKIStore shm size=1M
JPKIMapFile $map
JPKIRevocation crl
JPKICookieSecure Off
DocumentRoot "\@DOCS\@"
<Location /jpki/>
    JPKIEndpoints On
</Location>
<Location /web/>
    AuthType JPKI
    Require valid-user
    JPKILoginPage /login.html
    JPKIRecheckInterval 0
    ProxyPass http://127.0.0.1:\@UP\@/web/
</Location>
<Location /app/>
    AuthType JPKI
    Require valid-user
    JPKIRecheckInterval 0
    ProxyPass http://127.0.0.1:\@UP\@/app/
</Location>
EOF
    my $ap = JPKIApache::Server->start(name => 'browser-ap', children => 1,
        docs => { '/login.html' => $LOGIN_PAGE },
        vhosts => [ main => $site, evil => qq{DocumentRoot "\@DOCS\@"\n} ]);
    flows('apache', $ap, "$ap->{dir}/docs-main", $ap->port('evil'),
          "$ap->{dir}/docs-evil", sub { $ap->audits(undef, $_[0]) });
    $ap->stop;
}

done_testing();
