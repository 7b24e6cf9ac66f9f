#!/usr/bin/perl
# t/nginx-module.t - what only the nginx adapter has: the variables
# ($jpki_account ...), the cookie directives, configuration errors found by
# `nginx -t`, and `nginx -s reload` (SIGHUP) with each store: the old
# workers exit cleanly (idle Redis connections closed, no "open socket left"
# alert), the embedded store survives the reload (a challenge used before
# it is still refused, sessions and their logout markers stay valid).
#   make build/ngx_http_jpki_module.so build/jpkictl pki && prove -v t/nginx-module.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use JPKITest;

skip_unless(qw(nginx module jpkictl pki openssl redis));

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $redis = JPKITest::Redis->start(name => 'redis');
my $id = cert_id('user1', $secret);
my $id2 = cert_id('user2', $secret);
spew("$dir/map.txt", "$id alice\n$id2 bob\n", 0644);
$redis->cmd('SET', "jpki:v1:map:$id", 'alice');
$redis->cmd('SET', "jpki:v1:map:$id2", 'bob');

sub conf {
    my ($store) = @_;
    return <<"EOF";
    jpki_secret_file $secret;
    jpki_issuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp=@{[ $ocsp->url ]};
    $store
    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/ { jpki_endpoints; }
        location /app/  { jpki on; jpki_recheck_interval 0;
                          proxy_pass http://127.0.0.1:\@UP\@; }
        location /vars/ {
            jpki on;
            add_header X-Account \$jpki_account always;
            add_header X-Cert-Id \$jpki_cert_id always;
            add_header X-Auth-Time \$jpki_auth_time always;
            add_header X-Status \$jpki_status always;
            proxy_pass http://127.0.0.1:\@UP\@;
        }
        location /c/ {
            jpki_cookie_name sid;
            jpki_cookie_path /c/;
            jpki_cookie_samesite Strict;
            jpki_cookie_secure off;
            location /c/jpki/ { jpki_endpoints; }
            location /c/app/  { jpki on; proxy_pass http://127.0.0.1:\@UP\@; }
        }
    }
EOF
}

my %ng = (
    shm   => JPKITest::Nginx->start(name => 'shm', http => conf(
                 "jpki_store shm zone=jpki:1m;\n    jpki_map_file $dir/map.txt;")),
    redis => JPKITest::Nginx->start(name => 'redis', http => conf(
                 'jpki_store redis=127.0.0.1:' . $redis->port . ';')),
);

sub pid_alive { my ($p) = @_; return -e "/proc/$p" && slurp("/proc/$p/stat") !~ /^\d+ \(.*\) Z/ }

for my $store (qw(shm redis)) {
    my $ng = $ng{$store};
    my $base = $ng->url('/jpki');
    my $ch = challenge($base);
    my $body = login_body($ch, 'user1');
    my $r = post_json("$base/login", $body);
    is($r->{status}, 200, "$store: login before the reload");
    my $cookie = cookie_of($r);
    # (a logout ends every session of its certificate: another one's)
    $r = post_json("$base/login", login_body(challenge($base), 'user2'));
    my $bye = cookie_of($r);
    $r = http('POST', "$base/logout", headers => { Cookie => "jpki_session=$bye" });
    is($r->{status}, 200, "$store: a session of another certificate logged out");
    # several gated requests: idle Redis connections in every worker
    for (1 .. 6) {
        $r = http('GET', $ng->url("/app/$_"), headers => { Cookie => "jpki_session=$cookie" });
    }
    is($r->{status}, 200, "$store: gated requests before the reload");

    my @old = $ng->worker_pids;
    ok(@old >= 1, "$store: workers running");
    kill 'HUP', $ng->{pid};
    my $end = time + 10;
    sleep 0.05 while time < $end && (grep { pid_alive($_) } @old);
    ok(!(grep { pid_alive($_) } @old), "$store: the old workers exited after SIGHUP");
    my @new = $ng->worker_pids;
    ok(@new >= 1, "$store: new workers running");

    $r = post_json("$base/login", $body);
    is($r->{status}, 401, "$store: challenge used before the reload still refused");
    is($r->{json} && $r->{json}{error}, 'challenge_replayed', "$store: ... challenge_replayed");
    $r = http('GET', $ng->url('/app/after'), headers => { Cookie => "jpki_session=$cookie" });
    is($r->{status}, 200, "$store: session made before the reload still valid");
    like($r->{content}, qr/account=\[alice\]/, "$store: ... account header upstream");
    $r = http('GET', $ng->url('/app/after'), headers => { Cookie => "jpki_session=$bye" });
    is($r->{status}, 401, "$store: logout marker survives the reload");
    is($r->{json} && $r->{json}{error}, 'session_logged_out', "$store: ... session_logged_out");
    $r = post_json("$base/login", login_body(challenge($base), 'user1'));
    is($r->{status}, 200, "$store: login after the reload");
}

# ---------------------------------------------------------------- variables

{
    my $ng = $ng{shm};
    my $r = post_json($ng->url('/jpki/login'), login_body(challenge($ng->url('/jpki')), 'user1'));
    my $cookie = cookie_of($r);
    my $t = time;
    $r = http('GET', $ng->url('/vars/x'), headers => { Cookie => "jpki_session=$cookie" });
    is($r->{status}, 200, 'variables: gated request');
    is($r->{headers}{'x-account'}, 'alice', '$jpki_account');
    is($r->{headers}{'x-cert-id'}, $id, '$jpki_cert_id');
    ok(($r->{headers}{'x-auth-time'} // 0) > $t - 60 && $r->{headers}{'x-auth-time'} <= $t + 1,
       '$jpki_auth_time: the login time');
    is($r->{headers}{'x-status'}, 'ok', '$jpki_status: ok');
    $r = http('GET', $ng->url('/vars/x'));
    is($r->{status}, 401, 'variables: refused request');
    is($r->{headers}{'x-status'}, 'unauthenticated', '$jpki_status: the reason');
    ok(!defined $r->{headers}{'x-account'}, '$jpki_account: empty when refused');
}

# ---------------------------------------------------------------- cookie directives

{
    my $ng = $ng{shm};
    my $r = post_json($ng->url('/c/jpki/login'), login_body(challenge($ng->url('/c/jpki')), 'user1'));
    is($r->{status}, 200, 'cookie directives: login');
    my ($sc) = set_cookies($r);
    like($sc, qr/^sid=v1\.[A-Za-z0-9_-]+; Path=\/c\/; Max-Age=\d+; HttpOnly; SameSite=Strict$/,
         'cookie directives: name, path, SameSite, no Secure');
    my $v = cookie_of($r, 'sid');
    $r = http('GET', $ng->url('/c/app/x'), headers => { Cookie => "other=1; sid=$v" });
    is($r->{status}, 200, 'cookie directives: the gate reads the named cookie');
    like($r->{content}, qr/account=\[alice\]/, 'cookie directives: account upstream');
    $r = http('GET', $ng->url('/c/app/x'), headers => { Cookie => "jpki_session=$v" });
    is($r->{status}, 401, 'cookie directives: the default name is not read there');
}

# ---------------------------------------------------------------- nginx -t

{
    spew("$dir/open.secret", slurp($secret), 0644);
    my $ok_issuer = "jpki_issuer card ca=\@PKI\@/ca2.pem ocsp=@{[ $ocsp->url ]};";
    my @bad = (
        ['secret file readable by others',
         "jpki_secret_file $dir/open.secret; $ok_issuer jpki_store shm zone=j:1m;",
         'location / { jpki on; }', qr/secret|mode|readable|permission/i],
        ['no jpki_store',
         "jpki_secret_file $secret; $ok_issuer", 'location / { jpki on; }',
         qr/jpki_store.*required/],
        ['gate without the http-level settings', '', 'location / { jpki on; }',
         qr/the gate needs/],
        ['idle timeout above the lifetime',
         "jpki_secret_file $secret; $ok_issuer jpki_store shm zone=j:1m;",
         'location / { jpki on; jpki_session_lifetime 1h; jpki_session_idle 2h; }',
         qr/idle timeout not above the lifetime/],
        ['https OCSP URL',
         "jpki_secret_file $secret; jpki_issuer card ca=\@PKI\@/ca2.pem ocsp=https://127.0.0.1/; jpki_store shm zone=j:1m;",
         '', qr/http:\/\/ OCSP URL/],
        ['unknown issuer parameter',
         "jpki_secret_file $secret; jpki_issuer card ca=\@PKI\@/ca2.pem oscp=http://127.0.0.1/; jpki_store shm zone=j:1m;",
         '', qr/invalid parameter "oscp=/],
        ['jpki_revocation none', "jpki_secret_file $secret; $ok_issuer jpki_store shm zone=j:1m;",
         'location / { jpki on; jpki_revocation none; }', qr/must be ocsp, crl/],
        ['SameSite None without Secure',
         "jpki_secret_file $secret; $ok_issuer jpki_store shm zone=j:1m;",
         'location / { jpki on; jpki_cookie_samesite None; jpki_cookie_secure off; }',
         qr/None needs Secure/],
        ['jpki_ocsp_nonce maybe',
         "jpki_secret_file $secret; $ok_issuer jpki_ocsp_nonce maybe; jpki_store shm zone=j:1m;",
         '', qr/"jpki_ocsp_nonce" directive must be "on" or "off"/],
        ['a trusted origin without a scheme',
         "jpki_secret_file $secret; $ok_issuer jpki_store shm zone=j:1m;",
         'location /jpki/ { jpki_endpoints; jpki_trusted_origins login.example; }',
         qr{trusted origins must be at most 8 of http\(s\)://host\[:port\]}],
    );
    my $i = 0;
    for my $b (@bad) {
        my ($what, $http, $loc, $re) = @$b;
        my ($st, $out) = JPKITest::Nginx->test_config(name => 'conf' . ++$i, http => <<"EOF");
    $http
    server { listen 127.0.0.1:\@PORT\@; $loc }
EOF
        isnt($st, 0, "nginx -t refuses: $what");
        like($out, $re, "nginx -t refuses: $what: says why") or diag($out);
    }
    my ($st, $out) = JPKITest::Nginx->test_config(name => 'conf-ok', http => <<"EOF");
    jpki_secret_file $secret; $ok_issuer jpki_store shm zone=j:1m;
    server { listen 127.0.0.1:\@PORT\@; location / { jpki on; } }
EOF
    is($st, 0, 'nginx -t accepts a minimal configuration') or diag($out);
}

$ng{$_}->stop for sort keys %ng;
$redis->stop;
$ocsp->stop;

done_testing();
