package JPKITest;
# t/lib/JPKITest.pm - harness for the server scenario tests (t/nginx-*.t):
# loopback ports, a temp directory per test, secret files, child processes
# (Debian's nginx with the module, redis-server, `openssl ocsp` responders,
# a "black hole" OCSP responder), and the client side of the login protocol
# (challenge, signature with the openssl CLI, login, gated requests).
#
# The client helpers know nothing about the web server: the Apache tests
# reuse them with their own server start.  Core Perl only.
#
# Env: JPKI_BUILD (default <repo>/build), JPKI_TEST_PKI (default
#      <build>/pki), JPKI_NGINX (default /usr/sbin/nginx), JPKI_REDIS_SERVER,
#      JPKI_KEEP=1 (keep the temp directory and print where it is).
use strict;
use warnings;
use Fcntl qw(O_CREAT O_EXCL O_WRONLY);
use Exporter 'import';
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use HTTP::Tiny;
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use Test::More ();

our @EXPORT = qw(
    $REPO $BUILD $PKI $NGINX $MODULE $JPKICTL
    skip_unless free_port tmpdir slurp spew write_secret
    spawn stop_pid wait_port
    http get_json post_json post_form cookie_of set_cookies
    challenge sign_b64 cert_pem cert_b64 login_body login_to gated_get
    put_file cert_id json_decode json_encode site_fixture curl_h2 login_h2
    run_out password_file load
);

our $REPO  = abs_path(dirname(abs_path(__FILE__)) . '/../..');
our $BUILD = $ENV{JPKI_BUILD} // "$REPO/build";
our $PKI   = $ENV{JPKI_TEST_PKI} // "$BUILD/pki";
our $NGINX = $ENV{JPKI_NGINX} // '/usr/sbin/nginx';
our $MODULE = $ENV{JPKI_NGINX_MODULE} // "$BUILD/ngx_http_jpki_module.so";
our $JPKICTL = $ENV{JPKI_JPKICTL} // "$BUILD/jpkictl";

# The sanitizer wrappers (t/sanitize/run) preload gcc's ASan and UBSan
# runtimes: their paths found once here, not by two gcc runs a server start.
if (!$ENV{JPKI_SAN_ASAN} && grep { m{/sanitize/} } $NGINX, $ENV{JPKI_APACHE} // '') {
    chomp(my $asan = `gcc -print-file-name=libasan.so 2>/dev/null` // '');
    chomp(my $ubsan = `gcc -print-file-name=libubsan.so 2>/dev/null` // '');
    @ENV{qw(JPKI_SAN_ASAN JPKI_SAN_UBSAN)} = ($asan, $ubsan) if $asan =~ m{/} && $ubsan =~ m{/};
}

my $OWNER = $$;          # END blocks of forked children must not kill anything
our %KIDS;               # pid => name: every process this harness started
my %PORTS;               # ports handed out by this process
my $TMP;

my $JSON = JSON::PP->new->canonical(1)->allow_nonref(1);
sub json_decode { my $j = eval { $JSON->decode($_[0]) }; return $j }
sub json_encode { $JSON->encode($_[0]) }

# ---------------------------------------------------------------- basics

sub which {
    my ($name) = @_;
    return $name if $name =~ m{/} && -x $name;
    for (split /:/, $ENV{PATH} // '') { return "$_/$name" if -x "$_/$name" }
    return undef;
}

# skip_unless(qw(nginx redis module jpkictl pki openssl)): skip_all when a
# piece is missing (the build targets are named in the message).
sub skip_unless {
    my @why;
    for (@_) {
        if ($_ eq 'nginx') { push @why, "$NGINX not found" unless -x $NGINX }
        elsif ($_ eq 'module') {
            push @why, "$MODULE not built (make build/ngx_http_jpki_module.so)"
                unless -f $MODULE;
        }
        elsif ($_ eq 'jpkictl') {
            push @why, "$JPKICTL not built (make build/jpkictl)"
                unless -x $JPKICTL;
        }
        elsif ($_ eq 'pki') {
            push @why, "no test PKI in $PKI (make pki)" unless -f "$PKI/user1.pem";
        }
        elsif ($_ eq 'redis') {
            push @why, 'redis-server not found' unless redis_bin();
        }
        elsif ($_ eq 'openssl') {
            push @why, 'openssl CLI not found' unless which('openssl');
        }
    }
    Test::More::plan(skip_all => join('; ', @why)) if @why;
}

sub redis_bin {
    for ($ENV{JPKI_REDIS_SERVER} || (), '/usr/bin/redis-server') {
        return $_ if -x $_;
    }
    return which('redis-server');
}

# A directory for this test (0755: nginx workers run as nobody under root).
sub tmpdir {
    return $TMP if $TMP;
    my $keep = $ENV{JPKI_KEEP} ? 1 : 0;
    $TMP = tempdir('jpki-t-XXXXXX', TMPDIR => 1, CLEANUP => !$keep);
    chmod 0755, $TMP;
    Test::More::diag("temp directory kept: $TMP") if $keep;
    return $TMP;
}

# run_out(DIR, PROGRAM, ARGS...) -> (exit, stdout, stderr): PROGRAM run
# with its output in numbered files under DIR (kept: tests scan them); a
# death by a signal is 128 + the signal, an exec that fails 127.
my $RUN_N = 0;
sub run_out {
    my ($dir, @cmd) = @_;
    my $n = ++$RUN_N;
    my ($o, $e) = ("$dir/run$n.out", "$dir/run$n.err");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $o or POSIX::_exit(126);
        open STDERR, '>', $e or POSIX::_exit(126);
        exec { $cmd[0] } @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $st = $?;
    return ($st & 127 ? 128 + ($st & 127) : $st >> 8, slurp($o), slurp($e));
}

sub slurp {
    my ($f) = @_;
    open my $h, '<:raw', $f or return '';
    local $/;
    my $d = <$h>;
    return $d // '';
}

sub spew {
    my ($f, $d, $mode) = @_;
    open my $h, '>:raw', $f or die "$f: $!";
    print $h $d;
    close $h or die "$f: $!";
    chmod $mode, $f if defined $mode;
}

# stopped_ok(WHAT, LOGS, EXITED, STATUS, [PROBLEM LINES], no_exit_check =>)
# - the assertions every server's stop makes: its logs hold no alert, crit,
# emerg or crash, and it exited with status 0.
sub stopped_ok {
    my ($what, $logs, $exited, $st, $bad, %o) = @_;
    my @bad = @$bad;
    Test::More::ok(!@bad, "$what: $logs free of alert/crit/emerg and crashes")
        or Test::More::diag(join "\n", @bad[0 .. ($#bad > 40 ? 40 : $#bad)]);
    Test::More::is($st, 0, "$what: $exited") unless $o{no_exit_check};
}

# A free loopback port, never the same twice in this process.  (Another
# test running in parallel could take it between here and the bind; ports
# come from the kernel's ephemeral range, so this is rare.)
# Ports are reserved across the test processes prove runs in parallel by a
# file each in /tmp/jpki-test-ports (O_EXCL), removed at exit; they come
# from below the kernel's ephemeral range, so no client connection takes
# one between the probe here and the server's bind.
my $PORT_DIR = '/tmp/jpki-test-ports';
my @PORT_FILES;
my $PORT_OWNER = $$;
END { unlink @PORT_FILES if $$ == $PORT_OWNER }   # not in forked children

# Port P for this test file, if no other test file holds it and it can be
# bound now (the reservation lasts until this process ends).
sub reserve_port {
    my ($p) = @_;
    mkdir $PORT_DIR, 01777;
    return 0 if $PORTS{$p} || $p < 1024 || $p > 65535;
    my $f = "$PORT_DIR/$p";
    unlink $f if -e $f && -M $f > 1 / 24;              # left by a killed run
    sysopen(my $fh, $f, O_CREAT | O_EXCL | O_WRONLY) or return 0;
    close $fh;
    push @PORT_FILES, $f;
    $PORTS{$p} = 1;
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => $p, Proto => 'tcp',
                                  ReuseAddr => 1) or return 0;
    close $s;
    return 1;
}

sub free_port {
    for (1 .. 500) {
        my $p = 20000 + int rand 12000;
        return $p if reserve_port($p);
    }
    die 'no free port';
}

sub rand_hex {
    my ($bytes) = @_;
    my $d = '';
    if (open my $r, '<:raw', '/dev/urandom') {
        read $r, $d, $bytes;
        close $r;
    }
    $d .= chr(int rand 256) while length $d < $bytes;
    return unpack 'H*', $d;
}

# write_secret(FILE, key => [id, current]) - a secret file (mode 0600) with a
# random site secret; with key => [9, 1] an explicit ring key 9 (current).
sub write_secret {
    my ($file, %o) = @_;
    my $s = "# test secret\nsecret " . rand_hex(32) . "\n";
    $s .= "key $o{key}[0] " . rand_hex(32) . ($o{key}[1] ? ' current' : '') . "\n"
        if $o{key};
    spew($file, $s, 0600);
    return $file;
}

# load(FILE, STOP, CODE) - a client in a process of its own calling
# CODE->(HANDLE) over and over until the file STOP exists, HANDLE FILE
# (autoflushed) for it to write down what it saw: its pid.
sub load {
    my ($file, $stop, $code) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    open my $out, '>', $file or POSIX::_exit(1);
    $out->autoflush(1);
    $code->($out) until -e $stop;
    close $out;
    POSIX::_exit(0);
}

# password_file(PASSWORD) - a file (mode 0600) holding PASSWORD on its first
# line, for the store's password_file= (or jpkictl's --redis-password-file):
# its path, one per password.
my %PWFILE;
sub password_file {
    my ($pw) = @_;
    return $PWFILE{$pw} //= do {
        my $f = tmpdir() . '/redis-pw-' . (scalar(keys %PWFILE) + 1);
        spew($f, "$pw\n", 0600);
        $f;
    };
}

# The module as nginx loads it: a private copy, so that a rebuild of
# build/ngx_http_jpki_module.so (cp over the file) while the tests run
# cannot pull the code from under the running workers.
my $MODULE_COPY;
sub module_copy {
    return $MODULE_COPY if $MODULE_COPY;
    my $f = tmpdir() . '/ngx_http_jpki_module.so';
    spew($f, slurp($MODULE), 0755);
    return $MODULE_COPY = $f;
}

# The PKI directory as servers see it.  Under root the workers run as
# nobody and read the CRLs: give them a world-readable copy of the public
# files (the checkout may sit in a directory nobody cannot enter).
my $SERVER_PKI;
sub server_pki {
    return $SERVER_PKI if $SERVER_PKI;
    return $SERVER_PKI = $PKI if $> != 0;
    my $d = tmpdir() . '/pki';
    mkdir $d;
    chmod 0755, $d;
    for my $f (glob("$PKI/*.pem"), glob("$PKI/*.crl"), glob("$PKI/*.der")) {
        (my $b = $f) =~ s{.*/}{};
        spew("$d/$b", slurp($f), 0644);
    }
    return $SERVER_PKI = $d;
}

# ---------------------------------------------------------------- processes

# ca2_crl(DIR, INDEX, NUMBER, OUT [, LOG]): a CRL of the test PKI's ca2 made
# by `openssl ca -gencrl` from the index file INDEX (openssl ca's database
# format) with CRL number NUMBER, PEM into OUT (scratch files in DIR,
# openssl's output appended to LOG, default /dev/null).  True on success.
sub ca2_crl {
    my ($dir, $index, $number, $out, $log) = @_;
    my $p = $PKI;
    my $hex = sprintf '%04X', $number;       # an even count of hex digits,
    spew("$dir/crlnum", (length($hex) % 2 ? '0' : '') . "$hex\n");  # or openssl ca refuses it
    spew("$dir/serial", "01\n");
    local $ENV{CA_DB} = $index;
    local $ENV{CA_SERIAL} = "$dir/serial";
    local $ENV{CA_CRLNUM} = "$dir/crlnum";
    local $ENV{CA_NEWCERTS} = $dir;
    return system("openssl ca -batch -config $p/db/openssl.cnf -gencrl -cert $p/ca2.pem "
                  . "-keyfile $p/ca2.key -out $out >>" . ($log // '/dev/null') . " 2>&1") == 0;
}

# fork_code(NAME, LOGFILE, CODE) - CODE runs in a child in its own process
# group (stopped with the harness's other children), stdout and stderr to
# LOGFILE; returns the pid.
sub fork_code {
    my ($name, $log, $code) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        $code->();
        POSIX::_exit(0);
    }
    $KIDS{$pid} = $name;
    return $pid;
}

# spawn(NAME, LOGFILE, CMD...) - runs CMD that way; returns the pid.
sub spawn {
    my ($name, $log, @cmd) = @_;
    return fork_code($name, $log, sub { exec { $cmd[0] } @cmd or POSIX::_exit(127) });
}

sub alive { my ($pid) = @_; return waitpid($pid, WNOHANG) == 0 }

# Processes still in process group PGID (each child runs in its own group,
# PGID = its pid: nginx workers left behind by a master that died).
sub group_members {
    my ($pgid) = @_;
    my @p;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $t = slurp($stat);
        push @p, $1 if $t =~ /^(\d+) \(.*\) \S+ \d+ (\d+) / && $2 == $pgid;
    }
    return @p;
}

sub kill_group { my ($pgid) = @_; kill 'KILL', $_ for group_members($pgid) }

# stop_pid(PID, SIGNAL, TIMEOUT) - signals PID, waits up to TIMEOUT seconds
# (then SIGKILL), and kills what is left of its process group.  Returns the
# wait status (or -1).
sub stop_pid {
    my ($pid, $sig, $timeout) = @_;
    return -1 unless $pid && $KIDS{$pid};
    $timeout //= 5;
    kill 'CONT', $pid;
    kill $sig // 'TERM', $pid;
    my $end = time + $timeout;
    my $st = -1;
    while (time < $end) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid) { $st = $?; last }
        if ($r == -1) { $st = -1; last }
        sleep 0.02;
    }
    if ($st == -1 && waitpid($pid, WNOHANG) == 0) {
        Test::More::diag("$KIDS{$pid} (pid $pid) did not stop on $sig: killed");
        kill 'KILL', $pid;
        waitpid($pid, 0);
        $st = $?;
    }
    kill_group($pid);                    # leftovers of its group (workers)
    delete $KIDS{$pid};
    return $st;
}

END {
    if ($$ == $OWNER) {
        my $st = $?;
        my @all = keys %KIDS;
        for my $pid (@all) {
            kill 'CONT', $pid;
            kill 'TERM', $pid;
        }
        my $end = time + 3;
        while (%KIDS && time < $end) {
            for my $pid (keys %KIDS) {
                delete $KIDS{$pid} if waitpid($pid, WNOHANG) != 0;
            }
            sleep 0.05 if %KIDS;
        }
        for my $pid (keys %KIDS) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
        }
        kill_group($_) for @all;
        $? = $st;
    }
}

# wait_port(PORT, TIMEOUT, PID) - 1 once something accepts on PORT; 0 on
# timeout or when PID exits first.
sub wait_port {
    my ($port, $timeout, $pid) = @_;
    my $end = time + ($timeout // 10);
    while (time < $end) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Proto => 'tcp', Timeout => 1);
        if ($s) { close $s; return 1 }
        return 0 if $pid && !alive($pid);
        sleep 0.03;
    }
    return 0;
}

# ---------------------------------------------------------------- client

my $UA = HTTP::Tiny->new(max_redirect => 0, timeout => 20, keep_alive => 0,
                         agent => 'jpki-test/1');

# http(METHOD, URL, headers => {}, content => STR|CODE, timeout => S)
# -> { status, reason, headers, content, json, elapsed }.
sub http {
    my ($method, $url, %o) = @_;
    my %opt = (headers => $o{headers} // {});
    $opt{content} = $o{content} if defined $o{content};
    my $ua = $o{timeout}
        ? HTTP::Tiny->new(max_redirect => 0, timeout => $o{timeout},
                          keep_alive => 0, agent => 'jpki-test/1')
        : $UA;
    my $t0 = time;
    my $r = $ua->request($method, $url, \%opt);
    $r->{elapsed} = time - $t0;
    my $ct = $r->{headers}{'content-type'} // '';
    $r->{json} = json_decode($r->{content})
        if $ct =~ m{^application/json} && defined $r->{content};
    return $r;
}

sub get_json { my ($url, %o) = @_; return http('GET', $url, %o) }

sub post_json {
    my ($url, $data, %o) = @_;
    my $h = { 'Content-Type' => 'application/json', %{ $o{headers} // {} } };
    return http('POST', $url, %o, headers => $h,
                content => ref $data ? json_encode($data) : $data);
}

sub form_enc {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub post_form {
    my ($url, $data, %o) = @_;
    my $body = join '&', map { form_enc($_) . '=' . form_enc($data->{$_}) }
                         sort keys %$data;
    my $h = { 'Content-Type' => 'application/x-www-form-urlencoded',
              %{ $o{headers} // {} } };
    return http('POST', $url, %o, headers => $h, content => $body);
}

# Set-Cookie header values of a response (list).
sub set_cookies {
    my ($r) = @_;
    my $h = $r->{headers}{'set-cookie'};
    return () unless defined $h;
    return ref $h ? @$h : ($h);
}

# The value a response sets for cookie NAME (undef when not set).
sub cookie_of {
    my ($r, $name) = @_;
    $name //= 'jpki_session';
    for (set_cookies($r)) {
        return $1 if /^\Q$name\E=([^;]*)/;
    }
    return undef;
}

# GET <base>/challenge -> the challenge text (undef on failure).
sub challenge {
    my ($base) = @_;
    my $r = http('GET', "$base/challenge");
    return $r->{status} == 200 && $r->{json} ? $r->{json}{challenge} : undef;
}

# Signature of TEXT with PKI key NAME (openssl dgst -sign), base64.
sub sign_b64 {
    my ($text, $key, $md) = @_;
    $md //= 'sha256';
    my $f = tmpdir() . "/to-sign.$$";
    spew($f, $text);
    my $keyfile = $key =~ m{/} ? $key : "$PKI/$key.key";
    open my $p, '-|', 'openssl', 'dgst', "-$md", '-sign', $keyfile, $f
        or die "openssl: $!";
    binmode $p;
    local $/;
    my $sig = <$p>;
    close $p or die "openssl dgst -sign $keyfile failed";
    unlink $f;
    return encode_base64($sig, '');
}

sub cert_pem { my ($n) = @_; return slurp($n =~ m{/} ? $n : "$PKI/$n.pem") }

# base64 of the DER certificate.
sub cert_b64 {
    my ($n) = @_;
    my $pem = cert_pem($n);
    $pem =~ s/-----[^-]+-----//g;
    $pem =~ s/\s+//g;
    return $pem;
}

# login_body(CHALLENGE, CERT, KEY, %more) -> hashref of login fields signed
# with KEY (the certificate as PEM unless cert_form => 'b64').
sub login_body {
    my ($ch, $cert, $key, %o) = @_;
    my %b = (challenge => $ch,
             certificate => ($o{cert_form} // '') eq 'b64' ? cert_b64($cert)
                                                           : cert_pem($cert),
             signature => sign_b64($ch, $key // $cert, $o{md}));
    $b{algorithm} = $o{algorithm} if $o{algorithm};
    $b{account} = $o{account} if defined $o{account};
    $b{return_to} = $o{return_to} if defined $o{return_to};
    return \%b;
}

# login_to(SERVER, CERT, prefix => P, key => K, challenge => C): a signed
# JSON login at SERVER's <P>/jpki (nginx or Apache: anything with ->url);
# the key defaults to CERT's own.  {} when no challenge could be had.
sub login_to {
    my ($s, $cert, %o) = @_;
    my $base = $s->url(($o{prefix} // '') . '/jpki');
    my $ch = $o{challenge} // challenge($base) // return {};
    return post_json("$base/login", login_body($ch, $cert, $o{key} // $cert));
}

# gated_get(SERVER, COOKIE, PATH, http options): GET PATH (default /app/x)
# with the session cookie.
sub gated_get {
    my ($s, $cookie, $path, %o) = @_;
    return http('GET', $s->url($path // '/app/x'), %o,
                headers => { Cookie => "jpki_session=$cookie" });
}

# site_fixture(): what the usual one-site test starts from: its temp
# directory, a secret file, an OCSP responder (ca2's) and a mapping file
# with user1 as alice -> { dir, secret, map, ocsp, issuer } (issuer: the
# "card" issuer's line, ca1 and ca2 as @PKI@ files, that responder).
sub site_fixture {
    my $dir = tmpdir();
    my %f = (dir => $dir, secret => write_secret("$dir/site.secret"),
             map => "$dir/map.txt", ocsp => JPKITest::Ocsp->start(name => 'ocsp'));
    spew($f{map}, cert_id('user1', $f{secret}) . " alice\n", 0644);
    $f{issuer} = 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem ocsp=' . $f{ocsp}->url;
    return \%f;
}

# curl_h2(ARGS): curl over HTTP/2 without TLS (prior knowledge), -s -i,
# 10 s at most -> its output (status line, headers, body).
sub curl_h2 {
    open my $p, '-|', 'curl', '-s', '-i', '--http2-prior-knowledge',
        '--max-time', '10', @_ or die "curl: $!";
    local $/;
    my $out = <$p> // '';
    close $p;
    return $out;
}

# login_h2(BASE, CHALLENGE, CERT): the JSON login of login_body to
# BASE/login over HTTP/2 (curl_h2) -> curl's output.
sub login_h2 {
    my ($base, $ch, $cert) = @_;
    my $f = tmpdir() . '/h2-login.json';
    spew($f, json_encode(login_body($ch // 'none', $cert)));
    return curl_h2('-H', 'Content-Type: application/json', '--data-binary', "\@$f",
                   "$base/login");
}

# put_file(SRC, DST, MTIME): DST replaced by a copy of SRC (rename, as a
# deploy does), mode 0644, with the given mtime.
sub put_file {
    my ($src, $dst, $mtime) = @_;
    open my $in, '<:raw', $src or die "$src: $!";
    local $/;
    my $d = <$in>;
    close $in;
    spew("$dst.tmp", $d, 0644);
    utime $mtime, $mtime, "$dst.tmp";
    rename "$dst.tmp", $dst or die "rename $dst: $!";
}

# The audit records (decoded JSON) in a server's log TEXT.
sub audit_records {
    my ($text) = @_;
    my @a;
    for (split /\n/, $text // '') {
        next unless /jpki audit: (\{[^{}]*\})/;
        my $j = json_decode($1);
        push @a, $j if $j;
    }
    return @a;
}

# The pids of the processes whose parent is PPID (a server's workers).
sub child_pids {
    my ($ppid) = @_;
    my @c;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $t = slurp($stat);
        next unless $t =~ /^(\d+) \(.*\) \S (\d+) /;
        push @c, $1 if $2 == $ppid;
    }
    return @c;
}

# cert_id of a PKI certificate under SECRET_FILE (jpkictl cert-check).
my %CERT_ID;
sub cert_id {
    my ($cert, $secret) = @_;
    my $k = "$cert\0$secret";
    return $CERT_ID{$k} if $CERT_ID{$k};
    my $f = $cert =~ m{/} ? $cert : "$PKI/$cert.pem";
    open my $p, '-|', $JPKICTL, 'cert-check', '--cert', $f, '--issuer',
        "card=$PKI/ca1.pem,$PKI/ca2.pem", '--issuer', "phone=$PKI/phone-ca.pem",
        '--secret-file', $secret or die "jpkictl: $!";
    my $out = join '', <$p>;
    close $p;
    die "jpkictl cert-check $f: $out" unless $out =~ /\bcert_id=([0-9a-f]{32})\b/;
    return $CERT_ID{$k} = $1;
}

# ================================================================ servers

package JPKITest::Nginx;
use strict;
use warnings;
use Time::HiRes qw(time sleep);

# JPKITest::Nginx->start(name => N, http => TEXT, workers => 2,
#                        main => TEXT)
# TEXT may use @PORT@ (the front port), @UP@ (the echo upstream), @DIR@
# (this instance's directory) and @PKI@ (the test PKI, see server_pki).  The harness adds load_module,
# pid, error_log (notice), temp paths, and the echo upstream server:
#   GET any -> 200 "account=[<X-JPKI-Account>] spoof=[<X-JPKI-Cert-Id>]
#                   other=[<X-JPKI-Other>] user=[<X-Remote-User>] uri=<uri>\n"
sub start {
    my ($class, %o) = @_;
    my $self = $class->prepare(%o);
    my ($name, $dir) = @$self{qw(name dir)};
    $self->{pid} = JPKITest::spawn("nginx $name", "$dir/stderr.log", $JPKITest::NGINX,
                                   '-p', "$dir/", '-c', "$dir/nginx.conf",
                                   '-e', "$dir/error.log", '-g', 'daemon off;');
    unless (JPKITest::wait_port($self->{port}, 10, $self->{pid})
            && JPKITest::wait_port($self->{up}, 5, $self->{pid})) {
        my $err = JPKITest::slurp("$dir/stderr.log") . JPKITest::slurp("$dir/error.log");
        JPKITest::stop_pid($self->{pid}, 'TERM', 2);
        die "nginx $name did not start:\n$err";
    }
    # the master listens before it forks its workers
    my $want = $o{workers} // 2;
    my $end = time + 10;
    sleep 0.02 while $self->worker_pids < $want && time < $end;
    $self->{started} = -s $self->{log};
    return $self;
}

# JPKITest::Nginx->test_config(same options as start) -> (exit status,
# output of `nginx -t`).
sub test_config {
    my ($class, %o) = @_;
    my $self = $class->prepare(%o);
    my $dir = $self->{dir};
    my $pid = JPKITest::spawn("nginx -t $self->{name}", "$dir/test.log", $JPKITest::NGINX,
                              '-t', '-q', '-p', "$dir/", '-c', "$dir/nginx.conf",
                              '-e', "$dir/error.log");
    waitpid $pid, 0;
    my $st = $? >> 8;
    delete $JPKITest::KIDS{$pid};
    return ($st, JPKITest::slurp("$dir/test.log"));
}

# Writes the configuration of an instance (see start).
sub prepare {
    my ($class, %o) = @_;
    my $name = $o{name} // 'nginx';
    my $dir = JPKITest::tmpdir() . "/$name";
    mkdir $dir;
    mkdir "$dir/tmp";
    chmod 0755, $dir, "$dir/tmp";
    my $self = bless { name => $name, dir => $dir, port => JPKITest::free_port(),
                       up => JPKITest::free_port(), log => "$dir/error.log" },
                     $class;
    my $http = $o{http} // '';
    my $conf = <<"EOF";
load_module @{[ JPKITest::module_copy() ]};
worker_processes @{[ $o{workers} // 2 ]};
pid $dir/nginx.pid;
error_log $dir/error.log notice;
@{[ $o{main} // "" ]}
events { worker_connections 512; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    default_type text/plain;
    log_format jpki_upstream '\$msec \$request_time \$request_uri';

    server {
        listen 127.0.0.1:\@UP\@;
        access_log $dir/upstream.log jpki_upstream;
        location / {
            return 200 "account=[\$http_x_jpki_account] spoof=[\$http_x_jpki_cert_id] other=[\$http_x_jpki_other] user=[\$http_x_remote_user] uri=\$request_uri\\n";
        }
    }

$http
}
EOF
    $conf =~ s/\@PORT\@/$self->{port}/g;
    $conf =~ s/\@UP\@/$self->{up}/g;
    $conf =~ s/\@DIR\@/$dir/g;
    $conf =~ s/\@PKI\@/JPKITest::server_pki()/ge;
    JPKITest::spew("$dir/nginx.conf", $conf);
    $self->{conf} = $conf;
    return $self;
}

sub port { $_[0]{port} }
sub base { "http://127.0.0.1:$_[0]{port}" }
sub url  { my ($s, $p) = @_; return $s->base . $p }
sub log_file { $_[0]{log} }
sub mark { my ($s) = @_; return -s $s->{log} // 0 }

# Requests the echo upstream received since MARK (upstream_mark).  The
# upstream logs a request after answering it, maybe after the client has
# its answer and after a mark taken then: the mark is a time, a
# millisecond, and a line counts when its request started at or after it
# (nginx's \$msec less \$request_time, both in ms).  upstream_mark waits
# into the next millisecond, so that a request sent before it started
# before that millisecond and one sent after it, in it or later.  With
# WANT, wait until that many lines are there (at most 2 s; 0.2 s for WANT
# 0, the late lines of requests sent after the mark).
sub upstream_mark {
    my $ms = int(time * 1000) + 1;
    sleep 0.0002 while time * 1000 < $ms;
    return $ms;
}
sub upstream_hits {
    my ($s, $mark, $want) = @_;
    my $end = time + (!defined $want ? 0 : $want ? 2 : 0.2);
    for (;;) {
        my $n = 0;
        for (split /\n/, JPKITest::slurp("$s->{dir}/upstream.log")) {
            my ($msec, $rt) = /^(\d+\.\d{3}) (\d+\.\d{3}) / or next;
            my $start = sprintf('%.0f', $msec * 1000) - sprintf('%.0f', $rt * 1000);
            $n++ if $start >= ($mark // 0);
        }
        return $n if time >= $end || (defined $want && $want && $n >= $want);
        sleep 0.02;
    }
}

# Error log text from offset MARK (default: everything).
sub log_since {
    my ($s, $mark) = @_;
    my $t = JPKITest::slurp($s->{log});
    return substr($t, $mark // 0);
}

# Audit records (decoded JSON) logged since MARK.
sub audits {
    my ($s, $mark) = @_;
    return JPKITest::audit_records($s->log_since($mark));
}

sub worker_pids {
    my ($s) = @_;
    return JPKITest::child_pids($s->{pid});
}

# Requests PATH over and over (PAUSE s apart) until DONE->(answer) is true
# or SECONDS pass: (the slowest answer's seconds, how many, whether DONE),
# to show that a worker keeps answering while it loads something big.
sub answers_until {
    my ($s, $path, $seconds, $pause, $done) = @_;
    my ($worst, $n, $ok) = (0, 0, 0);
    my $end = time + $seconds;
    while (time < $end) {
        my $r = JPKITest::http('GET', $s->url($path), timeout => 10);
        $worst = $r->{elapsed} if $r->{elapsed} > $worst;
        $n++;
        if ($done->($r)) { $ok = 1; last }
        sleep $pause;
    }
    return ($worst, $n, $ok);
}

# Problems in the error log: alert/crit/emerg, a worker that died, a
# sanitizer report.  Returns the offending lines.
sub log_problems {
    my ($s, $mark) = @_;
    my @bad;
    for (split /\n/, $s->log_since($mark)) {
        push @bad, $_ if /\[(alert|crit|emerg)\]/ || /exited on signal/
                         || /AddressSanitizer|runtime error:|LeakSanitizer/
                         || /worker process \d+ exited with code [1-9]/
                         || /^\s*#\d+ 0x[0-9a-f]+ in /;   # a sanitizer's stack frames
    }
    return @bad;
}

# Stops nginx (SIGQUIT: graceful shutdown, so leaks at worker exit show as
# "open socket left" alerts) and checks the error log as a test assertion.
sub stop {
    my ($s, %o) = @_;
    return if $s->{stopped}++;
    my $st = JPKITest::stop_pid($s->{pid}, $o{signal} // 'QUIT', 10);
    JPKITest::stopped_ok("nginx $s->{name}", 'error log', 'master exited cleanly',
                         $st, [ $s->log_problems ], %o);
}

sub DESTROY { }

package JPKITest::Redis;
use strict;
use warnings;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;

# JPKITest::Redis->start(name => N, password => P, port => P, unixsocket => F,
#                        tls => {cert => F, key => F, ca => F, auth => 1},
#                        args => [...]): redis-server on a free port (or P),
# no persistence; with tls also on a TLS port (tls_port; auth: clients must
# present a certificate of ca), with unixsocket also on that socket; args:
# more of redis-server's options (--replicaof ...).
sub start {
    my ($class, %o) = @_;
    my $name = $o{name} // 'redis';
    my $dir = JPKITest::tmpdir() . "/$name";
    mkdir $dir;
    my $self = bless { name => $name, dir => $dir, opts => \%o,
                       port => $o{port} // JPKITest::free_port() }, $class;
    $self->{tls_port} = $o{tls_port} if $o{tls_port};
    $self->{pid} = JPKITest::spawn("redis $name", "$dir/stdout.log",
                                   JPKITest::redis_bin(), '--port', $self->{port},
                                   '--bind', '127.0.0.1', '--save', '',
                                   '--appendonly', 'no', '--dir', $dir,
                                   '--logfile', "$dir/redis.log",
                                   '--daemonize', 'no',
                                   $o{password} ? ('--requirepass', $o{password}) : (),
                                   $o{unixsocket} ? ('--unixsocket', $o{unixsocket},
                                                     '--unixsocketperm', '777') : (),
                                   $o{tls} ? ('--tls-port', ($self->{tls_port} //= JPKITest::free_port()),
                                              '--tls-cert-file', $o{tls}{cert},
                                              '--tls-key-file', $o{tls}{key},
                                              '--tls-ca-cert-file', $o{tls}{ca},
                                              '--tls-auth-clients', $o{tls}{auth} ? 'yes' : 'no') : (),
                                   @{ $o{args} // [] });
    $self->{password} = $o{password};
    $self->wait_ping("$dir/redis.log");
    return $self;
}

# Waits (10 s at most) for the server to answer PING; dies with its LOG.
sub wait_ping {
    my ($self, $log) = @_;
    my $end = time + 10;
    while (time < $end) {
        return if ($self->try_cmd('PING') // '') eq 'PONG';
        die "$self->{name} did not start: " . JPKITest::slurp($log)
            unless JPKITest::alive($self->{pid});
        sleep 0.03;
    }
    die "$self->{name} does not answer PING";
}

sub port { $_[0]{port} }
sub tls_port { $_[0]{tls_port} }
sub pid  { $_[0]{pid} }

sub resp {
    my (@a) = @_;
    my $s = '*' . @a . "\r\n";
    $s .= '$' . length($_) . "\r\n$_\r\n" for @a;
    return $s;
}

sub read_reply {
    my ($sock) = @_;
    my $line = <$sock>;
    die "redis: no reply\n" unless defined $line;
    $line =~ s/\r\n\z//;
    my ($t, $v) = (substr($line, 0, 1), substr($line, 1));
    return $v if $t eq '+' || $t eq ':';
    die "redis: $v\n" if $t eq '-';
    if ($t eq '$') {
        return undef if $v < 0;
        my $d = '';
        while (length $d < $v + 2) {
            my $n = read($sock, $d, $v + 2 - length $d, length $d);
            die "redis: short read\n" unless $n;
        }
        return substr($d, 0, $v);
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [ map { read_reply($sock) } 1 .. $v ];
    }
    die "redis: bad reply $line\n";
}

# A connection, authenticated when the server has a password, on DB.
sub conn {
    my ($s, $db) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->{port},
                                     Proto => 'tcp', Timeout => 3)
        or die "redis connect: $!\n";
    $sock->autoflush(1);
    if ($s->{password}) {
        print $sock resp('AUTH', $s->{password});
        read_reply($sock);
    }
    if ($db) {
        print $sock resp('SELECT', $db);
        read_reply($sock);
    }
    return $sock;
}

# cmd(ARGS...) -> reply (string, integer, undef, arrayref); dies on errors.
sub cmd {
    my ($s, @a) = @_;
    my $sock = $s->conn(0);
    print $sock resp(@a);
    my $r = read_reply($sock);
    close $sock;
    return $r;
}

sub try_cmd { my ($s, @a) = @_; my $r = eval { $s->cmd(@a) }; return $r }

# The gate's ACL user "jpki" (password jpki-pw, keys jpki:* only, no
# dangerous commands) and the mapping KEY -> VALUE pairs given.
sub jpki_user {
    my ($s, %map) = @_;
    $s->cmd('ACL', 'SETUSER', 'jpki', 'on', '>jpki-pw', '~jpki:*', '+@all',
            '-@dangerous');
    $s->cmd('SET', $_, $map{$_}) for sort keys %map;
}

# Keys matching PATTERN in database DB.
sub keys_like {
    my ($s, $pattern, $db) = @_;
    my $sock = $s->conn($db);
    print $sock resp('KEYS', $pattern);
    my $r = read_reply($sock);
    close $sock;
    return @$r;
}

# set_in(DB, COMMAND...): one command in database DB.
sub set_in {
    my ($s, $db, @kv) = @_;
    my $sock = $s->conn($db);
    print $sock resp(@kv);
    my $r = read_reply($sock);
    close $sock;
    return $r;
}

sub pause  { kill 'STOP', $_[0]{pid} }
sub resume { kill 'CONT', $_[0]{pid} }

# crash(): SIGKILL; restart(): the same server again on the same ports
# (empty: no persistence), once it answers PING.
sub crash {
    my ($s) = @_;
    JPKITest::stop_pid($s->{pid}, 'KILL', 5);
    $s->{stopped} = 1;
}

sub restart {
    my ($s, %more) = @_;
    my %o = (%{ $s->{opts} }, %more, name => "$s->{name}-again", port => $s->{port},
             tls_port => $s->{tls_port});
    my $n = ref($s)->start(%o);
    $s->{pid} = $n->{pid};
    $s->{stopped} = 0;
    return $s;
}

sub stop {
    my ($s) = @_;
    return if $s->{stopped}++;
    JPKITest::stop_pid($s->{pid}, 'TERM', 5);
}

package JPKITest::Sentinel;
use strict;
use warnings;
use Time::HiRes qw(time sleep);
our @ISA = ('JPKITest::Redis');

# JPKITest::Sentinel->start(name => N, master => NAME, primary => PORT,
#                           password => P, down_after => MS,
#                           failover_timeout => MS, requirepass => PW,
#                           conf => [...]):
# `redis-server sentinel.conf --sentinel` on a free port watching the
# primary 127.0.0.1:PORT (quorum 2), P its password; cmd() and stop() are
# JPKITest::Redis's.
sub start {
    my ($class, %o) = @_;
    my $name = $o{name} // 'sentinel';
    my $dir = JPKITest::tmpdir() . "/$name";
    mkdir $dir;
    my $self = bless { name => $name, dir => $dir, port => JPKITest::free_port(),
                       master => $o{master} }, $class;
    my $m = $o{master};
    JPKITest::spew("$dir/sentinel.conf", join '', map { "$_\n" }
        "port $self->{port}", 'bind 127.0.0.1', 'daemonize no',
        "logfile $dir/sentinel.log", "dir $dir",
        "sentinel monitor $m 127.0.0.1 $o{primary} 2",
        $o{password} ? "sentinel auth-pass $m $o{password}" : (),
        "sentinel down-after-milliseconds $m " . ($o{down_after} // 1000),
        "sentinel failover-timeout $m " . ($o{failover_timeout} // 3000),
        "sentinel parallel-syncs $m 1",
        $o{requirepass} ? "requirepass $o{requirepass}" : (), @{ $o{conf} // [] });
    $self->{password} = $o{requirepass};
    $self->{pid} = JPKITest::spawn("sentinel $name", "$dir/stdout.log",
                                   JPKITest::redis_bin(), "$dir/sentinel.conf",
                                   '--sentinel');
    $self->wait_ping("$dir/sentinel.log");
    return $self;
}

# The port of the primary this sentinel names now (undef: none).
sub primary_port {
    my ($s) = @_;
    my $r = $s->try_cmd('SENTINEL', 'get-master-addr-by-name', $s->{master});
    return ref $r eq 'ARRAY' ? $r->[1] : undef;
}

package JPKITest::Ocsp;
use strict;
use warnings;

# JPKITest::Ocsp->start(name => N, signer => 'ocsp', index => 'ca2-index.txt',
#                       ca => 'ca2.pem') - `openssl ocsp` as a responder
# (it answers one request at a time).
sub start {
    my ($class, %o) = @_;
    my $name = $o{name} // 'ocsp';
    my $dir = JPKITest::tmpdir() . "/$name";
    mkdir $dir;
    my $pki = $JPKITest::PKI;
    my $signer = $o{signer} // 'ocsp';
    my $self = bless { name => $name, dir => $dir,
                       port => $o{port} // JPKITest::free_port() }, $class;
    $self->{pid} = JPKITest::spawn("ocsp $name", "$dir/ocsp.log", 'openssl', 'ocsp',
                                   '-port', $self->{port},
                                   '-index', ($o{index} // 'ca2-index.txt') =~ m{/}
                                             ? $o{index} : "$pki/" . ($o{index} // 'ca2-index.txt'),
                                   '-CA', "$pki/" . ($o{ca} // 'ca2.pem'),
                                   '-rsigner', "$pki/$signer.pem",
                                   '-rkey', "$pki/$signer.key",
                                   '-ndays', $o{ndays} // 1);
    # a connect without a request would cost the sequential responder a
    # read error; wait for its banner instead
    my $end = Time::HiRes::time() + 10;
    while (Time::HiRes::time() < $end) {
        last if JPKITest::slurp("$dir/ocsp.log") =~ /waiting for OCSP client/i;
        die "openssl ocsp did not start: " . JPKITest::slurp("$dir/ocsp.log")
            unless JPKITest::alive($self->{pid});
        Time::HiRes::sleep(0.03);
    }
    return $self;
}

sub port { $_[0]{port} }
sub url  { "http://127.0.0.1:$_[0]{port}/" }
sub log_text { JPKITest::slurp("$_[0]{dir}/ocsp.log") }

sub stop {
    my ($s) = @_;
    return if $s->{stopped}++;
    JPKITest::stop_pid($s->{pid}, 'TERM', 5);
}

package JPKITest::BlackHole;
use strict;
use warnings;
use IO::Socket::INET;

# A listening socket that never accepts: the kernel completes the TCP
# handshake and takes the request, nobody ever answers.
sub start {
    my ($class) = @_;
    my $sock = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1',
                                     LocalPort => 0, Proto => 'tcp',
                                     ReuseAddr => 1) or die "black hole: $!";
    return bless { sock => $sock, port => $sock->sockport }, $class;
}

sub port { $_[0]{port} }
sub url  { "http://127.0.0.1:$_[0]{port}/" }
sub stop { my ($s) = @_; close $s->{sock} if $s->{sock}; delete $s->{sock} }

1;
