#!/usr/bin/perl
# t/browser-page.t - the login page (common/page.c's template with
# common/assets/page.css and page.js) as headless Chromium shows it:
#
# A. Against a stand-in gate (this file's: the page rendered from the
#    built-in template and words of common/page.c, the assets, the CSP of
#    jpki_page_headers, and the device flow's answers of docs/protocol.md
#    section 7: pending, ok, errors, expiry), in Japanese and English: the
#    page is styled under its CSP (44-pixel button; the dark palette and no
#    transition when the browser asks), the Japanese title is readable in a
#    screenshot (OCR: tesseract-ocr-jpn, with a Japanese font installed),
#    light and dark, the device button shows a QR code
#    that zbarimg reads back as the flow's URL, the code and the link;
#    page.js's requests (JSON, form body, cookie, every 2 s); "ok" goes to
#    the page asked for (never to another site's URL), an error to
#    P/login?error=R&return_to=..., a start without JSON falls back to the
#    plain form post, an expired flow gives the form back and stops.
# B. Against the gate itself (nginx and Apache), when it serves GET
#    P/login (skipped when it does not):
#    1. the page in Japanese and English, its QR code read from a
#       screenshot: the URL of the flow (P/sign?challenge=C&code=XXXX-XXXX);
#    2. TLS client certificates: the test users' certificates in the
#       browser's NSS database ($HOME/.pki/nssdb), picked without a prompt
#       by the profile's auto-select setting (what the policy
#       AutoSelectCertificateForUrls writes), by subject: a gated page,
#       the login page, its TLS button (POST P/tls), the gated page with
#       the account; an unmapped card comes back to the login page with
#       the reason (while the gate has no page: the same from a form page
#       of the test's);
#    3. the device flow with jpki-login --device as the phone (SoftHSM as
#       the card): the page ends on the gated page; an unmapped card's
#       signature ends on the login page with the reason.
# Packages: chromium chromium-driver zbar-tools qrencode tesseract-ocr
# tesseract-ocr-jpn fonts-ipafont-gothic libnss3-tools softhsm2 opensc.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use POSIX ();
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
my ($TEMPLATE) = $PAGE_C =~ /default_text\[\]\s*=\s*(.*?);\n/s;
$TEMPLATE = c_text($TEMPLATE // '');
my @PAGE_HEADERS = ($PAGE_C =~ /jpki_page_headers\[\]\s*=\s*\{(.*?)\n\};/s)[0] =~ /\{"([\w-]+)",\s*((?:$STR\s*)+)\}/g;
BAIL_OUT('common/page.c: the words, the template or the headers not found')
    unless $WORD{title} && $TEMPLATE =~ /id="device"/ && @PAGE_HEADERS >= 10;
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

# ================================================================ A. stand-in gate

# A gate of the contract, enough for the page: GET /jpki/login (the
# built-in template rendered as common/page.c does: its words, marks and
# parts), /jpki/page.css, /jpki/page.js, POST /jpki/device, GET
# /jpki/poll, GET /web/* (the account once signed in).  What it answers
# is $dir/mock/scenario (JSON, written by the test); every request is a
# line of $dir/mock/requests (JSON).  One process per connection
# (Chromium opens connections it does not use at once).
my $MOCK = "$dir/mock";
mkdir $MOCK;
my $HAVE_QRENCODE = have('qrencode');
diag('no qrencode: the stand-in gate shows no QR code') unless $HAVE_QRENCODE;

sub esc { my ($s) = @_; $s //= ''; $s =~ s/&/&amp;/g; $s =~ s/</&lt;/g; $s =~ s/>/&gt;/g;
          $s =~ s/"/&quot;/g; $s =~ s/'/&#39;/g; return $s }
sub uri_unescape { my ($s) = @_; $s =~ tr/+/ /; $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; return $s }

sub render_page {
    my ($lang, $error, $return_to) = @_;
    my $key = defined $error && $error ne '' && $error ne 'ok' ? ($ERR_KEY{$error} // 'err_failed') : undef;
    my %on = (error => !!$key, tls => 1, device => 1, none => 0, noflow => 1, flow => 0);
    my %var = (lang => $lang, return_to => $return_to, tls_url => '/jpki/tls',
               device_url => '/jpki/device', assets => '/jpki/',
               error_code => $key ? $error : '', error_text => $key ? word($key, $lang) : '');
    my $t = $TEMPLATE;
    1 while $t =~ s/\{\{#(\w+)\}\}(.*?)\{\{\/\1\}\}/$on{$1} ? $2 : ''/se;
    $t =~ s/\{\{t:(\w+)\}\}/esc(word($1, $lang))/ge;
    $t =~ s/\{\{(\w+)\}\}/esc($var{$1})/ge;
    return $t;
}

sub mock_scenario { spew("$MOCK/scenario", json_encode({ @_ })) }
sub mock_requests {
    return map { json_decode($_) } grep { /\S/ } split /\n/, slurp("$MOCK/requests");
}
sub mock_reset { spew("$MOCK/requests", ''); unlink "$MOCK/flow" }

sub mock_answer {
    my ($port, $req) = @_;
    my $sc = json_decode(slurp("$MOCK/scenario")) // {};
    my ($path, $query) = split /\?/, $req->{target}, 2;
    my %q = map { my ($k, $v) = split /=/, $_, 2; (uri_unescape($k), uri_unescape($v // '')) }
            split /&/, $query // '';
    my %cookie = ($req->{cookie} // '') =~ /(\w+)=([^;\s]*)/g;
    my $json = sub { my ($st, $h, @more) = @_; return ($st, 'application/json', json_encode($h), @more) };
    if ($req->{method} eq 'GET' && $path eq '/jpki/login') {
        my $lang = ($req->{lang} // '') =~ /^\s*en/i ? 'en' : 'ja';
        my $rt = defined $q{return_to} && $q{return_to} =~ m{^/(?![/\\])} ? $q{return_to} : '';
        return (200, 'text/html; charset=utf-8', render_page($lang, $q{error}, $rt), @PAGE_HEADERS);
    }
    if ($req->{method} eq 'GET' && $path =~ m{^/jpki/(page\.(css|js))$}) {
        return (200, $2 eq 'css' ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8',
                slurp("$REPO/common/assets/$1"), 'X-Content-Type-Options', 'nosniff');
    }
    if ($req->{method} eq 'POST' && $path eq '/jpki/device') {
        my $d = $sc->{device} // 'ok';
        return $json->(403, { error => $1 }) if $d =~ /^error:(\w+)/;
        return (200, 'text/html; charset=utf-8', "<!doctype html><p>the page without script</p>\n")
            if $d eq 'html';
        my @b64 = ('A' .. 'Z', 'a' .. 'z', 0 .. 9, '-', '_');
        my $ch = join '', map { $b64[rand @b64] } 1 .. 100;
        my @al = split //, '23456789ABCDEFGHJKLMNPQRSTUVWXYZ';
        my $code = join('', map { $al[rand @al] } 1 .. 4) . '-' . join('', map { $al[rand @al] } 1 .. 4);
        my $url = "http://127.0.0.1:$port/jpki/sign?challenge=$ch&code=$code";
        my $svg = $HAVE_QRENCODE ? `qrencode -t SVG -m 0 -o - '$url'` : '';
        my %b = map { my ($k, $v) = split /=/, $_, 2; (uri_unescape($k), uri_unescape($v // '')) }
                split /&/, $req->{body} // '';
        my $secret = join '', map { sprintf '%02x', rand 256 } 1 .. 16;
        my $flow = { url => $url, code => $code, cookie => "$ch.$secret",
                     return_to => $b{return_to} // '', polls => 0,
                     expires => int(time) + ($sc->{expires_in} // 60) };
        spew("$MOCK/flow", json_encode($flow));
        return $json->(200, { status => 'pending', code => $code, url => $url, link => "jpki:$url",
                              $svg ? (qr => 'data:image/svg+xml;base64,' . encode_base64($svg, '')) : (),
                              expires => $flow->{expires}, poll => '/jpki/poll' },
                       'Set-Cookie', "jpki_flow=$flow->{cookie}; Path=/jpki/; HttpOnly; SameSite=Strict");
    }
    if ($req->{method} eq 'GET' && $path eq '/jpki/poll') {
        my $flow = json_decode(slurp("$MOCK/flow"));
        return $json->(410, { error => 'flow_unknown' })
            unless $flow && ($cookie{jpki_flow} // '') eq $flow->{cookie};
        my $n = ++$flow->{polls};
        spew("$MOCK/flow", json_encode($flow));
        my ($what, $arg, $after) = split /:/, $sc->{poll} // 'pending';
        $after = $arg if $what eq 'ok';
        if ($what ne 'pending' && $n > ($after // 0)) {
            return $json->(403, { error => $arg }) if $what eq 'error';
            return $json->(200, { status => 'ok', account => 'alice', expires => int(time) + 3600,
                                  return_to => $sc->{return_to} // $flow->{return_to} },
                           'Set-Cookie', 'jpki_session=s1; Path=/; HttpOnly');
        }
        return $json->(200, { status => 'pending', expires => $flow->{expires} });
    }
    if ($req->{method} eq 'GET' && $path =~ m{^/web/}) {
        return (200, 'text/plain', "account=[alice] uri=$req->{target}\n")
            if ($cookie{jpki_session} // '') eq 's1';
        return (302, 'text/plain', '', 'Location', "/jpki/login?return_to=$req->{target}");
    }
    return (404, 'text/plain', "not found\n");
}

sub mock_serve {
    my ($sock, $port) = @_;
    $SIG{CHLD} = 'IGNORE';
    while (1) {
        my $c = $sock->accept or next;
        my $pid = fork;
        if (!defined $pid || $pid) { close $c; next }
        close $sock;
        local $SIG{ALRM} = sub { POSIX::_exit(0) };
        alarm 10;
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            my $n = sysread($c, $head, 4096, length $head);
            POSIX::_exit(0) unless $n;
        }
        my ($h, $body) = split /\r\n\r\n/, $head, 2;
        my ($method, $target) = $h =~ /^(\w+) (\S+)/;
        my %hd = map { /^([^:]+):\s*(.*)$/ ? (lc $1, $2) : () } split /\r\n/, $h;
        my $len = $hd{'content-length'} // 0;
        while (length $body < $len) { sysread($c, $body, $len - length $body, length $body) or last }
        my $req = { t => time, method => $method, target => $target, accept => $hd{accept},
                    ctype => $hd{'content-type'}, cookie => $hd{cookie}, lang => $hd{'accept-language'},
                    fetch_mode => $hd{'sec-fetch-mode'}, body => $body };
        open my $log, '>>', "$MOCK/requests";
        syswrite $log, json_encode($req) . "\n";
        close $log;
        my ($st, $type, $content, @h) = mock_answer($port, $req);
        utf8::encode($content) if utf8::is_utf8($content);
        my $out = "HTTP/1.1 $st X\r\nContent-Type: $type\r\nContent-Length: " . length($content)
                . "\r\nConnection: close\r\nCache-Control: no-store\r\n";
        while (my ($k, $v) = splice @h, 0, 2) { $out .= "$k: $v\r\n" }
        print $c "$out\r\n$content";
        close $c;
        POSIX::_exit(0);
    }
}

sub requests_to { my ($m, $p) = @_; return grep { $_->{method} eq $m && $_->{target} =~ /^\Q$p\E/ } mock_requests() }


# ================================================================ B. the gate (setup)

use JPKIApache ();
my $servers = -x $JPKITest::JPKICTL
    && ((-x $JPKITest::NGINX && -f $JPKITest::MODULE) || (-x $JPKIApache::APACHE && -f $JPKIApache::APMODULE));
diag('B: no server with the module, or no jpkictl: the gate is not tested') unless $servers;
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

# ================================================================ A. run

{
    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 32,
                                     ReuseAddr => 1) or die "listen: $!";
    my $port = $sock->sockport;
    JPKITest::fork_code('stand-in gate', "$dir/mock.log", sub { mock_serve($sock, $port) });
    close $sock;
    my $base = "http://127.0.0.1:$port";
    my $br = JPKIBrowser->start;
    my $RET = '/web/page?x=1';
    my $RET_Q = '%2Fweb%2Fpage%3Fx%3D1';
    my $login = "$base/jpki/login?return_to=$RET_Q";

    # -- Japanese: the page, the QR code, the flow to its end
    my $t0 = time;
    mock_reset();
    mock_scenario(poll => 'ok:2');
    my $s = $br->session(lang => 'ja');
    $s->go($login);
    page_seen_ok($s, 'stand-in, ja', 'ja');
    # the dark scheme and reduced motion, as page.css says
    my ($dark_bg) = slurp("$REPO/common/assets/page.css")
        =~ /prefers-color-scheme:\s*dark\)\s*\{\s*:root\s*\{[^}]*--bg:\s*#(\w{6})/;
    $s->media('prefers-color-scheme' => 'dark', 'prefers-reduced-motion' => 'reduce');
    is($s->js('return getComputedStyle(document.body).backgroundColor'),
       sprintf('rgb(%d, %d, %d)', map { hex } ($dark_bg // '') =~ /(..)/g),
       'stand-in, ja: prefers-color-scheme: dark: the dark palette');
    is($s->js('return getComputedStyle(document.querySelector("#device button")).transitionDuration'),
       '0s', 'stand-in, ja: prefers-reduced-motion: no transition');
    SKIP: {
        skip 'no OCR of Japanese', 1 unless $OCR;
        (my $want = word('title', 'ja')) =~ s/\s+//g;
        my $text = ocr_text(shot($s, 'dark'), 'jpn');
        like($text, qr/\Q$want\E/, 'stand-in, ja: ... the title is readable in the dark (OCR)')
            or diag("OCR: $text");
    }
    $s->media();
    is($s->js('return getComputedStyle(document.body).backgroundColor'), 'rgb(255, 255, 255)',
       'stand-in, ja: the light palette otherwise');
    my ($qr, $code, $link, $status) = device_shown($s, 'stand-in, ja');
    my $flow = json_decode(slurp("$MOCK/flow")) // {};
    SKIP: {
        skip 'no zbarimg or qrencode', 1 unless $ZBAR && $HAVE_QRENCODE;
        is($qr, $flow->{url}, 'stand-in, ja: the QR code is the flow\'s URL');
    }
    is($code, $flow->{code}, 'stand-in, ja: the code is shown');
    is($link, "jpki:$flow->{url}", 'stand-in, ja: the link for a signing app');
    is($status, word('waiting', 'ja'), 'stand-in, ja: the status says it waits (its words)');
    my ($start) = requests_to('POST', '/jpki/device');
    like($start->{accept} // '', qr{^application/json}, 'page.js: the start asks for JSON');
    is($start->{ctype}, 'application/x-www-form-urlencoded', 'page.js: ... posts a form body');
    is($start->{body}, "return_to=$RET_Q", 'page.js: ... of the page\'s return_to');
    is($start->{fetch_mode}, 'cors', 'page.js: ... by fetch()');
    my $end = $s->wait_for('return location.pathname === "/web/page" && document.body.innerText', 15);
    like($end // '', qr/account=\[alice\] uri=\/web\/page\?x=1/,
         'stand-in, ja: "ok" goes to the page asked for, signed in');
    my @polls = requests_to('GET', '/jpki/poll');
    is(scalar @polls, 3, 'page.js: polled until "ok" (2 pending, then ok)');
    is(scalar(grep { ($_->{accept} // '') =~ m{^application/json} } @polls), 3,
       'page.js: ... each asking for JSON');
    is(scalar(grep { ($_->{cookie} // '') =~ /jpki_flow=\Q$flow->{cookie}\E/ } @polls), 3,
       'page.js: ... each with the flow\'s cookie');
    my @gaps = map { $polls[$_]{t} - $polls[$_ - 1]{t} } 1 .. $#polls;
    ok(@gaps && !grep({ $_ < 1.8 || $_ > 6 } @gaps), 'page.js: ... every 2 s')
        or diag("gaps: @gaps");
    $s->quit;
    note(sprintf 'stand-in, ja: %.1f s', time - $t0);

    # -- English: the page; errors; a foreign return_to; no JSON; expiry
    $t0 = time;
    $s = $br->session(lang => 'en');
    mock_reset();
    mock_scenario(poll => 'error:flow_mismatch:1');
    $s->go($login);
    page_seen_ok($s, 'stand-in, en', 'en');
    device_shown($s, 'stand-in, en');
    my $url = $s->wait_for('return location.search.indexOf("error=") >= 0 && location.href', 15);
    is($url, "$base/jpki/login?error=flow_mismatch&return_to=$RET_Q",
       'stand-in, en: a poll\'s error goes to P/login?error=R&return_to=...');
    my $says = word($ERR_KEY{flow_mismatch} // 'err_failed', 'en');
    like($s->js('var e = document.querySelector(".error[role=alert]"); return e ? e.innerText : ""'),
         qr/\Q$says\E/, 'stand-in, en: ... where the page says it');

    mock_reset();
    mock_scenario(device => 'error:cross_origin');
    $s->go($login);
    $s->click('#device button');
    $url = $s->wait_for('return location.search.indexOf("error=") >= 0 && location.href', 15);
    is($url, "$base/jpki/login?error=cross_origin&return_to=$RET_Q",
       'stand-in, en: a refused start goes to P/login?error=R&return_to=...');
    is(scalar(requests_to('GET', '/jpki/poll')), 0, 'stand-in, en: ... and nothing is polled');

    mock_reset();
    mock_scenario(poll => 'ok:0', return_to => '//evil.example/x');
    $s->go($login);
    $s->click('#device button');
    $end = $s->wait_for('return location.pathname !== "/jpki/login" && location.href', 15);
    is($end, "$base$RET", 'stand-in, en: a return_to of another site ("//evil.example/x") is '
       . 'not followed: the page\'s own');

    mock_reset();
    mock_scenario(device => 'html');
    $s->go($login);
    $s->click('#device button');
    $end = $s->wait_for('return document.body.innerText.indexOf("without script") >= 0', 15);
    ok($end, 'stand-in, en: a start answered without JSON falls back to the form post');
    my @starts = requests_to('POST', '/jpki/device');
    is(scalar @starts, 2, 'stand-in, en: ... (fetch, then the form)');
    like($starts[-1]{accept} // '', qr{^text/html}, 'stand-in, en: ... the form asks for the page');
    is($starts[-1]{body}, "return_to=$RET_Q", 'stand-in, en: ... with its return_to');

    mock_reset();
    mock_scenario(poll => 'pending', expires_in => 4);
    $s->go($login);
    device_shown($s, 'stand-in, en, expiring');
    my $back = $s->wait_for('var d = document.getElementById("device"); '
                            . 'return !d.querySelector("form").hidden && !d.querySelector("img.qr")', 10);
    ok($back, 'stand-in, en: an expired flow gives the start button back, the QR code gone');
    ok(!$s->js('return document.querySelector("#device button").disabled'), 'stand-in, en: ... enabled');
    my $n = () = requests_to('GET', '/jpki/poll');
    sleep 2.5;
    my $m = () = requests_to('GET', '/jpki/poll');
    is($m, $n, 'stand-in, en: ... and the polling stopped');
    ok($n >= 1 && $n <= 2, 'stand-in, en: ... after the polls of its 4 s') or diag("$n polls");
    $s->quit;
    note(sprintf 'stand-in, en: %.1f s', time - $t0);

    $br->stop;
}

# ================================================================ B. run

for my $kind (@kinds) {
    my $t0 = time;
    # ---- 1 and 3: the page, its QR code, the device flow (plain http)
    my $srv = JPKIServer->start($kind, name => 'page', gate_site($kind));
    my $base = $srv->url('');
    SKIP: {
        my $why = no_page("$base/jpki/login");
        skip "$kind: $why", 1 if $why;
        my $br = JPKIBrowser->start(home => $home);
        for my $lang (qw(ja en)) {
            my $s = $br->session(lang => $lang);
            $s->go($srv->url('/web/page?x=1'));
            ok($s->wait_for('return location.pathname === "/jpki/login"', 15),
               "$kind, $lang: a gated page sends the browser to the login page");
            page_seen_ok($s, "$kind, $lang", $lang);
            if (!$s->js('return !!document.querySelector("#device button")')) {
                fail("$kind, $lang: the page shows the device method (is it turned on? %PAGE_ON)");
                $s->quit;
                next;
            }
            my ($qr, $code, $link, $status) = device_shown($s, "$kind, $lang");
            SKIP: {
                skip 'no zbarimg', 3 unless $ZBAR;
                like($qr, qr{^\Q$base\E/jpki/sign\?challenge=[A-Za-z0-9_-]{100}&code=([2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4})$},
                     "$kind, $lang: the QR code is the flow's URL (P/sign?challenge=C&code=XXXX-XXXX)");
                is($link, "jpki:$qr", "$kind, $lang: ... the link's, after jpki:");
                is(($qr =~ /code=(.+)$/)[0], $code, "$kind, $lang: ... with the code shown");
            }
            is($status, word('waiting', $lang), "$kind, $lang: the status says it waits");
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
                }
            }
            $s->quit;
        }
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
        $br->stop;
    }
    $srv->stop;

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
    note(sprintf '%s: %.1f s', $kind, time - $t0);
}

note(sprintf 'all: %.1f s', time - $t_start);
done_testing();
