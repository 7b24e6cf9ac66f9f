package JPKIServer;
# t/lib/JPKIServer.pm - one server interface for the tests: a site is
# described once, and nginx (JPKITest::Nginx) or Apache (JPKIApache::Server)
# serves it behind the same calls.  The server-specific spelling of every
# directive is here and nowhere else: a change of the directive grammar is
# one edit in %DIRECTIVE, %ROLE or store_arg().
#
#   for my $kind (JPKIServer::kinds()) {          # 'nginx', 'apache'
#       my $srv = JPKIServer->start($kind, name => 'x',
#           secret => $file, issuer => 'card ca=@PKI@/ca2.pem ocsp=...',
#           store => 'shm zone=jpki size=1m',      # or 'redis=HOST:PORT ...'
#           map => $file, revocation => 'crl', redis_timeout => '2s',
#           locations => [
#               '/jpki/'  => { endpoints => 1, throttle => 'off' },
#               '/app/'   => { gate => 1, upstream => 1, recheck_interval => 0 },
#               '/health' => { health => 1 },
#               '/login.html' => { text => "login page\n" },
#           ],
#           nginx => 'http-level text', nginx_server => 'server-level text',
#           apache => 'server-level text',
#           workers => 2, mpm => 'event', modules => ['include'],   # Apache
#       );
#       $srv->login('user1'); $srv->get('/app/x', cookie => $c); ...
#   }
#
# A site description
#   secret, issuer (a string or a list of them), store, map: the site;
#   any other key of %DIRECTIVE: that directive at the site's level (a
#     list: the directive once for each); a key of %ROLE: that role there;
#   locations => [ PATH => { ... } ]: in that order; a location has roles
#     (endpoints, gate, health: see %ROLE), upstream => 1 (proxied to the
#     echo upstream of the harnesses; or => 'http://HOST:PORT', proxied
#     there, the request's path kept), text => TEXT (a static answer: its
#     exact path), any key of %DIRECTIVE, and nginx => TEXT / apache =>
#     TEXT (more directives of that server only);
#   nginx, nginx_server, apache: text for one server only (nginx: in http{}
#     after the site, in server{} after the locations; Apache: after the
#     site); nginx_listen: parameters of nginx's listen (http2);
#   harness options: name, workers (nginx workers, Apache children), and
#     Apache's mpm, modules, loglevel, docs.
#   Text may use @PKI@, @UP@ (the echo upstream), @PORT@, @DIR@.
#
# A server (JPKIServer object; with start_sites, one site of an instance)
#   kind, name, port, base, url(PATH), pid, workers (pids), conf
#   login(CERT, prefix => P, key => K, challenge => C)  (JPKITest::login_to)
#   get(PATH, cookie => C, cookie_name => N, headers => {}, method => M,
#       content => BODY, timeout => S)
#   logout(COOKIE, prefix => P)       POST <P>/jpki/logout
#   parallel_logins(N, M, path => P, cert => C, account => A)
#   health(PATH)                      GET PATH (default /health)
#   mark, log_since(MARK), audits(MARK), log_problems(MARK),
#   upstream_hits(MARK, WANT)         (MARK from mark, opaque)
#   reload(signal => S)               nginx -s reload (HUP) or Apache's
#                                     graceful restart (USR1); HUP: Apache's
#                                     plain restart.  True once the old
#                                     workers are gone and new ones run.
#   stop(%o)                          stop and check the logs (a test)
#   srv                               the harness's instance (low level)
use strict;
use warnings;
use Time::HiRes qw(time sleep);
use POSIX ();
use Test::More ();
use JPKITest;
use JPKIApache;

our @KINDS = qw(nginx apache);

# ---------------------------------------------------------------- grammar

# A directive of a site or a location: name in a description => [nginx,
# Apache].  Values are written as given; flags (1, 0, on, off) in each
# server's case.  The core's simple directives are read from the list both
# modules' tables are made from (common/directives.h): the key is the nginx
# name without "jpki_".
our %DIRECTIVE = (
    secret                => [qw(jpki_secret_file JPKISecretFile)],
    issuer                => [qw(jpki_issuer JPKIIssuer)],
    store                 => [qw(jpki_store JPKIStore)],
    map                   => [qw(jpki_map_file JPKIMapFile)],
    throttle              => [qw(jpki_throttle JPKIThrottle)],
    crl_zone              => [qw(jpki_crl_zone JPKICRLZone)],
    allow_accounts        => [qw(jpki_allow_accounts JPKIAllowAccounts)],
    allow_issuers         => [qw(jpki_allow_issuers JPKIAllowIssuers)],
    audit_log             => [qw(jpki_audit_log JPKIAuditLog)],
    core_directives(),
);

sub core_directives {
    my $h = JPKITest::slurp("$JPKITest::REPO/common/directives.h");
    my %d;
    while ($h =~ /X\(JPKI_D_\w+,[\s\\]*"jpki_(\w+)",[\s\\]*"(JPKI\w+)"/g) {
        $d{$1} = [ "jpki_$1", $2 ];
    }
    die 'no directives read from common/directives.h' unless keys %d >= 25;
    return %d;
}
# on/off directives: 1 and 0 are written on and off too
my %FLAG = map { $_ => 1 } qw(require_account ocsp_nonce cookie_secure pass_cookie);
# the order of the site's own directives (the others follow, sorted)
my @SITE_FIRST = qw(secret issuer store map);

# What a location is: nginx's directive, Apache's lines.
our %ROLE = (
    endpoints => ['jpki_endpoints;', 'JPKIEndpoints On'],
    health    => ['jpki_health;', 'JPKIHealth On'],
    gate      => ['jpki on;', "AuthType JPKI\nRequire valid-user"],
);

# The store in each server's words: "shm [zone=NAME] [size=SIZE]" (size 1m
# unless given) or a Redis store.  (Both servers now take the same words;
# before, nginx wrote "shm zone=NAME:SIZE" and Apache "shm size= zone=".)
sub store_arg {
    my ($kind, $spec) = @_;
    return $spec unless $spec =~ /^shm\b/;
    my %a = $spec =~ /\b(zone|size)=(\S+)/g;
    return 'shm' . ($a{zone} ? " zone=$a{zone}" : '') . ' size=' . ($a{size} // '1m');
}

# One directive KEY VALUE of a description, as KIND writes it.
sub directive {
    my ($kind, $key, $value) = @_;
    my $d = $DIRECTIVE{$key} or die "JPKIServer: unknown directive \"$key\"";
    $value = store_arg($kind, $value) if $key eq 'store';
    if ($FLAG{$key}) {
        $value = $value ? 'on' : 'off' if $value =~ /^[01]$/;
        $value = $kind eq 'nginx' ? lc $value : ucfirst lc $value if $value =~ /^(on|off)$/i;
    }
    return $kind eq 'nginx' ? "$d->[0] $value;" : "$d->[1] $value";
}

sub is_nginx { $_[0] eq 'nginx' }

# The name KIND gives directive KEY of %DIRECTIVE or %ROLE (for the tests
# that look for it in a message).
sub directive_name {
    my ($kind, $key) = @_;
    my $i = is_nginx($kind) ? 0 : 1;
    return $DIRECTIVE{$key} ? $DIRECTIVE{$key}[$i] : ($ROLE{$key}[$i] =~ /^(\w+)/)[0];
}

# The directives for the keys of %DIRECTIVE in H (a site or a location).
sub directives {
    my ($kind, $h, @first) = @_;
    my %seen;
    my @d;
    for my $k (@first, sort keys %$h) {
        next if $seen{$k}++ || !$DIRECTIVE{$k} || !defined $h->{$k};
        push @d, map { directive($kind, $k, $_) } ref $h->{$k} ? @{ $h->{$k} } : ($h->{$k});
    }
    return @d;
}

# The locations of a description as KIND's configuration.
sub locations_conf {
    my ($kind, @locs) = @_;
    my $c = '';
    my $docs = 0;
    while (@locs) {
        my ($path, $l) = splice @locs, 0, 2;
        if (defined $l->{text}) {
            $docs = 1;
            next unless is_nginx($kind);
            (my $t = $l->{text}) =~ s/\n/\\n/g;
            $c .= "        location = $path { return 200 \"$t\"; }\n";
            next;
        }
        my @d = map { $ROLE{$_}[ is_nginx($kind) ? 0 : 1 ] } grep { $l->{$_} } sort keys %ROLE;
        push @d, directives($kind, $l);
        my $up = ($l->{upstream} // '') =~ m{^http://} ? $l->{upstream} : 'http://127.0.0.1:@UP@';
        push @d, is_nginx($kind) ? "proxy_pass $up;" : "ProxyPass $up$path" if $l->{upstream};
        push @d, $l->{$kind} if defined $l->{$kind};
        my $body = join '', map { "            $_\n" } map { split /\n/ } @d;
        $c .= is_nginx($kind)
            ? sprintf("        location %s%s {\n%s        }\n", $l->{exact} ? '= ' : '', $path, $body)
            : "    <Location $path>\n$body    </Location>\n";
    }
    $c .= "    DocumentRoot \"\@DOCS\@\"\n" if $docs && !is_nginx($kind);
    return $c;
}

# The files of the text locations (path => text), for Apache's docs.
sub docs_of {
    my (@locs) = @_;
    my %d;
    while (@locs) {
        my ($path, $l) = splice @locs, 0, 2;
        $d{$path} = $l->{text} if defined $l->{text};
    }
    return \%d;
}

# The configuration of a site: nginx's http{} body (site, then one server),
# Apache's server (or virtual host) body.
sub conf {
    my ($kind, %site) = @_;
    my $site = join '', map { "    $_\n" } directives($kind, \%site, @SITE_FIRST),
        map { $ROLE{$_}[ is_nginx($kind) ? 0 : 1 ] } grep { $site{$_} } sort keys %ROLE;
    my $locs = locations_conf($kind, @{ $site{locations} // [] });
    return is_nginx($kind)
        ? $site . ($site{nginx} // '') . "\n    server {\n        listen 127.0.0.1:\@PORT\@"
          . ($site{nginx_listen} ? " $site{nginx_listen}" : '') . ";\n"
          . $locs . ($site{nginx_server} // '') . "\n    }\n"
        : $site . ($site{apache} // '') . "\n$locs";
}

# ---------------------------------------------------------------- servers

# The servers this machine has (module built, binary there), in the order
# of @KINDS; JPKI_SERVERS="nginx" (or "apache") runs one of them only.
sub kinds {
    my @k;
    for my $kind (@KINDS) {
        next if $ENV{JPKI_SERVERS} && $ENV{JPKI_SERVERS} !~ /\b$kind\b/;
        my $why = is_nginx($kind)
            ? (!-x $JPKITest::NGINX ? "$JPKITest::NGINX not found"
               : !-f $JPKITest::MODULE ? "$JPKITest::MODULE not built" : '')
            : (!-x $JPKIApache::APACHE ? "$JPKIApache::APACHE not found"
               : !-f "$JPKIApache::MODDIR/mod_mpm_event.so" ? 'no mod_mpm_event'
               : !-f $JPKIApache::APMODULE ? "$JPKIApache::APMODULE not built" : '');
        if ($why) { Test::More::diag("$kind: skipped ($why)"); next }
        push @k, $kind;
    }
    Test::More::plan(skip_all => 'neither nginx nor Apache with the module') unless @k;
    return @k;
}

# The harness's options for KIND from a description.
sub harness_opts {
    my ($kind, $name, %site) = @_;
    my %o = (name => $name =~ /^\Q$kind\E/ ? $name : "$kind-$name");
    if (is_nginx($kind)) {
        $o{workers} = $site{workers} if $site{workers};
    } else {
        $o{children} = $site{workers} if $site{workers};
        $o{$_} = $site{$_} for grep { defined $site{$_} } qw(mpm modules loglevel);
        $o{docs} = { %{ docs_of(@{ $site{locations} // [] }) }, %{ $site{docs} // {} } };
    }
    return %o;
}

# JPKIServer->start(KIND, %site): a server of that kind for the site.
sub start {
    my ($class, $kind, %site) = @_;
    my %o = harness_opts($kind, $site{name} // 'srv', %site);
    my $conf = conf($kind, %site);
    my $srv = is_nginx($kind) ? JPKITest::Nginx->start(%o, http => $conf)
                              : JPKIApache::Server->start(%o, main => $conf);
    return bless { kind => $kind, srv => $srv, name => $o{name} }, $class;
}

# JPKIServer->start_sites(KIND, name => N, sites => [SITE => {...}, ...])
# -> { SITE => server }: the sites as Apache's virtual hosts of one
# instance, or one nginx each.  Harness options apply to every site.
sub start_sites {
    my ($class, $kind, %o) = @_;
    my @sites = @{ delete $o{sites} };
    my %out;
    if (is_nginx($kind)) {
        while (@sites) {
            my ($n, $s) = splice @sites, 0, 2;
            $out{$n} = $class->start($kind, %o, %$s, name => "$o{name}-$n");
        }
        return \%out;
    }
    my (@vh, %docs);
    while (@sites) {
        my ($n, $s) = splice @sites, 0, 2;
        push @vh, $n => conf($kind, %$s);
        %docs = (%docs, %{ docs_of(@{ $s->{locations} // [] }) });
    }
    my $ap = JPKIApache::Server->start(harness_opts($kind, $o{name}, %o), docs => \%docs,
                                       vhosts => \@vh);
    for (my $i = 0; $i < @vh; $i += 2) {
        $out{ $vh[$i] } = bless { kind => $kind, srv => $ap, vh => $vh[$i],
                                  name => "$kind-$o{name}-$vh[$i]" }, $class;
    }
    return \%out;
}

# JPKIServer->configtest(KIND, %site) -> (exit status, output) of `nginx
# -t` or `apache2 -t`.
sub configtest {
    my ($class, $kind, %site) = @_;
    my %o = harness_opts($kind, $site{name} // 'conftest', %site);
    my $conf = conf($kind, %site);
    return is_nginx($kind) ? JPKITest::Nginx->test_config(%o, http => $conf)
                           : JPKIApache::Server->configtest(%o, main => $conf);
}

# ---------------------------------------------------------------- methods

sub kind { $_[0]{kind} }
sub name { $_[0]{name} }
sub srv  { $_[0]{srv} }
sub conf_text { $_[0]{srv}{conf} }
sub nginx { is_nginx($_[0]{kind}) }
sub port { my ($s) = @_; return $s->nginx ? $s->{srv}->port : $s->{srv}->port($s->{vh}) }
sub base { my ($s) = @_; return 'http://127.0.0.1:' . $s->port }
sub url  { my ($s, $p) = @_; return $s->base . $p }
sub pid  { $_[0]{srv}{pid} }
sub workers {
    my ($s) = @_;
    return $s->nginx ? $s->{srv}->worker_pids : $s->{srv}->children;
}

sub login { my ($s, $cert, %o) = @_; return login_to($s, $cert // 'user1', %o) }

sub get {
    my ($s, $path, %o) = @_;
    my %h = %{ $o{headers} // {} };
    $h{Cookie} = ($o{cookie_name} // 'jpki_session') . "=$o{cookie}" if defined $o{cookie};
    return http($o{method} // 'GET', $s->url($path), headers => \%h,
                map { exists $o{$_} ? ($_ => $o{$_}) : () } qw(content timeout));
}

# N clients at once, M rounds each of a login of CERT (default user1) and
# a gated request to PATH<k>-<i> (default /app/p) that reaches the upstream
# with ACCOUNT (default alice): the rounds that went right.
sub parallel_logins {
    my ($s, $n, $m, %o) = @_;
    my @pids;
    for my $k (1 .. $n) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $good = 0;
            for my $i (1 .. $m) {
                my $r = $s->login($o{cert} // 'user1');
                my $c = cookie_of($r);
                next unless $r->{status} == 200 && $c;
                $r = $s->get(($o{path} // '/app/p') . "$k-$i", cookie => $c, timeout => 10);
                my $acct = $o{account} // 'alice';
                $good++ if $r->{status} == 200 && $r->{content} =~ /account=\[\Q$acct\E\]/;
            }
            POSIX::_exit($good);
        }
        push @pids, $pid;
    }
    my $total = 0;
    for (@pids) { waitpid($_, 0); $total += $? >> 8 }
    return $total;
}

sub logout {
    my ($s, $cookie, %o) = @_;
    return $s->get(($o{prefix} // '') . '/jpki/logout', cookie => $cookie, method => 'POST');
}

sub health { my ($s, $path) = @_; return http('GET', $s->url($path // '/health')) }

sub mark {
    my ($s) = @_;
    return $s->nginx ? { log => $s->{srv}->mark, up => $s->{srv}->upstream_mark }
                     : $s->{srv}->mark($s->{vh});
}

# (a MARK of the harness itself, a number, is taken as nginx's log offset)
sub log_since {
    my ($s, $m) = @_;
    return $s->nginx ? $s->{srv}->log_since(ref $m ? $m->{log} : $m)
                     : $s->{srv}->log_since($s->{vh}, $m);
}

sub audits {
    my ($s, $m) = @_;
    return $s->nginx ? $s->{srv}->audits(ref $m ? $m->{log} : $m)
                     : $s->{srv}->audits($s->{vh}, $m);
}

sub log_problems {
    my ($s, $m) = @_;
    return $s->nginx ? $s->{srv}->log_problems(ref $m ? $m->{log} : $m)
                     : $s->{srv}->log_problems($s->{vh}, $m);
}

sub upstream_hits {
    my ($s, $m, $want) = @_;
    return $s->nginx ? $s->{srv}->upstream_hits(ref $m ? $m->{up} : 0, $want)
                     : $s->{srv}->upstream_hits($s->{vh}, $m);
}

sub pid_alive {
    my ($p) = @_;
    return -e "/proc/$p" && JPKITest::slurp("/proc/$p/stat") !~ /^\d+ \(.*\) Z/s;
}

sub reload {
    my ($s, %o) = @_;
    my @old = $s->workers;
    kill $o{signal} // ($s->nginx ? 'HUP' : 'USR1'), $s->pid;
    my $end = time + 10;
    while (time < $end) {
        my %old = map { $_ => 1 } @old;
        my @new = grep { !$old{$_} } $s->workers;
        return 1 if @new && !grep { pid_alive($_) } @old;
        sleep 0.05;
    }
    return 0;
}

sub stop { my ($s, %o) = @_; $s->{srv}->stop(%o) }

sub DESTROY { }

# ---------------------------------------------------------------- scenarios

# The env hash JPKIScenarios::run() wants over SERVERS (site => server).
sub scenario_env {
    my ($label, $servers, %o) = @_;
    my $at = sub { $servers->{ $_[0] } };
    return {
        label         => $label,
        shared_store  => $o{shared_store},
        base          => sub { my $s = $at->($_[0]); $s ? $s->base : undef },
        cert_id       => $o{cert_id},
        mark          => sub { $at->($_[0])->mark },
        audits        => sub { $at->($_[0])->audits($_[1]) },
        log_since     => sub { $at->($_[0])->log_since($_[1]) },
        log_problems  => sub { $at->($_[0])->log_problems($_[1]) },
        upstream_hits => sub { $at->($_[0])->upstream_hits($_[1], $_[2]) },
        unmap         => $o{unmap},
        store_keys    => $o{store_keys},
    };
}

1;
