#!/usr/bin/perl
# t/client-pkcs11.t - build/jpki-login, the client that signs in with a
# card, against real parts: SoftHSM2 tokens (keys imported with
# softhsm2-util, certificates written with OpenSC's pkcs11-tool) holding
# the test PKI's users, Debian's nginx with the module and Apache with
# mod_auth_jpki as the gate (CRL revocation, mapping file, an echo upstream
# behind a gated location).  Checks: sign-in with RSA, EC P-256 and P-384
# (a second issuer), the cookie jar used by curl -b, the PIN from a file,
# from JPKI_PIN, never from a terminal that is not there, never printed;
# each refusal with its exit status (1 gate, 2 usage, 3 token/PIN, 4
# network) and message; TLS verified (no --cacert: refused); answers no
# real gate gives (nginx `return` locations: escapes, duplicates, trailing
# bytes, over 64 KiB with and without a length); what the card signs:
# nothing but a current JPKI challenge issued for the host of --url
# (version 2: bound to a host; version 1, of an older gate, refused),
# checked before the PIN is asked; the host as curl sends it canonical as
# the gate makes it (a fake gate that binds its challenges to the Host
# header it gets: case, port, trailing dot, IPv6);
# plain http only to this machine; the last PIN try (a wrapper module
# that reports CKF_USER_PIN_FINAL_TRY, which SoftHSM never does, asked on
# a pty); JPKI_PIN gone from /proc/PID/environ while the gate answers.
#   make build/jpki-login pki && prove -v t/client-pkcs11.t
# Env: JPKI_LOGIN (default build/jpki-login; make test's second run sets
# the ASan build: then LeakSanitizer reports fail the runs).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Errno ();
use Fcntl ();
use MIME::Base64 ();
use Socket ();
use Digest::SHA ();
use IO::Socket::IP ();
use Time::HiRes qw(time);
use JPKITest;
use JPKIApache;

my $LOGIN   = $ENV{JPKI_LOGIN} // "$JPKITest::BUILD/jpki-login";
my $SOFTHSM = $ENV{JPKI_SOFTHSM_MODULE} // '/usr/lib/softhsm/libsofthsm2.so';

skip_unless(qw(nginx module jpkictl pki openssl));
{
    my @why;
    push @why, "$LOGIN not built (make build/jpki-login)" unless -x $LOGIN;
    push @why, "$SOFTHSM not found (apt install softhsm2)" unless -f $SOFTHSM;
    for my $t (qw(softhsm2-util pkcs11-tool curl)) {
        push @why, "$t not found" unless grep { -x "$_/$t" } split /:/, $ENV{PATH};
    }
    plan(skip_all => join '; ', @why) if @why;
}
my $have_apache = -x $JPKIApache::APACHE && -f $JPKIApache::APMODULE
                  && -f "$JPKIApache::MODDIR/mod_mpm_event.so";

my $dir = tmpdir();
my $PKI = $JPKITest::PKI;
my $PIN = 'Pw7319x';              # distinctive: looked for in every output
my $BADPIN = 'Wr0ng-5831';
my $t0 = time;

# ---------------------------------------------------------------- helpers

# sys(ENV, CMD...) -> (exit status, output); setup commands.
sub sys {
    my ($env, @cmd) = @_;
    my $log = "$dir/sys.log";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{$_} = $env->{$_} for keys %$env;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $log or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        exec { $cmd[0] } @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    return ($? >> 8, slurp($log));
}

sub setup {
    my ($env, @cmd) = @_;
    my ($st, $out) = sys($env, @cmd);
    BAIL_OUT("@cmd[0,1]: exit $st: $out") if $st != 0;
}

# A SoftHSM configuration (its own token directory): SOFTHSM2_CONF.
sub hsm_conf {
    my ($name) = @_;
    my $d = "$dir/hsm-$name";
    mkdir $d;
    mkdir "$d/tokens";
    spew("$d/softhsm2.conf", "directories.tokendir = $d/tokens\n"
         . "objectstore.backend = file\nlog.level = ERROR\n", 0600);
    return "$d/softhsm2.conf";
}

# token(CONF, LABEL, [key => NAME, id => HEX, label => L] | [cert => ...])
sub token {
    my ($conf, $label, @objs) = @_;
    my %env = (SOFTHSM2_CONF => $conf);
    setup(\%env, 'softhsm2-util', '--init-token', '--free', '--label', $label,
          '--so-pin', '12345678', '--pin', $PIN);
    for my $o (@objs) {
        if ($o->{key}) {
            my $p8 = "$dir/$o->{key}.p8";
            setup({}, 'openssl', 'pkcs8', '-topk8', '-nocrypt', '-in',
                  "$PKI/$o->{key}.key", '-out', $p8) unless -f $p8;
            setup(\%env, 'softhsm2-util', '--import', $p8, '--token', $label,
                  '--label', $o->{label}, '--id', $o->{id}, '--pin', $PIN);
        } else {
            my $der = -f "$PKI/$o->{cert}.der" ? "$PKI/$o->{cert}.der"
                                                : "$dir/$o->{cert}.der";
            setup({}, 'openssl', 'x509', '-in', "$PKI/$o->{cert}.pem",
                  '-outform', 'der', '-out', $der) unless -f $der;
            setup(\%env, 'pkcs11-tool', '--module', $SOFTHSM, '--token-label',
                  $label, '--login', '--pin', $PIN, '--write-object', $der,
                  '--type', 'cert', '--id', $o->{id}, '--label', $o->{label});
        }
    }
}

sub key  { my ($n, $id, $l) = @_; return { key => $n, id => $id, label => $l // 'auth' } }
sub cert { my ($n, $id, $l) = @_; return { cert => $n, id => $id, label => $l // 'auth' } }

# login(ARGS..., {env}) -> {rc, out, err, elapsed}: jpki-login in a new
# session (no controlling terminal: it can never prompt), SoftHSM as the
# module, the multi-token configuration unless env says otherwise.
my $MULTI;                        # the SoftHSM configuration of most runs
my @ALL_OUTPUT;
my $SAN_REPORTS = '';
my $n_run = 0;
# In a forked child: jpki-login ARGS with the environment ENV (undef
# values removed), no standard input, output to OUT and ERR files.
sub exec_login {
    my ($env, $out, $err, @args) = @_;
    delete $ENV{JPKI_PIN};
    $ENV{SOFTHSM2_CONF} = $env->{SOFTHSM2_CONF} // $MULTI;
    for (keys %$env) {
        if (defined $env->{$_}) { $ENV{$_} = $env->{$_} } else { delete $ENV{$_} }
    }
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', $out or POSIX::_exit(126);
    open STDERR, '>', $err or POSIX::_exit(126);
    exec { $LOGIN } $LOGIN, @args or POSIX::_exit(127);
}

sub login {
    my @args = @_;
    my $env = ref $args[-1] eq 'HASH' ? pop @args : {};
    my ($out, $err) = ("$dir/run.out", "$dir/run.err");
    my $t = time;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        POSIX::setsid();
        exec_login($env, $out, $err, @args);
    }
    # a run that hangs fails its test instead of the whole file
    my $limit = time + 30;
    while (waitpid($pid, POSIX::WNOHANG()) == 0) {
        if (time > $limit) {
            kill 'KILL', $pid;
            waitpid $pid, 0;
            $? = 255 << 8;
            spew($err, slurp($err) . "(killed after 30 s)\n");
            last;
        }
        Time::HiRes::sleep(0.01);
    }
    my $r = { rc => $? >> 8, sig => $? & 127, out => slurp($out),
              err => slurp($err), elapsed => time - $t };
    $n_run++;
    push @ALL_OUTPUT, $r->{out}, $r->{err};
    $SAN_REPORTS .= $r->{err}
        if $r->{err} =~ /AddressSanitizer|LeakSanitizer|runtime error:/;
    return $r;
}

# login_tty([REGEX => ANSWER, ...], ARGS..., {env}) -> as login, with {tty}
# what jpki-login wrote on its terminal: a pty, its controlling terminal
# (stdin stays /dev/null); each ANSWER is typed once the output since the
# previous answer matches its REGEX, in order.  undef when there is no pty.
sub login_tty {
    my ($script, @args) = @_;
    my $env = ref $args[-1] eq 'HASH' ? pop @args : {};
    my ($out, $err) = ("$dir/run.out", "$dir/run.err");
    my ($unlock, $n) = (pack('i', 0), pack('i', 0));
    sysopen(my $m, '/dev/ptmx', Fcntl::O_RDWR() | Fcntl::O_NOCTTY()) or return undef;
    ioctl($m, 0x40045431, $unlock) or return undef;          # TIOCSPTLCK
    ioctl($m, 0x80045430, $n) or return undef;               # TIOCGPTN
    my $pts = '/dev/pts/' . unpack('i', $n);
    my $t = time;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        POSIX::setsid();
        close $m;
        # a session leader opening a terminal: its controlling terminal
        sysopen(my $s, $pts, Fcntl::O_RDWR()) or POSIX::_exit(125);
        exec_login($env, $out, $err, @args);
    }
    my ($tty, $from, $st, @s) = ('', 0, undef, @$script);
    my $limit = time + 30;
    for (;;) {
        my $rin = '';
        vec($rin, fileno $m, 1) = 1;
        if (select(my $rout = $rin, undef, undef, 0.02) > 0) {
            my $buf;
            $tty .= $buf if sysread($m, $buf, 4096);
        }
        if (@s && substr($tty, $from) =~ $s[0]) {
            syswrite($m, $s[1]);
            splice @s, 0, 2;
            $from = length $tty;
        }
        if (waitpid($pid, POSIX::WNOHANG()) != 0) { $st = $?; last }
        if (time > $limit) {
            kill 'KILL', $pid;
            waitpid $pid, 0;
            $st = 255 << 8;
            spew($err, slurp($err) . "(killed after 30 s)\n");
            last;
        }
    }
    close $m;
    my $r = { rc => $st >> 8, sig => $st & 127, out => slurp($out),
              err => slurp($err), tty => $tty, elapsed => time - $t };
    $n_run++;
    push @ALL_OUTPUT, $r->{out}, $r->{err}, $tty;
    $SAN_REPORTS .= $r->{err}
        if $r->{err} =~ /AddressSanitizer|LeakSanitizer|runtime error:/;
    return $r;
}

# is_rc(RESULT, RC, NAME, [REGEX for stderr]): the exit status (stderr shown
# when it is not the one expected) and the message.
sub is_rc {
    my ($r, $rc, $name, $re) = @_;
    is($r->{rc}, $rc, "$name: exit $rc") or diag("stdout: $r->{out}stderr: $r->{err}");
    like($r->{err}, $re, "$name: message") if $re;
}

# GET URL with curl -b JAR (the jar as curl reads it) -> (status, body).
sub curl_get {
    my ($jar, $url, @more) = @_;
    open my $p, '-|', 'curl', '-s', '-b', $jar, @more, '-w', '\n%{http_code}', $url
        or die "curl: $!";
    local $/;
    my $o = <$p> // '';
    close $p;
    return $o =~ /\A(.*)\n(\d{3})\z/s ? ($2, $1) : (0, $o);
}

# ---------------------------------------------------------------- tokens

$MULTI = hsm_conf('multi');
token($MULTI, 'card',    key('user1', '01'), cert('user1', '01'));
token($MULTI, 'revoked', key('rev-keyCompromise', '01'), cert('rev-keyCompromise', '01'));
token($MULTI, 'ec',      key('user-ec', '01'), cert('user-ec', '01'));
token($MULTI, 'phone',   key('phone-user384', '01'), cert('phone-user384', '01'));
token($MULTI, 'nocert',  key('user2', '01'));
# two users' keys and certificates, and a CA certificate without a key
token($MULTI, 'two',     key('user1', '01', 'first'), cert('user1', '01', 'first'),
                     key('user2', '02', 'second'), cert('user2', '02', 'second'),
                     cert('ca2', '03', 'ca'));
# user1's certificate over user2's key (same CKA_ID)
token($MULTI, 'mismatch', key('user2', '01'), cert('user1', '01'));
# one token only, laid out like the card: the key's certificate and a CA
# certificate without a key
my $SOLO = hsm_conf('solo');
token($SOLO, 'solo', key('user1', '01'), cert('user1', '01'), cert('ca2', '03', 'ca'));

my %pinfile = (good => "$dir/pin", bad => "$dir/badpin");
spew($pinfile{good}, "$PIN\n", 0600);
spew($pinfile{bad}, "$BADPIN\n", 0600);
my @M = ('--module', $SOFTHSM);
my @P = ('--pin-file', $pinfile{good});

# ---------------------------------------------------------------- servers

my $secret = write_secret("$dir/site.secret");
my %acct = (user1 => 'alice', user2 => 'bob', 'rev-keyCompromise' => 'mallory',
            'user-ec' => 'carol', 'phone-user384' => 'dave');
spew("$dir/map.txt", join('', map { cert_id($_, $secret) . " $acct{$_}\n" } sort keys %acct),
     0644);

# TLS for one nginx server: a self-signed certificate for 127.0.0.1
my $tls_port = free_port();
setup({}, 'openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
      'ec_paramgen_curve:P-256', '-nodes', '-keyout', "$dir/tls.key", '-out',
      "$dir/tls.pem", '-days', '2', '-subj', '/CN=127.0.0.1', '-addext',
      'subjectAltName=IP:127.0.0.1');
chmod 0644, "$dir/tls.key";

# The host a gate binds a challenge to, made of the Host header it got
# (common/challenge.c): "[v6]" -> "v6", else a last ":" and 1..5 digits
# dropped; ASCII lowercase, one trailing "." dropped; '' when empty, over
# 255 bytes or not 0x21..0x7e.
sub canon_host {
    my ($h) = @_;
    if ($h =~ /^\[/) {
        return '' unless $h =~ /^\[([^\]]*)\]/;
        $h = $1;
    } elsif ($h =~ /^(.*):[0-9]{1,5}\z/s) {
        $h = $1;
    }
    $h =~ tr/A-Z/a-z/;
    $h =~ s/\.\z//;
    return $h eq '' || length $h > 255 || $h =~ /[^\x21-\x7e]/ ? '' : $h;
}
sub host_hash { substr(Digest::SHA::sha256('jpki-challenge-host:' . canon_host($_[0])), 0, 8) }

# A challenge shaped as the gate's (common/challenge.c), 75 bytes, 100
# characters of base64url: version 2, ver | key_id | expiry (8 bytes,
# big-endian) | host_hash(8) | random(25) | tag(32), bound to HOST (a Host
# header: 127.0.0.1 unless given, the fake gates' own); version 1 (older
# gates) ver | key_id | expiry | random(33) | tag(32).  VER, EXPIRY and
# HOST as given, the rest random.
sub mk_ch {
    my ($ver, $exp, $host) = @_;
    my $raw = pack('CCQ>', $ver, 1, $exp)
              . ($ver == 1 ? '' : host_hash($host // '127.0.0.1'));
    $raw .= chr int rand 256 while length $raw < 75;
    (my $t = MIME::Base64::encode_base64($raw, '')) =~ tr{+/}{-_};
    return $t;
}

# Fake gates: answers the real ones never give (escapes, nested values,
# duplicates, sizes), at /fake-NAME/{challenge,login}; challenges that are
# not the gate's (the card must not sign them).
my $now = int time;
my $CH = mk_ch(2, $now + 300);
my $LOGIN_OK = '{"status":"ok","account":"eve","expires":1795340406}';
mkdir "$dir/big";
chmod 0755, "$dir/big";
spew("$dir/big/challenge", '{"challenge":"' . $CH . '","pad":"' . ('x' x 70000) . '"}', 0644);
my %fake = (
    ok    => [ qq({"challenge":"$CH","expires":1,"algorithms":["rsa-pkcs1-sha256",{"n":[1,-2.5e3,true,null,"\\\\\\""]}]}),
               qq({"extra":{"a":[{"b":"\\ud83d\\ude00"}]},"status":"ok","account":"eve\\u001b[2J\\u00e9\\ud83d\\ude00","expires":1795340406}) ],
    evil  => [ qq({"challenge":"$CH"}),
               qq(403 {"error":"cert_revoked","message":"no\\u001b]0;owned\\u0007 way \\u009b1m"}) ],
    dup   => [ qq({"challenge":"$CH","challenge":"@{[ mk_ch(2, $now + 300) ]}"}) ],
    notb64 => [ '{"challenge":"' . ('A' x 96) . 'A/+="}' ],
    trail => [ qq({"challenge":"$CH"} x) ],
    half  => [ qq({"challenge":"$CH"}), '{"status":"ok"}' ],
    html  => [ qq({"challenge":"$CH"}), '502 <html>bad gateway</html>' ],
    # what a malicious gate would have the card sign; the login locations
    # answer ok: a signature posted there would show as exit 0
    text    => [ '{"challenge":"transfer-100000-yen-to-account-1234567"}', $LOGIN_OK ],
    zeros   => [ '{"challenge":"' . ('A' x 100) . '"}', $LOGIN_OK ],
    ver3    => [ '{"challenge":"' . mk_ch(3, $now + 300) . '"}', $LOGIN_OK ],
    # an older gate's challenge, bound to no host; and a site passing on
    # another site's (a real-shaped challenge of bank.example's gate)
    ver1    => [ '{"challenge":"' . mk_ch(1, $now + 300) . '"}', $LOGIN_OK ],
    bank    => [ '{"challenge":"' . mk_ch(2, $now + 300, 'bank.example') . '"}', $LOGIN_OK ],
    # issued for localhost: taken at http://LOCALHOST:PORT, not at 127.0.0.1
    lh      => [ '{"challenge":"' . mk_ch(2, $now + 300, 'localhost') . '"}', $LOGIN_OK ],
    expired => [ '{"challenge":"' . mk_ch(2, $now - 3600) . '"}', $LOGIN_OK ],
    future  => [ '{"challenge":"' . mk_ch(2, $now + 86400) . '"}', $LOGIN_OK ],
    # real-shaped: our clock 60 s ahead of the gate's (taken, then a new
    # one asked once the PIN is in), and a gate's longest challenge_ttl
    skew    => [ '{"challenge":"' . mk_ch(2, $now - 60) . '"}', $LOGIN_OK ],
    longttl => [ '{"challenge":"' . mk_ch(2, $now + 3500) . '"}', $LOGIN_OK ],
);
my $fake = join '', map {
    my ($c, $l) = @{ $fake{$_} };
    my $lst = defined $l && $l =~ s/^(\d{3}) // ? $1 : 200;
    "        location = /fake-$_/challenge { default_type application/json; return 200 '$c'; }\n"
    . (defined $l ? "        location = /fake-$_/login { default_type application/json; return $lst '$l'; }\n" : '')
} sort keys %fake;
# the same big answer with a length (curl stops it) and chunked (sub_filter
# drops the length: the client's own bound stops it)
$fake .= "        location /fake-big/ { alias $dir/big/; default_type application/json; }\n"
       . "        location /fake-chunked/ { alias $dir/big/; default_type application/json;\n"
       . "            sub_filter_types application/json; sub_filter pad pad; }\n";

my $ng = JPKITest::Nginx->start(name => 'nginx', workers => 1, http => <<"EOF");
    jpki_secret_file $secret;
    jpki_issuer card ca=\@PKI\@/ca2.pem crl=\@PKI\@/ca2.crl;
    jpki_issuer phone ca=\@PKI\@/phone-ca.pem crl=\@PKI\@/phone-ca.crl;
    jpki_store shm zone=jpki:1m;
    jpki_map_file $dir/map.txt;
    jpki_revocation crl;
    server {
        listen 127.0.0.1:\@PORT\@;
        jpki_cookie_secure off;
        location /jpki/  { jpki_endpoints; }
        location /app/   { jpki on; proxy_pass http://127.0.0.1:\@UP\@; }
        location /plain/ { return 200 "not the gate\\n"; }
$fake
    }
    server {
        listen 127.0.0.1:$tls_port ssl;
        ssl_certificate $dir/tls.pem;
        ssl_certificate_key $dir/tls.key;
        location /jpki/  { jpki_endpoints; }
        location /app/   { jpki on; proxy_pass http://127.0.0.1:\@UP\@; }
    }
EOF

my $ap;
$ap = JPKIApache::Server->start(name => 'apache', children => 1, main => <<"EOF") if $have_apache;
JPKISecretFile $secret
JPKIIssuer card ca=\@PKI\@/ca2.pem crl=\@PKI\@/ca2.crl
JPKIIssuer phone ca=\@PKI\@/phone-ca.pem crl=\@PKI\@/phone-ca.crl
JPKIStore shm size=1M
JPKIMapFile $dir/map.txt
JPKIRevocation crl
JPKICookieSecure Off
@{[ ap_gate_conf() ]}
EOF

# ---------------------------------------------------------------- per server

# The same sign-ins and refusals at either gate.
sub server_checks {
    my ($name, $srv, $not_gate) = @_;
    my $url = $srv->url('/jpki');
    my $jar = "$dir/$name.jar";

    # the gate is on: no cookie, no entry
    my ($st) = curl_get('/dev/null', $srv->url('/app/x'));
    is($st, 401, "$name: /app/ without a session: 401");

    # RSA card, PIN from a file, cookie jar
    spew($jar, "old\n", 0644);           # replaced, and made private
    my $r = login('--url', $url, @M, '--token', 'card', @P, '--cookie-jar', $jar);
    is_rc($r, 0, "$name: card (RSA), --pin-file");
    like($r->{out}, qr/\Aaccount=alice expires=(\d{10})\n\z/, "$name: prints account and expiry");
    my ($exp) = $r->{out} =~ /expires=(\d+)/;
    ok($exp && $exp > time && $exp < time + 9 * 3600, "$name: expiry within the session lifetime");
    is($r->{err}, '', "$name: nothing on stderr");
    is((stat $jar)[2] & 07777, 0600, "$name: cookie jar mode 0600");
    my $j = slurp($jar);
    like($j, qr/^# Netscape HTTP Cookie File/, "$name: jar in Netscape format");
    like($j, qr/^(?:#HttpOnly_)?127\.0\.0\.1\t\S+\t\/\t\S+\t\d+\tjpki_session\t\S+\n/m,
         "$name: jar holds the session cookie");
    my ($cookie) = $j =~ /jpki_session\t(\S+)/;
    ok($cookie && index($r->{out} . $r->{err}, $cookie) < 0, "$name: the cookie value is not printed");
    my ($gst, $body) = curl_get($jar, $srv->url('/app/x'));
    is($gst, 200, "$name: curl -b jar: the gated request passes");
    like($body, qr/account=\[alice\]/, "$name: the upstream gets the account header");

    # PIN from JPKI_PIN, verbose: steps, never the PIN
    $r = login('--url', $url, @M, '--token', 'card', '--verbose', { JPKI_PIN => $PIN });
    is_rc($r, 0, "$name: PIN from JPKI_PIN");
    like($r->{out}, qr/\Aaccount=alice /, "$name: JPKI_PIN: signed in as alice");
    like($r->{err}, qr/RSA 2048 key.*issuer .*O = JPKI/, "$name: --verbose: key type and issuer");
    like($r->{err}, qr/signed with rsa-pkcs1-sha256: 256 bytes/, "$name: --verbose: algorithm");

    # wrong PIN
    $r = login('--url', $url, @M, '--token', 'card', '--pin-file', $pinfile{bad}, '--verbose');
    is_rc($r, 3, "$name: wrong PIN", qr/PIN refused by the token "card"/);
    unlike($r->{out} . $r->{err}, qr/\Q$BADPIN\E/, "$name: the wrong PIN is not printed");
    unlike($r->{out}, qr/account=/, "$name: wrong PIN: not signed in");

    # refusals by the gate
    $r = login('--url', $url, @M, '--token', 'revoked', @P);
    is_rc($r, 1, "$name: revoked certificate", qr/^refused: cert_revoked: \S/m);
    is($r->{out}, '', "$name: revoked: nothing on stdout");
    $r = login('--url', $url, @M, '--token', 'card', @P, '--account', 'bob');
    is_rc($r, 1, "$name: --account bob with alice's card", qr/^refused: account_mismatch: \S/m);
    $r = login('--url', $url, @M, '--token', 'card', @P, '--account', 'alice');
    is_rc($r, 0, "$name: --account alice with alice's card");

    # EC: card user with P-256, smartphone issuer with P-384
    $r = login('--url', $url, @M, '--token', 'ec', @P, '--verbose');
    is_rc($r, 0, "$name: EC P-256 card user");
    like($r->{out}, qr/\Aaccount=carol /, "$name: EC P-256: signed in as carol");
    like($r->{err}, qr/EC P-256 key.*signed with ecdsa-sha256/s, "$name: EC P-256: ecdsa-sha256");
    $r = login('--url', $url, @M, '--token', 'phone', @P, '--verbose');
    is_rc($r, 0, "$name: EC P-384 under the phone issuer");
    like($r->{out}, qr/\Aaccount=dave /, "$name: P-384: signed in as dave");
    like($r->{err}, qr/EC P-384 key.*signed with ecdsa-sha384/s, "$name: P-384: ecdsa-sha384");

    # another digest, chosen
    $r = login('--url', $url, @M, '--token', 'card', @P, '--algorithm', 'rsa-pkcs1-sha512');
    is_rc($r, 0, "$name: --algorithm rsa-pkcs1-sha512");

    # several certificates with keys: --id / --label choose
    $r = login('--url', $url, @M, '--token', 'two', @P, '--id', '02');
    is_rc($r, 0, "$name: --id 02 on a two-user token");
    like($r->{out}, qr/\Aaccount=bob /, "$name: --id 02: signed in as bob");
    $r = login('--url', $url, @M, '--token', 'two', @P, '--label', 'first');
    like($r->{out}, qr/\Aaccount=alice /, "$name: --label first: signed in as alice");

    # an answer that is not the gate's JSON
    $r = login('--url', $srv->url($not_gate), @M, '--token', 'card', @P);
    is_rc($r, 4, "$name: --url not the gate ($not_gate)",
          qr/not the gate's JSON \(is --url the gate's endpoint prefix\?\)/);
}

my $before = Test::More->builder->current_test;
server_checks('nginx', $ng, '/plain');
my $per_server = Test::More->builder->current_test - $before;
SKIP: {
    skip 'apache2 or build/mod_auth_jpki.so missing', $per_server unless $ap;
    server_checks('apache', $ap, '/nothing');
}

my $url = $ng->url('/jpki');
my $r;

# ---------------------------------------------------------------- fake gates

my @C = (@M, '--token', 'card', @P);
$r = login('--url', $ng->url('/fake-ok'), @C);
is_rc($r, 0, 'fake gate: nested values skipped, escapes decoded');
is($r->{out}, "account=eve?[2J\x{c3}\x{a9}\x{f0}\x{9f}\x{98}\x{80} expires=1795340406\n",
   '... the account printed without its control character, UTF-8 kept');
$r = login('--url', $ng->url('/fake-ok'), @C, '--cookie-jar', "$dir/fake.jar");
is_rc($r, 4, 'fake gate: signed in without a cookie, --cookie-jar', qr/the gate set no cookie/);
ok(!-e "$dir/fake.jar", '... no jar written');
$r = login('--url', $ng->url('/fake-evil'), @C);
is_rc($r, 1, 'fake gate: refusal with control characters',
      qr/^refused: cert_revoked: no\?\]0;owned\? way \?1m$/m);
unlike($r->{err}, qr/[\x00-\x08\x0b-\x1f\x7f]|\xc2\x9b/, '... none reaches the terminal');
my $not_json = qr/GET \S+\/challenge: HTTP 200, the answer is not the gate's JSON/;
for my $c ([ dup => 'a field given twice', $not_json ],
           [ trail => 'bytes after the JSON object', $not_json ],
           [ notb64 => 'a challenge that is not base64url', qr/the challenge is not base64url text/ ],
           [ half => 'login 200 without account and expiry', qr/HTTP 200 but not the gate's/ ],
           [ html => 'login 502 in HTML', qr/HTTP 502, the answer is not the gate's JSON/ ],
           [ big => 'an answer over 64 KiB', qr/the answer is larger than 65536 bytes/ ],
           [ chunked => 'a chunked answer over 64 KiB', qr/the answer is larger than 65536 bytes/ ]) {
    my ($n, $what, $re) = @$c;
    is_rc(login('--url', $ng->url("/fake-$n"), @C), 4, "fake gate: $what", $re);
}

# The card signs a current JPKI challenge and nothing else; refused before
# the PIN is asked.  The PIN file holds a wrong PIN: tried, it would end the
# run with exit 3 (and use a try); a signature would sign in (exit 0).
my $text = 'transfer-100000-yen-to-account-1234567';
for my $c ([ text => 'an arbitrary text', qr/the challenge has ${\ length $text} characters, not 100/ ],
           [ zeros => "100 characters that are no challenge ('A' x 100)",
             qr/the challenge is of version 0, not 2/ ],
           [ ver3 => 'a challenge of version 3', qr/the challenge is of version 3, not 2/ ],
           [ expired => 'a challenge expired an hour ago',
             qr/the challenge expired 36\d\d s ago by this machine's clock \(300 s of clock skew allowed\)/ ],
           [ future => 'a challenge expiring in a day',
             qr/the challenge expires in 86\d\d\d s, later than a gate's ever do \(3600 s, and 300 s of clock skew\)/ ]) {
    my ($n, $what, $re) = @$c;
    $r = login('--url', $ng->url("/fake-$n"), @M, '--token', 'card', '--pin-file', $pinfile{bad});
    is_rc($r, 4, "not signed: $what",
          qr/^jpki-login: GET \S+\/fake-$n\/challenge: not signed: $re \(the card signs nothing but a JPKI login challenge\)$/m);
    unlike($r->{err}, qr/PIN/, "... the PIN was not tried");
}
my $gets = sub {
    my ($n) = @_;
    return scalar(() = slurp("$ng->{dir}/access.log") =~ m{"GET /fake-\Q$n\E/challenge }g);
};
$r = login('--url', $ng->url('/fake-skew'), @C, '--verbose');
is_rc($r, 0, 'a challenge expired 60 s ago by our clock (ahead of the gate\'s): taken',
      qr/the challenge has expired, or nearly, by this machine's clock: a new one/);
is($gets->('skew'), 2, '... and a new one asked once the PIN is in');
$r = login('--url', $ng->url('/fake-longttl'), @C);
is_rc($r, 0, "a challenge valid for 3500 s (a gate's challenge_ttl goes to 3600): taken");
is($gets->('longttl'), 1, '... asked once');

# A challenge is bound to the host it was asked at (version 2): one of
# another host, or of an older gate (bound to none), is refused before the
# PIN is asked (the wrong PIN file again: tried, exit 3).
my $other = qr/not signed: the challenge was issued for another host than 127\.0\.0\.1 \(a site passing on another site's challenge\?\)$/m;
$r = login('--url', $ng->url('/fake-bank'), @M, '--token', 'card', '--pin-file', $pinfile{bad});
is_rc($r, 4, "not signed: bank.example's challenge passed on by the gate at 127.0.0.1",
      qr/^jpki-login: GET \S+\/fake-bank\/challenge: $other/);
unlike($r->{err}, qr/PIN/, '... the PIN was not tried');
$r = login('--url', $ng->url('/fake-ver1'), @M, '--token', 'card', '--pin-file', $pinfile{bad});
is_rc($r, 4, 'not signed: a challenge of version 1 (an older gate)',
      qr/^jpki-login: GET \S+\/fake-ver1\/challenge: not signed: the gate is older than this client: it issues challenges of version 1, not bound to a host, .*upgrade the gate$/m);
unlike($r->{err}, qr/PIN/, '... the PIN was not tried');
$r = login('--url', $ng->url('/fake-lh'), @M, '--token', 'card', '--pin-file', $pinfile{bad});
is_rc($r, 4, "not signed: localhost's challenge at 127.0.0.1 (no name resolved to decide)", $other);
unlike($r->{err}, qr/PIN/, '... the PIN was not tried');
$r = login('--url', 'http://LOCALHOST:' . $ng->port . '/fake-lh', @C);
is_rc($r, 0, "localhost's challenge at http://LOCALHOST:PORT (case, port): signed");

# A fake gate as the real one binds its challenges: to the Host header it
# got (canon_host), whatever it is; the Host headers logged.  ADDR
# 127.0.0.1 or ::1; undef when it cannot listen there.
sub host_gate {
    my ($addr) = @_;
    my $sock = IO::Socket::IP->new(Listen => 16, LocalHost => $addr, LocalPort => 0,
                                   ReuseAddr => 1) or return undef;
    my $log = "$dir/host-gate-" . ($addr =~ tr/:/_/r) . '.log';
    spew($log, '', 0644);
    my $pid = JPKITest::fork_code("host gate $addr", "$log.err", sub {
        while (my $c = $sock->accept) {
            local $/ = "\r\n";
            my ($req, %h) = (scalar <$c> // '');
            while (defined(my $l = <$c>)) {
                last if $l eq "\r\n";
                $h{lc $1} = $2 if $l =~ /^([^:]+):\s*(.*?)\r\n\z/;
            }
            read($c, my $body, $h{'content-length'}) if $h{'content-length'};
            my $host = $h{host} // '';
            open my $fh, '>>', $log;
            print $fh "$host\n";
            close $fh;
            my $a = $req =~ m{/challenge } ? '{"challenge":"' . mk_ch(2, time + 300, $host) . '"}'
                                           : $LOGIN_OK;
            print $c "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     . length($a) . "\r\nConnection: close\r\n\r\n$a";
            close $c;
        }
    });
    my $port = $sock->sockport;
    close $sock;
    return { pid => $pid, port => $port, log => $log };
}
my $hg = host_gate('127.0.0.1');
my $hosts = sub { my $l = slurp($hg->{log}); spew($hg->{log}, '', 0644); return $l };
for my $c ([ "http://127.0.0.1:$hg->{port}/jpki", "127.0.0.1:$hg->{port}", 'the port dropped' ],
           [ "http://LocalHost:$hg->{port}/jpki", "LocalHost:$hg->{port}", 'case' ]) {
    my ($u, $h, $what) = @$c;
    $r = login('--url', $u, @C);
    is_rc($r, 0, "a gate that binds to the Host header, $u: signed ($what)");
    is($hosts->(), "$h\n$h\n", "... Host: $h");
}
# a trailing dot: a name that is not resolved here, the fake gate as the
# proxy (curl sends the same Host header); another host than this
# machine's spelling: --insecure-http
$r = login('--url', "http://LOCALHOST.:$hg->{port}/jpki", @C, '--insecure-http',
           { http_proxy => "http://127.0.0.1:$hg->{port}", no_proxy => undef, NO_PROXY => undef });
is_rc($r, 0, "a gate that binds to the Host header, http://LOCALHOST.:PORT (through a proxy): signed (a trailing dot)");
is($hosts->(), "LOCALHOST.:$hg->{port}\n" x 2, "... Host: LOCALHOST.:$hg->{port}");
JPKITest::stop_pid($hg->{pid}, 'TERM', 5);
SKIP: {
    my $h6 = host_gate('::1');
    skip 'cannot listen on [::1]', 4 unless $h6;
    for my $u ("http://[::1]:$h6->{port}/jpki", "http://[0:0:0:0:0:0:0:1]:$h6->{port}/jpki") {
        $r = login('--url', $u, @C);
        is_rc($r, 0, "a gate that binds to the Host header, $u: signed (IPv6)");
        is(slurp($h6->{log}), "[::1]:$h6->{port}\n" x 2, "... Host: [::1]:$h6->{port}");
        spew($h6->{log}, '', 0644);
    }
    JPKITest::stop_pid($h6->{pid}, 'TERM', 5);
}

# ---------------------------------------------------------------- token side


# the only token, the only certificate with a key (the CA one has none)
$r = login('--url', $url, @M, @P, { SOFTHSM2_CONF => $SOLO });
is_rc($r, 0, 'one token, no --token, no --id: signed in');
like($r->{out}, qr/\Aaccount=alice /, '... with the certificate that has a key');

$r = login('--url', $url, @M, @P);
is_rc($r, 2, 'several tokens without --token', qr/choose one with --token LABEL/);
ok(!grep({ $r->{err} !~ /"$_"/ } qw(card revoked ec phone nocert two mismatch)),
   '... their labels are listed');
$r = login('--url', $url, @M, @P, '--token', 'nosuch');
is_rc($r, 3, '--token naming no token', qr/no token labelled "nosuch"; tokens: .*"card"/);

$r = login('--url', $url, @M, @P, '--token', 'two');
is_rc($r, 2, 'two certificates with keys, no --id', qr/choose one with --id HEX or --label LABEL/);
ok($r->{err} =~ /id=01 label="first"/ && $r->{err} =~ /id=02 label="second"/, '... both are listed');
unlike($r->{err}, qr/id=03/, '... not the CA certificate without a key');
$r = login('--url', $url, @M, @P, '--token', 'two', '--id', '03');
is_rc($r, 3, '--id of a certificate without a key', qr/certificate id=03 label="ca" has no private key/);
$r = login('--url', $url, @M, @P, '--token', 'two', '--id', '09');
is_rc($r, 3, '--id naming nothing', qr/no certificate with id "09"/);
$r = login('--url', $url, @M, @P, '--token', 'nocert');
is_rc($r, 3, 'a key but no certificate', qr/has a private key but no certificate/);
$r = login('--url', $url, @M, @P, '--token', 'mismatch');
is_rc($r, 3, "a certificate over another user's key",
      qr/does not verify with the certificate id=01.*do not match/);

$r = login('--url', $url, '--module', "$dir/nosuch.so", @P);
is_rc($r, 3, 'module path that does not exist', qr/cannot load the PKCS#11 module .*nosuch\.so/);
my ($libz) = grep { -f } qw(/lib/x86_64-linux-gnu/libz.so.1 /usr/lib/x86_64-linux-gnu/libz.so.1);
SKIP: {
    skip 'no libz.so.1 to load', 2 unless $libz;
    $r = login('--url', $url, '--module', $libz, @P);
    is_rc($r, 3, 'a library that is not a PKCS#11 module', qr/is not a PKCS#11 module/);
}

# PIN sources and bounds
$r = login('--url', $url, @M, '--token', 'card');
is_rc($r, 2, 'no PIN file, no JPKI_PIN, no terminal', qr/no PIN: give --pin-file FILE or JPKI_PIN/);
$r = login('--url', $url, @M, '--token', 'card', { JPKI_PIN => '12' });
is_rc($r, 3, 'PIN shorter than the token takes', qr/PIN is too short .*not tried, no try used/);
$r = login('--url', $url, @M, '--token', 'card', '--pin-file', "$dir/nosuch");
is_rc($r, 2, 'unreadable --pin-file', qr/cannot read the PIN file/);
spew("$dir/emptypin", "\n", 0600);
$r = login('--url', $url, @M, '--token', 'card', '--pin-file', "$dir/emptypin");
is_rc($r, 2, 'empty PIN file', qr/first line is empty/);
spew("$dir/pin-crlf", "$PIN\r\nsecond line\n", 0600);
$r = login('--url', $url, @M, '--token', 'card', '--pin-file', "$dir/pin-crlf");
is_rc($r, 0, 'PIN file: the first line (CRLF)');
$r = login('--url', $url, @M, '--token', 'card', '--pin', $PIN);
is_rc($r, 2, 'no --pin option (never on the command line)', qr/unknown option "--pin"/);

# the PIN on the terminal: asked there, never echoed
$r = login_tty([ qr/PIN for token "card": \z/ => "$PIN\n" ], '--url', $url, @M, '--token', 'card');
SKIP: {
    skip 'no pty', 13 unless $r;
    is_rc($r, 0, 'PIN on the terminal');
    like($r->{tty}, qr/\APIN for token "card": \r?\n\z/, '... asked there, not echoed');
    $r = login_tty([ qr/PIN for token "card": \z/ => "\n" ], '--url', $url, @M, '--token', 'card');
    like($r->{err}, qr/no PIN entered/, 'an empty PIN on the terminal: refused');
    $r = login_tty([ qr/PIN for token "card": \z/ => ('9' x 300) . "\n" ], '--url', $url, @M,
                   '--token', 'card');
    like($r->{err}, qr/the PIN is longer than 255 characters/, 'a PIN over 255 characters: refused');
    isnt($r->{rc}, 0, '... not signed in');

    # The last PIN try.  SoftHSM never reports CKF_USER_PIN_FINAL_TRY (it
    # sets COUNT_LOW after a wrong PIN and never locks): a wrapper module
    # over SoftHSM reports it and logs each C_Login.
    spew("$dir/finaltry.c", <<'EOC', 0644);
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <p11-kit/pkcs11.h>
static CK_FUNCTION_LIST mine;
static CK_FUNCTION_LIST_PTR real;
static CK_RV token_info(CK_SLOT_ID s, CK_TOKEN_INFO_PTR i)
{
    CK_RV rv = real->C_GetTokenInfo(s, i);
    if (rv == CKR_OK)
        i->flags |= CKF_USER_PIN_FINAL_TRY;
    return rv;
}
static CK_RV login(CK_SESSION_HANDLE h, CK_USER_TYPE u, CK_UTF8CHAR_PTR pin,
                   CK_ULONG n)
{
    FILE *f = fopen(getenv("SHIM_LOG"), "a");
    if (f != NULL) {
        fputs("C_Login\n", f);
        fclose(f);
    }
    return real->C_Login(h, u, pin, n);
}
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR pp)
{
    void *dl = dlopen(getenv("SHIM_REAL"), RTLD_NOW | RTLD_LOCAL);
    CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR);
    CK_RV rv;
    if (dl == NULL || (*(void **)&get = dlsym(dl, "C_GetFunctionList")) == NULL)
        return CKR_GENERAL_ERROR;
    if ((rv = get(&real)) != CKR_OK)
        return rv;
    mine = *real;
    mine.C_GetTokenInfo = token_info;
    mine.C_Login = login;
    *pp = &mine;
    return CKR_OK;
}
EOC
    my $p11 = `pkg-config --cflags p11-kit-1 2>/dev/null` || '-I/usr/include/p11-kit-1';
    my ($st, $o) = sys({}, 'cc', '-shared', '-fPIC', split(' ', $p11), '-o', "$dir/finaltry.so",
                       "$dir/finaltry.c", '-ldl');
    skip "cannot build the wrapper module: $o", 5 if $st;
    my $flog = "$dir/finaltry.log";
    my %F = (SHIM_REAL => $SOFTHSM, SHIM_LOG => $flog);
    my @F = ('--url', $url, '--module', "$dir/finaltry.so", '--token', 'card');
    my $logins = sub { my $k = () = slurp($flog) =~ /C_Login/g; unlink $flog; return $k };
    unlink $flog;
    $r = login(@F, @P, \%F);
    is_rc($r, 3, 'last PIN try, --pin-file: refused',
          qr/token "card" has one PIN try left: a wrong PIN locks it .*municipal office\)\.  Not tried: check the PIN, then run again with --final-pin-try/);
    is($logins->(), 0, '... C_Login not called');
    $r = login(@F, { %F, JPKI_PIN => $PIN });
    is_rc($r, 3, 'last PIN try, JPKI_PIN: refused', qr/one PIN try left.*--final-pin-try/);
    is($logins->(), 0, '... C_Login not called');
    $r = login(@F, @P, '--final-pin-try', \%F);
    is_rc($r, 0, 'last PIN try, --pin-file, --final-pin-try: signed in',
          qr/warning: one try left before the PIN locks/);
    is($logins->(), 1, '... one C_Login');
    $r = login_tty([ qr/\[y\/N\] \z/ => "n\n" ], @F, \%F);
    is_rc($r, 3, 'last PIN try on the terminal, answered n',
          qr/the last PIN try of token "card" was not confirmed: not tried/);
    like($r->{tty}, qr/Token "card" has ONE PIN try left: a wrong PIN locks it .*\n.*Try the PIN\? \[y\/N\] /,
         '... asked on the terminal');
    unlike($r->{tty}, qr/PIN for token/, '... the PIN not asked');
    is($logins->(), 0, '... C_Login not called');
    $r = login_tty([ qr/\[y\/N\] \z/ => "yesyesyes\n" ], @F, \%F);
    is_rc($r, 3, 'last PIN try, an answer too long for a yes: not tried',
          qr/was not confirmed: not tried/);
    is($logins->(), 0, '... C_Login not called');
    $r = login_tty([ qr/\[y\/N\] \z/ => "y\n", qr/PIN for token "card": \z/ => "$PIN\n" ], @F, \%F);
    is_rc($r, 0, 'last PIN try on the terminal, answered y, then the PIN: signed in');
    is($logins->(), 1, '... one C_Login');
}

# after the wrong PINs: the token says so; a good PIN clears it
$r = login('--url', $url, @M, '--token', 'card', '--pin-file', $pinfile{bad});
is($r->{rc}, 3, 'wrong PIN again');
$r = login('--url', $url, @M, '--token', 'card', @P);
is_rc($r, 0, 'good PIN after a wrong one', qr/warning: a wrong PIN was entered since the last good one/);

# ---------------------------------------------------------------- usage

for my $c (
    [ 'no --url',            [ @M, @P ],                              qr/--url is required/ ],
    [ '--id and --label',    [ '--url', $url, '--id', '01', '--label', 'a' ], qr/give one of them/ ],
    [ '--id not hex',        [ '--url', $url, '--id', '0g' ],         qr/--id: hex digits/ ],
    [ '--id odd length',     [ '--url', $url, '--id', '1' ],          qr/--id: hex digits/ ],
    [ '--timeout 0',         [ '--url', $url, '--timeout', '0' ],     qr/--timeout: seconds/ ],
    [ '--algorithm unknown', [ '--url', $url, '--algorithm', 'rsa-pkcs1-sha1' ], qr/--algorithm: rsa-pkcs1-sha256/ ],
    [ 'ftp URL',             [ '--url', 'ftp://127.0.0.1/jpki' ],     qr/http:\/\/ or https:\/\/ only/ ],
    [ 'URL with a query',    [ '--url', "$url?x=1" ],                 qr/no query or fragment/ ],
    [ 'a host of 300 characters (no challenge bound to it)',
      [ '--url', 'https://' . ('a' x 300) . '/jpki' ],                qr/--url: the host "a+" is empty, longer than 255 characters or not plain ASCII: no challenge can be bound to it/ ],
    [ 'option twice',        [ '--url', $url, '--url', $url ],        qr/--url given twice/ ],
    [ '--cacert unreadable', [ '--url', $url, '--cacert', "$dir/nosuch.pem" ], qr/--cacert: cannot read/ ],
    [ 'cookie jar in a missing directory',
      [ '--url', $url, @M, '--token', 'card', '--pin-file', $pinfile{bad}, '--cookie-jar', "$dir/no/dir/jar" ],
      qr/--cookie-jar: cannot create/ ],
) {
    my ($name, $args, $re) = @$c;
    is_rc(login(@$args), 2, $name, $re);
}
$r = login('--url', $url, @M, '--token', 'card', @P, '--algorithm', 'ecdsa-sha256');
is_rc($r, 2, '--algorithm of the other key type', qr/does not fit the certificate's RSA key/);
$r = login('--help');
is_rc($r, 0, '--help');
like($r->{out}, qr/Exit status: 0 signed in; 1 refused/, '--help documents the exit status');
ok(!-e "$dir/no", 'no cookie jar left behind');
is_deeply([ grep { /\.jar\.\w{6}\z/ } glob("$dir/*") ], [], 'no temporary jar left behind');

# ---------------------------------------------------------------- network

my $down = free_port();
$r = login('--url', "http://127.0.0.1:$down/jpki", @M, '--token', 'card', @P);
is_rc($r, 4, 'nobody listening', qr/GET http:\/\/127\.0\.0\.1:$down\/jpki\/challenge: .*(?:connect|refused)/i);
my $hole = JPKITest::BlackHole->start;
$r = login('--url', 'http://127.0.0.1:' . $hole->port . '/jpki', @M, '--token', 'card', @P,
           '--timeout', '1');
is_rc($r, 4, 'a server that never answers, --timeout 1', qr/timed out \(--timeout\)/);
ok($r->{elapsed} < 5, sprintf('... within the timeout (%.1f s)', $r->{elapsed}));

# JPKI_PIN is gone from /proc/PID/environ while the gate answers (root
# reads it there; the same user cannot: the process is not dumpable)
{
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        POSIX::setsid();
        $ENV{SOFTHSM2_CONF} = $MULTI;
        $ENV{JPKI_PIN} = $PIN;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$dir/run.out" or POSIX::_exit(126);
        open STDERR, '>', "$dir/run.err" or POSIX::_exit(126);
        exec { $LOGIN } $LOGIN, '--url', 'http://127.0.0.1:' . $hole->port . '/jpki', @M,
            '--token', 'card', '--timeout', '10' or POSIX::_exit(127);
    }
    Time::HiRes::sleep(1);            # the token opened, the gate asked
    my $waiting = waitpid($pid, POSIX::WNOHANG()) == 0;
    my $environ = '';
    my $readable = open(my $fh, '<', "/proc/$pid/environ");
    my $errno = $! + 0;
    if ($readable) { local $/; $environ = <$fh> // ''; close $fh }
    if ($waiting) { kill 'TERM', $pid; waitpid $pid, 0 }
    ok($waiting, 'JPKI_PIN: jpki-login waits for the gate');
    if ($readable) {
        like($environ, qr/(?:\A|\0)SOFTHSM2_CONF=/, '... its /proc/PID/environ read');
        unlike($environ, qr/\Q$PIN\E/, '... the PIN is not in it');
    } else {
        is($errno, Errno::EACCES(), '... its /proc/PID/environ cannot be read (not dumpable)');
        pass('... so the PIN cannot be read there');
    }
}
$hole->stop;

# plain http: to this machine (127.0.0.0/8, ::1, localhost) only, unless
# --insecure-http
$r = login('--url', 'http://192.0.2.1/jpki', @M, '--token', 'card', @P);
is_rc($r, 2, 'http:// to another host: refused',
      qr/--url: plain http:\/\/ to 192\.0\.2\.1, another host than this one: anyone on the network path could swap the gate's challenge for another gate's and keep the card's signature \(a login as you at that gate\).*--insecure-http/);
$r = login('--url', 'http://192.0.2.1:9/jpki', @M, '--token', 'card', @P, '--insecure-http',
           '--timeout', '1');
is_rc($r, 4, '... with --insecure-http: tried',
      qr/\Ajpki-login: warning: --insecure-http: plain http to 192\.0\.2\.1: .*\njpki-login: GET http:\/\/192\.0\.2\.1:9\/jpki\/challenge: /);
$r = login('--url', 'http://localhost:' . $ng->port . '/jpki', @M, '--token', 'card', @P);
is_rc($r, 0, 'http://localhost: this machine');
is($r->{err}, '', '... no warning');
for my $h ('127.9.9.9', '[::1]') {
    $r = login('--url', "http://$h:$down/jpki", @M, '--token', 'card', @P, '--timeout', '2');
    is_rc($r, 4, "http://$h: this machine (nobody listening)",
          qr/\Ajpki-login: GET http:\/\/\Q$h\E:$down\/jpki\/challenge: /);
}
# a name of this machine other than localhost is another host: the client
# does not resolve names to decide
my $name = (POSIX::uname())[1];
my $addr = Socket::inet_aton($name);
SKIP: {
    skip "the host name $name does not resolve to 127.0.0.1", 4
        unless $addr && Socket::inet_ntoa($addr) eq '127.0.0.1' && lc $name ne 'localhost';
    my $u = "http://$name:" . $ng->port . '/jpki';
    $r = login('--url', $u, @M, '--token', 'card', @P);
    is_rc($r, 2, "http://$name (resolves to 127.0.0.1): refused", qr/plain http:\/\/ to \Q$name\E, another host/);
    $r = login('--url', $u, @M, '--token', 'card', @P, '--insecure-http');
    is_rc($r, 0, '... with --insecure-http: signed in, with a warning',
          qr/\Ajpki-login: warning: --insecure-http: plain http to \Q$name\E: /);
}

# TLS: verified, --cacert names the CA; the cookie is Secure there
my $https = "https://127.0.0.1:$tls_port/jpki";
$r = login('--url', $https, @M, '--token', 'card', @P);
is_rc($r, 4, 'https with an unknown CA', qr/TLS failed, the server was not verified/);
my $tjar = "$dir/tls.jar";
$r = login('--url', $https, @M, '--token', 'card', @P, '--cacert', "$dir/tls.pem",
           '--cookie-jar', $tjar);
is_rc($r, 0, 'https with --cacert');
# --cacert replaces the system's CAs: libcurl's own CA directory (Debian's
# /etc/ssl/certs) is cleared.  No server here has a certificate from a
# system CA: --verbose shows what the TLS backend was given.
$r = login('--url', $https, @M, '--token', 'card', @P, '--verbose');
SKIP: {
    skip "this libcurl's TLS backend does not say its CA file", 3
        unless $r->{err} =~ /^jpki-login: TLS: CAfile: /m;
    $r = login('--url', $https, @M, '--token', 'card', @P, '--cacert', "$dir/tls.pem", '--verbose');
    is_rc($r, 0, 'https with --cacert, --verbose');
    like($r->{err}, qr/^jpki-login: TLS: CAfile: \Q$dir\E\/tls\.pem$/m, '... the CA file');
    like($r->{err}, qr/^jpki-login: TLS: CApath: none$/m, "... and not the system's CA directory too");
}
like(slurp($tjar), qr/^(?:#HttpOnly_)?127\.0\.0\.1\t\S+\t\/\tTRUE\t\d+\tjpki_session\t/m,
     'https: the jar keeps the cookie Secure');
my ($tst, $tbody) = curl_get($tjar, "https://127.0.0.1:$tls_port/app/x", '--cacert', "$dir/tls.pem");
is($tst, 200, 'https: curl -b jar passes the gate');
like($tbody, qr/account=\[alice\]/, 'https: the upstream gets the account');

# ---------------------------------------------------------------- all runs

my $all = join '', @ALL_OUTPUT;
unlike($all, qr/\Q$PIN\E/, "the PIN appears in no output of the $n_run runs");
unlike($all, qr/\Q$BADPIN\E/, 'nor the wrong PIN');
my @serials = map { my ($s) = `openssl x509 -in $PKI/$_.pem -noout -serial` =~ /=([0-9A-F]+)/; $s }
              qw(user1 user2 user-ec phone-user384 rev-keyCompromise);
ok(@serials == 5 && !grep({ $all =~ /\Q$_\E/i } @serials), 'no serial number is printed');
is($SAN_REPORTS, '', 'no sanitizer report in any run');

$ng->stop;
$ap->stop if $ap;
diag(sprintf '%d runs of %s in %.1f s', $n_run, $LOGIN, time - $t0);
done_testing();
