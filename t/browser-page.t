#!/usr/bin/perl
# t/browser-page.t - the login page (common/page.c's template with
# common/assets/page.css and page.js) as headless Chromium shows it:
#
# Against the gate itself (nginx and Apache, started as the other server
# tests start them), when it serves GET P/login (skipped when it does not):
#    1. the page in Japanese and English, styled under its CSP (44-pixel
#       button; the dark palette and no transition when the browser asks),
#       the Japanese title read back by OCR from a screenshot
#       (tesseract-ocr-jpn, with a Japanese font installed), light and
#       dark; its QR code read from a screenshot by zbarimg: the URL of
#       the flow (P/sign?challenge=C&code=XXXX-XXXX), the code and the link;
#    2. TLS client certificates: the test users' certificates in the
#       browser's NSS database ($HOME/.pki/nssdb), picked without a prompt
#       by the profile's auto-select setting (what the policy
#       AutoSelectCertificateForUrls writes), by subject: a gated page,
#       the login page, its TLS button (POST P/tls), the gated page with
#       the account; an unmapped card comes back to the login page with
#       the reason (while the gate has no page: the same from a form page
#       of the test's);
#    3. the device flow with jpki-login --device as the phone (SoftHSM as
#       the card): the page ends on the gated page asked for (a return_to
#       of another site, "//evil.example/x", never followed); an unmapped
#       card's signature ends on P/login?error=R&return_to=..., which says
#       why; without JavaScript, the form's page refreshes to the end;
#    4. page.js as the browser's network log sees it (a gate whose
#       challenges live 10 s, its least, and whose endpoints start one
#       flow an address at a time): the start asks for JSON with the form
#       body of the page's return_to, the polls carry the flow's cookie
#       every 2 s; once expired the start button comes back and the
#       polling stops; a start refused (over the throttle) shows the
#       page's error, and a return path of another site put in the page
#       is not sent along.
# Packages: chromium chromium-driver zbar-tools tesseract-ocr
# tesseract-ocr-jpn fonts-ipafont-gothic libnss3-tools softhsm2 opensc.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use JPKITest;
use JPKIServer;
use JPKIBrowser;

JPKIBrowser::skip_unless();
skip_unless(qw(pki openssl));

my $dir = tmpdir();
my $PKI = $JPKITest::PKI;
my $REPO = $JPKITest::REPO;
my $t_start = time;
sub have { my ($t) = @_; return grep { -x "$_/$t" } split /:/, $ENV{PATH} // '' }

# ---------------------------------------------------------------- the page's words

my $PAGE_C = slurp("$REPO/common/page.c");
my $STR = qr/"(?:[^"\\]|\\.)*"/;
sub c_text { my ($s) = @_; return join '', map { s/^"|"$//gr =~ s/\\"/"/gr =~ s/\\n/\n/gr } $s =~ /($STR)/g }
my %WORD;               # key => [ja, en]
while ($PAGE_C =~ /\{"(\w+)",\s*\{\s*((?:$STR\s*)+),\s*((?:$STR\s*)+)\}\}/g) {
    $WORD{$1} = [ c_text($2), c_text($3) ];
}
my %ERR_KEY = $PAGE_C =~ /\{"(\w+)", "(err_\w+)"\}/g;
BAIL_OUT('common/page.c: the words or the reasons not found')
    unless $WORD{title} && $ERR_KEY{too_many_attempts} && $ERR_KEY{account_not_mapped};
sub word { my ($k, $lang) = @_; return $WORD{$k}[ $lang eq 'en' ? 1 : 0 ] }

# ---------------------------------------------------------------- screenshots

my $OCR = have('tesseract') && `tesseract --list-langs 2>&1` =~ /^jpn$/m
          && `fc-list :lang=ja 2>/dev/null` =~ /\S/;
diag('no OCR of Japanese (tesseract-ocr, tesseract-ocr-jpn and a Japanese font '
     . 'such as fonts-ipafont-gothic): the title is not read from screenshots') unless $OCR;
my $ZBAR = have('zbarimg');
diag('no zbarimg (zbar-tools): QR codes are not read from screenshots') unless $ZBAR;
my $shots = 0;

sub shot {
    my ($s, $name) = @_;
    my $f = sprintf '%s/shot-%02d-%s.png', $dir, ++$shots, $name;
    spew($f, $s->png);
    return $f;
}

# the text of the QR codes in a screenshot ('' when none is read)
sub qr_text {
    my ($png) = @_;
    my $t = `zbarimg --raw -q -Sdisable -Sqrcode.enable "$png" 2>/dev/null` // '';
    $t =~ s/\s+$//;
    return $t;
}

# the screenshot's text by OCR, its white space taken out
sub ocr_text {
    my ($png, $lang) = @_;
    my $t = `tesseract "$png" - -l $lang 2>/dev/null` // '';
    $t =~ s/\s+//g;
    return $t;
}

# the page as the user sees it: the screenshot is not blank (a PNG of a
# blank page is a few kilobytes), the title read from it (Japanese: OCR)
sub page_seen_ok {
    my ($s, $label, $lang) = @_;
    my $png = shot($s, "page-$lang");
    ok(-s $png > 12000, "$label: a screenshot of the page that is not blank")
        or diag(-s $png . " bytes: $png");
    is($s->js('return document.documentElement.lang'), $lang, "$label: <html lang=\"$lang\">");
    is($s->js('return document.querySelector("h1").textContent'), word('title', $lang),
       "$label: the title in the DOM");
    ok($s->js('var b = document.querySelector("#device button"); '
              . 'return b && b.getBoundingClientRect().height >= 44 '
              . '&& getComputedStyle(b).minHeight === "44px"'),
       "$label: page.css is applied under the CSP (the button is 44 pixels high)");
    SKIP: {
        skip 'no OCR of Japanese', 1 unless $OCR && $lang eq 'ja';
        (my $want = word('title', 'ja')) =~ s/\s+//g;
        my $text = ocr_text($png, 'jpn');
        like($text, qr/\Q$want\E/, "$label: the Japanese title is readable in the screenshot (OCR)")
            or diag("OCR: $text");
    }
}

# the device button pressed: the QR code, code and link page.js shows;
# the QR code read from a screenshot -> (decoded text, code, link)
sub device_shown {
    my ($s, $label) = @_;
    $s->click('#device button');
    my $ok = $s->wait_for('var i = document.querySelector("#device img.qr"); '
                          . 'return i && i.complete && i.naturalWidth > 0', 15);
    ok($ok, "$label: the device button shows a QR code") or return ('', '', '');
    $s->js('document.querySelector("#device img.qr").scrollIntoView({block: "center"})');
    my $png = shot($s, 'qr');
    my %v = %{ $s->js('var d = document.getElementById("device"), i = d.querySelector("img.qr"), '
                      . 'a = d.querySelector("a.applink"), c = d.querySelector(".device-code"); '
                      . 'return {alt: i.alt, w: i.getBoundingClientRect().width, '
                      . 'link: a ? a.getAttribute("href") : "", code: c ? c.textContent : "", '
                      . 'status: d.querySelector("p.status").textContent, '
                      . 'form_hidden: d.querySelector("form").hidden}') };
    ok(length $v{alt} >= 8, "$label: the QR code has a text alternative") or diag("alt: $v{alt}");
    ok($v{w} >= 200, "$label: ... shown at least 200 pixels wide") or diag("width $v{w}");
    ok($v{form_hidden}, "$label: the start button is gone while the flow runs");
    my $qr = '';
    SKIP: {
        skip 'no zbarimg', 1 unless $ZBAR;
        $qr = qr_text($png);
        like($qr, qr{^https?://}, "$label: zbarimg reads the QR code in the screenshot") or diag($png);
    }
    return ($qr, $v{code}, $v{link}, $v{status});
}

# ================================================================ the gate (setup)

use JPKIApache ();
my $servers = -x $JPKITest::JPKICTL
    && ((-x $JPKITest::NGINX && -f $JPKITest::MODULE) || (-x $JPKIApache::APACHE && -f $JPKIApache::APMODULE));
diag('no server with the module, or no jpkictl: the gate is not tested') unless $servers;
my @kinds = $servers ? JPKIServer::kinds() : ();
my $LOGIN = $ENV{JPKI_LOGIN} // "$JPKITest::BUILD/jpki-login";
my $SOFTHSM = $ENV{JPKI_SOFTHSM_MODULE} // '/usr/lib/softhsm/libsofthsm2.so';
my $secret = write_secret("$dir/site.secret");
my $map = "$dir/map.txt";
spew($map, cert_id('user1', $secret) . " alice\n", 0644) if @kinds;
my $issuer = 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem crl=@PKI@/ca2.crl';

# What turns the page's methods on, if the gate needs more than its
# endpoints (the page with the device method, TLS on the TLS listener).
my %PAGE_ON = ();

# -- the NSS database of the browsers' HOME: user1 (alice) and user2 (not
# mapped); a browser picks one by its subject's CN
my $home = "$dir/home";
my $NSS = have('certutil') && have('pk12util');
my %CN;
if ($NSS) {
    mkdir $home;
    mkdir "$home/.pki";
    mkdir "$home/.pki/nssdb";
    system("certutil -N -d sql:$home/.pki/nssdb --empty-password") == 0 or die 'certutil -N';
    for my $u (qw(user1 user2)) {
        system("openssl pkcs12 -export -inkey $PKI/$u.key -in $PKI/$u.pem -name $u "
               . "-passout pass: -out $dir/$u.p12") == 0 or die "openssl pkcs12 $u";
        system("pk12util -i $dir/$u.p12 -d sql:$home/.pki/nssdb -W '' >/dev/null") == 0
            or die "pk12util $u";
        ($CN{$u}) = `openssl x509 -in $PKI/$u.pem -noout -subject -nameopt multiline` =~ /commonName\s*=\s*(\S+)/;
    }
} else {
    diag('no certutil/pk12util (libnss3-tools): the TLS client-certificate tests are skipped');
}
# the server's certificate for 127.0.0.1
system("openssl req -x509 -newkey rsa:2048 -nodes -keyout $dir/srv.key -out $dir/srv.pem -days 2 "
       . "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1") == 0
    or die 'openssl req';
chmod 0644, "$dir/srv.key", "$dir/srv.pem";

# the auto-select setting of a profile for ORIGIN: the certificate of user U
sub cert_prefs {
    my ($origin, $u) = @_;
    return { 'profile.content_settings.exceptions.auto_select_certificate' => {
        "$origin,*" => { setting => { filters => [ { SUBJECT => { CN => $CN{$u} } } ] } } } };
}

# A form page of the test's (while the gate has no page): POST P/tls
my $TLS_FORM = '<!doctype html><html><head><meta charset="utf-8"><title>tls</title></head><body>'
             . '<form method="post" action="/jpki/tls"><input type="hidden" name="return_to" '
             . 'value="/app/x?y=1"><button type="submit" id="go">TLS</button></form></body></html>';

sub gate_site {
    my ($kind, %o) = @_;
    my $login_page = $o{login_page} // '/jpki/login';
    my %s = (secret => $secret, issuer => $issuer, store => 'shm', map => $map,
             revocation => 'crl', cookie_secure => $o{tls} ? 1 : 0, %PAGE_ON,
             locations => [ '/jpki/' => { endpoints => 1 },
                            '/web/' => { gate => 1, upstream => 1, login_page => $login_page,
                                         recheck_interval => 0 },
                            '/app/' => { gate => 1, upstream => 1, login_page => $login_page,
                                         recheck_interval => 0 } ]);
    if (JPKIServer::is_nginx($kind)) {
        $s{nginx_server} = "location = /login-tls.html { default_type text/html; return 200 '$TLS_FORM'; }\n";
        if ($o{tls}) {
            $s{nginx_listen} = 'ssl';
            $s{nginx_server} .= "ssl_certificate $dir/srv.pem;\nssl_certificate_key $dir/srv.key;\n"
                              . "ssl_protocols TLSv1.2 TLSv1.3;\nssl_verify_client optional_no_ca;\n"
                              . "jpki_tls_hold12 on;\n";
        }
    } else {
        $s{docs} = { '/login-tls.html' => $TLS_FORM };
        $s{apache} = "DocumentRoot \"\@DOCS\@\"\n";
        if ($o{tls}) {
            $s{modules} = ['socache_shmcb', 'ssl'];
            $s{apache} .= "SSLEngine on\nSSLCertificateFile $dir/srv.pem\n"
                        . "SSLCertificateKeyFile $dir/srv.key\n"
                        . "SSLProtocol -all +TLSv1.2\nSSLVerifyClient optional_no_ca\n";
        }
    }
    # part 4's gate: challenges (and flows) of 10 s, one flow started an
    # address at a time on the endpoints
    # (a window of an hour: the start refused is not let through by the
    # sliding window's turn)
    if ($o{limits}) {
        $s{challenge_ttl} = '10s';
        $s{locations}[1]{throttle} = 'addr=1 window=3600';
    }
    return %s;
}

# -- SoftHSM as the phone's card: a token of user1 (alice), one of user2
my $PIN = 'Pw7319x';
my $HSM;
my $DEVICE_SIGNER = -x $LOGIN && `$LOGIN --help 2>&1` =~ /--device/;
my $why_no_signer = !-x $LOGIN ? "$LOGIN not built"
    : !$DEVICE_SIGNER ? 'jpki-login --help does not mention --device'
    : !-f $SOFTHSM ? "$SOFTHSM not found (softhsm2)"
    : !(have('softhsm2-util') && have('pkcs11-tool')) ? 'softhsm2-util or pkcs11-tool not found'
    : '';
if (!$why_no_signer) {
    $HSM = "$dir/hsm";
    mkdir $HSM;
    mkdir "$HSM/tokens";
    spew("$HSM/softhsm2.conf", "directories.tokendir = $HSM/tokens\nobjectstore.backend = file\n"
         . "log.level = ERROR\n", 0600);
    spew("$HSM/pin", "$PIN\n", 0600);
    local $ENV{SOFTHSM2_CONF} = "$HSM/softhsm2.conf";
    for my $u (qw(user1 user2)) {
        for my $cmd ("softhsm2-util --init-token --free --label $u --so-pin 12345678 --pin $PIN",
                     "openssl pkcs8 -topk8 -nocrypt -in $PKI/$u.key -out $HSM/$u.p8",
                     "softhsm2-util --import $HSM/$u.p8 --token $u --label key --id 01 --pin $PIN",
                     "openssl x509 -in $PKI/$u.pem -outform der -out $HSM/$u.der",
                     "pkcs11-tool --module $SOFTHSM --token-label $u --login --pin $PIN "
                     . "--write-object $HSM/$u.der --type cert --id 01 --label cert") {
            system("$cmd >>$HSM/setup.log 2>&1") == 0 or BAIL_OUT("$cmd: " . slurp("$HSM/setup.log"));
        }
    }
}

# jpki-login --device URL with the token of user U -> (exit status, output)
sub phone_signs {
    my ($url, $u) = @_;
    local $ENV{SOFTHSM2_CONF} = "$HSM/softhsm2.conf";
    my $out = `$LOGIN --device '$url' --module $SOFTHSM --token $u --pin-file $HSM/pin --timeout 10 2>&1`;
    return ($? >> 8, $out);
}

# why the gate's login page is not there ('' when it is): GET P/login is
# 404 (or the 405 of the POST-only login endpoint) until the gate serves it
sub no_page {
    my ($url) = @_;
    my ($st, $type) = split / /, `curl -sk --max-time 10 -H 'Accept: text/html' -o /dev/null -w '%{http_code} %{content_type}' '$url'`, 2;
    return $st eq '200' && ($type // '') =~ m{^text/html} ? ''
         : "GET $url is $st: the gate serves no login page yet";
}

# ================================================================ run

my $lap_t = time;
sub lap { my ($what) = @_; note(sprintf '%s: %.1f s', $what, time - $lap_t); $lap_t = time }
my $RET_Q = '%2Fweb%2Fpage%3Fx%3D1';

# the device button pressed on the page of the gate at BASE: the QR code
# (read from a screenshot) is the flow's URL, the link's, with the code
# shown -> the QR code's text
sub flow_shown_ok {
    my ($s, $label, $base, $lang) = @_;
    my ($qr, $code, $link, $status) = device_shown($s, $label);
    SKIP: {
        skip 'no zbarimg', 3 unless $ZBAR;
        like($qr, qr{^\Q$base\E/jpki/sign\?challenge=[A-Za-z0-9_-]{100}&code=([2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4})$},
             "$label: the QR code is the flow's URL (P/sign?challenge=C&code=XXXX-XXXX)");
        is($link, "jpki:$qr", "$label: ... the link's, after jpki:");
        is(($qr =~ /code=(.+)$/)[0], $code, "$label: ... with the code shown");
    }
    is($status, word('waiting', $lang), "$label: the status says it waits");
    return $qr;
}

# the dark scheme and reduced motion emulated, as page.css says; the
# Japanese title read back by OCR in the dark
sub dark_seen_ok {
    my ($s, $label) = @_;
    my ($dark_bg) = slurp("$REPO/common/assets/page.css")
        =~ /prefers-color-scheme:\s*dark\)\s*\{\s*:root\s*\{[^}]*--bg:\s*#(\w{6})/;
    $s->media('prefers-color-scheme' => 'dark', 'prefers-reduced-motion' => 'reduce');
    is($s->js('return getComputedStyle(document.body).backgroundColor'),
       sprintf('rgb(%d, %d, %d)', map { hex } ($dark_bg // '') =~ /(..)/g),
       "$label: prefers-color-scheme: dark: the dark palette");
    is($s->js('return getComputedStyle(document.querySelector("#device button")).transitionDuration'),
       '0s', "$label: prefers-reduced-motion: no transition");
    SKIP: {
        skip 'no OCR of Japanese', 1 unless $OCR;
        (my $want = word('title', 'ja')) =~ s/\s+//g;
        my $text = ocr_text(shot($s, 'dark'), 'jpn');
        like($text, qr/\Q$want\E/, "$label: ... the title is readable in the dark (OCR)")
            or diag("OCR: $text");
    }
    $s->media();
    is($s->js('return getComputedStyle(document.body).backgroundColor'), 'rgb(255, 255, 255)',
       "$label: the light palette otherwise");
}

# Part 4, the session X of the limits' gate LIM whose flow (challenge CH)
# began before parts 1 and 3: its requests from the browser's network log,
# its expiry, then a second start, over the throttle
sub flow_sent_ok {
    my ($x, $kind, $lim, $ch) = @_;
    my $back = $x->wait_for('var d = document.getElementById("device"); '
                            . 'return !d.querySelector("form").hidden && !d.querySelector("img.qr")', 15);
    ok($back, "$kind, expiring: the flow expired (10 s): the start button is back, the QR code gone");
    ok(!$x->js('return document.querySelector("#device button").disabled'), "$kind, expiring: ... enabled");
    like($x->js('return location.pathname + location.search'), qr{^/jpki/login\?return_to=[^&]+$},
         "$kind, expiring: ... on the same page (not sent to an error)");
    is($x->js('return document.querySelector("#device p.status").textContent'), word('err_flow', 'en'),
       "$kind, expiring: ... the status says it expired");
    my @sent = $x->requests;
    my ($start, @more) = grep { $_->{method} eq 'POST' && $_->{url} =~ m{/jpki/device$} } @sent;
    my @polls = grep { $_->{method} eq 'GET' && $_->{url} =~ m{/jpki/poll\b} } @sent;
    ok($start && !@more, "$kind, page.js: one start (POST P/device)") or diag(scalar @more);
    $start //= { headers => {} };
    like($start->{headers}{accept} // '', qr{^application/json}, "$kind, page.js: ... asking for JSON");
    is($start->{headers}{'content-type'}, 'application/x-www-form-urlencoded',
       "$kind, page.js: ... a form body");
    is($start->{body}, "return_to=$RET_Q", "$kind, page.js: ... of the page's return_to");
    ok(@polls >= 3 && @polls <= 5, "$kind, page.js: polled through the flow's 10 s")
        or diag(scalar(@polls) . ' polls');
    is(scalar(grep { $_->{url} =~ m{/jpki/poll\?return_to=/web/page%3Fx%3D1$} } @polls), scalar @polls,
       "$kind, page.js: ... at the poll URL the gate gave (the return_to the start sent)");
    is(scalar(grep { ($_->{headers}{accept} // '') =~ m{^application/json} } @polls), scalar @polls,
       "$kind, page.js: ... each asking for JSON");
    is(scalar(grep { ($_->{headers}{cookie} // '') =~ /(?:^|; )jpki_flow=@{[ $ch ? quotemeta $ch : '[A-Za-z0-9_-]{100}' ]}\.[0-9a-f]{32}(?:;|$)/ } @polls),
       scalar @polls, "$kind, page.js: ... each with the flow's cookie");
    my @gaps = map { sprintf '%.2f', $polls[$_]{t} - $polls[$_ - 1]{t} } 1 .. $#polls;
    ok(@gaps && !grep({ $_ < 1.8 || $_ > 4 } @gaps), "$kind, page.js: ... every 2 s") or diag("gaps: @gaps");
    # the polling stopped (the other parts took seconds since)
    @polls = grep { $_->{url} =~ m{/jpki/poll\b} } $x->requests;
    is(scalar @polls, 0, "$kind, expiring: ... and the polling stopped");

    # a second start from the address: over the gate's throttle (addr=1),
    # 429 too_many_attempts.  The page's return path replaced by another
    # site's, as a template could carry it: not sent along, not kept
    # (another start from the address just before: the count is this window's)
    post_form($lim->url('/jpki/device'), {}, headers => { Accept => 'application/json' });
    $x->js('document.getElementById("device").setAttribute("data-return", "//evil.example/x")');
    $x->click('#device button');
    my $url = $x->wait_for('return location.search.indexOf("error=") >= 0 && location.href', 15);
    is($url, $lim->url('/jpki/login?error=too_many_attempts'),
       "$kind: a start refused (over the throttle): P/login?error=R, no return_to of another site");
    like($x->js('var e = document.querySelector(".error[role=alert]"); return e ? e.innerText : ""'),
         qr/\Q@{[ word($ERR_KEY{too_many_attempts}, 'en') ]}\E/, "$kind: ... where the page says it");
    @sent = $x->requests;
    my @starts = grep { $_->{method} eq 'POST' && $_->{url} =~ m{/jpki/device$} } @sent;
    is(scalar @starts, 1, "$kind: ... from the start's JSON (page.js's fetch; no form post after)");
    is(@starts && $starts[0]{body} // '', '', "$kind: ... its start sent no return_to");
    is(scalar(grep { $_->{url} =~ m{/jpki/poll\b} } @sent), 0, "$kind: ... and nothing was polled");
    $x->quit;
}

# Each part runs on both servers (what the page meets is each adapter's
# answer: the page and its headers, the flow, the poll, the throttle's 429),
# but the dark palette's checks (the same built-in page.css: see there).
for my $kind (@kinds) {
    my $t0 = time;
    # ---- 1 and 3: the page, its QR code, the device flow (plain http)
    my $srv = JPKIServer->start($kind, name => 'page', gate_site($kind));
    my $lim = JPKIServer->start($kind, name => 'page-limits', gate_site($kind, limits => 1));
    my $base = $srv->url('');
    SKIP: {
        my $why = no_page("$base/jpki/login");
        skip "$kind: $why", 1 if $why;
        my $br = JPKIBrowser->start(home => $home);
        # ---- 1, English, and 4 (begun): a flow left to expire while the
        # rest runs (the English page is the limits' gate's: the same page)
        my $x = $br->session(lang => 'en', network => 1);
        $x->go($lim->url('/web/page?x=1'));
        ok($x->wait_for('return location.pathname === "/jpki/login"', 15),
           "$kind, en: a gated page sends the browser to the login page");
        page_seen_ok($x, "$kind, en", 'en');
        my ($xqr) = flow_shown_ok($x, "$kind, en", $lim->url(''), 'en');
        my ($xch) = ($xqr // '') =~ /challenge=([A-Za-z0-9_-]+)/;
        lap("$kind: servers, en page, the flow begun");
        for my $lang (qw(ja)) {
            my $s = $br->session(lang => $lang);
            $s->go($srv->url('/web/page?x=1'));
            ok($s->wait_for('return location.pathname === "/jpki/login"', 15),
               "$kind, $lang: a gated page sends the browser to the login page");
            page_seen_ok($s, "$kind, $lang", $lang);
            # page.css asked for the dark scheme and reduced motion: on the
            # first server only (the same built-in asset on both; that it
            # applies under each one's CSP is page_seen_ok's)
            dark_seen_ok($s, "$kind, $lang") if $lang eq 'ja' && $kind eq $kinds[0];
            if (!$s->js('return !!document.querySelector("#device button")')) {
                fail("$kind, $lang: the page shows the device method (is it turned on? %PAGE_ON)");
                $s->quit;
                next;
            }
            my ($qr) = flow_shown_ok($s, "$kind, $lang", $base, $lang);
            if ($lang eq 'ja') {
                SKIP: {
                    skip "$kind: no device signer: $why_no_signer", 4 if $why_no_signer;
                    skip 'no zbarimg', 4 unless $ZBAR && $qr;
                    # 3. the phone signs the URL of the QR code: the page goes on
                    my ($rc, $out) = phone_signs($qr, 'user1');
                    is($rc, 0, "$kind: jpki-login --device <the QR code's URL>: signed") or diag $out;
                    my $end = $s->wait_for('return location.pathname.indexOf("/web/page") === 0 '
                                           . '&& document.body.innerText', 15);
                    like($end // '', qr/account=\[alice\]/,
                         "$kind: the page polled, then went to the gated page, signed in as alice")
                        or diag(eval { $s->url . ': ' . $s->text } // $@);
                    like($end // '', qr/uri=\/web\/page\?x=1$/m, "$kind: ... the page asked for");
                    # an unmapped card: the page says why
                    $s->go($srv->url('/jpki/login?return_to=%2Fweb%2Fother'));
                    my ($qr2) = device_shown($s, "$kind, unmapped");
                    ($rc, $out) = phone_signs($qr2, 'user2');
                    is($rc, 1, "$kind: an unmapped card's signature is refused to the phone") or diag $out;
                    my $url = $s->wait_for('return location.search.indexOf("error=") >= 0 && location.href', 15);
                    like($url // '', qr{/jpki/login\?error=account_not_mapped&return_to=%2Fweb%2Fother$},
                         "$kind: ... and the page goes to the login page with the reason");
                    like($s->js('var e = document.querySelector(".error[role=alert]"); '
                                . 'return e ? e.innerText : ""'),
                         qr/\Q@{[ word($ERR_KEY{account_not_mapped}, 'ja') ]}\E/,
                         "$kind: ... which says it");
                    # a return_to of another site: the gate keeps its own
                    # root, and the page goes nowhere else
                    $s->go($srv->url('/jpki/login?return_to=%2F%2Fevil.example%2Fx'));
                    my ($qr3) = device_shown($s, "$kind, //evil.example");
                    ($rc, $out) = phone_signs($qr3, 'user1');
                    $end = $s->wait_for('return location.pathname !== "/jpki/login" && location.href', 15);
                    is($end, "$base/", "$kind: a return_to of another site (\"//evil.example/x\") "
                       . 'is not followed: signed in, the site\'s root') or diag $out;
                }
            }
            $s->quit;
        }
        lap("$kind: ja page and flows");
        # the page without JavaScript: the form post answers the page with
        # the QR code, which refreshes itself to the poll until it is signed
        SKIP: {
            skip "$kind: no device signer: $why_no_signer", 4 if $why_no_signer;
            skip 'no zbarimg', 4 unless $ZBAR;
            my $s = $br->session(lang => 'en',
                                 prefs => { 'profile.default_content_setting_values.javascript' => 2 });
            $s->go($srv->url('/jpki/login?return_to=%2Fweb%2Fnojs'));
            $s->click('#device button');
            ok($s->wait_for('var i = document.querySelector("img.qr"); '
                            . 'return i && i.complete && i.naturalWidth > 0', 15),
               "$kind, no script: the form post answers the page with the QR code");
            like($s->url, qr{/jpki/device$}, "$kind, no script: ... (the form's, not page.js's)");
            my $qr = qr_text(shot($s, 'nojs'));
            like($qr, qr{^\Q$base\E/jpki/sign\?challenge=}, "$kind, no script: zbarimg reads it");
            my ($rc, $out) = phone_signs($qr, 'user1');
            my $end = $s->wait_for('return location.pathname === "/web/nojs" && document.body.innerText', 20);
            like($end // '', qr/account=\[alice\]/,
                 "$kind, no script: signed, the page refreshes to the page asked for") or diag $out;
            $s->quit;
        }
        lap("$kind: no script");
        # ---- 4 (ended): what page.js sent, the expiry, a refused start
        flow_sent_ok($x, $kind, $lim, $xch);
        lap("$kind: expiry and refused start");
        $br->stop;
    }
    $srv->stop;
    $lim->stop;

    # ---- 2. TLS client certificates from the browser's NSS database
    SKIP: {
        skip 'no libnss3-tools', 1 unless $NSS;
        my $tls = JPKIServer->start($kind, name => 'page-tls', gate_site($kind, tls => 1));
        my $origin = 'https://127.0.0.1:' . $tls->port;
        my $own = no_page("$origin/jpki/login");
        if ($own) {
            # the gate has no page: the test's form page, to show the browser's side works
            $tls->stop;
            $tls = JPKIServer->start($kind, name => 'page-tls2',
                                     gate_site($kind, tls => 1, login_page => '/login-tls.html'));
            $origin = 'https://127.0.0.1:' . $tls->port;
            diag("$kind: the gate serves no login page yet: TLS from the test's form page");
        }
        my $br = JPKIBrowser->start(home => $home);
        for my $u (qw(user1 user2)) {
            my $s = $br->session(lang => 'ja', insecure => 1, prefs => cert_prefs($origin, $u));
            $s->go("$origin/app/x?y=1") or diag("$kind, TLS, $u: $@");
            my $lp = $own ? '/login-tls.html' : '/jpki/login';
            ok($s->wait_for("return location.pathname === '$lp'", 20),
               "$kind, TLS, $u: a gated page sends the browser to the login page")
                or diag(eval { $s->url . ': ' . $s->text } // $@);
            my $button = $own ? '#go' : 'form[action$="/tls"] button, a[href$="/tls"]';
            if (!$s->js('return !!document.querySelector(arguments[0])', $button)) {
                fail("$kind, TLS: the login page shows the TLS method (is it turned on? %PAGE_ON)");
                $s->quit;
                next;
            }
            $s->click($button);
            $s->wait_for('return location.pathname !== arguments[0] && document.readyState === "complete"', 15, $lp);
            $s->go("$origin/app/x?y=1") if $own;    # its answer is the gate's JSON
            my $text = $s->wait_for('return document.readyState === "complete" && document.body.innerText', 15) // '';
            if ($u eq 'user1') {
                like($text, qr/account=\[alice\].*uri=\/app\/x\?y=1/s,
                     "$kind, TLS: the browser's certificate (picked without a prompt) signs in: "
                     . 'the gated page, as alice');
            } elsif ($own) {
                unlike($text, qr/account=\[/, "$kind, TLS: another card (not mapped): not signed in");
            } else {
                like($s->url, qr{/jpki/login\?error=account_not_mapped},
                     "$kind, TLS: another card (not mapped): back on the login page with the reason");
                like($s->js('var e = document.querySelector(".error[role=alert]"); return e ? e.innerText : ""'),
                     qr/\Q@{[ word('err_not_enrolled', 'ja') ]}\E/, "$kind, TLS: ... which says it");
            }
            $s->quit;
        }
        $br->stop;
        $tls->stop;
    }
    lap("$kind: TLS");
    note(sprintf '%s: %.1f s', $kind, time - $t0);
}

note(sprintf 'all: %.1f s', time - $t_start);
done_testing();
