#!/usr/bin/perl
# jpkictl map add|remove|list against a mapping file and a real redis-server.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);

my $B   = $ENV{JPKI_BUILD}    // 'build';
my $P   = $ENV{JPKI_TEST_PKI} // "$B/pki";
my $J   = $ENV{JPKI_JPKICTL} // "$B/jpkictl";
my $dir = tempdir(CLEANUP => 1);
my $iss = "card=$P/ca1.pem,$P/ca2.pem";

sub run { my $out = `@_ 2>&1`; return ($? >> 8, $out) }
sub slurp { my ($f) = @_; open my $h, '<', $f or return undef; local $/; my $d = <$h>; $d // '' }
sub spew  { my ($f, $d) = @_; open my $h, '>', $f or die "$f: $!"; print $h $d; close $h or die }
# A password file (mode 0600) of PW: its path.
sub pwfile { my ($pw) = @_; my $f = "$dir/pw-$pw"; spew($f, "$pw\n"); chmod 0600, $f; return $f }

open my $fh, '>', "$dir/secret" or die;
printf $fh "secret %s\n", unpack('H*', join '', map { chr int rand 256 } 1 .. 32);
close $fh;
chmod 0600, "$dir/secret";
my $S = "--secret-file $dir/secret";

my ($rc, $out) = run("$J cert-check --cert $P/user1.pem --issuer $iss $S");
my ($id1) = $out =~ /cert_id=([0-9a-f]{32})/;
ok($id1, 'cert_id of user1');

# --- mapping file ---------------------------------------------------------
my $map = "$dir/map";
($rc, $out) = run("$J map add --cert $P/user1.pem --issuer $iss $S --account alice --map-file $map");
is($rc, 0, 'map add (file)');
like($out, qr/cert_id=$id1 account=alice/, 'map add prints cert_id and account');
my ($serial) = `openssl x509 -in $P/user1.pem -serial -noout` =~ /=([0-9A-F]+)/;
($rc, $out) = run("$J map add --serial 0x$serial --issuer $iss $S --account alice2 --map-file $map");
is($rc, 0, 'map add by serial');
like($out, qr/cert_id=$id1 /, 'the serial gives the same cert_id as the certificate');
unlike($out, qr/$serial/i, 'the serial is not printed');
($rc, $out) = run("echo 0x$serial | $J map add --serial - --issuer $iss $S --account alice3 --map-file $map");
is($rc, 0, 'map add --serial - (from standard input)');
like($out, qr/cert_id=$id1 account=alice3/, '... the same cert_id');
($rc, $out) = run("$J map add --serial - --issuer $iss $S --account alice3 --map-file $map </dev/null");
is($rc, 2, '--serial - with nothing on standard input: usage error');
($rc, $out) = run("$J map add --serial 0x$serial --issuer $iss $S --account alice2 --map-file $map");
($rc, $out) = run("$J map list --map-file $map");
is($out, "$id1 alice2\n", 'a new mapping replaces the old line');
($rc, $out) = run("$J map add --cert $P/user-expired.pem --issuer $iss $S --account x --map-file $map");
is($rc, 1, 'an expired certificate is not mapped');
like($out, qr/cert_expired/, 'with its reason');
($rc, $out) = run("$J map add --cert $P/user1.pem --issuer $iss $S --account 'a\"b' --map-file $map");
is($rc, 2, 'an account with a quote is refused');
($rc, $out) = run("$J map add --cert $P/user1.pem --issuer $iss --account a --map-file $map");
is($rc, 2, 'no secret file: refused (cert_id would be wrong)');
($rc, $out) = run("$J map add --cert $P/user1.pem --issuer $iss $S --account a");
is($rc, 2, 'no backend: refused');
($rc, $out) = run("$J map remove --cert-id $id1 --map-file $map");
is($rc, 0, 'map remove by cert_id');
($rc, $out) = run("$J map remove --cert-id $id1 --map-file $map");
is($rc, 1, 'removing again: not mapped');
($rc, $out) = run("$J map remove --cert-id XYZ --map-file $map");
is($rc, 2, 'a malformed cert_id is refused');

# --- mapping file: replaced safely ----------------------------------------
# map add of serial N into F: (exit, output)
sub add_serial {
    my ($f, $n, $acct) = @_;
    return run("$J map add --serial $n --issuer $iss $S --account $acct --map-file $f");
}
# the cert_id of serial N
my ($idA) = (add_serial("$dir/ids", 7001, 'a'))[1] =~ /cert_id=([0-9a-f]{32})/;
my ($idB) = (add_serial("$dir/ids", 7002, 'b'))[1] =~ /cert_id=([0-9a-f]{32})/;
ok($idA && $idB && $idA ne $idB, 'two serials, two cert_ids');
my $two = "$idA alice\n$idB bob\n";
# the files in $dir named NAME.something other than NAME.lock
sub leftovers { my ($name) = @_; return grep { !/\.lock$/ } glob("$dir/$name.*") }

umask 022;
{
    # a directory at the path: refused, nothing created beside it
    mkdir "$dir/mapdir" or die;
    ($rc, $out) = add_serial("$dir/mapdir", 7003, 'c');
    is($rc, 2, 'a directory as mapping file: refused');
    like($out, qr/not a regular file; nothing changed/, '... with the reason');
    is_deeply([leftovers('mapdir')], [], '... and no temporary file left');
}
SKIP: {
    # a file whose read fails part way (EIO at offset 0 of /proc/self/mem,
    # as root too): the old code took the error for the end of the file
    skip 'no /proc/self/mem', 3 unless -e '/proc/self/mem';
    symlink '/proc/self/mem', "$dir/map-eio" or die;
    ($rc, $out) = add_serial("$dir/map-eio", 7003, 'c');
    is($rc, 2, 'a read error: refused');
    like($out, qr/cannot read .*map-eio: .*nothing changed/, '... with the reason');
    is(readlink("$dir/map-eio"), '/proc/self/mem', '... and the file is left alone');
}
{
    # an open that fails for a reason other than "no such file" is no
    # empty file: ELOOP (as root too), EACCES (not as root)
    symlink 'map-loop', "$dir/map-loop" or die;
    ($rc, $out) = add_serial("$dir/map-loop", 7003, 'c');
    is($rc, 2, 'a mapping file that cannot be opened (ELOOP): refused');
    like($out, qr/cannot read .*map-loop: .*nothing changed/, '... with the reason');
    is(readlink("$dir/map-loop"), 'map-loop', '... and it is left alone');
  SKIP: {
        skip 'root reads a mode 000 file', 2 if $> == 0;
        spew("$dir/map-000", $two);
        chmod 0, "$dir/map-000";
        ($rc, $out) = add_serial("$dir/map-000", 7003, 'c');
        is($rc, 2, 'an unreadable mapping file: refused');
        chmod 0600, "$dir/map-000";
        is(slurp("$dir/map-000"), $two, '... and left alone');
    }
}
{
    # out of file descriptors when the mapping file is opened (root cannot
    # make an open fail with EACCES): the file keeps every line whatever
    # the limit; the old code opened the temporary file first and took the
    # failed open for a missing file
    # (no shell redirection after the ulimit: dash saves fds at 10 and up)
    my $bad = 0;
    for my $n (4 .. 9) {
        spew("$dir/map-fd", $two);
        my $pid = fork // die;
        if ($pid == 0) {
            open STDOUT, '>', "$dir/fd.out" or die;
            open STDERR, '>&', \*STDOUT or die;
            exec 'sh', '-c', "ulimit -n $n && exec \"\$@\"", 'sh', $J,
                qw(map add --serial 7003 --issuer), $iss, '--secret-file',
                "$dir/secret", qw(--account carol --map-file), "$dir/map-fd";
            exit 127;
        }
        waitpid $pid, 0;
        ($rc, $out) = ($? >> 8, slurp("$dir/fd.out"));
        my $now = slurp("$dir/map-fd");
        my $want = $rc == 0 ? $two . ($out =~ /cert_id=(\w+)/)[0] . " carol\n" : $two;
        $bad++, diag("ulimit -n $n: exit $rc, $out, file:\n$now") if $now ne $want;
        note("ulimit -n $n: exit $rc, $out");
    }
    is($bad, 0, 'no open-file limit makes the file lose its mappings');
}
{
    # mode, owner and group are kept; a new file is 0640
    my $f = "$dir/map-mode";
    spew($f, $two);
    chmod 0640, $f;
    my $gid = $> == 0 ? (getgrnam('daemon'))[2] // 1 : (stat $f)[5];
    chown -1, $gid, $f if $> == 0;
    ($rc, $out) = add_serial($f, 7003, 'carol');
    is($rc, 0, 'map add to a 0640 file');
    my @st = stat $f;
    is(sprintf('%o', $st[2] & 07777), '640', '... keeps mode 0640 (umask 022)');
    is($st[5], $gid, '... and its group' . ($> == 0 ? ' (daemon, run as root)' : ''));
    like(slurp($f), qr/\A\Q$two\E[0-9a-f]{32} carol\n\z/, '... and its lines');
    chmod 0600, $f;
    ($rc, $out) = add_serial($f, 7004, 'dave');
    is(sprintf('%o', (stat $f)[2] & 07777), '600', 'a 0600 file stays 0600');
    ($rc, $out) = add_serial("$dir/map-new", 7003, 'carol');
    is($rc, 0, 'map add to a new file');
    is(sprintf('%o', (stat "$dir/map-new")[2] & 07777), '640', '... makes it 0640, not 0644');
    is(sprintf('%o', (stat "$dir/map-new.lock")[2] & 07777), '600', '... beside a lock file of mode 0600');
}
{
    # a last line without its newline is not joined to the new one
    spew("$dir/map-nonl", "$idA alice");
    ($rc, $out) = add_serial("$dir/map-nonl", 7002, 'bob');
    is(slurp("$dir/map-nonl"), "$idA alice\n$idB bob\n", 'a last line without newline stays a line');
}
{
    # the core's writer (common/mapfile.c): comments and malformed lines are
    # kept as they are; map list shows the file and warns, as the gate
    # does, of the lines the gate ignores, with their numbers
    my $f = "$dir/map-keep";
    spew($f, "# accounts\n$idA alice\nnot a mapping\n$idA again\n");
    ($rc, $out) = add_serial($f, 7002, 'bob');
    is($rc, 0, 'map add to a file with comments and malformed lines');
    is(slurp($f), "# accounts\n$idA alice\nnot a mapping\n$idA again\n$idB bob\n",
       '... keeps them, the new line at the end');
    my $list = `$J map list --map-file $f 2>$dir/list.err`;
    is($list, slurp($f), 'map list --map-file: the file as it is');
    is(slurp("$dir/list.err"), "jpkictl: warning: mapping file \"$f\": 2 malformed lines ignored "
       . "(expected \"<cert_id> <account>\"): line 3: it does not start with a cert_id (32 "
       . "lower-case hex digits) and a space; line 4: the cert_id is mapped on line 2 already\n",
       '... and on stderr the lines the gate ignores, by number');
    ($rc, $out) = run("$J map remove --cert-id $idA --map-file $f");
    is(slurp($f), "# accounts\nnot a mapping\n$idB bob\n", 'map remove: every line of the cert_id goes');
    ($rc, $out) = run("$J map list --map-file $f");
    like($out, qr/: 1 malformed line ignored .*: line 2: it does not start/, '... map list: one malformed line left');
}
{
    # a symlink planted at the old fixed temporary name is not followed
    spew("$dir/victim", "precious\n");
    spew("$dir/map-sym", $two);
    symlink "$dir/victim", "$dir/map-sym.tmp" or die;
    ($rc, $out) = add_serial("$dir/map-sym", 7003, 'carol');
    is($rc, 0, 'map add with a symlink at F.tmp');
    is(slurp("$dir/victim"), "precious\n", '... leaves the symlink\'s target alone');
    ok(-l "$dir/map-sym.tmp" && -f "$dir/map-sym" && !-l "$dir/map-sym", '... and the symlink');
    like(slurp("$dir/map-sym"), qr/\A\Q$two\E[0-9a-f]{32} carol\n\z/, '... the file has every line');
    is_deeply([leftovers('map-sym')], ["$dir/map-sym.tmp"], '... and no temporary file is left');
}
{
    # concurrent runs: every change ends up in the file (three rounds of 20)
    my $lost = 0;
    for my $round (1 .. 3) {
        my $f = "$dir/map-conc$round";
        my @pids;
        for my $i (1 .. 20) {
            my $pid = fork // die;
            if ($pid == 0) {
                open STDOUT, '>', '/dev/null'; open STDERR, '>', '/dev/null';
                exec $J, qw(map add --serial), 8000 + $i, '--issuer', $iss,
                    '--secret-file', "$dir/secret", '--account', "user$i", '--map-file', $f;
                exit 127;
            }
            push @pids, $pid;
        }
        my $failed = grep { waitpid($_, 0); $? != 0 } @pids;
        my %acct = map { (split ' ')[1] => 1 } split /\n/, slurp($f) // '';
        $lost += $failed + grep { !$acct{"user$_"} } 1 .. 20;
    }
    is($lost, 0, '60 concurrent map add runs: no change lost');
}

# --- redis ----------------------------------------------------------------
SKIP: {
    skip 'no redis-server', 15 unless -x '/usr/bin/redis-server';
    my $port;
    for (1 .. 50) {
        $port = 20000 + int rand 20000;
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 1, ReuseAddr => 1);
        last if $s;
    }
    my $pid = fork // die;
    if ($pid == 0) {
        chdir $dir;
        exec '/usr/bin/redis-server', '--port', $port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
            '--requirepass', 'pw1';
        exit 1;
    }
    for (1 .. 50) { last if IO::Socket::INET->new("127.0.0.1:$port"); select undef, undef, undef, 0.1 }
    my $R = "--redis 127.0.0.1:$port --redis-password-file @{[pwfile(q{pw1})]}";
    ($rc, $out) = run("$J map add --cert $P/user1.pem --issuer $iss $S --account alice $R");
    is($rc, 0, 'map add (redis)');
    ($rc, $out) = run("$J map list $R");
    is($out, "$id1 alice\n", 'map list (redis) shows cert_id and account only');
    ($rc, $out) = run("$J map list --redis 127.0.0.1:$port --redis-password-file @{[pwfile(q{wrong})]}");
    is($rc, 5, 'a wrong password is refused (store failed)');
    ($rc, $out) = run("$J map remove --cert $P/user1.pem --issuer $iss $S $R");
    is($rc, 0, 'map remove (redis)');
    ($rc, $out) = run("$J map list $R");
    is($out, '', 'nothing left');
    ($rc, $out) = run("$J map list --redis 127.0.0.1:1");
    is($rc, 5, 'redis down: exit 5 (store failed)');

    # strict numbers: the old code connected to $port and to DB 0
    ($rc, $out) = run("$J map list --redis 127.0.0.1:${port}abc --redis-password-file @{[pwfile(q{pw1})]}");
    is($rc, 2, 'a port with trailing characters: usage error');
    like($out, qr/--redis: expected HOST:PORT/, '... saying so');
    ($rc, $out) = run("$J map list $R --redis-db=x");
    is($rc, 2, '--redis-db=x: usage error');
    like($out, qr/--redis-db: expected a number/, '... saying so');
    ($rc, $out) = run("$J map list $R --redis-db=1x");
    is($rc, 2, '--redis-db=1x: usage error');
    ($rc, $out) = run("$J map add --cert $P/user1.pem --issuer $iss $S --account bob $R --redis-db 1");
    is($rc, 0, '--redis-db 1');
    ($rc, $out) = run("$J map list $R");
    is($out, '', '... writes to DB 1, not 0');
    ($rc, $out) = run("$J map list $R --redis-db 1");
    is($out, "$id1 bob\n", '... where map list --redis-db 1 finds it');
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

# --- a fake Redis on a unix socket ---------------------------------------
# Runs jpkictl ARGS --redis unix:SOCKET; $serve->($conn, $pid) plays Redis
# for its connection.  Returns (exit status, 128 + signal when killed;
# stdout and stderr).
my $nfake = 0;
sub with_fake_redis {
    my ($serve, @args) = @_;
    my $sock = "$dir/fake" . ++$nfake . '.sock';
    my $l = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $sock, Listen => 1)
        or die "$sock: $!";
    my $pid = fork // die;
    if ($pid == 0) {
        open STDOUT, '>', "$dir/fake.out" or die;
        open STDERR, '>&', \*STDOUT or die;
        exec $J, @args, '--redis', "unix:$sock" or exit 127;
    }
    if (IO::Select->new($l)->can_read(10)) {
        my $c = $l->accept;
        # here only (jpkictl must not inherit it): a jpkictl that has gone
        # must not kill the test writing to it
        local $SIG{PIPE} = 'IGNORE';
        $serve->($c, $pid);
        close $c;
    }
    waitpid $pid, 0;
    my $st = $?;
    return (($st & 127) ? 128 + ($st & 127) : $st >> 8, slurp("$dir/fake.out"));
}
# One command (a RESP array of bulk strings): its words, () on EOF.
sub read_cmd {
    my ($c) = @_;
    my $head = <$c> // return ();
    my ($n) = $head =~ /^\*(\d+)\r\n\z/ or return ();
    my @w;
    for (1 .. $n) {
        my ($len) = (<$c> // '') =~ /^\$(\d+)\r\n\z/ or return ();
        read($c, my $v, $len + 2) == $len + 2 or return ();
        push @w, substr($v, 0, $len);
    }
    return @w;
}
sub bulk { return join '', map { '$' . length($_) . "\r\n$_\r\n" } @_ }

# The connection is closed on jpkictl's side of the next command: shutdown
# SHUT_RD on a unix socket makes the peer's next write fail with EPIPE at
# once (a closed TCP connection does only on the second write), as when
# Redis drops a client (timeout, CLIENT KILL, restart).  SIGPIPE is ignored:
# the store failure is reported, not a silent exit 141.
{
    my @keys = map { "jpki:v1:map:" . sprintf('%032x', $_) } 1 .. 3;
    my ($rc, $out) = with_fake_redis(sub {
        my ($c) = @_;
        read_cmd($c);
        shutdown $c, 0;
        print $c "*2\r\n" . bulk('0') . '*' . @keys . "\r\n" . bulk(@keys);
        $c->flush;
    }, qw(map list));
    is($rc, 5, 'map list, connection dropped after SCAN: exit 5, not SIGPIPE (141)');
    like($out, qr/GET failed: Broken pipe/, '... saying why');
    ($rc, $out) = with_fake_redis(sub {
        my ($c) = @_;
        read_cmd($c);                   # SELECT 1
        shutdown $c, 0;
        print $c "+OK\r\n";
        $c->flush;
    }, qw(map add --serial 7001 --issuer), $iss, '--secret-file', "$dir/secret",
       qw(--account x --redis-db 1));
    is($rc, 5, 'map add, connection dropped after SELECT: exit 5, not SIGPIPE (141)');
    like($out, qr/SET failed: Broken pipe/, '... saying why');
}

# SCAN answers of the wrong shape: refused, never dereferenced or printed
for my $t (["an integer cursor", "*2\r\n:0\r\n*0\r\n"],
           ["a cursor not of digits", "*2\r\n" . bulk('1x') . "*0\r\n"],
           ["an integer key", "*2\r\n" . bulk('0') . "*1\r\n:7\r\n"],
           ["a nil key", "*2\r\n" . bulk('0') . "*1\r\n\$-1\r\n"],
           ["keys not an array", "*2\r\n" . bulk('0') . bulk('jpki:v1:map:x')],
           ["three elements", "*3\r\n" . bulk('0') . "*0\r\n*0\r\n"]) {
    my ($name, $answer) = @$t;
    my ($rc, $out) = with_fake_redis(sub {
        my ($c) = @_;
        read_cmd($c);
        print $c $answer;
        $c->flush;
        read_cmd($c);               # until jpkictl closes
    }, qw(map list));
    is($rc, 5, "SCAN answered with $name: exit 5");
    like($out, qr/SCAN failed: the answer is not a SCAN reply/, '... saying so');
}

# the password from a file (first line, not readable by others), sent as
# is; --redis-password on the command line refused (and blanked in
# /proc/PID/cmdline while it ran)
{
    my $auth;
    my ($rc, $out) = with_fake_redis(sub {
        my ($c) = @_;
        ($auth) = (read_cmd($c))[1];
        print $c "-WRONGPASS invalid username-password pair\r\n";
        $c->flush;
    }, qw(map list --redis-password-file), pwfile('pw-Secret-3'));
    is($auth, 'pw-Secret-3', '--redis-password-file: its first line is sent');
    is($rc, 5, '... refused by the server: exit 5');
    unlike($out, qr/pw-Secret/, '... the password is never printed');
    chmod 0644, pwfile('pw-Secret-4');
    ($rc, $out) = run("$J map list --redis 127.0.0.1:1 --redis-password-file $dir/pw-pw-Secret-4");
    is($rc, 2, 'a password file others may read: usage error');
    like($out, qr/--redis-password-file: password_file "\S+" may be read or written by others/,
         '... saying so');
    unlike($out, qr/pw-Secret-4\b(?!")/, '... not the password');
    ($rc, $out) = run("$J map list --redis 127.0.0.1:1 --redis-password-file $dir/none");
    is($rc, 2, 'a missing password file: usage error');
    for my $form (['--redis-password=pw-Secret-1'], ['--redis-password', 'pw-Secret-2']) {
        ($rc, $out) = run("$J map list --redis 127.0.0.1:1 @$form");
        is($rc, 2, "@$form: refused (usage)");
        like($out, qr/--redis-password is not taken .* --redis-password-file FILE/, '... naming the file option');
        unlike($out, qr/pw-Secret/, '... never printing the password');
    }
    ($rc, $out) = run("$J map list --redis 127.0.0.1:1 --redis-sentinel 127.0.0.1:2 --redis-master m");
    is($rc, 2, '--redis and --redis-sentinel: usage error');
    like($out, qr/--redis and --redis-sentinel do not mix/, '... saying so');
    ($rc, $out) = run("$J map list --redis-sentinel 127.0.0.1:2");
    is($rc, 2, '--redis-sentinel without --redis-master: usage error');
    like($out, qr/--redis-sentinel needs --redis-master NAME/, '... saying so');
    ($rc, $out) = run("$J map list --redis-sentinel 127.0.0.1:0 --redis-master m");
    is($rc, 2, 'a sentinel port 0: usage error');
    like($out, qr/invalid sentinel address "127\.0\.0\.1:0"/, '... the core\'s sentence');
    ($rc, $out) = run("$J map list --redis 127.0.0.1:1 --redis-master m");
    is($rc, 2, '--redis-master without --redis-sentinel: usage error');
}

done_testing();
