#!/usr/bin/perl
# t/nginx-sites.t - several sites in one nginx: a server block with its own
# jpki_secret_file, jpki_issuer and jpki_store is a site of its own (its own
# keys, cert_ids, mappings and store); the other servers use the http
# block's.  Challenges and cookies of one site are refused by the other.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;

skip_unless(qw(nginx module jpkictl pki openssl));

my $dir = tmpdir();
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $sa = write_secret("$dir/a.secret");
my $sb = write_secret("$dir/b.secret");
spew("$dir/a.map", cert_id('user1', $sa) . " alice-at-a\n", 0644);
spew("$dir/b.map", cert_id('user1', $sb) . " bob-at-b\n", 0644);
my $pb = JPKITest::free_port();

my $http = <<"EOF";
    jpki_secret_file $sa;
    jpki_issuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp=@{[ $ocsp->url ]};
    jpki_store shm zone=site_a:1m;
    jpki_map_file $dir/a.map;
    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/ { jpki_endpoints; }
        location /app/  { jpki on; proxy_pass http://127.0.0.1:\@UP\@; }
    }
    server {
        listen 127.0.0.1:$pb;
        jpki_secret_file $sb;
        jpki_issuer card ca=\@PKI\@/ca2.pem ocsp=@{[ $ocsp->url ]};
        jpki_store shm zone=site_b:1m;
        jpki_map_file $dir/b.map;
        jpki_session_lifetime 1h;
        location /jpki/ { jpki_endpoints; }
        location /app/  { jpki on; proxy_pass http://127.0.0.1:\@UP\@; }
        location = /health { jpki_health; }
    }
EOF
my $ng = JPKITest::Nginx->start(name => 'sites', http => $http);
my $A = $ng->url('');
my $B = "http://127.0.0.1:$pb";

sub login_at {
    my ($base, $ch) = @_;
    $ch //= challenge("$base/jpki") // return {};
    return post_json("$base/jpki/login", login_body($ch, 'user1', 'user1'));
}

my $ra = login_at($A);
is($ra->{status}, 200, 'site A: login');
is($ra->{json}{account}, 'alice-at-a', 'site A: its own mapping');
my $rb = login_at($B);
is($rb->{status}, 200, 'site B (server block): login');
is($rb->{json}{account}, 'bob-at-b', 'site B: its own mapping');
like($rb->{headers}{'set-cookie'} // '', qr/Max-Age=3600;/, 'site B: its own session lifetime');

my $ca = cookie_of($ra) // '';
my $cb = cookie_of($rb) // '';
my $sa_status = get_json("$A/jpki/status", headers => { Cookie => "jpki_session=$ca" })->{json} // {};
my $sb_status = get_json("$B/jpki/status", headers => { Cookie => "jpki_session=$cb" })->{json} // {};
is($sa_status->{cert_id}, cert_id('user1', $sa), 'site A: cert_id under its secret');
is($sb_status->{cert_id}, cert_id('user1', $sb), 'site B: cert_id under its secret');
isnt($sa_status->{cert_id}, $sb_status->{cert_id}, 'the two sites name the certificate differently');

like(http('GET', "$A/app/x", headers => { Cookie => "jpki_session=$ca" })->{content},
     qr/account=\[alice-at-a\]/, 'site A: gated request');
like(http('GET', "$B/app/x", headers => { Cookie => "jpki_session=$cb" })->{content},
     qr/account=\[bob-at-b\]/, 'site B: gated request');
my $x = http('GET', "$B/app/x", headers => { Cookie => "jpki_session=$ca" });
is($x->{status}, 401, "site A's cookie on site B: 401");
like($x->{json}{error} // '', qr/^session_(unknown_key|tampered)$/, "... $x->{json}{error}");
my $ch = challenge("$A/jpki");
$x = login_at($B, $ch);
is($x->{status}, 401, "site A's challenge on site B: 401");
like($x->{json}{error} // '', qr/^challenge_(unknown_key|tampered)$/, "... $x->{json}{error}");
is(get_json("$B/health")->{status}, 200, 'site B: health');

$ng->stop;

for ([ "server { listen 127.0.0.1:\@PORT\@; jpki_store shm zone=z:1m; }",
       qr/jpki_secret_file.*is required/ ],
     [ "jpki_secret_file $sa; jpki_issuer card ca=\@PKI\@/ca2.pem; jpki_store shm zone=z:1m;\n"
       . "server { listen 127.0.0.1:\@PORT\@; location / { jpki_store shm zone=y:1m; } }",
       qr/"jpki_store" directive is not allowed here/ ]) {
    my ($st, $out) = JPKITest::Nginx->test_config(name => 'sites-t', http => $_->[0]);
    isnt($st, 0, 'nginx -t refuses a bad site configuration');
    like($out, $_->[1], '... with a clear message');
}

# A site directive in a server that is no site of its own (it uses the http
# block's) would do nothing: nginx -t refuses it, naming it and its line.
my $site_http = "jpki_secret_file $sa; jpki_issuer card ca=\@PKI\@/ca2.pem; "
              . "jpki_store shm zone=z:1m;\n";
my $own_site = "jpki_secret_file $sb; jpki_issuer card ca=\@PKI\@/ca2.pem; "
             . "jpki_store shm zone=y:1m;\n";
my $inherits = qr/this server inherits the site of the http block; set it there, or give this server its own jpki_secret_file, jpki_issuer and jpki_store/;
my $n = 0;

# Refused: the message names the directive, the file and the line of it.
sub refused_ok {
    my ($http, $directive, $why, $name) = @_;
    my $tn = 'sites-unused-' . ++$n;
    my ($st, $out) = JPKITest::Nginx->test_config(name => $tn, http => $http);
    my @lines = split /\n/, slurp(tmpdir() . "/$tn/nginx.conf");
    my ($line) = grep { $lines[$_ - 1] =~ /^\s*\Q$directive\E / } 1 .. @lines;
    isnt($st, 0, "nginx -t refuses $directive $name");
    like($out, qr/"\Q$directive\E" here has no effect: $why.* in \S+\/nginx\.conf:$line\b/,
         '... naming it, why, and its file and line') or diag $out;
}

for my $d ('jpki_ocsp_timeout 5s;', 'jpki_challenge_ttl 60s;', "jpki_map_file $dir/b.map;",
           'jpki_crl_grace 2h;', 'jpki_ocsp_nonce on;', 'jpki_redis_timeout 2s;',
           'jpki_crl_zone crlz:1m;', 'jpki_ocsp_cache_good 10m;') {
    my ($name) = $d =~ /^(\S+)/;
    refused_ok($site_http . "server {\n    listen 127.0.0.1:\@PORT\@;\n    $d\n"
               . "    location / { jpki on; }\n}", $name, $inherits,
               'in a server inheriting the site of the http block');
}

# The first of several is named.
refused_ok($site_http . "server {\n    listen 127.0.0.1:\@PORT\@;\n    jpki_clock_skew 1m;\n"
           . "    jpki_ocsp_timeout 5s;\n}", 'jpki_clock_skew', $inherits,
           '(the first of two) in an inheriting server');

# No site at all: neither this server nor the http block has one.
refused_ok("server {\n    listen 127.0.0.1:\@PORT\@;\n    jpki_ocsp_timeout 5s;\n}",
           'jpki_ocsp_timeout', qr/this server has no site, nor has the http block/,
           'in a server when no block has a site');

# At http level without a site there: a server's site takes nothing from it.
refused_ok("jpki_challenge_ttl 60s;\nserver {\n    listen 127.0.0.1:\@PORT\@;\n    $own_site}",
           'jpki_challenge_ttl', qr/the http block has no site .*server's site takes nothing from it/,
           'at http level when only servers have sites');

# A server with a site of its own takes them, before or after its
# jpki_secret_file, jpki_issuer and jpki_store; so does a complete http block.
my ($st, $out) = JPKITest::Nginx->test_config(name => 'sites-own', http => $site_http
    . "jpki_ocsp_timeout 4s; jpki_challenge_ttl 90s;\n"
    . "server {\n    listen 127.0.0.1:\@PORT\@;\n    jpki_ocsp_timeout 5s; jpki_challenge_ttl 60s;\n"
    . "    jpki_map_file $dir/b.map; jpki_crl_grace 2h; jpki_ocsp_nonce on;\n"
    . "    jpki_redis_timeout 2s; jpki_crl_zone crlz:1m; jpki_ocsp_cache_good 10m;\n"
    . "    $own_site    location / { jpki on; }\n}\n"
    . "server {\n    listen 127.0.0.1:$pb;\n    location / { jpki on; }\n}");
is($st, 0, 'nginx -t accepts site directives in a server with its own site') or diag $out;

$ocsp->stop;
done_testing();
