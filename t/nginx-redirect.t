#!/usr/bin/perl
# t/nginx-redirect.t - a gated request that nginx redirects internally
# (try_files to a named location, error_page) keeps the account header the
# gate set; a client's copy is still stripped.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;

skip_unless(qw(nginx module jpkictl pki openssl));

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
spew("$dir/map.txt", cert_id('user1', $secret) . " alice\n", 0644);
mkdir "$dir/www";
chmod 0755, "$dir/www";

my $ng = JPKITest::Nginx->start(name => 'redirect', workers => 1, http => <<"EOF");
    jpki_secret_file $secret;
    jpki_issuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp=@{[ $ocsp->url ]};
    jpki_map_file $dir/map.txt;
    jpki_store shm zone=jpki:1m;
    server {
        listen 127.0.0.1:\@PORT\@;
        root $dir/www;
        location /jpki/ { jpki_endpoints; }
        location /app/  { jpki on; try_files \$uri \@up; }
        location /err/  { jpki on; error_page 404 = \@up; }
        location \@up    { proxy_pass http://127.0.0.1:\@UP\@; }
    }
EOF

my $login = login_to($ng, 'user1');
is($login->{status}, 200, 'login');
my $cookie = cookie_of($login) // '';
for my $path ('/app/x', '/err/x') {
    my $mark = $ng->mark;
    my $r = http('GET', $ng->url($path), headers => { Cookie => "jpki_session=$cookie" });
    is($r->{status}, 200, "$path: gated, then redirected to a named location");
    like($r->{content}, qr/account=\[alice\]/, "$path: the upstream gets the gate's account");
    unlike($ng->log_since($mark), qr/client sent gate header/,
           "$path: the gate's own header is not taken for a client's");
    $r = http('GET', $ng->url($path), headers => {
        Cookie => "jpki_session=$cookie", 'X-JPKI-Account' => 'mallory',
        'X_JPKI_Account' => 'mallory2' });
    like($r->{content}, qr/account=\[alice\]/, "$path: with a client's header too, the gate's account");
    unlike($r->{content}, qr/mallory/, "$path: not the client's");
    $r = http('GET', $ng->url($path));
    is($r->{status}, 401, "$path: without a session: 401");
}
$ng->stop;
done_testing();
