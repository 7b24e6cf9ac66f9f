#!/usr/bin/perl
# t/crl-keys.t - several CRL files per issuer, on nginx and Apache alike: a
# CA has key generations (ca1, ca2 with link certificates) and each key
# signs its own CRL; a certificate is checked against the CRL of the key
# that issued it (common/crlzone.c).
#  - crl=ca2.crl only: a certificate of ca1's key has no CRL: revocation
#    unavailable (before, user-old-revoked, revoked on ca1.crl only, logged
#    in: 200, "revocation":"crl"); the configuration test warns that ca1's
#    key has no CRL;
#  - crl=ca2.crl crl=ca1.crl, or crl=DIR with both files: each certificate
#    answered by its key's CRL, no warning; health lists each file;
#  - a CRL put into the directory later is picked up.
#   make all pki && prove -v t/crl-keys.t   (JPKI_SERVERS=nginx: one server)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Copy qw(copy);
use Time::HiRes qw(sleep time);
use JPKITest;
use JPKIServer;
use JPKICRLFiles qw(eventually);

skip_unless(qw(jpkictl pki openssl));
my @kinds = JPKIServer::kinds();
my $dir = tmpdir();
my $pki = $JPKITest::PKI;
my $secret = write_secret("$dir/site.secret");
my $map = "$dir/map.txt";
spew($map, join('', map { cert_id($_, $secret) . " acct-$_\n" }
                    qw(user1 user-old user-old-revoked rev-keyCompromise)), 0644);
my $warn = qr/issuer "card": no CRL file covers the CA key [0-9a-f]{16} \([^)]*\): the CRL checks of the certificates it issued will fail closed/;

sub site {
    my (@crl) = @_;
    return (issuer => 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem ' . join(' ', map { "crl=$_" } @crl),
            secret => $secret, store => 'shm', map => $map, revocation => 'crl',
            workers => 1,
            locations => [ '/jpki/' => { endpoints => 1, throttle => 'off' },
                           '/health' => { health => 1, exact => 1 } ]);
}

# (status, error or account) of a login of CERT, once the CRLs are in
# (nginx parses them in a thread at start; Apache in requests)
sub answer {
    my ($srv, $cert) = @_;
    my $r = $srv->login($cert);
    return join ' ', $r->{status} // 0, ($r->{json} // {})->{error} // ($r->{json} // {})->{account} // '';
}

my $crldir = "$dir/crls";
mkdir $crldir;
copy("$pki/ca2.crl.pem", "$crldir/ca2.crl.pem") or die;
copy("$pki/ca1.crl", "$crldir/ca1.crl") or die;
spew("$crldir/README", "not a CRL\n");

for my $kind (@kinds) {
    subtest $kind => sub {
        # ---- the configuration test
        my ($st, $out) = JPKIServer->configtest($kind, name => 'only2',
                                                site("$pki/ca2.crl"));
        is($st, 0, "$kind: crl=ca2.crl only: the configuration test passes") or diag $out;
        like($out, $warn, '... with a warning: ca1\'s key has no CRL');
        my @w = $out =~ /no CRL file covers/g;
        is(scalar @w, 1, '... one (ca2\'s key is covered; link certificates add no key)');
        ($st, $out) = JPKIServer->configtest($kind, name => 'both',
                                             site("$pki/ca2.crl", "$pki/ca1.crl"));
        is($st, 0, "$kind: crl=ca2.crl crl=ca1.crl: passes") or diag $out;
        unlike($out, qr/no CRL file covers/, '... without a warning');
        ($st, $out) = JPKIServer->configtest($kind, name => 'dir', site($crldir));
        is($st, 0, "$kind: crl=DIR: passes") or diag $out;
        unlike($out, qr/no CRL file covers/, '... without a warning (both files in it)');
        ($st, $out) = JPKIServer->configtest($kind, name => 'ocsp',
            issuer => 'card ca=@PKI@/ca1.pem,@PKI@/ca2.pem ocsp=http://127.0.0.1:9/',
            secret => $secret, store => 'shm');
        unlike($out, qr/no CRL file covers/, 'an issuer without crl= (OCSP): no warning');

        # the issuer's grammar (common/conf_issuer.c): the same sentences
        for my $bad ([ 'crl=', qr/issuer "card": has crl= without a file or directory name/ ],
                     [ join(' ', map { "crl=$crldir" } 1 .. 9), qr/issuer "card": has more than 8 crl= sources/ ],
                     [ 'ocsp=http://127.0.0.1:9/ ocsp=http://127.0.0.1:9/', qr/issuer "card": has ocsp= twice/ ]) {
            ($st, $out) = JPKIServer->configtest($kind, name => 'bad',
                issuer => "card ca=\@PKI\@/ca2.pem $bad->[0]", secret => $secret, store => 'shm');
            isnt($st, 0, "$kind: refused: $bad->[0]");
            like($out, $bad->[1], '... with the core\'s sentence');
        }

        # ---- ca2's CRL only: ca1's certificates fail closed
        my $srv = JPKIServer->start($kind, name => 'only2', site("$pki/ca2.crl"));
        eventually('the CRL is loaded', sub { answer($srv, 'user1') eq '200 acct-user1' });
        if ($kind =~ /apache/) {
            # Apache reads its configuration twice when it starts: the
            # warning is logged once, with the pass it runs
            my $d = $srv->srv->{dir};
            my @w = (slurp("$d/stderr.log") . slurp("$d/error.log"))
                    =~ /no CRL file covers/g;
            is(scalar @w, 1, "$kind: started: the warning once (stderr and "
               . "the error log)");
        }
        is(answer($srv, 'rev-keyCompromise'), '403 cert_revoked', 'ca2: revoked by ca2.crl');
        is(answer($srv, 'user-old-revoked'), '503 revocation_unavailable',
           'user-old-revoked (ca1, revoked on ca1.crl only): no CRL of its key, '
           . 'fails closed (before: 200)');
        is(answer($srv, 'user-old'), '503 revocation_unavailable', 'user-old too');
        $srv->stop;

        # ---- both CRLs: each certificate by its key's
        for my $c ([ 'files', "$pki/ca2.crl", "$pki/ca1.crl" ], [ 'dir', $crldir ]) {
            my ($what, @crl) = @$c;
            $srv = JPKIServer->start($kind, name => "both-$what", site(@crl));
            eventually("$what: the CRLs are loaded",
                       sub { answer($srv, 'user-old') eq '200 acct-user-old' });
            is(answer($srv, 'user-old-revoked'), '403 cert_revoked',
               "$what: user-old-revoked: revoked by ca1.crl");
            is(answer($srv, 'rev-keyCompromise'), '403 cert_revoked',
               "$what: rev-keyCompromise: revoked by ca2.crl");
            is(answer($srv, 'user1'), '200 acct-user1', "$what: user1 logs in");
            my $h = get_json($srv->url('/health'));
            is($h->{status}, 200, "$what: health 200");
            my %by = map { ($_->{file} // '?') => $_ } @{ $h->{json}{crls} // [] };
            is(scalar keys %by, 2, "$what: health: two CRLs") or diag explain $h->{json};
            my ($f1) = grep { /ca1/ } keys %by;
            is($by{$f1 // ''}{crl_number}, 1, "$what: ... ca1's, CRL 1");
            $srv->stop unless $what eq 'dir';
        }

        # ---- a newer CRL of ca2's key put into the directory: picked up
        # (the older one beside it is refused: the newer one stays)
        my $m = $srv->mark;
        copy("$pki/ca2-released.crl", "$crldir/ca2-new.crl") or die;
        eventually('dir: a new file is picked up', sub {
            $srv->health; answer($srv, 'rev-keyCompromise');
            $srv->log_since($m) =~ /CRL "[^"]*ca2-new.crl" of issuer "card" loaded: 6 entries/ });
        $srv->stop;
        unlink "$crldir/ca2-new.crl";
    };
}

done_testing();
