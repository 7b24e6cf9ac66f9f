#!/usr/bin/perl
# t/apache-module.t - what only the Apache adapter has, or what the shared
# scenario table cannot show: `apachectl configtest` errors, mpm worker and
# prefork, REMOTE_USER and JPKI_ACCOUNT, Require jpki-account, virtual hosts
# sharing or not the main server's site, cookie directives, LimitRequestBody,
# graceful and plain restarts (the embedded store survives them), an OCSP
# responder that does not answer (bounded wait), spoofed header spellings,
# and conf.example/httpd.conf itself.  Redis: t/apache-redis.t.
#   make build/mod_auth_jpki.so build/jpkictl pki && prove -v t/apache-module.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use JPKITest;
use JPKIApache;

skip_unless(qw(jpkictl pki openssl));
skip_unless_apache();

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $id = cert_id('user1', $secret);
my $id2 = cert_id('user2', $secret);
spew("$dir/map.txt", "$id alice\n$id2 bob\n", 0644);

my $site = <<"EOF";
JPKISecretFile $secret
JPKIIssuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp=@{[ $ocsp->url ]}
JPKIMapFile $dir/map.txt
EOF

my $areas = ap_gate_conf(recheck => 0);

sub login {
    my ($ap, $cert, %o) = @_;
    my $base = $ap->url($o{prefix} // '/jpki', $o{vh});
    my $ch = challenge($base);
    my $body = login_body($ch // 'none', $cert // 'user1');
    my $r = post_json("$base/login", $body, headers => $o{headers} // {});
    return wantarray ? ($r, $body) : $r;
}

# N clients at once, each M times: login, then a gated request.  Returns
# the number of rounds that went right.
sub parallel_logins {
    my ($ap, $n, $m) = @_;
    my @pids;
    for my $k (1 .. $n) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $good = 0;
            for my $i (1 .. $m) {
                my $r = login($ap);
                my $c = cookie_of($r);
                next unless $r->{status} == 200 && $c;
                $r = get($ap, "/app/p$k-$i", $c);
                $good++ if $r->{status} == 200 && $r->{content} =~ /account=\[alice\]/;
            }
            POSIX::_exit($good);
        }
        push @pids, $pid;
    }
    my $total = 0;
    for (@pids) { waitpid($_, 0); $total += $? >> 8 }
    return $total;
}

sub get {
    my ($ap, $path, $cookie, %o) = @_;
    my %h = %{ $o{headers} // {} };
    $h{Cookie} = ($o{cookie_name} // 'jpki_session') . "=$cookie" if defined $cookie;
    return http($o{method} // 'GET', $ap->url($path, $o{vh}), headers => \%h,
                %o{grep { exists $o{$_} } qw(content timeout)});
}

# ---------------------------------------------------------------- configtest

{
    spew("$dir/open.secret", slurp($secret), 0644);
    my $iss = "JPKIIssuer card ca=\@PKI\@/ca2.pem ocsp=@{[ $ocsp->url ]}";
    my $ok = "JPKISecretFile $secret\n$iss\nJPKIStore shm size=1M\n";
    my @bad = (
        ['secret file readable by others',
         "JPKISecretFile $dir/open.secret\n$iss\nJPKIStore shm", qr/JPKISecretFile: .*accessible by group or others/],
        ['missing secret file', "JPKISecretFile $dir/nope\n", qr/JPKISecretFile: /],
        ['no JPKIStore', "JPKISecretFile $secret\n$iss\n", qr/JPKIStore .*is required/],
        ['no issuer', "JPKISecretFile $secret\nJPKIStore shm\n", qr/JPKIIssuer is required/],
        ['JPKIEndpoints without the site', "<Location /jpki/>\nJPKIEndpoints On\n</Location>",
         qr/JPKIEndpoints in <Location \/jpki\/>.*no JPKISecretFile/],
        ['JPKIEndpoints at server level', "${ok}JPKIEndpoints On\n", qr/JPKIEndpoints not allowed here/],
        ['idle timeout above the lifetime',
         "$ok<Location /app/>\nJPKISessionLifetime 1h\nJPKISessionIdle 2h\n</Location>",
         qr{settings for "/app/" \(the main server\): .*idle timeout not above the lifetime}],
        ['https OCSP URL',
         "JPKIIssuer card ca=\@PKI\@/ca2.pem ocsp=https://127.0.0.1/\n", qr/http:\/\/ OCSP URL/],
        ['unknown issuer parameter',
         "JPKIIssuer card ca=\@PKI\@/ca2.pem oscp=http://127.0.0.1/\n", qr/invalid parameter "oscp=/],
        ['missing CA file', "JPKIIssuer card ca=$dir/nope.pem\n", qr/JPKIIssuer card: /],
        ['issuer without ca=', "JPKIIssuer card ocsp=http://127.0.0.1/\n", qr/needs ca=FILE/],
        ['duplicate issuer name', "$iss\n$iss\n", qr/duplicate issuer name "card"/],
        ['JPKIRevocation none', "$ok<Location />\nJPKIRevocation none\n</Location>",
         qr/must be ocsp, crl/],
        ['JPKIFailure maybe', "$ok<Location />\nJPKIFailure maybe\n</Location>",
         qr/"closed" or "open"/],
        ['SameSite None without Secure',
         "$ok<Location />\nJPKICookieSameSite None\nJPKICookieSecure Off\n</Location>",
         qr/None needs Secure/],
        ['bad store', "${ok}JPKIStore memcached=1\n", qr/JPKIStore: duplicate|JPKIStore: expects/],
        ['bad store kind', "JPKIStore memcached=1\n", qr/JPKIStore: expects/],
        ['bad shm size', "JPKIStore shm size=12x\n", qr/size= must be a size/],
        ['redis db out of range', "JPKIStore redis=127.0.0.1:6379 db=99\n", qr/invalid db=/],
        ['redis user without password', "JPKIStore redis=127.0.0.1:6379 user=u\n",
         qr/user= without password=/],
        ['bad time', "$ok<Location />\nJPKISessionLifetime 8x\n</Location>", qr/must be a time/],
        ['bad header name', "$ok<Location />\nJPKIHeader \"X Account\"\n</Location>",
         qr/JPKIHeader must be a header name/],
        ['Require jpki-account without accounts',
         "$ok<Location />\nAuthType JPKI\nRequire jpki-account\n</Location>",
         qr/needs at least one account/],
        ['challenge TTL out of range', "${ok}JPKIChallengeTTL 2s\n", qr/policy out of range/],
        ['JPKIThrottle with an unknown setting',
         "$ok<Location /jpki/>\nJPKIThrottle cert=3 tries=5\n</Location>",
         qr/JPKIThrottle: unknown setting "tries=5"/],
        ['JPKIThrottle window of 0', "${ok}JPKIThrottle window=0\n",
         qr/JPKIThrottle: window must be 1 s to 1 hour/],
        ['JPKIThrottle without a value', "$ok<Location />\nJPKIThrottle\n</Location>",
         qr/JPKIThrottle: expects off/],
        ['a trusted origin with a path',
         "$ok<Location /jpki/>\nJPKIEndpoints On\nJPKITrustedOrigins https://login.example/x\n</Location>",
         qr{settings for "/jpki/".*trusted origins must be at most 8 of http\(s\)://host\[:port\]}],
    );
    my $i = 0;
    for my $b (@bad) {
        my ($what, $main, $re) = @$b;
        my ($st, $out) = JPKIApache::Server->configtest(name => 'conf' . ++$i, main => $main);
        isnt($st, 0, "configtest refuses: $what");
        like($out, $re, "configtest refuses: $what: says why") or diag($out);
    }
    my ($st, $out) = JPKIApache::Server->configtest(name => 'conf-ok', main => "$ok$areas");
    is($st, 0, 'configtest accepts a minimal configuration') or diag($out);
    like($out, qr/Syntax OK/, 'configtest: Syntax OK');
}

# ---------------------------------------------------------------- mpms

for my $mpm (qw(worker prefork)) {
    my $ap = JPKIApache::Server->start(name => "mpm-$mpm", mpm => $mpm,
                                       main => "${site}JPKIStore shm size=1M\n$areas");
    my ($r, $body) = login($ap);
    is($r->{status}, 200, "$mpm: login");
    my $cookie = cookie_of($r);
    # several requests: they spread over the children, which share the store
    my ($ok, $replay) = (0, 0);
    for (1 .. 8) {
        $r = get($ap, "/app/$_", $cookie);
        $ok++ if $r->{status} == 200 && $r->{content} =~ /account=\[alice\]/;
        $r = post_json($ap->url('/jpki/login'), $body);
        $replay++ if $r->{status} == 401 && $r->{json}{error} eq 'challenge_replayed';
    }
    is($ok, 8, "$mpm: gated requests reach the upstream with the account");
    is($replay, 8, "$mpm: the used challenge is refused by every child");
    is(parallel_logins($ap, 6, 5), 30, "$mpm: 6 clients at once, 5 logins each");
    ok(scalar($ap->children) >= 2, "$mpm: several children");
    $ap->stop;
}

# ---------------------------------------------------------------- identity, authz, cookies

my $ap = JPKIApache::Server->start(name => 'main', main => <<"EOF" . $areas);
${site}JPKIStore shm size=1M
<Location /env/>
    AuthType JPKI
    Require valid-user
    RequestHeader set X-Remote-User "expr=%{REMOTE_USER}"
    RequestHeader set X-JPKI-Other "%{JPKI_ACCOUNT}e"
    ProxyPass http://127.0.0.1:\@UP\@/env/
</Location>
<Location /alice-only/>
    AuthType JPKI
    Require jpki-account alice "carol d"
    ProxyPass http://127.0.0.1:\@UP\@/alice-only/
</Location>
<Location /bob-only/>
    AuthType JPKI
    Require jpki-account bob
    AuthzSendForbiddenOnFailure On
    ProxyPass http://127.0.0.1:\@UP\@/bob-only/
</Location>
<Location /c/>
    JPKICookieName sid
    JPKICookiePath /c/
    JPKICookieSameSite Strict
    JPKICookieSecure Off
</Location>
<Location /c/jpki/>
    JPKIEndpoints On
</Location>
<Location /c/app/>
    AuthType JPKI
    Require valid-user
    ProxyPass http://127.0.0.1:\@UP\@/c/app/
</Location>
<Location /small/jpki/>
    JPKIEndpoints On
    LimitRequestBody 1000
</Location>
<Location /mixed/jpki/>
    JPKIEndpoints On
</Location>
ProxyPass /mixed/ http://127.0.0.1:\@UP\@/mixed/
EOF

{
    is(parallel_logins($ap, 8, 5), 40, 'event: 8 clients at once, 5 logins each');
    my $r = login($ap);
    my $alice = cookie_of($r);
    $r = get($ap, '/env/x', $alice);
    is($r->{status}, 200, 'REMOTE_USER: gated request');
    is($r->{content}, "account=[alice] spoof=[] other=[alice] user=[alice] uri=/env/x\n",
       'REMOTE_USER and JPKI_ACCOUNT hold the account (mod_headers saw them)');

    $r = get($ap, '/alice-only/x', $alice);
    is($r->{status}, 200, 'Require jpki-account: listed account passes');
    like($r->{content}, qr/account=\[alice\]/, 'Require jpki-account: account upstream');
    my $m = $ap->mark;
    $r = get($ap, '/bob-only/x', $alice);
    is($r->{status}, 403, 'Require jpki-account: other account refused (403 with AuthzSendForbiddenOnFailure)');
    is($r->{json} && $r->{json}{error}, 'account_not_allowed', 'Require jpki-account: JSON reason');
    like($r->{headers}{'content-type'} // '', qr{^application/json}, 'Require jpki-account: JSON answer');
    is($ap->upstream_hits(undef, $m), 0, 'Require jpki-account: upstream not reached');
    $r = get($ap, '/bob-only/x');
    is($r->{status}, 401, 'Require jpki-account: no session: 401');
    is($r->{json} && $r->{json}{error}, 'unauthenticated', 'Require jpki-account: no session: unauthenticated');
    my ($rb) = login($ap, 'user2');
    my $bob = cookie_of($rb);
    $r = get($ap, '/alice-only/x', $bob);
    is($r->{status}, 401, 'Require jpki-account: refused without AuthzSendForbiddenOnFailure: 401');
    is($r->{json} && $r->{json}{error}, 'account_not_allowed', '... account_not_allowed');
    $r = get($ap, '/bob-only/y', $bob);
    is($r->{status}, 200, 'Require jpki-account: bob on his location');

    # spoofed spellings of the gate's headers never reach the upstream
    $m = $ap->mark;
    $r = get($ap, '/app/s', $alice, headers => { 'x-jpki-account' => 'mallory',
                                                 'X_JPKI_Account' => 'mallory',
                                                 'X-Jpki-Cert-Id' => 'forged' });
    is($r->{content}, "account=[alice] spoof=[] other=[] user=[] uri=/app/s\n",
       'spoofed headers (any case) replaced or removed');
    like($ap->log_since(undef, $m), qr/client sent gate header "X_JPKI_Account": removed/,
         'underscore spelling removed too (CGI and frameworks fold _ into -)');
    $r = get($ap, '/mixed/p', undef, headers => { 'X-JPKI-Account' => 'mallory' });
    is($r->{content}, "account=[] spoof=[] other=[] user=[] uri=/mixed/p\n",
       'ungated ProxyPass: spoofed account header removed');
    $r = get($ap, '/mixed/jpki/status', $alice);
    is($r->{status}, 200, 'JPKIEndpoints wins over a ProxyPass covering its location');
    is($r->{json} && $r->{json}{account}, 'alice', '... status answered by the gate');

    # cookie directives
    $r = login($ap, 'user1', prefix => '/c/jpki');
    is($r->{status}, 200, 'cookie directives: login');
    my ($sc) = set_cookies($r);
    like($sc // '', qr/^sid=v1\.[A-Za-z0-9_-]+; Path=\/c\/; Max-Age=\d+; HttpOnly; SameSite=Strict$/,
         'cookie directives: name, path, SameSite, no Secure');
    my $v = cookie_of($r, 'sid');
    $r = get($ap, '/c/app/x', "$v; other=1", cookie_name => 'sid');
    is($r->{status}, 200, 'cookie directives: the gate reads the named cookie');
    $r = get($ap, '/c/app/x', $v);
    is($r->{status}, 401, 'cookie directives: the default name is not read there');

    # LimitRequestBody under the 64 KiB bound: 413 JSON, no 500
    $m = $ap->mark;
    $r = login($ap, 'user1', prefix => '/small/jpki');
    is($r->{status}, 413, 'LimitRequestBody: 413');
    is($r->{json} && $r->{json}{error}, 'too_large', 'LimitRequestBody: too_large JSON');
    my @parts = ('{"challenge":"' . ('A' x 700), 'A' x 700, '"}');
    $r = http('POST', $ap->url('/small/jpki/login'),
              headers => { 'Content-Type' => 'application/json' },
              content => sub { shift @parts });
    is($r->{status}, 413, 'LimitRequestBody, chunked: 413');
    is($r->{json} && $r->{json}{error}, 'too_large', 'LimitRequestBody, chunked: too_large JSON');
    ok(!$ap->log_problems(undef, $m), 'LimitRequestBody: nothing alarming logged');

    # HEAD on an endpoint: headers only
    $r = http('HEAD', $ap->url('/jpki/challenge'));
    is($r->{status}, 200, 'HEAD challenge: 200');
    ok(!length($r->{content} // ''), 'HEAD challenge: no body');
}

# ---------------------------------------------------------------- restarts keep the store

for my $sig (qw(USR1 HUP)) {
    my $what = $sig eq 'USR1' ? 'graceful restart' : 'restart';
    # another certificate: a logout ends every session of its certificate
    my ($r, $body) = login($ap, 'user2');
    my $cookie = cookie_of($r);
    ($r) = login($ap);
    my $bye = cookie_of($r);
    $r = get($ap, '/jpki/logout', $bye, method => 'POST');
    is($r->{status}, 200, "$what: a session logged out before");
    my @old = $ap->children;
    kill $sig, $ap->pid;
    ok($ap->new_children(@old), "$what: new children");
    sleep 0.3;
    $r = post_json($ap->url('/jpki/login'), $body);
    is($r->{json} && $r->{json}{error}, 'challenge_replayed',
       "$what: challenge used before still refused (store kept)");
    $r = get($ap, '/app/after', $cookie);
    is($r->{status}, 200, "$what: session made before still valid");
    $r = get($ap, '/app/after', $bye);
    is($r->{json} && $r->{json}{error}, 'session_logged_out', "$what: logout marker kept");
    ($r) = login($ap);
    is($r->{status}, 200, "$what: login after");
}
$ap->stop;

# ---------------------------------------------------------------- virtual hosts

{
    my $vap = JPKIApache::Server->start(name => 'vhosts',
        global => "${site}JPKIStore shm size=1M\n",
        vhosts => [ a => $areas, b => $areas,
                    c => "JPKIStore shm size=1M zone=other\n$areas" ]);
    my ($r, $body) = login($vap, 'user1', vh => 'a');
    is($r->{status}, 200, 'vhost a (main server\'s site): login');
    my $cookie = cookie_of($r);
    $r = post_json($vap->url('/jpki/login', 'b'), $body);
    is($r->{json} && $r->{json}{error}, 'challenge_replayed',
       'vhost b shares the site and its store: replay refused');
    $r = get($vap, '/app/x', $cookie, vh => 'b');
    is($r->{status}, 200, 'vhost b: the session of a is valid (same secret)');
    $r = post_json($vap->url('/jpki/login', 'c'), $body);
    is($r->{status}, 200, 'vhost c (own store zone, inherited secret): its store has not seen the challenge');
    $vap->stop;
}

# ---------------------------------------------------------------- logouts

# Every gated request reads the logout markers in the embedded store: a
# logout ends the sessions of its certificate at the next request, in every
# child, without waiting for a re-check (the default interval here).
{
    my $lap = JPKIApache::Server->start(name => 'logout',
                                        main => "${site}JPKIStore shm size=1M\n" . ap_gate_conf());
    my $c1 = cookie_of(scalar login($lap));
    my $c2 = cookie_of(scalar login($lap));
    my $bob = cookie_of(scalar login($lap, 'user2'));
    my $ok = 0;
    $ok += get($lap, "/app/a$_", $c1)->{status} == 200 for 1 .. 4;
    is($ok, 4, 'logout: a session in use');
    my $r = get($lap, '/jpki/logout', $c2, method => 'POST');
    is($r->{status}, 200, 'logout: another session of the certificate logs out');
    my $refused = 0;
    for (1 .. 6) {
        $r = get($lap, "/app/b$_", $c1);
        $refused++ if $r->{status} == 401 && ($r->{json}{error} // '') eq 'session_logged_out';
    }
    is($refused, 6, 'logout: every session of the certificate refused at once, in every child');
    is(get($lap, '/app/c', $bob)->{status}, 200, 'logout: a session of another certificate goes on');
    $lap->stop;
}

# ---------------------------------------------------------------- OCSP silent

{
    my $hole = JPKITest::BlackHole->start;
    my $oap = JPKIApache::Server->start(name => 'ocsp-hole', main => <<"EOF" . $areas);
JPKISecretFile $secret
JPKIIssuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp=@{[ $hole->url ]}
JPKIMapFile $dir/map.txt
JPKIStore shm size=1M
JPKIOCSPTimeout 1s
EOF
    my $t = time;
    my $r = login($oap);
    my $el = time - $t;
    is($r->{status}, 503, 'OCSP silent: 503');
    is($r->{json} && $r->{json}{error}, 'revocation_unavailable', 'OCSP silent: revocation_unavailable');
    ok($el < 3, sprintf('OCSP silent: answered in %.2f s (JPKIOCSPTimeout 1s)', $el));
    $oap->stop;
    $hole->stop;
}

# ---------------------------------------------------------------- conf.example/httpd.conf

{
    my $d = "$dir/example";
    mkdir $d;
    mkdir "$_" for "$d/www", "$d/logs", "$d/run";
    chmod 0755, $d, "$d/www", "$d/logs", "$d/run";
    my $pki = JPKITest::server_pki();
    spew("$d/secret", slurp($secret), 0600);
    spew("$d/jlis-ca.pem", slurp("$pki/ca1.pem") . slurp("$pki/ca2.pem"), 0644);
    spew("$d/jlis-auth.crl", slurp("$pki/ca2.crl"), 0644);
    spew("$d/accounts", "$id example-user\n", 0644);
    spew("$d/www/login.html", "<p>Sign in</p>\n", 0644);
    my ($port, $oport) = (free_port(), $ocsp->port);
    my $echo = JPKIApache::Echo->new($d, 'app');
    $echo->start;
    my $conf = slurp("$FindBin::Bin/../conf.example/httpd.conf");
    my $mod = JPKIApache::module_copy();
    $conf =~ s{/usr/lib/apache2/modules/mod_auth_jpki.so}{$mod};
    $conf =~ s{/usr/lib/apache2/modules}{$JPKIApache::MODDIR}g;
    $conf =~ s{/etc/jpki}{$d}g;
    $conf =~ s{/var/www/jpki}{$d/www}g;
    $conf =~ s{/var/log/apache2}{$d/logs}g;
    $conf =~ s{/run/apache2-jpki}{$d/run}g;
    $conf =~ s{"/etc/apache2"}{"$d"};
    $conf =~ s{127\.0\.0\.1:8080}{127.0.0.1:$port}g;
    $conf =~ s{127\.0\.0\.1:8888}{127.0.0.1:$oport}g;
    $conf =~ s{127\.0\.0\.1:9000}{127.0.0.1:$echo->{ports}{app}}g;
    $conf =~ s{^User www-data\nGroup www-data}{$> == 0 ? "User nobody\nGroup nogroup" : ''}me;
    # plain http on localhost in the test: let the client keep the cookie
    $conf =~ s{(JPKIHeader\s+X-JPKI-Account)}{$1\nJPKICookieSecure Off};
    spew("$d/httpd.conf", $conf);
    my $pid = JPKITest::spawn('apache example', "$d/stderr.log", $JPKIApache::APACHE,
                              '-d', $d, '-f', "$d/httpd.conf", '-DFOREGROUND');
    ok(wait_port($port, 10, $pid), 'conf.example/httpd.conf: Apache starts')
        or diag(slurp("$d/stderr.log") . slurp("$d/logs/jpki-error.log"));
    my $u = "http://127.0.0.1:$port";
    my $r = http('GET', "$u/account/");
    is($r->{status}, 401, 'example: the application is closed to API clients');
    $r = http('GET', "$u/account/", headers => { Accept => 'text/html' });
    is($r->{status}, 302, 'example: browsers are sent to the login page');
    like($r->{headers}{location} // '', qr{^/login\.html\?return_to=/account/}, 'example: Location');
    $r = http('GET', "$u/login.html");
    is($r->{content}, "<p>Sign in</p>\n", 'example: the login page is served');
    $r = http('GET', "$u/jpki-health");
    is($r->{status}, 200, 'example: health 200 (CRL fresh, store up)');
    is($r->{json} && $r->{json}{crls}[0]{loaded} ? 1 : 0, 1, 'example: the CRL is loaded');
    my $ch = challenge("$u/jpki");
    $r = post_json("$u/jpki/login", login_body($ch, 'user1'));
    is($r->{status}, 200, 'example: login');
    is($r->{json} && $r->{json}{account}, 'example-user', 'example: mapped account');
    my $c = cookie_of($r);
    $r = http('GET', "$u/account/", headers => { Cookie => "jpki_session=$c",
                                                 'X-JPKI-Account' => 'someone-else' });
    is($r->{content}, "account=[example-user] spoof=[] other=[] user=[] uri=/account/\n",
       'example: the application gets the account, not the spoofed header');
    like(slurp("$d/logs/jpki-error.log"), qr/jpki audit: \{"ts":\d+,"event":"login","result":"ok"/,
         'example: audit line in the error log');
    JPKITest::stop_pid($pid, 'TERM', 10);
    $echo->stop;
    my @bad = grep { /:(alert|crit|emerg)\]|exit signal/ } split /\n/, slurp("$d/logs/jpki-error.log");
    ok(!@bad, 'example: error log clean') or diag(join "\n", @bad);
}

$ocsp->stop;

done_testing();
