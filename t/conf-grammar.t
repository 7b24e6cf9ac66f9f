#!/usr/bin/perl
# t/conf-grammar.t - the directives' grammar is the core's (common/conf.c):
# the same words are taken, and the same mistakes refused with the same
# sentence, by `nginx -t` and `apache2 -t`.  The store (shm and redis, the
# old nginx spelling zone=NAME:SIZE with a warning, the least sizes,
# mirror=, sentinel= and master=, password_file= and the inline password=
# refused, tls_cert= and tls_key=), jpki_store_outage, revocation as an ordered list, [on|off] for the health and
# endpoints locations, times, words in any case, a directive given twice,
# the most issuers a site takes, a site directive where no site takes it.
# The unit test t/unit/test_conf.c checks every sentence of the parsers;
# this one checks that both modules use them.
#   make build/ngx_http_jpki_module.so build/mod_auth_jpki.so pki
#   prove -v t/conf-grammar.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(pki openssl));

my $dir = tmpdir();
my $secret = write_secret("$dir/site.secret");
spew("$dir/ca.pem", slurp("$JPKITest::PKI/ca2.pem"), 0644);
spew("$dir/pw-ok", "a-password\n", 0600);
spew("$dir/pw-world", "a-password\n", 0644);
spew("$dir/pw-empty", "\nsecond-line\n", 0600);
spew("$dir/pw-long", ('x' x 512) . "\n", 0600);
system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $dir/cl.key "
       . "-out $dir/cl.pem -days 2 -subj /CN=gate >/dev/null 2>&1") == 0 or die 'openssl req';
system("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $dir/other.key "
       . ">/dev/null 2>&1") == 0 or die 'openssl genpkey';
chmod 0644, "$dir/cl.pem", "$dir/cl.key", "$dir/other.key";
my %base = (secret => $secret, issuer => 'card ca=@PKI@/ca2.pem',
            store => 'shm zone=jpki size=1m');

# No site at all.
my %nosite = (secret => undef, issuer => undef, store => undef);

# The store directive as written (JPKIServer's store => adds size=1m to a
# shm store): at the site's level of each server.
sub store { my ($spec) = @_; return (store => undef, nginx => "jpki_store $spec;", apache => "JPKIStore $spec") }

# name, site changes, what the output says (undef: accepted)
my @cases = (
    # the store
    [ 'shm with the defaults', { store('shm') }, undef ],
    [ 'shm zone= size= in either order', { store('shm size=128k zone=a.b-c_1') }, undef ],
    [ 'shm size under 64k', { store('shm size=32k') }, qr/size= must be at least 64k/ ],
    [ 'shm size not a size', { store('shm size=12x') }, qr/size= must be a size/ ],
    [ 'shm zone name with a slash', { store('shm zone=a/b') }, qr/zone= must be a name of 1\.\.63/ ],
    [ 'shm with a redis word', { store('shm db=1') }, qr/invalid parameter "db=1" \(shm takes zone=NAME and size=SIZE/ ],
    [ 'neither shm nor redis', { store('memcached=1') }, qr/expects "shm \[zone=NAME\] \[size=SIZE\]", "redis=.*" or "sentinel=/ ],
    [ 'redis with mirror=', { store('redis=127.0.0.1:6399 db=3 keepalive=4 mirror=2m') }, undef ],
    [ 'redis db out of range', { store('redis=127.0.0.1:6399 db=16') }, qr/invalid db= \(0\.\.15\)/ ],
    [ 'redis keepalive 0', { store('redis=127.0.0.1:6399 keepalive=0') }, qr/invalid keepalive= \(1\.\.1024\)/ ],
    [ 'redis user without password', { store('redis=127.0.0.1:6399 user=u') }, qr/user= without password_file=/ ],
    [ 'redis empty password_file', { store('redis=127.0.0.1:6399 password_file=') }, qr/password_file= needs a value/ ],
    # passwords from a file, never inline
    [ 'redis inline password', { store('redis=127.0.0.1:6399 password=x') },
      qr/password= is not taken .*name it with password_file=FILE/ ],
    [ 'redis password_file', { store("redis=127.0.0.1:6399 user=u password_file=$dir/pw-ok") }, undef ],
    [ 'redis password_file others may read', { store("redis=127.0.0.1:6399 password_file=$dir/pw-world") },
      qr/password_file "\S*pw-world" may be read or written by others/ ],
    [ 'redis password_file missing', { store("redis=127.0.0.1:6399 password_file=$dir/pw-missing") },
      qr/password_file "\S*pw-missing" cannot be read/ ],
    [ 'redis password_file empty', { store("redis=127.0.0.1:6399 password_file=$dir/pw-empty") },
      qr/password_file "\S*pw-empty" has no password on its first line/ ],
    [ 'redis password_file too long', { store("redis=127.0.0.1:6399 password_file=$dir/pw-long") },
      qr/password_file "\S*pw-long" has a first line longer than 511 bytes/ ],
    # sentinels
    [ 'sentinels and master=', { store('sentinel=127.0.0.1:26379,[::1]:26380,localhost master=gate-1 db=2') }, undef ],
    [ 'sentinel without master=', { store('sentinel=127.0.0.1:26379') }, qr/sentinel= needs master=NAME/ ],
    [ 'master= without sentinel=', { store('redis=127.0.0.1:6399 master=m') }, qr/master= goes with sentinel=/ ],
    [ 'redis= and sentinel=', { store('redis=127.0.0.1:6399 sentinel=127.0.0.1:26379 master=m') },
      qr/redis= and sentinel= do not mix/ ],
    [ 'sentinel= and redis=', { store('sentinel=127.0.0.1:26379 master=m redis=127.0.0.1:6399') },
      qr/redis= and sentinel= do not mix/ ],
    [ 'a sentinel port 0', { store('sentinel=127.0.0.1:26379,127.0.0.1:0 master=m') },
      qr/invalid sentinel address "127\.0\.0\.1:0"/ ],
    [ 'nine sentinels', { store('sentinel=' . join(',', map { "127.0.0.1:2638$_" } 1 .. 9) . ' master=m') },
      qr/sentinel= takes at most 8 addresses/ ],
    [ 'master= not a name', { store('sentinel=127.0.0.1:26379 master=a/b') }, qr/master= needs the name the sentinels know/ ],
    # a client certificate
    [ 'tls client certificate', { store("redis=127.0.0.1:6399 tls=on tls_ca=$dir/ca.pem tls_cert=$dir/cl.pem tls_key=$dir/cl.key") }, undef ],
    [ 'tls_cert without tls_key', { store("redis=127.0.0.1:6399 tls=on tls_ca=$dir/ca.pem tls_cert=$dir/cl.pem") },
      qr/tls_cert= and tls_key= go together/ ],
    [ 'tls_key without tls=on', { store("redis=127.0.0.1:6399 tls_cert=$dir/cl.pem tls_key=$dir/cl.key") },
      qr/tls_cert= and tls_key= need tls=on/ ],
    [ 'tls_key of another certificate', { store("redis=127.0.0.1:6399 tls=on tls_ca=$dir/ca.pem tls_cert=$dir/cl.pem tls_key=$dir/other.key") },
      qr/tls_key is not the key of tls_cert: "\S*other\.key"/ ],
    [ 'tls_cert not a certificate', { store("redis=127.0.0.1:6399 tls=on tls_ca=$dir/ca.pem tls_cert=$dir/cl.key tls_key=$dir/cl.key") },
      qr/cannot load tls_cert "\S*cl\.key"/ ],
    [ 'tls_key missing', { store("redis=127.0.0.1:6399 tls=on tls_ca=$dir/ca.pem tls_cert=$dir/cl.pem tls_key=$dir/nokey") },
      qr/cannot load tls_key "\S*nokey"/ ],
    # what a store outage does to sessions, a location's choice
    [ 'store_outage sessions', { locations => [ '/' => { gate => 1, store_outage => 'sessions' } ] }, undef ],
    [ 'store_outage maybe', { locations => [ '/' => { gate => 1, store_outage => 'maybe' } ] },
      qr/(?:jpki_store_outage|JPKIStoreOutage)"?(?: directive)? must be "closed" or "sessions"/ ],
    [ 'redis mirror under 64k', { store('redis=127.0.0.1:6399 mirror=32k') }, qr/mirror= must be at least 64k/ ],
    [ 'redis relative socket', { store('redis=unix:run/redis.sock') }, qr/redis=unix: needs an absolute socket path/ ],
    [ 'redis bad port', { store('redis=127.0.0.1:99999') }, qr/invalid redis address "127\.0\.0\.1:99999"/ ],
    [ 'redis TLS over a unix socket without a name',
      { store("redis=unix:/run/redis.sock tls=on tls_ca=$dir/ca.pem") }, qr/tls=on over a unix socket needs tls_name=/ ],
    [ 'redis tls=maybe', { store('redis=127.0.0.1:6399 tls=maybe') }, qr/tls= must be "on" or "off"/ ],
    [ 'redis db= twice', { store('redis=127.0.0.1:6399 db=1 db=2') }, qr/invalid parameter "db=2"/ ],
    # revocation: an ordered list
    [ 'revocation crl,ocsp', { locations => [ '/' => { gate => 1, revocation => 'crl,ocsp' } ] }, undef ],
    [ 'revocation crl twice', { locations => [ '/' => { gate => 1, revocation => 'crl,crl' } ] }, qr/must be ocsp, crl, or both in the order/ ],
    [ 'revocation none', { locations => [ '/' => { gate => 1, revocation => 'none' } ] }, qr/must be ocsp, crl/ ],
    # health and endpoints: [on|off]
    [ 'health and endpoints on', { locations => [ '/jpki/' => { nginx => 'jpki_endpoints on;', apache => 'JPKIEndpoints On' },
                                                 '/health' => { nginx => 'jpki_health on;', apache => 'JPKIHealth on' } ] }, undef ],
    [ 'health without a word', { locations => [ '/health' => { nginx => 'jpki_health;', apache => 'JPKIHealth' } ] }, undef ],
    [ 'health maybe', { locations => [ '/health' => { nginx => 'jpki_health maybe;', apache => 'JPKIHealth maybe' } ] },
      qr/(?:jpki_health|JPKIHealth)"?(?: directive)? must be "on" or "off"/ ],
    # times, words in any case
    [ 'timeouts in ms', { ocsp_timeout => '500ms', redis_timeout => '1s500ms' }, undef ],
    [ 'a timeout of 0', { redis_timeout => '0' }, qr/must be between 1ms and 600s/ ],
    [ 'ms for a policy time', { challenge_ttl => '500ms' }, qr/must be given in seconds, minutes, hours or days/ ],
    [ 'not a time', { locations => [ '/' => { gate => 1, session_lifetime => '8x' } ] }, qr/must be a time \(e\.g\. 30s, 5m, 8h, 1d\)/ ],
    [ 'words in any case', { locations => [ '/' => { gate => 1, failure => 'OPEN', cookie_samesite => 'strict',
                                                     login_page => 'none' } ] }, undef ],
    [ 'a header name with a colon', { locations => [ '/' => { gate => 1, header => 'X:Account' } ] },
      qr/must be a header name of 1\.\.64 characters/ ],
    [ 'a cookie path without a slash', { locations => [ '/' => { gate => 1, cookie_path => 'app' } ] },
      qr/must be a path starting with '\/'/ ],
    # each directive once
    [ 'a directive twice', { locations => [ '/' => { gate => 1, revocation => [ 'ocsp', 'crl' ] } ] }, qr/is duplicate/ ],
    [ 'a site value twice', { challenge_ttl => [ '60s', '90s' ] }, qr/is duplicate/ ],
    # the throttle too (Apache appended a second line to the first)
    [ 'the throttle twice', { locations => [ '/' => { gate => 1, throttle => [ 'window=30s', 'logins=5' ] } ] },
      qr/is duplicate/ ],
    # the issuers of a site (common/site.c): at most 16, the next refused
    # where it is written on both servers (Apache refused it only when the
    # site was built, with another sentence)
    [ '16 issuers', { issuer => [ map { "i$_ ca=\@PKI\@/ca2.pem" } 1 .. 16 ] }, undef ],
    [ 'a 17th issuer', { issuer => [ map { "i$_ ca=\@PKI\@/ca2.pem" } 1 .. 17 ] },
      qr/(?:jpki_issuer" directive|JPKIIssuer) needs a unique name of 1\.\.63 letters, digits, _ \. - \(at most 16 issuers\)/ ],
    # a site directive where no site takes it does nothing: refused on both
    # servers, naming it and its line (Apache took it silently)
    [ 'a site value and no site', { %nosite, challenge_ttl => '60s' },
      qr/"(?:jpki_challenge_ttl|JPKIChallengeTTL)" here has no effect: the (?:http block|main server) has no site .* in \S+:\d+/ ],
    [ 'a site value in a server, and no site',
      { %nosite, nginx => "server {\n    listen 127.0.0.1:\@PORT\@;\n    jpki_clock_skew 1m;\n}",
        apache => "<VirtualHost 127.0.0.1:\@PORT\@>\n    JPKIClockSkew 1m\n</VirtualHost>" },
      qr/"(?:jpki_clock_skew|JPKIClockSkew)" here has no effect: this (?:server|virtual host) has no site, nor has the (?:http block|main server); give this (?:server|virtual host) its own .* in \S+:\d+/ ],
);

for my $kind (JPKIServer::kinds()) {
    my $i = 0;
    for my $c (@cases) {
        my ($what, $change, $re) = @$c;
        my %site = (%base, %$change, name => "conf" . ++$i);
        my ($st, $out) = JPKIServer->configtest($kind, %site);
        if (defined $re) {
            isnt($st, 0, "$kind: refused: $what");
            like($out, $re, "$kind: $what: says why") or diag($out);
        } else {
            is($st, 0, "$kind: accepted: $what") or diag($out);
        }
    }

    # the old nginx spelling: taken on both, with a warning naming the new
    my ($st, $out) = JPKIServer->configtest($kind, %base, store('shm zone=old:1m'),
                                            name => 'conf-old');
    is($st, 0, "$kind: shm zone=NAME:SIZE still taken");
    like($out, qr/"zone=NAME:SIZE" is deprecated: write "zone=old size=1m"/,
         "$kind: ... with a warning naming the new spelling") or diag($out);
}

# every directive of the core's list (common/directives.h, which both
# modules' tables are made from) is documented under both names
{
    my $docs = join '', map { JPKITest::slurp($_) }
        glob("$JPKITest::REPO/docs/*.md"), "$JPKITest::REPO/README.md",
        "$JPKITest::REPO/ngx_module/README.md",
        "$JPKITest::REPO/apache_module/README.md";
    my @missing = grep { index($docs, $_) < 0 }
        map { @{ $JPKIServer::DIRECTIVE{$_} } } sort keys %JPKIServer::DIRECTIVE;
    is("@missing", '', 'every directive is documented by both its names');
    ok(keys %JPKIServer::DIRECTIVE >= 30, '... '
       . scalar(keys %JPKIServer::DIRECTIVE) . ' directives, read from '
       . 'common/directives.h');
}

done_testing();
