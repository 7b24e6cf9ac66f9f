package JPKIScenarios;
# t/lib/JPKIScenarios.pm - the login-gate scenarios every server adapter must
# pass: one table, two servers.  t/scenarios.t runs it against nginx and
# Apache (t/lib/JPKIServer.pm), each with the embedded store and Redis.
#
# What a server harness provides
# ------------------------------
# 1. The sites of %SITES: one server configuration each (one issuer "card",
#    the site settings of %SITE_SETTINGS), with every area of @AREAS as a
#    location (path prefix) with the policy given there.  Secrets: sites
#    with secret => 'site' share one secret file, 'foreign' has another one
#    whose current ring key is key 9.  OCSP responders (`openssl ocsp`):
#      good  - index ca2-index.txt, CA ca2.pem, signer ocsp.pem
#      noeku - the same signed by ocsp-noeku.pem (not authorized)
#      down  - a closed port (connection refused)
#    Stores: every site has its own, except that with a shared store (Redis)
#    "peer" shares the store of "main" (two nodes of one site); "peer" only
#    exists with a shared store.
# 2. The accounts of %ACCOUNTS mapped on every site but "foreign" (mapping
#    file or store keys, as the server likes).
# 3. An upstream behind the "upstream" areas that answers 200 with the body
#        account=[<X-JPKI-Account>] spoof=[<X-JPKI-Cert-Id>] other=[<X-JPKI-Other>] user=[<X-Remote-User>] uri=<request uri>\n
#    (empty brackets when the header did not reach it).
# 4. An env hash for run():
#      label         name printed in front of every assertion
#      base(SITE)    "http://127.0.0.1:PORT" of a site (undef: site absent)
#      shared_store  true when "peer" shares "main"'s store
#      cert_id(CERT) cert_id of a PKI certificate under the site secret
#      mark(SITE)    a position in the site's logs (opaque, passed back)
#      audits(SITE, MARK)     audit records (decoded JSON) logged since MARK
#      upstream_hits(SITE, MARK, WANT)  requests the upstream received since
#                    MARK, waiting a little for WANT of them (every request
#                    to an upstream area is checked: reached once when
#                    answered 200, never otherwise)
#      log_since(SITE, MARK)  error log text since MARK
#      log_problems(SITE, MARK)  crash/alert lines since MARK (list)
#      unmap(CERT)   removes CERT's mapping on every site
#      store_keys(SITE, PATTERN)  optional: keys of the site's store
#
# A scenario
# ----------
#   name, site (default main), phase (early|main|late|slow: the early ones
#   of every env first, then the main ones, then the late ones, after
#   `after` seconds since the env's start; slow ones, which wait a minute,
#   only with JPKI_SLOW=1), needs => 'shared_store',
#   what to send, one of:
#     login   => { cert, key (default cert), area (default /jpki),
#                  challenge => fresh | tampered | malformed | saved:NAME |
#                               site:SITE, sig => ok | wrong | bad_base64,
#                  account, format => json | form, accept, return_to,
#                  algorithm, md, cert_form => pem | b64, certificate =>
#                  TEXT | KEY:NAME (replaces the field), drop => FIELD,
#                  content_type, chunked => 1 (no Content-Length),
#                  headers => { NAME => VALUE or sub (env) },
#                  raw => BODY (sent as is, application/json) }
#     request => { method, path, accept, cookie => NAME, cookie_raw,
#                  tamper => 1 (one character of the cookie changed),
#                  headers, body, content_type, chunked => BYTES }
#     replay  => NAME   (the saved login request, sent again to site/area)
#     smuggle => { path, cookie } a POST whose body is a whole second
#                request, on a keepalive connection: exactly one response
#                must come back and the upstream must not be reached
#     do      => 'unmap', cert => CERT  (then request, retried until the
#                                        expected status, up to `retry` s)
#   what to expect:
#     status, error (JSON "error" reason; a "message" must come with it),
#     json => { field => value }, headers => { name => value }, location,
#     body (exact), body_like, set_cookie => qr// (one Set-Cookie matches),
#     no_cookie => 1 (no Set-Cookie at all),
#     audit => { field => value } (the last audit record since the
#     request), log_like => qr//, robust => 1 (a 4xx, nothing in the error
#     log about crashes or alerts), soft_key => CERT (a soft-pass record
#     in the store, when the env has store_keys), no_store_key => KIND (no
#     jpki:v1:KIND:<cert_id> key of the login's certificate in the store,
#     when the env has store_keys).  A value is a string
#     (exact), a qr//, a sub (env) giving the string, or pred { (env, got) }.
#   and what to keep: save_cookie, save_login, save_challenge => NAME.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use JPKITest;

our %SITE_SETTINGS = (
    challenge_ttl => 10,        # seconds (the core's minimum)
    ocsp_timeout  => 2,         # seconds
);

our %SITES = (
    # crl: the CRL of each CA key (a certificate is checked against the
    # CRL of the key that issued it)
    main    => { secret => 'site', ca => [qw(ca1.pem ca2.pem)],
                 ocsp => 'good', crl => 'ca2.crl ca1.crl' },
    peer    => { secret => 'site', ca => [qw(ca1.pem ca2.pem)],
                 ocsp => 'good', crl => 'ca2.crl ca1.crl', shares => 'main' },
    link    => { secret => 'site', ca => [qw(ca2.pem link-old-with-new.pem)],
                 ocsp => 'noeku', crl => 'ca2.crl ca1.crl' },
    down    => { secret => 'site', ca => [qw(ca1.pem ca2.pem)],
                 ocsp => 'down', crl => 'ca2-stale.crl' },
    foreign => { secret => 'foreign', ca => [qw(ca2.pem)], ocsp => 'good' },
);

# Locations, the same on every site.  Unset: the defaults (revocation ocsp,
# failure closed, lifetime 8 h, idle 30 min, recheck 300 s, no login page).
our @AREAS = (
    { path => '/jpki/',         endpoints => 1 },
    { path => '/crl/jpki/',     endpoints => 1, revocation => 'crl' },
    { path => '/open/jpki/',    endpoints => 1, failure => 'open' },
    { path => '/crlopen/jpki/', endpoints => 1, revocation => 'crl',
      failure => 'open' },
    { path => '/idle/jpki/',    endpoints => 1, lifetime => 60, idle => 5 },
    { path => '/acct/jpki/',    endpoints => 1, require_account => 1 },
    { path => '/trusted/jpki/', endpoints => 1,
      trusted_origins => 'https://login.example https://other.example:8443' },
    { path => '/life/jpki/',    endpoints => 1, lifetime => 10, idle => 0 },
    { path => '/app/',          gate => 1, recheck => 0, upstream => 1 },
    { path => '/idle/app/',     gate => 1, lifetime => 60, idle => 5,
      upstream => 1 },
    { path => '/web/',          gate => 1, recheck => 0,
      login_page => '/login.html', upstream => 1 },
    { path => '/hdr/',          gate => 1, recheck => 0, header => 'X-Remote-User',
      upstream => 1 },
    { path => '/pub/',          upstream => 1 },
    { path => '/login.html',    exact => 1, text => "login page\n" },
);

# The failed-login throttle of an area: the table's areas turn it off (its
# scenarios fail many logins from one address and certificate on purpose;
# t/guard.t tests the throttle), unless an area sets its own.
sub area_throttle {
    my ($a) = @_;
    return $a->{throttle} // ($a->{endpoints} ? 'off' : undef);
}

our @REASONS = qw(unspecified keyCompromise cACompromise affiliationChanged
                  superseded cessationOfOperation certificateHold);

our %ACCOUNTS = (
    user1      => 'alice',
    'user-old' => 'olduser',
    'user-ec'  => 'ec-やまだ',      # UTF-8 accounts pass through
    map { ("rev-$_" => "rev-$_") } @REASONS,
);

# The fixture of %SITES in DIR: their secret files (name => path), the OCSP
# responders (good, noeku) and the URL of each `ocsp` value (down: a port
# nobody listens on).
sub fixture {
    my ($dir) = @_;
    my %secret = (site => write_secret("$dir/site.secret"),
                  foreign => write_secret("$dir/foreign.secret", key => [9, 1]));
    my %ocsp = (
        good  => JPKITest::Ocsp->start(name => 'ocsp-good', signer => 'ocsp'),
        noeku => JPKITest::Ocsp->start(name => 'ocsp-noeku', signer => 'ocsp-noeku'),
    );
    my %url = (good => $ocsp{good}->url, noeku => $ocsp{noeku}->url,
               down => 'http://127.0.0.1:' . JPKITest::free_port() . '/');
    return (\%secret, \%ocsp, \%url);
}

sub cid { my ($cert) = @_; return sub { $_[0]{cert_id}->($cert) } }
sub pred (&) { return bless $_[0], 'JPKIScenarios::Pred' }

my $ECHO = sub {
    my ($acct, $uri, $user) = @_;
    $user //= '';
    return "account=[$acct] spoof=[] other=[] user=[$user] uri=$uri\n";
};
my %SPOOF = ('X-JPKI-Account' => 'mallory', 'X-JPKI-Cert-Id' => 'forged',
             'x-jpki-other' => 'sneaky');

our @SCENARIOS = (
    # ---- early: things that need time to pass
    { name => 'challenge: 200 JSON, 100 base64url characters, not cached',
      phase => 'early', request => { path => '/jpki/challenge' },
      status => 200,
      json => { challenge => qr/^[A-Za-z0-9_-]{100}$/, expires => qr/^\d+$/,
                algorithms => pred { ref $_[1] eq 'ARRAY' && @{ $_[1] } >= 5 } },
      headers => { 'cache-control' => 'no-store' },
      save_challenge => 'early' },
    { name => 'first login of user1 (idle area, idle timeout 5 s; OCSP good)',
      phase => 'early', login => { cert => 'user1', area => '/idle/jpki' },
      status => 200,
      json => { status => 'ok', account => 'alice', expires => qr/^\d+$/ },
      audit => { event => 'login', result => 'ok', reason => 'ok',
                 account => 'alice', cert_id => cid('user1'), issuer => 'card',
                 revocation => 'ocsp', soft_pass => 'false',
                 peer => '127.0.0.1' },
      save_cookie => 'idle' },
    { name => 'idle area: gated request at once', phase => 'early',
      request => { path => '/idle/app/a', cookie => 'idle' },
      status => 200, body => $ECHO->('alice', '/idle/app/a') },
    { name => 'short-lived session (lifetime 10 s): login', phase => 'early',
      login => { cert => 'user1', area => '/life/jpki' }, status => 200,
      set_cookie => qr/^jpki_session=v1\.[^;]+; Path=\/; Max-Age=10;/,
      save_cookie => 'life' },

    # ---- login and the gate
    { name => 'login user1 (JSON, PEM certificate; status from the cache)',
      login => { cert => 'user1' }, status => 200,
      json => { status => 'ok', account => 'alice', expires => qr/^\d+$/ },
      set_cookie => qr/^jpki_session=v1\.[A-Za-z0-9_-]+; Path=\/; Max-Age=\d+; Secure; HttpOnly; SameSite=Lax$/,
      audit => { event => 'login', result => 'ok', revocation => 'cache' },
      save_cookie => 'alice', save_login => 'first' },
    { name => 'replayed challenge', replay => 'first',
      status => 401, error => 'challenge_replayed',
      audit => { event => 'login', result => 'denied',
                 reason => 'challenge_replayed' } },
    { name => 'gated request: account header reaches upstream, spoofed X-JPKI-* dropped',
      request => { path => '/app/page', cookie => 'alice', headers => {%SPOOF} },
      status => 200, body => $ECHO->('alice', '/app/page') },
    { name => 'gated request without a session',
      request => { path => '/app/page' }, status => 401, error => 'unauthenticated' },
    { name => 'ungated location: spoofed X-JPKI-* dropped',
      request => { path => '/pub/x', headers => {%SPOOF} },
      status => 200, body => $ECHO->('', '/pub/x') },
    { name => 'ungated location with a session: no account header',
      request => { path => '/pub/y', cookie => 'alice' },
      status => 200, body => $ECHO->('', '/pub/y') },
    { name => 'gate with its own header name (X-Remote-User): spoofs of both dropped',
      request => { path => '/hdr/h', cookie => 'alice',
                   headers => { %SPOOF, 'X-Remote-User' => 'mallory' } },
      status => 200, body => $ECHO->('', '/hdr/h', 'alice') },
    { name => 'ungated location: spoofed custom header name kept (not a gate header there)',
      request => { path => '/pub/h', headers => { 'X-Remote-User' => 'someone' } },
      status => 200, body => $ECHO->('', '/pub/h', 'someone') },
    { name => 'gated POST with a body',
      request => { method => 'POST', path => '/app/post', cookie => 'alice',
                   content_type => 'application/octet-stream', body => 'x' x 100_000 },
      status => 200, body => $ECHO->('alice', '/app/post') },
    { name => 'refused POST: its body is not read as a second request (keepalive)',
      smuggle => { path => '/app/smuggle' }, status => 401, error => 'unauthenticated' },
    { name => 'status with a session',
      request => { path => '/jpki/status', cookie => 'alice' }, status => 200,
      json => { authenticated => 'true', account => 'alice',
                cert_id => cid('user1'), auth_time => qr/^\d+$/,
                expires => qr/^\d+$/, idle_deadline => qr/^\d+$/ } },
    { name => 'status without a session',
      request => { path => '/jpki/status' }, status => 401, error => 'unauthenticated' },
    { name => 'login: base64 DER certificate, rsa-pkcs1-sha384 (status cached)',
      login => { cert => 'user1', cert_form => 'b64', md => 'sha384',
                 algorithm => 'rsa-pkcs1-sha384' },
      status => 200, json => { account => 'alice' },
      audit => { result => 'ok', revocation => 'cache' } },
    { name => 'login: the mapped account claimed',
      login => { cert => 'user1', account => 'alice' }, status => 200 },
    { name => 'login: an account that does not match the mapping',
      login => { cert => 'user1', account => 'bob' },
      status => 403, error => 'account_mismatch' },
    { name => 'login: certificate not mapped (user2)',
      login => { cert => 'user2' }, status => 403, error => 'account_not_mapped',
      audit => { reason => 'account_not_mapped', cert_id => cid('user2') } },
    { name => 'login: account required by the area but not sent',
      login => { cert => 'user1', area => '/acct/jpki' },
      status => 400, error => 'bad_request' },
    { name => 'login: account required by the area and sent',
      login => { cert => 'user1', area => '/acct/jpki', account => 'alice' },
      status => 200 },
    { name => 'wrong signature (over another text)',
      login => { cert => 'user1', sig => 'wrong' },
      status => 401, error => 'signature_invalid' },
    { name => 'signature by another key (user2 key, user1 certificate)',
      login => { cert => 'user1', key => 'user2' },
      status => 401, error => 'signature_invalid' },
    { name => 'signature algorithm that does not fit the key',
      login => { cert => 'user1', algorithm => 'ecdsa-sha256' },
      status => 400, error => 'signature_algorithm' },
    { name => 'tampered challenge',
      login => { cert => 'user1', challenge => 'tampered' },
      status => 401, error => 'challenge_tampered' },
    { name => 'challenge from a server with another secret',
      login => { cert => 'user1', challenge => 'site:foreign' },
      status => 401, error => 'challenge_unknown_key' },
    { name => 'malformed challenge',
      login => { cert => 'user1', challenge => 'malformed' },
      status => 400, error => 'challenge_malformed' },
    { name => 'expired certificate',
      login => { cert => 'user-expired' }, status => 401, error => 'cert_expired' },
    { name => 'certificate not yet valid',
      login => { cert => 'user-notyet' }, status => 401, error => 'cert_not_yet_valid' },
    { name => 'certificate signed with SHA-1 by the CA (user-sha1)',
      login => { cert => 'user-sha1' }, status => 401,
      error => 'cert_signature_algorithm' },
    { name => 'unknown CA (other key, same DN)',
      login => { cert => 'user-foreign' }, status => 401,
      error => 'cert_unknown_issuer' },
    { name => 'old CA generation (user-old, ca1) accepted, CRL',
      login => { cert => 'user-old', area => '/crl/jpki' }, status => 200,
      json => { account => 'olduser' },
      audit => { result => 'ok', revocation => 'crl' } },
    # CRL first: OCSP answers are cached in the store, CRL answers are not
    (map {
        my $r = $_;
        +{ name => "revoked ($r) via CRL",
           login => { cert => "rev-$r", area => '/crl/jpki' }, status => 403,
           error => $r eq 'certificateHold' ? 'cert_on_hold' : 'cert_revoked',
           audit => { result => 'denied', revocation => 'crl' } }
    } @REASONS),
    (map {
        my $r = $_;
        +{ name => "revoked ($r) via OCSP",
           login => { cert => "rev-$r" }, status => 403,
           error => $r eq 'certificateHold' ? 'cert_on_hold' : 'cert_revoked',
           audit => { result => 'denied', revocation => 'ocsp',
                      cert_id => cid("rev-$r") } }
    } @REASONS),
    { name => 'revoked (keyCompromise) again: asked again (a refused login '
              . 'writes nothing to the store but its throttle counters)',
      login => { cert => 'rev-keyCompromise' }, status => 403, error => 'cert_revoked',
      audit => { revocation => 'ocsp' },
      no_store_key => 'rev' },
    { name => 'EC P-256 certificate (user-ec), ecdsa-sha256',
      login => { cert => 'user-ec' }, status => 200, json => { account => 'ec-やまだ' },
      save_cookie => 'ec' },
    { name => 'EC session on the gate',
      request => { path => '/app/ec', cookie => 'ec' },
      status => 200, body => $ECHO->('ec-やまだ', '/app/ec') },

    # ---- malformed input: 4xx with a reason, never a 5xx or a crash
    { name => 'malformed JSON', robust => 1,
      login => { raw => '{"challenge": "abc", "certificate": ' },
      status => 400, error => 'bad_request' },
    { name => 'JSON that is not an object', robust => 1,
      login => { raw => '["challenge","certificate","signature"]' },
      status => 400, error => 'bad_request' },
    { name => 'JSON with a NUL byte and deep nesting', robust => 1,
      login => { raw => '{"challenge":"a\u0000b","x":' . ('[' x 5000) . '}' },
      status => 400, error => 'bad_request' },
    { name => 'login without a signature field', robust => 1,
      login => { cert => 'user1', drop => 'signature' },
      status => 400, error => 'bad_request' },
    { name => 'signature that is not base64', robust => 1,
      login => { cert => 'user1', sig => 'bad_base64' },
      status => 400, error => 'bad_request' },
    { name => 'garbage DER certificate', robust => 1,
      login => { cert => 'user1', certificate => 'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A' . ('QUJD' x 60) },
      status => 400, error => 'cert_malformed' },
    { name => 'certificate field holding a private key', robust => 1,
      login => { cert => 'user1', certificate => 'KEY:user1' },
      status => 400, error => 'cert_malformed' },
    { name => 'unsupported content type', robust => 1,
      login => { cert => 'user1', content_type => 'text/plain' },
      status => 400, error => 'bad_request' },
    { name => 'empty login body', robust => 1,
      login => { raw => '' }, status => 400, error => 'bad_request' },
    { name => '1 MiB body (Content-Length)', robust => 1,
      login => { raw => '{"challenge":"' . ('A' x (1024 * 1024 - 16)) . '"}' },
      status => 413, error => 'too_large' },
    { name => 'valid login sent chunked (no Content-Length)',
      login => { cert => 'user1', chunked => 1 }, status => 200,
      json => { account => 'alice' } },
    { name => '70 KiB body (over the 64 KiB limit)', robust => 1,
      login => { raw => '{"challenge":"' . ('A' x (70 * 1024)) . '"}' },
      status => 413, error => 'too_large' },
    { name => '200 KiB chunked body (no Content-Length)', robust => 1,
      request => { method => 'POST', path => '/jpki/login',
                   content_type => 'application/json', chunked => 200 * 1024 },
      status => 413, error => 'too_large' },
    { name => 'login with GET: the login page',
      request => { path => '/jpki/login' }, status => 200,
      headers => { 'content-type' => 'text/html; charset=utf-8',
                   'x-frame-options' => 'DENY', 'cache-control' => 'no-store' } },
    { name => 'logout with GET', robust => 1,
      request => { path => '/jpki/logout' }, status => 405,
      error => 'method_not_allowed', headers => { allow => 'POST' } },
    { name => 'device flow start with GET', robust => 1,
      request => { path => '/jpki/device' }, status => 405,
      error => 'method_not_allowed', headers => { allow => 'POST' } },
    { name => 'challenge with POST', robust => 1,
      request => { method => 'POST', path => '/jpki/challenge', body => 'x',
                   content_type => 'text/plain' },
      status => 405, error => 'method_not_allowed', headers => { allow => 'GET, HEAD' } },
    { name => 'unknown endpoint', robust => 1,
      request => { path => '/jpki/frobnicate' }, status => 404, error => 'not_found' },

    # ---- the gate's own answers are never sniffed as anything but what
    # they say they are (X-Content-Type-Options), nor cached
    { name => 'challenge: X-Content-Type-Options nosniff',
      request => { path => '/jpki/challenge' }, status => 200,
      headers => { 'x-content-type-options' => 'nosniff',
                   'cache-control' => 'no-store' } },
    { name => 'a refusal of the gate (401): nosniff',
      request => { path => '/app/page' }, status => 401, error => 'unauthenticated',
      headers => { 'x-content-type-options' => 'nosniff',
                   'cache-control' => 'no-store' } },
    { name => 'a refused login: nosniff',
      login => { cert => 'user1', sig => 'wrong' }, status => 401,
      error => 'signature_invalid',
      headers => { 'x-content-type-options' => 'nosniff' } },
    { name => 'unknown endpoint: nosniff',
      request => { path => '/jpki/frobnicate' }, status => 404, error => 'not_found',
      headers => { 'x-content-type-options' => 'nosniff' } },
    { name => 'a body over the limit, refused by the server (413): nosniff',
      request => { method => 'POST', path => '/jpki/login',
                   content_type => 'application/json', chunked => 200 * 1024 },
      status => 413, error => 'too_large',
      headers => { 'x-content-type-options' => 'nosniff' } },
    { name => 'browser without a session, sent to the login page: nosniff',
      request => { path => '/web/page', accept => 'text/html' }, status => 302,
      headers => { 'x-content-type-options' => 'nosniff' } },

    # ---- browsers
    { name => 'browser without a session: 302 to the login page with return_to',
      request => { path => '/web/page?x=1&y=%2F', accept => 'text/html' },
      status => 302,
      location => '/login.html?return_to=/web/page%3Fx%3D1%26y%3D%252F' },
    { name => 'API client on the browser gate: 401 JSON',
      request => { path => '/web/page' }, status => 401, error => 'unauthenticated' },
    { name => 'browser with a session',
      request => { path => '/web/page', cookie => 'alice', accept => 'text/html' },
      status => 200, body => $ECHO->('alice', '/web/page') },
    { name => 'form login from a browser: 303 to return_to',
      login => { cert => 'user1', format => 'form', accept => 'text/html',
                 return_to => '/web/after?a=1' },
      status => 303, location => '/web/after?a=1',
      set_cookie => qr/^jpki_session=v1\./, save_cookie => 'form' },
    { name => 'form login with return_to on another host: 303 to /',
      login => { cert => 'user1', format => 'form', accept => 'text/html',
                 return_to => '//evil.example/x' },
      status => 303, location => '/' },
    { name => 'form login from an API client: 200 JSON',
      login => { cert => 'user1', format => 'form', cert_form => 'b64' },
      status => 200, json => { status => 'ok', account => 'alice' } },
    { name => 'form session on the gate',
      request => { path => '/app/f', cookie => 'form' },
      status => 200, body => $ECHO->('alice', '/app/f') },

    # ---- cookies
    { name => 'tampered session cookie',
      request => { path => '/app/t', cookie => 'alice', tamper => 1 },
      status => 401, error => 'session_tampered' },
    { name => 'garbage session cookie', robust => 1,
      request => { path => '/app/t', cookie_raw => 'garbage' },
      status => 401, error => 'session_malformed' },

    # ---- where logins and logouts come from: a page of another site must
    # not sign its visitor in (login CSRF) or out
    { name => 'form login posted by a page of another site: 403 cross_origin',
      login => { cert => 'user1', format => 'form', accept => 'text/html',
                 return_to => '/web/x', headers => { 'Sec-Fetch-Site' => 'cross-site',
                                                     Origin => 'https://evil.example' } },
      status => 403, error => 'cross_origin', no_cookie => 1,
      audit => { event => 'login', reason => 'cross_origin' } },
    { name => 'login from a sibling site (Sec-Fetch-Site same-site): 403',
      login => { cert => 'user1', headers => { 'Sec-Fetch-Site' => 'same-site' } },
      status => 403, error => 'cross_origin', no_cookie => 1 },
    { name => 'login from the site\'s own page (Sec-Fetch-Site same-origin)',
      login => { cert => 'user1', headers => { 'Sec-Fetch-Site' => 'same-origin',
                                               Origin => sub { $_[0]{base}->('main') } } },
      status => 200, json => { account => 'alice' } },
    { name => 'login typed or bookmarked (Sec-Fetch-Site none)',
      login => { cert => 'user1', headers => { 'Sec-Fetch-Site' => 'none' } },
      status => 200 },
    { name => 'older browser: Origin of another site: 403',
      login => { cert => 'user1', headers => { Origin => 'http://evil.example' } },
      status => 403, error => 'cross_origin' },
    { name => 'older browser: Origin of the gate itself',
      login => { cert => 'user1', headers => { Origin => sub { $_[0]{base}->('main') } } },
      status => 200 },
    { name => 'Origin null (sandboxed page): 403',
      login => { cert => 'user1', headers => { Origin => 'null' } },
      status => 403, error => 'cross_origin' },
    { name => 'a trusted origin may post logins',
      login => { cert => 'user1', area => '/trusted/jpki',
                 headers => { 'Sec-Fetch-Site' => 'cross-site',
                              Origin => 'https://other.example:8443' } },
      status => 200 },
    { name => '... another origin may not, there either',
      login => { cert => 'user1', area => '/trusted/jpki',
                 headers => { 'Sec-Fetch-Site' => 'cross-site',
                              Origin => 'https://other.example' } },
      status => 403, error => 'cross_origin' },
    { name => 'login (for a logout another site tries)', login => { cert => 'user1' },
      status => 200, save_cookie => 'csrf' },
    { name => 'logout posted by a page of another site: 403, cookie kept',
      request => { method => 'POST', path => '/jpki/logout', cookie => 'csrf',
                   headers => { 'Sec-Fetch-Site' => 'cross-site' } },
      status => 403, error => 'cross_origin', no_cookie => 1 },
    { name => '... the session lives on',
      request => { path => '/app/csrf', cookie => 'csrf' },
      status => 200, body => $ECHO->('alice', '/app/csrf') },

    # ---- logout
    { name => 'login (to log out)', login => { cert => 'user1' }, status => 200,
      save_cookie => 'bye' },
    { name => 'logout', request => { method => 'POST', path => '/jpki/logout',
                                     cookie => 'bye' },
      status => 200, json => { status => 'logged_out' },
      set_cookie => qr/^jpki_session=; Path=\/; Max-Age=0/,
      audit => { event => 'logout', result => 'ok', account => 'alice' } },
    { name => 'logged-out cookie refused at once (recheck interval 0)',
      request => { path => '/app/p', cookie => 'bye' },
      status => 401, error => 'session_logged_out',
      set_cookie => qr/^jpki_session=; .*Max-Age=0/ },
    { name => 'refused POST after a store read: body not read as a second request',
      smuggle => { path => '/app/smuggle', cookie => 'bye' },
      status => 401, error => 'session_logged_out' },
    { name => 'logout with GET', request => { path => '/jpki/logout', cookie => 'alice' },
      status => 405, error => 'method_not_allowed', headers => { allow => 'POST' } },
    { name => 'logout without a session',
      request => { method => 'POST', path => '/jpki/logout' },
      status => 200, json => { status => 'logged_out' } },
    { name => 'browser logout: 303',
      request => { method => 'POST', path => '/jpki/logout', cookie => 'form',
                   accept => 'text/html' },
      status => 303, location => '/' },

    # ---- revocation data unavailable
    { name => 'OCSP responder down, failure closed', site => 'down',
      login => { cert => 'user1' }, status => 503, error => 'revocation_unavailable',
      audit => { result => 'error', reason => 'revocation_unavailable' } },
    { name => 'OCSP responder down, failure open: soft pass', site => 'down',
      login => { cert => 'user1', area => '/open/jpki' }, status => 200,
      json => { account => 'alice' },
      audit => { result => 'ok', soft_pass => 'true', revocation => 'soft' },
      soft_key => 'user1', save_cookie => 'soft' },
    { name => 'soft-pass session on a fail-closed gate: re-checked, 503',
      site => 'down', request => { path => '/app/s', cookie => 'soft' },
      status => 503, error => 'revocation_unavailable' },
    { name => 'stale CRL, failure closed', site => 'down',
      login => { cert => 'user1', area => '/crl/jpki' }, status => 503,
      error => 'revocation_unavailable' },
    { name => 'stale CRL, failure open: soft pass', site => 'down',
      login => { cert => 'user1', area => '/crlopen/jpki' }, status => 200,
      audit => { soft_pass => 'true' } },
    { name => 'OCSP response from an unauthorized signer', site => 'link',
      login => { cert => 'user1' }, status => 503, error => 'revocation_unavailable',
      log_like => qr/ocsp_unauthorized_signer/ },
    { name => 'CAs configured as ca2 + link certificate: user-old accepted',
      site => 'link', login => { cert => 'user-old', area => '/crl/jpki' },
      status => 200, json => { account => 'olduser' } },
    { name => 'CAs configured as ca2 + link certificate: user1 accepted',
      site => 'link', login => { cert => 'user1', area => '/crl/jpki' },
      status => 200, json => { account => 'alice' } },

    # ---- two nodes, one store
    { name => 'challenge of one node accepted by the other', needs => 'shared_store',
      login => { cert => 'user1', challenge => 'site:peer' }, status => 200,
      save_login => 'cross', save_cookie => 'cross' },
    { name => '... once', needs => 'shared_store', site => 'peer', replay => 'cross',
      status => 401, error => 'challenge_replayed' },
    { name => 'session made on one node valid on the other', needs => 'shared_store',
      site => 'peer', request => { path => '/app/n', cookie => 'cross' },
      status => 200, body => $ECHO->('alice', '/app/n') },
    { name => 'session logged out on one node refused by the other',
      needs => 'shared_store', site => 'peer',
      request => { path => '/app/n', cookie => 'bye' },
      status => 401, error => 'session_logged_out' },

    # ---- late: after time has passed
    { name => 'expired challenge', phase => 'late', after => 11.5,
      login => { cert => 'user1', challenge => 'saved:early' },
      status => 401, error => 'challenge_expired' },
    { name => 'idle timeout', phase => 'late', after => 7,
      request => { path => '/idle/app/a', cookie => 'idle' },
      status => 401, error => 'session_idle_timeout',
      set_cookie => qr/^jpki_session=; .*Max-Age=0/ },
    { name => 'session lifetime over (10 s)', phase => 'late',
      after => 12.5,
      request => { path => '/app/life', cookie => 'life' },
      status => 401, error => 'session_expired',
      set_cookie => qr/^jpki_session=; .*Max-Age=0/ },
    { name => 'mapping removed after login: refused at the re-check', phase => 'late',
      do => 'unmap', cert => 'user-ec', retry => 4,
      request => { path => '/app/ec', cookie => 'ec' },
      status => 403, error => 'account_not_mapped' },
);

# ---------------------------------------------------------------- runner

sub flip_char {
    my ($s, $pos) = @_;
    my $c = substr($s, $pos, 1);
    substr($s, $pos, 1) = $c eq 'A' ? 'B' : 'A';
    return $s;
}

sub area_base {
    my ($env, $site, $area) = @_;
    return $env->{base}->($site) . ($area // '/jpki');
}

# Builds and sends a login; returns (response, saved request).
sub do_login {
    my ($env, $sc, $st) = @_;
    my $l = $sc->{login};
    my $site = $sc->{site} // 'main';
    my $base = area_base($env, $site, $l->{area});
    my %hdr = map { my $v = $l->{headers}{$_}; ($_ => ref $v eq 'CODE' ? $v->($env) : $v) }
              keys %{ $l->{headers} // {} };
    $hdr{Accept} = $l->{accept} if $l->{accept};
    my ($body, $ct);
    if (exists $l->{raw}) {
        ($body, $ct) = ($l->{raw}, 'application/json');
    } else {
        my $chs = $l->{challenge} // 'fresh';
        my $ch;
        if ($chs =~ /^saved:(.+)/) { $ch = $st->{challenges}{$1} }
        elsif ($chs =~ /^site:(.+)/) { $ch = challenge(area_base($env, $1)) }
        elsif ($chs eq 'malformed') { $ch = 'not-a-challenge' }
        else { $ch = challenge($base) }
        return ({ status => 0, content => "no challenge ($chs)" }) unless defined $ch;
        my $signed = $l->{sig} && $l->{sig} eq 'wrong' ? "$ch." : $ch;
        $ch = flip_char($ch, 30) if $chs eq 'tampered';
        my $b = login_body($ch, $l->{cert}, $l->{key}, md => $l->{md},
                           cert_form => $l->{cert_form}, account => $l->{account},
                           algorithm => $l->{algorithm}, return_to => $l->{return_to});
        $b->{signature} = sign_b64($signed, $l->{key} // $l->{cert}, $l->{md})
            if $signed ne $ch;
        $b->{signature} = '!!not*base64!!' if ($l->{sig} // '') eq 'bad_base64';
        if (my $c = $l->{certificate}) {
            $b->{certificate} = $c =~ /^KEY:(.+)/ ? slurp("$PKI/$1.key") : $c;
        }
        delete $b->{$l->{drop}} if $l->{drop};
        if (($l->{format} // 'json') eq 'form') {
            $ct = 'application/x-www-form-urlencoded';
            $body = join '&', map { JPKITest::form_enc($_) . '=' . JPKITest::form_enc($b->{$_}) }
                              sort keys %$b;
        } else {
            ($body, $ct) = (json_encode($b), 'application/json');
        }
    }
    $ct = $l->{content_type} if $l->{content_type};
    $hdr{'Content-Type'} = $ct;
    my $req = { path => ($l->{area} // '/jpki') . '/login', headers => \%hdr,
                body => $body };
    my $content = $body;
    if ($l->{chunked}) {
        my @parts = unpack '(a1000)*', $body;
        $content = sub { return shift @parts };
    }
    my $r = http('POST', "$base/login", headers => \%hdr, content => $content);
    return ($r, $req);
}

sub do_request {
    my ($env, $sc, $st) = @_;
    my $q = $sc->{request};
    my $site = $sc->{site} // 'main';
    my %hdr = map { my $v = $q->{headers}{$_}; ($_ => ref $v eq 'CODE' ? $v->($env) : $v) }
              keys %{ $q->{headers} // {} };
    $hdr{Accept} = $q->{accept} if $q->{accept};
    my $cookie = $q->{cookie_raw};
    if ($q->{cookie}) {
        $cookie = $st->{cookies}{ $q->{cookie} };
        return { status => 0, content => "no saved cookie $q->{cookie}" }
            unless defined $cookie;
        $cookie = flip_char($cookie, int(length($cookie) / 2)) if $q->{tamper};
    }
    $hdr{Cookie} = "jpki_session=$cookie" if defined $cookie;
    $hdr{'Content-Type'} = $q->{content_type} if $q->{content_type};
    my %o = (headers => \%hdr);
    $o{content} = $q->{body} if defined $q->{body};
    if (my $left = $q->{chunked}) {
        $o{content} = sub {
            return undef if $left <= 0;
            my $n = $left > 8192 ? 8192 : $left;
            $left -= $n;
            return 'A' x $n;
        };
    }
    return http($q->{method} // 'GET', $env->{base}->($site) . $q->{path}, %o);
}

# Expected values: a string (exact), a qr// (match), a sub (env) giving
# the expected string, or a pred { (env, got) } predicate.  JSON booleans
# compare as 'true' / 'false'.
# A POST whose body is a complete request, on a keepalive connection: the
# answer must be one response, the body must not be run as a request.
sub do_smuggle {
    my ($env, $sc, $st) = @_;
    my $q = $sc->{smuggle};
    my $site = $sc->{site} // 'main';
    my ($host, $port) = $env->{base}->($site) =~ m{^http://([^:/]+):(\d+)};
    my $inner = "GET /pub/smuggled HTTP/1.1\r\nHost: $host\r\n\r\n";
    my $cookie = '';
    if ($q->{cookie}) {
        my $v = $st->{cookies}{ $q->{cookie} };
        $cookie = "Cookie: jpki_session=$v\r\n" if defined $v;
    }
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or return { status => 0, content => "connect: $!" };
    print $s "POST $q->{path} HTTP/1.1\r\nHost: $host\r\n$cookie"
           . "Content-Type: text/plain\r\nContent-Length: " . length($inner)
           . "\r\n\r\n$inner";
    my ($all, $end) = ('', time + 8);
    my $quiet;
    while (time < $end) {
        my $rin = '';
        vec($rin, fileno($s), 1) = 1;
        my $n = select(my $rout = $rin, undef, undef, 0.1);
        if ($n > 0) {
            my $got = sysread($s, my $buf, 65536);
            last unless $got;
            $all .= $buf;
            $quiet = undef;
        } elsif ($all =~ /\r\n\r\n/) {
            # the first answer is in: wait a little for a second one
            $quiet //= time;
            last if time - $quiet > 0.5;
        }
    }
    close $s;
    my @status = $all =~ m{HTTP/1\.[01] (\d{3}) }g;
    my ($head, $body) = split /\r\n\r\n/, $all, 2;
    my ($len) = ($head // '') =~ /^Content-Length: (\d+)/mi;
    $body = substr($body // '', 0, $len // 0);
    return { status => $status[0] // 0, responses => scalar @status,
             content => $body, json => json_decode($body), headers => {},
             raw => $all };
}

sub match_value {
    my ($env, $got, $want) = @_;
    $got = $got ? 'true' : 'false' if JSON::PP::is_bool($got);
    return $want->($env, $got) if ref $want eq 'JPKIScenarios::Pred';
    $want = $want->($env) if ref $want eq 'CODE';
    return 0 unless defined $got && !ref $got;
    return ref $want eq 'Regexp' ? scalar($got =~ $want) : $got eq $want;
}

sub show {
    my ($v) = @_;
    return 'undef' unless defined $v;
    return ref $v ? json_encode($v) : $v;
}

sub check {
    my ($env, $sc, $r, $mark, $st) = @_;
    my $site = $sc->{site} // 'main';
    my $n = "[$env->{label}] $sc->{name}";
    my $c = $r->{content} // '';
    my $ok = is($r->{status}, $sc->{status}, "$n: status $sc->{status}");
    diag(substr("got: $r->{status} $c", 0, 600)) unless $ok;
    if (exists $sc->{error}) {
        is($r->{json} ? $r->{json}{error} : "(not JSON: " . substr($c, 0, 80) . ")",
           $sc->{error}, "$n: error $sc->{error}");
        like($r->{json}{message} // '', qr/\S/, "$n: message") if $r->{json};
    }
    if (my $j = $sc->{json}) {
        for my $k (sort keys %$j) {
            ok(match_value($env, $r->{json} ? $r->{json}{$k} : undef, $j->{$k}),
               "$n: JSON $k") or diag("got $k=" . show($r->{json} && $r->{json}{$k})
                                      . " in " . substr($c, 0, 300));
        }
    }
    if (my $h = $sc->{headers}) {
        for my $k (sort keys %$h) {
            ok(match_value($env, $r->{headers}{$k}, $h->{$k}), "$n: header $k")
                or diag("got $k: " . show($r->{headers}{$k}));
        }
    }
    is($r->{headers}{location}, $sc->{location}, "$n: Location")
        if exists $sc->{location};
    is($c, $sc->{body}, "$n: upstream saw the right headers") if exists $sc->{body};
    like($c, $sc->{body_like}, "$n: body") if $sc->{body_like};
    if (my $re = $sc->{set_cookie}) {
        my @sc = set_cookies($r);
        ok(scalar(grep { $_ =~ $re } @sc), "$n: Set-Cookie")
            or diag('got Set-Cookie: ' . join(' | ', @sc));
    }
    if ($sc->{no_cookie}) {
        my @sc = set_cookies($r);
        ok(!@sc, "$n: no Set-Cookie") or diag('got Set-Cookie: ' . join(' | ', @sc));
    }
    if ($sc->{robust}) {
        ok($r->{status} >= 400 && $r->{status} < 500, "$n: a 4xx, not a 5xx");
        my @bad = $env->{log_problems}->($site, $mark);
        ok(!@bad, "$n: no crash or alert in the error log") or diag(join "\n", @bad);
    }
    if (my $a = $sc->{audit}) {
        my @recs = $env->{audits}->($site, $mark);
        my $rec = $recs[-1];
        ok($rec, "$n: audit record logged");
        for my $k (sort keys %$a) {
            ok(match_value($env, $rec ? $rec->{$k} : undef, $a->{$k}), "$n: audit $k")
                or diag("audit: " . show($rec));
        }
    }
    if (my $re = $sc->{log_like}) {
        like($env->{log_since}->($site, $mark), $re, "$n: error log mentions $re");
    }
    if ((my $cert = $sc->{soft_key}) && $env->{store_keys}) {
        my $id = $env->{cert_id}->($cert);
        my @k = $env->{store_keys}->($site, "jpki:v1:soft:$id:*");
        is(scalar @k, 1, "$n: soft-pass record in the store");
    }
    if ((my $kind = $sc->{no_store_key}) && $env->{store_keys}) {
        my $id = $env->{cert_id}->($sc->{login}{cert});
        my @k = $env->{store_keys}->($site, "jpki:v1:$kind:$id");
        is(scalar @k, 0, "$n: no $kind key of the certificate in the store");
    }
    if ($sc->{smuggle}) {
        is($r->{responses}, 1, "$n: one response on the connection")
            or diag($r->{raw});
        is($env->{upstream_hits}->($site, $mark, 0), 0, "$n: upstream not reached")
            if $env->{upstream_hits};
    }
    if ($sc->{request} && $env->{upstream_hits}) {
        my ($area) = grep { $_->{upstream} && index($sc->{request}{path}, $_->{path}) == 0 }
                     @AREAS;
        if ($area) {
            my $want = $r->{status} == 200 ? 1 : 0;
            is($env->{upstream_hits}->($site, $mark, $want), $want,
               "$n: upstream " . ($want ? 'reached once' : 'not reached'));
        }
    }
    if (my $nm = $sc->{save_cookie}) {
        my $v = cookie_of($r);
        ok(defined $v && length $v, "$n: session cookie set") or return;
        $st->{cookies}{$nm} = $v;
    }
    if (my $nm = $sc->{save_challenge}) {
        $st->{challenges}{$nm} = $r->{json} ? $r->{json}{challenge} : undef;
    }
}

sub run_one {
    my ($env, $sc) = @_;
    my $st = $env->{state} //= {};
    my $site = $sc->{site} // 'main';
    my $n = "[$env->{label}] $sc->{name}";
    unless ($env->{base}->($site)) {
        diag("$n: site $site not set up here");
        return;
    }
    if ($sc->{after}) {
        my $wait = $env->{t0} + $sc->{after} - time;
        sleep $wait if $wait > 0;
    }
    if (($sc->{do} // '') eq 'unmap') {
        $env->{unmap}->($sc->{cert});
    }
    my ($r, $req, $mark);
    my $end = time + ($sc->{retry} // 0);
    for (;;) {
        $mark = $env->{mark}->($site);
        if ($sc->{login}) { ($r, $req) = do_login($env, $sc, $st) }
        elsif ($sc->{replay}) {
            my $q = $st->{logins}{ $sc->{replay} };
            $r = $q ? http('POST', $env->{base}->($site) . $q->{path},
                           headers => $q->{headers}, content => $q->{body})
                    : { status => 0, content => "nothing saved as $sc->{replay}" };
        }
        elsif ($sc->{smuggle}) { $r = do_smuggle($env, $sc, $st) }
        else { $r = do_request($env, $sc, $st) }
        last if $r->{status} == $sc->{status} || time >= $end;
        sleep 0.2;
    }
    $st->{logins}{ $sc->{save_login} } = $req if $sc->{save_login} && $req;
    check($env, $sc, $r, $mark, $st);
}

# run(ENV, ...): the whole table against each env, phase by phase (the
# early scenarios of every env first, the late ones last, so that waiting
# for time to pass happens once for all envs).
sub run {
    my (@envs) = @_;
    for my $phase (qw(early main late slow)) {
        for my $env (@envs) {
            $env->{t0} //= time;
            for my $sc (@SCENARIOS) {
                next unless ($sc->{phase} // 'main') eq $phase;
                next if ($sc->{needs} // '') eq 'shared_store' && !$env->{shared_store};
                if ($phase eq 'slow' && !$ENV{JPKI_SLOW}) {
                    note("[$env->{label}] $sc->{name}: skipped (set JPKI_SLOW=1)");
                    next;
                }
                run_one($env, $sc);
            }
        }
    }
}

1;
