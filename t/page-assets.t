#!/usr/bin/perl
# t/page-assets.t - the login page's assets (common/assets/), read as text:
#   page.css: every colour is a custom property of :root, in a light and a
#     dark palette of the same names; the contrast of each pair the page
#     shows (text on its background: 4.5:1; borders, buttons and the focus
#     ring on theirs: 3:1, WCAG 2.1 AA) is computed from the palette (WCAG
#     relative luminance); every colour a rule uses is in such a pair, and
#     a rule that sets both a text and a background colour is a pair too;
#     the checker itself refuses a palette below the ratios;
#     a visible focus ring, 44-pixel buttons, Japanese system fonts, a QR
#     code of at least 200 pixels kept sharp, reduced motion respected, no
#     external resource;
#   page.js: no eval or inline code the page's CSP would refuse, no HTML
#     written from strings, no other origin; what it looks for is in the
#     built-in template (common/page.c); `node --check` when node is there.
use strict;
use warnings;
use FindBin;
use Test::More;

my $ROOT = "$FindBin::Bin/..";
sub slurp { my ($f) = @_; open my $h, '<:raw', $f or die "$f: $!"; local $/; return <$h> }

my $css = slurp("$ROOT/common/assets/page.css");
my $js = slurp("$ROOT/common/assets/page.js");
my $page_c = slurp("$ROOT/common/page.c");

# ---- WCAG 2.1 contrast --------------------------------------------------

sub rgb_of {
    my ($hex) = @_;
    $hex =~ s/^#//;
    $hex = join '', map { $_ x 2 } split //, $hex if length $hex == 3;
    return unless $hex =~ /^[0-9a-fA-F]{6}$/;
    return map { hex } $hex =~ /(..)(..)(..)/;
}

sub luminance {
    my @c = map {
        my $c = $_ / 255;
        $c <= 0.04045 ? $c / 12.92 : (($c + 0.055) / 1.055) ** 2.4
    } rgb_of($_[0]);
    return 0.2126 * $c[0] + 0.7152 * $c[1] + 0.0722 * $c[2];
}

sub contrast {
    my ($a, $b) = map { luminance($_) } @_;
    ($a, $b) = ($b, $a) if $b > $a;
    return ($a + 0.05) / ($b + 0.05);
}

# the palettes: :root's custom properties outside any @media (light), and
# those of :root inside @media (prefers-color-scheme: dark)
sub strip_comments { my ($t) = @_; $t =~ s{/\*.*?\*/}{}gs; return $t }

# the blocks at the top level and one level down (@media): [selector or
# at-rule, body, enclosing @media or '']
sub blocks {
    my ($text) = @_;
    my (@out, @stack, $sel);
    my $start = 0;
    my $depth = 0;
    my @open;
    for (my $i = 0; $i < length $text; $i++) {
        my $ch = substr($text, $i, 1);
        if ($ch eq '{') {
            my $head = substr($text, $start, $i - $start);
            $head =~ s/^\s+|\s+$//g;
            push @open, [$head, $i + 1];
            $start = $i + 1;
        } elsif ($ch eq '}') {
            my $o = pop @open or die "page.css: unbalanced }";
            my $body = substr($text, $o->[1], $i - $o->[1]);
            my $media = @open ? $open[-1][0] : '';
            push @out, [$o->[0], $body, $media] unless $body =~ /\{/;
            $start = $i + 1;
        } elsif ($ch eq ';' && !@open) {
            $start = $i + 1;
        }
    }
    die "page.css: unbalanced {" if @open;
    return @out;
}

sub decls {
    my ($body) = @_;
    my @d;
    for my $d (split /;/, $body) {
        next unless $d =~ /^\s*([-\w]+)\s*:\s*(.*?)\s*$/s;
        push @d, [lc $1, $2];
    }
    return @d;
}

# What the checker finds wrong in a style sheet's colours (empty: none),
# given the pairs [fg, bg, min ratio] the page shows.
sub colour_problems {
    my ($text, $pairs) = @_;
    my @bad;
    my (%light, %dark, %used_as);
    my @blocks = blocks(strip_comments($text));
    for my $b (@blocks) {
        my ($sel, $body, $media) = @$b;
        my @d = decls($body);
        if ($sel eq ':root') {
            my $pal = $media =~ /prefers-color-scheme\s*:\s*dark/ ? \%dark
                    : $media eq '' ? \%light : undef;
            for (@d) {
                my ($p, $v) = @$_;
                next unless $p =~ /^--(.+)$/;
                my $name = $1;
                if (!$pal) { push @bad, "--$name in :root of \@media $media"; next }
                if (!defined rgb_of($v)) { push @bad, "--$name: $v is not #rgb or #rrggbb"; next }
                $pal->{$name} = $v;
            }
            next;
        }
        my ($fg, $bg);
        for (@d) {
            my ($p, $v) = @$_;
            next unless $p =~ /^(color|background(-color)?|border(-\w+)*(-color)?|outline(-color)?|fill|stroke)$/;
            my $is_forced = $media =~ /forced-colors/;
            if ($v =~ /#[0-9a-fA-F]{3,8}\b|\b(rgba?|hsla?|hwb|lab|lch|oklab|oklch|color)\s*\(/) {
                push @bad, "$sel: $p: $v: a colour outside the palette";
            }
            my @vars = $v =~ /var\(\s*--([-\w]+)\s*\)/g;
            for my $var (@vars) {
                push @bad, "$sel: $p: --$var is not in the palette" unless exists $light{$var};
                my $role = $p eq 'color' ? 'text'
                         : $p =~ /^background/ ? 'background' : 'line';
                $used_as{$role}{$var} = "$sel { $p }";
            }
            $fg = $vars[0] if $p eq 'color' && @vars;
            $bg = $vars[0] if $p =~ /^background/ && @vars;
        }
        push @$pairs, [$fg, $bg, 4.5, "$sel sets both"] if $fg && $bg;
    }
    push @bad, 'no light palette in :root' unless %light;
    push @bad, 'no dark palette in :root of @media (prefers-color-scheme: dark)' unless %dark;
    for my $n (sort keys %light) {
        push @bad, "--$n: not in the dark palette" unless exists $dark{$n};
    }
    for my $n (sort keys %dark) {
        push @bad, "--$n: in the dark palette only" unless exists $light{$n};
    }
    # every colour used is in a pair of its role
    my (%as_text, %as_bg, %as_line);
    for (@$pairs) {
        my ($f, $b, $min) = @$_;
        $as_bg{$b} = 1;
        if ($min >= 4.5) { $as_text{$f} = 1 } else { $as_line{$f} = 1 }
    }
    for my $v (sort keys %{ $used_as{text} // {} }) {
        push @bad, "--$v: a text colour ($used_as{text}{$v}) in no pair of 4.5:1"
            unless $as_text{$v};
    }
    for my $v (sort keys %{ $used_as{background} // {} }) {
        push @bad, "--$v: a background ($used_as{background}{$v}) in no pair"
            unless $as_bg{$v} || $as_line{$v};
    }
    for my $v (sort keys %{ $used_as{line} // {} }) {
        push @bad, "--$v: a border or outline ($used_as{line}{$v}) in no pair"
            unless $as_line{$v} || $as_text{$v};
    }
    for my $pal (['light', \%light], ['dark', \%dark]) {
        my ($pn, $p) = @$pal;
        for (@$pairs) {
            my ($f, $b, $min, $why) = @$_;
            if (!exists $p->{$f} || !exists $p->{$b}) {
                push @bad, "$pn: the pair --$f on --$b names a colour not in the palette";
                next;
            }
            my $r = contrast($p->{$f}, $p->{$b});
            push @bad, sprintf('%s: --%s %s on --%s %s: %.2f:1, below %.1f:1 (%s)',
                               $pn, $f, $p->{$f}, $b, $p->{$b}, $r, $min, $why)
                if $r < $min;
        }
    }
    return @bad;
}

# the pairs the page shows: [foreground, background, minimum, where]
my @PAIRS = (
    [qw(fg bg), 4.5, 'text on the page'],
    [qw(fg card), 4.5, 'text in a method box'],
    [qw(muted bg), 4.5, 'secondary text on the page'],
    [qw(muted card), 4.5, 'a hint and the code label in a method box'],
    [qw(link bg), 4.5, 'a link on the page'],
    [qw(link card), 4.5, 'a link in a method box (the signing app link)'],
    [qw(accent-fg accent), 4.5, 'a button'],
    [qw(accent-fg accent-hover), 4.5, 'a button under the pointer'],
    [qw(error-fg error-bg), 4.5, 'a refusal'],
    [qw(code-fg code-bg), 4.5, 'code, the device code'],
    [qw(border bg), 3, 'a method box edge on the page'],
    [qw(border card), 3, 'the QR code frame in a method box'],
    [qw(border qr-bg), 3, "the QR code's frame around its quiet zone"],
    [qw(accent bg), 3, 'a button on the page'],
    [qw(accent card), 3, 'a button in a method box'],
    [qw(accent-hover card), 3, 'a button under the pointer in a method box'],
    [qw(focus bg), 3, 'the focus ring on the page'],
    [qw(focus card), 3, 'the focus ring in a method box'],
    [qw(focus error-bg), 3, 'the focus ring in a refusal'],
    [qw(error-border bg), 3, 'a refusal box edge'],
    [qw(error-border error-bg), 3, 'a refusal box edge on its background'],
);

# the checker refuses what it must (each of these fails if its check goes)
{
    my $good = ":root{--fg:#000000;--bg:#ffffff}\n"
             . "\@media (prefers-color-scheme: dark){:root{--fg:#ffffff;--bg:#000000}}\n"
             . "body{color:var(--fg);background-color:var(--bg)}\n";
    my @p = ([qw(fg bg), 4.5, 't']);
    is_deeply([colour_problems($good, [@p])], [], 'checker: a good palette passes');
    (my $low = $good) =~ s/--fg:#000000/--fg:#999999/;
    like(join("\n", colour_problems($low, [@p])), qr/light: --fg #999999 on --bg #ffffff: 2\.85:1, below 4\.5/,
         'checker: grey #999 on white (2.85:1) is refused');
    (my $dlow = $good) =~ s/--fg:#ffffff/--fg:#333333/;
    like(join("\n", colour_problems($dlow, [@p])), qr/dark: --fg #333333 on --bg #000000/,
         'checker: the dark palette is checked too');
    like(join("\n", colour_problems("$good a{color:#777}\n", [@p])),
         qr/a: color: #777: a colour outside the palette/, 'checker: a literal colour is refused');
    like(join("\n", colour_problems("$good a{color:rgb(1,2,3)}\n", [@p])),
         qr/outside the palette/, 'checker: rgb() is refused');
    like(join("\n", colour_problems("$good a{color:var(--nope)}\n", [@p])),
         qr/--nope is not in the palette/, 'checker: an unknown custom property is refused');
    (my $nodark = $good) =~ s/\@media.*\n//;
    like(join("\n", colour_problems($nodark, [@p])), qr/no dark palette/,
         'checker: a missing dark palette is refused');
    (my $half = $good) =~ s/;--bg:#000000//;
    like(join("\n", colour_problems($half, [@p])), qr/--bg: not in the dark palette/,
         'checker: a colour missing from the dark palette is refused');
    my $extra = $good =~ s/--bg:#ffffff/--bg:#ffffff;--x:#888888/r
                      =~ s/--bg:#000000/--bg:#000000;--x:#888888/r;
    like(join("\n", colour_problems("$extra p{color:var(--x)}\n", [@p])),
         qr/--x: a text colour \(p \{ color \}\) in no pair/,
         'checker: a text colour in no pair is refused');
    like(join("\n", colour_problems("$extra p{outline:2px solid var(--x)}\n", [@p])),
         qr/--x: a border or outline .* in no pair/, 'checker: an outline colour in no pair is refused');
    my $both = $extra =~ s/--x:#888888\}/--x:#888888;--y:#8a8a8a}/r
                      =~ s/--x:#888888\}\}/--x:#888888;--y:#8a8a8a}}/r;
    like(join("\n", colour_problems("$both p{color:var(--x);background:var(--y)}\n",
                                    [@p, [qw(x bg), 3, 'l'], [qw(fg y), 4.5, 't']])),
         qr/--x #888888 on --y #8a8a8a: 1\.0\d:1, below 4\.5:1 \(p sets both\)/,
         'checker: a rule that sets a text and a background colour is a pair');
    is(sprintf('%.2f', contrast('#767676', '#ffffff')), '4.54', 'contrast: #767676 on white is 4.54:1');
    is(sprintf('%.1f', contrast('#000', '#fff')), '21.0', 'contrast: black on white is 21:1');
}

my @problems = colour_problems($css, [@PAIRS]);
is_deeply(\@problems, [], 'page.css: every colour pair meets WCAG 2.1 AA, light and dark')
    or diag join "\n", @problems;
{
    my (%light) = strip_comments($css) =~ /:root\s*\{(.*?)\}/s
        ? (map { /--([-\w]+)\s*:\s*(#\w+)/ ? ($1, $2) : () } split /;/, $1) : ();
    note(sprintf('light %-12s on %-12s %5.2f:1', $_->[0], $_->[1], contrast($light{$_->[0]}, $light{$_->[1]})))
        for grep { $light{$_->[0]} && $light{$_->[1]} } @PAIRS;
}

# ---- the rest of page.css -------------------------------------------

my $c = strip_comments($css);
my @b = blocks($c);
sub rule { my ($re) = @_; return join "\n", map { $_->[1] } grep { $_->[0] =~ $re } @b }

like(rule(qr/(^|,)\s*:focus-visible$/m), qr/outline\s*:\s*[23-9]px solid var\(--focus\)/,
     'page.css: :focus-visible draws a ring of 2 pixels or more');
like(rule(qr/outline-offset/) . rule(qr/:focus-visible/), qr/outline-offset\s*:\s*[1-9]/,
     'page.css: ... off the element');
my $buttons = rule(qr/^button,\s*a\.button$/);
like($buttons, qr/min-height\s*:\s*(4[4-9]|[5-9]\d)px/, 'page.css: buttons are at least 44 pixels high');
like($buttons, qr/min-width\s*:\s*(4[4-9]|[5-9]\d)px/, 'page.css: ... and wide');
my ($fonts) = rule(qr/^html$/) =~ /font-family\s*:\s*([^;]+)/;
for my $f ('"Hiragino Sans"', '"Noto Sans CJK JP"', '"Yu Gothic"') {
    like($fonts // '', qr/\Q$f\E/, "page.css: the page's fonts include $f");
}
like($fonts // '', qr/sans-serif\s*$/, 'page.css: ... and end with sans-serif');
my $qr = rule(qr/^img\.qr$/);
my ($qw) = $qr =~ /(?:^|[;\s])width\s*:\s*(\d+)px/;
ok(($qw // 0) >= 200, 'page.css: the QR code is at least 200 pixels wide') or diag $qr;
like($qr, qr/image-rendering\s*:\s*pixelated/, 'page.css: ... kept sharp (pixelated)');
like($qr, qr/padding\s*:\s*(1[2-9]|[2-9]\d)px/, 'page.css: ... with a quiet zone');
like($qr, qr/background-color\s*:\s*var\(--qr-bg\)/, 'page.css: ... on a light background');
like($css, qr/--qr-bg:\s*#fff(fff)?\b.*prefers-color-scheme: dark.*--qr-bg:\s*#fff(fff)?\b/s,
     'page.css: ... white in the dark scheme as well');
like(rule(qr/^\.device-code,\s*\.flow \.code$/), qr/font-size\s*:\s*(1\.[5-9]|[2-9])(\.\d+)?rem/,
     'page.css: the device code is large (also on the page without script)');
like(rule(qr/^code,\s*\.device-code,\s*\.flow \.code$/), qr/font-family\s*:[^;]*monospace/,
     'page.css: ... monospace');
like(rule(qr/^\.error$/), qr/border[^;]*var\(--error-border\)/, 'page.css: the refusal has a box');
like($c, qr/\@media\s*\(prefers-reduced-motion:\s*reduce\)\s*\{[^{}]*\{[^}]*transition:\s*none/s,
     'page.css: prefers-reduced-motion turns the transitions off');
unlike($c, qr/\@import|\@font-face|url\s*\(|expression\s*\(|(?<![-\w])behavior\s*:/i,
       'page.css: no import, web font, url() or script');

# ---- page.js ---------------------------------------------------------

(my $code = $js) =~ s{/\*.*?\*/}{}gs;
$code =~ s{(?<![:\\])//[^\n]*}{}g;
unlike($code, qr/\beval\s*\(|\bnew\s+Function\b|\bFunction\s*\(/, 'page.js: no eval or Function()');
unlike($code, qr/setTimeout\s*\(\s*['"]|setInterval\s*\(\s*['"]/, 'page.js: no timer of a string');
unlike($code, qr/\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write/,
       'page.js: no HTML written from strings');
unlike($code, qr{['"](https?:)?//}, 'page.js: no URL of another origin');
like($code, qr/preventDefault\(\)/, 'page.js: the form post is taken over');
like($code, qr/'Accept': 'application\/json'/, 'page.js: asks for JSON');
like($code, qr/credentials:\s*'same-origin'/, 'page.js: sends the cookies of this origin only');
like($code, qr/POLL_MS\s*=\s*2000/, 'page.js: polls every 2 s');
like($code, qr/location\.pathname\s*\+\s*'\?error='/, 'page.js: an error goes to this page with ?error=');

# what page.js looks for is in the built-in template
(my $tmpl) = $page_c =~ /default_text\[\]\s*=\s*(.*?);\n/s;
$tmpl = join '', map { s/\\"/"/gr } ($tmpl // '') =~ /"((?:[^"\\]|\\.)*)"/g;
like($tmpl, qr/<div class="method" id="device" data-start="\{\{device_url\}\}" data-return="\{\{return_to\}\}" data-qr-alt="\{\{t:qr_alt\}\}" data-code-label="\{\{t:code_label\}\}" data-link-text="\{\{t:open_app\}\}" data-expired="\{\{t:err_flow\}\}">/,
     'template: the #device block with data-start, data-return and the words page.js shows');
like($tmpl, qr/id="device".*?<form method="post" action="\{\{device_url\}\}">.*?<button type="submit"/s,
     'template: ... its form and submit button');
like($tmpl, qr/<p class="status" role="status" aria-live="polite" data-waiting="\{\{t:waiting\}\}">/,
     'template: ... its status (aria-live) with the waiting words');
like($tmpl, qr/href="\{\{assets\}\}page\.css".*src="\{\{assets\}\}page\.js"/s,
     'template: loads page.css and page.js');
for my $a ($code =~ /attr\('(data-[-a-z]+)'/g) {
    next if $tmpl =~ /\b\Q$a\E="/;
    note("page.js reads $a, which the built-in template does not set yet (a fallback is used)");
}

SKIP: {
    my $node = (grep { -x "$_/node" } split /:/, $ENV{PATH} // '')[0];
    skip 'node not installed: page.js not parsed', 1 unless $node;
    my $out = `"$node/node" --check "$ROOT/common/assets/page.js" 2>&1`;
    is($?, 0, 'page.js: node --check parses it') or diag $out;
}

done_testing();
