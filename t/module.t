#!/usr/bin/perl
# t/module.t - what the scenario table cannot show, on nginx and Apache
# alike (t/lib/JPKIServer.pm): configuration errors found by `nginx -t` /
# `apache2 -t`, parallel logins, the cookie directives, HEAD on an
# endpoint, spoofed gate headers, a logout reaching every worker at once,
# a reload or restart with each store (the old workers exit, the store
# survives: a challenge used before is still refused, sessions and their
# logout markers stay valid), and an OCSP responder that does not answer
# (bounded wait).
# nginx only: the variables ($jpki_account ...).
# Apache only: mpm worker and prefork, REMOTE_USER and JPKI_ACCOUNT,
# Require jpki-account, LimitRequestBody, virtual hosts sharing or not the
# main server's site.  (conf.example's snippets: t/debian-layout.t.)
#   make all pki && prove -v t/module.t   (JPKI_SERVERS=nginx: one server)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl redis));
my @kinds = JPKIServer::kinds();

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $redis = JPKITest::Redis->start(name => 'redis');
my $id = cert_id('user1', $secret);
my $id2 = cert_id('user2', $secret);
spew("$dir/map.txt", "$id alice\n$id2 bob\n", 0644);
$redis->cmd('SET', "jpki:v1:map:$id", 'alice');
$redis->cmd('SET', "jpki:v1:map:$id2", 'bob');

my $issuer = 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem ocsp=' . $ocsp->url;
# (an ungated proxy over all of /mixed/)
my %MIXED = (nginx => "        location /mixed/ { proxy_pass http://127.0.0.1:\@UP\@; }\n",
             apache => "ProxyPass /mixed/ http://127.0.0.1:\@UP\@/mixed/\n");
my %cookie = (cookie_name => 'sid', cookie_path => '/c/', cookie_samesite => 'Strict',
              cookie_secure => 'off');
# The site of the main servers: the endpoints, /app/ gated and re-checked
# on every request, /dflt/ gated with the default re-check interval, the
# cookie directives under /c/, endpoints under an ungated proxy (/mixed/).
sub site {
    my ($store, %more) = @_;
    return (secret => $secret, issuer => $issuer, store => $store,
            $store eq 'shm' ? (map => "$dir/map.txt") : (),
            locations => [
                '/jpki/'       => { endpoints => 1 },
                '/app/'        => { gate => 1, upstream => 1, recheck_interval => 0 },
                '/dflt/'       => { gate => 1, upstream => 1 },
                '/c/jpki/'     => { endpoints => 1, %cookie },
                '/c/app/'      => { gate => 1, upstream => 1, %cookie },
                '/mixed/jpki/' => { endpoints => 1 },
            ],
            nginx_server => $MIXED{nginx}, apache => $MIXED{apache},
            %more);
}

# (LOGIN RESPONSE, LOGIN BODY) of a JSON login of CERT at SRV's PREFIX/jpki.
sub login_with_body {
    my ($srv, $cert, $prefix) = @_;
    my $base = $srv->url(($prefix // '') . '/jpki');
    my $body = login_body(challenge($base) // 'none', $cert);
    return (post_json("$base/login", $body), $body);
}

# ================================================================ the configuration test

my $iss2 = 'card ca=@PKI@/ca2.pem ocsp=' . $ocsp->url;
my %ok = (secret => $secret, issuer => $iss2, store => 'shm');
spew("$dir/open.secret", slurp($secret), 0644);
# [what, site, what the message says: re (both servers), or nginx => /
# apache => (that server only; the other one: see below)].  A message is a
# regex in which {KEY} stands for the name the server gives directive KEY
# (nginx quotes it and says "directive").
my @BAD = (
    ['secret file readable by others', { %ok, secret => "$dir/open.secret" },
     re => 'secret file ".*" must not be accessible by group or others'],
    ['missing secret file', { %ok, secret => "$dir/nope" }, re => 'cannot read secret file'],
    ['no store', { secret => $secret, issuer => $iss2, locations => [ '/' => { gate => 1 } ] },
     re => '{store}.*is required'],
    ['no issuer', { secret => $secret, store => 'shm' }, re => '{issuer}.*is required'],
    # (Apache accepts a gate without the site; a request there is refused)
    ['a gate without the site', { locations => [ '/' => { gate => 1 } ] },
     nginx => 'the gate needs'],
    ['endpoints without the site', { locations => [ '/jpki/' => { endpoints => 1 } ] },
     nginx => 'the gate needs jpki_secret_file, jpki_issuer and jpki_store for this server',
     apache => 'JPKIEndpoints in <Location /jpki/>.*no JPKISecretFile'],
    ['endpoints at server level', { %ok, endpoints => 1 }, re => '{endpoints}.*not allowed here'],
    ['idle timeout above the lifetime',
     { %ok, locations => [ '/app/' => { gate => 1, session_lifetime => '1h',
                                        session_idle => '2h' } ] },
     nginx => 'idle timeout not above the lifetime',
     apache => 'settings for "/app/" \(the main server\): .*idle timeout not above the lifetime'],
    ['https OCSP URL', { %ok, issuer => 'card ca=@PKI@/ca2.pem ocsp=https://127.0.0.1/' },
     re => 'http:// OCSP URL'],
    ['OCSP URL with a port out of range', { %ok, issuer => 'card ca=@PKI@/ca2.pem ocsp=http://127.0.0.1:99999/' },
     re => 'issuer "card": has an invalid OCSP URL'],
    ['OCSP URL with an IPv6 zone', { %ok, issuer => 'card ca=@PKI@/ca2.pem ocsp=http://[fe80::1%eth0]/' },
     re => 'issuer "card": has an invalid OCSP URL'],
    ['unknown issuer parameter', { %ok, issuer => 'card ca=@PKI@/ca2.pem oscp=http://127.0.0.1/' },
     re => 'invalid parameter "oscp='],
    ['missing CA file', { %ok, issuer => "card ca=$dir/nope.pem" }, re => 'cannot read CA file'],
    ['issuer without ca=', { %ok, issuer => 'card ocsp=http://127.0.0.1/' }, re => 'needs ca=FILE'],
    ['duplicate issuer name', { %ok, issuer => [ $iss2, $iss2 ] },
     re => '{issuer}"?( directive)? needs a unique name'],
    ['revocation none', { %ok, locations => [ '/' => { gate => 1, revocation => 'none' } ] },
     re => 'must be ocsp, crl'],
    ['failure maybe', { %ok, locations => [ '/' => { failure => 'maybe' } ] },
     re => '"closed" or "open"'],
    ['SameSite None without Secure',
     { %ok, locations => [ '/' => { gate => 1, cookie_samesite => 'None', cookie_secure => 'off' } ] },
     re => 'None needs Secure'],
    ['OCSP nonce maybe', { %ok, ocsp_nonce => 'maybe' },
     re => '{ocsp_nonce}"?( directive)? must be "on" or "off"'],
    ['two stores', { %ok, store => [ 'shm', 'memcached=1' ] }, re => '{store}"?( directive)? is duplicate'],
    ['bad store kind', { %ok, store => 'memcached=1' }, re => '{store}.*expects'],
    ['bad shm size', { %ok, store => 'shm size=12x' },
     re => '{store}"?( directive)?: size= must be a size'],
    ['redis db out of range', { %ok, store => 'redis=127.0.0.1:6379 db=99' }, re => 'invalid db='],
    ['redis user without password', { %ok, store => 'redis=127.0.0.1:6379 user=u' },
     re => 'user= without password_file='],
    ['bad time', { %ok, locations => [ '/' => { session_lifetime => '8x' } ] },
     re => '{session_lifetime}"?( directive)? must be a time'],
    ['bad header name', { %ok, locations => [ '/' => { header => '"X Account"' } ] },
     re => '{header}"?( directive)? must be a header name'],
    ['Require jpki-account without accounts',
     { %ok, apache => "<Location />\nAuthType JPKI\nRequire jpki-account\n</Location>" },
     apache => 'needs at least one account'],
    ['challenge TTL out of range', { %ok, challenge_ttl => '2s' }, re => 'policy out of range'],
    ['throttle with an unknown setting',
     { %ok, locations => [ '/jpki/' => { throttle => 'cert=3 tries=5' } ] },
     re => '{throttle}"?( directive)?: unknown setting "tries=5"'],
    ['throttle window of 0', { %ok, throttle => 'window=0' },
     re => '{throttle}"?( directive)?: window must be 1 s to 1 hour'],
    ['throttle without a value', { %ok, locations => [ '/' => { throttle => '' } ] },
     nginx => 'invalid number of arguments in "jpki_throttle"',
     apache => 'JPKIThrottle: expects off'],
    ['a trusted origin without a scheme',
     { %ok, locations => [ '/jpki/' => { endpoints => 1, trusted_origins => 'login.example' } ] },
     re => 'trusted origins must be at most 8 of http\(s\)://host\[:port\]'],
    ['a trusted origin with a path',
     { %ok, locations => [ '/jpki/' => { endpoints => 1,
                                         trusted_origins => 'https://login.example/x' } ] },
     nginx => 'trusted origins must be at most 8 of http\(s\)://host\[:port\]',
     apache => 'settings for "/jpki/".*trusted origins must be at most 8 of http\(s\)://host\[:port\]'],
);

for my $kind (@kinds) {
    my $i = 0;
    for my $b (@BAD) {
        my ($what, $site, %re) = @$b;
        my $re = $re{$kind} // $re{re};
        $i++;
        next unless defined $re;
        $re =~ s/\{(\w+)\}/quotemeta JPKIServer::directive_name($kind, $1)/ge;
        my ($st, $out) = JPKIServer->configtest($kind, name => "conf$i", %$site);
        isnt($st, 0, "$kind: the configuration test refuses: $what");
        like($out, qr/$re/, "$kind: the configuration test refuses: $what: says why") or diag($out);
    }
    my ($st, $out) = JPKIServer->configtest($kind, name => 'conf-ok', %ok,
        locations => [ '/jpki/' => { endpoints => 1 }, '/app/' => { gate => 1, upstream => 1 } ]);
    is($st, 0, "$kind: the configuration test accepts a minimal configuration") or diag($out);
    like($out, qr/Syntax OK/, 'configtest: Syntax OK') if $kind eq 'apache';
}

# ================================================================ the main servers

# Apache only: REMOTE_USER and JPKI_ACCOUNT, Require jpki-account,
# LimitRequestBody.
my $APACHE_MORE = <<"EOF";
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
<Location /small/jpki/>
    JPKIEndpoints On
    LimitRequestBody 1000
</Location>
EOF
# nginx only: the variables.
my $NGINX_MORE = <<"EOF";
        location /vars/ {
            jpki on;
            add_header X-Account \$jpki_account always;
            add_header X-Cert-Id \$jpki_cert_id always;
            add_header X-Auth-Time \$jpki_auth_time always;
            add_header X-Status \$jpki_status always;
            proxy_pass http://127.0.0.1:\@UP\@;
        }
EOF

my %main;
for my $kind (@kinds) {
    my $srv = $main{$kind} = JPKIServer->start($kind, name => 'main', site('shm',
        nginx_server => $MIXED{nginx} . $NGINX_MORE, apache => $MIXED{apache} . $APACHE_MORE));
    is($srv->parallel_logins(8, 5), 40, "$kind: 8 clients at once, 5 logins each");

    # ---- cookie directives
    my $r = $srv->login('user1', prefix => '/c');
    is($r->{status}, 200, "$kind: cookie directives: login");
    my ($sc) = set_cookies($r);
    like($sc // '', qr/^sid=v1\.[A-Za-z0-9_-]+; Path=\/c\/; Max-Age=\d+; HttpOnly; SameSite=Strict$/,
         "$kind: cookie directives: name, path, SameSite, no Secure");
    my $v = cookie_of($r, 'sid');
    $r = $srv->get('/c/app/x', headers => { Cookie => "other=1; sid=$v" });
    is($r->{status}, 200, "$kind: cookie directives: the gate reads the named cookie");
    like($r->{content}, qr/account=\[alice\]/, "$kind: cookie directives: account upstream");
    $r = $srv->get('/c/app/x', cookie => $v);
    is($r->{status}, 401, "$kind: cookie directives: the default name is not read there");

    # ---- HEAD on an endpoint: headers only
    $r = http('HEAD', $srv->url('/jpki/challenge'));
    is($r->{status}, 200, "$kind: HEAD challenge: 200");
    ok(!length($r->{content} // ''), "$kind: HEAD challenge: no body");

    # ---- spoofed spellings of the gate's headers never reach the upstream
    my $alice = cookie_of($srv->login('user1'));
    $r = $srv->get('/app/s', cookie => $alice, headers => { 'x-jpki-account' => 'mallory',
                                                           'X_JPKI_Account' => 'mallory',
                                                           'X-Jpki-Cert-Id' => 'forged' });
    is($r->{content}, "account=[alice] spoof=[] other=[] user=[] uri=/app/s\n",
       "$kind: spoofed headers (any case) replaced or removed");
    $r = $srv->get('/mixed/p', headers => { 'X-JPKI-Account' => 'mallory' });
    is($r->{content}, "account=[] spoof=[] other=[] user=[] uri=/mixed/p\n",
       "$kind: ungated proxy: spoofed account header removed");
    $r = $srv->get('/mixed/jpki/status', cookie => $alice);
    is($r->{status}, 200, "$kind: the endpoints win over a proxy covering their location");
    is($r->{json} && $r->{json}{account}, 'alice', '... status answered by the gate');
}

# ---- nginx only: the variables
if (my $ngv = $main{nginx}) {
    my $cookie = cookie_of($ngv->login('user1'));
    my $t = time;
    my $r = $ngv->get('/vars/x', cookie => $cookie);
    is($r->{status}, 200, 'variables: gated request');
    is($r->{headers}{'x-account'}, 'alice', '$jpki_account');
    is($r->{headers}{'x-cert-id'}, $id, '$jpki_cert_id');
    ok(($r->{headers}{'x-auth-time'} // 0) > $t - 60 && $r->{headers}{'x-auth-time'} <= $t + 1,
       '$jpki_auth_time: the login time');
    is($r->{headers}{'x-status'}, 'ok', '$jpki_status: ok');
    $r = $ngv->get('/vars/x');
    is($r->{status}, 401, 'variables: refused request');
    is($r->{headers}{'x-status'}, 'unauthenticated', '$jpki_status: the reason');
    ok(!defined $r->{headers}{'x-account'}, '$jpki_account: empty when refused');
}

# ---- Apache only: identity and authorization, the underscore spelling,
# LimitRequestBody
if (my $ap = $main{apache}) {
    my $alice = cookie_of($ap->login('user1'));
    my $r = $ap->get('/env/x', cookie => $alice);
    is($r->{status}, 200, 'REMOTE_USER: gated request');
    is($r->{content}, "account=[alice] spoof=[] other=[alice] user=[alice] uri=/env/x\n",
       'REMOTE_USER and JPKI_ACCOUNT hold the account (mod_headers saw them)');

    $r = $ap->get('/alice-only/x', cookie => $alice);
    is($r->{status}, 200, 'Require jpki-account: listed account passes');
    like($r->{content}, qr/account=\[alice\]/, 'Require jpki-account: account upstream');
    my $m = $ap->mark;
    $r = $ap->get('/bob-only/x', cookie => $alice);
    is($r->{status}, 403, 'Require jpki-account: other account refused (403 with AuthzSendForbiddenOnFailure)');
    is($r->{json} && $r->{json}{error}, 'account_not_allowed', 'Require jpki-account: JSON reason');
    like($r->{headers}{'content-type'} // '', qr{^application/json}, 'Require jpki-account: JSON answer');
    is($ap->upstream_hits($m), 0, 'Require jpki-account: upstream not reached');
    $r = $ap->get('/bob-only/x');
    is($r->{status}, 401, 'Require jpki-account: no session: 401');
    is($r->{json} && $r->{json}{error}, 'unauthenticated', 'Require jpki-account: no session: unauthenticated');
    my $bob = cookie_of($ap->login('user2'));
    $r = $ap->get('/alice-only/x', cookie => $bob);
    is($r->{status}, 401, 'Require jpki-account: refused without AuthzSendForbiddenOnFailure: 401');
    is($r->{json} && $r->{json}{error}, 'account_not_allowed', '... account_not_allowed');
    $r = $ap->get('/bob-only/y', cookie => $bob);
    is($r->{status}, 200, 'Require jpki-account: bob on his location');

    # (nginx drops header names with an underscore itself, unlogged)
    $m = $ap->mark;
    $ap->get('/app/s', cookie => $alice, headers => { 'X_JPKI_Account' => 'mallory' });
    like($ap->log_since($m), qr/client sent gate header "X_JPKI_Account": removed/,
         'underscore spelling removed too (CGI and frameworks fold _ into -)');

    # LimitRequestBody under the 64 KiB bound: 413 JSON, no 500
    $m = $ap->mark;
    $r = $ap->login('user1', prefix => '/small');
    is($r->{status}, 413, 'LimitRequestBody: 413');
    is($r->{json} && $r->{json}{error}, 'too_large', 'LimitRequestBody: too_large JSON');
    my @parts = ('{"challenge":"' . ('A' x 700), 'A' x 700, '"}');
    $r = http('POST', $ap->url('/small/jpki/login'),
              headers => { 'Content-Type' => 'application/json' },
              content => sub { shift @parts });
    is($r->{status}, 413, 'LimitRequestBody, chunked: 413');
    is($r->{json} && $r->{json}{error}, 'too_large', 'LimitRequestBody, chunked: too_large JSON');
    ok(!$ap->log_problems($m), 'LimitRequestBody: nothing alarming logged');
}

# ---- a logout ends the sessions of its certificate at the next request, in
# every worker, without waiting for a re-check (/dflt/: the default
# interval): every gated request reads the logout markers in the store
for my $kind (@kinds) {
    my $srv = $main{$kind};
    my $c1 = cookie_of($srv->login('user1'));
    my $c2 = cookie_of($srv->login('user1'));
    my $bob = cookie_of($srv->login('user2'));
    my $ok = 0;
    $ok += $srv->get("/dflt/a$_", cookie => $c1)->{status} == 200 for 1 .. 4;
    is($ok, 4, "$kind: logout: a session in use");
    my $r = $srv->logout($c2);
    is($r->{status}, 200, "$kind: logout: another session of the certificate logs out");
    my $refused = 0;
    for (1 .. 6) {
        $r = $srv->get("/dflt/b$_", cookie => $c1);
        $refused++ if $r->{status} == 401 && ($r->{json}{error} // '') eq 'session_logged_out';
    }
    is($refused, 6, "$kind: logout: every session of the certificate refused at once, in every worker");
    is($srv->get('/dflt/c', cookie => $bob)->{status}, 200,
       "$kind: logout: a session of another certificate goes on");
}

# ---- the mapping file's malformed lines are named by number in the log,
# and a cert_id's first line stands (the parser both servers and jpkictl
# share, common/mapfile.c)
for my $kind (@kinds) {
    my $bad = "$dir/bad-$kind.map";
    spew($bad, "# accounts\n$id frank\nnot a mapping\n$id mallory\n", 0644);
    my $srv = JPKIServer->start($kind, name => 'badmap', secret => $secret,
                                issuer => $issuer, store => 'shm', map => $bad,
                                workers => 1,
                                locations => [ '/jpki/' => { endpoints => 1 } ]);
    my $r = $srv->login('user1');
    is($r->{json} && $r->{json}{account}, 'frank',
       "$kind: mapping file: a cert_id on two lines, the first stands");
    like($srv->log_since(undef), qr/mapping file "[^"]*": 2 malformed lines ignored \(expected "<cert_id> <account>"\): line 3: it does not start with a cert_id \(32 lower-case hex digits\) and a space; line 4: the cert_id is mapped on line 2 already/,
         "$kind: mapping file: the malformed lines named by number in the log");
    $srv->stop;
}

# ---- the mapping file is watched alike by both servers (common/watch.c):
# a version is told apart by device, inode, size, mtime and ctime to the
# nanosecond (a file rewritten in place with the same size, its mtime kept
# as `touch -d` or `cp -p` do, is read again); a failure is logged once for
# a version and cause, and a second, different broken file again; the
# table in force stays meanwhile.  (Apache compared mtime, size and inode
# only, and logged a failure once in its life.)
for my $kind (@kinds) {
    my $m = "$dir/watch-$kind.map";
    my $t0 = int(time) - 3600;
    spew($m, "$id alice\n", 0644);
    utime $t0, $t0, $m or die;
    my $srv = JPKIServer->start($kind, name => 'watchmap', secret => $secret,
                                issuer => $issuer, store => 'shm', map => $m,
                                workers => 1,
                                locations => [ '/jpki/' => { endpoints => 1 } ]);
    # (Apache checks at most once a second, from requests: each try is one)
    my $until = sub {
        my ($what, $cond) = @_;
        my $end = time + 6;
        my $r;
        do { $r = $srv->login('user1'); sleep 0.2 unless $cond->($r) }
            until $cond->($r) || time > $end;
        return $r->{json} ? $r->{json}{account} // $r->{json}{error} : $r->{status};
    };
    my $account = sub { my $want = shift; $until->($want, sub { ($_[0]{json}{account} // '') eq $want }) };
    is($account->('alice'), 'alice', "$kind: watched mapping file: read at start");
    my $loaded = () = $srv->log_since(undef) =~ /mapping file "[^"]*watch-$kind\.map" loaded, 1 entries/g;
    cmp_ok($loaded, '>=', 1, "$kind: ... \"loaded, 1 entries\" in the log (notice)");

    my $ino = (stat $m)[1];
    spew($m, "$id carol\n");                 # in place: same inode and size
    utime $t0, $t0, $m or die;               # its mtime kept
    is_deeply([ (stat $m)[1, 7, 9] ], [ $ino, length("$id carol\n"), $t0 ], '(same inode, size and mtime)');
    is($account->('carol'), 'carol',
       "$kind: rewritten in place, same size and mtime: read again (its ctime)");

    # two versions that cannot be read (over the size limit: sparse files),
    # each put in place at once (rename)
    my $mk = $srv->mark;
    my $fails = sub { my $n = () = $srv->log_since($mk) =~ /cannot read mapping file "[^"]*watch-$kind\.map": larger than \d+ bytes/g; $n };
    for my $extra (1, 2) {
        open my $h, '>', "$m.tmp" or die;
        truncate $h, 64 * 1024 * 1024 + $extra or die;
        close $h;
        rename "$m.tmp", $m or die;
        $until->('failure', sub { $fails->() >= $extra });
        is($fails->(), $extra, "$kind: broken mapping file, version $extra: logged");
        sleep 2.2;                       # (checks a second apart, or more)
        $srv->login('user1') for 1 .. 3;
        is($fails->(), $extra, "$kind: ... once");
        is($account->('carol'), 'carol', "$kind: ... the table in force stays");
    }
    spew("$m.tmp", "$id dave\n", 0644);
    rename "$m.tmp", $m or die;
    is($account->('dave'), 'dave', "$kind: fixed: read");
    $srv->stop;
}

# ================================================================ reloads keep the store

# nginx: `nginx -s reload` (SIGHUP): the old workers exit cleanly (idle Redis
# connections closed, no "open socket left" alert).  Apache: a graceful
# restart (USR1) and a restart (HUP).
my %redis_srv = map { ($_ => JPKIServer->start($_, name => 'redis',
                                               site('redis=127.0.0.1:' . $redis->port))) } @kinds;
for my $kind (@kinds) {
    for my $store (qw(shm redis)) {
        my $srv = $store eq 'shm' ? $main{$kind} : $redis_srv{$kind};
        for my $sig ($kind eq 'nginx' ? ('HUP') : qw(USR1 HUP)) {
            my $t = "$kind/$store " . ($sig eq 'USR1' ? 'graceful restart'
                                       : $kind eq 'nginx' ? 'reload' : 'restart');
            # (a logout ends every session of its certificate: another one's)
            my ($r, $body) = login_with_body($srv, 'user2');
            is($r->{status}, 200, "$t: login before");
            my $cookie = cookie_of($r);
            my $bye = cookie_of($srv->login('user1'));
            $r = $srv->logout($bye);
            is($r->{status}, 200, "$t: a session of another certificate logged out");
            # several gated requests: idle Redis connections in every worker
            $r = $srv->get("/app/$_", cookie => $cookie) for 1 .. 6;
            is($r->{status}, 200, "$t: gated requests before");
            ok(scalar($srv->workers) >= 1, "$t: workers running");
            ok($srv->reload(signal => $sig), "$t: the old workers exited, new ones run");
            $r = post_json($srv->url('/jpki/login'), $body);
            is($r->{status}, 401, "$t: challenge used before still refused (store kept)");
            is($r->{json} && $r->{json}{error}, 'challenge_replayed', "$t: ... challenge_replayed");
            $r = $srv->get('/app/after', cookie => $cookie);
            is($r->{status}, 200, "$t: session made before still valid");
            like($r->{content}, qr/account=\[bob\]/, "$t: ... account header upstream");
            $r = $srv->get('/app/after', cookie => $bye);
            is($r->{status}, 401, "$t: logout marker kept");
            is($r->{json} && $r->{json}{error}, 'session_logged_out', "$t: ... session_logged_out");
            is($srv->login('user2')->{status}, 200, "$t: login after");
        }
    }
}
$_->stop for map { ($main{$_}, $redis_srv{$_}) } @kinds;

# ================================================================ OCSP silent

for my $kind (@kinds) {
    my $hole = JPKITest::BlackHole->start;
    my $srv = JPKIServer->start($kind, name => 'ocsp-hole', site('shm'),
                                issuer => 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem ocsp=' . $hole->url,
                                ocsp_timeout => '1s');
    my $t = time;
    my $r = $srv->login('user1');
    my $el = time - $t;
    is($r->{status}, 503, "$kind: OCSP silent: 503");
    is($r->{json} && $r->{json}{error}, 'revocation_unavailable', "$kind: OCSP silent: revocation_unavailable");
    ok($el < 3, sprintf('%s: OCSP silent: answered in %.2f s (OCSP timeout 1 s)', $kind, $el));
    $srv->stop;
    $hole->stop;
}

# ================================================================ Apache only

if (grep { $_ eq 'apache' } @kinds) {
    # ---- mpm worker and prefork
    for my $mpm (qw(worker prefork)) {
        my $ap = JPKIServer->start('apache', name => "mpm-$mpm", mpm => $mpm, site('shm'));
        my ($r, $body) = login_with_body($ap, 'user1');
        is($r->{status}, 200, "$mpm: login");
        my $cookie = cookie_of($r);
        # several requests: they spread over the children, which share the store
        my ($ok, $replay) = (0, 0);
        for (1 .. 8) {
            $r = $ap->get("/app/$_", cookie => $cookie);
            $ok++ if $r->{status} == 200 && $r->{content} =~ /account=\[alice\]/;
            $r = post_json($ap->url('/jpki/login'), $body);
            $replay++ if $r->{status} == 401 && $r->{json}{error} eq 'challenge_replayed';
        }
        is($ok, 8, "$mpm: gated requests reach the upstream with the account");
        is($replay, 8, "$mpm: the used challenge is refused by every child");
        is($ap->parallel_logins(6, 5), 30, "$mpm: 6 clients at once, 5 logins each");
        ok(scalar($ap->workers) >= 2, "$mpm: several children");
        $ap->stop;
    }

    # ---- virtual hosts: the main server's site, shared or with a store of
    # their own
    my @locs = (locations => [ '/jpki/' => { endpoints => 1 },
                               '/app/' => { gate => 1, upstream => 1, recheck_interval => 0 } ]);
    my $vap = JPKIApache::Server->start(name => 'vhosts',
        global => JPKIServer::conf('apache', secret => $secret, issuer => $issuer,
                                   map => "$dir/map.txt", store => 'shm'),
        vhosts => [ a => JPKIServer::conf('apache', @locs), b => JPKIServer::conf('apache', @locs),
                    c => JPKIServer::conf('apache', store => 'shm zone=other', @locs) ]);
    my $ch = challenge($vap->url('/jpki', 'a'));
    my $body = login_body($ch, 'user1');
    my $r = post_json($vap->url('/jpki/login', 'a'), $body);
    is($r->{status}, 200, 'vhost a (main server\'s site): login');
    my $cookie = cookie_of($r);
    $r = post_json($vap->url('/jpki/login', 'b'), $body);
    is($r->{json} && $r->{json}{error}, 'challenge_replayed',
       'vhost b shares the site and its store: replay refused');
    $r = http('GET', $vap->url('/app/x', 'b'), headers => { Cookie => "jpki_session=$cookie" });
    is($r->{status}, 200, 'vhost b: the session of a is valid (same secret)');
    $r = post_json($vap->url('/jpki/login', 'c'), $body);
    is($r->{status}, 200, 'vhost c (own store zone, inherited secret): its store has not seen the challenge');
    $vap->stop;
}

$redis->stop;
$ocsp->stop;

done_testing();
