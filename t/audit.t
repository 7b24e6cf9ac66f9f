#!/usr/bin/perl
# t/audit.t - the audit trail (issue 13, docs/operations.md "Audit trail")
# on nginx and Apache alike, with Redis:
#   - a configuration with a bad jpki_audit_log / JPKIAuditLog (a relative
#     path, a file that cannot be written, a missing, short or readable key
#     file, another word, two sites on one file with different keys) is
#     refused at startup with a sentence naming the directive;
#   - logins (good, and refused for several reasons), a logout, admin
#     actions, a soft pass and a gated request refused at its re-check:
#     one JSON line each in the audit file (none in the error log), every
#     field there, no serial in hex or decimal and no signature anywhere;
#   - jpkictl audit verify passes, and finds copies edited, with a line
#     removed, two swapped, one inserted, the last one cut;
#   - the soft-pass record in the store names its audit line's request id
#     (and jpkictl recheck shows it);
#   - rotation: the file renamed, nginx -s reopen (USR1) or Apache's
#     graceful restart, more lines: old + new verify as one chain, the new
#     file alone says where its chain comes from;
#   - concurrency: 200 logins at once on 2 nginx workers or 3 Apache
#     children (mpm_event) make one unbroken chain.
#   make all pki; prove -v t/audit.t
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(jpkictl pki openssl));
my @kinds = JPKIServer::kinds();
plan skip_all => 'no redis-server' unless JPKITest::redis_bin();

my $f = site_fixture();
my ($dir, $secret, $issuer) = @$f{qw(dir secret issuer)};
my $secret2 = write_secret("$dir/other.secret");
my $TOKEN = "t" x 24 . JPKITest::rand_hex(16);
spew("$dir/admin.token", "$TOKEN\n", 0600);
spew("$dir/audit.key", JPKITest::rand_hex(32) . "\n", 0600);
spew("$dir/short.key", "0123456789\n", 0600);
spew("$dir/open.key", JPKITest::rand_hex(32) . "\n", 0644);
chmod 0644, "$dir/open.key";
my $redis = JPKITest::Redis->start(name => 'redis');
my $REDIS = '127.0.0.1:' . $redis->port;

# jpkictl ARGS... -> (exit, stdout and stderr)
sub ctl {
    my ($rc, $o, $e) = run_out($dir, $JPKITest::JPKICTL, @_);
    return ($rc, $o . $e);
}

sub admin_lines {
    my ($kind) = @_;
    return $kind eq 'nginx'
        ? "jpki_admin;\njpki_admin_token_file $dir/admin.token;\njpki_admin_allow 127.0.0.1;"
        : "JPKIAdmin On\nJPKIAdminTokenFile $dir/admin.token\nJPKIAdminAllow 127.0.0.1";
}

sub site {
    my ($kind, $audit, %o) = @_;
    return (secret => $o{secret} // $secret, issuer => $issuer,
            store => $o{store} // "redis=$REDIS", audit_log => $audit,
            workers => $kind eq 'nginx' ? 2 : 3, modules => ['unique_id'],
            locations => [
                '/jpki/' => { endpoints => 1, throttle => 'off' },
                # no CRL in the store: revocation data unavailable
                '/open/jpki/' => { endpoints => 1, throttle => 'off',
                                   revocation => 'crl', failure => 'open' },
                '/admin/' => { $kind => admin_lines($kind) },
                '/app/' => { gate => 1, upstream => 1 },
                '/strict/' => { gate => 1, upstream => 1, revocation => 'crl',
                                recheck_interval => 0 } ]);
}

sub api {
    my ($srv, $method, $path, $data) = @_;
    my %h = (Accept => 'application/json', Authorization => "Bearer $TOKEN");
    return $method eq 'GET' ? http('GET', $srv->url($path), headers => \%h)
                            : post_json($srv->url($path), $data // {}, headers => \%h);
}

sub lines_of { my ($file) = @_; return split /\n/, slurp($file) }

# ---------------------------------------------------------------- startup

for my $kind (@kinds) {
    my $d = JPKIServer::directive_name($kind, 'audit_log');
    my $file = "$dir/$kind-conf.log";
    my @bad = (
        [ 'audit.log', qr/needs an absolute path/, 'a relative path' ],
        [ "$dir/no-such-dir/audit.log", qr/cannot be opened for writing: No such file/,
          'a file that cannot be written' ],
        [ "$dir", qr/cannot be opened for writing/, 'a directory' ],
        [ "$file key_file=$dir/no.key", qr/audit key file .*no\.key.*No such file/,
          'a missing key file' ],
        [ "$file key_file=$dir/short.key", qr/too short: 10 bytes, at least 32/,
          'a key file too short' ],
        [ "$file key_file=$dir/open.key", qr/must not be readable or writable by others/,
          'a key file others can read' ],
        [ "$file keyfile=$dir/audit.key", qr/takes FILE \[key_file=FILE\]/,
          'another word' ],
    );
    for my $b (@bad) {
        my ($st, $out) = JPKIServer->configtest($kind, site($kind, $b->[0], store => 'shm'),
                                                name => "conf-$kind");
        ok($st != 0 && $out =~ /\Q$d\E/ && $out =~ $b->[1],
           "$kind: $b->[2]: refused at startup, $d named") or diag $out;
    }
    # two sites writing one file under different keys (secrets)
    my %a = site($kind, $file, store => 'shm zone=a');
    my %b = site($kind, $file, store => 'shm zone=b', secret => $secret2);
    my ($st, $out);
    if ($kind eq 'nginx') {
        my $srv2 = join "\n", JPKIServer::directives('nginx', \%b, qw(secret issuer store));
        ($st, $out) = JPKIServer->configtest($kind, %a, name => 'conf-clash',
                                             nginx_server => $srv2);
    } else {
        ($st, $out) = JPKIApache::Server->configtest(
            name => 'apache-conf-clash',
            vhosts => [ a => JPKIServer::conf('apache', %a), b => JPKIServer::conf('apache', %b) ]);
    }
    ok($st != 0 && $out =~ /\Q$d\E ".*conf\.log" is written by two sites with different keys/,
       "$kind: two sites on one audit file with different keys: refused") or diag $out;
}

# ---------------------------------------------------------------- servers

my @serials;
for my $c (qw(user1 user2 rev-keyCompromise user-expired)) {
    my ($hex) = `openssl x509 -in $JPKITest::PKI/$c.pem -noout -serial` =~ /serial=([0-9A-F]+)/i;
    (my $h = lc $hex) =~ s/^0+//;
    my $dec = `printf '%s' \$(echo 'ibase=16; $hex' | BC_LINE_LENGTH=0 bc)`;
    push @serials, $h, $dec;
}
my $id1 = cert_id('user1', $secret);
my $id2 = cert_id('user2', $secret);

for my $kind (@kinds) {
    $redis->cmd('FLUSHALL');
    my $file = "$dir/$kind-audit.log";
    # Apache's lines under a key file, nginx's under the site secret's key
    my $audit = $kind eq 'apache' ? "$file key_file=$dir/audit.key" : $file;
    my @key = $kind eq 'apache' ? ('--key-file', "$dir/audit.key") : ('--secret-file', $secret);
    my @wrong = $kind eq 'apache' ? ('--secret-file', $secret) : ('--key-file', "$dir/audit.key");
    my $srv = JPKIServer->start($kind, name => "audit-$kind", site($kind, $audit));
    my $mark = $srv->mark;

    # logins, refused and good; admin actions; a logout
    my $r = login_to($srv, 'user1');
    is($r->{json}{error} // '', 'account_not_mapped', "$kind: a card no account has: refused");
    $r = api($srv, 'POST', '/admin/bind', { cert_id => $id1, account => 'alice' });
    is($r->{status}, 200, "$kind: admin: user1 bound to alice") or diag $r->{content};
    $r = login_to($srv, 'user1');
    is($r->{json}{account} // '', 'alice', "$kind: user1 signs in as alice");
    my $c1 = cookie_of($r);
    api($srv, 'POST', '/admin/bind', { cert_id => cert_id('rev-keyCompromise', $secret),
                                       account => 'carol' });
    is(login_to($srv, 'rev-keyCompromise')->{json}{error} // '', 'cert_revoked',
       "$kind: a revoked card: refused");
    is(login_to($srv, 'user1', key => 'user2')->{json}{error} // '', 'signature_invalid',
       "$kind: a signature by another key: refused");
    is(login_to($srv, 'user-expired')->{json}{error} // '', 'cert_expired',
       "$kind: an expired card: refused");
    is($srv->logout($c1)->{status}, 200, "$kind: logout");

    # a soft pass (no CRL: revocation data unavailable, failure open), its
    # session refused at a fail-closed location's re-check
    # (user2: no answer cached for it)
    api($srv, 'POST', '/admin/bind', { cert_id => $id2, account => 'bob' });
    $r = login_to($srv, 'user2', prefix => '/open');
    is($r->{json}{account} // '', 'bob', "$kind: a soft pass");
    my $csoft = cookie_of($r);
    $r = gated_get($srv, $csoft, '/strict/x');
    is($r->{status}, 503, "$kind: its session at a fail-closed location: 503 at the re-check");

    $r = api($srv, 'GET', '/admin/certs?account=alice');
    is(scalar @{ $r->{json}{certs} // [] }, 1, "$kind: admin: alice's list");
    $r = api($srv, 'POST', '/admin/unbind', { cert_id => $id1 });
    is($r->{status}, 200, "$kind: admin: unbind");
    $r = api($srv, 'POST', '/admin/bind', { cert_id => $id1, account => 'alice' });
    is($r->{status}, 200, "$kind: admin: bound again");

    # the lines
    my @lines = lines_of($file);
    my @recs = map { JPKITest::json_decode($_) } @lines;
    is(scalar(grep { $_ } @recs), scalar @lines, "$kind: every line is JSON (" . @lines . ' lines)');
    my @need = qw(seq prev mac ts request_id peer location event result reason issuer
                  cert_id account revocation revocation_age soft_pass);
    my @miss = map { my $r = $_; grep { !exists $r->{$_} } @need } grep { $_ } @recs;
    ok(!@miss, "$kind: every line has every field") or diag "missing: @miss";
    my %ev;
    $ev{ join ' ', $_->{event}, $_->{action} // $_->{reason} }++ for grep { $_ } @recs;
    ok($ev{'login account_not_mapped'} && $ev{'login ok'} && $ev{'login cert_revoked'}
       && $ev{'login signature_invalid'} && $ev{'login cert_expired'} && $ev{'logout ok'}
       && $ev{'admin bind'} == 4 && $ev{'admin unbind'} && $ev{'admin certs'}
       && $ev{'check revocation_unavailable'},
       "$kind: a line for each login, the logout, each admin action, the re-check")
        or diag explain \%ev;
    my ($ok) = grep { $_->{event} eq 'login' && $_->{result} eq 'ok' && !$_->{soft_pass} } @recs;
    ok($ok && $ok->{account} eq 'alice' && $ok->{cert_id} eq $id1 && $ok->{issuer} eq 'card'
       && $ok->{peer} eq '127.0.0.1' && $ok->{location} eq '/jpki/login'
       && $ok->{revocation} eq 'ocsp' && $ok->{revocation_age} =~ /^\d+$/
       && $ok->{revocation_age} < 3600,
       "$kind: a good login's line: account, cert_id, issuer, address, location, OCSP and its age")
        or diag explain $ok;
    my $rid_re = $kind eq 'nginx' ? qr/^[0-9a-f]{32}$/ : qr/^[A-Za-z0-9\@_-]{20,40}$/;
    ok(!grep({ $_->{request_id} !~ $rid_re } @recs),
       "$kind: request ids: the server's (" . ($ok ? $ok->{request_id} : '-') . ')');
    my %rid;
    $rid{ $_->{request_id} }++ for @recs;
    ok(!grep({ $_ > 1 } values %rid), "$kind: ... one a request");
    is(join(',', map { $_->{seq} } @recs), join(',', 1 .. @recs), "$kind: seq 1, 2, 3...");
    is($recs[0]{prev}, '0' x 64, "$kind: the first line starts the chain");
    my ($adm) = grep { $_->{event} eq 'admin' && $_->{action} eq 'certs' } @recs;
    ok($adm && $adm->{location} eq '/admin/certs' && $adm->{account} eq 'alice',
       "$kind: an admin line: the path without its query, the account") or diag explain $adm;
    ok(!$srv->audits($mark), "$kind: no audit line in the error log");

    # no serial, no signature
    my $text = slurp($file) . $srv->log_since(0);
    my @found = grep { index(lc $text, $_) >= 0 } grep { length > 6 } @serials;
    ok(!@found, "$kind: no serial in clear, hex or decimal, in the audit file or the error log")
        or diag "@found";
    (my $t2 = slurp($file)) =~ s/"[0-9a-f]{64}"//g;
    unlike($t2, qr{[A-Za-z0-9+/=_-]{48,}}, "$kind: no signature or base64 blob in the audit file");

    # verify, and tampered copies
    my ($st, $out) = ctl('audit', 'verify', @key, $file);
    ok($st == 0 && $out =~ /chain start/ && $out =~ /errors=0 ok$/m, "$kind: jpkictl audit verify: ok")
        or diag $out;
    ($st, $out) = ctl('audit', 'verify', '--secret-file', $secret, '--key-file',
                      "$dir/audit.key", $file);
    ok($st == 2 && $out =~ /give one of --secret-file and --key-file/, "$kind: verify with two keys: usage")
        or diag $out;
    ($st, $out) = ctl('audit', 'verify', @key);
    ok($st == 2 && $out =~ /FILE argument is required/, "$kind: verify without a file: usage")
        or diag $out;
    ($st, $out) = ctl('audit', 'verify', @wrong, $file);
    ok($st == 1 && $out =~ /1: error: mac mismatch/ && $out =~ /no line verifies under this key/,
       "$kind: ... under another key: fails")
        or diag $out;
    my $n = @lines;
    my ($k) = grep { $lines[$_] =~ /"account":"alice"/ } 2 .. $n - 2;
    my %tamper = (
        edited => [ sub { $_[0][$k] =~ s/"account":"alice"/"account":"mallory"/ },
                    qr/:@{[ $k + 1 ]}: error: mac mismatch \(edited\)/ ],
        removed => [ sub { splice @{ $_[0] }, 3, 1 }, qr/:4: error: seq gap: line 4 removed/ ],
        swapped => [ sub { @{ $_[0] }[3, 4] = @{ $_[0] }[4, 3] },
                     qr/:5: error: out of order: seq 4 after seq 5/ ],
        inserted => [ sub { (my $x = $_[0][3]) =~ s/"result":"\w+"/"result":"ok"/;
                            $x =~ s/"reason":"\w+"/"reason":"forged"/; splice @{ $_[0] }, 3, 0, $x },
                      qr/:4: error: inserted\/foreign line/ ],
        truncated => [ sub { $_[0][-1] = substr($_[0][-1], 0, 50) },
                       qr/:$n: error: truncated last line/ ],
    );
    for my $what (sort keys %tamper) {
        my @copy = @lines;
        $tamper{$what}[0]->(\@copy);
        my $cf = "$dir/$kind-$what.log";
        spew($cf, join("\n", @copy) . ($what eq 'truncated' ? '' : "\n"));
        ($st, $out) = ctl('audit', 'verify', @key, $cf);
        ok($st == 1 && $out =~ $tamper{$what}[1] && $out =~ /FAILED$/m,
           "$kind: a line $what: found") or diag $out;
    }
    ($st, $out) = ctl('audit', 'verify', @key, '--last-seq', $n + 2, $file);
    ok($st == 1 && $out =~ /tail truncated: .*lines @{[ $n + 1 ]}\.\.@{[ $n + 2 ]} removed/,
       "$kind: --last-seq past the end: the tail's removal found") or diag $out;

    # the soft-pass record points at its audit line
    my ($sk) = $redis->keys_like('jpki:v1:soft:*');
    my $sv = $sk ? JPKITest::json_decode($redis->cmd('GET', $sk)) : undef;
    my @soft = grep { $sv && $_->{request_id} eq ($sv->{rid} // '') } @recs;
    ok(@soft == 1 && $soft[0]{soft_pass} && $soft[0]{event} eq 'login'
       && $soft[0]{revocation} eq 'soft' && !defined $soft[0]{revocation_age},
       "$kind: the soft-pass record's request id finds its audit line") or diag explain [$sv, \@soft];
    ($st, $out) = ctl('recheck', '--redis', $REDIS, '--secret-file', $secret,
                      '--issuer', "card=$JPKITest::PKI/ca1.pem,$JPKITest::PKI/ca2.pem");
    like($out, qr/unchecked cert_id=$id2 .*request_id=\Q@{[ $sv ? $sv->{rid} : 'x' ]}\E/,
         "$kind: jpkictl recheck shows it");

    # rotation
    rename $file, "$file.1" or die;
    if ($kind eq 'nginx') {
        kill 'USR1', $srv->pid;
        my $end = time + 5;
        sleep 0.05 while !-e $file && time < $end;
        sleep 0.3;                          # the workers reopen too
    } else {
        ok($srv->reload, "$kind: graceful restart");
    }
    ok(-e $file, "$kind: a new file after " . ($kind eq 'nginx' ? 'nginx -s reopen' : 'the graceful restart'));
    is(login_to($srv, 'user1')->{json}{account} // '', 'alice', "$kind: a login after the rotation");
    login_to($srv, 'user2');
    my @new = lines_of($file);
    ok(@new == 2 && $new[0] =~ /^\{"seq":@{[ $n + 1 ]},/, "$kind: its lines in the new file, seq going on")
        or diag "@new";
    ($st, $out) = ctl('audit', 'verify', @key, "$file.1", $file);
    ok($st == 0 && $out =~ /lines=@{[ $n + 2 ]} first_seq=1 last_seq=@{[ $n + 2 ]} chains=1 errors=0 ok/,
       "$kind: old + new verify as one chain") or diag $out;
    ($st, $out) = ctl('audit', 'verify', @key, $file);
    ok($st == 0 && $out =~ /continues from a line before these files \(first seq @{[ $n + 1 ]}\)/,
       "$kind: the new file alone: where its chain comes from, said") or diag $out;
    ($st, $out) = ctl('audit', 'verify', @key, $file, "$file.1");
    ok($st == 1 && $out =~ /chain restart/, "$kind: files in the wrong order: found") or diag $out;

    # concurrency: 200 logins at once
    my $t0 = time;
    my $good = $srv->parallel_logins(20, 10, cert => 'user1', account => 'alice');
    my $dt = time - $t0;
    is($good, 200, "$kind: 200 parallel logins (" . sprintf('%.1f s', $dt) . ')');
    ($st, $out) = ctl('audit', 'verify', @key, "$file.1", $file);
    my @all = lines_of($file);
    ok($st == 0 && @all >= 202 && $out =~ /errors=0 ok/,
       "$kind: " . scalar(@all) . " lines from several processes: one chain, verified") or diag $out;
    my @cached = grep { $_ && $_->{revocation} eq 'cache' } map { JPKITest::json_decode($_) } @all;
    ok(@cached && !grep({ ($_->{revocation_age} // 'x') !~ /^\d+$/ } @cached),
       "$kind: logins answered from the cache: the cached answer's age");
    my %pids = map { $_ => 1 } $srv->workers;
    ok(keys %pids >= 2, "$kind: ... " . keys(%pids) . ' worker processes wrote it');

    my @problems = $srv->log_problems;
    ok(!@problems, "$kind: no crash or alert in the log") or diag "@problems";
    $srv->stop;

    # a cold start: the head read back from the file's last line
    $srv = JPKIServer->start($kind, name => "audit-$kind-2", site($kind, $audit));
    login_to($srv, 'user1');
    ($st, $out) = ctl('audit', 'verify', @key, "$file.1", $file);
    ok($st == 0 && $out =~ /chains=1 errors=0 ok/, "$kind: after a cold start the chain goes on")
        or diag $out;
    $srv->stop;
}

done_testing();
