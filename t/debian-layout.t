#!/usr/bin/perl
# t/debian-layout.t - `make install` and the example snippets, on nginx and
# Apache alike:
#  - `make install DESTDIR=D PREFIX=/usr` puts the tools under PREFIX, the
#    modules where Debian's nginx and apache2 look for them, the snippets
#    that load them (modules-available, mods-available) and the examples in
#    the documentation; the default PREFIX is /usr/local;
#  - the installed pieces run as a Debian system would run them: a main
#    configuration shaped like Debian's (modules-enabled or mods-enabled,
#    conf.d or conf-enabled, sites-enabled) with the snippets of
#    conf.example/ (paths and ports replaced): the application is closed,
#    browsers go to the login page, health answers, a login through the
#    installed jpkictl's mapping opens the application with the account,
#    and an audit line is logged;
#  - as root, with dpkg-buildpackage (JPKI_TEST_DEB=0: not): the Debian
#    packages built from a copy of the tree (libnginx-mod-http-jpki,
#    libapache2-mod-auth-jpki, jpki-tools), with the ABI dependencies of
#    Debian's own module packages, installed with dpkg: the module enabled
#    (modules-enabled link, a2enmod), the jpki user, the CRL sync's units;
#    Debian's own nginx.conf and apache2.conf still pass their configuration
#    test; the same runs with the installed packages; then purged.
#   make all pki && prove -v t/debian-layout.t   (JPKI_SERVERS=nginx: one server)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JPKITest;
use JPKIApache;
use JPKIServer;

skip_unless(qw(pki openssl));
my @kinds = JPKIServer::kinds();
my $top = "$FindBin::Bin/..";
my $dir = tmpdir();

# ---- make install
sub install {
    my ($dest, @vars) = @_;
    my $out = `make -s -C $top install DESTDIR=$dest @vars 2>&1`;
    is($? >> 8, 0, "make install DESTDIR @vars") or diag($out);
}
my $root = "$dir/root";
install($root, 'PREFIX=/usr');
for my $f (qw(usr/bin/jpkictl usr/bin/jpki-login)) {
    ok(-x "$root/$f", "installed /$f");
}
ok(-f "$root/usr/lib/nginx/modules/ngx_http_jpki_module.so", 'the nginx module in Debian\'s modules directory');
ok(-f "$root/usr/lib/apache2/modules/mod_auth_jpki.so", 'the Apache module in Debian\'s modules directory');
is(slurp("$root/usr/share/nginx/modules-available/mod-http-jpki.conf"),
   "load_module modules/ngx_http_jpki_module.so;\n", 'modules-available/mod-http-jpki.conf loads it');
like(slurp("$root/etc/apache2/mods-available/auth_jpki.load"),
     qr{^LoadModule auth_jpki_module /usr/lib/apache2/modules/mod_auth_jpki.so$}m,
     'mods-available/auth_jpki.load loads it (a2enmod auth_jpki)');
my $ex = "$root/usr/share/doc/jpki-gate/examples";
ok(-f "$ex/$_", "example $_") for qw(nginx/conf.d/jpki.conf nginx/sites-available/jpki
    apache2/conf-available/jpki.conf apache2/sites-available/jpki.conf
    systemd/jpki-crl-sync.service systemd/jpki-crl-sync.timer);
like(slurp("$ex/systemd/jpki-crl-sync.service"), qr{^ExecStart=/usr/bin/jpkictl crl sync}m,
     'the CRL sync unit runs the installed jpkictl');
install("$dir/root-local");
ok(-x "$dir/root-local/usr/local/bin/jpkictl", 'the default PREFIX is /usr/local');
like(slurp("$dir/root-local/usr/local/share/doc/jpki-gate/examples/systemd/jpki-crl-sync.service"),
     qr{^ExecStart=/usr/local/bin/jpkictl crl sync}m, '... and the unit says so');

# ---- the site's files, as /etc/jpki would hold them
my $pki = JPKITest::server_pki();
my $ocsp = JPKITest::Ocsp->start(name => 'ocsp');
my $etc = "$dir/etc-jpki";
mkdir $_, 0755 for $etc, "$etc/www";
chmod 0755, $etc, "$etc/www";
my $secret = write_secret("$etc/secret");
spew("$etc/jlis-ca.pem", slurp("$pki/ca1.pem") . slurp("$pki/ca2.pem"), 0644);
mkdir "$etc/crl", 0755;
chmod 0755, "$etc/crl";
spew("$etc/crl/$_.crl", slurp("$pki/$_.crl"), 0644) for qw(ca1 ca2);
my $out = `$root/usr/bin/jpkictl map add --cert $pki/user1.pem --issuer card=$etc/jlis-ca.pem --secret-file $etc/secret --account debian-user --map-file $etc/accounts 2>&1`;
is($? >> 8, 0, 'the installed jpkictl writes the mapping') or diag($out);
chmod 0644, "$etc/accounts";

# The example snippets with this test's paths and ports.
sub localize {
    my ($text, $port, $up) = @_;
    $text =~ s{/etc/jpki}{$etc}g;
    $text =~ s{/var/www/jpki}{$etc/www}g;
    $text =~ s{127\.0\.0\.1:8888}{'127.0.0.1:' . $ocsp->port}ge;
    $text =~ s{127\.0\.0\.1:8080}{127.0.0.1:$port}g;
    $text =~ s{127\.0\.0\.1:9000}{127.0.0.1:$up}g;
    return $text;
}

# nginx: Debian's nginx.conf includes modules-enabled/*.conf, conf.d/*.conf
# and sites-enabled/*; modules/ is its link to /usr/lib/nginx/modules.
sub start_nginx {
    my ($n, $port, $up, $root, $ex) = @_;
    mkdir $_, 0755 for $n, map { "$n/$_" } qw(modules-enabled conf.d sites-enabled logs);
    symlink "$root/usr/lib/nginx/modules", "$n/modules";
    symlink "$root/usr/share/nginx/modules-available/mod-http-jpki.conf",
            "$n/modules-enabled/50-mod-http-jpki.conf";
    my $site = localize(slurp("$ex/nginx/conf.d/jpki.conf"), $port, $up);
    $site =~ s{/var/log/nginx}{$n/logs}g;
    spew("$n/conf.d/jpki.conf", "$site\njpki_cookie_secure off;\n");
    spew("$n/sites-enabled/jpki", localize(slurp("$ex/nginx/sites-available/jpki"), $port, $up));
    spew("$n/nginx.conf", <<"EOF");
include modules-enabled/*.conf;
worker_processes 2;
pid $n/nginx.pid;
error_log $n/logs/error.log;
events { worker_connections 768; }
http {
    access_log $n/logs/access.log;
    client_body_temp_path $n/body;
    proxy_temp_path $n/proxy;
    include conf.d/*.conf;
    include sites-enabled/*;
}
EOF
    return (JPKITest::spawn('nginx debian', "$n/stderr.log", $JPKITest::NGINX, '-p', $n,
                            '-c', "$n/nginx.conf", '-g', 'daemon off;'),
            "$n/logs/error.log");
}

# Apache: Debian's apache2.conf includes mods-enabled/*.load,
# conf-enabled/*.conf and sites-enabled/*.conf, and denies the file system
# but /var/www.
sub start_apache {
    my ($a, $port, $up, $root, $ex) = @_;
    mkdir $_, 0755 for $a, map { "$a/$_" } qw(mods-enabled conf-enabled sites-enabled logs run);
    my $load = slurp("$root/etc/apache2/mods-available/auth_jpki.load");
    $load =~ s{/usr/lib/apache2/modules}{$root/usr/lib/apache2/modules} if $root ne '';
    spew("$a/mods-enabled/auth_jpki.load", $load);
    spew("$a/conf-enabled/jpki.conf",
         localize(slurp("$ex/apache2/conf-available/jpki.conf"), $port, $up)
         . "JPKICookieSecure Off\n");
    spew("$a/sites-enabled/jpki.conf",
         localize(slurp("$ex/apache2/sites-available/jpki.conf"), $port, $up));
    my $md = $JPKIApache::MODDIR;
    my $user = $> == 0 ? "User nobody\nGroup nogroup\n" : '';
    spew("$a/apache2.conf", <<"EOF");
DefaultRuntimeDir $a/run
PidFile $a/run/apache2.pid
ServerName localhost
${user}ErrorLog $a/logs/error.log
LogLevel warn
LoadModule mpm_event_module $md/mod_mpm_event.so
LoadModule authn_core_module $md/mod_authn_core.so
LoadModule authz_core_module $md/mod_authz_core.so
LoadModule authz_host_module $md/mod_authz_host.so
LoadModule authz_user_module $md/mod_authz_user.so
LoadModule proxy_module $md/mod_proxy.so
LoadModule proxy_http_module $md/mod_proxy_http.so
StartServers 1
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory $etc/www>
    Require all granted
</Directory>
IncludeOptional mods-enabled/*.load
IncludeOptional conf-enabled/*.conf
IncludeOptional sites-enabled/*.conf
EOF
    return (JPKITest::spawn('apache debian', "$a/stderr.log", $JPKIApache::APACHE, '-d', $a,
                            '-f', "$a/apache2.conf", '-DFOREGROUND'),
            "$a/logs/error.log");
}

# Runs each server from what is installed under root (the modules and the
# snippets), with the examples of ex; what: the label.
sub run_sites {
    my ($what, $root, $ex) = @_;
    for my $kind (@kinds) {
        run_site($kind, "$what $kind", "$dir/$what-$kind", $root, $ex);
    }
}

sub run_site {
    my ($kind, $label, $sdir, $root, $ex) = @_;
    my $port = free_port();
    my $echo = JPKIApache::Echo->new($dir, "app-$label" =~ s/ /-/gr);
    $echo->start;
    my $up = (values %{ $echo->{ports} })[0];
    my ($pid, $log) = $kind eq 'nginx' ? start_nginx($sdir, $port, $up, $root, $ex)
                                       : start_apache($sdir, $port, $up, $root, $ex);
    ok(wait_port($port, 10, $pid), "$label: starts from the Debian-layout snippets")
        or diag(slurp("$sdir/stderr.log") . slurp($log));
    my $u = "http://127.0.0.1:$port";
    my $r = http('GET', "$u/account/");
    is($r->{status}, 401, "$label: the application is closed to API clients");
    $r = http('GET', "$u/account/", headers => { Accept => 'text/html' });
    is($r->{status}, 302, "$label: browsers are sent to the login page");
    like($r->{headers}{location} // '', qr{^/jpki/login\?return_to=/account/}, "$label: Location: the gate's page");
    $r = http('GET', "$u/jpki/login?return_to=/account/", headers => { 'Accept-Language' => 'en' });
    like($r->{content} // '', qr{<html lang="en">.*action="/jpki/tls"}s, "$label: the login page is served");
    $r = http('GET', "$u/jpki-health");
    is($r->{status}, 200, "$label: health 200 (CRL fresh, store up)");
    is($r->{json} && $r->{json}{crls}[0]{loaded} ? 1 : 0, 1, "$label: the CRL is loaded");
    my $ch = challenge("$u/jpki");
    $r = post_json("$u/jpki/login", login_body($ch, 'user1'));
    is($r->{status}, 200, "$label: login");
    is($r->{json} && $r->{json}{account}, 'debian-user', "$label: the account of the installed jpkictl's mapping");
    my $c = cookie_of($r);
    $r = http('GET', "$u/account/", headers => { Cookie => "jpki_session=$c",
                                                 'X-JPKI-Account' => 'someone-else' });
    like($r->{content} // '', qr/^account=\[debian-user\] spoof=\[\]/,
         "$label: the application gets the account, not the spoofed header");
    like(slurp($log), qr/jpki audit: \{"ts":\d+,"event":"login","result":"ok"/,
         "$label: audit line in the error log");
    JPKITest::stop_pid($pid, $kind eq 'nginx' ? 'QUIT' : 'TERM', 10);
    $echo->stop;
    my @bad = grep { /\[(alert|crit|emerg)\]|:(alert|crit|emerg)\]|exit signal|signal \d+/ }
              split /\n/, slurp($log);
    ok(!@bad, "$label: error log clean") or diag(join "\n", @bad);
}


run_sites('make-install', $root, $ex);

# ---- the Debian packages
SKIP: {
    skip 'Debian packages: not root', 1 if $> != 0;
    skip 'Debian packages: JPKI_TEST_DEB=0', 1 if ($ENV{JPKI_TEST_DEB} // '') eq '0';
    skip 'Debian packages: no dpkg-buildpackage', 1 unless -x '/usr/bin/dpkg-buildpackage';
    skip 'Debian packages: not a git checkout', 1 unless -d "$top/.git" || -f "$top/.git";
    my $deb = "$dir/deb";
    mkdir $deb;
    # a copy of the tree (what git tracks, and new files not ignored): the
    # packages' clean step empties build/
    $out = `cd $top && mkdir -p $deb/src && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t $deb/src 2>&1`;
    is($? >> 8, 0, 'a copy of the tree') or diag($out);
    $out = `cd $deb/src && dpkg-buildpackage -us -uc -b 2>&1`;
    is($? >> 8, 0, 'dpkg-buildpackage -us -uc -b') or diag(substr($out, -3000));
    my %debs = map { $_ => "$deb/${_}_0.1.0_" . `dpkg --print-architecture` =~ s/\s+//r . '.deb' }
               qw(libnginx-mod-http-jpki libapache2-mod-auth-jpki jpki-tools);
    ok(-f $debs{$_}, "package $_") for sort keys %debs;
    like(`dpkg-deb -f $debs{'libnginx-mod-http-jpki'} Depends`, qr/\bnginx-abi-[\d.]+-\d+\b/,
         'the nginx module depends on the nginx ABI it was built for');
    like(`dpkg-deb -f $debs{'libapache2-mod-auth-jpki'} Depends`, qr/\bapache2-api-\d+\b/,
         'the Apache module depends on the Apache API');
    # no service started by the packages' scripts (as .ci/deps does)
    my $policy = '/usr/sbin/policy-rc.d';
    my $had_policy = -e $policy;
    spew($policy, "#!/bin/sh\nexit 101\n", 0755) unless $had_policy;
    $out = `dpkg -i @debs{qw(jpki-tools libapache2-mod-auth-jpki libnginx-mod-http-jpki)} 2>&1`;
    is($? >> 8, 0, 'dpkg -i the three packages') or diag($out);
    is(readlink('/etc/nginx/modules-enabled/50-mod-http-jpki.conf'),
       '/usr/share/nginx/modules-available/mod-http-jpki.conf', 'nginx: the module is enabled');
    is(slurp('/usr/share/nginx/modules-available/mod-http-jpki.conf'),
       "load_module modules/ngx_http_jpki_module.so;\n", 'nginx: its load file');
    ok(-l '/etc/apache2/mods-enabled/auth_jpki.load', 'Apache: a2enmod auth_jpki was run');
    ok(scalar(getpwnam('jpki')), 'the jpki user of the CRL sync');
    ok(-f "/lib/systemd/system/jpki-crl-sync.$_", "the CRL sync's $_ unit") for qw(service timer);
    $out = `nginx -t 2>&1`;
    is($? >> 8, 0, "Debian's nginx.conf with the module: nginx -t") or diag($out);
    $out = `apache2ctl -t 2>&1`;
    is($? >> 8, 0, "Debian's apache2.conf with the module: apache2ctl -t") or diag($out);
    run_sites('dpkg', '', '/usr/share/doc/jpki-tools/examples');
    $out = `dpkg --purge jpki-tools libapache2-mod-auth-jpki libnginx-mod-http-jpki 2>&1`;
    is($? >> 8, 0, 'dpkg --purge') or diag($out);
    ok(!-e '/etc/nginx/modules-enabled/50-mod-http-jpki.conf'
       && !-e '/etc/apache2/mods-enabled/auth_jpki.load', 'purged: the modules are no longer enabled');
    unlink $policy unless $had_policy;
}

$ocsp->stop;
done_testing();
