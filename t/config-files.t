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
use JPKIServer;

skip_unless(qw(pki openssl));
my @kinds = JPKIServer::kinds();

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

# the site (t/lib/JPKIServer.pm) naming these files
sub site {
    my ($sec, $ca, $map) = @_;
    return (secret => $sec, issuer => "card ca=$ca", store => 'shm', map => $map,
            locations => [ '/jpki/' => { endpoints => 1 } ]);
}
my %TEST = (nginx => 'nginx -t', apache => 'apache2 -t');

my $n = 0;
for my $c (@cases) {
    my ($what, @files) = @$c;
    my ($path) = grep { index($_, $gone) == 0 } @files;
    $n++;
    for my $kind (@kinds) {
        my $name = $TEST{$kind};
        my ($st, $out) = JPKIServer->configtest($kind, name => "conf$n", site(@files));
        isnt($st, 0, "$name: a missing $what is refused");
        like($out, qr/\Q$path\E/, "$name: ... the message names it") or diag $out;
        like($out, qr/No such file or directory/,
             "$name: ... and says why") or diag $out;
        unlike($out, qr/I\/O error/, "$name: ... not \"I/O error\"") or diag $out;
    }
}

# a file that exists but cannot be read (not as root: root reads it anyway)
SKIP: {
    skip 'running as root: permissions do not stop root', 2 * @kinds if $> == 0;
    my $locked = "$dir/locked.pem";
    spew($locked, slurp(JPKITest::server_pki() . '/ca2.pem'), 0);
    for my $kind (@kinds) {
        my ($st, $out) = JPKIServer->configtest($kind, name => 'perm',
                                                site($secret, $locked, "$dir/map.txt"));
        isnt($st, 0, "$TEST{$kind}: an unreadable CA file is refused");
        like($out, qr/\Q$locked\E.*Permission denied/, '... with its path and '
             . '"Permission denied"') or diag $out;
    }
}

done_testing();
