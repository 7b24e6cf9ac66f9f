#!/usr/bin/perl
# t/apache-sentinel-once.t - Apache asks the sentinels once at a time in a
# child: six logins at once reach a child that knows no primary yet; one
# thread asks the sentinel (which takes half a second to answer), the
# others wait for its answer and take it: the sentinel is asked once, and
# all six logins succeed.  (nginx: one discovery per worker,
# t/nginx-nonblocking.t.)
#   make all pki && prove -v t/apache-sentinel-once.t
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

skip_unless(qw(pki openssl redis));
plan skip_all => 'Apache not selected' unless grep { $_ eq 'apache' } JPKIServer::kinds();

my $f = site_fixture();
my $dir = $f->{dir};
my $redis = JPKITest::Redis->start(name => 'primary');
$redis->cmd('SET', 'jpki:v1:map:' . cert_id('user1', $f->{secret}), 'alice');

# a sentinel that answers get-master-addr-by-name after 0.5 s, and counts
my $sent = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 32,
                                 ReuseAddr => 1) or die "listen: $!";
my $ans = "*2\r\n\$9\r\n127.0.0.1\r\n\$" . length($redis->port) . "\r\n" . $redis->port . "\r\n";
my $spid = fork // die;
if ($spid == 0) {
    while (my $c = $sent->accept) {
        my $b = '';
        sysread($c, $b, 512);
        if ($b =~ /get-master-addr-by-name/i) {
            open my $n, '>>', "$dir/asked" or die;
            print $n "asked\n";
            close $n;
            sleep 0.5;
        }
        print $c $ans;
        close $c;
    }
    POSIX::_exit(0);
}
my $sport = $sent->sockport;
close $sent;

my $srv = JPKIServer->start('apache', name => 'sentinel-once', workers => 1,
    secret => $f->{secret}, issuer => $f->{issuer}, revocation => 'ocsp',
    store => "sentinel=127.0.0.1:$sport master=gate", redis_timeout => '3s',
    locations => [ '/jpki/' => { endpoints => 1, throttle => 'off' } ]);
my @kids;
for my $i (1 .. 6) {
    my $pid = fork // die;
    if ($pid == 0) {
        my $r = $srv->login('user1');
        spew("$dir/login.$i", $r->{status});
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid $_, 0 for @kids;
is(join(' ', map { slurp("$dir/login.$_") // '' } 1 .. 6), join(' ', ('200') x 6),
   'six logins at once, no primary known yet: all signed in');
is(scalar(() = (slurp("$dir/asked") // '') =~ /asked/g), 1,
   '... the sentinel asked once: the other threads waited for its answer');
is($srv->login('user1')->{status}, 200, 'a login after: the primary known');
is(scalar(() = (slurp("$dir/asked") // '') =~ /asked/g), 1, '... not asked again');
$srv->stop;
kill 'TERM', $spid;
waitpid $spid, 0;

done_testing();
