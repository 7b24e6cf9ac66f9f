#!/usr/bin/perl
# t/throttle-levels.t - a location's throttle changes only what it names
# over the server's, through nginx and Apache (docs/configuration.md): the
# server allows one login a certificate in the window (logins=1), the
# endpoints' location sets only the window; a second login of the same
# certificate is answered 429 there.  (nginx took the location's line
# alone: the default of 60 logins.)
#   make build/ngx_http_jpki_module.so build/mod_auth_jpki.so build/jpkictl pki
#   prove -v t/throttle-levels.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl));
my @kinds = JPKIServer::kinds();

my $f = site_fixture();
my %srv = map {
    ($_ => JPKIServer->start($_, name => 'main', secret => $f->{secret}, issuer => $f->{issuer},
                             store => 'shm', map => $f->{map}, throttle => 'logins=1',
                             locations => [ '/jpki/' => { endpoints => 1, throttle => 'window=120' },
                                            '/app/' => { gate => 1, upstream => 1 } ]))
} @kinds;

for my $kind (@kinds) {
    is(login_to($srv{$kind}, 'user1')->{status}, 200, "$kind: a first login");
    my $r = login_to($srv{$kind}, 'user1');
    is($r->{status}, 429, "$kind: a second one in the window: 429 (the server's logins=1 "
                          . "kept under the location's window=)") or diag($r->{content});
}

$_->stop for values %srv;
done_testing();
