#!/usr/bin/perl
# t/login-device.t - jpki-login --device LINK, the signer of a login page's
# device flow (docs/protocol.md, docs/client.md), with SoftHSM2 as the card:
#  - the link is read and checked before anything else: each malformed link
#    (scheme, user info, fragment, path, query, bytes), each challenge that
#    is not a current one issued for the link's host, a code that is not
#    the challenge's, and the option grammar (--device with --url,
#    --cookie-jar or --account) are refused with their message and exit 2;
#    no PIN tried (a wrong one is in the PIN file), nothing shown as to be
#    signed, no connection made (a listening socket that sees none);
#  - a good link (https-less: http to this machine, also after "jpki:"):
#    the origin and the code shown first, the signature posted to the link
#    itself, as JSON {challenge, certificate, signature, algorithm} (read
#    by a fake gate: the signature verifies with the certificate); each
#    answer: ok with the link's code (exit 0, "signed in: go back to the
#    page"), ok of another code, not JSON (exit 4), the gate's refusals
#    (exit 1); a wrong PIN: nothing posted; no gate there: exit 4;
#  - the desktop entry: installed by `make install`, in the jpki-tools
#    package's list, the handler of jpki: links (desktop-file-validate);
#  - end to end on nginx and Apache (t/lib/JPKIServer.pm): the page's POST
#    P/device (the browser's cookies kept by curl), jpki-login --device
#    with its link, P/poll with the browser's cookies until ok, then the
#    gated application with that session; the link signed again refused;
#    a certificate of no account refused to the signer and to the page.
#    Skipped while the gate answers 404 to POST P/device.
#   make build/jpki-login all pki && prove -v t/login-device.t
# Env: JPKI_LOGIN (default build/jpki-login), JPKI_SERVERS.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Digest::SHA ();
use MIME::Base64 ();
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use JPKITest;
use JPKIApache;
use JPKIServer;

my $LOGIN   = $ENV{JPKI_LOGIN} // "$JPKITest::BUILD/jpki-login";
my $SOFTHSM = $ENV{JPKI_SOFTHSM_MODULE} // '/usr/lib/softhsm/libsofthsm2.so';

skip_unless(qw(jpkictl pki openssl));
{
    my @why;
    push @why, "$LOGIN not built (make build/jpki-login)" unless -x $LOGIN;
    push @why, "$SOFTHSM not found (apt install softhsm2)" unless -f $SOFTHSM;
    for my $t (qw(softhsm2-util pkcs11-tool curl)) {
        push @why, "$t not found" unless grep { -x "$_/$t" } split /:/, $ENV{PATH};
    }
    plan(skip_all => join '; ', @why) if @why;
}

my $dir = tmpdir();
my $PIN = 'Pw7319x';
my $t0 = time;

# ---------------------------------------------------------------- the card

# CMD with ENV, its output; the test stops when it fails.
sub setup {
    my ($env, @cmd) = @_;
    local @ENV{ keys %$env } = values %$env;
    my $out = `@{[ join ' ', map { quotemeta } @cmd ]} 2>&1`;
    BAIL_OUT("@cmd[0,1]: $out") if $? != 0;
}

# A SoftHSM token LABEL holding PKI user NAME's key and certificate (id 01).
my $HSM = "$dir/softhsm2.conf";
mkdir "$dir/tokens";
spew($HSM, "directories.tokendir = $dir/tokens\nobjectstore.backend = file\n"
     . "log.level = ERROR\n", 0600);
sub token {
    my ($label, $name) = @_;
    my %env = (SOFTHSM2_CONF => $HSM);
    setup({}, 'openssl', 'pkcs8', '-topk8', '-nocrypt', '-in', "$PKI/$name.key",
          '-out', "$dir/$name.p8");
    setup({}, 'openssl', 'x509', '-in', "$PKI/$name.pem", '-outform', 'der',
          '-out', "$dir/$name.der");
    setup(\%env, 'softhsm2-util', '--init-token', '--free', '--label', $label,
          '--so-pin', '12345678', '--pin', $PIN);
    setup(\%env, 'softhsm2-util', '--import', "$dir/$name.p8", '--token', $label,
          '--label', 'auth', '--id', '01', '--pin', $PIN);
    setup(\%env, 'pkcs11-tool', '--module', $SOFTHSM, '--token-label', $label,
          '--login', '--pin', $PIN, '--write-object', "$dir/$name.der",
          '--type', 'cert', '--id', '01', '--label', 'auth');
}
token('card', 'user1');
token('nobody', 'user2');               # mapped to no account
spew("$dir/pin", "$PIN\n", 0600);
spew("$dir/badpin", "Wr0ng-5831\n", 0600);
my @CARD = ('--module', $SOFTHSM, '--token', 'card', '--pin-file', "$dir/pin");

# jpki-login ARGS in a new session (no terminal), no input, 30 s at most
# -> {rc, out, err}
my @OUTPUT;
sub login {
    my $cmd = join ' ', map { quotemeta } 'setsid', '-w', 'timeout', '30', $LOGIN, @_;
    local $ENV{SOFTHSM2_CONF} = $HSM;
    local $ENV{JPKI_PIN};
    delete $ENV{JPKI_PIN};
    system("$cmd </dev/null >$dir/run.out 2>$dir/run.err");
    my $r = { rc => $? >> 8, out => slurp("$dir/run.out"), err => slurp("$dir/run.err") };
    push @OUTPUT, $r->{out} . $r->{err};
    return $r;
}

sub is_rc {
    my ($r, $rc, $name, $re) = @_;
    is($r->{rc}, $rc, "$name: exit $rc") or diag("stdout: $r->{out}stderr: $r->{err}");
    like($r->{err}, $re, "$name: message") if $re;
}

# ---------------------------------------------------------------- links

# A challenge shaped as the gate's (common/challenge.c): version VER,
# expiry EXP, issued for the canonical host HOST; the rest random.
sub mk_ch {
    my ($ver, $exp, $host) = @_;
    my $raw = pack('CCQ>', $ver, 1, $exp)
              . substr(Digest::SHA::sha256("jpki-challenge-host:$host"), 0, 8);
    $raw .= chr int rand 256 while length $raw < 75;
    (my $t = MIME::Base64::encode_base64($raw, '')) =~ tr{+/}{-_};
    return $t;
}

# The code of a challenge (docs/protocol.md): the first 40 bits of
# SHA-256("jpki-device-code:" C), 5 bits a character, XXXX-XXXX.
sub dev_code {
    my $bits = unpack 'B40', Digest::SHA::sha256("jpki-device-code:$_[0]");
    my $c = join '', map { substr('23456789ABCDEFGHJKLMNPQRSTUVWXYZ', oct('0b' . $_), 1) }
                     $bits =~ /(.{5})/g;
    return substr($c, 0, 4) . '-' . substr($c, 4);
}

# A socket that listens and is never answered: the runs that must not
# connect point at it, and it is looked at for connections after each.
my $trap = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1', LocalPort => 0,
                                 Proto => 'tcp', ReuseAddr => 1) or die "listen: $!";
$trap->blocking(0);
my $TRAP = '127.0.0.1:' . $trap->sockport;
sub connections { my $n = 0; while (my $c = $trap->accept) { $n++; close $c } return $n }

my $now = int time;
my $ch = mk_ch(2, $now + 120, '127.0.0.1');
my $code = dev_code($ch);
my $link = "http://$TRAP/jpki/sign?challenge=$ch&code=$code";
(my $altered = $code) =~ s/^(.)/$1 eq '2' ? '3' : '2'/e;
my %other = (bank => mk_ch(2, $now + 120, 'bank.example'),
             lh => mk_ch(2, $now + 120, 'localhost'),
             old => mk_ch(2, $now - 3600, '127.0.0.1'),
             far => mk_ch(2, $now + 86400, '127.0.0.1'),
             v1 => mk_ch(1, $now + 120, '127.0.0.1'));
my $with = sub { my ($c) = @_; return "http://$TRAP/jpki/sign?challenge=$c&code=" . dev_code($c) };
my $gate_ex = mk_ch(2, $now + 120, 'gate.example');

my @bad = (
    [ 'not a URL', 'jpki:https://', qr/--device: not a URL: "\.\.\."/ ],
    [ 'ftp://', "ftp://$TRAP/jpki/sign?challenge=$ch&code=$code", qr/--device: http:\/\/ or https:\/\/ only/ ],
    [ 'jpki:jpki:', "jpki:$link" =~ s/^/jpki:/r, qr/--device: not a URL/ ],
    [ 'plain http to another host',
      "http://gate.example/jpki/sign?challenge=$gate_ex&code=" . dev_code($gate_ex),
      qr/--device: plain http:\/\/ to gate\.example, another host than this one.*--insecure-http/ ],
    [ 'user info', "http://bank.example\@$TRAP/jpki/sign?challenge=$ch&code=$code",
      qr/--device: a login page's link has no user name or fragment/ ],
    [ 'fragment', "$link#x", qr/--device: a login page's link has no user name or fragment/ ],
    [ 'no query', "http://$TRAP/jpki/sign", qr/--device: the link has no query/ ],
    [ 'path not /sign', "http://$TRAP/jpki/login?challenge=$ch&code=$code",
      qr/--device: the link's path does not end in \/sign/ ],
    [ 'no challenge', "http://$TRAP/jpki/sign?code=$code", qr/--device: the link has no challenge/ ],
    [ 'no code', "http://$TRAP/jpki/sign?challenge=$ch", qr/--device: the link has no code/ ],
    [ 'challenge twice', "http://$TRAP/jpki/sign?challenge=$ch&challenge=$ch&code=$code",
      qr/--device: the link gives the challenge twice/ ],
    [ 'code twice', "$link&code=$code", qr/--device: the link gives the code twice/ ],
    [ 'another parameter', "$link&return_to=/x",
      qr/--device: the link's query holds "return_to"=\.\.\.: a login page's link has challenge=\.\.\.&code=\.\.\. only/ ],
    [ 'an empty parameter', "$link&", qr/--device: the link's query holds ""/ ],
    [ 'a space', "http://$TRAP/jpki/sign?challenge=$ch&code=" . ($code =~ s/-/ /r),
      qr/--device: the link holds a space, a control character or a byte that is not ASCII/ ],
    [ 'a control character', "$link\e[2J", qr/--device: the link holds a space, a control character/ ],
    [ 'a byte that is not ASCII', "$link\xc3\xa9", qr/--device: the link holds a space, a control character/ ],
    [ 'a code of 8 characters', "http://$TRAP/jpki/sign?challenge=$ch&code=" . ($code =~ s/-//r),
      qr/--device: the code has 8 characters, not 9 \(XXXX-XXXX\)/ ],
    [ 'a code altered', "http://$TRAP/jpki/sign?challenge=$ch&code=$altered",
      qr/--device: the link's code is not its challenge's \(\Q$code\E\): the link was altered; not signed/ ],
    [ 'a code in lower case', "http://$TRAP/jpki/sign?challenge=$ch&code=" . lc $code,
      qr/--device: the link's code is not its challenge's/ ],
    [ 'a challenge of 99 characters', $with->(substr $ch, 1),
      qr/--device: not signed: the challenge has 99 characters, not 100 \(the card signs nothing but a JPKI login challenge\)/ ],
    [ 'a challenge of 600 characters', "http://$TRAP/jpki/sign?challenge=" . ('A' x 600) . "&code=$code",
      qr/--device: not signed: the challenge has 600 characters, not 100/ ],
    [ 'a challenge percent-encoded', $with->(substr($ch, 0, 97) . '%41'),
      qr/--device: not signed: the challenge is not base64url text/ ],
    [ 'a challenge of another host', $with->($other{bank}),
      qr/--device: not signed: the challenge was issued for another host than 127\.0\.0\.1 \(a site passing/ ],
    [ 'a challenge of localhost at 127.0.0.1', $with->($other{lh}),
      qr/--device: not signed: the challenge was issued for another host than 127\.0\.0\.1/ ],
    [ 'a challenge expired an hour ago', $with->($other{old}),
      qr/--device: not signed: the challenge expired 36\d\d s ago by this machine's clock/ ],
    [ 'a challenge expiring in a day', $with->($other{far}),
      qr/--device: not signed: the challenge expires in 86\d\d\d s, later than a gate's ever do/ ],
    [ 'a challenge of version 1', $with->($other{v1}),
      qr/--device: not signed: the gate is older than this client/ ],
);
for my $c (@bad) {
    my ($what, $l, $re) = @$c;
    my $r = login('--device', $l, '--module', $SOFTHSM, '--token', 'card',
                  '--pin-file', "$dir/badpin");
    is_rc($r, 2, "link refused: $what", $re);
    unlike($r->{err}, qr/Sign in to|PIN/, "... $what: nothing to sign shown, no PIN tried");
    is(connections(), 0, "... $what: no connection");
}

# the option grammar
for my $c ([ 'with --url', [ '--url', "http://$TRAP/jpki" ],
             qr/--url and --device: give one of them/ ],
           [ 'with --cookie-jar', [ '--cookie-jar', "$dir/jar" ],
             qr/--cookie-jar: not with --device: the browser that shows the page gets the session/ ],
           [ 'with --account', [ '--account', 'alice' ], qr/--account: not with --device/ ],
           [ 'twice', [ '--device', $link ], qr/--device given twice/ ]) {
    my ($what, $more, $re) = @$c;
    is_rc(login('--device', $link, @CARD, @$more), 2, "--device $what", $re);
    is(connections(), 0, "... --device $what: no connection");
}
ok(!-e "$dir/jar", 'no cookie jar written');
is_rc(login(@CARD), 2, 'neither --url nor --device',
      qr/--url is required \(or --device LINK: sign a login page's link\)/);
is_rc(login('--device', '--url', "http://$TRAP/jpki", @CARD), 2, '--device without its value',
      qr/--device needs a value/);
like(login('--help')->{out}, qr/--device LINK .*\n.*jpki:https:/s, '--help tells --device');

# ---------------------------------------------------------------- a fake gate

# Answers each request with the file $dir/answer ("STATUS JSON") and keeps
# the last request in $dir/request.
my $fake_port = free_port();
my $fake = JPKITest::fork_code('fake-gate', "$dir/fake.log", sub {
    my $l = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                  LocalPort => $fake_port, ReuseAddr => 1) or die $!;
    while (my $c = $l->accept) {
        my ($req, $len) = ('', 0);
        while (defined(my $line = <$c>)) {
            $req .= $line;
            $len = $1 if $line =~ /^Content-Length:\s*(\d+)/i;
            last if $line eq "\r\n";
        }
        read($c, my $body, $len) if $len;
        spew("$dir/request", $req . ($body // ''));
        my ($st, $json) = slurp("$dir/answer") =~ /^(\d+) (.*)\z/s;
        print $c "HTTP/1.1 $st X\r\nContent-Type: application/json\r\nContent-Length: "
                 . length($json) . "\r\nConnection: close\r\n\r\n$json";
        close $c;
    }
});
wait_port($fake_port, 10, $fake) or BAIL_OUT('the fake gate does not listen');
my $FAKE = "http://127.0.0.1:$fake_port";
my $fch = mk_ch(2, $now + 300, '127.0.0.1');
my $fcode = dev_code($fch);
my $flink = "$FAKE/jpki/sign?challenge=$fch&code=$fcode";
sub answer { spew("$dir/answer", $_[0]); unlink "$dir/request" }

answer(qq(200 {"status":"ok","code":"$fcode"}));
my $r = login('--device', $flink, @CARD);
is_rc($r, 0, 'a good link, the gate says ok');
is($r->{out}, "signed in: go back to the page\n", '... "signed in: go back to the page"');
like($r->{err}, qr/\Ajpki-login: Sign in to http:\/\/127\.0\.0\.1:$fake_port with code \Q$fcode\E \(/,
     '... the origin and the code shown');
my $req = slurp("$dir/request");
like($req, qr{\APOST /jpki/sign\?challenge=\Q$fch\E&code=\Q$fcode\E HTTP/1\.1\r\n},
     '... posted to the link itself');
like($req, qr{^Content-Type: application/json\r$}m, '... as JSON');
my ($body) = $req =~ /\r\n\r\n(.*)\z/s;
my $j = json_decode($body // '') // {};
is_deeply([ sort keys %$j ], [qw(algorithm certificate challenge signature)],
          '... challenge, certificate, signature, algorithm');
is($j->{challenge}, $fch, '... the link\'s challenge');
is($j->{certificate}, MIME::Base64::encode_base64(slurp("$dir/user1.der"), ''), '... the card\'s certificate');
is($j->{algorithm}, 'rsa-pkcs1-sha256', '... rsa-pkcs1-sha256');
spew("$dir/signed.txt", $fch);
spew("$dir/sig.bin", MIME::Base64::decode_base64($j->{signature} // ''));
system("openssl x509 -in $PKI/user1.pem -pubkey -noout > $dir/pub.pem");
my $v = `openssl dgst -sha256 -verify $dir/pub.pem -signature $dir/sig.bin $dir/signed.txt 2>&1`;
like($v, qr/Verified OK/, '... the signature of the challenge verifies with the certificate');

answer(qq(200 {"status":"ok","code":"$fcode"}));
$r = login('--device', "jpki:$flink", @CARD);
is_rc($r, 0, 'the same link after jpki:');
like(slurp("$dir/request"), qr{\APOST /jpki/sign\?challenge=\Q$fch\E&code=\Q$fcode\E HTTP/1\.1\r\n},
     '... posted to the link without jpki:');

for my $c ([ 410, 'flow_unknown' ], [ 409, 'challenge_used' ], [ 403, 'account_not_mapped' ]) {
    my ($st, $reason) = @$c;
    answer(qq($st {"error":"$reason","message":"said by the gate"}));
    $r = login('--device', $flink, @CARD);
    is_rc($r, 1, "the gate refuses: $st $reason", qr/^refused: \Q$reason\E: said by the gate$/m);
    is($r->{out}, '', "... $reason: not signed in");
}
for my $c ([ 'ok for another code', '200 {"status":"ok","code":"2222-2222"}',
             qr/the gate signed in a flow of another code \(2222-2222\), not \Q$fcode\E/ ],
           [ 'ok without a code', '200 {"status":"ok"}', qr/the gate signed in a flow of another code \(none\)/ ],
           [ 'pending', '200 {"status":"pending"}', qr/HTTP 200 but not the gate's \{"status":"ok",\.\.\.\}/ ],
           [ 'not JSON', '200 <html>',
             qr/POST http:\/\/127\.0\.0\.1:$fake_port\/jpki\/sign: HTTP 200, the answer is not the gate's JSON/ ],
           [ 'an error without a reason', '502 {}', qr/HTTP 502 without a reason/ ]) {
    my ($what, $ans, $re) = @$c;
    answer($ans);
    $r = login('--device', $flink, @CARD);
    is_rc($r, 4, "the gate answers $what", $re);
    is($r->{out}, '', "... $what: not signed in");
}

answer(qq(200 {"status":"ok","code":"$fcode"}));
$r = login('--device', $flink, '--module', $SOFTHSM, '--token', 'card', '--pin-file', "$dir/badpin");
is_rc($r, 3, 'a wrong PIN', qr/Sign in to .*\n(?s:.*)PIN refused by the token "card"/);
ok(!-e "$dir/request", '... nothing posted');

my $closed = free_port();
my $cch = mk_ch(2, $now + 300, '127.0.0.1');
$r = login('--device', "http://127.0.0.1:$closed/p/sign?challenge=$cch&code=" . dev_code($cch), @CARD);
is_rc($r, 4, 'no gate at the link',
      qr/Sign in to http:\/\/127\.0\.0\.1:$closed with code .*\n(?s:.*)POST http:\/\/127\.0\.0\.1:$closed\/p\/sign: /);
stop_pid($fake, 'KILL');

# ---------------------------------------------------------------- desktop entry

my $entry = slurp("$FindBin::Bin/../tools/jpki-login.desktop");
like($entry, qr/^MimeType=x-scheme-handler\/jpki;$/m, 'desktop entry: the handler of jpki: links');
like($entry, qr/^Exec=jpki-login --device %u$/m, '... runs jpki-login --device with the link');
like($entry, qr/^Terminal=true$/m, '... in a terminal (the PIN is asked there)');
like($entry, qr/^NoDisplay=true$/m, '... not in the menus');
like(slurp("$FindBin::Bin/../debian/jpki-tools.install"),
     qr{^usr/share/applications/jpki-login\.desktop$}m, '... in the jpki-tools package');
my $out = `make -s -C $FindBin::Bin/.. install DESTDIR=$dir/root PREFIX=/usr 2>&1`;
is($? >> 8, 0, 'make install') or diag($out);
is(slurp("$dir/root/usr/share/applications/jpki-login.desktop"), $entry,
   '... installs it in /usr/share/applications');
SKIP: {
    skip 'desktop-file-validate not found (apt install desktop-file-utils)', 1
        unless grep { -x "$_/desktop-file-validate" } split /:/, $ENV{PATH};
    my $o = `desktop-file-validate $FindBin::Bin/../tools/jpki-login.desktop 2>&1`;
    is("$?: $o", '0: ', '... desktop-file-validate passes');
}

# ---------------------------------------------------------------- end to end

my @kinds = JPKIServer::kinds();
my $secret = write_secret("$dir/site.secret");
spew("$dir/map.txt", cert_id('user1', $secret) . " alice\n", 0644);

# curl ARGS -> (status, body); JAR the browser's cookies (read and written)
sub browser {
    my ($jar, @args) = @_;
    open my $p, '-|', 'curl', '-s', '-b', $jar, '-c', $jar, '-w', '\n%{http_code}', @args
        or die "curl: $!";
    local $/;
    my $o = <$p> // '';
    close $p;
    return $o =~ /\A(.*)\n(\d{3})\z/s ? ($2, $1) : (0, $o);
}

# The page's start of a flow (page.js), back to /app/x: -> (status, JSON)
sub start_flow {
    my ($base, $jar) = @_;
    spew($jar, '');
    my ($st, $b) = browser($jar, '--data', 'return_to=/app/x', '-H', 'Accept: application/json',
                           '-H', "Origin: $base", '-H', 'Sec-Fetch-Site: same-origin',
                           "$base/jpki/device");
    return ($st, json_decode($b), $b);
}

# The page's polls, every 0.2 s until an answer other than pending (10 s)
sub poll {
    my ($base, $jar, $path) = @_;
    my $end = time + 10;
    my ($st, $j, $b);
    do {
        ($st, $b) = browser($jar, '-H', 'Accept: application/json',
                            $base . ($path // '/jpki/poll'));
        $j = json_decode($b) // {};
        return ($st, $j, $b) unless $st == 200 && ($j->{status} // '') eq 'pending';
        sleep 0.2;
    } while (time < $end);
    return ($st, $j, $b);
}

for my $kind (@kinds) {
    my $srv = JPKIServer->start($kind, name => 'device', secret => $secret,
        issuer => 'card ca=@PKI@/ca2.pem crl=@PKI@/ca2.crl', store => 'shm',
        map => "$dir/map.txt", revocation => 'crl', cookie_secure => 0,
        locations => [ '/jpki/' => { endpoints => 1 }, '/app/' => { gate => 1, upstream => 1 } ]);
    my $base = $srv->base;
    my $jar = "$dir/$kind-browser.jar";
    my ($st, $j, $b) = start_flow($base, $jar);
    if ($st == 404) {
        SKIP: { skip "$kind: POST /jpki/device answers 404: this gate has no device flow yet "
                     . '(issue 11 part 3): end to end not run', 1 }
        $srv->stop;
        next;
    }
    is($st, 200, "$kind: POST /jpki/device: 200") or diag($b);
    is($j && $j->{status}, 'pending', "$kind: ... pending");
    my $url = $j && $j->{url} // '';
    my ($c) = $url =~ /\A\Q$base\E\/jpki\/sign\?challenge=([A-Za-z0-9_-]{100})&code=[2-9A-Z]{4}-[2-9A-Z]{4}\z/;
    ok($c, "$kind: ... its url is the link to P/sign") or diag($url);
    is($j->{code}, dev_code($c // ''), "$kind: ... its code is the challenge's");
    is($j->{link}, "jpki:$url", "$kind: ... its link is jpki:url");
    my $pollp = $j->{poll};
    like($pollp // '', qr{^/jpki/poll\?return_to=}, "$kind: ... its poll keeps return_to");
    like(slurp($jar), qr/\tjpki_flow\t\S+/, "$kind: ... the browser has its jpki_flow cookie");
    ($st, $b) = browser($jar, '-H', 'Accept: application/json', "$base/jpki/poll");
    is((json_decode($b) // {})->{status}, 'pending', "$kind: P/poll before the signer: pending");

    $r = login('--device', $j->{link}, @CARD);
    is_rc($r, 0, "$kind: jpki-login --device jpki:URL signs");
    is($r->{out}, "signed in: go back to the page\n", "$kind: ... signed in: go back to the page");
    like($r->{err}, qr/^jpki-login: Sign in to \Q$base\E with code \Q$j->{code}\E /m,
         "$kind: ... the gate's origin and code shown");
    ($st, $j, $b) = poll($base, $jar, $pollp);
    is($st, 200, "$kind: P/poll after: 200") or diag($b);
    is($j->{status}, 'ok', "$kind: ... ok");
    is($j->{account}, 'alice', "$kind: ... as alice");
    is($j->{return_to}, '/app/x', "$kind: ... back to the page's return_to");
    like(slurp($jar), qr/\tjpki_session\t\S+/, "$kind: ... the browser has the session cookie");
    ($st, $b) = browser($jar, $srv->url('/app/x'));
    is($st, 200, "$kind: the gated application with the browser's cookies: 200");
    like($b, qr/account=\[alice\]/, "$kind: ... as alice");

    $r = login('--device', $url, @CARD);
    is_rc($r, 1, "$kind: the link signed again", qr/^refused: (?:flow_unknown|challenge_used): /m);
    ($st, $b) = browser("$dir/$kind-other.jar", '-H', 'Accept: application/json', "$base/jpki/poll");
    is($st, 410, "$kind: P/poll without the flow cookie: 410");
    like($b, qr/"flow_unknown"/, "$kind: ... flow_unknown");

    # a certificate mapped to no account: the signer and the page are told
    ($st, $j) = start_flow($base, $jar);
    $r = login('--device', $j->{url}, '--module', $SOFTHSM, '--token', 'nobody',
               '--pin-file', "$dir/pin");
    is_rc($r, 1, "$kind: a card of no account", qr/^refused: account_not_mapped: /m);
    ($st, $j, $b) = poll($base, $jar);
    is($st, 403, "$kind: ... P/poll: 403") or diag($b);
    is($j->{error}, 'account_not_mapped', "$kind: ... account_not_mapped");
    $srv->stop;
}

my $all = join '', @OUTPUT;
unlike($all, qr/\Q$PIN\E/, 'the PIN is never printed');
unlike($all, qr/\Q$fch\E|\Q$ch\E/, 'the challenges are never printed');
unlike($all, qr/AddressSanitizer|LeakSanitizer|runtime error:/, 'no sanitizer report (JPKI_LOGIN: the ASan build)');
done_testing();
