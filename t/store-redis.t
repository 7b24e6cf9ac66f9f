#!/usr/bin/perl
# store-redis.t - the store's Redis encoding and reply reader against a real
# redis-server: starts one on a free loopback port in a temp dir, runs the C
# driver build/t/test_redis_roundtrip (and its ASan build when present) with
# JPKI_TEST_REDIS=127.0.0.1:<port>, and reports each of its TAP lines here.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use JPKITest ();
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

my $build = $ENV{JPKI_BUILD} || 'build';
my @drivers = grep { -x $_ } map { "$build/$_/test_redis_roundtrip" }
    ('t', 'asan/t');
my ($redis_bin) = grep { -x $_ }
    ($ENV{JPKI_REDIS_SERVER} || (), '/usr/bin/redis-server',
     map { "$_/redis-server" } split /:/, $ENV{PATH} || '');

plan skip_all => 'redis-server not found' unless $redis_bin;
plan skip_all => "no driver: make $build/t/test_redis_roundtrip"
    unless @drivers;

my $dir = tempdir('jpki-redis-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $port = free_port();
my $pid = start_redis($redis_bin, $dir, $port);
END { stop_redis() }

ok(wait_ping($port, 10), "redis-server answers PING on port $port")
    or BAIL_OUT("redis-server did not start: " . slurp("$dir/redis.log"));

local $ENV{JPKI_TEST_REDIS} = "127.0.0.1:$port";
local $ENV{ASAN_OPTIONS} = $ENV{ASAN_OPTIONS}
    || 'detect_leaks=1:abort_on_error=1';
local $ENV{UBSAN_OPTIONS} = $ENV{UBSAN_OPTIONS}
    || 'print_stacktrace=1:halt_on_error=1';
run_driver($_) for @drivers;

ok(wait_ping($port, 2), 'redis-server still up after the drivers');
done_testing();

sub run_driver {
    my ($bin) = @_;
    my $name = $bin =~ m{/asan/} ? 'asan' : 'plain';
    my @out = `$bin 2>&1`;
    my $status = $?;
    my ($plan, $seen, $failed) = (undef, 0, 0);

    for my $line (@out) {
        chomp $line;
        if ($line =~ /^(not )?ok (\d+)(?: - (.*))?$/) {
            $seen++;
            $failed++ if $1;
            ok(!$1, "$name: " . ($3 // "test $2"));
        } elsif ($line =~ /^1\.\.(\d+)/) {
            $plan = $1;
        } elsif ($line =~ /^Bail out!/) {
            fail("$name: $line");
        } else {
            note("$name: $line");
        }
    }
    ok(defined $plan && $plan == $seen && $seen > 0,
       "$name: plan matches ($seen tests)")
        or diag(join "\n", @out);
    is($status, 0, "$name: driver exit status")
        or diag(join "\n", grep { !/^ok / } @out);
}

# reserved among the test files run in parallel (t/lib/JPKITest.pm)
sub free_port { return JPKITest::free_port() }

sub start_redis {
    my ($bin, $d, $p) = @_;
    my $child = fork;
    die "fork: $!" unless defined $child;
    if ($child == 0) {
        chdir $d or die "chdir $d: $!";
        open STDOUT, '>>', "$d/redis.log" or die;
        open STDERR, '>&', \*STDOUT or die;
        exec $bin, '--port', $p, '--bind', '127.0.0.1', '--save', '',
            '--appendonly', 'no', '--daemonize', 'no', '--dir', $d,
            '--logfile', "$d/redis.log"
            or die "exec $bin: $!";
    }
    return $child;
}

sub stop_redis {
    return unless $pid;
    kill 'TERM', $pid;
    my $deadline = time + 5;
    while (time < $deadline) {
        return $pid = undef if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    $pid = undef;
}

sub wait_ping {
    my ($p, $secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $p, Proto => 'tcp',
                                      Timeout => 1);
        if ($s) {
            print $s "PING\r\n";
            my $line = <$s>;
            close $s;
            return 1 if defined $line && $line =~ /^\+PONG/;
        }
        sleep 0.05;
    }
    return 0;
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    local $/;
    return <$fh>;
}
