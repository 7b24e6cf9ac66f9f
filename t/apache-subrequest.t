#!/usr/bin/perl
# t/apache-subrequest.t - a gated location reached by a subrequest (an SSI
# include of mod_include) is gated like a request: without a session the
# included content never appears and the upstream is not asked; with one,
# the included request carries the account.  A client's account header is
# stripped from subrequests too.  An internal redirect (ErrorDocument) out
# of a gated location keeps the gate's account.  (nginx: t/nginx-hardening.t.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;

skip_unless(qw(jpkictl pki openssl));
skip_unless_apache();

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
spew("$dir/map.txt", cert_id('user1', $secret) . " alice\n", 0644);
my $www = "$dir/www";
mkdir $www;
chmod 0755, $www;
spew("$www/page.shtml", "before\n<!--#include virtual=\"/app/inc\" -->\nafter\n", 0644);
spew("$www/pub.shtml", "<!--#include virtual=\"/pub/echo\" -->\n", 0644);

my $ap = JPKIApache::Server->start(name => 'ssi', children => 1,
    modules => ['include'], main => <<"EOF");
JPKISecretFile $secret
JPKIIssuer card ca=\@PKI\@/ca1.pem,\@PKI\@/ca2.pem ocsp=@{[ $ocsp->url ]}
JPKIMapFile $dir/map.txt
JPKIStore shm size=1M
DocumentRoot "$www"
<Directory "$www">
    Options +Includes
    SetOutputFilter INCLUDES
    Require all granted
</Directory>
<Location /pub/echo>
    ProxyPass http://127.0.0.1:\@UP\@/pub/echo
</Location>
<Location /err/>
    AuthType JPKI
    Require valid-user
    ErrorDocument 404 /pub/echo
</Location>
@{[ ap_gate_conf(recheck => 0) ]}
EOF

my $mark = $ap->mark;
my $r = http('GET', $ap->url('/page.shtml'));
is($r->{status}, 200, 'ungated page with a gated include: 200');
like($r->{content}, qr/before.*after/s, '... its own text');
unlike($r->{content}, qr/account=/, 'without a session the included content is not there');
is($ap->upstream_hits(undef, $mark), 0, '... and the upstream was not asked');

my $login = login_to($ap, 'user1');
is($login->{status}, 200, 'login');
my $cookie = cookie_of($login) // '';
$r = http('GET', $ap->url('/page.shtml'), headers => { Cookie => "jpki_session=$cookie" });
like($r->{content}, qr/account=\[alice\]/, 'with a session the include carries the account');

# an internal redirect (ErrorDocument) from a gated location to an ungated
# one keeps the account the gate set, not a client's
my $m2 = $ap->mark;
$r = http('GET', $ap->url('/err/none'), headers => { Cookie => "jpki_session=$cookie",
                                                    'X-JPKI-Account' => 'mallory' });
like($r->{content}, qr/account=\[alice\]/, 'internal redirect after the gate: the account stays');
unlike($r->{content}, qr/mallory/, "... not the client's");
$r = http('GET', $ap->url('/err/none'));
is($r->{status}, 401, 'without a session the gated location refuses first');

$r = http('GET', $ap->url('/page.shtml'),
          headers => { Cookie => 'jpki_session=v1.forged' });
unlike($r->{content}, qr/account=/, 'a forged cookie: no included content');

$r = http('GET', $ap->url('/pub.shtml'), headers => { 'X-JPKI-Account' => 'mallory' });
like($r->{content}, qr/account=\[\]/, "an ungated include: the client's account header is stripped");

$ap->stop;
done_testing();
