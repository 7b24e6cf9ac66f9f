#!/usr/bin/perl
# t/ocsp-host.t - the Host header an OCSP query carries is the responder's
# host and port (RFC 9110: the port unless it is the scheme's default),
# through nginx and Apache: both take it from the core's split of the
# issuer's ocsp= URL (common/conf_issuer.c).  A relay in front of the
# responder, on a port that is not 80, notes each query's Host and passes
# the query on; the login it serves succeeds.  (nginx sent the host alone.)
#   make build/ngx_http_jpki_module.so build/mod_auth_jpki.so build/jpkictl pki
#   prove -v t/ocsp-host.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKIServer;
use IO::Socket::INET;

skip_unless(qw(jpkictl pki openssl));
my @kinds = JPKIServer::kinds();

my $f = site_fixture();
my ($dir, $secret) = @$f{qw(dir secret)};
my $seen = "$dir/hosts.txt";

# The relay: each connection's request head and body read, its Host line
# noted in $seen, the request sent to the responder and its answer back.
my $listen = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Proto => 'tcp', ReuseAddr => 1) or die "relay: $!";
my $port = $listen->sockport;
my $relay = JPKITest::fork_code('ocsp relay', "$dir/relay.log", sub {
    while (my $c = $listen->accept) {
        my $req = '';
        while ($req !~ /\r\n\r\n/) {
            my $n = sysread($c, $req, 4096, length $req) or last;
        }
        my ($len) = $req =~ /^Content-Length:\s*(\d+)/mi;
        my $want = index($req, "\r\n\r\n") + 4 + ($len // 0);
        while (length($req) < $want) {
            sysread($c, $req, 4096, length $req) or last;
        }
        my ($host) = $req =~ /^Host:\s*([^\r\n]*)/mi;
        open my $fh, '>>', $seen or die;
        print $fh ($host // '(none)'), "\n";
        close $fh;
        my $up = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $f->{ocsp}->port,
                                       Timeout => 5) or next;
        print $up $req;
        local $/;
        my $ans = <$up> // '';
        print $c $ans;
        close $up;
        close $c;
    }
});

my %srv = map {
    ($_ => JPKIServer->start($_, name => 'main', secret => $secret, store => 'shm',
                             issuer => 'card ca=@PKI@/ca2.pem ocsp=http://127.0.0.1:'
                                       . "$port/ocsp",
                             map => $f->{map},
                             locations => [ '/jpki/' => { endpoints => 1 },
                                            '/app/' => { gate => 1, upstream => 1 } ]))
} @kinds;

for my $kind (@kinds) {
    unlink $seen;
    my $r = login_to($srv{$kind}, 'user1');
    is($r->{status}, 200, "$kind: a login checked by OCSP through the relay")
        or diag($r->{content});
    my @hosts = -e $seen ? split /\n/, slurp($seen) : ();
    ok(@hosts >= 1, "$kind: the query went to the relay");
    is($hosts[0], "127.0.0.1:$port", "$kind: its Host names the port too");
}

$_->stop for values %srv;
JPKITest::stop_pid($relay, 'TERM', 5);
done_testing();
