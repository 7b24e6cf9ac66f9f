#!/usr/bin/perl
# t/admin-api.t - enrollment and the admin API (docs/admin.md), on nginx
# and Apache alike, with the embedded store and with Redis:
#   - a card no account has: its login is told where to enroll, with a
#     token; the site redeems it through the admin API into an account;
#     the card then signs in as that account;
#   - the API refuses a request without the token, with a wrong token, and
#     from outside its allow-list; a location without a token file or list,
#     and a token file others can read, are refused at startup;
#   - a forged, an expired, a replayed token; the same certificate for a second
#     account; two certificates on one account; the account's list;
#     unbind; every session of an account logged out;
#   - renewal: an account's old and new cards both sign in until the old
#     one is revoked;
#   - no clear serial (hex or decimal) in the logs or the store of the run.
#   make build/ngx_http_jpki_module.so build/mod_auth_jpki.so build/jpkictl pki
#   prove -v t/admin-api.t
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
my ($dir, $secret, $issuer) = @$f{qw(dir secret issuer)};
my $TOKEN = "a" x 24 . JPKITest::rand_hex(16);
spew("$dir/admin.token", "$TOKEN\n", 0600);
spew("$dir/open.token", "$TOKEN\n", 0644);
chmod 0644, "$dir/open.token";

sub admin_lines {
    my ($kind, $file, $allow) = @_;
    return $kind eq 'nginx'
        ? "jpki_admin;\njpki_admin_token_file $file;\njpki_admin_allow $allow;"
        : "JPKIAdmin On\nJPKIAdminTokenFile $file\nJPKIAdminAllow $allow";
}

sub site {
    my ($kind, $store) = @_;
    return (secret => $secret, issuer => $issuer, store => $store,
            locations => [
                '/jpki/' => { endpoints => 1, enroll_page => '/enroll' },
                '/short/jpki/' => { endpoints => 1, enroll_page => '/enroll',
                                    $kind => $kind eq 'nginx' ? 'jpki_enroll_ttl 5s;'
                                                              : 'JPKIEnrollTTL 5s' },
                '/admin/' => { $kind => admin_lines($kind, "$dir/admin.token",
                                                    '127.0.0.0/8 ::1') },
                '/admin-far/' => { $kind => admin_lines($kind, "$dir/admin.token",
                                                        '192.0.2.0/24') },
                '/app/' => { gate => 1, upstream => 1 } ]);
}

sub api {
    my ($srv, $method, $path, $data, $token) = @_;
    my %h = (Accept => 'application/json');
    $h{Authorization} = "Bearer $token" if defined $token;
    return $method eq 'GET' ? http('GET', $srv->url($path), headers => \%h)
                            : post_json($srv->url($path), $data // {}, headers => \%h);
}

# startup refusals
for my $kind (@kinds) {
    my %s = site($kind, 'shm');
    $s{locations}[5] = { $kind => $kind eq 'nginx' ? 'jpki_admin;' : 'JPKIAdmin On' };
    if ($kind eq 'nginx') {
        my ($st, $out) = JPKIServer->configtest($kind, %s);
        ok($st != 0 && $out =~ /"jpki_admin" needs jpki_admin_token_file and jpki_admin_allow/,
           "$kind: an admin location without its token file and list: refused at startup")
            or diag $out;
    }
    %s = site($kind, 'shm');
    $s{locations}[5] = { $kind => admin_lines($kind, "$dir/open.token", '127.0.0.1') };
    my ($st, $out) = JPKIServer->configtest($kind, %s);
    ok($st != 0 && $out =~ /admin token file ".*open\.token" is readable by others/,
       "$kind: a token file others can read: refused at startup") or diag $out;
    %s = site($kind, 'shm');
    $s{locations}[5] = { $kind => admin_lines($kind, "$dir/admin.token", '127.0.0.1/33') };
    ($st, $out) = JPKIServer->configtest($kind, %s);
    ok($st != 0 && $out =~ /must be IPv4 or IPv6 addresses or networks/,
       "$kind: a malformed allow-list: refused at startup") or diag $out;
    %s = site($kind, 'shm');
    $s{locations}[1]{$kind} = $kind eq 'nginx' ? 'jpki_enroll_ttl 2s;' : 'JPKIEnrollTTL 2s';
    ($st, $out) = JPKIServer->configtest($kind, %s);
    ok($st != 0 && $out =~ /(jpki_enroll_ttl|JPKIEnrollTTL).*5/i,
       "$kind: an enrollment token of 2 s: refused at startup") or diag $out;
}

my $redis = JPKITest::redis_bin() ? JPKITest::Redis->start(name => 'redis') : undef;
my @stores = ('shm', $redis ? ('redis=127.0.0.1:' . $redis->port) : ());

my @logs;
for my $kind (@kinds) {
    for my $store (@stores) {
        my $label = "$kind " . ($store eq 'shm' ? 'shm' : 'redis');
        $redis->cmd('FLUSHALL') if $store ne 'shm';     # a site of its own
        my $srv = JPKIServer->start($kind, name => "admin-$label" =~ s/ /-/r,
                                    site($kind, $store));

        # a token of a location whose tokens live 5 s, redeemed at the end
        my $r = login_to($srv, 'user2', prefix => '/short');
        my ($short) = ($r->{json}{enroll} // '') =~ /jpki_enroll=(e1\.[A-Za-z0-9_-]+)$/;
        ok($short, "$label: a location with jpki_enroll_ttl 5s: a token");
        my $short_at = time;

        # enrollment: a card no account has
        $r = login_to($srv, 'user1');
        is($r->{status}, 403, "$label: a card no account has: 403");
        is($r->{json}{error} // '', 'account_not_mapped', "$label: ... account_not_mapped");
        my ($tok) = ($r->{json}{enroll} // '') =~ m{^/enroll\?jpki_enroll=(e1\.[A-Za-z0-9_-]+)$};
        ok($tok, "$label: ... told where to enroll, with a token");
        my $ch = challenge($srv->url('/jpki'));
        $r = post_form($srv->url('/jpki/login'),
                       { %{ login_body($ch, 'user1', undef, cert_form => 'b64') },
                         return_to => '/app/x' }, headers => { Accept => 'text/html' });
        is($r->{status}, 303, "$label: a browser's login of that card: 303");
        like($r->{headers}{location} // '', qr{^/enroll\?jpki_enroll=e1\.}, "$label: ... to the enrollment page");

        # the same card signing a device flow: the browser's poll is sent to
        # the enrollment page (the signer is told account_not_mapped)
        my $fr = post_form($srv->url('/jpki/device'), {}, headers => { Accept => 'application/json' });
        my $fcookie = cookie_of($fr, 'jpki_flow');
        my ($fch) = ($fr->{json}{url} // '') =~ /challenge=([A-Za-z0-9_-]+)/;
        $r = post_json($srv->url('/jpki/sign'), login_body($fch, 'user1', undef, cert_form => 'b64'));
        is($r->{json}{error} // '', 'account_not_mapped', "$label: a device flow's signer with that card: refused");
        $r = http('GET', $srv->url('/jpki/poll'),
                  headers => { Accept => 'application/json', Cookie => "jpki_flow=$fcookie" });
        like($r->{json}{enroll} // '', qr{^/enroll\?jpki_enroll=e1\.}, "$label: ... the browser's poll: to the enrollment page");

        # who may call the API
        $r = api($srv, 'POST', '/admin/bind', { token => $tok, account => 'alice' });
        is($r->{status}, 401, "$label: the API without the token: 401");
        $r = api($srv, 'POST', '/admin/bind', { token => $tok, account => 'alice' }, 'x' x 40);
        is($r->{status}, 401, "$label: with a wrong token: 401");
        $r = api($srv, 'POST', '/admin-far/bind', { token => $tok, account => 'alice' }, $TOKEN);
        is($r->{status}, 403, "$label: from outside the allow-list: 403");
        is($r->{json}{error} // '', 'forbidden', "$label: ... forbidden");

        # tokens
        (my $forged = $tok) =~ s/(.{40})(.)/$1 . ($2 eq 'A' ? 'B' : 'A')/e;
        $r = api($srv, 'POST', '/admin/bind', { token => $forged, account => 'alice' }, $TOKEN);
        is($r->{json}{error} // '', 'enroll_token_invalid', "$label: a forged token: refused");
        $r = api($srv, 'POST', '/admin/bind', { token => $tok, account => 'alice' }, $TOKEN);
        is($r->{status}, 200, "$label: the token redeemed into alice") or diag $r->{content};
        $r = api($srv, 'POST', '/admin/bind', { token => $tok, account => 'alice' }, $TOKEN);
        is($r->{json}{error} // '', 'enroll_token_used', "$label: the token again: refused");
        $r = login_to($srv, 'user1');
        is($r->{json}{account} // '', 'alice', "$label: the card signs in as alice");
        my $c = cookie_of($r);
        $r = gated_get($srv, $c, '/app/x');
        like($r->{content} // '', qr/account=\[alice\]/, "$label: ... and opens the gated page");

        # one account a certificate, several certificates an account
        my $id1 = cert_id('user1', $secret);
        $r = api($srv, 'POST', '/admin/bind', { cert_id => $id1, account => 'bob' }, $TOKEN);
        is($r->{json}{error} // '', 'cert_bound_elsewhere', "$label: the same certificate for bob: refused");
        $r = login_to($srv, 'user2');
        my ($tok2) = ($r->{json}{enroll} // "") =~ /jpki_enroll=(.*)$/ or diag "user2: $r->{status} $r->{content}";
        $r = api($srv, 'POST', '/admin/bind', { token => $tok2, account => 'alice' }, $TOKEN);
        is($r->{status}, 200, "$label: a second card for alice");
        $r = login_to($srv, 'user2');
        is($r->{json}{account} // '', 'alice', "$label: ... it signs in as alice too");
        $r = api($srv, 'GET', '/admin/certs?account=alice', undef, $TOKEN);
        my @certs = @{ $r->{json}{certs} // [] };
        is(scalar @certs, 2, "$label: alice's list: two certificates");
        is(join(',', sort map { $_->{cert_id} } @certs),
           join(',', sort $id1, cert_id('user2', $secret)), "$label: ... by cert_id");
        ok(!grep({ $_->{issuer} ne 'card' || !$_->{not_after} || !$_->{last_login} } @certs),
           "$label: ... with issuer, not-after and last login");
        unlike($r->{content} // '', qr/serial/i, "$label: ... and no serial");

        # every session of an account
        $r = api($srv, 'POST', '/admin/logout', { account => 'alice' }, $TOKEN);
        is($r->{status}, 200, "$label: alice logged out");
        my $end = time + 3;
        do { $r = gated_get($srv, $c, '/app/x'); select undef, undef, undef, 0.2 }
            while ($r->{status} == 200 && time < $end);
        is($r->{status}, 401, "$label: ... her session is refused");

        # unbind
        $r = api($srv, 'POST', '/admin/unbind', { cert_id => $id1 }, $TOKEN);
        is($r->{status}, 200, "$label: unbind");
        $r = login_to($srv, 'user1');
        is($r->{status}, 403, "$label: ... the card no longer signs in");
        $r = api($srv, 'GET', '/admin/certs?account=alice', undef, $TOKEN);
        is(scalar @{ $r->{json}{certs} // [] }, 1, "$label: ... alice has one left");

        # renewal: the new card redeemed into the account that has the old
        # one; both sign in until the old one is revoked
        $r = login_to($srv, 'user1');
        my ($tok3) = ($r->{json}{enroll} // '') =~ /jpki_enroll=(.*)$/;
        $r = api($srv, 'POST', '/admin/bind', { token => $tok3, account => 'alice' }, $TOKEN);
        is($r->{status}, 200, "$label: renewal: the new card redeemed into alice");
        is(login_to($srv, 'user2')->{json}{account} // '', 'alice', "$label: ... the old card still signs in");
        is(login_to($srv, 'user1')->{json}{account} // '', 'alice', "$label: ... and the new one");
        $r = login_to($srv, 'rev-keyCompromise');
        my ($tok4) = ($r->{json}{enroll} // '') =~ /jpki_enroll=(.*)$/;
        ok(!$tok4 && ($r->{json}{error} // '') eq 'cert_revoked',
           "$label: a revoked card gets no enrollment token (cert_revoked)");
        $r = api($srv, 'POST', '/admin/bind', { cert_id => cert_id('rev-keyCompromise', $secret),
                                                account => 'alice' }, $TOKEN);
        is($r->{status}, 200, "$label: a card bound before its revocation (by cert_id)");
        $r = login_to($srv, 'rev-keyCompromise');
        is($r->{json}{error} // '', 'cert_revoked', "$label: ... once revoked, it is refused");
        is(login_to($srv, 'user1')->{json}{account} // '', 'alice', "$label: ... the account's other card still signs in");

        # the 5-second token, once expired
        my $wait = $short_at + 6 - time;
        sleep $wait if $wait > 0;
        $r = api($srv, 'POST', '/admin/bind', { token => $short, account => 'carol' }, $TOKEN);
        is($r->{json}{error} // '', 'enroll_token_expired', "$label: an expired token: refused")
            or diag $r->{content};

        push @logs, $srv->log_since(0);
        my @problems = $srv->log_problems;
        ok(!@problems, "$label: no crash or alert in the log") or diag "@problems";
        $srv->stop;
    }
}

# No serial in clear: the certificates' serials, in hex (any case, with or
# without leading zeros) and in decimal, in none of the logs of the run nor
# in the store (the keys and values of Redis)
my @serials;
for my $c (qw(user1 user2 rev-keyCompromise)) {
    my ($hex) = `openssl x509 -in $JPKITest::PKI/$c.pem -noout -serial` =~ /serial=([0-9A-F]+)/i;
    (my $h = lc $hex) =~ s/^0+//;
    my $dec = `printf '%s' \$(echo 'ibase=16; $hex' | BC_LINE_LENGTH=0 bc)` if $hex;
    push @serials, $h, ($dec // ());
}
my $dump = join "\n", @logs;
if ($redis) {
    $redis->cmd('SELECT', 0);
    for my $k ($redis->keys_like('*')) {
        my $type = $redis->cmd('TYPE', $k);
        my $v = $type eq 'string' ? $redis->cmd('GET', $k)
              : $type eq 'hash' ? join(' ', @{ $redis->cmd('HGETALL', $k) // [] }) : '';
        $dump .= "\n$k " . unpack('H*', $v // '') . " $v";
    }
}
ok(length $dump > 1000 && @serials >= 6, 'the logs and the store dumped (' . length($dump) . ' bytes)');
my @found = grep { index(lc $dump, $_) >= 0 } grep { length > 6 } @serials;
ok(!@found, 'no serial in clear, hex or decimal, in the logs or the store') or diag "@found";

done_testing();
