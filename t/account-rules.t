#!/usr/bin/perl
# t/account-rules.t - a location's account and issuer rules, on nginx and
# Apache side by side (the decision is the core's: common/allow.c):
#   - jpki_allow_accounts / JPKIAllowAccounts: an account on the list
#     passes, another is refused 403 account_not_allowed (JSON, browsers
#     too: it is not a login problem), with the same log line on both,
#     and never reaches the upstream; Apache's Require jpki-account
#     (AuthzSendForbiddenOnFailure On) refuses the same way;
#   - jpki_allow_issuers / JPKIAllowIssuers: a card-only location refuses
#     a phone's certificate (403 issuer_not_allowed) and lets the card's
#     through; a location listing both lets both through; the lists come
#     down from the server level;
#   - an unknown issuer name, too many accounts, an invalid account:
#     the configuration is refused with its sentence;
#   - the login's time and status upstream: nginx's $jpki_auth_time and
#     $jpki_status, Apache's JPKI_AUTH_TIME and JPKI_STATUS (the same
#     values); nginx's $jpki_account in proxy_set_header.
#   make build/ngx_http_jpki_module.so build/mod_auth_jpki.so build/jpkictl pki
#   prove -v t/account-rules.t
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
my ($dir, $secret, $map) = @$f{qw(dir secret map)};
my $phone_ocsp = JPKITest::Ocsp->start(name => 'phone-ocsp', signer => 'phone-ocsp',
                                       index => 'phone-index.txt', ca => 'phone-ca.pem');
# alice has a card (user1) and a phone (phone-user); bob a card (user2)
spew($map, cert_id('user1', $secret) . " alice\n" . cert_id('user2', $secret) . " bob\n"
     . cert_id('phone-user', $secret) . " alice\n", 0644);
my @issuers = ($f->{issuer}, 'phone ca=@PKI@/phone-ca.pem ocsp=' . $phone_ocsp->url);

sub upstream_echo {
    my ($kind, $nginx, $apache) = @_;
    return JPKIServer::is_nginx($kind) ? (nginx => "proxy_set_header X-JPKI-Other \"$nginx\";")
                                       : (apache => "RequestHeader set X-JPKI-Other \"$apache\"");
}

sub site {
    my ($kind, %o) = @_;
    my $nginx = JPKIServer::is_nginx($kind);
    return (secret => $secret, issuer => \@issuers, store => 'shm', map => $map,
            %o,
            locations => [
                '/jpki/' => { endpoints => 1, throttle => 'off' },
                '/app/' => { gate => 1, upstream => 1 },
                '/time/' => { gate => 1, upstream => 1,
                              upstream_echo($kind, '$jpki_auth_time', '%{JPKI_AUTH_TIME}e') },
                '/status/' => { gate => 1, upstream => 1,
                                upstream_echo($kind, '$jpki_status', '%{JPKI_STATUS}e') },
                # the nginx pattern of docs/nginx.md: the account in a header of one's own
                '/user/' => { gate => 1, upstream => 1,
                              upstream_echo($kind, 'user=$jpki_account', 'user=%{JPKI_ACCOUNT}e') },
                '/alice/' => { gate => 1, upstream => 1, allow_accounts => 'alice' },
                '/staff/' => { gate => 1, upstream => 1, allow_accounts => '"carol d" bob' },
                # Apache's authorization provider, side by side with the core's list
                '/require/' => $nginx
                    ? { gate => 1, upstream => 1, allow_accounts => 'alice' }
                    : { upstream => 1,
                        apache => "AuthType JPKI\nRequire jpki-account alice\n"
                                  . "AuthzSendForbiddenOnFailure On" },
                '/card/' => { gate => 1, upstream => 1, allow_issuers => 'card' },
                # the refusal's reason in nginx's variables
                '/alice-vars/' => { gate => 1, upstream => 1, allow_accounts => 'alice',
                                    nginx => "add_header X-Status \"[\$jpki_status]\" always;\n"
                                             . "add_header X-Account \"[\$jpki_account]\" always;" },
                '/both/' => { gate => 1, upstream => 1, allow_issuers => 'card phone' },
                '/card-alice/' => { gate => 1, upstream => 1, allow_issuers => 'card',
                                    allow_accounts => 'alice' },
            ]);
}

for my $kind (@kinds) {
    my $srv = JPKIServer->start($kind, name => 'rules', site($kind));
    my %c = map { $_ => cookie_of($srv->login($_)) } qw(user1 user2 phone-user);
    ok($c{$_}, "$kind: $_ signs in") for sort keys %c;
    my $t = time;

    # ---- accounts
    for my $path ('/alice/', '/require/') {
        my $m = $srv->mark;
        my $r = $srv->get("${path}x", cookie => $c{user1});
        is($r->{status}, 200, "$kind $path: alice on the list passes");
        like($r->{content}, qr/account=\[alice\]/, "$kind $path: ... her account upstream");
        $m = $srv->mark;
        $r = $srv->get("${path}x", cookie => $c{user2});
        is($r->{status}, 403, "$kind $path: bob refused 403");
        is($r->{json} && $r->{json}{error}, 'account_not_allowed', "$kind $path: ... account_not_allowed");
        like($r->{headers}{'content-type'} // '', qr{^application/json}, "$kind $path: ... JSON");
        is($srv->upstream_hits($m, 0), 0, "$kind $path: ... the upstream never sees it");
        my $log = $srv->log_since($m);
        like($log, qr/jpki: account "bob" is not on the location's allow-list/,
             "$kind $path: ... the log says who and why");
        unlike($log, qr/[0-9a-f]{32}/, "$kind $path: ... no cert_id or session in that line");
        # a browser gets the same 403 (no login page: it is not a login problem)
        $r = $srv->get("${path}x", cookie => $c{user2}, headers => { Accept => 'text/html' });
        is($r->{status}, 403, "$kind $path: a browser: the same 403");
        $r = $srv->get("${path}x");
        is($r->{status}, 401, "$kind $path: no session: 401 as anywhere");
    }
    if ($srv->nginx) {
        my $r = $srv->get('/alice-vars/x', cookie => $c{user2});
        is($r->{headers}{'x-status'}, '[account_not_allowed]', 'nginx: $jpki_status: the refusal\'s reason');
        is($r->{headers}{'x-account'}, '[]', 'nginx: $jpki_account: empty when refused');
        $r = $srv->get('/alice-vars/x', cookie => $c{user1});
        is($r->{headers}{'x-status'}, '[ok]', 'nginx: $jpki_status: ok when allowed');
        is($r->{headers}{'x-account'}, '[alice]', 'nginx: $jpki_account: the account');
    }
    my $r = $srv->get('/staff/x', cookie => $c{user2});
    is($r->{status}, 200, "$kind: bob on a list of two (one with a blank)");
    $r = $srv->get('/staff/x', cookie => $c{user1});
    is($r->{status}, 403, "$kind: alice not on it: 403");

    # ---- issuers
    $r = $srv->get('/card/x', cookie => $c{user1});
    is($r->{status}, 200, "$kind: card-only: the card passes");
    my $m = $srv->mark;
    $r = $srv->get('/card/x', cookie => $c{'phone-user'});
    is($r->{status}, 403, "$kind: card-only: the phone refused 403");
    is($r->{json} && $r->{json}{error}, 'issuer_not_allowed', "$kind: ... issuer_not_allowed");
    is($srv->upstream_hits($m, 0), 0, "$kind: ... the upstream never sees it");
    like($srv->log_since($m), qr/jpki: account "alice" signed in with issuer "phone", not on the location's allow-list of issuers/,
         "$kind: ... the log says which issuer");
    $r = $srv->get('/both/x', cookie => $c{'phone-user'});
    is($r->{status}, 200, "$kind: card and phone: the phone passes");
    like($r->{content}, qr/account=\[alice\]/, "$kind: ... as alice");
    $r = $srv->get('/both/x', cookie => $c{user2});
    is($r->{status}, 200, "$kind: card and phone: the card passes");
    $r = $srv->get('/card-alice/x', cookie => $c{user1});
    is($r->{status}, 200, "$kind: both lists: alice's card passes");
    $r = $srv->get('/card-alice/x', cookie => $c{'phone-user'});
    is($r->{json} && $r->{json}{error}, 'issuer_not_allowed', "$kind: both lists: alice's phone refused");
    $r = $srv->get('/card-alice/x', cookie => $c{user2});
    is($r->{json} && $r->{json}{error}, 'account_not_allowed', "$kind: both lists: bob's card refused");
    $r = $srv->get('/app/x', cookie => $c{'phone-user'});
    is($r->{status}, 200, "$kind: no list: the phone passes");

    # ---- what goes upstream
    $r = $srv->get('/time/x', cookie => $c{user1});
    my ($at) = ($r->{content} // '') =~ /other=\[(\d+)\]/;
    ok(defined $at && $at > $t - 60 && $at <= time + 1,
       "$kind: the login's time upstream (" . ($kind eq 'nginx' ? '$jpki_auth_time' : 'JPKI_AUTH_TIME') . ')')
        or diag($r->{content});
    $r = $srv->get('/status/x', cookie => $c{user1});
    like($r->{content}, qr/other=\[ok\]/, "$kind: the status upstream: ok");
    $r = $srv->get('/user/x', cookie => $c{user2});
    like($r->{content}, qr/other=\[user=bob\]/, "$kind: the account in a header of one's own");
    $srv->stop;
}

# ---- configurations refused, with their sentences
for my $kind (@kinds) {
    my $nginx = JPKIServer::is_nginx($kind);
    my $iss = $nginx ? 'jpki_allow_issuers' : 'JPKIAllowIssuers';
    my $acc = $nginx ? 'jpki_allow_accounts' : 'JPKIAllowAccounts';
    my @cases = (
        ['an unknown issuer name', { allow_issuers => 'card tablet' },
         qr/\Q$iss\E\W*(?: directive)? must name the site's issuers: "tablet" is none of them \(card, phone\)/],
        ['65 accounts', { allow_accounts => join(' ', map { "u$_" } 1 .. 65) },
         qr/\Q$acc\E.* must list at most 64 accounts/],
        ['an account twice', { allow_accounts => 'alice alice' },
         qr/\Q$acc\E.* must not list "alice" twice/],
        ['an invalid issuer name', { allow_issuers => 'ca/rd' },
         qr/\Q$iss\E.* must list issuer names of 1\.\.63 letters/],
    );
    my $i = 0;
    for my $c (@cases) {
        my ($what, $loc, $re) = @$c;
        my ($st, $out) = JPKIServer->configtest($kind, name => 'bad' . $i++,
            secret => $secret, issuer => \@issuers, store => 'shm', map => $map,
            locations => [ '/jpki/' => { endpoints => 1 },
                           '/x/' => { gate => 1, upstream => 1, %$loc } ]);
        isnt($st, 0, "$kind: refused: $what");
        like($out, $re, "$kind: refused: $what: says why") or diag($out);
    }
    # at the server level too: the list comes down to every location
    my ($st, $out) = JPKIServer->configtest($kind, name => 'badtop',
        secret => $secret, issuer => \@issuers, store => 'shm', map => $map,
        allow_issuers => 'tablet',
        locations => [ '/jpki/' => { endpoints => 1 }, '/x/' => { gate => 1, upstream => 1 } ]);
    isnt($st, 0, "$kind: an unknown issuer at the server level refused");
    like($out, qr/"tablet" is none of them/, "$kind: ... says why") or diag($out);
    if (!$nginx) {
        ($st, $out) = JPKIServer->configtest($kind, name => 'badreq',
            secret => $secret, issuer => \@issuers, store => 'shm', map => $map,
            locations => [ '/jpki/' => { endpoints => 1 },
                           '/x/' => { upstream => 1, apache => "AuthType JPKI\nRequire jpki-account "
                                                               . join(' ', map { "u$_" } 1 .. 65) } ]);
        isnt($st, 0, 'apache: Require jpki-account with 65 accounts refused');
        like($out, qr/Require jpki-account must list at most 64 accounts/, '... the same sentence') or diag($out);
    }
}

done_testing();
