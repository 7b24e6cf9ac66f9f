#!/usr/bin/perl
# bench/crl_lookups.pl PORT LIST CERT_ID STOPFILE - the reader's procedure
# of docs/store-schema.md ("Reading"), a lookup every millisecond (a busy
# gate's rate, not a flood that would take the CPU the sync is measured
# on), until STOPFILE exists: GET jpki:v1:crlmeta:LIST, then HGET of the bucket and
# field of CERT_ID (32 hex) in the generation it names.  Prints one line:
#   lookups=N errors=N max_ms=X gens=G
# (errors: a reply that is not a pointer, or a value that is not 5 octets;
# gens: the generations the pointer named).  Core Perl only.
use strict;
use warnings;
use IO::Socket::INET;
use Time::HiRes qw(time);

my ($port, $list, $id, $stop) = @ARGV;
die "usage: crl_lookups.pl PORT LIST CERT_ID STOPFILE\n" unless defined $stop;
my $s = IO::Socket::INET->new("127.0.0.1:$port") or die "redis: $!\n";
binmode $s;

sub cmd {
    my $m = '*' . @_ . "\r\n";
    $m .= '$' . length($_) . "\r\n$_\r\n" for @_;
    print $s $m;
    local $/ = "\r\n";
    my $l = <$s> // die "redis: closed\n";
    chomp $l;
    my $t = substr $l, 0, 1, '';
    return undef if $t eq '$' && $l < 0;
    die "redis: $l\n" if $t eq '-';
    return $l unless $t eq '$';
    read($s, my $d, $l + 2) == $l + 2 or die "redis: short read\n";
    return substr $d, 0, $l;
}

my ($n, $err, $max, %gens) = (0, 0, 0);
until (-e $stop) {
    my $t0 = time;
    my ($gen, $shape) = split /\|/, (cmd('GET', "jpki:v1:crlmeta:$list") // '');
    my ($bits) = ($shape // '') =~ /^b(\d+)$/;
    if (!$bits) {
        $err++;
        select undef, undef, undef, 0.001;
        next;
    }
    my $o = int($bits / 8);
    my $v = cmd('HGET', sprintf('jpki:v1:crl:%s:%s:%0*x', $list, $gen,
                                int(($bits + 3) / 4), hex(substr $id, 0, 8) >> (32 - $bits)),
                pack('H*', substr($id, 2 * $o, 16 - 2 * $o)));
    $err++ if defined $v && length $v != 5;
    my $ms = (time - $t0) * 1000;
    $max = $ms if $ms > $max;
    $gens{$gen} = 1;
    $n++;
    select undef, undef, undef, 0.001;
}
printf "lookups=%d errors=%d max_ms=%.1f gens=%d\n", $n, $err, $max,
    scalar keys %gens;
