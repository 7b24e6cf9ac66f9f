#!/usr/bin/perl
# t/nginx-hardening.t - defects a security review found in the nginx module,
# each shown fixed:
#   1. Redis connections are pooled per site: two sites on two databases of
#      one Redis never run a command on each other's connection;
#   2. watched files (mapping file, CRL files) are told apart by inode, size
#      and mtime to the nanosecond: a file rewritten within the second, or
#      completed in the second it was read half-written, is read again;
#   3. client copies of the gate's headers are removed in any spelling
#      (underscores_in_headers on: X_JPKI_Account), in a phase every request
#      goes through;
#   4. jpki_ocsp_timeout and jpki_redis_timeout are deadlines: a peer
#      sending a byte every half second does not hold a request past them;
#   5. an I/O that fails at once (the send on a pooled Redis connection
#      whose peer went away, then the retry's refused connect) completes
#      after its caller knows it waits: a clean 503, no use after free (the
#      sanitized run of `make test` would report one);
#   6. subrequests (SSI include, auth_request) into a gated location are
#      gated;
#   7. the mapping file is read in a thread: a large one does not stall the
#      worker;
#   8. a mapping file that could not be read is read once it is fixed in
#      place (chmod: only its ctime changes); while no table is in force
#      (a failure at worker start) it is tried again every second; a
#      failure is logged once;
#   9. with jpki_crl_zone, a worker reads the file identity another one
#      writes in the zone under the zone's mutex: never half written (which
#      made the file look changed and parsed again).
#   make build/ngx_http_jpki_module.so build/jpkictl pki && prove -v t/nginx-hardening.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use POSIX ();
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time sleep);
use JPKITest;

skip_unless(qw(nginx module jpkictl pki openssl redis));

my $dir = tmpdir();

# ---------------------------------------------------------------- helpers

# A login at BASE (the endpoints' location) with user1's certificate.
sub login_at {
    my ($base, $cert) = @_;
    $cert //= 'user1';
    my $ch = challenge($base) // return { status => 0, content => 'no challenge' };
    return post_json("$base/login", login_body($ch, $cert));
}

# One HTTP response read from SOCK (Content-Length or chunked), within
# TIMEOUT seconds: { status, head, body } (status 0 when none came).
sub read_response {
    my ($sock, $timeout) = @_;
    my $end = time + ($timeout // 10);
    my $sel = IO::Select->new($sock);
    my $buf = '';
    my $more = sub {
        my $left = $end - time;
        return 0 if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($sock, $buf, 65536, length $buf);
        return $n ? 1 : 0;
    };
    while ($buf !~ /\r\n\r\n/) { $more->() or return { status => 0, body => $buf } }
    my ($head, $rest) = split /\r\n\r\n/, $buf, 2;
    my ($status) = $head =~ m{^HTTP/1\.\d (\d+)};
    my $body;
    if ($head =~ /^Content-Length:\s*(\d+)/mi) {
        my $len = $1;
        while (length($buf) - length($head) - 4 < $len) { $more->() or last }
        $body = substr($buf, length($head) + 4, $len);
    } elsif ($head =~ /^Transfer-Encoding:\s*chunked/mi) {
        $body = '';
        my $pos = length($head) + 4;
        for (;;) {
            while (substr($buf, $pos) !~ /^([0-9a-fA-F]+)\r\n/) { $more->() or last }
            my ($hex) = substr($buf, $pos) =~ /^([0-9a-fA-F]+)\r\n/ or last;
            my $n = hex $hex;
            $pos += length($hex) + 2;
            while (length($buf) < $pos + $n + 2) { $more->() or last }
            last if $n == 0;
            $body .= substr($buf, $pos, $n);
            $pos += $n + 2;
        }
    } else {
        1 while $more->();
        $body = $rest;
    }
    return { status => $status // 0, head => $head, body => $body };
}

# A raw request (header lines as given: their names' spelling is kept).
sub raw_get {
    my ($ng, $path, @lines) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port,
                                  Proto => 'tcp', Timeout => 5) or die "connect: $!";
    $s->autoflush(1);
    print $s join("\r\n", "GET $path HTTP/1.1", 'Host: localhost',
                  'Connection: close', @lines) . "\r\n\r\n";
    my $r = read_response($s, 10);
    close $s;
    return $r;
}

# A child process of this test (own process group, stopped by the harness).
sub child {
    my ($name, $code) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        $SIG{PIPE} = 'IGNORE';
        $code->();
        POSIX::_exit(0);
    }
    $JPKITest::KIDS{$pid} = $name;
    return $pid;
}

# A server that answers every connection with PREFIX, then one byte every
# half second, forever (until the peer closes): -> (port, pid).
sub dribbler {
    my ($name, $prefix) = @_;
    my $l = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
        or die "listen: $!";
    my $pid = child($name, sub {
        my $sel = IO::Select->new($l);
        my @peers;
        my $next = time + 0.5;
        for (;;) {
            for my $s ($sel->can_read(0.05)) {
                if ($s == $l) {
                    my $c = $l->accept or next;
                    push @peers, $c;
                    $sel->add($c);
                    next;
                }
                my $n = sysread($s, my $junk, 65536);
                if (!$n) {                              # the peer gave up
                    $sel->remove($s);
                    @peers = grep { $_ != $s } @peers;
                    close $s;
                    next;
                }
                # (a request: answered with the prefix the first time)
                if (!${*$s}{dribbler_started}++) {
                    syswrite($s, $prefix);
                }
            }
            next if time < $next;
            $next = time + 0.5;
            for my $c (@peers) { syswrite($c, 'x', 1) if ${*$c}{dribbler_started} }
        }
    });
    my $port = $l->sockport;
    close $l;
    return ($port, $pid);
}

# A proxy on the unix socket PATH to the TCP port TARGET which, on SIGUSR1,
# closes the connections it accepted and its listening socket (the socket
# file stays: a connect is refused at once), then writes FLAG -> pid.
sub closing_proxy {
    my ($path, $target, $flag) = @_;
    unlink $path;
    my $l = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $path, Listen => 16)
        or die "listen $path: $!";
    chmod 0777, $path;                  # workers may run as nobody
    return child('closing proxy', sub {
        my $close = 0;
        local $SIG{USR1} = sub { $close = 1 };
        my $sel = IO::Select->new($l);
        my %peer;
        for (;;) {
            if ($close == 1) {
                close $_->[0] for values %peer;
                %peer = ();
                close $l;
                $sel = IO::Select->new;
                spew($flag, "closed\n");
                $close = 2;
            }
            for my $s ($sel->can_read(0.05)) {
                if ($close == 0 && $s == $l) {
                    my $c = $l->accept or next;
                    my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                                  PeerPort => $target, Proto => 'tcp')
                        or do { close $c; next };
                    $peer{"$c"} = [ $c, $u ];
                    $peer{"$u"} = [ $u, $c ];
                    $sel->add($c, $u);
                    next;
                }
                my $p = $peer{"$s"} or next;
                my $n = sysread($s, my $buf, 65536);
                if (!$n) {
                    $sel->remove($s, $p->[1]);
                    delete @peer{ "$s", "$p->[1]" };
                    close $s;
                    close $p->[1];
                    next;
                }
                syswrite($p->[1], $buf);
            }
        }
    });
}

# CODE returns true within SECONDS (tried every 0.2 s).
sub within {
    my ($seconds, $code) = @_;
    my $end = time + $seconds;
    my $ok;
    until (($ok = $code->()) || time > $end) { sleep 0.2 }
    return $ok;
}

my $crl = "\@PKI\@/ca2.crl";

# pages including gated and ungated locations (SSI)
mkdir "$dir/www";
mkdir "$dir/www/gated";
chmod 0755, "$dir/www", "$dir/www/gated";
spew("$dir/www/page.html", "before\n<!--# include virtual=\"/app/secret\" -->after\n", 0644);
spew("$dir/www/two.html", "a\n<!--# include virtual=\"/app/one\" -->b\n"
                          . "<!--# include virtual=\"/app/two\" -->c\n", 0644);
spew("$dir/www/gated/page.html", "<!--# include virtual=\"/pub/inc\" -->", 0644);
my $issuer = "card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem";

# ================================================================ 1. Redis pool per site

{
    my $redis = JPKITest::Redis->start(name => 'redis');
    my $sa = write_secret("$dir/a.secret");
    my $sb = write_secret("$dir/b.secret");
    my ($ida, $idb) = (cert_id('user1', $sa), cert_id('user1', $sb));
    # each site's mapping in its own database; the other site's cert_id
    # there too, mapped to an account a crossed command would reveal
    $redis->set_in(1, 'SET', "jpki:v1:map:$ida", 'alice');
    $redis->set_in(1, 'SET', "jpki:v1:map:$idb", 'crossed-b-in-1');
    $redis->set_in(2, 'SET', "jpki:v1:map:$idb", 'bob');
    $redis->set_in(2, 'SET', "jpki:v1:map:$ida", 'crossed-a-in-2');
    my $pb = JPKITest::free_port();
    my $port = $redis->port;
    my $ng = JPKITest::Nginx->start(name => 'sites', workers => 1, http => <<"EOF");
    server {
        listen 127.0.0.1:\@PORT\@;
        jpki_secret_file $sa;
        jpki_issuer $issuer crl=$crl;
        jpki_store redis=127.0.0.1:$port db=1 keepalive=8;
        jpki_revocation crl;
        location /jpki/ { jpki_endpoints; }
        location /app/  { jpki on; jpki_recheck_interval 0; proxy_pass http://127.0.0.1:\@UP\@; }
        location = /two.html { ssi on; root $dir/www; }
        location /private/ { auth_request /app/check; proxy_pass http://127.0.0.1:\@UP\@; }
    }
    server {
        listen 127.0.0.1:$pb;
        jpki_secret_file $sb;
        jpki_issuer $issuer crl=$crl;
        jpki_store redis=127.0.0.1:$port db=2 keepalive=8;
        jpki_revocation crl;
        location /jpki/ { jpki_endpoints; }
        location /app/  { jpki on; jpki_recheck_interval 0; proxy_pass http://127.0.0.1:\@UP\@; }
    }
EOF
    my %base = (A => $ng->base, B => "http://127.0.0.1:$pb");
    my %want = (A => 'alice', B => 'bob');
    my %cookie;
    # alternate: each site finds the other's connection idle in the worker
    for my $site (qw(A B A B)) {
        my $r = login_at("$base{$site}/jpki");
        is($r->{status}, 200, "site $site: login");
        is($r->{json} && $r->{json}{account}, $want{$site},
           "site $site: the account of its own database");
        $cookie{$site} = cookie_of($r) // '';
    }
    for my $site (qw(A B B A)) {
        my $r = http('GET', "$base{$site}/app/x",
                     headers => { Cookie => "jpki_session=$cookie{$site}" });
        like($r->{content} // '', qr/account=\[$want{$site}\]/,
             "site $site: gated request re-checked in its own database");
    }
    # (6.) subrequests waiting on Redis (each re-check is a Redis command)
    my $two = sub { http('GET', "$base{A}/two.html", headers => { Cookie => "jpki_session=$_[0]" }) };
    my $r = $two->($cookie{A});
    is($r->{content}, "a\naccount=[alice] spoof=[] other=[] user=[] uri=/app/one\nb\n"
                    . "account=[alice] spoof=[] other=[] user=[] uri=/app/two\nc\n",
       'site A: a page with two gated includes, each checked with Redis');
    is($two->('none')->{content}, "a\nb\nc\n", '... without a session: neither included');
    is(http('GET', "$base{A}/private/p", headers => { Cookie => "jpki_session=$cookie{A}" })->{status},
       200, 'site A: auth_request checked with Redis: 200');
    my @in0 = $redis->keys_like('jpki:v1:*', 0);
    is(scalar @in0, 0, 'nothing written to database 0');
    # B's logout marker goes to database 2: A's session is not touched
    $r = http('POST', "$base{B}/jpki/logout", headers => { Cookie => "jpki_session=$cookie{B}" });
    is($r->{status}, 200, 'site B: logout');
    my @out2 = grep { !/^jpki:v1:map:/ } $redis->keys_like('jpki:v1:*', 2);
    my @out1 = grep { !/^jpki:v1:map:/ } $redis->keys_like('jpki:v1:*', 1);
    ok(@out2 > 0 && @out1 > 0, 'each site wrote in its own database')
        or diag("db1: @out1\ndb2: @out2");
    is(http('GET', "$base{A}/app/y", headers => { Cookie => "jpki_session=$cookie{A}" })->{status},
       200, "site A: its session unaffected by B's logout");
    is(http('GET', "$base{B}/app/y", headers => { Cookie => "jpki_session=$cookie{B}" })->{status},
       401, "site B: its logged-out session refused");
    $r = http('POST', "$base{A}/jpki/logout", headers => { Cookie => "jpki_session=$cookie{A}" });
    is($two->($cookie{A})->{content}, "a\nb\nc\n",
       'site A: a logged-out session (refused after Redis answered): nothing included');
    is(http('GET', "$base{A}/private/p", headers => { Cookie => "jpki_session=$cookie{A}" })->{status},
       401, '... auth_request: 401');
    $ng->stop;
    $redis->stop;
}

# ================================================================ 2. file versions to the nanosecond

{
    my $secret = write_secret("$dir/files.secret");
    my $id = cert_id('user1', $secret);
    my $map = "$dir/files.map";
    my $crlf = "$dir/files.crl";
    my $t0 = int(time) - 30;            # every version below in this second
    my $put = sub {                     # (file, content, fraction, in place)
        my ($f, $data, $frac, $inplace) = @_;
        if ($inplace) {
            open my $h, '+<:raw', $f or die "$f: $!";
            print $h $data;
            truncate $h, length $data;
            close $h or die;
        } else {
            spew("$f.tmp", $data, 0644);
            Time::HiRes::utime($t0 + $frac, $t0 + $frac, "$f.tmp") or die;
            rename "$f.tmp", $f or die;
        }
        Time::HiRes::utime($t0 + $frac, $t0 + $frac, $f) or die;
    };
    my $whole = slurp("$JPKITest::PKI/ca2.crl");
    $put->($map, "$id alice\n", 0.1);
    $put->($crlf, substr($whole, 0, int(length($whole) / 2)), 0.1);   # half-written
    chmod 0644, $map, $crlf;
    my $ng = JPKITest::Nginx->start(name => 'files', workers => 1, http => <<"EOF");
    jpki_secret_file $secret;
    jpki_issuer $issuer crl=$crlf;
    jpki_store shm zone=files:1m;
    jpki_map_file $map;
    jpki_revocation crl;
    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/ { jpki_endpoints; }
        location = /health { jpki_health; }
        location /pub/ { proxy_pass http://127.0.0.1:\@UP\@; }
    }
EOF
    my $base = $ng->url('/jpki');
    my $crl_state = sub { (get_json($ng->url('/health'))->{json} // {})->{crls}[0] // {} };
    ok(within(3, sub { defined $crl_state->()->{loaded} && !$crl_state->()->{loaded} }),
       'a CRL read half-written: refused');
    sleep 1.2;
    my $refusals = () = $ng->log_since =~ /CRL "[^"]*files\.crl" refused/g;
    is($refusals, 1, '... once (the same version is not tried every second)');
    # the writer completes it in place, within the same second
    $put->($crlf, $whole, 0.6, 1);
    ok(within(4, sub { $crl_state->()->{loaded} }),
       'completed within the same second (another size): loaded');

    my $account = sub { my $r = login_at($base); $r->{json} ? $r->{json}{account} // $r->{json}{error} : $r->{status} };
    is($account->(), 'alice', 'mapping file: first version');
    # rewritten in place: same inode, same size, same second
    my $ino = (stat $map)[1];
    $put->($map, "$id carol\n", 0.2, 1);
    is((stat $map)[1], $ino, '(rewritten in place: same inode)');
    ok(within(4, sub { $account->() eq 'carol' }),
       'mapping file rewritten in place within the second (same size): read again');
    # replaced (rename), same size, same second
    $put->($map, "$id david\n", 0.3);
    ok(within(4, sub { $account->() eq 'david' }),
       'mapping file replaced within the second (same size): read again');
    # the parser nginx, Apache and jpkictl share (common/mapfile.c): a
    # malformed line is ignored and named by number, a cert_id's first
    # line stands
    my $mk = $ng->mark;
    $put->($map, "# accounts\n$id frank\nnot a mapping\n$id mallory\n", 0.4);
    ok(within(4, sub { $account->() eq 'frank' }), 'a cert_id on two lines: the first stands');
    like($ng->log_since($mk), qr/mapping file "[^"]*": 2 malformed lines ignored \(expected "<cert_id> <account>"\): line 3: it does not start with a cert_id \(32 lower-case hex digits\) and a space; line 4: the cert_id is mapped on line 2 already/,
         '... the malformed lines named by number in the log');

    # 7. a large mapping file is read in a thread: the worker answers
    # meanwhile (parsing and sorting 1,500,000 lines, 62 MB, in no order,
    # takes a worker a good part of a second)
    {
        my $big = "$dir/big.map";
        my $lines = 1_500_000;
        open my $h, '>:raw', $big or die;
        my ($x, $chunk) = (12345, '');
        for my $i (1 .. $lines) {
            $x = ($x * 1103515245 + 12345) % 2147483648;
            $chunk .= sprintf("%08x%08x%08x%08x u%d\n", $x, $i, $x ^ 0x5a5a5a5a, $i * 7, $i);
            if ($i % 10000 == 0) { print $h $chunk; $chunk = '' }
        }
        print $h $chunk, "$id erin\n";
        close $h or die;
        chmod 0644, $big;
        my $mark = $ng->mark;
        rename $big, $map or die;
        my ($worst, $n, $loaded) = $ng->answers_until('/pub/ping', 30, 0.02, sub {
            $ng->log_since($mark) =~ /mapping file "[^"]*" loaded, @{[ $lines + 1 ]} entries/ });
        ok($loaded, 'a mapping file of 1,500,001 lines is loaded');
        ok($n >= 3, "the worker answered $n times while it was read");
        ok($worst < 0.5, sprintf('... each within %.3f s (< 0.5 s): the reading did not stall it', $worst));
        is($account->(), 'erin', '... and is in force');
    }
    $ng->stop;
}

# ================================================================ 3. and 6. headers, subrequests

{
    my $secret = write_secret("$dir/gate.secret");
    spew("$dir/gate.map", cert_id('user1', $secret) . " alice\n", 0644);
    my $ng = JPKITest::Nginx->start(name => 'gate', http => <<"EOF");
    jpki_secret_file $secret;
    jpki_issuer $issuer crl=$crl;
    jpki_store shm zone=gate:1m;
    jpki_map_file $dir/gate.map;
    jpki_revocation crl;
    underscores_in_headers on;
    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/ { jpki_endpoints; }
        location /app/  { jpki on; proxy_pass http://127.0.0.1:\@UP\@; }
        location /any/  { satisfy any; allow 127.0.0.1; deny all; jpki on;
                          proxy_pass http://127.0.0.1:\@UP\@; }
        location /pub/  { proxy_pass http://127.0.0.1:\@UP\@; }
        location = /page.html { ssi on; root $dir/www; }
        location /gated/ { jpki on; ssi on; root $dir/www; }
        location /private/ {
            auth_request /app/check;
            auth_request_set \$acct \$jpki_account;
            proxy_set_header X-JPKI-Other \$acct;
            proxy_pass http://127.0.0.1:\@UP\@;
        }
    }
EOF
    my $r = login_at($ng->url('/jpki'));
    is($r->{status}, 200, 'gate: login');
    my $cookie = cookie_of($r) // '';
    my @spoof = ('X_JPKI_Account: admin', 'x_jpki_account: admin2',
                 'X-JPKI-Account: admin3', 'X_JPKI_Cert_Id: forged',
                 'x-jpki_other: forged');
    for my $path (qw(/app/s /any/s)) {
        $r = raw_get($ng, $path, "Cookie: jpki_session=$cookie", @spoof);
        is($r->{status}, 200, "$path: gated request with spoofed headers");
        is($r->{body}, "account=[alice] spoof=[] other=[] user=[] uri=$path\n",
           "$path: no spelling of the gate's headers reaches the upstream");
    }
    $r = raw_get($ng, '/pub/s', @spoof);
    is($r->{body}, "account=[] spoof=[] other=[] user=[] uri=/pub/s\n",
       'ungated location: spoofed headers (any spelling) removed');
    like($ng->log_since, qr/client sent gate header "X_JPKI_Account": removed/,
         'the removal is logged');

    # 6. SSI: an ungated page including a gated location
    my $um = $ng->upstream_mark;
    $r = http('GET', $ng->url('/page.html'));
    is($r->{status}, 200, 'SSI page without a session: 200 (the page is not gated)');
    unlike($r->{content} // '', qr/uri=/, '... the included gated content is not in it');
    like($r->{content} // '', qr/^before\nafter\n\z/, '... the rest of the page is');
    is($ng->upstream_hits($um, 0), 0, '... and the upstream never saw the subrequest');
    $r = http('GET', $ng->url('/page.html'), headers => { Cookie => "jpki_session=$cookie" });
    like($r->{content} // '', qr/^before\naccount=\[alice\] spoof=\[\] other=\[\] user=\[\] uri=\/app\/secret\nafter\n\z/,
         'SSI page with a session: the gated content is included, with the account');
    $r = http('GET', $ng->url('/page.html'), headers => { Cookie => 'jpki_session=forged' });
    unlike($r->{content} // '', qr/uri=/, 'SSI page with a forged cookie: nothing included');
    # a gated page including an ungated location: the include gets the
    # account header of the page's gate, not the client's
    $r = http('GET', $ng->url('/gated/page.html'),
              headers => { Cookie => "jpki_session=$cookie", 'X-JPKI-Account' => 'admin' });
    is($r->{content}, "account=[alice] spoof=[] other=[] user=[] uri=/pub/inc\n",
       'gated SSI page: its ungated include gets the gate\'s account header');

    # auth_request into a gated location
    $r = http('GET', $ng->url('/private/p'));
    is($r->{status}, 401, 'auth_request to a gated location without a session: 401');
    $r = http('GET', $ng->url('/private/p'), headers => { Cookie => "jpki_session=$cookie" });
    is($r->{status}, 200, 'auth_request with a session: 200');
    is($r->{content}, "account=[] spoof=[] other=[alice] user=[] uri=/private/p\n",
       '... $jpki_account of the subrequest (auth_request_set); its header stays its own');
    $ng->stop;
}

# ================================================================ 4. deadlines

{
    my ($op, $opid) = dribbler('slow OCSP',
        "HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: 4000\r\n\r\n");
    my ($rp, $rpid) = dribbler('slow Redis', "\$4000\r\n");
    my $secret = write_secret("$dir/slow.secret");
    spew("$dir/slow.map", cert_id('user1', $secret) . " alice\n", 0644);
    my $pb = JPKITest::free_port();
    my $ng = JPKITest::Nginx->start(name => 'slow', workers => 1, http => <<"EOF");
    server {
        listen 127.0.0.1:\@PORT\@;
        jpki_secret_file $secret;
        jpki_issuer $issuer ocsp=http://127.0.0.1:$op/;
        jpki_store shm zone=slow:1m;
        jpki_map_file $dir/slow.map;
        jpki_ocsp_timeout 2s;
        location /jpki/ { jpki_endpoints; }
    }
    server {
        listen 127.0.0.1:$pb;
        jpki_secret_file $secret;
        jpki_issuer $issuer crl=$crl;
        jpki_store redis=127.0.0.1:$rp;
        jpki_redis_timeout 2s;
        jpki_revocation crl;
        location /jpki/ { jpki_endpoints; }
    }
EOF
    my $r = login_at($ng->url('/jpki'));
    is($r->{status}, 503, 'OCSP responder sending a byte every 0.5 s: 503');
    is($r->{json} && $r->{json}{error}, 'revocation_unavailable', '... revocation_unavailable');
    cmp_ok($r->{elapsed}, '>=', 1.5, '... after jpki_ocsp_timeout (2 s)');
    cmp_ok($r->{elapsed}, '<', 6, '... and not later: a deadline, not an idle timeout')
        or diag(sprintf 'took %.1f s', $r->{elapsed});
    like($ng->log_since, qr/OCSP responder timed out/, '... logged');

    $r = login_at("http://127.0.0.1:$pb/jpki");
    is($r->{status}, 503, 'Redis sending a byte every 0.5 s: login 503');
    is($r->{json} && $r->{json}{error}, 'timeout', '... timeout');
    cmp_ok($r->{elapsed}, '>=', 1.5, '... after jpki_redis_timeout (2 s)');
    cmp_ok($r->{elapsed}, '<', 6, '... and not later')
        or diag(sprintf 'took %.1f s', $r->{elapsed});
    like($ng->log_since, qr/redis command timed out/, '... logged');
    $ng->stop;
    JPKITest::stop_pid($_, 'TERM', 2) for $opid, $rpid;
}

# ================================================================ 5. completions never re-entrant

# Redis behind a proxy on a unix socket (a refused connect fails at once
# there, not later as over TCP): a pooled connection whose peer went away
# fails its send at once, and so does the retry's connect.  Both used to
# complete the I/O inside ngx_http_jpki_redis_exec(), before its caller
# marked the request waiting: the request was finalized, then written to
# (a use after free the sanitized run reports).
{
    my $redis = JPKITest::Redis->start(name => 'redis5');
    my $secret = write_secret("$dir/close.secret");
    $redis->cmd('SET', 'jpki:v1:map:' . cert_id('user1', $secret), 'alice');
    my $flag = "$dir/proxy.closed";
    my $sock = "$dir/proxy.sock";
    my $ppid = closing_proxy($sock, $redis->port, $flag);
    my $ng = JPKITest::Nginx->start(name => 'close', workers => 1, http => <<"EOF");
    jpki_secret_file $secret;
    jpki_issuer $issuer crl=$crl;
    jpki_store redis=unix:$sock;
    jpki_revocation crl;
    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/ { jpki_endpoints; }
        location /app/  { jpki on; jpki_recheck_interval 0; proxy_pass http://127.0.0.1:\@UP\@; }
    }
EOF
    my $r = login_at($ng->url('/jpki'));
    is($r->{status}, 200, 'closing proxy: login through it');
    my $cookie = cookie_of($r) // '';
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port,
                                  Proto => 'tcp', Timeout => 5) or die "connect: $!";
    $s->autoflush(1);
    my $req = sub { "GET /app/$_[0] HTTP/1.1\r\nHost: localhost\r\nCookie: jpki_session=$cookie\r\n\r\n" };
    print $s $req->('k1');
    $r = read_response($s, 10);
    is($r->{status}, 200, 'closing proxy: a gated request (its Redis connection left in the pool)');
    my ($w) = $ng->worker_pids;
    my $mark = $ng->mark;
    sleep 0.3;
    # the worker stopped, the next request waits in its socket, then the
    # proxy closes everything: the worker reads the request before it sees
    # its pooled connection closed
    kill 'STOP', $w;
    print $s $req->('k2');
    sleep 0.2;
    kill 'USR1', $ppid;
    my $done = within(5, sub { -e $flag });
    sleep 0.2;
    kill 'CONT', $w;
    ok($done, 'closing proxy: connections and listener closed');
    $r = read_response($s, 10);
    is($r->{status}, 503, 'closing proxy: the request ends with 503');
    like($r->{body} // '', qr/"error":"store_error"/, '... store_error');
    close $s;
    my $log = $ng->log_since($mark);
    like($log, qr/jpki: redis (send failed|closed the connection)/,
         '... its pooled connection failed');
    like($log, qr/jpki: cannot connect to redis/, "... and so did the retry's connect");
    $r = gated_get($ng, $cookie, '/app/k3');
    is($r->{status}, 503, 'closing proxy: a connection refused at once: 503');
    is($r->{json} && $r->{json}{error}, 'store_error', '... store_error');
    is_deeply([ $ng->worker_pids ], [ $w ], 'closing proxy: the worker is still the same');
    is_deeply([ $ng->log_problems ], [], 'closing proxy: no alert, crash or sanitizer report');
    $ng->stop;
    JPKITest::stop_pid($ppid, 'TERM', 2);
    $redis->stop;
}

# ================================================================ 8. a mapping file that could not be read

# Mode 000: the workers (nobody under root, the test's user otherwise)
# cannot read it.  The fix, chmod, changes its ctime alone (same inode,
# size and mtime).
{
    my $secret = write_secret("$dir/unread.secret");
    my $id = cert_id('user1', $secret);
    my $map = "$dir/unread.map";
    my $t0 = int(time) - 60;
    spew($map, "$id alice\n", 0);
    utime $t0, $t0, $map or die;
    my $ng = JPKITest::Nginx->start(name => 'unread', workers => 1, http => <<"EOF");
    jpki_secret_file $secret;
    jpki_issuer $issuer crl=$crl;
    jpki_store shm zone=unread:1m;
    jpki_map_file $map;
    jpki_revocation crl;
    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/ { jpki_endpoints; }
    }
EOF
    my $account = sub {
        my $r = login_at($ng->url('/jpki'));
        return $r->{json} ? $r->{json}{account} // $r->{json}{error} : $r->{status};
    };
    my $failures = sub {
        my $n = () = $ng->log_since($_[0]) =~ /cannot read mapping file "[^"]*unread\.map": Permission denied/g;
        return $n;
    };
    my $started = time;
    SKIP: {
        skip 'the workers can read a file of mode 000', 11
            unless within(3, sub { $failures->(0) });
        isnt($account->(), 'alice', 'mapping file unreadable at worker start: no account');

        # tried again every second (its identity not recorded): seen as
        # the worker's opens of the file
        SKIP: {
            my $strace = -x '/usr/bin/strace' ? '/usr/bin/strace' : undef;
            skip 'no strace', 1 unless $strace;
            my ($w) = $ng->worker_pids;
            my $out = "$dir/unread.strace";
            my $pid = JPKITest::spawn('strace', "$dir/strace.log", $strace, '-f',
                                      '-e', 'trace=open,openat', '-o', $out, '-p', $w);
            sleep 3.2;
            JPKITest::stop_pid($pid, 'INT', 5);
            skip 'strace cannot attach here', 1
                unless slurp("$dir/strace.log") =~ /attached/;
            my $opens = () = slurp($out) =~ /open(?:at)?\(.*unread\.map"/g;
            cmp_ok($opens, '>=', 2, "... tried again every second while no table is in force ($opens opens in 3.2 s)");
        }
        sleep 0.1 while time < $started + 3;
        is($failures->(0), 1, '... the failure logged once');
        like($ng->log_since(0), qr/cannot read mapping file .*: Permission denied \(tried again every second\)/, '... saying why, and that it is tried again');

        my $ino = (stat $map)[1];
        chmod 0644, $map;
        utime $t0, $t0, $map;
        is((stat $map)[1], $ino, '(fixed in place: same inode, size and mtime)');
        ok(within(4, sub { $account->() eq 'alice' }), '... read once fixed (chmod)');

        # a table in force, then a version that cannot be read
        my $mark = $ng->mark;
        spew("$map.tmp", "$id carol\n", 0);
        utime $t0, $t0, "$map.tmp";
        rename "$map.tmp", $map or die;
        ok(within(4, sub { $failures->($mark) }), 'a new version unreadable: logged');
        is($account->(), 'alice', '... the table in force stays');
        sleep 2.2;
        is($failures->($mark), 1, '... once');
        $ino = (stat $map)[1];
        chmod 0644, $map;
        utime $t0, $t0, $map;
        is((stat $map)[1], $ino, '(fixed in place: same inode, size and mtime)');
        ok(within(4, sub { $account->() eq 'carol' }), '... read once fixed (chmod)');
    }
    $ng->stop;
}

# ================================================================ 9. the CRL zone's file identity, under its mutex

# The worker that loads a CRL into the zone writes the file's identity (56
# bytes) into the issuer's slot with the zone's mutex held; the others'
# once-a-second checks compared it without: one that read it half written
# saw neither version, took the file for changed and parsed it again (a
# second "loaded").  Shown with gdb: the loader stopped in the middle of
# that write (after its first store), the other worker then makes its
# check; once the loader went on, no second load.
subtest 'CRL zone: the slot\'s file identity is read under the mutex' => sub {
    my $gdb = (grep { -x } '/usr/bin/gdb', '/usr/local/bin/gdb')[0];
    plan skip_all => 'no gdb' unless $gdb;
    my $src = "$JPKITest::REPO/ngx_module/ngx_http_jpki_module.c";
    my @src = split /\n/, slurp($src);
    my ($line) = grep { $src[$_ - 1] =~ /^\s*sl->file = \*file;/ } 1 .. @src;
    plan skip_all => "no \"sl->file = *file;\" in $src" unless $line;
    my $secret = write_secret("$dir/tear.secret");
    spew("$dir/tear.map", cert_id('user1', $secret) . " alice\n", 0644);
    my $crlf = "$dir/tear.crl";
    spew($crlf, slurp("$JPKITest::PKI/ca2.crl"), 0644);
    # gdb: a breakpoint at that line; when it is hit, one instruction at a
    # time until the slot holds neither the old identity nor the new one
    spew("$dir/tear.py", <<'EOF');
import gdb, os, struct, time
d = os.environ['TEAR_DIR']
def flag(name, text=''):
    with open(os.path.join(d, name + '.tmp'), 'w') as f:
        f.write(text)
    os.rename(os.path.join(d, name + '.tmp'), os.path.join(d, name))
gdb.execute('set pagination off')
gdb.execute('set confirm off')
gdb.execute('break ngx_http_jpki_module.c:' + os.environ['TEAR_LINE'])
flag('armed')
state = 'breakpoint not hit'
try:
    gdb.execute('continue')
    state = 'no slot address'
    addr = int(gdb.parse_and_eval('&sl->file'))
    st = os.stat(os.environ['TEAR_FILE'])
    new = struct.pack('<QQqqqqq', st.st_dev, st.st_ino, st.st_size,
                      st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9,
                      st.st_ctime_ns // 10**9, st.st_ctime_ns % 10**9)
    inf = gdb.selected_inferior()
    old = bytes(inf.read_memory(addr, len(new)))
    state = 'written whole'
    for i in range(100000):
        gdb.execute('stepi', to_string=True)
        cur = bytes(inf.read_memory(addr, len(new)))
        if cur == new:
            break
        if cur != old:
            state = 'torn'
            break
except (gdb.error, KeyboardInterrupt) as e:
    state += ' (%s)' % e
flag('stepped', state)
end = time.time() + 60
while not os.path.exists(os.path.join(d, 'go')) and time.time() < end:
    time.sleep(0.05)
gdb.execute('delete')
gdb.execute('detach')
EOF
    my $ng = JPKITest::Nginx->start(name => 'tear', workers => 2, http => <<"EOF");
    jpki_secret_file $secret;
    jpki_issuer $issuer crl=$crlf;
    jpki_store shm zone=tear:1m;
    jpki_crl_zone tearcrl:1m;
    jpki_map_file $dir/tear.map;
    jpki_revocation crl;
    server {
        listen 127.0.0.1:\@PORT\@;
        location = /health { jpki_health; }
    }
EOF
    my $loaded = sub { (get_json($ng->url('/health'))->{json} // {})->{crls}[0]{loaded} };
    ok(within(5, $loaded), 'the CRL is loaded');
    my ($w1, $w2) = $ng->worker_pids;
    my $td = "$dir/tear.d";
    mkdir $td;
    my $wait_for = sub { my ($f, $s) = @_; within($s, sub { -e "$td/$f" }) };
    # only w1 sees the new version: w2 stopped meanwhile
    kill 'STOP', $w2;
    my $gpid = do {
        local $ENV{TEAR_DIR} = $td;
        local $ENV{TEAR_FILE} = $crlf;
        local $ENV{TEAR_LINE} = $line;
        JPKITest::spawn('gdb', "$dir/gdb.log", $gdb, '-q', '-batch', '-nx',
                        '-p', $w1, '-x', "$dir/tear.py");
    };
    # gdb lets the loader go on (its breakpoint removed) and exits; SIGINT
    # ends a wait for the breakpoint
    my $gdb_done = sub {
        spew("$td/go", '');
        kill 'INT', $gpid unless -e "$td/stepped";
        if (within(10, sub { !JPKITest::alive($gpid) })) {
            delete $JPKITest::KIDS{$gpid};
        } else {
            JPKITest::stop_pid($gpid, 'TERM', 5);
        }
    };
    my $done = sub { $gdb_done->(); kill 'CONT', $w2 };
    SKIP: {
        unless ($wait_for->('armed', 20)) {
            $done->();
            skip 'gdb cannot attach to a worker here: ' . slurp("$dir/gdb.log"), 4;
        }
        my $mark = $ng->mark;
        spew("$crlf.tmp", slurp($crlf), 0644);
        rename "$crlf.tmp", $crlf or die;
        my $stepped = $wait_for->('stepped', 10) ? slurp("$td/stepped") : 'breakpoint not hit';
        if ($stepped ne 'torn') {
            $done->();
            skip "no half-written identity to show ($stepped)", 4;
        }
        pass('the loader stopped with the identity half written (the mutex held)');
        # w2 makes its check: it waits for the mutex (or, reading without it,
        # takes the file for changed and waits to claim it); then stopped
        # there while the loader completes and gives its claim up
        kill 'CONT', $w2;
        my $futex = { x86_64 => 202, aarch64 => 98 }->{(POSIX::uname())[4]};
        if (defined $futex) {
            ok(within(3, sub { slurp("/proc/$w2/syscall") =~ /^$futex / }),
               'the other worker waits for the mutex');
        } else {
            sleep 1.5;
            pass('the other worker waits for the mutex (given 1.5 s to get there)');
        }
        kill 'STOP', $w2;
        $gdb_done->();
        sleep 0.5;
        kill 'CONT', $w2;
        sleep 2.5;
        my $n = () = $ng->log_since($mark) =~ /CRL "[^"]*tear\.crl" of issuer "card" loaded/g;
        is($n, 1, 'the new version loaded once (by the loader), not again by the other worker')
            or diag($ng->log_since($mark));
        ok($loaded->(), '... and in force');
    }
    $ng->stop;
};

done_testing();
