#!/usr/bin/perl
# t/apache-nofile.t - Apache only: the endpoints' and the health answer's
# requests are no files, so Apache does not walk the document root's
# directories for them (no stat of each directory, no .htaccess read), as
# for mod_proxy's requests.  A .htaccess at the document root denying
# everything refuses every request that walks it (403): the endpoints and
# the health answer still work, and a plain file next to them is still
# refused (the .htaccess is read: the walk is skipped for the endpoints
# only).  nginx has no such walk.
#   make all pki && prove -v t/apache-nofile.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIServer;

skip_unless(qw(pki));
local $ENV{JPKI_SERVERS} = 'apache';
my @kinds = JPKIServer::kinds();
my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");

my $srv = JPKIServer->start('apache', name => 'nofile',
    issuer => 'card ca=@PKI@/ca2.pem', secret => $secret, store => 'shm',
    workers => 1,
    docs => { '/.htaccess' => "Require all denied\n", '/page.html' => "page\n" },
    apache => "DocumentRoot \@DOCS\@\n<Directory \@DOCS\@>\n"
            . "    AllowOverride All\n    Require all granted\n</Directory>\n",
    locations => [ '/jpki/' => { endpoints => 1, throttle => 'off' },
                   '/health' => { health => 1 } ]);

my $r = $srv->get('/page.html');
is($r->{status}, 403, 'a file under the .htaccess: 403 (the walk reads it)');
$r = $srv->get('/jpki/challenge');
is($r->{status}, 200, 'the challenge endpoint: no walk, 200');
like($r->{content}, qr/"challenge":"/, 'a challenge is issued');
$r = $srv->login('user1');
like($r->{content} // '', qr/^\{"/,
     "a login's answer is the gate's JSON (status $r->{status}), not Apache's refusal");
$r = $srv->get('/health');
is($r->{status}, 200, 'the health answer: no walk, 200');
$srv->stop;
done_testing();
