package JPKIBrowser;
# t/lib/JPKIBrowser.pm - a headless Chromium (Debian's chromium) driven by
# chromedriver over WebDriver's HTTP API, for the tests that look at pages
# as a browser does.
#
#   JPKIBrowser::skip_unless();                 # plan skip_all without them
#   my $br = JPKIBrowser->start(home => DIR);   # one chromedriver (HOME=DIR:
#                                               # its NSS database, ~/.pki)
#   my $s = $br->session(lang => 'ja', prefs => {...}, insecure => 1,
#                        size => [W, H],        # a fresh browser profile
#                        network => 1);         # its requests logged
#   $s->go(URL); $s->js('return ...', ARGS...); $s->url; $s->text;
#   $s->wait_for('return COND', SECONDS);      # the value once true, or undef
#   $s->click('css selector'); $s->png;        # a screenshot (PNG bytes)
#   $s->media('prefers-color-scheme' => 'dark');   # media features emulated
#   $s->requests;                              # the requests sent since the
#                                              # last call (network => 1)
#   $s->quit;
use strict;
use warnings;
use MIME::Base64 ();
use Time::HiRes qw(time sleep);
use JSON::PP ();
use JPKITest ();

our $CHROMIUM = $ENV{JPKI_CHROMIUM} // '/usr/bin/chromium';
our $CHROMEDRIVER = $ENV{JPKI_CHROMEDRIVER} // '/usr/bin/chromedriver';
my $runs = 0;           # profiles made by this process (each browser its own)

sub skip_unless {
    Test::More::plan(skip_all => "no $CHROMIUM (Debian package chromium)") unless -x $CHROMIUM;
    Test::More::plan(skip_all => "no $CHROMEDRIVER (Debian package chromium-driver)")
        unless -x $CHROMEDRIVER;
}

sub start {
    my ($class, %o) = @_;
    my $dir = JPKITest::tmpdir();
    my $port = JPKITest::free_port();
    local $ENV{HOME} = $o{home} if $o{home};
    my $pid = JPKITest::spawn('chromedriver', "$dir/chromedriver-$port.log", $CHROMEDRIVER,
                              "--port=$port", '--allowed-ips=127.0.0.1');
    JPKITest::wait_port($port, 10, $pid) or Test::More::BAIL_OUT('chromedriver did not start');
    return bless { wd => "http://127.0.0.1:$port", dir => $dir, pid => $pid }, $class;
}

# wd(METHOD, PATH, BODY) -> the answer's value; dies on an error
sub wd {
    my ($self, $method, $path, $body) = @_;
    my $r = JPKITest::http($method, "$self->{wd}$path", timeout => 90,
                           defined $body ? (headers => { 'Content-Type' => 'application/json' },
                                            content => JPKITest::json_encode($body)) : ());
    die "webdriver $method $path: $r->{status} $r->{content}\n" unless $r->{status} == 200;
    return $r->{json}{value};
}

sub session {
    my ($self, %o) = @_;
    my $prof = "$self->{dir}/chromium-" . ++$runs;
    my @size = @{ $o{size} // [900, 1100] };
    my @args = ('--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
                '--disable-extensions', '--disable-background-networking',
                '--hide-scrollbars', '--force-device-scale-factor=1',
                "--window-size=$size[0],$size[1]", "--user-data-dir=$prof");
    my %prefs = %{ $o{prefs} // {} };
    if ($o{lang}) {
        push @args, "--lang=$o{lang}", "--accept-lang=$o{lang}";
        $prefs{'intl.accept_languages'} = $o{lang};
    }
    my $caps = { browserName => 'chrome',
                 timeouts => { pageLoad => ($o{page_load} // 30) * 1000, script => 30000 },
                 'goog:chromeOptions' => { binary => $CHROMIUM, args => \@args,
                                           %prefs ? (prefs => \%prefs) : () } };
    $caps->{acceptInsecureCerts} = JSON::PP::true() if $o{insecure};
    $caps->{'goog:loggingPrefs'} = { performance => 'ALL' } if $o{network};
    my $s = $self->wd('POST', '/session', { capabilities => { alwaysMatch => $caps } });
    return bless { br => $self, id => $s->{sessionId} }, 'JPKIBrowser::Session';
}

sub stop {
    my ($self) = @_;
    JPKITest::stop_pid($self->{pid}, 'TERM', 5) if $self->{pid};
    delete $self->{pid};
}

package JPKIBrowser::Session;
use Time::HiRes qw(time sleep);

sub wd { my ($s, $m, $p, $b) = @_; return $s->{br}->wd($m, "/session/$s->{id}$p", $b) }

# go(URL): navigates; false (and the error in $@) when the load failed
sub go { my ($s, $url) = @_; return eval { $s->wd('POST', '/url', { url => $url }); 1 } }

sub js {
    my ($s, $script, @args) = @_;
    return $s->wd('POST', '/execute/sync', { script => $script, args => \@args });
}

sub url  { my ($s) = @_; return $s->js('return location.href') }
sub text { my ($s) = @_; return $s->js('return document.body ? document.body.innerText : ""') // '' }

# wait_for(SCRIPT, SECONDS, ARGS...): SCRIPT's value once true (checked
# every 0.1 s; a navigation under way is waited through), undef on timeout
sub wait_for {
    my ($s, $script, $secs, @args) = @_;
    my $end = time + ($secs // 15);
    while (1) {
        my $v = eval { $s->js($script, @args) };
        return $v if $v;
        return undef if time > $end;
        sleep 0.1;
    }
}

sub click {
    my ($s, $css) = @_;
    my $el = $s->wd('POST', '/element', { using => 'css selector', value => $css });
    my ($ref) = values %$el;
    $s->wd('POST', "/element/$ref/click", {});
}

# media(NAME => VALUE, ...): the page's media features emulated
# ('prefers-color-scheme' => 'dark', 'prefers-reduced-motion' => 'reduce');
# none: as the browser is
sub media {
    my ($s, %f) = @_;
    $s->wd('POST', '/goog/cdp/execute', { cmd => 'Emulation.setEmulatedMedia', params => {
        features => [ map { { name => $_, value => $f{$_} } } sort keys %f ] } });
}

# requests(): the requests the browser sent since the last call, from its
# performance log (network => 1): [{t (seconds, the browser's clock), method,
# url, headers (names in lower case, the cookies among them), body}]
sub requests {
    my ($s) = @_;
    my (%by, @order);
    for my $e (@{ $s->wd('POST', '/se/log', { type => 'performance' }) // [] }) {
        my $m = eval { JSON::PP::decode_json($e->{message})->{message} } or next;
        my $p = $m->{params} // {};
        next unless defined $p->{requestId} && $m->{method} =~ /^Network\.requestWillBeSent/;
        my $r = $by{ $p->{requestId} } //= do { push @order, $p->{requestId}; { headers => {} } };
        my $h = $m->{method} eq 'Network.requestWillBeSent' ? $p->{request}{headers} : $p->{headers};
        $r->{headers}{ lc $_ } = $h->{$_} for keys %{ $h // {} };
        if ($m->{method} eq 'Network.requestWillBeSent') {
            @$r{qw(t method url body)} = ($p->{wallTime}, @{ $p->{request} }{qw(method url postData)});
        }
    }
    return grep { $_->{url} } map { $by{$_} } @order;
}

sub png { my ($s) = @_; return MIME::Base64::decode_base64($s->wd('GET', '/screenshot')) }

sub quit { my ($s) = @_; eval { $s->wd('DELETE', '') }; }

1;
