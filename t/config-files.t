#!/usr/bin/perl
# t/config-files.t - a CA, secret or mapping file the configuration names
# but that cannot be read is reported at the start-up configuration test
# (`nginx -t`, `apache2 -t`) with its path and the system's reason ("No
# such file or directory", "Permission denied"), not "I/O error".  The
# same table runs against both servers.
#   make build/ngx_http_jpki_module.so build/mod_auth_jpki.so build/jpkictl pki
#   prove -v t/config-files.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;

skip_unless(qw(nginx module pki openssl));
skip_unless_apache();

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
spew("$dir/map.txt", "# cert_id account\n", 0644);
my $gone = "$dir/no-such-dir/gone";

# what each server's configuration names: [label, secret, CA, map file]
my @cases = (
    [ 'secret file', "$gone.secret", '@PKI@/ca2.pem', "$dir/map.txt" ],
    [ 'CA file',     $secret, "$gone.pem", "$dir/map.txt" ],
    [ 'mapping file', $secret, '@PKI@/ca2.pem', "$gone.map" ],
);

sub nginx_conf {
    my ($sec, $ca, $map) = @_;
    return <<"EOF";
    jpki_secret_file $sec;
    jpki_issuer card ca=$ca;
    jpki_store shm zone=jpki:1m;
    jpki_map_file $map;
    server {
        listen 127.0.0.1:\@PORT\@;
        location /jpki/ { jpki_endpoints; }
    }
EOF
}

sub apache_conf {
    my ($sec, $ca, $map) = @_;
    return <<"EOF";
JPKISecretFile $sec
JPKIIssuer card ca=$ca
JPKIStore shm size=1M
JPKIMapFile $map
<Location /jpki/>
    JPKIEndpoints On
</Location>
EOF
}

my $n = 0;
for my $c (@cases) {
    my ($what, @files) = @$c;
    my ($path) = grep { index($_, $gone) == 0 } @files;
    $n++;
    my @servers = (
        [ 'nginx -t' => sub {
              JPKITest::Nginx->test_config(name => "ng$n", http => nginx_conf(@files)) } ],
        [ 'apache2 -t' => sub {
              JPKIApache::Server->configtest(name => "ap$n", main => apache_conf(@files)) } ],
    );
    for my $s (@servers) {
        my ($name, $run) = @$s;
        my ($st, $out) = $run->();
        isnt($st, 0, "$name: a missing $what is refused");
        like($out, qr/\Q$path\E/, "$name: ... the message names it") or diag $out;
        like($out, qr/No such file or directory/,
             "$name: ... and says why") or diag $out;
        unlike($out, qr/I\/O error/, "$name: ... not \"I/O error\"") or diag $out;
    }
}

# a file that exists but cannot be read (not as root: root reads it anyway)
SKIP: {
    skip 'running as root: permissions do not stop root', 4 if $> == 0;
    my $locked = "$dir/locked.pem";
    spew($locked, slurp(JPKITest::server_pki() . '/ca2.pem'), 0);
    my ($st, $out) = JPKITest::Nginx->test_config(name => 'ng-perm',
        http => nginx_conf($secret, $locked, "$dir/map.txt"));
    isnt($st, 0, 'nginx -t: an unreadable CA file is refused');
    like($out, qr/\Q$locked\E.*Permission denied/, '... with its path and '
         . '"Permission denied"') or diag $out;
    ($st, $out) = JPKIApache::Server->configtest(name => 'ap-perm',
        main => apache_conf($secret, $locked, "$dir/map.txt"));
    isnt($st, 0, 'apache2 -t: an unreadable CA file is refused');
    like($out, qr/\Q$locked\E.*Permission denied/, '... with its path and '
         . '"Permission denied"') or diag $out;
}

done_testing();
