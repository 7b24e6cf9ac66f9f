#!/usr/bin/perl
# t/ocsp-shared.t - concurrent logins of one certificate ask the OCSP
# responder once: the first login's query is shared by the others waiting
# for the same certificate (nginx: within a worker; Apache: within a child).
# Logins of different certificates each have their own query, and so does
# every login when queries carry a nonce (jpki_ocsp_nonce, JPKIOCSPNonce).
# The real `openssl ocsp` answers behind a relay that holds every query two
# seconds (so that the logins overlap even on a loaded machine) and counts
# them.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use POSIX ();
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl));
my @kinds = JPKIServer::kinds();

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my @certs = qw(user1 user-ec rev-keyCompromise);
spew("$dir/map.txt", join('', map { cert_id($_, $secret) . " acct-$_\n" } @certs), 0644);

my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $redis = JPKITest::Redis->start(name => 'redis');

# The relay: each connection is held two seconds, then forwarded to the
# responder (one at a time: `openssl ocsp` is sequential); one line per
# query in queries.log.
my $count = "$dir/queries.log";
my $listen = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Proto => 'tcp', ReuseAddr => 1) or die "relay: $!";
my $relay_port = $listen->sockport;
JPKITest::fork_code('ocsp relay', "$dir/relay.log", sub {
    $SIG{CHLD} = 'IGNORE';
    while (my $c = $listen->accept) {
        my $pid = fork // next;
        if ($pid) { close $c; next }
        my $req = '';
        while ($req !~ /\r\n\r\n/ || length($req) < want($req)) {
            my $n = sysread($c, $req, 65536, length $req) or POSIX::_exit(0);
        }
        open my $fh, '>>', $count or POSIX::_exit(1);
        syswrite $fh, "query\n";
        close $fh;
        sleep 2;
        my $up = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ocsp->port)
            or POSIX::_exit(1);
        syswrite $up, $req;
        my $resp = '';
        while (sysread($up, $resp, 65536, length $resp)) { }
        syswrite $c, $resp;
        POSIX::_exit(0);
    }
});
sub want {
    my ($req) = @_;
    my ($h) = $req =~ /^(.*?\r\n\r\n)/s or return 1 << 30;
    my ($cl) = $h =~ /^Content-Length:\s*(\d+)/mi;
    return length($h) + ($cl // 0);
}
sub queries { my $t = slurp($count) // ''; my @l = $t =~ /^query$/mg; scalar @l }

# N logins at once (each in its own process): their answers
sub at_once {
    my ($srv, @who) = @_;
    my @kids;
    for my $i (0 .. $#who) {
        pipe(my $r, my $w) or die;
        my $pid = fork // die;
        if (!$pid) {
            close $r;
            my $res = login_to($srv, $who[$i]);
            print $w ($res->{status} // 0), ' ', ($res->{json}{error} // $res->{json}{account} // ''), "\n";
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [ $pid, $r ];
    }
    my @out;
    for (@kids) {
        my ($pid, $r) = @$_;
        local $/;
        my $line = <$r> // '';
        $line =~ s/\s+\z//;
        push @out, $line;
        waitpid $pid, 0;
    }
    return @out;
}

sub check {
    my ($label, $srv, $flush) = @_;
    my $q0 = queries();
    my @r = at_once($srv, ('user1') x 6);
    is_deeply(\@r, [ ('200 acct-user1') x 6 ], "$label: six logins of one certificate at once all pass")
        or diag explain \@r;
    is(queries() - $q0, 1, "$label: ... with one OCSP query");

    $flush->();          # no cached status: the next logins ask again
    $q0 = queries();
    @r = at_once($srv, 'user-ec', 'rev-keyCompromise');
    is_deeply([ sort @r ], [ '200 acct-user-ec', '403 cert_revoked' ],
              "$label: logins of two certificates at once: each its own answer")
        or diag explain \@r;
    is(queries() - $q0, 2, "$label: ... two queries");
}

# With nonces, no sharing: each login its own query, each answer checked
# against its own nonce (`openssl ocsp` echoes it).
sub check_nonce {
    my ($label, $srv) = @_;
    $redis->cmd('FLUSHALL');
    my $q0 = queries();
    my @r = at_once($srv, ('user1') x 4);
    is_deeply(\@r, [ ('200 acct-user1') x 4 ], "$label with nonces: four logins at once all pass")
        or diag explain \@r;
    is(queries() - $q0, 4, "$label with nonces: ... four queries");
}

my $iss = "card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp=http://127.0.0.1:$relay_port/";

# nginx and Apache (t/lib/JPKIServer.pm), each without and with nonces
# (each server on its own database)
my %db = (nginx => 1, apache => 2);
for my $nonce (0, 1) {
    for my $kind (@kinds) {
        my $srv = JPKIServer->start($kind, name => "$kind-$nonce", workers => 1,
            secret => $secret, issuer => $iss,
            store => 'redis=127.0.0.1:' . $redis->port . " db=$db{$kind}",
            map => "$dir/map.txt", revocation => 'ocsp', ocsp_timeout => '8s',
            ocsp_nonce => $nonce, locations => [ '/jpki/' => { endpoints => 1 } ]);
        $nonce ? check_nonce($kind, $srv) : check($kind, $srv, sub { $redis->cmd('FLUSHALL') });
        $srv->stop;
    }
}

$ocsp->stop;
$redis->stop;
done_testing();
