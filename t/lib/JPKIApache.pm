package JPKIApache;
# t/lib/JPKIApache.pm - Apache httpd for the tests: Debian's apache2 binary
# with build/mod_auth_jpki.so and a minimal configuration of our own in a
# temp directory (mpm_event with two children by default; worker and
# prefork on request), one or several virtual hosts on free loopback ports,
# each with its own error log and its own echo upstream (a small Perl
# server) behind mod_proxy.  The client side of the protocol, Redis and the
# OCSP responders come from JPKITest.pm.  Core Perl only.
#
# Env: JPKI_APACHE (default /usr/sbin/apache2), JPKI_APACHE_MODULES
#      (default /usr/lib/apache2/modules), and JPKITest's.
use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET;
use IO::Select;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use Test::More ();
use JPKITest;

our @EXPORT = qw($APACHE $APMODULE skip_unless_apache ap_gate_conf);

our $APACHE   = $ENV{JPKI_APACHE} // '/usr/sbin/apache2';
our $MODDIR   = $ENV{JPKI_APACHE_MODULES} // '/usr/lib/apache2/modules';
our $APMODULE = $ENV{JPKI_APACHE_MODULE} // "$JPKITest::BUILD/mod_auth_jpki.so";

# skip_unless_apache(): skip_all when apache2, its modules or our module
# are missing.
sub skip_unless_apache {
    my @why;
    push @why, "$APACHE not found" unless -x $APACHE;
    push @why, "$MODDIR/mod_mpm_event.so not found"
        unless -f "$MODDIR/mod_mpm_event.so";
    push @why, "$APMODULE not built (make build/mod_auth_jpki.so)"
        unless -f $APMODULE;
    Test::More::plan(skip_all => join('; ', @why)) if @why;
}

# The module as Apache loads it: a private copy (a rebuild while the tests
# run cannot pull the code from under the children).
my $MODULE_COPY;
sub module_copy {
    return $MODULE_COPY if $MODULE_COPY;
    my $f = JPKITest::tmpdir() . '/mod_auth_jpki.so';
    JPKITest::spew($f, JPKITest::slurp($APMODULE), 0755);
    return $MODULE_COPY = $f;
}

# ---------------------------------------------------------------- the usual gate

# The usual gate of a test: the endpoints at /jpki/ and /app/ gated and
# proxied to the echo upstream (recheck => N: JPKIRecheckInterval there;
# throttle => T: JPKIThrottle T at /jpki/).
sub ap_gate_conf {
    my (%o) = @_;
    my $re = defined $o{recheck} ? "    JPKIRecheckInterval $o{recheck}\n" : '';
    my $thr = defined $o{throttle} ? "    JPKIThrottle $o{throttle}\n" : '';
    return "<Location /jpki/>\n    JPKIEndpoints On\n$thr</Location>\n"
         . "<Location /app/>\n    AuthType JPKI\n    Require valid-user\n$re"
         . "    ProxyPass http://127.0.0.1:\@UP\@/app/\n</Location>\n";
}

# ================================================================ Apache

package JPKIApache::Server;
use strict;
use warnings;
use Time::HiRes qw(time sleep);

# JPKIApache::Server->start(
#     name    => N,
#     mpm     => 'event' | 'worker' | 'prefork',
#     children => 2,              # child processes (event, worker: 16 threads)
#     global  => TEXT,            # server-level directives (main server)
#     vhosts  => [ NAME => TEXT, ... ],  # virtual hosts, each on its port
#     main    => TEXT,            # without vhosts: the main server's body
#     modules => [ extra module names (mod_X) ],
#     docs    => { '/path' => TEXT },   # files of every vhost's @DOCS@
# )
# TEXT may use @PORT@ (the vhost's port), @UP@ (its echo upstream),
# @DIR@ (this instance's directory), @PKI@ (the test PKI) and @DOCS@ (a
# document root of the vhost).  Without vhosts the main server listens on
# one port and is called "main".  The echo upstream answers every request:
#   200 "account=[<X-JPKI-Account>] spoof=[<X-JPKI-Cert-Id>]
#        other=[<X-JPKI-Other>] user=[<X-Remote-User>] uri=<uri>\n"
sub start {
    my ($class, %o) = @_;
    my $self = $class->prepare(%o);
    $self->{echo}->start;
    my $dir = $self->{dir};
    $self->{pid} = JPKITest::spawn("apache $self->{name}", "$dir/stderr.log",
                                   $JPKIApache::APACHE, '-d', $dir,
                                   '-f', "$dir/httpd.conf", '-DFOREGROUND');
    my $ok = 1;
    for my $vh (@{ $self->{order} }) {
        $ok &&= JPKITest::wait_port($self->{ports}{$vh}, 10, $self->{pid});
    }
    # the port answers as soon as the parent listens: wait for the
    # children too (StartServers), so that tests counting them see them
    my $want = $o{children} // 2;
    my $end = time + 10;
    while ($ok && time < $end && $self->children < $want) {
        select undef, undef, undef, 0.05;
    }
    unless ($ok) {
        my $err = JPKITest::slurp("$dir/stderr.log") . JPKITest::slurp("$dir/error.log");
        JPKITest::stop_pid($self->{pid}, 'TERM', 3);
        die "apache $self->{name} did not start:\n$err";
    }
    return $self;
}

# JPKIApache::Server->configtest(same options) -> (exit status, output of
# `apache2 -t`).
sub configtest {
    my ($class, %o) = @_;
    my $self = $class->prepare(%o);
    my $dir = $self->{dir};
    my $pid = JPKITest::spawn("apache -t $self->{name}", "$dir/test.log",
                              $JPKIApache::APACHE, '-t', '-d', $dir,
                              '-f', "$dir/httpd.conf");
    waitpid $pid, 0;
    my $st = $? >> 8;
    delete $JPKITest::KIDS{$pid};
    return ($st, JPKITest::slurp("$dir/test.log"));
}

sub prepare {
    my ($class, %o) = @_;
    my $name = $o{name} // 'apache';
    my $dir = JPKITest::tmpdir() . "/$name";
    mkdir $dir;
    mkdir "$dir/run";
    chmod 0755, $dir, "$dir/run";
    my @vh = @{ $o{vhosts} // [ main => $o{main} // '' ] };
    my (%text, @order);
    while (@vh) {
        my ($n, $t) = splice @vh, 0, 2;
        push @order, $n;
        $text{$n} = $t;
    }
    my $self = bless { name => $name, dir => $dir, order => \@order,
                       vhosts => !!$o{vhosts}, ports => {}, up => {},
                       mpm => $o{mpm} // 'event' }, $class;
    $self->{ports}{$_} = JPKITest::free_port() for @order;
    $self->{echo} = JPKIApache::Echo->new($dir, @order);
    $self->{up} = $self->{echo}{ports};

    my $md = $JPKIApache::MODDIR;
    my @mods = (qw(authn_core authz_core authz_user authz_host proxy proxy_http
                   headers env setenvif), @{ $o{modules} // [] });
    my $load = "LoadModule mpm_$self->{mpm}_module $md/mod_mpm_$self->{mpm}.so\n";
    $load .= "LoadModule ${_}_module $md/mod_$_.so\n" for @mods;
    $load .= "LoadModule auth_jpki_module " . JPKIApache::module_copy() . "\n";
    my $user = $> == 0 ? "User nobody\nGroup nogroup\n" : '';
    my $n = $o{children} // 2;
    my $mpm = $self->{mpm} eq 'prefork'
        ? "StartServers $n\nMinSpareServers $n\nMaxSpareServers @{[ $n * 2 ]}\n"
          . "ServerLimit @{[ $n * 4 ]}\nMaxRequestWorkers @{[ $n * 4 ]}\n"
        : "StartServers $n\nServerLimit $n\nThreadsPerChild 16\nThreadLimit 16\n"
          . "MinSpareThreads 8\nMaxSpareThreads @{[ $n * 16 ]}\nMaxRequestWorkers @{[ $n * 16 ]}\n";
    my $listen = join '', map { "Listen 127.0.0.1:$self->{ports}{$_}\n" } @order;
    my $conf = <<"EOF";
# written by t/lib/JPKIApache.pm
ServerRoot "$dir"
DefaultRuntimeDir "$dir/run"
PidFile "$dir/run/httpd.pid"
ServerName 127.0.0.1
ErrorLog "$dir/error.log"
LogLevel @{[ $o{loglevel} // 'notice' ]}
LogFormat "%h \\"%r\\" %>s %b" common
CustomLog "$dir/access.log" common
$load$user$mpm
Timeout 20
GracefulShutdownTimeout 4
KeepAlive On
MaxKeepAliveRequests 1000
KeepAliveTimeout 5
@{[ $ENV{JPKI_TEST_COREDIR} ? "CoreDumpDirectory $ENV{JPKI_TEST_COREDIR}\n" : '' ]}$listen
@{[ $o{global} // '' ]}
EOF
    for my $vh (@order) {
        my $t = $text{$vh} // '';
        my $docs = "$dir/docs-$vh";
        mkdir $docs;
        chmod 0755, $docs;
        for my $p (keys %{ $o{docs} // {} }) {
            (my $f = $p) =~ s{^/+}{};
            JPKITest::spew("$docs/$f", $o{docs}{$p}, 0644);
        }
        $t =~ s/\@DOCS\@/$docs/g;
        $t =~ s/\@PORT\@/$self->{ports}{$vh}/g;
        $t =~ s/\@UP\@/$self->{up}{$vh}/g;
        if ($self->{vhosts}) {
            $conf .= "<VirtualHost 127.0.0.1:$self->{ports}{$vh}>\n"
                   . "    ServerName $vh.test\n"
                   . "    ErrorLog \"$dir/error-$vh.log\"\n"
                   . "$t\n</VirtualHost>\n";
        } else {
            $conf .= "$t\n";
        }
    }
    $conf =~ s/\@DIR\@/$dir/g;
    $conf =~ s/\@PKI\@/JPKITest::server_pki()/ge;
    JPKITest::spew("$dir/httpd.conf", $conf);
    $self->{conf} = $conf;
    return $self;
}

sub vh   { my ($s, $vh) = @_; return $vh // $s->{order}[0] }
sub port { my ($s, $vh) = @_; return $s->{ports}{ $s->vh($vh) } }
sub base { my ($s, $vh) = @_; return "http://127.0.0.1:" . $s->port($vh) }
sub url  { my ($s, $p, $vh) = @_; return $s->base($vh) . $p }
sub pid  { $_[0]{pid} }
sub conf { $_[0]{conf} }

# The error log of a virtual host (the main log without vhosts).
sub log_file {
    my ($s, $vh) = @_;
    return $s->{vhosts} ? "$s->{dir}/error-" . $s->vh($vh) . ".log"
                        : "$s->{dir}/error.log";
}

# A position in the logs of VH (opaque; for log_since, audits...).
sub mark {
    my ($s, $vh) = @_;
    return { log => -s $s->log_file($vh) // 0,
             main => -s "$s->{dir}/error.log" // 0,
             up => $s->{echo}->mark($s->vh($vh)) };
}

sub log_since {
    my ($s, $vh, $mark) = @_;
    my $t = substr(JPKITest::slurp($s->log_file($vh)), ref $mark ? $mark->{log} : 0);
    if ($s->{vhosts}) {
        $t .= substr(JPKITest::slurp("$s->{dir}/error.log"), ref $mark ? $mark->{main} : 0);
    }
    return $t;
}

sub audits {
    my ($s, $vh, $mark) = @_;
    return JPKITest::audit_records(substr(JPKITest::slurp($s->log_file($vh)),
                                          ref $mark ? $mark->{log} : 0));
}

sub upstream_hits {
    my ($s, $vh, $mark) = @_;
    return $s->{echo}->hits($s->vh($vh), ref $mark ? $mark->{up} : 0);
}

# Crashes, alerts, sanitizer reports and errors nobody expects.  (Errors
# the tests provoke on purpose are logged at error level too: unexpected
# means a crash, an alert or worse.)
sub problem_line {
    local $_ = shift;
    return /:(alert|crit|emerg)\]/ || /exit signal/
           || /AddressSanitizer|runtime error:|LeakSanitizer/
           || /Segmentation fault|core dumped/i
           || /\bAH00052\b|\bAH00051\b/
           || /^\s*#\d+ 0x[0-9a-f]+ in /;      # a sanitizer's stack frames
}

sub log_problems {
    my ($s, $vh, $mark) = @_;
    return grep { problem_line($_) } split /\n/, $s->log_since($vh, $mark);
}

# All logs of the instance (main and vhosts) from the start.
sub all_problems {
    my ($s) = @_;
    my @bad;
    for my $f ("$s->{dir}/error.log", "$s->{dir}/stderr.log",
               map { "$s->{dir}/error-$_.log" } @{ $s->{order} }) {
        next unless -f $f;
        push @bad, grep { problem_line($_) } split /\n/, JPKITest::slurp($f);
    }
    return @bad;
}

sub children {
    my ($s) = @_;
    return JPKITest::child_pids($s->{pid});
}

# After a restart signal: true once every child is new (none of OLD, the
# children before the signal, is left), false after 10 s.
sub new_children {
    my ($s, @old) = @_;
    my %old = map { $_ => 1 } @old;
    my $end = time + 10;
    while (time < $end) {
        my @c = $s->children;
        return 1 if @c && !grep { $old{$_} } @c;
        select undef, undef, undef, 0.1;
    }
    return 0;
}

# Stops Apache and the echo upstream, and checks the logs as a test
# assertion.  The stop is graceful (SIGWINCH, as Debian's apache2.service
# stops it: apachectl graceful-stop, bounded by GracefulShutdownTimeout);
# once the children are gone, SIGTERM spares the parent the rest of its
# one-second wait.  An ungraceful stop (SIGTERM first) races in mpm_event
# itself: its main thread closes the sockets of busy workers
# (close_worker_sockets) while a worker that has just answered frees its
# connection, and the child dies in apr_os_sock_get (seen under ASan on a
# loaded machine, our module in no frame).
sub stop {
    my ($s, %o) = @_;
    return if $s->{stopped}++;
    unless ($o{signal}) {
        kill 'WINCH', $s->{pid};
        my $end = time + 8;
        select undef, undef, undef, 0.02
            while time < $end
                  && grep { JPKITest::slurp("/proc/$_/stat") =~ /^\d+ \(.*\) [^Z] /s } $s->children;
    }
    my $st = JPKITest::stop_pid($s->{pid}, $o{signal} // 'TERM', 10);
    $s->{echo}->stop;
    JPKITest::stopped_ok("apache $s->{name}", 'logs', 'exited cleanly',
                         $st, [ $s->all_problems ], %o);
}

sub DESTROY { }

# ================================================================ echo

package JPKIApache::Echo;
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Fcntl qw(O_WRONLY O_APPEND O_CREAT);

# One process listening on one port per NAME; every request is answered
# with the echo line and logged in upstream-NAME.log (written before the
# answer, so a client that has its answer finds the line).
sub new {
    my ($class, $dir, @names) = @_;
    my $self = bless { dir => $dir, ports => {}, socks => {} }, $class;
    for my $n (@names) {
        my $s = IO::Socket::INET->new(Listen => 128, LocalAddr => '127.0.0.1',
                                      LocalPort => 0, Proto => 'tcp',
                                      ReuseAddr => 1) or die "echo: $!";
        $self->{socks}{$n} = $s;
        $self->{ports}{$n} = $s->sockport;
        JPKITest::spew("$dir/upstream-$n.log", '', 0644);
    }
    return $self;
}

sub start {
    my ($self) = @_;
    my $dir = $self->{dir};
    $self->{pid} = JPKITest::fork_code("echo $dir", "$dir/echo.log", sub {
        $SIG{CHLD} = 'IGNORE';
        $SIG{TERM} = sub { POSIX::_exit(0) };
        my %name_of = map { fileno($self->{socks}{$_}) => $_ } keys %{ $self->{socks} };
        my $sel = IO::Select->new(values %{ $self->{socks} });
        for (;;) {
            for my $l ($sel->can_read) {
                my $c = $l->accept or next;
                my $n = $name_of{ fileno $l };
                my $pid = fork;
                if (defined $pid && $pid == 0) {
                    close $_ for values %{ $self->{socks} };
                    serve($c, "$dir/upstream-$n.log");
                    POSIX::_exit(0);
                }
                close $c;
            }
        }
    });
    # the parent keeps no listening socket: the child has them
    close $_ for values %{ $self->{socks} };
}

sub read_n {
    my ($c, $buf, $n) = @_;
    while (length($$buf) < $n) {
        my $got = sysread($c, $$buf, 65536, length $$buf);
        return 0 unless $got;
    }
    return 1;
}

sub serve {
    my ($c, $log) = @_;
    $c->autoflush(1);
    alarm 20;
    my $buf = '';
    for (;;) {
        my $end = index($buf, "\r\n\r\n");
        if ($end >= 0) {
            my $head = substr($buf, 0, $end);
            $buf = substr($buf, $end + 4);
            my ($line, @h) = split /\r\n/, $head;
            my ($method, $uri) = split / /, $line // '';
            my %h;
            for (@h) {
                next unless /^([^:]+):\s*(.*)$/;
                my $k = lc $1;
                $h{$k} = exists $h{$k} ? "$h{$k}, $2" : $2;
            }
            # the body, by Content-Length or chunked
            if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
                for (;;) {
                    my $i;
                    until (($i = index($buf, "\r\n")) >= 0) {
                        return unless sysread($c, $buf, 65536, length $buf);
                    }
                    my $size = hex substr($buf, 0, $i);
                    $buf = substr($buf, $i + 2);
                    return unless read_n($c, \$buf, $size + 2);
                    $buf = substr($buf, $size + 2);
                    if ($size == 0) { last }
                }
            } elsif (my $cl = $h{'content-length'}) {
                return unless read_n($c, \$buf, $cl);
                $buf = substr($buf, $cl);
            }
            my $body = sprintf "account=[%s] spoof=[%s] other=[%s] user=[%s] uri=%s\n",
                map { $_ // '' } @h{qw(x-jpki-account x-jpki-cert-id x-jpki-other x-remote-user)},
                $uri // '';
            if (sysopen my $l, $log, O_WRONLY | O_APPEND | O_CREAT) {
                syswrite $l, ($uri // '') . "\n";
                close $l;
            }
            my $resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
            syswrite $c, $resp;
            close $c;
            return;
        }
        return if length $buf > 65536;
        my $got = sysread($c, $buf, 65536, length $buf);
        return unless $got;
    }
}

sub mark {
    my ($s, $n) = @_;
    return -s "$s->{dir}/upstream-$n.log" // 0;
}

sub hits {
    my ($s, $n, $mark) = @_;
    my $t = substr(JPKITest::slurp("$s->{dir}/upstream-$n.log"), $mark // 0);
    return scalar(() = $t =~ /\n/g);
}

sub stop {
    my ($s) = @_;
    return if $s->{stopped}++ || !$s->{pid};
    JPKITest::stop_pid($s->{pid}, 'TERM', 3);
}

1;
